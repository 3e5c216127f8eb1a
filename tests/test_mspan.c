/*
 * tests/test_mspan.c - span bitmaps and sweep (mm/mspan.c): the next free
 * object through span_next_free_index and through kmalloc's fast path, the
 * sentinel bits above nelems, sweeping freed objects back (alloc_count,
 * freeindex, alloc_cache, exactly the freed objects in address order), the
 * multiply-shift object index, and span_obj_allocated before and after a
 * sweep.
 *
 * A test owns a span either as CPU 0 (the span kmalloc cached for CPU 0,
 * touched with interrupts off on the main thread, which is CPU 0) or by
 * taking one from its mcentral with mcentral_cache_span(): such a span is
 * LOC_CACHED in no mcache, so nobody else sweeps it.  An object handed
 * out here gets the state and the count kmalloc would give it, so kfree
 * and the statistics work on it.  The classes run without magazines
 * (mcentral_set_magazines(c, false)): kmalloc and kfree go straight to
 * the spans these tests look at.
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

/* ------------------------------------------------------------------------
 * Helpers
 */

static struct mspan *own_span(unsigned cls)
{
	unsigned long f = arch_irq_save();
	struct mspan *s = mcentral_cache_span(class_central(0, cls));
	arch_irq_restore(f);
	assert_non_null(s);
	assert_int_equal(SS_LOC(atomic_load(&s->sweepstate)), LOC_CACHED);
	assert_int_equal(s->sizeclass, cls);
	return s;
}

/* Gives an owned span back to its mcentral (released if empty). */
static void drop_span(struct mspan *s)
{
	unsigned long f = arch_irq_save();
	mcentral_uncache_span(s->central, s);
	arch_irq_restore(f);
}

/* The owner's slow path; the object handed out and counted as CPU 0's
 * allocation as kmalloc would. */
static uint32_t next_idx(struct mspan *s)
{
	unsigned long f = arch_irq_save();
	uint32_t i = span_next_free_index(s);
	if (i < s->nelems) {
		assert_int_equal(atomic_load(&s->objstate[i]), OBJ_FREE);
		atomic_store(&s->objstate[i], OBJ_CLIENT);
		mcache_of(arch_cpu_id())->cls[s->sizeclass].nmalloc++;
	}
	arch_irq_restore(f);
	return i;
}

static unsigned sweep(struct mspan *s)
{
	unsigned long f = arch_irq_save();
	unsigned n = span_sweep(s);
	arch_irq_restore(f);
	return n;
}

/* The span CPU cpu allocates class cls from. */
static struct mspan *cpu_span(unsigned cpu, unsigned cls)
{
	return atomic_load(&mcache_of(cpu)->cls[cls].span);
}

static void *obj(const struct mspan *s, uint32_t i)
{
	return (void *)(s->base + (uintptr_t)i * s->elemsize);
}

static uint64_t abits(const struct mspan *s, unsigned w)
{
	return atomic_load(&s->alloc_bits[w]);
}

static uint64_t fbits(const struct mspan *s, unsigned w)
{
	return atomic_load(&s->freed_bits[w]);
}

static uint32_t fi_of(struct mspan *s)
{
	return atomic_load(&s->freeindex);
}

static unsigned nwords(const struct mspan *s)
{
	return (s->nelems + 63) / 64;
}

/* The alloc word w of a fresh span: only the sentinels at and above
 * nelems are set. */
static uint64_t sentinel_word(uint32_t nelems, unsigned w)
{
	uint64_t lo = (uint64_t)w * 64;
	if (lo >= nelems)
		return ~0ull;
	if (nelems - lo < 64)
		return ~0ull << (nelems - lo);
	return 0;
}

static void assert_sentinels(const struct mspan *s)
{
	for (unsigned w = 0; w < nwords(s); w++) {
		uint64_t m = sentinel_word(s->nelems, w);
		if ((abits(s, w) & m) != m)
			fail_msg("class %u word %u: sentinel bits %#llx not all set (%#llx)",
			         s->sizeclass, w, (unsigned long long)m,
			         (unsigned long long)abits(s, w));
	}
}

static int setup(void **state)
{
	(void)state;
	fx_simple(64, 2);
	fx_magazines_off();
	return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fx_teardown_all_back)

/* ------------------------------------------------------------------------
 * Tests
 */

/* 8-byte class: 512 objects over 8 words, all through kmalloc's fast path
 * and word-boundary slow path, in address order. */
static void test_class8_fill(void **state)
{
	(void)state;
	const unsigned cls = kmem_size_class(8);
	assert_int_equal(cls, 1);
	assert_int_equal(kmem_class[cls].nelems, 512);
	static void *p[513];
	for (unsigned i = 0; i < 512; i++) {
		p[i] = kmalloc(8);
		assert_non_null(p[i]);
	}
	struct mspan *s = span_of_ptr(p[0]);
	assert_non_null(s);
	assert_ptr_equal(cpu_span(0, cls), s);
	assert_int_equal(s->nelems, 512);
	assert_int_equal(s->elemsize, 8);
	assert_int_equal(s->npages, 1);
	assert_int_equal(s->base % PG, 0);
	for (unsigned i = 0; i < 512; i++) {
		assert_ptr_equal(p[i], obj(s, i));
		assert_ptr_equal(span_of_ptr(p[i]), s);
	}
	/* Handed out by freeindex alone: the alloc bits are untouched. */
	assert_int_equal(fi_of(s), 512);
	assert_int_equal(s->alloc_cache, 0);
	for (unsigned w = 0; w < 8; w++)
		assert_int_equal(abits(s, w), 0);
	for (unsigned i = 0; i < 512; i++)
		assert_true(span_obj_allocated(s, i));
	assert_int_equal(span_live_objects(s), 512);
	assert_int_equal(span_free_slots(s), 0);
	assert_int_equal(next_idx(s), 512);
	assert_int_equal(next_idx(s), 512);

	/* The 513th object comes from another span; this one went full. */
	p[512] = kmalloc(8);
	assert_non_null(p[512]);
	assert_ptr_not_equal(span_of_ptr(p[512]), s);
	assert_int_equal(SS_LOC(atomic_load(&s->sweepstate)), LOC_FULL);
	assert_int_equal(s->on_list, LOC_FULL);
	assert_int_equal(s->alloc_count, 512);
	/* Exhausted with nothing freed: placed as it is, not swept
	 * (mcentral_uncache_span), so freeindex still covers every object. */
	assert_int_equal(fi_of(s), 512);
	for (unsigned w = 0; w < 8; w++)
		assert_int_equal(abits(s, w), 0);
	for (unsigned i = 0; i < 512; i++)
		assert_true(span_obj_allocated(s, i));
	fx_assert_check();
	for (unsigned i = 0; i <= 512; i++)
		kfree(p[i]);
	/* Queued by the first free; the sweep folds freeindex in. */
	assert_int_equal(SS_LOC(atomic_load(&s->sweepstate)), LOC_QUEUED);
	/* Both spans (the cached one is flushed first) swept empty and
	 * released. */
	assert_int_equal(kmem_reclaim(), 2);
	assert_null(span_of_ptr(p[0]));
	assert_null(span_of_ptr(p[512]));
	assert_int_equal(fx_class_stats(cls).nfree, 513);
}

/* Classes whose nelems is not a multiple of 64 (and one that is): every
 * object is handed out once, in order, never one at or above nelems; the
 * sentinels survive sweeps; exactly the freed objects come back. */
static void check_class_sentinels(unsigned cls)
{
	struct mspan *s = own_span(cls);
	const uint32_t n = s->nelems;
	assert_int_equal(n, kmem_class[cls].nelems);
	assert_int_equal(s->npages, kmem_class[cls].npages);
	assert_int_equal(s->elemsize, kmem_class[cls].size);
	for (unsigned w = 0; w < nwords(s); w++)
		assert_int_equal(abits(s, w), sentinel_word(n, w));
	assert_int_equal(s->alloc_cache, ~abits(s, 0));
	assert_int_equal(fi_of(s), 0);
	assert_int_equal(span_free_slots(s), n);

	for (uint32_t i = 0; i < n; i++) {
		assert_false(span_obj_allocated(s, i));
		assert_int_equal(next_idx(s), i);
		assert_true(span_obj_allocated(s, i));
	}
	assert_int_equal(next_idx(s), n);
	assert_int_equal(next_idx(s), n);
	assert_int_equal(span_free_slots(s), 0);
	assert_sentinels(s);

	/* Free every third object and the last one. */
	static bool freed[KMEM_MAX_SPAN_OBJECTS];
	unsigned nf = 0;
	for (uint32_t i = 0; i < n; i++) {
		freed[i] = i % 3 == 0 || i == n - 1;
		if (freed[i]) {
			kfree(obj(s, i));
			nf++;
		}
	}
	assert_int_equal(fx_fault_count(), 0);
	unsigned pop = 0;
	for (unsigned w = 0; w < nwords(s); w++)
		pop += (unsigned)__builtin_popcountll(fbits(s, w));
	assert_int_equal(pop, nf);
	for (uint32_t i = 0; i < n; i++)
		assert_true(span_obj_allocated(s, i)); /* until the sweep */
	assert_int_equal(span_live_objects(s), n - nf);
	assert_true(span_has_freed(s));
	/* A freed-but-unswept object cannot be freed again. */
	kfree(obj(s, 0));
	fx_expect_fault(KMEM_FAULT_DOUBLE_FREE);

	assert_int_equal(sweep(s), nf);
	assert_int_equal(s->alloc_count, n - nf);
	/* The exhausted-span sweep (freeindex == nelems) counts by freed
	 * bits; it must agree with the alloc bits. */
	unsigned set = 0;
	for (unsigned w = 0; w < nwords(s); w++)
		set += (unsigned)__builtin_popcountll(abits(s, w));
	assert_int_equal(s->alloc_count, set - (nwords(s) * 64 - n));
	assert_int_equal(fi_of(s), 0);
	assert_int_equal(s->alloc_cache, ~abits(s, 0));
	assert_false(span_has_freed(s));
	for (unsigned w = 0; w < nwords(s); w++)
		assert_int_equal(fbits(s, w), 0);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(span_obj_allocated(s, i), !freed[i]);
	assert_sentinels(s);
	assert_int_equal(span_free_slots(s), nf);
	assert_int_equal(span_live_objects(s), n - nf);
	/* After the sweep the bit is clear: still a double free. */
	kfree(obj(s, 0));
	fx_expect_fault(KMEM_FAULT_DOUBLE_FREE);

	/* Exactly the freed objects, ascending, then none. */
	for (uint32_t i = 0; i < n; i++)
		if (freed[i])
			assert_int_equal(next_idx(s), i);
	assert_int_equal(next_idx(s), n);

	/* Sweeping with nothing freed changes nothing but freeindex. */
	assert_int_equal(sweep(s), 0);
	assert_int_equal(s->alloc_count, n);
	assert_int_equal(next_idx(s), n);

	/* Free all: swept empty, the span is kept on the empty list until
	 * kmem_reclaim gives it back to the mheap. */
	for (uint32_t i = 0; i < n; i++)
		kfree(obj(s, i));
	assert_int_equal(sweep(s), n);
	assert_int_equal(s->alloc_count, 0);
	assert_sentinels(s);
	uint64_t before = fx_stats().pages_free;
	uintptr_t base = s->base;
	uint64_t np = s->npages;
	drop_span(s);
	assert_int_equal(SS_LOC(atomic_load(&s->sweepstate)), LOC_EMPTY);
	assert_ptr_equal(span_of_ptr((void *)base), s);
	assert_int_equal(fx_stats().pages_free, before);
	assert_true(kmem_reclaim() >= np);
	assert_int_equal(fx_stats().pages_free, before + np);
	assert_null(span_of_ptr((void *)base));
}

static void test_sentinels(void **state)
{
	(void)state;
	/* 170, 85, 51, 25, 8 (3 pages) and 512 objects per span. */
	const unsigned classes[] = {3, 5, 7, 12, 35, 1, 75};
	for (unsigned k = 0; k < sizeof(classes) / sizeof(classes[0]); k++)
		check_class_sentinels(classes[k]);
	assert_int_equal(fx_fault_count(), 0);
}

/* Through kmalloc: a class-3 span (170 x 24 B) hands out 170 distinct
 * objects below nelems, then a new span; its tail is not an object. */
static void test_sentinel_kmalloc(void **state)
{
	(void)state;
	const unsigned cls = 3;
	assert_int_equal(kmem_size_class(24), cls);
	const uint32_t n = kmem_class[cls].nelems;
	assert_int_equal(n, 170);
	static void *p[171];
	static bool seen[170];
	memset(seen, 0, sizeof(seen));
	for (uint32_t i = 0; i <= n; i++) {
		p[i] = kmalloc(24);
		assert_non_null(p[i]);
	}
	struct mspan *s = span_of_ptr(p[0]);
	for (uint32_t i = 0; i < n; i++) {
		assert_ptr_equal(span_of_ptr(p[i]), s);
		uintptr_t off = (uintptr_t)p[i] - s->base;
		assert_int_equal(off % 24, 0);
		assert_true(off / 24 < n);
		assert_false(seen[off / 24]);
		seen[off / 24] = true;
	}
	assert_ptr_not_equal(span_of_ptr(p[n]), s);
	assert_sentinels(s);
	/* The 16-byte tail past object 169 is not an object. */
	kfree((void *)(s->base + (uintptr_t)n * 24));
	fx_expect_fault(KMEM_FAULT_INTERIOR);
	kfree((char *)p[5] + 8);
	fx_expect_fault(KMEM_FAULT_INTERIOR);
	for (unsigned w = 0; w < nwords(s); w++)
		assert_int_equal(fbits(s, w), 0);
	for (uint32_t i = 0; i <= n; i++)
		kfree(p[i]);
}

/* span_next_free_index across words: full words skipped, a free bit in the
 * top position of a word, a whole free word, a free bit at the start of
 * the last word.  The same pattern through kmalloc's fast path. */
static const uint64_t pattern[8] = {~0ull, ~(1ull << 63), 0, ~0ull, ~0ull, ~0ull, ~0ull, ~1ull};

static void set_pattern(struct mspan *s)
{
	unsigned long f = arch_irq_save();
	for (unsigned w = 0; w < 8; w++) {
		atomic_store(&s->alloc_bits[w], pattern[w]);
		/* Pretend-allocated objects are handed out and counted. */
		mcache_of(0)->cls[1].nmalloc += (unsigned)__builtin_popcountll(pattern[w]);
		for (unsigned b = 0; b < 64; b++)
			if ((pattern[w] >> b) & 1)
				atomic_store(&s->objstate[w * 64 + b], OBJ_CLIENT);
	}
	arch_irq_restore(f);
	s->alloc_cache = ~pattern[0];
	atomic_store(&s->freeindex, 0);
}

static void pattern_expect(uint32_t *want, unsigned *nw)
{
	unsigned k = 0;
	for (uint32_t i = 0; i < 512; i++)
		if (!((pattern[i / 64] >> (i % 64)) & 1))
			want[k++] = i;
	*nw = k;
}

static void test_next_free_index_words(void **state)
{
	(void)state;
	static uint32_t want[512];
	unsigned nw;
	pattern_expect(want, &nw);
	assert_int_equal(nw, 1 + 64 + 1);
	assert_int_equal(want[0], 127);
	assert_int_equal(want[1], 128);
	assert_int_equal(want[nw - 1], 448);

	/* Slow path on an owned span. */
	struct mspan *s = own_span(1);
	set_pattern(s);
	for (unsigned k = 0; k < nw; k++)
		assert_int_equal(next_idx(s), want[k]);
	assert_int_equal(next_idx(s), 512);
	for (uint32_t i = 0; i < 512; i++)
		kfree(obj(s, i)); /* every object counts as allocated now */
	assert_int_equal(fx_fault_count(), 0);
	assert_int_equal(sweep(s), 512);
	assert_int_equal(s->alloc_count, 0);
	drop_span(s);

	/* Fast path: the span cached for CPU 0. */
	assert_null(cpu_span(0, 1));
	s = own_span(1);
	set_pattern(s);
	unsigned long f = arch_irq_save();
	atomic_store(&mcache_of(0)->cls[1].span, s);
	arch_irq_restore(f);
	for (unsigned k = 0; k < nw; k++)
		assert_ptr_equal(kmalloc(8), obj(s, want[k]));
	void *other = kmalloc(8);
	assert_non_null(other);
	assert_ptr_not_equal(span_of_ptr(other), s);
	assert_int_equal(s->alloc_count, 512);
	for (uint32_t i = 0; i < 512; i++)
		kfree(obj(s, i));
	kfree(other);
}

/* Objects freed while CPU 0 caches the span come back, after a sweep, in
 * address order; alloc_count, freeindex, alloc_cache are reset. */
static void check_sweep_cached(unsigned cls, const uint32_t *F, unsigned nf)
{
	const uint32_t n = kmem_class[cls].nelems;
	const size_t size = kmem_class[cls].size;
	static void *p[KMEM_MAX_SPAN_OBJECTS];
	for (uint32_t i = 0; i < n - 1; i++) {
		p[i] = kmalloc(size);
		assert_non_null(p[i]);
	}
	struct mspan *s = span_of_ptr(p[0]);
	assert_ptr_equal(cpu_span(0, cls), s);
	for (uint32_t i = 0; i < n - 1; i++)
		assert_ptr_equal(p[i], obj(s, i));
	assert_int_equal(fi_of(s), n - 1);
	uint64_t nfree0 = fx_class_stats(cls).nfree;

	static bool freed[KMEM_MAX_SPAN_OBJECTS];
	memset(freed, 0, sizeof(freed));
	for (unsigned k = 0; k < nf; k++) {
		freed[F[k]] = true;
		kfree(p[F[k]]);
	}
	/* Freed but not swept: still allocated, no sweep happened. */
	assert_ptr_equal(cpu_span(0, cls), s);
	assert_int_equal(SS_LOC(atomic_load(&s->sweepstate)), LOC_CACHED);
	assert_null(atomic_load(&class_central(0, cls)->unswept));
	for (uint32_t i = 0; i < n - 1; i++)
		assert_true(span_obj_allocated(s, i));
	assert_false(span_obj_allocated(s, n - 1));
	assert_int_equal(fx_class_stats(cls).nfree, nfree0 + nf); /* counted at kfree */

	assert_int_equal(sweep(s), nf);
	assert_int_equal(fx_class_stats(cls).nfree, nfree0 + nf);
	assert_int_equal(s->alloc_count, n - 1 - nf);
	assert_int_equal(fi_of(s), 0);
	assert_int_equal(s->alloc_cache, ~abits(s, 0));
	for (uint32_t i = 0; i < n; i++) {
		bool want = i < n - 1 && !freed[i];
		assert_int_equal((abits(s, i / 64) >> (i % 64)) & 1, want);
		assert_int_equal(span_obj_allocated(s, i), want);
	}
	assert_sentinels(s);
	/* kmalloc hands back the freed objects ascending, then the one never
	 * used, then a new span. */
	for (uint32_t i = 0; i < n - 1; i++)
		if (freed[i]) {
			p[i] = kmalloc(size);
			assert_ptr_equal(p[i], obj(s, i));
		}
	void *last = kmalloc(size);
	assert_ptr_equal(last, obj(s, n - 1));
	void *next = kmalloc(size);
	assert_non_null(next);
	assert_ptr_not_equal(span_of_ptr(next), s);
	for (uint32_t i = 0; i < n - 1; i++)
		kfree(p[i]);
	kfree(last);
	kfree(next);
}

static void test_sweep_cached_span(void **state)
{
	(void)state;
	const uint32_t f6[] = {0, 1, 31, 32, 62};
	check_sweep_cached(6, f6, 5); /* 64 B, one word */
	const uint32_t f1[] = {0, 63, 64, 65, 127, 300, 447, 448, 510};
	check_sweep_cached(1, f1, 9); /* 8 B, eight words */
	const uint32_t f3[] = {2, 63, 64, 128, 168};
	check_sweep_cached(3, f3, 5); /* 24 B, sentinels in word 2 */
}

/* The in-place sweep of kmalloc's slow path: an exhausted cached span with
 * frees waiting is swept and reused, no new span is taken. */
static void test_sweep_in_place(void **state)
{
	(void)state;
	const unsigned cls = 5; /* 48 B, 85 objects */
	const uint32_t n = kmem_class[cls].nelems;
	static void *p[KMEM_MAX_SPAN_OBJECTS];
	for (uint32_t i = 0; i < n; i++)
		p[i] = kmalloc(48);
	struct mspan *s = span_of_ptr(p[0]);
	assert_ptr_equal(cpu_span(0, cls), s);
	assert_int_equal(fi_of(s), n);
	const uint32_t G[] = {7, 8, 64, 84};
	for (unsigned k = 0; k < 4; k++)
		kfree(p[G[k]]);
	struct kmem_stats st0;
	kmem_get_stats(&st0);
	uint64_t spans0 = class_central(0, cls)->spans, nfree0 = fx_class_stats(cls).nfree;
	for (unsigned k = 0; k < 4; k++) {
		p[G[k]] = kmalloc(48);
		assert_ptr_equal(p[G[k]], obj(s, G[k]));
	}
	assert_ptr_equal(cpu_span(0, cls), s);
	assert_int_equal(class_central(0, cls)->spans, spans0);
	assert_int_equal(fx_class_stats(cls).nfree, nfree0); /* counted at kfree */
	assert_int_equal(s->alloc_count, n - 4);
	struct kmem_stats st1;
	kmem_get_stats(&st1);
	assert_int_equal(st1.pages_small, st0.pages_small);
	for (uint32_t i = 0; i < n; i++)
		kfree(p[i]);
}

/* The multiply-shift index equals division for every offset of every
 * class's span (so for every object start), and for object caches. */
static void test_divmul_exact(void **state)
{
	(void)state;
	unsigned long checked = 0;
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++) {
		const struct size_class *sc = &kmem_class[cls];
		struct mspan fake;
		memset(&fake, 0, sizeof(fake));
		fake.divmul = sc->divmul;
		uint64_t span = (uint64_t)sc->npages * PG;
		for (uint64_t off = 0; off < span; off++) {
			uint32_t got = span_obj_index(&fake, off);
			if (got != off / sc->size)
				fail_msg("class %u (%u B): index(%llu) = %u, want %llu", cls, sc->size,
				         (unsigned long long)off, got,
				         (unsigned long long)(off / sc->size));
		}
		checked += span;
		/* A real span carries the same constant. */
		struct mspan *s = own_span(cls);
		assert_int_equal(s->divmul, sc->divmul);
		assert_int_equal(s->divmul, mcentral_div_const(sc->size));
		for (uint32_t i = 0; i < s->nelems; i++)
			assert_int_equal(span_obj_index(s, (uintptr_t)obj(s, i) - s->base), i);
		drop_span(s);
	}
	/* Object caches pick their own geometry. */
	const size_t sizes[] = {24, 40, 100, 200, 1000, 3000, 5000, 12345, 32768};
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct kmem_cache *kc = kmem_cache_create("divmul", sizes[k], 0, NULL);
		assert_non_null(kc);
		void *o = kmem_cache_alloc(kc);
		assert_non_null(o);
		struct mspan *s = span_of_ptr(o);
		assert_non_null(s);
		assert_int_equal(s->divmul, mcentral_div_const((uint32_t)s->elemsize));
		for (uint64_t off = 0; off < (uint64_t)s->nelems * s->elemsize; off++)
			assert_int_equal(span_obj_index(s, off), off / s->elemsize);
		checked += (uint64_t)s->nelems * s->elemsize;
		kmem_cache_free(kc, o);
		assert_int_equal(kmem_cache_destroy(kc), 0);
	}
	print_message("multiply-shift index checked at %lu offsets\n", checked);
}

/* span_obj_allocated: by freeindex before a sweep, by the bits after. */
static void test_obj_allocated(void **state)
{
	(void)state;
	struct mspan *s = own_span(4); /* 32 B, 128 objects, two words */
	const uint32_t n = s->nelems;
	for (uint32_t i = 0; i < 70; i++)
		assert_int_equal(next_idx(s), i);
	/* Before any sweep the alloc bits say nothing; freeindex does. */
	assert_int_equal(abits(s, 0), 0);
	assert_int_equal(abits(s, 1), 0);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(span_obj_allocated(s, i), i < 70);
	/* An object past freeindex is not allocated: freeing it is a fault. */
	kfree(obj(s, 70));
	fx_expect_fault(KMEM_FAULT_DOUBLE_FREE);
	kfree(obj(s, 127));
	fx_expect_fault(KMEM_FAULT_DOUBLE_FREE);
	assert_false(span_has_freed(s));

	kfree(obj(s, 3));
	kfree(obj(s, 69));
	assert_true(span_obj_allocated(s, 3));
	assert_true(span_obj_allocated(s, 69));
	assert_int_equal(sweep(s), 2);
	/* After: the bits say it, freeindex is 0. */
	assert_int_equal(fi_of(s), 0);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(span_obj_allocated(s, i), i < 70 && i != 3 && i != 69);
	assert_int_equal(abits(s, 0), ~(1ull << 3));
	assert_int_equal(abits(s, 1), ((1ull << 6) - 1) & ~(1ull << 5));
	assert_int_equal(s->alloc_count, 68);
	/* Allocation continues with 3, 69, 70, ... */
	assert_int_equal(next_idx(s), 3);
	assert_true(span_obj_allocated(s, 3)); /* freeindex 4 covers it */
	assert_int_equal(next_idx(s), 69);
	assert_int_equal(next_idx(s), 70);
	assert_true(span_obj_allocated(s, 70));
	assert_false(span_obj_allocated(s, 71));
	for (uint32_t i = 0; i <= 70; i++)
		kfree(obj(s, i));
	assert_int_equal(fx_fault_count(), 0);
	assert_int_equal(sweep(s), 71);
	assert_int_equal(s->alloc_count, 0);
	for (uint32_t i = 0; i < n; i++)
		assert_false(span_obj_allocated(s, i));
	drop_span(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_class8_fill),
		T(test_sentinels),
		T(test_sentinel_kmalloc),
		T(test_next_free_index_words),
		T(test_sweep_cached_span),
		T(test_sweep_in_place),
		T(test_divmul_exact),
		T(test_obj_allocated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
