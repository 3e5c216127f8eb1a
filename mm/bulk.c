/*
 * mm/bulk.c - bulk allocation and free: kmem_cache_alloc_bulk,
 * kmem_cache_free_bulk, kfree_bulk (Linux's names and contracts, without
 * gfp flags).  See malloc.c for an overview.
 *
 * Design.  A single kmem_cache_alloc or kfree pays, per object, the entry
 * into the allocator (interrupts off and on, or arch_fast_enter/exit), the
 * CPU index, the slot lookup, and for caches the validation and a few
 * calls.  The bulk calls enter once and then work on the CPU's loaded
 * magazine (struct mag_slot: top/end/base/id) directly: an allocation pops
 * as many entries as it can in one loop (each checked against the
 * magazine's id, as kmalloc checks it), a free pushes validated objects
 * until the magazine is full.  When the loaded magazine runs dry or full,
 * the magazine slow paths (mag_alloc_slow / mag_free_slow, still inside
 * the same entry) swap in the previous magazine or one from the depot, so
 * interrupts go off once per batch, or once per magazine exchanged.
 *
 * A free takes the quick way only for an object it can vouch for: the
 * start of an object of a plain span (a kmalloc span on kfree's fast path,
 * or, for kfree_bulk and kmem_cache_free_bulk, a non-debug span of the
 * cache) whose state is OBJ_CLIENT, checked with interrupts off.  Anything
 * else -- NULL is skipped; a bad pointer, a large object, a debug or
 * hardened span, a class without magazines, a call nested in this CPU's
 * fast path -- leaves the loop and goes through the single call (kfree or
 * kmem_cache_free), which reports a bad pointer exactly as it always does,
 * and the batch goes on after it.  So a batch with bad pointers in it
 * frees every good one and reports every bad one.
 *
 * Consecutive objects of one span share a span lookup: the previous
 * object's span is reused while the next pointer falls inside it.  That is
 * safe because the previous object sits in this CPU's loaded magazine,
 * which keeps its span alive until this CPU leaves the loop; after a
 * magazine exchange (which may hand earlier objects to the depot, and so
 * to other CPUs) the span is looked up again.
 *
 * kmem_cache_alloc_bulk is all or nothing: when the magazines and the
 * spans have nothing left it tries the single path for the next object
 * (kmem_cache_alloc's reclaim, OOM hook and retries), and if that fails
 * too it frees what it took and returns 0.  Debug caches (no magazines,
 * a record per object) take the single path for every object.
 */
#include "mtypes.h"

/* Inside an entered path (arch_fast_enter), the loaded magazine may be
 * pushed and popped as kmalloc and kfree do; the magazine slow paths need
 * interrupts off as well.  slow_in/slow_out turn them off and on around
 * one such call (no-ops where entering turned them off already). */
static inline unsigned long slow_in(unsigned long t)
{
	return irqoff_in(t);
}

static inline void slow_out(unsigned long f)
{
	if (KMEM_FAST_NESTING)
		arch_irq_restore(f);
	else
		(void)f;
}

/* ---------------------------------------------------------------------------
 * Allocation
 */

/* Takes up to n objects of central c from this CPU's magazines into p,
 * refilling them on the way (mag_alloc_slow); returns how many.  Fewer
 * than n only if the spans gave out (or the call is nested in this CPU's
 * fast path: 0). */
static size_t alloc_entered(struct mcentral *c, size_t n, void **p)
{
	unsigned long t = arch_fast_enter();
	if (fast_nested(t)) {
		arch_fast_exit(t);
		return 0;
	}
	struct mag_slot *ms;
	struct cpu_class *cc;
	unsigned cpu = arch_cpu_id();
	c = central_of_cpu(c, cpu); /* its node's (mtypes.h) */
	cpu_slots(c, cpu, &ms, &cc);
	size_t i = 0;
	while (i < n) {
		void **e = ms->top, **base = ms->base;
		uint8_t id = (uint8_t)ms->id;
		size_t i0 = i;
		while (i < n && e != base) {
			_Atomic uint8_t *st = *mag_entry_st(e - 1);
			if (atomic_load_explicit(st, memory_order_relaxed) != id)
				break; /* stale: mag_alloc_slow reports it */
			e--;
			p[i++] = *e;
			atomic_store_explicit(st, OBJ_CLIENT, memory_order_relaxed);
		}
		ms->top = e;
		cc->nmalloc += i - i0;
		if (i == n)
			break;
		unsigned long f = slow_in(t);
		void *q = mag_alloc_slow(ms, cc, c);
		slow_out(f);
		if (!q)
			break;
		p[i++] = q;
	}
	arch_fast_exit(t);
	return i;
}

size_t kmem_cache_alloc_bulk(struct kmem_cache *k, size_t n, void **p)
{
	if (!k || k->magic != KMEM_CACHE_MAGIC) {
		report_fault(KMEM_FAULT_WRONG_CACHE, k, NULL, "not a live object cache");
		return 0;
	}
	uintptr_t caller = (uintptr_t)__builtin_return_address(0);
	struct mcentral *c = &k->central;
	size_t i = c->debug ? 0 : alloc_entered(c, n, p);
	while (i < n) {
		/* The single path: debug caches, or the spans gave out (it
		 * reclaims, asks the OOM hook and retries). */
		void *q = WITH_OOM_RETRY(oom_request(KMEM_OOM_CACHE, k->size, k->align, 0),
		                         cache_alloc_on_cpu(k, caller, KMEM_NO_NODE));
		if (!q) {
			kmem_cache_free_bulk(k, i, p);
			return 0;
		}
		p[i++] = q;
		if (!c->debug)
			i += alloc_entered(c, n - i, p + i);
	}
	if (k->ctor)
		for (i = 0; i < n; i++)
			k->ctor(p[i]);
	return n;
}

/* ---------------------------------------------------------------------------
 * Free
 */

/* Where objects of span s go on this CPU, if a bulk free of cache k
 * (NULL: kfree_bulk) may take them the quick way: the slot, its class
 * state and central, the counter to bump, and the object count below
 * which an index is valid.  0 if it may not. */
struct free_to {
	struct mag_slot *ms;
	struct cpu_class *cc;
	struct mcentral *c;
	uint64_t *count;
	uint32_t limit;
};

static inline uint32_t free_route(struct mspan *s, struct kmem_cache *k, unsigned cpu,
                           struct free_to *to)
{
	uint32_t fast = atomic_load_explicit(&s->fast_nelems, memory_order_relaxed);
	if (s->node != mcache_of(cpu)->node)
		return to->limit = 0; /* another node's: kfree sends it home */
	if (fast && !k) {
		/* A plain kmalloc span (mtypes.h: the fast paths' gate). */
		struct mcache *m = mcache_of(cpu);
		to->c = s->central;
		to->ms = &m->mag[s->sizeclass];
		to->cc = &m->cls[s->sizeclass];
		to->count = &m->nfree[s->sizeclass];
		return to->limit = fast;
	}
	if (fast || atomic_load_explicit(&s->state, memory_order_acquire) != SPAN_SMALL ||
	    !s->cache || s->dbg || (k && s->cache != k))
		return to->limit = 0;
	to->c = s->central;
	cpu_slots(to->c, cpu, &to->ms, &to->cc);
	to->count = &to->cc->nfree;
	return to->limit = s->nelems;
}

/* Frees p[0..n) the quick way while it can; returns how many entries it
 * dealt with, stopping at the first it cannot vouch for (see the header;
 * a NULL stops it too, and the caller's kfree skips it).  The outer loop
 * finds a span, the inner one frees the objects that follow in it, with
 * the span's fields and the slot's top in locals: a byte store (the
 * state) may alias anything, and would make the compiler reload them. */
static inline __attribute__((always_inline)) size_t free_entered(struct kmem_cache *k, size_t n,
                                                                 void *const *p)
{
	unsigned long t = arch_fast_enter();
	if (fast_nested(t)) {
		arch_fast_exit(t);
		return 0;
	}
	unsigned cpu = arch_cpu_id();
	void *const *q = p, *const *qend = p + n;
	while (q != qend) {
		struct free_to to;
		struct mspan *s = span_of_ptr(*q);
		if (!s || !free_route(s, k, cpu, &to))
			break;
		/* The span's objects are at base + [0, bytes): an offset below
		 * bytes has a valid index (the division constant is exact
		 * there).  Until the loop leaves, the objects pushed keep the
		 * span alive (they are in this CPU's loaded magazine). */
		uintptr_t base = s->base;
		uint64_t elemsize = s->elemsize, divmul = s->divmul;
		uintptr_t bytes = to.limit * elemsize;
		_Atomic uint8_t *objstate = s->objstate;
		void **top = to.ms->top, **end = to.ms->end;
		uint8_t id = (uint8_t)to.ms->id;
		uintptr_t off = (uintptr_t)*q - base;
		bool stop = off >= bytes; /* in the span's tail */
		while (!stop) {
			uint32_t idx = (uint32_t)((off * divmul) >> KMEM_DIV_SHIFT);
			_Atomic uint8_t *st = &objstate[idx];
			if (idx * elemsize != off ||
			    atomic_load_explicit(st, memory_order_relaxed) != OBJ_CLIENT) {
				stop = true;
				break;
			}
			if (top == end) {
				*to.count += (uint64_t)(top - to.ms->top);
				to.ms->top = top;
				unsigned long f = slow_in(t);
				stop = !mag_free_slow(to.ms, to.cc, to.c, *q, st);
				slow_out(f);
				/* The slot changed, and earlier objects may have
				 * left this CPU with the magazine: look the span up
				 * again. */
				top = to.ms->top;
				q += !stop;
				break;
			}
			*top = (void *)(base + off); /* *q, without keeping it live */
			*mag_entry_st(top) = st;
			top++;
			atomic_store_explicit(st, id, memory_order_relaxed);
			if (++q == qend)
				break;
			off = (uintptr_t)*q - base;
			if (off >= bytes)
				break; /* another span: look it up */
		}
		*to.count += (uint64_t)(top - to.ms->top);
		to.ms->top = top;
		if (stop)
			break;
	}
	arch_fast_exit(t);
	return (size_t)(q - p);
}

void kfree_bulk(size_t n, void **p)
{
	for (size_t i = 0; i < n;) {
		i += free_entered(NULL, n - i, p + i);
		if (i < n)
			kfree(p[i++]); /* frees it, reports it, or skips a NULL */
	}
}

void kmem_cache_free_bulk(struct kmem_cache *k, size_t n, void **p)
{
	if (!k) {
		kfree_bulk(n, p);
		return;
	}
	if (k->magic != KMEM_CACHE_MAGIC) {
		for (size_t i = 0; i < n; i++)
			kmem_cache_free(k, p[i]); /* each reported */
		return;
	}
	for (size_t i = 0; i < n;) {
		i += free_entered(k, n - i, p + i);
		if (i < n)
			kmem_cache_free(k, p[i++]);
	}
}
