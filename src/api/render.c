/*
 * Model structs to the API's JSON. An action is described once as a list of members
 * (action_members), which becomes either a jansson object or, for the hot read of one
 * action, text written straight to a buffer: the same bytes json_dumps would give
 * (JSON_COMPACT), without an allocation per member.
 */
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "render.h"

/* A step's members, then an action's own (steps apart). */
#define STEP_MEMBERS	16
#define ACTION_MEMBERS	23

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *
render_time(int64_t ms)
{
	char buf[TEXT_TIME_LEN];

	if (ms == 0)
		return json_null();
	text_time_format(ms, buf);
	return json_string(buf);
}

/* Members whose kind says what s or i holds; a NULL string is JSON null. */
static struct render_member
str(const char *key, const char *s)
{
	return (struct render_member){ key, RENDER_STR, s, 0, false };
}

/* A member that must be a string: no value makes the whole rendering fail. */
static struct render_member
req_str(const char *key, const char *s)
{
	return (struct render_member){ key, RENDER_STR_REQUIRED, s, 0, false };
}

static struct render_member
num(const char *key, int64_t i)
{
	return (struct render_member){ key, RENDER_INT, NULL, i, false };
}

static struct render_member
time_of(const char *key, int64_t ms)
{
	return (struct render_member){ key, RENDER_TIME, NULL, ms, false };
}

static size_t
step_members(const struct step *s, struct render_member m[STEP_MEMBERS])
{
	size_t n = 0;

	m[n++] = req_str("id", s->id);
	m[n++] = req_str("account_id", s->account_id);
	m[n++] = req_str("system", s->system);
	m[n++] = req_str("account_name", s->account_name);
	m[n++] = req_str("type", action_type_name(s->type));
	m[n++] = req_str("status", step_status_name(s->status));
	m[n++] = num("attempts", s->attempts);
	m[n++] = num("waits", s->waits);
	m[n++] = num("wait_ms", s->wait_ms);
	m[n++] = str("request_id", s->request_id);
	m[n++] = str("error_code", s->error_code);
	m[n++] = str("message", s->message);
	m[n++] = time_of("created_at", s->created_at);
	m[n++] = time_of("started_at", s->started_at);
	m[n++] = time_of("finished_at", s->finished_at);
	m[n++] = time_of("not_before", s->status == STEP_RETRY_WAIT ? s->not_before : 0);
	return n;
}

static size_t
action_members(const struct action *a, struct render_member m[ACTION_MEMBERS])
{
	size_t n = 0, first;

	m[n++] = req_str("id", a->id);
	m[n++] = req_str("type", action_type_name(a->type));
	m[n++] = req_str("status", action_status_name(a->status));
	m[n++] = req_str("identity_id", a->identity_id);
	m[n++] = str("account_id", a->account_id);
	m[n++] = req_str("requested_by", a->requested_by);
	m[n++] = req_str("source", a->source);
	m[n++] = req_str("reason", a->reason);
	m[n++] = (struct render_member){ "params", RENDER_JSON, a->params, 0, false };
	m[n++] = str("message", a->message);
	m[n++] = (struct render_member){ "cancel_requested", RENDER_BOOL, NULL,
	    a->cancel_requested, false };
	m[n++] = time_of("created_at", a->created_at);
	m[n++] = time_of("updated_at", a->updated_at);
	m[n++] = time_of("finished_at", a->finished_at);
	/* Added to the object one by one, these were always left out when not
	 * renderable rather than failing the whole action. */
	first = n;
	m[n++] = str("undo_of", a->undo_of);
	m[n++] = str("approval_rule", a->approval_rule);
	m[n++] = str("requested_by_kind", a->requested_by_kind);
	m[n++] = str("requested_by_id", a->requested_by_id);
	m[n++] = str("decided_by", a->decided_by);
	m[n++] = str("decided_by_kind", a->decided_by_kind);
	m[n++] = str("decided_by_id", a->decided_by_id);
	m[n++] = str("alert_id", a->alert_id);
	m[n++] = time_of("approval_expires_at", a->status == ACTION_PENDING_APPROVAL ?
	    a->approval_expires : 0);
	while (first < n)
		m[first++].optional = true;
	return n;
}

/* Stored params that do not parse render as an empty object, as they always have. */
static json_t *
params_json(const char *text)
{
	json_t *p = json_loads(text ? text : "{}", 0, NULL);

	return p ? p : json_object();
}

static json_t *
member_json(const struct render_member *m)
{
	switch (m->kind) {
	case RENDER_STR_REQUIRED:
		return m->s ? json_string(m->s) : NULL;
	case RENDER_STR:
		return str_or_null(m->s);
	case RENDER_INT:
		return json_integer((json_int_t)m->i);
	case RENDER_BOOL:
		return json_boolean(m->i);
	case RENDER_TIME:
		return render_time(m->i);
	case RENDER_JSON:
		return params_json(m->s);
	}
	return NULL;
}

/* The object of members m; NULL (nothing leaked) if one has no JSON value. */
static json_t *
members_json(const struct render_member *m, size_t n)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o != NULL && i < n; i++)
		if (json_object_set_new(o, m[i].key, member_json(&m[i])) != 0 &&
		    !m[i].optional) {
			json_decref(o);
			o = NULL;
		}
	return o;
}

json_t *
render_step(const struct step *s)
{
	struct render_member m[STEP_MEMBERS];

	return members_json(m, step_members(s, m));
}

json_t *
render_action(const struct action *a, bool with_steps)
{
	struct render_member m[ACTION_MEMBERS];
	json_t *o, *steps;
	size_t i;

	if ((o = members_json(m, action_members(a, m))) == NULL || !with_steps)
		return o;
	steps = json_array();
	for (i = 0; i < a->nsteps; i++)
		json_array_append_new(steps, render_step(&a->steps[i]));
	json_object_set_new(o, "steps", steps);
	return o;
}

/* JSON text being written; failed once a value cannot be written as json_dumps would. */
struct jtext {
	char *buf;
	size_t len, cap;
	bool failed;
};

/* Room for n more bytes and the NUL; false (the text failed) if out of memory. */
static bool
jt_room(struct jtext *t, size_t n)
{
	char *nb;
	size_t cap;

	if (t->failed)
		return false;
	if (t->len + n + 1 <= t->cap)
		return true;
	cap = t->cap * 2 > t->len + n + 1 ? t->cap * 2 : t->len + n + 1;
	if ((nb = realloc(t->buf, cap)) == NULL) {
		t->failed = true;
		return false;
	}
	t->buf = nb;
	t->cap = cap;
	return true;
}

static void
jt_put(struct jtext *t, const char *s, size_t n)
{
	if (!jt_room(t, n))
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

/* s quoted and escaped as jansson does: only '"', '\\' and controls are escaped. A
 * string jansson would refuse (not UTF-8) fails the text. */
static void
jt_string(struct jtext *t, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, n = strlen(s);
	bool checked = false;
	unsigned char c;
	char *p;

	/* Room for the worst case, six bytes (\u00XX) a byte, so nothing below checks. */
	if (!jt_room(t, 6 * n + 2))
		return;
	p = t->buf + t->len;
	*p++ = '"';
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			/* From the first byte past ASCII on, the rest is checked once. */
			if (c >= 0x80 && !checked) {
				checked = true;
				if (!text_utf8_valid(s + i, n - i)) {
					t->failed = true;
					return;
				}
			}
			*p++ = (char)c;
			continue;
		}
		*p++ = '\\';
		*p++ = c == '"' ? '"' : c == '\\' ? '\\' : c == '\b' ? 'b' : c == '\f' ?
		    'f' : c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : 'u';
		if (p[-1] == 'u') {
			*p++ = '0';
			*p++ = '0';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 0xf];
		}
	}
	*p++ = '"';
	*p = '\0';
	t->len = (size_t)(p - t->buf);
}

/* i in decimal, as "%lld" writes it. */
static void
jt_int(struct jtext *t, int64_t i)
{
	char d[24], *p = d + sizeof(d);
	uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (i < 0)
		*--p = '-';
	jt_put(t, p, (size_t)(d + sizeof(d) - p));
}

static void
jt_params(struct jtext *t, const char *text)
{
	json_t *p;
	char *d;

	if (text == NULL || strcmp(text, "{}") == 0) {
		jt_put(t, "{}", 2);
		return;
	}
	p = params_json(text);
	if ((d = p ? json_dumps(p, JSON_COMPACT) : NULL) == NULL)
		t->failed = true;
	else
		jt_put(t, d, strlen(d));
	free(d);
	json_decref(p);
}

static void
jt_member(struct jtext *t, const struct render_member *m)
{
	char num[TEXT_TIME_LEN];
	size_t k = strlen(m->key);

	/* Keys are this file's own ASCII literals: nothing in them to escape. */
	if (!jt_room(t, k + 3))
		return;
	t->buf[t->len] = '"';
	memcpy(t->buf + t->len + 1, m->key, k);
	memcpy(t->buf + t->len + 1 + k, "\":", 3);
	t->len += k + 3;
	switch (m->kind) {
	case RENDER_STR_REQUIRED:
		if (m->s == NULL)
			t->failed = true;
		/* FALLTHROUGH */
	case RENDER_STR:
		if (m->s != NULL)
			jt_string(t, m->s);
		else
			jt_put(t, "null", 4);
		return;
	case RENDER_INT:
		jt_int(t, m->i);
		return;
	case RENDER_BOOL:
		jt_put(t, m->i ? "true" : "false", m->i ? 4 : 5);
		return;
	case RENDER_TIME:
		if (m->i == 0) {
			jt_put(t, "null", 4);
			return;
		}
		text_time_format(m->i, num);
		jt_string(t, num);
		return;
	case RENDER_JSON:
		jt_params(t, m->s);
		return;
	}
}

/* Members m as the body of an object: open is "{" or ",". */
static void
jt_members(struct jtext *t, const char *open, const struct render_member *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		jt_put(t, i == 0 ? open : ",", 1);
		jt_member(t, &m[i]);
	}
}

char *
render_action_text(const struct action *a, const struct render_member *extra,
    size_t nextra)
{
	struct render_member m[ACTION_MEMBERS > STEP_MEMBERS ? ACTION_MEMBERS :
	    STEP_MEMBERS];
	struct jtext t = { NULL, 0, 0, false };
	size_t i;

	/* Room for an action with a few steps, so that most need no realloc. */
	if ((t.buf = malloc(t.cap = 2048)) == NULL)
		return NULL;

	jt_members(&t, "{", m, action_members(a, m));
	jt_put(&t, ",\"steps\":[", 10);
	for (i = 0; i < a->nsteps; i++) {
		if (i > 0)
			jt_put(&t, ",", 1);
		jt_members(&t, "{", m, step_members(&a->steps[i], m));
		jt_put(&t, "}", 1);
	}
	jt_put(&t, "]", 1);
	jt_members(&t, ",", extra, nextra);
	jt_put(&t, "}", 1);
	if (t.failed) {
		free(t.buf);
		return NULL;
	}
	return t.buf;
}

json_t *
render_account(const struct account *a)
{
	json_t *o;

	o = json_pack("{s:s, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
	    " s:b}",
	    "id", a->id, "identity_id", str_or_null(a->identity_id), "system", a->system,
	    "kind", a->kind, "external_id", str_or_null(a->external_id),
	    "sid", str_or_null(a->sid), "dn", str_or_null(a->dn),
	    "username", str_or_null(a->username), "upn", str_or_null(a->upn),
	    "display_name", str_or_null(a->display_name),
	    "state", str_or_null(a->state),
	    "state_read_at", render_time(a->state_read_at),
	    "email", str_or_null(a->email), "synced", a->synced);
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "risk", str_or_null(a->risk));
	json_object_set_new(o, "link_rule", str_or_null(a->link_rule));
	json_object_set_new(o, "linked_by", str_or_null(a->linked_by));
	json_object_set_new(o, "linked_at", render_time(a->linked_at));
	return o;
}

json_t *
render_identity(const struct identity *i)
{
	json_t *o, *tags = json_array(), *accts = json_array();
	size_t k;

	for (k = 0; k < i->ntags; k++)
		json_array_append_new(tags, json_string(i->tags[k]));
	for (k = 0; k < i->naccounts; k++)
		json_array_append_new(accts, render_account(&i->accounts[k]));
	o = json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", i->id, "display_name",
	    i->display_name ? i->display_name : "", "tags", tags, "created_at",
	    render_time(i->created_at), "accounts", accts);
	return o;
}

json_t *
render_audit(const struct audit_entry *ent)
{
	json_t *detail = json_loads(ent->detail ? ent->detail : "{}", 0, NULL);

	/* actor_kind, actor_id and client are null on entries older than format 2. */
	return json_pack("{s:I, s:o, s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:i,"
	    " s:o, s:o, s:o}",
	    "seq", (json_int_t)ent->seq, "time", render_time(ent->time),
	    "time_ms", (json_int_t)ent->time, "actor", ent->actor, "event", ent->event,
	    "action_id", str_or_null(ent->action_id), "step_id", str_or_null(ent->step_id),
	    "identity_id", str_or_null(ent->identity_id),
	    "detail", detail ? detail : json_string(ent->detail ? ent->detail : ""),
	    "prev_hash", ent->prev_hash, "hash", ent->hash,
	    "format", ent->format > 0 ? ent->format : 1,
	    "actor_kind", str_or_null(ent->actor_kind),
	    "actor_id", str_or_null(ent->actor_id), "client", str_or_null(ent->client));
}
