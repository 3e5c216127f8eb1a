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

/* A span of npages pages whose first pfn is a multiple of align_pages and
 * whose last page is below max_pfn (0: no ceiling), fully initialised and
 * published in the arena map.  Small spans (central != NULL) get bitmaps
 * and are handed out as LOC_CACHED.  Returns NULL iff no such run or no
 * metadata is left. */
struct mspan *mheap_alloc_span(uint64_t npages, uint64_t align_pages,
                               uint64_t max_pfn, enum span_state state,
                               struct mcentral *central)
{
	unsigned long f = lock_irqsave(&mheap_.lock);
	struct mspan *s = fixalloc_alloc_locked(&mheap_.spanalloc);
	_Atomic uint64_t *bits = NULL;
	struct obj_debug *dbg = NULL;
	if (s && central) {
		bits = fixalloc_alloc_locked(&mheap_.bitsalloc);
		if (bits && central->debug)
			dbg = fixalloc_alloc_locked(&mheap_.dbgalloc);
		if (!bits || (central->debug && !dbg)) {
			if (bits)
				fixalloc_free_locked(&mheap_.bitsalloc, (void *)bits);
			fixalloc_free_locked(&mheap_.spanalloc, s);
			s = NULL;
			bits = NULL;
		}
	}
	uint64_t pfn = PAGE_NONE;
	if (s)
		pfn = pages_find_locked(npages, align_pages, 1, max_pfn ? max_pfn : UINT64_MAX);
	if (pfn == PAGE_NONE) {
		if (dbg)
			fixalloc_free_locked(&mheap_.dbgalloc, dbg);
		if (bits)
			fixalloc_free_locked(&mheap_.bitsalloc, (void *)bits);
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
	if (central) {
		s->alloc_bits = bits;
		s->freed_bits = bits + SPAN_MAX_WORDS;
		span_init_small(s, central);
		if (dbg) {
			memset(dbg, 0, mheap_.dbgalloc.size);
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
	unlock_irqrestore(&mheap_.lock, f);
	return s;
}

void mheap_free_span_locked(struct mspan *s)
{
	arena_unmap_span_locked(s);
	if (s->alloc_bits) {
		mheap_.pages_small -= s->npages;
		fixalloc_free_locked(&mheap_.bitsalloc, (void *)s->alloc_bits);
		if (s->dbg)
			fixalloc_free_locked(&mheap_.dbgalloc, s->dbg);
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

/* Sweep-and-retry support: sweeps every mcentral (classes and caches),
 * releases empty spans, and flushes the calling CPU's cache.  Returns the
 * pages released.  The caller holds no allocator lock. */
size_t mheap_reclaim(void)
{
	size_t n = 0;
	mcache_flush(arch_cpu_id());
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++)
		n += mcentral_reclaim(&mheap_.central[cls]);
	n += kmem_caches_reclaim();
	return n;
}
