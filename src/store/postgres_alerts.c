/*
 * Alerts, the entities they name, and disruption decisions in the PostgreSQL store,
 * statement for statement as sqlite_alerts.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"

#define ALERT_COLS "id, source, external_id, time, title, category, severity, " \
	"confidence, received_at, received_us"
#define DEC_COLS "id, alert_id, identity_id, rule, outcome, detail, created_at"

static const char sql_alert_insert[] = "INSERT INTO alerts (" ALERT_COLS ")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
static const char sql_entity_insert[] = "INSERT INTO alert_entities (alert_id, seq,"
    " kind, id_type, value, identity_id, account_id, resolution)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
static const char sql_alert_get[] = "SELECT " ALERT_COLS " FROM alerts WHERE id = $1";
static const char sql_alert_find[] = "SELECT " ALERT_COLS " FROM alerts"
    " WHERE source = $1 AND external_id = $2";
static const char sql_entities[] = "SELECT kind, id_type, value, identity_id,"
    " account_id, resolution FROM alert_entities WHERE alert_id = $1 ORDER BY seq";
static const char sql_alert_list[] = "SELECT " ALERT_COLS " FROM alerts"
    " WHERE ($1::text IS NULL OR id < $1::text) AND ($3::text IS NULL OR source = $3::text)"
    " ORDER BY id DESC LIMIT $2::bigint";
/* The account lookups of an alert entity, by enum kind_match; at most 16 each. */
static const char *const sql_acc_find[] = {
	/* ASCII case folding, as UPNs are compared by every directory that has them. */
	[KIND_MATCH_UPN] = "SELECT " PG_ACC_COLS_X " FROM accounts"
	    " WHERE lower(upn) = lower($1) ORDER BY id LIMIT 16",
	[KIND_MATCH_SID] = "SELECT " PG_ACC_COLS_X " FROM accounts WHERE sid = $1"
	    " ORDER BY id LIMIT 16",
	[KIND_MATCH_EXTERNAL_ID] = "SELECT " PG_ACC_COLS_X " FROM accounts"
	    " WHERE external_id = $1 AND kind = $2 ORDER BY id LIMIT 16",
};
static const char sql_dec_insert[] = "INSERT INTO disruption_decisions (" DEC_COLS ")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)";
static const char sql_dec_by_alert[] = "SELECT " DEC_COLS " FROM disruption_decisions"
    " WHERE alert_id = $1 ORDER BY id LIMIT 1000";
static const char sql_dec_by_idn[] = "SELECT " DEC_COLS " FROM disruption_decisions"
    " WHERE identity_id = $1 ORDER BY id DESC LIMIT 1000";
static const char sql_dec_count[] = "SELECT count(*) FROM disruption_decisions"
    " WHERE outcome = $1 AND created_at >= $2";

int
pg_alert_insert(struct store_conn *c, const struct alert *al, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	const struct alert_entity *en;
	size_t i;
	int r;

	pa_text(&a, al->id);
	pa_text(&a, al->source);
	pa_text(&a, al->external_id);
	pa_i64(&a, al->time);
	pa_text(&a, al->title);
	pa_text(&a, al->category);
	pa_text(&a, alert_severity_name(al->severity));
	pa_i64(&a, al->confidence);
	pa_i64(&a, al->received_at);
	pa_i64(&a, al->received_us);
	r = pg_run(c, sql_alert_insert, &a, "alert insert", NULL, e);
	for (i = 0; i < al->nentities && r == 0; i++) {
		en = &al->entities[i];
		a.n = 0;
		pa_text(&a, al->id);
		pa_i64(&a, (int64_t)i);
		pa_text(&a, en->kind);
		pa_text(&a, en->id_type);
		pa_text(&a, en->value);
		pa_text(&a, en->identity_id);
		pa_text(&a, en->account_id);
		pa_text(&a, en->resolution);
		r = pg_run(c, sql_entity_insert, &a, "alert entity insert", NULL, e);
	}
	return r;
}

static int
read_alert(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct alert *a = out;
	int bad = 0;

	memset(a, 0, sizeof(*a));
	a->id = pg_dup(res, row, 0, &bad);
	a->source = pg_dup(res, row, 1, &bad);
	a->external_id = pg_dup(res, row, 2, &bad);
	a->time = pg_i64(res, row, 3);
	a->title = pg_dup(res, row, 4, &bad);
	a->category = pg_dup(res, row, 5, &bad);
	a->confidence = (int)pg_i64(res, row, 7);
	a->received_at = pg_i64(res, row, 8);
	a->received_us = pg_i64(res, row, 9);
	if (bad) {
		alert_clear(a);
		return pg_nomem(e);
	}
	if (alert_severity_parse(pg_str(res, row, 6), &a->severity) != 0) {
		qerr_set(e, QERR_STORE, NULL, "alert %s: unknown severity \"%s\"", a->id,
		    pg_str(res, row, 6));
		alert_clear(a);
		return QERR_STORE;
	}
	return 0;
}

static int
read_entity(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct alert_entity *en = out;
	int bad = 0;

	en->kind = pg_dup(res, row, 0, &bad);
	en->id_type = pg_dup(res, row, 1, &bad);
	en->value = pg_dup(res, row, 2, &bad);
	en->identity_id = pg_dup(res, row, 3, &bad);
	en->account_id = pg_dup(res, row, 4, &bad);
	en->resolution = pg_dup(res, row, 5, &bad);
	if (bad) {
		alert_entity_clear(en);
		return pg_nomem(e);
	}
	return 0;
}

/* One alert by sql bound to a, with its entities. */
static int
alert_one(struct store_conn *c, const char *sql, const struct pg_args *a,
    struct alert *out, struct qerr *e)
{
	int r;

	memset(out, 0, sizeof(*out));
	r = pg_get_one(c, sql, a, read_alert, out, "alert get", "alert", e);
	if (r == 0 && (r = pg_load_rows(c, sql_entities, out->id, read_entity,
	    sizeof(*out->entities), &out->entities, &out->nentities, "alert entities",
	    e)) != 0)
		alert_clear(out);
	return r;
}

int
pg_alert_get(struct store_conn *c, const char *id, struct alert *out, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, id);
	return alert_one(c, sql_alert_get, &a, out, e);
}

int
pg_alert_find(struct store_conn *c, const char *source, const char *external_id,
    struct alert *out, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, source);
	pa_text(&a, external_id);
	return alert_one(c, sql_alert_find, &a, out, e);
}

/*
 * The rows sql selects with a, each read into an element of size bytes by read_row
 * and handed to each (cb and arg of the caller's list, through call); clear undoes a
 * read element. The walk stops at the first nonzero result.
 */
static int
each_row(struct store_conn *c, const char *sql, const struct pg_args *a,
    pg_read_fn read_row, size_t size, void (*clear)(void *),
    int (*call)(void *row, void *cb, void *arg), void *cb, void *arg,
    const char *what, struct qerr *e)
{
	PGresult *res = NULL;
	char *rows = NULL;
	size_t n = 0, i, total;
	int r;

	if ((r = pg_query(c, sql, a, what, &res, e)) != 0)
		return r;
	total = (size_t)PQntuples(res);
	if ((rows = calloc(total + 1, size)) == NULL)
		r = pg_nomem(e);
	for (; r == 0 && n < total; n++)
		if ((r = read_row(res, (int)n, rows + n * size, e)) != 0)
			break;
	PQclear(res);
	for (i = 0; i < n && r == 0; i++)
		r = call(rows + i * size, cb, arg);
	for (i = 0; rows != NULL && i < n; i++)
		clear(rows + i * size);
	free(rows);
	return r;
}

static void
clear_alert(void *p)
{
	alert_clear(p);
}

static int
call_alert(void *row, void *cb, void *arg)
{
	store_alert_cb f;

	memcpy(&f, cb, sizeof(f));
	return f(row, arg);
}

int
pg_alert_list(struct store_conn *c, const struct alert_filter *f, store_alert_cb cb,
    void *arg, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	if (f->limit < 1 || f->limit > PG_LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    PG_LIST_MAX);
	pa_text(&a, f->before_id);
	pa_i64(&a, f->limit);
	pa_text(&a, f->source);
	return each_row(c, sql_alert_list, &a, read_alert, sizeof(struct alert),
	    clear_alert, call_alert, &cb, arg, "alert list", e);
}

static void
clear_account(void *p)
{
	account_clear(p);
}

static int
call_account(void *row, void *cb, void *arg)
{
	store_account_cb f;

	memcpy(&f, cb, sizeof(f));
	return f(row, arg);
}

/* Accounts an alert's account entity names: by UPN or SID (any system that has
 * them), or by the object id an account of one kind has there. */
int
pg_account_find(struct store_conn *c, enum kind_match match, const char *kind,
    const char *value, store_account_cb cb, void *arg, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	if (match != KIND_MATCH_UPN && match != KIND_MATCH_SID &&
	    match != KIND_MATCH_EXTERNAL_ID)
		return qerr_set(e, QERR_INVALID, "id_type", "unknown account id type");
	if (match == KIND_MATCH_EXTERNAL_ID && kind == NULL)
		return qerr_set(e, QERR_INVALID, "kind", "an object id needs its kind");
	pa_text(&a, value);
	if (match == KIND_MATCH_EXTERNAL_ID)
		pa_text(&a, kind);
	return each_row(c, sql_acc_find[match], &a, pg_read_account,
	    sizeof(struct account), clear_account, call_account, &cb, arg,
	    "account find", e);
}

int
pg_decision_insert(struct store_conn *c, const struct alert_decision *d,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, d->id);
	pa_text(&a, d->alert_id);
	pa_text(&a, d->identity_id);
	pa_text(&a, d->rule);
	pa_text(&a, d->outcome);
	pa_text(&a, d->detail);
	pa_i64(&a, d->created_at);
	return pg_run(c, sql_dec_insert, &a, "decision insert", NULL, e);
}

static int
read_decision(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct alert_decision *d = out;
	int bad = 0;

	memset(d, 0, sizeof(*d));
	d->id = pg_dup(res, row, 0, &bad);
	d->alert_id = pg_dup(res, row, 1, &bad);
	d->identity_id = pg_dup(res, row, 2, &bad);
	d->rule = pg_dup(res, row, 3, &bad);
	d->outcome = pg_dup(res, row, 4, &bad);
	d->detail = pg_dup(res, row, 5, &bad);
	d->created_at = pg_i64(res, row, 6);
	if (bad) {
		alert_decision_clear(d);
		return pg_nomem(e);
	}
	return 0;
}

static void
clear_decision(void *p)
{
	alert_decision_clear(p);
}

static int
call_decision(void *row, void *cb, void *arg)
{
	store_decision_cb f;

	memcpy(&f, cb, sizeof(f));
	return f(row, arg);
}

/* An alert's decisions oldest first, or an identity's newest first (at most 1000). */
int
pg_decision_list(struct store_conn *c, const char *alert_id, const char *identity_id,
    store_decision_cb cb, void *arg, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	if ((alert_id == NULL) == (identity_id == NULL))
		return qerr_set(e, QERR_INVALID, NULL, "decision list: one filter");
	pa_text(&a, alert_id ? alert_id : identity_id);
	return each_row(c, alert_id ? sql_dec_by_alert : sql_dec_by_idn, &a,
	    read_decision, sizeof(struct alert_decision), clear_decision, call_decision,
	    &cb, arg, "decision list", e);
}

int
pg_decision_count(struct store_conn *c, const char *outcome, int64_t since, long *n,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	int r;

	*n = 0;
	pa_text(&a, outcome);
	pa_i64(&a, since);
	if ((r = pg_query(c, sql_dec_count, &a, "decision count", &res, e)) != 0)
		return r;
	*n = (long)pg_i64(res, 0, 0);
	PQclear(res);
	return 0;
}
