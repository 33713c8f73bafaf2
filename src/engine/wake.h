/* This node among others on a shared store: work notices, heartbeats, singletons. */
#ifndef QUELL_ENGINE_WAKE_H
#define QUELL_ENGINE_WAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

struct engine;

/*
 * On a store other nodes may share (store_shared): starts the thread that wakes the
 * engine's dispatcher on the store's work notices and beats this node's heartbeat,
 * which keeps the node seen and its leases alive. Starts with the pipeline and
 * stops after it; stopping gives up this node's leases. Nothing on other stores.
 */
int engine_cluster_start(struct engine *eng, struct qerr *e);
void engine_cluster_stop(struct engine *eng);

/*
 * Whether owner may run the once-per-cluster job name now: it holds the job's lease,
 * taken or renewed here when *until (the caller's note of it, 0 at first) says it
 * is due. Always true on a store of one node; a failure to ask is a no.
 */
bool engine_lease_hold(struct store *st, const char *owner, const char *name,
    int64_t *until);

#endif
