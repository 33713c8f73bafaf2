/* A JWK Set as an issuer (or whoever answers at its jwks_url) publishes it. */
#include <stdint.h>

#include "core/jwt.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwt_keyset *ks = NULL;
	struct qerr e;

	qerr_clear(&e);
	if (jwt_jwks_parse((const char *)data, size, &ks, &e) == 0) {
		fuzz_check(jwt_keyset_count(ks) > 0 &&
		    jwt_keyset_count(ks) <= JWT_JWKS_MAX_KEYS, "a JWK Set holds 1 to 100 keys");
		jwt_keyset_free(ks);
	} else
		fuzz_check(ks == NULL && e.msg[0] != '\0', "a refused JWK Set says why");
	return 0;
}
