/*
 * tests/bench/heapinit.c - workload (h): kmem_init() over simulated sparse
 * memory maps.
 *
 *     heapinit SIZE_GIB [REPS [NPAGES OPS]]
 *
 * The map looks like a PC's: low memory with the BIOS hole, usable RAM up
 * to 3 GiB, the PCI hole, then the rest of SIZE above 4 GiB with a few
 * firmware-reserved holes.  The "physical" space is a PROT_NONE,
 * MAP_NORESERVE window: the allocator must not touch pool memory (a touch
 * would fault), only its metadata, which is given explicitly
 * (kmem_config.metadata_base/size, sized with kmem_metadata_size()) as a
 * separate RW, MAP_NORESERVE mapping placed just above the map's top.
 * Prints one line (ms: the median of REPS runs):
 *
 *     size_gib=.. ms=.. min_ms=.. reps=.. metadata_bytes=.. metadata_pct=..
 *     resident_bytes=.. managed_bytes=.. regions=.. arenas=..
 *
 * ms is kmem_init() alone, including the page faults on the metadata it
 * writes; resident_bytes is how much of the metadata mapping it touched.
 *
 * With NPAGES and OPS, the last heap then runs OPS kpage_alloc + kpage_free
 * pairs of NPAGES pages (page runs are never touched, so the PROT_NONE
 * pool is fine) and prints "pages=.. ops=.. ns_per_op=..": workload (g) on
 * a big heap; two callgrind runs with different OPS give instructions per
 * pair.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "spanalloc.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t build_map(struct kmem_region *r, uint64_t size, uint64_t *top)
{
	size_t n = 0;
	r[n++] = (struct kmem_region){0x1000, 0x9f000 - 0x1000, KMEM_REGION_USABLE, 0};
	r[n++] = (struct kmem_region){0x9f000, 0x100000 - 0x9f000, KMEM_REGION_RESERVED, 0};
	uint64_t low = size < 3 * GIB ? size : 3 * GIB;
	r[n++] = (struct kmem_region){MIB, low - MIB - 16 * MIB, KMEM_REGION_USABLE, 0};
	r[n++] = (struct kmem_region){low - 16 * MIB, 16 * MIB, KMEM_REGION_RECLAIMABLE, 0};
	*top = low;
	if (size > low) {
		r[n++] = (struct kmem_region){3 * GIB, GIB, KMEM_REGION_RESERVED, 0}; /* PCI hole */
		uint64_t hi = size - low;
		r[n++] = (struct kmem_region){4 * GIB, hi, KMEM_REGION_USABLE, 0};
		/* Firmware holes, unaligned, inside high memory. */
		for (int i = 1; i < 8; i++)
			r[n++] = (struct kmem_region){4 * GIB + hi / 8 * (uint64_t)i + 0x3000, 0x25000,
			                              KMEM_REGION_RESERVED, 0};
		*top = 4 * GIB + hi;
	}
	return n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: heapinit SIZE_GIB [REPS]\n");
		return 2;
	}
	uint64_t size = strtoull(argv[1], NULL, 0) * GIB;
	int reps = argc > 2 ? atoi(argv[2]) : 3;
	struct kmem_region r[32];
	uint64_t top;
	size_t n = build_map(r, size, &top);
	struct kmem_config cfg = {.regions = r, .nregions = n, .max_cpus = 0};
	/* Size the metadata with the region placed above the map. */
	size_t meta = kmem_metadata_size(&cfg);
	if (!meta) {
		fprintf(stderr, "heapinit: kmem_metadata_size failed\n");
		return 1;
	}
	uint64_t meta_phys = (top + GIB) & ~(GIB - 1);
	uint64_t span = meta_phys + meta;
	size_t npages = argc > 4 ? strtoull(argv[3], NULL, 0) : 0;
	uint64_t ops = argc > 4 ? strtoull(argv[4], NULL, 0) : 0;
	double times[64];
	double run_ns = 0;
	size_t resident = 0;
	struct kmem_stats st = {0};
	if (reps > 64)
		reps = 64;
	for (int rep = 0; rep < reps; rep++) {
		/* Window aligned to 1 GiB. */
		char *w = mmap(NULL, span + GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		               -1, 0);
		if (w == MAP_FAILED) {
			perror("heapinit: mmap window");
			return 1;
		}
		char *base = (char *)(((uintptr_t)w + GIB - 1) & ~(uintptr_t)(GIB - 1));
		char *m = mmap(base + meta_phys, meta, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
		if (m == MAP_FAILED) {
			perror("heapinit: mmap metadata");
			return 1;
		}
		cfg.direct_map_offset = (uintptr_t)base;
		cfg.metadata_base = meta_phys;
		cfg.metadata_size = meta;
		double t0 = now();
		int err = kmem_init(&cfg);
		times[rep] = now() - t0;
		if (err) {
			fprintf(stderr, "heapinit: kmem_init = %d\n", err);
			return 1;
		}
		size_t pages = (meta + 4095) / 4096;
		unsigned char *vec = malloc(pages);
		resident = 0;
		if (vec && mincore(m, meta, vec) == 0)
			for (size_t i = 0; i < pages; i++)
				resident += (vec[i] & 1) * 4096;
		free(vec);
		kmem_get_stats(&st);
		if (ops && rep == reps - 1) {
			double t1 = now();
			for (uint64_t i = 0; i < ops; i++) {
				void *p = kpage_alloc(npages, 4096, 0);
				if (!p) {
					fprintf(stderr, "heapinit: kpage_alloc(%zu) failed\n", npages);
					return 1;
				}
				__asm__ volatile("" : : "r"(p) : "memory");
				kpage_free(p, npages);
			}
			run_ns = (now() - t1) * 1e9 / (double)ops;
		}
		munmap(w, span + GIB);
	}
	qsort(times, (size_t)reps, sizeof(double), cmp_double);
	printf("size_gib=%llu ms=%.3f min_ms=%.3f reps=%d metadata_bytes=%zu metadata_pct=%.4f "
	       "resident_bytes=%zu managed_bytes=%llu regions=%zu arenas=%llu\n",
	       (unsigned long long)(size / GIB), times[reps / 2] * 1e3, times[0] * 1e3, reps, meta,
	       100.0 * (double)meta / (double)(st.pages_managed * 4096), resident,
	       (unsigned long long)(st.pages_managed * 4096), n, (unsigned long long)st.arenas);
	if (ops)
		printf("pages=%zu ops=%llu ns_per_op=%.1f\n", npages, (unsigned long long)ops, run_ns);
	return 0;
}
