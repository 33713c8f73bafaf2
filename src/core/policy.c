/*
 * The access policy: grants, per-system Entra role requirements and approval rules,
 * read from the configuration with the seed's defaults, and the decisions made from
 * them.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "entra_roles.h"
#include "policy.h"
#include "rbac.h"
#include "strlist.h"
#include "text.h"

/* The roles' names (core/entra_roles.h has the ids), for messages and sections. */
static const struct entra_role {
	const char *name;
	const char *id;
} entra_roles[] = {
	{ "Global Administrator", ENTRA_ROLE_GA },
	{ "User Administrator", ENTRA_ROLE_UA },
	{ "Authentication Administrator", ENTRA_ROLE_AUTHA },
	{ "Privileged Authentication Administrator", ENTRA_ROLE_PAA },
	{ "Directory Writers", ENTRA_ROLE_DW },
	{ "Helpdesk Administrator", ENTRA_ROLE_HDA },
	{ "Security Administrator", ENTRA_ROLE_SECA },
	{ "Security Operator", ENTRA_ROLE_SECO },
	{ "Security Reader", ENTRA_ROLE_SECR },
	{ "Global Reader", ENTRA_ROLE_GR },
};

#define GA	ENTRA_ROLE_GA
#define UA	ENTRA_ROLE_UA
#define AUTHA	ENTRA_ROLE_AUTHA
#define PAA	ENTRA_ROLE_PAA
#define DW	ENTRA_ROLE_DW
#define HDA	ENTRA_ROLE_HDA
#define SECA	ENTRA_ROLE_SECA
#define SECO	ENTRA_ROLE_SECO
#define SECR	ENTRA_ROLE_SECR
#define GR	ENTRA_ROLE_GR

/* Without [grant] sections, Entra roles give read access (and approval to Security
 * Administrators); acting comes through the requirements, as the seed has it. */
static const struct {
	const char *wid;
	const char *role;
} default_grants[] = {
	{ GA, "admin" }, { SECA, "approver" }, { SECO, "viewer" }, { SECR, "viewer" },
	{ GR, "viewer" }, { UA, "viewer" }, { AUTHA, "viewer" }, { PAA, "viewer" },
	{ HDA, "viewer" }, { DW, "viewer" },
};

enum match_kind { MATCH_APP_ROLE, MATCH_ENTRA_ROLE, MATCH_SUBJECT, MATCH_USER, MATCH_SCOPE };

struct grant_rule {
	const char *name;
	enum match_kind how;
	char *value;
	const char *role;
	unsigned perms;
	struct strlist scope;
	struct strlist exclude;
	char source[96];
};

struct requirement {
	char *kind;
	enum action_type type;
	struct strlist wids;
};

struct approval_rule {
	const char *name;
	unsigned types;		/* bit per action type; 0 = any */
	struct strlist tags;
	struct strlist kinds;
	long min_accounts;	/* more than this many steps; -1 = any */
	int64_t ttl_ms;
};

struct policy {
	const struct config *cfg;
	struct grant_rule *grants;
	size_t ngrants;
	struct requirement *reqs;
	size_t nreqs;
	struct approval_rule *approvals;
	size_t napprovals;
};

const char *
policy_entra_role_name(const char *template_id)
{
	size_t i;

	for (i = 0; i < sizeof(entra_roles) / sizeof(entra_roles[0]); i++)
		if (strcasecmp(entra_roles[i].id, template_id) == 0)
			return entra_roles[i].name;
	return NULL;
}

/* An Entra role by display name (case-insensitive) or template id. */
static const char *
entra_role_id(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(entra_roles) / sizeof(entra_roles[0]); i++)
		if (strcasecmp(entra_roles[i].name, s) == 0 ||
		    strcasecmp(entra_roles[i].id, s) == 0)
			return entra_roles[i].id;
	return NULL;
}

static bool
is_uuid(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' :
		    !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* Role names and ids to template ids: an unknown name is an error, an unknown
 * well-formed id is taken as given (custom or newer roles). */
static int
parse_wids(struct qerr *e, const struct system_config *s, const struct config_kv *kv,
    struct strlist *out)
{
	struct strlist raw = { NULL, 0 };
	const char *id;
	size_t i;
	int r = 0;

	if (strcmp(kv->value, "none") == 0)
		return 0;
	if ((r = strlist_split(&raw, kv->value, ",")) != 0)
		goto out;
	for (i = 0; i < raw.n && r == 0; i++) {
		if ((id = entra_role_id(raw.v[i])) == NULL && is_uuid(raw.v[i]))
			id = raw.v[i];
		if (id == NULL)
			r = config_error(e, s, kv->line, NULL, "unknown Entra role '%s' (use its name or "
			    "template id)", raw.v[i]);
		else
			r = strlist_add(out, id, strlen(id));
	}
out:
	strlist_clear(&raw);
	return r == QERR_NOMEM ? qerr_set(e, r, NULL, "out of memory") : r;
}

static int
load_match(struct qerr *e, const struct system_config *s, const struct config_kv *kv,
    struct grant_rule *g)
{
	static const struct {
		const char *prefix;
		enum match_kind how;
	} kinds[] = {
		{ "app_role:", MATCH_APP_ROLE }, { "entra_role:", MATCH_ENTRA_ROLE },
		{ "subject:", MATCH_SUBJECT }, { "user:", MATCH_USER },
		{ "oauth_scope:", MATCH_SCOPE },
	};
	const char *v = NULL, *id;
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && v == NULL; i++)
		if (strncmp(kv->value, kinds[i].prefix, strlen(kinds[i].prefix)) == 0) {
			v = kv->value + strlen(kinds[i].prefix);
			g->how = kinds[i].how;
		}
	if (v == NULL || *v == '\0')
		return config_error(e, s, kv->line, NULL, "match must be app_role:NAME, entra_role:ROLE, "
		    "subject:ID, user:NAME or oauth_scope:NAME");
	if (g->how == MATCH_ENTRA_ROLE) {
		if ((id = entra_role_id(v)) == NULL && is_uuid(v))
			id = v;
		if (id == NULL)
			return config_error(e, s, kv->line, NULL, "unknown Entra role '%s'", v);
		v = id;
	}
	if ((g->value = strdup(v)) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

static int
load_grant(struct policy *pol, const struct system_config *s, struct grant_rule *g,
    struct qerr *e)
{
	const struct config_kv *kv;
	size_t i;
	int r;

	g->name = s->name;
	snprintf(g->source, sizeof(g->source), "grant %s", s->name);
	for (i = 0; i < s->nkv; i++) {
		kv = &s->kv[i];
		if (strcmp(kv->key, "match") == 0)
			r = load_match(e, s, kv, g);
		else if (strcmp(kv->key, "role") == 0) {
			g->role = kv->value;
			r = rbac_role_perms(pol->cfg, g->role, &g->perms) ? 0 :
			    config_error(e, s, kv->line, NULL, "unknown role '%s'", kv->value);
		} else if (strcmp(kv->key, "scope") == 0)
			r = strlist_split(&g->scope, kv->value, ", \t");
		else if (strcmp(kv->key, "exclude") == 0)
			r = strlist_split(&g->exclude, kv->value, ", \t");
		else
			r = config_error(e, s, kv->line, NULL, "unknown key '%s' in [grant \"%s\"]", kv->key,
			    s->name);
		if (r != 0)
			return r == QERR_NOMEM ? qerr_set(e, r, NULL, "out of memory") : r;
	}
	if (g->value == NULL || g->role == NULL)
		return config_error(e, s, s->line, NULL, "[grant \"%s\"] needs match and role", s->name);
	return 0;
}

static int
load_requirement(struct policy *pol, const struct system_config *s, struct qerr *e)
{
	const struct config_kv *kv;
	struct requirement *rq;
	enum action_type t;
	size_t i;
	int r;

	for (i = 0; i < s->nkv; i++) {
		kv = &s->kv[i];
		if (action_type_parse(kv->key, &t) != 0)
			return config_error(e, s, kv->line, NULL, "'%s' is not an action type", kv->key);
		rq = realloc(pol->reqs, (pol->nreqs + 1) * sizeof(*rq));
		if (rq == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		pol->reqs = rq;
		rq = &pol->reqs[pol->nreqs++];
		memset(rq, 0, sizeof(*rq));
		rq->type = t;
		if ((rq->kind = strdup(s->name)) == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		if ((r = parse_wids(e, s, kv, &rq->wids)) != 0)
			return r;
	}
	return 0;
}

static int
approval_key(struct qerr *e, const struct system_config *s, const struct config_kv *kv,
    struct approval_rule *a)
{
	struct strlist types = { NULL, 0 };
	enum action_type t;
	long n;
	size_t i;
	int r = 0;

	if (strcmp(kv->key, "types") == 0) {
		if ((r = strlist_split(&types, kv->value, ", \t")) == 0)
			for (i = 0; i < types.n && r == 0; i++) {
				if (action_type_parse(types.v[i], &t) != 0)
					r = config_error(e, s, kv->line, NULL, "'%s' is not an action type",
					    types.v[i]);
				else
					a->types |= 1u << t;
			}
		strlist_clear(&types);
	} else if (strcmp(kv->key, "tags") == 0)
		r = strlist_split(&a->tags, kv->value, ", \t");
	else if (strcmp(kv->key, "systems") == 0)
		r = strlist_split(&a->kinds, kv->value, ", \t");
	else if (strcmp(kv->key, "min_accounts") == 0) {
		if (config_long(kv->value, 0, 1000000, &a->min_accounts) != 0)
			r = config_error(e, s, kv->line, NULL, "min_accounts must be a whole number");
	} else if (strcmp(kv->key, "expire_after") == 0) {
		if ((n = text_span_ms(kv->value, 365 * 86400000LL)) <= 0)
			r = config_error(e, s, kv->line, NULL, "expire_after must be a span such as 30m, "
			    "24h or 7d (at most 365d)");
		else
			a->ttl_ms = n;
	} else
		r = config_error(e, s, kv->line, NULL, "unknown key '%s' in [approval \"%s\"]", kv->key,
		    s->name);
	return r == QERR_NOMEM ? qerr_set(e, r, NULL, "out of memory") : r;
}

static int
load_approval(const struct system_config *s, struct approval_rule *a, struct qerr *e)
{
	size_t i;
	int r;

	a->name = s->name;
	a->min_accounts = -1;
	a->ttl_ms = 24 * 3600 * 1000;
	for (i = 0; i < s->nkv; i++)
		if ((r = approval_key(e, s, &s->kv[i], a)) != 0)
			return r;
	return 0;
}

static int
add_default_requirement(struct policy *pol, const char *kind,
    const struct kind_role_req *d, struct qerr *e)
{
	struct requirement *rq;
	size_t k;

	for (k = 0; k < pol->nreqs; k++)
		if (strcmp(pol->reqs[k].kind, kind) == 0 && pol->reqs[k].type == d->type)
			return 0;
	if ((rq = realloc(pol->reqs, (pol->nreqs + 1) * sizeof(*rq))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	pol->reqs = rq;
	rq = &pol->reqs[pol->nreqs++];
	memset(rq, 0, sizeof(*rq));
	rq->type = d->type;
	if ((rq->kind = strdup(kind)) == NULL || strlist_split(&rq->wids, d->wids, " ") != 0)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

/* Each kind's table (the seed's) for every (kind, type) that configuration does not
 * set. */
static int
add_default_requirements(struct policy *pol, struct qerr *e)
{
	const struct kind_table *kinds = &pol->cfg->kinds;
	size_t i, j;
	int r;

	for (i = 0; i < kinds->n; i++)
		for (j = 0; j < kinds->v[i]->nrole_reqs; j++)
			if ((r = add_default_requirement(pol, kinds->v[i]->kind,
			    &kinds->v[i]->role_reqs[j], e)) != 0)
				return r;
	return 0;
}

static int
add_default_grants(struct policy *pol, struct qerr *e)
{
	struct grant_rule *g;
	size_t i, n = sizeof(default_grants) / sizeof(default_grants[0]);

	if ((pol->grants = calloc(n, sizeof(*pol->grants))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < n; i++) {
		g = &pol->grants[pol->ngrants++];
		g->how = MATCH_ENTRA_ROLE;
		g->role = default_grants[i].role;
		rbac_role_perms(pol->cfg, g->role, &g->perms);
		snprintf(g->source, sizeof(g->source), "Entra role %s",
		    policy_entra_role_name(default_grants[i].wid));
		if ((g->value = strdup(default_grants[i].wid)) == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	return 0;
}

static size_t
count_kind(const struct config *cfg, const char *kind)
{
	size_t i, n = 0;

	for (i = 0; i < cfg->npolicy; i++)
		n += strcmp(cfg->policy[i].kind, kind) == 0;
	return n;
}

int
policy_load(const struct config *cfg, struct policy **out, struct qerr *e)
{
	struct policy *pol;
	const struct system_config *s;
	size_t i, ng = count_kind(cfg, "grant"), na = count_kind(cfg, "approval");
	int r = 0;

	if ((pol = calloc(1, sizeof(*pol))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	pol->cfg = cfg;
	if ((ng > 0 && (pol->grants = calloc(ng, sizeof(*pol->grants))) == NULL) ||
	    (na > 0 && (pol->approvals = calloc(na, sizeof(*pol->approvals))) == NULL)) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	for (i = 0; i < cfg->npolicy && r == 0; i++) {
		s = &cfg->policy[i];
		if (strcmp(s->kind, "grant") == 0)
			r = load_grant(pol, s, &pol->grants[pol->ngrants++], e);
		else if (strcmp(s->kind, "approval") == 0)
			r = load_approval(s, &pol->approvals[pol->napprovals++], e);
		else if (strcmp(s->kind, "requirement") == 0)
			r = load_requirement(pol, s, e);
	}
	if (r == 0 && ng == 0)
		r = add_default_grants(pol, e);
	if (r == 0)
		r = add_default_requirements(pol, e);
out:
	if (r != 0) {
		policy_free(pol);
		return r;
	}
	*out = pol;
	return 0;
}

void
policy_free(struct policy *pol)
{
	size_t i;

	if (pol == NULL)
		return;
	for (i = 0; i < pol->ngrants; i++) {
		free(pol->grants[i].value);
		strlist_clear(&pol->grants[i].scope);
		strlist_clear(&pol->grants[i].exclude);
	}
	free(pol->grants);
	for (i = 0; i < pol->nreqs; i++) {
		free(pol->reqs[i].kind);
		strlist_clear(&pol->reqs[i].wids);
	}
	free(pol->reqs);
	for (i = 0; i < pol->napprovals; i++) {
		strlist_clear(&pol->approvals[i].tags);
		strlist_clear(&pol->approvals[i].kinds);
	}
	free(pol->approvals);
	free(pol);
}

static bool
wid_held(const struct subject *s, const char *wid)
{
	size_t i;

	for (i = 0; i < s->nwids; i++)
		if (strcasecmp(s->wids[i], wid) == 0)
			return true;
	return false;
}

static bool
rule_matches(const struct grant_rule *g, const struct subject *s)
{
	switch (g->how) {
	case MATCH_APP_ROLE:
		return strlist_has(s->app_roles, s->napp_roles, g->value, false);
	case MATCH_ENTRA_ROLE:
		return wid_held(s, g->value);
	case MATCH_SCOPE:
		return strlist_has(s->oauth_scopes, s->noauth_scopes, g->value, false);
	case MATCH_SUBJECT:
		return s->id != NULL && strncmp(s->id, "oidc:", 5) == 0 &&
		    strcmp(s->id + 5, g->value) == 0;
	case MATCH_USER:
		/* A signed-in user's name, never an API token's (anyone may name one). */
		return s->id != NULL && strncmp(s->id, "oidc:", 5) == 0 &&
		    s->name != NULL && strcasecmp(s->name, g->value) == 0;
	}
	return false;
}

int
policy_grants(const struct policy *pol, const struct subject *s,
    struct grant_set *out, struct qerr *e)
{
	struct grant *g;
	unsigned perms;
	size_t i;

	out->n = 0;
	if ((out->g = calloc(pol->ngrants + 1, sizeof(*out->g))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if (s->role != NULL && rbac_role_perms(pol->cfg, s->role, &perms)) {
		g = &out->g[out->n++];
		g->role = s->role;
		g->perms = perms;
		g->scope = s->scope;
		g->nscope = s->nscope;
		g->source = "token";
	}
	for (i = 0; i < pol->ngrants; i++) {
		if (!rule_matches(&pol->grants[i], s))
			continue;
		g = &out->g[out->n++];
		g->role = pol->grants[i].role;
		g->perms = pol->grants[i].perms;
		g->scope = pol->grants[i].scope.v;
		g->nscope = pol->grants[i].scope.n;
		g->exclude = pol->grants[i].exclude.v;
		g->nexclude = pol->grants[i].exclude.n;
		g->source = pol->grants[i].source;
	}
	return 0;
}

unsigned
policy_perms(const struct grant_set *gs)
{
	unsigned p = 0;
	size_t i;

	for (i = 0; i < gs->n; i++)
		p |= gs->g[i].perms;
	return p;
}

static const struct requirement *
requirement(const struct policy *pol, const char *kind, enum action_type type)
{
	size_t i;

	for (i = 0; i < pol->nreqs; i++)
		if (pol->reqs[i].type == type && strcmp(pol->reqs[i].kind, kind) == 0)
			return &pol->reqs[i];
	return NULL;
}

bool
policy_entra_may(const struct policy *pol, const struct subject *s,
    enum action_type type)
{
	size_t i, k;

	for (i = 0; i < pol->nreqs; i++)
		if (pol->reqs[i].type == type)
			for (k = 0; k < pol->reqs[i].wids.n; k++)
				if (wid_held(s, pol->reqs[i].wids.v[k]))
					return true;
	return false;
}

static bool
grant_covers(const struct grant *g, char *const *tags, size_t ntags)
{
	if (g->nexclude > 0 && strlist_meet(g->exclude, g->nexclude, tags, ntags, false))
		return false;
	return g->nscope == 0 || strlist_meet(g->scope, g->nscope, tags, ntags, false);
}

bool
policy_covers(const struct grant_set *gs, unsigned perm, char *const *tags,
    size_t ntags)
{
	size_t i;

	for (i = 0; i < gs->n; i++)
		if ((gs->g[i].perms & perm) == perm && grant_covers(&gs->g[i], tags, ntags))
			return true;
	return false;
}

bool
policy_step_allowed(const struct policy *pol, const struct subject *s,
    const struct grant_set *gs, enum action_type type, const char *kind,
    char *const *tags, size_t ntags, char *why, size_t len)
{
	const struct requirement *rq = requirement(pol, kind, type);
	bool manage = false;
	size_t i;

	for (i = 0; i < gs->n; i++) {
		if ((gs->g[i].perms & PERM_RESPONSE_MANAGE) == 0)
			continue;
		manage = true;
		if (grant_covers(&gs->g[i], tags, ntags)) {
			snprintf(why, len, "role '%s' (%s) grants response.manage",
			    gs->g[i].role, gs->g[i].source);
			return true;
		}
	}
	for (i = 0; rq != NULL && i < rq->wids.n; i++)
		if (wid_held(s, rq->wids.v[i])) {
			snprintf(why, len, "Entra role %s may %s on %s systems",
			    policy_entra_role_name(rq->wids.v[i]) ?
			    policy_entra_role_name(rq->wids.v[i]) : rq->wids.v[i],
			    action_type_name(type), kind);
			return true;
		}
	if (manage)
		snprintf(why, len, "the identity is outside the scope of every role of "
		    "'%s' that grants response.manage", s->name ? s->name : "?");
	else
		snprintf(why, len, "'%s' holds neither response.manage nor an Entra role "
		    "allowed to %s on %s systems", s->name ? s->name : "?",
		    action_type_name(type), kind);
	return false;
}

static bool
approval_matches(const struct approval_rule *r, const struct action *a,
    char *const *tags, size_t ntags, const char *const *kinds)
{
	size_t i, n;
	bool kind = r->kinds.n == 0;

	if (r->types != 0 && (r->types & (1u << a->type)) == 0)
		return false;
	if (r->tags.n > 0 && !strlist_meet(r->tags.v, r->tags.n, tags, ntags, false))
		return false;
	for (i = 0; !kind && i < a->nsteps; i++)
		kind = a->steps[i].status != STEP_NOT_APPLICABLE &&
		    strlist_has(r->kinds.v, r->kinds.n, kinds[i], false);
	if (!kind)
		return false;
	for (i = 0, n = 0; i < a->nsteps; i++)
		n += a->steps[i].status != STEP_NOT_APPLICABLE;
	return r->min_accounts < 0 || (long)n > r->min_accounts;
}

const char *
policy_approval_rule(const struct policy *pol, const struct action *a,
    char *const *tags, size_t ntags, const char *const *kinds, int64_t *ttl_ms)
{
	size_t i;

	for (i = 0; i < pol->napprovals; i++)
		if (approval_matches(&pol->approvals[i], a, tags, ntags, kinds)) {
			*ttl_ms = pol->approvals[i].ttl_ms;
			return pol->approvals[i].name;
		}
	return NULL;
}
