/*
 * The OAuth 2.0 client credentials grant and its token cache, for the cloud
 * providers: a client secret or a private_key_jwt assertion (RFC 7523), the token kept
 * until shortly before it ends, renewed once per refusal however many threads saw it.
 * Every copy of a secret, an assertion or a token is zeroed before it is freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "core/clock.h"
#include "core/jwt.h"
#include "providers/kit.h"

/* Well under the ten minutes Entra ID and the hour Okta accept. */
#define ASSERTION_LIFE_S	300
/* Back-dated a little: an authorization server whose clock runs behind must not
 * find the assertion "not yet valid". */
#define ASSERTION_NBF_SKEW_S	5
/* Renewed this long before it ends at the most, half its life at the least. */
#define RENEW_MARGIN_MAX_MS	300000
#define JWT_BEARER	"urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"

int
kit_oauth_init(struct kit_oauth *o, const struct kit_oauth_config *cfg,
    kit_oauth_send send, void *arg, struct qerr *e)
{
	memset(o, 0, sizeof(*o));
	o->cfg = *cfg;
	o->send = send;
	o->arg = arg;
	if (pthread_mutex_init(&o->mu, NULL) != 0)
		return qerr_set(e, QERR_INTERNAL, NULL, "pthread_mutex_init failed");
	o->ready = true;
	return 0;
}

void
kit_oauth_clear(struct kit_oauth *o)
{
	if (o == NULL || !o->ready)
		return;
	pthread_mutex_destroy(&o->mu);
	kit_free_str(o->token);
	memset(o, 0, sizeof(*o));
}

int
kit_oauth_assertion(const struct kit_oauth_config *cfg, char **jws, struct qerr *e)
{
	unsigned char raw[16];
	char jti[33], *hdr = NULL, *claims = NULL;
	json_t *h, *c;
	json_int_t now = (json_int_t)time(NULL);
	int r = QERR_NOMEM;

	*jws = NULL;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(jti, sizeof(jti), raw, sizeof(raw));
	h = json_pack("{s:s, s:s}", "alg", cfg->alg, "typ", "JWT");
	c = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "aud", cfg->token_url,
	    "iss", cfg->client_id, "sub", cfg->client_id, "jti", jti,
	    "nbf", now - ASSERTION_NBF_SKEW_S, "iat", now, "exp", now + ASSERTION_LIFE_S);
	if (h == NULL || c == NULL ||
	    (cfg->x5t != NULL && json_object_set_new(h, "x5t#S256", json_string(cfg->x5t))) ||
	    (cfg->kid != NULL && json_object_set_new(h, "kid", json_string(cfg->kid))) ||
	    (hdr = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL ||
	    (claims = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	else
		r = jwt_sign(cfg->alg, cfg->key_pem, hdr, claims, jws, e);
	free(claims);
	free(hdr);
	json_decref(c);
	json_decref(h);
	return r;
}

/* The form of the token request; *out is zeroed and freed by the caller. No scope
 * (NULL or empty) leaves the parameter out: RFC 6749 makes it optional, and some
 * servers refuse an empty one. */
static int
token_form(const struct kit_oauth_config *cfg, char **out, struct qerr *e)
{
	char *cred = NULL, *esc_id = NULL, *esc_scope = NULL, *esc_cred = NULL;
	bool scoped = cfg->scope != NULL && cfg->scope[0] != '\0';
	int r;

	*out = NULL;
	if (cfg->secret == NULL && (r = kit_oauth_assertion(cfg, &cred, e)) != 0)
		return r;
	r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if ((esc_id = http_escape(cfg->client_id)) == NULL ||
	    (scoped && (esc_scope = http_escape(cfg->scope)) == NULL) ||
	    (esc_cred = http_escape(cfg->secret != NULL ? cfg->secret->buf : cred)) == NULL)
		goto out;
	if ((cfg->secret != NULL ? asprintf(out, "grant_type=client_credentials&client_id=%s"
	    "%s%s&client_secret=%s", esc_id, scoped ? "&scope=" : "", scoped ? esc_scope : "",
	    esc_cred) :
	    asprintf(out, "grant_type=client_credentials&client_id=%s%s%s"
	    "&client_assertion_type=%s&client_assertion=%s", esc_id, scoped ? "&scope=" : "",
	    scoped ? esc_scope : "", JWT_BEARER, esc_cred)) < 0) {
		*out = NULL;
		goto out;
	}
	qerr_clear(e);
	r = 0;
out:
	kit_free_str(esc_cred);
	kit_free_str(cred);
	free(esc_scope);
	free(esc_id);
	return r;
}

/* Sets e's status and vendor code beside the message already in it. */
static int
refused(int code, const char *vcode, long status, struct qerr *e)
{
	if (e != NULL) {
		e->code = code;
		e->status = (int)status;
		snprintf(e->vendor_code, sizeof(e->vendor_code), "%s", vcode);
	}
	return code;
}

/* A refusal: the OAuth error (RFC 6749 5.2), its description's first line. */
static int
token_refused(const struct kit_oauth_config *cfg, const struct http_response *resp,
    struct qerr *e)
{
	json_t *root = json_loads(resp->body != NULL ? resp->body : "", 0, NULL);
	const char *c = json_string_value(json_object_get(root, "error"));
	const char *d = json_string_value(json_object_get(root, "error_description"));
	char code[64], desc[320];
	int r;

	snprintf(code, sizeof(code), "%s", c != NULL ? c : "tokenError");
	snprintf(desc, sizeof(desc), "%.*s", d != NULL ? (int)strcspn(d, "\r\n") : 30,
	    d != NULL ? d : "no OAuth error in the answer");
	json_decref(root);
	r = resp->status == 429 || resp->status >= 500 ? QERR_TRANSIENT : QERR_PERMANENT;
	qerr_set(e, r, NULL, "%s refused the app's sign-in (HTTP %ld %s): %s", cfg->vendor,
	    resp->status, code, desc);
	return refused(r, code, resp->status, e);
}

/* Takes the token of a 200 answer into the cache; o->mu is held. */
static int
token_take(struct kit_oauth *o, const struct http_response *resp, struct qerr *e)
{
	json_t *root = json_loads(resp->body != NULL ? resp->body : "", 0, NULL);
	json_t *tt = json_object_get(root, "token_type"), *at = json_object_get(root,
	    "access_token"), *ex = json_object_get(root, "expires_in");
	json_int_t life = json_is_integer(ex) ? json_integer_value(ex) : -1;
	int64_t margin;
	int r;

	if (!json_is_string(tt) || !json_is_string(at) ||
	    !kit_one_word(json_string_value(at)) || life <= 0) {
		qerr_set(e, QERR_TRANSIENT, NULL, "%s's token endpoint answered without a "
		    "Bearer access_token with a positive expires_in", o->cfg.vendor);
		r = refused(QERR_TRANSIENT, "invalidTokenResponse", 200, e);
	} else if (strcasecmp(json_string_value(tt), "Bearer") != 0) {
		qerr_set(e, QERR_PERMANENT, NULL, "%s issued a %.32s token; quell sends Bearer "
		    "tokens: turn off \"Require DPoP\" for this app", o->cfg.vendor,
		    json_string_value(tt));
		r = refused(QERR_PERMANENT, "unsupportedTokenType", 200, e);
	} else {
		kit_free_str(o->token);
		if ((o->token = strdup(json_string_value(at))) == NULL)
			r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		else {
			margin = life * 1000 / 2 < RENEW_MARGIN_MAX_MS ? life * 1000 / 2 :
			    RENEW_MARGIN_MAX_MS;
			o->renew_ms = clock_mono_ms() + life * 1000 - margin;
			o->gen++;
			r = 0;
		}
	}
	/* The parsed copy of the token lives in jansson's memory: overwrite it. */
	if (json_is_string(at))
		sodium_memzero((char *)json_string_value(at), json_string_length(at));
	json_decref(root);
	return r;
}

static int
token_fetch(struct kit_oauth *o, struct qerr *e)
{
	const struct http_header hdrs[] = {
		{ "Content-Type", "application/x-www-form-urlencoded" },
		{ "Accept", "application/json" },
	};
	struct http_request req = { .method = "POST", .url = o->cfg.token_url,
	    .headers = hdrs, .nheaders = 2 };
	struct http_response resp = { 0 };
	char *form = NULL;
	int r;

	if ((r = token_form(&o->cfg, &form, e)) != 0)
		return r;
	req.body = form;
	req.body_len = strlen(form);
	r = o->send(o->arg, &req, &resp, e);
	kit_free_str(form);
	if (r != 0)
		return r;
	r = resp.status == 200 ? token_take(o, &resp, e) : token_refused(&o->cfg, &resp, e);
	http_response_clear(&resp);
	return r;
}

int
kit_oauth_get(struct kit_oauth *o, unsigned stale_gen, char **auth, unsigned *gen,
    struct qerr *e)
{
	int r = 0;

	*auth = NULL;
	pthread_mutex_lock(&o->mu);
	if (o->token == NULL || clock_mono_ms() >= o->renew_ms ||
	    (stale_gen != 0 && stale_gen == o->gen))
		r = token_fetch(o, e);
	if (r == 0) {
		if (asprintf(auth, "Bearer %s", o->token) < 0) {
			*auth = NULL;
			r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		}
		*gen = o->gen;
	}
	pthread_mutex_unlock(&o->mu);
	return r;
}
