/*
 * The SIEM forwarders (siem.h): a thread per [siem] section reads the audit log from
 * its durable cursor, frames each entry (RFC 5425 octet counting over TCP and TLS, a
 * datagram each over UDP), writes a batch, waits for the server's TCP stack to
 * acknowledge it, then moves the cursor. Sockets are non-blocking and every wait is
 * short, so a stop never waits on a SIEM that hangs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "core/siem_format.h"
#include "core/version.h"
#include "engine/engine.h"
#include "engine/siem.h"
#include "engine/wake.h"

#define BATCH_MAX	256		/* entries per write and cursor update */
#define CONNECT_MS	10000		/* connect and TLS handshake */
#define ACK_MS		30000		/* for the server to acknowledge a batch */
#define IDLE_WAIT_MS	1000		/* other processes' appends are seen by then */
#define BACKOFF_MIN_MS	200
#define BACKOFF_MAX_MS	10000
/* The cursor is written at most this often (and when idle or stopping): one write
 * transaction per batch would compete with the appends themselves for the store's
 * single writer. A crash sends again what came after the last write: duplicates,
 * which at least once allows, never a gap. */
#define CURSOR_SAVE_MS	500
/*
 * A server's TCP stack acknowledges bytes its program has not read yet, and a server
 * that stops with them unread (rsyslog on SIGTERM) drops them. So an entry counts as
 * delivered only once RESEND_BYTES more have been acknowledged after it on the same
 * connection, or the connection stayed up CONFIRM_MS after the last acknowledgement:
 * when the server ends a connection, what it may have dropped goes again.
 */
#define RESEND_BYTES	(256 * 1024)
#define CONFIRM_MS	1000
#define UNCONFIRMED_MAX	1024		/* batches held; the oldest is confirmed first */

struct sink {
	const struct siem_config *cfg;
	struct store *st;
	const char *node;
	SSL_CTX *ctx;			/* TLS only */
	pthread_t thread;
	bool started;
	_Atomic bool stop;
	int fd;
	SSL *ssl;
	int64_t cursor;			/* delivered (confirmed) up to here */
	int64_t saved;			/* the cursor as last written to the store */
	int64_t saved_at;		/* when, ms */
	int64_t acked;			/* acknowledged on this connection up to here */
	int64_t acked_at;		/* when the last batch was, ms */
	int64_t resend_to;		/* entries up to here are being sent again */
	struct unconfirmed {
		int64_t last;		/* the batch's last seq */
		size_t bytes;
	} unc[UNCONFIRMED_MAX];		/* acknowledged, not yet confirmed, oldest first */
	size_t unc_head, unc_n, unc_bytes;
	bool standby;			/* another node of the cluster forwards */
	int64_t lease;			/* its lease note (engine_lease_hold) */
	pthread_mutex_t mu;		/* guards the status fields below */
	bool connected;
	int64_t sent, resent, connects;
	char error[256];
};

struct siem {
	struct sink *sinks;
	size_t n;
};

/* OpenSSL's reason for the last failure, or fallback; clears the error queue. */
static const char *
ssl_reason(char *buf, size_t n, const char *fallback)
{
	unsigned long code = ERR_get_error();

	if (code == 0)
		snprintf(buf, n, "%s", fallback);
	else
		ERR_error_string_n(code, buf, n);
	ERR_clear_error();
	return buf;
}

/* The TLS client context of s: the CA to verify the server with, and the client's
 * certificate and key when set (OpenSSL reads the key; quell never holds it). */
static int
make_ctx(const struct siem_config *s, SSL_CTX **out, struct qerr *e)
{
	const struct system_config loc = { .file = s->file };
	SSL_CTX *ctx;
	char why[256];
	int r = QERR_CONFIG;

	*out = NULL;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, s->ca_file, NULL) != 1) {
		config_error(e, &loc, s->line, "ca_file", "siem '%s': cannot load ca_file "
		    "%s: %s", s->name, s->ca_file, ssl_reason(why, sizeof(why),
		    "no certificate"));
		goto out;
	}
	if (s->cert_file != NULL &&
	    (SSL_CTX_use_certificate_chain_file(ctx, s->cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, s->key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)) {
		config_error(e, &loc, s->line, "cert_file", "siem '%s': cannot use "
		    "cert_file %s with key_file %s: %s", s->name, s->cert_file, s->key_file,
		    ssl_reason(why, sizeof(why), "they do not match"));
		goto out;
	}
	*out = ctx;
	ctx = NULL;
	r = 0;
out:
	SSL_CTX_free(ctx);
	return r;
}

int
siem_check(const struct config *cfg, struct qerr *e)
{
	SSL_CTX *ctx;
	size_t i;
	int r;

	for (i = 0; i < cfg->nsiems; i++) {
		if (cfg->siems[i].protocol != SIEM_TLS)
			continue;
		if ((r = make_ctx(&cfg->siems[i], &ctx, e)) != 0)
			return r;
		SSL_CTX_free(ctx);
	}
	return 0;
}

static void
set_status(struct sink *k, bool connected, const char *error)
{
	bool was;
	char prev[256];

	pthread_mutex_lock(&k->mu);
	was = k->connected;
	snprintf(prev, sizeof(prev), "%s", k->error);
	k->connected = connected;
	snprintf(k->error, sizeof(k->error), "%s", error != NULL ? error : "");
	pthread_mutex_unlock(&k->mu);
	/* Once per change, not once per retry. */
	if (error != NULL && (was || prev[0] == '\0'))
		log_msg(LOG_LVL_WARN, "siem %s (%s:%d) unreachable, the audit log waits "
		    "from entry %" PRId64 ": %s", k->cfg->name, k->cfg->host, k->cfg->port,
		    k->cursor + 1, error);
	else if (error == NULL && connected && !was)
		log_msg(LOG_LVL_INFO, "siem %s (%s:%d) connected, delivering from audit "
		    "entry %" PRId64, k->cfg->name, k->cfg->host, k->cfg->port, k->cursor + 1);
}

static void
disconnect(struct sink *k)
{
	if (k->ssl != NULL) {
		/* No close_notify: a server that reads it would not tell us anything
		 * more, and waiting for it could hang. */
		SSL_free(k->ssl);
		k->ssl = NULL;
	}
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	pthread_mutex_lock(&k->mu);
	k->connected = false;
	pthread_mutex_unlock(&k->mu);
}

/* Waits up to ms for events on fd, in slices so that a stop is seen; 1 ready,
 * 0 timed out or stopping, -1 error. */
static int
wait_fd(struct sink *k, short events, int ms)
{
	struct pollfd p = { .fd = k->fd, .events = events };
	int r, slice;

	while (ms > 0 && !atomic_load(&k->stop)) {
		slice = ms < 200 ? ms : 200;
		r = poll(&p, 1, slice);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
		ms -= slice;
	}
	return 0;
}

static int
tcp_connect(struct sink *k, char *why, size_t n)
{
	const struct siem_config *c = k->cfg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC }, *res = NULL, *ai;
	char port[16];
	socklen_t len;
	int err = 0, rc, fd = -1;

	hints.ai_socktype = c->protocol == SIEM_UDP ? SOCK_DGRAM : SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", c->port);
	if ((rc = getaddrinfo(c->host, port, &hints, &res)) != 0) {
		snprintf(why, n, "cannot resolve %s: %s", c->host, gai_strerror(rc));
		return -1;
	}
	snprintf(why, n, "no address for %s", c->host);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0)
			continue;
		k->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && wait_fd(k, POLLOUT, CONNECT_MS) == 1)) {
			len = sizeof(err);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
				break;
		} else
			err = errno;
		snprintf(why, n, "connect: %s", strerror(err ? err : ETIMEDOUT));
		close(fd);
		k->fd = fd = -1;
	}
	freeaddrinfo(res);
	return fd >= 0 ? 0 : -1;
}

/* The TLS handshake on k->fd: the server's certificate must chain to ca_file and
 * name server_name (default host), as a DNS name or an IP address. */
static int
tls_handshake(struct sink *k, char *why, size_t n)
{
	const struct siem_config *c = k->cfg;
	const char *name = c->server_name != NULL ? c->server_name : c->host;
	struct in6_addr a6;
	bool ip = inet_pton(AF_INET, name, &a6) == 1 || inet_pton(AF_INET6, name, &a6) == 1;
	int rc, err;
	long v;
	char buf[200];

	if ((k->ssl = SSL_new(k->ctx)) == NULL || SSL_set_fd(k->ssl, k->fd) != 1) {
		snprintf(why, n, "TLS: %s", ssl_reason(buf, sizeof(buf), "out of memory"));
		return -1;
	}
	if (ip)
		rc = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k->ssl), name);
	else
		rc = SSL_set_tlsext_host_name(k->ssl, name) == 1 &&
		    SSL_set1_host(k->ssl, name) == 1;
	if (rc != 1) {
		snprintf(why, n, "TLS: bad server name %s", name);
		return -1;
	}
	for (;;) {
		if ((rc = SSL_connect(k->ssl)) == 1)
			return 0;
		err = SSL_get_error(k->ssl, rc);
		if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) &&
		    wait_fd(k, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, CONNECT_MS) == 1)
			continue;
		if ((v = SSL_get_verify_result(k->ssl)) != X509_V_OK)
			snprintf(why, n, "TLS: the server's certificate (expected %s) is "
			    "refused: %s", name, X509_verify_cert_error_string(v));
		else
			snprintf(why, n, "TLS handshake: %s", ssl_reason(buf, sizeof(buf),
			    err == SSL_ERROR_SYSCALL ? "connection closed" : "failed"));
		ERR_clear_error();
		return -1;
	}
}

static int
sink_connect(struct sink *k, char *why, size_t n)
{
	if (tcp_connect(k, why, n) != 0)
		return -1;
	if (k->cfg->protocol == SIEM_TLS && tls_handshake(k, why, n) != 0) {
		disconnect(k);
		return -1;
	}
	pthread_mutex_lock(&k->mu);
	k->connects++;
	pthread_mutex_unlock(&k->mu);
	return 0;
}

/*
 * Whether the server closed or reset the connection since the last batch. A syslog
 * server sends no data, but a TLS 1.3 one may send session tickets, which are read
 * and dropped here; anything else readable (EOF, close_notify, a reset) means the
 * server is gone.
 */
static bool
peer_gone(struct sink *k)
{
	struct pollfd p = { .fd = k->fd, .events = POLLIN | POLLRDHUP };
	char buf[512];
	ssize_t n;
	int rc;

	if (k->cfg->protocol == SIEM_UDP)
		return false;
	if (poll(&p, 1, 0) == 0)
		return false;
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
		return true;
	if (k->ssl == NULL) {
		while ((n = recv(k->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			;
		return n == 0 || (errno != EAGAIN && errno != EINTR);
	}
	while ((rc = SSL_read(k->ssl, buf, sizeof(buf))) > 0)
		;
	rc = SSL_get_error(k->ssl, rc);
	ERR_clear_error();
	return rc != SSL_ERROR_WANT_READ && rc != SSL_ERROR_WANT_WRITE;
}

static int
write_all(struct sink *k, const char *buf, size_t len, char *why, size_t n)
{
	size_t off = 0;
	ssize_t w;
	int rc, err;
	char tmp[200];

	while (off < len) {
		if (atomic_load(&k->stop)) {
			snprintf(why, n, "stopping");
			return -1;
		}
		if (k->ssl != NULL) {
			/* OpenSSL writes whole records: the same buffer is offered again
			 * after WANT_WRITE, as it requires. */
			rc = SSL_write(k->ssl, buf + off, (int)(len - off > 1 << 20 ? 1 << 20 :
			    len - off));
			if (rc > 0) {
				off += (size_t)rc;
				continue;
			}
			err = SSL_get_error(k->ssl, rc);
			if ((err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) &&
			    wait_fd(k, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			    ACK_MS) >= 0)
				continue;
			snprintf(why, n, "TLS write: %s", ssl_reason(tmp, sizeof(tmp),
			    err == SSL_ERROR_SYSCALL ? strerror(errno) : "failed"));
			return -1;
		}
		w = send(k->fd, buf + off, len - off, MSG_NOSIGNAL);
		if (w >= 0) {
			off += (size_t)w;
			continue;
		}
		if ((errno == EAGAIN || errno == EINTR) && wait_fd(k, POLLOUT, ACK_MS) >= 0)
			continue;
		snprintf(why, n, "write: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * What "acknowledged" means: the kernel's send queue of the socket is empty (every
 * byte written was ACKed by the server's TCP stack) and the connection is still
 * established (the server had not closed it, so it was still reading). Not an
 * application-level acknowledgement: syslog over TCP has none.
 */
static int
wait_acked(struct sink *k, char *why, size_t n)
{
	struct tcp_info ti;
	struct timespec ts;
	socklen_t len;
	long waited = 0, step = 1;
	int outq;

	if (k->cfg->protocol == SIEM_UDP)
		return 0;
	for (;;) {
		len = sizeof(ti);
		if (getsockopt(k->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
		    ti.tcpi_state != TCP_ESTABLISHED) {
			snprintf(why, n, "the server closed the connection");
			return -1;
		}
		if (ioctl(k->fd, SIOCOUTQ, &outq) != 0) {
			snprintf(why, n, "SIOCOUTQ: %s", strerror(errno));
			return -1;
		}
		if (outq == 0)
			return 0;
		if (waited >= ACK_MS || atomic_load(&k->stop)) {
			snprintf(why, n, "the server did not acknowledge %d bytes in %d s",
			    outq, ACK_MS / 1000);
			return -1;
		}
		/* Nothing signals an ACK: poll the queue, quickly at first (on a LAN it
		 * drains in well under a millisecond), then less often. */
		ts.tv_sec = 0;
		ts.tv_nsec = step * 1000000L;
		nanosleep(&ts, NULL);
		waited += step;
		step = step < 50 ? step * 2 : 50;
	}
}

/* A batch being built: framed messages, one after the other. */
struct batch {
	struct sink *k;
	struct siem_origin o;
	char *buf;
	size_t len, cap;
	size_t *ends;		/* UDP: where each datagram ends */
	size_t n;
	size_t nresent;		/* of them, entries sent before (seq <= resend_to) */
	int64_t last;
	struct qerr *e;
};

static int
add_entry(const struct audit_entry *ent, void *arg)
{
	struct batch *b = arg;
	char *msg = NULL, hdr[24], *p;
	size_t len, hl, need, *ends;
	int r;

	if ((r = siem_format(b->k->cfg->format, ent, &b->o, &msg, &len, b->e)) != 0)
		return r;
	hl = b->k->cfg->protocol == SIEM_UDP ? 0 :
	    (size_t)snprintf(hdr, sizeof(hdr), "%zu ", len);
	need = b->len + hl + len;
	if (need > b->cap) {
		if ((p = realloc(b->buf, need * 2)) == NULL)
			goto nomem;
		b->buf = p;
		b->cap = need * 2;
	}
	if ((ends = realloc(b->ends, (b->n + 1) * sizeof(*ends))) == NULL)
		goto nomem;
	b->ends = ends;
	memcpy(b->buf + b->len, hdr, hl);
	memcpy(b->buf + b->len + hl, msg, len);
	b->len = need;
	b->ends[b->n++] = need;
	b->nresent += ent->seq <= b->k->resend_to;
	b->last = ent->seq;
	free(msg);
	return 0;
nomem:
	free(msg);
	return qerr_set(b->e, QERR_NOMEM, NULL, "out of memory");
}

static int
send_batch(struct sink *k, const struct batch *b, char *why, size_t n)
{
	size_t i, start = 0;

	if (k->cfg->protocol != SIEM_UDP)
		return write_all(k, b->buf, b->len, why, n);
	for (i = 0; i < b->n; start = b->ends[i++])
		if (write_all(k, b->buf + start, b->ends[i] - start, why, n) != 0)
			return -1;
	return 0;
}

static int
read_batch(struct sink *k, struct batch *b, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int r;

	b->len = b->n = 0;
	b->last = k->acked;
	b->nresent = 0;
	b->e = e;
	if ((r = store_tx_begin(k->st, false, &tx, e)) != 0)
		return r;
	r = store_audit_list(tx, k->acked, BATCH_MAX, add_entry, b, e);
	store_tx_rollback(tx);
	return r;
}

static int
save_cursor(struct sink *k, int64_t seq, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int r;

	if ((r = store_tx_begin(k->st, true, &tx, e)) != 0)
		return r;
	if ((r = store_siem_cursor_put(tx, k->cfg->name, seq, engine_now_ms(), e)) != 0) {
		store_tx_rollback(tx);
		return r;
	}
	return store_tx_commit(tx, e);
}

/* Moves the cursor to last (entries up to it are delivered). */
static void
set_cursor(struct sink *k, int64_t last)
{
	pthread_mutex_lock(&k->mu);
	k->cursor = last;
	pthread_mutex_unlock(&k->mu);
}

static int
load_cursor(struct sink *k, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int64_t seq = 0;
	int r;

	if ((r = store_tx_begin(k->st, false, &tx, e)) != 0)
		return r;
	r = store_siem_cursor_get(tx, k->cfg->name, &seq, e);
	store_tx_rollback(tx);
	set_cursor(k, seq);
	k->acked = seq;
	k->unc_n = k->unc_bytes = 0;
	return r;
}

/* Confirms the oldest unconfirmed batches that RESEND_BYTES followed, or all of them
 * once the connection has stayed up CONFIRM_MS since the last acknowledgement. */
static void
confirm(struct sink *k, bool all)
{
	struct unconfirmed *u;

	while (k->unc_n > 0) {
		u = &k->unc[k->unc_head];
		if (!all && k->unc_n < UNCONFIRMED_MAX &&
		    k->unc_bytes - u->bytes < RESEND_BYTES)
			break;
		set_cursor(k, u->last);
		k->unc_bytes -= u->bytes;
		k->unc_head = (k->unc_head + 1) % UNCONFIRMED_MAX;
		k->unc_n--;
	}
}

/* A batch the server's TCP stack acknowledged. */
static void
acknowledged(struct sink *k, const struct batch *b)
{
	struct unconfirmed *u;

	if (k->unc_n == UNCONFIRMED_MAX)
		confirm(k, false);
	u = &k->unc[(k->unc_head + k->unc_n) % UNCONFIRMED_MAX];
	u->last = b->last;
	u->bytes = b->len;
	k->unc_n++;
	k->unc_bytes += b->len;
	k->acked = b->last;
	k->acked_at = engine_now_ms();
	pthread_mutex_lock(&k->mu);
	k->sent += (int64_t)b->n;
	k->resent += (int64_t)b->nresent;
	pthread_mutex_unlock(&k->mu);
	/* Over UDP nothing will ever say more. */
	confirm(k, k->cfg->protocol == SIEM_UDP);
}

/* The server ended the connection: what it did not confirm goes again. */
static void
connection_lost(struct sink *k)
{
	if (k->acked > k->resend_to)
		k->resend_to = k->acked;
	k->acked = k->cursor;
	k->unc_n = k->unc_bytes = 0;
}

/* Writes the cursor when it moved and, unless now, CURSOR_SAVE_MS have passed since
 * the last write. A failed write only means these entries go again. */
static void
flush_cursor(struct sink *k, bool now)
{
	struct qerr e;
	int64_t t = engine_now_ms();

	if (k->cursor == k->saved || (!now && t - k->saved_at < CURSOR_SAVE_MS))
		return;
	qerr_clear(&e);
	if (save_cursor(k, k->cursor, &e) != 0) {
		log_msg(LOG_LVL_ERROR, "siem %s: saving the cursor: %s", k->cfg->name, e.msg);
		return;
	}
	k->saved = k->cursor;
	k->saved_at = t;
}

/* Sleeps ms unless stopped (a stop kicks the store's audit waiters). */
static void
pause_ms(struct sink *k, int ms)
{
	uint64_t g = store_audit_generation(k->st);
	int64_t until = engine_now_ms() + ms;

	/* New entries wake the wait too: keep waiting until the time is up. */
	while (!atomic_load(&k->stop) && engine_now_ms() < until) {
		store_audit_wait(k->st, g, &k->stop, (int)(until - engine_now_ms()));
		g = store_audit_generation(k->st);
	}
}

/*
 * Whether this node forwards to k's server: one node of a cluster does at a time,
 * so the server gets each entry from one sender. A node that takes over starts from
 * the cursor its predecessor left; one that stands by saves its own and hangs up.
 */
static bool
forwards_here(struct sink *k)
{
	char name[sizeof(k->error)];
	struct qerr e;
	bool held;

	snprintf(name, sizeof(name), "siem:%s", k->cfg->name);
	held = engine_lease_hold(k->st, k->node, name, &k->lease);
	qerr_clear(&e);
	if (held && k->standby) {
		if (load_cursor(k, &e) != 0)
			return false;
		k->saved = k->cursor;
		k->standby = false;
	} else if (!held && !k->standby) {
		flush_cursor(k, true);
		disconnect(k);
		pthread_mutex_lock(&k->mu);
		k->connected = false;
		snprintf(k->error, sizeof(k->error), "standing by: another node forwards");
		pthread_mutex_unlock(&k->mu);
		k->standby = true;
	}
	return held;
}

static void *
sink_run(void *arg)
{
	struct sink *k = arg;
	struct batch b = { .k = k };
	char why[256], pid[16];
	struct qerr e;
	uint64_t gen;
	int backoff = BACKOFF_MIN_MS;

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	b.o = (struct siem_origin){ .hostname = k->cfg->hostname ? k->cfg->hostname :
	    k->node, .app_name = "quell", .procid = pid, .version = QUELL_VERSION,
	    .facility = k->cfg->facility };
	while (!atomic_load(&k->stop)) {
		qerr_clear(&e);
		if (load_cursor(k, &e) == 0) {
			k->saved = k->cursor;
			break;
		}
		set_status(k, false, e.msg);
		pause_ms(k, BACKOFF_MAX_MS);
	}
	while (!atomic_load(&k->stop)) {
		qerr_clear(&e);
		if (!forwards_here(k)) {
			pause_ms(k, STORE_NODE_TTL_MS / 2);
			continue;
		}
		gen = store_audit_generation(k->st);
		if (k->fd >= 0 && peer_gone(k)) {
			disconnect(k);
			connection_lost(k);
			set_status(k, false, "the server closed the connection");
		} else if (k->unc_n > 0 && engine_now_ms() - k->acked_at >= CONFIRM_MS) {
			confirm(k, true);
		}
		if (k->fd < 0) {
			if (sink_connect(k, why, sizeof(why)) != 0) {
				set_status(k, false, why);
				pause_ms(k, backoff);
				backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
				    backoff * 2;
				continue;
			}
			set_status(k, true, NULL);
		}
		if (read_batch(k, &b, &e) != 0) {
			log_msg(LOG_LVL_ERROR, "siem %s: reading the audit log: %s",
			    k->cfg->name, e.msg);
			pause_ms(k, backoff);
			continue;
		}
		if (b.n == 0) {
			flush_cursor(k, true);
			store_audit_wait(k->st, gen, &k->stop, IDLE_WAIT_MS);
			continue;
		}
		if (send_batch(k, &b, why, sizeof(why)) != 0 ||
		    wait_acked(k, why, sizeof(why)) != 0) {
			/* Not acknowledged: the batch goes again, and so does what
			 * the server had not confirmed. */
			disconnect(k);
			if (k->acked < b.last && b.last > k->resend_to)
				k->resend_to = b.last;
			connection_lost(k);
			if (!atomic_load(&k->stop))
				set_status(k, false, why);
			continue;
		}
		backoff = BACKOFF_MIN_MS;
		acknowledged(k, &b);
		flush_cursor(k, false);
	}
	/* Stopping with the server still there: it reads what it was sent. */
	if (k->fd >= 0 && !peer_gone(k))
		confirm(k, true);
	flush_cursor(k, true);
	disconnect(k);
	free(b.buf);
	free(b.ends);
	return NULL;
}

void
siem_stop(struct siem *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		atomic_store(&s->sinks[i].stop, true);
	for (i = 0; i < s->n; i++)
		if (s->sinks[i].started)
			store_audit_kick(s->sinks[i].st);
	for (i = 0; i < s->n; i++) {
		if (s->sinks[i].started)
			pthread_join(s->sinks[i].thread, NULL);
		SSL_CTX_free(s->sinks[i].ctx);
		pthread_mutex_destroy(&s->sinks[i].mu);
	}
	free(s->sinks);
	free(s);
}

int
siem_start(const struct config *cfg, struct store *st, struct siem **out,
    struct qerr *e)
{
	struct siem *s;
	struct sink *k;
	size_t i;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if (cfg->nsiems > 0 &&
	    (s->sinks = calloc(cfg->nsiems, sizeof(*s->sinks))) == NULL) {
		free(s);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	for (i = 0; i < cfg->nsiems; i++) {
		k = &s->sinks[i];
		k->cfg = &cfg->siems[i];
		k->st = st;
		k->node = cfg->node_id;
		k->fd = -1;
		atomic_init(&k->stop, false);
		pthread_mutex_init(&k->mu, NULL);
		s->n++;
		if (k->cfg->protocol == SIEM_TLS && (r = make_ctx(k->cfg, &k->ctx, e)) != 0)
			goto fail;
	}
	for (i = 0; i < s->n; i++) {
		if (pthread_create(&s->sinks[i].thread, NULL, sink_run, &s->sinks[i]) != 0) {
			r = qerr_set(e, QERR_INTERNAL, NULL, "cannot start the siem threads");
			goto fail;
		}
		s->sinks[i].started = true;
	}
	*out = s;
	return 0;
fail:
	siem_stop(s);
	return r;
}

size_t
siem_count(const struct siem *s)
{
	return s != NULL ? s->n : 0;
}

int
siem_status(struct siem *s, size_t i, struct siem_status *out, struct qerr *e)
{
	struct sink *k;
	struct store_tx *tx = NULL;
	int64_t last = 0, cur = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (s == NULL || i >= s->n)
		return qerr_set(e, QERR_NOT_FOUND, NULL, "no such siem");
	k = &s->sinks[i];
	/* From the store, not the thread: right even before the thread's first read. */
	if ((r = store_tx_begin(k->st, false, &tx, e)) != 0)
		return r;
	if ((r = store_audit_last_seq(tx, &last, e)) == 0)
		r = store_siem_cursor_get(tx, k->cfg->name, &cur, e);
	store_tx_rollback(tx);
	if (r != 0)
		return r;
	snprintf(out->name, sizeof(out->name), "%s", k->cfg->name);
	pthread_mutex_lock(&k->mu);
	/* The thread's cursor runs ahead of the store's by up to CURSOR_SAVE_MS. */
	if (k->cursor > cur)
		cur = k->cursor;
	out->last_seq = last;
	out->delivered_seq = cur;
	out->backlog = last > cur ? last - cur : 0;
	out->connected = k->connected;
	out->sent = k->sent;
	out->resent = k->resent;
	out->connects = k->connects;
	snprintf(out->error, sizeof(out->error), "%s", k->error);
	pthread_mutex_unlock(&k->mu);
	return 0;
}
