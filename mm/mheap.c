/*
 * mm/mheap.c - spans from pages: allocation, release, large objects, page
 * runs and reclaim.  See malloc.c for an overview.
 *
 * Each node has its own page heap (struct pageheap) with its own lock,
 * heap.lock: it protects the page allocator over the arenas the node owns
 * (pagealloc.c: bitmaps, summaries, the heap's hull), their map writes and
 * page kinds, the copying of its shared arenas (heaparena.c:
 * arena_own_locked), the node's fixalloc lists, bump range and runs, and
 * the heap's page counters.  A CPU holds one heap.lock at a time (only
 * heaps_lock_all takes them all, in node order).  Lock order: an mcentral
 * lock may be held when taking it, never the reverse.
 *
 * A span's life: its descriptor and metadata blocks from its node's
 * fixalloc (that node's lock), then under the lock of the heap with the
 * pages: pages_find_locked -> pages_set_locked(free = false) (copies a
 * shared arena first) -> arena_map_span_locked (release) ... unmap ->
 * pages_set_locked(free = true); the blocks go back under their node's
 * lock after.
 *     pages_free + pages_small + pages_large + pages_runs + pages_metadata
 *         == pages_managed   at every unlock, per heap.
 */
#include "mtypes.h"

struct mheap mheap_;

/* Sizes of the span metadata blocks (mtypes.h, span_meta_bytes): the
 * biggest, 704, holds 512 objects' bits and states. */
static const uint16_t spanmeta_size[SPAN_META_BUCKETS] = {128, 256, 384, 704};
_Static_assert(704 >= 2 * 8 * (KMEM_MAX_SPAN_OBJECTS / 64) + KMEM_MAX_SPAN_OBJECTS + 1,
               "the biggest bucket holds the biggest span");

void spanmeta_init(void)
{
	for (unsigned b = 0; b < SPAN_META_BUCKETS; b++)
		fixalloc_init(&mheap_.spanmeta[b], spanmeta_size[b]);
}

static unsigned spanmeta_bucket(uint32_t nelems)
{
	unsigned b = 0;
	while (spanmeta_size[b] < span_meta_bytes(nelems))
		b++;
	return b;
}

/* ---------------------------------------------------------------------------
 * NUMA nodes (malloc.c, "NUMA nodes"): a node is the set of its ranges in
 * mheap_.node_ranges; a search for a node searches each of its ranges with
 * the summaries' own bounds, so nodes cost nothing in the page tree.
 */

unsigned node_or_here(int node)
{
	return node >= 0 ? (unsigned)node : mheap_.cpu_node[arch_cpu_id()];
}

/* The newest of the n ranges of t that holds pfn, or NULL. */
const struct node_range *node_range_of(const struct node_range *t, unsigned n, uint64_t pfn)
{
	for (unsigned i = n; i-- > 0;)
		if (pfn >= t[i].lo && pfn < t[i].hi)
			return &t[i];
	return NULL;
}

/* The node of pfn (from the newest range holding it: a hot-add is newer
 * than init's ranges), or -1 if no range holds it.  Lock-free. */
int pfn_node(uint64_t pfn)
{
	if (mheap_.nnodes == 1)
		return 0;
	const struct node_range *r = node_range_of(
		mheap_.node_ranges, atomic_load_explicit(&mheap_.nranges, memory_order_acquire), pfn);
	return r ? (int)r->node : -1;
}

/* ---------------------------------------------------------------------------
 * The nodes' page heaps (malloc.c, "NUMA nodes").
 */

unsigned long heaps_lock_all(void)
{
	unsigned long f = arch_irq_save();
	lock_acquire(&mheap_.heap[0]->lock);
	for (unsigned k = 1; k < mheap_.nnodes; k++)
		lock_acquire_more(&mheap_.heap[k]->lock);
	return f;
}

void heaps_unlock_all(unsigned long flags)
{
	for (unsigned k = mheap_.nnodes; k-- > 1;)
		lock_release_more(&mheap_.heap[k]->lock);
	lock_release(&mheap_.heap[0]->lock);
	arch_irq_restore(flags);
}

void heaps_count_locked(struct heap_count *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned k = 0; k < mheap_.nnodes; k++) {
		const struct pageheap *h = mheap_.heap[k];
		out->pages_managed += h->pages_managed;
		out->pages_free += h->pages_free;
		out->pages_small += h->pages_small;
		out->pages_large += h->pages_large;
		out->pages_runs += h->pages_runs;
		out->pages_metadata += h->pages_metadata;
		out->large_objects += h->large_objects;
		out->page_runs += h->page_runs;
	}
}

/* Searches h for npages in [lo, hi); on success returns with h's lock
 * held.  Interrupts off. */
static uint64_t heap_try(struct pageheap *h, uint64_t npages, uint64_t align, uint64_t lo,
                         uint64_t hi)
{
	lock_acquire(&h->lock);
	uint64_t pfn = pages_find_locked(h, npages, align, lo, hi);
	if (pfn == PAGE_NONE)
		lock_release(&h->lock);
	return pfn;
}

/* Tries node's ranges: each in its node's heap, and at its ends in the
 * heap that owns an arena the range shares with a lower node. */
static uint64_t node_try(unsigned node, uint64_t npages, uint64_t align, uint64_t hi,
                         struct pageheap **hp)
{
	unsigned nr = atomic_load_explicit(&mheap_.nranges, memory_order_acquire);
	for (unsigned i = 0; i < nr; i++) {
		const struct node_range *r = &mheap_.node_ranges[i];
		uint64_t lo = r->lo ? r->lo : 1, top = r->hi < hi ? r->hi : hi;
		if (r->node != node || lo >= top)
			continue;
		int owner[3] = {(int)node, arena_owner(lo), arena_owner(top - 1)};
		for (unsigned j = 0; j < 3; j++) {
			if (owner[j] < 0 || (j && owner[j] == owner[0]) || (j == 2 && owner[2] == owner[1]))
				continue;
			*hp = mheap_.heap[owner[j]];
			uint64_t pfn = heap_try(*hp, npages, align, lo, top);
			if (pfn != PAGE_NONE)
				return pfn;
		}
	}
	return PAGE_NONE;
}

uint64_t node_pages_find_lock(uint64_t npages, uint64_t align, uint64_t max_pfn,
                              unsigned node, struct pageheap **hp)
{
	uint64_t hi = max_pfn ? max_pfn : UINT64_MAX, pfn = PAGE_NONE;
	for (unsigned k = 0; k < mheap_.nnodes && pfn == PAGE_NONE && mheap_.nnodes > 1; k++)
		pfn = node_try(mheap_.node_order[node][k], npages, align, hi, hp);
	/* Last (one node: only), each heap whole: pages a hot-add put in an
	 * arena of another node's range. */
	for (unsigned k = 0; k < mheap_.nnodes && pfn == PAGE_NONE; k++) {
		*hp = mheap_.heap[mheap_.node_order[node][k]];
		pfn = heap_try(*hp, npages, align, 1, hi);
	}
	if (pfn != PAGE_NONE) {
		struct node_count *c = &mheap_.node_count[node];
		bool local = pfn_node(pfn) == (int)node;
		atomic_fetch_add_explicit(local ? &c->alloc_local : &c->alloc_remote, 1,
		                          memory_order_relaxed);
		atomic_fetch_add_explicit(local ? &c->pages_local : &c->pages_remote, npages,
		                          memory_order_relaxed);
	}
	return pfn;
}

/* A span of npages pages whose first pfn is a multiple of align_pages and
 * whose last page is below max_pfn (0: no ceiling), fully initialised and
 * published in the arena map.  Small spans (central != NULL) get bitmaps
 * and are handed out as LOC_CACHED.  The pages come from the node of
 * the central, or else `node`, if it has a run that fits, else from the
 * nearest node that has.  Returns NULL iff no such run or no metadata is
 * left. */
struct mspan *mheap_alloc_span(uint64_t npages, uint64_t align_pages,
                               uint64_t max_pfn, enum span_state state,
                               struct mcentral *central, unsigned node)
{
	if (central)
		node = central->node;
	/* Its metadata is the node's too (fixalloc.c), taken first: the page
	 * heap's lock is then held for the pages only. */
	struct mspan *s = fixalloc_alloc_node(&mheap_.spanalloc, node);
	void *meta = NULL;
	struct obj_debug *dbg = NULL;
	unsigned bucket = central ? spanmeta_bucket(central->nelems) : 0;
	struct fixalloc *dbgfa = central ? &mheap_.dbgalloc[dbg_bucket(central->nelems)] : NULL;
	if (s && central) {
		meta = fixalloc_alloc_node(&mheap_.spanmeta[bucket], node);
		if (meta && central->debug)
			dbg = fixalloc_alloc_node(dbgfa, node);
	}
	uint64_t pfn = PAGE_NONE;
	struct pageheap *h = NULL;
	unsigned long f = arch_irq_save();
	if (s && (!central || (meta && (!central->debug || dbg))))
		pfn = node_pages_find_lock(npages, align_pages, max_pfn, node, &h);
	if (pfn == PAGE_NONE) {
		arch_irq_restore(f);
		if (dbg)
			fixalloc_free(dbgfa, dbg);
		if (meta)
			fixalloc_free(&mheap_.spanmeta[bucket], meta);
		if (s)
			fixalloc_free(&mheap_.spanalloc, s);
		guards_protect();
		return NULL;
	}
	pages_set_locked(pfn, npages, false);
	h->pages_free -= npages;

	/* Fresh descriptor: keep only the generation of its previous life. */
	uint64_t gen = SS_GEN(atomic_load_explicit(&s->sweepstate, memory_order_relaxed));
	memset(s, 0, sizeof(*s));
	atomic_store_explicit(&s->sweepstate, SS_MAKE(gen, LOC_CACHED), memory_order_relaxed);
	s->pfn = pfn;
	s->npages = npages;
	s->base = pfn_to_virt(pfn);
	s->node = (uint8_t)(central ? central->node : (unsigned)pfn_node(pfn));
	if (central) {
		s->meta_bucket = (uint8_t)bucket;
		span_init_small(s, central, meta);
		if (dbg) {
			memset(dbg, 0, dbgfa->size);
			s->dbg = dbg;
			debug_poison_span(s);
		}
		h->pages_small += npages;
	} else {
		s->elemsize = npages << PAGE_SHIFT;
		s->nelems = 1;
		if (state == SPAN_LARGE) {
			h->pages_large += npages;
			h->large_objects++;
		} else {
			h->pages_runs += npages;
			h->page_runs++;
		}
	}
	atomic_store_explicit(&s->state, (uint32_t)state, memory_order_relaxed);
	arena_map_span_locked(s); /* release: s is complete */
	lock_release(&h->lock);
	arch_irq_restore(f);
	guards_protect(); /* any the metadata above made */
	return s;
}

/* Releases s: its pages under their heap's lock, then its metadata
 * blocks under their nodes' (a lock-free kfree still holding s fails its
 * CAS on the generation bumped first). */
static void span_release(struct mspan *s, enum span_state was)
{
	struct pageheap *h = heap_of_pfn(s->pfn);
	void *meta = s->alloc_bits ? (void *)s->alloc_bits : NULL;
	struct obj_debug *dbg = s->dbg;
	unsigned bucket = s->meta_bucket;
	uint32_t nelems = s->nelems;
	unsigned long f = lock_irqsave(&h->lock);
	arena_unmap_span_locked(s);
	if (meta)
		h->pages_small -= s->npages;
	else if (was == SPAN_LARGE) {
		h->pages_large -= s->npages;
		h->large_objects--;
	} else if (was == SPAN_RUN) {
		h->pages_runs -= s->npages;
		h->page_runs--;
	}
	pages_set_locked(s->pfn, s->npages, true);
	h->pages_free += s->npages;
	/* Next generation: a lock-free kfree still holding s fails its CAS. */
	uint64_t st = atomic_load_explicit(&s->sweepstate, memory_order_relaxed);
	atomic_store_explicit(&s->sweepstate, SS_MAKE(SS_GEN(st) + 1, LOC_SWEEPING),
	                      memory_order_release);
	atomic_store_explicit(&s->state, SPAN_DEAD, memory_order_release);
	unlock_irqrestore(&h->lock, f);
	if (meta) {
		fixalloc_free(&mheap_.spanmeta[bucket], meta);
		if (dbg)
			fixalloc_free(&mheap_.dbgalloc[dbg_bucket(nelems)], dbg);
	}
	fixalloc_free(&mheap_.spanalloc, s);
}

void mheap_free_span(struct mspan *s)
{
	span_release(s, SPAN_DEAD);
}

/* Frees a large object or page run whose state the caller moved to
 * SPAN_FREEING (the CAS that decides a double free). */
void mheap_free_large(struct mspan *s, enum span_state was)
{
	span_release(s, was);
}

/* A page run of at most RUN_INLINE_MAX pages without a descriptor: its
 * pages say what they are (heap_arena.pagekind), so a kernel that fills
 * memory with page runs spends no metadata on them.  Placed as
 * mheap_alloc_span places a span.  Returns its first pfn or PAGE_NONE. */
uint64_t mheap_alloc_run(uint64_t npages, uint64_t align_pages, uint64_t max_pfn,
                         unsigned node)
{
	KASSERT(npages >= 1 && npages <= RUN_INLINE_MAX);
	struct pageheap *h;
	unsigned long f = arch_irq_save();
	uint64_t pfn = node_pages_find_lock(npages, align_pages, max_pfn, node, &h);
	if (pfn != PAGE_NONE) {
		pages_set_locked(pfn, npages, false); /* owns the arenas */
		arena_run_mark_locked(pfn, npages, true);
		h->pages_free -= npages;
		h->pages_runs += npages;
		h->page_runs++;
		lock_release(&h->lock);
	}
	arch_irq_restore(f);
	return pfn;
}

/* Frees the descriptorless run that starts at page pfn (at_start: the
 * pointer was that page's first byte) and has npages pages.  Decided and
 * done under the lock of the heap owning pfn, so of two frees of one run
 * exactly one succeeds.  Otherwise changes nothing and says why: pfn is
 * in no such run (RUN_NONE), not at its start, or npages is not its
 * length; *head and *len then describe the run, for the report. */
enum run_free mheap_free_run(uint64_t pfn, bool at_start, uint64_t npages, uint64_t *head,
                             uint64_t *len)
{
	enum run_free r = RUN_FREED;
	struct pageheap *h = heap_of_pfn(pfn);
	if (!h)
		return RUN_NONE;
	unsigned long f = lock_irqsave(&h->lock);
	if (!arena_run_of_locked(pfn, head, len))
		r = RUN_NONE;
	else if (*head != pfn || !at_start)
		r = RUN_INTERIOR;
	else if (*len != npages)
		r = RUN_BAD_SIZE;
	if (r == RUN_FREED) {
		arena_run_mark_locked(pfn, npages, false);
		pages_set_locked(pfn, npages, true);
		h->pages_free += npages;
		h->pages_runs -= npages;
		h->page_runs--;
	}
	unlock_irqrestore(&h->lock, f);
	return r;
}
