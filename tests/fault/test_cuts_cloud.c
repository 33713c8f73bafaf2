/*
 * The Entra ID and SCIM providers against answers their emulators mangle (fault
 * cut_at / truncate_at / content_type, tests/emulators/graph/lib/cut.js): a users page
 * cut at every offset fails the listing with a message, never lists fewer accounts as
 * if that were all; a step's answer (and for SCIM the read before the write) cut at
 * every offset ends as an error with a message, or as a success the emulator's state
 * bears out, and a failed step leaves nothing half done: the next try, unmangled,
 * completes it. Offsets go by a stride of 4; QUELL_CUTS_FULL=1 tries every byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/clock.h"
#include "cuts.h"
#include "providers/provider.h"

#if !defined(GRAPH_EMULATOR) || !defined(SCIM_EMULATOR)
#error "GRAPH_EMULATOR and SCIM_EMULATOR must name the emulators' server.js"
#endif

#define USERS		3
#define STRIDE		4
#define STEP_MAX	400	/* past the length of any step's answer here */
#define TENANT		"contoso.onmicrosoft.com"
#define CLIENT		"11111111-2222-3333-4444-555555555555"
#define SECRET		"cuts-secret"
#define SCIM_TOKEN	"scim-cuts-token"

static pid_t graph_pid = -1, scim_pid = -1;
static char graph[64], scim[64], dir[] = "/tmp/quell-cuts-XXXXXX";
static char *secret_path, *token_path;
static char scim_ids[USERS][64];
static const char *const entra_ids[USERS] = { "aaaaaaaa-0000-0000-0000-000000000001",
	"aaaaaaaa-0000-0000-0000-000000000002", "aaaaaaaa-0000-0000-0000-000000000003" };

/*
 * A listing waits out transient failures (seconds, growing) before it gives up, and
 * here every try is cut: no time passes in those waits (meson.build links this
 * definition before core's, --allow-multiple-definition).
 */
void
clock_sleep_ms(int64_t ms)
{
	(void)ms;
}

/* One member of a control answer, as JSON (caller decrefs). */
static json_t *
ctl_get(const char *base, const char *path, const char *member)
{
	struct cuts_buf b = cuts_call(base, "GET", path, NULL, NULL, NULL);
	json_t *root = json_loads(b.p, 0, NULL), *v;

	free(b.p);
	if (root == NULL || (v = json_object_get(root, member)) == NULL)
		fail_msg("GET %s: no %s", path, member);
	json_incref(v);
	json_decref(root);
	return v;
}

static void
scim_seed(void)
{
	struct cuts_buf b;
	json_t *root, *ids;
	size_t i;

	cuts_ctl(scim, "POST", "/_emulator/tokens", "{\"token\": \"" SCIM_TOKEN "\"}");
	b = cuts_call(scim, "POST", "/_emulator/users", "{\"users\": [{\"userName\": "
	    "\"ann@scim.test\"}, {\"userName\": \"ben@scim.test\"}, {\"userName\": "
	    "\"cy@scim.test\"}]}", NULL, NULL);
	assert_non_null(root = json_loads(b.p, 0, NULL));
	ids = json_object_get(root, "ids");
	assert_int_equal(json_array_size(ids), USERS);
	for (i = 0; i < USERS; i++)
		snprintf(scim_ids[i], sizeof(scim_ids[i]), "%s",
		    json_string_value(json_array_get(ids, i)));
	json_decref(root);
	free(b.p);
}

static int
setup(void **state)
{
	static const char *const graph_args[] = { "--ip-rps", "100000", "--write-budget",
		"100000000", NULL };
	char users[512];

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	secret_path = cuts_file(dir, "entra.secret", SECRET "\n");
	token_path = cuts_file(dir, "scim.token", SCIM_TOKEN "\n");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	graph_pid = cuts_spawn(GRAPH_EMULATOR, graph_args, graph, sizeof(graph));
	scim_pid = cuts_spawn(SCIM_EMULATOR, NULL, scim, sizeof(scim));
	cuts_ctl(graph, "POST", "/_emulator/apps", "{\"tenant\": \"" TENANT "\", "
	    "\"client_id\": \"" CLIENT "\", \"secret\": \"" SECRET "\"}");
	snprintf(users, sizeof(users), "{\"tenant\": \"" TENANT "\", \"users\": [{\"id\": "
	    "\"%s\"}, {\"id\": \"%s\"}, {\"id\": \"%s\"}]}", entra_ids[0], entra_ids[1],
	    entra_ids[2]);
	cuts_ctl(graph, "POST", "/_emulator/users", users);
	scim_seed();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	cuts_stop(graph_pid);
	cuts_stop(scim_pid);
	unlink(secret_path);
	unlink(token_path);
	free(secret_path);
	free(token_path);
	rmdir(dir);
	curl_global_cleanup();
	return 0;
}

static struct provider *
open_entra(void)
{
	char login[96], graph_base[112], sec[160];
	const char *kv[] = { "kind=entra", "tenant=" TENANT, "client_id=" CLIENT, login,
		graph_base, sec, "timeout=5", "ip_rps=1000" };

	snprintf(login, sizeof(login), "login_base=%s", graph);
	snprintf(graph_base, sizeof(graph_base), "graph_base=%s/v1.0", graph);
	snprintf(sec, sizeof(sec), "client_secret_file=%s", secret_path);
	return cuts_open("entra", kv, sizeof(kv) / sizeof(kv[0]));
}

static struct provider *
open_scim(void)
{
	char url[96], tok[160];
	const char *kv[] = { "kind=scim", url, "allow_plaintext=yes", tok, "timeout=5" };

	snprintf(url, sizeof(url), "url=%s/scim/v2", scim);
	snprintf(tok, sizeof(tok), "token_file=%s", token_path);
	return cuts_open("scim", kv, sizeof(kv) / sizeof(kv[0]));
}

static int
count(const struct account *a, void *arg)
{
	(void)a;
	(*(int *)arg)++;
	return 0;
}

/* Every users page is mangled by member ("cut_at": 5, a JSON member) until
 * unmangle: the listing's own retries see it too. */
typedef void (*mangle_fn)(const char *member);

static void
graph_users_page(const char *member)
{
	char f[192];

	snprintf(f, sizeof(f), "{\"path_regex\": \"^/v1\\\\.0/users(\\\\?|$)\", \"method\": "
	    "\"GET\", \"count\": 1000, %s}", member);
	cuts_ctl(graph, "POST", "/_emulator/faults", f);
}

static void
scim_users_page(const char *member)
{
	char f[160];

	snprintf(f, sizeof(f), "{\"method\": \"GET\", \"route\": \"GET /Users\", "
	    "\"times\": 1000, %s}", member);
	cuts_ctl(scim, "POST", "/_emulator/faults", f);
}

static void
unmangle(const char *kind)
{
	cuts_ctl(strcmp(kind, "scim") == 0 ? scim : graph, "DELETE", "/_emulator/faults", NULL);
}

/*
 * The page cut at 0, stride, 2 stride, … : each listing fails with a message until
 * the first that succeeds, which lists every account (the offset reached the page's
 * length). Returns that offset.
 */
static long
sweep_page(const char *kind, struct provider *p, mangle_fn mangle, const char *what)
{
	const struct provider_ops *ops = provider_lookup(kind);
	long k, stride = (long)cuts_stride(STRIDE);
	char member[64];
	struct qerr e;
	int n, r;

	for (k = 0; k < (1L << 20); k += stride) {
		snprintf(member, sizeof(member), "\"%s\": %ld", what, k);
		mangle(member);
		memset(&e, 0, sizeof(e));
		n = 0;
		r = provider_list_accounts(ops, p, count, &n, &e);
		unmangle(kind);
		if (r == 0)
			break;
		if (e.msg[0] == '\0')
			fail_msg("%s page, %s %ld: failed (%d) without a message", kind, what, k, r);
	}
	if (k == 0 || n != USERS)
		fail_msg("%s page, %s %ld: the listing succeeded with %d of %d accounts", kind,
		    what, k, n, USERS);
	print_message("%s users page, %s: refused at every offset below %ld\n", kind, what, k);
	return k;
}

/* A whole page under another type is refused with a message or read in full. */
static void
retyped_page(const char *kind, struct provider *p, mangle_fn mangle)
{
	struct qerr e = { 0 };
	int n = 0, r;

	mangle("\"content_type\": \"text/html\"");
	r = provider_list_accounts(provider_lookup(kind), p, count, &n, &e);
	unmangle(kind);
	if (r == 0)
		assert_int_equal(n, USERS);
	else
		assert_true(e.msg[0] != '\0');
	print_message("%s users page as text/html: %s\n", kind, r == 0 ? "read" : e.msg);
}

static void
test_entra_users_page(void **state)
{
	struct provider *p = open_entra();

	(void)state;
	assert_true(sweep_page("entra", p, graph_users_page, "cut_at") > 0);
	assert_true(sweep_page("entra", p, graph_users_page, "truncate_at") > 0);
	retyped_page("entra", p, graph_users_page);
	provider_close(provider_lookup("entra"), p);
}

static void
test_scim_users_page(void **state)
{
	struct provider *p = open_scim();

	(void)state;
	assert_true(sweep_page("scim", p, scim_users_page, "cut_at") > 0);
	assert_true(sweep_page("scim", p, scim_users_page, "truncate_at") > 0);
	retyped_page("scim", p, scim_users_page);
	provider_close(provider_lookup("scim"), p);
}

static long
revocations(const char *id)
{
	char path[160];
	json_t *v;
	long n;

	snprintf(path, sizeof(path), "/_emulator/users/%s?tenant=" TENANT, id);
	v = ctl_get(graph, path, "revocations");
	n = (long)json_integer_value(v);
	json_decref(v);
	return n;
}

/* Revoking sessions, its answer mangled at every offset: a success is one the
 * emulator counted; a failure says why. */
static void
test_entra_revoke_answer(void **state)
{
	static const char *const whats[] = { "cut_at", "truncate_at" };
	struct provider *p = open_entra();
	struct step s = { .type = ACTION_REVOKE_SESSIONS, .account_ref = (char *)entra_ids[0],
		.params = (char *)"{}" };
	struct step_result res;
	long k, before, stride = (long)cuts_stride(STRIDE);
	char f[192];
	size_t w;
	int failed;

	(void)state;
	for (w = 0; w < 2; w++) {
		failed = 0;
		for (k = 0; k < STEP_MAX; k += stride) {
			snprintf(f, sizeof(f), "{\"path_regex\": \"revokeSignInSessions$\", "
			    "\"method\": \"POST\", \"%s\": %ld}", whats[w], k);
			cuts_ctl(graph, "POST", "/_emulator/faults", f);
			before = revocations(entra_ids[0]);
			memset(&res, 0, sizeof(res));
			assert_int_equal(provider_execute(provider_lookup("entra"), p, &s, &res), 0);
			assert_true(res.message[0] != '\0');
			if (res.outcome == STEP_OUTCOME_SUCCEEDED) {
				if (revocations(entra_ids[0]) != before + 1)
					fail_msg("revoke, %s %ld: called succeeded, not done (%s)",
					    whats[w], k, res.message);
			} else
				failed++;
		}
		print_message("entra revoke answer, %s: %d of %ld offsets failed, each with "
		    "a message\n", whats[w], failed, (STEP_MAX + stride - 1) / stride);
		assert_true(w == 1 || failed > 0);
	}
	provider_close(provider_lookup("entra"), p);
}

static bool
scim_active(const char *id)
{
	char path[128];
	json_t *v;
	bool on;

	snprintf(path, sizeof(path), "/_emulator/users/%s", id);
	v = ctl_get(scim, path, "active");
	on = json_is_true(v);
	json_decref(v);
	return on;
}

/*
 * A disable, one of its answers (the read, then the write) mangled at every offset:
 * a success leaves the user inactive; a failure says why, and the next try unmangled
 * completes the disable. The user is made active again before each.
 */
static void
sweep_disable(struct provider *p, const char *route, const char *what, bool fails)
{
	const struct provider_ops *ops = provider_lookup("scim");
	struct step s = { .type = ACTION_DISABLE, .account_ref = scim_ids[1],
		.params = (char *)"{}" };
	struct step_result res;
	long k, stride = (long)cuts_stride(STRIDE);
	char f[160], path[128];
	int failed = 0;

	snprintf(path, sizeof(path), "/_emulator/users/%s", scim_ids[1]);
	for (k = 0; k < STEP_MAX; k += stride) {
		cuts_ctl(scim, "PATCH", path, "{\"active\": true}");
		snprintf(f, sizeof(f), "{\"route\": \"%s\", \"%s\": %ld}", route, what, k);
		cuts_ctl(scim, "POST", "/_emulator/faults", f);
		memset(&res, 0, sizeof(res));
		assert_int_equal(provider_execute(ops, p, &s, &res), 0);
		assert_true(res.message[0] != '\0');
		if (res.outcome != STEP_OUTCOME_SUCCEEDED) {
			failed++;
			memset(&res, 0, sizeof(res));
			assert_int_equal(provider_execute(ops, p, &s, &res), 0);
			if (res.outcome != STEP_OUTCOME_SUCCEEDED)
				fail_msg("disable, %s %s %ld: the retry failed: %s", route, what,
				    k, res.message);
		}
		if (scim_active(scim_ids[1]))
			fail_msg("disable, %s %s %ld: called succeeded, the user is active (%s)",
			    route, what, k, res.message);
	}
	print_message("scim disable, %s %s: %d of %ld offsets failed and were retried\n",
	    route, what, failed, (STEP_MAX + stride - 1) / stride);
	if (fails)
		assert_true(failed > 0);
}

static void
test_scim_disable_answers(void **state)
{
	struct provider *p = open_scim();

	(void)state;
	sweep_disable(p, "GET /Users/{id}", "cut_at", true);
	sweep_disable(p, "GET /Users/{id}", "truncate_at", true);
	sweep_disable(p, "PATCH /Users/{id}", "cut_at", true);
	/* A short but whole 200 is the server's word that it wrote: a success is right. */
	sweep_disable(p, "PATCH /Users/{id}", "truncate_at", false);
	provider_close(provider_lookup("scim"), p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entra_users_page),
		cmocka_unit_test(test_scim_users_page),
		cmocka_unit_test(test_entra_revoke_answer),
		cmocka_unit_test(test_scim_disable_answers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
