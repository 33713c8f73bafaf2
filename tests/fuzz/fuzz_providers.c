/*
 * What Microsoft Graph, Okta and a SCIM server answer, as the providers parse it:
 * status, headers (Retry-After, Link, rate limits) and body of one answer from a
 * server in the harness, to a listing, a listing of changes or a step. The first byte
 * picks the provider and the call, the second the status, then header lines up to an
 * empty line, then the body. Accounts handed on have an external id; a step's result
 * is one of the outcomes with its retry wait within the cap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "fake_http.h"
#include "fuzz.h"
#include "providers/kit.h"

#define TENANT "11111111-2222-3333-4444-555555555555"

static const char *const kinds[] = { "entra", "okta", "scim" };
static const char *const refs[] = { "66666666-7777-8888-9999-000000000000",
	"00u1abcdEFGH2345ijkl", "2819c223-7f76-453a-919d-413861904646" };
static const char *const token_paths[] = { "/" TENANT "/oauth2", NULL, NULL };
static const unsigned statuses[] = { 200, 200, 200, 201, 204, 400, 401, 403, 404, 409,
	429, 500, 503 };
static const enum action_type types[] = { ACTION_DISABLE, ACTION_ENABLE,
	ACTION_REVOKE_SESSIONS, ACTION_FORCE_PASSWORD_CHANGE, ACTION_SET_RISK,
	ACTION_DEACTIVATE, ACTION_MARK_COMPROMISED };

static struct config cfg;
static char secret_path[] = "/tmp/quell-fuzz-secret.XXXXXX";

int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * The providers wait out a listing's transient failures: here no time passes, so an
 * input asking for waits runs as fast as any (the link takes this definition before
 * core's, meson.build: --allow-multiple-definition).
 */
void
clock_sleep_ms(int64_t ms)
{
	(void)ms;
}

static void
cleanup(void)
{
	config_clear(&cfg);
	unlink(secret_path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char conf[2048];
	unsigned port = fake_http_start();
	struct qerr e;
	int fd;

	(void)argc, (void)argv;
	fuzz_check((fd = mkstemp(secret_path)) >= 0 && write(fd, "fuzz-secret\n", 12) == 12 &&
	    close(fd) == 0, "the secret file");
	snprintf(conf, sizeof(conf),
	    "[system \"entra\"]\nkind = entra\ntenant = " TENANT "\n"
	    "client_id = 66666666-7777-8888-9999-000000000000\n"
	    "login_base = http://127.0.0.1:%1$u\ngraph_base = http://127.0.0.1:%1$u\n"
	    "client_secret_file = %2$s\ntimeout = 5\n"
	    "[system \"okta\"]\nkind = okta\norg_url = http://127.0.0.1:%1$u\n"
	    "allow_plaintext = yes\napi_token_file = %2$s\ntimeout = 5\n"
	    "[system \"scim\"]\nkind = scim\nurl = http://127.0.0.1:%1$u/scim/v2\n"
	    "allow_plaintext = yes\ntoken_file = %2$s\ntimeout = 5\n", port, secret_path);
	fuzz_check(config_parse("fuzz.conf", conf, &cfg, &e) == 0, e.msg);
	atexit(cleanup);
	return 0;
}

static int
on_account(const struct account *a, void *arg)
{
	(void)arg;
	fuzz_check(a->external_id != NULL && a->external_id[0] != '\0',
	    "an account handed on has an external id");
	return 0;
}

static void
call(const struct provider_ops *ops, struct provider *p, size_t k, unsigned op)
{
	struct step s = { .account_ref = (char *)refs[k], .params = (char *)"{}" };
	struct step_result res;
	char *next = NULL;
	bool full = false;
	struct qerr e;

	qerr_clear(&e);
	memset(&res, 0, sizeof(res));
	switch (op % 3) {
	case 0:
		(void)provider_list_accounts(ops, p, on_account, NULL, &e);
		break;
	case 1:
		(void)provider_list_changes(ops, p, NULL, on_account, NULL, &next, &full, &e);
		free(next);
		break;
	default:
		s.type = types[(op / 3) % (sizeof(types) / sizeof(types[0]))];
		if (s.type == ACTION_SET_RISK)
			s.params = (char *)"{\"risk_level\":\"HIGH\"}";
		if (!provider_supports(ops, p, s.type) ||
		    provider_execute(ops, p, &s, &res) != 0)
			break;
		fuzz_check(res.outcome <= STEP_OUTCOME_PERMANENT &&
		    res.retry_after_ms >= 0 && res.retry_after_ms <= KIT_RETRY_AFTER_CAP_MS,
		    "a step's result is an outcome with a bounded wait");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct provider_ops *ops;
	struct provider *p = NULL;
	char *text, *body;
	size_t k, hlen;
	struct qerr e;

	if (size < 2 || (text = fuzz_text(data + 2, size - 2)) == NULL)
		return 0;
	k = data[0] % 3;
	/* Headers up to an empty line; a body may hold NUL bytes, so its length counts. */
	body = strstr(text, "\n\n");
	hlen = body != NULL ? (size_t)(body - text) : 0;
	if (body != NULL)
		*body = '\0';
	fake_http_answer(statuses[data[1] % (sizeof(statuses) / sizeof(statuses[0]))],
	    body != NULL ? text : NULL, (const char *)data + 2 + (body ? hlen + 2 : 0),
	    size - 2 - (body ? hlen + 2 : 0), token_paths[k]);
	ops = provider_lookup(kinds[k]);
	qerr_clear(&e);
	if (provider_open(ops, &cfg.systems[k], &p, &e) == 0) {
		call(ops, p, k, data[0] / 3);
		provider_close(ops, p);
	}
	free(text);
	return 0;
}
