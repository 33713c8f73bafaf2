/*
 * The executor: the one process that reads the identity systems' secret files and
 * talks to them. It trusts nothing the front sends: every request is decoded against
 * its schema, then checked against the systems in force (unknown system, an action
 * the system does not support, an account reference of the wrong shape for its kind,
 * params that are no JSON object); a refusal is answered with ERROR and logged.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/jwt.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/text.h"
#include "privsep/internal.h"
#include "providers/http.h"

void
privsep_systems_close(struct privsep_systems *s)
{
	size_t i;

	if (s == NULL)
		return;
	ssf_conf_clear(&s->ssf);
	oidc_close(s->oidc);
	for (i = s->n; i > 0; i--)
		provider_close(s->v[i - 1].ops, s->v[i - 1].p);
	free(s->v);
	config_clear(&s->owned);
	free(s);
}

static int
systems_open(struct privsep_systems *s, struct qerr *e)
{
	const struct system_config *sc;
	size_t i;
	int r;

	if ((s->v = calloc(s->cfg->nsystems + 1, sizeof(*s->v))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < s->cfg->nsystems; i++) {
		sc = &s->cfg->systems[i];
		if ((s->v[i].ops = provider_lookup(sc->kind)) == NULL)
			return qerr_set(e, QERR_CONFIG, "kind", "%s:%d: unknown kind '%s'",
			    s->cfg->file, sc->line, sc->kind);
		if ((r = provider_open(s->v[i].ops, sc, &s->v[i].p, e)) != 0)
			return r;
		s->v[i].cfg = sc;
		s->n++;
	}
	return 0;
}

int
privsep_systems_open(const struct config *cfg, struct privsep_systems **out,
    struct qerr *e)
{
	struct privsep_systems *s;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	s->cfg = cfg;
	if ((r = systems_open(s, e)) != 0) {
		privsep_systems_close(s);
		return r;
	}
	*out = s;
	return 0;
}

/* The configuration the front read, parsed here: its secret files are read only by
 * this process. */
static int
systems_load(const char *path, const char *text, struct privsep_systems **out,
    struct qerr *e)
{
	struct privsep_systems *s;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	s->cfg = &s->owned;
	if ((r = config_parse(path, text, &s->owned, e)) == 0) {
		s->owned.kinds = provider_kinds();
		if ((r = systems_open(s, e)) == 0 &&
		    (r = oidc_open_client(&s->owned, &s->oidc, e)) == 0)
			r = ssf_conf_load(&s->owned, &s->ssf, &s->ssf_on, e);
	}
	if (r != 0) {
		privsep_systems_close(s);
		return r;
	}
	*out = s;
	return 0;
}

static void tap(size_t fam, enum metric_op op, double v, const char *const *labels);

void
privsep_exec_init(struct privsep_exec *x)
{
	memset(x, 0, sizeof(*x));
	pthread_rwlock_init(&x->lock, NULL);
	quell_metrics_tap(tap);
}

void
privsep_exec_fini(struct privsep_exec *x)
{
	privsep_systems_close(x->next);
	privsep_systems_close(x->cur);
	pthread_rwlock_destroy(&x->lock);
}

/* The shape the kind's descriptor gives its account references. */
bool
privsep_ref_valid(const char *kind, const char *ref, char *why, size_t n)
{
	const struct provider_ops *ops = provider_lookup(kind);
	const struct kind_info *k = ops != NULL ? ops->info : NULL;

	if (k != NULL && k->ref_valid != NULL ? k->ref_valid(ref) : kind_ref_segment(ref))
		return true;
	snprintf(why, n, "account_ref: not %s", k != NULL && k->ref_hint != NULL ?
	    k->ref_hint : "one path segment of printable ASCII without / \\ ? # %");
	return false;
}

/* The metrics updates a provider makes in this thread, sent ahead of its reply. */
static _Thread_local struct privsep_buf *tap_out;

static void
tap(size_t fam, enum metric_op op, double v, const char *const *labels)
{
	struct qerr e;
	size_t k;

	if (tap_out == NULL)
		return;
	privsep_begin(tap_out, PRIVSEP_METRIC);
	privsep_put_int(tap_out, (int64_t)fam);
	privsep_put_int(tap_out, op);
	privsep_put_int(tap_out, (int64_t)(v * 1e9));
	for (k = 0; k < METRIC_MAX_LABELS; k++)
		privsep_put_str(tap_out, labels[k]);
	(void)privsep_finish(tap_out, &e);
}

static void
refused(const char *what, const struct qerr *e)
{
	log_event(LOG_LVL_WARN, "privsep.refused", LOG_FIELDS(LOG_S("request", what),
	    LOG_S("reason", e->msg)), "executor refused a %s request: %s", what, e->msg);
}

static const struct privsep_system *
find_system(struct privsep_exec *x, const char *name, struct qerr *e)
{
	size_t i;

	for (i = 0; x->cur != NULL && i < x->cur->n; i++)
		if (strcmp(x->cur->v[i].cfg->name, name) == 0)
			return &x->cur->v[i];
	qerr_set(e, QERR_NOT_FOUND, "system", "system: no system '%s' is configured", name);
	return NULL;
}

/* The checks a step passes before any provider sees it. */
static const struct privsep_system *
check_step(struct privsep_exec *x, const char *system, const struct step *s,
    struct qerr *e)
{
	const struct privsep_system *sys = find_system(x, system, e);
	char why[160];
	json_t *j;

	if (sys == NULL)
		return NULL;
	if (!provider_supports(sys->ops, sys->p, s->type)) {
		qerr_set(e, QERR_UNSUPPORTED, "type", "type: %s is not supported by system "
		    "'%s' (%s)", action_type_name(s->type), system, sys->cfg->kind);
		return NULL;
	}
	if (!privsep_ref_valid(sys->cfg->kind, s->account_ref, why, sizeof(why))) {
		qerr_set(e, QERR_INVALID, "account_ref", "%s", why);
		return NULL;
	}
	if (s->params != NULL) {
		j = json_loads(s->params, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(j)) {
			json_decref(j);
			qerr_set(e, QERR_INVALID, "params", "params: not a JSON object");
			return NULL;
		}
		json_decref(j);
	}
	return sys;
}

static int
serve_execute(struct privsep_exec *x, const struct privsep_msg *m, struct privsep_buf *out)
{
	const struct privsep_system *sys;
	struct step_result res;
	const char *system;
	struct step s;
	struct qerr e;

	qerr_clear(&e);
	privsep_get_execute(m, &system, &s);
	if ((sys = check_step(x, system, &s, &e)) == NULL) {
		refused("EXECUTE", &e);
		return privsep_put_error(out, e.code, e.field, "%s", e.msg);
	}
	provider_execute(sys->ops, sys->p, &s, &res);
	return privsep_put_result(out, &res, &e);
}

/* One step of a BATCH: checked alone, and against the batch's system and the type of
 * the first step that passed. */
static const struct privsep_system *
batch_step(struct privsep_exec *x, const struct privsep_msg *batch, const struct step *s,
    const char *system, const struct step *first, struct qerr *e)
{
	const struct privsep_system *sys;

	if (strcmp(system, batch->f[PRIVSEP_BATCH_SYSTEM].s) != 0) {
		qerr_set(e, QERR_INVALID, "system", "system: a batch holds steps of one "
		    "system");
		return NULL;
	}
	if ((sys = check_step(x, system, s, e)) != NULL && first != NULL &&
	    s->type != first->type) {
		qerr_set(e, QERR_INVALID, "type", "type: a batch holds steps of one type");
		return NULL;
	}
	return sys;
}

/* BATCH: the n EXECUTE messages that follow, each checked alone; those that pass go
 * to the provider together, and the replies come in the order of the requests. A
 * message that is no EXECUTE ends the channel (*e says why). */
static int
serve_batch(struct privsep_exec *x, int fd, const struct privsep_msg *m,
    struct privsep_buf *out, struct qerr *e)
{
	size_t n = (size_t)m->f[PRIVSEP_BATCH_N].i, i, k = 0;
	const struct privsep_system *sys = NULL, *si;
	struct privsep_buf in[PRIVSEP_BATCH_MAX];
	const struct step *ok[PRIVSEP_BATCH_MAX];
	struct step s[PRIVSEP_BATCH_MAX];
	struct step_result res[PRIVSEP_BATCH_MAX];
	struct qerr err[PRIVSEP_BATCH_MAX];
	struct privsep_msg sm;
	const char *system;
	int r = 0;

	memset(in, 0, sizeof(in));
	for (i = 0; i < n && r == 0; i++) {
		qerr_clear(&err[i]);
		if ((r = privsep_recv(fd, &in[i], &sm, e)) != 0)
			break;
		if (sm.type != PRIVSEP_EXECUTE) {
			r = qerr_set(e, QERR_INVALID, "type", "a %s inside a batch",
			    privsep_type_name(sm.type));
			break;
		}
		privsep_get_execute(&sm, &system, &s[i]);
		if ((si = batch_step(x, m, &s[i], system, k > 0 ? ok[0] : NULL,
		    &err[i])) == NULL) {
			refused("BATCH", &err[i]);
			continue;
		}
		sys = si;
		ok[k++] = &s[i];
	}
	if (r == 0 && k > 0)
		provider_execute_batch(sys->ops, sys->p, ok, k, res);
	for (i = 0, k = 0; i < n && r == 0; i++)
		if (err[i].msg[0] != '\0')
			privsep_put_error(out, err[i].code, err[i].field, "%s", err[i].msg);
		else
			privsep_put_result(out, &res[k++], &err[i]);
	for (i = 0; i < n; i++)
		privsep_buf_clear(&in[i]);
	return r;
}

static int
serve_refuses(struct privsep_exec *x, const struct privsep_msg *m, struct privsep_buf *out)
{
	const struct privsep_system *sys;
	struct account a;
	char why[512];
	struct qerr e;
	bool yes;

	qerr_clear(&e);
	if ((sys = find_system(x, m->f[PRIVSEP_REFUSES_SYSTEM].s, &e)) == NULL) {
		refused("REFUSES", &e);
		return privsep_put_error(out, e.code, e.field, "%s", e.msg);
	}
	privsep_get_account(m, &a);
	yes = provider_refuses(sys->ops, sys->p, &a,
	    (enum action_type)m->f[PRIVSEP_REFUSES_TYPE].i, why, sizeof(why));
	privsep_begin(out, PRIVSEP_REFUSAL);
	privsep_put_int(out, yes);
	privsep_put_str(out, yes ? why : "");
	return privsep_finish(out, &e);
}

/* A listing streams its accounts as it reads them; the front's STOP, seen between
 * two, ends it (the callback's non-zero return). */
struct lister {
	int fd;
	struct privsep_buf *out;
	struct privsep_buf in;
	int err;
	struct qerr e;		/* why err */
};

static int
on_account(const struct account *a, void *arg)
{
	struct lister *l = arg;
	struct pollfd pfd = { .fd = l->fd, .events = POLLIN };
	struct privsep_msg m;

	if (privsep_put_account(l->out, PRIVSEP_ACCOUNT, NULL, 0, a, &l->e) != 0)
		return 0;
	if ((l->err = privsep_send(l->fd, l->out, &l->e)) != 0)
		return 1;
	if (poll(&pfd, 1, 0) == 1) {
		if ((l->err = privsep_recv(l->fd, &l->in, &m, &l->e)) == 0 &&
		    m.type != PRIVSEP_STOP)
			l->err = qerr_set(&l->e, QERR_INVALID, "type", "a %s during a "
			    "listing", privsep_type_name(m.type));
		return 1;
	}
	return 0;
}

static int
serve_list(struct privsep_exec *x, int fd, const struct privsep_msg *m,
    struct privsep_buf *out, struct qerr *err)
{
	struct lister l = { .fd = fd, .out = out };
	const struct privsep_system *sys;
	char *next = NULL;
	bool full = true;
	struct qerr e;
	int r;

	qerr_clear(&e);
	if ((sys = find_system(x, m->f[PRIVSEP_LIST_SYSTEM].s, &e)) == NULL) {
		refused("LIST", &e);
		return privsep_put_error(out, e.code, e.field, "%s", e.msg);
	}
	if (m->f[PRIVSEP_LIST_CHANGES].i)
		r = provider_list_changes(sys->ops, sys->p, m->f[PRIVSEP_LIST_SINCE].s,
		    on_account, &l, &next, &full, &e);
	else
		r = provider_list_accounts(sys->ops, sys->p, on_account, &l, &e);
	privsep_buf_clear(&l.in);
	if (l.err != 0) {
		*err = l.e;
		free(next);
		return l.err;
	}
	if (r != 0)
		r = privsep_put_error(out, r, e.field[0] ? e.field : NULL, "%s",
		    e.msg[0] ? e.msg : qerr_strerror(r));
	else {
		privsep_begin(out, PRIVSEP_END);
		privsep_put_str(out, next);
		privsep_put_int(out, full);
		r = privsep_finish(out, &e);
	}
	free(next);
	return r;
}

/* What the TOKEN message carries: a status, and a body that is text (JSON is). */
static bool
answer_sendable(const struct http_response *resp)
{
	return resp->status >= 100 && resp->status <= 599 && (resp->len == 0 ||
	    (resp->body != NULL && strlen(resp->body) == resp->len &&
	    text_utf8_valid(resp->body, resp->len)));
}

/* REDEEM: the console's code, posted with the client secret only this process
 * holds; the front checks the answer (the id token) itself. */
static int
serve_redeem(struct privsep_exec *x, const struct privsep_msg *m, struct privsep_buf *out)
{
	struct http_response resp = { 0 };
	struct qerr e;
	int r;

	qerr_clear(&e);
	if (x->cur == NULL || x->cur->oidc == NULL) {
		qerr_set(&e, QERR_UNSUPPORTED, "type", "no [oidc] client_id is configured");
		refused("REDEEM", &e);
		return privsep_put_error(out, e.code, e.field, "%s", e.msg);
	}
	if ((r = oidc_exchange(x->cur->oidc, m->f[PRIVSEP_REDEEM_CODE].s,
	    m->f[PRIVSEP_REDEEM_VERIFIER].s, m->f[PRIVSEP_REDEEM_REDIRECT_URI].s, &resp,
	    &e)) == 0 && !answer_sendable(&resp))
		r = qerr_set(&e, QERR_UNAUTHENTICATED, NULL, "the token endpoint's answer "
		    "is not UTF-8 text with an HTTP status");
	if (r != 0)
		r = privsep_put_error(out, r, NULL, "%s", e.msg[0] ? e.msg : qerr_strerror(r));
	else {
		privsep_begin(out, PRIVSEP_TOKEN);
		privsep_put_int(out, resp.status);
		privsep_put_str(out, resp.len > 0 ? resp.body : "");
		r = privsep_finish(out, &e);
	}
	http_response_clear(&resp);
	return r;
}

/* The [ssf] key of the systems in force, or NULL (e says why). */
static const struct ssf_conf *
ssf_key(const struct privsep_exec *x, struct qerr *e)
{
	if (x->cur != NULL && x->cur->ssf_on)
		return &x->cur->ssf;
	qerr_set(e, QERR_UNSUPPORTED, "type", "no [ssf] is configured");
	return NULL;
}

/* SSF_KEY: the public half, for the transmitter's JWK Set. */
static int
serve_ssf_key(struct privsep_exec *x, struct privsep_buf *out)
{
	const struct ssf_conf *c;
	struct qerr e;
	char *jwk;
	int r;

	qerr_clear(&e);
	if ((c = ssf_key(x, &e)) == NULL) {
		refused("SSF_KEY", &e);
		return privsep_put_error(out, e.code, e.field, "%s", e.msg);
	}
	if ((jwk = json_dumps(json_array_get(json_object_get(c->jwks, "keys"), 0),
	    JSON_COMPACT)) == NULL)
		return privsep_put_error(out, QERR_NOMEM, NULL, "out of memory");
	privsep_begin(out, PRIVSEP_SSF_PUBLIC);
	privsep_put_str(out, c->alg);
	privsep_put_str(out, jwk);
	r = privsep_finish(out, &e);
	free(jwk);
	return r;
}

/* Whether o's member name is the string want (want NULL: is an object). */
static bool
member_is(const json_t *o, const char *name, const char *want)
{
	const json_t *v = json_object_get(o, name);

	return want == NULL ? json_is_object(v) : json_is_string(v) &&
	    strcmp(json_string_value(v), want) == 0;
}

/* Only SETs as quell makes them are signed: the key's alg and kid, a secevent+jwt,
 * quell's issuer and an events object. */
static int
set_check(const struct ssf_conf *c, const struct privsep_msg *m, struct qerr *e)
{
	json_t *h = json_loads(m->f[PRIVSEP_SIGN_HEADER].s, JSON_REJECT_DUPLICATES, NULL);
	json_t *b = json_loads(m->f[PRIVSEP_SIGN_CLAIMS].s, JSON_REJECT_DUPLICATES, NULL);
	int r = 0;

	if (!json_is_object(h) || !member_is(h, "alg", c->alg) ||
	    !member_is(h, "kid", c->kid) || !member_is(h, "typ", "secevent+jwt"))
		r = qerr_set(e, QERR_INVALID, "header", "header: not the JOSE header of "
		    "a SET under the [ssf] key");
	else if (!json_is_object(b) || !member_is(b, "iss", c->issuer) ||
	    !member_is(b, "events", NULL))
		r = qerr_set(e, QERR_INVALID, "claims", "claims: not a SET of quell's "
		    "issuer with events");
	json_decref(h);
	json_decref(b);
	return r;
}

/* SIGN: a SET the front made, signed with the key only this process holds. */
static int
serve_sign(struct privsep_exec *x, const struct privsep_msg *m, struct privsep_buf *out)
{
	const struct ssf_conf *c;
	char *jwt = NULL;
	struct qerr e;
	int r;

	qerr_clear(&e);
	if ((c = ssf_key(x, &e)) == NULL || set_check(c, m, &e) != 0) {
		refused("SIGN", &e);
		return privsep_put_error(out, e.code, e.field, "%s", e.msg);
	}
	if ((r = jwt_sign(c->alg, c->key_pem, m->f[PRIVSEP_SIGN_HEADER].s,
	    m->f[PRIVSEP_SIGN_CLAIMS].s, &jwt, &e)) != 0)
		return privsep_put_error(out, r, NULL, "%s", e.msg);
	privsep_begin(out, PRIVSEP_SIGNED);
	privsep_put_str(out, jwt);
	r = privsep_finish(out, &e);
	free(jwt);
	return r;
}

static int
dispatch(struct privsep_exec *x, int fd, const struct privsep_msg *m,
    struct privsep_buf *out, struct qerr *err)
{
	struct qerr e;

	switch (m->type) {
	case PRIVSEP_EXECUTE:
		return serve_execute(x, m, out);
	case PRIVSEP_BATCH:
		return serve_batch(x, fd, m, out, err);
	case PRIVSEP_REFUSES:
		return serve_refuses(x, m, out);
	case PRIVSEP_LIST:
		return serve_list(x, fd, m, out, err);
	case PRIVSEP_REDEEM:
		return serve_redeem(x, m, out);
	case PRIVSEP_SSF_KEY:
		return serve_ssf_key(x, out);
	case PRIVSEP_SIGN:
		return serve_sign(x, m, out);
	default:
		qerr_set(&e, QERR_INVALID, "type", "a %s is no request on a data channel",
		    privsep_type_name(m->type));
		refused(privsep_type_name(m->type), &e);
		return privsep_put_error(out, e.code, e.field, "%s", e.msg);
	}
}

int
privsep_exec_serve(struct privsep_exec *x, int fd)
{
	struct privsep_buf in = { 0 }, out = { 0 };
	struct privsep_msg m;
	struct qerr e;
	int r;

	qerr_clear(&e);
	tap_out = &out;
	while ((r = privsep_recv(fd, &in, &m, &e)) == 0) {
		pthread_rwlock_rdlock(&x->lock);
		r = dispatch(x, fd, &m, &out, &e);
		pthread_rwlock_unlock(&x->lock);
		if (r == QERR_IO || r == QERR_INVALID ||
		    (r = privsep_send(fd, &out, &e)) != 0)
			break;
	}
	if (r == QERR_INVALID) {
		refused("malformed", &e);
		privsep_put_error(&out, r, e.field[0] ? e.field : NULL, "%s", e.msg);
		privsep_send(fd, &out, &e);
	}
	tap_out = NULL;
	privsep_buf_clear(&in);
	privsep_buf_clear(&out);
	return r == QERR_IO ? 0 : r;
}

/* The systems of a LOAD, opened as the next ones: their CAPS (the END follows), or
 * an ERROR that is the whole answer (*answered). */
static int
control_load(struct privsep_exec *x, const struct privsep_msg *m, struct privsep_buf *out,
    bool *answered)
{
	struct privsep_systems *s = NULL;
	unsigned mask;
	size_t i;
	int t, r;
	struct qerr e;

	qerr_clear(&e);
	if ((r = systems_load(m->f[PRIVSEP_LOAD_PATH].s, m->f[PRIVSEP_LOAD_TEXT].s, &s,
	    &e)) != 0) {
		*answered = true;
		return privsep_put_error(out, r, e.field[0] ? e.field : NULL, "%s", e.msg);
	}
	privsep_systems_close(x->next);
	x->next = s;
	for (i = 0; i < s->n; i++) {
		for (mask = 0, t = 0; t < ACTION_TYPE_COUNT; t++)
			if (provider_supports(s->v[i].ops, s->v[i].p, (enum action_type)t))
				mask |= 1u << t;
		privsep_begin(out, PRIVSEP_CAPS);
		privsep_put_str(out, s->v[i].cfg->name);
		privsep_put_str(out, s->v[i].cfg->kind);
		privsep_put_int(out, mask);
		if ((r = privsep_finish(out, &e)) != 0)
			return r;
	}
	return 0;
}

/* Once the first LOAD has read the secret files, root has nothing left to do here:
 * the user is become before the front hears the answer. */
static int
become_once(struct privsep_exec *x, struct qerr *e)
{
	int r;

	if (!x->become.drop)
		return 0;
	if ((r = privsep_become(&x->become, "executor", e)) == 0)
		x->become.drop = false;
	return r;
}

int
privsep_exec_control(struct privsep_exec *x, int fd)
{
	struct privsep_buf in = { 0 }, out = { 0 };
	struct privsep_systems *s;
	struct privsep_msg m;
	bool answered;
	struct qerr e;
	int r;

	qerr_clear(&e);
	while ((r = privsep_recv(fd, &in, &m, &e)) == 0) {
		answered = false;
		if (m.type == PRIVSEP_LOAD) {
			if ((r = control_load(x, &m, &out, &answered)) == 0)
				r = become_once(x, &e);
		} else if (m.type == PRIVSEP_SWAP) {
			pthread_rwlock_wrlock(&x->lock);
			s = x->cur;
			x->cur = x->next;
			x->next = s;
			pthread_rwlock_unlock(&x->lock);
		} else if (m.type == PRIVSEP_DROP) {
			privsep_systems_close(x->next);
			x->next = NULL;
		} else {
			r = qerr_set(&e, QERR_INVALID, "type", "a %s on the control channel",
			    privsep_type_name(m.type));
			break;
		}
		if (r == 0 && !answered) {
			privsep_begin(&out, PRIVSEP_END);
			privsep_put_str(&out, NULL);
			privsep_put_int(&out, 0);
			r = privsep_finish(&out, &e);
		}
		privsep_buf_clear(&in);
		if (r != 0 || (r = privsep_send(fd, &out, &e)) != 0)
			break;
	}
	if (r == QERR_INVALID)
		refused("control", &e);
	else if (r != 0 && r != QERR_IO)
		log_msg(LOG_LVL_ERROR, "%s", e.msg);
	privsep_buf_clear(&in);
	privsep_buf_clear(&out);
	return r == QERR_IO ? 0 : r;
}
