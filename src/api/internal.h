/* What the API's files share; nothing outside src/api includes this. */
#ifndef QUELL_API_INTERNAL_H
#define QUELL_API_INTERNAL_H

#include <stdbool.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api.h"
#include "core/policy.h"
#include "oidc.h"

struct api {
	const struct config *cfg;
	struct store *st;
	struct engine *eng;
	struct MHD_Daemon *d;
	uint16_t port;
	char *tls_cert;
	char *tls_key;
	struct web *web;	/* the console: files and browser sessions */
	struct oidc *oidc;	/* bearer JWTs; NULL without [oidc] */
	struct conn_guard *guard;	/* header deadlines (connguard.c) */
	struct hunt_pool *hunts;	/* hunting queries' own threads (routes_hunting.c) */
};

struct req {
	struct api *api;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	char *body;
	size_t len;
	size_t cap;
	bool too_large;
	const char *arg[2];	/* {…} segments of the route, in order */
	char argbuf[2][256];
	struct principal who;
	unsigned perms;
	struct oidc_claims claims;	/* of a bearer JWT, for authorization */
	bool has_claims;
	/* The caller sent a bearer token: a 401 then says invalid_token and a 403
	 * insufficient_scope in WWW-Authenticate (RFC 6750 3.1). */
	bool bearer;
	/* A console session cookie and no Authorization header (web_has_session),
	 * read when the headers are in: the transport and req_actor ask this, so that
	 * neither calls back into web.c. */
	bool session_cookie;
	struct subject subject;	/* who, as the access policy sees them */
	struct grant_set grants; /* what the policy grants them; perms is the union */
	int status;		/* set by the handler with resp */
	json_t *resp;
	char *text;		/* instead of resp: a text answer (freed with q) */
	const char *text_type;	/* its Content-Type */
	const char *route;	/* the route pattern matched, for metrics; NULL none */
	int64_t started_us;	/* when the request's headers were in */
	const char *allow;	/* a 405's Allow header: the path's methods */
	unsigned retry_after;	/* seconds, for a Retry-After header; 0 = none */
	char client[48];	/* the client's address (req_client) */
	char actor_id[600];	/* a JWT principal's stable id (req_actor) */
	bool close;		/* the connection cannot be trusted after this answer */
	/* A handler that suspended the connection (q->suspended) to finish elsewhere
	 * sets resume, which MHD's thread calls when the connection is resumed to set
	 * the answer; job is its state, freed by job_free (also when the request ends
	 * without resume having run). */
	bool suspended;
	int (*resume)(struct req *q);
	void *job;
	void (*job_free)(void *job);
	/* Graph-compatible answers' request-id and client-request-id (routes_graph.c). */
	char graph_rid[40];
	char graph_crid[136];
};

/* The request helpers (request.c), for every handler. */

/* Sets an error answer: {"error":{"code","message","field"}}; returns 0. */
int req_error(struct req *q, unsigned status, const char *code, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Maps a qerr to its HTTP status and code. */
int req_qerr(struct req *q, int r, const struct qerr *e);
/* The API error code ("not_found", …) for a QERR_* code. */
const char *req_error_code(int r);
/* Queues q->resp as the JSON answer, with a Set-Cookie when cookie is set. */
enum MHD_Result req_send_json(struct req *q, const char *cookie);
/* Sets a JSON answer (steals o); returns 0. */
int req_reply(struct req *q, unsigned status, json_t *o);
const char *req_query(struct req *q, const char *key);
/* The body parsed as a JSON object, or NULL with the error answer set. */
json_t *req_json(struct req *q);
/*
 * Audits a refused request (401 or 403): an authenticated principal's as an entry
 * of its own; a caller's that did not authenticate through refusals_note.
 */
void req_audit_denial(struct req *q, const char *event, const char *why);
/* The engine's view of the caller: kind (token, jwt, session), stable id (token
 * id; JWT issuer#subject), display name and client address. Borrows from q. */
void req_actor(struct req *q, struct actor *who);
/* The client's address as text ("127.0.0.1", "::1"), cached in q. */
const char *req_client(struct req *q);

/*
 * Refusals of unauthenticated callers (refusals.c): counted per client address,
 * event and reason, one audit entry per minute with the count; past the budget per
 * address the answer set on q becomes 429 with Retry-After.
 */
void refusals_note(struct req *q, const char *event, const char *why);
/* Writes the windows a minute old (all: every window, before the audit log is read
 * or at shutdown). */
void refusals_flush(struct engine *eng, bool all);
/*
 * What the access policy grants the authenticated caller (q->grants, q->perms); false
 * with the error answer set.
 */
bool req_authorize(struct req *q);

/*
 * Header deadlines (connguard.c): conn_guard_notify is the MHD_OPTION_NOTIFY_CONNECTION
 * callback (cls: the guard); a connection whose request headers are not complete
 * within header_timeout_s of its start (or of its previous request's end) is shut
 * down. *out is the caller's, for conn_guard_close after MHD_stop_daemon (NULL ok).
 */
struct conn_guard;
int conn_guard_open(unsigned header_timeout_s, struct conn_guard **out, struct qerr *e);
void conn_guard_close(struct conn_guard *g);
void conn_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode toe);
/* The handler has the connection's request (headers complete) / is done with it. */
void conn_guard_request_started(struct MHD_Connection *conn);
void conn_guard_request_ended(struct MHD_Connection *conn);

/*
 * Hunting's own threads (routes_hunting.c): workers queries at most at once, none
 * waiting; *out is the caller's. hunt_pool_close waits for the queries running (each
 * resumes its connection) and must run before MHD_stop_daemon (NULL ok).
 */
struct hunt_pool;
int hunt_pool_open(struct store *st, unsigned workers, struct hunt_pool **out,
    struct qerr *e);
void hunt_pool_close(struct hunt_pool *p);

typedef int (*route_fn)(struct req *q);

int routes_dispatch(struct req *q);
/* Shared Signals (routes_ssf.c): the unauthenticated endpoints (metadata, JWK Set,
 * pushes to the receivers), answered when q is for one of them. */
bool routes_ssf_public(struct req *q);
/* Whether path is one of SSF's (the console serves no file there). */
bool routes_ssf_path(const char *path);
void routes_ssf_receive(struct req *q, const char *name);
int route_ssf_stream_create(struct req *q);
int route_ssf_stream_get(struct req *q);
int route_ssf_stream_update(struct req *q);
int route_ssf_stream_delete(struct req *q);
int route_ssf_status_get(struct req *q);
int route_ssf_status_post(struct req *q);
int route_ssf_subjects(struct req *q);
int route_ssf_verify(struct req *q);
int route_ssf_poll(struct req *q);
/* Long polls (routes_ssf_wait.c): suspends q until its stream has a SET or wait_s
 * passed, then resume runs on MHD's thread; false (q untouched) when it cannot wait:
 * answer at once. _close resumes every waiting poll and must run before
 * MHD_stop_daemon; _open lets polls wait again (api_start). */
bool routes_ssf_wait(struct req *q, const char *stream, int wait_s,
    int (*resume)(struct req *q));
void routes_ssf_wait_open(void);
void routes_ssf_wait_close(void);

/* A route checks the permission itself (and records a denial the engine's way). */
#define PERM_IN_HANDLER 0x10000u
#define PERM_ANY 0u

#define REASON_MAX 1000
#define NAME_MAX_LEN 256

/* Rows gathered for a list answer. */
struct list_ctx {
	json_t *arr;
	int n;
};

/*
 * Input checks (input.c). Each returns 0, or -1 with the 400 answer set naming the
 * field. Strings are borrowed from the JSON object.
 */
int req_field_str(struct req *q, json_t *o, const char *key, bool required, size_t max,
    const char **out);
/* req_field_str for text that may span lines (a hunting query): tabs and line
 * breaks are allowed, other control characters are not. */
int req_field_text(struct req *q, json_t *o, const char *key, bool required, size_t max,
    const char **out);
int req_only_keys(struct req *q, json_t *o, const char *prefix, const char *const *keys);
int req_check_id(struct req *q, const char *field, const char *v, const char *prefix);
int req_limit(struct req *q, int def, int *out);
/* *out (caller frees the array, not the strings) borrows from arr. */
int req_tag_list(struct req *q, json_t *arr, const char *field, char ***out, size_t *n);
/* Answers a list page: {items: [...], "next": the last item's cursor key when the
 * page is full, else null}. */
int req_reply_page(struct req *q, const char *items, const struct list_ctx *c, int limit,
    const char *cursor);
/* An optional {"reason": "..."} body; *o (caller decrefs) holds the reason. */
int req_optional_reason(struct req *q, json_t **o, const char **reason);

/*
 * The bodies of POST /api/v1/actions, /actions/bulk and /alerts checked apart from
 * what the handler then asks of the engine, so that they can be exercised on their
 * own (tests/fuzz). Each returns 0, or -1 with the 400 answer set on q naming the
 * field. Strings are borrowed from o.
 */
/* One action request; *params (caller frees) is its params as compact JSON. */
int routes_action_parse(struct req *q, json_t *o, struct action_request *rq,
    char **params);

/* A bulk request's parts: the items as parsed (rq, params) and where each item of
 * the body went (slot[i]: its index in rq, or -1 when it was refused already). */
struct bulk_request {
	const json_t *body;	/* borrowed */
	const json_t *items;	/* the body's requests */
	json_t *merged;		/* the items with the shared fields filled in */
	json_t *results;	/* one per item, its error set when refused */
	struct action_request *rq;
	char **params;
	long *slot;
	size_t n, nrq;
	bool preview, all_or_nothing;
	size_t refused;
	unsigned first_status;
	json_t *first_error;
};

/* Fills *b, whose merged and results the caller made empty arrays; -1 only for the
 * body as a whole: a refused item is in b->results. routes_bulk_free frees b's parts
 * whatever the outcome. */
int routes_bulk_parse(struct req *q, json_t *o, struct bulk_request *b);
void routes_bulk_free(struct bulk_request *b);

/* An alert; *a (caller clears with alert_clear) owns its strings. */
int routes_alert_parse(struct req *q, json_t *o, struct alert *a);

/* Handlers (routes_*.c), listed in the route table of routes.c. */
int route_post_action(struct req *q);
int route_post_actions_bulk(struct req *q);
int route_list_actions(struct req *q);
int route_get_action(struct req *q);
int route_cancel_action(struct req *q);
int route_approve_action(struct req *q);
int route_reject_action(struct req *q);
int route_approve_bulk(struct req *q);
int route_reject_bulk(struct req *q);
int route_undo_action(struct req *q);
int route_list_identities(struct req *q);
int route_get_identity(struct req *q);
int route_post_identity(struct req *q);
int route_post_link(struct req *q);
int route_delete_link(struct req *q);
int route_put_tags(struct req *q);
int route_post_sync(struct req *q);
int route_post_sync_all(struct req *q);
int route_list_sync(struct req *q);
int route_list_conflicts(struct req *q);
int route_list_systems(struct req *q);
int route_whoami(struct req *q);
int route_list_audit(struct req *q);
int route_verify_audit(struct req *q);
int route_post_token(struct req *q);
int route_list_tokens(struct req *q);
int route_revoke_token(struct req *q);
int route_post_alert(struct req *q);
int route_list_alerts(struct req *q);
int route_get_alert(struct req *q);
int route_release_identity(struct req *q);
int route_hunt(struct req *q);
int route_metrics(struct req *q);
int route_readyz(struct req *q);
int route_graph_list(struct req *q);
int route_graph_get(struct req *q);
int route_graph_invoke(struct req *q);

/*
 * The Graph-compatible API (routes_graph.c): whether path is under its prefix, and
 * what req_send_json does to such answers: errors in Graph's shape (finish, before
 * the body is written) and Graph's request-id headers (headers).
 */
bool routes_graph_path(const char *path);
void routes_graph_finish(struct req *q);
void routes_graph_headers(struct req *q, struct MHD_Response *resp);

#endif
