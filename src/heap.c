/* heap — see heap.h. */
#include "heap.h"

#include <stdlib.h>   /* defines __GLIBC__ (through <features.h>) on glibc */
#ifdef __GLIBC__
#include <malloc.h>
#endif

void
heap_trim(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

int
heap_trim_if_free(size_t min_free, unsigned share)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	struct mallinfo2 mi = mallinfo2();
	size_t free_bytes;

	/* arena: bytes the arenas hold from the system; fordblks: free bytes in them;
	 * keepcost: the free part at the top, which free() already gives back past
	 * M_TRIM_THRESHOLD */
	if (mi.fordblks < mi.keepcost)
		return 0;
	free_bytes = mi.fordblks - mi.keepcost;
	if (free_bytes < min_free || (share > 0 && free_bytes < mi.arena / share))
		return 0;
	malloc_trim(0);
	return 1;
#else
	(void)min_free;
	(void)share;
	return 0;
#endif
}
