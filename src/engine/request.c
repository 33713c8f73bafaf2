/*
 * The engine's front: authorizing, planning and storing action requests (one, or many
 * in one transaction), cancelling them, and importing a system's accounts. Nothing
 * reaches a worker before its action and audit entry are committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/lifecycle.h"
#include "core/log.h"
#include "core/rbac.h"
#include "core/strlist.h"
#include "internal.h"

static bool
supports(void *arg, const struct account *acct, enum action_type type)
{
	struct engine_system *sys = engine_find_system(arg, acct->system);

	return sys != NULL && provider_supports(sys->ops, sys->p, type);
}

static char *
xstrdup(const char *s, bool *bad)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*bad = true;
	return d;
}

static int
new_action(struct action *a, const struct actor *who, const struct action_request *req)
{
	char id[ID_LEN];
	bool bad = false;

	memset(a, 0, sizeof(*a));
	a->created_at = a->updated_at = engine_now_ms();
	id_make(id, "act", a->created_at);
	a->id = xstrdup(id, &bad);
	a->type = req->type;
	a->identity_id = xstrdup(req->identity_id, &bad);
	a->account_id = xstrdup(req->account_id, &bad);
	a->requested_by = xstrdup(who->name, &bad);
	a->requested_by_id = xstrdup(who->id, &bad);
	a->requested_by_kind = xstrdup(who->kind ? who->kind : "system", &bad);
	a->undo_of = xstrdup(req->undo_of, &bad);
	a->source = xstrdup(req->source ? req->source : "api", &bad);
	a->reason = xstrdup(req->reason, &bad);
	a->params = xstrdup(req->params ? req->params : "{}", &bad);
	a->alert_id = xstrdup(req->alert_id, &bad);
	return bad ? QERR_NOMEM : 0;
}

static json_t *
request_detail(const struct action *a, const struct actor *who)
{
	json_t *d, *steps;
	size_t i;

	d = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:o}", "type", action_type_name(a->type),
	    "reason", a->reason, "source", a->source, "account_id", a->account_id,
	    "role", who->role ? who->role : "", "params",
	    json_loads(a->params, 0, NULL));
	if (d == NULL)
		return NULL;
	steps = json_array();
	for (i = 0; i < a->nsteps; i++)
		json_array_append_new(steps, json_pack("{s:s, s:s, s:s, s:s}", "step_id",
		    a->steps[i].id, "system", a->steps[i].system, "account",
		    a->steps[i].account_name, "status",
		    step_status_name(a->steps[i].status)));
	json_object_set_new(d, "steps", steps);
	return d;
}

/* Turns a into the denied action that a refused request is stored as. */
static int
refuse(struct action *a, const char *why, struct qerr *e)
{
	size_t i;

	for (i = 0; i < a->nsteps; i++)
		step_clear(&a->steps[i]);
	free(a->steps);
	a->steps = NULL;
	a->nsteps = 0;
	a->status = ACTION_DENIED;
	a->finished_at = a->created_at;
	free(a->message);
	a->message = strdup(why);
	return qerr_set(e, QERR_DENIED, NULL, "%s", why);
}

/* Stores the denied action a (refuse) with its audit entry inside tx. */
static int
deny_tx(struct store_tx *tx, const struct actor *who, const struct action *a,
    struct qerr *e)
{
	json_t *d;
	int r;

	if ((r = store_action_insert(tx, a, e)) != 0)
		return r;
	d = request_detail(a, who);
	json_object_set_new(d, "why", json_string(a->message));
	r = engine_audit_tx_as(tx, who, "action.denied", a->id, NULL, a->identity_id, d,
	    e);
	json_decref(d);
	if (r == 0)
		log_msg(LOG_LVL_INFO, "denied %s on %s by %s: %s",
		    action_type_name(a->type), a->identity_id, who->name, a->message);
	return r;
}

static const char *
system_kind(struct engine *eng, const char *system)
{
	struct engine_system *sys = engine_find_system(eng, system);

	return sys != NULL ? sys->cfg->kind : "unknown";
}

/*
 * Every step the action would run must be allowed to the asker on that identity and
 * system; why lists the refused ones ("corp/alice: …").
 */
static bool
authorize_steps(struct engine *eng, const struct actor *who, const struct action *a,
    const struct identity *idn, char *why, size_t len, json_t *allowed)
{
	char one[320];
	size_t i, n = 0;
	int w;

	why[0] = '\0';
	for (i = 0; i < a->nsteps; i++) {
		if (a->steps[i].status == STEP_NOT_APPLICABLE)
			continue;
		if (policy_step_allowed(eng->pol, who->subject, who->grants, a->type,
		    system_kind(eng, a->steps[i].system), idn->tags, idn->ntags, one,
		    sizeof(one))) {
			json_object_set_new(allowed, a->steps[i].id, json_string(one));
			continue;
		}
		w = snprintf(why + n, len - n, "%s%s/%s: %s", n ? "; " : "",
		    a->steps[i].system, a->steps[i].account_name, one);
		if (w > 0 && (size_t)w < len - n)
			n += (size_t)w;
		else
			n = len - 1;
	}
	return n == 0;
}

/* Holds the action for approval when the request says so (automatic attack
 * disruption past its blast-radius limit) or an [approval] rule matches it. */
static int
approval(struct engine *eng, struct action *a, const struct identity *idn,
    const char *hold_rule, struct qerr *e)
{
	const char **kinds = calloc(a->nsteps + 1, sizeof(*kinds));
	const char *rule = hold_rule;
	int64_t ttl = 24 * 3600 * 1000;
	char msg[256];
	size_t i;

	/* Failing here must fail the request: going on would skip the hold. */
	if (kinds == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < a->nsteps; i++)
		kinds[i] = system_kind(eng, a->steps[i].system);
	if (rule == NULL)
		rule = policy_approval_rule(eng->pol, a, idn->tags, idn->ntags, kinds, &ttl);
	free(kinds);
	if (rule == NULL)
		return 0;
	a->status = ACTION_PENDING_APPROVAL;
	a->approval_rule = strdup(rule);
	a->approval_expires = a->created_at + ttl;
	snprintf(msg, sizeof(msg), "waiting for a second person's approval (rule '%s')",
	    rule);
	free(a->message);
	a->message = strdup(msg);
	return 0;
}

/* Keeps only the accounts named in req->only_accounts (an undo's targets). */
static void
only_accounts(struct identity *idn, const struct action_request *req)
{
	size_t i, k, n = 0;
	bool keep;

	if (req->only_accounts == NULL)
		return;
	for (i = 0; i < idn->naccounts; i++) {
		for (keep = false, k = 0; k < req->nonly && !keep; k++)
			keep = strcmp(idn->accounts[i].id, req->only_accounts[k]) == 0;
		if (keep)
			idn->accounts[n++] = idn->accounts[i];
		else
			account_clear(&idn->accounts[i]);
	}
	idn->naccounts = n;
}

static int
store_request(const struct actor *who, struct store_tx *tx, struct action *a,
    json_t *allowed, struct qerr *e)
{
	json_t *d;
	int r;

	if ((r = store_action_insert(tx, a, e)) != 0)
		return r;
	d = request_detail(a, who);
	json_object_set(d, "authorized_by", allowed);
	if (a->undo_of != NULL)
		json_object_set_new(d, "undo_of", json_string(a->undo_of));
	if (a->alert_id != NULL)
		json_object_set_new(d, "alert_id", json_string(a->alert_id));
	r = engine_audit_tx_as(tx, who, "action.requested", a->id, NULL, a->identity_id,
	    d, e);
	json_decref(d);
	if (r != 0)
		return r;
	if (a->status == ACTION_PENDING_APPROVAL) {
		d = json_pack("{s:s, s:I}", "rule", a->approval_rule, "expires_ms",
		    (json_int_t)a->approval_expires);
		r = engine_audit_tx_as(tx, who, "action.pending_approval", a->id, NULL,
		    a->identity_id, d, e);
		json_decref(d);
		return r;
	}
	/* Every step is queued or not applicable: the roll-up would say "queued" too. */
	return 0;
}

/* The account states (as last read) in which type has nothing left to change. */
static bool
already(enum action_type type, const char *state)
{
	static const char *const off[] = { "disabled", "suspended", NULL };
	static const char *const on[] = { "enabled", NULL };
	static const char *const gone[] = { "deprovisioned", NULL };
	const char *const *v = type == ACTION_DISABLE ? off : type == ACTION_ENABLE ? on :
	    type == ACTION_DEACTIVATE ? gone : NULL;

	for (; state != NULL && v != NULL && *v != NULL; v++)
		if (strcmp(*v, state) == 0)
			return true;
	return false;
}

/* The request parameter that lifts a system's refusal when the refusal names it
 * ("… ask again with clear_dont_expire"); NULL when none does. */
static const char *
lifting_param(enum action_type type, const char *why)
{
	return type == ACTION_FORCE_PASSWORD_CHANGE && strstr(why, "clear_dont_expire") ?
	    "clear_dont_expire" : NULL;
}

static bool
param_set(const struct action *a, const char *name)
{
	json_t *p = json_loads(a->params ? a->params : "{}", 0, NULL);
	bool set = json_is_true(json_object_get(p, name));

	json_decref(p);
	return set;
}

/*
 * What the preview says of step s on acct: change, already, refused (the system will
 * likely refuse it given the account's last known state; the step stays planned: the
 * state may be stale, and a refused step fails without holding the others back) or
 * not_supported. A refusal is also the step's message, as the step list shows it.
 */
static json_t *
preview_line(struct engine *eng, struct action *a, struct step *s,
    const struct account *acct)
{
	struct engine_system *sys = engine_find_system(eng, s->system);
	const char *outcome = "change", *option = NULL;
	char why[512], note[640];

	snprintf(note, sizeof(note), "will be changed");
	if (s->status == STEP_NOT_APPLICABLE) {
		outcome = "not_supported";
		snprintf(note, sizeof(note), "%s", s->message ? s->message : "not supported");
	} else if (sys != NULL && provider_refuses(sys->ops, sys->p, acct, a->type, why,
	    sizeof(why))) {
		option = lifting_param(a->type, why);
		if (option != NULL && param_set(a, option))
			snprintf(note, sizeof(note), "will be changed (%s is set: %s)", option,
			    why);
		else {
			outcome = "refused";
			snprintf(note, sizeof(note), "will be refused: %s", why);
			free(s->message);
			s->message = strdup(why);
		}
	} else if (already(a->type, acct->state)) {
		outcome = "already";
		snprintf(note, sizeof(note), "already %s: nothing to change", acct->state);
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s, s:s, s:s?}",
	    "step_id", s->id, "account_id", s->account_id, "system", s->system,
	    "kind", acct->kind ? acct->kind : "unknown", "account_name", s->account_name,
	    "upn", acct->upn, "username", acct->username, "state", acct->state,
	    "outcome", outcome, "note", note, "option", option);
}

static int
add_warning(json_t *warnings, const char *code, const char *account_id,
    const char *message)
{
	return json_array_append_new(warnings, json_pack("{s:s, s:s?, s:s}", "code", code,
	    "account_id", account_id, "message", message));
}

/* The preview's warnings: an account quell itself signs in with, an identity tagged
 * as automation leaves it alone ([disruption_guard] exclude_tags: tier0, breakglass). */
static int
preview_warnings(struct engine *eng, const struct identity *idn, json_t *warnings)
{
	const struct disruption_guard *g = eng->dpol ? &eng->dpol->guard : NULL;
	const struct account *acct;
	char msg[512];
	size_t i;
	int r = 0;

	for (i = 0; g != NULL && i < idn->naccounts && r == 0; i++) {
		acct = &idn->accounts[i];
		if (!disruption_is_self(g, acct))
			continue;
		snprintf(msg, sizeof(msg), "%s/%s is the account quelld signs in to %s "
		    "with: acting on it can cut quell off from %s", acct->system,
		    acct->username ? acct->username : acct->id, acct->system, acct->system);
		r = add_warning(warnings, "quell_account", acct->id, msg);
	}
	for (i = 0; g != NULL && i < idn->ntags && r == 0; i++) {
		if (!strlist_has(g->exclude_tags.v, g->exclude_tags.n, idn->tags[i], true))
			continue;
		snprintf(msg, sizeof(msg), "the identity is tagged %s: a privileged or "
		    "emergency account", idn->tags[i]);
		r = add_warning(warnings, "protected_tag", NULL, msg);
	}
	return r;
}

/* A preview's account lines and warnings for a, planned on idn, into *out. */
static int
preview_build(struct engine *eng, struct action *a, const struct identity *idn,
    json_t **out, struct qerr *e)
{
	json_t *o = json_object(), *lines = json_array(), *warnings = json_array();
	size_t i, k;
	int r = json_object_set_new(o, "accounts", lines) |
	    json_object_set_new(o, "warnings", warnings);

	for (i = 0; r == 0 && i < a->nsteps; i++) {
		for (k = 0; k < idn->naccounts && strcmp(idn->accounts[k].id,
		    a->steps[i].account_id) != 0; k++)
			continue;
		if (k < idn->naccounts)
			r = json_array_append_new(lines, preview_line(eng, a, &a->steps[i],
			    &idn->accounts[k]));
	}
	if (r != 0 || preview_warnings(eng, idn, warnings) != 0) {
		json_decref(o);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	*out = o;
	return 0;
}

/*
 * Authorizes and plans req inside tx into a: QERR_DENIED (a refused, not stored yet)
 * when who may not, another item error (nothing to store), or 0 with a queued or
 * waiting for approval.
 */
static int
plan_one(struct engine *eng, const struct actor *who, struct store_tx *tx,
    const struct action_request *req, struct action *a, json_t *allowed,
    json_t **preview, struct qerr *e)
{
	struct identity idn;
	char why[1024];
	int r;

	memset(&idn, 0, sizeof(idn));
	if ((who->perms & PERM_RESPONSE_MANAGE) == 0 &&
	    !policy_entra_may(eng->pol, who->subject, req->type)) {
		snprintf(why, sizeof(why), "'%s' holds neither response.manage nor an Entra "
		    "role allowed to %s", who->name, action_type_name(req->type));
		return req->preview ? qerr_set(e, QERR_DENIED, NULL, "%s", why) :
		    refuse(a, why, e);
	}
	if ((r = store_identity_get(tx, req->identity_id, &idn, e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(e, r, "identity_id", "no identity %s", req->identity_id);
		goto out;
	}
	only_accounts(&idn, req);
	if ((r = lifecycle_plan(a, idn.accounts, idn.naccounts, supports, eng, e)) != 0 ||
	    (req->preview && (r = preview_build(eng, a, &idn, preview, e)) != 0))
		goto out;
	if (!authorize_steps(eng, who, a, &idn, why, sizeof(why), allowed)) {
		r = req->preview ? qerr_set(e, QERR_DENIED, NULL, "%s", why) :
		    refuse(a, why, e);
		goto out;
	}
	a->status = ACTION_QUEUED;
	r = approval(eng, a, &idn, req->hold_rule, e);
out:
	identity_clear(&idn);
	return r;
}

/* What refuses one item of a bulk request and leaves the others to go on. */
static bool
item_error(int r)
{
	return r == QERR_DENIED || r == QERR_INVALID || r == QERR_NOT_FOUND ||
	    r == QERR_UNSUPPORTED;
}

/*
 * One item inside the bulk's transaction: planned, then stored (accepted or denied)
 * unless it is a preview or all_or_nothing holds the denial back. Item outcomes go to
 * res; the return value is an error of the whole transaction.
 */
static int
request_one(struct engine *eng, const struct actor *who, struct store_tx *tx,
    const struct action_request *req, bool all_or_nothing, struct action_result *res,
    struct qerr *e)
{
	json_t *allowed = json_object();
	int r;

	qerr_clear(&res->e);
	if (allowed == NULL || new_action(&res->a, who, req) != 0) {
		json_decref(allowed);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	res->r = plan_one(eng, who, tx, req, &res->a, allowed, &res->preview, &res->e);
	r = item_error(res->r) ? 0 : res->r;
	if (r == 0 && !req->preview && res->r == 0)
		r = store_request(who, tx, &res->a, allowed, e);
	else if (r == 0 && res->a.status == ACTION_DENIED && !all_or_nothing)
		r = deny_tx(tx, who, &res->a, e);
	else if (r != 0)
		*e = res->e;
	json_decref(allowed);
	return r;
}

/* all_or_nothing with a refused item: what was accepted is not stored, what was
 * denied is, in a transaction of its own (a refusal is always recorded). */
static int
none_stored(struct engine *eng, const struct actor *who, struct action_result *res,
    size_t n, struct qerr *e)
{
	struct store_tx *tx = NULL;
	size_t i;
	bool denied = false;
	int r = 0;

	for (i = 0; i < n; i++) {
		denied |= res[i].a.status == ACTION_DENIED;
		if (res[i].r != 0)
			continue;
		action_clear(&res[i].a);
		res[i].r = qerr_set(&res[i].e, QERR_CONFLICT, NULL, "not requested: another "
		    "request of this all_or_nothing bulk was refused");
	}
	if (!denied || (r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	for (i = 0; i < n && r == 0; i++)
		if (res[i].a.status == ACTION_DENIED)
			r = deny_tx(tx, who, &res[i].a, e);
	if (r == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
	store_tx_rollback(tx);
	return r;
}

void
engine_results_clear(struct action_result *res, size_t n)
{
	size_t i;

	for (i = 0; res != NULL && i < n; i++) {
		action_clear(&res[i].a);
		json_decref(res[i].preview);
		res[i].preview = NULL;
	}
}

/* Every item inside tx; *refused and *queued say whether any was refused, queued. */
static int
request_items(struct engine *eng, const struct actor *who, struct store_tx *tx,
    const struct action_request *reqs, size_t n, bool all_or_nothing,
    struct action_result *res, bool *refused, bool *queued, struct qerr *e)
{
	size_t i;
	int r = 0;

	*refused = *queued = false;
	for (i = 0; i < n && r == 0; i++) {
		r = request_one(eng, who, tx, &reqs[i], all_or_nothing, &res[i], e);
		*refused |= res[i].r != 0;
		*queued |= res[i].r == 0 && res[i].a.status == ACTION_QUEUED;
	}
	return r;
}

int
engine_request_tx(struct engine *eng, const struct actor *who, struct store_tx *tx,
    const struct action_request *reqs, size_t n, struct action_result *res,
    bool *queued, struct qerr *e)
{
	bool refused;

	memset(res, 0, n * sizeof(*res));
	return request_items(eng, who, tx, reqs, n, false, res, &refused, queued, e);
}

int
engine_request_bulk(struct engine *eng, const struct actor *who,
    const struct action_request *reqs, size_t n, bool all_or_nothing,
    struct action_result *res, struct qerr *e)
{
	struct claimed got = { { NULL, NULL }, false };
	struct store_tx *tx = NULL;
	bool write = false, refused, queued;
	size_t i;
	int r;

	memset(res, 0, n * sizeof(*res));
	for (i = 0; i < n; i++)
		write |= !reqs[i].preview;
	if ((r = store_tx_begin(eng->st, write, &tx, e)) != 0)
		return r;
	r = request_items(eng, who, tx, reqs, n, all_or_nothing, res, &refused, &queued,
	    e);
	if (r != 0 || !write || (refused && all_or_nothing)) {
		store_tx_rollback(tx);
		tx = NULL;
		if (r == 0 && write)
			r = none_stored(eng, who, res, n, e);
		goto out;
	}
	/* The request's own transaction also claims what the workers have room for:
	 * one commit fewer before the first provider call. */
	if (!queued || (r = engine_claim_tx(eng, tx, &got, e)) == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
	engine_dispatch(eng, &got, r == 0);
out:
	store_tx_rollback(tx);
	if (r != 0)
		engine_results_clear(res, n);
	return r;
}

int
engine_request(struct engine *eng, const struct actor *who,
    const struct action_request *req, struct action *out, struct qerr *e)
{
	struct action_result res;
	int r;

	if ((r = engine_request_bulk(eng, who, req, 1, false, &res, e)) != 0)
		return r;
	*e = res.e;
	if (req->preview_out != NULL)
		*req->preview_out = res.preview;
	else
		json_decref(res.preview);
	if (res.r == 0 || res.a.status == ACTION_DENIED)
		*out = res.a;
	else
		action_clear(&res.a);
	return res.r;
}

int
engine_cancel_steps_tx(struct store_tx *tx, const struct actor *actor, struct action *a,
    int64_t now, struct qerr *e)
{
	struct step *s;
	json_t *d;
	size_t i;
	int r;

	for (i = 0; i < a->nsteps; i++) {
		s = &a->steps[i];
		if (s->status != STEP_QUEUED && s->status != STEP_RETRY_WAIT)
			continue;
		s->status = STEP_CANCELLED;
		s->updated_at = s->finished_at = now;
		free(s->message);
		s->message = strdup("cancelled before it started");
		if ((r = store_step_update(tx, s, e)) != 0)
			return r;
		d = json_pack("{s:s, s:s}", "system", s->system, "account", s->account_name);
		r = engine_audit_tx_as(tx, actor, "step.cancelled", a->id, s->id, NULL, d, e);
		json_decref(d);
		if (r != 0)
			return r;
	}
	return 0;
}

/* QERR_DENIED, audited in a transaction of its own, when the action's identity is
 * outside every scope in which who holds response.manage. */
static int
cancel_allowed(struct engine *eng, struct store_tx **tx, const struct actor *who,
    const struct action *a, struct qerr *e)
{
	struct identity idn;
	char why[400];
	bool ok;
	int r;

	memset(&idn, 0, sizeof(idn));
	if ((r = store_identity_get(*tx, a->identity_id, &idn, e)) != 0)
		return r;
	ok = policy_covers(who->grants, PERM_RESPONSE_MANAGE, idn.tags, idn.ntags);
	identity_clear(&idn);
	if (ok)
		return 0;
	snprintf(why, sizeof(why), "identity %s is outside the scope in which %s may "
	    "cancel actions", a->identity_id, who->name);
	/* The caller's write transaction is rolled back: audit in one of our own. */
	store_tx_rollback(*tx);
	*tx = NULL;
	return engine_refuse(eng, who, "action.cancel_denied", a, why, e);
}

int
engine_cancel(struct engine *eng, const struct actor *who, const char *action_id,
    struct action *out, struct qerr *e)
{
	struct store_tx *tx = NULL;
	struct action a;
	int64_t now = engine_now_ms();
	int r;

	memset(&a, 0, sizeof(a));
	if ((who->perms & PERM_RESPONSE_MANAGE) == 0)
		return qerr_set(e, QERR_DENIED, NULL, "'%s' holds no role that grants %s",
		    who->name, rbac_perm_name(PERM_RESPONSE_MANAGE));
	if ((r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	if ((r = store_action_get(tx, action_id, &a, e)) != 0)
		goto out;
	/* Cancelling acts on the identity too: only within the asker's scope. */
	if ((r = cancel_allowed(eng, &tx, who, &a, e)) != 0)
		goto out;
	if (action_status_terminal(a.status)) {
		r = qerr_set(e, QERR_CONFLICT, NULL, "action %s is already %s", a.id,
		    action_status_name(a.status));
		goto out;
	}
	a.cancel_requested = true;
	a.updated_at = now;
	if ((r = store_action_update(tx, &a, e)) != 0 ||
	    (r = engine_audit_tx_as(tx, who, "action.cancel_requested", a.id, NULL,
	    a.identity_id, NULL, e)) != 0 ||
	    (r = engine_cancel_steps_tx(tx, who, &a, now, e)) != 0 ||
	    (r = engine_rollup_tx(tx, who, a.id, now, e)) != 0)
		goto out;
	action_clear(&a);
	if ((r = store_action_get(tx, action_id, &a, e)) != 0)
		goto out;
	r = store_tx_commit(tx, e);
	tx = NULL;
out:
	store_tx_rollback(tx);
	if (r == 0)
		*out = a;
	else
		action_clear(&a);
	return r;
}

int
engine_audit(struct engine *eng, const char *actor, const char *event,
    const char *identity_id, json_t *detail, struct qerr *e)
{
	struct actor sys = { .name = actor, .kind = "system" };

	return engine_audit_as(eng, &sys, event, identity_id, detail, e);
}

int
engine_audit_as(struct engine *eng, const struct actor *who, const char *event,
    const char *identity_id, json_t *detail, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int r;

	if ((r = store_tx_begin(eng->st, true, &tx, e)) == 0 &&
	    (r = engine_audit_tx_as(tx, who, event, NULL, NULL, identity_id, detail,
	    e)) == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
	store_tx_rollback(tx);
	return r;
}
