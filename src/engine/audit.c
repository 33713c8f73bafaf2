/*
 * The audit entries of the engine's state changes, the log lines and metrics made from
 * them, and the roll-up of an action's steps into its state (written with its entry).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lifecycle.h"
#include "core/log.h"
#include "core/metrics.h"
#include "internal.h"

/*
 * Every change of an action's state is audited as "action.<what>"; the log line is
 * made here from the same event so that no path that changes a state can forget it.
 * It is written inside the transaction: a rollback after it is logged as
 * "engine: ... failed" too.
 */
static void
log_action_event(struct store_tx *tx, const char *event, const char *action_id,
    const char *actor)
{
	struct identity idn;
	struct action a;
	struct qerr e;
	bool failed;

	memset(&a, 0, sizeof(a));
	memset(&idn, 0, sizeof(idn));
	if (store_action_get(tx, action_id, &a, &e) != 0) {
		action_clear(&a);
		return;
	}
	/* Without the identity the line still names its id. */
	if (a.identity_id != NULL && store_identity_get(tx, a.identity_id, &idn, &e) != 0) {
		identity_clear(&idn);
		memset(&idn, 0, sizeof(idn));
	}
	failed = strcmp(event, "action.failed") == 0 ||
	    strcmp(event, "action.partially_completed") == 0;
	log_event(failed ? LOG_LVL_WARN : LOG_LVL_INFO, "action.state", LOG_FIELDS(
	    LOG_S("action", a.id), LOG_S("change", event + 7), LOG_S("type",
	    action_type_name(a.type)), LOG_S("status", action_status_name(a.status)),
	    LOG_S("identity", a.identity_id), LOG_S("identity_name", idn.display_name),
	    LOG_S("requested_by", a.requested_by), LOG_S("source", a.source),
	    LOG_S("by", actor), LOG_S("alert", a.alert_id), LOG_S("message", a.message)),
	    "action %s %s: %s on %s", a.id, event + 7, action_type_name(a.type),
	    idn.display_name ? idn.display_name : a.identity_id ? a.identity_id : "?");
	identity_clear(&idn);
	action_clear(&a);
}

/* Every automatic-disruption decision is audited as "disruption.<outcome>" with its
 * rule and alert in the detail: logged and counted from there, like actions. */
static void
log_disruption_event(const char *event, const char *identity_id, json_t *detail)
{
	const char *rule = json_string_value(json_object_get(detail, "rule"));
	const char *alert = json_string_value(json_object_get(detail, "alert_id"));
	const char *why = json_string_value(json_object_get(detail, "why"));

	QM_ADD(QM_CONTAINMENTS, 1, rule ? rule : "", event + 11);
	log_event(LOG_LVL_INFO, "disruption.decision", LOG_FIELDS(LOG_S("decision",
	    event + 11), LOG_S("rule", rule), LOG_S("alert", alert), LOG_S("identity",
	    identity_id), LOG_S("why", why)), "automatic disruption: %s on identity %s "
	    "(alert %s, rule %s)", event + 11, identity_id ? identity_id : "-",
	    alert ? alert : "-", rule ? rule : "-");
}

/* Unauthenticated refusals arrive here already counted per client address and
 * minute (src/api/refusals.c): one line per window, never one per request. */
static void
log_auth_failure(const char *client, json_t *detail)
{
	json_int_t n = json_integer_value(json_object_get(detail, "count"));
	const char *why = json_string_value(json_object_get(detail, "why"));

	if (n <= 0)
		n = 1;
	QM_ADD(QM_AUTH_FAILURES, (double)n, NULL);
	log_event(LOG_LVL_WARN, "auth.failed", LOG_FIELDS(LOG_S("client", client),
	    LOG_I("count", n), LOG_S("why", why), LOG_S("path",
	    json_string_value(json_object_get(detail, "path")))),
	    "%lld request(s) from %s refused: %s", (long long)n, client ? client : "?",
	    why ? why : "not authenticated");
}

int
engine_audit_tx_as(struct store_tx *tx, const struct actor *who, const char *event,
    const char *action_id, const char *step_id, const char *identity_id,
    json_t *detail, struct qerr *e)
{
	struct audit_entry ent;
	char *text, sysid[160];
	int r;

	/* No detail is an empty object: a json_object() made here was never freed
	 * (every cancel and refusal audited without detail leaked it). */
	text = detail ? json_dumps(detail, JSON_COMPACT) : strdup("{}");
	if (text == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	memset(&ent, 0, sizeof(ent));
	ent.time = engine_now_ms();
	ent.actor = (char *)who->name;
	ent.actor_kind = (char *)(who->kind ? who->kind : "system");
	/* quell's own principals have a stable id by name; anonymous callers none. */
	if (who->id == NULL && (who->kind == NULL || strcmp(who->kind, "system") == 0)) {
		snprintf(sysid, sizeof(sysid), "system:%s", who->name ? who->name : "");
		ent.actor_id = sysid;
	} else
		ent.actor_id = (char *)who->id;
	ent.client = (char *)who->client;
	ent.event = (char *)event;
	ent.action_id = (char *)action_id;
	ent.step_id = (char *)step_id;
	ent.identity_id = (char *)identity_id;
	ent.detail = text;
	r = store_audit_append(tx, &ent, e);
	free(text);
	if (r == 0 && action_id != NULL && strncmp(event, "action.", 7) == 0)
		log_action_event(tx, event, action_id, ent.actor);
	else if (r == 0 && strncmp(event, "disruption.", 11) == 0)
		log_disruption_event(event, identity_id, detail);
	else if (r == 0 && strcmp(event, "auth.failed") == 0)
		log_auth_failure(who->client, detail);
	return r;
}

int
engine_audit_tx(struct store_tx *tx, const char *actor, const char *event,
    const char *action_id, const char *step_id, const char *identity_id,
    json_t *detail, struct qerr *e)
{
	struct actor sys = { .name = actor, .kind = "system" };

	return engine_audit_tx_as(tx, &sys, event, action_id, step_id, identity_id,
	    detail, e);
}

int
engine_rollup_tx(struct store_tx *tx, const struct actor *actor, const char *action_id,
    int64_t now, struct qerr *e)
{
	struct action a;
	enum action_status st, was;
	char msg[256], ev[64];
	json_t *d;
	int r;

	memset(&a, 0, sizeof(a));
	if ((r = store_action_get(tx, action_id, &a, e)) != 0)
		return r;
	was = a.status;
	st = lifecycle_rollup(&a, msg, sizeof(msg));
	/* A cancelled request that waited for approval ends now: nothing will run. */
	if (action_status_terminal(was) ||
	    (was == ACTION_PENDING_APPROVAL && !a.cancel_requested) ||
	    (st == was && !action_status_terminal(st))) {
		action_clear(&a);
		return 0;
	}
	a.status = st;
	a.updated_at = now;
	if (action_status_terminal(st))
		a.finished_at = now;
	free(a.message);
	a.message = strdup(msg);
	d = json_pack("{s:s, s:s, s:s}", "from", action_status_name(was), "to",
	    action_status_name(st), "summary", msg);
	snprintf(ev, sizeof(ev), "action.%s", action_status_name(st));
	if ((r = store_action_update(tx, &a, e)) == 0)
		r = engine_audit_tx_as(tx, actor, ev, a.id, NULL, a.identity_id, d, e);
	json_decref(d);
	action_clear(&a);
	return r;
}
