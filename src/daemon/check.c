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
#include "engine/engine.h"
#include "engine/siem.h"
#include "engine/ssf.h"
#include "privsep/privsep.h"
#include "providers/provider.h"
#include "store/store.h"

#define CONFIG_MAX (1 << 20)

int
daemon_config_load(const char *path, struct config *cfg, char **textp, struct qerr *e)
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
	if (textp != NULL) {
		*textp = text;
		text = NULL;
	}
out:
	free(text);
	if (f != NULL)
		fclose(f);
	return r;
}

/* In this process: for `quelld check`, which is not the long-running front (the
 * daemon has its executor open them, privsep_load). */
static int
check_systems(const struct config *cfg, struct qerr *e)
{
	struct privsep_systems *s = NULL;
	int r = privsep_systems_open(cfg, &s, e);

	privsep_systems_close(s);
	return r;
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
	double rate;
	long burst;
	size_t i;
	int r;

	for (i = 0; i < cfg->nsystems; i++)
		if ((r = engine_budget_parse(&cfg->systems[i], &rate, &burst, e)) != 0)
			return r;

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

/* PostgreSQL's connection string must parse and hold no password; whether the
 * server takes it is known when the store opens. */
static int
check_conninfo(const struct config *cfg, struct qerr *e)
{
	char *loc = NULL, why[sizeof(e->msg)];
	int r;

	if ((r = store_pg_location(cfg->store_conninfo, cfg->store_passfile, &loc, e)) != 0) {
		snprintf(why, sizeof(why), "%s", e->msg);
		return qerr_set(e, r, "conninfo", "%s: %s", cfg->file, why);
	}
	free(loc);
	return 0;
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

	if (strcmp(cfg->store_backend, "postgres") == 0) {
		free(copy);
		return check_conninfo(cfg, e);
	}
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
daemon_config_check_split(const struct config *cfg,
    int (*systems)(const struct config *cfg, void *arg, struct qerr *e), void *arg,
    struct qerr *e)
{
	int r;

	if ((r = daemon_config_check_local(cfg, e)) == 0 && (r = systems(cfg, arg, e)) == 0)
		r = check_sections(cfg, e);
	return r;
}

static int
systems_here(const struct config *cfg, void *arg, struct qerr *e)
{
	(void)arg;
	return check_systems(cfg, e);
}

int
daemon_config_check(const struct config *cfg, struct qerr *e)
{
	int r;

	/* The SSF sections after the rest, as a start meets them: the engine checks
	 * them when it starts (ssf_start), and a reload in the front has no key_file. */
	if ((r = daemon_config_check_split(cfg, systems_here, NULL, e)) == 0)
		r = ssf_check(cfg, e);
	return r;
}
