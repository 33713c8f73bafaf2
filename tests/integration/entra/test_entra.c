/*
 * provider_entra against the Graph emulator (tests/emulators/graph), with Prism in
 * front of the Graph and token paths so that every request quell sends is checked
 * against the contract: every action, every error class, batching, a token expiring
 * mid-batch, paging, and both kinds of app credential. Prism is required (scripts/
 * deps.sh --test installs it): without it the program fails, it never runs unchecked;
 * and test_contract fails on anything Prism logged as a refusal or a violation.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
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

extern const struct provider_ops provider_entra;

#define TENANT		"8f0c3c4e-6f2a-4d51-9d4e-0c2b1a7e5d10"
#define CLIENT		"3b1f9a52-1d2c-4e8f-a7b6-5c4d3e2f1a09"
#define SECRET		"s3cr3t~value.with-chars_"
#define TENANT_BIG	"paging.onmicrosoft.com"
#define U_PLAIN		"11111111-1111-4111-8111-111111111111"
#define U_PRIV		"22222222-2222-4222-8222-222222222222"
#define U_SYNCED	"33333333-3333-4333-8333-333333333333"
#define U_MISSING	"44444444-4444-4444-8444-444444444444"
#define N_MARK		130

static pid_t emu_pid = -1, prism_pid = -1, login_pid = -1;
static int emu_port, graph_port, login_port;
static char dir[] = "/tmp/quell-entra-XXXXXX";
static char graph_log[64], login_log[64];	/* what each Prism wrote, under dir */
static struct http_client *ctl_http;

static pid_t
spawn(char *const argv[], int *outfd)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds) != 0)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		setpgid(0, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	*outfd = fds[0];
	return pid;
}

struct drain {
	FILE *in;
	FILE *out;	/* NULL: the output is dropped */
};

/* Keeps reading a child's log so that a full pipe never blocks it; keeps it in out. */
static void *
drain(void *arg)
{
	struct drain *d = arg;
	char buf[4096];

	/* line by line (fread would wait for a full buffer): each is in out at once */
	while (fgets(buf, sizeof(buf), d->in) != NULL)
		if (d->out != NULL) {
			fputs(buf, d->out);
			fflush(d->out);
		}
	fclose(d->in);
	if (d->out != NULL)
		fclose(d->out);
	free(d);
	return NULL;
}

/* Reads the child's stdout until a line holding want; returns that line. The rest of
 * the output goes to log (a path, or NULL to drop it). */
static int
wait_line(int fd, const char *want, char *line, size_t len, const char *log)
{
	FILE *f = fdopen(fd, "r");
	struct drain *d;
	pthread_t th;

	while (fgets(line, (int)len, f) != NULL)
		if (strstr(line, want) != NULL) {
			d = calloc(1, sizeof(*d));
			d->in = f;
			d->out = log != NULL ? fopen(log, "w") : NULL;
			pthread_create(&th, NULL, drain, d);
			pthread_detach(th);
			return 0;
		}
	fclose(f);
	return -1;
}

static int
free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &l);
	port = ntohs(a.sin_port);
	close(s);
	return port;
}

static json_t *
ctl(const char *method, const char *path, json_t *body)
{
	char url[256], *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	struct http_header h[] = { { "Content-Type", "application/json" } };
	struct http_request req = { .method = method, .url = url, .body = text,
	    .body_len = text != NULL ? strlen(text) : 0, .headers = h, .nheaders = 1 };
	struct http_response resp;
	struct qerr e = { 0 };
	json_t *out;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", emu_port, path);
	assert_int_equal(http_do(ctl_http, &req, &resp, &e), 0);
	if (resp.status >= 300)
		fprintf(stderr, "control %s %s: %ld %s\n", method, path, resp.status, resp.body);
	assert_true(resp.status < 300);
	out = json_loads(resp.body, 0, NULL);
	http_response_clear(&resp);
	free(text);
	json_decref(body);
	return out;
}

static void
ctl0(const char *method, const char *path, json_t *body)
{
	json_decref(ctl(method, path, body));
}

static long
stat_count(const char *key)
{
	json_t *s = ctl("GET", "/_emulator/stats?last=0", NULL);
	long n = (long)json_integer_value(json_object_get(json_object_get(s, "requests"),
	    key));

	json_decref(s);
	return n;
}

static long
stat_status(const char *key, const char *status)
{
	json_t *s = ctl("GET", "/_emulator/stats?last=0", NULL);
	long n = (long)json_integer_value(json_object_get(json_object_get(json_object_get(s,
	    "statuses"), key), status));

	json_decref(s);
	return n;
}

static long
token_ok(void)
{
	json_t *s = ctl("GET", "/_emulator/stats?last=0", NULL);
	long n = (long)json_integer_value(json_object_get(json_object_get(s,
	    "token_requests"), "ok"));

	json_decref(s);
	return n;
}

static json_t *
emu_user(const char *id)
{
	char path[128];

	snprintf(path, sizeof(path), "/_emulator/users/%s", id);
	return ctl("GET", path, NULL);
}

static void
fault(const char *method, const char *re, int status, int retry_after, int delay_ms)
{
	json_t *f = json_pack("{s:s, s:s, s:i}", "method", method, "path_regex", re,
	    "delay_ms", delay_ms);

	if (status > 0)
		json_object_set_new(f, "status", json_integer(status));
	if (retry_after >= 0)
		json_object_set_new(f, "retry_after", json_integer(retry_after));
	ctl0("POST", "/_emulator/faults", f);
}

static char *
write_file(const char *name, const char *text, mode_t mode)
{
	char *path;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);

	assert_non_null(f);
	fread(buf, 1, 65535, f);
	fclose(f);
	return buf;
}

/* A system section from "key=value" strings, lines numbered from 2. */
static void
make_cfg(struct system_config *c, const char *const *kv, size_t n)
{
	size_t i;

	memset(c, 0, sizeof(*c));
	c->name = strdup("cloud");
	c->kind = strdup("entra");
	c->file = "quell.conf";
	c->line = 1;
	c->kv = calloc(n, sizeof(*c->kv));
	c->nkv = n;
	for (i = 0; i < n; i++) {
		const char *eq = strchr(kv[i], '=');

		c->kv[i].key = strndup(kv[i], (size_t)(eq - kv[i]));
		c->kv[i].value = strdup(eq + 1);
		c->kv[i].line = (int)i + 2;
	}
}

static void
free_cfg(struct system_config *c)
{
	size_t i;

	for (i = 0; i < c->nkv; i++) {
		free(c->kv[i].key);
		free(c->kv[i].value);
	}
	free(c->kv);
	free(c->name);
	free(c->kind);
}

static int
open_entra(const char *tenant, const char *extra1, const char *extra2, struct provider **p,
    struct qerr *e)
{
	char t[128], login[128], graph[128], sec[256];
	const char *kv[7];
	struct system_config c;
	size_t n = 0;
	int r;

	snprintf(t, sizeof(t), "tenant=%s", tenant);
	snprintf(login, sizeof(login), "login_base=http://127.0.0.1:%d", login_port);
	/* Prism serves the spec's paths at its root and adds /v1.0 upstream. */
	snprintf(graph, sizeof(graph), "graph_base=http://127.0.0.1:%d", graph_port);
	snprintf(sec, sizeof(sec), "client_secret_file=%s/secret", dir);
	kv[n++] = "kind=entra";
	kv[n++] = t;
	kv[n++] = "client_id=" CLIENT;
	kv[n++] = login;
	kv[n++] = graph;
	if (extra1 == NULL || (strncmp(extra1, "certificate_file", 16) != 0 &&
	    strncmp(extra1, "client_secret_file", 18) != 0))
		kv[n++] = sec;
	if (extra1 != NULL)
		kv[n++] = extra1;
	if (extra2 != NULL)
		kv[n++] = extra2;
	make_cfg(&c, kv, n);
	r = provider_entra.open(&c, p, e);
	free_cfg(&c);
	return r;
}

static void
step_init(struct step *s, enum action_type t, const char *ref, const char *params)
{
	memset(s, 0, sizeof(*s));
	s->type = t;
	s->account_ref = (char *)ref;
	s->params = (char *)(params != NULL ? params : "{}");
}

static struct step_result
run(struct provider *p, enum action_type t, const char *ref, const char *params)
{
	struct step s;
	struct step_result res;

	step_init(&s, t, ref, params);
	assert_int_equal(provider_entra.execute(p, &s, &res), 0);
	return res;
}

static pid_t
start_proxy(const char *spec, const char *upstream, int port, const char *log)
{
	char ports[16], line[512];
	char *argv[] = { PRISM, "proxy", "--errors", (char *)spec, (char *)upstream, "-h",
	    "127.0.0.1", "-p", ports, NULL };
	pid_t pid;
	int fd;

	snprintf(ports, sizeof(ports), "%d", port);
	if ((pid = spawn(argv, &fd)) < 0 || wait_line(fd, "listening on", line,
	    sizeof(line), log) != 0) {
		fprintf(stderr, "Prism (%s) did not start for %s\n", PRISM, spec);
		return -1;
	}
	return pid;
}

/* The emulator README's recipe: one Prism per contract, the emulator told their URLs. */
static int
start_prism(void)
{
	char up[64], gurl[64], lurl[64];

	graph_port = free_port();
	snprintf(up, sizeof(up), "http://127.0.0.1:%d/v1.0", emu_port);
	snprintf(graph_log, sizeof(graph_log), "%s/prism-graph.log", dir);
	if ((prism_pid = start_proxy(GRAPH_SPEC, up, graph_port, graph_log)) < 0)
		return -1;
	login_port = free_port();
	snprintf(up, sizeof(up), "http://127.0.0.1:%d", emu_port);
	snprintf(login_log, sizeof(login_log), "%s/prism-login.log", dir);
	if ((login_pid = start_proxy(TOKEN_SPEC, up, login_port, login_log)) < 0)
		return -1;
	snprintf(gurl, sizeof(gurl), "http://127.0.0.1:%d", graph_port);
	snprintf(lurl, sizeof(lurl), "http://127.0.0.1:%d", login_port);
	ctl0("PUT", "/_emulator/config", json_pack("{s:s, s:s}", "graph_base_url", gurl,
	    "login_base_url", lurl));
	return 0;
}

static int
setup(void **state)
{
	char line[256], port[] = "0";
	char *argv[] = { "node", GRAPH_EMULATOR, "--port", port, NULL };
	struct qerr e = { 0 };
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(http_client_new(NULL, &ctl_http, &e), 0);
	emu_pid = spawn(argv, &fd);
	assert_true(emu_pid > 0);
	assert_int_equal(wait_line(fd, "listening on ", line, sizeof(line), NULL), 0);
	emu_port = atoi(strstr(line, "listening on ") + 13);
	if (start_prism() != 0)
		fail_msg("Prism did not start: the contract check cannot run");
	free(write_file("secret", SECRET "\n", 0600));
	ctl0("POST", "/_emulator/apps", json_pack("{s:s, s:s, s:s}", "tenant", TENANT,
	    "client_id", CLIENT, "secret", SECRET));
	ctl0("POST", "/_emulator/users", json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:b}, "
	    "{s:s, s:b, s:s}]}", "tenant", TENANT, "users",
	    "id", U_PLAIN, "displayName", "Plain User",
	    "id", U_PRIV, "privileged", 1,
	    "id", U_SYNCED, "onPremisesSyncEnabled", 1, "onPremisesSecurityIdentifier",
	    "S-1-5-21-1-2-3-1105"));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[64];

	(void)state;
	if (login_pid > 0) {
		kill(-login_pid, SIGTERM);
		waitpid(login_pid, NULL, 0);
	}
	if (prism_pid > 0) {
		kill(-prism_pid, SIGTERM);
		waitpid(prism_pid, NULL, 0);
	}
	if (emu_pid > 0) {
		kill(-emu_pid, SIGTERM);
		waitpid(emu_pid, NULL, 0);
	}
	http_client_free(ctl_http);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_config(void **state)
{
	struct provider *p = NULL;
	struct qerr e = { 0 };
	char *open_secret;

	(void)state;
	assert_int_equal(open_entra(TENANT, "colour=blue", NULL, &p, &e), QERR_CONFIG);
	assert_string_equal(e.msg, "quell.conf:8: unknown key \"colour\" for an entra system");
	assert_int_equal(open_entra("not a tenant", NULL, NULL, &p, &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "quell.conf:3: tenant"));
	open_secret = write_file("open-secret", SECRET, 0644);
	chmod(open_secret, 0644);
	{
		char kv[300];

		snprintf(kv, sizeof(kv), "client_secret_file=%s", open_secret);
		assert_int_equal(open_entra(TENANT, kv, NULL, &p, &e), QERR_CONFIG);
		assert_non_null(strstr(e.msg, "quell.conf:7: client_secret_file"));
		assert_non_null(strstr(e.msg, "readable by everyone"));
	}
	free(open_secret);
	assert_int_equal(open_entra(TENANT, "batch_size=0", NULL, &p, &e), QERR_CONFIG);
	assert_int_equal(open_entra(TENANT, "ip_rps=fast", NULL, &p, &e), QERR_CONFIG);
	assert_null(p);
}

static void
test_actions(void **state)
{
	struct provider *p;
	struct step_result r;
	struct qerr e = { 0 };
	json_t *u;

	(void)state;
	assert_int_equal(open_entra(TENANT, NULL, NULL, &p, &e), 0);
	r = run(p, ACTION_DISABLE, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(r.state, "disabled");
	assert_int_equal(strlen(r.request_id), 36);
	assert_null(strstr(r.message, "synced"));
	u = emu_user(U_PLAIN);
	assert_true(json_is_false(json_object_get(u, "accountEnabled")));
	json_decref(u);
	r = run(p, ACTION_ENABLE, U_PLAIN, "{\"synced\":true}");
	assert_int_equal(r.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_non_null(strstr(r.message, "synced from on-premises AD"));
	u = emu_user(U_PLAIN);
	assert_true(json_is_true(json_object_get(u, "accountEnabled")));
	json_decref(u);
	r = run(p, ACTION_REVOKE_SESSIONS, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_SUCCEEDED);
	u = emu_user(U_PLAIN);
	assert_int_equal(json_integer_value(json_object_get(u, "revocations")), 1);
	json_decref(u);
	r = run(p, ACTION_MARK_COMPROMISED, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_SUCCEEDED);
	u = emu_user(U_PLAIN);
	assert_string_equal(json_string_value(json_object_get(u, "riskState")),
	    "confirmedCompromised");
	json_decref(u);
	assert_false(provider_entra.supports(p, ACTION_FORCE_PASSWORD_CHANGE));
	provider_entra.close(p);
}

static void
test_errors(void **state)
{
	struct provider *p;
	struct step_result r;
	struct qerr e = { 0 };
	char re[128];

	(void)state;
	assert_int_equal(open_entra(TENANT, "timeout=1", NULL, &p, &e), 0);
	r = run(p, ACTION_DISABLE, U_MISSING, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_PERMANENT);
	assert_string_equal(r.error_code, "Request_ResourceNotFound");
	assert_non_null(strstr(r.message, "account not found in Entra ID"));
	r = run(p, ACTION_DISABLE, U_PRIV, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_PERMANENT);
	assert_string_equal(r.error_code, "Authorization_RequestDenied");
	assert_non_null(strstr(r.message, "refused by Entra ID: the target holds a "
	    "privileged role"));
	r = run(p, ACTION_REVOKE_SESSIONS, U_PRIV, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_PERMANENT);
	/* A synced user's sign-in can be blocked in the cloud, with the warning that the
	 * next directory sync may undo it (the engine flags such accounts). */
	r = run(p, ACTION_DISABLE, U_SYNCED, "{\"synced\":true}");
	assert_int_equal(r.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_non_null(strstr(r.message, "next directory sync may undo"));
	snprintf(re, sizeof(re), "/users/%s$", U_PLAIN);
	fault("PATCH", re, 429, 2, 0);
	r = run(p, ACTION_DISABLE, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_TRANSIENT);
	assert_int_equal(r.retry_after_ms, 2000);
	assert_string_equal(r.error_code, "TooManyRequests");
	/* No Retry-After: the first retry backs off by 0.5 to 1 s (kit_backoff_ms). */
	fault("PATCH", re, 429, -1, 0);
	r = run(p, ACTION_DISABLE, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_TRANSIENT);
	assert_in_range(r.retry_after_ms, 500, 1000);
	fault("PATCH", re, 503, -1, 0);
	r = run(p, ACTION_DISABLE, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_TRANSIENT);
	fault("POST", "confirmCompromised$", 429, -1, 0);
	r = run(p, ACTION_MARK_COMPROMISED, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_TRANSIENT);
	assert_int_equal(r.retry_after_ms, 1000);
	/* Slow but inside the 1 s timeout, then slower than it. */
	fault("PATCH", re, 0, -1, 300);
	r = run(p, ACTION_DISABLE, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_SUCCEEDED);
	fault("PATCH", re, 0, -1, 2500);
	r = run(p, ACTION_DISABLE, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_TRANSIENT);
	assert_non_null(strstr(r.message, "timed out"));
	ctl0("DELETE", "/_emulator/faults", NULL);
	provider_entra.close(p);
}

static void *
expire_later(void *arg)
{
	(void)arg;
	usleep(1300 * 1000);
	ctl0("POST", "/_emulator/tokens/expire", NULL);
	return NULL;
}

static void
test_batch(void **state)
{
	const char *key = "POST /v1.0/identityProtection/riskyUsers/confirmCompromised";
	static char ids[N_MARK][37];
	struct step steps[N_MARK];
	const struct step *sp[N_MARK];
	struct step_result res[N_MARK];
	struct provider *p;
	struct qerr e = { 0 };
	json_t *users = json_array();
	pthread_t th;
	long calls, refused, tokens;
	size_t i, done = 0;

	(void)state;
	for (i = 0; i < N_MARK; i++) {
		snprintf(ids[i], sizeof(ids[i]), "aaaaaaaa-0000-4000-8000-%012zu", i);
		json_array_append_new(users, json_pack("{s:s}", "id", ids[i]));
		step_init(&steps[i], ACTION_MARK_COMPROMISED, ids[i], NULL);
		sp[i] = &steps[i];
	}
	ctl0("POST", "/_emulator/users", json_pack("{s:s, s:o}", "tenant", TENANT, "users",
	    users));
	assert_int_equal(open_entra(TENANT, NULL, NULL, &p, &e), 0);
	assert_int_equal(provider_entra.batch_max(ACTION_MARK_COMPROMISED), 60);
	calls = stat_status(key, "204");
	refused = stat_status(key, "401");
	/* Fetch the token first so the expiry falls between two requests of the batch. */
	assert_int_equal(run(p, ACTION_ENABLE, U_PLAIN, NULL).outcome, STEP_OUTCOME_SUCCEEDED);
	tokens = token_ok();
	pthread_create(&th, NULL, expire_later, NULL);
	for (i = 0; i < N_MARK; i += 60) {
		size_t n = N_MARK - i < 60 ? N_MARK - i : 60;

		assert_int_equal(provider_entra.execute_batch(p, sp + i, n, res + i), 0);
	}
	pthread_join(th, NULL);
	for (i = 0; i < N_MARK; i++) {
		if (res[i].outcome != STEP_OUTCOME_SUCCEEDED)
			fprintf(stderr, "step %zu: %s\n", i, res[i].message);
		done += res[i].outcome == STEP_OUTCOME_SUCCEEDED;
	}
	assert_int_equal(done, N_MARK);
	/* ⌈N/60⌉ accepted requests, and the one the expired token spoilt, sent again. */
	assert_int_equal(stat_status(key, "204") - calls, (N_MARK + 59) / 60);
	assert_int_equal(stat_status(key, "401") - refused, 1);
	assert_int_equal(token_ok() - tokens, 1);
	provider_entra.close(p);
}

struct seen {
	char **ids;
	size_t n;
	size_t synced;
};

static int
on_account(const struct account *a, void *arg)
{
	struct seen *s = arg;

	assert_string_equal(a->kind, "entra");
	assert_non_null(a->upn);
	assert_string_equal(a->username, a->upn);
	s->ids[s->n++] = strdup(a->external_id);
	s->synced += a->synced;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_paging(void **state)
{
	const char *key = "GET /v1.0/users";
	struct seen s = { .ids = calloc(3000, sizeof(char *)) };
	struct provider *p;
	struct qerr e = { 0 };
	json_t *users = json_array();
	long before;
	size_t i;

	(void)state;
	for (i = 0; i < 2500; i++)
		json_array_append_new(users, json_pack("{s:s, s:b}", "displayName", "Paged",
		    "onPremisesSyncEnabled", i % 10 == 0));
	ctl0("POST", "/_emulator/apps", json_pack("{s:s, s:s, s:s}", "tenant", TENANT_BIG,
	    "client_id", CLIENT, "secret", SECRET));
	ctl0("POST", "/_emulator/users", json_pack("{s:s, s:o}", "tenant", TENANT_BIG,
	    "users", users));
	assert_int_equal(open_entra(TENANT_BIG, NULL, NULL, &p, &e), 0);
	before = stat_count(key);
	assert_int_equal(provider_entra.list_accounts(p, on_account, &s, &e), 0);
	assert_int_equal(stat_count(key) - before, 3);
	assert_int_equal(s.n, 2500);
	assert_int_equal(s.synced, 250);
	qsort(s.ids, s.n, sizeof(char *), cmp_str);
	for (i = 1; i < s.n; i++)
		assert_string_not_equal(s.ids[i - 1], s.ids[i]);
	for (i = 0; i < s.n; i++)
		free(s.ids[i]);
	free(s.ids);
	provider_entra.close(p);
}

static void
test_certificate(void **state)
{
	char cmd[512], ckv[300], kkv[300], *cert;
	struct provider *p;
	struct qerr e = { 0 };
	struct step_result r;
	long tokens;

	(void)state;
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 -nodes -keyout "
	    "%s/app.key -out %s/app.crt -days 1 -subj /CN=quell-test 2>/dev/null && "
	    "chmod 600 %s/app.key", dir, dir, dir);
	if (system(cmd) != 0)
		skip();
	snprintf(ckv, sizeof(ckv), "certificate_file=%s/app.crt", dir);
	snprintf(kkv, sizeof(kkv), "private_key_file=%s/app.key", dir);
	snprintf(cmd, sizeof(cmd), "%s/app.crt", dir);
	cert = slurp(cmd);
	ctl0("POST", "/_emulator/apps", json_pack("{s:s, s:s, s:s, s:i, s:b}", "tenant",
	    "certs.onmicrosoft.com", "client_id", CLIENT, "cert_pem", cert,
	    "assertion_max_lifetime_s", 600, "reject_jti_replay", 1));
	free(cert);
	ctl0("POST", "/_emulator/users", json_pack("{s:s, s:[{s:s}]}", "tenant",
	    "certs.onmicrosoft.com", "users", "id", U_PLAIN));
	assert_int_equal(open_entra("certs.onmicrosoft.com", ckv, kkv, &p, &e), 0);
	tokens = token_ok();
	r = run(p, ACTION_DISABLE, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_SUCCEEDED);
	/* A second token needs a second assertion with a fresh jti. */
	ctl0("POST", "/_emulator/tokens/expire", NULL);
	r = run(p, ACTION_ENABLE, U_PLAIN, NULL);
	assert_int_equal(r.outcome, STEP_OUTCOME_SUCCEEDED);
	assert_int_equal(token_ok() - tokens, 2);
	provider_entra.close(p);
}

/* The whole of a file that may be growing (NUL-terminated; "" when it is missing). */
static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, cap = 65536, n;
	char *buf = malloc(cap);

	assert_non_null(buf);
	while (f != NULL && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 4096)
			assert_non_null(buf = realloc(buf, cap *= 2));
	}
	if (f != NULL)
		fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Whether a line of Prism's log says it refused a request or an answer broke the
 * contract. */
static bool
contract_problem(const char *ln)
{
	static const char *const bad[] = { "Violation", "\xe2\x9c\x96" /* ✖ */,
	    "UNPROCESSABLE", "VIOLATIONS" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strstr(ln, bad[i]) != NULL)
			return true;
	return false;
}

/* Whether Prism has logged how the marker request ended. */
static bool
marker_logged(const char *text, const char *mark)
{
	const char *ln, *end;

	for (ln = text; *ln != '\0'; ln = *end != '\0' ? end + 1 : end) {
		end = strchrnul(ln, '\n');
		if (memmem(ln, (size_t)(end - ln), mark, strlen(mark)) != NULL &&
		    memmem(ln, (size_t)(end - ln), "Request terminated", 18) != NULL)
			return true;
	}
	return false;
}

/*
 * Everything one Prism logged: a marker request (a path no spec has, so a 404) is
 * sent first and its end awaited in the log. Prism logs each request's outcome before
 * it takes the next, so every request answered before it has been logged in full.
 * The marker's own lines are not counted.
 */
static void
check_prism(const char *name, int port, const char *log)
{
	char url[128], mark[64], *text = NULL, *ln, *save, *bad;
	struct http_request rq = { .method = "GET", .url = url };
	struct http_response resp = { 0 };
	struct timespec pause = { 0, 20 * 1000000L };
	struct qerr e = { 0 };
	size_t nbad = 0, len = 0;
	int i;

	snprintf(mark, sizeof(mark), "get /_quell-log-mark-%ld ", (long)getpid());
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, mark + 4);
	url[strlen(url) - 1] = '\0';
	assert_int_equal(http_do(ctl_http, &rq, &resp, &e), 0);
	assert_int_equal(resp.status, 404);
	http_response_clear(&resp);
	/* 1500 rounds: only a bound against a hung Prism, nothing is timed */
	for (i = 0; i < 1500; i++) {
		free(text);
		text = read_all(log);
		if (marker_logged(text, mark))
			break;
		nanosleep(&pause, NULL);
	}
	if (!marker_logged(text, mark))	/* the log's end, which should have held it */
		fail_msg("prism %s never logged the end of %s: ...%s", name, mark,
		    text + (strlen(text) > 600 ? strlen(text) - 600 : 0));
	bad = calloc(1, strlen(text) + 1);
	for (ln = strtok_r(text, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save))
		if (strstr(ln, mark) == NULL && contract_problem(ln)) {
			nbad++;
			len += (size_t)sprintf(bad + len, "%s\n", ln);
		}
	if (nbad > 0)
		fail_msg("prism %s: %zu contract problem(s):\n%s", name, nbad, bad);
	free(bad);
	free(text);
}

/* Every request above went through Prism: none may have broken the contract. */
static void
test_contract(void **state)
{
	(void)state;
	check_prism("graph", graph_port, graph_log);
	check_prism("login", login_port, login_log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_actions),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_paging),
		cmocka_unit_test(test_certificate),
		cmocka_unit_test(test_contract),
	};

	if (system("command -v node >/dev/null 2>&1") != 0) {
		fprintf(stderr, "node missing: skipped\n");
		return 77;
	}
	if (access(PRISM, X_OK) != 0) {
		fprintf(stderr, "no Prism at %s (scripts/deps.sh --test installs it): the "
		    "contract check cannot run\n", PRISM);
		return 1;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
