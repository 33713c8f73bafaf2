/* Error codes shared by every module, and the struct that carries transport detail. */
#ifndef QUELL_CORE_ERR_H
#define QUELL_CORE_ERR_H

enum qerr_code {
	QERR_OK = 0,
	QERR_INTERNAL = -1,
	QERR_NOMEM = -2,
	QERR_INVALID = -3,      /* bad input: names a field */
	QERR_NOT_FOUND = -4,
	QERR_CONFLICT = -5,     /* state does not allow it */
	QERR_DENIED = -6,       /* authenticated but not allowed */
	QERR_UNAUTHENTICATED = -7,
	QERR_UNSUPPORTED = -8,
	QERR_TRANSIENT = -9,    /* peer unavailable, busy, timed out: retry */
	QERR_PERMANENT = -10,   /* peer refused: do not retry */
	QERR_STORE = -11,
	QERR_CONFIG = -12,
	QERR_IO = -13,
	QERR_TOO_LARGE = -14,
	QERR_BUSY = -15,        /* nothing to do right now */
};

/*
 * Detail beside a code: which field, the peer's status (HTTP status or LDAP result
 * code), the peer's own error code and a message a person can act on.
 */
struct qerr {
	int code;
	int status;
	char field[64];
	char vendor_code[64];
	char msg[512];
};

const char *qerr_strerror(int code);
/* Sets code, field (may be NULL) and a formatted message; returns code. */
int qerr_set(struct qerr *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void qerr_clear(struct qerr *e);

#endif
