/* Correlation rules: defaults, [correlation] sections, probes and the verdict. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/correlate.h"
#include "providers/provider.h"

static struct account
acct(const char *kind, const char *sid, const char *upn, const char *email,
    const char *username)
{
	struct account a;

	memset(&a, 0, sizeof(a));
	a.kind = (char *)kind;
	a.sid = (char *)sid;
	a.upn = (char *)upn;
	a.email = (char *)email;
	a.username = (char *)username;
	return a;
}

static void
defaults_probe_the_issue_pairs(void **state)
{
	struct corr_rules rs;
	struct corr_probe pr[32];
	struct account ad = acct("ad", "S-1-5-21-9", "Alice@Corp.Example", NULL, "alice");
	struct account okta = acct("okta", NULL, NULL, "ALICE@mail.example",
	    "alice@corp.example");
	size_t n;

	struct kind_table kinds = provider_kinds();
	struct qerr e;

	(void)state;
	assert_int_equal(corr_rules_default(&kinds, &rs, &e), 0);
	assert_true(rs.n >= 3);	/* and one per further kind built in (scim) */
	assert_string_equal(rs.rule[0].name, "sid");
	n = corr_probes(&rs.rule[0], &ad, pr, 32);
	assert_int_equal(n, 1);
	assert_string_equal(pr[0].value, "s-1-5-21-9");
	assert_string_equal(pr[0].kind, "entra");
	assert_int_equal(pr[0].attr, CORR_SID);
	n = corr_probes(&rs.rule[1], &ad, pr, 32);
	assert_int_equal(n, 1);
	assert_string_equal(pr[0].value, "alice@corp.example");
	/* an AD account probes Okta's login and email with its UPN (it has no mail) */
	n = corr_probes(&rs.rule[2], &ad, pr, 32);
	assert_int_equal(n, 2);
	assert_string_equal(pr[0].kind, "okta");
	assert_int_equal(pr[0].attr, CORR_USERNAME);
	assert_int_equal(pr[1].attr, CORR_EMAIL);
	/* Okta: login and email against UPN and mail of AD and Entra */
	n = corr_probes(&rs.rule[2], &okta, pr, 32);
	assert_int_equal(n, 8);
	assert_string_equal(pr[0].value, "alice@corp.example");
	assert_string_equal(pr[4].value, "alice@mail.example");
	assert_int_equal(corr_probes(&rs.rule[0], &okta, pr, 32), 0);
}

/* A kind's rule is checked as a [correlation] section's would be. */
static void
bad_kind_rule_is_refused(void **state)
{
	static const struct kind_corr_rule bad[] = { { "broken", "x.cn = y.upn" } };
	static const struct kind_info k = { .kind = "x", .corr_rules = bad,
		.ncorr_rules = 1 };
	static const struct kind_info *const v[] = { &k };
	struct kind_table kinds = { v, 1 };
	struct corr_rules rs;
	struct qerr e;

	(void)state;
	assert_int_equal(corr_rules_default(&kinds, &rs, &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "(built in):0: [correlation \"broken\"]: unknown "
	    "attribute 'cn'"));
}

static void
sections_replace_defaults(void **state)
{
	const char *text =
	    "[correlation \"emp\"]\n"
	    "match = *.username, okta.email = ad.email\n"
	    "[correlation \"sid\"]\n"
	    "match = ad.sid = entra.sid\n";
	struct config c;
	struct corr_rules rs;
	struct qerr e;

	(void)state;
	assert_int_equal(config_parse("q.conf", text, &c, &e), 0);
	assert_int_equal(corr_rules_load(&c, &rs, &e), 0);
	assert_int_equal(rs.n, 2);
	assert_string_equal(rs.rule[0].name, "emp");
	assert_int_equal(rs.rule[0].nside[0], 2);
	assert_string_equal(rs.rule[0].side[0][0].kind, "");
	assert_int_equal(rs.rule[0].side[0][0].attr, CORR_USERNAME);
	assert_string_equal(rs.rule[0].side[1][0].kind, "ad");
	config_clear(&c);
}

static void
expect_error(const char *text, const char *want)
{
	struct config c;
	struct corr_rules rs;
	struct qerr e;

	assert_int_equal(config_parse("q.conf", text, &c, &e), 0);
	assert_int_equal(corr_rules_load(&c, &rs, &e), QERR_CONFIG);
	if (strstr(e.msg, want) == NULL)
		fail_msg("'%s' does not contain '%s'", e.msg, want);
	config_clear(&c);
}

static void
errors_name_file_and_line(void **state)
{
	(void)state;
	expect_error("[correlation \"x\"]\nmatch = ad.cn = entra.upn\n",
	    "q.conf:2: [correlation \"x\"]: unknown attribute 'cn'");
	expect_error("[correlation \"x\"]\nmatch = ad.sid\n", "q.conf:2:");
	expect_error("[correlation \"x\"]\nmatch = adsid = entra.sid\n",
	    "'adsid' is not KIND.ATTRIBUTE");
	expect_error("[correlation \"x\"]\nfoo = 1\n", "q.conf:2: [correlation \"x\"]: "
	    "unknown key 'foo'");
	expect_error("\n[correlation \"x\"]\n", "q.conf:2: [correlation \"x\"]: match is "
	    "required");
	expect_error("[correlation \"manual\"]\nmatch = ad.sid = entra.sid\n",
	    "'manual' names manual links");
	expect_error("[correlation \"x\"]\nmatch = A+.sid = entra.sid\n", "bad kind");
}

static void
sync_interval_is_the_engines(void **state)
{
	struct config c;
	struct qerr e;

	(void)state;
	assert_int_equal(config_parse("q.conf", "[system \"a\"]\nkind = ad\n"
	    "sync_interval = 15m\n", &c, &e), 0);
	assert_int_equal(c.systems[0].sync_interval_ms, 15 * 60000L);
	assert_null(config_system_get(&c.systems[0], "sync_interval"));
	config_clear(&c);
	assert_int_equal(config_parse("q.conf", "[system \"a\"]\nsync_interval = 10s\n",
	    &c, &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:2: sync_interval must be"));
	assert_int_equal(config_parse("q.conf", "[system \"a\"]\nsync_interval = off\n"
	    "sync_interval = 1h\n", &c, &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:3:"));
}

static void
verdicts(void **state)
{
	struct corr_hits h[3];
	struct corr_current cur = { NULL, NULL, false };
	const char *id;
	size_t rule;

	(void)state;
	memset(h, 0, sizeof(h));
	assert_int_equal(corr_decide(&cur, h, 3, &rule, &id), CORR_NEW);
	corr_hits_add(&h[1], "idn_b", NULL);
	corr_hits_add(&h[2], "idn_c", NULL);
	corr_hits_add(&h[2], "idn_d", NULL);
	assert_int_equal(corr_decide(&cur, h, 3, &rule, &id), CORR_LINK);
	assert_int_equal(rule, 1);
	assert_string_equal(id, "idn_b");
	/* the strongest rule that found anything decides, even against a weaker one */
	memset(&h[1], 0, sizeof(h[1]));
	assert_int_equal(corr_decide(&cur, h, 3, &rule, &id), CORR_CONFLICT);
	assert_int_equal(rule, 2);
	/* duplicates and the excluded identity are not counted */
	memset(h, 0, sizeof(h));
	corr_hits_add(&h[0], "idn_a", NULL);
	corr_hits_add(&h[0], "idn_a", NULL);
	corr_hits_add(&h[0], "idn_self", "idn_self");
	assert_int_equal(h[0].n, 1);
	/* manual links stay, whatever matches */
	cur = (struct corr_current){ "idn_x", CORR_RULE_MANUAL, true };
	assert_int_equal(corr_decide(&cur, h, 3, &rule, &id), CORR_KEEP);
	/* an account linked by a rule stays */
	cur = (struct corr_current){ "idn_x", "upn", true };
	assert_int_equal(corr_decide(&cur, h, 3, &rule, &id), CORR_KEEP);
	/* a sole new account joins the identity a rule found */
	cur = (struct corr_current){ "idn_x", CORR_RULE_NEW, true };
	assert_int_equal(corr_decide(&cur, h, 3, &rule, &id), CORR_LINK);
	assert_string_equal(id, "idn_a");
	/* but not when others share its identity */
	cur.sole = false;
	assert_int_equal(corr_decide(&cur, h, 3, &rule, &id), CORR_KEEP);
	memset(h, 0, sizeof(h));
	assert_int_equal(corr_decide(&cur, h, 3, &rule, &id), CORR_KEEP);
}

static void
fold_bounds(void **state)
{
	char out[8];

	(void)state;
	assert_true(corr_fold("AbC", out, sizeof(out)));
	assert_string_equal(out, "abc");
	assert_false(corr_fold("", out, sizeof(out)));
	assert_false(corr_fold(NULL, out, sizeof(out)));
	assert_false(corr_fold("12345678", out, sizeof(out)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_probe_the_issue_pairs),
		cmocka_unit_test(bad_kind_rule_is_refused),
		cmocka_unit_test(sections_replace_defaults),
		cmocka_unit_test(errors_name_file_and_line),
		cmocka_unit_test(sync_interval_is_the_engines),
		cmocka_unit_test(verdicts),
		cmocka_unit_test(fold_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
