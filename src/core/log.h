/*
 * Logging without I/O in the modules that log: they call log_msg() or log_event(),
 * and the program installs the sink that writes (quelld: one line on stderr, text or
 * JSON, see docs/operations.md). Never pass a secret, not even in a field.
 */
#ifndef QUELL_CORE_LOG_H
#define QUELL_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

enum log_field_kind { LOG_FIELD_STR, LOG_FIELD_INT, LOG_FIELD_NUM, LOG_FIELD_BOOL };

/* One key=value of an event; a NULL string field is left out. */
struct log_field {
	const char *key;
	enum log_field_kind kind;
	const char *s;
	int64_t i;
	double d;
};

#define LOG_S(k, v) { .key = (k), .kind = LOG_FIELD_STR, .s = (v) }
#define LOG_I(k, v) { .key = (k), .kind = LOG_FIELD_INT, .i = (int64_t)(v) }
#define LOG_N(k, v) { .key = (k), .kind = LOG_FIELD_NUM, .d = (double)(v) }
#define LOG_B(k, v) { .key = (k), .kind = LOG_FIELD_BOOL, .i = (v) ? 1 : 0 }
/* The fields argument pair of log_event: LOG_FIELDS(LOG_S("id", id), LOG_I("n", n)). */
#define LOG_FIELDS(...) (const struct log_field[]){ __VA_ARGS__ }, \
	sizeof((const struct log_field[]){ __VA_ARGS__ }) / sizeof(struct log_field)

/* What a sink receives; everything is borrowed for the call. event is "message" for
 * log_msg(). */
struct log_record {
	enum log_level level;
	const char *event;
	const char *msg;
	const struct log_field *fields;
	size_t nfields;
};

typedef void (*log_sink_fn)(const struct log_record *rec);

void log_set_sink(log_sink_fn sink, enum log_level min);
/* The lowest level passed on to the sink, and whether lines are JSON (for the sink's
 * log_format_line); a reload may change both. */
void log_set_options(enum log_level min, bool json);
bool log_json(void);
/* "debug", "info", "warn", "error": 0 and *out set, or -1. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level lvl);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An event with fields; fmt makes the human message. */
void log_event(enum log_level lvl, const char *event, const struct log_field *f, size_t n,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * One line (no newline) into buf, truncated to size: text is
 * "TS quelld LEVEL: MSG event=EV key=value ..." (values with spaces, quotes or '='
 * quoted), JSON is {"ts":…,"level":…,"event":…,"msg":…, fields…}. ts may be NULL.
 */
void log_format_line(char *buf, size_t size, bool json, const char *ts,
    const struct log_record *rec);

#endif
