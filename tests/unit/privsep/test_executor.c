/*
 * The executor's refusals, through its own dispatch over socketpairs: a LOAD of a bad
 * configuration answers "file:line: reason"; a good one its systems' capabilities;
 * then forged requests on a data channel (unknown system, an action the system does
 * not support, account references of the wrong shape, params that are no JSON
 * object, a reply sent as a request) each get an ERROR naming the field while the
 * channel goes on, and bytes that cannot be framed get an ERROR and the channel
 * closed. Nothing here reaches the network: every request is refused before.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "privsep/internal.h"

struct served {
	struct privsep_exec *x;
	int fd;
	bool control;
	pthread_t t;
};

static void *
serve(void *arg)
{
	struct served *s = arg;

	if (s->control)
		privsep_exec_control(s->x, s->fd);
	else
		privsep_exec_serve(s->x, s->fd);
	return NULL;
}

static int
start(struct privsep_exec *x, struct served *s, bool control)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s->x = x;
	s->fd = sv[1];
	s->control = control;
	assert_int_equal(pthread_create(&s->t, NULL, serve, s), 0);
	return sv[0];
}

static void
finish(int fd, struct served *s)
{
	close(fd);
	pthread_join(s->t, NULL);
	close(s->fd);
}

/* The executor's side gave up on its own: what the front then reads is the end. */
static void
ended(int fd, struct served *s, struct privsep_buf *in)
{
	struct privsep_msg m;
	struct qerr e;

	pthread_join(s->t, NULL);
	close(s->fd);
	assert_int_equal(privsep_recv(fd, in, &m, &e), QERR_IO);
	close(fd);
}

/* Sends b's message and reads the answer into *m (strings in in). */
static void
ask(int fd, struct privsep_buf *b, struct privsep_buf *in, struct privsep_msg *m)
{
	struct qerr e;

	assert_int_equal(privsep_send(fd, b, &e), 0);
	assert_int_equal(privsep_recv(fd, in, m, &e), 0);
}

static void
load(int ctl, const char *text, struct privsep_buf *in, struct privsep_msg *m)
{
	struct privsep_buf b = { 0 };
	struct qerr e;

	privsep_begin(&b, PRIVSEP_LOAD);
	privsep_put_str(&b, "test.conf");
	privsep_put_str(&b, text);
	assert_int_equal(privsep_finish(&b, &e), 0);
	ask(ctl, &b, in, m);
	privsep_buf_clear(&b);
}

static void
expect_error(const struct privsep_msg *m, int code, const char *field, const char *part)
{
	struct qerr e;

	assert_int_equal(m->type, PRIVSEP_ERROR);
	assert_int_equal(privsep_get_error(m, &e), code);
	if (field != NULL)
		assert_string_equal(e.field, field);
	if (strstr(e.msg, part) == NULL)
		fail_msg("'%s' does not say '%s'", e.msg, part);
}

static char token_path[64];
static char config[512];

static int
setup(void **state)
{
	int fd;

	(void)state;
	strcpy(token_path, "/tmp/privsep-test-XXXXXX");
	if ((fd = mkstemp(token_path)) < 0 || write(fd, "tok\n", 4) != 4)
		return -1;
	close(fd);
	snprintf(config, sizeof(config), "[store]\npath = /tmp/privsep-unused.db\n\n"
	    "[system \"hr\"]\nkind = scim\nurl = http://127.0.0.1:9/scim\n"
	    "allow_plaintext = yes\ntoken_file = %s\n", token_path);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(token_path);
	return 0;
}

static void
test_load(void **state)
{
	struct privsep_buf in = { 0 }, b = { 0 };
	struct privsep_exec x;
	struct privsep_msg m;
	struct served s;
	struct qerr e;
	int ctl;

	(void)state;
	privsep_exec_init(&x);
	ctl = start(&x, &s, true);
	load(ctl, "[system \"hr\"]\nkind = nosuch\n", &in, &m);
	expect_error(&m, QERR_CONFIG, "kind", "test.conf:1: unknown kind 'nosuch'");
	load(ctl, config, &in, &m);
	assert_int_equal(m.type, PRIVSEP_CAPS);
	assert_string_equal(m.f[PRIVSEP_CAPS_NAME].s, "hr");
	assert_string_equal(m.f[PRIVSEP_CAPS_KIND].s, "scim");
	assert_int_equal(m.f[PRIVSEP_CAPS_SUPPORTS].i, 1 << ACTION_DISABLE |
	    1 << ACTION_ENABLE | 1 << ACTION_DEACTIVATE);
	assert_int_equal(privsep_recv(ctl, &in, &m, &e), 0);
	assert_int_equal(m.type, PRIVSEP_END);
	/* Loaded is not in force: a SWAP puts it there. */
	assert_null(x.cur);
	privsep_begin(&b, PRIVSEP_SWAP);
	assert_int_equal(privsep_finish(&b, &e), 0);
	ask(ctl, &b, &in, &m);
	assert_int_equal(m.type, PRIVSEP_END);
	assert_non_null(x.cur);
	/* A data request on the control channel ends it. */
	privsep_begin(&b, PRIVSEP_STOP);
	assert_int_equal(privsep_finish(&b, &e), 0);
	assert_int_equal(privsep_send(ctl, &b, &e), 0);
	ended(ctl, &s, &in);
	privsep_buf_clear(&in);
	privsep_buf_clear(&b);
	privsep_exec_fini(&x);
}

static void
execute(int fd, const char *system, const struct step *st, struct privsep_buf *in,
    struct privsep_msg *m)
{
	struct privsep_buf b = { 0 };
	struct qerr e;

	assert_int_equal(privsep_put_execute(&b, system, st, &e), 0);
	ask(fd, &b, in, m);
	privsep_buf_clear(&b);
}

static void
test_forged_requests(void **state)
{
	struct privsep_buf in = { 0 }, b = { 0 };
	struct step st = { .id = "stp_1", .account_ref = "u-1", .type = ACTION_DISABLE };
	static const unsigned char junk[] = { 0x51, 0x01, 0, 5, 0, 0, 0, 0 };
	struct step_result res = { 0 };
	struct privsep_exec x;
	struct privsep_msg m;
	struct served sc, sd;
	struct qerr e;
	int ctl, fd;

	(void)state;
	privsep_exec_init(&x);
	ctl = start(&x, &sc, true);
	load(ctl, config, &in, &m);
	assert_int_equal(privsep_recv(ctl, &in, &m, &e), 0);
	privsep_begin(&b, PRIVSEP_SWAP);
	assert_int_equal(privsep_finish(&b, &e), 0);
	ask(ctl, &b, &in, &m);
	fd = start(&x, &sd, false);

	execute(fd, "nosuch", &st, &in, &m);
	expect_error(&m, QERR_NOT_FOUND, "system", "no system 'nosuch'");
	st.type = ACTION_SET_RISK;
	execute(fd, "hr", &st, &in, &m);
	expect_error(&m, QERR_UNSUPPORTED, "type", "set_risk is not supported");
	st.type = ACTION_DISABLE;
	st.account_ref = "../../Groups/admins";
	execute(fd, "hr", &st, &in, &m);
	expect_error(&m, QERR_INVALID, "account_ref", "one path segment");
	st.account_ref = "u-1";
	st.params = "[1]";
	execute(fd, "hr", &st, &in, &m);
	expect_error(&m, QERR_INVALID, "params", "not a JSON object");
	st.params = "{\"a\": 1, \"a\": 2}";
	execute(fd, "hr", &st, &in, &m);
	expect_error(&m, QERR_INVALID, "params", "not a JSON object");
	/* A reply sent as a request. */
	assert_int_equal(privsep_put_result(&b, &res, &e), 0);
	ask(fd, &b, &in, &m);
	expect_error(&m, QERR_INVALID, "type", "no request");
	/* A batch whose steps disagree with it, each refused alone. */
	privsep_begin(&b, PRIVSEP_BATCH);
	privsep_put_str(&b, "hr");
	privsep_put_int(&b, 2);
	assert_int_equal(privsep_finish(&b, &e), 0);
	st.params = NULL;
	st.account_ref = "a/b";
	assert_int_equal(privsep_put_execute(&b, "hr", &st, &e), 0);
	st.account_ref = "u-2";
	assert_int_equal(privsep_put_execute(&b, "other", &st, &e), 0);
	ask(fd, &b, &in, &m);
	expect_error(&m, QERR_INVALID, "account_ref", "one path segment");
	assert_int_equal(privsep_recv(fd, &in, &m, &e), 0);
	expect_error(&m, QERR_INVALID, "system", "one system");
	/* The channel still serves after every refusal above. */
	st.account_ref = "?";
	execute(fd, "hr", &st, &in, &m);
	expect_error(&m, QERR_INVALID, "account_ref", "one path segment");
	/* No [oidc] client_id here: a code to redeem is refused, the channel goes on. */
	privsep_begin(&b, PRIVSEP_REDEEM);
	privsep_put_str(&b, "code-1");
	privsep_put_str(&b, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
	privsep_put_str(&b, "https://quell.test/api/v1/session/oidc/callback");
	assert_int_equal(privsep_finish(&b, &e), 0);
	ask(fd, &b, &in, &m);
	expect_error(&m, QERR_UNSUPPORTED, "type", "no [oidc] client_id");
	/* No [ssf] here either: nothing to sign with, no public key. */
	privsep_begin(&b, PRIVSEP_SIGN);
	privsep_put_str(&b, "{\"alg\":\"ES256\"}");
	privsep_put_str(&b, "{\"events\":{}}");
	assert_int_equal(privsep_finish(&b, &e), 0);
	ask(fd, &b, &in, &m);
	expect_error(&m, QERR_UNSUPPORTED, "type", "no [ssf]");
	privsep_begin(&b, PRIVSEP_SSF_KEY);
	assert_int_equal(privsep_finish(&b, &e), 0);
	ask(fd, &b, &in, &m);
	expect_error(&m, QERR_UNSUPPORTED, "type", "no [ssf]");
	/* Bytes that cannot be framed: an ERROR, then the channel is closed. */
	memcpy(b.p, junk, sizeof(junk));
	b.len = sizeof(junk);
	ask(fd, &b, &in, &m);
	expect_error(&m, QERR_INVALID, "magic", "version");
	ended(fd, &sd, &in);
	finish(ctl, &sc);
	privsep_buf_clear(&in);
	privsep_buf_clear(&b);
	privsep_exec_fini(&x);
}

static void
test_ref_shapes(void **state)
{
	char why[160];

	(void)state;
	assert_true(privsep_ref_valid("ad", "6f1c0a4e-2b7d-4c1a-9f00-0123456789ab", why,
	    sizeof(why)));
	assert_false(privsep_ref_valid("ad", "CN=Admin,DC=corp", why, sizeof(why)));
	assert_non_null(strstr(why, "not an objectGUID"));
	assert_false(privsep_ref_valid("entra", "6f1c0a4e-2b7d-4c1a-9f00-0123456789a",
	    why, sizeof(why)));
	assert_true(privsep_ref_valid("okta", "00u1abcDEF", why, sizeof(why)));
	assert_false(privsep_ref_valid("okta", "00u1/lifecycle", why, sizeof(why)));
	assert_false(privsep_ref_valid("okta", "", why, sizeof(why)));
	assert_true(privsep_ref_valid("scim", "2819c223-7f76-453a-919d-413861904646", why,
	    sizeof(why)));
	assert_false(privsep_ref_valid("scim", "a b", why, sizeof(why)));
	assert_false(privsep_ref_valid("scim", "x%2F", why, sizeof(why)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_forged_requests),
		cmocka_unit_test(test_ref_shapes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
