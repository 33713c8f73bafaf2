/*
 * The engine's pipeline against a scripted fake provider and a real SQLite store in a
 * fresh temporary directory per test. Time is the test's: the engine reads its clock
 * through engine_options.clock_ms, so retry waits and leases are checked against the
 * clock it was given, never against the wall clock. A claim at a given time is forced
 * by a sentinel request on a system of its own: a request claims, in its own
 * transaction, everything claimable then where there is room, so once the sentinel
 * has run, a step that is still unclaimed in the store was not claimable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/lifecycle.h"
#include "core/rbac.h"
#include "engine/engine.h"

#define NODE		"n1"
#define IDN		"idn_1"
#define IDN2		"idn_2"
#define IDN3		"idn_3"
#define T0		INT64_C(1700000000000)
#define MAX_RULES	16
#define MAX_CALLS	64
#define HANG_GUARD_S	30

/* ---- The fake provider ------------------------------------------------------ */

/* The outcome of the nth call (1-based; 0 = every call) for an account. */
struct rule {
	const char *ref;
	int nth;
	enum step_outcome outcome;
	int retry_after_ms;
	bool not_sent;
};

struct call {
	char ref[64];
	char action[64];
	int attempts;		/* the step's attempts as the provider saw them */
	int64_t at;		/* the engine's clock when the call came */
	size_t batch;		/* steps in the call it came in (1: execute) */
	uint64_t commits;	/* the store's write commits when the call came */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct rule rules[MAX_RULES];
	size_t nrules;
	struct call calls[MAX_CALLS];
	size_t ncalls;
	size_t batch_calls;
	size_t batch_max;	/* 0: no execute_batch */
	bool hold;		/* calls wait until the test lets go */
	int held;
	int let_go;		/* held calls that may go while hold stays on */
	size_t refuse;		/* the first calls: refused for too many at once */
	struct store *st;	/* whose commits a call notes */
} fk = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static _Atomic int64_t fake_now;

struct provider {
	bool unsupported[ACTION_TYPE_COUNT];
};

static int64_t
fake_time(void)
{
	return atomic_load(&fake_now);
}

static void
fake_time_set(int64_t t)
{
	atomic_store(&fake_now, t);
}

static int
fake_open(const struct system_config *cfg, struct provider **out, struct qerr *e)
{
	const struct config_kv *kv = config_system_get(cfg, "unsupported");
	struct provider *p = calloc(1, sizeof(*p));
	enum action_type t;

	if (p == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if (kv != NULL && action_type_parse(kv->value, &t) == 0)
		p->unsupported[t] = true;
	*out = p;
	return 0;
}

static bool
fake_supports(const struct provider *p, enum action_type type)
{
	return !p->unsupported[type];
}

static const struct rule *
rule_for(const char *ref, int nth)
{
	size_t i;

	for (i = 0; i < fk.nrules; i++)
		if (strcmp(fk.rules[i].ref, ref) == 0 &&
		    (fk.rules[i].nth == 0 || fk.rules[i].nth == nth))
			return &fk.rules[i];
	return NULL;
}

static int
calls_of(const char *ref)
{
	size_t i;
	int n = 0;

	for (i = 0; i < fk.ncalls; i++)
		n += strcmp(fk.calls[i].ref, ref) == 0;
	return n;
}

/* Records the call and fills its scripted outcome. Under fk.mu. */
static void
answer(const struct step *s, size_t batch, struct step_result *res)
{
	struct call *c = &fk.calls[fk.ncalls];
	const struct rule *ru;

	assert_true(fk.ncalls < MAX_CALLS);
	snprintf(c->ref, sizeof(c->ref), "%s", s->account_ref);
	snprintf(c->action, sizeof(c->action), "%s", s->action_id);
	c->attempts = s->attempts;
	c->at = fake_time();
	c->batch = batch;
	c->commits = store_write_commits(fk.st);
	fk.ncalls++;
	if (fk.ncalls <= fk.refuse) {
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "E0000047", "too many "
		    "requests at once");
		res->retry_after_ms = 1000;
		res->concurrency_limited = true;
		return;
	}
	ru = rule_for(s->account_ref, calls_of(s->account_ref));
	if (ru == NULL || ru->outcome == STEP_OUTCOME_SUCCEEDED) {
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "done");
		snprintf(res->state, sizeof(res->state), "disabled");
		return;
	}
	provider_result_set(res, ru->outcome, ru->outcome == STEP_OUTCOME_TRANSIENT ?
	    "throttled" : "denied", "scripted %s", ru->outcome ==
	    STEP_OUTCOME_TRANSIENT ? "transient" : "permanent");
	res->retry_after_ms = ru->retry_after_ms;
	res->not_sent = ru->not_sent;
}

static void
wait_released(void)
{
	fk.held++;
	pthread_cond_broadcast(&fk.cv);
	while (fk.hold && fk.let_go == 0)
		pthread_cond_wait(&fk.cv, &fk.mu);
	if (fk.hold)
		fk.let_go--;
	fk.held--;
	pthread_cond_broadcast(&fk.cv);
}

static int
fake_execute(struct provider *p, const struct step *s, struct step_result *res)
{
	(void)p;
	pthread_mutex_lock(&fk.mu);
	answer(s, 1, res);
	wait_released();
	pthread_mutex_unlock(&fk.mu);
	return 0;
}

static size_t
fake_batch_max(enum action_type type)
{
	return type == ACTION_DISABLE ? fk.batch_max : 0;
}

static int
fake_execute_batch(struct provider *p, const struct step *const *steps, size_t n,
    struct step_result *res)
{
	size_t i;

	(void)p;
	pthread_mutex_lock(&fk.mu);
	fk.batch_calls++;
	for (i = 0; i < n; i++)
		answer(steps[i], n, &res[i]);
	wait_released();
	pthread_mutex_unlock(&fk.mu);
	return 0;
}

static void
fake_close(struct provider *p)
{
	free(p);
}

/* Alerts name fake accounts by their object id. */
static const struct kind_alert_id fake_alert_ids[] = {
	{ .id_type = "fake_id", .match = KIND_MATCH_EXTERNAL_ID, .hint = "any text" },
};
static const struct kind_info fake_info = { .kind = "fake", .alert_ids = fake_alert_ids,
	.nalert_ids = 1 };
static const struct kind_info *const fake_kinds[] = { &fake_info };

static const struct provider_ops fake_ops = {
	.kind = "fake",
	.info = &fake_info,
	.open = fake_open,
	.supports = fake_supports,
	.execute = fake_execute,
	.batch_max = fake_batch_max,
	.execute_batch = fake_execute_batch,
	.close = fake_close,
};

static const struct provider_ops *
fake_lookup(const char *kind)
{
	return strcmp(kind, "fake") == 0 ? &fake_ops : NULL;
}

static void
script(const char *ref, int nth, enum step_outcome outcome, int retry_after_ms,
    bool not_sent)
{
	assert_true(fk.nrules < MAX_RULES);
	fk.rules[fk.nrules++] = (struct rule){ ref, nth, outcome, retry_after_ms,
	    not_sent };
}

static void
hold_calls(bool on)
{
	pthread_mutex_lock(&fk.mu);
	fk.hold = on;
	pthread_cond_broadcast(&fk.cv);
	pthread_mutex_unlock(&fk.mu);
}

static int
locked_calls_of(const char *ref)
{
	int n;

	pthread_mutex_lock(&fk.mu);
	n = calls_of(ref);
	pthread_mutex_unlock(&fk.mu);
	return n;
}

/* ---- Fixture: a store with one identity, an engine over the fake --------------- */

/*
 * "fake" takes one step at a time (so a held call keeps the next queued); "other"
 * cannot disable, so an identity-wide disable has a not-applicable step there;
 * "spare" is the sentinel's.
 */
static const char config_text[] =
	"[server]\n"
	"node_id = " NODE "\n"
	"[system \"fake\"]\n"
	"kind = fake\n"
	"max_concurrency = 1\n"
	"[system \"other\"]\n"
	"kind = fake\n"
	"unsupported = disable\n"
	"[system \"spare\"]\n"
	"kind = fake\n"
	"[system \"wide\"]\n"
	"kind = fake\n"
	"max_concurrency = 4\n"
	"[disruption \"contain\"]\n"
	"categories = ransomware\n"
	"actions = contain\n";

struct fx {
	char dir[256];
	char path[300];
	struct config cfg;
	struct store *st;
	struct engine *eng;
	struct engine_options opt;
};

static struct grant responder_grant = {
	.role = "responder", .perms = PERM_RESPONSE_MANAGE, .source = "test",
};
static const struct grant_set responder_grants = { &responder_grant, 1 };
static const struct subject analyst_subject = { .id = "tok_1", .name = "analyst",
	.role = "responder" };
static const struct actor analyst = {
	.id = "tok_1", .name = "analyst", .kind = "token", .role = "responder",
	.perms = PERM_RESPONSE_MANAGE, .subject = &analyst_subject,
	.grants = &responder_grants,
};
static struct grant detector_grant = {
	.role = "detector", .perms = PERM_ALERTS_INGEST, .source = "test",
};
static const struct grant_set detector_grants = { &detector_grant, 1 };
static const struct actor detector = {
	.id = "tok_2", .name = "detector", .kind = "token", .role = "detector",
	.perms = PERM_ALERTS_INGEST, .grants = &detector_grants,
};

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	assert_non_null(d);
	return d;
}

static void
put_account(struct store_tx *tx, const char *idn, const char *system, const char *ref)
{
	struct account a;
	struct qerr e = {0};
	char id[64];

	memset(&a, 0, sizeof(a));
	snprintf(id, sizeof(id), "acc_%s", ref);
	a.id = xstrdup(id);
	a.identity_id = xstrdup(idn);
	a.system = xstrdup(system);
	a.kind = xstrdup("fake");
	a.external_id = xstrdup(ref);
	a.username = xstrdup(ref);
	a.state = xstrdup("enabled");
	a.created_at = T0;
	if (store_account_upsert(tx, &a, &e) != 0)
		fail_msg("account %s: %s", ref, e.msg);
	account_clear(&a);
}

static void
put_identity(struct store_tx *tx, const char *id)
{
	struct identity idn = { .id = (char *)id, .display_name = (char *)id,
		.created_at = T0 };
	struct qerr e = {0};

	if (store_identity_insert(tx, &idn, &e) != 0)
		fail_msg("identity %s: %s", id, e.msg);
}

/* Alice, Bob and Carol in "fake" and Dave in "other" are one identity; Zed in
 * "spare", the sentinel's, another; w1 to w8 in "wide" a third. */
static void
seed(struct store *st)
{
	struct store_tx *tx = NULL;
	struct qerr e = {0};
	char ref[8];
	int i;

	assert_int_equal(store_tx_begin(st, true, &tx, &e), 0);
	put_identity(tx, IDN);
	put_identity(tx, IDN2);
	put_account(tx, IDN, "fake", "alice");
	put_account(tx, IDN, "fake", "bob");
	put_account(tx, IDN, "fake", "carol");
	put_account(tx, IDN, "other", "dave");
	put_account(tx, IDN2, "spare", "zed");
	put_identity(tx, IDN3);
	for (i = 1; i <= 8; i++) {
		snprintf(ref, sizeof(ref), "w%d", i);
		put_account(tx, IDN3, "wide", ref);
	}
	assert_int_equal(store_tx_commit(tx, &e), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	struct qerr e = {0};

	assert_non_null(f);
	pthread_mutex_lock(&fk.mu);
	fk.nrules = fk.ncalls = fk.batch_calls = fk.batch_max = 0;
	fk.hold = false;
	fk.held = fk.let_go = 0;
	fk.refuse = 0;
	pthread_mutex_unlock(&fk.mu);
	fake_time_set(T0);
	snprintf(f->dir, sizeof(f->dir), "%s/quell-engine-XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/quell.db", f->dir);
	if (config_parse("test.conf", config_text, &f->cfg, &e) != 0)
		fail_msg("config: %s", e.msg);
	f->cfg.kinds = (struct kind_table){ fake_kinds, 1 };
	if (store_open(&store_sqlite, f->path, 4, &f->st, &e) != 0)
		fail_msg("store_open: %s", e.msg);
	fk.st = f->st;
	seed(f->st);
	f->opt = (struct engine_options){ .node_id = NODE, .workers = 4,
		.lease_ms = 60000, .retry_base_ms = 100, .retry_cap_ms = 100,
		.max_attempts = 3, .lookup = fake_lookup, .clock_ms = fake_time };
	*state = f;
	return 0;
}

static void
start(struct fx *f)
{
	struct qerr e = {0};

	if (engine_start(&f->cfg, f->st, &f->opt, &f->eng, &e) != 0)
		fail_msg("engine_start: %s", e.msg);
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char p[320];

	hold_calls(false);
	engine_stop(f->eng);
	store_close(f->st);
	config_clear(&f->cfg);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- Helpers ------------------------------------------------------------------ */

/* Requests a disable of one account of idn (ref; NULL: every account); *a (caller
 * clears). */
static void
request_on(struct fx *f, const char *idn, const char *ref, struct action *a)
{
	struct action_request req = { .type = ACTION_DISABLE, .identity_id = idn,
		.reason = "test", .source = "api" };
	struct qerr e = {0};
	char id[64];

	if (ref != NULL) {
		snprintf(id, sizeof(id), "acc_%s", ref);
		req.account_id = id;
	}
	memset(a, 0, sizeof(*a));
	if (engine_request(f->eng, &analyst, &req, a, &e) != 0)
		fail_msg("engine_request: %s", e.msg);
}

static void
request(struct fx *f, const char *ref, struct action *a)
{
	request_on(f, IDN, ref, a);
}

static void
get_action(struct fx *f, const char *id, struct action *a)
{
	struct store_tx *tx = NULL;
	struct qerr e = {0};

	memset(a, 0, sizeof(*a));
	assert_int_equal(store_tx_begin(f->st, false, &tx, &e), 0);
	if (store_action_get(tx, id, a, &e) != 0)
		fail_msg("action %s: %s", id, e.msg);
	store_tx_rollback(tx);
}

static const struct step *
step_of(const struct action *a, const char *ref)
{
	size_t i;

	for (i = 0; i < a->nsteps; i++)
		if (strcmp(a->steps[i].account_ref, ref) == 0)
			return &a->steps[i];
	fail_msg("action %s has no step on %s", a->id, ref);
	return NULL;
}

/* What an action is waited for: done says whether it is there (and may move the
 * clock on the way); what names it for the failure. */
struct until {
	bool (*done)(const struct action *a, const struct until *u);
	const char *ref;
	int want;
	const char *what;
};

/*
 * Re-reads action id into *a (caller clears) until u->done holds. The bound only turns
 * a hang into a failure.
 */
static void
poll_action(struct fx *f, const char *id, const struct until *u, struct action *a)
{
	double until = clock_mono_s() + HANG_GUARD_S;

	for (;;) {
		get_action(f, id, a);
		if (u->done(a, u))
			return;
		if (clock_mono_s() > until)
			fail_msg("action %s (%s: %s) never got to %s", id,
			    action_status_name(a->status), a->message ? a->message : "",
			    u->what);
		action_clear(a);
		clock_sleep_ms(2);
	}
}

static bool
step_is(const struct action *a, const struct until *u)
{
	return step_of(a, u->ref)->status == (enum step_status)u->want;
}

static bool
action_is(const struct action *a, const struct until *u)
{
	return a->status == (enum action_status)u->want;
}

/* Moves the clock to the step's retry time whenever it waits, until it ends. */
static bool
step_ended_retrying(const struct action *a, const struct until *u)
{
	const struct step *s = step_of(a, u->ref);

	if (s->status == STEP_RETRY_WAIT && fake_time() < s->not_before)
		fake_time_set(s->not_before);
	return step_status_terminal(s->status);
}

static void
wait_step(struct fx *f, const char *id, const char *ref, enum step_status want,
    struct action *a)
{
	struct until u = { step_is, ref, (int)want, step_status_name(want) };

	poll_action(f, id, &u, a);
}

static void
wait_action(struct fx *f, const char *id, enum action_status want, struct action *a)
{
	struct until u = { action_is, NULL, (int)want, action_status_name(want) };

	poll_action(f, id, &u, a);
}

static void
drive_retries(struct fx *f, const char *id, const char *ref, struct action *a)
{
	struct until u = { step_ended_retrying, ref, 0, "the end of its retries" };

	poll_action(f, id, &u, a);
}

/* Requests a disable of ref and drives its retries to the end; *got as wait_step. */
static void
run_retries(struct fx *f, const char *ref, struct action *got)
{
	struct action a;

	request(f, ref, &a);
	drive_retries(f, a.id, ref, got);
	action_clear(&a);
}

/* Requests a disable of ref and waits for its first retry wait: the step then. */
static const struct step *
run_to_wait(struct fx *f, const char *ref, struct action *a, struct action *got)
{
	request(f, ref, a);
	wait_step(f, a->id, ref, STEP_RETRY_WAIT, got);
	return step_of(got, ref);
}

/* Until n provider calls wait for the test to let go (meson's timeout bounds it). */
static void
wait_held(int n)
{
	pthread_mutex_lock(&fk.mu);
	while (fk.held < n)
		pthread_cond_wait(&fk.cv, &fk.mu);
	pthread_mutex_unlock(&fk.mu);
}

/* Requests a disable of ref in idn (NULL: every account) and waits until the action
 * is want; *got (caller clears) is the action as stored then. */
static void
run_on(struct fx *f, const char *idn, const char *ref, enum action_status want,
    struct action *got)
{
	struct action a;

	request_on(f, idn, ref, &a);
	wait_action(f, a.id, want, got);
	action_clear(&a);
}

static void
run(struct fx *f, const char *ref, enum action_status want, struct action *got)
{
	run_on(f, IDN, ref, want, got);
}

/* Makes the engine claim at the current clock: a request on Zed runs to the end. */
static void
sentinel(struct fx *f)
{
	struct action done;

	run_on(f, IDN2, "zed", ACTION_COMPLETED, &done);
	action_clear(&done);
}

struct audit_count {
	const char *action_id;
	const char *event;
	int n;
};

static int
count_entry(const struct audit_entry *ent, void *arg)
{
	struct audit_count *c = arg;

	c->n += ent->action_id != NULL && strcmp(ent->action_id, c->action_id) == 0 &&
	    strcmp(ent->event, c->event) == 0;
	return 0;
}

static int
audited(struct fx *f, const char *action_id, const char *event)
{
	struct audit_count c = { action_id, event, 0 };
	struct store_tx *tx = NULL;
	struct qerr e = {0};

	assert_int_equal(store_tx_begin(f->st, false, &tx, &e), 0);
	assert_int_equal(store_audit_list(tx, 0, 0, count_entry, &c, &e), 0);
	store_tx_rollback(tx);
	return c.n;
}

static bool
all_supported(void *arg, const struct account *acct, enum action_type type)
{
	(void)arg;
	(void)acct;
	(void)type;
	return true;
}

/* An action with one queued step on ref, written straight into the store. */
static void
insert_action(struct fx *f, const char *ref, struct action *a)
{
	char accid[64];
	struct account acct = { .id = accid, .identity_id = (char *)IDN,
		.system = (char *)"fake", .kind = (char *)"fake",
		.external_id = (char *)ref, .username = (char *)ref };
	struct store_tx *tx = NULL;
	struct qerr e = {0};

	snprintf(accid, sizeof(accid), "acc_%s", ref);
	memset(a, 0, sizeof(*a));
	a->id = xstrdup("act_stored");
	a->type = ACTION_DISABLE;
	a->status = ACTION_QUEUED;
	a->identity_id = xstrdup(IDN);
	a->requested_by = xstrdup("analyst");
	a->source = xstrdup("api");
	a->reason = xstrdup("test");
	a->params = xstrdup("{}");
	a->created_at = a->updated_at = T0;
	assert_int_equal(lifecycle_plan(a, &acct, 1, all_supported, NULL, &e), 0);
	assert_int_equal(store_tx_begin(f->st, true, &tx, &e), 0);
	if (store_action_insert(tx, a, &e) != 0)
		fail_msg("action insert: %s", e.msg);
	assert_int_equal(store_tx_commit(tx, &e), 0);
}

/* A worker of owner claims the stored step at now with a lease, and is never heard
 * of again. */
static void
claim_as(struct fx *f, const char *owner, int64_t now, int64_t lease_ms)
{
	struct step_claim cl = { .owner = owner, .now = now, .lease_ms = lease_ms };
	struct store_tx *tx = NULL;
	struct qerr e = {0};
	struct step s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(store_tx_begin(f->st, true, &tx, &e), 0);
	if (store_step_claim(tx, &cl, &s, &e) != 0)
		fail_msg("claim: %s", e.msg);
	assert_int_equal(store_tx_commit(tx, &e), 0);
	assert_int_equal(s.attempts, 1);
	step_clear(&s);
}

static void
cancel(struct fx *f, const char *id, struct action *out)
{
	struct qerr e = {0};

	memset(out, 0, sizeof(*out));
	if (engine_cancel(f->eng, &analyst, id, out, &e) != 0)
		fail_msg("engine_cancel: %s", e.msg);
}

/* ---- Tests -------------------------------------------------------------------- */

static void
test_step_succeeds_action_completes(void **state)
{
	struct fx *f = *state;
	struct store_tx *tx = NULL;
	struct account acct;
	struct action got;
	struct qerr e = {0};

	start(f);
	run(f, "alice", ACTION_COMPLETED, &got);
	assert_int_equal(got.nsteps, 1);
	assert_int_equal(got.steps[0].status, STEP_SUCCEEDED);
	assert_int_equal(got.steps[0].attempts, 1);
	assert_null(got.steps[0].lease_owner);
	assert_string_equal(got.message, "1 succeeded, 0 failed, 0 not applicable, "
	    "0 cancelled");
	assert_int_equal(locked_calls_of("alice"), 1);
	assert_int_equal(audited(f, got.id, "step.started"), 1);
	assert_int_equal(audited(f, got.id, "step.succeeded"), 1);
	assert_int_equal(audited(f, got.id, "action.completed"), 1);
	/* The state the provider reported is the account's now. */
	memset(&acct, 0, sizeof(acct));
	assert_int_equal(store_tx_begin(f->st, false, &tx, &e), 0);
	assert_int_equal(store_account_get(tx, "acc_alice", &acct, &e), 0);
	store_tx_rollback(tx);
	assert_string_equal(acct.state, "disabled");
	account_clear(&acct);
	action_clear(&got);
}

static void
test_transient_waits_then_succeeds(void **state)
{
	struct fx *f = *state;
	struct action a, got;
	const struct step *s;

	script("alice", 1, STEP_OUTCOME_TRANSIENT, 5000, false);
	start(f);
	s = run_to_wait(f, "alice", &a, &got);
	assert_int_equal(s->attempts, 1);
	/* The system's Retry-After outweighs a backoff of at most retry_cap_ms. */
	assert_int_equal(s->not_before, T0 + 5000);
	assert_int_equal(got.status, ACTION_RUNNING);
	action_clear(&got);

	/* A claim a millisecond early leaves it waiting. */
	fake_time_set(T0 + 4999);
	sentinel(f);
	get_action(f, a.id, &got);
	assert_int_equal(step_of(&got, "alice")->status, STEP_RETRY_WAIT);
	assert_int_equal(step_of(&got, "alice")->attempts, 1);
	assert_int_equal(locked_calls_of("alice"), 1);
	action_clear(&got);

	fake_time_set(T0 + 5000);
	wait_action(f, a.id, ACTION_COMPLETED, &got);
	s = step_of(&got, "alice");
	assert_int_equal(s->status, STEP_SUCCEEDED);
	assert_int_equal(s->attempts, 2);
	assert_int_equal(locked_calls_of("alice"), 2);
	pthread_mutex_lock(&fk.mu);
	assert_string_equal(fk.calls[0].ref, "alice");
	assert_int_equal(fk.calls[0].attempts, 1);
	assert_string_equal(fk.calls[2].ref, "alice");
	assert_int_equal(fk.calls[2].attempts, 2);
	assert_true(fk.calls[2].at >= T0 + 5000);
	pthread_mutex_unlock(&fk.mu);
	assert_int_equal(audited(f, a.id, "step.retry_wait"), 1);
	action_clear(&got);
	action_clear(&a);
}

static void
test_max_attempts_exhausted(void **state)
{
	struct fx *f = *state;
	struct action got;
	const struct step *s;
	size_t i;

	script("alice", 0, STEP_OUTCOME_TRANSIENT, 0, false);
	start(f);
	run_retries(f, "alice", &got);
	s = step_of(&got, "alice");
	assert_int_equal(s->status, STEP_FAILED);
	assert_int_equal(s->attempts, 3);
	assert_non_null(strstr(s->message, "gave up after 3 attempts"));
	assert_int_equal(got.status, ACTION_FAILED);
	assert_int_equal(audited(f, got.id, "step.retry_wait"), 2);
	pthread_mutex_lock(&fk.mu);
	assert_int_equal(fk.ncalls, 3);
	for (i = 0; i < fk.ncalls; i++)
		assert_int_equal(fk.calls[i].attempts, (int)i + 1);
	pthread_mutex_unlock(&fk.mu);
	action_clear(&got);
}

/* Without a Retry-After the wait is the backoff: [retry_base/2, retry_cap]. */
static void
test_backoff_bounds_wait(void **state)
{
	struct fx *f = *state;
	struct action a, got;
	const struct step *s;

	script("alice", 1, STEP_OUTCOME_TRANSIENT, 0, false);
	start(f);
	s = run_to_wait(f, "alice", &a, &got);
	assert_in_range(s->not_before - s->updated_at, 50, 100);
	fake_time_set(s->not_before);
	action_clear(&got);
	wait_action(f, a.id, ACTION_COMPLETED, &got);
	action_clear(&got);
	action_clear(&a);
}

/* A pacing wait that never reached the system is no attempt: four of them do not
 * exhaust max_attempts = 3, and the step succeeds on its first attempt. */
static void
test_pacing_wait_is_no_attempt(void **state)
{
	struct fx *f = *state;
	struct action got;
	const struct step *s;
	size_t i;
	int n;

	for (n = 1; n <= 4; n++)
		script("alice", n, STEP_OUTCOME_TRANSIENT, 1000, true);
	start(f);
	run_retries(f, "alice", &got);
	s = step_of(&got, "alice");
	assert_int_equal(s->status, STEP_SUCCEEDED);
	assert_int_equal(s->attempts, 1);
	assert_int_equal(got.status, ACTION_COMPLETED);
	assert_int_equal(audited(f, got.id, "step.retry_wait"), 4);
	pthread_mutex_lock(&fk.mu);
	assert_int_equal(fk.ncalls, 5);
	for (i = 0; i < fk.ncalls; i++)
		assert_int_equal(fk.calls[i].attempts, 1);
	assert_int_equal(fk.calls[4].at, T0 + 4 * 1000);
	pthread_mutex_unlock(&fk.mu);
	action_clear(&got);
}

static void
test_permanent_failure_partial_rollup(void **state)
{
	struct fx *f = *state;
	struct action got;

	script("bob", 0, STEP_OUTCOME_PERMANENT, 0, false);
	start(f);
	run(f, NULL, ACTION_PARTIALLY_COMPLETED, &got);
	assert_int_equal(got.nsteps, 4);
	assert_int_equal(step_of(&got, "alice")->status, STEP_SUCCEEDED);
	assert_int_equal(step_of(&got, "bob")->status, STEP_FAILED);
	assert_int_equal(step_of(&got, "bob")->attempts, 1);
	assert_string_equal(step_of(&got, "bob")->error_code, "denied");
	assert_int_equal(step_of(&got, "carol")->status, STEP_SUCCEEDED);
	assert_int_equal(step_of(&got, "dave")->status, STEP_NOT_APPLICABLE);
	assert_string_equal(got.message, "2 succeeded, 1 failed, 1 not applicable, "
	    "0 cancelled");
	assert_int_equal(locked_calls_of("bob"), 1);
	assert_int_equal(locked_calls_of("dave"), 0);
	assert_int_equal(audited(f, got.id, "action.partially_completed"), 1);
	action_clear(&got);
}

static void
test_every_step_fails_action_fails(void **state)
{
	struct fx *f = *state;
	struct action got;

	script("alice", 0, STEP_OUTCOME_PERMANENT, 0, false);
	script("bob", 0, STEP_OUTCOME_PERMANENT, 0, false);
	script("carol", 0, STEP_OUTCOME_PERMANENT, 0, false);
	start(f);
	run(f, NULL, ACTION_FAILED, &got);
	assert_string_equal(got.message, "0 succeeded, 3 failed, 1 not applicable, "
	    "0 cancelled");
	assert_int_equal(audited(f, got.id, "action.failed"), 1);
	action_clear(&got);
}

/* Not-applicable steps neither run nor keep the action from completing. */
static void
test_not_applicable_steps_complete(void **state)
{
	struct fx *f = *state;
	struct action got;

	start(f);
	run(f, NULL, ACTION_COMPLETED, &got);
	assert_int_equal(step_of(&got, "dave")->status, STEP_NOT_APPLICABLE);
	assert_string_equal(got.message, "3 succeeded, 0 failed, 1 not applicable, "
	    "0 cancelled");
	assert_int_equal(step_of(&got, "dave")->attempts, 0);
	assert_int_equal(locked_calls_of("dave"), 0);
	action_clear(&got);
}

/* A step whose worker died is claimed again once its lease runs out, not before. */
static void
test_expired_lease_reclaimed(void **state)
{
	struct fx *f = *state;
	struct action a, got;
	const struct step *s;

	insert_action(f, "alice", &a);
	claim_as(f, "dead", T0, 1000);
	fake_time_set(T0 + 500);
	start(f);
	sentinel(f);
	get_action(f, a.id, &got);
	s = step_of(&got, "alice");
	assert_int_equal(s->status, STEP_RUNNING);
	assert_string_equal(s->lease_owner, "dead");
	assert_int_equal(locked_calls_of("alice"), 0);
	action_clear(&got);

	fake_time_set(T0 + 1001);
	wait_action(f, a.id, ACTION_COMPLETED, &got);
	s = step_of(&got, "alice");
	assert_int_equal(s->status, STEP_SUCCEEDED);
	assert_int_equal(s->attempts, 2);
	assert_null(s->lease_owner);
	assert_int_equal(locked_calls_of("alice"), 1);
	action_clear(&got);
	action_clear(&a);
}

/* After a restart the node's own running steps run again at once, lease or not. */
static void
test_restart_reclaims_own_steps(void **state)
{
	struct fx *f = *state;
	struct action a, got;

	insert_action(f, "alice", &a);
	claim_as(f, NODE, T0, 60000);
	start(f);
	wait_action(f, a.id, ACTION_COMPLETED, &got);
	assert_int_equal(step_of(&got, "alice")->attempts, 2);
	assert_int_equal(locked_calls_of("alice"), 1);
	action_clear(&got);
	action_clear(&a);
}

static void
test_cancel_queued_action(void **state)
{
	struct fx *f = *state;
	struct action first, second, out, got;

	hold_calls(true);
	start(f);
	request(f, "alice", &first);
	wait_held(1);
	/* "fake" runs one step at a time: bob's waits behind alice's. */
	request(f, "bob", &second);
	get_action(f, second.id, &got);
	assert_int_equal(got.status, ACTION_QUEUED);
	assert_int_equal(step_of(&got, "bob")->status, STEP_QUEUED);
	action_clear(&got);

	cancel(f, second.id, &out);
	assert_int_equal(out.status, ACTION_CANCELLED);
	assert_int_equal(step_of(&out, "bob")->status, STEP_CANCELLED);
	assert_string_equal(step_of(&out, "bob")->message, "cancelled before it started");
	hold_calls(false);
	wait_action(f, first.id, ACTION_COMPLETED, &got);
	action_clear(&got);
	sentinel(f);
	assert_int_equal(locked_calls_of("bob"), 0);
	get_action(f, second.id, &got);
	assert_int_equal(got.status, ACTION_CANCELLED);
	assert_int_equal(step_of(&got, "bob")->attempts, 0);
	assert_int_equal(audited(f, second.id, "step.cancelled"), 1);
	assert_int_equal(audited(f, second.id, "action.cancelled"), 1);
	action_clear(&got);
	action_clear(&out);
	action_clear(&second);
	action_clear(&first);
}

static void
test_cancel_during_retry_wait(void **state)
{
	struct fx *f = *state;
	struct action a, out, got;

	script("alice", 1, STEP_OUTCOME_TRANSIENT, 5000, false);
	start(f);
	run_to_wait(f, "alice", &a, &got);
	action_clear(&got);
	cancel(f, a.id, &out);
	assert_int_equal(out.status, ACTION_CANCELLED);
	assert_int_equal(step_of(&out, "alice")->status, STEP_CANCELLED);
	fake_time_set(T0 + 10000);
	sentinel(f);
	assert_int_equal(locked_calls_of("alice"), 1);
	action_clear(&out);
	action_clear(&a);
}

/* The attempt in flight cannot be stopped, but its retry is not made. */
static void
test_cancel_while_running_stops_retry(void **state)
{
	struct fx *f = *state;
	struct action a, out, got;
	const struct step *s;

	script("alice", 1, STEP_OUTCOME_TRANSIENT, 0, false);
	hold_calls(true);
	start(f);
	request(f, "alice", &a);
	wait_held(1);
	cancel(f, a.id, &out);
	assert_true(out.cancel_requested);
	assert_int_equal(out.status, ACTION_RUNNING);
	assert_int_equal(step_of(&out, "alice")->status, STEP_RUNNING);
	hold_calls(false);
	wait_action(f, a.id, ACTION_CANCELLED, &got);
	s = step_of(&got, "alice");
	assert_int_equal(s->status, STEP_CANCELLED);
	assert_non_null(strstr(s->message, "cancelled after attempt 1"));
	action_clear(&got);
	fake_time_set(T0 + 10000);
	sentinel(f);
	assert_int_equal(locked_calls_of("alice"), 1);
	action_clear(&out);
	action_clear(&a);
}

/* Steps of one system and type go in one execute_batch call, each with its own
 * outcome; a step that must retry comes back on its own. */
static void
test_batch_one_call_per_step_results(void **state)
{
	struct fx *f = *state;
	struct action a, got;
	size_t i;

	fk.batch_max = 3;
	script("bob", 0, STEP_OUTCOME_PERMANENT, 0, false);
	script("carol", 1, STEP_OUTCOME_TRANSIENT, 1000, false);
	start(f);
	request(f, NULL, &a);
	drive_retries(f, a.id, "carol", &got);
	action_clear(&got);
	wait_action(f, a.id, ACTION_PARTIALLY_COMPLETED, &got);
	assert_int_equal(step_of(&got, "alice")->status, STEP_SUCCEEDED);
	assert_int_equal(step_of(&got, "bob")->status, STEP_FAILED);
	assert_int_equal(step_of(&got, "carol")->status, STEP_SUCCEEDED);
	assert_int_equal(step_of(&got, "carol")->attempts, 2);
	assert_int_equal(step_of(&got, "dave")->status, STEP_NOT_APPLICABLE);
	pthread_mutex_lock(&fk.mu);
	assert_int_equal(fk.batch_calls, 1);
	assert_int_equal(fk.ncalls, 4);
	for (i = 0; i < 3; i++) {
		assert_int_equal(fk.calls[i].batch, 3);
		assert_string_equal(fk.calls[i].action, a.id);
	}
	assert_string_equal(fk.calls[3].ref, "carol");
	assert_int_equal(fk.calls[3].batch, 1);
	pthread_mutex_unlock(&fk.mu);
	action_clear(&got);
	action_clear(&a);
}

/* A batch holds at most batch_max steps; the rest go in the next call. */
static void
test_batch_split_at_batch_max(void **state)
{
	struct fx *f = *state;
	struct action got;

	fk.batch_max = 2;
	start(f);
	run(f, NULL, ACTION_COMPLETED, &got);
	pthread_mutex_lock(&fk.mu);
	assert_int_equal(fk.batch_calls, 1);
	assert_int_equal(fk.ncalls, 3);
	assert_int_equal(fk.calls[0].batch, 2);
	assert_int_equal(fk.calls[1].batch, 2);
	assert_int_equal(fk.calls[2].batch, 1);
	pthread_mutex_unlock(&fk.mu);
	action_clear(&got);
}

/* ---- Waits, the step's deadline, adaptive concurrency ------------------------ */

/*
 * Five pacing waits (more than max_attempts = 3) and a refusal with a Retry-After:
 * the step completes on its second attempt, with six waits and the time they asked
 * for; the refusal is the one failed attempt.
 */
static void
test_waits_recorded_apart_from_attempts(void **state)
{
	struct fx *f = *state;
	struct action got;
	const struct step *s;
	int n;

	for (n = 1; n <= 5; n++)
		script("alice", n, STEP_OUTCOME_TRANSIENT, 1000, true);
	script("alice", 6, STEP_OUTCOME_TRANSIENT, 2000, false);
	start(f);
	run_retries(f, "alice", &got);
	s = step_of(&got, "alice");
	assert_int_equal(s->status, STEP_SUCCEEDED);
	assert_int_equal(s->attempts, 2);
	assert_int_equal(s->waits, 6);
	assert_int_equal(s->wait_ms, 5 * 1000 + 2000);
	pthread_mutex_lock(&fk.mu);
	assert_int_equal(fk.ncalls, 7);
	assert_int_equal(fk.calls[5].attempts, 1);
	assert_int_equal(fk.calls[6].attempts, 2);
	assert_int_equal(fk.calls[6].at, T0 + 5 * 1000 + 2000);
	pthread_mutex_unlock(&fk.mu);
	action_clear(&got);
}

/* A step held back without end gives up once its next try would fall past its
 * deadline, and says that bound ended it, not attempts. */
static void
test_deadline_ends_waiting_step(void **state)
{
	struct fx *f = *state;
	struct action got;
	const struct step *s;

	f->opt.step_deadline_ms = 10000;
	script("alice", 0, STEP_OUTCOME_TRANSIENT, 3000, true);
	start(f);
	run_retries(f, "alice", &got);
	s = step_of(&got, "alice");
	assert_int_equal(s->status, STEP_FAILED);
	assert_int_equal(s->attempts, 0);
	assert_int_equal(s->waits, 3);
	assert_int_equal(s->wait_ms, 9000);
	assert_non_null(strstr(s->message, "gave up: the step's deadline (10s) passes "
	    "before its next try, after 0 attempts and 3 waits"));
	assert_null(strstr(s->message, "gave up after"));
	assert_int_equal(locked_calls_of("alice"), 4);
	assert_int_equal(got.status, ACTION_FAILED);
	action_clear(&got);
}

/* A call that comes back transient after the deadline has passed is not retried. */
static void
test_deadline_passed_during_call(void **state)
{
	struct fx *f = *state;
	struct action a, got;
	const struct step *s;

	f->opt.step_deadline_ms = 60000;
	script("alice", 0, STEP_OUTCOME_TRANSIENT, 0, false);
	start(f);
	hold_calls(true);
	request(f, "alice", &a);
	wait_held(1);
	fake_time_set(T0 + 60000);
	hold_calls(false);
	wait_step(f, a.id, "alice", STEP_FAILED, &got);
	s = step_of(&got, "alice");
	assert_int_equal(s->attempts, 1);
	assert_non_null(strstr(s->message, "gave up: the step's deadline (1m) passed"));
	assert_int_equal(locked_calls_of("alice"), 1);
	action_clear(&got);
	action_clear(&a);
}

static int
concurrency_of(struct fx *f, const char *system)
{
	size_t i;

	for (i = 0; i < engine_system_count(f->eng); i++)
		if (strcmp(engine_system_name(f->eng, i), system) == 0)
			return engine_system_concurrency(f->eng, i);
	fail_msg("no system %s", system);
	return 0;
}

/* Until the fake has had ncalls calls and holds held of them; the bound only turns a
 * hang into a failure. */
static void
wait_calls(size_t ncalls, int held)
{
	double until = clock_mono_s() + HANG_GUARD_S;
	bool there;

	for (;;) {
		pthread_mutex_lock(&fk.mu);
		there = fk.ncalls == ncalls && fk.held == held;
		pthread_mutex_unlock(&fk.mu);
		if (there)
			return;
		if (clock_mono_s() > until)
			fail_msg("never %zu calls with %d held (%zu, %d)", ncalls, held,
			    fk.ncalls, fk.held);
		clock_sleep_ms(2);
	}
}

static void
let_go(int n)
{
	pthread_mutex_lock(&fk.mu);
	fk.let_go += n;
	pthread_cond_broadcast(&fk.cv);
	pthread_mutex_unlock(&fk.mu);
}

/*
 * "wide" allows 4 at once. Its first 4 calls are refused for too many concurrent
 * requests: the limit halves once (the 4 were one overload) and 3 becomes its ceiling,
 * so only 2 of the 4 steps left run at once and 2 stay queued; the successes that
 * follow bring it back to 3, and past 3 only once ENGINE_PROBE_MS has gone by.
 */
static void
test_concurrency_adapts(void **state)
{
	struct fx *f = *state;
	struct action a, z, b, got;
	const struct step *s;
	double until;
	size_t i;

	fk.refuse = 4;
	start(f);
	assert_int_equal(concurrency_of(f, "wide"), 4);
	hold_calls(true);
	request_on(f, IDN3, NULL, &a);
	wait_calls(4, 4);
	let_go(4);
	wait_calls(6, 2);
	assert_int_equal(concurrency_of(f, "wide"), 2);
	/* A request claims what is claimable when it is made, and there are workers to
	 * spare: w7 and w8 stay queued past the lowered limit. */
	request_on(f, IDN2, "zed", &z);
	get_action(f, a.id, &got);
	pthread_mutex_lock(&fk.mu);
	for (i = 0; i < got.nsteps; i++) {
		s = &got.steps[i];
		assert_int_equal(s->status, calls_of(s->account_ref) == 0 ? STEP_QUEUED :
		    calls_of(s->account_ref) == 1 && (strcmp(fk.calls[4].ref,
		    s->account_ref) == 0 || strcmp(fk.calls[5].ref, s->account_ref) == 0) ?
		    STEP_RUNNING : STEP_RETRY_WAIT);
	}
	pthread_mutex_unlock(&fk.mu);
	action_clear(&got);

	hold_calls(false);
	fake_time_set(T0 + ENGINE_PROBE_MS - 1);
	wait_action(f, a.id, ACTION_COMPLETED, &got);
	action_clear(&got);
	until = clock_mono_s() + HANG_GUARD_S;
	while (concurrency_of(f, "wide") < 3 && clock_mono_s() < until)
		clock_sleep_ms(2);
	assert_int_equal(concurrency_of(f, "wide"), 3);
	pthread_mutex_lock(&fk.mu);
	assert_int_equal(calls_of(fk.calls[0].ref), 2);
	assert_int_equal(calls_of(fk.calls[4].ref), 1);
	pthread_mutex_unlock(&fk.mu);

	fake_time_set(T0 + ENGINE_PROBE_MS);
	request_on(f, IDN3, NULL, &b);
	wait_action(f, b.id, ACTION_COMPLETED, &got);
	until = clock_mono_s() + HANG_GUARD_S;
	while (concurrency_of(f, "wide") < 4 && clock_mono_s() < until)
		clock_sleep_ms(2);
	assert_int_equal(concurrency_of(f, "wide"), 4);
	action_clear(&got);
	action_clear(&b);
	action_clear(&z);
	action_clear(&a);
}

/* ---- Automatic attack disruption --------------------------------------------- */

/* A ransomware alert from the source edr, id ext, that names alice. */
static void
alert_on_alice(struct alert *a, const char *ext)
{
	memset(a, 0, sizeof(*a));
	a->source = xstrdup("edr");
	a->external_id = xstrdup(ext);
	a->title = xstrdup("ransomware on a file server");
	a->category = xstrdup("ransomware");
	a->severity = ALERT_SEV_HIGH;
	a->confidence = 95;
	a->time = T0;
	assert_non_null(a->entities = calloc(1, sizeof(*a->entities)));
	a->nentities = 1;
	a->entities[0].kind = xstrdup("account");
	a->entities[0].id_type = xstrdup("fake_id");
	a->entities[0].value = xstrdup("alice");
}

static int
note_outcome(const struct alert_decision *d, void *arg)
{
	snprintf(arg, 32, "%s", d->outcome);
	return 0;
}

/*
 * From an alert to the first provider calls there is one durable commit: the alert,
 * the decision, both actions of contain with their audit entries, and the claim of
 * the first steps (one disable on "fake", whose limit is one, and dave's revoke on
 * "other") are one transaction. A repeat of the alert commits nothing.
 */
static void
test_alert_one_commit_before_first_calls(void **state)
{
	struct fx *f = *state;
	struct store_tx *tx = NULL;
	struct call calls[2];
	struct alert a, again;
	struct qerr e = {0};
	char outcome[32] = "";
	uint64_t before;
	size_t ncalls;
	bool created = false;

	start(f);
	hold_calls(true);
	alert_on_alice(&a, "ext-1");
	before = store_write_commits(f->st);
	if (engine_alert(f->eng, &detector, &a, &created, &e) != 0)
		fail_msg("engine_alert: %s", e.msg);
	assert_true(created);
	wait_held(2);
	pthread_mutex_lock(&fk.mu);
	ncalls = fk.ncalls;
	memcpy(calls, fk.calls, sizeof(calls));
	pthread_mutex_unlock(&fk.mu);
	assert_int_equal(ncalls, 2);
	assert_int_equal(calls[0].commits, before + 1);
	assert_int_equal(calls[1].commits, before + 1);
	assert_int_equal(store_tx_begin(f->st, false, &tx, &e), 0);
	assert_true(store_decision_list(tx, a.id, NULL, note_outcome, outcome, &e) >= 0);
	store_tx_rollback(tx);
	assert_string_equal(outcome, "contained");

	alert_on_alice(&again, "ext-1");
	before = store_write_commits(f->st);
	if (engine_alert(f->eng, &detector, &again, &created, &e) != 0)
		fail_msg("engine_alert (repeat): %s", e.msg);
	assert_false(created);
	assert_string_equal(again.id, a.id);
	assert_int_equal(store_write_commits(f->st), before);
	alert_clear(&again);
	alert_clear(&a);
}

/* A preview's lines: one per step, with what will happen there ("other" cannot
 * disable: not_supported and why; an enable of enabled accounts: already), no
 * warnings for an untagged identity. */
static void
test_preview_lines(void **state)
{
	struct fx *f = *state;
	struct action_request req = { .type = ACTION_DISABLE, .identity_id = IDN,
		.reason = "test", .source = "api", .preview = true };
	struct action_result res;
	struct qerr e = {0};
	const json_t *l;
	const char *sys, *outcome;
	size_t i, change = 0, unsupported = 0;

	start(f);
	assert_int_equal(engine_request_bulk(f->eng, &analyst, &req, 1, false, &res, &e), 0);
	assert_int_equal(res.r, 0);
	assert_non_null(res.preview);
	assert_int_equal(json_array_size(json_object_get(res.preview, "accounts")),
	    res.a.nsteps);
	json_array_foreach(json_object_get(res.preview, "accounts"), i, l) {
		sys = json_string_value(json_object_get(l, "system"));
		outcome = json_string_value(json_object_get(l, "outcome"));
		assert_string_equal(json_string_value(json_object_get(l, "step_id")),
		    res.a.steps[i].id);
		assert_string_equal(json_string_value(json_object_get(l, "state")), "enabled");
		if (strcmp(sys, "other") == 0) {
			assert_string_equal(outcome, "not_supported");
			assert_non_null(strstr(json_string_value(json_object_get(l, "note")),
			    "not supported by other (fake)"));
			unsupported++;
		} else {
			assert_string_equal(outcome, "change");
			change++;
		}
	}
	assert_int_equal(change, 3);
	assert_int_equal(unsupported, 1);
	assert_int_equal(json_array_size(json_object_get(res.preview, "warnings")), 0);
	engine_results_clear(&res, 1);

	/* enable on accounts last read enabled: already so, nothing to change */
	req.type = ACTION_ENABLE;
	assert_int_equal(engine_request_bulk(f->eng, &analyst, &req, 1, false, &res, &e), 0);
	assert_int_equal(res.r, 0);
	json_array_foreach(json_object_get(res.preview, "accounts"), i, l) {
		assert_string_equal(json_string_value(json_object_get(l, "outcome")), "already");
		assert_string_equal(json_string_value(json_object_get(l, "note")),
		    "already enabled: nothing to change");
	}
	assert_int_equal(i, 4);
	engine_results_clear(&res, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_preview_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_step_succeeds_action_completes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_transient_waits_then_succeeds, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_max_attempts_exhausted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_backoff_bounds_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pacing_wait_is_no_attempt, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_waits_recorded_apart_from_attempts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_ends_waiting_step, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deadline_passed_during_call, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_adapts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permanent_failure_partial_rollup,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_step_fails_action_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_applicable_steps_complete, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expired_lease_reclaimed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_restart_reclaims_own_steps, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_queued_action, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_during_retry_wait, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_while_running_stops_retry,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_one_call_per_step_results,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_alert_one_commit_before_first_calls,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_split_at_batch_max, setup,
		    teardown),
	};

	return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
