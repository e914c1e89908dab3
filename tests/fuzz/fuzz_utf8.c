/*
 * utf8_is_valid against a reference decoder written from RFC 3629 section 3 the slow,
 * obvious way: read the lead byte's length, gather the continuation bits into a code
 * point, then refuse a form longer than the code point needs, a surrogate, or anything
 * above U+10FFFF. Both must agree on every input, at every alignment (the validator
 * reads ASCII eight bytes at a time).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
reference(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t len, k;

		if (p[i] < 0x80) {
			i++;
			continue;
		} else if ((p[i] & 0xE0) == 0xC0) {
			len = 2;
			cp = p[i] & 0x1F;
		} else if ((p[i] & 0xF0) == 0xE0) {
			len = 3;
			cp = p[i] & 0x0F;
		} else if ((p[i] & 0xF8) == 0xF0) {
			len = 4;
			cp = p[i] & 0x07;
		} else {
			return 0;   /* a continuation byte, or a 5- and 6-byte lead */
		}
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3F);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
			return 0;   /* overlong */
		if (cp >= 0xD800 && cp <= 0xDFFF)
			return 0;   /* surrogate */
		if (cp > 0x10FFFF)
			return 0;
		i += len;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int want = reference(data, size);

	for (size_t shift = 0; shift < 8; shift++) {
		/* the input ends where the allocation ends: ASan sees any read past it */
		char *buf = malloc(size + shift);

		if (buf == NULL)
			abort();
		memcpy(buf + shift, data, size);
		if (utf8_is_valid(buf + shift, size) != want)
			abort();
		free(buf);
	}
	return 0;
}
