/*
 * RFC 4514 / RFC 4515 escaping and the objectGUID / objectSid text forms, so that no
 * value from a person or a directory is ever pasted into a DN or a filter as is.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldapesc.h"

static const char hexdigits[] = "0123456789abcdef";

static char *
put_hex(char *p, unsigned char c)
{
	*p++ = '\\';
	*p++ = hexdigits[c >> 4];
	*p++ = hexdigits[c & 0xf];
	return p;
}

/* How one byte is written: as is, after a backslash, or as \xx. */
enum esc { ESC_KEEP, ESC_BACKSLASH, ESC_HEX };
/* The way byte i of len bytes, c, is written. */
typedef enum esc (*esc_rule)(unsigned char c, size_t i, size_t len);

static enum esc
dn_rule(unsigned char c, size_t i, size_t len)
{
	if (c < 0x20 || c == 0x7f)
		return ESC_HEX;
	if (strchr("\"+,;<>\\", c) != NULL || (i == 0 && (c == '#' || c == ' ')) ||
	    (i == len - 1 && c == ' '))
		return ESC_BACKSLASH;
	return ESC_KEEP;
}

static enum esc
filter_rule(unsigned char c, size_t i, size_t len)
{
	(void)i, (void)len;
	return c < 0x20 || c >= 0x7f || strchr("*()\\", c) != NULL ? ESC_HEX : ESC_KEEP;
}

static enum esc
binary_rule(unsigned char c, size_t i, size_t len)
{
	(void)c, (void)i, (void)len;
	return ESC_HEX;
}

static int
escape(const unsigned char *val, size_t len, esc_rule rule, char **out)
{
	char *buf, *p;
	size_t i;

	*out = NULL;
	/* Worst case every byte grows to three; refuse sizes whose bound would overflow. */
	if (len > (SIZE_MAX - 1) / 3 || (buf = malloc(len * 3 + 1)) == NULL)
		return QERR_NOMEM;
	p = buf;
	for (i = 0; i < len; i++) {
		switch (rule(val[i], i, len)) {
		case ESC_HEX:
			p = put_hex(p, val[i]);
			break;
		case ESC_BACKSLASH:
			*p++ = '\\';
			*p++ = (char)val[i];
			break;
		case ESC_KEEP:
			*p++ = (char)val[i];
			break;
		}
	}
	*p = '\0';
	*out = buf;
	return 0;
}

int
ldapesc_dn_value(const char *val, size_t len, char **out)
{
	return escape((const unsigned char *)val, len, dn_rule, out);
}

int
ldapesc_filter_value(const char *val, size_t len, char **out)
{
	return escape((const unsigned char *)val, len, filter_rule, out);
}

int
ldapesc_filter_binary(const void *buf, size_t len, char **out)
{
	return escape(buf, len, binary_rule, out);
}

/* Text position of each binary byte, in text order: fields 1-3 are little-endian. */
static const unsigned char guid_order[LDAPESC_GUID_LEN] = {
	3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15
};

int
ldapesc_guid_to_text(const void *bin, size_t len, char *out)
{
	const unsigned char *b = bin;
	char *p = out;
	size_t i;

	out[0] = '\0';
	if (bin == NULL || len != LDAPESC_GUID_LEN)
		return QERR_INVALID;
	for (i = 0; i < LDAPESC_GUID_LEN; i++) {
		unsigned char c = b[guid_order[i]];

		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hexdigits[c >> 4];
		*p++ = hexdigits[c & 0xf];
	}
	*p = '\0';
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
ldapesc_guid_from_text(const char *text, unsigned char *out)
{
	unsigned char tmp[LDAPESC_GUID_LEN];
	const char *p = text;
	size_t i;

	if (text == NULL || strlen(text) != LDAPESC_GUID_TEXT_LEN)
		return QERR_INVALID;
	for (i = 0; i < LDAPESC_GUID_LEN; i++) {
		int hi, lo;

		if (i == 4 || i == 6 || i == 8 || i == 10) {
			if (*p != '-')
				return QERR_INVALID;
			p++;
		}
		if ((hi = hexval(p[0])) < 0 || (lo = hexval(p[1])) < 0)
			return QERR_INVALID;
		tmp[guid_order[i]] = (unsigned char)(hi << 4 | lo);
		p += 2;
	}
	memcpy(out, tmp, sizeof(tmp));
	return 0;
}

#define SID_MAX_SUBAUTH	15

int
ldapesc_sid_to_text(const void *bin, size_t len, char **out)
{
	/* "S-1-" + 0x + 12 hex + 15 × ("-" + 10 digits) + NUL fits easily. */
	char buf[4 + 14 + SID_MAX_SUBAUTH * 11 + 1];
	const unsigned char *b = bin;
	uint64_t auth = 0;
	size_t n, i, off;
	int w;

	*out = NULL;
	if (bin == NULL || len < 8 || b[0] != 1)
		return QERR_INVALID;
	n = b[1];
	if (n > SID_MAX_SUBAUTH || len != 8 + 4 * n)
		return QERR_INVALID;
	for (i = 2; i < 8; i++)
		auth = auth << 8 | b[i];
	if (auth >> 32)
		w = snprintf(buf, sizeof(buf), "S-1-0x%012" PRIx64, auth);
	else
		w = snprintf(buf, sizeof(buf), "S-1-%" PRIu64, auth);
	off = (size_t)w;
	for (i = 0; i < n; i++) {
		const unsigned char *s = b + 8 + 4 * i;
		uint32_t v = (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 |
		    (uint32_t)s[3] << 24;

		w = snprintf(buf + off, sizeof(buf) - off, "-%" PRIu32, v);
		off += (size_t)w;
	}
	if ((*out = strdup(buf)) == NULL)
		return QERR_NOMEM;
	return 0;
}
