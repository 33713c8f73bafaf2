/* Error code names and the helpers that fill struct qerr. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

const char *
qerr_strerror(int code)
{
	switch (code) {
	case QERR_OK: return "ok";
	case QERR_INTERNAL: return "internal error";
	case QERR_NOMEM: return "out of memory";
	case QERR_INVALID: return "invalid input";
	case QERR_NOT_FOUND: return "not found";
	case QERR_CONFLICT: return "conflict";
	case QERR_DENIED: return "permission denied";
	case QERR_UNAUTHENTICATED: return "not authenticated";
	case QERR_UNSUPPORTED: return "not supported";
	case QERR_TRANSIENT: return "temporary failure";
	case QERR_PERMANENT: return "permanent failure";
	case QERR_STORE: return "storage error";
	case QERR_CONFIG: return "configuration error";
	case QERR_IO: return "i/o error";
	case QERR_TOO_LARGE: return "too large";
	case QERR_BUSY: return "busy";
	}
	return "unknown error";
}

int
qerr_set(struct qerr *e, int code, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return code;
	e->code = code;
	snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

void
qerr_clear(struct qerr *e)
{
	if (e != NULL)
		memset(e, 0, sizeof(*e));
}
