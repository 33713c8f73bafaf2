/* Routes of the action center: request (with preview, one or in bulk), list, show,
 * cancel, approve or reject (one or in bulk), undo. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/lifecycle.h"
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

int
routes_action_parse(struct req *q, json_t *o, struct action_request *rq, char **params)
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

/* A previewed action with what its preview says (ActionPreview): each account's line
 * and the warnings. */
static json_t *
render_previewed(const struct action_result *res)
{
	json_t *o = render_action(&res->a, true);

	if (o != NULL && json_object_set(o, "preview", res->preview ? res->preview :
	    json_null()) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Previews rq: 200 with the previewed action, or the refusal as engine_request gives
 * it. */
static int
preview_one(struct req *q, const struct actor *who, const struct action_request *rq,
    struct qerr *e)
{
	struct action_result res;
	int r;

	if ((r = engine_request_bulk(q->api->eng, who, rq, 1, false, &res, e)) != 0)
		return r;
	if ((r = res.r) == 0)
		req_reply(q, 200, render_previewed(&res));
	else
		*e = res.e;
	engine_results_clear(&res, 1);
	return r;
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
	if (routes_action_parse(q, o, &rq, &params) != 0)
		goto out;
	req_actor(q, &who);
	r = rq.preview ? preview_one(q, &who, &rq, &e) :
	    engine_request(q->api->eng, &who, &rq, &a, &e);
	if (r == 0 && !rq.preview)
		req_reply(q, 201, render_action(&a, true));
	else if (r != 0) {
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

/* At most this many requests in one POST /api/v1/actions/bulk. */
#define ACTIONS_BULK_MAX 1000

/*
 * The error answer just set on q as one item's error, q's answer cleared. Its field
 * is named requests[i].field, unless the item took it from the bulk's shared fields.
 * The first refusal of its own (not an all_or_nothing consequence) answers for all.
 */
static json_t *
take_error(struct req *q, struct bulk_request *b, size_t i, const json_t *item, bool own)
{
	json_t *err = json_incref(json_object_get(q->resp, "error"));
	const char *f = json_string_value(json_object_get(err, "field"));
	char key[64], field[96];
	size_t k;

	if (err == NULL)
		err = json_pack("{s:s, s:s}", "code", "internal", "message", "internal error");
	if (f != NULL) {
		k = strcspn(f, ".");
		snprintf(key, sizeof(key), "%.*s", (int)k, f);
		if (json_object_get(item, key) != NULL ||
		    json_object_get(b->body, key) == NULL) {
			snprintf(field, sizeof(field), "requests[%zu].%s", i, f);
			json_object_set_new(err, "field", json_string(field));
		}
	} else if (!json_is_object(item)) {
		snprintf(field, sizeof(field), "requests[%zu]", i);
		json_object_set_new(err, "field", json_string(field));
	}
	b->refused++;
	if (own && b->first_error == NULL) {
		b->first_status = (unsigned)q->status;
		b->first_error = json_incref(err);
	}
	json_decref(q->resp);
	q->resp = NULL;
	q->status = 0;
	return err;
}

static json_t *
item_result(size_t i, const json_t *item)
{
	json_t *idn = json_object_get(item, "identity_id");

	return json_pack("{s:I, s:O}", "index", (json_int_t)i, "identity_id",
	    json_is_string(idn) ? idn : json_null());
}

/* One item of the body: parsed as POST /api/v1/actions parses a request, with the
 * bulk's shared fields for those it leaves out. */
static void
bulk_parse_item(struct req *q, struct bulk_request *b, size_t i, json_t *item, json_t *shared)
{
	json_t *m = json_is_object(item) ? json_copy(item) : NULL, *res;

	res = item_result(i, item);
	b->slot[i] = -1;
	if (!json_is_object(item))
		req_error(q, 400, "invalid_input", NULL, "requests[%zu] must be an object", i);
	else if (json_object_get(item, "preview") != NULL)
		req_error(q, 400, "invalid_input", "preview",
		    "preview is set for the whole bulk request, not per request");
	else if (m == NULL || json_object_update_missing(m, shared) != 0 ||
	    json_object_set_new(m, "preview", json_boolean(b->preview)) != 0)
		req_error(q, 500, "internal", NULL, "out of memory");
	else if (routes_action_parse(q, m, &b->rq[b->nrq], &b->params[b->nrq]) == 0)
		b->slot[i] = (long)b->nrq++;
	if (b->slot[i] < 0)
		json_object_set_new(res, "error", take_error(q, b, i, item, true));
	json_array_append_new(b->merged, m != NULL ? m : json_null());
	json_array_append_new(b->results, res);
}

int
routes_bulk_parse(struct req *q, json_t *o, struct bulk_request *b)
{
	static const char *const keys[] = { "requests", "all_or_nothing", "preview", "type",
	    "reason", "params", "source", "confirm_destructive", NULL };
	static const char *const shared_keys[] = { "type", "reason", "params", "source",
	    "confirm_destructive", NULL };
	json_t *items = json_object_get(o, "requests"), *shared, *v;
	size_t i;

	if (req_only_keys(q, o, "", keys) != 0)
		return -1;
	if (!json_is_array(items) || json_array_size(items) == 0 ||
	    json_array_size(items) > ACTIONS_BULK_MAX)
		return req_error(q, 400, "invalid_input", "requests", "requests must be an "
		    "array of 1 to %d action requests", ACTIONS_BULK_MAX), -1;
	v = json_object_get(o, "all_or_nothing");
	if (v != NULL && !json_is_boolean(v))
		return req_error(q, 400, "invalid_input", "all_or_nothing",
		    "all_or_nothing must be true or false"), -1;
	b->all_or_nothing = json_is_true(v);
	v = json_object_get(o, "preview");
	if (v != NULL && !json_is_boolean(v))
		return req_error(q, 400, "invalid_input", "preview",
		    "preview must be true or false"), -1;
	b->preview = json_is_true(v);
	b->body = o;
	b->items = items;
	b->n = json_array_size(items);
	b->rq = calloc(b->n, sizeof(*b->rq));
	b->params = calloc(b->n, sizeof(*b->params));
	b->slot = calloc(b->n, sizeof(*b->slot));
	if ((shared = json_object()) == NULL || b->rq == NULL || b->params == NULL ||
	    b->slot == NULL) {
		json_decref(shared);
		return req_error(q, 500, "internal", NULL, "out of memory"), -1;
	}
	for (i = 0; shared_keys[i] != NULL; i++)
		if ((v = json_object_get(o, shared_keys[i])) != NULL)
			json_object_set(shared, shared_keys[i], v);
	json_array_foreach(items, i, v)
		bulk_parse_item(q, b, i, v, shared);
	json_decref(shared);
	return 0;
}

/* An engine result as the item's result: its action, or its refusal. */
static void
bulk_result(struct req *q, struct bulk_request *b, size_t i, struct action_result *res)
{
	json_t *o = json_array_get(b->results, i), *err;

	if (res->r == 0 && b->preview)
		json_object_set_new(o, "action", render_previewed(res));
	else if (res->r == 0 || res->a.status == ACTION_DENIED) {
		json_object_set_new(o, "action_id", json_string(res->a.id));
		json_object_set_new(o, "status", json_string(action_status_name(
		    res->a.status)));
	}
	if (res->r == 0)
		return;
	req_qerr(q, res->r, &res->e);
	if (res->r == QERR_DENIED && b->preview)
		req_audit_denial(q, "access.denied", res->e.msg);
	err = take_error(q, b, i, json_array_get(b->items, i), res->r != QERR_CONFLICT);
	/* As a single request's refusal names the denied action it recorded. */
	if (res->a.status == ACTION_DENIED)
		json_object_set_new(err, "action_id", json_string(res->a.id));
	json_object_set_new(o, "error", err);
}

void
routes_bulk_free(struct bulk_request *b)
{
	size_t i;

	for (i = 0; i < b->nrq; i++)
		free(b->params[i]);
	free(b->params);
	free(b->rq);
	free(b->slot);
	json_decref(b->merged);
	json_decref(b->results);
	json_decref(b->first_error);
}

/* 200 with a result per request; with all_or_nothing and a refusal, the first
 * refused request's own status and error, nothing requested. */
static void
bulk_reply(struct req *q, struct bulk_request *b)
{
	json_t *o;

	if (b->all_or_nothing && b->refused > 0) {
		o = json_pack("{s:O, s:O}", "error", b->first_error, "results", b->results);
		req_reply(q, b->first_status, o);
		return;
	}
	req_reply(q, 200, json_pack("{s:b, s:I, s:I, s:O}", "preview", b->preview,
	    "accepted", (json_int_t)(b->n - b->refused), "refused",
	    (json_int_t)b->refused, "results", b->results));
}

int
route_post_actions_bulk(struct req *q)
{
	struct bulk_request b = { .merged = json_array(), .results = json_array() };
	struct action_result *res = NULL;
	struct actor who;
	struct qerr e;
	json_t *o;
	size_t i;
	int r;

	qerr_clear(&e);
	if ((o = req_json(q)) == NULL || routes_bulk_parse(q, o, &b) != 0)
		goto out;
	if (b.refused > 0 && b.all_or_nothing) {
		bulk_reply(q, &b);
		goto out;
	}
	if (b.nrq > 0 && (res = calloc(b.nrq, sizeof(*res))) == NULL) {
		req_error(q, 500, "internal", NULL, "out of memory");
		goto out;
	}
	req_actor(q, &who);
	if (b.nrq > 0 && (r = engine_request_bulk(q->api->eng, &who, b.rq, b.nrq,
	    b.all_or_nothing, res, &e)) != 0) {
		req_qerr(q, r, &e);
		goto out;
	}
	for (i = 0; i < b.n; i++)
		if (b.slot[i] >= 0)
			bulk_result(q, &b, i, &res[b.slot[i]]);
	bulk_reply(q, &b);
out:
	engine_results_clear(res, b.nrq);
	free(res);
	routes_bulk_free(&b);
	json_decref(o);
	return 0;
}

/*
 * {"name": display name or null, "accounts": {account id: name}} of identity iid, as
 * cache holds it or read into it (borrowed from cache), so that a page of actions reads
 * each identity once. An identity gone since has no names.
 */
static json_t *
identity_names(struct store_tx *tx, const char *iid, json_t *cache)
{
	json_t *c = json_object_get(cache, iid), *accts;
	struct identity idn;
	struct qerr e;
	const char *n;
	size_t i;

	if (c != NULL)
		return c;
	accts = json_object();
	c = json_pack("{s:o, s:o}", "name", json_null(), "accounts", accts);
	memset(&idn, 0, sizeof(idn));
	if (c != NULL && store_identity_get(tx, iid, &idn, &e) == 0) {
		if (idn.display_name != NULL)
			json_object_set_new(c, "name", json_string(idn.display_name));
		for (i = 0; i < idn.naccounts; i++)
			if ((n = lifecycle_account_name(&idn.accounts[i])) != NULL)
				json_object_set_new(accts, idn.accounts[i].id, json_string(n));
	}
	identity_clear(&idn);
	json_object_set_new(cache, iid, c);
	return c;
}

/*
 * Adds identity_name and account_name (the account's, for an action on one account;
 * else null) to the rendered action o: analysts know people by name, not by id.
 */
static void
add_names(struct store_tx *tx, json_t *o, json_t *cache)
{
	const char *iid = json_string_value(json_object_get(o, "identity_id"));
	const char *aid = json_string_value(json_object_get(o, "account_id"));
	json_t *c = iid != NULL ? identity_names(tx, iid, cache) : NULL;
	json_t *an = aid != NULL ? json_object_get(json_object_get(c, "accounts"), aid) : NULL;
	json_t *in = json_object_get(c, "name");

	json_object_set_new(o, "identity_name", in != NULL ? json_incref(in) : json_null());
	json_object_set_new(o, "account_name", an != NULL ? json_incref(an) : json_null());
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
	json_t *cache = json_object(), *o;
	struct qerr e;
	size_t i;
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
		json_array_foreach(c.arr, i, o)
			add_names(tx, o, cache);
		req_reply_page(q, "actions", &c, f.limit, "id");
	}
	store_tx_rollback(tx);
	json_decref(cache);
	json_decref(c.arr);
	return 0;
}

/*
 * The members identity_name and account_name of action a, as add_names would add
 * them (the account's name only while it is linked to the identity), borrowing from
 * idn and acct (which the caller clears). Only the two rows named are read.
 */
static void
action_names(struct store_tx *tx, const struct action *a, struct identity *idn,
    struct account *acct, struct render_member names[2])
{
	const char *in = NULL, *an = NULL;
	struct qerr e;

	if (a->identity_id != NULL && store_identity_head(tx, a->identity_id, idn, &e) == 0) {
		in = idn->display_name;
		if (a->account_id != NULL && store_account_get(tx, a->account_id, acct,
		    &e) == 0 && acct->identity_id != NULL &&
		    strcmp(acct->identity_id, a->identity_id) == 0)
			an = lifecycle_account_name(acct);
	}
	names[0] = (struct render_member){ "identity_name", RENDER_STR, in, 0, false };
	names[1] = (struct render_member){ "account_name", RENDER_STR, an, 0, false };
}

/* A name as add_names sets it: JSON null when there is none or it is not UTF-8. */
static json_t *
name_json(const char *s)
{
	json_t *v = s != NULL ? json_string(s) : NULL;

	return v != NULL ? v : json_null();
}

/* The most read answer is written as text straight from the structs; render_action
 * takes over for what only jansson would decide. */
static void
reply_action(struct req *q, struct store_tx *tx, const struct action *a)
{
	struct render_member names[2];
	struct identity idn;
	struct account acct;
	json_t *o;
	size_t i;

	memset(&idn, 0, sizeof(idn));
	memset(&acct, 0, sizeof(acct));
	action_names(tx, a, &idn, &acct, names);
	if ((q->text = render_action_text(a, names, 2)) != NULL)
		q->status = 200;
	else {
		if ((o = render_action(a, true)) != NULL)
			for (i = 0; i < 2; i++)
				json_object_set_new(o, names[i].key, name_json(names[i].s));
		req_reply(q, 200, o);
	}
	account_clear(&acct);
	identity_clear(&idn);
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
		goto out;
	if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_action_get(tx, q->arg[0], &a, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no action %s", q->arg[0]);
		req_qerr(q, r, &e);
	} else
		reply_action(q, tx, &a);
out:
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
	static const char *const keys[] = { "reason", "preview", NULL };
	struct action_result res = { 0 };
	struct actor who;
	const char *reason;
	struct qerr e;
	json_t *o, *err, *pv;
	bool preview;
	int r;

	qerr_clear(&e);
	if (req_check_id(q, "action_id", q->arg[0], "act") != 0 || (o = req_json(q)) == NULL)
		return 0;
	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_str(q, o, "reason", true, REASON_MAX, &reason) != 0)
		goto out;
	if ((pv = json_object_get(o, "preview")) != NULL && !json_is_boolean(pv)) {
		req_error(q, 400, "invalid_input", "preview", "preview must be true or false");
		goto out;
	}
	preview = json_is_true(pv);
	req_actor(q, &who);
	if ((r = engine_undo(q->api->eng, &who, q->arg[0], reason,
	    preview ? &res.preview : NULL, &res.a, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no action %s", q->arg[0]);
		req_qerr(q, r, &e);
		if (r == QERR_DENIED && preview)
			req_audit_denial(q, "access.denied", e.msg);
		if (r == QERR_DENIED && res.a.id != NULL &&
		    (err = json_object_get(q->resp, "error")) != NULL)
			json_object_set_new(err, "action_id", json_string(res.a.id));
	} else if (req_reply(q, preview ? 200 : 201, preview ? render_previewed(&res) :
	    render_action(&res.a, true)) == 0 && q->resp != NULL)
		json_object_set_new(q->resp, "per_step", undo_per_step(q, &res.a));
out:
	engine_results_clear(&res, 1);
	json_decref(o);
	return 0;
}
