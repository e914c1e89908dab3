/*
 * b64url — base64url without padding (RFC 4648 section 5, as JWS uses it, RFC 7515
 * section 2). Pure: no I/O, no allocation.
 *
 * Decoding is strict, because a JWT's signature covers the encoded text and two encodings
 * of the same bytes would be two tokens: only A-Z a-z 0-9 - _ are accepted, no '=' padding,
 * no whitespace, no '+' or '/', a length of 1 modulo 4 is refused, and the unused low bits
 * of the last character must be zero (so "QQ" decodes, "QR" does not).
 */
#ifndef B64URL_H
#define B64URL_H

#include <stddef.h>

/* Bytes b64url_decode() writes for len characters (an upper bound for bad input). */
#define B64URL_DECODED_MAX(len) ((len) / 4 * 3 + 2)
/* Characters b64url_encode() writes for len bytes, without the NUL. */
#define B64URL_ENCODED_LEN(len) ((len) / 3 * 4 + ((len) % 3 == 0 ? 0 : (len) % 3 + 1))

/*
 * Decodes the len characters at src into dst, which has room for dstlen bytes.
 * Returns the number of bytes written, or -1 when src is not strict base64url (see above)
 * or dst is too small. len 0 decodes to 0 bytes. dst may be NULL when dstlen is 0.
 */
long b64url_decode(unsigned char *dst, size_t dstlen, const char *src, size_t len);

/*
 * Encodes len bytes at src into dst (B64URL_ENCODED_LEN(len) characters, then a NUL;
 * dstlen must be at least that plus one). Returns the characters written, or -1 when dst
 * is too small (dst is then untouched).
 */
long b64url_encode(char *dst, size_t dstlen, const unsigned char *src, size_t len);

#endif
