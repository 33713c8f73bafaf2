/*
 * The running daemon: opens the store, starts the engine and the API, tells systemd
 * when it is ready, reloads on SIGHUP and stops in order on SIGTERM or SIGINT.
 *
 * A reload re-reads the file (and so every secret file the providers read when they
 * open) and checks it as a start would. A new configuration that fails the check is
 * logged as "file:line: reason" and the old one keeps running. One that passes
 * replaces the engine and the API; the listening socket stays open across the swap
 * when the address is unchanged, so clients wait in its backlog instead of being
 * refused.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "api/api.h"
#include "core/log.h"
#include "core/version.h"
#include "daemon/daemon.h"
#include "engine/engine.h"
#include "store/store.h"

static volatile sig_atomic_t stopping, reloading;

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

struct running {
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
		.max_attempts = cfg->max_attempts,
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
	    LOG_I("port", api_port(run->api)), LOG_S("store", cfg->store_path),
	    LOG_S("systems", systems), LOG_S("log_level", log_level_name(
	    (enum log_level)cfg->log_level)), LOG_S("log_format", cfg->log_json ? "json" :
	    "text")), "quelld %s %s: node %s listening on %s (port %u), store %s, "
	    "%zu identity system(s)", QUELL_VERSION_FULL, how, cfg->node_id, cfg->listen,
	    api_port(run->api), cfg->store_path, cfg->nsystems);
}

/* The store stays open across a reload unless its path changed: a new path means a
 * new store, opened before the old one is let go. */
static int
swap_store(const struct config *old, const struct config *neu, struct running *run,
    struct qerr *e)
{
	struct store *st = NULL;
	int r;

	if (strcmp(old->store_path, neu->store_path) == 0 && old->workers == neu->workers)
		return 0;
	if ((r = store_open(&store_sqlite, neu->store_path, neu->workers + 8, &st, e)) != 0)
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
static int
reload(const char *path, struct config *cfg, struct running *run)
{
	struct config neu, old;
	struct qerr e;
	int fd, r;

	qerr_clear(&e);
	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
	log_msg(LOG_LVL_INFO, "reloading %s", path);
	if ((r = daemon_config_load(path, &neu, &e)) != 0 ||
	    (r = daemon_config_check(&neu, &e)) != 0) {
		log_msg(LOG_LVL_ERROR, "reload refused, the configuration in force stays: %s",
		    e.msg[0] ? e.msg : qerr_strerror(r));
		config_clear(&neu);
		sd_notify(0, "READY=1\nSTATUS=reload refused; see the log");
		return 0;
	}
	fd = stop(run, strcmp(cfg->listen, neu.listen) == 0);
	if ((r = swap_store(cfg, &neu, run, &e)) == 0) {
		/* The engine and the API keep the configuration they start with: that
		 * must be *cfg, which outlives this call (ASan caught requests reading
		 * neu's stack slot after a reload). */
		old = *cfg;
		*cfg = neu;
		if ((r = start(cfg, run, fd, &e)) == 0) {
			config_clear(&old);
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
	r = swap_store(&neu, cfg, run, &e);
	config_clear(&neu);
	if (r == 0 && (r = start(cfg, run, fd, &e)) == 0) {
		sd_notify(0, "READY=1\nSTATUS=reload failed; see the log");
		return 0;
	}
	if (fd >= 0)
		close(fd);
	log_msg(LOG_LVL_ERROR, "cannot start again: %s", e.msg[0] ? e.msg : qerr_strerror(r));
	return r;
}

int
daemon_run(const char *path, struct config *cfg)
{
	struct running run = { 0 };
	struct sigaction sa;
	sigset_t mask, waiting;
	struct qerr e;
	int r;

	qerr_clear(&e);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Blocked here, so every thread started below inherits the block and the
	 * signals reach only sigsuspend: none is lost between a check and the wait. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, &waiting);
	if ((r = store_open(&store_sqlite, cfg->store_path, cfg->workers + 8, &run.st, &e)) ||
	    (r = start(cfg, &run, -1, &e)))
		goto out;
	log_started(cfg, &run, "started");
	sd_notifyf(0, "READY=1\nSTATUS=running\nMAINPID=%lu", (unsigned long)getpid());
	while (!stopping) {
		sigsuspend(&waiting);
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
	stop(&run, false);
	store_close(run.st);
	return r == 0 ? 0 : 1;
}
