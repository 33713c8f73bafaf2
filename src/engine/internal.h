/* What the engine's files share; nothing outside src/engine includes this. */
#ifndef QUELL_ENGINE_INTERNAL_H
#define QUELL_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <jansson.h>

#include "core/disruption_rules.h"
#include "engine.h"

struct engine_system {
	const struct system_config *cfg;
	const struct provider_ops *ops;
	struct provider *p;
	int inflight;
	/* How many steps may run there at once (AIMD, under the engine's mu): the
	 * system's max_concurrency, cut while it refuses concurrent requests. */
	double limit;
	int64_t cut_us;		/* the last cut: calls begun before it are that overload */
	/* One below the limit it last refused at (0: none yet): the limit climbs back to
	 * it at once, and past it one step per ENGINE_PROBE_MS without a refusal, so a
	 * system at its true capacity is not refused again every few calls. */
	double ceiling;
	int64_t probe_ms;	/* engine clock of the last cut or probe past the ceiling */
	_Atomic bool unreachable; /* as last seen: logged once when it changes */
	/* Rate-limit waits not yet logged (the committer's alone): one line a minute. */
	long rl_waits;
	int64_t rl_wait_ms;
	int64_t rl_logged_at;
	/* The cluster's budget there ([system] shared_rate, shared_burst): requests per
	 * second all nodes together may send, taken from the store (0: no such budget). */
	double shared_rate;
	long shared_burst;
};

/* Claimed steps on their way through the pipeline: one step, or several of one
 * system and type that its provider carries out in one request. */
struct job {
	struct step *s;
	struct step_result *res;
	size_t n;
	struct engine_system *sys;
	int64_t call_start_us;	/* the provider call, for bench/disruption_latency */
	int64_t call_end_us;
	struct job *next;
};

struct job_queue {
	struct job *head;
	struct job *tail;
};

/* What one transaction claimed, and whether it stopped for want of room (steps may
 * be left that the dispatcher claims once room frees up). */
struct claimed {
	struct job_queue jobs;
	bool full;
};

/*
 * The pipeline: one dispatcher claims as many steps as there is room for in one
 * transaction, workers run them through the providers, and one committer records
 * every finished step in one transaction. Batching both ends keeps the number of
 * synchronous commits per step well under two when many steps are ready at once.
 */
struct engine {
	const struct config *cfg;
	struct store *st;
	struct policy *pol;
	struct engine_options opt;
	struct engine_system *sys;
	size_t nsys;
	pthread_t *workers;
	int nworkers;
	pthread_t dispatcher;
	pthread_t committer;
	pthread_t keeper;
	int started;		/* bit 0 dispatcher, 1 committer, 2 keeper */
	_Atomic int64_t keeper_beat;	/* when the keeper last woke (ms): /readyz */
	pthread_mutex_t mu;	/* everything below */
	pthread_cond_t cv_dispatch;	/* room freed, work requested, or stop */
	pthread_cond_t cv_run;	/* a job to run, or stop */
	pthread_cond_t cv_done;	/* a job to record, or stop */
	pthread_cond_t cv_keeper; /* stop */
	struct job_queue run;
	struct job_queue done;
	int inflight;		/* claimed and not yet recorded */
	bool wake;		/* new work was stored since the dispatcher looked */
	bool stop;
	bool stop_committer;
	struct syncer *syncer;	/* sync.c */
	struct disruption_policy *dpol;
	pthread_mutex_t dmu;	/* one disruption decision at a time: the blast-radius
				 * count and the actions it allows must not interleave */
	struct subject dsubject;	/* the built-in principal automatic-attack-disruption */
	struct grant_set dgrants;
	struct actor dactor;
	struct siem *siem;	/* the audit log's SIEM forwarders (siem.c) */
	struct ssf *ssf;	/* the Shared Signals transmitter (ssf.c); NULL: none */
	struct actor nactor;	/* this node, as the principal of the engine's own steps */
};

struct engine_system *engine_find_system(struct engine *eng, const char *name);

/*
 * What the last step or sync said of the system: reachable, or not (why says how).
 * Logs "system.unreachable" and "system.recovered" once per change, not per call, and
 * keeps quell_system_up (and /readyz) current.
 */
void engine_system_seen(struct engine_system *sys, bool reachable, const char *why);

/* The pipeline's threads (pipeline.c): they start last, once the providers are open
 * and the store recovered, and stop before the providers close. */
int engine_pipeline_start(struct engine *eng, struct qerr *e);
void engine_pipeline_stop(struct engine *eng);

/* Inventory sync (sync.c): its threads start after the providers open and stop before
 * they close. */
int engine_sync_start(struct engine *eng, struct qerr *e);
void engine_sync_stop(struct engine *eng);


/* Re-reads the action, rolls its steps up, and writes and audits a change of status. */
int engine_rollup_tx(struct store_tx *tx, const struct actor *actor, const char *action_id,
    int64_t now, struct qerr *e);

void engine_wake(struct engine *eng);

/*
 * Claims, inside the caller's write transaction, as many ready steps as the workers
 * have room for (a request runs its first steps without waiting for the dispatcher),
 * leases and all: got (zeroed by the caller) holds them until engine_dispatch. After
 * the commit, engine_dispatch hands them straight to the workers and wakes the
 * dispatcher only when the claim ran out of room; when the transaction failed, it
 * un-counts and frees them.
 */
int engine_claim_tx(struct engine *eng, struct store_tx *tx, struct claimed *got,
    struct qerr *e);
void engine_dispatch(struct engine *eng, struct claimed *got, bool committed);

/*
 * engine_request_bulk's items (never all_or_nothing) inside the caller's write
 * transaction tx: what they store commits with the caller's own writes, and nothing
 * is claimed (the caller claims once, with engine_claim_tx, before it commits).
 * *queued says whether an item was queued for the workers. Item outcomes go to res
 * (the caller clears it with engine_results_clear, whatever the result); the return
 * value is an error of the whole transaction, which the caller rolls back.
 */
int engine_request_tx(struct engine *eng, const struct actor *who, struct store_tx *tx,
    const struct action_request *reqs, size_t n, struct action_result *res,
    bool *queued, struct qerr *e);

/* Cancels the steps of a that have not started, auditing each as actor. */
int engine_cancel_steps_tx(struct store_tx *tx, const struct actor *actor, struct action *a,
    int64_t now, struct qerr *e);

/* Cancels actions whose approval deadline has passed. */
void engine_expire_approvals(struct engine *eng);

/* Loads the disruption policy and makes its principal (disruption.c). */
int engine_disruption_start(struct engine *eng, struct qerr *e);
void engine_disruption_stop(struct engine *eng);

/* Refuses who's request on action a: audits event with why in a transaction of its
 * own (the caller holds none) and returns QERR_DENIED with why in *e (approve.c). */
int engine_refuse(struct engine *eng, const struct actor *who, const char *event,
    const struct action *a, const char *why, struct qerr *e);

#endif
