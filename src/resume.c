/* resume — see resume.h. */
#include "resume.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "ev.h"
#include "eventid.h"
#include "history.h"
#include "log.h"
#include "sse.h"
#include "stream.h"

#define EPOCH_LEN 16
#define SWEEP_MAX_MS 60000   /* expired history is freed at least this often */

struct resume {
	struct ev_loop *loop;
	struct history *hist;   /* NULL: ids off */
	struct ev_timer sweep;
	uint64_t sweep_ms;
	char epoch[EPOCH_LEN + 1];
};

/* A new epoch per process start: an id from before a restart names a history that no
 * longer exists, and is told so rather than taken for a position in this one. */
static void
make_epoch(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[EPOCH_LEN / 2];

	if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^
		    ((uint64_t)getpid() << 40);
		for (size_t i = 0; i < sizeof(b); i++) {
			x ^= x >> 33;
			x *= 0xff51afd7ed558ccdULL;
			b[i] = (unsigned char)(x >> 56);
		}
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[EPOCH_LEN] = '\0';
}

static void
on_sweep(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct resume *rs = arg;
	size_t n = history_expire(rs->hist, ev_now_ms(loop));

	if (n > 0)
		log_debug("history: %zu events past history_ttl dropped", n);
	ev_timer_start(loop, t, rs->sweep_ms);
}

struct resume *
resume_new(struct ev_loop *loop, const struct conf *conf)
{
	struct resume *rs = calloc(1, sizeof(*rs));
	uint64_t ttl_ms = (uint64_t)conf->history_ttl * 1000;

	if (rs == NULL)
		return NULL;
	rs->loop = loop;
	ev_timer_init(&rs->sweep, on_sweep, rs);
	if (conf->history_size == 0)
		return rs;
	if (conf_redis_is_configured(conf)) {
		log_notice("history: not kept with Redis configured in this version; "
		    "events carry no id and Last-Event-ID is ignored");
		return rs;
	}
	rs->hist = history_new((uint32_t)conf->history_size, (size_t)conf->history_bytes, ttl_ms);
	if (rs->hist == NULL)
		goto fail;
	make_epoch(rs->epoch);
	rs->sweep_ms = ttl_ms / 4 < SWEEP_MAX_MS ? ttl_ms / 4 : SWEEP_MAX_MS;
	if (rs->sweep_ms < 250)
		rs->sweep_ms = 250;
	if (ev_timer_start(loop, &rs->sweep, rs->sweep_ms) == -1)
		goto fail;
	log_info("history: %d events per resource, %d s, %d bytes in all; epoch %s",
	    conf->history_size, conf->history_ttl, conf->history_bytes, rs->epoch);
	return rs;
fail:
	resume_free(rs);
	return NULL;
}

void
resume_free(struct resume *rs)
{
	if (rs == NULL)
		return;
	ev_timer_stop(rs->loop, &rs->sweep);
	history_free(rs->hist);
	free(rs);
}

int
resume_is_on(const struct resume *rs)
{
	return rs->hist != NULL;
}

static struct msg *
frame(const char *id, size_t id_len, const char *event, size_t event_len,
    const char *data, size_t len)
{
	struct msg *m = msg_new(sse_event_id_size(id, id_len, event, event_len, data, len), 0);

	if (m != NULL)
		sse_event_id_encode(m->data, id, id_len, event, event_len, data, len);
	return m;
}

struct msg *
resume_event_new(struct resume *rs, const char *resource, size_t resource_len,
    const char *event, size_t event_len, const char *data, size_t len)
{
	char id[EVENTID_MAX + 1];
	size_t id_len;
	uint64_t seq;
	struct msg *m;

	if (rs->hist == NULL)
		return frame(NULL, 0, event, event_len, data, len);
	seq = history_seq_next(rs->hist);
	id_len = eventid_format(id, sizeof(id), rs->epoch, EPOCH_LEN, seq);
	m = frame(id, id_len, event, event_len, data, len);
	if (m == NULL)
		return NULL;   /* nobody gets it: no resume can miss it either */
	if (history_add(rs->hist, resource, resource_len, seq, m, ev_now_ms(rs->loop)) == -1)
		log_warn("history: out of memory keeping %s on %.*s; a resume from before it "
		    "gets reset", id, (int)resource_len, resource);
	return m;
}

static int
push_reset(struct resume *rs, const char *resource, size_t resource_len, const char *reason,
    resume_push_fn *push, void *arg)
{
	char id[EVENTID_MAX + 1], data[64];
	size_t id_len = eventid_format(id, sizeof(id), rs->epoch, EPOCH_LEN,
	    history_head(rs->hist, resource, resource_len));
	int dlen = snprintf(data, sizeof(data), "{\"reason\":\"%s\"}", reason);
	struct msg *m = frame(id, id_len, "reset", 5, data, (size_t)dlen);
	int r;

	if (m == NULL)
		return RESUME_FAILED;
	log_debug("resume on %.*s: reset (%s), head %s", (int)resource_len, resource, reason, id);
	r = push(arg, m);
	msg_unref(m);
	return r == 0 ? RESUME_LIVE : RESUME_FAILED;
}

struct replay {
	resume_push_fn *push;
	void *arg;
	int stopped;
};

static int
replay_one(void *arg, const struct history_ent *e)
{
	struct replay *rp = arg;

	if (rp->push(rp->arg, e->m) == -1) {
		rp->stopped = 1;
		return -1;
	}
	return 0;
}

int
resume_stream_start(struct resume *rs, const char *resource, size_t resource_len,
    const char *last_id, size_t last_id_len, resume_push_fn *push, void *arg)
{
	struct replay rp = { push, arg, 0 };
	struct eventid id;
	int n;

	if (rs->hist == NULL || last_id == NULL || last_id_len == 0)
		return RESUME_LIVE;
	if (eventid_parse(&id, last_id, last_id_len) == -1)
		return push_reset(rs, resource, resource_len, "malformed", push, arg);
	if (!eventid_same_epoch(&id, rs->epoch, EPOCH_LEN))
		return push_reset(rs, resource, resource_len, "epoch", push, arg);
	n = history_replay(rs->hist, resource, resource_len, id.seq, ev_now_ms(rs->loop),
	    replay_one, &rp);
	if (n == HISTORY_GONE)
		return push_reset(rs, resource, resource_len, "gone", push, arg);
	if (n == HISTORY_AHEAD)
		return push_reset(rs, resource, resource_len, "malformed", push, arg);
	log_debug("resume on %.*s after %.*s: %d events replayed%s", (int)resource_len, resource,
	    (int)last_id_len, last_id, n - rp.stopped, rp.stopped ? ", the rest next time" : "");
	return rp.stopped ? RESUME_CUT : RESUME_LIVE;
}
