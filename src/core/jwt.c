/*
 * JWS signing on OpenSSL's EVP interface. Only the two algorithms client assertions
 * use here are offered, and each insists on its own key type, so a misconfigured key
 * fails at signing time with a sentence instead of producing a token the authorization
 * server rejects with a vague invalid_client.
 *
 * Verification is deliberately as narrow: the algorithm named in the token must be
 * RS256 or ES256 and must agree with the type of the key its kid selects, so neither
 * "alg": "none" nor an HMAC keyed with a public key can ever get through.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "jwt.h"

#define ES256_HALF	32
#define RSA_MIN_BITS	2048

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
jwt_b64url_len(size_t len)
{
	return len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
}

size_t
jwt_b64url_encode(const void *in, size_t len, char *out)
{
	const unsigned char *p = in;
	size_t i, o = 0;
	unsigned long v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		out[o++] = b64url_alphabet[v >> 6 & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		v = (unsigned long)p[i] << 16;
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8;
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		out[o++] = b64url_alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

static int
b64url_value(char c)
{
	const char *s;

	if (c == '\0' || (s = strchr(b64url_alphabet, c)) == NULL)
		return -1;
	return (int)(s - b64url_alphabet);
}

int
jwt_b64url_decode(const char *in, unsigned char **out, size_t *outlen, struct qerr *e)
{
	size_t n = strlen(in), i, o = 0;
	unsigned long v = 0;
	unsigned char *buf;
	int bits = 0, d;

	*out = NULL;
	*outlen = 0;
	if (n % 4 == 1)
		return qerr_set(e, QERR_INVALID, NULL, "base64url text of impossible length");
	if ((buf = malloc(n / 4 * 3 + 3)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < n; i++) {
		if ((d = b64url_value(in[i])) < 0) {
			free(buf);
			return qerr_set(e, QERR_INVALID, NULL,
			    "not base64url: character %zu", i + 1);
		}
		v = (v << 6 | (unsigned long)d) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(v >> bits & 0xff);
		}
	}
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return 0;
}

/* Never prompt on a terminal for an encrypted key's passphrase: refuse it. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int
check_json_object(const char *text, const char *what, const char *alg, struct qerr *e)
{
	json_error_t jerr;
	json_t *j, *a;
	int r = 0;

	if (text == NULL || (j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return qerr_set(e, QERR_INVALID, what, "%s is not JSON", what);
	if (!json_is_object(j))
		r = qerr_set(e, QERR_INVALID, what, "%s is not a JSON object", what);
	else if (alg != NULL && ((a = json_object_get(j, "alg")) == NULL ||
	    !json_is_string(a) || strcmp(json_string_value(a), alg) != 0))
		r = qerr_set(e, QERR_INVALID, what, "%s must say \"alg\": \"%s\"", what, alg);
	json_decref(j);
	return r;
}

static int
load_key(const char *alg, const char *key_pem, EVP_PKEY **out, struct qerr *e)
{
	char group[64];
	EVP_PKEY *pk;
	BIO *bio;

	*out = NULL;
	if ((bio = BIO_new_mem_buf(key_pem, -1)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	pk = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (pk == NULL)
		return qerr_set(e, QERR_INVALID, "key",
		    "the private key is not an unencrypted PEM private key");
	if (strcmp(alg, "RS256") == 0) {
		if (!EVP_PKEY_is_a(pk, "RSA") || EVP_PKEY_get_bits(pk) < RSA_MIN_BITS) {
			EVP_PKEY_free(pk);
			return qerr_set(e, QERR_INVALID, "key",
			    "RS256 needs an RSA key of at least %d bits", RSA_MIN_BITS);
		}
	} else if (!EVP_PKEY_is_a(pk, "EC") ||
	    EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
	    sizeof(group), NULL) != 1 ||
	    (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
		EVP_PKEY_free(pk);
		ERR_clear_error();
		return qerr_set(e, QERR_INVALID, "key", "ES256 needs an EC key on curve P-256");
	}
	*out = pk;
	return 0;
}

/* OpenSSL gives ECDSA signatures as DER; JWS wants R and S as two 32-byte halves. */
static int
ecdsa_der_to_raw(const unsigned char *der, size_t len, unsigned char raw[2 * ES256_HALF])
{
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;
	int ok;

	if ((sig = d2i_ECDSA_SIG(NULL, &der, (long)len)) == NULL)
		return -1;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, raw, ES256_HALF) == ES256_HALF &&
	    BN_bn2binpad(s, raw + ES256_HALF, ES256_HALF) == ES256_HALF;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -1;
}

/* Appends base64url(sig) after the signing input already in jws (length used). */
static void
append_signature(char *jws, size_t used, const unsigned char *sig, size_t siglen)
{
	jws[used] = '.';
	jwt_b64url_encode(sig, siglen, jws + used + 1);
}

int
jwt_sign(const char *alg, const char *key_pem, const char *header_json,
    const char *claims_json, char **out, struct qerr *e)
{
	unsigned char raw[2 * ES256_HALF], *sig = NULL;
	EVP_MD_CTX *md = NULL;
	EVP_PKEY *pk = NULL;
	size_t hlen, clen, used, siglen = 0, cap;
	bool es;
	char *jws = NULL;
	int r = QERR_INTERNAL;

	*out = NULL;
	if (alg == NULL || (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0))
		return qerr_set(e, QERR_INVALID, "alg", "alg must be RS256 or ES256");
	es = alg[0] == 'E';
	if (key_pem == NULL)
		return qerr_set(e, QERR_INVALID, "key", "no private key");
	if ((r = check_json_object(header_json, "header", alg, e)) != 0 ||
	    (r = check_json_object(claims_json, "claims", NULL, e)) != 0)
		return r;
	if ((r = load_key(alg, key_pem, &pk, e)) != 0)
		return r;
	r = QERR_INTERNAL;
	hlen = strlen(header_json);
	clen = strlen(claims_json);
	cap = jwt_b64url_len(hlen) + 1 + jwt_b64url_len(clen) + 1 +
	    jwt_b64url_len((size_t)EVP_PKEY_get_size(pk) + 16) + 1;
	if ((jws = malloc(cap)) == NULL || (md = EVP_MD_CTX_new()) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	used = jwt_b64url_encode(header_json, hlen, jws);
	jws[used++] = '.';
	used += jwt_b64url_encode(claims_json, clen, jws + used);
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)jws, used) != 1 ||
	    (sig = malloc(siglen)) == NULL ||
	    EVP_DigestSign(md, sig, &siglen, (unsigned char *)jws, used) != 1) {
		r = qerr_set(e, QERR_INTERNAL, NULL, "signing the %s token failed", alg);
		goto out;
	}
	if (es) {
		if (ecdsa_der_to_raw(sig, siglen, raw) != 0) {
			r = qerr_set(e, QERR_INTERNAL, NULL, "malformed ECDSA signature");
			goto out;
		}
		append_signature(jws, used, raw, sizeof(raw));
	} else
		append_signature(jws, used, sig, siglen);
	*out = jws;
	jws = NULL;
	r = 0;
out:
	ERR_clear_error();
	free(sig);
	free(jws);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	return r;
}

int
jwt_x5t_s256(const char *cert_pem, char out[44], struct qerr *e)
{
	unsigned char digest[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int dlen = 0;
	X509 *x = NULL;
	BIO *bio;
	int len, r = QERR_INTERNAL;

	out[0] = '\0';
	if (cert_pem == NULL || (bio = BIO_new_mem_buf(cert_pem, -1)) == NULL)
		return qerr_set(e, cert_pem == NULL ? QERR_INVALID : QERR_NOMEM, "certificate",
		    cert_pem == NULL ? "no certificate" : "out of memory");
	x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (x == NULL) {
		r = qerr_set(e, QERR_INVALID, "certificate", "not a PEM X.509 certificate");
		goto out;
	}
	if ((len = i2d_X509(x, &der)) <= 0 ||
	    EVP_Digest(der, (size_t)len, digest, &dlen, EVP_sha256(), NULL) != 1 ||
	    dlen != 32) {
		r = qerr_set(e, QERR_INTERNAL, "certificate", "cannot hash the certificate");
		goto out;
	}
	jwt_b64url_encode(digest, dlen, out);
	r = 0;
out:
	ERR_clear_error();
	OPENSSL_free(der);
	X509_free(x);
	return r;
}

struct jwt_key {
	char *kid;
	EVP_PKEY *pk;
	bool ec;
};

struct jwt_keyset {
	struct jwt_key *keys;
	size_t n;
};

void
jwt_keyset_free(struct jwt_keyset *ks)
{
	size_t i;

	if (ks == NULL)
		return;
	for (i = 0; i < ks->n; i++) {
		free(ks->keys[i].kid);
		EVP_PKEY_free(ks->keys[i].pk);
	}
	free(ks->keys);
	free(ks);
}

size_t
jwt_keyset_count(const struct jwt_keyset *ks)
{
	return ks == NULL ? 0 : ks->n;
}

static const struct jwt_key *
find_key(const struct jwt_keyset *ks, const char *kid)
{
	size_t i;

	for (i = 0; ks != NULL && i < ks->n; i++)
		if (strcmp(ks->keys[i].kid, kid) == 0)
			return &ks->keys[i];
	return NULL;
}

/* A kid ends up in messages and audit entries: printable ASCII, bounded. */
static bool
kid_ok(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t i, n;

	if (s == NULL || (n = json_string_length(v)) == 0 || n > JWT_KID_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* A base64url member of a JWK, decoded to between min and max bytes. */
static int
jwk_bytes(json_t *jwk, const char *name, size_t min, size_t max, unsigned char **out,
    size_t *len, struct qerr *e)
{
	const json_t *v = json_object_get(jwk, name);
	const char *kid = json_string_value(json_object_get(jwk, "kid"));
	struct qerr ign;

	*out = NULL;
	if (!json_is_string(v) || json_string_length(v) > jwt_b64url_len(max) ||
	    jwt_b64url_decode(json_string_value(v), out, len, &ign) != 0 ||
	    *len < min || *len > max) {
		free(*out);
		*out = NULL;
		return qerr_set(e, QERR_INVALID, name,
		    "key '%s': \"%s\" must be base64url of %zu to %zu bytes", kid, name, min,
		    max);
	}
	return 0;
}

/* Builds a public key of type name from params; 0 or -1. */
static int
key_from_params(const char *name, OSSL_PARAM_BLD *b, EVP_PKEY **out)
{
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	OSSL_PARAM *params = NULL;
	int ok;

	*out = NULL;
	ok = (params = OSSL_PARAM_BLD_to_param(b)) != NULL &&
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL)) != NULL &&
	    EVP_PKEY_fromdata_init(ctx) == 1 &&
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1 &&
	    (chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL)) != NULL &&
	    EVP_PKEY_public_check(chk) == 1;
	if (!ok) {
		EVP_PKEY_free(*out);
		*out = NULL;
	}
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return ok ? 0 : -1;
}

static int
rsa_jwk(json_t *jwk, const char *kid, EVP_PKEY **out, struct qerr *e)
{
	unsigned char *n = NULL, *ev = NULL;
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *b = NULL;
	int r;

	if ((r = jwk_bytes(jwk, "n", RSA_MIN_BITS / 8, 1024, &n, &nlen, e)) != 0 ||
	    (r = jwk_bytes(jwk, "e", 1, 8, &ev, &elen, e)) != 0)
		goto out;
	r = QERR_INVALID;
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(ev, (int)elen, NULL)) == NULL ||
	    (b = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be) != 1 ||
	    key_from_params("RSA", b, out) != 0 ||
	    EVP_PKEY_get_bits(*out) < RSA_MIN_BITS) {
		EVP_PKEY_free(*out);
		*out = NULL;
		r = qerr_set(e, QERR_INVALID, "n", "key '%s' is not an RSA public key of at "
		    "least %d bits", kid, RSA_MIN_BITS);
		goto out;
	}
	r = 0;
out:
	OSSL_PARAM_BLD_free(b);
	BN_free(be);
	BN_free(bn);
	free(ev);
	free(n);
	return r;
}

static int
ec_jwk(json_t *jwk, const char *kid, EVP_PKEY **out, struct qerr *e)
{
	unsigned char pub[1 + 2 * ES256_HALF], *x = NULL, *y = NULL;
	OSSL_PARAM_BLD *b = NULL;
	size_t xlen, ylen;
	int r;

	if ((r = jwk_bytes(jwk, "x", ES256_HALF, ES256_HALF, &x, &xlen, e)) != 0 ||
	    (r = jwk_bytes(jwk, "y", ES256_HALF, ES256_HALF, &y, &ylen, e)) != 0)
		goto out;
	pub[0] = 0x04;		/* uncompressed point: X || Y */
	memcpy(pub + 1, x, ES256_HALF);
	memcpy(pub + 1 + ES256_HALF, y, ES256_HALF);
	if ((b = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1",
	    0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub,
	    sizeof(pub)) != 1 ||
	    key_from_params("EC", b, out) != 0) {
		r = qerr_set(e, QERR_INVALID, "x", "key '%s' is not a point on P-256", kid);
		goto out;
	}
	r = 0;
out:
	OSSL_PARAM_BLD_free(b);
	free(y);
	free(x);
	return r;
}

/* Whether a JWK is one this verifier uses at all; others are skipped, not refused. */
static bool
jwk_wanted(json_t *jwk, const char *kty)
{
	const json_t *use = json_object_get(jwk, "use"), *alg = json_object_get(jwk, "alg");
	const char *want = strcmp(kty, "RSA") == 0 ? "RS256" : "ES256";

	if (strcmp(kty, "RSA") != 0 && strcmp(kty, "EC") != 0)
		return false;
	if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig")))
		return false;
	if (alg != NULL && (!json_is_string(alg) || strcmp(json_string_value(alg), want)))
		return false;
	if (strcmp(kty, "EC") == 0) {
		const char *crv = json_string_value(json_object_get(jwk, "crv"));

		return crv != NULL && strcmp(crv, "P-256") == 0;
	}
	return true;
}

static int
add_jwk(struct jwt_keyset *ks, json_t *jwk, size_t idx, struct qerr *e)
{
	const json_t *kidv = json_object_get(jwk, "kid");
	const char *kty, *kid;
	struct jwt_key *k = &ks->keys[ks->n];
	int r;

	if (!json_is_object(jwk))
		return qerr_set(e, QERR_INVALID, "keys", "key %zu is not a JSON object",
		    idx + 1);
	if ((kty = json_string_value(json_object_get(jwk, "kty"))) == NULL)
		return qerr_set(e, QERR_INVALID, "kty", "key %zu has no \"kty\"", idx + 1);
	if (!jwk_wanted(jwk, kty))
		return 0;
	if (!kid_ok(kidv))
		return qerr_set(e, QERR_INVALID, "kid", "key %zu: \"kid\" must be 1 to %d "
		    "printable ASCII characters", idx + 1, JWT_KID_MAX);
	kid = json_string_value(kidv);
	if (find_key(ks, kid) != NULL)
		return qerr_set(e, QERR_INVALID, "kid", "key id '%s' appears twice", kid);
	k->ec = strcmp(kty, "EC") == 0;
	if ((r = k->ec ? ec_jwk(jwk, kid, &k->pk, e) : rsa_jwk(jwk, kid, &k->pk, e)) != 0)
		return r;
	if ((k->kid = strdup(kid)) == NULL) {
		EVP_PKEY_free(k->pk);
		k->pk = NULL;
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	ks->n++;
	return 0;
}

int
jwt_jwks_parse(const char *json, size_t len, struct jwt_keyset **out, struct qerr *e)
{
	struct jwt_keyset *ks = NULL;
	json_t *root = NULL, *keys, *jwk;
	json_error_t je;
	size_t i;
	int r;

	*out = NULL;
	if (len > JWT_JWKS_MAX_BYTES)
		return qerr_set(e, QERR_INVALID, NULL, "the JWK Set is larger than %d bytes",
		    JWT_JWKS_MAX_BYTES);
	if ((root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return qerr_set(e, QERR_INVALID, NULL, "the JWK Set is not JSON: %s at byte %d",
		    je.text, je.position);
	keys = json_object_get(root, "keys");
	if (!json_is_object(root) || !json_is_array(keys)) {
		r = qerr_set(e, QERR_INVALID, "keys", "the JWK Set has no \"keys\" array");
		goto out;
	}
	if (json_array_size(keys) > JWT_JWKS_MAX_KEYS) {
		r = qerr_set(e, QERR_INVALID, "keys", "the JWK Set has more than %d keys",
		    JWT_JWKS_MAX_KEYS);
		goto out;
	}
	if ((ks = calloc(1, sizeof(*ks))) == NULL ||
	    (ks->keys = calloc(json_array_size(keys) + 1, sizeof(*ks->keys))) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	json_array_foreach(keys, i, jwk)
		if ((r = add_jwk(ks, jwk, i, e)) != 0)
			goto out;
	if (ks->n == 0) {
		r = qerr_set(e, QERR_INVALID, "keys",
		    "the JWK Set has no RSA or P-256 signing key");
		goto out;
	}
	*out = ks;
	ks = NULL;
	r = 0;
out:
	ERR_clear_error();
	jwt_keyset_free(ks);
	json_decref(root);
	return r;
}

/* base64url of s[0..len) decoded; QERR_INVALID naming what it is. */
static int
decode_part(const char *s, size_t len, const char *what, unsigned char **out,
    size_t *outlen, struct qerr *e)
{
	struct qerr ign;
	char *copy;
	int r;

	if ((copy = strndup(s, len)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	r = jwt_b64url_decode(copy, out, outlen, &ign);
	free(copy);
	if (r == QERR_NOMEM)
		return qerr_set(e, r, NULL, "out of memory");
	if (r != 0)
		return qerr_set(e, QERR_INVALID, NULL, "malformed token: the %s is not "
		    "base64url", what);
	return 0;
}

static int
decode_json(const char *s, size_t len, const char *what, json_t **out, struct qerr *e)
{
	unsigned char *buf;
	json_error_t je;
	size_t n;
	int r;

	*out = NULL;
	if ((r = decode_part(s, len, what, &buf, &n, e)) != 0)
		return r;
	*out = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (*out != NULL && json_is_object(*out))
		return 0;
	json_decref(*out);
	*out = NULL;
	return qerr_set(e, QERR_INVALID, NULL, "malformed token: the %s is not a JSON object",
	    what);
}

/* The key the header selects, provided the header's alg may be used with it. */
static int
check_header(const json_t *h, const struct jwt_keyset *ks, const struct jwt_key **key,
    struct qerr *e)
{
	const char *alg = json_string_value(json_object_get(h, "alg"));
	const json_t *kid = json_object_get(h, "kid");
	bool es;

	if (alg == NULL || (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0))
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL,
		    "algorithm not allowed (only RS256 and ES256)");
	es = alg[0] == 'E';
	/* RFC 7515 4.1.11: an extension we do not understand must not be ignored. */
	if (json_object_get(h, "crit") != NULL)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL,
		    "critical header parameters are not supported");
	if (kid == NULL)
		return qerr_set(e, QERR_INVALID, NULL, "the token has no key id");
	if (!kid_ok(kid) || (*key = find_key(ks, json_string_value(kid))) == NULL)
		return qerr_set(e, QERR_NOT_FOUND, NULL, "unknown key id");
	if ((*key)->ec != es)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL,
		    "algorithm %s does not match the type of key '%s'", alg,
		    json_string_value(kid));
	return 0;
}

/* JWS carries R || S; OpenSSL verifies the DER SEQUENCE of the two integers. */
static int
ecdsa_raw_to_der(const unsigned char *raw, size_t len, unsigned char **der,
    size_t *derlen)
{
	BIGNUM *r = NULL, *s = NULL;
	ECDSA_SIG *sig = NULL;
	int n = -1;

	*der = NULL;
	if (len != 2 * ES256_HALF)
		return -1;
	if ((r = BN_bin2bn(raw, ES256_HALF, NULL)) == NULL ||
	    (s = BN_bin2bn(raw + ES256_HALF, ES256_HALF, NULL)) == NULL ||
	    (sig = ECDSA_SIG_new()) == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return -1;
	}
	n = i2d_ECDSA_SIG(sig, der);
	ECDSA_SIG_free(sig);
	if (n <= 0)
		return -1;
	*derlen = (size_t)n;
	return 0;
}

static int
check_signature(const struct jwt_key *k, const char *input, size_t inlen,
    const unsigned char *sig, size_t siglen, struct qerr *e)
{
	unsigned char *der = NULL;
	EVP_MD_CTX *md = NULL;
	int ok;

	if (k->ec) {
		if (ecdsa_raw_to_der(sig, siglen, &der, &siglen) != 0)
			return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "invalid signature");
		sig = der;
	}
	ok = (md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pk) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, (const unsigned char *)input, inlen) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ERR_clear_error();
	return ok ? 0 : qerr_set(e, QERR_UNAUTHENTICATED, NULL, "invalid signature");
}

/* Finds the two dots of a compact JWS with three non-empty parts. */
static int
split_jws(const char *t, size_t n, size_t *d1, size_t *d2, struct qerr *e)
{
	const char *a = memchr(t, '.', n), *b;

	if (a == NULL || (b = memchr(a + 1, '.', n - (size_t)(a + 1 - t))) == NULL ||
	    memchr(b + 1, '.', n - (size_t)(b + 1 - t)) != NULL)
		return qerr_set(e, QERR_INVALID, NULL,
		    "malformed token: a JWS has three parts separated by dots");
	*d1 = (size_t)(a - t);
	*d2 = (size_t)(b - t);
	if (*d1 == 0 || *d2 == *d1 + 1 || *d2 + 1 == n)
		return qerr_set(e, QERR_INVALID, NULL, "malformed token: an empty part");
	return 0;
}

int
jwt_verify(const char *token, size_t max_len, const struct jwt_keyset *ks,
    json_t **header, json_t **claims, struct qerr *e)
{
	const struct jwt_key *k = NULL;
	unsigned char *sig = NULL;
	json_t *h = NULL, *c = NULL;
	size_t n, d1 = 0, d2 = 0, siglen = 0;
	int r;

	*header = *claims = NULL;
	if ((n = strnlen(token, max_len + 1)) > max_len)
		return qerr_set(e, QERR_TOO_LARGE, NULL, "token longer than %zu bytes", max_len);
	if ((r = split_jws(token, n, &d1, &d2, e)) != 0 ||
	    (r = decode_json(token, d1, "header", &h, e)) != 0 ||
	    (r = check_header(h, ks, &k, e)) != 0 ||
	    (r = decode_part(token + d2 + 1, n - d2 - 1, "signature", &sig, &siglen,
	    e)) != 0 ||
	    (r = check_signature(k, token, d2, sig, siglen, e)) != 0 ||
	    (r = decode_json(token + d1 + 1, d2 - d1 - 1, "payload", &c, e)) != 0)
		goto out;
	*header = h;
	*claims = c;
	h = c = NULL;
out:
	free(sig);
	json_decref(c);
	json_decref(h);
	return r;
}
