/*
 * utf8 — strict UTF-8 validation (RFC 3629, Unicode Table 3-7). Pure: no I/O,
 * no allocation. Used on publish bodies before anything is published.
 *
 * Rejected: stray continuation bytes, overlong forms (C0, C1, E0 80..9F,
 * F0 80..8F), UTF-16 surrogates (ED A0..BF), code points above U+10FFFF
 * (F4 90..BF, F5..FF) and sequences cut short by the end of the buffer.
 * Accepted: U+0000. A NUL byte is valid UTF-8 and travels fine through
 * FastCGI, Redis and the SSE framing; refusing it is the caller's policy.
 * A UTF-8 BOM is a valid character and is accepted.
 */
#ifndef SSE_UTF8_H
#define SSE_UTF8_H

#include <stddef.h>

/*
 * Returns 1 when the len bytes at s are well-formed UTF-8, 0 otherwise.
 * len 0 is valid (s may then be NULL). ASCII runs are checked 8 bytes at a time.
 */
int utf8_is_valid(const char *s, size_t len);

#endif
