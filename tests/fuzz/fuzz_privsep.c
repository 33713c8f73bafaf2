/*
 * The executor's decoder (src/privsep/msg.c), which reads whatever a compromised front
 * could write: any bytes as a whole message, and the bytes after the first as the
 * payload of a message of the type the first names. What it accepts must come back
 * byte for byte when encoded again from the typed reader's fields (a step, a result,
 * an account, a console code to redeem and the token endpoint's answer, a SET to
 * sign, the signed SET and the public key): nothing is dropped, added or read past
 * the message.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "privsep/msg.h"

static void
round_trip(const uint8_t *data, size_t size, const struct privsep_msg *m)
{
	struct privsep_buf b = { 0 };
	struct step_result res;
	const char *system;
	struct account a;
	struct step s;
	struct qerr e;
	size_t i;
	int r;

	switch (m->type) {
	case PRIVSEP_EXECUTE:
		privsep_get_execute(m, &system, &s);
		r = privsep_put_execute(&b, system, &s, &e);
		break;
	case PRIVSEP_RESULT:
		privsep_get_result(m, &res);
		r = privsep_put_result(&b, &res, &e);
		break;
	case PRIVSEP_ACCOUNT:
	case PRIVSEP_REFUSES:
		privsep_get_account(m, &a);
		r = privsep_put_account(&b, m->type, m->f[0].s, m->f[1].i, &a, &e);
		break;
	case PRIVSEP_REDEEM:
		privsep_begin(&b, m->type);
		privsep_put_str(&b, m->f[PRIVSEP_REDEEM_CODE].s);
		privsep_put_str(&b, m->f[PRIVSEP_REDEEM_VERIFIER].s);
		privsep_put_str(&b, m->f[PRIVSEP_REDEEM_REDIRECT_URI].s);
		r = privsep_finish(&b, &e);
		break;
	case PRIVSEP_TOKEN:
		privsep_begin(&b, m->type);
		privsep_put_int(&b, m->f[PRIVSEP_TOKEN_STATUS].i);
		privsep_put_str(&b, m->f[PRIVSEP_TOKEN_BODY].s);
		r = privsep_finish(&b, &e);
		break;
	case PRIVSEP_SSF_PUBLIC:
	case PRIVSEP_SIGN:
	case PRIVSEP_SIGNED:
		privsep_begin(&b, m->type);
		for (i = 0; i < m->n; i++)
			privsep_put_str(&b, m->f[i].s);
		r = privsep_finish(&b, &e);
		break;
	default:
		return;
	}
	fuzz_check(r == 0, "what decodes encodes again");
	fuzz_check(b.len == size && memcmp(b.p, data, size) == 0,
	    "what decodes encodes again to the same bytes");
	privsep_buf_clear(&b);
}

static void
decode(const uint8_t *data, size_t size)
{
	struct privsep_msg m;
	struct qerr e;
	size_t n, i;

	if (privsep_decode(data, size, &m, &e) != 0) {
		fuzz_check(e.msg[0] != '\0', "a refusal says why");
		return;
	}
	fuzz_check(privsep_header(data, &n, &e) == 0 && n + PRIVSEP_HDR_LEN == size,
	    "an accepted message is as long as its header says");
	for (i = 0; i < m.n; i++)
		if (m.f[i].s != NULL)
			fuzz_check((const uint8_t *)m.f[i].s > data && (const uint8_t *)m.f[i].s +
			    m.f[i].len < data + size && m.f[i].s[m.f[i].len] == '\0',
			    "a string lies inside the message and ends in its NUL");
	round_trip(data, size, &m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *framed;
	size_t n;

	decode(data, size);
	if (size == 0 || size - 1 > PRIVSEP_PAYLOAD_MAX || (framed = malloc(size + 7)) == NULL)
		return 0;
	n = size - 1;
	framed[0] = PRIVSEP_MAGIC >> 8;
	framed[1] = PRIVSEP_MAGIC & 0xff;
	framed[2] = 0;
	framed[3] = (uint8_t)(data[0] % PRIVSEP_TYPE_END);
	framed[4] = (uint8_t)(n >> 24);
	framed[5] = (uint8_t)(n >> 16);
	framed[6] = (uint8_t)(n >> 8);
	framed[7] = (uint8_t)n;
	memcpy(framed + 8, data + 1, n);
	decode(framed, n + 8);
	free(framed);
	return 0;
}
