/*
 * tests/test_arena.c - the arena index (mm/heaparena.c) and the metadata
 * region (mm/bootmem.c): span_of_ptr for every page of small spans, large
 * objects and page runs (also across an arena boundary); NULL for free
 * pages, reserved holes, missing arenas, addresses beyond 2^48 and below
 * the direct map; arena_of_pfn for present and absent arenas;
 * kmem_metadata_size for a 4 GiB map and a 1 TiB sparse map (as a
 * percentage of managed memory); kmem_metadata_region where the config put
 * it (or inside usable memory), never overlapping a handed-out object.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fixture.h"
#include "host.h"
#include "mtypes.h"

#define PG KMEM_PAGE_SIZE
#define ARENA_BYTES ((uint64_t)1 << ARENA_SHIFT)

/* ------------------------------------------------------------------------
 * Helpers
 */

static void *va(uint64_t phys)
{
	return fx_virt(phys);
}

/* Every page of s, at a few offsets, maps to s; the pages around it
 * do not. */
/* A page run of at most RUN_INLINE_MAX pages has no span: every page of
 * it, and no page outside, is found in the arenas' page kinds as that run
 * (mheap.c, mheap_free_run's lookup). */
static void assert_run_pages(const void *p, uint64_t n)
{
	uint64_t pfn = virt_to_pfn((uintptr_t)p), head, len;
	unsigned long f = heaps_lock_all();
	for (uint64_t i = 0; i < n; i++) {
		assert_null(span_of_pfn(pfn + i));
		assert_true(arena_run_of_locked(pfn + i, &head, &len));
		assert_int_equal(head, pfn);
		assert_int_equal(len, n);
	}
	assert_false(arena_run_of_locked(pfn - 1, &head, &len) && head == pfn);
	assert_false(arena_run_of_locked(pfn + n, &head, &len) && head == pfn);
	heaps_unlock_all(f);
}

static void assert_span_pages(struct mspan *s)
{
	assert_non_null(s);
	for (uint64_t i = 0; i < s->npages; i++) {
		const char *pg = (const char *)(s->base + i * PG);
		assert_ptr_equal(span_of_ptr(pg), s);
		assert_ptr_equal(span_of_ptr(pg + 1), s);
		assert_ptr_equal(span_of_ptr(pg + PG / 2 + 3), s);
		assert_ptr_equal(span_of_ptr(pg + PG - 1), s);
		assert_ptr_equal(span_of_pfn(s->pfn + i), s);
	}
	assert_ptr_not_equal(span_of_ptr((const char *)s->base - 1), s);
	assert_ptr_not_equal(span_of_ptr((const char *)(s->base + s->npages * PG)), s);
	assert_int_equal(kmem_virt_to_phys((void *)s->base), s->pfn * PG);
}

static void assert_unmapped(uint64_t phys, uint64_t len)
{
	uint64_t head, n;
	for (uint64_t a = phys; a < phys + len; a += PG) {
		assert_null(span_of_ptr(va(a)));
		assert_null(span_of_ptr(va(a + PG - 1)));
		assert_false(arena_run_of_locked(a >> PAGE_SHIFT, &head, &n)); /* quiescent */
	}
}

/* [16 MiB, 144 MiB): arena lines at 64 and 128 MiB */
static const struct fx_heap heap = {128, 2};

#define T(fn) FX_TEST(fn, &heap, fx_teardown_all_back)

/* ------------------------------------------------------------------------
 * span_of_ptr
 */

static void test_small_spans(void **state)
{
	(void)state;
	/* 1, 2, 3, 13 pages per span; 8-page aligned 32 KiB class. */
	const size_t sizes[] = {8, 704, 1408, 24832, 32768, 3072};
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned cls = kmem_size_class(sizes[k]);
		void *p = kmalloc(sizes[k]);
		assert_non_null(p);
		struct mspan *s = span_of_ptr(p);
		assert_non_null(s);
		assert_int_equal(atomic_load(&s->state), SPAN_SMALL);
		assert_int_equal(s->npages, kmem_class[cls].npages);
		assert_int_equal(s->sizeclass, cls);
		assert_int_equal(s->pfn % kmem_class[cls].align_pages, 0);
		assert_true((uintptr_t)p >= s->base && (uintptr_t)p < s->base + s->npages * PG);
		assert_span_pages(s);
		/* Every object of the span finds it. */
		for (uint32_t i = 0; i < s->nelems; i++)
			assert_ptr_equal(span_of_ptr((char *)s->base + i * s->elemsize), s);
		kfree(p);
	}
	kmem_reclaim();
	/* All released: nothing maps any more. */
	struct kmem_stats st = fx_stats();
	assert_int_equal(st.pages_small, 0);
	assert_unmapped(FX_SIMPLE_BASE, 64 * PG);
}

static void test_large_and_runs(void **state)
{
	(void)state;
	void *l = kmalloc(100000); /* 25 pages */
	assert_non_null(l);
	struct mspan *sl = span_of_ptr(l);
	assert_int_equal(atomic_load(&sl->state), SPAN_LARGE);
	assert_int_equal(sl->npages, 25);
	assert_ptr_equal((void *)sl->base, l);
	assert_span_pages(sl);

	/* Runs of up to RUN_INLINE_MAX pages have no span; longer ones do. */
	void *r = kpage_alloc(7, PG, 0);
	assert_non_null(r);
	assert_run_pages(r, 7);

	void *ra = kpage_alloc(16, 64 * 1024, 0);
	assert_non_null(ra);
	assert_int_equal(fx_phys(ra) % (64 * 1024), 0);
	assert_run_pages(ra, 16);

	const uint64_t nb = RUN_INLINE_MAX + 1;
	void *rb = kpage_alloc(nb, PG, 0);
	assert_non_null(rb);
	struct mspan *sb = span_of_ptr(rb);
	assert_int_equal(atomic_load(&sb->state), SPAN_RUN);
	assert_int_equal(sb->npages, nb);
	assert_span_pages(sb);
	/* Neighbouring spans never share a page. */
	assert_ptr_not_equal(sl, sb);

	uint64_t pl = fx_phys(l), pr = fx_phys(r), pra = fx_phys(ra), pb = fx_phys(rb);
	kfree(l);
	assert_unmapped(pl, 25 * PG);
	assert_run_pages(r, 7);
	kpage_free(r, 7);
	assert_unmapped(pr, 7 * PG);
	kpage_free(ra, 16);
	assert_unmapped(pra, 16 * PG);
	assert_span_pages(sb);
	kpage_free(rb, nb);
	assert_unmapped(pb, nb * PG);
}

/* A page run and a large object across the 64 MiB arena line. */
static void test_span_across_arenas(void **state)
{
	(void)state;
	const uint64_t line = 64 * FX_MIB;
	/* Everything below the line except the last 8 pages is taken. */
	uint64_t below = (line - FX_SIMPLE_BASE) / PG - 8;
	void *fill = kpage_alloc(below, PG, 0);
	assert_non_null(fill);
	assert_int_equal(fx_phys(fill), FX_SIMPLE_BASE);
	void *r = kpage_alloc(20, PG, 0);
	assert_non_null(r);
	assert_int_equal(fx_phys(r), line - 8 * PG);
	assert_run_pages(r, 20); /* its page kinds in both arenas */
	assert_ptr_not_equal(arena_of_pfn((line >> PAGE_SHIFT) - 1), arena_of_pfn(line >> PAGE_SHIFT));
	kpage_free(r, 20);
	assert_unmapped(line - 8 * PG, 20 * PG);
	fx_assert_check();

	/* The same with a descriptor. */
	const uint64_t nb = RUN_INLINE_MAX + 20;
	r = kpage_alloc(nb, PG, 0);
	assert_non_null(r);
	assert_int_equal(fx_phys(r), line - 8 * PG);
	struct mspan *s = span_of_ptr(r);
	assert_span_pages(s);
	assert_ptr_equal(span_of_ptr(va(line - 1)), s);
	assert_ptr_equal(span_of_ptr(va(line)), s);
	assert_ptr_equal(span_of_ptr(va(line + 11 * PG)), s);
	kpage_free(r, nb);
	assert_unmapped(line - 8 * PG, nb * PG);

	void *l = kmalloc(40 * PG);
	assert_non_null(l);
	assert_int_equal(fx_phys(l), line - 8 * PG);
	s = span_of_ptr(l);
	assert_span_pages(s);
	assert_int_equal(ksize(l), 40 * PG);
	assert_int_equal(ksize((char *)l + 0), 40 * PG);
	kfree(l);
	assert_unmapped(line - 8 * PG, 40 * PG);
	kpage_free(fill, below);
}

/* NULL for free pages, holes, missing arenas, beyond 2^48, below the
 * direct map. */
static int setup_holes(void **state)
{
	(void)state;
	fx_reserve(300 * FX_GIB + 128 * FX_MIB);
	const struct kmem_region r[] = {
		{16 * FX_MIB, 48 * FX_MIB, KMEM_REGION_USABLE, 0},
		{20 * FX_MIB, 2 * PG, KMEM_REGION_RESERVED, 0},      /* hole in an arena */
		{FX_GIB + PG / 2, 64 * FX_MIB, KMEM_REGION_USABLE, 0}, /* unaligned start */
		{300 * FX_GIB, 64 * FX_MIB, KMEM_REGION_USABLE, 0},
	};
	assert_int_equal(fx_init(r, 4, 2), 0);
	return 0;
}

static void test_null_lookups(void **state)
{
	(void)state;
	/* Free pages (nothing allocated yet). */
	assert_null(span_of_ptr(va(16 * FX_MIB)));
	assert_null(span_of_ptr(va(40 * FX_MIB + 123)));
	assert_null(span_of_ptr(va(300 * FX_GIB)));
	/* Physical page 0 and the unmanaged start of arena 0. */
	assert_null(span_of_ptr(va(0)));
	assert_null(span_of_ptr(va(PG)));
	/* The reserved hole. */
	assert_non_null(arena_of_pfn((20 * FX_MIB) >> PAGE_SHIFT));
	assert_null(span_of_ptr(va(20 * FX_MIB)));
	assert_null(span_of_ptr(va(20 * FX_MIB + PG + 5)));
	/* The partial page at the unaligned start of the 1 GiB region. */
	assert_null(span_of_ptr(va(FX_GIB)));
	/* Missing arenas and chunks. */
	assert_null(arena_of_pfn((512 * FX_MIB) >> PAGE_SHIFT));
	assert_null(span_of_ptr(va(512 * FX_MIB)));
	assert_null(span_of_ptr(va(100 * FX_GIB)));
	assert_null(span_of_ptr(va(299 * FX_GIB + 1)));
	/* Beyond the 48-bit physical space, and far beyond. */
	assert_null(arena_of_pfn(1ull << SUM_TOP));
	assert_null(arena_of_pfn(UINT64_MAX));
	assert_null(span_of_pfn(1ull << SUM_TOP));
	assert_null(span_of_ptr((char *)fx_window() + (1ull << KMEM_PHYS_BITS)));
	assert_null(span_of_ptr((char *)fx_window() + (1ull << KMEM_PHYS_BITS) + 16 * FX_MIB));
	assert_null(span_of_ptr((char *)fx_window() + (1ull << 52)));
	/* Below the direct map (the pfn wraps around). */
	assert_null(span_of_ptr((char *)fx_window() - 1));
	assert_null(span_of_ptr((char *)fx_window() - PG));
	assert_null(span_of_ptr((char *)fx_window() - 16 * FX_MIB));
	assert_null(span_of_ptr(NULL));

	/* Allocated: found; freed again: NULL. */
	void *r = kpage_alloc(3, PG, 0);
	assert_non_null(r);
	assert_int_equal(fx_phys(r), 16 * FX_MIB);
	assert_run_pages(r, 3);
	/* A run never covers the hole. */
	void *big = kpage_alloc(1024, PG, 0);
	assert_non_null(big);
	assert_true(fx_phys(big) >= 20 * FX_MIB + 2 * PG);
	kpage_free(r, 3);
	kpage_free(big, 1024);
	assert_null(span_of_ptr(va(16 * FX_MIB)));

	/* kfree of these addresses reports and changes nothing. */
	kfree(va(20 * FX_MIB));
	assert_int_equal(fx_last_fault().kind, KMEM_FAULT_WILD);
	kfree(va(16 * FX_MIB));
	assert_int_equal(fx_last_fault().kind, KMEM_FAULT_FREE_PAGE);
	kfree((char *)fx_window() + (1ull << KMEM_PHYS_BITS));
	assert_int_equal(fx_last_fault().kind, KMEM_FAULT_WILD);
	kfree((char *)fx_window() - PG);
	assert_int_equal(fx_last_fault().kind, KMEM_FAULT_WILD);
	assert_int_equal(fx_fault_count(), 4);
	fx_faults_reset();
}

static void test_arena_of_pfn(void **state)
{
	(void)state;
	/* Arenas: [0,64M), [1G,1G+64M), [300G,300G+64M).  The 1 GiB region
	 * reaches 2 KiB into the next arena: no whole page, no arena. */
	const uint64_t present[] = {0, FX_GIB, 300 * FX_GIB};
	struct kmem_stats st = fx_stats();
	assert_int_equal(st.arenas, 3);
	uint64_t managed = 0;
	for (unsigned k = 0; k < 3; k++) {
		uint64_t pfn0 = present[k] >> PAGE_SHIFT;
		struct heap_arena *a = arena_of_pfn(pfn0);
		assert_non_null(a);
		assert_ptr_equal(arena_of_pfn(pfn0 + ARENA_PAGES - 1), a);
		assert_ptr_equal(arena_of_pfn(pfn0 + ARENA_PAGES / 2), a);
		assert_ptr_not_equal(arena_of_pfn(pfn0 + ARENA_PAGES), a);
		/* The arena's managed count is its managed bits. */
		uint64_t bits = 0;
		for (unsigned w = 0; w < ARENA_WORDS; w++)
			bits += (uint64_t)__builtin_popcountll(a->managedbits[w]);
		assert_int_equal(a->managed, bits);
		managed += bits;
	}
	assert_int_equal(managed, st.pages_managed);
	/* Arena 0: [16M, 64M) minus the 2-page hole. */
	assert_int_equal(arena_of_pfn(0)->managed, (48 * FX_MIB) / PG - 2);
	/* Absent: the arena after 1G+128M, everything between, beyond. */
	const uint64_t absent[] = {ARENA_BYTES, 512 * FX_MIB, FX_GIB - PG, FX_GIB + 2 * ARENA_BYTES,
	                           256 * FX_GIB, 300 * FX_GIB - PG, 300 * FX_GIB + ARENA_BYTES,
	                           FX_TIB, (1ull << KMEM_PHYS_BITS) - PG};
	for (unsigned k = 0; k < sizeof(absent) / sizeof(absent[0]); k++) {
		assert_null(arena_of_pfn(absent[k] >> PAGE_SHIFT));
		assert_false(pfn_is_managed(absent[k] >> PAGE_SHIFT));
	}
	assert_true(pfn_is_managed((16 * FX_MIB) >> PAGE_SHIFT));
	/* Two L2 chunks: L1 entries 0 and 1 (256 GiB each). */
	assert_non_null(atomic_load(&mheap_.l1[0]));
	assert_non_null(atomic_load(&mheap_.l1[1]));
	for (unsigned i = 2; i < L1_ENTRIES; i++)
		assert_null(atomic_load(&mheap_.l1[i]));
}

/* pfn_is_managed() is documented (mtypes.h) as "in an arena and in the
 * pool": a reserved hole, page 0 and the metadata region are in arenas but
 * not in the pool. */
static void test_pfn_is_managed(void **state)
{
	(void)state;
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	assert_true(pfn_is_managed((16 * FX_MIB) >> PAGE_SHIFT));
	assert_true(pfn_is_managed((300 * FX_GIB) >> PAGE_SHIFT));
	assert_false(pfn_is_managed((512 * FX_MIB) >> PAGE_SHIFT)); /* no arena */
	assert_false(pfn_is_managed((20 * FX_MIB) >> PAGE_SHIFT));  /* reserved hole */
	assert_false(pfn_is_managed(0));                            /* page 0 */
	assert_false(pfn_is_managed(mb >> PAGE_SHIFT));             /* metadata */
}

/* ------------------------------------------------------------------------
 * Metadata size and region
 */

static double pct(uint64_t part, uint64_t whole)
{
	return 100.0 * (double)part / (double)whole;
}

static void test_metadata_size_4g(void **state)
{
	(void)state;
	const struct kmem_region r = {4 * FX_GIB, 4 * FX_GIB, KMEM_REGION_USABLE, 0};
	struct kmem_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.regions = &r;
	cfg.nregions = 1;
	cfg.max_cpus = 8;
	size_t m = kmem_metadata_size(&cfg);
	print_message("metadata for a 4 GiB map: %zu bytes = %.3f%% of managed memory\n", m,
	              pct(m, r.length));
	assert_true(m > 0);
	assert_true(m % PG == 0);
	/* At least an arena per 64 MiB and the index chunk. */
	assert_true(m >= 64 * sizeof(struct heap_arena) + sizeof(struct l2_chunk));
	assert_true(m * 1000 <= r.length * 5); /* <= 0.5% */
	/* Twice the memory costs about twice the metadata; half, half. */
	const struct kmem_region r2 = {4 * FX_GIB, 2 * FX_GIB, KMEM_REGION_USABLE, 0};
	cfg.regions = &r2;
	size_t m2 = kmem_metadata_size(&cfg);
	assert_true(m2 < m && m2 * 2 > m - 2 * sizeof(struct l2_chunk));
	/* A malformed or empty config needs none. */
	assert_int_equal(kmem_metadata_size(NULL), 0);
	cfg.nregions = 0;
	assert_int_equal(kmem_metadata_size(&cfg), 0);
	const struct kmem_region res = {4 * FX_GIB, 4 * FX_GIB, KMEM_REGION_RESERVED, 0};
	cfg.regions = &res;
	cfg.nregions = 1;
	assert_int_equal(kmem_metadata_size(&cfg), 0);
}

static void test_metadata_size_sparse_1t(void **state)
{
	(void)state;
	/* 16 x 64 GiB spread over 16 TiB, one per TiB. */
	struct kmem_region r[16];
	uint64_t managed = 0;
	for (unsigned i = 0; i < 16; i++) {
		r[i].base = (uint64_t)i * FX_TIB + 64 * FX_GIB;
		r[i].length = 64 * FX_GIB;
		r[i].type = KMEM_REGION_USABLE;
		r[i].node = 0;
		managed += r[i].length;
	}
	struct kmem_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.regions = r;
	cfg.nregions = 16;
	cfg.max_cpus = 64;
	size_t m = kmem_metadata_size(&cfg);
	print_message("metadata for 1 TiB in 16 regions over 16 TiB: %zu bytes = %.3f%% of managed memory\n",
	              m, pct(m, managed));
	assert_true(m > 0);
	assert_true(m * 1000 <= managed * 5); /* <= 0.5% */

	/* The holes cost nothing but the 12 extra L2 chunks: compare with the
	 * same terabyte in one piece (4 chunks). */
	const struct kmem_region one = {FX_TIB, FX_TIB, KMEM_REGION_USABLE, 0};
	cfg.regions = &one;
	cfg.nregions = 1;
	size_t mc = kmem_metadata_size(&cfg);
	print_message("metadata for 1 TiB contiguous: %zu bytes = %.3f%%\n", mc, pct(mc, FX_TIB));
	/* (a chunk: its index, and its node's page heap's summaries) */
	uint64_t chunk = align_up(sizeof(struct l2_chunk), KMEM_CACHE_LINE) +
	                 align_up(sizeof(struct l2_sums), KMEM_CACHE_LINE);
	assert_true(m > mc);
	assert_true(m - mc <= 12 * chunk + PG);
	assert_true(m - mc + PG >= 12 * chunk);
	/* The same regions given out of order and overlapping twice over. */
	struct kmem_region r2[32];
	for (unsigned i = 0; i < 16; i++) {
		r2[i] = r[15 - i];
		r2[16 + i] = r[i];
		r2[16 + i].base += 32 * FX_GIB;
		r2[16 + i].length = 32 * FX_GIB;
	}
	cfg.regions = r2;
	cfg.nregions = 32;
	assert_int_equal(kmem_metadata_size(&cfg), m);
}

/* ------------------------------------------------------------------------
 * Lazy arenas: an arena the boot map covers whole is the shared all-free
 * image until its first write.
 */

/* [64 MiB, 256 MiB): arenas 1 and 2 whole, arena 3 holds the metadata
 * region at its top (so it is partial and built at init). */
static int setup_lazy(void **state)
{
	(void)state;
	fx_reserve(512 * FX_MIB);
	const struct kmem_region r[] = {{64 * FX_MIB, 192 * FX_MIB, KMEM_REGION_USABLE, 0}};
	assert_int_equal(fx_init(r, 1, 2), 0);
	return 0;
}

static bool all_ones(const uint64_t *w, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (w[i] != ~0ull)
			return false;
	return true;
}

static void test_lazy_copy_on_first_write(void **state)
{
	(void)state;
	const uint64_t a1 = (64 * FX_MIB) >> PAGE_SHIFT, a2 = (128 * FX_MIB) >> PAGE_SHIFT;
	const uint64_t a3 = (192 * FX_MIB) >> PAGE_SHIFT;
	struct kmem_stats st0 = fx_stats();
	assert_int_equal(st0.arenas, 3);
	assert_ptr_equal(arena_of_pfn(a1), &arena_free_image);
	assert_ptr_equal(arena_of_pfn(a2), &arena_free_image);
	assert_ptr_not_equal(arena_of_pfn(a3), &arena_free_image);
	assert_non_null(arena_of_pfn(a3));
	assert_true(pfn_is_managed(a1) && pfn_is_managed(a2 + ARENA_PAGES - 1));
	/* Init copied nothing: the reserve still holds both shared arenas. */
	assert_true(mheap_.arena_end[0] - mheap_.arena_next[0] >= 2 * sizeof(struct heap_arena));
	uintptr_t next0 = mheap_.arena_next[0];
	fx_assert_check();

	/* First fit: the lowest page is arena 1's first; the write copies it. */
	void *p = kpage_alloc(1, PG, 0);
	assert_ptr_equal(p, va(64 * FX_MIB));
	struct heap_arena *c = arena_of_pfn(a1);
	assert_ptr_not_equal(c, &arena_free_image);
	assert_true((uintptr_t)c >= next0 && (uintptr_t)c + sizeof(*c) <= mheap_.arena_end[0]);
	assert_ptr_equal(arena_of_pfn(a2), &arena_free_image);
	assert_int_equal(c->managed, ARENA_PAGES);
	assert_int_equal(c->pagebits[0], ~1ull);
	assert_true(all_ones(c->pagebits + 1, ARENA_WORDS - 1));
	assert_true(all_ones(c->managedbits, ARENA_WORDS));
	assert_run_pages(p, 1);
	/* The image itself is unchanged. */
	assert_true(all_ones(arena_free_image.pagebits, ARENA_WORDS));
	assert_null(atomic_load(&arena_free_image.spans[0]));
	assert_int_equal(arena_free_image.pagekind[0], PKIND_NONE);
	fx_assert_check();

	/* A run across the line from the copy into the shared arena 2. */
	void *q = kpage_alloc(ARENA_PAGES, PG, 0);
	assert_ptr_equal(q, va(64 * FX_MIB + PG));
	assert_ptr_not_equal(arena_of_pfn(a2), &arena_free_image);
	assert_span_pages(span_of_ptr(q));
	assert_int_equal(mheap_.arena_next[0] - next0, 2 * align_up(sizeof(*c), KMEM_CACHE_LINE));
	fx_assert_check();
	kpage_free(q, ARENA_PAGES);
	kpage_free(p, 1);
	/* Copies stay copies: all free again, the same as the image. */
	assert_int_equal(memcmp(arena_of_pfn(a1)->pagebits, arena_free_image.pagebits,
	                        sizeof(arena_free_image.pagebits)), 0);
	assert_int_equal(memcmp(arena_of_pfn(a2)->sum, arena_free_image.sum,
	                        sizeof(arena_free_image.sum)), 0);
	struct kmem_stats st1 = fx_stats();
	assert_int_equal(st1.pages_free, st0.pages_free);
}

static void test_lazy_hot_add_and_check(void **state)
{
	(void)state;
	/* A shared arena is managed: hot-add over it is refused. */
	const struct kmem_region over = {128 * FX_MIB + 5 * PG, 8 * PG, KMEM_REGION_USABLE, 0};
	assert_int_equal(kmem_hot_add(&over), -KMEM_EINVAL);
	assert_ptr_equal(arena_of_pfn((128 * FX_MIB) >> PAGE_SHIFT), &arena_free_image);
	/* Hot-added memory gets real arenas (metadata from its own start). */
	fx_usable(320 * FX_MIB, 64 * FX_MIB);
	const struct kmem_region add = {320 * FX_MIB, 64 * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_true(kmem_hot_add(&add) > 0);
	assert_ptr_not_equal(arena_of_pfn((320 * FX_MIB) >> PAGE_SHIFT), &arena_free_image);
	fx_assert_check();
	/* The checker sees a written image: a page taken behind its back. */
	arena_free_image.pagebits[3] ^= 1ull << 7;
	assert_true(kmem_check() > 0);
	arena_free_image.pagebits[3] ^= 1ull << 7;
	fx_faults_reset();
	fx_assert_check();
}

/* 1 TiB of sparse map (a PC's: low memory, a hole, the rest above 4 GiB
 * with reserved holes): init writes only the partial arenas and the
 * summaries above the arenas -- a few MiB of the 3 GiB region resident --
 * and the whole terabyte is usable at both ends. */
static void test_lazy_init_1t(void **state)
{
	(void)state;
	fx_reserve(FX_TIB + 8 * FX_GIB);
	struct kmem_region r[] = {
		{PG, 0x9f000 - PG, KMEM_REGION_USABLE, 0},
		{FX_MIB, 3 * FX_GIB - FX_MIB, KMEM_REGION_USABLE, 0},
		{4 * FX_GIB, FX_TIB - 3 * FX_GIB, KMEM_REGION_USABLE, 0},
		{4 * FX_GIB + 100 * FX_GIB + 0x3000, 0x25000, KMEM_REGION_RESERVED, 0},
		{4 * FX_GIB + 700 * FX_GIB + 0x3000, 0x25000, KMEM_REGION_RESERVED, 0},
	};
	assert_int_equal(fx_init(r, 5, 2), 0);
	struct kmem_stats st = fx_stats();
	assert_true(st.pages_managed * PG > FX_TIB - 8 * FX_GIB);
	uint64_t meta, size;
	kmem_metadata_region(&meta, &size);
	assert_true(size * 1000 <= st.pages_managed * PG * 5); /* <= 0.5% */
	unsigned char *vec = malloc(size / PG + 1);
	assert_non_null(vec);
	char *m = va(meta);
	char *m0 = (char *)align_down((uintptr_t)m, PG);
	assert_int_equal(mincore(m0, (size_t)(m + size - m0), vec), 0);
	size_t resident = 0;
	for (size_t i = 0; i < (size_t)(m + size - m0 + PG - 1) / PG; i++)
		resident += vec[i] & 1;
	free(vec);
	print_message("1 TiB map: metadata %llu bytes, %zu KiB resident after init\n",
	              (unsigned long long)size, resident * PG / 1024);
	assert_true(resident * PG <= 16 * FX_MIB);
	/* Both ends work; the high one copies one shared arena. */
	void *lo = kpage_alloc(1, PG, 0);
	assert_ptr_equal(lo, va(PG));
	uintptr_t before = mheap_.arena_next[0];
	assert_ptr_equal(arena_of_pfn((512 * FX_GIB) >> PAGE_SHIFT), &arena_free_image);
	void *hi = kpage_alloc(4, 512 * FX_GIB, 0);
	assert_ptr_equal(hi, va(512 * FX_GIB));
	assert_ptr_not_equal(arena_of_pfn((512 * FX_GIB) >> PAGE_SHIFT), &arena_free_image);
	assert_int_equal(mheap_.arena_next[0] - before,
	                 align_up(sizeof(struct heap_arena), KMEM_CACHE_LINE));
	fx_assert_check();
	kpage_free(hi, 4);
	kpage_free(lo, 1);
}

/* The first write to a shared arena copies the image, but only the blocks
 * that differ from what the metadata holds: in fresh zero memory the
 * zero spans[] (128 KiB) stays untouched, while garbage left in the
 * metadata range (a region nobody cleared) is overwritten all the same. */
static void test_arena_copy_writes_only_differences(void **state)
{
	(void)state;
	fx_reserve(4 * FX_GIB);
	struct kmem_region r = {FX_MIB, 3 * FX_GIB - FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(fx_init(&r, 1, 2), 0);
	const size_t asz = align_up(sizeof(struct heap_arena), KMEM_CACHE_LINE);
	/* Clean memory: the copy of the arena at 1 GiB leaves spans[] alone.
	 * The pages inside spans[] past the first are made read-only: a write
	 * there would fault. */
	uintptr_t before = align_up(mheap_.arena_next[0], KMEM_CACHE_LINE);
	assert_true(mheap_.arena_end[0] - before >= 2 * asz);
	assert_ptr_equal(arena_of_pfn(FX_GIB >> PAGE_SHIFT), &arena_free_image);
	struct heap_arena *a = (struct heap_arena *)before;
	uintptr_t ro = align_up((uintptr_t)&a->spans[0], PG) + PG;
	uintptr_t ro_end = align_down((uintptr_t)&a->spans[ARENA_PAGES], PG);
	assert_true(ro_end - ro >= 120 * FX_KIB);
	assert_int_equal(mprotect((void *)ro, ro_end - ro, PROT_READ), 0);
	void *p = kpage_alloc(1, FX_GIB, 0);
	assert_int_equal(mprotect((void *)ro, ro_end - ro, PROT_READ | PROT_WRITE), 0);
	assert_ptr_equal(p, va(FX_GIB));
	assert_ptr_equal(arena_of_pfn(FX_GIB >> PAGE_SHIFT), a);
	assert_int_equal(mheap_.arena_next[0] - before, sizeof(struct heap_arena));
	/* Garbage in the next arena's room: the copy must clear it. */
	before = align_up(mheap_.arena_next[0], KMEM_CACHE_LINE);
	memset((void *)before, 0xa5, asz);
	void *q = kpage_alloc(1, 2 * FX_GIB, 0);
	assert_ptr_equal(q, va(2 * FX_GIB));
	a = arena_of_pfn((2 * FX_GIB) >> PAGE_SHIFT);
	assert_ptr_equal(a, (void *)before);
	for (uint64_t i = 1; i < ARENA_PAGES; i++)
		assert_null(atomic_load(&a->spans[i]));
	assert_int_equal(memcmp(a->pagebits + 1, arena_free_image.pagebits + 1,
	                        sizeof(a->pagebits) - 8), 0);
	fx_assert_check();
	kpage_free(q, 1);
	kpage_free(p, 1);
	fx_assert_check();
}

/* Every live allocation from an exhausting fill, as [phys, phys+len). */
struct extent {
	uint64_t lo, hi;
};

static size_t exhaust(struct extent **out, void ***ptrs, size_t **lens)
{
	size_t cap = 4096, n = 0;
	struct extent *e = malloc(cap * sizeof(*e));
	void **p = malloc(cap * sizeof(*p));
	size_t *l = malloc(cap * sizeof(*l));
	assert_true(e && p && l);
	/* Page runs first, then small objects into the last pages. */
	const size_t sizes[] = {0, 2048, 64, 8};
	for (unsigned k = 0; k < 4; k++) {
		for (;;) {
			void *q = sizes[k] ? kmalloc(sizes[k]) : kpage_alloc(1, PG, 0);
			if (!q)
				break;
			if (n == cap) {
				cap *= 2;
				e = realloc(e, cap * sizeof(*e));
				p = realloc(p, cap * sizeof(*p));
				l = realloc(l, cap * sizeof(*l));
				assert_true(e && p && l);
			}
			size_t len = sizes[k] ? sizes[k] : PG;
			e[n].lo = fx_phys(q);
			e[n].hi = e[n].lo + len;
			p[n] = q;
			l[n] = sizes[k];
			n++;
		}
	}
	*out = e;
	*ptrs = p;
	*lens = l;
	print_message("exhausted the pool with %zu allocations\n", n);
	return n;
}

static void release_all(void **p, size_t *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (l[i])
			kfree(p[i]);
		else
			kpage_free(p[i], 1);
	}
}

/* No handed-out object overlaps [lo, hi), and every one lies in usable
 * memory [ulo, uhi). */
static void assert_no_overlap(const struct extent *e, size_t n, uint64_t lo, uint64_t hi,
                              uint64_t ulo, uint64_t uhi)
{
	for (size_t i = 0; i < n; i++) {
		if (e[i].lo < hi && e[i].hi > lo)
			fail_msg("object [%#llx, %#llx) overlaps the metadata region [%#llx, %#llx)",
			         (unsigned long long)e[i].lo, (unsigned long long)e[i].hi,
			         (unsigned long long)lo, (unsigned long long)hi);
		if (e[i].lo < ulo || e[i].hi > uhi)
			fail_msg("object [%#llx, %#llx) outside usable memory",
			         (unsigned long long)e[i].lo, (unsigned long long)e[i].hi);
	}
}

/* The allocator's own structures lie in the region. */
static void assert_meta_inside(uint64_t base, uint64_t size)
{
	uint64_t c = fx_phys(mheap_.central[0]);
	assert_true(c >= base && c + KMEM_NUM_CLASSES * sizeof(struct mcentral) <= base + size);
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++) {
		uint64_t m = fx_phys(mcache_of(cpu));
		assert_true(m >= base && m + sizeof(struct mcache) <= base + size);
	}
	for (uint64_t i = 0; i < L1_ENTRIES; i++) {
		struct l2_chunk *ch = atomic_load(&mheap_.l1[i]);
		if (!ch)
			continue;
		uint64_t cp = fx_phys(ch);
		assert_true(cp >= base && cp + sizeof(*ch) <= base + size);
		for (uint64_t j = 0; j < L2_ENTRIES; j++) {
			struct heap_arena *a = atomic_load(&ch->arenas[j]);
			if (a) {
				uint64_t ap = fx_phys(a);
				assert_true(ap >= base && ap + sizeof(*a) <= base + size);
			}
		}
	}
}

static void test_metadata_region_default(void **state)
{
	(void)state;
	fx_reserve(FX_GIB + 64 * FX_MIB);
	const struct kmem_region r[] = {
		{16 * FX_MIB, 32 * FX_MIB, KMEM_REGION_USABLE, 0},
		{512 * FX_MIB, 8 * FX_MIB, KMEM_REGION_USABLE, 0}, /* the highest: holds it */
	};
	struct kmem_config cfg;
	fx_config(&cfg, r, 2, 2);
	size_t need = kmem_metadata_size(&cfg);
	assert_true(need > 0 && need < 8 * FX_MIB);
	assert_int_equal(fx_init(r, 2, 2), 0);
	uint64_t base, size;
	kmem_metadata_region(&base, &size);
	print_message("metadata region [%#llx, %#llx), %llu bytes\n", (unsigned long long)base,
	              (unsigned long long)(base + size), (unsigned long long)size);
	assert_int_equal(size, need);
	assert_int_equal(base % PG, 0);
	/* In the highest usable range, at its top. */
	assert_int_equal(base + size, 520 * FX_MIB);
	assert_true(base >= 512 * FX_MIB);
	assert_meta_inside(base, size);
	struct kmem_stats st = fx_stats();
	assert_int_equal(st.metadata_bytes, size);
	assert_int_equal(st.pages_managed, (40 * FX_MIB - size) / PG);
	assert_null(span_of_ptr(va(base)));

	struct extent *e;
	void **p;
	size_t *l;
	size_t n = exhaust(&e, &p, &l);
	assert_true(n > (40 * FX_MIB - size) / PG / 2);
	assert_no_overlap(e, n, base, base + size, 16 * FX_MIB, 520 * FX_MIB);
	for (size_t i = 0; i < n; i++)
		assert_true(e[i].hi <= 48 * FX_MIB || e[i].lo >= 512 * FX_MIB);
	assert_int_equal(fx_stats().pages_free, 0);
	release_all(p, l, n);
	free(e);
	free(p);
	free(l);
}

static void test_metadata_region_given(void **state)
{
	(void)state;
	fx_reserve(FX_GIB);
	const struct kmem_region r[] = {
		{16 * FX_MIB, 32 * FX_MIB, KMEM_REGION_USABLE, 0},
		{4 * FX_MIB, 4 * FX_MIB, KMEM_REGION_RESERVED, 0},
	};
	struct kmem_config cfg;
	fx_config(&cfg, r, 2, 2);
	size_t need = kmem_metadata_size(&cfg);
	assert_true(need > 0);

	/* Too small: refused. */
	assert_int_equal(fx_init_meta(r, 2, 2, 4 * FX_MIB, need - PG), -KMEM_ENOMEM);

	/* (a) In memory the map reserves: the pool is untouched by it. */
	assert_int_equal(fx_init_meta(r, 2, 2, 4 * FX_MIB, need), 0);
	uint64_t base, size;
	kmem_metadata_region(&base, &size);
	assert_int_equal(base, 4 * FX_MIB);
	assert_int_equal(size, need);
	assert_meta_inside(base, size);
	assert_int_equal(fx_stats().pages_managed, 32 * FX_MIB / PG);
	struct extent *e;
	void **p;
	size_t *l;
	size_t n = exhaust(&e, &p, &l);
	assert_no_overlap(e, n, base, base + size, 16 * FX_MIB, 48 * FX_MIB);
	release_all(p, l, n);
	free(e);
	free(p);
	free(l);
	fx_assert_all_back();

	/* (b) Inside usable memory, unaligned: excluded from the pool, whole
	 * pages around it included. */
	const uint64_t mb = 30 * FX_MIB + 100, ms = need + 1000;
	assert_int_equal(fx_init_meta(r, 2, 2, mb, ms), 0);
	kmem_metadata_region(&base, &size);
	assert_int_equal(base, mb);
	assert_int_equal(size, ms);
	assert_meta_inside(base, size);
	const uint64_t xlo = align_down(mb, PG), xhi = align_up(mb + ms, PG);
	assert_int_equal(fx_stats().pages_managed, (32 * FX_MIB - (xhi - xlo)) / PG);
	n = exhaust(&e, &p, &l);
	assert_no_overlap(e, n, xlo, xhi, 16 * FX_MIB, 48 * FX_MIB);
	/* The pool below and above the region is used. */
	bool low = false, high = false;
	for (size_t i = 0; i < n; i++) {
		low |= e[i].hi <= xlo;
		high |= e[i].lo >= xhi;
	}
	assert_true(low && high);
	assert_null(span_of_ptr(va(xlo)));
	assert_null(span_of_ptr(va(xhi - 1)));
	release_all(p, l, n);
	free(e);
	free(p);
	free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_small_spans),
		T(test_large_and_runs),
		T(test_span_across_arenas),
		cmocka_unit_test_setup_teardown(test_null_lookups, setup_holes, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_arena_of_pfn, setup_holes, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_pfn_is_managed, setup_holes, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_lazy_copy_on_first_write, setup_lazy,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_lazy_hot_add_and_check, setup_lazy,
		                                fx_teardown_all_back),
		cmocka_unit_test_teardown(test_lazy_init_1t, fx_teardown_all_back),
		cmocka_unit_test_teardown(test_arena_copy_writes_only_differences, fx_teardown_all_back),
		cmocka_unit_test(test_metadata_size_4g),
		cmocka_unit_test(test_metadata_size_sparse_1t),
		cmocka_unit_test_teardown(test_metadata_region_default, fx_teardown_all_back),
		cmocka_unit_test_teardown(test_metadata_region_given, fx_teardown_all_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
