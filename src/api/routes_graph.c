/*
 * The Microsoft Graph-compatible identity accounts API under /graph/v1.0
 * (docs/graph-api.md): microsoft.graph.security identityAccounts listed and read
 * from quell's identities, and invokeAction handed to the engine as any request.
 * Every answer under the prefix, errors included, is in Graph's shape and carries
 * Graph's request-id and client-request-id headers, so that clients written for
 * Defender for Identity's API work by changing the base URL.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/kind.h"
#include "core/text.h"
#include "internal.h"
#include "render.h"

#define GRAPH_ROOT "/graph"
#define GRAPH_PREFIX GRAPH_ROOT "/v1.0"
#define ACCOUNTS_PATH "/security/identities/identityAccounts"
#define TOP_DEFAULT 100
#define TOP_MAX 1000
#define SCAN_CHUNK 500
#define FILTER_MAX 8
#define VALUE_MAX 256

/* Graph's action names and the quell action types they run as. */
static const struct {
	const char *graph;
	enum action_type type;
} graph_actions[] = {
	{ "disable", ACTION_DISABLE },
	{ "enable", ACTION_ENABLE },
	{ "forcePasswordReset", ACTION_FORCE_PASSWORD_CHANGE },
	{ "revokeAllSessions", ACTION_REVOKE_SESSIONS },
	{ "requireUserToSignInAgain", ACTION_REVOKE_SESSIONS },
	{ "markUserAsCompromised", ACTION_MARK_COMPROMISED },
};
#define NACTIONS (sizeof(graph_actions) / sizeof(graph_actions[0]))

/* The properties of a security.user that $select and $filter may name. */
static const char *const user_props[] = { "id", "displayName", "domain", "isEnabled",
    "onPremisesSecurityIdentifier", "cloudSecurityIdentifier", "emailAddress",
    "userPrincipalName", "accounts", NULL };

/* An identity's top-level Graph properties, borrowed from it (or held here). */
struct graph_user {
	const char *id, *display_name, *sid, *email, *upn;
	char domain[256];
	char cloud_sid[96];
	bool enabled;
};

/* One `prop eq value` clause of $filter. */
struct graph_cond {
	const char *prop;	/* one of user_props */
	char value[VALUE_MAX + 1];
	bool is_bool, b;
};

struct graph_query {
	struct graph_cond cond[FILTER_MAX];
	size_t ncond;
	const char *filter, *select, *skiptoken, *top_text;
	int top;
};

bool
routes_graph_path(const char *path)
{
	size_t n = strlen(GRAPH_ROOT);

	return strncmp(path, GRAPH_ROOT, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Graph's error code for an HTTP status ("Microsoft Graph error responses"). */
static const char *
graph_code(int status)
{
	static const struct {
		int status;
		const char *code;
	} codes[] = {
		{ 400, "invalidRequest" }, { 401, "unauthenticated" }, { 403, "accessDenied" },
		{ 404, "itemNotFound" }, { 405, "notAllowed" }, { 409, "notAllowed" },
		{ 413, "invalidRequest" }, { 415, "invalidRequest" },
		{ 429, "activityLimitReached" }, { 503, "serviceNotAvailable" },
	};
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].status == status)
			return codes[i].code;
	return status >= 500 ? "generalException" : "invalidRequest";
}

/* A client's client-request-id is echoed only when it is short, plain text. */
static bool
client_rid_ok(const char *s)
{
	size_t i, n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n >= sizeof(((struct req *)0)->graph_crid))
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("-_.:{}", s[i]) == NULL)
			return false;
	return true;
}

/* quell's {"error":{code,message,field,action_id}} as Graph's error, quell's own
 * details kept in innerError. */
static void
graph_error_shape(struct req *q)
{
	json_t *err = json_object_get(q->resp, "error"), *inner, *v;

	inner = json_pack("{s:o, s:s, s:s}", "date", render_time(engine_now_ms()),
	    "request-id", q->graph_rid, "client-request-id", q->graph_crid);
	if ((v = json_object_get(err, "code")) != NULL)
		json_object_set(inner, "quellCode", v);
	if ((v = json_object_get(err, "field")) != NULL)
		json_object_set(inner, "field", v);
	if ((v = json_object_get(err, "action_id")) != NULL)
		json_object_set(inner, "actionId", v);
	v = json_pack("{s:{s:s, s:O, s:o}}", "error", "code", graph_code(q->status),
	    "message", json_object_get(err, "message") ? json_object_get(err, "message") :
	    json_string(""), "innerError", inner);
	req_reply(q, (unsigned)q->status, v);
}

void
routes_graph_finish(struct req *q)
{
	const char *crid;

	if (!routes_graph_path(q->path))
		return;
	id_uuid4(q->graph_rid);
	crid = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "client-request-id");
	snprintf(q->graph_crid, sizeof(q->graph_crid), "%s", client_rid_ok(crid) ? crid :
	    q->graph_rid);
	if (q->status >= 400 && json_is_object(json_object_get(q->resp, "error")))
		graph_error_shape(q);
}

void
routes_graph_headers(struct req *q, struct MHD_Response *resp)
{
	if (!routes_graph_path(q->path) || q->graph_rid[0] == '\0')
		return;
	MHD_add_response_header(resp, "request-id", q->graph_rid);
	MHD_add_response_header(resp, "client-request-id", q->graph_crid);
}

/* The account's Graph identityProvider, or NULL when Graph has no name for it. */
static const char *
account_provider(struct req *q, const struct account *a)
{
	const struct kind_info *k = kind_find(&q->api->cfg->kinds, a->kind);

	return k != NULL ? k->graph_provider : NULL;
}

/* "CN=x,OU=y,DC=corp,DC=example" → "corp.example"; false when dn has no DC. */
static bool
dn_domain(const char *dn, char *out, size_t len)
{
	const char *p = dn;
	size_t used = 0, n;

	out[0] = '\0';
	while (p != NULL && *p != '\0') {
		if (strncasecmp(p, "DC=", 3) == 0) {
			n = strcspn(p + 3, ",");
			if (used + n + 2 > len)
				return false;
			snprintf(out + used, len - used, "%s%.*s", used ? "." : "", (int)n,
			    p + 3);
			used = strlen(out);
		}
		p = strchr(p, ',');
		p = p != NULL ? p + 1 : NULL;
	}
	return used > 0;
}

/*
 * An Entra object id's cloud SID (S-1-12-1-…): the GUID's 16 bytes in Windows order
 * (its first three fields little-endian) read as four little-endian 32-bit words.
 */
static bool
cloud_sid(const char *guid, char *out, size_t len)
{
	unsigned a, b, c, d[8];
	int n = 0;

	if (guid == NULL || strlen(guid) != 36 ||
	    sscanf(guid, "%8x-%4x-%4x-%2x%2x-%2x%2x%2x%2x%2x%2x%n", &a, &b, &c, &d[0], &d[1],
	    &d[2], &d[3], &d[4], &d[5], &d[6], &d[7], &n) != 11 || n != 36)
		return false;
	snprintf(out, len, "S-1-12-1-%u-%u-%u-%u", a, b | (c << 16),
	    d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24),
	    d[4] | (d[5] << 8) | (d[6] << 16) | (d[7] << 24));
	return true;
}

/*
 * The identity's top-level properties from its accounts: the first account that
 * has each; enabled when any account is known to be enabled (the person can still
 * sign in somewhere).
 */
static void
graph_user_of(struct req *q, const struct identity *i, struct graph_user *u)
{
	const struct account *a;
	const char *prov;
	size_t k;

	memset(u, 0, sizeof(*u));
	u->id = i->id;
	u->display_name = i->display_name;
	for (k = 0; k < i->naccounts; k++) {
		a = &i->accounts[k];
		if ((prov = account_provider(q, a)) == NULL)
			continue;
		u->sid = u->sid ? u->sid : a->sid;
		u->email = u->email ? u->email : a->email;
		u->upn = u->upn ? u->upn : a->upn;
		if (u->domain[0] == '\0' && a->dn != NULL)
			dn_domain(a->dn, u->domain, sizeof(u->domain));
		if (u->cloud_sid[0] == '\0' && strcmp(prov, "entraID") == 0)
			cloud_sid(a->external_id, u->cloud_sid, sizeof(u->cloud_sid));
		if (a->state != NULL && strcmp(a->state, "enabled") == 0)
			u->enabled = true;
	}
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* The Graph actions the account's system supports. */
static json_t *
account_actions(struct req *q, const struct account *a)
{
	bool sup[ACTION_TYPE_COUNT];
	const char *kind;
	json_t *arr = json_array();
	size_t k;

	if (engine_system_info(q->api->eng, a->system, &kind, sup) != 0)
		return arr;
	for (k = 0; k < NACTIONS; k++)
		if (sup[graph_actions[k].type])
			json_array_append_new(arr, json_string(graph_actions[k].graph));
	return arr;
}

static json_t *
graph_accounts(struct req *q, const struct identity *i)
{
	json_t *arr = json_array();
	const char *prov;
	size_t k;

	for (k = 0; k < i->naccounts; k++) {
		if ((prov = account_provider(q, &i->accounts[k])) == NULL)
			continue;
		json_array_append_new(arr, json_pack("{s:o, s:s, s:o}", "identifier",
		    str_or_null(i->accounts[k].external_id), "identityProvider", prov,
		    "actions", account_actions(q, &i->accounts[k])));
	}
	return arr;
}

/* The security.user of an identity, only the $select-ed properties when select is
 * set (validated already). */
static json_t *
render_graph_user(struct req *q, const struct identity *i, const char *select)
{
	struct graph_user u;
	json_t *o, *sel;
	const char *p;
	char name[64];
	size_t n;

	graph_user_of(q, i, &u);
	o = json_pack("{s:s, s:s, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:o}", "@odata.type",
	    "#microsoft.graph.security.user", "id", u.id, "displayName",
	    str_or_null(u.display_name), "domain", str_or_null(u.domain), "isEnabled",
	    u.enabled, "onPremisesSecurityIdentifier", str_or_null(u.sid),
	    "cloudSecurityIdentifier", str_or_null(u.cloud_sid), "emailAddress",
	    str_or_null(u.email), "userPrincipalName", str_or_null(u.upn), "accounts",
	    graph_accounts(q, i));
	if (select == NULL || o == NULL)
		return o;
	sel = json_pack("{s:s}", "@odata.type", "#microsoft.graph.security.user");
	for (p = select; *p != '\0'; p += n + (p[n] == ',')) {
		n = strcspn(p, ",");
		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		if (json_object_get(o, name) != NULL)
			json_object_set(sel, name, json_object_get(o, name));
	}
	json_decref(o);
	return sel;
}

static const char *
known_prop(const char *name, size_t n)
{
	size_t k;

	for (k = 0; user_props[k] != NULL; k++)
		if (strlen(user_props[k]) == n && strncmp(user_props[k], name, n) == 0)
			return user_props[k];
	return NULL;
}

/* $select: a comma-separated list of security.user properties. */
static int
check_select(struct req *q, const char *sel)
{
	const char *p;
	size_t n;

	if (sel == NULL)
		return 0;
	for (p = sel; ; p += n + 1) {
		n = strcspn(p, ",");
		if (known_prop(p, n) == NULL)
			return req_error(q, 400, "invalid_input", "$select",
			    "$select names an unknown property '%.*s' (known: id, displayName, "
			    "domain, isEnabled, onPremisesSecurityIdentifier, "
			    "cloudSecurityIdentifier, emailAddress, userPrincipalName, accounts)",
			    (int)(n > 64 ? 64 : n), p), -1;
		if (p[n] == '\0')
			return 0;
	}
}

/* A quoted OData string ('' is a quote) into c->value; *s moves past it. */
static bool
parse_quoted(const char **s, struct graph_cond *c)
{
	const char *p = *s + 1;
	size_t n = 0;

	for (;;) {
		if (*p == '\0' || n >= VALUE_MAX)
			return false;
		if (*p == '\'' && p[1] != '\'')
			break;
		c->value[n++] = *p;
		p += *p == '\'' ? 2 : 1;
	}
	c->value[n] = '\0';
	*s = p + 1;
	return true;
}

/* One clause: prop eq 'text' | prop eq true | prop eq false. */
static bool
parse_clause(const char **s, struct graph_cond *c)
{
	const char *p = *s;
	size_t n = strcspn(p, " ");

	if ((c->prop = known_prop(p, n)) == NULL || strcmp(c->prop, "accounts") == 0)
		return false;
	p += n;
	if (strncmp(p, " eq ", 4) != 0)
		return false;
	p += 4;
	c->is_bool = strcmp(c->prop, "isEnabled") == 0;
	if (c->is_bool) {
		c->b = strncmp(p, "true", 4) == 0;
		if (!c->b && strncmp(p, "false", 5) != 0)
			return false;
		p += c->b ? 4 : 5;
	} else if (*p != '\'' || !parse_quoted(&p, c))
		return false;
	*s = p;
	return true;
}

/* $filter: clauses joined by " and ", each `property eq value`. */
static int
parse_filter(struct req *q, struct graph_query *g)
{
	const char *p = g->filter;

	if (p == NULL)
		return 0;
	while (g->ncond < FILTER_MAX && parse_clause(&p, &g->cond[g->ncond])) {
		g->ncond++;
		if (*p == '\0')
			return 0;
		if (strncmp(p, " and ", 5) != 0)
			break;
		p += 5;
	}
	return req_error(q, 400, "invalid_input", "$filter",
	    "$filter must be up to %d clauses 'property eq value' joined by 'and' "
	    "(strings quoted: displayName eq 'Ann'; isEnabled eq true), on id, "
	    "displayName, domain, isEnabled, onPremisesSecurityIdentifier, "
	    "cloudSecurityIdentifier, emailAddress or userPrincipalName", FILTER_MAX), -1;
}

static const char *
user_prop(const struct graph_user *u, const char *prop)
{
	static const struct {
		const char *name;
		size_t off;
	} strs[] = {
		{ "id", offsetof(struct graph_user, id) },
		{ "displayName", offsetof(struct graph_user, display_name) },
		{ "onPremisesSecurityIdentifier", offsetof(struct graph_user, sid) },
		{ "emailAddress", offsetof(struct graph_user, email) },
		{ "userPrincipalName", offsetof(struct graph_user, upn) },
	};
	size_t k;

	if (strcmp(prop, "domain") == 0)
		return u->domain;
	if (strcmp(prop, "cloudSecurityIdentifier") == 0)
		return u->cloud_sid;
	for (k = 0; k < sizeof(strs) / sizeof(strs[0]); k++)
		if (strcmp(strs[k].name, prop) == 0)
			return *(const char *const *)(const void *)((const char *)u + strs[k].off);
	return NULL;
}

/* Directory values compare without regard to case, as Graph's directory does. */
static bool
user_matches(struct req *q, const struct graph_query *g, const struct identity *i)
{
	struct graph_user u;
	const char *v;
	size_t k;

	graph_user_of(q, i, &u);
	for (k = 0; k < g->ncond; k++) {
		if (g->cond[k].is_bool) {
			if (u.enabled != g->cond[k].b)
				return false;
			continue;
		}
		v = user_prop(&u, g->cond[k].prop);
		if (v == NULL || strcasecmp(v, g->cond[k].value) != 0)
			return false;
	}
	return true;
}

/* Only the query options this API implements; any other $option is refused. */
static enum MHD_Result
option_check(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	static const char *const known[] = { "$filter", "$select", "$top", "$skiptoken",
	    NULL };
	const char **bad = cls;
	size_t k;

	(void)kind;
	(void)value;
	if (key[0] != '$')
		return MHD_YES;
	for (k = 0; known[k] != NULL; k++)
		if (strcmp(known[k], key) == 0)
			return MHD_YES;
	*bad = key;
	return MHD_NO;
}

static int
parse_top(struct req *q, struct graph_query *g)
{
	const char *s = req_query(q, "$top");
	char *end;
	long n;

	g->top = TOP_DEFAULT;
	g->top_text = s;
	if (s == NULL)
		return 0;
	n = strtol(s, &end, 10);
	if (!isdigit((unsigned char)*s) || *end != '\0' || n < 1 || n > TOP_MAX)
		return req_error(q, 400, "invalid_input", "$top",
		    "$top must be a whole number from 1 to %d", TOP_MAX), -1;
	g->top = (int)n;
	return 0;
}

static int
parse_query(struct req *q, struct graph_query *g, bool list)
{
	const char *bad = NULL;

	memset(g, 0, sizeof(*g));
	MHD_get_connection_values(q->conn, MHD_GET_ARGUMENT_KIND, option_check, &bad);
	if (bad != NULL || (!list && (req_query(q, "$filter") || req_query(q, "$top") ||
	    req_query(q, "$skiptoken"))))
		return req_error(q, 400, "invalid_input", bad ? bad : "query",
		    "query option %.64s is not supported here (supported: %s)",
		    bad ? bad : "$filter/$top/$skiptoken", list ?
		    "$filter, $select, $top, $skiptoken" : "$select"), -1;
	g->filter = req_query(q, "$filter");
	g->select = req_query(q, "$select");
	g->skiptoken = req_query(q, "$skiptoken");
	if (g->skiptoken != NULL && !id_valid(g->skiptoken, "idn"))
		return req_error(q, 400, "invalid_input", "$skiptoken",
		    "$skiptoken must be the one an @odata.nextLink carried"), -1;
	if (g->filter != NULL && (!text_printable(g->filter, false) ||
	    strlen(g->filter) > 2048))
		return req_error(q, 400, "invalid_input", "$filter",
		    "$filter must be printable text of at most 2048 bytes"), -1;
	if (parse_top(q, g) != 0 || check_select(q, g->select) != 0)
		return -1;
	return parse_filter(q, g);
}

static bool
host_ok(const char *h)
{
	size_t i, n = h != NULL ? strlen(h) : 0;

	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)h[i]) && strchr(".-:[]", h[i]) == NULL)
			return false;
	return n > 0 && n <= 255;
}

/*
 * scheme://host of the request, for the absolute links Graph answers with. Behind a
 * TLS-terminating proxy the client's URL is what X-Forwarded-Proto and
 * X-Forwarded-Host say; trusting them misleads nobody but the caller, who could
 * send any Host as well. False (400 set) when the host is missing or malformed.
 */
static bool
base_url(struct req *q, char *out, size_t len)
{
	const char *h = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND,
	    "X-Forwarded-Host"), *proto = MHD_lookup_connection_value(q->conn,
	    MHD_HEADER_KIND, "X-Forwarded-Proto"), *field = "X-Forwarded-Host";

	if (h == NULL) {
		h = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
		field = "Host";
	}
	if (!host_ok(h)) {
		req_error(q, 400, "invalid_input", field,
		    "the %s header must name the host (letters, digits, . - : [ ])", field);
		return false;
	}
	if (proto != NULL && strcmp(proto, "https") != 0 && strcmp(proto, "http") != 0) {
		req_error(q, 400, "invalid_input", "X-Forwarded-Proto",
		    "X-Forwarded-Proto must be https or http");
		return false;
	}
	snprintf(out, len, "%s://%s%s", proto != NULL ? proto : q->api->tls_cert ? "https" :
	    "http", h, GRAPH_PREFIX);
	return true;
}

static void
url_append(char *out, size_t len, const char *key, const char *v)
{
	size_t used = strlen(out);
	const unsigned char *p;

	snprintf(out + used, len - used, "%s%s=", strchr(out, '?') ? "&" : "?", key);
	for (p = (const unsigned char *)v; *p != '\0' && (used = strlen(out)) + 4 < len; p++)
		snprintf(out + used, len - used, isalnum(*p) || strchr("-._~", *p) ? "%c" :
		    "%%%02X", *p);
}

/* What a list scan gathers: the page's matches, and whether more follow. */
struct graph_scan {
	struct req *q;
	const struct graph_query *g;
	json_t *value;
	int n, rows;
	bool more;
	char last_seen[ID_LEN], last_match[ID_LEN];
};

static int
scan_one(const struct identity *i, void *arg)
{
	struct graph_scan *s = arg;

	s->rows++;
	snprintf(s->last_seen, sizeof(s->last_seen), "%s", i->id);
	if (s->more || !user_matches(s->q, s->g, i))
		return 0;
	if (s->n == s->g->top) {
		s->more = true;
		return 0;
	}
	s->n++;
	snprintf(s->last_match, sizeof(s->last_match), "%s", i->id);
	return json_array_append_new(s->value, render_graph_user(s->q, i, s->g->select));
}

/*
 * Reads identities in chunks after the skiptoken until a page's worth match (and one
 * more shows that the page is not the last). An eq clause on a property the store
 * searches narrows what is read; the clause itself still decides.
 */
static int
scan(struct req *q, const struct graph_query *g, struct graph_scan *s, struct qerr *e)
{
	struct identity_filter f = { .after_id = g->skiptoken, .limit = SCAN_CHUNK };
	struct store_tx *tx = NULL;
	size_t k;
	int r;

	for (k = 0; k < g->ncond; k++)
		if (strcmp(g->cond[k].prop, "displayName") == 0 ||
		    strcmp(g->cond[k].prop, "userPrincipalName") == 0 ||
		    strcmp(g->cond[k].prop, "onPremisesSecurityIdentifier") == 0)
			f.query = g->cond[k].value;
	if ((r = store_tx_begin(q->api->st, false, &tx, e)) != 0)
		return r;
	do {
		s->rows = 0;
		if ((r = store_identity_list(tx, &f, scan_one, s, e)) != 0)
			break;
		f.after_id = s->last_seen;
	} while (!s->more && s->rows == SCAN_CHUNK);
	store_tx_rollback(tx);
	return r;
}

static json_t *
next_link(const char *base, const struct graph_query *g, const char *after)
{
	char url[4096];

	snprintf(url, sizeof(url), "%s%s", base, ACCOUNTS_PATH);
	if (g->filter != NULL)
		url_append(url, sizeof(url), "$filter", g->filter);
	if (g->select != NULL)
		url_append(url, sizeof(url), "$select", g->select);
	if (g->top_text != NULL)
		url_append(url, sizeof(url), "$top", g->top_text);
	url_append(url, sizeof(url), "$skiptoken", after);
	return json_string(url);
}

int
route_graph_list(struct req *q)
{
	struct graph_scan s = { .q = q, .value = json_array() };
	struct graph_query g;
	char base[320];
	struct qerr e;
	json_t *o;
	int r;

	qerr_clear(&e);
	s.g = &g;
	if (parse_query(q, &g, true) != 0 || !base_url(q, base, sizeof(base)))
		goto out;
	if ((r = scan(q, &g, &s, &e)) != 0) {
		req_qerr(q, r, &e);
		goto out;
	}
	o = json_pack("{s:s+, s:O}", "@odata.context", base,
	    "/$metadata#security/identities/identityAccounts", "value", s.value);
	if (o == NULL) {
		req_error(q, 500, "internal", NULL, "out of memory");
		goto out;
	}
	if (s.more)
		json_object_set_new(o, "@odata.nextLink", next_link(base, &g, s.last_match));
	req_reply(q, 200, o);
out:
	json_decref(s.value);
	return 0;
}

/* The identity named by the path; false with the 404 set. A malformed id names no
 * identity either: Graph answers 404 for any id it does not know. */
static bool
load_identity(struct req *q, struct identity *i)
{
	struct store_tx *tx = NULL;
	struct qerr e;
	int r = QERR_NOT_FOUND;

	qerr_clear(&e);
	if (id_valid(q->arg[0], "idn") && (r = store_tx_begin(q->api->st, false, &tx,
	    &e)) == 0)
		r = store_identity_get(tx, q->arg[0], i, &e);
	store_tx_rollback(tx);
	if (r == QERR_NOT_FOUND)
		qerr_set(&e, r, "id", "no identity account %.64s", q->arg[0]);
	if (r != 0)
		req_qerr(q, r, &e);
	return r == 0;
}

int
route_graph_get(struct req *q)
{
	struct graph_query g;
	struct identity i;
	char base[320];
	json_t *o;

	memset(&i, 0, sizeof(i));
	if (parse_query(q, &g, false) == 0 && base_url(q, base, sizeof(base)) &&
	    load_identity(q, &i)) {
		o = render_graph_user(q, &i, g.select);
		json_object_set_new(o, "@odata.context", json_pack("s+", base,
		    "/$metadata#security/identities/identityAccounts/$entity"));
		req_reply(q, 200, o);
	}
	identity_clear(&i);
	return 0;
}

/* The body of invokeAction: the Graph action and the account it names. */
struct graph_invoke {
	const char *account_id, *action, *provider;
	enum action_type type;
};

static int
parse_invoke(struct req *q, json_t *o, struct graph_invoke *v)
{
	static const char *const keys[] = { "accountId", "action", "identityProvider",
	    NULL };
	size_t k;

	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_str(q, o, "accountId", true, VALUE_MAX, &v->account_id) != 0 ||
	    req_field_str(q, o, "action", true, 64, &v->action) != 0 ||
	    req_field_str(q, o, "identityProvider", true, 64, &v->provider) != 0)
		return -1;
	for (k = 0; k < NACTIONS; k++)
		if (strcmp(graph_actions[k].graph, v->action) == 0)
			break;
	if (k == NACTIONS)
		return req_error(q, 400, "invalid_input", "action", "action must be disable, "
		    "enable, forcePasswordReset, revokeAllSessions, requireUserToSignInAgain or "
		    "markUserAsCompromised (Okta's deactivate and set risk are on quell's own "
		    "API: POST /api/v1/actions)"), -1;
	v->type = graph_actions[k].type;
	return 0;
}

/* The identity's account that accountId and identityProvider name, or NULL. */
static const struct account *
find_account(struct req *q, const struct identity *i, const struct graph_invoke *v)
{
	const char *prov;
	size_t k;

	for (k = 0; k < i->naccounts; k++) {
		prov = account_provider(q, &i->accounts[k]);
		if (prov != NULL && strcmp(prov, v->provider) == 0 &&
		    i->accounts[k].external_id != NULL &&
		    strcasecmp(i->accounts[k].external_id, v->account_id) == 0)
			return &i->accounts[k];
	}
	return NULL;
}

/* The engine's answer: an invokeActionResult whose correlationId is the action's id,
 * or the refusal (naming the denied action the engine recorded). */
static void
invoke_reply(struct req *q, const struct graph_invoke *v, int r, const struct action *a,
    const struct qerr *e)
{
	char base[320];
	json_t *err;

	if (r != 0) {
		req_qerr(q, r, e);
		if (r == QERR_DENIED && a->id != NULL &&
		    (err = json_object_get(q->resp, "error")) != NULL)
			json_object_set_new(err, "action_id", json_string(a->id));
		return;
	}
	if (!base_url(q, base, sizeof(base)))
		return;
	req_reply(q, 200, json_pack("{s:s+, s:s, s:s, s:s, s:s}", "@odata.context", base,
	    "/$metadata#microsoft.graph.security.invokeActionResult", "accountId",
	    v->account_id, "action", v->action, "identityProvider", v->provider,
	    "correlationId", a->id));
}

int
route_graph_invoke(struct req *q)
{
	struct action_request rq;
	struct graph_invoke v;
	const struct account *acc;
	struct identity i;
	struct action a;
	struct actor who;
	char reason[128];
	struct qerr e;
	json_t *o;
	int r;

	memset(&i, 0, sizeof(i));
	memset(&a, 0, sizeof(a));
	qerr_clear(&e);
	if ((o = req_json(q)) == NULL)
		return 0;
	if (parse_invoke(q, o, &v) != 0 || !load_identity(q, &i))
		goto out;
	if ((acc = find_account(q, &i, &v)) == NULL) {
		req_error(q, 404, "not_found", "accountId", "identity account %s has no %.64s "
		    "account %.256s", i.id, v.provider, v.account_id);
		goto out;
	}
	/* Graph's body has no reason; the audit log says where the request came from. */
	snprintf(reason, sizeof(reason), "Graph API invokeAction %s", v.action);
	memset(&rq, 0, sizeof(rq));
	rq.type = v.type;
	rq.identity_id = i.id;
	rq.account_id = acc->id;
	rq.reason = reason;
	rq.source = "api";
	rq.params = "{}";
	req_actor(q, &who);
	r = engine_request(q->api->eng, &who, &rq, &a, &e);
	invoke_reply(q, &v, r, &a, &e);
out:
	action_clear(&a);
	identity_clear(&i);
	json_decref(o);
	return 0;
}
