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

/*
 * The stash.  A span that runs out in a CPU's mcache with no free waiting
 * used to go straight to its mcentral's full list; the frees that followed
 * (usually from the same CPU, soon) then queued it on the shared unswept
 * stack with a CAS, and a refill took the mcentral lock to drain, sweep
 * and hand it out again: two lock holds, a CAS and two sweeps per span,
 * all on cache lines every CPU using the class bounces.  With one-page
 * spans of 4-9 objects for 512 B..1 KiB, that was one mcentral round trip
 * every few allocations.
 *
 * Instead the CPU keeps up to mcentral.stash_max exhausted spans of the
 * class in its stash, still LOC_CACHED: frees into them only set their
 * freed bit (no CAS, no push), and the next time the cached span runs out
 * the CPU takes a stashed span with frees, sweeps it in place and goes on
 * -- no lock.  Past the bound the oldest stashed span goes to the mcentral
 * (mcentral_uncache_span, which sweeps it if frees came meanwhile), and a
 * flush (kmem_cpu_offline, mheap_reclaim on this CPU) empties the stash.
 * The bound is empty_max's (about 128 objects or 128 KiB per class and
 * CPU); those spans' frees wait for their CPU, as the cached span's do.
 * Object caches have no stash (stash_max 0).
 *
 * Every stashed span is exhausted (freeindex == nelems): it is swept only
 * when it leaves the stash.
 */

/* Takes the first stashed span with frees waiting; if there is none and
 * the stash is full, the oldest span is evicted to *evict. */
static struct mspan *stash_take(struct span_stash *st, uint32_t max, struct mspan **evict)
{
	struct mspan **link = &st->first, **last = NULL;
	for (struct mspan *t = st->first; t; t = t->next) {
		if (span_has_freed(t)) {
			*link = t->next;
			t->next = NULL;
			st->count--;
			return t;
		}
		last = link;
		link = &t->next;
	}
	if (st->count >= max && last) {
		*evict = *last;
		*last = NULL;
		st->count--;
	}
	return NULL;
}

static void stash_push(struct span_stash *st, struct mspan *s)
{
	s->next = st->first;
	st->first = s;
	st->count++;
}

/* Takes the newest stashed span, or NULL if the stash is empty. */
static struct mspan *stash_pop(struct span_stash *st)
{
	struct mspan *t = st->first;
	if (t) {
		st->first = t->next;
		st->count--;
		t->next = NULL;
	}
	return t;
}

/* Counts objects swept free in place: per CPU where there is a stash (one
 * shared atomic per class was a cache line every CPU of the class
 * bounced on each in-place sweep). */
static inline void count_swept(struct mcentral *c, struct span_stash *st, unsigned n)
{
	if (st)
		st->nfree += n;
	else
		atomic_fetch_add_explicit(&c->nfree, n, memory_order_relaxed);
}

/* The slow path of an allocation from *slot (a class slot of an mcache,
 * with its stash st; or a CPU slot of an object cache, st NULL), interrupts off:
 *   1. take the next free object of the cached span past its alloc cache;
 *   2. the span is exhausted: sweep it in place (remote frees) and retry;
 *   3. stash it, and cache a stashed span with frees, swept in place (the
 *      oldest stashed span goes to the mcentral if the stash is full);
 *   4. else give the span back to the mcentral (no stash) and cache
 *      another one from it (mcentral may grow from the mheap);
 *   5. out of pages: sweep everything, release empty spans, retry once.
 * Returns NULL iff step 5 found nothing. */
void *mcache_refill_alloc(struct mspan **slot, struct mcentral *c, struct span_stash *st)
{
	struct mspan *s = *slot;
	if (s != &empty_span) {
		uint32_t idx = span_next_free_index(s);
		if (idx < s->nelems)
			return obj_at(s, idx);
		if (span_has_freed(s)) {
			count_swept(c, st, span_sweep(s));
			idx = span_next_free_index(s);
			if (idx < s->nelems)
				return obj_at(s, idx);
		}
		*slot = &empty_span;
		if (st && c->stash_max) {
			struct mspan *evict = NULL;
			struct mspan *t = stash_take(st, c->stash_max, &evict);
			stash_push(st, s);
			if (evict)
				mcentral_uncache_span(c, evict);
			if (t) {
				/* Exhausted with frees: at least one object after the sweep. */
				count_swept(c, st, span_sweep(t));
				*slot = t;
				idx = span_next_free_index(t);
				KASSERT(idx < t->nelems);
				return obj_at(t, idx);
			}
		} else {
			mcentral_uncache_span(c, s);
		}
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
		for (struct mspan *t; (t = stash_pop(&m->stash[cls]));)
			mcentral_uncache_span(&mheap_.central[cls], t);
	}
	kmem_caches_cpu_flush(cpu);
}
