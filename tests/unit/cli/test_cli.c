/*
 * Unit tests of the pure parts of quell(1): argument parsing, --since, cli.conf and
 * settings resolution, rendering and exit statuses. No quelld is involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli/args.h"
#include "cli/conf.h"
#include "cli/outcome.h"
#include "cli/render.h"

#define ARGV(...) ((char *const[]){ "quell", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *const[]){ "quell", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(inv, e, ...) cli_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), inv, e)

static void
parse_disable(void **state)
{
	struct cli_inv inv;
	struct qerr e = { 0 };

	(void)state;
	assert_int_equal(PARSE(&inv, &e, "--json", "disable", "alice", "--reason",
	    "phished", "--yes", "--account=acc_1"), 0);
	assert_int_equal(inv.cmd->id, CMD_DISABLE);
	assert_int_equal(inv.npos, 1);
	assert_string_equal(inv.pos[0], "alice");
	assert_string_equal(cli_opt(&inv, "reason"), "phished");
	assert_string_equal(cli_opt(&inv, "account"), "acc_1");
	assert_true(cli_flag(&inv, "yes"));
	assert_true(cli_flag(&inv, "json"));
	assert_false(cli_flag(&inv, "wait"));
}

static void
parse_usage_errors(void **state)
{
	struct cli_inv inv;
	struct qerr e = { 0 };

	(void)state;
	assert_int_equal(PARSE(&inv, &e, "disable", "alice"), QERR_INVALID);
	assert_string_equal(e.field, "--reason");
	assert_string_equal(e.msg, "missing --reason");

	assert_int_equal(PARSE(&inv, &e, "disable", "alice", "--reason", "x", "--bogus"),
	    QERR_INVALID);
	assert_string_equal(e.field, "--bogus");

	assert_int_equal(PARSE(&inv, &e, "set-risk", "alice", "--reason", "x"),
	    QERR_INVALID);
	assert_string_equal(e.msg, "missing --level");
	assert_int_equal(PARSE(&inv, &e, "set-risk", "alice", "--reason", "x", "--level",
	    "HIGH"), 0);
	assert_string_equal(cli_opt(&inv, "level"), "HIGH");
	assert_int_equal(PARSE(&inv, &e, "deactivate", "alice", "--reason", "x", "--level",
	    "HIGH"), QERR_INVALID);
	assert_string_equal(e.field, "--level");

	assert_int_equal(PARSE(&inv, &e, "identity", "tag", "alice", "tier0", "staff"), 0);
	assert_int_equal(inv.npos, 3);
	assert_int_equal(PARSE(&inv, &e, "identity", "tag", "alice"), 0);
	assert_int_equal(PARSE(&inv, &e, "identity", "tag"), QERR_INVALID);
	assert_int_equal(PARSE(&inv, &e, "approve", "act_1", "act_2", "act_3"), 0);
	assert_int_equal(inv.npos, 3);
	assert_string_equal(inv.pos[2], "act_3");
	assert_int_equal(PARSE(&inv, &e, "approve", "--type", "disable"), 0);
	assert_int_equal(PARSE(&inv, &e, "approve", "--type", "nuke"), QERR_INVALID);
	assert_int_equal(PARSE(&inv, &e, "undo", "act_1"), QERR_INVALID);
	assert_string_equal(e.msg, "missing --reason");
	assert_int_equal(PARSE(&inv, &e, "undo", "act_1", "act_2", "--reason", "x"),
	    QERR_INVALID);
	assert_string_equal(e.field, "act_2");

	/* force-password-change only */
	assert_int_equal(PARSE(&inv, &e, "enable", "alice", "--reason", "x",
	    "--clear-dont-expire"), QERR_INVALID);
	assert_string_equal(e.field, "--clear-dont-expire");

	assert_int_equal(PARSE(&inv, &e, "disable", "alice", "--reason", "--yes"),
	    QERR_INVALID);
	assert_string_equal(e.msg, "--reason needs a value");

	assert_int_equal(PARSE(&inv, &e, "disable", "--reason", "x"), QERR_INVALID);
	assert_string_equal(e.field, "<identity>");

	/* several identities: one bulk request */
	assert_int_equal(PARSE(&inv, &e, "disable", "a", "b", "--reason", "x"), 0);
	assert_int_equal(inv.npos, 2);
	assert_string_equal(inv.pos[1], "b");
	assert_int_equal(PARSE(&inv, &e, "disable", "a", "", "--reason", "x"),
	    QERR_INVALID);
	assert_string_equal(e.field, "<identity>");
	assert_int_equal(PARSE(&inv, &e, "identity", "show", "a", "b"), QERR_INVALID);
	assert_string_equal(e.field, "b");

	assert_int_equal(PARSE(&inv, &e, "disable", "a", "--reason", ""), QERR_INVALID);
	assert_string_equal(e.field, "--reason");

	assert_int_equal(PARSE(&inv, &e, "disable", "a", "--reason", "x", "--yes=1"),
	    QERR_INVALID);
	assert_int_equal(PARSE(&inv, &e, "disable", "a", "--reason", "x", "--reason", "y"),
	    QERR_INVALID);
	assert_int_equal(PARSE(&inv, &e, "frobnicate"), QERR_INVALID);
	assert_string_equal(e.field, "frobnicate");
	assert_int_equal(cli_parse(1, ARGV(NULL), &inv, &e), QERR_INVALID);
}

static void
parse_values(void **state)
{
	struct cli_inv inv;
	struct qerr e = { 0 };

	(void)state;
	assert_int_equal(PARSE(&inv, &e, "actions", "--limit", "0"), QERR_INVALID);
	assert_string_equal(e.field, "--limit");
	assert_int_equal(PARSE(&inv, &e, "actions", "--limit", "1001"), QERR_INVALID);
	assert_int_equal(PARSE(&inv, &e, "actions", "--limit", "12x"), QERR_INVALID);
	assert_int_equal(PARSE(&inv, &e, "actions", "--status", "done"), QERR_INVALID);
	assert_string_equal(e.field, "--status");
	assert_int_equal(PARSE(&inv, &e, "actions", "--type", "nuke"), QERR_INVALID);
	assert_int_equal(PARSE(&inv, &e, "actions", "--since", "yesterday"), QERR_INVALID);
	assert_string_equal(e.field, "--since");
	assert_int_equal(PARSE(&inv, &e, "actions", "--status", "partially_completed",
	    "--type", "force_password_change", "--since", "7d", "--limit", "1000",
	    "--all"), 0);
	assert_int_equal(inv.cmd->id, CMD_ACTIONS);
	assert_int_equal(PARSE(&inv, &e, "audit", "--after", "-1"), QERR_INVALID);
}

static void
parse_subcommands(void **state)
{
	struct cli_inv inv;
	struct qerr e = { 0 };
	const char *t;
	size_t i = 0;

	(void)state;
	assert_int_equal(PARSE(&inv, &e, "identity", "show", "idn_1"), 0);
	assert_int_equal(inv.cmd->id, CMD_IDENTITY_SHOW);
	assert_int_equal(PARSE(&inv, &e, "identity", "add", "--name", "Ann", "--tag",
	    "tier0", "--tag=staff"), 0);
	assert_int_equal(inv.cmd->id, CMD_IDENTITY_ADD);
	assert_string_equal(t = cli_opt_next(&inv, "tag", &i), "tier0");
	assert_string_equal(t = cli_opt_next(&inv, "tag", &i), "staff");
	assert_null(cli_opt_next(&inv, "tag", &i));

	assert_int_equal(PARSE(&inv, &e, "identity"), QERR_INVALID);
	assert_string_equal(e.msg,
	    "'identity' needs one of: show, add, link, tag, unlink, conflicts");
	assert_int_equal(PARSE(&inv, &e, "identity", "conflicts"), 0);
	assert_int_equal(inv.cmd->id, CMD_IDENTITY_CONFLICTS);
	assert_int_equal(PARSE(&inv, &e, "sync"), 0);
	assert_int_equal(inv.npos, 0);
	assert_int_equal(PARSE(&inv, &e, "sync", "corp", "--no-wait", "--full"), 0);
	assert_string_equal(inv.pos[0], "corp");
	assert_true(cli_flag(&inv, "no-wait"));
	assert_int_equal(PARSE(&inv, &e, "identity", "--help"), 0);
	assert_true(inv.help);
	assert_null(inv.cmd);
	assert_string_equal(inv.group, "identity");

	assert_int_equal(PARSE(&inv, &e, "audit"), 0);
	assert_int_equal(inv.cmd->id, CMD_AUDIT);
	assert_int_equal(PARSE(&inv, &e, "audit", "verify"), 0);
	assert_int_equal(inv.cmd->id, CMD_AUDIT_VERIFY);
	assert_int_equal(PARSE(&inv, &e, "audit", "export", "--format", "jsonl"), 0);
	assert_int_equal(inv.cmd->id, CMD_AUDIT_EXPORT);
	assert_int_equal(PARSE(&inv, &e, "audit", "export", "--format", "csv"),
	    QERR_INVALID);
	assert_string_equal(e.field, "--format");

	/* --help skips the checks of required options */
	assert_int_equal(PARSE(&inv, &e, "token", "create", "--help"), 0);
	assert_true(inv.help);
	assert_int_equal(PARSE(&inv, &e, "token", "create", "--name", "ci"), QERR_INVALID);
	assert_string_equal(e.field, "--role");
	assert_int_equal(PARSE(&inv, &e, "--url", "https://q:8443", "whoami",
	    "--token-file", "/t"), 0);
	assert_string_equal(cli_opt(&inv, "url"), "https://q:8443");
	assert_string_equal(cli_opt(&inv, "token-file"), "/t");
	/* "--" ends options: an identity search term may start with a dash */
	assert_int_equal(PARSE(&inv, &e, "identity", "show", "--", "-odd-"), 0);
	assert_string_equal(inv.pos[0], "-odd-");
}

static void
since(void **state)
{
	struct qerr e = { 0 };
	char out[64];
	time_t now = 1795478400;	/* 2026-11-24T00:00:00Z */

	(void)state;
	assert_int_equal(cli_since_parse("24h", now, out, sizeof(out), &e), 0);
	assert_string_equal(out, "2026-11-23T00:00:00.000Z");
	assert_int_equal(cli_since_parse("7d", now, out, sizeof(out), &e), 0);
	assert_string_equal(out, "2026-11-17T00:00:00.000Z");
	assert_int_equal(cli_since_parse("90m", now, out, sizeof(out), &e), 0);
	assert_string_equal(out, "2026-11-23T22:30:00.000Z");
	assert_int_equal(cli_since_parse("2w", now, out, sizeof(out), &e), 0);
	assert_string_equal(out, "2026-11-10T00:00:00.000Z");
	assert_int_equal(cli_since_parse("2026-11-25t08:00:00.123z", now, out, sizeof(out),
	    &e), 0);
	assert_string_equal(out, "2026-11-25T08:00:00.123Z");
	assert_int_equal(cli_since_parse("2026-11-25T08:00:00+01:00", now, out,
	    sizeof(out), &e), 0);
	assert_string_equal(out, "2026-11-25T08:00:00+01:00");

	assert_int_equal(cli_since_parse("24", now, out, sizeof(out), &e), QERR_INVALID);
	assert_int_equal(cli_since_parse("h", now, out, sizeof(out), &e), QERR_INVALID);
	assert_int_equal(cli_since_parse("3y", now, out, sizeof(out), &e), QERR_INVALID);
	assert_int_equal(cli_since_parse("99999999d", now, out, sizeof(out), &e),
	    QERR_INVALID);
	assert_int_equal(cli_since_parse("2026-13-01T00:00:00Z", now, out, sizeof(out), &e),
	    QERR_INVALID);
	assert_int_equal(cli_since_parse("2026-11-25T08:00:00", now, out, sizeof(out), &e),
	    QERR_INVALID);
	assert_int_equal(cli_since_parse("2026-11-25T08:00:00.Z", now, out, sizeof(out), &e),
	    QERR_INVALID);
	assert_int_equal(cli_since_parse("2026-11-25 08:00:00Z", now, out, sizeof(out), &e),
	    QERR_INVALID);
	assert_string_equal(e.field, "--since");
}

static void
conf_parse(void **state)
{
	struct cli_conf c;
	struct qerr e = { 0 };

	(void)state;
	assert_int_equal(cli_conf_parse("# quell\n\n  url = https://q.example:8443/ \n"
	    "token_file=~/.quell-token\r\nca = /etc/quell/ca.pem", "cli.conf", &c, &e), 0);
	assert_string_equal(c.url, "https://q.example:8443/");
	assert_string_equal(c.token_file, "~/.quell-token");
	assert_string_equal(c.ca, "/etc/quell/ca.pem");
	cli_conf_clear(&c);
	cli_conf_clear(NULL);

	assert_int_equal(cli_conf_parse("url = x\n\nthis is not a setting\n", "cli.conf",
	    &c, &e), QERR_CONFIG);
	assert_string_equal(e.msg, "cli.conf:3: expected 'key = value'");
	assert_null(c.url);
	assert_int_equal(cli_conf_parse("# c\ntoken = qt_abc\n", "cli.conf", &c, &e),
	    QERR_CONFIG);
	assert_string_equal(e.msg, "cli.conf:2: unknown key 'token'");
	assert_string_equal(e.field, "token");
	assert_int_equal(cli_conf_parse("url = a\nurl = b\n", "f", &c, &e), QERR_CONFIG);
	assert_string_equal(e.msg, "f:2: url given twice");
	assert_int_equal(cli_conf_parse("ca =\n", "f", &c, &e), QERR_CONFIG);
	assert_string_equal(e.msg, "f:1: ca has no value");
}

static void
settings(void **state)
{
	struct cli_conf c = { .url = "https://conf:1", .token_file = "~/tok", .ca = "~/ca" };
	struct cli_env env = { .home = "/home/ann" };
	struct cli_settings s;
	struct cli_inv inv;
	struct qerr e = { 0 };

	(void)state;
	assert_int_equal(PARSE(&inv, &e, "whoami"), 0);
	assert_int_equal(cli_settings_resolve(&inv, &env, &c, &s, &e), 0);
	assert_string_equal(s.url, "https://conf:1");
	assert_string_equal(s.token_file, "/home/ann/tok");
	assert_string_equal(s.ca, "/home/ann/ca");
	cli_settings_clear(&s);

	env.url = "http://env:2/";
	env.token = "qt_env";
	env.ca = "/env/ca";
	assert_int_equal(cli_settings_resolve(&inv, &env, &c, &s, &e), 0);
	assert_string_equal(s.url, "http://env:2");
	assert_null(s.token_file);
	assert_string_equal(s.token, "qt_env");
	assert_string_equal(s.ca, "/env/ca");
	cli_settings_clear(&s);

	env.token_file = "/env/tok";
	assert_int_equal(PARSE(&inv, &e, "--url", "https://flag:3", "whoami",
	    "--token-file", "/flag/tok"), 0);
	assert_int_equal(cli_settings_resolve(&inv, &env, &c, &s, &e), 0);
	assert_string_equal(s.url, "https://flag:3");
	assert_string_equal(s.token_file, "/flag/tok");
	assert_null(s.token);
	cli_settings_clear(&s);

	memset(&env, 0, sizeof(env));
	assert_int_equal(PARSE(&inv, &e, "whoami"), 0);
	assert_int_equal(cli_settings_resolve(&inv, &env, NULL, &s, &e), QERR_CONFIG);
	assert_null(s.url);
	env.token = "qt_x";
	assert_int_equal(cli_settings_resolve(&inv, &env, NULL, &s, &e), 0);
	assert_string_equal(s.url, CLI_DEFAULT_URL);
	cli_settings_clear(&s);
	env.url = "ftp://x";
	assert_int_equal(cli_settings_resolve(&inv, &env, NULL, &s, &e), QERR_CONFIG);
	assert_string_equal(e.field, "url");
}

static const char action_json[] =
	"{\"id\":\"act_01\",\"type\":\"disable\",\"status\":\"partially_completed\","
	"\"identity_id\":\"idn_7\",\"account_id\":null,\"requested_by\":\"ann\","
	"\"source\":\"manual\",\"reason\":\"phished\",\"params\":{},\"message\":null,"
	"\"created_at\":\"2026-11-25T08:00:00.123Z\","
	"\"updated_at\":\"2026-11-25T08:00:02.000Z\","
	"\"finished_at\":\"2026-11-25T08:00:02.000Z\",\"steps\":["
	"{\"id\":\"stp_1\",\"account_id\":\"acc_1\",\"system\":\"corp\","
	"\"account_name\":\"bob\",\"status\":\"succeeded\",\"attempts\":1,"
	"\"request_id\":null,\"error_code\":null,\"message\":null},"
	"{\"id\":\"stp_2\",\"account_id\":\"acc_2\",\"system\":\"entra\","
	"\"account_name\":\"b\\u00f6b@example.com\",\"status\":\"failed\",\"attempts\":1,"
	"\"request_id\":\"9f1c\",\"error_code\":\"Authorization_RequestDenied\","
	"\"message\":\"refused by Entra ID: target holds a privileged role\"}]}";

static const char action_text[] =
	"id:            act_01\n"
	"type:          disable\n"
	"status:        partially_completed\n"
	"identity:      idn_7\n"
	"requested by:  ann\n"
	"source:        manual\n"
	"reason:        phished\n"
	"created:       2026-11-25T08:00:00+00:00\n"
	"updated:       2026-11-25T08:00:02+00:00\n"
	"finished:      2026-11-25T08:00:02+00:00\n"
	"\n"
	"SYSTEM  ACCOUNT          STATUS     ATTEMPTS  REQUEST ID  ERROR"
	"                        MESSAGE\n"
	"corp    bob              succeeded  1         -           -"
	"                            -\n"
	"entra   b\xc3\xb6" "b@example.com  failed     1         9f1c        "
	"Authorization_RequestDenied  refused by E\u2026\n";

static void
render_action_text(void **state)
{
	json_t *a = json_loads(action_json, 0, NULL);
	char *text = NULL;

	(void)state;
	assert_non_null(a);
	assert_int_equal(render_action(a, &text), 0);
	assert_string_equal(text, action_text);
	free(text);
	json_decref(a);
}

static void
render_action_approval(void **state)
{
	json_t *a = json_loads("{\"id\":\"act_2\",\"type\":\"enable\","
	    "\"status\":\"pending_approval\",\"identity_id\":\"idn_1\","
	    "\"undo_of\":\"act_1\",\"approval_rule\":\"tier0\","
	    "\"approval_expires_at\":\"2026-11-26T08:00:00.000Z\",\"decided_by\":null,"
	    "\"requested_by\":\"carol\",\"source\":\"api\",\"reason\":\"oops\","
	    "\"created_at\":\"2026-11-25T08:00:00.000Z\","
	    "\"updated_at\":\"2026-11-25T08:00:00.000Z\",\"steps\":[]}", 0, NULL);
	char *text = NULL;
	const char *p;

	(void)state;
	assert_non_null(a);
	assert_int_equal(render_action(a, &text), 0);
	assert_non_null(text);
	assert_non_null(strstr(text, "undoes:         act_1\n"));
	assert_non_null(strstr(text, "approval rule:  tier0\n"));
	assert_non_null(strstr(text, "approve by:     2026-11-26T08:00:00+00:00\n"));
	assert_null(strstr(text, "decided by:"));
	assert_null(strstr(text, "alert:"));
	free(text);
	json_decref(a);

	/* Fields missing from an answer show as "-", never crash. */
	a = json_loads("{\"id\":\"act_3\",\"steps\":[{}]}", 0, NULL);
	assert_int_equal(render_action(a, &text), 0);
	assert_non_null(p = strstr(text, "type:"));
	p += strspn(p + 5, " ") + 5;
	assert_memory_equal(p, "-\n", 2);
	free(text);
	json_decref(a);
}

static void
render_preview_text(void **state)
{
	json_t *a = json_loads("{\"type\":\"disable\",\"steps\":["
	    "{\"system\":\"corp\",\"account_name\":\"bob\",\"status\":\"queued\"},"
	    "{\"system\":\"okta\",\"account_name\":\"bob@x\",\"status\":\"not_applicable\"},"
	    "{\"system\":\"ok\",\"account_name\":\"bo\",\"status\":\"queued\","
	    "\"message\":\"Okta cannot suspend a user in RECOVERY\"}]}", 0, NULL);
	char *text = NULL;

	(void)state;
	assert_int_equal(render_preview(a, "Bob (idn_7)", &text), 0);
	assert_string_equal(text,
	    "disable on Bob (idn_7):\n"
	    "SYSTEM  ACCOUNT  LOGIN  STATE  PLAN\n"
	    "corp    bob      -      -      disable\n"
	    "okta    bob@x    -      -      skip: not applicable\n"
	    "ok      bo       -      -      will be refused: Okta cannot suspend a user in RECOVERY\n"
	    "2 accounts to act on, 1 skipped.\n");
	free(text);
	json_decref(a);
}

/* The preview's own lines: login, state, outcome and option; approval; warnings. */
static void
render_preview_lines(void **state)
{
	json_t *a = json_loads("{\"type\":\"force_password_change\",\"status\":"
	    "\"pending_approval\",\"approval_rule\":\"tier0\",\"steps\":["
	    "{\"id\":\"s1\",\"system\":\"corp\",\"account_name\":\"bob\",\"status\":\"queued\"},"
	    "{\"id\":\"s2\",\"system\":\"corp2\",\"account_name\":\"bo\",\"status\":\"queued\"}],"
	    "\"preview\":{\"accounts\":["
	    "{\"step_id\":\"s1\",\"upn\":\"bob@x\",\"username\":\"bob\",\"state\":\"enabled\","
	    "\"outcome\":\"refused\",\"note\":\"will be refused: never expires\","
	    "\"option\":\"clear_dont_expire\"},"
	    "{\"step_id\":\"s2\",\"upn\":null,\"username\":\"bo\",\"state\":\"disabled\","
	    "\"outcome\":\"already\",\"note\":\"already disabled: nothing to change\","
	    "\"option\":null}],"
	    "\"warnings\":[{\"code\":\"protected_tag\",\"message\":\"tagged tier0\"}]}}",
	    0, NULL);
	char *text = NULL;

	(void)state;
	assert_non_null(a);
	assert_int_equal(render_preview(a, "Bob (idn_9)", &text), 0);
	assert_string_equal(text,
	    "force_password_change on Bob (idn_9):\n"
	    "SYSTEM  ACCOUNT  LOGIN  STATE     PLAN\n"
	    "corp    bob      bob@x  enabled   will be refused: never expires (add --clear-dont-expire)\n"
	    "corp2   bo       bo     disabled  already disabled: nothing to change\n"
	    "will wait for approval (rule tier0): a second person must approve it before it runs\n"
	    "warning: tagged tier0\n"
	    "2 accounts to act on, 0 skipped.\n");
	free(text);
	json_decref(a);
}

/* What a cancel will do to each step as it is now. */
static void
render_cancel_text(void **state)
{
	json_t *a = json_loads("{\"type\":\"disable\",\"status\":\"running\","
	    "\"identity_id\":\"idn_1\",\"identity_name\":\"Ann\",\"steps\":["
	    "{\"system\":\"corp\",\"account_name\":\"ann\",\"status\":\"running\"},"
	    "{\"system\":\"okta\",\"account_name\":\"ann@x\",\"status\":\"queued\"}]}",
	    0, NULL);
	char *text = NULL;

	(void)state;
	assert_int_equal(render_cancel_plan(a, &text), 0);
	assert_string_equal(text,
	    "cancel disable on Ann:\n"
	    "SYSTEM  ACCOUNT  STATUS   PLAN\n"
	    "corp    ann      running  is running: it finishes, its outcome stands\n"
	    "okta    ann@x    queued   will be cancelled before it starts\n");
	free(text);
	json_decref(a);
}

/* A preview is read before confirming: a warning past 100 columns is never cut. */
static void
render_preview_whole(void **state)
{
	json_t *a = json_loads("{\"type\":\"disable\",\"steps\":[{\"system\":\"cloud\","
	    "\"account_name\":\"someone.with.a.long.login@okta.example\",\"status\":"
	    "\"queued\",\"message\":\"Okta cannot suspend a user in RECOVERY (only ACTIVE "
	    "users): revoke sessions or deactivate instead\"}]}", 0, NULL);
	char *text = NULL;

	(void)state;
	assert_int_equal(render_preview(a, "Someone (idn_8)", &text), 0);
	assert_non_null(strstr(text, "revoke sessions or deactivate instead\n"));
	assert_null(strstr(text, "…"));
	free(text);
	json_decref(a);
}

static void
render_lists(void **state)
{
	json_t *j = json_loads("[{\"id\":\"idn_1\",\"display_name\":\"Ann\\u001b[31m\","
	    "\"tags\":[\"tier0\",\"staff\"],\"accounts\":[{},{}]}]", 0, NULL);
	char *text = NULL;

	(void)state;
	assert_int_equal(render_identities(j, &text), 0);
	assert_string_equal(text,
	    "ID     NAME      TAGS          ACCOUNTS\n"
	    "idn_1  Ann?[31m  tier0, staff  2\n");
	free(text);
	json_decref(j);

	/* by name, whatever the API's order */
	j = json_loads("[{\"id\":\"idn_1\",\"display_name\":\"zoe\",\"tags\":[]},"
	    "{\"id\":\"idn_2\",\"display_name\":\"Adam\",\"tags\":[]}]", 0, NULL);
	assert_int_equal(render_identities(j, &text), 0);
	assert_non_null(strstr(text, "idn_2  Adam"));
	assert_true(strstr(text, "idn_2") < strstr(text, "idn_1"));
	free(text);
	json_decref(j);

	j = json_array();
	assert_int_equal(render_actions(j, &text), 0);
	assert_string_equal(text, "no actions\n");
	free(text);
	json_decref(j);

	/* people by name, the id beside it */
	j = json_loads("[{\"id\":\"act_1\",\"type\":\"disable\",\"status\":\"completed\","
	    "\"identity_id\":\"idn_1\",\"identity_name\":\"Ann Lee\",\"account_name\":\"ann\","
	    "\"requested_by\":\"carol\",\"created_at\":\"2026-11-25T08:00:00.000Z\"}]", 0, NULL);
	assert_int_equal(render_actions(j, &text), 0);
	assert_non_null(strstr(text, "NAME     ACCOUNT  IDENTITY"));
	assert_non_null(strstr(text, "Ann Lee  ann      idn_1"));
	free(text);
	assert_int_equal(render_action(json_array_get(j, 0), &text), 0);
	assert_non_null(strstr(text, "identity:      idn_1\nname:          Ann Lee\n"));
	assert_non_null(strstr(text, "account name:  ann\n"));
	free(text);
	json_decref(j);

	j = json_loads("{\"ok\":false,\"entries\":9,\"first_broken\":4,"
	    "\"reason\":\"hash mismatch\"}", 0, NULL);
	assert_int_equal(render_verify(j, &text), 0);
	assert_string_equal(text, "audit chain BROKEN\n"
	    "first broken:  4\nreason:        hash mismatch\nentries:       9\n");
	free(text);
	json_decref(j);
}

static void
clean(void **state)
{
	char *s;

	(void)state;
	assert_string_equal(s = render_clean("a\tb\x7f" "c\xc2\x9b" "d\xc3\xa9"),
	    "a?b?c??d\xc3\xa9");
	free(s);
	assert_string_equal(s = render_clean(NULL), "-");
	free(s);
}

static void
exit_codes(void **state)
{
	struct qerr e = { 0 };

	(void)state;
	assert_int_equal(cli_exit_for_action("completed"), CLI_EXIT_OK);
	assert_int_equal(cli_exit_for_action("queued"), CLI_EXIT_OK);
	assert_int_equal(cli_exit_for_action("failed"), CLI_EXIT_FAILED);
	assert_int_equal(cli_exit_for_action("partially_completed"), CLI_EXIT_FAILED);
	assert_int_equal(cli_exit_for_action("cancelled"), CLI_EXIT_FAILED);
	assert_int_equal(cli_exit_for_action("denied"), CLI_EXIT_FAILED);

	e.code = QERR_INVALID;
	assert_int_equal(cli_exit_for_error(&e), CLI_EXIT_USAGE);
	e.status = 400;
	assert_int_equal(cli_exit_for_error(&e), CLI_EXIT_REFUSED);
	e.code = QERR_DENIED;
	e.status = 403;
	assert_int_equal(cli_exit_for_error(&e), CLI_EXIT_REFUSED);
	e.code = QERR_TRANSIENT;
	e.status = 503;
	assert_int_equal(cli_exit_for_error(&e), CLI_EXIT_UNREACHABLE);
	e.status = 0;
	assert_int_equal(cli_exit_for_error(&e), CLI_EXIT_UNREACHABLE);
	e.code = QERR_CONFIG;
	assert_int_equal(cli_exit_for_error(&e), CLI_EXIT_USAGE);
}

static void
parse_tokens(void **state)
{
	struct cli_inv inv;
	struct qerr e = { 0 };
	size_t i = 0;

	(void)state;
	assert_int_equal(PARSE(&inv, &e, "token", "create", "--name", "ci", "--role",
	    "viewer", "--scope", "staff", "--scope", "lab", "--expires", "30d", "--output",
	    "/tmp/ci.token"), 0);
	assert_int_equal(inv.cmd->id, CMD_TOKEN_CREATE);
	assert_string_equal(cli_opt(&inv, "expires"), "30d");
	assert_string_equal(cli_opt(&inv, "output"), "/tmp/ci.token");
	assert_string_equal(cli_opt_next(&inv, "scope", &i), "staff");
	assert_string_equal(cli_opt_next(&inv, "scope", &i), "lab");
	assert_int_equal(PARSE(&inv, &e, "token", "create", "--name", "ci", "--role",
	    "viewer", "--expires"), QERR_INVALID);
	assert_string_equal(e.field, "--expires");

	assert_int_equal(PARSE(&inv, &e, "token", "list"), 0);
	assert_int_equal(inv.cmd->id, CMD_TOKEN_LIST);
	assert_int_equal(PARSE(&inv, &e, "token", "list", "--all", "--limit", "5"), 0);
	assert_true(cli_flag(&inv, "all"));
	assert_int_equal(PARSE(&inv, &e, "token", "list", "soc-bot"), QERR_INVALID);

	assert_int_equal(PARSE(&inv, &e, "token", "revoke", "soc-bot", "--reason",
	    "left the team"), 0);
	assert_int_equal(inv.cmd->id, CMD_TOKEN_REVOKE);
	assert_string_equal(inv.pos[0], "soc-bot");
	assert_string_equal(cli_opt(&inv, "reason"), "left the team");
	assert_int_equal(PARSE(&inv, &e, "token", "revoke"), QERR_INVALID);
	assert_int_equal(PARSE(&inv, &e, "token", "revoke", "a", "b"), QERR_INVALID);
}

static void
expires(void **state)
{
	static const char *const good[] = { "1s", "45s", "90m", "12h", "30d", "3650d" };
	static const char *const bad[] = { "", "30", "30x", "-1d", "0s", "3651d", "1w",
		"1.5h", "30 d" };
	struct qerr e = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(cli_expires_check(good[i], &e), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(cli_expires_check(bad[i], &e), QERR_INVALID);
		assert_string_equal(e.field, "--expires");
		assert_non_null(strstr(e.msg, "s, m, h or d"));
	}
	assert_int_equal(cli_expires_check("30x", &e), QERR_INVALID);
	assert_string_equal(e.msg, "--expires wants a span from 1s to 3650d: a whole number "
	    "and s, m, h or d such as 30d, 12h, 90m, not '30x'");
	/* A usage error: exit status 2. */
	assert_int_equal(cli_exit_for_error(&e), CLI_EXIT_USAGE);
}

static void
render_token_text(void **state)
{
	const char *secret = "qt_0123456789abcdef01234567.SECRETSECRETSECRETSECRETSECRETSECRETSEC";
	json_t *list, *one;
	char *out = NULL;

	(void)state;
	/* Whatever extra a list answer might carry, only the listed columns show. */
	list = json_pack("[{s:s, s:s, s:s, s:[s], s:s, s:n, s:s, s:s, s:s, s:s},"
	    " {s:s, s:s, s:s, s:[], s:s, s:s, s:n, s:s}]",
	    "id", "qt_0123456789abcdef01234567", "name", "soc-bot", "role", "responder",
	    "scope", "staff", "created_at", "2026-11-25T08:00:00.000Z", "last_used_at",
	    "expires_at", "2026-12-25T08:00:00.000Z", "status", "active", "token", secret,
	    "hash", "HASHVALUE",
	    "id", "qt_89abcdef0123456789abcdef", "name", "old\x1b[2J", "role", "viewer",
	    "scope", "created_at", "2026-11-01T08:00:00.000Z", "last_used_at",
	    "2026-11-02T08:00:00.000Z", "expires_at", "status", "revoked");
	assert_non_null(list);
	/* eight columns of ids and times are wider than 100: --wide shows them whole */
	render_set_width(0);
	assert_int_equal(render_tokens(list, &out), 0);
	render_set_width(RENDER_WIDTH);
	assert_non_null(strstr(out, "NAME"));
	assert_non_null(strstr(out, "LAST USED"));
	assert_non_null(strstr(out, "soc-bot"));
	assert_non_null(strstr(out, "qt_0123456789abcdef01234567"));
	assert_non_null(strstr(out, "2026-12-25T08:00:00+00:00"));
	assert_non_null(strstr(out, "revoked"));
	assert_non_null(strstr(out, "old?[2J"));
	assert_null(strstr(out, "SECRET"));
	assert_null(strstr(out, "HASHVALUE"));
	free(out);
	json_decref(list);

	list = json_array();
	assert_int_equal(render_tokens(list, &out), 0);
	assert_string_equal(out, "no tokens\n");
	free(out);
	json_decref(list);

	one = json_pack("{s:s, s:s, s:s, s:[], s:n, s:s}", "id",
	    "qt_0123456789abcdef01234567", "name", "ci", "role", "viewer", "scope",
	    "expires_at", "token", secret);
	assert_int_equal(render_token(one, &out), 0);
	assert_non_null(strstr(out, "never"));
	assert_null(strstr(out, "SECRET"));
	free(out);
	json_object_set_new(one, "expires_at", json_string("2026-12-25T08:00:00.000Z"));
	assert_int_equal(render_token(one, &out), 0);
	assert_non_null(strstr(out, "2026-12-25T08:00:00+00:00"));
	free(out);
	json_decref(one);
}

static void
parse_help_and_typos(void **state)
{
	struct cli_inv inv;
	struct qerr e = { 0 };

	(void)state;
	assert_int_equal(PARSE(&inv, &e, "help"), 0);
	assert_true(inv.help);
	assert_null(inv.cmd);
	assert_int_equal(PARSE(&inv, &e, "help", "disable"), 0);
	assert_true(inv.help);
	assert_int_equal(inv.cmd->id, CMD_DISABLE);
	assert_int_equal(PARSE(&inv, &e, "help", "identity"), 0);
	assert_true(inv.help);
	assert_string_equal(inv.group, "identity");
	assert_int_equal(PARSE(&inv, &e, "help", "audit", "verify"), 0);
	assert_int_equal(inv.cmd->id, CMD_AUDIT_VERIFY);

	assert_int_equal(PARSE(&inv, &e, "disbale", "x"), QERR_INVALID);
	assert_string_equal(e.msg, "unknown command 'disbale' (did you mean 'disable'?)");
	assert_int_equal(PARSE(&inv, &e, "identites"), QERR_INVALID);
	assert_string_equal(e.msg, "unknown command 'identites' (did you mean "
	    "'identities'?)");
	assert_int_equal(PARSE(&inv, &e, "frobnicate"), QERR_INVALID);
	assert_string_equal(e.msg, "unknown command 'frobnicate'");
	assert_int_equal(PARSE(&inv, &e, "disable", "x", "--reasn", "y"), QERR_INVALID);
	assert_string_equal(e.field, "--reasn");
	assert_string_equal(e.msg, "unknown option --reasn (did you mean --reason?)");
	assert_int_equal(PARSE(&inv, &e, "disable", "x", "--jsno"), QERR_INVALID);
	assert_string_equal(e.msg, "unknown option --jsno (did you mean --json?)");
	assert_int_equal(PARSE(&inv, &e, "disable", "x", "--zzzzzz"), QERR_INVALID);
	assert_string_equal(e.msg, "unknown option --zzzzzz");

	assert_non_null(cli_nearest("revoke-session", 14, (const char *const[]){
	    "revoke-sessions", "release" }, 2));
	assert_null(cli_nearest("ab", 2, (const char *const[]){ "cd" }, 1));
}

static void
parse_yes_and_limits(void **state)
{
	struct cli_inv inv;
	struct qerr e = { 0 };

	(void)state;
	assert_int_equal(PARSE(&inv, &e, "disable", "x", "--reason", "y", "-y"), 0);
	assert_true(cli_flag(&inv, "yes"));
	/* -y is --yes only where the command has --yes */
	assert_int_equal(PARSE(&inv, &e, "actions", "-y"), QERR_INVALID);
	assert_string_equal(e.field, "-y");
	assert_int_equal(PARSE(&inv, &e, "actions", "--wide"), 0);
	assert_true(cli_flag(&inv, "wide"));

	assert_int_equal(PARSE(&inv, &e, "hunt", "SELECT 1", "--limit", "10000"), 0);
	assert_string_equal(cli_opt(&inv, "limit"), "10000");
	assert_int_equal(PARSE(&inv, &e, "hunt", "SELECT 1", "--limit", "10001"),
	    QERR_INVALID);
	assert_string_equal(e.msg, "--limit must be a number from 1 to 10000");
	assert_int_equal(PARSE(&inv, &e, "actions", "--limit", "10000"), QERR_INVALID);
	assert_string_equal(e.msg, "--limit must be a number from 1 to 1000");
}

static void
completion_script(void **state)
{
	char *s = cli_completion_bash();

	(void)state;
	assert_non_null(s);
	assert_non_null(strstr(s, "complete -F _quell quell\n"));
	/* every command word, the second words of a group, each command's options */
	assert_non_null(strstr(s, " force-password-change "));
	assert_non_null(strstr(s, " completion help\""));
	assert_non_null(strstr(s, "identity) COMPREPLY=($(compgen -W \" show add link tag "
	    "unlink conflicts\""));
	assert_non_null(strstr(s, "\t\"disable \"*) opts=\"$opts --reason --account --yes -y "
	    "--all --wait\" ;;\n"));
	assert_non_null(strstr(s, "\t\"hunt \"*) opts=\"$opts --limit --then --reason --yes "
	    "-y\" ;;\n"));
	/* "audit verify" is matched before "audit *" */
	assert_true(strstr(s, "\"audit verify\")") < strstr(s, "\"audit \"*)"));
	free(s);
}

/* Characters up to the end of the line. */
static size_t
columns(const char *s)
{
	size_t n = 0;

	for (; *s != '\0' && *s != '\n'; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static void
render_times_and_width(void **state)
{
	json_t *j;
	char *text = NULL, t[64];

	(void)state;
	setenv("TZ", "CET-1", 1);
	tzset();
	assert_int_equal(render_local_time("2026-11-25T08:00:00.123Z", t, sizeof(t)), 0);
	assert_string_equal(t, "2026-11-25T09:00:00+01:00");
	assert_int_equal(render_local_time("soon", t, sizeof(t)), -1);
	setenv("TZ", "UTC0", 1);
	tzset();
	assert_int_equal(render_local_time("2026-11-25T08:00:00+02:00", t, sizeof(t)), 0);
	assert_string_equal(t, "2026-11-25T06:00:00+00:00");

	j = json_pack("[{s:s, s:s, s:s, s:s, s:s, s:s}]", "id", "act_0123456789abcdef01234567",
	    "type", "force_password_change", "status", "partially_completed",
	    "identity_id", "idn_0123456789abcdef01234567", "requested_by",
	    "a-very-long-requester-name-from-an-oidc-directory@example.com",
	    "created_at", "2026-11-25T08:00:00.000Z");
	render_set_width(RENDER_WIDTH);
	assert_int_equal(render_actions(j, &text), 0);
	assert_int_equal(columns(strchr(text, '\n') + 1), 100);
	assert_non_null(strstr(text, "…"));
	/* the first column names the row: never cut */
	assert_non_null(strstr(text, "\nact_0123456789abcdef01234567  "));
	free(text);
	render_set_width(0);
	assert_int_equal(render_actions(j, &text), 0);
	assert_null(strstr(text, "…"));
	assert_non_null(strstr(text, "2026-11-25T08:00:00+00:00"));
	assert_non_null(strstr(text, "oidc-directory@example.com"));
	free(text);
	render_set_width(RENDER_WIDTH);
	json_decref(j);
}

static void
render_alert_text(void **state)
{
	json_t *a = json_loads("{\"id\":\"alr_1\",\"source\":\"mdi\","
	    "\"source_alert_id\":\"a-1\",\"title\":\"Ransomware\",\"category\":"
	    "\"ransomware\",\"severity\":\"high\",\"confidence\":90,\"time\":"
	    "\"2026-11-25T08:00:00Z\",\"received_at\":\"2026-11-25T08:00:01Z\","
	    "\"entities\":[{\"type\":\"account\",\"id_type\":\"upn\",\"value\":"
	    "\"bob@x\",\"resolution\":\"resolved\",\"identity_id\":\"idn_1\","
	    "\"account_id\":\"acc_1\"}],\"decisions\":[{\"identity_id\":\"idn_1\","
	    "\"rule\":\"watch\",\"outcome\":\"dry_run\",\"created_at\":"
	    "\"2026-11-25T08:00:01Z\",\"detail\":{\"why\":\"planned only\"}}],"
	    "\"actions\":[]}", 0, NULL);
	char *text = NULL;

	(void)state;
	setenv("TZ", "UTC0", 1);
	tzset();
	assert_non_null(a);
	assert_int_equal(render_alert(a, &text), 0);
	assert_non_null(strstr(text, "id:          alr_1\n"));
	assert_non_null(strstr(text, "time:        2026-11-25T08:00:00+00:00\n"));
	assert_non_null(strstr(text, "\nEntities:\nTYPE     ID TYPE  VALUE  RESOLUTION"));
	assert_non_null(strstr(text, "idn_1     watch  dry_run  2026-11-25T08:00:01+00:00  "
	    "planned only\n"));
	assert_null(strstr(text, "Actions:"));
	free(text);
	json_decref(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_help_and_typos),
		cmocka_unit_test(parse_yes_and_limits),
		cmocka_unit_test(completion_script),
		cmocka_unit_test(render_times_and_width),
		cmocka_unit_test(render_alert_text),
		cmocka_unit_test(parse_disable),
		cmocka_unit_test(parse_usage_errors),
		cmocka_unit_test(parse_values),
		cmocka_unit_test(parse_subcommands),
		cmocka_unit_test(since),
		cmocka_unit_test(conf_parse),
		cmocka_unit_test(settings),
		cmocka_unit_test(render_action_text),
		cmocka_unit_test(render_action_approval),
		cmocka_unit_test(render_preview_text),
		cmocka_unit_test(render_preview_lines),
		cmocka_unit_test(render_cancel_text),
		cmocka_unit_test(render_preview_whole),
		cmocka_unit_test(render_lists),
		cmocka_unit_test(clean),
		cmocka_unit_test(exit_codes),
		cmocka_unit_test(parse_tokens),
		cmocka_unit_test(expires),
		cmocka_unit_test(render_token_text),
	};

	/* Times are shown in the local zone: the expected text is UTC's. */
	setenv("TZ", "UTC0", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
