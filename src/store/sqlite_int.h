/*
 * What the SQLite backend's files share: the connection, the helpers every
 * statement is run with, and the store_ops functions each file provides for the
 * table in sqlite.c (the connection, migrations, transactions, tokens, identities,
 * accounts and the audit log), sqlite_actions.c (actions and their steps),
 * sqlite_alerts.c (alerts and disruption decisions) and sqlite_sync.c (inventory
 * sync and correlation); sqlite_cluster.c holds node heartbeats and leases.
 * Nothing outside src/store includes this.
 */
#ifndef QUELL_STORE_SQLITE_INT_H
#define QUELL_STORE_SQLITE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store.h"

#define LIST_MAX	1000

#define ACC_COLS "id, identity_id, system, kind, external_id, sid, dn, username, " \
	"upn, display_name, state, state_read_at, created_at, email, synced"
/* What reads of accounts return: ACC_COLS, then the link's reason (read_account). */
#define ACC_COLS_X ACC_COLS ", risk, link_rule, linked_by, linked_at"

/* Each file keeps its prepared statements in its own array, by its own numbers. */
#define CORE_STMT_MAX 32
#define ACTION_STMT_MAX 16
/* One action list statement per combination of its filters (sqlite_actions.c). */
#define ACTION_LIST_MAX 64
#define ALERT_STMT_MAX 16
#define SYNC_STMT_MAX 16
#define CLUSTER_STMT_MAX 8
#define SHARE_STMT_MAX 16

struct gate;

struct store_conn {
	sqlite3 *db;
	struct gate *gate;
	bool writing;		/* holds gate */
	sqlite3_stmt *stmt[CORE_STMT_MAX];	/* sqlite.c */
	sqlite3_stmt *action_stmt[ACTION_STMT_MAX];	/* sqlite_actions.c */
	sqlite3_stmt *action_list[ACTION_LIST_MAX];
	sqlite3_stmt *sync_stmt[SYNC_STMT_MAX];	/* sqlite_sync.c */
	sqlite3_stmt *alert_stmt[ALERT_STMT_MAX];	/* sqlite_alerts.c */
	sqlite3_stmt *cluster_stmt[CLUSTER_STMT_MAX];	/* sqlite_cluster.c */
	sqlite3_stmt *share_stmt[SHARE_STMT_MAX];	/* sqlite_share.c */
};

/* Maps an SQLite result code to a quell error naming what failed; returns it. */
int sq_db_fail(struct store_conn *c, int rc, const char *what, struct qerr *e);
int sq_nomem(struct qerr *e);
/* The statement cached in *slot, prepared from sql the first time; borrowed. */
int sq_prepare(struct store_conn *c, sqlite3_stmt **slot, const char *sql,
    sqlite3_stmt **out, struct qerr *e);
/* Leaves a cached statement ready for its next use; accepts NULL. */
void sq_done(sqlite3_stmt *st);
/* Binds s (NULL binds NULL), borrowed until the statement is reset. */
int sq_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Runs a statement that returns no rows. */
int sq_exec_done(struct store_conn *c, sqlite3_stmt *st, const char *what,
    struct qerr *e);
/*
 * Runs st, which returns no rows, after its binds: bind_failed is what they
 * returned, OR-ed, and when it is set the connection's error is reported instead.
 * st is left ready for its next use.
 */
int sq_run(struct store_conn *c, sqlite3_stmt *st, int bind_failed, const char *what,
    struct qerr *e);
/* The same for an UPDATE by id: QERR_NOT_FOUND naming field when it touched no row. */
int sq_run_one(struct store_conn *c, sqlite3_stmt *st, int bind_failed, const char *what,
    const char *field, struct qerr *e);
/* Column i as a new string (caller frees; NULL for SQL NULL); *bad set when out of
 * memory. */
char *sq_col_dup(sqlite3_stmt *st, int i, int *bad);
/* Column i as text borrowed from the statement ("" for NULL). */
const char *sq_col_str(sqlite3_stmt *st, int i);
/* Fills the struct out points to from the row st is on (cleared again on failure). */
typedef int (*sq_read_fn)(sqlite3_stmt *st, void *out, struct qerr *e);
/*
 * Appends every row st selects, with key bound to ?1, to the growing array whose
 * pointer items points to (*n elements of size bytes), each read by read_row; st is
 * left ready for its next use. On failure the rows read so far stay there, counted
 * in *n, for the caller to clear; what names the statement in a database error.
 */
int sq_load_rows(struct store_conn *c, sqlite3_stmt *st, const char *key,
    sq_read_fn read_row, size_t size, void *items, size_t *n, const char *what,
    struct qerr *e);
/* A row of ACC_COLS_X into the struct account out (caller clears). */
int sq_read_account(sqlite3_stmt *st, void *out, struct qerr *e);
/*
 * The one row st selects, with k1 and k2 bound to ?1 and ?2 (a NULL key stays
 * unbound, which SQL reads as NULL), read into out by read_row; st is left ready
 * for its next use. No row is QERR_NOT_FOUND, set in e as "no such <noun>" naming
 * the field noun when noun is not NULL; what names the statement in a database error.
 */
int sq_get_one(struct store_conn *c, sqlite3_stmt *st, const char *k1, const char *k2,
    sq_read_fn read_row, void *out, const char *what, const char *noun,
    struct qerr *e);

/* Actions and their steps (sqlite_actions.c). */
int sq_action_insert(struct store_conn *c, const struct action *a, struct qerr *e);
int sq_action_get(struct store_conn *c, const char *id, struct action *out,
    struct qerr *e);
int sq_action_list(struct store_conn *c, const struct action_filter *f,
    store_action_cb cb, void *arg, struct qerr *e);
int sq_action_update(struct store_conn *c, const struct action *a, struct qerr *e);
int sq_action_open_ids(struct store_conn *c, char ***ids, size_t *n, struct qerr *e);
int sq_step_claim(struct store_conn *c, const struct step_claim *cl, struct step *out,
    struct qerr *e);
int sq_step_update(struct store_conn *c, const struct step *s, struct qerr *e);
int sq_step_renew(struct store_conn *c, const char *owner, int64_t expires,
    struct qerr *e);
int sq_step_release(struct store_conn *c, const char *owner, struct qerr *e);
int sq_step_next_due(struct store_conn *c, int64_t *when, struct qerr *e);

/* Alerts, their entities and disruption decisions (sqlite_alerts.c). */
int sq_alert_insert(struct store_conn *c, const struct alert *a, struct qerr *e);
int sq_alert_get(struct store_conn *c, const char *id, struct alert *out,
    struct qerr *e);
int sq_alert_find(struct store_conn *c, const char *source, const char *external_id,
    struct alert *out, struct qerr *e);
int sq_alert_list(struct store_conn *c, const struct alert_filter *f, store_alert_cb cb,
    void *arg, struct qerr *e);
int sq_account_find(struct store_conn *c, enum kind_match match, const char *kind,
    const char *value, store_account_cb cb, void *arg, struct qerr *e);
int sq_decision_insert(struct store_conn *c, const struct alert_decision *d,
    struct qerr *e);
int sq_decision_list(struct store_conn *c, const char *alert_id,
    const char *identity_id, store_decision_cb cb, void *arg, struct qerr *e);
int sq_decision_count(struct store_conn *c, const char *outcome, int64_t since, long *n,
    struct qerr *e);

/* Inventory sync and correlation (sqlite_sync.c). */
int sq_account_sync(struct store_conn *c, const struct account *a, int64_t seen_run,
    struct account_sync *out, struct qerr *e);
int sq_account_remove(struct store_conn *c, const char *system, const char *external_id,
    int64_t at, bool *changed, struct qerr *e);
int sq_account_sweep(struct store_conn *c, const char *system, int64_t run, int64_t at,
    long *n, struct qerr *e);
int sq_account_match(struct store_conn *c, const struct corr_probe *p,
    const struct account *self, struct corr_hits *hits, struct qerr *e);
int sq_account_set_link(struct store_conn *c, const char *account_id,
    const struct account_link *l, struct qerr *e);
int sq_link_veto(struct store_conn *c, const char *account_id, const char *identity_id,
    const char *by, int64_t at, bool add, struct qerr *e);
int sq_conflict_list(struct store_conn *c, const char *after_id, int limit,
    store_conflict_cb cb, void *arg, struct qerr *e);
int sq_sync_state_get(struct store_conn *c, const char *system, char **cursor,
    int64_t *full_run, struct qerr *e);
int sq_sync_state_put(struct store_conn *c, const char *system, const char *cursor,
    int64_t full_run, int64_t at, struct qerr *e);

/* Node heartbeats and singleton leases (sqlite_cluster.c). */
int sq_lease_acquire(struct store_conn *c, const char *name, const char *owner,
    int64_t now, int64_t ttl_ms, bool *held, struct qerr *e);
int sq_lease_release(struct store_conn *c, const char *name, const char *owner,
    struct qerr *e);
int sq_node_beat(struct store_conn *c, const char *node_id, int64_t started_at,
    int64_t now, int64_t ttl_ms, struct qerr *e);
int sq_node_list(struct store_conn *c, store_node_cb cb, void *arg, struct qerr *e);
int sq_lease_list(struct store_conn *c, store_lease_cb cb, void *arg, struct qerr *e);

/* Shared budgets and console sessions (sqlite_share.c). */
int sq_rate_get(struct store_conn *c, const char *system, int64_t *level, int64_t *at,
    struct qerr *e);
int sq_rate_put(struct store_conn *c, const char *system, int64_t level, int64_t at,
    struct qerr *e);
int sq_session_insert(struct store_conn *c, const struct store_session *s,
    struct qerr *e);
int sq_session_get(struct store_conn *c, const char *id_hash, struct store_session *out,
    struct qerr *e);
int sq_session_touch(struct store_conn *c, const char *id_hash, int64_t at,
    struct qerr *e);
int sq_session_delete(struct store_conn *c, const char *id_hash, const char *token_id,
    struct qerr *e);
int sq_session_prune(struct store_conn *c, int64_t idle_before, int64_t life_before,
    struct qerr *e);
int sq_session_count(struct store_conn *c, const char *principal_hash, long *all,
    long *own, char **lru, struct qerr *e);
int sq_login_insert(struct store_conn *c, const char *cookie_hash,
    const char *redirect_uri, int64_t created_us, int64_t older_than, long max,
    struct qerr *e);
int sq_login_take(struct store_conn *c, const char *cookie_hash, char **redirect_uri,
    int64_t *created_us, struct qerr *e);

/* The Shared Signals tables (sqlite_ssf.c). */
int sq_ssf_stream_put(struct store_conn *c, const char *id, const char *config,
    int64_t at, struct qerr *e);
int sq_ssf_stream_delete(struct store_conn *c, const char *id, struct qerr *e);
int sq_ssf_stream_list(struct store_conn *c, store_ssf_cb cb, void *arg,
    struct qerr *e);
int sq_ssf_outbox_add(struct store_conn *c, const char *stream_id, const char *jti,
    const char *set, int64_t at, struct qerr *e);
int sq_ssf_outbox_pending(struct store_conn *c, const char *stream_id, int limit,
    store_ssf_cb cb, void *arg, struct qerr *e);
int sq_ssf_outbox_ack(struct store_conn *c, const char *stream_id, const char *jti,
    int64_t at, struct qerr *e);
int sq_ssf_jti_claim(struct store_conn *c, const char *iss, const char *jti,
    int64_t at, bool *fresh, struct qerr *e);

#endif
