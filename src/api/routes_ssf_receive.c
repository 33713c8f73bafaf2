/*
 * quell as an SSF receiver: POST /ssf/receive/<name> takes a SET pushed by the
 * transmitter of [ssf_receiver "name"] (RFC 8935). A SET is taken when the pusher
 * holds the section's bearer token, its signature holds against the transmitter's
 * JWK Set (fetched from jwks_uri, cached, fetched again for an unknown kid), and iss,
 * aud, iat (within 5 minutes) and a jti never seen before hold; it becomes an alert
 * for the disruption engine. Every refusal is answered with RFC 8935's error and
 * audited as ssf.refused.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <sodium.h>

#include "core/jwt.h"
#include "core/log.h"
#include "engine/ssf.h"
#include "internal.h"
#include "providers/http.h"
#include "providers/kit.h"

#define SET_MAX		(64 * 1024)
#define IAT_SKEW_S	300
#define JWKS_REFRESH_MS	60000
#define RECEIVERS_MAX	32

/* The JWK Sets of the receivers' transmitters, by section name. */
struct cached {
	char name[128];
	struct jwt_keyset *ks;
	int64_t fetched_ms;
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cached cache[RECEIVERS_MAX];
static struct http_client *http;

struct refusal {
	unsigned status;
	const char *err;
	char why[256];
};

static int
refuse(struct refusal *f, unsigned status, const char *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
refuse(struct refusal *f, unsigned status, const char *err, const char *fmt, ...)
{
	va_list ap;

	f->status = status;
	f->err = err;
	va_start(ap, fmt);
	vsnprintf(f->why, sizeof(f->why), fmt, ap);
	va_end(ap);
	return -1;
}

static const struct system_config *
receiver(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->npolicy; i++)
		if (strcmp(cfg->policy[i].kind, "ssf_receiver") == 0 &&
		    strcmp(cfg->policy[i].name, name) == 0)
			return &cfg->policy[i];
	return NULL;
}

static const char *
key(const struct system_config *rc, const char *k)
{
	const struct config_kv *kv = config_system_get(rc, k);

	return kv ? kv->value : NULL;
}

/* The pusher's Authorization must be "Bearer <token_file's token>". */
static int
check_bearer(struct req *q, const struct system_config *rc, struct refusal *f)
{
	const char *h = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
	    "Authorization");
	struct kit_secret tok = { 0 };
	struct qerr e = { 0 };
	int r;

	if (config_system_get(rc, "token_file") == NULL)
		return refuse(f, 500, "access_denied", "receiver '%s' has no token_file",
		    rc->name);
	if (kit_file_read(rc, config_system_get(rc, "token_file"), KIT_FILE_SECRET |
	    KIT_FILE_ONE_LINE, 4096, &tok, &e) != 0)
		return refuse(f, 500, "access_denied", "%s", e.msg);
	r = h != NULL && strncmp(h, "Bearer ", 7) == 0 && strlen(h + 7) == tok.len &&
	    sodium_memcmp(h + 7, tok.buf, tok.len) == 0 ? 0 : -1;
	kit_secret_clear(&tok);
	if (r != 0)
		return refuse(f, 401, "authentication_failed", "%s", h == NULL ?
		    "no Authorization header" : "the bearer token is not the receiver's");
	return 0;
}

/* GETs uri; the 200's body is the caller's to clear. */
static int
get(const char *uri, struct http_response *resp, struct qerr *e)
{
	struct http_options ho = { .timeout_ms = 10000, .max_response = JWT_JWKS_MAX_BYTES };
	struct http_request rq = { .method = "GET", .url = uri };
	int r;

	if (http == NULL && (r = http_client_new(&ho, &http, e)) != 0)
		return r;
	if ((r = http_do(http, &rq, resp, e)) != 0)
		return r;
	if (resp->status == 200)
		return 0;
	http_response_clear(resp);
	return qerr_set(e, QERR_TRANSIENT, NULL, "%s answered %ld", uri, resp->status);
}

/* The JWK Set at jwks_uri, or at the jwks_uri of the transmitter's metadata. */
static int
fetch_jwks(const struct system_config *rc, struct jwt_keyset **out, struct qerr *e)
{
	struct http_response resp = { 0 };
	const char *uri = key(rc, "jwks_uri");
	json_t *meta = NULL;
	int r;

	if (uri == NULL) {
		if ((r = get(key(rc, "configuration_url"), &resp, e)) != 0)
			return r;
		meta = json_loadb(resp.body, resp.len, 0, NULL);
		http_response_clear(&resp);
		if ((uri = json_string_value(json_object_get(meta, "jwks_uri"))) == NULL) {
			json_decref(meta);
			return qerr_set(e, QERR_TRANSIENT, "configuration_url", "the "
			    "transmitter's metadata names no jwks_uri");
		}
	}
	if ((r = get(uri, &resp, e)) == 0)
		r = jwt_jwks_parse(resp.body, resp.len, out, e);
	http_response_clear(&resp);
	json_decref(meta);
	return r;
}

/* Verifies under cache_mu; an unknown kid fetches the set again, at most once a
 * minute. */
static int
verify(const struct system_config *rc, const char *set, json_t **claims,
    struct refusal *f)
{
	struct cached *c = NULL;
	struct qerr e = { 0 };
	json_t *hdr = NULL;
	size_t i;
	int r;

	pthread_mutex_lock(&cache_mu);
	for (i = 0; i < RECEIVERS_MAX && c == NULL; i++)
		if (strcmp(cache[i].name, rc->name) == 0 || cache[i].name[0] == '\0')
			c = &cache[i];
	if (c != NULL && c->name[0] == '\0')
		snprintf(c->name, sizeof(c->name), "%s", rc->name);
	r = c == NULL ? qerr_set(&e, QERR_INTERNAL, NULL, "too many receivers") : 0;
	for (i = 0; r == 0 && i < 2; i++) {
		if (c->ks == NULL || (i == 1 && engine_now_ms() - c->fetched_ms >
		    JWKS_REFRESH_MS)) {
			jwt_keyset_free(c->ks);
			c->ks = NULL;
			c->fetched_ms = engine_now_ms();
			if ((r = fetch_jwks(rc, &c->ks, &e)) != 0)
				break;
		}
		r = jwt_verify(set, SET_MAX, c->ks, &hdr, claims, &e);
		if (r != QERR_NOT_FOUND)
			break;
	}
	pthread_mutex_unlock(&cache_mu);
	json_decref(hdr);
	if (r == QERR_NOT_FOUND || r == QERR_UNAUTHENTICATED || r == QERR_INVALID ||
	    r == QERR_TOO_LARGE)
		return refuse(f, 400, r == QERR_INVALID || r == QERR_TOO_LARGE ?
		    "invalid_request" : "invalid_key", "%s", e.msg);
	if (r != 0)
		return refuse(f, 503, "invalid_key", "the transmitter's keys: %s", e.msg);
	return 0;
}

static bool
aud_has(const json_t *aud, const char *want)
{
	const json_t *v;
	size_t i;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
			return true;
	return false;
}

static int
check_claims(struct req *q, const struct system_config *rc, json_t *cl,
    struct refusal *f)
{
	const char *iss = json_string_value(json_object_get(cl, "iss"));
	const char *jti = json_string_value(json_object_get(cl, "jti"));
	json_t *iat = json_object_get(cl, "iat");
	int64_t now = engine_now_ms() / 1000;
	struct store_tx *tx = NULL;
	struct qerr e = { 0 };
	bool fresh = false;
	int r;

	if (iss == NULL || strcmp(iss, key(rc, "issuer")) != 0)
		return refuse(f, 400, "invalid_issuer", "iss '%s' is not '%s'", iss ? iss :
		    "", key(rc, "issuer"));
	if (!aud_has(json_object_get(cl, "aud"), key(rc, "audience")))
		return refuse(f, 400, "invalid_audience", "aud does not name '%s'",
		    key(rc, "audience"));
	if (!json_is_integer(iat) || json_integer_value(iat) < now - IAT_SKEW_S ||
	    json_integer_value(iat) > now + IAT_SKEW_S)
		return refuse(f, 400, "invalid_request", "iat is not within %d seconds of "
		    "now", IAT_SKEW_S);
	if (jti == NULL || *jti == '\0' || strlen(jti) > 256 ||
	    !json_is_object(json_object_get(cl, "events")))
		return refuse(f, 400, "invalid_request", "%s", "a SET needs a jti of at "
		    "most 256 characters and an events object");
	if ((r = store_tx_begin(q->api->st, true, &tx, &e)) == 0 &&
	    (r = store_ssf_jti_claim(tx, iss, jti, engine_now_ms(), &fresh, &e)) == 0)
		r = store_tx_commit(tx, &e);
	else if (tx != NULL)
		store_tx_rollback(tx);
	if (r != 0)
		return refuse(f, 503, "invalid_request", "%s", e.msg);
	if (!fresh)
		return refuse(f, 400, "invalid_request", "jti '%s' was received before",
		    jti);
	return 0;
}

/* The event's category: the section's "map" (event name:category ...) or the
 * defaults. */
static const char *
category(const struct system_config *rc, const char *ev, char *buf, size_t n)
{
	const char *name = strrchr(ev, '/') ? strrchr(ev, '/') + 1 : ev;
	const char *map = key(rc, "map"), *p;
	size_t len = strlen(name);

	for (p = map; p != NULL && (p = strstr(p, name)) != NULL; p += len)
		if ((p == map || p[-1] == ' ') && p[len] == ':') {
			snprintf(buf, n, "%.*s", (int)strcspn(p + len + 1, " "), p + len + 1);
			return buf;
		}
	if (strcmp(name, "credential-compromise") == 0)
		return "credential_theft";
	return "suspicious_activity";
}

/*
 * RFC 9493 to an alert's account entity (a complex subject by its user): email is
 * the account's UPN; iss_sub (of the transmitter's own iss) and opaque are the
 * account's id in the transmitter's system, of the alert id type the section's
 * sub_id_type names (okta_id, entra_id, ...). NULL: quell cannot tell the account.
 */
static const char *
subject_account(const struct system_config *rc, const json_t *sub,
    const char **id_type)
{
	const char *fmt = json_string_value(json_object_get(sub, "format"));

	if (fmt != NULL && strcmp(fmt, "complex") == 0)
		sub = json_object_get(sub, "user");
	fmt = json_string_value(json_object_get(sub, "format"));
	*id_type = "upn";
	if (fmt != NULL && strcmp(fmt, "email") == 0)
		return json_string_value(json_object_get(sub, "email"));
	if (fmt == NULL || (*id_type = key(rc, "sub_id_type")) == NULL)
		return NULL;
	if (strcmp(fmt, "opaque") == 0)
		return json_string_value(json_object_get(sub, "id"));
	if (strcmp(fmt, "iss_sub") == 0 && json_string_value(json_object_get(sub,
	    "iss")) != NULL && strcmp(json_string_value(json_object_get(sub, "iss")),
	    key(rc, "issuer")) == 0)
		return json_string_value(json_object_get(sub, "sub"));
	return NULL;
}

static int
make_alert(struct req *q, const struct system_config *rc, json_t *cl,
    struct refusal *f)
{
	const char *ev = NULL, *email, *id_type;
	char cat[64], src[160], title[300];
	struct alert a = { 0 };
	struct actor who = { .id = src, .name = src, .kind = "system" };
	struct subject sub = { 0 };
	struct grant_set gs = { 0 };
	struct qerr e = { 0 };
	json_t *body = NULL, *sid;
	bool created = false;
	int r;

	json_object_foreach(json_object_get(cl, "events"), ev, body)
		break;
	sid = json_object_get(cl, "sub_id");
	if (sid == NULL)
		sid = json_object_get(body, "subject");
	if ((email = subject_account(rc, sid, &id_type)) == NULL)
		return refuse(f, 400, "invalid_request", "%s", "the subject must be an "
		    "email, or with sub_id_type set an opaque or iss_sub of the issuer, "
		    "alone or as a complex subject's user");
	snprintf(src, sizeof(src), "ssf:%s", rc->name);
	snprintf(title, sizeof(title), "SSF %s", ev);
	a.source = strdup(src);
	a.external_id = strdup(json_string_value(json_object_get(cl, "jti")));
	a.time = json_integer_value(json_object_get(cl, "iat")) * 1000;
	a.title = strdup(title);
	a.category = strdup(category(rc, ev, cat, sizeof(cat)));
	a.confidence = 90;
	a.received_us = engine_now_us();
	a.received_at = a.received_us / 1000;
	if ((a.entities = calloc(1, sizeof(*a.entities))) != NULL) {
		a.nentities = 1;
		a.entities[0].kind = strdup("account");
		a.entities[0].id_type = strdup(id_type);
		a.entities[0].value = strdup(email);
	}
	if (a.source == NULL || a.external_id == NULL || a.title == NULL ||
	    a.category == NULL || a.entities == NULL || a.entities[0].kind == NULL ||
	    a.entities[0].id_type == NULL || a.entities[0].value == NULL) {
		alert_clear(&a);
		return refuse(f, 503, "invalid_request", "%s", "out of memory");
	}
	a.severity = strcmp(a.category, "credential_theft") == 0 ? ALERT_SEV_HIGH :
	    ALERT_SEV_MEDIUM;
	/* The pusher posts as its section's role (default detector), under the access
	 * policy like any poster: what it may contain is what that role may. */
	sub.id = src;
	sub.name = src;
	sub.role = key(rc, "role") ? key(rc, "role") : "detector";
	if ((r = policy_grants(engine_policy(q->api->eng), &sub, &gs, &e)) == 0) {
		who.role = sub.role;
		who.subject = &sub;
		who.grants = &gs;
		who.perms = policy_perms(&gs);
		r = engine_alert(q->api->eng, &who, &a, &created, &e);
	}
	free(gs.g);
	alert_clear(&a);
	if (r != 0)
		return refuse(f, r == QERR_INVALID ? 400 : 503, "invalid_request", "%s",
		    e.msg);
	return 0;
}

static void
audit(struct req *q, const char *name, const char *event, json_t *detail)
{
	char who[160];
	struct qerr e = { 0 };

	snprintf(who, sizeof(who), "ssf:%s", name);
	json_object_set_new(detail, "receiver", json_string(name));
	json_object_set_new(detail, "client", json_string(req_client(q)));
	if (engine_audit(q->api->eng, who, event, NULL, detail, &e) != 0)
		log_msg(LOG_LVL_ERROR, "audit of an SSF push failed: %s", e.msg);
}

void
routes_ssf_receive(struct req *q, const char *name)
{
	const struct system_config *rc = receiver(q->api->cfg, name);
	struct refusal f = { .status = 0 };
	json_t *cl = NULL, *d;

	if (strcmp(q->method, "POST") != 0) {
		q->allow = "POST";
		req_error(q, 405, "method_not_allowed", NULL, "%s", "a SET is POSTed");
		return;
	}
	if (rc == NULL) {
		req_error(q, 404, "not_found", NULL, "no [ssf_receiver \"%.100s\"]", name);
		return;
	}
	if (check_bearer(q, rc, &f) == 0) {
		if (q->too_large || q->body == NULL || q->len == 0)
			refuse(&f, 400, "invalid_request", "%s", "the body must be one SET "
			    "(application/secevent+jwt) of at most the server's max_body");
		else if (verify(rc, q->body, &cl, &f) == 0 && check_claims(q, rc, cl, &f) == 0)
			make_alert(q, rc, cl, &f);
	}
	d = json_pack("{s:s?}", "jti", json_string_value(json_object_get(cl, "jti")));
	if (f.status == 0) {
		audit(q, name, "ssf.received", d);
		req_reply(q, 202, NULL);
	} else {
		json_object_set_new(d, "err", json_string(f.err));
		json_object_set_new(d, "description", json_string(f.why));
		audit(q, name, "ssf.refused", d);
		req_reply(q, f.status, json_pack("{s:s, s:s}", "err", f.err, "description",
		    f.why));
	}
	json_decref(d);
	json_decref(cl);
}
