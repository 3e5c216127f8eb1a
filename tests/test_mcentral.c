/*
 * tests/test_mcentral.c - mcentral transitions (mm/mcentral.c): an
 * exhausted cached span goes to full when uncached; the first kfree into a
 * full span queues it exactly once; mcentral_cache_span drains the
 * unswept stack and hands the span out; a span swept empty is kept (at
 * most empty_max per class) and reused; kmem_reclaim releases empty spans; kmem_cpu_offline moves a
 * CPU's cached spans to partial/full; memory flows between classes.
 * These tests are about the spans: the classes run without magazines
 * (mcentral_set_magazines(c, false)), so every kmalloc and kfree goes
 * straight between span and client; tests/test_magazine.c has the
 * magazines.
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
#include "mtypes.h"

#define PG KMEM_PAGE_SIZE
#define CLS 10 /* 128 B, 32 objects per 1-page span */
#define SZ 128
#define N 32

/* ------------------------------------------------------------------------
 * Helpers
 */

static struct mcentral *central(unsigned cls)
{
	return class_central(0, cls);
}

static unsigned loc_of(const struct mspan *s)
{
	return SS_LOC(atomic_load(&((struct mspan *)s)->sweepstate));
}

static uint64_t gen_of(const struct mspan *s)
{
	return SS_GEN(atomic_load(&((struct mspan *)s)->sweepstate));
}

/* How many times s is on c's unswept stack, and the stack's length. */
static unsigned on_stack(struct mcentral *c, const struct mspan *s, unsigned *len)
{
	unsigned n = 0, l = 0;
	for (struct mspan *t = atomic_load(&c->unswept); t; t = t->unswept_next) {
		if (t == s)
			n++;
		if (++l > 100000)
			fail_msg("unswept stack does not end (cycle?)");
	}
	if (len)
		*len = l;
	return n;
}

/* The span CPU cpu fills from for class cls. */
static struct mspan *cpu_span(unsigned cpu, unsigned cls)
{
	return atomic_load(&mcache_of(cpu)->cls[cls].span);
}

static bool on_list(const struct span_list *l, const struct mspan *s)
{
	for (struct mspan *t = l->first; t; t = t->next)
		if (t == s)
			return true;
	return false;
}

/* Allocates one full span's worth of class CLS and returns its span; the
 * span is CPU 0's cached span afterwards. */
static struct mspan *fill_span(void **p)
{
	for (unsigned i = 0; i < N; i++) {
		p[i] = kmalloc(SZ);
		assert_non_null(p[i]);
	}
	struct mspan *s = span_of_ptr(p[0]);
	assert_non_null(s);
	for (unsigned i = 0; i < N; i++)
		assert_ptr_equal(span_of_ptr(p[i]), s);
	assert_ptr_equal(cpu_span(0, CLS), s);
	return s;
}

/* The transition tests are about the mcentral itself: with magazines, a
 * free would land in a magazine, not in its span. */
static int setup(void **state)
{
	(void)state;
	fx_simple(64, 4);
	assert_int_equal(kmem_size_class(SZ), CLS);
	assert_int_equal(kmem_class[CLS].nelems, N);
	assert_int_equal(kmem_class[CLS].npages, 1);
	fx_magazines_off();
	return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fx_teardown_all_back)

/* ------------------------------------------------------------------------
 * Tests
 */

/* A span exhausted on a CPU goes to full when the CPU lets it go. */
static void test_exhausted_goes_full(void **state)
{
	(void)state;
	static void *p[N + 1];
	struct mcentral *c = central(CLS);
	struct mspan *s = fill_span(p);
	assert_int_equal(loc_of(s), LOC_CACHED);
	assert_int_equal(s->on_list, 0);
	assert_int_equal(c->full.count, 0);
	assert_int_equal(c->partial.count, 0);
	assert_int_equal(c->spans, 1);

	p[N] = kmalloc(SZ);
	struct mspan *t = span_of_ptr(p[N]);
	assert_ptr_not_equal(t, s);
	assert_ptr_equal(cpu_span(0, CLS), t);
	assert_int_equal(loc_of(s), LOC_FULL);
	assert_int_equal(s->on_list, LOC_FULL);
	assert_int_equal(c->full.count, 1);
	assert_ptr_equal(c->full.first, s);
	assert_int_equal(c->partial.count, 0);
	assert_int_equal(s->alloc_count, N);
	assert_int_equal(c->spans, 2);
	assert_int_equal(c->peak_spans, 2);
	assert_null(atomic_load(&c->unswept));
	fx_assert_check();
	for (unsigned i = 0; i <= N; i++)
		kfree(p[i]);
}

/* The first kfree into a full span queues it, exactly once, however many
 * frees follow; the span stays on its list, marked QUEUED. */
static void test_first_free_queues_once(void **state)
{
	(void)state;
	static void *a[N], *b[N], *x[N];
	struct mcentral *c = central(CLS);
	struct mspan *sa = fill_span(a);
	struct mspan *sb = fill_span(b); /* sa went full */
	x[0] = kmalloc(SZ);              /* sb went full */
	assert_int_equal(loc_of(sa), LOC_FULL);
	assert_int_equal(loc_of(sb), LOC_FULL);
	uint64_t ga = gen_of(sa);

	kfree(a[5]);
	assert_int_equal(loc_of(sa), LOC_QUEUED);
	assert_int_equal(gen_of(sa), ga);
	assert_ptr_equal(atomic_load(&c->unswept), sa);
	assert_null(sa->unswept_next);
	assert_int_equal(sa->on_list, LOC_FULL);
	assert_true(on_list(&c->full, sa));
	for (unsigned i = 0; i < N; i++)
		if (i != 5 && i % 2)
			kfree(a[i]);
	unsigned len;
	assert_int_equal(on_stack(c, sa, &len), 1);
	assert_int_equal(len, 1);
	assert_int_equal(loc_of(sa), LOC_QUEUED);

	kfree(b[0]);
	kfree(b[31]);
	assert_int_equal(on_stack(c, sb, &len), 1);
	assert_int_equal(on_stack(c, sa, NULL), 1);
	assert_int_equal(len, 2);
	assert_ptr_equal(atomic_load(&c->unswept), sb); /* a stack: last pushed on top */
	assert_int_equal(c->full.count, 2);
	assert_int_equal(c->partial.count, 0);
	/* Nothing was swept yet: the frees are waiting in the bitmaps (and
	 * counted as frees already: statistics count the client's calls). */
	assert_int_equal(sa->alloc_count, N);
	assert_int_equal(fx_class_stats(CLS).nfree, 18);
	fx_assert_check();

	for (unsigned i = 0; i < N; i++) {
		if (i != 5 && !(i % 2))
			kfree(a[i]);
		if (i != 0 && i != 31)
			kfree(b[i]);
	}
	assert_int_equal(on_stack(c, sa, &len), 1);
	assert_int_equal(on_stack(c, sb, NULL), 1);
	assert_int_equal(len, 2);
	kfree(x[0]);
}

/* The first free into a partial span queues it too. */
static void test_partial_span_queued(void **state)
{
	(void)state;
	static void *p[N];
	struct mcentral *c = central(CLS);
	for (unsigned i = 0; i < 10; i++)
		p[i] = kmalloc(SZ);
	struct mspan *s = span_of_ptr(p[0]);
	assert_int_equal(kmem_cpu_offline(0), 0); /* the caller itself */
	assert_int_equal(kmem_cpu_online(0), 0);
	assert_ptr_equal(cpu_span(0, CLS), NULL);
	assert_int_equal(loc_of(s), LOC_PARTIAL);
	assert_ptr_equal(c->partial.first, s);
	assert_int_equal(s->alloc_count, 10);
	kfree(p[3]);
	assert_int_equal(loc_of(s), LOC_QUEUED);
	kfree(p[4]);
	assert_int_equal(on_stack(c, s, NULL), 1);
	assert_int_equal(s->on_list, LOC_PARTIAL);
	/* The next allocation drains it: 3 comes back first. */
	void *q = kmalloc(SZ);
	assert_ptr_equal(q, p[3]);
	assert_ptr_equal(cpu_span(0, CLS), s);
	assert_int_equal(loc_of(s), LOC_CACHED);
	assert_null(atomic_load(&c->unswept));
	assert_int_equal(s->alloc_count, 8);
	p[3] = q;
	assert_ptr_equal(kmalloc(SZ), p[4]);
	for (unsigned i = 0; i < 10; i++)
		kfree(p[i]);
}

/* mcentral_cache_span drains the unswept stack, sweeps the span and hands
 * it out; kmalloc then gives exactly the freed objects in order. */
static void test_cache_span_drains(void **state)
{
	(void)state;
	static void *a[N], *b[N];
	struct mcentral *c = central(CLS);
	struct mspan *sa = fill_span(a);
	struct mspan *sb = fill_span(b);
	const unsigned F[] = {2, 9, 10, 30};
	for (unsigned k = 0; k < 4; k++)
		kfree(a[F[k]]);
	assert_int_equal(loc_of(sa), LOC_QUEUED);
	struct kmem_stats st0 = fx_stats();
	uint64_t nfree0 = fx_class_stats(CLS).nfree;

	/* sb is exhausted: the refill hands sb to full and caches sa. */
	void *q = kmalloc(SZ);
	assert_ptr_equal(q, a[F[0]]);
	a[F[0]] = q;
	assert_ptr_equal(cpu_span(0, CLS), sa);
	assert_int_equal(loc_of(sa), LOC_CACHED);
	assert_int_equal(sa->on_list, 0);
	assert_int_equal(loc_of(sb), LOC_FULL);
	assert_null(atomic_load(&c->unswept));
	assert_false(on_list(&c->full, sa));
	assert_false(on_list(&c->partial, sa));
	assert_int_equal(sa->alloc_count, N - 4); /* swept: the 4 frees folded */
	assert_int_equal(fx_class_stats(CLS).nfree, nfree0); /* counted at kfree */
	assert_int_equal(fx_stats().pages_small, st0.pages_small); /* no new span */
	for (unsigned k = 1; k < 4; k++) {
		q = kmalloc(SZ);
		assert_ptr_equal(q, a[F[k]]);
		a[F[k]] = q;
	}

	/* Direct call: a queued full span is swept and returned cached. */
	kfree(b[7]);
	assert_int_equal(loc_of(sb), LOC_QUEUED);
	unsigned long f = arch_irq_save();
	struct mspan *got = mcentral_cache_span(c);
	arch_irq_restore(f);
	assert_ptr_equal(got, sb);
	assert_int_equal(loc_of(sb), LOC_CACHED);
	assert_int_equal(sb->alloc_count, N - 1);
	assert_int_equal(atomic_load(&sb->freeindex), 0);
	f = arch_irq_save();
	assert_int_equal(span_next_free_index(sb), 7);
	/* Handed out and counted as kmalloc would. */
	assert_int_equal(atomic_load(&sb->objstate[7]), OBJ_FREE);
	atomic_store(&sb->objstate[7], OBJ_CLIENT);
	mcache_of(0)->cls[CLS].nmalloc++;
	mcentral_uncache_span(c, sb);
	arch_irq_restore(f);
	assert_int_equal(loc_of(sb), LOC_FULL);
	for (unsigned i = 0; i < N; i++) {
		kfree(a[i]);
		kfree(b[i]);
	}
}

/* A span swept empty is kept on the class's empty list (not released):
 * the next CPU that needs a span gets it back without touching the mheap;
 * a free into it is a fault that changes nothing; kmem_reclaim releases
 * it (pages_free grows, the span is unmapped, a new generation). */
static void test_swept_empty_kept(void **state)
{
	(void)state;
	static void *a[N], *b[N];
	struct mcentral *c = central(CLS);
	struct mspan *sa = fill_span(a);
	b[0] = kmalloc(SZ); /* sa goes full */
	uint64_t ga = gen_of(sa);
	uintptr_t base = sa->base;
	for (unsigned i = 0; i < N; i++)
		kfree(a[i]);
	assert_int_equal(loc_of(sa), LOC_QUEUED);
	assert_int_equal(c->spans, 2);
	struct kmem_stats st0 = fx_stats();

	/* Through the drain in mcentral_cache_span (direct call): sa is
	 * swept empty, kept, and handed out again as it is. */
	unsigned long f = arch_irq_save();
	struct mspan *s = mcentral_cache_span(c);
	arch_irq_restore(f);
	assert_ptr_equal(s, sa);
	assert_int_equal(loc_of(sa), LOC_CACHED);
	assert_int_equal(gen_of(sa), ga); /* never released */
	assert_int_equal(c->spans, 2);
	assert_int_equal(c->empty.count, 0);
	assert_int_equal(fx_stats().pages_small, st0.pages_small);
	assert_int_equal(fx_stats().pages_free, st0.pages_free);
	assert_int_equal(fx_class_stats(CLS).nfree, N);
	f = arch_irq_save();
	mcentral_uncache_span(c, s); /* empty: onto the empty list */
	arch_irq_restore(f);
	assert_int_equal(loc_of(sa), LOC_EMPTY);
	assert_int_equal(sa->on_list, LOC_EMPTY);
	assert_true(on_list(&c->empty, sa));
	assert_int_equal(c->empty.count, 1);
	assert_int_equal(c->spans, 2);
	assert_int_equal(fx_stats().pages_free, st0.pages_free);
	assert_ptr_equal(span_of_ptr((void *)base), sa);
	fx_assert_check();
	/* Nothing in it is allocated: a free is reported, changes nothing. */
	kfree(a[0]);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, a[0]);
	assert_int_equal(loc_of(sa), LOC_EMPTY);
	assert_false(span_has_freed(sa));
	fx_assert_check();

	/* kmem_reclaim gives it back. */
	assert_int_equal(kmem_reclaim(), 1);
	assert_int_equal(atomic_load(&sa->state), SPAN_DEAD);
	assert_true(gen_of(sa) > ga); /* released: a new generation */
	assert_int_equal(c->spans, 1);
	assert_int_equal(c->empty.count, 0);
	assert_int_equal(fx_stats().pages_free, st0.pages_free + 1);
	assert_int_equal(fx_stats().pages_small, st0.pages_small - 1);
	assert_null(span_of_ptr((void *)base));
	assert_null(span_of_ptr(a[0]));

	/* Through kmem_reclaim. */
	static void *d[N];
	for (unsigned i = 1; i < N; i++)
		b[i] = kmalloc(SZ); /* CPU 0's span sb is now exhausted */
	struct mspan *sb = span_of_ptr(b[0]);
	struct mspan *sd = fill_span(d);
	assert_int_equal(loc_of(sb), LOC_FULL);
	for (unsigned i = 0; i < N; i++)
		kfree(b[i]);
	assert_int_equal(loc_of(sb), LOC_QUEUED);
	uint64_t gb = gen_of(sb);
	struct kmem_stats st1 = fx_stats();
	size_t rel = kmem_reclaim();
	assert_int_equal(rel, 1); /* sb; sd still has live objects */
	assert_int_equal(fx_stats().pages_free, st1.pages_free + 1);
	assert_null(span_of_ptr(b[0]));
	assert_int_equal(atomic_load(&sb->state), SPAN_DEAD);
	assert_true(gen_of(sb) > gb);
	assert_int_equal(loc_of(sd), LOC_FULL); /* flushed from CPU 0 */
	assert_int_equal(c->spans, 1);
	for (unsigned i = 0; i < N; i++)
		kfree(d[i]);
}

/* At most empty_max empty spans are kept per class, by the formula in
 * mcentral.c; the rest go back to the mheap when they are swept. */
static void test_empty_kept_bounded(void **state)
{
	(void)state;
	static void *p[6][N];
	struct mcentral *c = central(CLS);
	/* 128 B: min(128 KiB / 4 KiB, 128 / 32 objects) = 4. */
	assert_int_equal(c->empty_max, 4);
	assert_int_equal(central(1)->empty_max, 1);  /* 8 B, 512 per span: at least one */
	assert_int_equal(central(KMEM_NUM_CLASSES - 1)->empty_max,
	                 (128u << 10) / (central(KMEM_NUM_CLASSES - 1)->npages * PG));
	for (unsigned k = 0; k < 6; k++)
		fill_span(p[k]);
	assert_int_equal(kmem_cpu_offline(0), 0);
	assert_int_equal(kmem_cpu_online(0), 0);
	assert_int_equal(c->full.count, 6);
	for (unsigned k = 0; k < 6; k++)
		for (unsigned i = 0; i < N; i++)
			kfree(p[k][i]);
	struct kmem_stats st0 = fx_stats();
	/* The drain sweeps all six: four kept, two released; one kept span
	 * is handed out. */
	unsigned long f = arch_irq_save();
	struct mspan *s = mcentral_cache_span(c);
	arch_irq_restore(f);
	assert_non_null(s);
	assert_int_equal(c->spans, 4);
	assert_int_equal(c->empty.count, 3);
	assert_int_equal(fx_stats().pages_free, st0.pages_free + 2);
	f = arch_irq_save();
	mcentral_uncache_span(c, s);
	arch_irq_restore(f);
	assert_int_equal(c->empty.count, 4);
	fx_assert_check();
	assert_int_equal(kmem_reclaim(), 4);
	assert_int_equal(c->spans, 0);
	assert_int_equal(c->empty.count, 0);
	assert_int_equal(fx_stats().pages_free, st0.pages_free + 6);
}

/* A refill sweeps at most DRAIN_BUDGET queued spans (issue: with 32768
 * spans queued, the next kmalloc swept them all, 3.7 ms with interrupts off
 * and the lock held); the rest stay queued, findable, until the next
 * refills or reclaim.  Counted by the spans that left LOC_QUEUED. */
static void test_refill_drain_bounded(void **state)
{
	(void)state;
	enum { K = 64 };
	static void *p[K][N];
	struct mcentral *c = central(CLS);
	for (unsigned k = 0; k < K; k++)
		fill_span(p[k]);
	void *x = kmalloc(SZ); /* the last span went full too */
	for (unsigned k = 0; k < K; k++)
		kfree(p[k][k % N]); /* one free each: K spans queued */
	unsigned len;
	on_stack(c, span_of_ptr(p[0][0]), &len);
	assert_int_equal(len, K);

	/* CPU 0's span is x's, with free slots: take another span directly. */
	unsigned long f = arch_irq_save();
	struct mspan *got = mcentral_cache_span(c);
	arch_irq_restore(f);
	assert_non_null(got);
	unsigned queued = 0;
	for (unsigned k = 0; k < K; k++)
		queued += loc_of(span_of_ptr(p[k][0])) == LOC_QUEUED;
	assert_true(queued >= K - DRAIN_BUDGET);
	assert_true(queued < K); /* it did sweep: the span it returned was queued */
	on_stack(c, NULL, &len);
	assert_int_equal(len, queued);
	fx_assert_check(); /* the rest are still findable */

	f = arch_irq_save();
	mcentral_uncache_span(c, got);
	arch_irq_restore(f);
	for (unsigned k = 0; k < K; k++)
		for (unsigned i = 0; i < N; i++)
			if (i != k % N)
				kfree(p[k][i]);
	kfree(x);
	kmem_reclaim(); /* drains everything */
	assert_null(atomic_load(&c->unswept));
}

/* kmem_reclaim releases every empty span in partial and full, keeps the
 * others, and returns the pages it gave back; mcentral_reclaim too. */
static void test_reclaim_releases_empty(void **state)
{
	(void)state;
	static void *p[6][N];
	struct mcentral *c = central(CLS);
	struct mspan *s[6];
	for (unsigned k = 0; k < 6; k++)
		s[k] = fill_span(p[k]);
	assert_int_equal(kmem_cpu_offline(0), 0);
	assert_int_equal(kmem_cpu_online(0), 0);
	assert_int_equal(c->full.count, 6);
	/* Spans 0, 2, 4 emptied; 1 half; 3 one left; 5 untouched. */
	for (unsigned i = 0; i < N; i++) {
		kfree(p[0][i]);
		kfree(p[2][i]);
		kfree(p[4][i]);
		if (i % 2)
			kfree(p[1][i]);
		if (i)
			kfree(p[3][i]);
	}
	unsigned len;
	on_stack(c, s[0], &len);
	assert_int_equal(len, 5);
	struct kmem_stats st0 = fx_stats();
	size_t rel = kmem_reclaim();
	assert_int_equal(rel, 3);
	struct kmem_stats st1 = fx_stats();
	assert_int_equal(st1.pages_free, st0.pages_free + 3);
	assert_int_equal(st1.pages_small, st0.pages_small - 3);
	assert_int_equal(c->spans, 3);
	for (unsigned k = 0; k < 6; k += 2)
		assert_null(span_of_ptr(p[k][0]));
	assert_int_equal(loc_of(s[1]), LOC_PARTIAL);
	assert_int_equal(loc_of(s[3]), LOC_PARTIAL);
	assert_int_equal(loc_of(s[5]), LOC_FULL);
	assert_int_equal(s[1]->alloc_count, N / 2);
	assert_int_equal(s[3]->alloc_count, 1);
	assert_int_equal(c->partial.count, 2);
	assert_int_equal(c->full.count, 1);
	assert_null(atomic_load(&c->unswept));
	assert_int_equal(fx_class_stats(CLS).objects_in_use, N / 2 + 1 + N);
	fx_assert_check();
	/* Nothing more to give back. */
	assert_int_equal(kmem_reclaim(), 0);

	/* A partial span emptied: queued, then released by kmem_reclaim. */
	for (unsigned i = 0; i < N; i += 2)
		kfree(p[1][i]);
	assert_int_equal(loc_of(s[1]), LOC_QUEUED);
	assert_int_equal(s[1]->on_list, LOC_PARTIAL);
	uint64_t free0 = fx_stats().pages_free;
	assert_int_equal(kmem_reclaim(), 1);
	assert_int_equal(fx_stats().pages_free, free0 + 1);
	assert_null(span_of_ptr(p[1][0]));
	assert_int_equal(c->partial.count, 1);

	/* mcentral_reclaim on the class alone. */
	kfree(p[3][0]);
	unsigned long f = arch_irq_save();
	size_t r2 = mcentral_reclaim(c);
	arch_irq_restore(f);
	assert_int_equal(r2, 1);
	assert_null(span_of_ptr(p[3][0]));
	assert_int_equal(c->partial.count, 0);
	assert_int_equal(c->spans, 1);
	for (unsigned i = 0; i < N; i++)
		kfree(p[5][i]);
}

/* kmem_cpu_offline flushes another CPU's cached spans to partial/full
 * (including object-cache spans) and takes it offline. */
struct offline_ctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stage;
	struct kmem_cache *kc;
	void *a[1], *b[N], *c[N], *k[3];
};

static void wait_stage(struct offline_ctx *x, int stage)
{
	pthread_mutex_lock(&x->mu);
	while (x->stage < stage)
		pthread_cond_wait(&x->cv, &x->mu);
	pthread_mutex_unlock(&x->mu);
}

static void set_stage(struct offline_ctx *x, int stage)
{
	pthread_mutex_lock(&x->mu);
	x->stage = stage;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

static void *offline_worker(void *arg)
{
	struct offline_ctx *x = arg;
	host_cpu_claim(2);
	x->a[0] = kmalloc(200);              /* class 15: partial */
	for (unsigned i = 0; i < N; i++)
		x->b[i] = kmalloc(SZ);       /* class CLS: exhausted */
	for (unsigned i = 0; i < 16; i++)
		x->c[i] = kmalloc(1024);     /* 4 per span: spans full, last exhausted */
	kfree(x->c[13]);                     /* freed in the cached span */
	for (unsigned i = 0; i < 3; i++)
		x->k[i] = kmem_cache_alloc(x->kc);
	set_stage(x, 1);
	wait_stage(x, 2); /* stays out of the allocator while offlined */
	return NULL;
}

static void test_cpu_offline(void **state)
{
	(void)state;
	static struct offline_ctx x;
	memset(&x, 0, sizeof(x));
	pthread_mutex_init(&x.mu, NULL);
	pthread_cond_init(&x.cv, NULL);
	x.kc = kmem_cache_create("offline", 100, 0, NULL);
	assert_non_null(x.kc);
	mcentral_set_magazines(&x.kc->central, false);
	const unsigned ca = kmem_size_class(200), cc = kmem_size_class(1024);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, offline_worker, &x), 0);
	wait_stage(&x, 1);

	struct mcache *m = mcache_of(2);
	assert_true(m->online);
	struct mspan *sa = cpu_span(2, ca), *sb = cpu_span(2, CLS), *sc = cpu_span(2, cc);
	struct mspan *sk = atomic_load(&x.kc->cpu[2].cls.span);
	assert_ptr_equal(sa, span_of_ptr(x.a[0]));
	assert_ptr_equal(sb, span_of_ptr(x.b[0]));
	assert_ptr_equal(sc, span_of_ptr(x.c[12]));
	assert_ptr_equal(sk, span_of_ptr(x.k[0]));
	assert_int_equal(loc_of(sa), LOC_CACHED);
	assert_int_equal(loc_of(sb), LOC_CACHED);
	assert_int_equal(loc_of(sc), LOC_CACHED);
	assert_int_equal(loc_of(sk), LOC_CACHED);
	unsigned online0 = fx_stats().cpus_online;

	assert_int_equal(kmem_cpu_offline(2), 0);
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++)
		assert_ptr_equal(atomic_load(&m->cls[cls].span), NULL);
	assert_ptr_equal(atomic_load(&x.kc->cpu[2].cls.span), NULL);
	assert_false(m->online);
	assert_int_equal(fx_stats().cpus_online, online0 - 1);
	assert_int_equal(loc_of(sa), LOC_PARTIAL);
	assert_true(on_list(&central(ca)->partial, sa));
	assert_int_equal(loc_of(sb), LOC_FULL);
	assert_true(on_list(&central(CLS)->full, sb));
	assert_int_equal(loc_of(sc), LOC_PARTIAL); /* swept on the way: 3 of 4 */
	assert_int_equal(sc->alloc_count, 3);
	assert_true(on_list(&central(cc)->partial, sc));
	assert_int_equal(loc_of(sk), LOC_PARTIAL);
	assert_true(on_list(&x.kc->central.partial, sk));
	fx_assert_check();
	/* Idempotent, and range-checked. */
	assert_int_equal(kmem_cpu_offline(2), 0);
	assert_int_equal(fx_stats().cpus_online, online0 - 1);
	assert_int_equal(kmem_cpu_offline(4), -KMEM_EINVAL);
	assert_int_equal(kmem_cpu_offline(1000), -KMEM_EINVAL);

	set_stage(&x, 2);
	pthread_join(th, NULL);
	/* CPU 0 frees what CPU 2 allocated. */
	kfree(x.a[0]);
	for (unsigned i = 0; i < N; i++)
		kfree(x.b[i]);
	for (unsigned i = 0; i < 16; i++)
		if (i != 13)
			kfree(x.c[i]);
	for (unsigned i = 0; i < 3; i++)
		kmem_cache_free(x.kc, x.k[i]);
	assert_int_equal(kmem_cache_destroy(x.kc), 0);
	pthread_mutex_destroy(&x.mu);
	pthread_cond_destroy(&x.cv);
}

/* Memory flows between classes: a heap filled with one class, freed,
 * can be filled again with another class or large objects, without an
 * explicit reclaim (the allocator sweeps when it runs out of pages). */
static const struct fx_heap small_heap = {8, 2};

static size_t fill_with(size_t size, void ***out)
{
	size_t cap = 1024, n = 0;
	void **v = malloc(cap * sizeof(*v));
	assert_non_null(v);
	for (;;) {
		void *p = kmalloc(size);
		if (!p)
			break;
		if (n == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(*v));
			assert_non_null(v);
		}
		v[n++] = p;
	}
	*out = v;
	return n;
}

static void test_memory_flows(void **state)
{
	(void)state;
	struct kmem_stats st = fx_stats();
	const uint64_t pool = st.pages_free;
	const unsigned ca = kmem_size_class(512), cb = kmem_size_class(2048);
	void **a, **b, **l;
	size_t na = fill_with(512, &a);
	assert_true(na * 512 >= pool * PG / 100 * 85);
	assert_int_equal(fx_fault_count(), 0);
	for (size_t i = 0; i < na; i++)
		kfree(a[i]);
	size_t nb = fill_with(2048, &b);
	print_message("%llu pool pages: %zu x 512 B, then %zu x 2048 B\n",
	              (unsigned long long)pool, na, nb);
	assert_true(nb * 2048 >= pool * PG / 100 * 85);
	assert_int_equal(central(ca)->spans, 0); /* all of class A went back */
	assert_true(central(cb)->spans > 0);
	for (size_t i = 0; i < nb; i++)
		kfree(b[i]);
	size_t nl = fill_with(256 * 1024, &l);
	assert_true(nl * 64 >= pool / 100 * 85);
	assert_int_equal(central(cb)->spans, 0);
	for (size_t i = 0; i < nl; i++)
		kfree(l[i]);
	/* And back to small objects after an explicit reclaim. */
	kmem_reclaim();
	assert_int_equal(fx_stats().pages_free + fx_stats().pages_metadata, fx_stats().pages_managed);
	free(a);
	size_t na2 = fill_with(512, &a);
	assert_true(na2 * 512 >= pool * PG / 100 * 85);
	for (size_t i = 0; i < na2; i++)
		kfree(a[i]);
	free(a);
	free(b);
	free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_exhausted_goes_full),
		T(test_first_free_queues_once),
		T(test_partial_span_queued),
		T(test_cache_span_drains),
		T(test_swept_empty_kept),
		T(test_empty_kept_bounded),
		T(test_refill_drain_bounded),
		T(test_reclaim_releases_empty),
		T(test_cpu_offline),
		FX_TEST(test_memory_flows, &small_heap, fx_teardown_all_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
