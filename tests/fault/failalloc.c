/*
 * The countdown of fault.h and the allocation wrappers it drives. The executable is
 * linked with -Wl,--wrap=malloc (and the others), so quell's calls land in __wrap_*
 * and go on to the real function (ASan's, under the sanitize build) unless due.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include "fault.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t m, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **out, const char *fmt, va_list ap);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t m, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap);
int __wrap_asprintf(char **out, const char *fmt, ...);

static _Atomic int armed = -1;	/* the armed kind; -1: none */
static _Atomic long target;
static _Atomic long counted;
static _Atomic bool fired;
static _Thread_local bool exempt;
static sqlite3_mem_methods sqlite_mem;

static const char *const kind_names[FAULT_KIND_COUNT] = {
	[FAULT_ALLOC] = "alloc", [FAULT_SQLITE_ALLOC] = "sqlite-alloc",
	[FAULT_STORE_BUSY] = "store-busy", [FAULT_STORE_IO] = "store-io",
	[FAULT_STORE_FULL] = "store-full",
};

const char *
fault_kind_name(enum fault_kind k)
{
	return kind_names[k];
}

void
fault_arm(enum fault_kind k, long n)
{
	atomic_store(&armed, -1);
	atomic_store(&counted, 0);
	atomic_store(&target, n);
	atomic_store(&fired, false);
	atomic_store(&armed, (int)k);
}

void
fault_disarm(void)
{
	atomic_store(&armed, -1);
}

bool
fault_fired(void)
{
	return atomic_load(&fired);
}

long
fault_count(void)
{
	return atomic_load(&counted);
}

/* Where the fault struck, when chasing a finding (QUELL_FAULT_TRACE=1). */
static void
trace(enum fault_kind k)
{
	fprintf(stderr, "fault: %s fault %ld injected here:\n", kind_names[k],
	    atomic_load(&target));
#if defined(__SANITIZE_ADDRESS__)
	__sanitizer_print_stack_trace();
#endif
}

void
fault_exempt(bool on)
{
	exempt = on;
}

bool
fault_due(enum fault_kind k)
{
	if (exempt || atomic_load(&armed) != (int)k)
		return false;
	if (atomic_fetch_add(&counted, 1) + 1 != atomic_load(&target))
		return false;
	atomic_store(&fired, true);
	if (getenv("QUELL_FAULT_TRACE") != NULL)
		trace(k);
	return true;
}

static bool
alloc_due(void)
{
	if (!fault_due(FAULT_ALLOC))
		return false;
	errno = ENOMEM;
	return true;
}

void *
__wrap_malloc(size_t n)
{
	return alloc_due() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t m, size_t n)
{
	return alloc_due() ? NULL : __real_calloc(m, n);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return alloc_due() ? NULL : __real_realloc(p, n);
}

char *
__wrap_strdup(const char *s)
{
	return alloc_due() ? NULL : __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
	return alloc_due() ? NULL : __real_strndup(s, n);
}

int
__wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
	return alloc_due() ? -1 : __real_vasprintf(out, fmt, ap);
}

int
__wrap_asprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = __wrap_vasprintf(out, fmt, ap);
	va_end(ap);
	return r;
}

/* jansson's allocator: the same countdown as quell's own calls. */
static void *
json_alloc(size_t n)
{
	return __wrap_malloc(n);
}

static void *
sqlite_malloc(int n)
{
	return fault_due(FAULT_SQLITE_ALLOC) ? NULL : sqlite_mem.xMalloc(n);
}

static void *
sqlite_realloc(void *p, int n)
{
	return fault_due(FAULT_SQLITE_ALLOC) ? NULL : sqlite_mem.xRealloc(p, n);
}

void
fault_install(void)
{
	sqlite3_mem_methods m;

	json_set_alloc_funcs(json_alloc, free);
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_mem) != SQLITE_OK) {
		fprintf(stderr, "fault: cannot read SQLite's allocator\n");
		abort();
	}
	m = sqlite_mem;
	m.xMalloc = sqlite_malloc;
	m.xRealloc = sqlite_realloc;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK) {
		fprintf(stderr, "fault: cannot install SQLite's allocator\n");
		abort();
	}
}
