/*
 * mm/mcentral.c - per-class span lists.  See malloc.c for an overview.
 *
 * A small span is in exactly one place (its sweep state's location):
 *   LOC_CACHED    in one CPU's mcache; that CPU sweeps it in place.
 *   LOC_PARTIAL   on partial (had a free object when last swept).
 *   LOC_FULL      on full (had none).
 *   LOC_QUEUED    still on partial/full, and pushed on `unswept` because
 *                 it received a free while no CPU held it.
 *   LOC_SWEEPING  taken by the lock holder to be swept.
 * Transitions out of PARTIAL/FULL are made under the lock, except
 * PARTIAL/FULL -> QUEUED, which kfree makes lock-free with a CAS: the CAS
 * succeeds once per stay on a list, so a span is pushed at most once and
 * the intrusive stack link is never reused while the span is on it.
 *
 * Race with the span's release: kfree reads the sweep state before its
 * freed bit goes in (its object is live then, so the span cannot be
 * released) and CASes on that generation afterwards.  If the span was
 * swept empty and released meanwhile, the generation has moved on and the
 * CAS fails; descriptors are type-stable (fixalloc), so the read is safe.
 *
 * Lost-free race (Dekker): kfree does "set freed bit; read state"; a lock
 * holder putting a span on a list does "write state; read freed bits".
 * Both sequentially consistent, so at least one of them sees the other and
 * the span is pushed (or swept) -- a free never leaves a full span
 * unfindable.
 *
 * Limit: a *buggy* client's double free that races with the span being
 * swept empty and released can set a freed bit in the descriptor's next
 * life (the generation check guards the queueing, not the bit).  A correct
 * client cannot get there: its object is live until its own free.
 *
 * `unswept` is a lock-free stack: kfree pushes with a CAS; the lock holder
 * takes the whole stack with one exchange, so there is no ABA.
 */
#include "mtypes.h"

extern struct mspan empty_span;

void mcentral_init(struct mcentral *c, unsigned sizeclass, uint32_t elemsize,
                   uint32_t npages, uint32_t nelems, uint32_t align_pages,
                   uint64_t divmul, struct kmem_cache *cache)
{
	memset(c, 0, sizeof(*c));
	lock_init(&c->lock, LOCK_CENTRAL);
	c->sizeclass = (uint16_t)sizeclass;
	c->elemsize = elemsize;
	c->npages = npages;
	c->nelems = nelems;
	c->align_pages = align_pages;
	c->divmul = divmul;
	c->cache = cache;
	atomic_store_explicit(&c->unswept, NULL, memory_order_relaxed);
}

static void list_insert(struct span_list *l, struct mspan *s)
{
	s->prev = NULL;
	s->next = l->first;
	if (l->first)
		l->first->prev = s;
	l->first = s;
	l->count++;
}

static void list_remove(struct span_list *l, struct mspan *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		l->first = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	l->count--;
}

static struct span_list *list_of(struct mcentral *c, struct mspan *s)
{
	return s->on_list == LOC_FULL ? &c->full : &c->partial;
}

void mcentral_push_unswept(struct mcentral *c, struct mspan *s)
{
	struct mspan *old = atomic_load_explicit(&c->unswept, memory_order_relaxed);
	do {
		s->unswept_next = old;
	} while (!atomic_compare_exchange_weak_explicit(&c->unswept, &old, s,
	                                                memory_order_release,
	                                                memory_order_relaxed));
}

static void release_span_locked(struct mcentral *c, struct mspan *s)
{
	c->spans--;
	mheap_free_span(s);
}

/* Puts a span the lock holder owns (swept, not on a list) where it
 * belongs: back to the mheap if empty, else on partial or full.  Then the
 * Dekker re-check: a free that landed after the sweep but before the new
 * state was visible pushed nothing, so push the span ourselves. */
static void place_span_locked(struct mcentral *c, struct mspan *s)
{
	uint64_t gen = SS_GEN(atomic_load_explicit(&s->sweepstate, memory_order_relaxed));
	if (s->alloc_count == 0 && !span_has_freed(s)) {
		release_span_locked(c, s);
		return;
	}
	unsigned loc = s->alloc_count < s->nelems ? LOC_PARTIAL : LOC_FULL;
	s->on_list = (uint8_t)loc;
	list_insert(list_of(c, s), s);
	atomic_store_explicit(&s->sweepstate, SS_MAKE(gen, loc), memory_order_seq_cst);
	if (span_has_freed(s)) {
		uint64_t expect = SS_MAKE(gen, loc);
		if (atomic_compare_exchange_strong(&s->sweepstate, &expect, SS_MAKE(gen, LOC_QUEUED)))
			mcentral_push_unswept(c, s);
	}
}

/* Sweeps a span the lock holder has just taken off its list (state
 * LOC_SWEEPING) and places it. */
static size_t resweep_locked(struct mcentral *c, struct mspan *s)
{
	atomic_fetch_add_explicit(&c->nfree, span_sweep(s), memory_order_relaxed);
	if (s->alloc_count == 0 && !span_has_freed(s)) {
		uint64_t n = s->npages;
		release_span_locked(c, s);
		return n;
	}
	place_span_locked(c, s);
	return 0;
}

/* Takes every span pushed on `unswept`, sweeps it, and places it. */
static size_t drain_unswept_locked(struct mcentral *c)
{
	size_t released = 0;
	struct mspan *s = atomic_exchange_explicit(&c->unswept, NULL, memory_order_acquire);
	while (s) {
		struct mspan *next = s->unswept_next;
		uint64_t st = atomic_load_explicit(&s->sweepstate, memory_order_relaxed);
		KASSERT(SS_LOC(st) == LOC_QUEUED);
		list_remove(list_of(c, s), s);
		s->on_list = 0;
		atomic_store_explicit(&s->sweepstate, SS_MAKE(SS_GEN(st), LOC_SWEEPING),
		                      memory_order_seq_cst);
		released += resweep_locked(c, s);
		s = next;
	}
	return released;
}

/* Hands a span with a free object to a CPU's cache; grows from the mheap
 * if the class has none.  Returns NULL iff the mheap is out of pages. */
struct mspan *mcentral_cache_span(struct mcentral *c)
{
	lock_acquire(&c->lock);
	for (;;) {
		drain_unswept_locked(c);
		struct mspan *s = c->partial.first;
		if (!s)
			break;
		uint64_t expect = SS_MAKE(SS_GEN(atomic_load_explicit(&s->sweepstate,
		                                                      memory_order_relaxed)),
		                          LOC_PARTIAL);
		/* Fails iff a kfree queued it since the drain: drain again. */
		if (!atomic_compare_exchange_strong(&s->sweepstate, &expect,
		                                    SS_MAKE(SS_GEN(expect), LOC_CACHED)))
			continue;
		list_remove(&c->partial, s);
		s->on_list = 0;
		atomic_fetch_add_explicit(&c->nfree, span_sweep(s), memory_order_relaxed);
		lock_release(&c->lock);
		return s;
	}
	lock_release(&c->lock);

	struct mspan *s = mheap_alloc_span(c->npages, c->align_pages, 0, SPAN_SMALL, c);
	if (!s)
		return NULL;
	lock_acquire(&c->lock);
	c->spans++;
	if (c->spans > c->peak_spans)
		c->peak_spans = c->spans;
	lock_release(&c->lock);
	return s;
}

/* A CPU gives back the span it cached (exhausted, or on a flush). */
void mcentral_uncache_span(struct mcentral *c, struct mspan *s)
{
	if (s == &empty_span)
		return;
	lock_acquire(&c->lock);
	atomic_fetch_add_explicit(&c->nfree, span_sweep(s), memory_order_relaxed);
	if (s->alloc_count == 0 && !span_has_freed(s))
		release_span_locked(c, s);
	else
		place_span_locked(c, s);
	lock_release(&c->lock);
}

/* Sweeps every span no CPU holds and releases the empty ones.  Returns
 * the pages released. */
size_t mcentral_reclaim(struct mcentral *c)
{
	lock_acquire(&c->lock);
	size_t released = drain_unswept_locked(c);
	struct span_list *lists[2] = {&c->partial, &c->full};
	for (int i = 0; i < 2; i++) {
		/* Take the list, then put every span back through place(). */
		struct mspan *s = lists[i]->first;
		while (s) {
			struct mspan *next = s->next;
			uint64_t st = atomic_load_explicit(&s->sweepstate, memory_order_relaxed);
			uint64_t expect = SS_MAKE(SS_GEN(st), s->on_list);
			if (atomic_compare_exchange_strong(&s->sweepstate, &expect,
			                                   SS_MAKE(SS_GEN(st), LOC_SWEEPING))) {
				list_remove(lists[i], s);
				s->on_list = 0;
				released += resweep_locked(c, s);
			}
			s = next;
		}
	}
	/* Spans queued while we swept. */
	released += drain_unswept_locked(c);
	lock_release(&c->lock);
	return released;
}

/* Division constant for an object size (same rule as sizeclasses.c). */
uint64_t mcentral_div_const(uint32_t elemsize)
{
	return (((uint64_t)1 << KMEM_DIV_SHIFT) + elemsize - 1) / elemsize;
}
