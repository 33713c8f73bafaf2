/*
 * How an action becomes steps (one per account it touches) and how the steps' states
 * decide the action's state. Pure: the caller says which accounts support which types.
 */
#ifndef QUELL_CORE_LIFECYCLE_H
#define QUELL_CORE_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"

typedef bool (*lifecycle_supports_fn)(void *arg, const struct account *acct,
    enum action_type type);

/* The name people know acct by: sAMAccountName or login, else UPN, else the
 * external id (borrowed from acct). */
const char *lifecycle_account_name(const struct account *acct);

/*
 * Fills a->steps from the identity's linked accounts (or only a->account_id): a step
 * per account, queued where its system supports a->type and not_applicable elsewhere.
 * Fails, adding no step, when the named account is not linked to the identity or its
 * system does not support the type, or when no account supports it. a->id, type,
 * params and created_at must be set. Steps are owned by a (action_clear frees them).
 */
int lifecycle_plan(struct action *a, const struct account *accts, size_t n,
    lifecycle_supports_fn supports, void *arg, struct qerr *e);

/*
 * The action's status given its steps: non-terminal (queued or running) while a step
 * is queued, running or waiting to retry; then completed, partially_completed, failed
 * or cancelled. msg receives a summary such as "1 succeeded, 1 not applicable".
 */
enum action_status lifecycle_rollup(const struct action *a, char *msg, size_t len);

#endif
