/*
 * Microsoft Entra ID over Microsoft Graph v1.0: disable, enable, revoke sign-in
 * sessions and confirm users compromised, and list the tenant's users. The app signs
 * in with the OAuth 2.0 client credentials grant (a secret, or a certificate through a
 * signed client assertion). Writes are paced below Graph's documented per-tenant
 * budgets so a mass containment does not spend its time in 429s: users' writes by a
 * token bucket, Identity Protection (one request per second, no Retry-After) by a
 * fixed interval.
 */
#include <math.h>	/* ceil */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/entra_roles.h"
#include "core/id.h"
#include "core/jwt.h"
#include "core/log.h"
#include "providers/http.h"
#include "providers/kit.h"
#include "providers/provider.h"

#define LOGIN_BASE_DEFAULT	"https://login.microsoftonline.com"
#define GRAPH_BASE_DEFAULT	"https://graph.microsoft.com/v1.0"
#define GRAPH_SCOPE		"https://graph.microsoft.com/.default"
#define TIMEOUT_DEFAULT		"30"
/*
 * The v1.0 reference for confirmCompromised states no maximum for userIds; the only
 * documented one is beta riskyUser dismiss's "maximum count of users ... is 60".
 */
#define BATCH_SIZE_DEFAULT	"60"
#define BATCH_SIZE_MAX		60
/* Graph's "identity and access" write limit per app per tenant. */
#define WRITES_DEFAULT		"3000"
#define WINDOW_S_DEFAULT	"150"
#define FILE_MAX		(64 * 1024)
/* Longer waits for a budget go back to the engine, as not sent. */
#define PACE_BLOCK_MAX_MS	2000
#define LIST_PAGES_MAX		100000
#define LIST_RETRIES		5
#define LIST_SELECT		"id,userPrincipalName,displayName,mail,accountEnabled," \
				"onPremisesSecurityIdentifier,onPremisesSyncEnabled"
/* Delta pages are sized by this header, not $top (user-delta reference); a plain
 * listing ignores it. */
#define DELTA_PREFER		"odata.maxpagesize=999"

struct provider {
	char *name;
	/* From the key table (entra_keys). */
	char *tenant;
	char *client_id;
	char *login_base;
	char *graph_base;
	struct kit_secret secret;	/* client secret … */
	char *cert_file;		/* … or certificate and key */
	struct kit_secret key_pem;
	char *ca_file;
	long timeout;
	long batch_size;
	double ip_rps;
	long writes;			/* per window_s */
	long window_s;

	char *graph_origin;	/* scheme://host[:port], where nextLinks must point */
	char *token_url;
	char x5t[44];
	struct http_client *http;
	struct kit_oauth oauth;

	pthread_mutex_t pace_mu;	/* both budgets */
	bool pace_ready;
	struct kit_bucket writes_b;	/* users' writes */
	struct kit_bucket ip_b;		/* Identity Protection: one at a time, spaced */
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

/* Configuration */

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

#define OFF(f)	offsetof(struct provider, f)

static const struct provider_key entra_keys[] = {
	{ .name = "tenant", .type = PROVIDER_KEY_STRING, .required = true,
	    .valid = is_tenant, .offset = OFF(tenant),
	    .help = "a tenant id (GUID) or a domain name" },
	{ .name = "client_id", .type = PROVIDER_KEY_STRING, .required = true,
	    .valid = is_guid, .offset = OFF(client_id),
	    .help = "the app's application id (a GUID)" },
	{ .name = "login_base", .type = PROVIDER_KEY_URL, .def = LOGIN_BASE_DEFAULT,
	    .schemes = "https http", .offset = OFF(login_base),
	    .help = "an http(s) URL with no query" },
	{ .name = "graph_base", .type = PROVIDER_KEY_URL, .def = GRAPH_BASE_DEFAULT,
	    .schemes = "https http", .offset = OFF(graph_base),
	    .help = "an http(s) URL with no query" },
	{ .name = "client_secret_file", .type = PROVIDER_KEY_SECRET_FILE, .max = FILE_MAX,
	    .offset = OFF(secret), .help = "a file" },
	{ .name = "certificate_file", .type = PROVIDER_KEY_FILE, .offset = OFF(cert_file),
	    .help = "a readable file" },
	{ .name = "private_key_file", .type = PROVIDER_KEY_SECRET_FILE, .max = FILE_MAX,
	    .multiline = true, .offset = OFF(key_pem), .help = "a file" },
	{ .name = "ca_file", .type = PROVIDER_KEY_FILE, .offset = OFF(ca_file),
	    .help = "a readable file" },
	{ .name = "timeout", .type = PROVIDER_KEY_LONG, .def = TIMEOUT_DEFAULT, .min = 1,
	    .max = 600, .offset = OFF(timeout), .help = "1 to 600 seconds" },
	{ .name = "batch_size", .type = PROVIDER_KEY_LONG, .def = BATCH_SIZE_DEFAULT,
	    .min = 1, .max = BATCH_SIZE_MAX, .offset = OFF(batch_size), .help = "1 to 60" },
	{ .name = "ip_rps", .type = PROVIDER_KEY_NUMBER, .def = "1", .min = 0.01,
	    .max = 1000, .offset = OFF(ip_rps), .help = "a number from 0.01 to 1000" },
	{ .name = "writes_per_window", .type = PROVIDER_KEY_LONG, .def = WRITES_DEFAULT,
	    .min = 1, .max = 10000000, .offset = OFF(writes),
	    .help = "a positive integer" },
	{ .name = "window_s", .type = PROVIDER_KEY_LONG, .def = WINDOW_S_DEFAULT, .min = 1,
	    .max = 86400, .offset = OFF(window_s), .help = "1 to 86400 seconds" },
	{ 0 },
};

static void
entra_close(struct provider *p)
{
	if (p == NULL)
		return;
	http_client_free(p->http);
	kit_oauth_clear(&p->oauth);
	if (p->pace_ready)
		pthread_mutex_destroy(&p->pace_mu);
	provider_keys_clear(entra_keys, p);
	free(p->token_url);
	free(p->graph_origin);
	free(p->name);
	free(p);
}

/* Checks the key and certificate now, so a bad pair fails at start and not mid-incident. */
static int
load_certificate(struct provider *p, const struct system_config *cfg, struct qerr *e)
{
	const struct config_kv *ckv = config_system_get(cfg, "certificate_file");
	const struct config_kv *kkv = config_system_get(cfg, "private_key_file");
	struct kit_secret cert = { 0 };
	struct kit_oauth_config oc = { .client_id = p->client_id, .token_url = p->token_url,
	    .key_pem = p->key_pem.buf, .alg = "RS256", .x5t = p->x5t };
	struct qerr je = { 0 };
	char *jws = NULL;
	int r;

	if ((r = kit_file_read(cfg, ckv, 0, FILE_MAX, &cert, e)) != 0)
		return r;
	if (jwt_x5t_s256(cert.buf, p->x5t, &je) != 0)
		r = config_error(e, cfg, ckv->line, ckv->key, "certificate_file %s: %s",
		    ckv->value, je.msg);
	else if (kit_oauth_assertion(&oc, &jws, &je) != 0)
		r = config_error(e, cfg, kkv->line, kkv->key, "private_key_file %s: %s",
		    kkv->value, je.msg);
	kit_free_str(jws);
	kit_secret_clear(&cert);
	return r;
}

/* A client secret, or a certificate with its key: one of the two. */
static int
check_credentials(struct provider *p, const struct system_config *cfg, struct qerr *e)
{
	const struct config_kv *skv = config_system_get(cfg, "client_secret_file");

	if (skv != NULL && (p->cert_file != NULL || p->key_pem.buf != NULL))
		return config_error(e, cfg, skv->line, skv->key, "client_secret_file "
		    "and certificate_file/private_key_file exclude each other");
	if (skv == NULL && (p->cert_file == NULL || p->key_pem.buf == NULL))
		return config_error(e, cfg, cfg->line, "client_secret_file", "system \"%s\" "
		    "needs client_secret_file, or both certificate_file and private_key_file",
		    p->name);
	return skv != NULL ? 0 : load_certificate(p, cfg, e);
}

static int
send_token_request(void *arg, const struct http_request *req, struct http_response *resp,
    struct qerr *e)
{
	struct provider *p = arg;

	return http_do(p->http, req, resp, e);
}

static int
open_state(struct provider *p, struct qerr *e)
{
	struct http_options ho = { 0 };
	struct kit_oauth_config oc = { .vendor = "Entra ID", .token_url = p->token_url,
	    .client_id = p->client_id, .scope = GRAPH_SCOPE, .alg = "RS256",
	    .x5t = p->x5t };
	struct kit_url u;
	int64_t now = clock_mono_ms();
	int r;

	if (p->secret.buf != NULL)
		oc.secret = &p->secret;
	else
		oc.key_pem = p->key_pem.buf;
	kit_url_parse(p->graph_base, "https http", &u);
	if ((p->graph_origin = strndup(p->graph_base, u.origin_len)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if (pthread_mutex_init(&p->pace_mu, NULL) != 0)
		return qerr_set(e, QERR_INTERNAL, NULL, "pthread_mutex_init failed");
	p->pace_ready = true;
	kit_bucket_init(&p->writes_b, (double)p->writes, p->window_s * 1000, now);
	/* A tenth of the gap spare: requests spaced exactly 1/ip_rps apart can arrive
	 * closer than that after network jitter, and Graph counts arrivals. */
	kit_bucket_init(&p->ip_b, 1, (int64_t)ceil(1100 / p->ip_rps), now);
	ho.ca_file = p->ca_file;
	ho.timeout_ms = p->timeout * 1000;
	ho.connect_timeout_ms = p->timeout * 1000 < 5000 ? p->timeout * 1000 : 5000;
	ho.system = p->name;
	if ((r = http_client_new(&ho, &p->http, e)) != 0)
		return r;
	return kit_oauth_init(&p->oauth, &oc, send_token_request, p, e);
}

static int
entra_open(const struct system_config *cfg, struct provider **out, struct qerr *e)
{
	struct provider *p;
	int r = QERR_NOMEM;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if ((p->name = strdup(cfg->name != NULL ? cfg->name : "")) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((r = provider_keys_parse(entra_keys, cfg, p, e)) != 0)
		goto out;
	if (asprintf(&p->token_url, "%s/%s/oauth2/v2.0/token", p->login_base, p->tenant) ==
	    -1) {
		p->token_url = NULL;
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((r = check_credentials(p, cfg, e)) != 0 || (r = open_state(p, e)) != 0)
		goto out;
	*out = p;
	p = NULL;
	r = 0;
out:
	entra_close(p);
	return r;
}

/* Pacing */

/*
 * Reserves a request of budget b: 0 with the wait slept through, or 1 with *wait_ms
 * when the wait is longer than a worker should be held (nothing reserved).
 */
static int
pace(struct provider *p, enum budget b, int64_t *wait_ms)
{
	struct kit_bucket *k = b == BUDGET_WRITE ? &p->writes_b : &p->ip_b;
	int64_t wait;

	if (b == BUDGET_NONE)
		return 0;
	pthread_mutex_lock(&p->pace_mu);
	if ((wait = kit_bucket_take(k, clock_mono_ms())) > PACE_BLOCK_MAX_MS)
		kit_bucket_return(k);
	pthread_mutex_unlock(&p->pace_mu);
	*wait_ms = wait;
	if (wait > PACE_BLOCK_MAX_MS)
		return 1;
	if (wait > 0)
		provider_observe_wait(p->name, (double)wait / 1000.0);
	clock_sleep_ms(wait);
	return 0;
}

/* Graph throttled us anyway: hold every request of the budget back, not just this
 * step. */
static void
pace_hold(struct provider *p, enum budget b, int ms)
{
	pthread_mutex_lock(&p->pace_mu);
	kit_bucket_hold(b == BUDGET_WRITE ? &p->writes_b : &p->ip_b, clock_mono_ms() + ms);
	pthread_mutex_unlock(&p->pace_mu);
}

/* Graph calls */

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

	id_uuid4(crid);
	snprintf(g->request_id, sizeof(g->request_id), "%s", crid);
	if ((r = http_do(p->http, &req, resp, e)) != 0)
		return r;
	http_header_get(resp, "request-id", g->request_id, sizeof(g->request_id));
	g->status = resp->status;
	g->retry_after_ms = kit_retry_after(resp);
	graph_error(resp, g);
	return 0;
}

/*
 * One Graph call with the app's token, paced by budget. An expired or revoked token
 * (401 InvalidAuthenticationToken) is renewed once and the call sent once more.
 * Returns 0 with *resp and *g filled, QERR_BUSY when the budget holds the call back
 * for g->retry_after_ms (not sent), or a QERR code with e set when no answer came or
 * no token could be had.
 */
static int
graph_call_prefer(struct provider *p, enum budget b, const char *method,
    const char *url, const char *body, const char *prefer, struct http_response *resp,
    struct gres *g, struct qerr *e)
{
	char *auth = NULL;
	unsigned gen = 0;
	int64_t wait;
	int r, attempt;

	memset(g, 0, sizeof(*g));
	g->retry_after_ms = -1;
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = kit_oauth_get(&p->oauth, attempt == 0 ? 0 : gen, &auth, &gen, e)) != 0)
			return r;
		if (pace(p, b, &wait) != 0) {
			kit_free_str(auth);
			g->retry_after_ms = wait > INT32_MAX ? INT32_MAX : (int)wait;
			return QERR_BUSY;
		}
		r = graph_once(p, method, url, body, prefer, auth, resp, g, e);
		kit_free_str(auth);
		auth = NULL;
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

/* The outcome of a call that brought no answer: held back (r QERR_BUSY), or e. */
static void
result_from_qerr(struct step_result *res, int r, const struct qerr *e,
    const struct gres *g)
{
	if (r == QERR_BUSY) {
		kit_result_paced(res, g->retry_after_ms, "staying under Graph's request "
		    "budget for this app");
		return;
	}
	provider_result_set(res, e->code == QERR_PERMANENT ? STEP_OUTCOME_PERMANENT :
	    STEP_OUTCOME_TRANSIENT, e->vendor_code[0] != '\0' ? e->vendor_code :
	    e->code == QERR_TRANSIENT ? "unavailable" : "error", "%s", e->msg);
	if (g->request_id[0] != '\0')
		snprintf(res->request_id, sizeof(res->request_id), "%s", g->request_id);
}

/*
 * Turns a Graph error answer into the step's outcome; attempt is the step's (1 =
 * first). A 429 without Retry-After waits one Identity Protection slot, or backs off
 * exponentially.
 */
static void
result_from_graph(struct provider *p, struct step_result *res, const struct gres *g,
    enum budget b, int attempt)
{
	int ra = g->retry_after_ms;

	snprintf(res->request_id, sizeof(res->request_id), "%s", g->request_id);
	if (g->status == 429) {
		if (ra < 0)
			ra = b == BUDGET_IP ? (int)ceil(1000 / p->ip_rps) : kit_backoff_ms(attempt);
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
		result_from_qerr(res, r, &e, &g);
	else if (resp.status >= 200 && resp.status < 300) {
		user_succeeded(step, &resp, res);
		snprintf(res->request_id, sizeof(res->request_id), "%s", g.request_id);
	} else
		result_from_graph(p, res, &g, BUDGET_WRITE, step->attempts + 1);
	http_response_clear(&resp);
	return 0;
}

static int
confirm_batch(struct provider *p, const struct step *const *steps, size_t n,
    bool dismiss, struct step_result *res);

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
		return confirm_batch(p, &step, 1, provider_step_undo(step), res);
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

/*
 * One confirmCompromised request (dismiss: one dismiss, an undo's) for up to
 * batch_size users, paced for Identity Protection. Both take {"userIds": […]} and
 * answer 204.
 */
static int
confirm_chunk(struct provider *p, const struct step *const *steps, size_t n,
    bool dismiss, struct step_result *res)
{
	struct http_response resp = { 0 };
	struct qerr e = { 0 };
	struct gres g;
	char *url = NULL, *body = NULL;
	size_t i;
	int r;

	if (confirm_body(steps, n, &body) != 0 ||
	    asprintf(&url, "%s/identityProtection/riskyUsers/%s", p->graph_base,
	    dismiss ? "dismiss" : "confirmCompromised") < 0) {
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
			if ((r = confirm_chunk(p, steps + i, 1, dismiss, res + i)) != 0)
				return r;
		return 0;
	}
	if (r != 0)
		result_from_qerr(res, r, &e, &g);
	else if (resp.status >= 200 && resp.status < 300 && dismiss)
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "user risk dismissed in "
		    "Entra ID Identity Protection");
	else if (resp.status >= 200 && resp.status < 300) {
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "confirmed compromised in Entra ID "
		    "Identity Protection: user risk set to high");
		snprintf(res->request_id, sizeof(res->request_id), "%s", g.request_id);
	} else
		result_from_graph(p, res, &g, BUDGET_IP, steps[0]->attempts + 1);
	copy_result(res, n);
	http_response_clear(&resp);
	return 0;
}

/* The steps of the batch that confirm (dismiss: that dismiss); the others untouched. */
static int
confirm_batch(struct provider *p, const struct step *const *steps, size_t n,
    bool dismiss, struct step_result *res)
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
		if (provider_step_undo(steps[i]) != dismiss)
			continue;
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
		chunk = m - i < (size_t)p->batch_size ? m - i : (size_t)p->batch_size;
		if ((r = confirm_chunk(p, ok + i, chunk, dismiss, tmp + i)) != 0)
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
	int r = confirm_batch(p, steps, n, false, res);

	/* One batch may hold both: the engine groups steps by type, not by params. */
	return r != 0 ? r : confirm_batch(p, steps, n, true, res);
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
	.graph_provider = "entraID",
	.ref_valid = kind_ref_guid,
	.ref_hint = "an object id (a GUID)",
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
	.keys = entra_keys,
	.open = entra_open,
	.supports = entra_supports,
	.execute = entra_execute,
	.batch_max = entra_batch_max,
	.execute_batch = entra_execute_batch,
	.list_accounts = entra_list_accounts,
	.list_changes = entra_list_changes,
	.close = entra_close,
};
