/*
 * tests/test_model.c - randomized model test.
 *
 * Millions of random operations (kmalloc, kzalloc, kcalloc, krealloc,
 * kmalloc_aligned, kfree, kpage_alloc/kpage_free, object caches) against a
 * shadow model that knows every live object: its requested size, usable
 * size and a fill pattern derived from its id.  Checked: no NULL while the
 * heap has room, alignment, ksize >= size, zero fill, contents intact at
 * free and realloc, no two live objects overlapping, kmem_check() clean,
 * statistics matching the model, and every page back at the end.
 *
 *   SPANALLOC_SEED=n   replay a run (the seed is printed at the start)
 *   SPANALLOC_OPS=n    number of operations (default 2,000,000)
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
#include "spanalloc.h"

#define PAGE KMEM_PAGE_SIZE
#define HEAP_MIB 256
#define POOL_LO FX_SIMPLE_BASE
#define POOL_HI (FX_SIMPLE_BASE + HEAP_MIB * FX_MIB)

#define MAX_LIVE 50000
#define MAX_LIVE_BYTES (96 * FX_MIB)
#define OVERLAP_EVERY 50000
#define CHECK_EVERY 100000
#define DRAIN_EVERY 250000

enum kind { K_KMALLOC, K_PAGES, K_CACHE };

struct obj {
	unsigned char *p;
	size_t size;   /* requested */
	size_t usable; /* ksize at allocation (pages * PAGE for runs) */
	uint64_t id;
	uint8_t kind;
	uint8_t cache; /* K_CACHE: index */
	size_t npages; /* K_PAGES */
};

static struct obj *live;
static size_t nlive;
static uint64_t live_bytes;
static uint64_t next_id = 1;
static uint64_t seed;
static unsigned long op;

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state += 0x9E3779B97F4A7C15ull;
	return fx_mix64(rng_state);
}
static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "model: op %lu (seed=%llu): ", op,     \
			        (unsigned long long)seed);                     \
			fprintf(stderr, __VA_ARGS__);                          \
			fprintf(stderr, "\n");                                 \
			fail_msg("model check failed: %s (replay with "        \
			         "SPANALLOC_SEED=%llu)", #cond,                \
			         (unsigned long long)seed);                    \
		}                                                              \
	} while (0)

/* ---- caches ---- */

#define NCACHES 3
static struct kmem_cache *caches[NCACHES];
static const size_t cache_size[NCACHES] = {24, 200, 3000};
static const size_t cache_align[NCACHES] = {8, 64, 0};
static const char *const cache_name[NCACHES] = {"model-24", "model-200", "model-3000"};
static uint64_t cache_live[NCACHES];

static void ctor_200(void *obj)
{
	memset(obj, 0xC1, 16);
}

/* ---- alignment promised for a kmalloc of `size` ---- */

static uint32_t class_align[256];
static unsigned nclasses;

static void init_class_align(void)
{
	struct kmem_stats st;
	kmem_get_stats(&st);
	nclasses = st.nclasses;
	assert_in_range(nclasses, 2, 256);
	for (unsigned c = 1; c < nclasses; c++) {
		struct kmem_class_stats cs;
		assert_int_equal(kmem_get_class_stats(c, &cs), 0);
		uint64_t a = fx_pow2_divisor(cs.object_size);
		class_align[c] = a < 8 ? 8 : (uint32_t)a;
	}
}

static uint64_t promised_align(size_t size)
{
	unsigned c = kmem_size_class(size);
	return c ? class_align[c] : PAGE;
}

/* ---- model ---- */

static void check_in_pool(const void *p, size_t len, const char *what)
{
	uint64_t ph = kmem_virt_to_phys(p);
	CHECK(ph == fx_phys(p), "%s %p: kmem_virt_to_phys %#llx", what, p,
	      (unsigned long long)ph);
	CHECK(ph >= POOL_LO && ph + len <= POOL_HI, "%s %p (+%zu) outside the pool",
	      what, p, len);
}

static void verify(const struct obj *o, const char *when)
{
	size_t bad = fx_check(o->p, o->usable, o->id);
	CHECK(bad == (size_t)-1,
	      "%s: object id %llu at %p (size %zu, usable %zu, kind %d) corrupt at byte %zu",
	      when, (unsigned long long)o->id, (void *)o->p, o->size, o->usable, o->kind,
	      bad);
}

static void add(unsigned char *p, size_t size, size_t usable, enum kind k,
                unsigned cache, size_t npages)
{
	CHECK(nlive < MAX_LIVE, "model full");
	struct obj *o = &live[nlive++];
	o->p = p;
	o->size = size;
	o->usable = usable;
	o->id = next_id++;
	o->kind = (uint8_t)k;
	o->cache = (uint8_t)cache;
	o->npages = npages;
	fx_fill(p, usable, o->id);
	live_bytes += usable;
	if (k == K_CACHE)
		cache_live[cache]++;
}

static void drop(size_t i)
{
	struct obj *o = &live[i];
	live_bytes -= o->usable;
	if (o->kind == K_CACHE)
		cache_live[o->cache]--;
	live[i] = live[--nlive];
}

static size_t rand_size(void)
{
	uint64_t r = rnd_below(1000);
	if (r < 10)
		return 0;
	if (r < 600)
		return 1 + rnd_below(128);
	if (r < 850)
		return 129 + rnd_below(1024 - 128);
	if (r < 950)
		return 1025 + rnd_below(8192 - 1024);
	if (r < 990)
		return 8193 + rnd_below(KMEM_SMALL_MAX - 8192);
	return KMEM_SMALL_MAX + 1 + rnd_below(100 * 1024 - KMEM_SMALL_MAX);
}

static void got_kmalloc(unsigned char *p, size_t size, uint64_t align,
                        bool zeroed, const char *what)
{
	CHECK(p != NULL, "%s(%zu) returned NULL with %llu bytes live", what, size,
	      (unsigned long long)live_bytes);
	size_t k = ksize(p);
	CHECK(k >= size, "%s(%zu): ksize %zu", what, size, k);
	CHECK((uintptr_t)p % align == 0, "%s(%zu): %p not aligned to %llu", what,
	      size, (void *)p, (unsigned long long)align);
	check_in_pool(p, k, what);
	if (zeroed) {
		size_t nz = fx_first_nonzero(p, size);
		CHECK(nz == (size_t)-1, "%s(%zu): byte %zu not zero", what, size, nz);
	}
	add(p, size, k, K_KMALLOC, 0, 0);
}

static void op_kmalloc(void)
{
	size_t s = rand_size();
	got_kmalloc(kmalloc(s), s, promised_align(s), false, "kmalloc");
}

static void op_kzalloc(void)
{
	size_t s = rand_size();
	got_kmalloc(kzalloc(s), s, promised_align(s), true, "kzalloc");
}

static void op_kcalloc(void)
{
	size_t n = rnd_below(65), sz = rnd_below(257);
	got_kmalloc(kcalloc(n, sz), n * sz, promised_align(n * sz), true, "kcalloc");
}

static void op_aligned(void)
{
	size_t s = rand_size();
	unsigned b = rnd_below(100) == 0 ? (unsigned)rnd_below(21) : (unsigned)rnd_below(17);
	size_t align = (size_t)1 << b;
	unsigned char *p = kmalloc_aligned(s, align);
	got_kmalloc(p, s, align < 8 ? 8 : align, false, "kmalloc_aligned");
}

static void op_pages(void)
{
	size_t n = rnd_below(10) ? 1 + rnd_below(16) : 17 + rnd_below(48);
	size_t align = rnd_below(4) ? 1 : (size_t)1 << rnd_below(17);
	uint64_t ceil = 0;
	uint64_t rc = rnd_below(20);
	if (rc < 3) /* roomy ceiling */
		ceil = POOL_LO + 32 * FX_MIB + rnd_below(HEAP_MIB - 32) * FX_MIB;
	else if (rc < 4) /* tight ceiling, in the busy low memory, unaligned */
		ceil = POOL_LO + rnd_below(8 * FX_MIB);
	unsigned char *p = kpage_alloc(n, align, ceil);
	if (!p) {
		/* only a ceiling can make the request fail on this roomy heap */
		CHECK(ceil != 0, "kpage_alloc(%zu, %zu) returned NULL with %llu bytes live",
		      n, align, (unsigned long long)live_bytes);
		return;
	}
	uint64_t ph = kmem_virt_to_phys(p);
	uint64_t a = align < PAGE ? PAGE : align;
	CHECK(ph % a == 0, "kpage_alloc(%zu, %zu): phys %#llx misaligned", n, align,
	      (unsigned long long)ph);
	CHECK(ceil == 0 || ph + n * PAGE <= ceil,
	      "kpage_alloc(%zu, ceiling %#llx): run at %#llx", n,
	      (unsigned long long)ceil, (unsigned long long)ph);
	check_in_pool(p, n * PAGE, "kpage_alloc");
	add(p, n * PAGE, n * PAGE, K_PAGES, 0, n);
}

static void op_cache_alloc(void)
{
	unsigned c = (unsigned)rnd_below(NCACHES);
	unsigned char *p = kmem_cache_alloc(caches[c]);
	CHECK(p != NULL, "kmem_cache_alloc(%s) returned NULL", cache_name[c]);
	size_t a = cache_align[c] < 8 ? 8 : cache_align[c];
	CHECK((uintptr_t)p % a == 0, "cache %s: %p misaligned", cache_name[c], (void *)p);
	size_t k = ksize(p);
	CHECK(k >= cache_size[c], "cache %s: ksize %zu", cache_name[c], k);
	check_in_pool(p, k, "kmem_cache_alloc");
	add(p, cache_size[c], k, K_CACHE, c, 0);
}

static void free_at(size_t i)
{
	struct obj *o = &live[i];
	verify(o, "free");
	switch (o->kind) {
	case K_KMALLOC:
		kfree(o->p);
		break;
	case K_PAGES:
		kpage_free(o->p, o->npages);
		break;
	case K_CACHE:
		if (rnd_below(2))
			kmem_cache_free(caches[o->cache], o->p);
		else
			kfree(o->p);
		break;
	}
	drop(i);
}

static void op_free(void)
{
	if (nlive)
		free_at(rnd_below(nlive));
}

static void op_realloc(void)
{
	/* pick a kmalloc-family object (a few tries), else allocate */
	size_t i = 0;
	bool found = false;
	for (int t = 0; t < 4 && nlive; t++) {
		i = rnd_below(nlive);
		if (live[i].kind == K_KMALLOC) {
			found = true;
			break;
		}
	}
	if (!found) {
		unsigned char *p = krealloc(NULL, 100);
		got_kmalloc(p, 100, promised_align(100), false, "krealloc(NULL)");
		return;
	}
	struct obj o = live[i];
	verify(&o, "realloc");
	size_t n;
	uint64_t r = rnd_below(10);
	if (r == 0)
		n = 0;
	else if (r < 4)
		n = o.size / 2 + rnd_below(o.size / 2 + 1); /* shrink a little */
	else if (r < 7)
		n = o.size + 1 + rnd_below(o.size + 64); /* grow */
	else
		n = rand_size();
	unsigned char *q = krealloc(o.p, n);
	if (n == 0) {
		CHECK(q == NULL, "krealloc(p, 0) returned %p", (void *)q);
		drop(i);
		return;
	}
	CHECK(q != NULL, "krealloc(%zu -> %zu) returned NULL with %llu bytes live",
	      o.size, n, (unsigned long long)live_bytes);
	size_t keep = o.size < n ? o.size : n;
	size_t bad = fx_check(q, keep, o.id);
	CHECK(bad == (size_t)-1, "krealloc(%zu -> %zu): byte %zu of the old contents lost",
	      o.size, n, bad);
	size_t k = ksize(q);
	CHECK(k >= n, "krealloc(%zu -> %zu): ksize %zu", o.size, n, k);
	if (q == o.p)
		CHECK(n <= o.usable && o.usable <= 2 * n,
		      "krealloc(%zu -> %zu) kept a %zu-byte object", o.size, n, o.usable);
	else
		CHECK((uintptr_t)q % promised_align(n) == 0,
		      "krealloc(-> %zu): %p misaligned", n, (void *)q);
	check_in_pool(q, k, "krealloc");
	drop(i);
	add(q, n, k, K_KMALLOC, 0, 0);
}

/* ---- periodic checks ---- */

struct iv {
	uintptr_t lo, hi;
	uint64_t id;
};

static int iv_cmp(const void *a, const void *b)
{
	const struct iv *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void check_overlap(void)
{
	struct iv *v = malloc((nlive + 1) * sizeof *v);
	assert_non_null(v);
	for (size_t i = 0; i < nlive; i++) {
		v[i].lo = (uintptr_t)live[i].p;
		v[i].hi = (uintptr_t)live[i].p + (live[i].usable ? live[i].usable : 1);
		v[i].id = live[i].id;
	}
	qsort(v, nlive, sizeof *v, iv_cmp);
	for (size_t i = 1; i < nlive; i++)
		CHECK(v[i - 1].hi <= v[i].lo,
		      "live objects overlap: id %llu [%#lx, %#lx) and id %llu [%#lx, %#lx)",
		      (unsigned long long)v[i - 1].id, (unsigned long)v[i - 1].lo,
		      (unsigned long)v[i - 1].hi, (unsigned long long)v[i].id,
		      (unsigned long)v[i].lo, (unsigned long)v[i].hi);
	free(v);
	for (size_t i = 0; i < nlive; i++)
		verify(&live[i], "periodic check");
}

static void check_heap(bool reclaim)
{
	unsigned long f0 = fx_fault_count();
	unsigned long broken = kmem_check();
	CHECK(broken == 0, "kmem_check found %lu broken invariants", broken);
	CHECK(fx_fault_count() == f0, "faults during kmem_check");
	struct kmem_stats st;
	kmem_get_stats(&st);
	CHECK(st.pages_free + st.pages_small + st.pages_large + st.pages_runs +
	              st.pages_metadata == st.pages_managed,
	      "page identity broken");
	uint64_t runs = 0, run_pages = 0;
	for (size_t i = 0; i < nlive; i++)
		if (live[i].kind == K_PAGES) {
			runs++;
			run_pages += live[i].npages;
		}
	CHECK(st.page_runs == runs, "page_runs %llu, model %llu",
	      (unsigned long long)st.page_runs, (unsigned long long)runs);
	CHECK(st.pages_runs == run_pages, "pages_runs %llu, model %llu",
	      (unsigned long long)st.pages_runs, (unsigned long long)run_pages);
	if (reclaim) {
		kmem_reclaim();
		for (unsigned c = 0; c < NCACHES; c++) {
			struct kmem_class_stats cs;
			kmem_cache_get_stats(caches[c], &cs);
			CHECK(cs.objects_in_use == cache_live[c],
			      "cache %s: objects_in_use %llu, model %llu", cache_name[c],
			      (unsigned long long)cs.objects_in_use,
			      (unsigned long long)cache_live[c]);
			CHECK(cs.bytes_in_use == cs.objects_in_use * cs.object_size,
			      "cache %s: bytes_in_use", cache_name[c]);
		}
	}
}

static void test_model(void **state)
{
	(void)state;
	seed = fx_seed();
	unsigned long nops = (unsigned long)fx_env_u64("SPANALLOC_OPS", 2000000);
	printf("seed=%llu ops=%lu\n", (unsigned long long)seed, nops);
	fflush(stdout);
	rng_state = seed;

	fx_simple(HEAP_MIB, 2);
	init_class_align();
	live = calloc(MAX_LIVE, sizeof *live);
	assert_non_null(live);
	nlive = 0;
	live_bytes = 0;
	memset(cache_live, 0, sizeof cache_live);
	for (unsigned c = 0; c < NCACHES; c++) {
		caches[c] = kmem_cache_create(cache_name[c], cache_size[c], cache_align[c],
		                              c == 1 ? ctor_200 : NULL);
		assert_non_null(caches[c]);
	}

	unsigned long counts[9] = {0};
	size_t peak_live = 0;
	uint64_t peak_bytes = 0;
	for (op = 0; op < nops; op++) {
		/* target population: a triangle wave, so the heap fills and
		 * empties, and memory moves between classes */
		unsigned long ph = op % DRAIN_EVERY;
		size_t target = (size_t)((ph < DRAIN_EVERY / 2 ? ph : DRAIN_EVERY - ph) *
		                         (uint64_t)(MAX_LIVE / 2) / (DRAIN_EVERY / 2)) + 16;
		bool room = nlive + 1 < MAX_LIVE && live_bytes < MAX_LIVE_BYTES - 300 * FX_KIB;
		bool alloc = room && (nlive < target ? rnd_below(10) < 7 : rnd_below(10) < 3);
		if (!alloc) {
			op_free();
			counts[0]++;
		} else {
			uint64_t r = rnd_below(100);
			if (r < 35) {
				op_kmalloc();
				counts[1]++;
			} else if (r < 45) {
				op_kzalloc();
				counts[2]++;
			} else if (r < 50) {
				op_kcalloc();
				counts[3]++;
			} else if (r < 60) {
				op_aligned();
				counts[4]++;
			} else if (r < 65) {
				op_pages();
				counts[5]++;
			} else if (r < 88) {
				op_cache_alloc();
				counts[6]++;
			} else {
				op_realloc();
				counts[7]++;
			}
		}
		if (nlive > peak_live)
			peak_live = nlive;
		if (live_bytes > peak_bytes)
			peak_bytes = live_bytes;
		if ((op + 1) % OVERLAP_EVERY == 0)
			check_overlap();
		if ((op + 1) % CHECK_EVERY == 0)
			check_heap((op / CHECK_EVERY) % 2 == 0);
		if ((op + 1) % DRAIN_EVERY == 0) {
			/* the wave is at its low: free everything, all pages back */
			while (nlive)
				free_at(nlive - 1);
			CHECK(fx_fault_count() == 0, "faults reported");
			fx_assert_all_back();
			counts[8]++;
		}
	}
	check_overlap();
	check_heap(true);
	CHECK(fx_fault_count() == 0, "%lu faults reported", fx_fault_count());

	while (nlive)
		free_at(rnd_below(nlive));
	CHECK(fx_fault_count() == 0, "%lu faults reported", fx_fault_count());
	for (unsigned c = 0; c < NCACHES; c++) {
		struct kmem_class_stats cs;
		kmem_reclaim();
		kmem_cache_get_stats(caches[c], &cs);
		assert_int_equal(cs.objects_in_use, 0);
	}
	fx_assert_all_back();
	for (unsigned c = 0; c < NCACHES; c++)
		assert_int_equal(kmem_cache_destroy(caches[c]), 0);
	fx_assert_all_back();
	assert_int_equal(fx_fault_count(), 0);
	printf("ops: free %lu kmalloc %lu kzalloc %lu kcalloc %lu aligned %lu pages %lu "
	       "cache %lu realloc %lu drains %lu; peak %zu objects, %llu KiB\n",
	       counts[0], counts[1], counts[2], counts[3], counts[4], counts[5],
	       counts[6], counts[7], counts[8], peak_live,
	       (unsigned long long)(peak_bytes >> 10));
	/* the run exercised what it claims to */
	assert_true(nops < 100000 || (counts[5] > 0 && counts[7] > 0 && counts[4] > 0));
	free(live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
