/*
 * mm/mcache.c - per-CPU caches: filling magazines from spans, and
 * flushing a CPU.  See malloc.c for an overview and magazine.c for the
 * magazines themselves.
 *
 * For each class a CPU has its magazines and one span it fills them from
 * (cpu_class.span, LOC_CACHED: this CPU sweeps it in place).  The mcache
 * is touched only by its own CPU with interrupts off, so it needs no lock;
 * cpu_class.prev and .span are swapped with atomic exchanges so that
 * another CPU can take them over (magazine.c), and kmem_cpu_offline() may
 * flush another CPU's mcache when that CPU is out of the allocator for
 * good.
 */
#include "mtypes.h"

/* The next object of the CPU's span for class c, taken from the span (its
 * state still OBJ_FREE, checked); sweeps the span in place or trades it
 * for another from the mcentral when it runs out (mcentral may grow from
 * the mheap).  *sp is the CPU's span (owned by the caller meanwhile).
 * With `fresh_ok` false, returns NULL instead of going to the mcentral.
 * Returns NULL iff no object can be had that way. */
static void *span_take(struct mspan **sp, struct mcentral *c, bool fresh_ok,
                       _Atomic uint8_t **stp)
{
	for (;;) {
		struct mspan *s = *sp;
		if (s) {
			uint32_t idx = span_next_free_index(s);
			if (idx < s->nelems) {
				_Atomic uint8_t *st = &s->objstate[idx];
				void *p = (void *)(s->base + (uintptr_t)idx * s->elemsize);
				if (__builtin_expect(atomic_load_explicit(st, memory_order_relaxed) == OBJ_FREE,
				                     1)) {
					*stp = st;
					return p;
				}
				/* Given back by a free that raced another free of
				 * the same object: it stays where its state says. */
				racing_free_found(c, p, s,
				                  "freed twice at the same moment (found when reused)");
				continue;
			}
			/* Exhausted: frees from any CPU may be waiting in its
			 * freed bitmap. */
			if (span_has_freed(s) && span_sweep(s))
				continue;
			mcentral_uncache_span(c, s);
			*sp = NULL;
		}
		if (!fresh_ok)
			return NULL;
		s = mcentral_cache_span(c);
		if (!s)
			return NULL; /* the caller reclaims (malloc.c) and retries */
		*sp = s;
	}
}

bool mcache_fill(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c)
{
	struct mspan *s = atomic_exchange_explicit(&cc->span, NULL, memory_order_acquire);
	void **e = ms->top;
	while (e < ms->end) {
		/* Go to the mcentral for a new span only while the magazine is
		 * empty: a partly filled one is enough to go on with. */
		_Atomic uint8_t *st;
		void *p = span_take(&s, c, e == ms->base, &st);
		if (!p)
			break;
		atomic_store_explicit(st, (uint8_t)ms->id, memory_order_relaxed);
		*e = p;
		*mag_entry_st(e) = st;
		e++;
	}
	ms->top = e;
	atomic_exchange_explicit(&cc->span, s, memory_order_release);
	mcentral_report_racing(c);
	return e != ms->base;
}

void *mcache_alloc_direct(struct cpu_class *cc, struct mcentral *c)
{
	struct mspan *s = atomic_exchange_explicit(&cc->span, NULL, memory_order_acquire);
	_Atomic uint8_t *st;
	void *p = span_take(&s, c, true, &st);
	if (p) {
		atomic_store_explicit(st, OBJ_CLIENT, memory_order_relaxed);
		cc->nmalloc++;
	}
	atomic_exchange_explicit(&cc->span, s, memory_order_release);
	mcentral_report_racing(c);
	return p;
}

/* An object of central c for a context nested in this CPU's fast path
 * (spanalloc/arch.h, arch_fast_enter), which must leave this CPU's caches
 * alone: from the depot's shared span, under the depot lock, interrupts
 * off.  Counted on no CPU.  NULL iff no object can be had that way. */
void *mcache_alloc_shared(struct mcentral *c)
{
	unsigned long f = arch_irq_save();
	lock_acquire(&c->depot.lock);
	struct mspan *s = c->depot.shared;
	_Atomic uint8_t *st;
	void *p = span_take(&s, c, true, &st);
	c->depot.shared = s;
	if (p)
		atomic_store_explicit(st, OBJ_CLIENT, memory_order_relaxed);
	lock_release(&c->depot.lock);
	arch_irq_restore(f);
	if (p)
		atomic_fetch_add_explicit(&c->nmalloc, 1, memory_order_relaxed);
	mcentral_report_racing(c);
	return p;
}

/* Gives everything CPU `cpu` caches back: its magazines' objects to their
 * spans, its spans to their mcentrals. */
void mcache_flush(unsigned cpu)
{
	struct mcache *m = mcache_of(cpu);
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++)
		mag_drain_cpu(&m->mag[cls], &m->cls[cls], class_central(m->node, cls));
	kmem_caches_cpu_flush(cpu);
}

/* Takes over what CPU `cpu` caches and can give up without stopping: its
 * previous magazines and its spans (magazine.c). */
void mcache_take_over(unsigned cpu)
{
	struct mcache *m = mcache_of(cpu);
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++)
		mag_take_over(&m->cls[cls], class_central(m->node, cls));
}
