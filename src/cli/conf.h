/*
 * Connection settings: the cli.conf file, the environment and the flags, resolved
 * into one URL, token source and CA file. Pure: callers read files and getenv.
 */
#ifndef QUELL_CLI_CONF_H
#define QUELL_CLI_CONF_H

#include "cli/args.h"
#include "core/err.h"

#define CLI_DEFAULT_URL "http://127.0.0.1:8443"

/* Values from cli.conf; NULL when absent. */
struct cli_conf {
	char *url;
	char *token_file;
	char *ca;
};

/* The variables quell reads, as getenv returned them. */
struct cli_env {
	const char *url;	/* QUELL_URL */
	const char *token_file;	/* QUELL_TOKEN_FILE */
	const char *token;	/* QUELL_TOKEN */
	const char *ca;		/* QUELL_CA */
	const char *home;	/* HOME, for "~/" in cli.conf */
};

struct cli_settings {
	char *url;		/* without a trailing slash */
	char *token_file;	/* NULL when the token comes from QUELL_TOKEN */
	const char *token;	/* QUELL_TOKEN, not a copy */
	char *ca;
};

/*
 * Parses cli.conf text: `key = value` lines, blank lines and # comments. Keys: url,
 * token_file, ca. An error names "<name>:<line>" in its message and the key, if
 * any, in e->field.
 */
int cli_conf_parse(const char *text, const char *name, struct cli_conf *c, struct qerr *e);
void cli_conf_clear(struct cli_conf *c);

/* Flags over environment over cli.conf over defaults. conf may be NULL. */
int cli_settings_resolve(const struct cli_inv *inv, const struct cli_env *env,
    const struct cli_conf *conf, struct cli_settings *s, struct qerr *e);
void cli_settings_clear(struct cli_settings *s);

#endif
