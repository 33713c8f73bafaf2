/*
 * The provider kit: what every identity system's provider needs and none should write
 * again. Key tables (the generic parser behind provider_ops.keys), secret files, URL
 * checks, Retry-After and Link headers, rate pacing and the OAuth 2.0 token cache.
 */
#ifndef QUELL_PROVIDERS_KIT_H
#define QUELL_PROVIDERS_KIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "providers/http.h"
#include "providers/provider.h"

/* ------------------------------------------------------------- kit_keys.c */

/*
 * Reads cfg's keys into settings as keys describe them (the table ends with an entry
 * whose name is NULL). The keys the engine reads (kind, max_concurrency,
 * sync_interval) are skipped; any other key the table does not name is refused, a
 * required one missing is refused, and so is a value that is not of its type, with
 * "file:line: reason" and e->field the key. Absent keys with a default get it.
 * On error the settings may hold some values: provider_keys_clear frees them.
 */
int provider_keys_parse(const struct provider_key *keys, const struct system_config *cfg,
    void *settings, struct qerr *e);
/* Frees (zeroing secrets) what provider_keys_parse stored; safe on zeroed settings. */
void provider_keys_clear(const struct provider_key *keys, void *settings);

/* Validators for struct provider_key.valid. */
bool kit_one_word(const char *v);	/* printable ASCII, no blanks, not empty */

/* ----------------------------------------------------------- kit_secret.c */

/* A file's contents; buf is NUL-terminated and zeroed before it is freed. */
struct kit_secret {
	char *buf;
	size_t len;
};

#define KIT_FILE_SECRET		1u	/* refused when others may read or write it */
#define KIT_FILE_ONE_LINE	2u	/* one line: a password, a token */

/*
 * Reads the file kv names: a regular file of 1 to max bytes of text, trailing
 * newlines dropped. Errors are "file:line: <key> <path>: reason" (a secret's contents
 * never appear in one). The caller clears *out.
 */
int kit_file_read(const struct system_config *cfg, const struct config_kv *kv,
    unsigned flags, size_t max, struct kit_secret *out, struct qerr *e);
void kit_secret_clear(struct kit_secret *s);
/* Zeroes the n bytes at p and frees it; NULL is fine. */
void kit_free_zero(void *p, size_t n);
/* kit_free_zero for a NUL-terminated string. */
void kit_free_str(char *s);

/* -------------------------------------------------------------- kit_url.c */

/* The parts of a URL kit_url_parse accepted. */
struct kit_url {
	size_t scheme;		/* index of the scheme in the list given */
	size_t origin_len;	/* of scheme://host[:port] */
	const char *path;	/* what follows the origin: "" or "/…" */
};

/*
 * scheme://host[:port][/path] with one of the space-separated schemes, host a name,
 * an IPv4 or a bracketed IPv6 address, port 1 to 65535; no user info, query, fragment,
 * percent sign or blank. Returns 0 or -1.
 */
int kit_url_parse(const char *url, const char *schemes, struct kit_url *out);
/* A URL of nothing but an origin, with at most a trailing '/'. */
bool kit_url_no_path(const char *url);
/* Whether url is on origin (scheme://host[:port]) with a path: where a bearer token
 * may follow a link. */
bool kit_url_under(const char *url, const char *origin);

/* --------------------------------------------------------- kit_http_hdr.c */

/*
 * The longest wait a Retry-After is obeyed for. An API asking for more is either
 * wrong or down for long; either way the engine is better off asking again in a
 * quarter of an hour than parking a containment step for a day.
 */
#define KIT_RETRY_AFTER_CAP_MS	(15 * 60 * 1000)

/*
 * A Retry-After value (RFC 9110 10.2.3): delay-seconds (Graph sends fractions too)
 * or an HTTP-date in any of its three forms, against now_ms (real time). *out_ms is
 * in [0, KIT_RETRY_AFTER_CAP_MS]. Returns 0, or -1 for anything else.
 */
int kit_retry_after_parse(const char *v, int64_t now_ms, int64_t *out_ms);
/* The answer's Retry-After in ms, or -1 when it has none that parses. */
int kit_retry_after(const struct http_response *resp);
/* The wait before retry number attempt (1 = first) of a 429 that named none:
 * exponential from 1 s to a minute, jittered so waiting steps do not return at once. */
int kit_backoff_ms(int attempt);
/*
 * The URL of the Link header's rel="next" (RFC 8288) in *next (caller frees; NULL
 * when there is none). It must be under origin (kit_url_under): else -1, as for a
 * malformed header. QERR_NOMEM.
 */
int kit_link_next(const struct http_response *resp, const char *origin, char **next);

/* ------------------------------------------------------------ kit_pace.c */

/*
 * A vendor's budget: a token bucket (cap requests at once, rate per ms after) and a
 * hold (no request before hold_ms, after the vendor throttled us anyway). Times are
 * monotonic ms. Callers lock.
 */
struct kit_bucket {
	double tokens;		/* negative: reserved by callers still waiting */
	double cap;
	double rate;
	int64_t last_ms;
	int64_t hold_ms;
};

/* A bucket that never lets more than n requests through in any window of window_ms. */
void kit_bucket_init(struct kit_bucket *b, double n, int64_t window_ms, int64_t now);
/* Reserves one request; returns how long to wait before sending it. */
int64_t kit_bucket_take(struct kit_bucket *b, int64_t now);
/* Gives back a reservation that will not be sent. */
void kit_bucket_return(struct kit_bucket *b);
/* No request before until (monotonic ms). */
void kit_bucket_hold(struct kit_bucket *b, int64_t until);

/*
 * The outcome of a request quell held back rather than sent: transient, retried after
 * wait_ms, not_sent so that the engine counts a wait and not an attempt.
 */
void kit_result_paced(struct step_result *res, int64_t wait_ms, const char *why);

/* ----------------------------------------------------------- kit_oauth.c */

/*
 * How an app signs in with the OAuth 2.0 client credentials grant (RFC 6749 4.4):
 * with a client secret, or with a private key through a signed client assertion
 * (private_key_jwt, RFC 7523). Everything is borrowed from the provider.
 */
struct kit_oauth_config {
	const char *vendor;		/* for messages: "Entra ID" */
	const char *token_url;
	const char *client_id;
	const char *scope;
	const struct kit_secret *secret;	/* client secret, or NULL … */
	const char *key_pem;		/* … or the private key */
	const char *alg;		/* "RS256", "ES256" */
	const char *x5t;		/* the certificate's x5t#S256 header, or NULL */
	const char *kid;		/* a kid header, or NULL */
};

/* Sends the token request as http_do does: the provider's own pacing and accounting
 * go here. */
typedef int (*kit_oauth_send)(void *arg, const struct http_request *req,
    struct http_response *resp, struct qerr *e);

/* The cached access token, renewed before it ends; shared by every thread. */
struct kit_oauth {
	struct kit_oauth_config cfg;
	kit_oauth_send send;
	void *arg;
	pthread_mutex_t mu;	/* held while a token is fetched */
	bool ready;
	char *token;		/* zeroed before free */
	int64_t renew_ms;	/* monotonic: fetch a new one from here on */
	unsigned gen;
};

int kit_oauth_init(struct kit_oauth *o, const struct kit_oauth_config *cfg,
    kit_oauth_send send, void *arg, struct qerr *e);
void kit_oauth_clear(struct kit_oauth *o);
/*
 * "Bearer <token>" in *auth (caller frees with kit_free_str). stale_gen is the
 * generation the API just refused (or 0): only that one is replaced, so threads that
 * saw the same 401 renew once between them; *gen is the generation handed out.
 * Errors: QERR_TRANSIENT (no answer, 429, 5xx) or QERR_PERMANENT, with e->status
 * (the HTTP status) and e->vendor_code (the OAuth error) set; QERR_NOMEM.
 */
int kit_oauth_get(struct kit_oauth *o, unsigned stale_gen, char **auth, unsigned *gen,
    struct qerr *e);
/* A client assertion for cfg (for checking a key at start); caller frees. */
int kit_oauth_assertion(const struct kit_oauth_config *cfg, char **jws, struct qerr *e);

#endif
