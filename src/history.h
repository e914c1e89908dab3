/*
 * history — the in-process history of single-server mode: for each resource, the last
 * `history_size` events, as references to the very messages (struct msg) that stream
 * queues hold, so an event's bytes exist once however many streams and the history keep
 * it. Pure: no I/O, no logging, no clock (callers pass now_ms).
 *
 * Positions. The history hands out seqs from one counter per process (history_seq_next),
 * so they grow across all resources; a resource's events are a subsequence. A client's
 * last id is a position P, and "every event of R after P" is well defined whatever
 * resource P came from. P can be honoured when no event of R after P has left the
 * history: each resource remembers the highest seq it lost (to history_size, to
 * history_ttl or to a failed allocation); a resource without a record answers with the
 * process-wide floor, the highest seq of any record dropped whole (to history_bytes).
 * So the answer is never a silent gap; at worst a needless "gone".
 *
 * Bounds. Per resource at most `size` events; in all at most `bytes` bytes (messages,
 * ring slots and records counted), dropping the least recently published resources
 * first, whole. A resource's events expire `ttl_ms` after its last publish; the record
 * stays as a small tombstone (its last seq), so a client that was up to date is still
 * honoured, and goes under the bytes cap like any other record.
 */
#ifndef SSE_HISTORY_H
#define SSE_HISTORY_H

#include <stddef.h>
#include <stdint.h>

struct msg;
struct history;

/* An event of the history: its seq and a borrowed message. */
struct history_ent {
	uint64_t seq;
	struct msg *m;
};

/* size >= 1 events per resource, bytes in all, ttl_ms after the last publish. NULL on
 * ENOMEM. */
struct history *history_new(uint32_t size, size_t bytes, uint64_t ttl_ms);
/* Drops every reference it holds. Accepts NULL. */
void history_free(struct history *h);

/* Reserves the next seq (the previous one + 1; the first is 1). */
uint64_t history_seq_next(struct history *h);
/* The last seq handed out, 0 before the first. */
uint64_t history_seq_last(const struct history *h);

/*
 * Appends m (one reference taken) as event seq of resource name (len 1..255 bytes). seq
 * must come from history_seq_next() and be above every seq added before. Applies the
 * bounds. 0, or -1 (ENOMEM): the event is not kept and the resource counts it as lost,
 * so no resume ever skips it silently.
 */
int history_add(struct history *h, const char *name, size_t len, uint64_t seq,
    struct msg *m, uint64_t now_ms);

/* Called with each replayed event in order; return 0 for more, -1 to stop there. */
typedef int history_each_fn(void *arg, const struct history_ent *e);

enum {
	HISTORY_GONE = -1,    /* events after that position were dropped */
	HISTORY_AHEAD = -2,   /* a position this history never handed out */
};

/*
 * Replays the events of name with seq > after, oldest first, through fn, which borrows
 * each message for the call (msg_ref it to keep it). Returns how many were passed (the
 * one that stopped it included), HISTORY_GONE or HISTORY_AHEAD (fn not called).
 * Expires the resource's events first when their ttl has passed.
 */
int history_replay(struct history *h, const char *name, size_t len, uint64_t after,
    uint64_t now_ms, history_each_fn *fn, void *arg);

/* The position a client is up to date at for name: its last event's seq, or the last
 * seq handed out when the resource has no record. */
uint64_t history_head(const struct history *h, const char *name, size_t len);

/* Drops the events of every resource whose ttl has passed; returns how many. */
size_t history_expire(struct history *h, uint64_t now_ms);

size_t history_bytes(const struct history *h);       /* accounted bytes now */
size_t history_events(const struct history *h);      /* events kept now */
size_t history_resources(const struct history *h);   /* records, tombstones included */

/*
 * The merge of a replay with the live events held for a stream while its history was
 * read. a (the replay) is in ascending seq order; b is what was held, in the order it
 * arrived, seq 0 for an event that has no place in this history (no id, another epoch).
 * Arrival order is publish order as the process saw it, so it is kept:
 * the replay's events below b's first positioned event go first (published before the
 * hold began), then b in arrival order, each positioned event preceded by the replay's
 * events below it, then the rest of the replay. A local event (no id) that came before
 * an event with an id stays before it. Events already delivered (eventid_is_new against
 * *delivered) and the second copy of an event in both are left out; *delivered moves to
 * the last seq written. Returns how many were written to out (room for na + nb).
 * Borrows everything.
 */
size_t history_merge_held(struct history_ent *out, const struct history_ent *a, size_t na,
    const struct history_ent *b, size_t nb, uint64_t *delivered);

#endif
