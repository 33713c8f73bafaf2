/* Canonical form and SHA-256 chaining of audit entries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "audit.h"

const char audit_genesis[65] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static int
set_str(json_t *o, const char *k, const char *v)
{
	return json_object_set_new(o, k, v ? json_string(v) : json_null());
}

char *
audit_canonical(const struct audit_entry *ent)
{
	json_t *o = NULL, *detail = NULL;
	char *out = NULL;

	if (ent->detail != NULL && ent->detail[0] != '\0') {
		detail = json_loads(ent->detail, JSON_REJECT_DUPLICATES, NULL);
		if (detail == NULL || !json_is_object(detail))
			goto out;
	} else
		detail = json_object();
	if ((o = json_object()) == NULL)
		goto out;
	if (json_object_set_new(o, "seq", json_integer(ent->seq)) ||
	    json_object_set_new(o, "time", json_integer(ent->time)) ||
	    set_str(o, "actor", ent->actor) || set_str(o, "event", ent->event) ||
	    set_str(o, "action_id", ent->action_id) ||
	    set_str(o, "step_id", ent->step_id) ||
	    set_str(o, "identity_id", ent->identity_id) ||
	    json_object_set(o, "detail", detail))
		goto out;
	if (ent->format >= 2 &&
	    (json_object_set_new(o, "v", json_integer(ent->format)) ||
	    set_str(o, "actor_kind", ent->actor_kind) ||
	    set_str(o, "actor_id", ent->actor_id) || set_str(o, "client", ent->client)))
		goto out;
	out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
out:
	json_decref(detail);
	json_decref(o);
	return out;
}

static int
hash_hex(const char *prev, const char *canon, char out[65])
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)prev, strlen(prev));
	crypto_hash_sha256_update(&st, (const unsigned char *)canon, strlen(canon));
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(out, 65, h, sizeof(h));
	return 0;
}

/*
 * The entry's hash after prev. jansson's parser can lose a byte of a string when an
 * allocation inside it fails and still succeed (its lexer ignores the failure), so
 * the canonical form is computed twice: two that differ, or only one, mean memory
 * ran out (QERR_NOMEM), not that the entry is bad (QERR_INVALID: neither parses).
 */
static int
entry_hash(const struct audit_entry *ent, const char *prev, char out[65])
{
	char *one = audit_canonical(ent), *two = audit_canonical(ent);
	int r = QERR_NOMEM;

	if (one == NULL && two == NULL)
		r = QERR_INVALID;
	else if (one != NULL && two != NULL && strcmp(one, two) == 0) {
		hash_hex(prev, one, out);
		r = 0;
	}
	free(one);
	free(two);
	return r;
}

int
audit_seal(struct audit_entry *ent, const char *prev, struct qerr *e)
{

	char h[65];
	int r;

	if (strlen(prev) != 64)
		return qerr_set(e, QERR_INTERNAL, NULL, "audit: bad previous hash");
	if ((r = entry_hash(ent, prev, h)) == QERR_INVALID)
		return qerr_set(e, QERR_INVALID, "detail", "audit detail is not a JSON object");
	if (r != 0)
		return qerr_set(e, QERR_NOMEM, NULL, "audit: out of memory");
	memcpy(ent->prev_hash, prev, 65);
	memcpy(ent->hash, h, sizeof(h));
	return 0;
}

int
audit_check(const struct audit_entry *ent, const char *prev, int64_t expect_seq,
    struct qerr *e)
{
	char h[65];
	int r;

	if (ent->seq != expect_seq)
		return qerr_set(e, QERR_CONFLICT, NULL,
		    "entry %lld: expected sequence number %lld (an entry is missing)",
		    (long long)ent->seq, (long long)expect_seq);
	if (strcmp(ent->prev_hash, prev) != 0)
		return qerr_set(e, QERR_CONFLICT, NULL,
		    "entry %lld: prev_hash does not match the hash of entry %lld",
		    (long long)ent->seq, (long long)ent->seq - 1);
	if ((r = entry_hash(ent, prev, h)) == QERR_INVALID)
		return qerr_set(e, QERR_CONFLICT, NULL,
		    "entry %lld: detail is not a JSON object", (long long)ent->seq);
	if (r != 0)
		return qerr_set(e, QERR_NOMEM, NULL,
		    "entry %lld: out of memory while checking it", (long long)ent->seq);
	if (sodium_memcmp(h, ent->hash, 64) != 0)
		return qerr_set(e, QERR_CONFLICT, NULL,
		    "entry %lld: content does not match its hash (altered)",
		    (long long)ent->seq);
	return 0;
}
