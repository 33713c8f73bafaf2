/* The built-in identity systems, and the wrappers callers use to reach them. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/metrics.h"
#include "provider.h"

/* One line per built-in kind: its file exports provider_<kind>. */
#define PROVIDER_KINDS(X) \
	X(ad) \
	X(entra) \
	X(okta) \
	X(scim)

#define PROVIDER_EXTERN(k) extern const struct provider_ops provider_##k;
PROVIDER_KINDS(PROVIDER_EXTERN)

#define PROVIDER_ENTRY(k) &provider_##k,
static const struct provider_ops *const providers[] = { PROVIDER_KINDS(PROVIDER_ENTRY) };
#define NPROVIDERS (sizeof(providers) / sizeof(providers[0]))

static const struct kind_info *infos[NPROVIDERS];
static pthread_once_t infos_once = PTHREAD_ONCE_INIT;

void
provider_result_set(struct step_result *res, enum step_outcome outcome,
    const char *code, const char *fmt, ...)
{
	va_list ap;

	res->outcome = outcome;
	snprintf(res->error_code, sizeof(res->error_code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

bool
provider_step_undo(const struct step *step)
{
	json_t *root;
	bool undo;

	if (step->params == NULL)
		return false;
	root = json_loads(step->params, 0, NULL);
	undo = json_is_true(json_object_get(root, "undo"));
	json_decref(root);
	return undo;
}

const struct provider_ops *
provider_lookup(const char *kind)
{
	size_t i;

	if (kind == NULL)
		return NULL;
	for (i = 0; i < NPROVIDERS; i++)
		if (strcmp(providers[i]->kind, kind) == 0)
			return providers[i];
	return NULL;
}

/* A provider's info is not a constant expression in C: gathered once, on first use. */
static void
infos_gather(void)
{
	size_t i;

	for (i = 0; i < NPROVIDERS; i++)
		infos[i] = providers[i]->info;
}

struct kind_table
provider_kinds(void)
{
	struct kind_table t;

	pthread_once(&infos_once, infos_gather);
	t.v = infos;
	t.n = NPROVIDERS;
	return t;
}

int
provider_open(const struct provider_ops *ops, const struct system_config *cfg,
    struct provider **out, struct qerr *e)
{
	if (ops->open == NULL)
		return qerr_set(e, QERR_UNSUPPORTED, "kind", "%s: cannot be opened", ops->kind);
	return ops->open(cfg, out, e);
}

bool
provider_supports(const struct provider_ops *ops, const struct provider *p,
    enum action_type type)
{
	return ops->supports != NULL && ops->supports(p, type);
}

bool
provider_refuses(const struct provider_ops *ops, const struct provider *p,
    const struct account *acct, enum action_type type, char *why, size_t len)
{
	if (len > 0)
		why[0] = '\0';
	return ops->refuses != NULL && provider_supports(ops, p, type) &&
	    ops->refuses(p, acct, type, why, len);
}

int
provider_execute(const struct provider_ops *ops, struct provider *p,
    const struct step *step, struct step_result *res)
{
	memset(res, 0, sizeof(*res));
	if (ops->execute == NULL || !provider_supports(ops, p, step->type)) {
		res->outcome = STEP_OUTCOME_PERMANENT;
		strcpy(res->message, "not supported by this identity system");
		return 0;
	}
	return ops->execute(p, step, res);
}

size_t
provider_batch_max(const struct provider_ops *ops, const struct provider *p,
    enum action_type type)
{
	size_t n;

	if (ops->batch_max == NULL || ops->execute_batch == NULL ||
	    !provider_supports(ops, p, type))
		return 1;
	n = ops->batch_max(type);
	return n > 1 ? n : 1;
}

int
provider_execute_batch(const struct provider_ops *ops, struct provider *p,
    const struct step *const *steps, size_t n, struct step_result *res)
{
	size_t i;

	if (n > 1 && provider_batch_max(ops, p, steps[0]->type) >= n) {
		memset(res, 0, n * sizeof(*res));
		return ops->execute_batch(p, steps, n, res);
	}
	for (i = 0; i < n; i++)
		provider_execute(ops, p, steps[i], &res[i]);
	return 0;
}

int
provider_list_accounts(const struct provider_ops *ops, struct provider *p,
    provider_account_cb cb, void *arg, struct qerr *e)
{
	if (ops->list_accounts == NULL)
		return qerr_set(e, QERR_UNSUPPORTED, NULL,
		    "%s: listing accounts is not supported", ops->kind);
	return ops->list_accounts(p, cb, arg, e);
}

int
provider_list_changes(const struct provider_ops *ops, struct provider *p,
    const char *since, provider_account_cb cb, void *arg, char **next, bool *full,
    struct qerr *e)
{
	*next = NULL;
	*full = true;
	if (ops->list_changes == NULL)
		return provider_list_accounts(ops, p, cb, arg, e);
	*full = false;
	return ops->list_changes(p, since, cb, arg, next, full, e);
}

void
provider_close(const struct provider_ops *ops, struct provider *p)
{
	if (p != NULL && ops->close != NULL)
		ops->close(p);
}

void
provider_observe_call(const char *system, const char *cls, double seconds)
{
	const char *name = system != NULL ? system : "unknown";

	QM_ADD(QM_VENDOR_RESPONSES, 1, name, cls);
	QM_OBSERVE(QM_PROVIDER_CALL_SECONDS, seconds, name);
}

void
provider_observe_wait(const char *system, double seconds)
{
	QM_ADD(QM_RATE_LIMIT_WAIT, seconds, system != NULL ? system : "unknown");
}

const char *
provider_http_class(long status)
{
	if (status == 429)
		return "429";
	if (status >= 500)
		return "5xx";
	if (status >= 400)
		return "4xx";
	if (status >= 300)
		return "3xx";
	return status >= 100 ? "2xx" : "transport";
}

double
provider_clock(void)
{
	return clock_mono_s();
}
