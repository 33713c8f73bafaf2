/* The kinds' descriptors: alert id type lookup across kinds, and the shared checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/kind.h"

static const struct kind_alert_id a_ids[] = {
	{ "upn", KIND_MATCH_UPN, "a upn", kind_valid_upn },
	{ "a_id", KIND_MATCH_EXTERNAL_ID, "an a_id", NULL },
};
static const struct kind_alert_id b_ids[] = {
	{ "upn", KIND_MATCH_UPN, "a upn", kind_valid_upn },
	{ "b_id", KIND_MATCH_EXTERNAL_ID, "a b_id", kind_valid_guid },
};
static const struct kind_info a = { .kind = "a", .alert_ids = a_ids, .nalert_ids = 2 };
static const struct kind_info b = { .kind = "b", .alert_ids = b_ids, .nalert_ids = 2 };
static const struct kind_info *const both[] = { &a, &b };

static void
id_types_are_found_with_their_kind(void **state)
{
	struct kind_table t = { both, 2 };
	const struct kind_info *owner = NULL;
	const struct kind_alert_id *id;
	char list[64];

	(void)state;
	id = kind_alert_id_find(&t, "b_id", &owner);
	assert_non_null(id);
	assert_ptr_equal(owner, &b);
	assert_int_equal(id->match, KIND_MATCH_EXTERNAL_ID);
	assert_ptr_equal(kind_alert_id_find(&t, "upn", &owner), &a_ids[0]);
	assert_null(kind_alert_id_find(&t, "sid", &owner));
	assert_null(kind_alert_id_find(NULL, "upn", &owner));
	kind_alert_id_list(&t, list, sizeof(list));
	assert_string_equal(list, "upn, a_id, b_id");
	kind_alert_id_list(&t, list, 6);
	assert_string_equal(list, "upn");
	assert_ptr_equal(kind_find(&t, "b"), &b);
	assert_null(kind_find(&t, "c"));
}

static void
shared_checks(void **state)
{
	char guid[] = "0AB1C2D3-0000-4000-8000-00000000000F", bad[] = "0ab1c2d3-0000";
	char sid[] = "S-1-5-21-1-2-3-1104", sid2[] = "S-1-5--1", upn[] = "a@b",
	    upn2[] = "a b@c";

	(void)state;
	assert_true(kind_valid_guid(guid));
	assert_string_equal(guid, "0ab1c2d3-0000-4000-8000-00000000000f");
	assert_false(kind_valid_guid(bad));
	assert_true(kind_valid_sid(sid));
	assert_false(kind_valid_sid(sid2));
	assert_true(kind_valid_upn(upn));
	assert_false(kind_valid_upn(upn2));
}

static void
ref_shapes(void **state)
{
	(void)state;
	assert_true(kind_ref_guid("6F1C0A4E-2b7d-4c1a-9f00-0123456789ab"));
	assert_false(kind_ref_guid("CN=Admin,DC=corp"));
	assert_true(kind_ref_alnum("00u1abcDEF"));
	assert_false(kind_ref_alnum("00u1/lifecycle"));
	assert_false(kind_ref_alnum(""));
	assert_true(kind_ref_segment("2819c223-7f76-453a-919d-413861904646"));
	assert_false(kind_ref_segment("a b"));
	assert_false(kind_ref_segment("x%2F"));
	assert_false(kind_ref_segment("../x"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(id_types_are_found_with_their_kind),
		cmocka_unit_test(shared_checks),
		cmocka_unit_test(ref_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
