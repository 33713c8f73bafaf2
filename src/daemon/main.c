/*
 * quelld's command line: its options are parsed before any configuration is read, then
 * it runs the daemon (service.c), checks the configuration (check.c), or makes the
 * first API token straight in the store, before any token exists to ask the API with.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "api/api.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rbac.h"
#include "core/text.h"
#include "core/version.h"
#include "daemon/daemon.h"
#include "privsep/privsep.h"
#include "store/store.h"

/* One line per event, written at once so lines from several threads never mix. */
static void
log_stderr(const struct log_record *rec)
{
	char ts[TEXT_TIME_LEN], line[4096];
	size_t n;

	text_time_format(clock_real_ms(), ts);
	log_format_line(line, sizeof(line) - 1, log_json(), ts, rec);
	n = strlen(line);
	line[n++] = '\n';
	fwrite(line, 1, n, stderr);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: quelld [-c FILE]                run the daemon (SIGHUP reloads FILE)\n"
	    "       quelld [-c FILE] check          validate the configuration\n"
	    "       quelld [-c FILE] token create --name NAME --role ROLE [--scope TAG]...\n"
	    "                                       [--expires SPAN]\n"
	    "                                       make an API token (shown once), limited\n"
	    "                                       to identities tagged TAG when given,\n"
	    "                                       expiring after SPAN (30d, 12h, 90m, 45s;\n"
	    "                                       default and limit: token_max_lifetime)\n"
	    "       quelld migrate --from sqlite:PATH --to postgres:CONNINFO\n"
	    "                      [--passfile FILE]\n"
	    "                                       copy a single node's store into an\n"
	    "                                       empty PostgreSQL database\n"
	    "       quelld --version | --help\n"
	    "The configuration defaults to /etc/quell/quelld.conf; see quelld.conf(5).\n");
}

/* Who creates a token from the command line: the operator, through quelld itself. */
static const struct actor cli_actor = { .name = "quelld token create",
	.id = "system:quelld-token-create", .kind = "system" };

static int
token_create(const struct config *cfg, int argc, char **argv)
{
	const char *name = NULL, *role = NULL, *expires = NULL;
	char **scope = calloc((size_t)argc + 1, sizeof(*scope));
	struct store *st = NULL;
	char *token = NULL;
	size_t nscope = 0;
	int64_t life;
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
		else if (strcmp(argv[i], "--expires") == 0)
			expires = argv[i + 1];
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
	/* The configured maximum binds here too: it is a property of the server. */
	if (auth_token_lifetime(cfg, expires, "--expires", &life, &e) != 0) {
		fprintf(stderr, "quelld: %s\n", e.msg);
		free(scope);
		return 2;
	}
	if ((r = store_open_config(cfg, 1, &st, &e)) == 0)
		r = auth_token_create(st, &cli_actor, name, role, scope, nscope, life,
		    &token, NULL, &e);
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

/* Where the command starts in argv after the options, or -1 on a usage error (said). */
static int
parse_options(int argc, char **argv, const char **path, bool *version, bool *help)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			*help = true;
		else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0)
			*version = true;
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc && argv[i + 1][0] != '\0')
			*path = argv[++i];
		else {
			fprintf(stderr, "quelld: %s '%s'\n", strcmp(argv[i], "-c") == 0 ?
			    "missing FILE after" : "unknown option", argv[i]);
			return -1;
		}
	}
	if (i < argc && strcmp(argv[i], "migrate") != 0 &&
	    !(strcmp(argv[i], "check") == 0 && i + 1 == argc) &&
	    !(strcmp(argv[i], "token") == 0 && i + 1 < argc &&
	    strcmp(argv[i + 1], "create") == 0)) {
		fprintf(stderr, "quelld: unknown command '%s'\n", argv[i]);
		return -1;
	}
	return i;
}

int
main(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_FILE;
	struct privsep_user user;
	bool version = false, help = false;
	char *text = NULL;
	struct config cfg;
	struct qerr e;
	int i, rc;

	if ((i = parse_options(argc, argv, &path, &version, &help)) < 0) {
		usage(stderr);
		return 2;
	}
	if (help || version) {
		if (version)
			printf("quelld %s\n", QUELL_VERSION_FULL);
		else
			usage(stdout);
		return 0;
	}
	/* The store, its journal and anything else quelld writes hold token hashes and
	 * the audit log: private, whatever umask it was started with. */
	umask(077);
	if (sodium_init() < 0) {
		fprintf(stderr, "quelld: libsodium failed to start\n");
		return 1;
	}
	log_set_sink(log_stderr, LOG_LVL_INFO);
	if (i < argc && strcmp(argv[i], "migrate") == 0)
		return daemon_migrate(argc - i - 1, argv + i + 1);
	/* Before any thread: the registry outlives reloads, so counters do too. */
	if (quell_metrics_install() != 0) {
		fprintf(stderr, "quelld: out of memory\n");
		return 1;
	}
	qerr_clear(&e);
	if (daemon_config_load(path, &cfg, &text, &e) != 0) {
		fprintf(stderr, "quelld: %s\n", e.msg);
		return 1;
	}
	log_set_options((enum log_level)cfg.log_level, cfg.log_json);
	if (i == argc || strcmp(argv[i], "check") == 0) {
		/* A start refuses exactly what check refuses, in the same words: what the
		 * start does not check itself is checked here first. */
		if ((rc = (i == argc ? daemon_config_check_local(&cfg, &e) :
		    daemon_config_check(&cfg, &e)) == 0 &&
		    privsep_user_resolve(&cfg, &user, &e) == 0 ? 0 : 1) != 0)
			fprintf(stderr, "quelld: %s\n", e.msg);
		else if (i == argc)
			rc = daemon_run(path, &cfg, text);
		else
			printf("%s: ok\n", cfg.file);
	} else if (privsep_user_resolve(&cfg, &user, &e) != 0 ||
	    privsep_become(&user, "quelld token create", &e) != 0) {
		/* As the daemon's user, so a store it creates is the daemon's. */
		fprintf(stderr, "quelld: %s\n", e.msg);
		rc = 1;
	} else
		rc = token_create(&cfg, argc - i - 2, argv + i + 2);
	config_clear(&cfg);
	free(text);
	return rc;
}
