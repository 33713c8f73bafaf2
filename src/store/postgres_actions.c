/*
 * Actions and their steps in the PostgreSQL store. Every node claims from the one
 * steps table: the claim takes its row FOR UPDATE SKIP LOCKED, under the lease rules
 * of the SQLite store (owner = the node's id), so a node that dies loses its leases
 * when they expire and the others take its running steps again. A transaction that
 * queues work NOTIFYs the nodes waiting for it (store_wait_work).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"
#include "shared.h"
#include "strjson.h"

static const char sql_insert[] =
    "INSERT INTO actions (" ACT_COLS ")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
    " $16, $17, $18, $19, $20, $21, $22, $23)";
static const char sql_get[] = "SELECT " ACT_COLS " FROM actions WHERE id = $1";
static const char sql_steps[] =
    "SELECT " STEP_COLS " FROM steps WHERE action_id = $1 ORDER BY id";
static const char sql_update[] =
    "UPDATE actions SET status = $2, message = $3, cancel_requested = $4,"
    " updated_at = $5, finished_at = $6, decided_by = $7, decided_by_id = $8,"
    " decided_by_kind = $9 WHERE id = $1";
static const char sql_open[] =
    "SELECT id FROM actions"
    " WHERE status IN ('pending_approval', 'queued', 'running') ORDER BY id";
static const char sql_step_insert[] =
    "INSERT INTO steps (" STEP_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7,"
    " $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";
/* One statement, so that the pick and the take cannot be separated; SKIP LOCKED
 * lets claims on other connections pass a row one of them is taking. */
static const char sql_step_claim[] =
    "UPDATE steps SET status = 'running', lease_owner = $1,"
    " lease_expires = $2::bigint + $3::bigint, attempts = attempts + 1,"
    " started_at = CASE WHEN started_at = 0 THEN $2::bigint ELSE started_at END,"
    " updated_at = $2::bigint"
    " WHERE id = (SELECT s.id FROM steps s"
    "  JOIN actions a ON a.id = s.action_id"
    "  WHERE s.status IN ('queued', 'retry_wait', 'running')"
    "  AND (s.status = 'queued'"
    "   OR (s.status = 'retry_wait' AND s.not_before <= $2::bigint)"
    "   OR (s.status = 'running' AND s.lease_expires < $2::bigint))"
    "  AND a.status IN " ACT_RUNNABLE
    "  AND s.system NOT IN (SELECT jsonb_array_elements_text($4::jsonb))"
    "  AND ($5::text IS NULL OR (s.system = $5::text AND s.type = $6::text))"
    "  ORDER BY s.created_at, s.id LIMIT 1 FOR UPDATE OF s SKIP LOCKED)"
    " RETURNING " STEP_COLS;
static const char sql_step_update[] =
    "UPDATE steps SET status = $2, attempts = $3, not_before = $4,"
    " lease_owner = $5, lease_expires = $6, request_id = $7, error_code = $8,"
    " message = $9, updated_at = $10, started_at = $11, finished_at = $12,"
    " waits = $13, wait_ms = $14 WHERE id = $1";
static const char sql_step_renew[] =
    "UPDATE steps SET lease_expires = $2 WHERE status = 'running' AND lease_owner = $1";
/* Still running (it may have acted), but owned by nobody: claimable at once. */
static const char sql_step_release[] =
    "UPDATE steps SET lease_owner = NULL, lease_expires = 0"
    " WHERE status = 'running' AND lease_owner = $1";
/* Mirrors the claim's action filter, or a step of a cancelled action would be
 * reported due forever; greatest(…, 1) keeps "due now" apart from "none" (NULL). */
static const char sql_step_due[] =
    "SELECT (SELECT greatest(min(s.not_before), 1) FROM steps s"
    "   JOIN actions a ON a.id = s.action_id"
    "   WHERE s.status = 'retry_wait' AND a.status IN " ACT_RUNNABLE
    "   HAVING count(*) > 0),"
    " (SELECT greatest(min(s.lease_expires), 1) FROM steps s"
    "   JOIN actions a ON a.id = s.action_id"
    "   WHERE s.status = 'running' AND a.status IN " ACT_RUNNABLE
    "   HAVING count(*) > 0)";

/*
 * action_list: a term per filter, as one statement; parameters keep their numbers
 * whatever is present ($1 status … $7 undo_of), and a filter that is absent still
 * names its parameter (a constant the planner folds), so that every one has a type.
 */
static const char *const action_list_terms[][2] = {
	{ " AND status = $1::text", " AND $1::text IS NULL" },
	{ " AND type = $2::text", " AND $2::text IS NULL" },
	{ " AND identity_id = $3::text", " AND $3::text IS NULL" },
	{ " AND created_at >= $4::bigint", " AND $4::bigint = 0" },
	{ " AND id < $5::text", " AND $5::text IS NULL" },
	{ " AND undo_of = $7::text", " AND $7::text IS NULL" },
};

#define NTERMS	(sizeof(action_list_terms) / sizeof(action_list_terms[0]))

static int
read_action(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct action *a = out;
	int bad = 0;

	memset(a, 0, sizeof(*a));
	a->id = pg_dup(res, row, 0, &bad);
	a->identity_id = pg_dup(res, row, 3, &bad);
	a->account_id = pg_dup(res, row, 4, &bad);
	a->requested_by = pg_dup(res, row, 5, &bad);
	a->source = pg_dup(res, row, 6, &bad);
	a->reason = pg_dup(res, row, 7, &bad);
	a->params = pg_dup(res, row, 8, &bad);
	a->message = pg_dup(res, row, 9, &bad);
	a->cancel_requested = pg_bool(res, row, 10);
	a->created_at = pg_i64(res, row, 11);
	a->updated_at = pg_i64(res, row, 12);
	a->finished_at = pg_i64(res, row, 13);
	a->requested_by_id = pg_dup(res, row, 14, &bad);
	a->undo_of = pg_dup(res, row, 15, &bad);
	a->approval_rule = pg_dup(res, row, 16, &bad);
	a->decided_by = pg_dup(res, row, 17, &bad);
	a->approval_expires = pg_i64(res, row, 18);
	a->alert_id = pg_dup(res, row, 19, &bad);
	a->requested_by_kind = pg_dup(res, row, 20, &bad);
	a->decided_by_id = pg_dup(res, row, 21, &bad);
	a->decided_by_kind = pg_dup(res, row, 22, &bad);
	if (bad) {
		action_clear(a);
		return pg_nomem(e);
	}
	if (action_type_parse(pg_str(res, row, 1), &a->type) != 0 ||
	    action_status_parse(pg_str(res, row, 2), &a->status) != 0) {
		qerr_set(e, QERR_STORE, NULL,
		    "action %s: unknown type \"%s\" or status \"%s\"", a->id,
		    pg_str(res, row, 1), pg_str(res, row, 2));
		action_clear(a);
		return QERR_STORE;
	}
	return 0;
}

static int
read_step(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct step *s = out;
	int bad = 0;

	memset(s, 0, sizeof(*s));
	s->id = pg_dup(res, row, 0, &bad);
	s->action_id = pg_dup(res, row, 1, &bad);
	s->account_id = pg_dup(res, row, 2, &bad);
	s->system = pg_dup(res, row, 3, &bad);
	s->account_ref = pg_dup(res, row, 4, &bad);
	s->account_name = pg_dup(res, row, 5, &bad);
	s->params = pg_dup(res, row, 8, &bad);
	s->attempts = (int)pg_i64(res, row, 9);
	s->not_before = pg_i64(res, row, 10);
	s->lease_owner = pg_dup(res, row, 11, &bad);
	s->lease_expires = pg_i64(res, row, 12);
	s->request_id = pg_dup(res, row, 13, &bad);
	s->error_code = pg_dup(res, row, 14, &bad);
	s->message = pg_dup(res, row, 15, &bad);
	s->created_at = pg_i64(res, row, 16);
	s->updated_at = pg_i64(res, row, 17);
	s->started_at = pg_i64(res, row, 18);
	s->finished_at = pg_i64(res, row, 19);
	s->waits = (int)pg_i64(res, row, 20);
	s->wait_ms = pg_i64(res, row, 21);
	if (bad) {
		step_clear(s);
		return pg_nomem(e);
	}
	if (action_type_parse(pg_str(res, row, 6), &s->type) != 0 ||
	    step_status_parse(pg_str(res, row, 7), &s->status) != 0) {
		qerr_set(e, QERR_STORE, NULL,
		    "step %s: unknown type \"%s\" or status \"%s\"", s->id,
		    pg_str(res, row, 6), pg_str(res, row, 7));
		step_clear(s);
		return QERR_STORE;
	}
	return 0;
}

static int
insert_step(struct store_conn *c, const char *action_id, const struct step *s,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	int r;

	if ((r = store_check_enums(s->type, step_status_name(s->status), e)) != 0)
		return r;
	pa_text(&a, s->id);
	pa_text(&a, action_id);
	pa_text(&a, s->account_id);
	pa_text(&a, s->system);
	pa_text(&a, s->account_ref);
	pa_text(&a, s->account_name);
	pa_text(&a, action_type_name(s->type));
	pa_text(&a, step_status_name(s->status));
	pa_text(&a, s->params);
	pa_i64(&a, s->attempts);
	pa_i64(&a, s->not_before);
	pa_text(&a, s->lease_owner);
	pa_i64(&a, s->lease_expires);
	pa_text(&a, s->request_id);
	pa_text(&a, s->error_code);
	pa_text(&a, s->message);
	pa_i64(&a, s->created_at);
	pa_i64(&a, s->updated_at);
	pa_i64(&a, s->started_at);
	pa_i64(&a, s->finished_at);
	pa_i64(&a, s->waits);
	pa_i64(&a, s->wait_ms);
	return pg_run(c, sql_step_insert, &a, "step insert", NULL, e);
}

int
pg_action_insert(struct store_conn *c, const struct action *act, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	size_t i;
	int r;

	if ((r = store_check_enums(act->type, action_status_name(act->status), e)) != 0)
		return r;
	pa_text(&a, act->id);
	pa_text(&a, action_type_name(act->type));
	pa_text(&a, action_status_name(act->status));
	pa_text(&a, act->identity_id);
	pa_text(&a, act->account_id);
	pa_text(&a, act->requested_by);
	pa_text(&a, act->source);
	pa_text(&a, act->reason);
	pa_text(&a, act->params);
	pa_text(&a, act->message);
	pa_bool(&a, act->cancel_requested);
	pa_i64(&a, act->created_at);
	pa_i64(&a, act->updated_at);
	pa_i64(&a, act->finished_at);
	pa_text(&a, act->requested_by_id);
	pa_text(&a, act->undo_of);
	pa_text(&a, act->approval_rule);
	pa_text(&a, act->decided_by);
	pa_i64(&a, act->approval_expires);
	pa_text(&a, act->alert_id);
	pa_text(&a, act->requested_by_kind);
	pa_text(&a, act->decided_by_id);
	pa_text(&a, act->decided_by_kind);
	if ((r = pg_run(c, sql_insert, &a, "action insert", NULL, e)) != 0)
		return r;
	/* Steps belong to the action being inserted, whatever their action_id says. */
	for (i = 0; i < act->nsteps && r == 0; i++)
		r = insert_step(c, act->id, &act->steps[i], e);
	if (r == 0 && act->nsteps > 0 && act->status == ACTION_QUEUED)
		r = pg_notify_work(c, e);
	return r;
}

int
pg_action_get(struct store_conn *c, const char *id, struct action *out,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	int r;

	memset(out, 0, sizeof(*out));
	pa_text(&a, id);
	r = pg_get_one(c, sql_get, &a, read_action, out, "action get", "action", e);
	if (r == 0)
		r = pg_load_rows(c, sql_steps, id, read_step, sizeof(*out->steps),
		    &out->steps, &out->nsteps, "action steps", e);
	if (r != 0)
		action_clear(out);
	return r;
}

/* The statement for the filters present in f. */
static void
action_list_sql(const struct action_filter *f, char *sql, size_t size)
{
	const bool on[NTERMS] = { f->status != NULL, f->type != NULL,
	    f->identity_id != NULL, f->since != 0, f->before_id != NULL,
	    f->undo_of != NULL };
	size_t i;
	int n;

	n = snprintf(sql, size, "SELECT " ACT_COLS " FROM actions WHERE true");
	for (i = 0; i < NTERMS; i++)
		n += snprintf(sql + n, size - (size_t)n, "%s", action_list_terms[i][!on[i]]);
	snprintf(sql + n, size - (size_t)n, " ORDER BY id DESC LIMIT $6::bigint");
}

int
pg_action_list(struct store_conn *c, const struct action_filter *f,
    store_action_cb cb, void *arg, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	struct action *rows = NULL;
	enum action_status as;
	enum action_type at;
	PGresult *res = NULL;
	char sql[1024];
	size_t n = 0, i;
	int r;

	if (f->limit < 1 || f->limit > PG_LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    PG_LIST_MAX);
	if (f->status != NULL && action_status_parse(f->status, &as) != 0)
		return qerr_set(e, QERR_INVALID, "status", "unknown action status");
	if (f->type != NULL && action_type_parse(f->type, &at) != 0)
		return qerr_set(e, QERR_INVALID, "type", "unknown action type");
	action_list_sql(f, sql, sizeof(sql));
	pa_text(&a, f->status);
	pa_text(&a, f->type);
	pa_text(&a, f->identity_id);
	pa_i64(&a, f->since);
	pa_text(&a, f->before_id);
	pa_i64(&a, f->limit);
	pa_text(&a, f->undo_of);
	if ((r = pg_query(c, sql, &a, "action list", &res, e)) != 0)
		return r;
	if ((rows = calloc((size_t)PQntuples(res) + 1, sizeof(*rows))) == NULL) {
		r = pg_nomem(e);
		goto out;
	}
	for (n = 0; n < (size_t)PQntuples(res); n++)
		if ((r = read_action(res, (int)n, &rows[n], e)) != 0)
			goto out;
	for (i = 0; i < n && r == 0; i++)
		r = cb(&rows[i], arg);
out:
	PQclear(res);
	for (i = 0; rows != NULL && i < n; i++)
		action_clear(&rows[i]);
	free(rows);
	return r;
}

int
pg_action_update(struct store_conn *c, const struct action *act, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	int r;

	if ((r = store_check_enums(act->type, action_status_name(act->status), e)) != 0)
		return r;
	pa_text(&a, act->id);
	pa_text(&a, action_status_name(act->status));
	pa_text(&a, act->message);
	pa_bool(&a, act->cancel_requested);
	pa_i64(&a, act->updated_at);
	pa_i64(&a, act->finished_at);
	pa_text(&a, act->decided_by);
	pa_text(&a, act->decided_by_id);
	pa_text(&a, act->decided_by_kind);
	if ((r = pg_run_one(c, sql_update, &a, "action update", "action", e)) != 0)
		return r;
	/* An approval queues the steps that waited for it. */
	return act->status == ACTION_QUEUED ? pg_notify_work(c, e) : 0;
}

int
pg_action_open_ids(struct store_conn *c, char ***ids, size_t *n, struct qerr *e)
{
	PGresult *res = NULL;
	char **v = NULL;
	size_t cnt, i;
	int r, bad = 0;

	*ids = NULL;
	*n = 0;
	if ((r = pg_query(c, sql_open, NULL, "open actions", &res, e)) != 0)
		return r;
	cnt = (size_t)PQntuples(res);
	if (cnt > 0 && (v = calloc(cnt, sizeof(*v))) == NULL)
		r = pg_nomem(e);
	for (i = 0; i < cnt && r == 0; i++)
		if ((v[i] = pg_dup(res, (int)i, 0, &bad)) == NULL)
			r = pg_nomem(e);
	PQclear(res);
	if (r != 0) {
		for (i = 0; v != NULL && i < cnt; i++)
			free(v[i]);
		free(v);
		return r;
	}
	*ids = v;
	*n = cnt;
	return 0;
}

int
pg_step_claim(struct store_conn *c, const struct step_claim *cl, struct step *out,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	char *skip = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if (cl->owner == NULL || cl->lease_ms <= 0)
		return qerr_set(e, QERR_INVALID, "owner",
		    "a claim needs an owner and a positive lease");
	if ((r = strjson_dump((char *const *)cl->skip_systems, cl->nskip, "skip_systems",
	    "system name", &skip, e)) != 0)
		return r;
	pa_text(&a, cl->owner);
	pa_i64(&a, cl->now);
	pa_i64(&a, cl->lease_ms);
	pa_text(&a, skip);
	pa_text(&a, cl->only_system);
	pa_text(&a, action_type_name(cl->only_type));
	if ((r = pg_write(c, sql_step_claim, &a, "step claim", &res, e)) != 0)
		goto out;
	if (PQntuples(res) == 0)
		r = qerr_set(e, QERR_NOT_FOUND, NULL, "no step is claimable");
	else
		r = read_step(res, 0, out, e);
out:
	PQclear(res);
	free(skip);
	return r;
}

int
pg_step_update(struct store_conn *c, const struct step *s, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	int r;

	if ((r = store_check_enums(s->type, step_status_name(s->status), e)) != 0)
		return r;
	pa_text(&a, s->id);
	pa_text(&a, step_status_name(s->status));
	pa_i64(&a, s->attempts);
	pa_i64(&a, s->not_before);
	pa_text(&a, s->lease_owner);
	pa_i64(&a, s->lease_expires);
	pa_text(&a, s->request_id);
	pa_text(&a, s->error_code);
	pa_text(&a, s->message);
	pa_i64(&a, s->updated_at);
	pa_i64(&a, s->started_at);
	pa_i64(&a, s->finished_at);
	pa_i64(&a, s->waits);
	pa_i64(&a, s->wait_ms);
	if ((r = pg_run_one(c, sql_step_update, &a, "step update", "step", e)) != 0)
		return r;
	return s->status == STEP_QUEUED ? pg_notify_work(c, e) : 0;
}

int
pg_step_renew(struct store_conn *c, const char *owner, int64_t expires,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, owner);
	pa_i64(&a, expires);
	return pg_run(c, sql_step_renew, &a, "step renew", NULL, e);
}

int
pg_step_release(struct store_conn *c, const char *owner, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	long n = 0;
	int r;

	pa_text(&a, owner);
	if ((r = pg_run(c, sql_step_release, &a, "step release", &n, e)) != 0)
		return r;
	return n > 0 ? pg_notify_work(c, e) : 0;
}

int
pg_step_next_due(struct store_conn *c, int64_t *when, struct qerr *e)
{
	PGresult *res = NULL;
	int64_t w = 0, v;
	int r, i;

	*when = 0;
	if ((r = pg_query(c, sql_step_due, NULL, "step next due", &res, e)) != 0)
		return r;
	for (i = 0; i < 2; i++) {
		if (PQgetisnull(res, 0, i))
			continue;
		v = pg_i64(res, 0, i);
		if (w == 0 || v < w)
			w = v;
	}
	PQclear(res);
	*when = w;
	return 0;
}
