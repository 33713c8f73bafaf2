/*
 * Inventory sync and correlation. Statements in sync_stmt[] by the numbers below.
 * A sync writes every account it reads, so each statement here runs once per account
 * of a directory: they are prepared once per connection and use the indexes of the
 * migration that added them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "shared.h"
#include "sqlite_int.h"

#define MATCH_LIMIT	"5"	/* more than CORR_HITS_MAX: a conflict needs two */
#define MATCH_SQL(col) \
	"SELECT DISTINCT a.identity_id FROM accounts a" \
	" WHERE lower(a." col ") = ?1 AND (?2 IS NULL OR a.kind = ?2) AND a.id <> ?3" \
	" AND a.identity_id IS NOT NULL AND a.identity_id IS NOT ?4" \
	" AND NOT EXISTS (SELECT 1 FROM link_vetoes v" \
	"  WHERE v.account_id = ?3 AND v.identity_id = a.identity_id)" \
	" LIMIT " MATCH_LIMIT

enum {
	SY_FIND,
	SY_INSERT,
	SY_UPDATE,
	SY_SHARING,
	SY_REMOVE,
	SY_SWEEP,
	SY_MATCH_SID,
	SY_MATCH_UPN,
	SY_MATCH_EMAIL,
	SY_MATCH_USERNAME,
	SY_LINK,
	SY_VETO_ADD,
	SY_VETO_DEL,
	SY_CONFLICTS,
	SY_STATE_GET,
	SY_STATE_PUT,
	SY_COUNT
};

_Static_assert(SY_COUNT <= SYNC_STMT_MAX, "sync_stmt[] is too small");
_Static_assert(SY_MATCH_USERNAME - SY_MATCH_SID == CORR_USERNAME - CORR_SID,
    "match statements follow enum corr_attr");

static const char *const sync_sql[SY_COUNT] = {
	[SY_FIND] = "SELECT " ACC_COLS_X " FROM accounts"
	    " WHERE system = ?1 AND external_id = ?2",
	[SY_INSERT] = "INSERT INTO accounts (" ACC_COLS ", risk, seen_run)"
	    " VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
	    " ?15, ?16)",
	/* A listing that does not know the state or risk keeps the last known. */
	[SY_UPDATE] = "UPDATE accounts SET kind = ?2, sid = ?3, dn = ?4, username = ?5,"
	    " upn = ?6, display_name = ?7, email = ?8, synced = ?9,"
	    " state = coalesce(?10, state),"
	    " state_read_at = CASE WHEN ?10 IS NULL THEN state_read_at ELSE ?11 END,"
	    " risk = coalesce(?12, risk), seen_run = max(seen_run, ?13) WHERE id = ?1",
	[SY_SHARING] = "SELECT count(*) FROM accounts WHERE identity_id = ?1",
	[SY_REMOVE] = "UPDATE accounts SET state = 'removed', state_read_at = ?3"
	    " WHERE system = ?1 AND external_id = ?2 AND state IS NOT 'removed'",
	[SY_SWEEP] = "UPDATE accounts SET state = 'removed', state_read_at = ?3"
	    " WHERE system = ?1 AND seen_run < ?2 AND state IS NOT 'removed'",
	[SY_MATCH_SID] = MATCH_SQL("sid"),
	[SY_MATCH_UPN] = MATCH_SQL("upn"),
	[SY_MATCH_EMAIL] = MATCH_SQL("email"),
	[SY_MATCH_USERNAME] = MATCH_SQL("username"),
	[SY_LINK] = "UPDATE accounts SET identity_id = ?2, link_rule = ?3, linked_by = ?4,"
	    " linked_at = ?5, conflict = ?6 WHERE id = ?1",
	[SY_VETO_ADD] = "INSERT INTO link_vetoes (account_id, identity_id, by, at)"
	    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id, identity_id)"
	    " DO UPDATE SET by = excluded.by, at = excluded.at",
	[SY_VETO_DEL] = "DELETE FROM link_vetoes WHERE account_id = ?1 AND identity_id = ?2",
	[SY_CONFLICTS] = "SELECT " ACC_COLS_X ", conflict FROM accounts"
	    " WHERE conflict IS NOT NULL AND id > ?1 ORDER BY id LIMIT ?2",
	[SY_STATE_GET] = "SELECT cursor, full_run FROM sync_state WHERE system = ?1",
	[SY_STATE_PUT] = "INSERT INTO sync_state (system, cursor, full_run, updated_at)"
	    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (system) DO UPDATE SET"
	    " cursor = excluded.cursor, full_run = excluded.full_run,"
	    " updated_at = excluded.updated_at",
};

static int
sstmt(struct store_conn *c, int id, sqlite3_stmt **out, struct qerr *e)
{
	return sq_prepare(c, &c->sync_stmt[id], sync_sql[id], out, e);
}

/* Fills *out with the row of (system, external_id); QERR_NOT_FOUND when none. */
static int
sync_find(struct store_conn *c, const char *system, const char *external_id,
    struct account *out, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = sstmt(c, SY_FIND, &st, e)) != 0)
		return r;
	return sq_get_one(c, st, system, external_id, sq_read_account, out, "account sync",
	    NULL, e);
}

static int
sync_insert(struct store_conn *c, const struct account *a, int64_t seen_run,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, SY_INSERT, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, a->id) ||
	    sq_bind_text(st, 2, a->system) || sq_bind_text(st, 3, a->kind) ||
	    sq_bind_text(st, 4, a->external_id) || sq_bind_text(st, 5, a->sid) ||
	    sq_bind_text(st, 6, a->dn) || sq_bind_text(st, 7, a->username) ||
	    sq_bind_text(st, 8, a->upn) || sq_bind_text(st, 9, a->display_name) ||
	    sq_bind_text(st, 10, a->state) ||
	    sqlite3_bind_int64(st, 11, a->state_read_at) ||
	    sqlite3_bind_int64(st, 12, a->created_at) ||
	    sq_bind_text(st, 13, a->email) || sqlite3_bind_int(st, 14, a->synced) ||
	    sq_bind_text(st, 15, a->risk) ||
	    sqlite3_bind_int64(st, 16, seen_run), "account sync", e);
}

static int
sync_update(struct store_conn *c, const char *id, const struct account *a,
    int64_t seen_run, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, SY_UPDATE, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, id) || sq_bind_text(st, 2, a->kind) ||
	    sq_bind_text(st, 3, a->sid) || sq_bind_text(st, 4, a->dn) ||
	    sq_bind_text(st, 5, a->username) || sq_bind_text(st, 6, a->upn) ||
	    sq_bind_text(st, 7, a->display_name) || sq_bind_text(st, 8, a->email) ||
	    sqlite3_bind_int(st, 9, a->synced) || sq_bind_text(st, 10, a->state) ||
	    sqlite3_bind_int64(st, 11, a->state_read_at) ||
	    sq_bind_text(st, 12, a->risk) ||
	    sqlite3_bind_int64(st, 13, seen_run), "account sync", e);
}

static int
sync_sharing(struct store_conn *c, const char *identity_id, long *n, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	*n = 0;
	if ((r = sstmt(c, SY_SHARING, &st, e)) != 0)
		return r;
	if (sq_bind_text(st, 1, identity_id))
		r = sq_db_fail(c, sqlite3_errcode(c->db), "account sync", e);
	else if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		r = sq_db_fail(c, rc, "account sync", e);
	else
		*n = (long)sqlite3_column_int64(st, 0);
	sq_done(st);
	return r;
}

int
sq_account_sync(struct store_conn *c, const struct account *a, int64_t seen_run,
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
sq_account_remove(struct store_conn *c, const char *system, const char *external_id,
    int64_t at, bool *changed, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	*changed = false;
	if ((r = sstmt(c, SY_REMOVE, &st, e)) != 0)
		return r;
	if ((r = sq_run(c, st, sq_bind_text(st, 1, system) ||
	    sq_bind_text(st, 2, external_id) ||
	    sqlite3_bind_int64(st, 3, at), "account remove", e)) == 0)
		*changed = sqlite3_changes(c->db) > 0;
	return r;
}

int
sq_account_sweep(struct store_conn *c, const char *system, int64_t run, int64_t at,
    long *n, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	*n = 0;
	if ((r = sstmt(c, SY_SWEEP, &st, e)) != 0)
		return r;
	if ((r = sq_run(c, st, sq_bind_text(st, 1, system) ||
	    sqlite3_bind_int64(st, 2, run) ||
	    sqlite3_bind_int64(st, 3, at), "account sweep", e)) == 0)
		*n = sqlite3_changes(c->db);
	return r;
}

int
sq_account_match(struct store_conn *c, const struct corr_probe *p,
    const struct account *self, struct corr_hits *hits, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if (p->attr >= CORR_ATTR_COUNT)
		return qerr_set(e, QERR_INVALID, "attr", "unknown correlation attribute");
	if ((r = sstmt(c, SY_MATCH_SID + (int)p->attr, &st, e)) != 0)
		return r;
	if (sq_bind_text(st, 1, p->value) || sq_bind_text(st, 2, p->kind) ||
	    sq_bind_text(st, 3, self->id) || sq_bind_text(st, 4, self->identity_id)) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "account match", e);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		corr_hits_add(hits, sq_col_str(st, 0), self->identity_id);
	r = rc == SQLITE_DONE ? 0 : sq_db_fail(c, rc, "account match", e);
out:
	sq_done(st);
	return r;
}

int
sq_account_set_link(struct store_conn *c, const char *account_id,
    const struct account_link *l, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, SY_LINK, &st, e)) != 0)
		return r;
	return sq_run_one(c, st, sq_bind_text(st, 1, account_id) ||
	    sq_bind_text(st, 2, l->identity_id) || sq_bind_text(st, 3, l->rule) ||
	    sq_bind_text(st, 4, l->by) || sqlite3_bind_int64(st, 5, l->at) ||
	    sq_bind_text(st, 6, l->conflict), "account link", "account", e);
}

int
sq_link_veto(struct store_conn *c, const char *account_id, const char *identity_id,
    const char *by, int64_t at, bool add, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, add ? SY_VETO_ADD : SY_VETO_DEL, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, account_id) ||
	    sq_bind_text(st, 2, identity_id) ||
	    (add && (sq_bind_text(st, 3, by) || sqlite3_bind_int64(st, 4, at))),
	    "link veto", e);
}

int
sq_conflict_list(struct store_conn *c, const char *after_id, int limit,
    store_conflict_cb cb, void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct account a;
	int r, rc;

	memset(&a, 0, sizeof(a));
	if (limit < 1 || limit > LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    LIST_MAX);
	if ((r = sstmt(c, SY_CONFLICTS, &st, e)) != 0)
		return r;
	if (sq_bind_text(st, 1, after_id != NULL ? after_id : "") ||
	    sqlite3_bind_int(st, 2, limit)) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "conflict list", e);
		goto out;
	}
	/* The callback only renders: it never re-enters the store. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = sq_read_account(st, &a, e)) != 0)
			goto out;
		if ((r = cb(&a, sq_col_str(st, 19), arg)) != 0)
			goto out;
		account_clear(&a);
	}
	r = rc == SQLITE_DONE ? 0 : sq_db_fail(c, rc, "conflict list", e);
out:
	account_clear(&a);
	sq_done(st);
	return r;
}

/* What sq_sync_state_get reads a row into. */
struct sync_state_row {
	char **cursor;
	int64_t *full_run;
};

static int
read_sync_state(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct sync_state_row *row = out;
	int bad = 0;

	*row->cursor = sq_col_dup(st, 0, &bad);
	*row->full_run = sqlite3_column_int64(st, 1);
	return bad ? sq_nomem(e) : 0;
}

/* A system never synced has no cursor and full run 0. */
int
sq_sync_state_get(struct store_conn *c, const char *system, char **cursor,
    int64_t *full_run, struct qerr *e)
{
	struct sync_state_row row = { cursor, full_run };
	sqlite3_stmt *st = NULL;
	int r;

	*cursor = NULL;
	*full_run = 0;
	if ((r = sstmt(c, SY_STATE_GET, &st, e)) != 0)
		return r;
	r = sq_get_one(c, st, system, NULL, read_sync_state, &row, "sync state", NULL, e);
	return r == QERR_NOT_FOUND ? 0 : r;
}

int
sq_sync_state_put(struct store_conn *c, const char *system, const char *cursor,
    int64_t full_run, int64_t at, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, SY_STATE_PUT, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, system) || sq_bind_text(st, 2, cursor) ||
	    sqlite3_bind_int64(st, 3, full_run) ||
	    sqlite3_bind_int64(st, 4, at), "sync state", e);
}
