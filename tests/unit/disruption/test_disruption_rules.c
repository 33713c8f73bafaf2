/* Automatic attack disruption's rules and guard: parsing, matching, exclusions, limit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/disruption_rules.h"

struct fx {
	struct config cfg;
	struct disruption_policy *p;
};

static const char base[] =
    "[system \"corp\"]\nkind = dir\nbind_dn = CN=Administrator,CN=Users,DC=q,DC=t\n"
    "[system \"other\"]\nkind = dir2\nbind_dn = CN=Nobody,DC=q,DC=t\n";

/* A kind whose bind_dn names the account quell signs in with, and one that says
 * nothing of its bind_dn. */
static const struct kind_self_account dir_self[] = { { "bind_dn", KIND_ACCOUNT_DN } };
static const struct kind_info dir_kind = { .kind = "dir", .self_accounts = dir_self,
	.nself_accounts = 1 };
static const struct kind_info dir2_kind = { .kind = "dir2" };
static const struct kind_info *const test_kinds[] = { &dir_kind, &dir2_kind };

static int
load(struct fx *f, const char *text, struct qerr *e)
{
	char buf[4096];
	int r;

	memset(f, 0, sizeof(*f));
	snprintf(buf, sizeof(buf), "%s%s", base, text);
	if ((r = config_parse("q.conf", buf, &f->cfg, e)) != 0)
		return r;
	f->cfg.kinds.v = test_kinds;
	f->cfg.kinds.n = 2;
	return disruption_policy_load(&f->cfg, &f->p, e);
}

static void
unload(struct fx *f)
{
	disruption_policy_free(f->p);
	config_clear(&f->cfg);
}

static struct alert
alert(const char *category, enum alert_severity sev, int confidence)
{
	struct alert a;

	memset(&a, 0, sizeof(a));
	a.category = (char *)category;
	a.severity = sev;
	a.confidence = confidence;
	return a;
}

static void
test_defaults(void **state)
{
	struct fx f;
	struct qerr e;

	(void)state;
	assert_int_equal(load(&f, "", &e), 0);
	assert_int_equal(f.p->nrules, 0);
	assert_string_equal(f.p->guard.role, "responder");
	assert_int_equal(f.p->guard.max_containments, 10);
	assert_int_equal(f.p->guard.window_ms, 3600000);
	assert_int_equal(f.p->guard.exclude_tags.n, 2);
	assert_int_equal(f.p->guard.nself, 1);
	assert_string_equal(f.p->guard.self[0].system, "corp");
	unload(&f);
}

static void
test_rule_parsing(void **state)
{
	struct fx f;
	struct qerr e;
	const struct disruption_rule *r;

	(void)state;
	assert_int_equal(load(&f, "[disruption \"c\"]\ncategories = ransomware, "
	    "credential_theft\nmin_severity = high\nmin_confidence = medium\n"
	    "actions = contain set_risk:HIGH\ndry_run = true\n", &e), 0);
	r = &f.p->rules[0];
	assert_int_equal(r->nsteps, 3);
	assert_int_equal(r->steps[0].type, ACTION_DISABLE);
	assert_int_equal(r->steps[1].type, ACTION_REVOKE_SESSIONS);
	assert_int_equal(r->steps[2].type, ACTION_SET_RISK);
	assert_string_equal(r->steps[2].risk_level, "HIGH");
	assert_int_equal(r->min_confidence, 60);
	assert_true(r->dry_run);
	unload(&f);
}

static void
expect_error(const char *text, const char *needle)
{
	struct fx f;
	struct qerr e;

	qerr_clear(&e);
	assert_int_equal(load(&f, text, &e), QERR_CONFIG);
	if (strstr(e.msg, needle) == NULL)
		fail_msg("'%s' does not contain '%s'", e.msg, needle);
	unload(&f);
}

static void
test_rule_errors(void **state)
{
	(void)state;
	expect_error("[disruption \"x\"]\ncategories = ransomware\n", "q.conf:7: ");
	expect_error("[disruption \"x\"]\nactions = deactivate\n", "permanently");
	expect_error("[disruption \"x\"]\nactions = enable\n", "cannot be automatic");
	expect_error("[disruption \"x\"]\nactions = set_risk\n", "needs a level");
	expect_error("[disruption \"x\"]\nactions = set_risk:EXTREME\n", "EXTREME");
	expect_error("[disruption \"x\"]\nactions = disable disable\n", "twice");
	expect_error("[disruption \"x\"]\nactions = contain\ncategories = phishy\n",
	    "q.conf:9: unknown category 'phishy'");
	expect_error("[disruption \"x\"]\nactions = contain\nmin_confidence = 101\n",
	    "min_confidence");
	expect_error("[disruption \"x\"]\nactions = contain\nbogus = 1\n",
	    "unknown key 'bogus'");
	expect_error("[disruption_guard]\nwindow = 2y\n", "q.conf:8: window");
	expect_error("[disruption_guard]\nmax_containments = -1\n", "max_containments");
	expect_error("[disruption_guard]\nfoo = bar\n", "unknown key 'foo'");
}

static void
test_matching(void **state)
{
	struct fx f;
	struct qerr e;
	struct alert a;
	char *staff[] = { "staff" };

	(void)state;
	assert_int_equal(load(&f, "[disruption \"ransom\"]\ncategories = ransomware\n"
	    "min_severity = high\nmin_confidence = 80\nactions = contain\n"
	    "[disruption \"staff\"]\ntags = staff\nmin_severity = medium\n"
	    "actions = mark_compromised\n", &e), 0);
	a = alert("ransomware", ALERT_SEV_HIGH, 90);
	assert_string_equal(disruption_match(f.p, &a, NULL, 0)->name, "ransom");
	a = alert("ransomware", ALERT_SEV_HIGH, 79);
	assert_null(disruption_match(f.p, &a, NULL, 0));
	assert_string_equal(disruption_match(f.p, &a, staff, 1)->name, "staff");
	a = alert("password_spray", ALERT_SEV_LOW, 100);
	assert_null(disruption_match(f.p, &a, staff, 1));
	a = alert("password_spray", ALERT_SEV_MEDIUM, 0);
	assert_string_equal(disruption_match(f.p, &a, staff, 1)->name, "staff");
	unload(&f);
}

static void
test_exclusions(void **state)
{
	struct fx f;
	struct qerr e;
	struct identity idn;
	struct account acc;
	char *tier0[] = { "staff", "tier0" }, why[256];

	(void)state;
	assert_int_equal(load(&f, "[disruption \"t0\"]\nallow_tags = tier0\n"
	    "actions = contain\n[disruption \"any\"]\nactions = contain\n"
	    "[disruption_guard]\nexclude_identities = idn_1\nexclude_accounts = svc-bk\n",
	    &e), 0);
	memset(&idn, 0, sizeof(idn));
	memset(&acc, 0, sizeof(acc));
	idn.id = "idn_2";
	assert_false(disruption_excluded(f.p, &f.p->rules[1], &idn, why, sizeof(why)));
	idn.tags = tier0;
	idn.ntags = 2;
	assert_true(disruption_excluded(f.p, &f.p->rules[1], &idn, why, sizeof(why)));
	assert_non_null(strstr(why, "tier0"));
	assert_false(disruption_excluded(f.p, &f.p->rules[0], &idn, why, sizeof(why)));
	idn.ntags = 0;
	idn.id = "idn_1";
	assert_true(disruption_excluded(f.p, &f.p->rules[0], &idn, why, sizeof(why)));
	idn.id = "idn_3";
	acc.id = "acc_1";
	acc.system = "corp";
	acc.kind = "dir";
	acc.username = "SVC-BK";
	idn.accounts = &acc;
	idn.naccounts = 1;
	assert_true(disruption_excluded(f.p, NULL, &idn, why, sizeof(why)));
	assert_non_null(strstr(why, "exclude_accounts"));
	acc.username = "Administrator";
	acc.dn = "cn=administrator,cn=users,dc=q,dc=t";
	assert_true(disruption_excluded(f.p, NULL, &idn, why, sizeof(why)));
	assert_non_null(strstr(why, "signs in to corp"));
	/* The same DN in another system is someone else. */
	acc.system = "other";
	acc.dn = "CN=Nobody,DC=q,DC=t";
	assert_false(disruption_excluded(f.p, NULL, &idn, why, sizeof(why)));
	unload(&f);
}

static void
test_limit(void **state)
{
	struct fx f;
	struct qerr e;

	(void)state;
	assert_int_equal(load(&f, "[disruption_guard]\nmax_containments = 2\nwindow = 10m\n",
	    &e), 0);
	assert_int_equal(f.p->guard.window_ms, 600000);
	assert_true(disruption_within_limit(f.p, 0));
	assert_true(disruption_within_limit(f.p, 1));
	assert_false(disruption_within_limit(f.p, 2));
	unload(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_rule_parsing),
		cmocka_unit_test(test_rule_errors),
		cmocka_unit_test(test_matching),
		cmocka_unit_test(test_exclusions),
		cmocka_unit_test(test_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
