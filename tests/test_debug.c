/*
 * tests/test_debug.c - the debug heap (built with -DKMEM_DEBUG_HEAP=1, see
 * the Makefile): poison catches writes after free, red zones catch
 * overflows at kfree and in kmem_check(), callers are recorded and
 * reported, the leak report groups live objects by class and caller.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"
#include "mtypes.h"

#if !KMEM_DEBUG_HEAP
#error "test_debug.c is built with -DKMEM_DEBUG_HEAP=1"
#endif

static const struct fx_heap heap = {64, 2};
#define T(fn) FX_TEST(fn, &heap, NULL)

static void __attribute__((noinline)) *alloc_here(size_t n)
{
	return kmalloc(n);
}

/* The caller recorded for objects from alloc_here() lies inside it. */
static void assert_caller_is_alloc_here(uintptr_t caller)
{
	assert_true(caller > (uintptr_t)alloc_here);
	assert_true(caller < (uintptr_t)alloc_here + 256);
}

static void test_ksize_is_the_size_asked(void **state)
{
	(void)state;
	for (size_t n = 1; n < 5000; n += 37) {
		unsigned char *p = kmalloc(n);
		assert_non_null(p);
		assert_int_equal(ksize(p), n);
		/* Debug spans stay off kfree's fast path (mtypes.h). */
		assert_int_equal(atomic_load(&span_of_ptr(p)->fast_nelems), 0);
		/* A red zone of at least KMEM_REDZONE bytes follows. */
		for (size_t i = 0; i < KMEM_REDZONE; i++)
			assert_int_equal(p[n + i], POISON_REDZONE);
		kfree(p);
	}
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_overflow_reported_at_free_with_caller(void **state)
{
	(void)state;
	unsigned char *p = alloc_here(40);
	assert_non_null(p);
	p[40] = 1; /* one byte past the end */
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_OVERFLOW, p);
	/* The bad call did nothing: the object is still allocated (its size
	 * answers, a second report comes from the checker) ... */
	assert_int_equal(ksize(p), 40);
	fx_assert_no_faults();
	assert_int_equal(kmem_check(), 1);
	fx_expect_fault_at(KMEM_FAULT_OVERFLOW, p);
	/* ... and once the red zone is mended it frees normally. */
	p[40] = POISON_REDZONE;
	kfree(p);
	fx_assert_no_faults();
	assert_int_equal(kmem_check(), 0);
	fx_assert_all_back();
}

static void test_overflow_reported_by_check(void **state)
{
	(void)state;
	unsigned char *p = alloc_here(100);
	p[100 + KMEM_REDZONE - 1] = 0;
	fx_faults_reset();
	assert_int_equal(kmem_check(), 1);
	assert_int_equal(fx_fault_count(), 1);
	struct fx_fault f = fx_last_fault();
	assert_int_equal(f.kind, KMEM_FAULT_OVERFLOW);
	assert_ptr_equal(f.addr, p);
	assert_caller_is_alloc_here(f.caller);
	p[100 + KMEM_REDZONE - 1] = POISON_REDZONE; /* mended */
	fx_faults_reset();
	assert_int_equal(kmem_check(), 0);
	kfree(p);
	fx_assert_no_faults();
}

static void test_use_after_free_caught_on_reuse(void **state)
{
	(void)state;
	unsigned char *victim = kmalloc(64);
	assert_non_null(victim);
	kfree(victim);
	victim[3] = 0x42; /* write after free */
	fx_faults_reset();
	/* Allocate from the class until the slot comes back (after the
	 * span is swept in place). */
	static void *held[4096];
	size_t n = 0;
	bool seen = false;
	while (n < 4096 && !seen) {
		held[n] = kmalloc(64);
		assert_non_null(held[n]);
		seen = held[n] == victim;
		n++;
	}
	assert_true(seen);
	fx_expect_fault_at(KMEM_FAULT_USE_AFTER_FREE, victim + 3);
	for (size_t i = 0; i < n; i++)
		kfree(held[i]);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_fresh_and_freed_memory_is_poisoned(void **state)
{
	(void)state;
	unsigned char *p = kmalloc(200);
	for (size_t i = 0; i < 200; i++)
		assert_int_equal(p[i], POISON_FREE);
	memset(p, 0, 200);
	kfree(p);
	for (size_t i = 0; i < 200; i++)
		assert_int_equal(p[i], POISON_FREE); /* poisoned at free */
	fx_assert_no_faults();
}

static unsigned long nlines;
static char lines[16][160];

static void collect(const char *line, void *arg)
{
	(void)arg;
	if (nlines < 16)
		strncpy(lines[nlines], line, sizeof lines[0] - 1);
	nlines++;
}

static void test_leak_report(void **state)
{
	(void)state;
	void *a[3], *b[2];
	for (int i = 0; i < 3; i++)
		a[i] = alloc_here(48);
	for (int i = 0; i < 2; i++)
		b[i] = kmalloc(48); /* another call site */
	void *big = alloc_here(100000);
	nlines = 0;
	assert_int_equal(kmem_leak_report(collect, NULL), 6);
	assert_int_equal(nlines, 3);
	unsigned found3 = 0, found2 = 0, foundlarge = 0;
	for (unsigned i = 0; i < nlines; i++) {
		unsigned long cls, size, caller, objs;
		char cache[32];
		if (sscanf(lines[i], "leak %lu %lu %31s caller=0x%lx objects=%lu", &cls, &size, cache,
		           &caller, &objs) == 5) {
			assert_int_equal(size, kmem_class[cls].size);
			if (objs == 3) {
				assert_caller_is_alloc_here(caller);
				found3++;
			} else if (objs == 2) {
				assert_true(caller != 0);
				found2++;
			}
		} else if (sscanf(lines[i], "leak large 0 - caller=0x%lx objects=%lu", &caller, &objs) == 2) {
			assert_int_equal(objs, 1);
			assert_caller_is_alloc_here(caller);
			foundlarge++;
		}
	}
	assert_int_equal(found3, 1);
	assert_int_equal(found2, 1);
	assert_int_equal(foundlarge, 1);
	for (int i = 0; i < 3; i++)
		kfree(a[i]);
	for (int i = 0; i < 2; i++)
		kfree(b[i]);
	kfree(big);
	nlines = 0;
	assert_int_equal(kmem_leak_report(collect, NULL), 0);
	assert_int_equal(nlines, 0);
	fx_assert_all_back();
}

static void test_realloc_keeps_red_zone_honest(void **state)
{
	(void)state;
	unsigned char *p = kmalloc(100);
	memset(p, 7, 100);
	p = krealloc(p, 60); /* shrink: a debug object moves */
	assert_non_null(p);
	assert_int_equal(ksize(p), 60);
	for (int i = 0; i < 60; i++)
		assert_int_equal(p[i], 7);
	p[60] = 0; /* now an overflow */
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_OVERFLOW, p);
	p[60] = POISON_REDZONE; /* the report left it allocated */
	kfree(p);
	fx_assert_no_faults();
	fx_assert_all_back();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ksize_is_the_size_asked),
		T(test_overflow_reported_at_free_with_caller),
		T(test_overflow_reported_by_check),
		T(test_use_after_free_caught_on_reuse),
		T(test_fresh_and_freed_memory_is_poisoned),
		T(test_leak_report),
		T(test_realloc_keeps_red_zone_honest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
