/* Lookups over the kinds' descriptors, and the value checks their alert id types share. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/kind.h"

const struct kind_info *
kind_find(const struct kind_table *t, const char *kind)
{
	size_t i;

	if (t == NULL || kind == NULL)
		return NULL;
	for (i = 0; i < t->n; i++)
		if (strcmp(t->v[i]->kind, kind) == 0)
			return t->v[i];
	return NULL;
}

const struct kind_alert_id *
kind_alert_id_find(const struct kind_table *t, const char *id_type,
    const struct kind_info **owner)
{
	size_t i, j;

	if (t == NULL || id_type == NULL)
		return NULL;
	for (i = 0; i < t->n; i++)
		for (j = 0; j < t->v[i]->nalert_ids; j++)
			if (strcmp(t->v[i]->alert_ids[j].id_type, id_type) == 0) {
				if (owner != NULL)
					*owner = t->v[i];
				return &t->v[i]->alert_ids[j];
			}
	return NULL;
}

void
kind_alert_id_list(const struct kind_table *t, char *buf, size_t len)
{
	const struct kind_alert_id *a;
	const struct kind_info *owner;
	size_t i, j, used = 0;
	int n;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (i = 0; t != NULL && i < t->n; i++)
		for (j = 0; j < t->v[i]->nalert_ids; j++) {
			a = &t->v[i]->alert_ids[j];
			/* Listed once, where it is first declared. */
			if (kind_alert_id_find(t, a->id_type, &owner) != a)
				continue;
			n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
			    a->id_type);
			if (n < 0 || (size_t)n >= len - used) {
				buf[used] = '\0';	/* whole names only */
				return;
			}
			used += (size_t)n;
		}
}

const char *
kind_account_value(const struct account *acct, enum kind_account_attr attr)
{
	switch (attr) {
	case KIND_ACCOUNT_DN:
		return acct->dn;
	case KIND_ACCOUNT_UPN:
		return acct->upn;
	case KIND_ACCOUNT_USERNAME:
		return acct->username;
	case KIND_ACCOUNT_EXTERNAL_ID:
		return acct->external_id;
	}
	return NULL;
}

bool
kind_valid_upn(char *value)
{
	return strchr(value, '@') != NULL && strchr(value, ' ') == NULL;
}

/* S-1-<revision>-<authority>(-<subauthority>)+ */
bool
kind_valid_sid(char *value)
{
	const char *s = value;
	int dashes = 0;

	if (strncmp(s, "S-1-", 4) != 0)
		return false;
	for (s += 4; *s != '\0'; s++) {
		if (*s == '-' && s[1] != '\0' && s[-1] != '-')
			dashes++;
		else if (!isdigit((unsigned char)*s))
			return false;
	}
	return dashes >= 1;
}

/* Object ids compare in lower case, as the directories that issue them print them. */
bool
kind_valid_guid(char *value)
{
	size_t i;

	if (strlen(value) != 36)
		return false;
	for (i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? value[i] != '-' :
		    !isxdigit((unsigned char)value[i]))
			return false;
	for (i = 0; value[i] != '\0'; i++)
		value[i] = (char)tolower((unsigned char)value[i]);
	return true;
}

bool
kind_ref_guid(const char *ref)
{
	char copy[37];

	if (strlen(ref) != 36)
		return false;
	memcpy(copy, ref, sizeof(copy));
	return kind_valid_guid(copy);
}

bool
kind_ref_alnum(const char *ref)
{
	size_t n = strlen(ref);

	return n >= 1 && n <= 256 && strspn(ref, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n;
}

bool
kind_ref_segment(const char *ref)
{
	size_t i, n = strlen(ref);

	if (n < 1 || n > 256)
		return false;
	for (i = 0; i < n; i++)
		if (ref[i] <= ' ' || ref[i] > '~' || strchr("/\\?#%", ref[i]) != NULL)
			return false;
	return true;
}
