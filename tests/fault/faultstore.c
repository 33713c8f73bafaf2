/*
 * fault_store: store_sqlite behind a decorator. Every call but open, close, migrate,
 * rollback and hunt first asks the countdown (fault.h) whether it is the one to fail,
 * and if so fails the way SQLite would say it, without reaching SQLite: busy,
 * an I/O error, a full disk.
 */
#include "fault.h"

static int
injected(struct qerr *e)
{
	if (fault_due(FAULT_STORE_BUSY))
		return qerr_set(e, QERR_BUSY, NULL, "injected: database busy");
	if (fault_due(FAULT_STORE_IO))
		return qerr_set(e, QERR_STORE, NULL, "injected: disk I/O error");
	if (fault_due(FAULT_STORE_FULL))
		return qerr_set(e, QERR_STORE, NULL, "injected: database or disk is full");
	return 0;
}

/* One counted wrapper per slot: fs_<slot>(params) calls store_sqlite.<slot>(args). */
#define FS(slot, params, args)						\
	static int fs_##slot params					\
	{								\
		return injected(e) != 0 ? e->code : store_sqlite.slot args;	\
	}

FS(begin, (struct store_conn *c, bool write, struct qerr *e),
    (c, write, e))
FS(commit, (struct store_conn *c, struct qerr *e),
    (c, e))
FS(token_insert, (struct store_conn *c, const struct token_info *t, const unsigned
    char hash[32], struct qerr *e),
    (c, t, hash, e))
FS(token_get, (struct store_conn *c, const char *id, struct token_info *t, unsigned
    char hash[32], struct qerr *e),
    (c, id, t, hash, e))
FS(token_list, (struct store_conn *c, const char *after_id, int limit, store_token_cb
    cb, void *arg, struct qerr *e),
    (c, after_id, limit, cb, arg, e))
FS(token_revoke, (struct store_conn *c, const char *id, int64_t at, const char *by,
    struct qerr *e),
    (c, id, at, by, e))
FS(token_touch, (struct store_conn *c, const char *id, int64_t at, int64_t min_gap_ms,
    bool *written, struct qerr *e),
    (c, id, at, min_gap_ms, written, e))
FS(identity_insert, (struct store_conn *c, const struct identity *idn, struct qerr
    *e),
    (c, idn, e))
FS(identity_update, (struct store_conn *c, const struct identity *idn, struct qerr
    *e),
    (c, idn, e))
FS(identity_get, (struct store_conn *c, const char *id, struct identity *out, struct
    qerr *e),
    (c, id, out, e))
FS(identity_list, (struct store_conn *c, const struct identity_filter *f,
    store_identity_cb cb, void *arg, struct qerr *e),
    (c, f, cb, arg, e))
FS(account_upsert, (struct store_conn *c, struct account *a, struct qerr *e),
    (c, a, e))
FS(account_get, (struct store_conn *c, const char *id, struct account *out, struct
    qerr *e),
    (c, id, out, e))
FS(account_link, (struct store_conn *c, const char *account_id, const char
    *identity_id, struct qerr *e),
    (c, account_id, identity_id, e))
FS(account_set_state, (struct store_conn *c, const char *account_id, const char
    *state, int64_t read_at, struct qerr *e),
    (c, account_id, state, read_at, e))
FS(action_insert, (struct store_conn *c, const struct action *a, struct qerr *e),
    (c, a, e))
FS(action_get, (struct store_conn *c, const char *id, struct action *out, struct qerr
    *e),
    (c, id, out, e))
FS(action_list, (struct store_conn *c, const struct action_filter *f, store_action_cb
    cb, void *arg, struct qerr *e),
    (c, f, cb, arg, e))
FS(action_update, (struct store_conn *c, const struct action *a, struct qerr *e),
    (c, a, e))
FS(action_open_ids, (struct store_conn *c, char ***ids, size_t *n, struct qerr *e),
    (c, ids, n, e))
FS(step_claim, (struct store_conn *c, const struct step_claim *cl, struct step *out,
    struct qerr *e),
    (c, cl, out, e))
FS(step_update, (struct store_conn *c, const struct step *s, struct qerr *e),
    (c, s, e))
FS(step_renew, (struct store_conn *c, const char *owner, int64_t expires, struct qerr
    *e),
    (c, owner, expires, e))
FS(step_release, (struct store_conn *c, const char *owner, struct qerr *e),
    (c, owner, e))
FS(step_next_due, (struct store_conn *c, int64_t *when, struct qerr *e),
    (c, when, e))
FS(audit_append, (struct store_conn *c, struct audit_entry *ent, struct qerr *e),
    (c, ent, e))
FS(audit_list, (struct store_conn *c, int64_t after_seq, int limit, store_audit_cb cb,
    void *arg, struct qerr *e),
    (c, after_seq, limit, cb, arg, e))
FS(audit_last_seq, (struct store_conn *c, int64_t *seq, struct qerr *e),
    (c, seq, e))
FS(siem_cursor_get, (struct store_conn *c, const char *name, int64_t *seq, struct qerr
    *e),
    (c, name, seq, e))
FS(siem_cursor_put, (struct store_conn *c, const char *name, int64_t seq, int64_t at,
    struct qerr *e),
    (c, name, seq, at, e))
FS(account_sync, (struct store_conn *c, const struct account *a, int64_t seen_run,
    struct account_sync *out, struct qerr *e),
    (c, a, seen_run, out, e))
FS(account_remove, (struct store_conn *c, const char *system, const char *external_id,
    int64_t at, bool *changed, struct qerr *e),
    (c, system, external_id, at, changed, e))
FS(account_sweep, (struct store_conn *c, const char *system, int64_t run, int64_t at,
    long *n, struct qerr *e),
    (c, system, run, at, n, e))
FS(account_match, (struct store_conn *c, const struct corr_probe *p, const struct
    account *self, struct corr_hits *hits, struct qerr *e),
    (c, p, self, hits, e))
FS(account_set_link, (struct store_conn *c, const char *account_id, const struct
    account_link *l, struct qerr *e),
    (c, account_id, l, e))
FS(link_veto, (struct store_conn *c, const char *account_id, const char *identity_id,
    const char *by, int64_t at, bool add, struct qerr *e),
    (c, account_id, identity_id, by, at, add, e))
FS(conflict_list, (struct store_conn *c, const char *after_id, int limit,
    store_conflict_cb cb, void *arg, struct qerr *e),
    (c, after_id, limit, cb, arg, e))
FS(sync_state_get, (struct store_conn *c, const char *system, char **cursor, int64_t
    *full_run, struct qerr *e),
    (c, system, cursor, full_run, e))
FS(sync_state_put, (struct store_conn *c, const char *system, const char *cursor,
    int64_t full_run, int64_t at, struct qerr *e),
    (c, system, cursor, full_run, at, e))
FS(alert_insert, (struct store_conn *c, const struct alert *a, struct qerr *e),
    (c, a, e))
FS(alert_get, (struct store_conn *c, const char *id, struct alert *out, struct qerr
    *e),
    (c, id, out, e))
FS(alert_find, (struct store_conn *c, const char *source, const char *external_id,
    struct alert *out, struct qerr *e),
    (c, source, external_id, out, e))
FS(alert_list, (struct store_conn *c, const struct alert_filter *f, store_alert_cb cb,
    void *arg, struct qerr *e),
    (c, f, cb, arg, e))
FS(account_find, (struct store_conn *c, enum kind_match match, const char *kind, const
    char *value, store_account_cb cb, void *arg, struct qerr *e),
    (c, match, kind, value, cb, arg, e))
FS(decision_insert, (struct store_conn *c, const struct alert_decision *d, struct qerr
    *e),
    (c, d, e))
FS(decision_list, (struct store_conn *c, const char *alert_id, const char
    *identity_id, store_decision_cb cb, void *arg, struct qerr *e),
    (c, alert_id, identity_id, cb, arg, e))
FS(decision_count, (struct store_conn *c, const char *outcome, int64_t since, long *n,
    struct qerr *e),
    (c, outcome, since, n, e))

static int
fs_open(const char *location, struct store_conn **out, struct qerr *e)
{
	return store_sqlite.open(location, out, e);
}

static void
fs_close(struct store_conn *c)
{
	store_sqlite.close(c);
}

static int
fs_migrate(struct store_conn *c, struct qerr *e)
{
	return store_sqlite.migrate(c, e);
}

static void
fs_rollback(struct store_conn *c)
{
	store_sqlite.rollback(c);
}

static int
fs_hunt(const char *location, const struct hunt_query *q, char **out, struct qerr *e)
{
	return store_sqlite.hunt(location, q, out, e);
}

#define SLOT(slot) .slot = fs_##slot

const struct store_ops fault_store = {
	.kind = "sqlite",
	SLOT(open), SLOT(close), SLOT(migrate), SLOT(rollback), SLOT(hunt),
	SLOT(begin), SLOT(commit), SLOT(token_insert), SLOT(token_get), SLOT(token_list),
	SLOT(token_revoke), SLOT(token_touch), SLOT(identity_insert), SLOT(identity_update),
	SLOT(identity_get), SLOT(identity_list), SLOT(account_upsert), SLOT(account_get),
	SLOT(account_link), SLOT(account_set_state), SLOT(action_insert), SLOT(action_get),
	SLOT(action_list), SLOT(action_update), SLOT(action_open_ids), SLOT(step_claim),
	SLOT(step_update), SLOT(step_renew), SLOT(step_release), SLOT(step_next_due),
	SLOT(audit_append), SLOT(audit_list), SLOT(audit_last_seq), SLOT(siem_cursor_get),
	SLOT(siem_cursor_put), SLOT(account_sync), SLOT(account_remove), SLOT(account_sweep),
	SLOT(account_match), SLOT(account_set_link), SLOT(link_veto), SLOT(conflict_list),
	SLOT(sync_state_get), SLOT(sync_state_put), SLOT(alert_insert), SLOT(alert_get),
	SLOT(alert_find), SLOT(alert_list), SLOT(account_find), SLOT(decision_insert),
	SLOT(decision_list), SLOT(decision_count),
};
