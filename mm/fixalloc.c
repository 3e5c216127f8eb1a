/*
 * mm/fixalloc.c - fixed-size blocks for allocator metadata (span
 * descriptors, span bitmaps, object-cache descriptors).  See malloc.c for
 * an overview.
 *
 * Blocks come first from the metadata region carved at init (a bump
 * pointer), then from page runs the mheap takes from the top of the pool
 * when that region is used up.  Such pages are metadata from then on: they
 * are never handed to a client, and they are counted in pages_metadata.
 * Freed blocks go on a free list whose link lives in the block itself (a
 * metadata block, never client memory).  Blocks are type-stable: a span
 * descriptor is only ever reused as a span descriptor, which lets a
 * lock-free kfree read a span that was released under it (see mcentral.c).
 * That is also why pool pages taken here never go back to the pool: a
 * kfree racing a span's release may still read (and CAS the generation
 * of) a descriptor after it is freed, which must then not be client
 * memory.  (Page runs of up to RUN_INLINE_MAX pages need no descriptor, so
 * filling memory with them takes none of these pages.)
 *
 * Guard gaps.  A client overflow must never reach allocator data: every
 * run taken from the pool here has a guard page at each end, and so have
 * the metadata region (bootmem.c, kmem_init) and a hot-add's metadata
 * (kmem_hot_add).  A guard page is metadata (pages_metadata, PKIND_GUARD in
 * its arena) that nothing reads or writes, so an overflow of up to a page
 * off a client's run lands there and corrupts nothing; with a protect hook
 * (kmem_set_protect_hook) it is unmapped and the overflow faults.  The
 * hook is called with no lock held, so guards made under mheap.lock are
 * queued and protected by guards_protect() after the lock is released
 * (mheap_alloc_span, kmem_hot_add; one made for a magazine or an object
 * cache waits for the next of these), and the guards made before a hook
 * is set (the metadata region's, at least) are protected when it is set
 * (guards_protect_all, from kmem_set_protect_hook).
 *
 * Everything here runs under mheap.lock, but guards_protect*().
 */
#include "mtypes.h"

#define FIXALLOC_GROW_PAGES 32

void fixalloc_init(struct fixalloc *f, size_t size)
{
	f->size = align_up(size, KMEM_CACHE_LINE);
	f->free = NULL;
	f->inuse = 0;
}

/* Page pfn, in the pool and in use, becomes a guard: queued for the
 * protect hook. */
void guard_page_locked(uint64_t pfn)
{
	struct heap_arena *a = arena_own_locked(pfn);
	a->pagekind[pfn & (ARENA_PAGES - 1)] = PKIND_GUARD;
	if (mheap_.nguard_queue < sizeof(mheap_.guard_queue) / sizeof(mheap_.guard_queue[0]))
		mheap_.guard_queue[mheap_.nguard_queue++] = pfn;
	else
		mheap_.guard_rescan = true;
}

static bool is_guard_locked(uint64_t pfn)
{
	struct heap_arena *a = arena_of_pfn(pfn);
	return a && a->pagekind[pfn & (ARENA_PAGES - 1)] == PKIND_GUARD;
}

static void protect_pfn(uint64_t pfn)
{
	harden_protect(pfn_to_virt(pfn), PAGE_SIZE, true);
}

/* Up to max guard pages of the arenas at or above *cursor, in address
 * order; advances the cursor past them.  Under mheap.lock. */
static unsigned guards_find_locked(uint64_t *cursor, uint64_t *out, unsigned max)
{
	unsigned n = 0;
	for (uint64_t p = *cursor; n < max && !(p >> SUM_TOP);) {
		if (!atomic_load_explicit(&mheap_.l1[p >> SUM_L2_TOP], memory_order_relaxed)) {
			p = align_down(p, 1ull << SUM_L2_TOP) + (1ull << SUM_L2_TOP);
			continue;
		}
		struct heap_arena *a = arena_of_pfn(p);
		if (!a || a == &arena_free_image) {
			p = align_down(p, ARENA_PAGES) + ARENA_PAGES;
			continue;
		}
		if (a->pagekind[p & (ARENA_PAGES - 1)] == PKIND_GUARD)
			out[n++] = p;
		p++;
		*cursor = p;
	}
	if (n < max)
		*cursor = 1ull << SUM_TOP;
	return n;
}

/* Every guard page, and the metadata region's two, through the hook just
 * set.  Cost O(arenas * pages per arena).  Context: QUIESCE. */
void guards_protect_all(void)
{
	if (!mheap_.initialised)
		return;
	uint64_t lo = mheap_.meta_base, hi = lo + mheap_.meta_size;
	if (lo % PAGE_SIZE == 0) /* else not all of the page is the region's */
		harden_protect((uintptr_t)lo + mheap_.offset, PAGE_SIZE, true);
	if (hi % PAGE_SIZE == 0)
		harden_protect((uintptr_t)hi - PAGE_SIZE + mheap_.offset, PAGE_SIZE, true);
	uint64_t cursor = 0, batch[32];
	unsigned n;
	do {
		unsigned long f = lock_irqsave(&mheap_.lock);
		if (cursor == 0) {
			mheap_.nguard_queue = 0;
			mheap_.guard_rescan = false;
		}
		n = guards_find_locked(&cursor, batch, 32);
		unlock_irqrestore(&mheap_.lock, f);
		for (unsigned i = 0; i < n; i++)
			protect_pfn(batch[i]);
	} while (n == 32);
}

/* Protects the guard pages queued under the lock (dropping them if no hook
 * is set: setting one protects them all).  No allocator lock held. */
void guards_protect(void)
{
	uint64_t q[sizeof(mheap_.guard_queue) / sizeof(mheap_.guard_queue[0])];
	unsigned long f = lock_irqsave(&mheap_.lock);
	unsigned n = mheap_.nguard_queue;
	bool rescan = mheap_.guard_rescan;
	memcpy(q, mheap_.guard_queue, n * sizeof(q[0]));
	mheap_.nguard_queue = 0;
	mheap_.guard_rescan = false;
	unlock_irqrestore(&mheap_.lock, f);
	if (!atomic_load_explicit(&harden_.protect, memory_order_relaxed))
		return;
	if (rescan) {
		guards_protect_all();
		return;
	}
	for (unsigned i = 0; i < n; i++)
		protect_pfn(q[i]);
}

/* Bump-allocates from the metadata region; grows it from the top of the
 * pool when it is used up, by a run with a guard page at each end.
 * Returns zeroed memory or NULL. */
void *meta_carve_locked(size_t size, size_t align)
{
	uintptr_t p = align_up(mheap_.meta_next, align);
	if (p + size > mheap_.meta_end || p + size < p) {
		uint64_t n = align_up(size + align, PAGE_SIZE) >> PAGE_SHIFT;
		if (n < FIXALLOC_GROW_PAGES)
			n = FIXALLOC_GROW_PAGES;
		uint64_t pfn = pages_find_top_locked(n + 2);
		if (pfn == PAGE_NONE) {
			n = align_up(size + align, PAGE_SIZE) >> PAGE_SHIFT;
			pfn = pages_find_top_locked(n + 2);
			if (pfn == PAGE_NONE)
				return NULL;
		}
		/* Runs are taken from the top down, so the page above is often
		 * the previous run's lower guard: it serves as this one's upper
		 * guard too, and the page is left to the pool. */
		uint64_t take = n + 2;
		if (is_guard_locked(pfn + n + 2)) {
			pfn++;
			take--;
		}
		pages_set_locked(pfn, take, false);
		mheap_.pages_free -= take;
		mheap_.pages_metadata += take;
		guard_page_locked(pfn);
		if (take == n + 2)
			guard_page_locked(pfn + n + 1);
		/* The rest of the old bump range is abandoned (< one block). */
		mheap_.meta_next = pfn_to_virt(pfn + 1);
		mheap_.meta_end = mheap_.meta_next + (n << PAGE_SHIFT);
		p = align_up(mheap_.meta_next, align);
	}
	mheap_.meta_next = p + size;
	memset((void *)p, 0, size);
	return (void *)p;
}

void *fixalloc_alloc_locked(struct fixalloc *f)
{
	void *p = f->free;
	if (p) {
		f->free = *(void **)p;
		*(void **)p = NULL;
	} else {
		p = meta_carve_locked(f->size, KMEM_CACHE_LINE);
		if (!p)
			return NULL;
	}
	f->inuse++;
	return p;
}

void fixalloc_free_locked(struct fixalloc *f, void *p)
{
	*(void **)p = f->free;
	f->free = p;
	f->inuse--;
}
