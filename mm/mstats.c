/*
 * mm/mstats.c - statistics.  See malloc.c for an overview.
 *
 * Allocations and frees are counted per CPU, where the client's call
 * happens (CPU-local, IRQs off, one increment on each fast path:
 * mcache.nmalloc/nfree[class] for kmalloc's and kfree's, cpu_class.nmalloc/
 * nfree for the other paths); mcentral.nfree takes back the second count
 * of a racing double free (magazine.c).
 * So objects_in_use = nmalloc - nfree is what clients hold, whether the
 * freed objects wait in magazines or in spans; it is exact whenever no
 * call is in flight.  Page counters are kept under mheap.lock.
 *
 * Also here: kmem_free_pages, the exact count of free memory (below).
 */
#include "mtypes.h"

void kmem_get_stats(struct kmem_stats *out)
{
	memset(out, 0, sizeof(*out));
	unsigned long f = lock_irqsave(&mheap_.lock);
	out->pages_managed = mheap_.pages_managed;
	out->pages_free = mheap_.pages_free;
	out->pages_small = mheap_.pages_small;
	out->pages_large = mheap_.pages_large;
	out->pages_runs = mheap_.pages_runs;
	out->pages_metadata = mheap_.pages_metadata;
	out->large_objects = mheap_.large_objects;
	out->page_runs = mheap_.page_runs;
	out->metadata_bytes = mheap_.meta_size;
	uintptr_t meta_lo = (uintptr_t)mheap_.meta_base + mheap_.offset;
	out->metadata_used = mheap_.meta_next >= meta_lo &&
	                             mheap_.meta_next <= meta_lo + mheap_.meta_size
	                         ? mheap_.meta_next - meta_lo
	                         : mheap_.meta_size;
	out->arenas = mheap_.narenas;
	out->nclasses = KMEM_NUM_CLASSES;
	out->cpus_online = atomic_load_explicit(&mheap_.cpus_online, memory_order_relaxed);
	unlock_irqrestore(&mheap_.lock, f);
}

/* Fills *out from a central's counters and its per-CPU ones. */
void central_stats(const struct mcentral *c, struct kmem_class_stats *out)
{
	uint64_t nmalloc = 0, nfree = 0;
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++) {
		struct mag_slot *ms;
		struct cpu_class *cc;
		cpu_slots((struct mcentral *)c, cpu, &ms, &cc);
		nmalloc += cc->nmalloc;
		nfree += cc->nfree;
		if (!c->cache) { /* kmalloc's and kfree's fast paths count apart */
			nmalloc += mcache_of(cpu)->nmalloc[c->sizeclass];
			nfree += mcache_of(cpu)->nfree[c->sizeclass];
		}
	}
	out->object_size = c->elemsize;
	out->span_pages = c->npages;
	out->nmalloc = atomic_load_explicit(&c->nmalloc, memory_order_relaxed) + nmalloc;
	out->nfree = atomic_load_explicit(&c->nfree, memory_order_relaxed) + nfree;
	out->objects_in_use = out->nmalloc - out->nfree;
	out->spans = c->spans;
	out->bytes_in_use = out->objects_in_use * c->elemsize;
	out->span_bytes = c->spans * c->npages * PAGE_SIZE;
	out->peak_span_bytes = c->peak_spans * c->npages * PAGE_SIZE;
}

int kmem_get_class_stats(unsigned cls, struct kmem_class_stats *out)
{
	if (cls == 0 || cls >= KMEM_NUM_CLASSES)
		return -KMEM_EINVAL;
	memset(out, 0, sizeof(*out));
	central_stats(&mheap_.central[cls], out);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Exact free memory (kmem_free_pages)
 *
 * The count is what kpage_alloc(1, 0, 0) would hand out, one call after
 * another, until NULL.  That is not pages_free: every run takes a span
 * descriptor, and when fixalloc has none left (free list, then the bump
 * range) meta_carve_locked takes FREEMEM_GROW_PAGES pages from the top of
 * the pool (the highest window of that many free pages), or one page when
 * no such window is left, while each run takes the lowest free page.  So
 * the count replays that race of the two ends, arithmetically: the
 * windows the top end would take, walked from the top down, each checked
 * against how far the bottom end has got by then.  The model must match
 * fixalloc.c and mheap_alloc_span; test_freemem.c checks it against the
 * real loop.  (Once a single-page run needs no descriptor, as issue #14.7
 * asks, the count is pages_free and all of this goes.)
 */
#define FREEMEM_GROW_PAGES 16 /* meta_carve_locked's FIXALLOC_GROW_PAGES */

struct freemem {
	uint64_t free;      /* F: free pages at the start */
	uint64_t left;      /* free pages not yet taken by either end */
	uint64_t desc;      /* descriptors left */
	uint64_t runs;      /* runs handed out (by the bottom end) */
	uint64_t above;     /* free pages in the runs above the current one */
	uint64_t per_grow;  /* descriptors in FREEMEM_GROW_PAGES pages */
	bool windows_done;  /* no more windows: one-page grows from now on */
};

/* Hands out runs while descriptors last; true if pages are left. */
static bool fm_spend(struct freemem *m)
{
	uint64_t t = m->desc < m->left ? m->desc : m->left;
	m->runs += t;
	m->left -= t;
	m->desc -= t;
	return m->left != 0;
}

/* The free run [top - len, top), next from the top: the windows the top
 * end takes from it, from its top down.  The k-th starts at top - k*G and
 * is still whole iff the bottom end (m->runs pages taken, all from below
 * it: the windows before it lie above) has not passed its start, i.e.
 * runs <= free pages below it. */
static void fm_run(struct freemem *m, uint64_t len)
{
	for (uint64_t k = 1; !m->windows_done && k * FREEMEM_GROW_PAGES <= len; k++) {
		if (!fm_spend(m)) {
			m->windows_done = true; /* nothing left to count */
			return;
		}
		if (m->runs > m->free - m->above - k * FREEMEM_GROW_PAGES) {
			m->windows_done = true;
			return;
		}
		m->left -= FREEMEM_GROW_PAGES;
		m->desc += m->per_grow;
	}
	m->above += len;
}

/* Walks the free runs from the top of the heap down (mheap.lock held),
 * feeding them to fm_run until no window is left to take. */
static void fm_walk_locked(struct freemem *m)
{
	uint64_t len = 0;
	for (uint64_t i1 = L1_ENTRIES; i1-- > 0 && !m->windows_done;) {
		struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[i1], memory_order_relaxed);
		for (uint64_t i2 = L2_ENTRIES; c && i2-- > 0 && !m->windows_done;) {
			struct heap_arena *a = atomic_load_explicit(&c->arenas[i2], memory_order_relaxed);
			if (!a) {
				if (len)
					fm_run(m, len);
				len = 0;
				continue;
			}
			for (unsigned w = ARENA_WORDS; w-- > 0;) {
				uint64_t bits = a->pagebits[w];
				if (bits == ~0ull) {
					len += 64;
					continue;
				}
				for (unsigned b = 64; b-- > 0;) {
					if ((bits >> b) & 1) {
						len++;
					} else if (len) {
						fm_run(m, len);
						len = 0;
					}
				}
			}
		}
		if (!c && len) { /* no arenas here: a gap */
			fm_run(m, len);
			len = 0;
		}
	}
	if (len)
		fm_run(m, len);
	m->windows_done = true;
}

/* Runs kpage_alloc(1, 0, 0) would hand out now, mheap.lock held. */
static uint64_t free_pages_locked(void)
{
	struct fixalloc *fa = &mheap_.spanalloc;
	struct freemem m = {.free = mheap_.pages_free, .left = mheap_.pages_free,
	                    .per_grow = (FREEMEM_GROW_PAGES << PAGE_SHIFT) / fa->size};
	for (void *p = fa->free; p; p = *(void **)p)
		m.desc++;
	uintptr_t bump = align_up(mheap_.meta_next, KMEM_CACHE_LINE);
	if (bump <= mheap_.meta_end && mheap_.meta_end >= mheap_.meta_next)
		m.desc += (mheap_.meta_end - bump) / fa->size;
	fm_walk_locked(&m);
	/* No window left: the smallest grows, of `g` pages worth `per` runs. */
	uint64_t g = align_up(fa->size + KMEM_CACHE_LINE, PAGE_SIZE) >> PAGE_SHIFT;
	uint64_t per = (g << PAGE_SHIFT) / fa->size;
	while (fm_spend(&m)) {
		uint64_t cycles = m.left / (g + per);
		if (cycles) {
			m.runs += cycles * per;
			m.left -= cycles * (g + per);
			continue;
		}
		if (m.left < g)
			break; /* too few for a grow: no descriptor, no run */
		m.left -= g; /* the grow; runs get the rest */
		m.desc += per;
	}
	return m.runs;
}

size_t kmem_free_pages(void)
{
	kmem_reclaim();
	unsigned long f = lock_irqsave(&mheap_.lock);
	uint64_t n = free_pages_locked();
	unlock_irqrestore(&mheap_.lock, f);
	return (size_t)n;
}
