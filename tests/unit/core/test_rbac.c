/* Permission names and built-in roles. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/rbac.h"

static void
names_round_trip(void **state)
{
	unsigned p;
	int i;

	(void)state;
	for (i = 0; i < PERM_COUNT; i++) {
		assert_non_null(rbac_perm_name(1u << i));
		assert_int_equal(rbac_perm_parse(rbac_perm_name(1u << i), &p), 0);
		assert_int_equal(p, 1u << i);
	}
	assert_int_equal(rbac_perm_parse("response.*", &p), -1);
	assert_null(rbac_perm_name(3));
}

static void
builtin_roles(void **state)
{
	unsigned p;

	(void)state;
	assert_true(rbac_role_perms(NULL, "viewer", &p));
	assert_false(p & PERM_RESPONSE_MANAGE);
	assert_true(p & PERM_RESPONSE_READ);
	assert_true(rbac_role_perms(NULL, "responder", &p));
	assert_true(p & rbac_action_perm(ACTION_DISABLE));
	assert_false(p & PERM_SETTINGS_MANAGE);
	assert_true(rbac_role_perms(NULL, "admin", &p));
	assert_int_equal(p, PERM_ALL);
	assert_false(rbac_role_perms(NULL, "root", &p));
	assert_false(rbac_role_perms(NULL, NULL, &p));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_round_trip),
		cmocka_unit_test(builtin_roles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
