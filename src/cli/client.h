/*
 * The HTTP side of quell: one libcurl handle, quelld's base URL and the bearer
 * token; JSON in, JSON out; the API's error body turned into struct qerr.
 */
#ifndef QUELL_CLI_CLIENT_H
#define QUELL_CLI_CLIENT_H

#include <jansson.h>

#include "core/err.h"

struct client;

/* token is copied (and zeroed when the client closes); ca may be NULL. */
int client_open(const char *url, const char *token, const char *ca,
    struct client **out, struct qerr *e);
void client_close(struct client *c);

/*
 * Sends method path (path begins with "/", already escaped) with body (may be
 * NULL) and sets *answer to the parsed 2xx answer (NULL if it was empty). Any other
 * status returns an error with e->status set to it and e->field, e->vendor_code
 * (the API's error code) and e->msg from the API's error body; an unreachable
 * quelld returns QERR_TRANSIENT with e->status 0.
 */
int client_call(struct client *c, const char *method, const char *path, json_t *body,
    json_t **answer, struct qerr *e);

/* s escaped for a path segment or query value; free with free(). */
char *client_escape(struct client *c, const char *s);

#endif
