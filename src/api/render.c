/* Model structs to the API's JSON. */
#include "core/text.h"
#include "render.h"

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *
render_time(int64_t ms)
{
	char buf[TEXT_TIME_LEN];

	if (ms == 0)
		return json_null();
	text_time_format(ms, buf);
	return json_string(buf);
}

json_t *
render_step(const struct step *s)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:o, s:o, s:o,"
	    " s:o, s:o, s:o, s:o}",
	    "id", s->id, "account_id", s->account_id, "system", s->system,
	    "account_name", s->account_name, "type", action_type_name(s->type),
	    "status", step_status_name(s->status), "attempts", s->attempts,
	    "waits", s->waits, "wait_ms", (json_int_t)s->wait_ms,
	    "request_id", str_or_null(s->request_id),
	    "error_code", str_or_null(s->error_code),
	    "message", str_or_null(s->message),
	    "created_at", render_time(s->created_at),
	    "started_at", render_time(s->started_at),
	    "finished_at", render_time(s->finished_at),
	    "not_before", s->status == STEP_RETRY_WAIT ? render_time(s->not_before) :
	    json_null());
}

json_t *
render_action(const struct action *a, bool with_steps)
{
	json_t *o, *steps, *params;
	size_t i;

	params = json_loads(a->params ? a->params : "{}", 0, NULL);
	o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:o, s:o, s:b, s:o, s:o,"
	    " s:o}",
	    "id", a->id, "type", action_type_name(a->type),
	    "status", action_status_name(a->status), "identity_id", a->identity_id,
	    "account_id", str_or_null(a->account_id), "requested_by", a->requested_by,
	    "source", a->source, "reason", a->reason,
	    "params", params ? params : json_object(),
	    "message", str_or_null(a->message), "cancel_requested", a->cancel_requested,
	    "created_at", render_time(a->created_at),
	    "updated_at", render_time(a->updated_at),
	    "finished_at", render_time(a->finished_at));
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "undo_of", str_or_null(a->undo_of));
	json_object_set_new(o, "approval_rule", str_or_null(a->approval_rule));
	json_object_set_new(o, "requested_by_kind", str_or_null(a->requested_by_kind));
	json_object_set_new(o, "requested_by_id", str_or_null(a->requested_by_id));
	json_object_set_new(o, "decided_by", str_or_null(a->decided_by));
	json_object_set_new(o, "decided_by_kind", str_or_null(a->decided_by_kind));
	json_object_set_new(o, "decided_by_id", str_or_null(a->decided_by_id));
	json_object_set_new(o, "alert_id", str_or_null(a->alert_id));
	json_object_set_new(o, "approval_expires_at", a->status == ACTION_PENDING_APPROVAL ?
	    render_time(a->approval_expires) : json_null());
	if (!with_steps)
		return o;
	steps = json_array();
	for (i = 0; i < a->nsteps; i++)
		json_array_append_new(steps, render_step(&a->steps[i]));
	json_object_set_new(o, "steps", steps);
	return o;
}

json_t *
render_account(const struct account *a)
{
	json_t *o;

	o = json_pack("{s:s, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
	    " s:b}",
	    "id", a->id, "identity_id", str_or_null(a->identity_id), "system", a->system,
	    "kind", a->kind, "external_id", str_or_null(a->external_id),
	    "sid", str_or_null(a->sid), "dn", str_or_null(a->dn),
	    "username", str_or_null(a->username), "upn", str_or_null(a->upn),
	    "display_name", str_or_null(a->display_name),
	    "state", str_or_null(a->state),
	    "state_read_at", render_time(a->state_read_at),
	    "email", str_or_null(a->email), "synced", a->synced);
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "risk", str_or_null(a->risk));
	json_object_set_new(o, "link_rule", str_or_null(a->link_rule));
	json_object_set_new(o, "linked_by", str_or_null(a->linked_by));
	json_object_set_new(o, "linked_at", render_time(a->linked_at));
	return o;
}

json_t *
render_identity(const struct identity *i)
{
	json_t *o, *tags = json_array(), *accts = json_array();
	size_t k;

	for (k = 0; k < i->ntags; k++)
		json_array_append_new(tags, json_string(i->tags[k]));
	for (k = 0; k < i->naccounts; k++)
		json_array_append_new(accts, render_account(&i->accounts[k]));
	o = json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", i->id, "display_name",
	    i->display_name ? i->display_name : "", "tags", tags, "created_at",
	    render_time(i->created_at), "accounts", accts);
	return o;
}

json_t *
render_audit(const struct audit_entry *ent)
{
	json_t *detail = json_loads(ent->detail ? ent->detail : "{}", 0, NULL);

	/* actor_kind, actor_id and client are null on entries older than format 2. */
	return json_pack("{s:I, s:o, s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:i,"
	    " s:o, s:o, s:o}",
	    "seq", (json_int_t)ent->seq, "time", render_time(ent->time),
	    "time_ms", (json_int_t)ent->time, "actor", ent->actor, "event", ent->event,
	    "action_id", str_or_null(ent->action_id), "step_id", str_or_null(ent->step_id),
	    "identity_id", str_or_null(ent->identity_id),
	    "detail", detail ? detail : json_string(ent->detail ? ent->detail : ""),
	    "prev_hash", ent->prev_hash, "hash", ent->hash,
	    "format", ent->format > 0 ? ent->format : 1,
	    "actor_kind", str_or_null(ent->actor_kind),
	    "actor_id", str_or_null(ent->actor_id), "client", str_or_null(ent->client));
}
