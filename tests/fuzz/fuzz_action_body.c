/* The body of POST /api/v1/actions as any API client sends it. */
#include <stdlib.h>

#include "core/id.h"
#include "fuzz.h"
#include "fuzz_api.h"

static struct api api;
static struct config cfg;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct action_request rq;
	char *params = NULL;
	struct req q;
	json_t *o, *p;

	if (api.cfg == NULL)
		fuzz_api_init(&api, &cfg, NULL);
	fuzz_req_init(&q, &api, data, size, NULL);
	if ((o = req_json(&q)) == NULL)
		fuzz_check_refusal(&q);
	else if (routes_action_parse(&q, o, &rq, &params) == 0) {
		fuzz_check(id_valid(rq.identity_id, "idn") && rq.reason != NULL &&
		    rq.reason[0] != '\0', "an accepted request names its identity and why");
		fuzz_check(rq.account_id == NULL || id_valid(rq.account_id, "acc"),
		    "an accepted request's account is an account id");
		p = json_loads(params, 0, NULL);
		fuzz_check(json_is_object(p), "an accepted request's params are an object");
		json_decref(p);
	} else
		fuzz_check_refusal(&q);
	free(params);
	json_decref(o);
	fuzz_req_clear(&q);
	return 0;
}
