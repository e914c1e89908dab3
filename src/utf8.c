/* utf8 — strict UTF-8 validation; see utf8.h. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#define HIGH_BITS UINT64_C(0x8080808080808080)

static int
is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

int
utf8_is_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end;
	unsigned char c, lo, hi;

	if (len == 0)
		return 1;
	end = p + len;
	while (p < end) {
		c = *p;
		if (c < 0x80) {
			/* JSON bodies are mostly ASCII: skip whole words of it. memcpy
			 * keeps the load legal at any alignment and compiles to one mov. */
			uint64_t w;
			while ((size_t)(end - p) >= 8) {
				memcpy(&w, p, 8);
				if (w & HIGH_BITS)
					break;
				p += 8;
			}
			while (p < end && *p < 0x80)
				p++;
			continue;
		}
		if (c < 0xC2)           /* continuation byte, or overlong C0/C1 */
			return 0;
		if (c < 0xE0) {
			if (end - p < 2 || !is_cont(p[1]))
				return 0;
			p += 2;
		} else if (c < 0xF0) {
			lo = c == 0xE0 ? 0xA0 : 0x80;   /* E0 80..9F: overlong */
			hi = c == 0xED ? 0x9F : 0xBF;   /* ED A0..BF: surrogates */
			if (end - p < 3 || p[1] < lo || p[1] > hi || !is_cont(p[2]))
				return 0;
			p += 3;
		} else if (c < 0xF5) {
			lo = c == 0xF0 ? 0x90 : 0x80;   /* F0 80..8F: overlong */
			hi = c == 0xF4 ? 0x8F : 0xBF;   /* F4 90..: above U+10FFFF */
			if (end - p < 4 || p[1] < lo || p[1] > hi || !is_cont(p[2]) || !is_cont(p[3]))
				return 0;
			p += 4;
		} else {
			return 0;                       /* F5..FF: never in UTF-8 */
		}
	}
	return 1;
}
