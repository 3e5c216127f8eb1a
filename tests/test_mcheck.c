/*
 * tests/test_mcheck.c - the invariant checker finds each kind of broken
 * metadata.  Every test breaks one rule by hand, expects kmem_check() to
 * count it and report it as KMEM_FAULT_CORRUPT, mends it, and expects a
 * clean check again: the checker can fail, and it fails for the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "fixture.h"
#include "mtypes.h"

static const struct fx_heap heap = {64, 2};
#define T(fn) FX_TEST(fn, &heap, NULL)

/* Broken: kmem_check() > 0 and every report is KMEM_FAULT_CORRUPT. */
static void expect_broken(void)
{
	fx_faults_reset();
	unsigned long n = kmem_check();
	assert_true(n > 0);
	assert_int_equal(fx_fault_count(), n);
	assert_int_equal(fx_last_fault().kind, KMEM_FAULT_CORRUPT);
	fx_faults_reset();
}

static void expect_clean(void)
{
	fx_faults_reset();
	assert_int_equal(kmem_check(), 0);
	assert_int_equal(fx_fault_count(), 0);
}

static struct mspan *small_span(void **obj)
{
	*obj = kmalloc(64);
	assert_non_null(*obj);
	struct mspan *s = span_of_ptr(*obj);
	assert_non_null(s);
	return s;
}

static void test_clean_heap_passes(void **state)
{
	(void)state;
	void *p = kmalloc(100), *q = kmalloc(100000), *r = kpage_alloc(3, 0x1000, 0);
	expect_clean();
	kfree(p);
	kfree(q);
	kpage_free(r, 3);
	expect_clean();
}

static void test_free_count(void **state)
{
	(void)state;
	mheap_.heap[0]->pages_free++;
	expect_broken();
	mheap_.heap[0]->pages_free--;
	expect_clean();
}

static void test_page_bit_without_summary(void **state)
{
	(void)state;
	void *obj;
	struct mspan *s = small_span(&obj);
	struct heap_arena *a = arena_of_pfn(s->pfn);
	uint64_t i = s->pfn & (ARENA_PAGES - 1);
	a->pagebits[i >> 6] ^= 1ull << (i & 63); /* a span page marked free */
	expect_broken();
	a->pagebits[i >> 6] ^= 1ull << (i & 63);
	expect_clean();
	kfree(obj);
}

static void test_summary_corrupt(void **state)
{
	(void)state;
	struct psum *root = sum_ptr(mheap_.heap[0], mheap_.heap[0]->sum_level, 0); /* the hull's root */
	root->max++;
	expect_broken();
	root->max--;
	expect_clean();
}

static void test_span_counts(void **state)
{
	(void)state;
	void *obj;
	struct mspan *s = small_span(&obj);
	s->alloc_count = (uint16_t)(s->nelems + 1);
	expect_broken();
	s->alloc_count = 0;
	expect_clean();
	s->central->spans++;
	expect_broken();
	s->central->spans--;
	expect_clean();
	kfree(obj);
}

static void test_freed_bit_on_free_object(void **state)
{
	(void)state;
	void *obj;
	struct mspan *s = small_span(&obj);
	/* Object nelems-1 was never handed out. */
	uint32_t idx = s->nelems - 1;
	atomic_fetch_or(&s->freed_bits[idx / 64], 1ull << (idx % 64));
	expect_broken();
	atomic_fetch_and(&s->freed_bits[idx / 64], ~(1ull << (idx % 64)));
	expect_clean();
	kfree(obj);
}

static void test_listed_span_with_unqueued_frees(void **state)
{
	(void)state;
	void *obj;
	struct mspan *s = small_span(&obj);
	kmem_cpu_offline(0); /* the span goes to partial */
	uint64_t st = atomic_load(&s->sweepstate);
	assert_int_equal(SS_LOC(st), LOC_PARTIAL);
	/* A free whose push was lost: the bit without the queueing. */
	uint32_t idx = 0;
	atomic_fetch_or(&s->freed_bits[idx / 64], 1ull << idx);
	expect_broken();
	atomic_fetch_and(&s->freed_bits[idx / 64], ~1ull);
	expect_clean();
	kmem_cpu_online(0);
	kfree(obj);
}

static void test_list_count_and_state(void **state)
{
	(void)state;
	void *obj;
	struct mspan *s = small_span(&obj);
	kmem_cpu_offline(0);
	struct mcentral *c = s->central;
	c->partial.count++;
	expect_broken();
	c->partial.count--;
	expect_clean();
	uint64_t st = atomic_load(&s->sweepstate);
	atomic_store(&s->sweepstate, SS_MAKE(SS_GEN(st), LOC_FULL));
	expect_broken();
	atomic_store(&s->sweepstate, st);
	expect_clean();
	kmem_cpu_online(0);
	kfree(obj);
}

/* Magazines (magazine.c) and object states: a magazine's count and slot,
 * its entries against the states, the depot's counts, the states against
 * the span's bits. */
static void test_magazines(void **state)
{
	(void)state;
	const unsigned cls = kmem_size_class(64);
	void *p[8];
	for (int i = 0; i < 8; i++)
		p[i] = kmalloc(64);
	struct mag_slot *ms = &mcache_of(0)->mag[cls];
	uint32_t n0 = mag_slot_n(ms); /* the rest of the span, filled in at the first kmalloc */
	for (int i = 0; i < 4; i++)
		kfree(p[i]); /* into CPU 0's loaded magazine */
	struct mspan *s = span_of_ptr(p[0]);
	assert_int_equal(mag_slot_n(ms), n0 + 4);
	assert_ptr_equal(ms->top[-1], p[3]);
	assert_int_equal(atomic_load(*mag_entry_st(ms->top - 1)), ms->id);
	expect_clean();

	/* An object whose state names the magazine but which is not in it. */
	uint32_t i4 = span_obj_index(s, (uintptr_t)p[4] - s->base);
	atomic_store(&s->objstate[i4], ms->id);
	expect_broken();
	atomic_store(&s->objstate[i4], OBJ_CLIENT);
	expect_clean();

	/* A stale entry -- its object's state is not the magazine's id, as a
	 * racing double free leaves one -- is allowed. */
	assert_true(ms->top < ms->end);
	*ms->top = p[4];
	*mag_entry_st(ms->top) = &s->objstate[i4];
	ms->top++;
	expect_clean(); /* stale: the state is OBJ_CLIENT, not the id */
	ms->top--;

	/* The slot holds more than the class's capacity. */
	ms->end++;
	expect_broken();
	ms->end--;
	expect_clean();

	/* A state that disagrees with the bits: a client object marked free. */
	atomic_store(&s->objstate[i4], OBJ_FREE);
	expect_broken();
	atomic_store(&s->objstate[i4], OBJ_CLIENT);
	expect_clean();

	/* The depot's counts. */
	struct depot *d = &class_central(0, cls)->depot;
	d->nmags++;
	expect_broken();
	d->nmags--;
	atomic_fetch_add(&d->nfull, 1);
	expect_broken();
	atomic_fetch_sub(&d->nfull, 1);
	expect_clean();

	for (int i = 4; i < 8; i++)
		kfree(p[i]);
	expect_clean();
}

static void test_arena_map_to_dead_span(void **state)
{
	(void)state;
	void *obj = kmalloc(100000);
	struct mspan *s = span_of_ptr(obj);
	assert_non_null(s);
	atomic_store(&s->state, SPAN_DEAD);
	expect_broken();
	atomic_store(&s->state, SPAN_LARGE);
	expect_clean();
	kfree(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_clean_heap_passes),
		T(test_free_count),
		T(test_page_bit_without_summary),
		T(test_summary_corrupt),
		T(test_span_counts),
		T(test_freed_bit_on_free_object),
		T(test_listed_span_with_unqueued_frees),
		T(test_list_count_and_state),
		T(test_arena_map_to_dead_span),
		T(test_magazines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
