/*
 * Okta over the Management API (libcurl through http.h): suspend, unsuspend,
 * deactivate, expire the password, revoke sessions and set the risk level of a user
 * found by its id, and list the org's users. Authenticates with an SSWS API token or
 * as an OAuth 2.0 service app (client credentials, private_key_jwt). Every answer's
 * X-Rate-Limit-* headers pace the next requests of the same bucket so that a steady
 * load never meets a 429, and a counting semaphore caps the requests in flight.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/entra_roles.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/text.h"
#include "providers/http.h"
#include "providers/kit.h"
#include "providers/provider.h"

#define SECRET_MAX		16384
#define TIMEOUT_DEFAULT		"30"
#define CONCURRENCY_DEFAULT	10
#define CONCURRENCY_MAX		75	/* Okta's concurrent request limit per org */
#define HEADROOM_DEFAULT	"0.9"	/* of each window sent at once; the rest is spread */
#define PACE_BLOCK_MAX_MS	2000	/* longer waits go back to the engine */
#define RESET_MARGIN_MS		50
#define CLOCK_SKEW_MS		2000
#define PAGE_LIMIT		200
#define PAGES_MAX		100000
#define SCOPES_DEFAULT		"okta.users.manage okta.userRisk.manage"

/*
 * Okta counts requests per endpoint family (developer.okta.com/docs/reference/
 * rl-global-mgmt): listing users, reading one user, writing one user, and the rest of
 * /api/v1; the token endpoint has its own.
 */
enum bucket_id {
	BUCKET_LIST,
	BUCKET_USER_GET,
	BUCKET_USER_WRITE,
	BUCKET_OTHER,
	BUCKET_TOKEN,
	BUCKET_COUNT
};

/* What the last answers said about one bucket, minus the requests sent since. */
struct bucket {
	long limit;		/* 0: nothing known yet */
	long remaining;		/* estimate: claims made locally are subtracted at once */
	int64_t reset_ms;	/* wall clock ms at which the window resets; 0 unknown */
	int64_t next_ms;	/* earliest send time of the next claim, to spread them */
	int inflight;
};

struct provider {
	char *name;
	/* From the key table (okta_keys). */
	char *org_url;		/* scheme://host[:port], no trailing slash */
	bool plaintext;
	struct kit_secret api_token;	/* SSWS … */
	char *client_id;	/* … or an OAuth service app */
	struct kit_secret key_pem;
	char *key_id;
	char *scopes;
	char *ca_file;
	long timeout;
	double headroom;

	char *token_url;
	const char *alg;	/* "RS256" or "ES256", from the key */
	int max_inflight;
	struct http_client *http;
	struct kit_oauth oauth;	/* with client_id */

	pthread_mutex_t mu;	/* buckets and the semaphore */
	pthread_cond_t cv;
	bool sync_ready;
	int inflight;
	struct bucket buckets[BUCKET_COUNT];
};

/* One answer from Okta, with the parts of an error body every caller reports. */
struct answer {
	struct http_response resp;
	char request_id[128];
	char code[64];
	char summary[448];
	json_t *body;		/* the parsed body when it is JSON, else NULL */
	int attempt;		/* the step's (1 = first), for the backoff of a bare 429 */
	bool concurrency;	/* a 429 for the concurrent-request limit */
};

/* Configuration */

/* Okta scope names, separated by spaces. */
static bool
scopes_ok(const char *v)
{
	return v[0] != '\0' && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._: ") == strlen(v);
}

/* A key id goes into the assertion's header as is. */
static bool
key_id_ok(const char *v)
{
	return kit_one_word(v) && strpbrk(v, "\"\\") == NULL;
}

static bool
fraction_ok(const char *v)
{
	return strtod(v, NULL) > 0.0;
}

#define OFF(f)	offsetof(struct provider, f)

/* An org URL with a path would have it silently dropped, and user info or a query
 * has no business in one. */
static const struct provider_key okta_keys[] = {
	{ .name = "org_url", .type = PROVIDER_KEY_URL, .required = true,
	    .schemes = "https http", .valid = kit_url_no_path, .offset = OFF(org_url),
	    .help = "https://host[:port]" },
	{ .name = "allow_plaintext", .type = PROVIDER_KEY_BOOL, .offset = OFF(plaintext),
	    .help = "yes or no" },
	{ .name = "api_token_file", .type = PROVIDER_KEY_SECRET_FILE, .max = SECRET_MAX,
	    .offset = OFF(api_token), .help = "a file" },
	{ .name = "client_id", .type = PROVIDER_KEY_STRING, .valid = kit_one_word,
	    .offset = OFF(client_id), .help = "one word" },
	{ .name = "private_key_file", .type = PROVIDER_KEY_SECRET_FILE, .max = SECRET_MAX,
	    .multiline = true, .offset = OFF(key_pem), .help = "a file" },
	{ .name = "key_id", .type = PROVIDER_KEY_STRING, .valid = key_id_ok,
	    .offset = OFF(key_id), .help = "one word" },
	{ .name = "scopes", .type = PROVIDER_KEY_STRING, .def = SCOPES_DEFAULT,
	    .valid = scopes_ok, .offset = OFF(scopes),
	    .help = "Okta scope names separated by spaces" },
	{ .name = "ca_file", .type = PROVIDER_KEY_FILE, .offset = OFF(ca_file),
	    .help = "a readable file" },
	{ .name = "timeout", .type = PROVIDER_KEY_LONG, .def = TIMEOUT_DEFAULT, .min = 1,
	    .max = 3600, .offset = OFF(timeout), .help = "whole seconds from 1 to 3600" },
	{ .name = "rate_headroom", .type = PROVIDER_KEY_NUMBER, .def = HEADROOM_DEFAULT,
	    .min = 0, .max = 1, .valid = fraction_ok, .offset = OFF(headroom),
	    .help = "a fraction above 0 and at most 1" },
	{ 0 },
};

static void
okta_close(struct provider *p)
{
	if (p == NULL)
		return;
	http_client_free(p->http);
	if (p->sync_ready) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
	}
	kit_oauth_clear(&p->oauth);
	provider_keys_clear(okta_keys, p);
	free(p->token_url);
	free(p->name);
	free(p);
}

/*
 * Signs a throwaway assertion to learn the key's algorithm: RS256 for an RSA key,
 * ES256 for a P-256 key; anything else is refused now rather than at the first step.
 */
static int
pick_alg(struct provider *p, const struct system_config *cfg,
    const struct config_kv *kv, struct qerr *e)
{
	static const char *const algs[] = { "RS256", "ES256" };
	char hdr[64], *jws = NULL;
	struct qerr ign;
	size_t i;

	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", algs[i]);
		qerr_clear(&ign);
		if (jwt_sign(algs[i], p->key_pem.buf, hdr, "{}", &jws, &ign) == 0) {
			free(jws);
			p->alg = algs[i];
			return 0;
		}
		if (ign.code == QERR_NOMEM)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	return config_error(e, cfg, kv->line, kv->key,
	    "private_key_file %s: not an unencrypted RSA (2048 bits or more) or P-256 "
	    "private key in PEM", kv->value);
}

static int
check_auth(struct provider *p, const struct system_config *cfg, struct qerr *e)
{
	const struct config_kv *token = config_system_get(cfg, "api_token_file");
	const struct config_kv *key = config_system_get(cfg, "private_key_file");
	const struct config_kv *kid = config_system_get(cfg, "key_id");

	if (token != NULL && (p->client_id != NULL || key != NULL))
		return config_error(e, cfg, token->line, "api_token_file",
		    "use api_token_file or client_id + private_key_file, not both");
	if (token == NULL && (p->client_id == NULL || key == NULL)) {
		const struct config_kv *kv = p->client_id != NULL ?
		    config_system_get(cfg, "client_id") : key;

		return config_error(e, cfg, kv != NULL ? kv->line : cfg->line,
		    p->client_id == NULL ? "client_id" : "private_key_file",
		    "system \"%s\" needs api_token_file, or client_id and "
		    "private_key_file", p->name);
	}
	if (kid != NULL && token != NULL)
		return config_error(e, cfg, kid->line, "key_id",
		    "key_id goes with private_key_file, not api_token_file");
	if (token != NULL)
		return kit_one_word(p->api_token.buf) ? 0 : config_error(e, cfg, token->line,
		    "api_token_file", "api_token_file %s: must hold one token on one line",
		    token->value);
	return pick_alg(p, cfg, key, e);
}

/* What the key table cannot say alone: plaintext by choice, Okta's own cap on
 * requests in flight. */
static int
check_url_keys(struct provider *p, const struct system_config *cfg, struct qerr *e)
{
	const struct config_kv *conc = config_system_get(cfg, "max_concurrency");
	long n = CONCURRENCY_DEFAULT;

	if (strncmp(p->org_url, "http:", 5) == 0 && !p->plaintext)
		return config_error(e, cfg, config_system_get(cfg, "org_url")->line, "org_url",
		    "http:// sends the API credentials in clear: use https://, or set "
		    "allow_plaintext = yes (tests only)");
	if (conc != NULL && config_long(conc->value, 1, CONCURRENCY_MAX, &n) != 0)
		return config_error(e, cfg, conc->line, "max_concurrency",
		    "max_concurrency must be from 1 to %d (Okta's concurrent request limit), "
		    "not \"%s\"", CONCURRENCY_MAX, conc->value);
	p->max_inflight = (int)n;
	if (asprintf(&p->token_url, "%s/oauth2/v1/token", p->org_url) == -1) {
		p->token_url = NULL;
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	return 0;
}

static int send_token_request(void *arg, const struct http_request *req,
    struct http_response *resp, struct qerr *e);

static int
start_sync(struct provider *p, struct qerr *e)
{
	struct kit_oauth_config oc = { .vendor = "Okta", .token_url = p->token_url,
	    .client_id = p->client_id, .scope = p->scopes, .key_pem = p->key_pem.buf,
	    .alg = p->alg, .kid = p->key_id };

	if (pthread_mutex_init(&p->mu, NULL) != 0)
		return qerr_set(e, QERR_INTERNAL, NULL, "pthread_mutex_init failed");
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		return qerr_set(e, QERR_INTERNAL, NULL, "pthread_cond_init failed");
	}
	p->sync_ready = true;
	if (p->client_id == NULL)
		return 0;
	return kit_oauth_init(&p->oauth, &oc, send_token_request, p, e);
}

static int
okta_open(const struct system_config *cfg, struct provider **out, struct qerr *e)
{
	struct http_options ho = { 0 };
	struct provider *p = NULL;
	int r = QERR_INTERNAL;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if ((p->name = strdup(cfg->name != NULL ? cfg->name : "")) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((r = provider_keys_parse(okta_keys, cfg, p, e)) != 0 ||
	    (r = check_url_keys(p, cfg, e)) != 0 || (r = check_auth(p, cfg, e)) != 0)
		goto out;
	ho.ca_file = p->ca_file;
	ho.timeout_ms = p->timeout * 1000;
	ho.connect_timeout_ms = ho.timeout_ms < 5000 ? ho.timeout_ms : 5000;
	ho.system = p->name;
	if ((r = http_client_new(&ho, &p->http, e)) != 0 || (r = start_sync(p, e)) != 0)
		goto out;
	*out = p;
	p = NULL;
	r = 0;
out:
	okta_close(p);
	return r;
}

/* Pacing: the counting semaphore and the rate-limit buckets */

static void
sem_take(struct provider *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->inflight >= p->max_inflight)
		pthread_cond_wait(&p->cv, &p->mu);
	p->inflight++;
	pthread_mutex_unlock(&p->mu);
}

static void
sem_give(struct provider *p)
{
	pthread_mutex_lock(&p->mu);
	p->inflight--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Where the spreading starts: below this many requests left in the window. */
static long
bucket_tail(const struct provider *p, long limit)
{
	long use = (long)((double)limit * p->headroom);	/* truncates: both positive */

	return limit - (use > 0 ? use : 1);
}

/*
 * Claims one request of bucket b. Returns 0 with *wait_ms how long to sleep before
 * sending (claimed), or 1 with *wait_ms until the bucket has room (not claimed).
 * While more than the tail is left, requests go at once; the tail is spread evenly
 * until the reset, so that a steady load meets the end of the window with one
 * request to spare instead of a 429, and the next window starts on time.
 */
static int
bucket_claim(struct provider *p, struct bucket *b, int64_t now, int64_t *wait_ms)
{
	int64_t slot;

	*wait_ms = 0;
	if (b->limit > 0 && b->reset_ms > 0 && now >= b->reset_ms) {
		/* The window is over: assume a fresh one until an answer says more. */
		b->remaining = b->limit - b->inflight;
		b->reset_ms = 0;
		b->next_ms = now;
	}
	if (b->limit > 0 && b->remaining <= 1) {
		*wait_ms = b->reset_ms > 0 ? b->reset_ms - now + RESET_MARGIN_MS : 100;
		return 1;
	}
	if (b->limit > 0 && b->reset_ms > 0 && b->remaining <= bucket_tail(p, b->limit)) {
		slot = b->next_ms > now ? b->next_ms : now;
		b->next_ms = slot + (b->reset_ms - slot) / (b->remaining - 1);
		*wait_ms = slot - now;
	}
	b->remaining--;
	b->inflight++;
	return 0;
}

/*
 * Waits for room in the bucket, up to PACE_BLOCK_MAX_MS in all; past that, returns the
 * time left so that the engine retries then rather than holding a worker.
 */
static int
pace(struct provider *p, enum bucket_id id, int64_t *retry_ms)
{
	struct bucket *b = &p->buckets[id];
	int64_t start = clock_mono_ms(), wait, waited;
	int full;

	for (;;) {
		pthread_mutex_lock(&p->mu);
		full = bucket_claim(p, b, clock_real_ms(), &wait);
		if (!full && wait > PACE_BLOCK_MAX_MS) {
			/* Too far out: give the slot back and let the engine wait. */
			b->remaining++;
			b->inflight--;
			full = 1;
		}
		pthread_mutex_unlock(&p->mu);
		waited = clock_mono_ms() - start;
		if (!full) {
			clock_sleep_ms(wait);
			return 0;
		}
		if (waited + wait > PACE_BLOCK_MAX_MS) {
			*retry_ms = wait > 0 ? wait : 1;
			return 1;
		}
		clock_sleep_ms(wait);
	}
}

static int
header_long(const struct http_response *resp, const char *name, long *out)
{
	char buf[32], *end;
	long long v;

	if (http_header_get(resp, name, buf, sizeof(buf)) == NULL)
		return -1;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0 || end == buf || *end != '\0' || v < 0 || v > INT64_MAX / 1000 ||
	    v > LONG_MAX)
		return -1;
	*out = (long)v;
	return 0;
}

/*
 * The difference between our clock and Okta's, from its Date header, when it is
 * large enough to matter: X-Rate-Limit-Reset is Okta's clock.
 */
static int64_t
clock_skew_ms(const struct http_response *resp, int64_t now)
{
	char buf[64];
	struct tm tm = { 0 };
	const char *end;
	time_t t;
	int64_t skew;

	if (http_header_get(resp, "Date", buf, sizeof(buf)) == NULL ||
	    (end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm)) == NULL || *end != '\0' ||
	    (t = timegm(&tm)) == (time_t)-1)
		return 0;
	skew = now - (int64_t)t * 1000;
	return skew > CLOCK_SKEW_MS || skew < -CLOCK_SKEW_MS ? skew : 0;
}

/* Takes in the X-Rate-Limit-* headers of an answer, and releases its claim. */
static void
bucket_update(struct provider *p, enum bucket_id id, const struct http_response *resp)
{
	struct bucket *b = &p->buckets[id];
	int64_t now = clock_real_ms(), reset;
	long limit, rem, reset_s;

	pthread_mutex_lock(&p->mu);
	b->inflight--;
	if (resp != NULL && header_long(resp, "X-Rate-Limit-Limit", &limit) == 0 &&
	    header_long(resp, "X-Rate-Limit-Remaining", &rem) == 0 &&
	    header_long(resp, "X-Rate-Limit-Reset", &reset_s) == 0 && limit > 0) {
		reset = (int64_t)reset_s * 1000 + clock_skew_ms(resp, now);
		/* Requests still in flight may not be counted in rem yet: assume they are not. */
		rem -= b->inflight;
		if (b->limit == 0 || b->reset_ms == 0 || reset > b->reset_ms) {
			b->remaining = rem;
			b->reset_ms = reset > now ? reset : now + 1000;
			if (b->next_ms > now)
				b->next_ms = now;
		} else if (reset == b->reset_ms && rem < b->remaining)
			b->remaining = rem;
		b->limit = limit;
	}
	pthread_mutex_unlock(&p->mu);
}

/*
 * Whether a 429 is Okta's concurrent-request limit rather than a rate limit: its
 * X-Rate-Limit-* headers then give the concurrent values, a limit no more than quell's
 * requests in flight, or below the bucket's known rate limit and within Okta's
 * concurrent range. Such headers are no reading of the bucket.
 */
static bool
concurrency_refusal(struct provider *p, enum bucket_id id,
    const struct http_response *resp)
{
	long limit;
	bool r;

	if (resp->status != 429 || header_long(resp, "X-Rate-Limit-Limit", &limit) != 0)
		return false;
	pthread_mutex_lock(&p->mu);
	r = limit <= p->inflight ||
	    (limit < p->buckets[id].limit && limit <= CONCURRENCY_MAX);
	pthread_mutex_unlock(&p->mu);
	return r;
}

/*
 * How long to wait after a 429: its Retry-After, else until its bucket resets (its
 * X-Rate-Limit-Reset), else an exponential backoff by attempt.
 */
static int
retry_after(const struct http_response *resp, int attempt)
{
	int64_t now = clock_real_ms(), ms;
	long reset_s;
	int ra;

	if ((ra = kit_retry_after(resp)) >= 0)
		return ra;
	if (header_long(resp, "X-Rate-Limit-Reset", &reset_s) != 0)
		return kit_backoff_ms(attempt);
	ms = (int64_t)reset_s * 1000 + clock_skew_ms(resp, now) - now + RESET_MARGIN_MS;
	if (ms < 1)
		return 1;
	return ms > KIT_RETRY_AFTER_CAP_MS ? KIT_RETRY_AFTER_CAP_MS : (int)ms;
}

static enum bucket_id
bucket_of(const char *method, const char *path)
{
	const char *rest;

	if (strncmp(path, "/oauth2/", 8) == 0)
		return BUCKET_TOKEN;
	if (strncmp(path, "/api/v1/users", 13) != 0)
		return BUCKET_OTHER;
	rest = path + 13;
	if (*rest == '\0' || *rest == '?')
		return BUCKET_LIST;
	if (*rest != '/' || strpbrk(rest + 1, "/?") != NULL)
		return BUCKET_OTHER;
	return strcmp(method, "GET") == 0 ? BUCKET_USER_GET : BUCKET_USER_WRITE;
}

/* Answers */

static void
answer_clear(struct answer *a)
{
	http_response_clear(&a->resp);
	json_decref(a->body);
	memset(a, 0, sizeof(*a));
}

static const char *
json_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/*
 * Reads Okta's error body {errorCode, errorSummary, errorId, errorCauses}: the code
 * and the summary with its causes go into a, the request id stays the header's.
 */
static void
answer_error(struct answer *a)
{
	json_t *causes, *c;
	const char *code, *sum, *id, *cs;
	size_t i, n;

	code = json_str(a->body, "errorCode");
	sum = json_str(a->body, "errorSummary");
	id = json_str(a->body, "errorId");
	if (code == NULL || sum == NULL) {
		snprintf(a->code, sizeof(a->code), "http_%ld", a->resp.status);
		snprintf(a->summary, sizeof(a->summary), "Okta answered HTTP %ld without "
		    "an Okta error body", a->resp.status);
		return;
	}
	snprintf(a->code, sizeof(a->code), "%s", code);
	snprintf(a->summary, sizeof(a->summary), "%s", sum);
	if (a->request_id[0] == '\0' && id != NULL)
		snprintf(a->request_id, sizeof(a->request_id), "%s", id);
	causes = json_object_get(a->body, "errorCauses");
	json_array_foreach(causes, i, c) {
		if ((cs = json_str(c, "errorSummary")) == NULL || *cs == '\0')
			continue;
		n = strlen(a->summary);
		snprintf(a->summary + n, sizeof(a->summary) - n, "%s%s",
		    i == 0 ? ": " : "; ", cs);
	}
}

static void
answer_read(struct answer *a)
{
	json_error_t jerr;

	http_header_get(&a->resp, "X-Okta-Request-Id", a->request_id,
	    sizeof(a->request_id));
	if (a->resp.body != NULL && a->resp.len > 0)
		a->body = json_loadb(a->resp.body, a->resp.len, JSON_REJECT_DUPLICATES, &jerr);
	if (a->resp.status < 200 || a->resp.status > 299) {
		if (!json_is_object(a->body)) {
			json_decref(a->body);
			a->body = NULL;
		}
		answer_error(a);
	}
}

/* Tokens */

/* Until the token endpoint's bucket resets, when its headers said; else a backoff. */
static int
token_wait_ms(struct provider *p)
{
	int64_t ms;

	pthread_mutex_lock(&p->mu);
	ms = p->buckets[BUCKET_TOKEN].reset_ms;
	pthread_mutex_unlock(&p->mu);
	if (ms == 0)
		return kit_backoff_ms(1);
	ms += RESET_MARGIN_MS - clock_real_ms();
	return ms < 1 ? 1 : ms > KIT_RETRY_AFTER_CAP_MS ? KIT_RETRY_AFTER_CAP_MS : (int)ms;
}

/* The token request, paced in the token endpoint's own bucket (QERR_BUSY: held back). */
static int
send_token_request(void *arg, const struct http_request *req, struct http_response *resp,
    struct qerr *e)
{
	struct provider *p = arg;
	int64_t wait;
	int r;

	if (pace(p, BUCKET_TOKEN, &wait) != 0)
		return qerr_set(e, QERR_BUSY, NULL, "held back for Okta's token endpoint "
		    "rate limit");
	r = http_do(p->http, req, resp, e);
	bucket_update(p, BUCKET_TOKEN, r == 0 ? resp : NULL);
	return r;
}

/*
 * The Authorization value in *auth (caller frees with kit_free_str), fetching a token
 * when there is none, it is near its end, or the one used last (*gen) was refused.
 * 0, or -1 with res settled.
 */
static int
auth_header(struct provider *p, bool refused, unsigned *gen, char **auth,
    struct step_result *res)
{
	struct qerr e;
	int r;

	if (p->client_id == NULL) {
		if (asprintf(auth, "SSWS %s", p->api_token.buf) >= 0)
			return 0;
		*auth = NULL;
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "noMemory", "out of memory");
		return -1;
	}
	qerr_clear(&e);
	if ((r = kit_oauth_get(&p->oauth, refused ? *gen : 0, auth, gen, &e)) == 0)
		return 0;
	if (r == QERR_BUSY) {
		kit_result_paced(res, token_wait_ms(p), "Okta's rate limit for the token "
		    "endpoint");
		return -1;
	}
	provider_result_set(res, r == QERR_PERMANENT ? STEP_OUTCOME_PERMANENT :
	    STEP_OUTCOME_TRANSIENT, e.vendor_code[0] != '\0' ? e.vendor_code : "tokenError",
	    "%s", e.msg);
	if (e.status == 429)
		res->retry_after_ms = token_wait_ms(p);
	return -1;
}

/* Requests */

/*
 * One paced exchange, under the caller's semaphore slot. Returns 0 with *a filled
 * (any status), or -1 with res settled (no answer, or the bucket is full for long).
 */
static int
send_raw(struct provider *p, const char *method, const char *url, const char *path,
    const char *ctype, const char *body, const char *auth, struct answer *a,
    struct step_result *res)
{
	struct http_header hdrs[3] = { { "Accept", "application/json" } };
	struct http_request rq = { .method = method, .url = url, .headers = hdrs };
	enum bucket_id bid = bucket_of(method, path);
	struct qerr e;
	int64_t wait;
	int r;

	rq.nheaders = 1;
	if (ctype != NULL) {
		hdrs[rq.nheaders++] = (struct http_header){ "Content-Type", ctype };
		rq.body = body;
		rq.body_len = strlen(body);
	}
	if (auth != NULL)
		hdrs[rq.nheaders++] = (struct http_header){ "Authorization", auth };
	if (pace(p, bid, &wait) != 0) {
		kit_result_paced(res, wait, "Okta's rate limit for this endpoint");
		return -1;
	}
	qerr_clear(&e);
	r = http_do(p->http, &rq, &a->resp, &e);
	a->concurrency = r == 0 && concurrency_refusal(p, bid, &a->resp);
	bucket_update(p, bid, r == 0 && !a->concurrency ? &a->resp : NULL);
	if (r != 0) {
		provider_result_set(res, r == QERR_PERMANENT ? STEP_OUTCOME_PERMANENT :
		    STEP_OUTCOME_TRANSIENT, r == QERR_PERMANENT ? "tls" : "network",
		    "no answer from Okta at %s: %s", p->org_url, e.msg);
		return -1;
	}
	answer_read(a);
	return 0;
}

/*
 * An authenticated API call: a 401 with an OAuth token renews the token once and
 * sends again once. 0 with *a filled, or -1 with res settled.
 */
static int
call(struct provider *p, const char *method, const char *path, const char *json,
    struct answer *a, struct step_result *res)
{
	char *auth = NULL, *url = NULL;
	unsigned gen = 0;
	int r = -1, attempt, step_attempt = a->attempt;

	if (asprintf(&url, "%s%s", p->org_url, path) == -1) {
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "noMemory", "out of memory");
		return -1;
	}
	sem_take(p);
	for (attempt = 0;; attempt++) {
		kit_free_str(auth);
		if (auth_header(p, attempt > 0, &gen, &auth, res) != 0) {
			r = -1;
			break;
		}
		answer_clear(a);
		a->attempt = step_attempt;
		r = send_raw(p, method, url, path, json != NULL ? "application/json" : NULL,
		    json, auth, a, res);
		/* E0000011 to an OAuth token: it was revoked or expired early. */
		if (r != 0 || a->resp.status != 401 || strcmp(a->code, "E0000011") != 0 ||
		    p->client_id == NULL || attempt > 0)
			break;
	}
	sem_give(p);
	kit_free_str(auth);
	free(url);
	return r;
}

/* The outcome of an error answer that no action explains better. */
static void
result_from_answer(struct step_result *res, const struct answer *a)
{
	long st = a->resp.status;

	snprintf(res->request_id, sizeof(res->request_id), "%s", a->request_id);
	snprintf(res->error_code, sizeof(res->error_code), "%s", a->code);
	res->outcome = st == 429 || st >= 500 ? STEP_OUTCOME_TRANSIENT :
	    STEP_OUTCOME_PERMANENT;
	if (st == 429 && a->concurrency) {
		res->retry_after_ms = retry_after(&a->resp, a->attempt);
		res->concurrency_limited = true;
		snprintf(res->message, sizeof(res->message), "refused by Okta's limit of "
		    "concurrent requests (%.400s); retrying with fewer at once", a->summary);
	} else if (st == 429) {
		res->retry_after_ms = retry_after(&a->resp, a->attempt);
		snprintf(res->message, sizeof(res->message),
		    "rate limited by Okta (%.400s); retrying when the limit resets", a->summary);
	} else if (st == 404 && strcmp(a->code, "E0000007") == 0)
		snprintf(res->message, sizeof(res->message), "account not found in Okta");
	else if (st == 401)
		snprintf(res->message, sizeof(res->message),
		    "Okta refused quell's credentials: %s", a->summary);
	else if (st == 403)
		snprintf(res->message, sizeof(res->message), "refused by Okta: %s",
		    a->summary);
	else
		snprintf(res->message, sizeof(res->message), "Okta answered HTTP %ld: %s",
		    st, a->summary);
}

/* Actions */

struct verb {
	enum action_type type;
	const char *method;
	const char *suffix;	/* path after /api/v1/users/{id} */
	const char *want;	/* Okta status meaning "already done", or NULL */
	const char *already;
	const char *done;
	const char *state;	/* after success */
	const char *name;	/* "cannot <name>: …" */
	/* The one Okta status the call is documented for (NULL: not just one), and
	 * what the analyst can do for a user in another. */
	const char *from;
	const char *instead;
};

static const struct verb verbs[] = {
	{ ACTION_DISABLE, "POST", "/lifecycle/suspend", "SUSPENDED",
	    "already suspended", "suspended", "suspended", "suspend", "ACTIVE",
	    "revoke sessions or deactivate instead" },
	{ ACTION_ENABLE, "POST", "/lifecycle/unsuspend", "ACTIVE",
	    "already active", "unsuspended", "enabled", "unsuspend", "SUSPENDED", NULL },
	{ ACTION_DEACTIVATE, "POST", "/lifecycle/deactivate?sendEmail=false",
	    "DEPROVISIONED", "already deactivated", "deactivated", "deprovisioned",
	    "deactivate", NULL, NULL },
	{ ACTION_FORCE_PASSWORD_CHANGE, "POST", "/lifecycle/expire_password",
	    "PASSWORD_EXPIRED", "already must change password",
	    "the password must be changed at next sign-in", "password_expired",
	    "expire the password", NULL, NULL },
	{ ACTION_REVOKE_SESSIONS, "DELETE", "/sessions?oauthTokens=true",
	    NULL, NULL, "sessions and OAuth tokens revoked", NULL, "revoke sessions",
	    NULL, NULL },
	{ ACTION_SET_RISK, "PUT", "/risk", NULL, NULL, NULL, NULL,
	    "set the risk", NULL, NULL },
};

static const struct verb *
verb_of(enum action_type t)
{
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].type == t)
			return &verbs[i];
	return NULL;
}

static bool
okta_supports(const struct provider *p, enum action_type type)
{
	(void)p;
	return verb_of(type) != NULL;
}

/* ACTIVE → enabled and so on; the analyst's words for Okta's statuses. */
static void
state_of(const char *status, char *out, size_t len)
{
	size_t i;

	if (strcmp(status, "ACTIVE") == 0)
		snprintf(out, len, "enabled");
	else {
		for (i = 0; status[i] != '\0' && i + 1 < len; i++)
			out[i] = (char)(status[i] >= 'A' && status[i] <= 'Z' ?
			    status[i] - 'A' + 'a' : status[i]);
		out[i] = '\0';
	}
}

/* Okta statuses are upper-case words with underscores. */
static bool
status_ok(const char *s)
{
	return s != NULL && *s != '\0' && strlen(s) < 32 &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == strlen(s);
}

/*
 * Why v cannot move a user in status (an Okta status word), or false when it can
 * or nothing documented says otherwise. A deactivated user needs nothing instead.
 */
static bool
refusal(const struct verb *v, const char *status, char *why, size_t len)
{
	bool gone = strcmp(status, "DEPROVISIONED") == 0;
	const char *instead = gone ? "the user is deactivated" : v->instead;

	if (v->from == NULL || strcmp(status, v->from) == 0 || strcmp(status, v->want) == 0)
		return false;
	snprintf(why, len, "Okta cannot %s a user in %s (only %s users)%s%s", v->name,
	    status, v->from, instead != NULL ? ": " : "", instead != NULL ? instead : "");
	return true;
}

/* Every status Okta documents for a user, in the analyst's words (state_of). */
static const char *const okta_statuses[] = { "STAGED", "PROVISIONED", "ACTIVE",
	"RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT", "SUSPENDED", "DEPROVISIONED" };

/* The preview's warning, from the state sync last read ("recovery", "enabled"). */
static bool
okta_refuses(const struct provider *p, const struct account *acct, enum action_type type,
    char *why, size_t len)
{
	const struct verb *v = verb_of(type);
	char state[32];
	size_t i;

	(void)p;
	if (v == NULL || acct->state == NULL)
		return false;
	for (i = 0; i < sizeof(okta_statuses) / sizeof(okta_statuses[0]); i++) {
		state_of(okta_statuses[i], state, sizeof(state));
		if (strcmp(state, acct->state) == 0)
			return refusal(v, okta_statuses[i], why, len);
	}
	return false;
}

/*
 * Reads the user's status: 0 with *status and *moving (transitioningToStatus, may be
 * NULL) borrowed from a, or -1 with res settled. doing says what for, in the message
 * about a user without a valid status.
 */
static int
read_status(struct provider *p, const char *id, const char *doing, struct answer *a,
    const char **status, const char **moving, struct step_result *res)
{
	char path[256];

	snprintf(path, sizeof(path), "/api/v1/users/%s", id);
	if (call(p, "GET", path, NULL, a, res) != 0)
		return -1;
	if (a->resp.status != 200) {
		result_from_answer(res, a);
		return -1;
	}
	*status = json_str(a->body, "status");
	*moving = json_str(a->body, "transitioningToStatus");
	if (!json_is_object(a->body) || !status_ok(*status)) {
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "invalidResponse",
		    "%s, Okta sent a user without a valid status", doing);
		return -1;
	}
	return 0;
}

static bool
reached(const struct verb *v, const char *status, const char *moving)
{
	return strcmp(status, v->want) == 0 || (moving != NULL && strcmp(moving, v->want) == 0);
}

/*
 * Okta refused a lifecycle call because of the user's status. Read the user and say
 * which: already there is success, anything else is permanent and names the status.
 */
static void
explain_refusal(struct provider *p, const struct verb *v, const char *id,
    const struct answer *first, struct step_result *res)
{
	struct answer a = { 0 };
	const char *status, *moving;
	char doing[128], why[256];

	snprintf(doing, sizeof(doing), "after refusing to %s the user (%s)", v->name,
	    first->code);
	if (read_status(p, id, doing, &a, &status, &moving, res) != 0)
		goto out;
	snprintf(res->request_id, sizeof(res->request_id), "%s", first->request_id);
	state_of(status, res->state, sizeof(res->state));
	if (reached(v, status, moving))
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "%s", v->already);
	else if (refusal(v, status, why, sizeof(why)))
		provider_result_set(res, STEP_OUTCOME_PERMANENT, first->code, "%s", why);
	else
		provider_result_set(res, STEP_OUTCOME_PERMANENT, first->code,
		    "cannot %s: the Okta user is %s (%.300s)", v->name, status,
		    first->summary);
out:
	answer_clear(&a);
}

/*
 * Deactivation is destructive and a deactivated user needs no second one: read the
 * user first and send nothing when Okta has it DEPROVISIONED or on its way there.
 * 0 to go on, else res is settled ("already deactivated", or the read failed).
 */
static int
deactivated_already(struct provider *p, const struct verb *v, const char *id,
    struct step_result *res)
{
	struct answer a = { 0 };
	const char *status, *moving;
	int r = -1;

	if (read_status(p, id, "reading the user before deactivating it", &a, &status,
	    &moving, res) != 0)
		goto out;
	r = 0;
	if (!reached(v, status, moving))
		goto out;
	snprintf(res->request_id, sizeof(res->request_id), "%s", a.request_id);
	state_of(status, res->state, sizeof(res->state));
	provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "%s", v->already);
	r = 1;
out:
	answer_clear(&a);
	return r;
}

/*
 * Reads params.risk_level: HIGH, MEDIUM or LOW as routes.c lets through; an undo's
 * is the account's in params.risk_level_before, which engine_undo wrote.
 */
static int
risk_body(const struct step *step, char *out, size_t len, struct step_result *res)
{
	json_error_t jerr;
	json_t *root;
	const char *lvl;

	root = step->params != NULL ? json_loads(step->params, JSON_REJECT_DUPLICATES,
	    &jerr) : NULL;
	lvl = provider_step_undo(step) ? json_str(json_object_get(root,
	    "risk_level_before"), step->account_id) : json_str(root, "risk_level");
	if (lvl == NULL || (strcmp(lvl, "HIGH") && strcmp(lvl, "MEDIUM") &&
	    strcmp(lvl, "LOW"))) {
		json_decref(root);
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "invalidParams",
		    "set_risk needs params.risk_level HIGH, MEDIUM or LOW");
		return -1;
	}
	snprintf(out, len, "{\"riskLevel\":\"%s\"}", lvl);
	json_decref(root);
	return 0;
}

/*
 * Okta answers a risk update in an org without Identity Threat Protection's Risk
 * Scoring with E0000015, "You do not have permission to access the feature you are
 * requesting" (developer.okta.com/docs/reference/error-codes: HTTP 401; some orgs
 * answer 403), so the code decides, not the status.
 */
static bool
risk_scoring_off(const struct answer *a)
{
	return strcmp(a->code, "E0000015") == 0;
}

static bool
level_ok(const char *lvl)
{
	return lvl != NULL && *lvl != '\0' && strlen(lvl) < 16 &&
	    strspn(lvl, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == strlen(lvl);
}

/*
 * The user's risk level before the change (GET …/risk: NONE when none was set), into
 * was, for an undo to restore; empty when it could not be read. A failed read does
 * not hold the change back: it only leaves the change without an undo.
 */
static void
risk_read(struct provider *p, const struct step *step, char *was, size_t len)
{
	struct answer a = { .attempt = step->attempts + 1 };
	struct step_result tmp = { 0 };
	char path[256];
	const char *lvl;

	was[0] = '\0';
	snprintf(path, sizeof(path), "/api/v1/users/%s/risk", step->account_ref);
	if (call(p, "GET", path, NULL, &a, &tmp) == 0 && a.resp.status == 200 &&
	    level_ok(lvl = json_str(a.body, "riskLevel")))
		snprintf(was, len, "%s", lvl);
	answer_clear(&a);
}

/* The message keeps "(was LEVEL)": engine_undo reads the level to restore there. */
static void
risk_done(const struct answer *a, const char *sent, const char *was,
    struct step_result *res)
{
	const char *lvl = json_str(a->body, "riskLevel");
	char before[32] = "";

	if (was[0] != '\0')
		snprintf(before, sizeof(before), " (was %s)", was);
	if (!level_ok(lvl)) {
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "risk level set to %s%s "
		    "(Okta's answer did not echo it)", sent, before);
		return;
	}
	provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "risk level set to %s%s", lvl,
	    before);
}

static bool
user_id_ok(const char *id)
{
	size_t n;

	if (id == NULL || (n = strlen(id)) == 0 || n > 64)
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789") == n;
}

static void
settle(struct provider *p, const struct step *step, const struct verb *v,
    const struct answer *a, const char *sent, const char *was, struct step_result *res)
{
	const char *status;

	if (a->resp.status >= 200 && a->resp.status <= 299) {
		snprintf(res->request_id, sizeof(res->request_id), "%s", a->request_id);
		if (step->type == ACTION_SET_RISK) {
			risk_done(a, sent, was, res);
			return;
		}
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "%s", v->done);
		status = json_str(a->body, "status");
		if (status_ok(status))
			state_of(status, res->state, sizeof(res->state));
		else if (v->state != NULL)
			snprintf(res->state, sizeof(res->state), "%s", v->state);
		return;
	}
	if (step->type == ACTION_SET_RISK && risk_scoring_off(a)) {
		result_from_answer(res, a);
		snprintf(res->message, sizeof(res->message),
		    "Risk Scoring is not enabled in this Okta org");
		return;
	}
	/*
	 * Okta refuses a transition from the wrong status with E0000001 (suspend,
	 * unsuspend: "Perform this operation only on users with an ACTIVE status") or
	 * E0000038 ("This operation is not allowed in the user's current status").
	 */
	if (v->want != NULL && ((a->resp.status == 400 && strcmp(a->code, "E0000001") == 0) ||
	    (a->resp.status == 403 && strcmp(a->code, "E0000038") == 0))) {
		explain_refusal(p, v, step->account_ref, a, res);
		return;
	}
	result_from_answer(res, a);
}

static int
okta_execute(struct provider *p, const struct step *step, struct step_result *res)
{
	const struct verb *v = verb_of(step->type);
	struct answer a = { .attempt = step->attempts + 1 };
	char path[256], body[64] = "", sent[16] = "", was[16] = "";

	memset(res, 0, sizeof(*res));
	if (v == NULL) {
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "unsupported",
		    "not supported by Okta");
		return 0;
	}
	if (!user_id_ok(step->account_ref)) {
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "invalidAccountRef",
		    "account reference is not an Okta user id");
		return 0;
	}
	if (provider_step_undo(step) && step->type != ACTION_SET_RISK) {
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "unsupported",
		    "Okta cannot undo %s: an expired password is changed by the user, "
		    "not withdrawn", action_type_name(step->type));
		return 0;
	}
	if (step->type == ACTION_SET_RISK) {
		if (risk_body(step, body, sizeof(body), res) != 0)
			return 0;
		sscanf(body, "{\"riskLevel\":\"%15[A-Z]", sent);
		risk_read(p, step, was, sizeof(was));
	}
	if (step->type == ACTION_DEACTIVATE &&
	    deactivated_already(p, v, step->account_ref, res) != 0)
		return 0;
	/* The id is plain alphanumeric (checked above): no escaping needed. */
	snprintf(path, sizeof(path), "/api/v1/users/%s%s", step->account_ref, v->suffix);
	if (call(p, v->method, path, body[0] != '\0' ? body : NULL, &a, res) == 0)
		settle(p, step, v, &a, sent, was, res);
	answer_clear(&a);
	return 0;
}

/* Listing */

/* The path of the next page from the Link header's rel="next", which must stay
 * under org_url: a link elsewhere would receive the token. */
static int
next_link(const struct provider *p, const struct http_response *resp, char **next)
{
	char *url = NULL;
	int r;

	*next = NULL;
	if ((r = kit_link_next(resp, p->org_url, &url)) != 0 || url == NULL)
		return r;
	*next = strdup(url + strlen(p->org_url));
	free(url);
	return *next != NULL ? 0 : QERR_NOMEM;
}

/* Joins first and last name with a space; either may be missing. */
static char *
full_name(json_t *profile)
{
	const char *f = json_str(profile, "firstName"), *l = json_str(profile, "lastName");
	char *s = NULL;

	if (f == NULL && l == NULL)
		return NULL;
	if (asprintf(&s, "%s%s%s", f != NULL ? f : "", f != NULL && l != NULL ? " " : "",
	    l != NULL ? l : "") == -1)
		return NULL;
	return s;
}

/* 1 when u is malformed (skipped), -1 out of memory, else 0 with *cbret set. */
static int
list_user(struct provider *p, json_t *u, provider_account_cb cb, void *arg, int *cbret)
{
	char kind[] = "okta", state[32];
	struct account acct = { 0 };
	json_t *profile = json_object_get(u, "profile");
	const char *id = json_str(u, "id"), *status = json_str(u, "status");
	const char *login = json_str(profile, "login"), *email;
	json_t *ev = json_object_get(profile, "email");

	email = json_string_value(ev);
	if (!json_is_object(u) || !user_id_ok(id) || !status_ok(status) ||
	    !json_is_object(profile) || login == NULL || *login == '\0' ||
	    (ev != NULL && !json_is_null(ev) && email == NULL)) {
		log_msg(LOG_LVL_WARN, "okta %s: skipped malformed user %.64s", p->name,
		    user_id_ok(id) ? id : "(no valid id)");
		return 1;
	}
	if ((json_object_get(profile, "firstName") != NULL &&
	    !json_is_string(json_object_get(profile, "firstName")) &&
	    !json_is_null(json_object_get(profile, "firstName"))) ||
	    (json_object_get(profile, "lastName") != NULL &&
	    !json_is_string(json_object_get(profile, "lastName")) &&
	    !json_is_null(json_object_get(profile, "lastName")))) {
		log_msg(LOG_LVL_WARN, "okta %s: skipped malformed user %s", p->name, id);
		return 1;
	}
	state_of(status, state, sizeof(state));
	acct.system = p->name;
	acct.kind = kind;
	acct.external_id = (char *)id;
	acct.username = (char *)login;
	acct.email = (char *)email;
	acct.state = state;
	acct.display_name = full_name(profile);
	if (acct.display_name == NULL && (json_is_string(json_object_get(profile,
	    "firstName")) || json_is_string(json_object_get(profile, "lastName"))))
		return -1;
	*cbret = cb(&acct, arg);
	free(acct.display_name);
	return 0;
}

static int
list_page(struct provider *p, struct answer *a, provider_account_cb cb, void *arg,
    size_t *skipped, struct qerr *e)
{
	json_t *u;
	size_t i;
	int x, cbret = 0;

	if (!json_is_array(a->body))
		return qerr_set(e, QERR_TRANSIENT, NULL,
		    "Okta answered the user listing with something other than a JSON array");
	json_array_foreach(a->body, i, u) {
		if ((x = list_user(p, u, cb, arg, &cbret)) < 0)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		*skipped += (size_t)x;
		if (cbret != 0)
			return cbret;
	}
	return 0;
}

static int
list_failed(struct answer *a, struct step_result *res, struct qerr *e)
{
	if (a->resp.status != 0 && (a->resp.status < 200 || a->resp.status > 299))
		result_from_answer(res, a);
	qerr_set(e, res->outcome == STEP_OUTCOME_TRANSIENT ? QERR_TRANSIENT :
	    QERR_PERMANENT, NULL, "listing Okta users: %s", res->message);
	if (e != NULL)
		snprintf(e->vendor_code, sizeof(e->vendor_code), "%s", res->error_code);
	return e != NULL ? e->code : QERR_PERMANENT;
}

/*
 * Follows rel="next" links to the end. Okta omits DEPROVISIONED users from this
 * listing, as documented for List all users; they keep their last known state.
 */
static int
okta_list_accounts(struct provider *p, provider_account_cb cb, void *arg, struct qerr *e)
{
	struct step_result res;
	struct answer a = { 0 };
	char *path = NULL, *next = NULL;
	size_t skipped = 0, pages;
	int r = QERR_INTERNAL;

	if (asprintf(&path, "/api/v1/users?limit=%d", PAGE_LIMIT) == -1)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (pages = 0; path != NULL; pages++) {
		memset(&res, 0, sizeof(res));
		if (pages == PAGES_MAX) {
			r = qerr_set(e, QERR_PERMANENT, NULL, "Okta's user listing did not "
			    "end after %d pages", PAGES_MAX);
			goto out;
		}
		if (call(p, "GET", path, NULL, &a, &res) != 0 || a.resp.status != 200) {
			r = list_failed(&a, &res, e);
			goto out;
		}
		if ((r = list_page(p, &a, cb, arg, &skipped, e)) != 0)
			goto out;
		if ((r = next_link(p, &a.resp, &next)) != 0) {
			r = r == QERR_NOMEM ? qerr_set(e, r, NULL, "out of memory") :
			    qerr_set(e, QERR_PERMANENT, NULL, "Okta's next page link leaves "
			    "%s or is malformed: refused", p->org_url);
			goto out;
		}
		free(path);
		path = next;
		next = NULL;
		answer_clear(&a);
	}
	if (skipped > 0)
		log_msg(LOG_LVL_WARN, "okta %s: %zu malformed users skipped", p->name,
		    skipped);
	r = 0;
out:
	answer_clear(&a);
	free(next);
	free(path);
	return r;
}

/* Incremental sync */

#define CURSOR_TAG	"okta1 "
#define LIST_TRIES	5
#define LIST_WAIT_MAX_MS 60000

/* One listing page, waiting out Okta's rate limit a few times: a directory of
 * 100 000 users takes 500 pages, more than one minute's bucket. */
static int
list_get(struct provider *p, const char *path, struct answer *a, struct qerr *e)
{
	struct step_result res;
	int tries;

	for (tries = 0;; tries++) {
		memset(&res, 0, sizeof(res));
		if (call(p, "GET", path, NULL, a, &res) == 0 && a->resp.status == 200)
			return 0;
		if (a->resp.status != 0 && a->resp.status != 200)
			result_from_answer(&res, a);
		if (res.outcome != STEP_OUTCOME_TRANSIENT || tries + 1 >= LIST_TRIES)
			return list_failed(a, &res, e);
		clock_sleep_ms(res.retry_after_ms > 0 ? (res.retry_after_ms < LIST_WAIT_MAX_MS ?
		    res.retry_after_ms : LIST_WAIT_MAX_MS) : 500 << tries);
		answer_clear(a);
	}
}

/* A deprovisioned user is gone from the directory's point of view, as a user missing
 * from a full listing is: reported removed. */
static int
changed_user(struct provider *p, json_t *u, provider_account_cb cb, void *arg,
    int64_t *newest, int *cbret)
{
	const char *id = json_str(u, "id"), *status = json_str(u, "status");
	const char *lu = json_str(u, "lastUpdated");
	struct account acct = { 0 };
	int64_t t;

	if (lu != NULL && strlen(lu) < 64 && text_time_parse(lu, &t) == 0 && t > *newest)
		*newest = t;
	if (status == NULL || strcmp(status, "DEPROVISIONED") != 0 || !user_id_ok(id))
		return list_user(p, u, cb, arg, cbret);
	acct.system = p->name;
	acct.kind = (char *)"okta";
	acct.external_id = (char *)id;
	acct.state = (char *)"removed";
	*cbret = cb(&acct, arg);
	return 0;
}

static int
changes_page(struct provider *p, struct answer *a, provider_account_cb cb, void *arg,
    int64_t *newest, size_t *skipped, struct qerr *e)
{
	json_t *u;
	size_t i;
	int x, cbret = 0;

	if (!json_is_array(a->body))
		return qerr_set(e, QERR_TRANSIENT, NULL,
		    "Okta answered the user listing with something other than a JSON array");
	json_array_foreach(a->body, i, u) {
		if (!json_is_object(u)) {
			(*skipped)++;
			continue;
		}
		if ((x = changed_user(p, u, cb, arg, newest, &cbret)) < 0)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		*skipped += (size_t)x;
		if (cbret != 0)
			return cbret;
	}
	return 0;
}

/* Follows rel="next" from path; *newest is the latest lastUpdated seen. */
static int
changes_walk(struct provider *p, char *path, provider_account_cb cb, void *arg,
    int64_t *newest, struct qerr *e)
{
	struct answer a = { 0 };
	char *next = NULL;
	size_t skipped = 0, pages;
	int r = 0;

	for (pages = 0; path != NULL && r == 0; pages++) {
		if (pages == PAGES_MAX) {
			r = qerr_set(e, QERR_PERMANENT, NULL, "Okta's user listing did not "
			    "end after %d pages", PAGES_MAX);
			break;
		}
		if ((r = list_get(p, path, &a, e)) != 0 ||
		    (r = changes_page(p, &a, cb, arg, newest, &skipped, e)) != 0)
			break;
		if ((r = next_link(p, &a.resp, &next)) != 0)
			r = r == QERR_NOMEM ? qerr_set(e, r, NULL, "out of memory") :
			    qerr_set(e, QERR_PERMANENT, NULL, "Okta's next page link leaves "
			    "%s or is malformed: refused", p->org_url);
		free(path);
		path = next;
		next = NULL;
		answer_clear(&a);
	}
	answer_clear(&a);
	free(path);
	if (skipped > 0)
		log_msg(LOG_LVL_WARN, "okta %s: %zu malformed users skipped", p->name,
		    skipped);
	return r;
}

/* "okta1 <RFC 3339 time>": the latest lastUpdated of the last listing. */
static int
parse_since(const char *since, int64_t *t)
{
	if (since == NULL || strncmp(since, CURSOR_TAG, strlen(CURSOR_TAG)) != 0 ||
	    strlen(since) > 64)
		return -1;
	return text_time_parse(since + strlen(CURSOR_TAG), t);
}

/*
 * Incremental by `filter=lastUpdated gt "…"`: the users changed after the latest
 * change the last listing saw. A filtered listing includes DEPROVISIONED users (the
 * plain one omits them), which is how a deactivation shows here.
 */
static int
okta_list_changes(struct provider *p, const char *since, provider_account_cb cb,
    void *arg, char **next, bool *full, struct qerr *e)
{
	char when[TEXT_TIME_LEN], *path = NULL, *q = NULL, *f = NULL;
	int64_t t = 0, newest = 0;
	int r;

	*next = NULL;
	*full = parse_since(since, &t) != 0;
	if (!*full) {
		text_time_format(t, when);
		if (asprintf(&f, "lastUpdated gt \"%s\"", when) == -1)
			f = NULL;
		q = f != NULL ? http_escape(f) : NULL;
		free(f);
		if (q == NULL || asprintf(&path, "/api/v1/users?limit=%d&filter=%s",
		    PAGE_LIMIT, q) == -1)
			path = NULL;
		free(q);
	} else if (asprintf(&path, "/api/v1/users?limit=%d", PAGE_LIMIT) == -1)
		path = NULL;
	if (path == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	newest = t;
	if ((r = changes_walk(p, path, cb, arg, &newest, e)) != 0)
		return r;
	text_time_format(newest, when);
	if (asprintf(next, CURSOR_TAG "%s", when) == -1) {
		*next = NULL;
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	return 0;
}

/* Okta user ids are 20 letters and digits today; allow some room. */
static bool
okta_id_valid(char *value)
{
	size_t n = strlen(value);

	return n >= 1 && n <= 64 && strspn(value, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n;
}

static const struct kind_alert_id okta_alert_ids[] = {
	{ "okta_id", KIND_MATCH_EXTERNAL_ID, "an okta_id is 1 to 64 letters and digits",
	    okta_id_valid },
};

/* An Okta login is usually the person's email or directory UPN. */
static const struct kind_corr_rule okta_corr_rules[] = {
	{ "email", "okta.username, okta.email = ad.upn, ad.email, entra.upn, entra.email" },
};

#define OKTA_ADMINS ENTRA_ROLE_SECO " " ENTRA_ROLE_SECA " " ENTRA_ROLE_GA

/* The seed's "Roles and permissions" table. */
static const struct kind_role_req okta_role_reqs[] = {
	{ ACTION_DISABLE, OKTA_ADMINS },
	{ ACTION_ENABLE, OKTA_ADMINS },
	{ ACTION_REVOKE_SESSIONS, OKTA_ADMINS },
	{ ACTION_DEACTIVATE, OKTA_ADMINS },
	{ ACTION_SET_RISK, OKTA_ADMINS },
	{ ACTION_FORCE_PASSWORD_CHANGE, OKTA_ADMINS },
};

static const struct kind_info okta_info = {
	.kind = "okta",
	.graph_provider = "okta",
	.ref_valid = kind_ref_alnum,
	.ref_hint = "an Okta id (letters and digits)",
	.alert_ids = okta_alert_ids,
	.nalert_ids = sizeof(okta_alert_ids) / sizeof(okta_alert_ids[0]),
	.corr_rules = okta_corr_rules,
	.ncorr_rules = sizeof(okta_corr_rules) / sizeof(okta_corr_rules[0]),
	.role_reqs = okta_role_reqs,
	.nrole_reqs = sizeof(okta_role_reqs) / sizeof(okta_role_reqs[0]),
};

const struct provider_ops provider_okta = {
	.kind = "okta",
	.info = &okta_info,
	.keys = okta_keys,
	.open = okta_open,
	.supports = okta_supports,
	.refuses = okta_refuses,
	.execute = okta_execute,
	.list_accounts = okta_list_accounts,
	.list_changes = okta_list_changes,
	.close = okta_close,
};
