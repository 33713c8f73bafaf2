/*
 * Pacing below a vendor's documented budget, so that a mass containment spends its
 * time sending rather than in 429s: a token bucket whose burst and steady rate never
 * exceed the budget in any window however the vendor slides it, and a hold that
 * stops every request after the vendor throttled one anyway.
 */
#include <stdio.h>

#include "providers/kit.h"

void
kit_bucket_init(struct kit_bucket *b, double n, int64_t window_ms, int64_t now)
{
	b->cap = n >= 40 ? (double)(long)(n / 20) : 1;
	b->rate = (n - b->cap) / (double)window_ms;
	if (b->rate <= 0)
		b->rate = n / (double)window_ms;
	b->tokens = b->cap;
	b->last_ms = now;
	b->hold_ms = 0;
}

/* Rounds a non-negative duration up to whole milliseconds. */
static int64_t
ceil_ms(double ms)
{
	int64_t n = (int64_t)ms;

	return n + ((double)n < ms);
}

int64_t
kit_bucket_take(struct kit_bucket *b, int64_t now)
{
	int64_t wait = 0;

	b->tokens += (double)(now - b->last_ms) * b->rate;
	if (b->tokens > b->cap)
		b->tokens = b->cap;
	b->last_ms = now;
	b->tokens -= 1;
	if (b->tokens < 0)
		wait = ceil_ms(-b->tokens / b->rate);
	if (b->hold_ms > now + wait)
		wait = b->hold_ms - now;
	return wait;
}

void
kit_bucket_return(struct kit_bucket *b)
{
	b->tokens += 1;
}

void
kit_bucket_hold(struct kit_bucket *b, int64_t until)
{
	if (until > b->hold_ms)
		b->hold_ms = until;
}

void
kit_result_paced(struct step_result *res, int64_t wait_ms, const char *why)
{
	provider_result_set(res, STEP_OUTCOME_TRANSIENT, "rateLimitPacing",
	    "held back, not sent: %s", why);
	res->retry_after_ms = wait_ms > INT32_MAX ? INT32_MAX : wait_ms < 1 ? 1 :
	    (int)wait_ms;
	res->not_sent = true;
}
