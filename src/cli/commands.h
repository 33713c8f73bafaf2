/* The quell commands: each turns a parsed invocation into API calls and output. */
#ifndef QUELL_CLI_COMMANDS_H
#define QUELL_CLI_COMMANDS_H

#include <stdbool.h>

#include "cli/args.h"
#include "cli/client.h"

struct cmd_ctx {
	struct client *cl;
	const struct cli_inv *inv;
	bool json;
	int status;	/* exit status when the command returns 0 (see outcome.h) */
};

/* Runs x->inv->cmd; 0 with x->status set, or an error with e filled in. */
int cmd_run(struct cmd_ctx *x, struct qerr *e);

#endif
