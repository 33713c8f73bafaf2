/* Names of the lifecycle enums, and freeing and copying of the model structs. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"

static const char *const type_names[ACTION_TYPE_COUNT] = {
	[ACTION_DISABLE] = "disable",
	[ACTION_ENABLE] = "enable",
	[ACTION_REVOKE_SESSIONS] = "revoke_sessions",
	[ACTION_MARK_COMPROMISED] = "mark_compromised",
	[ACTION_FORCE_PASSWORD_CHANGE] = "force_password_change",
	[ACTION_DEACTIVATE] = "deactivate",
	[ACTION_SET_RISK] = "set_risk",
};

static const char *const action_status_names[ACTION_STATUS_COUNT] = {
	[ACTION_PENDING_APPROVAL] = "pending_approval",
	[ACTION_QUEUED] = "queued",
	[ACTION_RUNNING] = "running",
	[ACTION_COMPLETED] = "completed",
	[ACTION_PARTIALLY_COMPLETED] = "partially_completed",
	[ACTION_FAILED] = "failed",
	[ACTION_CANCELLED] = "cancelled",
	[ACTION_DENIED] = "denied",
	[ACTION_REJECTED] = "rejected",
};

static const char *const step_status_names[STEP_STATUS_COUNT] = {
	[STEP_QUEUED] = "queued",
	[STEP_RUNNING] = "running",
	[STEP_RETRY_WAIT] = "retry_wait",
	[STEP_SUCCEEDED] = "succeeded",
	[STEP_FAILED] = "failed",
	[STEP_NOT_APPLICABLE] = "not_applicable",
	[STEP_CANCELLED] = "cancelled",
};

static int
lookup(const char *const *names, int n, const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

const char *
action_type_name(enum action_type t)
{
	return (unsigned)t < ACTION_TYPE_COUNT ? type_names[t] : "unknown";
}

const char *
action_status_name(enum action_status s)
{
	return (unsigned)s < ACTION_STATUS_COUNT ? action_status_names[s] : "unknown";
}

const char *
step_status_name(enum step_status s)
{
	return (unsigned)s < STEP_STATUS_COUNT ? step_status_names[s] : "unknown";
}

int
action_type_parse(const char *name, enum action_type *out)
{
	int i = lookup(type_names, ACTION_TYPE_COUNT, name);

	if (i < 0)
		return -1;
	*out = (enum action_type)i;
	return 0;
}

int
action_status_parse(const char *name, enum action_status *out)
{
	int i = lookup(action_status_names, ACTION_STATUS_COUNT, name);

	if (i < 0)
		return -1;
	*out = (enum action_status)i;
	return 0;
}

int
step_status_parse(const char *name, enum step_status *out)
{
	int i = lookup(step_status_names, STEP_STATUS_COUNT, name);

	if (i < 0)
		return -1;
	*out = (enum step_status)i;
	return 0;
}

bool
action_status_terminal(enum action_status s)
{
	return s == ACTION_COMPLETED || s == ACTION_PARTIALLY_COMPLETED ||
	    s == ACTION_FAILED || s == ACTION_CANCELLED || s == ACTION_DENIED ||
	    s == ACTION_REJECTED;
}

bool
step_status_terminal(enum step_status s)
{
	return s == STEP_SUCCEEDED || s == STEP_FAILED || s == STEP_NOT_APPLICABLE ||
	    s == STEP_CANCELLED;
}

void
account_clear(struct account *a)
{
	if (a == NULL)
		return;
	free(a->id);
	free(a->identity_id);
	free(a->system);
	free(a->kind);
	free(a->external_id);
	free(a->sid);
	free(a->dn);
	free(a->username);
	free(a->upn);
	free(a->display_name);
	free(a->email);
	free(a->state);
	free(a->risk);
	free(a->link_rule);
	free(a->linked_by);
	memset(a, 0, sizeof(*a));
}

void
identity_clear(struct identity *i)
{
	size_t k;

	if (i == NULL)
		return;
	free(i->id);
	free(i->display_name);
	for (k = 0; k < i->ntags; k++)
		free(i->tags[k]);
	free(i->tags);
	for (k = 0; k < i->naccounts; k++)
		account_clear(&i->accounts[k]);
	free(i->accounts);
	memset(i, 0, sizeof(*i));
}

void
step_clear(struct step *s)
{
	if (s == NULL)
		return;
	free(s->id);
	free(s->action_id);
	free(s->account_id);
	free(s->system);
	free(s->account_ref);
	free(s->account_name);
	free(s->params);
	free(s->lease_owner);
	free(s->request_id);
	free(s->error_code);
	free(s->message);
	memset(s, 0, sizeof(*s));
}

void
action_clear(struct action *a)
{
	size_t k;

	if (a == NULL)
		return;
	free(a->id);
	free(a->identity_id);
	free(a->account_id);
	free(a->requested_by);
	free(a->source);
	free(a->reason);
	free(a->params);
	free(a->message);
	free(a->requested_by_id);
	free(a->requested_by_kind);
	free(a->decided_by_id);
	free(a->decided_by_kind);
	free(a->undo_of);
	free(a->approval_rule);
	free(a->decided_by);
	free(a->alert_id);
	for (k = 0; k < a->nsteps; k++)
		step_clear(&a->steps[k]);
	free(a->steps);
	memset(a, 0, sizeof(*a));
}

void
audit_entry_clear(struct audit_entry *e)
{
	if (e == NULL)
		return;
	free(e->actor);
	free(e->event);
	free(e->action_id);
	free(e->step_id);
	free(e->identity_id);
	free(e->detail);
	free(e->actor_kind);
	free(e->actor_id);
	free(e->client);
	memset(e, 0, sizeof(*e));
}

void
principal_clear(struct principal *p)
{
	size_t i;

	if (p == NULL)
		return;
	free(p->id);
	free(p->name);
	free(p->role);
	for (i = 0; i < p->nscope; i++)
		free(p->scope[i]);
	free(p->scope);
	memset(p, 0, sizeof(*p));
}

/* strdup that maps NULL to NULL and records failure in *bad. */
static char *
dup(const char *s, int *bad)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*bad = 1;
	return d;
}

int
account_copy(struct account *dst, const struct account *src)
{
	int bad = 0;

	*dst = *src;
	dst->id = dup(src->id, &bad);
	dst->identity_id = dup(src->identity_id, &bad);
	dst->system = dup(src->system, &bad);
	dst->kind = dup(src->kind, &bad);
	dst->external_id = dup(src->external_id, &bad);
	dst->sid = dup(src->sid, &bad);
	dst->dn = dup(src->dn, &bad);
	dst->username = dup(src->username, &bad);
	dst->upn = dup(src->upn, &bad);
	dst->display_name = dup(src->display_name, &bad);
	dst->email = dup(src->email, &bad);
	dst->state = dup(src->state, &bad);
	dst->risk = dup(src->risk, &bad);
	dst->link_rule = dup(src->link_rule, &bad);
	dst->linked_by = dup(src->linked_by, &bad);
	if (bad) {
		account_clear(dst);
		return QERR_NOMEM;
	}
	return 0;
}

int
step_copy(struct step *dst, const struct step *src)
{
	int bad = 0;

	*dst = *src;
	dst->id = dup(src->id, &bad);
	dst->action_id = dup(src->action_id, &bad);
	dst->account_id = dup(src->account_id, &bad);
	dst->system = dup(src->system, &bad);
	dst->account_ref = dup(src->account_ref, &bad);
	dst->account_name = dup(src->account_name, &bad);
	dst->params = dup(src->params, &bad);
	dst->lease_owner = dup(src->lease_owner, &bad);
	dst->request_id = dup(src->request_id, &bad);
	dst->error_code = dup(src->error_code, &bad);
	dst->message = dup(src->message, &bad);
	if (bad) {
		step_clear(dst);
		return QERR_NOMEM;
	}
	return 0;
}
