/* Unit tests of src/core/ldapesc.c: RFC 4514/4515 examples, hostile input, AD binary forms. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/ldapesc.h"

static void
check_dn(const char *in, size_t len, const char *want)
{
	char *out = NULL;

	assert_int_equal(ldapesc_dn_value(in, len, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

static void
check_filter(const char *in, size_t len, const char *want)
{
	char *out = NULL;

	assert_int_equal(ldapesc_filter_value(in, len, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

#define DN(in, want)		check_dn(in, strlen(in), want)
#define FILTER(in, want)	check_filter(in, strlen(in), want)

static void
test_dn_rfc4514_examples(void **state)
{
	(void)state;
	/* RFC 4514 section 4. */
	DN("James \"Jim\" Smith, III", "James \\\"Jim\\\" Smith\\, III");
	DN("Before\rAfter", "Before\\0dAfter");
	DN("Sales+Marketing", "Sales\\+Marketing");
	/* UTF-8 may stay as is (section 2.4). */
	DN("Lu\xc4\x8di\xc4\x87", "Lu\xc4\x8di\xc4\x87");
	DN("", "");
}

static void
test_dn_position_rules(void **state)
{
	(void)state;
	DN("#hash", "\\#hash");
	DN("a#b", "a#b");
	DN(" lead", "\\ lead");
	DN("trail ", "trail\\ ");
	DN(" ", "\\ ");
	DN("  ", "\\ \\ ");
	DN("mid dle", "mid dle");
	DN("a=b", "a=b");
	DN("<tag>;x", "\\<tag\\>\\;x");
	DN("back\\slash", "back\\\\slash");
	check_dn("a\0b", 3, "a\\00b");
	DN("del\x7f", "del\\7f");
}

static void
test_dn_hostile_cn(void **state)
{
	(void)state;
	DN("Zo\xc3\xab \"Z\" O'Brien, (ops) \\ test",
	    "Zo\xc3\xab \\\"Z\\\" O'Brien\\, (ops) \\\\ test");
	DN("x,CN=Admins,DC=evil", "x\\,CN=Admins\\,DC=evil");
}

static void
test_filter_rfc4515_examples(void **state)
{
	(void)state;
	/* RFC 4515 section 4. */
	FILTER("*", "\\2a");
	FILTER("Parens R Us (for all your parenthetical needs)",
	    "Parens R Us \\28for all your parenthetical needs\\29");
	FILTER("C:\\MyFile", "C:\\5cMyFile");
	check_filter("\0\0\0\x04", 4, "\\00\\00\\00\\04");
	FILTER("Lu\xc4\x8di\xc4\x87", "Lu\\c4\\8di\\c4\\87");
	FILTER("", "");
}

static void
test_filter_injection(void **state)
{
	(void)state;
	FILTER("*)(uid=*))(|(uid=*", "\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a");
	FILTER("admin)(|(objectClass=*", "admin\\29\\28|\\28objectClass=\\2a");
	FILTER("a\\2a", "a\\5c2a");
	FILTER("tab\there\n", "tab\\09here\\0a");
	FILTER("plain.name-1@x_y", "plain.name-1@x_y");
}

static void
test_filter_binary(void **state)
{
	const unsigned char b[] = { 0x00, 0x2a, 0xff, 0x5c, 0x41 };
	char *out = NULL;

	(void)state;
	assert_int_equal(ldapesc_filter_binary(b, sizeof(b), &out), 0);
	assert_string_equal(out, "\\00\\2a\\ff\\5c\\41");
	free(out);
	assert_int_equal(ldapesc_filter_binary(b, 0, &out), 0);
	assert_string_equal(out, "");
	free(out);
}

/* Bytes of an objectGUID read from Samba with ldapsearch (base64 pEL2Fv7d30yEvdxKQG5Bww==). */
static const unsigned char lab_guid[16] = {
	0xa4, 0x42, 0xf6, 0x16, 0xfe, 0xdd, 0xdf, 0x4c,
	0x84, 0xbd, 0xdc, 0x4a, 0x40, 0x6e, 0x41, 0xc3
};
static const char lab_guid_text[] = "16f642a4-ddfe-4cdf-84bd-dc4a406e41c3";

static void
test_guid_to_text(void **state)
{
	const unsigned char seq[16] = {
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
		0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f
	};
	char text[LDAPESC_GUID_TEXT_LEN + 1];

	(void)state;
	assert_int_equal(ldapesc_guid_to_text(lab_guid, sizeof(lab_guid), text), 0);
	assert_string_equal(text, lab_guid_text);
	assert_int_equal(ldapesc_guid_to_text(seq, sizeof(seq), text), 0);
	assert_string_equal(text, "03020100-0504-0706-0809-0a0b0c0d0e0f");
}

static void
test_guid_bad_length(void **state)
{
	char text[LDAPESC_GUID_TEXT_LEN + 1];

	(void)state;
	assert_int_equal(ldapesc_guid_to_text(lab_guid, 15, text), QERR_INVALID);
	assert_string_equal(text, "");
	assert_int_equal(ldapesc_guid_to_text(lab_guid, 17, text), QERR_INVALID);
	assert_int_equal(ldapesc_guid_to_text(NULL, 16, text), QERR_INVALID);
	assert_int_equal(ldapesc_guid_to_text(lab_guid, 0, text), QERR_INVALID);
}

static void
test_guid_round_trip(void **state)
{
	unsigned char bin[16], all[16];
	char text[LDAPESC_GUID_TEXT_LEN + 1];
	unsigned i, v;

	(void)state;
	assert_int_equal(ldapesc_guid_from_text(lab_guid_text, bin), 0);
	assert_memory_equal(bin, lab_guid, 16);
	assert_int_equal(ldapesc_guid_from_text("16F642A4-DDFE-4CDF-84BD-DC4A406E41C3", bin), 0);
	assert_memory_equal(bin, lab_guid, 16);
	for (v = 0; v < 256; v += 17) {
		for (i = 0; i < 16; i++)
			all[i] = (unsigned char)(v + i * 31);
		assert_int_equal(ldapesc_guid_to_text(all, 16, text), 0);
		assert_int_equal(ldapesc_guid_from_text(text, bin), 0);
		assert_memory_equal(bin, all, 16);
	}
}

static void
test_guid_from_text_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"16f642a4-ddfe-4cdf-84bd-dc4a406e41c",
		"16f642a4-ddfe-4cdf-84bd-dc4a406e41c30",
		"{16f642a4-ddfe-4cdf-84bd-dc4a406e41c3}",
		"16f642a4ddfe-4cdf-84bd-dc4a406e41c3-",
		"16f642a4-ddfe-4cdf-84bddc4a406e41c3-",
		"16f642a4-ddfe-4cdf-84bd-dc4a406e41cg",
		"16f642a4-ddfe-4cdf-84bd-dc4a406e41 3",
		"16f642a4+ddfe-4cdf-84bd-dc4a406e41c3",
		"*)(objectGUID=*)(x=12345678901234567",
	};
	unsigned char bin[16];
	size_t i;

	(void)state;
	memset(bin, 0x55, sizeof(bin));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ldapesc_guid_from_text(bad[i], bin), QERR_INVALID);
	assert_int_equal(ldapesc_guid_from_text(NULL, bin), QERR_INVALID);
	for (i = 0; i < sizeof(bin); i++)
		assert_int_equal(bin[i], 0x55);
}

static void
check_sid(const unsigned char *b, size_t len, const char *want)
{
	char *out = NULL;

	assert_int_equal(ldapesc_sid_to_text(b, len, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

static void
test_sid_known(void **state)
{
	/* An account SID read from Samba (base64 AQUAAAAAAAUVAAAAxl2gr7ccIQ7C27frUQQAAA==). */
	const unsigned char user[] = {
		0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00,
		0xc6, 0x5d, 0xa0, 0xaf, 0xb7, 0x1c, 0x21, 0x0e, 0xc2, 0xdb, 0xb7, 0xeb,
		0x51, 0x04, 0x00, 0x00
	};
	const unsigned char system[] = {
		0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x12, 0x00, 0x00, 0x00
	};
	const unsigned char admins[] = {
		0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
		0x20, 0x00, 0x00, 0x00, 0x20, 0x02, 0x00, 0x00
	};
	const unsigned char world[] = {
		0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00
	};
	const unsigned char nosub[] = { 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05 };
	const unsigned char bigauth[] = {
		0x01, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0xff, 0xff, 0xff, 0xff
	};

	(void)state;
	check_sid(user, sizeof(user), "S-1-5-21-2946522566-237051063-3954695106-1105");
	check_sid(system, sizeof(system), "S-1-5-18");
	check_sid(admins, sizeof(admins), "S-1-5-32-544");
	check_sid(world, sizeof(world), "S-1-1-0");
	check_sid(nosub, sizeof(nosub), "S-1-5");
	check_sid(bigauth, sizeof(bigauth), "S-1-0x010203040506-4294967295");
}

static void
test_sid_max_subauthorities(void **state)
{
	unsigned char b[8 + 4 * 16];
	char *out = NULL;

	(void)state;
	memset(b, 0xff, sizeof(b));
	b[0] = 1;
	b[1] = 15;
	memset(b + 2, 0, 5);
	b[7] = 5;
	assert_int_equal(ldapesc_sid_to_text(b, 8 + 4 * 15, &out), 0);
	assert_string_equal(out, "S-1-5-4294967295-4294967295-4294967295-4294967295"
	    "-4294967295-4294967295-4294967295-4294967295-4294967295-4294967295"
	    "-4294967295-4294967295-4294967295-4294967295-4294967295");
	free(out);
	/* The largest authority with the largest count must fit as well. */
	memset(b + 2, 0xff, 6);
	assert_int_equal(ldapesc_sid_to_text(b, 8 + 4 * 15, &out), 0);
	assert_int_equal(strncmp(out, "S-1-0xffffffffffff-4294967295", 29), 0);
	free(out);
	b[1] = 16;
	assert_int_equal(ldapesc_sid_to_text(b, sizeof(b), &out), QERR_INVALID);
	assert_null(out);
}

static void
test_sid_bad(void **state)
{
	const unsigned char good[] = {
		0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x12, 0x00, 0x00, 0x00
	};
	unsigned char b[sizeof(good) + 4];
	char *out = NULL;
	size_t len;

	(void)state;
	for (len = 0; len < sizeof(good); len++)
		assert_int_equal(ldapesc_sid_to_text(good, len, &out), QERR_INVALID);
	memcpy(b, good, sizeof(good));
	memset(b + sizeof(good), 0, 4);
	assert_int_equal(ldapesc_sid_to_text(b, sizeof(b), &out), QERR_INVALID);
	b[0] = 2;
	assert_int_equal(ldapesc_sid_to_text(b, sizeof(good), &out), QERR_INVALID);
	b[0] = 1;
	b[1] = 2;
	assert_int_equal(ldapesc_sid_to_text(b, sizeof(good), &out), QERR_INVALID);
	assert_int_equal(ldapesc_sid_to_text(b, sizeof(b), &out), 0);
	assert_string_equal(out, "S-1-5-18-0");
	free(out);
	out = NULL;
	assert_int_equal(ldapesc_sid_to_text(NULL, 12, &out), QERR_INVALID);
	assert_null(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dn_rfc4514_examples),
		cmocka_unit_test(test_dn_position_rules),
		cmocka_unit_test(test_dn_hostile_cn),
		cmocka_unit_test(test_filter_rfc4515_examples),
		cmocka_unit_test(test_filter_injection),
		cmocka_unit_test(test_filter_binary),
		cmocka_unit_test(test_guid_to_text),
		cmocka_unit_test(test_guid_bad_length),
		cmocka_unit_test(test_guid_round_trip),
		cmocka_unit_test(test_guid_from_text_rejects),
		cmocka_unit_test(test_sid_known),
		cmocka_unit_test(test_sid_max_subauthorities),
		cmocka_unit_test(test_sid_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
