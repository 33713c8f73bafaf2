/*
 * The HTTP client the cloud providers (Entra ID, Okta) share: libcurl with connection
 * reuse across threads (a share handle for DNS, TLS sessions and connections), HTTP/2
 * where offered, connect and total timeouts, TLS verification always on. Nothing here
 * knows a vendor: status codes and bodies are for the provider to read.
 */
#ifndef QUELL_PROVIDERS_HTTP_H
#define QUELL_PROVIDERS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

struct http_client;

struct http_options {
	const char *ca_file;		/* NULL: the system's trust store */
	long connect_timeout_ms;	/* default 5 000 */
	long timeout_ms;		/* whole request, default 30 000 */
	size_t max_response;		/* bytes, default 16 MiB; larger is an error */
	const char *user_agent;		/* default "quell/<version>" */
	const char *system;		/* the [system] name, for metrics; NULL: none */
	bool https_only;		/* refuse http:// (the default takes both) */
};

struct http_header {
	const char *name;
	const char *value;
};

struct http_request {
	const char *method;		/* "GET", "POST", "PATCH", "PUT", "DELETE" */
	const char *url;
	const char *body;		/* NULL: none */
	size_t body_len;
	const struct http_header *headers;	/* may hold secrets: never logged */
	size_t nheaders;
};

struct http_response {
	long status;
	char *body;			/* NUL-terminated, caller frees via clear (zeroed) */
	size_t len;
	char *headers;			/* raw "Name: value\r\n" lines of the final answer */
	double seconds;			/* total time of the exchange */
};

/* Caller frees with http_client_free. */
int http_client_new(const struct http_options *opt, struct http_client **out,
    struct qerr *e);
void http_client_free(struct http_client *c);

/*
 * Sends one request and waits for the whole answer. Safe from several threads at once.
 * Returns 0 with *resp filled (any HTTP status), or QERR_TRANSIENT when no answer came
 * (connect failure, timeout, reset; e->msg says which), QERR_PERMANENT for a TLS
 * verification failure or an answer over max_response, QERR_NOMEM.
 */
int http_do(struct http_client *c, const struct http_request *req,
    struct http_response *resp, struct qerr *e);

/* The value of the first header called name (case-insensitive), copied into buf;
 * NULL when absent. */
const char *http_header_get(const struct http_response *resp, const char *name,
    char *buf, size_t len);

void http_response_clear(struct http_response *resp);

/* Percent-encodes s for a URL path segment or query value; caller frees. */
char *http_escape(const char *s);

#endif
