/*
 * boot/workload.c - the demo workload: every CPU at once, and every CPU's
 * timer interrupt, allocating and freeing through spanalloc.
 *
 * Per CPU (struct cpu_work, from kzalloc):
 *   - a table of NSLOTS live objects.  Each step picks a slot: an empty
 *     one gets a new object of a random kind (kmalloc over every size
 *     class, kzalloc/kcalloc, kmalloc_aligned, one of three object caches,
 *     a page run with random alignment and sometimes a physical ceiling,
 *     a large kmalloc), filled with a pattern of (seed, offset); a full one
 *     is checked and then freed here, or krealloc'ed, or handed to another
 *     CPU through a mailbox to be checked and freed there (a remote free).
 *     Every 4096 steps a kmem_cache_shrink, every 16384 a kmem_reclaim.
 *   - mailboxes: one single-producer single-consumer ring per ordered pair
 *     of CPUs (ring[src][dst], lock-free, memory from kmalloc_aligned);
 *     a full ring means the object is freed locally instead.
 *   - IRQ_SLOTS objects owned by the timer interrupt: each tick checks and
 *     frees two of them and allocates two new ones (kmalloc or a cache),
 *     in interrupt context, on top of whatever the CPU was doing -- which
 *     may be in the middle of an allocation: this is what proves the
 *     interrupt-disable protection of the per-CPU caches.
 * Any pattern mismatch, misalignment, wrong usable size or unexpected NULL
 * fails the run at once.
 *
 * End of the run: barrier; every CPU drains its inbox (no producer is left)
 * and frees its table; barrier; every CPU stops its timer and frees the
 * interrupt's objects; APs go offline (kmem_cpu_offline, cache flushed)
 * and halt with interrupts off.  The BSP then frees the APs' per-CPU
 * areas, stacks and work areas, the mailboxes and caches, goes offline
 * itself, runs kmem_reclaim and kmem_check, and requires every page back:
 * pages_free + pages_metadata == pages_managed.
 *
 * Free memory, as a kernel's `free` command would report it: the exact
 * figure kmem_free_pages() gives on the fresh heap (before) and after the
 * teardown (after); built with FREE_PAGES_DRAIN=1, the proof that it is
 * exact: kpage_alloc(1, 0, 0) must then hand out exactly `after` pages
 * (off by default: at 512 MiB that is 125,000 runs, 14 s under TCG; the
 * host tests, tests/test_freemem.c, prove it on every run).  before ==
 * after is required (FREE_PAGES_MUST_MATCH=1, the default): the metadata
 * pages the workload took from the pool go back once they are empty and a
 * grace period has passed, so after the teardown the BSP reclaims and
 * reports a grace period (the APs are halted: quiescent) before it
 * counts.  FREE_PAGES_MUST_MATCH=0 only reports a shortfall that pool
 * pages kept as metadata account for.
 */
#include "demo.h"

#ifndef STRESS_OPS
#define STRESS_OPS 30000 /* steps per CPU */
#endif
#define NSLOTS 256
#define IRQ_SLOTS 16
#define RING_CAP 128
#define MIN_IRQ_ALLOCS 20 /* per CPU, before it may finish */
#ifndef FREE_PAGES_DRAIN
#define FREE_PAGES_DRAIN 0
#endif
#ifndef FREE_PAGES_MUST_MATCH
#define FREE_PAGES_MUST_MATCH 1
#endif

enum kind { K_NONE, K_KMALLOC, K_ZALLOC, K_ALIGNED, K_CACHE, K_LARGE, K_PAGES, K_NKINDS };
static const char *const kind_names[K_NKINDS] = {"none", "kmalloc", "kzalloc", "aligned",
                                                 "cache", "large", "pages"};

struct obj {
	void *p;
	uint32_t size;  /* bytes filled (requested size; pages: npages * 4096) */
	uint8_t kind;
	uint8_t cache;  /* K_CACHE: index into W.cache */
	uint8_t owner;  /* CPU that allocated it */
	uint8_t pad;
	uint64_t seed;
};

struct ring {
	_Alignas(64) _Atomic uint32_t head; /* producer */
	_Alignas(64) _Atomic uint32_t tail; /* consumer */
	_Alignas(64) struct obj e[RING_CAP];
};

struct cpu_work {
	unsigned cpu;
	uint64_t rng, irq_rng;
	struct obj *slots;
	struct obj irq_objs[IRQ_SLOTS];
	unsigned irq_next;
	_Atomic int irq_on;
	uint64_t ops, allocs, frees, sent, remote_frees, ring_full, reallocs, ceiling_nulls;
	uint64_t shrinks, reclaims, by_kind[K_NKINDS];
	_Atomic uint64_t irq_allocs, irq_frees;
	uint64_t stress_us, stack_used;
};

#define NCACHES 3
static const struct {
	const char *name;
	size_t size, align;
	bool ctor;
} cache_spec[NCACHES] = {
	{"wl-node", 24, 0, false},
	{"wl-req", 200, 64, false},
	{"wl-buf", 1500, 0, true},
};

/* The workload's control block: static, fixed size; everything it points
 * to comes from spanalloc. */
static struct {
	unsigned ncpus;
	struct percpu **cpus;
	struct cpu_work **work;
	struct ring **rings; /* [src * ncpus + dst] */
	struct kmem_cache *cache[NCACHES];
	uint32_t *class_size; /* [nclasses], class_size[0] = 0 */
	unsigned nclasses;
	_Atomic unsigned bar_count, bar_gen;
	_Atomic uint64_t ctor_calls;
	uint64_t t_stress_start;
	uint64_t ceiling; /* some page runs must end below it: lowest RAM + 64 MiB */
	uint64_t free_before, free_after; /* kmem_free_pages(): fresh heap, teardown */
	uint64_t free_before_raw, meta_before, meta_used_before; /* kmem_stats then */
} W;

#define CTOR_MAGIC 0xc7012345feedf00dull

static void buf_ctor(void *obj)
{
	*(uint64_t *)obj = CTOR_MAGIC;
	atomic_fetch_add_explicit(&W.ctor_calls, 1, memory_order_relaxed);
}

/* --- patterns -------------------------------------------------------------- */

static inline uint64_t pat_word(uint64_t seed, size_t i)
{
	uint64_t x = seed ^ (i * 0x9e3779b97f4a7c15ull);
	x ^= x >> 29;
	return x;
}

/* Word indices written for an object of n bytes: all of them up to
 * PATTERN_FULL_MAX, else the first and last 64 and every 64th. */
static inline bool pat_covers(size_t i, size_t nw)
{
	return nw * 8 <= PATTERN_FULL_MAX || i < 64 || i + 64 >= nw || (i & 63) == 0;
}

void pattern_fill(void *p, size_t n, uint64_t seed)
{
	uint64_t *w = p;
	size_t nw = n / 8;
	for (size_t i = 0; i < nw; i++)
		if (pat_covers(i, nw))
			w[i] = pat_word(seed, i);
	uint64_t last = pat_word(seed, nw);
	for (size_t b = nw * 8; b < n; b++)
		((uint8_t *)p)[b] = (uint8_t)(last >> (8 * (b & 7)));
}

bool pattern_check(const void *p, size_t n, uint64_t seed, size_t *bad_off)
{
	const uint64_t *w = p;
	size_t nw = n / 8;
	for (size_t i = 0; i < nw; i++)
		if (pat_covers(i, nw) && w[i] != pat_word(seed, i)) {
			*bad_off = i * 8;
			return false;
		}
	uint64_t last = pat_word(seed, nw);
	for (size_t b = nw * 8; b < n; b++)
		if (((const uint8_t *)p)[b] != (uint8_t)(last >> (8 * (b & 7)))) {
			*bad_off = b;
			return false;
		}
	return true;
}

/* --- objects --------------------------------------------------------------- */

static unsigned my_cpu(void)
{
	return arch_cpu_id();
}

static void obj_check(const struct obj *o, const char *where)
{
	size_t off;
	if (!pattern_check(o->p, o->size, o->seed, &off))
		kfail("cpu %u (%s): pattern broken in %s object %p size %u at +%zu (allocated on cpu %u)",
		      my_cpu(), where, kind_names[o->kind], o->p, o->size, off, o->owner);
}

static void obj_free(struct obj *o, uint64_t r)
{
	switch (o->kind) {
	case K_CACHE:
		if (r & 4)
			kfree(o->p); /* a cache's objects may also go through kfree */
		else
			kmem_cache_free(W.cache[o->cache], o->p);
		break;
	case K_PAGES:
		kpage_free(o->p, o->size / KMEM_PAGE_SIZE);
		break;
	default:
		kfree(o->p);
		break;
	}
	o->p = NULL;
	o->kind = K_NONE;
}

static void expect_align(const void *p, size_t align, const char *what, size_t size)
{
	if ((uintptr_t)p & (align - 1))
		kfail("cpu %u: %s(%zu) = %p not aligned to %zu", my_cpu(), what, size, p, align);
}

static void expect_ksize(const void *p, size_t size, const char *what)
{
	size_t ks = ksize(p);
	if (ks < size)
		kfail("cpu %u: %s(%zu) = %p has ksize %zu", my_cpu(), what, size, p, ks);
}

static void null_fail(const char *what, size_t size)
{
	struct kmem_stats st;
	kmem_get_stats(&st);
	kfail("cpu %u: %s(%zu) returned NULL with %lu pages free", my_cpu(), what, size,
	      (unsigned long)st.pages_free);
}

/* A small kmalloc over a random size class (every class equally likely). */
static size_t random_small_size(uint64_t r)
{
	unsigned cls = 1 + (unsigned)(r % (W.nclasses - 1));
	uint32_t lo = W.class_size[cls - 1], hi = W.class_size[cls];
	return lo + 1 + (size_t)((r >> 20) % (hi - lo));
}

/* Allocates a random object into o (thread context). */
static void obj_alloc(struct cpu_work *w, struct obj *o)
{
	uint64_t r = rng_next(&w->rng), r2 = rng_next(&w->rng);
	unsigned pick = (unsigned)(r % 100);
	size_t size;
	void *p;
	o->cache = 0;
	if (pick < 50) {
		size = random_small_size(r2);
		p = kmalloc(size);
		if (!p)
			null_fail("kmalloc", size);
		uint32_t cs = W.class_size[kmem_size_class(size)];
		if (ksize(p) != cs)
			kfail("cpu %u: ksize(kmalloc(%zu)) = %zu, class size %u", my_cpu(), size, ksize(p), cs);
		size_t nat = cs & -cs;
		expect_align(p, nat < 8 ? 8 : nat, "kmalloc", size);
		o->kind = K_KMALLOC;
	} else if (pick < 58) {
		size = 1 + (size_t)(r2 % 8192);
		if (r2 & (1ull << 40)) {
			size_t n = 1 + (size_t)((r2 >> 20) % 16), m = size / n + 1;
			size = n * m;
			p = kcalloc(n, m);
		} else {
			p = kzalloc(size);
		}
		if (!p)
			null_fail("kzalloc/kcalloc", size);
		for (size_t i = 0; i < size; i++)
			if (((uint8_t *)p)[i])
				kfail("cpu %u: kzalloc/kcalloc(%zu) = %p not zero at +%zu", my_cpu(), size, p, i);
		expect_ksize(p, size, "kzalloc");
		o->kind = K_ZALLOC;
	} else if (pick < 68) {
		size_t align = (r2 & 7) == 0 ? (size_t)1 << (13 + (r2 >> 8) % 4) /* 8..64 KiB */
		                             : (size_t)1 << (3 + (r2 >> 8) % 10); /* 8..4096 */
		size = 1 + (size_t)((r2 >> 16) % (align < 16384 ? 2 * align : 16384));
		p = kmalloc_aligned(size, align);
		if (!p)
			null_fail("kmalloc_aligned", size);
		expect_align(p, align, "kmalloc_aligned", size);
		expect_ksize(p, size, "kmalloc_aligned");
		o->kind = K_ALIGNED;
	} else if (pick < 83) {
		unsigned c = (unsigned)(r2 % NCACHES);
		p = kmem_cache_alloc(W.cache[c]);
		size = cache_spec[c].size;
		if (!p)
			null_fail("kmem_cache_alloc", size);
		expect_align(p, cache_spec[c].align ? cache_spec[c].align : 8, "kmem_cache_alloc", size);
		if (cache_spec[c].ctor && *(uint64_t *)p != CTOR_MAGIC)
			kfail("cpu %u: cache %s object %p: constructor did not run", my_cpu(),
			      cache_spec[c].name, p);
		o->kind = K_CACHE;
		o->cache = (uint8_t)c;
	} else if (pick < 91) {
		size_t npages = 1 + (size_t)(r2 % 8);
		size_t align = KMEM_PAGE_SIZE << ((r2 >> 8) % 4 == 0 ? (r2 >> 12) % 5 : 0);
		uint64_t ceiling = (r2 >> 20) % 8 == 0 ? W.ceiling : 0;
		size = npages * KMEM_PAGE_SIZE;
		p = kpage_alloc(npages, align, ceiling);
		if (!p) {
			if (!ceiling)
				null_fail("kpage_alloc", npages);
			w->ceiling_nulls++;
			o->p = NULL;
			return;
		}
		uint64_t phys = kmem_virt_to_phys(p);
		if (phys & (align - 1))
			kfail("cpu %u: kpage_alloc(%zu, %zu) = %p not aligned", my_cpu(), npages, align, p);
		if (ceiling && phys + size > ceiling)
			kfail("cpu %u: kpage_alloc(%zu, max_phys 0x%lx) = phys 0x%lx, above the ceiling",
			      my_cpu(), npages, (unsigned long)ceiling, (unsigned long)phys);
		if (!ceiling) /* under the ceiling: the lowest RAM's node, by request */
			numa_note_alloc(w->cpu, p);
		o->kind = K_PAGES;
	} else {
		size = KMEM_SMALL_MAX + 1 + (size_t)(r2 % (224 * 1024));
		p = kmalloc(size);
		if (!p)
			null_fail("kmalloc (large)", size);
		expect_align(p, KMEM_PAGE_SIZE, "kmalloc (large)", size);
		expect_ksize(p, size, "kmalloc (large)");
		o->kind = K_LARGE;
	}
	if (o->kind != K_PAGES)
		numa_note_alloc(w->cpu, p);
	o->p = p;
	o->size = (uint32_t)size;
	o->owner = (uint8_t)w->cpu;
	o->seed = rng_next(&w->rng) | 1;
	pattern_fill(p, size, o->seed);
	w->allocs++;
	w->by_kind[o->kind]++;
}

/* krealloc a small kmalloc object: the common prefix must survive. */
static void obj_realloc(struct cpu_work *w, struct obj *o)
{
	size_t n = 1 + (size_t)(rng_next(&w->rng) % 16384);
	void *q = krealloc(o->p, n);
	if (!q)
		null_fail("krealloc", n);
	size_t keep = n < o->size ? n : o->size, off;
	if (!pattern_check(q, keep, o->seed, &off))
		kfail("cpu %u: krealloc(%p, %zu) = %p lost the contents at +%zu", my_cpu(), o->p, n, q, off);
	expect_ksize(q, n, "krealloc");
	o->p = q;
	o->size = (uint32_t)n;
	o->seed = rng_next(&w->rng) | 1;
	o->owner = (uint8_t)w->cpu;
	pattern_fill(q, n, o->seed);
	w->reallocs++;
}

/* --- mailboxes ------------------------------------------------------------- */

static struct ring *ring_of(unsigned src, unsigned dst)
{
	return W.rings[src * W.ncpus + dst];
}

static bool ring_push(struct ring *r, const struct obj *o)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (h - t == RING_CAP)
		return false;
	r->e[h % RING_CAP] = *o;
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return true;
}

static bool ring_pop(struct ring *r, struct obj *o)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
	if (t == h)
		return false;
	*o = r->e[t % RING_CAP];
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return true;
}

static void drain_inbox(struct cpu_work *w)
{
	struct obj o;
	for (unsigned src = 0; src < W.ncpus; src++) {
		if (src == w->cpu)
			continue;
		struct ring *r = ring_of(src, w->cpu);
		while (ring_pop(r, &o)) {
			obj_check(&o, "remote free");
			obj_free(&o, rng_next(&w->rng));
			w->remote_frees++;
		}
	}
}

/* --- the timer interrupt --------------------------------------------------- */

static void workload_tick(struct percpu *pc)
{
	struct cpu_work *w = pc->work;
	if (!w || !atomic_load_explicit(&w->irq_on, memory_order_relaxed))
		return;
	for (int k = 0; k < 2; k++) {
		struct obj *o = &w->irq_objs[w->irq_next++ % IRQ_SLOTS];
		uint64_t r = rng_next(&w->irq_rng);
		if (o->p) {
			obj_check(o, "timer interrupt");
			obj_free(o, r);
			atomic_fetch_add_explicit(&w->irq_frees, 1, memory_order_relaxed);
		}
		size_t size;
		void *p;
		if ((r & 3) == 0) {
			unsigned c = (unsigned)((r >> 8) % 2);
			p = kmem_cache_alloc(W.cache[c]);
			size = cache_spec[c].size;
			o->kind = K_CACHE;
			o->cache = (uint8_t)c;
		} else {
			size = 1 + (size_t)((r >> 8) % 2048);
			p = kmalloc(size);
			o->kind = K_KMALLOC;
		}
		if (!p)
			null_fail("kmalloc in the timer interrupt", size);
		o->p = p;
		o->size = (uint32_t)size;
		o->owner = (uint8_t)w->cpu;
		o->seed = rng_next(&w->irq_rng) | 1;
		pattern_fill(p, size, o->seed);
		atomic_fetch_add_explicit(&w->irq_allocs, 1, memory_order_relaxed);
	}
}

/* --- set-up ---------------------------------------------------------------- */

/* Waits (interrupts on) until every CPU has arrived.  A CPU that never
 * arrives fails the run with a reason well before the runner's timeout. */
#define BARRIER_TIMEOUT_US 60000000ull

static void barrier(const char *name)
{
	unsigned gen = atomic_load(&W.bar_gen);
	unsigned arrived = atomic_fetch_add(&W.bar_count, 1) + 1;
	if (arrived == W.ncpus) {
		atomic_store(&W.bar_count, 0);
		atomic_fetch_add(&W.bar_gen, 1);
		return;
	}
	uint64_t deadline = uptime_us() + BARRIER_TIMEOUT_US;
	while (atomic_load(&W.bar_gen) == gen) {
		if (uptime_us() > deadline)
			kfail("cpu %u: barrier '%s': %u of %u CPUs arrived in %llu s", my_cpu(), name,
			      atomic_load(&W.bar_count), W.ncpus, BARRIER_TIMEOUT_US / 1000000);
		arch_cpu_relax();
	}
}

static void *must(void *p, const char *what)
{
	if (!p)
		kfail("workload set-up: no memory for %s", what);
	return p;
}

void workload_init(unsigned ncpus)
{
	W.ncpus = ncpus;
	/* RAM starts at 0 on a PC, 1 GiB on aarch64's virt, 2 GiB on
	 * riscv64's: the ceiling is relative to the lowest free page (the
	 * lowest run is the one kpage_alloc takes). */
	void *low = must(kpage_alloc(1, KMEM_PAGE_SIZE, 0), "a page");
	W.ceiling = kmem_virt_to_phys(low) + (64ull << 20);
	kpage_free(low, 1);
	struct kmem_stats st;
	kmem_get_stats(&st);
	W.nclasses = st.nclasses;
	W.class_size = must(kcalloc(W.nclasses, sizeof(uint32_t)), "the class table");
	for (unsigned c = 1; c < W.nclasses; c++) {
		struct kmem_class_stats cs;
		if (kmem_get_class_stats(c, &cs) != 0)
			kfail("kmem_get_class_stats(%u) failed", c);
		W.class_size[c] = cs.object_size;
	}
	for (unsigned i = 0; i < NCACHES; i++)
		W.cache[i] = must(kmem_cache_create(cache_spec[i].name, cache_spec[i].size,
		                                    cache_spec[i].align,
		                                    cache_spec[i].ctor ? buf_ctor : NULL),
		                  "an object cache");
	W.cpus = must(kcalloc(ncpus, sizeof(*W.cpus)), "the CPU table");
	W.work = must(kcalloc(ncpus, sizeof(*W.work)), "the work table");
	W.rings = must(kcalloc((size_t)ncpus * ncpus, sizeof(*W.rings)), "the mailbox table");
	for (unsigned s = 0; s < ncpus; s++)
		for (unsigned d = 0; d < ncpus; d++)
			if (s != d) {
				struct ring *r = must(kmalloc_aligned(sizeof(struct ring), 64), "a mailbox");
				memset(r, 0, sizeof(*r));
				W.rings[s * ncpus + d] = r;
			}
	for (unsigned c = 0; c < ncpus; c++) {
		/* Each CPU's work area and object table on its own node
		 * (kmalloc_node), as a kernel places per-CPU data. */
		unsigned node = demo_numa.cpu_node[c];
		struct cpu_work *w = must(kmalloc_node(sizeof(*w), (int)node), "a work area");
		memset(w, 0, sizeof(*w));
		numa_expect_node(w, node, "kmalloc_node (a work area)");
		w->cpu = c;
		w->rng = 0x853c49e6748fea9bull ^ ((uint64_t)(c + 1) * 0x9e3779b97f4a7c15ull);
		w->irq_rng = w->rng ^ 0xda3e39cb94b95bdbull;
		w->slots = must(kmalloc_node(NSLOTS * sizeof(struct obj), (int)node), "an object table");
		memset(w->slots, 0, NSLOTS * sizeof(struct obj));
		numa_expect_node(w->slots, node, "kmalloc_node (an object table)");
		W.work[c] = w;
	}
	W.cpus[0] = &bsp_percpu;
	bsp_percpu.work = W.work[0];
	atomic_store(&W.work[0]->irq_on, 1);
	timer_hook = workload_tick;
}

struct percpu **workload_cpus(void)
{
	return W.cpus;
}

/* --- fault injection ------------------------------------------------------- */

/* Only for checking that the runner catches every way a run can fail
 * (build with KERNEL_INJECT=n, e.g. `make test-boot KERNEL_INJECT=1`; a
 * normal build has none).  The last CPU, halfway through the stress:
 *   1  bad memory access (exception report, RESULT: FAIL, fail status)
 *   2  hangs with interrupts off (the runner's timeout)
 *   3  double free (the default fault hook panics: RESULT: FAIL)
 *   4  dies with no report (x86_64: a triple fault, QEMU exits 0 under
 *      -no-reboot; see kernel_inject() of each arch) */
#ifndef KERNEL_INJECT
#define KERNEL_INJECT 0
#endif

static void maybe_inject(struct cpu_work *w)
{
	if (!KERNEL_INJECT || w->cpu != W.ncpus - 1 || w->ops != STRESS_OPS / 2)
		return;
	kprintf("inject: fault %d on cpu %u\n", KERNEL_INJECT, w->cpu);
	switch (KERNEL_INJECT) {
	case 2:
		arch_irq_save();
		for (;;)
			arch_cpu_relax();
	case 3: {
		void *p = kmalloc(40);
		kfree(p);
		kfree(p);
		break;
	}
	default:
		kernel_inject(KERNEL_INJECT);
		break;
	}
}

/* --- deferred free: a lock-free lookup table (issue #15.3) ---------------- */

/*
 * kfree_deferred at work.  A table of RCU_SLOTS pointers to objects of a
 * poisoned object cache (KMEM_DEBUG_POISON: a freed object is filled with
 * 0x6b at once).  After the stress, every CPU looks up random slots with no
 * lock and checks the object it finds (magic, its slot, a checksum of its
 * generation: poison or another object's contents fail them), and every
 * fourth step replaces a slot's object with a new one (atomic exchange)
 * and hands the old one to kmem_cache_free_deferred.  Grace periods: each
 * CPU counts a quiescent state after every lookup; whichever CPU gets the
 * driver's try-lock starts one (kmem_grace_period_start, then a snapshot
 * of the counts) or, once every other CPU's count moved (or it left the
 * phase), ends it with kmem_grace_period_done.  The exchanges, counts and
 * cookies are sequentially consistent: a lookup that starts after a CPU's
 * counted quiescent state cannot find an object unpublished before the
 * grace period started.  A mismatch is an early free: the run fails if
 * one is seen, and unless every deferred object was freed at the end.
 */
#define RCU_SLOTS 64
#define RCU_STEPS 6000 /* per CPU */
#define RCU_MAGIC 0x726375216f626a21ull
#define RCU_LEFT UINT64_MAX /* a CPU's count once it left the phase */

struct rcu_obj {
	uint64_t magic;
	uint32_t slot, gen;
	uint64_t check;
	uint64_t pad[5];
};

static struct {
	struct kmem_cache *cache;
	struct rcu_obj *_Atomic table[RCU_SLOTS];
	_Atomic uint64_t qs[BOOT_MAX_CPUS];
	_Atomic int driver;                  /* try-lock of the fields below */
	bool gp_on;
	uint64_t cookie, snap[BOOT_MAX_CPUS];
	_Atomic uint32_t gen;
	_Atomic uint64_t reads, deferred, freed, grace_periods, early;
} R;

static uint64_t rcu_check(uint32_t slot, uint32_t gen)
{
	return pat_word(RCU_MAGIC ^ slot, gen);
}

static struct rcu_obj *rcu_new(uint32_t slot)
{
	struct rcu_obj *o = kmem_cache_alloc(R.cache);
	if (!o)
		null_fail("kmem_cache_alloc (deferred-free table)", sizeof(*o));
	o->magic = RCU_MAGIC;
	o->slot = slot;
	o->gen = atomic_fetch_add(&R.gen, 1);
	o->check = rcu_check(slot, o->gen);
	return o;
}

/* Starts or ends a grace period, if no other CPU is at it. */
static void rcu_drive(unsigned cpu)
{
	if (atomic_exchange(&R.driver, 1))
		return;
	if (!R.gp_on) {
		R.cookie = kmem_grace_period_start();
		for (unsigned c = 0; c < W.ncpus; c++)
			R.snap[c] = atomic_load(&R.qs[c]);
		R.gp_on = true;
	} else {
		bool passed = true;
		for (unsigned c = 0; c < W.ncpus && passed; c++) {
			uint64_t q = atomic_load(&R.qs[c]);
			passed = c == cpu || q == RCU_LEFT || q != R.snap[c];
		}
		if (passed) {
			atomic_fetch_add(&R.freed, kmem_grace_period_done(R.cookie));
			atomic_fetch_add(&R.grace_periods, 1);
			R.gp_on = false;
		}
	}
	atomic_store(&R.driver, 0);
}

static void rcu_defer(struct rcu_obj *old)
{
	int rc = kmem_cache_free_deferred(R.cache, old);
	if (rc != 0)
		kfail("kmem_cache_free_deferred(%p) = %d", (void *)old, rc);
	atomic_fetch_add(&R.deferred, 1);
}

static void deferred_demo(struct cpu_work *w)
{
	unsigned cpu = w->cpu;
	if (cpu == 0) {
		R.cache = must(kmem_cache_create_debug("wl-rcu", sizeof(struct rcu_obj), 0, NULL,
		                                       KMEM_DEBUG_POISON),
		               "the deferred-free cache");
		for (uint32_t i = 0; i < RCU_SLOTS; i++)
			atomic_store(&R.table[i], rcu_new(i));
	}
	barrier("deferred-free table ready");
	uint64_t rng = w->rng ^ 0x5deece66dull;
	for (unsigned step = 0; step < RCU_STEPS; step++) {
		uint64_t r = rng_next(&rng);
		uint32_t i = (uint32_t)(r % RCU_SLOTS);
		struct rcu_obj *o = atomic_load(&R.table[i]); /* the lookup */
		if (o->magic != RCU_MAGIC || o->slot != i || o->check != rcu_check(o->slot, o->gen))
			atomic_fetch_add(&R.early, 1);
		atomic_fetch_add_explicit(&R.reads, 1, memory_order_relaxed);
		atomic_store(&R.qs[cpu], atomic_load(&R.qs[cpu]) + 1); /* quiescent */
		if ((r >> 32) % 4 == 0)
			rcu_defer(atomic_exchange(&R.table[i], rcu_new(i)));
		if (step % 8 == 7)
			rcu_drive(cpu);
	}
	atomic_store(&R.qs[cpu], RCU_LEFT);
	barrier("deferred-free lookups done"); /* no reader is left */
	if (cpu != 0)
		return;
	for (uint32_t i = 0; i < RCU_SLOTS; i++)
		rcu_defer(atomic_exchange(&R.table[i], NULL));
	if (R.gp_on) { /* every CPU has left: the grace period is over */
		atomic_fetch_add(&R.freed, kmem_grace_period_done(R.cookie));
		atomic_fetch_add(&R.grace_periods, 1);
	}
	atomic_fetch_add(&R.freed, kmem_grace_period_done(kmem_grace_period_start()));
	atomic_fetch_add(&R.grace_periods, 1);
	struct kmem_defer_stats ds;
	kmem_get_defer_stats(&ds);
	uint64_t deferred = atomic_load(&R.deferred), freed = atomic_load(&R.freed);
	uint64_t early = atomic_load(&R.early);
	kprintf("deferred free: %u CPUs made %lu lock-free lookups in a %u-slot table and replaced "
	        "%lu objects: %lu deferred, %lu freed after %lu grace periods, %lu pending, "
	        "early frees seen %lu\n",
	        W.ncpus, (unsigned long)atomic_load(&R.reads), RCU_SLOTS,
	        (unsigned long)(deferred - RCU_SLOTS), (unsigned long)deferred, (unsigned long)freed,
	        (unsigned long)atomic_load(&R.grace_periods), (unsigned long)ds.pending,
	        (unsigned long)early);
	if (early)
		kfail("deferred free: %lu lookups found a freed object", (unsigned long)early);
	if (freed != deferred || ds.pending || ds.deferred != ds.freed)
		kfail("deferred free: %lu deferred, %lu freed, %lu pending", (unsigned long)deferred,
		      (unsigned long)freed, (unsigned long)ds.pending);
	int rc = kmem_cache_destroy(R.cache);
	if (rc != 0)
		kfail("kmem_cache_destroy(wl-rcu) = %d after every grace period", rc);
}

/* --- the run, on every CPU -------------------------------------------------- */

/* Bytes of the CPU's kernel stack ever used (it was painted with 0x5a). */
static uint64_t stack_used(struct percpu *pc, size_t *size)
{
	const uint8_t *s;
	size_t n, i = 0;
	cpu_stack_area(pc, &s, &n);
	*size = n;
	while (i < n && s[i] == 0x5a)
		i++;
	return n - i;
}

void workload_cpu(struct percpu *pc)
{
	unsigned cpu = pc->cpu;
	struct cpu_work *w = W.work[cpu];
	pc->work = w;
	atomic_store(&w->irq_on, 1);

	barrier("all CPUs up");
	if (cpu == 0) {
		W.t_stress_start = uptime_us();
		kprintf("stress: %u CPUs x %u steps, %u slots each, timer %u Hz allocating in IRQ\n",
		        W.ncpus, STRESS_OPS, NSLOTS, TIMER_HZ);
	}
	barrier("start");
	uint64_t t0 = uptime_us();
	for (w->ops = 0; w->ops < STRESS_OPS; w->ops++) {
		maybe_inject(w);
		struct obj *o = &w->slots[rng_next(&w->rng) % NSLOTS];
		if (!o->p) {
			obj_alloc(w, o);
		} else {
			obj_check(o, "local");
			uint64_t r = rng_next(&w->rng);
			unsigned what = (unsigned)(r % 16);
			if (what < 4 && W.ncpus > 1) {
				unsigned dst = (cpu + 1 + (unsigned)((r >> 8) % (W.ncpus - 1))) % W.ncpus;
				if (ring_push(ring_of(cpu, dst), o)) {
					w->sent++;
					o->p = NULL;
					o->kind = K_NONE;
				} else {
					w->ring_full++;
					obj_free(o, r >> 16);
					w->frees++;
				}
			} else if (what == 4 && o->kind == K_KMALLOC) {
				obj_realloc(w, o);
			} else {
				obj_free(o, r >> 16);
				w->frees++;
			}
		}
		if ((w->ops & 31) == 31)
			drain_inbox(w);
		if ((w->ops & 4095) == 4095) {
			kmem_cache_shrink(W.cache[rng_next(&w->rng) % NCACHES]);
			w->shrinks++;
		}
		if ((w->ops & 16383) == 16383) {
			kmem_reclaim();
			w->reclaims++;
		}
	}
	/* Make sure the timer interrupt has allocated here too. */
	uint64_t irq_deadline = uptime_us() + 5000000;
	while (atomic_load(&w->irq_allocs) < MIN_IRQ_ALLOCS) {
		if (uptime_us() > irq_deadline)
			kfail("cpu %u: the timer interrupt allocated %lu times in 5 s after the stress", cpu,
			      (unsigned long)atomic_load(&w->irq_allocs));
		drain_inbox(w);
		arch_cpu_relax();
	}
	w->stress_us = uptime_us() - t0;
	deferred_demo(w);

	barrier("stress done"); /* nobody sends any more */
	drain_inbox(w);
	for (unsigned i = 0; i < NSLOTS; i++)
		if (w->slots[i].p) {
			obj_check(&w->slots[i], "teardown");
			obj_free(&w->slots[i], i);
			w->frees++;
		}
	barrier("mailboxes drained"); /* every mailbox is empty */

	unsigned long f = arch_irq_save();
	timer_stop();
	atomic_store(&w->irq_on, 0);
	for (unsigned i = 0; i < IRQ_SLOTS; i++)
		if (w->irq_objs[i].p) {
			obj_check(&w->irq_objs[i], "teardown");
			obj_free(&w->irq_objs[i], i);
			atomic_fetch_add_explicit(&w->irq_frees, 1, memory_order_relaxed);
		}
	arch_irq_restore(f);
	size_t stack_size;
	w->stack_used = stack_used(pc, &stack_size);
	if (w->stack_used + 1024 > stack_size)
		kfail("cpu %u: kernel stack nearly overflowed (%lu bytes used)", cpu,
		      (unsigned long)w->stack_used);
	if (cpu != 0 && kmem_cpu_offline(cpu) != 0)
		kfail("kmem_cpu_offline(%u) failed", cpu);
}

/* --- teardown and the result, on the BSP ----------------------------------- */

struct cpu_summary {
	uint32_t hw_id;
	uint64_t ops, allocs, sent, remote_frees, ring_full, reallocs, irq_allocs, irq_frees;
	uint64_t ticks, stress_us, stack_used, ceiling_nulls, shrinks, reclaims;
	uint64_t by_kind[K_NKINDS];
};

/* The pages a client can allocate and touch, as a share of the usable
 * pages in the map (issue #14.7): memory filled with single pages, each
 * written (linked through its first word), freed, filled again. */
static uint64_t map_usable_pages; /* demo_heap_init */

static uint64_t fill_with_pages(void)
{
	void *head = NULL, *p;
	uint64_t n = 0;
	while ((p = kpage_alloc(1, KMEM_PAGE_SIZE, 0)) != NULL) {
		*(void **)p = head;
		head = p;
		n++;
	}
	while (head) {
		p = *(void **)head;
		kpage_free(head, 1);
		head = p;
	}
	return n;
}

static void report_page_share(void)
{
	uint64_t first = fill_with_pages(), second = fill_with_pages();
	uint64_t pct100 = map_usable_pages ? second * 10000 / map_usable_pages : 0;
	kprintf("pages a client can allocate and touch, filling memory twice: %lu, %lu of %lu "
	        "usable in the map = %lu.%02lu%%\n",
	        (unsigned long)first, (unsigned long)second, (unsigned long)map_usable_pages,
	        (unsigned long)(pct100 / 100), (unsigned long)(pct100 % 100));
	if (first != second)
		kfail("the second fill got %lu pages, the first %lu", (unsigned long)second,
		      (unsigned long)first);
}

static unsigned long check_problems;

static void check_hook(const struct kmem_fault *f)
{
	check_problems++;
	kprintf("kmem_check: %s at %p: %s\n", kmem_fault_name(f->kind), f->addr, f->detail);
}

/* Pool pages the allocator held as metadata after the teardown, before
 * the reclaim and grace period that give the empty ones back. */
static uint64_t meta_peak;

static uint64_t meta_pages_now(void)
{
	struct kmem_stats st;
	kmem_get_stats(&st);
	return st.pages_metadata;
}

/* The free-memory figures (see the top of this file), after the
 * teardown's checks: `after` must equal `before` -- or, unless
 * FREE_PAGES_MUST_MATCH, fall short of it only while no page leaked and
 * the allocator kept pool pages for its metadata -- and, with
 * FREE_PAGES_DRAIN, be what kpage_alloc(1, 0, 0) hands out (this CPU is
 * offline by then: online again for the drain). */
static void free_pages_check(const struct kmem_stats *st)
{
	uint64_t kept = st->pages_metadata - W.meta_before;
	uint64_t lost_raw = W.free_before_raw - st->pages_free;
	kprintf("free pages: before=%lu after=%lu (kmem_free_pages); pages_free %lu -> %lu, "
	        "metadata pages %lu -> %lu (%lu after the teardown, given back after a grace "
	        "period)\n",
	        (unsigned long)W.free_before, (unsigned long)W.free_after,
	        (unsigned long)W.free_before_raw, (unsigned long)st->pages_free,
	        (unsigned long)W.meta_before, (unsigned long)st->pages_metadata,
	        (unsigned long)meta_peak);
	if (FREE_PAGES_DRAIN) {
		if (kmem_cpu_online(0) != 0)
			kfail("kmem_cpu_online(0) failed");
		uint64_t drained = 0, t0 = uptime_us();
		void *head = NULL;
		for (void **p; (p = kpage_alloc(1, 0, 0)) != NULL; drained++) {
			*p = head; /* the pages, chained through themselves */
			head = p;
		}
		while (head) {
			void *next = *(void **)head;
			kpage_free(head, 1);
			head = next;
		}
		if (kmem_cpu_offline(0) != 0)
			kfail("kmem_cpu_offline(0) failed");
		kprintf("free pages: kpage_alloc(1, 0, 0) then handed out %lu (taken and freed in %lu ms)\n",
		        (unsigned long)drained, (unsigned long)((uptime_us() - t0) / 1000));
		if (drained != W.free_after)
			kfail("free pages: kmem_free_pages said %lu, kpage_alloc(1) handed out %lu",
			      (unsigned long)W.free_after, (unsigned long)drained);
	}
	if (W.free_after == W.free_before)
		return;
	bool meta_grew = kept || st->metadata_used > W.meta_used_before;
	if (FREE_PAGES_MUST_MATCH || W.free_after > W.free_before || lost_raw != kept || !meta_grew)
		kfail("free pages: before=%lu after=%lu (%lu pool pages kept as metadata)",
		      (unsigned long)W.free_before, (unsigned long)W.free_after, (unsigned long)kept);
	kprintf("free pages: %lu fewer after the workload: the allocator's metadata grew and was "
	        "not given back: %lu pool pages, %lu KiB of its region\n",
	        (unsigned long)(W.free_before - W.free_after), (unsigned long)kept,
	        (unsigned long)((st->metadata_used - W.meta_used_before) >> 10));
}

void workload_finish(void)
{
	unsigned n = W.ncpus;
	struct cpu_summary sum[BOOT_MAX_CPUS];
	uint64_t deadline = uptime_us() + 5000000;
	for (unsigned c = 1; c < n; c++)
		while (atomic_load(&W.cpus[c]->state) != CPU_HALTED)
			if (uptime_us() > deadline)
				kfail("CPU %u did not halt after the workload", c);
			else
				arch_cpu_relax();
	uint64_t stress_us = uptime_us() - W.t_stress_start;
	numa_snapshot();

	uint64_t tot_ops = 0, tot_remote = 0, tot_irq = 0, tot_sent = 0;
	for (unsigned c = 0; c < n; c++) {
		struct cpu_work *w = W.work[c];
		struct percpu *pc = W.cpus[c];
		sum[c] = (struct cpu_summary){
			.hw_id = cpu_hw_id(pc), .ops = w->ops, .allocs = w->allocs, .sent = w->sent,
			.remote_frees = w->remote_frees, .ring_full = w->ring_full,
			.reallocs = w->reallocs, .irq_allocs = atomic_load(&w->irq_allocs),
			.irq_frees = atomic_load(&w->irq_frees), .ticks = atomic_load(&pc->ticks),
			.stress_us = w->stress_us, .stack_used = w->stack_used,
			.ceiling_nulls = w->ceiling_nulls, .shrinks = w->shrinks, .reclaims = w->reclaims,
		};
		memcpy(sum[c].by_kind, w->by_kind, sizeof(w->by_kind));
		tot_ops += w->ops;
		tot_remote += w->remote_frees;
		tot_sent += w->sent;
		tot_irq += sum[c].irq_allocs;
		if (sum[c].irq_allocs != sum[c].irq_frees)
			kfail("cpu %u: %lu interrupt allocations but %lu frees", c,
			      (unsigned long)sum[c].irq_allocs, (unsigned long)sum[c].irq_frees);
	}
	if (tot_sent != tot_remote)
		kfail("%lu objects sent to other CPUs but %lu freed there", (unsigned long)tot_sent,
		      (unsigned long)tot_remote);

	/* Give everything back: APs' areas and stacks, work areas, mailboxes. */
	for (unsigned c = 0; c < n; c++) {
		kfree(W.work[c]->slots);
		kfree(W.work[c]);
		if (c)
			smp_free_ap(W.cpus[c]);
	}
	bsp_percpu.work = NULL;
	for (unsigned i = 0; i < n * n; i++)
		kfree(W.rings[i]);
	struct kmem_class_stats cstat[NCACHES];
	for (unsigned i = 0; i < NCACHES; i++) {
		kmem_cache_shrink(W.cache[i]); /* sweep: exact counts */
		kmem_cache_get_stats(W.cache[i], &cstat[i]);
		int rc = kmem_cache_destroy(W.cache[i]);
		if (rc != 0)
			kfail("kmem_cache_destroy(%s) = %d", cache_spec[i].name, rc);
	}
	kfree(W.rings);
	kfree(W.work);
	kfree(W.cpus);
	unsigned nclasses = W.nclasses;
	kfree(W.class_size);

	/* The BSP's timer is stopped (workload_cpu); count free memory while
	 * still online (kmem_free_pages reclaims, this CPU's caches
	 * included), go offline, reclaim. */
	meta_peak = meta_pages_now();
	kmem_reclaim(); /* empty metadata pages wait for a grace period: */
	kmem_grace_period_done(kmem_grace_period_start()); /* APs halted */
	W.free_after = kmem_free_pages();
	report_page_share();

	if (kmem_cpu_offline(0) != 0)
		kfail("kmem_cpu_offline(0) failed");
	size_t reclaimed = kmem_reclaim();
	kmem_fault_hook_t old = kmem_set_fault_hook(check_hook);
	unsigned long problems = kmem_check();
	kmem_set_fault_hook(old);
	struct kmem_stats st;
	kmem_get_stats(&st);
	uint64_t leaked = st.pages_managed - st.pages_free - st.pages_metadata;

	kprintf("\nper-CPU summary (stress and teardown %lu ms on the BSP's clock):\n",
	        (unsigned long)(stress_us / 1000));
	kprintf("  cpu %4s      ops   allocs  sent  remote_frees ring_full reallocs irq_allocs  ticks stress_ms stack\n",
	        cpu_hw_id_name);
	for (unsigned c = 0; c < n; c++)
		kprintf("  %3u %4u %8lu %8lu %5lu %13lu %9lu %8lu %10lu %6lu %9lu %5lu\n", c,
		        sum[c].hw_id, (unsigned long)sum[c].ops, (unsigned long)sum[c].allocs,
		        (unsigned long)sum[c].sent, (unsigned long)sum[c].remote_frees,
		        (unsigned long)sum[c].ring_full, (unsigned long)sum[c].reallocs,
		        (unsigned long)sum[c].irq_allocs, (unsigned long)sum[c].ticks,
		        (unsigned long)(sum[c].stress_us / 1000), (unsigned long)sum[c].stack_used);

	uint64_t kinds[K_NKINDS] = {0}, reallocs = 0, nulls = 0, shrinks = 0, reclaims = 0;
	for (unsigned c = 0; c < n; c++) {
		for (unsigned k = 0; k < K_NKINDS; k++)
			kinds[k] += sum[c].by_kind[k];
		reallocs += sum[c].reallocs;
		nulls += sum[c].ceiling_nulls;
		shrinks += sum[c].shrinks;
		reclaims += sum[c].reclaims;
	}
	kprintf("  thread allocations: kmalloc %lu, kzalloc/kcalloc %lu, kmalloc_aligned %lu, "
	        "cache %lu, large %lu, page runs %lu; krealloc %lu;\n"
	        "  page runs under the ceiling (lowest RAM + 64 MiB) refused %lu; cache shrinks %lu, reclaims %lu\n",
	        (unsigned long)kinds[K_KMALLOC], (unsigned long)kinds[K_ZALLOC],
	        (unsigned long)kinds[K_ALIGNED], (unsigned long)kinds[K_CACHE],
	        (unsigned long)kinds[K_LARGE], (unsigned long)kinds[K_PAGES], (unsigned long)reallocs,
	        (unsigned long)nulls, (unsigned long)shrinks, (unsigned long)reclaims);

	kprintf("\nper-class summary (classes used; all counts after reclaim):\n");
	kprintf("  class   size    nmalloc  in_use  peak_span_KiB   class   size    nmalloc  in_use  peak_span_KiB\n");
	unsigned col = 0, bad_class = 0;
	for (unsigned c = 1; c < nclasses; c++) {
		struct kmem_class_stats cs;
		kmem_get_class_stats(c, &cs);
		if (cs.objects_in_use || cs.spans)
			bad_class = c;
		if (!cs.nmalloc)
			continue;
		kprintf("%s  %5u %6u %10lu %7lu %14lu", col ? "   " : "", c, cs.object_size,
		        (unsigned long)cs.nmalloc, (unsigned long)cs.objects_in_use,
		        (unsigned long)(cs.peak_span_bytes >> 10));
		if (++col == 2) {
			kprintf("\n");
			col = 0;
		}
	}
	if (col)
		kprintf("\n");
	for (unsigned i = 0; i < NCACHES; i++)
		kprintf("  cache %-8s size %4u: nmalloc %lu, in use %lu, peak span %lu KiB\n",
		        cache_spec[i].name, cstat[i].object_size, (unsigned long)cstat[i].nmalloc,
		        (unsigned long)cstat[i].objects_in_use,
		        (unsigned long)(cstat[i].peak_span_bytes >> 10));
	kprintf("  constructor calls %lu; stray interrupts %lu\n", (unsigned long)atomic_load(&W.ctor_calls),
	        (unsigned long)atomic_load(&stray_interrupts));
	kprintf("\nheap after teardown: managed %lu pages, free %lu, metadata pages %lu, small %lu, "
	        "large %lu, runs %lu; reclaim gave back %zu pages; kmem_check: %lu problems\n",
	        (unsigned long)st.pages_managed, (unsigned long)st.pages_free,
	        (unsigned long)st.pages_metadata, (unsigned long)st.pages_small,
	        (unsigned long)st.pages_large, (unsigned long)st.pages_runs, reclaimed, problems);
	kprintf("boot to result: %lu ms on the kernel's clock (uptime_us)\n",
	        (unsigned long)(uptime_us() / 1000));

	if (problems)
		kfail("kmem_check found %lu problems", problems);
	if (leaked)
		kfail("leaked_pages=%lu (managed %lu, free %lu, metadata %lu)", (unsigned long)leaked,
		      (unsigned long)st.pages_managed, (unsigned long)st.pages_free,
		      (unsigned long)st.pages_metadata);
	if (bad_class) {
		struct kmem_class_stats cs;
		kmem_get_class_stats(bad_class, &cs);
		kfail("class %u still has %lu objects in use in %lu spans after reclaim", bad_class,
		      (unsigned long)cs.objects_in_use, (unsigned long)cs.spans);
	}
	if (st.large_objects || st.page_runs || st.cpus_online)
		kfail("after teardown: %lu large objects, %lu page runs, %u CPUs online",
		      (unsigned long)st.large_objects, (unsigned long)st.page_runs, st.cpus_online);

	free_pages_check(&st);
	uint64_t local_pm;
	unsigned nodes = numa_report(n, &local_pm);

	kprintf("RESULT: PASS cpus=%u ops=%lu remote_frees=%lu irq_allocs=%lu leaked_pages=%lu "
	        "free_pages_before=%lu free_pages_after=%lu nodes=%u local=%lu.%lu%%\n",
	        n, (unsigned long)tot_ops, (unsigned long)tot_remote, (unsigned long)tot_irq,
	        (unsigned long)leaked, (unsigned long)W.free_before, (unsigned long)W.free_after, nodes,
	        (unsigned long)(local_pm / 10), (unsigned long)(local_pm % 10));
	kernel_pass();
}

void demo_heap_init(const struct kmem_region *regions, size_t n, unsigned ncpus,
                    uint64_t usable_bytes)
{
	struct kmem_config cfg = {
		.regions = regions,
		.nregions = n,
		.direct_map_offset = 0, /* identity map on every demo */
		.max_cpus = ncpus,
		/* NUMA, when the boot path found nodes (boot/numa.c). */
		.cpu_node = demo_numa.nnodes > 1 ? demo_numa.cpu_node : NULL,
		.node_distance = demo_numa.nnodes > 1 && demo_numa.distance[0] ? demo_numa.distance : NULL,
	};
	size_t need = kmem_metadata_size(&cfg);
	map_usable_pages = usable_bytes / KMEM_PAGE_SIZE;
	int rc = kmem_init(&cfg);
	if (rc != 0)
		kfail("kmem_init returned %d (metadata needed: %zu bytes)", rc, need);
	struct kmem_stats st;
	kmem_get_stats(&st);
	W.free_before = kmem_free_pages();
	W.free_before_raw = st.pages_free;
	W.meta_before = st.pages_metadata;
	W.meta_used_before = st.metadata_used;
	struct kmem_region reg[KMEM_MAX_NODES];
	unsigned nreg = kmem_metadata_regions(reg, KMEM_MAX_NODES);
	uint64_t managed = st.pages_managed * KMEM_PAGE_SIZE;
	uint64_t pct100 = managed ? st.metadata_bytes * 10000 / managed : 0;
	kprintf("boot: usable %lu MiB in the map; heap manages %lu pages (%lu MiB) in %lu arena%s of 64 MiB\n",
	        (unsigned long)(usable_bytes >> 20), (unsigned long)st.pages_managed,
	        (unsigned long)(managed >> 20), (unsigned long)st.arenas, st.arenas == 1 ? "" : "s");
	for (unsigned i = 0; i < nreg && i < KMEM_MAX_NODES; i++)
		kprintf("boot: metadata region 0x%lx-0x%lx, %lu KiB, node %u\n",
		        (unsigned long)reg[i].base, (unsigned long)(reg[i].base + reg[i].length - 1),
		        (unsigned long)(reg[i].length >> 10), reg[i].node);
	kprintf("boot: metadata %lu KiB (%lu used) = %lu.%02lu%% of managed memory\n",
	        (unsigned long)(st.metadata_bytes >> 10), (unsigned long)(st.metadata_used >> 10),
	        (unsigned long)(pct100 / 100), (unsigned long)(pct100 % 100));
	kprintf("boot: free pages %lu (kmem_free_pages: what kpage_alloc(1) can take; "
	        "pages_free %lu)\n",
	        (unsigned long)W.free_before, (unsigned long)st.pages_free);
}
