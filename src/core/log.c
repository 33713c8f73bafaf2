/* The logging front: formats and hands the line to the installed sink. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static log_sink_fn log_sink;
static enum log_level log_min = LOG_LVL_INFO;

void
log_set_sink(log_sink_fn sink, enum log_level min)
{
	log_sink = sink;
	log_min = min;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (log_sink == NULL || lvl < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_sink(lvl, buf);
}
