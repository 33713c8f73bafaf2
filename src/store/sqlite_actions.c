/*
 * Actions and their steps in the SQLite store: what the engine runs thousands of
 * times a second. Statements in action_stmt[] by the numbers below.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "shared.h"
#include "sqlite_int.h"
#include "strjson.h"

enum {
	AC_INSERT,
	AC_GET,
	AC_STEPS,
	AC_UPDATE,
	AC_OPEN,
	AC_STEP_INSERT,
	AC_STEP_CLAIM,
	AC_STEP_UPDATE,
	AC_STEP_RENEW,
	AC_STEP_RELEASE,
	AC_STEP_DUE,
	AC_COUNT
};

_Static_assert(AC_COUNT <= ACTION_STMT_MAX, "action_stmt[] is too small");

static const char *const action_sql[AC_COUNT] = {
	[AC_INSERT] =
	    "INSERT INTO actions (" ACT_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
	    " ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
	[AC_GET] = "SELECT " ACT_COLS " FROM actions WHERE id = ?1",
	[AC_STEPS] =
	    "SELECT " STEP_COLS " FROM steps WHERE action_id = ?1 ORDER BY id",
	[AC_UPDATE] =
	    "UPDATE actions SET status = ?2, message = ?3, cancel_requested = ?4,"
	    " updated_at = ?5, finished_at = ?6, decided_by = ?7, decided_by_id = ?8,"
	    " decided_by_kind = ?9 WHERE id = ?1",
	[AC_OPEN] =
	    "SELECT id FROM actions"
	    " WHERE status IN ('pending_approval', 'queued', 'running') ORDER BY id",
	[AC_STEP_INSERT] =
	    "INSERT INTO steps (" STEP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
	    " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
	/* One statement, so that the pick and the take cannot be separated. */
	[AC_STEP_CLAIM] =
	    "UPDATE steps SET status = 'running', lease_owner = ?1,"
	    " lease_expires = ?2 + ?3, attempts = attempts + 1,"
	    " started_at = CASE WHEN started_at = 0 THEN ?2 ELSE started_at END,"
	    " updated_at = ?2"
	    " WHERE id = (SELECT s.id FROM steps s INDEXED BY steps_claimable"
	    "  JOIN actions a ON a.id = s.action_id"
	    "  WHERE s.status IN ('queued', 'retry_wait', 'running')"
	    "  AND (s.status = 'queued'"
	    "   OR (s.status = 'retry_wait' AND s.not_before <= ?2)"
	    "   OR (s.status = 'running' AND s.lease_expires < ?2))"
	    "  AND a.status IN " ACT_RUNNABLE
	    "  AND s.system NOT IN (SELECT value FROM json_each(?4))"
	    "  AND (?5 IS NULL OR (s.system = ?5 AND s.type = ?6))"
	    "  ORDER BY s.created_at, s.id LIMIT 1)"
	    " RETURNING " STEP_COLS,
	[AC_STEP_UPDATE] =
	    "UPDATE steps SET status = ?2, attempts = ?3, not_before = ?4,"
	    " lease_owner = ?5, lease_expires = ?6, request_id = ?7, error_code = ?8,"
	    " message = ?9, updated_at = ?10, started_at = ?11, finished_at = ?12,"
	    " waits = ?13, wait_ms = ?14 WHERE id = ?1",
	[AC_STEP_RENEW] =
	    "UPDATE steps SET lease_expires = ?2"
	    " WHERE status = 'running' AND lease_owner = ?1",
	/* Still running (it may have acted), but owned by nobody: claimable at once. */
	[AC_STEP_RELEASE] =
	    "UPDATE steps SET lease_owner = NULL, lease_expires = 0"
	    " WHERE status = 'running' AND lease_owner = ?1",
	/* Mirrors the claim's action filter, or a step of a cancelled action would be
	 * reported due forever; max(…, 1) keeps "due now" apart from "none" (0). */
	[AC_STEP_DUE] =
	    "SELECT (SELECT max(min(s.not_before), 1) FROM steps s"
	    "   JOIN actions a ON a.id = s.action_id"
	    "   WHERE s.status = 'retry_wait' AND a.status IN " ACT_RUNNABLE "),"
	    " (SELECT max(min(s.lease_expires), 1) FROM steps s"
	    "   JOIN actions a ON a.id = s.action_id"
	    "   WHERE s.status = 'running' AND a.status IN " ACT_RUNNABLE ")",
};

/*
 * action_list: one statement per combination of filters present, so that each can
 * use its index (status, identity_id, id range) instead of a "?n IS NULL OR" scan.
 * Parameters keep their numbers in every variant.
 */
enum {
	AF_STATUS = 1 << 0,
	AF_TYPE = 1 << 1,
	AF_IDENTITY = 1 << 2,
	AF_SINCE = 1 << 3,
	AF_BEFORE = 1 << 4,
	AF_UNDO = 1 << 5,
	AF_COUNT = 1 << 6
};

static const char *const action_list_terms[] = {
	" AND status = ?1",
	" AND type = ?2",
	" AND identity_id = ?3",
	" AND created_at >= ?4",
	" AND id < ?5",
	" AND undo_of = ?7",
};

_Static_assert(AF_COUNT <= ACTION_LIST_MAX, "action_list[] is too small");

static int
act_stmt(struct store_conn *c, int id, sqlite3_stmt **out, struct qerr *e)
{
	return sq_prepare(c, &c->action_stmt[id], action_sql[id], out, e);
}

static int
read_action(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct action *a = out;
	int bad = 0;

	memset(a, 0, sizeof(*a));
	a->id = sq_col_dup(st, 0, &bad);
	a->identity_id = sq_col_dup(st, 3, &bad);
	a->account_id = sq_col_dup(st, 4, &bad);
	a->requested_by = sq_col_dup(st, 5, &bad);
	a->source = sq_col_dup(st, 6, &bad);
	a->reason = sq_col_dup(st, 7, &bad);
	a->params = sq_col_dup(st, 8, &bad);
	a->message = sq_col_dup(st, 9, &bad);
	a->cancel_requested = sqlite3_column_int(st, 10) != 0;
	a->created_at = sqlite3_column_int64(st, 11);
	a->updated_at = sqlite3_column_int64(st, 12);
	a->finished_at = sqlite3_column_int64(st, 13);
	a->requested_by_id = sq_col_dup(st, 14, &bad);
	a->undo_of = sq_col_dup(st, 15, &bad);
	a->approval_rule = sq_col_dup(st, 16, &bad);
	a->decided_by = sq_col_dup(st, 17, &bad);
	a->approval_expires = sqlite3_column_int64(st, 18);
	a->alert_id = sq_col_dup(st, 19, &bad);
	a->requested_by_kind = sq_col_dup(st, 20, &bad);
	a->decided_by_id = sq_col_dup(st, 21, &bad);
	a->decided_by_kind = sq_col_dup(st, 22, &bad);
	if (bad) {
		action_clear(a);
		return sq_nomem(e);
	}
	if (action_type_parse(sq_col_str(st, 1), &a->type) != 0 ||
	    action_status_parse(sq_col_str(st, 2), &a->status) != 0) {
		qerr_set(e, QERR_STORE, NULL,
		    "action %s: unknown type \"%s\" or status \"%s\"", a->id,
		    sq_col_str(st, 1), sq_col_str(st, 2));
		action_clear(a);
		return QERR_STORE;
	}
	return 0;
}

static int
read_step(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct step *s = out;
	int bad = 0;

	memset(s, 0, sizeof(*s));
	s->id = sq_col_dup(st, 0, &bad);
	s->action_id = sq_col_dup(st, 1, &bad);
	s->account_id = sq_col_dup(st, 2, &bad);
	s->system = sq_col_dup(st, 3, &bad);
	s->account_ref = sq_col_dup(st, 4, &bad);
	s->account_name = sq_col_dup(st, 5, &bad);
	s->params = sq_col_dup(st, 8, &bad);
	s->attempts = sqlite3_column_int(st, 9);
	s->not_before = sqlite3_column_int64(st, 10);
	s->lease_owner = sq_col_dup(st, 11, &bad);
	s->lease_expires = sqlite3_column_int64(st, 12);
	s->request_id = sq_col_dup(st, 13, &bad);
	s->error_code = sq_col_dup(st, 14, &bad);
	s->message = sq_col_dup(st, 15, &bad);
	s->created_at = sqlite3_column_int64(st, 16);
	s->updated_at = sqlite3_column_int64(st, 17);
	s->started_at = sqlite3_column_int64(st, 18);
	s->finished_at = sqlite3_column_int64(st, 19);
	s->waits = sqlite3_column_int(st, 20);
	s->wait_ms = sqlite3_column_int64(st, 21);
	if (bad) {
		step_clear(s);
		return sq_nomem(e);
	}
	if (action_type_parse(sq_col_str(st, 6), &s->type) != 0 ||
	    step_status_parse(sq_col_str(st, 7), &s->status) != 0) {
		qerr_set(e, QERR_STORE, NULL,
		    "step %s: unknown type \"%s\" or status \"%s\"", s->id,
		    sq_col_str(st, 6), sq_col_str(st, 7));
		step_clear(s);
		return QERR_STORE;
	}
	return 0;
}

static int
insert_step(struct store_conn *c, sqlite3_stmt *st, const char *action_id,
    const struct step *s, struct qerr *e)
{
	int r;

	if ((r = store_check_enums(s->type, step_status_name(s->status), e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, s->id) ||
	    sq_bind_text(st, 2, action_id) || sq_bind_text(st, 3, s->account_id) ||
	    sq_bind_text(st, 4, s->system) || sq_bind_text(st, 5, s->account_ref) ||
	    sq_bind_text(st, 6, s->account_name) ||
	    sq_bind_text(st, 7, action_type_name(s->type)) ||
	    sq_bind_text(st, 8, step_status_name(s->status)) ||
	    sq_bind_text(st, 9, s->params) || sqlite3_bind_int(st, 10, s->attempts) ||
	    sqlite3_bind_int64(st, 11, s->not_before) ||
	    sq_bind_text(st, 12, s->lease_owner) ||
	    sqlite3_bind_int64(st, 13, s->lease_expires) ||
	    sq_bind_text(st, 14, s->request_id) ||
	    sq_bind_text(st, 15, s->error_code) || sq_bind_text(st, 16, s->message) ||
	    sqlite3_bind_int64(st, 17, s->created_at) ||
	    sqlite3_bind_int64(st, 18, s->updated_at) ||
	    sqlite3_bind_int64(st, 19, s->started_at) ||
	    sqlite3_bind_int64(st, 20, s->finished_at) ||
	    sqlite3_bind_int(st, 21, s->waits) || sqlite3_bind_int64(st, 22, s->wait_ms),
	    "step insert", e);
}

int
sq_action_insert(struct store_conn *c, const struct action *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int r;

	if ((r = store_check_enums(a->type, action_status_name(a->status), e)) != 0)
		return r;
	if ((r = act_stmt(c, AC_INSERT, &st, e)) != 0)
		return r;
	r = sq_run(c, st, sq_bind_text(st, 1, a->id) ||
	    sq_bind_text(st, 2, action_type_name(a->type)) ||
	    sq_bind_text(st, 3, action_status_name(a->status)) ||
	    sq_bind_text(st, 4, a->identity_id) || sq_bind_text(st, 5, a->account_id) ||
	    sq_bind_text(st, 6, a->requested_by) || sq_bind_text(st, 7, a->source) ||
	    sq_bind_text(st, 8, a->reason) || sq_bind_text(st, 9, a->params) ||
	    sq_bind_text(st, 10, a->message) ||
	    sqlite3_bind_int(st, 11, a->cancel_requested) ||
	    sqlite3_bind_int64(st, 12, a->created_at) ||
	    sqlite3_bind_int64(st, 13, a->updated_at) ||
	    sqlite3_bind_int64(st, 14, a->finished_at) ||
	    sq_bind_text(st, 15, a->requested_by_id) ||
	    sq_bind_text(st, 16, a->undo_of) ||
	    sq_bind_text(st, 17, a->approval_rule) ||
	    sq_bind_text(st, 18, a->decided_by) ||
	    sqlite3_bind_int64(st, 19, a->approval_expires) ||
	    sq_bind_text(st, 20, a->alert_id) ||
	    sq_bind_text(st, 21, a->requested_by_kind) ||
	    sq_bind_text(st, 22, a->decided_by_id) ||
	    sq_bind_text(st, 23, a->decided_by_kind), "action insert", e);
	if (r != 0)
		return r;
	if ((r = act_stmt(c, AC_STEP_INSERT, &st, e)) != 0)
		return r;
	/* Steps belong to the action being inserted, whatever their action_id says. */
	for (i = 0; i < a->nsteps && r == 0; i++)
		r = insert_step(c, st, a->id, &a->steps[i], e);
	sq_done(st);
	return r;
}

/* The steps of action id into a, in id order. */
static int
load_steps(struct store_conn *c, const char *id, struct action *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = act_stmt(c, AC_STEPS, &st, e)) != 0)
		return r;
	return sq_load_rows(c, st, id, read_step, sizeof(*a->steps), &a->steps,
	    &a->nsteps, "action steps", e);
}

int
sq_action_get(struct store_conn *c, const char *id, struct action *out,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = act_stmt(c, AC_GET, &st, e)) != 0)
		return r;
	r = sq_get_one(c, st, id, NULL, read_action, out, "action get", "action", e);
	if (r == 0)
		r = load_steps(c, id, out, e);
	if (r != 0)
		action_clear(out);
	return r;
}

static int
action_list_stmt(struct store_conn *c, unsigned mask, sqlite3_stmt **out,
    struct qerr *e)
{
	char sql[1024];
	size_t i;
	int n;

	if (c->action_list[mask] != NULL)
		return sq_prepare(c, &c->action_list[mask], NULL, out, e);
	n = snprintf(sql, sizeof(sql), "SELECT " ACT_COLS " FROM actions WHERE 1");
	for (i = 0; i < sizeof(action_list_terms) / sizeof(action_list_terms[0]); i++)
		if (mask & (1u << i))
			n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s",
			    action_list_terms[i]);
	snprintf(sql + n, sizeof(sql) - (size_t)n, " ORDER BY id DESC LIMIT ?6");
	return sq_prepare(c, &c->action_list[mask], sql, out, e);
}

int
sq_action_list(struct store_conn *c, const struct action_filter *f,
    store_action_cb cb, void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct action *rows = NULL;
	enum action_status as;
	enum action_type at;
	unsigned mask = 0;
	size_t n = 0, i;
	int r = QERR_INTERNAL, rc;

	if (f->limit < 1 || f->limit > LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    LIST_MAX);
	if (f->status != NULL && action_status_parse(f->status, &as) != 0)
		return qerr_set(e, QERR_INVALID, "status", "unknown action status");
	if (f->type != NULL && action_type_parse(f->type, &at) != 0)
		return qerr_set(e, QERR_INVALID, "type", "unknown action type");
	mask |= f->status != NULL ? AF_STATUS : 0;
	mask |= f->type != NULL ? AF_TYPE : 0;
	mask |= f->identity_id != NULL ? AF_IDENTITY : 0;
	mask |= f->since != 0 ? AF_SINCE : 0;
	mask |= f->before_id != NULL ? AF_BEFORE : 0;
	mask |= f->undo_of != NULL ? AF_UNDO : 0;
	if ((rows = calloc((size_t)f->limit, sizeof(*rows))) == NULL)
		return sq_nomem(e);
	if ((r = action_list_stmt(c, mask, &st, e)) != 0)
		goto out;
	if (sq_bind_text(st, 1, f->status) || sq_bind_text(st, 2, f->type) ||
	    sq_bind_text(st, 3, f->identity_id) || sqlite3_bind_int64(st, 4, f->since) ||
	    sq_bind_text(st, 5, f->before_id) || sqlite3_bind_int(st, 6, f->limit) ||
	    ((mask & AF_UNDO) && sq_bind_text(st, 7, f->undo_of))) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "action list", e);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = read_action(st, &rows[n], e)) != 0)
			goto out;
		n++;
	}
	if (rc != SQLITE_DONE) {
		r = sq_db_fail(c, rc, "action list", e);
		goto out;
	}
	sq_done(st);
	st = NULL;
	for (i = 0; i < n; i++)
		if ((r = cb(&rows[i], arg)) != 0)
			goto out;
	r = 0;
out:
	sq_done(st);
	for (i = 0; i < n; i++)
		action_clear(&rows[i]);
	free(rows);
	return r;
}

int
sq_action_update(struct store_conn *c, const struct action *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_check_enums(a->type, action_status_name(a->status), e)) != 0)
		return r;
	if ((r = act_stmt(c, AC_UPDATE, &st, e)) != 0)
		return r;
	return sq_run_one(c, st, sq_bind_text(st, 1, a->id) ||
	    sq_bind_text(st, 2, action_status_name(a->status)) ||
	    sq_bind_text(st, 3, a->message) ||
	    sqlite3_bind_int(st, 4, a->cancel_requested) ||
	    sqlite3_bind_int64(st, 5, a->updated_at) ||
	    sqlite3_bind_int64(st, 6, a->finished_at) ||
	    sq_bind_text(st, 7, a->decided_by) ||
	    sq_bind_text(st, 8, a->decided_by_id) ||
	    sq_bind_text(st, 9, a->decided_by_kind), "action update", "action", e);
}

int
sq_action_open_ids(struct store_conn *c, char ***ids, size_t *n, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char **v = NULL, **grown;
	size_t cnt = 0, cap = 0, i;
	int r = QERR_INTERNAL, rc, bad = 0;

	*ids = NULL;
	*n = 0;
	if ((r = act_stmt(c, AC_OPEN, &st, e)) != 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			if ((grown = realloc(v, cap * sizeof(*v))) == NULL) {
				r = sq_nomem(e);
				goto out;
			}
			v = grown;
		}
		if ((v[cnt] = sq_col_dup(st, 0, &bad)) == NULL) {
			r = sq_nomem(e);
			goto out;
		}
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		r = sq_db_fail(c, rc, "open actions", e);
		goto out;
	}
	*ids = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
	r = 0;
out:
	sq_done(st);
	for (i = 0; i < cnt; i++)
		free(v[i]);
	free(v);
	return r;
}

int
sq_step_claim(struct store_conn *c, const struct step_claim *cl, struct step *out,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char *skip = NULL;
	int r = QERR_INTERNAL, rc;

	memset(out, 0, sizeof(*out));
	if (cl->owner == NULL || cl->lease_ms <= 0)
		return qerr_set(e, QERR_INVALID, "owner",
		    "a claim needs an owner and a positive lease");
	/* skip_systems as a JSON array, for json_each() in the claim statement. */
	if (cl->nskip > 0 && (r = strjson_dump((char *const *)cl->skip_systems, cl->nskip,
	    "skip_systems", "system name", &skip, e)) != 0)
		return r;
	if ((r = act_stmt(c, AC_STEP_CLAIM, &st, e)) != 0)
		goto out;
	if (sq_bind_text(st, 1, cl->owner) || sqlite3_bind_int64(st, 2, cl->now) ||
	    sqlite3_bind_int64(st, 3, cl->lease_ms) ||
	    sq_bind_text(st, 4, skip != NULL ? skip : "[]") ||
	    sq_bind_text(st, 5, cl->only_system) ||
	    sq_bind_text(st, 6, action_type_name(cl->only_type))) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "step claim", e);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ?
		    qerr_set(e, QERR_NOT_FOUND, NULL, "no step is claimable") :
		    sq_db_fail(c, rc, "step claim", e);
		goto out;
	}
	if ((r = read_step(st, out, e)) != 0)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		step_clear(out);
		r = sq_db_fail(c, rc, "step claim", e);
		goto out;
	}
	r = 0;
out:
	sq_done(st);
	free(skip);
	return r;
}

int
sq_step_update(struct store_conn *c, const struct step *s, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_check_enums(s->type, step_status_name(s->status), e)) != 0)
		return r;
	if ((r = act_stmt(c, AC_STEP_UPDATE, &st, e)) != 0)
		return r;
	return sq_run_one(c, st, sq_bind_text(st, 1, s->id) ||
	    sq_bind_text(st, 2, step_status_name(s->status)) ||
	    sqlite3_bind_int(st, 3, s->attempts) ||
	    sqlite3_bind_int64(st, 4, s->not_before) ||
	    sq_bind_text(st, 5, s->lease_owner) ||
	    sqlite3_bind_int64(st, 6, s->lease_expires) ||
	    sq_bind_text(st, 7, s->request_id) || sq_bind_text(st, 8, s->error_code) ||
	    sq_bind_text(st, 9, s->message) ||
	    sqlite3_bind_int64(st, 10, s->updated_at) ||
	    sqlite3_bind_int64(st, 11, s->started_at) ||
	    sqlite3_bind_int64(st, 12, s->finished_at) ||
	    sqlite3_bind_int(st, 13, s->waits) || sqlite3_bind_int64(st, 14, s->wait_ms),
	    "step update", "step", e);
}

int
sq_step_renew(struct store_conn *c, const char *owner, int64_t expires,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = act_stmt(c, AC_STEP_RENEW, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, owner) ||
	    sqlite3_bind_int64(st, 2, expires), "step renew", e);
}

int
sq_step_release(struct store_conn *c, const char *owner, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = act_stmt(c, AC_STEP_RELEASE, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, owner), "step release", e);
}

int
sq_step_next_due(struct store_conn *c, int64_t *when, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int64_t w = 0, v;
	int r = QERR_INTERNAL, rc, i;

	*when = 0;
	if ((r = act_stmt(c, AC_STEP_DUE, &st, e)) != 0)
		return r;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = sq_db_fail(c, rc, "step next due", e);
		goto out;
	}
	for (i = 0; i < 2; i++) {
		if (sqlite3_column_type(st, i) == SQLITE_NULL)
			continue;
		v = sqlite3_column_int64(st, i);
		if (w == 0 || v < w)
			w = v;
	}
	*when = w;
	r = 0;
out:
	sq_done(st);
	return r;
}
