/* siphash: the reference vectors, and keys that really key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "siphash.h"

/*
 * Key 00 01 .. 0f, message 00 01 .. (len - 1): the paper's Appendix A vector (15 bytes)
 * and entries of the reference implementation's vectors.h, which give the output as
 * little-endian bytes (31 0e 0e dd 47 db 6f 72 for the empty message).
 */
static void
test_vectors(void **state)
{
	static const struct {
		size_t len;
		uint64_t want;
	} v[] = {
		{ 15, UINT64_C(0xa129ca6149be45e5) },   /* the paper */
		{ 0, UINT64_C(0x726fdb47dd0e0e31) },
		{ 1, UINT64_C(0x74f839c593dc67fd) },
		{ 2, UINT64_C(0x0d6c8009d9a94f5a) },
		{ 3, UINT64_C(0x85676696d7fb7e2d) },
		{ 63, UINT64_C(0x958a324ceb064572) },
	};
	uint8_t key[SIPHASH_KEY_LEN], msg[64];

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_int_equal(siphash_compute(key, msg, v[i].len), v[i].want);
	assert_int_equal(siphash_compute(key, NULL, 0), UINT64_C(0x726fdb47dd0e0e31));
}

/* The length is part of the hash, any byte of the key changes it, and two random keys
 * differ. */
static void
test_keys(void **state)
{
	uint8_t key[SIPHASH_KEY_LEN] = { 0 }, a[SIPHASH_KEY_LEN], b[SIPHASH_KEY_LEN];
	uint64_t h = siphash_compute(key, "doctor-123", 10);

	(void)state;
	assert_true(siphash_compute(key, "doctor-123\0", 11) != h);
	for (size_t i = 0; i < sizeof(key); i++) {
		key[i] ^= 0x80;
		assert_true(siphash_compute(key, "doctor-123", 10) != h);
		key[i] ^= 0x80;
	}
	siphash_key_random(a);
	siphash_key_random(b);
	assert_memory_not_equal(a, b, SIPHASH_KEY_LEN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests_name("siphash", tests, NULL, NULL);
}
