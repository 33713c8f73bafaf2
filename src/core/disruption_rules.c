/*
 * Automatic attack disruption's rules and guard, read from the configuration, and the
 * decisions made from them. Pure: no I/O.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "disruption_rules.h"
#include "rbac.h"
#include "strlist.h"
#include "text.h"

#define LIST_MAX 256
/* Words are separated by blanks or commas. */
#define WORD_SEP " ,\t"

static int fail(struct qerr *e, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(struct qerr *e, const char *file, int line, const char *fmt, ...)
{
	char why[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return qerr_set(e, QERR_CONFIG, NULL, "%s:%d: %s", file, line, why);
}

/* Names in rules and the guard are compared ignoring case. */
static bool
listed(const struct strlist *l, const char *s)
{
	return strlist_has(l->v, l->n, s, true);
}

static int
list_key(struct qerr *e, const struct config_kv *kv, const char *file,
    struct strlist *l)
{
	int r;

	strlist_clear(l);
	if ((r = strlist_split(l, kv->value, WORD_SEP)) != 0)
		return qerr_set(e, r, NULL, "out of memory");
	if (l->n > LIST_MAX)
		return fail(e, file, kv->line, "%s lists more than %d values", kv->key,
		    LIST_MAX);
	return 0;
}

/* One word of actions: a type, "contain", or "set_risk:LEVEL". */
static int
add_step(struct disruption_rule *r, const char *w, struct qerr *e, int line)
{
	static const char *const levels[] = { "HIGH", "MEDIUM", "LOW" };
	struct disruption_step *s;
	const char *colon = strchr(w, ':');
	char type[32];
	size_t i;

	if (strcmp(w, "contain") == 0)
		return add_step(r, "disable", e, line) || add_step(r, "revoke_sessions", e,
		    line) ? QERR_CONFIG : 0;
	snprintf(type, sizeof(type), "%.*s", colon ? (int)(colon - w) : (int)strlen(w), w);
	if (r->nsteps == DISRUPTION_MAX_STEPS)
		return fail(e, r->file, line, "at most %d actions per rule",
		    DISRUPTION_MAX_STEPS);
	s = &r->steps[r->nsteps];
	memset(s, 0, sizeof(*s));
	if (action_type_parse(type, &s->type) != 0)
		return fail(e, r->file, line, "'%s' is not an action type (or contain)", w);
	for (i = 0; i < r->nsteps; i++)
		if (r->steps[i].type == s->type)
			return fail(e, r->file, line, "%s is listed twice", type);
	/* Automation may only do what a person can take back or repeat harmlessly. */
	if (s->type == ACTION_DEACTIVATE || s->type == ACTION_ENABLE)
		return fail(e, r->file, line, "%s cannot be automatic: %s", type,
		    s->type == ACTION_ENABLE ? "it does not contain anything" :
		    "it permanently deprovisions the account");
	if ((s->type == ACTION_SET_RISK) != (colon != NULL))
		return fail(e, r->file, line, "%s", colon ? "only set_risk takes a level" :
		    "set_risk needs a level: set_risk:HIGH, set_risk:MEDIUM or set_risk:LOW");
	for (i = 0; colon != NULL && i < 3; i++)
		if (strcmp(colon + 1, levels[i]) == 0)
			s->risk_level = levels[i];
	if (colon != NULL && s->risk_level == NULL)
		return fail(e, r->file, line, "risk level '%s' is not HIGH, MEDIUM or LOW",
		    colon + 1);
	r->nsteps++;
	return 0;
}

static int
rule_actions(struct disruption_rule *r, const struct config_kv *kv, struct qerr *e)
{
	struct strlist words = { NULL, 0 };
	size_t i;
	int rc;

	if ((rc = list_key(e, kv, r->file, &words)) != 0)
		return rc;
	for (i = 0; i < words.n && rc == 0; i++)
		rc = add_step(r, words.v[i], e, kv->line);
	strlist_clear(&words);
	return rc;
}

static int
rule_categories(struct disruption_rule *r, const struct config_kv *kv, struct qerr *e)
{
	size_t i;
	int rc;

	if ((rc = list_key(e, kv, r->file, &r->categories)) != 0)
		return rc;
	for (i = 0; i < r->categories.n; i++)
		if (!alert_category_valid(r->categories.v[i]))
			return fail(e, r->file, kv->line, "unknown category '%s' (known: %s)",
			    r->categories.v[i], alert_categories());
	return 0;
}

static int
rule_key(struct disruption_rule *r, const struct config_kv *kv, struct qerr *e)
{
	long n;

	if (strcmp(kv->key, "categories") == 0)
		return rule_categories(r, kv, e);
	if (strcmp(kv->key, "min_severity") == 0) {
		if (alert_severity_parse(kv->value, &r->min_severity) != 0)
			return fail(e, r->file, kv->line, "min_severity must be informational, "
			    "low, medium or high");
		return 0;
	}
	if (strcmp(kv->key, "min_confidence") == 0) {
		if (config_long(kv->value, 0, 100, &n) != 0 &&
		    (n = alert_confidence_word(kv->value)) < 0)
			return fail(e, r->file, kv->line, "min_confidence must be 0 to 100, or "
			    "low, medium or high");
		r->min_confidence = (int)n;
		return 0;
	}
	if (strcmp(kv->key, "tags") == 0)
		return list_key(e, kv, r->file, &r->tags);
	if (strcmp(kv->key, "allow_tags") == 0)
		return list_key(e, kv, r->file, &r->allow_tags);
	if (strcmp(kv->key, "actions") == 0)
		return rule_actions(r, kv, e);
	if (strcmp(kv->key, "dry_run") == 0) {
		if (strcmp(kv->value, "true") && strcmp(kv->value, "false"))
			return fail(e, r->file, kv->line, "dry_run must be true or false");
		r->dry_run = strcmp(kv->value, "true") == 0;
		return 0;
	}
	return fail(e, r->file, kv->line, "unknown key '%s' in [disruption \"%s\"]",
	    kv->key, r->name);
}

static int
load_rule(const struct system_config *s, struct disruption_rule *r, struct qerr *e)
{
	size_t i;
	int rc;

	r->name = s->name;
	r->file = s->file;
	r->line = s->line;
	r->min_severity = ALERT_SEV_LOW;
	for (i = 0; i < s->nkv; i++)
		if ((rc = rule_key(r, &s->kv[i], e)) != 0)
			return rc;
	if (r->nsteps == 0)
		return fail(e, s->file, s->line, "[disruption \"%s\"] needs actions, e.g. "
		    "actions = contain", s->name);
	return 0;
}

static int
guard_key(struct disruption_guard *g, const char *file, const struct config_kv *kv,
    struct qerr *e)
{
	if (strcmp(kv->key, "role") == 0) {
		g->role = kv->value;
		return 0;
	}
	if (strcmp(kv->key, "max_containments") == 0) {
		if (config_long(kv->value, 0, 100000, &g->max_containments) != 0)
			return fail(e, file, kv->line, "max_containments must be a whole number "
			    "from 0 to 100000");
		return 0;
	}
	if (strcmp(kv->key, "window") == 0) {
		if ((g->window_ms = text_span_ms(kv->value, 30 * 86400000LL)) <= 0)
			return fail(e, file, kv->line, "window must be a span such as 90s, "
			    "30m, 1h or 1d (at most 30d)");
		return 0;
	}
	if (strcmp(kv->key, "exclude_tags") == 0)
		return list_key(e, kv, file, &g->exclude_tags);
	if (strcmp(kv->key, "exclude_identities") == 0)
		return list_key(e, kv, file, &g->exclude_identities);
	if (strcmp(kv->key, "exclude_accounts") == 0)
		return list_key(e, kv, file, &g->exclude_accounts);
	return fail(e, file, kv->line, "unknown key '%s' in [disruption_guard]", kv->key);
}

/* The defaults, then the section's keys, then the accounts quell binds with. */
static void
self_clear(struct disruption_guard *g)
{
	size_t i;

	for (i = 0; i < g->nself; i++) {
		free(g->self[i].system);
		free(g->self[i].value);
	}
	free(g->self);
	g->self = NULL;
	g->nself = 0;
}

/* The accounts a system's kind says quell uses there, with their configured values. */
static int
add_self_accounts(struct disruption_guard *g, const struct kind_table *kinds,
    const struct system_config *s, struct qerr *e)
{
	const struct kind_info *k = kind_find(kinds, s->kind);
	struct disruption_self_account *grown, *d;
	const struct config_kv *kv;
	size_t i;

	for (i = 0; k != NULL && i < k->nself_accounts; i++) {
		if ((kv = config_system_get(s, k->self_accounts[i].key)) == NULL)
			continue;
		if ((grown = realloc(g->self, (g->nself + 1) * sizeof(*grown))) == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		g->self = grown;
		d = &g->self[g->nself];
		d->attr = k->self_accounts[i].attr;
		d->system = strdup(s->name);
		d->value = strdup(kv->value);
		g->nself++;
		if (d->system == NULL || d->value == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	return 0;
}

static int
load_guard(const struct config *cfg, struct disruption_guard *g, struct qerr *e)
{
	const struct config_kv *kv;
	unsigned perms;
	size_t i;
	int r;

	g->role = "responder";
	g->max_containments = 10;
	g->window_ms = 3600000;
	if (strlist_split(&g->exclude_tags, "breakglass tier0", WORD_SEP) != 0)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < cfg->disruption_guard.nkv; i++) {
		kv = &cfg->disruption_guard.kv[i];
		if ((r = guard_key(g, cfg->file, kv, e)) != 0)
			return r;
		if (strcmp(kv->key, "role") == 0 && !rbac_role_perms(cfg, g->role, &perms))
			return fail(e, cfg->file, kv->line, "role '%s' is not a role", g->role);
	}
	for (i = 0; i < cfg->nsystems; i++)
		if ((r = add_self_accounts(g, &cfg->kinds, &cfg->systems[i], e)) != 0)
			return r;
	return 0;
}

int
disruption_policy_load(const struct config *cfg, struct disruption_policy **out,
    struct qerr *e)
{
	struct disruption_policy *p;
	size_t i, n = 0;
	int r = 0;

	*out = NULL;
	for (i = 0; i < cfg->npolicy; i++)
		n += strcmp(cfg->policy[i].kind, "disruption") == 0;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->rules = calloc(n + 1, sizeof(*p->rules))) == NULL) {
		free(p);
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	for (i = 0; i < cfg->npolicy && r == 0; i++)
		if (strcmp(cfg->policy[i].kind, "disruption") == 0)
			r = load_rule(&cfg->policy[i], &p->rules[p->nrules++], e);
	if (r == 0)
		r = load_guard(cfg, &p->guard, e);
	if (r != 0) {
		disruption_policy_free(p);
		return r;
	}
	*out = p;
	return 0;
}

void
disruption_policy_free(struct disruption_policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nrules; i++) {
		strlist_clear(&p->rules[i].categories);
		strlist_clear(&p->rules[i].tags);
		strlist_clear(&p->rules[i].allow_tags);
	}
	free(p->rules);
	strlist_clear(&p->guard.exclude_tags);
	strlist_clear(&p->guard.exclude_identities);
	strlist_clear(&p->guard.exclude_accounts);
	self_clear(&p->guard);
	free(p);
}

static bool
rule_matches(const struct disruption_rule *r, const struct alert *a, char *const *tags,
    size_t ntags)
{
	if (r->categories.n > 0 && !listed(&r->categories, a->category))
		return false;
	if (a->severity < r->min_severity || a->confidence < r->min_confidence)
		return false;
	return r->tags.n == 0 || strlist_meet(tags, ntags, r->tags.v, r->tags.n, true);
}

const struct disruption_rule *
disruption_match(const struct disruption_policy *p, const struct alert *a,
    char *const *tags, size_t ntags)
{
	size_t i;

	for (i = 0; i < p->nrules; i++)
		if (rule_matches(&p->rules[i], a, tags, ntags))
			return &p->rules[i];
	return NULL;
}

/* An account named in exclude_accounts by id, username, UPN, SID, DN or e-mail. */
static bool
account_listed(const struct strlist *l, const struct account *a)
{
	return listed(l, a->id) || listed(l, a->username) || listed(l, a->upn) ||
	    listed(l, a->sid) || listed(l, a->dn) || listed(l, a->email) ||
	    listed(l, a->external_id);
}

bool
disruption_is_self(const struct disruption_guard *g, const struct account *a)
{
	const char *v;
	size_t i;

	for (i = 0; i < g->nself; i++)
		if (a->system != NULL && strcmp(g->self[i].system, a->system) == 0 &&
		    (v = kind_account_value(a, g->self[i].attr)) != NULL &&
		    strcasecmp(v, g->self[i].value) == 0)
			return true;
	return false;
}

static bool
account_excluded(const struct disruption_guard *g, const struct identity *idn,
    char *why, size_t len)
{
	const struct account *a;
	size_t i;

	for (i = 0; i < idn->naccounts; i++) {
		a = &idn->accounts[i];
		if (disruption_is_self(g, a)) {
			snprintf(why, len, "linked account %s/%s is the account quell signs "
			    "in to %s with", a->system, a->username ? a->username : a->id,
			    a->system);
			return true;
		}
		if (account_listed(&g->exclude_accounts, a)) {
			snprintf(why, len, "linked account %s/%s is in exclude_accounts",
			    a->system, a->username ? a->username : a->id);
			return true;
		}
	}
	return false;
}

bool
disruption_excluded(const struct disruption_policy *p,
    const struct disruption_rule *r, const struct identity *idn, char *why, size_t len)
{
	const struct disruption_guard *g = &p->guard;
	size_t i;

	if (listed(&g->exclude_identities, idn->id)) {
		snprintf(why, len, "identity %s is in exclude_identities", idn->id);
		return true;
	}
	for (i = 0; i < idn->ntags; i++) {
		if (!listed(&g->exclude_tags, idn->tags[i]))
			continue;
		if (r != NULL && listed(&r->allow_tags, idn->tags[i]))
			continue;
		snprintf(why, len, "identity is tagged '%s', excluded from automatic "
		    "response%s", idn->tags[i], r != NULL ? " (the rule does not allow it)" :
		    "");
		return true;
	}
	return account_excluded(g, idn, why, len);
}

bool
disruption_within_limit(const struct disruption_policy *p, long recent)
{
	return recent < p->guard.max_containments;
}
