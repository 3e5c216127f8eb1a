/*
 * tests/fuzz/fuzz_ops.c - libFuzzer harness: operation sequences against a
 * shadow model (make fuzz, make test-fuzz: scripts/hardening.mk).
 *
 * Each input is decoded as a sequence of operations (one opcode byte, then
 * the bytes its arguments need; a short input reads zeros): kmalloc,
 * kzalloc, kcalloc, krealloc, kmalloc_aligned, kfree, kpage_alloc,
 * kpage_free; object caches, plain and debug (create, alloc, free, shrink,
 * destroy); kmem_reclaim; CPUs (offline+online, migrating to another);
 * kmem_hot_add (the reserved hole handed over, memory in an old or a new
 * arena, bad regions); an OOM hook (declining, or hot-adding memory for a
 * retry); bursts and patterned frees; whole-heap checks; and deliberate
 * bad calls: double frees, interior, wild, free-page and metadata
 * pointers, wrong kind, wrong page count, wrong or destroyed cache,
 * through kfree, ksize, krealloc, kpage_free and kmem_cache_free.
 *
 * The model knows every live object (requested and usable size, a fill
 * pattern derived from its id) and checks: results inside the pool,
 * alignment, ksize >= size, zero fill, constructors run, contents intact,
 * no two live objects overlapping, NULL only when the contract allows it
 * (for an out-of-memory NULL: the OOM hook was asked, and no free run or
 * free slot that could have served it remains), kpage_alloc takes the
 * lowest fitting run, krealloc keeps the old bytes and stays in place
 * exactly when the contract says; a bad call is reported through the fault
 * hook exactly once, at its address, with the kind the heap map says it
 * must have, and changes nothing (heap map and statistics the same before
 * and after).  At each whole-heap check and at the end of the input:
 * kmem_check() == 0, the heap map agrees with the statistics and with the
 * model (every live object in a span of the right kind and cache; each
 * span's live count is the model's), and kmem_leak_report() lists exactly
 * the model's live objects.  Then everything is freed, the caches
 * destroyed, and every page must be back.
 *
 * Any violation prints the last operations and aborts, so that libFuzzer
 * records the input; replay it with FUZZ_TRACE=1 to see every operation.
 * The heap (two usable regions, one across an arena boundary, a reserved
 * hole; about 22 MiB, up to 34 MiB with hot-adds) is rebuilt with
 * kmem_init() for every input, which costs about 50 us.
 *
 * Seeds: tests/fuzz/corpus (tests/fuzz/mkseeds.py writes them).  Inputs
 * that once found a bug: tests/fuzz/regress (replayed by make test-fuzz).
 *
 * Environment:
 *   FUZZ_TRACE=1            print every operation
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "host.h"
#include "spanalloc.h"

#define PAGE KMEM_PAGE_SIZE

/* Physical layout (the window is 192 MiB; arenas are 64 MiB). */
#define WIN_SPAN (192 * FX_MIB)
#define LOW_BASE (8 * FX_MIB)
#define LOW_LEN (2 * FX_MIB)
#define HIGH_BASE (60 * FX_MIB) /* crosses the arena boundary at 64 MiB */
#define HIGH_LEN (20 * FX_MIB)
#define HOLE_BASE (70 * FX_MIB + 12 * FX_KIB + 100) /* unaligned reserved hole */
#define HOLE_LEN (200 * FX_KIB)
#define NCPUS 4

#define MAX_LIVE 2048
#define MAX_OPS 4000
#define NGHOST 32
#define NCACHE 4
#define SLACK_PAGES 32 /* room metadata carving may need besides a run */
#define MAX_CHECKS 4    /* whole-heap checks per input, besides the last */

/* ---------------------------------------------------------------------------
 * Failure reports
 */

#define TRACE_N 48
static char trace_buf[TRACE_N][112];
static unsigned long trace_n;
static bool trace_print;
static unsigned long input_no;

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
	char *b = trace_buf[trace_n++ % TRACE_N];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, sizeof trace_buf[0], fmt, ap);
	va_end(ap);
	if (trace_print)
		fprintf(stderr, "fuzz: %s\n", b);
}

static void fz_fail(int line, const char *cond, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
static void fz_fail(int line, const char *cond, const char *fmt, ...)
{
	fprintf(stderr, "\n==== fuzz_ops: check failed (line %d): %s\n", line, cond);
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "==== ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n==== last operations (oldest first):\n");
	unsigned long first = trace_n > TRACE_N ? trace_n - TRACE_N : 0;
	for (unsigned long i = first; i < trace_n; i++)
		fprintf(stderr, "  %5lu %s\n", i, trace_buf[i % TRACE_N]);
	fflush(stderr);
	abort();
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (__builtin_expect(!(cond), 0))                              \
			fz_fail(__LINE__, #cond, __VA_ARGS__);                 \
	} while (0)

/* ---------------------------------------------------------------------------
 * Input
 */

struct in {
	const uint8_t *d;
	size_t n, i;
};

static uint8_t u8(struct in *in)
{
	return in->i < in->n ? in->d[in->i++] : 0;
}

static uint16_t u16(struct in *in)
{
	uint16_t lo = u8(in);
	return (uint16_t)(lo | (uint16_t)u8(in) << 8);
}

/* ---------------------------------------------------------------------------
 * Model
 */

enum okind { O_KMALLOC, O_CACHE, O_RUN };

struct obj {
	uint8_t *p;
	size_t size;   /* requested */
	size_t usable; /* ksize (pages * PAGE for runs) */
	uint64_t id;
	uint8_t kind;
	uint8_t cache; /* O_CACHE: slot */
	bool large;    /* O_KMALLOC: a large object (its own span) */
	size_t npages; /* O_RUN */
};

struct ghost { /* a recently freed object */
	uint8_t *p;
	uint8_t kind, cache;
	size_t npages;
};

struct cslot {
	struct kmem_cache *k;
	size_t size, align, elemsize, nlive;
	uint32_t span_pages;
	bool ctor;
	unsigned debug; /* KMEM_DEBUG_* flags (kmem_cache_create_debug) */
};

static const char *const cname[NCACHE] = {"fz0", "fz1", "fz2", "fz3"};
static struct cslot cs[NCACHE];
static struct kmem_cache *dead_cache; /* destroyed, no cache created since */

static struct obj live[MAX_LIVE];
static size_t nlive;
static struct ghost ghosts[NGHOST];
static unsigned nghost;
static uint64_t next_id;
static int cur_cpu;
static int oom_mode; /* 0: no hook, 1: a hook that declines, 2: one that adds memory */
static unsigned long oom_calls, oom_calls_before_op;
static unsigned nchecks; /* OP_CHECKs in this input */

static uint8_t *win;
static uint64_t meta_phys, meta_bytes;

/* Size classes (constant): object size, span pages. */
static unsigned nclasses;
static uint32_t class_size[256], class_pages[256];
static uint32_t max_class_pages;

static uint64_t phys_of(const void *p)
{
	return (uint64_t)((uintptr_t)p - (uintptr_t)win);
}

/* Hot-add candidates (see op_hot_add); pool ranges added in this input. */
#define NHOT 4
static const struct kmem_region hot[NHOT] = {
	{.base = HOLE_BASE, .length = HOLE_LEN, .type = KMEM_REGION_RECLAIMABLE},
	{.base = 96 * FX_MIB, .length = 4 * FX_MIB, .type = KMEM_REGION_USABLE},
	{.base = 130 * FX_MIB + 4321, .length = 4 * FX_MIB, .type = KMEM_REGION_USABLE},
	{.base = 126 * FX_MIB, .length = 4 * FX_MIB, .type = KMEM_REGION_RECLAIMABLE},
};
static uint64_t hot_lo[NHOT], hot_hi[NHOT]; /* pool part of an added one */

static bool in_pool(uint64_t phys, uint64_t len)
{
	uint64_t end = phys + len;
	if (end < phys)
		return false;
	for (unsigned i = 0; i < NHOT; i++)
		if (hot_hi[i] && phys >= hot_lo[i] && end <= hot_hi[i])
			return true;
	bool low = phys >= LOW_BASE && end <= LOW_BASE + LOW_LEN;
	bool high = phys >= HIGH_BASE && end <= HIGH_BASE + HIGH_LEN;
	uint64_t hole_lo = HOLE_BASE & ~(PAGE - 1);
	uint64_t hole_hi = (HOLE_BASE + HOLE_LEN + PAGE - 1) & ~(PAGE - 1);
	bool hole = phys < hole_hi && end > hole_lo;
	bool meta = phys < meta_phys + meta_bytes && end > meta_phys;
	return (low || high) && !hole && !meta;
}

/* Fill layout: small objects whole; big ones (> 256 KiB) the first and
 * last 64 KiB and the first 64 bytes of every page in between. */
#define BIG_OBJ (256 * FX_KIB)
#define BIG_EDGE (64 * FX_KIB)

typedef size_t (*seg_fn)(uint8_t *p, size_t len, uint64_t id);

static size_t seg_fill(uint8_t *p, size_t len, uint64_t id)
{
	fx_fill(p, len, id);
	return (size_t)-1;
}

static size_t seg_check(uint8_t *p, size_t len, uint64_t id)
{
	return fx_check(p, len, id);
}

static size_t seg_zero(uint8_t *p, size_t len, uint64_t id)
{
	(void)id;
	return fx_first_nonzero(p, len);
}

/* Applies fn to the stamped segments of an object of `usable` bytes,
 * limited to its first `limit` bytes; returns the first offset fn reports
 * or (size_t)-1. */
static size_t stamped(uint8_t *p, size_t usable, size_t limit, uint64_t id, seg_fn fn)
{
	if (limit > usable)
		limit = usable;
	if (usable <= BIG_OBJ) {
		size_t r = fn(p, limit, id);
		return r;
	}
	size_t r;
	size_t head = limit < BIG_EDGE ? limit : BIG_EDGE;
	if ((r = fn(p, head, id)) != (size_t)-1)
		return r;
	for (size_t off = BIG_EDGE; off < usable - BIG_EDGE && off < limit; off += PAGE) {
		size_t l = 64;
		if (off + l > limit)
			l = limit - off;
		if ((r = fn(p + off, l, id ^ off)) != (size_t)-1)
			return off + r;
	}
	size_t t = usable - BIG_EDGE;
	if (t < limit && (r = fn(p + t, limit - t, id ^ 1)) != (size_t)-1)
		return t + r;
	return (size_t)-1;
}

static void verify(const struct obj *o, const char *when)
{
	size_t bad = stamped(o->p, o->usable, o->usable, o->id, seg_check);
	CHECK(bad == (size_t)-1,
	      "%s: object id %llu at %p (size %zu, usable %zu, kind %d) corrupt at byte %zu",
	      when, (unsigned long long)o->id, (void *)o->p, o->size, o->usable, o->kind, bad);
}

static long find_live(const void *p)
{
	for (size_t i = 0; i < nlive; i++)
		if (live[i].p == p)
			return (long)i;
	return -1;
}

static void add(uint8_t *p, size_t size, size_t usable, enum okind k, unsigned slot,
                size_t npages, bool large)
{
	uintptr_t lo = (uintptr_t)p, hi = lo + (usable ? usable : 1);
	for (size_t i = 0; i < nlive; i++) {
		uintptr_t l = (uintptr_t)live[i].p, h = l + (live[i].usable ? live[i].usable : 1);
		CHECK(hi <= l || h <= lo,
		      "new object %p (+%zu) overlaps live id %llu at %p (+%zu)", (void *)p,
		      usable, (unsigned long long)live[i].id, (void *)live[i].p, live[i].usable);
	}
	CHECK(nlive < MAX_LIVE, "model full");
	struct obj *o = &live[nlive++];
	o->p = p;
	o->size = size;
	o->usable = usable;
	o->id = ++next_id;
	o->kind = (uint8_t)k;
	o->cache = (uint8_t)slot;
	o->npages = npages;
	o->large = large;
	stamped(p, usable, usable, o->id, seg_fill);
	if (k == O_CACHE)
		cs[slot].nlive++;
}

/* Removes live[i] from the model (already freed by the caller). */
static void drop(size_t i)
{
	struct obj *o = &live[i];
	struct ghost *g = &ghosts[nghost++ % NGHOST];
	g->p = o->p;
	g->kind = o->kind;
	g->cache = o->cache;
	g->npages = o->npages;
	if (o->kind == O_CACHE)
		cs[o->cache].nlive--;
	live[i] = live[--nlive];
}

static void check_faults(const char *when)
{
	if (fx_fault_count()) {
		struct fx_fault f = fx_last_fault();
		CHECK(fx_fault_count() == 0, "%s: %lu unexpected fault(s), last %s at %p (%s)",
		      when, fx_fault_count(), kmem_fault_name(f.kind), f.addr,
		      f.detail ? f.detail : "-");
	}
}

/* ---------------------------------------------------------------------------
 * Heap map helpers
 */

static struct kmem_stats stats(void)
{
	return fx_stats();
}

/* The heap map, taken once and kept until an operation that may change
 * the heap (heap_changed()): a walk of every arena page is the harness's
 * biggest cost. */
static struct fx_heapmap map_cache;
static bool map_ok;

static const struct fx_heapmap *heap_map(void)
{
	if (!map_ok) {
		fx_heapmap_free(&map_cache);
		fx_heapmap_take(&map_cache);
		map_ok = true;
	}
	return &map_cache;
}

static void heap_changed(void)
{
	map_ok = false;
}

/* Does some free run of the map hold npages pages aligned to align_pages
 * ending at or below max_pfn (0: none), with `slack` pages to spare, and
 * starting below `below` (phys; 0: anywhere)?  Free runs are merged across
 * arena boundaries first. */
static bool free_fit(const struct fx_heapmap *m, uint64_t npages, uint64_t align_pages,
                     uint64_t max_pfn, uint64_t slack, uint64_t below)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->rec[i].kind != FX_HM_FREE)
			continue;
		uint64_t a = m->rec[i].phys / PAGE, b = a + m->rec[i].pages;
		while (i + 1 < m->n && m->rec[i + 1].kind == FX_HM_FREE &&
		       m->rec[i + 1].phys / PAGE == b)
			b += m->rec[++i].pages;
		if (max_pfn && b > max_pfn)
			b = max_pfn;
		uint64_t x = (a + align_pages - 1) / align_pages * align_pages;
		if (below && x * PAGE >= below)
			continue;
		if (x + npages + slack <= b)
			return true;
	}
	return false;
}

static void check_map_vs_model(const char *when)
{
	struct kmem_stats st = stats();
	const struct fx_heapmap *m = heap_map();
	const char *err = fx_heapmap_verify(m, &st);
	CHECK(err == NULL, "%s: heap map: %s", when, err);
	uint32_t *count = calloc(m->n + 1, sizeof *count);
	CHECK(count != NULL, "calloc");
	for (size_t i = 0; i < nlive; i++) {
		const struct obj *o = &live[i];
		uint64_t ph = phys_of(o->p);
		const struct fx_hm_rec *r = fx_heapmap_find(m, ph);
		CHECK(r != NULL, "%s: live object %p (usable %zu) in no record of the map", when,
		      (void *)o->p, o->usable);
		count[r - m->rec]++;
		switch (o->kind) {
		case O_KMALLOC:
			if (!o->large) {
				CHECK(r->kind == FX_HM_SMALL && strcmp(r->cache, "-") == 0 &&
				              r->size == o->usable && (ph - r->phys) % r->size == 0,
				      "%s: kmalloc object %p (%zu) in record kind %d size %u cache %s at %#llx",
				      when, (void *)o->p, o->usable, r->kind, r->size, r->cache,
				      (unsigned long long)r->phys);
			} else {
				CHECK(r->kind == FX_HM_LARGE && r->phys == ph &&
				              r->pages * PAGE == o->usable,
				      "%s: large object %p (%zu) in record kind %d at %#llx, %llu pages",
				      when, (void *)o->p, o->usable, r->kind,
				      (unsigned long long)r->phys, (unsigned long long)r->pages);
			}
			break;
		case O_CACHE:
			CHECK(r->kind == FX_HM_SMALL && strcmp(r->cache, cname[o->cache]) == 0 &&
			              r->size == cs[o->cache].elemsize && (ph - r->phys) % r->size == 0,
			      "%s: object %p of cache %s in record kind %d size %u cache %s", when,
			      (void *)o->p, cname[o->cache], r->kind, r->size, r->cache);
			break;
		case O_RUN:
			CHECK(r->kind == FX_HM_RUN && r->phys == ph && r->pages == o->npages,
			      "%s: page run %p (%zu pages) in record kind %d at %#llx, %llu pages",
			      when, (void *)o->p, o->npages, r->kind, (unsigned long long)r->phys,
			      (unsigned long long)r->pages);
			break;
		}
	}
	for (size_t i = 0; i < m->n; i++) {
		const struct fx_hm_rec *r = &m->rec[i];
		uint32_t want = r->kind == FX_HM_SMALL ? r->live
		                : (r->kind == FX_HM_LARGE || r->kind == FX_HM_RUN) ? 1 : 0;
		CHECK(count[i] == want,
		      "%s: record %zu (kind %d at %#llx, %llu pages, size %u, cache %s) holds %u "
		      "model objects, the map says %u",
		      when, i, r->kind, (unsigned long long)r->phys, (unsigned long long)r->pages,
		      r->size, r->cache, count[i], want);
	}
	free(count);
}

/* kmem_leak_report's lines: sums their objects= counts. */
static void leak_line(const char *line, void *arg)
{
	const char *o = strstr(line, "objects=");
	CHECK(strncmp(line, "leak ", 5) == 0 && o != NULL, "leak report line \"%s\"", line);
	*(unsigned long *)arg += strtoul(o + 8, NULL, 10);
}

static void check_heap(const char *when)
{
	unsigned long broken = kmem_check();
	CHECK(broken == 0, "%s: kmem_check found %lu broken invariants (last: %s)", when, broken,
	      fx_last_fault().detail ? fx_last_fault().detail : "?");
	check_faults(when);
	struct kmem_stats st = stats();
	CHECK(st.pages_free + st.pages_small + st.pages_large + st.pages_runs +
	              st.pages_metadata == st.pages_managed,
	      "%s: page identity broken", when);
	uint64_t large = 0, runs = 0, run_pages = 0;
	for (size_t i = 0; i < nlive; i++) {
		large += live[i].kind == O_KMALLOC && live[i].large;
		runs += live[i].kind == O_RUN;
		run_pages += live[i].kind == O_RUN ? live[i].npages : 0;
	}
	CHECK(st.large_objects == large && st.page_runs == runs && st.pages_runs == run_pages,
	      "%s: stats large %llu runs %llu (%llu pages), model %llu, %llu (%llu)", when,
	      (unsigned long long)st.large_objects, (unsigned long long)st.page_runs,
	      (unsigned long long)st.pages_runs, (unsigned long long)large,
	      (unsigned long long)runs, (unsigned long long)run_pages);
	check_map_vs_model(when);
	unsigned long listed = 0, n = kmem_leak_report(leak_line, &listed);
	CHECK(n == nlive && listed == nlive, "%s: the leak report lists %lu (returns %lu), model %zu",
	      when, listed, n, nlive);
}

/* After kmem_reclaim: per-class and per-cache objects_in_use are exact. */
static void check_class_counts(const char *when)
{
	uint64_t per[256] = {0};
	for (size_t i = 0; i < nlive; i++)
		if (live[i].kind == O_KMALLOC && !live[i].large)
			per[kmem_size_class(live[i].usable)]++;
	for (unsigned c = 1; c < nclasses; c++) {
		struct kmem_class_stats s = fx_class_stats(c);
		CHECK(s.objects_in_use == per[c], "%s: class %u (%u B): objects_in_use %llu, model %llu",
		      when, c, s.object_size, (unsigned long long)s.objects_in_use,
		      (unsigned long long)per[c]);
	}
	for (unsigned k = 0; k < NCACHE; k++) {
		if (!cs[k].k)
			continue;
		struct kmem_class_stats s;
		kmem_cache_get_stats(cs[k].k, &s);
		CHECK(s.objects_in_use == cs[k].nlive, "%s: cache %s: objects_in_use %llu, model %zu",
		      when, cname[k], (unsigned long long)s.objects_in_use, cs[k].nlive);
	}
}

/* ---------------------------------------------------------------------------
 * Allocation results
 */

enum req { R_KMALLOC, R_ALIGNED, R_PAGES, R_CACHE };

/* An allocation the contract allows returned NULL: legitimate only if the
 * heap (after the allocator's own sweep and retry) has no free slot of the
 * class and no free run that could have held it with room to spare. */
static void check_null(const char *what, enum req r, size_t size, size_t align,
                       uint64_t max_phys, int slot)
{
	uint64_t np, ap = 1;
	const char *cache = NULL;
	unsigned cls = 0;
	if (r == R_CACHE) {
		np = cs[slot].span_pages;
		cache = cname[slot];
		uint64_t a = fx_pow2_divisor(cs[slot].elemsize);
		ap = a > PAGE ? (a > KMEM_SMALL_MAX ? KMEM_SMALL_MAX : a) / PAGE : 1;
	} else if (r == R_PAGES) {
		np = size;
		ap = align > PAGE ? align / PAGE : 1;
	} else if (r == R_KMALLOC && size <= KMEM_SMALL_MAX) {
		cls = kmem_size_class(size);
		np = class_pages[cls];
		cache = "-";
		uint64_t a = fx_pow2_divisor(class_size[cls]);
		ap = a > PAGE ? a / PAGE : 1;
	} else if (r == R_ALIGNED) {
		/* small or large path: ask for the larger of both */
		np = (size + PAGE - 1) / PAGE;
		if (np < max_class_pages)
			np = max_class_pages;
		ap = (align > KMEM_SMALL_MAX ? align : KMEM_SMALL_MAX) / PAGE;
	} else {
		np = (size + PAGE - 1) / PAGE;
	}
	/* The hook is asked unless no memory could help: a page run that
	 * cannot start at its alignment (at page 1 or above) and end below the
	 * ceiling (spanalloc.h). */
	uint64_t limit = max_phys ? max_phys / PAGE : 1ull << 36;
	bool hopeless = r == R_PAGES && (np > limit || ap > limit - np);
	CHECK(!oom_mode || hopeless || oom_calls > oom_calls_before_op,
	      "%s(size %zu) returned NULL without calling the OOM hook", what, size);
	heap_changed(); /* the OOM hook may have added memory */
	const struct fx_heapmap *m = heap_map();
	bool fit = free_fit(m, np, ap, max_phys / PAGE, SLACK_PAGES, 0);
	bool slot_free = false;
	for (size_t i = 0; cache && i < m->n; i++) {
		const struct fx_hm_rec *h = &m->rec[i];
		if (h->kind == FX_HM_SMALL && strcmp(h->cache, cache) == 0 &&
		    (r == R_CACHE || h->cls == cls) && h->live < h->objects)
			slot_free = true;
	}
	struct kmem_stats st = stats();
	CHECK(!fit && !slot_free,
	      "%s(size %zu, align %zu, max_phys %#llx) returned NULL, but the heap has %s "
	      "(%llu pages free of %llu; needed %llu pages aligned to %llu)",
	      what, size, align, (unsigned long long)max_phys,
	      slot_free ? "a span of the class with a free object" : "a free run that fits",
	      (unsigned long long)st.pages_free, (unsigned long long)st.pages_managed,
	      (unsigned long long)np, (unsigned long long)ap);
}

/* large: the object has a span of its own (kmalloc family). */
static void got_obj(const char *what, uint8_t *p, size_t size, uint64_t align, bool zeroed,
                    enum okind k, unsigned slot, bool large)
{
	check_faults(what);
	size_t u = ksize(p);
	check_faults("ksize of a new object");
	CHECK(u >= size, "%s(%zu) = %p: ksize %zu", what, size, (void *)p, u);
	CHECK((uintptr_t)p % align == 0, "%s(%zu) = %p: not aligned to %llu", what, size,
	      (void *)p, (unsigned long long)align);
	CHECK(kmem_virt_to_phys(p) == phys_of(p), "%s: kmem_virt_to_phys(%p) = %#llx", what,
	      (void *)p, (unsigned long long)kmem_virt_to_phys(p));
	CHECK(in_pool(phys_of(p), u), "%s(%zu) = %p (phys %#llx, +%zu) outside the pool", what,
	      size, (void *)p, (unsigned long long)phys_of(p), u);
	CHECK(large == (u > KMEM_SMALL_MAX) || (large && u % PAGE == 0),
	      "%s(%zu) = %p: ksize %zu for a %s object", what, size, (void *)p, u,
	      large ? "large" : "small");
	if (large)
		CHECK(u % PAGE == 0 && (uintptr_t)p % PAGE == 0,
		      "%s(%zu) = %p: large object with ksize %zu", what, size, (void *)p, u);
	if (zeroed) {
		size_t nz = stamped(p, size, size, 0, seg_zero);
		CHECK(nz == (size_t)-1, "%s(%zu) = %p: byte %zu not zero", what, size, (void *)p, nz);
	}
	if (k == O_CACHE && cs[slot].ctor) {
		CHECK(p[0] == 0xA5, "cache %s: constructor did not run on %p", cname[slot],
		      (void *)p);
	}
	add(p, size, u, k, slot, 0, large);
}

/* ---------------------------------------------------------------------------
 * Argument decoding
 */

static size_t decode_size(struct in *in)
{
	uint8_t c = u8(in);
	uint16_t v = u16(in);
	switch (c % 16) {
	case 0:
		return v % 17;
	case 1: case 2: case 3: case 4:
		return 1 + v % 256;
	case 5: case 6:
		return 1 + v % 2048;
	case 7:
		return 1 + v % 8192;
	case 8:
		return 1 + v % KMEM_SMALL_MAX;
	case 9: { /* a class boundary, -1 / 0 / +1 */
		unsigned cls = 1 + (v & 0xff) % (nclasses - 1);
		size_t s = class_size[cls] + (size_t)((v >> 8) % 3);
		return s ? s - 1 : 0;
	}
	case 10:
		return KMEM_SMALL_MAX - 1 + v % 3;
	case 11: case 12:
		return KMEM_SMALL_MAX + 1 + (size_t)v * 4; /* large, up to ~290 KiB */
	case 13:
		return (size_t)(1 + v % 1024) * PAGE - (v >> 10); /* up to 4 MiB */
	case 14:
		return 1 + (size_t)v * 256; /* up to 16 MiB: may not fit */
	default: {
		static const size_t absurd[] = {
			KMEM_MAX_ALLOC, KMEM_MAX_ALLOC + 1, SIZE_MAX, SIZE_MAX / 2,
			64 * FX_MIB, FX_GIB, HIGH_LEN,
		};
		return absurd[v % (sizeof absurd / sizeof *absurd)];
	}
	}
}

/* An index into live[] of an object of kind k (any kind if k < 0),
 * starting at a position chosen by the input; -1 if none. */
static long pick(struct in *in, int k)
{
	uint16_t v = u16(in);
	if (!nlive)
		return -1;
	for (size_t t = 0; t < nlive; t++) {
		size_t i = (v + t) % nlive;
		if (k < 0 || live[i].kind == k)
			return (long)i;
	}
	return -1;
}

/* ---------------------------------------------------------------------------
 * Operations
 */

static void do_kmalloc(size_t s, bool zero)
{
	uint8_t *p = zero ? kzalloc(s) : kmalloc(s);
	const char *what = zero ? "kzalloc" : "kmalloc";
	trace("%s(%zu) = %p", what, s, (void *)p);
	if (s > KMEM_MAX_ALLOC) {
		CHECK(p == NULL, "%s(%zu) above KMEM_MAX_ALLOC returned %p", what, s, (void *)p);
		return;
	}
	if (!p) {
		check_faults(what);
		check_null(what, R_KMALLOC, s, 8, 0, 0);
		return;
	}
	got_obj(what, p, s, fx_kmalloc_align(s), zero, O_KMALLOC, 0, s > KMEM_SMALL_MAX);
}

static void op_kcalloc(struct in *in)
{
	uint8_t sel = u8(in);
	size_t size = sel & 1 ? decode_size(in) : u16(in) % 300;
	size_t n;
	if (sel & 2)
		n = size ? SIZE_MAX / size + 1 + u8(in) : SIZE_MAX; /* overflows */
	else
		n = u16(in) % 300;
	size_t total;
	bool ovf = __builtin_mul_overflow(n, size, &total);
	uint8_t *p = kcalloc(n, size);
	trace("kcalloc(%zu, %zu) = %p", n, size, (void *)p);
	if (ovf || total > KMEM_MAX_ALLOC) {
		CHECK(p == NULL, "kcalloc(%zu, %zu) overflowing returned %p", n, size, (void *)p);
		return;
	}
	if (!p) {
		check_faults("kcalloc");
		check_null("kcalloc", R_KMALLOC, total, 8, 0, 0);
		return;
	}
	got_obj("kcalloc", p, total, fx_kmalloc_align(total), true, O_KMALLOC, 0,
	        total > KMEM_SMALL_MAX);
}

static void op_aligned(struct in *in)
{
	size_t s = decode_size(in);
	uint8_t b = u8(in);
	size_t align;
	bool valid = true;
	if (b < 224) {
		align = (size_t)1 << (b % 23); /* up to 4 MiB */
	} else {
		static const size_t bad[] = {0, 3, 24, 4097, 12288, SIZE_MAX, (size_t)1 << 63 | 1};
		align = bad[b % (sizeof bad / sizeof *bad)];
		valid = align == 0; /* 0: the natural alignment, kmalloc's */
	}
	uint64_t large0 = stats().large_objects;
	uint8_t *p = kmalloc_aligned(s, align);
	trace("kmalloc_aligned(%zu, %zu) = %p", s, align, (void *)p);
	if (!valid || s > KMEM_MAX_ALLOC) {
		CHECK(p == NULL, "kmalloc_aligned(%zu, %zu) returned %p", s, align, (void *)p);
		return;
	}
	if (!p) {
		check_faults("kmalloc_aligned");
		check_null("kmalloc_aligned", R_ALIGNED, s, align, 0, 0);
		return;
	}
	/* a big alignment may give a large object with a small size */
	bool large = stats().large_objects == large0 + 1;
	got_obj("kmalloc_aligned", p, s, align < 8 ? 8 : align, false, O_KMALLOC, 0, large);
}

static void free_obj(size_t i, uint8_t how)
{
	struct obj *o = &live[i];
	verify(o, "free");
	switch (o->kind) {
	case O_KMALLOC:
		trace("kfree(%p) [%zu]", (void *)o->p, o->usable);
		kfree(o->p);
		break;
	case O_RUN:
		trace("kpage_free(%p, %zu)", (void *)o->p, o->npages);
		kpage_free(o->p, o->npages);
		break;
	case O_CACHE:
		trace("%s(%s, %p)", how & 1 ? "kfree" : "kmem_cache_free", cname[o->cache],
		      (void *)o->p);
		if (how & 1)
			kfree(o->p);
		else
			kmem_cache_free(cs[o->cache].k, o->p);
		break;
	}
	check_faults("free");
	drop(i);
}

static void op_free(struct in *in, int kind)
{
	long i = pick(in, kind);
	uint8_t how = u8(in);
	if (i >= 0)
		free_obj((size_t)i, how);
}

static void op_realloc(struct in *in)
{
	uint8_t sel = u8(in);
	long i = sel & 1 ? pick(in, O_KMALLOC) : -1;
	size_t n = sel & 2 ? 0 : decode_size(in);
	if (i < 0) {
		uint8_t *p = krealloc(NULL, n);
		trace("krealloc(NULL, %zu) = %p", n, (void *)p);
		if (n > KMEM_MAX_ALLOC) {
			CHECK(p == NULL, "krealloc(NULL, %zu) returned %p", n, (void *)p);
		} else if (!p) {
			check_faults("krealloc(NULL)");
			check_null("krealloc(NULL)", R_KMALLOC, n, 8, 0, 0);
		} else {
			got_obj("krealloc(NULL)", p, n, fx_kmalloc_align(n), false, O_KMALLOC, 0,
			        n > KMEM_SMALL_MAX);
		}
		return;
	}
	struct obj o = live[i];
	verify(&o, "realloc");
	uint8_t *q = krealloc(o.p, n);
	trace("krealloc(%p [%zu/%zu], %zu) = %p", (void *)o.p, o.size, o.usable, n, (void *)q);
	check_faults("krealloc");
	if (n == 0) {
		CHECK(q == NULL, "krealloc(p, 0) returned %p", (void *)q);
		drop((size_t)i);
		return;
	}
	if (!q) {
		CHECK(n > o.usable || n < o.usable / 2,
		      "krealloc(%p, %zu) of a %zu-byte object returned NULL", (void *)o.p, n,
		      o.usable);
		if (n <= KMEM_MAX_ALLOC)
			check_null("krealloc", R_KMALLOC, n, 8, 0, 0);
		/* p untouched and still live */
		verify(&live[i], "after a failed krealloc");
		CHECK(ksize(o.p) == o.usable, "failed krealloc changed ksize(%p)", (void *)o.p);
		return;
	}
	CHECK(n <= KMEM_MAX_ALLOC, "krealloc(p, %zu) returned %p", n, (void *)q);
	bool fits = n <= o.usable && n >= o.usable / 2;
	CHECK(fits == (q == o.p), "krealloc(%p [usable %zu], %zu) = %p: in place iff it fits",
	      (void *)o.p, o.usable, n, (void *)q);
	size_t keep = o.size < n ? o.size : n;
	size_t bad = stamped(q, o.usable, keep, o.id, seg_check);
	CHECK(bad == (size_t)-1, "krealloc(%zu -> %zu) = %p: old byte %zu lost", o.size, n,
	      (void *)q, bad);
	/* Out of the model first (the old block may be gone), then back in. */
	live[i] = live[--nlive];
	if (q != o.p) {
		struct ghost *g = &ghosts[nghost++ % NGHOST];
		g->p = o.p;
		g->kind = O_KMALLOC;
		g->cache = 0;
		g->npages = 0;
	}
	if (q == o.p)
		got_obj("krealloc", q, n, 8, false, O_KMALLOC, 0, o.large);
	else
		got_obj("krealloc", q, n, fx_kmalloc_align(n), false, O_KMALLOC, 0,
		        n > KMEM_SMALL_MAX);
}

static void op_pages(struct in *in)
{
	uint8_t a = u8(in), b = u8(in), c = u8(in);
	uint16_t v = u16(in);
	size_t n = a & 0x80 ? 1 + v % 2048 : a % 33; /* 0 is invalid */
	size_t align;
	bool valid = n != 0;
	if (b < 240) {
		align = (size_t)1 << (b % 24);
	} else {
		align = b & 1 ? 0 : 3 * PAGE;
		valid = valid && align == 0; /* 0: the natural alignment, a page */
	}
	uint64_t ceil = 0;
	switch (c % 12) {
	case 6: ceil = LOW_BASE + (uint64_t)v * 64; break;          /* in low memory */
	case 7: ceil = HIGH_BASE + (uint64_t)v * 320; break;        /* in the big region */
	case 8: ceil = 4 * FX_MIB; break;                           /* below everything */
	case 9: ceil = LOW_BASE + LOW_LEN + 12345; break;           /* unaligned */
	case 10: ceil = 1; break;                                   /* max_pfn 0 */
	default: break;
	}
	uint8_t *p = kpage_alloc(n, align, ceil);
	trace("kpage_alloc(%zu, %zu, %#llx) = %p", n, align, (unsigned long long)ceil, (void *)p);
	if (!valid || (ceil && ceil < PAGE)) {
		CHECK(p == NULL, "kpage_alloc(%zu, %zu, %#llx) returned %p", n, align,
		      (unsigned long long)ceil, (void *)p);
		return;
	}
	check_faults("kpage_alloc");
	uint64_t ap = align > PAGE ? align / PAGE : 1;
	if (!p) {
		check_null("kpage_alloc", R_PAGES, n, align, ceil, 0);
		return;
	}
	uint64_t ph = phys_of(p);
	CHECK(ph % (ap * PAGE) == 0, "kpage_alloc(%zu, %zu): phys %#llx misaligned", n, align,
	      (unsigned long long)ph);
	CHECK(!ceil || ph + n * PAGE <= ceil, "kpage_alloc(%zu, ceiling %#llx): run at %#llx", n,
	      (unsigned long long)ceil, (unsigned long long)ph);
	CHECK(in_pool(ph, n * PAGE), "kpage_alloc(%zu) = %p outside the pool", n, (void *)p);
	/* The lowest fitting run was taken: none is left below it. */
	bool lower = free_fit(heap_map(), n, ap, ceil / PAGE, 0, ph);
	CHECK(!lower, "kpage_alloc(%zu, %zu, %#llx) = phys %#llx, but a lower run fits", n, align,
	      (unsigned long long)ceil, (unsigned long long)ph);
	add(p, n * PAGE, n * PAGE, O_RUN, 0, n, false);
}

static void ctor_a5(void *obj) /* one byte: a debug cache's object may be 1 byte */
{
	*(uint8_t *)obj = 0xA5;
}

static void op_cache_create(struct in *in)
{
	unsigned k = u8(in) % NCACHE;
	uint8_t sa = u8(in), sb = u8(in);
	uint16_t v = u16(in);
	size_t size, align;
	switch (sa % 8) {
	case 0: size = 0; break;
	case 1: size = KMEM_SMALL_MAX + 1 + v % 8; break;
	case 2: size = 1 + v % KMEM_SMALL_MAX; break;
	case 3: size = KMEM_SMALL_MAX - v % 16; break;
	default: size = 1 + v % 1024; break;
	}
	if (sb < 200)
		align = sb % 3 == 0 ? 0 : (size_t)1 << (sb % 13); /* 0 or 1 .. 4096 */
	else
		align = (size_t[]){3, 8192, 12, 1u << 20}[sb % 4];
	bool valid = size >= 1 && size <= KMEM_SMALL_MAX &&
	             (align == 0 || (!(align & (align - 1)) && align <= PAGE));
	if (cs[k].k)
		return; /* slot in use */
	bool ctor = sa & 0x80;
	unsigned debug = 0;
	struct kmem_cache *c;
	if (sa & 0x40) { /* a debug cache: poison, red zone, caller, or bad flags */
		debug = (sb >> 4) % 9; /* 8: not a flag */
		c = kmem_cache_create_debug(cname[k], size, align, ctor ? ctor_a5 : NULL, debug);
		valid = valid && debug <= KMEM_DEBUG_ALL &&
		        (!(debug & KMEM_DEBUG_REDZONE) || size + KMEM_REDZONE <= KMEM_SMALL_MAX);
	} else {
		c = kmem_cache_create(cname[k], size, align, ctor ? ctor_a5 : NULL);
	}
	trace("kmem_cache_create%s(%s, %zu, %zu, ctor %d, debug %u) = %p", sa & 0x40 ? "_debug" : "",
	      cname[k], size, align, ctor, debug, (void *)c);
	check_faults("kmem_cache_create");
	if (!valid) {
		CHECK(c == NULL, "kmem_cache_create(%zu, %zu) returned %p", size, align, (void *)c);
		return;
	}
	if (!c) {
		struct kmem_stats st = stats();
		CHECK(st.pages_free < SLACK_PAGES,
		      "kmem_cache_create(%zu, %zu) returned NULL with %llu pages free", size, align,
		      (unsigned long long)st.pages_free);
		return;
	}
	dead_cache = NULL;
	struct kmem_class_stats s;
	kmem_cache_get_stats(c, &s);
	size_t a = align < 8 ? 8 : align;
	CHECK(s.object_size >= size && s.object_size % a == 0 && s.span_pages > 0 &&
	              s.objects_in_use == 0,
	      "cache %s (%zu, %zu): object size %u, span pages %u", cname[k], size, align,
	      s.object_size, s.span_pages);
	cs[k] = (struct cslot){.k = c, .size = size, .align = align, .elemsize = s.object_size,
	                       .span_pages = s.span_pages, .ctor = ctor, .nlive = 0,
	                       .debug = debug};
}

static void op_cache_alloc(struct in *in)
{
	unsigned k = u8(in) % NCACHE;
	if (!cs[k].k)
		return;
	uint8_t *p = kmem_cache_alloc(cs[k].k);
	trace("kmem_cache_alloc(%s) = %p", cname[k], (void *)p);
	if (!p) {
		check_faults("kmem_cache_alloc");
		check_null("kmem_cache_alloc", R_CACHE, cs[k].size, cs[k].align, 0, (int)k);
		return;
	}
	size_t a = cs[k].align < 8 ? 8 : cs[k].align;
	got_obj("kmem_cache_alloc", p, cs[k].size, a, false, O_CACHE, k, false);
	/* ksize is the object size; with a red zone the size asked for (a
	 * debug cache without one may report either) */
	size_t u = live[nlive - 1].usable;
	bool ok = cs[k].debug & KMEM_DEBUG_REDZONE ? u == cs[k].size
	          : cs[k].debug                    ? u == cs[k].size || u == cs[k].elemsize
	                                           : u == cs[k].elemsize;
	CHECK(ok, "cache %s (size %zu, object size %zu, debug %u): ksize %zu", cname[k],
	      cs[k].size, cs[k].elemsize, cs[k].debug, u);
}

static void op_cache_shrink(struct in *in)
{
	unsigned k = u8(in) % NCACHE;
	if (!cs[k].k)
		return;
	struct kmem_class_stats before, after;
	kmem_cache_get_stats(cs[k].k, &before);
	size_t got = kmem_cache_shrink(cs[k].k);
	trace("kmem_cache_shrink(%s) = %zu", cname[k], got);
	check_faults("kmem_cache_shrink");
	kmem_cache_get_stats(cs[k].k, &after);
	CHECK(got == (before.spans - after.spans) * cs[k].span_pages,
	      "kmem_cache_shrink(%s) = %zu, spans %llu -> %llu of %u pages", cname[k], got,
	      (unsigned long long)before.spans, (unsigned long long)after.spans,
	      cs[k].span_pages);
	CHECK(after.objects_in_use == cs[k].nlive, "cache %s after shrink: %llu in use, model %zu",
	      cname[k], (unsigned long long)after.objects_in_use, cs[k].nlive);
	/* No empty span of the cache is left (other CPUs are offline). */
	const struct fx_heapmap *m = heap_map();
	for (size_t i = 0; i < m->n; i++)
		CHECK(!(m->rec[i].kind == FX_HM_SMALL && strcmp(m->rec[i].cache, cname[k]) == 0 &&
		        m->rec[i].live == 0),
		      "cache %s keeps an empty span at %#llx after kmem_cache_shrink", cname[k],
		      (unsigned long long)m->rec[i].phys);
}

static void op_cache_destroy(struct in *in)
{
	unsigned k = u8(in) % NCACHE;
	if (!cs[k].k)
		return;
	int rc = kmem_cache_destroy(cs[k].k);
	trace("kmem_cache_destroy(%s) = %d (%zu live)", cname[k], rc, cs[k].nlive);
	check_faults("kmem_cache_destroy");
	if (cs[k].nlive) {
		CHECK(rc == -KMEM_EBUSY, "kmem_cache_destroy(%s) with %zu live objects = %d",
		      cname[k], cs[k].nlive, rc);
		return;
	}
	CHECK(rc == 0, "kmem_cache_destroy(%s), empty, = %d", cname[k], rc);
	dead_cache = cs[k].k;
	memset(&cs[k], 0, sizeof cs[k]);
}

static void op_cpu(struct in *in)
{
	uint8_t sel = u8(in), c = u8(in);
	switch (sel % 4) {
	case 0: /* flush this CPU: offline and online again */
		trace("cpu %d offline+online", cur_cpu);
		CHECK(kmem_cpu_offline((unsigned)cur_cpu) == 0, "kmem_cpu_offline(%d)", cur_cpu);
		CHECK(kmem_cpu_online((unsigned)cur_cpu) == 0, "kmem_cpu_online(%d)", cur_cpu);
		break;
	case 1: /* migrate: leave this CPU (offline) and take another */
		host_cpu_release();
		cur_cpu = host_cpu_claim(c % NCPUS);
		trace("migrated to cpu %d", cur_cpu);
		break;
	case 2: { /* another CPU online and offline, unused */
		unsigned o = (unsigned)(cur_cpu + 1 + c % (NCPUS - 1)) % NCPUS;
		trace("cpu %u online+offline", o);
		CHECK(kmem_cpu_online(o) == 0 && kmem_cpu_offline(o) == 0, "cpu %u on/off", o);
		break;
	}
	default: { /* out of range */
		unsigned o = NCPUS + c;
		trace("cpu %u (invalid) online/offline", o);
		CHECK(kmem_cpu_online(o) == -KMEM_EINVAL && kmem_cpu_offline(o) == -KMEM_EINVAL,
		      "cpu %u beyond max_cpus accepted", o);
		break;
	}
	}
	check_faults("cpu");
	struct kmem_stats st = stats();
	CHECK(st.cpus_online == 1, "%u CPUs online, 1 expected", st.cpus_online);
}

/* Hot-adds candidate h (not added yet) and checks the result. */
static long hot_add(unsigned h)
{
	const struct kmem_region *r = &hot[h];
	struct kmem_stats s0 = stats();
	fx_usable(r->base, r->length);
	long rc = kmem_hot_add(r);
	trace("kmem_hot_add(%#llx, %llu, type %u) = %ld", (unsigned long long)r->base,
	      (unsigned long long)r->length, r->type, rc);
	check_faults("kmem_hot_add");
	struct kmem_stats s1 = stats();
	uint64_t end = (r->base + r->length) & ~(PAGE - 1);
	uint64_t whole = (end - ((r->base + PAGE - 1) & ~(PAGE - 1))) / PAGE;
	CHECK(rc > 0 && (uint64_t)rc <= whole, "kmem_hot_add(%#llx, %llu) = %ld of %llu pages",
	      (unsigned long long)r->base, (unsigned long long)r->length, rc,
	      (unsigned long long)whole);
	/* every page of the region is managed: rc free, the rest (its first
	 * pages) holding the metadata of arenas the heap had not seen */
	CHECK(s1.pages_managed == s0.pages_managed + whole &&
	              s1.pages_free == s0.pages_free + (uint64_t)rc &&
	              s1.pages_metadata == s0.pages_metadata + whole - (uint64_t)rc,
	      "kmem_hot_add = %ld of %llu: managed %llu -> %llu, free %llu -> %llu, metadata %llu -> %llu",
	      rc, (unsigned long long)whole, (unsigned long long)s0.pages_managed,
	      (unsigned long long)s1.pages_managed, (unsigned long long)s0.pages_free,
	      (unsigned long long)s1.pages_free, (unsigned long long)s0.pages_metadata,
	      (unsigned long long)s1.pages_metadata);
	hot_lo[h] = end - (uint64_t)rc * PAGE;
	hot_hi[h] = end;
	return rc;
}

static void op_hot_add(struct in *in)
{
	uint8_t sel = u8(in);
	struct kmem_region r;
	switch (sel % 8) {
	case 4: /* overlaps managed memory */
		r = (struct kmem_region){HIGH_BASE + FX_MIB, FX_MIB, KMEM_REGION_USABLE, 0};
		break;
	case 5: /* not usable */
		r = hot[1];
		r.type = KMEM_REGION_RESERVED;
		break;
	case 6: /* no whole page */
		r = (struct kmem_region){100 * FX_MIB + 5, PAGE, KMEM_REGION_USABLE, 0};
		break;
	case 7: /* overlaps the metadata region */
		r = (struct kmem_region){meta_phys, PAGE, KMEM_REGION_USABLE, 0};
		break;
	default:
		if (!hot_hi[sel % 4]) {
			hot_add(sel % 4);
			return;
		}
		r = hot[sel % 4]; /* again: overlaps what it added */
		break;
	}
	struct kmem_stats s0 = stats();
	long rc = kmem_hot_add(&r);
	trace("kmem_hot_add(%#llx, %llu, type %u) = %ld (bad)", (unsigned long long)r.base,
	      (unsigned long long)r.length, r.type, rc);
	check_faults("kmem_hot_add");
	CHECK(rc == -KMEM_EINVAL, "kmem_hot_add of a bad region = %ld", rc);
	CHECK(stats().pages_managed == s0.pages_managed, "a failed kmem_hot_add added pages");
}

/* The OOM hook: counts its calls; in mode 2 it hot-adds the next region
 * not yet added and asks for a retry. */
static bool oom_hook(const struct kmem_oom_request *req)
{
	oom_calls++;
	trace("oom hook(kind %d, %zu bytes, align %zu, max_phys %#llx, run %llu pages, attempt %u), mode %d",
	      (int)req->kind, req->bytes, req->align, (unsigned long long)req->max_phys,
	      (unsigned long long)req->run_pages, req->attempt, oom_mode);
	CHECK(req->attempt >= 1 && req->run_pages > 0 && req->run_align >= PAGE,
	      "oom hook called with attempt %u, run %llu pages aligned %llu", req->attempt,
	      (unsigned long long)req->run_pages, (unsigned long long)req->run_align);
	if (oom_mode != 2)
		return false;
	for (unsigned h = 1; h < NHOT; h++)
		if (!hot_hi[h])
			return hot_add(h) > 0;
	return false;
}

static void op_oom(struct in *in)
{
	oom_mode = u8(in) % 3;
	kmem_set_oom_hook(oom_mode ? oom_hook : NULL);
	trace("oom hook mode %d", oom_mode);
}

static void op_burst(struct in *in)
{
	size_t s = decode_size(in);
	unsigned n = 1 + u8(in) % 64;
	if (s > 1 * FX_MIB)
		s = 1 + s % (64 * FX_KIB);
	trace("burst %u x kmalloc(%zu)", n, s);
	for (unsigned i = 0; i < n && nlive < MAX_LIVE; i++) {
		uint8_t *p = kmalloc(s);
		if (!p) {
			check_faults("burst");
			check_null("kmalloc (burst)", R_KMALLOC, s, 8, 0, 0);
			return;
		}
		got_obj("kmalloc (burst)", p, s, fx_kmalloc_align(s), false, O_KMALLOC, 0,
		        s > KMEM_SMALL_MAX);
	}
}

static void op_free_many(struct in *in)
{
	unsigned stride = 1 + u8(in) % 4, phase = u8(in);
	trace("free every %u-th object from %u", stride, phase % stride);
	for (size_t i = nlive; i-- > 0;)
		if ((i + phase) % stride == 0)
			free_obj(i, (uint8_t)i);
}

static void op_reclaim(void)
{
	size_t n = kmem_reclaim();
	trace("kmem_reclaim() = %zu", n);
	check_faults("kmem_reclaim");
	check_class_counts("after kmem_reclaim");
}

/* ---------------------------------------------------------------------------
 * Bad calls
 */

enum act { A_KFREE, A_KSIZE, A_KREALLOC, A_PAGEFREE, A_CACHEFREE };
static const char *const act_name[] = {"kfree", "ksize", "krealloc", "kpage_free",
                                       "kmem_cache_free"};

#define KIND(k) (1u << (k)) /* a fault kind in a mask */

/* The fault kinds call a(p) may report, as a bit mask; 0 if the call is
 * legitimate (p is a live object of the right kind and cache). */
static unsigned expect(const struct fx_heapmap *m, enum act a, const uint8_t *p,
                       size_t npages, int slot)
{
	uint64_t ph = phys_of(p);
	const struct fx_hm_rec *r = (uintptr_t)p >= (uintptr_t)win && ph < WIN_SPAN
	                                    ? fx_heapmap_find(m, ph) : NULL;
	if (!r) {
		bool meta = (uintptr_t)p >= (uintptr_t)win && ph >= meta_phys &&
		            ph - meta_phys < meta_bytes;
		return meta ? KIND(KMEM_FAULT_METADATA) : KIND(KMEM_FAULT_WILD);
	}
	if (r->kind == FX_HM_FREE)
		return KIND(KMEM_FAULT_FREE_PAGE);
	if (r->kind == FX_HM_METAPAGES)
		return KIND(KMEM_FAULT_METADATA);
	if (r->kind == FX_HM_SMALL) {
		uint64_t off = ph - r->phys, idx = off / r->size;
		bool interior = idx >= r->objects || off % r->size;
		if (a == A_PAGEFREE)
			return KIND(KMEM_FAULT_WRONG_KIND);
		if (a == A_CACHEFREE && strcmp(r->cache, cname[slot]) != 0)
			return KIND(KMEM_FAULT_WRONG_CACHE);
		if (interior)
			return KIND(KMEM_FAULT_INTERIOR);
		return find_live(p) >= 0 ? 0 : KIND(KMEM_FAULT_DOUBLE_FREE);
	}
	bool base = r->phys == ph;
	if (r->kind == FX_HM_LARGE) {
		if (a == A_PAGEFREE)
			return KIND(KMEM_FAULT_WRONG_KIND);
		if (a == A_CACHEFREE) /* an object of kmalloc */
			return base ? KIND(KMEM_FAULT_WRONG_CACHE)
			            : KIND(KMEM_FAULT_WRONG_CACHE) | KIND(KMEM_FAULT_INTERIOR);
		return base ? 0 : KIND(KMEM_FAULT_INTERIOR);
	}
	/* a page run */
	if (a == A_PAGEFREE)
		return !base ? KIND(KMEM_FAULT_INTERIOR)
		       : npages != r->pages ? KIND(KMEM_FAULT_BAD_SIZE) : 0;
	if (a == A_CACHEFREE)
		return KIND(KMEM_FAULT_WRONG_CACHE) | KIND(KMEM_FAULT_WRONG_KIND);
	return KIND(KMEM_FAULT_WRONG_KIND);
}

static bool same_map(const struct fx_heapmap *x, const struct fx_heapmap *y)
{
	return x->n == y->n && x->narenas == y->narenas &&
	       memcmp(x->rec, y->rec, x->n * sizeof *x->rec) == 0 &&
	       memcmp(x->arena, y->arena, x->narenas * sizeof *x->arena) == 0;
}

/* Makes the bad call a(p) and checks it was reported as expected and
 * changed nothing.  Skipped when the call would be legitimate. */
static void bad_call(enum act a, uint8_t *p, size_t npages, int slot, size_t rsize)
{
	const struct fx_heapmap *before = heap_map();
	struct fx_heapmap after;
	unsigned want = expect(before, a, p, npages, slot);
	if (want == 0)
		return;
	struct kmem_stats s0 = stats(), s1;
	trace("bad %s(%p, %zu pages, cache %s) expecting mask %#x", act_name[a], (void *)p,
	      npages, slot >= 0 ? cname[slot] : "-", want);
	switch (a) {
	case A_KFREE:
		kfree(p);
		break;
	case A_KSIZE: {
		size_t k = ksize(p);
		CHECK(k == 0, "ksize(bad %p) = %zu", (void *)p, k);
		break;
	}
	case A_KREALLOC: {
		void *q = krealloc(p, rsize);
		CHECK(q == NULL, "krealloc(bad %p, %zu) = %p", (void *)p, rsize, q);
		break;
	}
	case A_PAGEFREE:
		kpage_free(p, npages);
		break;
	case A_CACHEFREE:
		kmem_cache_free(cs[slot].k, p);
		break;
	}
	unsigned long n = fx_fault_count();
	struct fx_fault f = fx_last_fault();
	CHECK(n == 1, "bad %s(%p): %lu faults reported (expected one of mask %#x; last %s, %s)",
	      act_name[a], (void *)p, n, want, n ? kmem_fault_name(f.kind) : "none",
	      n && f.detail ? f.detail : "-");
	CHECK(want & KIND(f.kind), "bad %s(%p): reported %s (%s), expected mask %#x", act_name[a],
	      (void *)p, kmem_fault_name(f.kind), f.detail ? f.detail : "-", want);
	CHECK(f.addr == p, "bad %s(%p): fault names %p", act_name[a], (void *)p, f.addr);
	fx_faults_reset();
	fx_heapmap_take(&after);
	s1 = stats();
	CHECK(same_map(before, &after) && memcmp(&s0, &s1, sizeof s0) == 0,
	      "bad %s(%p) (%s) changed the heap", act_name[a], (void *)p,
	      kmem_fault_name(f.kind));
	fx_heapmap_free(&after);
}

static enum act act_for(uint8_t kind, uint8_t sel)
{
	if (kind == O_RUN)
		return A_PAGEFREE;
	if (kind == O_CACHE && sel % 4 == 3)
		return A_CACHEFREE;
	return (enum act)(sel % 3); /* kfree, ksize, krealloc */
}

static void op_bad(struct in *in)
{
	uint8_t sub = u8(in), sel = u8(in);
	uint16_t v = u16(in);
	size_t rsize = 1 + v % 5000;
	switch (sub % 8) {
	case 0: { /* double free of a recently freed object */
		if (!nghost)
			return;
		unsigned n = nghost < NGHOST ? nghost : NGHOST;
		struct ghost g = ghosts[v % n];
		enum act a = act_for(g.kind, sel);
		int slot = g.kind == O_CACHE && cs[g.cache].k ? g.cache : -1;
		if (a == A_CACHEFREE && slot < 0)
			a = A_KFREE;
		bad_call(a, g.p, g.npages, slot, rsize);
		break;
	}
	case 1: { /* interior pointer of a live object */
		long i = pick(in, -1);
		if (i < 0 || live[i].usable < 2)
			return;
		size_t off = 1 + v % (live[i].usable - 1);
		if (sel & 0x10)
			off = (off + 7) & ~(size_t)7;
		if (off >= live[i].usable)
			return;
		enum act a = act_for(live[i].kind, sel);
		bad_call(a, live[i].p + off, live[i].npages, live[i].kind == O_CACHE ? live[i].cache : -1,
		         rsize);
		break;
	}
	case 2: { /* wild and metadata pointers */
		uint8_t *cand[] = {
			win + PAGE,                         /* unmanaged page in an arena */
			win + HOLE_BASE + 8 * (v % (HOLE_LEN / 8)), /* reserved hole */
			win + WIN_SPAN + (uint64_t)v * PAGE,        /* beyond every arena */
			win + FX_TIB + v,                   /* far away */
			win - PAGE,                         /* below the direct map */
			(uint8_t *)(uintptr_t)(16 + v),     /* near NULL */
			(uint8_t *)(uintptr_t)-(intptr_t)(8 + v), /* top of the address space */
			win + meta_phys + (uint64_t)v * 8 % meta_bytes, /* metadata region */
			win + LOW_BASE + LOW_LEN + v % PAGE,  /* just past the low region */
		};
		uint8_t *p = cand[sel % (sizeof cand / sizeof *cand)];
		enum act a = (enum act)((sel >> 4) % 5);
		int slot = -1;
		if (a == A_CACHEFREE) {
			for (unsigned k = 0; k < NCACHE && slot < 0; k++)
				if (cs[k].k)
					slot = (int)k;
			if (slot < 0)
				a = A_KFREE;
		}
		bad_call(a, p, 1 + v % 4, slot, rsize);
		break;
	}
	case 3: { /* a page of the map: free, metapages, any span, at any offset */
		const struct fx_heapmap *m = heap_map();
		if (!m->n)
			return;
		const struct fx_hm_rec *r = &m->rec[v % m->n];
		uint64_t off = (uint64_t)u16(in) * 8 % (r->pages * PAGE);
		if (sel & 0x20)
			off &= ~(PAGE - 1);
		uint8_t *p = win + r->phys + off;
		size_t np = r->pages + (sel & 0x40 ? 1 : 0);
		enum act a = (enum act)((sel & 0xf) % 5);
		int slot = (int)((sel >> 4) % NCACHE);
		if (a == A_CACHEFREE && !cs[slot].k)
			a = A_KFREE;
		bad_call(a, p, np, a == A_CACHEFREE ? slot : -1, rsize);
		break;
	}
	case 4: { /* wrong kind: a run to kfree/ksize/krealloc, an object to kpage_free */
		long i = pick(in, sel & 1 ? O_RUN : -1);
		if (i < 0)
			return;
		if (live[i].kind == O_RUN)
			bad_call((enum act)((sel >> 1) % 3), live[i].p, 0, -1, rsize);
		else
			bad_call(A_PAGEFREE, live[i].p, 1 + v % 8, -1, rsize);
		break;
	}
	case 5: { /* wrong page count */
		long i = pick(in, O_RUN);
		if (i < 0)
			return;
		size_t np = live[i].npages + 1 + v % 3;
		if (sel & 1 && live[i].npages > 1)
			np = live[i].npages - 1 - v % (live[i].npages - 1);
		bad_call(A_PAGEFREE, live[i].p, np, -1, rsize);
		break;
	}
	case 6: { /* wrong cache */
		long i = pick(in, -1);
		unsigned k = sel % NCACHE;
		if (i < 0 || !cs[k].k)
			return;
		bad_call(A_CACHEFREE, live[i].p, 0, (int)k, rsize);
		break;
	}
	default: { /* a destroyed cache */
		if (!dead_cache)
			return;
		long i = pick(in, -1);
		struct kmem_stats s0 = stats(), s1;
		void *p = NULL;
		if (sel & 1) {
			trace("kmem_cache_alloc(destroyed cache %p)", (void *)dead_cache);
			void *q = kmem_cache_alloc(dead_cache);
			CHECK(q == NULL, "kmem_cache_alloc(destroyed cache) = %p", q);
			p = dead_cache;
		} else if (i >= 0) {
			p = live[i].p;
			trace("kmem_cache_free(destroyed cache %p, %p)", (void *)dead_cache, p);
			kmem_cache_free(dead_cache, p);
		} else {
			return;
		}
		unsigned long n = fx_fault_count();
		struct fx_fault f = fx_last_fault();
		CHECK(n == 1 && f.kind == KMEM_FAULT_WRONG_CACHE && f.addr == p,
		      "destroyed cache: %lu faults, last %s at %p", n,
		      n ? kmem_fault_name(f.kind) : "none", f.addr);
		fx_faults_reset();
		s1 = stats();
		CHECK(memcmp(&s0, &s1, sizeof s0) == 0, "a call on a destroyed cache changed the heap");
		break;
	}
	}
}

/* ---------------------------------------------------------------------------
 * Driver
 */

enum op {
	OP_KMALLOC, OP_KZALLOC, OP_KCALLOC, OP_REALLOC, OP_ALIGNED, OP_FREE, OP_FREE2,
	OP_PAGES, OP_PAGEFREE, OP_CACHE_CREATE, OP_CACHE_ALLOC, OP_CACHE_FREE,
	OP_CACHE_SHRINK, OP_CACHE_DESTROY, OP_RECLAIM, OP_CPU, OP_BAD, OP_CHECK, OP_BURST,
	OP_FREE_MANY, OP_HOT_ADD, OP_OOM, NOPS
};

static void do_op(struct in *in)
{
	uint8_t op = u8(in) % NOPS;
	bool full = nlive + 1 >= MAX_LIVE;
	if (op != OP_BAD && op != OP_CHECK)
		heap_changed();
	oom_calls_before_op = oom_calls;
	switch (op) {
	case OP_KMALLOC:
	case OP_KZALLOC: {
		size_t s = decode_size(in);
		if (!full)
			do_kmalloc(s, op == OP_KZALLOC);
		break;
	}
	case OP_KCALLOC:
		if (!full)
			op_kcalloc(in);
		break;
	case OP_REALLOC:
		if (!full)
			op_realloc(in);
		break;
	case OP_ALIGNED:
		if (!full)
			op_aligned(in);
		break;
	case OP_FREE:
	case OP_FREE2:
		op_free(in, -1);
		break;
	case OP_PAGES:
		if (!full)
			op_pages(in);
		break;
	case OP_PAGEFREE:
		op_free(in, O_RUN);
		break;
	case OP_CACHE_CREATE:
		op_cache_create(in);
		break;
	case OP_CACHE_ALLOC:
		if (!full)
			op_cache_alloc(in);
		break;
	case OP_CACHE_FREE:
		op_free(in, O_CACHE);
		break;
	case OP_CACHE_SHRINK:
		op_cache_shrink(in);
		break;
	case OP_CACHE_DESTROY:
		op_cache_destroy(in);
		break;
	case OP_RECLAIM:
		op_reclaim();
		break;
	case OP_CPU:
		op_cpu(in);
		break;
	case OP_BAD:
		op_bad(in);
		break;
	case OP_CHECK:
		/* a few per input: a check walks every arena page */
		if (++nchecks <= MAX_CHECKS) {
			trace("check");
			check_heap("check");
		}
		break;
	case OP_BURST:
		op_burst(in);
		break;
	case OP_FREE_MANY:
		op_free_many(in);
		break;
	case OP_HOT_ADD:
		op_hot_add(in);
		break;
	case OP_OOM:
		op_oom(in);
		break;
	}
	check_faults("operation");
}

static const struct kmem_region regions[] = {
	{.base = HIGH_BASE, .length = HIGH_LEN, .type = KMEM_REGION_USABLE},
	{.base = LOW_BASE, .length = LOW_LEN, .type = KMEM_REGION_USABLE},
	{.base = HOLE_BASE, .length = HOLE_LEN, .type = KMEM_REGION_RESERVED},
};

static void heap_init(void)
{
	/* Hot-add candidates are no memory until added (the hole is
	 * protected again by fx_init). */
	for (unsigned i = 1; i < NHOT; i++)
		fx_protect(hot[i].base, hot[i].length);
	memset(hot_lo, 0, sizeof hot_lo);
	memset(hot_hi, 0, sizeof hot_hi);
	oom_mode = 0;
	int rc = fx_init(regions, sizeof regions / sizeof *regions, NCPUS);
	CHECK(rc == 0, "kmem_init = %d", rc);
	cur_cpu = 0;
	kmem_set_oom_hook(NULL);
	kmem_metadata_region(&meta_phys, &meta_bytes);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* The fixture's cmocka assertions abort instead of exiting. */
	setenv("CMOCKA_TEST_ABORT", "1", 1);
	trace_print = getenv("FUZZ_TRACE") && *getenv("FUZZ_TRACE") == '1';
	win = fx_reserve(WIN_SPAN);
	heap_init();
	struct kmem_stats st = stats();
	nclasses = st.nclasses;
	CHECK(nclasses >= 2 && nclasses <= 256, "nclasses %u", nclasses);
	for (unsigned c = 1; c < nclasses; c++) {
		struct kmem_class_stats s = fx_class_stats(c);
		class_size[c] = s.object_size;
		class_pages[c] = s.span_pages;
		if (s.span_pages > max_class_pages)
			max_class_pages = s.span_pages;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	input_no++;
	trace_n = 0;
	heap_init();
	nlive = 0;
	nghost = 0;
	nchecks = 0;
	next_id = input_no << 32;
	memset(cs, 0, sizeof cs);
	dead_cache = NULL;
	heap_changed();
	trace("input %lu: %zu bytes", input_no, size);

	struct in in = {.d = data, .n = size, .i = 0};
	for (unsigned ops = 0; in.i < in.n && ops < MAX_OPS; ops++)
		do_op(&in);

	/* The end: everything intact, consistent, then all freed and back. */
	for (size_t i = 0; i < nlive; i++)
		verify(&live[i], "end of input");
	check_heap("end of input");
	while (nlive)
		free_obj(nlive - 1, (uint8_t)nlive);
	for (unsigned k = 0; k < NCACHE; k++)
		if (cs[k].k) {
			int rc = kmem_cache_destroy(cs[k].k);
			trace("kmem_cache_destroy(%s) = %d", cname[k], rc);
			CHECK(rc == 0, "kmem_cache_destroy(%s), empty, = %d", cname[k], rc);
			memset(&cs[k], 0, sizeof cs[k]);
		}
	heap_changed();
	trace("kmem_reclaim (final)");
	kmem_reclaim();
	check_faults("final reclaim");
	struct kmem_stats st = stats();
	CHECK(st.pages_free + st.pages_metadata == st.pages_managed && st.large_objects == 0 &&
	              st.page_runs == 0 && st.pages_small == 0,
	      "pages not all back: free %llu + metadata %llu != managed %llu (small %llu, large "
	      "%llu, runs %llu)",
	      (unsigned long long)st.pages_free, (unsigned long long)st.pages_metadata,
	      (unsigned long long)st.pages_managed, (unsigned long long)st.pages_small,
	      (unsigned long long)st.pages_large, (unsigned long long)st.pages_runs);
	check_class_counts("final");
	check_heap("final");
	return 0;
}
