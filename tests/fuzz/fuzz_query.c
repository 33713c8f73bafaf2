/*
 * Query strings of the list routes, cursors included, as any client sends them: the
 * first byte picks the route, the rest is its query string. Each is answered on a
 * scratch store: a page (200) or a refusal naming the parameter, never an error of
 * quell's own.
 */
#include <stdlib.h>

#include "fuzz.h"
#include "fuzz_api.h"
#include "scratch.h"

static const route_fn routes[] = {
	route_list_actions, route_list_alerts, route_list_identities, route_list_tokens,
	route_list_conflicts,
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static struct api api;
static struct config cfg;
static struct store *st;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct qerr e;

	(void)argc, (void)argv;
	fuzz_check(store_open(&store_sqlite, fuzz_scratch_open(), 1, &st, &e) == 0,
	    "the scratch store opens");
	fuzz_api_init(&api, &cfg, st);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *query;
	struct req q;

	if (size < 1 || (query = fuzz_text(data + 1, size - 1)) == NULL)
		return 0;
	fuzz_req_init(&q, &api, NULL, 0, query);
	q.method = "GET";
	routes[data[0] % NROUTES](&q);
	if (q.status != 200)
		fuzz_check_refusal(&q);
	else
		fuzz_check(json_is_null(json_object_get(q.resp, "next")) ||
		    json_object_get(q.resp, "next") != NULL, "a page says what is next");
	fuzz_req_clear(&q);
	free(query);
	return 0;
}
