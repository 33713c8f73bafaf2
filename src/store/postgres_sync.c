/*
 * Inventory sync and correlation in the PostgreSQL store, statement for statement as
 * sqlite_sync.c. A sync writes every account it reads, under the write transaction's
 * lock, so what it reads of an account is what it then writes over.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"
#include "shared.h"

#define MATCH_LIMIT	"5"	/* more than CORR_HITS_MAX: a conflict needs two */
#define MATCH_SQL(col) \
	"SELECT DISTINCT a.identity_id FROM accounts a" \
	" WHERE lower(a." col ") = $1 AND ($2::text IS NULL OR a.kind = $2::text)" \
	" AND a.id <> $3 AND a.identity_id IS NOT NULL" \
	" AND a.identity_id IS DISTINCT FROM $4::text" \
	" AND NOT EXISTS (SELECT 1 FROM link_vetoes v" \
	"  WHERE v.account_id = $3 AND v.identity_id = a.identity_id)" \
	" LIMIT " MATCH_LIMIT

static const char sql_find[] = "SELECT " PG_ACC_COLS_X " FROM accounts"
    " WHERE system = $1 AND external_id = $2";
static const char sql_insert[] = "INSERT INTO accounts (" PG_ACC_COLS ", risk, seen_run)"
    " VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
    " $15, $16)";
/* A listing that does not know the state or risk keeps the last known. */
static const char sql_update[] = "UPDATE accounts SET kind = $2, sid = $3, dn = $4,"
    " username = $5, upn = $6, display_name = $7, email = $8, synced = $9,"
    " state = coalesce($10::text, state),"
    " state_read_at = CASE WHEN $10::text IS NULL THEN state_read_at ELSE $11 END,"
    " risk = coalesce($12::text, risk), seen_run = greatest(seen_run, $13)"
    " WHERE id = $1";
static const char sql_sharing[] = "SELECT count(*) FROM accounts WHERE identity_id = $1";
static const char sql_remove[] = "UPDATE accounts SET state = 'removed',"
    " state_read_at = $3 WHERE system = $1 AND external_id = $2"
    " AND state IS DISTINCT FROM 'removed'";
static const char sql_sweep[] = "UPDATE accounts SET state = 'removed',"
    " state_read_at = $3 WHERE system = $1 AND seen_run < $2"
    " AND state IS DISTINCT FROM 'removed'";
/* By enum corr_attr. */
static const char *const sql_match[CORR_ATTR_COUNT] = {
	[CORR_SID] = MATCH_SQL("sid"),
	[CORR_UPN] = MATCH_SQL("upn"),
	[CORR_EMAIL] = MATCH_SQL("email"),
	[CORR_USERNAME] = MATCH_SQL("username"),
};
static const char sql_link[] = "UPDATE accounts SET identity_id = $2, link_rule = $3,"
    " linked_by = $4, linked_at = $5, conflict = $6 WHERE id = $1";
static const char sql_veto_add[] = "INSERT INTO link_vetoes (account_id, identity_id,"
    " by, at) VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, identity_id)"
    " DO UPDATE SET by = excluded.by, at = excluded.at";
static const char sql_veto_del[] =
    "DELETE FROM link_vetoes WHERE account_id = $1 AND identity_id = $2";
static const char sql_conflicts[] = "SELECT " PG_ACC_COLS_X ", conflict FROM accounts"
    " WHERE conflict IS NOT NULL AND id > $1 ORDER BY id LIMIT $2";
static const char sql_state_get[] =
    "SELECT cursor, full_run FROM sync_state WHERE system = $1";
static const char sql_state_put[] = "INSERT INTO sync_state (system, cursor, full_run,"
    " updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (system) DO UPDATE SET"
    " cursor = excluded.cursor, full_run = excluded.full_run,"
    " updated_at = excluded.updated_at";

/* Fills *out with the row of (system, external_id); QERR_NOT_FOUND when none. */
static int
sync_find(struct store_conn *c, const char *system, const char *external_id,
    struct account *out, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	memset(out, 0, sizeof(*out));
	pa_text(&a, system);
	pa_text(&a, external_id);
	return pg_get_one(c, sql_find, &a, pg_read_account, out, "account sync", NULL, e);
}

static int
sync_insert(struct store_conn *c, const struct account *acc, int64_t seen_run,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, acc->id);
	pa_text(&a, acc->system);
	pa_text(&a, acc->kind);
	pa_text(&a, acc->external_id);
	pa_text(&a, acc->sid);
	pa_text(&a, acc->dn);
	pa_text(&a, acc->username);
	pa_text(&a, acc->upn);
	pa_text(&a, acc->display_name);
	pa_text(&a, acc->state);
	pa_i64(&a, acc->state_read_at);
	pa_i64(&a, acc->created_at);
	pa_text(&a, acc->email);
	pa_bool(&a, acc->synced);
	pa_text(&a, acc->risk);
	pa_i64(&a, seen_run);
	return pg_run(c, sql_insert, &a, "account sync", NULL, e);
}

static int
sync_update(struct store_conn *c, const char *id, const struct account *acc,
    int64_t seen_run, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, id);
	pa_text(&a, acc->kind);
	pa_text(&a, acc->sid);
	pa_text(&a, acc->dn);
	pa_text(&a, acc->username);
	pa_text(&a, acc->upn);
	pa_text(&a, acc->display_name);
	pa_text(&a, acc->email);
	pa_bool(&a, acc->synced);
	pa_text(&a, acc->state);
	pa_i64(&a, acc->state_read_at);
	pa_text(&a, acc->risk);
	pa_i64(&a, seen_run);
	return pg_run(c, sql_update, &a, "account sync", NULL, e);
}

static int
sync_sharing(struct store_conn *c, const char *identity_id, long *n, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	int r;

	*n = 0;
	pa_text(&a, identity_id);
	if ((r = pg_query(c, sql_sharing, &a, "account sync", &res, e)) != 0)
		return r;
	*n = (long)pg_i64(res, 0, 0);
	PQclear(res);
	return 0;
}

int
pg_account_sync(struct store_conn *c, const struct account *a, int64_t seen_run,
    struct account_sync *out, struct qerr *e)
{
	int r;

	if (a->id == NULL || a->system == NULL || a->external_id == NULL)
		return qerr_set(e, QERR_INVALID, "id", "account has no id, system or "
		    "external id");
	r = sync_find(c, a->system, a->external_id, &out->cur, e);
	if (r == QERR_NOT_FOUND) {
		out->created = out->changed = true;
		if ((r = sync_insert(c, a, seen_run, e)) != 0)
			return r;
	} else if (r != 0)
		return r;
	else {
		out->changed = store_account_differs(a, &out->cur);
		r = sync_update(c, out->cur.id, a, seen_run, e);
		account_clear(&out->cur);
		if (r != 0)
			return r;
	}
	if ((r = sync_find(c, a->system, a->external_id, &out->cur, e)) != 0)
		return r;
	/* The row read above is the caller's only when the call succeeds. */
	if (out->cur.identity_id != NULL &&
	    (r = sync_sharing(c, out->cur.identity_id, &out->sharing, e)) != 0)
		account_clear(&out->cur);
	return r;
}

int
pg_account_remove(struct store_conn *c, const char *system, const char *external_id,
    int64_t at, bool *changed, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	long n = 0;
	int r;

	pa_text(&a, system);
	pa_text(&a, external_id);
	pa_i64(&a, at);
	r = pg_run(c, sql_remove, &a, "account remove", &n, e);
	*changed = r == 0 && n > 0;
	return r;
}

int
pg_account_sweep(struct store_conn *c, const char *system, int64_t run, int64_t at,
    long *n, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, system);
	pa_i64(&a, run);
	pa_i64(&a, at);
	return pg_run(c, sql_sweep, &a, "account sweep", n, e);
}

int
pg_account_match(struct store_conn *c, const struct corr_probe *p,
    const struct account *self, struct corr_hits *hits, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	int r, i;

	if (p->attr >= CORR_ATTR_COUNT)
		return qerr_set(e, QERR_INVALID, "attr", "unknown correlation attribute");
	pa_text(&a, p->value);
	pa_text(&a, p->kind);
	pa_text(&a, self->id);
	pa_text(&a, self->identity_id);
	if ((r = pg_query(c, sql_match[p->attr], &a, "account match", &res, e)) != 0)
		return r;
	for (i = 0; i < PQntuples(res); i++)
		corr_hits_add(hits, pg_str(res, i, 0), self->identity_id);
	PQclear(res);
	return 0;
}

int
pg_account_set_link(struct store_conn *c, const char *account_id,
    const struct account_link *l, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, account_id);
	pa_text(&a, l->identity_id);
	pa_text(&a, l->rule);
	pa_text(&a, l->by);
	pa_i64(&a, l->at);
	pa_text(&a, l->conflict);
	return pg_run_one(c, sql_link, &a, "account link", "account", e);
}

int
pg_link_veto(struct store_conn *c, const char *account_id, const char *identity_id,
    const char *by, int64_t at, bool add, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, account_id);
	pa_text(&a, identity_id);
	if (add) {
		pa_text(&a, by);
		pa_i64(&a, at);
	}
	return pg_run(c, add ? sql_veto_add : sql_veto_del, &a, "link veto", NULL, e);
}

int
pg_conflict_list(struct store_conn *c, const char *after_id, int limit,
    store_conflict_cb cb, void *arg, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	struct account acc;
	int r, i;

	if (limit < 1 || limit > PG_LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    PG_LIST_MAX);
	pa_text(&a, after_id != NULL ? after_id : "");
	pa_i64(&a, limit);
	if ((r = pg_query(c, sql_conflicts, &a, "conflict list", &res, e)) != 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++) {
		if ((r = pg_read_account(res, i, &acc, e)) != 0)
			break;
		r = cb(&acc, pg_str(res, i, 19), arg);
		account_clear(&acc);
	}
	PQclear(res);
	return r;
}

/* What pg_sync_state_get reads a row into. */
struct sync_state_row {
	char **cursor;
	int64_t *full_run;
};

static int
read_sync_state(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct sync_state_row *sr = out;
	int bad = 0;

	*sr->cursor = pg_dup(res, row, 0, &bad);
	*sr->full_run = pg_i64(res, row, 1);
	return bad ? pg_nomem(e) : 0;
}

/* A system never synced has no cursor and full run 0. */
int
pg_sync_state_get(struct store_conn *c, const char *system, char **cursor,
    int64_t *full_run, struct qerr *e)
{
	struct sync_state_row row = { cursor, full_run };
	struct pg_args a = { .n = 0 };
	int r;

	*cursor = NULL;
	*full_run = 0;
	pa_text(&a, system);
	r = pg_get_one(c, sql_state_get, &a, read_sync_state, &row, "sync state", NULL, e);
	return r == QERR_NOT_FOUND ? 0 : r;
}

int
pg_sync_state_put(struct store_conn *c, const char *system, const char *cursor,
    int64_t full_run, int64_t at, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, system);
	pa_text(&a, cursor);
	pa_i64(&a, full_run);
	pa_i64(&a, at);
	return pg_run(c, sql_state_put, &a, "sync state", NULL, e);
}
