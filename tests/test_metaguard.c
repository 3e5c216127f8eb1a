/*
 * tests/test_metaguard.c - no allocator byte next to client memory (issue
 * #13.2: guard pages around every piece of metadata) and cheap page runs
 * (issue #14.7: descriptorless runs, the share of usable pages a client
 * can get).
 *
 * The overflow tests take every page a client can get, then write 512
 * bytes past the end and before the start of every held page whose
 * neighbour is usable memory the test does not hold (so the allocator's:
 * its metadata region, pool pages it took for descriptors, a hot-add's
 * arena metadata, or a guard page).  With no guard gap that corrupted
 * mcentral locks and arena maps (the next kmalloc on another CPU spun
 * forever); with one, the heap must be intact.  An alarm turns a hang
 * into a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "host.h"
#include "mtypes.h"

#define PG KMEM_PAGE_SIZE
#define SMASH 512
#define HANG_SECONDS 60

/* ------------------------------------------------------------------------
 * Usable memory as the test declared it, and the pages it holds
 */

static struct kmem_region usable[8];
static size_t nusable;

static void note_usable(uint64_t base, uint64_t len)
{
	assert_true(nusable < 8);
	usable[nusable++] = (struct kmem_region){base, len, KMEM_REGION_USABLE};
}

static bool is_usable(uint64_t phys)
{
	for (size_t i = 0; i < nusable; i++)
		if (phys >= usable[i].base && phys + PG <= usable[i].base + usable[i].length)
			return true;
	return false;
}

static uint64_t *held; /* physical addresses, sorted */
static size_t nheld;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool is_held(uint64_t phys)
{
	return bsearch(&phys, held, nheld, sizeof *held, cmp_u64) != NULL;
}

/* Takes every page kpage_alloc gives, one at a time; returns how many. */
static size_t hold_all_pages(void)
{
	uint64_t cap = fx_stats().pages_free + 16;
	held = realloc(held, cap * sizeof *held);
	assert_non_null(held);
	nheld = 0;
	void *p;
	while ((p = kpage_alloc(1, PG, 0)) != NULL) {
		assert_true(nheld < cap);
		memset(p, 0x5a, PG); /* a client can touch all of it */
		held[nheld++] = fx_phys(p);
	}
	qsort(held, nheld, sizeof *held, cmp_u64);
	return nheld;
}

static void free_held(void)
{
	for (size_t i = 0; i < nheld; i++)
		kpage_free(fx_virt(held[i]), 1);
	nheld = 0;
	fx_assert_no_faults();
}

/* The overflow and underflow of every held page at the edge of memory the
 * test does not hold; returns how many edges were written. */
static unsigned smash_edges(void)
{
	unsigned n = 0;
	for (size_t i = 0; i < nheld; i++) {
		uint64_t ph = held[i];
		if (!is_held(ph + PG) && is_usable(ph + PG)) {
			memset((char *)fx_virt(ph) + PG, 0x41, SMASH);
			n++;
		}
		if (ph >= PG && !is_held(ph - PG) && is_usable(ph - PG)) {
			memset((char *)fx_virt(ph) - SMASH, 0x41, SMASH);
			n++;
		}
	}
	return n;
}

/* CPU 1: allocates and frees a few objects of several classes. */
static void other_cpu_step(struct fx_cpu *c, int k)
{
	(void)k;
	static const size_t sizes[] = {8, 16, 64, 200, 1024, 4096, 20000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char *p = kmalloc(sizes[i]);
		if (!p) {
			FX_CPU_FAIL(c, "kmalloc(%zu) on cpu 1 failed", sizes[i]);
			return;
		}
		memset(p, 0x33, sizes[i]);
		kfree(p);
	}
}

/* Frees the pages it holds and a few before, so that the other CPU can
 * make spans, runs it, and checks the heap. */
static void other_cpu_works(void)
{
	for (size_t i = 0; i < 64 && nheld; i++)
		kpage_free(fx_virt(held[--nheld]), 1);
	struct fx_cpu c1 = {.id = 1, .step = other_cpu_step};
	fx_cpu_start(&c1);
	fx_cpu_run(&c1, 1);
	fx_cpu_stop(&c1);
	fx_assert_no_faults();
	fx_assert_check();
}

/* Makes descriptor and span-metadata blocks past the metadata region's
 * reserve (fixalloc then takes pool pages), then gives the spans back:
 * the pool pages stay metadata. */
static void make_descriptor_pages(void)
{
	uint64_t meta0 = fx_stats().pages_metadata;
	enum { N = 3000 };
	static void *obj[N];
	for (int i = 0; i < N; i++) {
		obj[i] = kmalloc(i % 2 ? 4096 : 2048);
		assert_non_null(obj[i]);
	}
	for (int i = 0; i < N; i++)
		kfree(obj[i]);
	kmem_reclaim();
	assert_true(fx_stats().pages_metadata > meta0);
}

static long hot_add(uint64_t base, uint64_t len)
{
	fx_usable(base, len);
	note_usable(base, len);
	struct kmem_region r = {base, len, KMEM_REGION_USABLE};
	return kmem_hot_add(&r);
}

/* Two boot regions: [8, 64) MiB and [300, 332) MiB (the metadata region
 * at the top of the latter); then hot-adds [64, 128) MiB (a whole arena,
 * shared: copy room at its start, right above boot pool pages) and
 * [128, 136) MiB (part of a new arena: its structure at the start). */
static void boot_two_regions(void)
{
	nusable = 0;
	fx_reserve(FX_GIB);
	struct kmem_region r[2] = {
		{8 * FX_MIB, 56 * FX_MIB, KMEM_REGION_USABLE},
		{300 * FX_MIB, 32 * FX_MIB, KMEM_REGION_USABLE},
	};
	note_usable(r[0].base, r[0].length);
	note_usable(r[1].base, r[1].length);
	assert_int_equal(fx_init(r, 2, 2), 0);
}

/* ------------------------------------------------------------------------
 * Tests
 */

/* Every page taken, the highest run overflowed into the metadata region
 * above it: kmalloc on another CPU works, kmem_check passes. */
static void test_overflow_into_metadata_region(void **state)
{
	(void)state;
	alarm(HANG_SECONDS);
	boot_two_regions();
	assert_true(hold_all_pages() > 0);
	uint64_t top = held[nheld - 1];
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	assert_true(top < mb); /* the region is above every client page */
	assert_true(smash_edges() > 0);
	other_cpu_works();
	free_held();
	fx_assert_all_back();
	alarm(0);
}

/* The same at pool pages taken for span descriptors and at a hot-add's
 * arena metadata, from both sides. */
static void test_overflow_into_descriptor_and_hotadd_pages(void **state)
{
	(void)state;
	alarm(HANG_SECONDS);
	boot_two_regions();
	make_descriptor_pages();
	assert_true(hot_add(64 * FX_MIB, 64 * FX_MIB) > 0);
	assert_true(hot_add(128 * FX_MIB, 8 * FX_MIB) > 0);
	assert_true(hold_all_pages() > 0);
	/* Edges: the metadata region, descriptor pages, both hot-adds. */
	assert_true(smash_edges() >= 4);
	other_cpu_works();
	free_held();
	fx_assert_all_back();
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_overflow_into_metadata_region, fx_teardown_all_back),
		cmocka_unit_test_teardown(test_overflow_into_descriptor_and_hotadd_pages,
		                          fx_teardown_all_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
