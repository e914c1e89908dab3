/*
 * siphash — SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012): a 64-bit hash keyed with 128 secret bits. Hash tables whose keys come from
 * outside (resource names from unauthenticated requests) use it so that nobody who does
 * not know the key can choose names that land in one bucket. Pure, except that
 * siphash_key_random() asks the kernel for its bytes.
 */
#ifndef SSE_SIPHASH_H
#define SSE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* SipHash-2-4 of data[0 .. len) under key (its two 64-bit halves read little-endian,
 * as in the paper). data may be NULL when len is 0. */
uint64_t siphash_compute(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len);

/* Fills key with random bytes: getrandom(2) without blocking, and in the early-boot case
 * where the kernel has no entropy yet, a mix of clock, pid and addresses (weaker, but
 * never a fixed key). Never fails. */
void siphash_key_random(uint8_t key[SIPHASH_KEY_LEN]);

#endif
