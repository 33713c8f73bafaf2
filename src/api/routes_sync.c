/* Routes of inventory sync: start one system or all in the background, show their
 * status, and list the accounts correlation left in conflict. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "render.h"

static json_t *
render_sync(const struct sync_status *s, const char *kind)
{
	json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:I, s:s?}", "system", s->system,
	    "kind", kind, "running", s->running, "run", (json_int_t)s->run,
	    "finished_run", (json_int_t)s->finished_run,
	    "mode", s->mode[0] != '\0' ? s->mode : NULL);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "seen", json_integer(s->seen));
	json_object_set_new(o, "changed", json_integer(s->changed));
	json_object_set_new(o, "created", json_integer(s->created));
	json_object_set_new(o, "removed", json_integer(s->removed));
	json_object_set_new(o, "linked", json_integer(s->linked));
	json_object_set_new(o, "identities_created", json_integer(s->identities));
	json_object_set_new(o, "conflicts", json_integer(s->conflicts));
	json_object_set_new(o, "skipped", json_integer(s->skipped));
	json_object_set_new(o, "started_at", render_time(s->started_at));
	json_object_set_new(o, "finished_at", s->running ? json_null() :
	    render_time(s->finished_at));
	json_object_set_new(o, "next_run_at", render_time(s->next_at));
	json_object_set_new(o, "interval_s", json_integer(s->interval_ms / 1000));
	json_object_set_new(o, "error", s->error[0] != '\0' ? json_string(s->error) :
	    json_null());
	json_object_set_new(o, "requested_by", s->requested_by[0] != '\0' ?
	    json_string(s->requested_by) : json_null());
	return o;
}

/* Every system's status. */
static json_t *
sync_list(struct req *q)
{
	bool sup[ACTION_TYPE_COUNT];
	struct sync_status s;
	const char *kind;
	json_t *arr = json_array();
	size_t i;

	for (i = 0; engine_sync_status(q->api->eng, i, &s) == 0; i++) {
		if (engine_system_info(q->api->eng, s.system, &kind, sup) != 0)
			kind = "";
		json_array_append_new(arr, render_sync(&s, kind));
	}
	return arr;
}

/* Asks for a run of one system; its status with the run that will serve it. */
static int
request(struct req *q, const char *system, bool full, json_t *arr, struct qerr *e)
{
	bool sup[ACTION_TYPE_COUNT];
	struct sync_status s;
	struct actor who;
	const char *kind;
	int64_t run = 0;
	size_t i;
	json_t *o;
	int r;

	req_actor(q, &who);
	if ((r = engine_sync_request(q->api->eng, &who, system, full, &run, e)) != 0)
		return r;
	for (i = 0; engine_sync_status(q->api->eng, i, &s) == 0; i++) {
		if (strcmp(s.system, system) != 0)
			continue;
		if (engine_system_info(q->api->eng, s.system, &kind, sup) != 0)
			kind = "";
		if ((o = render_sync(&s, kind)) != NULL) {
			json_object_set_new(o, "requested_run", json_integer(run));
			json_array_append_new(arr, o);
		}
	}
	return 0;
}

static int
full_param(struct req *q, bool *full)
{
	const char *v = req_query(q, "full");

	*full = false;
	if (v == NULL || strcmp(v, "false") == 0)
		return 0;
	if (strcmp(v, "true") == 0) {
		*full = true;
		return 0;
	}
	return req_error(q, 400, "invalid_input", "full", "full must be true or false"),
	    -1;
}

static int
start(struct req *q, const char *system)
{
	json_t *arr = json_array();
	struct qerr e;
	size_t i;
	bool full;
	int r = 0;

	qerr_clear(&e);
	if (full_param(q, &full) != 0) {
		json_decref(arr);
		return 0;
	}
	if (system != NULL)
		r = request(q, system, full, arr, &e);
	for (i = 0; system == NULL && r == 0 && i < engine_system_count(q->api->eng); i++)
		r = request(q, engine_system_name(q->api->eng, i), full, arr, &e);
	if (r != 0) {
		json_decref(arr);
		return req_qerr(q, r, &e);
	}
	return req_reply(q, 202, json_pack("{s:o}", "systems", arr));
}

int
route_post_sync(struct req *q)
{
	return start(q, q->arg[0]);
}

int
route_post_sync_all(struct req *q)
{
	return start(q, NULL);
}

int
route_list_sync(struct req *q)
{
	return req_reply(q, 200, json_pack("{s:o}", "systems", sync_list(q)));
}

static int
add_conflict(const struct account *a, const char *identities, void *arg)
{
	struct list_ctx *c = arg;
	json_t *ids = json_loads(identities, 0, NULL);

	c->n++;
	return json_array_append_new(c->arr, json_pack("{s:o, s:o}", "account",
	    render_account(a), "identities", json_is_array(ids) ? ids : json_array()));
}

int
route_list_conflicts(struct req *q)
{
	struct list_ctx c = { json_array(), 0 };
	struct store_tx *tx = NULL;
	const char *after = req_query(q, "after");
	json_t *last;
	struct qerr e;
	int limit, r;

	if (req_check_id(q, "after", after, "acc") != 0 || req_limit(q, 100, &limit) != 0)
		;
	else if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_conflict_list(tx, after, limit, add_conflict, &c, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		last = json_object_get(json_array_get(c.arr, json_array_size(c.arr) - 1),
		    "account");
		req_reply(q, 200, json_pack("{s:O, s:O}", "conflicts", c.arr, "next",
		    c.n == limit && last ? json_object_get(last, "id") : json_null()));
	}
	store_tx_rollback(tx);
	json_decref(c.arr);
	return 0;
}
