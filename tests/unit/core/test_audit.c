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

/* Format 2 covers who acted (kind, stable id) and from where; a format 1 entry
 * hashes as it always did, and no field can be dropped or changed unnoticed. */
static void
format2_covers_principal_and_client(void **state)
{
	struct audit_entry e;
	struct qerr err;
	char *c1, *c2, h1[65];

	(void)state;
	entry(&e, 1, "{}");
	c1 = audit_canonical(&e);
	e.format = 1;
	c2 = audit_canonical(&e);
	assert_string_equal(c1, c2);
	assert_null(strstr(c1, "actor_kind"));
	free(c1);
	free(c2);

	e.format = AUDIT_FORMAT;
	e.actor_kind = "token";
	e.actor_id = "qt_1";
	e.client = "127.0.0.1";
	c1 = audit_canonical(&e);
	assert_non_null(strstr(c1, "\"actor_id\":\"qt_1\""));
	assert_non_null(strstr(c1, "\"actor_kind\":\"token\""));
	assert_non_null(strstr(c1, "\"client\":\"127.0.0.1\""));
	assert_non_null(strstr(c1, "\"v\":2"));
	free(c1);
	assert_int_equal(audit_seal(&e, audit_genesis, &err), 0);
	memcpy(h1, e.hash, sizeof(h1));
	assert_int_equal(audit_check(&e, audit_genesis, 1, &err), 0);

	e.actor_kind = "jwt";
	assert_int_equal(audit_check(&e, audit_genesis, 1, &err), QERR_CONFLICT);
	e.actor_kind = "token";
	e.actor_id = "qt_2";
	assert_int_equal(audit_check(&e, audit_genesis, 1, &err), QERR_CONFLICT);
	e.actor_id = "qt_1";
	e.client = "10.0.0.1";
	assert_int_equal(audit_check(&e, audit_genesis, 1, &err), QERR_CONFLICT);
	e.client = "127.0.0.1";
	/* Passing a new entry off as an old one (format 1) does not verify either. */
	e.format = 1;
	assert_int_equal(audit_check(&e, audit_genesis, 1, &err), QERR_CONFLICT);
	e.format = AUDIT_FORMAT;
	assert_int_equal(audit_check(&e, audit_genesis, 1, &err), 0);
	assert_string_equal(e.hash, h1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(canonical_is_sorted_and_stable),
		cmocka_unit_test(chain_verifies_and_detects_tampering),
		cmocka_unit_test(format2_covers_principal_and_client),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
