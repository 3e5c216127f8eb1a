/*
 * mm/fixalloc.c - fixed-size blocks for allocator metadata (span
 * descriptors, span bitmaps, object-cache descriptors).  See malloc.c for
 * an overview.
 *
 * Blocks come first from the metadata region carved at init (a bump
 * pointer), then from page runs the mheap takes from the top of the pool
 * when that region is used up (struct meta_run, its header the run's
 * first block; counted in pages_metadata).  Freed blocks go on a free
 * list whose link lives in the block itself (a metadata block, never
 * client memory).
 *
 * Nodes (malloc.c, "NUMA nodes").  Each node has its own bump range,
 * free lists, pend lists and runs, all under its page heap's lock: a
 * node's region's bump serves the node, its runs come from the top of its
 * own ranges in its own page heap, and fixalloc_alloc_node tries the
 * node's free list, pend list, bump range and a new run, then the same
 * on the next node in distance order (a memoryless node starts there),
 * one node's lock at a time.  A freed block goes on the lists of its
 * page's node, so every list holds blocks of one node only and the
 * reclaim below runs on each node's lists and runs in turn.  A guard page
 * is shared between two runs only if they are of one node, so that
 * meta_pages[] (each node's run pages) stays exact when a guard changes
 * hands.  With one node every index is 0 and block_node costs one
 * compare.  A free block is only ever reused as a block of its
 * own fixalloc, which lets a lock-free kfree read a span that was
 * released under it (see mcentral.c).
 *
 * Giving runs back.  A pool run whose every block is free goes back to
 * the pool, found by meta_runs_reclaim (from kmem_reclaim): it sorts
 * every free list by address and counts, per run, the free blocks
 * against the blocks ever carved there.  A run that is all free is
 * tagged for a grace period (deferred.c's generations: defer_gen + 1, as
 * a deferred object is) and its blocks move to the fixallocs' pend lists,
 * which are used only when a free list is empty.  When the kernel reports
 * that generation done (kmem_grace_period_done, or a later kmem_reclaim
 * finds it done), a tagged run whose blocks all still wait on the pend
 * lists goes back; one whose block was handed out meanwhile stays (and is
 * tagged afresh when it empties again), so a kernel that reports no grace
 * periods loses no metadata page either: it reuses them.  The bump range
 * of a tagged run untags it when it carves.  Why the wait: kfree,
 * kfree_nolock and ksize read span
 * descriptors and state bytes without a lock, and one that looked a
 * span up before the span was released may still read (and CAS the
 * generation of, or test a state byte in) its freed descriptor and
 * metadata block.  While its run is metadata that is harmless; once the
 * pages are a client's it would read client data as a span and could
 * write into it.  A CPU inside any allocator call is never quiescent, so
 * once every CPU passed a quiescent state after the run was found empty
 * no such reader is left, and no new one can find the run: every block in
 * it was free (unpublished) when it was tagged and none was handed out
 * since.  A run that holds a
 * permanent carve (meta_carve: the quarantine ring, the deferred
 * batches' per-CPU state) is pinned and never goes back.  Magazines are
 * freed by reclaim (magazine.c, depot_drain) like any block.
 * Cost: meta_runs_reclaim is O(F log F + R) for F free blocks and R runs,
 * under each node's heap.lock; meta_runs_release is O(R) when no run's grace period
 * is done, else O(P + R) per eight runs given back for P blocks on the
 * pend lists, plus the protect hook for their guard pages with no lock
 * held.
 *
 * Guard gaps.  A client overflow must never reach allocator data: every
 * run taken from the pool here has a guard page at each end, and so have
 * the metadata region (bootmem.c, kmem_init) and a hot-add's metadata
 * (kmem_hot_add).  A guard page is metadata (pages_metadata, PKIND_GUARD in
 * its arena) that nothing reads or writes, so an overflow of up to a page
 * off a client's run lands there and corrupts nothing; with a protect hook
 * (kmem_set_protect_hook) it is unmapped and the overflow faults.  The
 * hook is called with no lock held, so guards made under a heap.lock are
 * queued and protected by guards_protect() after the lock is released
 * (mheap_alloc_span, kmem_hot_add; one made for a magazine or an object
 * cache waits for the next of these), and the guards made before a hook
 * is set (the metadata region's, at least) are protected when it is set
 * (guards_protect_all, from kmem_set_protect_hook).
 *
 * Node n's lists, bump range and runs are under node n's heap.lock
 * (fixalloc_*_locked, carve_locked, run_grow_locked: its runs come from
 * its own page heap); fixalloc_alloc_node, fixalloc_free, meta_carve,
 * guards_protect*() and meta_runs_reclaim/release take the locks
 * themselves, one node at a time.
 */
#include "mtypes.h"

#define FIXALLOC_GROW_PAGES 32

void fixalloc_init(struct fixalloc *f, size_t size)
{
	f->size = align_up(size, KMEM_CACHE_LINE);
	for (unsigned n = 0; n < KMEM_MAX_NODES; n++)
		f->free[n] = f->pend[n] = NULL;
	for (unsigned n = 0; n < KMEM_MAX_NODES; n++)
		f->inuse[n] = 0;
	f->next_fa = mheap_.fixallocs;
	mheap_.fixallocs = f;
}

/* Page pfn, in the pool and in use, becomes a guard: queued for the
 * protect hook. */
void guard_page_locked(uint64_t pfn)
{
	struct heap_arena *a = arena_own_locked(pfn);
	struct pageheap *h = heap_of_pfn(pfn);
	a->pagekind[pfn & (ARENA_PAGES - 1)] = PKIND_GUARD;
	if (h->nguard_queue < sizeof(h->guard_queue) / sizeof(h->guard_queue[0]))
		h->guard_queue[h->nguard_queue++] = pfn;
	else
		h->guard_rescan = true;
	atomic_store_explicit(&h->guard_pending, 1u, memory_order_relaxed);
}

/* pfn is a guard page of h's arenas. */
static bool is_guard_locked(struct pageheap *h, uint64_t pfn)
{
	struct heap_arena *a = arena_of_pfn(pfn);
	return a && arena_owner(pfn) == (int)h->node &&
	       a->pagekind[pfn & (ARENA_PAGES - 1)] == PKIND_GUARD;
}

static void protect_pfn(uint64_t pfn)
{
	harden_protect(pfn_to_virt(pfn), PAGE_SIZE, true);
}

/* Calls of guards_protect*() between taking guard pfns under the lock and
 * protecting them: a guard page must not go back to the pool meanwhile
 * (meta_runs_release waits), or it could be protected after it was given
 * to a client. */
static _Atomic unsigned guards_busy;

/* Up to max guard pages of the arenas at or above *cursor, in address
 * order; advances the cursor past them.  With every heap.lock held. */
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

/* Every guard page, and each metadata region's two, through the hook just
 * set.  Cost O(arenas * pages per arena).  Context: QUIESCE. */
void guards_protect_all(void)
{
	if (!mheap_.initialised)
		return;
	atomic_fetch_add(&guards_busy, 1);
	for (unsigned k = 0; k < mheap_.nnodes; k++) {
		uint64_t lo = mheap_.meta_base[k], hi = lo + mheap_.meta_size[k];
		if (!mheap_.meta_size[k])
			continue;
		if (lo % PAGE_SIZE == 0) /* else not all of the page is the region's */
			harden_protect((uintptr_t)lo + mheap_.offset, PAGE_SIZE, true);
		if (hi % PAGE_SIZE == 0)
			harden_protect((uintptr_t)hi - PAGE_SIZE + mheap_.offset, PAGE_SIZE, true);
	}
	uint64_t cursor = 0, batch[32];
	unsigned n;
	do {
		unsigned long f = heaps_lock_all();
		if (cursor == 0)
			for (unsigned k = 0; k < mheap_.nnodes; k++) {
				mheap_.heap[k]->nguard_queue = 0;
				mheap_.heap[k]->guard_rescan = false;
			}
		n = guards_find_locked(&cursor, batch, 32);
		heaps_unlock_all(f);
		for (unsigned i = 0; i < n; i++)
			protect_pfn(batch[i]);
	} while (n == 32);
	atomic_fetch_sub(&guards_busy, 1);
}

/* Protects the guard pages queued under the lock (dropping them if no hook
 * is set: setting one protects them all).  No allocator lock held. */
void guards_protect(void)
{
	for (unsigned k = 0; k < mheap_.nnodes; k++) {
		struct pageheap *h = mheap_.heap[k];
		/* Only heaps that queued some: no other node's lock is taken. */
		if (!atomic_exchange_explicit(&h->guard_pending, 0u, memory_order_relaxed))
			continue;
		uint64_t q[sizeof(h->guard_queue) / sizeof(h->guard_queue[0])];
		unsigned long f = lock_irqsave(&h->lock);
		unsigned n = h->nguard_queue;
		bool rescan = h->guard_rescan;
		memcpy(q, h->guard_queue, n * sizeof(q[0]));
		h->nguard_queue = 0;
		h->guard_rescan = false;
		atomic_fetch_add(&guards_busy, 1);
		unlock_irqrestore(&h->lock, f);
		if (atomic_load_explicit(&harden_.protect, memory_order_relaxed)) {
			if (rescan)
				guards_protect_all();
			else
				for (unsigned i = 0; i < n; i++)
					protect_pfn(q[i]);
		}
		atomic_fetch_sub(&guards_busy, 1);
	}
}

/* A pool run carved for metadata.  Its pages are pfn .. pfn + npages - 1,
 * with a guard page below (its own, unless a run below took it as its
 * upper guard too) and one above (its own if own_hi, else a guard that
 * was there already: the lower guard of the run above, or another). */
struct meta_run {
	struct meta_run *next;  /* [heap] mheap_.meta_runs[node], by address */
	uint64_t pfn, npages;   /* [heap] */
	uint64_t blocks;        /* [heap] fixalloc blocks carved from it */
	uint64_t nfree, npend;  /* [heap] of those, on free and pend lists (counts) */
	unsigned node;          /* [heap] whose pages these are */
	uint64_t tag;           /* [heap] 0: in use; else all free when tagged,
	                           its blocks on the pend lists, back to the pool
	                           once grace period `tag` is done */
	bool pinned;            /* [heap] holds a permanent carve */
	bool own_hi;            /* [heap] the guard page above is its own */
	bool going;             /* [heap] being given back */
};
#define RUN_HDR align_up(sizeof(struct meta_run), KMEM_CACHE_LINE)

/* The highest free run of npages pages of node's ranges in its own page
 * heap (the whole pool with one node). */
static uint64_t node_find_top_locked(struct pageheap *h, uint64_t npages, unsigned node)
{
	if (mheap_.nnodes == 1)
		return pages_find_top_locked(h, npages);
	uint64_t best = PAGE_NONE;
	unsigned nr = atomic_load_explicit(&mheap_.nranges, memory_order_relaxed);
	for (unsigned i = 0; i < nr; i++) {
		const struct node_range *r = &mheap_.node_ranges[i];
		if (r->node != node)
			continue;
		uint64_t p = pages_find_top_in_locked(h, npages, r->lo ? r->lo : 1, r->hi);
		if (p != PAGE_NONE && (best == PAGE_NONE || p > best))
			best = p;
	}
	return best;
}

/* Takes a run of at least `need` bytes from the top of node's pages,
 * guards around it, and makes it node's bump range.  False if the node
 * has no such pages left. */
static bool run_grow_locked(size_t need, unsigned node)
{
	struct pageheap *h = mheap_.heap[node];
	uint64_t n = align_up(need + RUN_HDR, PAGE_SIZE) >> PAGE_SHIFT;
	if (n < FIXALLOC_GROW_PAGES)
		n = FIXALLOC_GROW_PAGES;
	uint64_t pfn = node_find_top_locked(h, n + 2, node);
	if (pfn == PAGE_NONE) {
		n = align_up(need + RUN_HDR, PAGE_SIZE) >> PAGE_SHIFT;
		pfn = node_find_top_locked(h, n + 2, node);
		if (pfn == PAGE_NONE)
			return false;
	}
	/* Runs are taken from the top down, so the page above is often
	 * the previous run's lower guard: it serves as this one's upper
	 * guard too, and the page is left to the pool -- if it is of the same
	 * node, so that a guard handed between runs stays on one node's
	 * count (runs_take_done_locked). */
	uint64_t take = n + 2;
	if (is_guard_locked(h, pfn + n + 2) &&
	    (mheap_.nnodes == 1 || pfn_node(pfn + n + 2) == (int)node)) {
		pfn++;
		take--;
	}
	pages_set_locked(pfn, take, false);
	h->pages_free -= take;
	h->pages_metadata += take;
	mheap_.meta_pages[node] += take;
	guard_page_locked(pfn);
	if (take == n + 2)
		guard_page_locked(pfn + n + 1);
	struct meta_run *r = (struct meta_run *)pfn_to_virt(pfn + 1);
	memset(r, 0, sizeof(*r));
	r->pfn = pfn + 1;
	r->npages = n;
	r->own_hi = take == n + 2;
	r->node = node;
	struct meta_run **pp = &mheap_.meta_runs[node];
	while (*pp && (*pp)->pfn < r->pfn)
		pp = &(*pp)->next;
	r->next = *pp;
	*pp = r;
	/* The rest of the old bump range is abandoned (< one block). */
	mheap_.meta_cur[node] = r;
	mheap_.meta_next[node] = (uintptr_t)r + RUN_HDR;
	mheap_.meta_end[node] = pfn_to_virt(pfn + 1 + n);
	return true;
}

/* Bump-allocates from node's range (the metadata region's node starts
 * with the region), then from pool runs of the node: a block of a
 * fixalloc (counted in its run) or a permanent carve (pins it).  Returns
 * zeroed memory or NULL if the node has none left. */
static void *carve_locked(size_t size, size_t align, bool block, unsigned node)
{
	uintptr_t p = align_up(mheap_.meta_next[node], align);
	if (!mheap_.meta_end[node] || p + size > mheap_.meta_end[node] || p + size < p) {
		if (!run_grow_locked(size + align, node))
			return NULL;
		p = align_up(mheap_.meta_next[node], align);
	}
	mheap_.meta_next[node] = p + size;
	struct meta_run *r = mheap_.meta_cur[node];
	if (r)
		r->tag = 0; /* in use again */
	if (r && block)
		r->blocks++;
	else if (r)
		r->pinned = true;
	memset((void *)p, 0, size);
	return (void *)p;
}

/* Under node's heap.lock: a block of f from the node's free list, pend
 * list or pages, or NULL. */
static void *block_take_locked(struct fixalloc *f, unsigned n)
{
	void **list = f->free[n] ? &f->free[n] : &f->pend[n];
	void *p = *list;
	if (p) {
		*list = *(void **)p;
		*(void **)p = NULL;
	} else {
		p = carve_locked(f->size, KMEM_CACHE_LINE, true, n);
	}
	if (p)
		f->inuse[n]++;
	return p;
}

/* From `node`'s metadata, else the nearest node's that has some
 * (node_order: a node without memory of its own is served by the
 * nearest that has): each node under its own heap.lock, one at a time.
 * take: a block of f, or (f NULL) a permanent carve of size/align. */
static void *node_meta(struct fixalloc *f, size_t size, size_t align, unsigned node)
{
	for (unsigned k = 0; k < mheap_.nnodes; k++) {
		unsigned n = mheap_.node_order[node][k];
		struct pageheap *h = mheap_.heap[n];
		unsigned long fl = lock_irqsave(&h->lock);
		void *p = f ? block_take_locked(f, n) : carve_locked(size, align, false, n);
		unlock_irqrestore(&h->lock, fl);
		if (p)
			return p;
	}
	return NULL;
}

void *meta_carve(size_t size, size_t align)
{
	return node_meta(NULL, size, align, mheap_.meta_node);
}

void *fixalloc_alloc_node(struct fixalloc *f, unsigned node)
{
	return node_meta(f, 0, 0, node);
}

/* A block for metadata of no node in particular (CPU 0's). */
void *fixalloc_alloc(struct fixalloc *f)
{
	return fixalloc_alloc_node(f, mheap_.meta_node);
}

/* The node whose free list a block goes on: that of its page. */
static unsigned block_node(const void *p)
{
	if (mheap_.nnodes == 1)
		return 0;
	int n = pfn_node(virt_to_pfn((uintptr_t)p));
	return n >= 0 ? (unsigned)n : mheap_.meta_node;
}

static void fixalloc_free_locked(struct fixalloc *f, void *p)
{
	unsigned n = block_node(p);
	*(void **)p = f->free[n];
	f->free[n] = p;
	f->inuse[n]--;
}

void fixalloc_free(struct fixalloc *f, void *p)
{
	struct pageheap *h = mheap_.heap[block_node(p)];
	unsigned long fl = lock_irqsave(&h->lock);
	fixalloc_free_locked(f, p);
	unlock_irqrestore(&h->lock, fl);
}

/* Racy without the locks: for statistics. */
uint64_t fixalloc_inuse(const struct fixalloc *f)
{
	uint64_t n = 0;
	for (unsigned k = 0; k < mheap_.nnodes; k++)
		n += f->inuse[k];
	return n;
}

/* ---------------------------------------------------------------------------
 * Giving empty runs back (see the top of this file)
 */

static void *blocks_merge(void *a, void *b)
{
	void *head = NULL, **t = &head;
	while (a && b) {
		void **lo = (uintptr_t)a < (uintptr_t)b ? &a : &b;
		*t = *lo;
		t = (void **)*lo;
		*lo = *(void **)*lo;
	}
	*t = a ? a : b;
	return head;
}

/* A free list sorted by address: a bottom-up merge sort, O(n log n), no
 * memory but the stack's 64 partial lists. */
static void *blocks_sort(void *list)
{
	void *bin[64] = {0};
	while (list) {
		void *one = list;
		list = *(void **)list;
		*(void **)one = NULL;
		unsigned i = 0;
		for (; bin[i]; i++) {
			one = blocks_merge(bin[i], one);
			bin[i] = NULL;
		}
		bin[i] = one;
	}
	void *out = NULL;
	for (unsigned i = 0; i < 64; i++)
		if (bin[i])
			out = blocks_merge(bin[i], out);
	return out;
}

/* The run at or after *r (runs by address) that could hold block b;
 * advances *r.  NULL if b is in no run (the metadata region). */
static struct meta_run *run_of(struct meta_run **r, const void *b)
{
	uint64_t pfn = virt_to_pfn((uintptr_t)b);
	while (*r && (*r)->pfn + (*r)->npages <= pfn)
		*r = (*r)->next;
	return *r && pfn >= (*r)->pfn ? *r : NULL;
}

/* Finds the runs whose blocks are all free and tags them for the next
 * grace period (a run tagged before keeps its tag if none of its blocks
 * was handed out since); their blocks go to the pend lists, by address,
 * everything else to the free lists.  Node n's runs and lists, under its
 * heap.lock. */
static void runs_scan_locked(unsigned n)
{
	struct meta_run *runs = mheap_.meta_runs[n];
	for (struct meta_run *r = runs; r; r = r->next)
		r->nfree = r->npend = 0;
	for (struct fixalloc *f = mheap_.fixallocs; f; f = f->next_fa) {
		f->free[n] = blocks_sort(f->free[n]);
		struct meta_run *r = runs, *in;
		for (void *b = f->free[n]; b && r; b = *(void **)b)
			if ((in = run_of(&r, b)) != NULL)
				in->nfree++;
		r = runs;
		for (void *b = f->pend[n]; b && r; b = *(void **)b)
			if ((in = run_of(&r, b)) != NULL)
				in->npend++;
	}
	uint64_t tag = atomic_load(&mheap_.defer_gen) + 1;
	for (struct meta_run *r = runs; r; r = r->next) {
		if (r->pinned || r->nfree + r->npend != r->blocks)
			r->tag = 0;
		else if (r->nfree || !r->tag)
			r->tag = tag;
	}
	for (struct fixalloc *f = mheap_.fixallocs; f; f = f->next_fa) {
		void *all = blocks_merge(f->free[n], f->pend[n]);
		void **tf = &f->free[n], **tp = &f->pend[n];
		struct meta_run *r = runs, *in;
		for (void *b = all; b; b = *(void **)b) {
			in = run_of(&r, b);
			void ***t = in && in->tag ? &tp : &tf;
			**t = b;
			*t = (void **)b;
		}
		*tf = *tp = NULL;
	}
}

/* Guard page pfn of a run going back: an ordinary page again (not queued
 * for the protect hook any more). */
static void unguard_locked(uint64_t pfn)
{
	struct pageheap *h = heap_of_pfn(pfn);
	arena_own_locked(pfn)->pagekind[pfn & (ARENA_PAGES - 1)] = PKIND_NONE;
	for (unsigned i = 0; i < h->nguard_queue; i++)
		if (h->guard_queue[i] == pfn)
			h->guard_queue[i--] = h->guard_queue[--h->nguard_queue];
}

/* Takes up to `max` runs whose grace period is done and whose blocks all
 * still wait on the pend lists (none handed out since the tag) out of the
 * lists, with their blocks; their pages, with the guard pages no other
 * run uses, are lo[i] .. lo[i] + len[i] - 1 (of node[i]'s count), and the
 * guards among them unprot[].  Node n's runs, under its heap.lock. */
static unsigned runs_take_done_locked(unsigned n, uint64_t done, uint64_t *lo, uint64_t *len,
                                      unsigned max, uint64_t *unprot, unsigned *nu)
{
	bool any = false;
	for (struct meta_run *r = mheap_.meta_runs[n]; r; r = r->next) {
		r->npend = 0;
		any |= r->tag && r->tag <= done;
	}
	if (!any)
		return 0;
	for (struct fixalloc *f = mheap_.fixallocs; f; f = f->next_fa) {
		struct meta_run *r = mheap_.meta_runs[n], *in;
		for (void *b = f->pend[n]; b && r; b = *(void **)b)
			if ((in = run_of(&r, b)) != NULL)
				in->npend++;
	}
	unsigned k = 0;
	for (struct meta_run *r = mheap_.meta_runs[n]; r; r = r->next) {
		r->going = k < max && r->tag && r->tag <= done && r->npend == r->blocks;
		k += r->going;
	}
	if (!k)
		return 0;
	for (struct fixalloc *f = mheap_.fixallocs; f; f = f->next_fa) {
		struct meta_run *r = mheap_.meta_runs[n], *in;
		for (void **pp = &f->pend[n]; *pp;) {
			in = run_of(&r, *pp);
			if (in && in->going)
				*pp = *(void **)*pp;
			else
				pp = (void **)*pp;
		}
	}
	k = 0;
	for (struct meta_run **pp = &mheap_.meta_runs[n]; *pp;) {
		struct meta_run *r = *pp;
		if (!r->going) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		if (mheap_.meta_cur[r->node] == r) { /* its tail is never carved now */
			mheap_.meta_cur[r->node] = NULL;
			mheap_.meta_next[r->node] = mheap_.meta_end[r->node] = 0;
		}
		uint64_t first = r->pfn, last = r->pfn + r->npages - 1;
		/* The guard below: still the upper guard of a run below? */
		struct meta_run *below = mheap_.meta_runs[n];
		while (below && below->pfn + below->npages < r->pfn - 1)
			below = below->next;
		if (below && below->pfn + below->npages == r->pfn - 1) {
			below->own_hi = true;
		} else {
			unguard_locked(--first);
			unprot[(*nu)++] = first;
		}
		if (r->own_hi) {
			unguard_locked(++last);
			unprot[(*nu)++] = last;
		}
		lo[k] = first;
		len[k++] = last - first + 1;
	}
	return k;
}

/* Gives back the runs whose grace period is done (see the top of this
 * file), with their guard pages (unprotected first) but those another run
 * still uses.  Returns the pages given back.  No lock held; interrupts as
 * the caller has them (the protect hook is called). */
size_t meta_runs_release(void)
{
	size_t total = 0;
	for (unsigned n = 0; n < mheap_.nnodes; n++) {
		struct pageheap *h = mheap_.heap[n];
		for (;;) {
			uint64_t lo[8], len[8], unprot[16];
			unsigned nu = 0, k = 0;
			unsigned long f = lock_irqsave(&h->lock);
			bool hook = atomic_load_explicit(&harden_.protect, memory_order_relaxed) != NULL;
			/* A guard being protected right now must not go back. */
			if (!hook || !atomic_load(&guards_busy))
				k = runs_take_done_locked(n, atomic_load(&mheap_.defer_done), lo, len, 8,
				                          unprot, &nu);
			unlock_irqrestore(&h->lock, f);
			if (!k)
				break;
			/* Out of the lists and no guard any more, but still
			 * metadata: a guard the hook protected is accessible
			 * before it is free. */
			for (unsigned i = 0; hook && i < nu; i++)
				harden_protect(pfn_to_virt(unprot[i]), PAGE_SIZE, false);
			f = lock_irqsave(&h->lock);
			for (unsigned i = 0; i < k; i++) {
				pages_set_locked(lo[i], len[i], true);
				h->pages_free += len[i];
				h->pages_metadata -= len[i];
				mheap_.meta_pages[n] -= len[i];
				total += len[i];
			}
			unlock_irqrestore(&h->lock, f);
		}
	}
	return total;
}

size_t meta_runs_reclaim(void)
{
	for (unsigned n = 0; n < mheap_.nnodes; n++) {
		struct pageheap *h = mheap_.heap[n];
		unsigned long f = lock_irqsave(&h->lock);
		if (mheap_.meta_runs[n])
			runs_scan_locked(n);
		unlock_irqrestore(&h->lock, f);
	}
	return meta_runs_release();
}
