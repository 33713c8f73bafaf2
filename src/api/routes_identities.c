/* Routes of identities and their accounts: list, show, create, tags, links, and the
 * configured identity systems. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "core/text.h"
#include "internal.h"
#include "render.h"

static int
add_identity(const struct identity *i, void *arg)
{
	struct list_ctx *c = arg;

	c->n++;
	return json_array_append_new(c->arr, render_identity(i));
}

int
route_list_identities(struct req *q)
{
	struct identity_filter f;
	struct list_ctx c = { json_array(), 0 };
	struct store_tx *tx = NULL;
	struct qerr e;
	int r;

	memset(&f, 0, sizeof(f));
	f.query = req_query(q, "q");
	f.after_id = req_query(q, "after");
	if (f.query != NULL && (!text_printable(f.query, false) || strlen(f.query) > 256))
		req_error(q, 400, "invalid_input", "q",
		    "q must be printable text of at most 256 bytes");
	else if (req_check_id(q, "after", f.after_id, "idn") != 0 ||
	    req_limit(q, 50, &f.limit) != 0)
		;
	else if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_identity_list(tx, &f, add_identity, &c, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		req_reply_page(q, "identities", &c, f.limit, "id");
	}
	store_tx_rollback(tx);
	json_decref(c.arr);
	return 0;
}

static int
reply_identity(struct req *q, const char *id)
{
	struct store_tx *tx = NULL;
	struct identity i;
	struct qerr e;
	int r;

	memset(&i, 0, sizeof(i));
	if ((r = store_tx_begin(q->api->st, false, &tx, &e)) != 0 ||
	    (r = store_identity_get(tx, id, &i, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no identity %s", id);
		req_qerr(q, r, &e);
	} else
		req_reply(q, 200, render_identity(&i));
	store_tx_rollback(tx);
	identity_clear(&i);
	return 0;
}

int
route_get_identity(struct req *q)
{
	if (req_check_id(q, "identity_id", q->arg[0], "idn") != 0)
		return 0;
	return reply_identity(q, q->arg[0]);
}

/* Gives i copies of tags (borrowed). */
static int
own_tags(struct identity *i, char *const *tags, size_t ntags)
{
	size_t k;

	if (ntags == 0)
		return 0;
	if ((i->tags = calloc(ntags, sizeof(*i->tags))) == NULL)
		return QERR_NOMEM;
	for (k = 0; k < ntags; k++) {
		if ((i->tags[k] = strdup(tags[k])) == NULL)
			return QERR_NOMEM;
		i->ntags = k + 1;
	}
	return 0;
}

static int
set_tags(struct store_tx *tx, struct identity *i, char *const *tags, size_t ntags,
    struct qerr *e)
{
	size_t k;

	for (k = 0; k < i->ntags; k++)
		free(i->tags[k]);
	free(i->tags);
	i->tags = NULL;
	i->ntags = 0;
	if (own_tags(i, tags, ntags) != 0)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	return store_identity_update(tx, i, e);
}

static int
parse_tags(struct req *q, json_t *o, struct identity *i)
{
	char **tags = NULL;
	size_t n = 0;
	int r;

	if ((r = req_tag_list(q, json_object_get(o, "tags"), "tags", &tags, &n)) == 0 &&
	    own_tags(i, tags, n) != 0) {
		req_error(q, 500, "internal", NULL, "out of memory");
		r = -1;
	}
	free(tags);
	return r;
}

int
route_post_identity(struct req *q)
{
	static const char *const keys[] = { "display_name", "tags", NULL };
	struct store_tx *tx = NULL;
	struct identity i;
	struct actor who;
	char id[ID_LEN];
	const char *name;
	json_t *o, *d;
	struct qerr e;
	int r;

	memset(&i, 0, sizeof(i));
	if ((o = req_json(q)) == NULL)
		return 0;
	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_field_str(q, o, "display_name", true, NAME_MAX_LEN, &name) != 0 ||
	    parse_tags(q, o, &i) != 0)
		goto out;
	i.created_at = engine_now_ms();
	id_make(id, "idn", i.created_at);
	i.id = strdup(id);
	i.display_name = strdup(name);
	req_actor(q, &who);
	d = json_pack("{s:s, s:O}", "display_name", name, "tags",
	    json_object_get(o, "tags") ? json_object_get(o, "tags") : json_array());
	if ((r = store_tx_begin(q->api->st, true, &tx, &e)) != 0 ||
	    (r = store_identity_insert(tx, &i, &e)) != 0 ||
	    (r = engine_audit_tx_as(tx, &who, "identity.created", NULL, NULL, id, d,
	    &e)) != 0 || (r = store_tx_commit(tx, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		tx = NULL;
		reply_identity(q, id);
		q->status = 201;
	}
	json_decref(d);
	store_tx_rollback(tx);
out:
	identity_clear(&i);
	json_decref(o);
	return 0;
}

/*
 * A person's link or unlink, which a sync never undoes: a link is "manual" (sync
 * leaves such accounts alone) and lifts an earlier refusal of the pair; an unlink is
 * remembered so that no rule links the pair again.
 */
static int
manual_link(struct store_tx *tx, const char *by, const char *account_id,
    const char *identity_id, bool link, struct qerr *e)
{
	struct account_link l = { link ? identity_id : NULL, link ? "manual" : NULL, by,
	    engine_now_ms(), NULL };
	int r;

	if ((r = store_account_set_link(tx, account_id, &l, e)) != 0)
		return r;
	return store_link_veto(tx, account_id, identity_id, by, l.at, !link, e);
}

/* Links (identity_id set) or unlinks an account, audited, then answers the identity. */
static int
link_account(struct req *q, const char *identity_id, const char *account_id, bool link)
{
	struct store_tx *tx = NULL;
	struct identity i;
	struct account a;
	struct actor who;
	json_t *d;
	struct qerr e;
	int r;

	memset(&i, 0, sizeof(i));
	memset(&a, 0, sizeof(a));
	qerr_clear(&e);
	if ((r = store_tx_begin(q->api->st, true, &tx, &e)) != 0)
		goto fail;
	if ((r = store_identity_get(tx, identity_id, &i, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no identity %s", identity_id);
		goto fail;
	}
	if ((r = store_account_get(tx, account_id, &a, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "account_id", "no account %s", account_id);
		goto fail;
	}
	if (link && a.identity_id != NULL && strcmp(a.identity_id, identity_id) != 0) {
		r = qerr_set(&e, QERR_CONFLICT, "account_id",
		    "account %s is linked to identity %s: unlink it first", account_id,
		    a.identity_id);
		goto fail;
	}
	if (!link && (a.identity_id == NULL || strcmp(a.identity_id, identity_id) != 0)) {
		r = qerr_set(&e, QERR_NOT_FOUND, "account_id",
		    "account %s is not linked to identity %s", account_id, identity_id);
		goto fail;
	}
	d = json_pack("{s:s, s:s, s:s}", "account_id", account_id, "system", a.system,
	    "rule", "manual");
	if ((r = manual_link(tx, q->who.name, account_id, identity_id, link, &e)) == 0)
		r = (req_actor(q, &who), engine_audit_tx_as(tx, &who, link ? "account.linked" :
		    "account.unlinked", NULL, NULL, identity_id, d, &e));
	json_decref(d);
	if (r != 0 || (r = store_tx_commit(tx, &e)) != 0)
		goto fail;
	tx = NULL;
	reply_identity(q, identity_id);
	goto out;
fail:
	req_qerr(q, r, &e);
out:
	store_tx_rollback(tx);
	account_clear(&a);
	identity_clear(&i);
	return 0;
}

int
route_post_link(struct req *q)
{
	static const char *const keys[] = { "account_id", NULL };
	const char *acc;
	json_t *o;

	if (req_check_id(q, "identity_id", q->arg[0], "idn") != 0 || (o = req_json(q)) == NULL)
		return 0;
	if (req_only_keys(q, o, "", keys) == 0 &&
	    req_field_str(q, o, "account_id", true, 64, &acc) == 0 &&
	    req_check_id(q, "account_id", acc, "acc") == 0)
		link_account(q, q->arg[0], acc, true);
	json_decref(o);
	return 0;
}

int
route_delete_link(struct req *q)
{
	if (req_check_id(q, "identity_id", q->arg[0], "idn") != 0 ||
	    req_check_id(q, "account_id", q->arg[1], "acc") != 0)
		return 0;
	return link_account(q, q->arg[0], q->arg[1], false);
}

/* Replaces an identity's tags, which scoped roles and approval rules read. */
int
route_put_tags(struct req *q)
{
	static const char *const keys[] = { "tags", NULL };
	struct store_tx *tx = NULL;
	struct identity i;
	struct actor who;
	char **tags = NULL;
	size_t ntags = 0;
	json_t *o, *d = NULL;
	struct qerr e;
	int r;

	memset(&i, 0, sizeof(i));
	if (req_check_id(q, "identity_id", q->arg[0], "idn") != 0 || (o = req_json(q)) == NULL)
		return 0;
	if (req_only_keys(q, o, "", keys) != 0 ||
	    req_tag_list(q, json_object_get(o, "tags"), "tags", &tags, &ntags) != 0)
		goto out;
	if (json_object_get(o, "tags") == NULL) {
		req_error(q, 400, "invalid_input", "tags", "tags is required");
		goto out;
	}
	if ((r = store_tx_begin(q->api->st, true, &tx, &e)) != 0 ||
	    (r = store_identity_get(tx, q->arg[0], &i, &e)) != 0) {
		if (r == QERR_NOT_FOUND)
			qerr_set(&e, r, "id", "no identity %s", q->arg[0]);
		req_qerr(q, r, &e);
		goto out;
	}
	d = json_pack("{s:O}", "tags", json_object_get(o, "tags"));
	if ((r = set_tags(tx, &i, tags, ntags, &e)) != 0 ||
	    (req_actor(q, &who), r = engine_audit_tx_as(tx, &who, "identity.tags_set",
	    NULL, NULL,
	    i.id, d, &e)) != 0 || (r = store_tx_commit(tx, &e)) != 0)
		req_qerr(q, r, &e);
	else {
		tx = NULL;
		reply_identity(q, q->arg[0]);
	}
out:
	store_tx_rollback(tx);
	json_decref(d);
	identity_clear(&i);
	free(tags);
	json_decref(o);
	return 0;
}

int
route_list_systems(struct req *q)
{
	bool sup[ACTION_TYPE_COUNT];
	json_t *arr = json_array(), *acts;
	const char *name, *kind;
	size_t i;
	int t;

	for (i = 0; i < engine_system_count(q->api->eng); i++) {
		name = engine_system_name(q->api->eng, i);
		if (engine_system_info(q->api->eng, name, &kind, sup) != 0)
			continue;
		acts = json_array();
		for (t = 0; t < ACTION_TYPE_COUNT; t++)
			if (sup[t])
				json_array_append_new(acts,
				    json_string(action_type_name((enum action_type)t)));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "name", name, "kind",
		    kind, "actions", acts));
	}
	return req_reply(q, 200, json_pack("{s:o}", "systems", arr));
}
