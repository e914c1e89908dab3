/* pace — see pace.h. */
#include "pace.h"

void
pace_init(struct pace *p, uint64_t now_us)
{
	p->start_us = now_us;
	p->work_us = 0;
	p->writes = p->events = 0;
	p->wait_ms = PACE_MS;
	p->busy = 0;
}

void
pace_account(struct pace *p, uint64_t start_us, uint64_t end_us, uint32_t writes,
    uint32_t events)
{
	uint64_t elapsed;

	if (end_us < start_us || start_us < p->start_us) {   /* a clock that went back */
		pace_init(p, end_us);
		return;
	}
	p->work_us += end_us - start_us;
	p->writes += writes;
	p->events += events;
	elapsed = end_us - p->start_us;
	if (elapsed < PACE_PERIOD_US)
		return;
	p->busy = elapsed < 2 * (uint64_t)PACE_PERIOD_US && p->work_us * PACE_SHARE >= elapsed;
	if (!p->busy)
		p->wait_ms = PACE_MS;
	else if (p->writes > 0 && (uint64_t)p->events * 2 < (uint64_t)p->writes * 3)
		p->wait_ms = p->wait_ms + PACE_STEP_MS > PACE_MAX_MS ? PACE_MAX_MS :
		    p->wait_ms + PACE_STEP_MS;
	else if (p->writes > 0 && (uint64_t)p->events * 2 >= (uint64_t)p->writes * 5)
		p->wait_ms = p->wait_ms < PACE_MS + PACE_STEP_MS ? PACE_MS :
		    p->wait_ms - PACE_STEP_MS;
	p->start_us = end_us;
	p->work_us = 0;
	p->writes = p->events = 0;
}

uint64_t
pace_due(const struct pace *p, uint64_t now_ms, uint32_t flushed_ms, size_t queued)
{
	uint32_t since = (uint32_t)now_ms - flushed_ms;   /* modulo 2^32 */

	if (!p->busy || since >= p->wait_ms || queued >= PACE_BYTES)
		return 0;
	return now_ms + (p->wait_ms - since);
}
