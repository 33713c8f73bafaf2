/*
 * The interface every identity system implements. A provider file exports exactly one
 * `const struct provider_ops provider_<kind>`; a NULL slot means unsupported. Callers
 * go through the provider_* wrappers in registry.c, never through the table directly.
 *
 * Threads: open/close run once; execute and list_accounts may be called from several
 * worker threads at once on the same struct provider, so a provider keeps its own pool
 * of connections sized by system_config.max_concurrency.
 */
#ifndef QUELL_PROVIDERS_PROVIDER_H
#define QUELL_PROVIDERS_PROVIDER_H

#include <stdbool.h>

#include "core/config.h"
#include "core/err.h"
#include "core/kind.h"
#include "core/model.h"

struct provider;

enum step_outcome {
	STEP_OUTCOME_SUCCEEDED,
	STEP_OUTCOME_TRANSIENT,	/* retry later, after retry_after_ms when > 0 */
	STEP_OUTCOME_PERMANENT,	/* fail the step, do not retry */
};

struct step_result {
	enum step_outcome outcome;
	int retry_after_ms;
	char request_id[128];	/* the peer's request / correlation id, if any */
	char error_code[64];	/* LDAP result code name, Graph or Okta error code */
	char message[512];	/* what happened, for the analyst: "already disabled" */
	char state[32];		/* the account's state after the step, if known */
	/* TRANSIENT without reaching the vendor (quell held the request back to stay
	 * under a rate limit): a wait, not a failed attempt. */
	bool not_sent;
	/* TRANSIENT because the system refused a request over its limit of concurrent
	 * requests: the engine lowers how many steps it runs there at once. */
	bool concurrency_limited;
};

/* Called once per account found by list_accounts; non-zero stops the listing. */
typedef int (*provider_account_cb)(const struct account *acct, void *arg);

/* How provider_keys_parse (providers/kit.h) reads a key, and what it stores at offset. */
enum provider_key_type {
	PROVIDER_KEY_STRING,	/* char * */
	PROVIDER_KEY_BOOL,	/* bool: yes, no, true or false */
	PROVIDER_KEY_LONG,	/* long: a whole number in [min, max] */
	PROVIDER_KEY_NUMBER,	/* double: a number in [min, max] */
	PROVIDER_KEY_DURATION,	/* int64_t: a span ("30s", "5m") in [min, max] ms */
	PROVIDER_KEY_URL,	/* char *: a URL of one of schemes, trailing '/' dropped */
	PROVIDER_KEY_FILE,	/* char *: the path of a file quelld can read */
	PROVIDER_KEY_SECRET_FILE,	/* struct kit_secret: the contents, see kit.h */
};

/* One key a [system] section of a kind may hold; a table ends with name NULL. */
struct provider_key {
	const char *name;
	enum provider_key_type type;
	bool required;
	const char *def;	/* parsed as if written when absent; NULL: none */
	double min, max;	/* LONG, NUMBER, DURATION: the range; SECRET_FILE: bytes */
	const char *schemes;	/* URL: "https http" */
	bool (*valid)(const char *value);	/* a further check, or NULL */
	bool secret;		/* never echoed; SECRET_FILE: contents kept secret */
	bool multiline;		/* SECRET_FILE: a PEM key, not one line */
	size_t offset;		/* of the field in the provider's settings */
	const char *help;	/* completes "<name> must be …" */
};

struct provider_ops {
	const char *kind;
	/* The keys open() accepts, for the generic parser and for documentation. */
	const struct provider_key *keys;
	/* What the rest of quell knows about the kind: alert id types, default
	 * correlation rules and role requirements, quell's own accounts there. */
	const struct kind_info *info;
	/* Validates the system's keys (errors say "file:line: reason") and connects lazily. */
	int (*open)(const struct system_config *cfg, struct provider **out, struct qerr *e);
	/* Whether this configured system can carry out type (p from open). */
	bool (*supports)(const struct provider *p, enum action_type type);
	/*
	 * Optional: whether the system will refuse type on acct in its last known state
	 * (acct->state, from sync), with why written into why ("Okta cannot suspend a user
	 * in RECOVERY …"); for a preview, before anything is sent. The state may be
	 * stale: the step is still tried.
	 */
	bool (*refuses)(const struct provider *p, const struct account *acct,
	    enum action_type type, char *why, size_t len);
	/* Carries out one step; the outcome is in *res, the return is 0 unless a bug. */
	int (*execute)(struct provider *p, const struct step *step, struct step_result *res);
	/*
	 * Optional batching, for APIs that take several users in one request (Entra's
	 * confirmCompromised): the most steps of this type execute_batch accepts (0 or 1:
	 * no batching), and the call that carries out n steps of that type at once;
	 * res[i] is the outcome of steps[i].
	 */
	size_t (*batch_max)(enum action_type type);
	int (*execute_batch)(struct provider *p, const struct step *const *steps, size_t n,
	    struct step_result *res);
	/* Lists every account; acct fields are borrowed for the call only. */
	int (*list_accounts)(struct provider *p, provider_account_cb cb, void *arg,
	    struct qerr *e);
	/*
	 * Optional incremental listing. since is the cursor the last call returned
	 * (NULL: none). When it is NULL, not understood, or no longer valid at the peer
	 * (another domain controller, an expired delta token), the provider lists every
	 * account and sets *full. An account the peer reports gone comes with state
	 * "removed" and only its external_id. *next (caller frees) is the cursor to pass
	 * next time; it is only valid once the listing returned 0.
	 */
	int (*list_changes)(struct provider *p, const char *since, provider_account_cb cb,
	    void *arg, char **next, bool *full, struct qerr *e);
	void (*close)(struct provider *p);
};

/*
 * Whether step undoes an earlier action of its own type (params.undo, which only
 * engine_undo sets): mark_compromised dismisses the risk, set_risk restores the level
 * recorded before, force_password_change withdraws a change not yet made.
 */
bool provider_step_undo(const struct step *step);

/* Fills a step's outcome, error code and message (for providers). */
void provider_result_set(struct step_result *res, enum step_outcome outcome,
    const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Counts one request to identity system `system` (quell_vendor_responses_total) and
 * its time (quell_provider_call_duration_seconds); cls is "2xx", "4xx", "429", "5xx"
 * or "transport" (no answer). For providers, after every HTTP request or LDAP
 * operation.
 */
void provider_observe_call(const char *system, const char *cls, double seconds);
/* Time a provider held a request back to stay under the system's rate limits
 * (quell_rate_limit_wait_seconds_total, with the waits steps are told to make). */
void provider_observe_wait(const char *system, double seconds);
/* The class of an HTTP status for provider_observe_call (0: "transport"). */
const char *provider_http_class(long status);
/* Monotonic seconds, for timing calls. */
double provider_clock(void);

/* The ops for a kind, or NULL when no provider of that kind is built in. */
const struct provider_ops *provider_lookup(const char *kind);
/* Every built-in kind's descriptor, for config->kinds (static data). */
struct kind_table provider_kinds(void);

int provider_open(const struct provider_ops *ops, const struct system_config *cfg,
    struct provider **out, struct qerr *e);
bool provider_supports(const struct provider_ops *ops, const struct provider *p,
    enum action_type type);
/* False when the kind has no refuses slot or does not support type at all. */
bool provider_refuses(const struct provider_ops *ops, const struct provider *p,
    const struct account *acct, enum action_type type, char *why, size_t len);
int provider_execute(const struct provider_ops *ops, struct provider *p,
    const struct step *step, struct step_result *res);
size_t provider_batch_max(const struct provider_ops *ops, const struct provider *p,
    enum action_type type);
/* Falls back to one execute per step when the provider has no execute_batch. */
int provider_execute_batch(const struct provider_ops *ops, struct provider *p,
    const struct step *const *steps, size_t n, struct step_result *res);
int provider_list_accounts(const struct provider_ops *ops, struct provider *p,
    provider_account_cb cb, void *arg, struct qerr *e);
/* Falls back to a full list_accounts (*full set, *next NULL) without list_changes. */
int provider_list_changes(const struct provider_ops *ops, struct provider *p,
    const char *since, provider_account_cb cb, void *arg, char **next, bool *full,
    struct qerr *e);
void provider_close(const struct provider_ops *ops, struct provider *p);

#endif
