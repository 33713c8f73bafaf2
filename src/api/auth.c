/*
 * API tokens: "qt_<24 hex>.<43 base64url>", 256 random bits after the dot. The id
 * before the dot finds the row; the SHA-256 of the whole token is stored and compared
 * in constant time, so a database reader learns no usable token.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "api.h"
#include "core/id.h"

#define SECRET_BYTES 32

static void
token_hash(const char *token, unsigned char out[32])
{
	crypto_hash_sha256(out, (const unsigned char *)token, strlen(token));
}

void
auth_token_free(char *token)
{
	if (token == NULL)
		return;
	sodium_memzero(token, strlen(token));
	free(token);
}

int
auth_token_create(struct store *st, const char *actor, const char *name,
    const char *role, char *const *scope, size_t nscope, char **token, struct qerr *e)
{
	unsigned char secret[SECRET_BYTES], hash[32];
	char id[ID_LEN], *tok = NULL, *detail = NULL;
	struct store_tx *tx = NULL;
	struct principal p;
	struct audit_entry ent;
	json_t *d;
	size_t i, idlen, b64len = sodium_base64_ENCODED_LEN(SECRET_BYTES,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	int r = QERR_NOMEM;

	memset(&p, 0, sizeof(p));
	memset(&ent, 0, sizeof(ent));
	p.created_at = engine_now_ms();
	id_make(id, "qt", p.created_at);
	idlen = strlen(id);
	if ((tok = malloc(idlen + 1 + b64len)) == NULL)
		goto out;
	randombytes_buf(secret, sizeof(secret));
	memcpy(tok, id, idlen);
	tok[idlen] = '.';
	sodium_bin2base64(tok + idlen + 1, b64len, secret, sizeof(secret),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(secret, sizeof(secret));
	token_hash(tok, hash);
	p.id = id;
	p.name = (char *)name;
	p.role = (char *)role;
	p.scope = (char **)scope;
	p.nscope = nscope;
	if ((d = json_pack("{s:s, s:s, s:s, s:o}", "token_id", id, "name", name, "role",
	    role, "scope", json_array())) != NULL) {
		for (i = 0; i < nscope; i++)
			json_array_append_new(json_object_get(d, "scope"),
			    json_string(scope[i]));
		detail = json_dumps(d, JSON_COMPACT);
	}
	json_decref(d);
	if (detail == NULL)
		goto out;
	ent.time = p.created_at;
	ent.actor = (char *)actor;
	ent.event = "token.created";
	ent.detail = detail;
	if ((r = store_tx_begin(st, true, &tx, e)) != 0)
		goto out;
	if ((r = store_token_insert(tx, &p, hash, e)) != 0 ||
	    (r = store_audit_append(tx, &ent, e)) != 0)
		goto out;
	r = store_tx_commit(tx, e);
	tx = NULL;
	if (r == 0) {
		*token = tok;
		tok = NULL;
	}
out:
	if (r == QERR_NOMEM)
		qerr_set(e, r, NULL, "out of memory");
	store_tx_rollback(tx);
	free(detail);
	auth_token_free(tok);
	return r;
}

int
auth_token_check(struct store *st, const char *token, struct principal *p,
    struct qerr *e)
{
	unsigned char want[32], got[32];
	struct store_tx *tx = NULL;
	char id[ID_LEN];
	const char *dot = strchr(token, '.');
	size_t idlen;
	int r;

	if (dot == NULL || (idlen = (size_t)(dot - token)) >= sizeof(id) ||
	    strlen(dot + 1) != 43)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed token");
	memcpy(id, token, idlen);
	id[idlen] = '\0';
	if (!id_valid(id, "qt"))
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed token");
	if ((r = store_tx_begin(st, false, &tx, e)) != 0)
		return r;
	r = store_token_get(tx, id, p, want, e);
	store_tx_rollback(tx);
	if (r == QERR_NOT_FOUND)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "unknown token");
	if (r != 0)
		return r;
	token_hash(token, got);
	if (sodium_memcmp(got, want, sizeof(got)) != 0) {
		principal_clear(p);
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "unknown token");
	}
	return 0;
}
