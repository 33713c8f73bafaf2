/*
 * Privilege separation: quelld's front process (HTTP, JSON, JWTs, hunting SQL) never
 * holds an identity system's credential. A small executor process, forked before any
 * thread starts, alone opens the providers (reading their secret files) and carries
 * out their calls; the front reaches it through privsep_lookup's proxy provider over
 * a pool of socketpairs, one synchronous channel per caller, in msg.h's format.
 */
#ifndef QUELL_PRIVSEP_PRIVSEP_H
#define QUELL_PRIVSEP_PRIVSEP_H

#include <stdbool.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/err.h"
#include "engine/ssf.h"
#include "providers/provider.h"

struct privsep;

/* The unprivileged user both processes become after a start as root. */
struct privsep_user {
	bool drop;		/* false: stay who started quelld */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/*
 * cfg's [server] user, looked up (drop is false when none is set). QERR_CONFIG naming
 * "user" for a name the system does not know, or one whose uid or gid is root's.
 */
int privsep_user_resolve(const struct config *cfg, struct privsep_user *u,
    struct qerr *e);
/*
 * Becomes u (who names the process in errors): no supplementary group, then u's gid
 * and uid as real, effective and saved ids; then checks that root's cannot be taken
 * back. A process not running as root that already is u has nothing to do; one that
 * is someone else fails naming "user".
 */
int privsep_become(const struct privsep_user *u, const char *who, struct qerr *e);

/*
 * Forks the executor, with enough channels for cfg's systems (the pool does not
 * grow on reload: callers beyond it wait for a free channel). Call before any thread
 * starts. The child never returns from here: it serves until the front's end closes,
 * then exits. With user->drop (user may be NULL), the executor becomes that user once
 * its first LOAD has read the secret files, before it answers. *out is freed with
 * privsep_stop. Nothing is loaded yet.
 */
int privsep_start(const struct config *cfg, const struct privsep_user *user,
    struct privsep **out, struct qerr *e);
/* The executor's process id. */
pid_t privsep_pid(const struct privsep *ps);

/*
 * Has the executor parse text (the configuration file at path, read by the front)
 * and open every system in it, as the systems to swap in next; errors read "file:line:
 * reason", as an in-process open would say them. The systems in force keep serving.
 */
int privsep_load(struct privsep *ps, const char *path, const char *text, struct qerr *e);
/* The loaded systems replace those in force, which are kept until privsep_drop (so a
 * second swap goes back to them). Only while no provider call is in flight. */
int privsep_swap(struct privsep *ps, struct qerr *e);
/* Closes the systems not in force. */
int privsep_drop(struct privsep *ps, struct qerr *e);

/*
 * The provider the engine uses for a kind (engine_options.lookup): a proxy of the
 * built-in kind that forwards every call to the executor's systems in force; NULL for
 * a kind not built in. Needs a privsep_start'ed executor (one per process).
 */
const struct provider_ops *privsep_lookup(const char *kind);

/*
 * The console's OpenID Connect code grant, posted by the executor, which alone reads
 * [oidc] client_secret_file (an oidc_exchange_fn, for oidc_set_exchange); errors as
 * oidc_exchange's, QERR_TRANSIENT when the executor does not answer. Needs a
 * privsep_start'ed executor.
 */
struct http_response;
int privsep_oidc_exchange(const char *code, const char *verifier,
    const char *redirect_uri, struct http_response *resp, struct qerr *e);

/* The SSF transmitter's key, held by the executor, which alone reads [ssf] key_file
 * and signs only SETs under it (for ssf_set_key_holder). Needs a privsep_start'ed
 * executor. */
extern const struct ssf_key_holder privsep_ssf_keys;

/*
 * Sandboxes the front once its store and listener are open (sandbox.c): Landlock
 * limits its files to paths, then no_new_privs and a seccomp allow-list of what it
 * uses. Logs one warning for each mechanism the kernel lacks and goes on.
 */
struct privsep_paths {
	const char *const *ro;	/* read-only trees and files */
	size_t nro;
	const char *const *rw;	/* read-write trees */
	size_t nrw;
};
int privsep_sandbox_front(const struct privsep_paths *paths, struct qerr *e);
/* Closes the channels (the executor exits on seeing them close) and reaps it. */
void privsep_stop(struct privsep *ps);

/*
 * Opens every system of cfg in this process, as the executor does; for `quelld
 * check`, which is not the long-running front. *out is closed (NULL is fine) with
 * privsep_systems_close.
 */
struct privsep_systems;
int privsep_systems_open(const struct config *cfg, struct privsep_systems **out,
    struct qerr *e);
void privsep_systems_close(struct privsep_systems *s);

#endif
