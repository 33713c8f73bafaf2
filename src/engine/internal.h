/* What the engine's files share; nothing outside src/engine includes this. */
#ifndef QUELL_ENGINE_INTERNAL_H
#define QUELL_ENGINE_INTERNAL_H

#include <pthread.h>

#include <jansson.h>

#include "engine.h"

struct engine_system {
	const struct system_config *cfg;
	const struct provider_ops *ops;
	struct provider *p;
	int inflight;
};

struct engine {
	const struct config *cfg;
	struct store *st;
	struct engine_options opt;
	struct engine_system *sys;
	size_t nsys;
	pthread_t *workers;
	int nworkers;
	pthread_t keeper;
	bool keeper_started;
	pthread_mutex_t mu;	/* inflight counters, stop, the wake condition */
	pthread_cond_t cv;
	pthread_mutex_t claim_mu; /* one claim at a time keeps per-system limits exact */
	bool stop;
};

struct engine_system *engine_find_system(struct engine *eng, const char *name);


/* Re-reads the action, rolls its steps up, and writes and audits a change of status. */
int engine_rollup_tx(struct store_tx *tx, const char *actor, const char *action_id,
    int64_t now, struct qerr *e);

void engine_wake(struct engine *eng);

#endif
