/* The audit chain: stable canonical form, sealing, and detection of any change. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/audit.h"

static void
entry(struct audit_entry *e, int64_t seq, const char *detail)
{
	memset(e, 0, sizeof(*e));
	e->seq = seq;
	e->time = 1764057600000 + seq;
	e->actor = "alice";
	e->event = "action.requested";
	e->action_id = "act_1";
	e->detail = (char *)detail;
}

static void
canonical_is_sorted_and_stable(void **state)
{
	struct audit_entry a, b;
	char *ca, *cb;

	(void)state;
	entry(&a, 1, "{\"b\":1,\"a\":\"\\u00e9\"}");
	entry(&b, 1, "{ \"a\" : \"\xc3\xa9\", \"b\" : 1 }");
	ca = audit_canonical(&a);
	cb = audit_canonical(&b);
	assert_non_null(ca);
	assert_string_equal(ca, cb);
	assert_string_equal(ca, "{\"action_id\":\"act_1\",\"actor\":\"alice\",\"detail\":"
	    "{\"a\":\"\\u00E9\",\"b\":1},\"event\":\"action.requested\",\"identity_id\":null,"
	    "\"seq\":1,\"step_id\":null,\"time\":1764057600001}");
	free(ca);
	free(cb);
	entry(&a, 1, "[1]");
	assert_null(audit_canonical(&a));
}

static void
chain_verifies_and_detects_tampering(void **state)
{
	struct audit_entry e[3];
	struct qerr err;
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		entry(&e[i], i + 1, "{\"n\":1}");
		assert_int_equal(audit_seal(&e[i], i ? e[i - 1].hash : audit_genesis, &err), 0);
	}
	assert_int_equal(audit_check(&e[0], audit_genesis, 1, &err), 0);
	assert_int_equal(audit_check(&e[1], e[0].hash, 2, &err), 0);
	assert_int_equal(audit_check(&e[2], e[1].hash, 3, &err), 0);
	assert_string_not_equal(e[1].hash, e[2].hash);

	e[1].actor = "mallory";
	assert_int_equal(audit_check(&e[1], e[0].hash, 2, &err), QERR_CONFLICT);
	assert_string_equal(err.msg, "entry 2: content does not match its hash (altered)");
	e[1].actor = "alice";
	assert_int_equal(audit_check(&e[2], e[0].hash, 3, &err), QERR_CONFLICT);
	assert_string_equal(err.msg,
	    "entry 3: prev_hash does not match the hash of entry 2");
	assert_int_equal(audit_check(&e[2], e[1].hash, 2, &err), QERR_CONFLICT);
	assert_string_equal(err.msg,
	    "entry 3: expected sequence number 2 (an entry is missing)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(canonical_is_sorted_and_stable),
		cmocka_unit_test(chain_verifies_and_detects_tampering),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
