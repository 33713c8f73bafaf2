/*
 * Inventory import: every account a system lists is stored (by system and external
 * id), and an account new to quell gets an identity of its own. Written in batches so
 * a large directory neither holds one long transaction nor all its users in memory.
 */
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/rbac.h"
#include "internal.h"

#define SYNC_BATCH 500

struct sync_ctx {
	struct engine *eng;
	const struct actor *who;
	struct sync_report *rep;
	struct account batch[SYNC_BATCH];
	size_t n;
	struct qerr *e;
	int err;
};

static int
new_identity(struct store_tx *tx, const struct actor *who, struct account *a,
    struct qerr *e)
{
	struct identity idn;
	char id[ID_LEN];
	json_t *d;
	int r;

	memset(&idn, 0, sizeof(idn));
	idn.created_at = a->created_at;
	id_make(id, "idn", idn.created_at);
	idn.id = id;
	idn.display_name = a->display_name ? a->display_name :
	    a->username ? a->username : a->external_id;
	if ((r = store_identity_insert(tx, &idn, e)) != 0 ||
	    (r = store_account_link(tx, a->id, id, e)) != 0)
		return r;
	d = json_pack("{s:s, s:s, s:s, s:s}", "account_id", a->id, "system", a->system,
	    "external_id", a->external_id, "rule", "sync: new account");
	r = engine_audit_tx(tx, who->name, "identity.created", NULL, NULL, id, d, e);
	json_decref(d);
	return r;
}

static int
flush(struct sync_ctx *c)
{
	struct store_tx *tx = NULL;
	struct account cur;
	size_t i;
	int r;

	if (c->n == 0)
		return 0;
	if ((r = store_tx_begin(c->eng->st, true, &tx, c->e)) != 0)
		goto out;
	for (i = 0; i < c->n; i++) {
		memset(&cur, 0, sizeof(cur));
		if ((r = store_account_upsert(tx, &c->batch[i], c->e)) != 0 ||
		    (r = store_account_get(tx, c->batch[i].id, &cur, c->e)) != 0)
			goto out;
		if (cur.created_at == c->batch[i].created_at)
			c->rep->created++;
		if (cur.identity_id == NULL) {
			if ((r = new_identity(tx, c->who, &cur, c->e)) != 0) {
				account_clear(&cur);
				goto out;
			}
			c->rep->identities++;
		}
		account_clear(&cur);
	}
	r = store_tx_commit(tx, c->e);
	tx = NULL;
out:
	store_tx_rollback(tx);
	for (i = 0; i < c->n; i++)
		account_clear(&c->batch[i]);
	c->n = 0;
	return r;
}

static int
on_account(const struct account *acct, void *arg)
{
	struct sync_ctx *c = arg;
	struct account *a = &c->batch[c->n];
	int64_t now = engine_now_ms();
	char id[ID_LEN];

	c->rep->seen++;
	if (acct->external_id == NULL || acct->external_id[0] == '\0') {
		c->rep->skipped++;
		return 0;
	}
	if (account_copy(a, acct) != 0) {
		c->err = qerr_set(c->e, QERR_NOMEM, NULL, "out of memory");
		return 1;
	}
	id_make(id, "acc", now);
	free(a->id);
	free(a->identity_id);
	a->identity_id = NULL;
	a->id = strdup(id);
	a->created_at = now;
	a->state_read_at = now;
	c->n++;
	if (c->n == SYNC_BATCH && (c->err = flush(c)) != 0)
		return 1;
	return 0;
}

static void
audit_sync(struct engine *eng, const struct actor *who, const char *system,
    const struct sync_report *rep, int r, const struct qerr *e)
{
	struct qerr e2;
	char *text;
	json_t *d;

	d = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s}", "system", system, "seen",
	    (json_int_t)rep->seen, "new_accounts", (json_int_t)rep->created, "identities",
	    (json_int_t)rep->identities, "skipped", (json_int_t)rep->skipped, "result",
	    r == 0 ? "ok" : e->msg);
	text = json_dumps(d, JSON_COMPACT);
	engine_audit(eng, who->name, r == 0 ? "sync.completed" : "sync.failed", NULL, text,
	    &e2);
	free(text);
	json_decref(d);
}

int
engine_sync(struct engine *eng, const struct actor *who, const char *system,
    struct sync_report *rep, struct qerr *e)
{
	struct engine_system *sys = engine_find_system(eng, system);
	struct sync_ctx *c;
	int r;

	memset(rep, 0, sizeof(*rep));
	if ((who->perms & PERM_IDENTITIES_MANAGE) == 0)
		return qerr_set(e, QERR_DENIED, NULL, "'%s' holds no role that grants %s",
		    who->name, rbac_perm_name(PERM_IDENTITIES_MANAGE));
	if (sys == NULL)
		return qerr_set(e, QERR_NOT_FOUND, "system", "no identity system '%s'",
		    system);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	c->eng = eng;
	c->who = who;
	c->rep = rep;
	c->e = e;
	r = provider_list_accounts(sys->ops, sys->p, on_account, c, e);
	if (c->err != 0)
		r = c->err;
	if (r == 0)
		r = flush(c);
	while (c->n > 0)
		account_clear(&c->batch[--c->n]);
	free(c);
	audit_sync(eng, who, system, rep, r, e);
	return r;
}
