/*
 * The words of DESIGN.md as plain data: identities, accounts, actions, steps, audit
 * entries, and the enums of their lifecycles. Every string is heap-owned by the struct
 * that holds it; the *_clear functions free them (and accept zeroed structs).
 */
#ifndef QUELL_CORE_MODEL_H
#define QUELL_CORE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum action_type {
	ACTION_DISABLE,
	ACTION_ENABLE,
	ACTION_REVOKE_SESSIONS,
	ACTION_MARK_COMPROMISED,
	ACTION_FORCE_PASSWORD_CHANGE,
	ACTION_DEACTIVATE,
	ACTION_SET_RISK,
	ACTION_TYPE_COUNT
};

enum action_status {
	ACTION_PENDING_APPROVAL,
	ACTION_QUEUED,
	ACTION_RUNNING,
	ACTION_COMPLETED,
	ACTION_PARTIALLY_COMPLETED,
	ACTION_FAILED,
	ACTION_CANCELLED,
	ACTION_DENIED,
	ACTION_REJECTED,	/* refused by the approver: nothing ran */
	ACTION_STATUS_COUNT
};

enum step_status {
	STEP_QUEUED,
	STEP_RUNNING,
	STEP_RETRY_WAIT,
	STEP_SUCCEEDED,
	STEP_FAILED,
	STEP_NOT_APPLICABLE,
	STEP_CANCELLED,
	STEP_STATUS_COUNT
};

/* Names as they appear in the API, the database and the audit log. */
const char *action_type_name(enum action_type t);
const char *action_status_name(enum action_status s);
const char *step_status_name(enum step_status s);
/* Return 0 and set *out, or -1 for an unknown name. */
int action_type_parse(const char *name, enum action_type *out);
int action_status_parse(const char *name, enum action_status *out);
int step_status_parse(const char *name, enum step_status *out);

bool action_status_terminal(enum action_status s);
bool step_status_terminal(enum step_status s);

struct account {
	char *id;		/* acc_… */
	char *identity_id;	/* NULL when not linked */
	char *system;		/* configured identity system name, e.g. "corp" */
	char *kind;		/* the system's kind (struct kind_info) */
	char *external_id;	/* AD objectGUID (canonical text), Entra object id, Okta id */
	char *sid;		/* objectSid / onPremisesSecurityIdentifier, text form */
	char *dn;
	char *username;		/* sAMAccountName / Okta login */
	char *upn;
	char *display_name;
	char *email;		/* mail / Okta profile email */
	bool synced;		/* mastered in another system (Entra onPremisesSyncEnabled) */
	char *state;		/* last known: "enabled", "disabled", … */
	int64_t state_read_at;	/* ms since the epoch, 0 = never */
	int64_t created_at;
	char *risk;		/* the system's risk level for it, when the system says */
	char *link_rule;	/* why it is linked: "manual", "new account", a rule name */
	char *linked_by;	/* who linked it: a principal, or "sync" */
	int64_t linked_at;	/* ms since the epoch, 0 = never */
};

struct identity {
	char *id;		/* idn_… */
	char *display_name;
	char **tags;
	size_t ntags;
	int64_t created_at;
	struct account *accounts;
	size_t naccounts;
};

struct step {
	char *id;		/* stp_… */
	char *action_id;
	char *account_id;
	char *system;
	char *account_ref;	/* the account's external_id, what the provider acts on */
	char *account_name;	/* for people: sAMAccountName, UPN or login */
	enum action_type type;
	enum step_status status;
	char *params;		/* JSON object text copied from the action */
	int attempts;		/* requests that reached the system and failed, + 1 running */
	int64_t not_before;	/* retry_wait: not claimable before this */
	int waits;		/* times told to wait: quell's pacing or the system's Retry-After */
	int64_t wait_ms;	/* the time those waits asked for, in all */
	char *lease_owner;
	int64_t lease_expires;
	char *request_id;	/* the provider's request / correlation id */
	char *error_code;	/* the provider's error code */
	char *message;		/* human summary of the last attempt */
	int64_t created_at;
	int64_t updated_at;
	int64_t started_at;
	int64_t finished_at;
};

struct action {
	char *id;		/* act_… */
	enum action_type type;
	enum action_status status;
	char *identity_id;
	char *account_id;	/* NULL: every linked account */
	char *requested_by;	/* principal name */
	char *source;		/* "manual", "api", "automatic_attack_disruption" */
	char *reason;
	char *params;		/* JSON object text, "{}" when none */
	char *message;		/* why denied / how it ended */
	bool cancel_requested;
	char *requested_by_id;	/* the principal's stable id: token id, "<issuer>#<subject>" */
	char *requested_by_kind; /* "token", "jwt", "session", "system"; NULL before 7 */
	char *undo_of;		/* the action this one undoes, or NULL */
	char *approval_rule;	/* the [approval] rule that made it wait, or NULL */
	char *decided_by;	/* who approved or rejected it */
	char *decided_by_id;	/* their stable id and kind, as requested_by_* */
	char *decided_by_kind;
	int64_t approval_expires; /* pending_approval: cancelled after this (ms) */
	char *alert_id;		/* the alert automatic attack disruption acted on */
	int64_t created_at;
	int64_t updated_at;
	int64_t finished_at;
	struct step *steps;
	size_t nsteps;
};

struct audit_entry {
	int64_t seq;
	int64_t time;		/* ms since the epoch */
	char *actor;		/* principal name, or the node for engine events */
	char *event;		/* "action.requested", "step.succeeded", … */
	char *action_id;	/* may be NULL */
	char *step_id;		/* may be NULL */
	char *identity_id;	/* may be NULL */
	char *detail;		/* JSON object text */
	/* Format 2 on (schema 7): who acted beyond a display name, and from where.
	 * Format 1 entries (written before) have none of these and hash without them. */
	int format;		/* 1 or 2 (AUDIT_FORMAT); 0 is read as 1 */
	char *actor_kind;	/* "token", "jwt", "session", "system" */
	char *actor_id;		/* token id, "<issuer>#<subject>", "system:<name>" */
	char *client;		/* the client's address; NULL when not over the network */
	char prev_hash[65];	/* hex SHA-256 */
	char hash[65];
};

/* A caller of the API as the store knows it. */
struct principal {
	char *id;		/* qt_… for API tokens */
	char *name;
	char *role;
	char **scope;		/* identity tags the token may act on; none = all */
	size_t nscope;
	int64_t created_at;
};

void account_clear(struct account *a);
void identity_clear(struct identity *i);
void step_clear(struct step *s);
void action_clear(struct action *a);
void audit_entry_clear(struct audit_entry *e);
void principal_clear(struct principal *p);

/* Deep copies; return 0 or QERR_NOMEM (dst is left zeroed on failure). */
int account_copy(struct account *dst, const struct account *src);
int step_copy(struct step *dst, const struct step *src);

#endif
