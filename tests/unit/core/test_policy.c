/* The access policy: the seed's defaults, grants with scopes, requirements, approvals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/policy.h"
#include "core/rbac.h"
#include "providers/provider.h"

#define GA	"62e90394-69f5-4237-9190-012177145e10"
#define UA	"fe930be7-5e62-47db-91af-98c3a49a38b1"
#define SECO	"5f2222b1-57c3-48ba-8ad5-d4759f1fde6f"
#define HDA	"729827e3-9c14-49f7-bb1b-9608f156bbb8"

struct fx {
	struct config cfg;
	struct policy *pol;
	struct grant_set gs;
};

static void
load(struct fx *f, const char *text)
{
	struct qerr e;

	memset(f, 0, sizeof(*f));
	assert_int_equal(config_parse("q.conf", text, &f->cfg, &e), 0);
	f->cfg.kinds = provider_kinds();
	assert_int_equal(policy_load(&f->cfg, &f->pol, &e), 0);
}

static void
unload(struct fx *f)
{
	free(f->gs.g);
	policy_free(f->pol);
	config_clear(&f->cfg);
}

static bool
may(struct fx *f, const struct subject *s, enum action_type t, const char *kind,
    char *const *tags, size_t ntags, char *why)
{
	struct qerr e;

	free(f->gs.g);
	assert_int_equal(policy_grants(f->pol, s, &f->gs, &e), 0);
	return policy_step_allowed(f->pol, s, &f->gs, t, kind, tags, ntags, why, 256);
}

static void
seed_table_for_entra_roles(void **state)
{
	char *seco[] = { SECO }, *ua[] = { UA }, *hda[] = { HDA }, why[256];
	struct subject s = { .id = "oidc:1", .name = "op@x", .wids = seco, .nwids = 1 };
	struct fx f;

	(void)state;
	load(&f, "");
	assert_true(may(&f, &s, ACTION_DISABLE, "okta", NULL, 0, why));
	assert_string_equal(why, "Entra role Security Operator may disable on okta systems");
	assert_true(may(&f, &s, ACTION_MARK_COMPROMISED, "entra", NULL, 0, why));
	assert_false(may(&f, &s, ACTION_DISABLE, "entra", NULL, 0, why));
	assert_false(may(&f, &s, ACTION_DISABLE, "ad", NULL, 0, why));
	assert_string_equal(why, "'op@x' holds neither response.manage nor an Entra role "
	    "allowed to disable on ad systems");
	/* Security Operator reads by default, and may request what the table allows. */
	assert_true(policy_perms(&f.gs) & PERM_RESPONSE_READ);
	assert_false(policy_perms(&f.gs) & PERM_RESPONSE_MANAGE);
	assert_true(policy_entra_may(f.pol, &s, ACTION_SET_RISK));
	assert_false(policy_entra_may(f.pol, &s, ACTION_FORCE_PASSWORD_CHANGE) &&
	    may(&f, &s, ACTION_FORCE_PASSWORD_CHANGE, "ad", NULL, 0, why));

	s.wids = ua;
	assert_true(may(&f, &s, ACTION_DISABLE, "entra", NULL, 0, why));
	assert_false(may(&f, &s, ACTION_MARK_COMPROMISED, "entra", NULL, 0, why));
	s.wids = hda;
	assert_true(may(&f, &s, ACTION_REVOKE_SESSIONS, "entra", NULL, 0, why));
	assert_false(may(&f, &s, ACTION_DISABLE, "entra", NULL, 0, why));
	unload(&f);
}

static void
scoped_grants(void **state)
{
	char *staff[] = { "staff" }, *both[] = { "staff", "tier0" }, *none[] = { "x" };
	char *apps[] = { "Helpdesk" }, *scope[] = { "staff" }, why[256];
	struct subject tok = { .id = "qt_1", .name = "hd", .role = "responder",
	    .scope = scope, .nscope = 1 };
	struct subject jwt = { .id = "oidc:2", .name = "h@x", .app_roles = apps,
	    .napp_roles = 1 };
	struct fx f;

	(void)state;
	load(&f, "[grant \"helpdesk\"]\nmatch = app_role:Helpdesk\nrole = responder\n"
	    "scope = staff\nexclude = tier0\n");
	assert_true(may(&f, &tok, ACTION_DISABLE, "ad", staff, 1, why));
	assert_string_equal(why, "role 'responder' (token) grants response.manage");
	assert_false(may(&f, &tok, ACTION_DISABLE, "ad", none, 1, why));
	assert_string_equal(why, "the identity is outside the scope of every role of 'hd' "
	    "that grants response.manage");
	assert_true(may(&f, &jwt, ACTION_DISABLE, "ad", staff, 1, why));
	assert_string_equal(why, "role 'responder' (grant helpdesk) grants response.manage");
	assert_false(may(&f, &jwt, ACTION_DISABLE, "ad", both, 2, why));
	assert_true(policy_covers(&f.gs, PERM_RESPONSE_READ, staff, 1));
	assert_false(policy_covers(&f.gs, PERM_RESPONSE_READ, both, 2));
	assert_false(policy_covers(&f.gs, PERM_RESPONSE_APPROVE, staff, 1));
	/* [grant] sections replace the default Entra role grants. */
	jwt.app_roles = NULL;
	jwt.napp_roles = 0;
	assert_false(may(&f, &jwt, ACTION_DISABLE, "ad", staff, 1, why));
	assert_int_equal(f.gs.n, 0);
	unload(&f);
}

static void
user_match_is_for_signed_in_users(void **state)
{
	struct subject tok = { .id = "qt_1", .name = "hd", .role = "viewer" };
	struct subject sso = { .id = "oidc:7", .name = "HD" };
	struct qerr e;
	struct fx f;

	(void)state;
	load(&f, "[grant \"u\"]\nmatch = user:hd\nrole = admin\n");
	assert_int_equal(policy_grants(f.pol, &tok, &f.gs, &e), 0);
	assert_int_equal(f.gs.n, 1);
	assert_false(policy_perms(&f.gs) & PERM_SETTINGS_MANAGE);
	free(f.gs.g);
	assert_int_equal(policy_grants(f.pol, &sso, &f.gs, &e), 0);
	assert_int_equal(f.gs.n, 1);
	assert_true(policy_perms(&f.gs) & PERM_SETTINGS_MANAGE);
	unload(&f);
}

/* An access token's OAuth scope (e.g. the SSF profile's ssf.manage) is matched by
 * oauth_scope:, exactly and never by an app role of the same name. */
static void
oauth_scope_match(void **state)
{
	char *manage[] = { "ssf.read", "ssf.manage" }, *read[] = { "ssf.read" };
	struct subject jwt = { .id = "oidc:9", .name = "rx", .oauth_scopes = manage,
	    .noauth_scopes = 2 };
	struct qerr e;
	struct fx f;

	(void)state;
	load(&f, "[grant \"ssf\"]\nmatch = oauth_scope:ssf.manage\nrole = admin\n");
	assert_int_equal(policy_grants(f.pol, &jwt, &f.gs, &e), 0);
	assert_true(policy_perms(&f.gs) & PERM_SETTINGS_MANAGE);
	free(f.gs.g);
	jwt.oauth_scopes = read;
	jwt.noauth_scopes = 1;
	assert_int_equal(policy_grants(f.pol, &jwt, &f.gs, &e), 0);
	assert_false(policy_perms(&f.gs) & PERM_SETTINGS_MANAGE);
	free(f.gs.g);
	jwt.oauth_scopes = NULL;
	jwt.noauth_scopes = 0;
	jwt.app_roles = manage;
	jwt.napp_roles = 2;
	assert_int_equal(policy_grants(f.pol, &jwt, &f.gs, &e), 0);
	assert_false(policy_perms(&f.gs) & PERM_SETTINGS_MANAGE);
	unload(&f);
}

static void
configured_requirements(void **state)
{
	char *seco[] = { SECO }, *ga[] = { GA }, why[256];
	struct subject s = { .id = "oidc:1", .name = "op", .wids = seco, .nwids = 1 };
	struct fx f;

	(void)state;
	load(&f, "[requirement \"okta\"]\ndisable = Global Administrator\n"
	    "[requirement \"ad\"]\ndisable = Security Operator, " GA "\n");
	assert_false(may(&f, &s, ACTION_DISABLE, "okta", NULL, 0, why));
	assert_true(may(&f, &s, ACTION_ENABLE, "okta", NULL, 0, why));
	assert_true(may(&f, &s, ACTION_DISABLE, "ad", NULL, 0, why));
	s.wids = ga;
	assert_true(may(&f, &s, ACTION_DISABLE, "okta", NULL, 0, why));
	unload(&f);
}

static void
approval_rules(void **state)
{
	struct step steps[3];
	struct action a = { .type = ACTION_DISABLE, .steps = steps, .nsteps = 1 };
	const char *kinds[] = { "ad", "okta", "ad" };
	char *tier0[] = { "tier0" }, *staff[] = { "staff" };
	int64_t ttl = 0;
	struct fx f;

	(void)state;
	memset(steps, 0, sizeof(steps));
	load(&f, "[approval \"tier0\"]\ntags = tier0\nexpire_after = 2h\n"
	    "[approval \"okta-deactivate\"]\ntypes = deactivate\nsystems = okta\n"
	    "[approval \"bulk\"]\nmin_accounts = 2\n");
	assert_string_equal(policy_approval_rule(f.pol, &a, tier0, 1, kinds, &ttl),
	    "tier0");
	assert_int_equal(ttl, 2 * 3600 * 1000);
	assert_null(policy_approval_rule(f.pol, &a, staff, 1, kinds, &ttl));
	a.type = ACTION_DEACTIVATE;
	assert_null(policy_approval_rule(f.pol, &a, staff, 1, kinds, &ttl));
	a.nsteps = 2;
	assert_string_equal(policy_approval_rule(f.pol, &a, staff, 1, kinds, &ttl),
	    "okta-deactivate");
	assert_int_equal(ttl, 24 * 3600 * 1000);
	steps[1].status = STEP_NOT_APPLICABLE;
	assert_null(policy_approval_rule(f.pol, &a, staff, 1, kinds, &ttl));
	/* min_accounts counts the accounts acted on, not those skipped as N/A. */
	a.nsteps = 3;
	assert_null(policy_approval_rule(f.pol, &a, staff, 1, kinds, &ttl));
	steps[1].status = STEP_QUEUED;
	a.type = ACTION_DISABLE;
	assert_string_equal(policy_approval_rule(f.pol, &a, staff, 1, kinds, &ttl), "bulk");
	unload(&f);
}

static void
expect_error(const char *text, const char *msg)
{
	struct config cfg;
	struct policy *pol = NULL;
	struct qerr e;

	assert_int_equal(config_parse("q.conf", text, &cfg, &e), 0);
	cfg.kinds = provider_kinds();
	assert_int_equal(policy_load(&cfg, &pol, &e), QERR_CONFIG);
	assert_string_equal(e.msg, msg);
	assert_null(pol);
	config_clear(&cfg);
}

static void
errors_name_the_line(void **state)
{
	(void)state;
	expect_error("[grant \"a\"]\nmatch = group:x\nrole = viewer\n",
	    "q.conf:2: match must be app_role:NAME, entra_role:ROLE, subject:ID, "
	    "user:NAME or oauth_scope:NAME");
	expect_error("[grant \"a\"]\nmatch = app_role:x\nrole = god\n",
	    "q.conf:3: unknown role 'god'");
	expect_error("[grant \"a\"]\nrole = viewer\n", "q.conf:1: [grant \"a\"] needs match "
	    "and role");
	expect_error("[grant \"a\"]\nmatch = entra_role:Chief Wizard\nrole = viewer\n",
	    "q.conf:2: unknown Entra role 'Chief Wizard'");
	expect_error("[requirement \"okta\"]\nnuke = Global Administrator\n",
	    "q.conf:2: 'nuke' is not an action type");
	expect_error("[requirement \"okta\"]\ndisable = Security Operator, Janitor\n",
	    "q.conf:2: unknown Entra role 'Janitor' (use its name or template id)");
	expect_error("[approval \"a\"]\ntypes = disable, explode\n",
	    "q.conf:2: 'explode' is not an action type");
	expect_error("[approval \"a\"]\nmin_accounts = lots\n",
	    "q.conf:2: min_accounts must be a whole number");
	expect_error("[approval \"a\"]\nexpire_after = 3 weeks\n",
	    "q.conf:2: expire_after must be a span such as 30m, 24h or 7d (at most 365d)");
	expect_error("[approval \"a\"]\ncolour = red\n",
	    "q.conf:2: unknown key 'colour' in [approval \"a\"]");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seed_table_for_entra_roles),
		cmocka_unit_test(scoped_grants),
		cmocka_unit_test(user_match_is_for_signed_in_users),
		cmocka_unit_test(oauth_scope_match),
		cmocka_unit_test(configured_requirements),
		cmocka_unit_test(approval_rules),
		cmocka_unit_test(errors_name_the_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
