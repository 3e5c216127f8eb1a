/*
 * tests/bench/bench.h - the allocation interface the benchmarks use.
 *
 * Built two ways from the same bench.c:
 *   bench-malloc   malloc/free/posix_memalign: one binary that runs under
 *                  each allocator through LD_PRELOAD (glibc = none);
 *   bench-direct   -DBENCH_DIRECT: spanalloc's kmalloc/kfree/kpage_alloc,
 *                  mm/ linked in as a kernel would link it: -O2, no LTO,
 *                  the shim arch (arch/host/shim_arch.c) with its inline
 *                  hooks (KMEM_ARCH_INLINE).
 */
#ifndef SPANALLOC_BENCH_H
#define SPANALLOC_BENCH_H

#include <stddef.h>
#include <stdlib.h>

#ifdef BENCH_DIRECT
#include "spanalloc.h"
#include "shim_arch.h"

#define BENCH_ALLOCATOR "spanalloc-direct"

static inline void bench_init(void)
{
	if (!shim_heap_ready())
		abort();
}

static inline void *b_alloc(size_t n)
{
	return kmalloc(n); /* the shim arch's OOM hook grows the heap */
}

static inline void b_free(void *p)
{
	kfree(p);
}

static inline void *b_pages(size_t npages)
{
	return kpage_alloc(npages, KMEM_PAGE_SIZE, 0);
}

static inline void b_pages_free(void *p, size_t npages)
{
	kpage_free(p, npages);
}
#else
#define BENCH_ALLOCATOR "malloc"

static inline void bench_init(void)
{
}

static inline void *b_alloc(size_t n)
{
	return malloc(n);
}

static inline void b_free(void *p)
{
	free(p);
}

static inline void *b_pages(size_t npages)
{
	void *p = NULL;
	return posix_memalign(&p, 4096, npages * 4096) == 0 ? p : NULL;
}

static inline void b_pages_free(void *p, size_t npages)
{
	(void)npages;
	free(p);
}
#endif

#endif
