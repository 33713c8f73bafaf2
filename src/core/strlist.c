/* Word lists for the policy and disruption files; see strlist.h. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "strlist.h"

void
strlist_clear(struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int
strlist_add(struct strlist *l, const char *s, size_t len)
{
	char **nv;

	if ((nv = realloc(l->v, (l->n + 1) * sizeof(*nv))) == NULL)
		return QERR_NOMEM;
	l->v = nv;
	if ((l->v[l->n] = strndup(s, len)) == NULL)
		return QERR_NOMEM;
	l->n++;
	return 0;
}

int
strlist_split(struct strlist *l, const char *v, const char *sep)
{
	const char *p = v, *start, *end;
	size_t n;
	int r;

	while (*p != '\0') {
		n = strcspn(p, sep);
		start = p;
		end = p + n;
		while (start < end && isspace((unsigned char)*start))
			start++;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (end > start && (r = strlist_add(l, start, (size_t)(end - start))) != 0)
			return r;
		p += n;
		if (*p != '\0')
			p++;
	}
	return 0;
}

bool
strlist_has(char *const *v, size_t n, const char *s, bool nocase)
{
	size_t i;

	for (i = 0; s != NULL && i < n; i++)
		if ((nocase ? strcasecmp(v[i], s) : strcmp(v[i], s)) == 0)
			return true;
	return false;
}

bool
strlist_meet(char *const *a, size_t na, char *const *b, size_t nb, bool nocase)
{
	size_t i;

	for (i = 0; i < na; i++)
		if (strlist_has(b, nb, a[i], nocase))
			return true;
	return false;
}
