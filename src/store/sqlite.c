/*
 * The SQLite backend: one database file in WAL mode, synchronous=FULL so that a
 * committed transition survives a power cut. Each connection is used by one thread at
 * a time (the pool in store.c sees to it), so connections are opened NOMUTEX, and each
 * keeps its prepared statements for its whole life because the engine runs the same
 * few statements thousands of times a second.
 *
 * Enum values are stored by their model.h names so that the database reads on its own
 * and survives a reordering of the enums. Every text value is stored as given.
 *
 * This file holds the connection, migrations, transactions, tokens, identities,
 * accounts and the audit log; sqlite_actions.c, sqlite_alerts.c and sqlite_sync.c the
 * rest (sqlite_int.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "core/audit.h"
#include "hunt.h"
#include "shared.h"
#include "sqlite_int.h"
#include "strjson.h"

#define BUSY_TIMEOUT_MS	10000

/*
 * Schema migrations, applied in order; migrations[i] takes the schema from version i
 * to i + 1. Only ever append.
 */
static const char *const migrations[] = {
	"CREATE TABLE tokens ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT,"
	"  role TEXT,"
	"  hash BLOB NOT NULL CHECK (length(hash) = 32),"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE identities ("
	"  id TEXT PRIMARY KEY,"
	"  display_name TEXT,"
	"  tags TEXT NOT NULL DEFAULT '[]',"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE accounts ("
	"  id TEXT PRIMARY KEY,"
	"  identity_id TEXT REFERENCES identities (id),"
	"  system TEXT NOT NULL,"
	"  kind TEXT,"
	"  external_id TEXT NOT NULL,"
	"  sid TEXT,"
	"  dn TEXT,"
	"  username TEXT,"
	"  upn TEXT,"
	"  display_name TEXT,"
	"  state TEXT,"
	"  state_read_at INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL,"
	"  UNIQUE (system, external_id));"
	"CREATE INDEX accounts_identity ON accounts (identity_id);"
	"CREATE TABLE actions ("
	"  id TEXT PRIMARY KEY,"
	"  type TEXT NOT NULL,"
	"  status TEXT NOT NULL,"
	"  identity_id TEXT,"
	"  account_id TEXT,"
	"  requested_by TEXT,"
	"  source TEXT,"
	"  reason TEXT,"
	"  params TEXT,"
	"  message TEXT,"
	"  cancel_requested INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  finished_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX actions_created ON actions (created_at, id);"
	"CREATE INDEX actions_status ON actions (status, id);"
	"CREATE INDEX actions_identity ON actions (identity_id, id);"
	"CREATE TABLE steps ("
	"  id TEXT PRIMARY KEY,"
	"  action_id TEXT NOT NULL REFERENCES actions (id),"
	"  account_id TEXT,"
	"  system TEXT NOT NULL,"
	"  account_ref TEXT,"
	"  account_name TEXT,"
	"  type TEXT NOT NULL,"
	"  status TEXT NOT NULL,"
	"  params TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  not_before INTEGER NOT NULL DEFAULT 0,"
	"  lease_owner TEXT,"
	"  lease_expires INTEGER NOT NULL DEFAULT 0,"
	"  request_id TEXT,"
	"  error_code TEXT,"
	"  message TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  started_at INTEGER NOT NULL DEFAULT 0,"
	"  finished_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX steps_action ON steps (action_id, id);"
	/* The claim walks this in order and stops at the first step it may take, so
	 * its cost does not grow with the number of steps waiting or done. */
	"CREATE INDEX steps_claimable ON steps (created_at, id)"
	"  WHERE status IN ('queued', 'retry_wait', 'running');"
	"CREATE INDEX steps_wait ON steps (status, not_before);"
	"CREATE INDEX steps_lease ON steps (status, lease_expires);"
	"CREATE TABLE audit ("
	"  seq INTEGER PRIMARY KEY,"
	"  time INTEGER NOT NULL,"
	"  actor TEXT,"
	"  event TEXT,"
	"  action_id TEXT,"
	"  step_id TEXT,"
	"  identity_id TEXT,"
	"  detail TEXT,"
	"  prev_hash TEXT NOT NULL,"
	"  hash TEXT NOT NULL);"
	/* The chain already detects tampering; these keep quell itself from ever
	 * rewriting history by mistake. */
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
	"ALTER TABLE accounts ADD COLUMN email TEXT;"
	"ALTER TABLE accounts ADD COLUMN synced INTEGER NOT NULL DEFAULT 0;",
	"ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT '[]';"
	"ALTER TABLE actions ADD COLUMN requested_by_id TEXT;"
	"ALTER TABLE actions ADD COLUMN undo_of TEXT;"
	"ALTER TABLE actions ADD COLUMN approval_rule TEXT;"
	"ALTER TABLE actions ADD COLUMN decided_by TEXT;"
	"ALTER TABLE actions ADD COLUMN approval_expires INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX actions_undo ON actions (undo_of);",
	/* Automatic attack disruption: alerts in, the entities they name with what
	 * each resolved to, and every decision taken on an identity they named. */
	"ALTER TABLE actions ADD COLUMN alert_id TEXT;"
	"CREATE INDEX actions_alert ON actions (alert_id);"
	"CREATE TABLE alerts ("
	"  id TEXT PRIMARY KEY,"
	"  source TEXT NOT NULL,"
	"  external_id TEXT NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  title TEXT NOT NULL,"
	"  category TEXT NOT NULL,"
	"  severity TEXT NOT NULL,"
	"  confidence INTEGER NOT NULL,"
	"  received_at INTEGER NOT NULL,"
	"  received_us INTEGER NOT NULL,"
	"  UNIQUE (source, external_id));"
	"CREATE TABLE alert_entities ("
	"  alert_id TEXT NOT NULL REFERENCES alerts (id),"
	"  seq INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  id_type TEXT,"
	"  value TEXT NOT NULL,"
	"  identity_id TEXT,"
	"  account_id TEXT,"
	"  resolution TEXT,"
	"  PRIMARY KEY (alert_id, seq));"
	"CREATE INDEX alert_entities_identity ON alert_entities (identity_id);"
	"CREATE TABLE disruption_decisions ("
	"  id TEXT PRIMARY KEY,"
	"  alert_id TEXT NOT NULL,"
	"  identity_id TEXT,"
	"  rule TEXT,"
	"  outcome TEXT NOT NULL,"
	"  detail TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX disruption_alert ON disruption_decisions (alert_id, id);"
	"CREATE INDEX disruption_identity ON disruption_decisions (identity_id, id);"
	"CREATE INDEX disruption_outcome ON disruption_decisions (outcome, created_at);"
	"CREATE INDEX alert_resolve_upn ON accounts (lower(upn));"
	"CREATE INDEX alert_resolve_sid ON accounts (sid);"
	"CREATE INDEX alert_resolve_ext ON accounts (external_id);",
	/* Inventory sync and correlation: why each account is linked, accounts in
	 * conflict, manual unlinks a sync must respect, and each system's incremental
	 * cursor. Lookups compare case-folded values, hence the lower() indexes. */
	"ALTER TABLE accounts ADD COLUMN risk TEXT;"
	"ALTER TABLE accounts ADD COLUMN link_rule TEXT;"
	"ALTER TABLE accounts ADD COLUMN linked_by TEXT;"
	"ALTER TABLE accounts ADD COLUMN linked_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE accounts ADD COLUMN conflict TEXT;"
	"ALTER TABLE accounts ADD COLUMN seen_run INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX accounts_corr_sid ON accounts (lower(sid));"
	"CREATE INDEX accounts_corr_upn ON accounts (lower(upn));"
	"CREATE INDEX accounts_corr_email ON accounts (lower(email));"
	"CREATE INDEX accounts_corr_username ON accounts (lower(username));"
	"CREATE INDEX accounts_seen ON accounts (system, seen_run);"
	"CREATE INDEX accounts_conflict ON accounts (id) WHERE conflict IS NOT NULL;"
	"CREATE TABLE link_vetoes ("
	"  account_id TEXT NOT NULL,"
	"  identity_id TEXT NOT NULL,"
	"  by TEXT,"
	"  at INTEGER NOT NULL,"
	"  PRIMARY KEY (account_id, identity_id));"
	"CREATE TABLE sync_state ("
	"  system TEXT PRIMARY KEY,"
	"  cursor TEXT,"
	"  full_run INTEGER NOT NULL DEFAULT 0,"
	"  updated_at INTEGER NOT NULL);",
	/* API token lifecycle: an expiry, a revocation (kept, not deleted, so that a
	 * list shows who revoked what and a revoked id is never reused) and when the
	 * token was last used. 0 means never / not revoked. */
	"ALTER TABLE tokens ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE tokens ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE tokens ADD COLUMN revoked_by TEXT;"
	"ALTER TABLE tokens ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;",
	/* Actors that cannot be confused: each audit entry and action names the
	 * principal's kind and stable id beside its display name, and each audit entry
	 * the client's address. Rows from before keep format 1 (NULL here) and hash as
	 * they always did. */
	"ALTER TABLE audit ADD COLUMN format INTEGER;"
	"ALTER TABLE audit ADD COLUMN actor_kind TEXT;"
	"ALTER TABLE audit ADD COLUMN actor_id TEXT;"
	"ALTER TABLE audit ADD COLUMN client TEXT;"
	"ALTER TABLE actions ADD COLUMN requested_by_kind TEXT;"
	"ALTER TABLE actions ADD COLUMN decided_by_id TEXT;"
	"ALTER TABLE actions ADD COLUMN decided_by_kind TEXT;",
	/* SIEM delivery: per [siem] section, the last audit seq its server took
	 * (src/engine/siem.c), so forwarding resumes there after any stop or crash. */
	"CREATE TABLE siem_cursors ("
	"  name TEXT PRIMARY KEY,"
	"  seq INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);",
	/* Waiting is not failing: a step's waits (quell's pacing, a Retry-After) are
	 * counted apart from its attempts, with the time they asked for. */
	"ALTER TABLE steps ADD COLUMN waits INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE steps ADD COLUMN wait_ms INTEGER NOT NULL DEFAULT 0;",
	/* Several nodes on one database: each one's heartbeat, and the leases that
	 * let exactly one of them run each once-per-cluster job. */
	"CREATE TABLE nodes ("
	"  node_id TEXT PRIMARY KEY,"
	"  started_at INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL);"
	"CREATE TABLE leases ("
	"  name TEXT PRIMARY KEY,"
	"  owner TEXT NOT NULL,"
	"  expires_at INTEGER NOT NULL);",
	/* Shared Signals (src/engine/ssf.c): the streams receivers made, the outbox of
	 * signed SETs (in seq order per stream, kept until delivered or acknowledged)
	 * and the jtis of the SETs received, so that none is taken twice. */
	"CREATE TABLE ssf_streams ("
	"  id TEXT PRIMARY KEY,"
	"  config TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE TABLE ssf_outbox ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  stream_id TEXT NOT NULL,"
	"  jti TEXT NOT NULL,"
	"  set_jwt TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  acked_at INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (stream_id, jti));"
	"CREATE INDEX ssf_outbox_pending ON ssf_outbox (stream_id, acked_at, seq);"
	"CREATE TABLE ssf_jti ("
	"  iss TEXT NOT NULL,"
	"  jti TEXT NOT NULL,"
	"  seen_at INTEGER NOT NULL,"
	"  PRIMARY KEY (iss, jti));",
	/* What nodes share besides steps: each identity system's request budget (a
	 * token bucket, its level in thousandths of a request), the console's
	 * sessions and its sign-ins under way, kept by the SHA-256 of their ids,
	 * never the ids. */
	"CREATE TABLE rate_buckets ("
	"  system TEXT PRIMARY KEY,"
	"  level INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE TABLE console_sessions ("
	"  id_hash TEXT PRIMARY KEY,"
	"  principal_hash TEXT NOT NULL,"
	"  token_id TEXT,"
	"  token_hash TEXT,"
	"  claims TEXT,"
	"  created_us INTEGER NOT NULL,"
	"  used_us INTEGER NOT NULL);"
	"CREATE INDEX console_sessions_token ON console_sessions (token_id);"
	"CREATE INDEX console_sessions_principal ON console_sessions"
	"  (principal_hash, used_us);"
	"CREATE TABLE console_logins ("
	"  cookie_hash TEXT PRIMARY KEY,"
	"  redirect_uri TEXT NOT NULL,"
	"  created_us INTEGER NOT NULL);",
};

#define NMIGRATIONS	((int)(sizeof(migrations) / sizeof(migrations[0])))

#define TOKEN_COLS "id, name, role, created_at, scope, expires_at, revoked_at, " \
	"revoked_by, last_used_at"
#define AUDIT_COLS "seq, time, actor, event, action_id, step_id, identity_id, " \
	"detail, prev_hash, hash, format, actor_kind, actor_id, client"

enum stmt_id {
	S_BEGIN_W,
	S_BEGIN_R,
	S_COMMIT,
	S_ROLLBACK,
	S_TOKEN_INSERT,
	S_TOKEN_GET,
	S_TOKEN_LIST,
	S_TOKEN_REVOKE,
	S_TOKEN_EXISTS,
	S_TOKEN_TOUCH,
	S_TOKEN_STATE,
	S_IDN_INSERT,
	S_IDN_UPDATE,
	S_IDN_GET,
	S_IDN_ACCOUNTS,
	S_IDN_LIST,
	S_ACC_UPSERT,
	S_ACC_GET,
	S_ACC_LINK,
	S_ACC_STATE,
	S_AUDIT_LAST,
	S_AUDIT_INSERT,
	S_AUDIT_LIST,
	S_SIEM_GET,
	S_SIEM_PUT,
	S_COUNT
};

_Static_assert(S_COUNT <= CORE_STMT_MAX, "stmt[] is too small");

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN_W] = "BEGIN IMMEDIATE",
	[S_BEGIN_R] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_TOKEN_INSERT] =
	    "INSERT INTO tokens (id, name, role, hash, created_at, scope, expires_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_TOKEN_GET] =
	    "SELECT " TOKEN_COLS ", hash FROM tokens WHERE id = ?1",
	/* The hash stays in the table: nothing that lists tokens can leak it. */
	[S_TOKEN_LIST] =
	    "SELECT " TOKEN_COLS " FROM tokens WHERE id > ?1 ORDER BY id LIMIT ?2",
	[S_TOKEN_REVOKE] =
	    "UPDATE tokens SET revoked_at = ?2, revoked_by = ?3"
	    " WHERE id = ?1 AND revoked_at = 0",
	[S_TOKEN_EXISTS] = "SELECT 1 FROM tokens WHERE id = ?1",
	/* Conditional, so that nodes and threads racing on one token write once. */
	[S_TOKEN_TOUCH] =
	    "UPDATE tokens SET last_used_at = ?2"
	    " WHERE id = ?1 AND revoked_at = 0 AND last_used_at <= ?2 - ?3",
	[S_TOKEN_STATE] = "SELECT revoked_at, last_used_at FROM tokens WHERE id = ?1",
	[S_IDN_UPDATE] =
	    "UPDATE identities SET display_name = ?2, tags = ?3 WHERE id = ?1",
	[S_IDN_INSERT] =
	    "INSERT INTO identities (id, display_name, tags, created_at)"
	    " VALUES (?1, ?2, ?3, ?4)",
	[S_IDN_GET] =
	    "SELECT id, display_name, tags, created_at FROM identities WHERE id = ?1",
	[S_IDN_ACCOUNTS] =
	    "SELECT " ACC_COLS_X " FROM accounts WHERE identity_id = ?1 ORDER BY id",
	[S_IDN_LIST] =
	    "SELECT i.id, i.display_name, i.tags, i.created_at FROM identities i"
	    " WHERE i.id > ?1 AND (?2 IS NULL"
	    "  OR i.display_name LIKE ?2 ESCAPE '\\'"
	    "  OR EXISTS (SELECT 1 FROM accounts a WHERE a.identity_id = i.id AND ("
	    "   a.username LIKE ?2 ESCAPE '\\' OR a.upn LIKE ?2 ESCAPE '\\'"
	    "   OR a.sid LIKE ?2 ESCAPE '\\' OR a.display_name LIKE ?2 ESCAPE '\\')))"
	    " ORDER BY i.id LIMIT ?3",
	/* A re-listed account keeps its id and link; a listing that does not know the
	 * account's state leaves the last known state in place. */
	[S_ACC_UPSERT] =
	    "INSERT INTO accounts (" ACC_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
	    " ON CONFLICT (system, external_id) DO UPDATE SET"
	    "  kind = excluded.kind, sid = excluded.sid, dn = excluded.dn,"
	    "  username = excluded.username, upn = excluded.upn,"
	    "  display_name = excluded.display_name,"
	    "  email = excluded.email, synced = excluded.synced,"
	    "  state = CASE WHEN excluded.state IS NULL THEN state"
	    "   ELSE excluded.state END,"
	    "  state_read_at = CASE WHEN excluded.state IS NULL THEN state_read_at"
	    "   ELSE excluded.state_read_at END"
	    " RETURNING id",
	[S_ACC_GET] = "SELECT " ACC_COLS_X " FROM accounts WHERE id = ?1",
	[S_ACC_LINK] = "UPDATE accounts SET identity_id = ?2 WHERE id = ?1",
	[S_ACC_STATE] =
	    "UPDATE accounts SET state = ?2, state_read_at = ?3 WHERE id = ?1",
	[S_AUDIT_LAST] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
	[S_AUDIT_INSERT] =
	    "INSERT INTO audit (" AUDIT_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	[S_AUDIT_LIST] =
	    "SELECT " AUDIT_COLS " FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
	[S_SIEM_GET] = "SELECT seq FROM siem_cursors WHERE name = ?1",
	[S_SIEM_PUT] =
	    "INSERT INTO siem_cursors (name, seq, updated_at) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (name) DO UPDATE SET seq = max(seq, excluded.seq),"
	    " updated_at = excluded.updated_at",
};

/*
 * Writers to one database file queue here, in this process, before BEGIN IMMEDIATE.
 * SQLite's own busy handler polls with growing sleeps: under steady contention it
 * leaves the lock idle between holders and can starve one thread until its timeout.
 * A condition variable hands the lock over at once. Keyed by the file's full path.
 */
struct gate {
	char *path;
	int refs;
	bool held;
	pthread_cond_t cv;
	struct gate *next;
	struct checkpointer *ck;	/* NULL: SQLite checkpoints in the committer */
};

/*
 * A WAL checkpoint writes the log back into the database and syncs it: SQLite runs one
 * in whichever commit takes the log past 1000 pages, so that commit (an alert's
 * action, say) waits for it. Instead each file's commits only wake this thread, which
 * checkpoints on a connection of its own (PASSIVE: it waits for no reader or writer).
 */
#define CHECKPOINT_PAGES 1000

struct checkpointer {
	sqlite3 *db;
	pthread_t thread;
	pthread_cond_t cv;	/* under gates_mu */
	bool want, stop;
};

static pthread_mutex_t gates_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gate *gates;

/* Maps an SQLite result code to a quell error, with SQLite's own message. */
int
sq_db_fail(struct store_conn *c, int rc, const char *what, struct qerr *e)
{
	const char *msg = sqlite3_errmsg(c->db);

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return qerr_set(e, QERR_BUSY, NULL, "%s: database busy: %s", what, msg);
	case SQLITE_CONSTRAINT:
		return qerr_set(e, QERR_CONFLICT, NULL, "%s: %s", what, msg);
	case SQLITE_NOMEM:
		return qerr_set(e, QERR_NOMEM, NULL, "%s: out of memory", what);
	default:
		return qerr_set(e, QERR_STORE, NULL, "%s: %s", what, msg);
	}
}

int
sq_nomem(struct qerr *e)
{
	return qerr_set(e, QERR_NOMEM, NULL, "store: out of memory");
}

int
sq_prepare(struct store_conn *c, sqlite3_stmt **slot, const char *sql,
    sqlite3_stmt **out, struct qerr *e)
{
	int rc;

	if (*slot == NULL) {
		rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot,
		    NULL);
		if (rc != SQLITE_OK)
			return sq_db_fail(c, rc, "prepare", e);
	} else if (sqlite3_stmt_busy(*slot))
		/* A callback re-entered the store with a statement still stepping. */
		return qerr_set(e, QERR_INTERNAL, NULL,
		    "store: statement re-entered from a callback");
	*out = *slot;
	return 0;
}

static int
stmt(struct store_conn *c, enum stmt_id id, sqlite3_stmt **out, struct qerr *e)
{
	return sq_prepare(c, &c->stmt[id], stmt_sql[id], out, e);
}

/* Leaves a cached statement ready for its next use. */
void
sq_done(sqlite3_stmt *st)
{
	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

int
sq_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Runs a statement that returns no rows. */
int
sq_exec_done(struct store_conn *c, sqlite3_stmt *st, const char *what, struct qerr *e)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return sq_db_fail(c, rc, what, e);
	return 0;
}

int
sq_run(struct store_conn *c, sqlite3_stmt *st, int bind_failed, const char *what,
    struct qerr *e)
{
	int r;

	if (bind_failed)
		r = sq_db_fail(c, sqlite3_errcode(c->db), what, e);
	else
		r = sq_exec_done(c, st, what, e);
	sq_done(st);
	return r;
}

int
sq_run_one(struct store_conn *c, sqlite3_stmt *st, int bind_failed, const char *what,
    const char *field, struct qerr *e)
{
	int r;

	if ((r = sq_run(c, st, bind_failed, what, e)) == 0 && sqlite3_changes(c->db) == 0)
		r = qerr_set(e, QERR_NOT_FOUND, field, "%s: no such %s", what, field);
	return r;
}

/* items is a struct pointer of the caller's, read and written through memcpy so
 * that one loop serves every element type. */
int
sq_load_rows(struct store_conn *c, sqlite3_stmt *st, const char *key,
    sq_read_fn read_row, size_t size, void *items, size_t *n, const char *what,
    struct qerr *e)
{
	char *v, *grown;
	size_t cap = *n;
	int r = QERR_INTERNAL, rc;

	memcpy(&v, items, sizeof(v));
	if (sq_bind_text(st, 1, key)) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), what, e);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 4;
			if ((grown = realloc(v, cap * size)) == NULL) {
				r = sq_nomem(e);
				goto out;
			}
			v = grown;
			memcpy(items, &v, sizeof(v));
		}
		if ((r = read_row(st, v + *n * size, e)) != 0)
			goto out;
		(*n)++;
	}
	if (rc != SQLITE_DONE) {
		r = sq_db_fail(c, rc, what, e);
		goto out;
	}
	r = 0;
out:
	sq_done(st);
	return r;
}

char *
sq_col_dup(sqlite3_stmt *st, int i, int *bad)
{
	const unsigned char *t;
	char *d;
	int n;

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	t = sqlite3_column_text(st, i);
	n = sqlite3_column_bytes(st, i);
	if (t == NULL || (d = malloc((size_t)n + 1)) == NULL) {
		*bad = 1;
		return NULL;
	}
	memcpy(d, t, (size_t)n);
	d[n] = '\0';
	return d;
}

const char *
sq_col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t != NULL ? (const char *)t : "";
}

int
sq_get_one(struct store_conn *c, sqlite3_stmt *st, const char *k1, const char *k2,
    sq_read_fn read_row, void *out, const char *what, const char *noun,
    struct qerr *e)
{
	int r, rc;

	if ((k1 != NULL && sq_bind_text(st, 1, k1)) ||
	    (k2 != NULL && sq_bind_text(st, 2, k2)))
		r = sq_db_fail(c, sqlite3_errcode(c->db), what, e);
	else if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		r = read_row(st, out, e);
	else if (rc != SQLITE_DONE)
		r = sq_db_fail(c, rc, what, e);
	else if (noun != NULL)
		r = qerr_set(e, QERR_NOT_FOUND, noun, "no such %s", noun);
	else
		r = QERR_NOT_FOUND;
	sq_done(st);
	return r;
}
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *
checkpointer_run(void *arg)
{
	struct checkpointer *ck = arg;

	pthread_mutex_lock(&gates_mu);
	while (!ck->stop) {
		if (!ck->want) {
			pthread_cond_wait(&ck->cv, &gates_mu);
			continue;
		}
		ck->want = false;
		pthread_mutex_unlock(&gates_mu);
		/* Failing (busy, out of memory) only leaves the log longer: the next
		 * commit past the mark asks again. */
		(void)sqlite3_wal_checkpoint_v2(ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
		    NULL);
		pthread_mutex_lock(&gates_mu);
	}
	pthread_mutex_unlock(&gates_mu);
	return NULL;
}

/* Called by SQLite after each commit in WAL mode, in the committing thread. */
static int
checkpointer_wake(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct checkpointer *ck = arg;

	(void)db;
	(void)name;
	if (pages >= CHECKPOINT_PAGES) {
		pthread_mutex_lock(&gates_mu);
		ck->want = true;
		pthread_cond_signal(&ck->cv);
		pthread_mutex_unlock(&gates_mu);
	}
	return SQLITE_OK;
}

static void
checkpointer_stop(struct checkpointer *ck)
{
	if (ck == NULL)
		return;
	pthread_mutex_lock(&gates_mu);
	ck->stop = true;
	pthread_cond_signal(&ck->cv);
	pthread_mutex_unlock(&gates_mu);
	pthread_join(ck->thread, NULL);
	pthread_cond_destroy(&ck->cv);
	sqlite3_close_v2(ck->db);
	free(ck);
}

/* The checkpointer of file path, or NULL (SQLite's own checkpoints stay) if it
 * cannot be had: an in-memory database, out of memory or threads. */
static struct checkpointer *
checkpointer_start(const char *path)
{
	struct checkpointer *ck;

	if (path[0] == '\0' || (ck = calloc(1, sizeof(*ck))) == NULL)
		return NULL;
	if (sqlite3_open_v2(path, &ck->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	    NULL) != SQLITE_OK || pthread_cond_init(&ck->cv, NULL) != 0) {
		sqlite3_close_v2(ck->db);
		free(ck);
		return NULL;
	}
	sqlite3_busy_timeout(ck->db, BUSY_TIMEOUT_MS);
	if (pthread_create(&ck->thread, NULL, checkpointer_run, ck) != 0) {
		pthread_cond_destroy(&ck->cv);
		sqlite3_close_v2(ck->db);
		free(ck);
		return NULL;
	}
	return ck;
}

static struct gate *
gate_ref(const char *path)
{
	struct gate *g;

	pthread_mutex_lock(&gates_mu);
	for (g = gates; g != NULL; g = g->next)
		if (strcmp(g->path, path) == 0)
			break;
	if (g == NULL && (g = calloc(1, sizeof(*g))) != NULL) {
		if ((g->path = strdup(path)) == NULL ||
		    pthread_cond_init(&g->cv, NULL) != 0) {
			free(g->path);
			free(g);
			g = NULL;
		} else {
			g->ck = checkpointer_start(path);
			g->next = gates;
			gates = g;
		}
	}
	if (g != NULL)
		g->refs++;
	pthread_mutex_unlock(&gates_mu);
	return g;
}

static void
gate_unref(struct gate *g)
{
	struct gate **pp;

	if (g == NULL)
		return;
	pthread_mutex_lock(&gates_mu);
	if (--g->refs != 0) {
		pthread_mutex_unlock(&gates_mu);
		return;
	}
	for (pp = &gates; *pp != g; pp = &(*pp)->next)
		;
	*pp = g->next;
	pthread_mutex_unlock(&gates_mu);
	/* Its connection closes last: SQLite's checkpoint at the last close is its. */
	checkpointer_stop(g->ck);
	pthread_cond_destroy(&g->cv);
	free(g->path);
	free(g);
}

/* Waits as long as SQLite's busy timeout would, so a stuck writer still surfaces
 * as QERR_BUSY rather than a hang. */
static int
gate_enter(struct store_conn *c, struct qerr *e)
{
	struct gate *g = c->gate;
	struct timespec dl;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += BUSY_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&gates_mu);
	while (g->held && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&g->cv, &gates_mu, &dl);
	if (!g->held) {
		g->held = true;
		c->writing = true;
	}
	pthread_mutex_unlock(&gates_mu);
	if (!c->writing)
		return qerr_set(e, QERR_BUSY, NULL,
		    "begin: database busy: another write transaction ran for %d s",
		    BUSY_TIMEOUT_MS / 1000);
	return 0;
}

static void
gate_leave(struct store_conn *c)
{
	if (!c->writing)
		return;
	pthread_mutex_lock(&gates_mu);
	c->gate->held = false;
	c->writing = false;
	pthread_cond_signal(&c->gate->cv);
	pthread_mutex_unlock(&gates_mu);
}

static void
sq_close(struct store_conn *c)
{
	int i;

	if (c == NULL)
		return;
	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	for (i = 0; i < ACTION_STMT_MAX; i++)
		sqlite3_finalize(c->action_stmt[i]);
	for (i = 0; i < ACTION_LIST_MAX; i++)
		sqlite3_finalize(c->action_list[i]);
	for (i = 0; i < SYNC_STMT_MAX; i++)
		sqlite3_finalize(c->sync_stmt[i]);
	for (i = 0; i < ALERT_STMT_MAX; i++)
		sqlite3_finalize(c->alert_stmt[i]);
	for (i = 0; i < CLUSTER_STMT_MAX; i++)
		sqlite3_finalize(c->cluster_stmt[i]);
	for (i = 0; i < SHARE_STMT_MAX; i++)
		sqlite3_finalize(c->share_stmt[i]);
	sqlite3_close_v2(c->db);
	gate_leave(c);
	gate_unref(c->gate);
	free(c);
}

static pthread_once_t sq_config_once = PTHREAD_ONCE_INIT;

/*
 * Memory statistics make every SQLite allocation take one process-wide mutex, which
 * the API's threads then queue on for nothing: quell never reads them. Only possible
 * before SQLite initializes; if something else got there first, they stay on.
 */
static void
sq_config(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int
sq_open(const char *location, struct store_conn **out, struct qerr *e)
{
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL, *st2 = NULL;
	const char *mode;
	int r = QERR_INTERNAL, rc;

	*out = NULL;
	pthread_once(&sq_config_once, sq_config);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return sq_nomem(e);
	rc = sqlite3_open_v2(location, &c->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
	if (rc != SQLITE_OK) {
		if (c->db == NULL) {
			r = sq_nomem(e);
			goto out;
		}
		r = qerr_set(e, QERR_STORE, "path", "%s: %s", location,
		    sqlite3_errmsg(c->db));
		goto out;
	}
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	if ((c->gate = gate_ref(sqlite3_db_filename(c->db, "main"))) == NULL) {
		r = sq_nomem(e);
		goto out;
	}
	/* journal_mode answers with the mode in force: anything but "wal" means the
	 * file cannot do WAL (e.g. ":memory:"), and the durability promises would not
	 * hold. */
	rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		mode = sq_col_str(st, 0);
		if (strcmp(mode, "wal") != 0) {
			r = qerr_set(e, QERR_STORE, "path",
			    "%s: cannot use WAL journal mode (got \"%s\")", location, mode);
			goto out;
		}
	} else {
		r = sq_db_fail(c, rc, location, e);
		goto out;
	}
	rc = sqlite3_exec(c->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
	    NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = sq_db_fail(c, rc, location, e);
		goto out;
	}
	/* In place of SQLite's checkpoint in the commit that crosses the mark. */
	if (c->gate->ck != NULL)
		sqlite3_wal_hook(c->db, checkpointer_wake, c->gate->ck);
	/* ROLLBACK is prepared now: prepared when first needed, it could fail for want
	 * of memory and leave the transaction open on a connection back in the pool. */
	if ((r = stmt(c, S_ROLLBACK, &st2, e)) != 0)
		goto out;
	*out = c;
	c = NULL;
	r = 0;
out:
	sqlite3_finalize(st);
	sq_close(c);
	return r;
}

static int
sq_begin(struct store_conn *c, bool write, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, write ? S_BEGIN_W : S_BEGIN_R, &st, e)) != 0)
		return r;
	if (write && (r = gate_enter(c, e)) != 0)
		return r;
	if ((r = sq_exec_done(c, st, "begin", e)) != 0)
		gate_leave(c);
	sq_done(st);
	return r;
}

static int
sq_commit(struct store_conn *c, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_COMMIT, &st, e)) != 0)
		return r;
	/* After a failed COMMIT the transaction may still be open: the gate is left
	 * to the rollback that follows. */
	if ((r = sq_exec_done(c, st, "commit", e)) == 0)
		gate_leave(c);
	sq_done(st);
	return r;
}

static void
sq_rollback(struct store_conn *c)
{
	sqlite3_stmt *st = NULL;

	/* SQLite may already have rolled back on its own after some errors. */
	if (!sqlite3_get_autocommit(c->db) && stmt(c, S_ROLLBACK, &st, NULL) == 0) {
		sqlite3_step(st);
		sq_done(st);
	}
	gate_leave(c);
}

static int
sq_migrate(struct store_conn *c, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	bool intx = false;
	int r = QERR_INTERNAL, rc, have, v;

	rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE;"
	    "CREATE TABLE IF NOT EXISTS schema_version ("
	    "  version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
	    NULL, NULL, NULL);
	intx = !sqlite3_get_autocommit(c->db);
	if (rc != SQLITE_OK) {
		r = sq_db_fail(c, rc, "migrate", e);
		goto out;
	}
	rc = sqlite3_prepare_v2(c->db,
	    "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st, NULL);
	if (rc != SQLITE_OK || (rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = sq_db_fail(c, rc, "migrate", e);
		goto out;
	}
	have = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (have > NMIGRATIONS) {
		r = qerr_set(e, QERR_STORE, NULL,
		    "the database has schema version %d, newer than this quell knows "
		    "(%d): it was written by a newer quell; upgrade quell", have,
		    NMIGRATIONS);
		goto out;
	}
	rc = sqlite3_prepare_v2(c->db,
	    "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)", -1, &st,
	    NULL);
	if (rc != SQLITE_OK) {
		r = sq_db_fail(c, rc, "migrate", e);
		goto out;
	}
	for (v = have; v < NMIGRATIONS; v++) {
		if ((rc = sqlite3_exec(c->db, migrations[v], NULL, NULL, NULL)) !=
		    SQLITE_OK) {
			r = qerr_set(e, QERR_STORE, NULL,
			    "schema migration %d failed: %s", v + 1,
			    sqlite3_errmsg(c->db));
			goto out;
		}
		sqlite3_bind_int(st, 1, v + 1);
		sqlite3_bind_int64(st, 2, now_ms());
		if ((r = sq_exec_done(c, st, "migrate", e)) != 0)
			goto out;
		sqlite3_reset(st);
	}
	if ((rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
		r = sq_db_fail(c, rc, "migrate", e);
		goto out;
	}
	intx = false;
	r = 0;
out:
	sqlite3_finalize(st);
	if (intx && !sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}
/* Tokens. */

static int
sq_token_insert(struct store_conn *c, const struct token_info *t,
    const unsigned char hash[32], struct qerr *e)
{
	const struct principal *p = &t->p;
	sqlite3_stmt *st = NULL;
	char *scope = NULL;
	int r;

	if ((r = strjson_dump(p->scope, p->nscope, "scope", "scope", &scope, e)) != 0)
		return r;
	if ((r = stmt(c, S_TOKEN_INSERT, &st, e)) != 0) {
		free(scope);
		return r;
	}
	r = sq_run(c, st, sq_bind_text(st, 1, p->id) || sq_bind_text(st, 2, p->name) ||
	    sq_bind_text(st, 3, p->role) ||
	    sqlite3_bind_blob(st, 4, hash, 32, SQLITE_STATIC) ||
	    sqlite3_bind_int64(st, 5, p->created_at) || sq_bind_text(st, 6, scope) ||
	    sqlite3_bind_int64(st, 7, t->expires_at), "token insert", e);
	free(scope);
	return r;
}

/* A row of TOKEN_COLS into *t (caller clears; cleared here on failure). */
static int
read_token(sqlite3_stmt *st, struct token_info *t, struct qerr *e)
{
	int r, bad = 0;

	memset(t, 0, sizeof(*t));
	t->p.id = sq_col_dup(st, 0, &bad);
	t->p.name = sq_col_dup(st, 1, &bad);
	t->p.role = sq_col_dup(st, 2, &bad);
	t->p.created_at = sqlite3_column_int64(st, 3);
	t->expires_at = sqlite3_column_int64(st, 5);
	t->revoked_at = sqlite3_column_int64(st, 6);
	t->revoked_by = sq_col_dup(st, 7, &bad);
	t->last_used_at = sqlite3_column_int64(st, 8);
	if (bad)
		r = sq_nomem(e);
	else
		r = strjson_load(sq_col_str(st, 4), &t->p.scope, &t->p.nscope, "token scope",
		    e);
	if (r != 0)
		token_info_clear(t);
	return r;
}

/* What sq_token_get reads a row into. */
struct token_row {
	const char *id;
	struct token_info *t;
	unsigned char *hash;
};

/* read_token, and the hash (column 9) into row->hash. */
static int
read_token_row(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct token_row *row = out;

	if (sqlite3_column_bytes(st, 9) != 32)
		return qerr_set(e, QERR_STORE, NULL, "token %s: stored hash is damaged",
		    row->id);
	memcpy(row->hash, sqlite3_column_blob(st, 9), 32);
	return read_token(st, row->t, e);
}

static int
sq_token_get(struct store_conn *c, const char *id, struct token_info *t,
    unsigned char hash[32], struct qerr *e)
{
	struct token_row row = { id, t, hash };
	sqlite3_stmt *st = NULL;
	int r;

	memset(t, 0, sizeof(*t));
	if ((r = stmt(c, S_TOKEN_GET, &st, e)) != 0)
		return r;
	return sq_get_one(c, st, id, NULL, read_token_row, &row, "token get", "token", e);
}

static int
sq_token_list(struct store_conn *c, const char *after_id, int limit, store_token_cb cb,
    void *arg, struct qerr *e)
{
	struct token_info t;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = stmt(c, S_TOKEN_LIST, &st, e)) != 0)
		return r;
	if (sq_bind_text(st, 1, after_id ? after_id : "") ||
	    sqlite3_bind_int(st, 2, limit)) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "token list", e);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = read_token(st, &t, e)) != 0)
			goto out;
		r = cb(&t, arg);
		token_info_clear(&t);
		/* Like the other lists: the reader's own value ends the walk. */
		if (r != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : sq_db_fail(c, rc, "token list", e);
out:
	sq_done(st);
	return r;
}

static int
sq_token_revoke(struct store_conn *c, const char *id, int64_t at, const char *by,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = stmt(c, S_TOKEN_REVOKE, &st, e)) != 0)
		return r;
	r = sq_run(c, st, sq_bind_text(st, 1, id) || sqlite3_bind_int64(st, 2, at) ||
	    sq_bind_text(st, 3, by), "token revoke", e);
	if (r != 0 || sqlite3_changes(c->db) == 1)
		return r;
	/* Nothing changed: tell an unknown token from one revoked before. */
	if ((r = stmt(c, S_TOKEN_EXISTS, &st, e)) != 0)
		return r;
	if (sq_bind_text(st, 1, id))
		r = sq_db_fail(c, sqlite3_errcode(c->db), "token revoke", e);
	else if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		r = qerr_set(e, QERR_CONFLICT, "token_id", "token %s is already revoked", id);
	else if (rc == SQLITE_DONE)
		r = qerr_set(e, QERR_NOT_FOUND, "token_id", "no token %s", id);
	else
		r = sq_db_fail(c, rc, "token revoke", e);
	sq_done(st);
	return r;
}

static int
sq_token_touch(struct store_conn *c, const char *id, int64_t at, int64_t min_gap_ms,
    bool *written, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	*written = false;
	if ((r = stmt(c, S_TOKEN_TOUCH, &st, e)) != 0)
		return r;
	if ((r = sq_run(c, st, sq_bind_text(st, 1, id) ||
	    sqlite3_bind_int64(st, 2, at) ||
	    sqlite3_bind_int64(st, 3, min_gap_ms), "token touch", e)) == 0)
		*written = sqlite3_changes(c->db) == 1;
	return r;
}

/* Where sq_token_state reads its two columns into. */
struct token_state {
	int64_t *revoked_at, *last_used_at;
};

static int
read_token_state(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct token_state *ts = out;

	(void)e;
	*ts->revoked_at = sqlite3_column_int64(st, 0);
	*ts->last_used_at = sqlite3_column_int64(st, 1);
	return 0;
}

static int
sq_token_state(struct store_conn *c, const char *id, int64_t *revoked_at,
    int64_t *last_used_at, struct qerr *e)
{
	struct token_state ts = { revoked_at, last_used_at };
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_TOKEN_STATE, &st, e)) != 0)
		return r;
	return sq_get_one(c, st, id, NULL, read_token_state, &ts, "token get", "token", e);
}

/* Identities and accounts. */

int
sq_read_account(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct account *a = out;
	int bad = 0;

	memset(a, 0, sizeof(*a));
	a->id = sq_col_dup(st, 0, &bad);
	a->identity_id = sq_col_dup(st, 1, &bad);
	a->system = sq_col_dup(st, 2, &bad);
	a->kind = sq_col_dup(st, 3, &bad);
	a->external_id = sq_col_dup(st, 4, &bad);
	a->sid = sq_col_dup(st, 5, &bad);
	a->dn = sq_col_dup(st, 6, &bad);
	a->username = sq_col_dup(st, 7, &bad);
	a->upn = sq_col_dup(st, 8, &bad);
	a->display_name = sq_col_dup(st, 9, &bad);
	a->state = sq_col_dup(st, 10, &bad);
	a->state_read_at = sqlite3_column_int64(st, 11);
	a->created_at = sqlite3_column_int64(st, 12);
	a->email = sq_col_dup(st, 13, &bad);
	a->synced = sqlite3_column_int(st, 14) != 0;
	if (sqlite3_column_count(st) > 18) {
		a->risk = sq_col_dup(st, 15, &bad);
		a->link_rule = sq_col_dup(st, 16, &bad);
		a->linked_by = sq_col_dup(st, 17, &bad);
		a->linked_at = sqlite3_column_int64(st, 18);
	}
	if (bad) {
		account_clear(a);
		return sq_nomem(e);
	}
	return 0;
}

static int
tags_json(const struct identity *idn, char **out, struct qerr *e)
{
	return strjson_dump(idn->tags, idn->ntags, "tags", "tag", out, e);
}

static int
tags_parse(const char *id, const char *text, struct identity *idn, struct qerr *e)
{
	char what[96];

	snprintf(what, sizeof(what), "identity %s: stored tags", id);
	return strjson_load(text, &idn->tags, &idn->ntags, what, e);
}

/* Fills idn from a row of (id, display_name, tags, created_at). */
static int
read_identity(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct identity *idn = out;
	int bad = 0, r;

	memset(idn, 0, sizeof(*idn));
	idn->id = sq_col_dup(st, 0, &bad);
	idn->display_name = sq_col_dup(st, 1, &bad);
	idn->created_at = sqlite3_column_int64(st, 3);
	if (bad) {
		identity_clear(idn);
		return sq_nomem(e);
	}
	if ((r = tags_parse(idn->id, sq_col_str(st, 2), idn, e)) != 0) {
		identity_clear(idn);
		return r;
	}
	return 0;
}

static int
load_accounts(struct store_conn *c, struct identity *idn, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_IDN_ACCOUNTS, &st, e)) != 0)
		return r;
	return sq_load_rows(c, st, idn->id, sq_read_account, sizeof(*idn->accounts),
	    &idn->accounts, &idn->naccounts, "identity accounts", e);
}

static int
sq_identity_insert(struct store_conn *c, const struct identity *idn, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char *tags = NULL;
	int r;

	if ((r = tags_json(idn, &tags, e)) != 0)
		return r;
	if ((r = stmt(c, S_IDN_INSERT, &st, e)) == 0)
		r = sq_run(c, st, sq_bind_text(st, 1, idn->id) ||
		    sq_bind_text(st, 2, idn->display_name) || sq_bind_text(st, 3, tags) ||
		    sqlite3_bind_int64(st, 4, idn->created_at), "identity insert", e);
	free(tags);
	return r;
}

static int
sq_identity_update(struct store_conn *c, const struct identity *idn, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char *tags = NULL;
	int r;

	if ((r = tags_json(idn, &tags, e)) != 0)
		return r;
	if ((r = stmt(c, S_IDN_UPDATE, &st, e)) == 0)
		r = sq_run_one(c, st, sq_bind_text(st, 1, idn->id) ||
		    sq_bind_text(st, 2, idn->display_name) ||
		    sq_bind_text(st, 3, tags), "identity update", "identity", e);
	free(tags);
	return r;
}

static int
sq_identity_head(struct store_conn *c, const char *id, struct identity *out,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = stmt(c, S_IDN_GET, &st, e)) != 0)
		return r;
	return sq_get_one(c, st, id, NULL, read_identity, out, "identity get", "identity",
	    e);
}

static int
sq_identity_get(struct store_conn *c, const char *id, struct identity *out,
    struct qerr *e)
{
	int r;

	if ((r = sq_identity_head(c, id, out, e)) == 0 &&
	    (r = load_accounts(c, out, e)) != 0)
		identity_clear(out);
	return r;
}

static int
sq_identity_list(struct store_conn *c, const struct identity_filter *f,
    store_identity_cb cb, void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct identity *rows = NULL;
	char *pat = NULL;
	size_t n = 0, i;
	int r = QERR_INTERNAL, rc;

	if (f->limit < 1 || f->limit > LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    LIST_MAX);
	if (f->query != NULL && (pat = store_like_pattern(f->query)) == NULL)
		return sq_nomem(e);
	if ((rows = calloc((size_t)f->limit, sizeof(*rows))) == NULL) {
		r = sq_nomem(e);
		goto out;
	}
	if ((r = stmt(c, S_IDN_LIST, &st, e)) != 0)
		goto out;
	if (sq_bind_text(st, 1, f->after_id != NULL ? f->after_id : "") ||
	    sq_bind_text(st, 2, pat) || sqlite3_bind_int(st, 3, f->limit)) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "identity list", e);
		goto out;
	}
	/* Rows are collected before any callback runs, so a callback may use the
	 * store freely. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = read_identity(st, &rows[n], e)) != 0)
			goto out;
		n++;
	}
	if (rc != SQLITE_DONE) {
		r = sq_db_fail(c, rc, "identity list", e);
		goto out;
	}
	sq_done(st);
	st = NULL;
	for (i = 0; i < n; i++)
		if ((r = load_accounts(c, &rows[i], e)) != 0)
			goto out;
	for (i = 0; i < n; i++)
		if ((r = cb(&rows[i], arg)) != 0)
			goto out;
	r = 0;
out:
	sq_done(st);
	for (i = 0; i < n; i++)
		identity_clear(&rows[i]);
	free(rows);
	free(pat);
	return r;
}

static int
sq_account_upsert(struct store_conn *c, struct account *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char *id;
	int r = QERR_INTERNAL, rc, bad = 0;

	if (a->id == NULL)
		return qerr_set(e, QERR_INVALID, "id", "account has no id");
	if ((r = stmt(c, S_ACC_UPSERT, &st, e)) != 0)
		return r;
	if (sq_bind_text(st, 1, a->id) || sq_bind_text(st, 2, a->identity_id) ||
	    sq_bind_text(st, 3, a->system) || sq_bind_text(st, 4, a->kind) ||
	    sq_bind_text(st, 5, a->external_id) || sq_bind_text(st, 6, a->sid) ||
	    sq_bind_text(st, 7, a->dn) || sq_bind_text(st, 8, a->username) ||
	    sq_bind_text(st, 9, a->upn) || sq_bind_text(st, 10, a->display_name) ||
	    sq_bind_text(st, 11, a->state) ||
	    sqlite3_bind_int64(st, 12, a->state_read_at) ||
	    sqlite3_bind_int64(st, 13, a->created_at) || sq_bind_text(st, 14, a->email) ||
	    sqlite3_bind_int(st, 15, a->synced)) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "account upsert", e);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = sq_db_fail(c, rc, "account upsert", e);
		goto out;
	}
	if ((id = sq_col_dup(st, 0, &bad)) == NULL) {
		r = sq_nomem(e);
		goto out;
	}
	free(a->id);
	a->id = id;
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = sq_db_fail(c, rc, "account upsert", e);
		goto out;
	}
	r = 0;
out:
	sq_done(st);
	return r;
}

static int
sq_account_get(struct store_conn *c, const char *id, struct account *out,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = stmt(c, S_ACC_GET, &st, e)) != 0)
		return r;
	return sq_get_one(c, st, id, NULL, sq_read_account, out, "account get", "account",
	    e);
}

static int
sq_account_link(struct store_conn *c, const char *account_id,
    const char *identity_id, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_ACC_LINK, &st, e)) != 0)
		return r;
	return sq_run_one(c, st, sq_bind_text(st, 1, account_id) ||
	    sq_bind_text(st, 2, identity_id), "account link", "account", e);
}

static int
sq_account_set_state(struct store_conn *c, const char *account_id,
    const char *state, int64_t read_at, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_ACC_STATE, &st, e)) != 0)
		return r;
	return sq_run_one(c, st, sq_bind_text(st, 1, account_id) ||
	    sq_bind_text(st, 2, state) ||
	    sqlite3_bind_int64(st, 3, read_at), "account state", "account", e);
}

/* Audit. */

/* The last audit entry's seq and hash. */
struct chain_end {
	int64_t seq;
	char hash[65];
};

static int
read_chain_end(sqlite3_stmt *st, void *out, struct qerr *e)
{
	struct chain_end *end = out;

	(void)e;
	end->seq = sqlite3_column_int64(st, 0);
	snprintf(end->hash, sizeof(end->hash), "%s", sq_col_str(st, 1));
	return 0;
}

/* The end of the chain in *end (seq 0 and audit_genesis for an empty log). */
static int
last_entry(struct store_conn *c, const char *what, struct chain_end *end,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	end->seq = 0;
	memcpy(end->hash, audit_genesis, sizeof(end->hash));
	if ((r = stmt(c, S_AUDIT_LAST, &st, e)) != 0)
		return r;
	r = sq_get_one(c, st, NULL, NULL, read_chain_end, end, what, NULL, e);
	return r == QERR_NOT_FOUND ? 0 : r;
}

static int
sq_audit_append(struct store_conn *c, struct audit_entry *ent, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct chain_end last;
	int r;

	if ((r = last_entry(c, "audit append", &last, e)) != 0)
		return r;
	ent->seq = last.seq + 1;
	/* Every entry written from now on is of the current format, whoever wrote it. */
	ent->format = AUDIT_FORMAT;
	if ((r = audit_seal(ent, last.hash, e)) == 0 &&
	    (r = stmt(c, S_AUDIT_INSERT, &st, e)) == 0)
		r = sq_run(c, st, sqlite3_bind_int64(st, 1, ent->seq) ||
		    sqlite3_bind_int64(st, 2, ent->time) || sq_bind_text(st, 3, ent->actor) ||
		    sq_bind_text(st, 4, ent->event) || sq_bind_text(st, 5, ent->action_id) ||
		    sq_bind_text(st, 6, ent->step_id) ||
		    sq_bind_text(st, 7, ent->identity_id) || sq_bind_text(st, 8, ent->detail) ||
		    sq_bind_text(st, 9, ent->prev_hash) || sq_bind_text(st, 10, ent->hash) ||
		    sqlite3_bind_int(st, 11, ent->format) ||
		    sq_bind_text(st, 12, ent->actor_kind) ||
		    sq_bind_text(st, 13, ent->actor_id) ||
		    sq_bind_text(st, 14, ent->client), "audit append", e);
	return r;
}

static int
sq_audit_list(struct store_conn *c, int64_t after_seq, int limit,
    store_audit_cb cb, void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct audit_entry ent;
	int r = QERR_INTERNAL, rc, bad = 0;

	memset(&ent, 0, sizeof(ent));
	if (limit < 0)
		return qerr_set(e, QERR_INVALID, "limit", "limit must not be negative");
	if ((r = stmt(c, S_AUDIT_LIST, &st, e)) != 0)
		return r;
	if (sqlite3_bind_int64(st, 1, after_seq) ||
	    sqlite3_bind_int(st, 2, limit == 0 ? -1 : limit)) {
		r = sq_db_fail(c, sqlite3_errcode(c->db), "audit list", e);
		goto out;
	}
	/* Streamed: the log may be far larger than memory allows to collect. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ent.seq = sqlite3_column_int64(st, 0);
		ent.time = sqlite3_column_int64(st, 1);
		ent.actor = sq_col_dup(st, 2, &bad);
		ent.event = sq_col_dup(st, 3, &bad);
		ent.action_id = sq_col_dup(st, 4, &bad);
		ent.step_id = sq_col_dup(st, 5, &bad);
		ent.identity_id = sq_col_dup(st, 6, &bad);
		ent.detail = sq_col_dup(st, 7, &bad);
		snprintf(ent.prev_hash, sizeof(ent.prev_hash), "%s", sq_col_str(st, 8));
		snprintf(ent.hash, sizeof(ent.hash), "%s", sq_col_str(st, 9));
		/* NULL: a row from before migration 7, of format 1. */
		ent.format = sqlite3_column_type(st, 10) == SQLITE_NULL ? 1 :
		    sqlite3_column_int(st, 10);
		ent.actor_kind = sq_col_dup(st, 11, &bad);
		ent.actor_id = sq_col_dup(st, 12, &bad);
		ent.client = sq_col_dup(st, 13, &bad);
		if (bad) {
			r = sq_nomem(e);
			goto out;
		}
		if ((r = cb(&ent, arg)) != 0)
			goto out;
		audit_entry_clear(&ent);
	}
	if (rc != SQLITE_DONE) {
		r = sq_db_fail(c, rc, "audit list", e);
		goto out;
	}
	r = 0;
out:
	audit_entry_clear(&ent);
	sq_done(st);
	return r;
}

static int
sq_audit_last_seq(struct store_conn *c, int64_t *seq, struct qerr *e)
{
	struct chain_end last;
	int r;

	r = last_entry(c, "audit last", &last, e);
	*seq = r == 0 ? last.seq : 0;
	return r;
}

/* SIEM delivery cursors. */

/* Column 0 into the int64_t out points to. */
static int
read_seq(sqlite3_stmt *st, void *out, struct qerr *e)
{
	(void)e;
	*(int64_t *)out = sqlite3_column_int64(st, 0);
	return 0;
}

/* A name without a cursor yet starts from 0. */
static int
sq_siem_cursor_get(struct store_conn *c, const char *name, int64_t *seq, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	*seq = 0;
	if ((r = stmt(c, S_SIEM_GET, &st, e)) != 0)
		return r;
	r = sq_get_one(c, st, name, NULL, read_seq, seq, "siem cursor", NULL, e);
	return r == QERR_NOT_FOUND ? 0 : r;
}

static int
sq_siem_cursor_put(struct store_conn *c, const char *name, int64_t seq, int64_t at,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_SIEM_PUT, &st, e)) != 0)
		return r;
	return sq_run(c, st, sq_bind_text(st, 1, name) || sqlite3_bind_int64(st, 2, seq) ||
	    sqlite3_bind_int64(st, 3, at), "siem cursor", e);
}
const struct store_ops store_sqlite = {
	.kind = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.migrate = sq_migrate,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.token_insert = sq_token_insert,
	.token_get = sq_token_get,
	.token_list = sq_token_list,
	.token_revoke = sq_token_revoke,
	.token_touch = sq_token_touch,
	.token_state = sq_token_state,
	.identity_insert = sq_identity_insert,
	.identity_update = sq_identity_update,
	.identity_get = sq_identity_get,
	.identity_head = sq_identity_head,
	.identity_list = sq_identity_list,
	.account_upsert = sq_account_upsert,
	.account_get = sq_account_get,
	.account_link = sq_account_link,
	.account_set_state = sq_account_set_state,
	.action_insert = sq_action_insert,
	.action_get = sq_action_get,
	.action_list = sq_action_list,
	.action_update = sq_action_update,
	.action_open_ids = sq_action_open_ids,
	.step_claim = sq_step_claim,
	.step_update = sq_step_update,
	.step_renew = sq_step_renew,
	.step_release = sq_step_release,
	.step_next_due = sq_step_next_due,
	.audit_append = sq_audit_append,
	.audit_list = sq_audit_list,
	.audit_last_seq = sq_audit_last_seq,
	.siem_cursor_get = sq_siem_cursor_get,
	.siem_cursor_put = sq_siem_cursor_put,
	.lease_acquire = sq_lease_acquire,
	.lease_release = sq_lease_release,
	.node_beat = sq_node_beat,
	.node_list = sq_node_list,
	.lease_list = sq_lease_list,
	.rate_get = sq_rate_get,
	.rate_put = sq_rate_put,
	.session_insert = sq_session_insert,
	.session_get = sq_session_get,
	.session_touch = sq_session_touch,
	.session_delete = sq_session_delete,
	.session_prune = sq_session_prune,
	.session_count = sq_session_count,
	.login_insert = sq_login_insert,
	.login_take = sq_login_take,
	.ssf_stream_put = sq_ssf_stream_put,
	.ssf_stream_delete = sq_ssf_stream_delete,
	.ssf_stream_list = sq_ssf_stream_list,
	.ssf_outbox_add = sq_ssf_outbox_add,
	.ssf_outbox_pending = sq_ssf_outbox_pending,
	.ssf_outbox_ack = sq_ssf_outbox_ack,
	.ssf_jti_claim = sq_ssf_jti_claim,
	.account_sync = sq_account_sync,
	.account_remove = sq_account_remove,
	.account_sweep = sq_account_sweep,
	.account_match = sq_account_match,
	.account_set_link = sq_account_set_link,
	.link_veto = sq_link_veto,
	.conflict_list = sq_conflict_list,
	.sync_state_get = sq_sync_state_get,
	.sync_state_put = sq_sync_state_put,
	.alert_insert = sq_alert_insert,
	.alert_get = sq_alert_get,
	.alert_find = sq_alert_find,
	.alert_list = sq_alert_list,
	.account_find = sq_account_find,
	.decision_insert = sq_decision_insert,
	.decision_list = sq_decision_list,
	.decision_count = sq_decision_count,
	.hunt = sqlite_hunt,
};
