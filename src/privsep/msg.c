/*
 * The front/executor wire format (msg.h): one schema per message type, which both the
 * encoder and the decoder check, so a message either side sends is one the other
 * accepts and anything else is refused with the field and the reason.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "api/oidc.h"
#include "core/metrics.h"
#include "core/text.h"
#include "privsep/msg.h"

/* What a string may hold: an identifier (printable ASCII, no spaces), one line of
 * printable text, printable text over several lines, or any well-formed UTF-8. */
enum text_class { T_NAME, T_LINE, T_LINES, T_UTF8 };

struct field_spec {
	const char *name;
	char kind;		/* 's' string, 'o' optional string, 'i' integer */
	enum text_class text;
	int64_t lo, hi;		/* 'i': the range; strings: the length in bytes */
};

struct type_spec {
	const char *name;
	size_t n;
	struct field_spec f[PRIVSEP_FIELDS_MAX];
};

#define STR(nm, cls, lo, hi) { nm, 's', cls, lo, hi }
#define OPT(nm, cls, hi) { nm, 'o', cls, 0, hi }
#define INT(nm, lo, hi) { nm, 'i', T_NAME, lo, hi }
#define ACCT_STR(nm) OPT(nm, T_UTF8, 4096)
#define SYSTEM STR("system", T_LINE, 1, 256)
#define TYPE INT("type", 0, ACTION_TYPE_COUNT - 1)
#define ACCOUNT_FIELDS \
	ACCT_STR("id"), ACCT_STR("identity_id"), ACCT_STR("account_system"), \
	ACCT_STR("kind"), ACCT_STR("external_id"), ACCT_STR("sid"), ACCT_STR("dn"), \
	ACCT_STR("username"), ACCT_STR("upn"), ACCT_STR("display_name"), \
	ACCT_STR("email"), ACCT_STR("state"), ACCT_STR("risk"), ACCT_STR("link_rule"), \
	ACCT_STR("linked_by"), INT("synced", 0, 1), INT("state_read_at", 0, INT64_MAX), \
	INT("created_at", 0, INT64_MAX), INT("linked_at", 0, INT64_MAX)
#define ACCOUNT_NFIELDS 19

static const struct type_spec specs[PRIVSEP_TYPE_END] = {
	[PRIVSEP_LOAD] = { "LOAD", 2, { STR("path", T_LINE, 1, 4096),
	    STR("text", T_UTF8, 0, 1 << 20) } },
	[PRIVSEP_SWAP] = { "SWAP", 0, { { 0 } } },
	[PRIVSEP_DROP] = { "DROP", 0, { { 0 } } },
	[PRIVSEP_CAPS] = { "CAPS", 3, { STR("name", T_LINE, 1, 256),
	    STR("kind", T_NAME, 1, 64),
	    INT("supports", 0, (1 << ACTION_TYPE_COUNT) - 1) } },
	[PRIVSEP_EXECUTE] = { "EXECUTE", 10, { SYSTEM, STR("id", T_NAME, 1, 128),
	    OPT("action_id", T_NAME, 128), OPT("account_id", T_NAME, 128),
	    STR("account_ref", T_LINE, 1, 1024), OPT("account_name", T_UTF8, 1024), TYPE,
	    OPT("params", T_LINES, 65536), INT("attempts", 0, INT_MAX),
	    INT("waits", 0, INT_MAX) } },
	[PRIVSEP_BATCH] = { "BATCH", 2, { SYSTEM, INT("n", 2, PRIVSEP_BATCH_MAX) } },
	[PRIVSEP_RESULT] = { "RESULT", 8, { INT("outcome", STEP_OUTCOME_SUCCEEDED,
	    STEP_OUTCOME_PERMANENT), INT("retry_after_ms", 0, INT_MAX),
	    STR("request_id", T_UTF8, 0, 127), STR("error_code", T_UTF8, 0, 63),
	    STR("message", T_UTF8, 0, 511), STR("state", T_UTF8, 0, 31),
	    INT("not_sent", 0, 1), INT("concurrency_limited", 0, 1) } },
	[PRIVSEP_REFUSES] = { "REFUSES", 2 + ACCOUNT_NFIELDS, { SYSTEM, TYPE,
	    ACCOUNT_FIELDS } },
	[PRIVSEP_REFUSAL] = { "REFUSAL", 2, { INT("refuses", 0, 1),
	    STR("why", T_UTF8, 0, 511) } },
	[PRIVSEP_LIST] = { "LIST", 3, { SYSTEM, INT("changes", 0, 1),
	    OPT("since", T_LINE, 65536) } },
	[PRIVSEP_ACCOUNT] = { "ACCOUNT", 2 + ACCOUNT_NFIELDS, { OPT("system", T_LINE, 256),
	    INT("type", 0, 0), ACCOUNT_FIELDS } },
	[PRIVSEP_STOP] = { "STOP", 0, { { 0 } } },
	[PRIVSEP_END] = { "END", 2, { OPT("next", T_LINE, 65536), INT("full", 0, 1) } },
	[PRIVSEP_METRIC] = { "METRIC", 3 + METRIC_MAX_LABELS, { INT("fam", 0, QM_COUNT - 1),
	    INT("op", METRIC_ADD, METRIC_OBSERVE), INT("value", INT64_MIN, INT64_MAX),
	    OPT("label", T_LINE, 256), OPT("label", T_LINE, 256),
	    OPT("label", T_LINE, 256) } },
	[PRIVSEP_ERROR] = { "ERROR", 3, { INT("code", -100, -1), OPT("field", T_NAME, 64),
	    STR("message", T_UTF8, 1, 1024) } },
	/* A PKCE verifier is 43 to 128 characters (RFC 7636, 4.1). */
	[PRIVSEP_REDEEM] = { "REDEEM", 3, { STR("code", T_NAME, 1, 4096),
	    STR("verifier", T_NAME, 43, 128), STR("redirect_uri", T_LINE, 1, 2048) } },
	[PRIVSEP_TOKEN] = { "TOKEN", 2, { INT("status", 100, 599),
	    STR("body", T_UTF8, 0, OIDC_TOKEN_RESPONSE_MAX) } },
	[PRIVSEP_SSF_KEY] = { "SSF_KEY", 0, { { 0 } } },
	[PRIVSEP_SSF_PUBLIC] = { "SSF_PUBLIC", 2, { STR("alg", T_NAME, 5, 5),
	    STR("jwk", T_LINE, 2, 16384) } },
	/* A SET's claims: what one audit entry makes, well under 64 KiB. */
	[PRIVSEP_SIGN] = { "SIGN", 2, { STR("header", T_LINE, 2, 1024),
	    STR("claims", T_UTF8, 2, 65536) } },
	[PRIVSEP_SIGNED] = { "SIGNED", 1, { STR("jwt", T_NAME, 5, 131072) } },
};

const char *
privsep_type_name(enum privsep_type t)
{
	return t > 0 && t < PRIVSEP_TYPE_END ? specs[t].name : "unknown";
}

void
privsep_buf_clear(struct privsep_buf *b)
{
	if (b->p != NULL)
		sodium_memzero(b->p, b->cap);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Room for need more bytes; zeroes what it moves away from, as the buffer may have
 * held a configuration. */
bool
privsep_buf_reserve(struct privsep_buf *b, size_t need)
{
	unsigned char *np;
	size_t cap;

	if (b->oom)
		return false;
	if (b->len + need <= b->cap)
		return true;
	for (cap = b->cap ? b->cap : 256; cap < b->len + need; cap *= 2)
		;
	if ((np = malloc(cap)) == NULL) {
		b->oom = true;
		return false;
	}
	if (b->p != NULL) {
		memcpy(np, b->p, b->len);
		sodium_memzero(b->p, b->cap);
		free(b->p);
	}
	b->p = np;
	b->cap = cap;
	return true;
}

static void
put_be(unsigned char *p, uint64_t v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static uint64_t
get_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

void
privsep_begin(struct privsep_buf *b, enum privsep_type t)
{
	b->start = b->len;
	if (!privsep_buf_reserve(b, PRIVSEP_HDR_LEN))
		return;
	put_be(b->p + b->len, PRIVSEP_MAGIC, 2);
	put_be(b->p + b->len + 2, (uint64_t)t, 2);
	put_be(b->p + b->len + 4, 0, 4);
	b->len += PRIVSEP_HDR_LEN;
}

void
privsep_put_str(struct privsep_buf *b, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (s == NULL) {
		if (privsep_buf_reserve(b, 1))
			b->p[b->len++] = 'n';
		return;
	}
	if (n > UINT32_MAX || !privsep_buf_reserve(b, n + 6))
		return;
	b->p[b->len] = 's';
	put_be(b->p + b->len + 1, n, 4);
	memcpy(b->p + b->len + 5, s, n);
	b->p[b->len + 5 + n] = '\0';
	b->len += n + 6;
}

void
privsep_put_int(struct privsep_buf *b, int64_t v)
{
	if (!privsep_buf_reserve(b, 9))
		return;
	b->p[b->len] = 'i';
	put_be(b->p + b->len + 1, (uint64_t)v, 8);
	b->len += 9;
}

int
privsep_finish(struct privsep_buf *b, struct qerr *e)
{
	size_t start = b->start;
	struct privsep_msg m;
	int r;

	if (b->oom) {
		b->len = start;
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
	if (b->len - start - PRIVSEP_HDR_LEN > PRIVSEP_PAYLOAD_MAX) {
		b->len = start;
		return qerr_set(e, QERR_TOO_LARGE, NULL, "message larger than %u bytes",
		    PRIVSEP_PAYLOAD_MAX);
	}
	put_be(b->p + start + 4, b->len - start - PRIVSEP_HDR_LEN, 4);
	if ((r = privsep_decode(b->p + start, b->len - start, &m, e)) != 0)
		b->len = start;
	return r;
}

int
privsep_header(const unsigned char hdr[PRIVSEP_HDR_LEN], size_t *len, struct qerr *e)
{
	uint64_t magic = get_be(hdr, 2), type = get_be(hdr + 2, 2), n = get_be(hdr + 4, 4);

	if (magic != PRIVSEP_MAGIC)
		return qerr_set(e, QERR_INVALID, "magic", "magic and version 0x%04x, not "
		    "0x%04x", (unsigned)magic, PRIVSEP_MAGIC);
	if (type == 0 || type >= PRIVSEP_TYPE_END)
		return qerr_set(e, QERR_INVALID, "type", "unknown message type %u",
		    (unsigned)type);
	if (n > PRIVSEP_PAYLOAD_MAX)
		return qerr_set(e, QERR_INVALID, "length", "payload of %lu bytes, more "
		    "than %u", (unsigned long)n, PRIVSEP_PAYLOAD_MAX);
	*len = (size_t)n;
	return 0;
}

static bool
text_ok(const char *s, size_t n, enum text_class c)
{
	size_t i;

	if (memchr(s, '\0', n) != NULL)
		return false;
	switch (c) {
	case T_NAME:
		for (i = 0; i < n; i++)
			if (s[i] <= ' ' || s[i] > '~')
				return false;
		return true;
	case T_LINE:
		return text_printable(s, true);
	case T_LINES:
		return text_printable_lines(s);
	case T_UTF8:
		break;
	}
	return text_utf8_valid(s, n);
}

/* One field at *off of the payload p (n bytes) against its spec. */
static int
decode_field(const unsigned char *p, size_t n, size_t *off, const struct field_spec *fs,
    struct privsep_field *f, struct qerr *e)
{
	uint64_t len;
	char tag;

	if (*off >= n)
		return qerr_set(e, QERR_INVALID, fs->name, "%s: missing", fs->name);
	tag = (char)p[(*off)++];
	memset(f, 0, sizeof(*f));
	if (fs->kind == 'i') {
		if (tag != 'i' || n - *off < 8)
			return qerr_set(e, QERR_INVALID, fs->name, "%s: %s", fs->name,
			    tag != 'i' ? "not an integer" : "truncated");
		f->i = (int64_t)get_be(p + *off, 8);
		*off += 8;
		if (f->i < fs->lo || f->i > fs->hi)
			return qerr_set(e, QERR_INVALID, fs->name, "%s: %lld is outside "
			    "[%lld, %lld]", fs->name, (long long)f->i, (long long)fs->lo,
			    (long long)fs->hi);
		return 0;
	}
	if (tag == 'n' && fs->kind == 'o')
		return 0;
	if (tag != 's')
		return qerr_set(e, QERR_INVALID, fs->name, "%s: %s", fs->name,
		    tag == 'n' ? "required, absent" : "not a string");
	if (n - *off < 4)
		return qerr_set(e, QERR_INVALID, fs->name, "%s: truncated", fs->name);
	len = get_be(p + *off, 4);
	*off += 4;
	if (len > n - *off || n - *off - len < 1 || p[*off + len] != '\0')
		return qerr_set(e, QERR_INVALID, fs->name, "%s: length %lu runs past the "
		    "message or lacks its NUL", fs->name, (unsigned long)len);
	if ((int64_t)len < fs->lo || (int64_t)len > fs->hi)
		return qerr_set(e, QERR_INVALID, fs->name, "%s: %lu bytes, not %lld to %lld",
		    fs->name, (unsigned long)len, (long long)fs->lo, (long long)fs->hi);
	f->s = (const char *)p + *off;
	f->len = (size_t)len;
	*off += (size_t)len + 1;
	if (!text_ok(f->s, f->len, fs->text))
		return qerr_set(e, QERR_INVALID, fs->name, "%s: %s", fs->name,
		    fs->text == T_NAME ? "not a printable ASCII word" : fs->text == T_UTF8 ?
		    "not UTF-8" : "not printable text");
	return 0;
}

int
privsep_decode(const unsigned char *buf, size_t len, struct privsep_msg *m,
    struct qerr *e)
{
	const struct type_spec *ts;
	size_t n, off = 0, i;
	int r;

	memset(m, 0, sizeof(*m));
	if (len < PRIVSEP_HDR_LEN)
		return qerr_set(e, QERR_INVALID, "length", "message of %zu bytes, shorter "
		    "than its header", len);
	if ((r = privsep_header(buf, &n, e)) != 0)
		return r;
	if (n != len - PRIVSEP_HDR_LEN)
		return qerr_set(e, QERR_INVALID, "length", "header says %zu bytes, the "
		    "message has %zu", n, len - PRIVSEP_HDR_LEN);
	m->type = (enum privsep_type)get_be(buf + 2, 2);
	ts = &specs[m->type];
	for (i = 0; i < ts->n; i++)
		if ((r = decode_field(buf + PRIVSEP_HDR_LEN, n, &off, &ts->f[i], &m->f[i],
		    e)) != 0)
			return r;
	if (off != n)
		return qerr_set(e, QERR_INVALID, "length", "%s: %zu bytes after its last "
		    "field", ts->name, n - off);
	m->n = ts->n;
	return 0;
}

static const char *
get_str(const struct privsep_msg *m, size_t i)
{
	return m->f[i].s;
}

/* The strings of a step, as the EXECUTE schema orders them. */
int
privsep_put_execute(struct privsep_buf *b, const char *system, const struct step *s,
    struct qerr *e)
{
	privsep_begin(b, PRIVSEP_EXECUTE);
	privsep_put_str(b, system);
	privsep_put_str(b, s->id);
	privsep_put_str(b, s->action_id);
	privsep_put_str(b, s->account_id);
	privsep_put_str(b, s->account_ref);
	privsep_put_str(b, s->account_name);
	privsep_put_int(b, s->type);
	privsep_put_str(b, s->params);
	privsep_put_int(b, s->attempts);
	privsep_put_int(b, s->waits);
	return privsep_finish(b, e);
}

void
privsep_get_execute(const struct privsep_msg *m, const char **system, struct step *s)
{
	memset(s, 0, sizeof(*s));
	*system = get_str(m, 0);
	s->system = (char *)get_str(m, 0);
	s->id = (char *)get_str(m, 1);
	s->action_id = (char *)get_str(m, 2);
	s->account_id = (char *)get_str(m, 3);
	s->account_ref = (char *)get_str(m, 4);
	s->account_name = (char *)get_str(m, 5);
	s->type = (enum action_type)m->f[6].i;
	s->params = (char *)get_str(m, 7);
	s->attempts = (int)m->f[8].i;
	s->waits = (int)m->f[9].i;
}

/* Bytes that are not UTF-8 become '?': a peer's message is shown, never trusted. */
static void
fix_utf8(char *s)
{
	size_t i, n = strlen(s);

	for (i = 0; i < n && !text_utf8_valid(s, n); i++)
		if ((unsigned char)s[i] >= 0x80)
			s[i] = '?';
}

int
privsep_put_result(struct privsep_buf *b, const struct step_result *res, struct qerr *e)
{
	struct step_result c = *res;

	c.request_id[sizeof(c.request_id) - 1] = '\0';
	c.error_code[sizeof(c.error_code) - 1] = '\0';
	c.message[sizeof(c.message) - 1] = '\0';
	c.state[sizeof(c.state) - 1] = '\0';
	fix_utf8(c.request_id);
	fix_utf8(c.error_code);
	fix_utf8(c.message);
	fix_utf8(c.state);
	privsep_begin(b, PRIVSEP_RESULT);
	privsep_put_int(b, c.outcome);
	privsep_put_int(b, c.retry_after_ms < 0 ? 0 : c.retry_after_ms);
	privsep_put_str(b, c.request_id);
	privsep_put_str(b, c.error_code);
	privsep_put_str(b, c.message);
	privsep_put_str(b, c.state);
	privsep_put_int(b, c.not_sent);
	privsep_put_int(b, c.concurrency_limited);
	return privsep_finish(b, e);
}

void
privsep_get_result(const struct privsep_msg *m, struct step_result *res)
{
	memset(res, 0, sizeof(*res));
	res->outcome = (enum step_outcome)m->f[0].i;
	res->retry_after_ms = (int)m->f[1].i;
	memcpy(res->request_id, m->f[2].s, m->f[2].len + 1);
	memcpy(res->error_code, m->f[3].s, m->f[3].len + 1);
	memcpy(res->message, m->f[4].s, m->f[4].len + 1);
	memcpy(res->state, m->f[5].s, m->f[5].len + 1);
	res->not_sent = m->f[6].i != 0;
	res->concurrency_limited = m->f[7].i != 0;
}

/* The account's strings in the order of ACCOUNT_FIELDS. */
static char **
account_str(struct account *a, size_t i)
{
	char **v[] = { &a->id, &a->identity_id, &a->system, &a->kind, &a->external_id,
		&a->sid, &a->dn, &a->username, &a->upn, &a->display_name, &a->email,
		&a->state, &a->risk, &a->link_rule, &a->linked_by };

	return v[i];
}

#define ACCOUNT_NSTR 15

static void
put_account_fields(struct privsep_buf *b, enum privsep_type t, const char *system,
    int64_t type, const struct account *a, bool fix)
{
	struct account c = *a;
	char *s;
	size_t i;

	privsep_begin(b, t);
	privsep_put_str(b, system);
	privsep_put_int(b, type);
	for (i = 0; i < ACCOUNT_NSTR; i++) {
		s = *account_str(&c, i);
		if (fix && s != NULL && (s = strdup(s)) != NULL)
			fix_utf8(s);
		privsep_put_str(b, s);
		if (fix)
			free(s);
	}
	privsep_put_int(b, a->synced);
	privsep_put_int(b, a->state_read_at < 0 ? 0 : a->state_read_at);
	privsep_put_int(b, a->created_at < 0 ? 0 : a->created_at);
	privsep_put_int(b, a->linked_at < 0 ? 0 : a->linked_at);
}

int
privsep_put_account(struct privsep_buf *b, enum privsep_type t, const char *system,
    int64_t type, const struct account *a, struct qerr *e)
{
	int r;

	put_account_fields(b, t, system, type, a, false);
	if ((r = privsep_finish(b, e)) != QERR_INVALID)
		return r;
	/* A directory's text that is no UTF-8 is shown with '?', never refused. */
	put_account_fields(b, t, system, type, a, true);
	return privsep_finish(b, e);
}

void
privsep_get_account(const struct privsep_msg *m, struct account *a)
{
	size_t i;

	memset(a, 0, sizeof(*a));
	for (i = 0; i < ACCOUNT_NSTR; i++)
		*account_str(a, i) = (char *)get_str(m, 2 + i);
	a->synced = m->f[2 + ACCOUNT_NSTR].i != 0;
	a->state_read_at = m->f[3 + ACCOUNT_NSTR].i;
	a->created_at = m->f[4 + ACCOUNT_NSTR].i;
	a->linked_at = m->f[5 + ACCOUNT_NSTR].i;
}

int
privsep_put_error(struct privsep_buf *b, int code, const char *field,
    const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	struct qerr e;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	text_utf8_truncate(msg, sizeof(msg) - 1);
	fix_utf8(msg);
	privsep_begin(b, PRIVSEP_ERROR);
	privsep_put_int(b, code < 0 && code >= -100 ? code : QERR_INTERNAL);
	privsep_put_str(b, field);
	privsep_put_str(b, msg[0] ? msg : "error");
	return privsep_finish(b, &e);
}

int
privsep_get_error(const struct privsep_msg *m, struct qerr *e)
{
	return qerr_set(e, (int)m->f[0].i, get_str(m, 1), "%s", get_str(m, 2));
}
