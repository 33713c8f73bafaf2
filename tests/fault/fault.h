/*
 * Fault injection for the fault suite, as SQLite's faultsim does it: arm a countdown
 * on one kind of call, run a flow, and the Nth call of that kind fails, once.
 *
 * - FAULT_ALLOC: quell's own malloc, calloc, realloc, strdup, strndup, asprintf and
 *   vasprintf (the test links with -Wl,--wrap= for each, so only calls made from
 *   quell's objects count, not those inside libc or libcurl) and jansson's allocator;
 * - FAULT_SQLITE_ALLOC: SQLite's allocator (SQLITE_CONFIG_MALLOC), which SQLite turns
 *   into SQLITE_NOMEM;
 * - FAULT_STORE_*: every call through the decorated store_ops (fault_store) but open,
 *   close, migrate, rollback and hunt, which fails as "database busy", "disk I/O
 *   error" or "database or disk is full" without reaching SQLite.
 *
 * Counts are process-wide: the engine's threads count too.
 */
#ifndef QUELL_TESTS_FAULT_H
#define QUELL_TESTS_FAULT_H

#include <stdbool.h>

#include "store/store.h"

enum fault_kind {
	FAULT_ALLOC,
	FAULT_SQLITE_ALLOC,
	FAULT_STORE_BUSY,
	FAULT_STORE_IO,
	FAULT_STORE_FULL,
	FAULT_KIND_COUNT
};

const char *fault_kind_name(enum fault_kind k);
/* Installs the counting allocators in jansson and SQLite; before either is used. */
void fault_install(void);
/* The nth call of kind k from now fails (1-based); n = 0 only counts. */
void fault_arm(enum fault_kind k, long n);
/* Stops counting and injecting. */
void fault_disarm(void);
/* Whether the armed fault was injected since fault_arm. */
bool fault_fired(void);
/* Calls of the armed kind counted since fault_arm. */
long fault_count(void);

/* On this thread, whether calls are left out of the count (the test's own reads). */
void fault_exempt(bool on);
/* Whether this call of kind k is the one to fail (counts it when k is armed). */
bool fault_due(enum fault_kind k);

/* store_sqlite with every counted call going through fault_due. */
extern const struct store_ops fault_store;

#endif
