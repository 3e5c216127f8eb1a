/*
 * tests/bench/bench.h - the allocation interface the benchmarks use.
 *
 * Built two ways from the same bench.c:
 *   bench-malloc   malloc/free/posix_memalign: one binary that runs under
 *                  each allocator through LD_PRELOAD (glibc = none);
 *   bench-direct   -DBENCH_DIRECT: spanalloc's kmalloc/kfree/kpage_alloc,
 *                  mm/ linked in as a kernel would link it: -O2, no LTO,
 *                  the shim arch (arch/host/shim_arch.c) with its inline
 *                  hooks (KMEM_ARCH_INLINE);
 *   bench-null     -DBENCH_NULL: no allocator.  The same loops call a stub
 *                  that returns one static buffer, so that callgrind can
 *                  measure what the loops cost without an allocator and
 *                  run.py can subtract it ("allocator only").
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

/* (k) the bulk API, and the single calls it is compared with. */
typedef struct kmem_cache *b_cache_t;

static inline b_cache_t b_cache_new(size_t size)
{
	return kmem_cache_create("bench", size, 0, NULL);
}

static inline void *b_cache_alloc(b_cache_t c)
{
	return kmem_cache_alloc(c);
}

static inline void b_cache_free(b_cache_t c, void *p)
{
	kmem_cache_free(c, p);
}

static inline int b_cache_alloc_bulk(b_cache_t c, size_t n, void **p)
{
	return kmem_cache_alloc_bulk(c, n, p) == n;
}

static inline void b_cache_free_bulk(b_cache_t c, size_t n, void **p)
{
	kmem_cache_free_bulk(c, n, p);
}

static inline void b_free_bulk(size_t n, void **p)
{
	kfree_bulk(n, p);
}
#elif defined(BENCH_NULL)
#define BENCH_ALLOCATOR "null"

/* Out of line, as malloc is: a call (not a clone specialised for its
 * argument), a result the compiler cannot know and a side effect it cannot
 * drop.  Their own bodies are two instructions (load the address, return)
 * and one (return). */
#ifdef __clang__
#define BENCH_OUTLINE __attribute__((noinline))
#else
#define BENCH_OUTLINE __attribute__((noipa))
#endif

static _Alignas(4096) char null_obj[512 * 4096];

static inline void bench_init(void)
{
}

BENCH_OUTLINE static void *b_alloc(size_t n)
{
	void *p = null_obj;
	__asm__ volatile("" : "+r"(p) : "r"(n) : "memory");
	return p;
}

BENCH_OUTLINE static void b_free(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static inline void *b_pages(size_t npages)
{
	(void)npages;
	return b_alloc(0);
}

static inline void b_pages_free(void *p, size_t npages)
{
	(void)npages;
	b_free(p);
}
#endif

#if !defined(BENCH_DIRECT) && !defined(BENCH_NULL)
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

#if !defined(BENCH_DIRECT)
/* (k) without a bulk API (malloc, null): object caches are sizes, bulk
 * calls are loops of single ones. */
typedef size_t b_cache_t;

static inline b_cache_t b_cache_new(size_t size)
{
	return size;
}

static inline void *b_cache_alloc(b_cache_t c)
{
	return b_alloc(c);
}

static inline void b_cache_free(b_cache_t c, void *p)
{
	(void)c;
	b_free(p);
}

static inline int b_cache_alloc_bulk(b_cache_t c, size_t n, void **p)
{
	for (size_t i = 0; i < n; i++)
		if (!(p[i] = b_alloc(c)))
			return 0;
	return 1;
}

static inline void b_free_bulk(size_t n, void **p)
{
	for (size_t i = 0; i < n; i++)
		b_free(p[i]);
}

static inline void b_cache_free_bulk(b_cache_t c, size_t n, void **p)
{
	(void)c;
	b_free_bulk(n, p);
}
#endif


#endif
