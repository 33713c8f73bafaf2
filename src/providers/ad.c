/*
 * Active Directory over LDAP (libldap): disable, enable and force a password change on
 * a user found by objectGUID, and list the domain's users. Every write is one modify
 * that deletes the userAccountControl value just read and adds the new one, so a
 * concurrent change makes it fail (noSuchAttribute) instead of being overwritten.
 * The steps of a batch share one pooled connection with all their operations in flight
 * at once (the DC, not the round trips, then sets the pace); each answer is matched to
 * its step by message id, and each step's race is lost and retried on its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <ldap.h>

#include "core/clock.h"
#include "core/ldapesc.h"
#include "core/log.h"
#include "providers/ad_int.h"
#include "providers/kit.h"
#include "providers/provider.h"

#define UAC_ACCOUNTDISABLE	0x2u
#define UAC_DONT_EXPIRE_PASSWD	0x10000u
#define CAS_TRIES		5
#define PASSWORD_MAX		1024
#define PAGE_SIZE_DEFAULT	"500"
#define PAGE_SIZE_MAX		1000	/* Windows' default MaxPageSize */
#define TIMEOUT_DEFAULT		"10"
/* The largest LDAP message taken from a server: liblber otherwise allocates whatever
 * length a message's header announces, up to 4 GiB (an entry here is a few KiB). */
#define MESSAGE_MAX		(16 * 1024 * 1024)

#define UAC_SEEN_BUCKETS	4096
#define UAC_SEEN_MAX		(1u << 20)

/*
 * The userAccountControl last read or written per objectGUID. A disable or enable
 * first tries the compare-and-swap against it, addressed by <GUID=…>, with no search:
 * a stale value only makes the delete fail (noSuchAttribute) and the step falls back
 * to reading, so the cache can save a round trip but never overwrite a change.
 */
struct uac_seen {
	unsigned char guid[LDAPESC_GUID_LEN];
	uint32_t uac;
	struct uac_seen *next;
};

struct conn {
	LDAP *ld;		/* NULL until connected, and after a broken connection */
	bool busy;
	struct provider *p;
	struct ldap_conncb cb;	/* records the socket of a connection being set up */
	int fd;			/* that socket, while connecting; -1 otherwise */
	int64_t deadline;	/* ms: the watchdog shuts the socket down after this */
};

struct provider {
	char *name;
	/* From the key table (ad_keys). */
	char *url;
	bool starttls;
	bool plaintext;
	char *ca_file;		/* NULL: the system's trust store */
	char *base_dn;
	char *bind_dn;
	struct kit_secret password;
	long timeout;
	long page_size;

	pthread_mutex_t mu;	/* conns, their deadlines and the userAccountControl cache */
	pthread_cond_t cv;
	struct conn *conns;
	size_t nconns;
	struct uac_seen **seen;	/* UAC_SEEN_BUCKETS chains */
	size_t nseen;
	pthread_t watchdog;
	pthread_cond_t wd_cv;	/* wakes the watchdog to stop */
	bool watching;
	bool stopping;		/* under mu; wakes the watchdog through cv */
};

/* What an LDAP call left behind: its result code and a sentence for the analyst. */
struct lres {
	int rc;
	bool tls;		/* the TLS handshake failed: retrying will not fix it */
	char msg[448];
};

/* The user as read just before a write. */
struct user {
	char *dn;
	char uac_text[24];	/* exactly as the server sent it: the value the CAS deletes */
	uint32_t uac;
	bool pwd_must_change;	/* pwdLastSet is 0 */
};

static const char *const user_attrs[] = { "userAccountControl", "pwdLastSet", NULL };

static const char *const list_attrs[] = {
	"objectGUID", "objectSid", "sAMAccountName", "userPrincipalName", "displayName",
	"userAccountControl", "mail", NULL
};

#define USER_FILTER	"(&(objectCategory=person)(objectClass=user))"
#define CURSOR_TAG	"ad1"
#define DC_ID_MAX	256

/* RFC 4511 names for result codes; libldap's own names for its client-side codes. */
static const char *
ldap_code_name(int rc)
{
	switch (rc) {
	case LDAP_SUCCESS: return "success";
	case LDAP_OPERATIONS_ERROR: return "operationsError";
	case LDAP_PROTOCOL_ERROR: return "protocolError";
	case LDAP_TIMELIMIT_EXCEEDED: return "timeLimitExceeded";
	case LDAP_SIZELIMIT_EXCEEDED: return "sizeLimitExceeded";
	case LDAP_AUTH_METHOD_NOT_SUPPORTED: return "authMethodNotSupported";
	case LDAP_STRONG_AUTH_REQUIRED: return "strongerAuthRequired";
	case LDAP_REFERRAL: return "referral";
	case LDAP_ADMINLIMIT_EXCEEDED: return "adminLimitExceeded";
	case LDAP_UNAVAILABLE_CRITICAL_EXTENSION: return "unavailableCriticalExtension";
	case LDAP_CONFIDENTIALITY_REQUIRED: return "confidentialityRequired";
	case LDAP_NO_SUCH_ATTRIBUTE: return "noSuchAttribute";
	case LDAP_UNDEFINED_TYPE: return "undefinedAttributeType";
	case LDAP_CONSTRAINT_VIOLATION: return "constraintViolation";
	case LDAP_TYPE_OR_VALUE_EXISTS: return "attributeOrValueExists";
	case LDAP_INVALID_SYNTAX: return "invalidAttributeSyntax";
	case LDAP_NO_SUCH_OBJECT: return "noSuchObject";
	case LDAP_INVALID_DN_SYNTAX: return "invalidDNSyntax";
	case LDAP_INAPPROPRIATE_AUTH: return "inappropriateAuthentication";
	case LDAP_INVALID_CREDENTIALS: return "invalidCredentials";
	case LDAP_INSUFFICIENT_ACCESS: return "insufficientAccessRights";
	case LDAP_BUSY: return "busy";
	case LDAP_UNAVAILABLE: return "unavailable";
	case LDAP_UNWILLING_TO_PERFORM: return "unwillingToPerform";
	case LDAP_LOOP_DETECT: return "loopDetect";
	case LDAP_NAMING_VIOLATION: return "namingViolation";
	case LDAP_OBJECT_CLASS_VIOLATION: return "objectClassViolation";
	case LDAP_NOT_ALLOWED_ON_NONLEAF: return "notAllowedOnNonLeaf";
	case LDAP_NOT_ALLOWED_ON_RDN: return "notAllowedOnRDN";
	case LDAP_ALREADY_EXISTS: return "entryAlreadyExists";
	case LDAP_OTHER: return "other";
	case LDAP_SERVER_DOWN: return "serverDown";
	case LDAP_LOCAL_ERROR: return "localError";
	case LDAP_ENCODING_ERROR: return "encodingError";
	case LDAP_DECODING_ERROR: return "decodingError";
	case LDAP_TIMEOUT: return "timeout";
	case LDAP_FILTER_ERROR: return "filterError";
	case LDAP_PARAM_ERROR: return "paramError";
	case LDAP_NO_MEMORY: return "noMemory";
	case LDAP_CONNECT_ERROR: return "connectError";
	}
	return "ldapError";
}

/*
 * Whether trying again later can succeed. unwillingToPerform is permanent: RFC 4511
 * says the server refuses for a reason of its own (AD uses it for policy refusals
 * such as an enable that the password policy forbids), and it answers the same way
 * next time. other is transient: it reports an internal server error (Samba: a
 * database lock or transaction failure) and the engine bounds the attempts.
 */
static bool
ldap_code_transient(int rc)
{
	switch (rc) {
	case LDAP_SERVER_DOWN:
	case LDAP_CONNECT_ERROR:
	case LDAP_TIMEOUT:
	case LDAP_TIMELIMIT_EXCEEDED:
	case LDAP_BUSY:
	case LDAP_UNAVAILABLE:
	case LDAP_OTHER:
	case LDAP_NO_MEMORY:
	case LDAP_LOCAL_ERROR:
		return true;
	}
	return false;
}

/* One LDAP operation for the metrics, classed like an HTTP answer: no answer at all
 * is "transport", busy or unavailable "5xx", any other refusal "4xx". */
static void
observe_ldap(const struct provider *p, int rc, double t0)
{
	const char *cls = rc == LDAP_SUCCESS ? "2xx" : rc == LDAP_SERVER_DOWN ||
	    rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ? "transport" :
	    rc == LDAP_BUSY || rc == LDAP_UNAVAILABLE ? "5xx" : "4xx";

	provider_observe_call(p->name, cls, provider_clock() - t0);
}

/* The connection can no longer be trusted to be in step with the server. */
static bool
ldap_code_breaks_conn(int rc)
{
	return rc < 0 || rc == LDAP_UNAVAILABLE;
}

static void
lres_set(struct lres *lr, LDAP *ld, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
lres_set(struct lres *lr, LDAP *ld, int rc, const char *fmt, ...)
{
	char what[256];
	char *diag = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (ld != NULL)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	lr->rc = rc;
	lr->tls = false;
	snprintf(lr->msg, sizeof(lr->msg), "%s: %s (%d)%s%s", what, ldap_err2string(rc), rc,
	    diag != NULL && *diag != '\0' ? ": " : "", diag != NULL ? diag : "");
	ldap_memfree(diag);
}

static void
result_from_lres(struct step_result *res, const struct lres *lr)
{
	res->outcome = !lr->tls && ldap_code_transient(lr->rc) ? STEP_OUTCOME_TRANSIENT :
	    STEP_OUTCOME_PERMANENT;
	snprintf(res->error_code, sizeof(res->error_code), "%s",
	    lr->tls ? "tlsHandshake" : ldap_code_name(lr->rc));
	snprintf(res->message, sizeof(res->message), "%s", lr->msg);
}

static int
qerr_from_lres(struct qerr *e, const struct lres *lr)
{
	int code = !lr->tls && ldap_code_transient(lr->rc) ? QERR_TRANSIENT : QERR_PERMANENT;

	qerr_set(e, code, NULL, "%s", lr->msg);
	if (e != NULL) {
		e->status = lr->rc;
		snprintf(e->vendor_code, sizeof(e->vendor_code), "%s",
		    lr->tls ? "tlsHandshake" : ldap_code_name(lr->rc));
	}
	return code;
}

/* Configuration */

#define OFF(f)	offsetof(struct provider, f)

/*
 * The bind password is one line of a file nobody else can read; the key table
 * refuses an empty one, because RFC 4513 makes a simple bind with an empty password
 * an unauthenticated bind that "succeeds". A url with anything after the host (a DN,
 * a filter, extensions) is refused rather than silently ignored.
 */
static const struct provider_key ad_keys[] = {
	{ .name = "url", .type = PROVIDER_KEY_URL, .required = true,
	    .schemes = "ldaps ldap", .valid = kit_url_no_path, .offset = OFF(url),
	    .help = "ldaps://host[:port] or ldap://host[:port]" },
	{ .name = "base_dn", .type = PROVIDER_KEY_STRING, .required = true,
	    .offset = OFF(base_dn), .help = "a DN" },
	{ .name = "bind_dn", .type = PROVIDER_KEY_STRING, .required = true,
	    .offset = OFF(bind_dn), .help = "a DN" },
	{ .name = "password_file", .type = PROVIDER_KEY_SECRET_FILE, .required = true,
	    .max = PASSWORD_MAX, .offset = OFF(password), .help = "a file" },
	{ .name = "starttls", .type = PROVIDER_KEY_BOOL, .offset = OFF(starttls),
	    .help = "yes or no" },
	{ .name = "allow_plaintext", .type = PROVIDER_KEY_BOOL, .offset = OFF(plaintext),
	    .help = "yes or no" },
	{ .name = "ca_file", .type = PROVIDER_KEY_FILE, .offset = OFF(ca_file),
	    .help = "a readable file" },
	{ .name = "timeout", .type = PROVIDER_KEY_LONG, .def = TIMEOUT_DEFAULT, .min = 1,
	    .max = 3600, .offset = OFF(timeout), .help = "whole seconds from 1 to 3600" },
	{ .name = "page_size", .type = PROVIDER_KEY_LONG, .def = PAGE_SIZE_DEFAULT, .min = 1,
	    .max = PAGE_SIZE_MAX, .offset = OFF(page_size), .help = "from 1 to 1000" },
	{ 0 },
};

/*
 * libldap's network timeout covers the TCP connect only, and its TLS handshake
 * loops for as long as the server stays silent: a server that accepts and never
 * answers would hold the handshake, and a worker, forever. So the socket of a
 * connection being set up is recorded here with a deadline, and a watchdog shuts it
 * down when the deadline passes; the handshake then fails like a reset connection.
 */
static int
conn_add(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr,
    struct ldap_conncb *ctx)
{
	struct conn *c = ctx->lc_arg;
	ber_socket_t fd;

	(void)ld;
	(void)srv;
	(void)addr;
	if (ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) != 1)
		return 0;
	pthread_mutex_lock(&c->p->mu);
	c->fd = fd;
	c->deadline = clock_mono_ms() + (int64_t)c->p->timeout * 1000;
	pthread_mutex_unlock(&c->p->mu);
	return 0;
}

static void
conn_del(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	(void)ld;
	(void)sb;
	(void)ctx;
}

/* The connection is set up (or given up): the watchdog leaves its socket alone. */
static void
conn_settled(struct conn *c)
{
	pthread_mutex_lock(&c->p->mu);
	c->fd = -1;
	c->deadline = 0;
	pthread_mutex_unlock(&c->p->mu);
}

static void *
watchdog(void *arg)
{
	struct provider *p = arg;
	struct timespec ts;
	size_t i;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		for (i = 0; i < p->nconns; i++)
			if (p->conns[i].fd >= 0 && p->conns[i].deadline != 0 &&
			    clock_mono_ms() > p->conns[i].deadline) {
				shutdown(p->conns[i].fd, SHUT_RDWR);
				p->conns[i].deadline = 0;
			}
		clock_deadline(CLOCK_REALTIME, 200, &ts);
		pthread_cond_timedwait(&p->wd_cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void
ad_close(struct provider *p)
{
	size_t i;

	if (p == NULL)
		return;
	if (p->watching) {
		pthread_mutex_lock(&p->mu);
		p->stopping = true;
		pthread_cond_broadcast(&p->wd_cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->watchdog, NULL);
		pthread_cond_destroy(&p->wd_cv);
	}
	for (i = 0; i < p->nconns; i++)
		if (p->conns[i].ld != NULL)
			ldap_unbind_ext_s(p->conns[i].ld, NULL, NULL);
	free(p->conns);
	for (i = 0; p->seen != NULL && i < UAC_SEEN_BUCKETS; i++)
		while (p->seen[i] != NULL) {
			struct uac_seen *next = p->seen[i]->next;

			free(p->seen[i]);
			p->seen[i] = next;
		}
	free(p->seen);
	if (p->nconns > 0) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
	}
	provider_keys_clear(ad_keys, p);
	free(p->name);
	free(p);
}

/* What the key table cannot say alone: TLS one way or the other, or plaintext by
 * choice. */
static int
check_tls(const struct provider *p, const struct system_config *cfg, struct qerr *e)
{
	const struct config_kv *tls = config_system_get(cfg, "starttls");
	bool ldaps = strncmp(p->url, "ldaps:", 6) == 0;

	if (ldaps && p->starttls)
		return config_error(e, cfg, tls->line, "starttls",
		    "starttls = yes makes no sense with ldaps://: use one or the other");
	if (!ldaps && !p->starttls && !p->plaintext)
		return config_error(e, cfg, tls != NULL ? tls->line :
		    config_system_get(cfg, "url")->line, "starttls",
		    "ldap:// sends the bind password in clear: set starttls = yes, use "
		    "ldaps://, or set allow_plaintext = yes");
	return 0;
}

static int
ad_open(const struct system_config *cfg, struct provider **out, struct qerr *e)
{
	struct provider *p = NULL;
	size_t i;
	int r = QERR_INTERNAL, ver;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if ((p->name = strdup(cfg->name != NULL ? cfg->name : "")) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((r = provider_keys_parse(ad_keys, cfg, p, e)) != 0 ||
	    (r = check_tls(p, cfg, e)) != 0)
		goto out;

	/*
	 * libldap initialises its global options on first use without a lock; do it here,
	 * while only one thread runs, rather than in the first concurrent connect.
	 */
	ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &ver);

	p->nconns = cfg->max_concurrency > 0 ? (size_t)cfg->max_concurrency : 1;
	if ((p->conns = calloc(p->nconns, sizeof(*p->conns))) == NULL) {
		p->nconns = 0;
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if ((p->seen = calloc(UAC_SEEN_BUCKETS, sizeof(*p->seen))) == NULL) {
		p->nconns = 0;
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		p->nconns = 0;
		r = qerr_set(e, QERR_INTERNAL, NULL, "pthread_mutex_init failed");
		goto out;
	}
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		p->nconns = 0;
		r = qerr_set(e, QERR_INTERNAL, NULL, "pthread_cond_init failed");
		goto out;
	}
	for (i = 0; i < p->nconns; i++) {
		p->conns[i].p = p;
		p->conns[i].fd = -1;
		p->conns[i].cb.lc_add = conn_add;
		p->conns[i].cb.lc_del = conn_del;
		p->conns[i].cb.lc_arg = &p->conns[i];
	}
	if (pthread_cond_init(&p->wd_cv, NULL) != 0 ||
	    pthread_create(&p->watchdog, NULL, watchdog, p) != 0) {
		r = qerr_set(e, QERR_INTERNAL, NULL, "cannot start the connection watchdog");
		goto out;
	}
	p->watching = true;
	*out = p;
	p = NULL;
	r = 0;
out:
	ad_close(p);
	return r;
}

/* Connections */

static struct conn *
pool_get(struct provider *p)
{
	struct conn *c;
	size_t i;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		c = NULL;
		/* An idle connected handle first: it saves a TLS handshake and a bind. */
		for (i = 0; i < p->nconns; i++) {
			if (p->conns[i].busy)
				continue;
			if (p->conns[i].ld != NULL) {
				c = &p->conns[i];
				break;
			}
			if (c == NULL)
				c = &p->conns[i];
		}
		if (c != NULL)
			break;
		pthread_cond_wait(&p->cv, &p->mu);
	}
	c->busy = true;
	pthread_mutex_unlock(&p->mu);
	return c;
}

static void
conn_drop(struct conn *c)
{
	if (c->ld != NULL)
		ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
}

static void
pool_put(struct provider *p, struct conn *c, bool drop)
{
	if (drop)
		conn_drop(c);
	pthread_mutex_lock(&p->mu);
	c->busy = false;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static int
limit_incoming(LDAP *ld)
{
	ber_len_t max = MESSAGE_MAX;
	Sockbuf *sb = NULL;

	if (ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) != LDAP_OPT_SUCCESS || sb == NULL ||
	    ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_MAX_INCOMING, &max) != 1)
		return LDAP_LOCAL_ERROR;
	return LDAP_SUCCESS;
}

void
ad_adopt(struct provider *p, LDAP *ld)
{
	struct conn *c = pool_get(p);

	conn_drop(c);
	(void)limit_incoming(ld);
	c->ld = ld;
	pool_put(p, c, false);
}

/*
 * libldap reports a failed TLS handshake as serverDown/connectError, the same as a
 * refused connection; only the handshake leaves a diagnostic (GnuTLS' text). Whether
 * that diagnostic is about trust (the certificate, its issuer,
 * its name or dates) — permanent until someone fixes the configuration — rather than
 * about the connection (reset, closed early), which a retry may get past.
 */
static bool
tls_trust_failure(const char *diag)
{
	/* "(unknown error code)" is what libldap's GnuTLS backend reports when the
	 * peer's certificate fails verification. */
	static const char *const words[] = { "certificate", "trusted", "issuer",
	    "hostname", "host name", "expired", "revoked", "verif", "signer",
	    "unknown error code" };
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(diag, words[i]) != NULL)
			return true;
	return false;
}

static void
connect_failed(struct provider *p, LDAP *ld, int rc, const char *what, struct lres *lr)
{
	char *diag = NULL;

	lres_set(lr, ld, rc, "%s %s", what, p->url);
	if (rc != LDAP_SERVER_DOWN && rc != LDAP_CONNECT_ERROR)
		return;
	ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	if (diag != NULL && tls_trust_failure(diag)) {
		lr->tls = true;
		snprintf(lr->msg, sizeof(lr->msg),
		    "TLS handshake with %s failed (certificate not trusted by %s, or not "
		    "issued for this host name): %s (%d): %s", p->url,
		    p->ca_file != NULL ? p->ca_file : "the system trust store",
		    ldap_err2string(rc), rc, diag);
	}
	ldap_memfree(diag);
}

/* Sets *c->ld to a bound handle; *fresh says whether it was made just now. */
static int
conn_ready(struct provider *p, struct conn *c, bool *fresh, struct lres *lr)
{
	struct timeval tv = { .tv_sec = p->timeout };
	struct berval cred;
	LDAP *ld = NULL;
	double t0;
	int rc, v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND;
	int tlsmin = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, server = 0, limit = (int)p->timeout;

	*fresh = false;
	if (c->ld != NULL)
		return LDAP_SUCCESS;
	*fresh = true;
	if ((rc = ldap_initialize(&ld, p->url)) != LDAP_SUCCESS) {
		lres_set(lr, NULL, rc, "cannot use url %s", p->url);
		return rc;
	}
	if ((rc = ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3)) != LDAP_SUCCESS ||
	    (rc = ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF)) != LDAP_SUCCESS ||
	    (rc = ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv)) != LDAP_SUCCESS ||
	    (rc = ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv)) != LDAP_SUCCESS ||
	    (rc = ldap_set_option(ld, LDAP_OPT_TIMELIMIT, &limit)) != LDAP_SUCCESS ||
	    (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand)) != LDAP_SUCCESS ||
	    (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tlsmin)) != LDAP_SUCCESS ||
	    (rc = ldap_set_option(ld, LDAP_OPT_CONNECT_CB, &c->cb)) != LDAP_SUCCESS ||
	    (rc = limit_incoming(ld)) != LDAP_SUCCESS) {
		lres_set(lr, ld, rc, "cannot set LDAP options for %s", p->url);
		goto fail;
	}
	if (p->ca_file != NULL &&
	    (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, p->ca_file)) != LDAP_SUCCESS) {
		lres_set(lr, ld, rc, "cannot use ca_file %s", p->ca_file);
		goto fail;
	}
	/* The TLS options above only apply to this handle once it has its own context. */
	if ((rc = ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &server)) != LDAP_SUCCESS) {
		lres_set(lr, ld, rc, "cannot set up TLS with ca_file %s",
		    p->ca_file != NULL ? p->ca_file : "(system)");
		lr->tls = true;
		goto fail;
	}
	if (p->starttls && (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
		connect_failed(p, ld, rc, "StartTLS with", lr);
		goto fail;
	}
	cred.bv_val = p->password.buf;
	cred.bv_len = p->password.len;
	t0 = provider_clock();
	rc = ldap_sasl_bind_s(ld, p->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	observe_ldap(p, rc, t0);
	if (rc != LDAP_SUCCESS) {
		if (rc < 0)
			connect_failed(p, ld, rc, "cannot connect to", lr);
		else
			lres_set(lr, ld, rc, "bind to %s as %s failed", p->url, p->bind_dn);
		goto fail;
	}
	conn_settled(c);
	c->ld = ld;
	return LDAP_SUCCESS;
fail:
	conn_settled(c);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return rc;
}

/* The last known userAccountControl per objectGUID */

static size_t
seen_bucket(const unsigned char guid[LDAPESC_GUID_LEN])
{
	uint32_t h;

	memcpy(&h, guid, sizeof(h));
	return h % UAC_SEEN_BUCKETS;
}

static void
seen_put(struct provider *p, const unsigned char guid[LDAPESC_GUID_LEN], uint32_t uac)
{
	struct uac_seen *s;
	size_t b = seen_bucket(guid);

	pthread_mutex_lock(&p->mu);
	for (s = p->seen[b]; s != NULL; s = s->next)
		if (memcmp(s->guid, guid, LDAPESC_GUID_LEN) == 0)
			break;
	if (s == NULL && p->nseen < UAC_SEEN_MAX && (s = calloc(1, sizeof(*s))) != NULL) {
		memcpy(s->guid, guid, LDAPESC_GUID_LEN);
		s->next = p->seen[b];
		p->seen[b] = s;
		p->nseen++;
	}
	if (s != NULL)
		s->uac = uac;
	pthread_mutex_unlock(&p->mu);
}

static bool
seen_get(struct provider *p, const unsigned char guid[LDAPESC_GUID_LEN], uint32_t *uac)
{
	struct uac_seen *s;
	bool found = false;

	pthread_mutex_lock(&p->mu);
	for (s = p->seen[seen_bucket(guid)]; s != NULL; s = s->next)
		if (memcmp(s->guid, guid, LDAPESC_GUID_LEN) == 0) {
			*uac = s->uac;
			found = true;
			break;
		}
	pthread_mutex_unlock(&p->mu);
	return found;
}

/* Reading and writing one user */

static void
user_clear(struct user *u)
{
	ldap_memfree(u->dn);
	memset(u, 0, sizeof(*u));
}

/* AD's Integer syntax is 32-bit signed; accept either reading of the 32 bits. */
static int
parse_uac(const struct berval *bv, uint32_t *out)
{
	char buf[24], *end;
	long long v;

	if (bv->bv_len == 0 || bv->bv_len >= sizeof(buf))
		return -1;
	memcpy(buf, bv->bv_val, bv->bv_len);
	buf[bv->bv_len] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0' || v < INT32_MIN || v > (long long)UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static void
format_uac(uint32_t v, char *buf, size_t len)
{
	if (v > INT32_MAX)
		snprintf(buf, len, "%" PRId64, (int64_t)v - ((int64_t)1 << 32));
	else
		snprintf(buf, len, "%" PRIu32, v);
}

/*
 * The one object a search for an objectGUID found; rc is the search's result code.
 * Returns an LDAP code; LDAP_NO_SUCH_OBJECT when nothing matched.
 */
static int
user_from_result(struct provider *p, LDAP *ld, LDAPMessage *msg, int rc, struct user *u,
    struct lres *lr)
{
	LDAPMessage *ent;
	struct berval **uac = NULL, **pls = NULL;
	int n;

	memset(u, 0, sizeof(*u));
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		lres_set(lr, ld, rc, "search for the account under %s failed", p->base_dn);
		goto out;
	}
	if ((n = ldap_count_entries(ld, msg)) == 0) {
		rc = LDAP_NO_SUCH_OBJECT;
		snprintf(lr->msg, sizeof(lr->msg), "account not found in Active Directory");
		lr->rc = rc;
		lr->tls = false;
		goto out;
	}
	ent = ldap_first_entry(ld, msg);
	if (n > 1 || rc == LDAP_SIZELIMIT_EXCEEDED) {
		rc = LDAP_CONSTRAINT_VIOLATION;
		snprintf(lr->msg, sizeof(lr->msg), "more than one object has this objectGUID");
		lr->rc = rc;
		goto out;
	}
	if ((u->dn = ldap_get_dn(ld, ent)) == NULL) {
		rc = LDAP_DECODING_ERROR;
		lres_set(lr, ld, rc, "the server sent an entry without a DN");
		goto out;
	}
	uac = ldap_get_values_len(ld, ent, "userAccountControl");
	if (uac == NULL || uac[0] == NULL || uac[1] != NULL ||
	    parse_uac(uac[0], &u->uac) != 0) {
		rc = LDAP_OBJECT_CLASS_VIOLATION;
		snprintf(lr->msg, sizeof(lr->msg),
		    "%s has no valid userAccountControl: not a user account", u->dn);
		lr->rc = rc;
		goto out;
	}
	memcpy(u->uac_text, uac[0]->bv_val, uac[0]->bv_len);
	u->uac_text[uac[0]->bv_len] = '\0';
	pls = ldap_get_values_len(ld, ent, "pwdLastSet");
	u->pwd_must_change = pls != NULL && pls[0] != NULL && pls[0]->bv_len == 1 &&
	    pls[0]->bv_val[0] == '0';
	rc = LDAP_SUCCESS;
out:
	ldap_value_free_len(pls);
	ldap_value_free_len(uac);
	if (rc != LDAP_SUCCESS)
		user_clear(u);
	return rc;
}

struct plan {
	uint32_t uac;
	bool must_change;
	bool withdraw;		/* pwdLastSet 0 → -1, only while it is still 0 */
	const char *done;	/* message when the write succeeds */
	const char *already;	/* non-NULL: nothing to write */
	const char *refuse;	/* non-NULL: permanent failure, nothing written */
};

/*
 * An undo of a forced change: pwdLastSet back to -1 (now) while it is still 0. Once
 * the user chose a new password, the old one, presumed known, is gone: nothing to
 * give back.
 */
/* AD ignores pwdLastSet = 0 while the password never expires: the step's refusal,
 * and the preview's (ad_refuses) from the flags last read. */
#define DONT_EXPIRE_REFUSAL "password never expires is set on this account: AD " \
	"ignores a forced change; ask again with clear_dont_expire to clear that flag"

static void
plan_withdraw(const struct user *u, struct plan *pl)
{
	if (!u->pwd_must_change) {
		pl->refuse = "the password was changed since: nothing to undo";
		return;
	}
	pl->withdraw = true;
	pl->done = "the password no longer has to be changed at next sign-in";
}

static void
plan_step(const struct step *step, const struct user *u, bool clear_dont_expire,
    struct plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	pl->uac = u->uac;
	switch (step->type) {
	case ACTION_DISABLE:
		if (u->uac & UAC_ACCOUNTDISABLE)
			pl->already = "already disabled";
		pl->uac |= UAC_ACCOUNTDISABLE;
		pl->done = "disabled";
		break;
	case ACTION_ENABLE:
		if (!(u->uac & UAC_ACCOUNTDISABLE))
			pl->already = "already enabled";
		pl->uac &= ~UAC_ACCOUNTDISABLE;
		pl->done = "enabled";
		break;
	case ACTION_FORCE_PASSWORD_CHANGE:
		if (provider_step_undo(step)) {
			plan_withdraw(u, pl);
			break;
		}
		/* AD ignores pwdLastSet = 0 while the password never expires. */
		if (u->uac & UAC_DONT_EXPIRE_PASSWD) {
			if (!clear_dont_expire) {
				pl->refuse = DONT_EXPIRE_REFUSAL;
				break;
			}
			pl->uac &= ~UAC_DONT_EXPIRE_PASSWD;
			pl->must_change = true;
			pl->done = "cleared password never expires; the password must be "
			    "changed at next sign-in";
			break;
		}
		if (u->pwd_must_change)
			pl->already = "already must change password";
		pl->must_change = true;
		pl->done = "the password must be changed at next sign-in";
		break;
	default:
		pl->refuse = "not supported by Active Directory";
		break;
	}
}

static void
result_state(struct step_result *res, uint32_t uac)
{
	snprintf(res->state, sizeof(res->state), "%s",
	    uac & UAC_ACCOUNTDISABLE ? "disabled" : "enabled");
}

/* Reads "clear_dont_expire": true from the step's params; anything malformed refuses. */
static int
parse_params(const struct step *step, bool *clear, struct step_result *res)
{
	json_error_t jerr;
	json_t *root, *v;

	*clear = false;
	if (step->params == NULL || step->params[0] == '\0')
		return 0;
	if ((root = json_loads(step->params, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(root)) {
		json_decref(root);
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "invalidParams",
		    "params must be a JSON object");
		return -1;
	}
	v = json_object_get(root, "clear_dont_expire");
	if (v != NULL && !json_is_boolean(v)) {
		json_decref(root);
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "invalidParams",
		    "params.clear_dont_expire must be true or false");
		return -1;
	}
	*clear = v != NULL && json_is_true(v);
	json_decref(root);
	return 0;
}

static bool
ad_supports(const struct provider *p, enum action_type type)
{
	(void)p;
	return type == ACTION_DISABLE || type == ACTION_ENABLE ||
	    type == ACTION_FORCE_PASSWORD_CHANGE;
}

/* Several steps at once on one connection */

/* The operation a step of a batch has in flight. */
enum bop {
	BOP_NONE,
	BOP_SEEN,	/* the compare-and-swap against the last known value */
	BOP_READ,	/* the search for the user */
	BOP_WRITE,	/* the compare-and-swap against the value just read */
};

/*
 * One step of a batch: its own read, decide, write, told apart from the other steps'
 * operations on the same connection by message id.
 */
struct bstep {
	const struct step *step;
	struct step_result *res;
	unsigned char guid[LDAPESC_GUID_LEN];
	char gdn[LDAPESC_GUID_TEXT_LEN + 9];	/* <GUID=…> */
	char *filter;		/* (objectGUID=…) */
	bool clear;		/* params.clear_dont_expire */
	bool done;		/* *res is final */
	bool seen_tried;	/* the last known value had its one chance */
	enum bop op;
	int msgid;
	double sent;		/* provider_clock() when op went out */
	double due;		/* after a lost race: no read before this */
	int tries;		/* writes lost to a concurrent change */
	const char *wdn;	/* the DN the write went to, for its message */
	struct user u;
	struct plan pl;
	struct lres lr;
};

/*
 * After a lost race, wait a little before reading again: tries milliseconds plus up
 * to two of jitter (from the clock: it only has to differ between competing writers).
 * Returns the pause in seconds.
 */
static double
race_pause(int tries)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)tries * 1e-3 + (double)(now.tv_nsec % 2000000L) * 1e-9;
}

static int
send_read(struct provider *p, LDAP *ld, struct bstep *b)
{
	struct timeval tv = { .tv_sec = p->timeout };
	int rc;

	user_clear(&b->u);
	b->sent = provider_clock();
	rc = ldap_search_ext(ld, p->base_dn, LDAP_SCOPE_SUBTREE, b->filter,
	    (char **)user_attrs, 0, NULL, NULL, &tv, 2, &b->msgid);
	if (rc != LDAP_SUCCESS) {
		lres_set(&b->lr, ld, rc, "search for the account under %s failed", p->base_dn);
		return rc;
	}
	b->op = BOP_READ;
	return LDAP_SUCCESS;
}

/*
 * One modify of dn, whose userAccountControl is old: delete that value, add b->pl's
 * and, when the plan says so, set pwdLastSet to 0, or swap its 0 for -1 (a change
 * made since fails the delete with noSuchAttribute), in the same atomic operation.
 */
static int
send_write(LDAP *ld, struct bstep *b, enum bop op, const char *dn, const struct user *old)
{
	char newv[24], zero[] = "0";
	char *oldvals[] = { (char *)old->uac_text, NULL }, *newvals[] = { newv, NULL };
	char minus[] = "-1";
	char *zerovals[] = { zero, NULL }, *minusvals[] = { minus, NULL };
	LDAPMod del = { .mod_op = LDAP_MOD_DELETE, .mod_type = "userAccountControl",
		.mod_values = oldvals };
	LDAPMod add = { .mod_op = LDAP_MOD_ADD, .mod_type = "userAccountControl",
		.mod_values = newvals };
	LDAPMod pls = { .mod_op = LDAP_MOD_REPLACE, .mod_type = "pwdLastSet",
		.mod_values = zerovals };
	LDAPMod pdel = { .mod_op = LDAP_MOD_DELETE, .mod_type = "pwdLastSet",
		.mod_values = zerovals };
	LDAPMod padd = { .mod_op = LDAP_MOD_ADD, .mod_type = "pwdLastSet",
		.mod_values = minusvals };
	LDAPMod *mods[5] = { NULL };
	size_t n = 0;
	int rc;

	format_uac(b->pl.uac, newv, sizeof(newv));
	if (b->pl.uac != old->uac) {
		mods[n++] = &del;
		mods[n++] = &add;
	}
	if (b->pl.must_change)
		mods[n++] = &pls;
	if (b->pl.withdraw) {
		mods[n++] = &pdel;
		mods[n++] = &padd;
	}
	b->wdn = dn;
	b->sent = provider_clock();
	rc = ldap_modify_ext(ld, dn, mods, NULL, NULL, &b->msgid);
	if (rc != LDAP_SUCCESS) {
		lres_set(&b->lr, ld, rc, "modify of %s failed", dn);
		return rc;
	}
	b->op = op;
	return LDAP_SUCCESS;
}

/*
 * A step's first operation, or its next after a lost race: the compare-and-swap
 * against the last known value, addressed by <GUID=…> with no search, when that value
 * calls for a write; a read otherwise. A stale value only makes the delete fail.
 */
static int
bstep_start(struct provider *p, LDAP *ld, struct bstep *b)
{
	struct user known = { 0 };

	if (b->seen_tried ||
	    (b->step->type != ACTION_DISABLE && b->step->type != ACTION_ENABLE))
		return send_read(p, ld, b);
	b->seen_tried = true;
	if (!seen_get(p, b->guid, &known.uac))
		return send_read(p, ld, b);
	plan_step(b->step, &known, false, &b->pl);
	if (b->pl.already != NULL)
		return send_read(p, ld, b);
	format_uac(known.uac, known.uac_text, sizeof(known.uac_text));
	return send_write(ld, b, BOP_SEEN, b->gdn, &known);
}

static void
bstep_settle(struct bstep *b, enum step_outcome outcome, const char *code,
    const char *msg, uint32_t uac)
{
	provider_result_set(b->res, outcome, code, "%s", msg);
	result_state(b->res, uac);
	b->done = true;
	user_clear(&b->u);
}

static void
bstep_fail(struct bstep *b, const struct lres *lr)
{
	result_from_lres(b->res, lr);
	b->done = true;
	user_clear(&b->u);
}

/* The result code of an answer (a search's: of its final message), which also leaves
 * the server's diagnostic on the handle for lres_set. */
static int
answer_code(LDAP *ld, LDAPMessage *msg)
{
	int err = LDAP_OTHER, rc = ldap_parse_result(ld, msg, &err, NULL, NULL, NULL, NULL, 0);

	return rc != LDAP_SUCCESS ? rc : err;
}

/* The answer to a step's search: decide, and write when there is something to write. */
static int
on_read(struct provider *p, LDAP *ld, struct bstep *b, LDAPMessage *msg, bool *drop)
{
	int rc = answer_code(ld, msg);

	observe_ldap(p, rc == LDAP_SIZELIMIT_EXCEEDED ? LDAP_SUCCESS : rc, b->sent);
	if ((rc = user_from_result(p, ld, msg, rc, &b->u, &b->lr)) != LDAP_SUCCESS) {
		*drop = *drop || ldap_code_breaks_conn(rc);
		bstep_fail(b, &b->lr);
		return LDAP_SUCCESS;
	}
	seen_put(p, b->guid, b->u.uac);
	plan_step(b->step, &b->u, b->clear, &b->pl);
	if (b->pl.refuse != NULL)
		bstep_settle(b, STEP_OUTCOME_PERMANENT, "refused", b->pl.refuse, b->u.uac);
	else if (b->pl.already != NULL)
		bstep_settle(b, STEP_OUTCOME_SUCCEEDED, "", b->pl.already, b->u.uac);
	else
		return send_write(ld, b, BOP_WRITE, b->u.dn, &b->u);
	return LDAP_SUCCESS;
}

/*
 * The answer to a step's compare-and-swap. A lost race (noSuchAttribute: the value
 * deleted is gone; noSuchObject: the entry moved) reads again: at once after a stale
 * last known value, after a pause when the value had just been read.
 */
static void
on_write(struct provider *p, LDAP *ld, struct bstep *b, enum bop op, LDAPMessage *msg,
    bool *drop)
{
	int rc = answer_code(ld, msg);

	observe_ldap(p, rc, b->sent);
	if (rc == LDAP_SUCCESS) {
		seen_put(p, b->guid, b->pl.uac);
		bstep_settle(b, STEP_OUTCOME_SUCCEEDED, "", b->pl.done, b->pl.uac);
		return;
	}
	lres_set(&b->lr, ld, rc, "modify of %s failed", b->wdn);
	if (rc != LDAP_NO_SUCH_ATTRIBUTE && rc != LDAP_NO_SUCH_OBJECT) {
		*drop = *drop || ldap_code_breaks_conn(rc);
		bstep_fail(b, &b->lr);
		return;
	}
	if (op == BOP_SEEN)
		return;
	if (++b->tries < CAS_TRIES) {
		b->due = provider_clock() + race_pause(b->tries);
		return;
	}
	provider_result_set(b->res, STEP_OUTCOME_TRANSIENT, ldap_code_name(rc),
	    "userAccountControl changed under every one of %d attempts; last: %s",
	    CAS_TRIES, b->lr.msg);
	b->done = true;
	user_clear(&b->u);
}

/* Hands an answer to the step whose operation it is. Frees msg. */
static int
batch_answer(struct provider *p, LDAP *ld, struct bstep *b, size_t n, LDAPMessage *msg,
    bool *drop, struct lres *lr)
{
	int id = ldap_msgid(msg), rc = LDAP_SUCCESS;
	enum bop op;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i].op != BOP_NONE && b[i].msgid == id)
			break;
	if (i == n) {
		ldap_msgfree(msg);
		if (id != 0)
			return LDAP_SUCCESS;
		/* Message id 0 is unsolicited: the server's notice that it is leaving. */
		lres_set(lr, ld, LDAP_SERVER_DOWN, "%s ended the connection", p->url);
		return LDAP_SERVER_DOWN;
	}
	op = b[i].op;
	b[i].op = BOP_NONE;
	b[i].msgid = -1;
	if (op == BOP_READ)
		rc = on_read(p, ld, &b[i], msg, drop);
	else
		on_write(p, ld, &b[i], op, msg, drop);
	ldap_msgfree(msg);
	if (rc != LDAP_SUCCESS)
		*lr = b[i].lr;
	return rc;
}

/* The connection failed under the operations in flight: count each, forget them. */
static void
batch_lost(struct provider *p, struct bstep *b, size_t n, int rc)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i].op != BOP_NONE) {
			observe_ldap(p, rc, b[i].sent);
			b[i].op = BOP_NONE;
			b[i].msgid = -1;
		}
}

/*
 * Sends what is due: each step that has nothing in flight and no pause to sit out
 * starts its next operation. Sets *inflight and *next (the earliest pause's end, 0:
 * none). Returns an LDAP code: a failure to send is the connection's.
 */
static int
batch_send(struct provider *p, LDAP *ld, struct bstep *b, size_t n, size_t *inflight,
    double *next, struct lres *lr)
{
	double now = provider_clock();
	size_t i;
	int rc;

	*inflight = 0;
	*next = 0;
	for (i = 0; i < n; i++) {
		if (b[i].done)
			continue;
		if (b[i].op == BOP_NONE && b[i].due <= now &&
		    (rc = bstep_start(p, ld, &b[i])) != LDAP_SUCCESS) {
			*lr = b[i].lr;
			return rc;
		}
		if (b[i].op != BOP_NONE)
			(*inflight)++;
		else if (*next == 0 || b[i].due < *next)
			*next = b[i].due;
	}
	return LDAP_SUCCESS;
}

static struct timeval
timeval_of(double s)
{
	struct timeval tv = { 0 };

	if (s > 0) {
		tv.tv_sec = (time_t)s;
		tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	}
	return tv;
}

/*
 * Runs the steps of b on one connection with all their operations in flight at once;
 * each answer moves its own step on. The timeout bounds the server's silence, not the
 * batch. Returns LDAP_SUCCESS once every step is settled, or the code of a failure of
 * the connection itself (described in *lr), which leaves the unsettled steps to the
 * caller.
 */
static int
batch_run(struct provider *p, LDAP *ld, struct bstep *b, size_t n, bool *drop,
    struct lres *lr)
{
	double heard = provider_clock(), next, now, wait;
	struct timeval tv;
	LDAPMessage *msg;
	size_t inflight;
	int rc;

	for (;;) {
		if ((rc = batch_send(p, ld, b, n, &inflight, &next, lr)) != LDAP_SUCCESS)
			goto lost;
		now = provider_clock();
		if (inflight == 0 && next == 0)
			return LDAP_SUCCESS;
		if (inflight == 0) {
			struct timespec ts = { 0 };

			ts.tv_nsec = (long)((next - now) * 1e9);
			if (ts.tv_nsec > 0)
				nanosleep(&ts, NULL);
			continue;
		}
		wait = heard + (double)p->timeout - now;
		if (next != 0 && next - now < wait)
			wait = next - now;
		tv = timeval_of(wait);
		msg = NULL;
		rc = ldap_result(ld, LDAP_RES_ANY, LDAP_MSG_ALL, &tv, &msg);
		/* ldap_result returns an answer's type as an int: a type of 0 reads as a
		 * timeout, one past INT_MAX as a failure. */
		if (rc <= 0 && msg != NULL) {
			ldap_msgfree(msg);
			rc = LDAP_PROTOCOL_ERROR;
			lres_set(lr, ld, rc, "%s sent an answer of no LDAP type", p->url);
			goto lost;
		}
		if (rc < 0) {
			ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &rc);
			/* A failure is never a success, whatever the handle says. */
			if (rc == LDAP_SUCCESS)
				rc = LDAP_OTHER;
			lres_set(lr, ld, rc, "reading answers from %s failed", p->url);
			goto lost;
		}
		if (rc == 0) {
			if (provider_clock() - heard < (double)p->timeout)
				continue;
			rc = LDAP_TIMEOUT;
			lres_set(lr, ld, rc, "no answer from %s within %ld s", p->url,
			    p->timeout);
			goto lost;
		}
		heard = provider_clock();
		if ((rc = batch_answer(p, ld, b, n, msg, drop, lr)) != LDAP_SUCCESS)
			goto lost;
	}
lost:
	batch_lost(p, b, n, rc);
	return rc;
}

/* Checks one step and sets up its state; a step refused here is settled at once. */
static void
bstep_init(struct provider *p, const struct step *step, struct step_result *res,
    struct bstep *b)
{
	char gtext[LDAPESC_GUID_TEXT_LEN + 1], *esc = NULL;

	memset(res, 0, sizeof(*res));
	b->step = step;
	b->res = res;
	b->msgid = -1;
	b->done = true;
	if (!ad_supports(p, step->type)) {
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "unsupported",
		    "not supported by Active Directory");
		return;
	}
	if (ldapesc_guid_from_text(step->account_ref, b->guid) != 0 ||
	    ldapesc_guid_to_text(b->guid, sizeof(b->guid), gtext) != 0) {
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "invalidAccountRef",
		    "account reference is not an objectGUID");
		return;
	}
	if (step->type == ACTION_FORCE_PASSWORD_CHANGE && parse_params(step, &b->clear, res) != 0)
		return;
	snprintf(b->gdn, sizeof(b->gdn), "<GUID=%s>", gtext);
	if (ldapesc_filter_binary(b->guid, sizeof(b->guid), &esc) != 0 ||
	    asprintf(&b->filter, "(objectGUID=%s)", esc) == -1) {
		b->filter = NULL;
		free(esc);
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "noMemory", "out of memory");
		return;
	}
	free(esc);
	b->done = false;
}

/* Up to this many steps share one connection, all in flight at once: few enough that
 * their requests and answers fit the sockets' buffers, so sending never waits for
 * the answers not yet read. */
#define BATCH_MAX	32

static size_t
ad_batch_max(enum action_type type)
{
	return ad_supports(NULL, type) ? BATCH_MAX : 1;
}

/*
 * LDAP has no request id worth recording (a message id only means something on its
 * own connection), so res->request_id stays empty. Out of memory is a transient
 * outcome of the steps concerned, never a return: the engine records the results.
 */
static int
ad_execute_batch(struct provider *p, const struct step *const *steps, size_t n,
    struct step_result *res)
{
	struct bstep *b;
	struct lres lr = { 0 };
	struct conn *c = NULL;
	bool fresh, drop = false;
	size_t i, unsettled = 0;
	int rc = LDAP_SUCCESS, attempt;

	if ((b = calloc(n, sizeof(*b))) == NULL) {
		for (i = 0; i < n; i++)
			provider_result_set(&res[i], STEP_OUTCOME_TRANSIENT, "noMemory",
			    "out of memory");
		return 0;
	}
	for (i = 0; i < n; i++) {
		bstep_init(p, steps[i], &res[i], &b[i]);
		unsettled += !b[i].done;
	}
	if (unsettled == 0)
		goto out;
	c = pool_get(p);
	for (attempt = 0;; attempt++) {
		if ((rc = conn_ready(p, c, &fresh, &lr)) != LDAP_SUCCESS) {
			drop = true;
			break;
		}
		if ((rc = batch_run(p, c->ld, b, n, &drop, &lr)) == LDAP_SUCCESS)
			break;
		drop = true;
		/* A handle idle since before a server restart fails at once: reconnect once. */
		if (!fresh && attempt == 0 &&
		    (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR)) {
			conn_drop(c);
			continue;
		}
		break;
	}
	for (i = 0; rc != LDAP_SUCCESS && i < n; i++)
		if (!b[i].done)
			bstep_fail(&b[i], &lr);
	pool_put(p, c, drop);
out:
	for (i = 0; i < n; i++) {
		user_clear(&b[i].u);
		free(b[i].filter);
	}
	free(b);
	return 0;
}

static int
ad_execute(struct provider *p, const struct step *step, struct step_result *res)
{
	return ad_execute_batch(p, &step, 1, res);
}

/* Listing */

static char *
bv_string(const struct berval *bv)
{
	char *s;

	if (bv->bv_len == 0 || memchr(bv->bv_val, '\0', bv->bv_len) != NULL)
		return NULL;
	if ((s = malloc(bv->bv_len + 1)) == NULL)
		return NULL;
	memcpy(s, bv->bv_val, bv->bv_len);
	s[bv->bv_len] = '\0';
	return s;
}

/* The single value of attr, or NULL when it is absent or has more than one value. */
static struct berval **
single(LDAP *ld, LDAPMessage *ent, const char *attr, bool *bad)
{
	struct berval **v = ldap_get_values_len(ld, ent, attr);

	if (v != NULL && (v[0] == NULL || v[1] != NULL)) {
		*bad = true;
		ldap_value_free_len(v);
		return NULL;
	}
	return v;
}

/*
 * Turns one entry into an account and hands it to cb. Returns 1 when the entry is
 * malformed (skipped), -1 out of memory, otherwise 0 with *cbret the callback's value.
 */
static int
list_entry(struct provider *p, LDAP *ld, LDAPMessage *ent, provider_account_cb cb,
    void *arg, int *cbret)
{
	struct berval **guid = NULL, **sid = NULL, **sam = NULL, **upn = NULL;
	struct berval **dname = NULL, **uac = NULL, **mail = NULL;
	char gtext[LDAPESC_GUID_TEXT_LEN + 1], kind[] = "ad", enabled[] = "enabled",
	    disabled[] = "disabled";
	struct account a = { 0 };
	char *dn = NULL;
	uint32_t uacv = 0;
	bool bad = false;
	int r = 1;

	dn = ldap_get_dn(ld, ent);
	guid = single(ld, ent, "objectGUID", &bad);
	sid = single(ld, ent, "objectSid", &bad);
	sam = single(ld, ent, "sAMAccountName", &bad);
	upn = single(ld, ent, "userPrincipalName", &bad);
	dname = single(ld, ent, "displayName", &bad);
	uac = single(ld, ent, "userAccountControl", &bad);
	mail = single(ld, ent, "mail", &bad);
	if (bad || dn == NULL || guid == NULL || sid == NULL || sam == NULL || uac == NULL ||
	    ldapesc_guid_to_text(guid[0]->bv_val, guid[0]->bv_len, gtext) != 0 ||
	    parse_uac(uac[0], &uacv) != 0)
		goto skip;
	switch (ldapesc_sid_to_text(sid[0]->bv_val, sid[0]->bv_len, &a.sid)) {
	case 0:
		break;
	case QERR_NOMEM:
		r = -1;
		goto out;
	default:
		goto skip;
	}
	a.username = bv_string(sam[0]);
	a.upn = upn != NULL ? bv_string(upn[0]) : NULL;
	a.display_name = dname != NULL ? bv_string(dname[0]) : NULL;
	a.email = mail != NULL ? bv_string(mail[0]) : NULL;
	if (a.username == NULL || (upn != NULL && a.upn == NULL) ||
	    (dname != NULL && a.display_name == NULL) || (mail != NULL && a.email == NULL))
		goto skip;
	a.system = p->name;
	a.kind = kind;
	a.external_id = gtext;
	a.dn = dn;
	a.state = uacv & UAC_ACCOUNTDISABLE ? disabled : enabled;
	seen_put(p, (const unsigned char *)guid[0]->bv_val, uacv);
	*cbret = cb(&a, arg);
	r = 0;
	goto out;
skip:
	log_msg(LOG_LVL_WARN, "ad %s: skipped malformed entry %s", p->name,
	    dn != NULL ? dn : "(no DN)");
out:
	free(a.email);
	free(a.display_name);
	free(a.upn);
	free(a.username);
	free(a.sid);
	ldap_value_free_len(mail);
	ldap_value_free_len(uac);
	ldap_value_free_len(dname);
	ldap_value_free_len(upn);
	ldap_value_free_len(sam);
	ldap_value_free_len(sid);
	ldap_value_free_len(guid);
	ldap_memfree(dn);
	return r;
}

/*
 * Pages through the users under base_dn that filter selects. A non-zero value from cb
 * stops the listing and is returned as is. Malformed entries are skipped and logged,
 * with a count.
 */
static int
list_search(struct provider *p, const char *filter, provider_account_cb cb, void *arg,
    struct qerr *e)
{
	struct timeval tv = { .tv_sec = p->timeout };
	struct berval cookie = { 0 };
	LDAPControl *pctrl = NULL, **sctrls = NULL, *ctrls[2] = { NULL, NULL };
	LDAPMessage *msg = NULL, *ent;
	struct lres lr = { 0 };
	struct conn *c;
	size_t skipped = 0;
	bool fresh, drop = false;
	int r = QERR_INTERNAL, rc, cbret = 0, err, x;

	c = pool_get(p);
	if ((rc = conn_ready(p, c, &fresh, &lr)) != LDAP_SUCCESS) {
		drop = true;
		r = qerr_from_lres(e, &lr);
		goto out;
	}
	for (;;) {
		ber_int_t estimate;
		LDAPControl *resp;

		rc = ldap_create_page_control(c->ld, (ber_int_t)p->page_size,
		    cookie.bv_val != NULL ? &cookie : NULL, 1, &pctrl);
		if (rc != LDAP_SUCCESS) {
			lres_set(&lr, c->ld, rc, "cannot build the paged results control");
			r = qerr_from_lres(e, &lr);
			goto out;
		}
		ctrls[0] = pctrl;
		rc = ldap_search_ext_s(c->ld, p->base_dn, LDAP_SCOPE_SUBTREE, filter,
		    (char **)list_attrs, 0, ctrls, NULL, &tv, LDAP_NO_LIMIT, &msg);
		ldap_control_free(pctrl);
		pctrl = NULL;
		if (rc != LDAP_SUCCESS) {
			lres_set(&lr, c->ld, rc, "listing users under %s failed", p->base_dn);
			drop = ldap_code_breaks_conn(rc);
			r = qerr_from_lres(e, &lr);
			goto out;
		}
		for (ent = ldap_first_entry(c->ld, msg); ent != NULL && cbret == 0;
		    ent = ldap_next_entry(c->ld, ent)) {
			if ((x = list_entry(p, c->ld, ent, cb, arg, &cbret)) < 0) {
				r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
				goto out;
			}
			skipped += (size_t)x;
		}
		if (cbret != 0) {
			/* The server keeps the paging state per connection: drop it. */
			drop = true;
			r = cbret;
			goto out;
		}
		ber_memfree(cookie.bv_val);
		cookie.bv_val = NULL;
		cookie.bv_len = 0;
		rc = ldap_parse_result(c->ld, msg, &err, NULL, NULL, NULL, &sctrls, 0);
		if (rc != LDAP_SUCCESS) {
			lres_set(&lr, c->ld, rc, "cannot parse the search result");
			drop = true;
			r = qerr_from_lres(e, &lr);
			goto out;
		}
		resp = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, sctrls, NULL);
		/* A control without a value fails an assertion in liblber's ber_init. */
		if (resp != NULL && (resp->ldctl_value.bv_val == NULL ||
		    ldap_parse_pageresponse_control(c->ld, resp, &estimate, &cookie) !=
		    LDAP_SUCCESS)) {
			lres_set(&lr, c->ld, LDAP_DECODING_ERROR,
			    "the server sent a malformed paged results control");
			r = qerr_from_lres(e, &lr);
			goto out;
		}
		ldap_controls_free(sctrls);
		sctrls = NULL;
		ldap_msgfree(msg);
		msg = NULL;
		if (cookie.bv_val == NULL || cookie.bv_len == 0)
			break;
	}
	if (skipped > 0)
		log_msg(LOG_LVL_WARN, "ad %s: %zu malformed entries skipped", p->name, skipped);
	r = 0;
out:
	ldap_controls_free(sctrls);
	ldap_msgfree(msg);
	ber_memfree(cookie.bv_val);
	pool_put(p, c, drop);
	return r;
}

static int
ad_list_accounts(struct provider *p, provider_account_cb cb, void *arg, struct qerr *e)
{
	return list_search(p, USER_FILTER, cb, arg, e);
}

/* The single value of attr in the first entry of msg, as text of at most max bytes. */
static int
first_value(LDAP *ld, LDAPMessage *msg, const char *attr, bool guid, char *out,
    size_t max)
{
	LDAPMessage *ent = ldap_first_entry(ld, msg);
	struct berval **v;
	bool bad = false;
	int r = -1;

	if (ent == NULL || (v = single(ld, ent, attr, &bad)) == NULL)
		return -1;
	if (guid)
		r = max > LDAPESC_GUID_TEXT_LEN ?
		    ldapesc_guid_to_text(v[0]->bv_val, v[0]->bv_len, out) : -1;
	else if (v[0]->bv_len > 0 && v[0]->bv_len < max &&
	    memchr(v[0]->bv_val, '\0', v[0]->bv_len) == NULL) {
		memcpy(out, v[0]->bv_val, v[0]->bv_len);
		out[v[0]->bv_len] = '\0';
		r = 0;
	}
	ldap_value_free_len(v);
	return r;
}

/*
 * Which domain controller answers and how far its changes go: the rootDSE's
 * highestCommittedUSN, and the invocationId of its NTDS Settings object (a restored
 * or another DC has another), or its dsServiceName when that cannot be read.
 */
static int
dc_position(struct provider *p, LDAP *ld, char dc[DC_ID_MAX], unsigned long long *usn,
    struct lres *lr)
{
	static const char *const root_attrs[] = { "dsServiceName", "highestCommittedUSN",
	    NULL };
	static const char *const inv_attrs[] = { "invocationId", NULL };
	struct timeval tv = { .tv_sec = p->timeout };
	LDAPMessage *msg = NULL;
	char svc[DC_ID_MAX], num[24], *end;
	int rc;

	rc = ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)",
	    (char **)root_attrs, 0, NULL, NULL, &tv, 1, &msg);
	if (rc != LDAP_SUCCESS || first_value(ld, msg, "dsServiceName", false, svc,
	    sizeof(svc)) != 0 || first_value(ld, msg, "highestCommittedUSN", false, num,
	    sizeof(num)) != 0) {
		lres_set(lr, ld, rc != LDAP_SUCCESS ? rc : LDAP_DECODING_ERROR,
		    "reading the rootDSE of %s", p->url);
		ldap_msgfree(msg);
		return rc != LDAP_SUCCESS ? rc : LDAP_DECODING_ERROR;
	}
	ldap_msgfree(msg);
	msg = NULL;
	errno = 0;
	*usn = strtoull(num, &end, 10);
	if (errno != 0 || *end != '\0' || num[0] == '-') {
		lres_set(lr, ld, LDAP_DECODING_ERROR, "%s sent a malformed "
		    "highestCommittedUSN", p->url);
		return LDAP_DECODING_ERROR;
	}
	rc = ldap_search_ext_s(ld, svc, LDAP_SCOPE_BASE, "(objectClass=*)",
	    (char **)inv_attrs, 0, NULL, NULL, &tv, 1, &msg);
	if (rc != LDAP_SUCCESS || first_value(ld, msg, "invocationId", true, dc,
	    DC_ID_MAX) != 0)
		snprintf(dc, DC_ID_MAX, "%s", svc);
	ldap_msgfree(msg);
	return LDAP_SUCCESS;
}

static int
read_position(struct provider *p, char dc[DC_ID_MAX], unsigned long long *usn,
    struct qerr *e)
{
	struct lres lr = { 0 };
	struct conn *c = pool_get(p);
	bool fresh, drop = false;
	int rc;

	if ((rc = conn_ready(p, c, &fresh, &lr)) == LDAP_SUCCESS)
		rc = dc_position(p, c->ld, dc, usn, &lr);
	if (rc != LDAP_SUCCESS)
		drop = rc < 0 || ldap_code_breaks_conn(rc);
	pool_put(p, c, drop);
	return rc == LDAP_SUCCESS ? 0 : qerr_from_lres(e, &lr);
}

/* "ad1 <usn> <dc>": the USN of the last listing on that DC; 0 when not ours. */
static int
parse_cursor(const char *since, char dc[DC_ID_MAX], unsigned long long *usn)
{
	const char *sp;
	char *end;

	if (since == NULL || strncmp(since, CURSOR_TAG " ", 4) != 0)
		return -1;
	errno = 0;
	*usn = strtoull(since + 4, &end, 10);
	if (errno != 0 || end == since + 4 || *end != ' ' || since[4] == '-')
		return -1;
	sp = end + 1;
	if (*sp == '\0' || strlen(sp) >= DC_ID_MAX)
		return -1;
	snprintf(dc, DC_ID_MAX, "%s", sp);
	return 0;
}

/*
 * Incremental by uSNChanged: the users changed on this DC since the last listing.
 * USNs are per DC, so a cursor from another DC (or a restored one) means a full
 * listing. The position is read before the search: a change made during the listing
 * is read again next time rather than missed. Deletions do not show here (they move
 * to Deleted Objects): a full listing finds them.
 */
static int
ad_list_changes(struct provider *p, const char *since, provider_account_cb cb,
    void *arg, char **next, bool *full, struct qerr *e)
{
	char dc[DC_ID_MAX], old_dc[DC_ID_MAX], filter[128];
	unsigned long long usn = 0, old_usn = 0;
	int r;

	*next = NULL;
	if ((r = read_position(p, dc, &usn, e)) != 0)
		return r;
	*full = parse_cursor(since, old_dc, &old_usn) != 0 || strcmp(old_dc, dc) != 0 ||
	    old_usn > usn;
	if (*full)
		r = list_search(p, USER_FILTER, cb, arg, e);
	else {
		snprintf(filter, sizeof(filter), "(&" USER_FILTER "(uSNChanged>=%llu))",
		    old_usn + 1);
		r = list_search(p, filter, cb, arg, e);
	}
	if (r == 0 && asprintf(next, CURSOR_TAG " %llu %s", usn, dc) < 0) {
		*next = NULL;
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	return r;
}

/* An alert names an AD account by its UPN or objectSid. */
static const struct kind_alert_id ad_alert_ids[] = {
	{ "upn", KIND_MATCH_UPN, "a upn looks like user@domain, without blanks",
	    kind_valid_upn },
	{ "sid", KIND_MATCH_SID, "a sid looks like S-1-5-21-…-1104", kind_valid_sid },
};

/* The account quell binds with is never contained automatically. */
static const struct kind_self_account ad_self[] = {
	{ "bind_dn", KIND_ACCOUNT_DN },
};

static const struct kind_info ad_info = {
	.kind = "ad",
	.graph_provider = "activeDirectory",
	.ref_valid = kind_ref_guid,
	.ref_hint = "an objectGUID",
	.alert_ids = ad_alert_ids,
	.nalert_ids = sizeof(ad_alert_ids) / sizeof(ad_alert_ids[0]),
	.self_accounts = ad_self,
	.nself_accounts = sizeof(ad_self) / sizeof(ad_self[0]),
};

/*
 * The account's userAccountControl read now, on a pooled connection: another node's
 * sync or step may have changed it, and this node's cache holds only what it read
 * itself. 0, or -1 (unreachable, not found: the caller falls back to the cache).
 */
static int
read_uac_now(struct provider *p, const unsigned char guid[LDAPESC_GUID_LEN],
    uint32_t *uac)
{
	struct timeval tv = { .tv_sec = p->timeout };
	struct lres lr = { 0 };
	LDAPMessage *msg = NULL;
	struct user u = { 0 };
	struct conn *c = pool_get(p);
	char *esc = NULL, *filter = NULL;
	bool fresh, drop = false;
	int rc = -1;

	if (conn_ready(p, c, &fresh, &lr) != LDAP_SUCCESS)
		goto out;
	if (ldapesc_filter_binary(guid, LDAPESC_GUID_LEN, &esc) != 0 ||
	    asprintf(&filter, "(objectGUID=%s)", esc) == -1) {
		filter = NULL;
		goto out;
	}
	rc = ldap_search_ext_s(c->ld, p->base_dn, LDAP_SCOPE_SUBTREE, filter,
	    (char **)user_attrs, 0, NULL, NULL, &tv, 2, &msg);
	drop = ldap_code_breaks_conn(rc);
	rc = user_from_result(p, c->ld, msg, rc, &u, &lr) == LDAP_SUCCESS ? 0 : -1;
	if (rc == 0) {
		*uac = u.uac;
		seen_put(p, guid, u.uac);
	}
out:
	user_clear(&u);
	ldap_msgfree(msg);
	free(filter);
	free(esc);
	pool_put(p, c, drop);
	return rc;
}

/* The preview's warning: a forced change where the password never expires, from the
 * flags read now (else the ones a sync or a step of this node last read). */
static bool
ad_refuses(const struct provider *p, const struct account *acct, enum action_type type,
    char *why, size_t len)
{
	struct provider *rw = (struct provider *)p;
	unsigned char guid[LDAPESC_GUID_LEN];
	uint32_t uac;

	if (type != ACTION_FORCE_PASSWORD_CHANGE || acct->external_id == NULL ||
	    ldapesc_guid_from_text(acct->external_id, guid) != 0 ||
	    (read_uac_now(rw, guid, &uac) != 0 && !seen_get(rw, guid, &uac)) ||
	    !(uac & UAC_DONT_EXPIRE_PASSWD))
		return false;
	snprintf(why, len, "%s", DONT_EXPIRE_REFUSAL);
	return true;
}

const struct provider_ops provider_ad = {
	.kind = "ad",
	.info = &ad_info,
	.keys = ad_keys,
	.open = ad_open,
	.supports = ad_supports,
	.refuses = ad_refuses,
	.execute = ad_execute,
	.batch_max = ad_batch_max,
	.execute_batch = ad_execute_batch,
	.list_accounts = ad_list_accounts,
	.list_changes = ad_list_changes,
	.close = ad_close,
};
