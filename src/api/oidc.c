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

#include <curl/curl.h>
#include <jansson.h>

#include "core/jwt.h"
#include "core/log.h"
#include "core/rbac.h"
#include "oidc.h"

#define RELOAD_INTERVAL_S	60
#define LEEWAY_DEFAULT		60
#define LEEWAY_MAX		300
#define TOKEN_DEFAULT		16384
#define TOKEN_MIN		1024
#define TOKEN_MAX		65536
#define CLAIM_TEXT_MAX		256
#define CLAIM_LIST_MAX		256
#define AUD_LIST_MAX		64
#define FETCH_CONNECT_S		5L
#define FETCH_TOTAL_S		10L

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
	bool plaintext;
	long leeway;
	size_t max_token;
	pthread_mutex_t mu;	/* keys, its refs, next_reload */
	struct keys *keys;	/* NULL until a load succeeds */
	time_t next_reload;	/* monotonic seconds; 0: the first reload is free */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc = CURLE_FAILED_INIT;

static void
curl_init(void)
{
	curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static time_t
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

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

struct sink {
	char *buf;
	size_t len;
	bool over;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t add = size * n;
	char *nb;

	if (s->len + add > JWT_JWKS_MAX_BYTES) {
		s->over = true;
		return 0;
	}
	if ((nb = realloc(s->buf, s->len + add + 1)) == NULL)
		return 0;
	memcpy(nb + s->len, p, add);
	s->buf = nb;
	s->len += add;
	s->buf[s->len] = '\0';
	return add;
}

static int
fetch_setup(const struct oidc *o, CURL *h, struct sink *s)
{
	const char *protos = o->plaintext ? "http,https" : "https";

	return curl_easy_setopt(h, CURLOPT_URL, o->jwks_url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protos) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, FETCH_CONNECT_S) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT, FETCH_TOTAL_S) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    (o->ca_file != NULL &&
	    curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file) != CURLE_OK) ||
	    curl_easy_setopt(h, CURLOPT_USERAGENT, "quelld") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEDATA, s) != CURLE_OK ? -1 : 0;
}

static int
fetch_url(const struct oidc *o, char **buf, size_t *len, struct qerr *e)
{
	struct sink s = { NULL, 0, false };
	long status = 0;
	CURLcode cc;
	CURL *h;
	int r = QERR_TRANSIENT;

	*buf = NULL;
	if (curl_rc != CURLE_OK || (h = curl_easy_init()) == NULL)
		return qerr_set(e, QERR_INTERNAL, NULL, "libcurl cannot be initialised");
	if (fetch_setup(o, h, &s) != 0) {
		r = qerr_set(e, QERR_INTERNAL, NULL, "libcurl refused an option");
		goto out;
	}
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (s.over)
		r = qerr_set(e, QERR_TOO_LARGE, NULL, "the JWK Set is larger than %d bytes",
		    JWT_JWKS_MAX_BYTES);
	else if (cc != CURLE_OK)
		r = qerr_set(e, QERR_TRANSIENT, NULL, "%s", curl_easy_strerror(cc));
	else if (status != 200)
		r = qerr_set(e, QERR_TRANSIENT, NULL, "HTTP status %ld", status);
	else {
		*buf = s.buf;
		*len = s.len;
		s.buf = NULL;
		r = 0;
	}
out:
	free(s.buf);
	curl_easy_cleanup(h);
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
	time_t now = mono_now();
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
check_token(const struct oidc *o, const json_t *h, const json_t *c, struct qerr *e)
{
	const json_t *typ = json_object_get(h, "typ");
	const char *iss = json_string_value(json_object_get(c, "iss"));

	if (typ != NULL && (!json_is_string(typ) ||
	    (strcasecmp(json_string_value(typ), "JWT") != 0 &&
	    strcasecmp(json_string_value(typ), "at+jwt") != 0)))
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "token type not accepted");
	if (iss == NULL || strcmp(iss, o->issuer) != 0)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "wrong issuer");
	if (!aud_matches(json_object_get(c, "aud"), o->audience))
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
	    (r = list_claim(c, "wids", &out->wids, &out->nwids, e)) != 0)
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
	    (r = check_token(o, h, c, e)) == 0)
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
	if (o->ca_file != NULL && o->jwks_url == NULL)
		return conf_fail(s, kv_line(s, "ca_file"), e, "ca_file goes with jwks_url");
	if (o->default_role != NULL && !rbac_role_perms(cfg, o->default_role, &perms))
		return conf_fail(s, kv_line(s, "default_role"), e, "unknown role '%s'",
		    o->default_role);
	if (o->username_claim == NULL &&
	    (o->username_claim = strdup("preferred_username")) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
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

int
oidc_open(const struct config *cfg, struct oidc **out, struct qerr *e)
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
	for (i = 0; i < cfg->oidc.nkv; i++)
		if ((r = conf_key(o, &cfg->oidc, &cfg->oidc.kv[i], e)) != 0)
			goto out;
	if ((r = conf_check(cfg, o, e)) != 0)
		goto out;
	pthread_once(&curl_once, curl_init);
	if ((r = first_load(o, &cfg->oidc, e)) != 0)
		goto out;
	*out = o;
	o = NULL;
out:
	oidc_close(o);
	return r;
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
	free(o);
}
