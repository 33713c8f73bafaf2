/*
 * quell as an SSF receiver (ssf.h): a SET from the transmitter of an
 * [ssf_receiver], pushed to quell (src/api/routes_ssf_receive.c) or polled by it
 * (ssf.c), is taken when its signature holds against the transmitter's JWK Set
 * (fetched from jwks_uri, cached, fetched again for an unknown kid), and iss, aud,
 * iat (within 5 minutes) and a jti never seen before hold; it becomes an alert for
 * the disruption engine. A refusal carries RFC 8935's error and is audited as
 * ssf.refused.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jwt.h"
#include "core/log.h"
#include "engine/engine.h"
#include "engine/ssf.h"
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

int
ssf_refuse(struct ssf_refusal *f, unsigned status, const char *err, const char *fmt, ...)
{
	va_list ap;

	f->status = status;
	f->err = err;
	va_start(ap, fmt);
	vsnprintf(f->why, sizeof(f->why), fmt, ap);
	va_end(ap);
	return -1;
}

const struct system_config *
ssf_receiver_find(const struct config *cfg, const char *name)
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
    struct ssf_refusal *f)
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
		return ssf_refuse(f, 400, r == QERR_INVALID || r == QERR_TOO_LARGE ?
		    "invalid_request" : "invalid_key", "%s", e.msg);
	if (r != 0)
		return ssf_refuse(f, 503, "invalid_key", "the transmitter's keys: %s", e.msg);
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
check_claims(struct store *st, const struct system_config *rc, json_t *cl,
    struct ssf_refusal *f)
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
		return ssf_refuse(f, 400, "invalid_issuer", "iss '%s' is not '%s'", iss ? iss :
		    "", key(rc, "issuer"));
	if (!aud_has(json_object_get(cl, "aud"), key(rc, "audience")))
		return ssf_refuse(f, 400, "invalid_audience", "aud does not name '%s'",
		    key(rc, "audience"));
	if (!json_is_integer(iat) || json_integer_value(iat) < now - IAT_SKEW_S ||
	    json_integer_value(iat) > now + IAT_SKEW_S)
		return ssf_refuse(f, 400, "invalid_request", "iat is not within %d seconds of "
		    "now", IAT_SKEW_S);
	if (jti == NULL || *jti == '\0' || strlen(jti) > 256 ||
	    !json_is_object(json_object_get(cl, "events")))
		return ssf_refuse(f, 400, "invalid_request", "%s", "a SET needs a jti of at "
		    "most 256 characters and an events object");
	if ((r = store_tx_begin(st, true, &tx, &e)) == 0 &&
	    (r = store_ssf_jti_claim(tx, iss, jti, engine_now_ms(), &fresh, &e)) == 0)
		r = store_tx_commit(tx, &e);
	else if (tx != NULL)
		store_tx_rollback(tx);
	if (r != 0)
		return ssf_refuse(f, 503, "invalid_request", "%s", e.msg);
	if (!fresh) {
		f->replay = true;
		return ssf_refuse(f, 400, "invalid_request", "jti '%s' was received before",
		    jti);
	}
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
make_alert(struct engine *eng, const struct system_config *rc, json_t *cl,
    struct ssf_refusal *f)
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
		return ssf_refuse(f, 400, "invalid_request", "%s", "the subject must be an "
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
		return ssf_refuse(f, 503, "invalid_request", "%s", "out of memory");
	}
	a.severity = strcmp(a.category, "credential_theft") == 0 ? ALERT_SEV_HIGH :
	    ALERT_SEV_MEDIUM;
	/* The pusher posts as its section's role (default detector), under the access
	 * policy like any poster: what it may contain is what that role may. */
	sub.id = src;
	sub.name = src;
	sub.role = key(rc, "role") ? key(rc, "role") : "detector";
	if ((r = policy_grants(engine_policy(eng), &sub, &gs, &e)) == 0) {
		who.role = sub.role;
		who.subject = &sub;
		who.grants = &gs;
		who.perms = policy_perms(&gs);
		r = engine_alert(eng, &who, &a, &created, &e);
	}
	free(gs.g);
	alert_clear(&a);
	if (r != 0)
		return ssf_refuse(f, r == QERR_INVALID ? 400 : 503, "invalid_request", "%s",
		    e.msg);
	return 0;
}

int
ssf_receive(struct engine *eng, struct store *st, const struct system_config *rc,
    const char *set, json_t **claims, struct ssf_refusal *f)
{
	*claims = NULL;
	memset(f, 0, sizeof(*f));
	if (verify(rc, set, claims, f) != 0 || check_claims(st, rc, *claims, f) != 0)
		return -1;
	return make_alert(eng, rc, *claims, f);
}

void
ssf_receive_audit(struct engine *eng, const char *name, const char *client,
    const json_t *claims, const struct ssf_refusal *f)
{
	char who[160];
	struct qerr e = { 0 };
	json_t *d = json_pack("{s:s?, s:s, s:s}", "jti", json_string_value(
	    json_object_get(claims, "jti")), "receiver", name, "client", client);

	snprintf(who, sizeof(who), "ssf:%s", name);
	if (d != NULL && f != NULL) {
		json_object_set_new(d, "err", json_string(f->err));
		json_object_set_new(d, "description", json_string(f->why));
	}
	if (d == NULL || engine_audit(eng, who, f ? "ssf.refused" : "ssf.received", NULL,
	    d, &e) != 0)
		log_msg(LOG_LVL_ERROR, "audit of an SSF SET failed: %s", d ? e.msg :
		    "out of memory");
	json_decref(d);
}
