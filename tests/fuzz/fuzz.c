/* Helpers every harness links (fuzz.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

char *
fuzz_text(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

void
fuzz_check(bool ok, const char *why)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz: property violated: %s\n", why);
	abort();
}
