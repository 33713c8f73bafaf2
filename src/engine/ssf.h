/*
 * OpenID Shared Signals (SSF 1.0) transmitter: quell's successful containment and
 * release steps become Security Event Tokens (RFC 8417), signed with the [ssf] key,
 * one per stream that asked for the event, queued in the store's outbox in the
 * order of the audit log, then pushed (RFC 8935) or left for polling (RFC 8936).
 */
#ifndef QUELL_ENGINE_SSF_H
#define QUELL_ENGINE_SSF_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "core/err.h"
#include "core/model.h"
#include "providers/kit.h"
#include "store/store.h"

#define SSF_PUSH	"urn:ietf:rfc:8935"
#define SSF_POLL	"urn:ietf:rfc:8936"
#define SSF_RISC	"https://schemas.openid.net/secevent/risc/event-type/"
#define SSF_CAEP	"https://schemas.openid.net/secevent/caep/event-type/"
#define SSF_VERIFICATION	"https://schemas.openid.net/secevent/ssf/event-type/verification"
/* The audit entry of a verification request ({stream_id, state}): its SET is made
 * from the log in order with the others. */
#define SSF_VERIFY_AUDIT	"ssf.verification_requested"

/* The [ssf] section, validated: all borrowed from the configuration but key_pem
 * (zeroed and freed by ssf_conf_clear) and jwks (decref'd there). */
struct ssf_conf {
	const char *issuer;	/* quell's public base URL, no trailing slash */
	const char *kid;
	const char *alg;	/* "ES256" or "RS256", from the key */
	const char *default_subjects;	/* "ALL" (the default) or "NONE" */
	char *key_pem;
	json_t *jwks;		/* {"keys": [the public key]} */
};

/*
 * Where the [ssf] key is another process's (privilege separation: the executor): set
 * once, before any ssf_conf_load. With it, ssf_conf_load never reads key_file (its
 * key_pem stays NULL) but takes the public JWK (a reference the caller owns) and alg
 * ("ES256" or "RS256", static) from public_key, and ssf_sign has sign sign the SET
 * as jwt_sign would. Errors as jwt_sign's.
 */
struct ssf_key_holder {
	int (*public_key)(json_t **jwk, const char **alg, struct qerr *e);
	int (*sign)(const char *alg, const char *header_json, const char *claims_json,
	    char **jwt, struct qerr *e);
};
void ssf_set_key_holder(const struct ssf_key_holder *holder);

/* Loads [ssf]; *enabled is false (and out zeroed) when there is none. Errors name the
 * key and the reason. */
int ssf_conf_load(const struct config *cfg, struct ssf_conf *out, bool *enabled,
    struct qerr *e);
void ssf_conf_clear(struct ssf_conf *c);

/* The event types quell transmits, NULL-terminated. */
extern const char *const ssf_events_supported[];

/* Signs the SET with claims (borrowed; iss, iat, jti are added) for stream config
 * (its aud); *jti and *jwt are the caller's to free. */
int ssf_sign(const struct ssf_conf *c, const json_t *stream, json_t *claims,
    char **jti, char **jwt, struct qerr *e);

/* ssf_subjects.c. A stream's subjects live in its configuration under this key. */
#define SSF_SUBJECTS_KEY	"quell_subjects"

/* Whether sub is an RFC 9493 subject that can name a quell account (email, account,
 * iss_sub, opaque, complex of user and tenant, aliases of those): 0, or -1 with the
 * reason in why. */
int ssf_subject_check(const json_t *sub, char *why, size_t n);
/* Whether sub names account a; issuer is quell's, for iss_sub. */
bool ssf_subject_names(const json_t *sub, const struct account *a, const char *issuer);
/* The subjects of a new stream (a new reference), default_subjects "ALL" or "NONE". */
json_t *ssf_subjects_new(const char *default_subjects);
/* Whether the stream's events about a are delivered: per its default_subjects, less
 * (ALL) or only (NONE) the subjects removed or added since. */
bool ssf_stream_includes(const json_t *stream, const struct account *a,
    const char *issuer);
/* Adds (add) or removes sub (checked already) in the stream's configuration: 0,
 * QERR_NOT_FOUND (removing a subject a NONE stream does not hold), QERR_INVALID (too
 * many), with the reason in why; QERR_NOMEM. */
int ssf_stream_subject_edit(json_t *stream, const json_t *sub, bool add, char *why,
    size_t n);

/* The outbox's generation in this process: it moves whenever SETs were queued
 * (ssf_outbox_queued), so that a long poll (RFC 8936) answers at once.
 * ssf_outbox_wait returns once it differs from seen, *stop is true (with a call
 * to ssf_outbox_queued after setting it) or timeout_ms passed. */
uint64_t ssf_outbox_generation(void);
void ssf_outbox_queued(void);
void ssf_outbox_wait(uint64_t seen, const _Atomic bool *stop, int timeout_ms);

struct ssf;
struct http_client;
struct engine;

/* Why a SET was refused (ssf_receive.c): RFC 8935's err, the HTTP status a push is
 * answered with (400, 401, 503) and the reason; replay: its jti was taken before. */
struct ssf_refusal {
	unsigned status;
	const char *err;
	char why[256];
	bool replay;
};

/* Fills f (HTTP status, RFC 8935 error code, the reason) and returns -1, for a
 * refusing check to return. */
int ssf_refuse(struct ssf_refusal *f, unsigned status, const char *err, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

/* The [ssf_receiver "name"] of cfg, borrowed; NULL when there is none. */
const struct system_config *ssf_receiver_find(const struct config *cfg,
    const char *name);
/* Takes a SET from rc's transmitter: verified (signature, iss, aud, iat, a jti never
 * seen), then an alert for eng's disruption rules. 0, or -1 with *f. *claims, the
 * verified claims or NULL, is the caller's. */
int ssf_receive(struct engine *eng, struct store *st, const struct system_config *rc,
    const char *set, json_t **claims, struct ssf_refusal *f);
/* Audits a SET taken (f NULL: ssf.received) or refused (ssf.refused, with f's err and
 * reason), as the principal ssf:NAME; client: where it came from. */
void ssf_receive_audit(struct engine *eng, const char *name, const char *client,
    const json_t *claims, const struct ssf_refusal *f);

/* An [ssf_receiver] that subscribes itself (push_url): borrowed from the
 * configuration but for the client secret and the token cache of its OAuth client
 * credentials (oauth_on), which ssf_stop clears. */
struct ssf_sub {
	const struct system_config *rc;
	bool oauth_on;
	bool done;			/* subscribed */
	bool poll;			/* quell polls (delivery = poll, poll_url) */
	struct kit_secret secret;
	struct kit_oauth oauth;
	char *poll_url;			/* the transmitter's poll endpoint, once known */
	json_t *acks;			/* jtis to acknowledge with the next poll */
	json_t *errs;			/* setErrs for it: {jti: {err, description}} */
	int64_t poll_next, poll_delay;	/* ms: when to poll, the backoff */
};

/* Subscribes quell to the transmitter of an [ssf_receiver] with configuration_url
 * and push_url (ssf_subscribe.c): creates a push stream to push_url there unless
 * one exists, authenticated by api_token_file's token or one from the OAuth token
 * endpoint. QERR_TRANSIENT (try again later) or QERR_PERMANENT, with the reason. */
int ssf_subscribe(struct http_client *h, struct ssf_sub *sub, struct qerr *e);
/* One round of RFC 8936 polling of sub's transmitter (ssf_subscribe.c): the
 * acknowledgements of the last round sent, each SET received taken as a pushed one
 * (ssf_receive) and audited, then acknowledged (taken, or a replay), reported in
 * setErrs (refused) or left for the transmitter to send again (quell could not
 * decide: its store or the transmitter's keys unreachable). *more: SETs are waiting
 * or acknowledgements are to be sent. */
int ssf_poll_receive(struct http_client *h, struct engine *eng, struct store *st,
    struct ssf_sub *sub, bool *more, struct qerr *e);

/* What ssf_start refuses, without starting anything: [ssf] (its key_file read here
 * unless another process holds the key) and every [ssf_receiver], with the files they
 * name. For quelld check. */
int ssf_check(const struct config *cfg, struct qerr *e);

/* Starts the thread that fills the outbox from the audit log and pushes, and
 * subscribes the receivers that ask to; *out is NULL when there is neither. Stopped (and freed) with ssf_stop, which accepts NULL. */
int ssf_start(const struct config *cfg, struct store *st, struct ssf **out,
    struct qerr *e);
void ssf_stop(struct ssf *s);
/* Gives the running thread its engine, for the alerts of the SETs it polls; until
 * then it polls none. */
void ssf_attach(struct ssf *s, struct engine *eng);
/* The running transmitter's [ssf], borrowed; NULL for s NULL. */
const struct ssf_conf *ssf_conf_of(const struct ssf *s);

#endif
