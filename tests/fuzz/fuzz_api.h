/*
 * The API's handlers without a connection (fuzz_api.c): a struct req whose body and
 * query arguments are the harness's. The one call of MHD's they make for these,
 * MHD_lookup_connection_value, is answered here instead of by libmicrohttpd (this
 * program's definition comes first), the way MHD would for such a request.
 */
#ifndef QUELL_FUZZ_API_H
#define QUELL_FUZZ_API_H

#include <stddef.h>
#include <stdint.h>

#include "api/internal.h"

/* A configuration with the kinds built in, and st (may be NULL) as the store. */
void fuzz_api_init(struct api *api, struct config *cfg, struct store *st);

/* q as a request with data as its body (copied) and query as its query string
 * ("a=1&b=%20", decoded as MHD decodes one; NULL: none). fuzz_req_clear frees it. */
void fuzz_req_init(struct req *q, struct api *api, const uint8_t *data, size_t size,
    const char *query);
void fuzz_req_clear(struct req *q);

/* A refusal is a 4xx answer whose error names its field and says why. */
void fuzz_check_refusal(const struct req *q);

#endif
