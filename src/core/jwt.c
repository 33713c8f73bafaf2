/*
 * JWS signing on OpenSSL's EVP interface. Only the two algorithms client assertions
 * use here are offered, and each insists on its own key type, so a misconfigured key
 * fails at signing time with a sentence instead of producing a token the authorization
 * server rejects with a vague invalid_client.
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
