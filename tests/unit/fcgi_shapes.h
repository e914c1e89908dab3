/*
 * Request heads for the fcgi_record and fcgi_request tests: one well-formed request and
 * the malformed shapes a FastCGI peer can send. Each builder writes into buf (>= 512
 * bytes) and returns the length.
 */
#ifndef TEST_FCGI_SHAPES_H
#define TEST_FCGI_SHAPES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fcgi_record.h"

static size_t
shape_rec(uint8_t *o, int type, uint16_t id, const void *c, size_t n, uint8_t pad)
{
	fcgi_header_encode(o, (enum fcgi_rec_type)type, id, (uint16_t)n, pad);
	memcpy(o + 8, c, n);
	memset(o + 8 + n, 0, pad);
	return 8 + n + pad;
}

#define SHAPE_PARAMS "\x0e\x03REQUEST_METHODGET\x0b\x0cREQUEST_URI/sse/doc-123"

/* BEGIN_REQUEST (body given), PARAMS (given), empty PARAMS (padding given), empty STDIN. */
static size_t
shape_build(uint8_t *buf, const void *begin, size_t begin_len, uint8_t begin_pad,
    const void *params, size_t params_len, uint8_t end_pad)
{
	size_t len = 0;

	len += shape_rec(buf + len, FCGI_REC_BEGIN_REQUEST, 1, begin, begin_len, begin_pad);
	if (params_len > 0)
		len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, params, params_len, 0);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, "", 0, end_pad);
	len += shape_rec(buf + len, FCGI_REC_STDIN, 1, "", 0, 0);
	return len;
}

static const uint8_t shape_begin_ok[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };

struct shape {
	const char *name;
	const uint8_t *begin;
	size_t begin_len;
	uint8_t begin_pad;
	const char *params;
	size_t params_len;
	uint8_t end_pad;
	int libfcgi;    /* what libfcgi itself does: 0 accepts, -1 refuses, 2 misreads, 3 aborts */
};

#define P(s) s, sizeof(s) - 1

static const uint8_t shape_begin16[16] = { 0, 1 };
static const uint8_t shape_role7[8] = { 0, 7 };
static const uint8_t shape_role2[8] = { 0, 2 };
static const uint8_t shape_role_high[8] = { 1, 1 };

/* Every one of these the scanner must refuse. */
static const struct shape shapes_bad[] = {
	{ "BEGIN_REQUEST body of 16 bytes", shape_begin16, 16, 0, P(SHAPE_PARAMS), 0, -1 },
	{ "BEGIN_REQUEST body of 4 bytes", shape_begin_ok, 4, 4, P(SHAPE_PARAMS), 0, -1 },
	{ "unknown role 7", shape_role7, 8, 0, P(SHAPE_PARAMS), 0, -1 },
	{ "role 257", shape_role_high, 8, 0, P(SHAPE_PARAMS), 0, -1 },
	{ "AUTHORIZER role", shape_role2, 8, 0, P(SHAPE_PARAMS), 0, 0 },
	{ "padded BEGIN_REQUEST", shape_begin_ok, 8, 8, P(SHAPE_PARAMS), 0, 2 },
	{ "padded empty PARAMS", shape_begin_ok, 8, 0, P(SHAPE_PARAMS), 8, 2 },
	{ "value cut short", shape_begin_ok, 8, 0, P("\x0e\x09REQUEST_METHODGET"), 0, -1 },
	{ "name cut short", shape_begin_ok, 8, 0, P("\x0e\x03REQUEST_METH"), 0, -1 },
	{ "length byte missing", shape_begin_ok, 8, 0, P("\x0e\x03REQUEST_METHODGET\x0b"), 0, -1 },
	{ "4-byte length cut", shape_begin_ok, 8, 0, P("\x0e\x03REQUEST_METHODGET\x8b\x00"), 0, -1 },
	/* CVE-2025-23016's shape: the two lengths add up past INT_MAX */
	{ "lengths past INT_MAX", shape_begin_ok, 8, 0,
	  P("\xff\xff\xff\xff\xc0\x00\x00\x00" "AAAAAAAAAAAAAAAA"), 0, 3 },
	{ "name holding '='", shape_begin_ok, 8, 0, P("\x12\x01REQUEST_METHOD=GETx"), 0, 0 },
	{ "name holding NUL", shape_begin_ok, 8, 0, P("\x03\x01" "a\0bx"), 0, 0 },
};

/* Well formed, in shapes the scanner must let through. */
static const struct shape shapes_good[] = {
	{ "plain", shape_begin_ok, 8, 0, P(SHAPE_PARAMS), 0, 0 },
	{ "4-byte lengths", shape_begin_ok, 8, 0,
	  P("\x80\x00\x00\x0e\x80\x00\x00\x03REQUEST_METHODGET"), 0, 0 },
	{ "no params at all", shape_begin_ok, 8, 0, NULL, 0, 0, 0 },
	{ "empty name and value", shape_begin_ok, 8, 0, P("\x00\x00" "\x0e\x03REQUEST_METHODGET"), 0, 0 },
	{ "KEEP_CONN flag", (const uint8_t *)"\x00\x01\x01\x00\x00\x00\x00\x00", 8, 0,
	  P(SHAPE_PARAMS), 0, 0 },
};

#undef P

static size_t
shape_bytes(uint8_t *buf, const struct shape *s)
{
	return shape_build(buf, s->begin, s->begin_len, s->begin_pad, s->params,
	    s->params_len, s->end_pad);
}

#endif
