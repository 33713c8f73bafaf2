/*
 * The route table of docs/openapi.yaml and its dispatcher: each route names the
 * permission it needs, checked (and a refusal audited) before its handler runs.
 */
#include <stdio.h>
#include <string.h>

#include "core/rbac.h"
#include "internal.h"

/* Refuses the request unless the caller holds perm; audits the refusal. */
static bool
allowed(struct req *q, unsigned perm)
{
	char why[160];

	if (perm == PERM_ANY || perm == PERM_IN_HANDLER || (q->perms & perm) == perm)
		return true;
	snprintf(why, sizeof(why), "'%s' holds no role that grants %s", q->who.name,
	    rbac_perm_name(perm));
	req_error(q, 403, "forbidden", NULL, "%s", why);
	req_audit_denial(q, "access.denied", why);
	return false;
}

static const struct route {
	const char *method;
	const char *pattern;
	unsigned perm;
	route_fn fn;
} routes[] = {
	{ "GET", "/api/v1/whoami", PERM_ANY, route_whoami },
	{ "GET", "/api/v1/systems", PERM_IDENTITIES_READ, route_list_systems },
	{ "POST", "/api/v1/actions", PERM_IN_HANDLER, route_post_action },
	{ "POST", "/api/v1/actions/bulk", PERM_IN_HANDLER, route_post_actions_bulk },
	{ "GET", "/api/v1/actions", PERM_RESPONSE_READ, route_list_actions },
	{ "GET", "/api/v1/actions/{}", PERM_RESPONSE_READ, route_get_action },
	{ "POST", "/api/v1/actions/{}/cancel", PERM_RESPONSE_MANAGE, route_cancel_action },
	{ "POST", "/api/v1/actions/{}/approve", PERM_RESPONSE_APPROVE, route_approve_action },
	{ "POST", "/api/v1/actions/{}/reject", PERM_RESPONSE_APPROVE, route_reject_action },
	{ "POST", "/api/v1/actions/approve", PERM_RESPONSE_APPROVE, route_approve_bulk },
	{ "POST", "/api/v1/actions/reject", PERM_RESPONSE_APPROVE, route_reject_bulk },
	{ "POST", "/api/v1/actions/{}/undo", PERM_IN_HANDLER, route_undo_action },
	{ "GET", "/api/v1/identities", PERM_IDENTITIES_READ, route_list_identities },
	{ "POST", "/api/v1/identities", PERM_IDENTITIES_MANAGE, route_post_identity },
	{ "GET", "/api/v1/identities/conflicts", PERM_IDENTITIES_READ, route_list_conflicts },
	{ "GET", "/api/v1/identities/{}", PERM_IDENTITIES_READ, route_get_identity },
	{ "PUT", "/api/v1/identities/{}/tags", PERM_IDENTITIES_MANAGE, route_put_tags },
	{ "POST", "/api/v1/identities/{}/accounts", PERM_IDENTITIES_MANAGE, route_post_link },
	{ "DELETE", "/api/v1/identities/{}/accounts/{}", PERM_IDENTITIES_MANAGE,
	    route_delete_link },
	{ "POST", "/api/v1/sync/{}", PERM_IDENTITIES_MANAGE, route_post_sync },
	{ "POST", "/api/v1/sync", PERM_IDENTITIES_MANAGE, route_post_sync_all },
	{ "GET", "/api/v1/sync", PERM_IDENTITIES_READ, route_list_sync },
	{ "GET", "/api/v1/audit", PERM_AUDIT_READ, route_list_audit },
	{ "GET", "/api/v1/audit/verify", PERM_AUDIT_READ, route_verify_audit },
	{ "POST", "/api/v1/tokens", PERM_SETTINGS_MANAGE, route_post_token },
	{ "GET", "/api/v1/tokens", PERM_SETTINGS_MANAGE, route_list_tokens },
	{ "POST", "/api/v1/tokens/{}/revoke", PERM_SETTINGS_MANAGE, route_revoke_token },
	{ "POST", "/api/v1/alerts", PERM_ALERTS_INGEST, route_post_alert },
	{ "GET", "/api/v1/alerts", PERM_RESPONSE_READ, route_list_alerts },
	{ "GET", "/api/v1/alerts/{}", PERM_RESPONSE_READ, route_get_alert },
	{ "POST", "/api/v1/identities/{}/release", PERM_RESPONSE_MANAGE,
	    route_release_identity },
	{ "POST", "/api/v1/hunting/query", PERM_HUNTING_QUERY, route_hunt },
	{ "GET", "/metrics", PERM_METRICS_READ, route_metrics },
	{ "POST", "/ssf/stream", PERM_SETTINGS_MANAGE, route_ssf_stream_create },
	{ "GET", "/ssf/stream", PERM_SETTINGS_MANAGE, route_ssf_stream_get },
	{ "PATCH", "/ssf/stream", PERM_SETTINGS_MANAGE, route_ssf_stream_update },
	{ "PUT", "/ssf/stream", PERM_SETTINGS_MANAGE, route_ssf_stream_update },
	{ "DELETE", "/ssf/stream", PERM_SETTINGS_MANAGE, route_ssf_stream_delete },
	{ "GET", "/ssf/status", PERM_SETTINGS_MANAGE, route_ssf_status_get },
	{ "POST", "/ssf/status", PERM_SETTINGS_MANAGE, route_ssf_status_post },
	{ "POST", "/ssf/subjects:add", PERM_SETTINGS_MANAGE, route_ssf_subjects },
	{ "POST", "/ssf/subjects:remove", PERM_SETTINGS_MANAGE, route_ssf_subjects },
	{ "POST", "/ssf/verify", PERM_SETTINGS_MANAGE, route_ssf_verify },
	{ "POST", "/ssf/poll/{}", PERM_SETTINGS_MANAGE, route_ssf_poll },
	{ "GET", "/graph/v1.0/security/identities/identityAccounts", PERM_IDENTITIES_READ,
	    route_graph_list },
	{ "GET", "/graph/v1.0/security/identities/identityAccounts/{}", PERM_IDENTITIES_READ,
	    route_graph_get },
	{ "POST", "/graph/v1.0/security/identities/identityAccounts/{}/invokeAction",
	    PERM_IN_HANDLER, route_graph_invoke },
};

/* Matches path against pattern, capturing each {} segment into q->argbuf. */
static bool
match(struct req *q, const char *pattern, const char *path)
{
	int nargs = 0;
	size_t n;

	while (*pattern && *path) {
		if (pattern[0] == '{' && pattern[1] == '}') {
			n = strcspn(path, "/");
			if (n == 0 || n >= sizeof(q->argbuf[0]) || nargs == 2)
				return false;
			memcpy(q->argbuf[nargs], path, n);
			q->argbuf[nargs][n] = '\0';
			q->arg[nargs] = q->argbuf[nargs];
			nargs++;
			path += n;
			pattern += 2;
		} else if (*pattern++ != *path++)
			return false;
	}
	return *pattern == '\0' && *path == '\0';
}

int
routes_dispatch(struct req *q)
{
	/* Every method of the routes here is in this list: at most all of them. */
	static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };
	static __thread char allow[40];
	bool path_known = false;
	unsigned known = 0;
	size_t i, k;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!match(q, routes[i].pattern, q->path))
			continue;
		path_known = true;
		q->route = routes[i].pattern;
		if (strcmp(routes[i].method, q->method) != 0) {
			for (k = 0; k < sizeof(methods) / sizeof(methods[0]); k++)
				if (strcmp(routes[i].method, methods[k]) == 0)
					known |= 1u << k;
			continue;
		}
		if (!allowed(q, routes[i].perm))
			return 0;
		return routes[i].fn(q);
	}
	if (path_known) {
		/* RFC 9110: a 405 says which methods the resource does support. */
		allow[0] = '\0';
		for (k = 0; k < sizeof(methods) / sizeof(methods[0]); k++)
			if (known & (1u << k))
				snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow),
				    "%s%s", allow[0] ? ", " : "", methods[k]);
		q->allow = allow;
		return req_error(q, 405, "method_not_allowed", NULL,
		    "%s is not allowed on %s (allowed: %s)", q->method, q->path, allow);
	}
	return req_error(q, 404, "not_found", NULL, "no route %s", q->path);
}
