/*
 * jwt_jwks_parse and jwt_verify against keys OpenSSL generates here: the JWK Set is
 * built from the keys' own parameters, tokens are signed with jwt_sign or by hand
 * (for the forgeries a verifier must refuse: "alg": "none", HS256 keyed with the RSA
 * public key, an algorithm that does not match the key's type, tampered parts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "core/jwt.h"

#define MAXTOK 16384

struct keys {
	EVP_PKEY *rsa, *ec, *rsa_small;
	char *rsa_pem, *ec_pem, *rsa_pub_pem;
	char rsa_n[400], rsa_e[16], small_n[200], ec_x[48], ec_y[48];
};

static const char *const claims = "{\"iss\":\"https://idp\",\"sub\":\"u1\"}";

static char *
pem(EVP_PKEY *pk, int public)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (public)
		assert_int_equal(PEM_write_bio_PUBKEY(b, pk), 1);
	else
		assert_int_equal(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL),
		    1);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

/* base64url of a key's big-number parameter, padded to width bytes when width > 0. */
static void
bn_b64(EVP_PKEY *pk, const char *name, int width, char *out)
{
	unsigned char buf[512];
	BIGNUM *bn = NULL;
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(pk, name, &bn), 1);
	n = width > 0 ? BN_bn2binpad(bn, buf, width) : BN_bn2bin(bn, buf);
	assert_true(n > 0);
	jwt_b64url_encode(buf, (size_t)n, out);
	BN_free(bn);
}

static int
setup(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));

	k->rsa = EVP_RSA_gen(2048);
	k->rsa_small = EVP_RSA_gen(1024);
	k->ec = EVP_EC_gen("P-256");
	k->rsa_pem = pem(k->rsa, 0);
	k->rsa_pub_pem = pem(k->rsa, 1);
	k->ec_pem = pem(k->ec, 0);
	bn_b64(k->rsa, OSSL_PKEY_PARAM_RSA_N, 0, k->rsa_n);
	bn_b64(k->rsa, OSSL_PKEY_PARAM_RSA_E, 0, k->rsa_e);
	bn_b64(k->rsa_small, OSSL_PKEY_PARAM_RSA_N, 0, k->small_n);
	bn_b64(k->ec, OSSL_PKEY_PARAM_EC_PUB_X, 32, k->ec_x);
	bn_b64(k->ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32, k->ec_y);
	*state = k;
	return 0;
}

static int
teardown(void **state)
{
	struct keys *k = *state;

	EVP_PKEY_free(k->rsa);
	EVP_PKEY_free(k->rsa_small);
	EVP_PKEY_free(k->ec);
	free(k->rsa_pem);
	free(k->rsa_pub_pem);
	free(k->ec_pem);
	free(k);
	return 0;
}

/* The standard set: RSA "r1", EC "e1", plus keys the parser must skip. */
static struct jwt_keyset *
keyset(const struct keys *k)
{
	char json[4096];
	struct jwt_keyset *ks = NULL;
	struct qerr e;

	snprintf(json, sizeof(json), "{\"keys\":["
	    "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"r1\",\"n\":\"%s\",\"e\":\"%s\"},"
	    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e1\",\"x\":\"%s\",\"y\":\"%s\"},"
	    "{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"enc1\",\"n\":\"x\",\"e\":\"x\"},"
	    "{\"kty\":\"oct\",\"kid\":\"h1\",\"k\":\"c2VjcmV0\"},"
	    "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"p384\",\"x\":\"AA\",\"y\":\"AA\"},"
	    "{\"kty\":\"RSA\",\"alg\":\"PS256\",\"kid\":\"ps\",\"n\":\"x\",\"e\":\"x\"}"
	    "]}", k->rsa_n, k->rsa_e, k->ec_x, k->ec_y);
	assert_int_equal(jwt_jwks_parse(json, strlen(json), &ks, &e), 0);
	assert_int_equal(jwt_keyset_count(ks), 2);
	return ks;
}

static char *
b64(const char *s)
{
	char *out = malloc(jwt_b64url_len(strlen(s)) + 1);

	jwt_b64url_encode(s, strlen(s), out);
	return out;
}

/* header.payload.sig with the parts given as text (sig already base64url). */
static char *
assemble(const char *header, const char *payload, const char *sig)
{
	char *h = b64(header), *p = b64(payload), *out;

	assert_true(asprintf(&out, "%s.%s.%s", h, p, sig) > 0);
	free(h);
	free(p);
	return out;
}

static int
check(const struct jwt_keyset *ks, const char *tok, struct qerr *e)
{
	json_t *h = (json_t *)1, *c = (json_t *)1;
	int r;

	r = jwt_verify(tok, MAXTOK, ks, &h, &c, e);
	if (r != 0) {
		assert_null(h);
		assert_null(c);
	}
	json_decref(h);
	json_decref(c);
	return r;
}

static void
test_valid(void **state)
{
	struct keys *k = *state;
	struct jwt_keyset *ks = keyset(k);
	json_t *h, *c;
	char *tok;
	struct qerr e;

	assert_int_equal(jwt_sign("RS256", k->rsa_pem, "{\"alg\":\"RS256\",\"kid\":\"r1\"}",
	    claims, &tok, &e), 0);
	assert_int_equal(jwt_verify(tok, MAXTOK, ks, &h, &c, &e), 0);
	assert_string_equal(json_string_value(json_object_get(c, "sub")), "u1");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "r1");
	json_decref(h);
	json_decref(c);
	assert_int_equal(jwt_verify(tok, strlen(tok) - 1, ks, &h, &c, &e), QERR_TOO_LARGE);
	free(tok);
	assert_int_equal(jwt_sign("ES256", k->ec_pem, "{\"alg\":\"ES256\",\"kid\":\"e1\"}",
	    claims, &tok, &e), 0);
	assert_int_equal(check(ks, tok, &e), 0);
	free(tok);
	jwt_keyset_free(ks);
}

static void
test_forgeries(void **state)
{
	struct keys *k = *state;
	struct jwt_keyset *ks = keyset(k);
	unsigned char mac[32];
	unsigned int maclen;
	char *tok, *input, sig[64];
	struct qerr e;

	tok = assemble("{\"alg\":\"none\",\"kid\":\"r1\"}", claims, "AA");
	assert_int_equal(check(ks, tok, &e), QERR_UNAUTHENTICATED);
	assert_non_null(strstr(e.msg, "algorithm not allowed"));
	free(tok);
	tok = assemble("{\"alg\":\"none\"}", claims, "");
	assert_int_equal(check(ks, tok, &e), QERR_INVALID);
	free(tok);

	/* The classic confusion: HMAC keyed with the verifier's RSA public key. */
	tok = assemble("{\"alg\":\"HS256\",\"kid\":\"r1\"}", claims, "");
	input = strndup(tok, strlen(tok) - 1);
	HMAC(EVP_sha256(), k->rsa_pub_pem, (int)strlen(k->rsa_pub_pem),
	    (unsigned char *)input, strlen(input), mac, &maclen);
	jwt_b64url_encode(mac, maclen, sig);
	free(tok);
	assert_true(asprintf(&tok, "%s.%s", input, sig) > 0);
	assert_int_equal(check(ks, tok, &e), QERR_UNAUTHENTICATED);
	free(tok);
	free(input);

	/* A valid RS256 signature presented under the EC key's kid, and vice versa. */
	assert_int_equal(jwt_sign("RS256", k->rsa_pem, "{\"alg\":\"RS256\",\"kid\":\"e1\"}",
	    claims, &tok, &e), 0);
	assert_int_equal(check(ks, tok, &e), QERR_UNAUTHENTICATED);
	assert_non_null(strstr(e.msg, "does not match"));
	free(tok);
	assert_int_equal(jwt_sign("ES256", k->ec_pem, "{\"alg\":\"ES256\",\"kid\":\"r1\"}",
	    claims, &tok, &e), 0);
	assert_int_equal(check(ks, tok, &e), QERR_UNAUTHENTICATED);
	free(tok);
	jwt_keyset_free(ks);
}

/* Replaces part (0, 1 or 2) of a token with the base64url of text. */
static char *
replace_part(const char *tok, int part, const char *text)
{
	const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	char *enc = b64(text), *out;

	if (part == 0)
		assert_true(asprintf(&out, "%s%s", enc, d1) > 0);
	else if (part == 1)
		assert_true(asprintf(&out, "%.*s.%s%s", (int)(d1 - tok), tok, enc, d2) > 0);
	else
		assert_true(asprintf(&out, "%.*s.%s", (int)(d2 - tok), tok, enc) > 0);
	free(enc);
	return out;
}

static void
test_tampered(void **state)
{
	struct keys *k = *state;
	struct jwt_keyset *ks = keyset(k);
	const char *algs[2] = { "RS256", "ES256" };
	const char *hdrs[2] = { "{\"alg\":\"RS256\",\"kid\":\"r1\"}",
	    "{\"alg\":\"ES256\",\"kid\":\"e1\"}" };
	const char *pems[2] = { k->rsa_pem, k->ec_pem };
	char *tok, *bad;
	struct qerr e;
	int i;

	for (i = 0; i < 2; i++) {
		assert_int_equal(jwt_sign(algs[i], pems[i], hdrs[i], claims, &tok, &e), 0);
		bad = replace_part(tok, 1, "{\"iss\":\"https://idp\",\"sub\":\"admin\"}");
		assert_int_equal(check(ks, bad, &e), QERR_UNAUTHENTICATED);
		assert_string_equal(e.msg, "invalid signature");
		free(bad);
		bad = replace_part(tok, 2, "short");
		assert_int_equal(check(ks, bad, &e), QERR_UNAUTHENTICATED);
		free(bad);
		bad = replace_part(tok, 0, "{\"alg\":\"RS256\",\"kid\":\"nope\"}");
		assert_int_equal(check(ks, bad, &e), QERR_NOT_FOUND);
		assert_string_equal(e.msg, "unknown key id");
		free(bad);
		bad = replace_part(tok, 0, i == 0 ? "{\"alg\":\"RS256\",\"kid\":\"r1\","
		    "\"crit\":[\"exp\"]}" : "{\"alg\":\"ES256\"}");
		assert_int_not_equal(check(ks, bad, &e), 0);
		free(bad);
		free(tok);
	}
	jwt_keyset_free(ks);
}

static void
test_malformed_tokens(void **state)
{
	static const char *const bad[] = {
		"", ".", "..", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.",
		"eyJhbGciOiJSUzI1NiJ9.e30.!!!!", "e30.e30.AAAA", "W10.e30.AAAA",
		"bm90IGpzb24.e30.AAAA", "eyJhbGciOiJSUzI1NiJ9.e30.A",
		"eyJhbGciOiJSUzI1NiIsImtpZCI6InIxIn0.e30.AAAA",
	};
	struct keys *k = *state;
	struct jwt_keyset *ks = keyset(k);
	char big[MAXTOK + 2];
	struct qerr e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		qerr_clear(&e);
		assert_int_not_equal(check(ks, bad[i], &e), 0);
		assert_true(e.msg[0] != '\0');
	}
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(check(ks, big, &e), QERR_TOO_LARGE);
	jwt_keyset_free(ks);
}

static int
parse(const char *json, struct qerr *e)
{
	struct jwt_keyset *ks = (struct jwt_keyset *)1;
	int r = jwt_jwks_parse(json, strlen(json), &ks, e);

	if (r != 0)
		assert_null(ks);
	jwt_keyset_free(ks);
	return r;
}

static void
test_jwks_rejects(void **state)
{
	struct keys *k = *state;
	char json[4096], offcurve[48];
	struct qerr e;

	assert_int_equal(parse("not json", &e), QERR_INVALID);
	assert_int_equal(parse("[]", &e), QERR_INVALID);
	assert_int_equal(parse("{\"keys\":{}}", &e), QERR_INVALID);
	assert_int_equal(parse("{\"keys\":[]}", &e), QERR_INVALID);
	assert_int_equal(parse("{\"keys\":[1]}", &e), QERR_INVALID);
	assert_int_equal(parse("{\"keys\":[{\"kid\":\"x\"}]}", &e), QERR_INVALID);
	assert_int_equal(parse("{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\"}]}", &e),
	    QERR_INVALID);
	snprintf(json, sizeof(json), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\","
	    "\"n\":\"%s\",\"e\":\"%s\"},{\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%s\","
	    "\"e\":\"%s\"}]}", k->rsa_n, k->rsa_e, k->rsa_n, k->rsa_e);
	assert_int_equal(parse(json, &e), QERR_INVALID);
	assert_non_null(strstr(e.msg, "twice"));
	snprintf(json, sizeof(json), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"s\","
	    "\"n\":\"%s\",\"e\":\"%s\"}]}", k->small_n, k->rsa_e);
	assert_int_equal(parse(json, &e), QERR_INVALID);
	snprintf(json, sizeof(json), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\","
	    "\"e\":\"%s\"}]}", k->rsa_n, k->rsa_e);
	assert_int_equal(parse(json, &e), QERR_INVALID);
	assert_non_null(strstr(e.msg, "kid"));
	snprintf(json, sizeof(json), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
	    "\"kid\":\"e\",\"x\":\"%s\",\"y\":\"AAAA\"}]}", k->ec_x);
	assert_int_equal(parse(json, &e), QERR_INVALID);
	/* y of another point: (x, y') is on the curve only by a 2^-256 accident. */
	memcpy(offcurve, k->ec_y, sizeof(offcurve));
	offcurve[5] = offcurve[5] == 'A' ? 'B' : 'A';
	snprintf(json, sizeof(json), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
	    "\"kid\":\"e\",\"x\":\"%s\",\"y\":\"%s\"}]}", k->ec_x, offcurve);
	assert_int_equal(parse(json, &e), QERR_INVALID);
	assert_non_null(strstr(e.msg, "P-256"));
	snprintf(json, sizeof(json), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\","
	    "\"n\":\"%s\",\"e\":\"%s\",\"kid\":\"b\"}]}", k->rsa_n, k->rsa_e);
	assert_int_equal(parse(json, &e), QERR_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_forgeries),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_malformed_tokens),
		cmocka_unit_test(test_jwks_rejects),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
