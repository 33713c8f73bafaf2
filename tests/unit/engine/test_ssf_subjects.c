/*
 * An SSF stream's subjects (src/engine/ssf_subjects.c): which RFC 9493 subjects are
 * taken and why the others are not, which accounts each names, and how add and
 * remove change a stream under default_subjects ALL and NONE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "engine/ssf.h"

#define ISS "https://quell.example"

static json_t *
j(const char *text)
{
	json_t *o = json_loads(text, 0, NULL);

	assert_non_null(o);
	return o;
}

static struct account
alice(void)
{
	struct account a;

	memset(&a, 0, sizeof(a));
	a.id = "acc_1";
	a.system = "corp";
	a.external_id = "guid-1";
	a.upn = "Alice@corp.example";
	a.email = "alice@mail.example";
	return a;
}

static void
check(const char *text, bool ok, const char *why_has)
{
	json_t *s = j(text);
	char why[160] = "";

	assert_int_equal(ssf_subject_check(s, why, sizeof(why)), ok ? 0 : -1);
	if (why_has != NULL)
		assert_non_null(strstr(why, why_has));
	json_decref(s);
}

static void
test_check(void **state)
{
	(void)state;
	check("{\"format\":\"email\",\"email\":\"a@b.example\"}", true, NULL);
	check("{\"format\":\"email\",\"email\":\"nobody\"}", false, "email");
	check("{\"format\":\"email\",\"email\":\"a@b@c\"}", false, "email");
	check("{\"format\":\"email\"}", false, "email");
	check("{\"format\":\"account\",\"uri\":\"acct:a@b.example\"}", true, NULL);
	check("{\"format\":\"account\",\"uri\":\"mailto:a@b.example\"}", false, "acct:");
	check("{\"format\":\"iss_sub\",\"iss\":\"" ISS "\",\"sub\":\"x\"}", true, NULL);
	check("{\"format\":\"iss_sub\",\"iss\":\"" ISS "\"}", false, "sub");
	check("{\"format\":\"opaque\",\"id\":\"\"}", false, "id");
	check("{\"format\":\"phone_number\",\"phone_number\":\"+1\"}", false,
	    "phone_number");
	check("{\"email\":\"a@b.example\"}", false, "format");
	check("{\"format\":\"complex\",\"user\":{\"format\":\"email\",\"email\":\"a@b.c\"},"
	    "\"tenant\":{\"format\":\"opaque\",\"id\":\"corp\"}}", true, NULL);
	check("{\"format\":\"complex\"}", false, "user or tenant");
	check("{\"format\":\"complex\",\"device\":{\"format\":\"opaque\",\"id\":\"d\"}}",
	    false, "device");
	check("{\"format\":\"complex\",\"user\":{\"format\":\"complex\"}}", false,
	    "complex");
	check("{\"format\":\"aliases\",\"identifiers\":[{\"format\":\"opaque\","
	    "\"id\":\"x\"},{\"format\":\"email\",\"email\":\"a@b.c\"}]}", true, NULL);
	check("{\"format\":\"aliases\",\"identifiers\":[]}", false, "identifiers");
}

static bool
names(const char *text)
{
	struct account a = alice();
	json_t *s = j(text);
	bool r = ssf_subject_names(s, &a, ISS);

	json_decref(s);
	return r;
}

static void
test_names(void **state)
{
	(void)state;
	assert_true(names("{\"format\":\"email\",\"email\":\"ALICE@mail.example\"}"));
	assert_true(names("{\"format\":\"email\",\"email\":\"alice@corp.example\"}"));
	assert_false(names("{\"format\":\"email\",\"email\":\"bob@corp.example\"}"));
	assert_true(names("{\"format\":\"account\",\"uri\":\"acct:alice@corp.example\"}"));
	assert_true(names("{\"format\":\"iss_sub\",\"iss\":\"" ISS "\",\"sub\":\"guid-1\"}"));
	assert_false(names("{\"format\":\"iss_sub\",\"iss\":\"https://other\","
	    "\"sub\":\"guid-1\"}"));
	assert_true(names("{\"format\":\"opaque\",\"id\":\"guid-1\"}"));
	assert_true(names("{\"format\":\"opaque\",\"id\":\"acc_1\"}"));
	assert_true(names("{\"format\":\"complex\",\"user\":{\"format\":\"opaque\","
	    "\"id\":\"guid-1\"},\"tenant\":{\"format\":\"opaque\",\"id\":\"corp\"}}"));
	assert_false(names("{\"format\":\"complex\",\"user\":{\"format\":\"opaque\","
	    "\"id\":\"guid-1\"},\"tenant\":{\"format\":\"opaque\",\"id\":\"cloud\"}}"));
	assert_true(names("{\"format\":\"complex\",\"tenant\":{\"format\":\"opaque\","
	    "\"id\":\"corp\"}}"));
	assert_true(names("{\"format\":\"aliases\",\"identifiers\":[{\"format\":\"opaque\","
	    "\"id\":\"nope\"},{\"format\":\"email\",\"email\":\"alice@mail.example\"}]}"));
	assert_false(names("{\"format\":\"aliases\",\"identifiers\":[{\"format\":"
	    "\"opaque\",\"id\":\"nope\"}]}"));
}

static json_t *
stream(const char *dflt)
{
	json_t *st = json_pack("{s:s, s:o}", "stream_id", "ssf_1", SSF_SUBJECTS_KEY,
	    ssf_subjects_new(dflt));

	assert_non_null(st);
	return st;
}

static int
edit(json_t *st, const char *sub, bool add)
{
	json_t *s = j(sub);
	char why[160];
	int r = ssf_stream_subject_edit(st, s, add, why, sizeof(why));

	json_decref(s);
	return r;
}

#define ALICE "{\"format\":\"email\",\"email\":\"Alice@Corp.example\"}"

static void
test_default_all(void **state)
{
	struct account a = alice();
	json_t *st = stream("ALL"), *old = j("{\"stream_id\":\"ssf_0\"}");

	(void)state;
	assert_true(ssf_stream_includes(st, &a, ISS));
	/* A stream made before subjects were kept is ALL. */
	assert_true(ssf_stream_includes(old, &a, ISS));
	assert_int_equal(edit(st, ALICE, false), 0);
	assert_false(ssf_stream_includes(st, &a, ISS));
	/* The same address in another case is the same subject: kept once. */
	assert_int_equal(edit(st, "{\"format\":\"email\",\"email\":\"alice@corp.example\"}",
	    false), 0);
	assert_int_equal(json_array_size(json_object_get(json_object_get(st,
	    SSF_SUBJECTS_KEY), "except")), 1);
	assert_int_equal(edit(st, "{\"format\":\"email\",\"email\":\"ALICE@corp.example\"}",
	    true), 0);
	assert_true(ssf_stream_includes(st, &a, ISS));
	/* Adding what is in already changes nothing. */
	assert_int_equal(edit(st, ALICE, true), 0);
	assert_true(ssf_stream_includes(st, &a, ISS));
	json_decref(old);
	json_decref(st);
}

static void
test_default_none(void **state)
{
	struct account a = alice();
	json_t *st = stream("NONE");

	(void)state;
	assert_false(ssf_stream_includes(st, &a, ISS));
	assert_int_equal(edit(st, "{\"format\":\"opaque\",\"id\":\"guid-1\"}", true), 0);
	assert_true(ssf_stream_includes(st, &a, ISS));
	assert_int_equal(edit(st, ALICE, false), QERR_NOT_FOUND);
	assert_int_equal(edit(st, "{\"format\":\"opaque\",\"id\":\"guid-1\"}", false), 0);
	assert_false(ssf_stream_includes(st, &a, ISS));
	json_decref(st);
}

static void
test_limit(void **state)
{
	json_t *st = stream("NONE");
	char sub[96];
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		snprintf(sub, sizeof(sub), "{\"format\":\"opaque\",\"id\":\"id-%d\"}", i);
		assert_int_equal(edit(st, sub, true), 0);
	}
	assert_int_equal(edit(st, "{\"format\":\"opaque\",\"id\":\"one-more\"}", true),
	    QERR_INVALID);
	/* One that is there already is no more. */
	assert_int_equal(edit(st, "{\"format\":\"opaque\",\"id\":\"id-7\"}", true), 0);
	json_decref(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_default_all),
		cmocka_unit_test(test_default_none),
		cmocka_unit_test(test_limit),
	};

	return cmocka_run_group_tests_name("ssf_subjects", tests, NULL, NULL);
}
