/*
 * The AD provider against a real Samba AD DC (scripts/lab/samba.sh up + the LAB_*
 * variables of its env file). The effect of each action is checked the way a person
 * would: userAccountControl and pwdLastSet as read back, and kinit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ldap.h>

#include "core/ldapesc.h"
#include "providers/provider.h"

#ifndef SAMBA_SH
#error "SAMBA_SH must name scripts/lab/samba.sh"
#endif

#define USER_PW		"Quell-Test-Pw1"
#define UAC_NORMAL	0x200u
#define UAC_DISABLE	0x2u
#define UAC_DONT_EXPIRE	0x10000u
#define UAC_NOT_DELEG	0x100000u
#define UAC_NOPW	0x220u	/* normal, password not required: no key to derive */

static const char *lab_dir, *lab_url, *lab_ca, *lab_base, *lab_bind, *lab_pwfile;
static char tmpdir[] = "/tmp/quell-ad-test.XXXXXX";
static unsigned run_tag;
static const struct provider_ops *ad;

/* Helpers: processes */

/* Runs argv with stdin_text on stdin; stdout+stderr go to out. Returns the exit code. */
static int
run(char *const argv[], const char *stdin_text, char *out, size_t outlen)
{
	int in[2], op[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(in) == -1 || pipe(op) == -1)
		fail_msg("pipe: %s", strerror(errno));
	if ((pid = fork()) == -1)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(op[1], 1);
		dup2(op[1], 2);
		close(in[0]);
		close(in[1]);
		close(op[0]);
		close(op[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(op[1]);
	if (stdin_text != NULL && write(in[1], stdin_text, strlen(stdin_text)) == -1)
		fail_msg("write: %s", strerror(errno));
	close(in[1]);
	while (len + 1 < outlen && (n = read(op[0], out + len, outlen - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(op[0]);
	if (waitpid(pid, &status, 0) == -1)
		fail_msg("waitpid: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Creates a user through the lab script; its printed objectGUID goes to guid. */
static void
adduser(const char *sam, const char *cn, unsigned uac, char guid[LDAPESC_GUID_TEXT_LEN + 1])
{
	char uacs[16], out[1024], *nl;
	const char *g;
	char *argv[] = { SAMBA_SH, "adduser", (char *)lab_dir, (char *)sam, (char *)cn,
		USER_PW, uacs, NULL };

	snprintf(uacs, sizeof(uacs), "%u", uac);
	if (run(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("samba.sh adduser %s: %s", sam, out);
	if ((nl = strrchr(out, '\n')) != NULL)
		*nl = '\0';
	g = (nl = strrchr(out, '\n')) != NULL ? nl + 1 : out;
	if (strlen(g) != LDAPESC_GUID_TEXT_LEN)
		fail_msg("samba.sh adduser %s printed no objectGUID: %s", sam, out);
	memcpy(guid, g, LDAPESC_GUID_TEXT_LEN + 1);
}

/* kinit as sam with the test password; the output (for "revoked", "expired") in out. */
static int
kinit(const char *sam, char *out, size_t outlen)
{
	char princ[128];
	char *argv[] = { "kinit", princ, NULL };

	snprintf(princ, sizeof(princ), "%s@QUELL.TEST", sam);
	return run(argv, USER_PW "\n", out, outlen);
}

static void
name(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "q%s%05x", tag, run_tag);
}

/* Helpers: an administrator connection of the test's own, beside the provider's */

static LDAP *
admin_connect(void)
{
	LDAP *ld;
	FILE *f;
	char pw[256];
	struct berval cred;
	int v3 = 3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0;

	assert_int_equal(ldap_initialize(&ld, lab_url), LDAP_SUCCESS);
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
	ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, lab_ca);
	ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	assert_non_null(f = fopen(lab_pwfile, "r"));
	assert_non_null(fgets(pw, sizeof(pw), f));
	fclose(f);
	pw[strcspn(pw, "\n")] = '\0';
	cred.bv_val = pw;
	cred.bv_len = strlen(pw);
	assert_int_equal(ldap_sasl_bind_s(ld, lab_bind, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
	    NULL), LDAP_SUCCESS);
	return ld;
}

struct attrs {
	char dn[512];
	unsigned uac;
	long long pwdlastset;
};

static void
admin_read(LDAP *ld, const char *sam, struct attrs *a)
{
	char filter[128];
	char *attrs[] = { "userAccountControl", "pwdLastSet", NULL }, *dn;
	LDAPMessage *msg = NULL, *ent;
	struct berval **v;

	snprintf(filter, sizeof(filter), "(sAMAccountName=%s)", sam);
	assert_int_equal(ldap_search_ext_s(ld, lab_base, LDAP_SCOPE_SUBTREE, filter, attrs, 0,
	    NULL, NULL, NULL, 0, &msg), LDAP_SUCCESS);
	assert_non_null(ent = ldap_first_entry(ld, msg));
	dn = ldap_get_dn(ld, ent);
	snprintf(a->dn, sizeof(a->dn), "%s", dn);
	ldap_memfree(dn);
	assert_non_null(v = ldap_get_values_len(ld, ent, "userAccountControl"));
	a->uac = (unsigned)strtoul(v[0]->bv_val, NULL, 10);
	ldap_value_free_len(v);
	assert_non_null(v = ldap_get_values_len(ld, ent, "pwdLastSet"));
	a->pwdlastset = strtoll(v[0]->bv_val, NULL, 10);
	ldap_value_free_len(v);
	ldap_msgfree(msg);
}

/* A compare-and-swap of userAccountControl from outside the provider. */
static int
admin_cas(LDAP *ld, const char *dn, unsigned oldv, unsigned newv)
{
	char o[16], n[16];
	char *ov[] = { o, NULL }, *nv[] = { n, NULL };
	LDAPMod del = { LDAP_MOD_DELETE, "userAccountControl", { ov } };
	LDAPMod add = { LDAP_MOD_ADD, "userAccountControl", { nv } };
	LDAPMod *mods[] = { &del, &add, NULL };

	snprintf(o, sizeof(o), "%u", oldv);
	snprintf(n, sizeof(n), "%u", newv);
	return ldap_modify_ext_s(ld, dn, mods, NULL, NULL);
}

/* Adds an enabled user without a password over ld; its objectGUID goes to guid. */
static void
admin_add(LDAP *ld, const char *sam, char guid[LDAPESC_GUID_TEXT_LEN + 1])
{
	char dn[256], filter[128], uacs[16] = "544";
	char *oc[] = { "user", NULL }, *sv[] = { (char *)sam, NULL }, *uv[] = { uacs, NULL };
	char *attrs[] = { "objectGUID", NULL };
	LDAPMod moc = { LDAP_MOD_ADD, "objectClass", { oc } };
	LDAPMod msam = { LDAP_MOD_ADD, "sAMAccountName", { sv } };
	LDAPMod muac = { LDAP_MOD_ADD, "userAccountControl", { uv } };
	LDAPMod *mods[] = { &moc, &msam, &muac, NULL };
	LDAPMessage *msg = NULL, *ent;
	struct berval **v;

	snprintf(dn, sizeof(dn), "CN=%s,CN=Users,%s", sam, lab_base);
	assert_int_equal(ldap_add_ext_s(ld, dn, mods, NULL, NULL), LDAP_SUCCESS);
	snprintf(filter, sizeof(filter), "(sAMAccountName=%s)", sam);
	assert_int_equal(ldap_search_ext_s(ld, lab_base, LDAP_SCOPE_SUBTREE, filter, attrs, 0,
	    NULL, NULL, NULL, 0, &msg), LDAP_SUCCESS);
	assert_non_null(ent = ldap_first_entry(ld, msg));
	assert_non_null(v = ldap_get_values_len(ld, ent, "objectGUID"));
	assert_int_equal(ldapesc_guid_to_text(v[0]->bv_val, v[0]->bv_len, guid), 0);
	ldap_value_free_len(v);
	ldap_msgfree(msg);
}

/* Helpers: the provider */

struct sys {
	struct config_kv kv[12];
	struct system_config cfg;
};

/* The lab system; extra "key", "value" pairs are added or override a key. */
static void
sys_init(struct sys *s, int conc, ...)
{
	const char *defaults[][2] = {
		{ "kind", "ad" }, { "url", lab_url }, { "ca_file", lab_ca },
		{ "base_dn", lab_base }, { "bind_dn", lab_bind },
		{ "password_file", lab_pwfile }, { "timeout", "5" },
	};
	const char *k, *v;
	size_t i, n = 0;
	va_list ap;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		s->kv[n].key = (char *)defaults[i][0];
		s->kv[n].value = (char *)defaults[i][1];
		s->kv[n].line = (int)n + 11;
		n++;
	}
	va_start(ap, conc);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		for (i = 0; i < n; i++)
			if (strcmp(s->kv[i].key, k) == 0)
				break;
		if (i == n)
			n++;
		s->kv[i].key = (char *)k;
		s->kv[i].value = (char *)v;
		s->kv[i].line = (int)i + 11;
	}
	va_end(ap);
	s->cfg.name = "lab";
	s->cfg.kind = "ad";
	s->cfg.file = "test.conf";
	s->cfg.line = 10;
	s->cfg.max_concurrency = conc;
	s->cfg.kv = s->kv;
	s->cfg.nkv = n;
}

static struct provider *
open_lab(int conc)
{
	struct provider *p = NULL;
	struct qerr e = { 0 };
	struct sys s;

	sys_init(&s, conc, NULL);
	if (provider_open(ad, &s.cfg, &p, &e) != 0)
		fail_msg("open: %s", e.msg);
	return p;
}

static void
exec_step(struct provider *p, enum action_type t, const char *guid, const char *params,
    struct step_result *res)
{
	struct step st = { 0 };

	st.type = t;
	st.account_ref = (char *)guid;
	st.params = (char *)params;
	assert_int_equal(provider_execute(ad, p, &st, res), 0);
}

#define assert_outcome(res, want) do {						\
	if ((res)->outcome != (want))						\
		fail_msg("outcome %d, want %d: [%s] %s", (res)->outcome, (want),	\
		    (res)->error_code, (res)->message);				\
} while (0)

/* Tests */

static void
test_config_errors(void **state)
{
	struct provider *p = NULL;
	struct qerr e;
	struct sys s;
	char pw[256];
	FILE *f;

	(void)state;
	sys_init(&s, 2, "bogus", "1", NULL);
	qerr_clear(&e);
	assert_int_equal(provider_open(ad, &s.cfg, &p, &e), QERR_CONFIG);
	assert_string_equal(e.msg, "test.conf:18: unknown key \"bogus\" for an ad system");

	sys_init(&s, 2, "url", "http://127.0.0.1", NULL);
	assert_int_equal(provider_open(ad, &s.cfg, &p, &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "test.conf:12: url must be"));

	sys_init(&s, 2, "url", "ldap://127.0.0.1", NULL);
	assert_int_equal(provider_open(ad, &s.cfg, &p, &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "test.conf:12: ldap:// sends the bind password"));

	sys_init(&s, 2, "url", "ldaps://127.0.0.1", "starttls", "yes", NULL);
	assert_int_equal(provider_open(ad, &s.cfg, &p, &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "test.conf:18: starttls"));

	sys_init(&s, 2, "timeout", "0", NULL);
	assert_int_equal(provider_open(ad, &s.cfg, &p, &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "test.conf:17: timeout must be"));

	sys_init(&s, 2, NULL);
	s.cfg.nkv = 5;	/* no password_file, no timeout */
	assert_int_equal(provider_open(ad, &s.cfg, &p, &e), QERR_CONFIG);
	assert_string_equal(e.msg, "test.conf:10: system \"lab\" needs password_file");

	snprintf(pw, sizeof(pw), "%s/world.pw", tmpdir);
	assert_non_null(f = fopen(pw, "w"));
	fputs("secret\n", f);
	fclose(f);
	chmod(pw, 0644);
	sys_init(&s, 2, "password_file", pw, NULL);
	assert_int_equal(provider_open(ad, &s.cfg, &p, &e), QERR_CONFIG);
	assert_non_null(strstr(e.msg, "test.conf:16: password_file"));
	assert_non_null(strstr(e.msg, "readable by everyone"));
	assert_null(strstr(e.msg, "secret"));
	assert_null(p);

	/* StartTLS on ldap:// is accepted, and works against the lab. */
	sys_init(&s, 1, "url", "ldap://127.0.0.1", "starttls", "yes", NULL);
	assert_int_equal(provider_open(ad, &s.cfg, &p, &e), 0);
	{
		struct step_result res;

		exec_step(p, ACTION_DISABLE, "00000000-0000-0000-0000-000000000000", NULL,
		    &res);
		assert_outcome(&res, STEP_OUTCOME_PERMANENT);
		assert_string_equal(res.message, "account not found in Active Directory");
	}
	provider_close(ad, p);
}

static void
test_disable_enable(void **state)
{
	struct provider *p = *state;
	char sam[32], guid[40], out[1024];
	const unsigned start = UAC_NORMAL | UAC_NOT_DELEG;
	struct step_result res;
	struct attrs a;
	LDAP *ld = admin_connect();

	name(sam, sizeof(sam), "de");
	adduser(sam, sam, start, guid);
	admin_read(ld, sam, &a);
	assert_int_equal(a.uac, start);
	assert_int_equal(kinit(sam, out, sizeof(out)), 0);

	exec_step(p, ACTION_DISABLE, guid, NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.message, "disabled");
	assert_string_equal(res.state, "disabled");
	assert_string_equal(res.request_id, "");
	admin_read(ld, sam, &a);
	assert_int_equal(a.uac, start | UAC_DISABLE);
	assert_int_not_equal(kinit(sam, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "revoked"));

	exec_step(p, ACTION_DISABLE, guid, NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.message, "already disabled");
	assert_string_equal(res.state, "disabled");

	/* Upper-case GUID text names the same account. */
	for (char *c = guid; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	exec_step(p, ACTION_ENABLE, guid, NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.message, "enabled");
	assert_string_equal(res.state, "enabled");
	admin_read(ld, sam, &a);
	assert_int_equal(a.uac, start);
	assert_int_equal(kinit(sam, out, sizeof(out)), 0);

	exec_step(p, ACTION_ENABLE, guid, NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.message, "already enabled");
	ldap_unbind_ext_s(ld, NULL, NULL);
}

static void
test_force_password_change(void **state)
{
	struct provider *p = *state;
	char sam[32], guid[40], out[1024];
	struct step_result res;
	struct attrs a;
	LDAP *ld = admin_connect();

	name(sam, sizeof(sam), "fp");
	adduser(sam, sam, UAC_NORMAL, guid);
	admin_read(ld, sam, &a);
	assert_true(a.pwdlastset > 0);

	exec_step(p, ACTION_FORCE_PASSWORD_CHANGE, guid, "{}", &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.state, "enabled");
	admin_read(ld, sam, &a);
	assert_int_equal(a.pwdlastset, 0);
	assert_int_equal(a.uac, UAC_NORMAL);
	assert_int_not_equal(kinit(sam, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "expired"));

	exec_step(p, ACTION_FORCE_PASSWORD_CHANGE, guid, NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	assert_string_equal(res.message, "already must change password");

	exec_step(p, ACTION_FORCE_PASSWORD_CHANGE, guid, "[1]", &res);
	assert_outcome(&res, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.error_code, "invalidParams");
	ldap_unbind_ext_s(ld, NULL, NULL);
}

static void
test_dont_expire(void **state)
{
	struct provider *p = *state;
	char sam[32], guid[40], out[1024];
	struct step_result res;
	struct attrs a, b;
	LDAP *ld = admin_connect();

	name(sam, sizeof(sam), "dx");
	adduser(sam, sam, UAC_NORMAL | UAC_DONT_EXPIRE, guid);
	admin_read(ld, sam, &a);

	exec_step(p, ACTION_FORCE_PASSWORD_CHANGE, guid, "{}", &res);
	assert_outcome(&res, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.message, "password never expires is set on this account: AD "
	    "ignores a forced change; ask again with clear_dont_expire to clear that flag");
	admin_read(ld, sam, &b);
	assert_int_equal(b.uac, a.uac);
	assert_int_equal(b.pwdlastset, a.pwdlastset);

	exec_step(p, ACTION_FORCE_PASSWORD_CHANGE, guid, "{\"clear_dont_expire\": \"yes\"}",
	    &res);
	assert_outcome(&res, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.error_code, "invalidParams");

	exec_step(p, ACTION_FORCE_PASSWORD_CHANGE, guid, "{\"clear_dont_expire\": true}",
	    &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	admin_read(ld, sam, &b);
	assert_int_equal(b.uac, UAC_NORMAL);
	assert_int_equal(b.pwdlastset, 0);
	assert_int_not_equal(kinit(sam, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "expired"));
	ldap_unbind_ext_s(ld, NULL, NULL);
}

/* The provider reads afresh for every step: a bit set in between survives. */
static void
test_change_between_steps(void **state)
{
	struct provider *p = *state;
	char sam[32], guid[40];
	struct step_result res;
	struct attrs a;
	LDAP *ld = admin_connect();

	name(sam, sizeof(sam), "cb");
	adduser(sam, sam, UAC_NORMAL, guid);
	exec_step(p, ACTION_DISABLE, guid, NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	admin_read(ld, sam, &a);
	assert_int_equal(admin_cas(ld, a.dn, a.uac, a.uac | UAC_NOT_DELEG), LDAP_SUCCESS);
	exec_step(p, ACTION_ENABLE, guid, NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	admin_read(ld, sam, &a);
	assert_int_equal(a.uac, UAC_NORMAL | UAC_NOT_DELEG);
	ldap_unbind_ext_s(ld, NULL, NULL);
}

/* Another writer: flips NOT_DELEGATED on each of its accounts, round after round, with
 * its own compare-and-swap, and counts the flips that took. */
struct flipper {
	char (*sams)[32];
	size_t n;
	int rounds;
	int flips[8];		/* successful flips of NOT_DELEGATED, per account */
};

static void *
flip_many(void *arg)
{
	struct flipper *f = arg;
	struct attrs a;
	LDAP *ld = admin_connect();
	int i;
	size_t k;

	for (i = 0; i < f->rounds; i++)
		for (k = 0; k < f->n; k++) {
			admin_read(ld, f->sams[k], &a);
			if (admin_cas(ld, a.dn, a.uac, a.uac ^ UAC_NOT_DELEG) == LDAP_SUCCESS)
				f->flips[k]++;
			usleep(500);
		}
	ldap_unbind_ext_s(ld, NULL, NULL);
	return NULL;
}

/*
 * Another writer flips NOT_DELEGATED with its own compare-and-swap while the provider
 * disables and enables: had the provider ever written a stale value, a flip would be
 * lost and the bit's final state would not match the number of successful flips.
 */
static void
test_concurrent_writer(void **state)
{
	struct provider *p = *state;
	struct flipper f = { .n = 1, .rounds = 150 };
	char sam[32], guid[40], last[600] = "";
	struct step_result res;
	struct attrs a;
	pthread_t t;
	LDAP *ld;
	int i, ok = 0, other = 0;

	name(sam, sizeof(sam), "cw");
	adduser(sam, sam, UAC_NORMAL, guid);
	f.sams = &sam;
	assert_int_equal(pthread_create(&t, NULL, flip_many, &f), 0);
	/* Losing every retry to the other writer is a transient failure, never a stale write. */
	for (i = 0; i < 150; i++) {
		exec_step(p, i % 2 == 0 ? ACTION_DISABLE : ACTION_ENABLE, guid, NULL, &res);
		if (res.outcome == STEP_OUTCOME_SUCCEEDED)
			ok++;
		else if (res.outcome != STEP_OUTCOME_TRANSIENT ||
		    strcmp(res.error_code, "noSuchAttribute") != 0) {
			other++;
			snprintf(last, sizeof(last), "%s: %s", res.error_code, res.message);
		}
	}
	pthread_join(t, NULL);
	if (other > 0)
		fail_msg("%d unexpected outcomes, last %s", other, last);
	assert_true(ok > 100);
	ld = admin_connect();
	admin_read(ld, sam, &a);
	assert_true(f.flips[0] > 0);
	assert_int_equal(!!(a.uac & UAC_NOT_DELEG), f.flips[0] % 2);
	assert_int_equal(a.uac & ~UAC_NOT_DELEG, UAC_NORMAL);
	ldap_unbind_ext_s(ld, NULL, NULL);
}

static void
test_hostile_cn(void **state)
{
	struct provider *p = *state;
	char sam[32], cn[128], guid[40], out[1024];
	struct step_result res;
	struct attrs a;
	LDAP *ld = admin_connect();

	name(sam, sizeof(sam), "zo");
	snprintf(cn, sizeof(cn), "Zo\xc3\xab \"Z\" O'Brien, (ops) \\ test* %s", sam);
	adduser(sam, cn, UAC_NORMAL, guid);
	exec_step(p, ACTION_DISABLE, guid, NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	admin_read(ld, sam, &a);
	assert_int_equal(a.uac, UAC_NORMAL | UAC_DISABLE);
	assert_non_null(strstr(a.dn, "O'Brien\\, (ops) \\\\ test"));
	assert_int_not_equal(kinit(sam, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "revoked"));
	exec_step(p, ACTION_ENABLE, guid, NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	assert_int_equal(kinit(sam, out, sizeof(out)), 0);
	ldap_unbind_ext_s(ld, NULL, NULL);
}

static void
test_not_found(void **state)
{
	struct provider *p = *state;
	struct step_result res;

	exec_step(p, ACTION_DISABLE, "0badc0de-0000-4000-8000-000000000001", NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.message, "account not found in Active Directory");
	assert_string_equal(res.error_code, "noSuchObject");

	exec_step(p, ACTION_DISABLE, "*)(objectClass=*", NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_PERMANENT);
	assert_string_equal(res.error_code, "invalidAccountRef");

	exec_step(p, ACTION_REVOKE_SESSIONS, "0badc0de-0000-4000-8000-000000000001", NULL,
	    &res);
	assert_outcome(&res, STEP_OUTCOME_PERMANENT);
	assert_false(provider_supports(ad, p, ACTION_REVOKE_SESSIONS));
	assert_false(provider_supports(ad, p, ACTION_SET_RISK));
	assert_true(provider_supports(ad, p, ACTION_FORCE_PASSWORD_CHANGE));
}

static void
expect_failure(struct sys *s, enum step_outcome outcome, const char *code, const char *text)
{
	struct provider *p = NULL;
	struct step_result res;
	struct qerr e = { 0 };

	if (provider_open(ad, &s->cfg, &p, &e) != 0)
		fail_msg("open: %s", e.msg);
	exec_step(p, ACTION_DISABLE, "0badc0de-0000-4000-8000-000000000001", NULL, &res);
	assert_outcome(&res, outcome);
	assert_string_equal(res.error_code, code);
	if (strstr(res.message, text) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", res.message, text);
	provider_close(ad, p);
}

static void
test_server_down(void **state)
{
	struct sys s;

	(void)state;
	sys_init(&s, 1, "url", "ldaps://127.0.0.1:1", NULL);
	expect_failure(&s, STEP_OUTCOME_TRANSIENT, "serverDown", "Can't contact LDAP server");
}

static void
test_bad_ca(void **state)
{
	char ca[300], key[300], out[2048];
	char *argv[] = { "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-days", "2", "-subj", "/CN=not the lab CA", "-keyout", key, "-out", ca, NULL };
	struct sys s;

	(void)state;
	snprintf(ca, sizeof(ca), "%s/other-ca.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/other-ca.key", tmpdir);
	if (run(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("openssl: %s", out);
	sys_init(&s, 1, "ca_file", ca, NULL);
	expect_failure(&s, STEP_OUTCOME_PERMANENT, "tlsHandshake", "TLS handshake with");
	/* The lab certificate is for 127.0.0.1, not for "localhost". */
	sys_init(&s, 1, "url", "ldaps://localhost", NULL);
	expect_failure(&s, STEP_OUTCOME_PERMANENT, "tlsHandshake", "TLS handshake with");
}

static void
test_bad_password(void **state)
{
	char pw[300];
	struct sys s;
	FILE *f;

	(void)state;
	snprintf(pw, sizeof(pw), "%s/wrong.pw", tmpdir);
	assert_non_null(f = fopen(pw, "w"));
	fputs("not-the-password\n", f);
	fclose(f);
	chmod(pw, 0600);
	sys_init(&s, 1, "password_file", pw, NULL);
	expect_failure(&s, STEP_OUTCOME_PERMANENT, "invalidCredentials", "data 52e");
}

struct seen {
	char (*guids)[40];
	char (*sams)[32];
	size_t n;
	size_t calls;
	size_t matched;
	bool bad;
	char sid_prefix[64];
};

static int
count_cb(const struct account *a, void *arg)
{
	struct seen *s = arg;
	size_t i;

	s->calls++;
	if (strcmp(a->kind, "ad") != 0 || strcmp(a->system, "lab") != 0 ||
	    strlen(a->external_id) != LDAPESC_GUID_TEXT_LEN || a->dn == NULL ||
	    strncmp(a->sid, "S-1-5-", 6) != 0)
		s->bad = true;
	for (i = 0; i < s->n; i++) {
		char upn[64];

		if (strcmp(a->username, s->sams[i]) != 0)
			continue;
		snprintf(upn, sizeof(upn), "%s@quell.test", s->sams[i]);
		if (strcmp(a->external_id, s->guids[i]) != 0 || a->upn == NULL ||
		    strcmp(a->upn, upn) != 0 || strncmp(a->sid, "S-1-5-21-", 9) != 0 ||
		    strcmp(a->state, i == 0 ? "disabled" : "enabled") != 0)
			s->bad = true;
		else
			s->matched++;
	}
	return 0;
}

static int
stop_cb(const struct account *a, void *arg)
{
	size_t *n = arg;

	(void)a;
	return ++*n == 3 ? 42 : 0;
}

static void
test_list_accounts(void **state)
{
	struct provider *p = NULL;
	char guids[6][40], sams[6][32];
	struct seen seen = { .guids = guids, .sams = sams, .n = 6 };
	struct step_result res;
	struct qerr e = { 0 };
	struct sys s;
	LDAP *ld;
	LDAPMessage *msg = NULL;
	char *attrs[] = { "1.1", NULL };
	size_t i, stopped = 0;
	int expected;

	(void)state;
	for (i = 0; i < 6; i++) {
		char tag[8];

		snprintf(tag, sizeof(tag), "l%zu", i);
		name(sams[i], sizeof(sams[i]), tag);
		adduser(sams[i], sams[i], UAC_NORMAL, guids[i]);
	}
	ld = admin_connect();
	assert_int_equal(ldap_search_ext_s(ld, lab_base, LDAP_SCOPE_SUBTREE,
	    "(&(objectCategory=person)(objectClass=user))", attrs, 0, NULL, NULL, NULL, 0,
	    &msg), LDAP_SUCCESS);
	expected = ldap_count_entries(ld, msg);
	ldap_msgfree(msg);
	ldap_unbind_ext_s(ld, NULL, NULL);

	/* Pages of 4: several round trips, nothing lost or repeated. */
	sys_init(&s, 2, "page_size", "4", NULL);
	assert_int_equal(provider_open(ad, &s.cfg, &p, &e), 0);
	exec_step(p, ACTION_DISABLE, guids[0], NULL, &res);
	assert_outcome(&res, STEP_OUTCOME_SUCCEEDED);
	assert_int_equal(provider_list_accounts(ad, p, count_cb, &seen, &e), 0);
	assert_false(seen.bad);
	assert_int_equal(seen.matched, 6);
	assert_true(expected > 8);
	assert_true(seen.calls >= (size_t)expected);

	assert_int_equal(provider_list_accounts(ad, p, stop_cb, &stopped, &e), 42);
	assert_int_equal(stopped, 3);
	/* The connection given up after the early stop is replaced transparently. */
	memset(&seen, 0, sizeof(seen));
	seen.guids = guids;
	seen.sams = sams;
	seen.n = 6;
	assert_int_equal(provider_list_accounts(ad, p, count_cb, &seen, &e), 0);
	assert_true(seen.calls >= (size_t)expected);
	provider_close(ad, p);
}

struct worker {
	struct provider *p;
	char (*guids)[40];
	size_t from, to;
	int failures;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct step st = { 0 };
	struct step_result res;
	size_t i;

	st.type = ACTION_DISABLE;
	for (i = w->from; i < w->to; i++) {
		st.account_ref = w->guids[i];
		provider_execute(ad, w->p, &st, &res);
		if (res.outcome != STEP_OUTCOME_SUCCEEDED)
			w->failures++;
	}
	return NULL;
}

/* Eight threads over a pool of three connections. */
static void
test_threads(void **state)
{
	enum { NUSERS = 24, NTHREADS = 8 };
	struct provider *p;
	char guids[NUSERS][40], sams[NUSERS][32];
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	struct attrs a;
	LDAP *ld;
	size_t i;

	(void)state;
	for (i = 0; i < NUSERS; i++) {
		char tag[8];

		snprintf(tag, sizeof(tag), "t%zu", i);
		name(sams[i], sizeof(sams[i]), tag);
		adduser(sams[i], sams[i], UAC_NORMAL, guids[i]);
	}
	p = open_lab(3);
	for (i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .p = p, .guids = guids, .from = i * NUSERS / NTHREADS,
			.to = (i + 1) * NUSERS / NTHREADS };
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	provider_close(ad, p);
	ld = admin_connect();
	for (i = 0; i < NUSERS; i++) {
		admin_read(ld, sams[i], &a);
		assert_int_equal(a.uac, UAC_NORMAL | UAC_DISABLE);
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
}

/* Steps of one type, each naming one account, as execute_batch takes them. */
struct batch {
	struct step st[32];
	const struct step *sp[32];
	struct step_result res[32];
	size_t n;
};

static void
exec_batch(struct provider *p, struct batch *b, enum action_type t, char (*guids)[40],
    size_t n)
{
	size_t i;

	memset(b, 0, sizeof(*b));
	for (i = 0; i < n; i++) {
		b->st[i].type = t;
		b->st[i].account_ref = guids[i];
		b->sp[i] = &b->st[i];
	}
	b->n = n;
	assert_int_equal(provider_execute_batch(ad, p, b->sp, n, b->res), 0);
}

/*
 * A full batch, all in flight on one connection: every step settles on its own, the
 * account that does not exist and the reference that is no GUID fail alone, and two
 * steps on one account in the same batch both succeed with one write's effect. (The
 * second may say "enabled" too: Samba lets a compare-and-swap pass when the value it
 * adds is already the value there, whatever it deletes.)
 */
static void
test_batch(void **state)
{
	enum { N = 32, GONE = 5, BAD = 9, TWICE = N - 1 };
	struct provider *p = *state;
	char sams[N][32], guids[N][40];
	struct batch b;
	struct attrs a;
	LDAP *ld = admin_connect();
	size_t i;
	int enabled = 0;

	assert_int_equal(provider_batch_max(ad, p, ACTION_DISABLE), N);
	assert_int_equal(provider_batch_max(ad, p, ACTION_ENABLE), N);
	assert_int_equal(provider_batch_max(ad, p, ACTION_REVOKE_SESSIONS), 1);
	for (i = 0; i < N; i++) {
		char tag[8];

		snprintf(tag, sizeof(tag), "b%zu", i);
		name(sams[i], sizeof(sams[i]), tag);
		admin_add(ld, sams[i], guids[i]);
	}
	snprintf(guids[GONE], sizeof(guids[GONE]), "0badc0de-0000-4000-8000-000000000002");
	snprintf(guids[BAD], sizeof(guids[BAD]), "not-a-guid");

	exec_batch(p, &b, ACTION_DISABLE, guids, N);
	for (i = 0; i < N; i++) {
		if (i == GONE) {
			assert_outcome(&b.res[i], STEP_OUTCOME_PERMANENT);
			assert_string_equal(b.res[i].error_code, "noSuchObject");
			assert_string_equal(b.res[i].message,
			    "account not found in Active Directory");
			continue;
		}
		if (i == BAD) {
			assert_outcome(&b.res[i], STEP_OUTCOME_PERMANENT);
			assert_string_equal(b.res[i].error_code, "invalidAccountRef");
			continue;
		}
		assert_outcome(&b.res[i], STEP_OUTCOME_SUCCEEDED);
		assert_string_equal(b.res[i].message, "disabled");
		assert_string_equal(b.res[i].state, "disabled");
		admin_read(ld, sams[i], &a);
		assert_int_equal(a.uac, UAC_NOPW | UAC_DISABLE);
	}

	/* The provider's last known values go stale: a bit set on every even account
	 * (GONE and BAD are odd). */
	for (i = 0; i < N; i += 2) {
		admin_read(ld, sams[i], &a);
		assert_int_equal(admin_cas(ld, a.dn, a.uac, a.uac | UAC_NOT_DELEG),
		    LDAP_SUCCESS);
	}
	memcpy(guids[TWICE], guids[0], sizeof(guids[0]));
	exec_batch(p, &b, ACTION_ENABLE, guids, N);
	for (i = 0; i < N; i++) {
		if (i == GONE || i == BAD) {
			assert_outcome(&b.res[i], STEP_OUTCOME_PERMANENT);
			continue;
		}
		assert_outcome(&b.res[i], STEP_OUTCOME_SUCCEEDED);
		assert_string_equal(b.res[i].state, "enabled");
		if (i == 0 || i == TWICE) {
			if (strcmp(b.res[i].message, "enabled") == 0)
				enabled++;
			else
				assert_string_equal(b.res[i].message, "already enabled");
			continue;
		}
		assert_string_equal(b.res[i].message, "enabled");
		admin_read(ld, sams[i], &a);
		assert_int_equal(a.uac, i % 2 == 0 ? UAC_NOPW | UAC_NOT_DELEG : UAC_NOPW);
	}
	assert_true(enabled >= 1);
	admin_read(ld, sams[0], &a);
	assert_int_equal(a.uac, UAC_NOPW | UAC_NOT_DELEG);
	admin_read(ld, sams[TWICE], &a);
	assert_int_equal(a.uac, UAC_NOPW | UAC_DISABLE);
	ldap_unbind_ext_s(ld, NULL, NULL);
}

/*
 * Another writer flips NOT_DELEGATED on the batch's accounts with its own
 * compare-and-swap while batches disable and enable them: had a step of a batch ever
 * written a stale value, a flip would be lost and that account's bit would not match
 * its count of flips.
 */
static void
test_batch_concurrent_writer(void **state)
{
	enum { N = 8, ROUNDS = 40 };
	struct provider *p = *state;
	struct flipper f = { .n = N, .rounds = 60 };
	char sams[N][32], guids[N][40], last[600] = "";
	struct batch b;
	struct attrs a;
	pthread_t t;
	LDAP *ld = admin_connect();
	size_t i;
	int round, ok = 0, other = 0;

	for (i = 0; i < N; i++) {
		char tag[8];

		snprintf(tag, sizeof(tag), "r%zu", i);
		name(sams[i], sizeof(sams[i]), tag);
		admin_add(ld, sams[i], guids[i]);
	}
	f.sams = sams;
	assert_int_equal(pthread_create(&t, NULL, flip_many, &f), 0);
	for (round = 0; round < ROUNDS; round++) {
		exec_batch(p, &b, round % 2 == 0 ? ACTION_DISABLE : ACTION_ENABLE, guids, N);
		for (i = 0; i < N; i++) {
			if (b.res[i].outcome == STEP_OUTCOME_SUCCEEDED)
				ok++;
			else if (b.res[i].outcome != STEP_OUTCOME_TRANSIENT ||
			    strcmp(b.res[i].error_code, "noSuchAttribute") != 0) {
				other++;
				snprintf(last, sizeof(last), "%s: %s", b.res[i].error_code,
				    b.res[i].message);
			}
		}
	}
	pthread_join(t, NULL);
	if (other > 0)
		fail_msg("%d unexpected outcomes, last %s", other, last);
	assert_true(ok > N * ROUNDS / 2);
	/* Alone now, the last enable settles every account. */
	exec_batch(p, &b, ACTION_ENABLE, guids, N);
	for (i = 0; i < N; i++) {
		assert_outcome(&b.res[i], STEP_OUTCOME_SUCCEEDED);
		admin_read(ld, sams[i], &a);
		assert_true(f.flips[i] > 0);
		assert_int_equal(!!(a.uac & UAC_NOT_DELEG), f.flips[i] % 2);
		assert_int_equal(a.uac & ~UAC_NOT_DELEG, UAC_NOPW);
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
}

static int
setup_provider(void **state)
{
	*state = open_lab(2);
	return 0;
}

static int
teardown_provider(void **state)
{
	provider_close(ad, *state);
	return 0;
}

static const char *
lab_env(const char *name, const char *file)
{
	static char buf[8][512];
	static int n;
	const char *v = getenv(name);

	if (v != NULL && *v != '\0')
		return v;
	snprintf(buf[n], sizeof(buf[n]), "%s/%s", lab_dir, file);
	return buf[n++];
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test_setup_teardown(test_disable_enable, setup_provider,
		    teardown_provider),
		cmocka_unit_test_setup_teardown(test_force_password_change, setup_provider,
		    teardown_provider),
		cmocka_unit_test_setup_teardown(test_dont_expire, setup_provider,
		    teardown_provider),
		cmocka_unit_test_setup_teardown(test_change_between_steps, setup_provider,
		    teardown_provider),
		cmocka_unit_test_setup_teardown(test_concurrent_writer, setup_provider,
		    teardown_provider),
		cmocka_unit_test_setup_teardown(test_hostile_cn, setup_provider,
		    teardown_provider),
		cmocka_unit_test_setup_teardown(test_not_found, setup_provider,
		    teardown_provider),
		cmocka_unit_test(test_server_down),
		cmocka_unit_test(test_bad_ca),
		cmocka_unit_test(test_bad_password),
		cmocka_unit_test(test_list_accounts),
		cmocka_unit_test(test_threads),
		cmocka_unit_test_setup_teardown(test_batch, setup_provider, teardown_provider),
		cmocka_unit_test_setup_teardown(test_batch_concurrent_writer, setup_provider,
		    teardown_provider),
	};
	char krb[600];
	int r;

	if ((ad = provider_lookup("ad")) == NULL) {
		fprintf(stderr, "no ad provider is built in\n");
		return 1;
	}
	if ((lab_dir = getenv("LAB_DIR")) == NULL || *lab_dir == '\0') {
		fprintf(stderr, "LAB_DIR is not set: start the lab with scripts/lab/samba.sh "
		    "up DIR and export the variables of DIR/env\n");
		return 77;
	}
	lab_url = getenv("LAB_LDAP_URL") != NULL ? getenv("LAB_LDAP_URL") :
	    "ldaps://127.0.0.1";
	lab_ca = lab_env("LAB_CA", "tls/ca.pem");
	lab_pwfile = lab_env("LAB_BIND_PW_FILE", "admin.pw");
	lab_base = getenv("LAB_BASE_DN") != NULL ? getenv("LAB_BASE_DN") : "DC=quell,DC=test";
	lab_bind = getenv("LAB_BIND_DN") != NULL ? getenv("LAB_BIND_DN") :
	    "CN=Administrator,CN=Users,DC=quell,DC=test";
	snprintf(krb, sizeof(krb), "%s/krb5.conf", lab_dir);
	setenv("KRB5_CONFIG", krb, 0);
	setenv("KRB5CCNAME", "MEMORY:", 1);
	/* libldap writes to sockets the server may have closed. */
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	run_tag = (unsigned)(time(NULL) ^ getpid()) & 0xfffff;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	{
		char *argv[] = { "rm", "-rf", tmpdir, NULL };
		char out[256];

		run(argv, NULL, out, sizeof(out));
	}
	return r;
}
