/*
 * Advanced hunting on PostgreSQL: one SELECT a person writes, over the documented
 * views of the schema "hunting" (made with the store's tables), on a connection of
 * its own.
 *
 * The database enforces what it can: a READ ONLY transaction (no write, no DDL, no
 * row lock, no sequence), statement_timeout, and search_path set to the views' schema
 * alone. What a read-only transaction does not stop (functions that read files or
 * the server's settings, set_config, advisory locks, dblink, the system catalogs) is
 * refused before the query is sent, by a lexer that reads it as PostgreSQL does
 * (strings, quoted identifiers, dollar quotes, nested comments): one statement, SELECT
 * WITH or VALUES first, no name of another schema, nothing named pg_*, and every call
 * (a name before "(") to an allow-listed function or a keyword. The query is then run
 * as a subquery under LIMIT, its rows read one at a time up to the caps.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "postgres_int.h"

#define SQL_MAX 10000
#define NAME_MAX_LEN 64

/* Pure functions that read nothing but their arguments. Not here on purpose: every
 * pg_* function (files, settings, locks, signals, sleeps), set_config and
 * current_setting, dblink, lo_*, query_to_xml and the like, generate_series and
 * repeat (memory), txid_* and nextval. */
static const char *const functions[] = {
	"count", "sum", "avg", "min", "max", "string_agg", "array_agg", "bool_and",
	"bool_or", "every", "coalesce", "nullif", "greatest", "least", "length",
	"char_length", "character_length", "octet_length", "lower", "upper", "substr",
	"substring", "trim", "btrim", "ltrim", "rtrim", "replace", "strpos", "position",
	"left", "right", "concat", "concat_ws", "format", "split_part", "starts_with",
	"initcap", "reverse", "lpad", "rpad", "regexp_replace", "regexp_match",
	"regexp_like", "round", "abs", "ceil", "ceiling", "floor", "sign", "trunc", "mod",
	"date_trunc", "date_part", "extract", "to_char", "to_timestamp", "to_date",
	"to_number", "now", "age", "jsonb_array_length", "json_array_length",
	"jsonb_extract_path_text", "json_extract_path_text", "jsonb_typeof", "json_typeof",
	"jsonb_array_elements_text", "json_array_elements_text", "row_number", "rank",
	"dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value",
	"last_value", "nth_value", "md5", "unnest", NULL,
};

/* Words that may stand before "(" without being a call. */
static const char *const keywords[] = {
	"select", "from", "where", "in", "exists", "values", "as", "over", "filter", "any",
	"all", "some", "array", "cast", "row", "using", "on", "not", "and", "or", "when",
	"then", "else", "case", "by", "within", "group", "lateral", "join", "union",
	"intersect", "except", "with", "recursive", "having", "is", "distinct", "between",
	"like", "ilike", "limit", "offset", "order", "partition", "window", "rows",
	"range", "varchar", "numeric", "decimal", "char", "character", "time", "timestamp",
	"interval", "float", "bit", "grouping", "cube", "rollup", "sets", "of", "escape",
	"similar", "null", "true", "false", "asc", "desc", "nulls", "first", "last",
	"materialized", "to", "zone", NULL,
};

static bool
listed(const char *const *list, const char *s)
{
	size_t i;

	for (i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* The lexer's state over the query text. */
struct lex {
	const char *p;
	int depth;		/* open parentheses */
	bool first;		/* no token read yet */
	bool ended;		/* a ';' was read */
	char prev[NAME_MAX_LEN + 1];	/* the last name read, "" after anything else */
	char prev2[NAME_MAX_LEN + 1];	/* the name before it, "" if it was not one */
	char *const *schemas;	/* every schema of the database but "hunting" */
	size_t nschemas;
	char why[200];
};

static bool
ident_start(char c)
{
	return isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

static bool
ident_char(char c)
{
	return ident_start(c) || isdigit((unsigned char)c) || c == '$';
}

static bool fail(struct lex *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Says why the query is refused; false, for the caller to return. */
static bool
fail(struct lex *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->why, sizeof(x->why), fmt, ap);
	va_end(ap);
	return false;
}

/* Skips blanks and comments (block comments nest, as in PostgreSQL). */
static bool
skip_space(struct lex *x)
{
	int nest;

	for (;;) {
		while (isspace((unsigned char)*x->p))
			x->p++;
		if (x->p[0] == '-' && x->p[1] == '-') {
			x->p += strcspn(x->p, "\n");
			continue;
		}
		if (x->p[0] != '/' || x->p[1] != '*')
			return true;
		for (nest = 0; *x->p != '\0';) {
			if (x->p[0] == '/' && x->p[1] == '*') {
				nest++;
				x->p += 2;
			} else if (x->p[0] == '*' && x->p[1] == '/') {
				x->p += 2;
				if (--nest == 0)
					break;
			} else
				x->p++;
		}
		if (nest != 0)
			return fail(x, "an unterminated comment");
	}
}

/* A '…' string (backslashes escape when esc, as in E'…'), x->p on its quote. */
static bool
skip_string(struct lex *x, bool esc)
{
	for (x->p++; *x->p != '\0'; x->p++) {
		if (esc && *x->p == '\\' && x->p[1] != '\0')
			x->p++;
		else if (*x->p == '\'') {
			if (x->p[1] != '\'') {
				x->p++;
				return true;
			}
			x->p++;
		}
	}
	return fail(x, "an unterminated string");
}

/* A $tag$…$tag$ string, x->p on its first '$'; false when it is no dollar quote. */
static bool
skip_dollar(struct lex *x, bool *was)
{
	const char *q = x->p + 1, *end;
	char tag[NAME_MAX_LEN + 3];
	size_t n;

	while (*q != '$' && ident_char(*q))
		q++;
	*was = *q == '$' && (q == x->p + 1 || ident_start(x->p[1]));
	if (!*was)
		return true;
	if ((n = (size_t)(q - x->p) + 1) > sizeof(tag) - 1)
		return fail(x, "a dollar quote's tag is too long");
	memcpy(tag, x->p, n);
	tag[n] = '\0';
	if ((end = strstr(q + 1, tag)) == NULL)
		return fail(x, "an unterminated dollar-quoted string");
	x->p = end + n;
	return true;
}

/* A name, folded to lower case unless quoted, into out; false past NAME_MAX_LEN. */
static bool
read_name(struct lex *x, char *out)
{
	size_t n = 0;

	if (*x->p == '"') {
		for (x->p++; *x->p != '\0'; x->p++) {
			if (*x->p == '"' && x->p[1] != '"')
				break;
			if (*x->p == '"')
				x->p++;
			if (n == NAME_MAX_LEN)
				return fail(x, "a name is too long");
			out[n++] = *x->p;
		}
		if (*x->p != '"')
			return fail(x, "an unterminated quoted name");
		x->p++;
	} else
		for (; ident_char(*x->p); x->p++) {
			if (n == NAME_MAX_LEN)
				return fail(x, "a name is too long");
			out[n++] = (char)tolower((unsigned char)*x->p);
		}
	out[n] = '\0';
	return true;
}

/* What a name may be: never another schema's or a catalog's. */
static bool
check_name(struct lex *x, const char *name)
{
	size_t i;

	if (strncmp(name, "pg_", 3) == 0)
		return fail(x, "%s: the system catalogs and pg_ functions are not "
		    "available to hunting", name);
	for (i = 0; i < x->nschemas; i++)
		if (strcmp(name, x->schemas[i]) == 0)
			return fail(x, "schema %s is not available to hunting: only the views "
			    "of docs/hunting.md are", name);
	if (x->first && strcmp(name, "select") != 0 && strcmp(name, "with") != 0 &&
	    strcmp(name, "values") != 0)
		return fail(x, "%s: only a read-only SELECT is allowed", name);
	return true;
}

/* One punctuation character; a "(" after a name makes that name a call. */
static bool
punct(struct lex *x)
{
	char c = *x->p++;

	if (x->ended)
		return fail(x, "give one statement only");
	if (x->first)
		return fail(x, "only a read-only SELECT is allowed");
	if (c == ';') {
		x->ended = true;
		return true;
	}
	/* A name after WITH [RECURSIVE] or AS is a CTE's or an alias's, and its "(" a
	 * list of column names, not a call. */
	if (c == '(' && (strcmp(x->prev2, "with") == 0 ||
	    strcmp(x->prev2, "recursive") == 0 || strcmp(x->prev2, "as") == 0))
		x->depth++;
	else if (c == '(') {
		if (x->prev[0] != '\0' && !listed(functions, x->prev) &&
		    !listed(keywords, x->prev))
			return fail(x, "function %s is not allowed in hunting (see "
			    "docs/hunting.md for those that are)", x->prev);
		x->depth++;
	} else if (c == ')' && --x->depth < 0)
		return fail(x, "a ')' closes nothing");
	return true;
}

/* The next token; false with x->why set on a refusal. */
static bool
token(struct lex *x)
{
	char name[NAME_MAX_LEN + 1];
	bool was, r;

	if (*x->p == '\'' || ((*x->p == 'e' || *x->p == 'E') && x->p[1] == '\'')) {
		if (x->first || x->ended)
			return fail(x, "only one read-only SELECT is allowed");
		was = *x->p != '\'';
		x->p += was;
		x->prev[0] = x->prev2[0] = '\0';
		return skip_string(x, was);
	}
	if (*x->p == '$') {
		if (!skip_dollar(x, &was))
			return false;
		if (was) {
			x->prev[0] = x->prev2[0] = '\0';
			return !x->first && !x->ended ? true :
			    fail(x, "only one read-only SELECT is allowed");
		}
		return fail(x, "parameters ($1) are not taken");
	}
	if (ident_start(*x->p) || *x->p == '"') {
		if (x->ended)
			return fail(x, "give one statement only");
		if (!read_name(x, name) || !check_name(x, name))
			return false;
		x->first = false;
		memcpy(x->prev2, x->prev, sizeof(x->prev2));
		snprintf(x->prev, sizeof(x->prev), "%s", name);
		return true;
	}
	if (isdigit((unsigned char)*x->p)) {
		while (isalnum((unsigned char)*x->p) || *x->p == '.')
			x->p++;
		x->prev[0] = x->prev2[0] = '\0';
		return true;
	}
	r = punct(x);
	x->prev[0] = x->prev2[0] = '\0';
	return r;
}

/* Reads the whole query: true when it may run, else x->why says why not. The text up
 * to *end (a trailing ';' and what follows left out) is what runs. */
static bool
guard(struct lex *x, const char *sql, size_t *end)
{
	x->p = sql;
	x->first = true;
	*end = strlen(sql);
	for (;;) {
		if (!skip_space(x))
			return false;
		if (*x->p == '\0')
			break;
		if (*x->p == ';' && !x->ended)
			*end = (size_t)(x->p - sql);
		if (!token(x))
			return false;
	}
	if (x->first)
		return fail(x, "the query is empty");
	if (x->depth != 0)
		return fail(x, "a '(' is not closed");
	return true;
}

/* ---------------------------------------------------------------- running it */

static int
hunt_fail(PGconn *db, const PGresult *res, const struct hunt_query *q, struct qerr *e)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (state != NULL && strcmp(state, "57014") == 0)
		return qerr_set(e, QERR_INVALID, "query", "query stopped: it ran longer "
		    "than %d ms (simplify it, or add a LIMIT)", q->timeout_ms);
	if (state != NULL && strcmp(state, "25006") == 0)
		return qerr_set(e, QERR_INVALID, "query", "query refused: only a read-only "
		    "SELECT is allowed");
	if (state != NULL && state[0] == '0' && state[1] == '8')
		return qerr_set(e, QERR_TRANSIENT, NULL, "hunting: the database is "
		    "away: %s", PQerrorMessage(db));
	return qerr_set(e, QERR_INVALID, "query", "query refused: %s",
	    msg != NULL ? msg : PQerrorMessage(db));
}

/* Every schema of the database but the views', for the lexer to refuse. */
static int
load_schemas(PGconn *db, char ***out, size_t *n, struct qerr *e)
{
	PGresult *res = PQexec(db, "SELECT nspname FROM pg_namespace WHERE nspname <> "
	    "'hunting'");
	int i, rows;

	*out = NULL;
	*n = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return qerr_set(e, QERR_TRANSIENT, NULL, "hunting: %s", PQerrorMessage(db));
	}
	rows = PQntuples(res);
	if (rows > 0 && (*out = calloc((size_t)rows, sizeof(**out))) == NULL) {
		PQclear(res);
		return pg_nomem(e);
	}
	for (i = 0; i < rows; i++) {
		if (((*out)[i] = strdup(PQgetvalue(res, i, 0))) == NULL) {
			PQclear(res);
			return pg_nomem(e);
		}
		*n = (size_t)i + 1;
	}
	PQclear(res);
	return 0;
}

static void
schemas_free(char **s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(s[i]);
	free(s);
}

/* Opens the transaction the query runs in: read only, bounded, views only. */
static int
begin_hunt(PGconn *db, const struct hunt_query *q, struct qerr *e)
{
	char sql[300];
	PGresult *res;
	int ok;

	/* Strings as the lexer read them: a backslash is no escape in '…'. */
	snprintf(sql, sizeof(sql), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
	    " SET LOCAL statement_timeout = %d; SET LOCAL lock_timeout = %d;"
	    " SET LOCAL search_path = hunting;"
	    " SET LOCAL standard_conforming_strings = on", q->timeout_ms, q->timeout_ms);
	res = PQexec(db, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	return ok ? 0 : qerr_set(e, QERR_TRANSIENT, NULL, "hunting: %s",
	    PQerrorMessage(db));
}

static json_t *
value(const PGresult *res, int row, int col, size_t *bytes)
{
	const char *t = PQgetvalue(res, row, col);
	json_t *v;

	if (PQgetisnull(res, row, col)) {
		*bytes += 4;
		return json_null();
	}
	*bytes += (size_t)PQgetlength(res, row, col) + 2;
	switch (PQftype(res, col)) {
	case 20: case 21: case 23:	/* int8, int2, int4 */
		return json_integer(strtoll(t, NULL, 10));
	case 700: case 701: case 1700:	/* float4, float8, numeric */
		return json_real(strtod(t, NULL));
	case 16:			/* bool */
		return json_boolean(t[0] == 't');
	default:
		v = json_string(t);
		return v ? v : json_string("(not UTF-8 text)");
	}
}

/* Reads the rows one at a time into ans, up to the caps, then drains the rest. */
static int
read_rows(PGconn *db, const struct hunt_query *q, json_t *ans, struct qerr *e)
{
	json_t *cols = json_array(), *rows = json_array(), *row;
	bool truncated = false, named = false;
	size_t bytes = 0;
	int i, nrows = 0, r = 0;
	PGresult *res;

	json_object_set_new(ans, "columns", cols);
	json_object_set_new(ans, "rows", rows);
	while ((res = PQgetResult(db)) != NULL) {
		if (PQresultStatus(res) == PGRES_SINGLE_TUPLE && r == 0) {
			for (i = 0; !named && i < PQnfields(res); i++)
				json_array_append_new(cols, json_string(PQfname(res, i)));
			named = true;
			if (nrows == q->limit || bytes > q->max_bytes)
				truncated = true;
			else {
				row = json_array();
				for (i = 0; i < PQnfields(res); i++)
					json_array_append_new(row, value(res, 0, i, &bytes));
				json_array_append_new(rows, row);
				nrows++;
			}
		} else if (PQresultStatus(res) == PGRES_TUPLES_OK && !named) {
			for (i = 0; i < PQnfields(res); i++)
				json_array_append_new(cols, json_string(PQfname(res, i)));
			named = true;
		} else if (PQresultStatus(res) != PGRES_TUPLES_OK &&
		    PQresultStatus(res) != PGRES_SINGLE_TUPLE && r == 0)
			r = hunt_fail(db, res, q, e);
		PQclear(res);
	}
	json_object_set_new(ans, "truncated", json_boolean(truncated));
	return r;
}

/* The guarded query under LIMIT (one row past the cap tells it was truncated). */
static char *
wrapped(const char *sql, size_t len, int limit)
{
	char *out = NULL;

	if (asprintf(&out, "SELECT * FROM (%.*s\n) AS hunt LIMIT %d", (int)len, sql,
	    limit + 1) < 0)
		return NULL;
	return out;
}

static int
run(PGconn *db, const char *sql, size_t len, const struct hunt_query *q, char **out,
    struct qerr *e)
{
	char *text = wrapped(sql, len, q->limit);
	json_t *ans = json_object();
	int r;

	if (text == NULL || ans == NULL) {
		r = pg_nomem(e);
		goto out;
	}
	if ((r = begin_hunt(db, q, e)) != 0)
		goto out;
	if (!PQsendQueryParams(db, text, 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(db)) {
		r = qerr_set(e, QERR_TRANSIENT, NULL, "hunting: %s", PQerrorMessage(db));
		goto out;
	}
	if ((r = read_rows(db, q, ans, e)) == 0 &&
	    (*out = json_dumps(ans, JSON_COMPACT)) == NULL)
		r = pg_nomem(e);
out:
	PQclear(PQexec(db, "ROLLBACK"));
	json_decref(ans);
	free(text);
	return r;
}

int
pg_hunt(const char *location, const struct hunt_query *q, char **out, struct qerr *e)
{
	struct lex x;
	PGconn *db = NULL;
	char **schemas = NULL;
	size_t nschemas = 0, end;
	int r;

	*out = NULL;
	memset(&x, 0, sizeof(x));
	if (q->sql == NULL || strlen(q->sql) > SQL_MAX)
		return qerr_set(e, QERR_INVALID, "query", "query must be at most %d bytes",
		    SQL_MAX);
	if ((db = PQconnectdb(location)) == NULL)
		return pg_nomem(e);
	if (PQstatus(db) != CONNECTION_OK) {
		r = qerr_set(e, QERR_TRANSIENT, NULL, "hunting: cannot reach the "
		    "database: %s", PQerrorMessage(db));
		goto out;
	}
	if ((r = load_schemas(db, &schemas, &nschemas, e)) != 0)
		goto out;
	x.schemas = schemas;
	x.nschemas = nschemas;
	if (!guard(&x, q->sql, &end)) {
		r = qerr_set(e, QERR_INVALID, "query", "query refused: %s", x.why);
		goto out;
	}
	r = run(db, q->sql, end, q, out, e);
out:
	schemas_free(schemas, nschemas);
	PQfinish(db);
	return r;
}
