/*
 * tests/test_hotadd.c - kmem_hot_add (mm/bootmem.c) against the pages that
 * hold its own metadata: the arena and L2-chunk metadata a hot-add carves
 * from the start of a region must never reach a client (a repeat of those
 * pages, or a larger range after a failed hot-add, is refused or handled
 * exactly), kfree/kpage_free of a pointer into them is reported as
 * metadata, a failed hot-add leaves no arena, chunk or summary behind, and
 * ranges that repeat, overlap, touch or straddle arenas add exactly their
 * new pages.  Arenas a region covers whole join as the shared all-free
 * image (as kmem_init's do) and are copied on first use into room the
 * region reserved for them.
 *
 * The proof that no metadata page is handed out: drain the heap with
 * kpage_alloc(1) and check every page against the address of every arena
 * and chunk structure of the hot-added ranges, then write each page and
 * free it (a write into live metadata would show in kmem_check or crash).
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

#include "fixture.h"
#include "host.h"
#include "mtypes.h"

#define PG KMEM_PAGE_SIZE
#define ARENA_BYTES ((uint64_t)1 << ARENA_SHIFT)
#define HEAP_MIB 32 /* the boot heap: [16 MiB, 48 MiB) */

static int setup(void **state)
{
	(void)state;
	fx_reserve(4 * FX_GIB);
	struct kmem_region r = {FX_SIMPLE_BASE, HEAP_MIB * FX_MIB, KMEM_REGION_USABLE};
	assert_int_equal(fx_init(&r, 1, 2), 0);
	return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fx_teardown_all_back)

static long hot_add(uint64_t base, uint64_t len)
{
	fx_usable(base, len);
	struct kmem_region r = {base, len, KMEM_REGION_USABLE};
	return kmem_hot_add(&r);
}

/* ------------------------------------------------------------------------
 * Metadata ranges and the drain
 */

struct vrange {
	uintptr_t lo, hi;
};

static struct vrange meta[256];
static size_t nmeta;

/* Records the arena and chunk structures behind [phys, phys+len). */
static void note_meta(uint64_t phys, uint64_t len)
{
	for (uint64_t a = align_down(phys, ARENA_BYTES); a < phys + len; a += ARENA_BYTES) {
		uint64_t pfn = a >> PAGE_SHIFT;
		struct heap_arena *ar = arena_of_pfn(pfn);
		if (ar && ar != &arena_free_image) {
			assert_true(nmeta < 256);
			meta[nmeta++] = (struct vrange){(uintptr_t)ar, (uintptr_t)ar + sizeof(*ar)};
		}
		struct l2_chunk *c = atomic_load(&mheap_.l1[pfn >> SUM_L2_TOP]);
		if (c) {
			assert_true(nmeta < 256);
			meta[nmeta++] = (struct vrange){(uintptr_t)c, (uintptr_t)c + sizeof(*c)};
		}
	}
}

static void assert_not_meta(const void *p, uint64_t len)
{
	uintptr_t lo = (uintptr_t)p, hi = lo + len;
	for (size_t i = 0; i < nmeta; i++)
		if (lo < meta[i].hi && meta[i].lo < hi)
			fail_msg("page %#llx (phys) handed out holds live metadata [%#lx, %#lx)",
			         (unsigned long long)fx_phys(p), (unsigned long)meta[i].lo,
			         (unsigned long)meta[i].hi);
}

/* Takes every free page one at a time, checks none holds metadata, writes
 * each, frees them all.  Returns the number of pages it got. */
static uint64_t drain_check(void)
{
	struct kmem_stats s0 = fx_stats();
	uint64_t free0 = s0.pages_free;
	void **pg = calloc(free0 + 1, sizeof(void *));
	assert_non_null(pg);
	uint64_t n = 0;
	while (n <= free0 && (pg[n] = kpage_alloc(1, PG, 0)) != NULL) {
		assert_not_meta(pg[n], PG);
		n++;
	}
	/* All of them, but the pool pages span descriptors took meanwhile. */
	struct kmem_stats s1 = fx_stats();
	assert_int_equal(s1.pages_free, 0);
	assert_int_equal(n, free0 - (s1.pages_metadata - s0.pages_metadata));
	for (uint64_t i = 0; i < n; i++)
		memset(pg[i], 0x5a, PG);
	fx_assert_check();
	for (uint64_t i = 0; i < n; i++)
		kpage_free(pg[i], 1);
	free(pg);
	fx_assert_no_faults();
	fx_assert_check();
	return n;
}

/* ------------------------------------------------------------------------
 * Tests
 */

/* The pages a hot-add keeps for its own metadata are the region's first;
 * they are never added again, and never handed out. */
static void test_metadata_pages_not_added_again(void **state)
{
	(void)state;
	const uint64_t base = 256 * FX_MIB, len = 32 * FX_MIB;
	struct kmem_stats s0 = fx_stats();
	long added = hot_add(base, len);
	assert_true(added > 0);
	uint64_t used = len / PG - (uint64_t)added;
	assert_true(used > 0 && used < 64);
	/* The pages holding the metadata, alone or in part, are managed. */
	assert_int_equal(hot_add(base, used * PG), -KMEM_EINVAL);
	assert_int_equal(hot_add(base, PG), -KMEM_EINVAL);
	assert_int_equal(hot_add(base + (used - 1) * PG, PG), -KMEM_EINVAL);
	assert_int_equal(hot_add(base - 4 * PG, 5 * PG), -KMEM_EINVAL);
	struct kmem_stats s1 = fx_stats();
	assert_int_equal(s1.pages_free, s0.pages_free + (uint64_t)added);
	assert_int_equal(s1.arenas, s0.arenas + 1);
	fx_assert_check();
	note_meta(base, len);
	assert_true(drain_check() + 64 > s1.pages_free);
}

/* kfree and kpage_free of a pointer into those pages: a metadata fault,
 * and nothing changes. */
static void test_free_into_metadata_reported(void **state)
{
	(void)state;
	const uint64_t base = 512 * FX_MIB;
	long added = hot_add(base, 8 * FX_MIB);
	assert_true(added > 0);
	struct kmem_stats s0 = fx_stats();
	void *m = fx_virt(base + PG);
	kfree(m);
	fx_expect_fault_at(KMEM_FAULT_METADATA, m);
	kpage_free(m, 1);
	fx_expect_fault_at(KMEM_FAULT_METADATA, m);
	kfree(fx_virt(base));
	fx_expect_fault(KMEM_FAULT_METADATA);
	struct kmem_stats s1 = fx_stats();
	assert_int_equal(s1.pages_free, s0.pages_free);
	fx_assert_check();
}

/* A hot-add that cannot hold its metadata fails and leaves nothing: no
 * arena, no pages; a later, larger hot-add of the same range then
 * carves the metadata afresh and never hands out its pages. */
static void test_failed_hot_add_leaves_nothing(void **state)
{
	(void)state;
	const uint64_t base = 768 * FX_MIB;
	struct kmem_stats s0 = fx_stats();
	assert_int_equal(hot_add(base, 16 * PG), -KMEM_ENOMEM);
	struct kmem_stats s1 = fx_stats();
	assert_int_equal(s1.arenas, s0.arenas);
	assert_int_equal(s1.pages_managed, s0.pages_managed);
	assert_null(arena_of_pfn(base >> PAGE_SHIFT));
	fx_assert_check();
	/* Room for the arena's structure but no page besides: still nothing. */
	uint64_t meta_pages = align_up(sizeof(struct heap_arena), PG) / PG;
	assert_int_equal(hot_add(base, meta_pages * PG), -KMEM_ENOMEM);
	assert_null(arena_of_pfn(base >> PAGE_SHIFT));
	/* Two new arenas, room for one: nothing either. */
	const uint64_t line = 832 * FX_MIB;
	assert_int_equal(hot_add(line - (meta_pages + 5) * PG, (meta_pages + 15) * PG), -KMEM_ENOMEM);
	assert_null(arena_of_pfn((line >> PAGE_SHIFT) - 1));
	assert_null(arena_of_pfn(line >> PAGE_SHIFT));
	s1 = fx_stats();
	assert_int_equal(s1.arenas, s0.arenas);
	assert_int_equal(s1.pages_managed, s0.pages_managed);
	fx_assert_check();
	/* Larger: accepted, the metadata pages kept back. */
	long added = hot_add(base, 4 * FX_MIB);
	assert_true(added > 0);
	assert_true((uint64_t)added < 4 * FX_MIB / PG);
	assert_int_equal(fx_stats().arenas, s0.arenas + 1);
	fx_assert_check();
	note_meta(base, 4 * FX_MIB);
	drain_check();
	/* A valid free after all that is accepted. */
	void *p = kpage_alloc(3, PG, 0);
	assert_non_null(p);
	memset(p, 0x5a, 3 * PG);
	kpage_free(p, 3);
	fx_assert_no_faults();
}

/* A region in a new L2 chunk (256 GiB lines) that cannot hold its
 * metadata leaves no chunk either. */
static void test_failed_hot_add_leaves_no_chunk(void **state)
{
	(void)state;
	fx_reserve(300 * FX_GIB);
	struct kmem_region r = {FX_SIMPLE_BASE, HEAP_MIB * FX_MIB, KMEM_REGION_USABLE};
	assert_int_equal(fx_init(&r, 1, 2), 0);
	const uint64_t base = 256 * FX_GIB;
	unsigned hull = mheap_.sum_level;
	assert_int_equal(hot_add(base, 64 * PG), -KMEM_ENOMEM);
	assert_null(atomic_load(&mheap_.l1[(base >> PAGE_SHIFT) >> SUM_L2_TOP]));
	assert_int_equal(mheap_.sum_level, hull);
	fx_assert_check();
	long added = hot_add(base, 8 * FX_MIB);
	assert_true(added > 0);
	note_meta(base, 8 * FX_MIB);
	fx_assert_check();
	drain_check();
}

/* Repeats, overlaps, adjacent ranges and a range straddling three arenas:
 * each adds exactly its new pages; metadata only for arenas never seen. */
static void test_repeat_overlap_adjacent_straddle(void **state)
{
	(void)state;
	const uint64_t G = FX_GIB, M = FX_MIB;
	struct kmem_stats s0 = fx_stats();
	/* [1 GiB - 4 MiB, 1 GiB + 68 MiB): arenas 15 (in part), 16 (whole),
	 * 17 (in part). */
	long a1 = hot_add(G - 4 * M, 72 * M);
	assert_true(a1 > 0);
	uint64_t used = 72 * M / PG - (uint64_t)a1;
	assert_true(used > 0);
	struct kmem_stats s1 = fx_stats();
	assert_int_equal(s1.arenas, s0.arenas + 3);
	assert_int_equal(s1.pages_free, s0.pages_free + (uint64_t)a1);
	fx_assert_check();
	/* Repeats and overlaps: refused, nothing changes. */
	assert_int_equal(hot_add(G - 4 * M, 72 * M), -KMEM_EINVAL);
	assert_int_equal(hot_add(G + 10 * M, M), -KMEM_EINVAL);
	assert_int_equal(hot_add(G + 67 * M, 2 * M), -KMEM_EINVAL);
	assert_int_equal(hot_add(G - 5 * M, 2 * M), -KMEM_EINVAL);
	assert_int_equal(hot_add(G - 8 * M, 100 * M), -KMEM_EINVAL);
	struct kmem_stats s2 = fx_stats();
	assert_int_equal(s2.pages_managed, s1.pages_managed);
	assert_int_equal(s2.arenas, s1.arenas);
	/* Adjacent, in arenas that exist: every page is added. */
	assert_int_equal(hot_add(G + 68 * M, 4 * M), (long)(4 * M / PG));
	assert_int_equal(hot_add(G - 8 * M, 4 * M), (long)(4 * M / PG));
	/* Adjacent in a new arena, and a gap of one page left between. */
	long a3 = hot_add(G + 128 * M + PG, 8 * M - PG);
	assert_true(a3 > 0 && (uint64_t)a3 < 8 * M / PG - 1);
	struct kmem_stats s3 = fx_stats();
	assert_int_equal(s3.arenas, s1.arenas + 1);
	assert_int_equal(s3.pages_free, s1.pages_free + 2 * 4 * M / PG + (uint64_t)a3);
	fx_assert_check();
	note_meta(G - 8 * M, 144 * M);
	assert_true(drain_check() + 64 > s3.pages_free);
}

/* Arenas the region covers whole join as the shared image, like
 * kmem_init's; the first write copies one into the room the region kept,
 * and every one of them can be copied. */
static void test_whole_arenas_join_lazily(void **state)
{
	(void)state;
	const uint64_t base = 2 * FX_GIB, len = FX_GIB; /* arenas 32..47 */
	struct kmem_stats s0 = fx_stats();
	long added = hot_add(base, len);
	assert_true(added > 0);
	uint64_t pfn0 = base >> PAGE_SHIFT;
	/* The first arena holds the metadata; the other 15 are shared. */
	assert_ptr_not_equal(arena_of_pfn(pfn0), &arena_free_image);
	for (uint64_t i = 1; i < 16; i++)
		assert_ptr_equal(arena_of_pfn(pfn0 + i * ARENA_PAGES), &arena_free_image);
	assert_int_equal(fx_stats().arenas, s0.arenas + 16);
	fx_assert_check();
	/* One page from every shared arena: each is copied. */
	unsigned long f = arch_irq_save();
	lock_acquire(&mheap_.lock);
	for (uint64_t i = 1; i < 16; i++) {
		uint64_t p = pfn0 + i * ARENA_PAGES + 7;
		pages_set_locked(p, 1, false);
		mheap_.pages_free--;
		mheap_.pages_metadata++;
	}
	lock_release(&mheap_.lock);
	arch_irq_restore(f);
	for (uint64_t i = 1; i < 16; i++)
		assert_ptr_not_equal(arena_of_pfn(pfn0 + i * ARENA_PAGES), &arena_free_image);
	fx_assert_check();
	/* The copies live in the region's own metadata pages. */
	uint64_t used = len / PG - (uint64_t)added;
	for (uint64_t i = 0; i < 16; i++) {
		uintptr_t a = (uintptr_t)arena_of_pfn(pfn0 + i * ARENA_PAGES);
		assert_true(a >= (uintptr_t)fx_virt(base) &&
		            a + sizeof(struct heap_arena) <= (uintptr_t)fx_virt(base + used * PG));
	}
	f = arch_irq_save();
	lock_acquire(&mheap_.lock);
	for (uint64_t i = 1; i < 16; i++) {
		pages_set_locked(pfn0 + i * ARENA_PAGES + 7, 1, true);
		mheap_.pages_free++;
		mheap_.pages_metadata--;
	}
	lock_release(&mheap_.lock);
	arch_irq_restore(f);
	fx_assert_check();
	/* A run through all of them. */
	uint64_t big = 15 * ARENA_PAGES;
	void *p = kpage_alloc(big, PG, 0);
	assert_non_null(p);
	assert_int_equal(fx_phys(p), base + ARENA_BYTES);
	kpage_free(p, big);
	fx_assert_check();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_metadata_pages_not_added_again),
		T(test_free_into_metadata_reported),
		T(test_failed_hot_add_leaves_nothing),
		T(test_failed_hot_add_leaves_no_chunk),
		T(test_repeat_overlap_adjacent_straddle),
		T(test_whole_arenas_join_lazily),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
