/* Lists of words as config values give them ("a, b c"), owned by the list. */
#ifndef QUELL_CORE_STRLIST_H
#define QUELL_CORE_STRLIST_H

#include <stdbool.h>
#include <stddef.h>

struct strlist {
	char **v;
	size_t n;
};

/* Frees the words and empties l; an empty list is fine. */
void strlist_clear(struct strlist *l);
/* Appends a copy of the len bytes at s; QERR_NOMEM. */
int strlist_add(struct strlist *l, const char *s, size_t len);
/* Appends the words of v between any of the characters in sep, white space trimmed
 * off each, empty ones skipped; QERR_NOMEM. */
int strlist_split(struct strlist *l, const char *v, const char *sep);
/* Whether s is one of the n words at v (NULL never is), ignoring case when nocase. */
bool strlist_has(char *const *v, size_t n, const char *s, bool nocase);
/* Whether any of the na words at a is one of the nb at b. */
bool strlist_meet(char *const *a, size_t na, char *const *b, size_t nb, bool nocase);

#endif
