/* Advanced hunting on SQLite (hunt.c); the store_ops slot of store_sqlite. */
#ifndef QUELL_STORE_HUNT_H
#define QUELL_STORE_HUNT_H

#include "store.h"

int sqlite_hunt(const char *location, const struct hunt_query *q, char **out,
    struct qerr *e);

#endif
