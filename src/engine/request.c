/*
 * The engine's front: authorizing, planning and storing action requests, cancelling
 * them, and importing a system's accounts. Nothing reaches a worker before its action
 * and audit entry are committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/lifecycle.h"
#include "core/log.h"
#include "core/rbac.h"
#include "internal.h"

static bool
supports(void *arg, const struct account *acct, enum action_type type)
{
	struct engine_system *sys = engine_find_system(arg, acct->system);

	return sys != NULL && provider_supports(sys->ops, type);
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
	a->source = xstrdup(req->source ? req->source : "api", &bad);
	a->reason = xstrdup(req->reason, &bad);
	a->params = xstrdup(req->params ? req->params : "{}", &bad);
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

/* Stores a refused request as a denied action, audited, and fills *out with it. */
static int
deny(struct engine *eng, const struct actor *who, struct action *a, unsigned need,
    struct qerr *e)
{
	struct store_tx *tx = NULL;
	char why[256];
	json_t *d;
	int r;

	snprintf(why, sizeof(why), "role '%s' does not grant %s", who->role ? who->role :
	    "(none)", rbac_perm_name(need));
	a->status = ACTION_DENIED;
	a->finished_at = a->created_at;
	a->message = strdup(why);
	if ((r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	if ((r = store_action_insert(tx, a, e)) != 0)
		goto out;
	d = request_detail(a, who);
	json_object_set_new(d, "why", json_string(why));
	r = engine_audit_tx(tx, who->name, "action.denied", a->id, NULL, a->identity_id, d,
	    e);
	json_decref(d);
	if (r == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
out:
	store_tx_rollback(tx);
	if (r != 0)
		return r;
	log_msg(LOG_LVL_INFO, "denied %s on %s by %s: %s", action_type_name(a->type),
	    a->identity_id, who->name, why);
	return qerr_set(e, QERR_DENIED, NULL, "%s", why);
}

int
engine_request(struct engine *eng, const struct actor *who,
    const struct action_request *req, struct action *out, struct qerr *e)
{
	struct store_tx *tx = NULL;
	struct identity idn;
	struct action a;
	unsigned need = rbac_action_perm(req->type);
	json_t *d;
	int r;

	memset(&idn, 0, sizeof(idn));
	if ((r = new_action(&a, who, req)) != 0) {
		action_clear(&a);
		return qerr_set(e, r, NULL, "out of memory");
	}
	if ((who->perms & need) == 0) {
		if (req->preview) {
			action_clear(&a);
			return qerr_set(e, QERR_DENIED, NULL, "role '%s' does not grant %s",
			    who->role, rbac_perm_name(need));
		}
		r = deny(eng, who, &a, need, e);
		*out = a;
		return r;
	}
	if ((r = store_tx_begin(eng->st, !req->preview, &tx, e)) != 0)
		goto out;
	if ((r = store_identity_get(tx, req->identity_id, &idn, e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(e, r, "identity_id", "no identity %s", req->identity_id);
		goto out;
	}
	if ((r = lifecycle_plan(&a, idn.accounts, idn.naccounts, supports, eng, e)) != 0)
		goto out;
	a.status = ACTION_QUEUED;
	if (req->preview) {
		r = 0;
		goto out;
	}
	if ((r = store_action_insert(tx, &a, e)) != 0)
		goto out;
	d = request_detail(&a, who);
	r = engine_audit_tx(tx, who->name, "action.requested", a.id, NULL, a.identity_id, d,
	    e);
	json_decref(d);
	if (r == 0 && (r = engine_rollup_tx(tx, who->name, a.id, a.created_at, e)) == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
	if (r == 0)
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

static int
cancel_steps(struct store_tx *tx, const struct actor *who, struct action *a,
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
		r = engine_audit_tx(tx, who->name, "step.cancelled", a->id, s->id, NULL, d, e);
		json_decref(d);
		if (r != 0)
			return r;
	}
	return 0;
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
		return qerr_set(e, QERR_DENIED, NULL, "role '%s' does not grant %s",
		    who->role, rbac_perm_name(PERM_RESPONSE_MANAGE));
	if ((r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	if ((r = store_action_get(tx, action_id, &a, e)) != 0)
		goto out;
	if (action_status_terminal(a.status)) {
		r = qerr_set(e, QERR_CONFLICT, NULL, "action %s is already %s", a.id,
		    action_status_name(a.status));
		goto out;
	}
	a.cancel_requested = true;
	a.updated_at = now;
	if ((r = store_action_update(tx, &a, e)) != 0 ||
	    (r = engine_audit_tx(tx, who->name, "action.cancel_requested", a.id, NULL,
	    a.identity_id, NULL, e)) != 0 ||
	    (r = cancel_steps(tx, who, &a, now, e)) != 0 ||
	    (r = engine_rollup_tx(tx, who->name, a.id, now, e)) != 0)
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
    const char *identity_id, const char *detail_json, struct qerr *e)
{
	struct store_tx *tx = NULL;
	json_t *d = detail_json ? json_loads(detail_json, 0, NULL) : NULL;
	int r;

	if ((r = store_tx_begin(eng->st, true, &tx, e)) == 0 &&
	    (r = engine_audit_tx(tx, actor, event, NULL, NULL, identity_id, d, e)) == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
	store_tx_rollback(tx);
	json_decref(d);
	return r;
}
