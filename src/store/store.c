/*
 * The backend-independent half of the store: a fixed pool of connections handed out
 * one per transaction, and the store_* wrappers that forward to the backend's ops.
 * Write operations are refused in a read transaction here, once, so that no backend
 * can be asked to upgrade a read transaction (which deadlocks under SQLite WAL).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/audit.h"
#include "core/clock.h"
#include "store.h"

struct store {
	const struct store_ops *ops;
	char *location;		/* for connections of their own (store_hunt) */
	struct store_conn **conns;	/* all connections, for close */
	struct store_conn **idle;	/* stack of free connections */
	int nconn;
	int nidle;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* store_audit_generation and its waiters; guarded by mu. */
	uint64_t audit_gen;
	pthread_cond_t audit_cv;
	bool kicked;
	_Atomic uint64_t write_commits;	/* store_write_commits */
	struct store_conn *listener;	/* store_wait_work's own, opened on first use */
};

struct store_tx {
	struct store *st;
	struct store_conn *conn;
	bool write;
	bool audited;		/* appended to the audit log: wake its readers on commit */
};

static struct store_conn *
pool_take(struct store *st)
{
	struct store_conn *c;

	pthread_mutex_lock(&st->mu);
	while (st->nidle == 0)
		pthread_cond_wait(&st->cv, &st->mu);
	c = st->idle[--st->nidle];
	pthread_mutex_unlock(&st->mu);
	return c;
}

static void
pool_give(struct store *st, struct store_conn *c)
{
	pthread_mutex_lock(&st->mu);
	st->idle[st->nidle++] = c;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

int
store_open(const struct store_ops *ops, const char *location, int nconn,
    struct store **out, struct qerr *e)
{
	struct store *st = NULL;
	int r = QERR_INTERNAL, i;

	*out = NULL;
	if (ops == NULL || ops->open == NULL || ops->close == NULL ||
	    ops->begin == NULL || ops->commit == NULL || ops->rollback == NULL)
		return qerr_set(e, QERR_INTERNAL, NULL, "store: incomplete backend");
	if (location == NULL || location[0] == '\0')
		return qerr_set(e, QERR_INVALID, "path", "store: no location given");
	if (nconn < 1 || nconn > 1024)
		return qerr_set(e, QERR_INVALID, "connections",
		    "store: pool size %d is not within 1..1024", nconn);
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "store: out of memory");
	st->ops = ops;
	if ((st->location = strdup(location)) == NULL) {
		free(st);
		return qerr_set(e, QERR_NOMEM, NULL, "store: out of memory");
	}
	if (pthread_mutex_init(&st->mu, NULL) != 0) {
		free(st->location);
		free(st);
		return qerr_set(e, QERR_INTERNAL, NULL, "store: mutex init failed");
	}
	if (pthread_cond_init(&st->cv, NULL) != 0) {
		pthread_mutex_destroy(&st->mu);
		free(st->location);
		free(st);
		return qerr_set(e, QERR_INTERNAL, NULL, "store: condvar init failed");
	}
	if (pthread_cond_init(&st->audit_cv, NULL) != 0) {
		pthread_cond_destroy(&st->cv);
		pthread_mutex_destroy(&st->mu);
		free(st->location);
		free(st);
		return qerr_set(e, QERR_INTERNAL, NULL, "store: condvar init failed");
	}
	st->conns = calloc((size_t)nconn, sizeof(*st->conns));
	st->idle = calloc((size_t)nconn, sizeof(*st->idle));
	if (st->conns == NULL || st->idle == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "store: out of memory");
		goto out;
	}
	/* Migrate on the first connection before opening the others, so that none of
	 * them ever sees a half-migrated or too-new schema. */
	for (i = 0; i < nconn; i++) {
		if ((r = ops->open(location, &st->conns[i], e)) != 0)
			goto out;
		st->nconn++;
		if (i == 0 && ops->migrate != NULL &&
		    (r = ops->migrate(st->conns[0], e)) != 0)
			goto out;
		st->idle[st->nidle++] = st->conns[i];
	}
	*out = st;
	st = NULL;
	r = 0;
out:
	store_close(st);
	return r;
}

void
store_close(struct store *st)
{
	int i;

	if (st == NULL)
		return;
	for (i = 0; i < st->nconn; i++)
		st->ops->close(st->conns[i]);
	if (st->listener != NULL)
		st->ops->close(st->listener);
	free(st->idle);
	free(st->conns);
	pthread_cond_destroy(&st->audit_cv);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st->location);
	free(st);
}

int
store_tx_begin(struct store *st, bool write, struct store_tx **out, struct qerr *e)
{
	struct store_tx *tx;
	int r;

	*out = NULL;
	if ((tx = calloc(1, sizeof(*tx))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "store: out of memory");
	tx->st = st;
	tx->write = write;
	tx->conn = pool_take(st);
	if ((r = st->ops->begin(tx->conn, write, e)) != 0) {
		pool_give(st, tx->conn);
		free(tx);
		return r;
	}
	*out = tx;
	return 0;
}

int
store_tx_commit(struct store_tx *tx, struct qerr *e)
{
	int r;

	if (tx == NULL)
		return qerr_set(e, QERR_INTERNAL, NULL, "store: commit without transaction");
	/* A failed commit may leave the transaction open; end it before the connection
	 * goes back to the pool. */
	if ((r = tx->st->ops->commit(tx->conn, e)) != 0)
		tx->st->ops->rollback(tx->conn);
	else if (tx->write)
		atomic_fetch_add(&tx->st->write_commits, 1);
	pool_give(tx->st, tx->conn);
	if (r == 0 && tx->audited) {
		pthread_mutex_lock(&tx->st->mu);
		tx->st->audit_gen++;
		pthread_cond_broadcast(&tx->st->audit_cv);
		pthread_mutex_unlock(&tx->st->mu);
	}
	free(tx);
	return r;
}

uint64_t
store_write_commits(struct store *st)
{
	return atomic_load(&st->write_commits);
}

uint64_t
store_audit_generation(struct store *st)
{
	uint64_t g;

	pthread_mutex_lock(&st->mu);
	g = st->audit_gen;
	pthread_mutex_unlock(&st->mu);
	return g;
}

void
store_audit_wait(struct store *st, uint64_t seen, const _Atomic bool *stop,
    int timeout_ms)
{
	struct timespec dl;
	int rc = 0;

	clock_deadline(CLOCK_REALTIME, timeout_ms, &dl);
	pthread_mutex_lock(&st->mu);
	/* *stop is read under mu, and store_audit_kick takes mu after it is set, so a
	 * stop between the check and the wait is never missed. */
	while (st->audit_gen == seen && !st->kicked && !atomic_load(stop) &&
	    rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&st->audit_cv, &st->mu, &dl);
	st->kicked = false;
	pthread_mutex_unlock(&st->mu);
}

void
store_audit_kick(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	st->kicked = true;
	pthread_cond_broadcast(&st->audit_cv);
	pthread_mutex_unlock(&st->mu);
}

int
store_wait_work(struct store *st, int timeout_ms, bool *woken, struct qerr *e)
{
	int r;

	*woken = false;
	if (st->ops->wait_work == NULL)
		return qerr_set(e, QERR_UNSUPPORTED, NULL, "store %s: waiting for work "
		    "is not supported", st->ops->kind);
	if (st->listener == NULL &&
	    (r = st->ops->open(st->location, &st->listener, e)) != 0)
		return r;
	return st->ops->wait_work(st->listener, timeout_ms, woken, e);
}

void
store_tx_rollback(struct store_tx *tx)
{
	if (tx == NULL)
		return;
	tx->st->ops->rollback(tx->conn);
	pool_give(tx->st, tx->conn);
	free(tx);
}

static int
unsupported(const struct store_tx *tx, const char *what, struct qerr *e)
{
	return qerr_set(e, QERR_UNSUPPORTED, NULL, "store %s: %s is not supported",
	    tx->st->ops->kind, what);
}

static int
need_write(const struct store_tx *tx, const char *what, struct qerr *e)
{
	if (tx->write)
		return 0;
	return qerr_set(e, QERR_INTERNAL, NULL, "store: %s in a read-only transaction",
	    what);
}

void
token_info_clear(struct token_info *t)
{
	if (t == NULL)
		return;
	principal_clear(&t->p);
	free(t->revoked_by);
	memset(t, 0, sizeof(*t));
}

int
store_token_insert(struct store_tx *tx, const struct token_info *t,
    const unsigned char hash[32], struct qerr *e)
{
	int r;

	if (tx->st->ops->token_insert == NULL)
		return unsupported(tx, "token_insert", e);
	if ((r = need_write(tx, "token_insert", e)) != 0)
		return r;
	return tx->st->ops->token_insert(tx->conn, t, hash, e);
}

int
store_token_get(struct store_tx *tx, const char *id, struct token_info *t,
    unsigned char hash[32], struct qerr *e)
{
	if (tx->st->ops->token_get == NULL)
		return unsupported(tx, "token_get", e);
	return tx->st->ops->token_get(tx->conn, id, t, hash, e);
}

int
store_token_list(struct store_tx *tx, const char *after_id, int limit,
    store_token_cb cb, void *arg, struct qerr *e)
{
	if (tx->st->ops->token_list == NULL)
		return unsupported(tx, "token_list", e);
	if (limit < 1 || limit > 1000)
		return qerr_set(e, QERR_INVALID, "limit", "limit %d is not within 1..1000",
		    limit);
	return tx->st->ops->token_list(tx->conn, after_id, limit, cb, arg, e);
}

int
store_token_revoke(struct store_tx *tx, const char *id, int64_t at, const char *by,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->token_revoke == NULL)
		return unsupported(tx, "token_revoke", e);
	if ((r = need_write(tx, "token_revoke", e)) != 0)
		return r;
	return tx->st->ops->token_revoke(tx->conn, id, at, by, e);
}

int
store_token_state(struct store_tx *tx, const char *id, int64_t *revoked_at,
    int64_t *last_used_at, struct qerr *e)
{
	unsigned char hash[32];
	struct token_info t;
	int r;

	if (tx->st->ops->token_state != NULL)
		return tx->st->ops->token_state(tx->conn, id, revoked_at, last_used_at, e);
	if ((r = store_token_get(tx, id, &t, hash, e)) != 0)
		return r;
	*revoked_at = t.revoked_at;
	*last_used_at = t.last_used_at;
	token_info_clear(&t);
	return 0;
}

int
store_token_touch(struct store_tx *tx, const char *id, int64_t at, int64_t min_gap_ms,
    bool *written, struct qerr *e)
{
	int r;

	*written = false;
	if (tx->st->ops->token_touch == NULL)
		return unsupported(tx, "token_touch", e);
	if ((r = need_write(tx, "token_touch", e)) != 0)
		return r;
	return tx->st->ops->token_touch(tx->conn, id, at, min_gap_ms, written, e);
}

int
store_identity_insert(struct store_tx *tx, const struct identity *idn, struct qerr *e)
{
	int r;

	if (tx->st->ops->identity_insert == NULL)
		return unsupported(tx, "identity_insert", e);
	if ((r = need_write(tx, "identity_insert", e)) != 0)
		return r;
	return tx->st->ops->identity_insert(tx->conn, idn, e);
}

int
store_identity_update(struct store_tx *tx, const struct identity *idn, struct qerr *e)
{
	int r;

	if (tx->st->ops->identity_update == NULL)
		return unsupported(tx, "identity_update", e);
	if ((r = need_write(tx, "identity_update", e)) != 0)
		return r;
	return tx->st->ops->identity_update(tx->conn, idn, e);
}

int
store_identity_get(struct store_tx *tx, const char *id, struct identity *out,
    struct qerr *e)
{
	if (tx->st->ops->identity_get == NULL)
		return unsupported(tx, "identity_get", e);
	return tx->st->ops->identity_get(tx->conn, id, out, e);
}

int
store_identity_head(struct store_tx *tx, const char *id, struct identity *out,
    struct qerr *e)
{
	if (tx->st->ops->identity_head == NULL)
		return store_identity_get(tx, id, out, e);
	return tx->st->ops->identity_head(tx->conn, id, out, e);
}

int
store_identity_list(struct store_tx *tx, const struct identity_filter *f,
    store_identity_cb cb, void *arg, struct qerr *e)
{
	if (tx->st->ops->identity_list == NULL)
		return unsupported(tx, "identity_list", e);
	return tx->st->ops->identity_list(tx->conn, f, cb, arg, e);
}

int
store_account_upsert(struct store_tx *tx, struct account *a, struct qerr *e)
{
	int r;

	if (tx->st->ops->account_upsert == NULL)
		return unsupported(tx, "account_upsert", e);
	if ((r = need_write(tx, "account_upsert", e)) != 0)
		return r;
	return tx->st->ops->account_upsert(tx->conn, a, e);
}

int
store_account_get(struct store_tx *tx, const char *id, struct account *out,
    struct qerr *e)
{
	if (tx->st->ops->account_get == NULL)
		return unsupported(tx, "account_get", e);
	return tx->st->ops->account_get(tx->conn, id, out, e);
}

int
store_account_link(struct store_tx *tx, const char *account_id,
    const char *identity_id, struct qerr *e)
{
	int r;

	if (tx->st->ops->account_link == NULL)
		return unsupported(tx, "account_link", e);
	if ((r = need_write(tx, "account_link", e)) != 0)
		return r;
	return tx->st->ops->account_link(tx->conn, account_id, identity_id, e);
}

int
store_account_set_state(struct store_tx *tx, const char *account_id,
    const char *state, int64_t read_at, struct qerr *e)
{
	int r;

	if (tx->st->ops->account_set_state == NULL)
		return unsupported(tx, "account_set_state", e);
	if ((r = need_write(tx, "account_set_state", e)) != 0)
		return r;
	return tx->st->ops->account_set_state(tx->conn, account_id, state, read_at, e);
}

int
store_action_insert(struct store_tx *tx, const struct action *a, struct qerr *e)
{
	int r;

	if (tx->st->ops->action_insert == NULL)
		return unsupported(tx, "action_insert", e);
	if ((r = need_write(tx, "action_insert", e)) != 0)
		return r;
	return tx->st->ops->action_insert(tx->conn, a, e);
}

int
store_action_get(struct store_tx *tx, const char *id, struct action *out,
    struct qerr *e)
{
	if (tx->st->ops->action_get == NULL)
		return unsupported(tx, "action_get", e);
	return tx->st->ops->action_get(tx->conn, id, out, e);
}

int
store_action_list(struct store_tx *tx, const struct action_filter *f,
    store_action_cb cb, void *arg, struct qerr *e)
{
	if (tx->st->ops->action_list == NULL)
		return unsupported(tx, "action_list", e);
	return tx->st->ops->action_list(tx->conn, f, cb, arg, e);
}

int
store_action_update(struct store_tx *tx, const struct action *a, struct qerr *e)
{
	int r;

	if (tx->st->ops->action_update == NULL)
		return unsupported(tx, "action_update", e);
	if ((r = need_write(tx, "action_update", e)) != 0)
		return r;
	return tx->st->ops->action_update(tx->conn, a, e);
}

int
store_action_open_ids(struct store_tx *tx, char ***ids, size_t *n, struct qerr *e)
{
	if (tx->st->ops->action_open_ids == NULL)
		return unsupported(tx, "action_open_ids", e);
	return tx->st->ops->action_open_ids(tx->conn, ids, n, e);
}

int
store_step_claim(struct store_tx *tx, const struct step_claim *cl, struct step *out,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->step_claim == NULL)
		return unsupported(tx, "step_claim", e);
	if ((r = need_write(tx, "step_claim", e)) != 0)
		return r;
	return tx->st->ops->step_claim(tx->conn, cl, out, e);
}

int
store_step_update(struct store_tx *tx, const struct step *s, struct qerr *e)
{
	int r;

	if (tx->st->ops->step_update == NULL)
		return unsupported(tx, "step_update", e);
	if ((r = need_write(tx, "step_update", e)) != 0)
		return r;
	return tx->st->ops->step_update(tx->conn, s, e);
}

int
store_step_renew(struct store_tx *tx, const char *owner, int64_t expires,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->step_renew == NULL)
		return unsupported(tx, "step_renew", e);
	if ((r = need_write(tx, "step_renew", e)) != 0)
		return r;
	return tx->st->ops->step_renew(tx->conn, owner, expires, e);
}

int
store_step_release(struct store_tx *tx, const char *owner, struct qerr *e)
{
	int r;

	if (tx->st->ops->step_release == NULL)
		return unsupported(tx, "step_release", e);
	if ((r = need_write(tx, "step_release", e)) != 0)
		return r;
	return tx->st->ops->step_release(tx->conn, owner, e);
}

int
store_step_next_due(struct store_tx *tx, int64_t *when, struct qerr *e)
{
	if (tx->st->ops->step_next_due == NULL)
		return unsupported(tx, "step_next_due", e);
	return tx->st->ops->step_next_due(tx->conn, when, e);
}

int
store_audit_append(struct store_tx *tx, struct audit_entry *ent, struct qerr *e)
{
	int r;

	if (tx->st->ops->audit_append == NULL)
		return unsupported(tx, "audit_append", e);
	if ((r = need_write(tx, "audit_append", e)) != 0)
		return r;
	if ((r = tx->st->ops->audit_append(tx->conn, ent, e)) == 0)
		tx->audited = true;
	return r;
}

int
store_audit_list(struct store_tx *tx, int64_t after_seq, int limit,
    store_audit_cb cb, void *arg, struct qerr *e)
{
	if (tx->st->ops->audit_list == NULL)
		return unsupported(tx, "audit_list", e);
	return tx->st->ops->audit_list(tx->conn, after_seq, limit, cb, arg, e);
}

int
store_audit_last_seq(struct store_tx *tx, int64_t *seq, struct qerr *e)
{
	*seq = 0;
	if (tx->st->ops->audit_last_seq == NULL)
		return unsupported(tx, "audit_last_seq", e);
	return tx->st->ops->audit_last_seq(tx->conn, seq, e);
}

int
store_siem_cursor_get(struct store_tx *tx, const char *name, int64_t *seq,
    struct qerr *e)
{
	*seq = 0;
	if (tx->st->ops->siem_cursor_get == NULL)
		return unsupported(tx, "siem_cursor_get", e);
	return tx->st->ops->siem_cursor_get(tx->conn, name, seq, e);
}

int
store_siem_cursor_put(struct store_tx *tx, const char *name, int64_t seq, int64_t at,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->siem_cursor_put == NULL)
		return unsupported(tx, "siem_cursor_put", e);
	if ((r = need_write(tx, "siem_cursor_put", e)) != 0)
		return r;
	return tx->st->ops->siem_cursor_put(tx->conn, name, seq, at, e);
}

bool
store_shared(const struct store *st)
{
	return st->ops->wait_work != NULL;
}

int
store_lease_acquire(struct store_tx *tx, const char *name, const char *owner,
    int64_t now, int64_t ttl_ms, bool *held, struct qerr *e)
{
	int r;

	*held = false;
	if (tx->st->ops->lease_acquire == NULL)
		return unsupported(tx, "lease_acquire", e);
	if ((r = need_write(tx, "lease_acquire", e)) != 0)
		return r;
	return tx->st->ops->lease_acquire(tx->conn, name, owner, now, ttl_ms, held, e);
}

int
store_lease_release(struct store_tx *tx, const char *name, const char *owner,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->lease_release == NULL)
		return unsupported(tx, "lease_release", e);
	if ((r = need_write(tx, "lease_release", e)) != 0)
		return r;
	return tx->st->ops->lease_release(tx->conn, name, owner, e);
}

int
store_node_beat(struct store_tx *tx, const char *node_id, int64_t started_at,
    int64_t now, int64_t ttl_ms, struct qerr *e)
{
	int r;

	if (tx->st->ops->node_beat == NULL)
		return unsupported(tx, "node_beat", e);
	if ((r = need_write(tx, "node_beat", e)) != 0)
		return r;
	return tx->st->ops->node_beat(tx->conn, node_id, started_at, now, ttl_ms, e);
}

int
store_node_list(struct store_tx *tx, store_node_cb cb, void *arg, struct qerr *e)
{
	if (tx->st->ops->node_list == NULL)
		return unsupported(tx, "node_list", e);
	return tx->st->ops->node_list(tx->conn, cb, arg, e);
}

#define SSF_READ(op, ...) \
	(tx->st->ops->op == NULL ? unsupported(tx, #op, e) : \
	tx->st->ops->op(tx->conn, __VA_ARGS__))
#define SSF_WRITE(op, ...) \
	(tx->st->ops->op == NULL ? unsupported(tx, #op, e) : \
	(r = need_write(tx, #op, e)) != 0 ? r : tx->st->ops->op(tx->conn, __VA_ARGS__))

int
store_ssf_stream_put(struct store_tx *tx, const char *id, const char *config,
    int64_t at, struct qerr *e)
{
	int r;

	return SSF_WRITE(ssf_stream_put, id, config, at, e);
}

int
store_ssf_stream_delete(struct store_tx *tx, const char *id, struct qerr *e)
{
	int r;

	return SSF_WRITE(ssf_stream_delete, id, e);
}

int
store_ssf_stream_list(struct store_tx *tx, store_ssf_cb cb, void *arg, struct qerr *e)
{
	return SSF_READ(ssf_stream_list, cb, arg, e);
}

int
store_ssf_outbox_add(struct store_tx *tx, const char *stream_id, const char *jti,
    const char *set, int64_t at, struct qerr *e)
{
	int r;

	return SSF_WRITE(ssf_outbox_add, stream_id, jti, set, at, e);
}

int
store_ssf_outbox_pending(struct store_tx *tx, const char *stream_id, int limit,
    store_ssf_cb cb, void *arg, struct qerr *e)
{
	return SSF_READ(ssf_outbox_pending, stream_id, limit, cb, arg, e);
}

int
store_ssf_outbox_ack(struct store_tx *tx, const char *stream_id, const char *jti,
    int64_t at, struct qerr *e)
{
	int r;

	return SSF_WRITE(ssf_outbox_ack, stream_id, jti, at, e);
}

int
store_ssf_jti_claim(struct store_tx *tx, const char *iss, const char *jti, int64_t at,
    bool *fresh, struct qerr *e)
{
	int r;

	*fresh = false;
	return SSF_WRITE(ssf_jti_claim, iss, jti, at, fresh, e);
}

int
store_lease_list(struct store_tx *tx, store_lease_cb cb, void *arg, struct qerr *e)
{
	if (tx->st->ops->lease_list == NULL)
		return unsupported(tx, "lease_list", e);
	return tx->st->ops->lease_list(tx->conn, cb, arg, e);
}

/* A bucket is counted in thousandths of a request, so that a slow rate still fills
 * it a little at every look. */
#define RATE_ONE 1000

int
store_rate_take(struct store_tx *tx, const char *system, double rate, long burst,
    int64_t now, int64_t *wait_ms, struct qerr *e)
{
	const struct store_ops *o = tx->st->ops;
	int64_t level, at, full = (int64_t)burst * RATE_ONE;
	double filled;
	int r;

	*wait_ms = 0;
	if (o->rate_get == NULL || o->rate_put == NULL)
		return unsupported(tx, "rate_take", e);
	if ((r = need_write(tx, "rate_take", e)) != 0)
		return r;
	if ((r = o->rate_get(tx->conn, system, &level, &at, e)) == QERR_NOT_FOUND) {
		level = full;
		at = now;
	} else if (r != 0)
		return r;
	/* A node whose clock is behind the last filler's adds nothing, takes nothing
	 * back. */
	if (now > at) {
		filled = (double)level + (double)(now - at) * rate;
		level = filled >= (double)full ? full : (int64_t)filled;
		at = now;
	}
	if (level > full)
		level = full;
	if (level >= RATE_ONE)
		level -= RATE_ONE;
	else
		*wait_ms = (int64_t)((double)(RATE_ONE - level) / rate) + 1;
	return o->rate_put(tx->conn, system, level, at, e);
}

void
store_session_clear(struct store_session *s)
{
	if (s == NULL)
		return;
	free(s->id_hash);
	free(s->principal_hash);
	free(s->token_id);
	free(s->token_hash);
	free(s->claims);
	memset(s, 0, sizeof(*s));
}

int
store_session_insert(struct store_tx *tx, const struct store_session *s,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->session_insert == NULL)
		return unsupported(tx, "session_insert", e);
	if ((r = need_write(tx, "session_insert", e)) != 0)
		return r;
	return tx->st->ops->session_insert(tx->conn, s, e);
}

int
store_session_get(struct store_tx *tx, const char *id_hash, struct store_session *out,
    struct qerr *e)
{
	memset(out, 0, sizeof(*out));
	if (tx->st->ops->session_get == NULL)
		return unsupported(tx, "session_get", e);
	return tx->st->ops->session_get(tx->conn, id_hash, out, e);
}

int
store_session_touch(struct store_tx *tx, const char *id_hash, int64_t at,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->session_touch == NULL)
		return unsupported(tx, "session_touch", e);
	if ((r = need_write(tx, "session_touch", e)) != 0)
		return r;
	return tx->st->ops->session_touch(tx->conn, id_hash, at, e);
}

int
store_session_delete(struct store_tx *tx, const char *id_hash, const char *token_id,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->session_delete == NULL)
		return unsupported(tx, "session_delete", e);
	if ((r = need_write(tx, "session_delete", e)) != 0)
		return r;
	if ((id_hash == NULL) == (token_id == NULL))
		return qerr_set(e, QERR_INTERNAL, NULL, "store: session_delete takes one "
		    "of id_hash and token_id");
	return tx->st->ops->session_delete(tx->conn, id_hash, token_id, e);
}

int
store_session_prune(struct store_tx *tx, int64_t idle_before, int64_t life_before,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->session_prune == NULL)
		return unsupported(tx, "session_prune", e);
	if ((r = need_write(tx, "session_prune", e)) != 0)
		return r;
	return tx->st->ops->session_prune(tx->conn, idle_before, life_before, e);
}

int
store_login_insert(struct store_tx *tx, const char *cookie_hash,
    const char *redirect_uri, int64_t created_us, int64_t older_than, long max,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->login_insert == NULL)
		return unsupported(tx, "login_insert", e);
	if ((r = need_write(tx, "login_insert", e)) != 0)
		return r;
	return tx->st->ops->login_insert(tx->conn, cookie_hash, redirect_uri, created_us,
	    older_than, max, e);
}

int
store_login_take(struct store_tx *tx, const char *cookie_hash, char **redirect_uri,
    int64_t *created_us, struct qerr *e)
{
	int r;

	*redirect_uri = NULL;
	*created_us = 0;
	if (tx->st->ops->login_take == NULL)
		return unsupported(tx, "login_take", e);
	if ((r = need_write(tx, "login_take", e)) != 0)
		return r;
	return tx->st->ops->login_take(tx->conn, cookie_hash, redirect_uri, created_us,
	    e);
}

int
store_session_count(struct store_tx *tx, const char *principal_hash, long *all,
    long *own, char **lru, struct qerr *e)
{
	*all = *own = 0;
	*lru = NULL;
	if (tx->st->ops->session_count == NULL)
		return unsupported(tx, "session_count", e);
	return tx->st->ops->session_count(tx->conn, principal_hash, all, own, lru, e);
}

int
store_account_sync(struct store_tx *tx, const struct account *a, int64_t seen_run,
    struct account_sync *out, struct qerr *e)
{
	int r;

	memset(out, 0, sizeof(*out));
	if (tx->st->ops->account_sync == NULL)
		return unsupported(tx, "account_sync", e);
	if ((r = need_write(tx, "account_sync", e)) != 0)
		return r;
	return tx->st->ops->account_sync(tx->conn, a, seen_run, out, e);
}

int
store_account_remove(struct store_tx *tx, const char *system, const char *external_id,
    int64_t at, bool *changed, struct qerr *e)
{
	int r;

	*changed = false;
	if (tx->st->ops->account_remove == NULL)
		return unsupported(tx, "account_remove", e);
	if ((r = need_write(tx, "account_remove", e)) != 0)
		return r;
	return tx->st->ops->account_remove(tx->conn, system, external_id, at, changed, e);
}

int
store_account_sweep(struct store_tx *tx, const char *system, int64_t run, int64_t at,
    long *n, struct qerr *e)
{
	int r;

	*n = 0;
	if (tx->st->ops->account_sweep == NULL)
		return unsupported(tx, "account_sweep", e);
	if ((r = need_write(tx, "account_sweep", e)) != 0)
		return r;
	return tx->st->ops->account_sweep(tx->conn, system, run, at, n, e);
}

int
store_account_match(struct store_tx *tx, const struct corr_probe *p,
    const struct account *self, struct corr_hits *hits, struct qerr *e)
{
	if (tx->st->ops->account_match == NULL)
		return unsupported(tx, "account_match", e);
	return tx->st->ops->account_match(tx->conn, p, self, hits, e);
}

int
store_account_set_link(struct store_tx *tx, const char *account_id,
    const struct account_link *l, struct qerr *e)
{
	int r;

	if (tx->st->ops->account_set_link == NULL)
		return unsupported(tx, "account_set_link", e);
	if ((r = need_write(tx, "account_set_link", e)) != 0)
		return r;
	return tx->st->ops->account_set_link(tx->conn, account_id, l, e);
}

int
store_link_veto(struct store_tx *tx, const char *account_id, const char *identity_id,
    const char *by, int64_t at, bool add, struct qerr *e)
{
	int r;

	if (tx->st->ops->link_veto == NULL)
		return unsupported(tx, "link_veto", e);
	if ((r = need_write(tx, "link_veto", e)) != 0)
		return r;
	return tx->st->ops->link_veto(tx->conn, account_id, identity_id, by, at, add, e);
}

int
store_conflict_list(struct store_tx *tx, const char *after_id, int limit,
    store_conflict_cb cb, void *arg, struct qerr *e)
{
	if (tx->st->ops->conflict_list == NULL)
		return unsupported(tx, "conflict_list", e);
	return tx->st->ops->conflict_list(tx->conn, after_id, limit, cb, arg, e);
}

int
store_sync_state_get(struct store_tx *tx, const char *system, char **cursor,
    int64_t *full_run, struct qerr *e)
{
	*cursor = NULL;
	*full_run = 0;
	if (tx->st->ops->sync_state_get == NULL)
		return unsupported(tx, "sync_state_get", e);
	return tx->st->ops->sync_state_get(tx->conn, system, cursor, full_run, e);
}

int
store_sync_state_put(struct store_tx *tx, const char *system, const char *cursor,
    int64_t full_run, int64_t at, struct qerr *e)
{
	int r;

	if (tx->st->ops->sync_state_put == NULL)
		return unsupported(tx, "sync_state_put", e);
	if ((r = need_write(tx, "sync_state_put", e)) != 0)
		return r;
	return tx->st->ops->sync_state_put(tx->conn, system, cursor, full_run, at, e);
}

int
store_alert_insert(struct store_tx *tx, const struct alert *a, struct qerr *e)
{
	int r;

	if (tx->st->ops->alert_insert == NULL)
		return unsupported(tx, "alert_insert", e);
	if ((r = need_write(tx, "alert_insert", e)) != 0)
		return r;
	return tx->st->ops->alert_insert(tx->conn, a, e);
}

int
store_alert_get(struct store_tx *tx, const char *id, struct alert *out, struct qerr *e)
{
	if (tx->st->ops->alert_get == NULL)
		return unsupported(tx, "alert_get", e);
	return tx->st->ops->alert_get(tx->conn, id, out, e);
}

int
store_alert_find(struct store_tx *tx, const char *source, const char *external_id,
    struct alert *out, struct qerr *e)
{
	if (tx->st->ops->alert_find == NULL)
		return unsupported(tx, "alert_find", e);
	return tx->st->ops->alert_find(tx->conn, source, external_id, out, e);
}

int
store_alert_list(struct store_tx *tx, const struct alert_filter *f, store_alert_cb cb,
    void *arg, struct qerr *e)
{
	if (tx->st->ops->alert_list == NULL)
		return unsupported(tx, "alert_list", e);
	return tx->st->ops->alert_list(tx->conn, f, cb, arg, e);
}

int
store_account_find(struct store_tx *tx, enum kind_match match, const char *kind,
    const char *value, store_account_cb cb, void *arg, struct qerr *e)
{
	if (tx->st->ops->account_find == NULL)
		return unsupported(tx, "account_find", e);
	return tx->st->ops->account_find(tx->conn, match, kind, value, cb, arg, e);
}

int
store_decision_insert(struct store_tx *tx, const struct alert_decision *d,
    struct qerr *e)
{
	int r;

	if (tx->st->ops->decision_insert == NULL)
		return unsupported(tx, "decision_insert", e);
	if ((r = need_write(tx, "decision_insert", e)) != 0)
		return r;
	return tx->st->ops->decision_insert(tx->conn, d, e);
}

int
store_decision_list(struct store_tx *tx, const char *alert_id,
    const char *identity_id, store_decision_cb cb, void *arg, struct qerr *e)
{
	if (tx->st->ops->decision_list == NULL)
		return unsupported(tx, "decision_list", e);
	return tx->st->ops->decision_list(tx->conn, alert_id, identity_id, cb, arg, e);
}

int
store_decision_count(struct store_tx *tx, const char *outcome, int64_t since, long *n,
    struct qerr *e)
{
	if (tx->st->ops->decision_count == NULL)
		return unsupported(tx, "decision_count", e);
	return tx->st->ops->decision_count(tx->conn, outcome, since, n, e);
}

int
store_hunt(struct store *st, const struct hunt_query *q, char **out, struct qerr *e)
{
	*out = NULL;
	if (st->ops->hunt == NULL)
		return qerr_set(e, QERR_UNSUPPORTED, NULL, "store %s: advanced hunting is "
		    "not supported", st->ops->kind);
	return st->ops->hunt(st->location, q, out, e);
}

struct verify {
	char prev[65];
	int64_t n;
	int64_t broken;
	struct qerr *why;
};

static int
verify_entry(const struct audit_entry *ent, void *arg)
{
	struct verify *v = arg;
	int r;

	/* Only a mismatch is a broken chain; running out of memory is an error. */
	if ((r = audit_check(ent, v->prev, v->n + 1, v->why)) != 0) {
		if (r == QERR_CONFLICT)
			v->broken = v->n + 1;
		return r;
	}
	memcpy(v->prev, ent->hash, sizeof(v->prev));
	v->n++;
	return 0;
}

int
store_audit_verify(struct store *st, int64_t *n, int64_t *broken, char head[65],
    struct qerr *why, struct qerr *e)
{
	struct verify v = { .why = why };
	struct store_tx *tx = NULL;
	int r;

	qerr_clear(why);
	memcpy(v.prev, audit_genesis, sizeof(v.prev));
	if ((r = store_tx_begin(st, false, &tx, e)) == 0) {
		r = store_audit_list(tx, 0, 0, verify_entry, &v, e);
		store_tx_rollback(tx);
	}
	*n = v.n;
	*broken = v.broken;
	memcpy(head, v.prev, 65);
	if (r != 0 && v.broken == 0)
		return why->code != 0 ? qerr_set(e, why->code, NULL, "%s", why->msg) : r;
	return 0;
}
