/* Advanced hunting on SQLite (hunt.c); the store_ops slot of store_sqlite. */
#ifndef QUELL_STORE_HUNT_H
#define QUELL_STORE_HUNT_H

#include "store.h"

/* One query on a connection of its own, opened and closed here; *out (caller frees)
 * is the answer as JSON, NULL on a refusal, which e names. */
int sqlite_hunt(const char *location, const struct hunt_query *q, char **out,
    struct qerr *e);

/* The same connection kept for many queries, each guarded as sqlite_hunt's (the
 * fuzz harness runs thousands: opening one costs more than most queries). */
struct hunt_conn;
/* Opens location read-only with the views and the guard; caller closes *out. */
int sqlite_hunt_open(const char *location, struct hunt_conn **out, struct qerr *e);
/* Runs q on c; *out as sqlite_hunt's. */
int sqlite_hunt_run(struct hunt_conn *c, const struct hunt_query *q, char **out,
    struct qerr *e);
/* Accepts NULL. */
void sqlite_hunt_close(struct hunt_conn *c);

#endif
