/*
 * JSON Web Tokens as OAuth client assertions need them (RFC 7515, 7518, 7519):
 * base64url without padding, compact JWS signed RS256 or ES256, and the x5t#S256
 * thumbprint of a certificate. Keys and certificates arrive as PEM text: the caller
 * reads the files, so core stays free of I/O.
 *
 * And as an OpenID Connect relying party needs them: a JWK Set (RFC 7517) parsed into
 * public keys by kid, and compact JWS verification against such a set, RS256 and
 * ES256 only. The caller fetches the JWK Set and checks the claims.
 */
#ifndef QUELL_CORE_JWT_H
#define QUELL_CORE_JWT_H

#include <stddef.h>

#include <jansson.h>

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

/* Public signing keys by kid, from a JWK Set. Immutable once parsed. */
struct jwt_keyset;

/* Bounds on what jwt_jwks_parse accepts. */
#define JWT_JWKS_MAX_BYTES	(1024 * 1024)
#define JWT_JWKS_MAX_KEYS	100
#define JWT_KID_MAX		256

/*
 * Parses a JWK Set of len bytes. Keeps RSA keys (n, e; at least 2048 bits) and EC keys
 * on P-256 (x, y; the point must be on the curve) that have a kid and whose "use", if
 * given, is "sig"; skips other key types and uses. A kept key with a malformed member,
 * a duplicate kid or a set with no usable key is QERR_INVALID with the reason. *out is
 * freed with jwt_keyset_free.
 */
int jwt_jwks_parse(const char *json, size_t len, struct jwt_keyset **out, struct qerr *e);
void jwt_keyset_free(struct jwt_keyset *ks);
size_t jwt_keyset_count(const struct jwt_keyset *ks);

/*
 * Verifies a compact JWS of at most max_len characters against ks: alg must be RS256
 * (with an RSA key) or ES256 (with a P-256 key) and the header's kid a key of ks.
 * On success *header and *claims are the decoded JSON objects (caller decrefs);
 * claims are decoded only once the signature holds. Errors, with the reason in e:
 * QERR_TOO_LARGE (longer than max_len), QERR_INVALID (malformed), QERR_NOT_FOUND
 * (kid not in ks: the caller may refresh ks and retry), QERR_UNAUTHENTICATED
 * (algorithm not allowed, key type mismatch, bad signature), QERR_NOMEM.
 */
int jwt_verify(const char *token, size_t max_len, const struct jwt_keyset *ks,
    json_t **header, json_t **claims, struct qerr *e);

#endif
