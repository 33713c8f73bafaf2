/*
 * Long polling for the SSF poll endpoint (RFC 8936 2.4, returnImmediately false):
 * a poll that finds nothing is not answered on one of the web server's four threads,
 * which would stall every connection that thread serves. The handler suspends the
 * connection and hands it here: one thread watches the waiting polls' streams,
 * woken as SETs are queued in this process (ssf_outbox_queued) and looking again
 * every RECHECK_MS for what another node of a cluster queued, and resumes a poll as
 * soon as its stream has a SET or its wait (at most SSF_WAIT_MAX_S) is over; the
 * answer is then made on MHD's thread. At most WAITERS_MAX polls wait at once; one
 * more is answered at once (as RFC 8936 lets a transmitter do). A stop answers the
 * waiting polls (empty) before the server goes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "engine/ssf.h"
#include "internal.h"

#define WAITERS_MAX	16
#define RECHECK_MS	1000
#define ANSWER_WAIT_S	3	/* for the polls resumed at a stop to be answered */

struct ssf_waiter {
	struct ssf_waiter *next;
	struct MHD_Connection *conn;
	char stream[64];
	int64_t deadline_ms;	/* monotonic */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* a waiter was added, or stop */
	pthread_cond_t gone;	/* a long poll's request ended */
	pthread_t thread;
	bool started;
	_Atomic bool stop;
	struct store *st;
	struct ssf_waiter *head;
	unsigned n;		/* waiting */
	unsigned live;		/* waiting or resumed, their requests not yet ended */
} W = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
	.gone = PTHREAD_COND_INITIALIZER };

/* The request's end (answered, or its connection gone): api_stop waits for it. */
static void
waiter_free(void *job)
{
	pthread_mutex_lock(&W.mu);
	W.live--;
	pthread_cond_broadcast(&W.gone);
	pthread_mutex_unlock(&W.mu);
	free(job);
}

static int
seen_cb(const char *key, const char *text, int64_t seq, void *arg)
{
	(void)key;
	(void)text;
	(void)seq;
	*(bool *)arg = true;
	return 0;
}

/* Whether the stream has a SET to give; an error answers the poll (which says why). */
static bool
has_pending(const char *stream)
{
	struct store_tx *tx = NULL;
	struct qerr e = { 0 };
	bool any = false;

	if (store_tx_begin(W.st, false, &tx, &e) != 0)
		return true;
	if (store_ssf_outbox_pending(tx, stream, 1, seen_cb, &any, &e) != 0)
		any = true;
	store_tx_rollback(tx);
	return any;
}

/* One look at every waiting poll; resumes those done. Returns how long to wait for
 * the next look. */
static int
look(void)
{
	struct ssf_waiter *snap[WAITERS_MAX], *done = NULL, **pp, *w;
	bool ready[WAITERS_MAX];
	size_t n = 0, i;
	int64_t now, next = RECHECK_MS;

	pthread_mutex_lock(&W.mu);
	for (w = W.head; w != NULL && n < WAITERS_MAX; w = w->next)
		snap[n++] = w;
	pthread_mutex_unlock(&W.mu);
	/* Only this thread unlinks a waiter: the ones in snap stay valid. */
	for (i = 0; i < n; i++)
		ready[i] = has_pending(snap[i]->stream);
	now = clock_mono_ms();
	pthread_mutex_lock(&W.mu);
	for (i = 0; i < n; i++) {
		if (!ready[i] && now < snap[i]->deadline_ms && !W.stop) {
			if (snap[i]->deadline_ms - now < next)
				next = snap[i]->deadline_ms - now;
			continue;
		}
		for (pp = &W.head; *pp != snap[i]; pp = &(*pp)->next)
			;
		*pp = snap[i]->next;
		snap[i]->next = done;
		done = snap[i];
		W.n--;
	}
	pthread_mutex_unlock(&W.mu);
	/* The last touch of each: from here its request goes on in MHD's thread. */
	while ((w = done) != NULL) {
		done = w->next;
		MHD_resume_connection(w->conn);
	}
	return (int)next;
}

static void *
run(void *arg)
{
	uint64_t gen;
	int ms;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&W.mu);
		while (W.head == NULL && !W.stop)
			pthread_cond_wait(&W.cv, &W.mu);
		if (W.head == NULL) {
			pthread_mutex_unlock(&W.mu);
			break;
		}
		pthread_mutex_unlock(&W.mu);
		gen = ssf_outbox_generation();
		if ((ms = look()) > 0)
			ssf_outbox_wait(gen, &W.stop, ms);
	}
	return NULL;
}

/* Starts the thread on the first long poll; false when it cannot be. W.mu held. */
static bool
start(struct store *st)
{
	if (W.started)
		return true;
	W.st = st;
	if (pthread_create(&W.thread, NULL, run, NULL) != 0)
		return false;
	W.started = true;
	return true;
}

bool
routes_ssf_wait(struct req *q, const char *stream, int wait_s, int (*resume)(struct req *))
{
	struct ssf_waiter *w = calloc(1, sizeof(*w));
	bool ok;

	if (w == NULL || strlen(stream) >= sizeof(w->stream)) {
		free(w);
		return false;
	}
	strcpy(w->stream, stream);
	w->conn = q->conn;
	w->deadline_ms = clock_mono_ms() + (int64_t)wait_s * 1000;
	pthread_mutex_lock(&W.mu);
	ok = !W.stop && W.n < WAITERS_MAX && start(q->api->st);
	if (ok) {
		/* Suspended before the thread can see it, so its resume never comes
		 * first. */
		q->job = w;
		q->job_free = waiter_free;
		q->resume = resume;
		q->suspended = true;
		MHD_suspend_connection(q->conn);
		w->next = W.head;
		W.head = w;
		W.n++;
		W.live++;
		pthread_cond_signal(&W.cv);
	}
	pthread_mutex_unlock(&W.mu);
	if (!ok)
		free(w);
	return ok;
}

void
routes_ssf_wait_close(void)
{
	struct timespec dl;
	int rc = 0;

	pthread_mutex_lock(&W.mu);
	/* Stopped even when no poll ever waited: none may start waiting now. */
	W.stop = true;
	if (!W.started) {
		pthread_mutex_unlock(&W.mu);
		return;
	}
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.mu);
	ssf_outbox_queued();
	/* The thread resumes every waiting poll before it ends. */
	pthread_join(W.thread, NULL);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ANSWER_WAIT_S;
	/* Still stopped: a poll the server takes before it stops is answered at once.
	 * The resumed ones are answered on MHD's threads, which MHD_stop_daemon would
	 * cut short: they get a few seconds first. */
	pthread_mutex_lock(&W.mu);
	while (W.live > 0 && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&W.gone, &W.mu, &dl);
	W.started = false;
	W.st = NULL;
	pthread_mutex_unlock(&W.mu);
}

void
routes_ssf_wait_open(void)
{
	pthread_mutex_lock(&W.mu);
	W.stop = false;
	pthread_mutex_unlock(&W.mu);
}
