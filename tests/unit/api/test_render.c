/*
 * render_action_text is the hot read's shortcut past jansson: its text must be the
 * very bytes json_dumps(JSON_COMPACT) makes of render_action plus the extra members,
 * and it must give up (NULL) where only jansson knows the answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/render.h"

static struct step
step_of(const char *id, enum step_status status)
{
	struct step s;

	memset(&s, 0, sizeof(s));
	s.id = (char *)id;
	s.account_id = "acc_1";
	s.system = "corp";
	s.account_name = "jdoe";
	s.type = ACTION_DISABLE;
	s.status = status;
	s.attempts = 3;
	s.waits = 2;
	s.wait_ms = 4500;
	s.not_before = 1764662400123;
	s.created_at = 1764662400000;
	s.started_at = 1764662401000;
	return s;
}

static struct action
action_of(struct step *steps, size_t n)
{
	struct action a;

	memset(&a, 0, sizeof(a));
	a.id = "act_1";
	a.type = ACTION_DISABLE;
	a.status = ACTION_PENDING_APPROVAL;
	a.identity_id = "idn_1";
	a.requested_by = "bench";
	a.source = "api";
	a.reason = "bench";
	a.params = "{}";
	a.approval_expires = 1764748800000;
	a.created_at = a.updated_at = 1764662400000;
	a.steps = steps;
	a.nsteps = n;
	return a;
}

/* What the text must equal: render_action's object with extra added, dumped. */
static char *
via_jansson(const struct action *a, const struct render_member *extra, size_t n)
{
	json_t *o = render_action(a, true);
	char *d;
	size_t i;

	assert_non_null(o);
	for (i = 0; i < n; i++)
		json_object_set_new(o, extra[i].key, extra[i].s ? json_string(extra[i].s) :
		    json_null());
	d = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return d;
}

static void
assert_same(const struct action *a, const struct render_member *extra, size_t n)
{
	char *want = via_jansson(a, extra, n), *got = render_action_text(a, extra, n);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(want);
	free(got);
}

static void
test_plain_action_matches_jansson(void **state)
{
	struct step s[2] = { step_of("stp_1", STEP_QUEUED), step_of("stp_2",
	    STEP_RETRY_WAIT) };
	struct render_member names[2] = {
		{ "identity_name", RENDER_STR, "Jane Doe", 0, false },
		{ "account_name", RENDER_STR, NULL, 0, false },
	};
	struct action a = action_of(s, 2);

	(void)state;
	assert_same(&a, names, 2);
	a.status = ACTION_COMPLETED;
	a.finished_at = 1764662409999;
	a.nsteps = 0;
	assert_same(&a, names, 2);
	a.nsteps = 1;
	assert_same(&a, NULL, 0);
	/* Numbers at their bounds, written digit by digit. */
	s[0].attempts = -1;
	s[0].waits = 0;
	s[0].wait_ms = INT64_MIN;
	assert_same(&a, NULL, 0);
	s[0].attempts = 2147483647;
	s[0].wait_ms = INT64_MAX;
	assert_same(&a, NULL, 0);
}

static void
test_every_member_set_and_escaped(void **state)
{
	struct step s = step_of("stp_1", STEP_FAILED);
	struct render_member names[1] = {
		{ "identity_name", RENDER_STR, "Zoë \"Z\" Ünal\\", 0, false },
	};
	struct action a = action_of(&s, 1);

	(void)state;
	a.account_id = "acc_1";
	a.reason = "line one\nline two\ttab \x01\x1f end / slash";
	a.message = "日本語 and emoji \xf0\x9f\x94\x92";
	a.cancel_requested = true;
	a.requested_by_id = "qt_1";
	a.requested_by_kind = "token";
	a.undo_of = "act_0";
	a.approval_rule = "hold";
	a.decided_by = "alice";
	a.decided_by_id = "qt_2";
	a.decided_by_kind = "session";
	a.alert_id = "alr_1";
	a.params = "{\"b\": [1, 2.5, {\"x\": null}], \"a\": \"\\u00e9\", \"b\": true}";
	s.request_id = "req-1";
	s.error_code = "LDAP_\"50\"";
	s.message = "insufficient access\r\n";
	s.finished_at = 1764662402000;
	assert_same(&a, names, 1);
	/* Stored params that do not parse render as {}. */
	a.params = "not json";
	assert_same(&a, names, 1);
	a.params = NULL;
	assert_same(&a, names, 1);
}

static void
test_not_utf8_is_left_to_jansson(void **state)
{
	struct step s = step_of("stp_1", STEP_QUEUED);
	struct render_member names[1] = {
		{ "identity_name", RENDER_STR, "bad \xc3\x28 name", 0, false },
	};
	struct action a = action_of(&s, 1);

	(void)state;
	assert_null(render_action_text(&a, names, 1));
	names[0].s = "fine";
	s.message = "overlong \xc0\xaf";
	assert_null(render_action_text(&a, names, 1));
	s.message = NULL;
	a.decided_by = "\xed\xa0\x80 surrogate";
	assert_null(render_action_text(&a, names, 1));
	/* jansson leaves such an optional member out rather than failing the action. */
	{
		json_t *o = render_action(&a, true);

		assert_non_null(o);
		assert_null(json_object_get(o, "decided_by"));
		json_decref(o);
	}
	a.decided_by = NULL;
	a.requested_by = NULL;
	assert_null(render_action_text(&a, names, 1));
	assert_null(render_action(&a, true));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_action_matches_jansson),
		cmocka_unit_test(test_every_member_set_and_escaped),
		cmocka_unit_test(test_not_utf8_is_left_to_jansson),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
