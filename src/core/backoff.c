/* Exponential backoff with jitter: spreads retries so a recovering server is not
 * hit by every waiting step at once. */
#include "backoff.h"

int64_t
backoff_delay_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t rnd)
{
	int64_t ceil = base_ms, floor;
	int i;

	for (i = 1; i < attempt && ceil < cap_ms; i++)
		ceil *= 2;
	if (ceil > cap_ms)
		ceil = cap_ms;
	floor = base_ms / 2;
	if (floor > ceil)
		floor = ceil;
	return floor + (int64_t)(rnd % (uint64_t)(ceil - floor + 1));
}
