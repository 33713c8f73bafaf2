/*
 * The public half of a signing key as a JWK (RFC 7517, 7518 6.2 and 6.3), for the
 * JWK Sets quell publishes (its SSF transmitter's jwks_uri). The caller reads the
 * PEM file; core stays free of I/O.
 */
#ifndef QUELL_CORE_JWS_H
#define QUELL_CORE_JWS_H

#include <jansson.h>

#include "err.h"

/*
 * The public JWK of key_pem (an unencrypted P-256 or RSA private key) with kid, use
 * "sig" and alg; *alg is "ES256" or "RS256" (static). *out is the caller's to
 * decref. QERR_INVALID naming the reason for any other key.
 */
int jws_public_jwk(const char *key_pem, const char *kid, json_t **out,
    const char **alg, struct qerr *e);

#endif
