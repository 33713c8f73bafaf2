/* Routes about the caller and the record: whoami, the audit log and its
 * verification, API tokens. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/audit.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rbac.h"
#include "internal.h"
#include "render.h"

int
route_whoami(struct req *q)
{
	json_t *perms = json_array();
	int i;

	for (i = 0; i < PERM_COUNT; i++)
		if (q->perms & (1u << i))
			json_array_append_new(perms, json_string(rbac_perm_name(1u << i)));
	return req_reply(q, 200, json_pack("{s:s, s:s, s:s?, s:o}", "id", q->who.id,
	    "name", q->who.name, "role", q->who.role, "permissions", perms));
}

static int
add_entry(const struct audit_entry *ent, void *arg)
{
	struct list_ctx *c = arg;

	c->n++;
	return json_array_append_new(c->arr, render_audit(ent));
}

int
route_list_audit(struct req *q)
{
	struct list_ctx c = { json_array(), 0 };
	struct store_tx *tx = NULL;
	const char *after = req_query(q, "after");
	long long seq = 0;
	char *end;
	struct qerr e;
	int limit, r;

	/* Refusals still being counted are written first: a reader misses none. */
	refusals_flush(q->api->eng, true);
	/* Digits only: strtoll alone would take " 5" or "+5". */
	if (after != NULL && (!isdigit((unsigned char)*after) ||
	    (seq = strtoll(after, &end, 10)) < 0 || *end != '\0'))
		req_error(q, 400, "invalid_input", "after",
		    "after must be a sequence number");
	else if (req_limit(q, 100, &limit) != 0)
		;
	else if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_audit_list(tx, seq, limit, add_entry, &c, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		req_reply_page(q, "entries", &c, limit, "seq");
	}
	store_tx_rollback(tx);
	json_decref(c.arr);
	return 0;
}

struct verify_ctx {
	char prev[65];
	int64_t n;
	int64_t broken;
	struct qerr why;
};

static int
verify_entry(const struct audit_entry *ent, void *arg)
{
	struct verify_ctx *v = arg;
	int r;

	/* Only a mismatch is a broken chain; running out of memory is an error. */
	if ((r = audit_check(ent, v->prev, v->n + 1, &v->why)) != 0) {
		if (r == QERR_CONFLICT)
			v->broken = v->n + 1;
		return r;
	}
	memcpy(v->prev, ent->hash, sizeof(v->prev));
	v->n++;
	return 0;
}

/* A verification's result, for operators: a broken chain is an error line and
 * quell_audit_last_verify_ok drops to 0. */
static void
note_verify(struct req *q, bool ok, int64_t n, int64_t broken, const char *why)
{
	QM_SET(QM_AUDIT_VERIFY_OK, ok ? 1 : 0, NULL);
	QM_SET(QM_AUDIT_VERIFY_TIME, (double)time(NULL), NULL);
	log_event(ok ? LOG_LVL_INFO : LOG_LVL_ERROR, "audit.verify", LOG_FIELDS(
	    LOG_B("ok", ok), LOG_I("entries", n), LOG_I("first_broken", broken),
	    LOG_S("reason", why), LOG_S("by", q->who.name)), ok ?
	    "audit chain verified by %s: %lld entries intact" :
	    "audit chain verified by %s: BROKEN at entry %lld", q->who.name ?
	    q->who.name : "?", (long long)(ok ? n : broken));
}

int
route_verify_audit(struct req *q)
{
	struct verify_ctx v;
	struct store_tx *tx = NULL;
	struct qerr e;
	int r;

	memset(&v, 0, sizeof(v));
	memcpy(v.prev, audit_genesis, sizeof(v.prev));
	refusals_flush(q->api->eng, true);
	if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    ((r = store_audit_list(tx, 0, 0, verify_entry, &v, &e)) != 0 && v.broken == 0))
		req_qerr(q, r, v.why.code != 0 ? &v.why : &e);
	else if (v.broken != 0) {
		note_verify(q, false, v.n, v.broken, v.why.msg);
		req_reply(q, 200, json_pack("{s:b, s:I, s:I, s:s}", "ok", 0, "entries",
		    (json_int_t)v.n, "first_broken", (json_int_t)v.broken, "reason",
		    v.why.msg));
	} else {
		note_verify(q, true, v.n, 0, NULL);
		req_reply(q, 200, json_pack("{s:b, s:I, s:s}", "ok", 1, "entries",
		    (json_int_t)v.n, "head", v.prev));
	}
	store_tx_rollback(tx);
	return 0;
}

/*
 * A token as GET /api/v1/tokens shows it: who it stands for and its lifecycle. The
 * hash is not in struct token_info at all, so it cannot end up here.
 */
static json_t *
token_json(const struct token_info *t, int64_t now)
{
	const char *status = t->revoked_at != 0 ? "revoked" :
	    t->expires_at != 0 && now >= t->expires_at ? "expired" : "active";
	json_t *o, *scope = json_array();
	size_t i;

	for (i = 0; scope != NULL && i < t->p.nscope; i++)
		json_array_append_new(scope, json_string(t->p.scope[i]));
	o = json_pack("{s:s, s:s?, s:s?, s:o, s:s, s:o, s:o, s:o, s:b, s:o, s:s?}",
	    "id", t->p.id, "name", t->p.name, "role", t->p.role,
	    "scope", scope ? scope : json_array(), "status", status,
	    "created_at", render_time(t->p.created_at),
	    "last_used_at", render_time(t->last_used_at),
	    "expires_at", render_time(t->expires_at),
	    "revoked", t->revoked_at != 0,
	    "revoked_at", render_time(t->revoked_at),
	    "revoked_by", t->revoked_by);
	return o;
}

struct token_list_ctx {
	struct list_ctx c;
	int64_t now;
};

static int
add_token(const struct token_info *t, void *arg)
{
	struct token_list_ctx *x = arg;

	x->c.n++;
	return json_array_append_new(x->c.arr, token_json(t, x->now));
}

int
route_list_tokens(struct req *q)
{
	struct token_list_ctx x = { { json_array(), 0 }, engine_now_ms() };
	struct store_tx *tx = NULL;
	const char *after = req_query(q, "after");
	struct qerr e;
	int limit, r;

	qerr_clear(&e);
	if (req_check_id(q, "after", after, "qt") != 0 || req_limit(q, 100, &limit) != 0)
		;
	else if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_token_list(tx, after, limit, add_token, &x, &e)) != 0)
		req_qerr(q, r, &e);
	else
		req_reply_page(q, "tokens", &x.c, limit, "id");
	store_tx_rollback(tx);
	json_decref(x.c.arr);
	return 0;
}

int
route_revoke_token(struct req *q)
{
	struct token_info t;
	struct actor who;
	const char *reason;
	struct qerr e;
	json_t *o = NULL;
	int r;

	memset(&t, 0, sizeof(t));
	qerr_clear(&e);
	if (req_check_id(q, "token_id", q->arg[0], "qt") != 0 ||
	    req_optional_reason(q, &o, &reason) != 0)
		goto out;
	req_actor(q, &who);
	if ((r = auth_token_revoke(q->api->st, &who, q->arg[0], reason, &t, &e)) != 0)
		req_qerr(q, r, &e);
	else
		req_reply(q, 200, token_json(&t, engine_now_ms()));
out:
	token_info_clear(&t);
	json_decref(o);
	return 0;
}

int
route_post_token(struct req *q)
{
	static const char *const keys[] = { "name", "role", "scope", "expires_in", NULL };
	const char *name, *role, *expires = NULL;
	unsigned perms;
	char *token = NULL, **scope = NULL;
	size_t nscope = 0;
	int64_t life, expires_at = 0;
	struct actor who;
	struct qerr e;
	json_t *o, *sc;
	int r;

	qerr_clear(&e);
	if ((o = req_json(q)) == NULL)
		return 0;
	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_str(q, o, "name", true, NAME_MAX_LEN, &name) != 0 ||
	    req_field_str(q, o, "role", true, 64, &role) != 0 ||
	    req_tag_list(q, json_object_get(o, "scope"), "scope", &scope, &nscope) != 0 ||
	    req_field_str(q, o, "expires_in", false, 32, &expires) != 0)
		goto out;
	if (!rbac_role_perms(q->api->cfg, role, &perms)) {
		req_error(q, 400, "invalid_input", "role", "unknown role '%s'", role);
		goto out;
	}
	if ((r = auth_token_lifetime(q->api->cfg, expires, "expires_in", &life, &e)) != 0 ||
	    (req_actor(q, &who), r = auth_token_create(q->api->st, &who, name, role, scope,
	    nscope, life, &token, &expires_at, &e)) != 0) {
		req_qerr(q, r, &e);
		goto out;
	}
	sc = json_object_get(o, "scope");
	req_reply(q, 201, json_pack("{s:s%, s:s, s:s, s:s, s:o, s:o}", "id", token,
	    strcspn(token, "."), "name", name, "role", role, "token", token, "scope",
	    sc ? json_incref(sc) : json_array(), "expires_at", render_time(expires_at)));
out:
	free(scope);
	auth_token_free(token);
	json_decref(o);
	return 0;
}
