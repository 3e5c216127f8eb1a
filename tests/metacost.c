/*
 * tests/metacost.c - what spanalloc's metadata costs per GiB of managed
 * memory: `make metadata-cost` (the porting guide quotes its output).
 *
 * For maps of one usable region of 1 GiB, 4 GiB, 64 GiB and 1 TiB
 * (max_cpus = 8) it prints the metadata region kmem_init() carves
 * (kmem_metadata_size(): arena maps, bitmaps, page kinds and summaries,
 * the arena index, mcentrals, mcaches, the initial span-descriptor reserve,
 * a guard page at each end) in bytes
 * per managed GiB and as a share of managed memory.  Up to 4 GiB it also
 * builds the heap over a simulated physical window and checks that the
 * region kmem_init() took is that size and that region + pool = the map
 * (fails otherwise).  Not counted above: the library's static data (the
 * mheap, a one-node heap's page heap and the shared all-free arena
 * image, printed last) and span descriptors past the reserve, which come
 * from pool pages as spans are made (kmem_stats.pages_metadata), in runs
 * with a guard page at each end.  Page runs of up to 127 pages take no
 * descriptor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "fixture.h"
#include "mtypes.h"

#define CPUS 8
#define BUILD_MAX (4 * FX_GIB) /* larger maps: computed only */

static int cost_fail(const char *what, uint64_t size)
{
	fprintf(stderr, "metadata-cost: FAIL for the %llu GiB map: %s\n",
	        (unsigned long long)(size / FX_GIB), what);
	return 1;
}

int main(void)
{
	static const uint64_t sizes[] = {FX_GIB, 4 * FX_GIB, 64 * FX_GIB, FX_TIB};
	printf("metadata-cost: one usable region, max_cpus %d\n", CPUS);
	printf("%10s %16s %16s %10s %8s\n", "map", "metadata bytes", "bytes/GiB", "% managed",
	       "source");
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		uint64_t size = sizes[i];
		struct kmem_region r = {FX_SIMPLE_BASE, size, KMEM_REGION_USABLE, 0};
		struct kmem_config cfg = {.regions = &r, .nregions = 1, .max_cpus = CPUS};
		uint64_t meta = kmem_metadata_size(&cfg);
		if (!meta)
			return cost_fail("kmem_metadata_size() returned 0", size);
		uint64_t managed = size - meta;
		const char *source = "computed";
		if (size <= BUILD_MAX) {
			fx_reserve(FX_SIMPLE_BASE + size);
			if (fx_init(&r, 1, CPUS) != 0)
				return cost_fail("kmem_init() failed", size);
			struct kmem_stats st = fx_stats();
			if (st.metadata_bytes != meta)
				return cost_fail("kmem_init() took another size than kmem_metadata_size()", size);
			if (st.pages_managed * KMEM_PAGE_SIZE + st.metadata_bytes != size)
				return cost_fail("region + pool != the map", size);
			managed = st.pages_managed * KMEM_PAGE_SIZE;
			source = "kmem_init";
		}
		double per_gib = (double)meta * (double)FX_GIB / (double)managed;
		printf("%6llu GiB %16llu %16.0f %9.3f%% %8s\n", (unsigned long long)(size / FX_GIB),
		       (unsigned long long)meta, per_gib, 100.0 * (double)meta / (double)managed,
		       source);
		if (i + 1 == sizeof sizes / sizeof sizes[0])
			printf("metadata-cost: %.2f MiB per managed GiB (%llu GiB map)\n",
			       per_gib / (double)FX_MIB, (unsigned long long)(size / FX_GIB));
	}
	printf("metadata-cost: plus %zu bytes of static data (the mheap %zu, the page heap of a "
	       "one-node heap %zu, the shared all-free arena image %zu; with more nodes each "
	       "node's page heap is in its region) and span descriptors past the reserve from "
	       "pool pages (kmem_stats.pages_metadata: runs of 32 pages and a guard page; page "
	       "runs of up to 127 pages take none)\n",
	       sizeof(struct mheap) + sizeof(struct pageheap) + sizeof(arena_free_image),
	       sizeof(struct mheap), sizeof(struct pageheap), sizeof(arena_free_image));
	return 0;
}
