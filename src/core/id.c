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
