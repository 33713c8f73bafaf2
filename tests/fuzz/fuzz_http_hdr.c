/*
 * The headers a vendor's API answers with: Retry-After (its value on the input's
 * first line, and the header block as kit_retry_after reads it) and Link rel="next",
 * whose target must stay on the API's origin since the bearer token follows it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "providers/kit.h"

#define ORIGIN "https://api.example.test"
/* A fixed "now" (2026-01-01), so that a date always means the same wait. */
#define NOW_MS 1767225600000LL

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_response resp = { .status = 429 };
	char *text = fuzz_text(data, size), *nl, *next = NULL;
	int64_t ms = -1;
	int r;

	if (text == NULL)
		return 0;
	if ((nl = strchr(text, '\n')) != NULL)
		*nl = '\0';
	if (kit_retry_after_parse(text, NOW_MS, &ms) == 0)
		fuzz_check(ms >= 0 && ms <= KIT_RETRY_AFTER_CAP_MS,
		    "a Retry-After wait is within its cap");
	if (nl != NULL) {
		*nl = '\n';
		resp.headers = text;
		r = kit_retry_after(&resp);
		fuzz_check(r >= -1 && r <= KIT_RETRY_AFTER_CAP_MS,
		    "a response's Retry-After is -1 or within its cap");
		r = kit_link_next(&resp, ORIGIN, &next);
		fuzz_check(next == NULL || (r == 0 && kit_url_under(next, ORIGIN)),
		    "a next link is on the API's origin");
		free(next);
	}
	free(text);
	return 0;
}
