/*
 * mm/mcentral.c - per-class span lists.  See malloc.c for an overview.
 *
 * A small span is in exactly one place (its sweep state's location):
 *   LOC_CACHED    one CPU fills magazines from it (cpu_class.span,
 *                 mcache.c); that CPU sweeps it in place.
 *   LOC_PARTIAL   on partial (had a free object when last swept).
 *   LOC_FULL      on full (had none).
 *   LOC_QUEUED    still on partial/full, and pushed on `unswept` because
 *                 it received a free while no CPU held it.
 *   LOC_SWEEPING  taken by the lock holder to be swept.
 *   LOC_EMPTY     on empty: swept with no object allocated, kept for the
 *                 next CPU that needs a span of the class.
 * Transitions out of PARTIAL/FULL are made under the lock, except
 * PARTIAL/FULL -> QUEUED, which kfree makes lock-free with a CAS: the CAS
 * succeeds once per stay on a list, so a span is pushed at most once and
 * the intrusive stack link is never reused while the span is on it.
 *
 * Race with the span's release: a free to the span (mcentral_freed)
 * reads the sweep state before its freed bits go in (its objects are
 * taken then, so the span cannot be released) and CASes on that
 * generation afterwards.  If the span was
 * swept empty and released meanwhile, the generation has moved on and the
 * CAS fails; descriptors are type-stable (fixalloc), so the read is safe.
 *
 * Lost-free race (Dekker): a free does "set freed bits; fence; read
 * state"; a lock holder putting a span on a list does "write state;
 * fence; read freed bits".  With a full fence on both sides (seq_cst
 * fences, not only seq_cst accesses: on aarch64 a seq_cst store (stlr)
 * followed by a relaxed load (ldr) may be reordered), at least one of
 * them sees the other and the span is pushed (or swept) -- a free never
 * leaves a full span unfindable.
 *
 * Objects in magazines are taken objects: a span holding one is never
 * empty, and a span is given back to the mheap only when every object
 * state is OBJ_FREE (span_all_free), so no magazine entry can outlive its
 * span.
 *
 * Empty spans.  A span that sweeps empty is kept on `empty` (up to
 * empty_max per class) instead of going straight back to the mheap: a
 * workload that fills a span, frees everything and allocates again would
 * otherwise pay a page allocation, an arena map update and a span
 * initialisation per span-full of objects.  The bound keeps the pages
 * parked per class small:
 *     empty_max = max(1, min(EMPTY_KEEP_BYTES / span bytes,
 *                            EMPTY_KEEP_OBJECTS / objects per span))
 * and empty spans go back to the mheap on mcentral_reclaim (kmem_reclaim,
 * kmem_cache_shrink/destroy, and before any allocation fails for want of
 * pages).  No kfree of a correct client can land in an empty span (it
 * holds no allocated object), so LOC_EMPTY is never queued: kfree's
 * validation (the object's state) reports such a free and changes nothing.
 *
 * `unswept` is a lock-free stack: kfree pushes with a CAS; the lock holder
 * takes the whole stack with one exchange, so there is no ABA.
 */
#include "mtypes.h"

#define EMPTY_KEEP_BYTES (128u << 10)
#define EMPTY_KEEP_OBJECTS 128u
/* Magazines: a magazine holds at most MAG_BYTES of objects (at least two
 * objects), and the depot at most DEPOT_BYTES of full magazines (at least
 * two, at most DEPOT_FULL_MAX). */
#define MAG_BYTES (32u << 10)
#define DEPOT_BYTES (256u << 10)
#define DEPOT_FULL_MAX 16u

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
	uint32_t by_bytes = EMPTY_KEEP_BYTES / (npages * PAGE_SIZE);
	uint32_t by_objs = EMPTY_KEEP_OBJECTS / nelems;
	uint32_t keep = by_bytes < by_objs ? by_bytes : by_objs;
	c->empty_max = keep ? keep : 1;
	atomic_store_explicit(&c->unswept, NULL, memory_order_relaxed);
	mcentral_set_magazines(c, true);
}

/* Magazine geometry (magazine.c); with `on` false the class has none and
 * every object goes straight between span and client (debug spans; the
 * span-level tests). */
void mcentral_set_magazines(struct mcentral *c, bool on)
{
	uint32_t cap = MAG_BYTES / c->elemsize;
	cap = cap < 2 ? 2 : cap > MAG_CAP_MAX ? MAG_CAP_MAX : cap;
	c->mag_cap = on && !c->debug ? cap : 0;
	uint32_t full = DEPOT_BYTES / (cap * c->elemsize);
	c->depot.full_max = full < 2 ? 2 : full > DEPOT_FULL_MAX ? DEPOT_FULL_MAX : full;
	lock_init(&c->depot.lock, LOCK_DEPOT);
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

static struct span_list *list_of(struct mcentral *c, unsigned loc)
{
	return loc == LOC_FULL ? &c->full : loc == LOC_EMPTY ? &c->empty : &c->partial;
}

/* Puts s (owned by the lock holder, off every list) on list `loc` and
 * publishes the location; seq_cst for the Dekker argument above. */
static void list_put_locked(struct mcentral *c, struct mspan *s, unsigned loc, uint64_t gen)
{
	s->on_list = (uint8_t)loc;
	list_insert(list_of(c, loc), s);
	atomic_store_explicit(&s->sweepstate, SS_MAKE(gen, loc), memory_order_seq_cst);
}

/* Takes s off its list; the caller then owns it (state `loc`). */
static void list_take_locked(struct mcentral *c, struct mspan *s, unsigned loc)
{
	list_remove(list_of(c, s->on_list), s);
	s->on_list = 0;
	atomic_store_explicit(&s->sweepstate,
	                      SS_MAKE(SS_GEN(atomic_load_explicit(&s->sweepstate,
	                                                          memory_order_relaxed)),
	                              loc),
	                      memory_order_seq_cst);
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
	/* Off kfree's fast path before the descriptor can be reused. */
	atomic_store_explicit(&s->fast_nelems, 0, memory_order_relaxed);
	c->spans--;
	mheap_free_span(s);
}

/* Puts a span the lock holder owns (swept, not on a list) where it
 * belongs: on empty if it has no object and the class keeps fewer than
 * empty_max (else back to the mheap), on partial or on full.  Then the
 * Dekker re-check: a free that landed after the sweep but before the new
 * state was visible pushed nothing, so push the span ourselves.  Returns
 * the pages released. */
static size_t place_span_locked(struct mcentral *c, struct mspan *s)
{
	uint64_t gen = SS_GEN(atomic_load_explicit(&s->sweepstate, memory_order_relaxed));
	if (s->alloc_count == 0 && !span_has_freed(s) && span_all_free(s)) {
		if (c->empty.count < c->empty_max) {
			list_put_locked(c, s, LOC_EMPTY, gen);
			return 0;
		}
		uint64_t n = s->npages;
		release_span_locked(c, s);
		return n;
	}
	unsigned loc = s->alloc_count < s->nelems ? LOC_PARTIAL : LOC_FULL;
	list_put_locked(c, s, loc, gen);
	atomic_thread_fence(memory_order_seq_cst); /* Dekker: state, then bits */
	if (span_has_freed(s)) {
		uint64_t expect = SS_MAKE(gen, loc);
		if (atomic_compare_exchange_strong(&s->sweepstate, &expect, SS_MAKE(gen, LOC_QUEUED)))
			mcentral_push_unswept(c, s);
	}
	return 0;
}

/* Sweeps a span the lock holder owns and places it. */
static size_t resweep_locked(struct mcentral *c, struct mspan *s)
{
	span_sweep(s);
	return place_span_locked(c, s);
}

/* Takes the top span of the unswept stack.  Only the lock holder pops,
 * and a span is on the stack at most once per stay on a list, so a span
 * popped here cannot come back while the CAS is pending: no ABA. */
static struct mspan *unswept_pop_locked(struct mcentral *c)
{
	struct mspan *s = atomic_load_explicit(&c->unswept, memory_order_acquire);
	while (s && !atomic_compare_exchange_weak_explicit(&c->unswept, &s, s->unswept_next,
	                                                   memory_order_acquire,
	                                                   memory_order_acquire))
		;
	return s;
}

/* Sweeps and places up to `budget` spans pushed on `unswept` (0: all of
 * them).  A refill passes a small budget: the spans were queued by frees,
 * so each one swept has a free object (or is empty), and the allocation
 * needs only one; the rest wait for the next refills or for reclaim.  So
 * no refill sweeps more than DRAIN_BUDGET spans with the lock held and
 * interrupts off, however many frees queued spans before it. */
static size_t drain_unswept_locked(struct mcentral *c, unsigned budget)
{
	size_t released = 0;
	struct mspan *s, *next = NULL;
	if (budget == 0)
		s = atomic_exchange_explicit(&c->unswept, NULL, memory_order_acquire);
	else
		s = unswept_pop_locked(c);
	for (unsigned n = 1; s; n++) {
		if (budget == 0)
			next = s->unswept_next;
		KASSERT(SS_LOC(atomic_load_explicit(&s->sweepstate, memory_order_relaxed)) ==
		        LOC_QUEUED);
		list_take_locked(c, s, LOC_SWEEPING);
		released += resweep_locked(c, s);
		s = budget == 0 ? next : n < budget ? unswept_pop_locked(c) : NULL;
	}
	return released;
}

/* Hands a span with a free object to a CPU's cache; grows from the mheap
 * if the class has none.  Returns NULL iff the mheap is out of pages. */
/* The first partial span, swept and LOC_CACHED for the caller; NULL if
 * there is none or a kfree queued it meanwhile (it is then on unswept). */
static struct mspan *take_partial_locked(struct mcentral *c)
{
	struct mspan *s = c->partial.first;
	if (!s)
		return NULL;
	uint64_t expect = SS_MAKE(SS_GEN(atomic_load_explicit(&s->sweepstate, memory_order_relaxed)),
	                          LOC_PARTIAL);
	if (!atomic_compare_exchange_strong(&s->sweepstate, &expect,
	                                    SS_MAKE(SS_GEN(expect), LOC_CACHED)))
		return NULL;
	list_remove(&c->partial, s);
	s->on_list = 0;
	span_sweep(s);
	return s;
}

/* A kept empty span (already swept, and no kfree acts on LOC_EMPTY, so
 * no CAS is needed), LOC_CACHED for the caller; or NULL. */
static struct mspan *take_empty_locked(struct mcentral *c)
{
	struct mspan *e = c->empty.first;
	if (e)
		list_take_locked(c, e, LOC_CACHED);
	return e;
}

struct mspan *mcentral_cache_span(struct mcentral *c)
{
	lock_acquire(&c->lock);
	for (;;) {
		drain_unswept_locked(c, DRAIN_BUDGET);
		if (!c->partial.first)
			break;
		/* NULL iff a kfree queued it since the drain: drain again. */
		struct mspan *s = take_partial_locked(c);
		if (s) {
			lock_release(&c->lock);
			return s;
		}
	}
	/* No partial span: reuse a kept empty one. */
	struct mspan *e = take_empty_locked(c);
	if (e) {
		lock_release(&c->lock);
		return e;
	}
	lock_release(&c->lock);

	struct mspan *s = mheap_alloc_span(c->npages, c->align_pages, 0, SPAN_SMALL, c, c->node);
	if (!s)
		return NULL;
	lock_acquire(&c->lock);
	c->spans++;
	if (c->spans > c->peak_spans)
		c->peak_spans = c->spans;
	lock_release(&c->lock);
	return s;
}

/* Places s (the caller's, LOC_CACHED) on the full list if it is
 * exhausted with no free waiting (the usual case): full as it is, no
 * sweep, and no release to the mheap.  Every object is below freeindex,
 * so
 *     alloc_count == nelems == live objects
 * and the next sweep (after a free queues it) starts from there.
 * Returns false, doing nothing, otherwise. */
static bool place_exhausted_locked(struct mcentral *c, struct mspan *s)
{
	if (atomic_load_explicit(&s->freeindex, memory_order_relaxed) != s->nelems ||
	    span_has_freed(s))
		return false;
	s->alloc_count = (uint16_t)s->nelems;
	place_span_locked(c, s);
	return true;
}

/* A CPU gives back the span it cached (exhausted, or on a flush). */
void mcentral_uncache_span(struct mcentral *c, struct mspan *s)
{
	if (!s)
		return;
	lock_acquire(&c->lock);
	if (!place_exhausted_locked(c, s))
		resweep_locked(c, s);
	lock_release(&c->lock);
}

/* kmalloc_nolock's refill of the depot's shared span *sp (nolock.c):
 * never waits, never drains, sweeps a listed span or grows.  Returns
 * false, changing nothing, if c's lock is busy or *sp is not NULL or
 * exhausted with no frees waiting.  Else puts *sp on the full list and
 * replaces it with a partial or kept empty span (LOC_CACHED, the
 * caller's) or NULL.  Interrupts off. */
bool mcentral_try_trade_span(struct mcentral *c, struct mspan **sp)
{
	if (!lock_try(&c->lock))
		return false;
	/* One test of *sp, the one that places it: a free may land on it at
	 * any moment. */
	bool traded = !*sp || place_exhausted_locked(c, *sp);
	if (traded) {
		*sp = take_partial_locked(c);
		if (!*sp)
			*sp = take_empty_locked(c);
	}
	lock_try_release(&c->lock);
	return traded;
}

/* Gives the depot's full magazines back to their spans, sweeps every span
 * no CPU holds and releases the empty ones, kept ones included.  Returns
 * the pages released. */
size_t mcentral_reclaim(struct mcentral *c)
{
	depot_drain(c);
	lock_acquire(&c->lock);
	size_t released = drain_unswept_locked(c, 0);
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
	released += drain_unswept_locked(c, 0);
	/* Last, the empty spans: kept ones and those the sweeps above found. */
	while (c->empty.first) {
		struct mspan *e = c->empty.first;
		list_take_locked(c, e, LOC_SWEEPING);
		released += e->npages;
		release_span_locked(c, e);
	}
	lock_release(&c->lock);
	return released;
}

/* Frees went into span s (their state bytes OBJ_FREE, their freed bits
 * set); `st` is s's sweep state read before the first bit went in.  If no
 * CPU holds s (it is on a partial or full list: one bit, LOC_LISTED), the
 * first such free moves it to QUEUED with a CAS and pushes it on the
 * unswept stack, so the next refill sweeps it.  Lock-free: any CPU, any
 * context. */
void mcentral_freed(struct mspan *s, uint64_t st)
{
	atomic_thread_fence(memory_order_seq_cst); /* Dekker: bits, then state */
	uint64_t now = atomic_load_explicit(&s->sweepstate, memory_order_relaxed);
	if (__builtin_expect(!(SS_LOC(now) & LOC_LISTED), 1))
		return;
	if (SS_GEN(now) != SS_GEN(st))
		return; /* swept empty and released meanwhile */
	if (atomic_compare_exchange_strong(&s->sweepstate, &now, SS_MAKE(SS_GEN(now), LOC_QUEUED)))
		mcentral_push_unswept(s->central, s); /* same life: its central */
}

/* Reports the racing double frees sweeps of c found (mspan.c): from the
 * slow paths, where no allocator lock is held. */
void mcentral_report_racing(struct mcentral *c)
{
	if (__builtin_expect(!atomic_load_explicit(&c->racing, memory_order_relaxed), 1))
		return;
	uint64_t n = atomic_exchange_explicit(&c->racing, 0, memory_order_acquire);
	const void *p = (const void *)atomic_load_explicit(&c->racing_addr, memory_order_relaxed);
	for (; n; n--)
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, NULL,
		             "freed twice at the same moment (found by a sweep)");
}

/* Division constant for an object size (same rule as sizeclasses.c). */
uint64_t mcentral_div_const(uint32_t elemsize)
{
	return (((uint64_t)1 << KMEM_DIV_SHIFT) + elemsize - 1) / elemsize;
}
