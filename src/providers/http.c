/*
 * libcurl behind http.h. One share handle per client keeps DNS answers, TLS sessions
 * and open connections across calls and threads; easy handles are kept in a small free
 * list so that a call does not pay for a new handle either. Redirects are never
 * followed: a vendor API that answers 3xx is answering wrongly, and following it could
 * carry a bearer token to another host.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <sodium.h>

#include "providers/http.h"
#include "providers/provider.h"

#ifndef QUELL_VERSION
#define QUELL_VERSION "0"
#endif

#define CONNECT_TIMEOUT_DEFAULT	5000L
#define TIMEOUT_DEFAULT		30000L
#define MAX_RESPONSE_DEFAULT	((size_t)16 << 20)
#define MAX_HEADERS		((size_t)64 << 10)
#define FREE_HANDLES_MAX	16

struct http_client {
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
	bool locks_ready;
	char *ca_file;
	char *user_agent;
	char *system;		/* for metrics; NULL: not counted */
	bool https_only;
	long connect_timeout_ms;
	long timeout_ms;
	size_t max_response;

	pthread_mutex_t mu;	/* the free list */
	CURL *free[FREE_HANDLES_MAX];
	size_t nfree;
};

/* A buffer growing up to a cap; over the cap sets over and stops the transfer. */
struct sink {
	char *buf;
	size_t len;
	size_t cap;
	size_t max;
	bool over;
	bool nomem;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void
global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct http_client *c = arg;

	(void)h;
	(void)access;
	pthread_mutex_lock(&c->locks[data]);
}

static void
share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct http_client *c = arg;

	(void)h;
	pthread_mutex_unlock(&c->locks[data]);
}

void
http_client_free(struct http_client *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nfree; i++)
		curl_easy_cleanup(c->free[i]);
	if (c->share != NULL)
		curl_share_cleanup(c->share);
	if (c->locks_ready) {
		for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&c->locks[i]);
		pthread_mutex_destroy(&c->mu);
	}
	free(c->user_agent);
	free(c->system);
	free(c->ca_file);
	free(c);
}

int
http_client_new(const struct http_options *opt, struct http_client **out, struct qerr *e)
{
	struct http_client *c;
	size_t i;
	int r = QERR_NOMEM;

	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return qerr_set(e, QERR_INTERNAL, NULL, "libcurl: %s",
		    curl_easy_strerror(global_rc));
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	c->connect_timeout_ms = opt != NULL && opt->connect_timeout_ms > 0 ?
	    opt->connect_timeout_ms : CONNECT_TIMEOUT_DEFAULT;
	c->timeout_ms = opt != NULL && opt->timeout_ms > 0 ? opt->timeout_ms :
	    TIMEOUT_DEFAULT;
	c->max_response = opt != NULL && opt->max_response > 0 ? opt->max_response :
	    MAX_RESPONSE_DEFAULT;
	if ((c->user_agent = strdup(opt != NULL && opt->user_agent != NULL ?
	    opt->user_agent : "quell/" QUELL_VERSION)) == NULL)
		goto fail;
	if (opt != NULL && opt->ca_file != NULL && (c->ca_file = strdup(opt->ca_file)) == NULL)
		goto fail;
	if (opt != NULL && opt->system != NULL && (c->system = strdup(opt->system)) == NULL)
		goto fail;
	c->https_only = opt != NULL && opt->https_only;
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	pthread_mutex_init(&c->mu, NULL);
	c->locks_ready = true;
	if ((c->share = curl_share_init()) == NULL)
		goto fail;
	if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
	    CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) !=
	    CURLSHE_OK) {
		r = qerr_set(e, QERR_INTERNAL, NULL, "libcurl: cannot set up the share handle");
		goto fail_set;
	}
	*out = c;
	return 0;
fail:
	r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
fail_set:
	http_client_free(c);
	return r;
}

static CURL *
handle_get(struct http_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->mu);
	if (c->nfree > 0)
		h = c->free[--c->nfree];
	pthread_mutex_unlock(&c->mu);
	if (h != NULL)
		curl_easy_reset(h);
	else
		h = curl_easy_init();
	return h;
}

static void
handle_put(struct http_client *c, CURL *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->nfree < FREE_HANDLES_MAX) {
		c->free[c->nfree++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	if (h != NULL)
		curl_easy_cleanup(h);
}

static bool
sink_add(struct sink *s, const char *data, size_t n)
{
	size_t want;
	char *nb;

	if (n > s->max || s->len > s->max - n) {
		s->over = true;
		return false;
	}
	if (s->len + n + 1 > s->cap) {
		want = s->cap == 0 ? 4096 : s->cap;
		while (want < s->len + n + 1)
			want *= 2;
		/* Grown by hand, not realloc: the old buffer may hold a token, and realloc
		 * would free it as it is. */
		if ((nb = malloc(want)) == NULL) {
			s->nomem = true;
			return false;
		}
		if (s->buf != NULL) {
			memcpy(nb, s->buf, s->len + 1);
			sodium_memzero(s->buf, s->cap);
			free(s->buf);
		}
		s->buf = nb;
		s->cap = want;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return true;
}

static void
sink_free(struct sink *s)
{
	if (s->buf != NULL) {
		/* Token answers carry bearer tokens: leave nothing behind in freed memory. */
		sodium_memzero(s->buf, s->cap);
		free(s->buf);
	}
	s->buf = NULL;
	s->len = s->cap = 0;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	return sink_add(arg, data, size * nmemb) ? size * nmemb : 0;
}

/* Keeps the header lines of the last answer only: a new status line starts over. */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		if (s->buf != NULL)
			sodium_memzero(s->buf, s->len + 1);
		s->len = 0;
	}
	return sink_add(s, data, n) ? n : 0;
}

static void
headers_free(struct curl_slist *l)
{
	struct curl_slist *i;

	for (i = l; i != NULL; i = i->next)
		sodium_memzero(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

static int
build_headers(const struct http_request *req, struct curl_slist **out, struct qerr *e)
{
	struct curl_slist *l = NULL, *n;
	char *line;
	size_t i, len;

	*out = NULL;
	/* No "Expect: 100-continue" round trip before small JSON bodies. */
	if ((l = curl_slist_append(NULL, "Expect:")) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (strpbrk(h->name, ":\r\n") != NULL || strpbrk(h->value, "\r\n") != NULL) {
			headers_free(l);
			return qerr_set(e, QERR_INVALID, "header",
			    "header %s: line breaks or colons in a header", h->name);
		}
		len = strlen(h->name) + strlen(h->value) + 3;
		if ((line = malloc(len)) == NULL) {
			headers_free(l);
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		}
		snprintf(line, len, "%s: %s", h->name, h->value);
		n = curl_slist_append(l, line);
		sodium_memzero(line, len);
		free(line);
		if (n == NULL) {
			headers_free(l);
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		}
		l = n;
	}
	*out = l;
	return 0;
}

static int
set_options(struct http_client *c, CURL *h, const struct http_request *req,
    struct curl_slist *hdrs, struct sink *body, struct sink *head)
{
	int bad = 0;

	bad |= curl_easy_setopt(h, CURLOPT_SHARE, c->share) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_URL, req->url) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c->https_only ? "https" :
	    "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) !=
	    CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (c->ca_file != NULL)
		bad |= curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms) !=
	    CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)c->max_response) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, body) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HEADERDATA, head) != CURLE_OK;
	if (strcmp(req->method, "GET") == 0)
		bad |= curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) != CURLE_OK;
	else {
		if (strcmp(req->method, "POST") != 0)
			bad |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method) !=
			    CURLE_OK;
		if (req->body != NULL || strcmp(req->method, "DELETE") != 0) {
			bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDS,
			    req->body != NULL ? req->body : "") != CURLE_OK;
			bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
			    (curl_off_t)(req->body != NULL ? req->body_len : 0)) != CURLE_OK;
		}
	}
	return bad ? -1 : 0;
}

static bool
method_ok(const char *m)
{
	return m != NULL && (strcmp(m, "GET") == 0 || strcmp(m, "POST") == 0 ||
	    strcmp(m, "PATCH") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0);
}

static void
observe(const struct http_client *c, const char *cls, double t0)
{
	if (c->system != NULL)
		provider_observe_call(c->system, cls, provider_clock() - t0);
}

/* Which failures mean "no answer, try later" and which will fail the same way again. */
static int
curl_failure(CURLcode cc, const struct http_request *req, const struct sink *body,
    const char *detail, struct qerr *e)
{
	const char *why = detail[0] != '\0' ? detail : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_OUT_OF_MEMORY:
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (body->nomem)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		return qerr_set(e, QERR_PERMANENT, NULL,
		    "%s %s: the answer is larger than the %zu bytes allowed", req->method,
		    req->url, body->max);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return qerr_set(e, QERR_PERMANENT, NULL, "%s %s: %s", req->method, req->url,
		    why);
	case CURLE_OPERATION_TIMEDOUT:
		return qerr_set(e, QERR_TRANSIENT, NULL, "%s %s: timed out: %s", req->method,
		    req->url, why);
	default:
		return qerr_set(e, QERR_TRANSIENT, NULL, "%s %s: %s", req->method, req->url,
		    why);
	}
}

int
http_do(struct http_client *c, const struct http_request *req,
    struct http_response *resp, struct qerr *e)
{
	struct sink body = { .max = c->max_response }, head = { .max = MAX_HEADERS };
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	CURL *h = NULL;
	CURLcode cc;
	long status = 0;
	double secs = 0, t0;
	int r = QERR_INTERNAL;

	memset(resp, 0, sizeof(*resp));
	if (!method_ok(req->method) || req->url == NULL)
		return qerr_set(e, QERR_INVALID, "method", "unsupported HTTP request");
	if ((r = build_headers(req, &hdrs, e)) != 0)
		return r;
	if ((h = handle_get(c)) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (set_options(c, h, req, hdrs, &body, &head) != 0 ||
	    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK) {
		r = qerr_set(e, QERR_INTERNAL, NULL, "libcurl refused an option");
		goto out;
	}
	t0 = provider_clock();
	cc = curl_easy_perform(h);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	if (cc != CURLE_OK) {
		observe(c, "transport", t0);
		r = curl_failure(cc, req, &body, errbuf, e);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	observe(c, provider_http_class(status), t0);
	curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &secs);
	if (body.buf == NULL && !sink_add(&body, "", 0)) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (head.buf == NULL && !sink_add(&head, "", 0)) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	resp->status = status;
	resp->body = body.buf;
	resp->len = body.len;
	resp->headers = head.buf;
	resp->seconds = secs;
	body.buf = head.buf = NULL;
	r = 0;
out:
	sink_free(&head);
	sink_free(&body);
	if (h != NULL) {
		/* Drop references to this call's header list and buffers before reuse. */
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
	}
	handle_put(c, h);
	headers_free(hdrs);
	return r;
}

const char *
http_header_get(const struct http_response *resp, const char *name, char *buf,
    size_t len)
{
	size_t nlen = strlen(name), vlen;
	const char *line, *end, *v;

	if (resp->headers == NULL || len == 0)
		return NULL;
	for (line = resp->headers; *line != '\0'; line = end + (*end != '\0')) {
		end = line + strcspn(line, "\n");
		if ((size_t)(end - line) <= nlen || line[nlen] != ':' ||
		    strncasecmp(line, name, nlen) != 0)
			continue;
		v = line + nlen + 1;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		vlen = (size_t)(end - v);
		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == ' ' ||
		    v[vlen - 1] == '\t'))
			vlen--;
		if (vlen >= len)
			vlen = len - 1;
		memcpy(buf, v, vlen);
		buf[vlen] = '\0';
		return buf;
	}
	return NULL;
}

void
http_response_clear(struct http_response *resp)
{
	if (resp == NULL)
		return;
	/* A token answer's body holds the token; headers may carry cookies. */
	if (resp->body != NULL) {
		sodium_memzero(resp->body, resp->len);
		free(resp->body);
	}
	if (resp->headers != NULL) {
		sodium_memzero(resp->headers, strlen(resp->headers));
		free(resp->headers);
	}
	memset(resp, 0, sizeof(*resp));
}

char *
http_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), i, o = 0;
	char *out;

	if (n > (SIZE_MAX - 1) / 3 || (out = malloc(n * 3 + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
		    ch == '~')
			out[o++] = (char)ch;
		else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return out;
}
