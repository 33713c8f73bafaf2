/*
 * Parses quell's argv against the command table (cmdtab.c) and checks what can be
 * checked without quelld, so a mistyped flag never reaches the API.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "core/config.h"
#include "core/model.h"

static const struct cli_optspec common_opts[] = {
	{ "json", OPT_FLAG, false },
	{ "help", OPT_FLAG, false },
	{ "url", OPT_VALUE, false },
	{ "token-file", OPT_VALUE, false },
	{ "ca", OPT_VALUE, false },
	{ "wide", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static size_t
min2(size_t a, size_t b)
{
	return a < b ? a : b;
}

/*
 * Edits (insert, delete, substitute, swap two neighbours: the usual typos) turning
 * a[0, la) into b[0, lb), for short words.
 */
static size_t
distance(const char *a, size_t la, const char *b, size_t lb)
{
	size_t d[CLI_WORD_MAX + 1][CLI_WORD_MAX + 1], i, j;

	if (la > CLI_WORD_MAX || lb > CLI_WORD_MAX)
		return SIZE_MAX;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++)
		for (j = 1; j <= lb; j++) {
			d[i][j] = min2(min2(d[i - 1][j] + 1, d[i][j - 1] + 1),
			    d[i - 1][j - 1] + (a[i - 1] != b[j - 1]));
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
				d[i][j] = min2(d[i][j], d[i - 2][j - 2] + 1);
		}
	return d[la][lb];
}

const char *
cli_nearest(const char *word, size_t len, const char *const *cands, size_t n)
{
	const char *best = NULL;
	size_t k, d, bestd = SIZE_MAX;

	/* Close enough to be a typo, not a different word: a third of it at most. */
	for (k = 0; k < n; k++)
		if ((d = distance(word, len, cands[k], strlen(cands[k]))) < bestd) {
			bestd = d;
			best = cands[k];
		}
	return bestd <= (len < 6 ? 1 : len / 3) ? best : NULL;
}

/* The option names of specs and the common ones, for a suggestion. */
static const char *
nearest_option(const struct cli_optspec *specs, const char *name, size_t len)
{
	const char *names[CLI_MAX_OPTS];
	const struct cli_optspec *s;
	size_t n = 0;

	for (s = specs; s != NULL && s->name != NULL && n < CLI_MAX_OPTS; s++)
		names[n++] = s->name;
	for (s = common_opts; s->name != NULL && n < CLI_MAX_OPTS; s++)
		names[n++] = s->name;
	return cli_nearest(name, len, names, n);
}

static const char *
nearest_command(const char *word)
{
	const char *words[CLI_MAX_OPTS + 1];
	const struct cli_cmd *t;
	size_t n, k, m = 0;

	t = cli_commands(&n);
	for (k = 0; k < n && m < CLI_MAX_OPTS; k++)
		if (m == 0 || strcmp(words[m - 1], t[k].word) != 0)
			words[m++] = t[k].word;
	words[m++] = "help";
	return cli_nearest(word, strlen(word), words, m);
}

const char *
cli_opt_next(const struct cli_inv *inv, const char *name, size_t *i)
{
	for (; *i < inv->nopts; (*i)++)
		if (strcmp(inv->opts[*i].name, name) == 0)
			return inv->opts[(*i)++].value;
	return NULL;
}

const char *
cli_opt(const struct cli_inv *inv, const char *name)
{
	const char *v = NULL, *last = NULL;
	size_t i = 0;

	while ((v = cli_opt_next(inv, name, &i)) != NULL)
		last = v;
	return last;
}

bool
cli_flag(const struct cli_inv *inv, const char *name)
{
	size_t i;

	for (i = 0; i < inv->nopts; i++)
		if (strcmp(inv->opts[i].name, name) == 0)
			return true;
	return false;
}

static const struct cli_optspec *
find_spec(const struct cli_optspec *specs, const char *name, size_t len)
{
	for (; specs != NULL && specs->name != NULL; specs++)
		if (strlen(specs->name) == len && strncmp(specs->name, name, len) == 0)
			return specs;
	return NULL;
}

static int
add_opt(struct cli_inv *inv, const struct cli_optspec *spec, const char *value,
    const char *flag, struct qerr *e)
{
	if (spec->kind == OPT_VALUE && cli_flag(inv, spec->name))
		return qerr_set(e, QERR_INVALID, flag, "%s given twice", flag);
	if (inv->nopts == CLI_MAX_OPTS)
		return qerr_set(e, QERR_INVALID, flag, "too many options");
	inv->opts[inv->nopts].name = spec->name;
	inv->opts[inv->nopts].value = value;
	inv->nopts++;
	if (strcmp(spec->name, "help") == 0)
		inv->help = true;
	return 0;
}

/* Takes the option at argv[*i] and, when it has one, its value; advances *i. */
static int
take_option(const struct cli_optspec *cmdopts, int argc, char *const argv[], int *i,
    struct cli_inv *inv, struct qerr *e)
{
	const char *arg = argv[*i], *eq, *value = NULL, *near;
	const struct cli_optspec *spec;
	char flag[72];
	size_t len;

	if (strcmp(arg, "-h") == 0) {
		inv->help = true;
		return 0;
	}
	if (strcmp(arg, "-y") == 0 && (spec = find_spec(cmdopts, "yes", 3)) != NULL)
		return add_opt(inv, spec, NULL, "--yes", e);
	if (arg[1] != '-')
		return qerr_set(e, QERR_INVALID, arg, "unknown option %s", arg);
	arg += 2;
	eq = strchr(arg, '=');
	len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
	snprintf(flag, sizeof(flag), "--%.*s", (int)(len < 64 ? len : 64), arg);
	if ((spec = find_spec(cmdopts, arg, len)) == NULL &&
	    (spec = find_spec(common_opts, arg, len)) == NULL) {
		if ((near = nearest_option(cmdopts, arg, len)) != NULL)
			return qerr_set(e, QERR_INVALID, flag, "unknown option %s (did you "
			    "mean --%s?)", flag, near);
		return qerr_set(e, QERR_INVALID, flag, "unknown option %s", flag);
	}
	if (spec->kind == OPT_FLAG && eq != NULL)
		return qerr_set(e, QERR_INVALID, flag, "%s takes no value", flag);
	if (spec->kind != OPT_FLAG) {
		/* A following "--x" is a forgotten value, not a value that starts with --. */
		if (eq != NULL)
			value = eq + 1;
		else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0)
			value = argv[++*i];
		else
			return qerr_set(e, QERR_INVALID, flag, "%s needs a value", flag);
	}
	return add_opt(inv, spec, value, flag, e);
}

static bool
is_option(const char *arg)
{
	return arg[0] == '-' && arg[1] != '\0';
}

static bool
help_follows(int argc, char *const argv[], int i)
{
	for (; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

static int
no_subcommand(const char *word, const char *sub, struct qerr *e)
{
	const struct cli_cmd *t;
	char subs[128] = "";
	size_t n, k, used = 0;

	t = cli_commands(&n);
	for (k = 0; k < n; k++)
		if (strcmp(t[k].word, word) == 0 && t[k].sub != NULL && used < sizeof(subs))
			used += (size_t)snprintf(subs + used, sizeof(subs) - used, "%s%s",
			    used ? ", " : "", t[k].sub);
	if (sub == NULL || is_option(sub))
		return qerr_set(e, QERR_INVALID, word, "'%s' needs one of: %s", word, subs);
	return qerr_set(e, QERR_INVALID, sub, "unknown command '%s %s' (one of: %s)",
	    word, sub, subs);
}

/* Finds the command at argv[*i] (one or two words) and moves *i past it. */
static int
find_command(int argc, char *const argv[], int *i, struct cli_inv *inv, struct qerr *e)
{
	const char *word = argv[*i], *sub = *i + 1 < argc ? argv[*i + 1] : NULL, *near;
	const struct cli_cmd *t, *plain = NULL;
	bool known = false;
	size_t n, k;

	t = cli_commands(&n);
	for (k = 0; k < n; k++) {
		if (strcmp(t[k].word, word) != 0)
			continue;
		known = true;
		if (t[k].sub == NULL)
			plain = &t[k];
		else if (sub != NULL && strcmp(t[k].sub, sub) == 0) {
			inv->cmd = &t[k];
			*i += 2;
			return 0;
		}
	}
	if (plain != NULL) {
		inv->cmd = plain;
		*i += 1;
		return 0;
	}
	if (!known && (near = nearest_command(word)) != NULL)
		return qerr_set(e, QERR_INVALID, word, "unknown command '%s' (did you mean "
		    "'%s'?)", word, near);
	if (!known)
		return qerr_set(e, QERR_INVALID, word, "unknown command '%s'", word);
	inv->group = word;
	if (inv->help || help_follows(argc, argv, *i + 1)) {
		inv->help = true;
		return 0;
	}
	return no_subcommand(word, sub, e);
}

static int
parse_rest(int argc, char *const argv[], int i, struct cli_inv *inv, struct qerr *e)
{
	bool dashdash = false;
	int r;

	for (; i < argc; i++) {
		if (!dashdash && strcmp(argv[i], "--") == 0)
			dashdash = true;
		else if (!dashdash && is_option(argv[i])) {
			if ((r = take_option(inv->cmd->opts, argc, argv, &i, inv, e)) < 0)
				return r;
		} else if (inv->npos == CLI_MAX_POS)
			return qerr_set(e, QERR_INVALID, argv[i], "unexpected argument '%s'",
			    argv[i]);
		else
			inv->pos[inv->npos++] = argv[i];
	}
	return 0;
}

static int
check_int(const char *flag, const char *s, long long lo, long long hi, struct qerr *e)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || !isdigit((unsigned char)s[0]) || v < lo || v > hi)
		return qerr_set(e, QERR_INVALID, flag, "%s must be a number from %lld to %lld",
		    flag, lo, hi);
	return 0;
}

static int
check_value(const struct cli_cmd *cmd, const struct cli_opt *o, struct qerr *e)
{
	enum action_status st;
	enum action_type ty;
	char flag[72], buf[64];

	if (o->value == NULL)
		return 0;
	snprintf(flag, sizeof(flag), "--%s", o->name);
	if (o->value[0] == '\0')
		return qerr_set(e, QERR_INVALID, flag, "%s must not be empty", flag);
	if (strcmp(o->name, "limit") == 0)
		return check_int(flag, o->value, 1, cmd->id == CMD_HUNT ? CLI_HUNT_LIMIT_MAX :
		    1000, e);
	if (strcmp(o->name, "after") == 0)
		return check_int(flag, o->value, 0, LLONG_MAX, e);
	if (strcmp(o->name, "since") == 0)
		return cli_since_parse(o->value, 0, buf, sizeof(buf), e);
	if (strcmp(o->name, "status") == 0 && action_status_parse(o->value, &st) < 0)
		return qerr_set(e, QERR_INVALID, flag, "unknown action status '%s'", o->value);
	if (strcmp(o->name, "type") == 0 && action_type_parse(o->value, &ty) < 0)
		return qerr_set(e, QERR_INVALID, flag, "unknown action type '%s'", o->value);
	if (strcmp(o->name, "format") == 0 && strcmp(o->value, "jsonl") != 0)
		return qerr_set(e, QERR_INVALID, flag, "unsupported format '%s' (only jsonl)",
		    o->value);
	return 0;
}

static int
check_positional(const struct cli_inv *inv, struct qerr *e)
{
	const char *const *names = inv->cmd->args;
	size_t max = 0, min = 0, k, n;
	char name[64];
	bool repeats;

	for (; names[max] != NULL; max++)
		if (names[max][0] != '[')
			min++;
	/* A last name ending in "..." ("<action-id>...") takes any number. */
	repeats = max > 0 && strstr(names[max - 1], "...") != NULL;
	if (inv->npos > max && !repeats)
		return qerr_set(e, QERR_INVALID, inv->pos[max], "unexpected argument '%s'",
		    inv->pos[max]);
	/* Errors name one argument: "<identity>", not "<identity>...". */
	if (inv->npos < min) {
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(names[inv->npos], "."),
		    names[inv->npos]);
		return qerr_set(e, QERR_INVALID, name, "missing %s", name);
	}
	for (k = 0; k < inv->npos; k++) {
		n = k < max ? k : max - 1;
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(names[n], "."), names[n]);
		if (inv->pos[k][0] == '\0')
			return qerr_set(e, QERR_INVALID, name, "%s must not be empty", name);
	}
	return 0;
}

static int
check(const struct cli_inv *inv, struct qerr *e)
{
	const struct cli_optspec *s;
	char flag[72];
	size_t k;
	int r;

	if ((r = check_positional(inv, e)) < 0)
		return r;
	for (s = inv->cmd->opts; s->name != NULL; s++) {
		snprintf(flag, sizeof(flag), "--%s", s->name);
		if (s->required && !cli_flag(inv, s->name))
			return qerr_set(e, QERR_INVALID, flag, "missing %s", flag);
	}
	for (k = 0; k < inv->nopts; k++)
		if ((r = check_value(inv->cmd, &inv->opts[k], e)) < 0)
			return r;
	return 0;
}

int
cli_parse(int argc, char *const argv[], struct cli_inv *inv, struct qerr *e)
{
	int i = 1, r;

	memset(inv, 0, sizeof(*inv));
	for (; i < argc && is_option(argv[i]); i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if ((r = take_option(NULL, argc, argv, &i, inv, e)) < 0)
			return r;
	}
	/* `quell help [COMMAND]` is `quell [COMMAND] --help`. */
	if (i < argc && strcmp(argv[i], "help") == 0) {
		inv->help = true;
		i++;
	}
	if (i >= argc)
		return inv->help ? 0 :
		    qerr_set(e, QERR_INVALID, "<command>", "missing command");
	if ((r = find_command(argc, argv, &i, inv, e)) < 0)
		return r;
	if (inv->cmd == NULL)
		return 0;
	if ((r = parse_rest(argc, argv, i, inv, e)) < 0)
		return r;
	return inv->help ? 0 : check(inv, e);
}

/* Exactly n digits at p, as a number. */
static int
digits(const char *p, int n, int *v)
{
	int k;

	*v = 0;
	for (k = 0; k < n; k++) {
		if (!isdigit((unsigned char)p[k]))
			return -1;
		*v = *v * 10 + (p[k] - '0');
	}
	return 0;
}

static int
rfc3339_valid(const char *s)
{
	int y, mo, d, h, mi, sec, oh, om;
	const char *p = s + 19;

	if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
	    s[16] != ':' || digits(s + 17, 2, &sec))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return 0;
	if ((*p != '+' && *p != '-') || digits(p + 1, 2, &oh) || p[3] != ':' ||
	    digits(p + 4, 2, &om) || p[6] != '\0' || oh > 23 || om > 59)
		return -1;
	return 0;
}

/* "<n><unit>" back from now; returns 1 if s is not a span at all. */
static int
span(const char *s, time_t now, char *out, size_t outlen)
{
	char *end;
	long n, unit;
	time_t t;
	struct tm tm;

	if (!isdigit((unsigned char)s[0]))
		return 1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (end == s || end[0] == '\0' || end[1] != '\0')
		return 1;
	switch (*end) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case 'w': unit = 7 * 86400; break;
	default: return 1;
	}
	/* A hundred years back is further than any audit log reaches. */
	if (errno != 0 || n > 36500L * 86400 / unit)
		return -1;
	t = now - (time_t)(n * unit);
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%dT%H:%M:%S.000Z", &tm) == 0)
		return -1;
	return 0;
}

int
cli_since_parse(const char *s, time_t now, char *out, size_t outlen, struct qerr *e)
{
	size_t k;
	int r;

	if ((r = span(s, now, out, outlen)) == 0)
		return 0;
	if (r == 1 && rfc3339_valid(s) == 0 && strlen(s) < outlen) {
		for (k = 0; s[k] != '\0'; k++)
			out[k] = (char)toupper((unsigned char)s[k]);
		out[k] = '\0';
		return 0;
	}
	return qerr_set(e, QERR_INVALID, "--since",
	    "--since wants an RFC 3339 time or a span such as 90m, 24h, 7d, 2w, not '%s'", s);
}

int
cli_expires_check(const char *s, struct qerr *e)
{
	int64_t ms;

	if (config_duration(s, 1000, CONFIG_TOKEN_LIFETIME_MAX_MS, &ms) == 0)
		return 0;
	return qerr_set(e, QERR_INVALID, "--expires",
	    "--expires wants a span from 1s to 3650d: a whole number and s, m, h or d "
	    "such as 30d, 12h, 90m, not '%s'", s);
}
