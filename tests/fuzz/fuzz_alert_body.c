/* The body of POST /api/v1/alerts as a detection source (or anyone holding its
 * token) sends it. */
#include <string.h>

#include "fuzz.h"
#include "fuzz_api.h"

static struct api api;
static struct config cfg;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct alert a;
	struct req q;
	json_t *o;
	size_t i;

	if (api.cfg == NULL)
		fuzz_api_init(&api, &cfg, NULL);
	memset(&a, 0, sizeof(a));
	fuzz_req_init(&q, &api, data, size, NULL);
	if ((o = req_json(&q)) == NULL)
		fuzz_check_refusal(&q);
	else if (routes_alert_parse(&q, o, &a) == 0) {
		fuzz_check(a.external_id && a.source && a.title && a.category,
		    "an accepted alert has its id, source, title and category");
		fuzz_check(a.confidence >= 0 && a.confidence <= 100, "confidence is 0..100");
		for (i = 0; i < a.nentities; i++)
			fuzz_check(a.entities[i].kind && a.entities[i].value &&
			    strlen(a.entities[i].value) <= 256, "an entity is a kind and a "
			    "bounded value");
	} else
		fuzz_check_refusal(&q);
	alert_clear(&a);
	json_decref(o);
	fuzz_req_clear(&q);
	return 0;
}
