/* quelld's REST API over libmicrohttpd: routes, authentication, JSON in and out. */
#ifndef QUELL_API_API_H
#define QUELL_API_API_H

#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "engine/engine.h"
#include "store/store.h"

struct api;

/* What api_start would refuse in cfg: the listener address and the TLS files. */
int api_config_check(const struct config *cfg, struct qerr *e);

/* Listens on cfg->listen (TLS when cfg->tls_cert is set), or on listen_fd when it is
 * not -1 (a socket an earlier api_quiesce handed over: the API owns it once this
 * succeeds, the caller still does when it fails). cfg, st, eng outlive it. */
int api_start(const struct config *cfg, struct store *st, struct engine *eng,
    int listen_fd, struct api **out, struct qerr *e);
/* Stops accepting connections but keeps the listening socket open, so clients queue
 * in its backlog instead of being refused while a reload swaps the API; returns the
 * socket (the caller owns it), or -1. Call api_stop after it. */
int api_quiesce(struct api *api);
void api_stop(struct api *api);
/* The port actually bound (useful with port 0). */
uint16_t api_port(const struct api *api);

/*
 * Creates an API token for a principal called name with role, limited to identities
 * with one of the scope tags (none: every identity), stores its SHA-256 and audits it
 * as actor. *token (caller frees with auth_token_free) is shown once.
 */
int auth_token_create(struct store *st, const char *actor, const char *name,
    const char *role, char *const *scope, size_t nscope, char **token, struct qerr *e);
/* Zeroes and frees a token; accepts NULL. */
void auth_token_free(char *token);
/* Looks the token up and compares its hash in constant time. Fills *p (caller clears). */
int auth_token_check(struct store *st, const char *token, struct principal *p,
    struct qerr *e);

#endif
