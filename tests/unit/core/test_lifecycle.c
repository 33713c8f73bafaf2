/* Planning steps over an identity's accounts, and rolling step states up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/backoff.h"
#include "core/lifecycle.h"

static struct account accts[3] = {
	{ .id = "acc_1", .system = "corp", .kind = "ad", .external_id = "g1",
	    .username = "alice" },
	{ .id = "acc_2", .system = "cloud", .kind = "entra", .external_id = "e1",
	    .upn = "alice@x", .synced = true },
	{ .id = "acc_3", .system = "corp2", .kind = "ad", .external_id = "g2" },
};

/* AD systems support disable and force_password_change; others only disable. */
static bool
supports(void *arg, const struct account *a, enum action_type t)
{
	(void)arg;
	if (t == ACTION_DISABLE)
		return true;
	return t == ACTION_FORCE_PASSWORD_CHANGE && strcmp(a->kind, "ad") == 0;
}

static void
init(struct action *a, enum action_type t, const char *account_id)
{
	memset(a, 0, sizeof(*a));
	a->id = strdup("act_x");
	a->identity_id = strdup("idn_x");
	a->account_id = account_id ? strdup(account_id) : NULL;
	a->type = t;
	a->params = strdup("{\"clear_dont_expire\":true}");
	a->created_at = 1000;
}

static void
plans_one_step_per_account(void **state)
{
	struct action a;
	struct qerr e;

	(void)state;
	init(&a, ACTION_FORCE_PASSWORD_CHANGE, NULL);
	assert_int_equal(lifecycle_plan(&a, accts, 3, supports, NULL, &e), 0);
	assert_int_equal(a.nsteps, 3);
	assert_int_equal(a.steps[0].status, STEP_QUEUED);
	assert_string_equal(a.steps[0].account_ref, "g1");
	assert_string_equal(a.steps[0].account_name, "alice");
	assert_string_equal(a.steps[0].params, "{\"clear_dont_expire\":true}");
	assert_int_equal(a.steps[1].status, STEP_NOT_APPLICABLE);
	assert_string_equal(a.steps[1].message,
	    "force_password_change is not supported by cloud (entra)");
	assert_string_equal(a.steps[1].account_name, "alice@x");
	assert_string_equal(a.steps[1].params,
	    "{\"clear_dont_expire\":true,\"synced\":true}");
	assert_int_equal(a.steps[2].status, STEP_QUEUED);
	assert_string_not_equal(a.steps[0].id, a.steps[2].id);
	action_clear(&a);
}

static void
named_account_only(void **state)
{
	struct action a;
	struct qerr e;

	(void)state;
	init(&a, ACTION_DISABLE, "acc_2");
	assert_int_equal(lifecycle_plan(&a, accts, 3, supports, NULL, &e), 0);
	assert_int_equal(a.nsteps, 1);
	assert_string_equal(a.steps[0].account_id, "acc_2");
	action_clear(&a);

	init(&a, ACTION_FORCE_PASSWORD_CHANGE, "acc_2");
	assert_int_equal(lifecycle_plan(&a, accts, 3, supports, NULL, &e), QERR_UNSUPPORTED);
	assert_string_equal(e.field, "type");
	assert_int_equal(a.nsteps, 0);
	action_clear(&a);

	init(&a, ACTION_DISABLE, "acc_9");
	assert_int_equal(lifecycle_plan(&a, accts, 3, supports, NULL, &e), QERR_NOT_FOUND);
	assert_string_equal(e.field, "account_id");
	action_clear(&a);
}

static void
refuses_when_nothing_supports(void **state)
{
	struct action a;
	struct qerr e;

	(void)state;
	init(&a, ACTION_SET_RISK, NULL);
	assert_int_equal(lifecycle_plan(&a, accts, 3, supports, NULL, &e), QERR_UNSUPPORTED);
	assert_int_equal(a.nsteps, 0);
	action_clear(&a);
	init(&a, ACTION_DISABLE, NULL);
	assert_int_equal(lifecycle_plan(&a, accts, 0, supports, NULL, &e), QERR_INVALID);
	assert_string_equal(e.field, "identity_id");
	action_clear(&a);
}

static enum action_status
rollup_of(const enum step_status *st, size_t n)
{
	struct step steps[8];
	struct action a = { .steps = steps, .nsteps = n };
	char msg[128];
	size_t i;

	memset(steps, 0, sizeof(steps));
	for (i = 0; i < n; i++)
		steps[i].status = st[i];
	return lifecycle_rollup(&a, msg, sizeof(msg));
}

static void
rollup(void **state)
{
	(void)state;
	assert_int_equal(rollup_of((enum step_status[]){ STEP_QUEUED, STEP_NOT_APPLICABLE },
	    2), ACTION_QUEUED);
	assert_int_equal(rollup_of((enum step_status[]){ STEP_RUNNING, STEP_QUEUED }, 2),
	    ACTION_RUNNING);
	assert_int_equal(rollup_of((enum step_status[]){ STEP_RETRY_WAIT }, 1),
	    ACTION_RUNNING);
	assert_int_equal(rollup_of((enum step_status[]){ STEP_SUCCEEDED,
	    STEP_NOT_APPLICABLE }, 2), ACTION_COMPLETED);
	assert_int_equal(rollup_of((enum step_status[]){ STEP_SUCCEEDED, STEP_FAILED }, 2),
	    ACTION_PARTIALLY_COMPLETED);
	assert_int_equal(rollup_of((enum step_status[]){ STEP_SUCCEEDED, STEP_CANCELLED },
	    2), ACTION_PARTIALLY_COMPLETED);
	assert_int_equal(rollup_of((enum step_status[]){ STEP_FAILED, STEP_CANCELLED }, 2),
	    ACTION_FAILED);
	assert_int_equal(rollup_of((enum step_status[]){ STEP_CANCELLED,
	    STEP_NOT_APPLICABLE }, 2), ACTION_CANCELLED);
}

static void
backoff_grows_with_jitter_and_caps(void **state)
{
	int64_t d;
	uint32_t r;

	(void)state;
	for (r = 0; r < 2000; r += 7) {
		d = backoff_delay_ms(1, 500, 30000, r);
		assert_true(d >= 250 && d <= 500);
		d = backoff_delay_ms(4, 500, 30000, r);
		assert_true(d >= 250 && d <= 4000);
		d = backoff_delay_ms(40, 500, 30000, r * 99991u);
		assert_true(d >= 250 && d <= 30000);
	}
	assert_int_equal(backoff_delay_ms(4, 500, 30000, 3750), 4000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plans_one_step_per_account),
		cmocka_unit_test(named_account_only),
		cmocka_unit_test(refuses_when_nothing_supports),
		cmocka_unit_test(rollup),
		cmocka_unit_test(backoff_grows_with_jitter_and_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
