/*
 * quelld's configuration as plain data. The parser (config.c) reads an INI-style file:
 *
 *   [server]            listen, tls_cert, tls_key, user, node_id, workers, max_body,
 *                       max_connections, max_connections_per_client,
 *                       header_timeout, idle_timeout, hunt_workers,
 *                       token_max_lifetime, log_format, log_level
 *   [engine]            lease_ms, retry_base_ms, retry_cap_ms, max_attempts,
 *                       step_deadline
 *   [store]             backend (sqlite, postgres), path (sqlite), conninfo and
 *                       passfile (postgres)
 *   [system "corp"]     kind = ad, then keys the provider of that kind reads
 *   [role "responder"]  permissions = response.manage response.read …
 *   [grant "x"], [requirement "kind"], [approval "x"]   access policy (core/policy.c)
 *   [correlation "x"]   how accounts are linked into identities (core/correlate.c)
 *   [disruption "x"], [disruption_guard]   automatic attack disruption
 *                       (core/disruption_rules.c)
 *   [oidc]              keys the OpenID Connect verifier (src/api/oidc.c) reads
 *   [web]               keys the console (src/api/web.c) reads
 *   [ssf], [ssf_receiver "x"]   OpenID Shared Signals (src/engine/ssf.c,
 *                       src/api/routes_ssf.c); receivers are in policy
 *   [siem "x"]          where the audit log is delivered (src/engine/siem.c): host,
 *                       port, protocol, format, ca_file, cert_file, key_file,
 *                       server_name, allow_plaintext, facility, hostname
 *
 * Every value remembers its file and line so that whoever validates it later can say
 * "file:line: reason".
 */
#ifndef QUELL_CORE_CONFIG_H
#define QUELL_CORE_CONFIG_H

/* Where a Debian installation keeps them (quelld.service: ConfigurationDirectory=quell,
 * StateDirectory=quell). */
#define CONFIG_DEFAULT_FILE "/etc/quell/quelld.conf"
#define CONFIG_DEFAULT_STORE "/var/lib/quell/quell.db"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kind.h"
#include "siem_format.h"

struct config_kv {
	char *key;
	char *value;
	int line;
};

struct system_config {
	char *name;
	char *kind;
	const char *file;	/* points at config.file */
	int line;		/* of the section header */
	int max_concurrency;	/* steps in flight on this system, default 4 */
	long sync_interval_ms;	/* scheduled sync every this long; 0 = on demand only */
	int sync_interval_line;	/* where sync_interval was set; 0 = not set */
	struct config_kv *kv;	/* every key of the section, kind included */
	size_t nkv;
};

struct role_config {
	char *name;
	unsigned perms;		/* PERM_* bits from rbac.h */
	int line;
};

enum siem_protocol { SIEM_TLS, SIEM_TCP, SIEM_UDP };

/* A [siem "name"] section, validated here: syslog over TLS (RFC 5425) by default;
 * plain TCP or UDP only with allow_plaintext (tests). */
struct siem_config {
	char *name;
	const char *file;	/* points at config.file */
	int line;		/* of the section header */
	char *host;
	int port;		/* default 6514 (TLS) or 514 */
	enum siem_protocol protocol;
	int protocol_line;	/* 0 = not set */
	enum siem_format format;
	int format_line;
	char *ca_file;		/* the CA the server's certificate must chain to */
	char *cert_file;	/* optional client certificate (PEM chain) … */
	char *key_file;		/* … and its key, read by OpenSSL, never by quell */
	char *server_name;	/* name the certificate must carry; default host */
	bool allow_plaintext;
	int facility;		/* 0..23, default 13 (log audit) */
	char *hostname;		/* HOSTNAME of the messages; default the node id */
};

struct config {
	char *file;
	/* The kinds built in, borrowed; not parsed but set by whoever loads the file
	 * (the daemon: provider_kinds()), before policy, correlation and disruption
	 * rules are loaded from it. Zero: no kind is known. */
	struct kind_table kinds;
	char *listen;		/* "127.0.0.1:8443" */
	char *tls_cert;
	char *tls_key;
	/* The user quelld becomes once started as root (its processes drop to it);
	 * NULL: it stays who started it. */
	char *user;
	int user_line;
	char *node_id;
	int workers;
	size_t max_body;
	unsigned max_connections;	/* open at once, all clients; default 1000 */
	unsigned max_connections_per_client;	/* per client address; default 128 */
	unsigned header_timeout_s;	/* a request's headers complete within; 5 */
	unsigned idle_timeout_s;	/* a connection silent this long is closed; 60 */
	unsigned hunt_workers;	/* hunting queries run at once; default 2 */
	/* Longest life an API token may be given, and the life of one created without
	 * an expiry; 0 = no limit (tokens without an expiry never expire). */
	int64_t token_max_lifetime_ms;
	int log_level;		/* enum log_level; default info */
	bool log_json;		/* log_format = json */
	bool log_set[2];	/* log_level, log_format seen: each is set once */
	long lease_ms;		/* a claimed step's lease; default 60 s */
	long retry_base_ms;	/* first retry delay; default 500 ms */
	long retry_cap_ms;	/* longest retry delay; default 30 s */
	int max_attempts;	/* attempts before a transient failure is final; 25 */
	int64_t step_deadline_ms; /* a step's retries end this long after its start; 6 h */
	char *store_path;	/* SQLite's file; set (the default) for postgres too */
	char *store_backend;	/* "sqlite" (default) or "postgres" */
	char *store_conninfo;	/* postgres: a libpq connection string, no password */
	char *store_passfile;	/* postgres: libpq's password file; NULL: its default */
	struct system_config *systems;
	size_t nsystems;
	struct role_config *roles;
	size_t nroles;
	/* [grant], [requirement], [approval], [disruption] and [correlation] sections:
	 * kind = the section's type. */
	struct system_config *policy;
	size_t npolicy;
	/* Sections whose keys another module validates: line 0 when absent. */
	struct system_config oidc;
	struct system_config web;
	struct system_config disruption_guard;
	struct system_config ssf;	/* the SSF transmitter (src/engine/ssf.c) */
	struct siem_config *siems;
	size_t nsiems;
};

/*
 * Parses text (named file, for messages) into *cfg, which the caller frees with
 * config_clear(). On error returns QERR_CONFIG with e->msg = "file:line: reason".
 */
int config_parse(const char *file, const char *text, struct config *cfg, struct qerr *e);
void config_clear(struct config *cfg);

/* The value of key in a system section, or NULL. The kv keeps the line. */
const struct config_kv *config_system_get(const struct system_config *s, const char *key);
/*
 * For the modules that validate a section's keys: "file:line: reason" in e (code
 * QERR_CONFIG, field set), returned; yes/true/no/false; a whole number in [lo, hi].
 */
int config_error(struct qerr *e, const struct system_config *s, int line,
    const char *field, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int config_bool(const char *v, bool *out);
int config_long(const char *v, long lo, long hi, long *out);
/*
 * A span: a whole number and one unit, s, m, h or d ("90s", "15m", "12h", "30d"), as
 * milliseconds in [lo_ms, hi_ms]. Returns 0, or -1 when v is no such span; callers
 * name the field and the range in their own message.
 */
int config_duration(const char *v, int64_t lo_ms, int64_t hi_ms, int64_t *out);

/* The longest span config_duration is asked to accept for a token's life: 10 years,
 * far from any overflow of milliseconds since 1970. */
#define CONFIG_TOKEN_LIFETIME_MAX_MS (3650LL * 86400000LL)

const struct role_config *config_role(const struct config *cfg, const char *name);
const struct system_config *config_system(const struct config *cfg, const char *name);

#endif
