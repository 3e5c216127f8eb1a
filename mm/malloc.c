/*
 * mm/malloc.c - spanalloc's entry points, and the overview the other files
 * point to.
 *
 * Overview
 * ========
 *
 * spanalloc is Go's runtime allocator (itself a TCMalloc descendant) moved
 * to bare metal: physical pages from the boot memory map instead of mmap,
 * per-CPU caches protected by disabling interrupts instead of per-P caches,
 * explicit free instead of a garbage collector, and on top of Go's spans
 * a layer of per-CPU magazines of free objects (Bonwick's, as Linux's
 * sheaves).  The structures:
 *
 *   size classes  75 object sizes, 8 B .. 32 KiB (sizeclasses.c, generated)
 *   mspan         a run of pages: objects of one class, one large object,
 *                 or a page run (mspan.c)
 *   magazine      a bounded array of free objects of one class, held by a
 *                 CPU or by the class's depot (magazine.c)
 *   mcache        per CPU: for each class a loaded and a previous
 *                 magazine, and the span it fills them from (mcache.c)
 *   mcentral      per class: spans no CPU holds, partial and full, a
 *                 lock-free stack of spans that received frees, and the
 *                 depot of magazines (mcentral.c)
 *   mheap         the page allocator (bitmaps + radix summaries over the
 *                 physical address space, pagealloc.c), span life cycle
 *                 (mheap.c), arena index (heaparena.c)
 *   heap_arena    metadata for 64 MiB of physical memory: page -> span
 *                 map, page bitmap, summaries (heaparena.c)
 *   fixalloc      span descriptors, span metadata blocks, magazines
 *                 (fixalloc.c)
 *   bootmem       memory map intake, metadata region, hot-add (bootmem.c)
 *   kmem_cache    object caches with their own mcentral, depot and
 *                 per-CPU magazines (kmem_cache.c)
 *
 * All of it lives in the metadata region (or in pages taken from the top of
 * the pool for span descriptors): a client's memory holds payload only, so
 * no client overflow can reach a free list or a header -- there are none.
 *
 * Object states.  Every object of a small span has a state byte in the
 * span's metadata block (mtypes.h, struct mspan):
 *     OBJ_CLIENT   a client holds it          -- kfree accepts only this
 *     1..254       free, in the magazine with that id (of its class)
 *     OBJ_FREE     free in its span (never handed out, or given back)
 * Each move reads the state it leaves and writes the state it enters,
 * with plain (relaxed) byte accesses, on the CPU doing the move:
 *     kfree            CLIENT -> id of the freeing CPU's loaded magazine
 *     kmalloc          id of the popping CPU's magazine -> CLIENT
 *     fill             FREE -> magazine id (mcache_fill), or -> CLIENT
 *     give back        id -> FREE, then the freed bit (mag_flush), or
 *                      CLIENT -> FREE, then the freed bit (small_free)
 * So a double free is caught deterministically and before anything
 * changes: the second kfree finds a state that is not CLIENT, whether the
 * object sits in a magazine (any CPU's), in the depot or in its span.  An
 * interior or tail pointer fails the object-start test or finds the tail
 * slot's OBJ_FREE; a wild pointer has no span.
 *
 * Why bytes, and why no atomic read-modify-write: a byte has one writer at
 * a time in a correct program (the object's holder), so plain stores lose
 * nothing, where bits shared by 64 objects needed a locked OR per free
 * (the cost that made the first version 2x slower than mimalloc).  What a
 * plain store cannot do is settle two frees of one object that race each
 * other on two CPUs (a client bug): both may see CLIENT and both push.
 * The takers make that harmless: a pop proceeds only if the state still
 * names its own magazine (ids are unique per class, and a magazine is
 * popped by one CPU), a fill only if it is still OBJ_FREE, a sweep folds a
 * freed bit only if the state is OBJ_FREE, and a span goes back to the
 * mheap only when every state is OBJ_FREE.  The stale copy is reported as
 * a double free when it is found.  spanalloc.h states what remains.
 *
 * Allocating a small object (kmalloc, kmem_cache_alloc):
 *   1. Round the size up to a class (two table lookups).
 *   2. Enter the allocator on this CPU: disable interrupts, or, where the
 *      port has the optional arch_fast_enter (spanalloc/arch.h), only
 *      raise a per-CPU depth -- an interrupt that allocates meanwhile
 *      finds it raised and leaves this CPU's magazines alone, allocating
 *      from its class's shared span and freeing straight to spans.  Take
 *      this CPU's magazine slot for the class.
 *   3. Fast path: pop the loaded magazine: its last entry, if that
 *      object's state is the magazine's id; set it to CLIENT.  No lock, no
 *      atomic read-modify-write, and in kmalloc no call: the arch's
 *      optional inline hooks arch_cpu_id_fast() and arch_fast_exit_hit()
 *      let every rare case leave by a tail call, so the fast path needs no
 *      stack frame.
 *   4. Else, interrupts still off, mag_alloc_slow (magazine.c): swap with
 *      the previous magazine if it holds objects; else take a full
 *      magazine from the class's depot (a lock taken once per magazine);
 *      else fill the magazine from the CPU's span (mcache_fill): the
 *      span's alloc_cache (inverted alloc bits from freeindex on) gives the
 *      next free object with one count-trailing-zeros; an exhausted span
 *      is swept in place if frees wait in its freed bitmap, else goes back
 *      to the mcentral for another.
 *   5. The mcentral drains its unswept stack, then gives a partial span,
 *      else a kept empty span, else allocates a new span from the mheap.
 *   6. The mheap finds a run of pages (first fit, address order, O(log n)
 *      in the radix summaries, which are kept only up to the hull of
 *      managed memory), publishes the span in the arena map.  An arena
 *      the boot map covered whole is the shared all-free image until this
 *      first write copies it, so init costs nothing per arena.
 *   7. Out of pages: this CPU's caches are flushed, every other CPU's
 *      previous magazines and spans taken over, every depot emptied and
 *      every mcentral swept, empty spans released; retry once; then the
 *      OOM hook; then NULL.
 *
 * Allocating a large object (> 32 KiB) or a page run: mheap directly,
 * under the heap.lock of the node whose pages it takes, as its own span.
 *
 * Freeing (kfree, kmem_cache_free):
 *   1. Arena index -> arena -> spans[page]: the owning span, O(1).
 *   2. Object index by multiply-shift; check the pointer is an object
 *      start.  One field gates the fast path: idx < span.fast_nelems,
 *      nonzero only for a kmalloc span without debug records (mtypes.h).
 *   3. Enter the allocator (as step 2 of allocating); the object's state
 *      must be CLIENT, and the loaded magazine must have room: store the object and its state
 *      pointer, set the state to the magazine's id.  No lock, no atomic:
 *      any CPU, any context, any object's span.
 *   4. Else mag_free_slow: swap with an empty previous magazine, or send
 *      the full previous one to the depot, or, with the depot full, give
 *      its objects back to their spans in one batch (mag_flush: state
 *      FREE, one atomic OR per span bitmap word, then for each span no
 *      CPU holds -- LOC_LISTED in its sweep state -- one CAS that queues
 *      it on its mcentral's unswept stack for the next refill's sweep).
 *   A span whose objects all come back sweeps empty and is kept on its
 *   mcentral's empty list (at most empty_max per class, about 128 KiB)
 *   for the next refill; past the bound, and on reclaim, empty spans go
 *   back to the mheap.  (mcentral.c has the races and the bound.)
 *   Large objects and page runs: a CAS on the span state claims the free,
 *   then the pages go back under their page heap's lock.
 *
 * Bad frees (double, interior, wild, free page, wrong kind or cache) are
 * found by the states, bits and maps before anything is written, reported
 * through the fault hook, and change nothing.
 *
 * Sweeping (span_sweep) folds freed bits into alloc bits with one atomic
 * exchange per word.  It runs where Go runs it: in place when a CPU's
 * span runs out; when the mcentral takes back or hands out a span; when
 * it drains spans queued by frees; and on reclaim.
 *
 * Memory a CPU keeps: per class, two magazines (at most mag_cap objects
 * each, mag_cap * size <= 32 KiB or 2 objects) and one span; per class
 * the depot keeps at most full_max full magazines (256 KiB or 2).  Of
 * these only a CPU's loaded magazines cannot be taken over by another CPU
 * while it runs (magazine.c): that is the bound spanalloc.h states.
 *
 * NUMA nodes.  Regions carry a node (kmem_region.node), CPUs one
 * (kmem_config.cpu_node), nodes a SLIT-style distance table.  What is per
 * node, and what it costs:
 *   - mcentrals: every kmalloc class has one per node
 *     (mheap_.central[node][class], class_central),
 *     every object cache one per node (kmem_cache.node_central[]), each
 *     with its own depot and lock.  A CPU's magazines (and the span it
 *     fills them from) belong to its node's mcentral: the path picks the
 *     mcentral after entering the allocator, when the CPU is known
 *     (central_of_cpu), so a migrated thread cannot mix nodes.
 *   - page heaps: each node has its own (struct pageheap, mheap.c,
 *     pagealloc.c), with its own lock, counters and radix tree.  The tree
 *     covers the arenas the node owns -- an arena belongs to the node of
 *     its lowest pages when it is made, and an arena shared by two nodes
 *     is managed by that one's heap -- and reads every other arena as all
 *     in use; its levels 15..26 are per chunk (struct l2_sums), 27..36 its
 *     own.  So two nodes' page operations never touch one summary, one
 *     counter or one lock.  A node is a set of pfn ranges
 *     (mheap_.node_ranges, from the map in address order, consecutive
 *     regions of a node merged, hot-adds appended); a request for node N
 *     runs the radix search of N's heap bounded to each of N's ranges (and
 *     of the heap owning an arena at the range's ends), then the same for
 *     the next node in distance order, then each heap whole
 *     (node_pages_find_lock: O(log n) per range tried, one heap.lock at a
 *     time, returned held by the heap that has the pages).  A run never
 *     crosses from one heap's arena into another's.  What needs every
 *     heap (hot-add, the checker, statistics, the heap map) takes all the
 *     locks in node order (heaps_lock_all).  A span is
 *     asked for by its mcentral's node, a large object or page run by the
 *     caller's node or the one asked for; node_count[] counts per
 *     preferred node whether the node itself served (at span grain).
 *     Per-node page counts are not kept: kmem_get_node_stats counts the
 *     node's bitmap words (off the hot paths).
 *   - frees: a CPU's magazine may hold only objects of its own mcentral
 *     (ids are unique per mcentral, and a remote object in a local
 *     magazine would be handed to a local request).  Each span records
 *     its mcentral's node (mspan.node, on the line kfree reads); kfree's
 *     fast path compares it with its mcache's node -- one load and one
 *     compare, folded into the test that already sends a full magazine
 *     to the slow path -- and an object of another node goes straight to
 *     its span (span_free, one atomic OR), as a free nested in the fast
 *     path does; its node's CPUs find it by the span's sweep.  bulk and
 *     nolock frees do the same.
 *   - kmalloc_node/kmem_cache_alloc_node for another node than the
 *     caller's take that node's depot lock per object (its shared span,
 *     mcache_alloc_shared): no magazine of that node is the caller's.
 *   - reclaim, kmem_check, statistics, CPU offline and the caches' shrink
 *     and destroy walk every node's mcentrals; per-CPU counts are summed
 *     into the mcentral of the CPU's node.
 *   - dynamic metadata (fixalloc.c): a span's descriptor, metadata block
 *     and debug records come from its node (a small span's mcentral's;
 *     for a large object or page run the node asked for, which is its
 *     pages' node unless that node was full), a magazine from its
 *     mcentral's node; object-cache descriptors and deferred batches from
 *     CPU 0's node's region.  fixalloc keeps per node a free
 *     list, a pend list and a bump range: a node's metadata region's bump
 *     serves the node, every node grows by runs taken from the
 *     top of its own ranges (pages_find_top_in_locked, O(log n) per range),
 *     and a node with no pages left (or none at all) is served by the
 *     next in distance order, as pages are.  A freed block goes on the
 *     list of its page's node (pfn_node: one range scan, only with more
 *     than one node).  Reclaim and the grace period work per run as
 *     before; mheap_.meta_pages[] counts each node's run pages (guards
 *     included; a guard is shared only between runs of one node).
 *   - init metadata (bootmem.c): kmem_init carves a metadata region per
 *     node from the top of the node's own memory, holding the node's
 *     page heap (its top summary levels and the l2_sums of its chunks),
 *     mcentrals, the mcaches of its CPUs, the arena maps, bitmaps and
 *     summaries of the arenas whose lowest pages are the node's (and room
 *     for their copies), and the node's first span metadata.  A node too
 *     small for one, or without memory, is served by the nearest node
 *     that has one (its server: bootmem.c, meta_plan).  Left on one node: the L2 chunks' arena
 *     index (36 KiB per 256 GiB: the region of the node of their lowest
 *     arena), a caller-given region (kmem_config.metadata_base: all of it
 *     there), and the permanent carves (meta_carve: CPU 0's node).  With
 *     one node the page heap is static, as the old single heap was.
 *     mcache_of(cpu) reads a per-CPU pointer instead of indexing one
 *     array: the same one load on the fast path.
 * A heap with every region and CPU on node 0 is exactly the heap without
 * NUMA (one region, one range search, the same mcentrals, index 0 of
 * every per-node array).
 *
 * Locks (mtypes.h): caches_lock < depot.lock < mcentral.lock <
 * heap.lock (one per node), all taken with interrupts off; the fast paths
 * take none.
 */
#include "mtypes.h"

#define RET_ADDR ((uintptr_t)__builtin_return_address(0))
/* Debug heap or hardened mode: room for a red zone or canary after every
 * kmalloc object (harden_init: KMEM_REDZONE, the level's slack, or 0). */
#define REDZONE_SLACK harden_.slack
#define OOM_RETRIES 8

/* The OOM hook's request for an allocation of `bytes` aligned to `align`
 * below max_phys (spanalloc.h): the run of pages it needs.  A small object
 * needs one span of its class (at most KMEM_MAX_SPAN_PAGES pages, aligned
 * to at most the alignment asked for, or a page). */
struct kmem_oom_request oom_request(enum kmem_oom_kind kind, size_t bytes, size_t align,
                                    uint64_t max_phys)
{
	struct kmem_oom_request r = {.kind = kind, .bytes = bytes, .align = align,
	                             .max_phys = max_phys};
	size_t need = (bytes ? bytes : 1) + (kind == KMEM_OOM_PAGES ? 0 : REDZONE_SLACK);
	r.run_pages = kind != KMEM_OOM_PAGES && need <= KMEM_SMALL_MAX && align <= KMEM_SMALL_MAX
	                  ? KMEM_MAX_SPAN_PAGES
	                  : align_up(need, PAGE_SIZE) >> PAGE_SHIFT;
	r.run_align = align > PAGE_SIZE ? align : PAGE_SIZE;
	return r;
}

/* Could any memory hold the request's run: a multiple of run_align at or
 * above page 1, ending at or below the ceiling (or the physical space)? */
static bool oom_can_help(const struct kmem_oom_request *r)
{
	uint64_t limit = r->max_phys ? r->max_phys >> PAGE_SHIFT : 1ull << SUM_TOP;
	uint64_t first = r->run_align >> PAGE_SHIFT; /* lowest aligned pfn >= 1 */
	return r->run_align >> PAGE_SHIFT <= 1ull << SUM_TOP && r->run_pages <= limit &&
	       first <= limit - r->run_pages;
}

static uint64_t pages_managed_now(void)
{
	struct heap_count c;
	unsigned long f = heaps_lock_all();
	heaps_count_locked(&c);
	heaps_unlock_all(f);
	return c.pages_managed;
}

/* After a failed attempt: may the OOM hook add memory for a retry?  Only
 * if memory could help, and again only after the hook grew the heap.
 * Runs with no lock held and interrupts as the caller had them. */
bool oom_retry(const struct kmem_oom_request *req, unsigned *tries)
{
	kmem_oom_hook_t h = atomic_load_explicit(&mheap_.oom_hook, memory_order_acquire);
	if (!h || *tries >= OOM_RETRIES || !oom_can_help(req))
		return false;
	struct kmem_oom_request r = *req;
	r.attempt = ++*tries;
	uint64_t before = pages_managed_now();
	return h(&r) && pages_managed_now() > before;
}

kmem_oom_hook_t kmem_set_oom_hook(kmem_oom_hook_t hook)
{
	return atomic_exchange(&mheap_.oom_hook, hook);
}

static void quarantine_flush(void);
static void quarantine_put(void *p, uint32_t bytes);

/* Pops the loaded magazine of *ms (steps 3-4 of the overview); interrupts
 * off, on ms's CPU. */
static inline void *slot_alloc(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c)
{
	void **e = ms->top;
	if (__builtin_expect(e != ms->base, 1)) {
		e--;
		void *p = *e;
		_Atomic uint8_t *st = *mag_entry_st(e);
		if (__builtin_expect(atomic_load_explicit(st, memory_order_relaxed) == ms->id, 1)) {
			ms->top = e;
			cc->nmalloc++;
			atomic_store_explicit(st, OBJ_CLIENT, memory_order_relaxed);
			return p;
		}
	}
	return mag_alloc_slow(ms, cc, c);
}

/* Step 7 of the overview, driven from here, the top: flushes the calling
 * CPU's caches (unless the caller is nested in this CPU's fast path:
 * flush_self false, and this CPU is treated as the others), takes over
 * what the other CPUs can give up while they run
 * (previous magazines, spans; magazine.c), empties every depot, sweeps
 * every mcentral (classes and caches) and releases empty spans to the
 * mheap.  Returns the pages released.  Interrupts off; no allocator lock
 * held. */
size_t reclaim_all(bool flush_self)
{
	size_t n = 0;
	quarantine_flush();
	unsigned self = arch_cpu_id();
	if (flush_self)
		mcache_flush(self);
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++)
		if (cpu != self || !flush_self)
			mcache_take_over(cpu);
	for (unsigned node = 0; node < mheap_.nnodes; node++)
		for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++) {
			n += mcentral_reclaim(class_central(node, cls));
			mcentral_report_racing(class_central(node, cls));
		}
	n += kmem_caches_reclaim();
	return n;
}

/* reclaim_all from wherever the caller is (interrupts as they are, maybe
 * nested in this CPU's fast path). */
static size_t reclaim_here(void)
{
	unsigned long t = arch_fast_enter();
	unsigned long f = irqoff_in(t);
	size_t n = reclaim_all(!fast_nested(t));
	irqoff_out(f, t);
	return n + meta_runs_reclaim(); /* metadata pages that emptied */
}


/* Hardened mode: slot 0 of a span of three or more objects is not handed
 * out but kept zeroed, so that an underflow of the span's first object
 * meets zeros (checked at its free) like any other underflow.  It goes
 * back to its span at once and comes round again after a sweep; only a
 * span with nothing else free hands it out.  p is what slot_alloc gave;
 * interrupts off. */
static void *skip_head_slot(struct mcentral *c, struct mag_slot *ms, struct cpu_class *cc,
                            void *p)
{
	struct mspan *s = span_of_ptr(p);
	if ((uintptr_t)p != s->base || s->nelems < 3)
		return p;
	span_free(s, &s->objstate[0], 0); /* just taken: no freed bit yet */
	cc->nmalloc--;
	void *q = slot_alloc(ms, cc, c);
	return q ? q : slot_alloc(ms, cc, c);
}

/* An object of central c from its depot's shared span, under the depot
 * lock, with reclaim and a second try: for contexts nested in this CPU's
 * fast path, and for another node's objects (this CPU's magazines hold
 * its own node's only). */
static void *shared_alloc(struct mcentral *c)
{
	void *p = mcache_alloc_shared(c);
	if (!p) {
		reclaim_here();
		p = mcache_alloc_shared(c);
	}
	return p;
}

/* An object of c's class or cache, on this CPU's node: from this CPU's
 * magazines (or, nested in this CPU's fast path, from the shared span);
 * out of memory, after reclaim and a second try.  `size` and `caller`
 * are for the debug heap. */
static void *central_alloc(struct mcentral *c, size_t size, uintptr_t caller)
{
	unsigned long t = arch_fast_enter();
	void *p;
	if (fast_nested(t)) {
		arch_fast_exit(t);
		p = shared_alloc(central_of_cpu(c, arch_cpu_id()));
	} else {
		unsigned long f = irqoff_in(t);
		struct mag_slot *ms;
		struct cpu_class *cc;
		unsigned cpu = arch_cpu_id();
		c = central_of_cpu(c, cpu); /* the CPU is known now: its node's */
		cpu_slots(c, cpu, &ms, &cc);
		p = slot_alloc(ms, cc, c);
		if (!p) {
			reclaim_all(true);
			cpu_slots(c, cpu, &ms, &cc);
			p = slot_alloc(ms, cc, c);
		}
		if (p && (c->debug & DEBUG_HARDEN))
			p = skip_head_slot(c, ms, cc, p);
		irqoff_out(f, t);
	}
	if (p && c->debug)
		debug_on_alloc(p, size, caller);
	return p;
}

/* An object of c's class or cache, preferably on `node` (KMEM_NO_NODE:
 * this CPU's). */
static __attribute__((noinline)) void *node_alloc_other(struct mcentral *c, size_t size,
                                                        uintptr_t caller, unsigned node)
{
	if (node == mheap_.cpu_node[arch_cpu_id()])
		return central_alloc(c, size, caller);
	c = c->cache ? c->cache->node_central[node] : class_central(node, c->sizeclass);
	void *p = shared_alloc(c);
	if (p && c->debug)
		debug_on_alloc(p, size, caller);
	return p;
}

/* The plain calls (KMEM_NO_NODE) go straight to central_alloc: no node
 * lookup before the CPU is known. */
static inline __attribute__((always_inline)) void *node_alloc(struct mcentral *c, size_t size,
                                                              uintptr_t caller, int node)
{
	if (__builtin_expect(node < 0, 1))
		return central_alloc(c, size, caller);
	return node_alloc_other(c, size, caller, (unsigned)node);
}

static void *small_alloc(unsigned cls, size_t size, uintptr_t caller, int node)
{
	return node_alloc(class_central(0, cls), size, caller, node);
}

/* Used by kmem_cache.c: the same path on a cache's per-CPU slot. */
void *cache_alloc_on_cpu(struct kmem_cache *k, uintptr_t caller, int node)
{
	return node_alloc(&k->central, k->size, caller, node);
}

static void *large_alloc(size_t size, uint64_t align_pages, uint64_t max_pfn,
                         enum span_state state, uintptr_t caller, int node)
{
	unsigned want = node_or_here(node);
	uint64_t npages = ((uint64_t)size + PAGE_SIZE - 1) >> PAGE_SHIFT;
	uint32_t hl = 0; /* hardened layout (harden.c) */
	if (state == SPAN_LARGE && harden_.level)
		npages = harden_large_pages(size, align_pages, &hl);
	struct mspan *s = mheap_alloc_span(npages, align_pages, max_pfn, state, NULL, want);
	if (!s) {
		reclaim_here();
		s = mheap_alloc_span(npages, align_pages, max_pfn, state, NULL, want);
		if (!s)
			return NULL;
	}
	s->caller = caller;
	if (hl)
		return harden_large_setup(s, size, hl);
	return (void *)s->base;
}

static void *kmalloc_once(size_t size, uintptr_t caller, int node)
{
	/* Hardened level 3: kmalloc(0) is a guard page of its own. */
	if (size + REDZONE_SLACK <= KMEM_SMALL_MAX && (size || !harden_guards()))
		return small_alloc(kmem_size_to_class(size + REDZONE_SLACK), size, caller, node);
	return large_alloc(size, 1, 0, SPAN_LARGE, caller, node);
}

static __attribute__((noinline)) void *kmalloc_caller(size_t size, uintptr_t caller)
{
	if (size > KMEM_MAX_ALLOC)
		return NULL;
	return WITH_OOM_RETRY(oom_request(KMEM_OOM_OBJECT, size, 8, 0),
	                      kmalloc_once(size, caller, KMEM_NO_NODE));
}

void *kmalloc_node(size_t size, int node)
{
	if (node == KMEM_NO_NODE)
		return kmalloc_caller(size, RET_ADDR);
	if (node < 0 || (unsigned)node >= mheap_.nnodes || size > KMEM_MAX_ALLOC)
		return NULL;
	uintptr_t caller = RET_ADDR;
	return WITH_OOM_RETRY(oom_request(KMEM_OOM_OBJECT, size, 8, 0),
	                      kmalloc_once(size, caller, node));
}

#if !KMEM_DEBUG_HEAP
/* kmalloc's slow paths, each entered by a tail call from the fast path
 * so that the fast path needs no stack frame.  t is the fast path's
 * token (arch_fast_enter). */

/* Leaves the fast path the long way (deferred work), then returns p. */
static __attribute__((noinline)) void *fast_exit_ret(unsigned long t, void *p)
{
	arch_fast_exit(t);
	return p;
}

/* Both below handle small sizes only, so no caller is recorded (callers
 * are kept for large objects and the debug heap). */

/* The CPU index needs arch_cpu_id(), or the call is nested in this CPU's
 * fast path: start over on the general path. */
static __attribute__((noinline)) void *kmalloc_general(size_t size, unsigned long t)
{
	arch_fast_exit(t);
	return kmalloc_caller(size, 0);
}

/* The loaded magazine of class cls is empty (or its top entry stale):
 * refill with interrupts off (step 4 of the overview); if that finds no
 * memory, the general path reclaims and retries with the OOM hook. */
static __attribute__((noinline)) void *kmalloc_refill(size_t size, size_t cls, unsigned long t)
{
	unsigned long f = irqoff_in(t);
	if (harden_.level) { /* hardened: no magazines, checks on the general path */
		irqoff_out(f, t);
		return kmalloc_caller(size, 0);
	}
	struct mcache *m = mcache_of(arch_cpu_id());
	void *p = mag_alloc_slow(&m->mag[cls], &m->cls[cls], class_central(m->node, cls));
	irqoff_out(f, t);
	return p ? p : kmalloc_caller(size, 0);
}
#endif

void *kmalloc(size_t size)
{
#if !KMEM_DEBUG_HEAP
	/* Fast path (steps 1-3 of the overview), inline and call-free; every
	 * other case leaves by a tail call. */
	size_t cls;
	if (__builtin_expect(size <= KMEM_SMALL_SIZE_MAX, 1))
		cls = kmem_size_to_class8[(size + KMEM_SMALL_SIZE_DIV - 1) / KMEM_SMALL_SIZE_DIV];
	else if (size <= KMEM_SMALL_MAX)
		cls = kmem_size_to_class(size);
	else
		return kmalloc_caller(size, RET_ADDR);
	unsigned long t = arch_fast_enter();
	int cpu = arch_cpu_id_fast();
	if (__builtin_expect(cpu < 0 || fast_nested(t), 0))
		return kmalloc_general(size, t);
	struct mcache *m = mcache_of((unsigned)cpu);
	struct mag_slot *ms = &m->mag[cls];
	void **e = ms->top;
	if (__builtin_expect(e == ms->base, 0))
		return kmalloc_refill(size, cls, t);
	e--;
	void *p = *e;
	_Atomic uint8_t *st = *mag_entry_st(e);
	if (__builtin_expect(atomic_load_explicit(st, memory_order_relaxed) != ms->id, 0))
		return kmalloc_refill(size, cls, t);
	ms->top = e;
	m->nmalloc[cls]++;
	/* Last: a byte store may alias everything above. */
	atomic_store_explicit(st, OBJ_CLIENT, memory_order_relaxed);
	if (__builtin_expect(arch_fast_exit_hit(t), 1))
		return p;
	return fast_exit_ret(t, p);
#else
	return kmalloc_caller(size, RET_ADDR);
#endif
}

void *kzalloc(size_t size)
{
	void *p = kmalloc_caller(size, RET_ADDR);
	if (p)
		memset(p, 0, size);
	return p;
}

void *kcalloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		return NULL;
	void *p = kmalloc_caller(total, RET_ADDR);
	if (p)
		memset(p, 0, total);
	return p;
}

static void *aligned_once(size_t size, size_t align, uintptr_t caller)
{
	if (align <= 8)
		return kmalloc_once(size, caller, KMEM_NO_NODE);
	size_t want = size ? size : 1;
	size_t need = want + REDZONE_SLACK; /* a large object's slack is large_alloc's */
	if (align <= PAGE_SIZE) {
		/* Objects of a class whose size is a multiple of align start
		 * at multiples of align from a page-aligned base. */
		if (align_up(need, align) <= KMEM_SMALL_MAX) {
			unsigned cls = kmem_size_to_class(align_up(need, align));
			while (kmem_class[cls].size % align)
				cls++;
			return small_alloc(cls, size, caller, KMEM_NO_NODE);
		}
		return large_alloc(want, 1, 0, SPAN_LARGE, caller, KMEM_NO_NODE);
	}
	/* A power-of-two class is naturally aligned (its spans are). */
	if (need <= align && align <= KMEM_SMALL_MAX)
		return small_alloc(kmem_size_to_class(align), size, caller, KMEM_NO_NODE);
	return large_alloc(want, align >> PAGE_SHIFT, 0, SPAN_LARGE, caller, KMEM_NO_NODE);
}

void *kmalloc_aligned(size_t size, size_t align)
{
	if (align == 0)
		align = 8; /* natural: what kmalloc gives */
	if (!is_pow2(align) || size > KMEM_MAX_ALLOC)
		return NULL;
	uintptr_t caller = RET_ADDR;
	return WITH_OOM_RETRY(oom_request(KMEM_OOM_OBJECT, size, align, 0),
	                      aligned_once(size, align, caller));
}

unsigned kmem_size_class(size_t size)
{
	return size <= KMEM_SMALL_MAX ? kmem_size_to_class(size) : 0;
}

/* ---------------------------------------------------------------------------
 * Freeing
 */

/* Reports a fault at p, in the descriptorless page run [head, head + len)
 * if len != 0 (described as the span it would have had). */
static void report_run_fault(enum kmem_fault_kind kind, const void *p, uint64_t head,
                             uint64_t len, const char *why)
{
	struct mspan view;
	if (len) {
		memset(&view, 0, sizeof view);
		view.base = pfn_to_virt(head);
		view.pfn = head;
		view.npages = len;
		atomic_store_explicit(&view.state, SPAN_RUN, memory_order_relaxed);
	}
	report_fault(kind, p, len ? &view : NULL, why);
}

/* Why p has no span: a free page, allocator metadata, a descriptorless
 * page run, or wild.  Decided
 * under the page's heap.lock, so a span being released concurrently (unmapped, pages
 * not yet free) is not mistaken for metadata; reported after unlocking. */
static void report_no_span(const void *p)
{
	uint64_t pfn = virt_to_pfn((uintptr_t)p);
	uint64_t phys = (uint64_t)((uintptr_t)p - mheap_.offset);
	enum kmem_fault_kind kind = KMEM_FAULT_WILD;
	const char *why = "not in memory the heap manages";
	uint64_t head = 0, len = 0;
	if (in_metadata_region(phys)) {
		kind = KMEM_FAULT_METADATA;
		why = "inside the metadata region";
	} else if (arena_of_pfn(pfn)) {
		struct pageheap *h = heap_of_pfn(pfn);
		unsigned long f = lock_irqsave(&h->lock);
		struct heap_arena *a = arena_of_pfn(pfn);
		uint64_t i = pfn & (ARENA_PAGES - 1);
		if ((a->pagebits[i >> 6] >> (i & 63)) & 1) {
			kind = KMEM_FAULT_FREE_PAGE;
			why = "page is free";
		} else if (span_of_pfn(pfn)) {
			kind = KMEM_FAULT_DOUBLE_FREE;
			why = "page was reused meanwhile";
		} else if (arena_run_of_locked(pfn, &head, &len)) {
			kind = KMEM_FAULT_WRONG_KIND;
			why = "page run: not an object (kpage_free frees it)";
		} else if ((a->managedbits[i >> 6] >> (i & 63)) & 1) {
			kind = KMEM_FAULT_METADATA;
			why = a->pagekind[i] == PKIND_GUARD ? "guard page next to allocator metadata"
			                                    : "page holds allocator metadata";
		}
		unlock_irqrestore(&h->lock, f);
	}
	report_run_fault(kind, p, head, len, why);
}

/* Validates p as the start of an object of s; returns its index or -1
 * after reporting.  (Whether the object is a client's is decided by its
 * state, with interrupts off: small_free_entered.) */
long small_index(const struct mspan *s, const void *p)
{
	uintptr_t off = (uintptr_t)p - s->base;
	uint32_t idx = span_obj_index(s, off);
	if (idx >= s->nelems) {
		report_fault(KMEM_FAULT_INTERIOR, p, s, "in the tail of a span");
		return -1;
	}
	if ((uintptr_t)idx * s->elemsize != off) {
		report_fault(KMEM_FAULT_INTERIOR, p, s, "not the start of an object");
		return -1;
	}
	return (long)idx;
}

/* Gives object idx (state st, a client's) straight back to its span: the
 * state first, then the freed bit (mspan.c, span_sweep checks the state),
 * then the queueing check (mcentral_freed).  Returns false if the bit was
 * set already: another free of the object raced this one. */
bool span_free(struct mspan *s, _Atomic uint8_t *st, uint32_t idx)
{
	/* Read before the bit goes in (the taken object keeps the span
	 * alive); the RMW below orders it. */
	uint64_t sweep0 = atomic_load_explicit(&s->sweepstate, memory_order_relaxed);
	atomic_store_explicit(st, OBJ_FREE, memory_order_relaxed);
	if (arch_bit_test_and_set(s->freed_bits, idx))
		return false;
	mcentral_freed(s, sweep0);
	return true;
}

/* Frees object idx of s, p its address, already checked to be an object
 * start; t is the caller's arch_fast_enter token.  With interrupts off,
 * the state must be OBJ_CLIENT -- checked here, so an interrupt cannot free
 * it in between -- then the object goes into this CPU's magazines (the
 * loaded one, else mag_free_slow), or straight to its span where the class
 * has no magazines or the call is nested in this CPU's fast path. */
static void small_free_entered(struct mspan *s, const void *p, uint32_t idx, unsigned long t)
{
	_Atomic uint8_t *st = &s->objstate[idx];
	struct mcentral *c = s->central;
	const char *bad = NULL;
	unsigned long f = irqoff_in(t);
	bool quarantined = false;
	unsigned state = atomic_load_explicit(st, memory_order_relaxed);
	if (state != OBJ_CLIENT) {
		bad = state == OBJ_QUARANTINE ? "object is not allocated (freed before, in the quarantine)"
		                              : "object is not allocated";
	} else if (s->dbg && !debug_on_free(s, idx, p)) {
		/* Reported (a red zone was written); the bad call does nothing. */
	} else if (fast_nested(t) || central_of_cpu(c, arch_cpu_id()) != c) {
		/* Nested in this CPU's fast path, or another node's object:
		 * straight to its span, where its own node's CPUs find it. */
		if (span_free(s, st, idx))
			atomic_fetch_add_explicit(&c->nfree, 1, memory_order_relaxed);
		else
			bad = "object is already free (freed twice at the same moment)";
	} else {
		struct mag_slot *ms;
		struct cpu_class *cc;
		cpu_slots(c, arch_cpu_id(), &ms, &cc);
		void **e = ms->top;
		if ((c->debug & DEBUG_HARDEN) && harden_quarantine_wants(s->elemsize)) {
			/* Hardened: held back (harden.c), given back by
			 * quarantine_release. */
			atomic_store_explicit(st, OBJ_QUARANTINE, memory_order_relaxed);
			cc->nfree++;
			quarantined = true;
		} else if (e != ms->end) {
			*e = (void *)p;
			*mag_entry_st(e) = st;
			ms->top = e + 1;
			atomic_store_explicit(st, (uint8_t)ms->id, memory_order_relaxed);
			cc->nfree++;
		} else if (!mag_free_slow(ms, cc, c, p, st)) {
			if (span_free(s, st, idx))
				cc->nfree++;
			else
				bad = "object is already free (freed twice at the same moment)";
		}
	}
	irqoff_out(f, t);
	if (bad)
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, bad);
	if (quarantined)
		quarantine_put((void *)p, (uint32_t)s->elemsize);
}

/* Validates and frees a small object (object caches, debug spans, the
 * slow path). */
void small_free(struct mspan *s, const void *p)
{
	long idx = small_index(s, p);
	if (idx >= 0)
		small_free_entered(s, p, (uint32_t)idx, arch_fast_enter());
}

/* Frees a large object or page run after validation; a hardened large
 * object is checked first (harden.c) and may go into the quarantine. */
static void whole_free(struct mspan *s, const void *p, enum span_state want)
{
	uint32_t expect = (uint32_t)want;
	if (!atomic_compare_exchange_strong(&s->state, &expect, SPAN_FREEING)) {
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "freed twice at once");
		return;
	}
	if (s->hflags) {
		bool q = harden_.level >= 2 && harden_quarantine_wants(s->npages << PAGE_SHIFT);
		if (!harden_large_free(s, p, q)) {
			/* Reported (its canary was written): left allocated. */
			atomic_store_explicit(&s->state, (uint32_t)want, memory_order_release);
			return;
		}
		if (q) {
			quarantine_put((void *)p, (uint32_t)(s->npages << PAGE_SHIFT));
			return;
		}
		harden_large_release(s);
	}
	mheap_free_large(s, want);
}

/* ---------------------------------------------------------------------------
 * The quarantine (hardened level >= 2; harden.c keeps the ring)
 */

/* Gives back an object that left the quarantine: its zeros checked, a
 * small one to its span (a taken object keeps its span alive, so the
 * lookup is of the span it was freed from), a large one to the mheap. */
static void quarantine_release(void *p)
{
	struct mspan *s = span_of_ptr(p);
	if (atomic_load_explicit(&s->state, memory_order_acquire) == SPAN_SMALL) {
		uint32_t idx = span_obj_index(s, (uintptr_t)p - s->base);
		harden_small_leaves(s, p);
		unsigned long f = arch_irq_save();
		span_free(s, &s->objstate[idx], idx); /* no freed bit yet: cannot fail */
		arch_irq_restore(f);
		return;
	}
	harden_large_release(s);
	mheap_free_large(s, SPAN_LARGE);
}

/* Puts p into the quarantine (p NULL: nothing), or with `all` empties it,
 * releasing what comes out, a few at a time outside its lock. */
static void quarantine_cycle(void *p, uint32_t bytes, bool all)
{
	void *out[4];
	unsigned n;
	do {
		n = harden_quarantine(p, bytes, all, out, 4);
		p = NULL;
		for (unsigned i = 0; i < n; i++)
			quarantine_release(out[i]);
	} while (n == 4);
}

/* A freed object (its state already says so) into the quarantine. */
static void quarantine_put(void *p, uint32_t bytes)
{
	quarantine_cycle(p, bytes, false);
}

/* Empties the quarantine (reclaim, out of memory). */
static void quarantine_flush(void)
{
	quarantine_cycle(NULL, 0, true);
}

/* The live span p points into, or NULL after reporting why there is none. */
static struct mspan *span_or_report(const void *p)
{
	struct mspan *s = span_of_ptr(p);
	if (!s)
		report_no_span(p);
	return s;
}

/* Everything kfree's fast path does not handle: NULL, bad pointers (with
 * their reports), debug spans, large objects, page runs. */
static __attribute__((noinline)) void kfree_slow(const void *p)
{
	struct mspan *s = p ? span_or_report(p) : NULL;
	if (!s)
		return;
	switch (atomic_load_explicit(&s->state, memory_order_acquire)) {
	case SPAN_SMALL:
		small_free(s, p);
		return;
	case SPAN_LARGE:
		if ((uintptr_t)p != harden_large_start(s))
			report_fault(KMEM_FAULT_INTERIOR, p, s, "inside a large object");
		else
			whole_free(s, p, SPAN_LARGE);
		return;
	case SPAN_RUN:
		report_fault(KMEM_FAULT_WRONG_KIND, p, s, "page run freed with kfree");
		return;
	default:
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s,
		             s->hflags & HL_QUARANTINE ? "freed before, in the quarantine"
		                                       : "span is being freed");
		return;
	}
}

/* kfree's fast path found, inside the allocator (token t), what it does
 * not handle (a CPU index only arch_cpu_id() knows, a call nested in this
 * CPU's fast path, an object that is not a client's, another node's
 * object, a full magazine): it leaves and takes the general path, which
 * looks the span up again and validates everything anew.  Not the span
 * the fast path saw: a double free racing the span's release may find no
 * span by now, or a new span of another class whose state bytes the old
 * index would overrun (tests/test_freemem.c,
 * test_double_free_racing_metadata_release, caught both).  Only p and t
 * are passed so that the fast path keeps few values live and needs no
 * stack frame. */
static __attribute__((noinline)) void kfree_entered(const void *p, unsigned long t)
{
	arch_fast_exit(t);
	kfree_slow(p);
}

void kfree(const void *p)
{
	/* Fast path: a client's object of a plain kmalloc span, and room in
	 * this CPU's loaded magazine.  NULL and every bad pointer fail one of
	 * these tests and go to kfree_slow or kfree_entered:
	 *   idx < fast_nelems      span is SMALL, kmalloc, not debug, idx in range
	 *   idx * elemsize == off  p is an object start
	 *   state == OBJ_CLIENT    a client holds it (checked inside the allocator) */
	struct mspan *s = span_of_ptr(p);
	if (__builtin_expect(s != NULL, 1)) {
		uintptr_t off = (uintptr_t)p - s->base;
		uint32_t idx = span_obj_index(s, off);
		if (__builtin_expect(idx < atomic_load_explicit(&s->fast_nelems, memory_order_relaxed) &&
		                         (uintptr_t)idx * s->elemsize == off,
		                     1)) {
			_Atomic uint8_t *st = &s->objstate[idx];
			size_t cls = s->sizeclass;
			unsigned long t = arch_fast_enter();
			int cpu = arch_cpu_id_fast();
			if (__builtin_expect(cpu < 0 || fast_nested(t), 0))
				return kfree_entered(p, t);
			struct mcache *m = mcache_of((unsigned)cpu);
			struct mag_slot *ms = &m->mag[cls];
			void **e = ms->top;
			if (__builtin_expect(atomic_load_explicit(st, memory_order_relaxed) != OBJ_CLIENT ||
			                         e == ms->end || KMEM_OTHER_NODE(s, m),
			                     0))
				return kfree_entered(p, t);
			uint8_t id = (uint8_t)ms->id;
			*e = (void *)p;
			*mag_entry_st(e) = st;
			ms->top = e + 1;
			m->nfree[cls]++;
			/* Last: a byte store may alias everything above. */
			atomic_store_explicit(st, id, memory_order_relaxed);
			if (__builtin_expect(arch_fast_exit_hit(t), 1))
				return;
			arch_fast_exit(t);
			return;
		}
	}
	kfree_slow(p);
}

size_t ksize(const void *p)
{
	struct mspan *s = p ? span_or_report(p) : NULL;
	if (!s)
		return 0;
	switch (atomic_load_explicit(&s->state, memory_order_acquire)) {
	case SPAN_SMALL: {
		long idx = small_index(s, p);
		if (idx < 0)
			return 0;
		if (atomic_load_explicit(&s->objstate[idx], memory_order_relaxed) != OBJ_CLIENT) {
			report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "object is not allocated");
			return 0;
		}
		return s->dbg ? s->dbg[idx].size : s->elemsize;
	}
	case SPAN_LARGE:
		if ((uintptr_t)p == harden_large_start(s))
			return s->hflags ? s->hsize : s->npages << PAGE_SHIFT;
		report_fault(KMEM_FAULT_INTERIOR, p, s, "inside a large object");
		return 0;
	case SPAN_RUN:
		report_fault(KMEM_FAULT_WRONG_KIND, p, s, "page run passed as an object");
		return 0;
	default:
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "span is being freed");
		return 0;
	}
}

void *krealloc(void *p, size_t n)
{
	if (!p)
		return kmalloc(n);
	if (n == 0) {
		kfree(p);
		return NULL;
	}
	size_t have = ksize(p);
	if (have == 0)
		return NULL; /* reported */
	/* Debug objects always move: their red zone starts at the old size. */
	if (n <= have && n >= have / 2 && !span_of_ptr(p)->dbg)
		return p;
	void *q = kmalloc_caller(n, RET_ADDR);
	if (!q)
		return NULL;
	memcpy(q, p, n < have ? n : have);
	kfree(p);
	return q;
}

/* ---------------------------------------------------------------------------
 * Page runs
 */

/* A descriptorless page run (kpage_free's lookup finds it in the arena,
 * mheap.c); out of pages, after reclaim and a second try.  Its caller is
 * not recorded (no descriptor to keep it in). */
static void *run_alloc(uint64_t npages, uint64_t align_pages, uint64_t max_pfn, int node)
{
	unsigned want = node_or_here(node);
	uint64_t pfn = mheap_alloc_run(npages, align_pages, max_pfn, want);
	if (pfn == PAGE_NONE) {
		reclaim_here();
		pfn = mheap_alloc_run(npages, align_pages, max_pfn, want);
		if (pfn == PAGE_NONE)
			return NULL;
	}
	return (void *)pfn_to_virt(pfn);
}

/* kpage_free of a pointer without a span: a descriptorless run, or a bad
 * pointer (reported). */
static void run_free(const void *p, size_t npages)
{
	uint64_t head, len;
	bool at_start = ((uintptr_t)p & (PAGE_SIZE - 1)) == 0;
	switch (mheap_free_run(virt_to_pfn((uintptr_t)p), at_start, npages, &head, &len)) {
	case RUN_FREED:
		return;
	case RUN_NONE:
		report_no_span(p);
		return;
	case RUN_INTERIOR:
		report_run_fault(KMEM_FAULT_INTERIOR, p, head, len, "inside a page run");
		return;
	case RUN_BAD_SIZE:
		report_run_fault(KMEM_FAULT_BAD_SIZE, p, head, len,
		                 "page count differs from the allocation");
		return;
	}
}

void *kpage_alloc(size_t npages, size_t align, uint64_t max_phys)
{
	return kpage_alloc_node(npages, align, max_phys, KMEM_NO_NODE);
}

void *kpage_alloc_node(size_t npages, size_t align, uint64_t max_phys, int node)
{
	if (node != KMEM_NO_NODE && (node < 0 || (unsigned)node >= mheap_.nnodes))
		return NULL;
	if (align == 0)
		align = PAGE_SIZE; /* natural: a page */
	if (npages == 0 || !is_pow2(align) || npages > (1ull << SUM_TOP))
		return NULL;
	uint64_t align_pages = align > PAGE_SIZE ? align >> PAGE_SHIFT : 1;
	uint64_t max_pfn = 0;
	if (max_phys) {
		max_pfn = max_phys >> PAGE_SHIFT;
		if (max_pfn == 0)
			return NULL;
	}
	uintptr_t caller = RET_ADDR;
	if (npages <= RUN_INLINE_MAX)
		return WITH_OOM_RETRY(oom_request(KMEM_OOM_PAGES, npages << PAGE_SHIFT, align, max_phys),
		                      run_alloc(npages, align_pages, max_pfn, node));
	return WITH_OOM_RETRY(oom_request(KMEM_OOM_PAGES, npages << PAGE_SHIFT, align, max_phys),
	                      large_alloc(npages << PAGE_SHIFT, align_pages, max_pfn, SPAN_RUN, caller,
	                                  node));
}

void kpage_free(void *p, size_t npages)
{
	struct mspan *s = p ? span_of_ptr(p) : NULL;
	if (!s) {
		if (p)
			run_free(p, npages);
		return;
	}
	uint32_t state = atomic_load_explicit(&s->state, memory_order_acquire);
	if (state == SPAN_SMALL || state == SPAN_LARGE) {
		report_fault(KMEM_FAULT_WRONG_KIND, p, s, "object freed with kpage_free");
		return;
	}
	if (state != SPAN_RUN) {
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "page run is being freed");
		return;
	}
	if ((uintptr_t)p != s->base) {
		report_fault(KMEM_FAULT_INTERIOR, p, s, "inside a page run");
		return;
	}
	if (npages != s->npages) {
		report_fault(KMEM_FAULT_BAD_SIZE, p, s, "page count differs from the allocation");
		return;
	}
	whole_free(s, p, SPAN_RUN);
}

uint64_t kmem_virt_to_phys(const void *p)
{
	return (uint64_t)((uintptr_t)p - mheap_.offset);
}

int kmem_virt_to_node(const void *p)
{
	uint64_t pfn = virt_to_pfn((uintptr_t)p);
	return pfn_is_managed(pfn) ? pfn_node(pfn) : -1;
}

unsigned kmem_nr_nodes(void)
{
	return mheap_.nnodes;
}

/* ---------------------------------------------------------------------------
 * CPUs and reclaim
 */

int kmem_cpu_online(unsigned cpu)
{
	if (cpu >= mheap_.max_cpus)
		return -KMEM_EINVAL;
	unsigned long f = lock_irqsave(&mheap_.caches_lock);
	struct mcache *c = mcache_of(cpu);
	if (!c->online) {
		c->online = true;
		mheap_.cpus_online++;
	}
	unlock_irqrestore(&mheap_.caches_lock, f);
	return 0;
}

int kmem_cpu_offline(unsigned cpu)
{
	if (cpu >= mheap_.max_cpus)
		return -KMEM_EINVAL;
	/* Entered as the fast paths are, so that kmalloc_nolock in an NMI
	 * meanwhile (nolock.c) leaves this CPU's magazines alone. */
	unsigned long t = arch_fast_enter();
	unsigned long f = irqoff_in(t);
	mcache_flush(cpu);
	lock_acquire(&mheap_.caches_lock);
	struct mcache *c = mcache_of(cpu);
	if (c->online) {
		c->online = false;
		mheap_.cpus_online--;
	}
	lock_release(&mheap_.caches_lock);
	irqoff_out(f, t);
	return 0;
}

size_t kmem_reclaim(void)
{
	return reclaim_here();
}
