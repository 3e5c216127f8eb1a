/*
 * tests/latency/latency.c - worst-case and percentile cost per operation
 * under adversarial patterns (make latency; make test-latency runs the
 * short version).  tests/latency/run.py drives it.
 *
 *     latency --list [--quick]      scenarios and the arguments to run
 *     latency SCENARIO ARG          runs one, prints one JSON line per op
 *
 * A scenario is one function: it builds the heap it needs, then wraps each
 * operation it measures in lat_begin() / lat_end().  lat_end records the
 * operation's cost three ways:
 *   cycles        the time-stamp counter around it (native runs; noisy,
 *                 reported, never asserted);
 *   instructions  under callgrind (run.py), from a profile dump per
 *                 operation (the first LAT_DUMPS of each op);
 *   steps         the operation's work in a unit the scenario chooses and
 *                 can prove a bound for (summary nodes searched, words and
 *                 nodes updated, hook calls...), deterministic: each
 *                 operation's steps are checked against the bound the
 *                 scenario passes, and any excess fails the run (exit 1).
 * (lat_stop() ends the measured part early, when reading the steps costs
 * something.)  To add a scenario: write
 *     static void scen_x(struct lat *L, uint64_t arg)
 * and add a line to the table at the end (name, function, what ARG is, the
 * arguments of the short and of the full run).
 *
 * The heap lives in a window of address space standing for physical
 * memory (PROT_NONE, MAP_NORESERVE; the usable parts made RW), as in the
 * host tests; the arch is the shim's (arch/host/shim_arch.c: threads are
 * CPUs), and the "oom" scenario uses the shim's own heap and OOM hook.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define LAT_CALLGRIND 1
#endif
#endif
#ifndef LAT_CALLGRIND
#define RUNNING_ON_VALGRIND 0
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(s) ((void)(s))
#endif

#include "mtypes.h"
#include "shim_arch.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define PG KMEM_PAGE_SIZE
#define LAT_DUMPS 256 /* callgrind dumps (instruction counts) per op */

/* ------------------------------------------------------------------------
 * Measurement
 */

struct lat_op {
	const char *name;
	uint64_t *cycles, *ns, *steps;
	uint32_t *dumps;        /* callgrind dump numbers of its first LAT_DUMPS */
	size_t n, cap, ndumps;
	uint64_t worst_bound;   /* the bound at the op with the largest steps */
	double worst_ratio;     /* max steps / bound */
	uint64_t violations;
	char why[96];           /* the bound's formula */
};

struct lat {
	const char *scenario;
	uint64_t arg;
	struct lat_op ops[16];
	size_t nops;
	uint64_t t0, ns0, cyc, ns; /* at lat_begin; the last operation's cost */
	uint32_t dumps;         /* dumps so far (callgrind numbers them from 1) */
	bool valgrind, stopped;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_cycles(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#else
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
#endif
}

static struct lat_op *lat_op(struct lat *L, const char *name)
{
	for (size_t i = 0; i < L->nops; i++)
		if (strcmp(L->ops[i].name, name) == 0)
			return &L->ops[i];
	if (L->nops == sizeof(L->ops) / sizeof(L->ops[0])) {
		fprintf(stderr, "latency: too many ops\n");
		exit(2);
	}
	struct lat_op *o = &L->ops[L->nops++];
	memset(o, 0, sizeof(*o));
	o->name = name;
	return o;
}

/* Starts one measured operation (nothing else may run until lat_end). */
static void lat_begin(struct lat *L)
{
	L->stopped = false;
	if (L->valgrind)
		CALLGRIND_ZERO_STATS;
	L->ns0 = now_ns();
	L->t0 = now_cycles();
}

/* Ends the measured part of an operation (when reading its steps costs
 * something that must not count); lat_end does it if this was not
 * called. */
static void lat_stop(struct lat *L)
{
	L->cyc = now_cycles() - L->t0;
	L->ns = now_ns() - L->ns0;
	if (L->valgrind) /* first: the dump holds the operation and no more */
		CALLGRIND_DUMP_STATS_AT("lat");
	L->stopped = true;
}

/* Ends it: `op` names it, `steps` is its work, `bound` the most that work
 * may be (proved in the scenario), `why` the bound's formula. */
static void lat_end(struct lat *L, const char *op, uint64_t steps, uint64_t bound,
                    const char *why)
{
	if (!L->stopped)
		lat_stop(L);
	uint64_t c = L->cyc, t = L->ns;
	uint32_t dump = ++L->dumps;
	struct lat_op *o = lat_op(L, op);
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 64;
		o->cycles = realloc(o->cycles, o->cap * sizeof(uint64_t));
		o->ns = realloc(o->ns, o->cap * sizeof(uint64_t));
		o->steps = realloc(o->steps, o->cap * sizeof(uint64_t));
		o->dumps = realloc(o->dumps, o->cap * sizeof(uint32_t));
		if (!o->cycles || !o->ns || !o->steps || !o->dumps) {
			perror("latency");
			exit(2);
		}
	}
	if (L->valgrind && o->ndumps < LAT_DUMPS)
		o->dumps[o->ndumps++] = dump;
	o->cycles[o->n] = c;
	o->ns[o->n] = t;
	o->steps[o->n] = steps;
	o->n++;
	double r = bound ? (double)steps / (double)bound : steps ? 1e9 : 0;
	if (r > o->worst_ratio || o->n == 1) {
		o->worst_ratio = r;
		o->worst_bound = bound;
	}
	if (steps > bound) {
		o->violations++;
		fprintf(stderr, "latency: %s %s: %" PRIu64 " steps, bound %" PRIu64 " (%s)\n",
		        L->scenario, op, steps, bound, why);
	}
	snprintf(o->why, sizeof o->why, "%s", why);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* One JSON line per op; returns the number of bound violations. */
static uint64_t lat_report(struct lat *L)
{
	uint64_t bad = 0;
	for (size_t i = 0; i < L->nops; i++) {
		struct lat_op *o = &L->ops[i];
		qsort(o->cycles, o->n, sizeof(uint64_t), cmp_u64);
		qsort(o->ns, o->n, sizeof(uint64_t), cmp_u64);
		uint64_t smax = 0;
		for (size_t j = 0; j < o->n; j++)
			smax = o->steps[j] > smax ? o->steps[j] : smax;
		qsort(o->steps, o->n, sizeof(uint64_t), cmp_u64);
		printf("{\"scenario\": \"%s\", \"arg\": %" PRIu64 ", \"op\": \"%s\", \"n\": %zu, "
		       "\"cycles_p50\": %" PRIu64 ", \"cycles_p90\": %" PRIu64 ", \"cycles_p99\": %" PRIu64
		       ", \"cycles_max\": %" PRIu64 ", \"ns_p50\": %" PRIu64 ", \"ns_p99\": %" PRIu64
		       ", \"ns_max\": %" PRIu64 ", \"steps_p50\": %" PRIu64 ", \"steps_max\": %" PRIu64
		       ", \"bound_at_worst\": %" PRIu64 ", \"worst_ratio\": %.4f, \"violations\": %" PRIu64
		       ", \"bound\": \"%s\", \"dumps\": [",
		       L->scenario, L->arg, o->name, o->n, pct(o->cycles, o->n, 0.5),
		       pct(o->cycles, o->n, 0.9), pct(o->cycles, o->n, 0.99), o->cycles[o->n - 1],
		       pct(o->ns, o->n, 0.5), pct(o->ns, o->n, 0.99), o->ns[o->n - 1],
		       pct(o->steps, o->n, 0.5), smax, o->worst_bound, o->worst_ratio, o->violations,
		       o->why);
		for (size_t j = 0; j < o->ndumps; j++)
			printf("%s%" PRIu32, j ? ", " : "", o->dumps[j]);
		printf("]}\n");
		bad += o->violations;
		free(o->cycles);
		free(o->ns);
		free(o->steps);
		free(o->dumps);
	}
	fflush(stdout);
	return bad;
}

/* ------------------------------------------------------------------------
 * A heap over a window standing for physical memory [0, span)
 */

static char *win;

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void win_reserve(uint64_t span)
{
	char *w = mmap(NULL, span + GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	               -1, 0);
	if (w == MAP_FAILED) {
		fprintf(stderr, "latency: no %" PRIu64 " GiB window%s\n", (uint64_t)((span + GIB) >> 30),
		        RUNNING_ON_VALGRIND ? " under valgrind" : "");
		exit(2);
	}
	win = (char *)(((uintptr_t)w + GIB - 1) & ~(uintptr_t)(GIB - 1));
}

static void win_usable(uint64_t phys, uint64_t len)
{
	if (mprotect(win + phys, len, PROT_READ | PROT_WRITE))
		die("latency: mprotect");
}

/* A failed expectation ends the run (exit 2), with a line on stderr. */
static void must(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "latency: expected %s\n", what);
		exit(2);
	}
}

/* A heap of one usable region [base, base + len) in a window of `span`. */
static void heap_one(uint64_t span, uint64_t base, uint64_t len)
{
	win_reserve(span);
	win_usable(base, len);
	struct kmem_region r = {base, len, KMEM_REGION_USABLE, 0};
	struct kmem_config cfg = {.regions = &r, .nregions = 1, .direct_map_offset = (uintptr_t)win,
	                          .max_cpus = 8};
	if (kmem_init(&cfg)) {
		fprintf(stderr, "latency: kmem_init failed\n");
		exit(2);
	}
	kmem_set_fault_hook(shim_fault_print);
}

/* kmem_check() (a fault aborts, with its line on stderr). */
static void heap_check(void)
{
	unsigned long n = kmem_check();
	if (n) {
		fprintf(stderr, "latency: kmem_check: %lu problems\n", n);
		exit(2);
	}
}

static unsigned long heap_flags;

static void heap_lock(void)
{
	heap_flags = heaps_lock_all();
}

static void heap_unlock(void)
{
	heaps_unlock_all(heap_flags);
}

/* The levels a search walks (pagealloc.c, "Cost"): H - 5. */
static uint64_t levels(void)
{
	return mheap_.heap[0]->sum_level - SUM_LEAF_LEVEL + 1;
}

/* pagealloc.c's bound on one search, and a failed kpage_alloc searches
 * twice (before and after the sweep-and-retry). */
static uint64_t search_bound(void)
{
	return 48 * levels() + 7;
}

/* pagealloc.c's bound on one update of n pages (pages_set_locked): words
 * n/64 + 2; arena nodes per level n/2^L + 2 (levels 7..14) plus 16 per
 * arena touched; above, per level up to the hull 7 merges for each of
 * n/2^L + 2 nodes.  Rounded up: */
static uint64_t update_bound(uint64_t n)
{
	uint64_t above = mheap_.heap[0]->sum_level > SUM_ARENA_TOP ? mheap_.heap[0]->sum_level - SUM_ARENA_TOP : 0;
	return n / 16 + 40 + 16 * (n >> SUM_ARENA_TOP) + 14 * above + 7 * (n >> (SUM_ARENA_TOP + 1));
}

/* ------------------------------------------------------------------------
 * Scenarios
 */

/* Fragments the pool: every page in use but, in each group of `every`
 * pages from the pool's start, the last `nfree` (pfn % every >= every -
 * nfree), and the `topfree` pages at a multiple of 64 at the top, apart
 * from the rest.  Returns the first of those. */
static uint64_t fragment(uint64_t every, uint64_t nfree, uint64_t topfree)
{
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	uint64_t lo = 0, end = mb >> 12;
	heap_lock();
	while (!pages_all_free_locked(lo, 1))
		lo++;
	uint64_t top = (end & ~63ull) - topfree;
	pages_set_locked(lo, end - lo, false);
	uint64_t given = 0;
	for (uint64_t g = align_up(lo, every); g + 2 * every <= top; g += every) {
		pages_set_locked(g + every - nfree, nfree, true);
		given += nfree;
	}
	if (topfree)
		pages_set_locked(top, topfree, true);
	given += topfree;
	mheap_.heap[0]->pages_free -= end - lo - given;
	mheap_.heap[0]->pages_metadata += end - lo - given;
	heap_unlock();
	heap_check();
	return top;
}

/* Gives back what fragment() took. */
static void unfragment(void)
{
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	heap_lock();
	uint64_t end = mb >> 12, back = 0;
	for (uint64_t p = 1; p < end; p++) {
		struct heap_arena *a = arena_of_pfn(p);
		uint64_t i = p & (ARENA_PAGES - 1);
		if (a && pfn_is_managed(p) && !((a->pagebits[i >> 6] >> (i & 63)) & 1) && !span_of_pfn(p)) {
			pages_set_locked(p, 1, true);
			back++;
		}
	}
	mheap_.heap[0]->pages_free += back;
	mheap_.heap[0]->pages_metadata -= back;
	heap_unlock();
	heap_check();
}

/* Aligned search on worst-case fragmented heaps of ARG MiB, where every
 * node has a long enough run but no aligned one, so a search that prunes
 * by the longest run alone looks at every word:
 *   every other page in use: 1 page aligned to 8 KiB (the case),
 *   every fourth page in use: 3 pages aligned to 16 KiB,
 * each when nothing fits (kpage_alloc returns NULL after both searches of
 * its attempt) and when only 64 pages at the top fit (then kpage_free);
 * and 64 pages aligned to 256 KiB at the top.  Steps: summary nodes the
 * searches read (pages_find_steps()), bound 48 * levels + 7 per search
 * (pagealloc.c, "Cost"); kpage_free: update steps (update_bound). */
static void scen_frag(struct lat *L, uint64_t mib)
{
	static const struct {
		uint64_t every, nfree, n, align;
		const char *none, *top;
	} pat[] = {
		{2, 1, 1, 8 * KIB, "kpage_alloc(1, 8 KiB) none fits", "kpage_alloc(1, 8 KiB) at the top"},
		{4, 3, 3, 16 * KIB, "kpage_alloc(3, 16 KiB) none fits", "kpage_alloc(3, 16 KiB) at the top"},
		{4, 3, 64, 256 * KIB, NULL, "kpage_alloc(64, 256 KiB) at the top"},
	};
	const uint64_t base = 16 * MIB;
	heap_one(base + mib * MIB + 64 * MIB, base, mib * MIB);
	char why2[96], why1[96];
	snprintf(why2, sizeof why2, "2 searches x (48 x %" PRIu64 " levels + 7)", levels());
	snprintf(why1, sizeof why1, "48 x %" PRIu64 " levels + 7", levels());
	for (size_t i = 0; i < sizeof(pat) / sizeof(pat[0]); i++) {
		if (pat[i].none) {
			fragment(pat[i].every, pat[i].nfree, 0);
			for (int rep = 0; rep < 40; rep++) {
				uint64_t s0 = pages_find_steps();
				lat_begin(L);
				void *p = kpage_alloc(pat[i].n, pat[i].align, 0);
				lat_end(L, pat[i].none, pages_find_steps() - s0, 2 * search_bound(), why2);
				must(!p, "no aligned run");
			}
			unfragment();
		}
		uint64_t top = fragment(pat[i].every, pat[i].nfree, 64);
		for (int rep = 0; rep < 40; rep++) {
			uint64_t s0 = pages_find_steps();
			lat_begin(L);
			void *p = kpage_alloc(pat[i].n, pat[i].align, 0);
			lat_end(L, pat[i].top, pages_find_steps() - s0, search_bound(), why1);
			must(p && kmem_virt_to_phys(p) == top << 12, "the run at the top");
			uint64_t u0 = pages_update_steps();
			lat_begin(L);
			kpage_free(p, pat[i].n);
			lat_end(L, "kpage_free (fragmented)", pages_update_steps() - u0,
			        update_bound(pat[i].n), "n/16 + 40 + 14 x levels above the arenas");
		}
		unfragment();
	}
}

/* kmem_hot_add of ARG GiB in new arenas (three regions one after another
 * above a 32 MiB heap; one under valgrind), then again (refused: overlap) and once over one of
 * its own metadata pages (refused).  Steps: arena, word and node steps of
 * the page allocator (pages_update_steps()); bound 16 per arena touched +
 * 16 per summary level above the arenas + 1200 (two partial arenas). */
static void scen_hotadd(struct lat *L, uint64_t gib)
{
	const uint64_t len = gib * GIB, first = 8 * GIB;
	int reps = L->valgrind ? 1 : 3; /* valgrind has less address space */
	heap_one(first + (uint64_t)reps * len + GIB, 16 * MIB, 32 * MIB);
	char why[96];
	for (int rep = 0; rep < reps; rep++) {
		uint64_t at = first + (uint64_t)rep * len;
		win_usable(at, len);
		struct kmem_region r = {at, len, KMEM_REGION_USABLE, 0};
		uint64_t arenas = len >> ARENA_SHIFT;
		uint64_t u0 = pages_update_steps();
		lat_begin(L);
		long added = kmem_hot_add(&r);
		uint64_t above = mheap_.heap[0]->sum_level - SUM_ARENA_TOP;
		snprintf(why, sizeof why, "16 x %" PRIu64 " arenas + 16 x %" PRIu64 " levels + 1200",
		         arenas, above);
		lat_end(L, "kmem_hot_add", pages_update_steps() - u0, 16 * arenas + 16 * above + 1200, why);
		must(added > 0, "the hot-add to succeed");
		u0 = pages_update_steps();
		lat_begin(L);
		long again = kmem_hot_add(&r);
		lat_end(L, "kmem_hot_add again (refused)", pages_update_steps() - u0, 16 * arenas + 1200,
		        "16 x arenas + 1200");
		struct kmem_region meta = {at + PG, PG, KMEM_REGION_USABLE, 0};
		u0 = pages_update_steps();
		lat_begin(L);
		long over = kmem_hot_add(&meta);
		lat_end(L, "kmem_hot_add over its metadata (refused)", pages_update_steps() - u0, 16,
		        "a page: one arena, one word");
		must(again == -KMEM_EINVAL && over == -KMEM_EINVAL, "the overlapping hot-adds refused");
	}
	heap_check();
}

/* Page runs on a heap of ARG MiB: 1..512 pages, aligned to 1..64 pages,
 * some under a ceiling at half the heap, about half the heap live; each
 * kpage_alloc and kpage_free measured.  Steps: search plus update
 * (pages_find_steps() + pages_update_steps()); bound: the search's twice
 * (a failed attempt searches again) plus the update's for n pages. */
static void scen_pages(struct lat *L, uint64_t mib)
{
	const uint64_t base = 16 * MIB;
	heap_one(base + mib * MIB + 64 * MIB, base, mib * MIB);
	enum { LIVE = 256 };
	struct {
		void *p;
		size_t n;
	} live[LIVE] = {{0}};
	uint64_t rng = 0x5eed;
	uint64_t ops = mib * 40;
	for (uint64_t i = 0; i < ops; i++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		size_t slot = rng % LIVE;
		if (live[slot].p) {
			uint64_t u0 = pages_update_steps();
			lat_begin(L);
			kpage_free(live[slot].p, live[slot].n);
			lat_end(L, "kpage_free", pages_update_steps() - u0, update_bound(live[slot].n),
			        "n/16 + 40 + 14 x levels above the arenas");
			live[slot].p = NULL;
			continue;
		}
		size_t n = 1 + (rng >> 16) % (rng & 0x100 ? 512 : 16);
		size_t align = PG << ((rng >> 32) % 7);
		uint64_t ceil = (rng >> 40) % 4 == 0 ? base + mib * MIB / 2 : 0;
		uint64_t s0 = pages_find_steps() + pages_update_steps();
		lat_begin(L);
		void *p = kpage_alloc(n, align, ceil);
		lat_end(L, "kpage_alloc", pages_find_steps() + pages_update_steps() - s0,
		        2 * search_bound() + update_bound(n),
		        "2 x (48 x levels + 7) + n/16 + 40 + 14 x levels above the arenas");
		live[slot].p = p;
		live[slot].n = n;
	}
	for (size_t i = 0; i < LIVE; i++)
		if (live[i].p)
			kpage_free(live[i].p, live[i].n);
	heap_check();
}

/* The OOM hook as the shim uses it (its own heap, 64 MiB to start, growing
 * by hot-add): requests no hot-add could help.  A 64 MiB ceiling once the
 * memory below it is used, and 64 bytes aligned to 1 TiB (past the
 * window).  Steps: hook calls + 1000 per chunk the shim hot-added; bound 1
 * (one call, no growth).  ARG is unused. */
static void *below_64m(void)
{
	return kpage_alloc(16, PG, 64 * MIB);
}

static void *aligned_1t(void)
{
	return kmalloc_aligned(64, (size_t)1 << 40);
}

/* One request that must fail: its hook calls and the shim's growth. */
static void oom_op(struct lat *L, const char *op, void *(*request)(void))
{
	struct shim_info a, b;
	shim_get_info(&a);
	lat_begin(L);
	void *p = request();
	lat_stop(L);
	shim_get_info(&b);
	lat_end(L, op, (b.oom_calls - a.oom_calls) + 1000ull * (b.grows - a.grows), 1,
	        "one hook call, no hot-add");
	must(!p, "the request to fail");
}

static void scen_oom(struct lat *L, uint64_t arg)
{
	(void)arg;
	must(shim_heap_ready(), "the shim's heap");
	while (below_64m())
		; /* below the ceiling: all used */
	for (int rep = 0; rep < 8; rep++) {
		oom_op(L, "kpage_alloc(16, ceiling 64 MiB) fails", below_64m);
		oom_op(L, "kmalloc_aligned(64, 1 TiB) fails", aligned_1t);
	}
}

/* ------------------------------------------------------------------------
 * The table: name, function, ARG's meaning, short run's ARGs, full run's.
 */
struct scenario {
	const char *name;
	void (*fn)(struct lat *L, uint64_t arg);
	const char *arg_is;
	uint64_t quick[4], full[4]; /* 0-terminated */
};

static const struct scenario scenarios[] = {
	{"frag", scen_frag, "heap MiB", {64, 256}, {64, 256, 1024}},
	{"hotadd", scen_hotadd, "region GiB", {1, 16}, {1, 16, 64}},
	{"pages", scen_pages, "heap MiB", {64}, {64, 1024}},
	{"oom", scen_oom, "-", {1}, {1}},
};

int main(int argc, char **argv)
{
	size_t ns = sizeof(scenarios) / sizeof(scenarios[0]);
	if (argc >= 2 && strcmp(argv[1], "--list") == 0) {
		bool quick = argc >= 3 && strcmp(argv[2], "--quick") == 0;
		for (size_t i = 0; i < ns; i++) {
			const uint64_t *a = quick ? scenarios[i].quick : scenarios[i].full;
			for (int j = 0; j < 4 && a[j]; j++)
				printf("%s %" PRIu64 " %s\n", scenarios[i].name, a[j], scenarios[i].arg_is);
		}
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: latency --list [--quick] | latency SCENARIO ARG\n");
		return 2;
	}
	for (size_t i = 0; i < ns; i++) {
		if (strcmp(argv[1], scenarios[i].name) != 0)
			continue;
		static struct lat L;
		L.scenario = scenarios[i].name;
		L.arg = strtoull(argv[2], NULL, 0);
		L.valgrind = RUNNING_ON_VALGRIND;
		scenarios[i].fn(&L, L.arg);
		return lat_report(&L) ? 1 : 0;
	}
	fprintf(stderr, "latency: no scenario '%s'\n", argv[1]);
	return 2;
}
