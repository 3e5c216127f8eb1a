/*
 * tests/test_heapmap.c - kmem_heapmap()'s dump checked against the heap.
 *
 * The dump is parsed (fx_heapmap_*, tests/fixture.c) and must agree with
 * what the test allocated and with kmem_get_stats(): the pages of the
 * free/small/large/run/metapages records add up to the statistics' counts
 * and to each arena's managed pages; records are in address order, do not
 * overlap and lie inside arenas (a span may run on into the next arena);
 * each small span's live count is the number of the test's objects in it;
 * large objects and page runs appear at their addresses with their sizes;
 * the metadata region is the one kmem_metadata_region() reports.  The
 * checks themselves are shown to fail on doctored dumps.
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
#include "spanalloc.h"

#define PAGE KMEM_PAGE_SIZE

/* Low memory and a region across the arena boundary at 64 MiB, with a
 * reserved hole. */
static const struct kmem_region map[] = {
	{.base = 8 * FX_MIB, .length = 4 * FX_MIB, .type = KMEM_REGION_USABLE},
	{.base = 58 * FX_MIB, .length = 22 * FX_MIB, .type = KMEM_REGION_USABLE},
	{.base = 70 * FX_MIB + 100, .length = 300 * FX_KIB, .type = KMEM_REGION_RESERVED},
};

static int setup(void **state)
{
	(void)state;
	fx_reserve(128 * FX_MIB);
	assert_int_equal(fx_init(map, sizeof map / sizeof *map, 2), 0);
	return 0;
}

/* ---- the dump as lines, to doctor ---- */

struct lines {
	char **v;
	size_t n, cap;
};

static void collect(const char *line, void *arg)
{
	struct lines *l = arg;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		if (!l->v)
			abort();
	}
	l->v[l->n++] = strdup(line);
}

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

/* Parses lines (skipping index `skip`, and with `extra` inserted before
 * index `at` if not NULL) into m. */
static void parse_lines(struct fx_heapmap *m, const struct lines *l, size_t skip,
                        size_t at, const char *extra)
{
	fx_heapmap_init(m);
	for (size_t i = 0; i < l->n; i++) {
		if (extra && i == at)
			fx_heapmap_line(m, extra);
		if (i != skip)
			fx_heapmap_line(m, l->v[i]);
	}
}

static size_t find_line(const struct lines *l, const char *prefix)
{
	for (size_t i = 0; i < l->n; i++)
		if (strncmp(l->v[i], prefix, strlen(prefix)) == 0)
			return i;
	fail_msg("no line starting with \"%s\" in the dump", prefix);
	return 0;
}

/* ---- checks against what the test holds ---- */

struct held {
	void *p;
	size_t size;   /* asked for */
	int kind;      /* FX_HM_SMALL / FX_HM_LARGE / FX_HM_RUN */
	const char *cache;
	size_t npages; /* runs */
};

/* Every held object lies in a record of its kind (its cache, its size);
 * each small span's live count is the number of held objects in it (the
 * test holds every live object); large objects and runs start their
 * records and have their sizes.  Returns NULL or what is wrong. */
static const char *check_against(const struct fx_heapmap *m, const struct held *h, size_t n)
{
	static char msg[200];
	uint32_t *count = calloc(m->n + 1, sizeof *count);
	assert_non_null(count);
	const char *bad = NULL;
	for (size_t i = 0; i < n && !bad; i++) {
		uint64_t ph = fx_phys(h[i].p);
		const struct fx_hm_rec *r = fx_heapmap_find(m, ph);
		if (!r || (int)r->kind != h[i].kind) {
			snprintf(msg, sizeof msg, "object %p (kind %d) in record kind %d", h[i].p,
			         h[i].kind, r ? (int)r->kind : -1);
			bad = msg;
			break;
		}
		count[r - m->rec]++;
		if (h[i].kind == FX_HM_SMALL) {
			const char *c = h[i].cache ? h[i].cache : "-";
			if (strcmp(r->cache, c) != 0 || r->size < h[i].size || (ph - r->phys) % r->size ||
			    (h[i].cache == NULL && r->cls != kmem_size_class(h[i].size))) {
				snprintf(msg, sizeof msg,
				         "object %p (%zu B, cache %s) in span %#llx (class %u, %u B, cache %s)",
				         h[i].p, h[i].size, c, (unsigned long long)r->phys, r->cls, r->size,
				         r->cache);
				bad = msg;
			}
		} else if (r->phys != ph ||
		           (h[i].kind == FX_HM_LARGE ? r->pages != (h[i].size + PAGE - 1) / PAGE
		                                     : r->pages != h[i].npages)) {
			snprintf(msg, sizeof msg, "object %p (%zu B) vs record %#llx, %llu pages", h[i].p,
			         h[i].size, (unsigned long long)r->phys, (unsigned long long)r->pages);
			bad = msg;
		}
	}
	for (size_t i = 0; i < m->n && !bad; i++) {
		const struct fx_hm_rec *r = &m->rec[i];
		uint32_t want = r->kind == FX_HM_SMALL ? r->live
		                : (r->kind == FX_HM_LARGE || r->kind == FX_HM_RUN) ? 1 : 0;
		if (count[i] != want) {
			snprintf(msg, sizeof msg, "record %zu (kind %d at %#llx): %u held objects, the dump says %u",
			         i, r->kind, (unsigned long long)r->phys, count[i], want);
			bad = msg;
		}
	}
	free(count);
	return bad;
}

static void assert_ok(const char *err)
{
	if (err)
		fail_msg("%s", err);
}

/* ---- the heap the tests build ---- */

#define NHELD 6000
static struct held held[NHELD];
static size_t nheld;
static struct kmem_cache *cache_a, *cache_b;

static void hold(void *p, size_t size, int kind, const char *cache, size_t npages)
{
	assert_non_null(p);
	assert_true(nheld < NHELD);
	held[nheld++] = (struct held){.p = p, .size = size, .kind = kind, .cache = cache,
	                              .npages = npages};
}

static void build_mix(void)
{
	nheld = 0;
	/* a run below 12 MiB: in low memory (first, while there is room) */
	hold(kpage_alloc(2, PAGE, 12 * FX_MIB), 2 * PAGE, FX_HM_RUN, NULL, 2);
	/* kmalloc classes, some partly freed (frees not yet swept) */
	static const size_t sizes[] = {8, 24, 96, 200, 1000, 3000, 4096, 10000, 32768};
	for (unsigned s = 0; s < sizeof sizes / sizeof *sizes; s++) {
		size_t first = nheld;
		for (unsigned i = 0; i < 300; i++)
			hold(kmalloc(sizes[s]), sizes[s], FX_HM_SMALL, NULL, 0);
		/* free every third of this size */
		size_t w = first;
		for (size_t i = first; i < nheld; i++) {
			if ((i - first) % 3 == 1)
				kfree(held[i].p);
			else
				held[w++] = held[i];
		}
		nheld = w;
	}
	cache_a = kmem_cache_create("hm-a", 40, 0, NULL);
	cache_b = kmem_cache_create("hm-b", 700, 128, NULL);
	assert_non_null(cache_a);
	assert_non_null(cache_b);
	for (unsigned i = 0; i < 500; i++)
		hold(kmem_cache_alloc(cache_a), 40, FX_HM_SMALL, "hm-a", 0);
	for (unsigned i = 0; i < 77; i++)
		hold(kmem_cache_alloc(cache_b), 700, FX_HM_SMALL, "hm-b", 0);
	for (unsigned i = 0; i < 5; i++)
		hold(kmalloc(40000 + 150000 * i), 40000 + 150000 * i, FX_HM_LARGE, NULL, 0);
	hold(kmalloc_aligned(100, 1 << 20), 100, FX_HM_LARGE, NULL, 0); /* large, 1 page */
	hold(kpage_alloc(3, PAGE, 0), 3 * PAGE, FX_HM_RUN, NULL, 3);
	hold(kpage_alloc(64, 256 * FX_KIB, 0), 64 * PAGE, FX_HM_RUN, NULL, 64);
	fx_assert_no_faults();
}

static void free_held(void)
{
	for (size_t i = 0; i < nheld; i++) {
		if (held[i].kind == FX_HM_RUN)
			kpage_free(held[i].p, held[i].npages);
		else
			kfree(held[i].p);
	}
	nheld = 0;
	assert_int_equal(kmem_cache_destroy(cache_a), 0);
	assert_int_equal(kmem_cache_destroy(cache_b), 0);
	fx_assert_no_faults();
}

/* ---- tests ---- */

static void test_header_and_regions(void **state)
{
	(void)state;
	struct fx_heapmap m;
	fx_heapmap_take(&m);
	struct kmem_stats st = fx_stats();
	assert_ok(fx_heapmap_verify(&m, &st));
	assert_int_equal(m.page, PAGE);
	assert_int_equal(m.offset, (uintptr_t)fx_window());
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	assert_int_equal(m.meta_phys, mb);
	assert_int_equal(m.meta_bytes, ms);
	/* two arenas: [0, 64 MiB) and [64, 128 MiB) */
	assert_int_equal(m.narenas, 2);
	assert_int_equal(m.arena[0].phys, 0);
	assert_int_equal(m.arena[1].phys, 64 * FX_MIB);
	/* a fresh heap: only free runs (the hole splits one) */
	for (size_t i = 0; i < m.n; i++)
		assert_int_equal(m.rec[i].kind, FX_HM_FREE);
	assert_null(fx_heapmap_find(&m, 70 * FX_MIB + 4096)); /* in the hole */
	assert_null(fx_heapmap_find(&m, mb));                /* metadata region */
	assert_null(fx_heapmap_find(&m, 4 * FX_MIB));        /* never usable */
	assert_non_null(fx_heapmap_find(&m, 8 * FX_MIB));
	fx_heapmap_free(&m);
}

static void test_mix_matches_heap(void **state)
{
	(void)state;
	build_mix();
	struct fx_heapmap m;
	fx_heapmap_take(&m);
	struct kmem_stats st = fx_stats();
	assert_ok(fx_heapmap_verify(&m, &st));
	assert_ok(check_against(&m, held, nheld));
	/* the caches' spans carry their names and sum to what is held */
	uint64_t live_a = 0, live_b = 0;
	for (size_t i = 0; i < m.n; i++) {
		if (m.rec[i].kind != FX_HM_SMALL)
			continue;
		live_a += strcmp(m.rec[i].cache, "hm-a") == 0 ? m.rec[i].live : 0;
		live_b += strcmp(m.rec[i].cache, "hm-b") == 0 ? m.rec[i].live : 0;
	}
	assert_int_equal(live_a, 500);
	assert_int_equal(live_b, 77);
	/* the DMA run is in low memory */
	const struct fx_hm_rec *r = fx_heapmap_find(&m, fx_phys(held[0].p));
	assert_non_null(r);
	assert_true(r->phys < 12 * FX_MIB);
	fx_heapmap_free(&m);

	/* After kmem_reclaim the dump still agrees (swept frees). */
	kmem_reclaim();
	fx_heapmap_take(&m);
	st = fx_stats();
	assert_ok(fx_heapmap_verify(&m, &st));
	assert_ok(check_against(&m, held, nheld));
	fx_heapmap_free(&m);

	/* Everything freed: free runs and metadata pages only. */
	free_held();
	kmem_reclaim();
	fx_heapmap_take(&m);
	st = fx_stats();
	assert_ok(fx_heapmap_verify(&m, &st));
	for (size_t i = 0; i < m.n; i++)
		assert_true(m.rec[i].kind == FX_HM_FREE || m.rec[i].kind == FX_HM_METAPAGES);
	fx_heapmap_free(&m);
	fx_assert_all_back();
}

/* Metadata pages appear once the descriptor reserve is used up, and stay
 * after everything is freed. */
static void test_metapages(void **state)
{
	(void)state;
	size_t n = 0;
	static void *v[4000];
	while (n < 4000 && fx_stats().pages_metadata == 0)
		v[n++] = kmalloc(4096); /* one object, one span */
	assert_true(fx_stats().pages_metadata > 0);
	struct fx_heapmap m;
	fx_heapmap_take(&m);
	struct kmem_stats st = fx_stats();
	assert_ok(fx_heapmap_verify(&m, &st));
	uint64_t mp = 0;
	for (size_t i = 0; i < m.n; i++)
		mp += m.rec[i].kind == FX_HM_METAPAGES ? m.rec[i].pages : 0;
	assert_int_equal(mp, st.pages_metadata);
	fx_heapmap_free(&m);
	for (size_t i = 0; i < n; i++)
		kfree(v[i]);
	fx_assert_all_back();
	fx_heapmap_take(&m);
	st = fx_stats();
	assert_ok(fx_heapmap_verify(&m, &st));
	assert_true(st.pages_metadata > 0);
	fx_heapmap_free(&m);
}

/* A large object across the arena boundary at 64 MiB is one record, in
 * the arena where it starts, and each arena's pages still add up. */
static void test_span_across_arenas(void **state)
{
	(void)state;
	void *v[8];
	size_t n = 0;
	void *across = NULL;
	while (n < 8 && !across) {
		void *p = kmalloc(3 * FX_MIB + PAGE);
		assert_non_null(p);
		v[n++] = p;
		uint64_t ph = fx_phys(p);
		if (ph < 64 * FX_MIB && ph + 3 * FX_MIB + PAGE > 64 * FX_MIB)
			across = p;
	}
	assert_non_null(across);
	struct fx_heapmap m;
	fx_heapmap_take(&m);
	struct kmem_stats st = fx_stats();
	assert_ok(fx_heapmap_verify(&m, &st));
	const struct fx_hm_rec *r = fx_heapmap_find(&m, fx_phys(across));
	assert_non_null(r);
	assert_int_equal(r->kind, FX_HM_LARGE);
	assert_int_equal(r->phys, fx_phys(across));
	assert_ptr_equal(fx_heapmap_find(&m, 64 * FX_MIB), r);
	fx_heapmap_free(&m);
	for (size_t i = 0; i < n; i++)
		kfree(v[i]);
	fx_assert_all_back();
}

/* A dump with a serial-log prefix on every line parses the same. */
static void test_prefixed_lines(void **state)
{
	(void)state;
	build_mix();
	struct lines l = {0};
	kmem_heapmap(collect, &l);
	struct fx_heapmap a, b;
	parse_lines(&a, &l, (size_t)-1, 0, NULL);
	fx_heapmap_init(&b);
	char buf[256];
	for (size_t i = 0; i < l.n; i++) {
		snprintf(buf, sizeof buf, "[%6zu.001] heapmap: %s", i, l.v[i]);
		fx_heapmap_line(&b, buf);
	}
	struct kmem_stats st = fx_stats();
	assert_ok(fx_heapmap_verify(&b, &st));
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.rec, b.rec, a.n * sizeof *a.rec);
	fx_heapmap_free(&a);
	fx_heapmap_free(&b);
	lines_free(&l);
	free_held();
	fx_assert_all_back();
}

/* The checks fail on doctored dumps: they can catch a wrong dump. */
static void test_checks_can_fail(void **state)
{
	(void)state;
	build_mix();
	struct lines l = {0};
	kmem_heapmap(collect, &l);
	struct kmem_stats st = fx_stats();
	struct fx_heapmap m;
	char buf[200];

	/* as dumped: fine */
	parse_lines(&m, &l, (size_t)-1, 0, NULL);
	assert_ok(fx_heapmap_verify(&m, &st));
	assert_ok(check_against(&m, held, nheld));
	fx_heapmap_free(&m);

	/* a small span's live count off by one */
	size_t si = find_line(&l, "small ");
	unsigned long long sp, np, cls, size, live, objs;
	char name[40];
	assert_int_equal(sscanf(l.v[si], "small %llx %llu %llu %llu %llu %llu %39s", &sp, &np, &cls,
	                        &size, &live, &objs, name), 7);
	snprintf(buf, sizeof buf, "small %#llx %llu %llu %llu %llu %llu %s", sp, np, cls, size,
	         live ? live - 1 : live + 1, objs, name);
	parse_lines(&m, &l, si, si, buf);
	assert_ok(fx_heapmap_verify(&m, &st)); /* self-consistent... */
	assert_non_null(check_against(&m, held, nheld)); /* ...but not the heap */
	fx_heapmap_free(&m);

	/* more live objects than objects */
	snprintf(buf, sizeof buf, "small %#llx %llu %llu %llu %llu %llu %s", sp, np, cls, size,
	         objs + 1, objs, name);
	parse_lines(&m, &l, si, si, buf);
	assert_non_null(fx_heapmap_verify(&m, NULL));
	fx_heapmap_free(&m);

	/* a record duplicated: overlap */
	parse_lines(&m, &l, (size_t)-1, si + 1, l.v[si]);
	assert_non_null(fx_heapmap_verify(&m, NULL));
	fx_heapmap_free(&m);

	/* a free run missing: the pages no longer add up */
	size_t fi = find_line(&l, "free ");
	parse_lines(&m, &l, fi, 0, NULL);
	assert_non_null(fx_heapmap_verify(&m, NULL));
	assert_non_null(fx_heapmap_verify(&m, &st));
	fx_heapmap_free(&m);

	/* a run moved out of its place (records out of order) */
	size_t ri = find_line(&l, "run ");
	parse_lines(&m, &l, ri, l.n - 1, l.v[ri]);
	assert_non_null(fx_heapmap_verify(&m, NULL));
	fx_heapmap_free(&m);

	/* a record outside every arena */
	parse_lines(&m, &l, (size_t)-1, l.n - 1, "free 0x10000000 1");
	assert_non_null(fx_heapmap_verify(&m, NULL));
	fx_heapmap_free(&m);

	/* statistics that differ */
	struct kmem_stats st2 = st;
	st2.pages_large++;
	st2.pages_free--;
	parse_lines(&m, &l, (size_t)-1, 0, NULL);
	assert_non_null(fx_heapmap_verify(&m, &st2));
	fx_heapmap_free(&m);

	/* a malformed line, and a dump without its end */
	parse_lines(&m, &l, (size_t)-1, 3, "small 0x1000 x");
	assert_non_null(fx_heapmap_verify(&m, NULL));
	fx_heapmap_free(&m);
	parse_lines(&m, &l, l.n - 1, 0, NULL);
	assert_non_null(fx_heapmap_verify(&m, NULL));
	fx_heapmap_free(&m);

	/* a page run dumped as a large object */
	snprintf(buf, sizeof buf, "large%s", l.v[ri] + strlen("run"));
	parse_lines(&m, &l, ri, ri, buf);
	assert_ok(fx_heapmap_verify(&m, NULL));
	assert_non_null(check_against(&m, held, nheld));
	fx_heapmap_free(&m);

	/* a cache's span dumped under another name */
	size_t ci = find_line(&l, "small ");
	for (size_t i = 0; i < l.n; i++)
		if (strncmp(l.v[i], "small ", 6) == 0 && strstr(l.v[i], " hm-a")) {
			ci = i;
			break;
		}
	assert_non_null(strstr(l.v[ci], " hm-a"));
	snprintf(buf, sizeof buf, "%.*s hm-b", (int)(strstr(l.v[ci], " hm-a") - l.v[ci]), l.v[ci]);
	parse_lines(&m, &l, ci, ci, buf);
	assert_ok(fx_heapmap_verify(&m, &st));
	assert_non_null(check_against(&m, held, nheld));
	fx_heapmap_free(&m);

	lines_free(&l);
	free_held();
	fx_assert_all_back();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_header_and_regions, setup, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_mix_matches_heap, setup, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_metapages, setup, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_span_across_arenas, setup, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_prefixed_lines, setup, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_checks_can_fail, setup, fx_teardown_all_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
