/*
 * JSON Web Tokens as OAuth client assertions need them (RFC 7515, 7518, 7519):
 * base64url without padding, compact JWS signed RS256 or ES256, and the x5t#S256
 * thumbprint of a certificate. Keys and certificates arrive as PEM text: the caller
 * reads the files, so core stays free of I/O.
 */
#ifndef QUELL_CORE_JWT_H
#define QUELL_CORE_JWT_H

#include <stddef.h>

#include "err.h"

/* Length of a base64url text (no padding) for len bytes, without the NUL. */
size_t jwt_b64url_len(size_t len);

/* Encodes len bytes into out, which holds jwt_b64url_len(len) + 1; returns the length. */
size_t jwt_b64url_encode(const void *in, size_t len, char *out);

/*
 * Decodes base64url text (no padding, no whitespace) into a new buffer the caller
 * frees, NUL-terminated for convenience. QERR_INVALID for any other character or an
 * impossible length.
 */
int jwt_b64url_decode(const char *in, unsigned char **out, size_t *outlen, struct qerr *e);

/*
 * Signs a compact JWS: base64url(header_json) "." base64url(claims_json) "." signature.
 * alg is "RS256" (RSA key of at least 2048 bits) or "ES256" (P-256 key; the signature
 * is R || S, 64 bytes, as RFC 7518 3.4 wants). header_json must be a JSON object whose
 * "alg" is alg; claims_json must be a JSON object. Both are used exactly as given.
 * key_pem is a PKCS#8 or traditional unencrypted private key. *out is the caller's to
 * free. QERR_INVALID for a bad argument or key, QERR_NOMEM.
 */
int jwt_sign(const char *alg, const char *key_pem, const char *header_json,
    const char *claims_json, char **out, struct qerr *e);

/* base64url(SHA-256(DER of the first certificate in cert_pem)): 43 characters + NUL. */
int jwt_x5t_s256(const char *cert_pem, char out[44], struct qerr *e);

#endif
