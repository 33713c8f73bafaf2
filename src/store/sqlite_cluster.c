/*
 * Node heartbeats and singleton leases on SQLite. One database file serves one
 * node, so a lease always goes to whoever asks: the table is kept so that /readyz
 * and the jobs read the same on either backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sqlite_int.h"

enum {
	CL_ACQUIRE,
	CL_RELEASE,
	CL_RELEASE_ALL,
	CL_BEAT,
	CL_RENEW,
	CL_NODES,
	CL_LEASES,
	CL_COUNT
};

_Static_assert(CL_COUNT <= CLUSTER_STMT_MAX, "cluster_stmt[] is too small");

static const char *const cluster_sql[CL_COUNT] = {
	[CL_ACQUIRE] = "INSERT INTO leases (name, owner, expires_at) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
	    " expires_at = excluded.expires_at",
	[CL_RELEASE] = "DELETE FROM leases WHERE name = ?1 AND owner = ?2",
	[CL_RELEASE_ALL] = "DELETE FROM leases WHERE owner = ?1",
	[CL_BEAT] = "INSERT INTO nodes (node_id, started_at, last_seen) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (node_id) DO UPDATE SET started_at = excluded.started_at,"
	    " last_seen = excluded.last_seen",
	[CL_RENEW] = "UPDATE leases SET expires_at = ?2 WHERE owner = ?1",
	[CL_NODES] = "SELECT node_id, started_at, last_seen FROM nodes ORDER BY node_id",
	[CL_LEASES] = "SELECT name, owner, expires_at FROM leases ORDER BY name",
};

static int
stmt(struct store_conn *c, int id, sqlite3_stmt **out, struct qerr *e)
{
	return sq_prepare(c, &c->cluster_stmt[id], cluster_sql[id], out, e);
}

int
sq_lease_acquire(struct store_conn *c, const char *name, const char *owner,
    int64_t now, int64_t ttl_ms, bool *held, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	*held = false;
	if ((r = stmt(c, CL_ACQUIRE, &st, e)) != 0)
		return r;
	r = sq_run(c, st, sq_bind_text(st, 1, name) || sq_bind_text(st, 2, owner) ||
	    sqlite3_bind_int64(st, 3, now + ttl_ms), "lease acquire", e);
	*held = r == 0;
	return r;
}

int
sq_lease_release(struct store_conn *c, const char *name, const char *owner,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if (name == NULL) {
		if ((r = stmt(c, CL_RELEASE_ALL, &st, e)) != 0)
			return r;
		return sq_run(c, st, sq_bind_text(st, 1, owner), "lease release", e);
	}
	if ((r = stmt(c, CL_RELEASE, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, name) || sq_bind_text(st, 2, owner),
	    "lease release", e);
}

int
sq_node_beat(struct store_conn *c, const char *node_id, int64_t started_at,
    int64_t now, int64_t ttl_ms, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, CL_BEAT, &st, e)) != 0 ||
	    (r = sq_run(c, st, sq_bind_text(st, 1, node_id) ||
	    sqlite3_bind_int64(st, 2, started_at) || sqlite3_bind_int64(st, 3, now),
	    "node beat", e)) != 0)
		return r;
	if ((r = stmt(c, CL_RENEW, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, node_id) ||
	    sqlite3_bind_int64(st, 2, now + ttl_ms), "lease renew", e);
}

/* Both lists are rows of (text, text or number, number): one walk reads either. */
static int
each_row(struct store_conn *c, int id, store_node_cb ncb, store_lease_cb lcb, void *arg,
    const char *what, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct store_node n;
	struct store_lease l;
	int r, rc;

	if ((r = stmt(c, id, &st, e)) != 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (ncb != NULL) {
			n.node_id = sq_col_str(st, 0);
			n.started_at = sqlite3_column_int64(st, 1);
			n.last_seen = sqlite3_column_int64(st, 2);
			r = ncb(&n, arg);
		} else {
			l.name = sq_col_str(st, 0);
			l.owner = sq_col_str(st, 1);
			l.expires_at = sqlite3_column_int64(st, 2);
			r = lcb(&l, arg);
		}
		if (r != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : sq_db_fail(c, rc, what, e);
out:
	sq_done(st);
	return r;
}

int
sq_node_list(struct store_conn *c, store_node_cb cb, void *arg, struct qerr *e)
{
	return each_row(c, CL_NODES, cb, NULL, arg, "node list", e);
}

int
sq_lease_list(struct store_conn *c, store_lease_cb cb, void *arg, struct qerr *e)
{
	return each_row(c, CL_LEASES, NULL, cb, arg, "lease list", e);
}
