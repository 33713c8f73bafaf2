/*
 * The Okta provider against the Okta emulator (tests/emulators/okta), with every
 * request passing through Prism's validating proxies (front.js sends the OAuth paths to
 * the OAuth spec, the rest to the management subset): a contract violation anywhere
 * fails the run. Effects are checked in the emulator's own state, not in what the
 * provider says about them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "providers/http.h"
#include "providers/provider.h"

#ifndef SRC_ROOT
#error "SRC_ROOT must name the source tree"
#endif

#define EMULATOR	SRC_ROOT "/tests/emulators/okta/server.js"
#define FRONT		SRC_ROOT "/tests/integration/okta/front.js"
#define PRISM		SRC_ROOT "/tests/contract/node_modules/.bin/prism"
#define SPECS		SRC_ROOT "/tests/contract/specs"
#define TOKEN		"00quell-test-ssws-token-0123456789"
#define CLIENT_ID	"0oaquelltest"
#define BURST		2000
#define BURST_USERS	100
#define DEACTIVATE	"POST /api/v1/users/{id}/lifecycle/deactivate"
#define BURST_THREADS	8

struct proc {
	pid_t pid;
	char log[256];
};

static char tmpdir[] = "/tmp/quell-okta-test.XXXXXX";
static struct proc emu, prism_users, prism_oauth, front;
static char emu_url[64], org_url[64];
static struct http_client *hc;
static const struct provider_ops *okta;

/* Processes */

static int
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int s = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s == -1 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    getsockname(s, (struct sockaddr *)&sa, &len) == -1)
		fail_msg("free port: %s", strerror(errno));
	port = ntohs(sa.sin_port);
	close(s);
	return port;
}

/* Starts argv with its output in a log file; waits until the log holds ready. */
static void
start(struct proc *pr, const char *name, char *const argv[], const char *ready, int *port)
{
	char buf[65536];
	const char *m;
	int fd, i;
	ssize_t n;

	snprintf(pr->log, sizeof(pr->log), "%s/%s.log", tmpdir, name);
	if ((pr->pid = fork()) == -1)
		fail_msg("fork: %s", strerror(errno));
	if (pr->pid == 0) {
		fd = open(pr->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (i = 0; i < 600; i++) {
		usleep(100000);
		if ((fd = open(pr->log, O_RDONLY)) == -1)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		if ((m = strstr(buf, ready)) != NULL) {
			if (port != NULL)
				*port = atoi(m + strlen(ready));
			return;
		}
		if (waitpid(pr->pid, NULL, WNOHANG) == pr->pid)
			fail_msg("%s exited: %s", name, buf);
	}
	fail_msg("%s did not start: %s", name, buf);
}

static void
stop(struct proc *pr)
{
	if (pr->pid <= 0)
		return;
	kill(pr->pid, SIGTERM);
	waitpid(pr->pid, NULL, 0);
	pr->pid = 0;
}

static int
run(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The emulator's control API */

static json_t *
ctl(const char *method, const char *path, json_t *body)
{
	struct http_header h = { "Content-Type", "application/json" };
	struct http_request rq = { .method = method, .headers = &h, .nheaders = 1 };
	struct http_response resp = { 0 };
	struct qerr e;
	char url[256], *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_t *out;

	snprintf(url, sizeof(url), "%s%s", emu_url, path);
	rq.url = url;
	rq.body = text;
	rq.body_len = text != NULL ? strlen(text) : 0;
	if (http_do(hc, &rq, &resp, &e) != 0)
		fail_msg("%s %s: %s", method, path, e.msg);
	if (resp.status >= 300)
		fail_msg("%s %s: HTTP %ld %s", method, path, resp.status, resp.body);
	out = json_loads(resp.body, 0, NULL);
	http_response_clear(&resp);
	free(text);
	json_decref(body);
	assert_non_null(out);
	return out;
}

static void
config(const char *json)
{
	json_decref(ctl("PATCH", "/_emulator/config", json_loads(json, 0, NULL)));
}

/* Seeds one user; its id goes to id. */
static void
seed(const char *login, const char *status, char id[64])
{
	json_t *r = ctl("POST", "/_emulator/users", json_pack("{s:[{s:s, s:s, s:s, s:s}]}",
	    "users", "login", login, "status", status, "firstName", "Test", "lastName", login));

	snprintf(id, 64, "%s", json_string_value(json_array_get(json_object_get(r, "ids"), 0)));
	json_decref(r);
}

/* The emulator's view of one user: status, sessions revoked, risk. */
static json_t *
user_state(const char *id)
{
	char path[128];

	snprintf(path, sizeof(path), "/_emulator/users/%s", id);
	return ctl("GET", path, NULL);
}

static void
assert_status(const char *id, const char *status)
{
	json_t *u = user_state(id);

	assert_string_equal(json_string_value(json_object_get(u, "status")), status);
	json_decref(u);
}

static long
stat_count(const char *key)
{
	json_t *s = ctl("GET", "/_emulator/stats", NULL);
	long n = (long)json_integer_value(json_object_get(s, key));

	json_decref(s);
	return n;
}

/* How many requests the emulator took on route ("POST /api/v1/users/{id}/…"). */
static long
route_count(const char *route)
{
	json_t *s = ctl("GET", "/_emulator/stats", NULL);
	long n = (long)json_integer_value(json_object_get(json_object_get(json_object_get(s,
	    "routes"), route), "count"));

	json_decref(s);
	return n;
}

/* Provider plumbing */

static void
write_file(const char *name, const char *text, mode_t mode, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", tmpdir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

/* Opens an okta system from "key=value" pairs, NULL-terminated; line i+2 for pair i. */
static int
open_with(struct provider **p, struct qerr *e, ...)
{
	struct config_kv kv[16];
	struct system_config sc = { .name = "okta-test", .kind = "okta", .file = "test.conf",
		.line = 1, .max_concurrency = 4, .kv = kv };
	const char *pair;
	va_list ap;
	int r;

	va_start(ap, e);
	while ((pair = va_arg(ap, const char *)) != NULL && sc.nkv < 16) {
		const char *eq = strchr(pair, '=');

		kv[sc.nkv].key = strndup(pair, (size_t)(eq - pair));
		kv[sc.nkv].value = strdup(eq + 1);
		kv[sc.nkv].line = (int)sc.nkv + 2;
		sc.nkv++;
	}
	va_end(ap);
	memset(e, 0, sizeof(*e));
	r = okta->open(&sc, p, e);
	while (sc.nkv > 0) {
		sc.nkv--;
		free(kv[sc.nkv].key);
		free(kv[sc.nkv].value);
	}
	return r;
}

static char token_file[256], key_file[256], ec_key_file[256], world_file[256];
static char url_kv[96], token_kv[300], key_kv[300], ec_kv[300];

static struct provider *
open_ssws(void)
{
	struct provider *p = NULL;
	struct qerr e;

	if (open_with(&p, &e, "kind=okta", url_kv, "allow_plaintext=yes", token_kv,
	    "timeout=10", NULL) != 0)
		fail_msg("open: %s", e.msg);
	return p;
}

/* extra: one more "key=value", or NULL. */
static struct provider *
open_oauth(const char *keykv, const char *extra)
{
	struct provider *p = NULL;
	struct qerr e;

	if (open_with(&p, &e, "kind=okta", url_kv, "allow_plaintext=yes",
	    "client_id=" CLIENT_ID, keykv, "key_id=k1", extra, NULL) != 0)
		fail_msg("open: %s", e.msg);
	return p;
}

static void
exec_step(struct provider *p, enum action_type t, const char *id, const char *params,
    struct step_result *res)
{
	struct step s = { .type = t, .account_ref = (char *)id,
		.params = (char *)(params != NULL ? params : "{}") };

	assert_int_equal(provider_execute(okta, p, &s, res), 0);
}

static void
expect(struct provider *p, enum action_type t, const char *id, const char *params,
    enum step_outcome outcome, const char *msg)
{
	struct step_result res;

	exec_step(p, t, id, params, &res);
	if (res.outcome != outcome || (msg != NULL && strstr(res.message, msg) == NULL))
		fail_msg("%s on %s: outcome %d (%s) \"%s\", wanted %d \"%s\"",
		    action_type_name(t), id, res.outcome, res.error_code, res.message, outcome,
		    msg != NULL ? msg : "");
}

/* Setup */

static int
setup(void **state)
{
	char cmd[1024], *prism_argv[10], port_s[16], spec[512], up[64];
	char users_url[64], oauth_url[64], *front_argv[7];
	int port = 0, pu, po;

	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), "cd %s && openssl genpkey -algorithm RSA -pkeyopt "
	    "rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null && openssl pkey -in rsa.pem "
	    "-pubout -out rsa.pub && openssl genpkey -algorithm EC -pkeyopt "
	    "ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null && openssl pkey -in ec.pem "
	    "-pubout -out ec.pub && chmod 600 rsa.pem ec.pem", tmpdir);
	if (run(cmd) != 0)
		return -1;
	{
		char *argv[] = { "node", EMULATOR, "--port", "0", NULL };

		start(&emu, "emulator", argv, "listening on ", &port);
	}
	snprintf(emu_url, sizeof(emu_url), "http://127.0.0.1:%d", port);
	snprintf(up, sizeof(up), "%s", emu_url);
	pu = free_port();
	snprintf(port_s, sizeof(port_s), "%d", pu);
	snprintf(spec, sizeof(spec), "%s/okta-remediation-subset-with-examples.yaml", SPECS);
	prism_argv[0] = PRISM; prism_argv[1] = "proxy"; prism_argv[2] = "--errors";
	prism_argv[3] = spec; prism_argv[4] = up; prism_argv[5] = "-h";
	prism_argv[6] = "127.0.0.1"; prism_argv[7] = "-p"; prism_argv[8] = port_s;
	prism_argv[9] = NULL;
	start(&prism_users, "prism-users", prism_argv, "Prism is listening", NULL);
	snprintf(users_url, sizeof(users_url), "http://127.0.0.1:%d", pu);
	po = free_port();
	snprintf(port_s, sizeof(port_s), "%d", po);
	snprintf(spec, sizeof(spec), "%s/okta-oauth-minimal.yaml", SPECS);
	start(&prism_oauth, "prism-oauth", prism_argv, "Prism is listening", NULL);
	snprintf(oauth_url, sizeof(oauth_url), "http://127.0.0.1:%d", po);
	front_argv[0] = "node"; front_argv[1] = FRONT; front_argv[2] = "--users";
	front_argv[3] = users_url; front_argv[4] = "--oauth"; front_argv[5] = oauth_url;
	front_argv[6] = NULL;
	start(&front, "front", front_argv, "listening on ", &port);
	snprintf(org_url, sizeof(org_url), "http://127.0.0.1:%d", port);
	snprintf(url_kv, sizeof(url_kv), "org_url=%s", org_url);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	stop(&front);
	stop(&prism_oauth);
	stop(&prism_users);
	stop(&emu);
	http_client_free(hc);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	run(cmd);
	return 0;
}

/* Fresh emulator state before each test: token, app, the org URL as seen via front. */
static int
reset_emulator(void **state)
{
	char buf[4096], path[300];
	FILE *f;
	size_t n;
	json_t *pub;

	(void)state;
	json_decref(ctl("POST", "/_emulator/reset", NULL));
	json_decref(ctl("PATCH", "/_emulator/config", json_pack("{s:s}", "public_url",
	    org_url)));
	json_decref(ctl("POST", "/_emulator/tokens", json_pack("{s:s}", "token", TOKEN)));
	snprintf(path, sizeof(path), "%s/rsa.pub", tmpdir);
	assert_non_null(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	pub = json_pack("{s:s, s:s, s:s, s:[s,s,s]}", "client_id", CLIENT_ID,
	    "public_pem", buf, "kid", "k1", "scopes", "okta.users.manage",
	    "okta.users.read", "okta.userRisk.manage");
	json_decref(ctl("POST", "/_emulator/apps", pub));
	return 0;
}

/* Tests: configuration */

static void
test_config(void **state)
{
	struct provider *p = NULL;
	struct qerr e;

	(void)state;
	assert_int_equal(open_with(&p, &e, "kind=okta", url_kv, "allow_plaintext=yes",
	    token_kv, "colour=blue", NULL), QERR_CONFIG);
	assert_string_equal(e.msg, "test.conf:6: unknown key \"colour\" for an okta system");
	assert_int_equal(open_with(&p, &e, "kind=okta", url_kv, token_kv, NULL), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "test.conf:3: http:// sends"));
	assert_int_equal(open_with(&p, &e, "kind=okta", "org_url=https://x.okta.com/api",
	    token_kv, NULL), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "test.conf:3: org_url must be"));
	assert_int_equal(open_with(&p, &e, "kind=okta", "org_url=https://x.okta.com",
	    world_file, NULL), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "readable by everyone"));
	assert_int_equal(open_with(&p, &e, "kind=okta", "org_url=https://x.okta.com",
	    token_kv, "client_id=x", key_kv, NULL), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "not both"));
	assert_int_equal(open_with(&p, &e, "kind=okta", "org_url=https://x.okta.com",
	    token_kv, "max_concurrency=76", NULL), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "test.conf:5: max_concurrency"));
	assert_int_equal(open_with(&p, &e, "kind=okta", "org_url=https://x.okta.com",
	    token_kv, "rate_headroom=1.5", NULL), QERR_CONFIG);
	assert_int_equal(open_with(&p, &e, "kind=okta", "org_url=https://x.okta.com",
	    "client_id=x", "private_key_file=/etc/hostname", NULL), QERR_CONFIG);
	assert_null(p);
	assert_true(provider_supports(okta, NULL, ACTION_DEACTIVATE));
	assert_false(provider_supports(okta, NULL, ACTION_MARK_COMPROMISED));
}

/* Tests: actions and their states */

static void
test_lifecycle(void **state)
{
	struct provider *p = open_ssws();
	struct step_result res;
	char id[64];
	json_t *u;
	long writes;

	(void)state;
	seed("life@example.com", "ACTIVE", id);
	exec_step(p, ACTION_DISABLE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.state, "suspended");
	assert_true(res.request_id[0] != '\0');
	assert_status(id, "SUSPENDED");
	expect(p, ACTION_DISABLE, id, NULL, STEP_OUTCOME_SUCCEEDED, "already suspended");
	exec_step(p, ACTION_ENABLE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.state, "enabled");
	assert_status(id, "ACTIVE");
	expect(p, ACTION_ENABLE, id, NULL, STEP_OUTCOME_SUCCEEDED, "already active");
	expect(p, ACTION_REVOKE_SESSIONS, id, NULL, STEP_OUTCOME_SUCCEEDED, "revoked");
	u = user_state(id);
	assert_int_equal(json_integer_value(json_object_get(u, "sessions_revocations")), 1);
	assert_true(json_is_true(json_object_get(u, "oauth_tokens_revoked")));
	json_decref(u);
	exec_step(p, ACTION_FORCE_PASSWORD_CHANGE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.state, "password_expired");
	assert_status(id, "PASSWORD_EXPIRED");
	expect(p, ACTION_SET_RISK, id, "{\"risk_level\":\"HIGH\"}", STEP_OUTCOME_SUCCEEDED,
	    "risk level set to HIGH");
	u = user_state(id);
	assert_string_equal(json_string_value(json_object_get(u, "riskLevel")), "HIGH");
	json_decref(u);
	expect(p, ACTION_SET_RISK, id, "{}", STEP_OUTCOME_PERMANENT, "risk_level");
	exec_step(p, ACTION_DEACTIVATE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.state, "deprovisioned");
	assert_status(id, "DEPROVISIONED");
	/* already deactivated: read, and nothing sent */
	writes = route_count(DEACTIVATE);
	exec_step(p, ACTION_DEACTIVATE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.message, "already deactivated");
	assert_string_equal(res.state, "deprovisioned");
	assert_int_equal(route_count(DEACTIVATE), writes);
	exec_step(p, ACTION_DISABLE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.error_code, "E0000001");
	assert_string_equal(res.message, "Okta cannot suspend a user in DEPROVISIONED (only "
	    "ACTIVE users): the user is deactivated");
	assert_string_equal(res.state, "deprovisioned");
	expect(p, ACTION_ENABLE, id, NULL, STEP_OUTCOME_PERMANENT,
	    "Okta cannot unsuspend a user in DEPROVISIONED (only SUSPENDED users)");
	seed("staged@example.com", "STAGED", id);
	expect(p, ACTION_DISABLE, id, NULL, STEP_OUTCOME_PERMANENT,
	    "Okta cannot suspend a user in STAGED (only ACTIVE users): revoke sessions or "
	    "deactivate instead");
	okta->close(p);
}

/* Okta suspends only ACTIVE users: each other status is named with what to do
 * instead, nothing changes, and revoking the sessions still works. */
static void
test_not_suspendable(void **state)
{
	static const char *const statuses[] = { "RECOVERY", "PASSWORD_EXPIRED",
		"LOCKED_OUT" };
	struct provider *p = open_ssws();
	struct step_result res;
	char id[64], login[64], want[256], st[32];
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		snprintf(login, sizeof(login), "ns%zu@example.com", i);
		seed(login, statuses[i], id);
		snprintf(want, sizeof(want), "Okta cannot suspend a user in %s (only ACTIVE "
		    "users): revoke sessions or deactivate instead", statuses[i]);
		for (k = 0; statuses[i][k] != '\0'; k++)
			st[k] = (char)tolower((unsigned char)statuses[i][k]);
		st[k] = '\0';
		exec_step(p, ACTION_DISABLE, id, NULL, &res);
		assert_int_equal(res.outcome, STEP_OUTCOME_PERMANENT);
		assert_string_equal(res.error_code, "E0000001");
		assert_string_equal(res.message, want);
		assert_string_equal(res.state, st);
		assert_status(id, statuses[i]);
		expect(p, ACTION_REVOKE_SESSIONS, id, NULL, STEP_OUTCOME_SUCCEEDED, "revoked");
	}
	okta->close(p);
}

/* The preview's warning comes from the state sync read, before anything is sent. */
static void
test_refuses(void **state)
{
	struct provider *p = open_ssws();
	struct account a = { .system = "okta", .kind = "okta" };
	char why[256];
	long before = stat_count("requests");

	(void)state;
	a.state = "recovery";
	assert_true(provider_refuses(okta, p, &a, ACTION_DISABLE, why, sizeof(why)));
	assert_string_equal(why, "Okta cannot suspend a user in RECOVERY (only ACTIVE "
	    "users): revoke sessions or deactivate instead");
	a.state = "locked_out";
	assert_true(provider_refuses(okta, p, &a, ACTION_DISABLE, why, sizeof(why)));
	assert_non_null(strstr(why, "in LOCKED_OUT"));
	assert_true(provider_refuses(okta, p, &a, ACTION_ENABLE, why, sizeof(why)));
	assert_string_equal(why, "Okta cannot unsuspend a user in LOCKED_OUT (only SUSPENDED "
	    "users)");
	assert_false(provider_refuses(okta, p, &a, ACTION_REVOKE_SESSIONS, why, sizeof(why)));
	assert_false(provider_refuses(okta, p, &a, ACTION_DEACTIVATE, why, sizeof(why)));
	assert_false(provider_refuses(okta, p, &a, ACTION_MARK_COMPROMISED, why,
	    sizeof(why)));
	assert_string_equal(why, "");
	a.state = "enabled";
	assert_false(provider_refuses(okta, p, &a, ACTION_DISABLE, why, sizeof(why)));
	a.state = "suspended";	/* already: the step says so and succeeds */
	assert_false(provider_refuses(okta, p, &a, ACTION_DISABLE, why, sizeof(why)));
	a.state = "removed";	/* not an Okta status: nothing known */
	assert_false(provider_refuses(okta, p, &a, ACTION_DISABLE, why, sizeof(why)));
	a.state = NULL;
	assert_false(provider_refuses(okta, p, &a, ACTION_DISABLE, why, sizeof(why)));
	assert_int_equal(stat_count("requests"), before);
	okta->close(p);
}

static void
test_errors(void **state)
{
	struct provider *p = open_ssws();
	struct step_result res;
	char id[64];

	(void)state;
	seed("err@example.com", "ACTIVE", id);
	exec_step(p, ACTION_DISABLE, "00uDoesNotExist000000", NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.error_code, "E0000007");
	assert_string_equal(res.message, "account not found in Okta");
	assert_true(res.request_id[0] != '\0');
	expect(p, ACTION_DISABLE, "../etc", NULL, STEP_OUTCOME_PERMANENT, "not an Okta user id");
	json_decref(ctl("PATCH", "/_emulator/users/err@example.com",
	    json_pack("{s:b}", "admin_protected", 1)));
	exec_step(p, ACTION_DISABLE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.error_code, "E0000006");
	assert_non_null(strstr(res.message, "You do not have permission"));
	json_decref(ctl("PATCH", "/_emulator/users/err@example.com",
	    json_pack("{s:b}", "admin_protected", 0)));
	json_decref(ctl("POST", "/_emulator/faults", json_pack("{s:s, s:i}", "path_regex",
	    "suspend", "status", 503)));
	exec_step(p, ACTION_DISABLE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_TRANSIENT);
	assert_string_equal(res.error_code, "E0000009");
	json_decref(ctl("POST", "/_emulator/faults", json_pack("{s:s, s:i}", "path_regex",
	    "suspend", "status", 429)));
	exec_step(p, ACTION_DISABLE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_TRANSIENT);
	assert_string_equal(res.error_code, "E0000047");
	assert_true(res.retry_after_ms > 0 && res.retry_after_ms <= 61000);
	json_decref(ctl("POST", "/_emulator/faults", json_pack("{s:s, s:b}", "path_regex",
	    "suspend", "drop", 1)));
	/* Prism turns the dropped connection into a 500 of its own: transient either way. */
	exec_step(p, ACTION_DISABLE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_TRANSIENT);
	expect(p, ACTION_DISABLE, id, NULL, STEP_OUTCOME_SUCCEEDED, "suspended");
	config("{\"risk_scoring\":false}");
	exec_step(p, ACTION_SET_RISK, id, "{\"risk_level\":\"LOW\"}", &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.error_code, "E0000015");
	assert_string_equal(res.message, "Risk Scoring is not enabled in this Okta org");
	config("{\"risk_scoring\":true, \"risk_disabled_status\":401}");
	config("{\"risk_scoring\":false}");
	expect(p, ACTION_SET_RISK, id, "{\"risk_level\":\"LOW\"}", STEP_OUTCOME_PERMANENT,
	    "Risk Scoring is not enabled in this Okta org");
	okta->close(p);
	p = NULL;
	{
		struct qerr e;
		char dead[96];

		snprintf(dead, sizeof(dead), "org_url=http://127.0.0.1:%d", free_port());
		assert_int_equal(open_with(&p, &e, "kind=okta", dead, "allow_plaintext=yes",
		    token_kv, NULL), 0);
		exec_step(p, ACTION_DISABLE, id, NULL, &res);
		assert_int_equal(res.outcome, STEP_OUTCOME_TRANSIENT);
		assert_string_equal(res.error_code, "network");
		okta->close(p);
	}
	{
		struct qerr e;
		char bad[300];

		snprintf(bad, sizeof(bad), "api_token_file=%s/bad.token", tmpdir);
		write_file("bad.token", "wrong-token\n", 0600, bad + 15, sizeof(bad) - 15);
		assert_int_equal(open_with(&p, &e, "kind=okta", url_kv, "allow_plaintext=yes",
		    bad, NULL), 0);
		exec_step(p, ACTION_DISABLE, id, NULL, &res);
		assert_int_equal(res.outcome, STEP_OUTCOME_PERMANENT);
		assert_string_equal(res.error_code, "E0000011");
		assert_null(strstr(res.message, "wrong-token"));
		okta->close(p);
	}
}

/* Tests: OAuth 2.0 service app */

static void
test_oauth(void **state)
{
	struct provider *p;
	struct step_result res;
	char id[64], buf[4096], path[300];
	json_t *routes, *r;
	FILE *f;
	size_t n;

	(void)state;
	seed("oauth@example.com", "ACTIVE", id);
	p = open_oauth(key_kv, NULL);
	expect(p, ACTION_DISABLE, id, NULL, STEP_OUTCOME_SUCCEEDED, "suspended");
	expect(p, ACTION_ENABLE, id, NULL, STEP_OUTCOME_SUCCEEDED, "unsuspended");
	/* The cached token is used, not a new one per call. */
	r = ctl("GET", "/_emulator/stats", NULL);
	routes = json_object_get(r, "routes");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(routes,
	    "POST /oauth2/v1/token"), "count")), 1);
	json_decref(r);
	/* Expired mid-run: the 401 renews the token once and the step goes through. */
	json_decref(ctl("POST", "/_emulator/tokens/expire", NULL));
	exec_step(p, ACTION_DISABLE, id, NULL, &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_status(id, "SUSPENDED");
	r = ctl("GET", "/_emulator/stats", NULL);
	routes = json_object_get(r, "routes");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(routes,
	    "POST /oauth2/v1/token"), "count")), 2);
	json_decref(r);
	okta->close(p);

	/* ES256 with a P-256 key registered under its own client. */
	snprintf(path, sizeof(path), "%s/ec.pub", tmpdir);
	assert_non_null(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	json_decref(ctl("POST", "/_emulator/apps", json_pack("{s:s, s:s, s:s, s:[s,s]}",
	    "client_id", CLIENT_ID, "public_pem", buf, "kid", "k1", "scopes",
	    "okta.users.manage", "okta.userRisk.manage")));
	p = open_oauth(ec_kv, NULL);
	expect(p, ACTION_ENABLE, id, NULL, STEP_OUTCOME_SUCCEEDED, "unsuspended");
	okta->close(p);
	/* A token without okta.userRisk.manage: Okta refuses the risk call, for good. */
	p = open_oauth(ec_kv, "scopes=okta.users.manage");
	exec_step(p, ACTION_SET_RISK, id, "{\"risk_level\":\"LOW\"}", &res);
	assert_int_equal(res.outcome, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.error_code, "E0000006");
	okta->close(p);
}

/* Tests: listing */

struct tally {
	int n;
	bool saw_first;
};

static int
count_cb(const struct account *a, void *arg)
{
	struct tally *t = arg;

	t->n++;
	assert_string_equal(a->kind, "okta");
	assert_non_null(a->external_id);
	if (strcmp(a->username, "page0000@example.com") == 0) {
		t->saw_first = true;
		assert_string_equal(a->email, "page0000@example.com");
		assert_string_equal(a->display_name, "Test page0000@example.com");
		assert_string_equal(a->state, "suspended");
	}
	return 0;
}

static void
test_paging(void **state)
{
	struct provider *p = open_ssws();
	struct tally t = { 0 };
	struct qerr e;
	json_t *users = json_array();
	char login[64];
	int i;

	(void)state;
	for (i = 0; i < 450; i++) {
		snprintf(login, sizeof(login), "page%04d@example.com", i);
		json_array_append_new(users, json_pack("{s:s, s:s, s:s, s:s}", "login", login,
		    "firstName", "Test", "lastName", login, "status",
		    i == 0 ? "SUSPENDED" : i == 1 ? "DEPROVISIONED" : "ACTIVE"));
	}
	json_decref(ctl("POST", "/_emulator/users", json_pack("{s:o}", "users", users)));
	assert_int_equal(okta->list_accounts(p, count_cb, &t, &e), 0);
	/* Okta leaves DEPROVISIONED users out of the plain listing. */
	assert_int_equal(t.n, 449);
	assert_true(t.saw_first);
	/* A next link to another host is refused, not followed. */
	config("{\"public_url\":\"http://127.0.0.2:1\"}");
	t.n = 0;
	assert_int_not_equal(okta->list_accounts(p, count_cb, &t, &e), 0);
	assert_non_null(strstr(e.msg, "leaves"));
	assert_int_equal(t.n, 200);
	okta->close(p);
}

/* Tests: pacing */

struct burst {
	struct provider *p;
	char (*ids)[64];
	int first, count;
	int done, transient, failed;
};

static void *
burst_worker(void *arg)
{
	struct burst *b = arg;
	struct step_result res;
	int i, tries;

	for (i = 0; i < b->count; i++) {
		const char *id = b->ids[b->first + i / 2 % (BURST_USERS / BURST_THREADS)];
		enum action_type t = i % 2 == 0 ? ACTION_DISABLE : ACTION_ENABLE;

		for (tries = 0; tries < 50; tries++) {
			struct step s = { .type = t, .account_ref = (char *)id, .params = "{}" };

			provider_execute(okta, b->p, &s, &res);
			if (res.outcome != STEP_OUTCOME_TRANSIENT)
				break;
			b->transient++;
			usleep((useconds_t)(res.retry_after_ms > 0 ? res.retry_after_ms : 100) *
			    1000);
		}
		if (res.outcome == STEP_OUTCOME_SUCCEEDED)
			b->done++;
		else
			b->failed++;
	}
	return NULL;
}

static void
test_rate_pacing(void **state)
{
	struct provider *p = open_ssws();
	struct burst b[BURST_THREADS];
	pthread_t th[BURST_THREADS];
	char (*ids)[64] = calloc(BURST_USERS, 64), login[64];
	struct timespec t0, t1;
	int i, done = 0, transient = 0, failed = 0;
	long limited;
	double secs;
	json_t *v;

	(void)state;
	/*
	 * 600 a minute scaled down to 120 per 2 s (60/s): the same shape, three times
	 * faster, and below what the Prism chain carries, so that pacing has to hold back.
	 */
	config("{\"rate_limit\":120, \"rate_window_s\":2}");
	for (i = 0; i < BURST_USERS; i++) {
		snprintf(login, sizeof(login), "burst%03d@example.com", i);
		seed(login, "ACTIVE", ids[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < BURST_THREADS; i++) {
		b[i] = (struct burst){ .p = p, .ids = ids,
			.first = i * (BURST_USERS / BURST_THREADS), .count = BURST / BURST_THREADS };
		pthread_create(&th[i], NULL, burst_worker, &b[i]);
	}
	for (i = 0; i < BURST_THREADS; i++) {
		pthread_join(th[i], NULL);
		done += b[i].done;
		transient += b[i].transient;
		failed += b[i].failed;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	limited = stat_count("rate_limited");
	v = ctl("GET", "/_emulator/stats", NULL);
	print_message("burst: %d actions in %.1f s (%.1f/s = %.2f of the 60/s bucket), %d "
	    "waits handed back, %ld 429s, max %lld concurrent\n", done, secs, done / secs,
	    done / secs / 60.0, transient,
	    limited, json_integer_value(json_object_get(v, "max_concurrent")));
	json_decref(v);
	assert_int_equal(done, BURST);
	assert_int_equal(failed, 0);
	assert_true(limited <= 1);
	free(ids);
	okta->close(p);
}

/* Every request above went through Prism: none may have broken the contract. */
static void
test_contract(void **state)
{
	struct http_request rq = { .method = "GET" };
	struct http_response resp = { 0 };
	struct qerr e;
	char url[128];
	json_t *v;

	(void)state;
	snprintf(url, sizeof(url), "%s/_front/violations", org_url);
	rq.url = url;
	assert_int_equal(http_do(hc, &rq, &resp, &e), 0);
	if (resp.status != 200)
		fail_msg("GET %s: %ld %s", url, resp.status, resp.body);
	v = json_loads(resp.body, 0, NULL);
	/* no count is no answer, not "no violations" */
	if (!json_is_integer(json_object_get(v, "count")))
		fail_msg("GET %s: no integer count in %s", url, resp.body);
	if (json_integer_value(json_object_get(v, "count")) != 0)
		fail_msg("Prism found contract violations: %s", resp.body);
	json_decref(v);
	http_response_clear(&resp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test_setup(test_lifecycle, reset_emulator),
		cmocka_unit_test_setup(test_not_suspendable, reset_emulator),
		cmocka_unit_test_setup(test_refuses, reset_emulator),
		cmocka_unit_test_setup(test_errors, reset_emulator),
		cmocka_unit_test_setup(test_oauth, reset_emulator),
		cmocka_unit_test_setup(test_paging, reset_emulator),
		cmocka_unit_test_setup(test_rate_pacing, reset_emulator),
		cmocka_unit_test(test_contract),
	};
	struct http_options ho = { .timeout_ms = 30000 };
	struct qerr e;

	if (run("command -v node >/dev/null 2>&1") != 0 || access(PRISM, X_OK) != 0) {
		fprintf(stderr, "node or Prism missing: skipped\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((okta = provider_lookup("okta")) == NULL || http_client_new(&ho, &hc, &e) != 0)
		return 1;
	if (setup(NULL) != 0)
		return 1;
	write_file("ssws.token", TOKEN "\n", 0600, token_file, sizeof(token_file));
	write_file("world.token", TOKEN "\n", 0644, world_file + 15, sizeof(world_file) - 15);
	memcpy(world_file, "api_token_file=", 15);
	snprintf(key_file, sizeof(key_file), "%s/rsa.pem", tmpdir);
	snprintf(ec_key_file, sizeof(ec_key_file), "%s/ec.pem", tmpdir);
	snprintf(token_kv, sizeof(token_kv), "api_token_file=%s", token_file);
	snprintf(key_kv, sizeof(key_kv), "private_key_file=%s", key_file);
	snprintf(ec_kv, sizeof(ec_kv), "private_key_file=%s", ec_key_file);
	{
		int r = cmocka_run_group_tests(tests, NULL, teardown);

		return r;
	}
}
