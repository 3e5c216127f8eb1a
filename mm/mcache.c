/*
 * mm/mcache.c - per-CPU caches: the refill slow path and flushing.  See
 * malloc.c for an overview.
 *
 * An mcache is touched only by its own CPU with interrupts off, so it
 * needs no lock; kmem_cpu_offline() may flush another CPU's mcache only
 * when that CPU is out of the allocator for good.
 */
#include "mtypes.h"

/* Sentinel every empty slot points at: its zero alloc_cache sends the
 * fast path here without a NULL check. */
struct mspan empty_span;

static inline void *obj_at(struct mspan *s, uint32_t idx)
{
	return (void *)(s->base + (uintptr_t)idx * s->elemsize);
}

/* The slow path of an allocation from *slot (a class slot of an mcache or
 * a CPU slot of an object cache), interrupts off:
 *   1. take the next free object of the cached span past its alloc cache;
 *   2. the span is exhausted: sweep it in place (remote frees) and retry;
 *   3. give it back to the mcentral and cache another one (mcentral may
 *      grow from the mheap);
 *   4. out of pages: sweep everything, release empty spans, retry once.
 * Returns NULL iff step 4 found nothing. */
void *mcache_refill_alloc(struct mspan **slot, struct mcentral *c)
{
	struct mspan *s = *slot;
	if (s != &empty_span) {
		uint32_t idx = span_next_free_index(s);
		if (idx < s->nelems)
			return obj_at(s, idx);
		if (span_has_freed(s)) {
			atomic_fetch_add_explicit(&c->nfree, span_sweep(s), memory_order_relaxed);
			idx = span_next_free_index(s);
			if (idx < s->nelems)
				return obj_at(s, idx);
		}
		*slot = &empty_span;
		mcentral_uncache_span(c, s);
	}
	s = mcentral_cache_span(c);
	if (!s) {
		mheap_reclaim();
		s = mcentral_cache_span(c);
		if (!s)
			return NULL;
	}
	*slot = s;
	uint32_t idx = span_next_free_index(s);
	KASSERT(idx < s->nelems);
	return obj_at(s, idx);
}

/* Gives every span CPU `cpu` caches back to its mcentral. */
void mcache_flush(unsigned cpu)
{
	struct mcache *m = mcache_of(cpu);
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++) {
		struct mspan *s = m->alloc[cls];
		if (s != &empty_span) {
			m->alloc[cls] = &empty_span;
			mcentral_uncache_span(&mheap_.central[cls], s);
		}
	}
	kmem_caches_cpu_flush(cpu);
}
