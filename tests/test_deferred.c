/*
 * tests/test_deferred.c - deferred free (mm/deferred.c): nothing deferred
 * is freed, reused or written before its grace period ends (contents and
 * poison checked, through reclaim and out of memory), everything is freed
 * after (kmem_check, statistics, every page back); overlapping grace
 * periods end in any order; bad pointers and double deferred frees are
 * reported at once; another CPU's batches, also after it went offline,
 * are freed by any CPU's kmem_grace_period_done.
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
#include "objstate.h"

static const struct fx_heap heap = {64, 4};

#define T(fn) FX_TEST(fn, &heap, fx_teardown_all_back)

static struct kmem_defer_stats dstats(void)
{
	struct kmem_defer_stats d;
	kmem_get_defer_stats(&d);
	return d;
}

/* Every page back, every deferred object freed, no batch left. */
static void expect_none_pending(void)
{
	struct kmem_defer_stats d = dstats();
	assert_int_equal(d.pending, 0);
	assert_int_equal(d.deferred, d.freed);
	assert_int_equal(d.batches, 0);
}

#define NOBJ 300

static void test_nothing_freed_before_the_grace_period(void **state)
{
	(void)state;
	struct kmem_cache *pk = kmem_cache_create_debug("dfr-poison", 96, 0, NULL, KMEM_DEBUG_POISON);
	static char *a[NOBJ], *b[NOBJ], *pa[NOBJ];
	for (int i = 0; i < NOBJ; i++) {
		a[i] = kmalloc(64);
		b[i] = kmalloc(64);
		pa[i] = kmem_cache_alloc(pk);
		fx_fill(a[i], 64, i);
		fx_fill(b[i], 64, 1000 + i);
		fx_fill(pa[i], 96, 2000 + i);
	}
	for (int i = 0; i < NOBJ; i++) {
		assert_int_equal(kfree_deferred(a[i]), 0);
		assert_int_equal(kmem_cache_free_deferred(pk, pa[i]), 0);
		assert_int_equal(state_of(a[i]), OBJ_DEFERRED);
	}
	uint64_t c1 = kmem_grace_period_start();
	for (int i = 0; i < NOBJ; i++)
		assert_int_equal(kfree_deferred(b[i]), 0);
	struct kmem_defer_stats d = dstats();
	assert_int_equal(d.deferred, 3 * NOBJ);
	assert_int_equal(d.pending, 3 * NOBJ);
	assert_int_equal(d.started, c1);
	assert_true(d.batches >= 3 * NOBJ / KMEM_DEFER_BATCH);
	fx_assert_check(); /* deferred objects and batch entries agree */

	/* Churn the class, reclaim, and run out of memory: no deferred
	 * object is handed out or written. */
	static void *other[4 * NOBJ];
	for (int i = 0; i < 4 * NOBJ; i++) {
		other[i] = kmalloc(64);
		for (int j = 0; j < NOBJ; j++)
			assert_true(other[i] != a[j] && other[i] != b[j]);
		memset(other[i], 0x55, 64);
	}
	kmem_reclaim();
	void *big[64];
	int nbig = 0;
	while (nbig < 64 && (big[nbig] = kmalloc(4 << 20)))
		nbig++;
	assert_true(nbig < 64); /* the allocations ran out: reclaim ran */
	for (int i = 0; i < nbig; i++)
		kfree(big[i]);
	for (int i = 0; i < NOBJ; i++) {
		assert_int_equal(fx_check(a[i], 64, i), (size_t)-1);
		assert_int_equal(fx_check(b[i], 64, 1000 + i), (size_t)-1);
		assert_int_equal(fx_check(pa[i], 96, 2000 + i), (size_t)-1); /* not poisoned */
		assert_int_equal(state_of(a[i]), OBJ_DEFERRED);
	}
	fx_assert_check();

	/* The first grace period ends: what came before it goes, the rest
	 * stays untouched. */
	assert_int_equal(kmem_grace_period_done(c1), 2 * NOBJ);
	for (int i = 0; i < NOBJ; i++) {
		assert_int_not_equal(state_of(a[i]), OBJ_DEFERRED);
		assert_int_not_equal(state_of(a[i]), OBJ_CLIENT);
		for (int j = 0; j < 96; j++)
			assert_int_equal((unsigned char)pa[i][j], POISON_FREE); /* freed now */
		assert_int_equal(state_of(b[i]), OBJ_DEFERRED);
		assert_int_equal(fx_check(b[i], 64, 1000 + i), (size_t)-1);
	}
	d = dstats();
	assert_int_equal(d.freed, 2 * NOBJ);
	assert_int_equal(d.pending, NOBJ);
	assert_int_equal(d.completed, c1);
	fx_assert_check();
	uint64_t c2 = kmem_grace_period_start();
	assert_true(c2 > c1);
	assert_int_equal(kmem_grace_period_done(c2), NOBJ);
	expect_none_pending();
	for (int i = 0; i < 4 * NOBJ; i++)
		kfree(other[i]);
	fx_assert_no_faults();
	assert_int_equal(kmem_cache_destroy(pk), 0);
}

/* Grace periods that overlap end in any order; a cookie start never gave
 * frees nothing. */
static void test_overlapping_grace_periods(void **state)
{
	(void)state;
	void *x = kmalloc(200), *y = kmalloc(200), *z = kmalloc(200);
	assert_int_equal(kmem_grace_period_done(0), 0);
	assert_int_equal(kfree_deferred(x), 0);
	uint64_t c1 = kmem_grace_period_start();
	assert_int_equal(kfree_deferred(y), 0);
	uint64_t c2 = kmem_grace_period_start();
	assert_int_equal(kfree_deferred(z), 0);
	assert_int_equal(kmem_grace_period_done(c2 + 1), 0); /* not started */
	assert_int_equal(kmem_grace_period_done(0), 0);
	assert_int_equal(state_of(x), OBJ_DEFERRED);
	/* c2 ends first: x and y were deferred before it started. */
	assert_int_equal(kmem_grace_period_done(c2), 2);
	assert_int_equal(state_of(z), OBJ_DEFERRED);
	assert_int_equal(kmem_grace_period_done(c1), 0);
	assert_int_equal(state_of(z), OBJ_DEFERRED);
	assert_int_equal(kmem_grace_period_done(kmem_grace_period_start()), 1);
	expect_none_pending();
	fx_assert_no_faults();
}

/* Bad pointers and double deferred frees: reported at kfree_deferred
 * time, nothing changed; the object is freed once, after its grace
 * period. */
static void test_bad_and_double_deferred_frees(void **state)
{
	(void)state;
	struct kmem_cache *ca = kmem_cache_create("dfr-a", 40, 0, NULL);
	struct kmem_cache *cb = kmem_cache_create("dfr-b", 40, 0, NULL);
	char *p = kmalloc(100), *big = kmalloc(100000), *freed = kmalloc(100);
	void *run = kpage_alloc(2, 0x1000, 0), *ao = kmem_cache_alloc(ca);
	int local;
	kfree(freed);
	assert_int_equal(kfree_deferred(NULL), 0);
	assert_int_equal(kfree_deferred(freed), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, freed);
	assert_int_equal(kfree_deferred(p + 8), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, p + 8);
	assert_int_equal(kfree_deferred(&local), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_WILD, &local);
	assert_int_equal(kfree_deferred(run), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, run);
	assert_int_equal(kfree_deferred(big + 4096), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, big + 4096);
	assert_int_equal(kmem_cache_free_deferred(cb, ao), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_WRONG_CACHE, ao);
	assert_int_equal(kmem_cache_free_deferred(ca, p), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_WRONG_CACHE, p);
	assert_int_equal(dstats().deferred, 0);

	/* Deferred once: every second free of it is a double free. */
	assert_int_equal(kfree_deferred(p), 0);
	assert_int_equal(kfree_deferred(big), 0);
	assert_int_equal(kmem_cache_free_deferred(ca, ao), 0);
	struct kmem_stats before = fx_stats();
	assert_int_equal(kfree_deferred(p), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	assert_int_equal(ksize(p), 0);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	assert_int_equal(kfree_deferred(big), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, big);
	kfree(big);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, big);
	assert_int_equal(kmem_cache_free_deferred(ca, ao), -KMEM_EINVAL);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, ao);
	kmem_cache_free(ca, ao);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, ao);
	struct kmem_stats after = fx_stats();
	assert_memory_equal(&before, &after, sizeof before);
	assert_int_equal(dstats().pending, 3);
	fx_assert_check();
	assert_int_equal(fx_stats().large_objects, 1);
	/* A cache with a deferred object is not empty. */
	assert_int_equal(kmem_cache_destroy(ca), -KMEM_EBUSY);

	assert_int_equal(kmem_grace_period_done(kmem_grace_period_start()), 3);
	assert_int_equal(fx_stats().large_objects, 0);
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	kpage_free(run, 2);
	expect_none_pending();
	fx_assert_no_faults();
	assert_int_equal(kmem_cache_destroy(ca), 0);
	assert_int_equal(kmem_cache_destroy(cb), 0);
}

/* ------------------------------------------------------------------------
 * Other CPUs
 */

struct defer_job {
	void **p;
	size_t n;
};

static void defer_step(struct fx_cpu *c, int k)
{
	(void)k;
	struct defer_job *j = c->arg;
	for (size_t i = 0; i < j->n; i++)
		if (kfree_deferred(j->p[i]) != 0)
			FX_CPU_FAIL(c, "kfree_deferred(%p) failed", j->p[i]);
}

static void test_other_cpus_batches(void **state)
{
	(void)state;
	enum { N = 1000 };
	static void *p[N], *q[N];
	for (int i = 0; i < N; i++) {
		p[i] = kmalloc(8 + i % 3000);
		q[i] = i % 50 ? kmalloc(24) : kmalloc(50000);
		fx_fill(p[i], 8, i);
	}
	struct defer_job j1 = {p, N}, j2 = {q, N};
	struct fx_cpu c1 = {.id = 1, .step = defer_step, .arg = &j1};
	struct fx_cpu c2 = {.id = 2, .step = defer_step, .arg = &j2};
	fx_cpu_start(&c1);
	fx_cpu_start(&c2);
	fx_cpu_run(&c1, 1);
	uint64_t c = kmem_grace_period_start();
	fx_cpu_run(&c2, 1);
	fx_cpu_stop(&c1); /* CPU 1 goes offline with its batches */
	fx_assert_check();
	for (int i = 0; i < N; i++)
		assert_int_equal(fx_check(p[i], 8, i), (size_t)-1);
	/* CPU 0 ends the grace period: CPU 1's objects go, CPU 2's (deferred
	 * after the start) stay. */
	assert_int_equal(kmem_grace_period_done(c), N);
	for (int i = 0; i < N; i++) {
		struct mspan *s = span_of_ptr(q[i]);
		if (i % 50) {
			assert_int_equal(state_of(q[i]), OBJ_DEFERRED);
		} else {
			assert_int_equal(atomic_load(&s->state), SPAN_FREEING);
			assert_true(s->hflags & HL_DEFERRED);
		}
	}
	assert_int_equal(dstats().pending, N);
	fx_cpu_stop(&c2);
	assert_int_equal(kmem_grace_period_done(kmem_grace_period_start()), N);
	expect_none_pending();
	fx_assert_no_faults();
}

/* Out of metadata for a new batch: -KMEM_ENOMEM and nothing changed (the
 * object is still the caller's); the batches already made are freed by
 * the next grace period, and deferring works again. */
static void test_no_metadata_for_a_batch(void **state)
{
	(void)state;
	fx_reserve(FX_GIB);
	struct kmem_region r = {FX_SIMPLE_BASE, 4 * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(fx_init(&r, 1, 1), 0);
	/* The per-CPU batch heads are made on first use: now. */
	assert_int_equal(kfree_deferred(kmalloc(16)), 0);
	assert_int_equal(kmem_grace_period_done(kmem_grace_period_start()), 1);
	enum { MAX = 200000 };
	void **p = calloc(MAX, sizeof(void *));
	size_t n = 0;
	while (n < MAX && (p[n] = kmalloc(16)))
		n++;
	static void *pages[1024];
	size_t np = 0;
	while (np < 1024 && (pages[np] = kpage_alloc(1, 0x1000, 0)))
		np++;
	assert_true(np < 1024); /* the pool is empty */
	size_t deferred = 0;
	int rc = 0;
	while (deferred < n && (rc = kfree_deferred(p[deferred])) == 0)
		deferred++;
	assert_int_equal(rc, -KMEM_ENOMEM);
	assert_true(deferred > 0 && deferred < n);
	assert_int_equal(state_of(p[deferred]), OBJ_CLIENT); /* still the caller's */
	assert_int_equal(dstats().pending, deferred);
	fx_assert_no_faults();
	fx_assert_check();
	assert_int_equal(kmem_grace_period_done(kmem_grace_period_start()), deferred);
	assert_int_equal(kfree_deferred(p[deferred]), 0); /* a batch block is free again */
	assert_int_equal(kmem_grace_period_done(kmem_grace_period_start()), 1);
	for (size_t i = deferred + 1; i < n; i++)
		kfree(p[i]);
	for (size_t i = 0; i < np; i++)
		kpage_free(pages[i], 1);
	free(p);
	expect_none_pending();
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* Hardened mode (level 2): a deferred object keeps its contents and its
 * canary stays checked (kmem_check) until the grace period ends; then it
 * is freed as kfree frees it: zeroed and quarantined.  kfree_bulk of
 * hardened objects (the single path) zeroes them too. */
static void test_hardened_mode(void **state)
{
	(void)state;
	fx_set_harden(2, 0x1234);
	fx_simple(64, 2);
	fx_set_harden(0, 0);
	assert_int_equal(kmem_harden_level(), 2);
	enum { N = 100 };
	static char *p[N], *q[N];
	for (int i = 0; i < N; i++) {
		p[i] = kmalloc(100 + i);
		q[i] = kmalloc(40);
		fx_fill(p[i], 100 + i, i);
		memset(q[i], 0x77, 40);
		assert_int_equal(kfree_deferred(p[i]), 0);
	}
	fx_assert_check();
	for (int i = 0; i < N; i++)
		assert_int_equal(fx_check(p[i], 100 + i, i), (size_t)-1);
	assert_int_equal(kmem_grace_period_done(kmem_grace_period_start()), N);
	kfree_bulk(N, (void **)q);
	for (int i = 0; i < N; i++) {
		assert_int_equal(fx_first_nonzero(p[i], 100 + i), (size_t)-1);
		assert_int_equal(fx_first_nonzero(q[i], 40), (size_t)-1);
	}
	expect_none_pending();
	fx_assert_no_faults();
	fx_assert_all_back();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_nothing_freed_before_the_grace_period),
		T(test_overlapping_grace_periods),
		T(test_bad_and_double_deferred_frees),
		T(test_other_cpus_batches),
		cmocka_unit_test(test_no_metadata_for_a_batch),
		cmocka_unit_test(test_hardened_mode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
