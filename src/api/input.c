/*
 * Input checks every route shares: string fields (printable UTF-8, bounded), the
 * allowed keys of a body, ids, page sizes, tag lists. Each refusal names the field.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/text.h"
#include "internal.h"

/* A string field: present (unless optional), a string, printable UTF-8, ≤ max. */
static int
field_str(struct req *q, json_t *o, const char *key, bool required, size_t max,
    bool lines, const char **out)
{
	json_t *v = json_object_get(o, key);
	const char *s;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return req_error(q, 400, "invalid_input", key, "%s is required", key),
			    -1;
		return 0;
	}
	if (!json_is_string(v))
		return req_error(q, 400, "invalid_input", key, "%s must be a string", key),
		    -1;
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v) ||
	    !(lines ? text_printable_lines(s) : text_printable(s, true)))
		return req_error(q, 400, "invalid_input", key,
		    "%s must be text without control characters%s", key,
		    lines ? " other than tabs and line breaks" : ""), -1;
	if (required && s[0] == '\0')
		return req_error(q, 400, "invalid_input", key, "%s must not be empty", key),
		    -1;
	if (strlen(s) > max)
		return req_error(q, 400, "invalid_input", key,
		    "%s is longer than %zu bytes", key, max), -1;
	*out = s;
	return 0;
}

int
req_field_str(struct req *q, json_t *o, const char *key, bool required, size_t max,
    const char **out)
{
	return field_str(q, o, key, required, max, false, out);
}

int
req_field_text(struct req *q, json_t *o, const char *key, bool required, size_t max,
    const char **out)
{
	return field_str(q, o, key, required, max, true, out);
}

int
req_only_keys(struct req *q, json_t *o, const char *prefix, const char *const *keys)
{
	const char *k;
	json_t *v;
	size_t i;
	char f[128];

	json_object_foreach(o, k, v) {
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(k, keys[i]) == 0)
				break;
		if (keys[i] == NULL) {
			/* An empty name is named too: as "" (else the field would be left out). */
			snprintf(f, sizeof(f), "%s%.100s", prefix, k[0] ? k : "\"\"");
			return req_error(q, 400, "invalid_input", f, "unknown field '%s'", f),
			    -1;
		}
	}
	return 0;
}

int
req_check_id(struct req *q, const char *field, const char *v, const char *prefix)
{
	if (v != NULL && !id_valid(v, prefix))
		return req_error(q, 400, "invalid_input", field,
		    "%s must be an id of the form %s_<24 hex digits>", field, prefix), -1;
	return 0;
}

int
req_limit(struct req *q, int def, int *out)
{
	const char *s = req_query(q, "limit");
	char *end;
	long n;

	*out = def;
	if (s == NULL)
		return 0;
	/* Digits only: strtol alone would take " 10" or "+10". */
	n = strtol(s, &end, 10);
	if (!isdigit((unsigned char)*s) || *end != '\0' || n < 1 || n > 1000)
		return req_error(q, 400, "invalid_input", "limit",
		    "limit must be a whole number from 1 to 1000"), -1;
	*out = (int)n;
	return 0;
}

/* Tags: an array of at most 64 non-empty printable strings of at most 64 bytes. */
int
req_tag_list(struct req *q, json_t *arr, const char *field, char ***out, size_t *n)
{
	const char *s;
	json_t *t;
	size_t k;

	*out = NULL;
	*n = 0;
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > 64)
		return req_error(q, 400, "invalid_input", field,
		    "%s must be an array of at most 64 strings", field), -1;
	if ((*out = calloc(json_array_size(arr) + 1, sizeof(**out))) == NULL)
		return req_error(q, 500, "internal", NULL, "out of memory"), -1;
	json_array_foreach(arr, k, t) {
		s = json_string_value(t);
		if (s == NULL || s[0] == '\0' || strlen(s) != json_string_length(t) ||
		    strlen(s) > 64 || !text_printable(s, false))
			return req_error(q, 400, "invalid_input", field,
			    "%s[%zu] must be non-empty printable text of at most 64 bytes",
			    field, k), -1;
		(*out)[(*n)++] = (char *)s;
	}
	return 0;
}

/* An optional {"reason": "..."} body; NULL when absent or empty. */
int
req_optional_reason(struct req *q, json_t **o, const char **reason)
{
	static const char *const keys[] = { "reason", NULL };

	*reason = NULL;
	*o = NULL;
	if (q->len == 0)
		return 0;
	if ((*o = req_json(q)) == NULL)
		return -1;
	if (req_only_keys(q, *o, "", keys) != 0 ||
	    req_field_str(q, *o, "reason", false, REASON_MAX, reason) != 0)
		return -1;
	return 0;
}

int
req_reply_page(struct req *q, const char *items, const struct list_ctx *c, int limit,
    const char *cursor)
{
	json_t *last = json_array_get(c->arr, json_array_size(c->arr) - 1);

	/* A full page may have more behind it; a short one is the last. */
	return req_reply(q, 200, json_pack("{s:O, s:O}", items, c->arr, "next",
	    c->n == limit && last ? json_object_get(last, cursor) : json_null()));
}
