/*
 * tests/test_hardening.c - what a client bug cannot do, in the normal
 * build: overflows across whole spans leave the allocator intact (there is
 * no metadata in spans to hit); per-cache debug at run time; the OOM hook
 * runs outside every lock and can add memory for a retry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"
#include "mtypes.h"

static int setup(void **state)
{
	(void)state;
	fx_simple(64, 2);
	return 0;
}

/* Fill many small spans of several classes completely, then scribble over
 * every byte of every one of their pages (every object, and the tail past
 * the last one): the checker still passes and the heap goes on working. */
static void test_overflow_across_whole_spans(void **state)
{
	(void)state;
	static void *objs[20000];
	size_t n = 0;
	const size_t sizes[] = {8, 48, 256, 1000, 3000};
	for (size_t k = 0; k < 5; k++)
		for (size_t i = 0; i < 4000 && n < 20000; i++)
			assert_non_null(objs[n++] = kmalloc(sizes[k]));
	struct kmem_stats before = fx_stats();
	assert_true(before.pages_small > 100);
	/* Scribble over every page of every span holding our objects. */
	for (size_t i = 0; i < n; i++) {
		struct mspan *s = span_of_ptr(objs[i]);
		memset((void *)s->base, 0xa5, s->npages * KMEM_PAGE_SIZE);
	}
	fx_assert_check();
	/* The allocator keeps working: free all, allocate again, all back. */
	for (size_t i = 0; i < n; i++)
		kfree(objs[i]);
	fx_assert_no_faults();
	for (size_t i = 0; i < n; i++)
		assert_non_null(objs[i] = kmalloc(sizes[i % 5]));
	for (size_t i = 0; i < n; i++)
		kfree(objs[i]);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_cache_debug_at_run_time(void **state)
{
	(void)state;
	struct kmem_cache *plain = kmem_cache_create("plain", 40, 0, NULL);
	struct kmem_cache *dbg = kmem_cache_create_debug("dbg", 40, 0, NULL, KMEM_DEBUG_ALL);
	assert_non_null(plain);
	assert_non_null(dbg);
	assert_null(kmem_cache_create_debug("bad", 40, 0, NULL, 0x100));
	unsigned char *p = kmem_cache_alloc(plain), *q = kmem_cache_alloc(dbg);
	assert_int_equal(ksize(p), 40);
	assert_int_equal(ksize(q), 40); /* the size asked, not the slot */
	p[40] = 1;                      /* inside the plain slot: not seen */
	q[40] = 1;                      /* the debug cache's red zone */
	kmem_cache_free(plain, p);
	fx_assert_no_faults();
	kmem_cache_free(dbg, q);
	fx_expect_fault_at(KMEM_FAULT_OVERFLOW, q);
	assert_int_equal(q[0], POISON_FREE); /* poisoned at free */
	assert_int_equal(kmem_cache_destroy(plain), 0);
	assert_int_equal(kmem_cache_destroy(dbg), 0);
	fx_assert_all_back();
}

/* ---- OOM hook ---- */

static unsigned hook_calls;
static bool hook_adds;
static uint64_t next_add;

static bool oom_hook(size_t bytes)
{
	hook_calls++;
	assert_true(bytes > 0);
	/* No allocator lock is held: these take mheap.lock and a CPU cache. */
	struct kmem_stats st = fx_stats();
	assert_true(st.pages_managed > 0);
	if (!hook_adds)
		return false;
	hook_adds = false;
	fx_usable(next_add, 16 * FX_MIB);
	struct kmem_region r = {next_add, 16 * FX_MIB, KMEM_REGION_USABLE};
	assert_true(kmem_hot_add(&r) > 0);
	next_add += 16 * FX_MIB;
	return true;
}

static void test_oom_hook_adds_memory(void **state)
{
	(void)state;
	fx_reserve(FX_GIB);
	struct kmem_region r = {FX_SIMPLE_BASE, 8 * FX_MIB, KMEM_REGION_USABLE};
	assert_int_equal(fx_init(&r, 1, 1), 0);
	next_add = 512 * FX_MIB;
	kmem_set_oom_hook(oom_hook);
	hook_calls = 0;
	hook_adds = false;
	/* Without help, the heap runs out and the hook is asked each time. */
	static void *held[4096];
	size_t n = 0;
	while (n < 4096 && (held[n] = kmalloc(64 * 1024)))
		n++;
	assert_true(n < 4096);
	assert_int_equal(hook_calls, 1);
	uint64_t managed = fx_stats().pages_managed;
	/* With help: the same call succeeds after a hot-add. */
	hook_adds = true;
	void *more = kmalloc(64 * 1024);
	assert_non_null(more);
	assert_int_equal(hook_calls, 2);
	assert_true(fx_stats().pages_managed > managed);
	assert_true(kmem_virt_to_phys(more) >= 512 * FX_MIB);
	/* Every allocation path asks the hook. */
	hook_calls = 0;
	hook_adds = false;
	while (kpage_alloc(64, 0x1000, 0))
		;
	assert_int_equal(hook_calls, 1);
	kfree(more);
	for (size_t i = 0; i < n; i++)
		kfree(held[i]);
	kmem_set_oom_hook(NULL);
	fx_assert_no_faults();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_overflow_across_whole_spans, setup),
		cmocka_unit_test_setup(test_cache_debug_at_run_time, setup),
		cmocka_unit_test(test_oom_hook_adds_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
