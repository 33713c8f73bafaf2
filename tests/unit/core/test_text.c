/* UTF-8 validation, printable text, RFC 3339 times and ids. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/id.h"
#include "core/text.h"

static bool
valid(const char *s)
{
	return text_utf8_valid(s, strlen(s));
}

static void
utf8(void **state)
{
	(void)state;
	assert_true(valid("plain"));
	assert_true(valid("Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x94\x92"));
	assert_false(valid("\xc3"));			/* truncated */
	assert_false(valid("\xe2\x82"));		/* truncated */
	assert_false(valid("\xc0\xaf"));		/* overlong '/' */
	assert_false(valid("\xe0\x80\xaf"));		/* overlong */
	assert_false(valid("\xed\xa0\x80"));		/* surrogate */
	assert_false(valid("\xf4\x90\x80\x80"));	/* above U+10FFFF */
	assert_false(valid("\xff"));
	assert_false(valid("a\x80"));
	assert_true(text_printable("tab\there", true));
	assert_false(text_printable("tab\there", false));
	assert_false(text_printable("new\nline", true));
	assert_false(text_printable("del\x7f", true));
	assert_false(text_printable("nel\xc2\x85", true));
	assert_false(text_printable("csi\xc2\x9b", true));
	assert_true(text_printable("nbsp\xc2\xa0", true));
	/* bidirectional controls: U+202A..U+202E and U+2066..U+2069, at both ends */
	assert_false(text_printable("lre\xe2\x80\xaa", true));
	assert_false(text_printable("rlo\xe2\x80\xaetxt.exe", true));
	assert_false(text_printable("\xe2\x81\xa6lri", true));
	assert_false(text_printable("pdi\xe2\x81\xa9", true));
	assert_false(text_printable_lines("SELECT 1 -- \xe2\x80\xae\n"));
	/* their neighbours are ordinary text */
	assert_true(text_printable("zwj\xe2\x80\x8d \xe2\x80\xa9 \xe2\x80\xaf", true));
	assert_true(text_printable("\xe2\x81\xa5 \xe2\x81\xaa \xe2\x82\xac", true));
	assert_true(text_printable_lines("SELECT 1\n\tFROM x\r\n"));
	assert_false(text_printable_lines("esc\x1b[2J"));
	assert_false(text_printable_lines("nul\x01"));
	assert_false(text_printable_lines("nel\xc2\x85"));
	assert_false(text_printable_lines("bad\xff"));
}

static void
truncation(void **state)
{
	char a[] = "abc\xe2\x82\xac", b[] = "abc\xe2\x82\xac", c[] = "abc";

	(void)state;
	text_utf8_truncate(a, 5);	/* inside the euro sign: it goes whole */
	assert_string_equal(a, "abc");
	text_utf8_truncate(b, 6);
	assert_string_equal(b, "abc\xe2\x82\xac");
	text_utf8_truncate(c, 2);
	assert_string_equal(c, "ab");
}

static void
times(void **state)
{
	char buf[TEXT_TIME_LEN];
	int64_t ms;

	(void)state;
	text_time_format(1764057600123, buf);
	assert_string_equal(buf, "2025-11-25T08:00:00.123Z");
	assert_int_equal(text_time_parse(buf, &ms), 0);
	assert_int_equal(ms, 1764057600123);
	assert_int_equal(text_time_parse("2025-11-25T09:00:00+01:00", &ms), 0);
	assert_int_equal(ms, 1764057600000);
	assert_int_equal(text_time_parse("2025-11-25T08:00:00.5Z", &ms), 0);
	assert_int_equal(ms, 1764057600500);
	assert_int_equal(text_time_parse("2025-11-25", &ms), -1);
	assert_int_equal(text_time_parse("2025-13-25T08:00:00Z", &ms), -1);
	assert_int_equal(text_time_parse("2025-11-25T08:00:00Zjunk", &ms), -1);
	assert_int_equal(text_time_parse("yesterday", &ms), -1);
}

static void
ids(void **state)
{
	char a[ID_LEN], b[ID_LEN];

	(void)state;
	id_make(a, "act", 1764057600123);
	id_make(b, "act", 1764057600124);
	assert_true(id_valid(a, "act"));
	assert_false(id_valid(a, "idn"));
	assert_true(strcmp(a, b) < 0);
	assert_int_equal(strlen(a), 28);
	assert_false(id_valid("act_0123", "act"));
	assert_false(id_valid("act_0123456789abcdef0123456G", "act"));
	assert_false(id_valid("act_0123456789abcdef01234567'", "act"));
}

static void
trim_and_spans(void **state)
{
	char s[] = " \t key = v \r";

	(void)state;
	assert_string_equal(text_trim(s), "key = v");
	assert_int_equal(text_span_ms("90s", 86400000), 90000);
	assert_int_equal(text_span_ms("2h", 86400000), 7200000);
	assert_int_equal(text_span_ms("1d", 86400000), 86400000);
	assert_int_equal(text_span_ms("2d", 86400000), -1);
	assert_int_equal(text_span_ms("0m", 86400000), -1);
	assert_int_equal(text_span_ms("5", 86400000), -1);
	assert_int_equal(text_span_ms("5mm", 86400000), -1);
	assert_int_equal(text_span_ms("5w", 86400000), -1);
	assert_int_equal(text_span_ms("m", 86400000), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(utf8),
		cmocka_unit_test(truncation),
		cmocka_unit_test(times),
		cmocka_unit_test(ids),
		cmocka_unit_test(trim_and_spans),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
