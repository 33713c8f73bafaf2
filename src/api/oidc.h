/*
 * Bearer JWTs from one OpenID Connect issuer (Entra ID, or any that publishes a JWK
 * Set), configured in [oidc], and the console's sign-in with that issuer
 * (authorization code + PKCE) when [oidc] names a client_id. Thread-safe: the API's
 * thread pool verifies concurrently.
 */
#ifndef QUELL_API_OIDC_H
#define QUELL_API_OIDC_H

#include <stdbool.h>
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
	char **scopes;		/* "scope" (RFC 9068), else Entra's "scp": OAuth scopes */
	size_t nscopes;
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
/* A deep copy of src into dst; 0 or QERR_NOMEM (dst then empty). */
int oidc_claims_copy(struct oidc_claims *dst, const struct oidc_claims *src,
    struct qerr *e);

/* Whether the console may sign in with the issuer (client_id is configured). */
bool oidc_code_flow(const struct oidc *o);
/* [oidc] issuer, or NULL without [oidc]. */
const char *oidc_issuer(const struct oidc *o);
/* [oidc] redirect_uri, or NULL: the console then derives it from the request. */
const char *oidc_redirect_uri(const struct oidc *o);

/*
 * The authorization endpoint's URL for one sign-in (response_type=code, scope
 * "openid profile", PKCE S256 with challenge); *out is the caller's. QERR_NOMEM.
 */
int oidc_authorize_url(const struct oidc *o, const char *redirect_uri,
    const char *state, const char *nonce, const char *challenge, char **out,
    struct qerr *e);
/*
 * Redeems an authorization code at the token endpoint (with the PKCE verifier and the
 * client secret, if any) and verifies the id token it answers: signature, iss, exp,
 * nbf, iat, aud holding client_id, azp (when present) client_id, nonce. Fills *out.
 * QERR_UNAUTHENTICATED with the reason (the issuer's own refusal included),
 * QERR_TRANSIENT when the token endpoint cannot be reached, QERR_NOMEM.
 */
int oidc_redeem(struct oidc *o, const char *code, const char *verifier,
    const char *redirect_uri, const char *nonce, struct oidc_claims *out,
    struct qerr *e);

/* The largest answer a token endpoint may give: an id token, an access token and a
 * refresh token. */
#define OIDC_TOKEN_RESPONSE_MAX	(3 * 65536)

struct http_response;

/*
 * Posts the code grant (code, PKCE verifier, redirect_uri) with the client's id and
 * secret to the token endpoint; *resp (cleared by the caller with
 * http_response_clear) is its answer, any status. QERR_UNAUTHENTICATED (an answer
 * over OIDC_TOKEN_RESPONSE_MAX, a code that cannot be sent), QERR_TRANSIENT (the
 * endpoint cannot be reached), QERR_NOMEM.
 */
typedef int (*oidc_exchange_fn)(const char *code, const char *verifier,
    const char *redirect_uri, struct http_response *resp, struct qerr *e);
/*
 * Where the process that holds the client secret is another (privilege separation:
 * the executor): set once, before any oidc_open. With it, oidc_open never reads
 * client_secret_file and oidc_redeem hands the code to exchange.
 */
void oidc_set_exchange(oidc_exchange_fn exchange);
/*
 * For that other process: [oidc] checked as oidc_open checks it and the client secret
 * read, but no JWK Set loaded; *out is NULL without [oidc] or client_id. Closed with
 * oidc_close.
 */
int oidc_open_client(const struct config *cfg, struct oidc **out, struct qerr *e);
/* The code grant of an oidc_open_client'ed o, as oidc_exchange_fn says. */
int oidc_exchange(struct oidc *o, const char *code, const char *verifier,
    const char *redirect_uri, struct http_response *resp, struct qerr *e);

/* [oidc] default_role, or NULL. */
const char *oidc_default_role(const struct oidc *o);

#endif
