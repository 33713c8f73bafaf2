/* Maps errors and action outcomes to quell's exit statuses. */
#include <string.h>

#include "cli/outcome.h"

int
cli_exit_for_error(const struct qerr *e)
{
	if (e->status >= 400 && e->status <= 499)
		return CLI_EXIT_REFUSED;
	if (e->code == QERR_INVALID || e->code == QERR_CONFIG)
		return CLI_EXIT_USAGE;
	return CLI_EXIT_UNREACHABLE;
}

int
cli_exit_for_action(const char *status)
{
	static const char *const bad[] = {
		"failed", "partially_completed", "cancelled", "denied", "rejected",
	};
	size_t k;

	for (k = 0; status != NULL && k < sizeof(bad) / sizeof(bad[0]); k++)
		if (strcmp(status, bad[k]) == 0)
			return CLI_EXIT_FAILED;
	return CLI_EXIT_OK;
}
