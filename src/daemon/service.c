/*
 * The running daemon: opens the store, starts the engine and the API, tells systemd
 * when it is ready, reloads on SIGHUP and stops in order on SIGTERM or SIGINT.
 *
 * Before anything else it forks the executor (src/privsep), the one process that
 * reads the identity systems' secret files and talks to them; this process, the
 * front, then sandboxes itself and reaches them through the executor only. Either
 * process ending makes the other end: the executor when its channels close, the front
 * on SIGCHLD, exiting non-zero (systemd restarts it; the engine's leases make a
 * restart safe).
 *
 * A reload re-reads the file and has the executor open its systems (and so read every
 * secret file again) before it checks the rest as a start would. A new configuration that fails the check is
 * logged as "file:line: reason" and the old one keeps running. One that passes
 * replaces the engine and the API; the listening socket stays open across the swap
 * when the address is unchanged, so clients wait in its backlog instead of being
 * refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "api/api.h"
#include "api/oidc.h"
#include "core/log.h"
#include "core/version.h"
#include "daemon/daemon.h"
#include "engine/engine.h"
#include "privsep/privsep.h"
#include "store/store.h"

static volatile sig_atomic_t stopping, reloading, child_gone;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
on_hup(int sig)
{
	(void)sig;
	reloading = 1;
}

static void
on_chld(int sig)
{
	(void)sig;
	child_gone = 1;
}

struct running {
	struct privsep *ps;
	struct store *st;
	struct engine *eng;
	struct api *api;
};

/* Starts the engine and the API on cfg over the open store. */
static int
start(const struct config *cfg, struct running *run, int listen_fd, struct qerr *e)
{
	struct engine_options opt = {
		.node_id = cfg->node_id, .workers = cfg->workers, .lease_ms = cfg->lease_ms,
		.retry_base_ms = cfg->retry_base_ms, .retry_cap_ms = cfg->retry_cap_ms,
		.max_attempts = cfg->max_attempts, .step_deadline_ms = cfg->step_deadline_ms,
		.lookup = privsep_lookup,
	};
	int r;

	if ((r = engine_start(cfg, run->st, &opt, &run->eng, e)) != 0)
		return r;
	if ((r = api_start(cfg, run->st, run->eng, listen_fd, &run->api, e)) != 0) {
		engine_stop(run->eng);
		run->eng = NULL;
	}
	return r;
}

/* Stops the API, then the engine (waiting for steps in flight). With keep_socket the
 * listening socket is returned open, else -1. */
static int
stop(struct running *run, bool keep_socket)
{
	int fd = keep_socket ? api_quiesce(run->api) : -1;

	api_stop(run->api);
	engine_stop(run->eng);
	run->api = NULL;
	run->eng = NULL;
	return fd;
}

/* The line conftest and operators look for: the version, where it listens and the
 * systems it acts on (names and kinds, never their credentials). */
static void
log_started(const struct config *cfg, const struct running *run, const char *how)
{
	char systems[512] = "";
	size_t i, n = 0;

	for (i = 0; i < cfg->nsystems && n < sizeof(systems); i++)
		n += (size_t)snprintf(systems + n, sizeof(systems) - n, "%s%s:%s",
		    i ? "," : "", cfg->systems[i].name, cfg->systems[i].kind);
	log_event(LOG_LVL_INFO, strcmp(how, "started") == 0 ? "quelld.start" :
	    "quelld.reload", LOG_FIELDS(LOG_S("version", QUELL_VERSION_FULL),
	    LOG_S("node", cfg->node_id), LOG_S("listen", cfg->listen),
	    LOG_I("port", api_port(run->api)), LOG_S("store", store_config_name(cfg)),
	    LOG_S("systems", systems), LOG_S("log_level", log_level_name(
	    (enum log_level)cfg->log_level)), LOG_S("log_format", cfg->log_json ? "json" :
	    "text")), "quelld %s %s: node %s listening on %s (port %u), store %s, "
	    "%zu identity system(s)", QUELL_VERSION_FULL, how, cfg->node_id, cfg->listen,
	    api_port(run->api), store_config_name(cfg), cfg->nsystems);
}

/* The store stays open across a reload unless its path changed: a new path means a
 * new store, opened before the old one is let go. */
static int
swap_store(const struct config *old, const struct config *neu, struct running *run,
    struct qerr *e)
{
	struct store *st = NULL;
	int r;

	if (store_config_same(old, neu) && old->workers == neu->workers)
		return 0;
	if ((r = store_open_config(neu, neu->workers + 8, &st, e)) != 0)
		return r;
	store_close(run->st);
	run->st = st;
	return 0;
}

/*
 * Swaps *cfg for the file's new contents. Whatever fails before the old engine stops
 * leaves everything as it was; a new configuration that cannot start falls back to
 * the old one. Returns nonzero only when neither runs.
 */
/* The systems' part of the check: the executor opens them as the next ones. */
struct loading {
	struct privsep *ps;
	const char *path;
	const char *text;
};

static int
load_systems(const struct config *cfg, void *arg, struct qerr *e)
{
	const struct loading *l = arg;

	(void)cfg;
	return privsep_load(l->ps, l->path, l->text, e);
}

static int
reload(const char *path, struct config *cfg, struct running *run)
{
	struct loading l = { .ps = run->ps, .path = path };
	struct config neu, old;
	bool swapped = false;
	char *text = NULL;
	struct qerr e;
	int fd, r;

	qerr_clear(&e);
	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
	log_msg(LOG_LVL_INFO, "reloading %s", path);
	if ((r = daemon_config_load(path, &neu, &text, &e)) == 0) {
		l.text = text;
		r = daemon_config_check_split(&neu, load_systems, &l, &e);
		free(text);
		if (r != 0)
			config_clear(&neu);
	}
	if (r != 0) {
		log_msg(LOG_LVL_ERROR, "reload refused, the configuration in force stays: %s",
		    e.msg[0] ? e.msg : qerr_strerror(r));
		privsep_drop(run->ps, &e);
		sd_notify(0, "READY=1\nSTATUS=reload refused; see the log");
		return 0;
	}
	if ((cfg->user == NULL) != (neu.user == NULL) || (cfg->user != NULL &&
	    strcmp(cfg->user, neu.user) != 0))
		log_msg(LOG_LVL_WARN, "reload: [server] user takes effect at the next start");
	fd = stop(run, strcmp(cfg->listen, neu.listen) == 0);
	if ((r = swap_store(cfg, &neu, run, &e)) == 0 &&
	    (r = privsep_swap(run->ps, &e)) == 0) {
		swapped = true;
		/* The engine and the API keep the configuration they start with: that
		 * must be *cfg, which outlives this call (ASan caught requests reading
		 * neu's stack slot after a reload). */
		old = *cfg;
		*cfg = neu;
		if ((r = start(cfg, run, fd, &e)) == 0) {
			config_clear(&old);
			privsep_drop(run->ps, &e);
			log_set_options((enum log_level)cfg->log_level, cfg->log_json);
			log_started(cfg, run, "reloaded");
			sd_notify(0, "READY=1\nSTATUS=running");
			return 0;
		}
		neu = *cfg;
		*cfg = old;
	}
	log_msg(LOG_LVL_ERROR, "reload failed, back to the previous configuration: %s",
	    e.msg[0] ? e.msg : qerr_strerror(r));
	qerr_clear(&e);
	/* Back to the systems in force before, kept open until now. */
	if ((r = swapped ? privsep_swap(run->ps, &e) : 0) == 0)
		r = swap_store(&neu, cfg, run, &e);
	config_clear(&neu);
	privsep_drop(run->ps, &e);
	if (r == 0 && (r = start(cfg, run, fd, &e)) == 0) {
		sd_notify(0, "READY=1\nSTATUS=reload failed; see the log");
		return 0;
	}
	if (fd >= 0)
		close(fd);
	log_msg(LOG_LVL_ERROR, "cannot start again: %s", e.msg[0] ? e.msg : qerr_strerror(r));
	return r;
}

/* The files the front may still open once sandboxed: its configuration, console and
 * TLS files read-only, its store's directory read-write (and SQLite's temporary
 * files there). A reload that names files elsewhere needs a restart. */
static int
sandbox(const char *path, const struct config *cfg, struct qerr *e)
{
	const char *ro[64], *rw[1];
	struct privsep_paths paths = { .ro = ro, .rw = rw, .nrw = 1 };
	const struct config_kv *kv;
	char *copy = strdup(cfg->store_path);
	size_t i, n = 0;
	int r;

	if (copy == NULL)
		return qerr_set(e, QERR_NOMEM, NULL, "out of memory");
	rw[0] = dirname(copy);
	ro[n++] = path;
	ro[n++] = QUELL_WEB_DIR;
	ro[n++] = QUELL_WEB_SRC;
	if ((kv = config_system_get(&cfg->web, "root")) != NULL)
		ro[n++] = kv->value;
	if (cfg->tls_cert != NULL)
		ro[n++] = cfg->tls_cert;
	if (cfg->tls_key != NULL)
		ro[n++] = cfg->tls_key;
	/* Not client_secret_file, nor [ssf] key_file: the executor redeems the
	 * console's codes and signs the SETs. */
	for (i = 0; i < cfg->oidc.nkv && n < 60; i++)
		if (strlen(cfg->oidc.kv[i].key) > 5 && strcmp(cfg->oidc.kv[i].key +
		    strlen(cfg->oidc.kv[i].key) - 5, "_file") == 0 &&
		    strcmp(cfg->oidc.kv[i].key, "client_secret_file") != 0)
			ro[n++] = cfg->oidc.kv[i].value;
	for (i = 0; i < cfg->npolicy && n < 57; i++) {
		if (strcmp(cfg->policy[i].kind, "ssf_receiver") != 0)
			continue;
		if ((kv = config_system_get(&cfg->policy[i], "token_file")) != NULL)
			ro[n++] = kv->value;
		if ((kv = config_system_get(&cfg->policy[i], "api_token_file")) != NULL)
			ro[n++] = kv->value;
		if ((kv = config_system_get(&cfg->policy[i], "client_secret_file")) != NULL)
			ro[n++] = kv->value;
	}
	for (i = 0; i < cfg->nsiems && n + 3 <= 64; i++) {
		if (cfg->siems[i].ca_file != NULL)
			ro[n++] = cfg->siems[i].ca_file;
		if (cfg->siems[i].cert_file != NULL)
			ro[n++] = cfg->siems[i].cert_file;
		if (cfg->siems[i].key_file != NULL)
			ro[n++] = cfg->siems[i].key_file;
	}
	paths.nro = n;
	/* SQLite reads these when it first makes a temporary file: no thread runs yet. */
	setenv("SQLITE_TMPDIR", rw[0], 1);
	r = privsep_sandbox_front(&paths, e);
	free(copy);
	return r;
}

/* Whether the sandboxed front can open path (said as an error), counted in *n. */
static bool
probe_one(const char *path, size_t *n)
{
	int fd;

	(*n)++;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		close(fd);
		log_msg(LOG_LVL_ERROR, "sandbox: the front process can read secret file %s",
		    path);
		return true;
	}
	if (errno != EACCES)
		log_msg(LOG_LVL_WARN, "sandbox: secret file %s: %s", path, strerror(errno));
	return false;
}

/* Tries each system's secret files, the console's OpenID Connect client secret and
 * the SSF key once from the sandboxed front and says what the kernel answered: the operator's
 * (and the tests') evidence that only the executor can read them. */
static void
probe_secrets(const struct config *cfg)
{
	const struct provider_ops *ops;
	const struct provider_key *k;
	const struct config_kv *kv;
	size_t i, n = 0, open_ok = 0;

	for (i = 0; i < cfg->nsystems; i++) {
		if ((ops = provider_lookup(cfg->systems[i].kind)) == NULL || ops->keys == NULL)
			continue;
		for (k = ops->keys; k->name != NULL; k++)
			if (k->type == PROVIDER_KEY_SECRET_FILE &&
			    (kv = config_system_get(&cfg->systems[i], k->name)) != NULL)
				open_ok += probe_one(kv->value, &n);
	}
	if ((kv = config_system_get(&cfg->oidc, "client_secret_file")) != NULL)
		open_ok += probe_one(kv->value, &n);
	if ((kv = config_system_get(&cfg->ssf, "key_file")) != NULL)
		open_ok += probe_one(kv->value, &n);
	if (n > 0 && open_ok == 0)
		log_event(LOG_LVL_INFO, "sandbox.secrets", LOG_FIELDS(LOG_I("files",
		    (long)n)), "sandbox: secret files unreadable (EACCES) from the front "
		    "process: %zu file(s)", n);
}

/* Fork first, while this process has no thread: the executor opens every system and
 * reports what a bad configuration says before anything else starts. */
static int
start_executor(const char *path, const char *text, const struct config *cfg,
    const struct privsep_user *user, struct running *run, struct qerr *e)
{
	int r;

	if ((r = privsep_start(cfg, user, &run->ps, e)) == 0 &&
	    (r = privsep_load(run->ps, path, text, e)) == 0)
		r = privsep_swap(run->ps, e);
	return r;
}

/* The front's part of leaving root, once the executor has read the secrets and
 * become the user itself: the port is bound first (it may be below 1024), then the
 * store is opened as the user, so its files are the user's. */
static int
drop_root(const struct config *cfg, const struct privsep_user *user, int *listen_fd,
    struct qerr *e)
{
	int r;

	if (!user->drop)
		return 0;
	if (geteuid() == 0 && (r = api_listen_socket(cfg, listen_fd, e)) != 0)
		return r;
	if ((r = privsep_become(user, "front", e)) != 0)
		return r;
	log_event(LOG_LVL_INFO, "privsep.user", LOG_FIELDS(LOG_S("user", user->name),
	    LOG_I("uid", (long)user->uid), LOG_I("gid", (long)user->gid)), "privsep: both "
	    "processes run as user %s (uid %ld, gid %ld)", user->name, (long)user->uid,
	    (long)user->gid);
	return 0;
}

/* The executor ended: say how, once. */
static void
executor_gone(struct running *run)
{
	int status;

	if (waitpid(privsep_pid(run->ps), &status, WNOHANG) <= 0)
		return;
	log_event(LOG_LVL_ERROR, "privsep.executor_exited", LOG_FIELDS(LOG_I("pid",
	    privsep_pid(run->ps)), LOG_I("status", WIFEXITED(status) ? WEXITSTATUS(status) :
	    -1), LOG_I("signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0)),
	    "privsep: the executor (pid %ld) exited (%s %d): quelld stops",
	    (long)privsep_pid(run->ps), WIFSIGNALED(status) ? "signal" : "status",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	stopping = 1;
}

int
daemon_run(const char *path, struct config *cfg, const char *text)
{
	struct running run = { 0 };
	struct privsep_user user;
	struct sigaction sa;
	sigset_t mask, waiting;
	struct qerr e;
	int listen_fd = -1, r;

	qerr_clear(&e);
	if ((r = privsep_user_resolve(cfg, &user, &e)) != 0)
		goto out;
	if (!user.drop && geteuid() == 0)
		log_msg(LOG_LVL_WARN, "quelld runs as root and [server] user is not set: "
		    "both of its processes keep root");
	if ((r = start_executor(path, text, cfg, &user, &run, &e)) != 0 ||
	    (r = drop_root(cfg, &user, &listen_fd, &e)) != 0)
		goto out;
	oidc_set_exchange(privsep_oidc_exchange);
	ssf_set_key_holder(&privsep_ssf_keys);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_chld;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Blocked here, so every thread started below inherits the block and the
	 * signals reach only sigsuspend: none is lost between a check and the wait. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &mask, &waiting);
	if ((r = store_open_config(cfg, cfg->workers + 8, &run.st, &e)) ||
	    (r = sandbox(path, cfg, &e)) || (r = start(cfg, &run, listen_fd, &e)))
		goto out;
	probe_secrets(cfg);
	log_started(cfg, &run, "started");
	sd_notifyf(0, "READY=1\nSTATUS=running\nMAINPID=%lu", (unsigned long)getpid());
	while (!stopping) {
		sigsuspend(&waiting);
		if (child_gone) {
			child_gone = 0;
			executor_gone(&run);
			r = stopping ? QERR_IO : 0;
		}
		if (reloading && !stopping) {
			reloading = 0;
			if ((r = reload(path, cfg, &run)) != 0)
				goto out;
		}
	}
	sd_notify(0, "STOPPING=1");
	log_event(LOG_LVL_INFO, "quelld.stop", LOG_FIELDS(LOG_S("version",
	    QUELL_VERSION_FULL), LOG_S("node", cfg->node_id)), "stopping");
out:
	if (r != 0 && e.msg[0])
		log_msg(LOG_LVL_ERROR, "%s", e.msg);
	/* A socket bound for the API that did not start is still this function's. */
	if (run.api == NULL && listen_fd >= 0)
		close(listen_fd);
	stop(&run, false);
	store_close(run.st);
	privsep_stop(run.ps);
	return r == 0 ? 0 : 1;
}
