/*
 * quelld's configuration: read from its file, then checked the way the daemon would
 * check it at start, so that `quelld check` and a reload refuse exactly what a start
 * would refuse.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "api/oidc.h"
#include "api/web.h"
#include "core/correlate.h"
#include "core/disruption_rules.h"
#include "core/policy.h"
#include "daemon/daemon.h"
#include "engine/siem.h"
#include "providers/provider.h"

#define CONFIG_MAX (1 << 20)

int
daemon_config_load(const char *path, struct config *cfg, struct qerr *e)
{
	char *text = NULL;
	FILE *f = NULL;
	size_t n;
	int r = QERR_CONFIG;

	memset(cfg, 0, sizeof(*cfg));
	if ((f = fopen(path, "r")) == NULL) {
		qerr_set(e, QERR_CONFIG, NULL, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if ((text = calloc(1, CONFIG_MAX + 1)) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	n = fread(text, 1, CONFIG_MAX + 1, f);
	if (ferror(f) || n > CONFIG_MAX) {
		qerr_set(e, QERR_CONFIG, NULL, "%s: %s", path,
		    ferror(f) ? "read error" : "larger than 1 MiB");
		goto out;
	}
	if ((r = config_parse(path, text, cfg, e)) != 0)
		goto out;
	cfg->kinds = provider_kinds();
	if (cfg->node_id == NULL) {
		char host[256] = "quelld";

		gethostname(host, sizeof(host) - 1);
		if ((cfg->node_id = strdup(host)) == NULL) {
			config_clear(cfg);
			r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
			goto out;
		}
	}
	r = 0;
out:
	free(text);
	if (f != NULL)
		fclose(f);
	return r;
}

static int
check_systems(const struct config *cfg, struct qerr *e)
{
	const struct provider_ops *ops;
	struct provider *p = NULL;
	size_t i;
	int r;

	for (i = 0; i < cfg->nsystems; i++) {
		if ((ops = provider_lookup(cfg->systems[i].kind)) == NULL)
			return qerr_set(e, QERR_CONFIG, "kind", "%s:%d: unknown kind '%s'",
			    cfg->file, cfg->systems[i].line, cfg->systems[i].kind);
		if ((r = provider_open(ops, &cfg->systems[i], &p, e)) != 0)
			return r;
		provider_close(ops, p);
	}
	return 0;
}

/* The access and disruption policies, the correlation rules, the console's and the
 * OpenID Connect issuer's sections. */
static int
check_sections(const struct config *cfg, struct qerr *e)
{
	struct disruption_policy *dp = NULL;
	struct corr_rules rules;
	struct policy *pol = NULL;
	struct oidc *o = NULL;
	struct web *w = NULL;
	int r;

	if ((r = policy_load(cfg, &pol, e)) == 0 &&
	    (r = corr_rules_load(cfg, &rules, e)) == 0 &&
	    (r = disruption_policy_load(cfg, &dp, e)) == 0 &&
	    (r = web_open(cfg, cfg->tls_cert != NULL, &w, e)) == 0)
		r = oidc_open(cfg, &o, e);
	oidc_close(o);
	web_close(w);
	disruption_policy_free(dp);
	policy_free(pol);
	return r;
}

/* SQLite creates the file, so its directory must exist and be writable; an existing
 * file must be readable and writable. */
static int
check_store(const struct config *cfg, struct qerr *e)
{
	char *copy = strdup(cfg->store_path);
	const char *dir;
	struct stat st;
	int r = 0;

	if (copy == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	dir = dirname(copy);
	if (stat(cfg->store_path, &st) == 0) {
		if (!S_ISREG(st.st_mode) || access(cfg->store_path, R_OK | W_OK) != 0)
			r = qerr_set(e, QERR_CONFIG, "path", "%s: [store] path %s: %s",
			    cfg->file, cfg->store_path, S_ISREG(st.st_mode) ?
			    "not readable and writable by this user" : "not a regular file");
	} else if (errno != ENOENT || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		r = qerr_set(e, QERR_CONFIG, "path", "%s: [store] path %s: directory %s "
		    "does not exist", cfg->file, cfg->store_path, dir);
	else if (access(dir, W_OK | X_OK) != 0)
		r = qerr_set(e, QERR_CONFIG, "path", "%s: [store] path %s: directory %s "
		    "is not writable by this user", cfg->file, cfg->store_path, dir);
	free(copy);
	return r;
}

int
daemon_config_check_local(const struct config *cfg, struct qerr *e)
{
	int r;

	if ((r = api_config_check(cfg, e)) == 0 && (r = check_store(cfg, e)) == 0)
		r = siem_check(cfg, e);
	return r;
}

int
daemon_config_check(const struct config *cfg, struct qerr *e)
{
	int r;

	if ((r = daemon_config_check_local(cfg, e)) == 0 &&
	    (r = check_systems(cfg, e)) == 0)
		r = check_sections(cfg, e);
	return r;
}
