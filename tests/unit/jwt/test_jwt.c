/*
 * jwt.c against independent references: RFC 4648 vectors for base64url, OpenSSL's own
 * verification for RS256 and ES256 signatures, and X509_digest for x5t#S256.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/jwt.h"

static const char *const claims = "{\"iss\":\"app\",\"aud\":\"https://x/token\"}";

static void
test_b64url_vectors(void **state)
{
	static const struct { const char *in; const char *out; } v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
		{ "\xfb\xff\xbf", "-_-_" }, { "\xff\xfe", "__4" },
	};
	char buf[32];
	unsigned char *dec;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		n = jwt_b64url_encode(v[i].in, strlen(v[i].in), buf);
		assert_int_equal(n, jwt_b64url_len(strlen(v[i].in)));
		assert_string_equal(buf, v[i].out);
		assert_int_equal(jwt_b64url_decode(v[i].out, &dec, &n, NULL), 0);
		assert_int_equal(n, strlen(v[i].in));
		assert_memory_equal(dec, v[i].in, n);
		free(dec);
	}
}

static void
test_b64url_rejects(void **state)
{
	struct qerr e;
	unsigned char *dec;
	size_t n;

	(void)state;
	assert_int_equal(jwt_b64url_decode("Zm9v+A", &dec, &n, &e), QERR_INVALID);
	assert_int_equal(jwt_b64url_decode("Zm9v=", &dec, &n, &e), QERR_INVALID);
	assert_int_equal(jwt_b64url_decode("Zm9vY", &dec, &n, &e), QERR_INVALID);
	assert_null(dec);
}

static char *
pem_of(EVP_PKEY *pk)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	assert_int_equal(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

/* Splits a compact JWS, checks its first two parts and returns the signature bytes. */
static unsigned char *
split(const char *jws, const char *header, size_t *siglen, size_t *input_len)
{
	const char *dot1 = strchr(jws, '.'), *dot2;
	unsigned char *part;
	char *tmp;
	size_t n;

	assert_non_null(dot1);
	dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);
	assert_null(strchr(dot2 + 1, '.'));
	tmp = strndup(jws, (size_t)(dot1 - jws));
	assert_int_equal(jwt_b64url_decode(tmp, &part, &n, NULL), 0);
	assert_string_equal((char *)part, header);
	free(part);
	free(tmp);
	tmp = strndup(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	assert_int_equal(jwt_b64url_decode(tmp, &part, &n, NULL), 0);
	assert_string_equal((char *)part, claims);
	free(part);
	free(tmp);
	assert_int_equal(jwt_b64url_decode(dot2 + 1, &part, siglen, NULL), 0);
	*input_len = (size_t)(dot2 - jws);
	return part;
}

static void
verify(EVP_PKEY *pk, const char *jws, size_t input_len, const unsigned char *sig,
    size_t siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, siglen, (const unsigned char *)jws,
	    input_len), 1);
	EVP_MD_CTX_free(md);
}

static void
test_rs256(void **state)
{
	const char *hdr = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	EVP_PKEY *pk = EVP_RSA_gen(2048);
	char *pem = pem_of(pk), *jws = NULL;
	unsigned char *sig;
	size_t siglen, in;
	struct qerr e;

	(void)state;
	assert_int_equal(jwt_sign("RS256", pem, hdr, claims, &jws, &e), 0);
	sig = split(jws, hdr, &siglen, &in);
	assert_int_equal(siglen, 256);
	verify(pk, jws, in, sig, siglen);
	/* A flipped bit must not verify: the check above is not vacuous. */
	sig[0] ^= 1;
	{
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk);
		assert_int_not_equal(EVP_DigestVerify(md, sig, siglen,
		    (const unsigned char *)jws, in), 1);
		EVP_MD_CTX_free(md);
	}
	free(sig);
	free(jws);
	assert_int_equal(jwt_sign("ES256", pem, "{\"alg\":\"ES256\"}", claims, &jws, &e),
	    QERR_INVALID);
	assert_int_equal(jwt_sign("RS256", pem, "{\"alg\":\"HS256\"}", claims, &jws, &e),
	    QERR_INVALID);
	assert_int_equal(jwt_sign("RS256", pem, hdr, "[1]", &jws, &e), QERR_INVALID);
	assert_int_equal(jwt_sign("none", pem, hdr, claims, &jws, &e), QERR_INVALID);
	assert_int_equal(jwt_sign("RS256", "garbage", hdr, claims, &jws, &e), QERR_INVALID);
	assert_null(jws);
	free(pem);
	EVP_PKEY_free(pk);
}

static void
test_es256(void **state)
{
	const char *hdr = "{\"alg\":\"ES256\",\"kid\":\"k1\"}";
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	char *pem = pem_of(pk), *jws = NULL;
	unsigned char *sig, *der = NULL;
	ECDSA_SIG *es = ECDSA_SIG_new();
	size_t siglen, in;
	int dlen;

	(void)state;
	assert_int_equal(jwt_sign("ES256", pem, hdr, claims, &jws, NULL), 0);
	sig = split(jws, hdr, &siglen, &in);
	assert_int_equal(siglen, 64);
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	dlen = i2d_ECDSA_SIG(es, &der);
	assert_true(dlen > 0);
	verify(pk, jws, in, der, (size_t)dlen);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	free(sig);
	free(jws);
	assert_int_equal(jwt_sign("RS256", pem, "{\"alg\":\"RS256\"}", claims, &jws, NULL),
	    QERR_INVALID);
	free(pem);
	EVP_PKEY_free(pk);
}

static void
test_x5t(void **state)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	unsigned char md[32];
	unsigned int mdlen;
	char want[64], got[44], *p, *pem;
	BIO *b = BIO_new(BIO_s_mem());
	long n;
	struct qerr e;

	(void)state;
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"quell test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, pk);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &p);
	pem = strndup(p, (size_t)n);
	assert_int_equal(X509_digest(x, EVP_sha256(), md, &mdlen), 1);
	EVP_EncodeBlock((unsigned char *)want, md, 32);
	for (p = want; *p != '\0'; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	*strchr(want, '=') = '\0';
	assert_int_equal(jwt_x5t_s256(pem, got, &e), 0);
	assert_string_equal(got, want);
	assert_int_equal(strlen(got), 43);
	assert_int_equal(jwt_x5t_s256("not a certificate", got, &e), QERR_INVALID);
	free(pem);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(pk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url_vectors),
		cmocka_unit_test(test_b64url_rejects),
		cmocka_unit_test(test_rs256),
		cmocka_unit_test(test_es256),
		cmocka_unit_test(test_x5t),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
