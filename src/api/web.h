/*
 * The web console: its static files under [web] root, and browser sessions (a cookie
 * that stands in for the bearer token, with a CSRF token for every state change).
 * Only the API's own files include this.
 */
#ifndef QUELL_API_WEB_H
#define QUELL_API_WEB_H

#include <stdbool.h>

#include "internal.h"

struct web;

/* Validates cfg->web (errors say "file:line: reason") and finds the files' root. */
int web_open(const struct config *cfg, bool tls, struct web **out, struct qerr *e);
/* Frees w (the sessions are the store's and stay there); accepts NULL. */
void web_close(struct web *w);

/*
 * Answers the console's own requests: its files (anything outside /api/ and
 * /healthz) and /api/v1/session. Returns true when it has queued the answer (*ret is
 * MHD's result), false for a request the API routes serve.
 */
bool web_request(struct req *q, enum MHD_Result *ret);
/* Whether the request carries a session cookie (and no Authorization header). */
bool web_has_session(struct req *q);
/*
 * Authenticates q by its session cookie, like authenticate() does by a bearer token:
 * fills q->who and q->perms, and refuses a state change without the session's CSRF
 * token. false with the 401/403 answer set and audited.
 */
bool web_authenticate(struct req *q);

#endif
