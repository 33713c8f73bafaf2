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
#include "core/metrics.h"
#include "core/text.h"
#include "internal.h"

int64_t
engine_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
engine_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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

/*
 * Every change of an action's state is audited as "action.<what>"; the log line is
 * made here from the same event so that no path that changes a state can forget it.
 * It is written inside the transaction: a rollback after it is logged as
 * "engine: ... failed" too.
 */
static void
log_action_event(struct store_tx *tx, const char *event, const char *action_id,
    const char *actor)
{
	struct identity idn;
	struct action a;
	struct qerr e;
	bool failed;

	memset(&a, 0, sizeof(a));
	memset(&idn, 0, sizeof(idn));
	if (store_action_get(tx, action_id, &a, &e) != 0) {
		action_clear(&a);
		return;
	}
	/* Without the identity the line still names its id. */
	if (a.identity_id != NULL && store_identity_get(tx, a.identity_id, &idn, &e) != 0) {
		identity_clear(&idn);
		memset(&idn, 0, sizeof(idn));
	}
	failed = strcmp(event, "action.failed") == 0 ||
	    strcmp(event, "action.partially_completed") == 0;
	log_event(failed ? LOG_LVL_WARN : LOG_LVL_INFO, "action.state", LOG_FIELDS(
	    LOG_S("action", a.id), LOG_S("change", event + 7), LOG_S("type",
	    action_type_name(a.type)), LOG_S("status", action_status_name(a.status)),
	    LOG_S("identity", a.identity_id), LOG_S("identity_name", idn.display_name),
	    LOG_S("requested_by", a.requested_by), LOG_S("source", a.source),
	    LOG_S("by", actor), LOG_S("alert", a.alert_id), LOG_S("message", a.message)),
	    "action %s %s: %s on %s", a.id, event + 7, action_type_name(a.type),
	    idn.display_name ? idn.display_name : a.identity_id ? a.identity_id : "?");
	identity_clear(&idn);
	action_clear(&a);
}

/* Every automatic-disruption decision is audited as "disruption.<outcome>" with its
 * rule and alert in the detail: logged and counted from there, like actions. */
static void
log_disruption_event(const char *event, const char *identity_id, json_t *detail)
{
	const char *rule = json_string_value(json_object_get(detail, "rule"));
	const char *alert = json_string_value(json_object_get(detail, "alert_id"));
	const char *why = json_string_value(json_object_get(detail, "why"));

	QM_ADD(QM_CONTAINMENTS, 1, rule ? rule : "", event + 11);
	log_event(LOG_LVL_INFO, "disruption.decision", LOG_FIELDS(LOG_S("decision",
	    event + 11), LOG_S("rule", rule), LOG_S("alert", alert), LOG_S("identity",
	    identity_id), LOG_S("why", why)), "automatic disruption: %s on identity %s "
	    "(alert %s, rule %s)", event + 11, identity_id ? identity_id : "-",
	    alert ? alert : "-", rule ? rule : "-");
}

/* Unauthenticated refusals arrive here already counted per client address and
 * minute (src/api/refusals.c): one line per window, never one per request. */
static void
log_auth_failure(const char *client, json_t *detail)
{
	json_int_t n = json_integer_value(json_object_get(detail, "count"));
	const char *why = json_string_value(json_object_get(detail, "why"));

	if (n <= 0)
		n = 1;
	QM_ADD(QM_AUTH_FAILURES, (double)n, NULL);
	log_event(LOG_LVL_WARN, "auth.failed", LOG_FIELDS(LOG_S("client", client),
	    LOG_I("count", n), LOG_S("why", why), LOG_S("path",
	    json_string_value(json_object_get(detail, "path")))),
	    "%lld request(s) from %s refused: %s", (long long)n, client ? client : "?",
	    why ? why : "not authenticated");
}

int
engine_audit_tx_as(struct store_tx *tx, const struct actor *who, const char *event,
    const char *action_id, const char *step_id, const char *identity_id,
    json_t *detail, struct qerr *e)
{
	struct audit_entry ent;
	char *text, sysid[160];
	int r;

	/* No detail is an empty object: a json_object() made here was never freed
	 * (every cancel and refusal audited without detail leaked it). */
	text = detail ? json_dumps(detail, JSON_COMPACT) : strdup("{}");
	if (text == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	memset(&ent, 0, sizeof(ent));
	ent.time = engine_now_ms();
	ent.actor = (char *)who->name;
	ent.actor_kind = (char *)(who->kind ? who->kind : "system");
	/* quell's own principals have a stable id by name; anonymous callers none. */
	if (who->id == NULL && (who->kind == NULL || strcmp(who->kind, "system") == 0)) {
		snprintf(sysid, sizeof(sysid), "system:%s", who->name ? who->name : "");
		ent.actor_id = sysid;
	} else
		ent.actor_id = (char *)who->id;
	ent.client = (char *)who->client;
	ent.event = (char *)event;
	ent.action_id = (char *)action_id;
	ent.step_id = (char *)step_id;
	ent.identity_id = (char *)identity_id;
	ent.detail = text;
	r = store_audit_append(tx, &ent, e);
	free(text);
	if (r == 0 && action_id != NULL && strncmp(event, "action.", 7) == 0)
		log_action_event(tx, event, action_id, ent.actor);
	else if (r == 0 && strncmp(event, "disruption.", 11) == 0)
		log_disruption_event(event, identity_id, detail);
	else if (r == 0 && strcmp(event, "auth.failed") == 0)
		log_auth_failure(who->client, detail);
	return r;
}

int
engine_audit_tx(struct store_tx *tx, const char *actor, const char *event,
    const char *action_id, const char *step_id, const char *identity_id,
    json_t *detail, struct qerr *e)
{
	struct actor sys = { .name = actor, .kind = "system" };

	return engine_audit_tx_as(tx, &sys, event, action_id, step_id, identity_id,
	    detail, e);
}

int
engine_rollup_tx(struct store_tx *tx, const struct actor *actor, const char *action_id,
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
		r = engine_audit_tx_as(tx, actor, ev, a.id, NULL, a.identity_id, d, e);
	json_decref(d);
	action_clear(&a);
	return r;
}

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
		if (eng->sys[i].inflight >= eng->sys[i].cfg->max_concurrency)
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
claim_into(struct engine *eng, struct store_tx *tx, struct job_queue *got,
    struct qerr *e)
{
	struct step_claim cl = { .owner = eng->opt.node_id, .lease_ms = eng->opt.lease_ms };
	const char **skip = calloc(eng->nsys + 1, sizeof(*skip));
	struct job *j = NULL;
	int n = 0, room, r = 0;

	if (skip == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	cl.skip_systems = skip;
	cl.now = engine_now_ms();
	for (;;) {
		pthread_mutex_lock(&eng->mu);
		room = eng->nworkers - eng->inflight;
		cl.nskip = full_systems(eng, skip);
		pthread_mutex_unlock(&eng->mu);
		if (room <= 0)
			break;
		if ((r = claim_job(eng, tx, &cl, &j, e)) != 0)
			break;
		pthread_mutex_lock(&eng->mu);
		if (j->sys != NULL)
			j->sys->inflight++;
		eng->inflight++;
		pthread_mutex_unlock(&eng->mu);
		queue_push(got, j);
		n++;
	}
	free(skip);
	return r == 0 || r == QERR_NOT_FOUND ? n : r;
}

int
engine_claim_tx(struct engine *eng, struct store_tx *tx, struct job_queue *got,
    struct qerr *e)
{
	int n = claim_into(eng, tx, got, e);

	return n < 0 ? n : 0;
}

void
engine_dispatch(struct engine *eng, struct job_queue *got, bool committed)
{
	struct job *j;

	if (!committed) {
		release_jobs(eng, got);
		return;
	}
	pthread_mutex_lock(&eng->mu);
	while ((j = queue_pop(got)) != NULL)
		queue_push(&eng->run, j);
	pthread_cond_broadcast(&eng->cv_run);
	pthread_mutex_unlock(&eng->mu);
}

/* Claims what there is room for in a transaction of its own and queues it for the
 * workers. Returns how many jobs were queued. */
static int
claim_batch(struct engine *eng)
{
	struct job_queue got = { NULL, NULL };
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
		release_jobs(eng, &got);
		if (n < 0)
			log_msg(LOG_LVL_WARN, "engine: claiming steps: %s", e.msg);
		return 0;
	}
	if (store_tx_commit(tx, &e) != 0) {
		log_msg(LOG_LVL_WARN, "engine: claiming steps: %s", e.msg);
		release_jobs(eng, &got);
		return 0;
	}
	engine_dispatch(eng, &got, true);
	return n;
}

/* Sleeps until work is stored, room frees up, a waiting step falls due, or 1 s. */
static void
dispatcher_wait(struct engine *eng, bool idle)
{
	struct store_tx *tx = NULL;
	struct timespec ts;
	int64_t due = 0, now = engine_now_ms(), until = now + 1000;
	struct qerr e;

	if (idle && store_tx_begin(eng->st, false, &tx, &e) == 0) {
		if (store_step_next_due(tx, &due, &e) == 0 && due > now && due < until)
			until = due;
		store_tx_rollback(tx);
	}
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

static void run_job_calls(struct job *j);

/* Runs the job's provider call, timing it for the audit log. */
static void
run_job(struct job *j)
{
	j->call_start_us = engine_now_us();
	run_job_calls(j);
	j->call_end_us = engine_now_us();
}

static void
run_job_calls(struct job *j)
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
		run_job(j);
		pthread_mutex_lock(&eng->mu);
		queue_push(&eng->done, j);
		pthread_cond_signal(&eng->cv_done);
	}
	pthread_mutex_unlock(&eng->mu);
	return NULL;
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
	if (s->status == STEP_RETRY_WAIT)
		json_object_set_new(d, "retry_at_ms", json_integer(s->not_before));
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

void
engine_system_seen(struct engine_system *sys, bool reachable, const char *why)
{
	bool was = atomic_exchange(&sys->unreachable, !reachable);

	if (was == !reachable)
		return;
	if (reachable)
		log_event(LOG_LVL_INFO, "system.recovered", LOG_FIELDS(LOG_S("system",
		    sys->cfg->name), LOG_S("kind", sys->cfg->kind)),
		    "identity system %s recovered: it answers again", sys->cfg->name);
	else
		log_event(LOG_LVL_ERROR, "system.unreachable", LOG_FIELDS(LOG_S("system",
		    sys->cfg->name), LOG_S("kind", sys->cfg->kind), LOG_S("reason", why)),
		    "identity system %s unreachable: %s", sys->cfg->name, why);
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

/* A step told to wait by the system's rate limit: counted at once, logged at most
 * once a minute per system with what accumulated since the last line. */
static void
note_rate_limit(struct engine_system *sys, int ms)
{
	int64_t now = engine_now_ms();

	QM_ADD(QM_RATE_LIMIT_WAIT, ms / 1000.0, sys->cfg->name);
	sys->rl_waits++;
	sys->rl_wait_ms += ms;
	if (now - sys->rl_logged_at < 60000)
		return;
	log_event(LOG_LVL_WARN, "ratelimit.wait", LOG_FIELDS(LOG_S("system",
	    sys->cfg->name), LOG_I("waits", sys->rl_waits), LOG_I("wait_ms",
	    sys->rl_wait_ms)), "identity system %s rate-limits quell: %ld step(s) told "
	    "to wait, %lld ms in all, since the last such line", sys->cfg->name,
	    sys->rl_waits, (long long)sys->rl_wait_ms);
	sys->rl_logged_at = now;
	sys->rl_waits = 0;
	sys->rl_wait_ms = 0;
}

/* Metrics and log lines of one finished job, once its steps are recorded. */
static void
observe_job(struct engine *eng, const struct job *j)
{
	const char *sysname = j->sys != NULL ? j->sys->cfg->name : "unknown";
	char at[TEXT_TIME_LEN];
	const struct step *s;
	size_t i;

	QM_OBSERVE(QM_STEP_SECONDS, (double)(j->call_end_us - j->call_start_us) / 1e6,
	    sysname);
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
			QM_ADD(QM_STEPS, 1, sysname, "retry");
			text_time_format(s->not_before, at);
			log_event(LOG_LVL_WARN, "step.retry", LOG_FIELDS(LOG_S("action",
			    s->action_id), LOG_S("step", s->id), LOG_S("system", sysname),
			    LOG_S("account", s->account_name), LOG_I("attempt", s->attempts),
			    LOG_S("error_code", s->error_code), LOG_S("reason", s->message),
			    LOG_S("next_attempt", at)), "step %s on %s failed (attempt %d), "
			    "retrying at %s: %s", s->id, sysname, s->attempts, at,
			    s->message ? s->message : "");
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
	(void)eng;
}

/*
 * Records every finished step in one transaction. If that keeps failing the steps'
 * leases run out and they are claimed and run again (providers are idempotent)
 * rather than lost.
 */
static void *
committer(void *arg)
{
	struct engine *eng = arg;
	struct job *list, *j;
	struct qerr e;
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
		now = engine_now_ms();
		for (j = list; j != NULL; j = j->next)
			for (i = 0; i < j->n; i++)
				apply_result(eng, &j->s[i], &j->res[i], now);
		for (tries = 0; tries < 5; tries++) {
			qerr_clear(&e);
			if (record_batch(eng, list, &e) == 0)
				break;
			log_msg(LOG_LVL_WARN, "engine: recording finished steps: %s", e.msg);
		}
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
		r = engine_rollup_tx(tx, &eng->nactor, ids[i], engine_now_ms(), e);
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
	/* The node's own steps (started, finished, expired) are audited as it. */
	eng->nactor.name = eng->opt.node_id;
	eng->nactor.kind = "system";
	pthread_mutex_init(&eng->mu, NULL);
	pthread_cond_init(&eng->cv_dispatch, NULL);
	pthread_cond_init(&eng->cv_run, NULL);
	pthread_cond_init(&eng->cv_done, NULL);
	pthread_cond_init(&eng->cv_keeper, NULL);
	pthread_mutex_init(&eng->dmu, NULL);
	if ((r = policy_load(cfg, &eng->pol, e)) != 0 ||
	    (r = engine_disruption_start(eng, e)) != 0 ||
	    (r = open_systems(eng, e)) != 0 || (r = recover(eng, e)) != 0 ||
	    (r = engine_sync_start(eng, e)) != 0 ||
	    (r = siem_start(cfg, st, &eng->siem, e)) != 0)
		goto fail;
	r = qerr_set(e, QERR_INTERNAL, NULL, "cannot start the engine's threads");
	if ((eng->workers = calloc((size_t)eng->opt.workers, sizeof(pthread_t))) == NULL)
		goto fail;
	for (i = 0; i < eng->opt.workers; i++) {
		if (pthread_create(&eng->workers[i], NULL, worker, eng) != 0)
			goto fail;
		eng->nworkers++;
	}
	if (pthread_create(&eng->committer, NULL, committer, eng) != 0)
		goto fail;
	eng->started |= 2;
	eng->keeper_beat = engine_now_ms();
	if (pthread_create(&eng->keeper, NULL, keeper, eng) != 0)
		goto fail;
	eng->started |= 4;
	if (pthread_create(&eng->dispatcher, NULL, dispatcher, eng) != 0)
		goto fail;
	eng->started |= 1;
	qerr_clear(e);
	*out = eng;
	return 0;
fail:
	engine_stop(eng);
	return r;
}

/*
 * Stops claiming, lets each worker finish the step in its hands, records everything
 * finished, then closes the providers. Steps claimed but not started stay leased to
 * this node, and the next start releases them.
 */
void
engine_stop(struct engine *eng)
{
	struct job *j;
	size_t i;
	int k;

	if (eng == NULL)
		return;
	/* First: whatever it had not delivered goes after the next start. */
	siem_stop(eng->siem);
	engine_sync_stop(eng);
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
	while ((j = queue_pop(&eng->run)) != NULL)
		job_free(j);
	for (i = 0; i < eng->nsys; i++)
		provider_close(eng->sys[i].ops, eng->sys[i].p);
	free(eng->workers);
	free(eng->sys);
	engine_disruption_stop(eng);
	policy_free(eng->pol);
	pthread_mutex_destroy(&eng->dmu);
	pthread_cond_destroy(&eng->cv_keeper);
	pthread_cond_destroy(&eng->cv_done);
	pthread_cond_destroy(&eng->cv_run);
	pthread_cond_destroy(&eng->cv_dispatch);
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
		supported[t] = provider_supports(sys->ops, sys->p, (enum action_type)t);
	return 0;
}

size_t
engine_siem_count(struct engine *eng)
{
	return siem_count(eng->siem);
}

int
engine_siem_status(struct engine *eng, size_t i, struct siem_status *out,
    struct qerr *e)
{
	return siem_status(eng->siem, i, out, e);
}

const struct policy *
engine_policy(struct engine *eng)
{
	return eng->pol;
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

bool
engine_system_reachable(struct engine *eng, size_t i)
{
	return i < eng->nsys && !atomic_load(&eng->sys[i].unreachable);
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
