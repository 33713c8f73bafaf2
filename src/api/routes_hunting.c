/*
 * Advanced hunting: POST /api/v1/hunting/query runs one read-only SELECT over the
 * documented views (docs/hunting.md) through the store's hunt slot, which enforces
 * read-only with SQLite's own authorizer. Every query is audited with its text.
 *
 * A query may run for seconds, so it never runs on one of the web server's threads:
 * the handler suspends the connection and hands the query to hunting's own small
 * pool ([server] hunt_workers); the worker resumes the connection when it is done and
 * the answer is sent from MHD's thread. With every worker busy the request is
 * refused at once (503, Retry-After) rather than queued behind minutes of hunts.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HUNT_LIMIT_DEFAULT 100
#define HUNT_LIMIT_MAX 10000
#define HUNT_TIMEOUT_MS 5000
#define HUNT_MAX_BYTES (4u << 20)
#define HUNT_QUERY_MAX 10000
#define HUNT_RETRY_AFTER_S 5

struct hunt_job {
	struct hunt_job *next;
	struct MHD_Connection *conn;
	char *sql;
	int limit;
	int r;			/* store_hunt's answer, and its text and error */
	char *text;
	struct qerr e;
};

struct hunt_pool {
	struct store *st;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t *threads;
	unsigned n, started;
	unsigned busy;		/* jobs handed over and not yet finished: at most n */
	struct hunt_job *head, *tail;
	bool stopping;
};

static void
job_free(void *arg)
{
	struct hunt_job *j = arg;

	if (j == NULL)
		return;
	free(j->sql);
	free(j->text);
	free(j);
}

static void *
hunt_worker(void *arg)
{
	struct hunt_pool *p = arg;
	struct hunt_query hq;
	struct hunt_job *j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if ((j = p->head) == NULL)
			break;
		if ((p->head = j->next) == NULL)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		memset(&hq, 0, sizeof(hq));
		hq.sql = j->sql;
		hq.limit = j->limit;
		hq.timeout_ms = HUNT_TIMEOUT_MS;
		hq.max_bytes = HUNT_MAX_BYTES;
		qerr_clear(&j->e);
		j->r = store_hunt(p->st, &hq, &j->text, &j->e);
		pthread_mutex_lock(&p->mu);
		p->busy--;
		pthread_mutex_unlock(&p->mu);
		/* The last touch of j: from here the request (which owns it) goes on in
		 * MHD's thread, and may be freed there at any time. */
		MHD_resume_connection(j->conn);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
hunt_pool_open(struct store *st, unsigned workers, struct hunt_pool **out,
    struct qerr *e)
{
	struct hunt_pool *p;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->threads = calloc(workers, sizeof(*p->threads))) == NULL) {
		free(p);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	p->st = st;
	p->n = workers;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (p->started = 0; p->started < workers; p->started++)
		if (pthread_create(&p->threads[p->started], NULL, hunt_worker, p) != 0) {
			hunt_pool_close(p);
			return qerr_set(e, QERR_NOMEM, "hunt_workers",
			    "cannot start hunting's threads");
		}
	*out = p;
	return 0;
}

void
hunt_pool_close(struct hunt_pool *p)
{
	unsigned i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	/* Workers finish what was handed over (resuming its connection) first. */
	for (i = 0; i < p->started; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p);
}

/* A worker's slot for a query, or false when all are busy (or hunting stops). */
static bool
slot_take(struct hunt_pool *p)
{
	bool ok;

	pthread_mutex_lock(&p->mu);
	ok = !p->stopping && p->busy < p->n;
	if (ok)
		p->busy++;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

/* Hands j (whose slot is taken) to a worker; its connection is suspended already. */
static void
job_hand_over(struct hunt_pool *p, struct hunt_job *j)
{
	pthread_mutex_lock(&p->mu);
	if (p->tail != NULL)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void
audit_hunt(struct req *q, const char *sql, const json_t *ans, const struct qerr *e)
{
	json_t *d = json_pack("{s:s%, s:o}", "query", sql, strlen(sql) > 2000 ? 2000 :
	    strlen(sql), "rows", ans ? json_integer((json_int_t)json_array_size(
	    json_object_get(ans, "rows"))) : json_null());
	struct actor who;
	struct qerr e2;

	req_actor(q, &who);
	if (d != NULL && e != NULL)
		json_object_set_new(d, "refused", json_string(e->msg));
	if (d != NULL)
		engine_audit_as(q->api->eng, &who, "hunting.query", NULL, d, &e2);
	json_decref(d);
}

/* In MHD's thread again, once the worker has resumed the connection. */
static int
hunt_finish(struct req *q)
{
	struct hunt_job *j = q->job;
	json_t *ans;

	q->resume = NULL;
	if (j->r != 0) {
		audit_hunt(q, j->sql, NULL, &j->e);
		return req_qerr(q, j->r, &j->e);
	}
	/* A text value may hold NUL (SELECT char(0)), which the answer escapes. */
	if ((ans = json_loads(j->text, JSON_ALLOW_NUL, NULL)) == NULL)
		return req_error(q, 500, "internal", NULL, "out of memory");
	audit_hunt(q, j->sql, ans, NULL);
	return req_reply(q, 200, ans);
}

int
route_hunt(struct req *q)
{
	static const char *const keys[] = { "query", "limit", NULL };
	struct hunt_pool *p = q->api->hunts;
	const char *sql;
	struct hunt_job *j = NULL;
	int limit = HUNT_LIMIT_DEFAULT;
	json_t *o, *lim;
	struct qerr e;

	qerr_clear(&e);
	if ((o = req_json(q)) == NULL)
		return 0;
	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_text(q, o, "query", true, HUNT_QUERY_MAX, &sql) != 0)
		goto out;
	if ((lim = json_object_get(o, "limit")) != NULL) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
		    json_integer_value(lim) > HUNT_LIMIT_MAX) {
			req_error(q, 400, "invalid_input", "limit", "limit must be a whole "
			    "number from 1 to %d", HUNT_LIMIT_MAX);
			goto out;
		}
		limit = (int)json_integer_value(lim);
	}
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->sql = strdup(sql)) == NULL) {
		req_error(q, 500, "internal", NULL, "out of memory");
		goto out;
	}
	j->conn = q->conn;
	j->limit = limit;
	if (!slot_take(p)) {
		qerr_set(&e, QERR_BUSY, NULL, "hunting is busy: %u queries are running "
		    "([server] hunt_workers); try again in a few seconds", p->n);
		audit_hunt(q, j->sql, NULL, &e);
		q->retry_after = HUNT_RETRY_AFTER_S;
		req_qerr(q, QERR_BUSY, &e);
		goto out;
	}
	/* Suspended before a worker can see it, so its resume never comes first. */
	q->job = j;
	q->job_free = job_free;
	q->resume = hunt_finish;
	q->suspended = true;
	MHD_suspend_connection(q->conn);
	job_hand_over(p, j);
	j = NULL;
out:
	job_free(j);
	json_decref(o);
	return 0;
}
