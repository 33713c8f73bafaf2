/*
 * Refusals of callers that did not authenticate. Each would otherwise be an audit
 * entry of its own, so that anyone able to reach the port could grow the audit log
 * without bound: instead they are counted per client address, event and reason in
 * windows of a minute. The first refusal of a window is written at once (one failed
 * attempt is seen without delay, on every node); the ones after it in the window
 * become one entry with their count, the first and last time and a sample path cut
 * to a few hundred bytes. So a flood costs at most two entries per client, reason
 * and minute. Past a budget per client address (a token bucket) such requests are
 * answered 429 with Retry-After. Refusals of authenticated principals never come
 * here: each stays an entry of its own.
 *
 * A window's count is written when the window is a minute old (at the next
 * refusal), when this node's audit log is read and when quelld stops (a crash loses
 * at most a minute's count, never the first refusal). The tables are bounded: a
 * full table writes its oldest window early and forgets the least recently seen
 * client's bucket.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "internal.h"

#define WINDOW_MS 60000
#define NWINDOWS 256
#define NBUCKETS 1024
#define SAMPLE_MAX 256
#define WHY_MAX 200
/* Unauthenticated refusals a client address may cause at once, and per second
 * after that: well above what a client that lost its token makes, far below a
 * flood. */
#define BURST 300.0
#define REFILL_PER_S 5.0

struct window {
	bool used;
	char client[INET6_ADDRSTRLEN];
	char event[32];
	char why[WHY_MAX + 1];
	char method[16];
	char path[SAMPLE_MAX + 1];	/* the first path seen, cut */
	int64_t first;
	int64_t last;
	long count;		/* refusals after the first */
};

struct bucket {
	bool used;
	char client[INET6_ADDRSTRLEN];
	double tokens;
	int64_t at;		/* when tokens was computed */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct window windows[NWINDOWS];
static struct bucket buckets[NBUCKETS];

const char *
req_client(struct req *q)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	if (q->client[0] != '\0')
		return q->client;
	ci = MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	sa = ci != NULL ? ci->client_addr : NULL;
	if (sa != NULL && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    q->client, sizeof(q->client));
	else if (sa != NULL && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, q->client,
		    sizeof(q->client));
	if (q->client[0] == '\0')
		snprintf(q->client, sizeof(q->client), "unknown");
	return q->client;
}

/* Copies s into dst (size n) as printable ASCII: a sample must be valid JSON text
 * whatever bytes the request held. */
static void
sample(char *dst, size_t n, const char *s)
{
	size_t i;

	for (i = 0; s != NULL && s[i] != '\0' && i + 1 < n; i++)
		dst[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e ? '?' : s[i];
	dst[i] = '\0';
}

/* Writes a window: its first refusal (first), or the count of those after it. */
static void
write_window(struct engine *eng, const struct window *w, bool first)
{
	struct actor who = { .name = "anonymous", .kind = "anonymous",
	    .client = w->client };
	json_t *d = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I}", "method", w->method,
	    "path", w->path, "why", w->why, "aggregated", !first, "count",
	    (json_int_t)(first ? 1 : w->count), "first_ms", (json_int_t)w->first,
	    "last_ms", (json_int_t)w->last);
	struct qerr e;

	qerr_clear(&e);
	if (d == NULL || engine_audit_as(eng, &who, w->event, NULL, d, &e) != 0)
		log_msg(LOG_LVL_ERROR, "audit of %ld refused requests from %s failed: %s",
		    w->count, w->client, d ? e.msg : "out of memory");
	json_decref(d);
}

/* Takes the windows to write (all, or those a minute old) out of the table, into
 * out (caller frees); their number in *n. Called with mu held. */
static struct window *
take(bool all, int64_t now, size_t *n)
{
	struct window *out = NULL, *grown;
	size_t i;

	*n = 0;
	for (i = 0; i < NWINDOWS; i++) {
		if (!windows[i].used || (!all && now - windows[i].first < WINDOW_MS))
			continue;
		if (windows[i].count > 0) {
			if ((grown = realloc(out, (*n + 1) * sizeof(*out))) == NULL)
				break;	/* written at the next chance */
			out = grown;
			out[(*n)++] = windows[i];
		}
		windows[i].used = false;
	}
	return out;
}

void
refusals_flush(struct engine *eng, bool all)
{
	struct window *w;
	size_t i, n;

	pthread_mutex_lock(&mu);
	w = take(all, engine_now_ms(), &n);
	pthread_mutex_unlock(&mu);
	for (i = 0; i < n; i++)
		write_window(eng, &w[i], false);
	free(w);
}

/* Spends one token of client's bucket; false when there is none left, with the
 * seconds until there is one. Called with mu held. */
static bool
spend(const char *client, int64_t now, unsigned *retry_after)
{
	struct bucket *b = NULL, *oldest = &buckets[0];
	size_t i;

	for (i = 0; i < NBUCKETS && b == NULL; i++) {
		if (buckets[i].used && strcmp(buckets[i].client, client) == 0)
			b = &buckets[i];
		else if (!buckets[i].used || (oldest->used && buckets[i].at < oldest->at))
			oldest = &buckets[i];
	}
	if (b == NULL) {
		b = oldest;
		memset(b, 0, sizeof(*b));
		b->used = true;
		snprintf(b->client, sizeof(b->client), "%s", client);
		b->tokens = BURST;
		b->at = now;
	}
	b->tokens += (double)(now - b->at) / 1000.0 * REFILL_PER_S;
	if (b->tokens > BURST)
		b->tokens = BURST;
	b->at = now;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return true;
	}
	*retry_after = (unsigned)((1.0 - b->tokens) / REFILL_PER_S) + 1;
	return false;
}

/* Counts one refusal into its window; true when it opens the window (the caller
 * writes it at once). A full table gives up its oldest window to *evicted (written
 * by the caller). Called with mu held. */
static bool
count(const struct window *key, int64_t now, struct window *evicted)
{
	struct window *w = NULL, *slot = NULL;
	size_t i;

	evicted->used = false;
	for (i = 0; i < NWINDOWS && w == NULL; i++) {
		if (windows[i].used && strcmp(windows[i].client, key->client) == 0 &&
		    strcmp(windows[i].event, key->event) == 0 &&
		    strcmp(windows[i].why, key->why) == 0)
			w = &windows[i];
		else if (slot == NULL || (slot->used && (!windows[i].used ||
		    windows[i].first < slot->first)))
			slot = &windows[i];
	}
	if (w == NULL) {
		if (slot->used)
			*evicted = *slot;
		w = slot;
		*w = *key;
		w->used = true;
		w->first = w->last = now;
		w->count = 0;
		return true;
	}
	w->last = now;
	w->count++;
	return false;
}

void
refusals_note(struct req *q, const char *event, const char *why)
{
	struct window key, evicted;
	int64_t now = engine_now_ms();
	unsigned retry = 0;
	bool ok, first;

	/* Windows a minute old are written before this refusal could join one. */
	refusals_flush(q->api->eng, false);
	memset(&key, 0, sizeof(key));
	snprintf(key.client, sizeof(key.client), "%s", req_client(q));
	pthread_mutex_lock(&mu);
	ok = spend(key.client, now, &retry);
	pthread_mutex_unlock(&mu);
	if (!ok) {
		req_error(q, 429, "rate_limited", NULL, "too many unauthenticated requests "
		    "from %s: retry after %u s", key.client, retry);
		q->retry_after = retry;
		event = "auth.rate_limited";
		why = "too many unauthenticated requests from this address";
	}
	snprintf(key.event, sizeof(key.event), "%s", event);
	sample(key.why, sizeof(key.why), why);
	sample(key.method, sizeof(key.method), q->method);
	sample(key.path, sizeof(key.path), q->path);
	pthread_mutex_lock(&mu);
	first = count(&key, now, &evicted);
	pthread_mutex_unlock(&mu);
	if (evicted.used && evicted.count > 0)
		write_window(q->api->eng, &evicted, false);
	if (first) {
		key.first = key.last = now;
		write_window(q->api->eng, &key, true);
	}
}
