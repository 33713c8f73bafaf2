/* Identifiers: a prefix, then 12 hex digits of creation time (ms) and 12 random ones,
 * so ids sort by creation time and never collide in practice. */
#ifndef QUELL_CORE_ID_H
#define QUELL_CORE_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_LEN 40

/* Writes "<prefix>_<time><random>" into out (ID_LEN bytes). */
void id_make(char out[ID_LEN], const char *prefix, int64_t now_ms);
/* Whether s looks like an id with this prefix (for input validation). */
bool id_valid(const char *s, const char *prefix);
/* Writes a random (version 4) UUID, lower case, into out: the request ids of the
 * vendors' APIs and of quell's Graph-compatible one. */
void id_uuid4(char out[37]);

#endif
