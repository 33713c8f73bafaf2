/* Permission names, built-in roles and role resolution. */
#include <string.h>
#include <strings.h>

#include "rbac.h"

static const char *const perm_names[PERM_COUNT] = {
	"response.manage", "response.approve", "response.read", "identities.read",
	"identities.manage", "hunting.query", "audit.read", "settings.manage",
	"alerts.ingest", "metrics.read",
};

static const struct {
	const char *name;
	unsigned perms;
} builtin_roles[] = {
	{ "admin", PERM_ALL },
	{ "responder", PERM_RESPONSE_MANAGE | PERM_RESPONSE_READ | PERM_IDENTITIES_READ |
	    PERM_AUDIT_READ },
	{ "approver", PERM_RESPONSE_APPROVE | PERM_RESPONSE_READ | PERM_IDENTITIES_READ |
	    PERM_AUDIT_READ },
	{ "viewer", PERM_RESPONSE_READ | PERM_IDENTITIES_READ | PERM_AUDIT_READ },
	{ "auditor", PERM_AUDIT_READ },
	/* A detection source: posts alerts and reads what came of them. */
	{ "detector", PERM_ALERTS_INGEST | PERM_RESPONSE_READ },
	/* Monitoring: scrapes /metrics with a token that can read nothing else. */
	{ "monitor", PERM_METRICS_READ },
};

/* Names quell writes for itself in the audit log and on actions. */
static const char *const reserved[] = {
	"automatic-attack-disruption", "quell", "quelld", "system", "sync", "anonymous",
	"builtin", "engine",
};

bool
rbac_reserved_name(const char *name)
{
	size_t i;

	if (name == NULL)
		return false;
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcasecmp(name, reserved[i]) == 0)
			return true;
	return false;
}

const char *
rbac_perm_name(unsigned perm)
{
	int i;

	for (i = 0; i < PERM_COUNT; i++)
		if (perm == 1u << i)
			return perm_names[i];
	return NULL;
}

int
rbac_perm_parse(const char *name, unsigned *out)
{
	int i;

	for (i = 0; i < PERM_COUNT; i++)
		if (strcmp(name, perm_names[i]) == 0) {
			*out = 1u << i;
			return 0;
		}
	return -1;
}

bool
rbac_role_perms(const struct config *cfg, const char *role, unsigned *perms)
{
	const struct role_config *rc;
	size_t i;

	if (role == NULL)
		return false;
	if (cfg != NULL && (rc = config_role(cfg, role)) != NULL) {
		*perms = rc->perms;
		return true;
	}
	for (i = 0; i < sizeof(builtin_roles) / sizeof(builtin_roles[0]); i++)
		if (strcmp(builtin_roles[i].name, role) == 0) {
			*perms = builtin_roles[i].perms;
			return true;
		}
	return false;
}

unsigned
rbac_action_perm(enum action_type type)
{
	(void)type;
	return PERM_RESPONSE_MANAGE;
}
