/*
 * tests/test_freemem.c - kmem_free_pages() is exact: the count equals the
 * number of single pages kpage_alloc(1, 0, 0) then hands out until NULL,
 *   - after another CPU allocated and freed many small objects and page
 *     runs and stays online and idle (its loaded magazines keep what the
 *     header says they keep), counted on either CPU;
 *   - on fragmented heaps, where the span descriptors of the runs take
 *     pool pages from the top and the runs take the lowest pages (the
 *     race of the two ends the count replays), for many random layouts;
 * and the count before a workload on two CPUs equals the count after it
 * once everything is freed.  CPUs are threads (tests/fixture.h, fx_cpu).
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

#define T(fn) cmocka_unit_test_teardown(fn, fx_teardown_all_back)

/* Takes single pages with kpage_alloc(1, 0, 0) until NULL, then frees
 * them all; returns how many it got.  The pages are chained through
 * themselves, so it needs no host memory and may run on a CPU thread. */
static size_t drain_pages(void)
{
	size_t n = 0;
	void *head = NULL;
	for (void **p; (p = kpage_alloc(1, 0, 0)) != NULL; n++) {
		*p = head;
		head = p;
	}
	while (head) {
		void *next = *(void **)head;
		kpage_free(head, 1);
		head = next;
	}
	return n;
}

/* What a CPU does: allocate and free many objects of every kind. */
struct churn {
	uint64_t seed;
	size_t n;
};

static void churn_step(struct fx_cpu *c, int k)
{
	struct churn *ch = c->arg;
	void **obj = calloc(ch->n, sizeof(void *));
	size_t *pages = calloc(ch->n, sizeof(size_t));
	uint64_t r = ch->seed + (uint64_t)k;
	for (size_t i = 0; i < ch->n; i++) {
		r = fx_mix64(r);
		switch (r % 8) {
		case 0:
			pages[i] = 1 + (r >> 8) % 8;
			obj[i] = kpage_alloc(pages[i], KMEM_PAGE_SIZE << ((r >> 16) % 3), 0);
			break;
		case 1:
			obj[i] = kmalloc(KMEM_SMALL_MAX + 1 + (r >> 8) % 16384); /* large */
			break;
		case 2:
			obj[i] = kmalloc(4096);
			break;
		default:
			obj[i] = kmalloc(1 + (r >> 8) % 2048);
			break;
		}
		if (!obj[i])
			FX_CPU_FAIL(c, "cpu %u: allocation %zu failed", c->id, i);
	}
	/* Free in an order other than allocation order. */
	for (size_t i = 0; i < ch->n; i += 2)
		pages[i] ? kpage_free(obj[i], pages[i]) : kfree(obj[i]);
	for (size_t i = 1; i < ch->n; i += 2)
		pages[i] ? kpage_free(obj[i], pages[i]) : kfree(obj[i]);
	free(obj);
	free(pages);
}

/* The scenario: CPU 1 allocated and freed many small objects and
 * pages and stays online; CPU 0 counts, then takes pages until NULL. */
static void test_exact_after_other_cpu_churn(void **state)
{
	(void)state;
	fx_simple(64, 2);
	struct churn ch = {.seed = fx_seed(), .n = 3000};
	struct fx_cpu c1 = {.id = 1, .step = churn_step, .arg = &ch};
	fx_cpu_start(&c1);
	fx_cpu_run(&c1, 1);
	size_t count = kmem_free_pages();
	struct kmem_stats st = fx_stats();
	size_t got = drain_pages();
	print_message("free pages %zu (pages_free %llu), kpage_alloc(1) handed out %zu\n", count,
	              (unsigned long long)st.pages_free, got);
	assert_int_equal(count, got);
	assert_true(count > 0 && count <= st.pages_free);
	/* the case the header excludes is real: CPU 1's loaded magazines
	 * still hold freed objects, whose spans stay */
	assert_true(st.pages_small > 0);
	/* kmem_reclaim() first changes nothing, and neither does a count
	 * taken after the pages came back. */
	kmem_reclaim();
	assert_int_equal(kmem_free_pages(), got);
	fx_cpu_stop(&c1);
	fx_assert_no_faults();
}

/* From the other CPU: CPU 0 churned and stays online; CPU 1 counts and
 * then takes the pages. */
struct count_on_cpu {
	size_t count, got;
};

static void count_step(struct fx_cpu *c, int k)
{
	struct count_on_cpu *r = c->arg;
	if (k == 1)
		r->count = kmem_free_pages();
	else
		r->got = drain_pages();
}

static void test_exact_from_another_cpu(void **state)
{
	(void)state;
	fx_simple(64, 2);
	struct churn ch = {.seed = fx_seed(), .n = 3000};
	churn_step(&(struct fx_cpu){.id = 0, .arg = &ch}, 7);
	struct count_on_cpu r = {0, 0};
	struct fx_cpu c1 = {.id = 1, .step = count_step, .arg = &r};
	fx_cpu_start(&c1);
	fx_cpu_run(&c1, 1);
	fx_cpu_run(&c1, 2);
	fx_cpu_stop(&c1);
	print_message("CPU 1 counted %zu free pages and got %zu\n", r.count, r.got);
	assert_true(r.count > 0);
	assert_int_equal(r.count, r.got);
	fx_assert_no_faults();
}

/* Runs kept live at random split the pool into free runs of every
 * length, some shorter than the descriptor pages' windows: the count
 * must still be what the loop gets, layout after layout. */
static void test_exact_on_fragmented_heaps(void **state)
{
	(void)state;
	uint64_t seed = fx_seed();
	for (unsigned layout = 0; layout < 24; layout++) {
		fx_simple(4 + layout % 5, 1);
		size_t cap = 4096, n = 0;
		void **p = malloc(cap * sizeof(void *));
		size_t *len = malloc(cap * sizeof(size_t));
		uint64_t r = fx_mix64(seed + layout);
		unsigned maxlen = 1 + layout % 40; /* run lengths 1..maxlen */
		while (n < cap) {
			r = fx_mix64(r);
			len[n] = 1 + r % maxlen;
			if (!(p[n] = kpage_alloc(len[n], 0, 0)))
				break;
			n++;
		}
		/* Keep a random share (from none to nearly all) live. */
		unsigned keep = (unsigned)(layout * 4) % 100;
		size_t kept = 0;
		for (size_t i = 0; i < n; i++) {
			r = fx_mix64(r);
			if (r % 100 < keep)
				p[kept] = p[i], len[kept++] = len[i];
			else
				kpage_free(p[i], len[i]);
		}
		size_t count = kmem_free_pages();
		size_t got = drain_pages();
		if (count != got)
			fail_msg("layout %u (seed %llu, runs up to %u pages, %zu of %zu kept): "
			         "count %zu, kpage_alloc(1) got %zu",
			         layout, (unsigned long long)seed, maxlen, kept, n, count, got);
		for (size_t i = 0; i < kept; i++)
			kpage_free(p[i], len[i]);
		free(p);
		free(len);
		fx_assert_all_back();
	}
	fx_assert_no_faults();
}

/* One round of the workload: CPU 1, then CPU 0, allocate and free, and
 * CPU 1 goes offline at the end (so that its loaded magazines come back). */
static void workload_round(uint64_t seed)
{
	struct churn ch = {.seed = seed, .n = 5000};
	struct fx_cpu c1 = {.id = 1, .step = churn_step, .arg = &ch};
	fx_cpu_start(&c1);
	for (int k = 1; k <= 3; k++) {
		fx_cpu_run(&c1, k);
		churn_step(&(struct fx_cpu){.id = 0, .arg = &ch}, k + 100);
	}
	fx_cpu_stop(&c1);
}

/* Combs: free runs of `gap` pages between kept single pages, all over
 * the pool.  Below 16 no window for the descriptor pages exists, so every
 * grow takes one page; at 16 and above every free run holds windows and
 * the two ends meet inside one of them. */
static void test_exact_on_combs(void **state)
{
	(void)state;
	const size_t gaps[] = {2, 7, 15, 16, 17, 23, 31, 32, 33, 47, 100};
	for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
		for (unsigned mib = 4; mib <= 6; mib++) {
			fx_simple(mib, 1);
			size_t n = 0;
			static void *keep[8192], *gap[8192];
			while (n < 8192 && (gap[n] = kpage_alloc(gaps[g], 0, 0)) != NULL) {
				keep[n] = kpage_alloc(1, 0, 0);
				n++;
				if (!keep[n - 1])
					break;
			}
			for (size_t i = 0; i < n; i++)
				kpage_free(gap[i], gaps[g]);
			size_t count = kmem_free_pages();
			size_t got = drain_pages();
			if (count != got)
				fail_msg("comb of %zu free pages, %u MiB: count %zu, kpage_alloc(1) got %zu",
				         gaps[g], mib, count, got);
			for (size_t i = 0; i < n; i++)
				if (keep[i])
					kpage_free(keep[i], 1);
			fx_assert_all_back();
		}
	}
	fx_assert_no_faults();
}

/* Heaps of every size, page by page over more than one grow's worth of
 * descriptors: the two ends meet at every offset, the last window whole,
 * one page short of whole, or absent. */
static void test_exact_at_every_meeting_point(void **state)
{
	(void)state;
	fx_reserve(FX_GIB + 8 * FX_MIB);
	for (uint64_t extra = 0; extra < 400; extra++) {
		struct kmem_region r = {FX_SIMPLE_BASE, 2 * FX_MIB + extra * KMEM_PAGE_SIZE,
		                        KMEM_REGION_USABLE, 0};
		assert_int_equal(fx_init(&r, 1, 1), 0);
		size_t count = kmem_free_pages();
		size_t got = drain_pages();
		if (count != got)
			fail_msg("heap of 2 MiB + %llu pages: count %zu, kpage_alloc(1) got %zu",
			         (unsigned long long)extra, count, got);
	}
	fx_assert_no_faults();
}

/* The count before a workload on two CPUs equals the count after it,
 * once everything is freed.  The first workload on a fresh heap is the
 * exception: the magazines and span bitmaps it needs beyond the metadata
 * region's reserve come from pool pages that no release gives back
 * (mm/fixalloc.c), so there the count may only drop by those pages. */
static void test_same_before_and_after_workload(void **state)
{
	(void)state;
	fx_simple(128, 2);
	uint64_t seed = fx_seed();
	size_t fresh = kmem_free_pages();
	uint64_t meta0 = fx_stats().pages_metadata;
	workload_round(seed);
	size_t before = kmem_free_pages();
	uint64_t meta1 = fx_stats().pages_metadata;
	workload_round(seed + 1000);
	size_t after = kmem_free_pages();
	print_message("free pages: fresh heap %zu, before %zu, after %zu (metadata pages %llu, "
	              "then %llu, then %llu)\n",
	              fresh, before, after, (unsigned long long)meta0, (unsigned long long)meta1,
	              (unsigned long long)fx_stats().pages_metadata);
	assert_true(before <= fresh && fresh - before <= meta1 - meta0);
	assert_int_equal(before, after);
	assert_int_equal(drain_pages(), after);
	fx_assert_no_faults();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_exact_after_other_cpu_churn),
		T(test_exact_from_another_cpu),
		T(test_exact_on_fragmented_heaps),
		T(test_exact_on_combs),
		T(test_exact_at_every_meeting_point),
		T(test_same_before_and_after_workload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
