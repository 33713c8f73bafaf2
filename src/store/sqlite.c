/*
 * The SQLite backend: one database file in WAL mode, synchronous=FULL so that a
 * committed transition survives a power cut. Each connection is used by one thread at
 * a time (the pool in store.c sees to it), so connections are opened NOMUTEX, and each
 * keeps its prepared statements for its whole life because the engine runs the same
 * few statements thousands of times a second.
 *
 * Enum values are stored by their model.h names so that the database reads on its own
 * and survives a reordering of the enums. Every text value is stored as given.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "core/audit.h"
#include "hunt.h"
#include "store.h"

#define BUSY_TIMEOUT_MS	10000
#define LIST_MAX	1000

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
};

#define NMIGRATIONS	((int)(sizeof(migrations) / sizeof(migrations[0])))

#define ACC_COLS "id, identity_id, system, kind, external_id, sid, dn, username, " \
	"upn, display_name, state, state_read_at, created_at, email, synced"
/* What reads of accounts return: ACC_COLS, then the link's reason (read_account). */
#define ACC_COLS_X ACC_COLS ", risk, link_rule, linked_by, linked_at"
#define ACT_COLS "id, type, status, identity_id, account_id, requested_by, source, " \
	"reason, params, message, cancel_requested, created_at, updated_at, finished_at, " \
	"requested_by_id, undo_of, approval_rule, decided_by, approval_expires, alert_id, " \
	"requested_by_kind, decided_by_id, decided_by_kind"
#define STEP_COLS "id, action_id, account_id, system, account_ref, account_name, " \
	"type, status, params, attempts, not_before, lease_owner, lease_expires, " \
	"request_id, error_code, message, created_at, updated_at, started_at, finished_at"
#define TOKEN_COLS "id, name, role, created_at, scope, expires_at, revoked_at, " \
	"revoked_by, last_used_at"
#define AUDIT_COLS "seq, time, actor, event, action_id, step_id, identity_id, " \
	"detail, prev_hash, hash, format, actor_kind, actor_id, client"

/* Action statuses (model.h names) whose steps may run. */
#define ACT_RUNNABLE "('queued', 'running')"

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
	S_IDN_INSERT,
	S_IDN_UPDATE,
	S_IDN_GET,
	S_IDN_ACCOUNTS,
	S_IDN_LIST,
	S_ACC_UPSERT,
	S_ACC_GET,
	S_ACC_LINK,
	S_ACC_STATE,
	S_ACT_INSERT,
	S_ACT_GET,
	S_ACT_STEPS,
	S_ACT_UPDATE,
	S_ACT_OPEN,
	S_STEP_INSERT,
	S_STEP_CLAIM,
	S_STEP_UPDATE,
	S_STEP_RENEW,
	S_STEP_RELEASE,
	S_STEP_DUE,
	S_AUDIT_LAST,
	S_AUDIT_INSERT,
	S_AUDIT_LIST,
	S_SIEM_GET,
	S_SIEM_PUT,
	S_COUNT
};

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
	[S_ACT_INSERT] =
	    "INSERT INTO actions (" ACT_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
	    " ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
	[S_ACT_GET] = "SELECT " ACT_COLS " FROM actions WHERE id = ?1",
	[S_ACT_STEPS] =
	    "SELECT " STEP_COLS " FROM steps WHERE action_id = ?1 ORDER BY id",
	[S_ACT_UPDATE] =
	    "UPDATE actions SET status = ?2, message = ?3, cancel_requested = ?4,"
	    " updated_at = ?5, finished_at = ?6, decided_by = ?7, decided_by_id = ?8,"
	    " decided_by_kind = ?9 WHERE id = ?1",
	[S_ACT_OPEN] =
	    "SELECT id FROM actions"
	    " WHERE status IN ('pending_approval', 'queued', 'running') ORDER BY id",
	[S_STEP_INSERT] =
	    "INSERT INTO steps (" STEP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
	    " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
	/* One statement, so that the pick and the take cannot be separated. */
	[S_STEP_CLAIM] =
	    "UPDATE steps SET status = 'running', lease_owner = ?1,"
	    " lease_expires = ?2 + ?3, attempts = attempts + 1,"
	    " started_at = CASE WHEN started_at = 0 THEN ?2 ELSE started_at END,"
	    " updated_at = ?2"
	    " WHERE id = (SELECT s.id FROM steps s INDEXED BY steps_claimable"
	    "  JOIN actions a ON a.id = s.action_id"
	    "  WHERE s.status IN ('queued', 'retry_wait', 'running')"
	    "  AND (s.status = 'queued'"
	    "   OR (s.status = 'retry_wait' AND s.not_before <= ?2)"
	    "   OR (s.status = 'running' AND s.lease_expires < ?2))"
	    "  AND a.status IN " ACT_RUNNABLE
	    "  AND s.system NOT IN (SELECT value FROM json_each(?4))"
	    "  AND (?5 IS NULL OR (s.system = ?5 AND s.type = ?6))"
	    "  ORDER BY s.created_at, s.id LIMIT 1)"
	    " RETURNING " STEP_COLS,
	[S_STEP_UPDATE] =
	    "UPDATE steps SET status = ?2, attempts = ?3, not_before = ?4,"
	    " lease_owner = ?5, lease_expires = ?6, request_id = ?7, error_code = ?8,"
	    " message = ?9, updated_at = ?10, started_at = ?11, finished_at = ?12"
	    " WHERE id = ?1",
	[S_STEP_RENEW] =
	    "UPDATE steps SET lease_expires = ?2"
	    " WHERE status = 'running' AND lease_owner = ?1",
	/* Still running (it may have acted), but owned by nobody: claimable at once. */
	[S_STEP_RELEASE] =
	    "UPDATE steps SET lease_owner = NULL, lease_expires = 0"
	    " WHERE status = 'running' AND lease_owner = ?1",
	/* Mirrors the claim's action filter, or a step of a cancelled action would be
	 * reported due forever; max(…, 1) keeps "due now" apart from "none" (0). */
	[S_STEP_DUE] =
	    "SELECT (SELECT max(min(s.not_before), 1) FROM steps s"
	    "   JOIN actions a ON a.id = s.action_id"
	    "   WHERE s.status = 'retry_wait' AND a.status IN " ACT_RUNNABLE "),"
	    " (SELECT max(min(s.lease_expires), 1) FROM steps s"
	    "   JOIN actions a ON a.id = s.action_id"
	    "   WHERE s.status = 'running' AND a.status IN " ACT_RUNNABLE ")",
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
 * action_list: one statement per combination of filters present, so that each can
 * use its index (status, identity_id, id range) instead of a "?n IS NULL OR" scan.
 * Parameters keep their numbers in every variant.
 */
enum {
	AF_STATUS = 1 << 0,
	AF_TYPE = 1 << 1,
	AF_IDENTITY = 1 << 2,
	AF_SINCE = 1 << 3,
	AF_BEFORE = 1 << 4,
	AF_UNDO = 1 << 5,
	AF_COUNT = 1 << 6
};

static const char *const action_list_terms[] = {
	" AND status = ?1",
	" AND type = ?2",
	" AND identity_id = ?3",
	" AND created_at >= ?4",
	" AND id < ?5",
	" AND undo_of = ?7",
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
};

static pthread_mutex_t gates_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gate *gates;

#define ALERT_STMT_MAX 16

#define SYNC_STMT_MAX 16

struct store_conn {
	sqlite3 *db;
	struct gate *gate;
	bool writing;		/* holds gate */
	sqlite3_stmt *stmt[S_COUNT];
	sqlite3_stmt *action_list[AF_COUNT];
	sqlite3_stmt *sync_stmt[SYNC_STMT_MAX];	/* inventory sync, below */
	sqlite3_stmt *alert_stmt[ALERT_STMT_MAX];	/* sqlite_alerts below */
};

/* Maps an SQLite result code to a quell error, with SQLite's own message. */
static int
db_fail(struct store_conn *c, int rc, const char *what, struct qerr *e)
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

static int
nomem(struct qerr *e)
{
	return qerr_set(e, QERR_NOMEM, NULL, "store: out of memory");
}

static int
prepare(struct store_conn *c, sqlite3_stmt **slot, const char *sql,
    sqlite3_stmt **out, struct qerr *e)
{
	int rc;

	if (*slot == NULL) {
		rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot,
		    NULL);
		if (rc != SQLITE_OK)
			return db_fail(c, rc, "prepare", e);
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
	return prepare(c, &c->stmt[id], stmt_sql[id], out, e);
}

/* Leaves a cached statement ready for its next use. */
static void
done(sqlite3_stmt *st)
{
	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Runs a statement that returns no rows. */
static int
exec_done(struct store_conn *c, sqlite3_stmt *st, const char *what, struct qerr *e)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return db_fail(c, rc, what, e);
	return 0;
}

static char *
col_dup(sqlite3_stmt *st, int i, int *bad)
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

static const char *
col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t != NULL ? (const char *)t : "";
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
	if (--g->refs == 0) {
		for (pp = &gates; *pp != g; pp = &(*pp)->next)
			;
		*pp = g->next;
		pthread_cond_destroy(&g->cv);
		free(g->path);
		free(g);
	}
	pthread_mutex_unlock(&gates_mu);
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
	for (i = 0; i < AF_COUNT; i++)
		sqlite3_finalize(c->action_list[i]);
	for (i = 0; i < SYNC_STMT_MAX; i++)
		sqlite3_finalize(c->sync_stmt[i]);
	for (i = 0; i < ALERT_STMT_MAX; i++)
		sqlite3_finalize(c->alert_stmt[i]);
	sqlite3_close_v2(c->db);
	gate_leave(c);
	gate_unref(c->gate);
	free(c);
}

static int
sq_open(const char *location, struct store_conn **out, struct qerr *e)
{
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	const char *mode;
	int r = QERR_INTERNAL, rc;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return nomem(e);
	rc = sqlite3_open_v2(location, &c->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
	if (rc != SQLITE_OK) {
		if (c->db == NULL) {
			r = nomem(e);
			goto out;
		}
		r = qerr_set(e, QERR_STORE, "path", "%s: %s", location,
		    sqlite3_errmsg(c->db));
		goto out;
	}
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	if ((c->gate = gate_ref(sqlite3_db_filename(c->db, "main"))) == NULL) {
		r = nomem(e);
		goto out;
	}
	/* journal_mode answers with the mode in force: anything but "wal" means the
	 * file cannot do WAL (e.g. ":memory:"), and the durability promises would not
	 * hold. */
	rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		mode = col_str(st, 0);
		if (strcmp(mode, "wal") != 0) {
			r = qerr_set(e, QERR_STORE, "path",
			    "%s: cannot use WAL journal mode (got \"%s\")", location, mode);
			goto out;
		}
	} else {
		r = db_fail(c, rc, location, e);
		goto out;
	}
	rc = sqlite3_exec(c->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
	    NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = db_fail(c, rc, location, e);
		goto out;
	}
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
	if ((r = exec_done(c, st, "begin", e)) != 0)
		gate_leave(c);
	done(st);
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
	if ((r = exec_done(c, st, "commit", e)) == 0)
		gate_leave(c);
	done(st);
	return r;
}

static void
sq_rollback(struct store_conn *c)
{
	sqlite3_stmt *st = NULL;

	/* SQLite may already have rolled back on its own after some errors. */
	if (!sqlite3_get_autocommit(c->db) && stmt(c, S_ROLLBACK, &st, NULL) == 0) {
		sqlite3_step(st);
		done(st);
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
		r = db_fail(c, rc, "migrate", e);
		goto out;
	}
	rc = sqlite3_prepare_v2(c->db,
	    "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st, NULL);
	if (rc != SQLITE_OK || (rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = db_fail(c, rc, "migrate", e);
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
		r = db_fail(c, rc, "migrate", e);
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
		if ((r = exec_done(c, st, "migrate", e)) != 0)
			goto out;
		sqlite3_reset(st);
	}
	if ((rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
		r = db_fail(c, rc, "migrate", e);
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

static int strings_json(char *const *v, size_t n, char **out, struct qerr *e);
static int json_strings(const char *text, char ***v, size_t *n, const char *what,
    struct qerr *e);

static int
sq_token_insert(struct store_conn *c, const struct token_info *t,
    const unsigned char hash[32], struct qerr *e)
{
	const struct principal *p = &t->p;
	sqlite3_stmt *st = NULL;
	char *scope = NULL;
	int r;

	if ((r = strings_json(p->scope, p->nscope, &scope, e)) != 0)
		return r;
	if ((r = stmt(c, S_TOKEN_INSERT, &st, e)) != 0) {
		free(scope);
		return r;
	}
	if (bind_text(st, 1, p->id) || bind_text(st, 2, p->name) ||
	    bind_text(st, 3, p->role) ||
	    sqlite3_bind_blob(st, 4, hash, 32, SQLITE_STATIC) ||
	    sqlite3_bind_int64(st, 5, p->created_at) || bind_text(st, 6, scope) ||
	    sqlite3_bind_int64(st, 7, t->expires_at))
		r = db_fail(c, sqlite3_errcode(c->db), "token insert", e);
	else
		r = exec_done(c, st, "token insert", e);
	done(st);
	free(scope);
	return r;
}

/* A row of TOKEN_COLS into *t (caller clears; cleared here on failure). */
static int
read_token(sqlite3_stmt *st, struct token_info *t, struct qerr *e)
{
	int r, bad = 0;

	memset(t, 0, sizeof(*t));
	t->p.id = col_dup(st, 0, &bad);
	t->p.name = col_dup(st, 1, &bad);
	t->p.role = col_dup(st, 2, &bad);
	t->p.created_at = sqlite3_column_int64(st, 3);
	t->expires_at = sqlite3_column_int64(st, 5);
	t->revoked_at = sqlite3_column_int64(st, 6);
	t->revoked_by = col_dup(st, 7, &bad);
	t->last_used_at = sqlite3_column_int64(st, 8);
	if (bad)
		r = nomem(e);
	else
		r = json_strings(col_str(st, 4), &t->p.scope, &t->p.nscope, "token scope",
		    e);
	if (r != 0)
		token_info_clear(t);
	return r;
}

static int
sq_token_get(struct store_conn *c, const char *id, struct token_info *t,
    unsigned char hash[32], struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r = QERR_INTERNAL, rc;

	memset(t, 0, sizeof(*t));
	if ((r = stmt(c, S_TOKEN_GET, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, id)) {
		r = db_fail(c, sqlite3_errcode(c->db), "token get", e);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ?
		    qerr_set(e, QERR_NOT_FOUND, "token", "no such token") :
		    db_fail(c, rc, "token get", e);
		goto out;
	}
	if (sqlite3_column_bytes(st, 9) != 32) {
		r = qerr_set(e, QERR_STORE, NULL, "token %s: stored hash is damaged", id);
		goto out;
	}
	memcpy(hash, sqlite3_column_blob(st, 9), 32);
	r = read_token(st, t, e);
out:
	done(st);
	return r;
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
	if (bind_text(st, 1, after_id ? after_id : "") ||
	    sqlite3_bind_int(st, 2, limit)) {
		r = db_fail(c, sqlite3_errcode(c->db), "token list", e);
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
	r = rc == SQLITE_DONE ? 0 : db_fail(c, rc, "token list", e);
out:
	done(st);
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
	if (bind_text(st, 1, id) || sqlite3_bind_int64(st, 2, at) || bind_text(st, 3, by))
		r = db_fail(c, sqlite3_errcode(c->db), "token revoke", e);
	else
		r = exec_done(c, st, "token revoke", e);
	done(st);
	if (r != 0 || sqlite3_changes(c->db) == 1)
		return r;
	/* Nothing changed: tell an unknown token from one revoked before. */
	if ((r = stmt(c, S_TOKEN_EXISTS, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, id))
		r = db_fail(c, sqlite3_errcode(c->db), "token revoke", e);
	else if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		r = qerr_set(e, QERR_CONFLICT, "token_id", "token %s is already revoked", id);
	else if (rc == SQLITE_DONE)
		r = qerr_set(e, QERR_NOT_FOUND, "token_id", "no token %s", id);
	else
		r = db_fail(c, rc, "token revoke", e);
	done(st);
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
	if (bind_text(st, 1, id) || sqlite3_bind_int64(st, 2, at) ||
	    sqlite3_bind_int64(st, 3, min_gap_ms))
		r = db_fail(c, sqlite3_errcode(c->db), "token touch", e);
	else if ((r = exec_done(c, st, "token touch", e)) == 0)
		*written = sqlite3_changes(c->db) == 1;
	done(st);
	return r;
}

/* Identities and accounts. */

static int
read_account(sqlite3_stmt *st, struct account *a, struct qerr *e)
{
	int bad = 0;

	memset(a, 0, sizeof(*a));
	a->id = col_dup(st, 0, &bad);
	a->identity_id = col_dup(st, 1, &bad);
	a->system = col_dup(st, 2, &bad);
	a->kind = col_dup(st, 3, &bad);
	a->external_id = col_dup(st, 4, &bad);
	a->sid = col_dup(st, 5, &bad);
	a->dn = col_dup(st, 6, &bad);
	a->username = col_dup(st, 7, &bad);
	a->upn = col_dup(st, 8, &bad);
	a->display_name = col_dup(st, 9, &bad);
	a->state = col_dup(st, 10, &bad);
	a->state_read_at = sqlite3_column_int64(st, 11);
	a->created_at = sqlite3_column_int64(st, 12);
	a->email = col_dup(st, 13, &bad);
	a->synced = sqlite3_column_int(st, 14) != 0;
	if (sqlite3_column_count(st) > 18) {
		a->risk = col_dup(st, 15, &bad);
		a->link_rule = col_dup(st, 16, &bad);
		a->linked_by = col_dup(st, 17, &bad);
		a->linked_at = sqlite3_column_int64(st, 18);
	}
	if (bad) {
		account_clear(a);
		return nomem(e);
	}
	return 0;
}

/* A list of strings (identity tags, token scope) as a JSON array, as stored. */
static int
strings_json(char *const *v, size_t n, char **out, struct qerr *e)
{
	json_t *arr, *s;
	size_t i;
	int r = QERR_INTERNAL;

	*out = NULL;
	if ((arr = json_array()) == NULL)
		return nomem(e);
	for (i = 0; i < n; i++) {
		if (v[i] == NULL || (s = json_string(v[i])) == NULL) {
			r = qerr_set(e, QERR_INVALID, "tags", "tag %zu is not UTF-8 text",
			    i);
			goto out;
		}
		if (json_array_append_new(arr, s) != 0) {
			r = nomem(e);
			goto out;
		}
	}
	if ((*out = json_dumps(arr, JSON_COMPACT)) == NULL) {
		r = nomem(e);
		goto out;
	}
	r = 0;
out:
	json_decref(arr);
	return r;
}

/* The reverse of strings_json; what names the column for a damaged value. */
static int
json_strings(const char *text, char ***v, size_t *n, const char *what, struct qerr *e)
{
	json_t *arr;
	const char *t;
	size_t i, len;
	int r = QERR_INTERNAL;

	*v = NULL;
	*n = 0;
	if ((arr = json_loads(text ? text : "[]", 0, NULL)) == NULL ||
	    !json_is_array(arr)) {
		r = qerr_set(e, QERR_STORE, NULL, "%s: not a JSON array", what);
		goto out;
	}
	len = json_array_size(arr);
	if (len > 0 && (*v = calloc(len, sizeof(**v))) == NULL) {
		r = nomem(e);
		goto out;
	}
	for (i = 0; i < len; i++) {
		if ((t = json_string_value(json_array_get(arr, i))) == NULL) {
			r = qerr_set(e, QERR_STORE, NULL, "%s: item %zu is not a string",
			    what, i);
			goto out;
		}
		if (((*v)[i] = strdup(t)) == NULL) {
			r = nomem(e);
			goto out;
		}
		*n = i + 1;
	}
	r = 0;
out:
	json_decref(arr);
	return r;
}

static int
tags_json(const struct identity *idn, char **out, struct qerr *e)
{
	return strings_json(idn->tags, idn->ntags, out, e);
}

static int
tags_parse(const char *id, const char *text, struct identity *idn, struct qerr *e)
{
	char what[96];

	snprintf(what, sizeof(what), "identity %s: stored tags", id);
	return json_strings(text, &idn->tags, &idn->ntags, what, e);
}

/* Fills idn from a row of (id, display_name, tags, created_at). */
static int
read_identity(sqlite3_stmt *st, struct identity *idn, struct qerr *e)
{
	int bad = 0, r;

	memset(idn, 0, sizeof(*idn));
	idn->id = col_dup(st, 0, &bad);
	idn->display_name = col_dup(st, 1, &bad);
	idn->created_at = sqlite3_column_int64(st, 3);
	if (bad) {
		identity_clear(idn);
		return nomem(e);
	}
	if ((r = tags_parse(idn->id, col_str(st, 2), idn, e)) != 0) {
		identity_clear(idn);
		return r;
	}
	return 0;
}

static int
load_accounts(struct store_conn *c, struct identity *idn, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct account *grown;
	size_t cap = 0;
	int r = QERR_INTERNAL, rc;

	if ((r = stmt(c, S_IDN_ACCOUNTS, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, idn->id)) {
		r = db_fail(c, sqlite3_errcode(c->db), "identity accounts", e);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (idn->naccounts == cap) {
			cap = cap ? cap * 2 : 4;
			if ((grown = realloc(idn->accounts, cap * sizeof(*grown))) == NULL) {
				r = nomem(e);
				goto out;
			}
			idn->accounts = grown;
		}
		if ((r = read_account(st, &idn->accounts[idn->naccounts], e)) != 0)
			goto out;
		idn->naccounts++;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(c, rc, "identity accounts", e);
		goto out;
	}
	r = 0;
out:
	done(st);
	return r;
}

static int
sq_identity_insert(struct store_conn *c, const struct identity *idn, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char *tags = NULL;
	int r;

	if ((r = tags_json(idn, &tags, e)) != 0)
		return r;
	if ((r = stmt(c, S_IDN_INSERT, &st, e)) != 0)
		goto out;
	if (bind_text(st, 1, idn->id) || bind_text(st, 2, idn->display_name) ||
	    bind_text(st, 3, tags) || sqlite3_bind_int64(st, 4, idn->created_at))
		r = db_fail(c, sqlite3_errcode(c->db), "identity insert", e);
	else
		r = exec_done(c, st, "identity insert", e);
out:
	done(st);
	free(tags);
	return r;
}

/* Runs an UPDATE by id; QERR_NOT_FOUND when it touched no row. */
static int
update_one(struct store_conn *c, sqlite3_stmt *st, const char *what,
    const char *field, struct qerr *e)
{
	int r;

	if ((r = exec_done(c, st, what, e)) != 0)
		return r;
	if (sqlite3_changes(c->db) == 0)
		return qerr_set(e, QERR_NOT_FOUND, field, "%s: no such %s", what, field);
	return 0;
}

static int
sq_identity_update(struct store_conn *c, const struct identity *idn, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char *tags = NULL;
	int r;

	if ((r = tags_json(idn, &tags, e)) != 0)
		return r;
	if ((r = stmt(c, S_IDN_UPDATE, &st, e)) != 0)
		goto out;
	if (bind_text(st, 1, idn->id) || bind_text(st, 2, idn->display_name) ||
	    bind_text(st, 3, tags))
		r = db_fail(c, sqlite3_errcode(c->db), "identity update", e);
	else
		r = update_one(c, st, "identity update", "identity", e);
out:
	done(st);
	free(tags);
	return r;
}

static int
sq_identity_get(struct store_conn *c, const char *id, struct identity *out,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r = QERR_INTERNAL, rc;

	memset(out, 0, sizeof(*out));
	if ((r = stmt(c, S_IDN_GET, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, id)) {
		r = db_fail(c, sqlite3_errcode(c->db), "identity get", e);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ?
		    qerr_set(e, QERR_NOT_FOUND, "identity", "no such identity") :
		    db_fail(c, rc, "identity get", e);
		goto out;
	}
	if ((r = read_identity(st, out, e)) != 0)
		goto out;
	done(st);
	st = NULL;
	if ((r = load_accounts(c, out, e)) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		identity_clear(out);
	done(st);
	return r;
}

/* "%text%" with LIKE's wildcards and the escape character escaped. */
static char *
like_pattern(const char *text)
{
	size_t n = strlen(text), i, j = 0;
	char *p;

	if ((p = malloc(2 * n + 3)) == NULL)
		return NULL;
	p[j++] = '%';
	for (i = 0; i < n; i++) {
		if (text[i] == '%' || text[i] == '_' || text[i] == '\\')
			p[j++] = '\\';
		p[j++] = text[i];
	}
	p[j++] = '%';
	p[j] = '\0';
	return p;
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
	if (f->query != NULL && (pat = like_pattern(f->query)) == NULL)
		return nomem(e);
	if ((rows = calloc((size_t)f->limit, sizeof(*rows))) == NULL) {
		r = nomem(e);
		goto out;
	}
	if ((r = stmt(c, S_IDN_LIST, &st, e)) != 0)
		goto out;
	if (bind_text(st, 1, f->after_id != NULL ? f->after_id : "") ||
	    bind_text(st, 2, pat) || sqlite3_bind_int(st, 3, f->limit)) {
		r = db_fail(c, sqlite3_errcode(c->db), "identity list", e);
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
		r = db_fail(c, rc, "identity list", e);
		goto out;
	}
	done(st);
	st = NULL;
	for (i = 0; i < n; i++)
		if ((r = load_accounts(c, &rows[i], e)) != 0)
			goto out;
	for (i = 0; i < n; i++)
		if ((r = cb(&rows[i], arg)) != 0)
			goto out;
	r = 0;
out:
	done(st);
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
	if (bind_text(st, 1, a->id) || bind_text(st, 2, a->identity_id) ||
	    bind_text(st, 3, a->system) || bind_text(st, 4, a->kind) ||
	    bind_text(st, 5, a->external_id) || bind_text(st, 6, a->sid) ||
	    bind_text(st, 7, a->dn) || bind_text(st, 8, a->username) ||
	    bind_text(st, 9, a->upn) || bind_text(st, 10, a->display_name) ||
	    bind_text(st, 11, a->state) ||
	    sqlite3_bind_int64(st, 12, a->state_read_at) ||
	    sqlite3_bind_int64(st, 13, a->created_at) || bind_text(st, 14, a->email) ||
	    sqlite3_bind_int(st, 15, a->synced)) {
		r = db_fail(c, sqlite3_errcode(c->db), "account upsert", e);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = db_fail(c, rc, "account upsert", e);
		goto out;
	}
	if ((id = col_dup(st, 0, &bad)) == NULL) {
		r = nomem(e);
		goto out;
	}
	free(a->id);
	a->id = id;
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = db_fail(c, rc, "account upsert", e);
		goto out;
	}
	r = 0;
out:
	done(st);
	return r;
}

static int
sq_account_get(struct store_conn *c, const char *id, struct account *out,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r = QERR_INTERNAL, rc;

	memset(out, 0, sizeof(*out));
	if ((r = stmt(c, S_ACC_GET, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, id)) {
		r = db_fail(c, sqlite3_errcode(c->db), "account get", e);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ?
		    qerr_set(e, QERR_NOT_FOUND, "account", "no such account") :
		    db_fail(c, rc, "account get", e);
		goto out;
	}
	r = read_account(st, out, e);
out:
	done(st);
	return r;
}


static int
sq_account_link(struct store_conn *c, const char *account_id,
    const char *identity_id, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_ACC_LINK, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, account_id) || bind_text(st, 2, identity_id))
		r = db_fail(c, sqlite3_errcode(c->db), "account link", e);
	else
		r = update_one(c, st, "account link", "account", e);
	done(st);
	return r;
}

static int
sq_account_set_state(struct store_conn *c, const char *account_id,
    const char *state, int64_t read_at, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_ACC_STATE, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, account_id) || bind_text(st, 2, state) ||
	    sqlite3_bind_int64(st, 3, read_at))
		r = db_fail(c, sqlite3_errcode(c->db), "account state", e);
	else
		r = update_one(c, st, "account state", "account", e);
	done(st);
	return r;
}

/* Actions and steps. */

static int
read_action(sqlite3_stmt *st, struct action *a, struct qerr *e)
{
	int bad = 0;

	memset(a, 0, sizeof(*a));
	a->id = col_dup(st, 0, &bad);
	a->identity_id = col_dup(st, 3, &bad);
	a->account_id = col_dup(st, 4, &bad);
	a->requested_by = col_dup(st, 5, &bad);
	a->source = col_dup(st, 6, &bad);
	a->reason = col_dup(st, 7, &bad);
	a->params = col_dup(st, 8, &bad);
	a->message = col_dup(st, 9, &bad);
	a->cancel_requested = sqlite3_column_int(st, 10) != 0;
	a->created_at = sqlite3_column_int64(st, 11);
	a->updated_at = sqlite3_column_int64(st, 12);
	a->finished_at = sqlite3_column_int64(st, 13);
	a->requested_by_id = col_dup(st, 14, &bad);
	a->undo_of = col_dup(st, 15, &bad);
	a->approval_rule = col_dup(st, 16, &bad);
	a->decided_by = col_dup(st, 17, &bad);
	a->approval_expires = sqlite3_column_int64(st, 18);
	a->alert_id = col_dup(st, 19, &bad);
	a->requested_by_kind = col_dup(st, 20, &bad);
	a->decided_by_id = col_dup(st, 21, &bad);
	a->decided_by_kind = col_dup(st, 22, &bad);
	if (bad) {
		action_clear(a);
		return nomem(e);
	}
	if (action_type_parse(col_str(st, 1), &a->type) != 0 ||
	    action_status_parse(col_str(st, 2), &a->status) != 0) {
		qerr_set(e, QERR_STORE, NULL,
		    "action %s: unknown type \"%s\" or status \"%s\"", a->id,
		    col_str(st, 1), col_str(st, 2));
		action_clear(a);
		return QERR_STORE;
	}
	return 0;
}

static int
read_step(sqlite3_stmt *st, struct step *s, struct qerr *e)
{
	int bad = 0;

	memset(s, 0, sizeof(*s));
	s->id = col_dup(st, 0, &bad);
	s->action_id = col_dup(st, 1, &bad);
	s->account_id = col_dup(st, 2, &bad);
	s->system = col_dup(st, 3, &bad);
	s->account_ref = col_dup(st, 4, &bad);
	s->account_name = col_dup(st, 5, &bad);
	s->params = col_dup(st, 8, &bad);
	s->attempts = sqlite3_column_int(st, 9);
	s->not_before = sqlite3_column_int64(st, 10);
	s->lease_owner = col_dup(st, 11, &bad);
	s->lease_expires = sqlite3_column_int64(st, 12);
	s->request_id = col_dup(st, 13, &bad);
	s->error_code = col_dup(st, 14, &bad);
	s->message = col_dup(st, 15, &bad);
	s->created_at = sqlite3_column_int64(st, 16);
	s->updated_at = sqlite3_column_int64(st, 17);
	s->started_at = sqlite3_column_int64(st, 18);
	s->finished_at = sqlite3_column_int64(st, 19);
	if (bad) {
		step_clear(s);
		return nomem(e);
	}
	if (action_type_parse(col_str(st, 6), &s->type) != 0 ||
	    step_status_parse(col_str(st, 7), &s->status) != 0) {
		qerr_set(e, QERR_STORE, NULL,
		    "step %s: unknown type \"%s\" or status \"%s\"", s->id,
		    col_str(st, 6), col_str(st, 7));
		step_clear(s);
		return QERR_STORE;
	}
	return 0;
}

static int
check_enums(enum action_type t, const char *status, struct qerr *e)
{
	if ((unsigned)t >= ACTION_TYPE_COUNT)
		return qerr_set(e, QERR_INVALID, "type", "unknown action type %d", (int)t);
	if (strcmp(status, "unknown") == 0)
		return qerr_set(e, QERR_INVALID, "status", "unknown status");
	return 0;
}

static int
insert_step(struct store_conn *c, sqlite3_stmt *st, const char *action_id,
    const struct step *s, struct qerr *e)
{
	int r;

	if ((r = check_enums(s->type, step_status_name(s->status), e)) != 0)
		return r;
	if (bind_text(st, 1, s->id) || bind_text(st, 2, action_id) ||
	    bind_text(st, 3, s->account_id) || bind_text(st, 4, s->system) ||
	    bind_text(st, 5, s->account_ref) || bind_text(st, 6, s->account_name) ||
	    bind_text(st, 7, action_type_name(s->type)) ||
	    bind_text(st, 8, step_status_name(s->status)) ||
	    bind_text(st, 9, s->params) || sqlite3_bind_int(st, 10, s->attempts) ||
	    sqlite3_bind_int64(st, 11, s->not_before) ||
	    bind_text(st, 12, s->lease_owner) ||
	    sqlite3_bind_int64(st, 13, s->lease_expires) ||
	    bind_text(st, 14, s->request_id) || bind_text(st, 15, s->error_code) ||
	    bind_text(st, 16, s->message) || sqlite3_bind_int64(st, 17, s->created_at) ||
	    sqlite3_bind_int64(st, 18, s->updated_at) ||
	    sqlite3_bind_int64(st, 19, s->started_at) ||
	    sqlite3_bind_int64(st, 20, s->finished_at))
		r = db_fail(c, sqlite3_errcode(c->db), "step insert", e);
	else
		r = exec_done(c, st, "step insert", e);
	sqlite3_reset(st);
	return r;
}

static int
sq_action_insert(struct store_conn *c, const struct action *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int r;

	if ((r = check_enums(a->type, action_status_name(a->status), e)) != 0)
		return r;
	if ((r = stmt(c, S_ACT_INSERT, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, a->id) || bind_text(st, 2, action_type_name(a->type)) ||
	    bind_text(st, 3, action_status_name(a->status)) ||
	    bind_text(st, 4, a->identity_id) || bind_text(st, 5, a->account_id) ||
	    bind_text(st, 6, a->requested_by) || bind_text(st, 7, a->source) ||
	    bind_text(st, 8, a->reason) || bind_text(st, 9, a->params) ||
	    bind_text(st, 10, a->message) ||
	    sqlite3_bind_int(st, 11, a->cancel_requested) ||
	    sqlite3_bind_int64(st, 12, a->created_at) ||
	    sqlite3_bind_int64(st, 13, a->updated_at) ||
	    sqlite3_bind_int64(st, 14, a->finished_at) ||
	    bind_text(st, 15, a->requested_by_id) || bind_text(st, 16, a->undo_of) ||
	    bind_text(st, 17, a->approval_rule) || bind_text(st, 18, a->decided_by) ||
	    sqlite3_bind_int64(st, 19, a->approval_expires) ||
	    bind_text(st, 20, a->alert_id) || bind_text(st, 21, a->requested_by_kind) ||
	    bind_text(st, 22, a->decided_by_id) || bind_text(st, 23, a->decided_by_kind))
		r = db_fail(c, sqlite3_errcode(c->db), "action insert", e);
	else
		r = exec_done(c, st, "action insert", e);
	done(st);
	if (r != 0)
		return r;
	if ((r = stmt(c, S_STEP_INSERT, &st, e)) != 0)
		return r;
	/* Steps belong to the action being inserted, whatever their action_id says. */
	for (i = 0; i < a->nsteps && r == 0; i++)
		r = insert_step(c, st, a->id, &a->steps[i], e);
	done(st);
	return r;
}

static int
sq_action_get(struct store_conn *c, const char *id, struct action *out,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct step *grown;
	size_t cap = 0;
	int r = QERR_INTERNAL, rc;

	memset(out, 0, sizeof(*out));
	if ((r = stmt(c, S_ACT_GET, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, id)) {
		r = db_fail(c, sqlite3_errcode(c->db), "action get", e);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ?
		    qerr_set(e, QERR_NOT_FOUND, "action", "no such action") :
		    db_fail(c, rc, "action get", e);
		goto out;
	}
	if ((r = read_action(st, out, e)) != 0)
		goto out;
	done(st);
	st = NULL;
	if ((r = stmt(c, S_ACT_STEPS, &st, e)) != 0)
		goto out;
	if (bind_text(st, 1, id)) {
		r = db_fail(c, sqlite3_errcode(c->db), "action steps", e);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out->nsteps == cap) {
			cap = cap ? cap * 2 : 4;
			if ((grown = realloc(out->steps, cap * sizeof(*grown))) == NULL) {
				r = nomem(e);
				goto out;
			}
			out->steps = grown;
		}
		if ((r = read_step(st, &out->steps[out->nsteps], e)) != 0)
			goto out;
		out->nsteps++;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(c, rc, "action steps", e);
		goto out;
	}
	r = 0;
out:
	if (r != 0)
		action_clear(out);
	done(st);
	return r;
}

static int
action_list_stmt(struct store_conn *c, unsigned mask, sqlite3_stmt **out,
    struct qerr *e)
{
	char sql[1024];
	size_t i;
	int n;

	if (c->action_list[mask] != NULL)
		return prepare(c, &c->action_list[mask], NULL, out, e);
	n = snprintf(sql, sizeof(sql), "SELECT " ACT_COLS " FROM actions WHERE 1");
	for (i = 0; i < sizeof(action_list_terms) / sizeof(action_list_terms[0]); i++)
		if (mask & (1u << i))
			n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s",
			    action_list_terms[i]);
	snprintf(sql + n, sizeof(sql) - (size_t)n, " ORDER BY id DESC LIMIT ?6");
	return prepare(c, &c->action_list[mask], sql, out, e);
}

static int
sq_action_list(struct store_conn *c, const struct action_filter *f,
    store_action_cb cb, void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct action *rows = NULL;
	enum action_status as;
	enum action_type at;
	unsigned mask = 0;
	size_t n = 0, i;
	int r = QERR_INTERNAL, rc;

	if (f->limit < 1 || f->limit > LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    LIST_MAX);
	if (f->status != NULL && action_status_parse(f->status, &as) != 0)
		return qerr_set(e, QERR_INVALID, "status", "unknown action status");
	if (f->type != NULL && action_type_parse(f->type, &at) != 0)
		return qerr_set(e, QERR_INVALID, "type", "unknown action type");
	mask |= f->status != NULL ? AF_STATUS : 0;
	mask |= f->type != NULL ? AF_TYPE : 0;
	mask |= f->identity_id != NULL ? AF_IDENTITY : 0;
	mask |= f->since != 0 ? AF_SINCE : 0;
	mask |= f->before_id != NULL ? AF_BEFORE : 0;
	mask |= f->undo_of != NULL ? AF_UNDO : 0;
	if ((rows = calloc((size_t)f->limit, sizeof(*rows))) == NULL)
		return nomem(e);
	if ((r = action_list_stmt(c, mask, &st, e)) != 0)
		goto out;
	if (bind_text(st, 1, f->status) || bind_text(st, 2, f->type) ||
	    bind_text(st, 3, f->identity_id) || sqlite3_bind_int64(st, 4, f->since) ||
	    bind_text(st, 5, f->before_id) || sqlite3_bind_int(st, 6, f->limit) ||
	    ((mask & AF_UNDO) && bind_text(st, 7, f->undo_of))) {
		r = db_fail(c, sqlite3_errcode(c->db), "action list", e);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = read_action(st, &rows[n], e)) != 0)
			goto out;
		n++;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(c, rc, "action list", e);
		goto out;
	}
	done(st);
	st = NULL;
	for (i = 0; i < n; i++)
		if ((r = cb(&rows[i], arg)) != 0)
			goto out;
	r = 0;
out:
	done(st);
	for (i = 0; i < n; i++)
		action_clear(&rows[i]);
	free(rows);
	return r;
}

static int
sq_action_update(struct store_conn *c, const struct action *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = check_enums(a->type, action_status_name(a->status), e)) != 0)
		return r;
	if ((r = stmt(c, S_ACT_UPDATE, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, a->id) || bind_text(st, 2, action_status_name(a->status)) ||
	    bind_text(st, 3, a->message) ||
	    sqlite3_bind_int(st, 4, a->cancel_requested) ||
	    sqlite3_bind_int64(st, 5, a->updated_at) ||
	    sqlite3_bind_int64(st, 6, a->finished_at) || bind_text(st, 7, a->decided_by) ||
	    bind_text(st, 8, a->decided_by_id) || bind_text(st, 9, a->decided_by_kind))
		r = db_fail(c, sqlite3_errcode(c->db), "action update", e);
	else
		r = update_one(c, st, "action update", "action", e);
	done(st);
	return r;
}

static int
sq_action_open_ids(struct store_conn *c, char ***ids, size_t *n, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char **v = NULL, **grown;
	size_t cnt = 0, cap = 0, i;
	int r = QERR_INTERNAL, rc, bad = 0;

	*ids = NULL;
	*n = 0;
	if ((r = stmt(c, S_ACT_OPEN, &st, e)) != 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			if ((grown = realloc(v, cap * sizeof(*v))) == NULL) {
				r = nomem(e);
				goto out;
			}
			v = grown;
		}
		if ((v[cnt] = col_dup(st, 0, &bad)) == NULL) {
			r = nomem(e);
			goto out;
		}
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(c, rc, "open actions", e);
		goto out;
	}
	*ids = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
	r = 0;
out:
	done(st);
	for (i = 0; i < cnt; i++)
		free(v[i]);
	free(v);
	return r;
}

/* skip_systems as a JSON array, for json_each() in the claim statement. */
static int
skip_json(const struct step_claim *cl, char **out, struct qerr *e)
{
	json_t *arr, *s;
	size_t i;
	int r = QERR_INTERNAL;

	*out = NULL;
	if ((arr = json_array()) == NULL)
		return nomem(e);
	for (i = 0; i < cl->nskip; i++) {
		if (cl->skip_systems[i] == NULL ||
		    (s = json_string(cl->skip_systems[i])) == NULL) {
			r = qerr_set(e, QERR_INVALID, "skip_systems",
			    "system name %zu is not UTF-8 text", i);
			goto out;
		}
		if (json_array_append_new(arr, s) != 0) {
			r = nomem(e);
			goto out;
		}
	}
	if ((*out = json_dumps(arr, JSON_COMPACT)) == NULL) {
		r = nomem(e);
		goto out;
	}
	r = 0;
out:
	json_decref(arr);
	return r;
}

static int
sq_step_claim(struct store_conn *c, const struct step_claim *cl, struct step *out,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char *skip = NULL;
	int r = QERR_INTERNAL, rc;

	memset(out, 0, sizeof(*out));
	if (cl->owner == NULL || cl->lease_ms <= 0)
		return qerr_set(e, QERR_INVALID, "owner",
		    "a claim needs an owner and a positive lease");
	if (cl->nskip > 0 && (r = skip_json(cl, &skip, e)) != 0)
		return r;
	if ((r = stmt(c, S_STEP_CLAIM, &st, e)) != 0)
		goto out;
	if (bind_text(st, 1, cl->owner) || sqlite3_bind_int64(st, 2, cl->now) ||
	    sqlite3_bind_int64(st, 3, cl->lease_ms) ||
	    bind_text(st, 4, skip != NULL ? skip : "[]") ||
	    bind_text(st, 5, cl->only_system) ||
	    bind_text(st, 6, action_type_name(cl->only_type))) {
		r = db_fail(c, sqlite3_errcode(c->db), "step claim", e);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ?
		    qerr_set(e, QERR_NOT_FOUND, NULL, "no step is claimable") :
		    db_fail(c, rc, "step claim", e);
		goto out;
	}
	if ((r = read_step(st, out, e)) != 0)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		step_clear(out);
		r = db_fail(c, rc, "step claim", e);
		goto out;
	}
	r = 0;
out:
	done(st);
	free(skip);
	return r;
}

static int
sq_step_update(struct store_conn *c, const struct step *s, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = check_enums(s->type, step_status_name(s->status), e)) != 0)
		return r;
	if ((r = stmt(c, S_STEP_UPDATE, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, s->id) || bind_text(st, 2, step_status_name(s->status)) ||
	    sqlite3_bind_int(st, 3, s->attempts) ||
	    sqlite3_bind_int64(st, 4, s->not_before) ||
	    bind_text(st, 5, s->lease_owner) ||
	    sqlite3_bind_int64(st, 6, s->lease_expires) ||
	    bind_text(st, 7, s->request_id) || bind_text(st, 8, s->error_code) ||
	    bind_text(st, 9, s->message) || sqlite3_bind_int64(st, 10, s->updated_at) ||
	    sqlite3_bind_int64(st, 11, s->started_at) ||
	    sqlite3_bind_int64(st, 12, s->finished_at))
		r = db_fail(c, sqlite3_errcode(c->db), "step update", e);
	else
		r = update_one(c, st, "step update", "step", e);
	done(st);
	return r;
}

static int
sq_step_renew(struct store_conn *c, const char *owner, int64_t expires,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_STEP_RENEW, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, owner) || sqlite3_bind_int64(st, 2, expires))
		r = db_fail(c, sqlite3_errcode(c->db), "step renew", e);
	else
		r = exec_done(c, st, "step renew", e);
	done(st);
	return r;
}

static int
sq_step_release(struct store_conn *c, const char *owner, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_STEP_RELEASE, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, owner))
		r = db_fail(c, sqlite3_errcode(c->db), "step release", e);
	else
		r = exec_done(c, st, "step release", e);
	done(st);
	return r;
}

static int
sq_step_next_due(struct store_conn *c, int64_t *when, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int64_t w = 0, v;
	int r = QERR_INTERNAL, rc, i;

	*when = 0;
	if ((r = stmt(c, S_STEP_DUE, &st, e)) != 0)
		return r;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = db_fail(c, rc, "step next due", e);
		goto out;
	}
	for (i = 0; i < 2; i++) {
		if (sqlite3_column_type(st, i) == SQLITE_NULL)
			continue;
		v = sqlite3_column_int64(st, i);
		if (w == 0 || v < w)
			w = v;
	}
	*when = w;
	r = 0;
out:
	done(st);
	return r;
}

/* Audit. */

static int
sq_audit_append(struct store_conn *c, struct audit_entry *ent, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	char prev[65];
	int64_t last = 0;
	int r = QERR_INTERNAL, rc;

	memcpy(prev, audit_genesis, sizeof(prev));
	if ((r = stmt(c, S_AUDIT_LAST, &st, e)) != 0)
		return r;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		last = sqlite3_column_int64(st, 0);
		snprintf(prev, sizeof(prev), "%s", col_str(st, 1));
	} else if (rc != SQLITE_DONE) {
		r = db_fail(c, rc, "audit append", e);
		goto out;
	}
	done(st);
	st = NULL;
	ent->seq = last + 1;
	/* Every entry written from now on is of the current format, whoever wrote it. */
	ent->format = AUDIT_FORMAT;
	if ((r = audit_seal(ent, prev, e)) != 0)
		goto out;
	if ((r = stmt(c, S_AUDIT_INSERT, &st, e)) != 0)
		goto out;
	if (sqlite3_bind_int64(st, 1, ent->seq) || sqlite3_bind_int64(st, 2, ent->time) ||
	    bind_text(st, 3, ent->actor) || bind_text(st, 4, ent->event) ||
	    bind_text(st, 5, ent->action_id) || bind_text(st, 6, ent->step_id) ||
	    bind_text(st, 7, ent->identity_id) || bind_text(st, 8, ent->detail) ||
	    bind_text(st, 9, ent->prev_hash) || bind_text(st, 10, ent->hash) ||
	    sqlite3_bind_int(st, 11, ent->format) || bind_text(st, 12, ent->actor_kind) ||
	    bind_text(st, 13, ent->actor_id) || bind_text(st, 14, ent->client))
		r = db_fail(c, sqlite3_errcode(c->db), "audit append", e);
	else
		r = exec_done(c, st, "audit append", e);
out:
	done(st);
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
		r = db_fail(c, sqlite3_errcode(c->db), "audit list", e);
		goto out;
	}
	/* Streamed: the log may be far larger than memory allows to collect. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ent.seq = sqlite3_column_int64(st, 0);
		ent.time = sqlite3_column_int64(st, 1);
		ent.actor = col_dup(st, 2, &bad);
		ent.event = col_dup(st, 3, &bad);
		ent.action_id = col_dup(st, 4, &bad);
		ent.step_id = col_dup(st, 5, &bad);
		ent.identity_id = col_dup(st, 6, &bad);
		ent.detail = col_dup(st, 7, &bad);
		snprintf(ent.prev_hash, sizeof(ent.prev_hash), "%s", col_str(st, 8));
		snprintf(ent.hash, sizeof(ent.hash), "%s", col_str(st, 9));
		/* NULL: a row from before migration 7, of format 1. */
		ent.format = sqlite3_column_type(st, 10) == SQLITE_NULL ? 1 :
		    sqlite3_column_int(st, 10);
		ent.actor_kind = col_dup(st, 11, &bad);
		ent.actor_id = col_dup(st, 12, &bad);
		ent.client = col_dup(st, 13, &bad);
		if (bad) {
			r = nomem(e);
			goto out;
		}
		if ((r = cb(&ent, arg)) != 0)
			goto out;
		audit_entry_clear(&ent);
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(c, rc, "audit list", e);
		goto out;
	}
	r = 0;
out:
	audit_entry_clear(&ent);
	done(st);
	return r;
}

static int
sq_audit_last_seq(struct store_conn *c, int64_t *seq, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	*seq = 0;
	if ((r = stmt(c, S_AUDIT_LAST, &st, e)) != 0)
		return r;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*seq = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		r = db_fail(c, rc, "audit last", e);
	done(st);
	return r;
}

/* SIEM delivery cursors. */

static int
sq_siem_cursor_get(struct store_conn *c, const char *name, int64_t *seq, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	*seq = 0;
	if ((r = stmt(c, S_SIEM_GET, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, name))
		r = db_fail(c, sqlite3_errcode(c->db), "siem cursor", e);
	else if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*seq = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		r = db_fail(c, rc, "siem cursor", e);
	done(st);
	return r;
}

static int
sq_siem_cursor_put(struct store_conn *c, const char *name, int64_t seq, int64_t at,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt(c, S_SIEM_PUT, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, name) || sqlite3_bind_int64(st, 2, seq) ||
	    sqlite3_bind_int64(st, 3, at))
		r = db_fail(c, sqlite3_errcode(c->db), "siem cursor", e);
	else
		r = exec_done(c, st, "siem cursor", e);
	done(st);
	return r;
}

/*
 * Alerts, the entities they name, and disruption decisions. Their statements are
 * kept in alert_stmt[] by the numbers below, like the engine's in stmt[].
 */

#define ALERT_COLS "id, source, external_id, time, title, category, severity, " \
	"confidence, received_at, received_us"
#define DEC_COLS "id, alert_id, identity_id, rule, outcome, detail, created_at"
#define ACCOUNT_MATCH_MAX 16

enum {
	AS_ALERT_INSERT,
	AS_ENTITY_INSERT,
	AS_ALERT_GET,
	AS_ALERT_FIND,
	AS_ENTITIES,
	AS_ALERT_LIST,
	AS_ACC_UPN,
	AS_ACC_SID,
	AS_ACC_EXT,
	AS_DEC_INSERT,
	AS_DEC_BY_ALERT,
	AS_DEC_BY_IDN,
	AS_DEC_COUNT,
	AS_COUNT
};

_Static_assert(AS_COUNT <= ALERT_STMT_MAX, "alert_stmt[] is too small");

static const char *const alert_sql[AS_COUNT] = {
	[AS_ALERT_INSERT] = "INSERT INTO alerts (" ALERT_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[AS_ENTITY_INSERT] = "INSERT INTO alert_entities (alert_id, seq, kind, id_type,"
	    " value, identity_id, account_id, resolution)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[AS_ALERT_GET] = "SELECT " ALERT_COLS " FROM alerts WHERE id = ?1",
	[AS_ALERT_FIND] = "SELECT " ALERT_COLS " FROM alerts"
	    " WHERE source = ?1 AND external_id = ?2",
	[AS_ENTITIES] = "SELECT kind, id_type, value, identity_id, account_id, resolution"
	    " FROM alert_entities WHERE alert_id = ?1 ORDER BY seq",
	[AS_ALERT_LIST] = "SELECT " ALERT_COLS " FROM alerts"
	    " WHERE (?1 IS NULL OR id < ?1) AND (?3 IS NULL OR source = ?3)"
	    " ORDER BY id DESC LIMIT ?2",
	/* ASCII case folding, as UPNs are compared by every directory that has them. */
	[AS_ACC_UPN] = "SELECT " ACC_COLS_X " FROM accounts WHERE lower(upn) = lower(?1)"
	    " ORDER BY id LIMIT 16",
	[AS_ACC_SID] = "SELECT " ACC_COLS_X " FROM accounts WHERE sid = ?1"
	    " ORDER BY id LIMIT 16",
	[AS_ACC_EXT] = "SELECT " ACC_COLS_X " FROM accounts"
	    " WHERE external_id = ?1 AND kind = ?2 ORDER BY id LIMIT 16",
	[AS_DEC_INSERT] = "INSERT INTO disruption_decisions (" DEC_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[AS_DEC_BY_ALERT] = "SELECT " DEC_COLS " FROM disruption_decisions"
	    " WHERE alert_id = ?1 ORDER BY id LIMIT 1000",
	[AS_DEC_BY_IDN] = "SELECT " DEC_COLS " FROM disruption_decisions"
	    " WHERE identity_id = ?1 ORDER BY id DESC LIMIT 1000",
	[AS_DEC_COUNT] = "SELECT count(*) FROM disruption_decisions"
	    " WHERE outcome = ?1 AND created_at >= ?2",
};

static int
astmt(struct store_conn *c, int id, sqlite3_stmt **out, struct qerr *e)
{
	return prepare(c, &c->alert_stmt[id], alert_sql[id], out, e);
}

static int
insert_entity(struct store_conn *c, sqlite3_stmt *st, const char *alert_id, size_t seq,
    const struct alert_entity *en, struct qerr *e)
{
	int r;

	if (bind_text(st, 1, alert_id) || sqlite3_bind_int64(st, 2, (sqlite3_int64)seq) ||
	    bind_text(st, 3, en->kind) || bind_text(st, 4, en->id_type) ||
	    bind_text(st, 5, en->value) || bind_text(st, 6, en->identity_id) ||
	    bind_text(st, 7, en->account_id) || bind_text(st, 8, en->resolution))
		r = db_fail(c, sqlite3_errcode(c->db), "alert entity insert", e);
	else
		r = exec_done(c, st, "alert entity insert", e);
	sqlite3_reset(st);
	return r;
}

static int
sq_alert_insert(struct store_conn *c, const struct alert *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int r;

	if ((r = astmt(c, AS_ALERT_INSERT, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, a->id) || bind_text(st, 2, a->source) ||
	    bind_text(st, 3, a->external_id) || sqlite3_bind_int64(st, 4, a->time) ||
	    bind_text(st, 5, a->title) || bind_text(st, 6, a->category) ||
	    bind_text(st, 7, alert_severity_name(a->severity)) ||
	    sqlite3_bind_int(st, 8, a->confidence) ||
	    sqlite3_bind_int64(st, 9, a->received_at) ||
	    sqlite3_bind_int64(st, 10, a->received_us))
		r = db_fail(c, sqlite3_errcode(c->db), "alert insert", e);
	else
		r = exec_done(c, st, "alert insert", e);
	done(st);
	if (r != 0 || (r = astmt(c, AS_ENTITY_INSERT, &st, e)) != 0)
		return r;
	for (i = 0; i < a->nentities && r == 0; i++)
		r = insert_entity(c, st, a->id, i, &a->entities[i], e);
	done(st);
	return r;
}

static int
read_alert(sqlite3_stmt *st, struct alert *a, struct qerr *e)
{
	int bad = 0;

	memset(a, 0, sizeof(*a));
	a->id = col_dup(st, 0, &bad);
	a->source = col_dup(st, 1, &bad);
	a->external_id = col_dup(st, 2, &bad);
	a->time = sqlite3_column_int64(st, 3);
	a->title = col_dup(st, 4, &bad);
	a->category = col_dup(st, 5, &bad);
	a->confidence = sqlite3_column_int(st, 7);
	a->received_at = sqlite3_column_int64(st, 8);
	a->received_us = sqlite3_column_int64(st, 9);
	if (bad) {
		alert_clear(a);
		return nomem(e);
	}
	if (alert_severity_parse(col_str(st, 6), &a->severity) != 0) {
		qerr_set(e, QERR_STORE, NULL, "alert %s: unknown severity \"%s\"", a->id,
		    col_str(st, 6));
		alert_clear(a);
		return QERR_STORE;
	}
	return 0;
}

static int
load_entities(struct store_conn *c, struct alert *a, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct alert_entity *grown, *en;
	size_t cap = 0;
	int r = 0, rc, bad = 0;

	if ((r = astmt(c, AS_ENTITIES, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, a->id)) {
		r = db_fail(c, sqlite3_errcode(c->db), "alert entities", e);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (a->nentities == cap) {
			cap = cap ? cap * 2 : 8;
			if ((grown = realloc(a->entities, cap * sizeof(*grown))) == NULL) {
				r = nomem(e);
				goto out;
			}
			a->entities = grown;
		}
		en = &a->entities[a->nentities++];
		en->kind = col_dup(st, 0, &bad);
		en->id_type = col_dup(st, 1, &bad);
		en->value = col_dup(st, 2, &bad);
		en->identity_id = col_dup(st, 3, &bad);
		en->account_id = col_dup(st, 4, &bad);
		en->resolution = col_dup(st, 5, &bad);
		if (bad) {
			r = nomem(e);
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = db_fail(c, rc, "alert entities", e);
out:
	done(st);
	return r;
}

/* One alert by a statement bound to (p1, p2), with its entities. */
static int
alert_one(struct store_conn *c, int which, const char *p1, const char *p2,
    struct alert *out, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = astmt(c, which, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, p1) || (p2 != NULL && bind_text(st, 2, p2))) {
		r = db_fail(c, sqlite3_errcode(c->db), "alert get", e);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? qerr_set(e, QERR_NOT_FOUND, "alert", "no such alert") :
		    db_fail(c, rc, "alert get", e);
		goto out;
	}
	if ((r = read_alert(st, out, e)) != 0)
		goto out;
	done(st);
	st = NULL;
	if ((r = load_entities(c, out, e)) != 0)
		alert_clear(out);
out:
	done(st);
	return r;
}

static int
sq_alert_get(struct store_conn *c, const char *id, struct alert *out, struct qerr *e)
{
	return alert_one(c, AS_ALERT_GET, id, NULL, out, e);
}

static int
sq_alert_find(struct store_conn *c, const char *source, const char *external_id,
    struct alert *out, struct qerr *e)
{
	return alert_one(c, AS_ALERT_FIND, source, external_id, out, e);
}

static int
sq_alert_list(struct store_conn *c, const struct alert_filter *f, store_alert_cb cb,
    void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct alert *rows;
	size_t n = 0, i;
	int r = 0, rc = SQLITE_DONE;

	if (f->limit < 1 || f->limit > LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    LIST_MAX);
	if ((rows = calloc((size_t)f->limit, sizeof(*rows))) == NULL)
		return nomem(e);
	if ((r = astmt(c, AS_ALERT_LIST, &st, e)) != 0)
		goto out;
	if (bind_text(st, 1, f->before_id) || sqlite3_bind_int(st, 2, f->limit) ||
	    bind_text(st, 3, f->source)) {
		r = db_fail(c, sqlite3_errcode(c->db), "alert list", e);
		goto out;
	}
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = read_alert(st, &rows[n], e)) == 0)
			n++;
	if (r == 0 && rc != SQLITE_DONE)
		r = db_fail(c, rc, "alert list", e);
	done(st);
	st = NULL;
	for (i = 0; i < n && r == 0; i++)
		r = cb(&rows[i], arg);
out:
	done(st);
	for (i = 0; i < n; i++)
		alert_clear(&rows[i]);
	free(rows);
	return r;
}

/* Accounts an alert's account entity names: by UPN or SID (any system that has
 * them), or by the object id an account of one kind has there. */
static int
sq_account_find(struct store_conn *c, enum kind_match match, const char *kind,
    const char *value, store_account_cb cb, void *arg, struct qerr *e)
{
	struct account rows[ACCOUNT_MATCH_MAX];
	sqlite3_stmt *st = NULL;
	size_t n = 0, i;
	int r = 0, rc = SQLITE_DONE, which;

	switch (match) {
	case KIND_MATCH_UPN:
		which = AS_ACC_UPN;
		break;
	case KIND_MATCH_SID:
		which = AS_ACC_SID;
		break;
	case KIND_MATCH_EXTERNAL_ID:
		if (kind == NULL)
			return qerr_set(e, QERR_INVALID, "kind", "an object id needs its kind");
		which = AS_ACC_EXT;
		break;
	default:
		return qerr_set(e, QERR_INVALID, "id_type", "unknown account id type");
	}
	if ((r = astmt(c, which, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, value) ||
	    (which == AS_ACC_EXT && bind_text(st, 2, kind))) {
		r = db_fail(c, sqlite3_errcode(c->db), "account find", e);
		goto out;
	}
	while (r == 0 && n < ACCOUNT_MATCH_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = read_account(st, &rows[n], e)) == 0)
			n++;
	if (r == 0 && n < ACCOUNT_MATCH_MAX && rc != SQLITE_DONE)
		r = db_fail(c, rc, "account find", e);
	done(st);
	st = NULL;
	for (i = 0; i < n && r == 0; i++)
		r = cb(&rows[i], arg);
out:
	done(st);
	for (i = 0; i < n; i++)
		account_clear(&rows[i]);
	return r;
}

static int
sq_decision_insert(struct store_conn *c, const struct alert_decision *d, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = astmt(c, AS_DEC_INSERT, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, d->id) || bind_text(st, 2, d->alert_id) ||
	    bind_text(st, 3, d->identity_id) || bind_text(st, 4, d->rule) ||
	    bind_text(st, 5, d->outcome) || bind_text(st, 6, d->detail) ||
	    sqlite3_bind_int64(st, 7, d->created_at))
		r = db_fail(c, sqlite3_errcode(c->db), "decision insert", e);
	else
		r = exec_done(c, st, "decision insert", e);
	done(st);
	return r;
}

static int
read_decision(sqlite3_stmt *st, struct alert_decision *d, struct qerr *e)
{
	int bad = 0;

	memset(d, 0, sizeof(*d));
	d->id = col_dup(st, 0, &bad);
	d->alert_id = col_dup(st, 1, &bad);
	d->identity_id = col_dup(st, 2, &bad);
	d->rule = col_dup(st, 3, &bad);
	d->outcome = col_dup(st, 4, &bad);
	d->detail = col_dup(st, 5, &bad);
	d->created_at = sqlite3_column_int64(st, 6);
	if (bad) {
		alert_decision_clear(d);
		return nomem(e);
	}
	return 0;
}

/* An alert's decisions oldest first, or an identity's newest first (at most 1000). */
static int
sq_decision_list(struct store_conn *c, const char *alert_id, const char *identity_id,
    store_decision_cb cb, void *arg, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	struct alert_decision *rows;
	size_t n = 0, i;
	int r = 0, rc = SQLITE_DONE;

	if ((alert_id == NULL) == (identity_id == NULL))
		return qerr_set(e, QERR_INVALID, NULL, "decision list: one filter");
	if ((rows = calloc(LIST_MAX, sizeof(*rows))) == NULL)
		return nomem(e);
	if ((r = astmt(c, alert_id ? AS_DEC_BY_ALERT : AS_DEC_BY_IDN, &st, e)) != 0)
		goto out;
	if (bind_text(st, 1, alert_id ? alert_id : identity_id)) {
		r = db_fail(c, sqlite3_errcode(c->db), "decision list", e);
		goto out;
	}
	while (r == 0 && n < LIST_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = read_decision(st, &rows[n], e)) == 0)
			n++;
	if (r == 0 && n < LIST_MAX && rc != SQLITE_DONE)
		r = db_fail(c, rc, "decision list", e);
	done(st);
	st = NULL;
	for (i = 0; i < n && r == 0; i++)
		r = cb(&rows[i], arg);
out:
	done(st);
	for (i = 0; i < n; i++)
		alert_decision_clear(&rows[i]);
	free(rows);
	return r;
}

static int
sq_decision_count(struct store_conn *c, const char *outcome, int64_t since, long *n,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	*n = 0;
	if ((r = astmt(c, AS_DEC_COUNT, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, outcome) || sqlite3_bind_int64(st, 2, since))
		r = db_fail(c, sqlite3_errcode(c->db), "decision count", e);
	else if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		r = db_fail(c, rc, "decision count", e);
	else
		*n = (long)sqlite3_column_int64(st, 0);
	done(st);
	return r;
}

/*
 * Inventory sync and correlation. Statements in sync_stmt[] by the numbers below.
 * A sync writes every account it reads, so each statement here runs once per account
 * of a directory: they are prepared once per connection and use the indexes of the
 * migration that added them.
 */

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
	return prepare(c, &c->sync_stmt[id], sync_sql[id], out, e);
}

static bool
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Whether what was read differs from what is stored; an unknown state or risk
 * (NULL) never does. */
static bool
account_differs(const struct account *a, const struct account *cur)
{
	return !same_str(a->kind, cur->kind) || !same_str(a->sid, cur->sid) ||
	    !same_str(a->dn, cur->dn) || !same_str(a->username, cur->username) ||
	    !same_str(a->upn, cur->upn) || !same_str(a->display_name, cur->display_name) ||
	    !same_str(a->email, cur->email) || a->synced != cur->synced ||
	    (a->state != NULL && !same_str(a->state, cur->state)) ||
	    (a->risk != NULL && !same_str(a->risk, cur->risk));
}

/* Fills *out with the row of (system, external_id); QERR_NOT_FOUND when none. */
static int
sync_find(struct store_conn *c, const char *system, const char *external_id,
    struct account *out, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = sstmt(c, SY_FIND, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, system) || bind_text(st, 2, external_id))
		r = db_fail(c, sqlite3_errcode(c->db), "account sync", e);
	else if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		r = read_account(st, out, e);
	else
		r = rc == SQLITE_DONE ? QERR_NOT_FOUND : db_fail(c, rc, "account sync", e);
	done(st);
	return r;
}

static int
sync_insert(struct store_conn *c, const struct account *a, int64_t seen_run,
    struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, SY_INSERT, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, a->id) || bind_text(st, 2, a->system) ||
	    bind_text(st, 3, a->kind) || bind_text(st, 4, a->external_id) ||
	    bind_text(st, 5, a->sid) || bind_text(st, 6, a->dn) ||
	    bind_text(st, 7, a->username) || bind_text(st, 8, a->upn) ||
	    bind_text(st, 9, a->display_name) || bind_text(st, 10, a->state) ||
	    sqlite3_bind_int64(st, 11, a->state_read_at) ||
	    sqlite3_bind_int64(st, 12, a->created_at) || bind_text(st, 13, a->email) ||
	    sqlite3_bind_int(st, 14, a->synced) || bind_text(st, 15, a->risk) ||
	    sqlite3_bind_int64(st, 16, seen_run))
		r = db_fail(c, sqlite3_errcode(c->db), "account sync", e);
	else
		r = exec_done(c, st, "account sync", e);
	done(st);
	return r;
}

static int
sync_update(struct store_conn *c, const char *id, const struct account *a,
    int64_t seen_run, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, SY_UPDATE, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, id) || bind_text(st, 2, a->kind) || bind_text(st, 3, a->sid) ||
	    bind_text(st, 4, a->dn) || bind_text(st, 5, a->username) ||
	    bind_text(st, 6, a->upn) || bind_text(st, 7, a->display_name) ||
	    bind_text(st, 8, a->email) || sqlite3_bind_int(st, 9, a->synced) ||
	    bind_text(st, 10, a->state) || sqlite3_bind_int64(st, 11, a->state_read_at) ||
	    bind_text(st, 12, a->risk) || sqlite3_bind_int64(st, 13, seen_run))
		r = db_fail(c, sqlite3_errcode(c->db), "account sync", e);
	else
		r = exec_done(c, st, "account sync", e);
	done(st);
	return r;
}

static int
sync_sharing(struct store_conn *c, const char *identity_id, long *n, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	*n = 0;
	if ((r = sstmt(c, SY_SHARING, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, identity_id))
		r = db_fail(c, sqlite3_errcode(c->db), "account sync", e);
	else if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		r = db_fail(c, rc, "account sync", e);
	else
		*n = (long)sqlite3_column_int64(st, 0);
	done(st);
	return r;
}

static int
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
		out->changed = account_differs(a, &out->cur);
		r = sync_update(c, out->cur.id, a, seen_run, e);
		account_clear(&out->cur);
		if (r != 0)
			return r;
	}
	if ((r = sync_find(c, a->system, a->external_id, &out->cur, e)) != 0)
		return r;
	if (out->cur.identity_id != NULL)
		return sync_sharing(c, out->cur.identity_id, &out->sharing, e);
	return 0;
}

static int
sq_account_remove(struct store_conn *c, const char *system, const char *external_id,
    int64_t at, bool *changed, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	*changed = false;
	if ((r = sstmt(c, SY_REMOVE, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, system) || bind_text(st, 2, external_id) ||
	    sqlite3_bind_int64(st, 3, at))
		r = db_fail(c, sqlite3_errcode(c->db), "account remove", e);
	else if ((r = exec_done(c, st, "account remove", e)) == 0)
		*changed = sqlite3_changes(c->db) > 0;
	done(st);
	return r;
}

static int
sq_account_sweep(struct store_conn *c, const char *system, int64_t run, int64_t at,
    long *n, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	*n = 0;
	if ((r = sstmt(c, SY_SWEEP, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, system) || sqlite3_bind_int64(st, 2, run) ||
	    sqlite3_bind_int64(st, 3, at))
		r = db_fail(c, sqlite3_errcode(c->db), "account sweep", e);
	else if ((r = exec_done(c, st, "account sweep", e)) == 0)
		*n = sqlite3_changes(c->db);
	done(st);
	return r;
}

static int
sq_account_match(struct store_conn *c, const struct corr_probe *p,
    const struct account *self, struct corr_hits *hits, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if (p->attr >= CORR_ATTR_COUNT)
		return qerr_set(e, QERR_INVALID, "attr", "unknown correlation attribute");
	if ((r = sstmt(c, SY_MATCH_SID + (int)p->attr, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, p->value) || bind_text(st, 2, p->kind) ||
	    bind_text(st, 3, self->id) || bind_text(st, 4, self->identity_id)) {
		r = db_fail(c, sqlite3_errcode(c->db), "account match", e);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		corr_hits_add(hits, col_str(st, 0), self->identity_id);
	r = rc == SQLITE_DONE ? 0 : db_fail(c, rc, "account match", e);
out:
	done(st);
	return r;
}

static int
sq_account_set_link(struct store_conn *c, const char *account_id,
    const struct account_link *l, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, SY_LINK, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, account_id) || bind_text(st, 2, l->identity_id) ||
	    bind_text(st, 3, l->rule) || bind_text(st, 4, l->by) ||
	    sqlite3_bind_int64(st, 5, l->at) || bind_text(st, 6, l->conflict))
		r = db_fail(c, sqlite3_errcode(c->db), "account link", e);
	else
		r = update_one(c, st, "account link", "account", e);
	done(st);
	return r;
}

static int
sq_link_veto(struct store_conn *c, const char *account_id, const char *identity_id,
    const char *by, int64_t at, bool add, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, add ? SY_VETO_ADD : SY_VETO_DEL, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, account_id) || bind_text(st, 2, identity_id) ||
	    (add && (bind_text(st, 3, by) || sqlite3_bind_int64(st, 4, at))))
		r = db_fail(c, sqlite3_errcode(c->db), "link veto", e);
	else
		r = exec_done(c, st, "link veto", e);
	done(st);
	return r;
}

static int
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
	if (bind_text(st, 1, after_id != NULL ? after_id : "") ||
	    sqlite3_bind_int(st, 2, limit)) {
		r = db_fail(c, sqlite3_errcode(c->db), "conflict list", e);
		goto out;
	}
	/* The callback only renders: it never re-enters the store. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = read_account(st, &a, e)) != 0)
			goto out;
		if ((r = cb(&a, col_str(st, 19), arg)) != 0)
			goto out;
		account_clear(&a);
	}
	r = rc == SQLITE_DONE ? 0 : db_fail(c, rc, "conflict list", e);
out:
	account_clear(&a);
	done(st);
	return r;
}

static int
sq_sync_state_get(struct store_conn *c, const char *system, char **cursor,
    int64_t *full_run, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r, rc, bad = 0;

	*cursor = NULL;
	*full_run = 0;
	if ((r = sstmt(c, SY_STATE_GET, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, system))
		r = db_fail(c, sqlite3_errcode(c->db), "sync state", e);
	else if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*cursor = col_dup(st, 0, &bad);
		*full_run = sqlite3_column_int64(st, 1);
		r = bad ? nomem(e) : 0;
	} else
		r = rc == SQLITE_DONE ? 0 : db_fail(c, rc, "sync state", e);
	done(st);
	return r;
}

static int
sq_sync_state_put(struct store_conn *c, const char *system, const char *cursor,
    int64_t full_run, int64_t at, struct qerr *e)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = sstmt(c, SY_STATE_PUT, &st, e)) != 0)
		return r;
	if (bind_text(st, 1, system) || bind_text(st, 2, cursor) ||
	    sqlite3_bind_int64(st, 3, full_run) || sqlite3_bind_int64(st, 4, at))
		r = db_fail(c, sqlite3_errcode(c->db), "sync state", e);
	else
		r = exec_done(c, st, "sync state", e);
	done(st);
	return r;
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
	.identity_insert = sq_identity_insert,
	.identity_update = sq_identity_update,
	.identity_get = sq_identity_get,
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
