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
	usable[nusable++] = (struct kmem_region){base, len, KMEM_REGION_USABLE, 0};
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
static void make_descriptor_pages(int n)
{
	uint64_t meta0 = fx_stats().pages_metadata;
	enum { N = 10000 };
	static void *obj[N];
	assert_true(n <= N);
	for (int i = 0; i < n; i++) {
		obj[i] = kmalloc(i % 2 ? 4096 : 2048);
		assert_non_null(obj[i]);
	}
	for (int i = 0; i < n; i++)
		kfree(obj[i]);
	kmem_reclaim();
	assert_true(fx_stats().pages_metadata > meta0);
}

static long hot_add(uint64_t base, uint64_t len)
{
	fx_usable(base, len);
	note_usable(base, len);
	struct kmem_region r = {base, len, KMEM_REGION_USABLE, 0};
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
		{8 * FX_MIB, 56 * FX_MIB, KMEM_REGION_USABLE, 0},
		{300 * FX_MIB, 32 * FX_MIB, KMEM_REGION_USABLE, 0},
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
	make_descriptor_pages(3000);
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

/* ------------------------------------------------------------------------
 * The protect hook: every guard page unmapped, those made before it was set
 * too
 */

static uint64_t prot[4096]; /* physical pages the hook unmapped */
static size_t nprot;

static bool record_protect(void *addr, size_t bytes, enum kmem_access access)
{
	uint64_t ph = fx_phys(addr);
	if (ph % PG || bytes % PG || access != KMEM_ACCESS_NONE)
		return false; /* guards are never given back */
	for (uint64_t o = 0; o < bytes; o += PG) {
		if (nprot == sizeof prot / sizeof prot[0])
			return false;
		prot[nprot++] = ph + o;
	}
	return mprotect(addr, bytes, PROT_NONE) == 0;
}

static bool is_protected(uint64_t phys)
{
	for (size_t i = 0; i < nprot; i++)
		if (prot[i] == phys)
			return true;
	return false;
}

/* Every usable page next to a held page and not held itself is unmapped. */
static unsigned assert_edges_protected(void)
{
	unsigned n = 0;
	for (size_t i = 0; i < nheld; i++) {
		uint64_t ph = held[i];
		uint64_t nb[2] = {ph + PG, ph - PG};
		for (int j = 0; j < 2; j++) {
			if (ph < PG && j == 1)
				continue;
			if (is_held(nb[j]) || !is_usable(nb[j]))
				continue;
			if (!is_protected(nb[j]))
				fail_msg("page %#llx next to client page %#llx is not a protected guard",
				         (unsigned long long)nb[j], (unsigned long long)ph);
			n++;
		}
	}
	return n;
}

static int segv_status;

static void segv_exit(int sig)
{
	(void)sig;
	_exit(77);
}

/* In a child: writes 512 bytes past the end of page ph. */
static void assert_overflow_faults(uint64_t ph)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = segv_exit;
		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
		memset((char *)fx_virt(ph) + PG, 0x41, SMASH);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &segv_status, 0), pid);
	assert_true(WIFEXITED(segv_status));
	assert_int_equal(WEXITSTATUS(segv_status), 77);
}

static void test_guards_unmapped_through_the_hook(void **state)
{
	(void)state;
	nprot = 0;
	boot_two_regions();
	make_descriptor_pages(3000);
	assert_true(hot_add(64 * FX_MIB, 64 * FX_MIB) > 0);
	/* Set after those guards were made (the shim sets it after kmem_init). */
	assert_null(kmem_set_protect_hook(record_protect));
	size_t before = nprot;
	assert_true(before >= 2 + 2 + 2); /* region, descriptor run, hot-add */
	/* Guards made with the hook set are unmapped as they are made. */
	make_descriptor_pages(9000);
	assert_true(nprot > before);
	before = nprot;
	assert_true(hot_add(128 * FX_MIB, 8 * FX_MIB) > 0);
	assert_int_equal(nprot, before + 2);
	/* No protected page is ever handed out (hold_all_pages writes each),
	 * and every edge of client memory is one. */
	assert_true(hold_all_pages() > 0);
	unsigned edges = assert_edges_protected();
	printf("guard edges of client memory, all unmapped: %u\n", edges);
	assert_true(edges >= 5); /* a descriptor run, two hot-adds at both ends */
	/* An overflow off the highest client page faults. */
	assert_overflow_faults(held[nheld - 1]);
	fx_assert_check();
	free_held();
	kmem_set_protect_hook(NULL);
	for (size_t i = 0; i < nprot; i++)
		mprotect(fx_virt(prot[i]), PG, PROT_READ | PROT_WRITE);
}

/* ------------------------------------------------------------------------
 * Cheap page runs (issue #14.7)
 */

/* A kernel fills memory with single pages, frees them, fills again: it
 * gets at least 99 % of the usable pages of the map each time, and the
 * runs take no metadata (no descriptor, no pool page). */
static void test_single_pages_share(void **state)
{
	(void)state;
	const uint64_t len = 128 * FX_MIB;
	nusable = 0;
	fx_reserve(FX_GIB);
	struct kmem_region r = {FX_SIMPLE_BASE, len, KMEM_REGION_USABLE, 0};
	note_usable(r.base, r.length);
	assert_int_equal(fx_init(&r, 1, 2), 0);
	const uint64_t usable_pages = len / PG;
	uint64_t meta0 = fx_stats().pages_metadata;
	size_t got[2];
	for (int round = 0; round < 2; round++) {
		got[round] = hold_all_pages(); /* each page written whole */
		struct kmem_stats st = fx_stats();
		assert_int_equal(st.pages_metadata, meta0);
		assert_int_equal(st.page_runs, got[round]);
		fx_assert_check();
		free_held();
	}
	printf("pages a client can allocate and touch, filling memory with single pages twice: "
	       "%zu, %zu of %llu usable = %.2f%%\n",
	       got[0], got[1], (unsigned long long)usable_pages, 100.0 * (double)got[1] / (double)usable_pages);
	assert_int_equal(got[0], got[1]);
	assert_true(got[1] * 100 >= usable_pages * 99);
}

/* Metadata per live page run: none up to RUN_INLINE_MAX pages (the arena's
 * page byte, paid for every page of memory, says it all), one descriptor
 * above (at most 192 / 128 = 1.5 bytes a page); Linux's struct page costs
 * 64 bytes a page. */
static void test_metadata_per_page_run(void **state)
{
	(void)state;
	fx_simple(256, 2);
	enum { N = 2000 };
	static void *run[N];
	static size_t len[N];
	struct kmem_stats s0 = fx_stats();
	uint64_t pages = 0;
	for (int i = 0; i < N; i++) {
		len[i] = 1 + (size_t)i % RUN_INLINE_MAX / 8;
		run[i] = kpage_alloc(len[i], PG, 0);
		assert_non_null(run[i]);
		assert_null(span_of_ptr(run[i])); /* no descriptor */
		pages += len[i];
	}
	struct kmem_stats s1 = fx_stats();
	assert_int_equal(s1.pages_metadata, s0.pages_metadata);
	assert_int_equal(s1.page_runs, N);
	assert_int_equal(s1.pages_runs, pages);
	fx_assert_check();
	/* Bigger runs have a descriptor, from the reserve. */
	void *big = kpage_alloc(RUN_INLINE_MAX + 1, PG, 0);
	assert_non_null(big);
	assert_non_null(span_of_ptr(big));
	assert_true(sizeof(struct mspan) * 1.0 / (RUN_INLINE_MAX + 1) <= 1.5);
	printf("metadata bytes per live page run: 0 for 1..%u pages, one %zu-byte descriptor "
	       "above (<= %.2f bytes a page)\n",
	       RUN_INLINE_MAX, sizeof(struct mspan), sizeof(struct mspan) * 1.0 / (RUN_INLINE_MAX + 1));
	kpage_free(big, RUN_INLINE_MAX + 1);
	for (int i = 0; i < N; i++)
		kpage_free(run[i], len[i]);
	fx_assert_no_faults();
}

static void emit_nothing(const char *line, void *arg)
{
	(void)line;
	(void)arg;
}

/* Every bad free of a descriptorless run is reported with its kind and
 * the run as its span, and changes nothing. */
static void test_bad_frees_of_descriptorless_runs(void **state)
{
	(void)state;
	fx_simple(64, 2);
	struct kmem_cache *c = kmem_cache_create("c", 64, 0, NULL);
	char *one = kpage_alloc(1, PG, 0), *three = kpage_alloc(3, PG, 0);
	assert_non_null(one);
	assert_non_null(three);
	memset(three, 1, 3 * PG);
	kpage_free(one, 1);
	fx_assert_no_faults();
	assert_int_equal(kmem_leak_report(emit_nothing, NULL), 1); /* the run of three */
	struct kmem_stats before = fx_stats();
	struct fx_fault f;

	kpage_free(one, 1); /* twice */
	fx_expect_fault_at(KMEM_FAULT_FREE_PAGE, one);
	kfree(one);
	fx_expect_fault_at(KMEM_FAULT_FREE_PAGE, one);
	const struct { void *p; size_t n; enum kmem_fault_kind kind; } cases[] = {
		{three + PG, 2, KMEM_FAULT_INTERIOR},
		{three + 2 * PG, 1, KMEM_FAULT_INTERIOR},
		{three + 8, 3, KMEM_FAULT_INTERIOR},
		{three, 2, KMEM_FAULT_BAD_SIZE},
		{three, 4, KMEM_FAULT_BAD_SIZE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		kpage_free(cases[i].p, cases[i].n);
		f = fx_last_fault();
		fx_expect_fault_at(cases[i].kind, cases[i].p);
		assert_int_equal(f.span_base, (uintptr_t)three);
	}
	void *as_object[] = {three, three + PG + 16};
	for (size_t i = 0; i < 2; i++) {
		kfree(as_object[i]);
		f = fx_last_fault();
		fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, as_object[i]);
		assert_int_equal(f.span_base, (uintptr_t)three);
		kmem_cache_free(c, as_object[i]);
		fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, as_object[i]);
		assert_int_equal(ksize(as_object[i]), 0);
		fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, as_object[i]);
	}
	struct kmem_stats after = fx_stats();
	assert_memory_equal(&before, &after, sizeof before);
	fx_assert_check();
	assert_int_equal(three[3 * PG - 1], 1);

	/* The page freed, then reused by a span: a late kpage_free of it is
	 * the wrong kind, and changes nothing. */
	kpage_free(three, 3);
	fx_assert_no_faults();
	kpage_free(three, 3);
	fx_expect_fault_at(KMEM_FAULT_FREE_PAGE, three);
	void *obj[64];
	bool reused = false;
	for (int i = 0; i < 64; i++) {
		obj[i] = kmem_cache_alloc(c);
		assert_non_null(obj[i]);
	}
	for (uintptr_t p = (uintptr_t)one; p < (uintptr_t)one + PG; p += 64)
		for (int i = 0; i < 64; i++)
			reused |= obj[i] == (void *)p;
	if (reused) { /* first fit: the lowest free page, most likely */
		kpage_free(one, 1);
		fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, one);
	}
	for (int i = 0; i < 64; i++)
		kmem_cache_free(c, obj[i]);
	assert_int_equal(kmem_cache_destroy(c), 0);
	fx_assert_no_faults();
}

/* Two CPUs free the same descriptorless page at once, many times: the
 * free is decided under mheap.lock, so exactly one succeeds and the other
 * is reported; nothing is freed twice. */
enum { RACE_ROUNDS = 400 };
static void *_Atomic race_page;
static pthread_barrier_t race_bar;

static void *race_freer(void *arg)
{
	host_cpu_claim((int)(uintptr_t)arg);
	for (int i = 0; i < RACE_ROUNDS; i++) {
		pthread_barrier_wait(&race_bar);
		kpage_free(atomic_load(&race_page), 1);
		pthread_barrier_wait(&race_bar);
	}
	host_cpu_release();
	return NULL;
}

static void test_racing_frees_of_a_descriptorless_page(void **state)
{
	(void)state;
	fx_simple(64, 3);
	pthread_t th[2];
	pthread_barrier_init(&race_bar, NULL, 3);
	for (uintptr_t i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_freer, (void *)(i + 1)), 0);
	uint64_t free0 = fx_stats().pages_free;
	for (int i = 0; i < RACE_ROUNDS; i++) {
		void *p = kpage_alloc(1, PG, 0);
		assert_non_null(p);
		atomic_store(&race_page, p);
		pthread_barrier_wait(&race_bar); /* both free it */
		pthread_barrier_wait(&race_bar);
		assert_int_equal(fx_fault_count(), (unsigned long)i + 1);
		assert_int_equal(fx_stats().pages_free, free0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&race_bar);
	assert_int_equal(fx_last_fault().kind, KMEM_FAULT_FREE_PAGE);
	fx_faults_reset();
	fx_assert_check();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_overflow_into_metadata_region, fx_teardown_all_back),
		cmocka_unit_test_teardown(test_overflow_into_descriptor_and_hotadd_pages,
		                          fx_teardown_all_back),
		cmocka_unit_test_teardown(test_guards_unmapped_through_the_hook, fx_teardown_all_back),
		cmocka_unit_test_teardown(test_single_pages_share, fx_teardown_all_back),
		cmocka_unit_test_teardown(test_metadata_per_page_run, fx_teardown_all_back),
		cmocka_unit_test_teardown(test_bad_frees_of_descriptorless_runs, fx_teardown_all_back),
		cmocka_unit_test_teardown(test_racing_frees_of_a_descriptorless_page,
		                          fx_teardown_all_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
