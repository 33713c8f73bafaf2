/*
 * What nodes share besides steps, on SQLite: a vendor's request budget (one bucket
 * per identity system) and the console's sessions. One file serves one node, but the
 * same rows make a session outlive a restart and keep both backends alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sqlite_int.h"

enum {
	SH_RATE_GET,
	SH_RATE_PUT,
	SH_SESS_INSERT,
	SH_SESS_GET,
	SH_SESS_TOUCH,
	SH_SESS_DELETE,
	SH_SESS_DELETE_TOKEN,
	SH_SESS_PRUNE,
	SH_SESS_COUNT,
	SH_SESS_LRU,
	SH_LOGIN_PRUNE,
	SH_LOGIN_CAP,
	SH_LOGIN_INSERT,
	SH_LOGIN_GET,
	SH_LOGIN_DELETE,
	SH_COUNT
};

_Static_assert(SH_COUNT <= SHARE_STMT_MAX, "share_stmt[] is too small");

static const char *const share_sql[SH_COUNT] = {
	[SH_RATE_GET] = "SELECT level, updated_at FROM rate_buckets WHERE system = ?1",
	[SH_RATE_PUT] = "INSERT INTO rate_buckets (system, level, updated_at)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT (system) DO UPDATE SET"
	    " level = excluded.level, updated_at = excluded.updated_at",
	[SH_SESS_INSERT] = "INSERT INTO console_sessions (id_hash, principal_hash,"
	    " token_id, token_hash, claims, created_us, used_us)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[SH_SESS_GET] = "SELECT id_hash, principal_hash, token_id, token_hash, claims,"
	    " created_us, used_us FROM console_sessions WHERE id_hash = ?1",
	[SH_SESS_TOUCH] = "UPDATE console_sessions SET used_us = ?2 WHERE id_hash = ?1"
	    " AND used_us < ?2",
	[SH_SESS_DELETE] = "DELETE FROM console_sessions WHERE id_hash = ?1",
	[SH_SESS_DELETE_TOKEN] = "DELETE FROM console_sessions WHERE token_id = ?1",
	[SH_SESS_PRUNE] = "DELETE FROM console_sessions WHERE used_us < ?1"
	    " OR created_us < ?2",
	[SH_SESS_COUNT] = "SELECT count(*), coalesce(sum(principal_hash = ?1), 0)"
	    " FROM console_sessions",
	[SH_SESS_LRU] = "SELECT id_hash FROM console_sessions WHERE principal_hash = ?1"
	    " ORDER BY used_us, created_us LIMIT 1",
	[SH_LOGIN_PRUNE] = "DELETE FROM console_logins WHERE created_us < ?1",
	[SH_LOGIN_CAP] = "DELETE FROM console_logins WHERE cookie_hash IN (SELECT"
	    " cookie_hash FROM console_logins ORDER BY created_us DESC LIMIT -1 OFFSET ?1)",
	[SH_LOGIN_INSERT] = "INSERT INTO console_logins (cookie_hash, redirect_uri,"
	    " created_us) VALUES (?1, ?2, ?3)",
	[SH_LOGIN_GET] = "SELECT redirect_uri, created_us FROM console_logins"
	    " WHERE cookie_hash = ?1",
	[SH_LOGIN_DELETE] = "DELETE FROM console_logins WHERE cookie_hash = ?1",
};

static int
stmt(struct store_conn *c, int id, sqlite3_stmt **out, struct qerr *e)
{
	return sq_prepare(c, &c->share_stmt[id], share_sql[id], out, e);
}

/* A row of two numbers: a bucket's level and time, or two counts. */
struct pair {
	int64_t x;
	int64_t y;
};

static int
read_pair(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct pair *p = out;

	(void)e;
	p->x = sqlite3_column_int64(st, 0);
	p->y = sqlite3_column_int64(st, 1);
	return 0;
}

int
sq_rate_get(struct store_conn *c, const char *system, int64_t *level, int64_t *at,
    struct qerr *e)
{
	struct pair b = { 0, 0 };
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, SH_RATE_GET, &st, e)) != 0 ||
	    (r = sq_get_one(c, st, system, NULL, read_pair, &b, "rate bucket", NULL,
	    e)) != 0)
		return r;
	*level = b.x;
	*at = b.y;
	return 0;
}

int
sq_rate_put(struct store_conn *c, const char *system, int64_t level, int64_t at,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, SH_RATE_PUT, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, system) || sqlite3_bind_int64(st, 2,
	    level) || sqlite3_bind_int64(st, 3, at), "rate bucket", e);
}

int
sq_session_insert(struct store_conn *c, const struct store_session *s, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, SH_SESS_INSERT, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, s->id_hash) ||
	    sq_bind_text(st, 2, s->principal_hash) || sq_bind_text(st, 3, s->token_id) ||
	    sq_bind_text(st, 4, s->token_hash) || sq_bind_text(st, 5, s->claims) ||
	    sqlite3_bind_int64(st, 6, s->created_us) ||
	    sqlite3_bind_int64(st, 7, s->used_us), "session insert", e);
}

static int
read_session(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct store_session *s = out;
	int bad = 0;

	s->id_hash = sq_col_dup(st, 0, &bad);
	s->principal_hash = sq_col_dup(st, 1, &bad);
	s->token_id = sq_col_dup(st, 2, &bad);
	s->token_hash = sq_col_dup(st, 3, &bad);
	s->claims = sq_col_dup(st, 4, &bad);
	s->created_us = sqlite3_column_int64(st, 5);
	s->used_us = sqlite3_column_int64(st, 6);
	if (bad) {
		store_session_clear(s);
		return sq_nomem(e);
	}
	return 0;
}

int
sq_session_get(struct store_conn *c, const char *id_hash, struct store_session *out,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, SH_SESS_GET, &st, e)) != 0)
		return r;
	return sq_get_one(c, st, id_hash, NULL, read_session, out, "session get", NULL, e);
}

int
sq_session_touch(struct store_conn *c, const char *id_hash, int64_t at, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, SH_SESS_TOUCH, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, id_hash) || sqlite3_bind_int64(st, 2, at),
	    "session touch", e);
}

int
sq_session_delete(struct store_conn *c, const char *id_hash, const char *token_id,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, id_hash != NULL ? SH_SESS_DELETE : SH_SESS_DELETE_TOKEN, &st,
	    e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, id_hash != NULL ? id_hash : token_id),
	    "session delete", e);
}

int
sq_session_prune(struct store_conn *c, int64_t idle_before, int64_t life_before,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, SH_SESS_PRUNE, &st, e)) != 0)
		return r;
	return sq_run(c, st, sqlite3_bind_int64(st, 1, idle_before) ||
	    sqlite3_bind_int64(st, 2, life_before), "session prune", e);
}

static int
read_lru(sqlite3_stmt *st, void *out, struct qerr *e)
{
	int bad = 0;

	if ((*(char **)out = sq_col_dup(st, 0, &bad)) == NULL || bad)
		return sq_nomem(e);
	return 0;
}

int
sq_session_count(struct store_conn *c, const char *principal_hash, long *all,
    long *own, char **lru, struct qerr *e)
{
	struct pair b = { 0, 0 };
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, SH_SESS_COUNT, &st, e)) != 0 ||
	    (r = sq_get_one(c, st, principal_hash, NULL, read_pair, &b,
	    "session count", NULL, e)) != 0)
		return r;
	*all = (long)b.x;
	*own = (long)b.y;
	if (*own == 0)
		return 0;
	if ((r = stmt(c, SH_SESS_LRU, &st, e)) != 0)
		return r;
	r = sq_get_one(c, st, principal_hash, NULL, read_lru, lru, "session count", NULL,
	    e);
	return r == QERR_NOT_FOUND ? 0 : r;
}

int
sq_login_insert(struct store_conn *c, const char *cookie_hash, const char *redirect_uri,
    int64_t created_us, int64_t older_than, long max, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, SH_LOGIN_PRUNE, &st, e)) != 0 ||
	    (r = sq_run(c, st, sqlite3_bind_int64(st, 1, older_than), "login insert",
	    e)) != 0 || (r = stmt(c, SH_LOGIN_CAP, &st, e)) != 0 ||
	    (r = sq_run(c, st, sqlite3_bind_int64(st, 1, max - 1), "login insert",
	    e)) != 0 || (r = stmt(c, SH_LOGIN_INSERT, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, cookie_hash) ||
	    sq_bind_text(st, 2, redirect_uri) || sqlite3_bind_int64(st, 3, created_us),
	    "login insert", e);
}

/* A login row: its redirect URI and when it began. */
struct login_row {
	char *redirect_uri;
	int64_t created_us;
};

static int
read_login(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct login_row *l = out;
	int bad = 0;

	if ((l->redirect_uri = sq_col_dup(st, 0, &bad)) == NULL || bad)
		return sq_nomem(e);
	l->created_us = sqlite3_column_int64(st, 1);
	return 0;
}

int
sq_login_take(struct store_conn *c, const char *cookie_hash, char **redirect_uri,
    int64_t *created_us, struct qerr *e)
{
	struct login_row l = { NULL, 0 };
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, SH_LOGIN_GET, &st, e)) != 0 ||
	    (r = sq_get_one(c, st, cookie_hash, NULL, read_login, &l, "login take", NULL,
	    e)) != 0)
		return r;
	if ((r = stmt(c, SH_LOGIN_DELETE, &st, e)) != 0 ||
	    (r = sq_run(c, st, sq_bind_text(st, 1, cookie_hash), "login take", e)) != 0) {
		free(l.redirect_uri);
		return r;
	}
	*redirect_uri = l.redirect_uri;
	*created_us = l.created_us;
	return 0;
}
