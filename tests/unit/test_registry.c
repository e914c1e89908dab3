/* registry: resource -> streams bookkeeping, without sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "registry.h"

static void
test_add_find_del(void **state)
{
	struct registry *reg = registry_new();
	struct registry_node a = { 0 }, b = { 0 }, c = { 0 };

	(void)state;
	assert_non_null(reg);
	assert_null(registry_find(reg, "doctor-1", 8));
	assert_int_equal(registry_add(reg, &a, "doctor-1", 8), 0);
	assert_int_equal(registry_add(reg, &b, "doctor-1", 8), 0);
	assert_int_equal(registry_add(reg, &c, "doctor-2", 8), 0);
	assert_int_equal(registry_streams(reg), 3);
	assert_int_equal(registry_resources(reg), 2);
	assert_int_equal(registry_resource_streams(registry_find(reg, "doctor-1", 8)), 2);
	assert_string_equal(registry_node_name(&c), "doctor-2");
	/* a prefix of a name is another name */
	assert_null(registry_find(reg, "doctor-", 7));
	registry_del(reg, &a);
	registry_del(reg, &a);   /* idempotent */
	assert_int_equal(registry_resource_streams(registry_find(reg, "doctor-1", 8)), 1);
	registry_del(reg, &b);
	assert_null(registry_find(reg, "doctor-1", 8));
	assert_int_equal(registry_resources(reg), 1);
	registry_del(reg, &c);
	assert_int_equal(registry_streams(reg), 0);
	assert_int_equal(registry_resources(reg), 0);
	registry_free(reg);
}

/* Walking a resource while its current node leaves (a stalled stream) stays safe. */
static void
test_walk_with_removal(void **state)
{
	struct registry *reg = registry_new();
	struct registry_node n[10];
	struct registry_node *it, *next;
	int seen = 0;

	(void)state;
	memset(n, 0, sizeof(n));
	for (int i = 0; i < 10; i++)
		assert_int_equal(registry_add(reg, &n[i], "q", 1), 0);
	for (it = registry_resource_first(registry_find(reg, "q", 1)); it != NULL; it = next) {
		next = it->next;
		if ((it - n) % 2 == 0)
			registry_del(reg, it);
		seen++;
	}
	assert_int_equal(seen, 10);
	assert_int_equal(registry_resource_streams(registry_find(reg, "q", 1)), 5);
	for (int i = 1; i < 10; i += 2)
		registry_del(reg, &n[i]);
	assert_null(registry_find(reg, "q", 1));
	registry_free(reg);
}

/* Many resources force the table to grow; every one must still be found. */
static void
test_grow(void **state)
{
	enum { N = 5000 };
	static struct registry_node nodes[N];
	struct registry *reg = registry_new();
	char name[32];

	(void)state;
	for (int i = 0; i < N; i++) {
		int len = snprintf(name, sizeof(name), "appointment-%d", i);
		assert_int_equal(registry_add(reg, &nodes[i], name, (size_t)len), 0);
	}
	assert_int_equal(registry_resources(reg), N);
	for (int i = 0; i < N; i++) {
		int len = snprintf(name, sizeof(name), "appointment-%d", i);
		assert_int_equal(registry_resource_streams(registry_find(reg, name, (size_t)len)), 1);
	}
	for (int i = 0; i < N; i += 2)
		registry_del(reg, &nodes[i]);
	assert_int_equal(registry_resources(reg), N / 2);
	registry_free(reg);   /* frees the rest */
}

/* FNV-1a, the registry's old unkeyed hash: what an attacker can compute offline. */
static uint32_t
fnv1a(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h;
}

/*
 * Hash flooding: 1024 valid resource names that all fall into bucket 0 of a 1024-bucket
 * table under FNV-1a (found by trying names until 1024 fit). Under the old hash they
 * made one chain of 1024, so every lookup of any of them walked hundreds; keyed, they
 * spread like any other names.
 */
#define FLOOD 1024

static void
test_fnv_collisions_spread(void **state)
{
	static char names[FLOOD][16];
	static struct registry_node nodes[FLOOD];
	struct registry *reg = registry_new();
	size_t found = 0;

	(void)state;
	assert_non_null(reg);
	for (unsigned long i = 0; found < FLOOD; i++) {
		int n = snprintf(names[found], sizeof(names[found]), "r-%lx", i);

		if ((fnv1a(names[found], (size_t)n) & (FLOOD - 1)) == 0)
			found++;
	}
	for (size_t i = 0; i < FLOOD; i++)
		assert_int_equal(registry_add(reg, &nodes[i], names[i], strlen(names[i])), 0);
	assert_int_equal(registry_resources(reg), FLOOD);
	/* 1024 names in 1024 buckets: the longest chain is about 6 when spread */
	assert_true(registry_longest_chain(reg) <= 16);
	for (size_t i = 0; i < FLOOD; i++)
		assert_int_equal(registry_resource_streams(registry_find(reg, names[i],
		    strlen(names[i]))), 1);
	for (size_t i = 0; i < FLOOD; i++)
		registry_del(reg, &nodes[i]);
	assert_int_equal(registry_resources(reg), 0);
	registry_free(reg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fnv_collisions_spread),
		cmocka_unit_test(test_add_find_del),
		cmocka_unit_test(test_walk_with_removal),
		cmocka_unit_test(test_grow),
	};

	return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
