/*
 * The transport: libmicrohttpd listening (optionally TLS), collecting bounded
 * request bodies, authenticating the caller and handing the request to the
 * console (web.c) or the routes; the answer helpers are request.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rbac.h"
#include "core/text.h"
#include "internal.h"
#include "web.h"

/* An API token (qt_<hex>.<secret>) has one dot; a compact JWS has two. */
static bool
looks_like_jwt(const char *t)
{
	const char *dot = strchr(t, '.');

	return dot != NULL && strchr(dot + 1, '.') != NULL;
}

/* A bearer JWT from the [oidc] issuer: the principal, with its claims kept. */
static int
oidc_authenticate(struct req *q, const char *token, struct qerr *e)
{
	int r;

	if ((r = oidc_verify(q->api->oidc, token, &q->claims, e)) != 0)
		return r;
	q->has_claims = true;
	if (asprintf(&q->who.id, "oidc:%s", q->claims.subject) < 0) {
		q->who.id = NULL;
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	if ((q->who.name = strdup(q->claims.username)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

/* Who is calling; false (with the 401 answer set and audited) if nobody valid. */
static bool
authenticate(struct req *q)
{
	const char *h = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	struct qerr e;
	int r;

	qerr_clear(&e);
	/* The console's session cookie stands in for a bearer token (web.c). */
	if (h == NULL && q->session_cookie)
		return web_authenticate(q);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		req_error(q, 401, "unauthenticated", NULL,
		    "send an API token: Authorization: Bearer <token>");
		req_audit_denial(q, "auth.failed", "no bearer token");
		return false;
	}
	q->bearer = true;
	if (q->api->oidc != NULL && looks_like_jwt(h + 7))
		r = oidc_authenticate(q, h + 7, &e);
	else
		r = auth_token_check(q->api->st, h + 7, &q->who, &e);
	if (r != 0) {
		if (r == QERR_UNAUTHENTICATED) {
			req_error(q, 401, "unauthenticated", NULL, "%s", e.msg);
			req_audit_denial(q, "auth.failed", e.msg);
		} else
			req_qerr(q, r, &e);
		return false;
	}
	if (!q->has_claims && !rbac_role_perms(q->api->cfg, q->who.role, &q->perms))
		q->perms = 0;
	return true;
}


static int
collect(struct req *q, const char *data, size_t size)
{
	size_t max = q->api->cfg->max_body;
	char *nb;

	if (q->too_large || q->len + size > max) {
		q->too_large = true;
		return 0;
	}
	if (q->len + size + 1 > q->cap) {
		q->cap = q->len + size + 1 > 2 * q->cap ? q->len + size + 1 : 2 * q->cap;
		if ((nb = realloc(q->body, q->cap)) == NULL)
			return -1;
		q->body = nb;
	}
	memcpy(q->body + q->len, data, size);
	q->len += size;
	q->body[q->len] = '\0';
	return 0;
}

static void
handle(struct req *q)
{
	if (strcmp(q->path, "/healthz") == 0 && strcmp(q->method, "GET") == 0) {
		q->route = "/healthz";
		req_reply(q, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	/* Unauthenticated like /healthz: a load balancer's probe carries no token. */
	if (strcmp(q->path, "/readyz") == 0 && strcmp(q->method, "GET") == 0) {
		q->route = "/readyz";
		route_readyz(q);
		return;
	}
	/* Discovery and pushed SETs carry no quell credential (routes_ssf.c). */
	if (routes_ssf_public(q))
		return;
	if (!authenticate(q) || !req_authorize(q))
		return;
	if (q->too_large) {
		req_error(q, 413, "too_large", "body", "the body is larger than %zu bytes",
		    q->api->cfg->max_body);
		return;
	}
	routes_dispatch(q);
}

/* What the query-string checks found first: the parameter to name, or nothing. */
struct arg_check {
	char bad[72];
};

static enum MHD_Result
arg_check(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
    const char *value, size_t value_size)
{
	struct arg_check *c = cls;

	(void)kind;
	/* MHD decodes %00 and keeps the length: a C string would end at the NUL and
	 * the rest of the value would be silently dropped. */
	if (strlen(key) != key_size || (value != NULL && strlen(value) != value_size)) {
		snprintf(c->bad, sizeof(c->bad), "%.64s", key);
		if (!text_printable(c->bad, false))
			snprintf(c->bad, sizeof(c->bad), "%s", "query");
		return MHD_NO;
	}
	return MHD_YES;
}

struct length_check {
	const char *first;
	bool conflict;
};

static enum MHD_Result
length_check(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct length_check *c = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
		return MHD_YES;
	if (c->first == NULL)
		c->first = value ? value : "";
	else if (strcmp(c->first, value ? value : "") != 0)
		c->conflict = true;
	return MHD_YES;
}

/*
 * Refusals that need nothing but the request line and headers: false with the
 * answer set. Two Content-Length headers that disagree mean the body's end depends
 * on who reads it (request smuggling), so the connection is closed after the 400.
 */
static bool
request_sane(struct req *q)
{
	struct length_check lc = { NULL, false };
	struct arg_check ac;

	MHD_get_connection_values(q->conn, MHD_HEADER_KIND, length_check, &lc);
	if (lc.conflict) {
		q->close = true;
		req_error(q, 400, "invalid_input", "Content-Length",
		    "the request has Content-Length headers that disagree");
		return false;
	}
	memset(&ac, 0, sizeof(ac));
	MHD_get_connection_values_n(q->conn, MHD_GET_ARGUMENT_KIND, arg_check, &ac);
	if (ac.bad[0] != '\0') {
		req_error(q, 400, "invalid_input", ac.bad,
		    "query parameter %s must not hold a NUL character", ac.bad);
		return false;
	}
	return true;
}

/* A request slower than this is logged (with its route, not its body or query). */
#define SLOW_REQUEST_US 1000000

/* Counts the request by route pattern (never the raw path: ids would make a series
 * per identity) and status, and logs a slow one. */
static void
observe_request(const struct req *q)
{
	const char *route = q->route ? q->route : strncmp(q->path, "/api/", 5) == 0 ?
	    "unmatched" : "console";
	int64_t us = clock_mono_us() - q->started_us;
	char code[16];

	snprintf(code, sizeof(code), "%d", q->status > 0 ? q->status : 0);
	QM_ADD(QM_HTTP_REQUESTS, 1, route, code);
	QM_OBSERVE(QM_HTTP_SECONDS, (double)us / 1e6, route);
	if (us >= SLOW_REQUEST_US)
		log_event(LOG_LVL_WARN, "http.slow", LOG_FIELDS(LOG_S("method", q->method),
		    LOG_S("route", route), LOG_I("status", q->status), LOG_I("duration_ms",
		    us / 1000)), "slow request: %s %s took %lld ms", q->method, route,
		    (long long)(us / 1000));
}

/*
 * One struct req is kept per web server thread between requests: allocating a new
 * one (1.7 kB, past malloc's small bins) made malloc consolidate its fast bins on
 * every request. A thread's spare is freed when it exits.
 */
static pthread_key_t spare_key;
static bool spare_ok;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void
spare_make(void)
{
	spare_ok = pthread_key_create(&spare_key, free) == 0;
}

static struct req *
req_new(void)
{
	struct req *q;

	pthread_once(&spare_once, spare_make);
	if (!spare_ok || (q = pthread_getspecific(spare_key)) == NULL)
		return calloc(1, sizeof(*q));
	(void)pthread_setspecific(spare_key, NULL);
	memset(q, 0, sizeof(*q));
	return q;
}

static void
req_free(struct req *q)
{
	if (spare_ok && pthread_getspecific(spare_key) == NULL &&
	    pthread_setspecific(spare_key, q) == 0)
		return;
	free(q);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *data, size_t *size, void **con_cls)
{
	struct req *q = *con_cls;
	enum MHD_Result ret;

	(void)version;
	if (q == NULL) {
		if ((q = req_new()) == NULL)
			return MHD_NO;
		q->api = cls;
		q->conn = conn;
		q->method = method;
		q->path = url;
		q->started_us = clock_mono_us();
		q->session_cookie = web_has_session(q);
		*con_cls = q;
		conn_guard_request_started(conn);
		/* Refused before any body is read; MHD discards the rest. */
		if (!request_sane(q))
			return req_send_json(q, NULL);
		return MHD_YES;
	}
	if (q->resume != NULL) {
		/* A suspended handler's work is done (its connection was resumed). */
		q->suspended = false;
		q->resume(q);
		return req_send_json(q, NULL);
	}
	if (*size != 0) {
		if (collect(q, data, *size) != 0)
			return MHD_NO;
		*size = 0;
		return MHD_YES;
	}
	if (web_request(q, &ret))
		return ret;
	handle(q);
	/* Suspended: the answer comes when the handler's work resumes it. */
	if (q->suspended)
		return MHD_YES;
	return req_send_json(q, NULL);
}

static void
on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	conn_guard_request_ended(conn);
	if (q == NULL)
		return;
	if (q->job_free != NULL)
		q->job_free(q->job);
	observe_request(q);
	free(q->text);
	json_decref(q->resp);
	free(q->grants.g);
	principal_clear(&q->who);
	oidc_claims_clear(&q->claims);
	free(q->body);
	req_free(q);
	*con_cls = NULL;
}

static int
parse_listen(const char *s, struct sockaddr_in *sa, struct qerr *e)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	memset(sa, 0, sizeof(*sa));
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return qerr_set(e, QERR_CONFIG, "listen", "listen must be ADDRESS:PORT, not '%s'",
		    s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return qerr_set(e, QERR_CONFIG, "listen",
		    "listen must be an IPv4 ADDRESS:PORT, not '%s'", s);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

int
api_listen_socket(const struct config *cfg, int *fd, struct qerr *e)
{
	struct sockaddr_in sa;
	int one = 1, r;

	*fd = -1;
	if ((r = parse_listen(cfg->listen, &sa, e)) != 0)
		return r;
	if ((*fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(*fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(*fd, 128) != 0) {
		r = qerr_set(e, QERR_IO, "listen", "cannot listen on %s: %s", cfg->listen,
		    strerror(errno));
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return r;
	}
	return 0;
}

static char *
slurp(const char *path, struct qerr *e)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL) {
		qerr_set(e, QERR_CONFIG, NULL, "cannot read %s", path);
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < 1 << 20 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = calloc(1, (size_t)n + 1)) != NULL &&
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf == NULL)
		qerr_set(e, QERR_CONFIG, NULL, "cannot read %s", path);
	return buf;
}

int
api_config_check(const struct config *cfg, struct qerr *e)
{
	char *cert = NULL, *key = NULL, why[sizeof(e->msg)];
	struct sockaddr_in sa;
	int r;

	/* The message names the file and section around the module's own reason. */
	if ((r = parse_listen(cfg->listen, &sa, e)) != 0) {
		snprintf(why, sizeof(why), "%s", e->msg);
		return qerr_set(e, r, "listen", "%s: [server] %s", cfg->file, why);
	}
	if (cfg->tls_cert == NULL)
		return 0;
	r = QERR_CONFIG;
	if ((cert = slurp(cfg->tls_cert, e)) == NULL ||
	    (key = slurp(cfg->tls_key, e)) == NULL) {
		snprintf(why, sizeof(why), "%s", e->msg);
		qerr_set(e, QERR_CONFIG, cert ? "tls_key" : "tls_cert", "%s: [server] %s: %s",
		    cfg->file, cert ? "tls_key" : "tls_cert", why);
		goto out;
	}
	if (strstr(cert, "-----BEGIN CERTIFICATE-----") == NULL ||
	    strstr(key, "PRIVATE KEY-----") == NULL) {
		qerr_set(e, QERR_CONFIG, strstr(cert, "-----BEGIN CERTIFICATE-----") ?
		    "tls_key" : "tls_cert", "%s: [server] %s is not PEM", cfg->file,
		    strstr(cert, "-----BEGIN CERTIFICATE-----") ? "tls_key" : "tls_cert");
		goto out;
	}
	r = 0;
out:
	if (key != NULL) {
		sodium_memzero(key, strlen(key));
		free(key);
	}
	free(cert);
	return r;
}

int
api_start(const struct config *cfg, struct store *st, struct engine *eng,
    int listen_fd, struct api **out, struct qerr *e)
{
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
	struct api *api;
	int r;

	if ((r = parse_listen(cfg->listen, &sa, e)) != 0)
		return r;
	if ((api = calloc(1, sizeof(*api))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	api->cfg = cfg;
	api->st = st;
	api->eng = eng;
	if (cfg->tls_cert != NULL) {
		if ((api->tls_cert = slurp(cfg->tls_cert, e)) == NULL ||
		    (api->tls_key = slurp(cfg->tls_key, e)) == NULL) {
			api_stop(api);
			return QERR_CONFIG;
		}
		flags |= MHD_USE_TLS;
	}
	if ((r = web_open(cfg, cfg->tls_cert != NULL, &api->web, e)) != 0 ||
	    (r = oidc_open(cfg, &api->oidc, e)) != 0 ||
	    (r = conn_guard_open(cfg->header_timeout_s, &api->guard, e)) != 0 ||
	    (r = hunt_pool_open(st, cfg->hunt_workers, &api->hunts, e)) != 0) {
		api_stop(api);
		return r;
	}
	routes_ssf_wait_open();
	/* A socket handed over by a reload replaces the address: MHD_OPTION_ARRAY
	 * carries either an int or a pointer without a varargs cast. */
	struct MHD_OptionItem where[] = {
		listen_fd >= 0 ? (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, listen_fd,
		    NULL } : (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &sa },
		{ MHD_OPTION_END, 0, NULL },
	};
	api->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, api,
	    MHD_OPTION_ARRAY, where,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)4,
	    /* One client address holds at most its share, so the rest of the
	     * connection limit is always left to the others. */
	    MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_client,
	    MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s,
	    MHD_OPTION_NOTIFY_CONNECTION, conn_guard_notify, api->guard,
	    MHD_OPTION_NOTIFY_COMPLETED, on_done, api,
	    api->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, api->tls_cert,
	    MHD_OPTION_HTTPS_MEM_KEY, api->tls_key,
	    MHD_OPTION_END);
	if (api->d == NULL) {
		api_stop(api);
		return qerr_set(e, QERR_IO, "listen", "cannot listen on %s", cfg->listen);
	}
	info = MHD_get_daemon_info(api->d, MHD_DAEMON_INFO_BIND_PORT);
	api->port = info ? info->port : 0;
	*out = api;
	return 0;
}

int
api_quiesce(struct api *api)
{
	MHD_socket fd;

	if (api == NULL || api->d == NULL)
		return -1;
	fd = MHD_quiesce_daemon(api->d);
	return fd == MHD_INVALID_SOCKET ? -1 : fd;
}

void
api_stop(struct api *api)
{
	if (api == NULL)
		return;
	/* Hunts and long polls resume their suspended connections first: MHD cannot
	 * stop with one. */
	hunt_pool_close(api->hunts);
	routes_ssf_wait_close();
	if (api->d != NULL)
		MHD_stop_daemon(api->d);
	/* Refusals still being counted are written before quelld goes. */
	refusals_flush(api->eng, true);
	conn_guard_close(api->guard);
	web_close(api->web);
	oidc_close(api->oidc);
	if (api->tls_key != NULL) {
		sodium_memzero(api->tls_key, strlen(api->tls_key));
		free(api->tls_key);
	}
	free(api->tls_cert);
	free(api);
}

uint16_t
api_port(const struct api *api)
{
	return api->port;
}
