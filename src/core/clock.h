/*
 * The one clock: monotonic milliseconds for timeouts, intervals and renewals (they must
 * not jump when the wall clock is set), real-time milliseconds for what is compared
 * with another machine's clock (a rate-limit reset, an HTTP-date), and a sleep that
 * resumes after signals.
 */
#ifndef QUELL_CORE_CLOCK_H
#define QUELL_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC: only differences mean anything. */
int64_t clock_mono_ms(void);
/* Microseconds on CLOCK_MONOTONIC, for timing requests. */
int64_t clock_mono_us(void);
/* Seconds on CLOCK_MONOTONIC, with the fraction, for timing calls. */
double clock_mono_s(void);
/* Milliseconds since 1970 (UTC) on CLOCK_REALTIME. */
int64_t clock_real_ms(void);
/* Microseconds since 1970 (UTC) on CLOCK_REALTIME. */
int64_t clock_real_us(void);
/* The time ms milliseconds from now on clock id, for pthread_cond_timedwait. */
void clock_deadline(clockid_t id, int64_t ms, struct timespec *out);
/* Sleeps ms milliseconds (nothing when ms <= 0), through EINTR. */
void clock_sleep_ms(int64_t ms);

#endif
