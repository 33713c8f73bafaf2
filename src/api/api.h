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
/* A listening socket on cfg->listen (*fd, the caller's until api_start takes it), for
 * a daemon that binds before it drops root. */
int api_listen_socket(const struct config *cfg, int *fd, struct qerr *e);
/* Stops accepting connections but keeps the listening socket open, so clients queue
 * in its backlog instead of being refused while a reload swaps the API; returns the
 * socket (the caller owns it), or -1. Call api_stop after it. */
int api_quiesce(struct api *api);
void api_stop(struct api *api);
/* The port actually bound (useful with port 0). */
uint16_t api_port(const struct api *api);

/*
 * The life (ms; 0 = never expires) of a token that asks to live `expires` ("30d",
 * "12h", …; NULL: not asked), under cfg's token_max_lifetime: not asked means the
 * maximum when one is set. QERR_INVALID names field when expires is no span or is
 * longer than the maximum.
 */
int auth_token_lifetime(const struct config *cfg, const char *expires, const char *field,
    int64_t *life_ms, struct qerr *e);
/*
 * Creates an API token for a principal called name with role, limited to identities
 * with one of the scope tags (none: every identity), expiring life_ms after its
 * creation (0 = never), stores its SHA-256 and audits it as actor. *token (caller
 * frees with auth_token_free) is shown once; *expires_at (may be NULL) is when it
 * expires, 0 for never. A name quell keeps for its own principals
 * (rbac_reserved_name) is refused: QERR_INVALID naming "name".
 */
int auth_token_create(struct store *st, const struct actor *who, const char *name,
    const char *role, char *const *scope, size_t nscope, int64_t life_ms,
    char **token, int64_t *expires_at, struct qerr *e);
/* Zeroes and frees a token; accepts NULL. */
void auth_token_free(char *token);
/*
 * Checks a bearer token: its hash against the stored one in constant time (a token
 * verified lately: its keyed BLAKE2b against the remembered one), then that it is
 * neither revoked (read from the store each time) nor expired (QERR_UNAUTHENTICATED,
 * e->msg "token revoked (id)" or "token expired (id)"), and records its use. Fills
 * *p (caller clears).
 */
int auth_token_check(struct store *st, const char *token, struct principal *p,
    struct qerr *e);
/*
 * The same for token id known by its hash (a console session keeps only that):
 * QERR_NOT_FOUND when no token id has that hash.
 */
int auth_token_principal(struct store *st, const char *id, const unsigned char hash[32],
    struct principal *p, struct qerr *e);
/*
 * Revokes token id as who, giving reason (NULL: none), and
 * audits it as token.revoked in the same transaction. QERR_NOT_FOUND, QERR_CONFLICT
 * when already revoked. *out (caller clears) is the token as revoked.
 */
int auth_token_revoke(struct store *st, const struct actor *who,
    const char *id, const char *reason, struct token_info *out, struct qerr *e);

#endif
