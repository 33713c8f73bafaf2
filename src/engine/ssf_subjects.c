/*
 * The subjects of an SSF stream (ssf.h): which accounts a receiver hears about.
 * A stream starts with the transmitter's default_subjects, ALL or NONE, and keeps
 * the subjects added or removed since as the exceptions to it, inside its own
 * configuration row, so they last as the stream does. Subjects are RFC 9493
 * identifiers of the formats that can name a quell account.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/ssf.h"

#define SUBJECT_STR_MAX		2048
#define STREAM_SUBJECTS_MAX	1000

static int
why_set(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
why_set(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* A string member of at most max characters, not empty. */
static int
member_str(const json_t *sub, const char *k, size_t max, char *why, size_t n)
{
	const json_t *v = json_object_get(sub, k);

	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > max)
		return why_set(why, n, "%s must be a non-empty string of at most %zu "
		    "characters", k, max);
	return 0;
}

static int
check_simple(const json_t *sub, bool nested, char *why, size_t n);

/* complex: user and/or tenant, each a simple subject (quell's events concern
 * accounts, which have nothing else to match). */
static int
check_complex(const json_t *sub, char *why, size_t n)
{
	const char *k;
	json_t *v;
	bool some = false;

	json_object_foreach((json_t *)sub, k, v) {
		if (strcmp(k, "format") == 0)
			continue;
		if (strcmp(k, "user") != 0 && strcmp(k, "tenant") != 0)
			return why_set(why, n, "complex member %s: quell matches accounts by "
			    "user and tenant only", k);
		if (check_simple(v, true, why, n) != 0)
			return -1;
		some = true;
	}
	if (!some)
		return why_set(why, n, "%s", "a complex subject needs user or tenant");
	return 0;
}

static int
check_email(const json_t *sub, const char *k, char *why, size_t n)
{
	const char *v, *at;

	if (member_str(sub, k, 320, why, n) != 0)
		return -1;
	v = json_string_value(json_object_get(sub, k));
	at = strchr(v, '@');
	if (at == NULL || at == v || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return why_set(why, n, "%s must be one local part, '@' and a domain", k);
	return 0;
}

static int
check_simple(const json_t *sub, bool nested, char *why, size_t n)
{
	const char *fmt = json_string_value(json_object_get(sub, "format"));

	if (!json_is_object(sub) || fmt == NULL)
		return why_set(why, n, "%s", "must be an object with a format");
	if (strcmp(fmt, "email") == 0)
		return check_email(sub, "email", why, n);
	if (strcmp(fmt, "account") == 0) {
		if (member_str(sub, "uri", SUBJECT_STR_MAX, why, n) != 0)
			return -1;
		if (strncmp(json_string_value(json_object_get(sub, "uri")), "acct:", 5) != 0)
			return why_set(why, n, "%s", "uri must be an acct: URI");
		return 0;
	}
	if (strcmp(fmt, "iss_sub") == 0)
		return member_str(sub, "iss", SUBJECT_STR_MAX, why, n) != 0 ? -1 :
		    member_str(sub, "sub", SUBJECT_STR_MAX, why, n);
	if (strcmp(fmt, "opaque") == 0)
		return member_str(sub, "id", SUBJECT_STR_MAX, why, n);
	if (!nested && strcmp(fmt, "complex") == 0)
		return check_complex(sub, why, n);
	return why_set(why, n, "format '%.64s' cannot name a quell account: email, "
	    "account, iss_sub, opaque, complex or aliases", fmt);
}

int
ssf_subject_check(const json_t *sub, char *why, size_t n)
{
	const char *fmt = json_string_value(json_object_get(sub, "format"));
	const json_t *ids, *v;
	size_t i;

	if (fmt == NULL || strcmp(fmt, "aliases") != 0)
		return check_simple(sub, false, why, n);
	ids = json_object_get(sub, "identifiers");
	if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 16)
		return why_set(why, n, "%s", "identifiers must be an array of 1 to 16 "
		    "subjects");
	json_array_foreach(ids, i, v)
		if (check_simple(v, false, why, n) != 0)
			return -1;
	return 0;
}

static bool
str_eq(const json_t *sub, const char *k, const char *want, bool nocase)
{
	const char *v = json_string_value(json_object_get(sub, k));

	if (v == NULL || want == NULL)
		return false;
	return nocase ? strcasecmp(v, want) == 0 : strcmp(v, want) == 0;
}

/* An address is the account's mail or its UPN, whatever the case. */
static bool
address_is(const char *v, const struct account *a)
{
	return v != NULL && ((a->email != NULL && strcasecmp(v, a->email) == 0) ||
	    (a->upn != NULL && strcasecmp(v, a->upn) == 0));
}

static bool
names_simple(const json_t *sub, const struct account *a, const char *issuer)
{
	const char *fmt = json_string_value(json_object_get(sub, "format"));
	const char *uri;

	if (fmt == NULL)
		return false;
	if (strcmp(fmt, "email") == 0)
		return address_is(json_string_value(json_object_get(sub, "email")), a);
	if (strcmp(fmt, "account") == 0)
		return (uri = json_string_value(json_object_get(sub, "uri"))) != NULL &&
		    strncmp(uri, "acct:", 5) == 0 && address_is(uri + 5, a);
	if (strcmp(fmt, "iss_sub") == 0)
		return str_eq(sub, "iss", issuer, false) &&
		    str_eq(sub, "sub", a->external_id, false);
	if (strcmp(fmt, "opaque") == 0)
		return str_eq(sub, "id", a->external_id, false) ||
		    str_eq(sub, "id", a->id, false);
	return false;
}

/* complex: every member names the account: the user as above, the tenant as the
 * opaque name of its quell system (as quell sends it). */
static bool
names_complex(const json_t *sub, const struct account *a, const char *issuer)
{
	const json_t *u = json_object_get(sub, "user"), *t = json_object_get(sub, "tenant");

	if (u == NULL && t == NULL)
		return false;
	if (u != NULL && !names_simple(u, a, issuer))
		return false;
	return t == NULL || (str_eq(t, "format", "opaque", false) &&
	    str_eq(t, "id", a->system, false));
}

bool
ssf_subject_names(const json_t *sub, const struct account *a, const char *issuer)
{
	const char *fmt = json_string_value(json_object_get(sub, "format"));
	const json_t *v;
	size_t i;

	if (fmt != NULL && strcmp(fmt, "aliases") == 0) {
		json_array_foreach(json_object_get(sub, "identifiers"), i, v)
			if (ssf_subject_names(v, a, issuer))
				return true;
		return false;
	}
	if (fmt != NULL && strcmp(fmt, "complex") == 0)
		return names_complex(sub, a, issuer);
	return names_simple(sub, a, issuer);
}

/* The stream's subjects: {"default": "ALL"|"NONE", "except": [subjects]}. A stream
 * made before subjects were kept is ALL without exceptions. */
static bool
default_all(const json_t *stream)
{
	const char *d = json_string_value(json_object_get(json_object_get(stream,
	    SSF_SUBJECTS_KEY), "default"));

	return d == NULL || strcmp(d, "NONE") != 0;
}

bool
ssf_stream_includes(const json_t *stream, const struct account *a, const char *issuer)
{
	const json_t *v;
	bool listed = false;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(stream, SSF_SUBJECTS_KEY),
	    "except"), i, v)
		if ((listed = ssf_subject_names(v, a, issuer)))
			break;
	return default_all(stream) ? !listed : listed;
}

/* The subject as kept: a copy with addresses in lower case, so that the same
 * address added twice is one subject. */
static json_t *
normal(const json_t *sub)
{
	json_t *c = json_deep_copy(sub), *v;
	const char *k;
	char buf[SUBJECT_STR_MAX + 1];
	size_t i, n;

	if (c == NULL)
		return NULL;
	json_object_foreach(c, k, v) {
		if (json_is_object(v)) {
			json_object_set_new(c, k, normal(v));
			continue;
		}
		if (json_is_array(v)) {
			for (i = 0; i < json_array_size(v); i++)
				json_array_set_new(v, i, normal(json_array_get(v, i)));
			continue;
		}
		if ((strcmp(k, "email") != 0 && strcmp(k, "uri") != 0) || !json_is_string(v))
			continue;
		n = json_string_length(v) < SUBJECT_STR_MAX ? json_string_length(v) :
		    SUBJECT_STR_MAX;
		for (i = 0; i < n; i++)
			buf[i] = (char)tolower((unsigned char)json_string_value(v)[i]);
		buf[n] = '\0';
		json_object_set_new(c, k, json_string(buf));
	}
	return c;
}

json_t *
ssf_subjects_new(const char *default_subjects)
{
	return json_pack("{s:s, s:[]}", "default", default_subjects, "except");
}

int
ssf_stream_subject_edit(json_t *stream, const json_t *sub, bool add, char *why,
    size_t n)
{
	json_t *set = json_object_get(stream, SSF_SUBJECTS_KEY), *ex, *s;
	bool listing = default_all(stream) ? !add : add;
	size_t i;

	if (set == NULL) {
		if ((set = ssf_subjects_new("ALL")) == NULL ||
		    json_object_set_new(stream, SSF_SUBJECTS_KEY, set) != 0)
			return QERR_NOMEM;
	}
	ex = json_object_get(set, "except");
	if ((s = normal(sub)) == NULL)
		return QERR_NOMEM;
	for (i = 0; i < json_array_size(ex) && !json_equal(json_array_get(ex, i), s); i++)
		;
	if (listing && i == json_array_size(ex) && i >= STREAM_SUBJECTS_MAX) {
		json_decref(s);
		snprintf(why, n, "a stream holds at most %d subjects added or removed",
		    STREAM_SUBJECTS_MAX);
		return QERR_INVALID;
	}
	if (listing && i == json_array_size(ex))
		json_array_append(ex, s);
	else if (!listing && i < json_array_size(ex))
		json_array_remove(ex, i);
	else if (!listing && !default_all(stream)) {
		json_decref(s);
		why_set(why, n, "%s", "the subject is not in the stream");
		return QERR_NOT_FOUND;
	}
	json_decref(s);
	return 0;
}
