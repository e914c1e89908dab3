/* stream — see stream.h. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define RECORD_SPAN (FCGI_REC_HEADER_LEN + FCGI_REC_MAX_CONTENT)
#define FLUSH_IOV 128            /* 64 records: header + content each */
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

size_t
stream_framed_len(const struct msg *m)
{
	if (m->framed)
		return m->len;
	return fcgi_stdout_size(m->len);
}

int
stream_queue(struct stream *s, struct msg *m, size_t limit)
{
	size_t flen = stream_framed_len(m);

	if (s->count > 0 && s->queued + flen > limit) {
		errno = ENOBUFS;
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
	s->queued += (uint32_t)flen;
	return 0;
}

/*
 * Adds the iovecs for what is left of one entry; returns how many slots were used.
 * Headers for unframed messages are written into hdrs, which must outlive the writev.
 */
static int
entry_iov(const struct stream *s, const struct stream_ent *e, struct iovec *iov, int room,
    uint8_t (*hdrs)[FCGI_REC_HEADER_LEN], int *nhdr, size_t *bytes)
{
	const struct msg *m = e->m;
	size_t off = e->off;
	int used = 0;

	if (m->framed) {
		iov[0].iov_base = (void *)(m->data + off);
		iov[0].iov_len = m->len - off;
		*bytes += iov[0].iov_len;
		return 1;
	}
	while (off < stream_framed_len(m) && used + 2 <= room && *bytes < FLUSH_MAX_BYTES) {
		size_t k = off / RECORD_SPAN, within = off % RECORD_SPAN;
		size_t start = k * FCGI_REC_MAX_CONTENT;
		size_t clen = m->len - start < FCGI_REC_MAX_CONTENT ? m->len - start : FCGI_REC_MAX_CONTENT;

		if (within < FCGI_REC_HEADER_LEN) {
			uint8_t *h = hdrs[(*nhdr)++];

			fcgi_header_encode(h, FCGI_REC_STDOUT, s->id, (uint16_t)clen, 0);
			iov[used].iov_base = h + within;
			iov[used].iov_len = FCGI_REC_HEADER_LEN - within;
			*bytes += iov[used].iov_len;
			used++;
			within = FCGI_REC_HEADER_LEN;
		}
		iov[used].iov_base = (void *)(m->data + start + within - FCGI_REC_HEADER_LEN);
		iov[used].iov_len = clen - (within - FCGI_REC_HEADER_LEN);
		*bytes += iov[used].iov_len;
		used++;
		off = k * RECORD_SPAN + FCGI_REC_HEADER_LEN + clen;
	}
	return used;
}

static void
advance(struct stream *s, size_t n)
{
	while (n > 0 && s->count > 0) {
		struct stream_ent *e = &s->ring[s->head];
		size_t rest = stream_framed_len(e->m) - e->off;

		if (n < rest) {
			e->off += (uint32_t)n;
			s->queued -= (uint32_t)n;
			return;
		}
		n -= rest;
		s->queued -= (uint32_t)rest;
		msg_unref(e->m);
		e->m = NULL;
		s->head = (s->head + 1) % s->cap;
		s->count--;
	}
}

int
stream_flush(struct stream *s)
{
	while (s->count > 0) {
		struct iovec iov[FLUSH_IOV];
		uint8_t hdrs[FLUSH_IOV / 2][FCGI_REC_HEADER_LEN];
		int niov = 0, nhdr = 0;
		size_t bytes = 0;
		ssize_t n;

		for (uint32_t i = 0; i < s->count && niov + 2 <= FLUSH_IOV &&
		    bytes < FLUSH_MAX_BYTES; i++)
			niov += entry_iov(s, &s->ring[(s->head + i) % s->cap], iov + niov,
			    FLUSH_IOV - niov, hdrs, &nhdr, &bytes);
		do
			n = writev(s->fd, iov, niov);
		while (n == -1 && errno == EINTR);
		if (n == -1)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		advance(s, (size_t)n);
		if ((size_t)n < bytes)
			return 0;
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
}
