/*
 * The quell command line as data: the table of commands and their options, and a
 * parser from argv to a checked invocation. Pure: no I/O, so it can be unit tested.
 */
#ifndef QUELL_CLI_ARGS_H
#define QUELL_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/err.h"

enum cli_cmd_id {
	CMD_DISABLE,
	CMD_ENABLE,
	CMD_FORCE_PASSWORD_CHANGE,
	CMD_REVOKE_SESSIONS,
	CMD_MARK_COMPROMISED,
	CMD_DEACTIVATE,
	CMD_SET_RISK,
	CMD_ACTIONS,
	CMD_ACTION,
	CMD_CANCEL,
	CMD_PENDING,
	CMD_APPROVE,
	CMD_REJECT,
	CMD_UNDO,
	CMD_IDENTITIES,
	CMD_IDENTITY_SHOW,
	CMD_IDENTITY_ADD,
	CMD_IDENTITY_LINK,
	CMD_IDENTITY_UNLINK,
	CMD_IDENTITY_TAG,
	CMD_IDENTITY_CONFLICTS,
	CMD_SYNC,
	CMD_SYSTEMS,
	CMD_WHOAMI,
	CMD_AUDIT,
	CMD_AUDIT_VERIFY,
	CMD_AUDIT_EXPORT,
	CMD_TOKEN_CREATE,
	CMD_TOKEN_LIST,
	CMD_TOKEN_REVOKE,
	CMD_ALERTS,
	CMD_ALERT,
	CMD_ALERTS_INGEST,
	CMD_RELEASE,
	CMD_HUNT,
	CMD_COMPLETION,
};

enum cli_opt_kind {
	OPT_FLAG,
	OPT_VALUE,
	OPT_LIST,	/* a value that may be given several times */
};

struct cli_optspec {
	const char *name;	/* long name without the leading "--" */
	enum cli_opt_kind kind;
	bool required;
};

struct cli_cmd {
	enum cli_cmd_id id;
	const char *word;
	const char *sub;		/* second word, NULL when none */
	const struct cli_optspec *opts;	/* ends with a NULL name */
	const char *const *args;	/* positional names; "[X]" marks optional ones */
	const char *synopsis;
	const char *help;
};

#define CLI_MAX_OPTS 64
/* Longest word a suggestion is looked for. */
#define CLI_WORD_MAX 40
/* hunt --limit: the most rows POST /api/v1/hunting/query returns (docs/hunting.md). */
#define CLI_HUNT_LIMIT_MAX 10000
#define CLI_MAX_POS 64

struct cli_opt {
	const char *name;
	const char *value;	/* NULL for flags */
};

/* Points into argv and the static command table; owns nothing. */
struct cli_inv {
	const struct cli_cmd *cmd;	/* NULL: no command given */
	const char *group;		/* "identity" for `quell identity --help` */
	bool help;
	struct cli_opt opts[CLI_MAX_OPTS];
	size_t nopts;
	const char *pos[CLI_MAX_POS];
	size_t npos;
};

/*
 * Parses argv (argv[0] is the program) into inv. A usage error returns QERR_INVALID
 * with e->field naming the flag or argument at fault. With --help, required options
 * and arguments are not checked.
 */
int cli_parse(int argc, char *const argv[], struct cli_inv *inv, struct qerr *e);

/* The last value of an option, or NULL. */
const char *cli_opt(const struct cli_inv *inv, const char *name);
bool cli_flag(const struct cli_inv *inv, const char *name);
/* Values of a repeatable option in order: start with *i = 0, NULL at the end. */
const char *cli_opt_next(const struct cli_inv *inv, const char *name, size_t *i);

/*
 * The candidate nearest to word[0, len) when it is close enough to be a typo of it,
 * else NULL; points into cands.
 */
const char *cli_nearest(const char *word, size_t len, const char *const *cands, size_t n);

const struct cli_cmd *cli_commands(size_t *n);
const char *cli_general_help(void);
/* The bash completion script for the table's commands; the caller frees it. NULL when
 * out of memory. */
char *cli_completion_bash(void);
/* The options every command takes, and the exit statuses. */
const char *cli_common_help(void);

/*
 * --since: an RFC 3339 time (copied, with T and Z upper-cased) or a span back from
 * now such as 90m, 24h, 7d, 2w, written as RFC 3339 UTC with milliseconds.
 */
int cli_since_parse(const char *s, time_t now, char *out, size_t outlen, struct qerr *e);

/*
 * token create --expires: a span from 1s to 3650d (a whole number and s, m, h or d,
 * e.g. 30d, 12h), checked here so a typo is a usage error before anything is asked
 * of quelld; quelld checks it again, against its token_max_lifetime too.
 */
int cli_expires_check(const char *s, struct qerr *e);

#endif
