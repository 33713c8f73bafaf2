/*
 * Inventory sync: one thread per identity system lists its accounts (incrementally
 * where the provider can), stores them in batches, and correlates each new or changed
 * account into an identity under the [correlation] rules. The listing streams through
 * a fixed batch, so memory does not grow with the directory, and each batch is one
 * short write transaction, so the API's writers are never held back for long.
 *
 * Runs start on request (engine_sync_request, answered at once) or every
 * sync_interval; a request during a run is served by the next one. Progress is
 * published per batch for engine_sync_status.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/correlate.h"
#include "core/id.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rbac.h"
#include "internal.h"
#include "wake.h"

#define SYNC_BATCH	500
#define PROBES_MAX	32
#define SCHEDULER	"scheduler"
#define SYNC_ACTOR	"sync"

#define FULL_EVERY_MS	(24LL * 3600 * 1000)

struct sync_sys {
	struct syncer *sy;
	struct engine_system *sys;
	pthread_t th;
	bool started;
	bool pending;		/* under sy->mu: a run was asked for */
	bool want_full;
	int64_t last_full_at;	/* under sy->mu: when a full listing last completed */
	char who[128];		/* who asked */
	struct sync_status st;	/* under sy->mu */
	int64_t lease;		/* the scheduler's lease note (engine_lease_hold) */
};

struct syncer {
	struct engine *eng;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_bool stop;
	struct corr_rules rules;
	struct sync_sys *s;
	size_t n;
};

/* One run: the batch being filled and what it has done so far. */
struct run {
	struct sync_sys *ss;
	const char *who;
	int64_t seen_run;
	struct account batch[SYNC_BATCH];
	size_t n;
	struct sync_status tally;	/* counters only */
	struct qerr *e;
	int err;
};

static int
audit_link(struct store_tx *tx, const struct account *a, const char *event,
    const char *identity_id, const char *rule, json_t *extra, struct qerr *e)
{
	json_t *d;
	int r;

	d = json_pack("{s:s, s:s, s:s, s:s?}", "account_id", a->id, "system", a->system,
	    "external_id", a->external_id, "rule", rule);
	if (d != NULL && extra != NULL)
		json_object_set(d, "identities", extra);
	r = engine_audit_tx(tx, SYNC_ACTOR, event, NULL, NULL, identity_id, d, e);
	json_decref(d);
	return r;
}

static int
link_to(struct store_tx *tx, const struct account *a, const char *identity_id,
    const char *rule, const char *conflict, struct qerr *e)
{
	struct account_link l = { identity_id, rule, SYNC_ACTOR, engine_now_ms(),
	    conflict };

	return store_account_set_link(tx, a->id, &l, e);
}

static int
new_identity(struct store_tx *tx, struct account *a, struct qerr *e)
{
	struct identity idn;
	char id[ID_LEN];
	int r;

	memset(&idn, 0, sizeof(idn));
	idn.created_at = engine_now_ms();
	id_make(id, "idn", idn.created_at);
	idn.id = id;
	idn.display_name = a->display_name ? a->display_name :
	    a->username ? a->username : a->external_id;
	if ((r = store_identity_insert(tx, &idn, e)) != 0 ||
	    (r = link_to(tx, a, id, CORR_RULE_NEW, NULL, e)) != 0)
		return r;
	return audit_link(tx, a, "identity.created", id, CORR_RULE_NEW, NULL, e);
}

static int
conflict(struct run *ru, struct store_tx *tx, struct account *a,
    const struct corr_hits *h, const char *rule, bool fresh, struct qerr *e)
{
	json_t *ids = json_array();
	char *text = NULL;
	size_t i;
	int r;

	for (i = 0; i < h->n; i++)
		json_array_append_new(ids, json_string(h->id[i]));
	if (ids == NULL || (text = json_dumps(ids, JSON_COMPACT)) == NULL) {
		json_decref(ids);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	r = link_to(tx, a, NULL, NULL, text, e);
	/* Audited when first seen, not again on every sync that finds it unresolved. */
	if (r == 0 && fresh)
		r = audit_link(tx, a, "account.conflict", NULL, rule, ids, e);
	ru->tally.conflicts++;
	free(text);
	json_decref(ids);
	return r;
}

/* Links a stored account where the rules point, or records why it is not. */
static int
correlate(struct run *ru, struct store_tx *tx, const struct account_sync *as,
    struct qerr *e)
{
	const struct corr_rules *rs = &ru->ss->sy->rules;
	struct account *a = (struct account *)&as->cur;
	struct corr_hits hits[CORR_RULES_MAX];
	struct corr_probe pr[PROBES_MAX];
	struct corr_current cur = { a->identity_id, a->link_rule, as->sharing <= 1 };
	const char *id;
	size_t i, k, n, rule;
	int r;

	memset(hits, 0, sizeof(hits));
	for (i = 0; i < rs->n; i++) {
		n = corr_probes(&rs->rule[i], a, pr, PROBES_MAX);
		for (k = 0; k < n; k++)
			if ((r = store_account_match(tx, &pr[k], a, &hits[i], e)) != 0)
				return r;
	}
	switch (corr_decide(&cur, hits, rs->n, &rule, &id)) {
	case CORR_KEEP:
		return 0;
	case CORR_NEW:
		ru->tally.identities++;
		return new_identity(tx, a, e);
	case CORR_CONFLICT:
		return conflict(ru, tx, a, &hits[rule], rs->rule[rule].name,
		    as->created || as->changed, e);
	case CORR_LINK:
		break;
	}
	ru->tally.linked++;
	if ((r = link_to(tx, a, id, rs->rule[rule].name, NULL, e)) != 0)
		return r;
	return audit_link(tx, a, "account.linked", id, rs->rule[rule].name, NULL, e);
}

static int
store_one(struct run *ru, struct store_tx *tx, struct account *a, struct qerr *e)
{
	struct account_sync as;
	bool gone;
	int r;

	if (a->state != NULL && strcmp(a->state, "removed") == 0 && a->upn == NULL &&
	    a->username == NULL) {
		if ((r = store_account_remove(tx, a->system, a->external_id,
		    a->state_read_at, &gone, e)) == 0 && gone) {
			ru->tally.removed++;
			ru->tally.changed++;
		}
		return r;
	}
	if ((r = store_account_sync(tx, a, ru->seen_run, &as, e)) != 0)
		return r;
	ru->tally.created += as.created;
	ru->tally.changed += as.changed;
	/* An unchanged, linked account has nothing new to match on. */
	if (as.created || as.changed || as.cur.identity_id == NULL)
		r = correlate(ru, tx, &as, e);
	account_clear(&as.cur);
	return r;
}

static void
publish(struct run *ru)
{
	struct sync_status *st = &ru->ss->st;

	pthread_mutex_lock(&ru->ss->sy->mu);
	st->seen = ru->tally.seen;
	st->changed = ru->tally.changed;
	st->created = ru->tally.created;
	st->removed = ru->tally.removed;
	st->linked = ru->tally.linked;
	st->identities = ru->tally.identities;
	st->conflicts = ru->tally.conflicts;
	st->skipped = ru->tally.skipped;
	pthread_mutex_unlock(&ru->ss->sy->mu);
}

static int
flush(struct run *ru)
{
	struct engine *eng = ru->ss->sy->eng;
	struct store_tx *tx = NULL;
	size_t i;
	int r = 0;

	if (ru->n == 0)
		return 0;
	if ((r = store_tx_begin(eng->st, true, &tx, ru->e)) != 0)
		goto out;
	for (i = 0; i < ru->n; i++)
		if ((r = store_one(ru, tx, &ru->batch[i], ru->e)) != 0)
			goto out;
	r = store_tx_commit(tx, ru->e);
	tx = NULL;
out:
	store_tx_rollback(tx);
	for (i = 0; i < ru->n; i++)
		account_clear(&ru->batch[i]);
	ru->n = 0;
	publish(ru);
	return r;
}

static int
on_account(const struct account *acct, void *arg)
{
	struct run *ru = arg;
	struct account *a = &ru->batch[ru->n];
	int64_t now = engine_now_ms();
	char id[ID_LEN];

	if (atomic_load(&ru->ss->sy->stop)) {
		ru->err = qerr_set(ru->e, QERR_TRANSIENT, NULL, "quelld is stopping");
		return 1;
	}
	ru->tally.seen++;
	if (acct->external_id == NULL || acct->external_id[0] == '\0') {
		ru->tally.skipped++;
		return 0;
	}
	if (account_copy(a, acct) != 0) {
		ru->err = qerr_set(ru->e, QERR_NOMEM, NULL, "out of memory");
		return 1;
	}
	id_make(id, "acc", now);
	free(a->id);
	free(a->identity_id);
	free(a->link_rule);
	free(a->linked_by);
	a->identity_id = a->link_rule = a->linked_by = NULL;
	a->id = strdup(id);
	a->system = a->system != NULL ? a->system : strdup(ru->ss->sys->cfg->name);
	a->created_at = now;
	a->state_read_at = now;
	if (a->id == NULL || a->system == NULL) {
		account_clear(a);
		ru->err = qerr_set(ru->e, QERR_NOMEM, NULL, "out of memory");
		return 1;
	}
	ru->n++;
	if (ru->n == SYNC_BATCH && (ru->err = flush(ru)) != 0)
		return 1;
	return 0;
}

static void
audit_run(struct run *ru, const char *mode, int r, const struct qerr *e)
{
	struct engine *eng = ru->ss->sy->eng;
	const struct sync_status *t = &ru->tally;
	struct qerr e2;
	json_t *d;

	d = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "system",
	    ru->ss->sys->cfg->name, "mode", mode, "seen", (json_int_t)t->seen,
	    "changed", (json_int_t)t->changed, "new_accounts", (json_int_t)t->created,
	    "removed", (json_int_t)t->removed, "linked", (json_int_t)t->linked,
	    "identities", (json_int_t)t->identities, "conflicts",
	    (json_int_t)t->conflicts, "result", r == 0 ? "ok" : e->msg);
	engine_audit(eng, ru->who, r == 0 ? "sync.completed" : "sync.failed", NULL, d,
	    &e2);
	json_decref(d);
}

static int
load_state(struct engine *eng, const char *system, char **cursor, int64_t *full_run,
    struct qerr *e)
{
	struct store_tx *tx = NULL;
	int r;

	if ((r = store_tx_begin(eng->st, false, &tx, e)) == 0)
		r = store_sync_state_get(tx, system, cursor, full_run, e);
	store_tx_rollback(tx);
	return r;
}

/* After a full listing, what it did not see is gone; the cursor is kept either way. */
static int
finish(struct run *ru, bool full, const char *next, struct qerr *e)
{
	struct engine *eng = ru->ss->sy->eng;
	const char *system = ru->ss->sys->cfg->name;
	struct store_tx *tx = NULL;
	long n = 0;
	int r;

	if ((r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	if (full && (r = store_account_sweep(tx, system, ru->seen_run, engine_now_ms(),
	    &n, e)) != 0)
		goto out;
	ru->tally.removed += n;
	ru->tally.changed += n;
	if ((r = store_sync_state_put(tx, system, next, ru->seen_run, engine_now_ms(),
	    e)) != 0)
		goto out;
	r = store_tx_commit(tx, e);
	tx = NULL;
out:
	store_tx_rollback(tx);
	publish(ru);
	return r;
}

static int
run_once(struct run *ru, bool want_full, struct qerr *e)
{
	struct sync_sys *ss = ru->ss;
	char *cursor = NULL, *next = NULL;
	int64_t full_run = 0;
	bool full = true;
	int r;

	if ((r = load_state(ss->sy->eng, ss->sys->cfg->name, &cursor, &full_run, e)) != 0)
		return r;
	/* Every run marks what it reads; a full one then sweeps what it did not. */
	ru->seen_run = full_run + 1;
	pthread_mutex_lock(&ss->sy->mu);
	snprintf(ss->st.mode, sizeof(ss->st.mode), "%s",
	    want_full || cursor == NULL ? "full" : "incremental");
	pthread_mutex_unlock(&ss->sy->mu);
	r = provider_list_changes(ss->sys->ops, ss->sys->p, want_full ? NULL : cursor,
	    on_account, ru, &next, &full, e);
	if (ru->err != 0)
		r = ru->err;
	if (r == 0)
		r = flush(ru);
	pthread_mutex_lock(&ss->sy->mu);
	snprintf(ss->st.mode, sizeof(ss->st.mode), "%s", full ? "full" : "incremental");
	pthread_mutex_unlock(&ss->sy->mu);
	if (r == 0)
		r = finish(ru, full, next, e);
	while (ru->n > 0)
		account_clear(&ru->batch[--ru->n]);
	free(next);
	free(cursor);
	return r;
}

static void
run_sync(struct sync_sys *ss, const char *who, bool want_full)
{
	struct run *ru;
	struct qerr e;
	int r;

	const char *name = ss->sys->cfg->name;
	struct sync_status st;
	int64_t t0 = engine_now_ms(), ms;

	qerr_clear(&e);
	log_event(LOG_LVL_INFO, "sync.started", LOG_FIELDS(LOG_S("system", name),
	    LOG_S("requested_by", who), LOG_B("full", want_full)), "sync %s started", name);
	if ((ru = calloc(1, sizeof(*ru))) == NULL)
		r = qerr_set(&e, QERR_NOMEM, NULL, "out of memory");
	else {
		ru->ss = ss;
		ru->who = who;
		ru->e = &e;
		r = run_once(ru, want_full, &e);
		audit_run(ru, ss->st.mode, r, &e);
	}
	ms = engine_now_ms() - t0;
	pthread_mutex_lock(&ss->sy->mu);
	snprintf(ss->st.error, sizeof(ss->st.error), "%.255s", r == 0 ? "" : e.msg);
	st = ss->st;
	pthread_mutex_unlock(&ss->sy->mu);
	QM_ADD(QM_SYNC_RUNS, 1, name, r == 0 ? "ok" : "error");
	QM_SET(QM_SYNC_DURATION, (double)ms / 1000.0, name);
	if (r != 0) {
		/* No answer at all is an outage; any other failure says the system is up. */
		engine_system_seen(ss->sys, r != QERR_TRANSIENT, e.msg);
		log_event(LOG_LVL_WARN, "sync.failed", LOG_FIELDS(LOG_S("system", name),
		    LOG_S("error", e.msg), LOG_I("duration_ms", ms)), "sync %s: %s", name,
		    e.msg);
	} else {
		engine_system_seen(ss->sys, true, "");
		QM_SET(QM_SYNC_LAST_SUCCESS, (double)engine_now_ms() / 1000.0, name);
		log_event(LOG_LVL_INFO, "sync.finished", LOG_FIELDS(LOG_S("system", name),
		    LOG_S("mode", st.mode), LOG_I("seen", st.seen), LOG_I("changed",
		    st.changed), LOG_I("created", st.created), LOG_I("removed", st.removed),
		    LOG_I("linked", st.linked), LOG_I("identities", st.identities),
		    LOG_I("conflicts", st.conflicts), LOG_I("skipped", st.skipped),
		    LOG_I("duration_ms", ms)), "sync %s finished (%s): %ld read, %ld changed "
		    "in %lld ms", name, st.mode, st.seen, st.changed, (long long)ms);
	}
	free(ru);
}

static void
deadline(struct timespec *ts, int64_t at_ms)
{
	ts->tv_sec = (time_t)(at_ms / 1000);
	ts->tv_nsec = (long)(at_ms % 1000) * 1000000L;
}

/* Waits under sy->mu for a request, the schedule, or stop; false on stop. */
static bool
wait_turn(struct sync_sys *ss)
{
	struct syncer *sy = ss->sy;
	struct timespec ts;

	while (!atomic_load(&sy->stop) && !ss->pending &&
	    !(ss->st.next_at != 0 && engine_now_ms() >= ss->st.next_at)) {
		if (ss->st.next_at != 0) {
			deadline(&ts, ss->st.next_at);
			pthread_cond_timedwait(&sy->cv, &sy->mu, &ts);
		} else
			pthread_cond_wait(&sy->cv, &sy->mu);
	}
	return !atomic_load(&sy->stop);
}

/*
 * Under sy->mu: whether this node runs the system's scheduled syncs, which one node
 * of a cluster does at a time; the others look again within half a lease, so the
 * schedule moves soon after its node dies. Requested runs need no lease.
 */
static bool
scheduled_here(struct sync_sys *ss)
{
	char name[sizeof(ss->st.system) + 8];
	bool held;

	snprintf(name, sizeof(name), "sync:%s", ss->st.system);
	pthread_mutex_unlock(&ss->sy->mu);
	held = engine_lease_hold(ss->sy->eng->st, ss->sy->eng->opt.node_id, name,
	    &ss->lease);
	pthread_mutex_lock(&ss->sy->mu);
	if (!held)
		ss->st.next_at = engine_now_ms() + STORE_NODE_TTL_MS / 2;
	return held;
}

static void *
sync_thread(void *arg)
{
	struct sync_sys *ss = arg;
	struct sync_status *st = &ss->st;
	char who[sizeof(ss->who)];
	bool full;

	pthread_mutex_lock(&ss->sy->mu);
	while (wait_turn(ss)) {
		if (!ss->pending && !scheduled_here(ss))
			continue;
		snprintf(who, sizeof(who), "%s", ss->pending ? ss->who : SCHEDULER);
		/* Incremental listings cannot see every deletion (AD's): a scheduled run
		 * is a full one at least once a day, and the first after a start. */
		full = ss->want_full || (!ss->pending &&
		    engine_now_ms() - ss->last_full_at > FULL_EVERY_MS);
		ss->pending = ss->want_full = false;
		memset(&st->mode, 0, sizeof(*st) - offsetof(struct sync_status, mode));
		st->interval_ms = ss->sys->cfg->sync_interval_ms;
		snprintf(st->requested_by, sizeof(st->requested_by), "%s", who);
		st->running = true;
		st->run++;
		st->started_at = engine_now_ms();
		pthread_mutex_unlock(&ss->sy->mu);
		run_sync(ss, who, full);
		pthread_mutex_lock(&ss->sy->mu);
		st->running = false;
		st->finished_run = st->run;
		st->finished_at = engine_now_ms();
		if (strcmp(st->mode, "full") == 0 && st->error[0] == '\0')
			ss->last_full_at = st->finished_at;
		st->next_at = st->interval_ms > 0 ? st->finished_at + st->interval_ms : 0;
	}
	pthread_mutex_unlock(&ss->sy->mu);
	return NULL;
}

int
engine_sync_start(struct engine *eng, struct qerr *e)
{
	struct syncer *sy;
	struct sync_sys *ss;
	size_t i;
	int r;

	if ((sy = calloc(1, sizeof(*sy))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	sy->eng = eng;
	pthread_mutex_init(&sy->mu, NULL);
	pthread_cond_init(&sy->cv, NULL);
	atomic_init(&sy->stop, false);
	eng->syncer = sy;
	if ((r = corr_rules_load(eng->cfg, &sy->rules, e)) != 0)
		return r;
	if (eng->nsys > 0 && (sy->s = calloc(eng->nsys, sizeof(*sy->s))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < eng->nsys; i++) {
		ss = &sy->s[i];
		ss->sy = sy;
		ss->sys = &eng->sys[i];
		snprintf(ss->st.system, sizeof(ss->st.system), "%s", eng->sys[i].cfg->name);
		ss->st.interval_ms = eng->sys[i].cfg->sync_interval_ms;
		if (ss->st.interval_ms > 0)
			ss->st.next_at = engine_now_ms() + ss->st.interval_ms;
		if (pthread_create(&ss->th, NULL, sync_thread, ss) != 0)
			return qerr_set(e, QERR_INTERNAL, NULL, "cannot start a sync thread");
		ss->started = true;
		sy->n = i + 1;
	}
	return 0;
}

/* Stops the sync threads; a run in progress ends at its next account. */
void
engine_sync_stop(struct engine *eng)
{
	struct syncer *sy = eng->syncer;
	size_t i;

	if (sy == NULL)
		return;
	pthread_mutex_lock(&sy->mu);
	atomic_store(&sy->stop, true);
	pthread_cond_broadcast(&sy->cv);
	pthread_mutex_unlock(&sy->mu);
	for (i = 0; i < sy->n; i++)
		if (sy->s[i].started)
			pthread_join(sy->s[i].th, NULL);
	free(sy->s);
	pthread_cond_destroy(&sy->cv);
	pthread_mutex_destroy(&sy->mu);
	free(sy);
	eng->syncer = NULL;
}

static int
request_one(struct sync_sys *ss, const struct actor *who, bool full, int64_t *run)
{
	struct syncer *sy = ss->sy;

	pthread_mutex_lock(&sy->mu);
	if (!ss->pending)
		snprintf(ss->who, sizeof(ss->who), "%s", who->name);
	ss->pending = true;
	ss->want_full |= full;
	*run = ss->st.run + 1;
	pthread_cond_broadcast(&sy->cv);
	pthread_mutex_unlock(&sy->mu);
	return 0;
}

int
engine_sync_request(struct engine *eng, const struct actor *who, const char *system,
    bool full, int64_t *run, struct qerr *e)
{
	struct syncer *sy = eng->syncer;
	size_t i;
	bool found = false;

	*run = 0;
	if ((who->perms & PERM_IDENTITIES_MANAGE) == 0)
		return qerr_set(e, QERR_DENIED, NULL, "'%s' holds no role that grants %s",
		    who->name, rbac_perm_name(PERM_IDENTITIES_MANAGE));
	for (i = 0; sy != NULL && i < sy->n; i++) {
		if (system != NULL && strcmp(sy->s[i].st.system, system) != 0)
			continue;
		found = true;
		request_one(&sy->s[i], who, full, run);
	}
	if (!found && system != NULL)
		return qerr_set(e, QERR_NOT_FOUND, "system", "no identity system '%s'",
		    system);
	return 0;
}

int
engine_sync_status(struct engine *eng, size_t i, struct sync_status *out)
{
	struct syncer *sy = eng->syncer;

	if (sy == NULL || i >= sy->n)
		return QERR_NOT_FOUND;
	pthread_mutex_lock(&sy->mu);
	*out = sy->s[i].st;
	pthread_mutex_unlock(&sy->mu);
	return 0;
}
