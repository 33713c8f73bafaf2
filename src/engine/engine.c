/*
 * Worker threads that claim steps, run them through their identity system's provider
 * and record the outcome; a keeper thread that renews this node's leases.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/backoff.h"
#include "core/lifecycle.h"
#include "core/log.h"
#include "internal.h"

int64_t
engine_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct engine_system *
engine_find_system(struct engine *eng, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < eng->nsys; i++)
		if (strcmp(eng->sys[i].cfg->name, name) == 0)
			return &eng->sys[i];
	return NULL;
}

int
engine_audit_tx(struct store_tx *tx, const char *actor, const char *event,
    const char *action_id, const char *step_id, const char *identity_id,
    json_t *detail, struct qerr *e)
{
	struct audit_entry ent;
	char *text;
	int r;

	text = json_dumps(detail ? detail : json_object(), JSON_COMPACT);
	if (text == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	memset(&ent, 0, sizeof(ent));
	ent.time = engine_now_ms();
	ent.actor = (char *)actor;
	ent.event = (char *)event;
	ent.action_id = (char *)action_id;
	ent.step_id = (char *)step_id;
	ent.identity_id = (char *)identity_id;
	ent.detail = text;
	r = store_audit_append(tx, &ent, e);
	free(text);
	return r;
}

int
engine_rollup_tx(struct store_tx *tx, const char *actor, const char *action_id,
    int64_t now, struct qerr *e)
{
	struct action a;
	enum action_status st, was;
	char msg[256], ev[64];
	json_t *d;
	int r;

	memset(&a, 0, sizeof(a));
	if ((r = store_action_get(tx, action_id, &a, e)) != 0)
		return r;
	was = a.status;
	st = lifecycle_rollup(&a, msg, sizeof(msg));
	if (action_status_terminal(was) || was == ACTION_PENDING_APPROVAL ||
	    (st == was && !action_status_terminal(st))) {
		action_clear(&a);
		return 0;
	}
	a.status = st;
	a.updated_at = now;
	if (action_status_terminal(st))
		a.finished_at = now;
	free(a.message);
	a.message = strdup(msg);
	d = json_pack("{s:s, s:s, s:s}", "from", action_status_name(was), "to",
	    action_status_name(st), "summary", msg);
	snprintf(ev, sizeof(ev), "action.%s", action_status_name(st));
	if ((r = store_action_update(tx, &a, e)) == 0)
		r = engine_audit_tx(tx, actor, ev, a.id, NULL, a.identity_id, d, e);
	json_decref(d);
	action_clear(&a);
	return r;
}

void
engine_wake(struct engine *eng)
{
	pthread_mutex_lock(&eng->mu);
	pthread_cond_broadcast(&eng->cv);
	pthread_mutex_unlock(&eng->mu);
}

/* Systems at their concurrency limit, which the next claim must skip. */
static size_t
full_systems(struct engine *eng, const char **skip)
{
	size_t i, n = 0;

	pthread_mutex_lock(&eng->mu);
	for (i = 0; i < eng->nsys; i++)
		if (eng->sys[i].inflight >= eng->sys[i].cfg->max_concurrency)
			skip[n++] = eng->sys[i].cfg->name;
	pthread_mutex_unlock(&eng->mu);
	return n;
}

static int
claim(struct engine *eng, struct step *s, struct engine_system **sysp)
{
	const char **skip = calloc(eng->nsys + 1, sizeof(*skip));
	struct step_claim cl = { .owner = eng->opt.node_id, .lease_ms = eng->opt.lease_ms };
	struct store_tx *tx = NULL;
	struct qerr e;
	json_t *d;
	int r = QERR_NOMEM;

	if (skip == NULL)
		return r;
	pthread_mutex_lock(&eng->claim_mu);
	cl.skip_systems = skip;
	cl.nskip = full_systems(eng, skip);
	cl.now = engine_now_ms();
	if ((r = store_tx_begin(eng->st, true, &tx, &e)) != 0)
		goto out;
	if ((r = store_step_claim(tx, &cl, s, &e)) != 0)
		goto out;
	d = json_pack("{s:s, s:s, s:i}", "system", s->system, "account", s->account_name,
	    "attempt", s->attempts);
	r = engine_audit_tx(tx, eng->opt.node_id, "step.started", s->action_id, s->id,
	    NULL, d, &e);
	json_decref(d);
	if (r == 0)
		r = engine_rollup_tx(tx, eng->opt.node_id, s->action_id, cl.now, &e);
	if (r == 0)
		r = store_tx_commit(tx, &e);
	else
		store_tx_rollback(tx);
	tx = NULL;
	if (r == 0) {
		*sysp = engine_find_system(eng, s->system);
		pthread_mutex_lock(&eng->mu);
		if (*sysp != NULL)
			(*sysp)->inflight++;
		pthread_mutex_unlock(&eng->mu);
	}
out:
	store_tx_rollback(tx);
	pthread_mutex_unlock(&eng->claim_mu);
	if (r != 0 && r != QERR_NOT_FOUND)
		log_msg(LOG_LVL_WARN, "engine: claiming a step: %s", e.msg);
	if (r != 0)
		step_clear(s);
	free(skip);
	return r;
}

/* The step's next state from the provider's answer. */
static void
apply_result(struct engine *eng, struct step *s, const struct step_result *res,
    int64_t now)
{
	int64_t delay;
	char msg[640];

	free(s->message);
	free(s->error_code);
	free(s->request_id);
	s->message = strdup(res->message);
	s->error_code = res->error_code[0] ? strdup(res->error_code) : NULL;
	s->request_id = res->request_id[0] ? strdup(res->request_id) : NULL;
	free(s->lease_owner);
	s->lease_owner = NULL;
	s->lease_expires = 0;
	s->updated_at = now;
	switch (res->outcome) {
	case STEP_OUTCOME_SUCCEEDED:
		s->status = STEP_SUCCEEDED;
		s->finished_at = now;
		return;
	case STEP_OUTCOME_TRANSIENT:
		if (s->attempts < eng->opt.max_attempts) {
			delay = backoff_delay_ms(s->attempts, eng->opt.retry_base_ms,
			    eng->opt.retry_cap_ms, randombytes_random());
			if (res->retry_after_ms > delay)
				delay = res->retry_after_ms;
			s->status = STEP_RETRY_WAIT;
			s->not_before = now + delay;
			return;
		}
		snprintf(msg, sizeof(msg), "gave up after %d attempts: %s", s->attempts,
		    res->message);
		free(s->message);
		s->message = strdup(msg);
		break;
	case STEP_OUTCOME_PERMANENT:
		break;
	}
	s->status = STEP_FAILED;
	s->finished_at = now;
}

static int
finish_tx(struct engine *eng, struct step *s, const struct step_result *res,
    struct qerr *e)
{
	struct store_tx *tx = NULL;
	char ev[64];
	json_t *d;
	int r;

	if ((r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	if ((r = store_step_update(tx, s, e)) != 0)
		goto out;
	if (s->status == STEP_SUCCEEDED && res->state[0] != '\0' &&
	    (r = store_account_set_state(tx, s->account_id, res->state, s->updated_at,
	    e)) != 0)
		goto out;
	d = json_pack("{s:s, s:s, s:i, s:s, s:s?, s:s?}", "system", s->system,
	    "account", s->account_name, "attempt", s->attempts, "message",
	    s->message ? s->message : "", "error_code", s->error_code, "request_id",
	    s->request_id);
	if (s->status == STEP_RETRY_WAIT)
		json_object_set_new(d, "retry_at_ms", json_integer(s->not_before));
	snprintf(ev, sizeof(ev), "step.%s", step_status_name(s->status));
	r = engine_audit_tx(tx, eng->opt.node_id, ev, s->action_id, s->id, NULL, d, e);
	json_decref(d);
	if (r == 0)
		r = engine_rollup_tx(tx, eng->opt.node_id, s->action_id, s->updated_at, e);
	if (r == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
out:
	store_tx_rollback(tx);
	return r;
}

/*
 * Records the outcome; a failure to write leaves the lease to expire, so the step
 * runs again (providers are idempotent) rather than being lost.
 */
static void
finish(struct engine *eng, struct step *s, const struct step_result *res)
{
	struct qerr e;
	int tries;

	apply_result(eng, s, res, engine_now_ms());
	for (tries = 0; tries < 5; tries++) {
		qerr_clear(&e);
		if (finish_tx(eng, s, res, &e) == 0)
			return;
		log_msg(LOG_LVL_WARN, "engine: recording step %s: %s", s->id, e.msg);
	}
}

static void
idle_wait(struct engine *eng)
{
	struct store_tx *tx = NULL;
	struct timespec ts;
	int64_t due = 0, now = engine_now_ms(), until = now + 1000;
	struct qerr e;

	if (store_tx_begin(eng->st, false, &tx, &e) == 0) {
		if (store_step_next_due(tx, &due, &e) == 0 && due > now && due < until)
			until = due;
		store_tx_rollback(tx);
	}
	ts.tv_sec = (time_t)(until / 1000);
	ts.tv_nsec = (long)(until % 1000) * 1000000;
	pthread_mutex_lock(&eng->mu);
	if (!eng->stop)
		pthread_cond_timedwait(&eng->cv, &eng->mu, &ts);
	pthread_mutex_unlock(&eng->mu);
}

static void *
worker(void *arg)
{
	struct engine *eng = arg;
	struct engine_system *sys;
	struct step_result res;
	struct step s;
	bool stop;

	for (;;) {
		pthread_mutex_lock(&eng->mu);
		stop = eng->stop;
		pthread_mutex_unlock(&eng->mu);
		if (stop)
			break;
		memset(&s, 0, sizeof(s));
		sys = NULL;
		if (claim(eng, &s, &sys) != 0) {
			idle_wait(eng);
			continue;
		}
		memset(&res, 0, sizeof(res));
		if (sys == NULL) {
			res.outcome = STEP_OUTCOME_PERMANENT;
			snprintf(res.message, sizeof(res.message),
			    "identity system '%s' is not configured", s.system);
		} else
			provider_execute(sys->ops, sys->p, &s, &res);
		finish(eng, &s, &res);
		if (sys != NULL) {
			pthread_mutex_lock(&eng->mu);
			sys->inflight--;
			pthread_cond_broadcast(&eng->cv);
			pthread_mutex_unlock(&eng->mu);
		}
		step_clear(&s);
	}
	return NULL;
}

static void
renew_leases(struct engine *eng)
{
	struct store_tx *tx = NULL;
	struct qerr e;

	if (store_tx_begin(eng->st, true, &tx, &e) != 0)
		return;
	if (store_step_renew(tx, eng->opt.node_id, engine_now_ms() + eng->opt.lease_ms,
	    &e) == 0)
		store_tx_commit(tx, &e);
	else {
		log_msg(LOG_LVL_WARN, "engine: renewing leases: %s", e.msg);
		store_tx_rollback(tx);
	}
}

static void *
keeper(void *arg)
{
	struct engine *eng = arg;
	struct timespec ts;
	int64_t next = engine_now_ms() + eng->opt.lease_ms / 3;

	pthread_mutex_lock(&eng->mu);
	while (!eng->stop) {
		ts.tv_sec = (time_t)(next / 1000);
		ts.tv_nsec = (long)(next % 1000) * 1000000;
		pthread_cond_timedwait(&eng->cv, &eng->mu, &ts);
		if (eng->stop || engine_now_ms() < next)
			continue;
		pthread_mutex_unlock(&eng->mu);
		renew_leases(eng);
		pthread_mutex_lock(&eng->mu);
		next = engine_now_ms() + eng->opt.lease_ms / 3;
	}
	pthread_mutex_unlock(&eng->mu);
	return NULL;
}

/* After a restart: this node's running steps are claimable again, and every open
 * action's status is brought in line with its steps. */
static int
recover(struct engine *eng, struct qerr *e)
{
	struct store_tx *tx = NULL;
	char **ids = NULL;
	size_t n = 0, i;
	int r;

	if ((r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	if ((r = store_step_release(tx, eng->opt.node_id, e)) != 0 ||
	    (r = store_action_open_ids(tx, &ids, &n, e)) != 0)
		goto out;
	for (i = 0; i < n && r == 0; i++)
		r = engine_rollup_tx(tx, eng->opt.node_id, ids[i], engine_now_ms(), e);
	if (r == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
out:
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	store_tx_rollback(tx);
	return r;
}

static int
open_systems(struct engine *eng, struct qerr *e)
{
	const struct system_config *sc;
	size_t i;
	int r;

	if ((eng->sys = calloc(eng->cfg->nsystems + 1, sizeof(*eng->sys))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < eng->cfg->nsystems; i++) {
		sc = &eng->cfg->systems[i];
		eng->sys[i].cfg = sc;
		if ((eng->sys[i].ops = provider_lookup(sc->kind)) == NULL)
			return qerr_set(e, QERR_CONFIG, "kind",
			    "%s:%d: unknown kind '%s' for system '%s'", sc->file, sc->line,
			    sc->kind, sc->name);
		if ((r = provider_open(eng->sys[i].ops, sc, &eng->sys[i].p, e)) != 0)
			return r;
		eng->nsys++;
	}
	return 0;
}

static void
defaults(struct engine_options *o)
{
	if (o->workers <= 0)
		o->workers = 8;
	if (o->lease_ms <= 0)
		o->lease_ms = 60000;
	if (o->retry_base_ms <= 0)
		o->retry_base_ms = 500;
	if (o->retry_cap_ms <= 0)
		o->retry_cap_ms = 30000;
	if (o->max_attempts <= 0)
		o->max_attempts = 25;
}

int
engine_start(const struct config *cfg, struct store *st,
    const struct engine_options *opt, struct engine **out, struct qerr *e)
{
	struct engine *eng;
	int r, i;

	if ((eng = calloc(1, sizeof(*eng))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	eng->cfg = cfg;
	eng->st = st;
	eng->opt = *opt;
	defaults(&eng->opt);
	pthread_mutex_init(&eng->mu, NULL);
	pthread_mutex_init(&eng->claim_mu, NULL);
	pthread_cond_init(&eng->cv, NULL);
	if ((r = open_systems(eng, e)) != 0 || (r = recover(eng, e)) != 0)
		goto fail;
	if ((eng->workers = calloc((size_t)eng->opt.workers, sizeof(pthread_t))) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto fail;
	}
	for (i = 0; i < eng->opt.workers; i++) {
		if (pthread_create(&eng->workers[i], NULL, worker, eng) != 0) {
			r = qerr_set(e, QERR_INTERNAL, NULL, "cannot start worker threads");
			goto fail;
		}
		eng->nworkers++;
	}
	if (pthread_create(&eng->keeper, NULL, keeper, eng) != 0) {
		r = qerr_set(e, QERR_INTERNAL, NULL, "cannot start the lease keeper");
		goto fail;
	}
	eng->keeper_started = true;
	*out = eng;
	return 0;
fail:
	engine_stop(eng);
	return r;
}

void
engine_stop(struct engine *eng)
{
	size_t i;
	int k;

	if (eng == NULL)
		return;
	pthread_mutex_lock(&eng->mu);
	eng->stop = true;
	pthread_cond_broadcast(&eng->cv);
	pthread_mutex_unlock(&eng->mu);
	for (k = 0; k < eng->nworkers; k++)
		pthread_join(eng->workers[k], NULL);
	if (eng->keeper_started)
		pthread_join(eng->keeper, NULL);
	for (i = 0; i < eng->nsys; i++)
		provider_close(eng->sys[i].ops, eng->sys[i].p);
	free(eng->workers);
	free(eng->sys);
	pthread_cond_destroy(&eng->cv);
	pthread_mutex_destroy(&eng->claim_mu);
	pthread_mutex_destroy(&eng->mu);
	free(eng);
}

int
engine_system_info(struct engine *eng, const char *name, const char **kind,
    bool supported[ACTION_TYPE_COUNT])
{
	struct engine_system *sys = engine_find_system(eng, name);
	int t;

	if (sys == NULL)
		return QERR_NOT_FOUND;
	*kind = sys->cfg->kind;
	for (t = 0; t < ACTION_TYPE_COUNT; t++)
		supported[t] = provider_supports(sys->ops, (enum action_type)t);
	return 0;
}

size_t
engine_system_count(struct engine *eng)
{
	return eng->nsys;
}

const char *
engine_system_name(struct engine *eng, size_t i)
{
	return i < eng->nsys ? eng->sys[i].cfg->name : NULL;
}
