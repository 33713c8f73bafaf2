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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cuts.h"
#include "providers/provider.h"

#ifndef OKTA_EMULATOR
#error "OKTA_EMULATOR must name tests/emulators/okta/server.js"
#endif

#define TOKEN	"00quell-fault-ssws-token-0123456789"
#define USERS	3

static pid_t emu = -1;
static char base[64], dir[] = "/tmp/quell-cuts-XXXXXX", *token_path;

/* One request to the emulator; its body (caller frees). */
static struct cuts_buf
call(const char *method, const char *path, const char *json, const char *auth)
{
	return cuts_call(base, method, path, json, NULL, auth);
}

static void
ctl(const char *method, const char *path, const char *json)
{
	cuts_ctl(base, method, path, json);
}

static int
setup(void **state)
{
	static const char *const args[] = { "--rate-limit", "100000000", NULL };

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	token_path = cuts_file(dir, "okta.token", TOKEN "\n");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	emu = cuts_spawn(OKTA_EMULATOR, args, base, sizeof(base));
	ctl("POST", "/_emulator/tokens", "{\"token\": \"" TOKEN "\"}");
	ctl("POST", "/_emulator/users", "{\"users\": [{\"login\": \"ann@quell.test\"}, "
	    "{\"login\": \"ben@quell.test\"}, {\"login\": \"cy@quell.test\"}]}");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	cuts_stop(emu);
	unlink(token_path);
	free(token_path);
	rmdir(dir);
	curl_global_cleanup();
	return 0;
}

static struct provider *
open_okta(void)
{
	char url[96], tok[160];
	const char *kv[] = { "kind=okta", url, "allow_plaintext=yes", tok, "timeout=5" };

	snprintf(url, sizeof(url), "org_url=%s", base);
	snprintf(tok, sizeof(tok), "api_token_file=%s", token_path);
	return cuts_open("okta", kv, 5);
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
		r = provider_list_accounts(provider_lookup("okta"), p, count, &n, &e);
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
	struct cuts_buf full = call("GET", "/api/v1/users", NULL, "Authorization: SSWS " TOKEN);
	struct qerr e = {0};
	int n = 0;

	(void)state;
	assert_int_equal(provider_list_accounts(provider_lookup("okta"), p, count, &n, &e), 0);
	assert_int_equal(n, USERS);
	sweep_page(p, "cut_at", full.n);
	sweep_page(p, "truncate_at", full.n);
	free(full.p);
	provider_close(provider_lookup("okta"), p);
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
	r = provider_list_accounts(provider_lookup("okta"), p, count, &n, &e);
	if (r == 0)
		assert_int_equal(n, USERS);
	else
		assert_true(e.msg[0] != '\0');
	print_message("a users page as text/html: %s\n", r == 0 ? "read" : e.msg);
	provider_close(provider_lookup("okta"), p);
}

/* The risk change's answer cut at every offset: never called succeeded unseen. */
static void
test_risk_answer(void **state)
{
	struct provider *p = open_okta();
	struct cuts_buf users = call("GET", "/api/v1/users", NULL, "Authorization: SSWS " TOKEN);
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
	assert_int_equal(provider_execute(provider_lookup("okta"), p, &s, &res), 0);
	if (res.outcome != STEP_OUTCOME_SUCCEEDED)
		fail_msg("the risk change without a fault: %s", res.message);
	for (k = 0; k < 40; k++) {
		mangle_next("/risk$", "PUT", "cut_at", k);
		memset(&res, 0, sizeof(res));
		assert_int_equal(provider_execute(provider_lookup("okta"), p, &s, &res), 0);
		if (res.outcome == STEP_OUTCOME_SUCCEEDED)
			fail_msg("risk answer cut at %ld: called succeeded (%s)", k, res.message);
		assert_true(res.message[0] != '\0');
	}
	free(users.p);
	provider_close(provider_lookup("okta"), p);
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
