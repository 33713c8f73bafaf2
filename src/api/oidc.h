/*
 * Bearer JWTs from one OpenID Connect issuer (Entra ID, or any that publishes a JWK
 * Set), configured in [oidc]. Thread-safe: the API's thread pool verifies concurrently.
 */
#ifndef QUELL_API_OIDC_H
#define QUELL_API_OIDC_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

struct oidc;

/* What a verified token says about its bearer; every string is the caller's. */
struct oidc_claims {
	char *subject;		/* "oid" (Entra's stable object id), else "sub" */
	char *username;		/* username_claim, else "upn", else "sub" */
	char **roles;		/* "roles": application roles */
	size_t nroles;
	char **wids;		/* "wids": Entra directory role template ids */
	size_t nwids;
	int64_t exp;
};

/*
 * Validates cfg->oidc and loads its JWK Set. *out is NULL when there is no [oidc]
 * section. QERR_CONFIG with "file:line: reason" for a bad key; a JWK Set that cannot
 * be read from jwks_file is a configuration error too, while an unreachable jwks_url
 * is only logged (the keys are fetched again on the first token).
 */
int oidc_open(const struct config *cfg, struct oidc **out, struct qerr *e);
void oidc_close(struct oidc *o);

/*
 * Verifies token (signature, iss, aud, exp, nbf, iat, typ, size) and fills *out.
 * QERR_UNAUTHENTICATED with the reason in e->msg ("token expired", "wrong issuer",
 * "unknown key id", …), QERR_NOMEM. An unknown kid reloads the JWK Set, at most once
 * a minute.
 */
int oidc_verify(struct oidc *o, const char *token, struct oidc_claims *out,
    struct qerr *e);
void oidc_claims_clear(struct oidc_claims *c);

/* [oidc] default_role, or NULL. */
const char *oidc_default_role(const struct oidc *o);

#endif
