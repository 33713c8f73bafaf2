/*
 * Logging without I/O in the modules that log: they call log_msg(), and the program
 * installs the sink that writes (quelld: stderr with a timestamp). Never pass a secret.
 */
#ifndef QUELL_CORE_LOG_H
#define QUELL_CORE_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

typedef void (*log_sink_fn)(enum log_level lvl, const char *msg);

void log_set_sink(log_sink_fn sink, enum log_level min);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
