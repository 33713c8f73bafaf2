/*
 * Routes of automatic attack disruption: alerts in (validated field by field, stored
 * once per (source, id)), alerts out with their entities, resolution, decisions and
 * actions, and the release of an identity automation contained.
 *
 * confidence is 0..100, or one of the words low (30), medium (60), high (90).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/kind.h"
#include "core/text.h"
#include "internal.h"
#include "render.h"

#define ENTITIES_MAX 100
#define ALERT_ID_MAX 128
#define TITLE_MAX 512

static int
bad(struct req *q, const char *field, const char *msg)
{
	return req_error(q, 400, "invalid_input", field, "%s", msg), -1;
}

static bool
all_chars(const char *s, const char *extra)
{
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr(extra, *s) == NULL)
			return false;
	return true;
}

/* Checks value for its id type, as the kind that declares the type says. */
static int
account_value_ok(struct req *q, const char *field, const struct kind_alert_id *t, char *v)
{
	if (t->valid != NULL && !t->valid(v))
		return bad(q, field, t->hint);
	return 0;
}

static int
add_entity(struct alert *a, const char *kind, const char *type, const char *value)
{
	struct alert_entity *en = &a->entities[a->nentities];

	memset(en, 0, sizeof(*en));
	en->kind = strdup(kind);
	en->id_type = type ? strdup(type) : NULL;
	en->value = strdup(value);
	a->nentities++;
	return en->kind && en->value && (type == NULL || en->id_type) ? 0 : -1;
}

/* accounts[i]: an object with exactly one of the id types the kinds declare. */
static int
parse_account(struct req *q, json_t *o, size_t i, struct alert *a)
{
	const struct kind_table *kinds = &q->api->cfg->kinds;
	const struct kind_alert_id *t;
	const char *type = NULL, *k, *s;
	char field[64], v[257], types[200], msg[512];
	json_t *val;

	snprintf(field, sizeof(field), "entities.accounts[%zu]", i);
	kind_alert_id_list(kinds, types, sizeof(types));
	snprintf(msg, sizeof(msg), "each account is an object with exactly one of %s", types);
	if (!json_is_object(o) || json_object_size(o) != 1)
		return bad(q, field, msg);
	json_object_foreach(o, k, val)
		type = k;
	if ((t = kind_alert_id_find(kinds, type, NULL)) == NULL) {
		snprintf(field, sizeof(field), "entities.accounts[].%.30s", type);
		snprintf(msg, sizeof(msg), "unknown field '%s': an account id type is one of %s",
		    field, types);
		return bad(q, field, msg);
	}
	snprintf(field, sizeof(field), "entities.accounts[%zu].%s", i, type);
	val = json_object_get(o, type);
	if ((s = json_string_value(val)) == NULL || s[0] == '\0' ||
	    strlen(s) != json_string_length(val) || strlen(s) > 256 ||
	    !text_printable(s, false))
		return bad(q, field, "an account value is non-empty printable text of at "
		    "most 256 bytes");
	snprintf(v, sizeof(v), "%s", s);
	if (account_value_ok(q, field, t, v) != 0)
		return -1;
	return add_entity(a, "account", type, v) == 0 ? 0 :
	    (req_error(q, 500, "internal", NULL, "out of memory"), -1);
}

static bool
ip_ok(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool
host_ok(const char *s)
{
	return s[0] != '\0' && strlen(s) <= 253 && all_chars(s, ".-_");
}

/* ips and hosts: arrays of strings of their form. */
static int
parse_names(struct req *q, json_t *arr, const char *key, struct alert *a)
{
	const char *s;
	char field[64];
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) {
		snprintf(field, sizeof(field), "entities.%s[%zu]", key, i);
		s = json_string_value(v);
		if (s == NULL || strlen(s) != json_string_length(v) || strlen(s) > 253)
			return bad(q, field, "must be a string of at most 253 bytes");
		if (strcmp(key, "ips") == 0 ? !ip_ok(s) : !host_ok(s))
			return bad(q, field, strcmp(key, "ips") == 0 ? "not an IPv4 or IPv6 "
			    "address" : "a host name is letters, digits, '.', '-' and '_'");
		if (add_entity(a, strcmp(key, "ips") == 0 ? "ip" : "host", NULL, s) != 0)
			return req_error(q, 500, "internal", NULL, "out of memory"), -1;
	}
	return 0;
}

static int
parse_entities(struct req *q, json_t *o, struct alert *a)
{
	static const char *const keys[] = { "accounts", "ips", "hosts", NULL };
	json_t *acc, *ips, *hosts, *v;
	char field[32];
	size_t i, n = 0;

	if (o == NULL || json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return bad(q, "entities", "entities must be an object: {accounts, ips, hosts}");
	if (req_only_keys(q, o, "entities.", keys) != 0)
		return -1;
	acc = json_object_get(o, "accounts");
	ips = json_object_get(o, "ips");
	hosts = json_object_get(o, "hosts");
	for (i = 0; i < 3; i++) {
		v = i == 0 ? acc : i == 1 ? ips : hosts;
		snprintf(field, sizeof(field), "entities.%s", keys[i]);
		if (v != NULL && (!json_is_array(v) || json_array_size(v) > ENTITIES_MAX))
			return bad(q, field, "must be an array of at most 100 entries");
		n += json_array_size(v);
	}
	if ((a->entities = calloc(n + 1, sizeof(*a->entities))) == NULL)
		return req_error(q, 500, "internal", NULL, "out of memory"), -1;
	json_array_foreach(acc, i, v)
		if (parse_account(q, v, i, a) != 0)
			return -1;
	if (parse_names(q, ips, "ips", a) != 0 || parse_names(q, hosts, "hosts", a) != 0)
		return -1;
	return 0;
}

static int
parse_confidence(struct req *q, json_t *v, int *out)
{
	json_int_t n;

	if (json_is_string(v) && (*out = alert_confidence_word(json_string_value(v))) >= 0)
		return 0;
	if (!json_is_integer(v) || (n = json_integer_value(v)) < 0 || n > 100)
		return bad(q, "confidence", "confidence must be a whole number from 0 to 100, "
		    "or low, medium or high");
	*out = (int)n;
	return 0;
}

static int
parse_class(struct req *q, json_t *o, struct alert *a)
{
	const char *cat, *sev, *time;

	if (req_field_str(q, o, "category", true, 64, &cat) != 0 ||
	    req_field_str(q, o, "severity", true, 16, &sev) != 0 ||
	    req_field_str(q, o, "time", true, 64, &time) != 0)
		return -1;
	if (!alert_category_valid(cat) || strcmp(cat, "blast_radius") == 0)
		return req_error(q, 400, "invalid_input", "category", "unknown category "
		    "'%.64s' (one of: %s)", cat, alert_categories()), -1;
	if (alert_severity_parse(sev, &a->severity) != 0)
		return bad(q, "severity", "severity must be informational, low, medium or "
		    "high");
	if (text_time_parse(time, &a->time) != 0)
		return bad(q, "time", "time must be an RFC 3339 time, e.g. "
		    "2026-11-25T08:00:00Z");
	if (json_object_get(o, "confidence") == NULL)
		return bad(q, "confidence", "confidence is required");
	if (parse_confidence(q, json_object_get(o, "confidence"), &a->confidence) != 0)
		return -1;
	return (a->category = strdup(cat)) ? 0 :
	    (req_error(q, 500, "internal", NULL, "out of memory"), -1);
}

int
routes_alert_parse(struct req *q, json_t *o, struct alert *a)
{
	static const char *const keys[] = { "id", "source", "time", "title", "category",
	    "severity", "confidence", "entities", NULL };
	const char *id, *source, *title;

	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_str(q, o, "id", true, ALERT_ID_MAX, &id) != 0 ||
	    req_field_str(q, o, "source", true, 64, &source) != 0 ||
	    req_field_str(q, o, "title", true, TITLE_MAX, &title) != 0)
		return -1;
	if (!all_chars(source, "._-"))
		return bad(q, "source", "source is letters, digits, '.', '-' and '_'");
	if (strcmp(source, ALERT_SOURCE_QUELL) == 0)
		return bad(q, "source", "source 'quell' is reserved for the alerts quell "
		    "raises itself");
	if (parse_class(q, o, a) != 0 ||
	    parse_entities(q, json_object_get(o, "entities"), a) != 0)
		return -1;
	a->external_id = strdup(id);
	a->source = strdup(source);
	a->title = strdup(title);
	return a->external_id && a->source && a->title ? 0 :
	    (req_error(q, 500, "internal", NULL, "out of memory"), -1);
}

static json_t *
render_entity(const struct alert_entity *en)
{
	return json_pack("{s:s, s:s?, s:s, s:s?, s:s?, s:s?}", "type", en->kind, "id_type",
	    en->id_type, "value", en->value, "identity_id", en->identity_id, "account_id",
	    en->account_id, "resolution", en->resolution);
}

static json_t *
render_alert(const struct alert *a)
{
	json_t *o, *ents = json_array();
	size_t i;

	for (i = 0; i < a->nentities; i++)
		json_array_append_new(ents, render_entity(&a->entities[i]));
	o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:i, s:o, s:I}", "id", a->id,
	    "source", a->source, "source_alert_id", a->external_id, "time",
	    render_time(a->time), "title", a->title, "category", a->category, "severity",
	    alert_severity_name(a->severity), "confidence", a->confidence, "received_at",
	    render_time(a->received_at), "received_at_us", (json_int_t)a->received_us);
	if (o != NULL && a->entities != NULL)
		json_object_set_new(o, "entities", ents);
	else
		json_decref(ents);
	return o;
}

struct links {
	struct store_tx *tx;
	json_t *decisions;
	json_t *actions;
};

static void
add_actions(struct links *l, json_t *list)
{
	struct action a;
	struct qerr e;
	json_t *item;
	const char *id;
	size_t i;

	json_array_foreach(list, i, item) {
		if ((id = json_string_value(json_object_get(item, "action_id"))) == NULL)
			continue;
		memset(&a, 0, sizeof(a));
		if (store_action_get(l->tx, id, &a, &e) == 0)
			json_array_append_new(l->actions, render_action(&a, false));
		action_clear(&a);
	}
}

static int
add_decision(const struct alert_decision *d, void *arg)
{
	struct links *l = arg;
	json_t *detail = json_loads(d->detail, 0, NULL);

	json_array_append_new(l->decisions, json_pack("{s:s, s:s?, s:s?, s:s, s:o, s:o}",
	    "id", d->id, "identity_id", d->identity_id, "rule", d->rule, "outcome",
	    d->outcome, "created_at", render_time(d->created_at), "detail",
	    detail ? detail : json_object()));
	add_actions(l, json_object_get(detail, "actions"));
	return 0;
}

/* The stored alert with its entities, decisions and the actions they caused. */
static int
reply_alert(struct req *q, const char *id, unsigned status)
{
	struct links l = { NULL, json_array(), json_array() };
	struct alert a;
	struct qerr e;
	json_t *o;
	int r;

	memset(&a, 0, sizeof(a));
	if ((r = store_tx_begin(q->api->st, false, &l.tx, &e)) != 0 ||
	    (r = store_alert_get(l.tx, id, &a, &e)) != 0 ||
	    (r = store_decision_list(l.tx, id, NULL, add_decision, &l, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no alert %s", id);
		req_qerr(q, r, &e);
	} else if ((o = render_alert(&a)) != NULL) {
		json_object_set(o, "decisions", l.decisions);
		json_object_set(o, "actions", l.actions);
		req_reply(q, status, o);
	}
	store_tx_rollback(l.tx);
	json_decref(l.decisions);
	json_decref(l.actions);
	alert_clear(&a);
	return 0;
}

int
route_post_alert(struct req *q)
{
	struct alert a;
	struct actor who;
	struct qerr e;
	json_t *o;
	bool created = false;
	int r;

	memset(&a, 0, sizeof(a));
	req_actor(q, &who);
	a.received_us = engine_now_us();
	qerr_clear(&e);
	if ((o = req_json(q)) == NULL)
		return 0;
	if (routes_alert_parse(q, o, &a) == 0) {
		if ((r = engine_alert(q->api->eng, &who, &a, &created, &e)) != 0)
			req_qerr(q, r, &e);
		else
			reply_alert(q, a.id, created ? 201 : 200);
	}
	alert_clear(&a);
	json_decref(o);
	return 0;
}

int
route_get_alert(struct req *q)
{
	if (req_check_id(q, "alert_id", q->arg[0], "alr") != 0)
		return 0;
	return reply_alert(q, q->arg[0], 200);
}

static int
add_alert(const struct alert *a, void *arg)
{
	struct list_ctx *c = arg;

	c->n++;
	return json_array_append_new(c->arr, render_alert(a));
}

int
route_list_alerts(struct req *q)
{
	struct alert_filter f;
	struct list_ctx c = { json_array(), 0 };
	struct store_tx *tx = NULL;
	struct qerr e;
	int r;

	memset(&f, 0, sizeof(f));
	f.before_id = req_query(q, "before");
	f.source = req_query(q, "source");
	if (req_check_id(q, "before", f.before_id, "alr") != 0 ||
	    req_limit(q, 50, &f.limit) != 0)
		;
	else if (f.source != NULL && (strlen(f.source) > 64 || !all_chars(f.source, "._-")))
		bad(q, "source", "source is letters, digits, '.', '-' and '_'");
	else if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_alert_list(tx, &f, add_alert, &c, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		req_reply_page(q, "alerts", &c, f.limit, "id");
	}
	store_tx_rollback(tx);
	json_decref(c.arr);
	return 0;
}

int
route_release_identity(struct req *q)
{
	static const char *const keys[] = { "reason", "preview", NULL };
	struct actor who;
	const char *reason;
	json_t *o, *results = NULL, *pv;
	struct qerr e;
	int r;

	qerr_clear(&e);
	if (req_check_id(q, "identity_id", q->arg[0], "idn") != 0 || (o = req_json(q)) == NULL)
		return 0;
	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_str(q, o, "reason", true, REASON_MAX, &reason) != 0)
		goto out;
	if ((pv = json_object_get(o, "preview")) != NULL && !json_is_boolean(pv)) {
		req_error(q, 400, "invalid_input", "preview", "preview must be true or false");
		goto out;
	}
	req_actor(q, &who);
	/* A preview changes nothing: what each containment in force would become. */
	r = json_is_true(pv) ? engine_release_preview(q->api->eng, &who, q->arg[0], reason,
	    &results, &e) : engine_release(q->api->eng, &who, q->arg[0], reason, &results,
	    &e);
	if (r != 0) {
		req_qerr(q, r, &e);
		if (r == QERR_DENIED)
			req_audit_denial(q, "access.denied", e.msg);
	} else {
		json_object_set_new(results, "identity_id", json_string(q->arg[0]));
		req_reply(q, 200, json_incref(results));
	}
out:
	json_decref(results);
	json_decref(o);
	return 0;
}
