/*
 * What every handler (routes*.c, web.c) answers and checks a request with: JSON
 * answers and errors, the body as JSON, the caller as the engine and the access
 * policy see it, and refusals audited. No transport here: that is server.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/text.h"
#include "internal.h"

int
req_reply(struct req *q, unsigned status, json_t *o)
{
	json_decref(q->resp);
	q->status = (int)status;
	q->resp = o;
	return 0;
}

/*
 * An error quotes what the client sent, which need not be UTF-8, and a bound may cut
 * it inside a character: such bytes become '?', else the answer could not be JSON
 * and would lose its field and reason.
 */
static void
utf8_scrub(char *s)
{
	size_t i = 0, k, n = strlen(s);

	while (i < n) {
		for (k = 1; k <= 4 && i + k <= n && !text_utf8_valid(s + i, k); k++)
			;
		if (k > 4 || i + k > n)
			s[i++] = '?';
		else
			i += k;
	}
}

int
req_error(struct req *q, unsigned status, const char *code, const char *field,
    const char *fmt, ...)
{
	char msg[768], f[256];
	json_t *err;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_scrub(msg);
	err = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (field != NULL && field[0] != '\0') {
		snprintf(f, sizeof(f), "%s", field);
		utf8_scrub(f);
		json_object_set_new(err, "field", json_string(f));
	}
	return req_reply(q, status, json_pack("{s:o}", "error", err));
}

static const struct {
	int code;
	unsigned status;
	const char *name;
} qerr_http[] = {
	{ QERR_INVALID, 400, "invalid_input" },
	{ QERR_UNSUPPORTED, 400, "unsupported" },
	{ QERR_UNAUTHENTICATED, 401, "unauthenticated" },
	{ QERR_DENIED, 403, "forbidden" },
	{ QERR_NOT_FOUND, 404, "not_found" },
	{ QERR_CONFLICT, 409, "conflict" },
	{ QERR_TOO_LARGE, 413, "too_large" },
	{ QERR_TRANSIENT, 503, "unavailable" },
	{ QERR_BUSY, 503, "unavailable" },
};

const char *
req_error_code(int r)
{
	size_t i;

	for (i = 0; i < sizeof(qerr_http) / sizeof(qerr_http[0]); i++)
		if (qerr_http[i].code == r)
			return qerr_http[i].name;
	return "internal";
}

int
req_qerr(struct req *q, int r, const struct qerr *e)
{
	size_t i;

	for (i = 0; i < sizeof(qerr_http) / sizeof(qerr_http[0]); i++)
		if (qerr_http[i].code == r)
			return req_error(q, qerr_http[i].status, qerr_http[i].name, e->field,
			    "%s", e->msg[0] ? e->msg : qerr_strerror(r));
	log_msg(LOG_LVL_ERROR, "%s %s: %s", q->method, q->path, e->msg);
	return req_error(q, 500, "internal", NULL, "internal error: %s", qerr_strerror(r));
}

const char *
req_query(struct req *q, const char *key)
{
	return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, key);
}

json_t *
req_json(struct req *q)
{
	const char *ct = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	json_error_t je;
	json_t *o;

	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
		req_error(q, 415, "unsupported_media_type", "Content-Type",
		    "the body must be application/json");
		return NULL;
	}
	/* NUL is let through here so that the field holding it is the one named. */
	o = json_loadb(q->body ? q->body : "", q->len,
	    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (o == NULL) {
		req_error(q, 400, "invalid_input", "body",
		    "the body is not valid JSON (UTF-8): %s at byte %d", je.text,
		    je.position);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		req_error(q, 400, "invalid_input", "body", "the body must be a JSON object");
		return NULL;
	}
	return o;
}

void
req_actor(struct req *q, struct actor *who)
{
	memset(who, 0, sizeof(*who));
	who->id = q->who.id;
	/* A JWT's subject is unique only within its issuer: both make its id. */
	if (q->has_claims && q->claims.subject != NULL) {
		snprintf(q->actor_id, sizeof(q->actor_id), "%s#%s",
		    oidc_issuer(q->api->oidc) ? oidc_issuer(q->api->oidc) : "",
		    q->claims.subject);
		who->id = q->actor_id;
	}
	/* Authenticated without an Authorization header: by a console session. */
	who->kind = q->session_cookie ? "session" : q->has_claims ? "jwt" : "token";
	who->client = req_client(q);
	who->name = q->who.name;
	who->role = q->who.role;
	who->perms = q->perms;
	who->subject = &q->subject;
	who->grants = &q->grants;
}

/*
 * The access policy's view of the authenticated caller: an API token's role and
 * scope, or a JWT's app roles and Entra directory roles matched against [grant]
 * sections (and the seed's defaults). q->perms becomes the union of the grants.
 */
bool
req_authorize(struct req *q)
{
	struct subject *s = &q->subject;
	struct qerr e;

	s->id = q->who.id;
	s->name = q->who.name;
	/* A JWT's principal holds [oidc] default_role (if set) besides its grants. */
	s->role = q->has_claims ? oidc_default_role(q->api->oidc) : q->who.role;
	s->scope = q->who.scope;
	s->nscope = q->who.nscope;
	if (q->has_claims) {
		s->app_roles = q->claims.roles;
		s->napp_roles = q->claims.nroles;
		s->wids = q->claims.wids;
		s->nwids = q->claims.nwids;
		s->oauth_scopes = q->claims.scopes;
		s->noauth_scopes = q->claims.nscopes;
	}
	qerr_clear(&e);
	if (policy_grants(engine_policy(q->api->eng), s, &q->grants, &e) != 0) {
		req_qerr(q, QERR_NOMEM, &e);
		return false;
	}
	q->perms = policy_perms(&q->grants);
	return true;
}

void
req_audit_denial(struct req *q, const char *event, const char *why)
{
	json_t *d;
	struct actor who;
	struct qerr e;

	if (q->who.name == NULL) {
		refusals_note(q, event, why);
		return;
	}
	d = json_pack("{s:s, s:s, s:s}", "method", q->method, "path", q->path, "why", why);
	req_actor(q, &who);
	if (engine_audit_as(q->api->eng, &who, event, NULL, d, &e) != 0)
		log_msg(LOG_LVL_ERROR, "audit of a refused request failed: %s", e.msg);
	json_decref(d);
}

/*
 * RFC 6750 3.1: a request without a token is told the scheme only; a token refused
 * is invalid_token, a token that may not do this insufficient_scope. Never the
 * reason: that is in the body, for the caller only.
 */
static const char *
bearer_challenge(const struct req *q)
{
	if (!q->bearer)
		return "Bearer realm=\"quell\"";
	return q->status == 401 ? "Bearer realm=\"quell\", error=\"invalid_token\"" :
	    "Bearer realm=\"quell\", error=\"insufficient_scope\"";
}

enum MHD_Result
req_send_json(struct req *q, const char *cookie)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text;

	routes_graph_finish(q);
	if (q->text != NULL) {
		/* A text answer (/metrics): handed to MHD, which frees it. */
		text = q->text;
		q->text = NULL;
	} else
		text = q->resp ? json_dumps(q->resp, JSON_COMPACT) : strdup("{}");
	if (text == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, q->text_type ?
	    q->text_type : "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	routes_graph_headers(q, resp);
	if (q->status == 401 || (q->status == 403 && q->bearer))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    bearer_challenge(q));
	if (cookie != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	if (q->status == 405 && q->allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, q->allow);
	if (q->retry_after != 0) {
		char ra[16];

		snprintf(ra, sizeof(ra), "%u", q->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (q->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(q->conn, (unsigned)q->status, resp);
	MHD_destroy_response(resp);
	return ret;
}
