/*
 * The store against a real database, fresh for each test: schema migrations, every
 * table's round trip, the claim rules the engine relies on (order, skipped systems,
 * leases, retry times), claims racing on four pooled connections, and the audit chain
 * detecting a row altered behind quell's back.
 *
 * SQLite by default: a database file in a temporary directory. With
 * QUELL_TEST_STORE=postgres, PostgreSQL: a schema of its own in the database of
 * QUELL_TEST_PG (a libpq connection string), or, without it, in a cluster this test
 * starts with scripts/lib/pg.sh (QUELL_SRC names the source tree) and stops at the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "core/audit.h"
#include "store/store.h"

#define NCONN		4
#define RACE_STEPS	200
#define RACE_THREADS	4

#define PG_SCHEMA	"quell_store_test"

struct fx {
	char dir[256];
	char path[300];
	char loc[1024];		/* what store_open is given: path, or a conninfo */
	struct store *st;
};

/* The backend under test (main). */
static struct {
	const struct store_ops *ops;
	const char *pg;		/* PostgreSQL's connection string; NULL: SQLite */
} T = { &store_sqlite, NULL };

static const char *const hostile[] = {
	"O'Brien \"quoted\"; DROP TABLE identities;--",
	"100%_done\\ back\\slash",
	"Zo\xc3\xab \xe5\x90\x8d\xe5\x89\x8d \xf0\x9f\x99\x82",
	"tab\there\nnewline\r\x01\x7f",
	"  leading and trailing  ",
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
xstrdup(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	assert_non_null(d);
	return d;
}

static void
quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Runs sql (statements without rows, or one returning a boolean) on conninfo; false
 * when it failed or answered false. Fails the test when that is not want. */
static bool
pg_exec(const char *conninfo, const char *sql, bool want)
{
	PGconn *db = PQconnectdb(conninfo);
	PGresult *res;
	bool ok;

	if (PQstatus(db) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(db));
	PQsetNoticeProcessor(db, quiet, NULL);
	res = PQexec(db, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
	    (PQresultStatus(res) == PGRES_TUPLES_OK &&
	    strcmp(PQgetvalue(res, 0, 0), "t") == 0);
	if (ok != want)
		fail_msg("%s: %s", sql, ok ? "succeeded" : PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(db);
	return ok;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	struct qerr e = {0};

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/quell-store-XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/quell.db", f->dir);
	snprintf(f->loc, sizeof(f->loc), "%s", f->path);
	if (T.pg != NULL) {
		/* The hunting views' schema is the database's, made with the store's. */
		pg_exec(T.pg, "DROP SCHEMA IF EXISTS " PG_SCHEMA " CASCADE;"
		    "DROP SCHEMA IF EXISTS hunting CASCADE;"
		    "CREATE SCHEMA " PG_SCHEMA, true);
		snprintf(f->loc, sizeof(f->loc), "%s options='-c search_path=" PG_SCHEMA
		    "'", T.pg);
	}
	if (store_open(T.ops, f->loc, NCONN, &f->st, &e) != 0)
		fail_msg("store_open: %s", e.msg);
	*state = f;
	return 0;
}

static void
remove_db(struct fx *f)
{
	char p[320];

	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	remove_db(f);
	free(f);
	return 0;
}

static struct store_tx *
begin(struct fx *f, bool write)
{
	struct store_tx *tx = NULL;
	struct qerr e = {0};

	if (store_tx_begin(f->st, write, &tx, &e) != 0)
		fail_msg("begin: %s", e.msg);
	return tx;
}

static void
commit(struct store_tx *tx)
{
	struct qerr e = {0};

	if (store_tx_commit(tx, &e) != 0)
		fail_msg("commit: %s", e.msg);
}

static void
raw_exec(const struct fx *f, const char *sql, int expect)
{
	sqlite3 *db = NULL;

	if (T.pg != NULL) {
		pg_exec(f->loc, sql, expect == SQLITE_OK);
		return;
	}

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), expect);
	sqlite3_close(db);
}

/* Whether the one value sql selects is true. */
static bool
raw_true(const struct fx *f, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	bool yes;

	if (T.pg != NULL)
		return pg_exec(f->loc, sql, true);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	yes = sqlite3_column_int(q, 0) != 0;
	sqlite3_finalize(q);
	sqlite3_close(db);
	return yes;
}

static void
test_migrate(void **state)
{
	struct fx *f = *state;
	struct store *st = NULL;
	struct qerr e = {0};

	/* Reopening applies nothing twice. */
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(T.ops, f->loc, 1, &st, &e), 0);
	store_close(st);
	assert_true(raw_true(f, "SELECT count(*) = max(version) AND count(*) >= 9"
	    " FROM schema_version"));

	/* A database from a newer quell is refused, and left as it was. */
	raw_exec(f, "INSERT INTO schema_version VALUES (999, 0)", SQLITE_OK);
	assert_int_equal(store_open(T.ops, f->loc, 2, &st, &e), QERR_STORE);
	assert_null(st);
	assert_non_null(strstr(e.msg, "999"));
	assert_non_null(strstr(e.msg, "newer"));
	raw_exec(f, "DELETE FROM schema_version WHERE version = 999", SQLITE_OK);
	assert_int_equal(store_open(T.ops, f->loc, NCONN, &f->st, &e), 0);
	assert_int_equal(store_open(T.ops, f->loc, 0, &st, &e), QERR_INVALID);

	/* WAL is refused nowhere but where it cannot work. */
	if (T.pg == NULL)
		assert_int_equal(store_open(T.ops, ":memory:", 1, &st, &e), QERR_STORE);
}

static void
mk_token(struct token_info *t, const char *id, const char *name, int64_t created,
    int64_t expires)
{
	memset(t, 0, sizeof(*t));
	t->p.id = (char *)id;
	t->p.name = (char *)name;
	t->p.role = "viewer";
	t->p.created_at = created;
	t->expires_at = expires;
}

static void
test_token(void **state)
{
	struct fx *f = *state;
	char *scope[] = { "staff", "contractors" };
	struct token_info t = { .p = { .id = "tok_1", .name = "alice", .role = "responder",
	    .scope = scope, .nscope = 2, .created_at = 42 }, .expires_at = 4242,
	    /* Ignored on insert: a new token is neither revoked nor used. */
	    .revoked_at = 7, .revoked_by = "mallory", .last_used_at = 9 }, got = {0};
	unsigned char h[32], h2[32];
	struct store_tx *tx;
	struct qerr e = {0};
	int i;

	for (i = 0; i < 32; i++)
		h[i] = (unsigned char)(i * 7 + 1);
	tx = begin(f, true);
	assert_int_equal(store_token_insert(tx, &t, h, &e), 0);
	assert_int_equal(store_token_insert(tx, &t, h, &e), QERR_CONFLICT);
	commit(tx);

	tx = begin(f, false);
	assert_int_equal(store_token_insert(tx, &t, h, &e), QERR_INTERNAL);
	assert_int_equal(store_token_get(tx, "tok_1", &got, h2, &e), 0);
	assert_string_equal(got.p.id, "tok_1");
	assert_string_equal(got.p.name, "alice");
	assert_string_equal(got.p.role, "responder");
	assert_int_equal(got.p.created_at, 42);
	assert_int_equal(got.p.nscope, 2);
	assert_string_equal(got.p.scope[1], "contractors");
	assert_int_equal(got.expires_at, 4242);
	assert_int_equal(got.revoked_at, 0);
	assert_null(got.revoked_by);
	assert_int_equal(got.last_used_at, 0);
	assert_memory_equal(h, h2, 32);
	token_info_clear(&got);
	token_info_clear(NULL);
	assert_int_equal(store_token_get(tx, "tok_2", &got, h2, &e), QERR_NOT_FOUND);
	assert_null(got.p.id);
	store_tx_rollback(tx);
}

struct token_seen {
	char ids[8][32];
	int n;
	int stop_after;		/* 0: never */
};

static int
seen_token(const struct token_info *t, void *arg)
{
	struct token_seen *s = arg;

	assert_true(s->n < 8);
	snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", t->p.id);
	s->n++;
	return s->stop_after != 0 && s->n == s->stop_after ? 1 : 0;
}

static void
test_token_list(void **state)
{
	struct fx *f = *state;
	static const char *const ids[] = { "qt_a", "qt_b", "qt_c" };
	struct token_seen seen = {0};
	struct token_info t;
	unsigned char h[32] = {1};
	struct store_tx *tx;
	struct qerr e = {0};
	size_t i;

	tx = begin(f, true);
	/* Inserted out of order: the list is in id order all the same. */
	for (i = 3; i-- > 0;) {
		mk_token(&t, ids[i], hostile[i], (int64_t)i, 0);
		h[1] = (unsigned char)i;
		assert_int_equal(store_token_insert(tx, &t, h, &e), 0);
	}
	commit(tx);

	tx = begin(f, false);
	assert_int_equal(store_token_list(tx, NULL, 1000, seen_token, &seen, &e), 0);
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.ids[0], "qt_a");
	assert_string_equal(seen.ids[2], "qt_c");
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(store_token_list(tx, "qt_a", 1, seen_token, &seen, &e), 0);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.ids[0], "qt_b");
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 2;
	assert_int_equal(store_token_list(tx, NULL, 1000, seen_token, &seen, &e), 1);
	assert_int_equal(seen.n, 2);
	assert_int_equal(store_token_list(tx, NULL, 0, seen_token, &seen, &e),
	    QERR_INVALID);
	assert_int_equal(store_token_list(tx, NULL, 1001, seen_token, &seen, &e),
	    QERR_INVALID);
	store_tx_rollback(tx);
}

static void
test_token_revoke(void **state)
{
	struct fx *f = *state;
	struct token_info t, got = {0};
	unsigned char h[32] = {2}, h2[32];
	struct store_tx *tx;
	struct qerr e = {0};

	tx = begin(f, true);
	mk_token(&t, "qt_r", "soc-bot", 10, 0);
	assert_int_equal(store_token_insert(tx, &t, h, &e), 0);
	commit(tx);

	tx = begin(f, false);
	assert_int_equal(store_token_revoke(tx, "qt_r", 500, "admin", &e), QERR_INTERNAL);
	store_tx_rollback(tx);

	tx = begin(f, true);
	assert_int_equal(store_token_revoke(tx, "qt_r", 500, hostile[0], &e), 0);
	/* The first revocation stands: a second is a conflict and changes nothing. */
	assert_int_equal(store_token_revoke(tx, "qt_r", 900, "other", &e), QERR_CONFLICT);
	assert_string_equal(e.field, "token_id");
	assert_non_null(strstr(e.msg, "already revoked"));
	assert_int_equal(store_token_revoke(tx, "qt_none", 900, "other", &e),
	    QERR_NOT_FOUND);
	assert_string_equal(e.field, "token_id");
	commit(tx);

	/* Seen by a connection other than the one that wrote it: it is store state. */
	tx = begin(f, false);
	assert_int_equal(store_token_get(tx, "qt_r", &got, h2, &e), 0);
	assert_int_equal(got.revoked_at, 500);
	assert_string_equal(got.revoked_by, hostile[0]);
	assert_memory_equal(h, h2, 32);
	token_info_clear(&got);
	store_tx_rollback(tx);
}

static void
test_token_touch(void **state)
{
	struct fx *f = *state;
	struct token_info t, got = {0};
	unsigned char h[32] = {3}, h2[32];
	struct store_tx *tx;
	struct qerr e = {0};
	bool w = true;

	tx = begin(f, true);
	mk_token(&t, "qt_t", "touchy", 10, 0);
	assert_int_equal(store_token_insert(tx, &t, h, &e), 0);
	assert_int_equal(store_token_touch(tx, "qt_t", 100000, 60000, &w, &e), 0);
	assert_true(w);
	/* Within the gap: nothing written. */
	assert_int_equal(store_token_touch(tx, "qt_t", 159999, 60000, &w, &e), 0);
	assert_false(w);
	assert_int_equal(store_token_touch(tx, "qt_t", 160000, 60000, &w, &e), 0);
	assert_true(w);
	/* An earlier time never moves it back. */
	assert_int_equal(store_token_touch(tx, "qt_t", 150000, 0, &w, &e), 0);
	assert_false(w);
	assert_int_equal(store_token_touch(tx, "qt_none", 900000, 0, &w, &e), 0);
	assert_false(w);
	assert_int_equal(store_token_revoke(tx, "qt_t", 170000, "admin", &e), 0);
	assert_int_equal(store_token_touch(tx, "qt_t", 900000, 0, &w, &e), 0);
	assert_false(w);
	commit(tx);

	tx = begin(f, false);
	assert_int_equal(store_token_touch(tx, "qt_t", 990000, 0, &w, &e), QERR_INTERNAL);
	assert_int_equal(store_token_get(tx, "qt_t", &got, h2, &e), 0);
	assert_int_equal(got.last_used_at, 160000);
	token_info_clear(&got);
	store_tx_rollback(tx);
}

/* Takes the schema back to version 6, as it was before migration 7 (and any
 * later one) existed. */
static const char undo_after_6[] =
    "DROP TABLE IF EXISTS rate_buckets;"
    "DROP TABLE IF EXISTS console_sessions;"
    "DROP TABLE IF EXISTS console_logins;"
    "DROP TABLE IF EXISTS ssf_streams;"
    "DROP TABLE IF EXISTS ssf_outbox;"
    "DROP TABLE IF EXISTS ssf_jti;"
    "DROP TABLE IF EXISTS nodes;"
    "DROP TABLE IF EXISTS leases;"
    "ALTER TABLE steps DROP COLUMN waits;"
    "ALTER TABLE steps DROP COLUMN wait_ms;"
    "DROP TABLE IF EXISTS siem_cursors;"
    "ALTER TABLE audit DROP COLUMN format;"
    "ALTER TABLE audit DROP COLUMN actor_kind;"
    "ALTER TABLE audit DROP COLUMN actor_id;"
    "ALTER TABLE audit DROP COLUMN client;"
    "ALTER TABLE actions DROP COLUMN requested_by_kind;"
    "ALTER TABLE actions DROP COLUMN decided_by_id;"
    "ALTER TABLE actions DROP COLUMN decided_by_kind;"
    "DELETE FROM schema_version WHERE version > 6;";

/* A database whose tokens predate expiry and revocation keeps them, in force. */
static void
test_token_migration(void **state)
{
	struct fx *f = *state;
	struct token_info got = {0};
	unsigned char h2[32];
	struct store_tx *tx;
	struct qerr e = {0};

	store_close(f->st);
	f->st = NULL;
	/* Back to the schema before the lifecycle columns, with a token of then. */
	raw_exec(f, undo_after_6, SQLITE_OK);
	raw_exec(f, "ALTER TABLE tokens DROP COLUMN expires_at;"
	    "ALTER TABLE tokens DROP COLUMN revoked_at;"
	    "ALTER TABLE tokens DROP COLUMN revoked_by;"
	    "ALTER TABLE tokens DROP COLUMN last_used_at;"
	    "DELETE FROM schema_version WHERE version = 6;"
	    "INSERT INTO tokens (id, name, role, hash, created_at, scope) VALUES"
	    " ('qt_old', 'old', 'admin', zeroblob(32), 5, '[\"staff\"]');", SQLITE_OK);
	if (store_open(&store_sqlite, f->path, NCONN, &f->st, &e) != 0)
		fail_msg("store_open: %s", e.msg);
	tx = begin(f, false);
	assert_int_equal(store_token_get(tx, "qt_old", &got, h2, &e), 0);
	assert_string_equal(got.p.role, "admin");
	assert_int_equal(got.p.nscope, 1);
	assert_int_equal(got.expires_at, 0);
	assert_int_equal(got.revoked_at, 0);
	assert_null(got.revoked_by);
	assert_int_equal(got.last_used_at, 0);
	token_info_clear(&got);
	store_tx_rollback(tx);
}

static int
check_chain(const struct audit_entry *ent, void *arg)
{
	struct { char prev[65]; int64_t n; int bad; char kinds[4][16]; } *v = arg;
	struct qerr e = {0};

	v->n++;
	if (audit_check(ent, v->prev, v->n, &e) != 0) {
		print_message("entry %lld: %s\n", (long long)ent->seq, e.msg);
		v->bad++;
	}
	if (v->n <= 4)
		snprintf(v->kinds[v->n - 1], sizeof(v->kinds[0]), "%d:%s", ent->format,
		    ent->actor_kind ? ent->actor_kind : "-");
	memcpy(v->prev, ent->hash, 65);
	return 0;
}

/*
 * Entries written before migration 7 (format 1: no kind, id or client) still
 * verify after it, chained to new ones (format 2) that hold all three.
 */
static void
test_audit_migration(void **state)
{
	struct fx *f = *state;
	struct { char prev[65]; int64_t n; int bad; char kinds[4][16]; } v;
	struct audit_entry ent[2];
	struct store_tx *tx;
	struct qerr e = {0};
	char sql[1024];
	int i;

	store_close(f->st);
	f->st = NULL;
	raw_exec(f, undo_after_6, SQLITE_OK);
	/* Two entries as quell wrote them then. */
	for (i = 0; i < 2; i++) {
		memset(&ent[i], 0, sizeof(ent[i]));
		ent[i].seq = i + 1;
		ent[i].time = 1000 + i;
		ent[i].actor = "old-admin";
		ent[i].event = "action.requested";
		ent[i].detail = "{\"n\":1}";
		assert_int_equal(audit_seal(&ent[i], i ? ent[0].hash : audit_genesis, &e), 0);
		snprintf(sql, sizeof(sql), "INSERT INTO audit (seq, time, actor, event, detail,"
		    " prev_hash, hash) VALUES (%d, %d, 'old-admin', 'action.requested',"
		    " '{\"n\":1}', '%s', '%s')", i + 1, 1000 + i, ent[i].prev_hash,
		    ent[i].hash);
		raw_exec(f, sql, SQLITE_OK);
	}
	if (store_open(&store_sqlite, f->path, NCONN, &f->st, &e) != 0)
		fail_msg("store_open: %s", e.msg);
	memset(&ent[0], 0, sizeof(ent[0]));
	ent[0].time = 2000;
	ent[0].actor = "sec-admin";
	ent[0].actor_kind = "jwt";
	ent[0].actor_id = "https://issuer.test#sub-1";
	ent[0].client = "127.0.0.1";
	ent[0].event = "action.requested";
	ent[0].detail = "{}";
	tx = begin(f, true);
	assert_int_equal(store_audit_append(tx, &ent[0], &e), 0);
	commit(tx);

	memset(&v, 0, sizeof(v));
	memcpy(v.prev, audit_genesis, sizeof(v.prev));
	tx = begin(f, false);
	assert_int_equal(store_audit_list(tx, 0, 0, check_chain, &v, &e), 0);
	store_tx_rollback(tx);
	assert_int_equal(v.n, 3);
	assert_int_equal(v.bad, 0);
	assert_string_equal(v.kinds[0], "1:-");
	assert_string_equal(v.kinds[1], "1:-");
	assert_string_equal(v.kinds[2], "2:jwt");

	/* The new fields are in the hash: a changed kind breaks the chain. */
	store_close(f->st);
	f->st = NULL;
	raw_exec(f, "DROP TRIGGER audit_no_update;"
	    "UPDATE audit SET actor_kind = 'token' WHERE seq = 3;", SQLITE_OK);
	if (store_open(&store_sqlite, f->path, NCONN, &f->st, &e) != 0)
		fail_msg("store_open: %s", e.msg);
	memset(&v, 0, sizeof(v));
	memcpy(v.prev, audit_genesis, sizeof(v.prev));
	tx = begin(f, false);
	assert_int_equal(store_audit_list(tx, 0, 0, check_chain, &v, &e), 0);
	store_tx_rollback(tx);
	assert_int_equal(v.bad, 1);
}

static void
mk_identity(struct identity *idn, const char *id, const char *name, size_t ntags,
    const char *const *tags)
{
	size_t i;

	memset(idn, 0, sizeof(*idn));
	idn->id = xstrdup(id);
	idn->display_name = xstrdup(name);
	idn->created_at = 1000;
	if (ntags > 0) {
		idn->tags = calloc(ntags, sizeof(*idn->tags));
		assert_non_null(idn->tags);
		for (i = 0; i < ntags; i++)
			idn->tags[i] = xstrdup(tags[i]);
		idn->ntags = ntags;
	}
}

static void
mk_account(struct account *a, const char *id, const char *identity_id,
    const char *system, const char *ext, const char *username)
{
	memset(a, 0, sizeof(*a));
	a->id = xstrdup(id);
	a->identity_id = xstrdup(identity_id);
	a->system = xstrdup(system);
	a->kind = xstrdup("ad");
	a->external_id = xstrdup(ext);
	a->username = xstrdup(username);
	a->created_at = 2000;
}

static void
put_identity(struct store_tx *tx, const char *id, const char *name, size_t ntags,
    const char *const *tags)
{
	struct identity idn;
	struct qerr e = {0};

	mk_identity(&idn, id, name, ntags, tags);
	if (store_identity_insert(tx, &idn, &e) != 0)
		fail_msg("identity insert: %s", e.msg);
	identity_clear(&idn);
}

static void
put_account(struct store_tx *tx, const char *id, const char *identity_id,
    const char *system, const char *ext, const char *username)
{
	struct account a;
	struct qerr e = {0};

	mk_account(&a, id, identity_id, system, ext, username);
	if (store_account_upsert(tx, &a, &e) != 0)
		fail_msg("account upsert: %s", e.msg);
	account_clear(&a);
}

struct collect {
	char ids[64][48];
	int n;
};

static int
collect_identity(const struct identity *idn, void *arg)
{
	struct collect *c = arg;

	snprintf(c->ids[c->n++], sizeof(c->ids[0]), "%s", idn->id);
	return 0;
}

static int
collect_action(const struct action *a, void *arg)
{
	struct collect *c = arg;

	assert_int_equal(a->nsteps, 0);
	snprintf(c->ids[c->n++], sizeof(c->ids[0]), "%s", a->id);
	return 0;
}

static struct collect
list_identities(struct store_tx *tx, const char *query, const char *after, int limit)
{
	struct identity_filter fl = { .query = query, .after_id = after, .limit = limit };
	struct collect c;
	struct qerr e = {0};

	memset(&c, 0, sizeof(c));
	if (store_identity_list(tx, &fl, collect_identity, &c, &e) != 0)
		fail_msg("identity list: %s", e.msg);
	return c;
}

static void
test_identity(void **state)
{
	struct fx *f = *state;
	struct identity got;
	struct account a;
	struct store_tx *tx;
	struct qerr e = {0};
	struct collect c;
	size_t i;

	tx = begin(f, true);
	put_identity(tx, "idn_1", hostile[0], 5, hostile);
	put_identity(tx, "idn_2", "Bob Builder", 0, NULL);
	put_identity(tx, "idn_3", "Carol 100% sure", 1, (const char *const[]){ "tier0" });
	put_identity(tx, "idn_4", "Dave_x \\path", 0, NULL);
	mk_identity(&got, "idn_5", NULL, 0, NULL);
	assert_int_equal(store_identity_insert(tx, &got, &e), 0);
	assert_int_equal(store_identity_insert(tx, &got, &e), QERR_CONFLICT);
	identity_clear(&got);
	put_account(tx, "acc_1", "idn_2", "corp", "guid-1", "bbuilder");
	mk_account(&a, "acc_2", "idn_2", "entra", "oid-2", NULL);
	a.upn = xstrdup("Bob@Example.COM");
	a.sid = xstrdup("S-1-5-21-1");
	a.display_name = xstrdup(hostile[2]);
	assert_int_equal(store_account_upsert(tx, &a, &e), 0);
	account_clear(&a);
	put_account(tx, "acc_3", NULL, "corp", "guid-3", "orphan");
	commit(tx);

	tx = begin(f, false);
	assert_int_equal(store_identity_get(tx, "idn_1", &got, &e), 0);
	assert_string_equal(got.display_name, hostile[0]);
	assert_int_equal(got.ntags, 5);
	for (i = 0; i < 5; i++)
		assert_string_equal(got.tags[i], hostile[i]);
	assert_int_equal(got.naccounts, 0);
	identity_clear(&got);

	assert_int_equal(store_identity_get(tx, "idn_2", &got, &e), 0);
	assert_int_equal(got.ntags, 0);
	assert_int_equal(got.naccounts, 2);
	assert_string_equal(got.accounts[0].id, "acc_1");
	assert_string_equal(got.accounts[0].username, "bbuilder");
	assert_null(got.accounts[0].upn);
	assert_null(got.accounts[0].sid);
	assert_string_equal(got.accounts[1].upn, "Bob@Example.COM");
	assert_string_equal(got.accounts[1].display_name, hostile[2]);
	assert_null(got.accounts[1].username);
	identity_clear(&got);

	assert_int_equal(store_identity_get(tx, "idn_5", &got, &e), 0);
	assert_null(got.display_name);
	identity_clear(&got);
	assert_int_equal(store_identity_get(tx, "idn_9", &got, &e), QERR_NOT_FOUND);

	c = list_identities(tx, NULL, NULL, 100);
	assert_int_equal(c.n, 5);
	assert_string_equal(c.ids[0], "idn_1");
	assert_string_equal(c.ids[4], "idn_5");
	c = list_identities(tx, NULL, "idn_2", 2);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[0], "idn_3");
	assert_string_equal(c.ids[1], "idn_4");
	/* Case-insensitive, on the display name or any linked account's names. */
	c = list_identities(tx, "BUILDER", NULL, 100);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "idn_2");
	c = list_identities(tx, "example.com", NULL, 100);
	assert_int_equal(c.n, 1);
	c = list_identities(tx, "s-1-5-21", NULL, 100);
	assert_int_equal(c.n, 1);
	c = list_identities(tx, "\xe5\x90\x8d", NULL, 100);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "idn_2");
	c = list_identities(tx, "orphan", NULL, 100);
	assert_int_equal(c.n, 0);
	/* The user's % and _ are literal characters, not wildcards. */
	c = list_identities(tx, "%", NULL, 100);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "idn_3");
	c = list_identities(tx, "_", NULL, 100);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "idn_4");
	c = list_identities(tx, "0% S", NULL, 100);
	assert_int_equal(c.n, 1);
	c = list_identities(tx, "0%_", NULL, 100);
	assert_int_equal(c.n, 0);
	c = list_identities(tx, "b_b", NULL, 100);
	assert_int_equal(c.n, 0);
	c = list_identities(tx, "_x \\p", NULL, 100);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "idn_4");
	c = list_identities(tx, "\\", NULL, 100);
	assert_int_equal(c.n, 1);
	c = list_identities(tx, "\\%", NULL, 100);
	assert_int_equal(c.n, 0);
	c = list_identities(tx, "\"; DROP", NULL, 100);
	assert_int_equal(c.n, 1);
	{
		struct identity_filter fl = { .limit = 0 };

		assert_int_equal(store_identity_list(tx, &fl, collect_identity, &c, &e),
		    QERR_INVALID);
	}
	store_tx_rollback(tx);

	/* Tags and names in the database are exactly what was given. */
	tx = begin(f, true);
	put_identity(tx, "idn_6", "x", 1, (const char *const[]){ hostile[1] });
	c = list_identities(tx, "back\\slash", NULL, 100);
	assert_int_equal(c.n, 0);
	commit(tx);
}

static void
test_account(void **state)
{
	struct fx *f = *state;
	struct account a, got;
	struct store_tx *tx;
	struct qerr e = {0};

	tx = begin(f, true);
	put_identity(tx, "idn_1", "Alice", 0, NULL);
	mk_account(&a, "acc_1", "idn_1", "corp", "guid-1", "alice");
	a.state = xstrdup("enabled");
	a.state_read_at = 10;
	assert_int_equal(store_account_upsert(tx, &a, &e), 0);
	assert_string_equal(a.id, "acc_1");
	account_clear(&a);

	/* Seen again by a listing under a fresh id and without a link. */
	mk_account(&a, "acc_new", NULL, "corp", "guid-1", "alice2");
	a.upn = xstrdup("alice@corp");
	a.email = xstrdup("Alice@Corp.example");
	a.synced = true;
	assert_int_equal(store_account_upsert(tx, &a, &e), 0);
	assert_string_equal(a.id, "acc_1");
	account_clear(&a);
	assert_int_equal(store_account_get(tx, "acc_1", &got, &e), 0);
	assert_string_equal(got.identity_id, "idn_1");
	assert_string_equal(got.username, "alice2");
	assert_string_equal(got.upn, "alice@corp");
	assert_string_equal(got.email, "Alice@Corp.example");
	assert_true(got.synced);
	assert_string_equal(got.state, "enabled");
	assert_int_equal(got.state_read_at, 10);
	assert_int_equal(got.created_at, 2000);
	account_clear(&got);
	assert_int_equal(store_account_get(tx, "acc_new", &got, &e), QERR_NOT_FOUND);

	/* Same external id in another system is another account. */
	mk_account(&a, "acc_2", NULL, "other", "guid-1", "alice");
	assert_int_equal(store_account_upsert(tx, &a, &e), 0);
	assert_string_equal(a.id, "acc_2");
	account_clear(&a);
	mk_account(&a, NULL, NULL, "other", "guid-9", "x");
	assert_int_equal(store_account_upsert(tx, &a, &e), QERR_INVALID);
	account_clear(&a);

	assert_int_equal(store_account_link(tx, "acc_2", "idn_1", &e), 0);
	assert_int_equal(store_account_link(tx, "acc_1", NULL, &e), 0);
	assert_int_equal(store_account_link(tx, "acc_1", "idn_nope", &e), QERR_CONFLICT);
	assert_int_equal(store_account_link(tx, "acc_nope", "idn_1", &e),
	    QERR_NOT_FOUND);
	assert_int_equal(store_account_get(tx, "acc_1", &got, &e), 0);
	assert_null(got.identity_id);
	account_clear(&got);
	assert_int_equal(store_account_set_state(tx, "acc_2", "disabled", 99, &e), 0);
	assert_int_equal(store_account_set_state(tx, "acc_x", "disabled", 99, &e),
	    QERR_NOT_FOUND);
	assert_int_equal(store_account_get(tx, "acc_2", &got, &e), 0);
	assert_string_equal(got.identity_id, "idn_1");
	assert_string_equal(got.state, "disabled");
	assert_int_equal(got.state_read_at, 99);
	account_clear(&got);
	commit(tx);
}

static void
mk_action(struct action *a, const char *id, enum action_type type,
    enum action_status status, const char *identity_id, int64_t created,
    size_t nsteps, const char *const *systems)
{
	char sid[64];
	size_t i;

	memset(a, 0, sizeof(*a));
	a->id = xstrdup(id);
	a->type = type;
	a->status = status;
	a->identity_id = xstrdup(identity_id);
	a->requested_by = xstrdup("alice");
	a->source = xstrdup("manual");
	a->params = xstrdup("{}");
	a->created_at = created;
	a->updated_at = created;
	if (nsteps == 0)
		return;
	a->steps = calloc(nsteps, sizeof(*a->steps));
	assert_non_null(a->steps);
	a->nsteps = nsteps;
	for (i = 0; i < nsteps; i++) {
		struct step *s = &a->steps[i];

		/* Listed in reverse id order so that the store must sort them. */
		snprintf(sid, sizeof(sid), "stp_%s_%02zu", id + 4, nsteps - 1 - i);
		s->id = xstrdup(sid);
		s->action_id = xstrdup(id);
		s->account_id = xstrdup("acc_1");
		s->system = xstrdup(systems != NULL ? systems[i] : "corp");
		s->account_ref = xstrdup("guid-1");
		s->account_name = xstrdup("alice");
		s->type = type;
		s->status = STEP_QUEUED;
		s->params = xstrdup("{}");
		s->created_at = created + (int64_t)(nsteps - 1 - i);
		s->updated_at = s->created_at;
	}
}

static void
put_action(struct store_tx *tx, const char *id, enum action_type type,
    enum action_status status, const char *identity_id, int64_t created,
    size_t nsteps, const char *const *systems)
{
	struct action a;
	struct qerr e = {0};

	mk_action(&a, id, type, status, identity_id, created, nsteps, systems);
	if (store_action_insert(tx, &a, &e) != 0)
		fail_msg("action insert: %s", e.msg);
	action_clear(&a);
}

static struct collect
list_actions(struct store_tx *tx, const struct action_filter *fl)
{
	struct collect c;
	struct qerr e = {0};

	memset(&c, 0, sizeof(c));
	if (store_action_list(tx, fl, collect_action, &c, &e) != 0)
		fail_msg("action list: %s", e.msg);
	return c;
}

static void
test_action(void **state)
{
	struct fx *f = *state;
	struct action a, got;
	struct action_filter fl;
	struct store_tx *tx;
	struct qerr e = {0};
	struct collect c;
	char **ids = NULL;
	size_t n = 0, i;

	tx = begin(f, true);
	put_action(tx, "act_01", ACTION_DISABLE, ACTION_COMPLETED, "idn_1", 100, 3, NULL);
	put_action(tx, "act_02", ACTION_ENABLE, ACTION_QUEUED, "idn_2", 200, 1, NULL);
	put_action(tx, "act_03", ACTION_DISABLE, ACTION_QUEUED, "idn_1", 300, 0, NULL);
	put_action(tx, "act_04", ACTION_SET_RISK, ACTION_DENIED, "idn_1", 400, 0, NULL);
	put_action(tx, "act_05", ACTION_DISABLE, ACTION_PENDING_APPROVAL, "idn_2", 500,
	    1, NULL);
	mk_action(&a, "act_01", ACTION_DISABLE, ACTION_QUEUED, "idn_1", 1, 0, NULL);
	assert_int_equal(store_action_insert(tx, &a, &e), QERR_CONFLICT);
	action_clear(&a);
	mk_action(&a, "act_06", ACTION_TYPE_COUNT, ACTION_QUEUED, "idn_1", 1, 0, NULL);
	assert_int_equal(store_action_insert(tx, &a, &e), QERR_INVALID);
	action_clear(&a);
	commit(tx);

	tx = begin(f, false);
	assert_int_equal(store_action_get(tx, "act_01", &got, &e), 0);
	assert_int_equal(got.type, ACTION_DISABLE);
	assert_int_equal(got.status, ACTION_COMPLETED);
	assert_string_equal(got.identity_id, "idn_1");
	assert_null(got.account_id);
	assert_null(got.reason);
	assert_null(got.message);
	assert_string_equal(got.params, "{}");
	assert_int_equal(got.nsteps, 3);
	for (i = 0; i < 3; i++) {
		char want[32];

		snprintf(want, sizeof(want), "stp_01_%02zu", i);
		assert_string_equal(got.steps[i].id, want);
		assert_string_equal(got.steps[i].action_id, "act_01");
		assert_int_equal(got.steps[i].status, STEP_QUEUED);
		assert_null(got.steps[i].lease_owner);
	}
	action_clear(&got);
	assert_int_equal(store_action_get(tx, "act_99", &got, &e), QERR_NOT_FOUND);

	memset(&fl, 0, sizeof(fl));
	fl.limit = 100;
	c = list_actions(tx, &fl);
	assert_int_equal(c.n, 5);
	assert_string_equal(c.ids[0], "act_05");
	assert_string_equal(c.ids[4], "act_01");
	fl.status = "queued";
	c = list_actions(tx, &fl);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[0], "act_03");
	fl.type = "disable";
	c = list_actions(tx, &fl);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "act_03");
	fl.status = NULL;
	fl.identity_id = "idn_2";
	c = list_actions(tx, &fl);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "act_05");
	fl.type = NULL;
	fl.since = 300;
	c = list_actions(tx, &fl);
	assert_int_equal(c.n, 1);
	fl.identity_id = NULL;
	c = list_actions(tx, &fl);
	assert_int_equal(c.n, 3);
	fl.since = 0;
	fl.limit = 2;
	c = list_actions(tx, &fl);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[1], "act_04");
	fl.before_id = "act_04";
	c = list_actions(tx, &fl);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[0], "act_03");
	assert_string_equal(c.ids[1], "act_02");
	fl.before_id = "act_02";
	c = list_actions(tx, &fl);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "act_01");
	fl.status = "bogus";
	assert_int_equal(store_action_list(tx, &fl, collect_action, &c, &e),
	    QERR_INVALID);
	fl.status = NULL;
	fl.limit = 1001;
	assert_int_equal(store_action_list(tx, &fl, collect_action, &c, &e),
	    QERR_INVALID);

	assert_int_equal(store_action_open_ids(tx, &ids, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ids[0], "act_02");
	assert_string_equal(ids[1], "act_03");
	assert_string_equal(ids[2], "act_05");
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	store_tx_rollback(tx);

	tx = begin(f, true);
	mk_action(&a, "act_02", ACTION_ENABLE, ACTION_FAILED, "idn_2", 200, 0, NULL);
	a.message = xstrdup(hostile[3]);
	a.cancel_requested = true;
	a.updated_at = 777;
	a.finished_at = 778;
	a.decided_by = xstrdup("bob");
	assert_int_equal(store_action_update(tx, &a, &e), 0);
	action_clear(&a);
	mk_action(&a, "act_77", ACTION_ENABLE, ACTION_FAILED, "idn_2", 200, 0, NULL);
	assert_int_equal(store_action_update(tx, &a, &e), QERR_NOT_FOUND);
	action_clear(&a);
	assert_int_equal(store_action_get(tx, "act_02", &got, &e), 0);
	assert_int_equal(got.status, ACTION_FAILED);
	assert_string_equal(got.message, hostile[3]);
	assert_true(got.cancel_requested);
	assert_int_equal(got.updated_at, 777);
	assert_int_equal(got.finished_at, 778);
	assert_int_equal(got.created_at, 200);
	assert_string_equal(got.decided_by, "bob");
	assert_int_equal(got.nsteps, 1);
	action_clear(&got);

	mk_action(&a, "act_90", ACTION_ENABLE, ACTION_PENDING_APPROVAL, "idn_2", 900, 0,
	    NULL);
	a.requested_by_id = xstrdup("qt_1");
	a.undo_of = xstrdup("act_02");
	a.approval_rule = xstrdup("tier0");
	a.approval_expires = 12345;
	assert_int_equal(store_action_insert(tx, &a, &e), 0);
	action_clear(&a);
	assert_int_equal(store_action_get(tx, "act_90", &got, &e), 0);
	assert_string_equal(got.requested_by_id, "qt_1");
	assert_string_equal(got.undo_of, "act_02");
	assert_string_equal(got.approval_rule, "tier0");
	assert_null(got.decided_by);
	assert_int_equal(got.approval_expires, 12345);
	action_clear(&got);
	commit(tx);
}

static int
claim(struct fx *f, const char *owner, int64_t now, const char *const *skip,
    size_t nskip, struct step *out)
{
	struct step_claim cl = { .owner = owner, .now = now, .lease_ms = 1000,
	    .skip_systems = skip, .nskip = nskip };
	struct store_tx *tx = begin(f, true);
	struct qerr e = {0};
	int r;

	r = store_step_claim(tx, &cl, out, &e);
	if (r != 0 && r != QERR_NOT_FOUND)
		fail_msg("claim: %s", e.msg);
	commit(tx);
	return r;
}

static void
set_step(struct fx *f, struct step *s)
{
	struct store_tx *tx = begin(f, true);
	struct qerr e = {0};

	if (store_step_update(tx, s, &e) != 0)
		fail_msg("step update: %s", e.msg);
	commit(tx);
}

static void
test_claim(void **state)
{
	struct fx *f = *state;
	const char *const systems[] = { "okta", "corp", "entra" };
	const char *const skip_corp[] = { "corp" };
	const char *const skip_two[] = { "corp", "entra" };
	const char *const skip_all[] = { "corp", "okta", "entra" };
	struct store_tx *tx;
	struct action got;
	struct step s;
	struct qerr e = {0};
	int64_t due;

	tx = begin(f, true);
	/* Steps (created_at): act_01 on corp (100), act_02 pending (150), act_03 three
	 * systems (200, 201, 202 for step ids 00, 01, 02), act_04 cancelled (50). */
	put_action(tx, "act_01", ACTION_DISABLE, ACTION_QUEUED, "idn_1", 100, 1, NULL);
	put_action(tx, "act_02", ACTION_DISABLE, ACTION_PENDING_APPROVAL, "idn_1", 150,
	    1, NULL);
	put_action(tx, "act_03", ACTION_DISABLE, ACTION_RUNNING, "idn_1", 200, 3,
	    systems);
	put_action(tx, "act_04", ACTION_DISABLE, ACTION_CANCELLED, "idn_1", 50, 1, NULL);
	assert_int_equal(store_step_next_due(tx, &due, &e), 0);
	assert_int_equal(due, 0);
	commit(tx);

	/* Oldest first; the pending and cancelled actions' steps are never taken. */
	assert_int_equal(claim(f, "n1", 1000, skip_corp, 1, &s), 0);
	assert_string_equal(s.id, "stp_03_00");
	assert_string_equal(s.system, "entra");
	assert_int_equal(s.status, STEP_RUNNING);
	assert_string_equal(s.lease_owner, "n1");
	assert_int_equal(s.lease_expires, 2000);
	assert_int_equal(s.attempts, 1);
	assert_int_equal(s.started_at, 1000);
	assert_int_equal(s.updated_at, 1000);
	step_clear(&s);
	assert_int_equal(claim(f, "n1", 1000, skip_all, 3, &s), QERR_NOT_FOUND);
	assert_null(s.id);
	assert_int_equal(claim(f, "n1", 1000, NULL, 0, &s), 0);
	assert_string_equal(s.id, "stp_01_00");
	step_clear(&s);
	assert_int_equal(claim(f, "n1", 1000, NULL, 0, &s), 0);
	assert_string_equal(s.id, "stp_03_01");
	step_clear(&s);
	assert_int_equal(claim(f, "n2", 1000, NULL, 0, &s), 0);
	assert_string_equal(s.id, "stp_03_02");
	assert_string_equal(s.system, "okta");

	/* Put it to retry_wait until 5000. */
	s.status = STEP_RETRY_WAIT;
	s.not_before = 5000;
	free(s.lease_owner);
	s.lease_owner = NULL;
	s.lease_expires = 0;
	s.error_code = xstrdup("E0000047");
	s.message = xstrdup(hostile[4]);
	s.updated_at = 1001;
	set_step(f, &s);
	step_clear(&s);

	/* Unexpired leases (n1 until 2000) and the waiting step are not claimable. */
	assert_int_equal(claim(f, "n3", 1999, NULL, 0, &s), QERR_NOT_FOUND);
	tx = begin(f, false);
	assert_int_equal(store_step_next_due(tx, &due, &e), 0);
	assert_int_equal(due, 2000);
	store_tx_rollback(tx);

	/* n1 renews to 3000; then at 2500 nothing is claimable. */
	tx = begin(f, true);
	assert_int_equal(store_step_renew(tx, "n1", 3000, &e), 0);
	commit(tx);
	assert_int_equal(claim(f, "n3", 2500, NULL, 0, &s), QERR_NOT_FOUND);

	/* Expired at 3001: claimed again, by someone else, attempts 2, first start
	 * time kept. */
	assert_int_equal(claim(f, "n3", 3001, NULL, 0, &s), 0);
	assert_string_equal(s.id, "stp_01_00");
	assert_string_equal(s.lease_owner, "n3");
	assert_int_equal(s.attempts, 2);
	assert_int_equal(s.started_at, 1000);
	step_clear(&s);
	assert_int_equal(claim(f, "n3", 3001, NULL, 0, &s), 0);
	assert_string_equal(s.id, "stp_03_00");
	step_clear(&s);
	assert_int_equal(claim(f, "n3", 3001, NULL, 0, &s), 0);
	assert_string_equal(s.id, "stp_03_01");
	step_clear(&s);
	assert_int_equal(claim(f, "n3", 4000, NULL, 0, &s), QERR_NOT_FOUND);

	tx = begin(f, false);
	assert_int_equal(store_step_next_due(tx, &due, &e), 0);
	assert_int_equal(due, 4001);
	store_tx_rollback(tx);

	/* The retry becomes claimable at its not_before, not before. */
	assert_int_equal(claim(f, "n4", 4999, skip_two, 2, &s), QERR_NOT_FOUND);
	assert_int_equal(claim(f, "n4", 5000, skip_two, 2, &s), 0);
	assert_string_equal(s.id, "stp_03_02");
	assert_int_equal(s.attempts, 2);
	assert_string_equal(s.error_code, "E0000047");
	assert_string_equal(s.message, hostile[4]);

	/* Finish it: terminal steps are never claimed again. */
	s.status = STEP_SUCCEEDED;
	s.finished_at = 5001;
	set_step(f, &s);
	step_clear(&s);
	tx = begin(f, false);
	assert_int_equal(store_action_get(tx, "act_03", &got, &e), 0);
	assert_int_equal(got.steps[2].status, STEP_SUCCEEDED);
	assert_int_equal(got.steps[2].finished_at, 5001);
	assert_string_equal(got.steps[2].lease_owner, "n4");
	action_clear(&got);
	store_tx_rollback(tx);

	/* n3 restarts (its leases run until 4001): its steps are released and
	 * claimable at once by anyone. */
	tx = begin(f, true);
	assert_int_equal(store_step_release(tx, "n3", &e), 0);
	assert_int_equal(store_step_next_due(tx, &due, &e), 0);
	assert_int_equal(due, 1);
	commit(tx);
	assert_int_equal(claim(f, "n5", 3500, NULL, 0, &s), 0);
	assert_string_equal(s.id, "stp_01_00");
	assert_string_equal(s.lease_owner, "n5");
	assert_int_equal(s.attempts, 3);
	step_clear(&s);

	/* A renew by the released owner does not take anything back. */
	tx = begin(f, true);
	assert_int_equal(store_step_renew(tx, "n3", 99999, &e), 0);
	commit(tx);
	assert_int_equal(claim(f, "n6", 3500, NULL, 0, &s), 0);
	assert_string_equal(s.id, "stp_03_00");
	step_clear(&s);
	assert_int_equal(claim(f, "n6", 3500, NULL, 0, &s), 0);
	assert_string_equal(s.id, "stp_03_01");
	step_clear(&s);
	assert_int_equal(claim(f, "n6", 3500, NULL, 0, &s), QERR_NOT_FOUND);

	memset(&s, 0, sizeof(s));
	s.id = xstrdup("stp_none");
	tx = begin(f, true);
	assert_int_equal(store_step_update(tx, &s, &e), QERR_NOT_FOUND);
	commit(tx);
	step_clear(&s);
}

struct race {
	pthread_mutex_t mu;
	int count[RACE_STEPS];
	int errors;
};

struct racer {
	struct race *race;
	struct fx *fx;		/* whose store it claims through (a node's) */
	char owner[16];
};

static void *
race_run(void *arg)
{
	struct racer *me = arg;
	struct race *ra = me->race;
	struct step_claim cl = { .owner = me->owner, .lease_ms = 60000 };
	struct store_tx *tx;
	struct qerr e = {0};
	struct step s;
	int r, k;

	for (;;) {
		if (store_tx_begin(me->fx->st, true, &tx, &e) != 0)
			break;
		cl.now = now_ms();
		r = store_step_claim(tx, &cl, &s, &e);
		if (r != 0) {
			store_tx_rollback(tx);
			if (r != QERR_NOT_FOUND) {
				pthread_mutex_lock(&ra->mu);
				ra->errors++;
				pthread_mutex_unlock(&ra->mu);
			}
			break;
		}
		s.status = STEP_SUCCEEDED;
		s.finished_at = cl.now;
		s.updated_at = cl.now;
		r = store_step_update(tx, &s, &e);
		k = atoi(s.id + strlen("stp_race_"));
		step_clear(&s);
		if (r != 0 || store_tx_commit(tx, &e) != 0) {
			if (r != 0)
				store_tx_rollback(tx);
			pthread_mutex_lock(&ra->mu);
			ra->errors++;
			pthread_mutex_unlock(&ra->mu);
			break;
		}
		pthread_mutex_lock(&ra->mu);
		if (k >= 0 && k < RACE_STEPS)
			ra->count[k]++;
		pthread_mutex_unlock(&ra->mu);
	}
	return NULL;
}

static void
test_race(void **state)
{
	struct fx *f = *state;
	struct race ra;
	struct racer rs[RACE_THREADS];
	pthread_t th[RACE_THREADS];
	struct store_tx *tx;
	struct action a;
	char sid[32];
	double t0, t1;
	int i;

	memset(&ra, 0, sizeof(ra));
	pthread_mutex_init(&ra.mu, NULL);
	mk_action(&a, "act_race", ACTION_DISABLE, ACTION_RUNNING, "idn_1", 1,
	    RACE_STEPS, NULL);
	for (i = 0; i < RACE_STEPS; i++) {
		free(a.steps[i].id);
		snprintf(sid, sizeof(sid), "stp_race_%03d", i);
		a.steps[i].id = xstrdup(sid);
	}
	tx = begin(f, true);
	assert_int_equal(store_action_insert(tx, &a, NULL), 0);
	commit(tx);
	action_clear(&a);

	t0 = mono_s();
	for (i = 0; i < RACE_THREADS; i++) {
		rs[i].race = &ra;
		rs[i].fx = f;
		snprintf(rs[i].owner, sizeof(rs[i].owner), "w%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, race_run, &rs[i]), 0);
	}
	for (i = 0; i < RACE_THREADS; i++)
		pthread_join(th[i], NULL);
	t1 = mono_s();
	assert_int_equal(ra.errors, 0);
	for (i = 0; i < RACE_STEPS; i++)
		if (ra.count[i] != 1)
			fail_msg("step %d claimed %d times", i, ra.count[i]);
	print_message("%d claim+complete transactions on %d threads: %.0f/s\n",
	    RACE_STEPS, RACE_THREADS, RACE_STEPS / (t1 - t0));
	pthread_mutex_destroy(&ra.mu);
}

struct chain {
	char prev[65];
	int64_t seq;
	int64_t broken_at;
	char why[512];
};

static int
check_entry(const struct audit_entry *ent, void *arg)
{
	struct chain *ch = arg;
	struct qerr e = {0};

	if (ch->broken_at == 0 && audit_check(ent, ch->prev, ch->seq + 1, &e) != 0) {
		ch->broken_at = ent->seq;
		snprintf(ch->why, sizeof(ch->why), "%s", e.msg);
	}
	memcpy(ch->prev, ent->hash, sizeof(ch->prev));
	ch->seq = ent->seq;
	return 0;
}

static struct chain
verify(struct fx *f)
{
	struct store_tx *tx = begin(f, false);
	struct chain ch;
	struct qerr e = {0};

	memset(&ch, 0, sizeof(ch));
	memcpy(ch.prev, audit_genesis, sizeof(ch.prev));
	if (store_audit_list(tx, 0, 0, check_entry, &ch, &e) != 0)
		fail_msg("audit list: %s", e.msg);
	store_tx_rollback(tx);
	return ch;
}

static int
count_entry(const struct audit_entry *ent, void *arg)
{
	int *n = arg;

	(void)ent;
	(*n)++;
	return 0;
}

static void
test_audit(void **state)
{
	struct fx *f = *state;
	struct audit_entry ent;
	struct store_tx *tx;
	struct qerr e = {0};
	struct chain ch;
	char detail[128];
	int i, n;

	for (i = 1; i <= 6; i++) {
		memset(&ent, 0, sizeof(ent));
		ent.time = 1000 + i;
		ent.actor = xstrdup(i == 2 ? hostile[2] : "alice");
		ent.event = xstrdup("action.requested");
		ent.action_id = xstrdup(i % 2 ? "act_1" : NULL);
		snprintf(detail, sizeof(detail), "{\"n\":%d,\"why\":\"x\"}", i);
		ent.detail = xstrdup(detail);
		tx = begin(f, true);
		assert_int_equal(store_audit_append(tx, &ent, &e), 0);
		assert_int_equal(ent.seq, i);
		assert_int_equal(strlen(ent.hash), 64);
		commit(tx);
		audit_entry_clear(&ent);
	}
	/* Not in a read transaction, and not with a detail that is not an object. */
	memset(&ent, 0, sizeof(ent));
	ent.event = xstrdup("x");
	ent.detail = xstrdup("[1]");
	tx = begin(f, false);
	assert_int_equal(store_audit_append(tx, &ent, &e), QERR_INTERNAL);
	store_tx_rollback(tx);
	tx = begin(f, true);
	assert_int_equal(store_audit_append(tx, &ent, &e), QERR_INVALID);
	store_tx_rollback(tx);
	audit_entry_clear(&ent);

	ch = verify(f);
	assert_int_equal(ch.seq, 6);
	assert_int_equal(ch.broken_at, 0);

	tx = begin(f, false);
	n = 0;
	assert_int_equal(store_audit_list(tx, 2, 3, count_entry, &n, &e), 0);
	assert_int_equal(n, 3);
	n = 0;
	assert_int_equal(store_audit_list(tx, 4, 0, count_entry, &n, &e), 0);
	assert_int_equal(n, 2);
	store_tx_rollback(tx);

	/* quell's own connection cannot rewrite history ... */
	raw_exec(f, "UPDATE audit SET detail = '{\"n\":33}' WHERE seq = 3", SQLITE_CONSTRAINT);
	raw_exec(f, "DELETE FROM audit WHERE seq = 6", SQLITE_CONSTRAINT);
	/* ... and whoever gets around that is caught at the entry altered. */
	raw_exec(f, T.pg != NULL ? "DROP TRIGGER audit_no_update ON audit;"
	    "UPDATE audit SET detail = '{\"n\":33,\"why\":\"x\"}' WHERE seq = 3" :
	    "DROP TRIGGER audit_no_update;"
	    "UPDATE audit SET detail = '{\"n\":33,\"why\":\"x\"}' WHERE seq = 3",
	    SQLITE_OK);
	ch = verify(f);
	assert_int_equal(ch.broken_at, 3);
	assert_non_null(strstr(ch.why, "entry 3"));
}

static void
test_rollback(void **state)
{
	struct fx *f = *state;
	struct identity got;
	struct audit_entry ent;
	struct store_tx *tx;
	struct qerr e = {0};

	tx = begin(f, true);
	put_identity(tx, "idn_1", "Alice", 0, NULL);
	put_action(tx, "act_1", ACTION_DISABLE, ACTION_QUEUED, "idn_1", 1, 2, NULL);
	memset(&ent, 0, sizeof(ent));
	ent.event = xstrdup("action.requested");
	assert_int_equal(store_audit_append(tx, &ent, &e), 0);
	audit_entry_clear(&ent);
	store_tx_rollback(tx);
	store_tx_rollback(NULL);

	tx = begin(f, false);
	assert_int_equal(store_identity_get(tx, "idn_1", &got, &e), QERR_NOT_FOUND);
	{
		struct action a;

		assert_int_equal(store_action_get(tx, "act_1", &a, &e), QERR_NOT_FOUND);
	}
	store_tx_rollback(tx);
	assert_int_equal(verify(f).seq, 0);
}

struct opener {
	const char *loc;
	int r;
	char msg[512];
};

static void *
open_run(void *arg)
{
	struct opener *o = arg;
	struct store *st = NULL;
	struct qerr e = {0};

	o->r = store_open(T.ops, o->loc, 2, &st, &e);
	snprintf(o->msg, sizeof(o->msg), "%s", e.msg);
	store_close(st);
	return NULL;
}

/* Nodes starting together on an empty database: each migration is applied once. */
static void
test_pg_migrate_together(void **state)
{
	struct fx *f = *state;
	struct opener o[4];
	pthread_t th[4];
	int i;

	store_close(f->st);
	f->st = NULL;
	pg_exec(T.pg, "DROP SCHEMA " PG_SCHEMA " CASCADE; DROP SCHEMA hunting CASCADE;"
	    " CREATE SCHEMA " PG_SCHEMA, true);
	for (i = 0; i < 4; i++) {
		o[i].loc = f->loc;
		assert_int_equal(pthread_create(&th[i], NULL, open_run, &o[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (o[i].r != 0)
			fail_msg("open %d: %s", i, o[i].msg);
	}
	assert_true(raw_true(f, "SELECT count(*) = max(version) AND count(*) >= 9"
	    " FROM schema_version"));
}

/* Two nodes (two stores on one database) race for the same steps: each is taken
 * once, and the audit entries both wrote form one chain. */
static void
test_pg_two_nodes(void **state)
{
	struct fx *f = *state, g;
	struct race ra;
	struct racer rs[RACE_THREADS];
	pthread_t th[RACE_THREADS];
	struct audit_entry ent;
	struct store_tx *tx;
	struct qerr e = {0};
	struct action a;
	char sid[32];
	int i;

	g = *f;
	if (store_open(T.ops, f->loc, NCONN, &g.st, &e) != 0)
		fail_msg("store_open: %s", e.msg);
	memset(&ra, 0, sizeof(ra));
	pthread_mutex_init(&ra.mu, NULL);
	mk_action(&a, "act_race", ACTION_DISABLE, ACTION_RUNNING, "idn_1", 1,
	    RACE_STEPS, NULL);
	for (i = 0; i < RACE_STEPS; i++) {
		free(a.steps[i].id);
		snprintf(sid, sizeof(sid), "stp_race_%03d", i);
		a.steps[i].id = xstrdup(sid);
	}
	tx = begin(f, true);
	assert_int_equal(store_action_insert(tx, &a, NULL), 0);
	commit(tx);
	action_clear(&a);
	for (i = 0; i < RACE_THREADS; i++) {
		rs[i].race = &ra;
		rs[i].fx = i % 2 ? &g : f;
		snprintf(rs[i].owner, sizeof(rs[i].owner), "node%d", i % 2);
		assert_int_equal(pthread_create(&th[i], NULL, race_run, &rs[i]), 0);
	}
	for (i = 0; i < 2 * 20; i++) {
		memset(&ent, 0, sizeof(ent));
		ent.event = xstrdup("action.requested");
		ent.detail = xstrdup("{}");
		tx = begin(i % 2 ? &g : f, true);
		assert_int_equal(store_audit_append(tx, &ent, &e), 0);
		commit(tx);
		audit_entry_clear(&ent);
	}
	for (i = 0; i < RACE_THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(ra.errors, 0);
	for (i = 0; i < RACE_STEPS; i++)
		if (ra.count[i] != 1)
			fail_msg("step %d claimed %d times", i, ra.count[i]);
	assert_int_equal(verify(&g).seq, 40);
	assert_int_equal(verify(f).broken_at, 0);
	store_close(g.st);
	pthread_mutex_destroy(&ra.mu);
}

struct waiter {
	struct store *st;
	int rounds;
	bool woken;
	int r;
};

static void *
wait_run(void *arg)
{
	struct waiter *w = arg;
	struct qerr e = {0};
	int i;

	/* Up to a minute: what ends it is the other node's commit. */
	for (i = 0; i < 600 && !w->woken && w->r == 0; i++) {
		w->r = store_wait_work(w->st, 100, &w->woken, &e);
		w->rounds++;
	}
	return NULL;
}

/* A node waiting for work is woken by another's commit that queued some, not by
 * one that queued none; SQLite says it cannot tell. */
static void
test_wait_work(void **state)
{
	struct fx *f = *state;
	struct waiter w = {0};
	struct store *other = NULL;
	struct store_tx *tx;
	struct qerr e = {0};
	pthread_t th;
	bool woken = true;

	if (T.pg == NULL) {
		assert_int_equal(store_wait_work(f->st, 10, &woken, &e), QERR_UNSUPPORTED);
		assert_false(woken);
		return;
	}
	assert_int_equal(store_open(T.ops, f->loc, 1, &other, &e), 0);
	/* Listening before anything commits; a commit without work wakes nobody. */
	assert_int_equal(store_wait_work(f->st, 1, &woken, &e), 0);
	assert_false(woken);
	tx = begin(f, true);
	put_identity(tx, "idn_1", "Alice", 0, NULL);
	commit(tx);
	assert_int_equal(store_wait_work(f->st, 200, &woken, &e), 0);
	assert_false(woken);

	w.st = f->st;
	assert_int_equal(pthread_create(&th, NULL, wait_run, &w), 0);
	if (store_tx_begin(other, true, &tx, &e) != 0)
		fail_msg("begin: %s", e.msg);
	{
		struct action a;

		mk_action(&a, "act_1", ACTION_DISABLE, ACTION_QUEUED, "idn_1", 1, 1, NULL);
		assert_int_equal(store_action_insert(tx, &a, &e), 0);
		action_clear(&a);
	}
	commit(tx);
	pthread_join(th, NULL);
	assert_int_equal(w.r, 0);
	assert_true(w.woken);
	store_close(other);
}

/* What the daemon hands store_postgres: never a password, the password file added. */
static void
test_pg_location(void **state)
{
	struct qerr e = {0};
	char *loc = NULL;

	(void)state;
	assert_int_equal(store_pg_location("host=/run/pg dbname=quell sslmode=verify-full",
	    "/etc/quell/pgpass", &loc, &e), 0);
	assert_non_null(strstr(loc, "host='/run/pg'"));
	assert_non_null(strstr(loc, "sslmode='verify-full'"));
	assert_non_null(strstr(loc, "passfile='/etc/quell/pgpass'"));
	free(loc);
	assert_int_equal(store_pg_location("postgresql://quell@db.example:5433/q",
	    "/p/it's", &loc, &e), 0);
	assert_non_null(strstr(loc, "host='db.example'"));
	assert_non_null(strstr(loc, "port='5433'"));
	assert_non_null(strstr(loc, "passfile='/p/it\\'s'"));
	free(loc);
	assert_int_equal(store_pg_location("dbname=q", NULL, &loc, &e), 0);
	assert_null(strstr(loc, "passfile"));
	free(loc);
	assert_int_equal(store_pg_location("host=db password=hunter2", NULL, &loc, &e),
	    QERR_CONFIG);
	assert_null(loc);
	assert_string_equal(e.field, "conninfo");
	assert_null(strstr(e.msg, "hunter2"));
	assert_int_equal(store_pg_location("postgresql://u:hunter2@db/q", NULL, &loc, &e),
	    QERR_CONFIG);
	assert_null(strstr(e.msg, "hunter2"));
	assert_int_equal(store_pg_location("host=db dbname", NULL, &loc, &e), QERR_CONFIG);
	assert_null(loc);
}

/* The nodes and leases the store lists, as "id@last_seen" and "name=owner@expires"
 * joined by spaces. */
static int
note_node(const struct store_node *n, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%s@%lld ", n->node_id,
	    (long long)n->last_seen);
	return 0;
}

static int
note_lease(const struct store_lease *l, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%s=%s@%lld ", l->name, l->owner,
	    (long long)l->expires_at);
	return 0;
}

static void
acquire(struct fx *f, const char *name, const char *owner, int64_t now, bool want)
{
	struct store_tx *tx = begin(f, true);
	struct qerr e = {0};
	bool held = !want;

	if (store_lease_acquire(tx, name, owner, now, 100, &held, &e) != 0)
		fail_msg("lease_acquire: %s", e.msg);
	commit(tx);
	if (held != want)
		fail_msg("%s at %lld: held %d, want %d", owner, (long long)now, held, want);
}

static void
listed(struct fx *f, const char *nodes, const char *leases)
{
	struct store_tx *tx = begin(f, false);
	char n[256] = "", l[256] = "";
	struct qerr e = {0};

	assert_int_equal(store_node_list(tx, note_node, n, &e), 0);
	assert_int_equal(store_lease_list(tx, note_lease, l, &e), 0);
	store_tx_rollback(tx);
	assert_string_equal(n, nodes);
	assert_string_equal(l, leases);
}

static void
beat(struct fx *f, const char *node, int64_t now)
{
	struct store_tx *tx = begin(f, true);
	struct qerr e = {0};

	assert_int_equal(store_node_beat(tx, node, 1, now, 100, &e), 0);
	commit(tx);
}

/* A lease goes to one node until it runs out, its holder's heartbeat extends it, and
 * only its holder gives it up; SQLite serves one node, which always wins. */
static void
test_leases(void **state)
{
	struct fx *f = *state;
	struct store_tx *tx;
	struct qerr e = {0};

	beat(f, "a", 1000);
	beat(f, "b", 1010);
	listed(f, "a@1000 b@1010 ", "");
	acquire(f, "job", "a", 1000, true);
	acquire(f, "job", "b", 1050, T.pg == NULL);
	if (T.pg == NULL)
		return;
	acquire(f, "job", "a", 1060, true);	/* its own: renewed to 1160 */
	acquire(f, "job", "b", 1159, false);
	acquire(f, "job", "b", 1160, true);	/* ran out */
	acquire(f, "job", "a", 1170, false);
	beat(f, "b", 1200);			/* extends b's lease to 1300 */
	acquire(f, "job", "a", 1290, false);
	listed(f, "a@1000 b@1200 ", "job=b@1300 ");
	tx = begin(f, true);
	assert_int_equal(store_lease_release(tx, "job", "a", &e), 0);	/* not a's */
	commit(tx);
	listed(f, "a@1000 b@1200 ", "job=b@1300 ");
	tx = begin(f, true);
	assert_int_equal(store_lease_release(tx, NULL, "b", &e), 0);
	commit(tx);
	listed(f, "a@1000 b@1200 ", "");
	acquire(f, "job", "a", 1210, true);
}

/* Starts a cluster for the run (scripts/lib/pg.sh) when none is given; 0 or -1. */
static int
pg_start(char *dir, size_t n)
{
	const char *src = getenv("QUELL_SRC"), *tmp = getenv("TMPDIR");
	char cmd[1024], line[1024], *q;
	FILE *fp;

	snprintf(dir, n, "%s/quell-pg-XXXXXX", tmp ? tmp : "/tmp");
	/* Searchable by the cluster's owner (nobody, when this runs as root). */
	if (src == NULL || mkdtemp(dir) == NULL || chmod(dir, 0711) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "bash %s/scripts/lib/pg.sh up %s/c && cat %s/c/env",
	    src, dir, dir);
	if ((fp = popen(cmd, "r")) == NULL)
		return -1;
	line[0] = '\0';
	if (fgets(line, sizeof(line), fp) == NULL || pclose(fp) != 0 ||
	    (q = strchr(line, '\'')) == NULL)
		return -1;
	q[strcspn(q + 1, "'") + 1] = '\0';
	return setenv("QUELL_TEST_PG", q + 1, 1);
}

static void
pg_stop(const char *dir)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "bash %s/scripts/lib/pg.sh down %s/c; rmdir %s",
	    getenv("QUELL_SRC"), dir, dir);
	if (system(cmd) != 0)
		print_message("could not stop the cluster in %s\n", dir);
}

/* The SSF outbox: in order per stream, acknowledged once, gone with its stream;
 * a jti is received once. */
static int
ssf_collect(const char *key, const char *text, int64_t seq, void *arg)
{
	char *buf = arg;

	(void)text;
	(void)seq;
	strcat(buf, key);
	strcat(buf, " ");
	return 0;
}

static void
ssf_pending(struct fx *f, const char *stream, int limit, const char *want)
{
	struct store_tx *tx = begin(f, false);
	struct qerr e = {0};
	char got[256] = "";

	assert_int_equal(store_ssf_outbox_pending(tx, stream, limit, ssf_collect, got, &e),
	    0);
	store_tx_rollback(tx);
	assert_string_equal(got, want);
}

static void
test_ssf_outbox(void **state)
{
	struct fx *f = *state;
	struct store_tx *tx = begin(f, true);
	struct qerr e = {0};
	char ids[128] = "";
	bool fresh = false;

	assert_int_equal(store_ssf_stream_put(tx, "s1", "{\"v\":1}", 1, &e), 0);
	assert_int_equal(store_ssf_stream_put(tx, "s1", "{\"v\":2}", 2, &e), 0);
	assert_int_equal(store_ssf_stream_put(tx, "s2", "{}", 2, &e), 0);
	assert_int_equal(store_ssf_outbox_add(tx, "s1", "c", "jwt-c", 3, &e), 0);
	assert_int_equal(store_ssf_outbox_add(tx, "s2", "x", "jwt-x", 3, &e), 0);
	assert_int_equal(store_ssf_outbox_add(tx, "s1", "a", "jwt-a", 4, &e), 0);
	assert_int_equal(store_ssf_outbox_add(tx, "s1", "b", "jwt-b", 5, &e), 0);
	assert_int_not_equal(store_ssf_outbox_add(tx, "s1", "a", "again", 6, &e), 0);
	assert_int_equal(store_ssf_stream_list(tx, ssf_collect, ids, &e), 0);
	commit(tx);
	assert_string_equal(ids, "s1 s2 ");
	/* In the order they were added, not by jti. */
	ssf_pending(f, "s1", 2, "c a ");
	tx = begin(f, true);
	assert_int_equal(store_ssf_outbox_ack(tx, "s1", "a", 7, &e), 0);
	assert_int_equal(store_ssf_outbox_ack(tx, "s1", "a", 8, &e), QERR_NOT_FOUND);
	assert_int_equal(store_ssf_outbox_ack(tx, "s2", "c", 8, &e), QERR_NOT_FOUND);
	assert_int_equal(store_ssf_jti_claim(tx, "iss", "j1", 9, &fresh, &e), 0);
	assert_true(fresh);
	assert_int_equal(store_ssf_jti_claim(tx, "iss", "j1", 9, &fresh, &e), 0);
	assert_false(fresh);
	assert_int_equal(store_ssf_jti_claim(tx, "other", "j1", 9, &fresh, &e), 0);
	assert_true(fresh);
	commit(tx);
	ssf_pending(f, "s1", 10, "c b ");
	ssf_pending(f, "s2", 10, "x ");
	tx = begin(f, true);
	assert_int_equal(store_ssf_stream_delete(tx, "s1", &e), 0);
	assert_int_equal(store_ssf_stream_delete(tx, "s1", &e), QERR_NOT_FOUND);
	commit(tx);
	ssf_pending(f, "s1", 10, "");
	ssf_pending(f, "s2", 10, "x ");
}

/* One take from a bucket of burst 2 refilled at 4 per second, at time now (ms): the
 * wait it answers (0: taken). */
static int64_t
take(struct fx *f, const char *sys, int64_t now)
{
	struct store_tx *tx = begin(f, true);
	struct qerr e = {0};
	int64_t wait = -1;

	assert_int_equal(store_rate_take(tx, sys, 4.0, 2, now, &wait, &e), 0);
	commit(tx);
	return wait;
}

static void
test_rate_bucket(void **state)
{
	struct fx *f = *state;
	struct store_tx *tx;
	struct qerr e = {0};
	int64_t wait = 0;

	/* A new bucket is full: the burst goes at once, then one every 250 ms. */
	assert_int_equal(take(f, "okta", 1000), 0);
	assert_int_equal(take(f, "okta", 1000), 0);
	wait = take(f, "okta", 1000);
	assert_true(wait > 240 && wait <= 251);
	/* Refused takes take nothing: 100 ms later a quarter of it has come back. */
	wait = take(f, "okta", 1100);
	assert_true(wait > 140 && wait <= 151);
	assert_int_equal(take(f, "okta", 1250), 0);
	assert_true(take(f, "okta", 1250) > 0);
	/* Each system has a bucket of its own. */
	assert_int_equal(take(f, "graph", 1250), 0);
	/* An idle bucket fills up to its burst, no further. */
	assert_int_equal(take(f, "okta", 60000), 0);
	assert_int_equal(take(f, "okta", 60000), 0);
	assert_true(take(f, "okta", 60000) > 0);
	/* A clock behind the last one's neither fills nor empties it. */
	assert_true(take(f, "okta", 59000) > 0);
	/* Only a write transaction may take. */
	tx = begin(f, false);
	assert_int_equal(store_rate_take(tx, "okta", 4.0, 2, 90000, &wait, &e),
	    QERR_INTERNAL);
	store_tx_rollback(tx);
}

static void
sess_put(struct fx *f, const char *id, const char *who, const char *token, int64_t at)
{
	struct store_session s = { (char *)id, (char *)who, (char *)token,
	    token ? (char *)"th" : NULL, token ? NULL : (char *)"{\"sub\":\"x\"}", at,
	    at };
	struct store_tx *tx = begin(f, true);
	struct qerr e = {0};

	assert_int_equal(store_session_insert(tx, &s, &e), 0);
	commit(tx);
}

static bool
sess_there(struct fx *f, const char *id)
{
	struct store_session s;
	struct store_tx *tx = begin(f, false);
	struct qerr e = {0};
	int r = store_session_get(tx, id, &s, &e);

	store_tx_rollback(tx);
	assert_true(r == 0 || r == QERR_NOT_FOUND);
	store_session_clear(&s);
	return r == 0;
}

static void
test_sessions(void **state)
{
	struct fx *f = *state;
	struct store_session s;
	struct store_tx *tx;
	struct qerr e = {0};
	long all = -1, own = -1;
	char *lru = NULL;

	sess_put(f, "h1", "alice", "qt_a", 100);
	sess_put(f, "h2", "alice", "qt_a", 200);
	sess_put(f, "h3", "bob", NULL, 300);
	tx = begin(f, true);
	assert_int_not_equal(store_session_insert(tx, &(struct store_session){ "h1",
	    "eve", NULL, NULL, "{}", 1, 1 }, &e), 0);
	store_tx_rollback(tx);

	tx = begin(f, false);
	assert_int_equal(store_session_get(tx, "h3", &s, &e), 0);
	assert_string_equal(s.principal_hash, "bob");
	assert_null(s.token_id);
	assert_null(s.token_hash);
	assert_string_equal(s.claims, "{\"sub\":\"x\"}");
	assert_int_equal(s.created_us, 300);
	store_session_clear(&s);
	assert_int_equal(store_session_get(tx, "h1", &s, &e), 0);
	assert_string_equal(s.token_id, "qt_a");
	assert_string_equal(s.token_hash, "th");
	store_session_clear(&s);
	/* alice's least recently used is h1, until it is used. */
	assert_int_equal(store_session_count(tx, "alice", &all, &own, &lru, &e), 0);
	assert_int_equal(all, 3);
	assert_int_equal(own, 2);
	assert_string_equal(lru, "h1");
	free(lru);
	store_tx_rollback(tx);

	tx = begin(f, true);
	assert_int_equal(store_session_touch(tx, "h1", 400, &e), 0);
	/* A touch never moves a use back. */
	assert_int_equal(store_session_touch(tx, "h2", 150, &e), 0);
	assert_int_equal(store_session_count(tx, "alice", &all, &own, &lru, &e), 0);
	assert_string_equal(lru, "h2");
	free(lru);
	assert_int_equal(store_session_count(tx, "carol", &all, &own, &lru, &e), 0);
	assert_int_equal(own, 0);
	assert_null(lru);
	commit(tx);

	/* Pruned by idleness (h2 unused since 200), then by age (h1 made at 100, used
	 * since). */
	tx = begin(f, true);
	assert_int_equal(store_session_prune(tx, 250, 50, &e), 0);
	commit(tx);
	assert_true(sess_there(f, "h1"));
	assert_false(sess_there(f, "h2"));
	assert_true(sess_there(f, "h3"));
	tx = begin(f, true);
	assert_int_equal(store_session_prune(tx, 0, 150, &e), 0);
	commit(tx);
	assert_false(sess_there(f, "h1"));
	assert_true(sess_there(f, "h3"));

	/* Ended one by one, or every session of a token at once. */
	sess_put(f, "h4", "alice", "qt_a", 500);
	sess_put(f, "h5", "bob", "qt_b", 500);
	tx = begin(f, true);
	assert_int_equal(store_session_delete(tx, NULL, "qt_a", &e), 0);
	commit(tx);
	assert_false(sess_there(f, "h4"));
	assert_true(sess_there(f, "h3"));
	assert_true(sess_there(f, "h5"));
	tx = begin(f, true);
	assert_int_equal(store_session_delete(tx, "h5", NULL, &e), 0);
	assert_int_equal(store_session_delete(tx, NULL, NULL, &e), QERR_INTERNAL);
	commit(tx);
	assert_false(sess_there(f, "h5"));
}

/* A hunt's answer, or NULL with *r its refusal (e.msg into why). */
static char *
hunt(struct fx *f, const char *sql, int timeout_ms, int *r, char *why, size_t n)
{
	struct hunt_query q = { sql, 10, timeout_ms, 1 << 20 };
	struct qerr e = {0};
	char *out = NULL;

	*r = store_hunt(f->st, &q, &out, &e);
	snprintf(why, n, "%s", e.msg);
	return out;
}

static void
hunt_refused(struct fx *f, const char *sql, const char *says)
{
	char why[512], *out;
	int r;

	out = hunt(f, sql, 5000, &r, why, sizeof(why));
	if (r != QERR_INVALID || out != NULL)
		fail_msg("%s: not refused (%d, %s)", sql, r, out ? out : why);
	if (says != NULL && strstr(why, says) == NULL)
		fail_msg("%s: refused as \"%s\", not \"%s\"", sql, why, says);
}

static void
hunt_answers(struct fx *f, const char *sql, const char *want)
{
	char why[512], *out;
	int r;

	out = hunt(f, sql, 5000, &r, why, sizeof(why));
	if (r != 0 || out == NULL)
		fail_msg("%s: refused (%d): %s", sql, r, why);
	if (strstr(out, want) == NULL)
		fail_msg("%s: answered %s, not %s", sql, out, want);
	free(out);
}

/* What a read-only transaction would let through is refused before it runs, on
 * either backend; a long query is stopped at its time limit. */
static void
test_hunt_guard(void **state)
{
	static const char *const refused[] = {
		"DELETE FROM Actions",
		"UPDATE Actions SET reason = 'x'",
		"INSERT INTO Actions (action_id) VALUES ('x')",
		"CREATE TABLE evil (a INTEGER)",
		"DROP VIEW Actions",
		"SELECT pg_read_file('/etc/passwd')",
		"SELECT set_config('statement_timeout', '0', false)",
		"SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(a int)",
		"COPY (SELECT 1) TO '/tmp/quell-hunt-copy'",
		"SELECT pg_sleep(30)",
		"SELECT * FROM tokens",
		"SELECT 1; SELECT 2",
		"SELECT 1) AS x; DROP TABLE actions; --",
		"SELECT readfile('/etc/passwd')",
		"SELECT load_extension('x')",
		NULL,
	};
	static const char *const pg_refused[] = {
		"SELECT * FROM public.tokens",
		"SELECT * FROM pg_authid",
		"SELECT current_setting('data_directory')",
		"SELECT pg_advisory_lock(1)",
		"SELECT \"pg_read_file\"('/etc/passwd')",
		"SELECT lo_import('/etc/passwd')",
		"SELECT 1 FROM Actions FOR UPDATE",
		"SELECT E'\\'' , pg_read_file('/etc/passwd')",
		"SELECT 'a' , /* /* nested */ pg_read_file('/etc/passwd') --*/",
		"WITH x AS (DELETE FROM actions RETURNING 1) SELECT * FROM x",
		"SET statement_timeout = 0",
		"SELECT $1",
		NULL,
	};
	struct fx *f = *state;
	char why[512], *out;
	size_t i;
	int r;

	for (i = 0; refused[i] != NULL; i++)
		hunt_refused(f, refused[i], NULL);
	for (i = 0; T.pg != NULL && pg_refused[i] != NULL; i++)
		hunt_refused(f, pg_refused[i], NULL);
	if (T.pg != NULL) {
		hunt_refused(f, "SELECT pg_read_file('/etc/passwd')", "pg_read_file");
		hunt_refused(f, "SELECT set_config('a.b', 'c', true)", "set_config");
		/* A string or a dollar quote is text, whatever it holds. */
		hunt_answers(f, "SELECT 'a'';pg_read_file(' AS s", "\"a';pg_read_file(\"");
		hunt_answers(f, "SELECT $q$ pg_sleep( $q$ AS s", "pg_sleep(");
		hunt_answers(f, "SELECT 'a\\' AS s, 'b' AS t", "\"b\"");
		hunt_answers(f, "WITH x AS MATERIALIZED (SELECT 2 AS n) SELECT n FROM x",
		    "[[2]]");
		hunt_refused(f, "SELECT query_to_xml('SELECT pg_read_file(''/etc/passwd'')', "
		    "true, true, '')", "query_to_xml");
		hunt_answers(f, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
		    "FROM c WHERE x < 5) SELECT sum(x) AS n FROM c;", "[[15]]");
	}
	hunt_answers(f, "SELECT count(*) AS n FROM Actions", "\"rows\":[[0]]");
	hunt_answers(f, "SELECT count(*) AS n FROM IdentityInfo", "\"columns\":[\"n\"]");
	/* Stopped at its time limit, not left running. */
	out = hunt(f, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
	    "SELECT count(*) FROM c", 300, &r, why, sizeof(why));
	assert_null(out);
	assert_int_equal(r, QERR_INVALID);
	assert_non_null(strstr(why, "query stopped"));
}

static void
login_put(struct fx *f, const char *h, int64_t at, int64_t older_than, long max)
{
	struct store_tx *tx = begin(f, true);
	struct qerr e = {0};

	assert_int_equal(store_login_insert(tx, h, "https://q/cb", at, older_than, max, &e),
	    0);
	commit(tx);
}

/* The login's created time, or -1 when there is none; taking it ends it. */
static int64_t
login_take(struct fx *f, const char *h)
{
	struct store_tx *tx = begin(f, true);
	struct qerr e = {0};
	char *uri = NULL;
	int64_t at = 0;
	int r = store_login_take(tx, h, &uri, &at, &e);

	commit(tx);
	if (r == QERR_NOT_FOUND)
		return -1;
	assert_int_equal(r, 0);
	assert_string_equal(uri, "https://q/cb");
	free(uri);
	return at;
}

/* Sign-ins under way: one use each, the stale dropped, at most max kept (the oldest
 * give way). */
static void
test_logins(void **state)
{
	struct fx *f = *state;

	login_put(f, "l1", 100, 0, 3);
	login_put(f, "l2", 200, 0, 3);
	assert_int_equal(login_take(f, "l1"), 100);
	assert_int_equal(login_take(f, "l1"), -1);
	login_put(f, "l3", 300, 0, 3);
	login_put(f, "l4", 400, 0, 3);
	login_put(f, "l5", 500, 0, 3);
	assert_int_equal(login_take(f, "l2"), -1);
	assert_int_equal(login_take(f, "l3"), 300);
	login_put(f, "l6", 900, 450, 3);
	assert_int_equal(login_take(f, "l4"), -1);
	assert_int_equal(login_take(f, "l5"), 500);
	assert_int_equal(login_take(f, "l6"), 900);
}

int
main(void)
{
	const char *want = getenv("QUELL_TEST_STORE");
	char dir[512] = "";
	int r;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssf_outbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_touch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_account, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_work, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_bucket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hunt_guard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logins, setup, teardown),
		cmocka_unit_test(test_pg_location),
	};
	/* SQLite databases of before the token lifecycle and audit format 2:
	 * PostgreSQL came after both. */
	const struct CMUnitTest sqlite_tests[] = {
		cmocka_unit_test_setup_teardown(test_token_migration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_migration, setup, teardown),
	};
	/* Nodes sharing one database. */
	const struct CMUnitTest pg_tests[] = {
		cmocka_unit_test_setup_teardown(test_pg_migrate_together, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_two_nodes, setup, teardown),
	};

	if (want != NULL && strcmp(want, "postgres") == 0) {
		if (getenv("QUELL_TEST_PG") == NULL && pg_start(dir, sizeof(dir)) != 0) {
			fprintf(stderr, "no PostgreSQL: set QUELL_TEST_PG or QUELL_SRC\n");
			return 1;
		}
		T.ops = &store_postgres;
		T.pg = getenv("QUELL_TEST_PG");
	}
	r = cmocka_run_group_tests_name(T.pg ? "store_postgres" : "store_sqlite", tests,
	    NULL, NULL);
	if (T.pg != NULL)
		r |= cmocka_run_group_tests_name("store_postgres_nodes", pg_tests, NULL, NULL);
	else
		r |= cmocka_run_group_tests_name("store_sqlite_migrations", sqlite_tests, NULL,
		    NULL);
	if (dir[0] != '\0')
		pg_stop(dir);
	return r;
}
