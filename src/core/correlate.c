/* Correlation rules: parsing, the lookups they ask for, and the verdict. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "correlate.h"

static const char *const attr_names[CORR_ATTR_COUNT] = {
	[CORR_SID] = "sid",
	[CORR_UPN] = "upn",
	[CORR_EMAIL] = "email",
	[CORR_USERNAME] = "username",
};

const char *
corr_attr_name(enum corr_attr a)
{
	return a < CORR_ATTR_COUNT ? attr_names[a] : "?";
}

int
corr_attr_parse(const char *s, enum corr_attr *out)
{
	int i;

	for (i = 0; i < CORR_ATTR_COUNT; i++)
		if (strcmp(s, attr_names[i]) == 0) {
			*out = (enum corr_attr)i;
			return 0;
		}
	return -1;
}

static void
set_term(struct corr_term *t, const char *kind, enum corr_attr attr)
{
	snprintf(t->kind, sizeof(t->kind), "%s", kind);
	t->attr = attr;
}

static int fail(struct qerr *e, const struct system_config *s, int line,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
fail(struct qerr *e, const struct system_config *s, int line, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return qerr_set(e, QERR_CONFIG, NULL, "%s:%d: [correlation \"%s\"]: %s", s->file,
	    line, s->name, why);
}

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

/* "ad.sid, entra.upn": one side of a match. */
static int
parse_side(char *text, struct corr_term *terms, size_t *n, const struct system_config *s,
    int line, struct qerr *e)
{
	char *tok, *save = NULL, *dot;
	enum corr_attr a;

	*n = 0;
	for (tok = strtok_r(text, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		if ((dot = strchr(tok, '.')) == NULL || dot == tok ||
		    (size_t)(dot - tok) >= CORR_KIND_MAX)
			return fail(e, s, line, "'%s' is not KIND.ATTRIBUTE (e.g. ad.sid)",
			    tok);
		*dot = '\0';
		if (corr_attr_parse(dot + 1, &a) != 0)
			return fail(e, s, line, "unknown attribute '%s': use sid, upn, email "
			    "or username", dot + 1);
		if (strspn(tok, "abcdefghijklmnopqrstuvwxyz0123456789_-*") != strlen(tok) ||
		    (strchr(tok, '*') != NULL && strcmp(tok, "*") != 0))
			return fail(e, s, line, "bad kind '%s': a system kind such as ad, "
			    "entra, okta, or *", tok);
		if (*n == CORR_TERMS_MAX)
			return fail(e, s, line, "more than %d attributes on one side",
			    CORR_TERMS_MAX);
		set_term(&terms[(*n)++], strcmp(tok, "*") == 0 ? "" : tok, a);
	}
	if (*n == 0)
		return fail(e, s, line, "%s", "a side of the match names no attribute");
	return 0;
}

/* "LEFT = RIGHT" into rule name; s and line say where, for errors. */
static int
parse_match(const char *name, const char *text, struct corr_rule *r,
    const struct system_config *s, int line, struct qerr *e)
{
	char buf[1024], *eq;
	int rc;

	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	if (strlen(text) >= sizeof(buf))
		return fail(e, s, line, "%s", "match is too long");
	snprintf(buf, sizeof(buf), "%s", text);
	if ((eq = strchr(buf, '=')) == NULL || strchr(eq + 1, '=') != NULL)
		return fail(e, s, line, "%s", "match must be LEFT = RIGHT, e.g. "
		    "ad.sid = entra.sid");
	*eq = '\0';
	if ((rc = parse_side(buf, r->side[0], &r->nside[0], s, line, e)) != 0)
		return rc;
	return parse_side(eq + 1, r->side[1], &r->nside[1], s, line, e);
}

static int
load_rule(const struct system_config *s, struct corr_rule *r, struct qerr *e)
{
	const struct config_kv *kv = NULL;
	size_t i;

	if (strcmp(s->name, CORR_RULE_MANUAL) == 0)
		return fail(e, s, s->line, "%s", "'manual' names manual links: choose "
		    "another name");
	for (i = 0; i < s->nkv; i++) {
		if (strcmp(s->kv[i].key, "match") != 0)
			return fail(e, s, s->kv[i].line, "unknown key '%s' (only match)",
			    s->kv[i].key);
		kv = &s->kv[i];
	}
	if (kv == NULL)
		return fail(e, s, s->line, "%s", "match is required, e.g. "
		    "match = ad.sid = entra.sid");
	return parse_match(s->name, kv->value, r, s, kv->line, e);
}

/* Each kind's default rules, in the order the kinds are built in. */
int
corr_rules_default(const struct kind_table *kinds, struct corr_rules *out, struct qerr *e)
{
	const struct kind_info *k;
	struct system_config where;
	size_t i, j;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&where, 0, sizeof(where));
	where.file = "(built in)";
	for (i = 0; kinds != NULL && i < kinds->n; i++) {
		k = kinds->v[i];
		for (j = 0; j < k->ncorr_rules; j++) {
			where.name = (char *)k->corr_rules[j].name;
			if (out->n == CORR_RULES_MAX)
				return fail(e, &where, 0, "more than %d correlation rules",
				    CORR_RULES_MAX);
			if ((r = parse_match(k->corr_rules[j].name, k->corr_rules[j].match,
			    &out->rule[out->n], &where, 0, e)) != 0)
				return r;
			out->n++;
		}
	}
	return 0;
}

int
corr_rules_load(const struct config *cfg, struct corr_rules *out, struct qerr *e)
{
	const struct system_config *s;
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < cfg->npolicy; i++) {
		s = &cfg->policy[i];
		if (strcmp(s->kind, "correlation") != 0)
			continue;
		if (out->n == CORR_RULES_MAX)
			return fail(e, s, s->line, "more than %d correlation rules",
			    CORR_RULES_MAX);
		if ((r = load_rule(s, &out->rule[out->n], e)) != 0)
			return r;
		out->n++;
	}
	return out->n == 0 ? corr_rules_default(&cfg->kinds, out, e) : 0;
}

const char *
corr_value(const struct account *a, enum corr_attr attr)
{
	switch (attr) {
	case CORR_SID:
		return a->sid;
	case CORR_UPN:
		return a->upn;
	case CORR_EMAIL:
		return a->email;
	case CORR_USERNAME:
		return a->username;
	case CORR_ATTR_COUNT:
		break;
	}
	return NULL;
}

bool
corr_fold(const char *in, char *out, size_t outlen)
{
	size_t i;

	if (in == NULL || in[0] == '\0' || strlen(in) >= outlen)
		return false;
	for (i = 0; in[i] != '\0'; i++)
		out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
	out[i] = '\0';
	return true;
}

static bool
kind_is(const struct corr_term *t, const char *kind)
{
	return t->kind[0] == '\0' || (kind != NULL && strcmp(t->kind, kind) == 0);
}

/* The probes for a's values on side `from` against the terms of the other side. */
static size_t
side_probes(const struct corr_rule *rule, int from, const struct account *a,
    struct corr_probe *out, size_t n, size_t max)
{
	const struct corr_term *mine, *theirs;
	size_t i, j;

	for (i = 0; i < rule->nside[from]; i++) {
		mine = &rule->side[from][i];
		if (!kind_is(mine, a->kind))
			continue;
		for (j = 0; j < rule->nside[1 - from] && n < max; j++) {
			theirs = &rule->side[1 - from][j];
			if (!corr_fold(corr_value(a, mine->attr), out[n].value,
			    sizeof(out[n].value)))
				break;
			out[n].kind = theirs->kind[0] != '\0' ? theirs->kind : NULL;
			out[n].attr = theirs->attr;
			n++;
		}
	}
	return n;
}

size_t
corr_probes(const struct corr_rule *rule, const struct account *a,
    struct corr_probe *out, size_t max)
{
	size_t n = side_probes(rule, 0, a, out, 0, max);

	return side_probes(rule, 1, a, out, n, max);
}

void
corr_hits_add(struct corr_hits *h, const char *id, const char *exclude)
{
	size_t i;

	if (id == NULL || (exclude != NULL && strcmp(id, exclude) == 0) ||
	    strlen(id) >= CORR_ID_MAX)
		return;
	for (i = 0; i < h->n; i++)
		if (strcmp(h->id[i], id) == 0)
			return;
	if (h->n < CORR_HITS_MAX)
		snprintf(h->id[h->n++], CORR_ID_MAX, "%s", id);
}

static bool
is_own(const struct corr_current *cur)
{
	return cur->identity_id != NULL && cur->sole && cur->rule != NULL &&
	    strcmp(cur->rule, CORR_RULE_NEW) == 0;
}

enum corr_verdict
corr_decide(const struct corr_current *cur, const struct corr_hits *hits,
    size_t nrules, size_t *rule, const char **id)
{
	size_t i;

	*rule = 0;
	*id = NULL;
	if (cur->identity_id != NULL && cur->rule != NULL &&
	    strcmp(cur->rule, CORR_RULE_MANUAL) == 0)
		return CORR_KEEP;
	/* hits never hold the current identity (the lookups exclude it): a rule that
	 * found only it found nothing, and the account stays. */
	for (i = 0; i < nrules && hits[i].n == 0; i++)
		;
	if (i == nrules)
		return cur->identity_id != NULL ? CORR_KEEP : CORR_NEW;
	if (cur->identity_id != NULL && !is_own(cur))
		return CORR_KEEP;
	*rule = i;
	if (hits[i].n > 1)
		return CORR_CONFLICT;
	*id = hits[i].id[0];
	return CORR_LINK;
}
