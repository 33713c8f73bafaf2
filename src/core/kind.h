/*
 * What quell knows about a kind of identity system besides how to act on it: the
 * alert id types that name its accounts, its default correlation rules, the roles the
 * seed requires to act on it, and the accounts quell itself uses there. Plain data:
 * each provider fills one struct kind_info; the daemon hands the built-in kinds to
 * the configuration (config->kinds), and the policy, correlation, disruption and alert
 * code read them there instead of knowing any kind by name.
 */
#ifndef QUELL_CORE_KIND_H
#define QUELL_CORE_KIND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/model.h"

/* Which account attribute an alert's id type is compared with. */
enum kind_match {
	KIND_MATCH_UPN,		/* any kind's account with that UPN */
	KIND_MATCH_SID,		/* any kind's account with that SID */
	KIND_MATCH_EXTERNAL_ID,	/* the declaring kind's account with that object id */
};

/* An id type an alert's entities.accounts[] item may carry ({"sid": "S-1-5-…"}). */
struct kind_alert_id {
	const char *id_type;
	enum kind_match match;
	/* How a valid value looks, for the error message: "a sid looks like S-1-5-…". */
	const char *hint;
	/* Checks value and normalises it in place (case); NULL accepts any. */
	bool (*valid)(char *value);
};

/* A default correlation rule, in the [correlation] section's own words. */
struct kind_corr_rule {
	const char *name;	/* "sid" */
	const char *match;	/* "ad.sid = entra.sid" */
};

/* The Entra role template ids (space-separated) allowed to act, per action type. */
struct kind_role_req {
	enum action_type type;
	const char *wids;
};

/* The account attribute a self-account key's value names. */
enum kind_account_attr { KIND_ACCOUNT_DN, KIND_ACCOUNT_UPN, KIND_ACCOUNT_USERNAME,
	KIND_ACCOUNT_EXTERNAL_ID };

/* A configuration key of the system whose value names the account quell signs in
 * with there (AD's bind_dn): such an account is never contained automatically. */
struct kind_self_account {
	const char *key;
	enum kind_account_attr attr;
};

struct kind_info {
	const char *kind;
	/* Its accounts' identityProvider in the Graph-compatible API (routes_graph.c);
	 * NULL: Graph has no name for it, and that API leaves its accounts out. */
	const char *graph_provider;
	/* The shape of a step's account reference (what the executor accepts from the
	 * front process); NULL: kind_ref_segment. ref_hint names it in a refusal. */
	bool (*ref_valid)(const char *ref);
	const char *ref_hint;
	const struct kind_alert_id *alert_ids;
	size_t nalert_ids;
	const struct kind_corr_rule *corr_rules;
	size_t ncorr_rules;
	const struct kind_role_req *role_reqs;
	size_t nrole_reqs;
	const struct kind_self_account *self_accounts;
	size_t nself_accounts;
};

/* The built-in kinds, borrowed (static data of the providers). */
struct kind_table {
	const struct kind_info *const *v;
	size_t n;
};

/* The kind named kind, or NULL. t may be NULL (no kinds known). */
const struct kind_info *kind_find(const struct kind_table *t, const char *kind);
/*
 * The alert id type named id_type, over every kind (kinds that declare the same
 * upn or sid id type share it); *owner is the declaring kind, whose name scopes a
 * KIND_MATCH_EXTERNAL_ID lookup. NULL when no kind declares it.
 */
const struct kind_alert_id *kind_alert_id_find(const struct kind_table *t,
    const char *id_type, const struct kind_info **owner);
/* Writes "upn, sid, okta_id, …" (every id type once) into buf. */
void kind_alert_id_list(const struct kind_table *t, char *buf, size_t len);
/* The value of acct's attribute attr, or NULL. */
const char *kind_account_value(const struct account *acct, enum kind_account_attr attr);

/* Account reference shapes: a GUID; letters and digits; one URL path segment of
 * printable ASCII without / \ ? # % (each 1 to 256 bytes). */
bool kind_ref_guid(const char *ref);
bool kind_ref_alnum(const char *ref);
bool kind_ref_segment(const char *ref);

/* Validators the providers share for their alert id types. */
bool kind_valid_upn(char *value);	/* user@domain, no blanks */
bool kind_valid_sid(char *value);	/* S-1-5-21-…, digits and dashes */
bool kind_valid_guid(char *value);	/* a GUID, folded to lower case */

#endif
