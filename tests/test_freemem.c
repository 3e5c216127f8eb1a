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
 * once everything is freed.  The metadata pages a workload took from the
 * pool (mm/fixalloc.c) go back after kmem_reclaim and a grace period: the
 * count is then the fresh heap's, guard pages are unprotected, a block
 * reused while its run waited keeps the run, and double frees racing the
 * release are all reported and write nothing into the pages a client got.
 * CPUs are threads (tests/fixture.h, fx_cpu).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fixture.h"
#include "host.h"
#include "mtypes.h"

#define T(fn) cmocka_unit_test_teardown(fn, fx_teardown_all_back)

/* The metadata blocks carved so far, by kind (issue #14's breakdown of
 * the pool pages a workload takes as metadata). */
static size_t fl_len(const struct fixalloc *f)
{
	size_t n = 0;
	for (unsigned k = 0; k < KMEM_MAX_NODES; k++) {
		for (void *p = f->free[k]; p; p = *(void **)p)
			n++;
		for (void *p = f->pend[k]; p; p = *(void **)p)
			n++;
	}
	return n;
}
static void print_breakdown(const char *when)
{
	struct { const char *name; const struct fixalloc *f; } fa[] = {
		{"span descriptors", &mheap_.spanalloc},
		{"span meta 128", &mheap_.spanmeta[0]}, {"span meta 256", &mheap_.spanmeta[1]},
		{"span meta 384", &mheap_.spanmeta[2]}, {"span meta 704", &mheap_.spanmeta[3]},
		{"magazines", &mheap_.magalloc}, {"caches", &mheap_.cachealloc},
		{"debug 16", &mheap_.dbgalloc[0]}, {"debug 64", &mheap_.dbgalloc[1]},
		{"debug 256", &mheap_.dbgalloc[2]}, {"debug 512", &mheap_.dbgalloc[3]},
	};
	print_message("metadata blocks %s (kind: size x (in use + free) = bytes carved):\n", when);
	size_t tot = 0;
	for (size_t i = 0; i < sizeof fa / sizeof fa[0]; i++) {
		size_t fr = fl_len(fa[i].f), b = fa[i].f->size * (fixalloc_inuse(fa[i].f) + fr);
		tot += b;
		if (b)
			print_message("  %-17s %5zu x (%6llu + %6zu) = %8zu\n", fa[i].name, fa[i].f->size,
			              (unsigned long long)fixalloc_inuse(fa[i].f), fr, b);
	}
	print_message("  total %zu bytes = %zu pages; pages_metadata %llu\n", tot, tot / 4096,
	              (unsigned long long)mheap_.heap[0]->pages_metadata);
}

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

/* What a CPU does: allocate and free many objects of every kind; with
 * caches set, also objects of those caches and small objects of every
 * class, and with defer set every fifth small object freed through
 * kfree_deferred. */
struct churn {
	uint64_t seed;
	size_t n;
	struct kmem_cache *cache[2];
	bool defer;
};

static void churn_free(struct fx_cpu *c, void *p, size_t pages, uint8_t cache, size_t i)
{
	struct churn *ch = c->arg;
	if (pages)
		kpage_free(p, pages);
	else if (cache)
		kmem_cache_free(ch->cache[cache - 1], p);
	else if (ch->defer && i % 5 == 0) {
		if (kfree_deferred(p) != 0)
			FX_CPU_FAIL(c, "cpu %u: kfree_deferred failed", c->id);
	} else
		kfree(p);
}

static void churn_step(struct fx_cpu *c, int k)
{
	struct churn *ch = c->arg;
	void **obj = calloc(ch->n, sizeof(void *));
	size_t *pages = calloc(ch->n, sizeof(size_t));
	uint8_t *cache = calloc(ch->n, 1);
	uint64_t r = ch->seed + (uint64_t)k;
	for (size_t i = 0; i < ch->n; i++) {
		r = fx_mix64(r);
		unsigned kind = r % 8;
		if (kind >= 3) /* with caches: a cache, or any small class */
			kind = ch->cache[0] ? 3 + (r >> 40) % 3 : 5;
		switch (kind) {
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
		case 3:
			cache[i] = (uint8_t)(1 + (r >> 8) % 2);
			obj[i] = kmem_cache_alloc(ch->cache[cache[i] - 1]);
			break;
		case 4:
			obj[i] = kmalloc(1 + (r >> 8) % KMEM_SMALL_MAX);
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
		churn_free(c, obj[i], pages[i], cache[i], i);
	for (size_t i = 1; i < ch->n; i += 2)
		churn_free(c, obj[i], pages[i], cache[i], i);
	free(obj);
	free(pages);
	free(cache);
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

/* Without grace periods no metadata page goes back, but none is lost
 * either: the blocks of runs waiting for one are used again, so a
 * second workload takes no more pool pages than the first, and the count
 * before it equals the count after it. */
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
	assert_true(meta1 > meta0); /* the workload did take pool pages */
	assert_true(before <= fresh && fresh - before == meta1 - meta0);
	assert_int_equal(before, after);
	assert_int_equal(drain_pages(), after);
	fx_assert_no_faults();
}

/* Issue #14.4/#14.7: the metadata pages a workload took from the pool
 * (span descriptors and metadata blocks, debug records, magazines, cache
 * descriptors, deferred batches) go back once empty and a grace period
 * has passed; then the count is exactly the fresh heap's, and so is what
 * kpage_alloc(1) can take. */
static void test_metadata_pages_go_back(void **state)
{
	(void)state;
	fx_simple(128, 2);
	size_t fresh = kmem_free_pages();
	struct kmem_stats st0 = fx_stats();
	struct churn mx = {.seed = fx_seed(), .n = 4000, .defer = true};
	for (int round = 0; round < 2; round++) {
		mx.cache[0] = kmem_cache_create("plain", 200, 0, NULL);
		mx.cache[1] = kmem_cache_create_debug("debug", 96, 0, NULL, KMEM_DEBUG_ALL);
		assert_non_null(mx.cache[0]);
		assert_non_null(mx.cache[1]);
		struct fx_cpu c1 = {.id = 1, .step = churn_step, .arg = &mx};
		fx_cpu_start(&c1);
		for (int k = 1; k <= 2; k++) {
			fx_cpu_run(&c1, k);
			churn_step(&(struct fx_cpu){.id = 0, .arg = &mx}, k + 100);
		}
		fx_cpu_stop(&c1); /* offline: its loaded magazines come back */
		assert_true(kmem_grace_period_done(kmem_grace_period_start()) > 0); /* the deferred */
		assert_int_equal(kmem_cache_destroy(mx.cache[0]), 0);
		assert_int_equal(kmem_cache_destroy(mx.cache[1]), 0);
		uint64_t grown = fx_stats().pages_metadata;
		if (round == 0)
			print_breakdown("after the workload, before the reclaim");
		kmem_reclaim();
		/* Empty runs wait for a grace period: none went back yet. */
		assert_int_equal(fx_stats().pages_metadata, grown);
		assert_true(grown > st0.pages_metadata + 32);
		uint64_t c = kmem_grace_period_start();
		kmem_grace_period_done(c);
		size_t after = kmem_free_pages();
		struct kmem_stats st = fx_stats();
		print_message("round %d: free pages fresh %zu, after %zu; metadata pages %llu -> %llu "
		              "-> %llu\n",
		              round, fresh, after, (unsigned long long)st0.pages_metadata,
		              (unsigned long long)grown, (unsigned long long)st.pages_metadata);
		assert_int_equal(after, fresh);
		assert_int_equal(st.pages_metadata, st0.pages_metadata);
		assert_int_equal(st.pages_free, st0.pages_free);
		fx_assert_check();
		assert_int_equal(drain_pages(), fresh);
		mx.seed += 77;
	}
	fx_assert_no_faults();
}

/* A CPU that, while armed, frees pointers that were freed already, again
 * and again, while the other releases the metadata of their spans and
 * hands the pages out; between two passes it is quiescent (it counts them
 * in qs).  Disarmed, it frees nothing (the pointers are then live
 * objects of the other CPU, which no allocator can tell from its own). */
struct racer {
	void **stale;
	size_t n;
	_Atomic bool stop, armed;
	_Atomic uint64_t qs, frees;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	if (host_cpu_claim(1) != 1)
		return NULL;
	while (!atomic_load(&r->stop)) {
		if (atomic_load(&r->armed)) {
			for (size_t i = 0; i < r->n; i++)
				kfree(r->stale[i]);
			atomic_fetch_add(&r->frees, r->n);
		} else {
			sched_yield();
		}
		atomic_fetch_add(&r->qs, 1);
	}
	kmem_cpu_offline(1);
	host_cpu_release();
	return NULL;
}

/* Waits until the racer passed a quiescent state after now. */
static void racer_quiesce(struct racer *r)
{
	uint64_t q = atomic_load(&r->qs);
	while (atomic_load(&r->qs) < q + 2)
		sched_yield();
}

/* Double frees racing the release of the metadata pages of the spans they
 * name: every one is reported, and none writes into the pages (metadata
 * pages among them) that went back to the pool and were filled by a
 * client. */
static void test_double_free_racing_metadata_release(void **state)
{
	(void)state;
	fx_simple(32, 2);
	fx_faults_reset();
	size_t fresh = kmem_free_pages();
	enum { N = 1500 };
	static void *stale[N];
	struct racer r = {.stale = stale, .n = N};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, racer_main, &r), 0);
	size_t rounds = 0, filled = 0;
	for (; rounds < 6; rounds++) {
		/* Spans (a descriptor and a metadata block each), then freed. */
		for (size_t i = 0; i < N; i++)
			assert_non_null(stale[i] = kmalloc(4096));
		for (size_t i = 0; i < N; i++)
			kfree(stale[i]);
		atomic_store(&r.armed, true);
		uint64_t meta = fx_stats().pages_metadata;
		kmem_reclaim();
		uint64_t c = kmem_grace_period_start();
		racer_quiesce(&r);
		kmem_grace_period_done(c);
		assert_true(fx_stats().pages_metadata < meta); /* pages went back */
		/* A client takes every page and fills it. */
		void *head = NULL;
		size_t n = 0;
		for (void **p; (p = kpage_alloc(1, 0, 0)) != NULL; n++) {
			fx_fill(p + 1, KMEM_PAGE_SIZE - sizeof(void *), (uint64_t)(uintptr_t)p);
			*p = head;
			head = p;
		}
		racer_quiesce(&r);
		racer_quiesce(&r);
		for (void **p = head; p; p = *p)
			if (fx_check(p + 1, KMEM_PAGE_SIZE - sizeof(void *), (uint64_t)(uintptr_t)p) !=
			    (size_t)-1)
				fail_msg("round %zu: page %p was written while a client held it", rounds,
				         (void *)p);
		while (head) {
			void *next = *(void **)head;
			kpage_free(head, 1);
			head = next;
		}
		filled += n;
		atomic_store(&r.armed, false);
		racer_quiesce(&r);
	}
	atomic_store(&r.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	print_message("%zu rounds, %zu pages filled and intact; %llu double frees, %lu reported\n",
	              rounds, filled, (unsigned long long)atomic_load(&r.frees), fx_fault_count());
	assert_true(atomic_load(&r.frees) > 0);
	assert_int_equal(fx_fault_count(), atomic_load(&r.frees));
	fx_faults_reset();
	fx_assert_check();
	kmem_grace_period_done(kmem_grace_period_start());
	assert_int_equal(kmem_free_pages(), fresh);
}

/* Is the metadata at p on a page that is free in the pool (or a client's
 * page run)?  Either would be a released page still in use. */
static bool meta_page_released(const void *p)
{
	uint64_t pfn = virt_to_pfn((uintptr_t)p);
	unsigned long f = heaps_lock_all();
	struct heap_arena *a = arena_of_pfn(pfn);
	bool gone = a && (pages_all_free_locked(pfn, 1) ||
	                  a->pagekind[pfn & (ARENA_PAGES - 1)] != PKIND_NONE);
	heaps_unlock_all(f);
	return gone;
}

/* Runs found empty wait for a grace period with their blocks still usable;
 * a block handed out meanwhile keeps its run: when the grace period ends,
 * no page holding a live span's descriptor or state bytes goes back. */
static void test_reused_blocks_keep_their_run(void **state)
{
	(void)state;
	fx_simple(32, 1);
	enum { N = 2500 };
	static void *obj[N];
	for (size_t i = 0; i < N; i++)
		assert_non_null(obj[i] = kmalloc(4096));
	for (size_t i = 0; i < N; i++)
		kfree(obj[i]);
	uint64_t meta = fx_stats().pages_metadata;
	kmem_reclaim(); /* every run empty: all wait */
	uint64_t c = kmem_grace_period_start();
	/* Half as many spans again, from the waiting runs' blocks. */
	for (size_t i = 0; i < N / 2; i++)
		assert_non_null(obj[i] = kmalloc(4096));
	assert_int_equal(fx_stats().pages_metadata, meta); /* no new pool page */
	kmem_grace_period_done(c);
	for (size_t i = 0; i < N / 2; i++) {
		struct mspan *s = span_of_ptr(obj[i]);
		if (meta_page_released(s) || meta_page_released(s->objstate))
			fail_msg("object %zu: its span's metadata is on a page that went back", i);
	}
	print_message("metadata pages %llu; after half the spans came back and a grace period "
	              "%llu\n",
	              (unsigned long long)meta, (unsigned long long)fx_stats().pages_metadata);
	fx_assert_check();
	for (size_t i = 0; i < N / 2; i++)
		kfree(obj[i]);
	kmem_reclaim();
	kmem_grace_period_done(kmem_grace_period_start());
	assert_int_equal(fx_stats().pages_metadata, 0);
	fx_assert_no_faults();
}

/* The protect hook (kmem_set_protect_hook) of the guard-page test: pages
 * really unmapped, and the set of those unmapped now. */
static uint64_t prot_set[4096];
static size_t nprot_set, nunprot;

static bool protect_pages(void *addr, size_t bytes, enum kmem_access access)
{
	for (size_t o = 0; o < bytes; o += KMEM_PAGE_SIZE) {
		uint64_t ph = fx_phys((char *)addr + o);
		size_t i = 0;
		while (i < nprot_set && prot_set[i] != ph)
			i++;
		if (access == KMEM_ACCESS_NONE && i == nprot_set && nprot_set < 4096)
			prot_set[nprot_set++] = ph;
		else if (access != KMEM_ACCESS_NONE && i < nprot_set) {
			prot_set[i] = prot_set[--nprot_set];
			nunprot++;
		}
	}
	return mprotect(addr, bytes, access == KMEM_ACCESS_NONE ? PROT_NONE
	                                                        : PROT_READ | PROT_WRITE) == 0;
}

/* A run given back takes its guard pages with it, unprotected through the
 * hook first; the guards that stay are those of the fresh heap. */
static void test_guards_of_returned_runs_unprotected(void **state)
{
	(void)state;
	fx_simple(32, 1);
	nprot_set = nunprot = 0;
	assert_null(kmem_set_protect_hook(protect_pages));
	size_t fresh = kmem_free_pages(), guards0 = nprot_set;
	enum { N = 3000 };
	static void *obj[N];
	for (size_t i = 0; i < N; i++)
		assert_non_null(obj[i] = kmalloc(4096));
	kfree(kmalloc(64)); /* a later span: protects guards queued since */
	size_t guards1 = nprot_set;
	assert_true(guards1 >= guards0 + 2);
	for (size_t i = 0; i < N; i++)
		kfree(obj[i]);
	kmem_reclaim();
	assert_int_equal(nunprot, 0); /* no grace period yet */
	kmem_grace_period_done(kmem_grace_period_start());
	print_message("guard pages protected: fresh %zu, with the descriptors %zu, after the "
	              "release %zu (%zu unprotected)\n",
	              guards0, guards1, nprot_set, nunprot);
	assert_true(nunprot >= guards1 - guards0);
	assert_int_equal(nprot_set, guards0);
	/* Every page a client can get is writable (drain_pages writes each). */
	assert_int_equal(kmem_free_pages(), fresh);
	assert_int_equal(drain_pages(), fresh);
	fx_assert_check();
	kmem_set_protect_hook(NULL);
	for (size_t i = 0; i < nprot_set; i++)
		mprotect(fx_virt(prot_set[i]), KMEM_PAGE_SIZE, PROT_READ | PROT_WRITE);
}

/* Issue #14's "metadata bytes per live page run": pool pages taken as
 * metadata, and region bytes used, per live run of 1 and of N pages, many
 * runs at once. */
static void test_metadata_per_page_run(void **state)
{
	(void)state;
	const size_t lens[] = {1, 8, 127, 128, 512};
	for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
		fx_simple(256, 1);
		struct kmem_stats a = fx_stats();
		size_t n = 0;
		static void *run[8192];
		while (n < 8192 && n * lens[l] < 32768 && (run[n] = kpage_alloc(lens[l], 0, 0)) != NULL)
			n++;
		struct kmem_stats b = fx_stats();
		uint64_t bytes = (b.pages_metadata - a.pages_metadata) * KMEM_PAGE_SIZE +
		                 (b.metadata_used - a.metadata_used);
		print_message("runs of %zu pages: %zu live, metadata %llu bytes = %llu.%02llu bytes a "
		              "run\n",
		              lens[l], n, (unsigned long long)bytes, (unsigned long long)(bytes / n),
		              (unsigned long long)(bytes * 100 / n % 100));
		if (lens[l] <= RUN_INLINE_MAX)
			assert_int_equal(bytes, 0);
		for (size_t i = 0; i < n; i++)
			kpage_free(run[i], lens[l]);
		kmem_grace_period_done(kmem_grace_period_start());
		kmem_reclaim();
		kmem_grace_period_done(kmem_grace_period_start());
		assert_int_equal(fx_stats().pages_metadata, a.pages_metadata);
	}
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
		T(test_metadata_pages_go_back),
		T(test_double_free_racing_metadata_release),
		T(test_reused_blocks_keep_their_run),
		T(test_guards_of_returned_runs_unprotected),
		T(test_metadata_per_page_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
