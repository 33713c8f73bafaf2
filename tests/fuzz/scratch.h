/* A scratch store the harnesses share (scratch.c), removed at exit. */
#ifndef QUELL_FUZZ_SCRATCH_H
#define QUELL_FUZZ_SCRATCH_H

#include <sqlite3.h>

/* Makes the store once; returns its path. */
const char *fuzz_scratch_open(void);
/* The directory it is in, alone. */
const char *fuzz_scratch_dir(void);
/* The random mark in the tables no hunting view shows. */
const char *fuzz_scratch_mark(void);
/* A connection of the harness's own to it, kept open (so the WAL files stay). */
sqlite3 *fuzz_scratch_watch(void);

#endif
