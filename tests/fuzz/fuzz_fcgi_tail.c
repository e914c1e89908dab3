/*
 * fcgi_tail_feed, the watcher of a live stream's connection, against a plain reference
 * walk of the same bytes: fed in chunks whose sizes come from the input, it must report
 * the same thing (abort or BEGIN_REQUEST seen, malformed header, nothing) at the same
 * record as the reference, and never read outside what it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Returns 1/-1/0 as fcgi_tail_feed would for the whole stream, and where it stopped. */
static int
reference(const uint8_t *p, size_t n, size_t *stop)
{
	size_t o = 0;

	while (n - o >= FCGI_REC_HEADER_LEN) {
		const uint8_t *h = p + o;

		o += FCGI_REC_HEADER_LEN;
		*stop = o;
		if (h[0] != 1)
			return -1;
		if (h[1] == FCGI_REC_ABORT_REQUEST || h[1] == FCGI_REC_BEGIN_REQUEST)
			return 1;
		o += ((size_t)h[4] << 8 | h[5]) + h[6];
		if (o > n)
			break;
	}
	*stop = n;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fcgi_tail t;
	size_t in = 0, stop = 0;
	int want = reference(data, size, &stop), got = 0;

	memset(&t, 0, sizeof(t));
	while (in < size) {
		size_t k = (size_t)data[in] % 17 + 1;
		uint8_t *chunk;

		if (k > size - in)
			k = size - in;
		/* a copy of exactly k bytes, so ASan sees any read past the chunk */
		chunk = malloc(k);
		if (chunk == NULL)
			abort();
		memcpy(chunk, data + in, k);
		got = fcgi_tail_feed(&t, chunk, k);
		free(chunk);
		if (got != 0) {
			/* the record that decided it ends inside this chunk */
			if (stop <= in || stop > in + k)
				abort();
			break;
		}
		in += k;
	}
	if (got != want)
		abort();
	return 0;
}
