/*
 * This node among others on one shared store: a thread that waits for the store's
 * work notices and wakes the dispatcher at once (its own one-second poll stays as
 * the fallback), and beats this node's heartbeat, which keeps its singleton leases
 * alive. Stores no other node can share (SQLite) need neither: no thread runs, and
 * every singleton is this node's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "internal.h"
#include "wake.h"

#define BEAT_MS		(STORE_NODE_TTL_MS / 5)
#define LISTEN_MS	500	/* how long one wait lasts: stop is seen within it */
#define RETRY_MS	1000	/* after the store failed */

/* The engines running here (tests run several in one process), each with its
 * thread. */
struct engine_cluster {
	struct engine_cluster *next;
	struct engine *eng;
	pthread_t th;
	bool started;
	_Atomic bool stop;
	int64_t started_at;
	bool beat_failed;	/* logged once until a beat works again */
};

static pthread_mutex_t clusters_mu = PTHREAD_MUTEX_INITIALIZER;
static struct engine_cluster *clusters;

static void
sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
	    .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void
beat(struct engine_cluster *cl)
{
	struct engine *eng = cl->eng;
	struct store_tx *tx = NULL;
	struct qerr e;
	int r;

	qerr_clear(&e);
	if ((r = store_tx_begin(eng->st, true, &tx, &e)) == 0 &&
	    (r = store_node_beat(tx, eng->opt.node_id, cl->started_at, engine_now_ms(),
	    STORE_NODE_TTL_MS, &e)) == 0) {
		r = store_tx_commit(tx, &e);
		tx = NULL;
	}
	store_tx_rollback(tx);
	if (r != 0 && !cl->beat_failed)
		log_msg(LOG_LVL_WARN, "engine: this node's heartbeat: %s", e.msg);
	else if (r == 0 && cl->beat_failed)
		log_msg(LOG_LVL_INFO, "engine: this node's heartbeat works again");
	cl->beat_failed = r != 0;
}

static void *
cluster_run(void *arg)
{
	struct engine_cluster *cl = arg;
	int64_t next_beat = 0;
	bool woken, failed = false;
	struct qerr e;

	while (!atomic_load(&cl->stop)) {
		if (engine_now_ms() >= next_beat) {
			beat(cl);
			next_beat = engine_now_ms() + BEAT_MS;
		}
		qerr_clear(&e);
		if (store_wait_work(cl->eng->st, LISTEN_MS, &woken, &e) != 0) {
			if (!failed)
				log_msg(LOG_LVL_WARN, "engine: waiting for work notices: %s "
				    "(the dispatcher polls meanwhile)", e.msg);
			failed = true;
			sleep_ms(RETRY_MS);
			continue;
		}
		failed = false;
		if (woken)
			engine_wake(cl->eng);
	}
	return NULL;
}

int
engine_cluster_start(struct engine *eng, struct qerr *e)
{
	struct engine_cluster *cl;

	if (!store_shared(eng->st))
		return 0;
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	cl->eng = eng;
	cl->started_at = engine_now_ms();
	atomic_init(&cl->stop, false);
	pthread_mutex_lock(&clusters_mu);
	cl->next = clusters;
	clusters = cl;
	pthread_mutex_unlock(&clusters_mu);
	if (pthread_create(&cl->th, NULL, cluster_run, cl) != 0)
		return qerr_set(e, QERR_INTERNAL, NULL, "cannot start the cluster thread");
	cl->started = true;
	return 0;
}

/* Gives up this node's leases, so that its singletons move now rather than when
 * they would have run out. */
static void
release_all(struct engine *eng)
{
	struct store_tx *tx = NULL;
	struct qerr e;

	qerr_clear(&e);
	if (store_tx_begin(eng->st, true, &tx, &e) == 0 &&
	    store_lease_release(tx, NULL, eng->opt.node_id, &e) == 0 &&
	    store_tx_commit(tx, &e) == 0)
		return;
	store_tx_rollback(tx);
	log_msg(LOG_LVL_WARN, "engine: giving up this node's leases: %s", e.msg);
}

void
engine_cluster_stop(struct engine *eng)
{
	struct engine_cluster *cl, **pp;

	pthread_mutex_lock(&clusters_mu);
	for (pp = &clusters; *pp != NULL && (*pp)->eng != eng; pp = &(*pp)->next)
		;
	if ((cl = *pp) != NULL)
		*pp = cl->next;
	pthread_mutex_unlock(&clusters_mu);
	if (cl == NULL)
		return;
	atomic_store(&cl->stop, true);
	if (cl->started) {
		pthread_join(cl->th, NULL);
		release_all(eng);
	}
	free(cl);
}

bool
engine_lease_hold(struct store *st, const char *owner, const char *name,
    int64_t *until)
{
	struct store_tx *tx = NULL;
	int64_t now = engine_now_ms();
	bool held = false;
	struct qerr e;
	int r;

	if (!store_shared(st))
		return true;
	/* Renewed each half lease: the heartbeat extends it in between. */
	if (now < *until - STORE_NODE_TTL_MS / 2)
		return true;
	qerr_clear(&e);
	if ((r = store_tx_begin(st, true, &tx, &e)) == 0 &&
	    (r = store_lease_acquire(tx, name, owner, now, STORE_NODE_TTL_MS, &held,
	    &e)) == 0) {
		r = store_tx_commit(tx, &e);
		tx = NULL;
	}
	store_tx_rollback(tx);
	if (r != 0) {
		log_msg(LOG_LVL_WARN, "engine: lease %s: %s", name, e.msg);
		held = false;
	}
	*until = held ? now + STORE_NODE_TTL_MS : 0;
	return held;
}
