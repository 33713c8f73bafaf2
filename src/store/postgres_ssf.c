/*
 * The Shared Signals tables on PostgreSQL, as sqlite_ssf.c: streams, the outbox of
 * signed SETs in order per stream, and the jtis received.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "postgres_int.h"

int
pg_ssf_stream_put(struct store_conn *c, const char *id, const char *config, int64_t at,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, id);
	pa_text(&a, config);
	pa_i64(&a, at);
	return pg_run(c, "INSERT INTO ssf_streams (id, config, updated_at) VALUES ($1, $2,"
	    " $3) ON CONFLICT (id) DO UPDATE SET config = excluded.config,"
	    " updated_at = excluded.updated_at", &a, "ssf stream put", NULL, e);
}

int
pg_ssf_stream_delete(struct store_conn *c, const char *id, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	long n = 0;
	int r;

	pa_text(&a, id);
	if ((r = pg_run(c, "DELETE FROM ssf_outbox WHERE stream_id = $1", &a,
	    "ssf stream delete", NULL, e)) != 0 ||
	    (r = pg_run(c, "DELETE FROM ssf_streams WHERE id = $1", &a,
	    "ssf stream delete", &n, e)) != 0)
		return r;
	return n == 0 ? qerr_set(e, QERR_NOT_FOUND, "stream_id", "no such stream") : 0;
}

static int
each(struct store_conn *c, const char *sql, const struct pg_args *a, store_ssf_cb cb,
    void *arg, const char *what, struct qerr *e)
{
	PGresult *res = NULL;
	int r, i;

	if ((r = pg_query(c, sql, a, what, &res, e)) != 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++)
		r = cb(pg_str(res, i, 0), pg_str(res, i, 1), pg_i64(res, i, 2), arg);
	PQclear(res);
	return r;
}

int
pg_ssf_stream_list(struct store_conn *c, store_ssf_cb cb, void *arg, struct qerr *e)
{
	return each(c, "SELECT id, config, updated_at FROM ssf_streams ORDER BY id", NULL,
	    cb, arg, "ssf stream list", e);
}

int
pg_ssf_outbox_add(struct store_conn *c, const char *stream_id, const char *jti,
    const char *set, int64_t at, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, stream_id);
	pa_text(&a, jti);
	pa_text(&a, set);
	pa_i64(&a, at);
	/* seq as the audit log's: writers hold the write lock, so max + 1 is theirs,
	 * and a copy from SQLite (quelld migrate) leaves no sequence behind. */
	return pg_run(c, "INSERT INTO ssf_outbox (seq, stream_id, jti, set_jwt, created_at)"
	    " SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4 FROM ssf_outbox", &a,
	    "ssf outbox add", NULL, e);
}

int
pg_ssf_outbox_pending(struct store_conn *c, const char *stream_id, int limit,
    store_ssf_cb cb, void *arg, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, stream_id);
	pa_i64(&a, limit);
	return each(c, "SELECT jti, set_jwt, seq FROM ssf_outbox WHERE stream_id = $1"
	    " AND acked_at = 0 ORDER BY seq LIMIT $2", &a, cb, arg, "ssf outbox list", e);
}

int
pg_ssf_outbox_ack(struct store_conn *c, const char *stream_id, const char *jti,
    int64_t at, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	long n = 0;
	int r;

	pa_text(&a, stream_id);
	pa_text(&a, jti);
	pa_i64(&a, at);
	if ((r = pg_run(c, "UPDATE ssf_outbox SET acked_at = $3 WHERE stream_id = $1 AND"
	    " jti = $2 AND acked_at = 0", &a, "ssf outbox ack", &n, e)) != 0)
		return r;
	return n == 0 ? qerr_set(e, QERR_NOT_FOUND, "jti", "no such SET awaiting "
	    "acknowledgement") : 0;
}

int
pg_ssf_jti_claim(struct store_conn *c, const char *iss, const char *jti, int64_t at,
    bool *fresh, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	long n = 0;
	int r;

	pa_text(&a, iss);
	pa_text(&a, jti);
	pa_i64(&a, at);
	r = pg_run(c, "INSERT INTO ssf_jti (iss, jti, seen_at) VALUES ($1, $2, $3)"
	    " ON CONFLICT DO NOTHING", &a, "ssf jti", &n, e);
	*fresh = r == 0 && n == 1;
	return r;
}
