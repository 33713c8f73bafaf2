/*
 * Prometheus metrics without I/O: a registry of counters, gauges and histograms with
 * labels, updated from any thread, and the text exposition format 0.0.4 it is
 * rendered in (the API serves it at GET /metrics; docs/operations.md lists them).
 * Families whose values live in the store are written at scrape time through the
 * same writer (mtext_*), so the format is produced in one place.
 */
#ifndef QUELL_CORE_METRICS_H
#define QUELL_CORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

#define METRIC_MAX_LABELS 3

struct metric_def {
	const char *name;	/* counters end in _total */
	const char *help;
	enum metric_type type;
	size_t nlabels;
	const char *labels[METRIC_MAX_LABELS];
	const double *buckets;	/* histograms: upper bounds, ascending, +Inf implied */
	size_t nbuckets;
};

/* A growing text buffer; on out of memory it stops growing and oom is set. */
struct mtext {
	char *p;
	size_t len, cap;
	bool oom;
};

/* # HELP and # TYPE of a family (type: "counter", "gauge", "histogram"). */
void mtext_family(struct mtext *t, const char *name, const char *type, const char *help);
/* One sample: name{k="v",…} value; label values are escaped here. */
void mtext_sample(struct mtext *t, const char *name, const char *const *keys,
    const char *const *vals, size_t n, double v);
/* Frees the text (NULL is fine) and empties t. */
void mtext_clear(struct mtext *t);

struct metrics;

/* A registry of the families in defs (borrowed: they must outlive it); *out is freed
 * with metrics_free(), which accepts NULL. */
int metrics_new(const struct metric_def *defs, size_t n, struct metrics **out);
void metrics_free(struct metrics *m);

/* METRIC_ADD is for counters (v >= 0) and gauges, METRIC_SET for gauges,
 * METRIC_OBSERVE for histograms. */
enum metric_op { METRIC_ADD, METRIC_SET, METRIC_OBSERVE };

/*
 * Updates family fam (an index into defs) for the series named by the label values
 * that follow v, one const char * per label of the family (NULL reads as "").
 * Out of memory loses the update, never the process.
 */
void metrics_update(struct metrics *m, size_t fam, enum metric_op op, double v, ...);

/* metrics_update with the label values in an array of the family's nlabels. */
void metrics_update_labels(struct metrics *m, size_t fam, enum metric_op op, double v,
    const char *const *labels);

/* Appends every family of m, in the order of defs, with its series. */
void metrics_render(struct metrics *m, struct mtext *t);

/*
 * quell's own families, updated where things happen; the process-wide registry is
 * installed once by quelld (quell_metrics_install) and survives reloads. Before it is
 * installed (tests, the CLI) every update is a no-op.
 */
enum quell_metric {
	QM_STEPS,		/* system, outcome */
	QM_STEP_SECONDS,	/* system */
	QM_PROVIDER_CALL_SECONDS, /* system */
	QM_VENDOR_RESPONSES,	/* system, class */
	QM_RATE_LIMIT_WAIT,	/* system */
	QM_HTTP_REQUESTS,	/* route, code */
	QM_HTTP_SECONDS,	/* route */
	QM_CONTAINMENTS,	/* rule, decision */
	QM_AUTH_FAILURES,	/* (none) */
	QM_SYNC_RUNS,		/* system, result */
	QM_AUDIT_VERIFY_OK,	/* (none) gauge: 1 intact, 0 broken */
	QM_AUDIT_VERIFY_TIME,	/* (none) gauge: unix seconds of the last verification */
	QM_SYNC_LAST_SUCCESS,	/* system: unix seconds */
	QM_SYNC_DURATION,	/* system: seconds of the last run */
	QM_STEP_WAITS,		/* system, cause */
	QM_STEP_WAIT_SECONDS,	/* system, cause */
	QM_PROVIDER_CONCURRENCY, /* system: gauge, steps the engine lets run at once */
	QM_COUNT
};

int quell_metrics_install(void);
/* Called with every update of the installed registry (labels: one per label of the
 * family), in the updating thread; NULL: none. For quelld's executor, which hands its
 * providers' updates to the front's registry. Set before any thread starts. */
typedef void (*metrics_tap_fn)(size_t fam, enum metric_op op, double v,
    const char *const *labels);
void quell_metrics_tap(metrics_tap_fn tap);
/* The installed registry, or NULL. */
struct metrics *quell_metrics(void);
#define QM_ADD(fam, v, ...) \
	metrics_update(quell_metrics(), (fam), METRIC_ADD, (v), __VA_ARGS__)
#define QM_SET(fam, v, ...) \
	metrics_update(quell_metrics(), (fam), METRIC_SET, (v), __VA_ARGS__)
#define QM_OBSERVE(fam, v, ...) \
	metrics_update(quell_metrics(), (fam), METRIC_OBSERVE, (v), __VA_ARGS__)

#endif
