#ifndef SSE_FCGI_PACE_H
#define SSE_FCGI_PACE_H
/*
 * pace — when a stream's next write may wait, so that events published close together
 * leave together: the policy behind out.c's flushes, without I/O or clocks of its own.
 *
 * A process is busy while writing to streams takes at least 1/PACE_SHARE of its time,
 * measured over periods of PACE_PERIOD_US (the last whole period decides). In a busy
 * process a stream written less than PACE_MS ago is written again PACE_MS after that
 * write, unless it already holds PACE_BYTES: one record and one write here, one read and
 * one write in the front server, for every event queued meanwhile. A stream whose events
 * are further apart than PACE_MS, and every stream of a process that is not busy, is
 * written at once (in the loop turn that queued the event): light load pays nothing.
 */
#include <stddef.h>
#include <stdint.h>

#ifndef PACE_MS
#define PACE_MS 30
#endif
#define PACE_BYTES (8u << 10)
#define PACE_PERIOD_US 100000u
#define PACE_SHARE 20

struct pace {
	uint64_t start_us;   /* the current period began */
	uint64_t work_us;    /* time spent writing in it */
	int busy;            /* the last whole period was busy */
};

void pace_init(struct pace *p, uint64_t now_us);

/* Counts [start_us, end_us) as time spent writing to streams; at the end of a period,
 * decides whether the next one paces. A gap of two periods or more without any writing
 * ends busy. */
void pace_account(struct pace *p, uint64_t start_us, uint64_t end_us);

/* When a stream last written at flushed_ms (ev_now_ms() modulo 2^32) that holds queued
 * bytes should be written: 0 for now, else the time in ms (> now_ms). */
uint64_t pace_due(const struct pace *p, uint64_t now_ms, uint32_t flushed_ms, size_t queued);

#endif
