/*
 * LDAP escaping against libldap's own parsers: any bytes escaped as a DN attribute
 * value must come back from ldap_str2dn as exactly that value in one RDN of one AVA,
 * and escaped as an assertion value, from ldap_pvt_put_filter as one equality filter
 * holding exactly those bytes: nothing a person or a directory sends can add an RDN,
 * an AVA or a filter term. objectGUID and objectSid text forms round-trip too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lber.h>
#include <ldap.h>

#include "core/ldapesc.h"
#include "core/text.h"
#include "fuzz.h"

/* libldap's filter encoder (ldap_pvt.h is not installed). */
int ldap_pvt_put_filter(BerElement *ber, const char *str);

static void
dn_round_trip(const uint8_t *data, size_t size)
{
	char *esc = NULL, *dn;
	LDAPDN parsed = NULL;
	struct berval *v;
	size_t n;

	fuzz_check(ldapesc_dn_value((const char *)data, size, &esc) == 0, "DN escaping");
	n = strlen(esc);
	fuzz_check(n >= size, "an escaped value is no shorter");
	if ((dn = malloc(n + 16)) == NULL) {
		free(esc);
		return;
	}
	memcpy(dn, "CN=", 3);
	memcpy(dn + 3, esc, n);
	memcpy(dn + 3 + n, ",DC=test", 9);
	if (ldap_str2dn(dn, &parsed, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS) {
		fuzz_check(parsed[0] != NULL && parsed[0][0] != NULL &&
		    parsed[0][1] == NULL && parsed[1] != NULL && parsed[2] == NULL,
		    "an escaped value is one AVA of one RDN");
		v = &parsed[0][0]->la_value;
		fuzz_check(v->bv_len == size && memcmp(v->bv_val, data, size) == 0,
		    "ldap_str2dn reads back the value escaped");
	} else
		/* libldap refuses invalid UTF-8 in a string DN: that is all it may refuse. */
		fuzz_check(size == 0 || !text_utf8_valid((const char *)data, size),
		    "ldap_str2dn takes every escaped UTF-8 value");
	ldap_dnfree(parsed);
	free(dn);
	free(esc);
}

/* "(cn=<escaped>)" through libldap's filter encoder, decoded back. */
static void
filter_round_trip(const uint8_t *data, size_t size, bool binary)
{
	struct berval *flat = NULL, attr, val;
	BerElement *ber = NULL, *in = NULL;
	char *esc = NULL, *filter = NULL;
	ber_tag_t tag;
	ber_len_t len;
	size_t n;

	fuzz_check((binary ? ldapesc_filter_binary(data, size, &esc) :
	    ldapesc_filter_value((const char *)data, size, &esc)) == 0, "filter escaping");
	n = strlen(esc);
	if ((filter = malloc(n + 6)) == NULL || (ber = ber_alloc_t(LBER_USE_DER)) == NULL)
		goto out;
	memcpy(filter, "(cn=", 4);
	memcpy(filter + 4, esc, n);
	memcpy(filter + 4 + n, ")", 2);
	fuzz_check(ldap_pvt_put_filter(ber, filter) == 0, "libldap takes every escaped "
	    "filter");
	fuzz_check(ber_flatten(ber, &flat) == 0 && (in = ber_init(flat)) != NULL,
	    "the encoded filter can be read");
	fuzz_check(ber_peek_tag(in, &len) == LDAP_FILTER_EQUALITY,
	    "the filter is an equality match");
	tag = ber_scanf(in, "{mm}", &attr, &val);
	fuzz_check(tag != LBER_ERROR && ber_peek_tag(in, &len) == LBER_DEFAULT,
	    "the filter is one term");
	fuzz_check(val.bv_len == size && (size == 0 || memcmp(val.bv_val, data, size) == 0),
	    "the assertion value is the bytes escaped");
out:
	ber_free(in, 1);
	ber_bvfree(flat);
	ber_free(ber, 1);
	free(filter);
	free(esc);
}

static void
guid_sid(const uint8_t *data, size_t size)
{
	char text[LDAPESC_GUID_TEXT_LEN + 1], *sid = NULL;
	unsigned char back[LDAPESC_GUID_LEN];

	if (ldapesc_guid_to_text(data, size, text) == 0) {
		fuzz_check(strlen(text) == LDAPESC_GUID_TEXT_LEN &&
		    ldapesc_guid_from_text(text, back) == 0 &&
		    memcmp(back, data, LDAPESC_GUID_LEN) == 0, "a GUID's text reads back");
	}
	if (ldapesc_sid_to_text(data, size, &sid) == 0)
		fuzz_check(strncmp(sid, "S-1-", 4) == 0, "a SID's text starts S-1-");
	free(sid);
	if (size >= LDAPESC_GUID_TEXT_LEN) {
		memcpy(text, data, LDAPESC_GUID_TEXT_LEN);
		text[LDAPESC_GUID_TEXT_LEN] = '\0';
		(void)ldapesc_guid_from_text(text, back);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dn_round_trip(data, size);
	filter_round_trip(data, size, false);
	filter_round_trip(data, size, true);
	guid_sid(data, size);
	return 0;
}
