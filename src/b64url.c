/* b64url — strict base64url without padding; see b64url.h. */
#include "b64url.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63, or -1 for anything outside the url-safe alphabet. */
static int
value_of(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

long
b64url_decode(unsigned char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t i, o = 0, rest = len % 4, full = len - rest;
	unsigned long acc;
	int v[4], k;

	if (rest == 1 || full / 4 * 3 + (rest == 0 ? 0 : rest - 1) > dstlen)
		return -1;
	for (i = 0; i < full; i += 4) {
		for (k = 0; k < 4; k++)
			if ((v[k] = value_of((unsigned char)src[i + (size_t)k])) < 0)
				return -1;
		acc = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
		    (unsigned long)v[2] << 6 | (unsigned long)v[3];
		dst[o++] = (unsigned char)(acc >> 16);
		dst[o++] = (unsigned char)(acc >> 8);
		dst[o++] = (unsigned char)acc;
	}
	if (rest == 0)
		return (long)o;
	for (k = 0; k < (int)rest; k++)
		if ((v[k] = value_of((unsigned char)src[full + (size_t)k])) < 0)
			return -1;
	if (rest == 2) {
		/* 12 bits carry 8: the low 4 must be zero, or two texts would mean one byte */
		if (v[1] & 0x0f)
			return -1;
		dst[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
	} else {
		if (v[2] & 0x03)
			return -1;
		acc = (unsigned long)v[0] << 10 | (unsigned long)v[1] << 4 | (unsigned long)v[2] >> 2;
		dst[o++] = (unsigned char)(acc >> 8);
		dst[o++] = (unsigned char)acc;
	}
	return (long)o;
}

long
b64url_encode(char *dst, size_t dstlen, const unsigned char *src, size_t len)
{
	size_t i, o = 0, need = B64URL_ENCODED_LEN(len);
	unsigned long acc;

	if (dstlen < need + 1)
		return -1;
	for (i = 0; i + 3 <= len; i += 3) {
		acc = (unsigned long)src[i] << 16 | (unsigned long)src[i + 1] << 8 | src[i + 2];
		dst[o++] = alphabet[acc >> 18 & 63];
		dst[o++] = alphabet[acc >> 12 & 63];
		dst[o++] = alphabet[acc >> 6 & 63];
		dst[o++] = alphabet[acc & 63];
	}
	if (len - i == 1) {
		acc = (unsigned long)src[i] << 16;
		dst[o++] = alphabet[acc >> 18 & 63];
		dst[o++] = alphabet[acc >> 12 & 63];
	} else if (len - i == 2) {
		acc = (unsigned long)src[i] << 16 | (unsigned long)src[i + 1] << 8;
		dst[o++] = alphabet[acc >> 18 & 63];
		dst[o++] = alphabet[acc >> 12 & 63];
		dst[o++] = alphabet[acc >> 6 & 63];
	}
	dst[o] = '\0';
	return (long)o;
}
