/* Exponential backoff with full jitter for retrying transient failures. */
#ifndef QUELL_CORE_BACKOFF_H
#define QUELL_CORE_BACKOFF_H

#include <stdint.h>

/*
 * Delay before retry number attempt (1 = first retry): uniform in
 * [base/2, min(cap, base * 2^(attempt-1))], from the random value rnd.
 */
int64_t backoff_delay_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t rnd);

#endif
