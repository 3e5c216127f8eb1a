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
 * region reserved for them (rooms of init and of several hot-adds stack);
 * 64 GiB joins with one arena written.  A random sequence of hot-adds is
 * checked against a model of the managed pages.
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

/* The boot heap [16 MiB, 48 MiB) in a window of `span`. */
static void boot_heap(uint64_t span)
{
	fx_reserve(span);
	struct kmem_region r = {FX_SIMPLE_BASE, HEAP_MIB * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(fx_init(&r, 1, 2), 0);
}

static int setup(void **state)
{
	(void)state;
	boot_heap(4 * FX_GIB);
	return 0;
}

/* Takes (free = false) or gives back [pfn, pfn + n) behind the allocator's
 * back, accounted as metadata pages so that kmem_check() balances: a write
 * into the arena, which copies a shared one. */
static void set_pages(uint64_t pfn, uint64_t n, bool free)
{
	unsigned long f = heaps_lock_all();
	pages_set_locked(pfn, n, free);
	mheap_.heap[0]->pages_free = free ? mheap_.heap[0]->pages_free + n : mheap_.heap[0]->pages_free - n;
	mheap_.heap[0]->pages_metadata = free ? mheap_.heap[0]->pages_metadata - n : mheap_.heap[0]->pages_metadata + n;
	heaps_unlock_all(f);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fx_teardown_all_back)

static long hot_add(uint64_t base, uint64_t len)
{
	fx_usable(base, len);
	struct kmem_region r = {base, len, KMEM_REGION_USABLE, 0};
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
	drain_check();
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
	boot_heap(300 * FX_GIB);
	const uint64_t base = 256 * FX_GIB;
	unsigned hull = mheap_.heap[0]->sum_level;
	assert_int_equal(hot_add(base, 64 * PG), -KMEM_ENOMEM);
	assert_null(atomic_load(&mheap_.l1[(base >> PAGE_SHIFT) >> SUM_L2_TOP]));
	assert_int_equal(mheap_.heap[0]->sum_level, hull);
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
	drain_check();
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
	for (uint64_t i = 1; i < 16; i++)
		set_pages(pfn0 + i * ARENA_PAGES + 7, 1, false);
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
	for (uint64_t i = 1; i < 16; i++)
		set_pages(pfn0 + i * ARENA_PAGES + 7, 1, true);
	fx_assert_check();
	/* A run through all of them, from the first page past the metadata. */
	uint64_t big = 15 * ARENA_PAGES;
	void *p = kpage_alloc(big, PG, 0);
	assert_non_null(p);
	assert_int_equal(fx_phys(p), base + used * PG);
	kpage_free(p, big);
	fx_assert_check();
}

/* Copy rooms stack: init's (a boot map with shared arenas) and two
 * hot-adds'.  Copying every shared arena, newest region first and then
 * in any order, uses every room and never runs out. */
static void test_copy_rooms_stack(void **state)
{
	(void)state;
	fx_reserve(4 * FX_GIB);
	/* [64 MiB, 320 MiB): arenas 1..4 whole, shared by init */
	struct kmem_region boot = {64 * FX_MIB, 256 * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(fx_init(&boot, 1, 2), 0);
	const uint64_t A = FX_GIB, B = 2 * FX_GIB; /* 4 and 3 arenas, 3 and 2 shared */
	assert_true(hot_add(A, 4 * ARENA_BYTES) > 0);
	assert_true(hot_add(B, 3 * ARENA_BYTES) > 0);
	uint64_t shared[16];
	unsigned ns = 0;
	for (uint64_t phys = 0; phys < 4 * FX_GIB; phys += ARENA_BYTES)
		if (arena_of_pfn(phys >> PAGE_SHIFT) == &arena_free_image)
			shared[ns++] = phys >> PAGE_SHIFT;
	assert_int_equal(ns, 3 + 3 + 2); /* init keeps one arena for its region */
	fx_assert_check();
	/* B's first, then the rest in an order across rooms */
	static const unsigned order[8] = {7, 6, 0, 4, 1, 5, 2, 3};
	for (unsigned i = 0; i < ns; i++)
		set_pages(shared[order[i]] + 3, 2, false);
	for (unsigned i = 0; i < ns; i++)
		assert_ptr_not_equal(arena_of_pfn(shared[i]), &arena_free_image);
	fx_assert_check();
	for (unsigned i = 0; i < ns; i++)
		set_pages(shared[i] + 3, 2, true);
	fx_assert_check();
}

/* 64 GiB in new arenas: the first arenas hold the metadata, all others
 * are shared (nothing written for them), and the region is usable at
 * both ends. */
static void test_hot_add_64g_lazy(void **state)
{
	(void)state;
	boot_heap(80 * FX_GIB);
	const uint64_t base = 8 * FX_GIB, len = 64 * FX_GIB;
	struct kmem_stats s0 = fx_stats();
	long added = hot_add(base, len);
	assert_true(added > 0);
	uint64_t used = len / PG - (uint64_t)added;
	/* 1024 arenas' worth and a chunk: about 0.22% */
	assert_true(used * PG < len / 400);
	uint64_t eager = 0;
	for (uint64_t a = 0; a < len / ARENA_BYTES; a++)
		eager += arena_of_pfn((base >> PAGE_SHIFT) + a * ARENA_PAGES) != &arena_free_image;
	assert_int_equal(eager, (used + ARENA_PAGES - 1) / ARENA_PAGES);
	struct kmem_stats s1 = fx_stats();
	assert_int_equal(s1.arenas, s0.arenas + 1024);
	assert_int_equal(s1.pages_managed, s0.pages_managed + len / PG);
	fx_assert_check();
	/* The lowest free page is past the metadata; an arena-aligned arena
	 * is the first whole shared one, copied into the region's room; the
	 * top page is usable too. */
	unsigned long f = heaps_lock_all();
	uint64_t first = pages_find_locked(mheap_.heap[0], 1, 1, base >> PAGE_SHIFT, UINT64_MAX);
	heaps_unlock_all(f);
	assert_int_equal(first, (base >> PAGE_SHIFT) + used);
	void *big = kpage_alloc(ARENA_PAGES, ARENA_BYTES, 0);
	assert_non_null(big);
	uint64_t bigpfn = fx_phys(big) >> PAGE_SHIFT;
	assert_int_equal(bigpfn, align_up((base >> PAGE_SHIFT) + used, ARENA_PAGES));
	uintptr_t copy = (uintptr_t)arena_of_pfn(bigpfn);
	assert_true(copy >= (uintptr_t)fx_virt(base) && copy < (uintptr_t)fx_virt(base + used * PG));
	uint64_t top = ((base + len) >> PAGE_SHIFT) - 1;
	set_pages(top, 1, false);
	assert_ptr_not_equal(arena_of_pfn(top), &arena_free_image);
	fx_assert_check();
	set_pages(top, 1, true);
	kpage_free(big, ARENA_PAGES);
	fx_assert_check();
}

/* Random hot-adds against a model of which pages are managed: a region
 * is refused iff it overlaps managed pages or the metadata region; an
 * accepted one makes every page of it managed, its first (whole - rc)
 * pages metadata in use and the rest free, and nothing else changes. */
static void test_random_hot_adds(void **state)
{
	(void)state;
	const uint64_t span = 16 * FX_GIB, pages = span / PG;
	fx_reserve(span);
	struct kmem_region boot = {FX_SIMPLE_BASE, HEAP_MIB * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(fx_init(&boot, 1, 2), 0);
	static uint8_t *model; /* 1 managed, 2 metadata region */
	free(model);
	model = calloc(pages, 1);
	assert_non_null(model);
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t a = p * PG;
		if (a >= align_down(mb, PG) && a < align_up(mb + ms, PG))
			model[p] = 2;
		else if (pfn_is_managed(p))
			model[p] = 1;
	}
	uint64_t rng = fx_seed();
	unsigned accepted = 0, refused = 0, nomem = 0;
	for (int i = 0; i < 400; i++) {
		rng = fx_mix64(rng);
		uint64_t len = rng % 4 == 0 ? (1 + rng % 64) * PG
		             : rng % 4 == 1 ? (1 + (rng >> 8) % 64) * FX_MIB
		                            : (1 + (rng >> 8) % 160) * 4 * FX_MIB + (rng >> 20) % 4 * PG;
		uint64_t base = align_down(FX_SIMPLE_BASE + fx_mix64(rng) % (span - len - 32 * FX_MIB), PG);
		if (rng & 1) /* near arena lines (not arena 0: page 0 is never managed) */
			base = (align_down(base, ARENA_BYTES) ?: ARENA_BYTES) + (rng >> 40) % 3 * PG;
		uint64_t np = len / PG, p0 = base / PG;
		bool overlap = false;
		for (uint64_t p = p0; p < p0 + np && !overlap; p++)
			overlap = model[p] != 0;
		struct kmem_stats s0 = fx_stats();
		long rc = hot_add(base, len);
		struct kmem_stats s1 = fx_stats();
		if (overlap) {
			if (rc != -KMEM_EINVAL)
				fail_msg("hot_add(%#llx, %#llx) over managed pages = %ld",
				         (unsigned long long)base, (unsigned long long)len, rc);
			refused++;
		} else if (rc == -KMEM_ENOMEM) {
			nomem++;
		} else {
			if (rc <= 0)
				fail_msg("hot_add(%#llx, %#llx) = %ld", (unsigned long long)base,
				         (unsigned long long)len, rc);
			uint64_t meta = np - (uint64_t)rc;
			if (s1.pages_managed != s0.pages_managed + np)
				fail_msg("hot_add(%#llx, %#llx) = %ld: managed %llu -> %llu, %llu pages",
				         (unsigned long long)base, (unsigned long long)len, rc,
				         (unsigned long long)s0.pages_managed,
				         (unsigned long long)s1.pages_managed, (unsigned long long)np);
			assert_int_equal(s1.pages_free, s0.pages_free + (uint64_t)rc);
			assert_int_equal(s1.pages_metadata, s0.pages_metadata + meta);
			for (uint64_t p = p0; p < p0 + np; p++) {
				bool is_free = (arena_of_pfn(p)->pagebits[(p & (ARENA_PAGES - 1)) >> 6] >>
				                (p & 63)) & 1;
				if (!pfn_is_managed(p) || is_free != (p >= p0 + meta))
					fail_msg("page %#llx of hot_add(%#llx, %#llx) = %ld: managed %d free %d",
					         (unsigned long long)p, (unsigned long long)base,
					         (unsigned long long)len, rc, pfn_is_managed(p), is_free);
				model[p] = 1;
			}
			accepted++;
			continue;
		}
		assert_int_equal(s1.pages_managed, s0.pages_managed);
		assert_int_equal(s1.arenas, s0.arenas);
		if (i % 16 == 0)
			fx_assert_check();
	}
	fx_assert_check();
	print_message("random hot-adds: %u accepted, %u overlapping refused, %u without room\n",
	              accepted, refused, nomem);
	assert_true(accepted > 20 && refused > 20 && nomem > 5);
	free(model);
	model = NULL;
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
		T(test_copy_rooms_stack),
		T(test_hot_add_64g_lazy),
		T(test_random_hot_adds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
