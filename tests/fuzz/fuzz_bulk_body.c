/* The body of POST /api/v1/actions/bulk: up to 1000 requests and their shared
 * fields. Every item is accounted for: parsed, or refused with its own error. */
#include "fuzz.h"
#include "fuzz_api.h"

static struct api api;
static struct config cfg;

static void
check_items(const struct bulk_request *b)
{
	size_t i, refused = 0;
	json_t *err;

	fuzz_check(json_array_size(b->results) == b->n, "one result per request");
	for (i = 0; i < b->n; i++) {
		err = json_object_get(json_array_get(b->results, i), "error");
		fuzz_check((err != NULL) == (b->slot[i] < 0),
		    "a request is parsed or has its error");
		if (err != NULL) {
			refused++;
			fuzz_check(json_is_string(json_object_get(err, "message")),
			    "a refused request says why");
		}
	}
	fuzz_check(refused == b->refused && b->nrq + refused == b->n,
	    "the counts add up");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bulk_request b = { .merged = json_array(), .results = json_array() };
	struct req q;
	json_t *o;

	if (api.cfg == NULL)
		fuzz_api_init(&api, &cfg, NULL);
	fuzz_req_init(&q, &api, data, size, NULL);
	if ((o = req_json(&q)) == NULL || routes_bulk_parse(&q, o, &b) != 0)
		fuzz_check_refusal(&q);
	else
		check_items(&b);
	routes_bulk_free(&b);
	json_decref(o);
	fuzz_req_clear(&q);
	return 0;
}
