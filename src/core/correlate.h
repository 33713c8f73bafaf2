/*
 * Correlation of accounts into identities, as pure rules: which attributes of an
 * account are compared with which attributes of accounts in other systems, and what a
 * sync does with the identities those comparisons find. The store runs the lookups;
 * this file only says what to look up and how to decide.
 *
 * Rules come from [correlation "name"] sections, strongest first, in file order:
 *
 *   [correlation "sid"]
 *   match = ad.sid = entra.sid
 *
 * Each side is a comma-separated list of KIND.ATTR ("*" for any kind; ATTR one of
 * sid, upn, email, username); an account matches when a value of one side equals a
 * value of the other, case-folded. Without any section the defaults below apply.
 */
#ifndef QUELL_CORE_CORRELATE_H
#define QUELL_CORE_CORRELATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "model.h"

enum corr_attr { CORR_SID, CORR_UPN, CORR_EMAIL, CORR_USERNAME, CORR_ATTR_COUNT };

#define CORR_RULES_MAX	16
#define CORR_TERMS_MAX	8
#define CORR_NAME_MAX	64
#define CORR_KIND_MAX	16
#define CORR_VALUE_MAX	512	/* longer values never match: no directory has them */
#define CORR_HITS_MAX	4	/* distinct identities kept per rule: two make a conflict */
#define CORR_ID_MAX	64

/* Link rules that are not correlation rules. */
#define CORR_RULE_MANUAL	"manual"
#define CORR_RULE_NEW		"new account"

struct corr_term {
	char kind[CORR_KIND_MAX];	/* "" = any kind */
	enum corr_attr attr;
};

struct corr_rule {
	char name[CORR_NAME_MAX];
	struct corr_term side[2][CORR_TERMS_MAX];
	size_t nside[2];
};

struct corr_rules {
	struct corr_rule rule[CORR_RULES_MAX];
	size_t n;
};

/* One lookup: accounts of kind (NULL = any) whose attr case-folds to value. */
struct corr_probe {
	char value[CORR_VALUE_MAX];
	const char *kind;
	enum corr_attr attr;
};

/* Distinct identities found by one rule's probes. */
struct corr_hits {
	char id[CORR_HITS_MAX][CORR_ID_MAX];
	size_t n;
};

enum corr_verdict {
	CORR_KEEP,	/* leave the account where it is */
	CORR_LINK,	/* link to *id by rule *rule */
	CORR_NEW,	/* give it an identity of its own */
	CORR_CONFLICT,	/* it matches several identities by its strongest rule: unlinked */
};

/* Where an account is linked now. */
struct corr_current {
	const char *identity_id;	/* NULL: not linked */
	const char *rule;		/* its link rule, NULL when unknown */
	bool sole;			/* no other account is linked to that identity */
};

const char *corr_attr_name(enum corr_attr a);
int corr_attr_parse(const char *s, enum corr_attr *out);

/* Reads the [correlation] sections of cfg->policy ("file:line: reason" on error),
 * or the defaults when there are none. */
int corr_rules_load(const struct config *cfg, struct corr_rules *out, struct qerr *e);
/* The rules the kinds declare (struct kind_info), for a configuration without any. */
int corr_rules_default(const struct kind_table *kinds, struct corr_rules *out,
    struct qerr *e);

/* The account's value of attr, or NULL. */
const char *corr_value(const struct account *a, enum corr_attr attr);
/* ASCII case-folding into out; false when in is empty or does not fit. */
bool corr_fold(const char *in, char *out, size_t outlen);

/* The lookups rule asks for account a: at most max, returned count. */
size_t corr_probes(const struct corr_rule *rule, const struct account *a,
    struct corr_probe *out, size_t max);
/* Adds id to hits unless present or it is exclude; ignores ids beyond the cap. */
void corr_hits_add(struct corr_hits *h, const char *id, const char *exclude);

/*
 * Decides from the current link and the hits of each rule (hits[i] for rule i, with
 * manually refused pairs already left out): manual links are kept; an account already
 * where a rule points stays; otherwise the strongest rule that found anything decides
 * (one identity: link; several: conflict); with no hit it keeps its link or gets an
 * identity of its own. An account moves from a link of its own making (a sole "new
 * account") only. *rule is the index of the deciding rule.
 */
enum corr_verdict corr_decide(const struct corr_current *cur, const struct corr_hits *hits,
    size_t nrules, size_t *rule, const char **id);

#endif
