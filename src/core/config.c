/*
 * Parser for quelld's INI-style configuration. It knows the [server], [store],
 * [role] and [siem] keys; [system "name"] sections are kept as key/value lists for the provider of
 * that kind to validate. Errors are "file:line: reason" and leave *cfg empty.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "rbac.h"
#include "text.h"

enum section {
	SEC_NONE, SEC_SERVER, SEC_ENGINE, SEC_STORE, SEC_SYSTEM, SEC_ROLE, SEC_OIDC, SEC_WEB,
	SEC_POLICY, SEC_DISRUPTION_GUARD, SEC_SIEM, SEC_SSF
};

struct parser {
	struct config *cfg;
	struct qerr *e;
	int line;
	enum section sec;
};

static int fail(struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct parser *p, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return qerr_set(p->e, QERR_CONFIG, NULL, "%s:%d: %s", p->cfg->file, p->line, why);
}

/* A value may be wrapped in double quotes to keep leading or trailing blanks. */
static char *
unquote(char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v[n - 1] = '\0';
		return v + 1;
	}
	return v;
}

static int
set_str(struct parser *p, char **dst, const char *v)
{
	char *d;

	if (*dst != NULL)
		return fail(p, "%s", "this key is set twice");
	if ((d = strdup(v)) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	*dst = d;
	return 0;
}

static int
parse_int(struct parser *p, const char *key, const char *v, long min, long max,
    long *out)
{
	char *end, why[128];
	long n;

	/* Set on failure too: at -O3 gcc cannot see that fail() never returns 0. */
	*out = 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
		snprintf(why, sizeof(why), "%s must be a whole number from %ld to %ld",
		    key, min, max);
		return fail(p, "%s", why);
	}
	*out = n;
	return 0;
}

static int
server_key(struct parser *p, const char *k, const char *v)
{
	struct config *c = p->cfg;
	long n;
	int r;

	if (strcmp(k, "listen") == 0)
		return set_str(p, &c->listen, v);
	if (strcmp(k, "tls_cert") == 0)
		return set_str(p, &c->tls_cert, v);
	if (strcmp(k, "tls_key") == 0)
		return set_str(p, &c->tls_key, v);
	if (strcmp(k, "user") == 0) {
		c->user_line = p->line;
		return set_str(p, &c->user, v);
	}
	if (strcmp(k, "node_id") == 0)
		return set_str(p, &c->node_id, v);
	if (strcmp(k, "workers") == 0) {
		if ((r = parse_int(p, k, v, 1, 256, &n)) != 0)
			return r;
		c->workers = (int)n;
		return 0;
	}
	if (strcmp(k, "max_body") == 0) {
		if ((r = parse_int(p, k, v, 1024, 16 * 1024 * 1024, &n)) != 0)
			return r;
		c->max_body = (size_t)n;
		return 0;
	}
	/* Connection limits: what one client address, and all of them together, may
	 * hold open, so one client cannot take the listener from the others. */
	if (strcmp(k, "max_connections") == 0) {
		if ((r = parse_int(p, k, v, 16, 100000, &n)) != 0)
			return r;
		c->max_connections = (unsigned)n;
		return 0;
	}
	if (strcmp(k, "max_connections_per_client") == 0) {
		if ((r = parse_int(p, k, v, 1, 100000, &n)) != 0)
			return r;
		c->max_connections_per_client = (unsigned)n;
		return 0;
	}
	if (strcmp(k, "header_timeout") == 0 || strcmp(k, "idle_timeout") == 0) {
		int64_t ms;

		if (config_duration(v, 1000, 3600 * 1000, &ms) != 0 || ms % 1000 != 0)
			return fail(p, "%s must be a whole number of seconds from 1s to 1h "
			    "(e.g. 5s, 2m), not '%s'", k, v);
		if (k[0] == 'h')
			c->header_timeout_s = (unsigned)(ms / 1000);
		else
			c->idle_timeout_s = (unsigned)(ms / 1000);
		return 0;
	}
	if (strcmp(k, "hunt_workers") == 0) {
		if ((r = parse_int(p, k, v, 1, 64, &n)) != 0)
			return r;
		c->hunt_workers = (unsigned)n;
		return 0;
	}
	if (strcmp(k, "token_max_lifetime") == 0) {
		if (c->token_max_lifetime_ms != 0)
			return fail(p, "%s", "this key is set twice");
		/* At least a minute: a shorter cap would make every token useless. */
		if (config_duration(v, 60000, CONFIG_TOKEN_LIFETIME_MAX_MS,
		    &c->token_max_lifetime_ms) != 0)
			return fail(p, "token_max_lifetime must be a span from 1m to 3650d "
			    "such as 90d, 12h (a number and s, m, h or d), not '%s'", v);
		return 0;
	}
	if (strcmp(k, "log_level") == 0) {
		enum log_level lvl;

		if (c->log_set[0])
			return fail(p, "%s", "this key is set twice");
		if (log_level_parse(v, &lvl) != 0)
			return fail(p, "log_level must be debug, info, warn or error, not '%s'", v);
		c->log_level = (int)lvl;
		c->log_set[0] = true;
		return 0;
	}
	if (strcmp(k, "log_format") == 0) {
		if (c->log_set[1])
			return fail(p, "%s", "this key is set twice");
		if (strcmp(v, "text") != 0 && strcmp(v, "json") != 0)
			return fail(p, "log_format must be text or json, not '%s'", v);
		c->log_json = strcmp(v, "json") == 0;
		c->log_set[1] = true;
		return 0;
	}
	return fail(p, "unknown key '%s' in [server]", k);
}

static int
engine_key(struct parser *p, const char *k, const char *v)
{
	struct config *c = p->cfg;
	long n;
	int r;

	if (strcmp(k, "lease_ms") == 0)
		return parse_int(p, k, v, 1000, 3600000, &c->lease_ms);
	if (strcmp(k, "retry_base_ms") == 0)
		return parse_int(p, k, v, 1, 3600000, &c->retry_base_ms);
	if (strcmp(k, "retry_cap_ms") == 0)
		return parse_int(p, k, v, 1, 86400000, &c->retry_cap_ms);
	if (strcmp(k, "max_attempts") == 0) {
		if ((r = parse_int(p, k, v, 1, 1000, &n)) != 0)
			return r;
		c->max_attempts = (int)n;
		return 0;
	}
	if (strcmp(k, "step_deadline") == 0) {
		if (config_duration(v, 1000, 30 * 86400000LL, &c->step_deadline_ms) != 0)
			return fail(p, "step_deadline must be a span from 1s to 30d such as "
			    "6h, 90m (a number and s, m, h or d), not '%s'", v);
		return 0;
	}
	return fail(p, "unknown key '%s' in [engine]", k);
}

static int
role_key(struct parser *p, const char *k, char *v)
{
	struct role_config *rc = &p->cfg->roles[p->cfg->nroles - 1];
	char *tok, *save = NULL;
	unsigned bit;

	if (strcmp(k, "permissions") != 0)
		return fail(p, "unknown key '%s' in a [role] section", k);
	for (tok = strtok_r(v, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save)) {
		if (rbac_perm_parse(tok, &bit) != 0)
			return fail(p, "unknown permission '%s'", tok);
		rc->perms |= bit;
	}
	return 0;
}

/* "15m", "1h", "90s", "1d", or "off"; at least a minute so a directory is not
 * listed back to back, at most a week. */
static int
sync_interval(struct parser *p, struct system_config *s, const char *v)
{
	int64_t ms;

	if (s->sync_interval_line != 0)
		return fail(p, "'sync_interval' is set twice in this section (first on "
		    "line %d)", s->sync_interval_line);
	s->sync_interval_line = p->line;
	if (strcmp(v, "off") == 0)
		return 0;
	if ((ms = text_span_ms(v, 7 * 86400000LL)) >= 60000) {
		s->sync_interval_ms = ms;
		return 0;
	}
	return fail(p, "sync_interval must be off or a span from 1m to 7d such as "
	    "15m, 1h (got '%s')", v);
}

static int
system_key(struct parser *p, struct system_config *s, const char *k, const char *v)
{
	struct config_kv *kv;
	size_t i;
	long n;
	int r;

	for (i = 0; i < s->nkv; i++)
		if (strcmp(s->kv[i].key, k) == 0)
			return fail(p, "'%s' is set twice in this section", k);
	if (strcmp(k, "kind") == 0 && s->kind != NULL)
		return fail(p, "unknown key '%s' in [%s \"%s\"]", k, s->kind, s->name);
	if (strcmp(k, "max_concurrency") == 0) {
		if ((r = parse_int(p, k, v, 1, 256, &n)) != 0)
			return r;
		s->max_concurrency = (int)n;
	}
	/* The engine's key, not the provider's: kept out of the provider's list. */
	if (strcmp(k, "sync_interval") == 0 && p->sec == SEC_SYSTEM)
		return sync_interval(p, s, v);
	if ((kv = realloc(s->kv, (s->nkv + 1) * sizeof(*kv))) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	s->kv = kv;
	kv = &s->kv[s->nkv];
	kv->key = strdup(k);
	kv->value = strdup(v);
	kv->line = p->line;
	s->nkv++;
	if (kv->key == NULL || kv->value == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	if (strcmp(k, "kind") == 0 && (s->kind = strdup(v)) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

static bool
name_ok(const char *s)
{
	size_t i;

	if (*s == '\0' || strlen(s) > 63)
		return false;
	for (i = 0; s[i]; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' &&
		    s[i] != '.')
			return false;
	return true;
}

/* `[system "corp"]`: the quoted name, checked and unique within its kind of section. */
static int
named_section(struct parser *p, char *rest, char **name)
{
	size_t n = strlen(rest);

	rest = text_trim(rest);
	n = strlen(rest);
	if (n < 3 || rest[0] != '"' || rest[n - 1] != '"')
		return fail(p, "%s", "section name must be quoted, e.g. [system \"corp\"]");
	rest[n - 1] = '\0';
	rest++;
	if (!name_ok(rest))
		return fail(p, "bad section name '%s': use 1-63 letters, digits, '-', '_', '.'",
		    rest);
	*name = rest;
	return 0;
}

static int
add_system(struct parser *p, const char *name)
{
	struct config *c = p->cfg;
	struct system_config *s;
	size_t i;

	for (i = 0; i < c->nsystems; i++)
		if (strcmp(c->systems[i].name, name) == 0)
			return fail(p, "system '%s' is defined twice", name);
	if ((s = realloc(c->systems, (c->nsystems + 1) * sizeof(*s))) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	c->systems = s;
	s = &c->systems[c->nsystems++];
	memset(s, 0, sizeof(*s));
	s->file = c->file;
	s->line = p->line;
	s->max_concurrency = 4;
	if ((s->name = strdup(name)) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

static int
add_role(struct parser *p, const char *name)
{
	struct config *c = p->cfg;
	struct role_config *rc;
	size_t i;

	for (i = 0; i < c->nroles; i++)
		if (strcmp(c->roles[i].name, name) == 0)
			return fail(p, "role '%s' is defined twice", name);
	if ((rc = realloc(c->roles, (c->nroles + 1) * sizeof(*rc))) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	c->roles = rc;
	rc = &c->roles[c->nroles++];
	memset(rc, 0, sizeof(*rc));
	rc->line = p->line;
	if ((rc->name = strdup(name)) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

/* A single section kept as key/value pairs for the module that owns its keys. */
static int
kv_section(struct parser *p, struct system_config *sc, const char *name)
{
	if (sc->line != 0)
		return fail(p, "[%s] is defined twice", name);
	sc->line = p->line;
	sc->file = p->cfg->file;
	if ((sc->name = strdup(name)) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

static const char *
policy_type(const char *s)
{
	static const char *const types[] = { "grant", "requirement", "approval",
	    "disruption", "correlation", "ssf_receiver" };
	size_t i, n;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		n = strlen(types[i]);
		if (strncmp(s, types[i], n) == 0 && isspace((unsigned char)s[n]))
			return types[i];
	}
	return NULL;
}

static int
add_policy(struct parser *p, const char *type, const char *name)
{
	struct config *c = p->cfg;
	struct system_config *s;
	size_t i;

	for (i = 0; i < c->npolicy; i++)
		if (strcmp(c->policy[i].kind, type) == 0 &&
		    strcmp(c->policy[i].name, name) == 0)
			return fail(p, "%s '%s' is defined twice", type, name);
	if ((s = realloc(c->policy, (c->npolicy + 1) * sizeof(*s))) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	c->policy = s;
	s = &c->policy[c->npolicy++];
	memset(s, 0, sizeof(*s));
	s->file = c->file;
	s->line = p->line;
	if ((s->name = strdup(name)) == NULL || (s->kind = strdup(type)) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

static int
add_siem(struct parser *p, const char *name)
{
	struct config *c = p->cfg;
	struct siem_config *s;
	size_t i;

	for (i = 0; i < c->nsiems; i++)
		if (strcmp(c->siems[i].name, name) == 0)
			return fail(p, "siem '%s' is defined twice", name);
	if ((s = realloc(c->siems, (c->nsiems + 1) * sizeof(*s))) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	c->siems = s;
	s = &c->siems[c->nsiems++];
	memset(s, 0, sizeof(*s));
	s->file = c->file;
	s->line = p->line;
	s->facility = 13;
	if ((s->name = strdup(name)) == NULL)
		return qerr_set(p->e, QERR_NOMEM, NULL, "out of memory");
	return 0;
}

static int
siem_key(struct parser *p, const char *k, const char *v)
{
	struct siem_config *s = &p->cfg->siems[p->cfg->nsiems - 1];
	long n;
	int r;

	if (strcmp(k, "host") == 0)
		return set_str(p, &s->host, v);
	if (strcmp(k, "ca_file") == 0)
		return set_str(p, &s->ca_file, v);
	if (strcmp(k, "cert_file") == 0)
		return set_str(p, &s->cert_file, v);
	if (strcmp(k, "key_file") == 0)
		return set_str(p, &s->key_file, v);
	if (strcmp(k, "server_name") == 0)
		return set_str(p, &s->server_name, v);
	if (strcmp(k, "hostname") == 0)
		return set_str(p, &s->hostname, v);
	if (strcmp(k, "port") == 0) {
		if (s->port != 0)
			return fail(p, "%s", "this key is set twice");
		if ((r = parse_int(p, k, v, 1, 65535, &n)) != 0)
			return r;
		s->port = (int)n;
		return 0;
	}
	if (strcmp(k, "facility") == 0) {
		if ((r = parse_int(p, k, v, 0, 23, &n)) != 0)
			return r;
		s->facility = (int)n;
		return 0;
	}
	if (strcmp(k, "protocol") == 0) {
		if (s->protocol_line != 0)
			return fail(p, "%s", "this key is set twice");
		s->protocol_line = p->line;
		if (strcmp(v, "tls") == 0)
			s->protocol = SIEM_TLS;
		else if (strcmp(v, "tcp") == 0)
			s->protocol = SIEM_TCP;
		else if (strcmp(v, "udp") == 0)
			s->protocol = SIEM_UDP;
		else
			return fail(p, "protocol must be tls, tcp or udp, not '%s'", v);
		return 0;
	}
	if (strcmp(k, "format") == 0) {
		if (s->format_line != 0)
			return fail(p, "%s", "this key is set twice");
		s->format_line = p->line;
		if (strcmp(v, "rfc5424") == 0)
			s->format = SIEM_FORMAT_RFC5424;
		else if (strcmp(v, "cef") == 0)
			s->format = SIEM_FORMAT_CEF;
		else
			return fail(p, "format must be rfc5424 or cef, not '%s'", v);
		return 0;
	}
	if (strcmp(k, "allow_plaintext") == 0) {
		if (config_bool(v, &s->allow_plaintext) != 0)
			return fail(p, "allow_plaintext must be yes or no, not '%s'", v);
		return 0;
	}
	return fail(p, "unknown key '%s' in [siem \"%s\"]", k, s->name);
}

/* What a [siem] section needs as a whole, checked once it has been read. */
static int
siem_finish(struct parser *p, struct siem_config *s)
{
	p->line = s->line;
	if (s->host == NULL)
		return fail(p, "siem '%s' has no host", s->name);
	if (s->protocol != SIEM_TLS) {
		/* Audit entries name people and accounts: never in clear text by
		 * accident. */
		if (!s->allow_plaintext) {
			p->line = s->protocol_line;
			return fail(p, "siem '%s': protocol %s sends the audit log in clear "
			    "text; use tls, or set allow_plaintext = yes (tests only)", s->name,
			    s->protocol == SIEM_TCP ? "tcp" : "udp");
		}
		if (s->ca_file || s->cert_file || s->key_file || s->server_name)
			return fail(p, "siem '%s': ca_file, cert_file, key_file and "
			    "server_name are for protocol tls", s->name);
	} else if (s->ca_file == NULL)
		return fail(p, "siem '%s' has no ca_file (the CA its server's certificate "
		    "is verified against)", s->name);
	if ((s->cert_file == NULL) != (s->key_file == NULL))
		return fail(p, "siem '%s': cert_file and key_file must be set together",
		    s->name);
	if (s->port == 0)
		s->port = s->protocol == SIEM_TLS ? 6514 : 514;
	return 0;
}

/* [store]: SQLite's file, or PostgreSQL's connection (the store checks conninfo). */
static int
store_key(struct parser *p, const char *k, const char *v)
{
	struct config *c = p->cfg;

	if (strcmp(k, "path") == 0)
		return set_str(p, &c->store_path, v);
	if (strcmp(k, "backend") == 0) {
		if (strcmp(v, "sqlite") != 0 && strcmp(v, "postgres") != 0)
			return fail(p, "[store] backend must be sqlite or postgres, not '%s'",
			    v);
		return set_str(p, &c->store_backend, v);
	}
	if (strcmp(k, "conninfo") == 0)
		return set_str(p, &c->store_conninfo, v);
	if (strcmp(k, "passfile") == 0)
		return set_str(p, &c->store_passfile, v);
	return fail(p, "unknown key '%s' in [store]", k);
}

/* Each backend's keys, and only its own. */
static int
store_finish(struct parser *p)
{
	struct config *c = p->cfg;
	bool pg;

	if (c->store_backend == NULL && (c->store_backend = strdup("sqlite")) == NULL)
		return QERR_NOMEM;
	pg = strcmp(c->store_backend, "postgres") == 0;
	if (pg && c->store_conninfo == NULL)
		return qerr_set(p->e, QERR_CONFIG, "conninfo", "%s: [store] backend = "
		    "postgres needs conninfo (a libpq connection string)", c->file);
	if (pg && c->store_path != NULL)
		return qerr_set(p->e, QERR_CONFIG, "path", "%s: [store] path is SQLite's "
		    "file: backend = postgres takes conninfo", c->file);
	if (!pg && (c->store_conninfo != NULL || c->store_passfile != NULL))
		return qerr_set(p->e, QERR_CONFIG, c->store_conninfo ? "conninfo" :
		    "passfile", "%s: [store] conninfo and passfile are for backend = "
		    "postgres", c->file);
	if (c->store_path == NULL && (c->store_path = strdup(CONFIG_DEFAULT_STORE)) == NULL)
		return QERR_NOMEM;
	return 0;
}

static int
section(struct parser *p, char *s)
{
	const char *type;
	char *end = strchr(s, ']'), *name;
	int r;

	if (end == NULL || *text_trim(end + 1) != '\0')
		return fail(p, "%s", "a section header must end with ']'");
	*end = '\0';
	s = text_trim(s + 1);
	if (strcmp(s, "server") == 0)
		p->sec = SEC_SERVER;
	else if (strcmp(s, "store") == 0)
		p->sec = SEC_STORE;
	else if (strcmp(s, "engine") == 0)
		p->sec = SEC_ENGINE;
	else if (strcmp(s, "oidc") == 0 || strcmp(s, "web") == 0) {
		if ((r = kv_section(p, strcmp(s, "oidc") == 0 ? &p->cfg->oidc :
		    &p->cfg->web, s)) != 0)
			return r;
		p->sec = strcmp(s, "oidc") == 0 ? SEC_OIDC : SEC_WEB;
	}
	else if (strcmp(s, "disruption_guard") == 0) {
		if ((r = kv_section(p, &p->cfg->disruption_guard, s)) != 0)
			return r;
		p->sec = SEC_DISRUPTION_GUARD;
	}
	else if (strcmp(s, "ssf") == 0) {
		if ((r = kv_section(p, &p->cfg->ssf, s)) != 0)
			return r;
		p->sec = SEC_SSF;
	}
	else if (strncmp(s, "system", 6) == 0 && isspace((unsigned char)s[6])) {
		if ((r = named_section(p, s + 6, &name)) != 0 || (r = add_system(p, name)))
			return r;
		p->sec = SEC_SYSTEM;
	} else if ((type = policy_type(s)) != NULL) {
		if ((r = named_section(p, s + strlen(type), &name)) != 0 ||
		    (r = add_policy(p, type, name)))
			return r;
		p->sec = SEC_POLICY;
	} else if (strncmp(s, "siem", 4) == 0 && isspace((unsigned char)s[4])) {
		if ((r = named_section(p, s + 4, &name)) != 0 || (r = add_siem(p, name)))
			return r;
		p->sec = SEC_SIEM;
	} else if (strncmp(s, "role", 4) == 0 && isspace((unsigned char)s[4])) {
		if ((r = named_section(p, s + 4, &name)) != 0 || (r = add_role(p, name)))
			return r;
		p->sec = SEC_ROLE;
	} else
		return fail(p, "unknown section [%s]", s);
	return 0;
}

static int
assignment(struct parser *p, char *s)
{
	char *eq = strchr(s, '='), *k, *v;

	if (eq == NULL)
		return fail(p, "%s", "expected 'key = value'");
	*eq = '\0';
	k = text_trim(s);
	v = unquote(text_trim(eq + 1));
	if (*k == '\0')
		return fail(p, "%s", "missing key before '='");
	if (*v == '\0')
		return fail(p, "missing value for '%s'", k);
	switch (p->sec) {
	case SEC_SERVER:
		return server_key(p, k, v);
	case SEC_ENGINE:
		return engine_key(p, k, v);
	case SEC_STORE:
		return store_key(p, k, v);
	case SEC_SYSTEM:
		return system_key(p, &p->cfg->systems[p->cfg->nsystems - 1], k, v);
	case SEC_OIDC:
		return system_key(p, &p->cfg->oidc, k, v);
	case SEC_POLICY:
		return system_key(p, &p->cfg->policy[p->cfg->npolicy - 1], k, v);
	case SEC_WEB:
		return system_key(p, &p->cfg->web, k, v);
	case SEC_DISRUPTION_GUARD:
		return system_key(p, &p->cfg->disruption_guard, k, v);
	case SEC_SSF:
		return system_key(p, &p->cfg->ssf, k, v);
	case SEC_ROLE:
		return role_key(p, k, v);
	case SEC_SIEM:
		return siem_key(p, k, v);
	case SEC_NONE:
		break;
	}
	return fail(p, "'%s' is outside any section", k);
}

static int
finish(struct parser *p)
{
	struct config *c = p->cfg;
	size_t i;
	int r;

	for (i = 0; i < c->nsiems; i++)
		if ((r = siem_finish(p, &c->siems[i])) != 0)
			return r;
	for (i = 0; i < c->nsystems; i++)
		if (c->systems[i].kind == NULL) {
			p->line = c->systems[i].line;
			return fail(p, "system '%s' has no kind (ad, entra, okta)",
			    c->systems[i].name);
		}
	if ((c->tls_cert == NULL) != (c->tls_key == NULL))
		return qerr_set(p->e, QERR_CONFIG, NULL,
		    "%s: tls_cert and tls_key must be set together", c->file);
	if (c->listen == NULL && (c->listen = strdup("127.0.0.1:8443")) == NULL)
		return QERR_NOMEM;
	if ((r = store_finish(p)) != 0)
		return r;
	if (c->workers == 0)
		c->workers = 8;
	if (c->max_body == 0)
		c->max_body = 64 * 1024;
	if (c->max_connections == 0)
		c->max_connections = 1000;
	if (c->max_connections_per_client == 0)
		c->max_connections_per_client = 128;
	if (c->max_connections_per_client > c->max_connections / 2)
		return qerr_set(p->e, QERR_CONFIG, "max_connections_per_client",
		    "%s: [server] max_connections_per_client must be at most half of "
		    "max_connections (%u), so other clients keep room", c->file,
		    c->max_connections);
	if (c->header_timeout_s == 0)
		c->header_timeout_s = 5;
	if (c->idle_timeout_s == 0)
		c->idle_timeout_s = 60;
	if (c->hunt_workers == 0)
		c->hunt_workers = 2;
	if (!c->log_set[0])
		c->log_level = LOG_LVL_INFO;
	return 0;
}

int
config_parse(const char *file, const char *text, struct config *cfg, struct qerr *e)
{
	struct parser p = { .cfg = cfg, .e = e };
	const char *nl;
	char buf[4096], *s;
	size_t len;
	int r = QERR_NOMEM;

	memset(cfg, 0, sizeof(*cfg));
	if ((cfg->file = strdup(file)) == NULL)
		goto out;
	for (; *text != '\0'; text = nl ? nl + 1 : text + len) {
		p.line++;
		nl = strchr(text, '\n');
		len = nl ? (size_t)(nl - text) : strlen(text);
		if (len >= sizeof(buf)) {
			r = fail(&p, "%s", "line is longer than 4095 bytes");
			goto out;
		}
		memcpy(buf, text, len);
		buf[len] = '\0';
		s = text_trim(buf);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if ((r = (*s == '[') ? section(&p, s) : assignment(&p, s)) != 0)
			goto out;
		if (!nl)
			break;
	}
	r = finish(&p);
out:
	if (r != 0) {
		if (r == QERR_NOMEM)
			qerr_set(e, r, NULL, "out of memory");
		config_clear(cfg);
	}
	return r;
}

static void
section_clear(struct system_config *s)
{
	size_t k;

	for (k = 0; k < s->nkv; k++) {
		free(s->kv[k].key);
		free(s->kv[k].value);
	}
	free(s->kv);
	free(s->name);
	free(s->kind);
}

void
config_clear(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nsystems; i++)
		section_clear(&cfg->systems[i]);
	for (i = 0; i < cfg->npolicy; i++)
		section_clear(&cfg->policy[i]);
	free(cfg->policy);
	section_clear(&cfg->oidc);
	section_clear(&cfg->ssf);
	section_clear(&cfg->web);
	section_clear(&cfg->disruption_guard);
	free(cfg->systems);
	for (i = 0; i < cfg->nsiems; i++) {
		free(cfg->siems[i].name);
		free(cfg->siems[i].host);
		free(cfg->siems[i].ca_file);
		free(cfg->siems[i].cert_file);
		free(cfg->siems[i].key_file);
		free(cfg->siems[i].server_name);
		free(cfg->siems[i].hostname);
	}
	free(cfg->siems);
	for (i = 0; i < cfg->nroles; i++)
		free(cfg->roles[i].name);
	free(cfg->roles);
	free(cfg->file);
	free(cfg->listen);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->user);
	free(cfg->node_id);
	free(cfg->store_path);
	free(cfg->store_backend);
	free(cfg->store_conninfo);
	free(cfg->store_passfile);
	memset(cfg, 0, sizeof(*cfg));
}

int
config_error(struct qerr *e, const struct system_config *s, int line,
    const char *field, const char *fmt, ...)
{
	char why[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return qerr_set(e, QERR_CONFIG, field, "%s:%d: %s",
	    s->file != NULL ? s->file : "(config)", line, why);
}

int
config_bool(const char *v, bool *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0) {
		*out = false;
		return 0;
	}
	return -1;
}

int
config_long(const char *v, long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

int
config_duration(const char *v, int64_t lo_ms, int64_t hi_ms, int64_t *out)
{
	static const struct {
		char unit;
		int64_t ms;
	} units[] = { { 's', 1000 }, { 'm', 60000 }, { 'h', 3600000 },
	    { 'd', 86400000 } };
	char *end;
	long long n;
	size_t i;

	/* Digits only: strtoll alone would take "+5d", " 5d" or "-5d". */
	if (v == NULL || !isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end[0] == '\0' || end[1] != '\0')
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (*end == units[i].unit) {
			/* Compared before multiplying, so a huge n cannot overflow. */
			if (n > hi_ms / units[i].ms || n * units[i].ms < lo_ms ||
			    n * units[i].ms > hi_ms)
				return -1;
			*out = n * units[i].ms;
			return 0;
		}
	return -1;
}

const struct config_kv *
config_system_get(const struct system_config *s, const char *key)
{
	size_t i;

	for (i = 0; i < s->nkv; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return &s->kv[i];
	return NULL;
}

const struct role_config *
config_role(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nroles; i++)
		if (strcmp(cfg->roles[i].name, name) == 0)
			return &cfg->roles[i];
	return NULL;
}

const struct system_config *
config_system(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nsystems; i++)
		if (strcmp(cfg->systems[i].name, name) == 0)
			return &cfg->systems[i];
	return NULL;
}
