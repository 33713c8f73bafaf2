/*
 * Alerts, the entities they name, and disruption decisions. Their statements are
 * kept in alert_stmt[] by the numbers below, like the engine's in stmt[].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sqlite_int.h"

#define ALERT_COLS "id, source, external_id, time, title, category, severity, " \
	"confidence, received_at, received_us"
#define DEC_COLS "id, alert_id, identity_id, rule, outcome, detail, created_at"
#define ACCOUNT_MATCH_MAX 16

enum {
	AS_ALERT_INSERT,
	AS_ENTITY_INSERT,
	AS_ALERT_GET,
	AS_ALERT_FIND,
	AS_ENTITIES,
	AS_ALERT_LIST,
	AS_ACC_UPN,
	AS_ACC_SID,
	AS_ACC_EXT,
	AS_DEC_INSERT,
	AS_DEC_BY_ALERT,
	AS_DEC_BY_IDN,
	AS_DEC_COUNT,
	AS_COUNT
};

_Static_assert(AS_COUNT <= ALERT_STMT_MAX, "alert_stmt[] is too small");

static const char *const alert_sql[AS_COUNT] = {
	[AS_ALERT_INSERT] = "INSERT INTO alerts (" ALERT_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[AS_ENTITY_INSERT] = "INSERT INTO alert_entities (alert_id, seq, kind, id_type,"
	    " value, identity_id, account_id, resolution)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[AS_ALERT_GET] = "SELECT " ALERT_COLS " FROM alerts WHERE id = ?1",
	[AS_ALERT_FIND] = "SELECT " ALERT_COLS " FROM alerts"
	    " WHERE source = ?1 AND external_id = ?2",
	[AS_ENTITIES] = "SELECT kind, id_type, value, identity_id, account_id, resolution"
	    " FROM alert_entities WHERE alert_id = ?1 ORDER BY seq",
	[AS_ALERT_LIST] = "SELECT " ALERT_COLS " FROM alerts"
	    " WHERE (?1 IS NULL OR id < ?1) AND (?3 IS NULL OR source = ?3)"
	    " ORDER BY id DESC LIMIT ?2",
	/* ASCII case folding, as UPNs are compared by every directory that has them. */
	[AS_ACC_UPN] = "SELECT " ACC_COLS_X " FROM accounts WHERE lower(upn) = lower(?1)"
	    " ORDER BY id LIMIT 16",
	[AS_ACC_SID] = "SELECT " ACC_COLS_X " FROM accounts WHERE sid = ?1"
	    " ORDER BY id LIMIT 16",
	[AS_ACC_EXT] = "SELECT " ACC_COLS_X " FROM accounts"
	    " WHERE external_id = ?1 AND kind = ?2 ORDER BY id LIMIT 16",
	[AS_DEC_INSERT] = "INSERT INTO disruption_decisions (" DEC_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[AS_DEC_BY_ALERT] = "SELECT " DEC_COLS " FROM disruption_decisions"
	    " WHERE alert_id = ?1 ORDER BY id LIMIT 1000",
	[AS_DEC_BY_IDN] = "SELECT " DEC_COLS " FROM disruption_decisions"
	    " WHERE identity_id = ?1 ORDER BY id DESC LIMIT 1000",
	[AS_DEC_COUNT] = "SELECT count(*) FROM disruption_decisions"
	    " WHERE outcome = ?1 AND created_at >= ?2",
};

static int
astmt(struct store_conn *c, int id, sqlite3_stmt **out, struct qerr *e)
{
	return sq_prepare(c, &c->alert_stmt[id], alert_sql[id], out, e);
}

static int
insert_entity(struct store_conn *c, sqlite3_stmt *st, const char *alert_id, size_t seq,
    const struct alert_entity *en, struct qerr *e)
{
	return sq_run(c, st, sq_bind_text(st, 1, alert_id) ||
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq) ||
	    sq_bind_text(st, 3, en->kind) || sq_bind_text(st, 4, en->id_type) ||
	    sq_bind_text(st, 5, en->value) || sq_bind_text(st, 6, en->identity_id) ||
	    sq_bind_text(st, 7, en->account_id) ||
	    sq_bind_text(st, 8, en->resolution), "alert entity insert", e);
}

int
sq_alert_insert(struct store_conn *c, const struct alert *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int r;

	if ((r = astmt(c, AS_ALERT_INSERT, &st, e)) != 0)
		return r;
	r = sq_run(c, st, sq_bind_text(st, 1, a->id) ||
	    sq_bind_text(st, 2, a->source) || sq_bind_text(st, 3, a->external_id) ||
	    sqlite3_bind_int64(st, 4, a->time) || sq_bind_text(st, 5, a->title) ||
	    sq_bind_text(st, 6, a->category) ||
	    sq_bind_text(st, 7, alert_severity_name(a->severity)) ||
	    sqlite3_bind_int(st, 8, a->confidence) ||
	    sqlite3_bind_int64(st, 9, a->received_at) ||
	    sqlite3_bind_int64(st, 10, a->received_us), "alert insert", e);
	if (r != 0 || (r = astmt(c, AS_ENTITY_INSERT, &st, e)) != 0)
		return r;
	for (i = 0; i < a->nentities && r == 0; i++)
		r = insert_entity(c, st, a->id, i, &a->entities[i], e);
	sq_done(st);
	return r;
}

static int
read_alert(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct alert *a = out;
	int bad = 0;

	memset(a, 0, sizeof(*a));
	a->id = sq_col_dup(st, 0, &bad);
	a->source = sq_col_dup(st, 1, &bad);
	a->external_id = sq_col_dup(st, 2, &bad);
	a->time = sqlite3_column_int64(st, 3);
	a->title = sq_col_dup(st, 4, &bad);
	a->category = sq_col_dup(st, 5, &bad);
	a->confidence = sqlite3_column_int(st, 7);
	a->received_at = sqlite3_column_int64(st, 8);
	a->received_us = sqlite3_column_int64(st, 9);
	if (bad) {
		alert_clear(a);
		return sq_nomem(e);
	}
	if (alert_severity_parse(sq_col_str(st, 6), &a->severity) != 0) {
		qerr_set(e, QERR_STORE, NULL, "alert %s: unknown severity \"%s\"", a->id,
		    sq_col_str(st, 6));
		alert_clear(a);
		return QERR_STORE;
	}
	return 0;
}

static int
read_entity(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct alert_entity *en = out;
	int bad = 0;

	en->kind = sq_col_dup(st, 0, &bad);
	en->id_type = sq_col_dup(st, 1, &bad);
	en->value = sq_col_dup(st, 2, &bad);
	en->identity_id = sq_col_dup(st, 3, &bad);
	en->account_id = sq_col_dup(st, 4, &bad);
	en->resolution = sq_col_dup(st, 5, &bad);
	if (bad) {
		alert_entity_clear(en);
		return sq_nomem(e);
	}
	return 0;
}

static int
load_entities(struct store_conn *c, struct alert *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = astmt(c, AS_ENTITIES, &st, e)) != 0)
		return r;
	return sq_load_rows(c, st, a->id, read_entity, sizeof(*a->entities),
	    &a->entities, &a->nentities, "alert entities", e);
}

/* One alert by a statement bound to (p1, p2), with its entities. */
static int
alert_one(struct store_conn *c, int which, const char *p1, const char *p2,
    struct alert *out, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = astmt(c, which, &st, e)) != 0)
		return r;
	r = sq_get_one(c, st, p1, p2, read_alert, out, "alert get", "alert", e);
	if (r == 0 && (r = load_entities(c, out, e)) != 0)
		alert_clear(out);
	return r;
}

int
sq_alert_get(struct store_conn *c, const char *id, struct alert *out, struct qerr *e)
{
	return alert_one(c, AS_ALERT_GET, id, NULL, out, e);
}

int
sq_alert_find(struct store_conn *c, const char *source, const char *external_id,
    struct alert *out, struct qerr *e)
{
	return alert_one(c, AS_ALERT_FIND, source, external_id, out, e);
}

int
sq_alert_list(struct store_conn *c, const struct alert_filter *f, store_alert_cb cb,
    void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct alert *rows;
	size_t n = 0, i;
	int r = 0, rc = SQLITE_DONE;

	if (f->limit < 1 || f->limit > LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    LIST_MAX);
	if ((rows = calloc((size_t)f->limit, sizeof(*rows))) == NULL)
		return sq_nomem(e);
	if ((r = astmt(c, AS_ALERT_LIST, &st, e)) != 0)
		goto out;
	if (sq_bind_text(st, 1, f->before_id) || sqlite3_bind_int(st, 2, f->limit) ||
	    sq_bind_text(st, 3, f->source)) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "alert list", e);
		goto out;
	}
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = read_alert(st, &rows[n], e)) == 0)
			n++;
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_db_fail(c, rc, "alert list", e);
	sq_done(st);
	st = NULL;
	for (i = 0; i < n && r == 0; i++)
		r = cb(&rows[i], arg);
out:
	sq_done(st);
	for (i = 0; i < n; i++)
		alert_clear(&rows[i]);
	free(rows);
	return r;
}

/* Accounts an alert's account entity names: by UPN or SID (any system that has
 * them), or by the object id an account of one kind has there. */
int
sq_account_find(struct store_conn *c, enum kind_match match, const char *kind,
    const char *value, store_account_cb cb, void *arg, struct qerr *e)
{
	struct account rows[ACCOUNT_MATCH_MAX];
	sqlite3_stmt *st = NULL;
	size_t n = 0, i;
	int r = 0, rc = SQLITE_DONE, which;

	switch (match) {
	case KIND_MATCH_UPN:
		which = AS_ACC_UPN;
		break;
	case KIND_MATCH_SID:
		which = AS_ACC_SID;
		break;
	case KIND_MATCH_EXTERNAL_ID:
		if (kind == NULL)
			return qerr_set(e, QERR_INVALID, "kind", "an object id needs its kind");
		which = AS_ACC_EXT;
		break;
	default:
		return qerr_set(e, QERR_INVALID, "id_type", "unknown account id type");
	}
	if ((r = astmt(c, which, &st, e)) != 0)
		return r;
	if (sq_bind_text(st, 1, value) ||
	    (which == AS_ACC_EXT && sq_bind_text(st, 2, kind))) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "account find", e);
		goto out;
	}
	while (r == 0 && n < ACCOUNT_MATCH_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = sq_read_account(st, &rows[n], e)) == 0)
			n++;
	if (r == 0 && n < ACCOUNT_MATCH_MAX && rc != SQLITE_DONE)
		r = sq_db_fail(c, rc, "account find", e);
	sq_done(st);
	st = NULL;
	for (i = 0; i < n && r == 0; i++)
		r = cb(&rows[i], arg);
out:
	sq_done(st);
	for (i = 0; i < n; i++)
		account_clear(&rows[i]);
	return r;
}

int
sq_decision_insert(struct store_conn *c, const struct alert_decision *d, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = astmt(c, AS_DEC_INSERT, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, d->id) ||
	    sq_bind_text(st, 2, d->alert_id) || sq_bind_text(st, 3, d->identity_id) ||
	    sq_bind_text(st, 4, d->rule) || sq_bind_text(st, 5, d->outcome) ||
	    sq_bind_text(st, 6, d->detail) ||
	    sqlite3_bind_int64(st, 7, d->created_at), "decision insert", e);
}

static int
read_decision(sqlite3_stmt *st, struct alert_decision *d, struct qerr *e)
{
	int bad = 0;

	memset(d, 0, sizeof(*d));
	d->id = sq_col_dup(st, 0, &bad);
	d->alert_id = sq_col_dup(st, 1, &bad);
	d->identity_id = sq_col_dup(st, 2, &bad);
	d->rule = sq_col_dup(st, 3, &bad);
	d->outcome = sq_col_dup(st, 4, &bad);
	d->detail = sq_col_dup(st, 5, &bad);
	d->created_at = sqlite3_column_int64(st, 6);
	if (bad) {
		alert_decision_clear(d);
		return sq_nomem(e);
	}
	return 0;
}

/* An alert's decisions oldest first, or an identity's newest first (at most 1000). */
int
sq_decision_list(struct store_conn *c, const char *alert_id, const char *identity_id,
    store_decision_cb cb, void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct alert_decision *rows;
	size_t n = 0, i;
	int r = 0, rc = SQLITE_DONE;

	if ((alert_id == NULL) == (identity_id == NULL))
		return qerr_set(e, QERR_INVALID, NULL, "decision list: one filter");
	if ((rows = calloc(LIST_MAX, sizeof(*rows))) == NULL)
		return sq_nomem(e);
	if ((r = astmt(c, alert_id ? AS_DEC_BY_ALERT : AS_DEC_BY_IDN, &st, e)) != 0)
		goto out;
	if (sq_bind_text(st, 1, alert_id ? alert_id : identity_id)) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "decision list", e);
		goto out;
	}
	while (r == 0 && n < LIST_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = read_decision(st, &rows[n], e)) == 0)
			n++;
	if (r == 0 && n < LIST_MAX && rc != SQLITE_DONE)
		r = sq_db_fail(c, rc, "decision list", e);
	sq_done(st);
	st = NULL;
	for (i = 0; i < n && r == 0; i++)
		r = cb(&rows[i], arg);
out:
	sq_done(st);
	for (i = 0; i < n; i++)
		alert_decision_clear(&rows[i]);
	free(rows);
	return r;
}

int
sq_decision_count(struct store_conn *c, const char *outcome, int64_t since, long *n,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	*n = 0;
	if ((r = astmt(c, AS_DEC_COUNT, &st, e)) != 0)
		return r;
	if (sq_bind_text(st, 1, outcome) || sqlite3_bind_int64(st, 2, since))
		r = sq_db_fail(c, sqlite3_errcode(c->db), "decision count", e);
	else if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		r = sq_db_fail(c, rc, "decision count", e);
	else
		*n = (long)sqlite3_column_int64(st, 0);
	sq_done(st);
	return r;
}
