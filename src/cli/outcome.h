/* What quell's exit status says; see quell(1). */
#ifndef QUELL_CLI_OUTCOME_H
#define QUELL_CLI_OUTCOME_H

#include "core/err.h"

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILED = 1,		/* action ended badly, audit chain broken */
	CLI_EXIT_USAGE = 2,		/* bad arguments or configuration */
	CLI_EXIT_REFUSED = 3,		/* the API answered 4xx */
	CLI_EXIT_UNREACHABLE = 4,	/* no answer, 5xx, or an answer we cannot read */
	CLI_EXIT_UNCONFIRMED = 5,
};

/* The exit status for an error a command returned; e->status is the HTTP status. */
int cli_exit_for_error(const struct qerr *e);
/* The exit status for an action in this status (an API status name). */
int cli_exit_for_action(const char *status);

#endif
