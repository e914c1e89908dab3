/* siphash — SipHash-2-4, written from the paper's description; see siphash.h. */
#include "siphash.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t
rotl(uint64_t x, int b)
{
	return x << b | x >> (64 - b);
}

/* Bytes to a 64-bit word, little-endian whatever the host is (the paper's convention). */
static uint64_t
load_le(const uint8_t *p, size_t n)
{
	uint64_t w = 0;

	for (size_t i = 0; i < n; i++)
		w |= (uint64_t)p[i] << (8 * i);
	return w;
}

/* One SipRound: the ARX network of the paper's figure 2.1. */
#define SIPROUND(v0, v1, v2, v3) do {                                 \
	v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);     \
	v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                        \
	v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                        \
	v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);     \
} while (0)

uint64_t
siphash_compute(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t k0 = load_le(key, 8), k1 = load_le(key + 8, 8);
	/* "somepseudorandomlygeneratedbytes", the paper's initialisation constants */
	uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
	uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
	uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
	uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
	size_t whole = len - len % 8;
	uint64_t m;

	/* compression: two rounds per 8-byte word */
	for (size_t i = 0; i < whole; i += 8) {
		m = load_le(p + i, 8);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	/* the last word: the remaining bytes, and the length mod 256 in the top byte */
	m = load_le(p + whole, len % 8) | (uint64_t)(len & 0xff) << 56;
	v3 ^= m;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	/* finalisation: four rounds */
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

void
siphash_key_random(uint8_t key[SIPHASH_KEY_LEN])
{
	struct timespec ts;
	uint64_t x;

	if (getrandom(key, SIPHASH_KEY_LEN, GRND_NONBLOCK) == SIPHASH_KEY_LEN)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 48 ^
	    (uint64_t)(uintptr_t)key;
	for (size_t i = 0; i < SIPHASH_KEY_LEN; i++) {
		x ^= x >> 33;
		x *= UINT64_C(0xff51afd7ed558ccd);
		x ^= x >> 29;
		key[i] = (uint8_t)(x >> 56);
	}
}
