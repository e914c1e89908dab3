/*
 * registry — which streams listen to which resource. Pure: no I/O, no logging.
 *
 * A stream embeds a struct registry_node; the registry links it into its resource's list,
 * creating the resource on first use and freeing it when its last stream leaves. Nodes
 * are never allocated or freed here: the stream owns its node. A delivery walks one
 * resource's list, so a publish costs O(streams of that resource), never O(all streams).
 */
#ifndef SSE_REGISTRY_H
#define SSE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

struct resource;
struct registry;

struct registry_node {
	struct registry_node *prev, *next;
	struct resource *res;   /* NULL while not registered */
};

struct registry *registry_new(void);
/* Frees the table and every resource; nodes still linked are left dangling-free
 * (their res pointers are not touched): unregister streams first. Accepts NULL. */
void registry_free(struct registry *reg);

/* Links n (not yet registered) under name. 0, or -1 with errno ENOMEM. */
int registry_add(struct registry *reg, struct registry_node *n, const char *name, size_t len);
/* Unlinks n (no-op when not registered); frees the resource once empty. */
void registry_del(struct registry *reg, struct registry_node *n);

/* Borrowed, valid until the resource empties. NULL when no stream listens. */
struct resource *registry_find(const struct registry *reg, const char *name, size_t len);
size_t registry_resource_streams(const struct resource *res);
struct registry_node *registry_resource_first(const struct resource *res);
/* Borrowed name of n's resource, NUL-terminated. */
const char *registry_node_name(const struct registry_node *n);

size_t registry_streams(const struct registry *reg);    /* streams registered */
size_t registry_resources(const struct registry *reg);  /* resources with >= 1 stream */
/* Most resources sharing one bucket: a health figure of the table (walks it all). */
size_t registry_longest_chain(const struct registry *reg);

#endif
