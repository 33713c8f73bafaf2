/* What the harnesses share (fuzz.c): the input as text, and a failed property as a
 * finding libFuzzer records. */
#ifndef QUELL_FUZZ_H
#define QUELL_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The size bytes of data as a NUL-terminated string (caller frees); NULL on no memory.
 * A NUL inside the input ends the text there, as it would for a C string anywhere. */
char *fuzz_text(const uint8_t *data, size_t size);

/* A property that must hold for every input: otherwise abort() with why, which is
 * a crash to libFuzzer (its reproducer is kept). */
void fuzz_check(bool ok, const char *why);

#endif
