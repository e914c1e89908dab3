/* fcgi_record: request-head scanning, the stream tail watcher, and record encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "fcgi_record.h"
#include "fcgi_shapes.h"

static size_t
rec(uint8_t *o, int type, uint16_t id, const void *c, size_t n, uint8_t pad)
{
	fcgi_header_encode(o, (enum fcgi_rec_type)type, id, (uint16_t)n, pad);
	memcpy(o + 8, c, n);
	memset(o + 8 + n, 0, pad);
	return 8 + n + pad;
}

static size_t
request(uint8_t *buf, const char *body, size_t body_len)
{
	static const uint8_t begin[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };
	static const char params[] = "\x0e\x03REQUEST_METHODGET";
	size_t len = 0;

	len += rec(buf + len, FCGI_REC_BEGIN_REQUEST, 1, begin, 8, 0);
	len += rec(buf + len, FCGI_REC_PARAMS, 1, params, sizeof(params) - 1, 3);
	len += rec(buf + len, FCGI_REC_PARAMS, 1, "", 0, 0);
	if (body_len > 0)
		len += rec(buf + len, FCGI_REC_STDIN, 1, body, body_len, 0);
	len += rec(buf + len, FCGI_REC_STDIN, 1, "", 0, 0);
	return len;
}

/* Fed one byte at a time, the scanner asks for more until the very last byte. */
static void
test_head_bytewise(void **state)
{
	uint8_t full[512], buf[512];
	size_t total = request(full, "hello", 5), len = 0;
	struct fcgi_head_scan s;

	(void)state;
	fcgi_head_scan_init(&s);
	for (size_t i = 0; i < total; i++) {
		buf[len++] = full[i];
		int r = fcgi_head_scan(&s, buf, &len, 1024);
		if (i + 1 < total)
			assert_int_equal(r, -2);
		else
			assert_int_equal(r, 0);
	}
	assert_int_equal(s.id, 1);
	assert_int_equal(s.stdin_bytes, 5);
	assert_false(s.stdin_dropped);
	assert_int_equal(len, total);
	assert_int_equal(s.off, total);
}

/* A body over the limit is cut out as it arrives, so the buffer stays bounded. */
static void
test_head_body_too_large(void **state)
{
	uint8_t buf[4096];
	char body[1000];
	size_t len;
	struct fcgi_head_scan s;

	(void)state;
	memset(body, 'x', sizeof(body));
	len = request(buf, body, sizeof(body));
	fcgi_head_scan_init(&s);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), 0);
	assert_true(s.stdin_dropped);
	assert_int_equal(s.stdin_bytes, 1000);
	assert_true(len < 100);
}

static void
test_head_errors(void **state)
{
	uint8_t buf[256];
	size_t len;
	struct fcgi_head_scan s;

	(void)state;
	/* bad version */
	len = request(buf, NULL, 0);
	buf[0] = 2;
	fcgi_head_scan_init(&s);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), -1);
	/* PARAMS before BEGIN */
	len = rec(buf, FCGI_REC_PARAMS, 1, "", 0, 0);
	fcgi_head_scan_init(&s);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), -1);
	/* abort while the head arrives */
	len = request(buf, NULL, 0);
	len = 16 + rec(buf + 16, FCGI_REC_ABORT_REQUEST, 1, "", 0, 0);
	fcgi_head_scan_init(&s);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), -1);
	assert_true(s.aborted);
}

/* Management records (id 0) are not part of the request handed to libfcgi. */
static void
test_head_drops_management(void **state)
{
	uint8_t buf[512], ref[512];
	size_t len, reflen = request(ref, NULL, 0);
	struct fcgi_head_scan s;

	(void)state;
	len = rec(buf, FCGI_REC_GET_VALUES, 0, "", 0, 0);
	memcpy(buf + len, ref, reflen);
	len += reflen;
	fcgi_head_scan_init(&s);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), 0);
	assert_int_equal(len, reflen);
	assert_memory_equal(buf, ref, reflen);
}

/* Scans buf whole, then again one byte at a time; both must give the same verdict. */
static int
scan_both_ways(const uint8_t *raw, size_t total)
{
	uint8_t buf[1024];
	size_t len = total;
	struct fcgi_head_scan s;
	int whole, r = -2;

	memcpy(buf, raw, total);
	fcgi_head_scan_init(&s);
	whole = fcgi_head_scan(&s, buf, &len, 1024);
	fcgi_head_scan_init(&s);
	len = 0;
	for (size_t i = 0; i < total && r == -2; i++) {
		buf[len++] = raw[i];
		r = fcgi_head_scan(&s, buf, &len, 1024);
	}
	assert_int_equal(r, whole);
	return whole;
}

/*
 * Everything libfcgi will read is checked before it may: each of these shapes libfcgi
 * refuses (and then closes the file it reads from itself), misreads or dies on. The
 * scanner refuses them all, so the peer is closed and libfcgi never sees them.
 */
static void
test_head_refuses_what_libfcgi_cannot_take(void **state)
{
	uint8_t buf[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(shapes_bad) / sizeof(shapes_bad[0]); i++) {
		size_t len = shape_bytes(buf, &shapes_bad[i]);

		if (scan_both_ways(buf, len) != -1)
			fail_msg("%s: not refused", shapes_bad[i].name);
	}
	for (size_t i = 0; i < sizeof(shapes_good) / sizeof(shapes_good[0]); i++) {
		size_t len = shape_bytes(buf, &shapes_good[i]);

		if (scan_both_ways(buf, len) != 0)
			fail_msg("%s: refused", shapes_good[i].name);
	}
}

/* A pair may straddle PARAMS records, with records of no concern in between. */
static void
test_head_pair_across_records(void **state)
{
	static const char p[] = SHAPE_PARAMS;
	uint8_t buf[1024];
	size_t len = 0;
	struct fcgi_head_scan s;

	(void)state;
	len += shape_rec(buf + len, FCGI_REC_BEGIN_REQUEST, 1, shape_begin_ok, 8, 0);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, p, 1, 7);      /* half a length */
	len += shape_rec(buf + len, FCGI_REC_GET_VALUES, 0, "", 0, 0);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, p + 1, 10, 6);
	len += shape_rec(buf + len, FCGI_REC_STDIN, 2, "zz", 2, 6);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, p + 11, sizeof(p) - 12, 0);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, "", 0, 0);
	len += shape_rec(buf + len, FCGI_REC_STDIN, 1, "", 0, 0);
	assert_int_equal(scan_both_ways(buf, len), 0);
	/* and one byte short of its last pair, the same stream is refused */
	len = 0;
	len += shape_rec(buf + len, FCGI_REC_BEGIN_REQUEST, 1, shape_begin_ok, 8, 0);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, p, 10, 6);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, p + 10, sizeof(p) - 12, 0);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, "", 0, 0);
	len += shape_rec(buf + len, FCGI_REC_STDIN, 1, "", 0, 0);
	fcgi_head_scan_init(&s);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), -1);
}

/*
 * A request followed and interleaved with management records, records of another id and
 * of unknown types: all of them are cut out in one call, what is left is exactly the
 * request, and every cut byte is counted in skipped.
 */
static void
test_head_compacts(void **state)
{
	static uint8_t buf[1 << 16], ref[512];
	size_t reflen = request(ref, "body", 4), len = 0, junk = 0, n;
	struct fcgi_head_scan s;

	(void)state;
	/* BEGIN_REQUEST, then junk, then the rest of the request with junk between records */
	memcpy(buf, ref, 16);
	len = 16;
	for (int i = 0; i < 1000; i++) {
		n = rec(buf + len, FCGI_REC_GET_VALUES, 0, "", 0, 0);
		len += n;
		junk += n;
	}
	n = rec(buf + len, FCGI_REC_STDIN, 7, "other", 5, 3);   /* another request id */
	len += n;
	junk += n;
	n = rec(buf + len, 8, 1, "data", 4, 4);                 /* FCGI_DATA: not a responder's */
	len += n;
	junk += n;
	memcpy(buf + len, ref + 16, reflen - 16);
	len += reflen - 16;
	n = rec(buf + len, 11, 0, "x", 1, 7);                   /* unknown management type */
	len += n;
	fcgi_head_scan_init(&s);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), 0);
	assert_int_equal(s.skipped, junk);
	assert_int_equal(s.off, reflen);
	assert_int_equal(len, reflen + n);   /* bytes after the request stay, right after it */
	assert_memory_equal(buf, ref, reflen);
}

/* Fed in pieces that cut records anywhere, junk between the records: the same result. */
static void
test_head_compacts_in_pieces(void **state)
{
	static const uint8_t begin[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };
	static const char params[] = "\x0e\x03REQUEST_METHODGET";
	static uint8_t full[8192], buf[8192];
	uint8_t ref[512];
	size_t reflen = 0, total = 0, len = 0, junk = 0;
	size_t cuts[5];
	struct fcgi_head_scan s;
	int r = -2, k = 0;

	(void)state;
	reflen += rec(ref + reflen, FCGI_REC_BEGIN_REQUEST, 1, begin, 8, 0);
	cuts[k++] = reflen;
	reflen += rec(ref + reflen, FCGI_REC_PARAMS, 1, params, sizeof(params) - 1, 3);
	cuts[k++] = reflen;
	reflen += rec(ref + reflen, FCGI_REC_PARAMS, 1, "", 0, 0);
	cuts[k++] = reflen;
	reflen += rec(ref + reflen, FCGI_REC_STDIN, 1, "hello", 5, 3);
	cuts[k++] = reflen;
	reflen += rec(ref + reflen, FCGI_REC_STDIN, 1, "", 0, 0);
	cuts[k++] = reflen;
	for (int i = 0, from = 0; i < k; from = (int)cuts[i], i++) {
		memcpy(full + total, ref + from, cuts[i] - (size_t)from);
		total += cuts[i] - (size_t)from;
		for (int j = 0; j < 3 && i + 1 < k; j++) {
			total += rec(full + total, FCGI_REC_GET_VALUES, 0, "ab", 2, 6);
			total += rec(full + total, FCGI_REC_STDIN, 9, "z", 1, 7);
			junk += 32;
		}
	}
	fcgi_head_scan_init(&s);
	for (size_t i = 0; i < total; i += 13) {
		size_t n = total - i < 13 ? total - i : 13;

		memcpy(buf + len, full + i, n);
		len += n;
		r = fcgi_head_scan(&s, buf, &len, 1024);
		if (r != -2)
			break;
		assert_true(s.off <= reflen);
		assert_memory_equal(buf, ref, s.off);   /* what was walked is the request */
	}
	assert_int_equal(r, 0);
	assert_int_equal(s.skipped, junk);
	assert_int_equal(len, reflen);
	assert_memory_equal(buf, ref, reflen);
}

/* A flood of 8-byte records costs time linear in its size: 1 MiB of them scanned in one
 * call takes milliseconds; cutting them out one by one (each time moving the rest of
 * the buffer) moves ~68 GB. */
static void
test_head_flood_linear(void **state)
{
	static uint8_t buf[1 << 20];
	size_t len, total = 0;
	struct fcgi_head_scan s;

	(void)state;
	fcgi_head_scan_init(&s);
	len = rec(buf, FCGI_REC_BEGIN_REQUEST, 1, "\0\1\0\0\0\0\0\0", 8, 0);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), -2);
	for (int round = 0; round < 4; round++) {
		clock_t t0;

		while (len + 8 <= sizeof(buf))
			len += rec(buf + len, FCGI_REC_GET_VALUES, 0, "", 0, 0);
		total += len - s.off;
		t0 = clock();
		assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), -2);
		assert_true(clock() - t0 < CLOCKS_PER_SEC / 4);
		assert_int_equal(len, 16);
	}
	assert_int_equal(s.skipped, total);
}

static void
test_tail(void **state)
{
	uint8_t buf[64];
	size_t len = 0;
	struct fcgi_tail t = { 0 };

	(void)state;
	len += rec(buf + len, FCGI_REC_STDIN, 1, "abc", 3, 5);
	assert_int_equal(fcgi_tail_feed(&t, buf, 5), 0);
	assert_int_equal(fcgi_tail_feed(&t, buf + 5, len - 5), 0);
	len = rec(buf, FCGI_REC_ABORT_REQUEST, 1, "", 0, 0);
	assert_int_equal(fcgi_tail_feed(&t, buf, 3), 0);
	assert_int_equal(fcgi_tail_feed(&t, buf + 3, len - 3), 1);
	memset(&t, 0, sizeof(t));
	buf[0] = 9;
	assert_int_equal(fcgi_tail_feed(&t, buf, 8), -1);
}

static void
test_encode(void **state)
{
	static uint8_t data[70000], out[70100];
	uint8_t end[FCGI_END_LEN];
	size_t n;

	(void)state;
	memset(data, 'd', sizeof(data));
	assert_int_equal(fcgi_stdout_size(10), 18);
	assert_int_equal(fcgi_stdout_size(65535), 65543);
	assert_int_equal(fcgi_stdout_size(65536), 65552);
	n = fcgi_stdout_encode(out, 0x0102, data, sizeof(data));
	assert_int_equal(n, fcgi_stdout_size(sizeof(data)));
	assert_int_equal(out[1], FCGI_REC_STDOUT);
	assert_int_equal(out[2], 1);
	assert_int_equal(out[3], 2);
	assert_int_equal(out[4] << 8 | out[5], 65535);
	assert_int_equal(out[8 + 65535 + 4] << 8 | out[8 + 65535 + 5], 70000 - 65535);
	fcgi_end_encode(end, 7, 0);
	assert_int_equal(end[1], FCGI_REC_STDOUT);
	assert_int_equal(end[5], 0);
	assert_int_equal(end[9], FCGI_REC_END_REQUEST);
	assert_int_equal(end[13], 8);
	assert_int_equal(end[3], 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_bytewise),
		cmocka_unit_test(test_head_body_too_large),
		cmocka_unit_test(test_head_errors),
		cmocka_unit_test(test_head_drops_management),
		cmocka_unit_test(test_head_refuses_what_libfcgi_cannot_take),
		cmocka_unit_test(test_head_pair_across_records),
		cmocka_unit_test(test_head_compacts),
		cmocka_unit_test(test_head_compacts_in_pieces),
		cmocka_unit_test(test_head_flood_linear),
		cmocka_unit_test(test_tail),
		cmocka_unit_test(test_encode),
	};

	return cmocka_run_group_tests_name("fcgi_record", tests, NULL, NULL);
}
