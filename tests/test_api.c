/*
 * tests/test_api.c - every edge of the public contract in include/spanalloc.h,
 * each as its own cmocka test on a fresh heap (64 MiB at physical 16 MiB,
 * 2 CPUs) unless the test builds its own map.
 *
 * The tests check what the header promises and nothing more; where the
 * header is terse the comment at the test says how it was read.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "host.h"
#include "spanalloc.h"

#define PAGE KMEM_PAGE_SIZE
#define HEAP_MIB 64
#define POOL_LO FX_SIMPLE_BASE
#define POOL_HI (FX_SIMPLE_BASE + HEAP_MIB * FX_MIB)

/* ------------------------------------------------------------------------
 * helpers
 */

static const struct fx_heap heap = {HEAP_MIB, 2};

/* Every fault a test provokes it also consumes (fx_faults_reset). */
#define T(fn) FX_TEST(fn, &heap, fx_teardown_intact)

/* Alignment the header promises for a kmalloc of `size`. */
static uint64_t promised_align(size_t size)
{
	unsigned cls = kmem_size_class(size);
	if (cls == 0)
		return PAGE;
	struct kmem_class_stats cs = fx_class_stats(cls);
	uint64_t a = fx_pow2_divisor(cs.object_size);
	return a < 8 ? 8 : a;
}

static void assert_aligned(const void *p, uint64_t align)
{
	if ((uintptr_t)p % align != 0)
		fail_msg("%p is not aligned to %llu", p, (unsigned long long)align);
}

/* A snapshot of every statistic, to show a bad call changed nothing. */
#define MAX_CLASSES 256
#define MAX_SNAP_CACHES 4
struct snap {
	struct kmem_stats s;
	unsigned ncls;
	struct kmem_class_stats cls[MAX_CLASSES];
	unsigned ncaches;
	struct kmem_class_stats cache[MAX_SNAP_CACHES];
};

static void snap_take(struct snap *sn, struct kmem_cache **caches, unsigned nc)
{
	memset(sn, 0, sizeof *sn);
	sn->s = fx_stats();
	assert_in_range(sn->s.nclasses, 2, MAX_CLASSES);
	sn->ncls = sn->s.nclasses;
	for (unsigned c = 1; c < sn->ncls; c++)
		sn->cls[c] = fx_class_stats(c);
	assert_in_range(nc, 0, MAX_SNAP_CACHES);
	sn->ncaches = nc;
	for (unsigned i = 0; i < nc; i++)
		kmem_cache_get_stats(caches[i], &sn->cache[i]);
}

#define SNAP_FIELD(a, b, f, what)                                              \
	do {                                                                   \
		if ((a).f != (b).f)                                            \
			fail_msg("%s.%s changed: %llu -> %llu", what, #f,      \
			         (unsigned long long)(a).f,                    \
			         (unsigned long long)(b).f);                   \
	} while (0)

static void class_equal(const struct kmem_class_stats *a,
                        const struct kmem_class_stats *b, const char *what)
{
	SNAP_FIELD(*a, *b, object_size, what);
	SNAP_FIELD(*a, *b, span_pages, what);
	SNAP_FIELD(*a, *b, objects_in_use, what);
	SNAP_FIELD(*a, *b, nmalloc, what);
	SNAP_FIELD(*a, *b, nfree, what);
	SNAP_FIELD(*a, *b, spans, what);
	SNAP_FIELD(*a, *b, bytes_in_use, what);
	SNAP_FIELD(*a, *b, span_bytes, what);
	SNAP_FIELD(*a, *b, peak_span_bytes, what);
}

static void snap_assert_same(const struct snap *a, struct kmem_cache **caches)
{
	struct snap b;
	snap_take(&b, caches, a->ncaches);
	SNAP_FIELD(a->s, b.s, pages_managed, "stats");
	SNAP_FIELD(a->s, b.s, pages_free, "stats");
	SNAP_FIELD(a->s, b.s, pages_small, "stats");
	SNAP_FIELD(a->s, b.s, pages_large, "stats");
	SNAP_FIELD(a->s, b.s, pages_runs, "stats");
	SNAP_FIELD(a->s, b.s, pages_metadata, "stats");
	SNAP_FIELD(a->s, b.s, large_objects, "stats");
	SNAP_FIELD(a->s, b.s, page_runs, "stats");
	SNAP_FIELD(a->s, b.s, metadata_bytes, "stats");
	SNAP_FIELD(a->s, b.s, metadata_used, "stats");
	SNAP_FIELD(a->s, b.s, arenas, "stats");
	SNAP_FIELD(a->s, b.s, nclasses, "stats");
	SNAP_FIELD(a->s, b.s, cpus_online, "stats");
	for (unsigned c = 1; c < a->ncls; c++) {
		char what[32];
		snprintf(what, sizeof what, "class[%u]", c);
		class_equal(&a->cls[c], &b.cls[c], what);
	}
	for (unsigned i = 0; i < a->ncaches; i++) {
		char what[32];
		snprintf(what, sizeof what, "cache[%u]", i);
		class_equal(&a->cache[i], &b.cache[i], what);
	}
}

/* A failed page search may take a span descriptor from the metadata
 * region the first time (kept on fixalloc's free list for later): harmless,
 * but it moves metadata_used once.  Failing once before a snapshot makes
 * the snapshot show that repeated failures leave no trace at all. */
static void warm_up_failure(void)
{
	assert_null(kmalloc(KMEM_MAX_ALLOC));
	assert_null(kpage_alloc((size_t)1 << 30, 1, 0));
}

/* Intervals, to prove live objects are disjoint. */
struct iv {
	uintptr_t lo, hi;
};

static int iv_cmp(const void *a, const void *b)
{
	const struct iv *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void assert_disjoint(struct iv *v, size_t n)
{
	qsort(v, n, sizeof *v, iv_cmp);
	for (size_t i = 1; i < n; i++)
		if (v[i - 1].hi > v[i].lo)
			fail_msg("objects overlap: [%#lx, %#lx) and [%#lx, %#lx)",
			         (unsigned long)v[i - 1].lo, (unsigned long)v[i - 1].hi,
			         (unsigned long)v[i].lo, (unsigned long)v[i].hi);
}

/* A managed page must lie in the pool and outside the metadata region. */
static void assert_in_pool(const void *p, size_t len)
{
	uint64_t phys = kmem_virt_to_phys(p);
	assert_int_equal(phys, fx_phys(p));
	uint64_t mb = 0, ms = 0;
	kmem_metadata_region(&mb, &ms);
	if (phys < POOL_LO || phys + len > POOL_HI)
		fail_msg("[%#llx, +%zu) outside the usable region",
		         (unsigned long long)phys, len);
	if (phys < mb + ms && mb < phys + len)
		fail_msg("[%#llx, +%zu) overlaps the metadata region [%#llx, +%#llx)",
		         (unsigned long long)phys, len, (unsigned long long)mb,
		         (unsigned long long)ms);
}

/* ------------------------------------------------------------------------
 * kmalloc sizes and alignment
 */

static void test_kmalloc_zero(void **state)
{
	(void)state;
	void *p = kmalloc(0), *q = kmalloc(0), *r = kzalloc(0);
	assert_non_null(p);
	assert_non_null(q);
	assert_non_null(r);
	assert_ptr_not_equal(p, q);
	assert_ptr_not_equal(p, r);
	assert_ptr_not_equal(q, r);
	assert_true(ksize(p) >= 1);
	assert_true(ksize(q) >= 1);
	assert_aligned(p, 8);
	assert_aligned(q, 8);
	/* They are real objects: their usable bytes do not overlap. */
	struct iv v[3] = {
		{(uintptr_t)p, (uintptr_t)p + ksize(p)},
		{(uintptr_t)q, (uintptr_t)q + ksize(q)},
		{(uintptr_t)r, (uintptr_t)r + ksize(r)},
	};
	assert_disjoint(v, 3);
	memset(p, 0x11, ksize(p));
	memset(q, 0x22, ksize(q));
	kfree(p);
	kfree(q);
	kfree(r);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void one_size(size_t s, void **out, struct iv *iv, uint64_t id)
{
	void *p = kmalloc(s);
	if (!p)
		fail_msg("kmalloc(%zu) returned NULL", s);
	size_t k = ksize(p);
	if (k < s)
		fail_msg("ksize(kmalloc(%zu)) = %zu", s, k);
	unsigned cls = kmem_size_class(s);
	if (cls) {
		struct kmem_class_stats cs = fx_class_stats(cls);
		if (cs.object_size < s || k > cs.object_size)
			fail_msg("size %zu: class %u of %u B, ksize %zu", s, cls,
			         cs.object_size, k);
	} else {
		assert_true(s > KMEM_SMALL_MAX);
	}
	assert_aligned(p, promised_align(s));
	assert_in_pool(p, k);
	fx_fill(p, k, id);
	*out = p;
	iv->lo = (uintptr_t)p;
	iv->hi = (uintptr_t)p + k;
}

static void test_kmalloc_every_size_to_4096(void **state)
{
	(void)state;
	enum { N = 4096 };
	void **ps = calloc(N + 1, sizeof *ps);
	struct iv *iv = calloc(N + 1, sizeof *iv);
	assert_non_null(ps);
	assert_non_null(iv);
	for (size_t s = 1; s <= N; s++)
		one_size(s, &ps[s], &iv[s - 1], s);
	for (size_t s = 1; s <= N; s++)
		if (fx_check(ps[s], ksize(ps[s]), s) != (size_t)-1)
			fail_msg("object of size %zu was overwritten", s);
	assert_disjoint(iv, N);
	for (size_t s = 1; s <= N; s++)
		kfree(ps[s]);
	fx_assert_no_faults();
	fx_assert_all_back();
	free(ps);
	free(iv);
}

static void test_kmalloc_sizes_to_32k_and_large(void **state)
{
	(void)state;
	size_t sizes[2048];
	size_t n = 0;
	for (size_t s = 4097; s <= KMEM_SMALL_MAX; s += 97)
		sizes[n++] = s;
	for (unsigned b = 12; b <= 15; b++) {
		sizes[n++] = ((size_t)1 << b) - 1;
		sizes[n++] = (size_t)1 << b;
		sizes[n++] = ((size_t)1 << b) + 1;
	}
	/* every class boundary */
	struct kmem_stats st;
	st = fx_stats();
	for (unsigned c = 1; c < st.nclasses; c++) {
		struct kmem_class_stats cs = fx_class_stats(c);
		sizes[n++] = cs.object_size;
		if (cs.object_size > 1)
			sizes[n++] = cs.object_size - 1;
		if (cs.object_size < KMEM_SMALL_MAX)
			sizes[n++] = cs.object_size + 1;
	}
	const size_t large[] = {KMEM_SMALL_MAX + 1, 40000, 65535, 65536, 65537,
	                        100000, FX_MIB, FX_MIB + 1, 3 * FX_MIB + 5,
	                        16 * FX_MIB};
	for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
		sizes[n++] = large[i];
	assert_true(n <= sizeof sizes / sizeof sizes[0]);

	void **ps = calloc(n, sizeof *ps);
	struct iv *iv = calloc(n, sizeof *iv);
	assert_non_null(ps);
	assert_non_null(iv);
	uint64_t large_live = 0, large_pages = 0;
	for (size_t i = 0; i < n; i++) {
		struct kmem_stats before, after;
		before = fx_stats();
		one_size(sizes[i], &ps[i], &iv[i], 1000 + i);
		after = fx_stats();
		if (sizes[i] > KMEM_SMALL_MAX) {
			assert_int_equal(kmem_size_class(sizes[i]), 0);
			assert_aligned(ps[i], PAGE);
			large_live++;
			uint64_t need = (sizes[i] + PAGE - 1) / PAGE;
			assert_true(after.pages_large - before.pages_large >= need);
			large_pages += after.pages_large - before.pages_large;
			assert_int_equal(after.large_objects, large_live);
		} else {
			assert_true(kmem_size_class(sizes[i]) != 0);
		}
	}
	struct kmem_stats st2;
	st2 = fx_stats();
	assert_int_equal(st2.pages_large, large_pages);
	for (size_t i = 0; i < n; i++)
		if (fx_check(ps[i], ksize(ps[i]), 1000 + i) != (size_t)-1)
			fail_msg("object %zu (size %zu) was overwritten", i, sizes[i]);
	assert_disjoint(iv, n);
	for (size_t i = 0; i < n; i++)
		kfree(ps[i]);
	fx_assert_no_faults();
	fx_assert_all_back();
	free(ps);
	free(iv);
}

static void test_kmalloc_huge_is_null(void **state)
{
	(void)state;
	const size_t huge[] = {KMEM_MAX_ALLOC + 1, KMEM_MAX_ALLOC, SIZE_MAX,
	                       SIZE_MAX - PAGE + 1, SIZE_MAX / 2, SIZE_MAX / 2 + 1,
	                       (HEAP_MIB + 1) * FX_MIB, HEAP_MIB * FX_MIB,
	                       (size_t)FX_TIB};
	struct snap sn;
	warm_up_failure();
	snap_take(&sn, NULL, 0);
	for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
		size_t s = huge[i];
		if (kmalloc(s) != NULL)
			fail_msg("kmalloc(%#zx) did not return NULL", s);
		assert_null(kzalloc(s));
		assert_null(kmalloc_aligned(s, 8));
		assert_null(kmalloc_aligned(s, PAGE));
		assert_null(kcalloc(1, s));
		assert_null(krealloc(NULL, s));
	}
	fx_assert_no_faults();
	snap_assert_same(&sn, NULL);
	/* krealloc to a huge size leaves the object as it was */
	void *p = kmalloc(100);
	assert_non_null(p);
	fx_fill(p, 100, 7);
	assert_null(krealloc(p, KMEM_MAX_ALLOC + 1));
	assert_null(krealloc(p, (HEAP_MIB + 1) * FX_MIB));
	assert_true(ksize(p) >= 100);
	assert_int_equal(fx_check(p, 100, 7), (size_t)-1);
	kfree(p);
	fx_assert_no_faults();
	fx_assert_all_back();
	/* again after the heap has been used */
	snap_take(&sn, NULL, 0);
	assert_null(kmalloc(SIZE_MAX));
	assert_null(kmalloc((HEAP_MIB + 1) * FX_MIB));
	snap_assert_same(&sn, NULL);
}

static void test_kzalloc_zero_after_dirty_reuse(void **state)
{
	(void)state;
	const size_t sizes[] = {1, 8, 24, 100, 256, 1000, 3000, 4096, 20000,
	                        KMEM_SMALL_MAX, 50000, 300000};
	enum { N = 48 };
	unsigned long reused = 0;
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		size_t s = sizes[si];
		void *dirty[N];
		for (int i = 0; i < N; i++) {
			dirty[i] = kmalloc(s);
			assert_non_null(dirty[i]);
			memset(dirty[i], 0xA5, ksize(dirty[i]));
		}
		for (int i = 0; i < N; i++)
			kfree(dirty[i]);
		for (int round = 0; round < 2; round++) {
			void *z[N];
			for (int i = 0; i < N; i++) {
				z[i] = round ? kcalloc(1, s) : kzalloc(s);
				assert_non_null(z[i]);
				assert_true(ksize(z[i]) >= s);
				size_t bad = fx_first_nonzero(z[i], s);
				if (bad != (size_t)-1)
					fail_msg("%s(%zu): byte %zu is %#x", round ? "kcalloc" : "kzalloc",
					         s, bad, ((unsigned char *)z[i])[bad]);
				for (int j = 0; j < N; j++)
					if (z[i] == dirty[j])
						reused++;
			}
			for (int i = 0; i < N; i++) {
				memset(z[i], 0x5A, ksize(z[i]));
				kfree(z[i]);
			}
		}
	}
	/* The test only means something if dirty memory came back. */
	assert_true(reused > 0);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_kcalloc_edges(void **state)
{
	(void)state;
	struct snap sn;
	warm_up_failure();
	snap_take(&sn, NULL, 0);
	assert_null(kcalloc(SIZE_MAX / 2 + 1, 3));
	assert_null(kcalloc(3, SIZE_MAX / 2 + 1));
	assert_null(kcalloc(SIZE_MAX, SIZE_MAX));
	assert_null(kcalloc((size_t)1 << 32, (size_t)1 << 32));
	assert_null(kcalloc(2, SIZE_MAX / 2 + 1));
	assert_null(kcalloc(KMEM_MAX_ALLOC, 2)); /* no overflow, too big */
	snap_assert_same(&sn, NULL);

	void *z = kcalloc(0, 16), *z2 = kcalloc(16, 0), *z3 = kcalloc(0, SIZE_MAX);
	assert_non_null(z);
	assert_non_null(z2);
	assert_non_null(z3);
	assert_ptr_not_equal(z, z2);
	assert_ptr_not_equal(z, z3);
	kfree(z);
	kfree(z2);
	kfree(z3);

	void *p = kcalloc(7, 13);
	assert_non_null(p);
	assert_true(ksize(p) >= 91);
	assert_int_equal(fx_first_nonzero(p, 91), (size_t)-1);
	kfree(p);
	p = kcalloc(1000, 100); /* large */
	assert_non_null(p);
	assert_true(ksize(p) >= 100000);
	assert_aligned(p, PAGE);
	assert_int_equal(fx_first_nonzero(p, 100000), (size_t)-1);
	kfree(p);
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* ------------------------------------------------------------------------
 * krealloc
 */

static void test_krealloc_null_and_zero(void **state)
{
	(void)state;
	void *p = krealloc(NULL, 100);
	assert_non_null(p);
	assert_true(ksize(p) >= 100);
	fx_fill(p, 100, 1);
	struct kmem_stats st;
	st = fx_stats();
	assert_true(st.pages_small > 0);
	assert_null(krealloc(p, 0)); /* frees p */
	fx_assert_no_faults();
	fx_assert_all_back();

	void *big = krealloc(NULL, 200000);
	assert_non_null(big);
	assert_aligned(big, PAGE);
	st = fx_stats();
	assert_int_equal(st.large_objects, 1);
	assert_null(krealloc(big, 0));
	st = fx_stats();
	assert_int_equal(st.large_objects, 0);
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* "p itself when it already fits and is not more than twice too big, else a
 * new object": fits = n <= ksize(p); keep = fits && ksize(p) <= 2n. */
static void realloc_case(size_t from, size_t to, uint64_t id)
{
	void *p = kmalloc(from);
	assert_non_null(p);
	size_t k = ksize(p);
	fx_fill(p, from, id);
	void *q = krealloc(p, to);
	if (!q)
		fail_msg("krealloc(%zu -> %zu) returned NULL", from, to);
	assert_true(ksize(q) >= to);
	bool keep = to <= k && k <= 2 * to;
	if (keep && q != p)
		fail_msg("krealloc(%zu -> %zu): ksize %zu fits, same pointer expected",
		         from, to, k);
	if (!keep && q == p)
		fail_msg("krealloc(%zu -> %zu): ksize %zu does not fit or is more "
		         "than twice too big, a new object expected", from, to, k);
	size_t keepn = from < to ? from : to;
	size_t bad = fx_check(q, keepn, id);
	if (bad != (size_t)-1)
		fail_msg("krealloc(%zu -> %zu) lost byte %zu", from, to, bad);
	/* a new object has the alignment of its own size; p kept in place
	 * keeps its own */
	if (q != p)
		assert_aligned(q, promised_align(to));
	memset(q, 0x77, ksize(q));
	kfree(q);
	fx_assert_no_faults();
}

static void test_krealloc_shrink_and_grow(void **state)
{
	(void)state;
	static const size_t pairs[][2] = {
		{1000, 600},   {1000, 1000}, {1000, 513},  {1000, 300},
		{1000, 1},     {64, 64},     {64, 33},     {64, 32},
		{64, 8},       {100, 5000},  {5000, 100},  {8, 4096},
		{4096, 2048},  {4096, 2049}, {100, 40000}, {40000, 100},
		{100000, 60000}, {100000, 40000}, {100000, 30000}, {100000, 1000},
		{100000, 300000}, {32768, 32769}, {32769, 32768}, {1, 0x100000},
		{0x100000, 0x80000}, {0x100000, 0x7F000}, {0x100000, 1},
	};
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
		realloc_case(pairs[i][0], pairs[i][1], 100 + i);
	/* same size as ksize keeps the pointer */
	void *p = kmalloc(700);
	assert_non_null(p);
	size_t k = ksize(p);
	assert_ptr_equal(krealloc(p, k), p);
	kfree(p);
	fx_assert_all_back();
}

static void test_krealloc_chain_keeps_contents(void **state)
{
	(void)state;
	/* small -> small -> large -> larger -> small, contents kept each time */
	size_t steps[] = {24, 200, 3000, 50000, 400000, 70000, 500, 16};
	size_t cur = steps[0];
	unsigned char *p = kmalloc(cur);
	assert_non_null(p);
	fx_fill(p, cur, 42);
	for (size_t i = 1; i < sizeof steps / sizeof steps[0]; i++) {
		size_t n = steps[i];
		unsigned char *q = krealloc(p, n);
		assert_non_null(q);
		size_t keepn = cur < n ? cur : n;
		size_t bad = fx_check(q, keepn, 42);
		if (bad != (size_t)-1)
			fail_msg("step %zu (%zu -> %zu): byte %zu lost", i, cur, n, bad);
		if (n > cur)
			fx_fill(q, n, 42); /* extend the pattern */
		p = q;
		cur = n;
		struct kmem_stats st;
		st = fx_stats();
		assert_int_equal(st.large_objects, n > KMEM_SMALL_MAX ? 1 : 0);
	}
	kfree(p);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_krealloc_failure_leaves_object(void **state)
{
	(void)state;
	void *p = kmalloc(3000);
	assert_non_null(p);
	fx_fill(p, 3000, 9);
	size_t k = ksize(p);
	assert_null(krealloc(p, (HEAP_MIB + 8) * FX_MIB));
	assert_null(krealloc(p, SIZE_MAX));
	fx_assert_no_faults();
	assert_int_equal(ksize(p), k);
	assert_int_equal(fx_check(p, 3000, 9), (size_t)-1);
	kfree(p);
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* ------------------------------------------------------------------------
 * kmalloc_aligned
 */

static void test_kmalloc_aligned_all_powers(void **state)
{
	(void)state;
	for (unsigned b = 0; b <= 20; b++) {
		size_t align = (size_t)1 << b;
		size_t cand[] = {0, 1, 8, 100, align - 1, align, align + 1, 4096,
		                 40000, 3 * align - 1};
		size_t n = sizeof cand / sizeof cand[0];
		void *ps[16];
		struct iv iv[16];
		for (size_t i = 0; i < n; i++) {
			size_t s = cand[i];
			void *p = kmalloc_aligned(s, align);
			if (!p)
				fail_msg("kmalloc_aligned(%zu, %zu) returned NULL", s, align);
			assert_aligned(p, align < 8 ? 8 : align);
			size_t k = ksize(p);
			if (k < s)
				fail_msg("kmalloc_aligned(%zu, %zu): ksize %zu", s, align, k);
			assert_in_pool(p, k);
			fx_fill(p, k, b * 100 + i);
			ps[i] = p;
			iv[i].lo = (uintptr_t)p;
			iv[i].hi = (uintptr_t)p + (k ? k : 1);
		}
		for (size_t i = 0; i < n; i++)
			if (fx_check(ps[i], ksize(ps[i]), b * 100 + i) != (size_t)-1)
				fail_msg("align %zu object %zu overwritten", align, i);
		assert_disjoint(iv, n);
		for (size_t i = 0; i < n; i++)
			kfree(ps[i]);
		fx_assert_no_faults();
	}
	/* alignments only a few places in the pool satisfy */
	const size_t big[] = {2 * FX_MIB, 4 * FX_MIB, 16 * FX_MIB, 32 * FX_MIB};
	for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
		void *p = kmalloc_aligned(100, big[i]);
		if (!p)
			fail_msg("kmalloc_aligned(100, %zu MiB) returned NULL", big[i] >> 20);
		assert_aligned(p, big[i]);
		assert_in_pool(p, 100);
		memset(p, 1, 100);
		kfree(p);
	}
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_kmalloc_aligned_rejects(void **state)
{
	(void)state;
	struct snap sn;
	warm_up_failure();
	snap_take(&sn, NULL, 0);
	const size_t bad[] = {3, 5, 6, 12, 24, 48, 100, 1000, 4097, 6144,
	                      FX_MIB + 1, SIZE_MAX, ((size_t)1 << 63) + 1,
	                      ((size_t)1 << 20) | 1};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (kmalloc_aligned(16, bad[i]) != NULL)
			fail_msg("kmalloc_aligned(16, %zu) accepted a non-power of two",
			         bad[i]);
		assert_null(kmalloc_aligned(0, bad[i]));
		assert_null(kmalloc_aligned(100000, bad[i]));
	}
	/* a power of two no usable page satisfies (only physical 0 is 1 TiB
	 * aligned, and it is not usable) */
	assert_null(kmalloc_aligned(8, (size_t)FX_TIB));
	assert_null(kmalloc_aligned(8, (size_t)1 << 63));
	assert_null(kmalloc_aligned(KMEM_MAX_ALLOC + 1, 64));
	fx_assert_no_faults();
	snap_assert_same(&sn, NULL);
}

/* Align 0 is the natural alignment (issue #14.8: a kernel passed 0 and
 * panicked at boot): kmalloc_aligned(size, 0) is kmalloc(size), with its
 * alignment; kpage_alloc(n, 0, max) is page aligned.  Any other
 * non-power of two is still refused, by both. */
static void test_align_zero_is_natural(void **state)
{
	(void)state;
	const size_t sizes[] = {0, 1, 8, 24, 100, 4096, 5000, KMEM_SMALL_MAX, KMEM_SMALL_MAX + 1,
	                        3 * PAGE + 7};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t s = sizes[i];
		void *p = kmalloc_aligned(s, 0);
		if (!p)
			fail_msg("kmalloc_aligned(%zu, 0) returned NULL", s);
		assert_aligned(p, promised_align(s));
		assert_true(ksize(p) >= s);
		assert_in_pool(p, s ? s : 1);
		memset(p, 0x3c, s);
		kfree(p);
	}
	for (size_t n = 1; n <= 9; n += 4) {
		void *r = kpage_alloc(n, 0, 0);
		if (!r)
			fail_msg("kpage_alloc(%zu, 0, 0) returned NULL", n);
		assert_aligned(r, PAGE);
		assert_in_pool(r, n * PAGE);
		memset(r, 0x3c, n * PAGE);
		kpage_free(r, n);
	}
	/* with a ceiling: the lowest run, below it */
	void *low = kpage_alloc(2, 0, FX_SIMPLE_BASE + 64 * FX_MIB);
	assert_non_null(low);
	assert_true(kmem_virt_to_phys(low) + 2 * PAGE <= FX_SIMPLE_BASE + 64 * FX_MIB);
	kpage_free(low, 2);
	const size_t bad[] = {3, 12, PAGE + 1, 3 * PAGE, SIZE_MAX};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (kpage_alloc(1, bad[i], 0) != NULL)
			fail_msg("kpage_alloc(1, %zu, 0) accepted a non-power of two", bad[i]);
		if (kmalloc_aligned(16, bad[i]) != NULL)
			fail_msg("kmalloc_aligned(16, %zu) accepted a non-power of two", bad[i]);
	}
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* ------------------------------------------------------------------------
 * kpage_alloc / kpage_free
 */

static void test_kpage_every_size_to_512(void **state)
{
	(void)state;
	struct kmem_stats base;
	base = fx_stats();
	for (size_t n = 1; n <= 512; n++) {
		struct kmem_stats before, mid, after;
		before = fx_stats();
		unsigned char *p = kpage_alloc(n, 1, 0);
		if (!p)
			fail_msg("kpage_alloc(%zu) returned NULL", n);
		assert_aligned(p, PAGE);
		assert_in_pool(p, n * PAGE);
		mid = fx_stats();
		assert_int_equal(mid.page_runs, before.page_runs + 1);
		assert_int_equal(mid.pages_runs, before.pages_runs + n);
		memset(p, 0x5A, n * PAGE);
		assert_int_equal(p[0], 0x5A);
		assert_int_equal(p[n * PAGE - 1], 0x5A);
		kpage_free(p, n);
		after = fx_stats();
		assert_int_equal(after.page_runs, before.page_runs);
		assert_int_equal(after.pages_runs, before.pages_runs);
		/* span descriptors may come from the pool and stay cached */
		assert_int_equal(after.pages_free + after.pages_metadata,
		                 before.pages_free + before.pages_metadata);
	}
	/* 1..64 live at once: disjoint and intact */
	enum { M = 64 };
	void *ps[M + 1];
	struct iv iv[M];
	for (size_t n = 1; n <= M; n++) {
		ps[n] = kpage_alloc(n, PAGE, 0);
		assert_non_null(ps[n]);
		fx_fill(ps[n], n * PAGE, n);
		iv[n - 1].lo = (uintptr_t)ps[n];
		iv[n - 1].hi = (uintptr_t)ps[n] + n * PAGE;
	}
	struct kmem_stats live;
	live = fx_stats();
	assert_int_equal(live.page_runs, M);
	assert_int_equal(live.pages_runs, M * (M + 1) / 2);
	for (size_t n = 1; n <= M; n++)
		assert_int_equal(fx_check(ps[n], n * PAGE, n), (size_t)-1);
	assert_disjoint(iv, M);
	for (size_t n = M; n >= 1; n--)
		kpage_free(ps[n], n);
	fx_assert_no_faults();
	struct kmem_stats end;
	end = fx_stats();
	assert_int_equal(end.pages_free + end.pages_metadata,
	                 base.pages_free + base.pages_metadata);
	fx_assert_all_back();
}

static void test_kpage_alignment(void **state)
{
	(void)state;
	for (unsigned b = 0; b <= 20; b++) {
		size_t align = (size_t)1 << b;
		const size_t ns[] = {1, 2, 7, 64};
		void *ps[4];
		for (int i = 0; i < 4; i++) {
			ps[i] = kpage_alloc(ns[i], align, 0);
			if (!ps[i])
				fail_msg("kpage_alloc(%zu, %zu) returned NULL", ns[i], align);
			uint64_t a = align < PAGE ? PAGE : align;
			uint64_t phys = kmem_virt_to_phys(ps[i]);
			if (phys % a)
				fail_msg("kpage_alloc(%zu, %zu): phys %#llx misaligned", ns[i],
				         align, (unsigned long long)phys);
			assert_aligned(ps[i], a);
			assert_in_pool(ps[i], ns[i] * PAGE);
			memset(ps[i], 0xC3, ns[i] * PAGE);
		}
		for (int i = 0; i < 4; i++)
			kpage_free(ps[i], ns[i]);
	}
	void *p = kpage_alloc(1, 32 * FX_MIB, 0);
	assert_non_null(p);
	assert_int_equal(kmem_virt_to_phys(p) % (32 * FX_MIB), 0);
	kpage_free(p, 1);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_kpage_lowest_and_ceiling(void **state)
{
	(void)state;
	/* The lowest run is taken. */
	void *a = kpage_alloc(1, 1, 0), *b = kpage_alloc(1, 1, 0);
	assert_non_null(a);
	assert_non_null(b);
	uint64_t pa = kmem_virt_to_phys(a), pb = kmem_virt_to_phys(b);
	assert_true(pb > pa);
	kpage_free(a, 1);
	void *c = kpage_alloc(1, 1, 0);
	assert_ptr_equal(c, a);
	kpage_free(c, 1);
	/* a is the lowest free page: a ceiling at its end finds it, one byte
	 * lower finds nothing */
	assert_null(kpage_alloc(1, 1, pa + PAGE - 1));
	c = kpage_alloc(1, 1, pa + PAGE);
	assert_ptr_equal(c, a);
	kpage_free(c, 1);
	kpage_free(b, 1);

	/* ceilings below all memory */
	const uint64_t low[] = {1, PAGE, POOL_LO - 1, POOL_LO};
	for (int i = 0; i < 4; i++) {
		assert_null(kpage_alloc(1, 1, low[i]));
		assert_null(kpage_alloc(4, PAGE, low[i]));
	}
	/* unaligned ceiling */
	void *u = kpage_alloc(3, 1, 20 * FX_MIB + 100);
	assert_non_null(u);
	assert_true(kmem_virt_to_phys(u) + 3 * PAGE <= 20 * FX_MIB + 100);
	kpage_free(u, 3);
	/* a ceiling far above memory is no ceiling */
	u = kpage_alloc(1, 1, FX_TIB);
	assert_non_null(u);
	kpage_free(u, 1);

	/* exhaust below 32 MiB with 4-page runs */
	const uint64_t ceil = 32 * FX_MIB;
	size_t cap = (ceil - POOL_LO) / (4 * PAGE) + 1, n = 0;
	void **runs = calloc(cap, sizeof *runs);
	assert_non_null(runs);
	for (;;) {
		void *r = kpage_alloc(4, 1, ceil);
		if (!r)
			break;
		assert_true(n < cap);
		uint64_t ph = kmem_virt_to_phys(r);
		if (ph + 4 * PAGE > ceil)
			fail_msg("run [%#llx, +16K) ends above the ceiling",
			         (unsigned long long)ph);
		assert_in_pool(r, 4 * PAGE);
		memset(r, 0xEE, 4 * PAGE);
		runs[n++] = r;
	}
	fx_assert_no_faults();
	/* most of [16 MiB, 32 MiB) was had */
	assert_true(n * 4 * PAGE >= (ceil - POOL_LO) * 3 / 4);
	/* memory above the ceiling is still there, and it is above */
	void *hi = kpage_alloc(4, 1, 0);
	assert_non_null(hi);
	assert_true(kmem_virt_to_phys(hi) + 4 * PAGE > ceil);
	kpage_free(hi, 4);
	for (size_t i = 0; i < n; i++)
		kpage_free(runs[i], 4);
	free(runs);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_kpage_rejects(void **state)
{
	(void)state;
	struct snap sn;
	warm_up_failure();
	snap_take(&sn, NULL, 0);
	assert_null(kpage_alloc(0, 1, 0));
	assert_null(kpage_alloc(0, PAGE, 0));
	const size_t bad_align[] = {3, 4095, 4097, 6000, 3 * PAGE, SIZE_MAX};
	for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++)
		assert_null(kpage_alloc(1, bad_align[i], 0));
	assert_null(kpage_alloc(((size_t)1 << (KMEM_PHYS_BITS - 12)) + 1, 1, 0));
	assert_null(kpage_alloc(SIZE_MAX, 1, 0));
	assert_null(kpage_alloc(SIZE_MAX / PAGE + 1, 1, 0));
	assert_null(kpage_alloc(HEAP_MIB * FX_MIB / PAGE + 1, 1, 0));
	assert_null(kpage_alloc(HEAP_MIB * FX_MIB / PAGE, 1, 0));
	assert_null(kpage_alloc(1, (size_t)FX_TIB, 0));
	fx_assert_no_faults();
	snap_assert_same(&sn, NULL);
}

/* ------------------------------------------------------------------------
 * object caches
 */

static unsigned long ctor_calls;
static bool ctor_irq_off;
static void ctor_mark(void *obj)
{
	ctor_calls++;
	/* "with interrupts in the caller's state": the test calls with them on */
	if (host_irq_disabled())
		ctor_irq_off = true;
	memset(obj, 0xC7, 8);
}

static void test_cache_create_alloc_stats_shrink(void **state)
{
	(void)state;
	static const char name[] = "test-obj48";
	ctor_calls = 0;
	ctor_irq_off = false;
	struct kmem_cache *c = kmem_cache_create(name, 48, 16, ctor_mark);
	assert_non_null(c);
	struct kmem_class_stats cs0;
	kmem_cache_get_stats(c, &cs0);
	assert_true(cs0.object_size >= 48);
	assert_int_equal(cs0.objects_in_use, 0);
	assert_int_equal(cs0.spans, 0);

	enum { N = 1000 };
	void *objs[N];
	struct iv iv[N];
	for (int i = 0; i < N; i++) {
		objs[i] = kmem_cache_alloc(c);
		assert_non_null(objs[i]);
		assert_aligned(objs[i], 16);
		/* the constructor ran on this (fresh) object before it came back */
		unsigned char m[8];
		memset(m, 0xC7, 8);
		assert_memory_equal(objs[i], m, 8);
		assert_true(ksize(objs[i]) >= 48);
		assert_in_pool(objs[i], 48);
		iv[i].lo = (uintptr_t)objs[i];
		iv[i].hi = (uintptr_t)objs[i] + 48;
		fx_fill(objs[i], 48, i);
	}
	/* every distinct object was constructed at least once */
	assert_true(ctor_calls >= N);
	assert_false(ctor_irq_off);
	assert_disjoint(iv, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(fx_check(objs[i], 48, i), (size_t)-1);

	struct kmem_class_stats cs;
	kmem_cache_get_stats(c, &cs);
	assert_int_equal(cs.object_size, cs0.object_size);
	assert_int_equal(cs.objects_in_use, N);
	assert_int_equal(cs.nmalloc, N);
	assert_int_equal(cs.nfree, 0);
	assert_true(cs.spans > 0);
	assert_true(cs.span_pages > 0);
	assert_int_equal(cs.bytes_in_use, (uint64_t)N * cs.object_size);
	assert_int_equal(cs.span_bytes, cs.spans * cs.span_pages * PAGE);
	assert_true(cs.span_bytes >= (uint64_t)N * cs.object_size);
	assert_true(cs.peak_span_bytes >= cs.span_bytes);
	/* the cache's spans are not a kmalloc class's */
	unsigned kcls = kmem_size_class(48);
	struct kmem_class_stats kc = fx_class_stats(kcls);
	assert_int_equal(kc.objects_in_use, 0);

	/* free half (some with kfree), then reclaim: exact counts */
	for (int i = 0; i < N; i += 2) {
		if (i % 4)
			kmem_cache_free(c, objs[i]);
		else
			kfree(objs[i]);
	}
	fx_assert_no_faults();
	kmem_reclaim();
	kmem_cache_get_stats(c, &cs);
	assert_int_equal(cs.objects_in_use, N / 2);
	assert_int_equal(cs.nfree, N / 2);
	assert_int_equal(cs.bytes_in_use, (uint64_t)(N / 2) * cs.object_size);
	for (int i = 1; i < N; i += 2)
		assert_int_equal(fx_check(objs[i], 48, i), (size_t)-1);
	for (int i = 1; i < N; i += 2)
		kmem_cache_free(c, objs[i]);
	fx_assert_no_faults();

	/* shrink gives every (now empty) span back */
	struct kmem_class_stats before;
	kmem_cache_get_stats(c, &before);
	struct kmem_stats hb, ha;
	hb = fx_stats();
	size_t got = kmem_cache_shrink(c);
	ha = fx_stats();
	kmem_cache_get_stats(c, &cs);
	assert_int_equal(cs.objects_in_use, 0);
	assert_int_equal(cs.nmalloc, N);
	assert_int_equal(cs.nfree, N);
	assert_int_equal(cs.spans, 0);
	assert_int_equal(cs.span_bytes, 0);
	assert_int_equal(cs.bytes_in_use, 0);
	assert_true(cs.peak_span_bytes >= before.span_bytes);
	assert_true(cs.peak_span_bytes > 0);
	assert_int_equal(got, before.spans * before.span_pages);
	assert_true(got > 0);
	assert_int_equal(hb.pages_small - ha.pages_small, got);
	assert_int_equal((ha.pages_free + ha.pages_metadata) -
	                 (hb.pages_free + hb.pages_metadata), got);
	/* a second shrink finds nothing */
	assert_int_equal(kmem_cache_shrink(c), 0);

	assert_int_equal(kmem_cache_destroy(c), 0);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_cache_alignments_and_limits(void **state)
{
	(void)state;
	struct {
		size_t size, align, want;
	} ok[] = {
		{1, 0, 8},       {8, 0, 8},       {24, 64, 64},   {100, PAGE, PAGE},
		{100, 1, 8},     {100, 2, 8},     {33, 32, 32},   {KMEM_SMALL_MAX, 0, 8},
		{4000, 4096, 4096}, {7, 128, 128}, {3000, 0, 8},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct kmem_cache *c = kmem_cache_create("t", ok[i].size, ok[i].align, NULL);
		if (!c)
			fail_msg("kmem_cache_create(%zu, %zu) failed", ok[i].size, ok[i].align);
		void *o[20];
		struct iv iv[20];
		for (int j = 0; j < 20; j++) {
			o[j] = kmem_cache_alloc(c);
			assert_non_null(o[j]);
			assert_aligned(o[j], ok[i].want);
			assert_in_pool(o[j], ok[i].size);
			memset(o[j], j, ok[i].size);
			iv[j].lo = (uintptr_t)o[j];
			iv[j].hi = (uintptr_t)o[j] + ok[i].size;
		}
		assert_disjoint(iv, 20);
		struct kmem_class_stats cs;
		kmem_cache_get_stats(c, &cs);
		assert_true(cs.object_size >= ok[i].size);
		assert_int_equal(cs.objects_in_use, 20);
		for (int j = 0; j < 20; j++)
			kmem_cache_free(c, o[j]);
		assert_int_equal(kmem_cache_destroy(c), 0);
	}
	const struct {
		size_t size, align;
	} bad[] = {
		{0, 0}, {0, 8}, {KMEM_SMALL_MAX + 1, 0}, {SIZE_MAX, 0}, {64, 3},
		{64, 24}, {64, 2 * PAGE}, {64, SIZE_MAX}, {64, 4095},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct kmem_cache *c = kmem_cache_create("bad", bad[i].size, bad[i].align, NULL);
		if (c)
			fail_msg("kmem_cache_create(%zu, %zu) accepted", bad[i].size,
			         bad[i].align);
	}
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_cache_destroy_busy_then_empty(void **state)
{
	(void)state;
	struct kmem_cache *c = kmem_cache_create("busy", 200, 0, NULL);
	assert_non_null(c);
	void *o[50];
	for (int i = 0; i < 50; i++) {
		o[i] = kmem_cache_alloc(c);
		assert_non_null(o[i]);
		fx_fill(o[i], 200, i);
	}
	assert_int_equal(kmem_cache_destroy(c), -KMEM_EBUSY);
	/* left as it was: objects intact, the cache still works */
	for (int i = 0; i < 50; i++)
		assert_int_equal(fx_check(o[i], 200, i), (size_t)-1);
	struct kmem_class_stats cs;
	kmem_cache_get_stats(c, &cs);
	assert_int_equal(cs.objects_in_use, 50);
	void *extra = kmem_cache_alloc(c);
	assert_non_null(extra);
	kmem_cache_free(c, extra);
	for (int i = 0; i < 49; i++)
		kmem_cache_free(c, o[i]);
	/* one left (freed with kfree last, after a failed destroy) */
	assert_int_equal(kmem_cache_destroy(c), -KMEM_EBUSY);
	kfree(o[49]);
	fx_assert_no_faults();
	/* freed but not swept: destroy must still see the cache empty */
	assert_int_equal(kmem_cache_destroy(c), 0);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_cache_kfree_and_ksize(void **state)
{
	(void)state;
	struct kmem_cache *c = kmem_cache_create("kfree-me", 72, 8, NULL);
	assert_non_null(c);
	void *o = kmem_cache_alloc(c);
	assert_non_null(o);
	assert_true(ksize(o) >= 72);
	kfree(o);
	fx_assert_no_faults();
	kmem_reclaim();
	struct kmem_class_stats cs;
	kmem_cache_get_stats(c, &cs);
	assert_int_equal(cs.objects_in_use, 0);
	assert_int_equal(cs.nfree, 1);
	assert_int_equal(kmem_cache_destroy(c), 0);
	fx_assert_all_back();
}

/* ------------------------------------------------------------------------
 * faults: each bad call is reported once, with the right kind and
 * address, and changes nothing
 */

static void test_fault_double_free(void **state)
{
	(void)state;
	void *keep = kmalloc(64), *p = kmalloc(64);
	assert_non_null(keep);
	assert_non_null(p);
	fx_fill(keep, 64, 1);
	kfree(p);
	struct snap sn;
	snap_take(&sn, NULL, 0);
	kfree(p); /* freed, not swept yet */
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	snap_assert_same(&sn, NULL);
	kmem_reclaim(); /* now swept; keep holds the span */
	snap_take(&sn, NULL, 0);
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	snap_assert_same(&sn, NULL);
	assert_int_equal(ksize(p), 0);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	assert_null(krealloc(p, 10));
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	snap_assert_same(&sn, NULL);
	assert_int_equal(fx_check(keep, 64, 1), (size_t)-1);
	fx_assert_intact();
	kfree(keep);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_fault_interior(void **state)
{
	(void)state;
	char *p = kmalloc(64);
	char *big = kmalloc(100000);
	assert_non_null(p);
	assert_non_null(big);
	struct snap sn;
	snap_take(&sn, NULL, 0);
	kfree(p + 8);
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, p + 8);
	struct fx_fault f = {0};
	kfree(p + 1);
	f = fx_last_fault();
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, p + 1);
	assert_int_equal(f.size_class, kmem_size_class(64));
	/* span_base: the span's start, as a virtual or a physical address */
	assert_true(f.span_base != 0);
	assert_true((f.span_base <= (uintptr_t)p &&
	             (uintptr_t)p - f.span_base < FX_MIB) ||
	            (f.span_base <= fx_phys(p) && fx_phys(p) - f.span_base < FX_MIB));
	kfree(big + PAGE);
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, big + PAGE);
	kfree(big + 1);
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, big + 1);
	assert_int_equal(ksize(big + 8), 0);
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, big + 8);
	assert_null(krealloc(p + 16, 100));
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, p + 16);
	snap_assert_same(&sn, NULL);
	fx_assert_intact();
	kfree(p);
	kfree(big);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_fault_wild(void **state)
{
	(void)state;
	void *keep = kmalloc(32);
	assert_non_null(keep);
	int local;
	char *win = fx_window();
	const void *wild[] = {
		&local,                        /* stack */
		win + 4 * FX_MIB,              /* reserved hole below the pool */
		win + POOL_LO - PAGE,          /* the page just below the pool */
		win + 512 * FX_MIB,            /* window, no memory there */
		(const void *)(uintptr_t)8,    /* NULL + 8 */
		(const void *)&test_fault_wild, /* code */
	};
	struct snap sn;
	snap_take(&sn, NULL, 0);
	for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
		kfree(wild[i]);
		fx_expect_fault_at(KMEM_FAULT_WILD, wild[i]);
		assert_int_equal(ksize(wild[i]), 0);
		fx_expect_fault_at(KMEM_FAULT_WILD, wild[i]);
	}
	kpage_free(&local, 1);
	fx_expect_fault_at(KMEM_FAULT_WILD, &local);
	kpage_free(win + 4 * FX_MIB, 1);
	fx_expect_fault_at(KMEM_FAULT_WILD, win + 4 * FX_MIB);
	snap_assert_same(&sn, NULL);
	fx_assert_intact();
	kfree(keep);
	kfree(NULL); /* does nothing */
	assert_int_equal(ksize(NULL), 0);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_fault_metadata_pointer(void **state)
{
	(void)state;
	uint64_t mb = 0, ms = 0;
	kmem_metadata_region(&mb, &ms);
	assert_true(ms > 0);
	void *m = fx_virt(mb);
	struct snap sn;
	snap_take(&sn, NULL, 0);
	kfree(m);
	fx_expect_fault_at(KMEM_FAULT_METADATA, m);
	void *m2 = fx_virt(mb + ms / 2);
	kfree(m2);
	fx_expect_fault_at(KMEM_FAULT_METADATA, m2);
	snap_assert_same(&sn, NULL);
	fx_assert_intact();
}

static void test_fault_free_page(void **state)
{
	(void)state;
	char *big = kmalloc(100000);
	assert_non_null(big);
	kfree(big);
	fx_assert_no_faults();
	struct snap sn;
	snap_take(&sn, NULL, 0);
	kfree(big);
	fx_expect_fault_at(KMEM_FAULT_FREE_PAGE, big);
	snap_assert_same(&sn, NULL);

	char *run = kpage_alloc(4, 1, 0);
	assert_non_null(run);
	kpage_free(run, 4);
	fx_assert_no_faults();
	snap_take(&sn, NULL, 0);
	kpage_free(run, 4);
	fx_expect_fault_at(KMEM_FAULT_FREE_PAGE, run);
	kfree(run);
	fx_expect_fault_at(KMEM_FAULT_FREE_PAGE, run);
	assert_int_equal(ksize(run), 0);
	fx_expect_fault_at(KMEM_FAULT_FREE_PAGE, run);
	/* a pool page high up that nothing has used */
	char *untouched = fx_virt(POOL_LO + 40 * FX_MIB);
	kfree(untouched);
	fx_expect_fault_at(KMEM_FAULT_FREE_PAGE, untouched);
	snap_assert_same(&sn, NULL);
	fx_assert_intact();
	fx_assert_all_back();
}

static void test_fault_kpage_bad_size_and_kind(void **state)
{
	(void)state;
	char *run = kpage_alloc(4, 1, 0);
	void *obj = kmalloc(128);
	char *big = kmalloc(50000);
	assert_non_null(run);
	assert_non_null(obj);
	assert_non_null(big);
	fx_fill(run, 4 * PAGE, 4);
	struct snap sn;
	snap_take(&sn, NULL, 0);
	kpage_free(run, 3);
	fx_expect_fault_at(KMEM_FAULT_BAD_SIZE, run);
	kpage_free(run, 5);
	fx_expect_fault_at(KMEM_FAULT_BAD_SIZE, run);
	kpage_free(run, 0);
	fx_expect_fault_at(KMEM_FAULT_BAD_SIZE, run);
	/* a page run freed as an object, and the reverse */
	kfree(run);
	fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, run);
	kpage_free(obj, 1);
	fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, obj);
	kpage_free(big, 13);
	fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, big);
	/* inside a run */
	kpage_free(run + PAGE, 3);
	assert_int_equal(fx_fault_count(), 1);
	assert_ptr_equal(fx_last_fault().addr, run + PAGE);
	fx_faults_reset();
	snap_assert_same(&sn, NULL);
	assert_int_equal(fx_check(run, 4 * PAGE, 4), (size_t)-1);
	fx_assert_intact();
	kpage_free(run, 4);
	kfree(obj);
	kfree(big);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_fault_wrong_cache(void **state)
{
	(void)state;
	static const char na[] = "cache-a", nb[] = "cache-b";
	struct kmem_cache *a = kmem_cache_create(na, 64, 0, NULL);
	struct kmem_cache *b = kmem_cache_create(nb, 64, 0, NULL);
	assert_non_null(a);
	assert_non_null(b);
	void *oa = kmem_cache_alloc(a), *ob = kmem_cache_alloc(b);
	void *k = kmalloc(64);
	assert_non_null(oa);
	assert_non_null(ob);
	assert_non_null(k);
	struct kmem_cache *cs[2] = {a, b};
	struct snap sn;
	snap_take(&sn, cs, 2);
	kmem_cache_free(a, k);
	fx_expect_fault_at(KMEM_FAULT_WRONG_CACHE, k);
	kmem_cache_free(a, ob);
	struct fx_fault f = fx_last_fault();
	fx_expect_fault_at(KMEM_FAULT_WRONG_CACHE, ob);
	assert_non_null(f.cache);
	assert_string_equal(f.cache, nb);
	kmem_cache_free(b, oa);
	f = fx_last_fault();
	fx_expect_fault_at(KMEM_FAULT_WRONG_CACHE, oa);
	assert_string_equal(f.cache, na);
	snap_assert_same(&sn, cs);
	/* double free of a cache object names its cache */
	kmem_cache_free(a, oa);
	fx_assert_no_faults();
	snap_take(&sn, cs, 2);
	kmem_cache_free(a, oa);
	f = fx_last_fault();
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, oa);
	assert_non_null(f.cache);
	assert_string_equal(f.cache, na);
	snap_assert_same(&sn, cs);
	fx_assert_intact();
	kmem_cache_free(b, ob);
	kfree(k);
	fx_assert_no_faults();
	assert_int_equal(kmem_cache_destroy(a), 0);
	assert_int_equal(kmem_cache_destroy(b), 0);
	fx_assert_all_back();
}

static void test_fault_names(void **state)
{
	(void)state;
	const char *names[KMEM_FAULT_CORRUPT + 1];
	for (int k = KMEM_FAULT_DOUBLE_FREE; k <= KMEM_FAULT_CORRUPT; k++) {
		names[k] = kmem_fault_name((enum kmem_fault_kind)k);
		assert_non_null(names[k]);
		assert_true(strlen(names[k]) > 0);
		for (int j = KMEM_FAULT_DOUBLE_FREE; j < k; j++)
			assert_string_not_equal(names[j], names[k]);
	}
	assert_string_equal(kmem_fault_name(KMEM_FAULT_DOUBLE_FREE), "double free");
	assert_string_equal(kmem_fault_name(KMEM_FAULT_INTERIOR), "interior pointer");
}

/* The hook can be swapped; the previous one comes back. */
static unsigned long other_hook_calls;
static void other_hook(const struct kmem_fault *f)
{
	(void)f;
	other_hook_calls++;
}

static void test_fault_hook_swap(void **state)
{
	(void)state;
	other_hook_calls = 0;
	kmem_fault_hook_t prev = kmem_set_fault_hook(other_hook);
	assert_non_null(prev);
	int local;
	kfree(&local);
	assert_int_equal(other_hook_calls, 1);
	assert_int_equal(fx_fault_count(), 0);
	assert_ptr_equal(kmem_set_fault_hook(prev), other_hook);
	kfree(&local);
	fx_expect_fault_at(KMEM_FAULT_WILD, &local);
	assert_int_equal(other_hook_calls, 1);
}

/* ------------------------------------------------------------------------
 * CPUs
 */

struct cpu_thread {
	unsigned cpu;
	int nobj;
	void *objs[64];
	bool free_own;     /* free the objects on the thread itself */
	bool self_release; /* host_cpu_release() before waiting */
	int online_rc;
	pthread_mutex_t m;
	pthread_cond_t cv;
	int stage; /* 1: thread done allocating; 2: main says exit */
	bool ok;
};

static void *cpu_thread_fn(void *arg)
{
	struct cpu_thread *t = arg;
	t->ok = host_cpu_claim((int)t->cpu) == (int)t->cpu;
	for (int i = 0; i < t->nobj; i++) {
		t->objs[i] = kmalloc(200);
		if (!t->objs[i])
			t->ok = false;
		else
			fx_fill(t->objs[i], 200, i);
	}
	if (t->free_own)
		for (int i = 0; i < t->nobj; i++)
			kfree(t->objs[i]);
	if (t->self_release)
		host_cpu_release();
	pthread_mutex_lock(&t->m);
	t->stage = 1;
	pthread_cond_broadcast(&t->cv);
	while (t->stage != 2)
		pthread_cond_wait(&t->cv, &t->m);
	pthread_mutex_unlock(&t->m);
	return NULL;
}

static void run_cpu_thread(struct cpu_thread *t, pthread_t *th)
{
	pthread_mutex_init(&t->m, NULL);
	pthread_cond_init(&t->cv, NULL);
	assert_int_equal(pthread_create(th, NULL, cpu_thread_fn, t), 0);
	pthread_mutex_lock(&t->m);
	while (t->stage != 1)
		pthread_cond_wait(&t->cv, &t->m);
	pthread_mutex_unlock(&t->m);
}

static void end_cpu_thread(struct cpu_thread *t, pthread_t th)
{
	pthread_mutex_lock(&t->m);
	t->stage = 2;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->m);
	pthread_join(th, NULL);
}

static void test_cpu_online_offline_args(void **state)
{
	(void)state;
	struct kmem_stats st;
	st = fx_stats();
	assert_int_equal(st.cpus_online, 1);
	assert_int_equal(kmem_cpu_online(1), 0);
	assert_int_equal(kmem_cpu_online(1), 0); /* idempotent */
	st = fx_stats();
	assert_int_equal(st.cpus_online, 2);
	assert_int_equal(kmem_cpu_online(2), -KMEM_EINVAL); /* max_cpus = 2 */
	assert_int_equal(kmem_cpu_online(KMEM_MAX_CPUS), -KMEM_EINVAL);
	assert_int_equal(kmem_cpu_online(~0u), -KMEM_EINVAL);
	assert_int_equal(kmem_cpu_offline(2), -KMEM_EINVAL);
	assert_int_equal(kmem_cpu_offline(~0u), -KMEM_EINVAL);
	assert_int_equal(kmem_cpu_offline(1), 0);
	st = fx_stats();
	assert_int_equal(st.cpus_online, 1);
	fx_assert_no_faults();
}

/* A stopped CPU's cached span (empty after its own frees) comes back only
 * through the offline flush. */
static void test_cpu_offline_flushes_stopped_cpu(void **state)
{
	(void)state;
	struct kmem_stats st;
	struct cpu_thread t = {.cpu = 1, .nobj = 40, .free_own = true};
	pthread_t th;
	run_cpu_thread(&t, &th);
	assert_true(t.ok);
	st = fx_stats();
	assert_int_equal(st.cpus_online, 2);
	assert_true(st.pages_small > 0);
	/* CPU 1 is stopped (waiting): offline it from here */
	assert_int_equal(kmem_cpu_offline(1), 0);
	st = fx_stats();
	assert_int_equal(st.cpus_online, 1);
	fx_assert_all_back();
	end_cpu_thread(&t, th); /* its exit offlines CPU 1 again: harmless */
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* Objects allocated on CPU 1 and still live when it goes offline: the span
 * goes back to the mcentral, and once freed on CPU 0 it returns. */
static void test_cpu_offline_live_objects_freed_elsewhere(void **state)
{
	(void)state;
	unsigned cls = kmem_size_class(200);
	struct cpu_thread t = {.cpu = 1, .nobj = 40, .self_release = true};
	pthread_t th;
	run_cpu_thread(&t, &th);
	assert_true(t.ok);
	struct kmem_stats st;
	st = fx_stats();
	assert_int_equal(st.cpus_online, 1);
	kmem_reclaim();
	struct kmem_class_stats cs = fx_class_stats(cls);
	assert_int_equal(cs.objects_in_use, 40);
	assert_true(cs.spans > 0);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(fx_check(t.objs[i], 200, i), (size_t)-1);
		kfree(t.objs[i]);
	}
	fx_assert_no_faults();
	fx_assert_all_back();
	cs = fx_class_stats(cls);
	assert_int_equal(cs.spans, 0);
	end_cpu_thread(&t, th);
	fx_assert_all_back();
}

/* ------------------------------------------------------------------------
 * statistics
 */

static void test_stats_identity_and_counts(void **state)
{
	(void)state;
	struct kmem_stats st;
	st = fx_stats();
	assert_true(st.pages_managed > 0);
	assert_true(st.pages_managed <= HEAP_MIB * FX_MIB / PAGE);
	assert_true(st.nclasses > 2);
	assert_int_equal(st.arenas, 2); /* [16 MiB, 80 MiB) touches arenas 0, 1 */
	assert_true(st.metadata_bytes > 0);
	assert_true(st.metadata_used > 0);
	assert_true(st.metadata_used <= st.metadata_bytes);
	uint64_t mb = 0, ms = 0;
	kmem_metadata_region(&mb, &ms);
	assert_int_equal(ms, st.metadata_bytes);
	assert_true(mb >= POOL_LO && mb + ms <= POOL_HI);
	/* pool + metadata region fit in the usable region */
	assert_true(st.pages_managed * PAGE + ms <= HEAP_MIB * FX_MIB);
	/* and the metadata region is what was asked for */
	struct kmem_config cfg;
	struct kmem_region r = {POOL_LO, HEAP_MIB * FX_MIB, KMEM_REGION_USABLE, 0};
	fx_config(&cfg, &r, 1, 2);
	assert_true(ms >= kmem_metadata_size(&cfg));
	assert_int_equal(st.pages_managed + (ms + PAGE - 1) / PAGE,
	                 HEAP_MIB * FX_MIB / PAGE);

	assert_int_equal(kmem_get_class_stats(0, &(struct kmem_class_stats){0}),
	                 -KMEM_EINVAL);
	assert_int_equal(kmem_get_class_stats(st.nclasses, &(struct kmem_class_stats){0}),
	                 -KMEM_EINVAL);
	assert_int_equal(kmem_get_class_stats(~0u, &(struct kmem_class_stats){0}),
	                 -KMEM_EINVAL);
	uint32_t prev = 0;
	for (unsigned c = 1; c < st.nclasses; c++) {
		struct kmem_class_stats cs = fx_class_stats(c);
		assert_true(cs.object_size > prev);
		assert_true(cs.span_pages > 0);
		assert_true(cs.span_pages * PAGE >= cs.object_size);
		prev = cs.object_size;
	}
	assert_int_equal(prev, KMEM_SMALL_MAX);

	/* counts of one class across alloc / free / reclaim */
	unsigned cls = kmem_size_class(300);
	kmem_reclaim();
	struct kmem_class_stats c0 = fx_class_stats(cls);
	enum { N = 100 };
	void *o[N];
	for (int i = 0; i < N; i++) {
		o[i] = kmalloc(300);
		assert_non_null(o[i]);
	}
	void *big[3], *run = kpage_alloc(5, 1, 0);
	for (int i = 0; i < 3; i++) {
		big[i] = kmalloc(40000 + i * 10000);
		assert_non_null(big[i]);
	}
	assert_non_null(run);
	st = fx_stats();
	assert_int_equal(st.large_objects, 3);
	assert_int_equal(st.page_runs, 1);
	assert_int_equal(st.pages_runs, 5);
	assert_true(st.pages_large >= 10 + 13 + 15);
	assert_true(st.pages_small > 0);
	assert_int_equal(st.pages_free + st.pages_small + st.pages_large +
	                 st.pages_runs + st.pages_metadata, st.pages_managed);
	for (int i = 0; i < 40; i++)
		kfree(o[i]);
	kmem_reclaim();
	struct kmem_class_stats c1 = fx_class_stats(cls);
	assert_int_equal(c1.nmalloc - c0.nmalloc, N);
	assert_int_equal(c1.nfree - c0.nfree, 40);
	assert_int_equal(c1.objects_in_use, c0.objects_in_use + N - 40);
	assert_int_equal(c1.bytes_in_use, c1.objects_in_use * c1.object_size);
	assert_int_equal(c1.span_bytes, c1.spans * c1.span_pages * PAGE);
	assert_true(c1.span_bytes >= c1.bytes_in_use);
	assert_true(c1.peak_span_bytes >= c1.span_bytes);
	for (int i = 40; i < N; i++)
		kfree(o[i]);
	for (int i = 0; i < 3; i++)
		kfree(big[i]);
	kpage_free(run, 5);
	kmem_reclaim();
	struct kmem_class_stats c2 = fx_class_stats(cls);
	assert_int_equal(c2.nfree - c0.nfree, N);
	assert_int_equal(c2.objects_in_use, 0);
	assert_int_equal(c2.spans, 0);
	assert_true(c2.peak_span_bytes >= c1.span_bytes);
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* ------------------------------------------------------------------------
 * hot-add
 */

/* Allocates every free page as 1-page runs; checks each is in `ok`; counts
 * those in [lo, hi); frees them.  Each run needs a span descriptor, and
 * descriptors come from the pool too (pages_metadata), so not every free
 * page becomes a run: when the pool is dry, runs + small + metadata pages
 * account for all of it. */
struct range {
	uint64_t lo, hi;
};

static size_t drain_pages(const struct range *ok, size_t nok, uint64_t lo,
                          uint64_t hi, size_t *total)
{
	struct kmem_stats st;
	st = fx_stats();
	size_t cap = st.pages_managed + 1, n = 0, in = 0;
	void **pg = calloc(cap, sizeof *pg);
	assert_non_null(pg);
	for (;;) {
		void *p = kpage_alloc(1, 1, 0);
		if (!p)
			break;
		assert_true(n < cap);
		uint64_t ph = kmem_virt_to_phys(p);
		bool good = false;
		for (size_t i = 0; i < nok; i++)
			if (ph >= ok[i].lo && ph + PAGE <= ok[i].hi)
				good = true;
		if (!good)
			fail_msg("page %#llx outside usable memory", (unsigned long long)ph);
		memset(p, 0x3C, PAGE);
		if (ph >= lo && ph < hi)
			in++;
		pg[n++] = p;
	}
	st = fx_stats();
	assert_int_equal(st.pages_free, 0);
	assert_int_equal(st.pages_runs, n);
	assert_int_equal(st.page_runs, n);
	assert_int_equal(n + st.pages_small + st.pages_metadata + st.pages_large,
	                 st.pages_managed);
	/* descriptors are small: most pages became runs */
	assert_true(st.pages_metadata * 8 < n);
	for (size_t i = 0; i < n; i++)
		kpage_free(pg[i], 1);
	free(pg);
	*total = n;
	return in;
}

static void test_hot_add_new_arena(void **state)
{
	(void)state;
	struct kmem_stats before, after;
	before = fx_stats();
	const uint64_t base = 256 * FX_MIB, len = 32 * FX_MIB;
	fx_usable(base, len);
	struct kmem_region r = {base, len, KMEM_REGION_USABLE, 0};
	long added = kmem_hot_add(&r);
	if (added <= 0)
		fail_msg("kmem_hot_add returned %ld", added);
	assert_true((uint64_t)added <= len / PAGE);
	assert_true((uint64_t)added >= len / PAGE / 2);
	after = fx_stats();
	/* every page of the region is managed: the added ones free, the
	 * first ones holding the new arena's metadata */
	assert_int_equal(after.pages_managed, before.pages_managed + len / PAGE);
	assert_int_equal(after.pages_free, before.pages_free + (uint64_t)added);
	assert_int_equal(after.pages_metadata, before.pages_metadata + len / PAGE - (uint64_t)added);
	assert_int_equal(after.arenas, before.arenas + 1);
	fx_assert_intact();

	/* every page of both regions can be had, and only those; the new
	 * arena's metadata was carved from the start of the region, so its
	 * pool is the region's tail */
	uint64_t mb = 0, ms = 0;
	kmem_metadata_region(&mb, &ms);
	uint64_t tail = base + len - (uint64_t)added * PAGE;
	struct range ok[3] = {{POOL_LO, mb}, {mb + ms, POOL_HI}, {tail, base + len}};
	size_t total = 0;
	size_t in = drain_pages(ok, 3, base, base + len, &total);
	assert_true(in > 0 && in <= (size_t)added);
	assert_true(in >= (size_t)added / 2);
	assert_true(total > in);

	/* overlap with memory already managed */
	struct kmem_region again = r;
	assert_int_equal(kmem_hot_add(&again), -KMEM_EINVAL);
	struct kmem_region part = {base + len - FX_MIB, 4 * FX_MIB, KMEM_REGION_USABLE, 0};
	fx_usable(part.base, part.length);
	assert_int_equal(kmem_hot_add(&part), -KMEM_EINVAL);
	struct kmem_region old = {POOL_LO + FX_MIB, FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(kmem_hot_add(&old), -KMEM_EINVAL);
	struct kmem_region cover = {0, 512 * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(kmem_hot_add(&cover), -KMEM_EINVAL);
	/* bad type, no whole page */
	struct kmem_region resv = {400 * FX_MIB, FX_MIB, KMEM_REGION_RESERVED, 0};
	assert_int_equal(kmem_hot_add(&resv), -KMEM_EINVAL);
	struct kmem_region odd = {400 * FX_MIB, FX_MIB, 77, 0};
	assert_int_equal(kmem_hot_add(&odd), -KMEM_EINVAL);
	struct kmem_region tiny = {400 * FX_MIB + 1, PAGE, KMEM_REGION_USABLE, 0};
	assert_int_equal(kmem_hot_add(&tiny), -KMEM_EINVAL);
	struct kmem_region empty = {400 * FX_MIB, 0, KMEM_REGION_USABLE, 0};
	assert_int_equal(kmem_hot_add(&empty), -KMEM_EINVAL);
	/* a page in a new arena cannot hold that arena's metadata */
	fx_usable(512 * FX_MIB, PAGE);
	struct kmem_region lone = {512 * FX_MIB, PAGE, KMEM_REGION_USABLE, 0};
	assert_int_equal(kmem_hot_add(&lone), -KMEM_ENOMEM);
	struct kmem_stats end;
	end = fx_stats();
	assert_int_equal(end.pages_managed, after.pages_managed);
	assert_int_equal(end.arenas, after.arenas);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_hot_add_reclaimable_in_known_arena(void **state)
{
	(void)state;
	fx_reserve(FX_GIB);
	/* both in arenas 0 and 1, which the usable region already touches */
	struct kmem_region map[] = {
		{POOL_LO, HEAP_MIB * FX_MIB, KMEM_REGION_USABLE, 0},
		{POOL_HI, 8 * FX_MIB, KMEM_REGION_RECLAIMABLE, 0},
	};
	assert_int_equal(fx_init(map, 2, 2), 0);
	struct kmem_stats before, after;
	before = fx_stats();
	assert_true(before.pages_managed < HEAP_MIB * FX_MIB / PAGE);
	/* the reclaimable part was left alone (it is PROT_NONE in the fixture) */
	fx_usable(map[1].base, map[1].length);
	long added = kmem_hot_add(&map[1]);
	/* arena 0 and 1 already have metadata: every page is added */
	assert_int_equal(added, (long)(8 * FX_MIB / PAGE));
	after = fx_stats();
	assert_int_equal(after.pages_managed, before.pages_managed + 8 * FX_MIB / PAGE);
	assert_int_equal(after.arenas, before.arenas);
	assert_int_equal(kmem_hot_add(&map[1]), -KMEM_EINVAL);
	uint64_t mb = 0, ms = 0;
	kmem_metadata_region(&mb, &ms);
	struct range ok[3] = {{POOL_LO, mb}, {mb + ms, POOL_HI},
	                      {map[1].base, map[1].base + map[1].length}};
	size_t total = 0;
	size_t in = drain_pages(ok, 3, map[1].base, map[1].base + map[1].length, &total);
	assert_true(in > 0 && in <= 8 * FX_MIB / PAGE);
	assert_true(total > in);
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* ------------------------------------------------------------------------
 * kmem_init errors
 */

static void test_init_errors(void **state)
{
	(void)state;
	struct kmem_config cfg;
	struct kmem_region none[] = {
		{POOL_LO, 64 * FX_MIB, KMEM_REGION_RESERVED, 0},
		{POOL_LO + 64 * FX_MIB, FX_MIB, KMEM_REGION_RECLAIMABLE, 0},
		{POOL_LO + 80 * FX_MIB, FX_MIB, 99, 0},
	};
	assert_int_equal(fx_init(none, 3, 2), -KMEM_EINVAL);
	assert_int_equal(fx_init(none, 0, 2), -KMEM_EINVAL);
	/* usable, but no whole page */
	struct kmem_region partial[] = {{POOL_LO + 1, PAGE, KMEM_REGION_USABLE, 0},
	                                {POOL_LO + 3 * PAGE, PAGE - 1, KMEM_REGION_USABLE, 0},
	                                {POOL_LO + 8 * PAGE, 0, KMEM_REGION_USABLE, 0}};
	assert_int_equal(fx_init(partial, 3, 2), -KMEM_EINVAL);
	/* usable, but covered by a reserved region */
	struct kmem_region covered[] = {{POOL_LO, 8 * FX_MIB, KMEM_REGION_USABLE, 0},
	                                {POOL_LO - 1, 8 * FX_MIB + 2, KMEM_REGION_RESERVED, 0}};
	assert_int_equal(fx_init(covered, 2, 2), -KMEM_EINVAL);
	/* malformed config */
	struct kmem_region good = {POOL_LO, 16 * FX_MIB, KMEM_REGION_USABLE, 0};
	fx_config(&cfg, NULL, 1, 2);
	assert_int_equal(kmem_init(&cfg), -KMEM_EINVAL);
	assert_int_equal(kmem_metadata_size(&cfg), 0);
	fx_config(&cfg, &good, 1, KMEM_MAX_CPUS + 1);
	assert_int_equal(kmem_init(&cfg), -KMEM_EINVAL);
	assert_int_equal(kmem_metadata_size(&cfg), 0);
	/* memory beyond the physical address bits */
	struct kmem_region beyond = {(uint64_t)1 << KMEM_PHYS_BITS, FX_MIB,
	                             KMEM_REGION_USABLE, 0};
	fx_config(&cfg, &beyond, 1, 2);
	assert_int_equal(kmem_init(&cfg), -KMEM_EINVAL);
	/* a usable range too small to hold the metadata (precondition: the
	 * metadata for it is bigger than the range) */
	struct kmem_region small[] = {{POOL_LO, 2 * PAGE, KMEM_REGION_USABLE, 0}};
	fx_config(&cfg, small, 1, 2);
	assert_true(kmem_metadata_size(&cfg) > 2 * PAGE);
	assert_int_equal(fx_init(small, 1, 2), -KMEM_ENOMEM);
	/* back to a working heap for the teardown */
	fx_simple(HEAP_MIB, 2);
}

static void test_init_caller_metadata(void **state)
{
	(void)state;
	struct kmem_region r = {POOL_LO, HEAP_MIB * FX_MIB, KMEM_REGION_USABLE, 0};
	const uint64_t mbase = 96 * FX_MIB; /* outside the map */
	struct kmem_config cfg;
	fx_config(&cfg, &r, 1, 2);
	cfg.metadata_base = mbase;
	cfg.metadata_size = 64 * FX_MIB; /* any nonzero size */
	size_t need = kmem_metadata_size(&cfg);
	assert_true(need > 0);
	printf("metadata for 64 MiB: %zu bytes (%.3f%%)\n", need,
	       100.0 * (double)need / (double)(HEAP_MIB * FX_MIB));
	/* too small */
	assert_int_equal(fx_init_meta(&r, 1, 2, mbase, need - 1), -KMEM_ENOMEM);
	assert_int_equal(fx_init_meta(&r, 1, 2, mbase, need / 2), -KMEM_ENOMEM);
	/* exactly enough */
	assert_int_equal(fx_init_meta(&r, 1, 2, mbase, need), 0);
	uint64_t mb = 0, ms = 0;
	kmem_metadata_region(&mb, &ms);
	assert_int_equal(mb, mbase);
	assert_int_equal(ms, need);
	struct kmem_stats st;
	st = fx_stats();
	/* nothing carved from the pool: every usable page is managed */
	assert_int_equal(st.pages_managed, HEAP_MIB * FX_MIB / PAGE);
	void *p = kmalloc(1000), *q = kpage_alloc(8, 1, 0);
	assert_non_null(p);
	assert_non_null(q);
	kfree(p);
	kpage_free(q, 8);
	fx_assert_all_back();

	/* a caller region inside usable memory is excluded from the pool */
	uint64_t inside = POOL_LO + 8 * FX_MIB;
	cfg.metadata_base = inside;
	need = kmem_metadata_size(&cfg);
	assert_int_equal(fx_init_meta(&r, 1, 2, inside, need), 0);
	st = fx_stats();
	assert_true(st.pages_managed <= (HEAP_MIB * FX_MIB - need) / PAGE);
	uint64_t mmb = 0, mms = 0;
	kmem_metadata_region(&mmb, &mms);
	assert_int_equal(mmb, inside);
	assert_int_equal(mms, need);
	struct range ok[2] = {{POOL_LO, inside}, {inside + need, POOL_HI}};
	size_t total = 0;
	drain_pages(ok, 2, 0, 0, &total);
	assert_true(total > 0);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_init_again_discards_old_heap(void **state)
{
	(void)state;
	for (int i = 0; i < 50; i++) {
		void *p = kmalloc(100);
		assert_non_null(p);
	}
	struct kmem_region r = {POOL_LO, HEAP_MIB * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(fx_init(&r, 1, 2), 0);
	/* the new heap has nothing in use */
	fx_assert_all_back();
}

/* ------------------------------------------------------------------------
 * memory map intake
 */

#define INTAKE_SPAN (256 * FX_MIB)

static const struct kmem_region intake_map[] = {
	{16 * FX_MIB + 100, 24 * FX_MIB + 2900, KMEM_REGION_USABLE, 0}, /* unaligned */
	{30 * FX_MIB, 20 * FX_MIB, KMEM_REGION_USABLE, 0},              /* overlaps */
	{20 * FX_MIB + 10, 10, KMEM_REGION_RESERVED, 0},                /* tiny hole */
	{35 * FX_MIB, FX_MIB, KMEM_REGION_RESERVED, 0},                 /* hole in overlap */
	{50 * FX_MIB, PAGE, KMEM_REGION_RESERVED, 0},                   /* adjacent */
	{60 * FX_MIB + 1, 2 * PAGE, KMEM_REGION_USABLE, 0},             /* 1 whole page */
	{70 * FX_MIB, FX_MIB, KMEM_REGION_USABLE, 0},                   /* all covered: */
	{69 * FX_MIB, 3 * FX_MIB, KMEM_REGION_RESERVED, 0},
	{100 * FX_MIB, 30 * FX_MIB, KMEM_REGION_USABLE, 0},             /* crosses 128 MiB */
	{110 * FX_MIB + 5, FX_MIB - 5, KMEM_REGION_RECLAIMABLE, 0},     /* reserved wins */
	{120 * FX_MIB, 2 * PAGE, 99, 0},                                /* unknown type */
	{200 * FX_MIB, 0, KMEM_REGION_USABLE, 0},                       /* empty */
	{127 * FX_MIB + PAGE + 1, 1, KMEM_REGION_RESERVED, 0},          /* 1 byte */
	{16 * FX_MIB, 100, KMEM_REGION_RESERVED, 0},                    /* before usable */
};
#define INTAKE_N (sizeof intake_map / sizeof intake_map[0])

/* Reference: page i is managed iff wholly inside a usable region and
 * touching no other region. */
static uint8_t *intake_expected(const struct kmem_region *m, size_t n)
{
	size_t np = INTAKE_SPAN / PAGE;
	uint8_t *e = calloc(np, 1);
	assert_non_null(e);
	for (size_t i = 0; i < n; i++) {
		if (m[i].type != KMEM_REGION_USABLE)
			continue;
		uint64_t lo = (m[i].base + PAGE - 1) / PAGE, hi = (m[i].base + m[i].length) / PAGE;
		for (uint64_t p = lo; p < hi && p < np; p++)
			e[p] = 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (m[i].type == KMEM_REGION_USABLE || m[i].length == 0)
			continue;
		uint64_t lo = m[i].base / PAGE;
		uint64_t hi = (m[i].base + m[i].length + PAGE - 1) / PAGE;
		for (uint64_t p = lo; p < hi && p < np; p++)
			e[p] = 0;
	}
	return e;
}

static void intake_run(const struct kmem_region *m, size_t n, uint64_t *managed_out,
                       uint64_t *meta_out)
{
	fx_reserve(INTAKE_SPAN);
	int rc = fx_init(m, n, 2);
	assert_int_equal(rc, 0);
	uint8_t *e = intake_expected(m, n);
	size_t np = INTAKE_SPAN / PAGE;
	uint64_t mb = 0, ms = 0;
	kmem_metadata_region(&mb, &ms);
	/* the metadata region lies in managed-able pages only */
	for (uint64_t p = mb / PAGE; p < (mb + ms + PAGE - 1) / PAGE; p++) {
		if (!e[p])
			fail_msg("metadata page %#llx is not in usable memory",
			         (unsigned long long)(p * PAGE));
		e[p] = 0; /* not in the pool */
	}
	size_t want = 0;
	for (size_t p = 0; p < np; p++)
		want += e[p];
	struct kmem_stats st;
	st = fx_stats();
	assert_int_equal(st.pages_managed, want);

	/* Everything that can be had, as single pages: each in the pool, none
	 * twice (touching a hole would also crash: holes are PROT_NONE). */
	uint8_t *seen = calloc(np, 1);
	void **pg = calloc(want + 1, sizeof *pg);
	assert_non_null(seen);
	assert_non_null(pg);
	void *small[64];
	for (int i = 0; i < 64; i++) { /* some small spans too */
		small[i] = kmalloc(1 + i * 97);
		assert_non_null(small[i]);
		uint64_t ph = kmem_virt_to_phys(small[i]);
		assert_true(e[ph / PAGE]);
		memset(small[i], 0x42, 1 + i * 97);
	}
	size_t got = 0;
	for (;;) {
		void *p = kpage_alloc(1, 1, 0);
		if (!p)
			break;
		uint64_t ph = kmem_virt_to_phys(p);
		assert_int_equal(ph, fx_phys(p));
		assert_true(ph % PAGE == 0 && ph < INTAKE_SPAN);
		if (!e[ph / PAGE])
			fail_msg("page %#llx handed out but not managed memory",
			         (unsigned long long)ph);
		if (seen[ph / PAGE])
			fail_msg("page %#llx handed out twice", (unsigned long long)ph);
		seen[ph / PAGE] = 1;
		memset(p, 0x99, PAGE);
		assert_true(got < want);
		pg[got++] = p;
	}
	st = fx_stats();
	assert_int_equal(st.pages_free, 0);
	assert_int_equal(st.pages_runs, got);
	/* the pool pages not handed out hold small spans or span metadata */
	assert_int_equal(got + st.pages_small + st.pages_metadata, want);
	for (int i = 0; i < 64; i++)
		kfree(small[i]);
	for (size_t i = 0; i < got; i++)
		kpage_free(pg[i], 1);
	fx_assert_no_faults();
	fx_assert_all_back();
	free(pg);
	free(seen);
	free(e);
	*managed_out = want;
	*meta_out = mb;
}

static void test_intake_unsorted_overlapping_holes(void **state)
{
	(void)state;
	struct kmem_region m[INTAKE_N];
	uint64_t managed[3], meta[3];
	/* as given */
	memcpy(m, intake_map, sizeof m);
	intake_run(m, INTAKE_N, &managed[0], &meta[0]);
	/* reversed */
	for (size_t i = 0; i < INTAKE_N; i++)
		m[i] = intake_map[INTAKE_N - 1 - i];
	intake_run(m, INTAKE_N, &managed[1], &meta[1]);
	/* a fixed shuffle */
	memcpy(m, intake_map, sizeof m);
	uint64_t x = 12345;
	for (size_t i = INTAKE_N - 1; i > 0; i--) {
		x = fx_mix64(x);
		size_t j = x % (i + 1);
		struct kmem_region t = m[i];
		m[i] = m[j];
		m[j] = t;
	}
	intake_run(m, INTAKE_N, &managed[2], &meta[2]);
	assert_int_equal(managed[0], managed[1]);
	assert_int_equal(managed[0], managed[2]);
	assert_int_equal(meta[0], meta[1]);
	assert_int_equal(meta[0], meta[2]);
	printf("intake: %llu pages managed, metadata at %#llx\n",
	       (unsigned long long)managed[0], (unsigned long long)meta[0]);
	/* leave the standard heap for the teardown */
	fx_simple(HEAP_MIB, 2);
}

/* ------------------------------------------------------------------------
 * metadata size
 */

static void test_metadata_size_ratio(void **state)
{
	(void)state;
	struct kmem_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.direct_map_offset = 0;
	cfg.max_cpus = KMEM_MAX_CPUS;

	/* a 4 GiB PC-style map */
	struct kmem_region pc[] = {
		{0, 640 * FX_KIB, KMEM_REGION_USABLE, 0},
		{640 * FX_KIB, 384 * FX_KIB, KMEM_REGION_RESERVED, 0},
		{FX_MIB, 3 * FX_GIB - FX_MIB, KMEM_REGION_USABLE, 0},
		{3 * FX_GIB, FX_GIB, KMEM_REGION_RESERVED, 0},
		{4 * FX_GIB, FX_GIB, KMEM_REGION_USABLE, 0},
	};
	cfg.regions = pc;
	cfg.nregions = 5;
	size_t m4 = kmem_metadata_size(&cfg);
	uint64_t managed4 = 640 * FX_KIB + 3 * FX_GIB - FX_MIB + FX_GIB;
	printf("metadata for a 4 GiB map: %zu bytes = %.4f%% of %llu MiB\n", m4,
	       100.0 * (double)m4 / (double)managed4,
	       (unsigned long long)(managed4 >> 20));
	assert_true(m4 > 0);
	assert_true((double)m4 <= 0.005 * (double)managed4);

	/* 1 TiB in 16 regions of 64 GiB spread over 16 TiB */
	struct kmem_region sparse[16];
	for (int i = 0; i < 16; i++) {
		sparse[i].base = (uint64_t)i * FX_TIB + 5 * FX_GIB;
		sparse[i].length = 64 * FX_GIB;
		sparse[i].type = KMEM_REGION_USABLE;
		sparse[i].node = 0;
	}
	cfg.regions = sparse;
	cfg.nregions = 16;
	size_t m1t = kmem_metadata_size(&cfg);
	uint64_t managed1t = 16 * 64 * FX_GIB;
	printf("metadata for 1 TiB over 16 TiB: %zu bytes = %.4f%% of %llu GiB\n",
	       m1t, 100.0 * (double)m1t / (double)managed1t,
	       (unsigned long long)(managed1t >> 30));
	assert_true(m1t > 0);
	assert_true((double)m1t <= 0.005 * (double)managed1t);
	/* memory the map does not cover costs nothing: 16 regions spread over
	 * 16 TiB cost about what one contiguous 1 TiB region costs */
	struct kmem_region dense = {5 * FX_GIB, FX_TIB, KMEM_REGION_USABLE, 0};
	cfg.regions = &dense;
	cfg.nregions = 1;
	size_t mdense = kmem_metadata_size(&cfg);
	printf("metadata for 1 TiB contiguous: %zu bytes\n", mdense);
	assert_true(mdense > 0);
	assert_true(m1t <= mdense + mdense / 8);
	/* more memory needs more metadata */
	assert_true(m1t > m4);

	/* no usable page */
	struct kmem_region res = {0, FX_GIB, KMEM_REGION_RESERVED, 0};
	cfg.regions = &res;
	cfg.nregions = 1;
	assert_int_equal(kmem_metadata_size(&cfg), 0);
	cfg.nregions = 0;
	assert_int_equal(kmem_metadata_size(&cfg), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_kmalloc_zero),
		T(test_kmalloc_every_size_to_4096),
		T(test_kmalloc_sizes_to_32k_and_large),
		T(test_kmalloc_huge_is_null),
		T(test_kzalloc_zero_after_dirty_reuse),
		T(test_kcalloc_edges),
		T(test_krealloc_null_and_zero),
		T(test_krealloc_shrink_and_grow),
		T(test_krealloc_chain_keeps_contents),
		T(test_krealloc_failure_leaves_object),
		T(test_kmalloc_aligned_all_powers),
		T(test_kmalloc_aligned_rejects),
		T(test_align_zero_is_natural),
		T(test_kpage_every_size_to_512),
		T(test_kpage_alignment),
		T(test_kpage_lowest_and_ceiling),
		T(test_kpage_rejects),
		T(test_cache_create_alloc_stats_shrink),
		T(test_cache_alignments_and_limits),
		T(test_cache_destroy_busy_then_empty),
		T(test_cache_kfree_and_ksize),
		T(test_fault_double_free),
		T(test_fault_interior),
		T(test_fault_wild),
		T(test_fault_metadata_pointer),
		T(test_fault_free_page),
		T(test_fault_kpage_bad_size_and_kind),
		T(test_fault_wrong_cache),
		T(test_fault_names),
		T(test_fault_hook_swap),
		T(test_cpu_online_offline_args),
		T(test_cpu_offline_flushes_stopped_cpu),
		T(test_cpu_offline_live_objects_freed_elsewhere),
		T(test_stats_identity_and_counts),
		T(test_hot_add_new_arena),
		T(test_hot_add_reclaimable_in_known_arena),
		T(test_init_errors),
		T(test_init_caller_metadata),
		T(test_init_again_discards_old_heap),
		T(test_intake_unsorted_overlapping_holes),
		T(test_metadata_size_ratio),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
