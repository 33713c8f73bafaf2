/*
 * OpenID Connect as quelld meets it: bearer tokens any client sends (oidc_verify),
 * and the token endpoint's answer to the console's sign-in (oidc_redeem, from a
 * server in the harness), against a fixed JWK Set. The first byte chooses: a bearer
 * token as given; claims signed with the set's key as a bearer token; the token
 * endpoint's answer as given; or claims signed as the id token of an answer.
 * Whatever is accepted names its bearer with printable, bounded text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/oidc.h"
#include "core/jwt.h"
#include "fake_http.h"
#include "fuzz.h"
#include "keys.h"

#define HEADER "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":\"JWT\"}"

static struct oidc *oidc;
static struct config cfg;
static char jwks_path[] = "/tmp/quell-fuzz-jwks.XXXXXX";

int LLVMFuzzerInitialize(int *argc, char ***argv);

static void
cleanup(void)
{
	oidc_close(oidc);
	config_clear(&cfg);
	unlink(jwks_path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char conf[1024];
	struct qerr e;
	int fd;

	(void)argc, (void)argv;
	fuzz_check((fd = mkstemp(jwks_path)) >= 0 &&
	    write(fd, fuzz_jwks, strlen(fuzz_jwks)) == (ssize_t)strlen(fuzz_jwks) &&
	    close(fd) == 0, "the JWK Set file");
	snprintf(conf, sizeof(conf), "[oidc]\nissuer = https://issuer.test\n"
	    "audience = api://quell\njwks_file = %s\nallow_plaintext = yes\n"
	    "client_id = quell-console\n"
	    "authorization_endpoint = http://127.0.0.1:%u/authorize\n"
	    "token_endpoint = http://127.0.0.1:%u/token\n", jwks_path, fake_http_start(),
	    fake_http_start());
	fuzz_check(config_parse("fuzz.conf", conf, &cfg, &e) == 0 &&
	    oidc_open(&cfg, &oidc, &e) == 0, e.msg);
	atexit(cleanup);
	return 0;
}

static bool
text_ok(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || strlen(s) > 256)
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static void
check(int r, const struct oidc_claims *c, const struct qerr *e)
{
	size_t i;

	if (r != 0) {
		fuzz_check(c->subject == NULL && e->msg[0] != '\0', "a refusal says why");
		return;
	}
	fuzz_check(text_ok(c->subject) && text_ok(c->username), "a bearer is named by "
	    "printable, bounded text");
	for (i = 0; i < c->nroles; i++)
		fuzz_check(text_ok(c->roles[i]), "roles are printable, bounded text");
	for (i = 0; i < c->nwids; i++)
		fuzz_check(text_ok(c->wids[i]), "wids are printable, bounded text");
}

static char *
signed_token(const char *claims)
{
	char *token = NULL;
	struct qerr e;

	return jwt_sign("ES256", fuzz_ec_key, HEADER, claims, &token, &e) == 0 ? token :
	    NULL;
}

static void
redeem(const char *body, size_t len)
{
	struct oidc_claims c;
	struct qerr e;

	qerr_clear(&e);
	fake_http_answer(200, NULL, body, len, NULL);
	check(oidc_redeem(oidc, "code", "verifier", "https://quell.test/cb", "n0", &c, &e),
	    &c, &e);
	oidc_claims_clear(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oidc_claims c;
	char *text, *token, *answer;
	struct qerr e;

	if (size < 1 || (text = fuzz_text(data + 1, size - 1)) == NULL)
		return 0;
	qerr_clear(&e);
	switch (data[0] % 4) {
	case 0:
	case 1:
		token = data[0] % 4 == 0 ? text : signed_token(text);
		if (token != NULL) {
			check(oidc_verify(oidc, token, &c, &e), &c, &e);
			oidc_claims_clear(&c);
		}
		if (token != text)
			free(token);
		break;
	case 2:
		redeem((const char *)data + 1, size - 1);
		break;
	default:
		if ((token = signed_token(text)) != NULL &&
		    (answer = malloc(strlen(token) + 32)) != NULL) {
			sprintf(answer, "{\"id_token\":\"%s\"}", token);
			redeem(answer, strlen(answer));
			free(answer);
		}
		free(token);
	}
	free(text);
	return 0;
}
