/*
 * mm/nolock.c - kmalloc_nolock and kfree_nolock: allocation from any
 * context, an NMI included.  See malloc.c for an overview.
 *
 * An NMI (or an interrupt the port lets in while the allocator runs,
 * with arch_fast_enter) can arrive while its CPU is anywhere inside the
 * allocator: holding a heap.lock, an mcentral or depot lock, the
 * quarantine lock, or halfway through a push to its own loaded magazine.
 * Every other entry point may spin on a lock, so from there it could spin
 * forever on a lock its own CPU holds.  The calls here therefore never
 * wait: they take only what they can have at once and return NULL (or
 * take the free's slower route) otherwise.  What they may touch:
 *
 *   1. This CPU's loaded magazine of a kmalloc class, only where the port
 *      has arch_fast_enter (KMEM_FAST_NESTING) and the depth it returns
 *      is 0: the CPU is then in none of the paths that touch that
 *      magazine (all of them run inside arch_fast_enter, kmem_cpu_offline
 *      included), and the depth we raise keeps anything that lands on top
 *      of us off it.  Pop or push as the fast paths do; nothing more (an
 *      empty or full magazine is not exchanged: that takes the depot
 *      lock).
 *   2. The class's depot, under a trylock with interrupts off (so that no
 *      ordinary interrupt that allocates can spin on it behind us): one
 *      object from the top full magazine (kept at one or more objects, so
 *      the depot never lists an empty "full" magazine) or from the
 *      depot's shared span (LOC_CACHED, owned by the depot lock holder;
 *      swept in place if frees wait in it).  When that span is used up
 *      with no frees waiting (or there is none), and the mcentral's lock
 *      is free too (a second trylock), it goes on the full list and a
 *      partial or kept empty span takes its place
 *      (mcentral_try_trade_span) -- no drain of queued spans, no sweep of
 *      a listed span, no new span from the mheap: those can take long or
 *      release pages under a heap.lock.  A trylock takes no part in the
 *      lock order (it cannot wait), so it skips lock.c's order check,
 *      whose per-CPU record the interrupted code owns (lock_try).
 *   3. For a free, the object's span: the state byte and one atomic
 *      test-and-set of its freed bit, then mcentral_freed's CAS push on the
 *      lock-free unswept stack -- the path kfree already takes when nested,
 *      lock-free by design (mcentral.c), so it is safe from any context.
 *
 * Without KMEM_FAST_NESTING no depth says whether the interrupted code is
 * inside its loaded magazine, so only 2 and 3 are used: kmalloc_nolock
 * then succeeds only from depots (NULL more often), kfree_nolock always
 * frees straight to the span.  Both are correct either way.
 *
 * Not served (NULL at once, documented in spanalloc.h): sizes above
 * KMEM_SMALL_MAX (a large object needs a heap.lock), hardened mode and the
 * debug heap (their allocations keep records and checks under locks).
 * kfree_nolock does not free large objects or page runs (a heap.lock): it
 * reports them as KMEM_FAULT_WRONG_KIND and changes nothing.  It does
 * free debug and hardened objects, with their free-time checks (debug.c,
 * lock-free), but never into the quarantine.
 */
#include "mtypes.h"

/* The next object of s (the depot's shared span, the depot lock held),
 * sweeping s in place once if it runs out with frees waiting; NULL if it
 * has none. */
static void *shared_take(struct mcentral *c, struct mspan *s)
{
	for (int swept = 0;;) {
		uint32_t idx = span_next_free_index(s);
		if (idx < s->nelems) {
			_Atomic uint8_t *st = &s->objstate[idx];
			void *p = (void *)(s->base + (uintptr_t)idx * s->elemsize);
			if (atomic_load_explicit(st, memory_order_relaxed) == OBJ_FREE) {
				atomic_store_explicit(st, OBJ_CLIENT, memory_order_relaxed);
				return p;
			}
			/* As span_take (mcache.c): it stays where its state says. */
			racing_free_found(c, p, s, "freed twice at the same moment (found when reused)");
			continue;
		}
		if (swept++ || !span_has_freed(s) || !span_sweep(s))
			return NULL;
	}
}

/* Rule 2: an object of c from its depot, or NULL if a lock is busy or
 * neither a full magazine nor the shared span nor a listed span with room
 * has one. */
static void *depot_take_one(struct mcentral *c)
{
	struct depot *d = &c->depot;
	void *p = NULL;
	unsigned long f = arch_irq_save();
	if (!lock_try(&d->lock)) {
		arch_irq_restore(f);
		return NULL;
	}
	struct magazine *m = d->full;
	if (m && m->n > 1) {
		_Atomic uint8_t *st = m->st[m->n - 1];
		/* A stale entry (racing double free) is left for whoever
		 * loads the magazine to report. */
		if (atomic_load_explicit(st, memory_order_relaxed) == m->id) {
			p = m->obj[--m->n];
			atomic_store_explicit(st, OBJ_CLIENT, memory_order_relaxed);
		}
	}
	if (!p && d->shared)
		p = shared_take(c, d->shared);
	/* A span from the mcentral's lists for the shared one, if its lock
	 * is free too (mcentral.c). */
	if (!p && mcentral_try_trade_span(c, &d->shared) && d->shared)
		p = shared_take(c, d->shared);
	lock_try_release(&d->lock);
	arch_irq_restore(f);
	if (p)
		atomic_fetch_add_explicit(&c->nmalloc, 1, memory_order_relaxed);
	return p;
}

void *kmalloc_nolock(size_t size)
{
	if (size > KMEM_SMALL_MAX || harden_.level)
		return NULL;
	struct mcentral *c = class_central(0, kmem_size_to_class(size));
	if (c->debug)
		return NULL;
#if KMEM_FAST_NESTING
	/* Rule 1. */
	unsigned long t = arch_fast_enter();
	int cpu = arch_cpu_id_fast();
	if (cpu >= 0)
		c = central_of_cpu(c, (unsigned)cpu); /* this CPU's node's */
	if (t == 0 && cpu >= 0) {
		struct mcache *m = mcache_of((unsigned)cpu);
		struct mag_slot *ms = &m->mag[c->sizeclass];
		void **e = ms->top;
		if (e != ms->base) {
			_Atomic uint8_t *st = *mag_entry_st(e - 1);
			if (atomic_load_explicit(st, memory_order_relaxed) == ms->id) {
				void *p = e[-1];
				ms->top = e - 1;
				m->cls[c->sizeclass].nmalloc++;
				atomic_store_explicit(st, OBJ_CLIENT, memory_order_relaxed);
				arch_fast_exit(t);
				return p;
			}
		}
	}
	void *p = depot_take_one(c);
	arch_fast_exit(t);
	return p;
#else
	return depot_take_one(central_of_cpu(c, arch_cpu_id()));
#endif
}

/* Rule 3 (or rule 1 where it applies); the object's state was read as
 * OBJ_CLIENT by the caller. */
static void nolock_free_small(struct mspan *s, const void *p, uint32_t idx)
{
	struct mcentral *c = s->central;
	_Atomic uint8_t *st = &s->objstate[idx];
#if KMEM_FAST_NESTING
	unsigned long t = arch_fast_enter();
	int cpu = arch_cpu_id_fast();
	/* Object caches' magazines are also flushed outside arch_fast_enter
	 * (kmem_cache_shrink): kmalloc classes only. */
	if (t == 0 && cpu >= 0 && !c->cache && !c->debug && mcache_of((unsigned)cpu)->node == c->node) {
		struct mcache *m = mcache_of((unsigned)cpu);
		struct mag_slot *ms = &m->mag[c->sizeclass];
		void **e = ms->top;
		if (e != ms->end) {
			*e = (void *)p;
			*mag_entry_st(e) = st;
			ms->top = e + 1;
			m->cls[c->sizeclass].nfree++;
			atomic_store_explicit(st, (uint8_t)ms->id, memory_order_relaxed);
			arch_fast_exit(t);
			return;
		}
	}
#endif
	if (span_free(s, st, idx))
		atomic_fetch_add_explicit(&c->nfree, 1, memory_order_relaxed);
	else
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s,
		             "object is already free (freed twice at the same moment)");
#if KMEM_FAST_NESTING
	arch_fast_exit(t);
#endif
}

void kfree_nolock(const void *p)
{
	if (!p)
		return;
	struct mspan *s = span_of_ptr(p);
	if (!s) {
		/* A page run without a descriptor says so in its pages' kinds
		 * (read without the lock: it only names the fault).  Telling a
		 * free page from metadata takes a heap.lock. */
		uint64_t pfn = virt_to_pfn((uintptr_t)p);
		struct heap_arena *a = arena_of_pfn(pfn);
		uint8_t kind = a ? __atomic_load_n(&a->pagekind[pfn & (ARENA_PAGES - 1)], __ATOMIC_RELAXED)
		                 : PKIND_NONE;
		if (kind != PKIND_NONE && kind != PKIND_GUARD)
			report_fault(KMEM_FAULT_WRONG_KIND, p, NULL, "a page run (kfree_nolock)");
		else
			report_fault(KMEM_FAULT_WILD, p, NULL, "no live span here (kfree_nolock)");
		return;
	}
	switch (atomic_load_explicit(&s->state, memory_order_acquire)) {
	case SPAN_SMALL:
		break;
	case SPAN_LARGE:
	case SPAN_RUN:
		report_fault(KMEM_FAULT_WRONG_KIND, p, s,
		             "large object or page run freed with kfree_nolock");
		return;
	default:
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "span is being freed");
		return;
	}
	long idx = small_index(s, p);
	if (idx < 0)
		return;
	/* Interrupts off from the state check to the free, as kfree: an
	 * interrupt that frees the same object (a client bug) then comes
	 * before or after, never in between. */
	unsigned long f = arch_irq_save();
	_Atomic uint8_t *st = &s->objstate[idx];
	unsigned state = atomic_load_explicit(st, memory_order_relaxed);
	const char *bad = NULL;
	if (state != OBJ_CLIENT)
		bad = state == OBJ_QUARANTINE
		              ? "object is not allocated (freed before, in the quarantine)"
		              : "object is not allocated";
	else if (!s->dbg || debug_on_free(s, (uint32_t)idx, p))
		nolock_free_small(s, p, (uint32_t)idx);
	arch_irq_restore(f);
	if (bad)
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, bad);
}
