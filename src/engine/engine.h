/*
 * The action engine: accepts action requests (authorized, planned and persisted before
 * anything runs), executes their steps on a pool of worker threads with a per-system
 * concurrency limit, leases, retries with backoff, and rolls step states up into the
 * action's state. Every transition is written with its audit entry in one transaction.
 */
#ifndef QUELL_ENGINE_ENGINE_H
#define QUELL_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/alert.h"
#include "core/config.h"
#include "core/err.h"
#include "core/model.h"
#include "core/policy.h"
#include "engine/siem.h"
#include "providers/provider.h"
#include "store/store.h"

struct engine;

/* Who asks: the authenticated principal, the grants it holds under the access
 * policy, and the union of their permissions. */
struct actor {
	const char *id;		/* stable: token id, "<issuer>#<subject>", "system:<name>" */
	const char *name;	/* display name */
	const char *kind;	/* "token", "jwt", "session", "system"; NULL = "system" */
	const char *client;	/* the client's address; NULL when not over the network */
	const char *role;
	unsigned perms;
	const struct subject *subject;
	const struct grant_set *grants;
};

struct action_request {
	enum action_type type;
	const char *identity_id;
	const char *account_id;	/* NULL: every linked account */
	const char *reason;
	const char *params;	/* JSON object text, validated by the caller */
	const char *source;	/* "manual", "api" */
	bool preview;		/* plan only: nothing is stored */
	const char *undo_of;	/* set by engine_undo */
	char *const *only_accounts;	/* set by engine_undo: act on these only */
	size_t nonly;
	const char *alert_id;	/* automatic attack disruption: the alert acted on */
	const char *hold_rule;	/* non-NULL: wait for approval under this rule name */
	/* A preview's ActionPreview goes here (the caller's to decref); NULL: dropped. */
	json_t **preview_out;
};

struct engine_options {
	const char *node_id;
	int workers;
	int64_t lease_ms;	/* default 60 s */
	int64_t retry_base_ms;	/* default 500 ms */
	int64_t retry_cap_ms;	/* default 30 s */
	int max_attempts;	/* default 25 */
	/* A step is not retried past this long after its first attempt began, whatever
	 * its attempts and waits; default 6 h. */
	int64_t step_deadline_ms;
	/* The provider of a system's kind; NULL: provider_lookup (the built-in kinds). */
	const struct provider_ops *(*lookup)(const char *kind);
	/* The clock (ms since the epoch) claims, leases and retry times are read on;
	 * NULL: engine_now_ms. The engine's sleeps stay on the real clock. */
	int64_t (*clock_ms)(void);
};

/* One identity system's inventory sync: the run going on, or the last one. */
struct sync_status {
	char system[64];
	bool running;
	int64_t run;		/* runs started so far */
	int64_t finished_run;	/* the last run that ended */
	char mode[16];		/* "full", "incremental"; "" before the first run */
	long seen;		/* accounts (AD: entries) read from the system */
	long changed;		/* accounts new, changed or removed */
	long created;		/* accounts new to quell */
	long removed;		/* accounts marked removed */
	long linked;		/* accounts linked by a correlation rule */
	long identities;	/* identities created for accounts matching nothing */
	long conflicts;		/* accounts left unlinked: they match several identities */
	long skipped;		/* accounts without an id */
	int64_t started_at;
	int64_t finished_at;
	int64_t next_at;	/* the next scheduled run; 0 = none */
	int64_t interval_ms;	/* sync_interval; 0 = on demand only */
	char error[256];	/* why the last run failed; "" if it did not */
	char requested_by[128];
};

/*
 * Opens a provider for every configured system (errors name file:line) and starts
 * the workers; after a restart, steps this node left running are claimed again.
 * cfg and st must outlive the engine.
 */
int engine_start(const struct config *cfg, struct store *st,
    const struct engine_options *opt, struct engine **out, struct qerr *e);
/*
 * A system's share of the cluster's budget at its vendor ([system] shared_rate,
 * shared_burst; pipeline.c): *rate 0 when it has none. QERR_CONFIG naming a bad key;
 * quelld check and the engine's start read it alike.
 */
int engine_budget_parse(const struct system_config *sc, double *rate, long *burst,
    struct qerr *e);

/* Stops the workers (waiting for steps in flight) and closes the providers. */
void engine_stop(struct engine *eng);

/* 0 when the system exists: *kind set, and supported[i] for each action type. */
int engine_system_info(struct engine *eng, const char *name, const char **kind,
    bool supported[ACTION_TYPE_COUNT]);
size_t engine_system_count(struct engine *eng);
/* false when the i-th system's last step or sync got no answer from it. */
bool engine_system_reachable(struct engine *eng, size_t i);

/* How long a system's concurrency stays one below the level it last refused at
 * before one step more is tried. */
#define ENGINE_PROBE_MS	10000

/* How many steps may run at once on the i-th system now: its max_concurrency, lower
 * while it refuses concurrent requests (quell_provider_concurrency). */
int engine_system_concurrency(struct engine *eng, size_t i);
/* Whether every engine thread runs and the keeper woke within a lease; false with
 * why set otherwise (for /readyz). */
bool engine_running(struct engine *eng, char *why, size_t n);
const char *engine_system_name(struct engine *eng, size_t i);

/*
 * Authorizes, plans and stores an action (or, with req->preview, only plans it) and
 * wakes the workers. *out (caller clears) receives the action with its steps. A denied
 * request returns QERR_DENIED and is stored as a denied action in *out.
 */
int engine_request(struct engine *eng, const struct actor *who,
    const struct action_request *req, struct action *out, struct qerr *e);

/* One request of a bulk: r is 0 (a is the action, stored unless a preview) or the
 * refusal (e says why; a denied request's stored action is a, status denied). */
struct action_result {
	int r;
	struct qerr e;
	struct action a;
	/* A preview's account lines and warnings (docs/openapi.yaml ActionPreview);
	 * NULL unless a preview planned. */
	json_t *preview;
};

/*
 * engine_request for n requests in one transaction and one commit, each authorized,
 * planned and stored exactly as engine_request does it; res[i] (n of them, caller
 * clears with engine_results_clear) is the outcome of reqs[i]. With all_or_nothing a
 * refused request keeps every other from being stored (their r: QERR_CONFLICT);
 * denied ones are stored all the same. Returns an error only when nothing could be
 * done at all: then no result is set.
 */
int engine_request_bulk(struct engine *eng, const struct actor *who,
    const struct action_request *reqs, size_t n, bool all_or_nothing,
    struct action_result *res, struct qerr *e);
void engine_results_clear(struct action_result *res, size_t n);

/*
 * Approves (the action is queued) or rejects (it is cancelled) an action waiting for
 * approval. The requester can never decide on their own action. QERR_CONFLICT when
 * it is not waiting.
 */
int engine_decide(struct engine *eng, const struct actor *who, const char *action_id,
    bool approve, const char *reason, struct action *out, struct qerr *e);

/*
 * Requests the inverse of every step of a finished action that succeeded (disable ↔
 * enable; mark_compromised, set_risk and force_password_change as their own type
 * with params.undo), as a new action linked to it, authorized like any other.
 * Refuses actions that cannot be undone (deactivate, revoke_sessions, an undo of
 * the three, a set_risk whose earlier level is unknown). preview non-NULL: plans
 * only, out as a preview, *preview its ActionPreview (the caller's).
 */
int engine_undo(struct engine *eng, const struct actor *who, const char *action_id,
    const char *reason, json_t **preview, struct action *out, struct qerr *e);

/* The [siem] forwarders: how many, and the i-th one's delivery (its backlog is
 * out->backlog: audit entries not yet acknowledged by that SIEM). */
size_t engine_siem_count(struct engine *eng);
int engine_siem_status(struct engine *eng, size_t i, struct siem_status *out,
    struct qerr *e);

/* The access policy loaded from the configuration at start. */
const struct policy *engine_policy(struct engine *eng);

/* Cancels the steps not yet started. QERR_CONFLICT when the action is terminal. */
int engine_cancel(struct engine *eng, const struct actor *who, const char *action_id,
    struct action *out, struct qerr *e);

/*
 * Asks for a sync of system (NULL: every system) in the background; full forces a
 * full listing. A request while one runs is served by the run after it. *run is the
 * run number of system that will serve it (with NULL, of the last system).
 */
int engine_sync_request(struct engine *eng, const struct actor *who, const char *system,
    bool full, int64_t *run, struct qerr *e);
/* The i-th system's sync status (0 <= i < engine_system_count). */
int engine_sync_status(struct engine *eng, size_t i, struct sync_status *out);

/* engine_audit_tx_as in its own transaction (for API-level events), as who; detail
 * is borrowed (NULL = {}). */
int engine_audit_as(struct engine *eng, const struct actor *who, const char *event,
    const char *identity_id, json_t *detail, struct qerr *e);
/* engine_audit_as for quell's own principal named actor (kind "system"). */
int engine_audit(struct engine *eng, const char *actor, const char *event,
    const char *identity_id, json_t *detail, struct qerr *e);

/* Appends an audit entry inside tx, with the state change it records, as who
 * (kind, stable id, display name, client address); detail is a borrowed jansson
 * object (NULL = {}). */
int engine_audit_tx_as(struct store_tx *tx, const struct actor *who, const char *event,
    const char *action_id, const char *step_id, const char *identity_id,
    json_t *detail, struct qerr *e);
/* engine_audit_tx_as for quell's own principal named actor: a node, sync,
 * automatic-attack-disruption (kind "system", id "system:<actor>"). */
int engine_audit_tx(struct store_tx *tx, const char *actor, const char *event,
    const char *action_id, const char *step_id, const char *identity_id,
    json_t *detail, struct qerr *e);

/* The SSF transmitter's configuration (engine/ssf.h), borrowed while eng runs;
 * NULL without [ssf]. */
struct ssf_conf;
const struct ssf_conf *engine_ssf_conf(struct engine *eng);
int64_t engine_now_ms(void);
/* Microseconds since the epoch, for latency measurements recorded in the audit log. */
int64_t engine_now_us(void);

/*
 * Automatic attack disruption (disruption.c). Stores an alert with its account
 * entities resolved to identities, unless one with the same (source, external_id)
 * is stored already: then *created is false and *a becomes that one. A new alert is
 * then acted on under the [disruption] rules and the guard, as the built-in principal
 * automatic-attack-disruption; every decision is stored and audited. a->id and
 * a->received_* are set here; poster is who sent it, for the audit log.
 */
int engine_alert(struct engine *eng, const struct actor *poster, struct alert *a,
    bool *created, struct qerr *e);

/*
 * Ends every automatic containment of an identity still in force, as who (refused,
 * audited, when who may not act on the identity): cancels what has not run, undoes
 * each disable and waits (bounded) for its accounts to be enabled again, and ends
 * what has no inverse. *results (caller decrefs) is {released, results: one object
 * per action {action_id, type, outcome, steps, undo_action_id | error},
 * still_contained: the accounts still disabled}. released is true only when every
 * account is enabled again; otherwise the containment stays in force for the
 * accounts named. QERR_CONFLICT when none is in force.
 */
int engine_release(struct engine *eng, const struct actor *who, const char *identity_id,
    const char *reason, json_t **results, struct qerr *e);
/*
 * What engine_release would do, nothing changed: *results (caller decrefs) is
 * {preview: true, results: one object per action in force {action_id, type, status, outcome:
 * cancel | undo | end | refused, note, and for undo the undo's undo_status,
 * approval_rule and preview (ActionPreview)}}. Refused as engine_release is.
 */
int engine_release_preview(struct engine *eng, const struct actor *who,
    const char *identity_id, const char *reason, json_t **results, struct qerr *e);

#endif
