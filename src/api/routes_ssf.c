/*
 * OpenID Shared Signals over HTTP (docs/ssf.md): the transmitter's metadata and
 * JWK Set (unauthenticated, as receivers discover them), its stream management API
 * and poll endpoint (RFC 8936) for quell principals holding settings.manage, and
 * the receiver's push endpoints (RFC 8935), authenticated by their own bearer token.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "core/id.h"
#include "engine/ssf.h"
#include "internal.h"
#include "providers/kit.h"

#define STREAM_BODY_MAX	64	/* events a stream may request */
#define POLL_MAX	100
#define SSF_WAIT_MAX_S	30	/* the longest a long poll waits */

static const struct ssf_conf *
conf(struct req *q)
{
	const struct ssf_conf *c = engine_ssf_conf(q->api->eng);

	if (c == NULL)
		req_error(q, 404, "not_found", NULL, "%s", "quell transmits no shared "
		    "signals: no [ssf] section");
	return c;
}

static json_t *
url(const struct ssf_conf *c, const char *path)
{
	return json_sprintf("%s%s", c->issuer, path);
}

static int
metadata(struct req *q)
{
	const struct ssf_conf *c;
	json_t *o;

	if ((c = conf(q)) == NULL)
		return 0;
	o = json_pack("{s:s, s:s, s:o, s:[s,s], s:o, s:o, s:o, s:o, s:o,"
	    " s:[{s:s},{s:s}], s:s}", "spec_version", "1_0", "issuer", c->issuer, "jwks_uri",
	    url(c, "/ssf/jwks.json"), "delivery_methods_supported", SSF_PUSH, SSF_POLL,
	    "configuration_endpoint", url(c, "/ssf/stream"), "status_endpoint",
	    url(c, "/ssf/status"), "add_subject_endpoint", url(c, "/ssf/subjects:add"),
	    "remove_subject_endpoint", url(c, "/ssf/subjects:remove"),
	    "verification_endpoint", url(c, "/ssf/verify"), "authorization_schemes",
	    "spec_urn", "urn:ietf:rfc:6749", "spec_urn", "urn:ietf:rfc:6750",
	    "default_subjects", c->default_subjects);
	return req_reply(q, 200, o);
}

static json_t *
supported(void)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; ssf_events_supported[i] != NULL; i++)
		json_array_append_new(a, json_string(ssf_events_supported[i]));
	return a;
}

static bool
is_supported(const char *ev)
{
	size_t i;

	for (i = 0; ssf_events_supported[i] != NULL; i++)
		if (strcmp(ssf_events_supported[i], ev) == 0)
			return true;
	return false;
}

/* The stream's configuration, or NULL (answered 404). */
struct find {
	const char *id;
	json_t *found;
	json_t *all;
};

static int
find_cb(const char *key, const char *text, int64_t seq, void *arg)
{
	struct find *f = arg;
	json_t *o;

	(void)seq;
	if (f->id != NULL && strcmp(key, f->id) != 0)
		return 0;
	if ((o = json_loads(text, 0, NULL)) == NULL)
		return 0;
	if (f->all != NULL)
		return json_array_append_new(f->all, o) == 0 ? 0 : QERR_NOMEM;
	json_decref(f->found);
	f->found = o;
	return 0;
}

static json_t *
load_stream(struct req *q, struct store_tx *tx, const char *id)
{
	struct find f = { .id = id };
	struct qerr e = { 0 };
	int r;

	if ((r = store_ssf_stream_list(tx, find_cb, &f, &e)) != 0) {
		req_qerr(q, r, &e);
		return NULL;
	}
	if (f.found == NULL)
		req_error(q, 404, "not_found", "stream_id", "no stream '%s'", id);
	return f.found;
}

static int
save(struct req *q, struct store_tx *tx, json_t *st, unsigned status)
{
	struct qerr e = { 0 };
	char *text = json_dumps(st, JSON_COMPACT);
	int r;

	if (text == NULL)
		r = qerr_set(&e, QERR_NOMEM, NULL, "out of memory");
	else if ((r = store_ssf_stream_put(tx, json_string_value(json_object_get(st,
	    "stream_id")), text, engine_now_ms(), &e)) == 0)
		r = store_tx_commit(tx, &e);
	else
		store_tx_rollback(tx);
	free(text);
	if (r != 0) {
		json_decref(st);
		return req_qerr(q, r, &e);
	}
	return req_reply(q, status, st);
}

/* A 400 naming field; -1, so that the caller stops. */
static int
invalid(struct req *q, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
invalid(struct req *q, const char *field, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	req_error(q, 400, "invalid", field, "%s", why);
	return -1;
}

/* events_requested, each a URI quell may send; events_delivered is what it will. */
static int
set_events(struct req *q, json_t *st, json_t *req)
{
	json_t *want = json_object_get(req, "events_requested"), *got, *v;
	size_t i;

	if (want == NULL)
		return 0;
	if (!json_is_array(want) || json_array_size(want) > STREAM_BODY_MAX)
		return invalid(q, "events_requested", "must be an array "
		    "of at most %d event type URIs", STREAM_BODY_MAX);
	got = json_array();
	json_array_foreach(want, i, v) {
		if (!json_is_string(v)) {
			json_decref(got);
			return invalid(q, "events_requested", "item %zu is "
			    "not a string", i);
		}
		if (is_supported(json_string_value(v)))
			json_array_append(got, v);
	}
	json_object_set(st, "events_requested", want);
	json_object_set_new(st, "events_delivered", got);
	return 0;
}

/* delivery: push needs an http(s) endpoint_url; poll's is quell's own. */
static int
set_delivery(struct req *q, const struct ssf_conf *c, json_t *st, json_t *d)
{
	const char *m = json_string_value(json_object_get(d, "method"));
	const char *ep = json_string_value(json_object_get(d, "endpoint_url"));
	const json_t *auth = json_object_get(d, "authorization_header");
	json_t *out;

	if (m == NULL || (strcmp(m, SSF_PUSH) != 0 && strcmp(m, SSF_POLL) != 0))
		return invalid(q, "delivery.method", "must be %s (push) "
		    "or %s (poll)", SSF_PUSH, SSF_POLL);
	if (auth != NULL && !json_is_string(auth))
		return invalid(q, "delivery.authorization_header",
		    "%s", "must be a string");
	if (strcmp(m, SSF_PUSH) == 0) {
		if (ep == NULL || (strncmp(ep, "https://", 8) != 0 &&
		    strncmp(ep, "http://", 7) != 0) || strlen(ep) > 2048)
			return invalid(q, "delivery.endpoint_url", "%s",
			    "push needs an http(s) URL of at most 2048 characters");
		out = json_pack("{s:s, s:s, s:O?}", "method", m, "endpoint_url", ep,
		    "authorization_header", auth);
	} else
		out = json_pack("{s:s, s:o}", "method", m, "endpoint_url", json_sprintf(
		    "%s/ssf/poll/%s", c->issuer, json_string_value(json_object_get(st,
		    "stream_id"))));
	if (json_object_set_new(st, "delivery", out) != 0)
		return invalid(q, "delivery", "%s", "out of memory");
	return 0;
}

static int
set_options(struct req *q, json_t *st, json_t *o)
{
	static const char *const formats[] = { "email", "iss_sub", "opaque", "complex" };
	const char *field = json_object_get(o, "format") ? "format" :
	    "quell_subject_format";
	const json_t *f = json_object_get(o, field);
	const json_t *d = json_object_get(o, "description");
	size_t i;

	if (d != NULL && (!json_is_string(d) || json_string_length(d) > 256))
		return invalid(q, "description", "%s", "must be a string "
		    "of at most 256 characters");
	if (d != NULL)
		json_object_set(st, "description", (json_t *)d);
	if (f == NULL)
		return 0;
	/* SSF 1.0's "format" (the subject format the receiver wants) is the same
	 * choice as quell's own key, which came first. */
	for (i = 0; i < 4 && json_is_string(f); i++)
		if (strcmp(json_string_value(f), formats[i]) == 0)
			return json_object_set(st, "quell_subject_format", (json_t *)f) ||
			    json_object_set(st, "format", (json_t *)f) ? invalid(q, field,
			    "%s", "out of memory") : 0;
	return invalid(q, field, "%s", "must be email, iss_sub, opaque or complex");
}

static int
begin(struct req *q, bool write, struct store_tx **tx)
{
	struct qerr e = { 0 };
	int r;

	if ((r = store_tx_begin(q->api->st, write, tx, &e)) != 0) {
		req_qerr(q, r, &e);
		return -1;
	}
	return 0;
}

int
route_ssf_stream_create(struct req *q)
{
	const struct ssf_conf *c;
	struct store_tx *tx = NULL;
	char id[ID_LEN];
	json_t *o, *st, *aud;

	if ((c = conf(q)) == NULL || (o = req_json(q)) == NULL)
		return 0;
	id_make(id, "ssf", engine_now_ms());
	/* The receiver names the audience it checks; by default, the stream. */
	aud = json_object_get(o, "aud");
	aud = aud && (json_is_string(aud) || json_is_array(aud)) ? json_incref(aud) :
	    json_string(id);
	st = json_pack("{s:s, s:s, s:o, s:o, s:s, s:I, s:o}", "stream_id", id, "iss",
	    c->issuer, "aud", aud, "events_supported", supported(), "status", "enabled",
	    "created_at", (json_int_t)engine_now_ms(), SSF_SUBJECTS_KEY,
	    ssf_subjects_new(c->default_subjects));
	if (st == NULL || set_delivery(q, c, st, json_object_get(o, "delivery")) != 0 ||
	    set_events(q, st, o) != 0 || set_options(q, st, o) != 0 ||
	    begin(q, true, &tx) != 0) {
		json_decref(st);
		json_decref(o);
		return 0;
	}
	json_decref(o);
	return save(q, tx, st, 201);
}

static const char *
stream_id_arg(struct req *q, json_t *o)
{
	const char *id = o ? json_string_value(json_object_get(o, "stream_id")) :
	    req_query(q, "stream_id");

	if (id == NULL || strlen(id) >= 64)
		req_error(q, 400, "invalid", "stream_id", "%s", "a stream_id is required");
	return id != NULL && strlen(id) < 64 ? id : NULL;
}

int
route_ssf_stream_get(struct req *q)
{
	struct find f = { .id = req_query(q, "stream_id") };
	struct store_tx *tx = NULL;
	struct qerr e = { 0 };
	int r;

	if (conf(q) == NULL || begin(q, false, &tx) != 0)
		return 0;
	if (f.id == NULL)
		f.all = json_array();
	r = store_ssf_stream_list(tx, find_cb, &f, &e);
	store_tx_rollback(tx);
	if (r != 0) {
		json_decref(f.all);
		json_decref(f.found);
		return req_qerr(q, r, &e);
	}
	if (f.all != NULL)
		return req_reply(q, 200, f.all);
	if (f.found == NULL)
		return req_error(q, 404, "not_found", "stream_id", "no stream '%s'", f.id);
	return req_reply(q, 200, f.found);
}

/* PATCH changes what the body names; PUT replaces events and delivery. */
int
route_ssf_stream_update(struct req *q)
{
	const struct ssf_conf *c;
	struct store_tx *tx = NULL;
	json_t *o, *st = NULL, *d;
	const char *id;

	if ((c = conf(q)) == NULL || (o = req_json(q)) == NULL)
		return 0;
	if ((id = stream_id_arg(q, o)) == NULL || begin(q, true, &tx) != 0)
		goto fail;
	if ((st = load_stream(q, tx, id)) == NULL)
		goto fail;
	d = json_object_get(o, "delivery");
	if ((d != NULL || strcmp(q->method, "PUT") == 0) && set_delivery(q, c, st, d))
		goto fail;
	if (set_events(q, st, o) != 0 || set_options(q, st, o) != 0)
		goto fail;
	json_decref(o);
	return save(q, tx, st, 200);
fail:
	if (tx != NULL)
		store_tx_rollback(tx);
	json_decref(st);
	json_decref(o);
	return 0;
}

int
route_ssf_stream_delete(struct req *q)
{
	struct store_tx *tx = NULL;
	struct qerr e = { 0 };
	const char *id;
	int r;

	if (conf(q) == NULL || (id = stream_id_arg(q, NULL)) == NULL ||
	    begin(q, true, &tx) != 0)
		return 0;
	if ((r = store_ssf_stream_delete(tx, id, &e)) == 0)
		r = store_tx_commit(tx, &e);
	else
		store_tx_rollback(tx);
	if (r != 0)
		return req_qerr(q, r, &e);
	return req_reply(q, 204, NULL);
}

int
route_ssf_status_get(struct req *q)
{
	struct store_tx *tx = NULL;
	const char *id;
	json_t *st;

	if (conf(q) == NULL || (id = stream_id_arg(q, NULL)) == NULL ||
	    begin(q, false, &tx) != 0)
		return 0;
	st = load_stream(q, tx, id);
	store_tx_rollback(tx);
	if (st == NULL)
		return 0;
	req_reply(q, 200, json_pack("{s:s, s:O}", "stream_id", id, "status",
	    json_object_get(st, "status")));
	json_decref(st);
	return 0;
}

int
route_ssf_status_post(struct req *q)
{
	struct store_tx *tx = NULL;
	const char *id, *s;
	json_t *o, *st = NULL;

	if (conf(q) == NULL || (o = req_json(q)) == NULL)
		return 0;
	s = json_string_value(json_object_get(o, "status"));
	if ((id = stream_id_arg(q, o)) == NULL)
		goto out;
	if (s == NULL || (strcmp(s, "enabled") != 0 && strcmp(s, "paused") != 0 &&
	    strcmp(s, "disabled") != 0)) {
		req_error(q, 400, "invalid", "status", "%s", "must be enabled, paused or "
		    "disabled");
		goto out;
	}
	if (begin(q, true, &tx) != 0)
		goto out;
	if ((st = load_stream(q, tx, id)) == NULL) {
		store_tx_rollback(tx);
		goto out;
	}
	json_object_set_new(st, "status", json_string(s));
	save(q, tx, st, 200);
	/* The answer is the status object, not the whole configuration. */
	if (q->status == 200)
		req_reply(q, 200, json_pack("{s:s, s:s}", "stream_id", id, "status", s));
out:
	json_decref(o);
	return 0;
}

/* SSF 1.0 8.1.3: a subject added (200) or removed (204) changes which accounts the
 * stream's events are about, from the next event on (ssf_stream_includes). */
int
route_ssf_subjects(struct req *q)
{
	bool add = strcmp(q->path, "/ssf/subjects:add") == 0;
	struct store_tx *tx = NULL;
	const char *id;
	json_t *o, *st = NULL;
	char why[160];
	int r;

	if (conf(q) == NULL || (o = req_json(q)) == NULL)
		return 0;
	if ((id = stream_id_arg(q, o)) == NULL)
		goto out;
	if (ssf_subject_check(json_object_get(o, "subject"), why, sizeof(why)) != 0) {
		req_error(q, 400, "invalid", "subject", "subject: %s", why);
		goto out;
	}
	if (begin(q, true, &tx) != 0)
		goto out;
	if ((st = load_stream(q, tx, id)) == NULL) {
		store_tx_rollback(tx);
		goto out;
	}
	if ((r = ssf_stream_subject_edit(st, json_object_get(o, "subject"), add, why,
	    sizeof(why))) != 0) {
		store_tx_rollback(tx);
		req_error(q, r == QERR_NOT_FOUND ? 404 : r == QERR_INVALID ? 400 : 500,
		    r == QERR_NOT_FOUND ? "not_found" : "invalid", "subject", "%s",
		    r == QERR_NOMEM ? "out of memory" : why);
		goto out;
	}
	save(q, tx, st, 200);
	st = NULL;
	if (q->status == 200)
		req_reply(q, add ? 200 : 204, NULL);
out:
	json_decref(st);
	json_decref(o);
	return 0;
}

/*
 * SSF 8.1.4: a verification event. The request is audited
 * (ssf.verification_requested) and the SSF thread makes the SET from the audit log
 * as it makes the others, so that it comes after every event audited before it,
 * whichever node of a cluster fills the outbox.
 */
int
route_ssf_verify(struct req *q)
{
	struct store_tx *tx = NULL;
	struct actor who;
	struct qerr e = { 0 };
	const char *id;
	const json_t *state;
	json_t *o, *st = NULL, *d = NULL;

	if (conf(q) == NULL || (o = req_json(q)) == NULL)
		return 0;
	state = json_object_get(o, "state");
	if ((id = stream_id_arg(q, o)) == NULL)
		goto out;
	if (state != NULL && (!json_is_string(state) || json_string_length(state) > 256)) {
		invalid(q, "state", "%s", "must be a string of at most 256 characters");
		goto out;
	}
	if (begin(q, false, &tx) != 0)
		goto out;
	st = load_stream(q, tx, id);
	store_tx_rollback(tx);
	if (st == NULL)
		goto out;
	req_actor(q, &who);
	if ((d = json_pack("{s:s, s:O?}", "stream_id", id, "state", state)) == NULL)
		req_error(q, 500, "internal", NULL, "%s", "out of memory");
	else if (engine_audit_as(q->api->eng, &who, SSF_VERIFY_AUDIT, NULL, d, &e) != 0)
		req_qerr(q, e.code ? e.code : QERR_INTERNAL, &e);
	else
		req_reply(q, 204, NULL);
out:
	json_decref(d);
	json_decref(st);
	json_decref(o);
	return 0;
}

struct poll {
	json_t *sets;
	int max;
	int n;
	bool more;
};

static int
poll_cb(const char *key, const char *text, int64_t seq, void *arg)
{
	struct poll *p = arg;

	(void)seq;
	if (p->n == p->max) {
		p->more = true;
		return 0;
	}
	p->n++;
	return json_object_set_new(p->sets, key, json_string(text)) == 0 ? 0 :
	    QERR_NOMEM;
}

static int
poll_seen(const char *key, const char *text, int64_t seq, void *arg)
{
	(void)key;
	(void)text;
	(void)seq;
	*(bool *)arg = true;
	return 0;
}

static int
poll_acks(struct store_tx *tx, const char *id, json_t *o, struct qerr *e)
{
	const char *jti;
	json_t *v;
	size_t i;
	int r;

	json_array_foreach(json_object_get(o, "ack"), i, v)
		if ((jti = json_string_value(v)) != NULL &&
		    (r = store_ssf_outbox_ack(tx, id, jti, engine_now_ms(), e)) != 0 &&
		    r != QERR_NOT_FOUND)
			return r;
	json_object_foreach(json_object_get(o, "setErrs"), jti, v)
		if ((r = store_ssf_outbox_ack(tx, id, jti, engine_now_ms(), e)) != 0 &&
		    r != QERR_NOT_FOUND)
			return r;
	return 0;
}

/* The stream's first max pending SETs as the poll's answer. */
static int
poll_answer(struct req *q, const char *id, int max)
{
	struct poll p = { .max = max };
	struct store_tx *tx = NULL;
	struct qerr e = { 0 };
	int r;

	if (begin(q, false, &tx) != 0)
		return 0;
	if ((p.sets = json_object()) == NULL)
		r = qerr_set(&e, QERR_NOMEM, NULL, "out of memory");
	else
		r = store_ssf_outbox_pending(tx, id, p.max + 1, poll_cb, &p, &e);
	store_tx_rollback(tx);
	if (r != 0) {
		json_decref(p.sets);
		return req_qerr(q, r, &e);
	}
	return req_reply(q, 200, json_pack("{s:o, s:b}", "sets", p.sets, "moreAvailable",
	    p.more));
}

/* maxEvents (default 10, at most POLL_MAX) and returnImmediately (default false: a
 * long poll); -1 with the 400 set. */
static int
poll_args(struct req *q, const json_t *o, int *max, bool *now)
{
	const json_t *mx = json_object_get(o, "maxEvents");
	const json_t *ri = json_object_get(o, "returnImmediately");

	if (mx != NULL && (!json_is_integer(mx) || json_integer_value(mx) < 0 ||
	    json_integer_value(mx) > POLL_MAX))
		return invalid(q, "maxEvents", "must be a whole number in [0, %d]",
		    POLL_MAX);
	if (ri != NULL && !json_is_boolean(ri))
		return invalid(q, "returnImmediately", "%s", "must be true or false");
	*max = mx != NULL ? (int)json_integer_value(mx) : 10;
	/* maxEvents 0 only acknowledges (RFC 8936 2.4): nothing to wait for. */
	*now = json_is_true(ri) || *max == 0;
	return 0;
}

/* In MHD's thread again, once the stream has a SET or the wait is over. */
static int
poll_resume(struct req *q)
{
	json_t *o = json_loadb(q->body, q->len, 0, NULL);
	int max = 10;
	bool now;

	q->resume = NULL;
	if (poll_args(q, o, &max, &now) == 0)
		poll_answer(q, q->arg[0], max);
	json_decref(o);
	return 0;
}

/* The long poll's wait: SSF_WAIT_MAX_S, or less when connections idle out sooner. */
static int
wait_s(const struct req *q)
{
	int idle = (int)q->api->cfg->idle_timeout_s / 2;

	return idle < 1 ? 1 : idle < SSF_WAIT_MAX_S ? idle : SSF_WAIT_MAX_S;
}

/* RFC 8936 2.4: acknowledgements (ack, setErrs) first, then up to maxEvents SETs;
 * with none pending and returnImmediately false, the answer waits for one. */
int
route_ssf_poll(struct req *q)
{
	struct store_tx *tx = NULL;
	struct qerr e = { 0 };
	const char *id = q->arg[0];
	json_t *o, *st = NULL;
	int r, max;
	bool now, any = false;

	if (conf(q) == NULL || (o = req_json(q)) == NULL)
		return 0;
	if (poll_args(q, o, &max, &now) != 0 || begin(q, true, &tx) != 0)
		goto out;
	if ((st = load_stream(q, tx, id)) == NULL) {
		store_tx_rollback(tx);
		goto out;
	}
	if ((r = poll_acks(tx, id, o, &e)) == 0 && (now || (r = store_ssf_outbox_pending(
	    tx, id, 1, poll_seen, &any, &e)) == 0))
		r = store_tx_commit(tx, &e);
	else
		store_tx_rollback(tx);
	if (r != 0)
		req_qerr(q, r, &e);
	else if (now || any || !routes_ssf_wait(q, id, wait_s(q), poll_resume))
		poll_answer(q, id, max);
out:
	json_decref(st);
	json_decref(o);
	return 0;
}

static int
jwks(struct req *q)
{
	const struct ssf_conf *c;

	if ((c = conf(q)) == NULL)
		return 0;
	return req_reply(q, 200, json_deep_copy(c->jwks));
}

#define WELL_KNOWN	"/.well-known/ssf-configuration"

bool
routes_ssf_path(const char *path)
{
	return strncmp(path, "/ssf/", 5) == 0 || strcmp(path, WELL_KNOWN) == 0 ||
	    strncmp(path, WELL_KNOWN "/", sizeof(WELL_KNOWN)) == 0;
}

/* SSF 1.0 7.2: the metadata of an issuer with a path is at
 * /.well-known/ssf-configuration<path>; without [ssf], only the plain path is
 * quell's (answered 404). */
static bool
metadata_path(struct req *q)
{
	const struct ssf_conf *c = engine_ssf_conf(q->api->eng);
	struct kit_url u;

	if (strcmp(q->path, WELL_KNOWN) == 0)
		return true;
	if (c == NULL || kit_url_parse(c->issuer, "https http", &u) != 0 || *u.path == '\0')
		return false;
	return strncmp(q->path, WELL_KNOWN, sizeof(WELL_KNOWN) - 1) == 0 &&
	    strcmp(q->path + sizeof(WELL_KNOWN) - 1, u.path) == 0;
}

bool
routes_ssf_public(struct req *q)
{
	bool get = strcmp(q->method, "GET") == 0;

	if (get && metadata_path(q)) {
		q->route = WELL_KNOWN;
		metadata(q);
		return true;
	}
	if (get && strcmp(q->path, "/ssf/jwks.json") == 0) {
		q->route = "/ssf/jwks.json";
		jwks(q);
		return true;
	}
	if (strncmp(q->path, "/ssf/receive/", 13) == 0) {
		q->route = "/ssf/receive/{}";
		routes_ssf_receive(q, q->path + 13);
		return true;
	}
	return false;
}
