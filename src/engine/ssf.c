/*
 * The SSF transmitter (ssf.h). One thread reads the audit log from its durable
 * cursor ("ssf" among the SIEM cursors): each step.succeeded of a containment or a
 * release becomes one signed SET per stream that asked for its event, written to the
 * outbox in the same transaction that moves the cursor, so a crash neither loses
 * nor reorders one. The same thread then pushes each push stream's SETs in order
 * (RFC 8935) and marks each one the receiver accepted; poll streams (RFC 8936) are
 * served by src/api/routes_ssf.c from the same outbox.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/id.h"
#include "core/jws.h"
#include "core/kind.h"
#include "core/jwt.h"
#include "core/log.h"
#include "engine/engine.h"
#include "engine/ssf.h"
#include "engine/wake.h"
#include "providers/http.h"
#include "providers/kit.h"

#define CURSOR		"ssf"
#define BATCH		128		/* audit entries per transaction */
#define PUSH_BATCH	32		/* SETs per stream per round */
#define WAIT_MS		1000
#define BACKOFF_MIN_MS	250
#define BACKOFF_MAX_MS	30000
#define MAX_STREAMS	64
#define KEY_MAX		(64 * 1024)
#define REFUSED_WINDOW_MS	60000
#define RECEIVE_MS	2000		/* between polls of a transmitter */

const char *const ssf_events_supported[] = {
	SSF_RISC "account-disabled", SSF_RISC "account-enabled",
	SSF_RISC "credential-compromise", SSF_CAEP "session-revoked",
	SSF_CAEP "credential-change", SSF_VERIFICATION, NULL
};

/* A push stream's retry state: a receiver that is down delays only itself. */
struct retry {
	char id[64];
	int64_t next_ms;
	int64_t delay_ms;
	/* SETs the receiver refused (400) in the window from win_ms: the first is
	 * logged at once, the rest once as a count when the window ends, so a receiver
	 * refusing everything writes two lines a minute, not one per SET. */
	int64_t win_ms;
	unsigned win_more;
	char last_jti[64];
	char last_why[200];
};

struct ssf {
	struct ssf_conf conf;
	struct store *st;
	const char *node;		/* this node, the lease's owner */
	int64_t lease;			/* its lease note (engine_lease_hold) */
	struct http_client *http;
	pthread_t thread;
	bool started;
	_Atomic bool stop;
	struct retry retry[MAX_STREAMS];
	size_t nretry;
	bool transmit;			/* [ssf] is set */
	struct ssf_sub subs[MAX_STREAMS];	/* receivers to subscribe or poll */
	size_t nsubs;
	struct engine *_Atomic eng;	/* for polled SETs' alerts (ssf_attach) */
	int64_t sub_next, sub_delay;	/* when to try them again, ms */
};

/* One outbox per process: its generation is process-wide. */
static pthread_mutex_t outbox_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t outbox_cv = PTHREAD_COND_INITIALIZER;
static uint64_t outbox_gen;

uint64_t
ssf_outbox_generation(void)
{
	uint64_t g;

	pthread_mutex_lock(&outbox_mu);
	g = outbox_gen;
	pthread_mutex_unlock(&outbox_mu);
	return g;
}

void
ssf_outbox_queued(void)
{
	pthread_mutex_lock(&outbox_mu);
	outbox_gen++;
	pthread_cond_broadcast(&outbox_cv);
	pthread_mutex_unlock(&outbox_mu);
}

void
ssf_outbox_wait(uint64_t seen, const _Atomic bool *stop, int timeout_ms)
{
	struct timespec dl;
	int rc = 0;

	clock_deadline(CLOCK_REALTIME, timeout_ms, &dl);
	pthread_mutex_lock(&outbox_mu);
	while (outbox_gen == seen && !atomic_load(stop) && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&outbox_cv, &outbox_mu, &dl);
	pthread_mutex_unlock(&outbox_mu);
}

void
ssf_conf_clear(struct ssf_conf *c)
{
	if (c == NULL)
		return;
	kit_free_str(c->key_pem);
	json_decref(c->jwks);
	memset(c, 0, sizeof(*c));
}

static int
conf_key(const struct system_config *sc, const char *key, bool required,
    const char **out, struct qerr *e)
{
	const struct config_kv *kv = config_system_get(sc, key);

	*out = kv ? kv->value : NULL;
	if (kv == NULL && required)
		return config_error(e, sc, sc->line, key, "[ssf] needs %s", key);
	return 0;
}

static int
check_keys(const struct system_config *sc, struct qerr *e)
{
	static const char *const known[] = { "issuer", "key_file", "kid",
	    "default_subjects", NULL };
	size_t i, k;

	for (i = 0; i < sc->nkv; i++) {
		for (k = 0; known[k] && strcmp(known[k], sc->kv[i].key) != 0; k++)
			;
		if (known[k] == NULL)
			return config_error(e, sc, sc->kv[i].line, sc->kv[i].key,
			    "unknown key '%s' in [ssf]", sc->kv[i].key);
	}
	return 0;
}

/* Who holds the [ssf] key when this process does not. */
static const struct ssf_key_holder *key_holder;

void
ssf_set_key_holder(const struct ssf_key_holder *holder)
{
	key_holder = holder;
}

int
ssf_conf_load(const struct config *cfg, struct ssf_conf *out, bool *enabled,
    struct qerr *e)
{
	const struct system_config *sc = &cfg->ssf;
	struct kit_secret key = { 0 };
	json_t *jwk = NULL;
	const char *file;
	size_t n;
	int r;

	memset(out, 0, sizeof(*out));
	*enabled = sc->line != 0;
	if (!*enabled)
		return 0;
	if ((r = check_keys(sc, e)) != 0 || (r = conf_key(sc, "issuer", true,
	    &out->issuer, e)) != 0 || (r = conf_key(sc, "kid", true, &out->kid, e)) != 0 ||
	    (r = conf_key(sc, "key_file", true, &file, e)) != 0)
		return r;
	n = strlen(out->issuer);
	if ((strncmp(out->issuer, "https://", 8) != 0 &&
	    strncmp(out->issuer, "http://", 7) != 0) || out->issuer[n - 1] == '/')
		return config_error(e, sc, config_system_get(sc, "issuer")->line, "issuer",
		    "[ssf] issuer must be an http(s) URL without a trailing '/'");
	if ((r = conf_key(sc, "default_subjects", false, &out->default_subjects, e)) != 0)
		return r;
	if (out->default_subjects == NULL)
		out->default_subjects = "ALL";
	if (strcmp(out->default_subjects, "ALL") != 0 &&
	    strcmp(out->default_subjects, "NONE") != 0)
		return config_error(e, sc, config_system_get(sc, "default_subjects")->line,
		    "default_subjects", "[ssf] default_subjects must be ALL or NONE");
	if (key_holder != NULL) {
		if ((r = key_holder->public_key(&jwk, &out->alg, e)) != 0)
			return r;
	} else {
		if ((r = kit_file_read(sc, config_system_get(sc, "key_file"),
		    KIT_FILE_SECRET, KEY_MAX, &key, e)) != 0)
			return r;
		if ((r = jws_public_jwk(key.buf, out->kid, &jwk, &out->alg, e)) != 0) {
			r = config_error(e, sc, config_system_get(sc, "key_file")->line,
			    "key_file", "[ssf] key_file %s: %s", file, e->msg);
			goto out;
		}
		out->key_pem = key.buf;
		key.buf = NULL;
	}
	if ((out->jwks = json_pack("{s:[o]}", "keys", jwk)) == NULL) {
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	r = 0;
out:
	kit_secret_clear(&key);
	if (r != 0)
		ssf_conf_clear(out);
	return r;
}

int
ssf_sign(const struct ssf_conf *c, const json_t *stream, json_t *claims, char **jti,
    char **jwt, struct qerr *e)
{
	char id[37], *hdr = NULL, *body = NULL;
	json_t *h = json_pack("{s:s, s:s, s:s}", "alg", c->alg, "kid", c->kid, "typ",
	    "secevent+jwt");
	int r = QERR_NOMEM;

	*jti = NULL;
	*jwt = NULL;
	id_uuid4(id);
	if (json_object_set_new(claims, "iss", json_string(c->issuer)) != 0 ||
	    json_object_set(claims, "aud", json_object_get(stream, "aud")) != 0 ||
	    json_object_set_new(claims, "iat", json_integer(engine_now_ms() / 1000)) ||
	    json_object_set_new(claims, "jti", json_string(id)) != 0 ||
	    h == NULL || (hdr = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
	    (body = json_dumps(claims, JSON_COMPACT)) == NULL) {
		qerr_set(e, r, NULL, "out of memory");
		goto out;
	}
	if ((r = key_holder != NULL ? key_holder->sign(c->alg, hdr, body, jwt, e) :
	    jwt_sign(c->alg, c->key_pem, hdr, body, jwt, e)) != 0)
		goto out;
	if ((*jti = strdup(id)) == NULL) {
		free(*jwt);
		*jwt = NULL;
		r = qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	}
out:
	free(body);
	free(hdr);
	json_decref(h);
	return r;
}

/* CAEP's initiating_entity: a disruption rule is policy, a person (console, CLI,
 * API token) an admin, anything else quell itself. */
static const char *
initiator(const struct action *a)
{
	if (a->source != NULL && strcmp(a->source, "automatic_attack_disruption") == 0)
		return "policy";
	if (a->requested_by_kind != NULL && strcmp(a->requested_by_kind, "system") == 0)
		return "system";
	return "admin";
}

/*
 * The event a successful step of action a is, with its members; NULL: none. Every
 * event carries event_timestamp, initiating_entity and reason_admin (the CAEP
 * Interoperability Profile requires a non-empty one): the action's type and id and
 * who asked, never its free-text reason, which was written for quell's operators.
 */
static const char *
event_of(const struct action *a, int64_t at_s, json_t **body)
{
	char why[200];
	const char *ev = NULL;

	*body = NULL;
	switch (a->type) {
	case ACTION_DISABLE:
	case ACTION_DEACTIVATE:
		*body = json_pack("{s:s}", "reason", "hijacking");
		ev = SSF_RISC "account-disabled";
		break;
	case ACTION_ENABLE:
		*body = json_object();
		ev = SSF_RISC "account-enabled";
		break;
	case ACTION_MARK_COMPROMISED:
		*body = json_pack("{s:s}", "credential_type", "password");
		ev = SSF_RISC "credential-compromise";
		break;
	case ACTION_REVOKE_SESSIONS:
		*body = json_object();
		ev = SSF_CAEP "session-revoked";
		break;
	case ACTION_FORCE_PASSWORD_CHANGE:
		*body = json_pack("{s:s, s:s}", "credential_type", "password", "change_type",
		    "update");
		ev = SSF_CAEP "credential-change";
		break;
	case ACTION_SET_RISK:
	case ACTION_TYPE_COUNT:
		break;
	}
	if (*body == NULL)
		return NULL;
	snprintf(why, sizeof(why), "quell %s, action %s, %s by %s",
	    action_type_name(a->type), a->id, a->source ? a->source : "requested",
	    a->requested_by ? a->requested_by : "quell");
	if (json_object_set_new(*body, "event_timestamp", json_integer(at_s)) != 0 ||
	    json_object_set_new(*body, "initiating_entity", json_string(initiator(a))) ||
	    json_object_set_new(*body, "reason_admin", json_pack("{s:s}", "en", why))) {
		json_decref(*body);
		*body = NULL;
		return NULL;
	}
	return ev;
}

/* RFC 9493: the account as the stream's format ("email" by default, "iss_sub" when
 * the account has no address), "opaque" (its system's id), or "complex" (the user
 * as email or iss_sub and the tenant as the quell system's name). */
static json_t *
subject(const struct ssf_conf *c, const struct account *a, const char *fmt)
{
	json_t *user;

	if (fmt != NULL && strcmp(fmt, "opaque") == 0)
		return json_pack("{s:s, s:s}", "format", "opaque", "id", a->external_id);
	if (a->email != NULL && *a->email && (fmt == NULL || strcmp(fmt, "iss_sub") != 0))
		user = json_pack("{s:s, s:s}", "format", "email", "email", a->email);
	else
		user = json_pack("{s:s, s:s, s:s}", "format", "iss_sub", "iss", c->issuer,
		    "sub", a->external_id);
	if (fmt == NULL || strcmp(fmt, "complex") != 0)
		return user;
	return json_pack("{s:s, s:o, s:{s:s, s:s}}", "format", "complex", "user", user,
	    "tenant", "format", "opaque", "id", a->system);
}

static const char *
stream_status(const json_t *stream)
{
	const char *v = json_string_value(json_object_get(stream, "status"));

	return v ? v : "enabled";
}

static bool
wants(const json_t *stream, const char *event, int64_t at)
{
	const json_t *v;
	size_t i;

	if (json_integer_value(json_object_get(stream, "created_at")) > at ||
	    strcmp(stream_status(stream), "disabled") == 0)
		return false;
	json_array_foreach(json_object_get(stream, "events_delivered"), i, v)
		if (json_string_value(v) && strcmp(json_string_value(v), event) == 0)
			return true;
	return false;
}

struct fill {
	struct ssf *s;
	struct store_tx *tx;
	json_t *streams;	/* the streams' configurations */
	int64_t last;		/* the last entry seen */
	size_t queued;		/* SETs written */
	struct qerr *e;
};

static int
collect_stream(const char *key, const char *text, int64_t seq, void *arg)
{
	json_t *o = json_loads(text, 0, NULL);

	(void)key;
	(void)seq;
	if (o == NULL)
		return 0;
	return json_array_append_new(arg, o) == 0 ? 0 : QERR_NOMEM;
}

/* Queues the SET of ev (its body taken) for every stream that wants it. */
static int
queue_event(struct fill *f, const struct account *acc, const char *ev, json_t *body,
    const char *txn, int64_t at)
{
	char *jti = NULL, *jwt = NULL;
	json_t *st, *claims;
	size_t i;
	int r = 0;

	json_array_foreach(f->streams, i, st) {
		if (!wants(st, ev, at) || !ssf_stream_includes(st, acc, f->s->conf.issuer))
			continue;
		claims = json_pack("{s:o?, s:{s:O}, s:s}", "sub_id", subject(&f->s->conf, acc,
		    json_string_value(json_object_get(st, "quell_subject_format"))),
		    "events", ev, body, "txn", txn);
		if (claims == NULL)
			r = qerr_set(f->e, QERR_NOMEM, NULL, "out of memory");
		else if ((r = ssf_sign(&f->s->conf, st, claims, &jti, &jwt, f->e)) == 0)
			r = store_ssf_outbox_add(f->tx, json_string_value(json_object_get(st,
			    "stream_id")), jti, jwt, engine_now_ms(), f->e);
		if (r == 0)
			f->queued++;
		json_decref(claims);
		free(jti);
		free(jwt);
		jti = jwt = NULL;
		if (r != 0)
			break;
	}
	json_decref(body);
	return r;
}

/* A verification request's SET, for its stream if it is still there. */
static int
verification(struct fill *f, const struct audit_entry *ent)
{
	json_t *d = json_loads(ent->detail ? ent->detail : "", 0, NULL), *st, *claims;
	const char *id = json_string_value(json_object_get(d, "stream_id")), *sid;
	char *jti = NULL, *jwt = NULL;
	size_t i;
	int r = 0;

	json_array_foreach(f->streams, i, st) {
		sid = json_string_value(json_object_get(st, "stream_id"));
		if (id == NULL || sid == NULL || strcmp(sid, id) != 0)
			continue;
		claims = json_pack("{s:{s:s, s:s}, s:{s:{s:O?}}}", "sub_id", "format",
		    "opaque", "id", id, "events", SSF_VERIFICATION, "state",
		    json_object_get(d, "state"));
		if (claims == NULL)
			r = qerr_set(f->e, QERR_NOMEM, NULL, "out of memory");
		else if ((r = ssf_sign(&f->s->conf, st, claims, &jti, &jwt, f->e)) == 0 &&
		    (r = store_ssf_outbox_add(f->tx, id, jti, jwt, engine_now_ms(),
		    f->e)) == 0)
			f->queued++;
		json_decref(claims);
		free(jti);
		free(jwt);
		break;
	}
	json_decref(d);
	return r;
}

static int
entry(const struct audit_entry *ent, void *arg)
{
	struct fill *f = arg;
	struct account acc;
	struct action a;
	const char *ev, *acc_id = NULL;
	json_t *body;
	size_t i;
	int r;

	f->last = ent->seq;
	if (strcmp(ent->event, SSF_VERIFY_AUDIT) == 0)
		return verification(f, ent);
	if (strcmp(ent->event, "step.succeeded") != 0 || ent->action_id == NULL ||
	    ent->step_id == NULL)
		return 0;
	memset(&a, 0, sizeof(a));
	memset(&acc, 0, sizeof(acc));
	if ((r = store_action_get(f->tx, ent->action_id, &a, f->e)) != 0)
		goto out;
	for (i = 0; i < a.nsteps; i++)
		if (strcmp(a.steps[i].id, ent->step_id) == 0)
			acc_id = a.steps[i].account_id;
	if (acc_id == NULL || (ev = event_of(&a, ent->time / 1000, &body)) == NULL)
		goto out;
	if ((r = store_account_get(f->tx, acc_id, &acc, f->e)) != 0) {
		json_decref(body);
		goto out;
	}
	r = queue_event(f, &acc, ev, body, a.id, ent->time);
out:
	/* An action or account gone since is skipped, not retried for ever. */
	if (r == QERR_NOT_FOUND)
		r = 0;
	account_clear(&acc);
	action_clear(&a);
	return r;
}

/* One batch of the audit log into the outbox; *more when the batch was full. */
static int
fill_once(struct ssf *s, bool *more, struct qerr *e)
{
	struct fill f = { .s = s, .e = e };
	int64_t cursor;
	int r;

	*more = false;
	if ((f.streams = json_array()) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	if ((r = store_tx_begin(s->st, true, &f.tx, e)) != 0)
		goto out;
	if ((r = store_siem_cursor_get(f.tx, CURSOR, &cursor, e)) != 0 ||
	    (r = store_ssf_stream_list(f.tx, collect_stream, f.streams, e)) != 0)
		goto out;
	f.last = cursor;
	if ((r = store_audit_list(f.tx, cursor, BATCH, entry, &f, e)) != 0)
		goto out;
	*more = f.last - cursor >= BATCH;
	if (f.last != cursor && (r = store_siem_cursor_put(f.tx, CURSOR, f.last,
	    engine_now_ms(), e)) != 0)
		goto out;
	r = store_tx_commit(f.tx, e);
	f.tx = NULL;
	if (r == 0 && f.queued > 0)
		ssf_outbox_queued();
out:
	if (f.tx != NULL)
		store_tx_rollback(f.tx);
	json_decref(f.streams);
	return r;
}

static struct retry *
retry_of(struct ssf *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->nretry; i++)
		if (strcmp(s->retry[i].id, id) == 0)
			return &s->retry[i];
	if (s->nretry == MAX_STREAMS || strlen(id) >= sizeof(s->retry[0].id))
		return NULL;
	memset(&s->retry[s->nretry], 0, sizeof(s->retry[0]));
	snprintf(s->retry[s->nretry].id, sizeof(s->retry[0].id), "%s", id);
	return &s->retry[s->nretry++];
}

struct pending {
	char **jti;
	char **jwt;
	size_t n;
};

static int
collect_set(const char *key, const char *text, int64_t seq, void *arg)
{
	struct pending *p = arg;

	(void)seq;
	if (p->n == PUSH_BATCH)
		return 0;
	if ((p->jti[p->n] = strdup(key)) == NULL || (p->jwt[p->n] = strdup(text)) ==
	    NULL) {
		free(p->jti[p->n]);
		return QERR_NOMEM;
	}
	p->n++;
	return 0;
}

/* The refusals of a window that ended, as one line. */
static void
refused_flush(struct retry *rt, bool force)
{
	if (rt->win_more == 0 || (!force && engine_now_ms() - rt->win_ms <
	    REFUSED_WINDOW_MS))
		return;
	log_event(LOG_LVL_WARN, "ssf.rejected", LOG_FIELDS(LOG_S("stream", rt->id),
	    LOG_I("more", rt->win_more), LOG_S("jti", rt->last_jti),
	    LOG_S("answer", rt->last_why)), "SSF stream %s: the receiver refused %u more "
	    "SET(s) within a minute, the last %s: %s", rt->id, rt->win_more,
	    rt->last_jti, rt->last_why);
	rt->win_more = 0;
}

static void
refused(struct retry *rt, const char *url, const char *jti, const char *answer)
{
	snprintf(rt->last_jti, sizeof(rt->last_jti), "%s", jti);
	snprintf(rt->last_why, sizeof(rt->last_why), "%s", answer ? answer : "");
	if (rt->win_ms != 0 && engine_now_ms() - rt->win_ms < REFUSED_WINDOW_MS) {
		rt->win_more++;
		return;
	}
	refused_flush(rt, true);
	rt->win_ms = engine_now_ms();
	log_event(LOG_LVL_WARN, "ssf.rejected", LOG_FIELDS(LOG_S("stream", rt->id),
	    LOG_S("jti", jti), LOG_S("answer", rt->last_why)), "SSF receiver %s refused "
	    "SET %s: %s (more within a minute are counted)", url, jti, rt->last_why);
}

/* Forgets the retry state of streams deleted since, or their slots would run out. */
static void
retry_prune(struct ssf *s, const json_t *streams)
{
	const json_t *st;
	size_t i, k, kept = 0;
	const char *id;
	bool live;

	for (i = 0; i < s->nretry; i++) {
		live = false;
		json_array_foreach(streams, k, st)
			if ((id = json_string_value(json_object_get(st, "stream_id"))) &&
			    strcmp(id, s->retry[i].id) == 0)
				live = true;
		if (!live)
			refused_flush(&s->retry[i], true);
		else if (kept++ != i)
			s->retry[kept - 1] = s->retry[i];
	}
	s->nretry = kept;
}

/*
 * RFC 8935 2.2 and 2.3: 202 is taken; a 400 with an error is a SET the receiver will
 * never take (logged, then dropped, or it would block the stream for ever); anything
 * else is tried again later.
 */
static int
push_one(struct ssf *s, struct retry *rt, const json_t *delivery, const char *jti,
    const char *jwt, bool *taken, struct qerr *e)
{
	const char *auth = json_string_value(json_object_get(delivery,
	    "authorization_header"));
	struct http_header h[3] = {
		{ "Content-Type", "application/secevent+jwt" },
		{ "Accept", "application/json" },
		{ "Authorization", auth },
	};
	struct http_request rq = { .method = "POST", .url = json_string_value(
	    json_object_get(delivery, "endpoint_url")), .body = jwt, .body_len = strlen(jwt),
	    .headers = h, .nheaders = auth ? 3 : 2 };
	struct http_response resp = { 0 };
	int r;

	*taken = false;
	if ((r = http_do(s->http, &rq, &resp, e)) != 0)
		return r;
	if (resp.status == 202 || resp.status == 200)
		*taken = true;
	else if (resp.status == 400) {
		*taken = true;
		refused(rt, rq.url, jti, resp.body);
	} else
		r = qerr_set(e, QERR_TRANSIENT, NULL, "receiver %s answered %ld", rq.url,
		    resp.status);
	http_response_clear(&resp);
	return r;
}

static int
ack(struct ssf *s, const char *stream_id, const char *jti, struct qerr *e)
{
	struct store_tx *tx = NULL;
	int r;

	if ((r = store_tx_begin(s->st, true, &tx, e)) != 0)
		return r;
	r = store_ssf_outbox_ack(tx, stream_id, jti, engine_now_ms(), e);
	if (r == 0 || r == QERR_NOT_FOUND)
		return store_tx_commit(tx, e);
	store_tx_rollback(tx);
	return r;
}

/* Pushes the stream's pending SETs in order until one is not taken. */
static void
push_stream(struct ssf *s, const json_t *stream, struct pending *p)
{
	const char *id = json_string_value(json_object_get(stream, "stream_id"));
	struct retry *rt = retry_of(s, id);
	struct store_tx *tx = NULL;
	struct qerr e = { 0 };
	bool taken = true;
	size_t i;
	int r;

	if (rt == NULL)
		return;
	refused_flush(rt, false);
	if (rt->next_ms > engine_now_ms())
		return;
	if ((r = store_tx_begin(s->st, false, &tx, &e)) != 0)
		goto out;
	r = store_ssf_outbox_pending(tx, id, PUSH_BATCH, collect_set, p, &e);
	store_tx_rollback(tx);
	for (i = 0; r == 0 && taken && i < p->n && !s->stop; i++)
		if ((r = push_one(s, rt, json_object_get(stream, "delivery"), p->jti[i],
		    p->jwt[i], &taken, &e)) == 0 && taken)
			r = ack(s, id, p->jti[i], &e);
out:
	for (i = 0; i < p->n; i++) {
		free(p->jti[i]);
		free(p->jwt[i]);
	}
	p->n = 0;
	if (r == 0) {
		rt->delay_ms = 0;
		return;
	}
	rt->delay_ms = rt->delay_ms == 0 ? BACKOFF_MIN_MS : rt->delay_ms * 2;
	if (rt->delay_ms > BACKOFF_MAX_MS)
		rt->delay_ms = BACKOFF_MAX_MS;
	rt->next_ms = engine_now_ms() + rt->delay_ms;
	log_event(LOG_LVL_WARN, "ssf.push_failed", LOG_FIELDS(LOG_S("stream", id),
	    LOG_S("why", e.msg), LOG_I("retry_ms", rt->delay_ms)),
	    "SSF stream %s: %s; again in %lld ms", id, e.msg, (long long)rt->delay_ms);
}

static void
push_all(struct ssf *s)
{
	char *jti[PUSH_BATCH], *jwt[PUSH_BATCH];
	struct pending p = { .jti = jti, .jwt = jwt };
	struct store_tx *tx = NULL;
	struct qerr e = { 0 };
	json_t *streams = json_array(), *st;
	const char *m;
	size_t i;
	int r;

	if (streams == NULL || store_tx_begin(s->st, false, &tx, &e) != 0) {
		json_decref(streams);
		return;
	}
	r = store_ssf_stream_list(tx, collect_stream, streams, &e);
	store_tx_rollback(tx);
	if (r == 0)
		retry_prune(s, streams);
	json_array_foreach(streams, i, st) {
		m = json_string_value(json_object_get(json_object_get(st, "delivery"),
		    "method"));
		/* A paused stream keeps its SETs for when it is enabled again. */
		if (m != NULL && strcmp(m, SSF_PUSH) == 0 && !s->stop &&
		    strcmp(stream_status(st), "enabled") == 0)
			push_stream(s, st, &p);
	}
	json_decref(streams);
}

/* Tries the receivers not yet subscribed; the ones that failed again after a
 * backoff (1 s doubling to 60 s). */
static void
subscribe_due(struct ssf *s)
{
	struct qerr e = { 0 };
	size_t i;
	bool left = false;

	if (engine_now_ms() < s->sub_next)
		return;
	for (i = 0; i < s->nsubs; i++) {
		if (s->subs[i].done)
			continue;
		if (ssf_subscribe(s->http, &s->subs[i], &e) == 0) {
			s->subs[i].done = true;
			continue;
		}
		left = true;
		log_event(LOG_LVL_WARN, "ssf.subscribe_failed", LOG_FIELDS(LOG_S("receiver",
		    s->subs[i].rc->name), LOG_S("why", e.msg)), "SSF receiver %s: cannot "
		    "subscribe: %s", s->subs[i].rc->name, e.msg);
	}
	s->sub_delay = !left ? 0 : s->sub_delay == 0 ? 1000 : s->sub_delay * 2 > 60000 ?
	    60000 : s->sub_delay * 2;
	s->sub_next = left ? engine_now_ms() + s->sub_delay : INT64_MAX;
}

/* Whether quell polls this receiver's transmitter rather than being pushed to. */
static bool
polls(const struct system_config *rc)
{
	const struct config_kv *d = config_system_get(rc, "delivery");

	return config_system_get(rc, "poll_url") != NULL ||
	    (d != NULL && strcmp(d->value, "poll") == 0);
}

/* Polls the transmitters of the poll receivers that are due: again at once while
 * SETs wait, else every RECEIVE_MS; one that fails after a backoff (1 s doubling to
 * a minute). */
static void
receive_due(struct ssf *s)
{
	struct engine *eng = atomic_load(&s->eng);
	struct ssf_sub *sub;
	struct qerr e = { 0 };
	bool more, failed;
	size_t i;
	int round;

	for (i = 0; eng != NULL && i < s->nsubs && !s->stop; i++) {
		sub = &s->subs[i];
		if (!sub->poll || sub->poll_url == NULL || engine_now_ms() < sub->poll_next)
			continue;
		more = true;
		failed = false;
		for (round = 0; more && !failed && round < 8 && !s->stop; round++)
			failed = ssf_poll_receive(s->http, eng, s->st, sub, &more, &e) != 0;
		if (failed) {
			sub->poll_delay = sub->poll_delay == 0 ? 1000 : sub->poll_delay * 2 >
			    60000 ? 60000 : sub->poll_delay * 2;
			log_event(LOG_LVL_WARN, "ssf.poll_failed", LOG_FIELDS(LOG_S("receiver",
			    sub->rc->name), LOG_S("why", e.msg), LOG_I("retry_ms",
			    sub->poll_delay)), "SSF receiver %s: polling: %s; again in %lld ms",
			    sub->rc->name, e.msg, (long long)sub->poll_delay);
		} else
			sub->poll_delay = 0;
		sub->poll_next = engine_now_ms() + (sub->poll_delay ? sub->poll_delay :
		    RECEIVE_MS);
	}
}

void
ssf_attach(struct ssf *s, struct engine *eng)
{
	if (s != NULL)
		atomic_store(&s->eng, eng);
}

static int
oauth_send(void *arg, const struct http_request *rq, struct http_response *resp,
    struct qerr *e)
{
	return http_do(arg, rq, resp, e);
}

/* The receivers that subscribe themselves (push_url), with the OAuth client
 * credentials of those that have them (token_url): the secret is read now, so that
 * a file quell cannot read stops it starting. */
static int
find_subs(struct ssf *s, const struct config *cfg, struct qerr *e)
{
	const struct system_config *rc;
	struct ssf_sub *sub;
	struct kit_oauth_config oc;
	size_t i;
	int r;

	for (i = 0; i < cfg->npolicy && s->nsubs < MAX_STREAMS; i++) {
		if (strcmp((rc = &cfg->policy[i])->kind, "ssf_receiver") != 0 ||
		    (config_system_get(rc, "push_url") == NULL && !polls(rc)))
			continue;
		sub = &s->subs[s->nsubs++];
		sub->rc = rc;
		if ((sub->poll = polls(rc)) && ((sub->acks = json_array()) == NULL ||
		    (sub->errs = json_object()) == NULL))
			return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		/* A poll_url is a stream made already: nothing to subscribe. */
		if (config_system_get(rc, "poll_url") != NULL) {
			sub->done = true;
			if ((sub->poll_url = strdup(config_system_get(rc,
			    "poll_url")->value)) == NULL)
				return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
		}
		if (config_system_get(rc, "token_url") == NULL)
			continue;
		if ((r = kit_file_read(rc, config_system_get(rc, "client_secret_file"),
		    KIT_FILE_SECRET | KIT_FILE_ONE_LINE, KEY_MAX, &sub->secret, e)) != 0)
			return r;
		memset(&oc, 0, sizeof(oc));
		oc.vendor = rc->name;
		oc.token_url = config_system_get(rc, "token_url")->value;
		oc.client_id = config_system_get(rc, "client_id")->value;
		oc.scope = config_system_get(rc, "scope") ?
		    config_system_get(rc, "scope")->value : NULL;
		oc.secret = &sub->secret;
		if ((r = kit_oauth_init(&sub->oauth, &oc, oauth_send, s->http, e)) != 0)
			return r;
		sub->oauth_on = true;
	}
	return 0;
}

static void *
run(void *arg)
{
	struct ssf *s = arg;
	struct qerr e = { 0 };
	uint64_t gen;
	bool more;

	while (!s->stop) {
		gen = store_audit_generation(s->st);
		/* One node of a cluster subscribes, polls, fills and pushes: a
		 * transmitter sees one subscriber and poller, receivers get each SET
		 * once from one sender, and one that takes over starts from the cursor. */
		if (!engine_lease_hold(s->st, s->node, "ssf", &s->lease)) {
			store_audit_wait(s->st, gen, &s->stop, WAIT_MS);
			continue;
		}
		subscribe_due(s);
		receive_due(s);
		if (!s->transmit) {
			store_audit_wait(s->st, gen, &s->stop, WAIT_MS);
			continue;
		}
		do {
			more = false;
			if (fill_once(s, &more, &e) != 0)
				log_event(LOG_LVL_WARN, "ssf.outbox_failed", LOG_FIELDS(
				    LOG_S("why", e.msg)), "SSF outbox: %s", e.msg);
		} while (more && !s->stop);
		push_all(s);
		store_audit_wait(s->st, gen, &s->stop, WAIT_MS);
	}
	return NULL;
}

/* The transmitter's stream API takes a bearer token (api_token_file) or one from
 * the OAuth client credentials grant (token_url, client_id, client_secret_file,
 * optional scope): all three or none, not both ways. */
static int
check_oauth(const struct system_config *rc, struct qerr *e)
{
	static const char *const need[] = { "token_url", "client_id",
	    "client_secret_file" };
	const struct config_kv *kv = config_system_get(rc, "token_url");
	struct kit_url u;
	size_t k, n = 0;

	for (k = 0; k < 3; k++)
		n += config_system_get(rc, need[k]) != NULL;
	if (n == 0 && config_system_get(rc, "scope") == NULL)
		return 0;
	for (k = 0; k < 3; k++)
		if (config_system_get(rc, need[k]) == NULL)
			return config_error(e, rc, rc->line, need[k], "ssf_receiver '%s': "
			    "OAuth client credentials need token_url, client_id and "
			    "client_secret_file; %s is missing", rc->name, need[k]);
	if (config_system_get(rc, "api_token_file") != NULL)
		return config_error(e, rc, config_system_get(rc, "api_token_file")->line,
		    "api_token_file", "ssf_receiver '%s': api_token_file or OAuth client "
		    "credentials (token_url), not both", rc->name);
	if (kit_url_parse(kv->value, "https http", &u) != 0)
		return config_error(e, rc, kv->line, "token_url", "ssf_receiver '%s': "
		    "token_url must be an http(s) URL", rc->name);
	if (!kit_one_word(config_system_get(rc, "client_id")->value))
		return config_error(e, rc, config_system_get(rc, "client_id")->line,
		    "client_id", "ssf_receiver '%s': client_id must be one word", rc->name);
	return 0;
}

/* delivery: push (quell is pushed to; the default) or poll (quell subscribes a poll
 * stream through configuration_url); poll_url: a poll stream made already. */
static int
check_delivery(const struct system_config *rc, struct qerr *e)
{
	const struct config_kv *d = config_system_get(rc, "delivery");
	const struct config_kv *pu = config_system_get(rc, "poll_url");
	struct kit_url u;

	if (d != NULL && strcmp(d->value, "push") != 0 && strcmp(d->value, "poll") != 0)
		return config_error(e, rc, d->line, "delivery", "ssf_receiver '%s': "
		    "delivery must be push or poll", rc->name);
	if (pu != NULL && kit_url_parse(pu->value, "https http", &u) != 0)
		return config_error(e, rc, pu->line, "poll_url", "ssf_receiver '%s': "
		    "poll_url must be an http(s) URL", rc->name);
	if (polls(rc) && config_system_get(rc, "push_url") != NULL)
		return config_error(e, rc, config_system_get(rc, "push_url")->line,
		    "push_url", "ssf_receiver '%s': a receiver that polls has no push_url",
		    rc->name);
	if (d != NULL && strcmp(d->value, "poll") == 0 && pu == NULL &&
	    config_system_get(rc, "configuration_url") == NULL)
		return config_error(e, rc, d->line, "delivery", "ssf_receiver '%s': "
		    "delivery = poll subscribes through configuration_url (or give "
		    "poll_url)", rc->name);
	return 0;
}

/* Each [ssf_receiver] names its transmitter, the audience quell is, and the
 * token a pusher must hold (src/api/routes_ssf_receive.c reads them). */
static int
check_receivers(const struct config *cfg, struct qerr *e)
{
	static const char *const need[] = { "issuer", "audience", "token_file" };
	static const char *const known[] = { "issuer", "jwks_uri", "audience",
	    "token_file", "map", "role", "configuration_url", "push_url",
	    "api_token_file", "events", "token_url", "client_id",
	    "client_secret_file", "scope", "sub_id_type", "delivery", "poll_url" };
#define NKNOWN (sizeof(known) / sizeof(known[0]))
	const struct system_config *rc;
	const struct kind_info *owner;
	size_t i, k, j;
	int r;

	for (i = 0; i < cfg->npolicy; i++) {
		if (strcmp((rc = &cfg->policy[i])->kind, "ssf_receiver") != 0)
			continue;
		/* token_file is the pusher's: a receiver that polls has none. */
		for (k = 0; k < (polls(rc) ? 2 : 3); k++)
			if (config_system_get(rc, need[k]) == NULL)
				return config_error(e, rc, rc->line, need[k], "ssf_receiver "
				    "'%s' needs %s", rc->name, need[k]);
		if ((r = check_delivery(rc, e)) != 0)
			return r;
		if (config_system_get(rc, "jwks_uri") == NULL &&
		    config_system_get(rc, "configuration_url") == NULL)
			return config_error(e, rc, rc->line, "jwks_uri", "ssf_receiver '%s' "
			    "needs jwks_uri or configuration_url", rc->name);
		if (config_system_get(rc, "push_url") != NULL &&
		    config_system_get(rc, "configuration_url") == NULL)
			return config_error(e, rc, config_system_get(rc, "push_url")->line,
			    "push_url", "ssf_receiver '%s': push_url subscribes through "
			    "configuration_url, which is not set", rc->name);
		if ((r = check_oauth(rc, e)) != 0)
			return r;
		if (config_system_get(rc, "sub_id_type") != NULL && kind_alert_id_find(
		    &cfg->kinds, config_system_get(rc, "sub_id_type")->value, &owner) == NULL)
			return config_error(e, rc, config_system_get(rc, "sub_id_type")->line,
			    "sub_id_type", "ssf_receiver '%s': sub_id_type must be an alert "
			    "account id type of a configured kind (upn, sid, entra_id, okta_id)",
			    rc->name);
		for (k = 0; k < rc->nkv; k++) {
			for (j = 0; j < NKNOWN && strcmp(known[j], rc->kv[k].key) != 0; j++)
				;
			if (j == NKNOWN)
				return config_error(e, rc, rc->kv[k].line, rc->kv[k].key,
				    "unknown key '%s' in ssf_receiver '%s'", rc->kv[k].key,
				    rc->name);
		}
	}
	return 0;
}

int
ssf_start(const struct config *cfg, struct store *st, struct ssf **out, struct qerr *e)
{
	struct http_options ho = { .timeout_ms = 10000 };
	struct ssf *s;
	bool on;
	int r;

	*out = NULL;
	if ((r = check_receivers(cfg, e)) != 0)
		return r;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	s->st = st;
	s->node = cfg->node_id;
	if ((r = ssf_conf_load(cfg, &s->conf, &on, e)) != 0)
		goto fail;
	s->transmit = on;
	if ((r = http_client_new(&ho, &s->http, e)) != 0 || (r = find_subs(s, cfg, e)))
		goto fail;
	if (!on && s->nsubs == 0)
		goto fail;
	if (pthread_create(&s->thread, NULL, run, s) != 0) {
		r = qerr_set(e, QERR_INTERNAL, NULL, "cannot start the SSF thread");
		goto fail;
	}
	s->started = true;
	*out = s;
	return 0;
fail:
	ssf_stop(s);
	return r;
}

int
ssf_check(const struct config *cfg, struct qerr *e)
{
	struct ssf_conf c;
	struct kit_secret secret = { 0 };
	const struct system_config *rc;
	bool on;
	size_t i;
	int r;

	if ((r = check_receivers(cfg, e)) != 0 || (r = ssf_conf_load(cfg, &c, &on, e)) != 0)
		return r;
	ssf_conf_clear(&c);
	for (i = 0; i < cfg->npolicy; i++) {
		rc = &cfg->policy[i];
		if (strcmp(rc->kind, "ssf_receiver") != 0 ||
		    config_system_get(rc, "token_url") == NULL)
			continue;
		r = kit_file_read(rc, config_system_get(rc, "client_secret_file"),
		    KIT_FILE_SECRET | KIT_FILE_ONE_LINE, KEY_MAX, &secret, e);
		kit_secret_clear(&secret);
		if (r != 0)
			return r;
	}
	return 0;
}

const struct ssf_conf *
ssf_conf_of(const struct ssf *s)
{
	return s && s->transmit ? &s->conf : NULL;
}

void
ssf_stop(struct ssf *s)
{
	size_t i;

	if (s == NULL)
		return;
	if (s->started) {
		s->stop = true;
		store_audit_kick(s->st);
		pthread_join(s->thread, NULL);
	}
	for (i = 0; i < s->nsubs; i++) {
		kit_oauth_clear(&s->subs[i].oauth);
		kit_secret_clear(&s->subs[i].secret);
		free(s->subs[i].poll_url);
		json_decref(s->subs[i].acks);
		json_decref(s->subs[i].errs);
	}
	http_client_free(s->http);
	ssf_conf_clear(&s->conf);
	free(s);
}
