/*
 * Delivery of the audit log to SIEMs ([siem "name"] sections): one thread per SIEM
 * sends every audit entry, in seq order, as syslog (RFC 5424 or CEF, core/siem_format)
 * over TLS (RFC 5425 octet counting) or, for tests, plain TCP or UDP.
 *
 * At least once and in order: each SIEM has a cursor in the store (the last seq it
 * took); a batch is sent from the cursor on once the server's TCP stack has
 * acknowledged every byte of the one before (the socket's send queue is empty and the
 * connection still established). A TCP acknowledgement says the bytes reached the
 * server's kernel, not its program, and a server that stops with them unread drops
 * them; so the cursor moves past a batch only once 256 KiB more were acknowledged on
 * the same connection, or the connection stayed up a second after the last
 * acknowledgement. The store's copy of the cursor is written at most every half
 * second (and when idle or stopping). Whatever was not confirmed so is sent again
 * after a reconnect or a restart: a SIEM may see an entry twice but never miss one.
 * Over UDP nothing is acknowledged: a datagram handed to the kernel counts as
 * delivered.
 */
#ifndef QUELL_ENGINE_SIEM_H
#define QUELL_ENGINE_SIEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "store/store.h"

struct siem;

/* One SIEM's delivery as of the call. */
struct siem_status {
	char name[64];
	bool connected;
	int64_t delivered_seq;	/* the cursor: entries up to it were acknowledged */
	int64_t last_seq;	/* the newest audit entry */
	int64_t backlog;	/* last_seq - delivered_seq: entries still to send */
	int64_t sent;		/* messages written since the start, resent ones too */
	int64_t resent;		/* of which sent again after a broken connection */
	int64_t connects;	/* connections made since the start */
	char error[256];	/* why the last attempt failed; "" while it works */
};

/*
 * Checks what a start needs beyond the file's syntax: every TLS SIEM's ca_file,
 * cert_file and key_file load and the key matches the certificate. Errors name
 * file:line.
 */
int siem_check(const struct config *cfg, struct qerr *e);

/*
 * Starts one thread per [siem] section of cfg (none: *out is a valid empty set).
 * cfg and st must outlive it. The threads connect in the background: a SIEM down at
 * start is retried, not an error.
 */
int siem_start(const struct config *cfg, struct store *st, struct siem **out,
    struct qerr *e);
/* Stops and joins the threads (a write in progress is abandoned, to be sent again
 * after the next start); accepts NULL. */
void siem_stop(struct siem *s);

size_t siem_count(const struct siem *s);
/* The i-th SIEM's status; reads the newest seq from the store for the backlog. */
int siem_status(struct siem *s, size_t i, struct siem_status *out, struct qerr *e);

#endif
