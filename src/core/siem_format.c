/* RFC 5424 and CEF text of audit entries for a SIEM (see siem_format.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "siem_format.h"
#include "text.h"

/* A growing string; a failed allocation is remembered and reported once at the end,
 * so the formatters need no check after every append. */
struct sbuf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void
sb_chr(struct sbuf *b, char c)
{
	sb_add(b, &c, 1);
}

/* Length of the well-formed UTF-8 character at s (at most n bytes), 0 if none. */
static size_t
utf8_char(const char *s, size_t n)
{
	unsigned char c = (unsigned char)s[0];
	size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
	    (c & 0xf8) == 0xf0 ? 4 : 0;

	if (k == 0 || k > n || !text_utf8_valid(s, k))
		return 0;
	return k;
}

static char *
sb_finish(struct sbuf *b)
{
	if (b->oom) {
		free(b->p);
		return NULL;
	}
	/* Nothing appended: still a string the caller can free. */
	if (b->p == NULL)
		b->p = calloc(1, 1);
	return b->p;
}

/* Invalid UTF-8 becomes '?': both formats are defined over UTF-8 text. */
static void
sb_escaped(struct sbuf *b, const char *s, const char *specials, bool cef_ext,
    bool header)
{
	size_t n = strlen(s), i = 0, k;

	while (i < n) {
		char c = s[i];

		if (c == '\n' || c == '\r') {
			if (cef_ext)
				sb_str(b, c == '\n' ? "\\n" : "\\r");
			else if (header)
				sb_chr(b, ' ');
			else
				sb_chr(b, c);
			i++;
			continue;
		}
		if (strchr(specials, c) != NULL) {
			sb_chr(b, '\\');
			sb_chr(b, c);
			i++;
			continue;
		}
		if ((k = utf8_char(s + i, n - i)) == 0) {
			sb_chr(b, '?');
			i++;
			continue;
		}
		sb_add(b, s + i, k);
		i += k;
	}
}

char *
siem_cef_header_escape(const char *s)
{
	struct sbuf b = { 0 };

	sb_escaped(&b, s, "\\|", false, true);
	return sb_finish(&b);
}

char *
siem_cef_ext_escape(const char *s)
{
	struct sbuf b = { 0 };

	sb_escaped(&b, s, "\\=", true, false);
	return sb_finish(&b);
}

char *
siem_sd_escape(const char *s)
{
	struct sbuf b = { 0 };

	sb_escaped(&b, s, "\"\\]", false, false);
	return sb_finish(&b);
}

int
siem_syslog_severity(const char *event)
{
	static const char *const bad[] = { "denied", "failed", "refused", "rejected",
	    "exceeded", "broken", "tamper" };
	size_t i;

	for (i = 0; event != NULL && i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strstr(event, bad[i]) != NULL)
			return 4;
	return 5;
}

int
siem_cef_severity(const char *event)
{
	return siem_syslog_severity(event) == 4 ? 7 : 3;
}

/* A header field of RFC 5424: printable US-ASCII without spaces, at most max bytes;
 * anything else becomes '_', nothing at all the NILVALUE. */
static void
sb_header_field(struct sbuf *b, const char *s, size_t max)
{
	size_t i;

	if (s == NULL || *s == '\0') {
		sb_chr(b, '-');
		return;
	}
	for (i = 0; s[i] != '\0' && i < max; i++)
		sb_chr(b, s[i] > ' ' && s[i] < 127 ? s[i] : '_');
}

/* <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID and a space. */
static void
syslog_header(struct sbuf *b, const struct audit_entry *ent, const struct siem_origin *o)
{
	char t[TEXT_TIME_LEN], pri[16];
	int fac = o->facility >= 0 && o->facility <= 23 ? o->facility : 13;

	snprintf(pri, sizeof(pri), "<%d>1 ", fac * 8 + siem_syslog_severity(ent->event));
	sb_str(b, pri);
	text_time_format(ent->time, t);
	sb_str(b, t);
	sb_chr(b, ' ');
	sb_header_field(b, o->hostname, 255);
	sb_chr(b, ' ');
	sb_header_field(b, o->app_name ? o->app_name : "quell", 48);
	sb_chr(b, ' ');
	sb_header_field(b, o->procid, 128);
	sb_chr(b, ' ');
	sb_header_field(b, ent->event, 32);
	sb_chr(b, ' ');
}

static void
sd_param(struct sbuf *b, const char *name, const char *v)
{
	if (v == NULL)
		return;
	sb_chr(b, ' ');
	sb_str(b, name);
	sb_str(b, "=\"");
	sb_escaped(b, v, "\"\\]", false, false);
	sb_chr(b, '"');
}

static int
rfc5424(struct sbuf *b, const struct audit_entry *ent, const struct siem_origin *o,
    struct qerr *e)
{
	char num[32], *canon;

	if ((canon = audit_canonical(ent)) == NULL)
		return qerr_set(e, QERR_INVALID, "detail", "audit entry %lld: detail is not "
		    "a JSON object", (long long)ent->seq);
	syslog_header(b, ent, o);
	sb_str(b, "[" SIEM_SD_ID);
	snprintf(num, sizeof(num), "%lld", (long long)ent->seq);
	sd_param(b, "seq", num);
	snprintf(num, sizeof(num), "%lld", (long long)ent->time);
	sd_param(b, "time", num);
	sd_param(b, "event", ent->event);
	sd_param(b, "actor", ent->actor);
	sd_param(b, "action_id", ent->action_id);
	sd_param(b, "step_id", ent->step_id);
	sd_param(b, "identity_id", ent->identity_id);
	sd_param(b, "prev_hash", ent->prev_hash);
	sd_param(b, "hash", ent->hash);
	/* The canonical JSON is ASCII (JSON_ENSURE_ASCII): MSG-ANY, no BOM needed. */
	sb_str(b, "] ");
	sb_str(b, canon);
	free(canon);
	return 0;
}

static void
cef_header(struct sbuf *b, const char *s)
{
	sb_escaped(b, s != NULL ? s : "", "\\|", false, true);
	sb_chr(b, '|');
}

static void
cef_ext(struct sbuf *b, const char *key, const char *v)
{
	if (v == NULL)
		return;
	if (b->n > 0 && b->p[b->n - 1] != '|')
		sb_chr(b, ' ');
	sb_str(b, key);
	sb_chr(b, '=');
	sb_escaped(b, v, "\\=", true, false);
}

/* A custom string and its label, as CEF names them (cs1 with cs1Label, …). */
static void
cef_cs(struct sbuf *b, int i, const char *label, const char *v)
{
	char k[16], kl[24];

	if (v == NULL)
		return;
	snprintf(k, sizeof(k), "cs%d", i);
	snprintf(kl, sizeof(kl), "cs%dLabel", i);
	cef_ext(b, kl, label);
	cef_ext(b, k, v);
}

static int
cef(struct sbuf *b, const struct audit_entry *ent, const struct siem_origin *o)
{
	char num[32], *name, *p;

	syslog_header(b, ent, o);
	sb_str(b, "- CEF:0|quell|quell|");
	cef_header(b, o->version != NULL ? o->version : "");
	cef_header(b, ent->event);
	/* Name: the event in words ("action.requested" -> "action requested"). */
	if ((name = strdup(ent->event != NULL ? ent->event : "")) == NULL) {
		b->oom = true;
		return 0;
	}
	for (p = name; *p != '\0'; p++)
		if (*p == '.' || *p == '_')
			*p = ' ';
	cef_header(b, name);
	free(name);
	snprintf(num, sizeof(num), "%d|", siem_cef_severity(ent->event));
	sb_str(b, num);
	snprintf(num, sizeof(num), "%lld", (long long)ent->time);
	cef_ext(b, "rt", num);
	snprintf(num, sizeof(num), "%lld", (long long)ent->seq);
	cef_ext(b, "externalId", num);
	cef_ext(b, "suser", ent->actor);
	cef_ext(b, "dvchost", o->hostname != NULL && *o->hostname ? o->hostname : NULL);
	cef_cs(b, 1, "actionId", ent->action_id);
	cef_cs(b, 2, "identityId", ent->identity_id);
	cef_cs(b, 3, "stepId", ent->step_id);
	cef_cs(b, 4, "hash", ent->hash);
	cef_cs(b, 5, "prevHash", ent->prev_hash);
	cef_ext(b, "msg", ent->detail != NULL && *ent->detail ? ent->detail : "{}");
	return 0;
}

int
siem_format(enum siem_format fmt, const struct audit_entry *ent,
    const struct siem_origin *o, char **out, size_t *len, struct qerr *e)
{
	struct sbuf b = { 0 };
	int r;

	*out = NULL;
	*len = 0;
	r = fmt == SIEM_FORMAT_CEF ? cef(&b, ent, o) : rfc5424(&b, ent, o, e);
	if (r != 0) {
		free(b.p);
		return r;
	}
	if (sb_finish(&b) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	*out = b.p;
	*len = b.n;
	return 0;
}
