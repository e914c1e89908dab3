/*
 * fcgi_head_scan on bytes as a peer may send them. The first byte picks max_stdin, the
 * rest is the stream. Properties: the buffer only shrinks and off stays inside it; fed
 * in arbitrary chunks (as reads split it) the scanner ends in the same verdict with the
 * same buffer and state as fed whole; a complete request starts with BEGIN_REQUEST and
 * holds only records of its own id; with stdin_dropped no STDIN record carries content
 * past the limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
scan_whole(uint8_t *buf, size_t *len, struct fcgi_head_scan *s, size_t max_stdin)
{
	size_t before = *len;
	int r;

	fcgi_head_scan_init(s);
	r = fcgi_head_scan(s, buf, len, max_stdin);
	if (*len > before || s->off > *len)
		abort();
	return r;
}

/* Feeds data as chunks whose sizes come from the data itself. */
static int
scan_chunked(const uint8_t *data, size_t size, uint8_t *buf, size_t *len,
    struct fcgi_head_scan *s, size_t max_stdin)
{
	size_t in = 0, step = 1;
	int r = -2;

	fcgi_head_scan_init(s);
	*len = 0;
	while (in < size && r == -2) {
		size_t k = step;

		if (k > size - in)
			k = size - in;
		memcpy(buf + *len, data + in, k);
		*len += k;
		in += k;
		r = fcgi_head_scan(s, buf, len, max_stdin);
		if (s->off > *len)
			abort();
		step = (size_t)data[in - 1] % 23 + 1;
	}
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fcgi_head_scan a, b;
	uint8_t *whole, *chunked;
	size_t alen, blen, max_stdin;
	int ra, rb;

	if (size < 1)
		return 0;
	max_stdin = (size_t)data[0] * 4;
	data++;
	size--;
	whole = malloc(size + 1);
	chunked = malloc(size + 1);
	if (whole == NULL || chunked == NULL)
		abort();
	memcpy(whole, data, size);
	alen = size;
	ra = scan_whole(whole, &alen, &a, max_stdin);
	rb = scan_chunked(data, size, chunked, &blen, &b, max_stdin);
	if (ra != rb)
		abort();
	if (ra == 0) {
		/* the same request, cut the same way, whatever the read sizes were */
		if (a.off != b.off || a.id != b.id || a.stdin_bytes != b.stdin_bytes ||
		    a.stdin_dropped != b.stdin_dropped || memcmp(whole, chunked, a.off) != 0)
			abort();
		/* what libfcgi will get: BEGIN first, then only our id, versions all 1 */
		if (a.off < 3 * FCGI_REC_HEADER_LEN + 8 || whole[1] != FCGI_REC_BEGIN_REQUEST)
			abort();
		for (size_t o = 0; o < a.off;) {
			const uint8_t *h = whole + o;
			size_t clen = (size_t)h[4] << 8 | h[5];

			if (a.off - o < FCGI_REC_HEADER_LEN || h[0] != 1 ||
			    (uint16_t)(h[2] << 8 | h[3]) != a.id)
				abort();
			if (h[1] != FCGI_REC_BEGIN_REQUEST && h[1] != FCGI_REC_PARAMS &&
			    h[1] != FCGI_REC_STDIN)
				abort();
			o += FCGI_REC_HEADER_LEN + clen + h[6];
			if (o > a.off)
				abort();
		}
		if (a.stdin_dropped && a.stdin_bytes <= max_stdin)
			abort();
		if (!a.stdin_dropped && a.stdin_bytes > max_stdin)
			abort();
	}
	free(whole);
	free(chunked);
	return 0;
}
