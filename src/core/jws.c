/*
 * A private key's public JWK. The parameters are read through OpenSSL 3's
 * parameter API so that neither EC_KEY nor RSA (deprecated) is touched.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jws.h"
#include "jwt.h"

/* A big number as base64url of exactly width bytes (0: its own length). */
static json_t *
b64_bn(const BIGNUM *bn, int width)
{
	unsigned char buf[1024];
	char out[1400];
	int n = width > 0 ? width : BN_num_bytes(bn);

	if (n <= 0 || n > (int)sizeof(buf) || BN_bn2binpad(bn, buf, n) != n)
		return NULL;
	jwt_b64url_encode(buf, (size_t)n, out);
	return json_string(out);
}

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

int
jws_public_jwk(const char *key_pem, const char *kid, json_t **out, const char **alg,
    struct qerr *e)
{
	BIGNUM *a = NULL, *b = NULL;
	EVP_PKEY *k = NULL;
	BIO *bio = NULL;
	json_t *j = NULL;
	char curve[32];
	int r = QERR_INVALID, ec;

	*out = NULL;
	if ((bio = BIO_new_mem_buf(key_pem, -1)) == NULL ||
	    (k = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL) {
		r = qerr_set(e, QERR_INVALID, "key_file", "not an unencrypted PEM private "
		    "key");
		goto out;
	}
	ec = EVP_PKEY_is_a(k, "EC");
	if (ec && (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, curve,
	    sizeof(curve), NULL) != 1 || strcmp(curve, "prime256v1") != 0)) {
		r = qerr_set(e, QERR_INVALID, "key_file", "an EC key must be on P-256");
		goto out;
	}
	if (!ec && (!EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_get_bits(k) < 2048)) {
		r = qerr_set(e, QERR_INVALID, "key_file", "the key must be EC P-256 or RSA "
		    "of at least 2048 bits");
		goto out;
	}
	if (EVP_PKEY_get_bn_param(k, ec ? OSSL_PKEY_PARAM_EC_PUB_X : OSSL_PKEY_PARAM_RSA_N,
	    &a) != 1 || EVP_PKEY_get_bn_param(k, ec ? OSSL_PKEY_PARAM_EC_PUB_Y :
	    OSSL_PKEY_PARAM_RSA_E, &b) != 1) {
		r = qerr_set(e, QERR_INVALID, "key_file", "cannot read the public key");
		goto out;
	}
	*alg = ec ? "ES256" : "RS256";
	j = ec ? json_pack("{s:s, s:s, s:o?, s:o?}", "kty", "EC", "crv", "P-256", "x",
	    b64_bn(a, 32), "y", b64_bn(b, 32)) : json_pack("{s:s, s:o?, s:o?}", "kty",
	    "RSA", "n", b64_bn(a, 0), "e", b64_bn(b, 0));
	if (j == NULL || json_object_set_new(j, "kid", json_string(kid)) != 0 ||
	    json_object_set_new(j, "use", json_string("sig")) != 0 ||
	    json_object_set_new(j, "alg", json_string(*alg)) != 0) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	*out = j;
	j = NULL;
	r = 0;
out:
	json_decref(j);
	BN_free(b);
	BN_free(a);
	EVP_PKEY_free(k);
	BIO_free(bio);
	return r;
}
