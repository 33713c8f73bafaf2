/*
 * What the PostgreSQL backend's files share: the connection, the helpers every
 * statement is run with, and the store_ops functions each file provides for the
 * table in postgres.c (the connection, migrations, transactions, tokens, identities,
 * accounts and the audit log), postgres_actions.c (actions and their steps),
 * postgres_alerts.c (alerts and disruption decisions) and postgres_sync.c (inventory
 * sync and correlation); postgres_cluster.c holds node heartbeats and leases.
 * Nothing outside src/store includes this.
 *
 * Every parameter goes over as text and every column comes back as text: the
 * statements cast where PostgreSQL cannot infer a type. A result is whole in memory
 * once it arrives, so a callback may use the store while the caller walks the rows.
 */
#ifndef QUELL_STORE_POSTGRES_INT_H
#define QUELL_STORE_POSTGRES_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store.h"

#define PG_LIST_MAX	1000
#define PG_ARGS_MAX	24

/* The columns of an account row, and what reads of accounts return (pg_read_account). */
#define PG_ACC_COLS "id, identity_id, system, kind, external_id, sid, dn, username, " \
	"upn, display_name, state, state_read_at, created_at, email, synced"
#define PG_ACC_COLS_X PG_ACC_COLS ", risk, link_rule, linked_by, linked_at"

struct store_conn {
	PGconn *db;
	char *conninfo;		/* to connect again after the server went away */
	bool intx;
	bool listening;		/* LISTENs for work notices (store_wait_work) */
};

/* One statement's parameters as text; NULL is SQL NULL. Numbers are kept in buf. */
struct pg_args {
	const char *v[PG_ARGS_MAX];
	char buf[PG_ARGS_MAX][24];
	int n;
};

void pa_text(struct pg_args *a, const char *s);
void pa_i64(struct pg_args *a, int64_t v);
void pa_bool(struct pg_args *a, bool b);

/* Maps a failed result (NULL: the connection's error) to a quell error naming what
 * failed; returns it. Unique and foreign-key violations are QERR_CONFLICT, lost
 * serialization, deadlocks, timeouts and a lost connection QERR_BUSY. */
int pg_fail(struct store_conn *c, const PGresult *res, const char *what,
    struct qerr *e);
int pg_nomem(struct qerr *e);
/*
 * Runs sql with a's parameters (a may be NULL). With out, *out is the result of a
 * statement that returns rows (caller PQclears); without, *changed (may be NULL)
 * is the number of rows the statement touched.
 */
int pg_query(struct store_conn *c, const char *sql, const struct pg_args *a,
    const char *what, PGresult **out, struct qerr *e);
/* pg_query of a statement that writes: inside a transaction, one that fails undoes
 * itself alone and leaves the transaction usable, as in SQLite. */
int pg_write(struct store_conn *c, const char *sql, const struct pg_args *a,
    const char *what, PGresult **out, struct qerr *e);
int pg_run(struct store_conn *c, const char *sql, const struct pg_args *a,
    const char *what, long *changed, struct qerr *e);
/* pg_run of an UPDATE by key: QERR_NOT_FOUND naming field when no row matched. */
int pg_run_one(struct store_conn *c, const char *sql, const struct pg_args *a,
    const char *what, const char *field, struct qerr *e);
/* Field (row, col) as a new string (caller frees; NULL for SQL NULL); *bad set when
 * out of memory. */
char *pg_dup(const PGresult *res, int row, int col, int *bad);
/* Field (row, col) borrowed from res ("" for NULL). */
const char *pg_str(const PGresult *res, int row, int col);
int64_t pg_i64(const PGresult *res, int row, int col);
bool pg_bool(const PGresult *res, int row, int col);
/* Fills the struct out points to from one row of res (cleared again on failure). */
typedef int (*pg_read_fn)(const PGresult *res, int row, void *out, struct qerr *e);
/*
 * Appends every row sql selects, with key as $1, to the growing array whose pointer
 * items points to (*n elements of size bytes), each read by read_row. On failure the
 * rows read so far stay there, counted in *n, for the caller to clear.
 */
int pg_load_rows(struct store_conn *c, const char *sql, const char *key,
    pg_read_fn read_row, size_t size, void *items, size_t *n, const char *what,
    struct qerr *e);
/*
 * The one row sql selects with a's parameters, read into out by read_row. No row is
 * QERR_NOT_FOUND, set in e as "no such <noun>" naming the field noun when noun is
 * not NULL.
 */
int pg_get_one(struct store_conn *c, const char *sql, const struct pg_args *a,
    pg_read_fn read_row, void *out, const char *what, const char *noun,
    struct qerr *e);
/* A row of PG_ACC_COLS_X (or PG_ACC_COLS) into the struct account out. */
int pg_read_account(const PGresult *res, int row, void *out, struct qerr *e);
/* Wakes the nodes waiting for work (store_wait_work) when this transaction commits. */
int pg_notify_work(struct store_conn *c, struct qerr *e);

/* Actions and their steps (postgres_actions.c). */
int pg_action_insert(struct store_conn *c, const struct action *a, struct qerr *e);
int pg_action_get(struct store_conn *c, const char *id, struct action *out,
    struct qerr *e);
int pg_action_list(struct store_conn *c, const struct action_filter *f,
    store_action_cb cb, void *arg, struct qerr *e);
int pg_action_update(struct store_conn *c, const struct action *a, struct qerr *e);
int pg_action_open_ids(struct store_conn *c, char ***ids, size_t *n, struct qerr *e);
int pg_step_claim(struct store_conn *c, const struct step_claim *cl, struct step *out,
    struct qerr *e);
int pg_step_update(struct store_conn *c, const struct step *s, struct qerr *e);
int pg_step_renew(struct store_conn *c, const char *owner, int64_t expires,
    struct qerr *e);
int pg_step_release(struct store_conn *c, const char *owner, struct qerr *e);
int pg_step_next_due(struct store_conn *c, int64_t *when, struct qerr *e);

/* Alerts, their entities and disruption decisions (postgres_alerts.c). */
int pg_alert_insert(struct store_conn *c, const struct alert *a, struct qerr *e);
int pg_alert_get(struct store_conn *c, const char *id, struct alert *out,
    struct qerr *e);
int pg_alert_find(struct store_conn *c, const char *source, const char *external_id,
    struct alert *out, struct qerr *e);
int pg_alert_list(struct store_conn *c, const struct alert_filter *f, store_alert_cb cb,
    void *arg, struct qerr *e);
int pg_account_find(struct store_conn *c, enum kind_match match, const char *kind,
    const char *value, store_account_cb cb, void *arg, struct qerr *e);
int pg_decision_insert(struct store_conn *c, const struct alert_decision *d,
    struct qerr *e);
int pg_decision_list(struct store_conn *c, const char *alert_id,
    const char *identity_id, store_decision_cb cb, void *arg, struct qerr *e);
int pg_decision_count(struct store_conn *c, const char *outcome, int64_t since, long *n,
    struct qerr *e);

/* Inventory sync and correlation (postgres_sync.c). */
int pg_account_sync(struct store_conn *c, const struct account *a, int64_t seen_run,
    struct account_sync *out, struct qerr *e);
int pg_account_remove(struct store_conn *c, const char *system, const char *external_id,
    int64_t at, bool *changed, struct qerr *e);
int pg_account_sweep(struct store_conn *c, const char *system, int64_t run, int64_t at,
    long *n, struct qerr *e);
int pg_account_match(struct store_conn *c, const struct corr_probe *p,
    const struct account *self, struct corr_hits *hits, struct qerr *e);
int pg_account_set_link(struct store_conn *c, const char *account_id,
    const struct account_link *l, struct qerr *e);
int pg_link_veto(struct store_conn *c, const char *account_id, const char *identity_id,
    const char *by, int64_t at, bool add, struct qerr *e);
int pg_conflict_list(struct store_conn *c, const char *after_id, int limit,
    store_conflict_cb cb, void *arg, struct qerr *e);
int pg_sync_state_get(struct store_conn *c, const char *system, char **cursor,
    int64_t *full_run, struct qerr *e);
int pg_sync_state_put(struct store_conn *c, const char *system, const char *cursor,
    int64_t full_run, int64_t at, struct qerr *e);

/* Node heartbeats and singleton leases (postgres_cluster.c). */
int pg_lease_acquire(struct store_conn *c, const char *name, const char *owner,
    int64_t now, int64_t ttl_ms, bool *held, struct qerr *e);
int pg_lease_release(struct store_conn *c, const char *name, const char *owner,
    struct qerr *e);
int pg_node_beat(struct store_conn *c, const char *node_id, int64_t started_at,
    int64_t now, int64_t ttl_ms, struct qerr *e);
int pg_node_list(struct store_conn *c, store_node_cb cb, void *arg, struct qerr *e);
int pg_lease_list(struct store_conn *c, store_lease_cb cb, void *arg, struct qerr *e);

/* Advanced hunting (postgres_hunt.c): store_ops' hunt. */
int pg_hunt(const char *location, const struct hunt_query *q, char **out,
    struct qerr *e);

/* Shared budgets and console sessions (postgres_share.c). */
int pg_rate_get(struct store_conn *c, const char *system, int64_t *level, int64_t *at,
    struct qerr *e);
int pg_rate_put(struct store_conn *c, const char *system, int64_t level, int64_t at,
    struct qerr *e);
int pg_session_insert(struct store_conn *c, const struct store_session *s,
    struct qerr *e);
int pg_session_get(struct store_conn *c, const char *id_hash, struct store_session *out,
    struct qerr *e);
int pg_session_touch(struct store_conn *c, const char *id_hash, int64_t at,
    struct qerr *e);
int pg_session_delete(struct store_conn *c, const char *id_hash, const char *token_id,
    struct qerr *e);
int pg_session_prune(struct store_conn *c, int64_t idle_before, int64_t life_before,
    struct qerr *e);
int pg_session_count(struct store_conn *c, const char *principal_hash, long *all,
    long *own, char **lru, struct qerr *e);
int pg_login_insert(struct store_conn *c, const char *cookie_hash,
    const char *redirect_uri, int64_t created_us, int64_t older_than, long max,
    struct qerr *e);
int pg_login_take(struct store_conn *c, const char *cookie_hash, char **redirect_uri,
    int64_t *created_us, struct qerr *e);

/* The Shared Signals tables (postgres_ssf.c). */
int pg_ssf_stream_put(struct store_conn *c, const char *id, const char *config,
    int64_t at, struct qerr *e);
int pg_ssf_stream_delete(struct store_conn *c, const char *id, struct qerr *e);
int pg_ssf_stream_list(struct store_conn *c, store_ssf_cb cb, void *arg,
    struct qerr *e);
int pg_ssf_outbox_add(struct store_conn *c, const char *stream_id, const char *jti,
    const char *set, int64_t at, struct qerr *e);
int pg_ssf_outbox_pending(struct store_conn *c, const char *stream_id, int limit,
    store_ssf_cb cb, void *arg, struct qerr *e);
int pg_ssf_outbox_ack(struct store_conn *c, const char *stream_id, const char *jti,
    int64_t at, struct qerr *e);
int pg_ssf_jti_claim(struct store_conn *c, const char *iss, const char *jti,
    int64_t at, bool *fresh, struct qerr *e);

#endif
