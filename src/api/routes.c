/*
 * The routes of docs/openapi.yaml: each checks its permission, validates every input
 * field (naming it in the error) and calls the engine or the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit.h"
#include "core/id.h"
#include "core/rbac.h"
#include "core/text.h"
#include "internal.h"
#include "render.h"

#define PERM_IN_HANDLER 0x10000u	/* the handler decides (and records a denial) */
#define PERM_ANY 0u

#define REASON_MAX 1000
#define NAME_MAX_LEN 256

/* Refuses the request unless the caller holds perm; audits the refusal. */
static bool
allowed(struct req *q, unsigned perm)
{
	char why[160];

	if (perm == PERM_ANY || perm == PERM_IN_HANDLER || (q->perms & perm) == perm)
		return true;
	snprintf(why, sizeof(why), "'%s' holds no role that grants %s", q->who.name,
	    rbac_perm_name(perm));
	req_error(q, 403, "forbidden", NULL, "%s", why);
	req_audit_denial(q, "access.denied", why);
	return false;
}

/* A string field: present (unless optional), a string, printable UTF-8, ≤ max. */
static int
field_str(struct req *q, json_t *o, const char *key, bool required, size_t max,
    const char **out)
{
	json_t *v = json_object_get(o, key);
	const char *s;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return req_error(q, 400, "invalid_input", key, "%s is required", key),
			    -1;
		return 0;
	}
	if (!json_is_string(v))
		return req_error(q, 400, "invalid_input", key, "%s must be a string", key),
		    -1;
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v) || !text_printable(s, true))
		return req_error(q, 400, "invalid_input", key,
		    "%s must be text without control characters", key), -1;
	if (required && s[0] == '\0')
		return req_error(q, 400, "invalid_input", key, "%s must not be empty", key),
		    -1;
	if (strlen(s) > max)
		return req_error(q, 400, "invalid_input", key,
		    "%s is longer than %zu bytes", key, max), -1;
	*out = s;
	return 0;
}

static int
only_keys(struct req *q, json_t *o, const char *prefix, const char *const *keys)
{
	const char *k;
	json_t *v;
	size_t i;
	char f[128];

	json_object_foreach(o, k, v) {
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(k, keys[i]) == 0)
				break;
		if (keys[i] == NULL) {
			snprintf(f, sizeof(f), "%s%.100s", prefix, k);
			return req_error(q, 400, "invalid_input", f, "unknown field '%s'", f),
			    -1;
		}
	}
	return 0;
}

static int
check_id(struct req *q, const char *field, const char *v, const char *prefix)
{
	if (v != NULL && !id_valid(v, prefix))
		return req_error(q, 400, "invalid_input", field,
		    "%s must be an id of the form %s_<24 hex digits>", field, prefix), -1;
	return 0;
}

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
	if (only_keys(q, p, "params.", keys) != 0)
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
	if (only_keys(q, o, "", keys) != 0 ||
	    field_str(q, o, "type", true, 64, &type) != 0)
		return -1;
	if (action_type_parse(type, &rq->type) != 0)
		return req_error(q, 400, "invalid_input", "type",
		    "unknown action type '%.64s'", type), -1;
	if (field_str(q, o, "identity_id", true, 64, &rq->identity_id) != 0 ||
	    check_id(q, "identity_id", rq->identity_id, "idn") != 0 ||
	    field_str(q, o, "account_id", false, 64, &rq->account_id) != 0 ||
	    check_id(q, "account_id", rq->account_id, "acc") != 0 ||
	    field_str(q, o, "reason", true, REASON_MAX, &rq->reason) != 0 ||
	    field_str(q, o, "source", false, 16, &rq->source) != 0)
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
	*params = json_dumps(p && json_is_object(p) ? p : json_object(),
	    JSON_COMPACT | JSON_SORT_KEYS);
	rq->params = *params;
	return 0;
}

static int
post_action(struct req *q)
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
parse_limit(struct req *q, int def, int *out)
{
	const char *s = req_query(q, "limit");
	char *end;
	long n;

	*out = def;
	if (s == NULL)
		return 0;
	n = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || n < 1 || n > 1000)
		return req_error(q, 400, "invalid_input", "limit",
		    "limit must be a whole number from 1 to 1000"), -1;
	*out = (int)n;
	return 0;
}

struct list_ctx {
	json_t *arr;
	int n;
};

static int
add_action(const struct action *a, void *arg)
{
	struct list_ctx *c = arg;

	c->n++;
	return json_array_append_new(c->arr, render_action(a, false));
}

static int
list_actions(struct req *q)
{
	struct action_filter f;
	struct list_ctx c = { json_array(), 0 };
	struct store_tx *tx = NULL;
	enum action_status st;
	enum action_type ty;
	const char *since;
	json_t *last;
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
	else if (check_id(q, "identity_id", f.identity_id, "idn") != 0 ||
	    check_id(q, "before", f.before_id, "act") != 0 ||
	    parse_limit(q, 50, &f.limit) != 0)
		;
	else if (since && text_time_parse(since, &f.since) != 0)
		req_error(q, 400, "invalid_input", "since",
		    "since must be an RFC 3339 time, e.g. 2026-11-25T08:00:00Z");
	else if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_action_list(tx, &f, add_action, &c, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		last = json_array_get(c.arr, json_array_size(c.arr) - 1);
		req_reply(q, 200, json_pack("{s:O, s:O}", "actions", c.arr, "next",
		    c.n == f.limit && last ? json_object_get(last, "id") : json_null()));
	}
	store_tx_rollback(tx);
	json_decref(c.arr);
	return 0;
}

static int
get_action(struct req *q)
{
	struct store_tx *tx = NULL;
	struct action a;
	struct qerr e;
	int r;

	memset(&a, 0, sizeof(a));
	if (check_id(q, "id", q->arg[0], "act") != 0)
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

static int
cancel_action(struct req *q)
{
	struct actor who;
	struct action a;
	struct qerr e;
	int r;

	memset(&a, 0, sizeof(a));
	if (check_id(q, "id", q->arg[0], "act") != 0)
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
add_identity(const struct identity *i, void *arg)
{
	struct list_ctx *c = arg;

	c->n++;
	return json_array_append_new(c->arr, render_identity(i));
}

static int
list_identities(struct req *q)
{
	struct identity_filter f;
	struct list_ctx c = { json_array(), 0 };
	struct store_tx *tx = NULL;
	json_t *last;
	struct qerr e;
	int r;

	memset(&f, 0, sizeof(f));
	f.query = req_query(q, "q");
	f.after_id = req_query(q, "after");
	if (f.query != NULL && (!text_printable(f.query, false) || strlen(f.query) > 256))
		req_error(q, 400, "invalid_input", "q",
		    "q must be printable text of at most 256 bytes");
	else if (check_id(q, "after", f.after_id, "idn") != 0 ||
	    parse_limit(q, 50, &f.limit) != 0)
		;
	else if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_identity_list(tx, &f, add_identity, &c, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		last = json_array_get(c.arr, json_array_size(c.arr) - 1);
		req_reply(q, 200, json_pack("{s:O, s:O}", "identities", c.arr, "next",
		    c.n == f.limit && last ? json_object_get(last, "id") : json_null()));
	}
	store_tx_rollback(tx);
	json_decref(c.arr);
	return 0;
}

static int
reply_identity(struct req *q, const char *id)
{
	struct store_tx *tx = NULL;
	struct identity i;
	struct qerr e;
	int r;

	memset(&i, 0, sizeof(i));
	if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_identity_get(tx, id, &i, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no identity %s", id);
		req_qerr(q, r, &e);
	} else
		req_reply(q, 200, render_identity(&i));
	store_tx_rollback(tx);
	identity_clear(&i);
	return 0;
}

static int
get_identity(struct req *q)
{
	if (check_id(q, "id", q->arg[0], "idn") != 0)
		return 0;
	return reply_identity(q, q->arg[0]);
}

/* Gives i copies of tags (borrowed). */
static int
own_tags(struct identity *i, char *const *tags, size_t ntags)
{
	size_t k;

	if (ntags == 0)
		return 0;
	if ((i->tags = calloc(ntags, sizeof(*i->tags))) == NULL)
		return QERR_NOMEM;
	for (k = 0; k < ntags; k++) {
		if ((i->tags[k] = strdup(tags[k])) == NULL)
			return QERR_NOMEM;
		i->ntags = k + 1;
	}
	return 0;
}

static int
set_tags(struct store_tx *tx, struct identity *i, char *const *tags, size_t ntags,
    struct qerr *e)
{
	size_t k;

	for (k = 0; k < i->ntags; k++)
		free(i->tags[k]);
	free(i->tags);
	i->tags = NULL;
	i->ntags = 0;
	if (own_tags(i, tags, ntags) != 0)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return store_identity_update(tx, i, e);
}

static int tag_list(struct req *q, json_t *arr, const char *field, char ***out,
    size_t *n);

static int
parse_tags(struct req *q, json_t *o, struct identity *i)
{
	char **tags = NULL;
	size_t n = 0;
	int r;

	if ((r = tag_list(q, json_object_get(o, "tags"), "tags", &tags, &n)) == 0 &&
	    own_tags(i, tags, n) != 0) {
		req_error(q, 500, "internal", NULL, "out of memory");
		r = -1;
	}
	free(tags);
	return r;
}

static int
post_identity(struct req *q)
{
	static const char *const keys[] = { "display_name", "tags", NULL };
	struct store_tx *tx = NULL;
	struct identity i;
	struct actor who;
	char id[ID_LEN];
	const char *name;
	json_t *o, *d;
	struct qerr e;
	int r;

	memset(&i, 0, sizeof(i));
	if ((o = req_json(q)) == NULL)
		return 0;
	if (only_keys(q, o, "", keys) != 0 ||
	    field_str(q, o, "display_name", true, NAME_MAX_LEN, &name) != 0 ||
	    parse_tags(q, o, &i) != 0)
		goto out;
	i.created_at = engine_now_ms();
	id_make(id, "idn", i.created_at);
	i.id = strdup(id);
	i.display_name = strdup(name);
	req_actor(q, &who);
	d = json_pack("{s:s, s:O}", "display_name", name, "tags",
	    json_object_get(o, "tags") ? json_object_get(o, "tags") : json_array());
	if ((r = store_tx_begin(q->api->st, true, &tx, &e)) != 0 ||
	    (r = store_identity_insert(tx, &i, &e)) != 0 ||
	    (r = engine_audit_tx(tx, who.name, "identity.created", NULL, NULL, id, d,
	    &e)) != 0 || (r = store_tx_commit(tx, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		tx = NULL;
		reply_identity(q, id);
		q->status = 201;
	}
	json_decref(d);
	store_tx_rollback(tx);
out:
	identity_clear(&i);
	json_decref(o);
	return 0;
}

/* Links (identity_id set) or unlinks an account, audited, then answers the identity. */
static int
link_account(struct req *q, const char *identity_id, const char *account_id, bool link)
{
	struct store_tx *tx = NULL;
	struct identity i;
	struct account a;
	json_t *d;
	struct qerr e;
	int r;

	memset(&i, 0, sizeof(i));
	memset(&a, 0, sizeof(a));
	qerr_clear(&e);
	if ((r = store_tx_begin(q->api->st, true, &tx, &e)) != 0)
		goto fail;
	if ((r = store_identity_get(tx, identity_id, &i, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no identity %s", identity_id);
		goto fail;
	}
	if ((r = store_account_get(tx, account_id, &a, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "account_id", "no account %s", account_id);
		goto fail;
	}
	if (link && a.identity_id != NULL && strcmp(a.identity_id, identity_id) != 0) {
		r = qerr_set(&e, QERR_CONFLICT, "account_id",
		    "account %s is linked to identity %s: unlink it first", account_id,
		    a.identity_id);
		goto fail;
	}
	if (!link && (a.identity_id == NULL || strcmp(a.identity_id, identity_id) != 0)) {
		r = qerr_set(&e, QERR_NOT_FOUND, "account_id",
		    "account %s is not linked to identity %s", account_id, identity_id);
		goto fail;
	}
	d = json_pack("{s:s, s:s, s:s}", "account_id", account_id, "system", a.system,
	    "rule", "manual");
	if ((r = store_account_link(tx, account_id, link ? identity_id : NULL, &e)) == 0)
		r = engine_audit_tx(tx, q->who.name, link ? "account.linked" :
		    "account.unlinked", NULL, NULL, identity_id, d, &e);
	json_decref(d);
	if (r != 0 || (r = store_tx_commit(tx, &e)) != 0)
		goto fail;
	tx = NULL;
	reply_identity(q, identity_id);
	goto out;
fail:
	req_qerr(q, r, &e);
out:
	store_tx_rollback(tx);
	account_clear(&a);
	identity_clear(&i);
	return 0;
}

static int
post_link(struct req *q)
{
	static const char *const keys[] = { "account_id", NULL };
	const char *acc;
	json_t *o;

	if (check_id(q, "id", q->arg[0], "idn") != 0 || (o = req_json(q)) == NULL)
		return 0;
	if (only_keys(q, o, "", keys) == 0 &&
	    field_str(q, o, "account_id", true, 64, &acc) == 0 &&
	    check_id(q, "account_id", acc, "acc") == 0)
		link_account(q, q->arg[0], acc, true);
	json_decref(o);
	return 0;
}

static int
delete_link(struct req *q)
{
	if (check_id(q, "id", q->arg[0], "idn") != 0 ||
	    check_id(q, "account_id", q->arg[1], "acc") != 0)
		return 0;
	return link_account(q, q->arg[0], q->arg[1], false);
}

static int
post_sync(struct req *q)
{
	struct sync_report rep;
	struct actor who;
	struct qerr e;
	int r;

	req_actor(q, &who);
	qerr_clear(&e);
	if ((r = engine_sync(q->api->eng, &who, q->arg[0], &rep, &e)) != 0)
		return req_qerr(q, r, &e);
	return req_reply(q, 200, json_pack("{s:s, s:I, s:I, s:I, s:I}", "system",
	    q->arg[0], "accounts_seen", (json_int_t)rep.seen, "accounts_new",
	    (json_int_t)rep.created, "identities_created", (json_int_t)rep.identities,
	    "skipped", (json_int_t)rep.skipped));
}

static int
list_systems(struct req *q)
{
	bool sup[ACTION_TYPE_COUNT];
	json_t *arr = json_array(), *acts;
	const char *name, *kind;
	size_t i;
	int t;

	for (i = 0; i < engine_system_count(q->api->eng); i++) {
		name = engine_system_name(q->api->eng, i);
		if (engine_system_info(q->api->eng, name, &kind, sup) != 0)
			continue;
		acts = json_array();
		for (t = 0; t < ACTION_TYPE_COUNT; t++)
			if (sup[t])
				json_array_append_new(acts,
				    json_string(action_type_name((enum action_type)t)));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "name", name, "kind",
		    kind, "actions", acts));
	}
	return req_reply(q, 200, json_pack("{s:o}", "systems", arr));
}

static int
whoami(struct req *q)
{
	json_t *perms = json_array();
	int i;

	for (i = 0; i < PERM_COUNT; i++)
		if (q->perms & (1u << i))
			json_array_append_new(perms, json_string(rbac_perm_name(1u << i)));
	return req_reply(q, 200, json_pack("{s:s, s:s, s:s?, s:o}", "id", q->who.id,
	    "name", q->who.name, "role", q->who.role, "permissions", perms));
}

static int
add_entry(const struct audit_entry *ent, void *arg)
{
	struct list_ctx *c = arg;

	c->n++;
	return json_array_append_new(c->arr, render_audit(ent));
}

static int
list_audit(struct req *q)
{
	struct list_ctx c = { json_array(), 0 };
	struct store_tx *tx = NULL;
	const char *after = req_query(q, "after");
	long long seq = 0;
	json_t *last;
	char *end;
	struct qerr e;
	int limit, r;

	if (after != NULL && ((seq = strtoll(after, &end, 10)) < 0 || *end != '\0' ||
	    *after == '\0'))
		req_error(q, 400, "invalid_input", "after",
		    "after must be a sequence number");
	else if (parse_limit(q, 100, &limit) != 0)
		;
	else if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_audit_list(tx, seq, limit, add_entry, &c, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		last = json_array_get(c.arr, json_array_size(c.arr) - 1);
		req_reply(q, 200, json_pack("{s:O, s:O}", "entries", c.arr, "next",
		    c.n == limit && last ? json_object_get(last, "seq") : json_null()));
	}
	store_tx_rollback(tx);
	json_decref(c.arr);
	return 0;
}

struct verify_ctx {
	char prev[65];
	int64_t n;
	int64_t broken;
	struct qerr why;
};

static int
verify_entry(const struct audit_entry *ent, void *arg)
{
	struct verify_ctx *v = arg;

	if (audit_check(ent, v->prev, v->n + 1, &v->why) != 0) {
		v->broken = v->n + 1;
		return 1;
	}
	memcpy(v->prev, ent->hash, sizeof(v->prev));
	v->n++;
	return 0;
}

static int
verify_audit(struct req *q)
{
	struct verify_ctx v;
	struct store_tx *tx = NULL;
	struct qerr e;
	int r;

	memset(&v, 0, sizeof(v));
	memcpy(v.prev, audit_genesis, sizeof(v.prev));
	if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    ((r = store_audit_list(tx, 0, 0, verify_entry, &v, &e)) != 0 && v.broken == 0))
		req_qerr(q, r, &e);
	else if (v.broken != 0)
		req_reply(q, 200, json_pack("{s:b, s:I, s:I, s:s}", "ok", 0, "entries",
		    (json_int_t)v.n, "first_broken", (json_int_t)v.broken, "reason",
		    v.why.msg));
	else
		req_reply(q, 200, json_pack("{s:b, s:I, s:s}", "ok", 1, "entries",
		    (json_int_t)v.n, "head", v.prev));
	store_tx_rollback(tx);
	return 0;
}

/* Tags: an array of at most 64 non-empty printable strings of at most 64 bytes. */
static int
tag_list(struct req *q, json_t *arr, const char *field, char ***out, size_t *n)
{
	const char *s;
	json_t *t;
	size_t k;

	*out = NULL;
	*n = 0;
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > 64)
		return req_error(q, 400, "invalid_input", field,
		    "%s must be an array of at most 64 strings", field), -1;
	if ((*out = calloc(json_array_size(arr) + 1, sizeof(**out))) == NULL)
		return req_error(q, 500, "internal", NULL, "out of memory"), -1;
	json_array_foreach(arr, k, t) {
		s = json_string_value(t);
		if (s == NULL || s[0] == '\0' || strlen(s) != json_string_length(t) ||
		    strlen(s) > 64 || !text_printable(s, false))
			return req_error(q, 400, "invalid_input", field,
			    "%s[%zu] must be non-empty printable text of at most 64 bytes",
			    field, k), -1;
		(*out)[(*n)++] = (char *)s;
	}
	return 0;
}

static int
post_token(struct req *q)
{
	static const char *const keys[] = { "name", "role", "scope", NULL };
	const char *name, *role;
	unsigned perms;
	char *token = NULL, **scope = NULL;
	size_t nscope = 0;
	struct qerr e;
	json_t *o;
	int r;

	if ((o = req_json(q)) == NULL)
		return 0;
	if (only_keys(q, o, "", keys) != 0 ||
	    field_str(q, o, "name", true, NAME_MAX_LEN, &name) != 0 ||
	    field_str(q, o, "role", true, 64, &role) != 0 ||
	    tag_list(q, json_object_get(o, "scope"), "scope", &scope, &nscope) != 0)
		goto out;
	if (!rbac_role_perms(q->api->cfg, role, &perms)) {
		req_error(q, 400, "invalid_input", "role", "unknown role '%s'", role);
		goto out;
	}
	if ((r = auth_token_create(q->api->st, q->who.name, name, role, scope, nscope,
	    &token, &e)) != 0)
		req_qerr(q, r, &e);
	else
		req_reply(q, 201, json_pack("{s:s%, s:s, s:s, s:s, s:O}", "id", token,
		    strcspn(token, "."), "name", name, "role", role, "token", token, "scope",
		    json_object_get(o, "scope") ? json_object_get(o, "scope") :
		    json_array()));
out:
	free(scope);
	auth_token_free(token);
	json_decref(o);
	return 0;
}

/* An optional {"reason": "..."} body; NULL when absent or empty. */
static int
optional_reason(struct req *q, json_t **o, const char **reason)
{
	static const char *const keys[] = { "reason", NULL };

	*reason = NULL;
	*o = NULL;
	if (q->len == 0)
		return 0;
	if ((*o = req_json(q)) == NULL)
		return -1;
	if (only_keys(q, *o, "", keys) != 0 ||
	    field_str(q, *o, "reason", false, REASON_MAX, reason) != 0)
		return -1;
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
	if (check_id(q, "id", q->arg[0], "act") != 0 ||
	    optional_reason(q, &o, &reason) != 0)
		goto out;
	req_actor(q, &who);
	if ((r = engine_decide(q->api->eng, &who, q->arg[0], approve, reason, &a,
	    &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no action %s", q->arg[0]);
		req_qerr(q, r, &e);
		if (r == QERR_DENIED)
			req_audit_denial(q, "access.denied", e.msg);
	} else
		req_reply(q, 200, render_action(&a, true));
out:
	action_clear(&a);
	json_decref(o);
	return 0;
}

static int
approve_action(struct req *q)
{
	return decide(q, true);
}

static int
reject_action(struct req *q)
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

	if (only_keys(q, o, "", keys) != 0 ||
	    field_str(q, o, "type", false, 64, &f.type) != 0)
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
	if (field_str(q, o, "reason", false, REASON_MAX, &reason) != 0 ||
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
		    json_pack("{s:s, s:s, s:s}", "id", id, "error", qerr_strerror(r),
		    "message", e.msg));
		if (r == QERR_DENIED)
			req_audit_denial(q, "access.denied", e.msg);
		action_clear(&a);
	}
	req_reply(q, 200, json_pack("{s:O}", "results", results));
out:
	json_decref(results);
	json_decref(ids);
	json_decref(o);
	return 0;
}

static int
approve_bulk(struct req *q)
{
	return decide_bulk(q, true);
}

static int
reject_bulk(struct req *q)
{
	return decide_bulk(q, false);
}

static int
undo_action(struct req *q)
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
	if (check_id(q, "id", q->arg[0], "act") != 0 || (o = req_json(q)) == NULL)
		return 0;
	if (only_keys(q, o, "", keys) != 0 ||
	    field_str(q, o, "reason", true, REASON_MAX, &reason) != 0)
		goto out;
	req_actor(q, &who);
	if ((r = engine_undo(q->api->eng, &who, q->arg[0], reason, &a, &e)) != 0) {
		if (r == QERR_NOT_FOUND && e.field[0] == '\0')
			qerr_set(&e, r, "id", "no action %s", q->arg[0]);
		req_qerr(q, r, &e);
		if (r == QERR_DENIED && a.id != NULL &&
		    (err = json_object_get(q->resp, "error")) != NULL)
			json_object_set_new(err, "action_id", json_string(a.id));
	} else
		req_reply(q, 201, render_action(&a, true));
out:
	action_clear(&a);
	json_decref(o);
	return 0;
}

/* Replaces an identity's tags, which scoped roles and approval rules read. */
static int
put_tags(struct req *q)
{
	static const char *const keys[] = { "tags", NULL };
	struct store_tx *tx = NULL;
	struct identity i;
	char **tags = NULL;
	size_t ntags = 0;
	json_t *o, *d = NULL;
	struct qerr e;
	int r;

	memset(&i, 0, sizeof(i));
	if (check_id(q, "id", q->arg[0], "idn") != 0 || (o = req_json(q)) == NULL)
		return 0;
	if (only_keys(q, o, "", keys) != 0 ||
	    tag_list(q, json_object_get(o, "tags"), "tags", &tags, &ntags) != 0)
		goto out;
	if (json_object_get(o, "tags") == NULL) {
		req_error(q, 400, "invalid_input", "tags", "tags is required");
		goto out;
	}
	if ((r = store_tx_begin(q->api->st, true, &tx, &e)) != 0 ||
	    (r = store_identity_get(tx, q->arg[0], &i, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no identity %s", q->arg[0]);
		req_qerr(q, r, &e);
		goto out;
	}
	d = json_pack("{s:O}", "tags", json_object_get(o, "tags"));
	if ((r = set_tags(tx, &i, tags, ntags, &e)) != 0 ||
	    (r = engine_audit_tx(tx, q->who.name, "identity.tags_set", NULL, NULL,
	    i.id, d, &e)) != 0 || (r = store_tx_commit(tx, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		tx = NULL;
		reply_identity(q, q->arg[0]);
	}
out:
	store_tx_rollback(tx);
	json_decref(d);
	identity_clear(&i);
	free(tags);
	json_decref(o);
	return 0;
}

static const struct route {
	const char *method;
	const char *pattern;
	unsigned perm;
	route_fn fn;
} routes[] = {
	{ "GET", "/api/v1/whoami", PERM_ANY, whoami },
	{ "GET", "/api/v1/systems", PERM_IDENTITIES_READ, list_systems },
	{ "POST", "/api/v1/actions", PERM_IN_HANDLER, post_action },
	{ "GET", "/api/v1/actions", PERM_RESPONSE_READ, list_actions },
	{ "GET", "/api/v1/actions/{}", PERM_RESPONSE_READ, get_action },
	{ "POST", "/api/v1/actions/{}/cancel", PERM_RESPONSE_MANAGE, cancel_action },
	{ "POST", "/api/v1/actions/{}/approve", PERM_RESPONSE_APPROVE, approve_action },
	{ "POST", "/api/v1/actions/{}/reject", PERM_RESPONSE_APPROVE, reject_action },
	{ "POST", "/api/v1/actions/approve", PERM_RESPONSE_APPROVE, approve_bulk },
	{ "POST", "/api/v1/actions/reject", PERM_RESPONSE_APPROVE, reject_bulk },
	{ "POST", "/api/v1/actions/{}/undo", PERM_IN_HANDLER, undo_action },
	{ "GET", "/api/v1/identities", PERM_IDENTITIES_READ, list_identities },
	{ "POST", "/api/v1/identities", PERM_IDENTITIES_MANAGE, post_identity },
	{ "GET", "/api/v1/identities/{}", PERM_IDENTITIES_READ, get_identity },
	{ "PUT", "/api/v1/identities/{}/tags", PERM_IDENTITIES_MANAGE, put_tags },
	{ "POST", "/api/v1/identities/{}/accounts", PERM_IDENTITIES_MANAGE, post_link },
	{ "DELETE", "/api/v1/identities/{}/accounts/{}", PERM_IDENTITIES_MANAGE,
	    delete_link },
	{ "POST", "/api/v1/sync/{}", PERM_IDENTITIES_MANAGE, post_sync },
	{ "GET", "/api/v1/audit", PERM_AUDIT_READ, list_audit },
	{ "GET", "/api/v1/audit/verify", PERM_AUDIT_READ, verify_audit },
	{ "POST", "/api/v1/tokens", PERM_SETTINGS_MANAGE, post_token },
};

/* Matches path against pattern, capturing each {} segment into q->argbuf. */
static bool
match(struct req *q, const char *pattern, const char *path)
{
	int nargs = 0;
	size_t n;

	while (*pattern && *path) {
		if (pattern[0] == '{' && pattern[1] == '}') {
			n = strcspn(path, "/");
			if (n == 0 || n >= sizeof(q->argbuf[0]) || nargs == 2)
				return false;
			memcpy(q->argbuf[nargs], path, n);
			q->argbuf[nargs][n] = '\0';
			q->arg[nargs] = q->argbuf[nargs];
			nargs++;
			path += n;
			pattern += 2;
		} else if (*pattern++ != *path++)
			return false;
	}
	return *pattern == '\0' && *path == '\0';
}

int
routes_dispatch(struct req *q)
{
	bool path_known = false;
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!match(q, routes[i].pattern, q->path))
			continue;
		path_known = true;
		if (strcmp(routes[i].method, q->method) != 0)
			continue;
		if (!allowed(q, routes[i].perm))
			return 0;
		return routes[i].fn(q);
	}
	if (path_known)
		return req_error(q, 405, "method_not_allowed", NULL,
		    "%s is not allowed on %s", q->method, q->path);
	return req_error(q, 404, "not_found", NULL, "no route %s", q->path);
}
