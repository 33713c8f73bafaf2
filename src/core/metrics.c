/*
 * The metrics registry and the text exposition format. One mutex guards the whole
 * registry: updates are a few comparisons and an addition, far cheaper than the
 * step or request they measure, and a scrape holds it only while copying text.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static void
grow(struct mtext *t, size_t need)
{
	size_t cap;
	char *p;

	if (t->oom || t->len + need + 1 <= t->cap)
		return;
	cap = t->cap ? t->cap : 4096;
	while (cap < t->len + need + 1)
		cap *= 2;
	if ((p = realloc(t->p, cap)) == NULL) {
		t->oom = true;
		return;
	}
	t->p = p;
	t->cap = cap;
}

static void
put(struct mtext *t, const char *s, size_t n)
{
	grow(t, n);
	if (t->oom)
		return;
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void
puts_(struct mtext *t, const char *s)
{
	put(t, s, strlen(s));
}

/* HELP text escapes \ and line feeds; label values also escape the double quote. */
static void
put_escaped(struct mtext *t, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			puts_(t, "\\\\");
		else if (*s == '\n')
			puts_(t, "\\n");
		else if (*s == '"' && quote)
			puts_(t, "\\\"");
		else
			put(t, s, 1);
	}
}

static void
put_number(struct mtext *t, double v)
{
	char num[40];

	if (isnan(v))
		snprintf(num, sizeof(num), "NaN");
	else if (isinf(v))
		snprintf(num, sizeof(num), "%s", v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		snprintf(num, sizeof(num), "%.0f", v);
	else
		snprintf(num, sizeof(num), "%.17g", v);
	puts_(t, num);
}

void
mtext_family(struct mtext *t, const char *name, const char *type, const char *help)
{
	puts_(t, "# HELP ");
	puts_(t, name);
	puts_(t, " ");
	put_escaped(t, help, false);
	puts_(t, "\n# TYPE ");
	puts_(t, name);
	puts_(t, " ");
	puts_(t, type);
	puts_(t, "\n");
}

void
mtext_sample(struct mtext *t, const char *name, const char *const *keys,
    const char *const *vals, size_t n, double v)
{
	size_t i;

	puts_(t, name);
	if (n > 0) {
		puts_(t, "{");
		for (i = 0; i < n; i++) {
			if (i)
				puts_(t, ",");
			puts_(t, keys[i]);
			puts_(t, "=\"");
			put_escaped(t, vals[i] ? vals[i] : "", true);
			puts_(t, "\"");
		}
		puts_(t, "}");
	}
	puts_(t, " ");
	put_number(t, v);
	puts_(t, "\n");
}

void
mtext_clear(struct mtext *t)
{
	if (t == NULL)
		return;
	free(t->p);
	memset(t, 0, sizeof(*t));
}

struct series {
	char *labels[METRIC_MAX_LABELS];
	double value;		/* counter, gauge; histogram: the sum */
	double *counts;		/* histogram: per bucket (not cumulative), then +Inf */
	unsigned long long count;
};

struct family {
	const struct metric_def *def;
	struct series *s;
	size_t n, cap;
};

struct metrics {
	pthread_mutex_t mu;
	struct family *fam;
	size_t nfam;
};

int
metrics_new(const struct metric_def *defs, size_t n, struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	size_t i;

	*out = NULL;
	if (m == NULL || (m->fam = calloc(n ? n : 1, sizeof(*m->fam))) == NULL) {
		free(m);
		return -1;
	}
	for (i = 0; i < n; i++)
		m->fam[i].def = &defs[i];
	m->nfam = n;
	pthread_mutex_init(&m->mu, NULL);
	*out = m;
	return 0;
}

void
metrics_free(struct metrics *m)
{
	size_t i, j, k;

	if (m == NULL)
		return;
	for (i = 0; i < m->nfam; i++) {
		for (j = 0; j < m->fam[i].n; j++) {
			for (k = 0; k < METRIC_MAX_LABELS; k++)
				free(m->fam[i].s[j].labels[k]);
			free(m->fam[i].s[j].counts);
		}
		free(m->fam[i].s);
	}
	free(m->fam);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* The series with these label values, made when new; NULL on out of memory. Called
 * with the mutex held. */
static struct series *
series_get(struct family *f, const char *const *vals)
{
	const struct metric_def *d = f->def;
	struct series *s, *ns;
	size_t i, k;

	for (i = 0; i < f->n; i++) {
		for (k = 0; k < d->nlabels; k++)
			if (strcmp(f->s[i].labels[k], vals[k]) != 0)
				break;
		if (k == d->nlabels)
			return &f->s[i];
	}
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 8;

		if ((ns = realloc(f->s, cap * sizeof(*ns))) == NULL)
			return NULL;
		f->s = ns;
		f->cap = cap;
	}
	s = &f->s[f->n];
	memset(s, 0, sizeof(*s));
	for (k = 0; k < d->nlabels; k++)
		if ((s->labels[k] = strdup(vals[k])) == NULL)
			goto fail;
	if (d->type == METRIC_HISTOGRAM &&
	    (s->counts = calloc(d->nbuckets + 1, sizeof(*s->counts))) == NULL)
		goto fail;
	f->n++;
	return s;
fail:
	for (k = 0; k < METRIC_MAX_LABELS; k++)
		free(s->labels[k]);
	return NULL;
}

static struct metrics *quell_registry;
static metrics_tap_fn quell_tap;

void
quell_metrics_tap(metrics_tap_fn tap)
{
	quell_tap = tap;
}

void
metrics_update(struct metrics *m, size_t fam, enum metric_op op, double v, ...)
{
	va_list ap;
	const char *vals[METRIC_MAX_LABELS] = { "", "", "" };
	size_t k;

	if (m == NULL || fam >= m->nfam)
		return;
	va_start(ap, v);
	for (k = 0; k < m->fam[fam].def->nlabels; k++) {
		const char *x = va_arg(ap, const char *);

		vals[k] = x ? x : "";
	}
	va_end(ap);
	metrics_update_labels(m, fam, op, v, vals);
}

void
metrics_update_labels(struct metrics *m, size_t fam, enum metric_op op, double v,
    const char *const *labels)
{
	const char *vals[METRIC_MAX_LABELS] = { "", "", "" };
	struct family *f;
	struct series *s;
	size_t k, b;

	if (m == NULL || fam >= m->nfam)
		return;
	f = &m->fam[fam];
	for (k = 0; k < f->def->nlabels; k++)
		vals[k] = labels[k] ? labels[k] : "";
	if (m == quell_registry && quell_tap != NULL)
		quell_tap(fam, op, v, vals);
	pthread_mutex_lock(&m->mu);
	if ((s = series_get(f, vals)) != NULL) {
		if (op == METRIC_SET)
			s->value = v;
		else if (op == METRIC_ADD)
			s->value += v;
		else if (s->counts != NULL) {
			for (b = 0; b < f->def->nbuckets && v > f->def->buckets[b]; b++)
				;
			s->counts[b]++;
			s->count++;
			s->value += v;
		}
	}
	pthread_mutex_unlock(&m->mu);
}

static void
render_histogram(struct mtext *t, const struct metric_def *d, const struct series *s)
{
	const char *keys[METRIC_MAX_LABELS + 1], *vals[METRIC_MAX_LABELS + 1];
	char name[160], le[40];
	double cum = 0;
	size_t k, b;

	for (k = 0; k < d->nlabels; k++) {
		keys[k] = d->labels[k];
		vals[k] = s->labels[k];
	}
	keys[d->nlabels] = "le";
	vals[d->nlabels] = le;
	snprintf(name, sizeof(name), "%s_bucket", d->name);
	for (b = 0; b <= d->nbuckets; b++) {
		cum += s->counts[b];
		if (b < d->nbuckets)
			snprintf(le, sizeof(le), "%.10g", d->buckets[b]);
		else
			snprintf(le, sizeof(le), "+Inf");
		mtext_sample(t, name, keys, vals, d->nlabels + 1, cum);
	}
	snprintf(name, sizeof(name), "%s_sum", d->name);
	mtext_sample(t, name, keys, vals, d->nlabels, s->value);
	snprintf(name, sizeof(name), "%s_count", d->name);
	mtext_sample(t, name, keys, vals, d->nlabels, (double)s->count);
}

void
metrics_render(struct metrics *m, struct mtext *t)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	size_t i, j;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	for (i = 0; i < m->nfam; i++) {
		const struct family *f = &m->fam[i];
		const struct metric_def *d = f->def;

		mtext_family(t, d->name, types[d->type], d->help);
		for (j = 0; j < f->n; j++) {
			if (d->type == METRIC_HISTOGRAM)
				render_histogram(t, d, &f->s[j]);
			else
				mtext_sample(t, d->name, d->labels,
				    (const char *const *)f->s[j].labels, d->nlabels,
				    f->s[j].value);
		}
	}
	pthread_mutex_unlock(&m->mu);
}

/* Seconds, from a fast LDAP modify to a sync of thousands of accounts. */
static const double latency_buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};
#define NB (sizeof(latency_buckets) / sizeof(latency_buckets[0]))

static const struct metric_def quell_defs[QM_COUNT] = {
	[QM_STEPS] = { "quell_steps_total", "Steps finished by an attempt, by identity "
	    "system and outcome (succeeded, retry, failed, cancelled).", METRIC_COUNTER, 2,
	    { "system", "outcome" }, NULL, 0 },
	[QM_STEP_SECONDS] = { "quell_step_duration_seconds", "Time one attempt of a step "
	    "spent in its identity system's provider.", METRIC_HISTOGRAM, 1, { "system" },
	    latency_buckets, NB },
	[QM_PROVIDER_CALL_SECONDS] = { "quell_provider_call_duration_seconds", "Time of "
	    "one request to an identity system (one HTTP request or LDAP operation).",
	    METRIC_HISTOGRAM, 1, { "system" }, latency_buckets, NB },
	[QM_VENDOR_RESPONSES] = { "quell_vendor_responses_total", "Answers of identity "
	    "systems by class: 2xx, 4xx, 429, 5xx, transport (no answer); LDAP: 2xx is "
	    "success, 4xx a refusal, 5xx busy or unavailable.", METRIC_COUNTER, 2,
	    { "system", "class" }, NULL, 0 },
	[QM_RATE_LIMIT_WAIT] = { "quell_rate_limit_wait_seconds_total", "Time steps were "
	    "told to wait by an identity system's rate limit (Retry-After) or quell's own "
	    "pacing.", METRIC_COUNTER, 1, { "system" }, NULL, 0 },
	[QM_HTTP_REQUESTS] = { "quell_http_requests_total", "API requests by route "
	    "pattern and status code.", METRIC_COUNTER, 2, { "route", "code" }, NULL, 0 },
	[QM_HTTP_SECONDS] = { "quell_http_request_duration_seconds", "Time to answer an "
	    "API request, by route pattern.", METRIC_HISTOGRAM, 1, { "route" },
	    latency_buckets, NB },
	[QM_CONTAINMENTS] = { "quell_containments_total", "Automatic attack disruption "
	    "decisions by rule and decision (contained, excluded, held, dry_run, "
	    "duplicate, ...).", METRIC_COUNTER, 2, { "rule", "decision" }, NULL, 0 },
	[QM_AUTH_FAILURES] = { "quell_auth_failures_total", "API requests refused for "
	    "want of a valid credential (401).", METRIC_COUNTER, 0, { NULL }, NULL, 0 },
	[QM_SYNC_RUNS] = { "quell_sync_runs_total", "Inventory sync runs finished, by "
	    "system and result (ok, error).", METRIC_COUNTER, 2, { "system", "result" },
	    NULL, 0 },
	[QM_AUDIT_VERIFY_OK] = { "quell_audit_last_verify_ok", "1 when the last audit "
	    "chain verification found it intact, 0 when broken.", METRIC_GAUGE, 0,
	    { NULL }, NULL, 0 },
	[QM_AUDIT_VERIFY_TIME] = { "quell_audit_last_verify_timestamp_seconds", "When "
	    "the audit chain was last verified (Unix time).", METRIC_GAUGE, 0, { NULL },
	    NULL, 0 },
	[QM_SYNC_LAST_SUCCESS] = { "quell_sync_last_success_timestamp_seconds", "When "
	    "the last inventory sync of the system that succeeded finished (Unix time; "
	    "since quelld started).", METRIC_GAUGE, 1, { "system" }, NULL, 0 },
	[QM_SYNC_DURATION] = { "quell_sync_duration_seconds", "How long the last "
	    "inventory sync of the system took, whether it succeeded or not.",
	    METRIC_GAUGE, 1, { "system" }, NULL, 0 },
	[QM_STEP_WAITS] = { "quell_step_waits_total", "Times a step was told to wait, "
	    "by identity system and cause: pacing (quell held the request back; no "
	    "attempt) or retry_after (the system refused it and named a wait).",
	    METRIC_COUNTER, 2, { "system", "cause" }, NULL, 0 },
	[QM_STEP_WAIT_SECONDS] = { "quell_step_wait_seconds_total", "Time steps were "
	    "told to wait before their next try, by identity system and cause.",
	    METRIC_COUNTER, 2, { "system", "cause" }, NULL, 0 },
	[QM_PROVIDER_CONCURRENCY] = { "quell_provider_concurrency", "Steps quell lets "
	    "run at once on the identity system: its max_concurrency, lowered while the "
	    "system refuses concurrent requests and raised again when it stops.",
	    METRIC_GAUGE, 1, { "system" }, NULL, 0 },
};

static pthread_once_t quell_once = PTHREAD_ONCE_INIT;

static void
quell_make(void)
{
	if (metrics_new(quell_defs, QM_COUNT, &quell_registry) != 0)
		quell_registry = NULL;
}

int
quell_metrics_install(void)
{
	pthread_once(&quell_once, quell_make);
	return quell_registry != NULL ? 0 : -1;
}

struct metrics *
quell_metrics(void)
{
	return quell_registry;
}
