/*
 * The PostgreSQL backend (libpq): one database shared by every quell node, so that
 * many nodes claim steps from one queue and append to one audit chain.
 *
 * A write transaction takes a transaction-level advisory lock (PG_WRITE_LOCK) at its
 * start: writers are serialized by the database, across nodes, exactly as SQLite's
 * BEGIN IMMEDIATE serializes them, so read-then-write inside one stays safe (the
 * audit chain's previous hash read and the new entry written are one step). Read
 * transactions are REPEATABLE READ snapshots and take no lock. A connection the
 * server dropped is connected again at the next begin; errors of a lost connection,
 * a lock wait past lock_timeout or a serialization failure are QERR_BUSY, which
 * callers retry as they do SQLite's busy.
 *
 * The schema mirrors SQLite's, migration for migration, with the same version
 * numbers; migrations run under a session advisory lock (PG_MIGRATE_LOCK), so nodes
 * starting together apply each exactly once. Advanced hunting reads views of a schema
 * of its own, "hunting" (postgres_hunt.c), so a database holds one quell store.
 *
 * This file holds the connection, migrations, transactions, tokens, identities,
 * accounts and the audit log; postgres_actions.c, postgres_alerts.c and
 * postgres_sync.c the rest (postgres_int.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit.h"
#include "core/clock.h"
#include "postgres_int.h"
#include "shared.h"
#include "strjson.h"

/* Advisory lock keys: "quel" + 1 for writers, + 2 for migrations. */
#define PG_WRITE_LOCK	"1903522113"
#define PG_MIGRATE_LOCK	"1903522114"
/* How long a writer waits for the write lock (or any row lock) before QERR_BUSY,
 * as long as SQLite's busy timeout. */
#define PG_LOCK_TIMEOUT	"10s"
#define PG_CHANNEL	"quell_work"
#define AUDIT_PAGE	1000

/*
 * Schema migrations, applied in order; migrations[i] takes the schema from version i
 * to i + 1, as sqlite.c's of the same number. Only ever append.
 */
static const char *const migrations[] = {
	"CREATE TABLE tokens ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT,"
	"  role TEXT,"
	"  hash BYTEA NOT NULL CHECK (octet_length(hash) = 32),"
	"  created_at BIGINT NOT NULL);"
	"CREATE TABLE identities ("
	"  id TEXT PRIMARY KEY,"
	"  display_name TEXT,"
	"  tags TEXT NOT NULL DEFAULT '[]',"
	"  created_at BIGINT NOT NULL);"
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
	"  state_read_at BIGINT NOT NULL DEFAULT 0,"
	"  created_at BIGINT NOT NULL,"
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
	"  cancel_requested BOOLEAN NOT NULL DEFAULT false,"
	"  created_at BIGINT NOT NULL,"
	"  updated_at BIGINT NOT NULL,"
	"  finished_at BIGINT NOT NULL DEFAULT 0);"
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
	"  not_before BIGINT NOT NULL DEFAULT 0,"
	"  lease_owner TEXT,"
	"  lease_expires BIGINT NOT NULL DEFAULT 0,"
	"  request_id TEXT,"
	"  error_code TEXT,"
	"  message TEXT,"
	"  created_at BIGINT NOT NULL,"
	"  updated_at BIGINT NOT NULL,"
	"  started_at BIGINT NOT NULL DEFAULT 0,"
	"  finished_at BIGINT NOT NULL DEFAULT 0);"
	"CREATE INDEX steps_action ON steps (action_id, id);"
	"CREATE INDEX steps_claimable ON steps (created_at, id)"
	"  WHERE status IN ('queued', 'retry_wait', 'running');"
	"CREATE INDEX steps_wait ON steps (status, not_before);"
	"CREATE INDEX steps_lease ON steps (status, lease_expires);"
	"CREATE TABLE audit ("
	"  seq BIGINT PRIMARY KEY,"
	"  time BIGINT NOT NULL,"
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
	"CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS"
	"  $$BEGIN RAISE EXCEPTION 'the audit log is append-only'; END$$;"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit"
	"  FOR EACH ROW EXECUTE FUNCTION audit_append_only();"
	"CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
	"  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();",
	"ALTER TABLE accounts ADD COLUMN email TEXT;"
	"ALTER TABLE accounts ADD COLUMN synced BOOLEAN NOT NULL DEFAULT false;",
	"ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT '[]';"
	"ALTER TABLE actions ADD COLUMN requested_by_id TEXT;"
	"ALTER TABLE actions ADD COLUMN undo_of TEXT;"
	"ALTER TABLE actions ADD COLUMN approval_rule TEXT;"
	"ALTER TABLE actions ADD COLUMN decided_by TEXT;"
	"ALTER TABLE actions ADD COLUMN approval_expires BIGINT NOT NULL DEFAULT 0;"
	"CREATE INDEX actions_undo ON actions (undo_of);",
	"ALTER TABLE actions ADD COLUMN alert_id TEXT;"
	"CREATE INDEX actions_alert ON actions (alert_id);"
	"CREATE TABLE alerts ("
	"  id TEXT PRIMARY KEY,"
	"  source TEXT NOT NULL,"
	"  external_id TEXT NOT NULL,"
	"  time BIGINT NOT NULL,"
	"  title TEXT NOT NULL,"
	"  category TEXT NOT NULL,"
	"  severity TEXT NOT NULL,"
	"  confidence INTEGER NOT NULL,"
	"  received_at BIGINT NOT NULL,"
	"  received_us BIGINT NOT NULL,"
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
	"  created_at BIGINT NOT NULL);"
	"CREATE INDEX disruption_alert ON disruption_decisions (alert_id, id);"
	"CREATE INDEX disruption_identity ON disruption_decisions (identity_id, id);"
	"CREATE INDEX disruption_outcome ON disruption_decisions (outcome, created_at);"
	"CREATE INDEX alert_resolve_upn ON accounts (lower(upn));"
	"CREATE INDEX alert_resolve_sid ON accounts (sid);"
	"CREATE INDEX alert_resolve_ext ON accounts (external_id);",
	"ALTER TABLE accounts ADD COLUMN risk TEXT;"
	"ALTER TABLE accounts ADD COLUMN link_rule TEXT;"
	"ALTER TABLE accounts ADD COLUMN linked_by TEXT;"
	"ALTER TABLE accounts ADD COLUMN linked_at BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE accounts ADD COLUMN conflict TEXT;"
	"ALTER TABLE accounts ADD COLUMN seen_run BIGINT NOT NULL DEFAULT 0;"
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
	"  at BIGINT NOT NULL,"
	"  PRIMARY KEY (account_id, identity_id));"
	"CREATE TABLE sync_state ("
	"  system TEXT PRIMARY KEY,"
	"  cursor TEXT,"
	"  full_run BIGINT NOT NULL DEFAULT 0,"
	"  updated_at BIGINT NOT NULL);",
	"ALTER TABLE tokens ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE tokens ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE tokens ADD COLUMN revoked_by TEXT;"
	"ALTER TABLE tokens ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;",
	"ALTER TABLE audit ADD COLUMN format INTEGER;"
	"ALTER TABLE audit ADD COLUMN actor_kind TEXT;"
	"ALTER TABLE audit ADD COLUMN actor_id TEXT;"
	"ALTER TABLE audit ADD COLUMN client TEXT;"
	"ALTER TABLE actions ADD COLUMN requested_by_kind TEXT;"
	"ALTER TABLE actions ADD COLUMN decided_by_id TEXT;"
	"ALTER TABLE actions ADD COLUMN decided_by_kind TEXT;",
	"CREATE TABLE siem_cursors ("
	"  name TEXT PRIMARY KEY,"
	"  seq BIGINT NOT NULL,"
	"  updated_at BIGINT NOT NULL);",
	"ALTER TABLE steps ADD COLUMN waits INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE steps ADD COLUMN wait_ms BIGINT NOT NULL DEFAULT 0;",
	"CREATE TABLE nodes ("
	"  node_id TEXT PRIMARY KEY,"
	"  started_at BIGINT NOT NULL,"
	"  last_seen BIGINT NOT NULL);"
	"CREATE TABLE leases ("
	"  name TEXT PRIMARY KEY,"
	"  owner TEXT NOT NULL,"
	"  expires_at BIGINT NOT NULL);",
	"CREATE TABLE ssf_streams ("
	"  id TEXT PRIMARY KEY,"
	"  config TEXT NOT NULL,"
	"  updated_at BIGINT NOT NULL);"
	"CREATE TABLE ssf_outbox ("
	"  seq BIGINT PRIMARY KEY,"
	"  stream_id TEXT NOT NULL,"
	"  jti TEXT NOT NULL,"
	"  set_jwt TEXT NOT NULL,"
	"  created_at BIGINT NOT NULL,"
	"  acked_at BIGINT NOT NULL DEFAULT 0,"
	"  UNIQUE (stream_id, jti));"
	"CREATE INDEX ssf_outbox_pending ON ssf_outbox (stream_id, acked_at, seq);"
	"CREATE TABLE ssf_jti ("
	"  iss TEXT NOT NULL,"
	"  jti TEXT NOT NULL,"
	"  seen_at BIGINT NOT NULL,"
	"  PRIMARY KEY (iss, jti));",
	"CREATE TABLE rate_buckets ("
	"  system TEXT PRIMARY KEY,"
	"  level BIGINT NOT NULL,"
	"  updated_at BIGINT NOT NULL);"
	"CREATE TABLE console_sessions ("
	"  id_hash TEXT PRIMARY KEY,"
	"  principal_hash TEXT NOT NULL,"
	"  token_id TEXT,"
	"  token_hash TEXT,"
	"  claims TEXT,"
	"  created_us BIGINT NOT NULL,"
	"  used_us BIGINT NOT NULL);"
	"CREATE INDEX console_sessions_token ON console_sessions (token_id);"
	"CREATE INDEX console_sessions_principal ON console_sessions"
	"  (principal_hash, used_us);"
	"CREATE TABLE console_logins ("
	"  cookie_hash TEXT PRIMARY KEY,"
	"  redirect_uri TEXT NOT NULL,"
	"  created_us BIGINT NOT NULL);"
	/* Advanced hunting (postgres_hunt.c): the documented views (docs/hunting.md),
	 * in a schema of their own that a hunt's search_path holds alone; times as
	 * SQLite's strftime writes them, RFC 3339 UTC text. */
	"CREATE SCHEMA hunting;"
	"CREATE VIEW hunting.identityinfo AS SELECT i.id AS identity_id,"
	" i.display_name, i.tags, to_char(to_timestamp(i.created_at / 1000.0) AT"
	" TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at,"
	" (SELECT count(*) FROM accounts a WHERE a.identity_id = i.id) AS"
	" accounts FROM identities i;"
	"CREATE VIEW hunting.identityaccounts AS SELECT a.id AS account_id,"
	" a.identity_id, a.system, a.kind, a.external_id, a.sid, a.dn,"
	" a.username, a.upn, a.display_name, a.email, a.state, a.synced, a.risk,"
	" a.link_rule, a.linked_by, CASE WHEN a.linked_at > 0 THEN"
	" to_char(to_timestamp(a.linked_at / 1000.0) AT TIME ZONE 'UTC',"
	" 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END AS linked_at, CASE WHEN"
	" a.state_read_at > 0 THEN to_char(to_timestamp(a.state_read_at /"
	" 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END"
	" AS state_read_at FROM accounts a;"
	"CREATE VIEW hunting.alerts AS SELECT l.id AS alert_id, l.source,"
	" l.external_id AS source_alert_id, to_char(to_timestamp(l.time /"
	" 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS"
	" time, l.title, l.category, l.severity, l.confidence,"
	" to_char(to_timestamp(l.received_at / 1000.0) AT TIME ZONE 'UTC',"
	" 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS received_at FROM alerts l;"
	"CREATE VIEW hunting.alertentities AS SELECT n.alert_id, n.seq, n.kind"
	" AS entity_type, n.id_type, n.value, n.identity_id, n.account_id,"
	" n.resolution FROM alert_entities n;"
	"CREATE VIEW hunting.actions AS SELECT t.id AS action_id, t.type,"
	" t.status, t.identity_id, t.account_id, t.requested_by, t.source,"
	" t.alert_id, t.reason, t.message, t.undo_of, t.approval_rule,"
	" t.decided_by, to_char(to_timestamp(t.created_at / 1000.0) AT TIME ZONE"
	" 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at, CASE WHEN"
	" t.finished_at > 0 THEN to_char(to_timestamp(t.finished_at / 1000.0) AT"
	" TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END AS"
	" finished_at FROM actions t;"
	"CREATE VIEW hunting.actionsteps AS SELECT s.id AS step_id,"
	" s.action_id, t.identity_id, s.account_id, s.system, s.account_name,"
	" s.type, s.status, s.attempts, s.request_id, s.error_code, s.message,"
	" CASE WHEN s.started_at > 0 THEN to_char(to_timestamp(s.started_at /"
	" 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END"
	" AS started_at, CASE WHEN s.finished_at > 0 THEN"
	" to_char(to_timestamp(s.finished_at / 1000.0) AT TIME ZONE 'UTC',"
	" 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END AS finished_at FROM steps s"
	" JOIN actions t ON t.id = s.action_id;"
	"CREATE VIEW hunting.auditevents AS SELECT u.seq,"
	" to_char(to_timestamp(u.time / 1000.0) AT TIME ZONE 'UTC',"
	" 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS time, u.actor, u.event,"
	" u.action_id, u.step_id, u.identity_id, u.detail, u.actor_kind,"
	" u.actor_id, u.client FROM audit u;",
};

#define NMIGRATIONS	((int)(sizeof(migrations) / sizeof(migrations[0])))

#define TOKEN_COLS "id, name, role, created_at, scope, expires_at, revoked_at, " \
	"revoked_by, last_used_at"
#define AUDIT_COLS "seq, time, actor, event, action_id, step_id, identity_id, " \
	"detail, prev_hash, hash, format, actor_kind, actor_id, client"

static const char sql_token_insert[] =
    "INSERT INTO tokens (id, name, role, hash, created_at, scope, expires_at)"
    " VALUES ($1, $2, $3, $4::bytea, $5, $6, $7)";
static const char sql_token_get[] =
    "SELECT " TOKEN_COLS ", hash FROM tokens WHERE id = $1";
/* The hash stays in the table: nothing that lists tokens can leak it. */
static const char sql_token_list[] =
    "SELECT " TOKEN_COLS " FROM tokens WHERE id > $1 ORDER BY id LIMIT $2";
static const char sql_token_revoke[] =
    "UPDATE tokens SET revoked_at = $2, revoked_by = $3"
    " WHERE id = $1 AND revoked_at = 0";
static const char sql_token_exists[] = "SELECT 1 FROM tokens WHERE id = $1";
/* Conditional, so that nodes and threads racing on one token write once. */
static const char sql_token_touch[] =
    "UPDATE tokens SET last_used_at = $2"
    " WHERE id = $1 AND revoked_at = 0 AND last_used_at <= $2::bigint - $3::bigint";
static const char sql_idn_update[] =
    "UPDATE identities SET display_name = $2, tags = $3 WHERE id = $1";
static const char sql_idn_insert[] =
    "INSERT INTO identities (id, display_name, tags, created_at)"
    " VALUES ($1, $2, $3, $4)";
static const char sql_idn_get[] =
    "SELECT id, display_name, tags, created_at FROM identities WHERE id = $1";
static const char sql_idn_accounts[] =
    "SELECT " PG_ACC_COLS_X " FROM accounts WHERE identity_id = $1 ORDER BY id";
/* ILIKE: case-insensitive as SQLite's LIKE is. */
static const char sql_idn_list[] =
    "SELECT i.id, i.display_name, i.tags, i.created_at FROM identities i"
    " WHERE i.id > $1 AND ($2::text IS NULL"
    "  OR i.display_name ILIKE $2 ESCAPE '\\'"
    "  OR EXISTS (SELECT 1 FROM accounts a WHERE a.identity_id = i.id AND ("
    "   a.username ILIKE $2 ESCAPE '\\' OR a.upn ILIKE $2 ESCAPE '\\'"
    "   OR a.sid ILIKE $2 ESCAPE '\\' OR a.display_name ILIKE $2 ESCAPE '\\')))"
    " ORDER BY i.id LIMIT $3";
/* A re-listed account keeps its id and link; a listing that does not know the
 * account's state leaves the last known state in place. */
static const char sql_acc_upsert[] =
    "INSERT INTO accounts AS t (" PG_ACC_COLS ")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    " ON CONFLICT (system, external_id) DO UPDATE SET"
    "  kind = excluded.kind, sid = excluded.sid, dn = excluded.dn,"
    "  username = excluded.username, upn = excluded.upn,"
    "  display_name = excluded.display_name,"
    "  email = excluded.email, synced = excluded.synced,"
    "  state = coalesce(excluded.state, t.state),"
    "  state_read_at = CASE WHEN excluded.state IS NULL THEN t.state_read_at"
    "   ELSE excluded.state_read_at END"
    " RETURNING id";
static const char sql_acc_get[] = "SELECT " PG_ACC_COLS_X " FROM accounts WHERE id = $1";
static const char sql_acc_link[] = "UPDATE accounts SET identity_id = $2 WHERE id = $1";
static const char sql_acc_state[] =
    "UPDATE accounts SET state = $2, state_read_at = $3 WHERE id = $1";
static const char sql_audit_last[] =
    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
static const char sql_audit_insert[] =
    "INSERT INTO audit (" AUDIT_COLS ")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
static const char sql_audit_list[] =
    "SELECT " AUDIT_COLS " FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2";
static const char sql_siem_get[] = "SELECT seq FROM siem_cursors WHERE name = $1";
static const char sql_siem_put[] =
    "INSERT INTO siem_cursors AS t (name, seq, updated_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (name) DO UPDATE SET seq = greatest(t.seq, excluded.seq),"
    " updated_at = excluded.updated_at";

/* Parameters. */

void
pa_text(struct pg_args *a, const char *s)
{
	if (a->n < PG_ARGS_MAX)
		a->v[a->n++] = s;
}

void
pa_i64(struct pg_args *a, int64_t v)
{
	if (a->n >= PG_ARGS_MAX)
		return;
	snprintf(a->buf[a->n], sizeof(a->buf[0]), "%lld", (long long)v);
	a->v[a->n] = a->buf[a->n];
	a->n++;
}

void
pa_bool(struct pg_args *a, bool b)
{
	pa_text(a, b ? "true" : "false");
}

/* Errors and statements. */

int
pg_nomem(struct qerr *e)
{
	return qerr_set(e, QERR_NOMEM, NULL, "store: out of memory");
}

/* The server's message without its trailing newline. */
static void
trimmed(const char *msg, char *out, size_t n)
{
	size_t len;

	snprintf(out, n, "%s", msg != NULL ? msg : "");
	len = strlen(out);
	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
		out[--len] = '\0';
}

int
pg_fail(struct store_conn *c, const PGresult *res, const char *what, struct qerr *e)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char msg[400];

	trimmed(res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(c->db), msg,
	    sizeof(msg));
	if (PQstatus(c->db) != CONNECTION_OK)
		return qerr_set(e, QERR_BUSY, NULL, "%s: lost the connection to "
		    "PostgreSQL: %s", what, msg);
	if (state == NULL)
		return qerr_set(e, QERR_STORE, NULL, "%s: %s", what, msg);
	if (strncmp(state, "23", 2) == 0)
		return qerr_set(e, QERR_CONFLICT, NULL, "%s: %s", what, msg);
	/* Serialization failure, deadlock, lock timeout, statement timeout, admin
	 * shutdown and the other "try again" conditions. */
	if (strncmp(state, "40", 2) == 0 || strcmp(state, "55P03") == 0 ||
	    strcmp(state, "57014") == 0 || strncmp(state, "57P", 3) == 0 ||
	    strncmp(state, "08", 2) == 0)
		return qerr_set(e, QERR_BUSY, NULL, "%s: database busy: %s", what, msg);
	if (strcmp(state, "53200") == 0)
		return qerr_set(e, QERR_NOMEM, NULL, "%s: out of memory", what);
	return qerr_set(e, QERR_STORE, NULL, "%s: %s", what, msg);
}

int
pg_query(struct store_conn *c, const char *sql, const struct pg_args *a,
    const char *what, PGresult **out, struct qerr *e)
{
	PGresult *res;
	ExecStatusType s;

	*out = NULL;
	/* Without parameters, sql may be several statements (migrations, begin). */
	if (a == NULL)
		res = PQexec(c->db, sql);
	else
		res = PQexecParams(c->db, sql, a->n, NULL, a->v, NULL, NULL, 0);
	s = PQresultStatus(res);
	if (res == NULL || (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK)) {
		int r = pg_fail(c, res, what, e);

		PQclear(res);
		return r;
	}
	*out = res;
	return 0;
}

/* A statement that ran without an error, its result discarded. */
static int
pg_control(struct store_conn *c, const char *sql, const char *what, struct qerr *e)
{
	PGresult *res = NULL;
	int r;

	if ((r = pg_query(c, sql, NULL, what, &res, e)) == 0)
		PQclear(res);
	return r;
}

/*
 * In a transaction, a statement that fails undoes only itself, as in SQLite (a
 * caller may go on after a conflict): it runs inside a savepoint, rolled back to on
 * failure. PostgreSQL would otherwise refuse everything until the transaction ends.
 */
int
pg_write(struct store_conn *c, const char *sql, const struct pg_args *a,
    const char *what, PGresult **out, struct qerr *e)
{
	int r;

	*out = NULL;
	if (!c->intx)
		return pg_query(c, sql, a, what, out, e);
	if ((r = pg_control(c, "SAVEPOINT quell_stmt", what, e)) != 0)
		return r;
	if ((r = pg_query(c, sql, a, what, out, e)) != 0) {
		if (PQstatus(c->db) == CONNECTION_OK)
			pg_control(c, "ROLLBACK TO SAVEPOINT quell_stmt;"
			    " RELEASE SAVEPOINT quell_stmt", what, NULL);
		return r;
	}
	if ((r = pg_control(c, "RELEASE SAVEPOINT quell_stmt", what, e)) != 0) {
		PQclear(*out);
		*out = NULL;
	}
	return r;
}

int
pg_run(struct store_conn *c, const char *sql, const struct pg_args *a,
    const char *what, long *changed, struct qerr *e)
{
	PGresult *res = NULL;
	int r;

	if (changed != NULL)
		*changed = 0;
	if ((r = pg_write(c, sql, a, what, &res, e)) != 0)
		return r;
	if (changed != NULL)
		*changed = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

int
pg_run_one(struct store_conn *c, const char *sql, const struct pg_args *a,
    const char *what, const char *field, struct qerr *e)
{
	long n = 0;
	int r;

	if ((r = pg_run(c, sql, a, what, &n, e)) == 0 && n == 0)
		r = qerr_set(e, QERR_NOT_FOUND, field, "%s: no such %s", what, field);
	return r;
}

char *
pg_dup(const PGresult *res, int row, int col, int *bad)
{
	char *d;

	if (PQgetisnull(res, row, col))
		return NULL;
	if ((d = strdup(PQgetvalue(res, row, col))) == NULL)
		*bad = 1;
	return d;
}

const char *
pg_str(const PGresult *res, int row, int col)
{
	return PQgetvalue(res, row, col);
}

int64_t
pg_i64(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool
pg_bool(const PGresult *res, int row, int col)
{
	return PQgetvalue(res, row, col)[0] == 't';
}

/* items is a struct pointer of the caller's, read and written through memcpy so
 * that one loop serves every element type. */
int
pg_load_rows(struct store_conn *c, const char *sql, const char *key,
    pg_read_fn read_row, size_t size, void *items, size_t *n, const char *what,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	char *v, *grown;
	int r, i, rows;

	pa_text(&a, key);
	if ((r = pg_query(c, sql, &a, what, &res, e)) != 0)
		return r;
	rows = PQntuples(res);
	memcpy(&v, items, sizeof(v));
	if (rows > 0) {
		if ((grown = realloc(v, (*n + (size_t)rows) * size)) == NULL) {
			r = pg_nomem(e);
			goto out;
		}
		v = grown;
		memcpy(items, &v, sizeof(v));
	}
	for (i = 0; i < rows; i++) {
		if ((r = read_row(res, i, v + *n * size, e)) != 0)
			goto out;
		(*n)++;
	}
	r = 0;
out:
	PQclear(res);
	return r;
}

int
pg_get_one(struct store_conn *c, const char *sql, const struct pg_args *a,
    pg_read_fn read_row, void *out, const char *what, const char *noun,
    struct qerr *e)
{
	PGresult *res = NULL;
	int r;

	if ((r = pg_query(c, sql, a, what, &res, e)) != 0)
		return r;
	if (PQntuples(res) > 0)
		r = read_row(res, 0, out, e);
	else if (noun != NULL)
		r = qerr_set(e, QERR_NOT_FOUND, noun, "no such %s", noun);
	else
		r = QERR_NOT_FOUND;
	PQclear(res);
	return r;
}

int
pg_notify_work(struct store_conn *c, struct qerr *e)
{
	return pg_control(c, "NOTIFY " PG_CHANNEL, "notify", e);
}

/* The location. */

/* Appends " key='value'" to *buf (of *len bytes, grown), quoted as libpq reads it. */
static int
append_kv(char **buf, size_t *len, const char *key, const char *val)
{
	size_t need = *len + strlen(key) + 2 * strlen(val) + 6, i;
	char *grown, *p;

	if ((grown = realloc(*buf, need)) == NULL)
		return -1;
	*buf = grown;
	p = grown + *len;
	p += sprintf(p, "%s%s='", *len > 0 ? " " : "", key);
	for (i = 0; val[i] != '\0'; i++) {
		if (val[i] == '\'' || val[i] == '\\')
			*p++ = '\\';
		*p++ = val[i];
	}
	*p++ = '\'';
	*p = '\0';
	*len = (size_t)(p - grown);
	return 0;
}

int
store_pg_location(const char *conninfo, const char *passfile, char **out,
    struct qerr *e)
{
	PQconninfoOption *opts = NULL, *o;
	char *err = NULL, *buf = NULL;
	size_t len = 0;
	int r = QERR_INTERNAL;

	*out = NULL;
	if ((opts = PQconninfoParse(conninfo, &err)) == NULL) {
		if (err == NULL)
			return pg_nomem(e);
		r = qerr_set(e, QERR_CONFIG, "conninfo", "[store] conninfo is not a libpq "
		    "connection string: %s", err);
		goto out;
	}
	/* Written out again as keyword=value, whichever form it came in, so that the
	 * password file can be added to a URI too. */
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "password") == 0) {
			r = qerr_set(e, QERR_CONFIG, "conninfo", "[store] conninfo must not "
			    "hold a password: put it in the file [store] passfile names, or "
			    "in a service file (service=)");
			goto out;
		}
		if (strcmp(o->keyword, "passfile") == 0 && passfile != NULL)
			continue;
		if (append_kv(&buf, &len, o->keyword, o->val) != 0)
			goto nomem;
	}
	if (passfile != NULL && append_kv(&buf, &len, "passfile", passfile) != 0)
		goto nomem;
	if (buf == NULL && (buf = strdup("")) == NULL)
		goto nomem;
	*out = buf;
	buf = NULL;
	r = 0;
	goto out;
nomem:
	r = pg_nomem(e);
out:
	free(buf);
	PQfreemem(err);
	PQconninfoFree(opts);
	return r;
}

/* The connection. */

/* Migration notices ("relation … does not exist, skipping") are not for the log. */
static void
quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* The settings every session runs with; sent again after a reconnect. */
static int
session_setup(struct store_conn *c, struct qerr *e)
{
	PQsetNoticeProcessor(c->db, quiet, NULL);
	return pg_control(c, "SET lock_timeout = '" PG_LOCK_TIMEOUT "';"
	    " SET client_encoding = 'UTF8'", "connect", e);
}

static void
pgs_close(struct store_conn *c)
{
	if (c == NULL)
		return;
	PQfinish(c->db);
	free(c->conninfo);
	free(c);
}

static int
connect_fail(struct store_conn *c, struct qerr *e)
{
	char msg[400];

	trimmed(PQerrorMessage(c->db), msg, sizeof(msg));
	return qerr_set(e, QERR_STORE, "conninfo", "store: cannot connect to PostgreSQL: %s",
	    msg);
}

static int
pgs_open(const char *location, struct store_conn **out, struct qerr *e)
{
	struct store_conn *c = NULL;
	int r = QERR_INTERNAL;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL || (c->conninfo = strdup(location)) == NULL) {
		free(c);
		return pg_nomem(e);
	}
	if ((c->db = PQconnectdb(location)) == NULL) {
		r = pg_nomem(e);
		goto out;
	}
	if (PQstatus(c->db) != CONNECTION_OK) {
		r = connect_fail(c, e);
		goto out;
	}
	if ((r = session_setup(c, e)) != 0)
		goto out;
	*out = c;
	c = NULL;
	r = 0;
out:
	pgs_close(c);
	return r;
}

/* A connection the server dropped (restart, failover) is made again; a server that
 * is not back yet is QERR_BUSY, for the caller to retry. */
static int
ensure_connected(struct store_conn *c, struct qerr *e)
{
	char msg[400];

	if (PQstatus(c->db) == CONNECTION_OK)
		return 0;
	PQreset(c->db);
	if (PQstatus(c->db) != CONNECTION_OK) {
		trimmed(PQerrorMessage(c->db), msg, sizeof(msg));
		return qerr_set(e, QERR_BUSY, NULL, "begin: PostgreSQL is unreachable: %s",
		    msg);
	}
	return session_setup(c, e);
}

static int
pgs_begin(struct store_conn *c, bool write, struct qerr *e)
{
	const char *sql = write ?
	    "BEGIN ISOLATION LEVEL READ COMMITTED;"
	    " SELECT pg_advisory_xact_lock(" PG_WRITE_LOCK ")" :
	    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
	int r, tries;

	/* A connection that died while idle is only found out by its next statement:
	 * one more try on a fresh connection then. */
	for (tries = 0; tries < 2; tries++) {
		if ((r = ensure_connected(c, e)) != 0)
			return r;
		if ((r = pg_control(c, sql, "begin", e)) == 0) {
			c->intx = true;
			return 0;
		}
		if (PQstatus(c->db) == CONNECTION_OK) {
			pg_control(c, "ROLLBACK", "rollback", NULL);
			return r;
		}
	}
	return r;
}

static int
pgs_commit(struct store_conn *c, struct qerr *e)
{
	PGresult *res = NULL;
	int r;

	if ((r = pg_query(c, "COMMIT", NULL, "commit", &res, e)) != 0)
		return r;
	c->intx = false;
	/* COMMIT of a transaction a statement failed in answers ROLLBACK. */
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
		r = qerr_set(e, QERR_STORE, NULL, "commit: the transaction was rolled back");
	PQclear(res);
	return r;
}

static void
pgs_rollback(struct store_conn *c)
{
	if (c->intx && PQstatus(c->db) == CONNECTION_OK)
		pg_control(c, "ROLLBACK", "rollback", NULL);
	c->intx = false;
}

/* Migrations. */

static int
schema_version(struct store_conn *c, int *have, struct qerr *e)
{
	PGresult *res = NULL;
	int r;

	*have = 0;
	if ((r = pg_query(c, "SELECT coalesce(max(version), 0) FROM schema_version", NULL,
	    "migrate", &res, e)) != 0)
		return r;
	*have = (int)pg_i64(res, 0, 0);
	PQclear(res);
	return 0;
}

static int
apply_migrations(struct store_conn *c, struct qerr *e)
{
	struct pg_args a;
	char why[sizeof(e->msg)];
	int r, have, v;

	if ((r = pg_run(c, "CREATE TABLE IF NOT EXISTS schema_version ("
	    "  version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)", NULL, "migrate",
	    NULL, e)) != 0 || (r = schema_version(c, &have, e)) != 0)
		return r;
	if (have > NMIGRATIONS)
		return qerr_set(e, QERR_STORE, NULL,
		    "the database has schema version %d, newer than this quell knows "
		    "(%d): it was written by a newer quell; upgrade quell", have,
		    NMIGRATIONS);
	for (v = have; v < NMIGRATIONS; v++) {
		if ((r = pg_run(c, migrations[v], NULL, "migrate", NULL, e)) != 0) {
			snprintf(why, sizeof(why), "%s", e != NULL ? e->msg : "");
			return qerr_set(e, r, NULL, "schema migration %d failed: %s", v + 1,
			    why);
		}
		a.n = 0;
		pa_i64(&a, v + 1);
		pa_i64(&a, clock_real_ms());
		if ((r = pg_run(c, "INSERT INTO schema_version (version, applied_at)"
		    " VALUES ($1, $2)", &a, "migrate", NULL, e)) != 0)
			return r;
	}
	return 0;
}

/* One node at a time: the others wait on the lock, then find nothing left to do. */
static int
pgs_migrate(struct store_conn *c, struct qerr *e)
{
	int r;

	if ((r = pg_run(c, "SELECT pg_advisory_lock(" PG_MIGRATE_LOCK ")", NULL,
	    "migrate", NULL, e)) != 0)
		return r;
	if ((r = pg_run(c, "BEGIN", NULL, "migrate", NULL, e)) == 0) {
		if ((r = apply_migrations(c, e)) == 0)
			r = pg_run(c, "COMMIT", NULL, "migrate", NULL, e);
		else
			pg_run(c, "ROLLBACK", NULL, "migrate", NULL, NULL);
	}
	pg_run(c, "SELECT pg_advisory_unlock(" PG_MIGRATE_LOCK ")", NULL, "migrate", NULL,
	    NULL);
	return r;
}

/* Work notices: a connection of its own that only listens. */

static int
pgs_wait_work(struct store_conn *c, int timeout_ms, bool *woken, struct qerr *e)
{
	struct pollfd pfd;
	PGnotify *n;
	int r;

	*woken = false;
	if (PQstatus(c->db) != CONNECTION_OK)
		c->listening = false;
	if (!c->listening) {
		if ((r = ensure_connected(c, e)) != 0 ||
		    (r = pg_control(c, "LISTEN " PG_CHANNEL, "listen", e)) != 0)
			return r;
		c->listening = true;
	}
	if (!PQconsumeInput(c->db))
		return pg_fail(c, NULL, "listen", e);
	if ((n = PQnotifies(c->db)) == NULL) {
		pfd.fd = PQsocket(c->db);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
			return qerr_set(e, QERR_IO, NULL, "listen: poll: %s", strerror(errno));
		if (!PQconsumeInput(c->db))
			return pg_fail(c, NULL, "listen", e);
		n = PQnotifies(c->db);
	}
	/* Several notices are one wake-up. */
	while (n != NULL) {
		*woken = true;
		PQfreemem(n);
		n = PQnotifies(c->db);
	}
	return 0;
}

/* Tokens. */

static void
hex_of(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* bytea in its hex output form (\x…) into exactly n bytes; -1 otherwise. */
static int
bytea_of(const char *text, unsigned char *out, size_t n)
{
	size_t i;
	int hi, lo;

	if (strncmp(text, "\\x", 2) != 0 || strlen(text + 2) != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		if ((hi = hex_digit(text[2 + 2 * i])) < 0 ||
		    (lo = hex_digit(text[3 + 2 * i])) < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int
pgs_token_insert(struct store_conn *c, const struct token_info *t,
    const unsigned char hash[32], struct qerr *e)
{
	const struct principal *p = &t->p;
	struct pg_args a = { .n = 0 };
	char hex[2 + 65] = "\\x";
	char *scope = NULL;
	int r;

	if ((r = strjson_dump(p->scope, p->nscope, "scope", "scope", &scope, e)) != 0)
		return r;
	hex_of(hash, 32, hex + 2);
	pa_text(&a, p->id);
	pa_text(&a, p->name);
	pa_text(&a, p->role);
	pa_text(&a, hex);
	pa_i64(&a, p->created_at);
	pa_text(&a, scope);
	pa_i64(&a, t->expires_at);
	r = pg_run(c, sql_token_insert, &a, "token insert", NULL, e);
	free(scope);
	return r;
}

/* A row of TOKEN_COLS into *t (cleared here on failure). */
static int
read_token(const PGresult *res, int row, struct token_info *t, struct qerr *e)
{
	int r, bad = 0;

	memset(t, 0, sizeof(*t));
	t->p.id = pg_dup(res, row, 0, &bad);
	t->p.name = pg_dup(res, row, 1, &bad);
	t->p.role = pg_dup(res, row, 2, &bad);
	t->p.created_at = pg_i64(res, row, 3);
	t->expires_at = pg_i64(res, row, 5);
	t->revoked_at = pg_i64(res, row, 6);
	t->revoked_by = pg_dup(res, row, 7, &bad);
	t->last_used_at = pg_i64(res, row, 8);
	if (bad)
		r = pg_nomem(e);
	else
		r = strjson_load(pg_str(res, row, 4), &t->p.scope, &t->p.nscope,
		    "token scope", e);
	if (r != 0)
		token_info_clear(t);
	return r;
}

/* What pgs_token_get reads a row into. */
struct token_row {
	const char *id;
	struct token_info *t;
	unsigned char *hash;
};

static int
read_token_row(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct token_row *tr = out;

	if (bytea_of(pg_str(res, row, 9), tr->hash, 32) != 0)
		return qerr_set(e, QERR_STORE, NULL, "token %s: stored hash is damaged",
		    tr->id);
	return read_token(res, row, tr->t, e);
}

static int
pgs_token_get(struct store_conn *c, const char *id, struct token_info *t,
    unsigned char hash[32], struct qerr *e)
{
	struct token_row row = { id, t, hash };
	struct pg_args a = { .n = 0 };

	memset(t, 0, sizeof(*t));
	pa_text(&a, id);
	return pg_get_one(c, sql_token_get, &a, read_token_row, &row, "token get",
	    "token", e);
}

static int
pgs_token_list(struct store_conn *c, const char *after_id, int limit,
    store_token_cb cb, void *arg, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	struct token_info t;
	PGresult *res = NULL;
	int r, i;

	pa_text(&a, after_id ? after_id : "");
	pa_i64(&a, limit);
	if ((r = pg_query(c, sql_token_list, &a, "token list", &res, e)) != 0)
		return r;
	for (i = 0; i < PQntuples(res) && r == 0; i++) {
		if ((r = read_token(res, i, &t, e)) != 0)
			break;
		/* Like the other lists: the reader's own value ends the walk. */
		r = cb(&t, arg);
		token_info_clear(&t);
	}
	PQclear(res);
	return r;
}

static int
pgs_token_revoke(struct store_conn *c, const char *id, int64_t at, const char *by,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	long n = 0;
	int r;

	pa_text(&a, id);
	pa_i64(&a, at);
	pa_text(&a, by);
	if ((r = pg_run(c, sql_token_revoke, &a, "token revoke", &n, e)) != 0 || n == 1)
		return r;
	/* Nothing changed: tell an unknown token from one revoked before. */
	a.n = 1;
	if ((r = pg_query(c, sql_token_exists, &a, "token revoke", &res, e)) != 0)
		return r;
	if (PQntuples(res) > 0)
		r = qerr_set(e, QERR_CONFLICT, "token_id", "token %s is already revoked", id);
	else
		r = qerr_set(e, QERR_NOT_FOUND, "token_id", "no token %s", id);
	PQclear(res);
	return r;
}

static int
pgs_token_touch(struct store_conn *c, const char *id, int64_t at, int64_t min_gap_ms,
    bool *written, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	long n = 0;
	int r;

	pa_text(&a, id);
	pa_i64(&a, at);
	pa_i64(&a, min_gap_ms);
	r = pg_run(c, sql_token_touch, &a, "token touch", &n, e);
	*written = r == 0 && n == 1;
	return r;
}

/* Identities and accounts. */

int
pg_read_account(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct account *a = out;
	int bad = 0;

	memset(a, 0, sizeof(*a));
	a->id = pg_dup(res, row, 0, &bad);
	a->identity_id = pg_dup(res, row, 1, &bad);
	a->system = pg_dup(res, row, 2, &bad);
	a->kind = pg_dup(res, row, 3, &bad);
	a->external_id = pg_dup(res, row, 4, &bad);
	a->sid = pg_dup(res, row, 5, &bad);
	a->dn = pg_dup(res, row, 6, &bad);
	a->username = pg_dup(res, row, 7, &bad);
	a->upn = pg_dup(res, row, 8, &bad);
	a->display_name = pg_dup(res, row, 9, &bad);
	a->state = pg_dup(res, row, 10, &bad);
	a->state_read_at = pg_i64(res, row, 11);
	a->created_at = pg_i64(res, row, 12);
	a->email = pg_dup(res, row, 13, &bad);
	a->synced = pg_bool(res, row, 14);
	if (PQnfields(res) > 18) {
		a->risk = pg_dup(res, row, 15, &bad);
		a->link_rule = pg_dup(res, row, 16, &bad);
		a->linked_by = pg_dup(res, row, 17, &bad);
		a->linked_at = pg_i64(res, row, 18);
	}
	if (bad) {
		account_clear(a);
		return pg_nomem(e);
	}
	return 0;
}

/* Fills idn from a row of (id, display_name, tags, created_at). */
static int
read_identity(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct identity *idn = out;
	char what[96];
	int bad = 0, r;

	memset(idn, 0, sizeof(*idn));
	idn->id = pg_dup(res, row, 0, &bad);
	idn->display_name = pg_dup(res, row, 1, &bad);
	idn->created_at = pg_i64(res, row, 3);
	if (bad) {
		identity_clear(idn);
		return pg_nomem(e);
	}
	snprintf(what, sizeof(what), "identity %s: stored tags", idn->id);
	if ((r = strjson_load(pg_str(res, row, 2), &idn->tags, &idn->ntags, what,
	    e)) != 0) {
		identity_clear(idn);
		return r;
	}
	return 0;
}

static int
load_accounts(struct store_conn *c, struct identity *idn, struct qerr *e)
{
	return pg_load_rows(c, sql_idn_accounts, idn->id, pg_read_account,
	    sizeof(*idn->accounts), &idn->accounts, &idn->naccounts, "identity accounts",
	    e);
}

/* Insert ($1 id, $2 name, $3 tags, $4 created) or update ($1, $2, $3). */
static int
identity_write(struct store_conn *c, const struct identity *idn, bool insert,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	char *tags = NULL;
	int r;

	if ((r = strjson_dump(idn->tags, idn->ntags, "tags", "tag", &tags, e)) != 0)
		return r;
	pa_text(&a, idn->id);
	pa_text(&a, idn->display_name);
	pa_text(&a, tags);
	if (insert) {
		pa_i64(&a, idn->created_at);
		r = pg_run(c, sql_idn_insert, &a, "identity insert", NULL, e);
	} else
		r = pg_run_one(c, sql_idn_update, &a, "identity update", "identity", e);
	free(tags);
	return r;
}

static int
pgs_identity_insert(struct store_conn *c, const struct identity *idn, struct qerr *e)
{
	return identity_write(c, idn, true, e);
}

static int
pgs_identity_update(struct store_conn *c, const struct identity *idn, struct qerr *e)
{
	return identity_write(c, idn, false, e);
}

static int
pgs_identity_get(struct store_conn *c, const char *id, struct identity *out,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	int r;

	memset(out, 0, sizeof(*out));
	pa_text(&a, id);
	r = pg_get_one(c, sql_idn_get, &a, read_identity, out, "identity get", "identity",
	    e);
	if (r == 0)
		r = load_accounts(c, out, e);
	if (r != 0)
		identity_clear(out);
	return r;
}

static int
pgs_identity_list(struct store_conn *c, const struct identity_filter *f,
    store_identity_cb cb, void *arg, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	struct identity *rows = NULL;
	PGresult *res = NULL;
	char *pat = NULL;
	size_t n = 0, i;
	int r = QERR_INTERNAL;

	if (f->limit < 1 || f->limit > PG_LIST_MAX)
		return qerr_set(e, QERR_INVALID, "limit", "limit must be within 1..%d",
		    PG_LIST_MAX);
	if (f->query != NULL && (pat = store_like_pattern(f->query)) == NULL)
		return pg_nomem(e);
	pa_text(&a, f->after_id != NULL ? f->after_id : "");
	pa_text(&a, pat);
	pa_i64(&a, f->limit);
	if ((r = pg_query(c, sql_idn_list, &a, "identity list", &res, e)) != 0)
		goto out;
	if ((rows = calloc((size_t)PQntuples(res) + 1, sizeof(*rows))) == NULL) {
		r = pg_nomem(e);
		goto out;
	}
	for (n = 0; n < (size_t)PQntuples(res); n++)
		if ((r = read_identity(res, (int)n, &rows[n], e)) != 0)
			goto out;
	for (i = 0; i < n; i++)
		if ((r = load_accounts(c, &rows[i], e)) != 0)
			goto out;
	for (i = 0; i < n; i++)
		if ((r = cb(&rows[i], arg)) != 0)
			goto out;
	r = 0;
out:
	PQclear(res);
	for (i = 0; rows != NULL && i < n; i++)
		identity_clear(&rows[i]);
	free(rows);
	free(pat);
	return r;
}

/* The account's columns as $1..$15 of PG_ACC_COLS. */
static void
account_args(struct pg_args *a, const struct account *acc)
{
	pa_text(a, acc->id);
	pa_text(a, acc->identity_id);
	pa_text(a, acc->system);
	pa_text(a, acc->kind);
	pa_text(a, acc->external_id);
	pa_text(a, acc->sid);
	pa_text(a, acc->dn);
	pa_text(a, acc->username);
	pa_text(a, acc->upn);
	pa_text(a, acc->display_name);
	pa_text(a, acc->state);
	pa_i64(a, acc->state_read_at);
	pa_i64(a, acc->created_at);
	pa_text(a, acc->email);
	pa_bool(a, acc->synced);
}

static int
pgs_account_upsert(struct store_conn *c, struct account *acc, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	PGresult *res = NULL;
	char *id;
	int r;

	if (acc->id == NULL)
		return qerr_set(e, QERR_INVALID, "id", "account has no id");
	account_args(&a, acc);
	if ((r = pg_write(c, sql_acc_upsert, &a, "account upsert", &res, e)) != 0)
		return r;
	if (PQntuples(res) != 1)
		r = qerr_set(e, QERR_STORE, NULL, "account upsert: no id came back");
	else if ((id = strdup(pg_str(res, 0, 0))) == NULL)
		r = pg_nomem(e);
	else {
		free(acc->id);
		acc->id = id;
	}
	PQclear(res);
	return r;
}

static int
pgs_account_get(struct store_conn *c, const char *id, struct account *out,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	memset(out, 0, sizeof(*out));
	pa_text(&a, id);
	return pg_get_one(c, sql_acc_get, &a, pg_read_account, out, "account get",
	    "account", e);
}

static int
pgs_account_link(struct store_conn *c, const char *account_id,
    const char *identity_id, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, account_id);
	pa_text(&a, identity_id);
	return pg_run_one(c, sql_acc_link, &a, "account link", "account", e);
}

static int
pgs_account_set_state(struct store_conn *c, const char *account_id,
    const char *state, int64_t read_at, struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, account_id);
	pa_text(&a, state);
	pa_i64(&a, read_at);
	return pg_run_one(c, sql_acc_state, &a, "account state", "account", e);
}

/* Audit. */

/* The last audit entry's seq and hash. */
struct chain_end {
	int64_t seq;
	char hash[65];
};

static int
read_chain_end(const PGresult *res, int row, void *out, struct qerr *e)
{
	struct chain_end *end = out;

	(void)e;
	end->seq = pg_i64(res, row, 0);
	snprintf(end->hash, sizeof(end->hash), "%s", pg_str(res, row, 1));
	return 0;
}

/* The end of the chain in *end (seq 0 and audit_genesis for an empty log). */
static int
last_entry(struct store_conn *c, const char *what, struct chain_end *end,
    struct qerr *e)
{
	int r;

	end->seq = 0;
	memcpy(end->hash, audit_genesis, sizeof(end->hash));
	r = pg_get_one(c, sql_audit_last, NULL, read_chain_end, end, what, NULL, e);
	return r == QERR_NOT_FOUND ? 0 : r;
}

/* The write lock every write transaction holds makes the read of the chain's end
 * and the insert after it one step for the whole cluster. */
static int
pgs_audit_append(struct store_conn *c, struct audit_entry *ent, struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	struct chain_end last;
	int r;

	if ((r = last_entry(c, "audit append", &last, e)) != 0)
		return r;
	ent->seq = last.seq + 1;
	/* Every entry written from now on is of the current format, whoever wrote it. */
	ent->format = AUDIT_FORMAT;
	if ((r = audit_seal(ent, last.hash, e)) != 0)
		return r;
	pa_i64(&a, ent->seq);
	pa_i64(&a, ent->time);
	pa_text(&a, ent->actor);
	pa_text(&a, ent->event);
	pa_text(&a, ent->action_id);
	pa_text(&a, ent->step_id);
	pa_text(&a, ent->identity_id);
	pa_text(&a, ent->detail);
	pa_text(&a, ent->prev_hash);
	pa_text(&a, ent->hash);
	pa_i64(&a, ent->format);
	pa_text(&a, ent->actor_kind);
	pa_text(&a, ent->actor_id);
	pa_text(&a, ent->client);
	return pg_run(c, sql_audit_insert, &a, "audit append", NULL, e);
}

static int
read_audit(const PGresult *res, int row, struct audit_entry *ent, struct qerr *e)
{
	int bad = 0;

	memset(ent, 0, sizeof(*ent));
	ent->seq = pg_i64(res, row, 0);
	ent->time = pg_i64(res, row, 1);
	ent->actor = pg_dup(res, row, 2, &bad);
	ent->event = pg_dup(res, row, 3, &bad);
	ent->action_id = pg_dup(res, row, 4, &bad);
	ent->step_id = pg_dup(res, row, 5, &bad);
	ent->identity_id = pg_dup(res, row, 6, &bad);
	ent->detail = pg_dup(res, row, 7, &bad);
	snprintf(ent->prev_hash, sizeof(ent->prev_hash), "%s", pg_str(res, row, 8));
	snprintf(ent->hash, sizeof(ent->hash), "%s", pg_str(res, row, 9));
	/* NULL: a row of format 1, from before migration 7. */
	ent->format = PQgetisnull(res, row, 10) ? 1 : (int)pg_i64(res, row, 10);
	ent->actor_kind = pg_dup(res, row, 11, &bad);
	ent->actor_id = pg_dup(res, row, 12, &bad);
	ent->client = pg_dup(res, row, 13, &bad);
	if (bad) {
		audit_entry_clear(ent);
		return pg_nomem(e);
	}
	return 0;
}

/* Read a page at a time: the log may be far larger than memory allows to collect. */
static int
pgs_audit_list(struct store_conn *c, int64_t after_seq, int limit,
    store_audit_cb cb, void *arg, struct qerr *e)
{
	struct audit_entry ent;
	struct pg_args a;
	PGresult *res = NULL;
	int r = 0, i, rows, want;
	long left = limit;

	if (limit < 0)
		return qerr_set(e, QERR_INVALID, "limit", "limit must not be negative");
	do {
		want = limit == 0 || left > AUDIT_PAGE ? AUDIT_PAGE : (int)left;
		a.n = 0;
		pa_i64(&a, after_seq);
		pa_i64(&a, want);
		if ((r = pg_query(c, sql_audit_list, &a, "audit list", &res, e)) != 0)
			return r;
		rows = PQntuples(res);
		for (i = 0; i < rows && r == 0; i++) {
			if ((r = read_audit(res, i, &ent, e)) != 0)
				break;
			after_seq = ent.seq;
			r = cb(&ent, arg);
			audit_entry_clear(&ent);
		}
		PQclear(res);
		left -= rows;
	} while (r == 0 && rows == want && (limit == 0 || left > 0));
	return r;
}

static int
pgs_audit_last_seq(struct store_conn *c, int64_t *seq, struct qerr *e)
{
	struct chain_end last;
	int r;

	r = last_entry(c, "audit last", &last, e);
	*seq = r == 0 ? last.seq : 0;
	return r;
}

/* SIEM delivery cursors. */

static int
read_seq(const PGresult *res, int row, void *out, struct qerr *e)
{
	(void)e;
	*(int64_t *)out = pg_i64(res, row, 0);
	return 0;
}

/* A name without a cursor yet starts from 0. */
static int
pgs_siem_cursor_get(struct store_conn *c, const char *name, int64_t *seq,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };
	int r;

	*seq = 0;
	pa_text(&a, name);
	r = pg_get_one(c, sql_siem_get, &a, read_seq, seq, "siem cursor", NULL, e);
	return r == QERR_NOT_FOUND ? 0 : r;
}

static int
pgs_siem_cursor_put(struct store_conn *c, const char *name, int64_t seq, int64_t at,
    struct qerr *e)
{
	struct pg_args a = { .n = 0 };

	pa_text(&a, name);
	pa_i64(&a, seq);
	pa_i64(&a, at);
	return pg_run(c, sql_siem_put, &a, "siem cursor", NULL, e);
}

const struct store_ops store_postgres = {
	.kind = "postgres",
	.open = pgs_open,
	.close = pgs_close,
	.migrate = pgs_migrate,
	.begin = pgs_begin,
	.commit = pgs_commit,
	.rollback = pgs_rollback,
	.wait_work = pgs_wait_work,
	.token_insert = pgs_token_insert,
	.token_get = pgs_token_get,
	.token_list = pgs_token_list,
	.token_revoke = pgs_token_revoke,
	.token_touch = pgs_token_touch,
	.identity_insert = pgs_identity_insert,
	.identity_update = pgs_identity_update,
	.identity_get = pgs_identity_get,
	.identity_list = pgs_identity_list,
	.account_upsert = pgs_account_upsert,
	.account_get = pgs_account_get,
	.account_link = pgs_account_link,
	.account_set_state = pgs_account_set_state,
	.action_insert = pg_action_insert,
	.action_get = pg_action_get,
	.action_list = pg_action_list,
	.action_update = pg_action_update,
	.action_open_ids = pg_action_open_ids,
	.step_claim = pg_step_claim,
	.step_update = pg_step_update,
	.step_renew = pg_step_renew,
	.step_release = pg_step_release,
	.step_next_due = pg_step_next_due,
	.audit_append = pgs_audit_append,
	.audit_list = pgs_audit_list,
	.audit_last_seq = pgs_audit_last_seq,
	.siem_cursor_get = pgs_siem_cursor_get,
	.siem_cursor_put = pgs_siem_cursor_put,
	.lease_acquire = pg_lease_acquire,
	.lease_release = pg_lease_release,
	.node_beat = pg_node_beat,
	.node_list = pg_node_list,
	.lease_list = pg_lease_list,
	.rate_get = pg_rate_get,
	.rate_put = pg_rate_put,
	.session_insert = pg_session_insert,
	.session_get = pg_session_get,
	.session_touch = pg_session_touch,
	.session_delete = pg_session_delete,
	.session_prune = pg_session_prune,
	.session_count = pg_session_count,
	.login_insert = pg_login_insert,
	.login_take = pg_login_take,
	.hunt = pg_hunt,
	.ssf_stream_put = pg_ssf_stream_put,
	.ssf_stream_delete = pg_ssf_stream_delete,
	.ssf_stream_list = pg_ssf_stream_list,
	.ssf_outbox_add = pg_ssf_outbox_add,
	.ssf_outbox_pending = pg_ssf_outbox_pending,
	.ssf_outbox_ack = pg_ssf_outbox_ack,
	.ssf_jti_claim = pg_ssf_jti_claim,
	.account_sync = pg_account_sync,
	.account_remove = pg_account_remove,
	.account_sweep = pg_account_sweep,
	.account_match = pg_account_match,
	.account_set_link = pg_account_set_link,
	.link_veto = pg_link_veto,
	.conflict_list = pg_conflict_list,
	.sync_state_get = pg_sync_state_get,
	.sync_state_put = pg_sync_state_put,
	.alert_insert = pg_alert_insert,
	.alert_get = pg_alert_get,
	.alert_find = pg_alert_find,
	.alert_list = pg_alert_list,
	.account_find = pg_account_find,
	.decision_insert = pg_decision_insert,
	.decision_list = pg_decision_list,
	.decision_count = pg_decision_count,
};
