/*
 * GET /metrics (Prometheus text format 0.0.4, permission metrics.read) and GET
 * /readyz (no authentication, like /healthz: a load balancer has no token).
 *
 * Counters that must survive a restart or agree across nodes sharing a store are
 * read from the store at scrape time (actions by type and status, queue, approvals,
 * accounts, identities, audit entries); what only this process sees (steps, latency,
 * vendor answers, HTTP requests, decisions) is in the in-process registry of
 * core/metrics.c. docs/operations.md lists every family and where it comes from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/metrics.h"
#include "core/model.h"
#include "core/text.h"
#include "core/version.h"
#include "internal.h"

/* The rows of one read-only query over the hunting views, or NULL (e said why). */
static json_t *
query_rows(struct store *st, const char *sql, json_t **ans, struct qerr *e)
{
	struct hunt_query hq = { sql, 10000, 5000, 4u << 20 };
	char *text = NULL;

	*ans = NULL;
	if (store_hunt(st, &hq, &text, e) != 0)
		return NULL;
	*ans = json_loads(text, 0, NULL);
	free(text);
	return json_object_get(*ans, "rows");
}

static double
num(json_t *v)
{
	return json_is_number(v) ? json_number_value(v) : 0;
}

/* Actions by type and status: terminal ones only ever grow, so they are a counter;
 * open ones come and go, a gauge. Every pair is written, zero included, so that a
 * query for one that never happened finds 0 rather than nothing. */
static void
write_actions(struct mtext *t, json_t *rows)
{
	static const char *const keys[] = { "type", "status" };
	double n[ACTION_TYPE_COUNT][ACTION_STATUS_COUNT] = { { 0 } };
	enum action_status st;
	enum action_type ty;
	const char *vals[2];
	size_t i;
	json_t *row;
	int pass;

	json_array_foreach(rows, i, row) {
		if (action_type_parse(json_string_value(json_array_get(row, 0)), &ty) == 0 &&
		    action_status_parse(json_string_value(json_array_get(row, 1)), &st) == 0)
			n[ty][st] = num(json_array_get(row, 2));
	}
	for (pass = 0; pass < 2; pass++) {
		if (pass == 0)
			mtext_family(t, "quell_actions_total", "counter", "Actions that reached "
			    "a final status, by type and status (from the store).");
		else
			mtext_family(t, "quell_actions_open", "gauge", "Actions not finished "
			    "yet, by type and status (from the store).");
		for (ty = 0; ty < ACTION_TYPE_COUNT; ty++)
			for (st = 0; st < ACTION_STATUS_COUNT; st++) {
				if (action_status_terminal(st) != (pass == 0))
					continue;
				vals[0] = action_type_name(ty);
				vals[1] = action_status_name(st);
				mtext_sample(t, pass == 0 ? "quell_actions_total" :
				    "quell_actions_open", keys, vals, 2, n[ty][st]);
			}
	}
}

static void
write_pairs(struct mtext *t, json_t *rows, const char *name, const char *type,
    const char *help, const char *k0, const char *k1)
{
	const char *keys[2] = { k0, k1 }, *vals[2];
	size_t i;
	json_t *row;

	mtext_family(t, name, type, help);
	json_array_foreach(rows, i, row) {
		vals[0] = json_string_value(json_array_get(row, 0));
		vals[1] = json_string_value(json_array_get(row, 1));
		mtext_sample(t, name, keys, vals, 2, num(json_array_get(row, 2)));
	}
}

static void
write_one(struct mtext *t, const char *name, const char *type, const char *help,
    double v)
{
	mtext_family(t, name, type, help);
	mtext_sample(t, name, NULL, NULL, 0, v);
}

/* Each [siem] forwarder's delivery (src/engine/siem.c): the backlog is what an
 * outage of the SIEM accumulates. */
static void
write_siem(struct req *q, struct mtext *t)
{
	static const char *const key[] = { "siem" };
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "quell_siem_backlog", "gauge", "Audit entries not yet acknowledged by the "
		    "SIEM." },
		{ "quell_siem_connected", "gauge", "1 while the forwarder holds a connection "
		    "to the SIEM." },
		{ "quell_siem_sent_total", "counter", "Messages written to the SIEM since the "
		    "start, resent ones included." },
		{ "quell_siem_resent_total", "counter", "Messages sent again after a broken "
		    "connection (duplicates the SIEM may hold)." },
	};
	size_t n = engine_siem_count(q->api->eng), i, f;
	struct siem_status *st = calloc(n ? n : 1, sizeof(*st));
	bool *ok = calloc(n ? n : 1, sizeof(*ok));
	const char *vals[1];
	struct qerr e;

	for (i = 0; st != NULL && ok != NULL && i < n; i++)
		ok[i] = engine_siem_status(q->api->eng, i, &st[i], &e) == 0;
	for (f = 0; st != NULL && ok != NULL && f < sizeof(fam) / sizeof(fam[0]); f++) {
		mtext_family(t, fam[f].name, fam[f].type, fam[f].help);
		for (i = 0; i < n; i++) {
			if (!ok[i])
				continue;
			vals[0] = st[i].name;
			mtext_sample(t, fam[f].name, key, vals, 1, f == 0 ?
			    (double)st[i].backlog : f == 1 ? (st[i].connected ? 1 : 0) :
			    f == 2 ? (double)st[i].sent : (double)st[i].resent);
		}
	}
	free(ok);
	free(st);
}

/* The families read from the store and the engine; -1 with e set when the store
 * could not be read. */
static int
write_scraped(struct req *q, struct mtext *t, struct qerr *e)
{
	static const char *const sys_key[] = { "system" };
	static const char *const ver_key[] = { "version" };
	const char *vals[1];
	json_t *ans = NULL, *rows, *row;
	int64_t now = (int64_t)time(NULL), oldest_ms = 0;
	const char *oldest;
	size_t i, n;

	if ((rows = query_rows(q->api->st, "SELECT type, status, count(*) FROM Actions "
	    "GROUP BY type, status", &ans, e)) == NULL)
		goto fail;
	write_actions(t, rows);
	json_decref(ans);
	/* The oldest as the views' RFC 3339 text (which sorts as time does), read
	 * here: the same query in either store's dialect. */
	if ((rows = query_rows(q->api->st, "SELECT count(*), "
	    "min(a.created_at) FROM ActionSteps s JOIN Actions a ON "
	    "a.action_id = s.action_id WHERE s.status IN ('queued', 'retry_wait') AND "
	    "a.status IN ('queued', 'running')", &ans, e)) == NULL)
		goto fail;
	row = json_array_get(rows, 0);
	write_one(t, "quell_queue_depth", "gauge", "Steps waiting to run (queued or "
	    "waiting to retry), from the store.", num(json_array_get(row, 0)));
	oldest = json_string_value(json_array_get(row, 1));
	write_one(t, "quell_queue_oldest_age_seconds", "gauge", "Age of the action of "
	    "the oldest step waiting to run; 0 when none waits.",
	    oldest != NULL && text_time_parse(oldest, &oldest_ms) == 0 ?
	    (double)(now - oldest_ms / 1000) : 0);
	json_decref(ans);
	if ((rows = query_rows(q->api->st, "SELECT count(*) FROM Actions WHERE status = "
	    "'pending_approval'", &ans, e)) == NULL)
		goto fail;
	write_one(t, "quell_approvals_pending", "gauge", "Actions waiting for a second "
	    "person's approval.", num(json_array_get(json_array_get(rows, 0), 0)));
	json_decref(ans);
	if ((rows = query_rows(q->api->st, "SELECT system, state, count(*) FROM "
	    "IdentityAccounts GROUP BY system, state", &ans, e)) == NULL)
		goto fail;
	write_pairs(t, rows, "quell_accounts", "gauge", "Accounts known to quell, by "
	    "identity system and state.", "system", "state");
	json_decref(ans);
	if ((rows = query_rows(q->api->st, "SELECT (SELECT count(*) FROM IdentityInfo), "
	    "(SELECT count(*) FROM AuditEvents)", &ans, e)) == NULL)
		goto fail;
	row = json_array_get(rows, 0);
	write_one(t, "quell_identities", "gauge", "Identities known to quell.",
	    num(json_array_get(row, 0)));
	write_one(t, "quell_audit_entries", "gauge", "Entries in the audit log.",
	    num(json_array_get(row, 1)));
	json_decref(ans);
	mtext_family(t, "quell_system_up", "gauge", "1 unless the identity system's last "
	    "step or sync got no answer from it.");
	n = engine_system_count(q->api->eng);
	for (i = 0; i < n; i++) {
		vals[0] = engine_system_name(q->api->eng, i);
		mtext_sample(t, "quell_system_up", sys_key, vals, 1,
		    engine_system_reachable(q->api->eng, i) ? 1 : 0);
	}
	write_siem(q, t);
	mtext_family(t, "quell_build_info", "gauge", "The running quelld's version.");
	vals[0] = QUELL_VERSION_FULL;
	mtext_sample(t, "quell_build_info", ver_key, vals, 1, 1);
	return 0;
fail:
	json_decref(ans);
	return -1;
}

int
route_metrics(struct req *q)
{
	struct mtext t = { 0 };
	struct qerr e;

	qerr_clear(&e);
	metrics_render(quell_metrics(), &t);
	if (write_scraped(q, &t, &e) != 0) {
		mtext_clear(&t);
		return req_qerr(q, e.code ? e.code : QERR_INTERNAL, &e);
	}
	if (t.oom) {
		mtext_clear(&t);
		return req_error(q, 500, "internal", NULL, "out of memory");
	}
	q->status = 200;
	q->text = t.p;
	q->text_type = "text/plain; version=0.0.4; charset=utf-8";
	return 0;
}

static int
add_node(const struct store_node *n, void *arg)
{
	json_t *nodes = arg;
	int64_t now = engine_now_ms();

	return json_array_append_new(nodes, json_pack("{s:s, s:I, s:I, s:b, s:[]}",
	    "node_id", n->node_id, "started_at", (json_int_t)n->started_at, "last_seen",
	    (json_int_t)n->last_seen, "alive", now - n->last_seen <= STORE_NODE_TTL_MS,
	    "leases")) == 0 ? 0 : QERR_NOMEM;
}

/* Each lease still running goes to its holder's "leases". */
static int
add_lease(const struct store_lease *l, void *arg)
{
	json_t *nodes = arg, *n;
	size_t i;

	if (l->expires_at <= engine_now_ms())
		return 0;
	json_array_foreach(nodes, i, n) {
		if (strcmp(json_string_value(json_object_get(n, "node_id")), l->owner) == 0)
			return json_array_append_new(json_object_get(n, "leases"),
			    json_string(l->name)) == 0 ? 0 : QERR_NOMEM;
	}
	return 0;
}

/*
 * The nodes sharing the store, as their heartbeats say, and the once-per-cluster
 * jobs each runs. On a store of one node there are no leases: every job is its own.
 */
static json_t *
cluster_json(struct req *q)
{
	const char *self = q->api->cfg->node_id != NULL ? q->api->cfg->node_id : "";
	json_t *nodes = json_array();
	struct store_tx *tx = NULL;
	struct qerr e;
	int r;

	qerr_clear(&e);
	if (!store_shared(q->api->st))
		return json_pack("{s:b, s:s, s:[{s:s, s:b, s:[]}]}", "shared", false, "node",
		    self, "nodes", "node_id", self, "alive", true, "leases");
	if ((r = store_tx_begin(q->api->st, false, &tx, &e)) == 0 &&
	    (r = store_node_list(tx, add_node, nodes, &e)) == 0)
		r = store_lease_list(tx, add_lease, nodes, &e);
	store_tx_rollback(tx);
	return json_pack("{s:b, s:s, s:o, s:s?}", "shared", true, "node", self, "nodes",
	    nodes, "error", r != 0 ? e.msg : NULL);
}

/*
 * Ready: the store takes a write transaction and the engine's threads run. A system
 * that does not answer makes the answer "degraded" but still 200: every node sees the
 * same outage, and taking them all out of the load balancer would stop quell acting
 * on the systems that still answer.
 */
int
route_readyz(struct req *q)
{
	struct qerr e;
	json_t *systems = json_array();
	struct store_tx *tx = NULL;
	char why[sizeof(e.msg) + 64] = "";
	bool degraded = false, store_ok, engine_ok;
	size_t i, n;

	qerr_clear(&e);
	if (!(store_ok = store_tx_begin(q->api->st, true, &tx, &e) == 0))
		snprintf(why, sizeof(why), "the store takes no write: %s", e.msg);
	store_tx_rollback(tx);
	engine_ok = engine_running(q->api->eng, why[0] ? NULL : why, why[0] ? 0 :
	    sizeof(why));
	n = engine_system_count(q->api->eng);
	for (i = 0; i < n; i++) {
		bool up = engine_system_reachable(q->api->eng, i);

		degraded |= !up;
		json_array_append_new(systems, json_pack("{s:s, s:s}", "name",
		    engine_system_name(q->api->eng, i), "status", up ? "reachable" :
		    "unreachable"));
	}
	return req_reply(q, store_ok && engine_ok ? 200 : 503, json_pack(
	    "{s:s, s:b, s:b, s:s?, s:o, s:o}", "status", !(store_ok && engine_ok) ?
	    "not_ready" : degraded ? "degraded" : "ready", "store", store_ok, "engine",
	    engine_ok, "reason", why[0] ? why : NULL, "systems", systems, "cluster",
	    cluster_json(q)));
}
