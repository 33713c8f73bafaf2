/*
 * The front/executor wire format: every message type round-trips, and every malformed
 * form is refused with the field named: bad header, lengths that run past the message
 * or disagree with it, wrong tags, missing NULs, integers out of range, strings too
 * long or of the wrong text class, bytes after the last field, and every truncation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "privsep/msg.h"

static struct step
sample_step(void)
{
	struct step s = { 0 };

	s.id = "stp_1";
	s.action_id = "act_1";
	s.account_id = "acc_1";
	s.account_ref = "6f1c0a4e-2b7d-4c1a-9f00-0123456789ab";
	s.account_name = "Zoë";
	s.type = ACTION_DISABLE;
	s.params = "{\"reason\": \"x\"}";
	s.attempts = 3;
	s.waits = 2;
	return s;
}

static void
decode_ok(struct privsep_buf *b, struct privsep_msg *m)
{
	struct qerr e;

	assert_int_equal(privsep_decode(b->p, b->len, m, &e), 0);
}

/* The message b holds must be refused, naming field. */
static void
refused(const unsigned char *p, size_t n, const char *field)
{
	struct privsep_msg m;
	struct qerr e;

	qerr_clear(&e);
	assert_int_equal(privsep_decode(p, n, &m, &e), QERR_INVALID);
	if (field != NULL)
		assert_string_equal(e.field, field);
	assert_true(e.msg[0] != '\0');
}

static void
test_execute_round_trip(void **state)
{
	struct privsep_buf b = { 0 };
	struct step s = sample_step(), got;
	struct privsep_msg m;
	const char *system;
	struct qerr e;

	(void)state;
	assert_int_equal(privsep_put_execute(&b, "corp", &s, &e), 0);
	decode_ok(&b, &m);
	assert_int_equal(m.type, PRIVSEP_EXECUTE);
	privsep_get_execute(&m, &system, &got);
	assert_string_equal(system, "corp");
	assert_string_equal(got.id, s.id);
	assert_string_equal(got.action_id, s.action_id);
	assert_string_equal(got.account_ref, s.account_ref);
	assert_string_equal(got.account_name, s.account_name);
	assert_string_equal(got.params, s.params);
	assert_int_equal(got.type, ACTION_DISABLE);
	assert_int_equal(got.attempts, 3);
	assert_int_equal(got.waits, 2);
	/* Optional strings stay absent. */
	s.account_name = NULL;
	s.params = NULL;
	b.len = 0;
	assert_int_equal(privsep_put_execute(&b, "corp", &s, &e), 0);
	decode_ok(&b, &m);
	privsep_get_execute(&m, &system, &got);
	assert_null(got.account_name);
	assert_null(got.params);
	privsep_buf_clear(&b);
}

static void
test_result_round_trip(void **state)
{
	struct step_result r = { 0 }, got;
	struct privsep_buf b = { 0 };
	struct privsep_msg m;
	struct qerr e;

	(void)state;
	r.outcome = STEP_OUTCOME_TRANSIENT;
	r.retry_after_ms = 1500;
	strcpy(r.request_id, "req-1");
	strcpy(r.error_code, "429");
	strcpy(r.message, "slow down \xff\xfe");	/* not UTF-8: shown with '?' */
	strcpy(r.state, "enabled");
	r.not_sent = true;
	r.concurrency_limited = true;
	assert_int_equal(privsep_put_result(&b, &r, &e), 0);
	decode_ok(&b, &m);
	privsep_get_result(&m, &got);
	assert_int_equal(got.outcome, STEP_OUTCOME_TRANSIENT);
	assert_int_equal(got.retry_after_ms, 1500);
	assert_string_equal(got.request_id, "req-1");
	assert_string_equal(got.error_code, "429");
	assert_string_equal(got.message, "slow down ??");
	assert_string_equal(got.state, "enabled");
	assert_true(got.not_sent);
	assert_true(got.concurrency_limited);
	privsep_buf_clear(&b);
}

static void
test_account_round_trip(void **state)
{
	struct account a = { 0 }, got;
	struct privsep_buf b = { 0 };
	struct privsep_msg m;
	struct qerr e;

	(void)state;
	a.external_id = "00u1";
	a.username = "alice";
	a.display_name = "Al\xc3\xa9";
	a.state = "enabled";
	a.synced = true;
	a.state_read_at = 42;
	assert_int_equal(privsep_put_account(&b, PRIVSEP_REFUSES, "okta", ACTION_ENABLE, &a,
	    &e), 0);
	decode_ok(&b, &m);
	assert_int_equal(m.type, PRIVSEP_REFUSES);
	assert_string_equal(m.f[PRIVSEP_REFUSES_SYSTEM].s, "okta");
	assert_int_equal(m.f[PRIVSEP_REFUSES_TYPE].i, ACTION_ENABLE);
	privsep_get_account(&m, &got);
	assert_string_equal(got.external_id, "00u1");
	assert_string_equal(got.username, "alice");
	assert_string_equal(got.display_name, "Al\xc3\xa9");
	assert_null(got.sid);
	assert_null(got.upn);
	assert_true(got.synced);
	assert_int_equal(got.state_read_at, 42);
	/* A directory's bytes that are no UTF-8 come through as '?'. */
	b.len = 0;
	a.display_name = "bad \xc3";
	assert_int_equal(privsep_put_account(&b, PRIVSEP_ACCOUNT, NULL, 0, &a, &e), 0);
	decode_ok(&b, &m);
	privsep_get_account(&m, &got);
	assert_string_equal(got.display_name, "bad ?");
	privsep_buf_clear(&b);
}

static void
test_error_and_end(void **state)
{
	struct privsep_buf b = { 0 };
	struct privsep_msg m;
	struct qerr e;

	(void)state;
	assert_int_equal(privsep_put_error(&b, QERR_CONFIG, "kind", "%s:%d: bad", "f", 3), 0);
	decode_ok(&b, &m);
	assert_int_equal(privsep_get_error(&m, &e), QERR_CONFIG);
	assert_string_equal(e.field, "kind");
	assert_string_equal(e.msg, "f:3: bad");
	b.len = 0;
	privsep_begin(&b, PRIVSEP_END);
	privsep_put_str(&b, "cursor-1");
	privsep_put_int(&b, 1);
	assert_int_equal(privsep_finish(&b, &e), 0);
	decode_ok(&b, &m);
	assert_string_equal(m.f[PRIVSEP_END_NEXT].s, "cursor-1");
	assert_int_equal(m.f[PRIVSEP_END_FULL].i, 1);
	privsep_buf_clear(&b);
}

/* A console code to redeem, as the front sends it: what the decoder accepts is what
 * was put; a PKCE verifier shorter than RFC 7636's 43 characters, a code with a space
 * and a token endpoint's status outside HTTP's are refused by name. */
static void
redeem(struct privsep_buf *b, const char *code, const char *verifier)
{
	privsep_begin(b, PRIVSEP_REDEEM);
	privsep_put_str(b, code);
	privsep_put_str(b, verifier);
	privsep_put_str(b, "https://quell.test/api/v1/session/oidc/callback");
}

static void
test_redeem_and_token(void **state)
{
	static const char verifier[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	struct privsep_buf b = { 0 };
	struct privsep_msg m;
	struct qerr e;

	(void)state;
	redeem(&b, "SplxlOBeZQQYbYS6WxSbIA", verifier);
	assert_int_equal(privsep_finish(&b, &e), 0);
	decode_ok(&b, &m);
	assert_string_equal(m.f[PRIVSEP_REDEEM_CODE].s, "SplxlOBeZQQYbYS6WxSbIA");
	assert_string_equal(m.f[PRIVSEP_REDEEM_VERIFIER].s, verifier);
	b.len = 0;
	redeem(&b, "code", "too-short");
	assert_int_equal(privsep_finish(&b, &e), QERR_INVALID);
	assert_string_equal(e.field, "verifier");
	redeem(&b, "two words", verifier);
	assert_int_equal(privsep_finish(&b, &e), QERR_INVALID);
	assert_string_equal(e.field, "code");
	assert_int_equal(b.len, 0);
	privsep_begin(&b, PRIVSEP_TOKEN);
	privsep_put_int(&b, 200);
	privsep_put_str(&b, "{\"id_token\":\"a.b.c\"}");
	assert_int_equal(privsep_finish(&b, &e), 0);
	decode_ok(&b, &m);
	assert_int_equal(m.f[PRIVSEP_TOKEN_STATUS].i, 200);
	assert_string_equal(m.f[PRIVSEP_TOKEN_BODY].s, "{\"id_token\":\"a.b.c\"}");
	b.len = 0;
	privsep_begin(&b, PRIVSEP_TOKEN);
	privsep_put_int(&b, 600);
	privsep_put_str(&b, "");
	assert_int_equal(privsep_finish(&b, &e), QERR_INVALID);
	assert_string_equal(e.field, "status");
	privsep_buf_clear(&b);
}

/* A SET to sign and the executor's answers: the public key's alg is one of JOSE's
 * five-letter names, the signed SET a JWS in compact form. */
static void
test_ssf_messages(void **state)
{
	struct privsep_buf b = { 0 };
	struct privsep_msg m;
	struct qerr e;

	(void)state;
	privsep_begin(&b, PRIVSEP_SIGN);
	privsep_put_str(&b, "{\"alg\":\"ES256\"}");
	privsep_put_str(&b, "{\"events\":{}}");
	assert_int_equal(privsep_finish(&b, &e), 0);
	decode_ok(&b, &m);
	assert_string_equal(m.f[PRIVSEP_SIGN_CLAIMS].s, "{\"events\":{}}");
	b.len = 0;
	privsep_begin(&b, PRIVSEP_SIGN);
	privsep_put_str(&b, "{\"alg\":\n\"ES256\"}");
	privsep_put_str(&b, "{}");
	assert_int_equal(privsep_finish(&b, &e), QERR_INVALID);
	assert_string_equal(e.field, "header");
	privsep_begin(&b, PRIVSEP_SSF_PUBLIC);
	privsep_put_str(&b, "HS256x");
	privsep_put_str(&b, "{}");
	assert_int_equal(privsep_finish(&b, &e), QERR_INVALID);
	assert_string_equal(e.field, "alg");
	privsep_begin(&b, PRIVSEP_SIGNED);
	privsep_put_str(&b, "a.b c");
	assert_int_equal(privsep_finish(&b, &e), QERR_INVALID);
	assert_string_equal(e.field, "jwt");
	assert_int_equal(b.len, 0);
	privsep_buf_clear(&b);
}

/* The encoder refuses what the decoder would, and takes the message back. */
static void
test_encoder_refuses(void **state)
{
	struct privsep_buf b = { 0 };
	struct step s = sample_step();
	char big[300];
	struct qerr e;

	(void)state;
	s.type = ACTION_TYPE_COUNT;
	assert_int_equal(privsep_put_execute(&b, "corp", &s, &e), QERR_INVALID);
	assert_string_equal(e.field, "type");
	assert_int_equal(b.len, 0);
	s = sample_step();
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(privsep_put_execute(&b, big, &s, &e), QERR_INVALID);
	assert_string_equal(e.field, "system");
	s.id = "has space";
	assert_int_equal(privsep_put_execute(&b, "corp", &s, &e), QERR_INVALID);
	assert_string_equal(e.field, "id");
	s = sample_step();
	s.account_ref = "a\nb";
	assert_int_equal(privsep_put_execute(&b, "corp", &s, &e), QERR_INVALID);
	assert_string_equal(e.field, "account_ref");
	s = sample_step();
	s.account_ref = NULL;
	assert_int_equal(privsep_put_execute(&b, "corp", &s, &e), QERR_INVALID);
	assert_string_equal(e.field, "account_ref");
	assert_int_equal(b.len, 0);
	privsep_buf_clear(&b);
}

static void
test_header_refused(void **state)
{
	struct privsep_buf b = { 0 };
	struct step s = sample_step();
	unsigned char *p;
	struct qerr e;
	size_t n;

	(void)state;
	assert_int_equal(privsep_put_execute(&b, "corp", &s, &e), 0);
	p = b.p;
	n = b.len;
	refused(p, 4, "length");
	p[0] ^= 1;
	refused(p, n, "magic");
	p[0] ^= 1;
	p[1] = 0x01;	/* version 1: no REDEEM, TOKEN */
	refused(p, n, "magic");
	p[1] = 0x03;
	refused(p, n, "magic");
	p[1] = 0x02;
	p[2] = 0;
	p[3] = 0;
	refused(p, n, "type");
	p[3] = PRIVSEP_TYPE_END;
	refused(p, n, "type");
	p[3] = PRIVSEP_EXECUTE;
	p[4] = 0x7f;	/* far past PRIVSEP_PAYLOAD_MAX */
	refused(p, n, "length");
	p[4] = 0;
	p[7]++;		/* one more than the message holds */
	refused(p, n, "length");
	p[7] -= 2;	/* one less: the last field runs past the payload */
	refused(p, n, NULL);
	p[7]++;
	decode_ok(&b, &(struct privsep_msg){ 0 });
	privsep_buf_clear(&b);
}

/* A message whose payload is exactly the bytes given, of type t. */
static size_t
frame(unsigned char *out, enum privsep_type t, const unsigned char *payload, size_t n)
{
	out[0] = 0x51;
	out[1] = 0x02;
	out[2] = 0;
	out[3] = (unsigned char)t;
	out[4] = (unsigned char)(n >> 24);
	out[5] = (unsigned char)(n >> 16);
	out[6] = (unsigned char)(n >> 8);
	out[7] = (unsigned char)n;
	memcpy(out + 8, payload, n);
	return n + 8;
}

static void
test_fields_refused(void **state)
{
	unsigned char m[256];
	/* END: next (optional string), full (integer 0..1) */
	static const unsigned char ok[] = { 's', 0, 0, 0, 1, 'c', 0, 'i', 0, 0, 0, 0, 0, 0,
		0, 1 };
	static const unsigned char no_nul[] = { 's', 0, 0, 0, 1, 'c', 'x', 'i', 0, 0, 0, 0,
		0, 0, 0, 1 };
	static const unsigned char long_len[] = { 's', 0, 0, 0, 9, 'c', 0, 'i', 0, 0, 0, 0,
		0, 0, 0, 1 };
	static const unsigned char huge_len[] = { 's', 0xff, 0xff, 0xff, 0xff, 'c', 0 };
	static const unsigned char bad_tag[] = { 'x', 'i', 0, 0, 0, 0, 0, 0, 0, 1 };
	static const unsigned char int_as_str[] = { 'n', 's', 0, 0, 0, 1, '1', 0 };
	static const unsigned char range[] = { 'n', 'i', 0, 0, 0, 0, 0, 0, 0, 2 };
	static const unsigned char negative[] = { 'n', 'i', 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff };
	static const unsigned char trailing[] = { 'n', 'i', 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	static const unsigned char short_int[] = { 'n', 'i', 0, 0, 0 };
	static const unsigned char ctl[] = { 's', 0, 0, 0, 1, 0x07, 0, 'i', 0, 0, 0, 0, 0,
		0, 0, 0 };
	static const unsigned char inner_nul[] = { 's', 0, 0, 0, 2, 'a', 0, 0, 'i', 0, 0,
		0, 0, 0, 0, 0, 0 };
	/* ERROR: code (-100..-1), field (an ASCII word), message (UTF-8, 1..1024) */
	static const unsigned char err_word[] = { 'i', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xfd, 's', 0, 0, 0, 2, 'a', ' ', 0, 's', 0, 0, 0, 1, 'x', 0 };
	static const unsigned char err_utf8[] = { 'i', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xfd, 'n', 's', 0, 0, 0, 2, 0xc3, 0x28, 0 };
	static const unsigned char err_empty[] = { 'i', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xfd, 'n', 's', 0, 0, 0, 0, 0 };
	static const unsigned char err_code[] = { 'i', 0, 0, 0, 0, 0, 0, 0, 0, 'n', 's', 0,
		0, 0, 1, 'x', 0 };
	/* EXECUTE's required system given as absent. */
	static const unsigned char absent[] = { 'n' };
	struct privsep_msg msg;
	struct qerr e;

	(void)state;
	assert_int_equal(privsep_decode(m, frame(m, PRIVSEP_END, ok, sizeof(ok)), &msg, &e),
	    0);
	refused(m, frame(m, PRIVSEP_END, no_nul, sizeof(no_nul)), "next");
	refused(m, frame(m, PRIVSEP_END, long_len, sizeof(long_len)), "next");
	refused(m, frame(m, PRIVSEP_END, huge_len, sizeof(huge_len)), "next");
	refused(m, frame(m, PRIVSEP_END, bad_tag, sizeof(bad_tag)), "next");
	refused(m, frame(m, PRIVSEP_END, int_as_str, sizeof(int_as_str)), "full");
	refused(m, frame(m, PRIVSEP_END, range, sizeof(range)), "full");
	refused(m, frame(m, PRIVSEP_END, negative, sizeof(negative)), "full");
	refused(m, frame(m, PRIVSEP_END, trailing, sizeof(trailing)), "length");
	refused(m, frame(m, PRIVSEP_END, short_int, sizeof(short_int)), "full");
	refused(m, frame(m, PRIVSEP_END, ctl, sizeof(ctl)), "next");
	refused(m, frame(m, PRIVSEP_END, inner_nul, sizeof(inner_nul)), "next");
	refused(m, frame(m, PRIVSEP_END, NULL, 0), "next");
	refused(m, frame(m, PRIVSEP_ERROR, err_word, sizeof(err_word)), "field");
	refused(m, frame(m, PRIVSEP_ERROR, err_utf8, sizeof(err_utf8)), "message");
	refused(m, frame(m, PRIVSEP_ERROR, err_empty, sizeof(err_empty)), "message");
	refused(m, frame(m, PRIVSEP_ERROR, err_code, sizeof(err_code)), "code");
	refused(m, frame(m, PRIVSEP_EXECUTE, absent, sizeof(absent)), "system");
	/* A message without fields takes none. */
	refused(m, frame(m, PRIVSEP_STOP, absent, sizeof(absent)), "length");
	assert_int_equal(privsep_decode(m, frame(m, PRIVSEP_STOP, NULL, 0), &msg, &e), 0);
}

/* Every prefix of a valid message is refused; so is every one-byte change that
 * breaks a tag, a length or a NUL (others may still decode: then as what they say). */
static void
test_truncations_and_flips(void **state)
{
	struct privsep_buf b = { 0 };
	struct step s = sample_step();
	struct privsep_msg m;
	struct qerr e;
	size_t i;

	(void)state;
	assert_int_equal(privsep_put_execute(&b, "corp", &s, &e), 0);
	for (i = 0; i < b.len; i++) {
		unsigned char *copy = malloc(i + 1);

		memcpy(copy, b.p, i);
		assert_int_equal(privsep_decode(copy, i, &m, &e), QERR_INVALID);
		/* The header's length adjusted to the prefix: still refused. */
		if (i >= PRIVSEP_HDR_LEN) {
			copy[4] = (unsigned char)((i - 8) >> 24);
			copy[5] = (unsigned char)((i - 8) >> 16);
			copy[6] = (unsigned char)((i - 8) >> 8);
			copy[7] = (unsigned char)(i - 8);
			assert_int_equal(privsep_decode(copy, i, &m, &e), QERR_INVALID);
		}
		free(copy);
	}
	for (i = PRIVSEP_HDR_LEN; i < b.len; i++) {
		b.p[i] ^= 0xff;
		(void)privsep_decode(b.p, b.len, &m, &e);
		b.p[i] ^= 0xff;
	}
	assert_int_equal(privsep_decode(b.p, b.len, &m, &e), 0);
	privsep_buf_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_execute_round_trip),
		cmocka_unit_test(test_result_round_trip),
		cmocka_unit_test(test_account_round_trip),
		cmocka_unit_test(test_error_and_end),
		cmocka_unit_test(test_redeem_and_token),
		cmocka_unit_test(test_ssf_messages),
		cmocka_unit_test(test_encoder_refuses),
		cmocka_unit_test(test_header_refused),
		cmocka_unit_test(test_fields_refused),
		cmocka_unit_test(test_truncations_and_flips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
