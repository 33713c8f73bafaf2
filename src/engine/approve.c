/*
 * The two safety nets around an action: a second person's approval before it runs
 * (the two-person rule, with a deadline), and undo after it ran (the inverse action,
 * authorized and audited like any other).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>


#include "core/log.h"
#include "core/rbac.h"
#include "internal.h"
#include "wake.h"

/* The same person, whichever of their tokens or sign-ins they use. */
static bool
same_person(const struct action *a, const struct actor *who)
{
	if (a->requested_by != NULL && who->name != NULL &&
	    strcasecmp(a->requested_by, who->name) == 0)
		return true;
	return a->requested_by_id != NULL && who->id != NULL &&
	    strcmp(a->requested_by_id, who->id) == 0;
}

static int expire_one(struct engine *eng, struct store_tx *tx, const char *id,
    int64_t now, struct qerr *e);

/* Audits a refused decision in a transaction of its own: nothing else changes. */
int
engine_refuse(struct engine *eng, const struct actor *who, const char *event,
    const struct action *a, const char *why, struct qerr *e)
{
	json_t *d = json_pack("{s:s}", "why", why);
	struct store_tx *tx = NULL;
	struct qerr e2;

	if (store_tx_begin(eng->st, true, &tx, &e2) == 0 &&
	    engine_audit_tx_as(tx, who, event, a->id, NULL, a->identity_id, d, &e2) == 0 &&
	    store_tx_commit(tx, &e2) == 0)
		tx = NULL;
	store_tx_rollback(tx);
	json_decref(d);
	return qerr_set(e, QERR_DENIED, NULL, "%s", why);
}

static int
decide_tx(const struct actor *who, struct store_tx *tx,
    struct action *a, bool approve, const char *reason, struct qerr *e)
{
	int64_t now = engine_now_ms();
	char msg[640];
	json_t *d;
	int r;

	free(a->decided_by);
	free(a->decided_by_id);
	free(a->decided_by_kind);
	a->decided_by = strdup(who->name);
	a->decided_by_id = who->id ? strdup(who->id) : NULL;
	a->decided_by_kind = strdup(who->kind ? who->kind : "system");
	a->updated_at = now;
	if (approve) {
		a->status = ACTION_QUEUED;
		snprintf(msg, sizeof(msg), "approved by %s%s%s", who->name,
		    reason ? ": " : "", reason ? reason : "");
	} else {
		snprintf(msg, sizeof(msg), "rejected by %s%s%s", who->name,
		    reason ? ": " : "", reason ? reason : "");
		if ((r = engine_cancel_steps_tx(tx, who, a, now, e)) != 0)
			return r;
		a->status = ACTION_REJECTED;
		a->finished_at = now;
	}
	free(a->message);
	a->message = strdup(msg);
	if ((r = store_action_update(tx, a, e)) != 0)
		return r;
	d = json_pack("{s:s, s:s?, s:s?}", "role", who->role ? who->role : "", "reason",
	    reason, "rule", a->approval_rule);
	r = engine_audit_tx_as(tx, who, approve ? "action.approved" : "action.rejected",
	    a->id, NULL, a->identity_id, d, e);
	json_decref(d);
	if (r == 0 && approve)
		r = engine_rollup_tx(tx, who, a->id, now, e);
	return r;
}

int
engine_decide(struct engine *eng, const struct actor *who, const char *action_id,
    bool approve, const char *reason, struct action *out, struct qerr *e)
{
	struct store_tx *tx = NULL;
	struct identity idn;
	struct action a;
	char why[400];
	int r;

	memset(&a, 0, sizeof(a));
	memset(&idn, 0, sizeof(idn));
	if ((who->perms & PERM_RESPONSE_APPROVE) == 0)
		return qerr_set(e, QERR_DENIED, NULL, "'%s' holds no role that grants %s",
		    who->name, rbac_perm_name(PERM_RESPONSE_APPROVE));
	if ((r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	if ((r = store_action_get(tx, action_id, &a, e)) != 0)
		goto out;
	if (a.status != ACTION_PENDING_APPROVAL) {
		r = qerr_set(e, QERR_CONFLICT, NULL, "action %s is %s, not waiting for "
		    "approval", a.id, action_status_name(a.status));
		goto out;
	}
	if (a.approval_expires != 0 && engine_now_ms() > a.approval_expires) {
		/* Past its deadline the action is cancelled, whether or not the sweep
		 * has come by yet. */
		if ((r = expire_one(eng, tx, a.id, engine_now_ms(), e)) != 0)
			goto out;
		r = store_tx_commit(tx, e);
		tx = NULL;
		if (r == 0)
			r = qerr_set(e, QERR_CONFLICT, NULL, "action %s passed its approval "
			    "deadline and was cancelled", a.id);
		goto out;
	}
	if ((r = store_identity_get(tx, a.identity_id, &idn, e)) != 0)
		goto out;
	if (same_person(&a, who) ||
	    !policy_covers(who->grants, PERM_RESPONSE_APPROVE, idn.tags, idn.ntags)) {
		snprintf(why, sizeof(why), same_person(&a, who) ?
		    "%s requested this action and cannot approve or reject it: a second "
		    "person must" : "identity %s is outside the scope in which %s may approve",
		    same_person(&a, who) ? a.requested_by : a.identity_id, who->name);
		store_tx_rollback(tx);
		tx = NULL;
		r = engine_refuse(eng, who, "action.approval_refused", &a, why, e);
		goto out;
	}
	if ((r = decide_tx(who, tx, &a, approve, reason, e)) != 0)
		goto out;
	action_clear(&a);
	if ((r = store_action_get(tx, action_id, &a, e)) != 0)
		goto out;
	r = store_tx_commit(tx, e);
	tx = NULL;
	if (r == 0 && approve)
		engine_wake(eng);
out:
	store_tx_rollback(tx);
	identity_clear(&idn);
	if (r == 0)
		*out = a;
	else
		action_clear(&a);
	return r;
}

struct expired {
	int64_t now;
	char **ids;
	size_t n;
};

static int
collect_expired(const struct action *a, void *arg)
{
	struct expired *x = arg;
	char **grown;

	if (a->approval_expires == 0 || a->approval_expires > x->now)
		return 0;
	if ((grown = realloc(x->ids, (x->n + 1) * sizeof(*grown))) == NULL)
		return QERR_NOMEM;
	x->ids = grown;
	if ((x->ids[x->n] = strdup(a->id)) == NULL)
		return QERR_NOMEM;
	x->n++;
	return 0;
}

static int
expire_one(struct engine *eng, struct store_tx *tx, const char *id, int64_t now,
    struct qerr *e)
{
	struct action a;
	json_t *d;
	int r;

	memset(&a, 0, sizeof(a));
	if ((r = store_action_get(tx, id, &a, e)) != 0)
		return r;
	if (a.status == ACTION_PENDING_APPROVAL &&
	    (r = engine_cancel_steps_tx(tx, &eng->nactor, &a, now, e)) == 0) {
		a.status = ACTION_CANCELLED;
		a.updated_at = a.finished_at = now;
		free(a.message);
		a.message = strdup("cancelled: nobody approved it before its deadline");
		d = json_pack("{s:s?, s:I}", "rule", a.approval_rule, "deadline_ms",
		    (json_int_t)a.approval_expires);
		if ((r = store_action_update(tx, &a, e)) == 0)
			r = engine_audit_tx(tx, eng->opt.node_id, "action.approval_expired",
			    a.id, NULL, a.identity_id, d, e);
		json_decref(d);
	}
	action_clear(&a);
	return r;
}

void
engine_expire_approvals(struct engine *eng)
{
	struct action_filter f = { .status = "pending_approval", .limit = 1000 };
	struct expired x = { .now = engine_now_ms() };
	struct store_tx *tx = NULL;
	struct qerr e;
	int64_t lease = 0;
	size_t i;
	int r;

	/* Once per cluster: the nodes would only queue behind each other's writes. */
	if (!engine_lease_hold(eng->st, eng->opt.node_id, "approval-expiry", &lease))
		return;
	qerr_clear(&e);
	if ((r = store_tx_begin(eng->st, true, &tx, &e)) != 0)
		goto out;
	if ((r = store_action_list(tx, &f, collect_expired, &x, &e)) != 0)
		goto out;
	for (i = 0; i < x.n && r == 0; i++)
		r = expire_one(eng, tx, x.ids[i], x.now, &e);
	if (r == 0) {
		r = store_tx_commit(tx, &e);
		tx = NULL;
	}
out:
	store_tx_rollback(tx);
	if (r != 0)
		log_msg(LOG_LVL_WARN, "engine: expiring approvals: %s", e.msg);
	for (i = 0; i < x.n; i++)
		free(x.ids[i]);
	free(x.ids);
}

/*
 * The inverse of a: *inv, with *self when it is a's own type carried out with
 * params.undo (the provider dismisses the risk, restores the level, withdraws the
 * password change); or -1 with why set when there is none.
 */
static int
inverse(const struct action *a, enum action_type *inv, bool *self, const char **why)
{
	*self = false;
	switch (a->type) {
	case ACTION_DISABLE:
		*inv = ACTION_ENABLE;
		return 0;
	case ACTION_ENABLE:
		*inv = ACTION_DISABLE;
		return 0;
	case ACTION_REVOKE_SESSIONS:
		*why = "revoking sessions has no inverse: ended sessions cannot be restored, "
		    "the user signs in again";
		return -1;
	case ACTION_DEACTIVATE:
		*why = "Okta deactivation cannot be undone: it deprovisioned the account and "
		    "its app assignments; reactivating needs a new activation";
		return -1;
	case ACTION_FORCE_PASSWORD_CHANGE:
	case ACTION_MARK_COMPROMISED:
	case ACTION_SET_RISK:
		break;
	default:
		*why = "this action has no inverse";
		return -1;
	}
	/* Undoing an undo of these would guess at a state nobody recorded. */
	if (a->undo_of != NULL) {
		*why = "it is itself an undo: request the action again instead";
		return -1;
	}
	*inv = a->type;
	*self = true;
	return 0;
}

/*
 * The level the Okta provider read before changing it, from the step's message
 * ("risk level set to HIGH (was LOW)"), into lvl; false when none was recorded.
 */
static bool
risk_before(const struct step *s, char *lvl, size_t len)
{
	const char *w = s->message != NULL ? strstr(s->message, "(was ") : NULL;
	size_t n;

	if (w == NULL)
		return false;
	w += strlen("(was ");
	n = strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
	if (n == 0 || n >= len || w[n] != ')')
		return false;
	memcpy(lvl, w, n);
	lvl[n] = '\0';
	return true;
}

/*
 * The params of a's undo when it is a's own type (*out, caller frees):
 * {"undo": true}, and for set_risk the level each account had before
 * ("risk_level_before": {account_id: level}). Refused when a level is unknown.
 */
static int
undo_params(const struct action *a, char **out, struct qerr *e)
{
	json_t *root = json_pack("{s:b}", "undo", 1), *before = json_object();
	char lvl[16];
	size_t i;
	int r = QERR_NOMEM;

	*out = NULL;
	if (root == NULL || before == NULL)
		goto out;
	for (i = 0; a->type == ACTION_SET_RISK && i < a->nsteps; i++) {
		if (a->steps[i].status != STEP_SUCCEEDED)
			continue;
		if (!risk_before(&a->steps[i], lvl, sizeof(lvl))) {
			r = qerr_set(e, QERR_UNSUPPORTED, NULL, "set_risk cannot be undone: "
			    "the level of %s before the change was not recorded",
			    a->steps[i].account_name);
			goto out;
		}
		if (strcmp(lvl, "NONE") == 0) {
			r = qerr_set(e, QERR_UNSUPPORTED, NULL, "set_risk cannot be undone: "
			    "%s had no risk level before, and Okta can set one but not clear it",
			    a->steps[i].account_name);
			goto out;
		}
		if (json_object_set_new(before, a->steps[i].account_id, json_string(lvl)) != 0)
			goto out;
	}
	if (a->type == ACTION_SET_RISK &&
	    json_object_set(root, "risk_level_before", before) != 0)
		goto out;
	if ((*out = json_dumps(root, JSON_COMPACT)) == NULL)
		goto out;
	r = 0;
out:
	if (r == QERR_NOMEM)
		qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	json_decref(before);
	json_decref(root);
	return r;
}

static int
find_undo(const struct action *a, void *arg)
{
	const struct action **found = arg;

	/* An undo that enabled only some accounts may be tried again. */
	if (a->status != ACTION_DENIED && a->status != ACTION_FAILED &&
	    a->status != ACTION_CANCELLED && a->status != ACTION_REJECTED &&
	    a->status != ACTION_PARTIALLY_COMPLETED &&
	    *found == NULL)
		*found = a;
	return *found != NULL;
}

/* Checks that a can be undone; fills the accounts whose steps succeeded. */
static int
undoable(struct engine *eng, const struct action *a, char ***accounts, size_t *n,
    struct qerr *e)
{
	struct action_filter f = { .undo_of = a->id, .limit = 10 };
	const struct action *found = NULL;
	struct store_tx *tx = NULL;
	size_t i;
	int r;

	if (!action_status_terminal(a->status) || a->status == ACTION_DENIED)
		return qerr_set(e, QERR_CONFLICT, NULL, "action %s is %s: only a finished "
		    "action can be undone", a->id, action_status_name(a->status));
	if ((r = store_tx_begin(eng->st, false, &tx, e)) != 0)
		return r;
	r = store_action_list(tx, &f, find_undo, &found, e);
	store_tx_rollback(tx);
	if (r < 0)
		return r;
	if (r > 0)
		return qerr_set(e, QERR_CONFLICT, NULL, "action %s is already being undone",
		    a->id);
	if ((*accounts = calloc(a->nsteps + 1, sizeof(**accounts))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (*n = 0, i = 0; i < a->nsteps; i++)
		if (a->steps[i].status == STEP_SUCCEEDED)
			(*accounts)[(*n)++] = a->steps[i].account_id;
	if (*n == 0)
		return qerr_set(e, QERR_CONFLICT, NULL, "action %s changed nothing: no step "
		    "succeeded", a->id);
	return 0;
}

int
engine_undo(struct engine *eng, const struct actor *who, const char *action_id,
    const char *reason, json_t **preview, struct action *out, struct qerr *e)
{
	struct action_request req = { .reason = reason, .source = "api",
	    .preview = preview != NULL, .preview_out = preview };
	struct store_tx *tx = NULL;
	struct action orig;
	const char *why = NULL;
	char **accounts = NULL, *params = NULL;
	size_t n = 0;
	bool self;
	int r;

	memset(&orig, 0, sizeof(orig));
	if ((r = store_tx_begin(eng->st, false, &tx, e)) != 0)
		return r;
	r = store_action_get(tx, action_id, &orig, e);
	store_tx_rollback(tx);
	if (r != 0)
		return r;
	if (inverse(&orig, &req.type, &self, &why) != 0) {
		r = qerr_set(e, QERR_UNSUPPORTED, NULL, "%s cannot be undone: %s",
		    action_type_name(orig.type), why);
		goto out;
	}
	req.identity_id = orig.identity_id;
	req.params = "{}";
	req.undo_of = orig.id;
	/* Authorization comes before any question about the action's state. */
	if ((who->perms & PERM_RESPONSE_MANAGE) == 0 &&
	    !policy_entra_may(eng->pol, who->subject, req.type)) {
		r = engine_request(eng, who, &req, out, e);
		goto out;
	}
	if ((r = undoable(eng, &orig, &accounts, &n, e)) != 0)
		goto out;
	if (self && (r = undo_params(&orig, &params, e)) != 0)
		goto out;
	if (params != NULL)
		req.params = params;
	req.only_accounts = accounts;
	req.nonly = n;
	r = engine_request(eng, who, &req, out, e);
out:
	free(params);
	free(accounts);
	action_clear(&orig);
	return r;
}
