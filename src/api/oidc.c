/*
 * OpenID Connect bearer tokens. The JWK Set comes from a file or an https URL; the
 * key set in use is reference-counted so that a reload swaps it under a short lock
 * while requests still verifying hold the old one. An unknown kid is how an issuer's
 * key rotation shows, so it triggers a reload, but at most once a minute: a stream of
 * forged kids must not turn quelld into a fetch amplifier against the issuer.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "core/clock.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/rbac.h"
#include "core/strlist.h"
#include "oidc.h"
#include "providers/http.h"
#include "providers/kit.h"

#define RELOAD_INTERVAL_S	60
#define LEEWAY_DEFAULT		60
#define LEEWAY_MAX		300
#define TOKEN_DEFAULT		16384
#define TOKEN_MIN		1024
#define TOKEN_MAX		65536
#define CLAIM_TEXT_MAX		256
#define CLAIM_LIST_MAX		256
#define AUD_LIST_MAX		64
#define FETCH_CONNECT_MS	5000L
#define FETCH_TOTAL_MS		10000L
#define URL_MAX			2048
#define CLIENT_ID_MAX		256
#define SECRET_MAX		1024
#define CODE_MAX		4096
#define ISSUER_TEXT_MAX		200

struct keys {
	struct jwt_keyset *ks;
	unsigned refs;
};

struct oidc {
	char *issuer;
	char *audience;
	char *jwks_file;
	char *jwks_url;
	char *ca_file;
	char *username_claim;
	char *default_role;
	/* The console's sign-in (authorization code + PKCE); unset: bearer JWTs only. */
	char *client_id;
	struct kit_secret client_secret;	/* from client_secret_file */
	char *client_secret_file;
	char *authorization_endpoint;
	char *token_endpoint;
	char *redirect_uri;
	bool plaintext;
	bool holds_secret;	/* reads client_secret_file: no exchange elsewhere */
	long leeway;
	size_t max_token;
	pthread_mutex_t mu;	/* keys, its refs, next_reload */
	struct keys *keys;	/* NULL until a load succeeds */
	time_t next_reload;	/* monotonic seconds; 0: the first reload is free */
	struct http_client *http;	/* the JWK Set and the token endpoint */
};

/* ------------------------------------------------------------------- key set */

static struct keys *
keys_get(struct oidc *o)
{
	struct keys *k;

	pthread_mutex_lock(&o->mu);
	if ((k = o->keys) != NULL)
		k->refs++;
	pthread_mutex_unlock(&o->mu);
	return k;
}

static void
keys_put(struct oidc *o, struct keys *k)
{
	bool last;

	if (k == NULL)
		return;
	pthread_mutex_lock(&o->mu);
	last = --k->refs == 0;
	pthread_mutex_unlock(&o->mu);
	if (last) {
		jwt_keyset_free(k->ks);
		free(k);
	}
}

/* Makes ks current (taking it); 0 or QERR_NOMEM. */
static int
keys_install(struct oidc *o, struct jwt_keyset *ks, struct qerr *e)
{
	struct keys *k, *old;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		jwt_keyset_free(ks);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	k->ks = ks;
	k->refs = 1;	/* o's own reference */
	pthread_mutex_lock(&o->mu);
	old = o->keys;
	o->keys = k;
	pthread_mutex_unlock(&o->mu);
	keys_put(o, old);
	return 0;
}

/* ------------------------------------------------------------ loading JWKS */

static int
fetch_url(const struct oidc *o, char **buf, size_t *len, struct qerr *e)
{
	const struct http_header hdrs[] = { { "Accept", "application/json" } };
	struct http_request req = { .method = "GET", .url = o->jwks_url, .headers = hdrs,
	    .nheaders = 1 };
	struct http_response resp = { 0 };
	int r;

	*buf = NULL;
	if ((r = http_do(o->http, &req, &resp, e)) != 0)
		return r == QERR_PERMANENT && strstr(e->msg, "larger than") != NULL ?
		    qerr_set(e, QERR_TOO_LARGE, NULL, "the JWK Set is larger than %d bytes",
		    JWT_JWKS_MAX_BYTES) : r == QERR_NOMEM ? r : (e->code = QERR_TRANSIENT);
	if (resp.status != 200)
		r = qerr_set(e, QERR_TRANSIENT, NULL, "HTTP status %ld", resp.status);
	else {
		*buf = resp.body;
		*len = resp.len;
		resp.body = NULL;
	}
	http_response_clear(&resp);
	return r;
}

static int
read_file(const char *path, char **buf, size_t *len, struct qerr *e)
{
	FILE *f = fopen(path, "rb");
	char *b;
	size_t n;

	*buf = NULL;
	if (f == NULL)
		return qerr_set(e, QERR_IO, NULL, "cannot open %s", path);
	if ((b = malloc(JWT_JWKS_MAX_BYTES + 2)) == NULL) {
		fclose(f);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	n = fread(b, 1, JWT_JWKS_MAX_BYTES + 1, f);
	if (ferror(f) || n > JWT_JWKS_MAX_BYTES) {
		fclose(f);
		free(b);
		return qerr_set(e, QERR_IO, NULL, "cannot read %s (at most %d bytes)", path,
		    JWT_JWKS_MAX_BYTES);
	}
	fclose(f);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

static int
load_keys(struct oidc *o, struct qerr *e)
{
	struct jwt_keyset *ks = NULL;
	char *buf = NULL;
	size_t len = 0;
	int r;

	r = o->jwks_url != NULL ? fetch_url(o, &buf, &len, e) :
	    read_file(o->jwks_file, &buf, &len, e);
	if (r == 0 && (r = jwt_jwks_parse(buf, len, &ks, e)) == 0)
		r = keys_install(o, ks, e);
	free(buf);
	return r;
}

/* Claims the reload slot when the last reload is a minute old. */
static bool
reload_due(struct oidc *o)
{
	time_t now = (time_t)(clock_mono_ms() / 1000);
	bool due;

	pthread_mutex_lock(&o->mu);
	if ((due = now >= o->next_reload))
		o->next_reload = now + RELOAD_INTERVAL_S;
	pthread_mutex_unlock(&o->mu);
	return due;
}

static void
reload(struct oidc *o)
{
	const char *from = o->jwks_url ? o->jwks_url : o->jwks_file;
	struct qerr e;

	qerr_clear(&e);
	if (load_keys(o, &e) != 0)
		log_msg(LOG_LVL_WARN, "oidc: jwks reload from %s failed, keeping the old "
		    "keys: %s", from, e.msg);
	else
		log_msg(LOG_LVL_INFO, "oidc: jwks reloaded from %s", from);
}

/* ---------------------------------------------------------------- claims */

/* Claim text that ends up in audit entries and messages: bounded, no controls. */
static bool
text_ok(const json_t *v)
{
	const unsigned char *s = (const unsigned char *)json_string_value(v);
	size_t i, n;

	if (s == NULL || (n = json_string_length(v)) == 0 || n > CLAIM_TEXT_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* A NumericDate claim: 0 present, 1 absent, QERR_UNAUTHENTICATED malformed. */
static int
date_claim(const json_t *c, const char *name, int64_t *out, struct qerr *e)
{
	const json_t *v = json_object_get(c, name);
	double d;

	*out = 0;
	if (v == NULL)
		return 1;
	if (json_is_integer(v))
		*out = json_integer_value(v);
	else if (json_is_real(v) && (d = json_real_value(v)) > -1e15 && d < 1e15)
		*out = (int64_t)d;
	else
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed %s claim", name);
	return 0;
}

static bool
aud_matches(const json_t *aud, const char *want)
{
	const json_t *v;
	size_t i;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud) || json_array_size(aud) > AUD_LIST_MAX)
		return false;
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
			return true;
	return false;
}

static int
check_times(const struct oidc *o, const json_t *c, struct qerr *e)
{
	int64_t now = (int64_t)time(NULL), exp, nbf, iat;
	int r;

	if ((r = date_claim(c, "exp", &exp, e)) < 0)
		return r;
	if (r == 1)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "token has no exp claim");
	if (now >= exp + o->leeway)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "token expired");
	if ((r = date_claim(c, "nbf", &nbf, e)) < 0)
		return r;
	if (r == 0 && now + o->leeway < nbf)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "token not yet valid");
	if ((r = date_claim(c, "iat", &iat, e)) < 0)
		return r;
	if (r == 0 && now + o->leeway < iat)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "token issued in the future");
	return 0;
}

static int
check_token(const struct oidc *o, const json_t *h, const json_t *c, const char *audience,
    struct qerr *e)
{
	const json_t *typ = json_object_get(h, "typ");
	const char *iss = json_string_value(json_object_get(c, "iss"));

	if (typ != NULL && (!json_is_string(typ) ||
	    (strcasecmp(json_string_value(typ), "JWT") != 0 &&
	    strcasecmp(json_string_value(typ), "at+jwt") != 0)))
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "token type not accepted");
	if (iss == NULL || strcmp(iss, o->issuer) != 0)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "wrong issuer");
	if (!aud_matches(json_object_get(c, "aud"), audience))
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "wrong audience");
	return check_times(o, c, e);
}

/* A list claim ("roles", "wids") copied; absent is empty. */
static int
list_claim(const json_t *c, const char *name, char ***out, size_t *n, struct qerr *e)
{
	const json_t *a = json_object_get(c, name), *v;
	size_t i;

	*out = NULL;
	*n = 0;
	if (a == NULL)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > CLAIM_LIST_MAX)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed %s claim", name);
	json_array_foreach(a, i, v)
		if (!text_ok(v))
			return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed %s claim",
			    name);
	if (json_array_size(a) == 0)
		return 0;
	if ((*out = calloc(json_array_size(a), sizeof(**out))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	json_array_foreach(a, i, v) {
		if (((*out)[i] = strdup(json_string_value(v))) == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		(*n)++;
	}
	return 0;
}

/* The OAuth scopes of an access token: "scope" (RFC 9068, space-separated), else
 * Entra's "scp" (the same); absent is none. */
static int
scope_claim(const json_t *c, struct oidc_claims *out, struct qerr *e)
{
	const json_t *v = json_object_get(c, "scope");
	struct strlist l = { 0 };

	if (v == NULL && (v = json_object_get(c, "scp")) == NULL)
		return 0;
	if (!text_ok(v))
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed scope claim");
	if (strlist_split(&l, json_string_value(v), " ") != 0)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if (l.n > CLAIM_LIST_MAX) {
		strlist_clear(&l);
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed scope claim");
	}
	out->scopes = l.v;
	out->nscopes = l.n;
	return 0;
}

static const json_t *
first_text(const json_t *c, const char *a, const char *b, const char *d)
{
	const json_t *v;

	if (text_ok(v = json_object_get(c, a)) || text_ok(v = json_object_get(c, b)) ||
	    text_ok(v = json_object_get(c, d)))
		return v;
	return NULL;
}

static int
fill_claims(const struct oidc *o, const json_t *c, struct oidc_claims *out,
    struct qerr *e)
{
	const json_t *sub = first_text(c, "oid", "sub", "sub");
	const json_t *user = first_text(c, o->username_claim, "upn", "sub");
	int r;

	if (sub == NULL || user == NULL)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "token has no subject");
	if ((out->subject = strdup(json_string_value(sub))) == NULL ||
	    (out->username = strdup(json_string_value(user))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if ((r = list_claim(c, "roles", &out->roles, &out->nroles, e)) != 0 ||
	    (r = list_claim(c, "wids", &out->wids, &out->nwids, e)) != 0 ||
	    (r = scope_claim(c, out, e)) != 0)
		return r;
	return date_claim(c, "exp", &out->exp, e) < 0 ? QERR_UNAUTHENTICATED : 0;
}

static int
verify_jws(struct oidc *o, const char *token, json_t **h, json_t **c, struct qerr *e)
{
	struct keys *k = keys_get(o);
	int r;

	r = jwt_verify(token, o->max_token, k ? k->ks : NULL, h, c, e);
	keys_put(o, k);
	if (r != QERR_NOT_FOUND || !reload_due(o))
		return r;
	reload(o);
	k = keys_get(o);
	r = jwt_verify(token, o->max_token, k ? k->ks : NULL, h, c, e);
	keys_put(o, k);
	return r;
}

int
oidc_verify(struct oidc *o, const char *token, struct oidc_claims *out,
    struct qerr *e)
{
	json_t *h = NULL, *c = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = verify_jws(o, token, &h, &c, e)) == 0 &&
	    (r = check_token(o, h, c, o->audience, e)) == 0)
		r = fill_claims(o, c, out, e);
	json_decref(c);
	json_decref(h);
	if (r == 0)
		return 0;
	oidc_claims_clear(out);
	if (r != QERR_NOMEM)
		r = e->code = QERR_UNAUTHENTICATED;
	return r;
}

/*
 * An id token (OpenID Connect Core 3.1.3.7): as a bearer token, but for the console's
 * client: aud holds client_id, azp (when present) is client_id, and nonce is the one
 * this sign-in sent, so a token minted for another client or another sign-in is
 * refused.
 */
static int
verify_id_token(struct oidc *o, const char *token, const char *nonce,
    struct oidc_claims *out, struct qerr *e)
{
	json_t *h = NULL, *c = NULL;
	const json_t *azp, *n;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = verify_jws(o, token, &h, &c, e)) != 0 ||
	    (r = check_token(o, h, c, o->client_id, e)) != 0)
		goto out;
	azp = json_object_get(c, "azp");
	n = json_object_get(c, "nonce");
	if (azp != NULL && (!json_is_string(azp) ||
	    strcmp(json_string_value(azp), o->client_id) != 0))
		r = qerr_set(e, QERR_UNAUTHENTICATED, NULL, "id token for another client");
	else if (!json_is_string(n) || strlen(json_string_value(n)) != strlen(nonce) ||
	    sodium_memcmp(json_string_value(n), nonce, strlen(nonce)) != 0)
		r = qerr_set(e, QERR_UNAUTHENTICATED, NULL, "id token nonce does not match "
		    "this sign-in");
	else
		r = fill_claims(o, c, out, e);
out:
	json_decref(c);
	json_decref(h);
	if (r == 0)
		return 0;
	oidc_claims_clear(out);
	if (r != QERR_NOMEM)
		r = e->code = QERR_UNAUTHENTICATED;
	return r;
}

/* ------------------------------------------------- the console's sign-in */

bool
oidc_code_flow(const struct oidc *o)
{
	return o != NULL && o->client_id != NULL;
}

const char *
oidc_issuer(const struct oidc *o)
{
	return o == NULL ? NULL : o->issuer;
}

const char *
oidc_redirect_uri(const struct oidc *o)
{
	return o == NULL ? NULL : o->redirect_uri;
}

/* Appends "&name=<value, percent-encoded>" (or "?…" for the first) to *url. */
static int
url_param(char **url, char sep, const char *name, const char *value, struct qerr *e)
{
	char *enc, *grown;
	int n;

	if ((enc = http_escape(value)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	n = asprintf(&grown, "%s%c%s=%s", *url, sep, name, enc);
	/* The token endpoint's form holds the code, the verifier and the secret. */
	kit_free_str(enc);
	if (n < 0)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	kit_free_str(*url);
	*url = grown;
	return 0;
}

int
oidc_authorize_url(const struct oidc *o, const char *redirect_uri, const char *state,
    const char *nonce, const char *challenge, char **out, struct qerr *e)
{
	const char *names[] = { "response_type", "client_id", "redirect_uri", "scope",
	    "state", "nonce", "code_challenge", "code_challenge_method" };
	const char *values[] = { "code", o->client_id, redirect_uri, "openid profile",
	    state, nonce, challenge, "S256" };
	char *url = NULL;
	size_t i;
	int r = 0;

	*out = NULL;
	if ((url = strdup(o->authorization_endpoint)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	/* An endpoint may carry a query of its own (some issuers put the tenant there). */
	for (i = 0; i < sizeof(names) / sizeof(names[0]) && r == 0; i++)
		r = url_param(&url, i == 0 && strchr(url, '?') == NULL ? '?' : '&', names[i],
		    values[i], e);
	if (r == 0) {
		*out = url;
		url = NULL;
	}
	free(url);
	return r;
}

/* Printable ASCII of an issuer's error answer, bounded, for a message. */
static void
issuer_text(const json_t *v, char *out, size_t outlen)
{
	const char *s = json_string_value(v);
	size_t i, n = 0;

	if (s != NULL)
		for (i = 0; s[i] != '\0' && n + 1 < outlen && n < ISSUER_TEXT_MAX; i++)
			out[n++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[n] = '\0';
}

/* The form the token endpoint gets: the code, the PKCE verifier, the client's secret. */
static int
token_form(const struct oidc *o, const char *code, const char *verifier,
    const char *redirect_uri, char **form, struct qerr *e)
{
	const char *names[] = { "grant_type", "code", "redirect_uri", "client_id",
	    "code_verifier", "client_secret" };
	const char *values[] = { "authorization_code", code, redirect_uri, o->client_id,
	    verifier, o->client_secret.buf };
	size_t i, n = o->client_secret.buf != NULL ? 6 : 5;
	char *url;
	int r = 0;

	if ((url = strdup("")) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < n && r == 0; i++)
		r = url_param(&url, '&', names[i], values[i], e);
	if (r != 0) {
		kit_free_str(url);
		return r;
	}
	/* url_param put a '&' first: drop it. */
	memmove(url, url + 1, strlen(url));
	*form = url;
	return 0;
}

/* The token endpoint's answer, parsed: the id token or the issuer's refusal. */
static int
token_answer(const struct http_response *resp, json_t **out, struct qerr *e)
{
	char err[ISSUER_TEXT_MAX + 1], desc[ISSUER_TEXT_MAX + 1];
	long status = resp->status;
	json_t *o;

	*out = NULL;
	o = json_loadb(resp->body, resp->len, 0, NULL);
	if (status == 200 && json_is_object(o) &&
	    json_is_string(json_object_get(o, "id_token"))) {
		*out = o;
		return 0;
	}
	if (json_is_object(o) && json_is_string(json_object_get(o, "error"))) {
		issuer_text(json_object_get(o, "error"), err, sizeof(err));
		issuer_text(json_object_get(o, "error_description"), desc, sizeof(desc));
		json_decref(o);
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "the issuer refused the "
		    "code: %s%s%s", err, desc[0] ? ": " : "", desc);
	}
	json_decref(o);
	if (status == 200)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "the token endpoint's answer "
		    "has no id_token");
	return qerr_set(e, status >= 500 ? QERR_TRANSIENT : QERR_UNAUTHENTICATED, NULL,
	    "the token endpoint answered HTTP %ld", status);
}

/* Wipes every string member of a token answer (the tokens) before it is freed. */
static void
answer_wipe(json_t *o)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v)
		if (json_is_string(v))
			sodium_memzero((char *)json_string_value(v), json_string_length(v));
}

/* Who redeems codes when this process does not hold the client secret. */
static oidc_exchange_fn exchange_elsewhere;

void
oidc_set_exchange(oidc_exchange_fn exchange)
{
	exchange_elsewhere = exchange;
}

/* Sends the form to the token endpoint; *resp is the answer (any status). */
static int
token_post(struct oidc *o, const char *form, struct http_response *resp, struct qerr *e)
{
	const struct http_header hdrs[] = {
		{ "Accept", "application/json" },
		{ "Content-Type", "application/x-www-form-urlencoded" },
	};
	struct http_request req = { .method = "POST", .url = o->token_endpoint,
	    .body = form, .body_len = strlen(form), .headers = hdrs, .nheaders = 2 };
	int r;

	if ((r = http_do(o->http, &req, resp, e)) == 0 &&
	    resp->len > OIDC_TOKEN_RESPONSE_MAX)
		r = -1;
	if (r == 0 || r == QERR_NOMEM)
		return r;
	if (r == -1 || (r == QERR_PERMANENT && strstr(e->msg, "larger than") != NULL))
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "the token endpoint's answer is "
		    "larger than %d bytes", OIDC_TOKEN_RESPONSE_MAX);
	return qerr_set(e, QERR_TRANSIENT, NULL, "the token endpoint is unreachable: %.400s",
	    e->msg);
}

int
oidc_exchange(struct oidc *o, const char *code, const char *verifier,
    const char *redirect_uri, struct http_response *resp, struct qerr *e)
{
	char *form = NULL;
	int r;

	if ((r = token_form(o, code, verifier, redirect_uri, &form, e)) == 0)
		r = token_post(o, form, resp, e);
	kit_free_str(form);
	return r;
}

int
oidc_redeem(struct oidc *o, const char *code, const char *verifier,
    const char *redirect_uri, const char *nonce, struct oidc_claims *out,
    struct qerr *e)
{
	struct http_response resp = { 0 };
	json_t *answer = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if (strlen(code) == 0 || strlen(code) > CODE_MAX)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed code");
	r = o->holds_secret ? oidc_exchange(o, code, verifier, redirect_uri, &resp, e) :
	    exchange_elsewhere(code, verifier, redirect_uri, &resp, e);
	if (r == 0 && (r = token_answer(&resp, &answer, e)) == 0)
		r = verify_id_token(o, json_string_value(json_object_get(answer,
		    "id_token")), nonce, out, e);
	if (answer != NULL)
		answer_wipe(answer);
	json_decref(answer);
	http_response_clear(&resp);
	return r;
}

static int
copy_list(char **src, size_t n, char ***dst, size_t *dn)
{
	size_t i;

	*dst = NULL;
	*dn = 0;
	if (n == 0)
		return 0;
	if ((*dst = calloc(n, sizeof(**dst))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (((*dst)[i] = strdup(src[i])) == NULL)
			return -1;
		(*dn)++;
	}
	return 0;
}

int
oidc_claims_copy(struct oidc_claims *dst, const struct oidc_claims *src,
    struct qerr *e)
{
	memset(dst, 0, sizeof(*dst));
	dst->exp = src->exp;
	if ((dst->subject = strdup(src->subject)) == NULL ||
	    (dst->username = strdup(src->username)) == NULL ||
	    copy_list(src->roles, src->nroles, &dst->roles, &dst->nroles) != 0 ||
	    copy_list(src->wids, src->nwids, &dst->wids, &dst->nwids) != 0 ||
	    copy_list(src->scopes, src->nscopes, &dst->scopes, &dst->nscopes) != 0) {
		oidc_claims_clear(dst);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	return 0;
}

static void
free_list(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
oidc_claims_clear(struct oidc_claims *c)
{
	if (c == NULL)
		return;
	free(c->subject);
	free(c->username);
	free_list(c->roles, c->nroles);
	free_list(c->wids, c->nwids);
	free_list(c->scopes, c->nscopes);
	memset(c, 0, sizeof(*c));
}

const char *
oidc_default_role(const struct oidc *o)
{
	return o == NULL ? NULL : o->default_role;
}

/* ---------------------------------------------------------- configuration */

static int
conf_fail(const struct system_config *s, int line, struct qerr *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
conf_fail(const struct system_config *s, int line, struct qerr *e, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return qerr_set(e, QERR_CONFIG, NULL, "%s:%d: %s", s->file, line, msg);
}

static int
conf_long(const struct system_config *s, const struct config_kv *kv, long min,
    long max, long *out, struct qerr *e)
{
	char *end;
	long v = strtol(kv->value, &end, 10);

	if (!isdigit((unsigned char)kv->value[0]) || *end != '\0' || v < min || v > max)
		return conf_fail(s, kv->line, e, "%s must be a number from %ld to %ld",
		    kv->key, min, max);
	*out = v;
	return 0;
}

static int
conf_bool(const struct system_config *s, const struct config_kv *kv, bool *out,
    struct qerr *e)
{
	if (strcmp(kv->value, "yes") == 0 || strcmp(kv->value, "true") == 0)
		*out = true;
	else if (strcmp(kv->value, "no") == 0 || strcmp(kv->value, "false") == 0)
		*out = false;
	else
		return conf_fail(s, kv->line, e, "%s must be yes or no", kv->key);
	return 0;
}

static char **
string_key(struct oidc *o, const char *key)
{
	if (strcmp(key, "issuer") == 0)
		return &o->issuer;
	if (strcmp(key, "audience") == 0)
		return &o->audience;
	if (strcmp(key, "jwks_file") == 0)
		return &o->jwks_file;
	if (strcmp(key, "jwks_url") == 0)
		return &o->jwks_url;
	if (strcmp(key, "ca_file") == 0)
		return &o->ca_file;
	if (strcmp(key, "username_claim") == 0)
		return &o->username_claim;
	if (strcmp(key, "default_role") == 0)
		return &o->default_role;
	if (strcmp(key, "client_id") == 0)
		return &o->client_id;
	if (strcmp(key, "client_secret_file") == 0)
		return &o->client_secret_file;
	if (strcmp(key, "authorization_endpoint") == 0)
		return &o->authorization_endpoint;
	if (strcmp(key, "token_endpoint") == 0)
		return &o->token_endpoint;
	if (strcmp(key, "redirect_uri") == 0)
		return &o->redirect_uri;
	return NULL;
}

static int
conf_key(struct oidc *o, const struct system_config *s, const struct config_kv *kv,
    struct qerr *e)
{
	char **str = string_key(o, kv->key);
	long v;
	int r;

	if (str != NULL) {
		if (*str != NULL)
			return conf_fail(s, kv->line, e, "%s is set twice", kv->key);
		if (strlen(kv->value) > URL_MAX)
			return conf_fail(s, kv->line, e, "%s is longer than %d bytes", kv->key,
			    URL_MAX);
		if ((*str = strdup(kv->value)) == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		return 0;
	}
	if (strcmp(kv->key, "allow_plaintext") == 0)
		return conf_bool(s, kv, &o->plaintext, e);
	if (strcmp(kv->key, "leeway_s") == 0)
		return conf_long(s, kv, 0, LEEWAY_MAX, &o->leeway, e);
	if (strcmp(kv->key, "max_token_bytes") == 0) {
		if ((r = conf_long(s, kv, TOKEN_MIN, TOKEN_MAX, &v, e)) == 0)
			o->max_token = (size_t)v;
		return r;
	}
	return conf_fail(s, kv->line, e, "unknown key '%s' in [oidc]", kv->key);
}

static int
kv_line(const struct system_config *s, const char *key)
{
	const struct config_kv *kv = config_system_get(s, key);

	return kv != NULL ? kv->line : s->line;
}

/* url is https://, or http:// where allow_plaintext permits it. */
static int
conf_url(const struct oidc *o, const struct system_config *s, const char *key,
    const char *url, struct qerr *e)
{
	if (strncmp(url, "https://", 8) == 0 && url[8] != '\0')
		return 0;
	if (o->plaintext && strncmp(url, "http://", 7) == 0 && url[7] != '\0')
		return 0;
	return conf_fail(s, kv_line(s, key), e, "%s must be an https:// URL%s", key,
	    o->plaintext ? " or http://" : " (allow_plaintext = yes permits http:// for "
	    "tests)");
}

/* The client secret: one line alone in a file, at most SECRET_MAX bytes, that not
 * everyone may read (the identity systems' secret files' reader). */
static int
read_secret(struct oidc *o, const struct system_config *s, struct qerr *e)
{
	return kit_file_read(s, config_system_get(s, "client_secret_file"),
	    KIT_FILE_SECRET | KIT_FILE_ONE_LINE, SECRET_MAX, &o->client_secret, e);
}

/*
 * The console's sign-in is on when client_id is set; then both endpoints are needed
 * (quelld does not fetch a discovery document: the endpoints an administrator wrote
 * down are the only places codes and secrets go).
 */
static int
conf_code_flow(struct oidc *o, const struct system_config *s, struct qerr *e)
{
	int r;

	if (o->client_id == NULL) {
		if (o->authorization_endpoint != NULL || o->token_endpoint != NULL ||
		    o->client_secret_file != NULL || o->redirect_uri != NULL)
			return conf_fail(s, s->line, e, "[oidc] authorization_endpoint, "
			    "token_endpoint, client_secret_file and redirect_uri go with "
			    "client_id");
		return 0;
	}
	if (o->client_id[0] == '\0' || strlen(o->client_id) > CLIENT_ID_MAX)
		return conf_fail(s, kv_line(s, "client_id"), e, "client_id must be 1 to %d "
		    "bytes", CLIENT_ID_MAX);
	if (o->authorization_endpoint == NULL || o->token_endpoint == NULL)
		return conf_fail(s, kv_line(s, "client_id"), e, "client_id needs "
		    "authorization_endpoint and token_endpoint");
	if ((r = conf_url(o, s, "authorization_endpoint", o->authorization_endpoint,
	    e)) != 0 || (r = conf_url(o, s, "token_endpoint", o->token_endpoint, e)) != 0 ||
	    (o->redirect_uri != NULL &&
	    (r = conf_url(o, s, "redirect_uri", o->redirect_uri, e)) != 0))
		return r;
	if (o->client_secret_file != NULL && o->holds_secret)
		return read_secret(o, s, e);
	return 0;
}

static int
conf_check(const struct config *cfg, struct oidc *o, struct qerr *e)
{
	const struct system_config *s = &cfg->oidc;
	unsigned perms;

	if (o->issuer == NULL || o->audience == NULL)
		return conf_fail(s, s->line, e, "[oidc] needs issuer and audience");
	if ((o->jwks_file == NULL) == (o->jwks_url == NULL))
		return conf_fail(s, s->line, e, "[oidc] needs one of jwks_file or jwks_url");
	if (o->jwks_url != NULL && strncmp(o->jwks_url, "https://", 8) != 0 &&
	    !(o->plaintext && strncmp(o->jwks_url, "http://", 7) == 0))
		return conf_fail(s, kv_line(s, "jwks_url"), e, "jwks_url must be https://%s",
		    o->plaintext ? " or http://" : " (allow_plaintext = yes permits http:// "
		    "for tests)");
	if (o->ca_file != NULL && o->jwks_url == NULL && o->token_endpoint == NULL)
		return conf_fail(s, kv_line(s, "ca_file"), e, "ca_file goes with jwks_url or "
		    "token_endpoint");
	if (o->default_role != NULL && !rbac_role_perms(cfg, o->default_role, &perms))
		return conf_fail(s, kv_line(s, "default_role"), e, "unknown role '%s'",
		    o->default_role);
	if (o->username_claim == NULL &&
	    (o->username_claim = strdup("preferred_username")) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return conf_code_flow(o, s, e);
}

/* The first JWK Set: a file must load; a URL may be down and is retried later. */
static int
first_load(struct oidc *o, const struct system_config *s, struct qerr *e)
{
	char why[sizeof(e->msg)];
	int r;

	if ((r = load_keys(o, e)) == 0 || r == QERR_NOMEM)
		return r;
	if (o->jwks_file != NULL) {
		memcpy(why, e->msg, sizeof(why));
		return conf_fail(s, kv_line(s, "jwks_file"), e, "%s", why);
	}
	log_msg(LOG_LVL_WARN, "oidc: cannot load the JWK Set from %s yet: %s",
	    o->jwks_url, e->msg);
	qerr_clear(e);
	return 0;
}

/* The issuer's answers: a JWK Set is the largest of them. */
static int
open_http(struct oidc *o, struct qerr *e)
{
	struct http_options ho = { .ca_file = o->ca_file, .connect_timeout_ms =
	    FETCH_CONNECT_MS, .timeout_ms = FETCH_TOTAL_MS, .max_response =
	    JWT_JWKS_MAX_BYTES, .user_agent = "quelld", .https_only = !o->plaintext };

	if (o->jwks_url == NULL && o->token_endpoint == NULL)
		return 0;
	return http_client_new(&ho, &o->http, e);
}

/* The verifier (client: false) or the holder of the client secret (client: true,
 * which loads no JWK Set). */
static int
open_as(const struct config *cfg, bool client, struct oidc **out, struct qerr *e)
{
	struct oidc *o;
	size_t i;
	int r;

	*out = NULL;
	if (cfg->oidc.line == 0)
		return 0;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	pthread_mutex_init(&o->mu, NULL);
	o->leeway = LEEWAY_DEFAULT;
	o->max_token = TOKEN_DEFAULT;
	o->holds_secret = client || exchange_elsewhere == NULL;
	for (i = 0; i < cfg->oidc.nkv; i++)
		if ((r = conf_key(o, &cfg->oidc, &cfg->oidc.kv[i], e)) != 0)
			goto out;
	if ((r = conf_check(cfg, o, e)) != 0)
		goto out;
	if (client && o->client_id == NULL) {
		r = 0;
		goto out;
	}
	if ((r = open_http(o, e)) != 0 || (!client && (r = first_load(o, &cfg->oidc,
	    e)) != 0))
		goto out;
	*out = o;
	o = NULL;
out:
	oidc_close(o);
	return r;
}

int
oidc_open(const struct config *cfg, struct oidc **out, struct qerr *e)
{
	return open_as(cfg, false, out, e);
}

int
oidc_open_client(const struct config *cfg, struct oidc **out, struct qerr *e)
{
	return open_as(cfg, true, out, e);
}

void
oidc_close(struct oidc *o)
{
	if (o == NULL)
		return;
	keys_put(o, o->keys);
	pthread_mutex_destroy(&o->mu);
	free(o->issuer);
	free(o->audience);
	free(o->jwks_file);
	free(o->jwks_url);
	free(o->ca_file);
	free(o->username_claim);
	free(o->default_role);
	free(o->client_id);
	kit_secret_clear(&o->client_secret);
	http_client_free(o->http);
	free(o->client_secret_file);
	free(o->authorization_endpoint);
	free(o->token_endpoint);
	free(o->redirect_uri);
	free(o);
}
