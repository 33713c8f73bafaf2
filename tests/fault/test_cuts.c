/*
 * The Okta provider against answers the emulator mangles (tests/emulators/okta, fault
 * cut_at / truncate_at / content_type): a users page cut at every byte offset, as a
 * transfer dropped mid-body and as a short but well-framed body, must fail the
 * listing with a message, and never list fewer accounts as if that were all (a sync
 * would then mark the rest removed); a risk change whose answer is cut must not be
 * called succeeded. The emulator is spawned directly: Prism would refuse the cut
 * answers itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "providers/provider.h"

#ifndef OKTA_EMULATOR
#error "OKTA_EMULATOR must name tests/emulators/okta/server.js"
#endif

#define TOKEN	"00quell-fault-ssws-token-0123456789"
#define USERS	3

extern const struct provider_ops provider_okta;

static pid_t emu = -1;
static char base[64], dir[] = "/tmp/quell-cuts-XXXXXX", token_path[128];

struct buf {
	char *p;
	size_t n;
};

static size_t
sink(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	char *p = realloc(b->p, b->n + size * nmemb + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->n, data, size * nmemb);
	b->p = p;
	b->n += size * nmemb;
	b->p[b->n] = '\0';
	return size * nmemb;
}

/* One request to the emulator; its body (caller frees) and size. */
static struct buf
call(const char *method, const char *path, const char *json, const char *auth)
{
	struct curl_slist *h = NULL;
	struct buf b = { NULL, 0 };
	char url[256];
	CURL *c = curl_easy_init();
	CURLcode rc;

	assert_non_null(c);
	snprintf(url, sizeof(url), "%s%s", base, path);
	h = curl_slist_append(h, "Content-Type: application/json");
	if (auth != NULL)
		h = curl_slist_append(h, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (json != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if ((rc = curl_easy_perform(c)) != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return b;
}

static void
ctl(const char *method, const char *path, const char *json)
{
	free(call(method, path, json, NULL).p);
}

/* Starts the emulator and waits for its "listening on PORT". */
static void
spawn(void)
{
	int fds[2], port = 0;
	FILE *in;

	assert_int_equal(pipe(fds), 0);
	if ((emu = fork()) == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execlp("node", "node", OKTA_EMULATOR, "--port", "0", "--rate-limit",
		    "100000000", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	assert_non_null(in = fdopen(fds[0], "r"));
	if (fscanf(in, "listening on %d", &port) != 1)
		fail_msg("the Okta emulator did not start");
	fclose(in);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
}

static int
setup(void **state)
{
	FILE *f;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(token_path, sizeof(token_path), "%s/okta.token", dir);
	if ((f = fopen(token_path, "w")) == NULL)
		return -1;
	fputs(TOKEN "\n", f);
	fclose(f);
	chmod(token_path, 0600);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	spawn();
	ctl("POST", "/_emulator/tokens", "{\"token\": \"" TOKEN "\"}");
	ctl("POST", "/_emulator/users", "{\"users\": [{\"login\": \"ann@quell.test\"}, "
	    "{\"login\": \"ben@quell.test\"}, {\"login\": \"cy@quell.test\"}]}");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (emu > 0) {
		kill(emu, SIGTERM);
		waitpid(emu, NULL, 0);
	}
	unlink(token_path);
	rmdir(dir);
	curl_global_cleanup();
	return 0;
}

static struct provider *
open_okta(void)
{
	char url[96], tok[160];
	struct config_kv kv[] = {
		{ .key = "kind", .value = "okta", .line = 2 },
		{ .key = "org_url", .value = url, .line = 3 },
		{ .key = "allow_plaintext", .value = "yes", .line = 4 },
		{ .key = "api_token_file", .value = tok, .line = 5 },
		{ .key = "timeout", .value = "5", .line = 6 },
	};
	struct system_config sc = { .name = "okta-cuts", .kind = "okta", .file = "test.conf",
		.line = 1, .max_concurrency = 1, .kv = kv, .nkv = 5 };
	struct provider *p = NULL;
	struct qerr e = {0};

	snprintf(url, sizeof(url), "%s", base);
	snprintf(tok, sizeof(tok), "%s", token_path);
	if (provider_okta.open(&sc, &p, &e) != 0)
		fail_msg("open: %s", e.msg);
	return p;
}

static int
count(const struct account *a, void *arg)
{
	(void)a;
	(*(int *)arg)++;
	return 0;
}

/* The next GET of the users page is mangled by what (a JSON member, e.g. cut_at). */
static void
mangle_next(const char *path_regex, const char *method, const char *what, long k)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"path_regex\": \"%s\", \"method\": \"%s\", "
	    "\"%s\": %ld}", path_regex, method, what, k);
	ctl("POST", "/_emulator/faults", body);
}

/* Every offset of the users page: the listing fails with a message, or (a body cut
 * where it still parses, which a JSON array cannot be) lists them all. */
static void
sweep_page(struct provider *p, const char *what, size_t len)
{
	struct qerr e;
	size_t k;
	int n, r;

	for (k = 0; k < len; k++) {
		mangle_next("^/api/v1/users$", "GET", what, (long)k);
		memset(&e, 0, sizeof(e));
		n = 0;
		r = provider_list_accounts(&provider_okta, p, count, &n, &e);
		if (r == 0)
			fail_msg("%s %zu of %zu: the listing succeeded with %d accounts", what,
			    k, len, n);
		if (e.msg[0] == '\0')
			fail_msg("%s %zu of %zu: failed (%d) without a message", what, k,
			    len, r);
	}
	print_message("users page, %s: %zu offsets, each refused\n", what, len);
}

static void
test_users_page(void **state)
{
	struct provider *p = open_okta();
	struct buf full = call("GET", "/api/v1/users", NULL, "Authorization: SSWS " TOKEN);
	struct qerr e = {0};
	int n = 0;

	(void)state;
	assert_int_equal(provider_list_accounts(&provider_okta, p, count, &n, &e), 0);
	assert_int_equal(n, USERS);
	sweep_page(p, "cut_at", full.n);
	sweep_page(p, "truncate_at", full.n);
	free(full.p);
	provider_okta.close(p);
}

/* A whole page under another content type is refused or read in full, never partly. */
static void
test_content_type(void **state)
{
	struct provider *p = open_okta();
	struct qerr e = {0};
	int n = 0, r;

	(void)state;
	ctl("POST", "/_emulator/faults", "{\"path_regex\": \"^/api/v1/users$\", "
	    "\"content_type\": \"text/html\"}");
	r = provider_list_accounts(&provider_okta, p, count, &n, &e);
	if (r == 0)
		assert_int_equal(n, USERS);
	else
		assert_true(e.msg[0] != '\0');
	print_message("a users page as text/html: %s\n", r == 0 ? "read" : e.msg);
	provider_okta.close(p);
}

/* The risk change's answer cut at every offset: never called succeeded unseen. */
static void
test_risk_answer(void **state)
{
	struct provider *p = open_okta();
	struct buf users = call("GET", "/api/v1/users", NULL, "Authorization: SSWS " TOKEN);
	char id[64] = "";
	const char *at = strstr(users.p, "\"id\":\"");
	struct step_result res;
	struct step s = { .type = ACTION_SET_RISK,
		.params = (char *)"{\"risk_level\":\"HIGH\"}" };
	long k;

	(void)state;
	assert_non_null(at);
	sscanf(at + 6, "%63[^\"]", id);
	s.account_ref = id;
	memset(&res, 0, sizeof(res));
	assert_int_equal(provider_execute(&provider_okta, p, &s, &res), 0);
	if (res.outcome != STEP_OUTCOME_SUCCEEDED)
		fail_msg("the risk change without a fault: %s", res.message);
	for (k = 0; k < 40; k++) {
		mangle_next("/risk$", "PUT", "cut_at", k);
		memset(&res, 0, sizeof(res));
		assert_int_equal(provider_execute(&provider_okta, p, &s, &res), 0);
		if (res.outcome == STEP_OUTCOME_SUCCEEDED)
			fail_msg("risk answer cut at %ld: called succeeded (%s)", k, res.message);
		assert_true(res.message[0] != '\0');
	}
	free(users.p);
	provider_okta.close(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_users_page),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_risk_answer),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
