/*
 * What every backend's files share that is not SQL (shared.c): the checks and
 * patterns the SQLite and PostgreSQL stores apply alike.
 */
#ifndef QUELL_STORE_SHARED_H
#define QUELL_STORE_SHARED_H

#include <stdbool.h>

#include "core/err.h"
#include "core/model.h"

/* The columns of actions and steps, in the order every backend reads them. */
#define ACT_COLS "id, type, status, identity_id, account_id, requested_by, source, " \
	"reason, params, message, cancel_requested, created_at, updated_at, finished_at, " \
	"requested_by_id, undo_of, approval_rule, decided_by, approval_expires, alert_id, " \
	"requested_by_kind, decided_by_id, decided_by_kind"
#define STEP_COLS "id, action_id, account_id, system, account_ref, account_name, " \
	"type, status, params, attempts, not_before, lease_owner, lease_expires, " \
	"request_id, error_code, message, created_at, updated_at, started_at, finished_at, " \
	"waits, wait_ms"

/* Action statuses (model.h names) whose steps may run. */
#define ACT_RUNNABLE "('queued', 'running')"

/* "%text%" with LIKE's wildcards (% and _) and the escape character \ escaped, so
 * that text matches as itself; caller frees; NULL when out of memory. */
char *store_like_pattern(const char *text);
/* QERR_INVALID for an action type or a status name ("unknown") a row cannot hold. */
int store_check_enums(enum action_type t, const char *status, struct qerr *e);
/* Whether a sync's read of an account differs from the stored cur; an unknown state
 * or risk (NULL) never does. */
bool store_account_differs(const struct account *a, const struct account *cur);

#endif
