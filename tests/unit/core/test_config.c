/* The configuration parser: defaults, every section, and errors naming file:line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/rbac.h"

static void
parses_every_section(void **state)
{
	const char *text =
	    "# quelld\n"
	    "[server]\n"
	    "listen = 0.0.0.0:9443\n"
	    "workers = 3\n"
	    "node_id = n1\n"
	    "\n"
	    "[store]\n"
	    "path = \"/var/lib/quell/q.db\"\n"
	    "[system \"corp\"]\n"
	    "kind = ad\n"
	    "url = ldaps://127.0.0.1\n"
	    "max_concurrency = 9\n"
	    "[role \"helpdesk\"]\n"
	    "permissions = response.manage, identities.read\n"
	    "[engine]\n"
	    "retry_cap_ms = 2000\n"
	    "max_attempts = 7\n"
	    "[oidc]\n"
	    "issuer = https://login.example/t/v2.0\n";
	struct config c;
	struct qerr e;
	const struct config_kv *kv;
	unsigned perms;

	(void)state;
	assert_int_equal(config_parse("q.conf", text, &c, &e), 0);
	assert_string_equal(c.listen, "0.0.0.0:9443");
	assert_int_equal(c.workers, 3);
	assert_string_equal(c.store_path, "/var/lib/quell/q.db");
	assert_int_equal(c.nsystems, 1);
	assert_string_equal(c.systems[0].kind, "ad");
	assert_int_equal(c.systems[0].max_concurrency, 9);
	kv = config_system_get(&c.systems[0], "url");
	assert_non_null(kv);
	assert_string_equal(kv->value, "ldaps://127.0.0.1");
	assert_int_equal(kv->line, 11);
	assert_true(rbac_role_perms(&c, "helpdesk", &perms));
	assert_int_equal(perms, PERM_RESPONSE_MANAGE | PERM_IDENTITIES_READ);
	assert_int_equal(c.max_body, 64 * 1024);
	assert_int_equal(c.retry_cap_ms, 2000);
	assert_int_equal(c.max_attempts, 7);
	assert_int_equal(c.lease_ms, 0);
	assert_int_equal(c.oidc.line, 18);
	assert_string_equal(config_system_get(&c.oidc, "issuer")->value,
	    "https://login.example/t/v2.0");
	assert_int_equal(c.web.line, 0);
	config_clear(&c);
}

static void
defaults_when_empty(void **state)
{
	struct config c;
	struct qerr e;

	(void)state;
	assert_int_equal(config_parse("q.conf", "", &c, &e), 0);
	assert_string_equal(c.listen, "127.0.0.1:8443");
	assert_string_equal(c.store_path, "/var/lib/quell/quell.db");
	assert_int_equal(c.workers, 8);
	config_clear(&c);
}

static void
expect_error(const char *text, const char *msg)
{
	struct config c;
	struct qerr e;

	assert_int_equal(config_parse("q.conf", text, &c, &e), QERR_CONFIG);
	assert_string_equal(e.msg, msg);
	assert_null(c.systems);
	assert_null(c.file);
}

static void
errors_name_file_and_line(void **state)
{
	(void)state;
	expect_error("[server]\nlisten 1\n", "q.conf:2: expected 'key = value'");
	expect_error("[server]\nbogus = 1\n", "q.conf:2: unknown key 'bogus' in [server]");
	expect_error("[nope]\n", "q.conf:1: unknown section [nope]");
	expect_error("x = 1\n", "q.conf:1: 'x' is outside any section");
	expect_error("[server]\nworkers = 0\n",
	    "q.conf:2: workers must be a whole number from 1 to 256");
	expect_error("[server]\nworkers = 5x\n",
	    "q.conf:2: workers must be a whole number from 1 to 256");
	expect_error("[system corp]\n",
	    "q.conf:1: section name must be quoted, e.g. [system \"corp\"]");
	expect_error("[system \"a b\"]\n",
	    "q.conf:1: bad section name 'a b': use 1-63 letters, digits, '-', '_', '.'");
	expect_error("\n[system \"a\"]\nurl = x\n",
	    "q.conf:2: system 'a' has no kind (ad, entra, okta)");
	expect_error("[system \"a\"]\nkind=ad\n[system \"a\"]\nkind=ad\n",
	    "q.conf:3: system 'a' is defined twice");
	expect_error("[system \"a\"]\nkind=ad\nkind=ad\n",
	    "q.conf:3: 'kind' is set twice in this section");
	expect_error("[role \"r\"]\npermissions = response.manage fly\n",
	    "q.conf:2: unknown permission 'fly'");
	expect_error("[engine]\nmax_attempts = 0\n",
	    "q.conf:2: max_attempts must be a whole number from 1 to 1000");
	expect_error("[oidc]\na = 1\n[oidc]\n", "q.conf:3: [oidc] is defined twice");
	expect_error("[server]\nlisten =\n", "q.conf:2: missing value for 'listen'");
	expect_error("[server]\ntls_cert = /x\n",
	    "q.conf: tls_cert and tls_key must be set together");
}

static void
configured_role_overrides_builtin(void **state)
{
	struct config c;
	struct qerr e;
	unsigned perms = 0;

	(void)state;
	assert_int_equal(config_parse("q.conf",
	    "[role \"viewer\"]\npermissions = audit.read\n", &c, &e), 0);
	assert_true(rbac_role_perms(&c, "viewer", &perms));
	assert_int_equal(perms, PERM_AUDIT_READ);
	assert_true(rbac_role_perms(&c, "responder", &perms));
	assert_true(perms & PERM_RESPONSE_MANAGE);
	assert_false(rbac_role_perms(&c, "nobody", &perms));
	config_clear(&c);
}

static void
durations(void **state)
{
	static const struct {
		const char *v;
		int64_t ms;
	} good[] = {
		{ "1s", 1000 }, { "90s", 90000 }, { "15m", 900000 }, { "12h", 43200000 },
		{ "30d", 2592000000LL }, { "3650d", CONFIG_TOKEN_LIFETIME_MAX_MS },
		{ "0090m", 5400000 },
	};
	static const char *const bad[] = {
		"", "30", "d", "30x", "30dd", "30 d", " 30d", "+30d", "-30d", "3.5h",
		"30D", "3651d", "0s", "99999999999999999999d", "9223372036854775807s",
	};
	int64_t out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		out = -1;
		assert_int_equal(config_duration(good[i].v, 1000,
		    CONFIG_TOKEN_LIFETIME_MAX_MS, &out), 0);
		assert_true(out == good[i].ms);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = 7;
		if (config_duration(bad[i], 1000, CONFIG_TOKEN_LIFETIME_MAX_MS, &out) != -1)
			fail_msg("'%s' was taken as a span", bad[i]);
		assert_true(out == 7);
	}
	assert_int_equal(config_duration(NULL, 0, 1000, &out), -1);
	/* The bounds are inclusive and in milliseconds. */
	assert_int_equal(config_duration("59s", 60000, 120000, &out), -1);
	assert_int_equal(config_duration("1m", 60000, 120000, &out), 0);
	assert_int_equal(config_duration("2m", 60000, 120000, &out), 0);
	assert_int_equal(config_duration("121s", 60000, 120000, &out), -1);
}

static void
token_max_lifetime(void **state)
{
	struct config c;
	struct qerr e;

	(void)state;
	assert_int_equal(config_parse("q.conf", "", &c, &e), 0);
	assert_true(c.token_max_lifetime_ms == 0);
	config_clear(&c);
	assert_int_equal(config_parse("q.conf", "[server]\ntoken_max_lifetime = 90d\n", &c,
	    &e), 0);
	assert_true(c.token_max_lifetime_ms == 90LL * 86400000LL);
	config_clear(&c);
	expect_error("[server]\ntoken_max_lifetime = 90\n",
	    "q.conf:2: token_max_lifetime must be a span from 1m to 3650d such as 90d, "
	    "12h (a number and s, m, h or d), not '90'");
	expect_error("[server]\ntoken_max_lifetime = 30s\n",
	    "q.conf:2: token_max_lifetime must be a span from 1m to 3650d such as 90d, "
	    "12h (a number and s, m, h or d), not '30s'");
	expect_error("[server]\ntoken_max_lifetime = 4000d\n",
	    "q.conf:2: token_max_lifetime must be a span from 1m to 3650d such as 90d, "
	    "12h (a number and s, m, h or d), not '4000d'");
	expect_error("[server]\ntoken_max_lifetime = 1d\ntoken_max_lifetime = 2d\n",
	    "q.conf:3: this key is set twice");
}

/* [server] connection limits and timeouts (issue 12, hole 3). */
static void
connection_limits(void **state)
{
	struct config c;
	struct qerr e;

	(void)state;
	assert_int_equal(config_parse("q.conf", "", &c, &e), 0);
	assert_int_equal(c.max_connections, 1000);
	assert_int_equal(c.max_connections_per_client, 128);
	assert_int_equal(c.header_timeout_s, 5);
	assert_int_equal(c.idle_timeout_s, 60);
	assert_int_equal(c.hunt_workers, 2);
	config_clear(&c);
	assert_int_equal(config_parse("q.conf", "[server]\nmax_connections = 200\n"
	    "max_connections_per_client = 100\nheader_timeout = 3s\nidle_timeout = 2m\n"
	    "hunt_workers = 4\n", &c, &e), 0);
	assert_int_equal(c.max_connections, 200);
	assert_int_equal(c.max_connections_per_client, 100);
	assert_int_equal(c.header_timeout_s, 3);
	assert_int_equal(c.idle_timeout_s, 120);
	assert_int_equal(c.hunt_workers, 4);
	config_clear(&c);
	/* one client may not hold more than half: the rest is the others' */
	assert_int_equal(config_parse("q.conf", "[server]\nmax_connections = 200\n"
	    "max_connections_per_client = 101\n", &c, &e), QERR_CONFIG);
	assert_string_equal(e.field, "max_connections_per_client");
	expect_error("[server]\nheader_timeout = 1500ms\n",
	    "q.conf:2: header_timeout must be a whole number of seconds from 1s to 1h "
	    "(e.g. 5s, 2m), not '1500ms'");
	expect_error("[server]\nheader_timeout = 0s\n",
	    "q.conf:2: header_timeout must be a whole number of seconds from 1s to 1h "
	    "(e.g. 5s, 2m), not '0s'");
	expect_error("[server]\nhunt_workers = 0\n",
	    "q.conf:2: hunt_workers must be a whole number from 1 to 64");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_every_section),
		cmocka_unit_test(defaults_when_empty),
		cmocka_unit_test(errors_name_file_and_line),
		cmocka_unit_test(configured_role_overrides_builtin),
		cmocka_unit_test(durations),
		cmocka_unit_test(token_max_lifetime),
		cmocka_unit_test(connection_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
