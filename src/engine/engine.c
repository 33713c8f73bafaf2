/*
 * Starting and stopping the engine: its providers, the recovery after a restart, and
 * the order in which the pipeline (pipeline.c), syncs, SIEM forwarders and automatic
 * disruption come up and go down; what it says about its identity systems.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "internal.h"
#include "ssf.h"

int64_t
engine_now_ms(void)
{
	return clock_real_ms();
}

int64_t
engine_now_us(void)
{
	return clock_real_us();
}

struct engine_system *
engine_find_system(struct engine *eng, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < eng->nsys; i++)
		if (strcmp(eng->sys[i].cfg->name, name) == 0)
			return &eng->sys[i];
	return NULL;
}

void
engine_system_seen(struct engine_system *sys, bool reachable, const char *why)
{
	bool was = atomic_exchange(&sys->unreachable, !reachable);

	if (was == !reachable)
		return;
	if (reachable)
		log_event(LOG_LVL_INFO, "system.recovered", LOG_FIELDS(LOG_S("system",
		    sys->cfg->name), LOG_S("kind", sys->cfg->kind)),
		    "identity system %s recovered: it answers again", sys->cfg->name);
	else
		log_event(LOG_LVL_ERROR, "system.unreachable", LOG_FIELDS(LOG_S("system",
		    sys->cfg->name), LOG_S("kind", sys->cfg->kind), LOG_S("reason", why)),
		    "identity system %s unreachable: %s", sys->cfg->name, why);
}

/* After a restart: this node's running steps are claimable again, and every open
 * action's status is brought in line with its steps. */
static int
recover(struct engine *eng, struct qerr *e)
{
	struct store_tx *tx = NULL;
	char **ids = NULL;
	size_t n = 0, i;
	int r;

	if ((r = store_tx_begin(eng->st, true, &tx, e)) != 0)
		return r;
	if ((r = store_step_release(tx, eng->opt.node_id, e)) != 0 ||
	    (r = store_action_open_ids(tx, &ids, &n, e)) != 0)
		goto out;
	for (i = 0; i < n && r == 0; i++)
		r = engine_rollup_tx(tx, &eng->nactor, ids[i], engine_now_ms(), e);
	if (r == 0) {
		r = store_tx_commit(tx, e);
		tx = NULL;
	}
out:
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	store_tx_rollback(tx);
	return r;
}

static int
open_systems(struct engine *eng, struct qerr *e)
{
	const struct system_config *sc;
	size_t i;
	int r;

	if ((eng->sys = calloc(eng->cfg->nsystems + 1, sizeof(*eng->sys))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	for (i = 0; i < eng->cfg->nsystems; i++) {
		sc = &eng->cfg->systems[i];
		eng->sys[i].cfg = sc;
		if ((eng->sys[i].ops = eng->opt.lookup(sc->kind)) == NULL)
			return qerr_set(e, QERR_CONFIG, "kind",
			    "%s:%d: unknown kind '%s' for system '%s'", sc->file, sc->line,
			    sc->kind, sc->name);
		if ((r = engine_budget_parse(sc, &eng->sys[i].shared_rate,
		    &eng->sys[i].shared_burst, e)) != 0 ||
		    (r = provider_open(eng->sys[i].ops, sc, &eng->sys[i].p, e)) != 0)
			return r;
		eng->sys[i].limit = sc->max_concurrency;
		QM_SET(QM_PROVIDER_CONCURRENCY, sc->max_concurrency, sc->name);
		eng->nsys++;
	}
	return 0;
}

static void
defaults(struct engine_options *o)
{
	if (o->workers <= 0)
		o->workers = 8;
	if (o->lease_ms <= 0)
		o->lease_ms = 60000;
	if (o->retry_base_ms <= 0)
		o->retry_base_ms = 500;
	if (o->retry_cap_ms <= 0)
		o->retry_cap_ms = 30000;
	if (o->max_attempts <= 0)
		o->max_attempts = 25;
	if (o->step_deadline_ms <= 0)
		o->step_deadline_ms = 6 * 3600000LL;
	if (o->lookup == NULL)
		o->lookup = provider_lookup;
	if (o->clock_ms == NULL)
		o->clock_ms = engine_now_ms;
}

int
engine_start(const struct config *cfg, struct store *st,
    const struct engine_options *opt, struct engine **out, struct qerr *e)
{
	struct engine *eng;
	int r;

	if ((eng = calloc(1, sizeof(*eng))) == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	eng->cfg = cfg;
	eng->st = st;
	eng->opt = *opt;
	defaults(&eng->opt);
	/* The node's own steps (started, finished, expired) are audited as it. */
	eng->nactor.name = eng->opt.node_id;
	eng->nactor.kind = "system";
	pthread_mutex_init(&eng->mu, NULL);
	pthread_cond_init(&eng->cv_dispatch, NULL);
	pthread_cond_init(&eng->cv_run, NULL);
	pthread_cond_init(&eng->cv_done, NULL);
	pthread_cond_init(&eng->cv_keeper, NULL);
	pthread_mutex_init(&eng->dmu, NULL);
	if ((r = policy_load(cfg, &eng->pol, e)) != 0 ||
	    (r = engine_disruption_start(eng, e)) != 0 ||
	    (r = open_systems(eng, e)) != 0 || (r = recover(eng, e)) != 0 ||
	    (r = engine_sync_start(eng, e)) != 0 ||
	    (r = siem_start(cfg, st, &eng->siem, e)) != 0 ||
	    (r = ssf_start(cfg, st, &eng->ssf, e)) != 0 ||
	    (r = engine_pipeline_start(eng, e)) != 0) {
		engine_stop(eng);
		return r;
	}
	/* The SETs quell polls become alerts through the engine, running from here. */
	ssf_attach(eng->ssf, eng);
	qerr_clear(e);
	*out = eng;
	return 0;
}

/* Stops the SIEM forwarders, the syncs and the pipeline, then closes the providers. */
void
engine_stop(struct engine *eng)
{
	size_t i;

	if (eng == NULL)
		return;
	/* First: whatever it had not delivered goes after the next start. */
	siem_stop(eng->siem);
	ssf_stop(eng->ssf);
	engine_sync_stop(eng);
	engine_pipeline_stop(eng);
	for (i = 0; i < eng->nsys; i++)
		provider_close(eng->sys[i].ops, eng->sys[i].p);
	free(eng->sys);
	engine_disruption_stop(eng);
	policy_free(eng->pol);
	pthread_mutex_destroy(&eng->dmu);
	pthread_cond_destroy(&eng->cv_keeper);
	pthread_cond_destroy(&eng->cv_done);
	pthread_cond_destroy(&eng->cv_run);
	pthread_cond_destroy(&eng->cv_dispatch);
	pthread_mutex_destroy(&eng->mu);
	free(eng);
}

const struct ssf_conf *
engine_ssf_conf(struct engine *eng)
{
	return ssf_conf_of(eng->ssf);
}

int
engine_system_info(struct engine *eng, const char *name, const char **kind,
    bool supported[ACTION_TYPE_COUNT])
{
	struct engine_system *sys = engine_find_system(eng, name);
	int t;

	if (sys == NULL)
		return QERR_NOT_FOUND;
	*kind = sys->cfg->kind;
	for (t = 0; t < ACTION_TYPE_COUNT; t++)
		supported[t] = provider_supports(sys->ops, sys->p, (enum action_type)t);
	return 0;
}

size_t
engine_siem_count(struct engine *eng)
{
	return siem_count(eng->siem);
}

int
engine_siem_status(struct engine *eng, size_t i, struct siem_status *out,
    struct qerr *e)
{
	return siem_status(eng->siem, i, out, e);
}

const struct policy *
engine_policy(struct engine *eng)
{
	return eng->pol;
}

size_t
engine_system_count(struct engine *eng)
{
	return eng->nsys;
}

const char *
engine_system_name(struct engine *eng, size_t i)
{
	return i < eng->nsys ? eng->sys[i].cfg->name : NULL;
}

bool
engine_system_reachable(struct engine *eng, size_t i)
{
	return i < eng->nsys && !atomic_load(&eng->sys[i].unreachable);
}

int
engine_system_concurrency(struct engine *eng, size_t i)
{
	int n;

	if (i >= eng->nsys)
		return 0;
	pthread_mutex_lock(&eng->mu);
	n = (int)eng->sys[i].limit;
	pthread_mutex_unlock(&eng->mu);
	return n;
}
