/*
 * Automatic attack disruption's policy, pure: [disruption "name"] rules that match an
 * alert (category, minimum severity and confidence, optionally identity tags) to a
 * set of actions, and the [disruption_guard] that keeps automation away from the
 * identities it must never touch and limits how many it may contain per window.
 *
 *   [disruption "contain-ransomware"]
 *   categories = ransomware credential_theft      # any when absent
 *   min_severity = high                           # default low
 *   min_confidence = 80                           # 0..100, default 0
 *   tags = staff                                  # identity must carry one; any when absent
 *   actions = contain set_risk:HIGH mark_compromised   # contain = disable revoke_sessions
 *   allow_tags = tier0                            # default exclusions this rule lifts
 *   dry_run = true                                # record the plan, touch nothing
 *
 *   [disruption_guard]
 *   role = responder                # the grants of automatic-attack-disruption
 *   max_containments = 10           # per window; past it, actions wait for approval
 *   window = 1h
 *   exclude_tags = breakglass tier0 # the default
 *   exclude_identities = idn_…
 *   exclude_accounts = svc-backup admin@corp.example S-1-5-21-…
 *
 * The first rule (in file order) that matches an alert and identity applies.
 */
#ifndef QUELL_CORE_DISRUPTION_RULES_H
#define QUELL_CORE_DISRUPTION_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "config.h"
#include "err.h"
#include "model.h"
#include "strlist.h"

#define DISRUPTION_PRINCIPAL "automatic-attack-disruption"
#define DISRUPTION_SOURCE "automatic_attack_disruption"
#define DISRUPTION_BLAST_RULE "blast-radius"
#define DISRUPTION_MAX_STEPS 8

/* Decision outcomes, as stored and shown. */
#define DISRUPTION_CONTAINED "contained"	/* actions requested */
#define DISRUPTION_HELD "held"			/* past the limit: waiting for approval */
#define DISRUPTION_EXCLUDED "excluded"
#define DISRUPTION_OUT_OF_SCOPE "out_of_scope"	/* beyond what the poster may do */
#define DISRUPTION_DRY_RUN "dry_run"
#define DISRUPTION_DUPLICATE "duplicate"	/* already contained */
#define DISRUPTION_NO_RULE "no_rule"
#define DISRUPTION_FAILED "failed"		/* nothing could be requested */
#define DISRUPTION_RELEASED "released"
/* A release after which some accounts are still disabled: in force for them. */
#define DISRUPTION_RELEASE_PARTIAL "release_partial"

struct disruption_step {
	enum action_type type;
	const char *risk_level;		/* set_risk: HIGH, MEDIUM or LOW */
};

struct disruption_rule {
	const char *name;
	const char *file;
	int line;
	struct strlist categories;
	enum alert_severity min_severity;
	int min_confidence;
	struct strlist tags;
	struct strlist allow_tags;
	struct disruption_step steps[DISRUPTION_MAX_STEPS];
	size_t nsteps;
	bool dry_run;
};

struct disruption_self_account {
	char *system;		/* the [system] section it is configured in */
	enum kind_account_attr attr;
	char *value;
};

struct disruption_guard {
	const char *role;
	long max_containments;
	int64_t window_ms;
	struct strlist exclude_tags;
	struct strlist exclude_identities;
	struct strlist exclude_accounts;
	/* The accounts quell itself signs in with, as each system's kind declares
	 * them (struct kind_self_account): never contained automatically. */
	struct disruption_self_account *self;
	size_t nself;
};

struct disruption_policy {
	struct disruption_rule *rules;
	size_t nrules;
	struct disruption_guard guard;
};

/* Reads every [disruption] section and [disruption_guard]; errors say
 * "file:line: reason". cfg must outlive the policy. */
int disruption_policy_load(const struct config *cfg, struct disruption_policy **out,
    struct qerr *e);
void disruption_policy_free(struct disruption_policy *p);

/* The first rule matching the alert and an identity with these tags, or NULL. */
const struct disruption_rule *disruption_match(const struct disruption_policy *p,
    const struct alert *a, char *const *tags, size_t ntags);

/*
 * Whether automation must leave the identity alone under rule r (NULL: any rule):
 * listed itself, tagged with an excluded tag the rule does not lift, or linked to an
 * excluded account or one quell binds with. why says which.
 */
bool disruption_excluded(const struct disruption_policy *p,
    const struct disruption_rule *r, const struct identity *idn, char *why, size_t len);

/* Whether a is an account quell itself signs in with (a kind's self account). */
bool disruption_is_self(const struct disruption_guard *g, const struct account *a);

/* Whether one more containment fits when recent ones happened in the window. */
bool disruption_within_limit(const struct disruption_policy *p, long recent);

#endif
