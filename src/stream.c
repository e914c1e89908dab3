/* stream — see stream.h. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define FLUSH_IOV 128            /* pieces per writev (IOV_MAX is 1024) */
#define FLUSH_MAX_BYTES (1u << 20) /* one writev never asks for more than this */

struct msg *
msg_new(size_t len, int framed)
{
	struct msg *m;

	if (len > UINT32_MAX - 1)
		return NULL;
	m = malloc(sizeof(*m) + len);
	if (m == NULL)
		return NULL;
	m->refs = 1;
	m->len = (uint32_t)len;
	m->framed = framed != 0;
	return m;
}

struct msg *
msg_ref(struct msg *m)
{
	if (m->refs != MSG_STATIC)
		m->refs++;
	return m;
}

void
msg_unref(struct msg *m)
{
	if (m == NULL || m->refs == MSG_STATIC)
		return;
	if (--m->refs == 0)
		free(m);
}

int
stream_queue(struct stream *s, struct msg *m)
{
	if (m->len == 0)   /* nothing to write; an empty entry would never leave */
		return 0;
	if (s->queued > UINT32_MAX - m->len || s->cap > UINT32_MAX / 2 / sizeof(*s->ring)) {
		errno = ENOMEM;
		return -1;
	}
	if (s->count == s->cap) {
		uint32_t ncap = s->cap ? s->cap * 2 : 4;
		struct stream_ent *nr = malloc(ncap * sizeof(*nr));

		if (nr == NULL) {
			errno = ENOMEM;
			return -1;
		}
		/* unroll the ring so head is at 0 */
		for (uint32_t i = 0; i < s->count; i++)
			nr[i] = s->ring[(s->head + i) % s->cap];
		free(s->ring);
		s->ring = nr;
		s->cap = ncap;
		s->head = 0;
	}
	s->ring[(s->head + s->count) % s->cap] = (struct stream_ent){ msg_ref(m), 0 };
	s->count++;
	s->queued += m->len;
	return 0;
}

size_t
stream_held(const struct stream *s)
{
	return (size_t)s->queued + (size_t)s->cap * sizeof(*s->ring);
}

int
stream_limits_check(struct stream *s, const struct stream_limits *lim, uint32_t now_s)
{
	size_t held = stream_held(s);

	if (held > lim->hard)
		return 1;
	if (lim->soft == 0 || held <= lim->soft) {
		s->flags &= (uint8_t)~STREAM_OVER_SOFT;
		return 0;
	}
	if (!(s->flags & STREAM_OVER_SOFT)) {
		s->flags |= STREAM_OVER_SOFT;
		s->soft_since = now_s;
		return 0;
	}
	return now_s - s->soft_since >= lim->soft_seconds ? 2 : 0;
}

/*
 * One writev is planned as pieces: a record header, message bytes inside a record, or a
 * ready-made (framed) message. After the write, the same plan tells what the bytes that
 * went out were, so a write cut anywhere, even inside a header, resumes exactly there.
 */
enum piece_kind { PIECE_HDR, PIECE_DATA, PIECE_RAW };

struct piece {
	uint8_t kind;
	uint16_t rec_len;   /* PIECE_HDR: the record's content length */
	uint32_t ent;       /* PIECE_DATA, PIECE_RAW: entry, counted from the head */
};

struct plan {
	struct iovec iov[FLUSH_IOV];
	struct piece piece[FLUSH_IOV];
	uint8_t hdrs[FLUSH_IOV][FCGI_REC_HEADER_LEN];
	int n;
	size_t bytes;
};

static struct stream_ent *
ent_at(const struct stream *s, uint32_t i)
{
	return &s->ring[(s->head + i) % s->cap];
}

static void
plan_add(struct plan *p, enum piece_kind kind, const void *base, size_t len,
    uint16_t rec_len, uint32_t ent)
{
	p->iov[p->n].iov_base = (void *)base;
	p->iov[p->n].iov_len = len;
	p->piece[p->n] = (struct piece){ (uint8_t)kind, rec_len, ent };
	p->n++;
	p->bytes += len;
}

/* Content of a record starting at entry i, offset pos: the unframed bytes queued from
 * there on, up to the first framed message and at most 65535. */
static uint16_t
record_content(const struct stream *s, uint32_t i, uint32_t pos)
{
	size_t sum = 0;

	for (; i < s->count && sum < FCGI_REC_MAX_CONTENT; i++, pos = 0) {
		const struct msg *m = ent_at(s, i)->m;

		if (m->framed)
			break;
		sum += m->len - pos;
	}
	return (uint16_t)(sum < FCGI_REC_MAX_CONTENT ? sum : FCGI_REC_MAX_CONTENT);
}

static void
plan_build(const struct stream *s, struct plan *p)
{
	uint32_t open_left = s->rec_left;

	p->n = 0;
	p->bytes = 0;
	if (s->rec_len > 0 && s->hdr_sent < FCGI_REC_HEADER_LEN) {
		fcgi_header_encode(p->hdrs[0], FCGI_REC_STDOUT, s->id, s->rec_len, 0);
		plan_add(p, PIECE_HDR, p->hdrs[0] + s->hdr_sent, FCGI_REC_HEADER_LEN - s->hdr_sent,
		    s->rec_len, 0);
	}
	for (uint32_t i = 0; i < s->count; i++) {
		const struct stream_ent *e = ent_at(s, i);
		const struct msg *m = e->m;
		uint32_t pos = e->off;

		if (m->framed) {
			if (p->n + 1 > FLUSH_IOV || p->bytes >= FLUSH_MAX_BYTES)
				return;
			plan_add(p, PIECE_RAW, m->data + pos, m->len - pos, 0, i);
			continue;
		}
		while (pos < m->len) {
			uint32_t take;

			if (open_left == 0) {
				uint16_t clen;

				if (p->n + 2 > FLUSH_IOV || p->bytes >= FLUSH_MAX_BYTES)
					return;
				clen = record_content(s, i, pos);
				fcgi_header_encode(p->hdrs[p->n], FCGI_REC_STDOUT, s->id, clen, 0);
				plan_add(p, PIECE_HDR, p->hdrs[p->n], FCGI_REC_HEADER_LEN, clen, 0);
				open_left = clen;
			} else if (p->n + 1 > FLUSH_IOV) {
				return;
			}
			take = m->len - pos < open_left ? m->len - pos : open_left;
			plan_add(p, PIECE_DATA, m->data + pos, take, 0, i);
			pos += take;
			open_left -= take;
		}
	}
}

/* Applies n written bytes to the stream along the plan they were written from. */
static void
plan_apply(struct stream *s, const struct plan *p, size_t n)
{
	uint32_t popped = 0;

	for (int k = 0; k < p->n && n > 0; k++) {
		const struct piece *pc = &p->piece[k];
		size_t len = p->iov[k].iov_len, w = n < len ? n : len;

		n -= w;
		if (pc->kind == PIECE_HDR) {
			if (s->rec_len == 0) {   /* a new record: its header starts here */
				s->rec_len = pc->rec_len;
				s->rec_left = pc->rec_len;
				s->hdr_sent = 0;
			}
			s->hdr_sent = (uint8_t)(s->hdr_sent + w);
			continue;
		}
		struct stream_ent *e = ent_at(s, pc->ent - popped);

		e->off += (uint32_t)w;
		s->queued -= (uint32_t)w;
		if (pc->kind == PIECE_DATA) {
			s->rec_left = (uint16_t)(s->rec_left - w);
			if (s->rec_left == 0) {
				s->rec_len = 0;
				s->hdr_sent = 0;
			}
		}
		if (e->off == e->m->len) {
			msg_unref(e->m);
			e->m = NULL;
			s->head = (s->head + 1) % s->cap;
			s->count--;
			popped++;
		}
	}
}

int
stream_flush(struct stream *s)
{
	while (s->count > 0) {
		struct plan p;
		ssize_t n;

		plan_build(s, &p);
		do
			n = writev(s->fd, p.iov, p.n);
		while (n == -1 && errno == EINTR);
		if (n == -1)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		plan_apply(s, &p, (size_t)n);
		if ((size_t)n < p.bytes)
			return 0;
	}
	if (s->cap > STREAM_RING_KEEP) {
		/* a backlog grew the ring: give it back rather than keep it for life */
		free(s->ring);
		s->ring = NULL;
		s->cap = s->head = 0;
	}
	return 1;
}

void
stream_release(struct stream *s)
{
	while (s->count > 0) {
		msg_unref(s->ring[s->head].m);
		s->head = (s->head + 1) % s->cap;
		s->count--;
	}
	free(s->ring);
	s->ring = NULL;
	s->cap = s->head = 0;
	s->queued = 0;
	s->rec_len = s->rec_left = 0;
	s->hdr_sent = 0;
}
