/*
 * Durable storage behind one table of function pointers per backend (struct
 * store_ops): SQLite (default, sqlite.c) and PostgreSQL (postgres.c, one database for
 * many nodes). The wrappers below are what the rest of quell calls.
 *
 * Everything happens inside a transaction taken from the store's connection pool:
 * store_tx_begin() … store_tx_commit() or store_tx_rollback(). A state change and its
 * audit entry are written in the same transaction. A write transaction is exclusive
 * from its start (SQLite BEGIN IMMEDIATE; PostgreSQL: an advisory lock taken at its
 * begin, across every node), so read-then-write inside it is safe.
 * A struct store_tx is used by one thread at a time.
 */
#ifndef QUELL_STORE_STORE_H
#define QUELL_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alert.h"
#include "core/correlate.h"
#include "core/err.h"
#include "core/kind.h"
#include "core/model.h"

struct store;
struct store_tx;
struct store_conn;	/* backend-private */

struct action_filter {
	const char *status;	/* NULL = any; else an action_status name */
	const char *type;	/* NULL = any; else an action_type name */
	const char *identity_id;
	const char *undo_of;	/* NULL = any; else actions undoing this one */
	int64_t since;		/* created_at >= since (ms); 0 = any */
	const char *before_id;	/* pagination: actions older than this id; NULL = newest */
	int limit;		/* 1..1000 */
};

struct identity_filter {
	const char *query;	/* substring of display name, username, UPN, SID; NULL = any */
	const char *after_id;	/* pagination: ids greater than this */
	int limit;
};

/* Claimable: queued, or retry_wait whose not_before has passed, or running with an
 * expired lease; never a step of a system listed in skip_systems. */
struct step_claim {
	const char *owner;
	int64_t now;
	int64_t lease_ms;
	const char *const *skip_systems;
	size_t nskip;
	const char *only_system;	/* non-NULL: only steps of this system … */
	enum action_type only_type;	/* … and this type (to fill a batch) */
};

struct alert_filter {
	const char *before_id;	/* pagination: alerts older than this id; NULL = newest */
	const char *source;	/* NULL = any */
	int limit;		/* 1..1000 */
};

/*
 * Advanced hunting: one read-only SELECT over the documented views (hunt.c), on a
 * connection of its own that can read nothing else and write nothing at all.
 */
struct hunt_query {
	const char *sql;
	int limit;		/* rows, 1..10000; more set "truncated" */
	int timeout_ms;		/* the query is stopped after this */
	size_t max_bytes;	/* of the answer; past it, "truncated" */
};

/*
 * An API token as stored, without its hash: who it stands for and its lifecycle.
 * Cleared with token_info_clear(), which accepts NULL.
 */
struct token_info {
	struct principal p;
	int64_t expires_at;	/* ms; 0 = never expires */
	int64_t revoked_at;	/* ms; 0 = not revoked */
	char *revoked_by;	/* the revoker's name; NULL when not revoked */
	int64_t last_used_at;	/* ms; 0 = never used. Written at most about once a
				 * minute per token (see store_token_touch). */
};

void token_info_clear(struct token_info *t);

typedef int (*store_identity_cb)(const struct identity *idn, void *arg);
typedef int (*store_token_cb)(const struct token_info *t, void *arg);
typedef int (*store_action_cb)(const struct action *act, void *arg);
typedef int (*store_audit_cb)(const struct audit_entry *ent, void *arg);
/* An account in conflict and the identities it matched, as a JSON array text. */
typedef int (*store_conflict_cb)(const struct account *a, const char *identities,
    void *arg);

/* What a sync's write of one account it read found and left. */
struct account_sync {
	bool created;		/* new to quell */
	bool changed;		/* its attributes or state differ from what was stored */
	struct account cur;	/* the stored row after the write (caller clears) */
	long sharing;		/* accounts linked to cur.identity_id, itself included */
};

/* Why an account is linked where it is (identity_id NULL: unlinked). */
struct account_link {
	const char *identity_id;
	const char *rule;	/* "manual", "new account", a correlation rule; NULL */
	const char *by;		/* a principal's name, or "sync" */
	int64_t at;
	const char *conflict;	/* JSON array of identity ids it matched, or NULL */
};
typedef int (*store_alert_cb)(const struct alert *a, void *arg);
typedef int (*store_account_cb)(const struct account *a, void *arg);
typedef int (*store_decision_cb)(const struct alert_decision *d, void *arg);

/* How long a node's heartbeat and leases last: a node silent this long is gone and
 * its once-per-cluster jobs move to another. It beats several times within. */
#define STORE_NODE_TTL_MS	10000

/* A node of the cluster as its last heartbeat said (store_node_list). */
struct store_node {
	const char *node_id;
	int64_t started_at;
	int64_t last_seen;
};

/* A once-per-cluster job's lease (store_lease_list): owner runs it until expires_at. */
struct store_lease {
	const char *name;
	const char *owner;
	int64_t expires_at;
};
/*
 * A console session as stored (src/api/web.c): never the cookie's value, only its
 * SHA-256; whose it is, what it was opened with (an API token and that token's
 * stored hash, or an OpenID Connect id token's claims as JSON) and its times.
 * Cleared with store_session_clear(), which accepts NULL.
 */
struct store_session {
	char *id_hash;		/* hex SHA-256 of the cookie's value */
	char *principal_hash;	/* hex SHA-256 of whose it is */
	char *token_id;		/* NULL for an OpenID Connect session */
	char *token_hash;	/* hex; NULL for an OpenID Connect session */
	char *claims;		/* JSON; NULL for a token's session */
	int64_t created_us;	/* microseconds, so that sign-ins in one ms keep order */
	int64_t used_us;
};

void store_session_clear(struct store_session *s);

typedef int (*store_node_cb)(const struct store_node *n, void *arg);
typedef int (*store_lease_cb)(const struct store_lease *l, void *arg);
/* A row of the Shared Signals tables (src/engine/ssf.c), borrowed for the call: a
 * stream (key its id, text its JSON configuration) or a queued SET (key its jti,
 * text the signed JWT, seq its place in its stream). */
typedef int (*store_ssf_cb)(const char *key, const char *text, int64_t seq, void *arg);

struct store_ops {
	const char *kind;
	int (*open)(const char *location, struct store_conn **out, struct qerr *e);
	void (*close)(struct store_conn *c);
	/* Applies every schema migration not yet applied, in one transaction. */
	int (*migrate)(struct store_conn *c, struct qerr *e);
	int (*begin)(struct store_conn *c, bool write, struct qerr *e);
	int (*commit)(struct store_conn *c, struct qerr *e);
	void (*rollback)(struct store_conn *c);
	/* On a connection of its own, outside any transaction: waits up to timeout_ms
	 * for another node's (or this one's) transaction that queued work to commit;
	 * *woken says whether one did. NULL: the backend cannot tell (callers poll). */
	int (*wait_work)(struct store_conn *c, int timeout_ms, bool *woken,
	    struct qerr *e);

	/* Stores t (its revoked_* and last_used_at are ignored: a new token is
	 * neither) with the SHA-256 of the whole token; QERR_CONFLICT on a used id. */
	int (*token_insert)(struct store_conn *c, const struct token_info *t,
	    const unsigned char hash[32], struct qerr *e);
	/* Fills *t (caller clears) and hash for token id, revoked or expired ones too;
	 * QERR_NOT_FOUND if none. */
	int (*token_get)(struct store_conn *c, const char *id, struct token_info *t,
	    unsigned char hash[32], struct qerr *e);
	/* Tokens with ids greater than after_id (NULL: from the start), in id order
	 * (which is creation order), at most limit (1..1000); never the hash. */
	int (*token_list)(struct store_conn *c, const char *after_id, int limit,
	    store_token_cb cb, void *arg, struct qerr *e);
	/* Marks token id revoked at `at` by `by`. QERR_NOT_FOUND if no such token,
	 * QERR_CONFLICT if it already was revoked (the first revocation stands). */
	int (*token_revoke)(struct store_conn *c, const char *id, int64_t at,
	    const char *by, struct qerr *e);
	/* Sets last_used_at to at unless it was set less than min_gap_ms before at (or
	 * the token is revoked); *written tells whether the row changed. */
	int (*token_touch)(struct store_conn *c, const char *id, int64_t at,
	    int64_t min_gap_ms, bool *written, struct qerr *e);
	/* Token id's revocation and last use alone, what a request with a token verified
	 * before needs; optional (store_token_state reads the whole row without it).
	 * QERR_NOT_FOUND if none. */
	int (*token_state)(struct store_conn *c, const char *id, int64_t *revoked_at,
	    int64_t *last_used_at, struct qerr *e);

	int (*identity_insert)(struct store_conn *c, const struct identity *idn,
	    struct qerr *e);
	/* Writes display_name and tags. QERR_NOT_FOUND if no such identity. */
	int (*identity_update)(struct store_conn *c, const struct identity *idn,
	    struct qerr *e);
	/* With its linked accounts. QERR_NOT_FOUND if none. */
	int (*identity_get)(struct store_conn *c, const char *id, struct identity *out,
	    struct qerr *e);
	/* The same without its accounts (naccounts 0); optional: store_identity_head
	 * reads the whole identity from a backend without it. */
	int (*identity_head)(struct store_conn *c, const char *id, struct identity *out,
	    struct qerr *e);
	int (*identity_list)(struct store_conn *c, const struct identity_filter *f,
	    store_identity_cb cb, void *arg, struct qerr *e);

	/* Inserts, or updates the row with the same (system, external_id), keeping its id
	 * and identity link; a->id is set to the stored id (caller frees). */
	int (*account_upsert)(struct store_conn *c, struct account *a, struct qerr *e);
	int (*account_get)(struct store_conn *c, const char *id, struct account *out,
	    struct qerr *e);
	/* identity_id NULL unlinks. QERR_NOT_FOUND if no such account. */
	int (*account_link)(struct store_conn *c, const char *account_id,
	    const char *identity_id, struct qerr *e);
	int (*account_set_state)(struct store_conn *c, const char *account_id,
	    const char *state, int64_t read_at, struct qerr *e);

	/* The action and all its steps. */
	int (*action_insert)(struct store_conn *c, const struct action *a, struct qerr *e);
	/* With its steps, ordered by step id. */
	int (*action_get)(struct store_conn *c, const char *id, struct action *out,
	    struct qerr *e);
	/* Newest first; actions passed to cb have no steps. */
	int (*action_list)(struct store_conn *c, const struct action_filter *f,
	    store_action_cb cb, void *arg, struct qerr *e);
	/* Writes status, message, cancel_requested, updated_at, finished_at. */
	int (*action_update)(struct store_conn *c, const struct action *a, struct qerr *e);
	/* Ids of actions not yet terminal (for roll-up after a restart); caller frees
	 * each id and the array. */
	int (*action_open_ids)(struct store_conn *c, char ***ids, size_t *n, struct qerr *e);

	/* Claims one step: status running, lease set, attempts + 1, started_at set if 0.
	 * QERR_NOT_FOUND when nothing is claimable. */
	int (*step_claim)(struct store_conn *c, const struct step_claim *cl,
	    struct step *out, struct qerr *e);
	/* Writes status, attempts, not_before, lease, request_id, error_code, message,
	 * updated_at, started_at, finished_at. */
	int (*step_update)(struct store_conn *c, const struct step *s, struct qerr *e);
	/* Extends the lease of the owner's running steps to expires. */
	int (*step_renew)(struct store_conn *c, const char *owner, int64_t expires,
	    struct qerr *e);
	/* Frees the owner's running steps for claiming again (after a restart). */
	int (*step_release)(struct store_conn *c, const char *owner, struct qerr *e);
	/* Earliest time a waiting step becomes claimable, or 0 if none waits. */
	int (*step_next_due)(struct store_conn *c, int64_t *when, struct qerr *e);

	/* Reads the last hash, computes entry hash (audit_hash) and inserts; sets
	 * e->seq, prev_hash and hash. Must run in a write transaction. */
	int (*audit_append)(struct store_conn *c, struct audit_entry *ent, struct qerr *e);
	/* Entries with seq > after_seq in seq order, at most limit (0 = all). */
	int (*audit_list)(struct store_conn *c, int64_t after_seq, int limit,
	    store_audit_cb cb, void *arg, struct qerr *e);
	/* The seq of the newest audit entry; 0 when the log is empty. */
	int (*audit_last_seq)(struct store_conn *c, int64_t *seq, struct qerr *e);
	/* The last audit seq delivered to the [siem] name; 0 when nothing was. */
	int (*siem_cursor_get)(struct store_conn *c, const char *name, int64_t *seq,
	    struct qerr *e);
	/* Moves name's cursor to seq, never back (two nodes delivering to one SIEM
	 * cannot undo each other's progress). */
	int (*siem_cursor_put)(struct store_conn *c, const char *name, int64_t seq,
	    int64_t at, struct qerr *e);
	/*
	 * Singletons: owner takes lease name (until now + ttl_ms) when nobody holds
	 * it, its holder's time ran out, or owner holds it already (renewed); *held
	 * says whether owner holds it now. SQLite serves one node: its owner always
	 * wins. lease_release gives up name (NULL: every lease) if owner holds it.
	 */
	int (*lease_acquire)(struct store_conn *c, const char *name, const char *owner,
	    int64_t now, int64_t ttl_ms, bool *held, struct qerr *e);
	int (*lease_release)(struct store_conn *c, const char *name, const char *owner,
	    struct qerr *e);
	/* A node's heartbeat: records it seen at now and extends every lease it holds
	 * to now + ttl_ms, so a job holds its lease for as long as its node lives. */
	int (*node_beat)(struct store_conn *c, const char *node_id, int64_t started_at,
	    int64_t now, int64_t ttl_ms, struct qerr *e);
	/* Every node that ever beat, and every lease, expired or not, by name. */
	int (*node_list)(struct store_conn *c, store_node_cb cb, void *arg,
	    struct qerr *e);
	/* SSF streams: put inserts or replaces id's configuration; delete removes it
	 * and its queued SETs (QERR_NOT_FOUND when there is none). */
	int (*ssf_stream_put)(struct store_conn *c, const char *id, const char *config,
	    int64_t at, struct qerr *e);
	int (*ssf_stream_delete)(struct store_conn *c, const char *id, struct qerr *e);
	int (*ssf_stream_list)(struct store_conn *c, store_ssf_cb cb, void *arg,
	    struct qerr *e);
	/* The outbox: SETs appended in order per stream, listed unacknowledged in that
	 * order (at most limit), acknowledged by jti (QERR_NOT_FOUND when unknown). */
	int (*ssf_outbox_add)(struct store_conn *c, const char *stream_id, const char *jti,
	    const char *set, int64_t at, struct qerr *e);
	int (*ssf_outbox_pending)(struct store_conn *c, const char *stream_id, int limit,
	    store_ssf_cb cb, void *arg, struct qerr *e);
	int (*ssf_outbox_ack)(struct store_conn *c, const char *stream_id, const char *jti,
	    int64_t at, struct qerr *e);
	/* Records (iss, jti) as received; *fresh is false when it was already. */
	int (*ssf_jti_claim)(struct store_conn *c, const char *iss, const char *jti,
	    int64_t at, bool *fresh, struct qerr *e);
	int (*lease_list)(struct store_conn *c, store_lease_cb cb, void *arg,
	    struct qerr *e);
	/* A vendor's budget shared by the nodes (store_rate_take): the bucket of
	 * system, its level in thousandths of a request and when it was filled last;
	 * QERR_NOT_FOUND when it has none yet. */
	int (*rate_get)(struct store_conn *c, const char *system, int64_t *level,
	    int64_t *at, struct qerr *e);
	int (*rate_put)(struct store_conn *c, const char *system, int64_t level,
	    int64_t at, struct qerr *e);
	/* Console sessions, by the hash of their id. session_get fills *out (caller
	 * clears), QERR_NOT_FOUND when none; session_delete removes id_hash's, or with
	 * id_hash NULL every session opened with token_id; session_prune those unused
	 * since idle_before or made before life_before (µs, as the session's times);
	 * session_count counts all and
	 * principal_hash's own, *lru (caller frees; NULL when none) naming its least
	 * recently used. */
	int (*session_insert)(struct store_conn *c, const struct store_session *s,
	    struct qerr *e);
	int (*session_get)(struct store_conn *c, const char *id_hash,
	    struct store_session *out, struct qerr *e);
	int (*session_touch)(struct store_conn *c, const char *id_hash, int64_t at_us,
	    struct qerr *e);
	int (*session_delete)(struct store_conn *c, const char *id_hash,
	    const char *token_id, struct qerr *e);
	int (*session_prune)(struct store_conn *c, int64_t idle_before,
	    int64_t life_before, struct qerr *e);
	int (*session_count)(struct store_conn *c, const char *principal_hash,
	    long *all, long *own, char **lru, struct qerr *e);
	/* OpenID Connect sign-ins under way, by the hash of their pre-session cookie:
	 * login_insert drops those made before older_than and, past max, the oldest;
	 * login_take reads (*redirect_uri, caller frees) and deletes one: one use only,
	 * QERR_NOT_FOUND when there is none. */
	int (*login_insert)(struct store_conn *c, const char *cookie_hash,
	    const char *redirect_uri, int64_t created_us, int64_t older_than, long max,
	    struct qerr *e);
	int (*login_take)(struct store_conn *c, const char *cookie_hash,
	    char **redirect_uri, int64_t *created_us, struct qerr *e);

	/*
	 * Inventory sync. account_sync writes one account read from its system: a new
	 * row (a->id is its id), or the row with the same (system, external_id) when
	 * anything differs; a NULL state keeps the stored one. seen_run > 0 marks it
	 * seen by that full pass, which account_sweep then uses: accounts of the system
	 * it did not see are marked removed (*n of them).
	 */
	int (*account_sync)(struct store_conn *c, const struct account *a,
	    int64_t seen_run, struct account_sync *out, struct qerr *e);
	/* Marks (system, external_id) removed; *changed false if it already was or is
	 * unknown. */
	int (*account_remove)(struct store_conn *c, const char *system,
	    const char *external_id, int64_t at, bool *changed, struct qerr *e);
	int (*account_sweep)(struct store_conn *c, const char *system, int64_t run,
	    int64_t at, long *n, struct qerr *e);
	/* Adds to hits the identities of accounts matching p, leaving out self's own
	 * identity and those self was manually unlinked from. */
	int (*account_match)(struct store_conn *c, const struct corr_probe *p,
	    const struct account *self, struct corr_hits *hits, struct qerr *e);
	/* QERR_NOT_FOUND if no such account. */
	int (*account_set_link)(struct store_conn *c, const char *account_id,
	    const struct account_link *l, struct qerr *e);
	/* Remembers (add) or forgets a manual unlink of the pair. */
	int (*link_veto)(struct store_conn *c, const char *account_id,
	    const char *identity_id, const char *by, int64_t at, bool add,
	    struct qerr *e);
	/* Accounts in conflict with ids greater than after_id (NULL: from the start). */
	int (*conflict_list)(struct store_conn *c, const char *after_id, int limit,
	    store_conflict_cb cb, void *arg, struct qerr *e);
	/* The system's incremental cursor (NULL: none; caller frees) and last full
	 * pass; 0 and NULL when it was never synced. */
	int (*sync_state_get)(struct store_conn *c, const char *system, char **cursor,
	    int64_t *full_run, struct qerr *e);
	int (*sync_state_put)(struct store_conn *c, const char *system,
	    const char *cursor, int64_t full_run, int64_t at, struct qerr *e);

	/* The alert and its entities; QERR_CONFLICT when (source, external_id) exists. */
	int (*alert_insert)(struct store_conn *c, const struct alert *a, struct qerr *e);
	/* With entities. QERR_NOT_FOUND if none. */
	int (*alert_get)(struct store_conn *c, const char *id, struct alert *out,
	    struct qerr *e);
	int (*alert_find)(struct store_conn *c, const char *source,
	    const char *external_id, struct alert *out, struct qerr *e);
	/* Newest first, without entities. */
	int (*alert_list)(struct store_conn *c, const struct alert_filter *f,
	    store_alert_cb cb, void *arg, struct qerr *e);
	/* Accounts an alert entity names: by UPN or SID on any kind, or by the object id
	 * (external_id) an account of kind has there. */
	int (*account_find)(struct store_conn *c, enum kind_match match, const char *kind,
	    const char *value, store_account_cb cb, void *arg, struct qerr *e);
	int (*decision_insert)(struct store_conn *c, const struct alert_decision *d,
	    struct qerr *e);
	/* Exactly one filter: an alert's decisions oldest first, or an identity's newest
	 * first; at most 1000. */
	int (*decision_list)(struct store_conn *c, const char *alert_id,
	    const char *identity_id, store_decision_cb cb, void *arg, struct qerr *e);
	/* Decisions with this outcome made at or after since (ms). */
	int (*decision_count)(struct store_conn *c, const char *outcome, int64_t since,
	    long *n, struct qerr *e);
	/* Runs q on a connection of its own to location; *out (caller frees) is JSON
	 * text {"columns":[…],"rows":[[…]],"truncated":bool}. QERR_INVALID names why a
	 * query is refused or was stopped. NULL: the backend cannot hunt. */
	int (*hunt)(const char *location, const struct hunt_query *q, char **out,
	    struct qerr *e);
};

extern const struct store_ops store_sqlite;
extern const struct store_ops store_postgres;

/*
 * The location store_postgres opens for a libpq connection string (keyword=value or
 * a postgresql:// URI) and, when passfile is not NULL, the password file libpq reads
 * (*out, caller frees). A conninfo holding a password is refused (QERR_CONFIG naming
 * "conninfo"): a password belongs in the password file or a service file.
 */
int store_pg_location(const char *conninfo, const char *passfile, char **out,
    struct qerr *e);

struct config;

/* The store cfg's [store] names (select.c), as store_open opens it. */
int store_open_config(const struct config *cfg, int nconn, struct store **out,
    struct qerr *e);
/* Whether a and b name the same store. */
bool store_config_same(const struct config *a, const struct config *b);
/* What names cfg's store in a log line: the path, or the connection string (which
 * holds no password). Borrowed from cfg. */
const char *store_config_name(const struct config *cfg);

/* Opens a pool of nconn connections to location and migrates the schema. */
int store_open(const struct store_ops *ops, const char *location, int nconn,
    struct store **out, struct qerr *e);
void store_close(struct store *st);

/* Takes a connection (waits for one) and begins a transaction. */
int store_tx_begin(struct store *st, bool write, struct store_tx **out, struct qerr *e);
/* Commits and returns the connection; tx is freed whatever the result. */
int store_tx_commit(struct store_tx *tx, struct qerr *e);
/* Rolls back and returns the connection; accepts NULL. */
void store_tx_rollback(struct store_tx *tx);
/* How many write transactions of this process have committed, each one a durable
 * commit: what a path costs in commits is the difference across it. */
uint64_t store_write_commits(struct store *st);

int store_token_insert(struct store_tx *tx, const struct token_info *t,
    const unsigned char hash[32], struct qerr *e);
/* *t: caller clears with token_info_clear. */
int store_token_get(struct store_tx *tx, const char *id, struct token_info *t,
    unsigned char hash[32], struct qerr *e);
/* t passed to cb is borrowed for the call only. */
int store_token_list(struct store_tx *tx, const char *after_id, int limit,
    store_token_cb cb, void *arg, struct qerr *e);
/* Write transactions only; by is copied. */
int store_token_revoke(struct store_tx *tx, const char *id, int64_t at, const char *by,
    struct qerr *e);
int store_token_touch(struct store_tx *tx, const char *id, int64_t at,
    int64_t min_gap_ms, bool *written, struct qerr *e);
int store_token_state(struct store_tx *tx, const char *id, int64_t *revoked_at,
    int64_t *last_used_at, struct qerr *e);
int store_identity_insert(struct store_tx *tx, const struct identity *idn, struct qerr *e);
int store_identity_update(struct store_tx *tx, const struct identity *idn, struct qerr *e);
int store_identity_get(struct store_tx *tx, const char *id, struct identity *out,
    struct qerr *e);
/* Identity id's own fields, its accounts not read when the backend can do without
 * (a reader of one field need not load them all). Caller clears out. */
int store_identity_head(struct store_tx *tx, const char *id, struct identity *out,
    struct qerr *e);
int store_identity_list(struct store_tx *tx, const struct identity_filter *f,
    store_identity_cb cb, void *arg, struct qerr *e);
int store_account_upsert(struct store_tx *tx, struct account *a, struct qerr *e);
int store_account_get(struct store_tx *tx, const char *id, struct account *out,
    struct qerr *e);
int store_account_link(struct store_tx *tx, const char *account_id,
    const char *identity_id, struct qerr *e);
int store_account_set_state(struct store_tx *tx, const char *account_id,
    const char *state, int64_t read_at, struct qerr *e);
int store_action_insert(struct store_tx *tx, const struct action *a, struct qerr *e);
int store_action_get(struct store_tx *tx, const char *id, struct action *out,
    struct qerr *e);
int store_action_list(struct store_tx *tx, const struct action_filter *f,
    store_action_cb cb, void *arg, struct qerr *e);
int store_action_update(struct store_tx *tx, const struct action *a, struct qerr *e);
int store_action_open_ids(struct store_tx *tx, char ***ids, size_t *n, struct qerr *e);
int store_step_claim(struct store_tx *tx, const struct step_claim *cl, struct step *out,
    struct qerr *e);
int store_step_update(struct store_tx *tx, const struct step *s, struct qerr *e);
int store_step_renew(struct store_tx *tx, const char *owner, int64_t expires,
    struct qerr *e);
int store_step_release(struct store_tx *tx, const char *owner, struct qerr *e);
int store_step_next_due(struct store_tx *tx, int64_t *when, struct qerr *e);
int store_audit_append(struct store_tx *tx, struct audit_entry *ent, struct qerr *e);
int store_audit_list(struct store_tx *tx, int64_t after_seq, int limit,
    store_audit_cb cb, void *arg, struct qerr *e);
int store_audit_last_seq(struct store_tx *tx, int64_t *seq, struct qerr *e);
int store_siem_cursor_get(struct store_tx *tx, const char *name, int64_t *seq,
    struct qerr *e);
/* Write transactions only. */
int store_siem_cursor_put(struct store_tx *tx, const char *name, int64_t seq,
    int64_t at, struct qerr *e);
/*
 * A count that grows each time a transaction of this process that appended to the
 * audit log commits, so a reader of the log (the SIEM forwarder) can wait for new
 * entries instead of polling. store_audit_wait returns once the count differs from
 * seen, *stop is true, store_audit_kick was called, or timeout_ms passed (other
 * processes writing to the same database are only seen by then).
 */
uint64_t store_audit_generation(struct store *st);
void store_audit_wait(struct store *st, uint64_t seen, const _Atomic bool *stop,
    int timeout_ms);
void store_audit_kick(struct store *st);
/*
 * Waits up to timeout_ms for a transaction that queued work (a new action, an
 * approval, a step queued again, released leases) to commit, on any node: *woken
 * tells whether one did. For one thread at a time (the engine's dispatcher).
 * QERR_UNSUPPORTED when the backend cannot tell (SQLite: poll instead).
 */
int store_wait_work(struct store *st, int timeout_ms, bool *woken, struct qerr *e);
/* Whether other nodes may share this store (its backend tells them when work is
 * queued): only then do singletons need leases, and nodes heartbeats. */
bool store_shared(const struct store *st);
/* Cluster membership and singletons (store_ops' lease_acquire and on); the ones
 * that write need a write transaction. */
int store_lease_acquire(struct store_tx *tx, const char *name, const char *owner,
    int64_t now, int64_t ttl_ms, bool *held, struct qerr *e);
int store_lease_release(struct store_tx *tx, const char *name, const char *owner,
    struct qerr *e);
int store_node_beat(struct store_tx *tx, const char *node_id, int64_t started_at,
    int64_t now, int64_t ttl_ms, struct qerr *e);
int store_node_list(struct store_tx *tx, store_node_cb cb, void *arg, struct qerr *e);
int store_lease_list(struct store_tx *tx, store_lease_cb cb, void *arg, struct qerr *e);
/*
 * Takes one request from system's budget shared by every node: a token bucket of
 * burst requests refilled at rate per second. *wait_ms is 0 when one was taken, else
 * how long until one will be there (nothing taken). Write transactions only: the
 * write lock makes the read and the write of the bucket one step for the cluster.
 */
int store_rate_take(struct store_tx *tx, const char *system, double rate, long burst,
    int64_t now, int64_t *wait_ms, struct qerr *e);
/* Console sessions (store_ops' session_insert and on); writes need a write
 * transaction. *out of store_session_get and *lru: the caller's. */
int store_session_insert(struct store_tx *tx, const struct store_session *s,
    struct qerr *e);
int store_session_get(struct store_tx *tx, const char *id_hash,
    struct store_session *out, struct qerr *e);
int store_session_touch(struct store_tx *tx, const char *id_hash, int64_t at,
    struct qerr *e);
int store_session_delete(struct store_tx *tx, const char *id_hash, const char *token_id,
    struct qerr *e);
int store_session_prune(struct store_tx *tx, int64_t idle_before, int64_t life_before,
    struct qerr *e);
int store_session_count(struct store_tx *tx, const char *principal_hash, long *all,
    long *own, char **lru, struct qerr *e);
/* Sign-ins under way (store_ops' login_insert, login_take); write transactions. */
int store_login_insert(struct store_tx *tx, const char *cookie_hash,
    const char *redirect_uri, int64_t created_us, int64_t older_than, long max,
    struct qerr *e);
int store_login_take(struct store_tx *tx, const char *cookie_hash, char **redirect_uri,
    int64_t *created_us, struct qerr *e);
/* Shared Signals (see the ops above); the writes need a write transaction. */
int store_ssf_stream_put(struct store_tx *tx, const char *id, const char *config,
    int64_t at, struct qerr *e);
int store_ssf_stream_delete(struct store_tx *tx, const char *id, struct qerr *e);
int store_ssf_stream_list(struct store_tx *tx, store_ssf_cb cb, void *arg,
    struct qerr *e);
int store_ssf_outbox_add(struct store_tx *tx, const char *stream_id, const char *jti,
    const char *set, int64_t at, struct qerr *e);
int store_ssf_outbox_pending(struct store_tx *tx, const char *stream_id, int limit,
    store_ssf_cb cb, void *arg, struct qerr *e);
int store_ssf_outbox_ack(struct store_tx *tx, const char *stream_id, const char *jti,
    int64_t at, struct qerr *e);
int store_ssf_jti_claim(struct store_tx *tx, const char *iss, const char *jti,
    int64_t at, bool *fresh, struct qerr *e);
int store_account_sync(struct store_tx *tx, const struct account *a, int64_t seen_run,
    struct account_sync *out, struct qerr *e);
int store_account_remove(struct store_tx *tx, const char *system,
    const char *external_id, int64_t at, bool *changed, struct qerr *e);
int store_account_sweep(struct store_tx *tx, const char *system, int64_t run,
    int64_t at, long *n, struct qerr *e);
int store_account_match(struct store_tx *tx, const struct corr_probe *p,
    const struct account *self, struct corr_hits *hits, struct qerr *e);
int store_account_set_link(struct store_tx *tx, const char *account_id,
    const struct account_link *l, struct qerr *e);
int store_link_veto(struct store_tx *tx, const char *account_id,
    const char *identity_id, const char *by, int64_t at, bool add, struct qerr *e);
int store_conflict_list(struct store_tx *tx, const char *after_id, int limit,
    store_conflict_cb cb, void *arg, struct qerr *e);
int store_sync_state_get(struct store_tx *tx, const char *system, char **cursor,
    int64_t *full_run, struct qerr *e);
int store_sync_state_put(struct store_tx *tx, const char *system, const char *cursor,
    int64_t full_run, int64_t at, struct qerr *e);
int store_alert_insert(struct store_tx *tx, const struct alert *a, struct qerr *e);
int store_alert_get(struct store_tx *tx, const char *id, struct alert *out,
    struct qerr *e);
int store_alert_find(struct store_tx *tx, const char *source, const char *external_id,
    struct alert *out, struct qerr *e);
int store_alert_list(struct store_tx *tx, const struct alert_filter *f,
    store_alert_cb cb, void *arg, struct qerr *e);
int store_account_find(struct store_tx *tx, enum kind_match match, const char *kind,
    const char *value, store_account_cb cb, void *arg, struct qerr *e);
int store_decision_insert(struct store_tx *tx, const struct alert_decision *d,
    struct qerr *e);
int store_decision_list(struct store_tx *tx, const char *alert_id,
    const char *identity_id, store_decision_cb cb, void *arg, struct qerr *e);
int store_decision_count(struct store_tx *tx, const char *outcome, int64_t since,
    long *n, struct qerr *e);
/*
 * The whole audit chain checked in one read transaction: *n entries, *broken the seq
 * of the first that does not hold (0: none; why says how), head the last hash.
 * Errors other than a broken chain are the return value.
 */
int store_audit_verify(struct store *st, int64_t *n, int64_t *broken, char head[65],
    struct qerr *why, struct qerr *e);
/*
 * quelld migrate: copies every table of the SQLite database at path (at the current
 * schema: opened with store_open first) into the PostgreSQL database at location
 * (likewise, and holding no tokens, identities, actions or audit entries yet; else
 * QERR_CONFLICT), in one transaction. *rows counts the rows copied.
 */
int store_copy_sqlite_pg(const char *path, const char *location, long *rows,
    struct qerr *e);
/* Outside any transaction: the hunt has a connection of its own. */
int store_hunt(struct store *st, const struct hunt_query *q, char **out,
    struct qerr *e);

#endif
