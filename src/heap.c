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
heap_trim_if_free(size_t min_free)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	struct mallinfo2 mi = mallinfo2();

	/* fordblks: free bytes in the arenas; keepcost: the part at the top, which free()
	 * already gives back past M_TRIM_THRESHOLD */
	if (mi.fordblks < mi.keepcost || mi.fordblks - mi.keepcost < min_free)
		return 0;
	malloc_trim(0);
	return 1;
#else
	(void)min_free;
	return 0;
#endif
}
