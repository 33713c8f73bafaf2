/*
 * An HTTP server on 127.0.0.1 inside the harness (fake_http.c, libmicrohttpd) that
 * answers the first request with the answer the harness set last, and any later one
 * with a 404 (so that a next page named by the input ends there): how a harness feeds
 * its input to code that reads it from an identity provider's or issuer's API.
 */
#ifndef QUELL_FUZZ_FAKE_HTTP_H
#define QUELL_FUZZ_FAKE_HTTP_H

#include <stddef.h>

/* Starts the server once; returns its port. */
unsigned fake_http_start(void);

/* The next answers: status, raw header lines ("Name: value\n", may be NULL) and
 * body (copied). Requests whose path starts with token_path (NULL: none) get a
 * fixed OAuth token answer instead, every time. */
void fake_http_answer(unsigned status, const char *headers, const char *body,
    size_t len, const char *token_path);

#endif
