/* What the answer-cutting tests share (cuts.c): an emulator spawned directly (Prism
 * would refuse the cut answers itself), requests to it, and providers opened from
 * key=value lines. Each fails the running cmocka test on a fault of its own. */
#ifndef QUELL_FAULT_CUTS_H
#define QUELL_FAULT_CUTS_H

#include <stddef.h>
#include <sys/types.h>

#include "providers/provider.h"

struct cuts_buf {
	char *p;		/* NUL-terminated; caller frees */
	size_t n;
};

/* Starts `node script --port 0 args...` (args NULL-terminated), waits for its
 * "listening on PORT" and writes http://127.0.0.1:PORT to base. Returns its pid. */
pid_t cuts_spawn(const char *script, const char *const *args, char *base, size_t len);
/* Stops what cuts_spawn started. */
void cuts_stop(pid_t pid);

/* One request to base + path with an optional body (of type ctype) and
 * Authorization header; the answer's body. */
struct cuts_buf cuts_call(const char *base, const char *method, const char *path,
    const char *body, const char *ctype, const char *auth);
/* A control request with a JSON body, its answer dropped. */
void cuts_ctl(const char *base, const char *method, const char *path, const char *json);

/* Writes text to a new file (mode 0600) in dir; returns its path (caller frees). */
char *cuts_file(const char *dir, const char *name, const char *text);

/* Opens a system of kind named "cuts" from "key=value" lines. */
struct provider *cuts_open(const char *kind, const char *const *kv, size_t n);

/* The step between the offsets a sweep tries: 1 with QUELL_CUTS_FULL=1 in the
 * environment (every byte), else def. */
size_t cuts_stride(size_t def);

#endif
