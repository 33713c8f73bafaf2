/*
 * quelld's own pieces: reading and validating the configuration (check.c) and running
 * the service with reload and systemd notification (service.c), moving a store into
 * PostgreSQL (migrate.c). main.c parses the arguments and picks one.
 */
#ifndef QUELL_DAEMON_DAEMON_H
#define QUELL_DAEMON_DAEMON_H

#include "core/config.h"
#include "core/err.h"

/* Reads and parses the file at path into *cfg (cleared with config_clear by the
 * caller on success; left empty on failure). Errors read "file:line: reason". With
 * text, *text (caller frees) is the file's contents, for the executor. */
int daemon_config_load(const char *path, struct config *cfg, char **text,
    struct qerr *e);

/* Everything the daemon would refuse at start, without starting anything: every
 * system's section for its provider, the policy sections, the listener address, the
 * TLS files and the store's directory. */
int daemon_config_check(const struct config *cfg, struct qerr *e);

/* daemon_config_check with the systems checked by systems (the daemon: its
 * executor opens them), in the same order. */
int daemon_config_check_split(const struct config *cfg,
    int (*systems)(const struct config *cfg, void *arg, struct qerr *e), void *arg,
    struct qerr *e);

/* The part of daemon_config_check that the start itself would not report in the same
 * words: the listener address, the TLS files and the store's directory. A start runs
 * only this, so that it fetches nothing (an OpenID Connect key set) twice. */
int daemon_config_check_local(const struct config *cfg, struct qerr *e);

/* Runs until SIGTERM or SIGINT (text: the file *cfg was read from); SIGHUP re-reads
 * path (its executor re-reads every secret file) and swaps the new configuration in
 * only when it passes daemon_config_check. *cfg is
 * the configuration in force: on return it may be a newer one than the caller gave,
 * still owned by the caller. Returns the process exit status. */
int daemon_run(const char *path, struct config *cfg, const char *text);

/* quelld migrate --from sqlite:PATH --to postgres:CONNINFO [--passfile FILE]
 * (migrate.c), argv after "migrate"; needs no configuration. Returns the exit
 * status. */
int daemon_migrate(int argc, char **argv);

#endif
