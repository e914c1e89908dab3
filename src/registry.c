/*
 * registry — see registry.h. Chained hash table keyed by resource name. Names come from
 * unauthenticated requests, so the hash is SipHash under a random key of each table's
 * own: with an unkeyed hash (it was FNV-1a) anyone could compute names that share one
 * bucket and make every lookup walk them all.
 */
#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"

struct resource {
	struct resource *hnext;
	struct registry_node *head;
	size_t streams;
	uint64_t hash;
	uint32_t len;
	char name[];
};

struct registry {
	struct resource **table;
	size_t mask;        /* table size - 1, size a power of two */
	size_t resources;
	size_t streams;
	uint8_t key[SIPHASH_KEY_LEN];
};

static uint64_t
hash_name(const struct registry *reg, const char *s, size_t len)
{
	return siphash_compute(reg->key, s, len);
}

struct registry *
registry_new(void)
{
	struct registry *reg = calloc(1, sizeof(*reg));

	if (reg == NULL)
		return NULL;
	reg->mask = 63;
	siphash_key_random(reg->key);
	reg->table = calloc(reg->mask + 1, sizeof(*reg->table));
	if (reg->table == NULL) {
		free(reg);
		return NULL;
	}
	return reg;
}

void
registry_free(struct registry *reg)
{
	if (reg == NULL)
		return;
	for (size_t i = 0; i <= reg->mask; i++) {
		struct resource *r = reg->table[i], *next;

		for (; r != NULL; r = next) {
			next = r->hnext;
			free(r);
		}
	}
	free(reg->table);
	free(reg);
}

struct resource *
registry_find(const struct registry *reg, const char *name, size_t len)
{
	uint64_t h = hash_name(reg, name, len);
	struct resource *r = reg->table[h & reg->mask];

	for (; r != NULL; r = r->hnext)
		if (r->hash == h && r->len == len && memcmp(r->name, name, len) == 0)
			return r;
	return NULL;
}

/* Doubling keeps chains short while resources come and go; a failed grow is harmless. */
static void
grow(struct registry *reg)
{
	size_t nmask = reg->mask * 2 + 1;
	struct resource **nt = calloc(nmask + 1, sizeof(*nt));

	if (nt == NULL)
		return;
	for (size_t i = 0; i <= reg->mask; i++) {
		struct resource *r = reg->table[i], *next;

		for (; r != NULL; r = next) {
			next = r->hnext;
			r->hnext = nt[r->hash & nmask];
			nt[r->hash & nmask] = r;
		}
	}
	free(reg->table);
	reg->table = nt;
	reg->mask = nmask;
}

int
registry_add(struct registry *reg, struct registry_node *n, const char *name, size_t len)
{
	struct resource *r = registry_find(reg, name, len);

	if (r == NULL) {
		r = malloc(sizeof(*r) + len + 1);
		if (r == NULL) {
			errno = ENOMEM;
			return -1;
		}
		r->hash = hash_name(reg, name, len);
		r->len = (uint32_t)len;
		memcpy(r->name, name, len);
		r->name[len] = '\0';
		r->head = NULL;
		r->streams = 0;
		r->hnext = reg->table[r->hash & reg->mask];
		reg->table[r->hash & reg->mask] = r;
		if (++reg->resources > reg->mask + 1)
			grow(reg);
	}
	n->res = r;
	n->prev = NULL;
	n->next = r->head;
	if (r->head != NULL)
		r->head->prev = n;
	r->head = n;
	r->streams++;
	reg->streams++;
	return 0;
}

void
registry_del(struct registry *reg, struct registry_node *n)
{
	struct resource *r = n->res, **pp;

	if (r == NULL)
		return;
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		r->head = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	n->prev = n->next = NULL;
	n->res = NULL;
	reg->streams--;
	if (--r->streams > 0)
		return;
	for (pp = &reg->table[r->hash & reg->mask]; *pp != r; pp = &(*pp)->hnext)
		;
	*pp = r->hnext;
	free(r);
	reg->resources--;
}

size_t
registry_resource_streams(const struct resource *res)
{
	return res != NULL ? res->streams : 0;
}

struct registry_node *
registry_resource_first(const struct resource *res)
{
	return res->head;
}

const char *
registry_node_name(const struct registry_node *n)
{
	return n->res != NULL ? n->res->name : "";
}

size_t
registry_streams(const struct registry *reg)
{
	return reg->streams;
}

size_t
registry_resources(const struct registry *reg)
{
	return reg->resources;
}

size_t
registry_longest_chain(const struct registry *reg)
{
	size_t longest = 0;

	for (size_t i = 0; i <= reg->mask; i++) {
		size_t n = 0;

		for (const struct resource *r = reg->table[i]; r != NULL; r = r->hnext)
			n++;
		if (n > longest)
			longest = n;
	}
	return longest;
}
