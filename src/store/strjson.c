/* JSON arrays of strings for the stores (strjson.h). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "strjson.h"

static int
nomem(struct qerr *e)
{
	return qerr_set(e, QERR_NOMEM, NULL, "store: out of memory");
}

int
strjson_dump(char *const *v, size_t n, const char *field, const char *noun,
    char **out, struct qerr *e)
{
	json_t *arr, *s;
	size_t i;
	int r = QERR_INTERNAL;

	*out = NULL;
	if ((arr = json_array()) == NULL)
		return nomem(e);
	for (i = 0; i < n; i++) {
		if (v[i] == NULL || (s = json_string(v[i])) == NULL) {
			r = qerr_set(e, QERR_INVALID, field, "%s %zu is not UTF-8 text",
			    noun, i);
			goto out;
		}
		if (json_array_append_new(arr, s) != 0) {
			r = nomem(e);
			goto out;
		}
	}
	if ((*out = json_dumps(arr, JSON_COMPACT)) == NULL) {
		r = nomem(e);
		goto out;
	}
	r = 0;
out:
	json_decref(arr);
	return r;
}

int
strjson_load(const char *text, char ***v, size_t *n, const char *what, struct qerr *e)
{
	json_t *arr;
	const char *t;
	size_t i, len;
	int r = QERR_INTERNAL;

	*v = NULL;
	*n = 0;
	if ((arr = json_loads(text ? text : "[]", 0, NULL)) == NULL ||
	    !json_is_array(arr)) {
		r = qerr_set(e, QERR_STORE, NULL, "%s: not a JSON array", what);
		goto out;
	}
	len = json_array_size(arr);
	if (len > 0 && (*v = calloc(len, sizeof(**v))) == NULL) {
		r = nomem(e);
		goto out;
	}
	for (i = 0; i < len; i++) {
		if ((t = json_string_value(json_array_get(arr, i))) == NULL) {
			r = qerr_set(e, QERR_STORE, NULL, "%s: item %zu is not a string",
			    what, i);
			goto out;
		}
		if (((*v)[i] = strdup(t)) == NULL) {
			r = nomem(e);
			goto out;
		}
		*n = i + 1;
	}
	r = 0;
out:
	json_decref(arr);
	return r;
}
