/*
 * Bearer tokens as any client sends them, verified against a fixed JWK Set (keys.h).
 * The first byte chooses: a token as given; claims that the harness signs with the
 * set's EC key under a header naming it, so that what follows the signature check is
 * reached too (a token so signed must verify, with the claims it was given); or a
 * header and claims, split at the first NUL, signed as they are.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jwt.h"
#include "fuzz.h"
#include "keys.h"

#define TOKEN_MAX 16384

static struct jwt_keyset *keys;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct qerr e;

	(void)argc, (void)argv;
	fuzz_check(jwt_jwks_parse(fuzz_jwks, strlen(fuzz_jwks), &keys, &e) == 0,
	    "the fixed JWK Set parses");
	return 0;
}

static void
verify(const char *token, const char *claims_json)
{
	json_t *h = NULL, *c = NULL, *want;
	struct qerr e;
	int r;

	qerr_clear(&e);
	r = jwt_verify(token, TOKEN_MAX, keys, &h, &c, &e);
	if (r == 0)
		fuzz_check(json_is_object(h) && json_is_object(c), "a verified token's "
		    "header and claims are objects");
	else
		fuzz_check(h == NULL && c == NULL && e.msg[0] != '\0',
		    "a refused token says why and hands nothing back");
	if (claims_json != NULL) {
		want = json_loads(claims_json, JSON_REJECT_DUPLICATES, NULL);
		fuzz_check(r == 0 || r == QERR_TOO_LARGE, "a token quell signed verifies");
		fuzz_check(r != 0 || json_equal(want, c), "the claims verified are the "
		    "claims signed");
		json_decref(want);
	}
	json_decref(h);
	json_decref(c);
}

static void
sign_then_verify(const char *header, const char *claims, bool must_verify)
{
	char *token = NULL;
	struct qerr e;

	qerr_clear(&e);
	if (jwt_sign("ES256", fuzz_ec_key, header, claims, &token, &e) == 0)
		verify(token, must_verify ? claims : NULL);
	free(token);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	size_t n;

	if (size < 1 || (text = fuzz_text(data + 1, size - 1)) == NULL)
		return 0;
	n = strlen(text);
	switch (data[0] % 3) {
	case 0:
		verify(text, NULL);
		break;
	case 1:
		sign_then_verify("{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":\"JWT\"}", text,
		    true);
		break;
	default:
		sign_then_verify(text, n + 1 < size - 1 ? text + n + 1 : "{}", false);
	}
	free(text);
	return 0;
}
