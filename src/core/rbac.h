/*
 * Permissions, the roles that bundle them, and the decision whether a principal's
 * role allows an operation. Pure: the caller supplies the configured roles.
 */
#ifndef QUELL_CORE_RBAC_H
#define QUELL_CORE_RBAC_H

#include <stdbool.h>

#include "config.h"
#include "model.h"

enum perm {
	PERM_RESPONSE_MANAGE = 1u << 0,
	PERM_RESPONSE_APPROVE = 1u << 1,
	PERM_RESPONSE_READ = 1u << 2,
	PERM_IDENTITIES_READ = 1u << 3,
	PERM_IDENTITIES_MANAGE = 1u << 4,
	PERM_HUNTING_QUERY = 1u << 5,
	PERM_AUDIT_READ = 1u << 6,
	PERM_SETTINGS_MANAGE = 1u << 7,
	/* Posting alerts: what detection sources hold. Separate from response.manage
	 * because an alert makes quell act on its own, within the poster's scope. */
	PERM_ALERTS_INGEST = 1u << 8,
	/* Scraping GET /metrics: what a Prometheus server holds, and nothing else. */
	PERM_METRICS_READ = 1u << 9,
};
#define PERM_ALL 0x3ffu
#define PERM_COUNT 10

/* "response.manage" etc.; NULL for a bit that is not one permission. */
const char *rbac_perm_name(unsigned perm);
/* 0 and *out set, or -1 for an unknown name. */
int rbac_perm_parse(const char *name, unsigned *out);

/*
 * The permissions of role name: a role configured in cfg wins over a built-in one of
 * the same name (admin, approver, responder, viewer, auditor, detector, monitor). Returns false for an unknown role.
 */
bool rbac_role_perms(const struct config *cfg, const char *role, unsigned *perms);

/*
 * Whether name is one of quell's own principals (automatic-attack-disruption, quell,
 * system, sync, anonymous, …), case-insensitively: no token may be named so, or its
 * entries could pass for quell's.
 */
bool rbac_reserved_name(const char *name);

/* The permission that requesting an action of this type needs. */
unsigned rbac_action_perm(enum action_type type);

#endif
