/* pace — see pace.h. */
#include "pace.h"

void
pace_init(struct pace *p, uint64_t now_us)
{
	p->start_us = now_us;
	p->work_us = 0;
	p->busy = 0;
}

void
pace_account(struct pace *p, uint64_t start_us, uint64_t end_us)
{
	uint64_t elapsed;

	if (end_us < start_us || start_us < p->start_us) {   /* a clock that went back */
		pace_init(p, end_us);
		return;
	}
	p->work_us += end_us - start_us;
	elapsed = end_us - p->start_us;
	if (elapsed < PACE_PERIOD_US)
		return;
	p->busy = elapsed < 2 * (uint64_t)PACE_PERIOD_US && p->work_us * PACE_SHARE >= elapsed;
	p->start_us = end_us;
	p->work_us = 0;
}

uint64_t
pace_due(const struct pace *p, uint64_t now_ms, uint32_t flushed_ms, size_t queued)
{
	uint32_t since = (uint32_t)now_ms - flushed_ms;   /* modulo 2^32 */

	if (!p->busy || since >= PACE_MS || queued >= PACE_BYTES)
		return 0;
	return now_ms + (PACE_MS - since);
}
