/*
 * API tokens: "qt_<24 hex>.<43 base64url>", 256 random bits after the dot. The id
 * before the dot finds the row; the SHA-256 of the whole token is stored and compared
 * in constant time, so a database reader learns no usable token.
 *
 * A token's revocation lives in its row and is read on every request, so a
 * revocation made through any node holds on every node at the next request: there
 * is no cache to wait out. What a token stands for (its principal and expiry) never
 * changes, so a token verified once is known again by a keyed BLAKE2b of it, without
 * SHA-256 or reading its row whole. Its last use is written at most once a minute
 * per token, so that authenticating does not cost a synchronous commit per request.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "api.h"
#include "core/id.h"
#include "core/log.h"
#include "core/rbac.h"

#define SECRET_BYTES 32
/* last_used_at is this coarse: the list says "used in the last minute", no finer. */
#define TOUCH_GAP_MS 60000
/* Tokens remembered as verified; a slot is taken over by the next token mapped to it. */
#define VERIFIED_SLOTS 128

struct verified {
	unsigned char key[crypto_generichash_BYTES];
	bool used;
	struct principal p;
	int64_t expires_at;
};

/* The key is random per process: a key of one token tells nothing outside it. */
static struct {
	pthread_mutex_t mu;
	pthread_once_t once;
	unsigned char k[crypto_generichash_KEYBYTES];
	struct verified slot[VERIFIED_SLOTS];
} verified = { .mu = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT };

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

/* A span as the configuration would write it: the largest unit that divides it. */
static const char *
span_text(int64_t ms, char buf[32])
{
	if (ms % 86400000 == 0)
		snprintf(buf, 32, "%lldd", (long long)(ms / 86400000));
	else if (ms % 3600000 == 0)
		snprintf(buf, 32, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(buf, 32, "%lldm", (long long)(ms / 60000));
	else
		snprintf(buf, 32, "%llds", (long long)(ms / 1000));
	return buf;
}

int
auth_token_lifetime(const struct config *cfg, const char *expires, const char *field,
    int64_t *life_ms, struct qerr *e)
{
	int64_t max = cfg->token_max_lifetime_ms;
	char buf[32];

	/* Not asked: the configured maximum is the default (0, none, without one). */
	*life_ms = max;
	if (expires == NULL)
		return 0;
	if (config_duration(expires, 1000, CONFIG_TOKEN_LIFETIME_MAX_MS, life_ms) != 0) {
		*life_ms = 0;
		return qerr_set(e, QERR_INVALID, field,
		    "%s must be a span from 1s to 3650d: a whole number and s, m, h or d "
		    "such as 30d, 12h, 90m (got '%.40s')", field, expires);
	}
	if (max != 0 && *life_ms > max) {
		*life_ms = 0;
		return qerr_set(e, QERR_INVALID, field,
		    "%s %.40s is longer than this server allows (token_max_lifetime = %s)",
		    field, expires, span_text(max, buf));
	}
	return 0;
}

int
auth_token_create(struct store *st, const struct actor *who, const char *name,
    const char *role, char *const *scope, size_t nscope, int64_t life_ms,
    char **token, int64_t *expires_at, struct qerr *e)
{
	unsigned char secret[SECRET_BYTES], hash[32];
	char id[ID_LEN], *tok = NULL;
	struct store_tx *tx = NULL;
	struct token_info t;
	json_t *d = NULL;
	size_t i, idlen, b64len = sodium_base64_ENCODED_LEN(SECRET_BYTES,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	int r = QERR_NOMEM;

	memset(&t, 0, sizeof(t));
	/* Entries by a token so named would read as quell's own. */
	if (rbac_reserved_name(name))
		return qerr_set(e, QERR_INVALID, "name", "name '%s' is reserved for quell's "
		    "own principals: choose another", name);
	t.p.created_at = engine_now_ms();
	/* From the very creation time, so expires_at - created_at is what was asked. */
	t.expires_at = life_ms != 0 ? t.p.created_at + life_ms : 0;
	id_make(id, "qt", t.p.created_at);
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
	t.p.id = id;
	t.p.name = (char *)name;
	t.p.role = (char *)role;
	t.p.scope = (char **)scope;
	t.p.nscope = nscope;
	/* The audit entry names the token by its id, never by any part of its secret. */
	if ((d = json_pack("{s:s, s:s, s:s, s:o, s:I}", "token_id", id, "name", name,
	    "role", role, "scope", json_array(), "expires_at",
	    (json_int_t)t.expires_at)) != NULL)
		for (i = 0; i < nscope; i++)
			json_array_append_new(json_object_get(d, "scope"),
			    json_string(scope[i]));
	if (d == NULL)
		goto out;
	if ((r = store_tx_begin(st, true, &tx, e)) != 0)
		goto out;
	if ((r = store_token_insert(tx, &t, hash, e)) != 0 ||
	    (r = engine_audit_tx_as(tx, who, "token.created", NULL, NULL, NULL, d,
	    e)) != 0)
		goto out;
	r = store_tx_commit(tx, e);
	tx = NULL;
	if (r == 0) {
		*token = tok;
		tok = NULL;
		if (expires_at != NULL)
			*expires_at = t.expires_at;
	}
out:
	if (r == QERR_NOMEM)
		qerr_set(e, r, NULL, "out of memory");
	store_tx_rollback(tx);
	sodium_memzero(hash, sizeof(hash));
	json_decref(d);
	auth_token_free(tok);
	return r;
}

static void
verified_init(void)
{
	randombytes_buf(verified.k, sizeof(verified.k));
}

static void
verified_key(const char *token, unsigned char key[crypto_generichash_BYTES])
{
	pthread_once(&verified.once, verified_init);
	crypto_generichash(key, crypto_generichash_BYTES, (const unsigned char *)token,
	    strlen(token), verified.k, sizeof(verified.k));
}

static struct verified *
verified_slot(const unsigned char *key)
{
	return &verified.slot[(key[0] | (unsigned)key[1] << 8) % VERIFIED_SLOTS];
}

/* A deep copy of src into dst (cleared on failure); 0 or QERR_NOMEM. */
static int
principal_copy(struct principal *dst, const struct principal *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	dst->created_at = src->created_at;
	if ((src->id && (dst->id = strdup(src->id)) == NULL) ||
	    (src->name && (dst->name = strdup(src->name)) == NULL) ||
	    (src->role && (dst->role = strdup(src->role)) == NULL) ||
	    (src->nscope && (dst->scope = calloc(src->nscope, sizeof(char *))) == NULL))
		goto fail;
	for (i = 0; i < src->nscope; i++, dst->nscope++)
		if ((dst->scope[i] = strdup(src->scope[i])) == NULL)
			goto fail;
	return 0;
fail:
	principal_clear(dst);
	return QERR_NOMEM;
}

/* The principal (a copy, caller clears) and expiry of the token with key; false if
 * it was not verified lately. */
static bool
verified_get(const unsigned char *key, struct principal *p, int64_t *expires_at)
{
	struct verified *v;
	bool hit;

	pthread_mutex_lock(&verified.mu);
	v = verified_slot(key);
	hit = v->used && sodium_memcmp(v->key, key, sizeof(v->key)) == 0 &&
	    principal_copy(p, &v->p) == 0;
	if (hit)
		*expires_at = v->expires_at;
	pthread_mutex_unlock(&verified.mu);
	return hit;
}

static void
verified_put(const unsigned char *key, const struct principal *p, int64_t expires_at)
{
	struct principal copy;
	struct verified *v;

	if (principal_copy(&copy, p) != 0)
		return;
	pthread_mutex_lock(&verified.mu);
	v = verified_slot(key);
	principal_clear(&v->p);
	memcpy(v->key, key, sizeof(v->key));
	v->p = copy;
	v->expires_at = expires_at;
	v->used = true;
	pthread_mutex_unlock(&verified.mu);
}

/* Why a token whose secret matched is refused, if it is. Revoked wins over expired:
 * it is the more telling reason. */
static int
token_refused(const char *id, int64_t revoked_at, int64_t expires_at, int64_t now,
    struct qerr *e)
{
	if (revoked_at != 0)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "token revoked (%s)", id);
	if (expires_at != 0 && now >= expires_at)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "token expired (%s)", id);
	return 0;
}

/* Records that token id was used at now, unless that was done less than a minute
 * ago. A failure costs only the record: the request itself goes on. */
static void
touch(struct store *st, const char *id, int64_t now)
{
	struct store_tx *tx = NULL;
	struct qerr e;
	bool written = false;
	int r;

	qerr_clear(&e);
	if ((r = store_tx_begin(st, true, &tx, &e)) == 0 &&
	    (r = store_token_touch(tx, id, now, TOUCH_GAP_MS, &written, &e)) == 0 &&
	    written) {
		r = store_tx_commit(tx, &e);
		tx = NULL;
	}
	/* Another request or node wrote it first: nothing to commit. */
	store_tx_rollback(tx);
	if (r != 0)
		log_msg(LOG_LVL_WARN, "token %s: last use not recorded: %s", id, e.msg);
}

/* auth_token_principal, telling the token's expiry too. */
static int
token_principal(struct store *st, const char *id, const unsigned char hash[32],
    struct principal *p, int64_t *expires_at, struct qerr *e)
{
	unsigned char stored[32];
	struct store_tx *tx = NULL;
	struct token_info t;
	int64_t now = engine_now_ms();
	int r;

	memset(p, 0, sizeof(*p));
	if ((r = store_tx_begin(st, false, &tx, e)) != 0)
		return r;
	r = store_token_get(tx, id, &t, stored, e);
	store_tx_rollback(tx);
	if (r != 0)
		return r;
	/*
	 * The secret is compared before the token's state is told: whoever does not
	 * hold it learns nothing about the id, not even whether it was revoked, and
	 * leaves no trace in its last use.
	 */
	if (sodium_memcmp(stored, hash, sizeof(stored)) != 0)
		r = qerr_set(e, QERR_NOT_FOUND, "token", "no such token");
	else
		r = token_refused(id, t.revoked_at, t.expires_at, now, e);
	sodium_memzero(stored, sizeof(stored));
	if (r != 0) {
		token_info_clear(&t);
		return r;
	}
	if (now - t.last_used_at >= TOUCH_GAP_MS)
		touch(st, id, now);
	*p = t.p;
	*expires_at = t.expires_at;
	memset(&t.p, 0, sizeof(t.p));
	token_info_clear(&t);
	return 0;
}

int
auth_token_principal(struct store *st, const char *id, const unsigned char hash[32],
    struct principal *p, struct qerr *e)
{
	int64_t expires_at;

	return token_principal(st, id, hash, p, &expires_at, e);
}

/* For a token verified before: whether it is still good (the store says whether it
 * was revoked since) and its use recorded. */
static int
token_still_good(struct store *st, const char *id, int64_t expires_at, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int64_t now = engine_now_ms(), revoked_at = 0, last_used_at = 0;
	int r;

	if ((r = store_tx_begin(st, false, &tx, e)) != 0)
		return r;
	r = store_token_state(tx, id, &revoked_at, &last_used_at, e);
	store_tx_rollback(tx);
	if (r != 0 || (r = token_refused(id, revoked_at, expires_at, now, e)) != 0)
		return r;
	if (now - last_used_at >= TOUCH_GAP_MS)
		touch(st, id, now);
	return 0;
}

int
auth_token_check(struct store *st, const char *token, struct principal *p,
    struct qerr *e)
{
	unsigned char got[32], key[crypto_generichash_BYTES];
	char id[ID_LEN];
	const char *dot = strchr(token, '.');
	int64_t expires_at = 0;
	size_t idlen;
	int r;

	memset(p, 0, sizeof(*p));
	if (dot == NULL || (idlen = (size_t)(dot - token)) >= sizeof(id) ||
	    strlen(dot + 1) != 43)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed token");
	memcpy(id, token, idlen);
	id[idlen] = '\0';
	if (!id_valid(id, "qt"))
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "malformed token");
	verified_key(token, key);
	if (verified_get(key, p, &expires_at)) {
		if ((r = token_still_good(st, id, expires_at, e)) != 0)
			principal_clear(p);
	} else {
		token_hash(token, got);
		if ((r = token_principal(st, id, got, p, &expires_at, e)) == 0)
			verified_put(key, p, expires_at);
		sodium_memzero(got, sizeof(got));
	}
	sodium_memzero(key, sizeof(key));
	if (r == QERR_NOT_FOUND)
		return qerr_set(e, QERR_UNAUTHENTICATED, NULL, "unknown token");
	return r;
}

int
auth_token_revoke(struct store *st, const struct actor *who, const char *id, const char *reason, struct token_info *out, struct qerr *e)
{
	unsigned char hash[32];
	struct store_tx *tx = NULL;
	json_t *d = NULL;
	int64_t now = engine_now_ms();
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = store_tx_begin(st, true, &tx, e)) != 0)
		return r;
	if ((r = store_token_revoke(tx, id, now, who->name, e)) != 0 ||
	    (r = store_token_get(tx, id, out, hash, e)) != 0)
		goto out;
	/* Whose token it was, so the entry reads on its own. */
	r = QERR_NOMEM;
	if ((d = json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "token_id", id, "name",
	    out->p.name ? out->p.name : "", "role", out->p.role ? out->p.role : "",
	    "revoked_by_id", who->id, "reason", reason)) == NULL)
		goto out;
	if ((r = engine_audit_tx_as(tx, who, "token.revoked", NULL, NULL, NULL, d,
	    e)) != 0)
		goto out;
	r = store_tx_commit(tx, e);
	tx = NULL;
out:
	if (r == QERR_NOMEM)
		qerr_set(e, r, NULL, "out of memory");
	store_tx_rollback(tx);
	sodium_memzero(hash, sizeof(hash));
	if (r != 0)
		token_info_clear(out);
	json_decref(d);
	return r;
}
