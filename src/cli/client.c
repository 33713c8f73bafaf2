/*
 * libcurl client of quelld's API. Buffers that may hold the token or a newly
 * created one are zeroed before they are freed; TLS verification is never turned
 * off, a private CA is added with --ca.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli/client.h"

/* Larger than any page of 1000 actions or audit entries. */
#define MAX_ANSWER (32u << 20)

struct client {
	CURL *curl;
	char *base;
	char *ca;
	struct curl_slist *hdr;		/* requests without a body */
	struct curl_slist *hdr_json;	/* requests with a JSON body */
	char errbuf[CURL_ERROR_SIZE];
};

struct buf {
	char *p;
	size_t len, cap;
	bool too_large;
};

static void
buf_free(struct buf *b)
{
	if (b->p != NULL)
		explicit_bzero(b->p, b->cap);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Grows by copying, not realloc, so no unzeroed copy of an answer is left behind. */
static size_t
on_data(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t len = size * n, cap;
	char *p;

	if (b->len + len + 1 > MAX_ANSWER) {
		b->too_large = true;
		return 0;
	}
	if (b->len + len + 1 > b->cap) {
		for (cap = b->cap ? b->cap : 4096; cap < b->len + len + 1; cap *= 2)
			continue;
		if ((p = malloc(cap)) == NULL)
			return 0;
		if (b->p != NULL)
			memcpy(p, b->p, b->len);
		buf_free(&(struct buf){ .p = b->p, .cap = b->cap });
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return len;
}

static void
slist_wipe(struct curl_slist *l)
{
	struct curl_slist *h;

	for (h = l; h != NULL; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(l);
}

void
client_close(struct client *c)
{
	if (c == NULL)
		return;
	slist_wipe(c->hdr_json);
	slist_wipe(c->hdr);
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	free(c->ca);
	free(c->base);
	free(c);
}

static struct curl_slist *
headers(const char *auth, const char *content_type)
{
	struct curl_slist *l = NULL, *n;
	const char *h[] = { auth, "Accept: application/json", content_type };
	size_t k;

	for (k = 0; k < sizeof(h) / sizeof(h[0]); k++) {
		if ((n = curl_slist_append(l, h[k])) == NULL) {
			slist_wipe(l);
			return NULL;
		}
		l = n;
	}
	return l;
}

static bool
token_ok(const char *t)
{
	if (*t == '\0')
		return false;
	for (; *t != '\0'; t++)
		if (*t <= ' ' || *t > '~')
			return false;
	return true;
}

int
client_open(const char *url, const char *token, const char *ca, struct client **out,
    struct qerr *e)
{
	struct client *c;
	char *auth = NULL;
	int r = QERR_NOMEM;

	*out = NULL;
	if (!token_ok(token))
		return qerr_set(e, QERR_CONFIG, "token",
		    "the API token is empty or holds spaces or control characters");
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->base = strdup(url)) == NULL ||
	    (ca != NULL && (c->ca = strdup(ca)) == NULL) ||
	    (c->curl = curl_easy_init()) == NULL ||
	    asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
		auth = NULL;
		goto out;
	}
	/* An empty "Content-Type:" stops curl adding a form type to bodiless POSTs. */
	if ((c->hdr = headers(auth, "Content-Type:")) == NULL ||
	    (c->hdr_json = headers(auth, "Content-Type: application/json")) == NULL)
		goto out;
	*out = c;
	c = NULL;
	r = 0;
out:
	if (auth != NULL)
		explicit_bzero(auth, strlen(auth));
	free(auth);
	client_close(c);
	return r < 0 ? qerr_set(e, r, NULL, "out of memory") : 0;
}

static void
setup(struct client *c, const char *method, const char *url, const char *body,
    struct buf *b)
{
	CURL *h = c->curl;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	/* Sync of a large directory may be silent for a while; a stalled link is not. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 600L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "quell/0.1");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, body != NULL ? c->hdr_json : c->hdr);
	/* A body goes with POST and PUT alike; CUSTOMREQUEST only renames the method. */
	if (strcmp(method, "POST") == 0 || body != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	c->errbuf[0] = '\0';
}

static int
transport_error(const struct client *c, CURLcode cc, const struct buf *b, struct qerr *e)
{
	if (b->too_large)
		return qerr_set(e, QERR_TOO_LARGE, NULL,
		    "quelld's answer is larger than %u bytes", MAX_ANSWER);
	return qerr_set(e, QERR_TRANSIENT, NULL, "cannot reach quelld at %s: %s", c->base,
	    c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(cc));
}

static int
status_code(long status)
{
	switch (status) {
	case 400: return QERR_INVALID;
	case 401: return QERR_UNAUTHENTICATED;
	case 403: return QERR_DENIED;
	case 404: return QERR_NOT_FOUND;
	case 409: return QERR_CONFLICT;
	case 413: return QERR_TOO_LARGE;
	}
	return status >= 500 ? QERR_TRANSIENT : QERR_PERMANENT;
}

/* Turns {"error":{"code","message","field","action_id"}} into e. */
static int
api_error(long status, const struct buf *b, struct qerr *e)
{
	json_t *j = b->p != NULL ? json_loads(b->p, 0, NULL) : NULL;
	const json_t *err = json_object_get(j, "error");
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	const char *field = json_string_value(json_object_get(err, "field"));
	const char *act = json_string_value(json_object_get(err, "action_id"));
	int r = status_code(status);

	if (msg != NULL)
		qerr_set(e, r, field, "%s%s%s%s", msg, act ? " (recorded as action " : "",
		    act ? act : "", act ? ")" : "");
	else
		qerr_set(e, r, field, "quelld answered HTTP %ld", status);
	e->status = (int)status;
	snprintf(e->vendor_code, sizeof(e->vendor_code), "%s", code ? code : "");
	json_decref(j);
	return r;
}

static int
parse_answer(const struct buf *b, long status, json_t **answer, struct qerr *e)
{
	json_error_t je;

	if (b->len == 0)
		return 0;
	if ((*answer = json_loadb(b->p, b->len, 0, &je)) == NULL) {
		qerr_set(e, QERR_PERMANENT, NULL, "quelld's answer is not JSON: %s", je.text);
		e->status = (int)status;
		return QERR_PERMANENT;
	}
	return 0;
}

int
client_call(struct client *c, const char *method, const char *path, json_t *body,
    json_t **answer, struct qerr *e)
{
	struct buf b = { 0 };
	char *url = NULL, *text = NULL;
	long status = 0;
	CURLcode cc;
	int r = QERR_NOMEM;

	*answer = NULL;
	if (asprintf(&url, "%s%s", c->base, path) < 0) {
		url = NULL;
		qerr_set(e, r, NULL, "out of memory");
		goto out;
	}
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		qerr_set(e, r, NULL, "out of memory");
		goto out;
	}
	setup(c, method, url, text, &b);
	if ((cc = curl_easy_perform(c->curl)) != CURLE_OK) {
		r = transport_error(c, cc, &b, e);
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299)
		r = api_error(status, &b, e);
	else
		r = parse_answer(&b, status, answer, e);
out:
	buf_free(&b);
	free(text);
	free(url);
	return r;
}

char *
client_escape(struct client *c, const char *s)
{
	char *esc, *copy;

	if ((esc = curl_easy_escape(c->curl, s, 0)) == NULL)
		return NULL;
	copy = strdup(esc);
	curl_free(esc);
	return copy;
}
