/*
 * tests/test_magazine.c - per-CPU magazines and the depot (mm/magazine.c):
 * a freed object comes straight back without a sweep, at 64 B and 4 KiB;
 * double and interior frees of objects in magazines are caught; full
 * magazines travel through the depot to another CPU; past the depot's
 * bound they go back to their spans in batches; out of memory, another
 * CPU's previous magazines and spans are taken over, so that only its
 * loaded magazines stay out of reach (the bound spanalloc.h states); a
 * stale entry left by a racing double free is reported and never handed
 * out; a call nested in a fast path (arch_fast_enter) leaves the CPU's
 * magazines alone.  CPUs are threads (tests/fixture.h, fx_cpu).
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

/* CPU cpu's loaded magazine slot for objects of `size` bytes. */
static struct mag_slot *slot_of(unsigned cpu, size_t size)
{
	return &mcache_of(cpu)->mag[kmem_size_class(size)];
}

/* ------------------------------------------------------------------------
 * One CPU
 */

struct hand {
	void **obj;
	size_t n, size;
};

static void free_all_step(struct fx_cpu *c, int k)
{
	(void)k;
	struct hand *h = c->arg;
	for (size_t i = 0; i < h->n; i++)
		kfree(h->obj[i]);
}


/* With one object of the class live (so that no span empties), a freed
 * object is the next one allocated: no sweep, no span, no lock. */
static void pair_reuses(size_t size)
{
	struct mcentral *c = fx_central(size);
	void *live = kmalloc(size);
	assert_non_null(live);
	void *p = kmalloc(size);
	assert_non_null(p);
	uint64_t spans = c->spans;
	struct mspan *s = span_of_ptr(p);
	uint32_t fi = atomic_load(&s->freeindex);
	for (int i = 0; i < 1000; i++) {
		kfree(p);
		assert_int_equal(state_of(p), slot_of(0, size)->id);
		void *q = kmalloc(size);
		assert_ptr_equal(q, p);
		assert_int_equal(state_of(p), OBJ_CLIENT);
	}
	assert_int_equal(c->spans, spans);
	assert_int_equal(atomic_load(&s->freeindex), fi); /* never swept */
	assert_false(span_has_freed(s));
	kfree(p);
	kfree(live);
}

static void test_pair_reuses_without_sweep(void **state)
{
	(void)state;
	pair_reuses(64);
	pair_reuses(4096);
	pair_reuses(32768);
}

/* A second free of an object that sits in a magazine, its interior, and
 * a free of it from another CPU: each reported, nothing changes. */
static void test_bad_frees_of_magazine_objects(void **state)
{
	(void)state;
	char *p = kmalloc(100);
	kfree(p);
	struct mag_slot *ms = slot_of(0, 100);
	void **top = ms->top;
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	kfree(p + 8);
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, p + 8);
	assert_ptr_equal(ms->top, top);
	assert_int_equal(state_of(p), ms->id);
	fx_assert_check();
	/* The same from CPU 1. */
	void *one = p;
	struct hand h = {&one, 1, 100};
	struct fx_cpu c1 = {.id = 1, .step = free_all_step, .arg = &h};
	fx_cpu_start(&c1);
	fx_cpu_run(&c1, 1);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	fx_cpu_stop(&c1);
	assert_ptr_equal(ms->top, top);
	assert_ptr_equal(kmalloc(100), p); /* back out of the magazine */
	kfree(p);
}

/* ------------------------------------------------------------------------
 * Two CPUs: the depot, batches, taking over
 */

/* CPU 1 frees what CPU 0 allocated: its full magazines go to the depot,
 * and CPU 0 gets them back from there -- the same objects, no new span. */
static void test_depot_carries_objects_across_cpus(void **state)
{
	(void)state;
	const size_t size = 64;
	struct mcentral *c = fx_central(size);
	const size_t cap = c->mag_cap, n = 4 * cap;
	assert_true(c->depot.full_max >= 2);
	static void *obj[4 * MAG_CAP_MAX];
	for (size_t i = 0; i < n; i++)
		obj[i] = kmalloc(size);
	struct hand h = {obj, n, size};
	struct fx_cpu c1 = {.id = 1, .step = free_all_step, .arg = &h};
	fx_cpu_start(&c1);
	fx_cpu_run(&c1, 1);
	/* CPU 1: two magazines (loaded and previous), the rest in the depot. */
	assert_int_equal(atomic_load(&c->depot.nfull), n / cap - 2);
	assert_int_equal(fx_class_stats(kmem_size_class(size)).objects_in_use, 0);
	uint64_t spans = c->spans;
	/* CPU 0's magazines are empty (n is a multiple of cap): it takes
	 * the depot's, objects CPU 1 freed, with no new span. */
	static void *again[4 * MAG_CAP_MAX];
	const size_t m = n - 2 * cap;
	for (size_t i = 0; i < m; i++) {
		again[i] = kmalloc(size);
		bool from_cpu1 = false;
		for (size_t j = 0; j < n && !from_cpu1; j++)
			from_cpu1 = again[i] == obj[j];
		assert_true(from_cpu1);
	}
	assert_int_equal(atomic_load(&c->depot.nfull), 0);
	assert_int_equal(c->spans, spans);
	fx_assert_check();
	for (size_t i = 0; i < m; i++)
		kfree(again[i]);
	fx_cpu_stop(&c1);
}

/* Past the depot's bound, a CPU's previous magazine goes back to its
 * spans, as one batch: the objects' states become OBJ_FREE and their
 * freed bits are set; the depot holds full_max magazines. */
static void test_full_depot_gives_back_to_spans(void **state)
{
	(void)state;
	const size_t size = 256;
	struct mcentral *c = fx_central(size);
	const size_t cap = c->mag_cap, fm = c->depot.full_max;
	const size_t n = (2 + fm + 3) * cap;
	void **obj = calloc(n, sizeof(void *));
	for (size_t i = 0; i < n; i++)
		obj[i] = kmalloc(size);
	struct hand h = {obj, n, size};
	struct fx_cpu c1 = {.id = 1, .step = free_all_step, .arg = &h};
	fx_cpu_start(&c1);
	fx_cpu_run(&c1, 1);
	assert_int_equal(atomic_load(&c->depot.nfull), fm);
	size_t in_spans = 0;
	for (size_t i = 0; i < n; i++)
		in_spans += state_of(obj[i]) == OBJ_FREE;
	/* Magazines: CPU 1's loaded and previous, the depot's; the rest went
	 * back to the spans. */
	assert_int_equal(in_spans, n - (2 + fm) * cap);
	fx_assert_check();
	fx_cpu_stop(&c1);
	free(obj);
}

/* Issue: with 2 CPUs, CPU 1 allocated and freed 7 MiB of 4 KiB objects;
 * CPU 0 then got NULL although they were all free (in CPU 1's caches),
 * and after kmem_cpu_offline(1) 1808 more page runs succeeded.  Now
 * reclaim takes over CPU 1's previous magazines and spans: only its loaded
 * magazine stays out of reach, at most mag_cap objects. */
static void churn_4k_step(struct fx_cpu *c, int k)
{
	(void)k;
	struct hand *h = c->arg;
	for (size_t i = 0; i < h->n; i++)
		if (!(h->obj[i] = kmalloc(4096)))
			FX_CPU_FAIL(c, "cpu 1: kmalloc(4096) %zu failed", i);
	for (size_t i = 0; i < h->n; i++)
		kfree(h->obj[i]);
}

static void test_reclaim_takes_over_other_cpus(void **state)
{
	(void)state;
	fx_simple(16, 2);
	const size_t n = 7 * 256; /* 7 MiB */
	void **obj = calloc(n, sizeof(void *));
	struct hand h = {obj, n, 4096};
	struct fx_cpu c1 = {.id = 1, .step = churn_4k_step, .arg = &h};
	fx_cpu_start(&c1);
	fx_cpu_run(&c1, 1);
	size_t got = 0;
	static void *pages[8192];
	while (got < 8192 && (pages[got] = kpage_alloc(1, KMEM_PAGE_SIZE, 0)))
		got++;
	assert_true(got < 8192);
	/* Now CPU 1 goes: whatever it still held comes back. */
	fx_cpu_stop(&c1);
	size_t more = 0;
	static void *extra[8192];
	while (more < 8192 && (extra[more] = kpage_alloc(1, KMEM_PAGE_SIZE, 0)))
		more++;
	print_message("reclaim: %zu pages while CPU 1 ran, %zu more after it went offline"
	              " (bound: its loaded magazine, %u objects of 4 KiB)\n",
	              got, more, fx_central(4096)->mag_cap);
	assert_true(more <= fx_central(4096)->mag_cap);
	for (size_t i = 0; i < got; i++)
		kpage_free(pages[i], 1);
	for (size_t i = 0; i < more; i++)
		kpage_free(extra[i], 1);
	free(obj);
}

/* A racing double free, laid out by hand: CPU 0 freed p into its loaded
 * magazine; CPU 1's free of p (which had seen OBJ_CLIENT too) put p in
 * CPU 1's magazine and its id in p's state.  CPU 0's entry is stale: its
 * next allocation reports it and does not hand p out; CPU 1 hands p out
 * once; the statistics count one free. */
static void test_stale_entry_never_handed_out(void **state)
{
	(void)state;
	const size_t size = 48;
	void *live = kmalloc(size);
	char *p = kmalloc(size);
	/* CPU 1 needs a loaded magazine of the class: it frees one object. */
	void *o1 = kmalloc(size);
	kfree(p);
	assert_ptr_equal(slot_of(0, size)->top[-1], p);
	struct hand h = {&o1, 1, size};
	struct fx_cpu c1 = {.id = 1, .step = free_all_step, .arg = &h};
	fx_cpu_start(&c1);
	fx_cpu_run(&c1, 1);
	struct mag_slot *m1 = slot_of(1, size);
	assert_ptr_not_equal(m1->base, NULL);
	assert_true(m1->top < m1->end);
	struct mspan *s = span_of_ptr(p);
	_Atomic uint8_t *st = &s->objstate[span_obj_index(s, (uintptr_t)p - s->base)];
	*m1->top = p;
	*mag_entry_st(m1->top) = st;
	m1->top++;
	atomic_store(st, (uint8_t)m1->id);
	mcache_of(1)->cls[kmem_size_class(size)].nfree++; /* CPU 1 counted it */

	void *q = kmalloc(size);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	assert_ptr_not_equal(q, p);
	assert_int_equal(state_of(p), m1->id);
	fx_assert_check();
	kfree(q);
	kfree(live);
	fx_cpu_stop(&c1); /* CPU 1's magazines go back: p with them, once */
	assert_int_equal(state_of(p), OBJ_FREE);
	assert_int_equal(fx_class_stats(kmem_size_class(size)).objects_in_use, 0);
}

#if KMEM_FAST_NESTING
/* A call nested in this CPU's fast path (an interrupt that arrived there,
 * simulated by entering by hand) leaves the CPU's magazines as they were:
 * it allocates from the class's shared span and frees to the span. */
static void test_nested_call_leaves_magazines_alone(void **state)
{
	(void)state;
	const size_t size = 64;
	struct mcentral *c = fx_central(size);
	void *warm = kmalloc(size); /* a loaded magazine to leave alone */
	kfree(warm);
	struct mag_slot *ms = slot_of(0, size);
	struct mag_slot before = *ms;
	unsigned long t = arch_fast_enter();
	void *p = kmalloc(size);
	void *q = kzalloc(size);
	assert_non_null(p);
	assert_non_null(q);
	assert_ptr_equal(span_of_ptr(p), c->depot.shared);
	assert_int_equal(state_of(p), OBJ_CLIENT);
	kfree(p);
	kfree(q);
	assert_int_equal(state_of(p), OBJ_FREE);
	assert_true(span_has_freed(span_of_ptr(p)));
	assert_memory_equal(ms, &before, sizeof before);
	arch_fast_exit(t);
	struct kmem_class_stats cs = fx_class_stats(kmem_size_class(size));
	assert_int_equal(cs.objects_in_use, 0);
	assert_true(atomic_load(&c->nmalloc) >= 2);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pair_reuses_without_sweep),
		T(test_bad_frees_of_magazine_objects),
		T(test_depot_carries_objects_across_cpus),
		T(test_full_depot_gives_back_to_spans),
		T(test_reclaim_takes_over_other_cpus),
		T(test_stale_entry_never_handed_out),
#if KMEM_FAST_NESTING
		T(test_nested_call_leaves_magazines_alone),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
