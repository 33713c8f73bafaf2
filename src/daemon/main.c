/*
 * quelld: reads the configuration, opens the store, starts the engine and the API,
 * and stops them in order on SIGTERM or SIGINT. `quelld token create` makes the first
 * API token straight in the store, before any token exists to ask the API with.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "api/api.h"
#include "api/oidc.h"
#include "api/web.h"
#include "core/config.h"
#include "core/correlate.h"
#include "core/disruption_rules.h"
#include "core/log.h"
#include "core/policy.h"
#include "core/rbac.h"
#include "core/text.h"
#include "engine/engine.h"
#include "store/store.h"

#define CONFIG_MAX (1 << 20)

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
log_stderr(enum log_level lvl, const char *msg)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	char ts[TEXT_TIME_LEN];
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	text_time_format((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, ts);
	fprintf(stderr, "%s quelld %s: %s\n", ts, names[lvl], msg);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: quelld [-c FILE]                run the daemon\n"
	    "       quelld [-c FILE] check          validate the configuration\n"
	    "       quelld [-c FILE] token create --name NAME --role ROLE [--scope TAG]...\n"
	    "                                       make an API token (shown once), limited\n"
	    "                                       to identities tagged TAG when given\n"
	    "The configuration defaults to /etc/quell/quelld.conf; see etc/quelld.conf.example.\n");
}

static int
load_config(const char *path, struct config *cfg)
{
	struct qerr e;
	FILE *f;
	char *text;
	size_t n;
	int r;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "quelld: cannot open %s: %m\n", path);
		return -1;
	}
	text = calloc(1, CONFIG_MAX + 1);
	n = text ? fread(text, 1, CONFIG_MAX + 1, f) : 0;
	r = ferror(f);
	fclose(f);
	if (text == NULL || r || n > CONFIG_MAX) {
		fprintf(stderr, "quelld: %s: %s\n", path, text == NULL ? "out of memory" :
		    r ? "read error" : "larger than 1 MiB");
		free(text);
		return -1;
	}
	r = text ? config_parse(path, text, cfg, &e) : QERR_NOMEM;
	free(text);
	if (r != 0) {
		fprintf(stderr, "quelld: %s\n", r == QERR_NOMEM ? "out of memory" : e.msg);
		return -1;
	}
	if (cfg->node_id == NULL) {
		char host[256] = "quelld";

		gethostname(host, sizeof(host) - 1);
		cfg->node_id = strdup(host);
	}
	return 0;
}

static int
token_create(const struct config *cfg, int argc, char **argv)
{
	const char *name = NULL, *role = NULL;
	char **scope = calloc((size_t)argc + 1, sizeof(*scope));
	struct store *st = NULL;
	char *token = NULL;
	size_t nscope = 0;
	unsigned perms;
	struct qerr e;
	int i, r;

	if (scope == NULL)
		return 1;
	for (i = 0; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--name") == 0)
			name = argv[i + 1];
		else if (strcmp(argv[i], "--role") == 0)
			role = argv[i + 1];
		else if (strcmp(argv[i], "--scope") == 0 && nscope < 64 &&
		    argv[i + 1][0] != '\0' && strlen(argv[i + 1]) <= 64 &&
		    text_printable(argv[i + 1], false))
			scope[nscope++] = argv[i + 1];
		else
			break;
	}
	if (i != argc || name == NULL || role == NULL) {
		usage(stderr);
		free(scope);
		return 2;
	}
	if (!rbac_role_perms(cfg, role, &perms)) {
		fprintf(stderr, "quelld: unknown role '%s'\n", role);
		free(scope);
		return 2;
	}
	if ((r = store_open(&store_sqlite, cfg->store_path, 1, &st, &e)) == 0)
		r = auth_token_create(st, "quelld token create", name, role, scope, nscope,
		    &token, &e);
	store_close(st);
	free(scope);
	if (r != 0) {
		fprintf(stderr, "quelld: %s\n", e.msg);
		return 1;
	}
	printf("%s\n", token);
	auth_token_free(token);
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

/* Every identity system's section is valid for its provider, and every other
 * section for the module that reads it. */
static int
check(const struct config *cfg)
{
	const struct provider_ops *ops;
	struct provider *p = NULL;
	struct qerr e;
	size_t i;

	for (i = 0; i < cfg->nsystems; i++) {
		if ((ops = provider_lookup(cfg->systems[i].kind)) == NULL) {
			fprintf(stderr, "quelld: %s:%d: unknown kind '%s'\n", cfg->file,
			    cfg->systems[i].line, cfg->systems[i].kind);
			return 1;
		}
		if (provider_open(ops, &cfg->systems[i], &p, &e) != 0) {
			fprintf(stderr, "quelld: %s\n", e.msg);
			return 1;
		}
		provider_close(ops, p);
	}
	if (check_sections(cfg, &e) != 0) {
		fprintf(stderr, "quelld: %s\n", e.msg);
		return 1;
	}
	printf("%s: ok\n", cfg->file);
	return 0;
}

static int
run(const struct config *cfg)
{
	struct engine_options opt = {
		.node_id = cfg->node_id, .workers = cfg->workers, .lease_ms = cfg->lease_ms,
		.retry_base_ms = cfg->retry_base_ms, .retry_cap_ms = cfg->retry_cap_ms,
		.max_attempts = cfg->max_attempts,
	};
	struct sigaction sa;
	struct engine *eng = NULL;
	struct store *st = NULL;
	struct api *api = NULL;
	struct qerr e;
	int r;

	qerr_clear(&e);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = store_open(&store_sqlite, cfg->store_path, cfg->workers + 8, &st, &e)) ||
	    (r = engine_start(cfg, st, &opt, &eng, &e)) ||
	    (r = api_start(cfg, st, eng, &api, &e)))
		goto out;
	log_msg(LOG_LVL_INFO, "node %s listening on %s (port %u), store %s, %zu identity "
	    "system(s)", cfg->node_id, cfg->listen, api_port(api), cfg->store_path,
	    cfg->nsystems);
	while (!stopping)
		pause();
	log_msg(LOG_LVL_INFO, "stopping");
out:
	if (r != 0)
		log_msg(LOG_LVL_ERROR, "%s", e.msg[0] ? e.msg : qerr_strerror(r));
	api_stop(api);
	engine_stop(eng);
	store_close(st);
	return r == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *path = "/etc/quell/quelld.conf";
	struct config cfg;
	int i = 1, rc;

	if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc > 2 && strcmp(argv[1], "-c") == 0) {
		path = argv[2];
		i = 3;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "quelld: libsodium failed to start\n");
		return 1;
	}
	log_set_sink(log_stderr, LOG_LVL_INFO);
	if (load_config(path, &cfg) != 0)
		return 1;
	if (i == argc)
		rc = run(&cfg);
	else if (strcmp(argv[i], "check") == 0 && i + 1 == argc)
		rc = check(&cfg);
	else if (i + 1 < argc && strcmp(argv[i], "token") == 0 &&
	    strcmp(argv[i + 1], "create") == 0)
		rc = token_create(&cfg, argc - i - 2, argv + i + 2);
	else {
		usage(stderr);
		rc = 2;
	}
	config_clear(&cfg);
	return rc;
}
