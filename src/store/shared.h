/*
 * What every backend's files share that is not SQL (shared.c): the checks and
 * patterns the SQLite and PostgreSQL stores apply alike.
 */
#ifndef QUELL_STORE_SHARED_H
#define QUELL_STORE_SHARED_H

#include <stdbool.h>

#include "core/err.h"
#include "core/model.h"

/* "%text%" with LIKE's wildcards (% and _) and the escape character \ escaped, so
 * that text matches as itself; caller frees; NULL when out of memory. */
char *store_like_pattern(const char *text);
/* QERR_INVALID for an action type or a status name ("unknown") a row cannot hold. */
int store_check_enums(enum action_type t, const char *status, struct qerr *e);
/* Whether a sync's read of an account differs from the stored cur; an unknown state
 * or risk (NULL) never does. */
bool store_account_differs(const struct account *a, const struct account *cur);

#endif
