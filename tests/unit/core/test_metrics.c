/* The metrics registry renders the Prometheus text format exactly, and the log line
 * formats are what docs/operations.md says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/log.h"
#include "core/metrics.h"

static const double buckets[] = { 0.1, 1 };

static const struct metric_def defs[] = {
	{ "t_steps_total", "Steps.\nSecond line \\ here", METRIC_COUNTER, 2,
	    { "system", "outcome" }, NULL, 0 },
	{ "t_up", "Up.", METRIC_GAUGE, 1, { "system" }, NULL, 0 },
	{ "t_seconds", "Latency.", METRIC_HISTOGRAM, 1, { "system" }, buckets, 2 },
	{ "t_plain_total", "No labels.", METRIC_COUNTER, 0, { NULL }, NULL, 0 },
};

static void
test_render(void **state)
{
	struct metrics *m = NULL;
	struct mtext t = { 0 };

	(void)state;
	assert_int_equal(metrics_new(defs, 4, &m), 0);
	metrics_update(m, 0, METRIC_ADD, 1, "corp", "succeeded");
	metrics_update(m, 0, METRIC_ADD, 2, "corp", "succeeded");
	metrics_update(m, 0, METRIC_ADD, 1, "we\"ird\\\n", "failed");
	metrics_update(m, 1, METRIC_SET, 1, "corp");
	metrics_update(m, 1, METRIC_SET, 0, "corp");
	metrics_update(m, 2, METRIC_OBSERVE, 0.05, "corp");
	metrics_update(m, 2, METRIC_OBSERVE, 0.5, "corp");
	metrics_update(m, 2, METRIC_OBSERVE, 7, "corp");
	metrics_update(m, 3, METRIC_ADD, 1, NULL);
	metrics_render(m, &t);
	assert_false(t.oom);
	assert_string_equal(t.p,
	    "# HELP t_steps_total Steps.\\nSecond line \\\\ here\n"
	    "# TYPE t_steps_total counter\n"
	    "t_steps_total{system=\"corp\",outcome=\"succeeded\"} 3\n"
	    "t_steps_total{system=\"we\\\"ird\\\\\\n\",outcome=\"failed\"} 1\n"
	    "# HELP t_up Up.\n"
	    "# TYPE t_up gauge\n"
	    "t_up{system=\"corp\"} 0\n"
	    "# HELP t_seconds Latency.\n"
	    "# TYPE t_seconds histogram\n"
	    "t_seconds_bucket{system=\"corp\",le=\"0.1\"} 1\n"
	    "t_seconds_bucket{system=\"corp\",le=\"1\"} 2\n"
	    "t_seconds_bucket{system=\"corp\",le=\"+Inf\"} 3\n"
	    "t_seconds_sum{system=\"corp\"} 7.5499999999999998\n"
	    "t_seconds_count{system=\"corp\"} 3\n"
	    "# HELP t_plain_total No labels.\n"
	    "# TYPE t_plain_total counter\n"
	    "t_plain_total 1\n");
	mtext_clear(&t);
	metrics_free(m);
	metrics_free(NULL);
	mtext_clear(NULL);
}

static void
test_null_registry(void **state)
{
	struct mtext t = { 0 };

	(void)state;
	/* Before quelld installs the registry every update is a no-op. */
	metrics_update(NULL, 0, METRIC_ADD, 1, "x", "y");
	metrics_update(NULL, 2, METRIC_OBSERVE, 1, "x");
	metrics_render(NULL, &t);
	assert_null(t.p);
}

static void
test_sample_writer(void **state)
{
	static const char *const keys[] = { "type", "status" };
	static const char *const vals[] = { "disable", "completed" };
	struct mtext t = { 0 };

	(void)state;
	mtext_family(&t, "q_actions_total", "counter", "Actions.");
	mtext_sample(&t, "q_actions_total", keys, vals, 2, 4);
	mtext_sample(&t, "q_age_seconds", NULL, NULL, 0, 1.5);
	assert_string_equal(t.p, "# HELP q_actions_total Actions.\n"
	    "# TYPE q_actions_total counter\n"
	    "q_actions_total{type=\"disable\",status=\"completed\"} 4\n"
	    "q_age_seconds 1.5\n");
	mtext_clear(&t);
}

static void
test_log_text(void **state)
{
	const struct log_field f[] = {
		LOG_S("id", "act_1"), LOG_S("who", "Ann O'Neil"), LOG_I("attempt", 3),
		LOG_S("absent", NULL), LOG_B("ok", true), LOG_S("eq", "a=b"),
	};
	struct log_record rec = { LOG_LVL_WARN, "step.retry", "retrying", f, 6 };
	char buf[512];

	(void)state;
	log_format_line(buf, sizeof(buf), false, "2026-01-01T00:00:00.000Z", &rec);
	assert_string_equal(buf, "2026-01-01T00:00:00.000Z quelld warn: retrying "
	    "event=step.retry id=act_1 who=\"Ann O'Neil\" attempt=3 ok=true eq=\"a=b\"");
	rec.nfields = 0;
	rec.msg = "line\nbreak";
	log_format_line(buf, sizeof(buf), false, NULL, &rec);
	assert_string_equal(buf, "quelld warn: line\\nbreak");
}

static void
test_log_json(void **state)
{
	const struct log_field f[] = {
		LOG_S("name", "quo\"te\n\x01"), LOG_I("n", -2), LOG_N("s", 1.5),
	};
	struct log_record rec = { LOG_LVL_INFO, "sync.finished", "done \\", f, 3 };
	char buf[512], small[80];
	json_t *o;

	(void)state;
	log_format_line(buf, sizeof(buf), true, "T", &rec);
	assert_non_null(o = json_loads(buf, 0, NULL));
	assert_string_equal(json_string_value(json_object_get(o, "ts")), "T");
	assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
	assert_string_equal(json_string_value(json_object_get(o, "event")), "sync.finished");
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "done \\");
	assert_string_equal(json_string_value(json_object_get(o, "name")), "quo\"te\n\x01");
	assert_int_equal(json_integer_value(json_object_get(o, "n")), -2);
	assert_true(json_real_value(json_object_get(o, "s")) == 1.5);
	json_decref(o);
	/* Too long for the buffer: still one JSON object, without the fields. */
	log_format_line(small, 70, true, "T", &rec);
	assert_non_null(o = json_loads(small, 0, NULL));
	assert_null(json_object_get(o, "name"));
	json_decref(o);
}

static void
test_log_levels(void **state)
{
	enum log_level l;

	(void)state;
	assert_int_equal(log_level_parse("warn", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("verbose", &l), -1);
	assert_string_equal(log_level_name(LOG_LVL_ERROR), "error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_null_registry),
		cmocka_unit_test(test_sample_writer),
		cmocka_unit_test(test_log_text),
		cmocka_unit_test(test_log_json),
		cmocka_unit_test(test_log_levels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
