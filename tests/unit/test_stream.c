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
	assert_int_equal(stream_queue(&a, m, 1024), 0);
	assert_int_equal(stream_queue(&b, m, 1024), 0);
	assert_int_equal(m->refs, 3);
	msg_unref(m);
	assert_int_equal(a.queued, 18);
	assert_int_equal(stream_flush(&a), 1);
	assert_int_equal(stream_flush(&b), 1);
	assert_int_equal(read_records(sv1[1], 1, out, 10), 10);
	assert_memory_equal(out, "data: hi\n\n", 10);
	assert_int_equal(read_records(sv2[1], 513, out, 10), 10);
	stream_release(&a);
	stream_release(&b);
	close(sv1[0]); close(sv1[1]); close(sv2[0]); close(sv2[1]);
}

/* A stalled reader: the queue grows to the limit, then refuses with ENOBUFS; an empty
 * queue still takes one message bigger than the limit. */
static void
test_limit(void **state)
{
	struct stream s = { 0 };
	struct msg *small = text_msg("0123456789", 10);
	struct msg *big = msg_new(5000, 0);

	(void)state;
	memset(big->data, 'b', 5000);
	assert_int_equal(stream_queue(&s, big, 100), 0);
	assert_int_equal(stream_queue(&s, small, 100), -1);
	assert_int_equal(errno, ENOBUFS);
	stream_release(&s);
	for (int i = 0; i < 5; i++)
		assert_int_equal(stream_queue(&s, small, 100), 0);   /* 5 * 18 = 90 */
	assert_int_equal(stream_queue(&s, small, 100), -1);
	stream_release(&s);
	msg_unref(small);
	msg_unref(big);
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
		assert_int_equal(stream_queue(&s, m, SIZE_MAX), 0);
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
	assert_int_equal(stream_framed_len(m), FCGI_END_LEN);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.fd = sv[0];
	assert_int_equal(stream_queue(&s, m, 1024), 0);
	assert_int_equal(stream_flush(&s), 1);
	assert_int_equal(recv(sv[1], out, sizeof(out), 0), FCGI_END_LEN);
	assert_memory_equal(out, end, FCGI_END_LEN);
	/* peer gone: a write error, not a crash (SIGPIPE ignored as in the daemon) */
	close(sv[1]);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(stream_queue(&s, m, 1024), 0);
	assert_int_equal(stream_flush(&s), -1);
	stream_release(&s);
	msg_unref(m);
	close(sv[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_message),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_partial_writes),
		cmocka_unit_test(test_framed_and_errors),
	};

	return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
