/*
 * The provider kit's pure pieces: the key-table parser and each of its messages, the
 * secret-file reader's refusals, URL checks, Retry-After in both forms with its cap,
 * Link rel="next", the token bucket and the 429 backoff.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "providers/kit.h"

/* Sat, 01 Jan 2022 00:00:00 GMT */
#define T2022_MS	1640995200000LL

struct settings {
	char *url;
	char *name;
	bool tls;
	long timeout;
	double rps;
	int64_t every;
	char *ca;
	struct kit_secret pw;
	struct kit_secret key;
	char *token;
};

static bool
no_x(const char *v)
{
	return strchr(v, 'x') == NULL;
}

#define OFF(f) offsetof(struct settings, f)

static const struct provider_key keys[] = {
	{ .name = "url", .type = PROVIDER_KEY_URL, .required = true, .schemes = "ldaps ldap",
	    .valid = kit_url_no_path, .offset = OFF(url),
	    .help = "ldaps://host[:port] or ldap://host[:port]" },
	{ .name = "name", .type = PROVIDER_KEY_STRING, .valid = no_x, .offset = OFF(name),
	    .help = "a name without x" },
	{ .name = "tls", .type = PROVIDER_KEY_BOOL, .offset = OFF(tls), .help = "yes or no" },
	{ .name = "timeout", .type = PROVIDER_KEY_LONG, .def = "10", .min = 1, .max = 3600,
	    .offset = OFF(timeout), .help = "whole seconds from 1 to 3600" },
	{ .name = "rps", .type = PROVIDER_KEY_NUMBER, .def = "1", .min = 0.01, .max = 1000,
	    .offset = OFF(rps), .help = "a number from 0.01 to 1000" },
	{ .name = "every", .type = PROVIDER_KEY_DURATION, .def = "5m", .min = 1000,
	    .max = 3600000, .offset = OFF(every), .help = "a span from 1s to 1h" },
	{ .name = "ca_file", .type = PROVIDER_KEY_FILE, .offset = OFF(ca), .help = "a file" },
	{ .name = "password_file", .type = PROVIDER_KEY_SECRET_FILE, .required = true,
	    .max = 64, .offset = OFF(pw), .help = "a file" },
	{ .name = "key_file", .type = PROVIDER_KEY_SECRET_FILE, .multiline = true,
	    .max = 4096, .offset = OFF(key), .help = "a file" },
	{ .name = "token", .type = PROVIDER_KEY_STRING, .secret = true, .valid = no_x,
	    .offset = OFF(token), .help = "one word without x" },
	{ 0 },
};

static char tmpdir[64];
static char pw_ok[128], pw_open[128], pw_empty[128], pw_long[128], pw_two[128], pem[128];

static void
put(char *path, size_t len, const char *name, const char *text, mode_t mode)
{
	FILE *f;

	snprintf(path, len, "%s/%s", tmpdir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static int
setup(void **state)
{
	char big[200];

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/quell-kit-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put(pw_ok, sizeof(pw_ok), "ok.pw", "s3cret\n", 0600);
	put(pw_open, sizeof(pw_open), "open.pw", "s3cret\n", 0644);
	put(pw_empty, sizeof(pw_empty), "empty.pw", "\n\n", 0600);
	put(pw_long, sizeof(pw_long), "long.pw", big, 0600);
	put(pw_two, sizeof(pw_two), "two.pw", "one\ntwo\n", 0600);
	put(pem, sizeof(pem), "key.pem", "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n",
	    0640);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A section "[system "lab"]" on line 3 of t.conf, its keys from line 4 on. */
struct sec {
	struct system_config cfg;
	struct config_kv kv[16];
};

static void
sec_init(struct sec *s, const char *kind, ...)
{
	const char *k;
	va_list ap;

	memset(s, 0, sizeof(*s));
	s->cfg = (struct system_config){ .name = (char *)"lab", .kind = (char *)kind,
	    .file = "t.conf", .line = 3, .kv = s->kv };
	s->kv[s->cfg.nkv++] = (struct config_kv){ (char *)"kind", (char *)kind, 4 };
	va_start(ap, kind);
	while ((k = va_arg(ap, const char *)) != NULL) {
		s->kv[s->cfg.nkv].key = (char *)k;
		s->kv[s->cfg.nkv].value = va_arg(ap, char *);
		s->kv[s->cfg.nkv].line = 5 + (int)s->cfg.nkv - 1;
		s->cfg.nkv++;
	}
	va_end(ap);
}

/* Parses the section; returns the code, with the message in e. */
static int
parse(struct sec *s, struct settings *st, struct qerr *e)
{
	int r;

	memset(st, 0, sizeof(*st));
	qerr_clear(e);
	r = provider_keys_parse(keys, &s->cfg, st, e);
	if (r != 0)
		provider_keys_clear(keys, st);
	return r;
}

static void
test_keys_good(void **state)
{
	struct settings st;
	struct sec s;
	struct qerr e;

	(void)state;
	sec_init(&s, "ad", "url", "ldaps://dc1.corp.example:636/", "max_concurrency", "3",
	    "password_file", pw_ok, "tls", "yes", "rps", "2.5", "key_file", pem, NULL);
	assert_int_equal(parse(&s, &st, &e), 0);
	assert_string_equal(st.url, "ldaps://dc1.corp.example:636");
	assert_true(st.tls);
	assert_int_equal(st.timeout, 10);	/* the default */
	assert_true(st.rps > 2.49 && st.rps < 2.51);
	assert_int_equal(st.every, 300000);
	assert_null(st.name);
	assert_null(st.ca);
	assert_string_equal(st.pw.buf, "s3cret");	/* the newline dropped */
	assert_int_equal(st.pw.len, 6);
	assert_non_null(strstr(st.key.buf, "AAAA\n-----END"));
	provider_keys_clear(keys, &st);
	assert_null(st.url);
	assert_null(st.pw.buf);
}

static void
expect_error(struct sec *s, const char *field, const char *msg)
{
	struct settings st;
	struct qerr e;

	assert_int_equal(parse(s, &st, &e), QERR_CONFIG);
	assert_string_equal(e.msg, msg);
	assert_string_equal(e.field, field);
}

static void
test_keys_errors(void **state)
{
	struct sec s;

	(void)state;
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_ok, "colour", "blue", NULL);
	expect_error(&s, "colour", "t.conf:7: unknown key \"colour\" for an ad system");
	sec_init(&s, "scim", "url", "ldap://dc", "password_file", pw_ok, "colour", "blue", NULL);
	expect_error(&s, "colour", "t.conf:7: unknown key \"colour\" for a scim system");
	sec_init(&s, "ad", "password_file", pw_ok, NULL);
	expect_error(&s, "url", "t.conf:3: system \"lab\" needs url");
	sec_init(&s, "ad", "url", "ldap://dc", NULL);
	expect_error(&s, "password_file", "t.conf:3: system \"lab\" needs password_file");
	sec_init(&s, "ad", "url", "http://dc", "password_file", pw_ok, NULL);
	expect_error(&s, "url", "t.conf:5: url must be ldaps://host[:port] or "
	    "ldap://host[:port], not \"http://dc\"");
	sec_init(&s, "ad", "url", "ldap://dc/dc=corp", "password_file", pw_ok, NULL);
	expect_error(&s, "url", "t.conf:5: url must be ldaps://host[:port] or "
	    "ldap://host[:port], not \"ldap://dc/dc=corp\"");
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_ok, "timeout", "0", NULL);
	expect_error(&s, "timeout", "t.conf:7: timeout must be whole seconds from 1 to "
	    "3600, not \"0\"");
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_ok, "tls", "maybe", NULL);
	expect_error(&s, "tls", "t.conf:7: tls must be yes or no, not \"maybe\"");
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_ok, "rps", "fast", NULL);
	expect_error(&s, "rps", "t.conf:7: rps must be a number from 0.01 to 1000, not "
	    "\"fast\"");
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_ok, "every", "2h", NULL);
	expect_error(&s, "every", "t.conf:7: every must be a span from 1s to 1h, not \"2h\"");
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_ok, "name", "xena", NULL);
	expect_error(&s, "name", "t.conf:7: name must be a name without x, not \"xena\"");
	/* A secret value is never echoed. */
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_ok, "token", "xyzzy", NULL);
	expect_error(&s, "token", "t.conf:7: token must be one word without x");
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_ok, "ca_file",
	    "/nonexistent/ca.pem", NULL);
	expect_error(&s, "ca_file", "t.conf:7: ca_file /nonexistent/ca.pem: No such file or "
	    "directory");
}

static void
test_secret_files(void **state)
{
	char msg[512];
	struct sec s;

	(void)state;
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_open, NULL);
	snprintf(msg, sizeof(msg), "t.conf:6: password_file %s: readable by everyone "
	    "(mode 644): chmod o-rw it", pw_open);
	expect_error(&s, "password_file", msg);
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_empty, NULL);
	snprintf(msg, sizeof(msg), "t.conf:6: password_file %s: empty: it must hold one line "
	    "of 1 to 64 bytes", pw_empty);
	expect_error(&s, "password_file", msg);
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_long, NULL);
	snprintf(msg, sizeof(msg), "t.conf:6: password_file %s: too long: it must hold one "
	    "line of 1 to 64 bytes", pw_long);
	expect_error(&s, "password_file", msg);
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", pw_two, NULL);
	snprintf(msg, sizeof(msg), "t.conf:6: password_file %s: more than one line: it must "
	    "hold one line of 1 to 64 bytes", pw_two);
	expect_error(&s, "password_file", msg);
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", tmpdir, NULL);
	snprintf(msg, sizeof(msg), "t.conf:6: password_file %s: not a regular file", tmpdir);
	expect_error(&s, "password_file", msg);
	sec_init(&s, "ad", "url", "ldap://dc", "password_file", "/nonexistent", NULL);
	expect_error(&s, "password_file", "t.conf:6: password_file /nonexistent: No such file "
	    "or directory");
}

static void
test_urls(void **state)
{
	struct kit_url u;

	(void)state;
	assert_int_equal(kit_url_parse("https://graph.example/v1.0", "https http", &u), 0);
	assert_int_equal(u.scheme, 0);
	assert_int_equal(u.origin_len, strlen("https://graph.example"));
	assert_string_equal(u.path, "/v1.0");
	assert_int_equal(kit_url_parse("http://127.0.0.1:8080", "https http", &u), 0);
	assert_int_equal(u.scheme, 1);
	assert_string_equal(u.path, "");
	assert_int_equal(kit_url_parse("https://[::1]:443/x", "https", &u), 0);
	assert_int_equal(kit_url_parse("ftp://host", "https http", &u), -1);
	assert_int_equal(kit_url_parse("https://host:0", "https", &u), -1);
	assert_int_equal(kit_url_parse("https://host:65536", "https", &u), -1);
	assert_int_equal(kit_url_parse("https://user@host", "https", &u), -1);
	assert_int_equal(kit_url_parse("https://host/?q=1", "https", &u), -1);
	assert_int_equal(kit_url_parse("https://host/a#f", "https", &u), -1);
	assert_int_equal(kit_url_parse("https://host/a b", "https", &u), -1);
	assert_int_equal(kit_url_parse("https://", "https", &u), -1);
	assert_int_equal(kit_url_parse("httpsx://host", "https", &u), -1);
	assert_true(kit_url_no_path("https://x.okta.com"));
	assert_true(kit_url_no_path("https://x.okta.com/"));
	assert_false(kit_url_no_path("https://x.okta.com/api"));
	assert_true(kit_url_under("https://o.example/api/v1?after=2", "https://o.example"));
	assert_false(kit_url_under("https://o.example.evil/x", "https://o.example"));
	assert_false(kit_url_under("https://o.example", "https://o.example"));
	assert_false(kit_url_under("https://o.example/a\r\nb", "https://o.example"));
}

static void
test_retry_after(void **state)
{
	int64_t ms;

	(void)state;
	assert_int_equal(kit_retry_after_parse("120", T2022_MS, &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(kit_retry_after_parse("2.128", T2022_MS, &ms), 0);
	assert_int_equal(ms, 2128);
	assert_int_equal(kit_retry_after_parse("0", T2022_MS, &ms), 0);
	assert_int_equal(ms, 0);
	/* The three HTTP-date forms, 90 s after now. */
	assert_int_equal(kit_retry_after_parse("Sat, 01 Jan 2022 00:01:30 GMT", T2022_MS,
	    &ms), 0);
	assert_int_equal(ms, 90000);
	assert_int_equal(kit_retry_after_parse("Saturday, 01-Jan-22 00:01:30 GMT", T2022_MS,
	    &ms), 0);
	assert_int_equal(ms, 90000);
	assert_int_equal(kit_retry_after_parse("Sat Jan  1 00:01:30 2022", T2022_MS, &ms), 0);
	assert_int_equal(ms, 90000);
	/* A date already past: no wait. */
	assert_int_equal(kit_retry_after_parse("Fri, 31 Dec 2021 23:00:00 GMT", T2022_MS,
	    &ms), 0);
	assert_int_equal(ms, 0);
	/* The cap, in both forms. */
	assert_int_equal(kit_retry_after_parse("86400", T2022_MS, &ms), 0);
	assert_int_equal(ms, KIT_RETRY_AFTER_CAP_MS);
	assert_int_equal(kit_retry_after_parse("1e300", T2022_MS, &ms), 0);
	assert_int_equal(ms, KIT_RETRY_AFTER_CAP_MS);
	assert_int_equal(kit_retry_after_parse("Sun, 02 Jan 2022 00:00:00 GMT", T2022_MS,
	    &ms), 0);
	assert_int_equal(ms, KIT_RETRY_AFTER_CAP_MS);
	assert_int_equal(kit_retry_after_parse("", T2022_MS, &ms), -1);
	assert_int_equal(kit_retry_after_parse("-5", T2022_MS, &ms), -1);
	assert_int_equal(kit_retry_after_parse("5s", T2022_MS, &ms), -1);
	assert_int_equal(kit_retry_after_parse("soon", T2022_MS, &ms), -1);
	assert_int_equal(kit_retry_after_parse("now", T2022_MS, &ms), -1);
	assert_int_equal(kit_retry_after_parse(" 5", T2022_MS, &ms), -1);
}

static int
link_of(const char *headers, char **next)
{
	struct http_response r = { .status = 200, .headers = (char *)headers };

	return kit_link_next(&r, "https://o.example", next);
}

static void
test_link_next(void **state)
{
	char *next = NULL;

	(void)state;
	assert_int_equal(link_of("HTTP/1.1 200 OK\r\nLink: <https://o.example/api/v1/users"
	    "?limit=2>; rel=\"self\"\r\nlink: <https://o.example/api/v1/users?after=a%2Cb&"
	    "limit=2>; rel=\"next\"\r\n\r\n", &next), 0);
	assert_string_equal(next, "https://o.example/api/v1/users?after=a%2Cb&limit=2");
	free(next);
	/* Several links in one header, a quoted comma, a list of relation types. */
	assert_int_equal(link_of("Link: <https://o.example/a>; title=\"x, y\"; rel=prev, "
	    "<https://o.example/b>; rel=\"last next\"\r\n", &next), 0);
	assert_string_equal(next, "https://o.example/b");
	free(next);
	assert_int_equal(link_of("Link: <https://o.example/a>; rel=\"nextish\"\r\n", &next),
	    0);
	assert_null(next);
	assert_int_equal(link_of("Content-Type: application/json\r\n", &next), 0);
	assert_null(next);
	/* A next link elsewhere would take the token with it. */
	assert_int_equal(link_of("Link: <https://evil.example/a>; rel=\"next\"\r\n", &next),
	    -1);
	assert_null(next);
	assert_int_equal(link_of("Link: <https://o.example/a; rel=\"next\"\r\n", &next), -1);
}

static void
test_bucket(void **state)
{
	struct kit_bucket b;
	int64_t now = 1000;
	int i;

	(void)state;
	/* 3000 per 150 s: a burst of 150, then 2850 over the window. */
	kit_bucket_init(&b, 3000, 150000, now);
	for (i = 0; i < 150; i++)
		assert_int_equal(kit_bucket_take(&b, now), 0);
	assert_true(kit_bucket_take(&b, now) > 0);
	kit_bucket_return(&b);
	kit_bucket_hold(&b, now + 5000);
	assert_int_equal(kit_bucket_take(&b, now), 5000);
	kit_bucket_init(&b, 10, 1000, now);
	assert_int_equal(kit_bucket_take(&b, now), 0);
	assert_int_equal(kit_bucket_take(&b, now), 112);	/* 9 more per second */
}

static void
test_backoff_and_paced(void **state)
{
	struct step_result res = { 0 };
	int i, ms;

	(void)state;
	for (i = 0; i < 50; i++) {
		ms = kit_backoff_ms(1);
		assert_true(ms >= 500 && ms <= 1000);
		ms = kit_backoff_ms(4);
		assert_true(ms >= 500 && ms <= 8000);
		ms = kit_backoff_ms(30);
		assert_true(ms >= 500 && ms <= 60000);
	}
	kit_result_paced(&res, 2500, "the budget resets in 2.5 s");
	assert_int_equal(res.outcome, STEP_OUTCOME_TRANSIENT);
	assert_true(res.not_sent);
	assert_int_equal(res.retry_after_ms, 2500);
	assert_string_equal(res.error_code, "rateLimitPacing");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_good),
		cmocka_unit_test(test_keys_errors),
		cmocka_unit_test(test_secret_files),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_link_next),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_backoff_and_paced),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
