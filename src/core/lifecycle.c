/* Planning of steps and roll-up of step states into an action state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "id.h"
#include "lifecycle.h"

const char *
lifecycle_account_name(const struct account *acct)
{
	if (acct->username != NULL)
		return acct->username;
	if (acct->upn != NULL)
		return acct->upn;
	return acct->external_id;
}

/*
 * The action's params, plus "synced": true for an account mastered in another system,
 * so its provider can warn that the next directory sync may undo the change.
 */
static char *
step_params(const struct action *a, const struct account *acct)
{
	json_t *p;
	char *out;

	if (!acct->synced)
		return strdup(a->params ? a->params : "{}");
	p = json_loads(a->params ? a->params : "{}", 0, NULL);
	if (p == NULL || !json_is_object(p) ||
	    json_object_set_new(p, "synced", json_true()) != 0) {
		json_decref(p);
		return NULL;
	}
	out = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(p);
	return out;
}

static int
fill_step(struct step *s, const struct action *a, const struct account *acct,
    bool supported)
{
	char id[ID_LEN], msg[256];

	id_make(id, "stp", a->created_at);
	s->id = strdup(id);
	s->action_id = strdup(a->id);
	s->account_id = strdup(acct->id);
	s->system = strdup(acct->system);
	s->account_ref = strdup(acct->external_id ? acct->external_id : "");
	s->account_name = strdup(lifecycle_account_name(acct) ? lifecycle_account_name(acct) : "");
	s->params = step_params(a, acct);
	s->type = a->type;
	s->created_at = s->updated_at = a->created_at;
	if (supported)
		s->status = STEP_QUEUED;
	else {
		s->status = STEP_NOT_APPLICABLE;
		s->finished_at = a->created_at;
		snprintf(msg, sizeof(msg), "%s is not supported by %s (%s)",
		    action_type_name(a->type), acct->system, acct->kind);
		s->message = strdup(msg);
	}
	if (!s->id || !s->action_id || !s->account_id || !s->system || !s->account_ref ||
	    !s->account_name || !s->params || (!supported && !s->message))
		return QERR_NOMEM;
	return 0;
}

int
lifecycle_plan(struct action *a, const struct account *accts, size_t n,
    lifecycle_supports_fn supports, void *arg, struct qerr *e)
{
	size_t i, nsteps = 0, nsupported = 0;
	const struct account *named = NULL;
	bool ok;
	int r;

	if (a->account_id != NULL) {
		for (i = 0; i < n; i++)
			if (strcmp(accts[i].id, a->account_id) == 0)
				named = &accts[i];
		if (named == NULL)
			return qerr_set(e, QERR_NOT_FOUND, "account_id",
			    "account %s is not linked to identity %s", a->account_id,
			    a->identity_id);
		if (!supports(arg, named, a->type))
			return qerr_set(e, QERR_UNSUPPORTED, "type",
			    "%s is not supported by %s (%s), the system of account %s",
			    action_type_name(a->type), named->system, named->kind, named->id);
		accts = named;
		n = 1;
	}
	if (n == 0)
		return qerr_set(e, QERR_INVALID, "identity_id",
		    "identity %s has no linked accounts", a->identity_id);
	for (i = 0; i < n; i++)
		if (supports(arg, &accts[i], a->type))
			nsupported++;
	if (nsupported == 0)
		return qerr_set(e, QERR_UNSUPPORTED, "type",
		    "no account linked to identity %s is in a system that supports %s",
		    a->identity_id, action_type_name(a->type));
	if ((a->steps = calloc(n, sizeof(*a->steps))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < n; i++) {
		ok = supports(arg, &accts[i], a->type);
		nsteps++;
		a->nsteps = nsteps;
		if ((r = fill_step(&a->steps[i], a, &accts[i], ok)) != 0)
			return qerr_set(e, r, NULL, "out of memory");
	}
	return 0;
}

enum action_status
lifecycle_rollup(const struct action *a, char *msg, size_t len)
{
	size_t i, cnt[STEP_STATUS_COUNT] = { 0 }, active, started;

	for (i = 0; i < a->nsteps; i++)
		cnt[a->steps[i].status]++;
	active = cnt[STEP_QUEUED] + cnt[STEP_RUNNING] + cnt[STEP_RETRY_WAIT];
	started = a->nsteps - cnt[STEP_QUEUED] - cnt[STEP_NOT_APPLICABLE];
	snprintf(msg, len, "%zu succeeded, %zu failed, %zu not applicable, %zu cancelled"
	    "%s", cnt[STEP_SUCCEEDED], cnt[STEP_FAILED], cnt[STEP_NOT_APPLICABLE],
	    cnt[STEP_CANCELLED], active ? ", others in progress" : "");
	if (active > 0)
		return started > 0 ? ACTION_RUNNING : ACTION_QUEUED;
	if (cnt[STEP_FAILED] == 0 && cnt[STEP_CANCELLED] == 0)
		return ACTION_COMPLETED;
	if (cnt[STEP_SUCCEEDED] > 0)
		return ACTION_PARTIALLY_COMPLETED;
	if (cnt[STEP_FAILED] > 0)
		return ACTION_FAILED;
	return ACTION_CANCELLED;
}
