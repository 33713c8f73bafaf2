/* RFC 5424 and CEF text of audit entries: headers, structured data, escaping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/audit.h"
#include "core/config.h"
#include "core/siem_format.h"

static const struct siem_origin origin = { .hostname = "node-1", .app_name = "quell",
    .procid = "42", .version = "1.2", .facility = 13 };

static struct audit_entry
entry(char *actor, char *event, char *detail)
{
	struct audit_entry ent;

	memset(&ent, 0, sizeof(ent));
	ent.seq = 7;
	ent.time = 1764576000123;	/* 2025-12-01T08:00:00.123Z */
	ent.actor = actor;
	ent.event = event;
	ent.action_id = "act_1";
	ent.identity_id = "idn_1";
	ent.detail = detail;
	assert_int_equal(audit_seal(&ent, audit_genesis, NULL), 0);
	return ent;
}

static char *
fmt(enum siem_format f, const struct audit_entry *ent)
{
	char *out = NULL;
	size_t len = 0;
	struct qerr e;

	assert_int_equal(siem_format(f, ent, &origin, &out, &len, &e), 0);
	assert_int_equal(strlen(out), len);
	return out;
}

static void
cef_escaping(void **state)
{
	char *s;

	(void)state;
	s = siem_cef_header_escape("a|b\\c\nd=e");
	assert_string_equal(s, "a\\|b\\\\c d=e");
	free(s);
	s = siem_cef_ext_escape("a=b\\c|d\r\ne");
	assert_string_equal(s, "a\\=b\\\\c|d\\r\\ne");
	free(s);
	/* Invalid UTF-8 is replaced, valid kept. */
	s = siem_cef_ext_escape("Zo\xc3\xab \xff!");
	assert_string_equal(s, "Zo\xc3\xab ?!");
	free(s);
	s = siem_cef_ext_escape("");
	assert_string_equal(s, "");
	free(s);
}

static void
sd_escaping(void **state)
{
	char *s;

	(void)state;
	s = siem_sd_escape("say \"hi\" [x] \\ done");
	assert_string_equal(s, "say \\\"hi\\\" [x\\] \\\\ done");
	free(s);
}

static void
rfc5424_message(void **state)
{
	struct audit_entry ent = entry("ann \"the\" [admin]", "action.requested",
	    "{\"reason\":\"a\\nb\"}");
	char *canon = audit_canonical(&ent), *s = fmt(SIEM_FORMAT_RFC5424, &ent), want[1024];

	(void)state;
	/* facility 13 * 8 + notice 5 = 109 */
	snprintf(want, sizeof(want), "<109>1 2025-12-01T08:00:00.123Z node-1 quell 42 "
	    "action.requested [quell@32473 seq=\"7\" time=\"1764576000123\" "
	    "event=\"action.requested\" actor=\"ann \\\"the\\\" [admin\\]\" "
	    "action_id=\"act_1\" identity_id=\"idn_1\" prev_hash=\"%s\" hash=\"%s\"] %s",
	    audit_genesis, ent.hash, canon);
	assert_string_equal(s, want);
	/* The canonical JSON never carries a raw line break. */
	assert_null(strchr(s, '\n'));
	free(s);
	free(canon);
}

static void
rfc5424_severity_and_nil(void **state)
{
	struct audit_entry ent = entry("x", "action.denied", NULL);
	struct siem_origin o = { .facility = 4 };
	const char *want = "<36>1 2025-12-01T08:00:00.123Z - quell - action.denied "
	    "[quell@32473 ";
	char *out = NULL;
	size_t len;
	struct qerr e;

	(void)state;
	assert_int_equal(siem_format(SIEM_FORMAT_RFC5424, &ent, &o, &out, &len, &e), 0);
	/* facility 4 * 8 + warning 4 = 36; no hostname or procid: NILVALUE */
	assert_true(strncmp(out, want, strlen(want)) == 0);
	free(out);
	assert_int_equal(siem_syslog_severity("auth.failed"), 4);
	assert_int_equal(siem_syslog_severity("token.created"), 5);
	assert_int_equal(siem_cef_severity("step.failed"), 7);
	assert_int_equal(siem_cef_severity("step.succeeded"), 3);
}

static void
bad_detail(void **state)
{
	struct audit_entry ent = entry("x", "e", NULL);
	char *out = (char *)1;
	size_t len;
	struct qerr e;

	(void)state;
	ent.detail = "not json";
	assert_int_equal(siem_format(SIEM_FORMAT_RFC5424, &ent, &origin, &out, &len, &e),
	    QERR_INVALID);
	assert_null(out);
}

static void
cef_message(void **state)
{
	struct audit_entry ent = entry("eve=1 \\ | x", "token.created",
	    "{\"name\":\"a=b\",\"why\":\"l1\\nl2\"}");
	char *s, want[1024];

	(void)state;
	ent.detail = "{\"name\": \"a=b\",\n \"pipe\": \"|\"}";
	s = fmt(SIEM_FORMAT_CEF, &ent);
	snprintf(want, sizeof(want), "<109>1 2025-12-01T08:00:00.123Z node-1 quell 42 "
	    "token.created - CEF:0|quell|quell|1.2|token.created|token created|3|"
	    "rt=1764576000123 externalId=7 suser=eve\\=1 \\\\ | x dvchost=node-1 "
	    "cs1Label=actionId cs1=act_1 cs2Label=identityId cs2=idn_1 "
	    "cs4Label=hash cs4=%s cs5Label=prevHash cs5=%s "
	    "msg={\"name\": \"a\\=b\",\\n \"pipe\": \"|\"}", ent.hash, audit_genesis);
	assert_string_equal(s, want);
	assert_null(strchr(s, '\n'));
	free(s);
}

static void
cef_header_escaping_in_event(void **state)
{
	struct audit_entry ent = entry("x", "odd|event\\name", NULL);
	struct siem_origin o = origin;
	char *out = NULL;
	size_t len;
	struct qerr e;

	(void)state;
	o.version = "1|2";
	assert_int_equal(siem_format(SIEM_FORMAT_CEF, &ent, &o, &out, &len, &e), 0);
	assert_non_null(strstr(out, "CEF:0|quell|quell|1\\|2|odd\\|event\\\\name|"
	    "odd\\|event\\\\name|3|rt="));
	free(out);
}

static struct config cfg;

static int
parse(const char *text, struct qerr *e)
{
	config_clear(&cfg);
	return config_parse("q.conf", text, &cfg, e);
}

static void
config_siem(void **state)
{
	struct qerr e;

	(void)state;
	assert_int_equal(parse("[siem \"soc\"]\nhost = siem.example\nca_file = /ca.pem\n",
	    &e), 0);
	assert_int_equal(cfg.nsiems, 1);
	assert_string_equal(cfg.siems[0].name, "soc");
	assert_int_equal(cfg.siems[0].protocol, SIEM_TLS);
	assert_int_equal(cfg.siems[0].port, 6514);
	assert_int_equal(cfg.siems[0].format, SIEM_FORMAT_RFC5424);
	assert_int_equal(cfg.siems[0].facility, 13);
	assert_int_equal(parse("[siem \"a\"]\nhost = h\nprotocol = udp\n"
	    "allow_plaintext = yes\nformat = cef\nport = 5514\n", &e), 0);
	assert_int_equal(cfg.siems[0].protocol, SIEM_UDP);
	assert_int_equal(cfg.siems[0].format, SIEM_FORMAT_CEF);
	assert_int_equal(cfg.siems[0].port, 5514);

	assert_int_equal(parse("[siem \"a\"]\nhost = h\n\n\nprotocol = tcp\n", &e),
	    QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:5: siem 'a': protocol tcp sends the audit "
	    "log in clear text"));
	assert_int_equal(parse("[siem \"a\"]\nhost = h\n", &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:1: siem 'a' has no ca_file"));
	assert_int_equal(parse("[siem \"a\"]\nca_file = c\n", &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:1: siem 'a' has no host"));
	assert_int_equal(parse("[siem \"a\"]\nhost = h\nca_file = c\ncert_file = x\n", &e),
	    QERR_CONFIG);
	assert_non_null(strstr(e.msg, "cert_file and key_file must be set together"));
	assert_int_equal(parse("[siem \"a\"]\nhost = h\nformat = leef\n", &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:3: format must be rfc5424 or cef"));
	assert_int_equal(parse("[siem \"a\"]\nhost = h\nport = 0\n", &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:3: port must be a whole number"));
	assert_int_equal(parse("[siem \"a\"]\nhost = h\nhost = i\n", &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:3: this key is set twice"));
	assert_int_equal(parse("[siem \"a\"]\nhost = h\nbogus = 1\n", &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:3: unknown key 'bogus' in [siem \"a\"]"));
	assert_int_equal(parse("[siem \"a\"]\nhost = h\nca_file = c\n[siem \"a\"]\n", &e),
	    QERR_CONFIG);
	assert_non_null(strstr(e.msg, "q.conf:4: siem 'a' is defined twice"));
	assert_int_equal(parse("[siem \"a\"]\nhost = h\nprotocol = udp\n"
	    "allow_plaintext = yes\nca_file = c\n", &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "are for protocol tls"));
	config_clear(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cef_escaping),
		cmocka_unit_test(sd_escaping),
		cmocka_unit_test(rfc5424_message),
		cmocka_unit_test(rfc5424_severity_and_nil),
		cmocka_unit_test(bad_detail),
		cmocka_unit_test(cef_message),
		cmocka_unit_test(cef_header_escaping_in_event),
		cmocka_unit_test(config_siem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
