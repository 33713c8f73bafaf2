/*
 * Lists of strings (identity tags, token scopes, systems a claim skips) as the JSON
 * array text the stores keep and bind (strjson.c), for every backend alike.
 */
#ifndef QUELL_STORE_STRJSON_H
#define QUELL_STORE_STRJSON_H

#include <stddef.h>

#include "core/err.h"

/* v[0..n) as a JSON array in *out (caller frees); an item that is not UTF-8 text is
 * QERR_INVALID naming field, with noun ("tag") saying which item. */
int strjson_dump(char *const *v, size_t n, const char *field, const char *noun,
    char **out, struct qerr *e);
/* The reverse: *v (caller frees each and the array) and *n from text (NULL reads as
 * "[]"); what names the stored value in a QERR_STORE for damaged text. */
int strjson_load(const char *text, char ***v, size_t *n, const char *what,
    struct qerr *e);

#endif
