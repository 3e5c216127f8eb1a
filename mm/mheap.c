/*
 * mm/mheap.c - spans from pages: allocation, release, large objects, page
 * runs and reclaim.  See malloc.c for an overview.
 *
 * mheap.lock protects the page allocator (pagealloc.c: bitmaps, summaries
 * and the hull mheap_.sum_level), the arena map writes and the copying of
 * shared arenas (heaparena.c: arena_own_locked, arena_next), fixalloc and
 * the page counters.  Lock order: an mcentral lock may be held when taking
 * it, never the reverse.
 *
 * A span's life under the lock:
 *     pages_find_locked -> pages_set_locked(free = false) (copies a shared
 *     arena first) -> arena_map_span_locked (release) ... unmap ->
 *     pages_set_locked(free = true).
 *     pages_free + pages_small + pages_large + pages_runs + pages_metadata
 *         == pages_managed   at every unlock.
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

/* pages_find_locked for a request that prefers `node`: that node's
 * ranges first, then the other nodes' in distance order (node_order).
 * Counts the result in node_count[node].  Returns the first pfn or
 * PAGE_NONE. */
uint64_t node_pages_find_locked(uint64_t npages, uint64_t align, uint64_t max_pfn,
                                unsigned node)
{
	uint64_t hi = max_pfn ? max_pfn : UINT64_MAX, pfn = PAGE_NONE;
	unsigned served = 0;
	if (mheap_.nnodes == 1) {
		pfn = pages_find_locked(npages, align, 1, hi);
	} else {
		unsigned nr = atomic_load_explicit(&mheap_.nranges, memory_order_relaxed);
		for (unsigned k = 0; k < mheap_.nnodes && pfn == PAGE_NONE; k++) {
			served = mheap_.node_order[node][k];
			for (unsigned i = 0; i < nr && pfn == PAGE_NONE; i++) {
				const struct node_range *r = &mheap_.node_ranges[i];
				if (r->node == served)
					pfn = pages_find_locked(npages, align, r->lo ? r->lo : 1,
					                        r->hi < hi ? r->hi : hi);
			}
		}
	}
	if (pfn != PAGE_NONE) {
		struct node_count *c = &mheap_.node_count[node];
		if (served == node) {
			c->alloc_local++;
			c->pages_local += npages;
		} else {
			c->alloc_remote++;
			c->pages_remote += npages;
		}
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
	unsigned long f = lock_irqsave(&mheap_.lock);
	/* Its metadata is the node's too (fixalloc.c). */
	struct mspan *s = fixalloc_alloc_node_locked(&mheap_.spanalloc, node);
	void *meta = NULL;
	struct obj_debug *dbg = NULL;
	unsigned bucket = central ? spanmeta_bucket(central->nelems) : 0;
	struct fixalloc *dbgfa = central ? &mheap_.dbgalloc[dbg_bucket(central->nelems)] : NULL;
	if (s && central) {
		meta = fixalloc_alloc_node_locked(&mheap_.spanmeta[bucket], node);
		if (meta && central->debug)
			dbg = fixalloc_alloc_node_locked(dbgfa, node);
		if (!meta || (central->debug && !dbg)) {
			if (meta)
				fixalloc_free_locked(&mheap_.spanmeta[bucket], meta);
			fixalloc_free_locked(&mheap_.spanalloc, s);
			s = NULL;
			meta = NULL;
		}
	}
	uint64_t pfn = PAGE_NONE;
	if (s)
		pfn = node_pages_find_locked(npages, align_pages, max_pfn, node);
	if (pfn == PAGE_NONE) {
		if (dbg)
			fixalloc_free_locked(dbgfa, dbg);
		if (meta)
			fixalloc_free_locked(&mheap_.spanmeta[bucket], meta);
		if (s)
			fixalloc_free_locked(&mheap_.spanalloc, s);
		unlock_irqrestore(&mheap_.lock, f);
		return NULL;
	}
	pages_set_locked(pfn, npages, false);
	mheap_.pages_free -= npages;

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
		mheap_.pages_small += npages;
	} else {
		s->elemsize = npages << PAGE_SHIFT;
		s->nelems = 1;
		if (state == SPAN_LARGE) {
			mheap_.pages_large += npages;
			mheap_.large_objects++;
		} else {
			mheap_.pages_runs += npages;
			mheap_.page_runs++;
		}
	}
	atomic_store_explicit(&s->state, (uint32_t)state, memory_order_relaxed);
	arena_map_span_locked(s); /* release: s is complete */
	bool guards = mheap_.nguard_queue || mheap_.guard_rescan; /* fixalloc made some */
	unlock_irqrestore(&mheap_.lock, f);
	if (guards)
		guards_protect();
	return s;
}

void mheap_free_span_locked(struct mspan *s)
{
	arena_unmap_span_locked(s);
	if (s->alloc_bits) {
		mheap_.pages_small -= s->npages;
		fixalloc_free_locked(&mheap_.spanmeta[s->meta_bucket], (void *)s->alloc_bits);
		if (s->dbg)
			fixalloc_free_locked(&mheap_.dbgalloc[dbg_bucket(s->nelems)], s->dbg);
	}
	pages_set_locked(s->pfn, s->npages, true);
	mheap_.pages_free += s->npages;
	/* Next generation: a lock-free kfree still holding s fails its CAS. */
	uint64_t st = atomic_load_explicit(&s->sweepstate, memory_order_relaxed);
	atomic_store_explicit(&s->sweepstate, SS_MAKE(SS_GEN(st) + 1, LOC_SWEEPING),
	                      memory_order_release);
	atomic_store_explicit(&s->state, SPAN_DEAD, memory_order_release);
	fixalloc_free_locked(&mheap_.spanalloc, s);
}

void mheap_free_span(struct mspan *s)
{
	unsigned long f = lock_irqsave(&mheap_.lock);
	mheap_free_span_locked(s);
	unlock_irqrestore(&mheap_.lock, f);
}

/* Frees a large object or page run whose state the caller moved to
 * SPAN_FREEING (the CAS that decides a double free). */
void mheap_free_large(struct mspan *s, enum span_state was)
{
	unsigned long f = lock_irqsave(&mheap_.lock);
	if (was == SPAN_LARGE) {
		mheap_.pages_large -= s->npages;
		mheap_.large_objects--;
	} else {
		mheap_.pages_runs -= s->npages;
		mheap_.page_runs--;
	}
	mheap_free_span_locked(s);
	unlock_irqrestore(&mheap_.lock, f);
}

/* A page run of at most RUN_INLINE_MAX pages without a descriptor: its
 * pages say what they are (heap_arena.pagekind), so a kernel that fills
 * memory with page runs spends no metadata on them.  Placed as
 * mheap_alloc_span places a span.  Returns its first pfn or PAGE_NONE. */
uint64_t mheap_alloc_run(uint64_t npages, uint64_t align_pages, uint64_t max_pfn,
                         unsigned node)
{
	KASSERT(npages >= 1 && npages <= RUN_INLINE_MAX);
	unsigned long f = lock_irqsave(&mheap_.lock);
	uint64_t pfn = node_pages_find_locked(npages, align_pages, max_pfn, node);
	if (pfn != PAGE_NONE) {
		pages_set_locked(pfn, npages, false); /* owns the arenas */
		arena_run_mark_locked(pfn, npages, true);
		mheap_.pages_free -= npages;
		mheap_.pages_runs += npages;
		mheap_.page_runs++;
	}
	unlock_irqrestore(&mheap_.lock, f);
	return pfn;
}

/* Frees the descriptorless run that starts at page pfn (at_start: the
 * pointer was that page's first byte) and has npages pages.  Decided and
 * done under the lock, so of two frees of one run exactly one succeeds.
 * Otherwise changes nothing and says why: pfn is in no such run
 * (RUN_NONE), not at its start, or npages is not its length; *head and
 * *len then describe the run, for the report. */
enum run_free mheap_free_run(uint64_t pfn, bool at_start, uint64_t npages, uint64_t *head,
                             uint64_t *len)
{
	enum run_free r = RUN_FREED;
	unsigned long f = lock_irqsave(&mheap_.lock);
	if (!arena_run_of_locked(pfn, head, len))
		r = RUN_NONE;
	else if (*head != pfn || !at_start)
		r = RUN_INTERIOR;
	else if (*len != npages)
		r = RUN_BAD_SIZE;
	if (r == RUN_FREED) {
		arena_run_mark_locked(pfn, npages, false);
		pages_set_locked(pfn, npages, true);
		mheap_.pages_free += npages;
		mheap_.pages_runs -= npages;
		mheap_.page_runs--;
	}
	unlock_irqrestore(&mheap_.lock, f);
	return r;
}
