/*
 * The Shared Signals tables on SQLite (src/engine/ssf.c): streams, the outbox of
 * signed SETs in order per stream, and the jtis received. Statements are prepared
 * per call: they run once per event, not per row of a hot path.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "sqlite_int.h"

static int
prep(struct store_conn *c, const char *sql, sqlite3_stmt **st, struct qerr *e)
{
	int rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);

	return rc == SQLITE_OK ? 0 : sq_db_fail(c, rc, "ssf prepare", e);
}

/* Runs sql (no rows) with up to four text and two integer parameters, in that
 * order; *changed the rows it touched. */
static int
exec(struct store_conn *c, const char *sql, const char *const *t, size_t nt,
    const int64_t *n, size_t nn, const char *what, int *changed, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, bad = 0, i = 1, rc;
	size_t k;

	if ((r = prep(c, sql, &st, e)) != 0)
		return r;
	for (k = 0; k < nt; k++)
		bad |= sq_bind_text(st, i++, t[k]);
	for (k = 0; k < nn; k++)
		bad |= sqlite3_bind_int64(st, i++, n[k]);
	rc = bad ? SQLITE_NOMEM : sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : sq_db_fail(c, rc, what, e);
	if (changed != NULL)
		*changed = sqlite3_changes(c->db);
	sqlite3_finalize(st);
	return r;
}

int
sq_ssf_stream_put(struct store_conn *c, const char *id, const char *config, int64_t at,
    struct qerr *e)
{
	const char *t[] = { id, config };

	return exec(c, "INSERT INTO ssf_streams (id, config, updated_at) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (id) DO UPDATE SET config = excluded.config,"
	    " updated_at = excluded.updated_at", t, 2, &at, 1, "ssf stream put", NULL, e);
}

int
sq_ssf_stream_delete(struct store_conn *c, const char *id, struct qerr *e)
{
	int r, n = 0;

	if ((r = exec(c, "DELETE FROM ssf_outbox WHERE stream_id = ?1", &id, 1, NULL, 0,
	    "ssf stream delete", NULL, e)) != 0 ||
	    (r = exec(c, "DELETE FROM ssf_streams WHERE id = ?1", &id, 1, NULL, 0,
	    "ssf stream delete", &n, e)) != 0)
		return r;
	return n == 0 ? qerr_set(e, QERR_NOT_FOUND, "stream_id", "no such stream") : 0;
}

static int
each(struct store_conn *c, sqlite3_stmt *st, store_ssf_cb cb, void *arg,
    const char *what, struct qerr *e)
{
	int r = 0, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = cb(sq_col_str(st, 0), sq_col_str(st, 1),
		    sqlite3_column_int64(st, 2), arg)) != 0)
			break;
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_db_fail(c, rc, what, e);
	sqlite3_finalize(st);
	return r;
}

int
sq_ssf_stream_list(struct store_conn *c, store_ssf_cb cb, void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = prep(c, "SELECT id, config, updated_at FROM ssf_streams ORDER BY id",
	    &st, e)) != 0)
		return r;
	return each(c, st, cb, arg, "ssf stream list", e);
}

int
sq_ssf_outbox_add(struct store_conn *c, const char *stream_id, const char *jti,
    const char *set, int64_t at, struct qerr *e)
{
	const char *t[] = { stream_id, jti, set };

	return exec(c, "INSERT INTO ssf_outbox (stream_id, jti, set_jwt, created_at)"
	    " VALUES (?1, ?2, ?3, ?4)", t, 3, &at, 1, "ssf outbox add", NULL, e);
}

int
sq_ssf_outbox_pending(struct store_conn *c, const char *stream_id, int limit,
    store_ssf_cb cb, void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = prep(c, "SELECT jti, set_jwt, seq FROM ssf_outbox WHERE stream_id = ?1"
	    " AND acked_at = 0 ORDER BY seq LIMIT ?2", &st, e)) != 0)
		return r;
	if (sq_bind_text(st, 1, stream_id) || sqlite3_bind_int(st, 2, limit)) {
		sqlite3_finalize(st);
		return sq_nomem(e);
	}
	return each(c, st, cb, arg, "ssf outbox list", e);
}

int
sq_ssf_outbox_ack(struct store_conn *c, const char *stream_id, const char *jti,
    int64_t at, struct qerr *e)
{
	const char *t[] = { stream_id, jti };
	int r, n = 0;

	if ((r = exec(c, "UPDATE ssf_outbox SET acked_at = ?3 WHERE stream_id = ?1 AND"
	    " jti = ?2 AND acked_at = 0", t, 2, &at, 1, "ssf outbox ack", &n, e)) != 0)
		return r;
	return n == 0 ? qerr_set(e, QERR_NOT_FOUND, "jti", "no such SET awaiting "
	    "acknowledgement") : 0;
}

int
sq_ssf_jti_claim(struct store_conn *c, const char *iss, const char *jti, int64_t at,
    bool *fresh, struct qerr *e)
{
	const char *t[] = { iss, jti };
	int r, n = 0;

	r = exec(c, "INSERT INTO ssf_jti (iss, jti, seen_at) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT DO NOTHING", t, 2, &at, 1, "ssf jti", &n, e);
	*fresh = r == 0 && n == 1;
	return r;
}
