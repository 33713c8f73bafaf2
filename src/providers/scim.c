/*
 * SCIM 2.0 (RFC 7643, RFC 7644) over http.h: any identity provider or application
 * that provisions users through SCIM. Disables and enables a user by its active
 * attribute (PATCH with the Operations form, or PUT of the whole user for servers that
 * take no PATCH), deactivates by DELETE, and lists /Users by startIndex and count,
 * incrementally by meta.lastModified where /ServiceProviderConfig says the server
 * filters. Authenticates with a static bearer token or OAuth 2.0 client credentials.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/text.h"
#include "providers/http.h"
#include "providers/kit.h"
#include "providers/provider.h"

#define SECRET_MAX		16384
#define PAGE_MAX		1000
#define PAGES_MAX		100000
#define LIST_TRIES		5
#define LIST_WAIT_MAX_MS	60000
#define ID_MAX			255
#define CURSOR_TAG		"scim1 "

#define URN_ERROR	"urn:ietf:params:scim:api:messages:2.0:Error"
#define URN_PATCH	"urn:ietf:params:scim:api:messages:2.0:PatchOp"
#define SCIM_TYPES	"application/scim+json, application/json"

/* The section's keys, as scim_keys reads them. */
struct settings {
	char *url;		/* the SCIM base URL, trailing '/' dropped */
	bool plaintext;
	struct kit_secret token;	/* a static bearer token … */
	char *token_url;	/* … or OAuth client credentials */
	char *client_id;
	struct kit_secret secret;
	char *scope;
	char *method;		/* disable_method: patch or put */
	long timeout;
	long page_size;
	char *ca_file;
};

struct provider {
	char *name;
	struct settings s;
	bool use_put;
	struct http_client *http;
	bool oauth_on;
	struct kit_oauth oauth;
};

/* One answer, with what a SCIM error body (RFC 7644 3.12) says. */
struct answer {
	struct http_response resp;
	json_t *body;		/* parsed JSON, else NULL */
	char code[64];		/* scimType, or http_<status> */
	char detail[400];
};

static const char *
json_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Configuration */

static bool
method_ok(const char *v)
{
	return strcmp(v, "patch") == 0 || strcmp(v, "put") == 0;
}

/* Scope names separated by single spaces (RFC 6749 3.3). */
static bool
scope_ok(const char *v)
{
	size_t i;

	for (i = 0; v[i] != '\0'; i++)
		if (v[i] < ' ' || v[i] > '~' || v[i] == '"' || v[i] == '\\' ||
		    (v[i] == ' ' && (i == 0 || v[i + 1] == ' ' || v[i + 1] == '\0')))
			return false;
	return i > 0;
}

#define KEY(n, t, field) .name = n, .type = t, .offset = offsetof(struct settings, field)

static const struct provider_key scim_keys[] = {
	{ KEY("url", PROVIDER_KEY_URL, url), .required = true, .schemes = "https http",
	    .help = "the SCIM base URL, https://host[:port][/path]" },
	{ KEY("allow_plaintext", PROVIDER_KEY_BOOL, plaintext), .def = "no",
	    .help = "yes or no" },
	{ KEY("token_file", PROVIDER_KEY_SECRET_FILE, token), .secret = true, .min = 1,
	    .max = SECRET_MAX, .help = "a file holding the bearer token on one line" },
	{ KEY("token_url", PROVIDER_KEY_URL, token_url), .schemes = "https http",
	    .help = "the OAuth token endpoint, https://host[:port][/path]" },
	{ KEY("client_id", PROVIDER_KEY_STRING, client_id), .valid = kit_one_word,
	    .help = "one word" },
	{ KEY("client_secret_file", PROVIDER_KEY_SECRET_FILE, secret), .secret = true,
	    .min = 1, .max = SECRET_MAX, .help = "a file holding the client secret" },
	{ KEY("scope", PROVIDER_KEY_STRING, scope), .valid = scope_ok,
	    .help = "scope names separated by spaces" },
	{ KEY("disable_method", PROVIDER_KEY_STRING, method), .def = "patch",
	    .valid = method_ok, .help = "patch or put" },
	{ KEY("timeout", PROVIDER_KEY_LONG, timeout), .def = "30", .min = 1, .max = 3600,
	    .help = "whole seconds from 1 to 3600" },
	{ KEY("page_size", PROVIDER_KEY_LONG, page_size), .def = "100", .min = 1,
	    .max = PAGE_MAX, .help = "a number of users from 1 to 1000" },
	{ KEY("ca_file", PROVIDER_KEY_FILE, ca_file), .help = "a PEM file quelld can read" },
	{ .name = NULL },
};

/* http:// only when the section says so: the bearer token would travel in clear. */
static int
check_plain(const struct system_config *cfg, const struct settings *s, const char *key,
    const char *url, struct qerr *e)
{
	const struct config_kv *kv = config_system_get(cfg, key);

	if (url == NULL || strncmp(url, "http://", 7) != 0 || s->plaintext)
		return 0;
	return config_error(e, cfg, kv != NULL ? kv->line : cfg->line, key, "%s: http:// "
	    "sends the SCIM credentials in clear: use https://, or set allow_plaintext = "
	    "yes (tests only)", key);
}

/* A bearer token, or all three of the client credentials, never both. */
static int
check_auth(const struct system_config *cfg, const struct settings *s, struct qerr *e)
{
	static const char *const oauth[] = { "token_url", "client_id", "client_secret_file",
	    "scope" };
	const struct config_kv *kv = NULL;
	size_t i;

	for (i = 0; i < sizeof(oauth) / sizeof(oauth[0]) && kv == NULL; i++)
		kv = config_system_get(cfg, oauth[i]);
	if (s->token.buf != NULL && kv != NULL)
		return config_error(e, cfg, kv->line, kv->key, "use token_file, or "
		    "token_url + client_id + client_secret_file, not both");
	if (s->token.buf != NULL)
		return 0;
	if (s->token_url == NULL || s->client_id == NULL || s->secret.buf == NULL)
		return config_error(e, cfg, kv != NULL ? kv->line : cfg->line,
		    s->token_url == NULL ? "token_url" : s->client_id == NULL ? "client_id" :
		    "client_secret_file", "system \"%s\" needs token_file, or token_url, "
		    "client_id and client_secret_file", cfg->name);
	return 0;
}

static int
send_token_request(void *arg, const struct http_request *req, struct http_response *resp,
    struct qerr *e)
{
	struct provider *p = arg;

	return http_do(p->http, req, resp, e);
}

static int
start_oauth(struct provider *p, struct qerr *e)
{
	struct kit_oauth_config oc = { .vendor = "the SCIM server's token endpoint",
	    .token_url = p->s.token_url, .client_id = p->s.client_id,
	    .scope = p->s.scope, .secret = &p->s.secret };
	int r;

	if (p->s.token.buf != NULL)
		return 0;
	if ((r = kit_oauth_init(&p->oauth, &oc, send_token_request, p, e)) == 0)
		p->oauth_on = true;
	return r;
}

static void
scim_close(struct provider *p)
{
	if (p == NULL)
		return;
	if (p->oauth_on)
		kit_oauth_clear(&p->oauth);
	http_client_free(p->http);
	provider_keys_clear(scim_keys, &p->s);
	free(p->name);
	free(p);
}

static int
scim_open(const struct system_config *cfg, struct provider **out, struct qerr *e)
{
	struct http_options ho = { 0 };
	struct provider *p;
	int r = QERR_INTERNAL;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->name = strdup(cfg->name != NULL ? cfg->name : "")) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((r = provider_keys_parse(scim_keys, cfg, &p->s, e)) != 0 ||
	    (r = check_plain(cfg, &p->s, "url", p->s.url, e)) != 0 ||
	    (r = check_plain(cfg, &p->s, "token_url", p->s.token_url, e)) != 0 ||
	    (r = check_auth(cfg, &p->s, e)) != 0)
		goto out;
	p->use_put = strcmp(p->s.method, "put") == 0;
	ho.ca_file = p->s.ca_file;
	ho.timeout_ms = p->s.timeout * 1000;
	ho.connect_timeout_ms = ho.timeout_ms < 5000 ? ho.timeout_ms : 5000;
	ho.system = p->name;
	if ((r = http_client_new(&ho, &p->http, e)) != 0 || (r = start_oauth(p, e)) != 0)
		goto out;
	*out = p;
	p = NULL;
	r = 0;
out:
	scim_close(p);
	return r;
}

/* Answers */

static void
answer_clear(struct answer *a)
{
	http_response_clear(&a->resp);
	json_decref(a->body);
	memset(a, 0, sizeof(*a));
}

/* Copies at most the first line of untrusted text, as printable text only. */
static void
copy_text(char *dst, size_t len, const char *src)
{
	size_t n = src != NULL ? strcspn(src, "\r\n") : 0;

	snprintf(dst, len, "%.*s", (int)(n < len ? n : len - 1), n > 0 ? src : "");
	text_utf8_truncate(dst, len - 1);
	if (!text_printable(dst, false))
		snprintf(dst, len, "(unprintable text)");
}

static bool
schemas_have(const json_t *o, const char *urn)
{
	const json_t *s;
	size_t i;

	json_array_foreach(json_object_get(o, "schemas"), i, s)
		if (json_is_string(s) && strcmp(json_string_value(s), urn) == 0)
			return true;
	return false;
}

/* The scimType and detail of an error body; an answer without one names its status. */
static void
answer_error(struct answer *a)
{
	const char *type = json_str(a->body, "scimType"), *detail = json_str(a->body,
	    "detail");

	if (!json_is_object(a->body) || !schemas_have(a->body, URN_ERROR)) {
		snprintf(a->code, sizeof(a->code), "http_%ld", a->resp.status);
		snprintf(a->detail, sizeof(a->detail), "HTTP %ld without a SCIM error body",
		    a->resp.status);
		return;
	}
	if (type != NULL && *type != '\0' && strlen(type) < sizeof(a->code) &&
	    strspn(type, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") ==
	    strlen(type))
		snprintf(a->code, sizeof(a->code), "%s", type);
	else
		snprintf(a->code, sizeof(a->code), "http_%ld", a->resp.status);
	copy_text(a->detail, sizeof(a->detail), detail != NULL ? detail : "no detail");
}

static void
answer_read(struct answer *a)
{
	if (a->resp.body != NULL && a->resp.len > 0)
		a->body = json_loadb(a->resp.body, a->resp.len, JSON_REJECT_DUPLICATES, NULL);
	if (a->resp.status < 200 || a->resp.status > 299)
		answer_error(a);
}

/* The outcome of an error answer no action explains better. */
static void
result_from_answer(struct step_result *res, const struct answer *a)
{
	long st = a->resp.status;
	int ra;

	res->outcome = st == 429 || st >= 500 ? STEP_OUTCOME_TRANSIENT :
	    STEP_OUTCOME_PERMANENT;
	snprintf(res->error_code, sizeof(res->error_code), "%s", a->code);
	if (res->outcome == STEP_OUTCOME_TRANSIENT && (ra = kit_retry_after(&a->resp)) > 0)
		res->retry_after_ms = ra;
	if (st == 401)
		snprintf(res->message, sizeof(res->message), "the SCIM server refused "
		    "quell's credentials (HTTP 401): %s", a->detail);
	else if (st == 403)
		snprintf(res->message, sizeof(res->message), "the SCIM server does not let "
		    "quell do this (HTTP 403): %s", a->detail);
	else if (st == 404)
		snprintf(res->message, sizeof(res->message), "account not found on the SCIM "
		    "server");
	else if (st == 429)
		snprintf(res->message, sizeof(res->message), "rate limited by the SCIM "
		    "server: %s", a->detail);
	else if (res->outcome == STEP_OUTCOME_TRANSIENT)
		snprintf(res->message, sizeof(res->message), "the SCIM server failed "
		    "(HTTP %ld): %s", st, a->detail);
	else if (strncmp(a->code, "http_", 5) == 0)
		snprintf(res->message, sizeof(res->message), "SCIM server refused (HTTP %ld): "
		    "%s", st, a->detail);
	else
		snprintf(res->message, sizeof(res->message), "SCIM server refused: %s: %s",
		    a->code, a->detail);
}

/* Requests */

static int
send_once(struct provider *p, const char *method, const char *url, const char *json,
    const char *auth, struct answer *a, struct step_result *res)
{
	struct http_header hdrs[3] = { { "Accept", SCIM_TYPES }, { "Authorization", auth },
	    { "Content-Type", "application/scim+json" } };
	struct http_request rq = { .method = method, .url = url, .headers = hdrs,
	    .nheaders = json != NULL ? 3 : 2, .body = json,
	    .body_len = json != NULL ? strlen(json) : 0 };
	struct qerr e;
	int r;

	answer_clear(a);
	qerr_clear(&e);
	if ((r = http_do(p->http, &rq, &a->resp, &e)) != 0) {
		provider_result_set(res, r == QERR_PERMANENT ? STEP_OUTCOME_PERMANENT :
		    STEP_OUTCOME_TRANSIENT, r == QERR_PERMANENT ? "tls" : "network",
		    "no answer from the SCIM server at %s: %s", p->s.url, e.msg);
		return -1;
	}
	answer_read(a);
	return 0;
}

/* "Bearer …" (caller frees with kit_free_str); stale_gen: the token just refused. */
static int
auth_header(struct provider *p, unsigned stale_gen, char **auth, unsigned *gen,
    struct step_result *res)
{
	struct qerr e;

	if (!p->oauth_on) {
		if (asprintf(auth, "Bearer %s", p->s.token.buf) == -1) {
			*auth = NULL;
			provider_result_set(res, STEP_OUTCOME_TRANSIENT, "noMemory",
			    "out of memory");
			return -1;
		}
		return 0;
	}
	qerr_clear(&e);
	if (kit_oauth_get(&p->oauth, stale_gen, auth, gen, &e) == 0)
		return 0;
	provider_result_set(res, e.code == QERR_PERMANENT ? STEP_OUTCOME_PERMANENT :
	    STEP_OUTCOME_TRANSIENT, e.vendor_code[0] != '\0' ? e.vendor_code : "token",
	    "%s", e.msg);
	return -1;
}

/*
 * One authenticated request to the base URL + path. A 401 to an OAuth token renews it
 * and sends once more. 0 with *a filled (any status), or -1 with res settled.
 */
static int
call(struct provider *p, const char *method, const char *path, const char *json,
    struct answer *a, struct step_result *res)
{
	char *auth = NULL, *url = NULL;
	unsigned gen = 0;
	int r = -1, attempt;

	if (asprintf(&url, "%s%s", p->s.url, path) == -1) {
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "noMemory", "out of memory");
		return -1;
	}
	for (attempt = 0; attempt < 2; attempt++) {
		kit_free_str(auth);
		auth = NULL;
		if ((r = auth_header(p, attempt > 0 ? gen : 0, &auth, &gen, res)) != 0 ||
		    (r = send_once(p, method, url, json, auth, a, res)) != 0 ||
		    a->resp.status != 401 || !p->oauth_on)
			break;
	}
	kit_free_str(auth);
	free(url);
	return r;
}

/* Actions */

/* A SCIM id is the server's opaque string: printable, short, escaped in paths. */
static bool
id_ok(const char *id)
{
	return id != NULL && *id != '\0' && strlen(id) <= ID_MAX && text_printable(id, false);
}

static char *
user_path(const char *id)
{
	char *esc = http_escape(id), *path = NULL;

	if (esc != NULL && asprintf(&path, "/Users/%s", esc) == -1)
		path = NULL;
	free(esc);
	return path;
}

static bool
scim_supports(const struct provider *p, enum action_type type)
{
	(void)p;
	return type == ACTION_DISABLE || type == ACTION_ENABLE || type == ACTION_DEACTIVATE;
}

/* The whole user with active set, for PUT: read-only meta is the server's to write. */
static char *
put_body(json_t *user, bool want)
{
	json_t *copy = json_deep_copy(user);
	char *s = NULL;

	if (copy != NULL && json_object_set_new(copy, "active", json_boolean(want)) == 0) {
		json_object_del(copy, "meta");
		s = json_dumps(copy, JSON_COMPACT);
	}
	json_decref(copy);
	return s;
}

static char *
patch_body(bool want)
{
	json_t *op = json_pack("{s:[s], s:[{s:s, s:s, s:b}]}", "schemas", URN_PATCH,
	    "Operations", "op", "replace", "path", "active", "value", want);
	char *s = op != NULL ? json_dumps(op, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(op);
	return s;
}

static void
set_state(struct step_result *res, bool active)
{
	snprintf(res->state, sizeof(res->state), "%s", active ? "enabled" : "disabled");
}

/* The write's answer: 204, or the user with active as asked. */
static void
written(const struct answer *a, bool want, bool put, struct step_result *res)
{
	const json_t *act = json_object_get(a->body, "active");

	if (a->resp.status == 204 || (a->resp.status >= 200 && a->resp.status <= 299 &&
	    (!json_is_object(a->body) || act == NULL || json_is_boolean(act)))) {
		if (json_is_boolean(act) && json_boolean_value(act) != want) {
			provider_result_set(res, STEP_OUTCOME_PERMANENT, "notApplied",
			    "the SCIM server accepted the change but the user is still %s",
			    want ? "inactive" : "active");
			set_state(res, !want);
			return;
		}
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "%s", want ? "enabled" :
		    "disabled");
		set_state(res, want);
		return;
	}
	if (!put && (a->resp.status == 405 || a->resp.status == 501)) {
		result_from_answer(res, a);
		snprintf(res->message, sizeof(res->message), "the SCIM server takes no PATCH "
		    "(HTTP %ld): set disable_method = put for this system", a->resp.status);
		return;
	}
	result_from_answer(res, a);
}

/* Reads the user first: one already as asked is left alone. */
static void
set_active(struct provider *p, const char *path, bool want, struct step_result *res)
{
	struct answer a = { 0 };
	const json_t *act;
	char *body = NULL;

	if (call(p, "GET", path, NULL, &a, res) != 0)
		goto out;
	if (a.resp.status != 200) {
		result_from_answer(res, &a);
		goto out;
	}
	act = json_object_get(a.body, "active");
	if (!json_is_object(a.body) || (act != NULL && !json_is_boolean(act))) {
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "invalidResponse",
		    "the SCIM server sent the user without a boolean active attribute");
		goto out;
	}
	if (act != NULL && json_boolean_value(act) == want) {
		provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "%s", want ?
		    "already active" : "already inactive");
		set_state(res, want);
		goto out;
	}
	if ((body = p->use_put ? put_body(a.body, want) : patch_body(want)) == NULL) {
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "noMemory", "out of memory");
		goto out;
	}
	if (call(p, p->use_put ? "PUT" : "PATCH", path, body, &a, res) == 0)
		written(&a, want, p->use_put, res);
out:
	free(body);
	answer_clear(&a);
}

/* A user already gone is what DELETE asked for: the step succeeds and says so. */
static void
delete_user(struct provider *p, const char *path, struct step_result *res)
{
	struct answer a = { 0 };

	if (call(p, "DELETE", path, NULL, &a, res) == 0) {
		if (a.resp.status >= 200 && a.resp.status <= 299)
			provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "deleted");
		else if (a.resp.status == 404)
			provider_result_set(res, STEP_OUTCOME_SUCCEEDED, "", "already "
			    "deactivated: the SCIM server has no such user");
		else
			result_from_answer(res, &a);
		if (res->outcome == STEP_OUTCOME_SUCCEEDED)
			snprintf(res->state, sizeof(res->state), "removed");
	}
	answer_clear(&a);
}

static int
scim_execute(struct provider *p, const struct step *step, struct step_result *res)
{
	char *path;

	memset(res, 0, sizeof(*res));
	if (!id_ok(step->account_ref)) {
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "invalidAccountRef",
		    "account reference is not a SCIM user id");
		return 0;
	}
	if ((path = user_path(step->account_ref)) == NULL) {
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "noMemory", "out of memory");
		return 0;
	}
	if (step->type == ACTION_DEACTIVATE)
		delete_user(p, path, res);
	else if (step->type == ACTION_DISABLE || step->type == ACTION_ENABLE)
		set_active(p, path, step->type == ACTION_ENABLE, res);
	else
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "unsupported",
		    "not supported by SCIM");
	free(path);
	return 0;
}

/* Listing */

/* An optional string attribute: absent, null, or a printable string. */
static bool
opt_text(const json_t *o, const char *key, const char **out)
{
	const json_t *v = json_object_get(o, key);

	*out = json_string_value(v);
	if (v == NULL || json_is_null(v))
		return true;
	return *out != NULL && strlen(*out) <= 1024 && text_printable(*out, false);
}

/* The primary email, else the first one with a value (RFC 7643 4.1.2). */
static bool
pick_email(const json_t *u, const char **out)
{
	const json_t *emails = json_object_get(u, "emails"), *m;
	const char *v, *first = NULL;
	size_t i;

	*out = NULL;
	if (emails != NULL && !json_is_array(emails))
		return false;
	json_array_foreach(emails, i, m) {
		if (!json_is_object(m) || !opt_text(m, "value", &v))
			return false;
		if (v != NULL && json_is_true(json_object_get(m, "primary")))
			*out = v;
		if (first == NULL)
			first = v;
	}
	if (*out == NULL)
		*out = first;
	return true;
}

/* The user's meta.lastModified, when it is a valid time, raises *newest. */
static void
note_modified(const json_t *u, int64_t *newest)
{
	const char *lm = json_str(json_object_get(u, "meta"), "lastModified");
	int64_t t;

	if (lm != NULL && strlen(lm) < 64 && text_time_parse(lm, &t) == 0 && t > *newest)
		*newest = t;
}

/* 1 when u is malformed (skipped), else 0 with *cbret set. */
static int
list_user(struct provider *p, const json_t *u, int64_t *newest, provider_account_cb cb,
    void *arg, int *cbret)
{
	struct account acct = { 0 };
	const json_t *act = json_object_get(u, "active"), *name = json_object_get(u, "name");
	const char *id = json_str(u, "id"), *user, *email, *display, *formatted = NULL;

	if (!json_is_object(u) || !id_ok(id) || !opt_text(u, "userName", &user) ||
	    user == NULL || *user == '\0' || !pick_email(u, &email) ||
	    !opt_text(u, "displayName", &display) || (act != NULL && !json_is_boolean(act)) ||
	    (name != NULL && (!json_is_object(name) ||
	    !opt_text(name, "formatted", &formatted)))) {
		log_msg(LOG_LVL_WARN, "scim %s: skipped malformed user %.64s", p->name,
		    id_ok(id) ? id : "(no valid id)");
		return 1;
	}
	note_modified(u, newest);
	acct.system = p->name;
	acct.kind = (char *)"scim";
	acct.external_id = (char *)id;
	acct.username = (char *)user;
	acct.email = (char *)email;
	acct.display_name = (char *)(display != NULL ? display : formatted);
	acct.state = act == NULL ? NULL : json_is_true(act) ? (char *)"enabled" :
	    (char *)"disabled";
	*cbret = cb(&acct, arg);
	return 0;
}

static int
list_failed(const struct answer *a, struct step_result *res, struct qerr *e)
{
	if (a->resp.status != 0 && (a->resp.status < 200 || a->resp.status > 299))
		result_from_answer(res, a);
	qerr_set(e, res->outcome == STEP_OUTCOME_TRANSIENT ? QERR_TRANSIENT :
	    QERR_PERMANENT, NULL, "listing SCIM users: %s", res->message);
	if (e != NULL)
		snprintf(e->vendor_code, sizeof(e->vendor_code), "%s", res->error_code);
	return e != NULL ? e->code : QERR_PERMANENT;
}

/* One page, waiting out a few transient failures: a listing is many requests. */
static int
list_get(struct provider *p, const char *path, struct answer *a, struct qerr *e)
{
	struct step_result res;
	int tries;

	for (tries = 0;; tries++) {
		memset(&res, 0, sizeof(res));
		if (call(p, "GET", path, NULL, a, &res) == 0 && a->resp.status == 200)
			return 0;
		if (a->resp.status != 0)
			result_from_answer(&res, a);
		if (res.outcome != STEP_OUTCOME_TRANSIENT || tries + 1 >= LIST_TRIES)
			return list_failed(a, &res, e);
		clock_sleep_ms(res.retry_after_ms > 0 ? (res.retry_after_ms < LIST_WAIT_MAX_MS ?
		    res.retry_after_ms : LIST_WAIT_MAX_MS) : 500 << tries);
	}
}

/* Lists one page's Resources; *n is how many it had, *total the server's count. */
static int
list_page(struct provider *p, const json_t *page, int64_t *newest,
    provider_account_cb cb, void *arg, size_t *n, json_int_t *total, struct qerr *e)
{
	const json_t *rs = json_object_get(page, "Resources"), *u,
	    *tr = json_object_get(page, "totalResults");
	size_t i, skipped = 0;
	int cbret = 0;

	if (!json_is_object(page) || !json_is_integer(tr) || json_integer_value(tr) < 0 ||
	    (rs != NULL && !json_is_array(rs)))
		return qerr_set(e, QERR_TRANSIENT, NULL, "the SCIM server answered the user "
		    "listing without a ListResponse (totalResults, Resources)");
	*total = json_integer_value(tr);
	*n = json_array_size(rs);
	json_array_foreach(rs, i, u) {
		skipped += (size_t)list_user(p, u, newest, cb, arg, &cbret);
		if (cbret != 0)
			return cbret;
	}
	if (skipped > 0)
		log_msg(LOG_LVL_WARN, "scim %s: %zu malformed users skipped", p->name, skipped);
	return 0;
}

/*
 * Pages through /Users by startIndex, advancing by what each page held: a server may
 * send fewer than count. filter (escaped) narrows the listing, or is NULL.
 */
static int
walk(struct provider *p, const char *filter, provider_account_cb cb, void *arg,
    int64_t *newest, struct qerr *e)
{
	struct answer a = { 0 };
	json_int_t start = 1, total = 0;
	char *path = NULL;
	size_t n = 0, pages;
	int r = 0;

	for (pages = 0; r == 0; pages++) {
		if (pages == PAGES_MAX) {
			r = qerr_set(e, QERR_PERMANENT, NULL, "the SCIM user listing did not "
			    "end after %d pages", PAGES_MAX);
			break;
		}
		free(path);
		if (asprintf(&path, "/Users?startIndex=%lld&count=%ld%s%s", (long long)start,
		    p->s.page_size, filter != NULL ? "&filter=" : "",
		    filter != NULL ? filter : "") == -1) {
			path = NULL;
			r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		} else if ((r = list_get(p, path, &a, e)) == 0 &&
		    (r = list_page(p, a.body, newest, cb, arg, &n, &total, e)) == 0) {
			start += (json_int_t)n;
			if (n == 0 || start > total)
				break;
		}
	}
	if (r == 0 && n == 0 && start <= total)
		log_msg(LOG_LVL_WARN, "scim %s: the listing stopped at %lld of %lld users "
		    "(an empty page)", p->name, (long long)start - 1, (long long)total);
	answer_clear(&a);
	free(path);
	return r;
}

static int
scim_list_accounts(struct provider *p, provider_account_cb cb, void *arg, struct qerr *e)
{
	int64_t newest = 0;

	return walk(p, NULL, cb, arg, &newest, e);
}

/* Whether /ServiceProviderConfig says filter.supported; false when it cannot say. */
static bool
filters(struct provider *p)
{
	struct step_result res = { 0 };
	struct answer a = { 0 };
	bool yes;

	yes = call(p, "GET", "/ServiceProviderConfig", NULL, &a, &res) == 0 &&
	    a.resp.status == 200 &&
	    json_is_true(json_object_get(json_object_get(a.body, "filter"), "supported"));
	answer_clear(&a);
	return yes;
}

/* "scim1 <RFC 3339 time>": the latest meta.lastModified the last listing saw. */
static int
parse_since(const char *since, int64_t *t)
{
	if (since == NULL || strncmp(since, CURSOR_TAG, strlen(CURSOR_TAG)) != 0 ||
	    strlen(since) > 64)
		return -1;
	return text_time_parse(since + strlen(CURSOR_TAG), t);
}

static char *
changed_filter(int64_t t)
{
	char when[TEXT_TIME_LEN], *f = NULL, *q;

	text_time_format(t, when);
	if (asprintf(&f, "meta.lastModified gt \"%s\"", when) == -1)
		return NULL;
	q = http_escape(f);
	free(f);
	return q;
}

/*
 * Incremental by filter=meta.lastModified gt "…" where the server filters; a full
 * listing otherwise, or when the cursor is missing or not ours. A user deleted at the
 * server is seen gone at the next full listing only: SCIM keeps no tombstones.
 */
static int
scim_list_changes(struct provider *p, const char *since, provider_account_cb cb,
    void *arg, char **next, bool *full, struct qerr *e)
{
	char when[TEXT_TIME_LEN], *filter = NULL;
	bool can = filters(p);
	int64_t t = 0, newest;
	int r;

	*next = NULL;
	*full = !can || parse_since(since, &t) != 0;
	if (*full)
		t = 0;
	else if ((filter = changed_filter(t)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	newest = t;
	r = walk(p, filter, cb, arg, &newest, e);
	free(filter);
	if (r != 0 || !can || newest == 0)
		return r;
	text_time_format(newest, when);
	if (asprintf(next, CURSOR_TAG "%s", when) == -1) {
		*next = NULL;
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	return 0;
}

/* A SCIM id is the server's own string: nothing to check but its length and text. */
static bool
scim_id_valid(char *value)
{
	return id_ok(value);
}

static const struct kind_alert_id scim_alert_ids[] = {
	{ "scim_id", KIND_MATCH_EXTERNAL_ID, "a scim_id is the SCIM server's user id, 1 to "
	    "255 printable characters", scim_id_valid },
};

/* A SCIM userName is most often the person's UPN or email at the identity provider. */
static const struct kind_corr_rule scim_corr_rules[] = {
	{ "scim", "scim.username, scim.email = *.upn, *.email" },
};

/* No vendor role model to mirror: acting on a SCIM system needs a quell role only. */
static const struct kind_info scim_info = {
	.kind = "scim",
	.alert_ids = scim_alert_ids,
	.nalert_ids = sizeof(scim_alert_ids) / sizeof(scim_alert_ids[0]),
	.corr_rules = scim_corr_rules,
	.ncorr_rules = sizeof(scim_corr_rules) / sizeof(scim_corr_rules[0]),
};

const struct provider_ops provider_scim = {
	.kind = "scim",
	.info = &scim_info,
	.open = scim_open,
	.supports = scim_supports,
	.execute = scim_execute,
	.list_accounts = scim_list_accounts,
	.list_changes = scim_list_changes,
	.close = scim_close,
};
