/*
 * The table of quell commands: words, options, positional arguments and help text.
 * Kept apart from the parser so the help a person reads and the rules the parser
 * enforces come from the same rows.
 */
#include <stddef.h>

#include "cli/args.h"

#define COMMON_HELP \
	"  --json              print the API's JSON instead of text\n" \
	"  --url URL           quelld base URL (QUELL_URL, default http://127.0.0.1:8443)\n" \
	"  --token-file FILE   file holding the API token (QUELL_TOKEN_FILE)\n" \
	"  --ca FILE           CA certificates to verify quelld with (QUELL_CA)\n" \
	"  --wide              let tables be wider than 100 columns\n" \
	"  -h, --help          this help\n"

#define EXIT_HELP \
	"Exit status: 0 ok; 1 the action ended failed, partially_completed, cancelled,\n" \
	"denied or rejected, or audit verify found a broken chain; 2 usage or\n" \
	"configuration error;\n" \
	"3 the API refused the request (4xx); 4 cannot reach quelld, or 5xx;\n" \
	"5 not confirmed.\n"

#define ACT_HELP(what) \
	what " the accounts linked to an identity (or one of them with --account).\n" \
	"First asks quelld for a preview and shows each account (its login, its state)\n" \
	"and what will happen there: acted on, already so, likely refused and why, or\n" \
	"skipped as not supported; whether it waits for approval; warnings. Then asks\n" \
	"for confirmation on the terminal.\n" \
	"<identity> is an identity id (idn_...) or a search term matching one identity;\n" \
	"several are requested together in one bulk request (without --account). A\n" \
	"term matching several identities is refused with --yes unless --all says to\n" \
	"act on every one of them.\n\n" \
	"  --reason TEXT       why (required; recorded in the audit log)\n" \
	"  --account ID        act on this linked account only\n" \
	"  -y, --yes           do not ask for confirmation\n" \
	"  --all               a term matching several identities: act on all of them\n" \
	"  --wait              follow the action until it ends, like `quell action --wait`\n"

static const struct cli_optspec act_opts[] = {
	{ "reason", OPT_VALUE, true },
	{ "account", OPT_VALUE, false },
	{ "yes", OPT_FLAG, false },
	{ "all", OPT_FLAG, false },
	{ "wait", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec fpc_opts[] = {
	{ "reason", OPT_VALUE, true },
	{ "account", OPT_VALUE, false },
	{ "yes", OPT_FLAG, false },
	{ "all", OPT_FLAG, false },
	{ "wait", OPT_FLAG, false },
	{ "clear-dont-expire", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec risk_opts[] = {
	{ "reason", OPT_VALUE, true },
	{ "level", OPT_VALUE, true },
	{ "account", OPT_VALUE, false },
	{ "yes", OPT_FLAG, false },
	{ "all", OPT_FLAG, false },
	{ "wait", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec actions_opts[] = {
	{ "status", OPT_VALUE, false },
	{ "type", OPT_VALUE, false },
	{ "identity", OPT_VALUE, false },
	{ "since", OPT_VALUE, false },
	{ "limit", OPT_VALUE, false },
	{ "all", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec wait_opts[] = {
	{ "wait", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec sync_opts[] = {
	{ "no-wait", OPT_FLAG, false },
	{ "full", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec list_opts[] = {
	{ "limit", OPT_VALUE, false },
	{ "all", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec add_opts[] = {
	{ "name", OPT_VALUE, true },
	{ "tag", OPT_LIST, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec audit_opts[] = {
	{ "after", OPT_VALUE, false },
	{ "limit", OPT_VALUE, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec export_opts[] = {
	{ "format", OPT_VALUE, false },
	{ "after", OPT_VALUE, false },
	{ "limit", OPT_VALUE, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec token_opts[] = {
	{ "name", OPT_VALUE, true },
	{ "role", OPT_VALUE, true },
	{ "scope", OPT_LIST, false },
	{ "expires", OPT_VALUE, false },
	{ "output", OPT_VALUE, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec revoke_opts[] = {
	{ "reason", OPT_VALUE, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec decide_opts[] = {
	{ "reason", OPT_VALUE, false },
	{ "type", OPT_VALUE, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec pending_opts[] = {
	{ "type", OPT_VALUE, false },
	{ "limit", OPT_VALUE, false },
	{ "all", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec undo_opts[] = {
	{ "reason", OPT_VALUE, true },
	{ "wait", OPT_FLAG, false },
	{ "yes", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec cancel_opts[] = {
	{ "yes", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec alerts_opts[] = {
	{ "source", OPT_VALUE, false },
	{ "limit", OPT_VALUE, false },
	{ "all", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec release_opts[] = {
	{ "reason", OPT_VALUE, true },
	{ "yes", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec hunt_opts[] = {
	{ "limit", OPT_VALUE, false },
	{ "then", OPT_VALUE, false },
	{ "reason", OPT_VALUE, false },
	{ "yes", OPT_FLAG, false },
	{ NULL, OPT_FLAG, false },
};

static const struct cli_optspec no_opts[] = {
	{ NULL, OPT_FLAG, false },
};

static const char *const a_identity[] = { "<identity>", NULL };
static const char *const a_identities[] = { "<identity>...", NULL };
static const char *const a_action[] = { "<action-id>", NULL };
static const char *const a_actions[] = { "[<action-id>...]", NULL };
static const char *const a_query[] = { "[QUERY]", NULL };
static const char *const a_link[] = { "<identity>", "<account-id>", NULL };
static const char *const a_tags[] = { "<identity>", "[TAG...]", NULL };
static const char *const a_system[] = { "[system]", NULL };
static const char *const a_none[] = { NULL };
static const char *const a_alert[] = { "<alert-id>", NULL };
static const char *const a_file[] = { "FILE", NULL };
static const char *const a_hunt[] = { "QUERY", NULL };
static const char *const a_token[] = { "NAME|ID", NULL };
static const char *const a_shell[] = { "bash", NULL };

static const struct cli_cmd commands[] = {
	{ CMD_DISABLE, "disable", NULL, act_opts, a_identities,
	    "quell disable <identity>... --reason TEXT [--account ID] [--yes] [--all] [--wait]",
	    ACT_HELP("Disable (block sign-in to)") },
	{ CMD_ENABLE, "enable", NULL, act_opts, a_identities,
	    "quell enable <identity>... --reason TEXT [--account ID] [--yes] [--all] [--wait]",
	    ACT_HELP("Enable") },
	{ CMD_FORCE_PASSWORD_CHANGE, "force-password-change", NULL, fpc_opts, a_identities,
	    "quell force-password-change <identity>... --reason TEXT [--account ID]\n"
	    "       [--clear-dont-expire] [--yes] [--all] [--wait]",
	    ACT_HELP("Force a password change at next sign-in on")
	    "  --clear-dont-expire also clear \"password never expires\"\n" },
	{ CMD_REVOKE_SESSIONS, "revoke-sessions", NULL, act_opts, a_identities,
	    "quell revoke-sessions <identity>... --reason TEXT [--account ID] [--yes] [--all] [--wait]",
	    ACT_HELP("Revoke the sign-in sessions (and Okta OAuth tokens) of") },
	{ CMD_MARK_COMPROMISED, "mark-compromised", NULL, act_opts, a_identities,
	    "quell mark-compromised <identity>... --reason TEXT [--account ID] [--yes] [--all] [--wait]",
	    ACT_HELP("Confirm as compromised in Entra ID Identity Protection") },
	{ CMD_DEACTIVATE, "deactivate", NULL, act_opts, a_identities,
	    "quell deactivate <identity>... --reason TEXT [--account ID] [--yes] [--all] [--wait]",
	    ACT_HELP("Permanently deactivate (deprovision, with app assignments) in Okta")
	    "Deactivation cannot be undone: the request carries confirm_destructive only\n"
	    "after the confirmation (or --yes).\n" },
	{ CMD_SET_RISK, "set-risk", NULL, risk_opts, a_identities,
	    "quell set-risk <identity>... --level HIGH|MEDIUM|LOW --reason TEXT [--account ID]\n"
	    "       [--yes] [--all] [--wait]",
	    ACT_HELP("Set the Okta user risk level of")
	    "  --level L           HIGH, MEDIUM or LOW\n" },
	{ CMD_ACTIONS, "actions", NULL, actions_opts, a_none,
	    "quell actions [--status S] [--type T] [--identity ID] [--since WHEN]\n"
	    "       [--limit N] [--all]",
	    "List actions, newest first.\n\n"
	    "  --status S          pending_approval, queued, running, completed,\n"
	    "                      partially_completed, failed, cancelled, denied or\n"
	    "                      rejected\n"
	    "  --type T            disable, enable, revoke_sessions, mark_compromised,\n"
	    "                      force_password_change, deactivate or set_risk\n"
	    "  --identity ID       actions on this identity\n"
	    "  --since WHEN        RFC 3339 time, or a span back from now: 90m, 24h, 7d, 2w\n"
	    "  --limit N           page size, 1..1000 (default 50)\n"
	    "  --all               follow the pages to the end\n" },
	{ CMD_ACTION, "action", NULL, wait_opts, a_action,
	    "quell action <action-id> [--wait]",
	    "Show an action and its per-account steps.\n\n"
	    "  --wait              poll until the action ends, printing each change\n" },
	{ CMD_CANCEL, "cancel", NULL, cancel_opts, a_action,
	    "quell cancel <action-id> [--yes]",
	    "Cancel an action that has not ended; steps already done are not undone.\n"
	    "First shows what each step will do (one not started ends, one running\n"
	    "finishes), then asks for confirmation on the terminal.\n\n"
	    "  -y, --yes           do not ask for confirmation\n" },
	{ CMD_IDENTITIES, "identities", NULL, list_opts, a_query,
	    "quell identities [QUERY] [--limit N] [--all]",
	    "List identities, or those matching QUERY.\n\n"
	    "  --limit N           page size, 1..1000\n"
	    "  --all               follow the pages to the end\n" },
	{ CMD_IDENTITY_SHOW, "identity", "show", no_opts, a_identity,
	    "quell identity show <identity>",
	    "Show an identity and its linked accounts.\n" },
	{ CMD_IDENTITY_ADD, "identity", "add", add_opts, a_none,
	    "quell identity add --name NAME [--tag TAG]...",
	    "Create an identity.\n\n"
	    "  --name NAME         display name (required)\n"
	    "  --tag TAG           a tag such as tier0, breakglass, staff; may repeat\n" },
	{ CMD_IDENTITY_LINK, "identity", "link", no_opts, a_link,
	    "quell identity link <identity> <account-id>",
	    "Link an account to an identity.\n" },
	{ CMD_IDENTITY_TAG, "identity", "tag", no_opts, a_tags,
	    "quell identity tag <identity> [TAG]...",
	    "Set an identity's tags (none clears them). Scoped roles, approval rules and\n"
	    "the automatic disruption's exclusions read them: tier0, breakglass, staff, …\n" },
	{ CMD_IDENTITY_UNLINK, "identity", "unlink", no_opts, a_link,
	    "quell identity unlink <identity> <account-id>",
	    "Unlink an account from an identity.\n" },
	{ CMD_IDENTITY_CONFLICTS, "identity", "conflicts", no_opts, a_none,
	    "quell identity conflicts",
	    "List the accounts a sync left unlinked because they match several\n"
	    "identities, with those identities. Link one by hand to resolve it.\n" },
	{ CMD_SYNC, "sync", NULL, sync_opts, a_system,
	    "quell sync [system] [--full] [--no-wait]",
	    "Read the accounts of an identity system (every system when none is named)\n"
	    "and link them to identities by the [correlation] rules. The sync runs in\n"
	    "quelld; this shows its progress until it ends.\n\n"
	    "  --full              list every account, not only the changes\n"
	    "  --no-wait           start it and return at once\n" },
	{ CMD_SYSTEMS, "systems", NULL, no_opts, a_none,
	    "quell systems",
	    "List the configured identity systems and the actions each supports.\n" },
	{ CMD_WHOAMI, "whoami", NULL, no_opts, a_none,
	    "quell whoami",
	    "Show the name, role and permissions of the token in use.\n" },
	{ CMD_AUDIT, "audit", NULL, audit_opts, a_none,
	    "quell audit [--after SEQ] [--limit N]",
	    "List audit log entries.\n\n"
	    "  --after SEQ         entries after this sequence number\n"
	    "  --limit N           1..1000 (default 100)\n" },
	{ CMD_AUDIT_VERIFY, "audit", "verify", no_opts, a_none,
	    "quell audit verify",
	    "Walk the audit hash chain. Exits 1 naming the first broken entry.\n" },
	{ CMD_AUDIT_EXPORT, "audit", "export", export_opts, a_none,
	    "quell audit export [--format jsonl] [--after SEQ] [--limit N]",
	    "Write every audit entry to standard output, one JSON object a line.\n\n"
	    "  --format jsonl      the only format\n"
	    "  --after SEQ         start after this sequence number\n"
	    "  --limit N           page size, 1..1000\n" },
	{ CMD_TOKEN_CREATE, "token", "create", token_opts, a_none,
	    "quell token create --name NAME --role ROLE [--scope TAG]... [--expires SPAN]\n"
	    "       [--output FILE]",
	    "Create an API token. The token is shown once; store it now. On a terminal it\n"
	    "is printed with its details; otherwise standard output gets the token alone\n"
	    "(the details go to standard error), so `quell token create ... > FILE` makes\n"
	    "a file that --token-file takes as it is.\n\n"
	    "  --name NAME         who or what will use it\n"
	    "  --role ROLE         admin, approver, responder, viewer, auditor or a\n"
	    "                      configured role\n"
	    "  --scope TAG         act only on identities tagged TAG (repeatable)\n"
	    "  --expires SPAN      stop working after SPAN: a number and s, m, h or d, such\n"
	    "                      as 30d, 12h (at most quelld's token_max_lifetime, which\n"
	    "                      is also the default when it is set; else never)\n"
	    "  --output FILE       write the token to FILE, created with mode 0600; an\n"
	    "                      existing FILE is refused, never overwritten\n" },
	{ CMD_TOKEN_LIST, "token", "list", list_opts, a_none,
	    "quell token list [--limit N] [--all]",
	    "List the API tokens: name, id, role, scope, when each was created, last used\n"
	    "(to the minute) and expires, and whether it is active, expired or revoked.\n"
	    "The secret is never shown: quelld keeps only its hash.\n\n"
	    "  --limit N           page size, 1..1000 (default 100)\n"
	    "  --all               follow the pages to the end\n" },
	{ CMD_TOKEN_REVOKE, "token", "revoke", revoke_opts, a_token,
	    "quell token revoke NAME|ID [--reason TEXT]",
	    "Revoke an API token, named by its id (qt_...) or by its name when one token\n"
	    "not yet revoked has it. It is refused from the next request on, on every\n"
	    "node, console sessions signed in with it included. Audited as token.revoked.\n\n"
	    "  --reason TEXT       why (recorded in the audit log)\n" },
	{ CMD_PENDING, "pending", NULL, pending_opts, a_none,
	    "quell pending [--type T] [--limit N] [--all]",
	    "List the actions waiting for a second person's approval, newest first.\n\n"
	    "  --type T            only actions of this type\n"
	    "  --limit N           page size, 1..1000 (default 50)\n"
	    "  --all               follow the pages to the end\n" },
	{ CMD_APPROVE, "approve", NULL, decide_opts, a_actions,
	    "quell approve <action-id>... [--reason TEXT] | quell approve --type T",
	    "Approve actions waiting for approval: the ones named, or every one of a type.\n"
	    "Nobody can approve an action they requested themselves.\n\n"
	    "  --reason TEXT       why (recorded in the audit log)\n"
	    "  --type T            every pending action of this type\n" },
	{ CMD_REJECT, "reject", NULL, decide_opts, a_actions,
	    "quell reject <action-id>... [--reason TEXT] | quell reject --type T",
	    "Reject actions waiting for approval: they end rejected, nothing runs.\n\n"
	    "  --reason TEXT       why (recorded in the audit log)\n"
	    "  --type T            every pending action of this type\n" },
	{ CMD_UNDO, "undo", NULL, undo_opts, a_action,
	    "quell undo <action-id> --reason TEXT [--yes] [--wait]",
	    "Request the inverse of a finished action on every account where it succeeded\n"
	    "(disable <-> enable; mark-compromised: the risk dismissed; set-risk: the level\n"
	    "before; force-password-change on AD: while the password is unchanged).\n"
	    "Actions without an inverse are refused with the reason. First shows the\n"
	    "undo's preview (each account, its state, what will happen), then asks for\n"
	    "confirmation on the terminal.\n\n"
	    "  --reason TEXT       why (required; recorded in the audit log)\n"
	    "  -y, --yes           do not ask for confirmation\n"
	    "  --wait              follow the new action until it ends\n" },
	{ CMD_ALERTS, "alerts", NULL, alerts_opts, a_none,
	    "quell alerts [--source S] [--limit N] [--all]",
	    "List alerts, newest first.\n\n"
	    "  --source S          only alerts from this source (quell: quell's own)\n"
	    "  --limit N           page size, 1..1000 (default 50)\n"
	    "  --all               follow the pages to the end\n" },
	{ CMD_ALERT, "alert", NULL, no_opts, a_alert,
	    "quell alert <alert-id>",
	    "Show an alert: its entities and what each resolved to, the decisions automatic\n"
	    "attack disruption made and the actions they caused (--json: the API's JSON).\n" },
	{ CMD_ALERTS_INGEST, "alerts", "ingest", no_opts, a_file,
	    "quell alerts ingest FILE|-",
	    "Post alerts from a file (or standard input), one JSON object a line, each as\n"
	    "POST /api/v1/alerts would take it. A repeat of a stored alert (same source and\n"
	    "id) is accepted and creates nothing. Refused lines are reported on standard\n"
	    "error with their line number; the exit status is then 3.\n" },
	{ CMD_RELEASE, "release", NULL, release_opts, a_identity,
	    "quell release <identity> --reason TEXT [--yes]",
	    "Undo every containment automatic attack disruption put on an identity that is\n"
	    "still in force (disabled accounts are enabled again). Actions without an\n"
	    "inverse (revoked sessions, a confirmed compromise) are listed as not undone.\n"
	    "First shows what the release will do to each containment (and, for an undo,\n"
	    "to each account), then asks for confirmation on the terminal.\n\n"
	    "  --reason TEXT       why (required; recorded in the audit log)\n"
	    "  -y, --yes           do not ask for confirmation\n" },
	{ CMD_HUNT, "hunt", NULL, hunt_opts, a_hunt,
	    "quell hunt QUERY [--limit N] [--then ACTION --reason TEXT [--yes]]",
	    "Run a read-only SQL SELECT over the hunting views IdentityInfo,\n"
	    "IdentityAccounts, Alerts, AlertEntities, Actions, ActionSteps and AuditEvents\n"
	    "(docs/hunting.md) and print the rows, tab-separated.\n\n"
	    "  --limit N           rows, 1..10000 (default 100)\n"
	    "  --then ACTION       act on every identity in the identity_id column: disable,\n"
	    "                      enable, revoke_sessions, mark_compromised or\n"
	    "                      force_password_change; previews each, asks once;\n"
	    "                      identities none of whose systems supports ACTION are\n"
	    "                      skipped and listed\n"
	    "  --reason TEXT       why (required with --then)\n"
	    "  -y, --yes           do not ask for confirmation\n" },
	{ CMD_COMPLETION, "completion", NULL, no_opts, a_shell,
	    "quell completion bash",
	    "Print the bash completion script for quell: commands, their second words and\n"
	    "options. The package installs it; to use it by hand,\n"
	    "`source <(quell completion bash)`.\n" },
};

static const char general_help[] =
	"usage: quell [options] <command> [arguments]\n\n"
	"Commands:\n"
	"  disable, enable, force-password-change, revoke-sessions, mark-compromised,\n"
	"  deactivate, set-risk <identity> --reason TEXT\n"
	"  pending, approve, reject <action-id>..., undo <action-id> --reason TEXT\n"
	"  actions                  list actions\n"
	"  action <id> [--wait]     show (and follow) an action\n"
	"  cancel <id>              cancel an action\n"
	"  identities [QUERY]       list identities\n"
	"  identity show|add|link|unlink|conflicts\n"
	"  sync [system]            read accounts from identity systems\n"
	"  systems                  list identity systems\n"
	"  whoami                   show who the token belongs to\n"
	"  audit [verify|export]    read, verify or export the audit log\n"
	"  token create|list|revoke  create, list or revoke API tokens\n"
	"  alerts [ingest FILE|-], alert <id>   alerts and what automation did\n"
	"  release <identity> --reason TEXT     undo automatic containment\n"
	"  hunt QUERY [--then ACTION]           advanced hunting\n"
	"  help [COMMAND]           this help, or a command's\n"
	"  completion bash          the bash completion script\n\n"
	"`quell help <command>` (or `quell <command> --help`) describes a command.\n\n"
	"Options (also after the command):\n"
	COMMON_HELP
	"\nThe token is read from --token-file, QUELL_TOKEN_FILE or QUELL_TOKEN, else from\n"
	"token_file in $XDG_CONFIG_HOME/quell/cli.conf (lines `url = ...`,\n"
	"`token_file = ...`, `ca = ...`). `quell --version` prints the version.\n\n"
	EXIT_HELP;

const struct cli_cmd *
cli_commands(size_t *n)
{
	*n = sizeof(commands) / sizeof(commands[0]);
	return commands;
}

const char *
cli_general_help(void)
{
	return general_help;
}

const char *
cli_common_help(void)
{
	return "Common options:\n" COMMON_HELP "\n" EXIT_HELP;
}
