/*
 * Advanced hunting: POST /api/v1/hunting/query runs one read-only SELECT over the
 * documented views (docs/hunting.md) through the store's hunt slot, which enforces
 * read-only with SQLite's own authorizer. Every query is audited with its text.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HUNT_LIMIT_DEFAULT 100
#define HUNT_LIMIT_MAX 10000
#define HUNT_TIMEOUT_MS 5000
#define HUNT_MAX_BYTES (4u << 20)
#define HUNT_QUERY_MAX 10000

static void
audit_hunt(struct req *q, const char *sql, const json_t *ans, const struct qerr *e)
{
	json_t *d = json_pack("{s:s%, s:o}", "query", sql, strlen(sql) > 2000 ? 2000 :
	    strlen(sql), "rows", ans ? json_integer((json_int_t)json_array_size(
	    json_object_get(ans, "rows"))) : json_null());
	struct qerr e2;
	char *text;

	if (d != NULL && e != NULL)
		json_object_set_new(d, "refused", json_string(e->msg));
	if (d != NULL && (text = json_dumps(d, JSON_COMPACT)) != NULL) {
		engine_audit(q->api->eng, q->who.name, "hunting.query", NULL, text, &e2);
		free(text);
	}
	json_decref(d);
}

int
route_hunt(struct req *q)
{
	static const char *const keys[] = { "query", "limit", NULL };
	struct hunt_query hq = { .limit = HUNT_LIMIT_DEFAULT, .timeout_ms = HUNT_TIMEOUT_MS,
	    .max_bytes = HUNT_MAX_BYTES };
	json_t *o, *lim, *ans = NULL;
	char *text = NULL;
	struct qerr e;
	int r;

	qerr_clear(&e);
	if ((o = req_json(q)) == NULL)
		return 0;
	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_text(q, o, "query", true, HUNT_QUERY_MAX, &hq.sql) != 0)
		goto out;
	if ((lim = json_object_get(o, "limit")) != NULL) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
		    json_integer_value(lim) > HUNT_LIMIT_MAX) {
			req_error(q, 400, "invalid_input", "limit", "limit must be a whole "
			    "number from 1 to %d", HUNT_LIMIT_MAX);
			goto out;
		}
		hq.limit = (int)json_integer_value(lim);
	}
	if ((r = store_hunt(q->api->st, &hq, &text, &e)) != 0) {
		audit_hunt(q, hq.sql, NULL, &e);
		req_qerr(q, r, &e);
		goto out;
	}
	if ((ans = json_loads(text, 0, NULL)) == NULL) {
		req_error(q, 500, "internal", NULL, "out of memory");
		goto out;
	}
	audit_hunt(q, hq.sql, ans, NULL);
	req_reply(q, 200, json_incref(ans));
out:
	json_decref(ans);
	free(text);
	json_decref(o);
	return 0;
}
