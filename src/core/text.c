/* UTF-8 validation, RFC 3339 times and the small parsers config files share. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text.h"

bool
text_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, n, k;
	unsigned cp, min;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 1; cp = s[i] & 0x1fu; min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 2; cp = s[i] & 0x0fu; min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 3; cp = s[i] & 0x07u; min = 0x10000;
		} else
			return false;
		if (i + n >= len)
			return false;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static bool
printable(const char *s, bool tabs, bool lines)
{
	size_t i, len = strlen(s);

	if (!text_utf8_valid(s, len))
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && !(tabs && c == '\t') && !(lines && (c == '\n' || c == '\r'))) ||
		    c == 0x7f)
			return false;
		/* C1 controls, U+0080..U+009F, encode as C2 80..C2 9F. */
		if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] <= 0x9f)
			return false;
		/* Bidirectional embeddings, overrides and isolates (U+202A..U+202E, E2 80
		 * AA..AE; U+2066..U+2069, E2 81 A6..A9) make text read differently from
		 * what it is ("Trojan Source"): a reason or title must show what it says. */
		if (c == 0xe2 && i + 2 < len &&
		    (((unsigned char)s[i + 1] == 0x80 && (unsigned char)s[i + 2] >= 0xaa &&
		    (unsigned char)s[i + 2] <= 0xae) ||
		    ((unsigned char)s[i + 1] == 0x81 && (unsigned char)s[i + 2] >= 0xa6 &&
		    (unsigned char)s[i + 2] <= 0xa9)))
			return false;
	}
	return true;
}

bool
text_printable(const char *s, bool tabs)
{
	return printable(s, tabs, false);
}

bool
text_printable_lines(const char *s)
{
	return printable(s, true, true);
}

void
text_utf8_truncate(char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	s[max] = '\0';
}

/* Writes v as n decimal digits at p. */
static char *
put_digits(char *p, int64_t v, int n)
{
	int i;

	for (i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + n;
}

/* The API renders a dozen times per answer: years 1970..9999 are computed here
 * (H. Hinnant's civil_from_days), without gmtime's time zone lock or snprintf. */
void
text_time_format(int64_t ms, char out[TEXT_TIME_LEN])
{
	time_t t = (time_t)(ms / 1000);
	int64_t days = ms / 86400000, sod, doe, yoe, doy, mp, y, m;
	struct tm tm;
	char *p = out;

	if (ms < 0 || ms >= INT64_C(253402300800000)) {
		gmtime_r(&t, &tm);
		snprintf(out, TEXT_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		    tm.tm_sec, (int)(((ms % 1000) + 1000) % 1000));
		return;
	}
	sod = ms / 1000 % 86400;
	days += 719468;
	doe = days % 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	m = mp < 10 ? mp + 3 : mp - 9;
	y = yoe + days / 146097 * 400 + (m <= 2);
	p = put_digits(p, y, 4);
	*p++ = '-';
	p = put_digits(p, m, 2);
	*p++ = '-';
	p = put_digits(p, doy - (153 * mp + 2) / 5 + 1, 2);
	*p++ = 'T';
	p = put_digits(p, sod / 3600, 2);
	*p++ = ':';
	p = put_digits(p, sod / 60 % 60, 2);
	*p++ = ':';
	p = put_digits(p, sod % 60, 2);
	*p++ = '.';
	p = put_digits(p, ms % 1000, 3);
	memcpy(p, "Z", 2);
}

static int
digits(const char **p, int n, int *out)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int
text_time_parse(const char *s, int64_t *ms)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, frac = 0, scale = 1000, oh, om, sign;
	int64_t t;

	memset(&tm, 0, sizeof(tm));
	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
	    digits(&s, 2, &d) || (*s != 'T' && *s != 't' && *s != ' ') || !*s++ ||
	    digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
	    digits(&s, 2, &sec))
		return -1;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -1;
		while (*s >= '0' && *s <= '9') {
			if (scale > 1) {
				scale /= 10;
				frac += (*s - '0') * scale;
			}
			s++;
		}
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900; tm.tm_mon = mo - 1; tm.tm_mday = d;
	tm.tm_hour = h; tm.tm_min = mi; tm.tm_sec = sec;
	t = (int64_t)timegm(&tm);
	if (*s == 'Z' || *s == 'z')
		s++;
	else if (*s == '+' || *s == '-') {
		sign = *s++ == '+' ? 1 : -1;
		if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om) || oh > 23 ||
		    om > 59)
			return -1;
		t -= sign * (oh * 3600 + om * 60);
	} else
		return -1;
	if (*s != '\0')
		return -1;
	*ms = t * 1000 + frac;
	return 0;
}

char *
text_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int64_t
text_span_ms(const char *v, int64_t max_ms)
{
	static const struct {
		char unit;
		int64_t ms;
	} units[] = { { 's', 1000 }, { 'm', 60000 }, { 'h', 3600000 }, { 'd', 86400000 } };
	char *end;
	long n;
	size_t i;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || end == v || n <= 0 || end[0] == '\0' || end[1] != '\0')
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (*end == units[i].unit)
			return n <= max_ms / units[i].ms ? n * units[i].ms : -1;
	return -1;
}
