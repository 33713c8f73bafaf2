/*
 * Microsoft Entra ID over Microsoft Graph v1.0: disable, enable, revoke sign-in
 * sessions and confirm users compromised, and list the tenant's users. The app signs
 * in with the OAuth 2.0 client credentials grant (a secret, or a certificate through a
 * signed client assertion). Writes are paced below Graph's documented per-tenant
 * budgets so a mass containment does not spend its time in 429s: users' writes by a
 * token bucket, Identity Protection (one request per second, no Retry-After) by a
 * fixed interval.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>	/* isfinite */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "core/clock.h"
#include "core/entra_roles.h"
#include "core/jwt.h"
#include "core/log.h"
#include "providers/http.h"
#include "providers/provider.h"

#define LOGIN_BASE_DEFAULT	"https://login.microsoftonline.com"
#define GRAPH_BASE_DEFAULT	"https://graph.microsoft.com/v1.0"
#define GRAPH_SCOPE		"https://graph.microsoft.com/.default"
#define ASSERTION_TYPE		"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define TIMEOUT_DEFAULT		30
/*
 * The v1.0 reference for confirmCompromised states no maximum for userIds; the only
 * documented one is beta riskyUser dismiss's "maximum count of users ... is 60".
 */
#define BATCH_SIZE_DEFAULT	60
#define BATCH_SIZE_MAX		60
/* Graph's "identity and access" write limit per app per tenant. */
#define WRITES_DEFAULT		3000
#define WINDOW_S_DEFAULT	150
#define TOKEN_MARGIN_S		300
#define ASSERTION_LIFE_S	540
#define FILE_MAX		(64 * 1024)
#define LIST_PAGES_MAX		100000
#define LIST_RETRIES		5
#define LIST_SELECT		"id,userPrincipalName,displayName,mail,accountEnabled," \
				"onPremisesSecurityIdentifier,onPremisesSyncEnabled"
/* Delta pages are sized by this header, not $top (user-delta reference); a plain
 * listing ignores it. */
#define DELTA_PREFER		"odata.maxpagesize=999"

struct provider {
	char *name;
	char *tenant;
	char *client_id;
	char *login_base;
	char *graph_base;
	char *graph_origin;	/* scheme://host[:port], where nextLinks must point */
	char *token_url;
	char *secret;		/* client secret, or NULL; zeroed before free */
	size_t secret_len;
	char *key_pem;		/* certificate's private key, or NULL; zeroed before free */
	size_t key_len;
	char x5t[44];
	size_t batch_size;
	double ip_rps;
	struct http_client *http;

	pthread_mutex_t tok_mu;	/* the access token */
	char *token;
	size_t token_len;
	int64_t token_renew_ms;	/* monotonic: fetch a new one from here on */
	unsigned token_gen;

	pthread_mutex_t pace_mu;	/* both budgets */
	double bucket;		/* write credits; negative: reserved by waiting callers */
	double bucket_cap;
	double bucket_rate;	/* credits per ms */
	int64_t bucket_ms;
	int64_t write_hold_ms;	/* after a 429: no write before this */
	int64_t ip_next_ms;	/* the next Identity Protection request's slot */
};

/* What Graph said about one call. */
struct gres {
	long status;
	int retry_after_ms;	/* -1: no Retry-After */
	char request_id[128];
	char code[64];
	char message[400];
};

enum budget { BUDGET_NONE, BUDGET_WRITE, BUDGET_IP };

/* Rounds a non-negative duration up to whole milliseconds. */
static int64_t
ceil_ms(double ms)
{
	int64_t n = (int64_t)ms;

	return n + ((double)n < ms);
}

static void
uuid4(char out[37])
{
	unsigned char b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
	    b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void
secret_free(char **s, size_t len)
{
	if (*s != NULL) {
		sodium_memzero(*s, len);
		free(*s);
	}
	*s = NULL;
}

/* Configuration */

static int
parse_double(const char *v, double lo, double hi, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !isfinite(d) || d < lo || d > hi)
		return -1;
	*out = d;
	return 0;
}

static bool
is_guid(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (strchr("0123456789abcdefABCDEF", s[i]) == NULL || s[i] == '\0')
			return false;
	}
	return true;
}

/* A tenant is its id or one of its verified domains (contoso.onmicrosoft.com). */
static bool
is_tenant(const char *s)
{
	size_t n = strlen(s);

	if (is_guid(s))
		return true;
	return n > 0 && n < 256 && strchr(s, '.') != NULL && s[0] != '.' && s[0] != '-' &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

/*
 * http(s)://host[:port][/path] without query or fragment; the trailing slash is
 * dropped. *origin_len is the length of scheme://host[:port].
 */
static int
check_base(const char *url, size_t *origin_len)
{
	const char *h;
	size_t n;

	if (strncmp(url, "https://", 8) == 0)
		h = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		h = url + 7;
	else
		return -1;
	if (*h == '[') {
		n = strspn(h + 1, "0123456789abcdefABCDEF:.");
		if (n == 0 || h[1 + n] != ']')
			return -1;
		n += 2;
	} else if ((n = strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-")) == 0)
		return -1;
	h += n;
	if (*h == ':') {
		if ((n = strspn(h + 1, "0123456789")) == 0 || n > 5)
			return -1;
		h += 1 + n;
	}
	*origin_len = (size_t)(h - url);
	if (*h != '\0' && *h != '/')
		return -1;
	if (strpbrk(h, "?#%@ \t\r\n") != NULL)
		return -1;
	return 0;
}

static int
set_base(char **dst, const char *v, struct qerr *e)
{
	size_t n = strlen(v);

	while (n > 0 && v[n - 1] == '/')
		n--;
	free(*dst);
	if ((*dst = strndup(v, n)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

/*
 * Reads a whole small file. A secret one (client secret, private key) must not be
 * readable by everyone. Trailing newlines are dropped: a secret file is one line.
 */
static int
read_file_text(const struct system_config *cfg, const struct config_kv *kv, bool secret,
    char **out, size_t *outlen, struct qerr *e)
{
	char *buf = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd, r = QERR_CONFIG;

	*out = NULL;
	*outlen = 0;
	if ((fd = open(kv->value, O_RDONLY | O_CLOEXEC)) == -1)
		return config_error(e, cfg, kv->line, kv->key, "%s %s: %s", kv->key, kv->value,
		    strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		config_error(e, cfg, kv->line, kv->key, "%s %s: not a regular file", kv->key,
		    kv->value);
		goto out;
	}
	if (secret && (st.st_mode & (S_IROTH | S_IWOTH))) {
		config_error(e, cfg, kv->line, kv->key,
		    "%s %s: readable by everyone (mode %03o): chmod o-rw it", kv->key,
		    kv->value, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if ((buf = malloc(FILE_MAX + 1)) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	while (len <= FILE_MAX && (n = read(fd, buf + len, FILE_MAX + 1 - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			config_error(e, cfg, kv->line, kv->key, "%s %s: %s", kv->key, kv->value,
			    strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len > FILE_MAX || memchr(buf, '\0', len) != NULL) {
		config_error(e, cfg, kv->line, kv->key, "%s %s: not a text file of at most %d "
		    "bytes", kv->key, kv->value, FILE_MAX);
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0) {
		config_error(e, cfg, kv->line, kv->key, "%s %s: empty", kv->key, kv->value);
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	r = 0;
out:
	secret_free(&buf, FILE_MAX + 1);
	close(fd);
	return r;
}

static void
entra_close(struct provider *p)
{
	if (p == NULL)
		return;
	http_client_free(p->http);
	if (p->token_url != NULL) {
		pthread_mutex_destroy(&p->pace_mu);
		pthread_mutex_destroy(&p->tok_mu);
	}
	secret_free(&p->token, p->token_len);
	secret_free(&p->secret, p->secret_len);
	secret_free(&p->key_pem, p->key_len);
	free(p->token_url);
	free(p->graph_origin);
	free(p->graph_base);
	free(p->login_base);
	free(p->client_id);
	free(p->tenant);
	free(p->name);
	free(p);
}

/* The keys an entra section may hold, each checked on its own. */
struct opts {
	const struct config_kv *secret, *cert, *key, *ca;
	long timeout, writes, window;
};

static int
set_key(struct provider *p, struct opts *o, const struct system_config *cfg,
    const struct config_kv *kv, struct qerr *e)
{
	const char *k = kv->key;
	size_t olen;
	long n;

	if (strcmp(k, "tenant") == 0) {
		if (!is_tenant(kv->value))
			return config_error(e, cfg, kv->line, k, "tenant must be a tenant id (GUID) "
			    "or a domain name, not \"%s\"", kv->value);
		free(p->tenant);
		return (p->tenant = strdup(kv->value)) == NULL ? QERR_NOMEM : 0;
	}
	if (strcmp(k, "client_id") == 0) {
		if (!is_guid(kv->value))
			return config_error(e, cfg, kv->line, k,
			    "client_id must be the app's application id (a GUID)");
		free(p->client_id);
		return (p->client_id = strdup(kv->value)) == NULL ? QERR_NOMEM : 0;
	}
	if (strcmp(k, "login_base") == 0 || strcmp(k, "graph_base") == 0) {
		if (check_base(kv->value, &olen) != 0)
			return config_error(e, cfg, kv->line, k, "%s must be an http(s) URL with no "
			    "query, not \"%s\"", k, kv->value);
		return set_base(k[0] == 'l' ? &p->login_base : &p->graph_base, kv->value, e);
	}
	if (strcmp(k, "client_secret_file") == 0)
		o->secret = kv;
	else if (strcmp(k, "certificate_file") == 0)
		o->cert = kv;
	else if (strcmp(k, "private_key_file") == 0)
		o->key = kv;
	else if (strcmp(k, "ca_file") == 0) {
		if (access(kv->value, R_OK) != 0)
			return config_error(e, cfg, kv->line, k, "ca_file %s: %s", kv->value,
			    strerror(errno));
		o->ca = kv;
	} else if (strcmp(k, "timeout") == 0) {
		if (config_long(kv->value, 1, 600, &o->timeout) != 0)
			return config_error(e, cfg, kv->line, k,
			    "timeout must be 1 to 600 seconds, not \"%s\"", kv->value);
	} else if (strcmp(k, "batch_size") == 0) {
		if (config_long(kv->value, 1, BATCH_SIZE_MAX, &n) != 0)
			return config_error(e, cfg, kv->line, k,
			    "batch_size must be 1 to %d, not \"%s\"", BATCH_SIZE_MAX, kv->value);
		p->batch_size = (size_t)n;
	} else if (strcmp(k, "ip_rps") == 0) {
		if (parse_double(kv->value, 0.01, 1000, &p->ip_rps) != 0)
			return config_error(e, cfg, kv->line, k,
			    "ip_rps must be a number from 0.01 to 1000, not \"%s\"", kv->value);
	} else if (strcmp(k, "writes_per_window") == 0) {
		if (config_long(kv->value, 1, 10000000, &o->writes) != 0)
			return config_error(e, cfg, kv->line, k,
			    "writes_per_window must be a positive integer, not \"%s\"", kv->value);
	} else if (strcmp(k, "window_s") == 0) {
		if (config_long(kv->value, 1, 86400, &o->window) != 0)
			return config_error(e, cfg, kv->line, k,
			    "window_s must be 1 to 86400 seconds, not \"%s\"", kv->value);
	} else
		return config_error(e, cfg, kv->line, k, "unknown key %s", k);
	return 0;
}

/* Checks the key and certificate now, so a bad pair fails at start and not mid-incident. */
static int
load_certificate(struct provider *p, const struct system_config *cfg,
    const struct opts *o, struct qerr *e)
{
	char *cert = NULL, *jws = NULL;
	size_t len;
	struct qerr je = { 0 };
	int r;

	if ((r = read_file_text(cfg, o->cert, false, &cert, &len, e)) != 0)
		return r;
	if (jwt_x5t_s256(cert, p->x5t, &je) != 0) {
		r = config_error(e, cfg, o->cert->line, o->cert->key, "certificate_file %s: %s",
		    o->cert->value, je.msg);
		goto out;
	}
	if ((r = read_file_text(cfg, o->key, true, &p->key_pem, &p->key_len, e)) != 0)
		goto out;
	if (jwt_sign("RS256", p->key_pem, "{\"alg\":\"RS256\"}", "{}", &jws, &je) != 0) {
		r = config_error(e, cfg, o->key->line, o->key->key, "private_key_file %s: %s",
		    o->key->value, je.msg);
		goto out;
	}
	r = 0;
out:
	free(jws);
	free(cert);
	return r;
}

static int
check_required(struct provider *p, const struct system_config *cfg, const struct opts *o,
    struct qerr *e)
{
	if (p->tenant == NULL)
		return config_error(e, cfg, cfg->line, "tenant", "system %s: tenant is required",
		    p->name);
	if (p->client_id == NULL)
		return config_error(e, cfg, cfg->line, "client_id",
		    "system %s: client_id is required", p->name);
	if (o->secret != NULL && (o->cert != NULL || o->key != NULL))
		return config_error(e, cfg, o->secret->line, o->secret->key, "client_secret_file "
		    "and certificate_file/private_key_file exclude each other");
	if (o->secret == NULL && (o->cert == NULL || o->key == NULL))
		return config_error(e, cfg, cfg->line, "client_secret_file", "system %s: set "
		    "client_secret_file, or both certificate_file and private_key_file", p->name);
	return 0;
}

static int
open_state(struct provider *p, const struct opts *o, struct qerr *e)
{
	struct http_options ho = { 0 };
	size_t olen = 0;
	double writes = (double)o->writes;

	if (asprintf(&p->token_url, "%s/%s/oauth2/v2.0/token", p->login_base, p->tenant) ==
	    -1) {
		p->token_url = NULL;
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	pthread_mutex_init(&p->tok_mu, NULL);
	pthread_mutex_init(&p->pace_mu, NULL);
	check_base(p->graph_base, &olen);
	if ((p->graph_origin = strndup(p->graph_base, olen)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	/*
	 * A burst allowance plus a steady rate that together never exceed the budget in
	 * any window, however Graph slides it.
	 */
	p->bucket_cap = writes >= 40 ? (double)(long)(writes / 20) : 1;
	p->bucket_rate = (writes - p->bucket_cap) / ((double)o->window * 1000);
	if (p->bucket_rate <= 0)
		p->bucket_rate = writes / ((double)o->window * 1000);
	p->bucket = p->bucket_cap;
	p->bucket_ms = clock_mono_ms();
	ho.ca_file = o->ca != NULL ? o->ca->value : NULL;
	ho.timeout_ms = o->timeout * 1000;
	ho.connect_timeout_ms = o->timeout * 1000 < 5000 ? o->timeout * 1000 : 5000;
	ho.system = p->name;
	return http_client_new(&ho, &p->http, e);
}

static int
entra_open(const struct system_config *cfg, struct provider **out, struct qerr *e)
{
	struct opts o = { .timeout = TIMEOUT_DEFAULT, .writes = WRITES_DEFAULT,
	    .window = WINDOW_S_DEFAULT };
	struct provider *p;
	size_t i, j;
	int r = QERR_NOMEM;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	p->batch_size = BATCH_SIZE_DEFAULT;
	p->ip_rps = 1;
	if ((p->name = strdup(cfg->name != NULL ? cfg->name : "")) == NULL ||
	    (p->login_base = strdup(LOGIN_BASE_DEFAULT)) == NULL ||
	    (p->graph_base = strdup(GRAPH_BASE_DEFAULT)) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	for (i = 0; i < cfg->nkv; i++) {
		const struct config_kv *kv = &cfg->kv[i];

		for (j = 0; j < i; j++)
			if (strcmp(cfg->kv[j].key, kv->key) == 0) {
				r = config_error(e, cfg, kv->line, kv->key,
				    "%s is set twice (first on line %d)", kv->key,
				    cfg->kv[j].line);
				goto out;
			}
		if (strcmp(kv->key, "kind") == 0 || strcmp(kv->key, "max_concurrency") == 0)
			continue;
		if ((r = set_key(p, &o, cfg, kv, e)) != 0) {
			if (r == QERR_NOMEM)
				qerr_set(e, QERR_NOMEM, NULL, "out of memory");
			goto out;
		}
	}
	if ((r = check_required(p, cfg, &o, e)) != 0)
		goto out;
	if (o.secret != NULL)
		r = read_file_text(cfg, o.secret, true, &p->secret, &p->secret_len, e);
	else
		r = load_certificate(p, cfg, &o, e);
	if (r != 0 || (r = open_state(p, &o, e)) != 0)
		goto out;
	*out = p;
	p = NULL;
	r = 0;
out:
	entra_close(p);
	return r;
}

/* The access token */

/* Sets "<first line of the OAuth error_description>" for the analyst. */
static void
oauth_error(const char *body, char *code, size_t clen, char *msg, size_t mlen)
{
	json_t *root, *c, *d;
	size_t n;

	snprintf(code, clen, "tokenError");
	snprintf(msg, mlen, "no OAuth error in the answer");
	if ((root = json_loads(body, 0, NULL)) == NULL)
		return;
	c = json_object_get(root, "error");
	d = json_object_get(root, "error_description");
	if (json_is_string(c))
		snprintf(code, clen, "%s", json_string_value(c));
	if (json_is_string(d)) {
		n = strcspn(json_string_value(d), "\r\n");
		snprintf(msg, mlen, "%.*s", (int)(n < 300 ? n : 300), json_string_value(d));
	}
	json_decref(root);
}

static int
make_assertion(struct provider *p, char **out, struct qerr *e)
{
	char jti[37], *hdr = NULL, *claims = NULL;
	json_t *h, *c;
	time_t now = time(NULL);
	int r;

	uuid4(jti);
	h = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "x5t#S256", p->x5t);
	c = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "aud", p->token_url,
	    "iss", p->client_id, "sub", p->client_id, "jti", jti,
	    "nbf", (json_int_t)now, "iat", (json_int_t)now,
	    "exp", (json_int_t)now + ASSERTION_LIFE_S);
	if (h == NULL || c == NULL || (hdr = json_dumps(h, JSON_COMPACT |
	    JSON_PRESERVE_ORDER)) == NULL || (claims = json_dumps(c, JSON_COMPACT |
	    JSON_PRESERVE_ORDER)) == NULL)
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	else
		r = jwt_sign("RS256", p->key_pem, hdr, claims, out, e);
	free(claims);
	free(hdr);
	json_decref(c);
	json_decref(h);
	return r;
}

static int
token_body(struct provider *p, char **out, size_t *len, struct qerr *e)
{
	char *cred = NULL, *esc_id = NULL, *esc_cred = NULL, *esc_scope = NULL;
	int r = QERR_NOMEM, n;

	*out = NULL;
	if (p->secret == NULL && (r = make_assertion(p, &cred, e)) != 0)
		return r;
	r = QERR_NOMEM;
	if ((esc_id = http_escape(p->client_id)) == NULL ||
	    (esc_scope = http_escape(GRAPH_SCOPE)) == NULL ||
	    (esc_cred = http_escape(p->secret != NULL ? p->secret : cred)) == NULL)
		goto out;
	if (p->secret != NULL)
		n = asprintf(out, "grant_type=client_credentials&client_id=%s&scope=%s"
		    "&client_secret=%s", esc_id, esc_scope, esc_cred);
	else
		n = asprintf(out, "grant_type=client_credentials&client_id=%s&scope=%s"
		    "&client_assertion_type=%s&client_assertion=%s", esc_id, esc_scope,
		    "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer", esc_cred);
	if (n < 0) {
		*out = NULL;
		goto out;
	}
	*len = (size_t)n;
	r = 0;
out:
	if (r != 0)
		qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if (esc_cred != NULL)
		secret_free(&esc_cred, strlen(esc_cred));
	if (cred != NULL)
		secret_free(&cred, strlen(cred));
	free(esc_scope);
	free(esc_id);
	return r;
}

/* Reads a token answer; the token goes to p with its renewal time. tok_mu is held. */
static int
token_store(struct provider *p, const struct http_response *resp, struct qerr *e)
{
	json_t *root, *tt, *at, *ex;
	json_int_t life;
	int r = QERR_PERMANENT;

	if ((root = json_loads(resp->body, 0, NULL)) == NULL || !json_is_object(root)) {
		json_decref(root);
		return qerr_set(e, QERR_TRANSIENT, NULL,
		    "the token endpoint answered 200 with no JSON object");
	}
	tt = json_object_get(root, "token_type");
	at = json_object_get(root, "access_token");
	ex = json_object_get(root, "expires_in");
	life = json_is_integer(ex) ? json_integer_value(ex) : -1;
	if (!json_is_string(tt) || strcasecmp(json_string_value(tt), "Bearer") != 0 ||
	    !json_is_string(at) || json_string_length(at) == 0 ||
	    strpbrk(json_string_value(at), " \r\n") != NULL || life <= 0) {
		qerr_set(e, QERR_PERMANENT, NULL, "the token endpoint's answer lacks a Bearer "
		    "access_token with a positive expires_in");
		goto out;
	}
	secret_free(&p->token, p->token_len);
	p->token_len = json_string_length(at);
	if ((p->token = strdup(json_string_value(at))) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	/* Renew early, but never so early that a short-lived token is never reused. */
	p->token_renew_ms = clock_mono_ms() + (life - (life / 2 < TOKEN_MARGIN_S ? life / 2 :
	    TOKEN_MARGIN_S)) * 1000;
	p->token_gen++;
	r = 0;
out:
	/* The parsed copy of the token lives in jansson's memory: overwrite it. */
	if (json_is_string(at))
		sodium_memzero((char *)json_string_value(at), json_string_length(at));
	json_decref(root);
	return r;
}

static int
token_fetch(struct provider *p, struct qerr *e)
{
	const struct http_header hdrs[] = {
		{ "Content-Type", "application/x-www-form-urlencoded" },
		{ "Accept", "application/json" },
	};
	struct http_request req = { .method = "POST", .url = p->token_url,
	    .headers = hdrs, .nheaders = 2 };
	struct http_response resp = { 0 };
	char code[64], msg[320], *body = NULL;
	size_t blen = 0;
	int r;

	if ((r = token_body(p, &body, &blen, e)) != 0)
		return r;
	req.body = body;
	req.body_len = blen;
	r = http_do(p->http, &req, &resp, e);
	secret_free(&body, blen);
	if (r != 0)
		return r;
	if (resp.status == 200)
		r = token_store(p, &resp, e);
	else {
		oauth_error(resp.body, code, sizeof(code), msg, sizeof(msg));
		r = qerr_set(e, resp.status == 429 || resp.status >= 500 ? QERR_TRANSIENT :
		    QERR_PERMANENT, NULL, "Entra ID refused the app's sign-in (HTTP %ld %s): %s",
		    resp.status, code, msg);
		if (e != NULL) {
			e->status = (int)resp.status;
			snprintf(e->vendor_code, sizeof(e->vendor_code), "%s", code);
		}
	}
	http_response_clear(&resp);
	return r;
}

/*
 * A copy of a usable token in *out ("Bearer …" header value). stale_gen is the
 * generation Graph just refused (or 0): only that one is replaced, so threads that
 * saw the same 401 renew once between them.
 */
static int
token_get(struct provider *p, unsigned stale_gen, char **out, size_t *len, unsigned *gen,
    struct qerr *e)
{
	int r = 0, n;

	*out = NULL;
	pthread_mutex_lock(&p->tok_mu);
	if (p->token == NULL || clock_mono_ms() >= p->token_renew_ms ||
	    (stale_gen != 0 && stale_gen == p->token_gen))
		r = token_fetch(p, e);
	if (r == 0) {
		if ((n = asprintf(out, "Bearer %s", p->token)) < 0) {
			*out = NULL;
			r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		} else
			*len = (size_t)n;
		*gen = p->token_gen;
	}
	pthread_mutex_unlock(&p->tok_mu);
	return r;
}

/* Pacing */

/* Reserves one write credit and sleeps until it is due. */
static void
pace_write(struct provider *p)
{
	int64_t now, wait = 0;

	pthread_mutex_lock(&p->pace_mu);
	now = clock_mono_ms();
	p->bucket += (double)(now - p->bucket_ms) * p->bucket_rate;
	if (p->bucket > p->bucket_cap)
		p->bucket = p->bucket_cap;
	p->bucket_ms = now;
	p->bucket -= 1;
	if (p->bucket < 0)
		wait = ceil_ms(-p->bucket / p->bucket_rate);
	if (p->write_hold_ms > now + wait)
		wait = p->write_hold_ms - now;
	pthread_mutex_unlock(&p->pace_mu);
	if (wait > 0)
		provider_observe_wait(p->name, (double)wait / 1000.0);
	clock_sleep_ms(wait);
}

static void
pace_ip(struct provider *p)
{
	int64_t now, slot;

	pthread_mutex_lock(&p->pace_mu);
	now = clock_mono_ms();
	slot = p->ip_next_ms > now ? p->ip_next_ms : now;
	/* A tenth of the gap spare: requests spaced exactly 1/ip_rps apart can arrive
	 * closer than that after network jitter, and Graph counts arrivals. */
	p->ip_next_ms = slot + ceil_ms(1100 / p->ip_rps);
	pthread_mutex_unlock(&p->pace_mu);
	if (slot > now)
		provider_observe_wait(p->name, (double)(slot - now) / 1000.0);
	clock_sleep_ms(slot - now);
}

/* Graph throttled us anyway: hold every writer back, not just this step. */
static void
pace_hold(struct provider *p, enum budget b, int ms)
{
	int64_t until = clock_mono_ms() + ms;

	pthread_mutex_lock(&p->pace_mu);
	if (b == BUDGET_WRITE && until > p->write_hold_ms)
		p->write_hold_ms = until;
	else if (b == BUDGET_IP && until > p->ip_next_ms)
		p->ip_next_ms = until;
	pthread_mutex_unlock(&p->pace_mu);
}

/* Graph calls */

/* Retry-After in seconds, possibly fractional ("2.128"); -1 when absent or odd. */
static int
retry_after(const struct http_response *resp)
{
	char buf[32];
	double s;

	if (http_header_get(resp, "Retry-After", buf, sizeof(buf)) == NULL ||
	    parse_double(buf, 0, 86400, &s) != 0)
		return -1;
	return (int)ceil_ms(s * 1000);
}

/* Reads Graph's error object ({"error":{"code","message"}}) when there is one. */
static void
graph_error(const struct http_response *resp, struct gres *g)
{
	json_t *root, *err, *c, *m;

	g->code[0] = g->message[0] = '\0';
	if (resp->status >= 200 && resp->status < 300)
		return;
	if ((root = json_loads(resp->body, 0, NULL)) != NULL &&
	    json_is_object(err = json_object_get(root, "error"))) {
		c = json_object_get(err, "code");
		m = json_object_get(err, "message");
		if (json_is_string(c))
			snprintf(g->code, sizeof(g->code), "%s", json_string_value(c));
		if (json_is_string(m))
			snprintf(g->message, sizeof(g->message), "%s", json_string_value(m));
	}
	json_decref(root);
	if (g->code[0] == '\0')
		snprintf(g->code, sizeof(g->code), "http%ld", resp->status);
	if (g->message[0] == '\0')
		snprintf(g->message, sizeof(g->message), "HTTP %ld with no Graph error object",
		    resp->status);
}

/* prefer: a Prefer header's value (a GET's page size), or NULL. */
static int
graph_once(struct provider *p, const char *method, const char *url, const char *body,
    const char *prefer, const char *auth, struct http_response *resp, struct gres *g,
    struct qerr *e)
{
	char crid[37];
	struct http_header hdrs[4] = {
		{ "Authorization", auth },
		{ "client-request-id", crid },
		{ "Accept", "application/json" },
		{ "Content-Type", "application/json" },
	};
	struct http_request req = { .method = method, .url = url, .body = body,
	    .body_len = body != NULL ? strlen(body) : 0, .headers = hdrs,
	    .nheaders = body != NULL ? 4 : 3 };
	int r;

	if (body == NULL && prefer != NULL)
		hdrs[req.nheaders++] = (struct http_header){ "Prefer", prefer };

	uuid4(crid);
	snprintf(g->request_id, sizeof(g->request_id), "%s", crid);
	if ((r = http_do(p->http, &req, resp, e)) != 0)
		return r;
	http_header_get(resp, "request-id", g->request_id, sizeof(g->request_id));
	g->status = resp->status;
	g->retry_after_ms = retry_after(resp);
	graph_error(resp, g);
	return 0;
}

/*
 * One Graph call with the app's token, paced by budget. An expired or revoked token
 * (401 InvalidAuthenticationToken) is renewed once and the call sent once more.
 * Returns 0 with *resp and *g filled, or a QERR code with e set when no answer came
 * or no token could be had.
 */
static int
graph_call_prefer(struct provider *p, enum budget b, const char *method,
    const char *url, const char *body, const char *prefer, struct http_response *resp,
    struct gres *g, struct qerr *e)
{
	char *auth = NULL;
	size_t alen = 0;
	unsigned gen = 0;
	int r, attempt;

	memset(g, 0, sizeof(*g));
	g->retry_after_ms = -1;
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = token_get(p, attempt == 0 ? 0 : gen, &auth, &alen, &gen, e)) != 0)
			return r;
		if (b == BUDGET_WRITE)
			pace_write(p);
		else if (b == BUDGET_IP)
			pace_ip(p);
		r = graph_once(p, method, url, body, prefer, auth, resp, g, e);
		secret_free(&auth, alen);
		if (r != 0 || resp->status != 401 ||
		    strcmp(g->code, "InvalidAuthenticationToken") != 0 || attempt == 1)
			return r;
		http_response_clear(resp);
	}
	return r;
}

static int
graph_call(struct provider *p, enum budget b, const char *method, const char *url,
    const char *body, struct http_response *resp, struct gres *g, struct qerr *e)
{
	return graph_call_prefer(p, b, method, url, body, NULL, resp, g, e);
}

static void
result_from_qerr(struct step_result *res, const struct qerr *e, const char *rid)
{
	provider_result_set(res, e->code == QERR_PERMANENT ? STEP_OUTCOME_PERMANENT :
	    STEP_OUTCOME_TRANSIENT, e->vendor_code[0] != '\0' ? e->vendor_code :
	    e->code == QERR_TRANSIENT ? "unavailable" : "error", "%s", e->msg);
	if (rid != NULL)
		snprintf(res->request_id, sizeof(res->request_id), "%s", rid);
}

/* Turns a Graph error answer into the step's outcome. */
static void
result_from_graph(struct provider *p, struct step_result *res, const struct gres *g,
    enum budget b)
{
	int ra = g->retry_after_ms;

	snprintf(res->request_id, sizeof(res->request_id), "%s", g->request_id);
	if (g->status == 429) {
		if (ra < 0)
			ra = b == BUDGET_IP ? (int)ceil_ms(1000 / p->ip_rps) : 0;
		if (ra > 0)
			pace_hold(p, b, ra);
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, g->code, "throttled by Graph: %s",
		    g->message);
		res->retry_after_ms = ra;
	} else if (g->status >= 500) {
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, g->code, "Graph unavailable (HTTP %ld): "
		    "%s", g->status, g->message);
		res->retry_after_ms = ra > 0 ? ra : 0;
	} else if (g->status == 404)
		provider_result_set(res, STEP_OUTCOME_PERMANENT, g->code,
		    "account not found in Entra ID: %s", g->message);
	else if (g->status == 403 && b == BUDGET_IP)
		provider_result_set(res, STEP_OUTCOME_PERMANENT, g->code, "refused by Entra ID: the app "
		    "needs IdentityRiskyUser.ReadWrite.All and the tenant Entra ID P2: %s",
		    g->message);
	else if (g->status == 403 && strcmp(g->code, "Authorization_RequestDenied") == 0)
		provider_result_set(res, STEP_OUTCOME_PERMANENT, g->code, "refused by Entra ID: the "
		    "target holds a privileged role that this app may not change (%s)",
		    g->message);
	else if (g->status == 400 && strstr(g->message, "on-premises mastered") != NULL)
		provider_result_set(res, STEP_OUTCOME_PERMANENT, g->code, "Graph refused (HTTP 400): %s; "
		    "this account is synced from on-premises AD: change it there", g->message);
	else if (g->status == 401)
		provider_result_set(res, STEP_OUTCOME_PERMANENT, g->code,
		    "Graph refused the app's token even after renewal: %s", g->message);
	else
		provider_result_set(res, STEP_OUTCOME_PERMANENT, g->code, "Graph refused (HTTP %ld): %s",
		    g->status, g->message);
}

/* Steps */

static bool
entra_supports(const struct provider *p, enum action_type type)
{
	(void)p;
	return type == ACTION_DISABLE || type == ACTION_ENABLE ||
	    type == ACTION_REVOKE_SESSIONS || type == ACTION_MARK_COMPROMISED;
}

static size_t
entra_batch_max(enum action_type type)
{
	return type == ACTION_MARK_COMPROMISED ? BATCH_SIZE_MAX : 1;
}

/* The engine marks accounts mastered on-premises with "synced": true in params. */
static bool
step_synced(const struct step *step)
{
	json_t *root;
	bool synced;

	if (step->params == NULL || (root = json_loads(step->params, 0, NULL)) == NULL)
		return false;
	synced = json_is_object(root) && json_is_true(json_object_get(root, "synced"));
	json_decref(root);
	return synced;
}

static bool
ref_ok(const char *ref)
{
	return ref != NULL && ref[0] != '\0' && strlen(ref) <= 256;
}

static int
user_url(struct provider *p, const char *ref, const char *suffix, char **out)
{
	char *esc;
	int n;

	if ((esc = http_escape(ref)) == NULL)
		return QERR_NOMEM;
	n = asprintf(out, "%s/users/%s%s", p->graph_base, esc, suffix);
	free(esc);
	if (n < 0) {
		*out = NULL;
		return QERR_NOMEM;
	}
	return 0;
}

/* A 200 from revokeSignInSessions carries {"value": true}; false means it did not. */
static bool
revoke_refused(const struct http_response *resp)
{
	json_t *root, *v;
	bool no;

	if (resp->status != 200 || resp->len == 0 ||
	    (root = json_loads(resp->body, 0, NULL)) == NULL)
		return false;
	v = json_is_object(root) ? json_object_get(root, "value") : NULL;
	no = v != NULL && json_is_false(v);
	json_decref(root);
	return no;
}

static void
user_succeeded(const struct step *step, const struct http_response *resp,
    struct step_result *res)
{
	static const char note[] = "; note: this account is synced from on-premises AD — "
	    "the next directory sync may undo this unless the AD account is changed too";
	bool en = step->type == ACTION_ENABLE;

	if (step->type == ACTION_REVOKE_SESSIONS) {
		if (revoke_refused(resp)) {
			provider_result_set(res, STEP_OUTCOME_PERMANENT, "revokeNotDone",
			    "Graph answered that the sessions were not revoked");
			return;
		}
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "sign-in sessions revoked; "
		    "Entra ID applies it within minutes");
		return;
	}
	provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "%s in Entra ID%s",
	    en ? "enabled" : "disabled", step_synced(step) ? note : "");
	snprintf(res->state, sizeof(res->state), "%s", en ? "enabled" : "disabled");
}

static int
user_step(struct provider *p, const struct step *step, struct step_result *res)
{
	struct http_response resp = { 0 };
	struct qerr e = { 0 };
	struct gres g;
	const char *body = NULL, *method = "PATCH";
	char *url = NULL;
	int r;

	if (step->type == ACTION_REVOKE_SESSIONS) {
		method = "POST";
		r = user_url(p, step->account_ref, "/revokeSignInSessions", &url);
	} else {
		body = step->type == ACTION_ENABLE ? "{\"accountEnabled\":true}" :
		    "{\"accountEnabled\":false}";
		r = user_url(p, step->account_ref, "", &url);
	}
	if (r != 0)
		return r;
	r = graph_call(p, BUDGET_WRITE, method, url, body, &resp, &g, &e);
	free(url);
	if (r == QERR_NOMEM || r == QERR_INTERNAL)
		return r;
	if (r != 0)
		result_from_qerr(res, &e, g.request_id[0] != '\0' ? g.request_id : NULL);
	else if (resp.status >= 200 && resp.status < 300) {
		user_succeeded(step, &resp, res);
		snprintf(res->request_id, sizeof(res->request_id), "%s", g.request_id);
	} else
		result_from_graph(p, res, &g, BUDGET_WRITE);
	http_response_clear(&resp);
	return 0;
}

static int
confirm_batch(struct provider *p, const struct step *const *steps, size_t n,
    struct step_result *res);

static int
entra_execute(struct provider *p, const struct step *step, struct step_result *res)
{
	memset(res, 0, sizeof(*res));
	if (!entra_supports(p, step->type)) {
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "unsupported",
		    "not supported by Entra ID");
		return 0;
	}
	if (!ref_ok(step->account_ref)) {
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "invalidAccountRef",
		    "account reference is not an Entra object id");
		return 0;
	}
	if (step->type == ACTION_MARK_COMPROMISED)
		return confirm_batch(p, &step, 1, res);
	return user_step(p, step, res);
}

static int
confirm_body(const struct step *const *steps, size_t n, char **out)
{
	json_t *root, *ids;
	size_t i;

	*out = NULL;
	if ((root = json_object()) == NULL || (ids = json_array()) == NULL ||
	    json_object_set_new(root, "userIds", ids) != 0) {
		json_decref(root);
		return QERR_NOMEM;
	}
	for (i = 0; i < n; i++)
		if (json_array_append_new(ids, json_string(steps[i]->account_ref)) != 0) {
			json_decref(root);
			return QERR_NOMEM;
		}
	*out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return *out != NULL ? 0 : QERR_NOMEM;
}

static void
copy_result(struct step_result *res, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		res[i] = res[0];
}

/* One confirmCompromised request for up to batch_size users, paced for Identity Protection. */
static int
confirm_chunk(struct provider *p, const struct step *const *steps, size_t n,
    struct step_result *res)
{
	struct http_response resp = { 0 };
	struct qerr e = { 0 };
	struct gres g;
	char *url = NULL, *body = NULL;
	size_t i;
	int r;

	if (confirm_body(steps, n, &body) != 0 ||
	    asprintf(&url, "%s/identityProtection/riskyUsers/confirmCompromised",
	    p->graph_base) < 0) {
		free(body);
		return QERR_NOMEM;
	}
	r = graph_call(p, BUDGET_IP, "POST", url, body, &resp, &g, &e);
	free(url);
	free(body);
	if (r == QERR_NOMEM || r == QERR_INTERNAL)
		return r;
	if (r == 0 && resp.status == 400 && n > 1) {
		/* One bad id fails the whole request: find it by sending each alone. */
		http_response_clear(&resp);
		for (i = 0; i < n; i++)
			if ((r = confirm_chunk(p, steps + i, 1, res + i)) != 0)
				return r;
		return 0;
	}
	if (r != 0)
		result_from_qerr(res, &e, g.request_id[0] != '\0' ? g.request_id : NULL);
	else if (resp.status >= 200 && resp.status < 300) {
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "confirmed compromised in Entra ID "
		    "Identity Protection: user risk set to high");
		snprintf(res->request_id, sizeof(res->request_id), "%s", g.request_id);
	} else
		result_from_graph(p, res, &g, BUDGET_IP);
	copy_result(res, n);
	http_response_clear(&resp);
	return 0;
}

static int
confirm_batch(struct provider *p, const struct step *const *steps, size_t n,
    struct step_result *res)
{
	const struct step **ok = NULL;
	struct step_result *tmp = NULL;
	size_t *idx = NULL, i, j, m, chunk;
	int r = QERR_NOMEM;

	if ((ok = calloc(n, sizeof(*ok))) == NULL || (idx = calloc(n, sizeof(*idx))) == NULL ||
	    (tmp = calloc(n, sizeof(*tmp))) == NULL)
		goto out;
	/* Bad references fail alone; the rest go in requests of batch_size. */
	for (i = m = 0; i < n; i++) {
		memset(&res[i], 0, sizeof(res[i]));
		if (steps[i]->type != ACTION_MARK_COMPROMISED || !ref_ok(steps[i]->account_ref))
			provider_result_set(&res[i], STEP_OUTCOME_PERMANENT, "invalidAccountRef",
			    "not a mark_compromised step on an Entra object id");
		else {
			ok[m] = steps[i];
			idx[m++] = i;
		}
	}
	for (i = 0; i < m; i += chunk) {
		chunk = m - i < p->batch_size ? m - i : p->batch_size;
		if ((r = confirm_chunk(p, ok + i, chunk, tmp + i)) != 0)
			goto out;
		for (j = 0; j < chunk; j++)
			res[idx[i + j]] = tmp[i + j];
	}
	r = 0;
out:
	free(tmp);
	free(idx);
	free(ok);
	return r;
}

static int
entra_execute_batch(struct provider *p, const struct step *const *steps, size_t n,
    struct step_result *res)
{
	return confirm_batch(p, steps, n, res);
}

/* Listing */

/* Absent or null is fine; any other type than want makes the user malformed. */
static bool
opt_field(json_t *u, const char *key, int want, json_t **out)
{
	json_t *v = json_object_get(u, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return true;
	if ((int)json_typeof(v) != want &&
	    !(want == JSON_TRUE && json_is_boolean(v)))
		return false;
	*out = v;
	return true;
}

static const char *
str_or_null(json_t *v)
{
	return v != NULL ? json_string_value(v) : NULL;
}

/* Hands one user to cb; returns 1 when malformed (skipped), else cb's value. */
static int
list_user(struct provider *p, json_t *u, provider_account_cb cb, void *arg)
{
	json_t *id, *upn, *dn, *mail, *en, *sid, *sync;
	struct account a = { 0 };

	if (!json_is_object(u) || !json_is_string(id = json_object_get(u, "id")) ||
	    json_string_length(id) == 0 ||
	    !opt_field(u, "userPrincipalName", JSON_STRING, &upn) ||
	    !opt_field(u, "displayName", JSON_STRING, &dn) ||
	    !opt_field(u, "mail", JSON_STRING, &mail) ||
	    !opt_field(u, "accountEnabled", JSON_TRUE, &en) ||
	    !opt_field(u, "onPremisesSecurityIdentifier", JSON_STRING, &sid) ||
	    !opt_field(u, "onPremisesSyncEnabled", JSON_TRUE, &sync))
		return 1;
	a.system = p->name;
	a.kind = (char *)"entra";
	a.external_id = (char *)json_string_value(id);
	a.upn = (char *)str_or_null(upn);
	a.username = a.upn;
	a.display_name = (char *)str_or_null(dn);
	a.email = (char *)str_or_null(mail);
	a.sid = (char *)str_or_null(sid);
	a.synced = sync != NULL && json_is_true(sync);
	a.state = en == NULL ? NULL : json_is_true(en) ? (char *)"enabled" :
	    (char *)"disabled";
	return cb(&a, arg) != 0 ? -1 : 0;
}

/* A nextLink must stay on graph_base's origin: a bearer token goes with it. */
static bool
next_ok(struct provider *p, const char *url)
{
	size_t n = strlen(p->graph_origin);

	return strncmp(url, p->graph_origin, n) == 0 && url[n] == '/' &&
	    strpbrk(url, " \r\n") == NULL;
}

/* Fetches one page, waiting out throttling and outages a few times. */
static int
list_page(struct provider *p, const char *url, json_t **out, struct qerr *e)
{
	struct http_response resp = { 0 };
	struct gres g;
	json_t *root;
	int r, tries;

	*out = NULL;
	for (tries = 0;; tries++) {
		r = graph_call_prefer(p, BUDGET_NONE, "GET", url, NULL, DELTA_PREFER, &resp,
		    &g, e);
		if (r == 0 && resp.status == 200)
			break;
		if (r == 0 && resp.status != 429 && resp.status < 500) {
			r = qerr_set(e, QERR_PERMANENT, NULL, "listing users: HTTP %ld %s: %s",
			    resp.status, g.code, g.message);
			if (e != NULL) {
				e->status = (int)resp.status;
				snprintf(e->vendor_code, sizeof(e->vendor_code), "%s", g.code);
			}
			http_response_clear(&resp);
			return r;
		}
		if (r == 0)
			r = qerr_set(e, QERR_TRANSIENT, NULL, "listing users: HTTP %ld %s: %s",
			    resp.status, g.code, g.message);
		http_response_clear(&resp);
		if (r != QERR_TRANSIENT || tries + 1 >= LIST_RETRIES)
			return r;
		clock_sleep_ms(g.retry_after_ms > 0 ? (g.retry_after_ms < 30000 ?
		    g.retry_after_ms : 30000) : 500 << tries);
	}
	root = json_loads(resp.body, 0, NULL);
	http_response_clear(&resp);
	if (!json_is_object(root) || !json_is_array(json_object_get(root, "value"))) {
		json_decref(root);
		return qerr_set(e, QERR_PERMANENT, NULL,
		    "listing users: the page is not an object with a value array");
	}
	*out = root;
	return 0;
}

static int
entra_list_accounts(struct provider *p, provider_account_cb cb, void *arg, struct qerr *e)
{
	json_t *page = NULL, *users, *next;
	char *url = NULL;
	size_t i, skipped = 0, pages;
	int r = QERR_INTERNAL, x;

	if (asprintf(&url, "%s/users?$select=%s&$top=999", p->graph_base, LIST_SELECT) < 0)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (pages = 0; url != NULL; pages++) {
		if (pages >= LIST_PAGES_MAX) {
			r = qerr_set(e, QERR_PERMANENT, NULL, "listing users: more than %d pages",
			    LIST_PAGES_MAX);
			goto out;
		}
		if ((r = list_page(p, url, &page, e)) != 0)
			goto out;
		users = json_object_get(page, "value");
		for (i = 0; i < json_array_size(users); i++) {
			if ((x = list_user(p, json_array_get(users, i), cb, arg)) < 0) {
				r = qerr_set(e, QERR_INTERNAL, NULL, "listing stopped by the caller");
				goto out;
			}
			skipped += (size_t)x;
		}
		next = json_object_get(page, "@odata.nextLink");
		free(url);
		url = NULL;
		if (next != NULL && !json_is_null(next)) {
			if (!json_is_string(next) || !next_ok(p, json_string_value(next))) {
				r = qerr_set(e, QERR_PERMANENT, NULL, "listing users: refusing an "
				    "@odata.nextLink that leaves %s", p->graph_origin);
				goto out;
			}
			if ((url = strdup(json_string_value(next))) == NULL) {
				r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
				goto out;
			}
		}
		json_decref(page);
		page = NULL;
	}
	if (skipped > 0)
		log_msg(LOG_LVL_WARN, "entra %s: %zu malformed users skipped", p->name, skipped);
	r = 0;
out:
	json_decref(page);
	free(url);
	return r;
}

/* A delta item Graph reports gone: only its id and @removed. */
static int
removed_user(struct provider *p, json_t *u, provider_account_cb cb, void *arg)
{
	json_t *id = json_object_get(u, "id");
	struct account a = { 0 };

	if (!json_is_string(id) || json_string_length(id) == 0 ||
	    json_string_length(id) > 128)
		return 1;
	a.system = p->name;
	a.kind = (char *)"entra";
	a.external_id = (char *)json_string_value(id);
	a.state = (char *)"removed";
	return cb(&a, arg) != 0 ? -1 : 0;
}

static int
delta_items(struct provider *p, json_t *users, provider_account_cb cb, void *arg,
    size_t *skipped, struct qerr *e)
{
	json_t *u;
	size_t i;
	int x;

	json_array_foreach(users, i, u) {
		if (json_is_object(u) && json_object_get(u, "@removed") != NULL)
			x = removed_user(p, u, cb, arg);
		else
			x = list_user(p, u, cb, arg);
		if (x < 0)
			return qerr_set(e, QERR_INTERNAL, NULL, "listing stopped by the caller");
		*skipped += (size_t)x;
	}
	return 0;
}

/* Graph answers a delta token it no longer knows with 410 Gone, or a 400 naming the
 * sync state: start over with a full round. */
static bool
delta_lost(const struct qerr *e)
{
	return e->status == 410 || (e->status == 400 &&
	    (strcasestr(e->vendor_code, "syncstate") != NULL ||
	    strcasestr(e->vendor_code, "resync") != NULL));
}

/* The next page: a nextLink, else the round's deltaLink (in *delta), both on
 * graph_base's origin. */
static int
delta_next(struct provider *p, json_t *page, char **url, char **delta, struct qerr *e)
{
	json_t *next = json_object_get(page, "@odata.nextLink");
	json_t *dl = json_object_get(page, "@odata.deltaLink");
	json_t *v = next != NULL && !json_is_null(next) ? next : dl;

	*url = NULL;
	if (v == NULL || json_is_null(v))
		return qerr_set(e, QERR_PERMANENT, NULL, "delta listing: a page with "
		    "neither @odata.nextLink nor @odata.deltaLink");
	if (!json_is_string(v) || json_string_length(v) > 8192 ||
	    !next_ok(p, json_string_value(v)))
		return qerr_set(e, QERR_PERMANENT, NULL, "delta listing: refusing a link "
		    "that leaves %s", p->graph_origin);
	if ((*(v == next ? url : delta) = strdup(json_string_value(v))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

/* One delta round from url: every page until the deltaLink, kept in *delta. */
static int
delta_round(struct provider *p, char *url, provider_account_cb cb, void *arg,
    char **delta, struct qerr *e)
{
	json_t *page = NULL;
	size_t skipped = 0, pages;
	int r = 0;

	for (pages = 0; url != NULL && r == 0; pages++) {
		if (pages >= LIST_PAGES_MAX) {
			r = qerr_set(e, QERR_PERMANENT, NULL, "delta listing: more than %d "
			    "pages", LIST_PAGES_MAX);
			break;
		}
		if ((r = list_page(p, url, &page, e)) != 0)
			break;
		free(url);
		url = NULL;
		if ((r = delta_items(p, json_object_get(page, "value"), cb, arg, &skipped,
		    e)) == 0)
			r = delta_next(p, page, &url, delta, e);
		json_decref(page);
		page = NULL;
	}
	free(url);
	if (skipped > 0)
		log_msg(LOG_LVL_WARN, "entra %s: %zu malformed users skipped", p->name, skipped);
	return r;
}

/*
 * Incremental by /users/delta: the first round lists every user and ends with a
 * deltaLink; following it later returns the users changed since, and @removed ones.
 */
static int
entra_list_changes(struct provider *p, const char *since, provider_account_cb cb,
    void *arg, char **next, bool *full, struct qerr *e)
{
	char *url = NULL;
	int r;

	*next = NULL;
	*full = since == NULL || !next_ok(p, since) || strlen(since) > 8192 ||
	    strstr(since, "/users/delta") == NULL;
	if (!*full) {
		if ((url = strdup(since)) == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		qerr_clear(e);
		if ((r = delta_round(p, url, cb, arg, next, e)) == 0 || !delta_lost(e))
			return r;
		log_msg(LOG_LVL_INFO, "entra %s: delta token no longer valid (%s): full "
		    "listing", p->name, e->vendor_code);
		free(*next);
		*next = NULL;
		*full = true;
	}
	if (asprintf(&url, "%s/users/delta?$select=%s", p->graph_base, LIST_SELECT) < 0)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return delta_round(p, url, cb, arg, next, e);
}

/* An alert names an Entra account by UPN, by the on-premises SID it was synced from,
 * or by its object id. */
static const struct kind_alert_id entra_alert_ids[] = {
	{ "upn", KIND_MATCH_UPN, "a upn looks like user@domain, without blanks",
	    kind_valid_upn },
	{ "sid", KIND_MATCH_SID, "a sid looks like S-1-5-21-…-1104", kind_valid_sid },
	{ "entra_id", KIND_MATCH_EXTERNAL_ID, "an entra_id is an object id (a GUID)",
	    kind_valid_guid },
};

/* Entra Connect copies objectSid to onPremisesSecurityIdentifier and, by default,
 * the UPN: the same person in both directories. */
static const struct kind_corr_rule entra_corr_rules[] = {
	{ "sid", "ad.sid = entra.sid" },
	{ "upn", "ad.upn = entra.upn" },
};

#define ENTRA_USER_WRITERS ENTRA_ROLE_GA " " ENTRA_ROLE_UA " " ENTRA_ROLE_AUTHA " " \
	ENTRA_ROLE_PAA " " ENTRA_ROLE_DW

/* The seed's "Roles and permissions" table. */
static const struct kind_role_req entra_role_reqs[] = {
	{ ACTION_DISABLE, ENTRA_USER_WRITERS },
	{ ACTION_ENABLE, ENTRA_USER_WRITERS },
	{ ACTION_REVOKE_SESSIONS, ENTRA_USER_WRITERS " " ENTRA_ROLE_HDA },
	{ ACTION_MARK_COMPROMISED, ENTRA_ROLE_GA " " ENTRA_ROLE_SECA " " ENTRA_ROLE_SECO },
};

static const struct kind_info entra_info = {
	.kind = "entra",
	.alert_ids = entra_alert_ids,
	.nalert_ids = sizeof(entra_alert_ids) / sizeof(entra_alert_ids[0]),
	.corr_rules = entra_corr_rules,
	.ncorr_rules = sizeof(entra_corr_rules) / sizeof(entra_corr_rules[0]),
	.role_reqs = entra_role_reqs,
	.nrole_reqs = sizeof(entra_role_reqs) / sizeof(entra_role_reqs[0]),
};

const struct provider_ops provider_entra = {
	.kind = "entra",
	.info = &entra_info,
	.open = entra_open,
	.supports = entra_supports,
	.execute = entra_execute,
	.batch_max = entra_batch_max,
	.execute_batch = entra_execute_batch,
	.list_accounts = entra_list_accounts,
	.list_changes = entra_list_changes,
	.close = entra_close,
};
