/* Text checks, time formats and spans used at every boundary. */
#ifndef QUELL_CORE_TEXT_H
#define QUELL_CORE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
bool text_utf8_valid(const char *s, size_t len);
/* Well-formed UTF-8 without control characters (tab allowed when tabs is true), C1
 * controls or bidirectional embedding, override and isolate characters. */
bool text_printable(const char *s, bool tabs);
/* The same, with tabs and line breaks allowed: text written over several lines. */
bool text_printable_lines(const char *s);

/* s without its leading and trailing white space, which is cut off in place. */
char *text_trim(char *s);

/* "90s", "30m", "24h", "7d" (a positive whole number and one unit) in ms; -1 if
 * malformed or over max_ms. */
int64_t text_span_ms(const char *v, int64_t max_ms);

/* Cuts s to at most max bytes without splitting a UTF-8 character. */
void text_utf8_truncate(char *s, size_t max);

#define TEXT_TIME_LEN 80
/* "2026-11-25T08:00:00.123Z" */
void text_time_format(int64_t ms, char out[TEXT_TIME_LEN]);
/* Parses RFC 3339 with optional fraction and Z or ±hh:mm offset; -1 if malformed. */
int text_time_parse(const char *s, int64_t *ms);

#endif
