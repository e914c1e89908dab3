#ifndef SSE_FCGI_PACE_H
#define SSE_FCGI_PACE_H
/*
 * pace — when a stream's next write may wait, so that events published close together
 * leave together: the policy behind out.c's flushes, without I/O or clocks of its own.
 *
 * A process is busy while writing to streams takes at least 1/PACE_SHARE of its time,
 * measured over periods of PACE_PERIOD_US (the last whole period decides). In a busy
 * process a stream written less than wait_ms ago is written again wait_ms after that
 * write, unless it already holds PACE_BYTES: one record and one write here, one read and
 * one write in the front server, for every event queued meanwhile. A stream whose events
 * are further apart than wait_ms, and every stream of a process that is not busy, is
 * written at once (in the loop turn that queued the event): light load pays nothing.
 *
 * wait_ms starts at PACE_MS. A busy period whose paced writes carried under 1.5 events
 * each (the events of a stream come just over wait_ms apart: the process is too busy to
 * take them faster, and too little is gathered to make it cheaper) lengthens it by
 * PACE_STEP_MS, up to PACE_MAX_MS; one whose paced writes carried 2.5 or more shortens
 * it again, down to PACE_MS; a period that is not busy puts it back to PACE_MS.
 */
#include <stddef.h>
#include <stdint.h>

#ifndef PACE_MS
#define PACE_MS 30
#endif
#define PACE_MAX_MS 60
#define PACE_STEP_MS 10
#define PACE_BYTES (8u << 10)
#define PACE_PERIOD_US 100000u
#define PACE_SHARE 20

struct pace {
	uint64_t start_us;   /* the current period began */
	uint64_t work_us;    /* time spent writing in it */
	uint32_t writes;     /* paced writes in it */
	uint32_t events;     /* the messages they carried */
	uint32_t wait_ms;    /* PACE_MS .. PACE_MAX_MS */
	int busy;            /* the last whole period was busy */
};

void pace_init(struct pace *p, uint64_t now_us);

/* Counts [start_us, end_us) as time spent writing to streams, in `writes` paced writes
 * that carried `events` messages (0 and 0 for writes that did not wait); at the end of a
 * period, decides whether the next one paces, and how long. A gap of two periods or more
 * without any writing ends busy. */
void pace_account(struct pace *p, uint64_t start_us, uint64_t end_us, uint32_t writes,
    uint32_t events);

/* When a stream last written at flushed_ms (ev_now_ms() modulo 2^32) that holds queued
 * bytes should be written: 0 for now, else the time in ms (> now_ms). */
uint64_t pace_due(const struct pace *p, uint64_t now_ms, uint32_t flushed_ms, size_t queued);

#endif
