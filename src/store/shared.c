/* Checks and patterns both backends apply alike (shared.h). */
#include <stdlib.h>
#include <string.h>

#include "shared.h"

char *
store_like_pattern(const char *text)
{
	size_t n = strlen(text), i, j = 0;
	char *p;

	if ((p = malloc(2 * n + 3)) == NULL)
		return NULL;
	p[j++] = '%';
	for (i = 0; i < n; i++) {
		if (text[i] == '%' || text[i] == '_' || text[i] == '\\')
			p[j++] = '\\';
		p[j++] = text[i];
	}
	p[j++] = '%';
	p[j] = '\0';
	return p;
}

int
store_check_enums(enum action_type t, const char *status, struct qerr *e)
{
	if ((unsigned)t >= ACTION_TYPE_COUNT)
		return qerr_set(e, QERR_INVALID, "type", "unknown action type %d", (int)t);
	if (strcmp(status, "unknown") == 0)
		return qerr_set(e, QERR_INVALID, "status", "unknown status");
	return 0;
}

static bool
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

bool
store_account_differs(const struct account *a, const struct account *cur)
{
	return !same_str(a->kind, cur->kind) || !same_str(a->sid, cur->sid) ||
	    !same_str(a->dn, cur->dn) || !same_str(a->username, cur->username) ||
	    !same_str(a->upn, cur->upn) || !same_str(a->display_name, cur->display_name) ||
	    !same_str(a->email, cur->email) || a->synced != cur->synced ||
	    (a->state != NULL && !same_str(a->state, cur->state)) ||
	    (a->risk != NULL && !same_str(a->risk, cur->risk));
}
