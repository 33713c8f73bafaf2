/*
 * What nodes share besides steps, on PostgreSQL: a vendor's request budget (one
 * bucket per identity system, read and written under the writers' lock, so the
 * nodes take from it one at a time) and the console's sessions, so that a session
 * opened on one node is good on every other and a sign-out ends it on all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"

static const char sql_rate_get[] =
    "SELECT level, updated_at FROM rate_buckets WHERE system = $1";
static const char sql_rate_put[] =
    "INSERT INTO rate_buckets (system, level, updated_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (system) DO UPDATE SET level = excluded.level,"
    " updated_at = excluded.updated_at";
static const char sql_sess_insert[] =
    "INSERT INTO console_sessions (id_hash, principal_hash, token_id, token_hash,"
    " claims, created_us, used_us) VALUES ($1, $2, $3, $4, $5, $6, $7)";
static const char sql_sess_get[] =
    "SELECT id_hash, principal_hash, token_id, token_hash, claims, created_us,"
    " used_us FROM console_sessions WHERE id_hash = $1";
static const char sql_sess_touch[] =
    "UPDATE console_sessions SET used_us = $2 WHERE id_hash = $1 AND used_us < $2";
static const char sql_sess_delete[] = "DELETE FROM console_sessions WHERE id_hash = $1";
static const char sql_sess_delete_token[] =
    "DELETE FROM console_sessions WHERE token_id = $1";
static const char sql_sess_prune[] =
    "DELETE FROM console_sessions WHERE used_us < $1 OR created_us < $2";
static const char sql_sess_count[] =
    "SELECT count(*), count(*) FILTER (WHERE principal_hash = $1),"
    " (SELECT id_hash FROM console_sessions WHERE principal_hash = $1"
    "  ORDER BY used_us, created_us LIMIT 1) FROM console_sessions";

static const char sql_login_prune[] = "DELETE FROM console_logins WHERE created_us < $1";
static const char sql_login_cap[] =
    "DELETE FROM console_logins WHERE cookie_hash IN (SELECT cookie_hash"
    " FROM console_logins ORDER BY created_us DESC OFFSET $1)";
static const char sql_login_insert[] =
    "INSERT INTO console_logins (cookie_hash, redirect_uri, created_us)"
    " VALUES ($1, $2, $3)";
static const char sql_login_take[] =
    "DELETE FROM console_logins WHERE cookie_hash = $1"
    " RETURNING redirect_uri, created_us";

int
pg_rate_get(struct store_conn *c, const char *system, int64_t *level, int64_t *at,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	int r;

	pa_text(&a, system);
	if ((r = pg_query(c, sql_rate_get, &a, "rate bucket", &res, e)) != 0)
		return r;
	if (PQntuples(res) == 0)
		r = QERR_NOT_FOUND;
	else {
		*level = pg_i64(res, 0, 0);
		*at = pg_i64(res, 0, 1);
	}
	PQclear(res);
	return r;
}

int
pg_rate_put(struct store_conn *c, const char *system, int64_t level, int64_t at,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, system);
	pa_i64(&a, level);
	pa_i64(&a, at);
	return pg_run(c, sql_rate_put, &a, "rate bucket", NULL, e);
}

int
pg_session_insert(struct store_conn *c, const struct store_session *s, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, s->id_hash);
	pa_text(&a, s->principal_hash);
	pa_text(&a, s->token_id);
	pa_text(&a, s->token_hash);
	pa_text(&a, s->claims);
	pa_i64(&a, s->created_us);
	pa_i64(&a, s->used_us);
	return pg_run(c, sql_sess_insert, &a, "session insert", NULL, e);
}

static int
read_session(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct store_session *s = out;
	int bad = 0;

	s->id_hash = pg_dup(res, row, 0, &bad);
	s->principal_hash = pg_dup(res, row, 1, &bad);
	s->token_id = pg_dup(res, row, 2, &bad);
	s->token_hash = pg_dup(res, row, 3, &bad);
	s->claims = pg_dup(res, row, 4, &bad);
	s->created_us = pg_i64(res, row, 5);
	s->used_us = pg_i64(res, row, 6);
	if (bad) {
		store_session_clear(s);
		return pg_nomem(e);
	}
	return 0;
}

int
pg_session_get(struct store_conn *c, const char *id_hash, struct store_session *out,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, id_hash);
	return pg_get_one(c, sql_sess_get, &a, read_session, out, "session get", NULL, e);
}

int
pg_session_touch(struct store_conn *c, const char *id_hash, int64_t at, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, id_hash);
	pa_i64(&a, at);
	return pg_run(c, sql_sess_touch, &a, "session touch", NULL, e);
}

int
pg_session_delete(struct store_conn *c, const char *id_hash, const char *token_id,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, id_hash != NULL ? id_hash : token_id);
	return pg_run(c, id_hash != NULL ? sql_sess_delete : sql_sess_delete_token, &a,
	    "session delete", NULL, e);
}

int
pg_session_prune(struct store_conn *c, int64_t idle_before, int64_t life_before,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_i64(&a, idle_before);
	pa_i64(&a, life_before);
	return pg_run(c, sql_sess_prune, &a, "session prune", NULL, e);
}

int
pg_session_count(struct store_conn *c, const char *principal_hash, long *all,
    long *own, char **lru, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	int r, bad = 0;

	pa_text(&a, principal_hash);
	if ((r = pg_query(c, sql_sess_count, &a, "session count", &res, e)) != 0)
		return r;
	*all = (long)pg_i64(res, 0, 0);
	*own = (long)pg_i64(res, 0, 1);
	*lru = pg_dup(res, 0, 2, &bad);
	PQclear(res);
	return bad ? pg_nomem(e) : 0;
}

int
pg_login_insert(struct store_conn *c, const char *cookie_hash, const char *redirect_uri,
    int64_t created_us, int64_t older_than, long max, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	int r;

	pa_i64(&a, older_than);
	if ((r = pg_run(c, sql_login_prune, &a, "login insert", NULL, e)) != 0)
		return r;
	a.n = 0;
	pa_i64(&a, max - 1);
	if ((r = pg_run(c, sql_login_cap, &a, "login insert", NULL, e)) != 0)
		return r;
	a.n = 0;
	pa_text(&a, cookie_hash);
	pa_text(&a, redirect_uri);
	pa_i64(&a, created_us);
	return pg_run(c, sql_login_insert, &a, "login insert", NULL, e);
}

int
pg_login_take(struct store_conn *c, const char *cookie_hash, char **redirect_uri,
    int64_t *created_us, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	int r, bad = 0;

	pa_text(&a, cookie_hash);
	if ((r = pg_write(c, sql_login_take, &a, "login take", &res, e)) != 0)
		return r;
	if (PQntuples(res) == 0)
		r = QERR_NOT_FOUND;
	else if ((*redirect_uri = pg_dup(res, 0, 0, &bad)) == NULL || bad)
		r = pg_nomem(e);
	else
		*created_us = pg_i64(res, 0, 1);
	PQclear(res);
	return r;
}
