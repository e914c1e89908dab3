/* stream: the shared-message queue and the non-blocking record writer, over a socketpair. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "stream.h"

static struct msg *
text_msg(const char *s, size_t len)
{
	struct msg *m = msg_new(len, 0);

	memcpy(m->data, s, len);
	return m;
}

/* Reads records from fd until want content bytes arrived; checks ids; returns content. */
static size_t
read_records(int fd, uint16_t id, uint8_t *out, size_t want)
{
	size_t got = 0;

	while (got < want) {
		uint8_t h[8];
		size_t clen, pad;

		assert_int_equal(recv(fd, h, 8, MSG_WAITALL), 8);
		assert_int_equal(h[0], 1);
		assert_int_equal(h[1], FCGI_REC_STDOUT);
		assert_int_equal(h[2] << 8 | h[3], id);
		clen = (size_t)h[4] << 8 | h[5];
		pad = h[6];
		assert_true(clen > 0);
		assert_int_equal(recv(fd, out + got, clen, MSG_WAITALL), (ssize_t)clen);
		got += clen;
		if (pad > 0) {
			uint8_t skip[256];
			assert_int_equal(recv(fd, skip, pad, MSG_WAITALL), (ssize_t)pad);
		}
	}
	return got;
}

static void
test_shared_message(void **state)
{
	int sv1[2], sv2[2];
	struct stream a = { 0 }, b = { 0 };
	struct msg *m = text_msg("data: hi\n\n", 10);
	uint8_t out[64];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv1), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
	a.fd = sv1[0];
	a.id = 1;
	b.fd = sv2[0];
	b.id = 513;
	assert_int_equal(stream_queue(&a, m), 0);
	assert_int_equal(stream_queue(&b, m), 0);
	assert_int_equal(m->refs, 3);
	msg_unref(m);
	assert_int_equal(a.queued, 10);
	assert_int_equal(stream_flush(&a), 1);
	assert_int_equal(stream_flush(&b), 1);
	assert_int_equal(read_records(sv1[1], 1, out, 10), 10);
	assert_memory_equal(out, "data: hi\n\n", 10);
	assert_int_equal(read_records(sv2[1], 513, out, 10), 10);
	stream_release(&a);
	stream_release(&b);
	close(sv1[0]); close(sv1[1]); close(sv2[0]); close(sv2[1]);
}

/* Queuing never refuses for size: the limits are the caller's, applied to what a write
 * could not move. What a stream holds counts its ring as well as message bytes. */
static void
test_held(void **state)
{
	struct stream s = { 0 };
	struct msg *small = text_msg("0123456789", 10);
	struct msg *big = msg_new(500000, 0);

	(void)state;
	memset(big->data, 'b', 500000);
	assert_int_equal(stream_queue(&s, big), 0);
	assert_int_equal(stream_queue(&s, big), 0);
	assert_int_equal(stream_held(&s), 1000000 + 4 * sizeof(struct stream_ent));
	stream_release(&s);
	assert_int_equal(stream_held(&s), 0);
	/* tiny events: the ring is most of what a slow stream holds */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(stream_queue(&s, small), 0);
	assert_int_equal(s.cap, 1024);
	assert_int_equal(stream_held(&s), 1000 * 10 + 1024 * sizeof(struct stream_ent));
	stream_release(&s);
	msg_unref(small);
	msg_unref(big);
}

/* The hard limit closes at once, the soft one after soft_seconds over it in a row;
 * dropping under the soft limit restarts its clock. */
static void
test_limits_check(void **state)
{
	struct stream s = { 0 };
	struct stream_limits lim = { 4096, 2048, 10 };
	struct msg *m = msg_new(1000, 0);

	(void)state;
	memset(m->data, 'm', 1000);
	assert_int_equal(stream_queue(&s, m), 0);
	assert_int_equal(stream_limits_check(&s, &lim, 100), 0);   /* 1064 held */
	assert_int_equal(stream_queue(&s, m), 0);
	assert_int_equal(stream_queue(&s, m), 0);                  /* 3064: over soft */
	assert_int_equal(stream_limits_check(&s, &lim, 100), 0);
	assert_int_equal(stream_limits_check(&s, &lim, 109), 0);
	assert_int_equal(stream_limits_check(&s, &lim, 110), 2);
	stream_release(&s);                                        /* drained: clock restarts */
	assert_int_equal(stream_limits_check(&s, &lim, 111), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(stream_queue(&s, m), 0);
	assert_int_equal(stream_limits_check(&s, &lim, 115), 0);
	assert_int_equal(stream_limits_check(&s, &lim, 124), 0);
	assert_int_equal(stream_queue(&s, m), 0);                  /* 4064: still under hard */
	assert_int_equal(stream_limits_check(&s, &lim, 124), 0);
	assert_int_equal(stream_queue(&s, m), 0);                  /* 5128: over hard */
	assert_int_equal(stream_limits_check(&s, &lim, 124), 1);
	lim.soft = 0;                                              /* no soft limit */
	stream_release(&s);
	for (int i = 0; i < 4; i++)
		assert_int_equal(stream_queue(&s, m), 0);
	assert_int_equal(stream_limits_check(&s, &lim, 200), 0);
	assert_int_equal(stream_limits_check(&s, &lim, 9999), 0);
	stream_release(&s);
	msg_unref(m);
}

/* A backlog of tiny events grows the ring; once flushed the ring is given back, and a
 * stream that keeps up keeps its small ring (no allocation per event). */
static void
test_ring_returned(void **state)
{
	int sv[2];
	struct stream s = { 0 };
	struct msg *m = text_msg("data: x\n\n", 9);
	static uint8_t out[40000];
	struct stream_ent *small;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	s.fd = sv[0];
	s.id = 3;
	for (int i = 0; i < 3000; i++)
		assert_int_equal(stream_queue(&s, m), 0);
	assert_int_equal(s.cap, 4096);
	assert_int_equal(stream_flush(&s), 1);
	assert_int_equal(read_records(sv[1], 3, out, 27000), 27000);
	assert_null(s.ring);
	assert_int_equal(s.cap, 0);
	assert_int_equal(stream_held(&s), 0);
	/* keeping up: the 4-entry ring stays */
	assert_int_equal(stream_queue(&s, m), 0);
	small = s.ring;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(stream_flush(&s), 1);
		assert_int_equal(read_records(sv[1], 3, out, 9), 9);
		assert_int_equal(stream_queue(&s, m), 0);
		assert_ptr_equal(s.ring, small);
	}
	assert_int_equal(s.cap, 4);
	stream_release(&s);
	msg_unref(m);
	close(sv[0]);
	close(sv[1]);
}

/* Many messages, a tiny socket buffer, partial writes: the far end must see every byte
 * in order, framed in records of at most 65535 bytes (some messages are larger). */
static void
test_partial_writes(void **state)
{
	int sv[2], sz = 4096;
	struct stream s = { 0 };
	static uint8_t expect[400000], got[400000];
	size_t total = 0, rd = 0;
	unsigned seed = 7;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	s.fd = sv[0];
	s.id = 9;
	for (int i = 0; i < 40; i++) {
		size_t len = (i % 10 == 9) ? 70000 : (size_t)(rand_r(&seed) % 300) + 1;
		struct msg *m = msg_new(len, 0);

		for (size_t k = 0; k < len; k++)
			m->data[k] = (char)('a' + (i + k) % 26);
		memcpy(expect + total, m->data, len);
		total += len;
		assert_int_equal(stream_queue(&s, m), 0);
		msg_unref(m);
	}
	/* alternate writer and a non-blocking reader until the queue is empty, then
	 * parse the raw bytes as records */
	{
		static uint8_t raw[500000];
		size_t rawlen = 0, off = 0;
		int r;

		do {
			ssize_t n;

			r = stream_flush(&s);
			assert_true(r >= 0);
			while ((n = recv(sv[1], raw + rawlen, sizeof(raw) - rawlen, MSG_DONTWAIT)) > 0)
				rawlen += (size_t)n;
		} while (r != 1);
		while (off < rawlen) {
			size_t clen = (size_t)raw[off + 4] << 8 | raw[off + 5];

			assert_int_equal(raw[off + 1], FCGI_REC_STDOUT);
			assert_int_equal(raw[off + 3], 9);
			assert_true(clen > 0 && clen <= 65535);
			memcpy(got + rd, raw + off + 8, clen);
			rd += clen;
			off += 8 + clen + raw[off + 6];
		}
		assert_int_equal(off, rawlen);
	}
	assert_int_equal(rd, total);
	assert_memory_equal(got, expect, total);
	assert_int_equal(s.queued, 0);
	stream_release(&s);
	close(sv[0]);
	close(sv[1]);
}

static void
test_framed_and_errors(void **state)
{
	int sv[2];
	struct stream s = { 0 };
	uint8_t end[FCGI_END_LEN], out[64];
	struct msg *m = msg_new(FCGI_END_LEN, 1);

	(void)state;
	fcgi_end_encode(end, 3, 0);
	memcpy(m->data, end, FCGI_END_LEN);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.fd = sv[0];
	assert_int_equal(stream_queue(&s, m), 0);
	assert_int_equal(stream_flush(&s), 1);
	assert_int_equal(recv(sv[1], out, sizeof(out), 0), FCGI_END_LEN);
	assert_memory_equal(out, end, FCGI_END_LEN);
	/* peer gone: a write error, not a crash (SIGPIPE ignored as in the daemon) */
	close(sv[1]);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(stream_queue(&s, m), 0);
	assert_int_equal(stream_flush(&s), -1);
	stream_release(&s);
	msg_unref(m);
	close(sv[0]);
}

/* Events queued together share one record: one header for all of them. */
static void
test_coalesce(void **state)
{
	int sv[2];
	struct stream s = { 0 };
	uint8_t out[256];
	struct msg *m[3] = { text_msg("data: a\n\n", 9), text_msg("data: bb\n\n", 10),
	    text_msg(": hb\n\n", 6) };
	struct msg *end = msg_new(FCGI_END_LEN, 1);

	(void)state;
	fcgi_end_encode((uint8_t *)end->data, 5, 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.fd = sv[0];
	s.id = 5;
	for (int i = 0; i < 3; i++)
		assert_int_equal(stream_queue(&s, m[i]), 0);
	assert_int_equal(stream_queue(&s, end), 0);
	assert_int_equal(stream_flush(&s), 1);
	assert_int_equal(recv(sv[1], out, sizeof(out), 0), 8 + 25 + FCGI_END_LEN);
	assert_int_equal(out[1], FCGI_REC_STDOUT);
	assert_int_equal(out[4] << 8 | out[5], 25);
	assert_memory_equal(out + 8, "data: a\n\ndata: bb\n\n: hb\n\n", 25);
	assert_memory_equal(out + 33, end->data, FCGI_END_LEN);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.rec_len, 0);
	for (int i = 0; i < 3; i++)
		msg_unref(m[i]);
	msg_unref(end);
	stream_release(&s);
	close(sv[0]);
	close(sv[1]);
}

/* A write cut inside a record header resumes inside it: the far end sees valid records. */
static void
test_cut_in_header(void **state)
{
	int sv[2], sz = 4096;
	struct stream s = { 0 };
	static uint8_t raw[300000];
	size_t rawlen = 0, off = 0, content = 0;
	struct msg *m = msg_new(4093, 0);   /* odd sizes move the cut around */
	int r;

	(void)state;
	memset(m->data, 'z', m->len);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	s.fd = sv[0];
	s.id = 2;
	for (int i = 0; i < 60; i++)
		assert_int_equal(stream_queue(&s, m), 0);
	do {
		ssize_t n;

		r = stream_flush(&s);
		assert_true(r >= 0);
		/* read a few bytes at a time so writes get cut at odd places */
		while ((n = recv(sv[1], raw + rawlen, 1001, MSG_DONTWAIT)) > 0)
			rawlen += (size_t)n;
	} while (r != 1);
	while (off < rawlen) {
		size_t clen = (size_t)raw[off + 4] << 8 | raw[off + 5];

		assert_int_equal(raw[off], 1);
		assert_int_equal(raw[off + 1], FCGI_REC_STDOUT);
		assert_int_equal(raw[off + 3], 2);
		for (size_t k = 0; k < clen; k++)
			assert_int_equal(raw[off + 8 + k], 'z');
		content += clen;
		off += 8 + clen;
	}
	assert_int_equal(off, rawlen);
	assert_int_equal(content, 60 * 4093);
	msg_unref(m);
	stream_release(&s);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_message),
		cmocka_unit_test(test_held),
		cmocka_unit_test(test_limits_check),
		cmocka_unit_test(test_ring_returned),
		cmocka_unit_test(test_partial_writes),
		cmocka_unit_test(test_framed_and_errors),
		cmocka_unit_test(test_coalesce),
		cmocka_unit_test(test_cut_in_header),
	};

	return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
