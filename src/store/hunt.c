/*
 * Advanced hunting: one SELECT a person writes, run over documented views of quell's
 * data. The query runs on a connection of its own, opened read-only, with extension
 * loading off and SQLite's defensive mode on; the views are TEMP views made before an
 * authorizer is installed that allows nothing but SELECT, reads of those views (and
 * of their tables through them), recursive CTEs and an allow-list of pure functions.
 * So writes, ATTACH, PRAGMA, load_extension and anything that touches a file are
 * refused by the database itself when the query is prepared. A progress handler stops
 * a query that runs past its time limit; rows and answer size are capped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "hunt.h"

#define SQL_MAX 10000

#define ISO(col) "strftime('%Y-%m-%dT%H:%M:%fZ', " col " / 1000.0, 'unixepoch')"

/* The documented views (docs/hunting.md); their column names are the contract. */
static const char views_sql[] =
    "CREATE TEMP VIEW IdentityInfo AS SELECT i.id AS identity_id, i.display_name,"
    " i.tags, " ISO("i.created_at") " AS created_at,"
    " (SELECT count(*) FROM main.accounts a WHERE a.identity_id = i.id) AS accounts"
    " FROM main.identities i;"
    "CREATE TEMP VIEW IdentityAccounts AS SELECT a.id AS account_id, a.identity_id,"
    " a.system, a.kind, a.external_id, a.sid, a.dn, a.username, a.upn,"
    " a.display_name, a.email, a.state, a.synced, a.risk, a.link_rule, a.linked_by,"
    " CASE WHEN a.linked_at > 0 THEN " ISO("a.linked_at") " END AS linked_at,"
    " CASE WHEN a.state_read_at > 0 THEN " ISO("a.state_read_at") " END"
    " AS state_read_at FROM main.accounts a;"
    "CREATE TEMP VIEW Alerts AS SELECT l.id AS alert_id, l.source,"
    " l.external_id AS source_alert_id, " ISO("l.time") " AS time, l.title,"
    " l.category, l.severity, l.confidence, " ISO("l.received_at") " AS received_at"
    " FROM main.alerts l;"
    "CREATE TEMP VIEW AlertEntities AS SELECT n.alert_id, n.seq, n.kind AS entity_type,"
    " n.id_type, n.value, n.identity_id, n.account_id, n.resolution"
    " FROM main.alert_entities n;"
    "CREATE TEMP VIEW Actions AS SELECT t.id AS action_id, t.type, t.status,"
    " t.identity_id, t.account_id, t.requested_by, t.source, t.alert_id, t.reason,"
    " t.message, t.undo_of, t.approval_rule, t.decided_by,"
    " " ISO("t.created_at") " AS created_at,"
    " CASE WHEN t.finished_at > 0 THEN " ISO("t.finished_at") " END AS finished_at"
    " FROM main.actions t;"
    "CREATE TEMP VIEW ActionSteps AS SELECT s.id AS step_id, s.action_id,"
    " t.identity_id, s.account_id, s.system, s.account_name, s.type, s.status,"
    " s.attempts, s.request_id, s.error_code, s.message,"
    " CASE WHEN s.started_at > 0 THEN " ISO("s.started_at") " END AS started_at,"
    " CASE WHEN s.finished_at > 0 THEN " ISO("s.finished_at") " END AS finished_at"
    " FROM main.steps s JOIN main.actions t ON t.id = s.action_id;"
    "CREATE TEMP VIEW AuditEvents AS SELECT u.seq, " ISO("u.time") " AS time, u.actor,"
    " u.event, u.action_id, u.step_id, u.identity_id, u.detail, u.actor_kind,"
    " u.actor_id, u.client FROM main.audit u;";

static const char *const views[] = {
	"IdentityInfo", "IdentityAccounts", "Alerts", "AlertEntities", "Actions",
	"ActionSteps", "AuditEvents", NULL,
};

static const char *const tables[] = {
	"identities", "accounts", "alerts", "alert_entities", "actions", "steps", "audit",
	NULL,
};

/* Deterministic functions that read nothing but their arguments. Not here on
 * purpose: load_extension, readfile/writefile, randomblob/zeroblob (memory), the
 * json_each/json_tree tables, and every sqlite_* introspection function. */
static const char *const functions[] = {
	"abs", "avg", "count", "group_concat", "string_agg", "max", "min", "sum", "total",
	"coalesce", "ifnull", "iif", "nullif", "length", "lower", "upper", "substr",
	"substring", "trim", "ltrim", "rtrim", "replace", "instr", "like", "glob", "printf",
	"format", "round", "typeof", "hex", "quote", "char", "unicode", "date", "time",
	"datetime", "julianday", "strftime", "unixepoch", "json", "json_extract",
	"json_array_length", "json_type", "json_valid", "->", "->>", "row_number", "rank",
	"dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value",
	"last_value", "nth_value", "sign", "concat", "concat_ws", NULL,
};

struct hunt {
	struct timespec deadline;
	bool timed_out;
	char why[200];		/* what the authorizer refused first */
};

static bool
listed(const char *const *list, const char *s)
{
	size_t i;

	for (i = 0; s != NULL && list[i] != NULL; i++)
		if (strcasecmp(list[i], s) == 0)
			return true;
	return false;
}

static int refuse(struct hunt *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Remembers the first refusal, which is the one a person needs to read. */
static int
refuse(struct hunt *h, const char *fmt, ...)
{
	va_list ap;

	if (h->why[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(h->why, sizeof(h->why), fmt, ap);
		va_end(ap);
	}
	return SQLITE_DENY;
}

static int
authorize(void *arg, int code, const char *a1, const char *a2, const char *db,
    const char *inner)
{
	struct hunt *h = arg;

	switch (code) {
	case SQLITE_SELECT:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_READ:
		/* A common table expression is read with no database name: it holds
		 * only what the query itself selected. */
		if (db == NULL || listed(views, a1) ||
		    (listed(views, inner) && listed(tables, a1)))
			return SQLITE_OK;
		/* count(*) over a view is answered from the table behind it, read with
		 * no column at all: it tells the number of rows, which the view shows. */
		if (a2 != NULL && a2[0] == '\0' && listed(tables, a1))
			return SQLITE_OK;
		return refuse(h, "'%s' is not one of the hunting views (IdentityInfo, "
		    "IdentityAccounts, Alerts, AlertEntities, Actions, ActionSteps, "
		    "AuditEvents)", a1 ? a1 : "?");
	case SQLITE_FUNCTION:
		if (listed(functions, a2))
			return SQLITE_OK;
		return refuse(h, "function %s() is not allowed in hunting queries",
		    a2 ? a2 : "?");
	case SQLITE_PRAGMA:
		return refuse(h, "PRAGMA %s is not allowed: hunting is read-only",
		    a1 ? a1 : "");
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
		return refuse(h, "%s is not allowed: hunting reads quell's views only",
		    code == SQLITE_ATTACH ? "ATTACH" : "DETACH");
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
		return refuse(h, "writing to %s is not allowed: hunting is read-only",
		    a1 ? a1 : "?");
	default:
		return refuse(h, "%s", "only SELECT is allowed: hunting is read-only");
	}
}

static int
progress(void *arg)
{
	struct hunt *h = arg;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > h->deadline.tv_sec || (now.tv_sec == h->deadline.tv_sec &&
	    now.tv_nsec >= h->deadline.tv_nsec)) {
		h->timed_out = true;
		return 1;
	}
	return 0;
}

struct hunt_conn {
	sqlite3 *db;
	struct hunt h;		/* the authorizer's and progress handler's, per query */
};

/* A read-only connection with the views in place and every door but SELECT shut. */
static int
open_hunt(const char *location, struct hunt *h, sqlite3 **out, struct qerr *e)
{
	sqlite3 *db = NULL;
	int rc;

	*out = NULL;
	rc = sqlite3_open_v2(location, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
	    SQLITE_OPEN_EXRESCODE, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	if (sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL) ||
	    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) ||
	    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) ||
	    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL))
		goto fail;
	sqlite3_busy_timeout(db, 5000);
	sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
	sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1 << 20);
	sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 64 * 1024);
	sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 200);
	sqlite3_limit(db, SQLITE_LIMIT_COMPOUND_SELECT, 50);
	if ((rc = sqlite3_exec(db, views_sql, NULL, NULL, NULL)) != SQLITE_OK)
		goto fail;
	sqlite3_set_authorizer(db, authorize, h);
	sqlite3_progress_handler(db, 1000, progress, h);
	*out = db;
	return 0;
fail:
	qerr_set(e, QERR_STORE, NULL, "hunting: cannot open %s: %s", location,
	    db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_close_v2(db);
	return QERR_STORE;
}

/* Everything after the statement must be blanks, semicolons or comments. */
static bool
only_one(const char *tail)
{
	while (*tail != '\0') {
		if (strchr(" \t\r\n;", *tail) != NULL)
			tail++;
		else if (tail[0] == '-' && tail[1] == '-')
			tail += strcspn(tail, "\n");
		else if (tail[0] == '/' && tail[1] == '*') {
			if ((tail = strstr(tail + 2, "*/")) == NULL)
				return true;
			tail += 2;
		} else
			return false;
	}
	return true;
}

static json_t *
value(sqlite3_stmt *st, int i, size_t *bytes)
{
	const char *t;
	json_t *v;
	int n;

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		*bytes += 20;
		return json_integer(sqlite3_column_int64(st, i));
	case SQLITE_FLOAT:
		*bytes += 24;
		return json_real(sqlite3_column_double(st, i));
	case SQLITE_TEXT:
		t = (const char *)sqlite3_column_text(st, i);
		n = sqlite3_column_bytes(st, i);
		*bytes += (size_t)n + 2;
		/* Text that is not UTF-8 cannot be JSON; say so rather than mangle it. */
		v = json_stringn(t, (size_t)n);
		return v ? v : json_string("(not UTF-8 text)");
	case SQLITE_BLOB:
		*bytes += 24;
		return json_sprintf("(blob of %d bytes)", sqlite3_column_bytes(st, i));
	default:
		*bytes += 4;
		return json_null();
	}
}

static int
prepare_query(sqlite3 *db, struct hunt *h, const char *sql, sqlite3_stmt **st,
    struct qerr *e)
{
	const char *tail = NULL;
	int rc;

	rc = sqlite3_prepare_v3(db, sql, -1, 0, st, &tail);
	if (rc != SQLITE_OK) {
		if ((rc & 0xff) == SQLITE_AUTH && h->why[0] != '\0')
			return qerr_set(e, QERR_INVALID, "query", "query refused: %s", h->why);
		if (h->timed_out)
			return qerr_set(e, QERR_INVALID, "query", "query stopped: it ran past "
			    "its time limit");
		return qerr_set(e, QERR_INVALID, "query", "query refused: %s",
		    sqlite3_errmsg(db));
	}
	if (*st == NULL)
		return qerr_set(e, QERR_INVALID, "query", "query is empty");
	if (!only_one(tail))
		return qerr_set(e, QERR_INVALID, "query", "give one statement only");
	if (!sqlite3_stmt_readonly(*st))
		return qerr_set(e, QERR_INVALID, "query", "query refused: only a read-only "
		    "SELECT is allowed");
	return 0;
}

static int
run_query(sqlite3 *db, struct hunt *h, sqlite3_stmt *st, const struct hunt_query *q,
    json_t *ans, struct qerr *e)
{
	json_t *cols = json_array(), *rows = json_array(), *row;
	size_t bytes = 0;
	int i, n = sqlite3_column_count(st), rc = SQLITE_DONE, nrows = 0;
	bool truncated = false;

	json_object_set_new(ans, "columns", cols);
	json_object_set_new(ans, "rows", rows);
	for (i = 0; i < n; i++)
		json_array_append_new(cols, json_string(sqlite3_column_name(st, i)));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (nrows == q->limit || bytes > q->max_bytes) {
			truncated = true;
			break;
		}
		row = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(row, value(st, i, &bytes));
		json_array_append_new(rows, row);
		nrows++;
	}
	json_object_set_new(ans, "truncated", json_boolean(truncated));
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	if (h->timed_out)
		return qerr_set(e, QERR_INVALID, "query", "query stopped: it ran longer "
		    "than %d ms (simplify it, or add a LIMIT)", q->timeout_ms);
	return qerr_set(e, QERR_INVALID, "query", "query failed: %s", sqlite3_errmsg(db));
}

int
sqlite_hunt_open(const char *location, struct hunt_conn **out, struct qerr *e)
{
	struct hunt_conn *c;
	int r;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if ((r = open_hunt(location, &c->h, &c->db, e)) != 0) {
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

void
sqlite_hunt_close(struct hunt_conn *c)
{
	if (c == NULL)
		return;
	sqlite3_close_v2(c->db);
	free(c);
}

int
sqlite_hunt_run(struct hunt_conn *c, const struct hunt_query *q, char **out,
    struct qerr *e)
{
	struct hunt *h = &c->h;
	sqlite3_stmt *st = NULL;
	json_t *ans = NULL;
	int r;

	*out = NULL;
	memset(h, 0, sizeof(*h));
	if (q->sql == NULL || strlen(q->sql) > SQL_MAX)
		return qerr_set(e, QERR_INVALID, "query", "query must be at most %d bytes",
		    SQL_MAX);
	clock_deadline(CLOCK_MONOTONIC, q->timeout_ms, &h->deadline);
	if ((r = prepare_query(c->db, h, q->sql, &st, e)) != 0)
		goto out;
	if ((ans = json_object()) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((r = run_query(c->db, h, st, q, ans, e)) != 0)
		goto out;
	if ((*out = json_dumps(ans, JSON_COMPACT)) == NULL)
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
out:
	json_decref(ans);
	sqlite3_finalize(st);
	return r;
}

int
sqlite_hunt(const char *location, const struct hunt_query *q, char **out,
    struct qerr *e)
{
	struct hunt_conn *c = NULL;
	int r;

	*out = NULL;
	if ((r = sqlite_hunt_open(location, &c, e)) != 0)
		return r;
	r = sqlite_hunt_run(c, q, out, e);
	sqlite_hunt_close(c);
	return r;
}
