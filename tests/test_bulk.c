/*
 * tests/test_bulk.c - the bulk API (mm/bulk.c): kmem_cache_alloc_bulk is
 * all or nothing under OOM (and retries through the OOM hook); batches
 * come from and go to the CPU's magazines; ctors run on every object;
 * bad pointers mixed into kfree_bulk / kmem_cache_free_bulk are each
 * reported as kfree reports them while the good ones are freed; kfree_bulk
 * takes every size class, large objects and caches' objects in one batch;
 * objects allocated in bulk on one CPU are freed in bulk on others, also
 * concurrently; debug caches take the single path.  CPUs are threads.
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
#include "objstate.h"

static const struct fx_heap heap = {64, 4};

#define T(fn) FX_TEST(fn, &heap, fx_teardown_all_back)

static _Atomic unsigned long ctor_calls;

static void ctor(void *obj)
{
	*(uint64_t *)obj = 0xc7017e57c7017e57ull;
	ctor_calls++;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* n distinct, non-NULL objects of cache k, aligned to `align`, each in a
 * span of the cache. */
static void expect_objects(struct kmem_cache *k, void **p, size_t n, size_t align)
{
	void **s = malloc(n * sizeof(void *));
	assert_non_null(s);
	memcpy(s, p, n * sizeof(void *));
	qsort(s, n, sizeof(void *), cmp_ptr);
	for (size_t i = 0; i < n; i++) {
		assert_non_null(s[i]);
		assert_int_equal((uintptr_t)s[i] % align, 0);
		assert_ptr_equal(span_of_ptr(s[i])->cache, k);
		assert_int_equal(state_of(s[i]), OBJ_CLIENT);
		if (i)
			assert_true(s[i] != s[i - 1]);
	}
	free(s);
}

/* ------------------------------------------------------------------------
 * Allocation
 */

static void test_cache_bulk_round_trip(void **state)
{
	(void)state;
	struct kmem_cache *k = kmem_cache_create("bulk72", 72, 8, ctor);
	assert_non_null(k);
	static void *p[1000];
	static const size_t sizes[] = {1, 16, 63, 64, 65, 200, 1000};
	for (unsigned r = 0; r < 2; r++)
		for (unsigned j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			size_t n = sizes[j];
			ctor_calls = 0;
			assert_int_equal(kmem_cache_alloc_bulk(k, n, p), n);
			assert_int_equal(ctor_calls, n);
			expect_objects(k, p, n, 8);
			for (size_t i = 0; i < n; i++) {
				assert_int_equal(*(uint64_t *)p[i], 0xc7017e57c7017e57ull);
				fx_fill(p[i], 72, i + 1);
			}
			for (size_t i = 0; i < n; i++)
				assert_int_equal(fx_check(p[i], 72, i + 1), (size_t)-1);
			struct kmem_class_stats cs;
			kmem_cache_get_stats(k, &cs);
			assert_int_equal(cs.objects_in_use, n);
			kmem_cache_free_bulk(k, n, p);
			fx_assert_no_faults();
			for (size_t i = 0; i < n; i++)
				assert_int_not_equal(state_of(p[i]), OBJ_CLIENT);
			kmem_cache_get_stats(k, &cs);
			assert_int_equal(cs.objects_in_use, 0);
		}
	assert_int_equal(kmem_cache_alloc_bulk(k, 0, p), 0);
	fx_assert_check();
	assert_int_equal(kmem_cache_destroy(k), 0);
}

/* A warm cache: a batch pops the loaded magazine and a bulk free pushes
 * it back, in magazine order, with no span touched. */
static void test_bulk_works_on_the_magazine(void **state)
{
	(void)state;
	struct kmem_cache *k = kmem_cache_create("bulkmag", 128, 0, NULL);
	void *p[64], *q[64];
	assert_int_equal(kmem_cache_alloc_bulk(k, 48, p), 48);
	kmem_cache_free_bulk(k, 48, p);
	struct mag_slot *ms = &k->cpu[0].mag;
	uint32_t n0 = mag_slot_n(ms);
	assert_true(n0 >= 16);
	void **top = ms->top;
	assert_int_equal(kmem_cache_alloc_bulk(k, 16, q), 16);
	assert_ptr_equal(ms->top, top - 16);
	for (unsigned i = 0; i < 16; i++)
		assert_ptr_equal(q[i], top[-1 - (int)i]); /* popped from the top */
	kmem_cache_free_bulk(k, 16, q);
	assert_ptr_equal(ms->top, top);
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(state_of(q[i]), ms->id);
	fx_assert_no_faults();
	fx_assert_check();
	kmem_cache_destroy(k);
}

/* ---- OOM ---- */

static unsigned hook_calls;
static bool hook_adds;

static bool oom_hook(const struct kmem_oom_request *req)
{
	hook_calls++;
	assert_int_equal(req->kind, KMEM_OOM_CACHE);
	if (!hook_adds)
		return false;
	/* Once: 16 MiB at 512 MiB, inside the test's 1 GiB window. */
	hook_adds = false;
	struct kmem_region more = {512 * FX_MIB, 16 * FX_MIB, KMEM_REGION_USABLE, 0};
	fx_usable(more.base, more.length);
	return kmem_hot_add(&more) > 0;
}

static void test_alloc_bulk_all_or_nothing(void **state)
{
	(void)state;
	fx_reserve(FX_GIB);
	struct kmem_region r = {FX_SIMPLE_BASE, 4 * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(fx_init(&r, 1, 2), 0);
	hook_calls = 0;
	hook_adds = false;
	kmem_set_oom_hook(oom_hook);
	struct kmem_cache *k = kmem_cache_create("bulk2k", 2048, 0, ctor);
	static void *p[4096];
	void *keep = kmalloc(100); /* something live that must stay */
	struct kmem_stats before = fx_stats();

	/* 8 MiB of objects in a 4 MiB heap: nothing, and nothing kept. */
	ctor_calls = 0;
	memset(p, 0, sizeof p);
	assert_int_equal(kmem_cache_alloc_bulk(k, 4096, p), 0);
	assert_int_equal(ctor_calls, 0);
	assert_int_equal(hook_calls, 1); /* the single path asked the hook */
	struct kmem_class_stats cs;
	kmem_cache_get_stats(k, &cs);
	assert_int_equal(cs.objects_in_use, 0);
	kmem_cache_shrink(k);
	kmem_reclaim();
	struct kmem_stats after = fx_stats();
	/* (Span descriptors the attempt needed stay metadata.) */
	assert_int_equal(after.pages_free + after.pages_metadata,
	                 before.pages_free + before.pages_metadata);
	assert_int_equal(after.pages_small, before.pages_small);
	fx_assert_check();

	/* What fits is had in full, also right after the failure. */
	assert_int_equal(kmem_cache_alloc_bulk(k, 1000, p), 1000);
	assert_int_equal(ctor_calls, 1000);
	expect_objects(k, p, 1000, 8);
	kmem_cache_free_bulk(k, 1000, p);

	/* With a hook that adds memory the same batch succeeds. */
	hook_adds = true;
	hook_calls = 0;
	assert_int_equal(kmem_cache_alloc_bulk(k, 4096, p), 4096);
	assert_true(hook_calls >= 1);
	expect_objects(k, p, 4096, 8);
	kmem_cache_free_bulk(k, 4096, p);
	kmem_set_oom_hook(NULL);
	kfree(keep);
	assert_int_equal(kmem_cache_destroy(k), 0);
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* ------------------------------------------------------------------------
 * Bad pointers in a batch
 */

#define MAXF 32
static struct kmem_fault faults[MAXF];
static unsigned nfaults;

static void record(const struct kmem_fault *f)
{
	if (nfaults < MAXF)
		faults[nfaults] = *f;
	nfaults++;
}

static void expect_faults(const enum kmem_fault_kind *kind, void *const *addr, unsigned n)
{
	assert_int_equal(nfaults, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(faults[i].kind, kind[i]);
		assert_ptr_equal(faults[i].addr, addr[i]);
	}
	nfaults = 0;
}

static void test_kfree_bulk_bad_pointers_mixed_in(void **state)
{
	(void)state;
	struct kmem_cache *ca = kmem_cache_create("bulk-a", 72, 0, NULL);
	char *good[6], *freed = kmalloc(100), *big = kmalloc(100000);
	for (int i = 0; i < 6; i++)
		good[i] = kmalloc(i < 3 ? 100 : 700);
	char *gone = kmalloc(40000); /* a large object whose pages are freed */
	void *run = kpage_alloc(4, 0x1000, 0), *co = kmem_cache_alloc(ca);
	kfree(freed);
	kfree(gone);
	int local;
	void *meta = (void *)(uintptr_t)(mheap_.meta_base[0] + mheap_.offset + 64);
	void *batch[] = {good[0], freed,     good[1], good[0] + 8, &local, good[2], NULL,
	                 good[0], big + 4096, co,     good[3],     run,    gone,    meta,
	                 good[4], good[5]};
	const enum kmem_fault_kind kind[] = {KMEM_FAULT_DOUBLE_FREE, KMEM_FAULT_INTERIOR,
	                                     KMEM_FAULT_WILD,        KMEM_FAULT_DOUBLE_FREE,
	                                     KMEM_FAULT_INTERIOR,    KMEM_FAULT_WRONG_KIND,
	                                     KMEM_FAULT_FREE_PAGE,   KMEM_FAULT_METADATA};
	void *const addr[] = {freed, good[0] + 8, &local, good[0], big + 4096, run, gone, meta};
	nfaults = 0;
	kmem_fault_hook_t old = kmem_set_fault_hook(record);
	kfree_bulk(sizeof batch / sizeof batch[0], batch);
	kmem_set_fault_hook(old);
	expect_faults(kind, addr, 8);
	/* The good ones (and the cache's object) are free, the bad ones as
	 * they were: the large object and the run are still live. */
	for (int i = 0; i < 6; i++)
		assert_int_not_equal(state_of(good[i]), OBJ_CLIENT);
	assert_int_not_equal(state_of(co), OBJ_CLIENT);
	assert_true(ksize(big) >= 100000);
	fx_assert_check();
	kfree(big);
	kpage_free(run, 4);

	/* kmem_cache_free_bulk: another cache's and kmalloc's objects are
	 * wrong-cache faults; the cache's own are freed. */
	struct kmem_cache *cb = kmem_cache_create("bulk-b", 72, 0, NULL);
	void *a[3] = {kmem_cache_alloc(ca), kmem_cache_alloc(cb), kmem_cache_alloc(ca)};
	char *km = kmalloc(72);
	void *b2[] = {a[0], a[1], km, a[2], a[0]};
	nfaults = 0;
	old = kmem_set_fault_hook(record);
	kmem_cache_free_bulk(ca, 5, b2);
	kmem_set_fault_hook(old);
	const enum kmem_fault_kind kind2[] = {KMEM_FAULT_WRONG_CACHE, KMEM_FAULT_WRONG_CACHE,
	                                      KMEM_FAULT_DOUBLE_FREE};
	void *const addr2[] = {a[1], km, a[0]};
	expect_faults(kind2, addr2, 3);
	assert_int_not_equal(state_of(a[0]), OBJ_CLIENT);
	assert_int_not_equal(state_of(a[2]), OBJ_CLIENT);
	assert_int_equal(state_of(a[1]), OBJ_CLIENT);
	assert_int_equal(state_of(km), OBJ_CLIENT);
	kmem_cache_free(cb, a[1]);
	kfree(km);
	/* A cache that is not live: every object reported, none freed. */
	struct kmem_cache *dead = kmem_cache_create("bulk-gone", 72, 0, NULL);
	assert_int_equal(kmem_cache_destroy(dead), 0);
	nfaults = 0;
	old = kmem_set_fault_hook(record);
	void *c3[2] = {kmem_cache_alloc(cb), kmem_cache_alloc(cb)};
	assert_int_equal(kmem_cache_alloc_bulk(dead, 4, c3), 0);
	kmem_cache_free_bulk(dead, 2, c3);
	kmem_set_fault_hook(old);
	const enum kmem_fault_kind kind3[] = {KMEM_FAULT_WRONG_CACHE, KMEM_FAULT_WRONG_CACHE,
	                                      KMEM_FAULT_WRONG_CACHE};
	void *const addr3[] = {dead, c3[0], c3[1]};
	expect_faults(kind3, addr3, 3);
	assert_int_equal(state_of(c3[0]), OBJ_CLIENT);
	kmem_cache_free_bulk(cb, 2, c3);
	fx_assert_no_faults();
	assert_int_equal(kmem_cache_destroy(ca), 0);
	assert_int_equal(kmem_cache_destroy(cb), 0);
}

/* ------------------------------------------------------------------------
 * Every size in one batch
 */

static void test_kfree_bulk_every_class_and_large(void **state)
{
	(void)state;
	struct kmem_stats st = fx_stats();
	struct kmem_cache *k = kmem_cache_create("bulk-mix", 300, 64, NULL);
	enum { PER = 5 };
	size_t n = 0, cap = (size_t)st.nclasses * PER + 64;
	void **p = calloc(cap, sizeof(void *));
	size_t *sz = calloc(cap, sizeof(size_t));
	for (unsigned cls = 1; cls < st.nclasses; cls++) {
		struct kmem_class_stats cs = fx_class_stats(cls);
		for (int i = 0; i < PER; i++) {
			sz[n] = cs.object_size - (i % 2);
			p[n] = kmalloc(sz[n]);
			assert_non_null(p[n]);
			n++;
		}
	}
	static const size_t large[] = {KMEM_SMALL_MAX + 1, 40000, 65536, 1 << 20, 3 << 20};
	for (unsigned i = 0; i < sizeof large / sizeof large[0]; i++) {
		sz[n] = large[i];
		p[n++] = kmalloc(large[i]);
		sz[n] = 1;
		p[n++] = kmalloc_aligned(1, 16384);
	}
	for (int i = 0; i < 20; i++) {
		sz[n] = 300;
		p[n++] = kmem_cache_alloc(k);
	}
	/* Shuffled: classes, large objects and the cache interleaved. */
	uint64_t seed = fx_seed();
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = fx_mix64(seed + i) % (i + 1);
		void *t = p[i];
		p[i] = p[j];
		p[j] = t;
		size_t u = sz[i];
		sz[i] = sz[j];
		sz[j] = u;
	}
	for (size_t i = 0; i < n; i++) {
		assert_non_null(p[i]);
		fx_fill(p[i], sz[i], i);
	}
	for (size_t i = 0; i < n; i++)
		assert_int_equal(fx_check(p[i], sz[i], i), (size_t)-1);
	kfree_bulk(n, p);
	fx_assert_no_faults();
	assert_int_equal(fx_stats().large_objects, 0);
	for (unsigned cls = 1; cls < st.nclasses; cls++) {
		kmem_reclaim();
		assert_int_equal(fx_class_stats(cls).objects_in_use, 0);
	}
	assert_int_equal(kmem_cache_destroy(k), 0);
	free(p);
	free(sz);
}

/* ------------------------------------------------------------------------
 * Across CPUs
 */

struct xfer {
	struct kmem_cache *k;
	void **p;
	size_t n;
	bool alloc;
};

static void xfer_step(struct fx_cpu *c, int what)
{
	struct xfer *x = c->arg;
	what %= 3;
	if (what == 1) {
		if (kmem_cache_alloc_bulk(x->k, x->n, x->p) != x->n)
			FX_CPU_FAIL(c, "alloc_bulk of %zu failed", x->n);
		for (size_t i = 0; i < x->n; i++)
			fx_fill(x->p[i], 96, (uint64_t)(uintptr_t)x->p[i]);
	} else if (what == 2) {
		kmem_cache_free_bulk(x->k, x->n, x->p);
	} else {
		kfree_bulk(x->n, x->p);
	}
}

static void test_bulk_across_cpus(void **state)
{
	(void)state;
	struct kmem_cache *k = kmem_cache_create("bulk-x", 96, 0, NULL);
	static void *p[600];
	struct xfer x = {k, p, 600, true};
	struct fx_cpu c1 = {.id = 1, .step = xfer_step, .arg = &x};
	struct fx_cpu c2 = {.id = 2, .step = xfer_step, .arg = &x};
	fx_cpu_start(&c1);
	fx_cpu_start(&c2);
	for (int r = 0; r < 4; r++) {
		fx_cpu_run(&c1, 1 + 3 * r); /* CPU 1 allocates */
		expect_objects(k, p, 600, 8);
		for (size_t i = 0; i < 600; i++)
			assert_int_equal(fx_check(p[i], 96, (uint64_t)(uintptr_t)p[i]), (size_t)-1);
		if (r % 2)
			fx_cpu_run(&c2, 2 + 3 * r); /* CPU 2 frees, as the cache's */
		else
			kmem_cache_free_bulk(k, 600, p); /* CPU 0 frees */
		fx_assert_no_faults();
	}
	/* kmalloc objects of CPU 0 freed by CPU 2 in one kfree_bulk. */
	for (size_t i = 0; i < 600; i++)
		p[i] = kmalloc(16 + i % 2000);
	fx_cpu_run(&c2, 3);
	fx_cpu_stop(&c1);
	fx_cpu_stop(&c2);
	fx_assert_no_faults();
	assert_int_equal(kmem_cache_destroy(k), 0);
}

/* Three CPUs at once: each allocates batches, keeps them a while (checking
 * the pattern: no object is handed out twice) and gives half to the next
 * CPU, which frees them in bulk. */
#define XCPUS 3
#define XROUNDS 400
#define XB 40
struct mailbox {
	pthread_mutex_t m;
	void *obj[XB * 4];
	size_t n;
};
static struct mailbox box[XCPUS];
static struct kmem_cache *xk;
static _Atomic unsigned long xerrors;

static void *churn(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	host_cpu_claim((int)id);
	void *mine[XB], *got[XB * 4];
	for (unsigned r = 0; r < XROUNDS; r++) {
		size_t n = 1 + (r * 7 + id) % XB;
		if (kmem_cache_alloc_bulk(xk, n, mine) != n) {
			xerrors++;
			break;
		}
		for (size_t i = 0; i < n; i++)
			fx_fill(mine[i], 200, (uintptr_t)mine[i] ^ id);
		for (size_t i = 0; i < n; i++)
			if (fx_check(mine[i], 200, (uintptr_t)mine[i] ^ id) != (size_t)-1)
				xerrors++;
		/* CPU id (1..XCPUS) reads box id - 1 and writes the next. */
		struct mailbox *out = &box[id % XCPUS], *in = &box[id - 1];
		size_t half = n / 2;
		pthread_mutex_lock(&out->m);
		size_t room = sizeof out->obj / sizeof out->obj[0] - out->n;
		if (half > room)
			half = room;
		memcpy(out->obj + out->n, mine, half * sizeof(void *));
		out->n += half;
		pthread_mutex_unlock(&out->m);
		kmem_cache_free_bulk(xk, n - half, mine + half);
		pthread_mutex_lock(&in->m);
		size_t m = in->n;
		memcpy(got, in->obj, m * sizeof(void *));
		in->n = 0;
		pthread_mutex_unlock(&in->m);
		if (r % 2)
			kfree_bulk(m, got);
		else
			kmem_cache_free_bulk(xk, m, got);
	}
	host_cpu_release();
	return NULL;
}

static void test_bulk_concurrent(void **state)
{
	(void)state;
	xk = kmem_cache_create("bulk-c", 200, 0, NULL);
	xerrors = 0;
	pthread_t th[XCPUS];
	for (unsigned i = 0; i < XCPUS; i++) {
		pthread_mutex_init(&box[i].m, NULL);
		box[i].n = 0;
	}
	for (unsigned i = 0; i < XCPUS; i++)
		pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)(i + 1));
	for (unsigned i = 0; i < XCPUS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(xerrors, 0);
	for (unsigned i = 0; i < XCPUS; i++) {
		kmem_cache_free_bulk(xk, box[i].n, box[i].obj);
		pthread_mutex_destroy(&box[i].m);
	}
	fx_assert_no_faults();
	fx_cache_destroy_empty(xk);
}

/* ------------------------------------------------------------------------
 * Debug caches: the single path, with its checks
 */

static void test_bulk_debug_cache(void **state)
{
	(void)state;
	struct kmem_cache *k = kmem_cache_create_debug("bulk-dbg", 48, 0, ctor, KMEM_DEBUG_ALL);
	void *p[80];
	ctor_calls = 0;
	assert_int_equal(kmem_cache_alloc_bulk(k, 80, p), 80);
	assert_int_equal(ctor_calls, 80);
	expect_objects(k, p, 80, 8);
	((char *)p[7])[48] = 1; /* into the red zone */
	nfaults = 0;
	kmem_fault_hook_t old = kmem_set_fault_hook(record);
	kmem_cache_free_bulk(k, 80, p);
	kmem_set_fault_hook(old);
	const enum kmem_fault_kind kind[] = {KMEM_FAULT_OVERFLOW};
	void *const addr[] = {p[7]};
	expect_faults(kind, addr, 1);
	for (int i = 0; i < 80; i++)
		if (i == 7)
			assert_int_equal(state_of(p[i]), OBJ_CLIENT);
		else
			assert_int_not_equal(state_of(p[i]), OBJ_CLIENT);
	((char *)p[7])[48] = (char)POISON_REDZONE;
	kmem_cache_free(k, p[7]);
	fx_assert_no_faults();
	assert_int_equal(kmem_cache_destroy(k), 0);
}

#if KMEM_FAST_NESTING
/* Bulk calls nested in this CPU's fast path (an interrupt that arrived
 * there, simulated by entering by hand) leave the CPU's magazines alone:
 * they take the single paths (the shared span, frees to the spans). */
static void test_nested_bulk_leaves_magazines_alone(void **state)
{
	(void)state;
	struct kmem_cache *k = kmem_cache_create("bulk-nest", 64, 0, ctor);
	void *p[40], *q[40];
	assert_int_equal(kmem_cache_alloc_bulk(k, 40, p), 40); /* warm magazines */
	kmem_cache_free_bulk(k, 40, p);
	for (int i = 0; i < 40; i++)
		q[i] = kmalloc(64);
	struct mag_slot cache_before = k->cpu[0].mag;
	unsigned long t = arch_fast_enter();
	ctor_calls = 0;
	assert_int_equal(kmem_cache_alloc_bulk(k, 40, p), 40);
	assert_int_equal(ctor_calls, 40);
	expect_objects(k, p, 40, 8);
	struct mag_slot kmalloc_before = mcache_of(0)->mag[kmem_size_class(64)];
	kmem_cache_free_bulk(k, 40, p);
	kfree_bulk(40, q);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(state_of(p[i]), OBJ_FREE);
		assert_int_equal(state_of(q[i]), OBJ_FREE);
	}
	assert_memory_equal(&k->cpu[0].mag, &cache_before, sizeof cache_before);
	assert_memory_equal(&mcache_of(0)->mag[kmem_size_class(64)], &kmalloc_before,
	                    sizeof kmalloc_before);
	arch_fast_exit(t);
	fx_assert_no_faults();
	assert_int_equal(kmem_cache_destroy(k), 0);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_cache_bulk_round_trip),
		T(test_bulk_works_on_the_magazine),
		cmocka_unit_test(test_alloc_bulk_all_or_nothing),
		T(test_kfree_bulk_bad_pointers_mixed_in),
		T(test_kfree_bulk_every_class_and_large),
		T(test_bulk_across_cpus),
		T(test_bulk_concurrent),
		T(test_bulk_debug_cache),
#if KMEM_FAST_NESTING
		T(test_nested_bulk_leaves_magazines_alone),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
