/*
 * What a domain controller answers, as the AD provider reads it: the bytes of the
 * server's messages on a socket whose other end is the provider's LDAP handle
 * (ad_int.h's seam; no server), to a batch of steps, a listing or a listing of
 * changes. The first byte picks the call (and a batch's size); the rest is sent as
 * is, then the end of the stream, so an answer left short ends the call at once.
 * Each step settles with a message, a success in the state it asked for; accounts
 * handed on have an objectGUID's text and a state; a listing of changes that
 * succeeds hands on its next cursor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ldap.h>

#include "core/ldapesc.h"
#include "core/log.h"
#include "fuzz.h"
#include "providers/ad_int.h"
#include "providers/kit.h"

/* Exported by libldap (OPENLDAP_2.5) for its own tools, with no installed
 * declaration: a handle on a socket already connected. */
int ldap_init_fd(ber_socket_t fd, int proto, const char *url, LDAP **ldp);
#define FUZZ_LDAP_PROTO_TCP 1

/* The steps of a batch: distinct objectGUIDs in their text form. */
static const char *const refs[] = { "6f0e3c2a-1b4d-4e5f-8a9b-0c1d2e3f4a5b",
	"00112233-4455-6677-8899-aabbccddeeff", "0a0b0c0d-0e0f-1011-1213-141516171819",
	"deadbeef-0000-1111-2222-333344445555" };

static const struct provider_ops *ad;
static struct config cfg;
static char secret_path[] = "/tmp/quell-fuzz-secret.XXXXXX";

int LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__lsan_default_suppressions(void);
const char *__asan_default_options(void);

/*
 * libldap 2.5 leaks on some malformed answers, inside ldap_result and out of the
 * caller's reach: the diagnostic text of an unsolicited notification (message id 0,
 * corpus/ldap_resp/notice), and the request of an answer longer than its bytes
 * (corpus/ldap_resp/bad-length). Only those are let through: strings it reads with
 * ber_scanf's "A" (ad.c reads none that way) and requests, which ad.c never holds.
 * Matching them needs the whole stack of each allocation (libldap is built without
 * frame pointers), hence the slow unwinder.
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:ber_get_stringa_null\nleak:ldap_send_server_request\n";
}

const char *
__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

static void
quiet(const struct log_record *rec)
{
	(void)rec;
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
	char conf[1024];
	struct qerr e;
	int fd;

	(void)argc, (void)argv;
	log_set_sink(quiet, LOG_LVL_ERROR);
	fuzz_check((fd = mkstemp(secret_path)) >= 0 && write(fd, "fuzz-secret\n", 12) == 12 &&
	    close(fd) == 0, "the secret file");
	/* Nothing listens on port 1: a connection the provider drops is not made again. */
	snprintf(conf, sizeof(conf),
	    "[system \"corp\"]\nkind = ad\nurl = ldap://127.0.0.1:1\n"
	    "base_dn = DC=corp,DC=test\nbind_dn = CN=quell,DC=corp,DC=test\n"
	    "password_file = %s\nallow_plaintext = yes\ntimeout = 5\npage_size = 2\n",
	    secret_path);
	fuzz_check(config_parse("fuzz.conf", conf, &cfg, &e) == 0, e.msg);
	fuzz_check((ad = provider_lookup("ad")) != NULL, "the AD provider is built in");
	atexit(cleanup);
	return 0;
}

static int
on_account(const struct account *a, void *arg)
{
	unsigned char guid[LDAPESC_GUID_LEN];

	(void)arg;
	fuzz_check(a->external_id != NULL &&
	    ldapesc_guid_from_text(a->external_id, guid) == 0,
	    "an account handed on has an objectGUID");
	fuzz_check(a->username != NULL && a->sid != NULL && a->state != NULL &&
	    (strcmp(a->state, "enabled") == 0 || strcmp(a->state, "disabled") == 0),
	    "an account handed on has a name, a SID and a state");
	return 0;
}

static void
check_result(const struct step *s, const struct step_result *r)
{
	fuzz_check(r->outcome <= STEP_OUTCOME_PERMANENT && r->message[0] != '\0' &&
	    memchr(r->message, '\0', sizeof(r->message)) != NULL,
	    "a step settles with a message");
	if (r->outcome != STEP_OUTCOME_SUCCEEDED)
		return;
	if (s->type == ACTION_DISABLE)
		fuzz_check(strcmp(r->state, "disabled") == 0, "a disable ends disabled");
	if (s->type == ACTION_ENABLE)
		fuzz_check(strcmp(r->state, "enabled") == 0, "an enable ends enabled");
}

/* Steps of one type: disable, enable, force a change, undo one, force and clear. */
static void
batch(struct provider *p, unsigned op, size_t n)
{
	static const enum action_type types[] = { ACTION_DISABLE, ACTION_ENABLE,
		ACTION_FORCE_PASSWORD_CHANGE, ACTION_FORCE_PASSWORD_CHANGE,
		ACTION_FORCE_PASSWORD_CHANGE };
	static const char *const params[] = { "{}", "{}", "{}", "{\"undo\":true}",
		"{\"clear_dont_expire\":true}" };
	struct step steps[4];
	const struct step *ptrs[4];
	struct step_result res[4];
	size_t i;

	memset(steps, 0, sizeof(steps));
	for (i = 0; i < n; i++) {
		steps[i].account_ref = (char *)refs[i];
		steps[i].type = types[op];
		steps[i].params = (char *)params[op];
		ptrs[i] = &steps[i];
	}
	fuzz_check(provider_execute_batch(ad, p, ptrs, n, res) == 0,
	    "a batch records its steps' results");
	for (i = 0; i < n; i++)
		check_result(&steps[i], &res[i]);
}

static void
call(struct provider *p, unsigned sel)
{
	char *next = NULL;
	bool full = false;
	struct qerr e;

	qerr_clear(&e);
	switch (sel % 8) {
	case 5:
		if (provider_list_accounts(ad, p, on_account, NULL, &e) != 0)
			fuzz_check(e.msg[0] != '\0', "a failed listing says why");
		break;
	case 6:
	case 7:
		if (provider_list_changes(ad, p,
		    sel % 8 == 7 ? "ad1 5 CN=NTDS Settings,CN=DC1" : NULL, on_account, NULL,
		    &next, &full, &e) == 0)
			fuzz_check(next != NULL && strncmp(next, "ad1 ", 4) == 0,
			    "a listing of changes hands on its cursor");
		else
			fuzz_check(next == NULL && e.msg[0] != '\0', "a failed listing says why");
		free(next);
		break;
	default:
		batch(p, sel % 8, 1 + (sel / 8) % 4);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct provider *p = NULL;
	LDAP *ld = NULL;
	int sv[2], v3 = LDAP_VERSION3;
	struct qerr e;

	if (size < 1 || size > 65536)
		return 0;
	qerr_clear(&e);
	fuzz_check(provider_open(ad, &cfg.systems[0], &p, &e) == 0, e.msg);
	/* The answers fit the socket's buffer: written before the call, then the end. */
	fuzz_check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "a socket pair");
	fuzz_check(size == 1 || write(sv[1], data + 1, size - 1) == (ssize_t)(size - 1),
	    "the answers sent");
	shutdown(sv[1], SHUT_WR);
	fuzz_check(ldap_init_fd(sv[0], FUZZ_LDAP_PROTO_TCP, "ldap://127.0.0.1:1", &ld) ==
	    LDAP_SUCCESS && ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) ==
	    LDAP_SUCCESS, "an LDAP handle on the socket");
	ad_adopt(p, ld);
	call(p, data[0]);
	provider_close(ad, p);
	close(sv[1]);
	return 0;
}
