/*
 * quell subscribing to a transmitter (ssf.h): for an [ssf_receiver] with
 * configuration_url and push_url, the transmitter's metadata names its stream
 * configuration endpoint; quell creates a push stream there to its own receive
 * endpoint, with the token it will require as the stream's authorization header,
 * unless a stream to that endpoint exists already. The stream API is called with
 * a bearer token from a file, or one from the transmitter's OAuth token endpoint
 * (the client credentials grant, through the provider kit's token cache).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "engine/ssf.h"
#include "providers/http.h"
#include "providers/kit.h"

#define TOKEN_MAX	4096
#define POLL_BATCH	25	/* SETs asked for per poll */

static const char *
key(const struct system_config *rc, const char *k)
{
	const struct config_kv *kv = config_system_get(rc, k);

	return kv ? kv->value : NULL;
}

/* GETs or POSTs url (body: JSON), as bearer auth when set; *out the JSON answer of a
 * 2xx. */
static int
call(struct http_client *h, const char *method, const char *url, const char *auth,
    const char *body, json_t **out, struct qerr *e)
{
	struct http_header hd[3];
	struct http_request rq = { .method = method, .url = url, .body = body,
	    .body_len = body ? strlen(body) : 0, .headers = hd };
	struct http_response resp = { 0 };
	int r;

	*out = NULL;
	e->status = 0;
	hd[rq.nheaders++] = (struct http_header){ "Accept", "application/json" };
	if (body != NULL)
		hd[rq.nheaders++] = (struct http_header){ "Content-Type",
		    "application/json" };
	if (auth != NULL)
		hd[rq.nheaders++] = (struct http_header){ "Authorization", auth };
	if ((r = http_do(h, &rq, &resp, e)) != 0)
		return r;
	if (resp.status < 200 || resp.status > 299) {
		r = qerr_set(e, QERR_TRANSIENT, NULL, "%s %s answered %ld", method, url,
		    resp.status);
		e->status = (int)resp.status;
	}
	else if ((*out = json_loadb(resp.body, resp.len, 0, NULL)) == NULL)
		r = qerr_set(e, QERR_PERMANENT, NULL, "%s %s: the answer is not JSON", method,
		    url);
	http_response_clear(&resp);
	return r;
}

/* Short names (credential-compromise) as the RISC or CAEP URI; URIs as they are. */
static json_t *
events(const char *list)
{
	static const char *const caep[] = { "session-revoked", "credential-change",
	    "token-claims-change", "assurance-level-change", "device-compliance-change" };
	json_t *a = json_array();
	char name[256];
	const char *p = list ? list : "credential-compromise account-disabled "
	    "session-revoked credential-change";
	size_t n, i;
	bool is_caep;

	while (a != NULL && *p) {
		n = strcspn(p, " ");
		if (n > 0 && n < sizeof(name)) {
			snprintf(name, sizeof(name), "%.*s", (int)n, p);
			for (i = 0, is_caep = false; i < sizeof(caep) / sizeof(caep[0]); i++)
				is_caep |= strcmp(caep[i], name) == 0;
			json_array_append_new(a, strchr(name, ':') ? json_string(name) :
			    json_sprintf("%s%s", is_caep ? SSF_CAEP : SSF_RISC, name));
		}
		p += n;
		p += strspn(p, " ");
	}
	return a;
}

/* quell's stream in the transmitter's answer (one stream or a list), borrowed: to
 * push_url, or (push_url NULL) a poll stream; NULL when there is none. */
static const json_t *
find_stream(const json_t *answer, const char *push_url)
{
	const json_t *st, *d;
	const char *ep, *m;
	size_t i, n = json_is_array(answer) ? json_array_size(answer) : 1;

	for (i = 0; i < n; i++) {
		st = json_is_array(answer) ? json_array_get(answer, i) : answer;
		d = json_object_get(st, "delivery");
		ep = json_string_value(json_object_get(d, "endpoint_url"));
		m = json_string_value(json_object_get(d, "method"));
		if (ep != NULL && (push_url != NULL ? strcmp(ep, push_url) == 0 :
		    m != NULL && strcmp(m, SSF_POLL) == 0))
			return st;
	}
	return NULL;
}

static int
read_token(const struct system_config *rc, const char *k, char **out, struct qerr *e)
{
	struct kit_secret s = { 0 };
	int r;

	*out = NULL;
	if (config_system_get(rc, k) == NULL)
		return 0;
	if ((r = kit_file_read(rc, config_system_get(rc, k), KIT_FILE_SECRET |
	    KIT_FILE_ONE_LINE, TOKEN_MAX, &s, e)) != 0)
		return r;
	if ((*out = malloc(s.len + 8)) == NULL)
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	else
		snprintf(*out, s.len + 8, "Bearer %s", s.buf);
	kit_secret_clear(&s);
	return r;
}

/* The stream API's Authorization: api_token_file's bearer token, or the OAuth
 * token (stale_gen: the generation the API just refused, renewed; 0 none). */
static int
api_auth(struct ssf_sub *sub, unsigned stale_gen, char **auth, unsigned *gen,
    struct qerr *e)
{
	*gen = 0;
	if (!sub->oauth_on)
		return read_token(sub->rc, "api_token_file", auth, e);
	return kit_oauth_get(&sub->oauth, stale_gen, auth, gen, e);
}

/* GET (body NULL) or POST to the stream API; a 401 to an OAuth token renews it and
 * asks once more. */
static int
api_call(struct http_client *h, struct ssf_sub *sub, const char *ep, const char *body,
    json_t **out, struct qerr *e)
{
	char *auth = NULL;
	unsigned gen;
	int r;

	if ((r = api_auth(sub, 0, &auth, &gen, e)) != 0)
		return r;
	r = call(h, body ? "POST" : "GET", ep, auth, body, out, e);
	if (r != 0 && sub->oauth_on && e->status == 401) {
		kit_free_str(auth);
		auth = NULL;
		if ((r = api_auth(sub, gen, &auth, &gen, e)) == 0)
			r = call(h, body ? "POST" : "GET", ep, auth, body, out, e);
	}
	kit_free_str(auth);
	return r;
}

/* A poll stream's endpoint (the transmitter's, RFC 8936) is where quell polls. */
static int
take_poll_url(struct ssf_sub *sub, const json_t *stream, struct qerr *e)
{
	const char *ep = json_string_value(json_object_get(json_object_get(stream,
	    "delivery"), "endpoint_url"));
	struct kit_url u;

	if (ep == NULL || kit_url_parse(ep, "https http", &u) != 0)
		return qerr_set(e, QERR_PERMANENT, "delivery.endpoint_url", "the "
		    "transmitter's poll stream has no http(s) endpoint_url");
	free(sub->poll_url);
	if ((sub->poll_url = strdup(ep)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

int
ssf_subscribe(struct http_client *h, struct ssf_sub *sub, struct qerr *e)
{
	const struct system_config *rc = sub->rc;
	char *inbound = NULL, *body = NULL;
	json_t *meta = NULL, *have = NULL, *req = NULL, *made = NULL;
	const char *ep, *push = key(rc, "push_url");
	const json_t *st;
	int r;

	if ((r = call(h, "GET", key(rc, "configuration_url"), NULL, NULL, &meta, e)) != 0)
		return r;
	if ((ep = json_string_value(json_object_get(meta, "configuration_endpoint"))) ==
	    NULL) {
		r = qerr_set(e, QERR_PERMANENT, "configuration_url", "the transmitter's "
		    "metadata names no configuration_endpoint");
		goto out;
	}
	if ((!sub->poll && (r = read_token(rc, "token_file", &inbound, e)) != 0) ||
	    (r = api_call(h, sub, ep, NULL, &have, e)) != 0)
		goto out;
	if ((st = find_stream(have, push)) != NULL) {
		r = sub->poll ? take_poll_url(sub, st, e) : 0;
		goto out;
	}
	req = sub->poll ? json_pack("{s:{s:s}, s:o, s:s}", "delivery", "method", SSF_POLL,
	    "events_requested", events(key(rc, "events")), "description", "quell") :
	    json_pack("{s:{s:s, s:s, s:s}, s:o, s:s}", "delivery", "method", SSF_PUSH,
	    "endpoint_url", push, "authorization_header", inbound, "events_requested",
	    events(key(rc, "events")), "description", "quell");
	if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((r = api_call(h, sub, ep, body, &made, e)) != 0 ||
	    (sub->poll && (r = take_poll_url(sub, made, e)) != 0))
		goto out;
	log_event(LOG_LVL_INFO, "ssf.subscribed", LOG_FIELDS(LOG_S("receiver",
	    rc->name), LOG_S("stream", json_string_value(json_object_get(made,
	    "stream_id")))), "SSF receiver %s: subscribed, stream %s", rc->name,
	    json_string_value(json_object_get(made, "stream_id")));
out:
	kit_free_str(body);
	kit_free_str(inbound);
	json_decref(made);
	json_decref(req);
	json_decref(have);
	json_decref(meta);
	return r;
}

/* What the next poll acknowledges: sent, so forgotten. */
static void
acks_sent(struct ssf_sub *sub)
{
	json_array_clear(sub->acks);
	json_object_clear(sub->errs);
}

/* One polled SET: taken (acknowledged), refused for good (setErrs) or left. */
static void
take_set(struct engine *eng, struct store *st, struct ssf_sub *sub, const char *jti,
    const char *jwt)
{
	struct ssf_refusal f;
	json_t *cl = NULL;
	bool ok = ssf_receive(eng, st, sub->rc, jwt, &cl, &f) == 0;

	ssf_receive_audit(eng, sub->rc->name, sub->poll_url, cl, ok ? NULL : &f);
	/* The jti the transmitter filed it under is what it is acknowledged by. */
	if (ok || f.replay)
		json_array_append_new(sub->acks, json_string(jti));
	else if (f.status == 400 || f.status == 401)
		json_object_set_new(sub->errs, jti, json_pack("{s:s, s:s}", "err", f.err,
		    "description", f.why));
	json_decref(cl);
}

int
ssf_poll_receive(struct http_client *h, struct engine *eng, struct store *st,
    struct ssf_sub *sub, bool *more, struct qerr *e)
{
	json_t *req, *ans = NULL, *sets, *v;
	char *body = NULL;
	const char *jti;
	int r;

	*more = false;
	req = json_pack("{s:O, s:O, s:i, s:b}", "ack", sub->acks, "setErrs", sub->errs,
	    "maxEvents", POLL_BATCH, "returnImmediately", 1);
	if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		json_decref(req);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	json_decref(req);
	r = api_call(h, sub, sub->poll_url, body, &ans, e);
	free(body);
	if (r != 0)
		return r;
	acks_sent(sub);
	if (!json_is_object(sets = json_object_get(ans, "sets"))) {
		json_decref(ans);
		return qerr_set(e, QERR_TRANSIENT, NULL, "%s answered no sets object",
		    sub->poll_url);
	}
	json_object_foreach(sets, jti, v)
		if (json_is_string(v))
			take_set(eng, st, sub, jti, json_string_value(v));
	*more = json_is_true(json_object_get(ans, "moreAvailable")) ||
	    json_array_size(sub->acks) > 0 || json_object_size(sub->errs) > 0;
	json_decref(ans);
	return 0;
}
