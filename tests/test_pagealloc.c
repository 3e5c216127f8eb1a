/*
 * tests/test_pagealloc.c - the page allocator (mm/pagealloc.c): first fit in
 * address order over the bitmaps with radix summaries, alignment, the
 * window [lo, hi) and the kpage_alloc ceiling, coalescing, fragmentation,
 * runs across bitmap words and arenas, a sparse multi-TiB map, the
 * highest-run search, and a randomized differential test against a brute
 * force search over the arena bitmaps.
 *
 * Most tests first "clear the board": every free page of the pool is taken
 * out of the page allocator (accounted as metadata pages, so that
 * kmem_check() still balances), and then exactly the runs a test needs are
 * given back.  Every *_locked call runs under mheap.lock with interrupts
 * off.
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

#define NONE PAGE_NONE
#define PG KMEM_PAGE_SIZE
#define HEAP_MIB 160
#define POOL_PFN (FX_SIMPLE_BASE >> PAGE_SHIFT)         /* 4096 */
#define ARENA1 ARENA_PAGES                              /* 64 MiB boundary */
#define ARENA2 (2 * ARENA_PAGES)                        /* 128 MiB boundary */

/* ------------------------------------------------------------------------
 * Locked wrappers
 */

static unsigned long hlock(void)
{
	unsigned long f = heaps_lock_all();
	return f;
}

static void hunlock(unsigned long f)
{
	heaps_unlock_all(f);
}

static uint64_t find(uint64_t n, uint64_t align, uint64_t lo, uint64_t hi)
{
	unsigned long f = hlock();
	uint64_t r = pages_find_locked(mheap_.heap[0], n, align, lo, hi);
	hunlock(f);
	return r;
}

static uint64_t find1(uint64_t n)
{
	return find(n, 1, 0, UINT64_MAX);
}

static uint64_t find_top(uint64_t n)
{
	unsigned long f = hlock();
	uint64_t r = pages_find_top_locked(mheap_.heap[0], n);
	hunlock(f);
	return r;
}

static struct psum root_sum(void)
{
	unsigned long f = hlock();
	struct psum s = sum_get(mheap_.heap[0], SUM_TOP, 0);
	hunlock(f);
	return s;
}

static bool page_is_free(uint64_t pfn)
{
	struct heap_arena *a = arena_of_pfn(pfn);
	if (!a)
		return false;
	uint64_t i = pfn & (ARENA_PAGES - 1);
	return (a->pagebits[i >> 6] >> (i & 63)) & 1;
}

/* Takes [pfn, pfn+n) out of the pool (must be free), as metadata pages. */
static void take(uint64_t pfn, uint64_t n)
{
	unsigned long f = hlock();
	bool ok = pages_all_free_locked(pfn, n);
	if (ok) {
		pages_set_locked(pfn, n, false);
		mheap_.heap[0]->pages_free -= n;
		mheap_.heap[0]->pages_metadata += n;
	}
	hunlock(f);
	if (!ok)
		fail_msg("take(%#llx, %llu): pages are not all free",
		         (unsigned long long)pfn, (unsigned long long)n);
}

/* Gives back [pfn, pfn+n) taken with take(). */
static void give(uint64_t pfn, uint64_t n)
{
	unsigned long f = hlock();
	bool ok = true;
	for (uint64_t p = pfn; p < pfn + n; p++)
		if (page_is_free(p) || !arena_of_pfn(p))
			ok = false;
	if (ok) {
		pages_set_locked(pfn, n, true);
		mheap_.heap[0]->pages_free += n;
		mheap_.heap[0]->pages_metadata -= n;
	}
	hunlock(f);
	if (!ok)
		fail_msg("give(%#llx, %llu): a page is free or unmanaged",
		         (unsigned long long)pfn, (unsigned long long)n);
}

/* ------------------------------------------------------------------------
 * Brute force: the maximal free runs, read straight from the arena
 * bitmaps in address order (arenas found through the index, so holes and
 * missing arenas break runs).
 */

struct run {
	uint64_t start, end;
};

struct runs {
	struct run *v;
	size_t n, cap;
};

static void runs_add(struct runs *r, uint64_t pfn, uint64_t n)
{
	if (r->n && r->v[r->n - 1].end == pfn) {
		r->v[r->n - 1].end += n;
		return;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 256;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
		assert_non_null(r->v);
	}
	r->v[r->n].start = pfn;
	r->v[r->n].end = pfn + n;
	r->n++;
}

static void runs_scan(struct runs *r)
{
	r->n = 0;
	for (uint64_t i1 = 0; i1 < L1_ENTRIES; i1++) {
		struct l2_chunk *c = atomic_load(&mheap_.l1[i1]);
		if (!c)
			continue;
		for (uint64_t i2 = 0; i2 < L2_ENTRIES; i2++) {
			struct heap_arena *a = atomic_load(&c->arenas[i2]);
			if (!a)
				continue;
			uint64_t base = ((i1 << L2_BITS) | i2) << SUM_ARENA_TOP;
			for (uint64_t w = 0; w < ARENA_WORDS; w++) {
				uint64_t bits = a->pagebits[w];
				uint64_t wb = base + w * 64;
				if (bits == ~0ull) {
					runs_add(r, wb, 64);
					continue;
				}
				while (bits) {
					unsigned b = (unsigned)__builtin_ctzll(bits);
					runs_add(r, wb + b, 1);
					bits &= bits - 1;
				}
			}
		}
	}
}

static void runs_free(struct runs *r)
{
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* Scratch state of the running test, freed by teardown even when an
 * assertion ends the test early. */
static struct runs scratch;

struct held {
	uint64_t pfn, n;
};

struct diff {
	struct runs r;
	struct held *h;
	size_t nh, caph;
	uint64_t lo, hi; /* pfn range the random choices use */
	uint64_t rng;
	unsigned long queries;
	bool single; /* mostly single pages, at run edges and aligned spots */
};

static struct diff cur_diff;

static uint64_t bf_find(const struct runs *r, uint64_t n, uint64_t align, uint64_t lo,
                        uint64_t hi)
{
	if (align == 0)
		align = 1;
	if (n == 0 || lo >= hi)
		return NONE;
	for (size_t i = 0; i < r->n; i++) {
		uint64_t s = r->v[i].start > lo ? r->v[i].start : lo;
		uint64_t e = r->v[i].end < hi ? r->v[i].end : hi;
		if (s >= e)
			continue;
		uint64_t a = align_up(s, align);
		if (a >= s && a + n <= e)
			return a;
	}
	return NONE;
}

static uint64_t bf_top(const struct runs *r, uint64_t n)
{
	if (n == 0)
		return NONE;
	for (size_t i = r->n; i-- > 0;)
		if (r->v[i].end - r->v[i].start >= n)
			return r->v[i].end - n;
	return NONE;
}

static uint64_t bf_max(const struct runs *r)
{
	uint64_t m = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].end - r->v[i].start > m)
			m = r->v[i].end - r->v[i].start;
	return m;
}

/* Takes every free page of the pool. */
static void clear_board(void)
{
	runs_scan(&scratch);
	for (size_t i = 0; i < scratch.n; i++)
		take(scratch.v[i].start, scratch.v[i].end - scratch.v[i].start);
	runs_scan(&scratch);
	assert_int_equal(scratch.n, 0);
	assert_int_equal(root_sum().max, 0);
	assert_int_equal(find1(1), NONE);
}

static uint64_t phys_of_run(const void *p)
{
	return fx_phys(p) >> PAGE_SHIFT;
}

/* ------------------------------------------------------------------------
 * Fixtures
 */

static const struct fx_heap heap = {HEAP_MIB, 2};

static int teardown(void **state)
{
	runs_free(&scratch);
	free(cur_diff.h);
	runs_free(&cur_diff.r);
	memset(&cur_diff, 0, sizeof(cur_diff));
	return fx_teardown_intact(state);
}

#define T(fn) FX_TEST(fn, &heap, teardown)

/* ------------------------------------------------------------------------
 * Tests
 */

/* The pool as built: one run from the first pool page to the metadata
 * region; first fit returns its start, top fit its end. */
static void test_initial_pool(void **state)
{
	(void)state;
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	uint64_t lo = POOL_PFN, hi = mb >> PAGE_SHIFT;
	assert_int_equal(mb + ms, FX_SIMPLE_BASE + HEAP_MIB * FX_MIB);
	runs_scan(&scratch);
	assert_int_equal(scratch.n, 1);
	assert_int_equal(scratch.v[0].start, lo);
	assert_int_equal(scratch.v[0].end, hi);
	struct psum root = root_sum();
	assert_int_equal(root.max, hi - lo);
	assert_int_equal(root.start, 0);
	assert_int_equal(root.end, 0);
	assert_int_equal(find1(1), lo);
	assert_int_equal(find1(hi - lo), lo);
	assert_int_equal(find1(hi - lo + 1), NONE);
	assert_int_equal(find_top(1), hi - 1);
	assert_int_equal(find_top(hi - lo), lo);
	assert_int_equal(find_top(hi - lo + 1), NONE);
	assert_int_equal(find1(0), NONE);
	assert_int_equal(find_top(0), NONE);
	fx_assert_check();
}

/* Runs of N pages are found first-fit in address order. */
static void test_first_fit_address_order(void **state)
{
	(void)state;
	clear_board();
	const uint64_t A = POOL_PFN + 100, B = POOL_PFN + 1000, C = POOL_PFN + 5000,
	               D = POOL_PFN + 9000;
	give(D, 100);
	give(C, 5);
	give(A, 3);
	give(B, 10);
	fx_assert_check();
	assert_int_equal(find1(1), A);
	assert_int_equal(find1(3), A);
	assert_int_equal(find1(4), B);
	assert_int_equal(find1(5), B);
	assert_int_equal(find1(10), B);
	assert_int_equal(find1(11), D);
	assert_int_equal(find1(100), D);
	assert_int_equal(find1(101), NONE);
	assert_int_equal(root_sum().max, 100);

	/* kpage_alloc takes the lowest fitting run, and the next one. */
	void *p = kpage_alloc(4, PG, 0);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), B);
	void *q = kpage_alloc(4, PG, 0);
	assert_non_null(q);
	assert_int_equal(phys_of_run(q), B + 4);
	void *s = kpage_alloc(3, PG, 0);
	assert_non_null(s);
	assert_int_equal(phys_of_run(s), A);
	void *t = kpage_alloc(3, PG, 0);
	assert_non_null(t);
	assert_int_equal(phys_of_run(t), C); /* B has 2 left, C has 5 */
	assert_int_equal(find1(2), B + 8);
	fx_assert_check();
	kpage_free(p, 4);
	kpage_free(q, 4);
	kpage_free(s, 3);
	kpage_free(t, 3);
	assert_int_equal(find1(10), B);
	assert_int_equal(find1(4), B);
	assert_int_equal(find1(3), A);
	fx_assert_check();
}

/* Alignment 1..256 pages is honoured, by pages_find_locked and kpage_alloc. */
static void test_alignment(void **state)
{
	(void)state;
	clear_board();
	const uint64_t X = 8192; /* 32 MiB: a multiple of 256 pages */
	const uint64_t len = 2048;
	give(X + 1, len);
	for (uint64_t al = 1; al <= 256; al <<= 1) {
		uint64_t want = align_up(X + 1, al);
		uint64_t room = X + 1 + len - want;
		assert_int_equal(find(5, al, 0, UINT64_MAX), want);
		assert_int_equal(find(room, al, 0, UINT64_MAX), want);
		assert_int_equal(find(room + 1, al, 0, UINT64_MAX), NONE);
		assert_int_equal(find(1, al, X + 2, UINT64_MAX), align_up(X + 2, al));
		void *p = kpage_alloc(5, al * PG, 0);
		assert_non_null(p);
		assert_int_equal(phys_of_run(p), want);
		assert_int_equal(fx_phys(p) % (al * PG), 0);
		kpage_free(p, 5);
	}
	/* Alignment below a page means a page. */
	void *p = kpage_alloc(1, 64, 0);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), X + 1);
	kpage_free(p, 1);
	/* Align 0 behaves like 1. */
	assert_int_equal(find(3, 0, 0, UINT64_MAX), X + 1);

	/* A short misaligned run first: found unaligned, skipped aligned. */
	const uint64_t Y = 4096 + 256;
	give(Y + 1, 8);
	assert_int_equal(find(8, 1, 0, UINT64_MAX), Y + 1);
	assert_int_equal(find(7, 2, 0, UINT64_MAX), Y + 2);
	assert_int_equal(find(8, 2, 0, UINT64_MAX), X + 2);
	assert_int_equal(find(4, 8, 0, UINT64_MAX), X + 8);
	assert_int_equal(find(1, 256, 0, UINT64_MAX), X + 256);
	fx_assert_check();

	/* Alignment larger than any run start: the first aligned page. */
	void *big = kpage_alloc(256, 256 * PG, 0);
	assert_non_null(big);
	assert_int_equal(phys_of_run(big), X + 256);
	kpage_free(big, 256);
	fx_assert_check();
}

/* The window [lo, hi): a run must start at or above lo and end at or
 * below hi; kpage_alloc's max_phys ceiling likewise. */
static void test_window_and_ceiling(void **state)
{
	(void)state;
	clear_board();
	const uint64_t P = POOL_PFN + 700, L = POOL_PFN + 10;
	give(P, 100);
	assert_int_equal(find(50, 1, 0, P + 49), NONE);
	assert_int_equal(find(50, 1, 0, P + 50), P);
	assert_int_equal(find(50, 1, P + 30, UINT64_MAX), P + 30);
	assert_int_equal(find(50, 1, P + 50, UINT64_MAX), P + 50);
	assert_int_equal(find(50, 1, P + 51, UINT64_MAX), NONE);
	assert_int_equal(find(10, 1, P + 95, P + 200), NONE);
	assert_int_equal(find(5, 1, P + 95, P + 200), P + 95);
	assert_int_equal(find(1, 1, P + 40, P + 40), NONE);
	assert_int_equal(find(1, 1, P + 41, P + 40), NONE);
	assert_int_equal(find(1, 1, P + 40, P + 41), P + 40);
	assert_int_equal(find(8, 16, P + 1, UINT64_MAX), align_up(P + 1, 16));
	assert_int_equal(find(100, 1, P, P + 100), P);
	assert_int_equal(find(100, 1, P, P + 99), NONE);
	assert_int_equal(find(100, 1, P + 1, P + 101), NONE);
	/* hi far above the physical space is clipped. */
	assert_int_equal(find(100, 1, 0, UINT64_MAX), P);
	/* A window entirely outside memory. */
	assert_int_equal(find(1, 1, 1ull << 40, UINT64_MAX), NONE);

	/* kpage_alloc with max_phys: the run must end at or below it. */
	give(L, 4);
	void *p = kpage_alloc(8, PG, (P + 8) * PG);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), P);
	kpage_free(p, 8);
	assert_null(kpage_alloc(8, PG, (P + 8) * PG - 1));
	assert_null(kpage_alloc(8, PG, P * PG));
	p = kpage_alloc(8, PG, (P + 8) * PG + PG - 1); /* not page aligned */
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), P);
	kpage_free(p, 8);
	p = kpage_alloc(2, PG, (L + 2) * PG);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), L);
	kpage_free(p, 2);
	assert_null(kpage_alloc(1, PG, L * PG));
	assert_null(kpage_alloc(1, PG, PG - 1)); /* below one page */
	assert_null(kpage_alloc(5, PG, (L + 4) * PG)); /* L run too short */
	p = kpage_alloc(5, PG, (P + 5) * PG);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), P);
	kpage_free(p, 5);
	/* Ceiling and alignment together. */
	p = kpage_alloc(4, 32 * PG, (P + 100) * PG);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), align_up(P, 32));
	kpage_free(p, 4);
	const uint64_t a256 = align_up(P, 256);
	assert_true(a256 + 4 <= P + 100);
	p = kpage_alloc(4, 256 * PG, (a256 + 4) * PG);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), a256);
	kpage_free(p, 4);
	assert_null(kpage_alloc(4, 256 * PG, (a256 + 4) * PG - 1));
	assert_null(kpage_alloc(4, 512 * PG, 0)); /* no 512-aligned page in either run */
	fx_assert_check();
}

/* Freed neighbours coalesce: the bigger run is found again. */
static void test_coalescing(void **state)
{
	(void)state;
	/* Plain, straddling a word, straddling an arena boundary. */
	const uint64_t starts[] = {POOL_PFN + 3000, 2 * 4096 + 64 * 9 - 15, ARENA1 - 17};
	for (unsigned k = 0; k < 3; k++) {
		clear_board();
		const uint64_t P = starts[k];
		give(P, 30);
		void *a = kpage_alloc(10, PG, 0), *b = kpage_alloc(10, PG, 0),
		     *c = kpage_alloc(10, PG, 0);
		assert_non_null(a);
		assert_non_null(b);
		assert_non_null(c);
		assert_int_equal(phys_of_run(a), P);
		assert_int_equal(phys_of_run(b), P + 10);
		assert_int_equal(phys_of_run(c), P + 20);
		assert_int_equal(find1(1), NONE);
		kpage_free(b, 10);
		assert_int_equal(find1(10), P + 10);
		assert_int_equal(find1(11), NONE);
		kpage_free(a, 10);
		assert_int_equal(find1(20), P);
		assert_int_equal(find1(21), NONE);
		kpage_free(c, 10);
		assert_int_equal(find1(30), P);
		assert_int_equal(find1(31), NONE);
		assert_int_equal(root_sum().max, 30);
			runs_scan(&scratch);
		assert_int_equal(scratch.n, 1);
		assert_int_equal(scratch.v[0].start, P);
		assert_int_equal(scratch.v[0].end, P + 30);
			fx_assert_check();
	}
}

/* A checkerboard of used pages: a 2-page request fails until a neighbour
 * is freed. */
static void test_fragmentation(void **state)
{
	(void)state;
	clear_board();
	const uint64_t Q = ARENA1 - 1024; /* straddles an arena boundary too */
	for (uint64_t i = 0; i < 2048; i += 2)
		give(Q + i, 1);
	fx_assert_check();
	assert_int_equal(root_sum().max, 1);
	assert_int_equal(find1(1), Q);
	assert_int_equal(find1(2), NONE);
	assert_int_equal(find(1, 2, 0, UINT64_MAX), Q);
	assert_int_equal(find(1, 1, Q + 1, UINT64_MAX), Q + 2);
	assert_int_equal(find_top(1), Q + 2046);
	assert_int_equal(find_top(2), NONE);
	assert_null(kpage_alloc(2, PG, 0));
	assert_int_equal(fx_fault_count(), 0);

	give(Q + 1023, 1); /* a neighbour: Q+1022..Q+1024 are now free */
	assert_int_equal(find1(2), Q + 1022);
	assert_int_equal(find1(3), Q + 1022);
	assert_int_equal(find1(4), NONE);
	assert_int_equal(find(2, 2, 0, UINT64_MAX), Q + 1022);
	assert_int_equal(find(2, 4, 0, UINT64_MAX), NONE); /* Q+1022 is not 4-aligned */
	assert_int_equal(find_top(3), Q + 1022);
	void *p = kpage_alloc(3, PG, 0);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), Q + 1022);
	/* The run straddles the arena boundary: every page maps to it. */
	for (unsigned i = 0; i < 3; i++)
		assert_ptr_equal(span_of_pfn(Q + 1022 + i), span_of_ptr(p));
	assert_int_equal(find1(2), NONE);
	kpage_free(p, 3);
	assert_int_equal(find1(3), Q + 1022);
	fx_assert_check();
}

/* Runs crossing 64-page words and 64 MiB arena boundaries. */
static void test_word_and_arena_crossing(void **state)
{
	(void)state;
	clear_board();
	const uint64_t W = POOL_PFN + 64 * 37; /* a word boundary */
	give(W - 10, 20);
	assert_int_equal(find1(20), W - 10);
	assert_int_equal(find1(21), NONE);
	assert_int_equal(find(16, 16, 0, UINT64_MAX), NONE);
	assert_int_equal(find(8, 8, 0, UINT64_MAX), W - 8);
	assert_int_equal(find_top(20), W - 10);

	const uint64_t V = POOL_PFN + 64 * 100; /* three words and a bit */
	give(V - 1, 130);
	assert_int_equal(find1(21), V - 1);
	assert_int_equal(find1(130), V - 1);
	assert_int_equal(find1(131), NONE);
	assert_int_equal(find(128, 64, 0, UINT64_MAX), V);

	give(ARENA1 - 3, 8);
	assert_int_equal(find1(131), NONE);
	assert_int_equal(find(8, 1, V + 129, UINT64_MAX), ARENA1 - 3);
	assert_int_equal(find(4, 4, ARENA1 - 10, UINT64_MAX), ARENA1);
	assert_int_equal(find_top(8), ARENA1 - 3);

	give(ARENA2 - 100, 400);
	assert_int_equal(find1(131), ARENA2 - 100);
	assert_int_equal(find1(400), ARENA2 - 100);
	assert_int_equal(find1(401), NONE);
	assert_int_equal(find_top(1), ARENA2 + 299);
	assert_int_equal(find_top(400), ARENA2 - 100);
	fx_assert_check();

	/* A run covering a whole arena and a bit of both neighbours. */
	take(ARENA1 - 3, 8);
	take(ARENA2 - 100, 400);
	give(ARENA1 - 5, ARENA_PAGES + 10);
	assert_int_equal(find1(ARENA_PAGES + 10), ARENA1 - 5);
	assert_int_equal(find1(ARENA_PAGES + 11), NONE);
	assert_int_equal(find(ARENA_PAGES, ARENA_PAGES, 0, UINT64_MAX), ARENA1);
	assert_int_equal(find_top(ARENA_PAGES + 10), ARENA1 - 5);
	assert_int_equal(root_sum().max, ARENA_PAGES + 10);
	void *p = kpage_alloc(ARENA_PAGES + 10, PG, 0);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), ARENA1 - 5);
	struct mspan *s = span_of_ptr(p);
	assert_non_null(s);
	for (uint64_t i = 0; i < ARENA_PAGES + 10; i += 97)
		assert_ptr_equal(span_of_pfn(ARENA1 - 5 + i), s);
	assert_ptr_equal(span_of_pfn(ARENA2 + 4), s);
	assert_null(span_of_pfn(ARENA2 + 5));
	kpage_free(p, ARENA_PAGES + 10);
	assert_null(span_of_pfn(ARENA1));
	assert_int_equal(find1(ARENA_PAGES + 10), ARENA1 - 5);
	fx_assert_check();
}

/* pages_find_top_locked returns the highest run. */
static void test_find_top(void **state)
{
	(void)state;
	clear_board();
	const uint64_t a = POOL_PFN + 50, b = ARENA1 - 7, c = ARENA2 + 900;
	give(a, 5);
	give(b, 20);
	give(c, 3);
	assert_int_equal(find_top(1), c + 2);
	assert_int_equal(find_top(3), c);
	assert_int_equal(find_top(4), b + 16);
	assert_int_equal(find_top(20), b);
	assert_int_equal(find_top(21), NONE);
	give(c + 3, 1);
	assert_int_equal(find_top(4), c);
	give(c - 64, 64);                 /* joins c: a run of 68 from c-64 */
	assert_int_equal(find_top(68), c - 64);
	assert_int_equal(find_top(69), NONE);
	assert_int_equal(find_top(5), c - 1);
	/* First fit and top fit differ. */
	assert_int_equal(find1(5), a);
	runs_scan(&scratch);
	for (uint64_t n = 1; n <= 70; n++)
		assert_int_equal(find_top(n), bf_top(&scratch, n));
	fx_assert_check();
}

/* ------------------------------------------------------------------------
 * Leaf summaries and the hull
 */

/* sum_of_word against a bit-by-bit count, for words with runs of every
 * length at every position (and random ones). */
static void test_word_summary(void **state)
{
	(void)state;
	uint64_t x = 0x5eed;
	for (unsigned k = 0; k < 200000; k++) {
		uint64_t w;
		if (k < 64 * 65) {
			unsigned pos = k / 65, len = k % 65;
			w = len == 64 ? ~0ull : (((1ull << len) - 1) << pos);
			if (k & 1)
				w = ~w;
		} else {
			x = fx_mix64(x);
			w = x & fx_mix64(x ^ k);
			if (k & 1)
				w |= fx_mix64(x + 1);
		}
		uint64_t start = 0, end = 0, max = 0, run = 0;
		while (start < 64 && ((w >> start) & 1))
			start++;
		while (end < 64 && ((w >> (63 - end)) & 1))
			end++;
		for (unsigned b = 0; b < 64; b++) {
			run = ((w >> b) & 1) ? run + 1 : 0;
			if (run > max)
				max = run;
		}
		struct psum got = sum_of_word(w);
		if (got.start != start || got.max != max || got.end != end)
			fail_msg("sum_of_word(%#llx) = {%llu, %llu, %llu}, want {%llu, %llu, %llu}",
			         (unsigned long long)w, (unsigned long long)got.start,
			         (unsigned long long)got.max, (unsigned long long)got.end,
			         (unsigned long long)start, (unsigned long long)max,
			         (unsigned long long)end);
		/* The aligned summaries: the longest run from a multiple of 2^a. */
		for (unsigned a = 1; a < 6; a++) {
			uint64_t want = 0;
			for (unsigned b = 0; b < 64; b += 1u << a) {
				uint64_t r = 0;
				while (b + r < 64 && ((w >> (b + r)) & 1))
					r++;
				if (r > want)
					want = r;
			}
			uint64_t have = amax_of_word(w, a);
			if (have != want)
				fail_msg("amax_of_word(%#llx, %u) = %llu, want %llu", (unsigned long long)w,
				         a, (unsigned long long)have, (unsigned long long)want);
		}
	}
}

/* A 32 MiB pool at 16 MiB (inside arena 0) in a window reaching past
 * 300 GiB. */
static int setup_hull(void **state)
{
	(void)state;
	fx_reserve(300 * FX_GIB + 128 * FX_MIB);
	const struct kmem_region r = {FX_SIMPLE_BASE, 32 * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(fx_init(&r, 1, 2), 0);
	return 0;
}

/* The summaries are kept up to the hull (the smallest power-of-two page
 * range from 0 holding all managed memory); hot-add above it raises the
 * hull, and the search and the derived upper levels follow. */
static void test_hull_hot_add(void **state)
{
	(void)state;
	/* [16 MiB, 48 MiB): the lowest hull, one arena (2^14 pages). */
	assert_int_equal(mheap_.heap[0]->sum_level, SUM_ARENA_TOP);
	struct psum root = sum_get(mheap_.heap[0], SUM_ARENA_TOP, 0);
	struct psum up = sum_get(mheap_.heap[0], SUM_TOP, 0);
	assert_int_equal(up.start, root.start);
	assert_int_equal(up.max, root.max);
	assert_int_equal(up.end, 0);
	assert_int_equal(sum_get(mheap_.heap[0], 20, 1).max, 0);
	uint64_t free0 = fx_stats().pages_free;
	/* 64 MiB at 300 GiB: the hull grows to 2^27 pages. */
	const uint64_t at = 300 * FX_GIB;
	fx_usable(at, 64 * FX_MIB);
	const struct kmem_region add = {at, 64 * FX_MIB, KMEM_REGION_USABLE, 0};
	long got = kmem_hot_add(&add);
	assert_true(got > 0);
	assert_int_equal(mheap_.heap[0]->sum_level, 27);
	fx_assert_check();
	uint64_t pfn = at >> PAGE_SHIFT;
	/* The new run is found: larger than anything below, at its top, and
	 * with a window. */
	uint64_t big = (uint64_t)got;
	assert_true(big > root.max);
	assert_int_equal(root_sum().max, big);
	assert_int_equal(fx_stats().pages_free, free0 + big);
	uint64_t where = find1(big);
	assert_int_equal(where + big, pfn + (64 * FX_MIB >> PAGE_SHIFT));
	assert_int_equal(find(1, 1, pfn - 5, UINT64_MAX), where);
	assert_int_equal(find_top(1), where + big - 1);
	take(where, big);
	fx_assert_check();
	give(where, big);
	fx_assert_check();
	/* A pool that now spans the hull keeps the low first fit. */
	assert_int_equal(find1(1), POOL_PFN);
}

/* ------------------------------------------------------------------------
 * Aligned search on a worst-case fragmented heap: its cost in summary
 * nodes visited (pages_find_steps()) grows with the number of tree levels,
 * not with the heap.  Every fourth page is in use (pfn % 4 == 0), the
 * others free: every node's longest run is 3, so a search that prunes by
 * the longest run alone must look into every word for (1 page, align 2)
 * ... (3 pages, align 4), and none of those fits.  The top 64 aligned
 * pages stay free, so a fitting request is found only at the very end.
 */

static uint64_t steps_of(uint64_t n, uint64_t al, uint64_t *where)
{
	unsigned long f = hlock();
	uint64_t s0 = pages_find_steps();
	*where = pages_find_locked(mheap_.heap[0], n, al, 1, UINT64_MAX);
	uint64_t s = pages_find_steps() - s0;
	hunlock(f);
	return s;
}

struct frag_cost {
	unsigned levels;     /* hull level - 5: levels the search walks */
	uint64_t worst;      /* most steps of the queries below */
};

static struct frag_cost frag_measure(uint64_t mib)
{
	fx_simple(mib, 1);
	clear_board();
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	uint64_t lo = align_up(POOL_PFN, 4), top = align_down(mb >> PAGE_SHIFT, 64) - 64;
	unsigned long f = hlock();
	for (uint64_t p = lo; p < top; p += 4) {
		pages_set_locked(p + 1, 3, true);
		mheap_.heap[0]->pages_free += 3;
		mheap_.heap[0]->pages_metadata -= 3;
	}
	hunlock(f);
	give(top, 64);
	fx_assert_check();
	/* Free runs: [lo + 4i + 1, lo + 4i + 4) and [top - 3, top + 64). */
	const struct {
		uint64_t n, align, want;
	} q[] = {
		{1, 4, top}, {3, 4, top}, {2, 4, top}, {1, 8, top}, {3, 8, top}, {4, 4, top},
		{64, 64, top}, {2, 2, lo + 2}, {1, 2, lo + 2}, {3, 1, lo + 1},
		{66, 4, NONE}, {1, 1ull << 20, NONE},
	};
	struct frag_cost c = {mheap_.heap[0]->sum_level - SUM_LEAF_LEVEL + 1, 0};
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		uint64_t where;
		uint64_t s = steps_of(q[i].n, q[i].align, &where);
		if (where != q[i].want)
			fail_msg("find(%llu, align %llu) = %#llx, want %#llx", (unsigned long long)q[i].n,
			         (unsigned long long)q[i].align, (unsigned long long)where,
			         (unsigned long long)q[i].want);
		if (s > c.worst)
			c.worst = s;
	}
	print_message("fragmented %4llu MiB heap: %u levels, aligned search worst %llu nodes\n",
	              (unsigned long long)mib, c.levels, (unsigned long long)c.worst);
	/* Give back what was taken so the teardown finds the heap whole. */
	runs_scan(&scratch);
	f = hlock();
	for (uint64_t p = lo; p < top; p += 4) {
		pages_set_locked(p + 1, 3, false);
		mheap_.heap[0]->pages_free -= 3;
		mheap_.heap[0]->pages_metadata += 3;
	}
	hunlock(f);
	take(top, 64);
	runs_scan(&scratch);
	assert_int_equal(scratch.n, 0);
	return c;
}

/* The bound proved in pagealloc.c ("Cost"): a search enters at most 6
 * nodes per level and reads at most 7 summaries for each, plus 7 at the
 * root: 48 steps per level walked. */
#define FRAG_NODES_PER_LEVEL 48

static void test_aligned_search_logarithmic(void **state)
{
	(void)state;
	static const uint64_t mibs[] = {64, 256, 1024};
	struct frag_cost c[3];
	for (int i = 0; i < 3; i++) {
		c[i] = frag_measure(mibs[i]);
		if (c[i].worst > FRAG_NODES_PER_LEVEL * (uint64_t)c[i].levels + 7)
			fail_msg("%llu MiB: %llu nodes for %u levels, bound %u per level",
			         (unsigned long long)mibs[i], (unsigned long long)c[i].worst,
			         c[i].levels, FRAG_NODES_PER_LEVEL);
		fx_teardown_intact(NULL);
	}
	/* 16 times the heap, 4 more levels: the cost grows by levels. */
	assert_true(c[2].worst <= c[0].worst + FRAG_NODES_PER_LEVEL * (c[2].levels - c[0].levels));
	fx_simple(HEAP_MIB, 2); /* for the teardown */
}

/* ------------------------------------------------------------------------
 * Randomized differential test
 */


static uint64_t rnd(struct diff *d)
{
	d->rng = fx_mix64(d->rng);
	return d->rng;
}

static uint64_t rnd_n(struct diff *d)
{
	uint64_t x = rnd(d) % 100;
	if (x < 60)
		return 1 + rnd(d) % 8;
	if (x < 90)
		return 1 + rnd(d) % 100;
	return 1 + rnd(d) % 1200;
}

/* A random pfn: uniform over the range, or near a current free run (the
 * sparse map is mostly holes). */
static uint64_t rnd_pfn(struct diff *d)
{
	if (d->r.n && rnd(d) % 2) {
		const struct run *r = &d->r.v[rnd(d) % d->r.n];
		uint64_t p = r->start + rnd(d) % (r->end - r->start + 64);
		return p >= 32 ? p - 32 : p;
	}
	return d->lo + rnd(d) % (d->hi - d->lo);
}

static void hold(struct diff *d, uint64_t pfn, uint64_t n)
{
	if (d->nh == d->caph) {
		d->caph = d->caph ? 2 * d->caph : 256;
		d->h = realloc(d->h, d->caph * sizeof(*d->h));
		assert_non_null(d->h);
	}
	d->h[d->nh].pfn = pfn;
	d->h[d->nh].n = n;
	d->nh++;
}

/* Alignment in pages: mostly small, sometimes up to 2^20 (summary levels
 * above the arenas). */
static uint64_t rnd_align(struct diff *d)
{
	return 1ull << (rnd(d) % 4 ? rnd(d) % 9 : rnd(d) % 21);
}

/* Brute force amax_k of node (level, idx): the longest free run inside it
 * starting at a multiple of 2^k. */
static uint64_t bf_amax(const struct runs *r, unsigned level, uint64_t idx, unsigned k)
{
	uint64_t lo = idx << level, hi = lo + (1ull << level), best = 0;
	for (size_t i = 0; i < r->n; i++) {
		uint64_t s = r->v[i].start > lo ? r->v[i].start : lo;
		uint64_t e = r->v[i].end < hi ? r->v[i].end : hi;
		if (s >= e)
			continue;
		uint64_t a = align_up(s, 1ull << k);
		if (a < e && e - a > best)
			best = e - a;
	}
	return best;
}

/* A random node on the path to a random free run (or anywhere), and a
 * random alignment: its aligned summary against brute force. */
static void diff_amax(struct diff *d)
{
	unsigned top = mheap_.heap[0]->sum_level;
	unsigned level = SUM_LEAF_LEVEL + 1 + (unsigned)(rnd(d) % (top - SUM_LEAF_LEVEL));
	uint64_t idx = rnd_pfn(d) >> level;
	unsigned k = (unsigned)(rnd(d) % (level + 2));
	unsigned long f = hlock();
	uint64_t got = amax_get_locked(mheap_.heap[0], level, idx, k);
	hunlock(f);
	uint64_t want = bf_amax(&d->r, level, idx, k);
	if (got != want)
		fail_msg("amax(level %u, idx %#llx, k %u) = %llu, brute force %llu", level,
		         (unsigned long long)idx, k, (unsigned long long)got,
		         (unsigned long long)want);
}

static void diff_query(struct diff *d)
{
	diff_amax(d);
	uint64_t n = rnd_n(d);
	uint64_t al = rnd_align(d);
	uint64_t lo = 0, hi = UINT64_MAX;
	switch (rnd(d) % 4) {
	case 0:
		break;
	case 1:
		lo = rnd_pfn(d);
		break;
	case 2:
		hi = rnd_pfn(d);
		break;
	default:
		lo = rnd_pfn(d);
		hi = lo + rnd(d) % (4 * n + 512);
		break;
	}
	uint64_t got = find(n, al, lo, hi);
	uint64_t want = bf_find(&d->r, n, al, lo, hi);
	if (got != want)
		fail_msg("pages_find(n=%llu, align=%llu, lo=%#llx, hi=%#llx) = %#llx, brute force %#llx",
		         (unsigned long long)n, (unsigned long long)al, (unsigned long long)lo,
		         (unsigned long long)hi, (unsigned long long)got, (unsigned long long)want);
	uint64_t tn = rnd_n(d);
	got = find_top(tn);
	want = bf_top(&d->r, tn);
	if (got != want)
		fail_msg("pages_find_top(%llu) = %#llx, brute force %#llx", (unsigned long long)tn,
		         (unsigned long long)got, (unsigned long long)want);
	d->queries += 2;
}

/* A free page where a single page changes the summaries' edges: a run's
 * first or last page, one at a multiple of 2^j inside a run (the aligned
 * lanes), or the page before such a multiple (a node's last page). */
static uint64_t rnd_single(struct diff *d)
{
	if (!d->r.n)
		return rnd_pfn(d);
	const struct run *r = &d->r.v[rnd(d) % d->r.n];
	uint64_t len = r->end - r->start, m = 1ull << (rnd(d) % 15);
	uint64_t a = align_up(r->start + rnd(d) % len, m);
	switch (rnd(d) % 5) {
	case 0:
		return r->start;
	case 1:
		return r->end - 1;
	case 2:
		return a;
	case 3:
		return a - 1;
	default:
		return r->start + rnd(d) % len;
	}
}

/* One page taken at a telling spot, or one page given back from inside a
 * held block (which splits it). */
static void diff_single(struct diff *d)
{
	if (rnd(d) % 2 || !d->nh) {
		uint64_t p = rnd_single(d);
		if (page_is_free(p)) {
			take(p, 1);
			hold(d, p, 1);
		}
		return;
	}
	size_t i = rnd(d) % d->nh;
	struct held h = d->h[i];
	uint64_t o = rnd(d) % h.n;
	give(h.pfn + o, 1);
	d->h[i].n = o;
	if (h.n - o - 1)
		hold(d, h.pfn + o + 1, h.n - o - 1);
	if (!o) {
		d->h[i] = d->h[d->nh - 1];
		d->nh--;
	}
}

/* One random state change. */
static void diff_step(struct diff *d)
{
	if (d->single && rnd(d) % 4) {
		diff_single(d);
		return;
	}
	uint64_t op = rnd(d) % 10;
	if (op < 4) {
		/* Allocate what first fit finds (it must match brute force). */
		uint64_t n = rnd_n(d), al = rnd_align(d);
		uint64_t lo = rnd(d) % 3 ? 0 : rnd_pfn(d);
		uint64_t got = find(n, al, lo, UINT64_MAX);
		uint64_t want = bf_find(&d->r, n, al, lo, UINT64_MAX);
		if (got != want)
			fail_msg("step find(n=%llu, align=%llu, lo=%#llx) = %#llx, brute force %#llx",
			         (unsigned long long)n, (unsigned long long)al,
			         (unsigned long long)lo, (unsigned long long)got,
			         (unsigned long long)want);
		if (got != NONE) {
			take(got, n);
			hold(d, got, n);
		}
	} else if (op < 6) {
		/* Take an arbitrary free range starting at a random free page. */
		uint64_t p = rnd_pfn(d);
		if (!page_is_free(p))
			return;
		uint64_t n = 1, want = rnd_n(d);
		while (n < want && page_is_free(p + n))
			n++;
		take(p, n);
		hold(d, p, n);
	} else if (op < 7) {
		/* Top fit, as the metadata grows. */
		uint64_t n = rnd_n(d);
		uint64_t got = find_top(n), want = bf_top(&d->r, n);
		assert_int_equal(got, want);
		if (got != NONE) {
			take(got, n);
			hold(d, got, n);
		}
	} else if (d->nh) {
		/* Give back a random held block, or a piece of it. */
		size_t i = rnd(d) % d->nh;
		struct held h = d->h[i];
		if (h.n > 2 && rnd(d) % 3 == 0) {
			uint64_t cut = 1 + rnd(d) % (h.n - 1);
			give(h.pfn, cut);
			d->h[i].pfn += cut;
			d->h[i].n -= cut;
		} else {
			give(h.pfn, h.n);
			d->h[i] = d->h[--d->nh];
		}
	}
}

static void diff_run(uint64_t seed, unsigned steps, unsigned check_every, bool single)
{
	struct diff *d = &cur_diff;
	memset(d, 0, sizeof(*d));
	d->rng = seed;
	d->single = single;
	runs_scan(&d->r);
	assert_true(d->r.n > 0);
	d->lo = d->r.v[0].start;
	d->hi = d->r.v[d->r.n - 1].end;
	for (unsigned step = 0; step < steps; step++) {
		diff_step(d);
		runs_scan(&d->r);
		for (int q = 0; q < 4; q++)
			diff_query(d);
		struct psum root = root_sum();
		assert_int_equal(root.max, bf_max(&d->r));
		if (step % check_every == 0)
			fx_assert_check();
	}
	fx_assert_check();
	/* Give everything back: the pool is one run per region again. */
	while (d->nh) {
		give(d->h[d->nh - 1].pfn, d->h[d->nh - 1].n);
		d->nh--;
	}
	fx_assert_check();
	print_message("differential: seed %#llx, %u steps, %lu queries, final %zu runs\n",
	              (unsigned long long)seed, steps, d->queries, d->r.n);
	free(d->h);
	d->h = NULL;
	runs_free(&d->r);
}

static uint64_t test_seed(void)
{
	const char *e = getenv("SEED");
	return e ? strtoull(e, NULL, 0) : 0x5eed0001ull;
}

/* Takes a few pages every `gap` .. `gap + spread` pages of the pool, from
 * `first` up to the metadata, so that runs end everywhere. */
static void fragment(uint64_t first, uint64_t gap, uint64_t spread, uint64_t most, uint64_t salt)
{
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	uint64_t top = mb >> PAGE_SHIFT;
	for (uint64_t p = first; p + 40 < top; p += gap + (fx_mix64(p) % spread))
		take(p, 1 + fx_mix64(p ^ salt) % most);
}

static void test_random_differential(void **state)
{
	(void)state;
	/* Start from a fragmented board so short runs are everywhere. */
	fragment(POOL_PFN + 333, 1500, 700, 40, 7);
	diff_run(test_seed(), 3000, 1, false);
	runs_scan(&scratch);
	assert_true(scratch.n >= 1);
}

/* Single pages taken from and given back to long runs, at their edges and
 * at aligned spots: each changes a summary's end or start by one page at
 * some levels, the aligned lanes at others, which the incremental update
 * (arena_sum_update) must follow exactly.  Every step is checked
 * (kmem_check recomputes every stored node, lanes included). */
static void test_single_page_differential(void **state)
{
	(void)state;
	fragment(POOL_PFN + 4096, 6000, 3000, 3, 5); /* long runs, a few short */
	diff_run(test_seed() ^ 0x1a9e, 3000, 1, true);
}

/* ------------------------------------------------------------------------
 * Sparse map: regions at 1 GiB, 300 GiB and 2 TiB in a window of a few
 * TiB, several L2 chunks, missing arenas between regions, and a reserved
 * one-page hole.
 */

#define SP_R1 (FX_GIB - 4 * FX_MIB)     /* 72 MiB across the 1 GiB arena line */
#define SP_R1_LEN (72 * FX_MIB)
#define SP_R4 (FX_GIB + 192 * FX_MIB)   /* one missing arena after r1 */
#define SP_R4_LEN (64 * FX_MIB)
#define SP_R2 (300 * FX_GIB)            /* with a hole in the middle */
#define SP_R2_LEN (64 * FX_MIB)
#define SP_HOLE (SP_R2 + 32 * FX_MIB)
#define SP_R3 (2 * FX_TIB)              /* holds the metadata */
#define SP_R3_LEN (128 * FX_MIB)

static int setup_sparse(void **state)
{
	(void)state;
	fx_reserve(SP_R3 + SP_R3_LEN + FX_GIB);
	const struct kmem_region r[] = {
		{SP_R2, SP_R2_LEN, KMEM_REGION_USABLE, 0},
		{SP_R3, SP_R3_LEN, KMEM_REGION_USABLE, 0},
		{SP_R1, SP_R1_LEN, KMEM_REGION_USABLE, 0},
		{SP_HOLE, PG, KMEM_REGION_RESERVED, 0},
		{SP_R4, SP_R4_LEN, KMEM_REGION_USABLE, 0},
	};
	assert_int_equal(fx_init(r, sizeof(r) / sizeof(r[0]), 2), 0);
	return 0;
}

#define TS(fn) cmocka_unit_test_setup_teardown(fn, setup_sparse, teardown)

static void test_sparse_map(void **state)
{
	(void)state;
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	assert_true(mb >= SP_R3 && mb + ms == SP_R3 + SP_R3_LEN);
	const uint64_t r1 = SP_R1 >> PAGE_SHIFT, r1n = SP_R1_LEN >> PAGE_SHIFT;
	const uint64_t r4 = SP_R4 >> PAGE_SHIFT, r4n = SP_R4_LEN >> PAGE_SHIFT;
	const uint64_t r2 = SP_R2 >> PAGE_SHIFT, hole = SP_HOLE >> PAGE_SHIFT;
	const uint64_t r2end = (SP_R2 + SP_R2_LEN) >> PAGE_SHIFT;
	const uint64_t r3 = SP_R3 >> PAGE_SHIFT, r3end = mb >> PAGE_SHIFT;

	/* Arenas: 3 for r1, 1 for r4, 1 for r2, 2 for r3; 3 L2 chunks. */
	struct kmem_stats st;
	kmem_get_stats(&st);
	assert_int_equal(st.arenas, 7);
	unsigned chunks = 0;
	for (uint64_t i = 0; i < L1_ENTRIES; i++)
		chunks += atomic_load(&mheap_.l1[i]) != NULL;
	assert_int_equal(chunks, 3);
	assert_null(arena_of_pfn((FX_GIB + 128 * FX_MIB) >> PAGE_SHIFT)); /* between r1 and r4 */
	assert_non_null(arena_of_pfn(hole));

	/* The free runs are exactly the regions; runs never bridge holes. */
	runs_scan(&scratch);
	assert_int_equal(scratch.n, 5);
	const struct run want[5] = {
		{r1, r1 + r1n}, {r4, r4 + r4n}, {r2, hole}, {hole + 1, r2end}, {r3, r3end}};
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(scratch.v[i].start, want[i].start);
		assert_int_equal(scratch.v[i].end, want[i].end);
	}
	assert_int_equal(root_sum().max, r3end - r3);

	assert_int_equal(find1(1), r1);
	assert_int_equal(find1(r4n + 1), r1);
	assert_int_equal(find1(r1n), r1);
	assert_int_equal(find1(r1n + 1), r3);             /* not across r1 | r4 */
	assert_int_equal(find(r4n, 1, r1 + 1, UINT64_MAX), r1 + 1);
	assert_int_equal(find(r4n, 1, r1 + r1n - r4n + 1, UINT64_MAX), r4);
	assert_int_equal(find(hole - r2, 1, r4 + 1, UINT64_MAX), r4 + 1);
	assert_int_equal(find(hole - r2, 1, r4 + r4n, UINT64_MAX), r2);
	assert_int_equal(find(hole - r2 + 1, 1, r4 + r4n, UINT64_MAX), r3); /* not across the hole */
	assert_int_equal(find(2, 1, hole - 1, UINT64_MAX), hole + 1);
	assert_int_equal(find(1, 1, r2, r2 + (FX_GIB >> PAGE_SHIFT)), r2);
	assert_int_equal(find(1, 1, r1 + r1n, r4), NONE);  /* the missing arena */
	assert_int_equal(find(1, ARENA_PAGES, 0, UINT64_MAX), FX_GIB >> PAGE_SHIFT);
	assert_int_equal(find(ARENA_PAGES, ARENA_PAGES, r1 + 1, UINT64_MAX), FX_GIB >> PAGE_SHIFT);
	assert_int_equal(find(ARENA_PAGES, ARENA_PAGES, (FX_GIB >> PAGE_SHIFT) + 1, UINT64_MAX), r4);
	assert_int_equal(find_top(1), r3end - 1);
	assert_int_equal(find_top(r3end - r3), r3);
	assert_int_equal(find_top(r3end - r3 + 1), NONE);
	for (uint64_t n = 1; n < r1n + 2; n = n * 3 + 1) {
		assert_int_equal(find_top(n), bf_top(&scratch, n));
		assert_int_equal(find1(n), bf_find(&scratch, n, 1, 0, UINT64_MAX));
	}

	/* kpage_alloc below 2 GiB cannot use r2/r3 and never bridges. */
	assert_null(kpage_alloc(r1n + 1, PG, 2 * FX_GIB));
	void *p = kpage_alloc(r1n, PG, 2 * FX_GIB);
	assert_non_null(p);
	assert_int_equal(phys_of_run(p), r1);
	void *q = kpage_alloc(10, PG, 2 * FX_GIB);
	assert_non_null(q);
	assert_int_equal(phys_of_run(q), r4);
	void *s = kpage_alloc(r4n, PG, 0); /* r1 used, r4 short by 10, r2 split */
	assert_non_null(s);
	assert_int_equal(phys_of_run(s), r3);
	fx_assert_check();
	kpage_free(p, r1n);
	kpage_free(q, 10);
	kpage_free(s, r4n);
	fx_assert_check();
}

static void test_sparse_differential(void **state)
{
	(void)state;
	diff_run(test_seed() ^ 0xabcdef, 1500, 5, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_initial_pool),
		T(test_first_fit_address_order),
		T(test_alignment),
		T(test_window_and_ceiling),
		T(test_coalescing),
		T(test_fragmentation),
		T(test_word_and_arena_crossing),
		T(test_find_top),
		T(test_random_differential),
		T(test_single_page_differential),
		cmocka_unit_test_teardown(test_aligned_search_logarithmic, teardown),
		cmocka_unit_test(test_word_summary),
		cmocka_unit_test_setup_teardown(test_hull_hot_add, setup_hull, teardown),
		TS(test_sparse_map),
		TS(test_sparse_differential),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
