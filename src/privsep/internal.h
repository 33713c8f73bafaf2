/* What the privsep files share, and the executor's dispatch for its unit tests;
 * nothing outside src/privsep and its tests includes this. */
#ifndef QUELL_PRIVSEP_INTERNAL_H
#define QUELL_PRIVSEP_INTERNAL_H

#include <pthread.h>

#include "api/oidc.h"
#include "engine/ssf.h"
#include "privsep/msg.h"
#include "privsep/privsep.h"

/* A sanitizer build's runtime: LeakSanitizer stops the world with ptrace from a
 * thread of its own, and reports are symbolized by a program it starts. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

struct privsep_system {
	const struct system_config *cfg;
	const struct provider_ops *ops;
	struct provider *p;
};

/* Opened systems, over a configuration they own (parsed by the executor) or borrow;
 * in the executor, the console's OpenID Connect client (NULL: none) and the SSF
 * transmitter's key too. */
struct privsep_systems {
	struct config owned;
	const struct config *cfg;
	struct privsep_system *v;
	size_t n;
	struct oidc *oidc;
	struct ssf_conf ssf;
	bool ssf_on;
};

/* Writes b's messages to fd and empties b: 0, or QERR_IO with why in e. */
int privsep_send(int fd, struct privsep_buf *b, struct qerr *e);
/* Reads one message from fd into in (grown as needed) and decodes it into *m (strings
 * borrowed from in): 0, QERR_IO (the peer closed: e says so), QERR_INVALID. */
int privsep_recv(int fd, struct privsep_buf *in, struct privsep_msg *m, struct qerr *e);

/* The executor's systems: those in force (read-locked by every call) and those
 * loaded to replace them. */
struct privsep_exec {
	pthread_rwlock_t lock;
	struct privsep_systems *cur;
	struct privsep_systems *next;
	struct privsep_user become;	/* drop: who to become after the first LOAD */
};

void privsep_exec_init(struct privsep_exec *x);
void privsep_exec_fini(struct privsep_exec *x);
/* Serves one data channel until the front closes it (0) or sends what cannot be
 * framed (QERR_INVALID, logged, after an ERROR reply). A well-framed request it
 * refuses (unknown system, unsupported action, an account reference of the wrong
 * shape for the kind) gets an ERROR reply and a log line; the channel goes on. */
int privsep_exec_serve(struct privsep_exec *x, int fd);
/* Serves the control channel (LOAD, SWAP, DROP) until the front closes it. */
int privsep_exec_control(struct privsep_exec *x, int fd);

/* Whether ref has the shape of an account reference of kind (why says how not). */
bool privsep_ref_valid(const char *kind, const char *ref, char *why, size_t n);

/* The executor's seccomp filter and no_new_privs (sandbox.c), once it forked; setid
 * lets it make the calls of privsep_become. */
int privsep_sandbox_executor(bool setid, struct qerr *e);

#endif
