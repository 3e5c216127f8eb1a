/*
 * tests/test_oom.c - exhausting memory through every path on a small heap
 * (8 MiB, 2 CPUs): small and large kmalloc, kmalloc_aligned, kpage_alloc
 * with and without a ceiling, object caches.  Each time NULL must come
 * back cleanly (no crash, no fault), be genuine (the heap really is full),
 * and after freeing everything every page must be back and kmem_check()
 * clean.  Memory must also flow between classes: after one class filled the
 * heap and was freed, another class (or page runs, or large objects) can
 * fill it again without an explicit kmem_reclaim() -- the allocator's own
 * "sweep and retry" has to find the empty spans.
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
#include "spanalloc.h"
#include "sizeclasses.h" /* KMEM_MAX_SPAN_PAGES */

#define PAGE KMEM_PAGE_SIZE
#define HEAP_MIB 8
#define POOL_LO FX_SIMPLE_BASE
#define POOL_HI (FX_SIMPLE_BASE + HEAP_MIB * FX_MIB)
#define MAXP (HEAP_MIB * FX_MIB / 8 + 16) /* more than 8-byte objects fit */

static const struct fx_heap heap = {HEAP_MIB, 2};

#define T(fn) FX_TEST(fn, &heap, fx_teardown_intact)

static struct kmem_class_stats class_of(size_t size)
{
	unsigned c = kmem_size_class(size);
	assert_true(c != 0);
	return fx_class_stats(c);
}

/* Pointers kept in host memory. */
struct vec {
	void **p;
	size_t n;
	size_t *len; /* bytes filled, for the pattern check */
};

static struct vec vec_new(void)
{
	struct vec v = {calloc(MAXP, sizeof(void *)), 0, calloc(MAXP, sizeof(size_t))};
	assert_non_null(v.p);
	assert_non_null(v.len);
	return v;
}

static void vec_push(struct vec *v, void *p, size_t len)
{
	assert_true(v->n < MAXP);
	v->len[v->n] = len;
	v->p[v->n++] = p;
	fx_fill(p, len, (uint64_t)(uintptr_t)p);
}

static void vec_check(const struct vec *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (fx_check(v->p[i], v->len[i], (uint64_t)(uintptr_t)v->p[i]) != (size_t)-1)
			fail_msg("object %zu at %p overwritten", i, v->p[i]);
}

static void vec_free_all(struct vec *v, void (*fr)(void *, size_t))
{
	vec_check(v);
	for (size_t i = 0; i < v->n; i++)
		fr(v->p[i], v->len[i]);
	v->n = 0;
}

static void vec_del(struct vec *v)
{
	free(v->p);
	free(v->len);
}

static void fr_kfree(void *p, size_t len)
{
	(void)len;
	kfree(p);
}

static void fr_pages(void *p, size_t len)
{
	kpage_free(p, len / PAGE);
}

static struct kmem_cache *fr_cache_c;
static void fr_cache(void *p, size_t len)
{
	(void)len;
	kmem_cache_free(fr_cache_c, p);
}

/* Pages a class span holds and objects per span. */
static uint64_t per_span(const struct kmem_class_stats *cs)
{
	return (uint64_t)cs->span_pages * PAGE / cs->object_size;
}

/* At a NULL from a class: every span of the class is full and no free run
 * could hold a new span (a descriptor may need one more page). */
static void assert_class_exhausted(size_t size)
{
	struct kmem_class_stats cs = class_of(size);
	struct kmem_stats s = fx_stats();
	if (cs.objects_in_use != cs.spans * per_span(&cs))
		fail_msg("NULL for %zu B with %llu objects in %llu spans of %llu",
		         size, (unsigned long long)cs.objects_in_use,
		         (unsigned long long)cs.spans,
		         (unsigned long long)per_span(&cs));
	if (s.pages_free > cs.span_pages)
		fail_msg("NULL for %zu B with %llu pages free (span: %u pages)", size,
		         (unsigned long long)s.pages_free, cs.span_pages);
}

static size_t fill_kmalloc(struct vec *v, size_t size)
{
	size_t n0 = v->n;
	for (;;) {
		void *p = kmalloc(size);
		if (!p)
			break;
		assert_true(ksize(p) >= size);
		vec_push(v, p, size);
	}
	fx_assert_no_faults();
	return v->n - n0;
}

/* ------------------------------------------------------------------------ */

static void test_oom_small_kmalloc(void **state)
{
	(void)state;
	const size_t sizes[] = {8, 64, 1000, 4096, 24576, KMEM_SMALL_MAX};
	struct vec v = vec_new();
	struct kmem_stats fresh = fx_stats();
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		size_t s = sizes[si];
		size_t n = fill_kmalloc(&v, s);
		struct kmem_class_stats cs = class_of(s);
		printf("%6zu B: %zu objects (%llu KiB of %llu KiB managed)\n", s, n,
		       (unsigned long long)(n * cs.object_size >> 10),
		       (unsigned long long)(fresh.pages_managed * PAGE >> 10));
		/* most of the pool became objects of this class */
		assert_true((uint64_t)n * cs.object_size >= fresh.pages_managed * PAGE * 3 / 4);
		assert_int_equal(cs.objects_in_use, n);
		assert_class_exhausted(s);
		/* NULL again; then one free makes room for exactly that */
		assert_null(kmalloc(s));
		assert_null(kzalloc(s));
		fx_assert_no_faults();
		void *last = v.p[--v.n];
		kfree(last);
		void *again = kmalloc(s);
		assert_non_null(again);
		vec_push(&v, again, s);
		assert_null(kmalloc(s));
		fx_assert_no_faults();
		vec_free_all(&v, fr_kfree);
		fx_assert_no_faults();
		fx_assert_all_back();
	}
	vec_del(&v);
}

static void test_oom_large_kmalloc(void **state)
{
	(void)state;
	const size_t sizes[] = {KMEM_SMALL_MAX + 1, 40000, 300000, FX_MIB + 5};
	struct vec v = vec_new();
	struct kmem_stats fresh = fx_stats();
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		size_t s = sizes[si];
		size_t pages = (s + PAGE - 1) / PAGE;
		size_t n = fill_kmalloc(&v, s);
		struct kmem_stats st = fx_stats();
		printf("%7zu B: %zu large objects, %llu pages free left\n", s, n,
		       (unsigned long long)st.pages_free);
		assert_true(n > 0);
		assert_int_equal(st.large_objects, n);
		assert_true(st.pages_large >= n * pages);
		/* what is left cannot hold another (a descriptor may take a page) */
		assert_true(st.pages_free < pages + 1);
		assert_true(st.pages_large + pages + 1 >= fresh.pages_free * 3 / 4);
		assert_null(kmalloc(s));
		void *last = v.p[--v.n];
		kfree(last);
		void *again = kmalloc(s);
		assert_non_null(again);
		vec_push(&v, again, s);
		fx_assert_no_faults();
		vec_free_all(&v, fr_kfree);
		fx_assert_all_back();
	}
	vec_del(&v);
}

static void test_oom_mixed_sizes_genuine(void **state)
{
	(void)state;
	struct vec v = vec_new();
	uint64_t x = 77;
	unsigned nulls = 0;
	for (unsigned i = 0; i < 2000000 && nulls < 200; i++) {
		x = fx_mix64(x);
		size_t s;
		switch (x % 4) {
		case 0: s = 1 + (x >> 8) % 256; break;
		case 1: s = 257 + (x >> 8) % 4096; break;
		case 2: s = 4097 + (x >> 8) % (KMEM_SMALL_MAX - 4096); break;
		default: s = KMEM_SMALL_MAX + 1 + (x >> 8) % 200000; break;
		}
		void *p = kmalloc(s);
		if (p) {
			vec_push(&v, p, s);
			continue;
		}
		nulls++;
		fx_assert_no_faults();
		/* nothing was freed, so the counts are exact: the NULL was real */
		if (s <= KMEM_SMALL_MAX) {
			assert_class_exhausted(s);
		} else {
			struct kmem_stats st = fx_stats();
			assert_true(st.pages_free < (s + PAGE - 1) / PAGE + 1);
		}
	}
	assert_int_equal(nulls, 200);
	vec_check(&v);
	vec_free_all(&v, fr_kfree);
	fx_assert_all_back();
	vec_del(&v);
}

static void test_oom_aligned(void **state)
{
	(void)state;
	const struct {
		size_t size, align;
	} cases[] = {{100, 4096}, {5000, 65536}, {8, 256}, {40000, 1 << 20}};
	struct vec v = vec_new();
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		size_t n = 0;
		for (;;) {
			void *p = kmalloc_aligned(cases[c].size, cases[c].align);
			if (!p)
				break;
			assert_int_equal((uintptr_t)p % cases[c].align, 0);
			assert_true(ksize(p) >= cases[c].size);
			vec_push(&v, p, cases[c].size);
			n++;
		}
		fx_assert_no_faults();
		printf("kmalloc_aligned(%zu, %zu): %zu objects\n", cases[c].size,
		       cases[c].align, n);
		assert_true(n > 0);
		/* at most one object per alignment slot of the pool */
		if (cases[c].align >= PAGE)
			assert_true(n <= HEAP_MIB * FX_MIB / cases[c].align);
		assert_null(kmalloc_aligned(cases[c].size, cases[c].align));
		fx_assert_no_faults();
		vec_free_all(&v, fr_kfree);
		fx_assert_all_back();
	}
	vec_del(&v);
}

static void test_oom_kpage(void **state)
{
	(void)state;
	struct vec v = vec_new();
	struct kmem_stats fresh = fx_stats();
	/* single pages: the pool runs dry exactly */
	size_t n = 0;
	for (void *p; (p = kpage_alloc(1, 1, 0)) != NULL; n++)
		vec_push(&v, p, PAGE);
	fx_assert_no_faults();
	struct kmem_stats st = fx_stats();
	assert_int_equal(st.pages_free, 0);
	assert_int_equal(st.pages_runs, n);
	assert_true(n + st.pages_metadata + st.pages_small >= fresh.pages_free);
	assert_null(kpage_alloc(1, 1, 0));
	assert_null(kmalloc(8)); /* no page for a span either */
	assert_null(kmalloc(100000));
	fx_assert_no_faults();
	vec_free_all(&v, fr_pages);
	fx_assert_all_back();

	/* aligned multi-page runs */
	n = 0;
	for (void *p; (p = kpage_alloc(3, 16 * FX_KIB, 0)) != NULL; n++) {
		assert_int_equal(kmem_virt_to_phys(p) % (16 * FX_KIB), 0);
		vec_push(&v, p, 3 * PAGE);
	}
	fx_assert_no_faults();
	assert_true(n >= HEAP_MIB * FX_MIB / (16 * FX_KIB) * 3 / 4);
	vec_free_all(&v, fr_pages);
	fx_assert_all_back();

	/* below a ceiling: only the pool's first 4 MiB, the rest stays */
	const uint64_t ceil = POOL_LO + 4 * FX_MIB;
	n = 0;
	for (void *p; (p = kpage_alloc(1, 1, ceil)) != NULL; n++) {
		assert_true(kmem_virt_to_phys(p) + PAGE <= ceil);
		vec_push(&v, p, PAGE);
	}
	fx_assert_no_faults();
	assert_true(n > 0 && n <= 4 * FX_MIB / PAGE);
	assert_true(n >= 4 * FX_MIB / PAGE * 3 / 4);
	void *above = kpage_alloc(1, 1, 0);
	assert_non_null(above);
	assert_true(kmem_virt_to_phys(above) + PAGE > ceil);
	vec_push(&v, above, PAGE);
	void *big = kmalloc(200000);
	assert_non_null(big);
	kfree(big);
	vec_free_all(&v, fr_pages);
	fx_assert_all_back();
	vec_del(&v);
}

static void test_oom_cache(void **state)
{
	(void)state;
	const size_t sizes[] = {256, 24, 3000};
	struct vec v = vec_new();
	struct kmem_stats fresh = fx_stats();
	for (size_t si = 0; si < 3; si++) {
		struct kmem_cache *c = kmem_cache_create("oom", sizes[si], 0, NULL);
		assert_non_null(c);
		fr_cache_c = c;
		size_t n = 0;
		for (void *p; (p = kmem_cache_alloc(c)) != NULL; n++)
			vec_push(&v, p, sizes[si]);
		fx_assert_no_faults();
		struct kmem_class_stats cs;
		kmem_cache_get_stats(c, &cs);
		struct kmem_stats st = fx_stats();
		printf("cache %zu B: %zu objects, %llu spans, %llu pages free\n", sizes[si], n,
		       (unsigned long long)cs.spans, (unsigned long long)st.pages_free);
		assert_int_equal(cs.objects_in_use, n);
		assert_int_equal(cs.objects_in_use, cs.spans * per_span(&cs));
		assert_true(st.pages_free <= cs.span_pages);
		assert_true((uint64_t)n * cs.object_size >= fresh.pages_managed * PAGE * 3 / 4);
		assert_null(kmem_cache_alloc(c));
		fx_assert_no_faults();
		assert_int_equal(kmem_cache_destroy(c), -KMEM_EBUSY);
		vec_free_all(&v, fr_cache);
		assert_int_equal(kmem_cache_destroy(c), 0);
		fx_assert_no_faults();
		fx_assert_all_back();
	}
	vec_del(&v);
}

/* With the heap completely full, the zeroing and resizing paths fail
 * cleanly and leave their argument alone. */
static void test_oom_kzalloc_kcalloc_krealloc(void **state)
{
	(void)state;
	struct vec v = vec_new(), pg = vec_new();
	fill_kmalloc(&v, 2048);
	for (void *p; (p = kpage_alloc(1, 1, 0)) != NULL;)
		vec_push(&pg, p, PAGE);
	fx_assert_no_faults();
	assert_int_equal(fx_stats().pages_free, 0);
	assert_true(v.n > 0);
	void *p = v.p[0];
	assert_null(kzalloc(100000));
	assert_null(kzalloc(2048));
	assert_null(kcalloc(100, 1000));
	assert_null(kcalloc(1, 2048));
	assert_null(krealloc(p, 100000));
	assert_null(krealloc(p, 3000));
	assert_null(kmalloc_aligned(64, 4096));
	fx_assert_no_faults();
	/* p untouched */
	assert_int_equal(fx_check(p, 2048, (uint64_t)(uintptr_t)p), (size_t)-1);
	assert_true(ksize(p) >= 2048);
	/* a shrink that fits in place needs no memory */
	void *q = krealloc(p, 1500);
	assert_ptr_equal(q, p);
	v.len[0] = 1500;
	vec_free_all(&v, fr_kfree);
	vec_free_all(&pg, fr_pages);
	fx_assert_no_faults();
	fx_assert_all_back();
	vec_del(&v);
	vec_del(&pg);
}

/* Fill with one class, free everything (no kmem_reclaim), fill with the
 * next: the empty spans must go back to the mheap through the allocator's
 * own sweep-and-retry. */
static void test_oom_memory_flows_between_classes(void **state)
{
	(void)state;
	struct vec v = vec_new();
	struct kmem_stats fresh = fx_stats();
	const uint64_t pool = fresh.pages_managed * PAGE;
	const size_t seq[] = {64, 3000, 8, KMEM_SMALL_MAX, 1000, 512};
	size_t prev = 0;
	for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
		size_t s = seq[i];
		size_t n = fill_kmalloc(&v, s);
		struct kmem_class_stats cs = class_of(s);
		printf("stage %zu: %zu x %zu B\n", i, n, s);
		assert_true((uint64_t)n * cs.object_size >= pool * 3 / 4);
		if (prev) {
			/* the previous class gave its spans back (one may stay
			 * cached on this CPU) */
			struct kmem_class_stats ps = class_of(prev);
			assert_true(ps.spans <= 1);
		}
		vec_free_all(&v, fr_kfree);
		fx_assert_no_faults();
		prev = s;
	}
	/* then page runs */
	size_t n = 0;
	for (void *p; (p = kpage_alloc(1, 1, 0)) != NULL; n++)
		vec_push(&v, p, PAGE);
	assert_true((uint64_t)n * PAGE >= pool * 3 / 4);
	vec_free_all(&v, fr_pages);
	/* then large objects */
	n = fill_kmalloc(&v, 100000);
	assert_true((uint64_t)n * 100000 >= pool * 3 / 4);
	vec_free_all(&v, fr_kfree);
	/* then an object cache */
	struct kmem_cache *c = kmem_cache_create("flow", 128, 0, NULL);
	assert_non_null(c);
	fr_cache_c = c;
	n = 0;
	for (void *p; (p = kmem_cache_alloc(c)) != NULL; n++)
		vec_push(&v, p, 128);
	assert_true((uint64_t)n * 128 >= pool * 3 / 4);
	vec_free_all(&v, fr_cache);
	/* and back to kmalloc: the cache's empty spans flow back too */
	n = fill_kmalloc(&v, 256);
	assert_true((uint64_t)n * 256 >= pool * 3 / 4);
	vec_free_all(&v, fr_kfree);
	assert_int_equal(kmem_cache_destroy(c), 0);
	fx_assert_no_faults();
	fx_assert_all_back();
	vec_del(&v);
}

/* After a class filled the heap and was freed, one big contiguous run can
 * be had at once: the freed spans were returned and coalesced. */
static void test_oom_sweep_and_retry_contiguous(void **state)
{
	(void)state;
	struct vec v = vec_new();
	struct kmem_stats fresh = fx_stats();
	fill_kmalloc(&v, 64);
	vec_free_all(&v, fr_kfree);
	size_t half = (size_t)(fresh.pages_free / 2);
	void *run = kpage_alloc(half, 1, 0);
	if (!run)
		fail_msg("kpage_alloc(%zu pages) after freeing every object returned NULL",
		         half);
	memset(run, 0x11, half * PAGE);
	kpage_free(run, half);
	fill_kmalloc(&v, 48);
	vec_free_all(&v, fr_kfree);
	void *big = kmalloc(half * PAGE);
	assert_non_null(big);
	kfree(big);
	fx_assert_no_faults();
	fx_assert_all_back();
	vec_del(&v);
}

/* ---- the OOM hook's request (issue #13.6) ---- */

static unsigned hook_calls;
static struct kmem_oom_request hook_last;
static enum { H_DECLINE, H_CLAIM, H_ADD_BELOW, H_ADD_ABOVE } hook_mode;
static uint64_t hook_next; /* where H_ADD_* hot-add 16 MiB */

/* Records the request; declines, claims to have added memory without
 * adding any, or hot-adds 16 MiB (below or above the request's ceiling,
 * as a hook that heeds or ignores it would). */
static bool rec_hook(const struct kmem_oom_request *r)
{
	hook_calls++;
	hook_last = *r;
	if (hook_mode == H_DECLINE)
		return false;
	if (hook_mode == H_CLAIM)
		return true;
	uint64_t at = hook_mode == H_ADD_BELOW ? hook_next : 900 * FX_MIB + hook_next;
	hook_next += 16 * FX_MIB;
	fx_usable(at, 16 * FX_MIB);
	struct kmem_region reg = {at, 16 * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_true(kmem_hot_add(&reg) > 0);
	return true;
}

/* Takes every free page (the hook declines meanwhile). */
static void drain_pages(struct vec *v)
{
	hook_mode = H_DECLINE;
	for (void *p; (p = kpage_alloc(1, 1, 0)) != NULL;)
		vec_push(v, p, PAGE);
	assert_int_equal(fx_stats().pages_free, 0);
}

static void expect_request(enum kmem_oom_kind kind, size_t bytes, size_t align,
                           uint64_t max_phys, uint64_t run_pages, uint64_t run_align)
{
	assert_int_equal(hook_calls, 1);
	assert_int_equal(hook_last.kind, kind);
	assert_int_equal(hook_last.bytes, bytes);
	assert_int_equal(hook_last.align, align);
	assert_int_equal(hook_last.max_phys, max_phys);
	assert_int_equal(hook_last.run_pages, run_pages);
	assert_int_equal(hook_last.run_align, run_align);
	assert_int_equal(hook_last.attempt, 1);
	hook_calls = 0;
}

/* Every path passes what it needs: size, alignment, ceiling, the run. */
static void test_oom_request_says_what_is_needed(void **state)
{
	(void)state;
	struct vec v = vec_new();
	kmem_set_oom_hook(rec_hook);
	drain_pages(&v);
	hook_calls = 0;
	assert_null(kmalloc(100000));
	expect_request(KMEM_OOM_OBJECT, 100000, 8, 0, 25, PAGE);
	assert_null(kmalloc(16384));
	expect_request(KMEM_OOM_OBJECT, 16384, 8, 0, KMEM_MAX_SPAN_PAGES, PAGE);
	assert_null(kmalloc_aligned(100, 64 * FX_KIB));
	expect_request(KMEM_OOM_OBJECT, 100, 64 * FX_KIB, 0, 1, 64 * FX_KIB);
	assert_null(kmalloc_aligned(40000, 2 * FX_MIB));
	expect_request(KMEM_OOM_OBJECT, 40000, 2 * FX_MIB, 0, 10, 2 * FX_MIB);
	assert_null(kpage_alloc(5, 32 * FX_KIB, 20 * FX_MIB));
	expect_request(KMEM_OOM_PAGES, 5 * PAGE, 32 * FX_KIB, 20 * FX_MIB, 5, 32 * FX_KIB);
	assert_null(kpage_alloc(1, 64, 0));
	expect_request(KMEM_OOM_PAGES, PAGE, 64, 0, 1, PAGE);
	struct kmem_cache *c = kmem_cache_create("oomreq", 200, 64, NULL);
	if (c) { /* its descriptor may need a page there is none of */
		assert_null(kmem_cache_alloc(c));
		expect_request(KMEM_OOM_CACHE, 200, 64, 0, KMEM_MAX_SPAN_PAGES, PAGE);
		kmem_cache_destroy(c);
	}
	fx_assert_no_faults();
	kmem_set_oom_hook(NULL);
	vec_free_all(&v, fr_pages);
	vec_del(&v);
}

/* No memory could satisfy these: the hook is not asked at all. */
static void test_oom_hook_not_asked_when_hopeless(void **state)
{
	(void)state;
	kmem_set_oom_hook(rec_hook);
	hook_mode = H_CLAIM;
	hook_calls = 0;
	assert_null(kpage_alloc(1, FX_MIB, 512 * FX_KIB)); /* no 1 MiB multiple below 512 KiB */
	assert_null(kpage_alloc(200, PAGE, 512 * FX_KIB)); /* 200 pages above 128 */
	assert_null(kpage_alloc(1, 4 * FX_MIB, 4 * FX_MIB)); /* ends past 4 MiB */
	assert_null(kmalloc_aligned(64, (size_t)1 << 62));   /* past the physical space */
	assert_int_equal(hook_calls, 0);
	/* Possible in principle (page 2^28, a 1 TiB multiple): asked once. */
	assert_null(kmalloc_aligned(64, (size_t)1 << 40));
	assert_int_equal(hook_calls, 1);
	assert_int_equal(hook_last.run_align, (uint64_t)1 << 40);
	fx_assert_no_faults();
	kmem_set_oom_hook(NULL);
}

/* A hook that returns true but adds nothing is not asked again: the
 * allocation fails after one call, not eight. */
static void test_oom_no_retry_without_growth(void **state)
{
	(void)state;
	struct vec v = vec_new();
	kmem_set_oom_hook(rec_hook);
	drain_pages(&v);
	hook_mode = H_CLAIM;
	hook_calls = 0;
	assert_null(kpage_alloc(16, PAGE, 0));
	assert_int_equal(hook_calls, 1);
	assert_null(kmalloc(100000));
	assert_int_equal(hook_calls, 2);
	kmem_set_oom_hook(NULL);
	vec_free_all(&v, fr_pages);
	vec_del(&v);
}

/* A hook that adds memory where the request can use it is asked once; one
 * that adds memory above the ceiling is asked again (attempt 2, ...) and
 * the allocation still fails: the ceiling is what it should have heeded. */
static void test_oom_ceiling_below_or_above(void **state)
{
	(void)state;
	struct vec v = vec_new();
	kmem_set_oom_hook(rec_hook);
	drain_pages(&v);
	hook_next = 256 * FX_MIB;
	hook_mode = H_ADD_BELOW;
	hook_calls = 0;
	void *p = kpage_alloc(64, 64 * FX_KIB, 512 * FX_MIB);
	assert_non_null(p);
	assert_int_equal(hook_calls, 1);
	assert_true(kmem_virt_to_phys(p) >= 256 * FX_MIB && kmem_virt_to_phys(p) % (64 * FX_KIB) == 0);
	vec_push(&v, p, 64 * PAGE);
	/* Memory below 512 MiB is all used again; a careless hook adds at
	 * 900 MiB and up. */
	while ((p = kpage_alloc(1, 1, 512 * FX_MIB)) != NULL)
		vec_push(&v, p, PAGE);
	hook_mode = H_ADD_ABOVE;
	hook_next = 0;
	hook_calls = 0;
	assert_null(kpage_alloc(1, PAGE, 512 * FX_MIB));
	assert_int_equal(hook_last.attempt, hook_calls);
	assert_true(hook_calls >= 2 && hook_calls <= 8);
	fx_assert_no_faults();
	kmem_set_oom_hook(NULL);
	vec_free_all(&v, fr_pages);
	vec_del(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_oom_small_kmalloc),
		T(test_oom_large_kmalloc),
		T(test_oom_mixed_sizes_genuine),
		T(test_oom_aligned),
		T(test_oom_kpage),
		T(test_oom_cache),
		T(test_oom_kzalloc_kcalloc_krealloc),
		T(test_oom_memory_flows_between_classes),
		T(test_oom_sweep_and_retry_contiguous),
		T(test_oom_request_says_what_is_needed),
		T(test_oom_hook_not_asked_when_hopeless),
		T(test_oom_no_retry_without_growth),
		T(test_oom_ceiling_below_or_above),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
