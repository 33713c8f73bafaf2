/*
 * The wire format between quelld's front process and its executor (the process that
 * alone holds the identity systems' credentials): pure encoding and decoding, no I/O.
 *
 * A message is an 8-byte header {magic and version u16, type u16, payload length u32},
 * all big-endian, then its fields in the order its type's schema gives: a string is
 * 's', a u32 length, the bytes and a NUL (counted in the payload); an absent optional
 * string is 'n'; an integer is 'i' and 8 bytes, two's complement. Decoding checks the
 * header, every field's tag, length, text class and range against the schema and
 * that nothing follows the last field: whatever it accepts, the typed readers below
 * can use without further checks.
 */
#ifndef QUELL_PRIVSEP_MSG_H
#define QUELL_PRIVSEP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/model.h"
#include "providers/provider.h"

/* 'Q', format version 2 (version 1 had none of REDEEM to SIGNED). */
#define PRIVSEP_MAGIC		0x5102u
#define PRIVSEP_HDR_LEN		8
/* The largest payload: a configuration file (1 MiB) with room for its path. */
#define PRIVSEP_PAYLOAD_MAX	((1u << 20) + 8192u)
#define PRIVSEP_FIELDS_MAX	24
/* The most steps one EXECUTE_BATCH carries (a provider's batch_max is capped here). */
#define PRIVSEP_BATCH_MAX	64

enum privsep_type {
	PRIVSEP_LOAD = 1,	/* front: path, configuration text; reply CAPS… END | ERROR */
	PRIVSEP_SWAP,		/* front: the loaded systems replace those in force; END */
	PRIVSEP_DROP,		/* front: close the systems not in force; END */
	PRIVSEP_CAPS,		/* executor: one system's name, kind, supported actions */
	PRIVSEP_EXECUTE,	/* front: system and step; reply RESULT | ERROR */
	PRIVSEP_BATCH,		/* front: n EXECUTE follow; reply n × (RESULT | ERROR) */
	PRIVSEP_RESULT,		/* executor: a struct step_result */
	PRIVSEP_REFUSES,	/* front: system, action type, account; reply REFUSAL */
	PRIVSEP_REFUSAL,	/* executor: whether it refuses, and why */
	PRIVSEP_LIST,		/* front: system, changes?, since; reply ACCOUNT… END | ERROR */
	PRIVSEP_ACCOUNT,	/* executor: one account of a listing */
	PRIVSEP_STOP,		/* front, during a listing: stop at the next account */
	PRIVSEP_END,		/* executor: next cursor, full */
	PRIVSEP_METRIC,		/* executor: one metrics update its providers made */
	PRIVSEP_ERROR,		/* either: code, field, message */
	PRIVSEP_REDEEM,		/* front: OIDC code, verifier, redirect_uri; TOKEN | ERROR */
	PRIVSEP_TOKEN,		/* executor: the token endpoint's status and body */
	PRIVSEP_SSF_KEY,	/* front: the [ssf] key's public half; SSF_PUBLIC | ERROR */
	PRIVSEP_SSF_PUBLIC,	/* executor: its alg and public JWK */
	PRIVSEP_SIGN,		/* front: a SET's JOSE header and claims; SIGNED | ERROR */
	PRIVSEP_SIGNED,		/* executor: the signed SET */
	PRIVSEP_TYPE_END
};

struct privsep_field {
	const char *s;		/* NULL: an absent optional string, or an integer */
	size_t len;		/* of s */
	int64_t i;
};

/* A decoded message: strings point into the decoded buffer (borrowed) and end in NUL. */
struct privsep_msg {
	enum privsep_type type;
	size_t n;
	struct privsep_field f[PRIVSEP_FIELDS_MAX];
};

/* A growing output buffer; on out of memory it stops growing and oom is set. */
struct privsep_buf {
	unsigned char *p;
	size_t len, cap;
	size_t start;		/* of the message being built */
	bool oom;
};

/* Frees the buffer (NULL is fine: an empty one) after zeroing it: it may have held a
 * configuration. */
void privsep_buf_clear(struct privsep_buf *b);

/* Room for need more bytes; false (oom set) when there is none. */
bool privsep_buf_reserve(struct privsep_buf *b, size_t need);
/* Starts a message of type t: fields follow with privsep_put_*, then privsep_finish. */
void privsep_begin(struct privsep_buf *b, enum privsep_type t);
void privsep_put_str(struct privsep_buf *b, const char *s);	/* NULL: absent */
void privsep_put_int(struct privsep_buf *b, int64_t v);
/* Closes the message begun last and checks it as the peer would decode it: 0, or
 * QERR_INVALID naming the field (the message is taken back off b), QERR_NOMEM. */
int privsep_finish(struct privsep_buf *b, struct qerr *e);

/* The payload length a header announces, or QERR_INVALID (bad magic or version, an
 * unknown type, too long), with the reason in e. */
int privsep_header(const unsigned char hdr[PRIVSEP_HDR_LEN], size_t *len, struct qerr *e);
/* Decodes one whole message (header and payload, len bytes) into *m; 0 or
 * QERR_INVALID with the field and the reason in e. */
int privsep_decode(const unsigned char *buf, size_t len, struct privsep_msg *m,
    struct qerr *e);

/* Typed messages. The put_ functions begin and finish a message. */
int privsep_put_execute(struct privsep_buf *b, const char *system, const struct step *s,
    struct qerr *e);
/* A step from an EXECUTE: its strings borrowed from m; system in *system. */
void privsep_get_execute(const struct privsep_msg *m, const char **system, struct step *s);
/* Text a provider wrote that is not valid UTF-8 is sent with '?' in its place. */
int privsep_put_result(struct privsep_buf *b, const struct step_result *res,
    struct qerr *e);
void privsep_get_result(const struct privsep_msg *m, struct step_result *res);
int privsep_put_account(struct privsep_buf *b, enum privsep_type t, const char *system,
    int64_t type, const struct account *a, struct qerr *e);
/* An account from an ACCOUNT or REFUSES message, strings borrowed from m. */
void privsep_get_account(const struct privsep_msg *m, struct account *a);
int privsep_put_error(struct privsep_buf *b, int code, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* An ERROR's code, field and message into e; returns the code. */
int privsep_get_error(const struct privsep_msg *m, struct qerr *e);

/* Field positions, for the readers of the other types. */
enum { PRIVSEP_LOAD_PATH, PRIVSEP_LOAD_TEXT };
enum { PRIVSEP_CAPS_NAME, PRIVSEP_CAPS_KIND, PRIVSEP_CAPS_SUPPORTS };
enum { PRIVSEP_BATCH_SYSTEM, PRIVSEP_BATCH_N };
enum { PRIVSEP_REFUSES_SYSTEM, PRIVSEP_REFUSES_TYPE };
enum { PRIVSEP_REFUSAL_YES, PRIVSEP_REFUSAL_WHY };
enum { PRIVSEP_LIST_SYSTEM, PRIVSEP_LIST_CHANGES, PRIVSEP_LIST_SINCE };
enum { PRIVSEP_END_NEXT, PRIVSEP_END_FULL };
enum { PRIVSEP_REDEEM_CODE, PRIVSEP_REDEEM_VERIFIER, PRIVSEP_REDEEM_REDIRECT_URI };
enum { PRIVSEP_TOKEN_STATUS, PRIVSEP_TOKEN_BODY };
enum { PRIVSEP_SSF_PUBLIC_ALG, PRIVSEP_SSF_PUBLIC_JWK };
enum { PRIVSEP_SIGN_HEADER, PRIVSEP_SIGN_CLAIMS };
enum { PRIVSEP_SIGNED_JWT };
/* fam, op, value in nanounits, then the label values. */
enum { PRIVSEP_METRIC_FAM, PRIVSEP_METRIC_OP, PRIVSEP_METRIC_NANO, PRIVSEP_METRIC_LABEL };

const char *privsep_type_name(enum privsep_type t);

#endif
