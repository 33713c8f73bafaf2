/*
 * The pipeline: a dispatcher that claims steps, worker threads that run them through
 * their identity system's provider, a committer that records the outcomes, and a
 * keeper thread that renews this node's leases.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/backoff.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/text.h"
#include "internal.h"
#include "wake.h"

void
engine_wake(struct engine *eng)
{
	pthread_mutex_lock(&eng->mu);
	eng->wake = true;
	pthread_cond_signal(&eng->cv_dispatch);
	pthread_mutex_unlock(&eng->mu);
}

static void
queue_push(struct job_queue *q, struct job *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct job *
queue_pop(struct job_queue *q)
{
	struct job *j = q->head;

	if (j != NULL && (q->head = j->next) == NULL)
		q->tail = NULL;
	return j;
}

static void
job_free(struct job *j)
{
	size_t i;

	if (j == NULL)
		return;
	for (i = 0; i < j->n; i++)
		step_clear(&j->s[i]);
	free(j->s);
	free(j->res);
	free(j);
}

static struct job *
job_new(size_t cap)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->s = calloc(cap, sizeof(*j->s));
	j->res = calloc(cap, sizeof(*j->res));
	if (j->s == NULL || j->res == NULL) {
		job_free(j);
		return NULL;
	}
	return j;
}

/* Systems at their concurrency limit, which the next claim must skip. Under mu. */
static size_t
full_systems(struct engine *eng, const char **skip)
{
	size_t i, n = 0;

	for (i = 0; i < eng->nsys; i++)
		if (eng->sys[i].inflight >= (int)eng->sys[i].limit)
			skip[n++] = eng->sys[i].cfg->name;
	return n;
}

/* Claims one step inside tx into s and records that it started. */
static int
claim_one(struct engine *eng, struct store_tx *tx, struct step_claim *cl,
    struct step *s, struct qerr *e)
{
	json_t *d;
	int r;

	if ((r = store_step_claim(tx, cl, s, e)) != 0)
		return r;
	d = json_pack("{s:s, s:s, s:i}", "system", s->system, "account", s->account_name,
	    "attempt", s->attempts);
	r = engine_audit_tx(tx, eng->opt.node_id, "step.started", s->action_id, s->id,
	    NULL, d, e);
	json_decref(d);
	if (r == 0)
		r = engine_rollup_tx(tx, &eng->nactor, s->action_id, cl->now, e);
	/* The claim is rolled back with tx: the step read for it goes too. */
	if (r != 0)
		step_clear(s);
	return r;
}

/*
 * One job: a claimed step and, where its provider takes several steps of that type in
 * one request, more ready steps of the same system and type. QERR_NOT_FOUND when
 * nothing is claimable.
 */
static int
claim_job(struct engine *eng, struct store_tx *tx, struct step_claim *cl,
    struct job **out, struct qerr *e)
{
	struct step_claim more = *cl;
	struct engine_system *sys;
	struct step first;
	struct job *j;
	size_t max = 1;
	int r;

	memset(&first, 0, sizeof(first));
	if ((r = claim_one(eng, tx, cl, &first, e)) != 0)
		return r;
	if ((sys = engine_find_system(eng, first.system)) != NULL)
		max = provider_batch_max(sys->ops, sys->p, first.type);
	if ((j = job_new(max)) == NULL) {
		step_clear(&first);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	j->sys = sys;
	j->s[j->n++] = first;
	more.only_system = first.system;
	more.only_type = first.type;
	while (j->n < max && (r = claim_one(eng, tx, &more, &j->s[j->n], e)) == 0)
		j->n++;
	if (j->n < max && r != QERR_NOT_FOUND) {
		job_free(j);
		return r;
	}
	*out = j;
	return 0;
}

/* Un-counts and frees jobs that will not run (their transaction failed). */
static void
release_jobs(struct engine *eng, struct job_queue *got)
{
	struct job *j;

	pthread_mutex_lock(&eng->mu);
	while ((j = queue_pop(got)) != NULL) {
		if (j->sys != NULL)
			j->sys->inflight--;
		eng->inflight--;
		job_free(j);
	}
	pthread_mutex_unlock(&eng->mu);
}

/*
 * Claims, inside tx, as many jobs as the workers have room for, counting each against
 * its system's limit as it goes. Returns how many, or a negative QERR_* (the caller
 * rolls back and releases got).
 */
static int
claim_into(struct engine *eng, struct store_tx *tx, struct claimed *got,
    struct qerr *e)
{
	struct step_claim cl = { .owner = eng->opt.node_id, .lease_ms = eng->opt.lease_ms };
	const char **skip = calloc(eng->nsys + 1, sizeof(*skip));
	struct job *j = NULL;
	int n = 0, room, r = 0;

	if (skip == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	cl.skip_systems = skip;
	cl.now = eng->opt.clock_ms();
	for (;;) {
		pthread_mutex_lock(&eng->mu);
		room = eng->nworkers - eng->inflight;
		cl.nskip = full_systems(eng, skip);
		pthread_mutex_unlock(&eng->mu);
		if ((got->full = room <= 0))
			break;
		if ((r = claim_job(eng, tx, &cl, &j, e)) != 0)
			break;
		pthread_mutex_lock(&eng->mu);
		if (j->sys != NULL)
			j->sys->inflight++;
		eng->inflight++;
		pthread_mutex_unlock(&eng->mu);
		queue_push(&got->jobs, j);
		n++;
	}
	free(skip);
	return r == 0 || r == QERR_NOT_FOUND ? n : r;
}

int
engine_claim_tx(struct engine *eng, struct store_tx *tx, struct claimed *got,
    struct qerr *e)
{
	int n = claim_into(eng, tx, got, e);

	return n < 0 ? n : 0;
}

/* Hands committed claims to the workers. */
static void
hand_off(struct engine *eng, struct job_queue *jobs)
{
	struct job *j;

	pthread_mutex_lock(&eng->mu);
	while ((j = queue_pop(jobs)) != NULL)
		queue_push(&eng->run, j);
	pthread_cond_broadcast(&eng->cv_run);
	pthread_mutex_unlock(&eng->mu);
}

void
engine_dispatch(struct engine *eng, struct claimed *got, bool committed)
{
	if (!committed) {
		release_jobs(eng, &got->jobs);
		return;
	}
	hand_off(eng, &got->jobs);
	/* What the claim had no room for waits for the dispatcher; when it claimed all
	 * there was, waking the dispatcher would only take the write lock for nothing. */
	if (got->full)
		engine_wake(eng);
}

/* Claims what there is room for in a transaction of its own and queues it for the
 * workers. Returns how many jobs were queued. */
static int
claim_batch(struct engine *eng)
{
	struct claimed got = { { NULL, NULL }, false };
	struct store_tx *tx = NULL;
	struct qerr e;
	int n;

	qerr_clear(&e);
	if (store_tx_begin(eng->st, true, &tx, &e) != 0) {
		log_msg(LOG_LVL_WARN, "engine: claiming steps: %s", e.msg);
		return 0;
	}
	if ((n = claim_into(eng, tx, &got, &e)) <= 0) {
		store_tx_rollback(tx);
		release_jobs(eng, &got.jobs);
		if (n < 0)
			log_msg(LOG_LVL_WARN, "engine: claiming steps: %s", e.msg);
		return 0;
	}
	if (store_tx_commit(tx, &e) != 0) {
		log_msg(LOG_LVL_WARN, "engine: claiming steps: %s", e.msg);
		release_jobs(eng, &got.jobs);
		return 0;
	}
	hand_off(eng, &got.jobs);
	return n;
}

/*
 * Sleeps until work is stored, room frees up, a waiting step falls due, or 1 s. When
 * it falls due is read on the engine's clock; the sleep is on the real one.
 */
static void
dispatcher_wait(struct engine *eng, bool idle)
{
	struct store_tx *tx = NULL;
	struct timespec ts;
	int64_t due = 0, now = eng->opt.clock_ms(), wait = 1000, until;
	struct qerr e;

	if (idle && store_tx_begin(eng->st, false, &tx, &e) == 0) {
		if (store_step_next_due(tx, &due, &e) == 0 && due > now && due - now < wait)
			wait = due - now;
		store_tx_rollback(tx);
	}
	until = engine_now_ms() + wait;
	ts.tv_sec = (time_t)(until / 1000);
	ts.tv_nsec = (long)(until % 1000) * 1000000;
	pthread_mutex_lock(&eng->mu);
	while (!eng->stop && !eng->wake && engine_now_ms() < until)
		if (pthread_cond_timedwait(&eng->cv_dispatch, &eng->mu, &ts) != 0)
			break;
	pthread_mutex_unlock(&eng->mu);
}

static void *
dispatcher(void *arg)
{
	struct engine *eng = arg;
	int room, n;

	pthread_mutex_lock(&eng->mu);
	while (!eng->stop) {
		room = eng->nworkers - eng->inflight;
		eng->wake = false;
		pthread_mutex_unlock(&eng->mu);
		n = room > 0 ? claim_batch(eng) : 0;
		if (n < room || room <= 0)
			dispatcher_wait(eng, room > 0);
		pthread_mutex_lock(&eng->mu);
	}
	pthread_mutex_unlock(&eng->mu);
	return NULL;
}

#define BUDGET_RATE_MAX 10000.0

int
engine_budget_parse(const struct system_config *sc, double *out_rate, long *out_burst,
    struct qerr *e)
{
	const struct config_kv *rate = config_system_get(sc, "shared_rate");
	const struct config_kv *burst = config_system_get(sc, "shared_burst");
	char *end;
	double d;

	*out_rate = 0;
	*out_burst = 0;
	if (rate == NULL) {
		if (burst != NULL)
			return config_error(e, sc, burst->line, "shared_burst",
			    "shared_burst needs shared_rate (the requests per second it "
			    "refills)");
		return 0;
	}
	d = strtod(rate->value, &end);
	if (end == rate->value || *end != '\0' || !(d >= 0.01 && d <= BUDGET_RATE_MAX))
		return config_error(e, sc, rate->line, "shared_rate", "shared_rate must be "
		    "the requests per second every node together may send, from 0.01 to "
		    "%.0f, not \"%s\"", BUDGET_RATE_MAX, rate->value);
	*out_rate = d;
	/* A second's worth at once by default, and never less than one request. */
	*out_burst = d < 1.0 ? 1 : (long)d;
	if (burst != NULL && config_long(burst->value, 1, 100000, out_burst) != 0)
		return config_error(e, sc, burst->line, "shared_burst", "shared_burst must "
		    "be a whole number of requests from 1 to 100000, not \"%s\"",
		    burst->value);
	return 0;
}

/*
 * The cluster's budget at the system: one request is taken from the bucket that every
 * node takes from before the call leaves. An empty bucket (or a store that cannot
 * tell) holds the job's steps back, a wait and no attempt, until the bucket will have
 * one; the provider's own pacing stays each node's guard. Whether it held them.
 */
static bool
budget_held(struct engine *eng, struct job *j)
{
	struct engine_system *sys = j->sys;
	struct store_tx *tx = NULL;
	int64_t wait = 0;
	struct qerr e;
	size_t i;
	int r;

	if (sys->shared_rate <= 0)
		return false;
	qerr_clear(&e);
	if ((r = store_tx_begin(eng->st, true, &tx, &e)) == 0 &&
	    (r = store_rate_take(tx, sys->cfg->name, sys->shared_rate, sys->shared_burst,
	    engine_now_ms(), &wait, &e)) == 0) {
		r = store_tx_commit(tx, &e);
		tx = NULL;
	}
	store_tx_rollback(tx);
	if (r == 0 && wait == 0)
		return false;
	if (r != 0)
		wait = 1000;
	for (i = 0; i < j->n; i++) {
		j->res[i].outcome = STEP_OUTCOME_TRANSIENT;
		j->res[i].not_sent = true;
		j->res[i].retry_after_ms = (int)wait;
		if (r != 0)
			snprintf(j->res[i].message, sizeof(j->res[i].message), "the cluster's "
			    "budget at %s could not be read: %.300s", sys->cfg->name,
			    e.msg);
		else
			snprintf(j->res[i].message, sizeof(j->res[i].message), "held back by "
			    "the cluster's budget at %s (shared_rate %g per second)",
			    sys->cfg->name, sys->shared_rate);
	}
	return true;
}

static void
run_job_calls(struct engine *eng, struct job *j)
{
	const struct step **steps;
	size_t i;

	if (j->sys == NULL) {
		for (i = 0; i < j->n; i++) {
			j->res[i].outcome = STEP_OUTCOME_PERMANENT;
			snprintf(j->res[i].message, sizeof(j->res[i].message),
			    "identity system '%s' is not configured", j->s[i].system);
		}
		return;
	}
	if (budget_held(eng, j))
		return;
	if (j->n == 1) {
		provider_execute(j->sys->ops, j->sys->p, &j->s[0], &j->res[0]);
		return;
	}
	if ((steps = calloc(j->n, sizeof(*steps))) == NULL) {
		for (i = 0; i < j->n; i++) {
			j->res[i].outcome = STEP_OUTCOME_TRANSIENT;
			snprintf(j->res[i].message, sizeof(j->res[i].message), "out of memory");
		}
		return;
	}
	for (i = 0; i < j->n; i++)
		steps[i] = &j->s[i];
	provider_execute_batch(j->sys->ops, j->sys->p, steps, j->n, j->res);
	free(steps);
}

/* Runs the job's provider call, timing it for the audit log. */
static void
run_job(struct engine *eng, struct job *j)
{
	j->call_start_us = engine_now_us();
	run_job_calls(eng, j);
	j->call_end_us = engine_now_us();
}

static void *
worker(void *arg)
{
	struct engine *eng = arg;
	struct job *j;

	pthread_mutex_lock(&eng->mu);
	for (;;) {
		while (!eng->stop && eng->run.head == NULL)
			pthread_cond_wait(&eng->cv_run, &eng->mu);
		if (eng->stop)
			break;
		j = queue_pop(&eng->run);
		pthread_mutex_unlock(&eng->mu);
		run_job(eng, j);
		pthread_mutex_lock(&eng->mu);
		queue_push(&eng->done, j);
		pthread_cond_signal(&eng->cv_done);
	}
	pthread_mutex_unlock(&eng->mu);
	return NULL;
}

/* A span as a config value reads: "6h", "90m", "45s", "1500ms". */
static void
span_text(int64_t ms, char *buf, size_t n)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = { { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 } };
	size_t i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms % units[i].ms == 0) {
			snprintf(buf, n, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	snprintf(buf, n, "%lldms", (long long)ms);
}

/*
 * Whether a transient step stops trying rather than wait delay ms: at max_attempts,
 * or when the wait would end past its deadline (step_deadline_ms after its first
 * attempt). The message says which bound ended it.
 */
static bool
give_up(struct engine *eng, struct step *s, int64_t now, int64_t delay, const char *why)
{
	int64_t end = (s->started_at > 0 ? s->started_at : s->created_at) +
	    eng->opt.step_deadline_ms;
	char span[32], msg[640];

	if (s->attempts >= eng->opt.max_attempts)
		snprintf(msg, sizeof(msg), "gave up after %d attempts: %s", s->attempts, why);
	else if (now + delay > end) {
		span_text(eng->opt.step_deadline_ms, span, sizeof(span));
		snprintf(msg, sizeof(msg), "gave up: the step's deadline (%s) %s, after %d "
		    "attempts and %d waits: %s", span, now >= end ? "passed" :
		    "passes before its next try", s->attempts, s->waits, why);
	} else
		return false;
	free(s->message);
	s->message = strdup(msg);
	return true;
}

/*
 * The wait before the next try. Pacing (not sent) waits exactly as long as the pacer
 * said: longer wastes the budget. Anything else backs off, at least for the
 * system's Retry-After.
 */
static int64_t
retry_delay(struct engine *eng, const struct step *s, const struct step_result *res)
{
	int64_t delay;

	if (res->not_sent)
		return res->retry_after_ms;
	delay = backoff_delay_ms(s->attempts, eng->opt.retry_base_ms, eng->opt.retry_cap_ms,
	    randombytes_random());
	return res->retry_after_ms > delay ? res->retry_after_ms : delay;
}

/* The step's next state from the provider's answer. */
static void
apply_result(struct engine *eng, struct step *s, const struct step_result *res,
    int64_t now)
{
	int64_t delay;

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
		/* A wait quell made before the request left (pacing) is no attempt: the
		 * claim counted one, which is taken back. */
		if (res->not_sent && s->attempts > 0)
			s->attempts--;
		delay = retry_delay(eng, s, res);
		if (give_up(eng, s, now, delay, res->message))
			break;
		/* Told to wait (pacing, a Retry-After), as opposed to backing off. */
		if (res->not_sent || res->retry_after_ms > 0) {
			s->waits++;
			s->wait_ms += delay;
		}
		s->status = STEP_RETRY_WAIT;
		s->not_before = now + delay;
		return;
	case STEP_OUTCOME_PERMANENT:
		break;
	}
	s->status = STEP_FAILED;
	s->finished_at = now;
}

/*
 * A step whose action was cancelled while it ran is not tried again: the attempt in
 * flight could not be stopped, but a retry would act after the analyst said stop.
 */
static int
stop_if_cancelled(struct store_tx *tx, struct step *s, struct qerr *e)
{
	struct action a;
	char msg[640];
	int r;

	if (s->status != STEP_RETRY_WAIT)
		return 0;
	memset(&a, 0, sizeof(a));
	if ((r = store_action_get(tx, s->action_id, &a, e)) != 0)
		return r;
	if (a.cancel_requested) {
		snprintf(msg, sizeof(msg), "cancelled after attempt %d: %s", s->attempts,
		    s->message ? s->message : "");
		free(s->message);
		s->message = strdup(msg);
		s->status = STEP_CANCELLED;
		s->finished_at = s->updated_at;
		s->not_before = 0;
	}
	action_clear(&a);
	return 0;
}

static int
record_one(struct engine *eng, struct store_tx *tx, const struct job *j, struct step *s,
    const struct step_result *res, struct qerr *e)
{
	char ev[64];
	json_t *d;
	int r;

	if ((r = stop_if_cancelled(tx, s, e)) != 0 ||
	    (r = store_step_update(tx, s, e)) != 0)
		return r;
	if (s->status == STEP_SUCCEEDED && res->state[0] != '\0' &&
	    (r = store_account_set_state(tx, s->account_id, res->state, s->updated_at,
	    e)) != 0)
		return r;
	d = json_pack("{s:s, s:s, s:i, s:s, s:s?, s:s?}", "system", s->system,
	    "account", s->account_name, "attempt", s->attempts, "message",
	    s->message ? s->message : "", "error_code", s->error_code, "request_id",
	    s->request_id);
	if (s->status == STEP_RETRY_WAIT) {
		json_object_set_new(d, "retry_at_ms", json_integer(s->not_before));
		json_object_set_new(d, "waits", json_integer(s->waits));
		json_object_set_new(d, "wait_ms", json_integer(s->wait_ms));
	}
	if (res->not_sent)
		json_object_set_new(d, "not_sent", json_true());
	json_object_set_new(d, "call_started_us", json_integer(j->call_start_us));
	json_object_set_new(d, "call_finished_us", json_integer(j->call_end_us));
	snprintf(ev, sizeof(ev), "step.%s", step_status_name(s->status));
	r = engine_audit_tx(tx, eng->opt.node_id, ev, s->action_id, s->id, NULL, d, e);
	json_decref(d);
	if (r == 0)
		r = engine_rollup_tx(tx, &eng->nactor, s->action_id, s->updated_at, e);
	return r;
}

static int
record_batch(struct engine *eng, struct job *list, struct qerr *e)
{
	struct store_tx *tx = NULL;
	struct job *j;
	size_t i;
	int r;

	if ((r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	for (j = list; j != NULL && r == 0; j = j->next)
		for (i = 0; i < j->n && r == 0; i++)
			r = record_one(eng, tx, j, &j->s[i], &j->res[i], e);
	if (r == 0)
		return store_tx_commit(tx, e);
	store_tx_rollback(tx);
	return r;
}

/* Error codes of providers that mean no answer came, as opposed to an answer that
 * said no or later (a 429 is an answer). */
static bool
no_answer(const struct step_result *res)
{
	static const char *const codes[] = {
		"serverDown", "connectError", "timeout", "unavailable", "network",
		"transport", NULL,
	};
	size_t i;

	if (res->outcome != STEP_OUTCOME_TRANSIENT)
		return false;
	for (i = 0; codes[i] != NULL; i++)
		if (strcmp(res->error_code, codes[i]) == 0)
			return true;
	return false;
}

/* A step told to wait by the system's rate limit or quell's pacing: counted at once,
 * logged at most once a minute per system with what accumulated since the last line. */
static void
note_rate_limit(struct engine_system *sys, int ms)
{
	int64_t now = engine_now_ms();

	QM_ADD(QM_RATE_LIMIT_WAIT, ms / 1000.0, sys->cfg->name);
	sys->rl_waits++;
	sys->rl_wait_ms += ms;
	if (now - sys->rl_logged_at < 60000)
		return;
	log_event(LOG_LVL_INFO, "ratelimit.wait", LOG_FIELDS(LOG_S("system",
	    sys->cfg->name), LOG_I("waits", sys->rl_waits), LOG_I("wait_ms",
	    sys->rl_wait_ms)), "identity system %s: %ld step(s) waited for its rate "
	    "limit (quell's pacing or its Retry-After), %lld ms in all, since the last "
	    "such line", sys->cfg->name, sys->rl_waits, (long long)sys->rl_wait_ms);
	sys->rl_logged_at = now;
	sys->rl_waits = 0;
	sys->rl_wait_ms = 0;
}

/*
 * A step waiting for its next try. A pacing wait is no failure: counted as a wait and
 * logged at debug only (note_rate_limit sums them up); a refusal is an attempt that
 * failed, and a Retry-After it named is counted as a wait too.
 */
static void
observe_retry(const char *sysname, const struct step *s, const struct step_result *res)
{
	const char *cause = res->not_sent ? "pacing" : "retry_after";
	char at[TEXT_TIME_LEN];

	text_time_format(s->not_before, at);
	if (res->not_sent || res->retry_after_ms > 0) {
		QM_ADD(QM_STEP_WAITS, 1, sysname, cause);
		QM_ADD(QM_STEP_WAIT_SECONDS, (double)(s->not_before - s->updated_at) / 1000.0,
		    sysname, cause);
	}
	if (res->not_sent) {
		log_event(LOG_LVL_DEBUG, "step.wait", LOG_FIELDS(LOG_S("action",
		    s->action_id), LOG_S("step", s->id), LOG_S("system", sysname),
		    LOG_I("waits", s->waits), LOG_S("next_attempt", at)), "step %s on %s "
		    "held back by quell's pacing until %s: %s", s->id, sysname, at,
		    s->message ? s->message : "");
		return;
	}
	QM_ADD(QM_STEPS, 1, sysname, "retry");
	log_event(LOG_LVL_WARN, "step.retry", LOG_FIELDS(LOG_S("action", s->action_id),
	    LOG_S("step", s->id), LOG_S("system", sysname), LOG_S("account",
	    s->account_name), LOG_I("attempt", s->attempts), LOG_S("error_code",
	    s->error_code), LOG_S("reason", s->message), LOG_S("next_attempt", at)),
	    "step %s on %s failed (attempt %d), retrying at %s: %s", s->id, sysname,
	    s->attempts, at, s->message ? s->message : "");
}

/*
 * AIMD on how many steps run at once on the job's system: a refusal for too many
 * concurrent requests halves it (once per overload: refusals of calls begun before the
 * last cut belong to the overload already cut for) and remembers one below the level
 * refused as the ceiling; every call answered otherwise adds 1/limit (one step more per
 * round of calls) up to the ceiling, and past it one step per ENGINE_PROBE_MS, up to
 * max_concurrency. Without the ceiling a system at its capacity is probed, and refuses,
 * every few calls.
 */
static void
grow_concurrency(struct engine *eng, struct engine_system *sys)
{
	int64_t now = eng->opt.clock_ms();

	if (sys->ceiling > 0 && sys->limit >= sys->ceiling) {
		if (now - sys->probe_ms < ENGINE_PROBE_MS)
			return;
		sys->probe_ms = now;
		sys->ceiling = sys->limit = (int)sys->limit + 1;
	} else {
		sys->limit += 1 / sys->limit;
		if (sys->ceiling > 0 && sys->limit > sys->ceiling)
			sys->limit = sys->ceiling;
	}
	if (sys->limit > sys->cfg->max_concurrency)
		sys->limit = sys->cfg->max_concurrency;
}

static void
adapt_concurrency(struct engine *eng, const struct job *j)
{
	struct engine_system *sys = j->sys;
	bool refused = false, answered = false;
	int before, after;
	size_t i;

	if (sys == NULL)
		return;
	for (i = 0; i < j->n; i++) {
		refused |= j->res[i].concurrency_limited;
		answered |= !j->res[i].not_sent && !no_answer(&j->res[i]);
	}
	pthread_mutex_lock(&eng->mu);
	before = (int)sys->limit;
	if (refused && j->call_start_us >= sys->cut_us) {
		sys->ceiling = before - 1 < 1 ? 1 : before - 1;
		sys->limit = sys->limit / 2 < 1 ? 1 : sys->limit / 2;
		sys->cut_us = engine_now_us();
		sys->probe_ms = eng->opt.clock_ms();
	} else if (!refused && answered) {
		grow_concurrency(eng, sys);
	}
	after = (int)sys->limit;
	pthread_mutex_unlock(&eng->mu);
	if (after == before)
		return;
	QM_SET(QM_PROVIDER_CONCURRENCY, after, sys->cfg->name);
	log_event(after < before ? LOG_LVL_WARN : LOG_LVL_INFO, "system.concurrency",
	    LOG_FIELDS(LOG_S("system", sys->cfg->name), LOG_I("concurrency", after),
	    LOG_I("max_concurrency", sys->cfg->max_concurrency)), "identity system %s: "
	    "%d step(s) at once (of max_concurrency %d)%s", sys->cfg->name, after,
	    sys->cfg->max_concurrency, after < before ? ": it refused concurrent "
	    "requests" : "");
}

/* Metrics and log lines of one finished job, once its steps are recorded. */
static void
observe_job(struct engine *eng, const struct job *j)
{
	const char *sysname = j->sys != NULL ? j->sys->cfg->name : "unknown";
	const struct step *s;
	size_t i;

	QM_OBSERVE(QM_STEP_SECONDS, (double)(j->call_end_us - j->call_start_us) / 1e6,
	    sysname);
	adapt_concurrency(eng, j);
	for (i = 0; i < j->n; i++) {
		s = &j->s[i];
		if (j->sys != NULL)
			engine_system_seen(j->sys, !no_answer(&j->res[i]), j->res[i].message);
		if (j->res[i].retry_after_ms > 0 && j->sys != NULL)
			note_rate_limit(j->sys, j->res[i].retry_after_ms);
		switch (s->status) {
		case STEP_SUCCEEDED:
			QM_ADD(QM_STEPS, 1, sysname, "succeeded");
			break;
		case STEP_RETRY_WAIT:
			observe_retry(sysname, s, &j->res[i]);
			break;
		case STEP_FAILED:
			QM_ADD(QM_STEPS, 1, sysname, "failed");
			log_event(LOG_LVL_ERROR, "step.failed", LOG_FIELDS(LOG_S("action",
			    s->action_id), LOG_S("step", s->id), LOG_S("system", sysname),
			    LOG_S("account", s->account_name), LOG_I("attempt", s->attempts),
			    LOG_S("error_code", s->error_code), LOG_S("reason", s->message)),
			    "step %s on %s failed for good: %s", s->id, sysname,
			    s->message ? s->message : "");
			break;
		default:
			QM_ADD(QM_STEPS, 1, sysname, step_status_name(s->status));
			break;
		}
	}
}

/*
 * One try at recording list: true when it is done with. A store that is away (a
 * PostgreSQL restart) is waited for, with growing pauses, for as long as the engine
 * runs: the keeper renews these steps' leases meanwhile, so giving up would leave
 * them running for good. Once stopping, five tries.
 */
static bool
record_tried(struct engine *eng, struct job *list, int tries)
{
	struct timespec ts = { 0, 0 };
	struct qerr e;
	bool stopping;
	long ms;

	qerr_clear(&e);
	if (record_batch(eng, list, &e) == 0)
		return true;
	if (tries < 5 || tries % 50 == 0)
		log_msg(LOG_LVL_WARN, "engine: recording finished steps (try %d): %s",
		    tries + 1, e.msg);
	pthread_mutex_lock(&eng->mu);
	stopping = eng->stop_committer;
	pthread_mutex_unlock(&eng->mu);
	if (stopping && tries >= 4)
		return true;
	ms = tries < 5 ? 20L << tries : 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	ts.tv_sec = ms / 1000;
	nanosleep(&ts, NULL);
	return false;
}

/*
 * Records every finished step in one transaction, trying again until the store
 * takes it (record_tried). If this node dies first the steps' leases run out and
 * they are claimed and run again (providers are idempotent) rather than lost.
 */
static void *
committer(void *arg)
{
	struct engine *eng = arg;
	struct job *list, *j;
	int64_t now;
	size_t i;
	int tries;

	pthread_mutex_lock(&eng->mu);
	for (;;) {
		while (!eng->stop_committer && eng->done.head == NULL)
			pthread_cond_wait(&eng->cv_done, &eng->mu);
		if (eng->done.head == NULL)
			break;
		list = eng->done.head;
		eng->done.head = eng->done.tail = NULL;
		pthread_mutex_unlock(&eng->mu);
		now = eng->opt.clock_ms();
		for (j = list; j != NULL; j = j->next)
			for (i = 0; i < j->n; i++)
				apply_result(eng, &j->s[i], &j->res[i], now);
		for (tries = 0; !record_tried(eng, list, tries); tries++)
			;
		for (j = list; j != NULL; j = j->next)
			observe_job(eng, j);
		pthread_mutex_lock(&eng->mu);
		while ((j = list) != NULL) {
			list = j->next;
			if (j->sys != NULL)
				j->sys->inflight--;
			eng->inflight--;
			job_free(j);
		}
		eng->wake = true;
		pthread_cond_signal(&eng->cv_dispatch);
	}
	pthread_mutex_unlock(&eng->mu);
	return NULL;
}

static void
renew_leases(struct engine *eng)
{
	struct store_tx *tx = NULL;
	struct qerr e;

	if (store_tx_begin(eng->st, true, &tx, &e) != 0)
		return;
	if (store_step_renew(tx, eng->opt.node_id, eng->opt.clock_ms() + eng->opt.lease_ms,
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
		eng->keeper_beat = engine_now_ms();
		ts.tv_sec = (time_t)(next / 1000);
		ts.tv_nsec = (long)(next % 1000) * 1000000;
		pthread_cond_timedwait(&eng->cv_keeper, &eng->mu, &ts);
		if (eng->stop || engine_now_ms() < next)
			continue;
		pthread_mutex_unlock(&eng->mu);
		renew_leases(eng);
		engine_expire_approvals(eng);
		pthread_mutex_lock(&eng->mu);
		next = engine_now_ms() + eng->opt.lease_ms / 3;
	}
	pthread_mutex_unlock(&eng->mu);
	return NULL;
}

int
engine_pipeline_start(struct engine *eng, struct qerr *e)
{
	int r, i;

	r = qerr_set(e, QERR_INTERNAL, NULL, "cannot start the engine's threads");
	if ((eng->workers = calloc((size_t)eng->opt.workers, sizeof(pthread_t))) == NULL)
		return r;
	for (i = 0; i < eng->opt.workers; i++) {
		if (pthread_create(&eng->workers[i], NULL, worker, eng) != 0)
			return r;
		eng->nworkers++;
	}
	if (pthread_create(&eng->committer, NULL, committer, eng) != 0)
		return r;
	eng->started |= 2;
	eng->keeper_beat = engine_now_ms();
	if (pthread_create(&eng->keeper, NULL, keeper, eng) != 0)
		return r;
	eng->started |= 4;
	if (pthread_create(&eng->dispatcher, NULL, dispatcher, eng) != 0)
		return r;
	eng->started |= 1;
	if ((r = engine_cluster_start(eng, e)) != 0)
		return r;
	qerr_clear(e);
	return 0;
}

/*
 * Stops claiming, lets each worker finish the step in its hands and records everything
 * finished. Steps claimed but not started stay leased to this node, and the next start
 * releases them.
 */
void
engine_pipeline_stop(struct engine *eng)
{
	struct job *j;
	int k;

	pthread_mutex_lock(&eng->mu);
	eng->stop = true;
	pthread_cond_broadcast(&eng->cv_dispatch);
	pthread_cond_broadcast(&eng->cv_run);
	pthread_cond_broadcast(&eng->cv_keeper);
	pthread_mutex_unlock(&eng->mu);
	if (eng->started & 1)
		pthread_join(eng->dispatcher, NULL);
	for (k = 0; k < eng->nworkers; k++)
		pthread_join(eng->workers[k], NULL);
	if (eng->started & 4)
		pthread_join(eng->keeper, NULL);
	pthread_mutex_lock(&eng->mu);
	eng->stop_committer = true;
	pthread_cond_broadcast(&eng->cv_done);
	pthread_mutex_unlock(&eng->mu);
	if (eng->started & 2)
		pthread_join(eng->committer, NULL);
	engine_cluster_stop(eng);
	while ((j = queue_pop(&eng->run)) != NULL)
		job_free(j);
	free(eng->workers);
	eng->workers = NULL;
}

bool
engine_running(struct engine *eng, char *why, size_t n)
{
	int64_t beat = atomic_load(&eng->keeper_beat);
	bool stop;
	int started;

	pthread_mutex_lock(&eng->mu);
	stop = eng->stop;
	started = eng->started;
	pthread_mutex_unlock(&eng->mu);
	if (stop || started != 7) {
		snprintf(why, n, "the engine is %s", stop ? "stopping" : "not started");
		return false;
	}
	/* The keeper wakes every third of a lease: a whole lease without it means the
	 * engine is wedged (its mutex held, or the process starved). */
	if (engine_now_ms() - beat > eng->opt.lease_ms + 1000) {
		snprintf(why, n, "the engine's keeper has not run for %lld ms",
		    (long long)(engine_now_ms() - beat));
		return false;
	}
	return true;
}
