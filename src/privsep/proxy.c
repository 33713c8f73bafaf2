/*
 * The front's side: it forks the executor, keeps the control channel and a pool of
 * data channels (one synchronous request at a time on each: a caller takes a free
 * one for the length of its call), and offers the engine a proxy provider per kind
 * that forwards every call. What a kind answers without its credentials (batch_max,
 * keys, kind info) the proxy takes from the built-in provider itself.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "privsep/internal.h"
#include "providers/http.h"

struct chan {
	int fd;			/* -1 once broken */
	struct privsep_buf in, out;
};

/* What the executor said of one system at LOAD. */
struct caps {
	char name[257];
	char kind[65];
	unsigned supports;
};

struct privsep {
	pid_t pid;
	int ctl;
	struct chan *ch;
	size_t nch;
	pthread_mutex_t mu;	/* everything below */
	pthread_cond_t cv;	/* a channel was given back */
	size_t *idle;		/* free channels, a stack */
	size_t nidle;
	struct caps *caps, *next;
	size_t ncaps, nnext;
};

/* The process's executor: a provider's open has no other way to reach it. */
static struct privsep *the;

/* A proxy's handle: the system's capabilities, copied at open. */
struct provider {
	struct caps c;
	const struct provider_ops *real;
};

static struct chan *
chan_get(struct privsep *ps)
{
	struct chan *c;

	pthread_mutex_lock(&ps->mu);
	while (ps->nidle == 0)
		pthread_cond_wait(&ps->cv, &ps->mu);
	c = &ps->ch[ps->idle[--ps->nidle]];
	pthread_mutex_unlock(&ps->mu);
	return c;
}

static void
chan_put(struct privsep *ps, struct chan *c)
{
	pthread_mutex_lock(&ps->mu);
	ps->idle[ps->nidle++] = (size_t)(c - ps->ch);
	pthread_cond_signal(&ps->cv);
	pthread_mutex_unlock(&ps->mu);
}

/* A channel that lost its framing is closed: its next callers fail at once. */
static int
chan_broken(struct chan *c, int r, struct qerr *e)
{
	if (c->fd >= 0) {
		log_event(LOG_LVL_ERROR, "privsep.channel", LOG_FIELDS(LOG_S("reason",
		    e->msg)), "privsep: channel to the executor lost: %s", e->msg);
		close(c->fd);
		c->fd = -1;
	}
	return r;
}

static int
chan_send(struct chan *c, struct qerr *e)
{
	int r;

	if (c->fd < 0) {
		c->out.len = 0;
		return qerr_set(e, QERR_IO, NULL, "the executor is gone");
	}
	return (r = privsep_send(c->fd, &c->out, e)) == 0 ? 0 : chan_broken(c, r, e);
}

/* The next message that is not a metrics update (those are applied here). */
static int
chan_recv(struct chan *c, struct privsep_msg *m, struct qerr *e)
{
	const char *labels[METRIC_MAX_LABELS];
	size_t k;
	int r;

	for (;;) {
		if (c->fd < 0)
			return qerr_set(e, QERR_IO, NULL, "the executor is gone");
		if ((r = privsep_recv(c->fd, &c->in, m, e)) != 0)
			return chan_broken(c, r, e);
		if (m->type != PRIVSEP_METRIC)
			return 0;
		for (k = 0; k < METRIC_MAX_LABELS; k++)
			labels[k] = m->f[PRIVSEP_METRIC_LABEL + k].s;
		metrics_update_labels(quell_metrics(), (size_t)m->f[PRIVSEP_METRIC_FAM].i,
		    (enum metric_op)m->f[PRIVSEP_METRIC_OP].i,
		    (double)m->f[PRIVSEP_METRIC_NANO].i / 1e9, labels);
	}
}

/* A reply of the wrong type breaks the channel: the two ends no longer agree. */
static int
unexpected(struct chan *c, const struct privsep_msg *m, const char *want, struct qerr *e)
{
	qerr_set(e, QERR_INVALID, "type", "the executor answered %s, not %s",
	    privsep_type_name(m->type), want);
	return chan_broken(c, QERR_INVALID, e);
}

static void
result_failed(struct step_result *res, int r, const struct qerr *e)
{
	memset(res, 0, sizeof(*res));
	if (r == QERR_IO || r == QERR_INVALID)
		provider_result_set(res, STEP_OUTCOME_TRANSIENT, "executor_unavailable",
		    "the executor did not answer: %s", e->msg);
	else
		provider_result_set(res, STEP_OUTCOME_PERMANENT, "executor_refused",
		    "refused by the executor: %s", e->msg);
}

/* One step's reply: RESULT, or ERROR (the executor refused it). */
static void
read_result(struct chan *c, struct step_result *res)
{
	struct privsep_msg m;
	struct qerr e;
	int r;

	qerr_clear(&e);
	if ((r = chan_recv(c, &m, &e)) == 0) {
		if (m.type == PRIVSEP_RESULT) {
			privsep_get_result(&m, res);
			return;
		}
		r = m.type == PRIVSEP_ERROR ? privsep_get_error(&m, &e) :
		    unexpected(c, &m, "RESULT", &e);
	}
	result_failed(res, r, &e);
}

static int
proxy_execute(struct provider *p, const struct step *step, struct step_result *res)
{
	struct chan *c = chan_get(the);
	struct qerr e;
	int r;

	qerr_clear(&e);
	if ((r = privsep_put_execute(&c->out, p->c.name, step, &e)) != 0 ||
	    (r = chan_send(c, &e)) != 0)
		result_failed(res, r, &e);
	else
		read_result(c, res);
	chan_put(the, c);
	return 0;
}

static int
proxy_execute_batch(struct provider *p, const struct step *const *steps, size_t n,
    struct step_result *res)
{
	struct chan *c;
	struct qerr e;
	size_t i;
	int r;

	if (n > PRIVSEP_BATCH_MAX) {
		for (i = 0; i < n; i++)
			proxy_execute(p, steps[i], &res[i]);
		return 0;
	}
	qerr_clear(&e);
	c = chan_get(the);
	privsep_begin(&c->out, PRIVSEP_BATCH);
	privsep_put_str(&c->out, p->c.name);
	privsep_put_int(&c->out, (int64_t)n);
	r = privsep_finish(&c->out, &e);
	for (i = 0; i < n && r == 0; i++)
		r = privsep_put_execute(&c->out, p->c.name, steps[i], &e);
	if (r == 0)
		r = chan_send(c, &e);
	c->out.len = 0;
	for (i = 0; i < n; i++)
		if (r != 0)
			result_failed(&res[i], r, &e);
		else
			read_result(c, &res[i]);
	chan_put(the, c);
	return 0;
}

static bool
proxy_refuses(const struct provider *p, const struct account *acct,
    enum action_type type, char *why, size_t len)
{
	struct chan *c = chan_get(the);
	struct privsep_msg m;
	bool yes = false;
	struct qerr e;

	qerr_clear(&e);
	if (privsep_put_account(&c->out, PRIVSEP_REFUSES, p->c.name, type, acct, &e) == 0 &&
	    chan_send(c, &e) == 0 && chan_recv(c, &m, &e) == 0) {
		if (m.type == PRIVSEP_REFUSAL) {
			yes = m.f[PRIVSEP_REFUSAL_YES].i != 0;
			snprintf(why, len, "%s", m.f[PRIVSEP_REFUSAL_WHY].s);
		} else if (m.type != PRIVSEP_ERROR)
			unexpected(c, &m, "REFUSAL", &e);
	}
	chan_put(the, c);
	return yes;
}

/* Sends the request c->out holds (finish's r) and reads its reply of type want, or
 * the executor's ERROR; the reply's strings live in c->in until the next call. A
 * request the message cannot carry (finish's QERR_INVALID) is the caller's to say;
 * an executor that does not answer is QERR_TRANSIENT. */
static int
ask(struct chan *c, int r, enum privsep_type want, struct privsep_msg *m,
    struct qerr *e)
{
	if (r == 0 && (r = chan_send(c, e)) == 0 && (r = chan_recv(c, m, e)) == 0)
		r = m->type == want ? 0 : m->type == PRIVSEP_ERROR ?
		    privsep_get_error(m, e) : unexpected(c, m, privsep_type_name(want), e);
	if (r == QERR_IO || (r == QERR_INVALID && c->fd < 0))
		r = qerr_set(e, QERR_TRANSIENT, NULL, "the executor did not answer: %.400s",
		    e->msg);
	return r;
}

/* A copy of a reply's string (the channel's buffer is the next caller's). */
static char *
field_dup(const struct privsep_field *f, struct qerr *e)
{
	char *s = malloc(f->len + 1);

	if (s == NULL)
		qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	else
		memcpy(s, f->s, f->len + 1);
	return s;
}

/* A code the message cannot carry is no code the issuer gave: refused as such. */
int
privsep_oidc_exchange(const char *code, const char *verifier, const char *redirect_uri,
    struct http_response *resp, struct qerr *e)
{
	struct chan *c = chan_get(the);
	struct privsep_msg m;
	int r;

	memset(resp, 0, sizeof(*resp));
	privsep_begin(&c->out, PRIVSEP_REDEEM);
	privsep_put_str(&c->out, code);
	privsep_put_str(&c->out, verifier);
	privsep_put_str(&c->out, redirect_uri);
	if ((r = privsep_finish(&c->out, e)) == QERR_INVALID)
		r = QERR_UNAUTHENTICATED;
	else if ((r = ask(c, r, PRIVSEP_TOKEN, &m, e)) == 0 &&
	    (resp->body = field_dup(&m.f[PRIVSEP_TOKEN_BODY], e)) == NULL)
		r = QERR_NOMEM;
	else if (r == 0) {
		resp->len = m.f[PRIVSEP_TOKEN_BODY].len;
		resp->status = (long)m.f[PRIVSEP_TOKEN_STATUS].i;
	}
	chan_put(the, c);
	return r;
}

static int
ssf_public_key(json_t **jwk, const char **alg, struct qerr *e)
{
	struct chan *c = chan_get(the);
	struct privsep_msg m;
	const char *a;
	int r;

	*jwk = NULL;
	privsep_begin(&c->out, PRIVSEP_SSF_KEY);
	if ((r = ask(c, privsep_finish(&c->out, e), PRIVSEP_SSF_PUBLIC, &m, e)) == 0) {
		a = m.f[PRIVSEP_SSF_PUBLIC_ALG].s;
		/* alg outlives the reply: one of the two the key may have. */
		*alg = strcmp(a, "ES256") == 0 ? "ES256" : strcmp(a, "RS256") == 0 ?
		    "RS256" : NULL;
		*jwk = json_loads(m.f[PRIVSEP_SSF_PUBLIC_JWK].s, JSON_REJECT_DUPLICATES,
		    NULL);
		if (*alg == NULL || !json_is_object(*jwk)) {
			json_decref(*jwk);
			*jwk = NULL;
			r = qerr_set(e, QERR_INVALID, "jwk", "the executor's [ssf] public key "
			    "is no ES256 or RS256 JWK");
		}
	}
	chan_put(the, c);
	return r;
}

static int
ssf_sign_there(const char *alg, const char *header_json, const char *claims_json,
    char **jwt, struct qerr *e)
{
	struct chan *c = chan_get(the);
	struct privsep_msg m;
	int r;

	(void)alg;
	*jwt = NULL;
	privsep_begin(&c->out, PRIVSEP_SIGN);
	privsep_put_str(&c->out, header_json);
	privsep_put_str(&c->out, claims_json);
	if ((r = ask(c, privsep_finish(&c->out, e), PRIVSEP_SIGNED, &m, e)) == 0 &&
	    (*jwt = field_dup(&m.f[PRIVSEP_SIGNED_JWT], e)) == NULL)
		r = QERR_NOMEM;
	chan_put(the, c);
	return r;
}

const struct ssf_key_holder privsep_ssf_keys = {
	.public_key = ssf_public_key,
	.sign = ssf_sign_there,
};

/* Streams a listing's accounts into cb; once cb stops it, asks the executor to stop
 * too and reads on to the END, so the channel stays in step. */
static int
list(struct provider *p, bool changes, const char *since, provider_account_cb cb,
    void *arg, char **next, bool *full, struct qerr *e)
{
	struct chan *c = chan_get(the);
	struct privsep_msg m;
	struct account a;
	int r, stopped = 0;

	privsep_begin(&c->out, PRIVSEP_LIST);
	privsep_put_str(&c->out, p->c.name);
	privsep_put_int(&c->out, changes);
	privsep_put_str(&c->out, since);
	if ((r = privsep_finish(&c->out, e)) == 0 && (r = chan_send(c, e)) == 0)
		while ((r = chan_recv(c, &m, e)) == 0 && m.type == PRIVSEP_ACCOUNT) {
			privsep_get_account(&m, &a);
			if (stopped != 0 || (stopped = cb(&a, arg)) == 0)
				continue;
			privsep_begin(&c->out, PRIVSEP_STOP);
			if ((r = privsep_finish(&c->out, e)) != 0 ||
			    (r = chan_send(c, e)) != 0)
				break;
		}
	if (r == 0 && m.type == PRIVSEP_END) {
		*full = m.f[PRIVSEP_END_FULL].i != 0;
		if (next != NULL && m.f[PRIVSEP_END_NEXT].s != NULL &&
		    (*next = strdup(m.f[PRIVSEP_END_NEXT].s)) == NULL)
			r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	} else if (r == 0)
		r = m.type == PRIVSEP_ERROR ? privsep_get_error(&m, e) :
		    unexpected(c, &m, "ACCOUNT or END", e);
	chan_put(the, c);
	return stopped != 0 ? stopped : r;
}

static int
proxy_list_accounts(struct provider *p, provider_account_cb cb, void *arg,
    struct qerr *e)
{
	bool full;

	return list(p, false, NULL, cb, arg, NULL, &full, e);
}

static int
proxy_list_changes(struct provider *p, const char *since, provider_account_cb cb,
    void *arg, char **next, bool *full, struct qerr *e)
{
	return list(p, true, since, cb, arg, next, full, e);
}

static int
proxy_open(const struct system_config *cfg, struct provider **out, struct qerr *e)
{
	struct provider *p;
	size_t i;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	pthread_mutex_lock(&the->mu);
	for (i = 0; i < the->ncaps; i++)
		if (strcmp(the->caps[i].name, cfg->name) == 0 &&
		    strcmp(the->caps[i].kind, cfg->kind) == 0)
			p->c = the->caps[i];
	pthread_mutex_unlock(&the->mu);
	if (p->c.name[0] == '\0') {
		free(p);
		return qerr_set(e, QERR_CONFIG, "system", "%s:%d: system '%s' is not open "
		    "in the executor", cfg->file, cfg->line, cfg->name);
	}
	p->real = provider_lookup(cfg->kind);
	*out = p;
	return 0;
}

static bool
proxy_supports(const struct provider *p, enum action_type type)
{
	return (p->c.supports >> type & 1u) != 0;
}

static void
proxy_close(struct provider *p)
{
	free(p);
}

/* One proxy per built-in kind, made on first use from the kind's own table. */
#define PROXY_KINDS_MAX 16
static struct provider_ops proxies[PROXY_KINDS_MAX];
static size_t nproxies;
static pthread_mutex_t proxies_mu = PTHREAD_MUTEX_INITIALIZER;

const struct provider_ops *
privsep_lookup(const char *kind)
{
	const struct provider_ops *real = provider_lookup(kind), *out = NULL;
	size_t i;

	if (real == NULL)
		return NULL;
	pthread_mutex_lock(&proxies_mu);
	for (i = 0; i < nproxies && out == NULL; i++)
		if (strcmp(proxies[i].kind, real->kind) == 0)
			out = &proxies[i];
	if (out == NULL && nproxies < PROXY_KINDS_MAX) {
		proxies[nproxies] = (struct provider_ops){ .kind = real->kind,
			.keys = real->keys, .info = real->info, .open = proxy_open,
			.supports = proxy_supports,
			.refuses = real->refuses != NULL ? proxy_refuses : NULL,
			.execute = proxy_execute, .batch_max = real->batch_max,
			.execute_batch = real->execute_batch != NULL ?
			    proxy_execute_batch : NULL,
			.list_accounts = proxy_list_accounts,
			.list_changes = real->list_changes != NULL ? proxy_list_changes :
			    NULL,
			.close = proxy_close };
		out = &proxies[nproxies++];
	}
	pthread_mutex_unlock(&proxies_mu);
	return out;
}

/* The control channel's answers: CAPS… END into ps->next, or an ERROR. */
static int
read_caps(struct privsep *ps, struct privsep_buf *in, struct qerr *e)
{
	struct privsep_msg m;
	struct caps *nc;
	int r;

	while ((r = privsep_recv(ps->ctl, in, &m, e)) == 0 && m.type == PRIVSEP_CAPS) {
		if ((nc = realloc(ps->next, (ps->nnext + 1) * sizeof(*nc))) == NULL)
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		ps->next = nc;
		nc = &ps->next[ps->nnext++];
		snprintf(nc->name, sizeof(nc->name), "%s", m.f[PRIVSEP_CAPS_NAME].s);
		snprintf(nc->kind, sizeof(nc->kind), "%s", m.f[PRIVSEP_CAPS_KIND].s);
		nc->supports = (unsigned)m.f[PRIVSEP_CAPS_SUPPORTS].i;
	}
	if (r == 0 && m.type == PRIVSEP_ERROR)
		return privsep_get_error(&m, e);
	if (r == 0 && m.type != PRIVSEP_END)
		return qerr_set(e, QERR_INVALID, "type", "the executor answered %s on the "
		    "control channel", privsep_type_name(m.type));
	return r;
}

/* One control request and its answer. */
static int
control(struct privsep *ps, enum privsep_type t, const char *path, const char *text,
    struct qerr *e)
{
	struct privsep_buf out = { 0 }, in = { 0 };
	int r;

	privsep_begin(&out, t);
	if (t == PRIVSEP_LOAD) {
		privsep_put_str(&out, path);
		privsep_put_str(&out, text);
	}
	pthread_mutex_lock(&ps->mu);
	if (t == PRIVSEP_LOAD) {
		free(ps->next);
		ps->next = NULL;
		ps->nnext = 0;
	}
	if ((r = privsep_finish(&out, e)) == 0 && (r = privsep_send(ps->ctl, &out, e)) == 0)
		r = read_caps(ps, &in, e);
	pthread_mutex_unlock(&ps->mu);
	privsep_buf_clear(&in);
	privsep_buf_clear(&out);
	return r;
}

int
privsep_load(struct privsep *ps, const char *path, const char *text, struct qerr *e)
{
	return control(ps, PRIVSEP_LOAD, path, text, e);
}

int
privsep_swap(struct privsep *ps, struct qerr *e)
{
	struct caps *c;
	size_t n;
	int r;

	if ((r = control(ps, PRIVSEP_SWAP, NULL, NULL, e)) != 0)
		return r;
	pthread_mutex_lock(&ps->mu);
	c = ps->caps, n = ps->ncaps;
	ps->caps = ps->next, ps->ncaps = ps->nnext;
	ps->next = c, ps->nnext = n;
	pthread_mutex_unlock(&ps->mu);
	return 0;
}

int
privsep_drop(struct privsep *ps, struct qerr *e)
{
	int r = control(ps, PRIVSEP_DROP, NULL, NULL, e);

	pthread_mutex_lock(&ps->mu);
	free(ps->next);
	ps->next = NULL;
	ps->nnext = 0;
	pthread_mutex_unlock(&ps->mu);
	return r;
}

pid_t
privsep_pid(const struct privsep *ps)
{
	return ps->pid;
}

static void *
serve_thread(void *arg)
{
	void **a = arg;

	privsep_exec_serve(a[0], (int)(intptr_t)a[1]);
	close((int)(intptr_t)a[1]);
	return NULL;
}

/* The executor process: never returns. Signals meant for quelld (a terminal's ^C,
 * systemd's SIGTERM to the unit) leave it to end when the front closes its end. */
static void
executor_main(pid_t front, int ctl, const int *fds, size_t n,
    const struct privsep_user *user)
{
	struct privsep_exec x;
	void **args = calloc(n, 2 * sizeof(*args));
	pthread_t t;
	struct qerr e;
	size_t i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != front || args == NULL)
		_exit(1);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	qerr_clear(&e);
	if (privsep_sandbox_executor(user != NULL && user->drop, &e) != 0) {
		log_msg(LOG_LVL_ERROR, "executor: %s", e.msg);
		_exit(1);
	}
	privsep_exec_init(&x);
	if (user != NULL)
		x.become = *user;
	for (i = 0; i < n; i++) {
		args[2 * i] = &x;
		args[2 * i + 1] = (void *)(intptr_t)fds[i];
		if (pthread_create(&t, NULL, serve_thread, &args[2 * i]) != 0)
			_exit(1);
		pthread_detach(t);
	}
	_exit(privsep_exec_control(&x, ctl) == 0 ? 0 : 1);
}

/* Enough channels for every step the engine may run at once, a sync per system and a
 * few requests from the API. */
static size_t
channels_for(const struct config *cfg)
{
	size_t i, n = 4;

	for (i = 0; i < cfg->nsystems; i++)
		n += (size_t)cfg->systems[i].max_concurrency + 1;
	return n < 16 ? 16 : n > 512 ? 512 : n;
}

static void
fds_close(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int
privsep_start(const struct config *cfg, const struct privsep_user *user,
    struct privsep **out, struct qerr *e)
{
	size_t n = channels_for(cfg), i;
	struct privsep *ps = calloc(1, sizeof(*ps));
	int *mine = calloc(n + 1, sizeof(int)), *theirs = calloc(n + 1, sizeof(int));
	int sv[2], r = QERR_NOMEM;
	pid_t front = getpid();

	*out = NULL;
	if (ps == NULL || mine == NULL || theirs == NULL ||
	    (ps->ch = calloc(n, sizeof(*ps->ch))) == NULL ||
	    (ps->idle = calloc(n, sizeof(*ps->idle))) == NULL) {
		qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	for (i = 0; i <= n; i++)
		mine[i] = theirs[i] = -1;
	for (i = 0; i <= n; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
			r = qerr_set(e, QERR_IO, NULL, "privsep: socketpair: %s",
			    strerror(errno));
			goto out;
		}
		mine[i] = sv[0];
		theirs[i] = sv[1];
	}
	if ((ps->pid = fork()) < 0) {
		r = qerr_set(e, QERR_IO, NULL, "privsep: fork: %s", strerror(errno));
		goto out;
	}
	if (ps->pid == 0) {
		fds_close(mine, n + 1);
		executor_main(front, theirs[0], theirs + 1, n, user);
	}
	fds_close(theirs, n + 1);
	ps->ctl = mine[0];
	for (i = 0; i < n; i++) {
		ps->ch[i].fd = mine[i + 1];
		ps->idle[ps->nidle++] = n - 1 - i;
	}
	ps->nch = n;
	pthread_mutex_init(&ps->mu, NULL);
	pthread_cond_init(&ps->cv, NULL);
	log_event(LOG_LVL_INFO, "privsep.start", LOG_FIELDS(LOG_I("front_pid", front),
	    LOG_I("executor_pid", ps->pid), LOG_I("channels", (long)n)), "privsep: "
	    "front pid %ld, executor pid %ld, %zu channels", (long)front, (long)ps->pid, n);
	the = ps;
	*out = ps;
	ps = NULL;
	r = 0;
out:
	if (ps != NULL) {
		fds_close(mine, n + 1);
		fds_close(theirs, n + 1);
		free(ps->ch);
		free(ps->idle);
		free(ps);
	}
	free(mine);
	free(theirs);
	return r;
}

void
privsep_stop(struct privsep *ps)
{
	size_t i;

	if (ps == NULL)
		return;
	close(ps->ctl);
	for (i = 0; i < ps->nch; i++) {
		if (ps->ch[i].fd >= 0)
			close(ps->ch[i].fd);
		privsep_buf_clear(&ps->ch[i].in);
		privsep_buf_clear(&ps->ch[i].out);
	}
	while (waitpid(ps->pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (the == ps)
		the = NULL;
	pthread_cond_destroy(&ps->cv);
	pthread_mutex_destroy(&ps->mu);
	free(ps->caps);
	free(ps->next);
	free(ps->ch);
	free(ps->idle);
	free(ps);
}
