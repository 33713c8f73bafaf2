/* The logging front: formats an event and hands it to the installed sink; and the
 * line formats (text and JSON) a sink writes. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static log_sink_fn log_sink;
/* Atomics: a reload changes them while other threads log. */
static _Atomic int log_min = LOG_LVL_INFO;
static _Atomic bool log_as_json;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_set_sink(log_sink_fn sink, enum log_level min)
{
	log_sink = sink;
	log_min = (int)min;
}

void
log_set_options(enum log_level min, bool json)
{
	log_min = (int)min;
	log_as_json = json;
}

bool
log_json(void)
{
	return log_as_json;
}

int
log_level_parse(const char *name, enum log_level *out)
{
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

const char *
log_level_name(enum log_level lvl)
{
	return (unsigned)lvl < 4 ? level_names[lvl] : "info";
}

static void emit(enum log_level lvl, const char *event, const struct log_field *f,
    size_t n, const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void
emit(enum log_level lvl, const char *event, const struct log_field *f, size_t n,
    const char *fmt, va_list ap)
{
	char buf[1024];
	struct log_record rec = { lvl, event, buf, f, n };

	if (log_sink == NULL || (int)lvl < log_min)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_sink(&rec);
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(lvl, "message", NULL, 0, fmt, ap);
	va_end(ap);
}

void
log_event(enum log_level lvl, const char *event, const struct log_field *f, size_t n,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(lvl, event, f, n, fmt, ap);
	va_end(ap);
}

/* Appends to a bounded buffer; past the end it only stops writing. */
struct out {
	char *p;
	size_t size, len;
};

static void
put(struct out *o, const char *s, size_t n)
{
	size_t room = o->len + 1 < o->size ? o->size - o->len - 1 : 0;

	if (n > room)
		n = room;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A JSON string, or a quoted text value: the same escapes serve both, so a text
 * line stays one line whatever a value holds. */
static void
put_quoted(struct out *o, const char *s)
{
	char esc[8];

	put(o, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(o, esc, 2);
		} else if (c == '\n')
			puts_(o, "\\n");
		else if (c == '\t')
			puts_(o, "\\t");
		else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(o, esc, 6);
		} else
			put(o, s, 1);
	}
	put(o, "\"", 1);
}

/* The text line's message as it is, but for control characters: escaped, so a
 * message holding a line break is still one line. */
static void
put_bare(struct out *o, const char *s)
{
	char esc[8];

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n')
			puts_(o, "\\n");
		else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			puts_(o, esc);
		} else
			put(o, s, 1);
	}
}

static bool
needs_quotes(const char *s)
{
	if (*s == '\0')
		return true;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' ||
		    *s == 0x7f)
			return true;
	return false;
}

static void
put_value(struct out *o, bool json, const struct log_field *f)
{
	char num[40];

	switch (f->kind) {
	case LOG_FIELD_STR:
		if (json || needs_quotes(f->s))
			put_quoted(o, f->s);
		else
			puts_(o, f->s);
		return;
	case LOG_FIELD_INT:
		snprintf(num, sizeof(num), "%lld", (long long)f->i);
		break;
	case LOG_FIELD_NUM:
		/* JSON has no NaN or infinity; neither do quell's measurements. */
		snprintf(num, sizeof(num), "%.6g", f->d == f->d ? f->d : 0.0);
		break;
	case LOG_FIELD_BOOL:
		snprintf(num, sizeof(num), "%s", f->i ? "true" : "false");
		break;
	}
	puts_(o, num);
}

void
log_format_line(char *buf, size_t size, bool json, const char *ts,
    const struct log_record *rec)
{
	struct out o = { buf, size, 0 };
	const char *lvl = log_level_name(rec->level);
	size_t i;

	if (size == 0)
		return;
	buf[0] = '\0';
	if (json) {
		puts_(&o, "{");
		if (ts != NULL) {
			puts_(&o, "\"ts\":");
			put_quoted(&o, ts);
			puts_(&o, ",");
		}
		puts_(&o, "\"level\":");
		put_quoted(&o, lvl);
		puts_(&o, ",\"event\":");
		put_quoted(&o, rec->event);
		puts_(&o, ",\"msg\":");
		put_quoted(&o, rec->msg);
	} else {
		if (ts != NULL) {
			puts_(&o, ts);
			puts_(&o, " ");
		}
		puts_(&o, "quelld ");
		puts_(&o, lvl);
		puts_(&o, ": ");
		put_bare(&o, rec->msg);
		if (rec->nfields > 0) {
			puts_(&o, " event=");
			puts_(&o, rec->event);
		}
	}
	for (i = 0; i < rec->nfields; i++) {
		const struct log_field *f = &rec->fields[i];

		if (f->kind == LOG_FIELD_STR && f->s == NULL)
			continue;
		if (json) {
			puts_(&o, ",");
			put_quoted(&o, f->key);
			puts_(&o, ":");
		} else {
			puts_(&o, " ");
			puts_(&o, f->key);
			puts_(&o, "=");
		}
		put_value(&o, json, f);
	}
	if (json) {
		puts_(&o, "}");
		/* A line that does not fit is written without its fields rather than cut:
		 * a cut JSON object is no object at all. */
		if (o.len + 1 >= size && rec->nfields > 0) {
			struct log_record bare = *rec;

			bare.nfields = 0;
			log_format_line(buf, size, json, ts, &bare);
		}
	}
}
