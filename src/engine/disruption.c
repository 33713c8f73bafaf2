/*
 * Automatic attack disruption: an alert comes in, its account entities are resolved
 * to identities, and for each identity the first matching [disruption] rule decides
 * what to do, within the guard: excluded identities are never touched, a dry-run rule
 * only records the plan, an identity already contained is not contained again, and
 * past the blast-radius limit the actions wait for a person's approval and the breach
 * is raised as an alert of quell's own. The actions are requested as the built-in
 * principal automatic-attack-disruption, through the request path, so they pass the
 * same authorization as anyone's. Every decision is stored and audited.
 *
 * From the alert to the first provider call there is one durable commit: the alert,
 * its decisions, the actions with their steps, every audit entry and the claim of the
 * first steps are one transaction, whose claims go straight to the workers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/id.h"
#include "core/log.h"
#include "core/rbac.h"
#include "core/text.h"
#include "internal.h"

#define DISRUPTION_ID "system:" DISRUPTION_PRINCIPAL

int
engine_disruption_start(struct engine *eng, struct qerr *e)
{
	struct subject *s = &eng->dsubject;
	struct actor *a = &eng->dactor;
	unsigned perms;
	int r;

	if ((r = disruption_policy_load(eng->cfg, &eng->dpol, e)) != 0)
		return r;
	if (!rbac_role_perms(eng->cfg, eng->dpol->guard.role, &perms))
		return qerr_set(e, QERR_CONFIG, NULL, "%s:%d: [disruption_guard] role '%s' "
		    "is not a role", eng->cfg->file, eng->cfg->disruption_guard.line,
		    eng->dpol->guard.role);
	s->id = DISRUPTION_ID;
	a->kind = "system";
	s->name = DISRUPTION_PRINCIPAL;
	s->role = eng->dpol->guard.role;
	if ((r = policy_grants(eng->pol, s, &eng->dgrants, e)) != 0)
		return r;
	a->id = s->id;
	a->name = s->name;
	a->role = s->role;
	a->perms = policy_perms(&eng->dgrants);
	a->subject = s;
	a->grants = &eng->dgrants;
	return 0;
}

void
engine_disruption_stop(struct engine *eng)
{
	free(eng->dgrants.g);
	eng->dgrants.g = NULL;
	disruption_policy_free(eng->dpol);
	eng->dpol = NULL;
}

/* What the matching accounts of one entity resolve to. */
struct resolve {
	char *identity_id;
	char *account_id;
	bool unlinked;
	bool ambiguous;
};

static int
resolve_one(const struct account *acc, void *arg)
{
	struct resolve *x = arg;

	if (acc->identity_id == NULL) {
		x->unlinked = true;
		return 0;
	}
	if (x->identity_id == NULL) {
		x->identity_id = strdup(acc->identity_id);
		x->account_id = strdup(acc->id);
		return x->identity_id && x->account_id ? 0 : QERR_NOMEM;
	}
	if (strcmp(x->identity_id, acc->identity_id) != 0)
		x->ambiguous = true;
	return 0;
}

/* An account entity names one identity, or it is kept unresolved with the reason. */
static int
resolve_entity(const struct engine *eng, struct store_tx *tx, struct alert_entity *en,
    struct qerr *e)
{
	struct resolve x = { NULL, NULL, false, false };
	const struct kind_alert_id *t;
	const struct kind_info *owner = NULL;
	const char *res;
	int r;

	if (strcmp(en->kind, "account") != 0)
		return 0;
	if ((t = kind_alert_id_find(&eng->cfg->kinds, en->id_type, &owner)) == NULL)
		return qerr_set(e, QERR_INVALID, "id_type", "unknown account id type '%s'",
		    en->id_type ? en->id_type : "");
	if ((r = store_account_find(tx, t->match, owner->kind, en->value, resolve_one, &x,
	    e)) != 0) {
		free(x.identity_id);
		free(x.account_id);
		return r == QERR_NOMEM ? qerr_set(e, r, NULL, "out of memory") : r;
	}
	if (x.ambiguous) {
		free(x.identity_id);
		free(x.account_id);
		x.identity_id = x.account_id = NULL;
		res = "ambiguous";
	} else
		res = x.identity_id ? "resolved" : x.unlinked ? "unlinked" : "unknown";
	en->identity_id = x.identity_id;
	en->account_id = x.account_id;
	if ((en->resolution = strdup(res)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

static json_t *
received_detail(const struct alert *a)
{
	size_t i, unresolved = 0;

	for (i = 0; i < a->nentities; i++)
		if (a->entities[i].resolution != NULL &&
		    strcmp(a->entities[i].resolution, "resolved") != 0)
			unresolved++;
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I}", "alert_id", a->id,
	    "source", a->source, "source_alert_id", a->external_id, "category",
	    a->category, "confidence", a->confidence, "entities",
	    (json_int_t)a->nentities, "unresolved", (json_int_t)unresolved,
	    "received_us", (json_int_t)a->received_us);
}

/* Names a new alert and stamps when it came (received_us is kept when the API took
 * it earlier). */
static int
alert_stamp(struct alert *a, struct qerr *e)
{
	char id[ID_LEN];

	a->received_at = engine_now_ms();
	if (a->received_us == 0)
		a->received_us = engine_now_us();
	id_make(id, "alr", a->received_at);
	free(a->id);
	if ((a->id = strdup(id)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

/*
 * Stores a new alert inside tx, its entities resolved, with its audit entry;
 * QERR_CONFLICT, with the stored one in *old (caller clears), when its (source,
 * external_id) is known. The write transaction is exclusive: no twin gets between
 * the look-up and the insert.
 */
static int
alert_tx(struct engine *eng, struct store_tx *tx, const struct actor *poster,
    struct alert *a, struct alert *old, struct qerr *e)
{
	json_t *d;
	size_t i;
	int r;

	if ((r = store_alert_find(tx, a->source, a->external_id, old, e)) != QERR_NOT_FOUND)
		return r == 0 ? QERR_CONFLICT : r;
	for (i = 0, r = 0; i < a->nentities && r == 0; i++)
		r = resolve_entity(eng, tx, &a->entities[i], e);
	if (r != 0 || (r = store_alert_insert(tx, a, e)) != 0)
		return r;
	if ((d = received_detail(a)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	r = engine_audit_tx_as(tx, poster, "alert.received", NULL, NULL, NULL, d, e);
	json_decref(d);
	return r;
}

/* One alert's disruption: everything it decides is written in tx. */
struct run {
	struct engine *eng;
	struct store_tx *tx;
	const struct alert *al;
	const struct actor *poster;
	bool queued;		/* an action was queued: its first steps are claimed */
};

/* Who a decision was taken for: the principal that posted the alert. */
static json_t *
principal_json(const struct actor *who)
{
	return json_pack("{s:s?, s:s?, s:s}", "kind", who->kind ? who->kind : "system",
	    "id", who->id, "name", who->name ? who->name : "");
}

/* Stores the decision (naming poster, when there is one) and its audit entry inside
 * tx. */
static int
record_tx(struct store_tx *tx, const struct alert *al, const char *identity_id,
    const struct disruption_rule *rule, const char *outcome,
    const struct actor *poster, json_t *detail, struct qerr *e)
{
	struct alert_decision d;
	char id[ID_LEN], ev[64];
	int r;

	memset(&d, 0, sizeof(d));
	d.created_at = engine_now_ms();
	id_make(id, "dsd", d.created_at);
	d.id = id;
	d.alert_id = al->id;
	d.identity_id = (char *)identity_id;
	d.rule = rule ? (char *)rule->name : NULL;
	d.outcome = (char *)outcome;
	json_object_set_new(detail, "alert_id", json_string(al->id));
	json_object_set_new(detail, "decision_id", json_string(id));
	if (rule != NULL)
		json_object_set_new(detail, "rule", json_string(rule->name));
	if (poster != NULL)
		json_object_set_new(detail, "poster", principal_json(poster));
	if ((d.detail = json_dumps(detail, JSON_COMPACT)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	snprintf(ev, sizeof(ev), "disruption.%s", outcome);
	if ((r = store_decision_insert(tx, &d, e)) == 0)
		r = engine_audit_tx(tx, DISRUPTION_PRINCIPAL, ev, NULL, NULL, identity_id,
		    detail, e);
	free(d.detail);
	return r;
}

/* record_tx in a transaction of its own. */
static int
record(struct engine *eng, const struct alert *al, const char *identity_id,
    const struct disruption_rule *rule, const char *outcome,
    const struct actor *poster, json_t *detail, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int r;

	if ((r = store_tx_begin(eng->st, true, &tx, e)) == 0 &&
	    (r = record_tx(tx, al, identity_id, rule, outcome, poster, detail, e)) == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
	store_tx_rollback(tx);
	return r;
}

static char *
step_params(const struct disruption_step *s)
{
	if (s->risk_level == NULL)
		return strdup("{}");
	return json_dumps(json_pack("{s:s}", "risk_level", s->risk_level),
	    JSON_COMPACT | JSON_SORT_KEYS | JSON_EMBED);
}

static void
request_for(const struct alert *al, const struct disruption_rule *rule,
    const char *identity_id, const struct disruption_step *s, const char *params,
    char *reason, size_t len, struct action_request *req)
{
	snprintf(reason, len, "automatic attack disruption: alert %s/%s \"%s\" (%s, "
	    "severity %s, confidence %d) matched rule '%s'", al->source, al->external_id,
	    al->title, al->category, alert_severity_name(al->severity), al->confidence,
	    rule->name);
	/* Within the limit every reason is held to, whatever the alert's title. */
	text_utf8_truncate(reason, 1000);
	memset(req, 0, sizeof(*req));
	req->type = s->type;
	req->identity_id = identity_id;
	req->reason = reason;
	req->params = params;
	req->source = DISRUPTION_SOURCE;
	req->alert_id = al->id;
}

static json_t *
plan_json(const struct action *a)
{
	json_t *steps = json_array();
	size_t i;

	for (i = 0; i < a->nsteps; i++)
		json_array_append_new(steps, json_pack("{s:s, s:s, s:s, s:s}", "account_id",
		    a->steps[i].account_id, "system", a->steps[i].system, "account",
		    a->steps[i].account_name, "status", step_status_name(a->steps[i].status)));
	return json_pack("{s:s, s:s, s:o}", "type", action_type_name(a->type), "would_be",
	    action_status_name(a->status), "steps", steps);
}

/* What came of one requested action, as an entry of the decision's detail. */
static json_t *
result_json(const struct disruption_step *s, const struct action_result *res, bool dry)
{
	const struct action *a = &res->a;

	if (res->r == 0 && dry)
		return plan_json(a);
	if (res->r == 0)
		return json_pack("{s:s, s:s, s:s}", "type", action_type_name(s->type),
		    "action_id", a->id, "status", action_status_name(a->status));
	/* Only a denied action is stored: another refusal has no id to name. */
	return json_pack("{s:s, s:s, s:s, s:s?}", "type", action_type_name(s->type),
	    "error", qerr_strerror(res->r), "message", res->e.msg, "action_id",
	    a->status == ACTION_DENIED ? a->id : NULL);
}

/* Requests one action (or, dry, plans it exactly) inside the run's transaction and
 * adds what came of it to list; an error is the whole transaction's. */
static int
request_step(struct run *x, const struct disruption_rule *rule, const char *identity_id,
    const struct disruption_step *s, const char *hold, json_t *list, bool *created,
    struct qerr *e)
{
	struct action_request req;
	struct action_result res;
	char reason[1024], *params = step_params(s);
	bool queued = false;
	int r;

	if (params == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	request_for(x->al, rule, identity_id, s, params, reason, sizeof(reason), &req);
	req.preview = rule->dry_run;
	req.hold_rule = hold;
	r = engine_request_tx(x->eng, &x->eng->dactor, x->tx, &req, 1, &res, &queued, e);
	if (r == 0) {
		x->queued |= queued;
		*created |= res.r == 0 && !rule->dry_run;
		json_array_append_new(list, result_json(s, &res, rule->dry_run));
	}
	engine_results_clear(&res, 1);
	free(params);
	return r;
}

/*
 * Automatic actions on an identity that are in force: not failed, refused or
 * cancelled, not undone, and not ended by a release. A release ends exactly the
 * actions it names (those whose accounts are enabled again, and those with no
 * inverse); a release stored before releases named them ends everything older.
 */
struct in_force {
	int64_t since;		/* the last release that names no actions */
	json_t *undone;		/* ids of actions undone (every account) or released */
	json_t *ids[ACTION_TYPE_COUNT];	/* in-force action ids per type */
	json_t *all;		/* every in-force action, newest first */
};

static bool
live(enum action_status st)
{
	return st != ACTION_FAILED && st != ACTION_CANCELLED && st != ACTION_DENIED &&
	    st != ACTION_REJECTED;
}

static int
note_undo(const struct action *a, void *arg)
{
	struct in_force *f = arg;

	/* Only an undo that enabled every account ends the containment: one still
	 * running, or that enabled only some, leaves it in force (the accounts are
	 * still disabled; a release tries them again). */
	if (a->undo_of != NULL && a->status == ACTION_COMPLETED)
		json_object_set_new(f->undone, a->undo_of, json_true());
	return 0;
}

static int
note_auto(const struct action *a, void *arg)
{
	struct in_force *f = arg;

	if (a->source == NULL || strcmp(a->source, DISRUPTION_SOURCE) != 0 ||
	    !live(a->status) || a->created_at < f->since ||
	    json_object_get(f->undone, a->id) != NULL)
		return 0;
	json_array_append_new(f->ids[a->type], json_string(a->id));
	json_array_append_new(f->all, json_pack("{s:s, s:s, s:s}", "action_id", a->id,
	    "type", action_type_name(a->type), "status", action_status_name(a->status)));
	return 0;
}

static int
note_release(const struct alert_decision *d, void *arg)
{
	struct in_force *f = arg;
	json_t *detail, *ended, *v;
	size_t i;

	if (strcmp(d->outcome, DISRUPTION_RELEASED) != 0 &&
	    strcmp(d->outcome, DISRUPTION_RELEASE_PARTIAL) != 0)
		return 0;
	detail = json_loads(d->detail ? d->detail : "{}", 0, NULL);
	ended = json_object_get(detail, "ended");
	if (json_is_array(ended)) {
		json_array_foreach(ended, i, v)
			if (json_is_string(v))
				json_object_set_new(f->undone, json_string_value(v),
				    json_true());
	} else if (d->created_at > f->since)
		f->since = d->created_at;
	json_decref(detail);
	return 0;
}

static void
in_force_clear(struct in_force *f)
{
	int t;

	json_decref(f->undone);
	json_decref(f->all);
	for (t = 0; t < ACTION_TYPE_COUNT; t++)
		json_decref(f->ids[t]);
	memset(f, 0, sizeof(*f));
}

/* The identity's automatic actions in force, as tx sees them; *f (caller clears with
 * in_force_clear) whatever the result. */
static int
in_force_read(struct store_tx *tx, const char *identity_id, struct in_force *f,
    struct qerr *e)
{
	struct action_filter af = { .identity_id = identity_id, .limit = 1000 };
	int r, t;

	memset(f, 0, sizeof(*f));
	f->undone = json_object();
	f->all = json_array();
	for (t = 0; t < ACTION_TYPE_COUNT; t++)
		f->ids[t] = json_array();
	r = store_decision_list(tx, NULL, identity_id, note_release, f, e);
	if (r >= 0 && (r = store_action_list(tx, &af, note_undo, f, e)) == 0)
		r = store_action_list(tx, &af, note_auto, f, e);
	return r;
}

/* in_force_read in a read transaction of its own. */
static int
in_force_load(struct engine *eng, const char *identity_id, struct in_force *f,
    struct qerr *e)
{
	struct store_tx *tx = NULL;
	int r;

	memset(f, 0, sizeof(*f));
	if ((r = store_tx_begin(eng->st, false, &tx, e)) != 0)
		return r;
	r = in_force_read(tx, identity_id, f, e);
	store_tx_rollback(tx);
	return r;
}

/* Raises a blast-radius breach inside the run's transaction: audited each time, one
 * quell alert per window. */
static int
raise_breach(struct run *x, const char *identity_id, long recent, struct qerr *e)
{
	const struct disruption_guard *g = &x->eng->dpol->guard;
	struct alert a, old;
	char ext[64], title[256];
	int64_t now = engine_now_ms();
	json_t *d = NULL;
	int r;

	memset(&a, 0, sizeof(a));
	memset(&old, 0, sizeof(old));
	snprintf(ext, sizeof(ext), "blast-radius-%lld",
	    (long long)(now - now % g->window_ms));
	snprintf(title, sizeof(title), "automatic attack disruption reached its limit of "
	    "%ld containments per %lld s: further ones wait for approval",
	    g->max_containments, (long long)(g->window_ms / 1000));
	a.source = strdup(ALERT_SOURCE_QUELL);
	a.external_id = strdup(ext);
	a.title = strdup(title);
	a.category = strdup("blast_radius");
	a.severity = ALERT_SEV_HIGH;
	a.confidence = 100;
	a.time = now;
	if (a.source == NULL || a.external_id == NULL || a.title == NULL ||
	    a.category == NULL || (r = alert_stamp(&a, e)) != 0) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	/* Known already: this window's breach was raised by an earlier containment. */
	r = alert_tx(x->eng, x->tx, &x->eng->dactor, &a, &old, e);
	if (r != 0 && r != QERR_CONFLICT)
		goto out;
	d = json_pack("{s:s, s:s, s:I, s:I, s:I}", "cause_alert_id", x->al->id,
	    "quell_alert_id", r == 0 ? a.id : old.id, "recent", (json_int_t)recent,
	    "limit", (json_int_t)g->max_containments, "window_ms",
	    (json_int_t)g->window_ms);
	r = d == NULL ? qerr_set(e, QERR_NOMEM, NULL, "out of memory") :
	    engine_audit_tx(x->tx, DISRUPTION_PRINCIPAL,
	    "disruption.blast_radius_exceeded", NULL, NULL, identity_id, d, e);
out:
	json_decref(d);
	alert_clear(&old);
	alert_clear(&a);
	return r;
}

/* Whether some linked account's system can carry out type. */
static bool
applicable(struct engine *eng, const struct identity *idn, enum action_type type)
{
	struct engine_system *sys;
	size_t i;

	for (i = 0; i < idn->naccounts; i++)
		if ((sys = engine_find_system(eng, idn->accounts[i].system)) != NULL &&
		    provider_supports(sys->ops, sys->p, type))
			return true;
	return false;
}

/*
 * The rule's actions that can apply to the identity (the others go to na) and, with
 * f, are not yet in force on it (the ids of those that are go to dup).
 */
static size_t
missing_steps(struct engine *eng, const struct disruption_rule *rule,
    const struct identity *idn, const struct in_force *f,
    const struct disruption_step **wanted, json_t *dup, json_t *na)
{
	enum action_type t;
	size_t i, n = 0;

	for (i = 0; i < rule->nsteps; i++) {
		t = rule->steps[i].type;
		if (!applicable(eng, idn, t))
			json_array_append_new(na, json_string(action_type_name(t)));
		else if (f != NULL && json_array_size(f->ids[t]) > 0)
			json_array_extend(dup, f->ids[t]);
		else
			wanted[n++] = &rule->steps[i];
	}
	return n;
}

/* Requests the actions (or plans them, dry) and records what came of it. The count
 * of recent containments includes this transaction's own, and is the cluster's: it
 * is read from the store inside the write transaction, which excludes every other
 * node's writer (store.h), so two nodes cannot both see room for the last one. */
static int
act(struct run *x, const struct disruption_rule *rule, const char *identity_id,
    const struct disruption_step *const *wanted, size_t n, json_t *na, struct qerr *e)
{
	const struct disruption_policy *pol = x->eng->dpol;
	json_t *d = json_object(), *list = json_array();
	const char *outcome = rule->dry_run ? DISRUPTION_DRY_RUN : DISRUPTION_CONTAINED;
	bool created = false, held;
	long recent = 0;
	size_t i;
	int r = 0;

	if (!rule->dry_run && (r = store_decision_count(x->tx, DISRUPTION_CONTAINED,
	    engine_now_ms() - pol->guard.window_ms, &recent, e)) != 0)
		goto out;
	held = !rule->dry_run && !disruption_within_limit(pol, recent);
	if (held)
		outcome = DISRUPTION_HELD;
	for (i = 0; i < n && r == 0; i++)
		r = request_step(x, rule, identity_id, wanted[i], held ?
		    DISRUPTION_BLAST_RULE : NULL, list, &created, e);
	if (r != 0)
		goto out;
	if (!rule->dry_run && !created) {
		outcome = DISRUPTION_FAILED;
		held = false;
	}
	json_object_set_new(d, rule->dry_run ? "plan" : "actions", list);
	list = NULL;
	json_object_set_new(d, "received_us", json_integer(x->al->received_us));
	json_object_set(d, "not_applicable", na);
	if (held)
		json_object_set_new(d, "why", json_sprintf("%ld automatic containments in the "
		    "last %lld s reached the limit of %ld", recent,
		    (long long)(pol->guard.window_ms / 1000), pol->guard.max_containments));
	r = record_tx(x->tx, x->al, identity_id, rule, outcome, x->poster, d, e);
	if (r == 0 && held)
		r = raise_breach(x, identity_id, recent, e);
out:
	json_decref(list);
	json_decref(d);
	return r;
}

/* The decision for one identity an alert named; runs under eng->dmu. */
static int
disrupt(struct run *x, const char *identity_id, struct qerr *e)
{
	const struct disruption_step *wanted[DISRUPTION_MAX_STEPS];
	const struct disruption_policy *pol = x->eng->dpol;
	const struct actor *poster = x->poster;
	const struct disruption_rule *rule;
	struct in_force f;
	struct identity idn;
	json_t *d = json_object(), *dup = json_array(), *na = json_array();
	char why[400];
	size_t n;
	int r;

	memset(&idn, 0, sizeof(idn));
	memset(&f, 0, sizeof(f));
	if ((r = store_identity_get(x->tx, identity_id, &idn, e)) != 0)
		goto out;
	if ((rule = disruption_match(pol, x->al, idn.tags, idn.ntags)) == NULL) {
		json_object_set_new(d, "why", json_string("no [disruption] rule matches the "
		    "alert and this identity"));
		r = record_tx(x->tx, x->al, identity_id, NULL, DISRUPTION_NO_RULE, poster, d,
		    e);
		goto out;
	}
	if (disruption_excluded(pol, rule, &idn, why, sizeof(why))) {
		json_object_set_new(d, "why", json_string(why));
		r = record_tx(x->tx, x->al, identity_id, rule, DISRUPTION_EXCLUDED, poster,
		    d, e);
		goto out;
	}
	/*
	 * An alert is a request made through quell's automation: it may not reach
	 * further than its poster could, or alerts.ingest would be a way around a
	 * scope (or an exclude) that a direct request would meet.
	 */
	if (!policy_covers(poster->grants, PERM_ALERTS_INGEST, idn.tags, idn.ntags)) {
		snprintf(why, sizeof(why), "identity %s is outside the scope in which %s "
		    "may post alerts that act", identity_id, poster->name);
		json_object_set_new(d, "why", json_string(why));
		r = record_tx(x->tx, x->al, identity_id, rule, DISRUPTION_OUT_OF_SCOPE,
		    poster, d, e);
		goto out;
	}
	/* A dry run plans the whole rule: it never puts anything in force. */
	if (!rule->dry_run && (r = in_force_read(x->tx, identity_id, &f, e)) != 0)
		goto out;
	n = missing_steps(x->eng, rule, &idn, rule->dry_run ? NULL : &f, wanted, dup, na);
	if (n == 0) {
		json_object_set_new(d, "why", json_string(json_array_size(dup) > 0 ?
		    "the identity is already contained by automatic actions in force" :
		    "no linked account's system supports the rule's actions"));
		json_object_set(d, "actions_in_force", dup);
		json_object_set(d, "not_applicable", na);
		r = record_tx(x->tx, x->al, identity_id, rule, rule->dry_run ?
		    DISRUPTION_DRY_RUN : json_array_size(dup) > 0 ? DISRUPTION_DUPLICATE :
		    DISRUPTION_FAILED, poster, d, e);
		goto out;
	}
	r = act(x, rule, identity_id, wanted, n, na, e);
out:
	in_force_clear(&f);
	identity_clear(&idn);
	json_decref(na);
	json_decref(dup);
	json_decref(d);
	return r;
}

/* Acts on every identity the alert's account entities resolved to, once each. */
static int
disrupt_all(struct run *x, struct qerr *e)
{
	const struct alert *al = x->al;
	const struct alert_entity *en;
	size_t i, k;
	int r;

	for (i = 0; i < al->nentities; i++) {
		en = &al->entities[i];
		if (en->identity_id == NULL)
			continue;
		for (k = 0; k < i; k++)
			if (al->entities[k].identity_id != NULL &&
			    strcmp(al->entities[k].identity_id, en->identity_id) == 0)
				break;
		if (k < i)
			continue;
		if ((r = disrupt(x, en->identity_id, e)) != 0) {
			log_msg(LOG_LVL_WARN, "disruption: alert %s, identity %s: %s", al->id,
			    en->identity_id, e->msg);
			return r;
		}
	}
	return 0;
}

/*
 * The alert, its decisions, their actions and the claim of the first steps in one
 * transaction, so that nothing is stored unless all of it is: a failure (or a crash)
 * before the commit leaves no trace, and the poster may post the alert again.
 */
int
engine_alert(struct engine *eng, const struct actor *poster, struct alert *a,
    bool *created, struct qerr *e)
{
	struct claimed got = { { NULL, NULL }, false };
	struct run x = { .eng = eng, .al = a, .poster = poster };
	struct alert old;
	/* quell's own alerts report on automation; acting on them would loop. */
	bool acts = strcmp(a->source, ALERT_SOURCE_QUELL) != 0;
	int r;

	*created = false;
	memset(&old, 0, sizeof(old));
	if ((r = alert_stamp(a, e)) != 0)
		return r;
	if (acts)
		pthread_mutex_lock(&eng->dmu);
	if ((r = store_tx_begin(eng->st, true, &x.tx, e)) != 0)
		goto out;
	if ((r = alert_tx(eng, x.tx, poster, a, &old, e)) == QERR_CONFLICT) {
		/* A repeat: the stored one answers. */
		alert_clear(a);
		*a = old;
		memset(&old, 0, sizeof(old));
		r = 0;
		goto out;
	}
	if (r == 0 && acts)
		r = disrupt_all(&x, e);
	if (r == 0 && x.queued)
		r = engine_claim_tx(eng, x.tx, &got, e);
	if (r == 0) {
		r = store_tx_commit(x.tx, e);
		x.tx = NULL;
		*created = r == 0;
	}
	engine_dispatch(eng, &got, r == 0);
out:
	store_tx_rollback(x.tx);
	if (acts)
		pthread_mutex_unlock(&eng->dmu);
	alert_clear(&old);
	return r;
}

/* How long a release waits for the accounts to be enabled again before it answers
 * with what is still running (which then stays in force until it succeeds). */
#define RELEASE_WAIT_MS 15000
#define RELEASE_POLL_MS 20

static int
load_action(struct engine *eng, const char *id, struct action *a, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int r;

	memset(a, 0, sizeof(*a));
	if ((r = store_tx_begin(eng->st, false, &tx, e)) != 0)
		return r;
	r = store_action_get(tx, id, a, e);
	store_tx_rollback(tx);
	return r;
}

/* Waits (bounded) for action id to end; *a is its last state read. */
static int
wait_end(struct engine *eng, const char *id, struct action *a, struct qerr *e)
{
	struct timespec ts = { 0, RELEASE_POLL_MS * 1000000L };
	int64_t until = engine_now_ms() + RELEASE_WAIT_MS;
	int r;

	for (;;) {
		if ((r = load_action(eng, id, a, e)) != 0 ||
		    action_status_terminal(a->status) || engine_now_ms() >= until)
			return r;
		action_clear(a);
		nanosleep(&ts, NULL);
	}
}

/* One step as the release answer shows it. */
static json_t *
step_json(const struct step *s)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s?}", "account_id", s->account_id,
	    "system", s->system, "account", s->account_name, "status",
	    step_status_name(s->status), "message", s->message);
}

/*
 * The accounts of orig that are still contained after its undo u (or, with u NULL,
 * all those its steps disabled): each to still, as {account_id, system, account}.
 */
static void
still_disabled(const struct action *orig, const struct action *u, json_t *still)
{
	size_t i, k;
	bool enabled;

	for (i = 0; i < orig->nsteps; i++) {
		if (orig->steps[i].status != STEP_SUCCEEDED &&
		    !(orig->steps[i].status == STEP_RUNNING ||
		    orig->steps[i].status == STEP_RETRY_WAIT))
			continue;
		for (enabled = false, k = 0; u != NULL && k < u->nsteps && !enabled; k++)
			enabled = strcmp(u->steps[k].account_id,
			    orig->steps[i].account_id) == 0 &&
			    u->steps[k].status == STEP_SUCCEEDED;
		if (!enabled)
			json_array_append_new(still, json_pack("{s:s, s:s, s:s, s:s}",
			    "action_id", orig->id, "account_id", orig->steps[i].account_id,
			    "system", orig->steps[i].system, "account",
			    orig->steps[i].account_name));
	}
}

/*
 * Ends one automatic action: cancels it if it has not run (it could act after the
 * release otherwise), requests its undo (release_wait then waits for the accounts
 * to be enabled), or, when it has no inverse (sessions revoked stay revoked), only
 * ends it. item gains the outcome and the steps; ended and still gain its id and the
 * accounts still contained. Returns 0 when something was done, the engine's error
 * when not.
 */
static int
release_one(struct engine *eng, const struct actor *who, json_t *item,
    const char *reason, json_t *ended, json_t *still, bool *wait)
{
	const char *id = json_string_value(json_object_get(item, "action_id"));
	json_t *steps = json_array();
	struct action orig, u;
	struct qerr e;
	const char *outcome;
	size_t i;
	int r;

	memset(&u, 0, sizeof(u));
	qerr_clear(&e);
	if ((r = load_action(eng, id, &orig, &e)) != 0)
		goto out;
	if (!action_status_terminal(orig.status)) {
		if ((r = engine_cancel(eng, who, id, &u, &e)) != 0)
			goto out;
		/* A step that had started still runs: what it disabled stays so. */
		json_object_set_new(item, "cancelled", json_true());
		for (i = 0; i < u.nsteps; i++)
			json_array_append_new(steps, step_json(&u.steps[i]));
		i = json_array_size(still);
		if (orig.type == ACTION_DISABLE)
			still_disabled(&u, NULL, still);
		outcome = "cancelled";
		/* Ended unless a step that had started disabled an account already. */
		if (json_array_size(still) == i)
			json_array_append_new(ended, json_string(id));
	} else if (orig.type != ACTION_DISABLE) {
		/* Nothing to give back: the release only stops counting it in force. */
		outcome = "ended";
		json_object_set_new(item, "note", json_string("this action has no inverse: "
		    "it is no longer counted as a containment in force"));
		json_array_append_new(ended, json_string(id));
	} else {
		if ((r = engine_undo(eng, who, id, reason, NULL, &u, &e)) != 0)
			goto out;
		json_object_set_new(item, "undo_action_id", json_string(u.id));
		/* Waited for by release_wait, without holding up other decisions. */
		outcome = "still_running";
		*wait = true;
	}
	json_object_set_new(item, "outcome", json_string(outcome));
	r = 0;
out:
	if (r != 0) {
		json_object_set_new(item, "outcome", json_string("refused"));
		json_object_set_new(item, "error", json_string(qerr_strerror(r)));
		json_object_set_new(item, "message", json_string(e.msg));
		if (u.id != NULL)
			json_object_set_new(item, "undo_action_id", json_string(u.id));
		if (orig.id != NULL && orig.type == ACTION_DISABLE)
			still_disabled(&orig, NULL, still);
	}
	json_object_set_new(item, "steps", steps);
	action_clear(&u);
	action_clear(&orig);
	return r;
}

/* Waits (bounded) for the undo release_one requested for item, and says what it
 * did: per step, and whether every account is enabled again. */
static void
release_wait(struct engine *eng, json_t *item, json_t *ended, json_t *still)
{
	const char *id = json_string_value(json_object_get(item, "action_id"));
	const char *uid = json_string_value(json_object_get(item, "undo_action_id"));
	json_t *steps = json_object_get(item, "steps");
	struct action orig, done;
	struct qerr e;
	size_t i;

	memset(&orig, 0, sizeof(orig));
	memset(&done, 0, sizeof(done));
	qerr_clear(&e);
	if (load_action(eng, id, &orig, &e) != 0 || wait_end(eng, uid, &done, &e) != 0) {
		json_object_set_new(item, "message", json_string(e.msg));
		if (orig.id != NULL)
			still_disabled(&orig, NULL, still);
		goto out;
	}
	for (i = 0; i < done.nsteps; i++)
		json_array_append_new(steps, step_json(&done.steps[i]));
	json_object_set_new(item, "undo_status",
	    json_string(action_status_name(done.status)));
	if (done.status == ACTION_COMPLETED) {
		json_object_set_new(item, "outcome", json_string("enabled"));
		json_array_append_new(ended, json_string(id));
	} else {
		json_object_set_new(item, "outcome", json_string(
		    action_status_terminal(done.status) ? "not_enabled" : "still_running"));
		still_disabled(&orig, &done, still);
	}
out:
	action_clear(&done);
	action_clear(&orig);
}

/* The alert of the newest containment, for the release's decision row. */
static char *
newest_alert(struct engine *eng, const json_t *all)
{
	struct store_tx *tx = NULL;
	struct action a;
	struct qerr e;
	char *id = NULL;

	memset(&a, 0, sizeof(a));
	if (json_array_size(all) == 0 || store_tx_begin(eng->st, false, &tx, &e) != 0)
		return NULL;
	if (store_action_get(tx, json_string_value(json_object_get(json_array_get(all, 0),
	    "action_id")), &a, &e) == 0 && a.alert_id != NULL)
		id = strdup(a.alert_id);
	store_tx_rollback(tx);
	action_clear(&a);
	return id;
}

/* Whether who may act on the identity at all: a release on someone it may not
 * touch is refused before anything is cancelled, undone or ended. */
static int
release_allowed(struct engine *eng, const struct actor *who, const char *identity_id,
    struct qerr *e)
{
	struct store_tx *tx = NULL;
	struct identity idn;
	json_t *d;
	char why[400];
	int r;

	memset(&idn, 0, sizeof(idn));
	if ((r = store_tx_begin(eng->st, false, &tx, e)) != 0)
		return r;
	r = store_identity_get(tx, identity_id, &idn, e);
	store_tx_rollback(tx);
	if (r == QERR_NOT_FOUND)
		r = qerr_set(e, r, "id", "no identity %s", identity_id);
	if (r != 0)
		goto out;
	if ((who->perms & PERM_RESPONSE_MANAGE) != 0 &&
	    policy_covers(who->grants, PERM_RESPONSE_MANAGE, idn.tags, idn.ntags))
		goto out;
	snprintf(why, sizeof(why), "identity %s is outside the scope in which %s may "
	    "release containments", identity_id, who->name);
	d = json_pack("{s:s}", "why", why);
	tx = NULL;
	if (store_tx_begin(eng->st, true, &tx, e) == 0 &&
	    engine_audit_tx_as(tx, who, "disruption.release_denied", NULL, NULL,
	    identity_id, d, e) == 0 && store_tx_commit(tx, e) == 0)
		tx = NULL;
	store_tx_rollback(tx);
	json_decref(d);
	r = qerr_set(e, QERR_DENIED, NULL, "%s", why);
out:
	identity_clear(&idn);
	return r;
}

int
engine_release(struct engine *eng, const struct actor *who, const char *identity_id,
    const char *reason, json_t **results, struct qerr *e)
{
	struct alert al;
	struct in_force f;
	json_t *item, *d, *o, *ended = json_array(), *still = json_array();
	size_t i, done = 0;
	bool locked = false, all_denied = true, wait, any_wait = false;
	int r;

	*results = json_array();
	memset(&al, 0, sizeof(al));
	memset(&f, 0, sizeof(f));
	if ((r = release_allowed(eng, who, identity_id, e)) != 0)
		goto out;
	pthread_mutex_lock(&eng->dmu);
	locked = true;
	if ((r = in_force_load(eng, identity_id, &f, e)) != 0)
		goto out;
	if (json_array_size(f.all) == 0) {
		r = qerr_set(e, QERR_CONFLICT, NULL, "identity %s has no automatic "
		    "containment in force", identity_id);
		goto out;
	}
	json_array_foreach(f.all, i, item) {
		o = json_deep_copy(item);
		wait = false;
		r = release_one(eng, who, o, reason, ended, still, &wait);
		if (wait) {
			json_object_set_new(o, "wait", json_true());
			any_wait = true;
		}
		if (r == 0)
			done++;
		if (r != QERR_DENIED)
			all_denied = false;
		json_array_append_new(*results, o);
	}
	if (done == 0 && all_denied) {
		r = qerr_set(e, QERR_DENIED, NULL, "%s", json_string_value(
		    json_object_get(json_array_get(*results, 0), "message")));
		goto out;
	}
	/* The undos are requested: other decisions need not wait for them to run (one
	 * on this identity sees the disable still in force until its undo completes). */
	pthread_mutex_unlock(&eng->dmu);
	locked = false;
	json_array_foreach(*results, i, item)
		if (any_wait && json_object_get(item, "wait") != NULL) {
			json_object_del(item, "wait");
			release_wait(eng, item, ended, still);
		}
	al.id = newest_alert(eng, f.all);
	/* Released only when every account is enabled again; otherwise the release
	 * is partial and the containment stays in force for the accounts named. */
	d = json_pack("{s:s, s:s, s:O, s:O, s:O}", "reason", reason, "by", who->name,
	    "results", *results, "ended", ended, "still_contained", still);
	if (al.id == NULL)
		al.id = strdup("");
	r = record(eng, &al, identity_id, NULL, json_array_size(still) == 0 ?
	    DISRUPTION_RELEASED : DISRUPTION_RELEASE_PARTIAL, who, d, e);
	json_decref(d);
	if (r == 0) {
		o = json_pack("{s:b, s:O, s:O}", "released", json_array_size(still) == 0,
		    "results", *results, "still_contained", still);
		json_decref(*results);
		*results = o;
	}
out:
	if (locked)
		pthread_mutex_unlock(&eng->dmu);
	in_force_clear(&f);
	alert_clear(&al);
	json_decref(ended);
	json_decref(still);
	return r;
}

static void
plan_note(json_t *item, const char *outcome, const char *note)
{
	json_object_set_new(item, "outcome", json_string(outcome));
	json_object_set_new(item, "note", json_string(note));
}

/* What releasing the in-force action item would do to it, into item: as release_one
 * does it, the undo previewed. */
static void
release_plan(struct engine *eng, const struct actor *who, json_t *item,
    const char *reason)
{
	const char *id = json_string_value(json_object_get(item, "action_id"));
	const char *type = json_string_value(json_object_get(item, "type"));
	enum action_status st;
	json_t *pv = NULL;
	struct action u;
	struct qerr e;

	memset(&u, 0, sizeof(u));
	qerr_clear(&e);
	if (action_status_parse(json_string_value(json_object_get(item, "status")),
	    &st) != 0 || !action_status_terminal(st))
		plan_note(item, "cancel", "not finished: it will be cancelled (a step "
		    "already running finishes)");
	else if (type == NULL || strcmp(type, action_type_name(ACTION_DISABLE)) != 0)
		plan_note(item, "end", "this action has no inverse: it will no longer count "
		    "as a containment in force");
	else if (engine_undo(eng, who, id, reason, &pv, &u, &e) != 0)
		plan_note(item, "refused", e.msg);
	else {
		plan_note(item, "undo", "it will be undone");
		json_object_set_new(item, "undo_status", json_string(action_status_name(
		    u.status)));
		json_object_set_new(item, "approval_rule", u.approval_rule ?
		    json_string(u.approval_rule) : json_null());
		if (pv != NULL)
			json_object_set_new(item, "preview", pv);
		pv = NULL;
	}
	json_decref(pv);
	action_clear(&u);
}

int
engine_release_preview(struct engine *eng, const struct actor *who,
    const char *identity_id, const char *reason, json_t **results, struct qerr *e)
{
	struct in_force f;
	json_t *item, *list = json_array();
	size_t i;
	int r;

	*results = NULL;
	memset(&f, 0, sizeof(f));
	if ((r = release_allowed(eng, who, identity_id, e)) != 0 ||
	    (r = in_force_load(eng, identity_id, &f, e)) != 0)
		goto out;
	if (json_array_size(f.all) == 0) {
		r = qerr_set(e, QERR_CONFLICT, NULL, "identity %s has no automatic "
		    "containment in force", identity_id);
		goto out;
	}
	json_array_foreach(f.all, i, item) {
		json_array_append_new(list, json_deep_copy(item));
		release_plan(eng, who, json_array_get(list, i), reason);
	}
	if ((*results = json_pack("{s:b, s:O}", "preview", 1, "results", list)) == NULL)
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
out:
	in_force_clear(&f);
	json_decref(list);
	return r;
}
