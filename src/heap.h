#ifndef SSE_FCGI_HEAP_H
#define SSE_FCGI_HEAP_H
/*
 * heap — giving freed memory back to the system. glibc keeps what free() returns in its
 * arenas, so a process that once held a burst (a slow reader's backlog, a catch-up of
 * every stream, a resume storm) would keep that resident size for good. The only module
 * that includes <malloc.h>; elsewhere than glibc these do nothing.
 */
#include <stddef.h>

/* Returns every free page of the arenas to the system (malloc_trim(0)); its cost grows
 * with the heap (about a millisecond for tens of megabytes), so callers do it after
 * bursts or rarely, never per event. */
void heap_trim(void);

/* heap_trim() when the bytes lying free in the arenas (beyond what free() gives back by
 * itself at the top) are at least min_free and at least 1/share of the arenas' size, so a
 * large process is not trimmed for a few free pages; 1 if it trimmed. */
int heap_trim_if_free(size_t min_free, unsigned share);

#endif
