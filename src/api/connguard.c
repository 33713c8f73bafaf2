/*
 * The header deadline libmicrohttpd 0.9.75 does not have: its connection timeout is
 * an idle timeout, so a client that sends one header line every few seconds keeps a
 * connection for as long as it likes. Every connection is tracked from the moment it
 * is accepted (MHD_OPTION_NOTIFY_CONNECTION); its request's headers must be complete
 * within header_timeout_s of that, or of the end of the previous request on the same
 * connection. A watcher thread shuts the socket of a connection past its deadline
 * down, and MHD, which then reads end of file, closes it in its own thread. The
 * socket is shut down under the lock that MHD's close notification takes before MHD
 * closes the descriptor, so the descriptor cannot be another connection's by then.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "core/clock.h"
#include "internal.h"

struct tracked {
	struct tracked *prev, *next;
	struct conn_guard *g;
	int fd;
	int64_t since_ms;	/* accepted, or its last request ended */
	bool in_request;	/* headers complete: the handler has it */
	bool cut;		/* shut down already */
};

struct conn_guard {
	int64_t limit_ms;
	pthread_mutex_t mu;
	pthread_cond_t wake;	/* on CLOCK_MONOTONIC; signalled to stop */
	pthread_t thread;
	bool started, stopping;
	struct tracked *head;
};

static void *
watch(void *arg)
{
	struct conn_guard *g = arg;
	struct timespec until;
	struct tracked *t;
	int64_t now;

	pthread_mutex_lock(&g->mu);
	while (!g->stopping) {
		now = clock_mono_ms();
		for (t = g->head; t != NULL; t = t->next)
			if (!t->in_request && !t->cut && now - t->since_ms >= g->limit_ms) {
				/* SHUT_RDWR: MHD's next read sees end of file and closes. */
				shutdown(t->fd, SHUT_RDWR);
				t->cut = true;
			}
		/* A quarter of a second past a deadline at most. */
		clock_deadline(CLOCK_MONOTONIC, 250, &until);
		while (!g->stopping && pthread_cond_timedwait(&g->wake, &g->mu, &until) !=
		    ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int
conn_guard_open(unsigned header_timeout_s, struct conn_guard **out, struct qerr *e)
{
	pthread_condattr_t ca;
	struct conn_guard *g;

	*out = NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	g->limit_ms = (int64_t)header_timeout_s * 1000;
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&g->thread, NULL, watch, g) != 0) {
		conn_guard_close(g);
		return qerr_set(e, QERR_NOMEM, NULL, "cannot start the connection watcher");
	}
	g->started = true;
	*out = g;
	return 0;
}

void
conn_guard_close(struct conn_guard *g)
{
	struct tracked *t;

	if (g == NULL)
		return;
	if (g->started) {
		pthread_mutex_lock(&g->mu);
		g->stopping = true;
		pthread_cond_signal(&g->wake);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->thread, NULL);
	}
	/* MHD has closed every connection by now; whatever is left was never closed. */
	while ((t = g->head) != NULL) {
		g->head = t->next;
		free(t);
	}
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

void
conn_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct conn_guard *g = cls;
	const union MHD_ConnectionInfo *ci;
	struct tracked *t;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		/* Untracked (out of memory) only loses the header deadline. */
		if (ci == NULL || (t = calloc(1, sizeof(*t))) == NULL)
			return;
		t->g = g;
		t->fd = ci->connect_fd;
		t->since_ms = clock_mono_ms();
		pthread_mutex_lock(&g->mu);
		t->next = g->head;
		if (g->head != NULL)
			g->head->prev = t;
		g->head = t;
		pthread_mutex_unlock(&g->mu);
		*socket_context = t;
		return;
	}
	if ((t = *socket_context) == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		g->head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&g->mu);
	free(t);
	*socket_context = NULL;
}

static struct tracked *
tracked_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

void
conn_guard_request_started(struct MHD_Connection *conn)
{
	struct tracked *t = tracked_of(conn);

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->g->mu);
	t->in_request = true;
	pthread_mutex_unlock(&t->g->mu);
}

void
conn_guard_request_ended(struct MHD_Connection *conn)
{
	struct tracked *t = tracked_of(conn);

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->g->mu);
	t->in_request = false;
	t->since_ms = clock_mono_ms();
	pthread_mutex_unlock(&t->g->mu);
}
