/*
 * dedup — the exactly-once bookkeeping of multi-server mode. Pure: no I/O, no
 * logging, no clock (the caller passes times in).
 *
 * Two parts:
 *
 * 1. The meta record that travels beside every payload sse-fcgi publishes, on a
 *    channel outside `<channel_prefix>*` (see hub.c), in the same MULTI/EXEC just
 *    before the payload:
 *
 *        1 o=<origin> s=<seq>[ e=<event>][ i=<id>]
 *
 *    Tokens are separated by one space. The first token is the format version
 *    ("1"); then key=value tokens in any order. Unknown keys are ignored, so a
 *    later version can add one without breaking older readers. origin:
 *    1..DEDUP_ORIGIN_MAX bytes of [0-9a-z]; seq: decimal, 1..UINT64_MAX; event:
 *    1..128 bytes of `A-Z a-z 0-9 - _ . :` (the resource charset, so no payload
 *    byte can ever reach an `event:` line); id: the event id Redis's publish script
 *    appends (history on), handed up as it is (eventid.h validates it), none when
 *    empty.
 *
 * 2. The ledger of this process's own publishes that went to Redis and are not
 *    finished yet. Each entry is delivered to the local streams exactly once,
 *    by whichever comes first: its echo on the subscriber, a Redis error, its
 *    deadline, or the loss of the subscriber. An echo (or anything else) for a
 *    seq that is not in the ledger, or whose entry is already delivered, is
 *    dropped. Since a seq is never reused by a process (origin is random per
 *    process, seq counts up from 1), an entry leaves the ledger only once it is
 *    delivered and answered, and every own publish sent to Redis enters the
 *    ledger BEFORE its commands are written, the local streams can see a
 *    publish at most once (one delivered flag, tested and set in one place,
 *    deliver()) and at least once (every path that finishes an entry delivers
 *    it first). See the argument in dedup.c above deliver().
 *
 *    Every ledger operation is O(1) (amortized): while Redis stalls, thousands of
 *    publishes wait here, and each echo, EXEC answer, deadline pass and re-arm of
 *    the deadline timer must not walk them all. Entries sit in a ring indexed by
 *    seq (seqs are consecutive), the earliest deadline is the oldest entry's
 *    (deadlines grow with seq), a cursor marks where undelivered entries start,
 *    and dedup_cancel() finds a publisher's entries through a hash of owners.
 */
#ifndef SSE_DEDUP_H
#define SSE_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#define DEDUP_ORIGIN_MAX 32
#define DEDUP_EVENT_MAX 128
/* Longest encoded meta record (version, three keys, longest values). */
#define DEDUP_META_MAX (2 + 3 + DEDUP_ORIGIN_MAX + 3 + 20 + 3 + DEDUP_EVENT_MAX + 1)
/* Longest label dedup_set_id() keeps (an event id, eventid.h, is at most 53 bytes). */
#define DEDUP_ID_MAX 64

struct dedup_meta {
	const char *origin;     /* borrowed from the decoded buffer */
	size_t origin_len;
	uint64_t seq;
	const char *event;      /* NULL when the publish named no event; borrowed */
	size_t event_len;
	const char *id;         /* NULL when the record carries no id; borrowed, unchecked */
	size_t id_len;
};

/* Encode into buf (size >= DEDUP_META_MAX always suffices). event may be NULL.
 * Returns the length (no NUL is written), or 0 when an argument is invalid
 * (origin or event empty, too long or out of charset, seq 0) or buf is too small. */
size_t dedup_meta_encode(char *buf, size_t size, const char *origin, size_t origin_len,
    uint64_t seq, const char *event, size_t event_len);
/* 0 and *m filled (pointing into buf), or -1 if buf is not a valid record. */
int dedup_meta_decode(const char *buf, size_t len, struct dedup_meta *m);

/* ---- ledger ---- */

enum dedup_outcome {
	DEDUP_REDIS,    /* Redis accepted it (EXEC answered, or the echo came back) */
	DEDUP_FAILED,   /* Redis refused it or the publisher connection went away */
	DEDUP_TIMEOUT   /* no answer from Redis before the deadline */
};

struct dedup_entry {
	uint64_t seq;
	uint64_t deadline_ms;
	void (*owner_fn)(void);      /* the caller's answer function, cast back by it */
	void *owner;                 /* its argument; NULL after dedup_cancel() */
	int cancelled;               /* set by dedup_cancel(): do not answer */
	size_t delivered_count;      /* what deliver() returned */
	unsigned delivered : 1;
	unsigned echoed : 1;
	unsigned timed_out : 1;
	unsigned exec : 2;           /* DEDUP_EXEC_* */
	char error[128];             /* Redis's reason when exec is FAILED */
	char id[DEDUP_ID_MAX];       /* what dedup_set_id() gave, NOT NUL-terminated */
	unsigned char id_len;
	char *resource;              /* owned copies, NOT NUL-terminated */
	size_t resource_len;
	char *event;                 /* NULL when none */
	size_t event_len;
	char *data;
	size_t len;
	/* Private to dedup.c: the chain of entries whose owner hashes alike. */
	struct dedup_entry *onext, **oprev;
};

enum { DEDUP_EXEC_PENDING, DEDUP_EXEC_OK, DEDUP_EXEC_FAILED };

struct dedup_ops {
	/* Deliver e to the local streams; returns how many got it. Called once per
	 * entry. Must not call back into this ledger except dedup_cancel(). */
	size_t (*deliver)(void *arg, const struct dedup_entry *e);
	/* e is finished: answer its publisher (unless e->cancelled). e is already
	 * out of the ledger and is freed when this returns; err is Redis's reason
	 * for DEDUP_FAILED, "" otherwise. May call dedup_add() and dedup_cancel(). */
	void (*finish)(void *arg, struct dedup_entry *e, enum dedup_outcome how, const char *err);
};

struct dedup;

/* ops and arg are borrowed and must outlive the ledger. NULL on ENOMEM. */
struct dedup *dedup_new(const struct dedup_ops *ops, void *arg);
/* Frees every entry WITHOUT calling deliver or finish. Accepts NULL. */
void dedup_free(struct dedup *d);

/* Record a publish about to be written to Redis. seq must be greater than every
 * seq added before, and exactly one more than the last one while the ledger is
 * not empty (else NULL, EINVAL): entries live in a ring indexed by seq. A
 * deadline_ms below the previous entry's is raised to it, so deadlines grow with
 * seq (the caller's come from one monotonic clock plus one timeout anyway).
 * Copies resource, event (may be NULL) and data. Returns the entry (owned by the
 * ledger), or NULL on ENOMEM. */
struct dedup_entry *dedup_add(struct dedup *d, uint64_t seq, uint64_t deadline_ms,
    const char *resource, size_t resource_len, const char *event, size_t event_len,
    const char *data, size_t len, void (*owner_fn)(void), void *owner);

/* The subscriber brought back this process's own publish seq. Returns 1 if it
 * was delivered now, 0 if dropped (unknown seq: finished already; or already
 * delivered locally). Own publishes older than seq that have not come back yet
 * are delivered locally first, so local order is publish order. */
int dedup_echo(struct dedup *d, uint64_t seq);
/* Redis answered EXEC for seq (ok), or refused it / the connection went away
 * (!ok, err says why, may be NULL). Unknown seq: nothing. */
void dedup_exec(struct dedup *d, uint64_t seq, int ok, const char *err);
/* Keep id (an opaque label: the event id Redis gave the publish) on the entry of seq,
 * for dedup_each_answered(). Unknown seq, or id longer than DEDUP_ID_MAX: nothing. */
void dedup_set_id(struct dedup *d, uint64_t seq, const char *id, size_t len);
/* Calls fn for each entry that is not delivered yet and whose EXEC was answered ok (Redis
 * ran it; its echo is still to come), in seq order, up to the first entry still waiting
 * for its answer. fn must not change the ledger. */
void dedup_each_answered(struct dedup *d, void (*fn)(void *arg, const struct dedup_entry *e),
    void *arg);
/* Deadline pass: every entry whose deadline_ms <= now is delivered locally if it
 * was not, and finished. */
void dedup_expire(struct dedup *d, uint64_t now_ms);
/* The subscription is gone: nothing in flight can come back on it, so deliver
 * every undelivered entry locally now, in seq order. */
void dedup_sub_lost(struct dedup *d);
/* The publisher identified by owner went away: finish() will still be called
 * for its entries, with e->cancelled set and e->owner NULL. */
void dedup_cancel(struct dedup *d, void *owner);

/* Earliest deadline among entries, or UINT64_MAX when the ledger is empty. */
uint64_t dedup_next_deadline(const struct dedup *d);
size_t dedup_count(const struct dedup *d);
/* 1 when seq is in the ledger and not delivered locally yet (its delivery is still to
 * come, by whichever path comes first), else 0. */
int dedup_is_undelivered(const struct dedup *d, uint64_t seq);
/* Internal steps taken so far (ring slots and hash chains visited, entries moved
 * when a table is resized). Every operation is O(1) amortized: a test holds the
 * ledger to a constant number of steps per entry. */
unsigned long long dedup_work(const struct dedup *d);

#endif
