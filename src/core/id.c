/* Time-ordered random identifiers. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "id.h"

void
id_make(char out[ID_LEN], const char *prefix, int64_t now_ms)
{
	unsigned char r[6];
	char hex[13];

	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
	snprintf(out, ID_LEN, "%s_%012llx%s", prefix,
	    (unsigned long long)now_ms & 0xffffffffffffULL, hex);
}

void
id_uuid4(char out[37])
{
	unsigned char b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
	    b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

bool
id_valid(const char *s, const char *prefix)
{
	size_t pl = strlen(prefix), i;

	if (s == NULL || strncmp(s, prefix, pl) != 0 || s[pl] != '_')
		return false;
	s += pl + 1;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 24;
}
