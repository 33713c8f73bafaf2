/*
 * Alerts from detection sources as plain data: the alert, the entities it names
 * (accounts by UPN, SID, Okta id or Entra object id; IP addresses; hosts) with what
 * each account entity resolved to, and the decisions automatic attack disruption made
 * on the identities it named. Strings are heap-owned; the *_clear functions free them
 * and accept zeroed structs.
 */
#ifndef QUELL_CORE_ALERT_H
#define QUELL_CORE_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum alert_severity {
	ALERT_SEV_INFORMATIONAL,
	ALERT_SEV_LOW,
	ALERT_SEV_MEDIUM,
	ALERT_SEV_HIGH,
	ALERT_SEV_COUNT
};

/* The source quell itself uses for the alerts it raises (a blast-radius breach). */
#define ALERT_SOURCE_QUELL "quell"

struct alert_entity {
	char *kind;		/* "account", "ip", "host" */
	char *id_type;		/* accounts: "upn", "sid", "okta_id", "entra_id" */
	char *value;
	char *identity_id;	/* what an account entity resolved to, or NULL */
	char *account_id;
	char *resolution;	/* "resolved", "unknown", "unlinked", "ambiguous"; NULL
				 * for ips and hosts */
};

struct alert {
	char *id;		/* alr_… */
	char *source;		/* the detection source, e.g. "mdi", "sentinel" */
	char *external_id;	/* the alert's id at its source */
	int64_t time;		/* when the source saw it, ms since the epoch */
	char *title;
	char *category;		/* see alert_category_valid */
	enum alert_severity severity;
	int confidence;		/* 0..100 */
	int64_t received_at;	/* ms */
	int64_t received_us;	/* µs, so quell's own latency can be measured */
	struct alert_entity *entities;
	size_t nentities;
};

/* What automatic attack disruption decided for one identity an alert named. */
struct alert_decision {
	char *id;		/* dsd_… */
	char *alert_id;
	char *identity_id;
	char *rule;		/* the [disruption] rule, or NULL when none matched */
	char *outcome;		/* see disruption_rules.h */
	char *detail;		/* JSON object text: why, actions, plan */
	int64_t created_at;
};

const char *alert_severity_name(enum alert_severity s);
int alert_severity_parse(const char *name, enum alert_severity *out);
/* Categories quell knows (ransomware, business_email_compromise, …). */
bool alert_category_valid(const char *name);
/* The list, space-separated, for error messages and help. */
const char *alert_categories(void);
/* "low" 30, "medium" 60, "high" 90; -1 for anything else. */
int alert_confidence_word(const char *word);

void alert_entity_clear(struct alert_entity *en);
void alert_clear(struct alert *a);
void alert_decision_clear(struct alert_decision *d);

#endif
