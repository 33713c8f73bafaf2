/*
 * How an audit entry is written for a SIEM: a syslog message (RFC 5424) whose
 * structured data carries the entry's fields and whose MSG is the entry's canonical
 * JSON (so a SIEM can check the hash itself), or the same syslog header with an
 * ArcSight CEF record as MSG. Pure text: no I/O, no clock; framing (RFC 5425 octet
 * counting) is the sender's (src/engine/siem.c).
 */
#ifndef QUELL_CORE_SIEM_FORMAT_H
#define QUELL_CORE_SIEM_FORMAT_H

#include <stddef.h>

#include "err.h"
#include "model.h"

/* The SD-ID of quell's structured data: 32473 is the enterprise number RFC 5612
 * reserves for documentation, as quell has none of its own. */
#define SIEM_SD_ID "quell@32473"

enum siem_format { SIEM_FORMAT_RFC5424, SIEM_FORMAT_CEF };

/* Where the messages come from: fields of the syslog header. Borrowed strings;
 * NULL or "" becomes RFC 5424's NILVALUE "-". */
struct siem_origin {
	const char *hostname;
	const char *app_name;
	const char *procid;
	const char *version;	/* quell's, for CEF's Device Version */
	int facility;		/* 0..23; 13 = log audit */
};

/* The syslog severity of an event: 4 (warning) for refusals and failures, else 5
 * (notice). */
int siem_syslog_severity(const char *event);
/* CEF's 0..10 severity for the same events: 7 or 3. */
int siem_cef_severity(const char *event);

/*
 * One message without framing, in *out (caller frees; NUL-terminated, *len bytes).
 * QERR_INVALID when the entry's detail is not a JSON object, QERR_NOMEM.
 */
int siem_format(enum siem_format fmt, const struct audit_entry *ent,
    const struct siem_origin *o, char **out, size_t *len, struct qerr *e);

/*
 * CEF escaping, exposed for the tests. A header field: '\' and '|' escaped, line
 * breaks become spaces (the header must stay on one line). An extension value: '\',
 * '=' escaped, CR and LF written as \r and \n. Caller frees; NULL on no memory.
 */
char *siem_cef_header_escape(const char *s);
char *siem_cef_ext_escape(const char *s);
/* An RFC 5424 PARAM-VALUE: '"', '\' and ']' escaped, bytes that are not valid
 * UTF-8 replaced by '?'. Caller frees; NULL on no memory. */
char *siem_sd_escape(const char *s);

#endif
