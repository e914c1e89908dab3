/* Unit tests for src/sse.c: exact framing, plus a browser-side parser (HTML
 * Living Standard event stream interpretation) that checks what an EventSource
 * would actually hand to the page, over fixed cases and a seeded random sweep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- exact framing ---------------------------------------------------- */

struct frame_case {
	const char *name;
	const char *event;      /* NULL: none */
	size_t event_len;
	const char *data;
	size_t data_len;
	const char *want;
	size_t want_len;
};

static const struct frame_case frame_cases[] = {
	{ "plain", NULL, 0, S("hello"), S("data: hello\n\n") },
	{ "json", NULL, 0, S("{\"a\":1}"), S("data: {\"a\":1}\n\n") },
	{ "empty", NULL, 0, S(""), S("data:\n\n") },
	{ "LF", NULL, 0, S("a\nb"), S("data: a\ndata: b\n\n") },
	{ "CR", NULL, 0, S("a\rb"), S("data: a\ndata: b\n\n") },
	{ "CRLF", NULL, 0, S("a\r\nb"), S("data: a\ndata: b\n\n") },
	{ "LFCR is two breaks", NULL, 0, S("a\n\rb"), S("data: a\ndata:\ndata: b\n\n") },
	{ "CR CRLF", NULL, 0, S("a\r\r\nb"), S("data: a\ndata:\ndata: b\n\n") },
	{ "only CR CRLF", NULL, 0, S("\r\r\n"), S("data:\ndata:\ndata:\n\n") },
	{ "mixed", NULL, 0, S("1\n2\r3\r\n4"), S("data: 1\ndata: 2\ndata: 3\ndata: 4\n\n") },
	{ "trailing LF", NULL, 0, S("x\n"), S("data: x\ndata:\n\n") },
	{ "trailing CR", NULL, 0, S("x\r"), S("data: x\ndata:\n\n") },
	{ "trailing CRLF", NULL, 0, S("x\r\n"), S("data: x\ndata:\n\n") },
	{ "leading break", NULL, 0, S("\nx"), S("data:\ndata: x\n\n") },
	{ "only LF", NULL, 0, S("\n"), S("data:\ndata:\n\n") },
	{ "blank line inside", NULL, 0, S("a\n\nb"), S("data: a\ndata:\ndata: b\n\n") },
	{ "leading space", NULL, 0, S(" x"), S("data:  x\n\n") },
	{ "leading spaces", NULL, 0, S("  x\n y"), S("data:   x\ndata:  y\n\n") },
	{ "colon first", NULL, 0, S(":x"), S("data: :x\n\n") },
	{ "NUL kept", NULL, 0, "a\0b", 3, "data: a\0b\n\n", 11 },
	{ "event", S("status"), S("{}"), S("event: status\ndata: {}\n\n") },
	{ "event empty len", "status", 0, S("x"), S("data: x\n\n") },
	{ "event with LF cut", S("a\nevent: b"), S("x"), S("event: a\ndata: x\n\n") },
	{ "event with CR cut", S("a\rdata: b"), S("x"), S("event: a\ndata: x\n\n") },
	{ "event all break", S("\n"), S("x"), S("data: x\n\n") },
	{ "injection", NULL, 0, S("ok\n\nevent: x\ndata: evil"),
	  S("data: ok\ndata:\ndata: event: x\ndata: data: evil\n\n") },
	{ "injection CR", S("m"), S("ok\r\revent: x\rdata: evil\r"),
	  S("event: m\ndata: ok\ndata:\ndata: event: x\ndata: data: evil\ndata:\n\n") },
	{ "id retry fields", NULL, 0, S("id: 7\nretry: 1"), S("data: id: 7\ndata: retry: 1\n\n") },
};

static void
test_frame_table(void **state)
{
	size_t i;
	char buf[256];

	(void)state;
	for (i = 0; i < sizeof frame_cases / sizeof frame_cases[0]; i++) {
		const struct frame_case *c = &frame_cases[i];
		size_t sz = sse_event_size(c->event, c->event_len, c->data, c->data_len);
		size_t n;

		memset(buf, '#', sizeof buf);
		n = sse_event_encode(buf, c->event, c->event_len, c->data, c->data_len);
		if (n != c->want_len || sz != n || memcmp(buf, c->want, n) != 0 || buf[n] != '#')
			fail_msg("case '%s': got %zu bytes (size %zu) '%.*s'", c->name, n, sz, (int)n, buf);
	}
}

static void
test_null_data(void **state)
{
	char buf[32];
	size_t n;

	(void)state;
	assert_int_equal(sse_event_size(NULL, 0, NULL, 0), 7);
	n = sse_event_encode(buf, NULL, 0, NULL, 0);
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "data:\n\n", 7);
	n = sse_event_encode(buf, NULL, 5, S("x"));     /* NULL event, stray length */
	assert_int_equal(n, 9);
	assert_memory_equal(buf, "data: x\n\n", 9);
}

/* Ids: one "id:" line after the event line, none without an id, and the id-less
 * functions are exactly the id functions without one. */
static void
test_id_line(void **state)
{
	static const struct { const char *id, *event, *data, *want; } cases[] = {
		{ "k1-7", NULL, "{}", "id: k1-7\ndata: {}\n\n" },
		{ "k1-8", "status", "a\nb", "event: status\nid: k1-8\ndata: a\ndata: b\n\n" },
		{ "k1-9", "reset", "{\"reason\":\"gone\"}",
		    "event: reset\nid: k1-9\ndata: {\"reason\":\"gone\"}\n\n" },
		{ "", NULL, "x", "data: x\n\n" },
		{ NULL, "e", "x", "event: e\ndata: x\n\n" },
		{ "a\nid: b", NULL, "x", "id: a\ndata: x\n\n" },   /* cut at the break */
	};
	char buf[128];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t il = cases[i].id ? strlen(cases[i].id) : 0;
		size_t el = cases[i].event ? strlen(cases[i].event) : 0;
		size_t dl = strlen(cases[i].data);
		size_t sz = sse_event_id_size(cases[i].id, il, cases[i].event, el, cases[i].data, dl);
		size_t n = sse_event_id_encode(buf, cases[i].id, il, cases[i].event, el,
		    cases[i].data, dl);

		assert_int_equal(n, sz);
		assert_int_equal(n, strlen(cases[i].want));
		assert_memory_equal(buf, cases[i].want, n);
	}
	/* no id: byte for byte the old framing */
	assert_int_equal(sse_event_id_size(NULL, 0, S("ev"), S("a\rb")),
	    sse_event_size(S("ev"), S("a\rb")));
}

static void
test_retry(void **state)
{
	static const struct { unsigned ms; const char *want; } cases[] = {
		{ 0, "retry: 0\n\n" },
		{ 7, "retry: 7\n\n" },
		{ 3000, "retry: 3000\n\n" },
		{ 1000000, "retry: 1000000\n\n" },
		{ 4294967295u, "retry: 4294967295\n\n" },
	};
	char buf[SSE_RETRY_MAX + 1];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(buf, '#', sizeof buf);
		n = sse_retry_encode(buf, cases[i].ms);
		assert_int_equal(n, strlen(cases[i].want));
		assert_memory_equal(buf, cases[i].want, n);
		assert_true(n <= SSE_RETRY_MAX);
		assert_int_equal(buf[SSE_RETRY_MAX], '#');
	}
	assert_int_equal(SSE_RETRY_MAX, strlen("retry: 4294967295\n\n"));
}

static void
test_heartbeat(void **state)
{
	(void)state;
	assert_int_equal(sse_heartbeat_len, strlen(sse_heartbeat));
	assert_true(sse_heartbeat_len >= 2);
	assert_int_equal(sse_heartbeat[0], ':');        /* a comment: never an event */
	assert_int_equal(sse_heartbeat[sse_heartbeat_len - 1], '\n');
	assert_int_equal(sse_heartbeat[sse_heartbeat_len - 2], '\n');
	assert_null(memchr(sse_heartbeat, '\r', sse_heartbeat_len));
	assert_null(memchr(sse_heartbeat, '\n', sse_heartbeat_len - 2));
}

/* ---- what a browser sees ---------------------------------------------- */

struct seen {
	int events;             /* events dispatched */
	int other_fields;       /* fields other than data/event (id, retry, ...) */
	char type[256];
	char data[4096];
	size_t data_len;
};

/* Event stream interpretation, as EventSource does it (type "" = "message"). */
static void
browser_parse(struct seen *out, const char *s, size_t len)
{
	char type[256] = "";
	char data[4096];
	size_t dlen = 0, i = 0, ls, le, j, vs;

	memset(out, 0, sizeof *out);
	while (i < len) {
		ls = i;
		while (i < len && s[i] != '\r' && s[i] != '\n')
			i++;
		if (i == len)
			break;                  /* incomplete line: never processed */
		le = i;
		i += (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
		if (le == ls) {             /* blank line: dispatch */
			if (dlen == 0) {
				type[0] = '\0';
				continue;
			}
			dlen--;                 /* strip the final LF */
			out->events++;
			memcpy(out->data, data, dlen);
			out->data_len = dlen;
			strcpy(out->type, type);
			dlen = 0;
			type[0] = '\0';
			continue;
		}
		if (s[ls] == ':')
			continue;
		for (j = ls; j < le && s[j] != ':'; j++)
			;
		vs = j < le ? j + 1 : le;
		if (vs < le && s[vs] == ' ')
			vs++;
		if (j - ls == 4 && memcmp(s + ls, "data", 4) == 0) {
			assert_true(dlen + (le - vs) + 1 <= sizeof data);
			memcpy(data + dlen, s + vs, le - vs);
			dlen += le - vs;
			data[dlen++] = '\n';
		} else if (j - ls == 5 && memcmp(s + ls, "event", 5) == 0) {
			assert_true(le - vs < sizeof type);
			memcpy(type, s + vs, le - vs);
			type[le - vs] = '\0';
		} else {
			out->other_fields++;
		}
	}
}

/* The payload with every CRLF, CR and LF turned into one LF. */
static size_t
normalise(char *out, const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '\r') {
			out[n++] = '\n';
			if (i + 1 < len && s[i + 1] == '\n')
				i++;
		} else {
			out[n++] = s[i];
		}
	}
	return n;
}

/* Encodes into an exactly sized heap buffer (so ASan/valgrind catch an
 * overrun) and checks the browser's view of it. */
static void
check_roundtrip(const char *ev, size_t ev_len, const char *data, size_t len)
{
	char norm[2048];
	struct seen seen;
	size_t sz, n, nlen;
	char *buf;

	sz = sse_event_size(ev, ev_len, data, len);
	buf = malloc(sz);
	assert_non_null(buf);
	n = sse_event_encode(buf, ev, ev_len, data, len);
	assert_int_equal(n, sz);
	assert_int_equal(buf[n - 1], '\n');
	assert_int_equal(buf[n - 2], '\n');
	/* only the final blank line: nothing in the middle ends the event */
	assert_null(memmem(buf, n - 1, "\n\n", 2));
	assert_null(memchr(buf, '\r', n));

	browser_parse(&seen, buf, n);
	nlen = normalise(norm, data, len);
	assert_int_equal(seen.other_fields, 0);
	/* even an empty payload is one event: its "data:" line makes the data
	 * buffer "\n", which is not empty, so the browser dispatches "" */
	assert_int_equal(seen.events, 1);
	assert_int_equal(seen.data_len, nlen);
	assert_memory_equal(seen.data, norm, nlen);
	if (ev_len)
		assert_true(strlen(seen.type) == ev_len && memcmp(seen.type, ev, ev_len) == 0);
	else
		assert_string_equal(seen.type, "");
	free(buf);
}

static void
test_browser_view(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof frame_cases / sizeof frame_cases[0]; i++) {
		const struct frame_case *c = &frame_cases[i];
		/* the CR/LF-cut names are checked by the table, not here */
		if (c->event && (memchr(c->event, '\n', c->event_len) || memchr(c->event, '\r', c->event_len)))
			continue;
		check_roundtrip(c->event, c->event ? c->event_len : 0, c->data, c->data_len);
	}
	check_roundtrip(NULL, 0, S(" x"));
	check_roundtrip(NULL, 0, S("\n\nevent: x\ndata: evil\n\n"));
	check_roundtrip(S("update"), S("\r\n\r\nid: 1\r\nretry: 0\r\n\r\n"));
}

/* xorshift32: the same sequence on every platform and run */
static uint32_t rng_state = 0x5eed1234u;

static uint32_t
rnd(void)
{
	uint32_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return rng_state = x;
}

static void
test_random_payloads(void **state)
{
	static const char alphabet[] = "\r\n\r\n :ad \0x";
	static const char *const names[] = { "status", "a", "x.y:z-1_2" };
	char data[1024];
	int iter;

	(void)state;
	for (iter = 0; iter < 20000; iter++) {
		size_t len = rnd() % (iter < 19000 ? 40 : sizeof data), i;
		const char *ev = NULL;

		for (i = 0; i < len; i++) {
			uint32_t r = rnd();
			data[i] = (r & 0x300) ? alphabet[r % (sizeof alphabet - 1)] : (char)(r >> 16);
		}
		if (rnd() % 3 == 0)
			ev = names[rnd() % 3];
		check_roundtrip(ev, ev ? strlen(ev) : 0, data, len);
	}
}

/* A large payload with no breaks and one with only breaks: sizing stays linear. */
static void
test_large(void **state)
{
	size_t len = 1 << 20, sz, n;
	char *data = malloc(len), *out;

	(void)state;
	assert_non_null(data);
	memset(data, 'a', len);
	sz = sse_event_size(NULL, 0, data, len);
	assert_int_equal(sz, len + 8);
	out = malloc(sz);
	assert_non_null(out);
	n = sse_event_encode(out, NULL, 0, data, len);
	assert_int_equal(n, sz);
	free(out);

	memset(data, '\n', len);
	sz = sse_event_size(NULL, 0, data, len);
	assert_int_equal(sz, (len + 1) * 6 + 1);
	out = malloc(sz);
	assert_non_null(out);
	n = sse_event_encode(out, NULL, 0, data, len);
	assert_int_equal(n, sz);
	free(out);
	free(data);
}

/* The bound the config check relies on: no payload of n bytes encodes larger, and a
 * payload of line breaks reaches it. */
static void
test_size_max(void **state)
{
	static char data[4096];
	static const char *const fills = "\n\r x";
	const char *ev = "queue_update";
	unsigned seed = 3;
	size_t n, i;

	(void)state;
	memset(data, '\n', sizeof data);
	assert_int_equal(sse_event_size(NULL, 0, data, 4096), sse_event_size_max(4096, 0));
	assert_int_equal(sse_event_size(ev, 12, data, 4096), sse_event_size_max(4096, 12));
	memset(data, '\r', sizeof data);
	assert_int_equal(sse_event_size(ev, 12, data, 100), sse_event_size_max(100, 12));
	assert_int_equal(sse_event_size_max(65536, 0), 393223);   /* ~384 KiB from 64 KiB */
	for (int k = 0; k < 2000; k++) {
		n = (size_t)rand_r(&seed) % sizeof data;
		for (i = 0; i < n; i++)
			data[i] = fills[rand_r(&seed) % 4];
		assert_true(sse_event_size(ev, 12, data, n) <= sse_event_size_max(n, 12));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_table),
		cmocka_unit_test(test_null_data),
		cmocka_unit_test(test_id_line),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_heartbeat),
		cmocka_unit_test(test_browser_view),
		cmocka_unit_test(test_random_payloads),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_size_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
