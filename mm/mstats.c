/*
 * mm/mstats.c - statistics.  See malloc.c for an overview.
 *
 * Allocations are counted per CPU in the mcache (CPU-local, IRQs off: one
 * increment on the fast path); frees are counted when a sweep folds them
 * (mcentral.nfree, atomic; a kmalloc class's in-place sweeps per CPU, in
 * span_stash.nfree, so that CPUs do not bounce one counter).  So
 * objects_in_use = nmalloc - nfree counts an object as live until its span
 * is swept, and is exact after kmem_reclaim() at quiescence.  Page counters are kept under mheap.lock.
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
	out->cpus_online = mheap_.cpus_online;
	unlock_irqrestore(&mheap_.lock, f);
}

/* Fills *out from a central's counters and the summed per-CPU nmalloc
 * and nfree (in-place sweeps of a kmalloc class). */
void central_stats(const struct mcentral *c, uint64_t nmalloc, uint64_t nfree_cpu,
                   struct kmem_class_stats *out)
{
	out->object_size = c->elemsize;
	out->span_pages = c->npages;
	out->nmalloc = nmalloc;
	out->nfree = atomic_load_explicit(&c->nfree, memory_order_relaxed) + nfree_cpu;
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
	uint64_t nmalloc = 0, nfree = 0;
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++) {
		nmalloc += mheap_.mcaches[cpu].nmalloc[cls];
		nfree += mheap_.mcaches[cpu].stash[cls].nfree;
	}
	central_stats(&mheap_.central[cls], nmalloc, nfree, out);
	return 0;
}
