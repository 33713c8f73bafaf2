/*
 * Access policy as the seed describes it: who holds which quell role (API tokens, and
 * [grant] sections matching OpenID Connect claims), which Microsoft Entra roles may run
 * an action on an identity system ([requirement] sections, defaults from the seed's
 * "Roles and permissions" table), scoped assignments (tags), and which actions wait for
 * a second person's approval ([approval] sections). Pure: no I/O.
 */
#ifndef QUELL_CORE_POLICY_H
#define QUELL_CORE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "model.h"

struct policy;

/* Who asks, as authenticated. Arrays are borrowed. */
struct subject {
	const char *id;			/* API token id, or "oidc:<oid or sub>" */
	const char *name;
	const char *role;		/* an API token's role; NULL for OIDC */
	char *const *scope;		/* an API token's scope tags; none = every identity */
	size_t nscope;
	char *const *app_roles;		/* OIDC "roles" claim */
	size_t napp_roles;
	char *const *wids;		/* OIDC "wids": Entra role template ids */
	size_t nwids;
	char *const *oauth_scopes;	/* OIDC "scope" / "scp": OAuth scopes */
	size_t noauth_scopes;
};

/* One quell role held by a subject, limited to identities with a scope tag (if any)
 * and none of the excluded tags. */
struct grant {
	const char *role;
	unsigned perms;
	char *const *scope;
	size_t nscope;
	char *const *exclude;
	size_t nexclude;
	const char *source;		/* "token", or "grant <name>" */
};

struct grant_set {
	struct grant *g;
	size_t n;
};

/* Reads and checks every [grant], [requirement] and [approval] section; errors say
 * "file:line: reason". cfg must outlive the policy. Caller frees with policy_free. */
int policy_load(const struct config *cfg, struct policy **out, struct qerr *e);
void policy_free(struct policy *pol);

/* The grants a subject holds; out->g (caller frees) borrows from pol and s. */
int policy_grants(const struct policy *pol, const struct subject *s,
    struct grant_set *out, struct qerr *e);
/* Every permission any grant gives, for route-level checks. */
unsigned policy_perms(const struct grant_set *gs);
/* Whether the subject holds an Entra role that could run type on some system. */
bool policy_entra_may(const struct policy *pol, const struct subject *s,
    enum action_type type);

/* Whether some grant holding perm covers an identity with these tags. */
bool policy_covers(const struct grant_set *gs, unsigned perm, char *const *tags,
    size_t ntags);

/*
 * Whether the subject may run type on an identity (tags) in a system of kind: a grant
 * with response.manage whose scope covers the identity, or an Entra role that the
 * [requirement] for kind lists for type. why receives what allowed it, or why not.
 */
bool policy_step_allowed(const struct policy *pol, const struct subject *s,
    const struct grant_set *gs, enum action_type type, const char *kind,
    char *const *tags, size_t ntags, char *why, size_t len);

/*
 * The name of the first [approval] rule the action matches (type, any of the
 * identity's tags, any step's system kind, more than min_accounts accounts it acts
 * on), or NULL;
 * *ttl_ms is how long it may wait for approval before it is cancelled (default 24 h).
 * kinds[i] is the system kind of a->steps[i].
 */
const char *policy_approval_rule(const struct policy *pol, const struct action *a,
    char *const *tags, size_t ntags, const char *const *kinds, int64_t *ttl_ms);

/* The display name of an Entra role template id, or NULL if not a known one. */
const char *policy_entra_role_name(const char *template_id);

#endif
