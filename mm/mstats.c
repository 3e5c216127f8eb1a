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
 * call is in flight.  Page counters are kept per page heap, each under
 * its heap.lock, and summed with every heap.lock held.
 *
 * Also here: kmem_free_pages, the exact count of free memory (below).
 */
#include "mtypes.h"

void kmem_get_stats(struct kmem_stats *out)
{
	memset(out, 0, sizeof(*out));
	struct heap_count c;
	unsigned long f = heaps_lock_all();
	heaps_count_locked(&c);
	out->pages_managed = c.pages_managed;
	out->pages_free = c.pages_free;
	out->pages_small = c.pages_small;
	out->pages_large = c.pages_large;
	out->pages_runs = c.pages_runs;
	out->pages_metadata = c.pages_metadata;
	out->large_objects = c.large_objects;
	out->page_runs = c.page_runs;
	/* A region is used up to its node's bump range, or whole once that
	 * moved on to pool runs. */
	for (unsigned n = 0; n < mheap_.nnodes; n++) {
		uintptr_t lo = (uintptr_t)mheap_.meta_base[n] + mheap_.offset, next = mheap_.meta_next[n];
		out->metadata_bytes += mheap_.meta_size[n];
		out->metadata_used += next >= lo && next <= lo + mheap_.meta_size[n] ? next - lo
		                                                                      : mheap_.meta_size[n];
	}
	out->arenas = mheap_.narenas;
	out->nclasses = KMEM_NUM_CLASSES;
	out->cpus_online = atomic_load_explicit(&mheap_.cpus_online, memory_order_relaxed);
	heaps_unlock_all(f);
}

/* Adds a central's counters and those of the CPUs whose magazines it
 * fills (its node's) to *out: the nodes' centrals of a class or cache add
 * up to the class's or cache's figures (peak_span_bytes: the sum of the
 * nodes' peaks). */
void central_stats(const struct mcentral *c, struct kmem_class_stats *out)
{
	uint64_t nmalloc = 0, nfree = 0;
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++) {
		struct mag_slot *ms;
		struct cpu_class *cc;
		if (mheap_.cpu_node[cpu] != c->node)
			continue;
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
	out->nmalloc += atomic_load_explicit(&c->nmalloc, memory_order_relaxed) + nmalloc;
	out->nfree += atomic_load_explicit(&c->nfree, memory_order_relaxed) + nfree;
	out->objects_in_use = out->nmalloc - out->nfree;
	out->spans += c->spans;
	out->bytes_in_use = out->objects_in_use * c->elemsize;
	out->span_bytes = out->spans * c->npages * PAGE_SIZE;
	out->peak_span_bytes += c->peak_spans * c->npages * PAGE_SIZE;
}

int kmem_get_class_stats(unsigned cls, struct kmem_class_stats *out)
{
	if (cls == 0 || cls >= KMEM_NUM_CLASSES)
		return -KMEM_EINVAL;
	memset(out, 0, sizeof(*out));
	for (unsigned node = 0; node < mheap_.nnodes; node++)
		central_stats(class_central(node, cls), out);
	return 0;
}

int kmem_get_node_stats(unsigned node, struct kmem_node_stats *out)
{
	if (node >= mheap_.nnodes)
		return -KMEM_EINVAL;
	memset(out, 0, sizeof(*out));
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++)
		out->cpus += mheap_.cpu_node[cpu] == node;
	unsigned long f = heaps_lock_all();
	struct node_count *c = &mheap_.node_count[node];
	out->alloc_local = atomic_load_explicit(&c->alloc_local, memory_order_relaxed);
	out->alloc_remote = atomic_load_explicit(&c->alloc_remote, memory_order_relaxed);
	out->pages_local = atomic_load_explicit(&c->pages_local, memory_order_relaxed);
	out->pages_remote = atomic_load_explicit(&c->pages_remote, memory_order_relaxed);
	out->pages_metadata = mheap_.meta_pages[node];
	out->metadata_bytes = mheap_.meta_size[node];
	if (mheap_.nnodes == 1) {
		out->pages_managed = mheap_.heap[0]->pages_managed;
		out->pages_free = mheap_.heap[0]->pages_free;
	} else {
		/* Counted from the bitmaps, a word at a time, over the pages
		 * whose node this is (pfn_node: the newest range wins). */
		unsigned nr = atomic_load_explicit(&mheap_.nranges, memory_order_relaxed);
		for (unsigned i = 0; i < nr; i++) {
			const struct node_range *r = &mheap_.node_ranges[i];
			if (r->node != node)
				continue;
			for (uint64_t p = r->lo; p < r->hi;) {
				struct heap_arena *a = arena_of_pfn(p);
				uint64_t stop = (p | 63) + 1 < r->hi ? (p | 63) + 1 : r->hi;
				if (!a) {
					p = (p | (ARENA_PAGES - 1)) + 1;
					continue;
				}
				uint64_t w = (p & (ARENA_PAGES - 1)) >> 6, b = p & 63, cnt = stop - p;
				uint64_t mask = (cnt == 64 ? ~0ull : (1ull << cnt) - 1) << b;
				/* Pages a newer range holds are counted with it. */
				for (unsigned j = i + 1; j < nr; j++) {
					const struct node_range *o = &mheap_.node_ranges[j];
					uint64_t lo = o->lo > p ? o->lo : p, hi = o->hi < stop ? o->hi : stop;
					if (lo < hi)
						mask &= ~((hi - lo == 64 ? ~0ull : (1ull << (hi - lo)) - 1) << (lo & 63));
				}
				out->pages_managed += popcount64(a->managedbits[w] & mask);
				out->pages_free += popcount64(a->pagebits[w] & mask);
				p = stop;
			}
		}
	}
	heaps_unlock_all(f);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Exact free memory (kmem_free_pages)
 *
 * The count is what kpage_alloc(1, 0, 0) would hand out, one call after
 * another, until NULL.  A run of up to RUN_INLINE_MAX pages takes no span
 * descriptor (its pages' kinds in the arena say what it is) and a lazy
 * arena's first write is copied into room reserved at init, so taking a
 * page costs no other page: the count is pages_free, after the reclaim.
 */
size_t kmem_free_pages(void)
{
	kmem_reclaim();
	struct heap_count c;
	unsigned long f = heaps_lock_all();
	heaps_count_locked(&c);
	heaps_unlock_all(f);
	return (size_t)c.pages_free;
}
