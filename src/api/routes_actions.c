/* Routes of the action center: request (with preview), list, show, cancel, approve
 * or reject (one or in bulk), undo. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/rbac.h"
#include "core/text.h"
#include "internal.h"
#include "render.h"

/* params: only the keys the action type uses, with their types. */
static int
check_params(struct req *q, enum action_type type, json_t *p)
{
	static const char *const keys[] = { "clear_dont_expire", "risk_level", NULL };
	json_t *v;
	const char *lvl;

	if (p == NULL || json_is_null(p))
		return 0;
	if (!json_is_object(p))
		return req_error(q, 400, "invalid_input", "params",
		    "params must be an object"), -1;
	if (req_only_keys(q, p, "params.", keys) != 0)
		return -1;
	if ((v = json_object_get(p, "clear_dont_expire")) != NULL) {
		if (!json_is_boolean(v))
			return req_error(q, 400, "invalid_input", "params.clear_dont_expire",
			    "params.clear_dont_expire must be true or false"), -1;
		if (type != ACTION_FORCE_PASSWORD_CHANGE)
			return req_error(q, 400, "invalid_input", "params.clear_dont_expire",
			    "params.clear_dont_expire applies to force_password_change only"),
			    -1;
	}
	if ((v = json_object_get(p, "risk_level")) != NULL) {
		lvl = json_string_value(v);
		if (lvl == NULL || strlen(lvl) != json_string_length(v) ||
		    (strcmp(lvl, "HIGH") && strcmp(lvl, "MEDIUM") &&
		    strcmp(lvl, "LOW")))
			return req_error(q, 400, "invalid_input", "params.risk_level",
			    "params.risk_level must be HIGH, MEDIUM or LOW"), -1;
		if (type != ACTION_SET_RISK)
			return req_error(q, 400, "invalid_input", "params.risk_level",
			    "params.risk_level applies to set_risk only"), -1;
	} else if (type == ACTION_SET_RISK)
		return req_error(q, 400, "invalid_input", "params.risk_level",
		    "set_risk needs params.risk_level"), -1;
	return 0;
}

/*
 * Deactivation deprovisions the user and their app assignments and cannot be undone:
 * the request must say so explicitly (a preview may look first without it).
 */
static int
confirm_destructive(struct req *q, json_t *o, const struct action_request *rq)
{
	json_t *v = json_object_get(o, "confirm_destructive");

	if (v != NULL && !json_is_boolean(v))
		return req_error(q, 400, "invalid_input", "confirm_destructive",
		    "confirm_destructive must be true or false"), -1;
	if (rq->type == ACTION_DEACTIVATE && !rq->preview && !json_is_true(v))
		return req_error(q, 400, "invalid_input", "confirm_destructive",
		    "deactivate permanently deprovisions the account and its app "
		    "assignments: set confirm_destructive to true to proceed"), -1;
	return 0;
}

static int
parse_action_request(struct req *q, json_t *o, struct action_request *rq, char **params)
{
	static const char *const keys[] = { "type", "identity_id", "account_id", "reason",
	    "params", "source", "preview", "confirm_destructive", NULL };
	const char *type;
	json_t *p, *pv;

	memset(rq, 0, sizeof(*rq));
	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_str(q, o, "type", true, 64, &type) != 0)
		return -1;
	if (action_type_parse(type, &rq->type) != 0)
		return req_error(q, 400, "invalid_input", "type",
		    "unknown action type '%.64s'", type), -1;
	if (req_field_str(q, o, "identity_id", true, 64, &rq->identity_id) != 0 ||
	    req_check_id(q, "identity_id", rq->identity_id, "idn") != 0 ||
	    req_field_str(q, o, "account_id", false, 64, &rq->account_id) != 0 ||
	    req_check_id(q, "account_id", rq->account_id, "acc") != 0 ||
	    req_field_str(q, o, "reason", true, REASON_MAX, &rq->reason) != 0 ||
	    req_field_str(q, o, "source", false, 16, &rq->source) != 0)
		return -1;
	if (rq->source != NULL && strcmp(rq->source, "manual") &&
	    strcmp(rq->source, "api"))
		return req_error(q, 400, "invalid_input", "source",
		    "source must be manual or api"), -1;
	pv = json_object_get(o, "preview");
	if (pv != NULL && !json_is_boolean(pv))
		return req_error(q, 400, "invalid_input", "preview",
		    "preview must be true or false"), -1;
	rq->preview = json_is_true(pv);
	if (confirm_destructive(q, o, rq) != 0)
		return -1;
	p = json_object_get(o, "params");
	if (check_params(q, rq->type, p) != 0)
		return -1;
	/* Without params: "{}" (a json_object() made for json_dumps leaked). */
	*params = p && json_is_object(p) ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) :
	    strdup("{}");
	rq->params = *params;
	return 0;
}

int
route_post_action(struct req *q)
{
	struct action_request rq;
	struct actor who;
	struct action a;
	struct qerr e;
	char *params = NULL;
	json_t *o, *err;
	int r;

	if ((o = req_json(q)) == NULL)
		return 0;
	memset(&a, 0, sizeof(a));
	qerr_clear(&e);
	if (parse_action_request(q, o, &rq, &params) != 0)
		goto out;
	req_actor(q, &who);
	r = engine_request(q->api->eng, &who, &rq, &a, &e);
	if (r == 0)
		req_reply(q, rq.preview ? 200 : 201, render_action(&a, true));
	else {
		req_qerr(q, r, &e);
		/* A refused request is stored and audited by the engine; a refused
		 * preview (hunt --then asks one first) is audited here. */
		if (r == QERR_DENIED && rq.preview)
			req_audit_denial(q, "access.denied", e.msg);
		if (r == QERR_DENIED && a.id != NULL &&
		    (err = json_object_get(q->resp, "error")) != NULL)
			json_object_set_new(err, "action_id", json_string(a.id));
	}
out:
	action_clear(&a);
	free(params);
	json_decref(o);
	return 0;
}

static int
add_action(const struct action *a, void *arg)
{
	struct list_ctx *c = arg;

	c->n++;
	return json_array_append_new(c->arr, render_action(a, false));
}

int
route_list_actions(struct req *q)
{
	struct action_filter f;
	struct list_ctx c = { json_array(), 0 };
	struct store_tx *tx = NULL;
	enum action_status st;
	enum action_type ty;
	const char *since;
	struct qerr e;
	int r;

	memset(&f, 0, sizeof(f));
	f.status = req_query(q, "status");
	f.type = req_query(q, "type");
	f.identity_id = req_query(q, "identity_id");
	f.before_id = req_query(q, "before");
	since = req_query(q, "since");
	if (f.status && action_status_parse(f.status, &st) != 0)
		req_error(q, 400, "invalid_input", "status", "unknown status '%.64s'",
		    f.status);
	else if (f.type && action_type_parse(f.type, &ty) != 0)
		req_error(q, 400, "invalid_input", "type", "unknown action type '%.64s'",
		    f.type);
	else if (req_check_id(q, "identity_id", f.identity_id, "idn") != 0 ||
	    req_check_id(q, "before", f.before_id, "act") != 0 ||
	    req_limit(q, 50, &f.limit) != 0)
		;
	else if (since && text_time_parse(since, &f.since) != 0)
		req_error(q, 400, "invalid_input", "since",
		    "since must be an RFC 3339 time, e.g. 2026-11-25T08:00:00Z");
	else if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_action_list(tx, &f, add_action, &c, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		req_reply_page(q, "actions", &c, f.limit, "id");
	}
	store_tx_rollback(tx);
	json_decref(c.arr);
	return 0;
}

int
route_get_action(struct req *q)
{
	struct store_tx *tx = NULL;
	struct action a;
	struct qerr e;
	int r;

	memset(&a, 0, sizeof(a));
	if (req_check_id(q, "action_id", q->arg[0], "act") != 0)
		return 0;
	if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_action_get(tx, q->arg[0], &a, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no action %s", q->arg[0]);
		req_qerr(q, r, &e);
	} else
		req_reply(q, 200, render_action(&a, true));
	store_tx_rollback(tx);
	action_clear(&a);
	return 0;
}

int
route_cancel_action(struct req *q)
{
	struct actor who;
	struct action a;
	struct qerr e;
	int r;

	memset(&a, 0, sizeof(a));
	if (req_check_id(q, "action_id", q->arg[0], "act") != 0)
		return 0;
	req_actor(q, &who);
	if ((r = engine_cancel(q->api->eng, &who, q->arg[0], &a, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no action %s", q->arg[0]);
		req_qerr(q, r, &e);
	} else
		req_reply(q, 200, render_action(&a, true));
	action_clear(&a);
	return 0;
}

static int
decide(struct req *q, bool approve)
{
	struct actor who;
	struct action a;
	const char *reason;
	struct qerr e;
	json_t *o = NULL;
	int r;

	memset(&a, 0, sizeof(a));
	qerr_clear(&e);
	if (req_check_id(q, "action_id", q->arg[0], "act") != 0 ||
	    req_optional_reason(q, &o, &reason) != 0)
		goto out;
	req_actor(q, &who);
	if ((r = engine_decide(q->api->eng, &who, q->arg[0], approve, reason, &a,
	    &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no action %s", q->arg[0]);
		req_qerr(q, r, &e);
	} else
		req_reply(q, 200, render_action(&a, true));
out:
	action_clear(&a);
	json_decref(o);
	return 0;
}

int
route_approve_action(struct req *q)
{
	return decide(q, true);
}

int
route_reject_action(struct req *q)
{
	return decide(q, false);
}

struct pending_ctx {
	json_t *ids;
};

static int
add_pending(const struct action *a, void *arg)
{
	struct pending_ctx *c = arg;

	return json_array_append_new(c->ids, json_string(a->id));
}

/* The ids named in the body, or every action of one type waiting for approval. */
static int
bulk_ids(struct req *q, json_t *o, json_t **ids)
{
	static const char *const keys[] = { "ids", "type", "reason", NULL };
	struct action_filter f = { .status = "pending_approval", .limit = 1000 };
	struct pending_ctx c;
	struct store_tx *tx = NULL;
	enum action_type t;
	json_t *v;
	struct qerr e;
	size_t i;
	int r;

	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_str(q, o, "type", false, 64, &f.type) != 0)
		return -1;
	v = json_object_get(o, "ids");
	if ((v == NULL) == (f.type == NULL))
		return req_error(q, 400, "invalid_input", "ids",
		    "give either ids (an array of action ids) or type"), -1;
	if (v != NULL) {
		if (!json_is_array(v) || json_array_size(v) == 0 ||
		    json_array_size(v) > 1000)
			return req_error(q, 400, "invalid_input", "ids",
			    "ids must be an array of 1 to 1000 action ids"), -1;
		for (i = 0; i < json_array_size(v); i++)
			if (!id_valid(json_string_value(json_array_get(v, i)), "act"))
				return req_error(q, 400, "invalid_input", "ids",
				    "ids[%zu] is not an action id", i), -1;
		*ids = json_incref(v);
		return 0;
	}
	if (action_type_parse(f.type, &t) != 0)
		return req_error(q, 400, "invalid_input", "type",
		    "unknown action type '%.64s'", f.type), -1;
	c.ids = *ids = json_array();
	if ((r = store_tx_begin(q->api->st, false, &tx, &e)) == 0)
		r = store_action_list(tx, &f, add_pending, &c, &e);
	store_tx_rollback(tx);
	if (r != 0)
		return req_qerr(q, r, &e), -1;
	return 0;
}

/* Approves or rejects several actions, each on its own: one refusal stops no other. */
static int
decide_bulk(struct req *q, bool approve)
{
	json_t *o, *ids = NULL, *results = json_array();
	struct actor who;
	struct action a;
	const char *reason = NULL, *id;
	struct qerr e;
	size_t i;
	int r;

	if ((o = req_json(q)) == NULL) {
		json_decref(results);
		return 0;
	}
	if (req_field_str(q, o, "reason", false, REASON_MAX, &reason) != 0 ||
	    bulk_ids(q, o, &ids) != 0)
		goto out;
	req_actor(q, &who);
	for (i = 0; i < json_array_size(ids); i++) {
		id = json_string_value(json_array_get(ids, i));
		memset(&a, 0, sizeof(a));
		qerr_clear(&e);
		r = engine_decide(q->api->eng, &who, id, approve, reason, &a, &e);
		json_array_append_new(results, r == 0 ?
		    json_pack("{s:s, s:s}", "id", id, "status", action_status_name(a.status)) :
		    json_pack("{s:s, s:s, s:s}", "id", id, "error", req_error_code(r),
		    "message", e.msg));
		action_clear(&a);
	}
	req_reply(q, 200, json_pack("{s:O}", "results", results));
out:
	json_decref(results);
	json_decref(ids);
	json_decref(o);
	return 0;
}

int
route_approve_bulk(struct req *q)
{
	return decide_bulk(q, true);
}

int
route_reject_bulk(struct req *q)
{
	return decide_bulk(q, false);
}

/*
 * What an undo does with each step of the action it undoes: an inverse step
 * requested (its id and status), or nothing, and why. A step that did not succeed
 * changed nothing; the account stays as it is.
 */
static json_t *
undo_per_step(struct req *q, const struct action *u)
{
	struct store_tx *tx = NULL;
	struct action orig;
	struct qerr e;
	json_t *arr = json_array(), *o;
	size_t i, k;

	memset(&orig, 0, sizeof(orig));
	if (u->undo_of == NULL || store_tx_begin(q->api->st, false, &tx, &e) != 0)
		return arr;
	if (store_action_get(tx, u->undo_of, &orig, &e) != 0)
		goto out;
	for (i = 0; i < orig.nsteps; i++) {
		o = json_pack("{s:s, s:s, s:s, s:s}", "account_id", orig.steps[i].account_id,
		    "system", orig.steps[i].system, "account", orig.steps[i].account_name,
		    "status", step_status_name(orig.steps[i].status));
		for (k = 0; k < u->nsteps; k++)
			if (strcmp(u->steps[k].account_id, orig.steps[i].account_id) == 0)
				break;
		if (k < u->nsteps) {
			json_object_set_new(o, "undo", json_string("requested"));
			json_object_set_new(o, "undo_step_id", json_string(u->steps[k].id));
			json_object_set_new(o, "undo_status",
			    json_string(step_status_name(u->steps[k].status)));
		} else
			json_object_set_new(o, "undo", json_string(orig.steps[i].status ==
			    STEP_SUCCEEDED ? "not_applicable" : "nothing_to_undo"));
		json_array_append_new(arr, o);
	}
out:
	store_tx_rollback(tx);
	action_clear(&orig);
	return arr;
}

int
route_undo_action(struct req *q)
{
	static const char *const keys[] = { "reason", NULL };
	struct actor who;
	struct action a;
	const char *reason;
	struct qerr e;
	json_t *o, *err;
	int r;

	memset(&a, 0, sizeof(a));
	qerr_clear(&e);
	if (req_check_id(q, "action_id", q->arg[0], "act") != 0 || (o = req_json(q)) == NULL)
		return 0;
	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_str(q, o, "reason", true, REASON_MAX, &reason) != 0)
		goto out;
	req_actor(q, &who);
	if ((r = engine_undo(q->api->eng, &who, q->arg[0], reason, &a, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no action %s", q->arg[0]);
		req_qerr(q, r, &e);
		if (r == QERR_DENIED && a.id != NULL &&
		    (err = json_object_get(q->resp, "error")) != NULL)
			json_object_set_new(err, "action_id", json_string(a.id));
	} else if (req_reply(q, 201, render_action(&a, true)) == 0 && q->resp != NULL)
		json_object_set_new(q->resp, "per_step", undo_per_step(q, &a));
out:
	action_clear(&a);
	json_decref(o);
	return 0;
}
