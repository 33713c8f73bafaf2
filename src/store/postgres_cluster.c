/*
 * Node heartbeats and singleton leases on PostgreSQL. Writers are serialized by the
 * backend's transaction lock, so one upsert decides a lease: it changes the row only
 * when the lease is free, ran out, or is the asker's already, and RETURNING says
 * whether it did.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"

static const char sql_acquire[] =
    "INSERT INTO leases AS l (name, owner, expires_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
    " expires_at = excluded.expires_at"
    " WHERE l.owner = excluded.owner OR l.expires_at <= $4::bigint"
    " RETURNING owner";
static const char sql_release[] = "DELETE FROM leases WHERE name = $1 AND owner = $2";
static const char sql_release_all[] = "DELETE FROM leases WHERE owner = $1";
static const char sql_beat[] =
    "INSERT INTO nodes (node_id, started_at, last_seen) VALUES ($1, $2, $3)"
    " ON CONFLICT (node_id) DO UPDATE SET started_at = excluded.started_at,"
    " last_seen = excluded.last_seen";
static const char sql_renew[] = "UPDATE leases SET expires_at = $2 WHERE owner = $1";
static const char sql_nodes[] =
    "SELECT node_id, started_at, last_seen FROM nodes ORDER BY node_id";
static const char sql_leases[] =
    "SELECT name, owner, expires_at FROM leases ORDER BY name";

int
pg_lease_acquire(struct store_conn *c, const char *name, const char *owner,
    int64_t now, int64_t ttl_ms, bool *held, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	int r;

	*held = false;
	pa_text(&a, name);
	pa_text(&a, owner);
	pa_i64(&a, now + ttl_ms);
	pa_i64(&a, now);
	if ((r = pg_write(c, sql_acquire, &a, "lease acquire", &res, e)) != 0)
		return r;
	*held = PQntuples(res) == 1;
	PQclear(res);
	return 0;
}

int
pg_lease_release(struct store_conn *c, const char *name, const char *owner,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	if (name != NULL)
		pa_text(&a, name);
	pa_text(&a, owner);
	return pg_run(c, name != NULL ? sql_release : sql_release_all, &a,
	    "lease release", NULL, e);
}

int
pg_node_beat(struct store_conn *c, const char *node_id, int64_t started_at,
    int64_t now, int64_t ttl_ms, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	int r;

	pa_text(&a, node_id);
	pa_i64(&a, started_at);
	pa_i64(&a, now);
	if ((r = pg_run(c, sql_beat, &a, "node beat", NULL, e)) != 0)
		return r;
	a.n = 0;
	pa_text(&a, node_id);
	pa_i64(&a, now + ttl_ms);
	return pg_run(c, sql_renew, &a, "lease renew", NULL, e);
}

/* Both lists are rows of (text, text or number, number): one walk reads either. */
static int
each_row(struct store_conn *c, const char *sql, store_node_cb ncb, store_lease_cb lcb,
    void *arg, const char *what, struct qerr *e)
{
	PGresult *res = NULL;
	struct store_node n;
	struct store_lease l;
	int r, i, rows;

	if ((r = pg_query(c, sql, NULL, what, &res, e)) != 0)
		return r;
	rows = PQntuples(res);
	for (i = 0; i < rows && r == 0; i++) {
		if (ncb != NULL) {
			n.node_id = pg_str(res, i, 0);
			n.started_at = pg_i64(res, i, 1);
			n.last_seen = pg_i64(res, i, 2);
			r = ncb(&n, arg);
		} else {
			l.name = pg_str(res, i, 0);
			l.owner = pg_str(res, i, 1);
			l.expires_at = pg_i64(res, i, 2);
			r = lcb(&l, arg);
		}
	}
	PQclear(res);
	return r;
}

int
pg_node_list(struct store_conn *c, store_node_cb cb, void *arg, struct qerr *e)
{
	return each_row(c, sql_nodes, cb, NULL, arg, "node list", e);
}

int
pg_lease_list(struct store_conn *c, store_lease_cb cb, void *arg, struct qerr *e)
{
	return each_row(c, sql_leases, NULL, cb, arg, "lease list", e);
}
