/*
 * jws_public_jwk: the JWK of a signing key verifies what that key signs (ES256 and
 * RS256 through jwt_verify), carries no private member, and other keys are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/jws.h"
#include "core/jwt.h"

static char *
key_pem(EVP_PKEY *pk)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	assert_non_null(pk);
	assert_int_equal(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &data);
	out = calloc(1, (size_t)n + 1);
	memcpy(out, data, (size_t)n);
	BIO_free(b);
	EVP_PKEY_free(pk);
	return out;
}

static void
round_trip(char *pem, const char *want_alg, const char *kty)
{
	struct jwt_keyset *ks = NULL;
	struct qerr e = {0};
	json_t *jwk = NULL, *set, *hdr = NULL, *cl = NULL;
	const char *alg = NULL;
	char *text, *tok = NULL, hjson[128];

	assert_int_equal(jws_public_jwk(pem, "k1", &jwk, &alg, &e), 0);
	assert_string_equal(alg, want_alg);
	assert_string_equal(json_string_value(json_object_get(jwk, "kty")), kty);
	assert_string_equal(json_string_value(json_object_get(jwk, "kid")), "k1");
	assert_null(json_object_get(jwk, "d"));
	set = json_pack("{s:[o]}", "keys", jwk);
	text = json_dumps(set, 0);
	assert_int_equal(jwt_jwks_parse(text, strlen(text), &ks, &e), 0);
	snprintf(hjson, sizeof(hjson), "{\"alg\":\"%s\",\"kid\":\"k1\"}", alg);
	assert_int_equal(jwt_sign(alg, pem, hjson, "{\"jti\":\"x\"}", &tok, &e), 0);
	assert_int_equal(jwt_verify(tok, 8192, ks, &hdr, &cl, &e), 0);
	assert_string_equal(json_string_value(json_object_get(cl, "jti")), "x");
	json_decref(hdr);
	json_decref(cl);
	free(tok);
	jwt_keyset_free(ks);
	free(text);
	json_decref(set);
	free(pem);
}

static void
test_ec(void **state)
{
	(void)state;
	round_trip(key_pem(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")), "ES256", "EC");
}

static void
test_rsa(void **state)
{
	(void)state;
	round_trip(key_pem(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)), "RS256",
	    "RSA");
}

static void
refused(char *pem)
{
	struct qerr e = {0};
	json_t *jwk = NULL;
	const char *alg = NULL;

	assert_int_equal(jws_public_jwk(pem, "k1", &jwk, &alg, &e), QERR_INVALID);
	assert_null(jwk);
	assert_string_equal(e.field, "key_file");
	free(pem);
}

static void
test_refused(void **state)
{
	(void)state;
	refused(key_pem(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")));
	refused(key_pem(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024)));
	refused(strdup("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ec),
		cmocka_unit_test(test_rsa),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
