/*
 * eventid — the text of an event id, and the one rule for "already delivered". Pure: no
 * I/O, no allocation, no logging.
 *
 * An id is "<epoch>-<seq>": epoch is 1..EVENTID_EPOCH_MAX bytes of 0-9 a-z naming the
 * history the event belongs to (a process's in-memory history, or one Redis history);
 * seq is a decimal position in it, without leading zeros, 0..2^64-1. Within one epoch
 * the seq of a resource's events only grows, so comparing seqs of the same epoch is
 * comparing positions; seq 0 is "before the first event". Clients treat the whole
 * string as opaque: ASCII, no spaces, at most EVENTID_MAX bytes.
 */
#ifndef SSE_EVENTID_H
#define SSE_EVENTID_H

#include <stddef.h>
#include <stdint.h>

#define EVENTID_EPOCH_MAX 32
/* Longest id: an epoch, '-' and 20 digits; well under the 64 bytes SPEC allows. */
#define EVENTID_MAX (EVENTID_EPOCH_MAX + 1 + 20)

/* A parsed id. epoch borrows from the string given to eventid_parse(). */
struct eventid {
	const char *epoch;
	size_t epoch_len;
	uint64_t seq;
};

/* 1 when s is 1..EVENTID_EPOCH_MAX bytes of 0-9 a-z, else 0. */
int eventid_epoch_is_valid(const char *s, size_t len);

/*
 * Writes "<epoch>-<seq>" into out (cap bytes) with a NUL after it. Returns the length
 * without the NUL, or 0 when the epoch is not valid or out is too small (then out is
 * left untouched). EVENTID_MAX + 1 bytes always suffice.
 */
size_t eventid_format(char *out, size_t cap, const char *epoch, size_t epoch_len, uint64_t seq);

/*
 * Parses s[0 .. len) (not necessarily NUL-terminated). Returns 0 and fills id when it is
 * exactly one id as eventid_format() writes them; -1 (malformed) for anything else:
 * empty, too long, a bad epoch, no '-', a seq that is empty, has a leading zero, a
 * non-digit or does not fit 64 bits. id is untouched on -1.
 */
int eventid_parse(struct eventid *id, const char *s, size_t len);

/* 1 when both ids name the same epoch. */
int eventid_same_epoch(const struct eventid *id, const char *epoch, size_t epoch_len);

/*
 * The one rule for "already delivered", shared by live delivery, replay and their
 * merge: a stream that has received (or was resumed at) position delivered takes an
 * event of the same epoch only when its seq is greater. So no stream ever gets the same
 * id twice, and events can only move its position forward.
 */
static inline int
eventid_is_new(uint64_t delivered, uint64_t seq)
{
	return seq > delivered;
}

#endif
