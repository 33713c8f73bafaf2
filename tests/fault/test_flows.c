/*
 * Fault injection over quell's representative flows (request, bulk request, approval,
 * execution with undo, sync, alert, audit verification), in process: the engine over
 * a fake provider that always succeeds and the SQLite store behind the fault_store
 * decorator. For each flow and each kind of fault (fault.h) the flow runs once per N,
 * on a fresh database, with the Nth call of that kind failing, until a run in which
 * the flow got to its end without the fault being reached. A run with no fault must
 * succeed; after every fault, quell must hold together: the engine restarted without
 * faults brings every action to rest, each action's status is the roll-up of its
 * steps with its audit entries there exactly once, and the audit chain verifies.
 * Crashes and leaks are the sanitize build's to find (LeakSanitizer at exit).
 *
 * The test's own reads go through a second store handle without the decorator, on a
 * thread exempt from the countdown, so only quell's calls are counted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/clock.h"
#include "core/lifecycle.h"
#include "core/log.h"
#include "core/rbac.h"
#include "engine/engine.h"
#include "fault.h"

#define IDN		"idn_1"
#define IDN2		"idn_2"
#define T0		INT64_C(1700000000000)
#define MAX_N		20000
#define STRIDE		32
/* A faulted flow may leave work for later: the dispatcher looks again within 1 s
 * after a failed claim, and the restart ends whatever is left. */
#define FLOW_WAIT_S	2.5
#define SETTLE_WAIT_S	15.0	/* only turns a hang into a failure */
#define MAX_ACTIONS	16

/* ---- The fake provider: every step succeeds, three accounts to sync ------------ */

struct provider {
	int unused;
};

static int
fake_open(const struct system_config *cfg, struct provider **out, struct qerr *e)
{
	(void)cfg;
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

static bool
fake_supports(const struct provider *p, enum action_type type)
{
	(void)p;
	(void)type;
	return true;
}

static int
fake_execute(struct provider *p, const struct step *s, struct step_result *res)
{
	(void)p;
	provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "done");
	snprintf(res->state, sizeof(res->state), "%s", s->type == ACTION_DISABLE ?
	    "disabled" : "enabled");
	return 0;
}

static size_t
fake_batch_max(enum action_type type)
{
	return type == ACTION_DISABLE ? 4 : 0;
}

static int
fake_execute_batch(struct provider *p, const struct step *const *steps, size_t n,
    struct step_result *res)
{
	size_t i;

	for (i = 0; i < n; i++)
		fake_execute(p, steps[i], &res[i]);
	return 0;
}

static int
fake_list(struct provider *p, provider_account_cb cb, void *arg, struct qerr *e)
{
	static const char *const refs[] = { "alice", "bob", "erin" };
	char upn[64];
	size_t i;
	int r;

	(void)p;
	for (i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
		struct account a = { .external_id = (char *)refs[i],
			.username = (char *)refs[i], .upn = upn, .state = (char *)"enabled" };

		snprintf(upn, sizeof(upn), "%s@quell.test", refs[i]);
		if ((r = cb(&a, arg)) != 0)
			return qerr_set(e, r, NULL, "listing stopped at %s", refs[i]);
	}
	return 0;
}

static void
fake_close(struct provider *p)
{
	free(p);
}

static const struct kind_alert_id fake_alert_ids[] = {
	{ "upn", KIND_MATCH_UPN, "a upn looks like user@domain", NULL },
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
	.list_accounts = fake_list,
	.close = fake_close,
};

static const struct provider_ops *
fake_lookup(const char *kind)
{
	return strcmp(kind, "fake") == 0 ? &fake_ops : NULL;
}

/* ---- Who asks ------------------------------------------------------------------ */

static struct grant all_grant = { .role = "admin", .perms = PERM_ALL, .source = "test" };
static const struct grant_set all_grants = { &all_grant, 1 };
static const struct subject analyst_subject = { .id = "tok_1", .name = "analyst",
	.role = "admin" };
static const struct subject approver_subject = { .id = "tok_2", .name = "approver",
	.role = "admin" };
static const struct actor analyst = { .id = "tok_1", .name = "analyst", .kind = "token",
	.role = "admin", .perms = PERM_ALL, .subject = &analyst_subject,
	.grants = &all_grants };
static const struct actor approver = { .id = "tok_2", .name = "approver",
	.kind = "token", .role = "admin", .perms = PERM_ALL, .subject = &approver_subject,
	.grants = &all_grants };

/* ---- Fixture ------------------------------------------------------------------- */

static const char config_text[] =
	"[server]\n"
	"node_id = n1\n"
	"[system \"fake\"]\n"
	"kind = fake\n"
	"[system \"spare\"]\n"
	"kind = fake\n"
	"[disruption \"contain-ransomware\"]\n"
	"categories = ransomware\n"
	"min_severity = high\n"
	"actions = contain mark_compromised\n";

struct fx {
	char dir[256];
	char path[300];
	struct config cfg;
	struct store *st;	/* quell's, behind fault_store */
	struct store *check;	/* the test's, straight to SQLite */
	struct engine *eng;
	struct engine_options opt;
};

static void
put_account(struct store_tx *tx, const char *idn, const char *system, const char *ref)
{
	char id[64], upn[64];
	struct account a = { .id = id, .identity_id = (char *)idn, .system = (char *)system,
		.kind = (char *)"fake", .external_id = (char *)ref, .username = (char *)ref,
		.upn = upn, .state = (char *)"enabled", .created_at = T0 };
	struct qerr e = {0};

	snprintf(id, sizeof(id), "acc_%s", ref);
	snprintf(upn, sizeof(upn), "%s@quell.test", ref);
	a.id = strdup(id);
	if (store_account_upsert(tx, &a, &e) != 0)
		fail_msg("account %s: %s", ref, e.msg);
	free(a.id);
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

/* Alice and Bob in "fake" and Carol in "spare" are one identity; Zed another. */
static void
seed(struct store *st)
{
	struct store_tx *tx = NULL;
	struct qerr e = {0};

	assert_int_equal(store_tx_begin(st, true, &tx, &e), 0);
	put_identity(tx, IDN);
	put_identity(tx, IDN2);
	put_account(tx, IDN, "fake", "alice");
	put_account(tx, IDN, "fake", "bob");
	put_account(tx, IDN, "spare", "carol");
	put_account(tx, IDN2, "spare", "zed");
	assert_int_equal(store_tx_commit(tx, &e), 0);
}

static void
engine_up(struct fx *f)
{
	struct qerr e = {0};

	if (engine_start(&f->cfg, f->st, &f->opt, &f->eng, &e) != 0)
		fail_msg("engine_start: %s", e.msg);
}

/* The migrated and seeded database each run starts from (a copy: migrating anew
 * every run would cost more than the run). */
static char template_dir[256], template_db[300];

static void
copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[65536];
	size_t n;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	assert_int_equal(fclose(out), 0);
	fclose(in);
}

/* Under /dev/shm when there is one: a run's fsyncs then cost nothing. */
static void
make_dir(char *dir, size_t len)
{
	const char *tmp = getenv("TMPDIR");

	if (tmp == NULL)
		tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, len, "%s/quell-fault-XXXXXX", tmp);
	assert_non_null(mkdtemp(dir));
}

static void
make_template(void)
{
	struct store *st = NULL;
	struct qerr e = {0};

	make_dir(template_dir, sizeof(template_dir));
	snprintf(template_db, sizeof(template_db), "%s/template.db", template_dir);
	if (store_open(&store_sqlite, template_db, 1, &st, &e) != 0)
		fail_msg("store_open: %s", e.msg);
	seed(st);
	store_close(st);
}

static void
fx_open(struct fx *f)
{
	struct qerr e = {0};

	memset(f, 0, sizeof(*f));
	make_dir(f->dir, sizeof(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/quell.db", f->dir);
	copy_file(template_db, f->path);
	if (config_parse("fault.conf", config_text, &f->cfg, &e) != 0)
		fail_msg("config: %s", e.msg);
	f->cfg.kinds = (struct kind_table){ fake_kinds, 1 };
	if (store_open(&fault_store, f->path, 4, &f->st, &e) != 0 ||
	    store_open(&store_sqlite, f->path, 1, &f->check, &e) != 0)
		fail_msg("store_open: %s", e.msg);
	f->opt = (struct engine_options){ .node_id = "n1", .workers = 2,
		.lease_ms = 60000, .retry_base_ms = 10, .retry_cap_ms = 50,
		.max_attempts = 5, .lookup = fake_lookup };
	engine_up(f);
}

static void
fx_close(struct fx *f)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
	char p[320];
	size_t i;

	engine_stop(f->eng);
	store_close(f->st);
	store_close(f->check);
	config_clear(&f->cfg);
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffixes[i]);
		unlink(p);
	}
	rmdir(f->dir);
}

/* ---- The test's own reads ------------------------------------------------------ */

struct census {
	char ids[MAX_ACTIONS][64];
	size_t n;
	size_t open;		/* neither terminal nor waiting for approval */
	size_t pending;
};

static int
count_action(const struct action *a, void *arg)
{
	struct census *c = arg;

	if (c->n < MAX_ACTIONS)
		snprintf(c->ids[c->n++], sizeof(c->ids[0]), "%s", a->id);
	c->pending += a->status == ACTION_PENDING_APPROVAL;
	c->open += !action_status_terminal(a->status) &&
	    a->status != ACTION_PENDING_APPROVAL;
	return 0;
}

static int
census(struct fx *f, struct census *c)
{
	struct action_filter flt = { .limit = 1000 };
	struct store_tx *tx = NULL;
	struct qerr e = {0};
	int r;

	fault_exempt(true);
	memset(c, 0, sizeof(*c));
	if ((r = store_tx_begin(f->check, false, &tx, &e)) == 0)
		r = store_action_list(tx, &flt, count_action, c, &e);
	store_tx_rollback(tx);
	fault_exempt(false);
	return r;
}

/* Waits (bounded) until no action is in flight; 0 once none is, else -1. */
static int
settle(struct fx *f, double bound_s)
{
	double until = clock_mono_s() + bound_s;
	struct census c;

	for (;;) {
		if (census(f, &c) == 0 && c.open == 0)
			return 0;
		if (clock_mono_s() > until)
			return -1;
		clock_sleep_ms(2);
	}
}

/* Every action stored is completed: what a flow without a fault must leave. */
static int
all_completed(struct fx *f)
{
	struct census c;
	struct action a;
	struct store_tx *tx = NULL;
	struct qerr e = {0};
	size_t i;
	int r;

	if ((r = settle(f, SETTLE_WAIT_S)) != 0 || (r = census(f, &c)) != 0)
		return r;
	fault_exempt(true);
	if ((r = store_tx_begin(f->check, false, &tx, &e)) != 0)
		goto out;
	for (i = 0; i < c.n && r == 0; i++) {
		memset(&a, 0, sizeof(a));
		if ((r = store_action_get(tx, c.ids[i], &a, &e)) == 0 &&
		    a.status != ACTION_COMPLETED) {
			print_message("action %s is %s\n", a.id,
			    action_status_name(a.status));
			r = QERR_CONFLICT;
		}
		action_clear(&a);
	}
out:
	store_tx_rollback(tx);
	fault_exempt(false);
	return c.n == 0 && r == 0 ? QERR_NOT_FOUND : r;
}

/* ---- The flows: each returns 0 when everything it asked for succeeded --------- */

static int
disable(struct fx *f, const char *idn, const char *hold_rule, struct action *a,
    struct qerr *e)
{
	struct action_request req = { .type = ACTION_DISABLE, .identity_id = idn,
		.reason = "fault test", .source = "api", .hold_rule = hold_rule };

	memset(a, 0, sizeof(*a));
	return engine_request(f->eng, &analyst, &req, a, e);
}

static int
flow_request(struct fx *f, struct qerr *e)
{
	struct action a;
	int r = disable(f, IDN, NULL, &a, e);

	action_clear(&a);
	return r;
}

static int
flow_bulk(struct fx *f, struct qerr *e)
{
	struct action_request reqs[2] = {
		{ .type = ACTION_DISABLE, .identity_id = IDN, .reason = "fault test",
		  .source = "api" },
		{ .type = ACTION_REVOKE_SESSIONS, .identity_id = IDN2,
		  .reason = "fault test", .source = "api" },
	};
	struct action_result res[2];
	int r, i;

	memset(res, 0, sizeof(res));
	if ((r = engine_request_bulk(f->eng, &analyst, reqs, 2, true, res, e)) != 0)
		return r;
	for (i = 0; i < 2; i++)
		if (r == 0 && res[i].r != 0) {
			*e = res[i].e;
			r = res[i].r;
		}
	engine_results_clear(res, 2);
	return r;
}

static int
flow_approve(struct fx *f, struct qerr *e)
{
	struct action a, d;
	int r;

	if ((r = disable(f, IDN, "second-person", &a, e)) == 0) {
		memset(&d, 0, sizeof(d));
		r = engine_decide(f->eng, &approver, a.id, true, "checked", &d, e);
		action_clear(&d);
	}
	action_clear(&a);
	return r;
}

static int
flow_undo(struct fx *f, struct qerr *e)
{
	struct action a, u;
	int r;

	if ((r = disable(f, IDN, NULL, &a, e)) == 0 && settle(f, FLOW_WAIT_S) != 0)
		r = qerr_set(e, QERR_TRANSIENT, NULL, "%s still in flight", a.id);
	if (r == 0) {
		memset(&u, 0, sizeof(u));
		r = engine_undo(f->eng, &analyst, a.id, "false positive", NULL, &u, e);
		action_clear(&u);
	}
	action_clear(&a);
	return r;
}

static int
sync_done(struct fx *f, int64_t run, struct qerr *e)
{
	double until = clock_mono_s() + FLOW_WAIT_S;
	struct sync_status s;

	for (;;) {
		engine_sync_status(f->eng, 0, &s);
		if (s.finished_run >= run)
			return s.error[0] == '\0' ? 0 :
			    qerr_set(e, QERR_STORE, NULL, "sync: %s", s.error);
		if (clock_mono_s() > until)
			return qerr_set(e, QERR_TRANSIENT, NULL, "sync %lld never ended",
			    (long long)run);
		clock_sleep_ms(2);
	}
}

static int
flow_sync(struct fx *f, struct qerr *e)
{
	int64_t run = 0;
	int r;

	if ((r = engine_sync_request(f->eng, &analyst, "fake", true, &run, e)) != 0)
		return r;
	return sync_done(f, run, e);
}

static int
flow_alert(struct fx *f, struct qerr *e)
{
	struct alert_entity en = { .kind = "account", .id_type = "upn",
		.value = "alice@quell.test" };
	struct alert a = { .source = "mdi", .external_id = "mdi-1", .time = T0,
		.title = "Ransomware activity", .category = "ransomware",
		.severity = ALERT_SEV_HIGH, .confidence = 90, .entities = &en,
		.nentities = 1 };
	bool created = false;
	int r;

	r = engine_alert(f->eng, &analyst, &a, &created, e);
	free(a.id);
	free(en.identity_id);
	free(en.account_id);
	free(en.resolution);
	if (r == 0 && !created)
		r = qerr_set(e, QERR_CONFLICT, NULL, "the alert was not stored as new");
	return r;
}

struct chain {
	char prev[65];
	int64_t n;
	bool broken;
	struct qerr why;
};

static int
chain_entry(const struct audit_entry *ent, void *arg)
{
	struct chain *c = arg;
	int r;

	if ((r = audit_check(ent, c->prev, c->n + 1, &c->why)) != 0) {
		c->broken = r == QERR_CONFLICT;
		return r;
	}
	memcpy(c->prev, ent->hash, sizeof(c->prev));
	c->n++;
	return 0;
}

/* What `quell audit verify` does: walks the chain; *c says how far and why not. */
static int
verify_chain(struct store *st, struct chain *c, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int r;

	memset(c, 0, sizeof(*c));
	memcpy(c->prev, audit_genesis, sizeof(c->prev));
	if ((r = store_tx_begin(st, false, &tx, e)) == 0)
		r = store_audit_list(tx, 0, 0, chain_entry, c, e);
	store_tx_rollback(tx);
	return r;
}

/* Under a fault the verification may fail, but never call an intact chain broken. */
static int
flow_audit(struct fx *f, struct qerr *e)
{
	struct chain c;
	int r = verify_chain(f->st, &c, e);

	if (r != 0 && c.why.code != 0)
		*e = c.why;
	if (c.broken)
		fail_msg("an intact chain was called broken at entry %lld: %s",
		    (long long)c.n + 1, c.why.msg);
	return r;
}

/* The audit flow verifies what a request left. */
static void
prime_audit(struct fx *f)
{
	struct qerr e = {0};

	if (flow_request(f, &e) != 0 || all_completed(f) != 0)
		fail_msg("priming the audit log: %s", e.msg);
}

struct flow {
	const char *name;
	int (*run)(struct fx *f, struct qerr *e);
	void (*prime)(struct fx *f);
	bool acts;		/* it requests actions, which must all complete */
	long stride;		/* its allocation faults' step (0: STRIDE) */
};

/* ---- After a fault ------------------------------------------------------------- */

struct tally {
	const char *action_id;
	const char *event;
	int n;
	int any;
};

static int
tally_entry(const struct audit_entry *ent, void *arg)
{
	struct tally *t = arg;

	if (ent->action_id == NULL || strcmp(ent->action_id, t->action_id) != 0)
		return 0;
	t->any++;
	t->n += strcmp(ent->event, t->event) == 0;
	return 0;
}

/* A stored action is whole: its status is its steps' roll-up, audited once. */
static void
check_action(struct store_tx *tx, const char *id, const char *ctx)
{
	struct action a;
	struct tally t;
	struct qerr e = {0};
	char msg[256], ev[64];
	enum action_status want;

	memset(&a, 0, sizeof(a));
	if (store_action_get(tx, id, &a, &e) != 0)
		fail_msg("%s: action %s: %s", ctx, id, e.msg);
	if (a.nsteps == 0 && a.status != ACTION_DENIED)
		fail_msg("%s: action %s (%s) has no steps", ctx, id,
		    action_status_name(a.status));
	want = lifecycle_rollup(&a, msg, sizeof(msg));
	if (a.status != ACTION_PENDING_APPROVAL && a.status != ACTION_DENIED &&
	    a.status != want)
		fail_msg("%s: action %s is %s but its steps say %s (%s)", ctx, id,
		    action_status_name(a.status), action_status_name(want), msg);
	snprintf(ev, sizeof(ev), "action.%s", action_status_name(a.status));
	t = (struct tally){ id, ev, 0, 0 };
	if (store_audit_list(tx, 0, 0, tally_entry, &t, &e) != 0)
		fail_msg("%s: audit list: %s", ctx, e.msg);
	if (t.any == 0)
		fail_msg("%s: action %s has no audit entry", ctx, id);
	if (action_status_terminal(a.status) && t.n != 1)
		fail_msg("%s: action %s is %s with %d %s entries", ctx, id,
		    action_status_name(a.status), t.n, ev);
	action_clear(&a);
}

/* Restarts the engine without faults, lets it finish, and checks what is stored. */
static void
check_consistent(struct fx *f, const char *ctx)
{
	struct store_tx *tx = NULL;
	struct census c;
	struct chain ch;
	struct qerr e = {0};
	size_t i;

	engine_stop(f->eng);
	f->eng = NULL;
	engine_up(f);
	if (settle(f, SETTLE_WAIT_S) != 0)
		fail_msg("%s: actions still in flight after a restart", ctx);
	assert_int_equal(census(f, &c), 0);
	if (verify_chain(f->check, &ch, &e) != 0)
		fail_msg("%s: the audit chain does not verify at entry %lld: %s %s", ctx,
		    (long long)ch.n + 1, e.msg, ch.why.msg);
	assert_int_equal(store_tx_begin(f->check, false, &tx, &e), 0);
	for (i = 0; i < c.n; i++)
		check_action(tx, c.ids[i], ctx);
	store_tx_rollback(tx);
}

/* ---- The sweep ----------------------------------------------------------------- */

static char last_error[512];
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

/* quell's error lines under faults are expected: the last one is kept for a failure. */
static void
quiet_sink(const struct log_record *rec)
{
	pthread_mutex_lock(&log_mu);
	snprintf(last_error, sizeof(last_error), "%s", rec->msg);
	pthread_mutex_unlock(&log_mu);
}

/* One run with the nth call of kind k failing; whether the fault was reached. */
static bool
run_once(const struct flow *fl, enum fault_kind k, long n)
{
	struct fx f;
	struct qerr e = {0};
	char ctx[128];
	bool fired;
	int r;

	fx_open(&f);
	if (fl->prime != NULL)
		fl->prime(&f);
	fault_arm(k, n);
	r = fl->run(&f, &e);
	if (r == 0 && fl->acts && (r = settle(&f, FLOW_WAIT_S)) != 0)
		qerr_set(&e, QERR_TRANSIENT, NULL, "actions still in flight after %.1f s",
		    FLOW_WAIT_S);
	fired = fault_fired();
	fault_disarm();
	snprintf(ctx, sizeof(ctx), "%s, %s fault at %ld", fl->name, fault_kind_name(k), n);
	if (!fired && (r != 0 || (fl->acts && all_completed(&f) != 0)))
		fail_msg("%s: without a fault the flow failed (%d): %s [%s]", ctx, r,
		    e.msg, last_error);
	if (fired && r != 0 && e.msg[0] == '\0')
		fail_msg("%s: failed (%d) without saying why", ctx, r);
	check_consistent(&f, ctx);
	fx_close(&f);
	return fired;
}

/*
 * A flow makes thousands of allocations: by default every STRIDE-th one fails (each
 * call site is still reached at a different offset in the other flows), so that the
 * suite stays within minutes; QUELL_FAULT_STRIDE=1 fails every one. The request flow,
 * the one quell is for, fails every fourth (1 100 runs; every one is 4 300 runs and
 * most of the suite's time under ASan). Store calls are few: every one fails.
 */
static long
stride_of(const struct flow *fl, enum fault_kind k)
{
	const char *s = getenv("QUELL_FAULT_STRIDE");

	if (k != FAULT_ALLOC && k != FAULT_SQLITE_ALLOC)
		return 1;
	if (s != NULL && atol(s) > 0)
		return atol(s);
	return fl->stride > 0 ? fl->stride : STRIDE;
}

static void
sweep(const struct flow *fl)
{
	const char *from = getenv("QUELL_FAULT_FROM");
	const char *only = getenv("QUELL_FAULT_KIND");
	long stride, n, runs;
	enum fault_kind k;

	/* QUELL_FAULT_KIND and QUELL_FAULT_FROM start a sweep where a finding was. */
	for (k = 0; k < FAULT_KIND_COUNT; k++) {
		if (only != NULL && strcmp(only, fault_kind_name(k)) != 0)
			continue;
		stride = stride_of(fl, k);
		runs = 0;
		for (n = from ? atol(from) : 1; n <= MAX_N && run_once(fl, k, n);
		    n += stride)
			runs++;
		if (n > MAX_N)
			fail_msg("%s: still faulting after %d %s faults", fl->name, MAX_N,
			    fault_kind_name(k));
		print_message("%s: %ld runs with a %s fault (N up to %ld, step %ld)\n",
		    fl->name, runs, fault_kind_name(k), n, stride);
	}
}

static const struct flow flows[] = {
	{ "request", flow_request, NULL, true, 4 },
	{ "bulk", flow_bulk, NULL, true, 0 },
	{ "approve", flow_approve, NULL, true, 0 },
	{ "undo", flow_undo, NULL, true, 0 },
	{ "sync", flow_sync, NULL, false, 0 },
	{ "alert", flow_alert, NULL, true, 0 },
	{ "audit-verify", flow_audit, prime_audit, false, 0 },
};

static void
test_flow(void **state)
{
	sweep(*state);
}

int
main(void)
{
	struct CMUnitTest tests[sizeof(flows) / sizeof(flows[0])];
	size_t i;
	int r;

	for (i = 0; i < sizeof(flows) / sizeof(flows[0]); i++)
		tests[i] = (struct CMUnitTest){ flows[i].name, test_flow, NULL, NULL,
			(void *)&flows[i] };
	/* QUELL_FAULT_FLOW=name runs only that flow (when chasing a finding). */
	if (getenv("QUELL_FAULT_FLOW") != NULL)
		cmocka_set_test_filter(getenv("QUELL_FAULT_FLOW"));
	fault_install();
	log_set_sink(quiet_sink, LOG_LVL_DEBUG);
	make_template();
	r = _cmocka_run_group_tests("fault", tests, i, NULL, NULL);
	unlink(template_db);
	rmdir(template_dir);
	return r;
}
