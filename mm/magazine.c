/*
 * mm/magazine.c - per-CPU magazines of free objects and the per-class
 * depot (Bonwick's magazines, 2001; Linux calls them sheaves).  See
 * malloc.c for an overview and for the object-state protocol.
 *
 * A magazine is an array of up to mcentral.mag_cap free objects of one
 * class, with a pointer to each object's state byte, in metadata.  Each
 * CPU holds two per class (cpu_class.loaded, unpacked in the mag_slot
 * the fast paths use, and cpu_class.prev); the class's depot holds the
 * others, full or empty.  kmalloc pops from the loaded magazine and kfree
 * pushes to it, interrupts off, no lock, no atomic read-modify-write.  The
 * slow paths below exchange whole magazines:
 *
 *   loaded empty (mag_alloc_slow):  prev has objects -> swap;
 *                                   depot has a full one -> take it;
 *                                   else fill loaded from spans (mcache.c)
 *   loaded full (mag_free_slow):    prev empty -> swap;
 *                                   depot has room -> prev goes there,
 *                                   loaded becomes prev, load an empty one;
 *                                   else give prev's objects back to their
 *                                   spans (mag_flush) and reuse it
 *
 * so a CPU goes to the depot at most once per mag_cap operations, and to
 * the spans only when the depot is full or empty.  mag_flush is also how
 * a CPU's frees of objects from spans owned elsewhere reach those spans:
 * in batches, one atomic OR per span bitmap word and one queueing check
 * per span (entries sorted by address), not one contended atomic per
 * object.
 *
 * Ids.  An object in magazine m has state m->id; ids are unique among the
 * live magazines of a class (depot.ids), and a CPU only pops from a
 * magazine it holds, checking the state first.  Two CPUs can therefore
 * never both take one object, even when a client's racing double free put
 * it into two magazines: only the magazine its state names may take it.
 * Bytes limit ids to MAG_ID_MAX per class; when they run out (more than
 * ~125 CPUs using one class) a CPU without magazines frees to and
 * allocates from spans directly.
 *
 * Taking over.  cpu_class.prev and cpu_class.span are written by their CPU
 * only with atomic exchanges (in these slow paths), so another CPU can
 * take them with an exchange (mag_take_over) without stopping the owner;
 * the loaded magazine is touched by the lock-free fast paths and stays
 * with its CPU until that CPU flushes it (mag_drain_cpu: offline, its own
 * reclaim).
 */
#include "mtypes.h"

/* ---------------------------------------------------------------------------
 * The depot
 */

static int id_take_locked(struct depot *d)
{
	for (unsigned w = 0; w < 4; w++) {
		uint64_t freebits = ~d->ids[w];
		if (w == 0)
			freebits &= ~1ull; /* 0 is OBJ_CLIENT */
		if (w == 3)
			freebits &= ~(~0ull << (MAG_ID_MAX + 1 - 192)); /* 0xff is OBJ_FREE */
		if (freebits) {
			unsigned b = ctz64(freebits);
			d->ids[w] |= 1ull << b;
			return (int)(w * 64 + b);
		}
	}
	return -1;
}

/* An empty magazine of class c: from the depot, else a new one.  NULL iff
 * the class's ids or the metadata are used up.  Interrupts off. */
static struct magazine *mag_get_empty(struct mcentral *c)
{
	struct depot *d = &c->depot;
	lock_acquire(&d->lock);
	struct magazine *m = d->empty;
	if (m) {
		d->empty = m->next;
		d->nempty--;
		lock_release(&d->lock);
		m->next = NULL;
		return m;
	}
	int id = id_take_locked(d);
	lock_release(&d->lock);
	if (id < 0)
		return NULL;
	m = fixalloc_alloc_node(&mheap_.magalloc, c->node); /* the CPUs' node */
	lock_acquire(&d->lock);
	if (m)
		d->nmags++;
	else
		d->ids[id / 64] &= ~(1ull << (id % 64));
	lock_release(&d->lock);
	if (!m)
		return NULL;
	m->next = NULL;
	m->n = 0;
	m->id = (uint8_t)id;
	return m;
}

static void depot_put_empty(struct mcentral *c, struct magazine *m)
{
	struct depot *d = &c->depot;
	KASSERT(m->n == 0);
	lock_acquire(&d->lock);
	m->next = d->empty;
	d->empty = m;
	d->nempty++;
	lock_release(&d->lock);
}

/* Puts a full magazine in the depot; false if it holds full_max already. */
static bool depot_put_full(struct mcentral *c, struct magazine *m)
{
	struct depot *d = &c->depot;
	lock_acquire(&d->lock);
	uint32_t n = atomic_load_explicit(&d->nfull, memory_order_relaxed);
	bool ok = n < d->full_max;
	if (ok) {
		m->next = d->full;
		d->full = m;
		atomic_store_explicit(&d->nfull, n + 1, memory_order_relaxed);
	}
	lock_release(&d->lock);
	return ok;
}

/* A full magazine from the depot, or NULL. */
static struct magazine *depot_take_full(struct mcentral *c)
{
	struct depot *d = &c->depot;
	if (!atomic_load_explicit(&d->nfull, memory_order_relaxed))
		return NULL; /* a hint: a magazine put meanwhile waits for the next miss */
	lock_acquire(&d->lock);
	struct magazine *m = d->full;
	if (m) {
		d->full = m->next;
		atomic_store_explicit(&d->nfull, atomic_load_explicit(&d->nfull, memory_order_relaxed) - 1,
		                      memory_order_relaxed);
		m->next = NULL;
	}
	lock_release(&d->lock);
	return m;
}

/* ---------------------------------------------------------------------------
 * Giving objects back to their spans
 */

/* Sorts m's entries by address, so that each span's objects, and each
 * bitmap word's, are together. */
static void mag_sort(struct magazine *m)
{
	for (uint32_t i = 1; i < m->n; i++) {
		void *o = m->obj[i];
		_Atomic uint8_t *st = m->st[i];
		uint32_t j = i;
		for (; j > 0 && (uintptr_t)m->obj[j - 1] > (uintptr_t)o; j--) {
			m->obj[j] = m->obj[j - 1];
			m->st[j] = m->st[j - 1];
		}
		m->obj[j] = o;
		m->st[j] = st;
	}
}

/* A stale entry: p is in a magazine (or its span) whose id its state does
 * not carry, or was given back twice.  Only two frees of p that raced each
 * other (a client bug) do that; both were counted as frees, so one count
 * is taken back. */
void racing_free_found(struct mcentral *c, const void *p, const struct mspan *s,
                       const char *when)
{
	atomic_fetch_sub_explicit(&c->nfree, 1, memory_order_relaxed);
	report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, when);
}

/* Sets the freed bits `mask` of word w of span s.  No sweep can run
 * between two correct frees of one object that reach the span (the object
 * must be swept and taken again first), so a bit that was set already
 * means the object was given back twice: two frees that raced each other
 * both went through magazines.  Each such object is reported. */
static void freed_or(struct mcentral *c, struct mspan *s, unsigned w, uint64_t mask)
{
	if (!mask)
		return;
	uint64_t twice = atomic_fetch_or_explicit(&s->freed_bits[w], mask, memory_order_release) & mask;
	while (twice) {
		unsigned b = ctz64(twice);
		twice &= twice - 1;
		racing_free_found(c, (void *)(s->base + (uintptr_t)(w * 64 + b) * s->elemsize), s,
		                  "freed twice at the same moment (found when given back)");
	}
}

/* Gives every object of m back to its span: state OBJ_FREE (before its
 * freed bit, with release: span_sweep checks it), the freed bits a word at
 * a time, then one mcentral_freed per span.  Entries whose state is not
 * m's id are stale (a racing double free) and are reported, not freed.
 * Leaves m empty.  Interrupts off; no lock held. */
void mag_flush(struct mcentral *c, struct magazine *m)
{
	mag_sort(m);
	struct mspan *s = NULL;
	uint64_t sweep0 = 0, mask = 0;
	unsigned w = 0;
	for (uint32_t i = 0; i < m->n; i++) {
		void *p = m->obj[i];
		_Atomic uint8_t *st = m->st[i];
		if (atomic_load_explicit(st, memory_order_relaxed) != m->id) {
			racing_free_found(c, p, NULL,
			                  "freed twice at the same moment (found when given back)");
			continue;
		}
		if (!s || (uintptr_t)p - s->base >= (s->npages << PAGE_SHIFT)) {
			if (s) {
				freed_or(c, s, w, mask);
				mcentral_freed(s, sweep0);
			}
			/* A taken object keeps its span alive: this lookup and the
			 * sweep state it reads are of the span's current life. */
			s = span_of_ptr(p);
			KASSERT(s != NULL);
			sweep0 = atomic_load_explicit(&s->sweepstate, memory_order_relaxed);
			mask = 0;
		}
		uint32_t idx = (uint32_t)(st - s->objstate);
		if (idx / 64 != w) {
			freed_or(c, s, w, mask);
			w = idx / 64;
			mask = 0;
		}
		atomic_store_explicit(st, OBJ_FREE, memory_order_relaxed);
		mask |= 1ull << (idx % 64);
	}
	if (s) {
		freed_or(c, s, w, mask);
		mcentral_freed(s, sweep0);
	}
	m->n = 0;
}

/* ---------------------------------------------------------------------------
 * Loading and unloading: the mag_slot mirrors cpu_class.loaded.
 */

static void slot_load(struct mag_slot *ms, struct cpu_class *cc, struct magazine *m, uint32_t cap)
{
	cc->loaded = m;
	ms->base = m ? m->obj : NULL;
	ms->top = m ? m->obj + m->n : NULL;
	ms->end = m ? m->obj + cap : NULL;
	ms->id = m ? m->id : 0;
}

static struct magazine *slot_unload(struct mag_slot *ms, struct cpu_class *cc)
{
	struct magazine *m = cc->loaded;
	if (m)
		m->n = mag_slot_n(ms);
	slot_load(ms, cc, NULL, 0);
	return m;
}

/* Flushes a magazine that is no CPU's (if it holds objects) and puts it
 * on the depot's empty list. */
static void mag_retire(struct mcentral *c, struct magazine *m)
{
	if (!m)
		return;
	if (m->n)
		mag_flush(c, m);
	depot_put_empty(c, m);
}

/* ---------------------------------------------------------------------------
 * The slow paths
 */

void *mag_pop_checked(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c)
{
	void **e = --ms->top;
	void *p = *e;
	_Atomic uint8_t *st = *mag_entry_st(e);
	if (atomic_load_explicit(st, memory_order_relaxed) != ms->id) {
		racing_free_found(c, p, NULL, "freed twice at the same moment (found when reused)");
		return NULL;
	}
	atomic_store_explicit(st, OBJ_CLIENT, memory_order_relaxed);
	cc->nmalloc++;
	return p;
}

void *mag_alloc_slow(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c)
{
	for (;;) {
		while (ms->top != ms->base) {
			void *p = mag_pop_checked(ms, cc, c);
			if (p)
				return p;
		}
		if (!c->mag_cap)
			return mcache_alloc_direct(cc, c);
		struct magazine *pv = atomic_exchange_explicit(&cc->prev, NULL, memory_order_acquire);
		if (pv && pv->n) {
			struct magazine *ld = slot_unload(ms, cc);
			slot_load(ms, cc, pv, c->mag_cap);
			atomic_exchange_explicit(&cc->prev, ld, memory_order_release);
			continue;
		}
		struct magazine *full = depot_take_full(c);
		if (full) {
			struct magazine *ld = slot_unload(ms, cc);
			slot_load(ms, cc, full, c->mag_cap);
			/* Keep one empty magazine as prev, for the frees to come. */
			if (!pv) {
				pv = ld;
			} else if (ld) {
				depot_put_empty(c, ld);
			}
			atomic_exchange_explicit(&cc->prev, pv, memory_order_release);
			continue;
		}
		atomic_exchange_explicit(&cc->prev, pv, memory_order_release);
		if (!cc->loaded) {
			struct magazine *m = mag_get_empty(c);
			if (!m)
				return mcache_alloc_direct(cc, c);
			slot_load(ms, cc, m, c->mag_cap);
		}
		if (!mcache_fill(ms, cc, c))
			return NULL;
	}
}

bool mag_free_slow(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c,
                   const void *p, _Atomic uint8_t *st)
{
	if (!c->mag_cap)
		return false;
	if (!cc->loaded) {
		struct magazine *m = mag_get_empty(c);
		if (!m)
			return false;
		slot_load(ms, cc, m, c->mag_cap);
	}
	if (ms->top == ms->end) {
		struct magazine *pv = atomic_exchange_explicit(&cc->prev, NULL, memory_order_acquire);
		struct magazine *next; /* the empty magazine to load */
		if (pv && pv->n == 0) {
			next = pv;
		} else {
			/* pv is full (or missing): to the depot if it has room and
			 * an empty magazine can replace it; else back to spans. */
			next = mag_get_empty(c);
			if (pv && next && !depot_put_full(c, pv)) {
				depot_put_empty(c, next);
				next = NULL;
			} else if (pv && next) {
				pv = NULL; /* in the depot now */
			}
			if (!next && pv) {
				mag_flush(c, pv);
				next = pv;
			}
			if (!next) {
				/* No prev and no magazine to be had: the loaded
				 * one goes back to its spans. */
				cc->loaded->n = mag_slot_n(ms);
				mag_flush(c, cc->loaded);
				ms->top = ms->base;
			}
		}
		if (next) {
			struct magazine *ld = slot_unload(ms, cc);
			slot_load(ms, cc, next, c->mag_cap);
			atomic_exchange_explicit(&cc->prev, ld, memory_order_release);
		}
	}
	void **e = ms->top;
	*e = (void *)p;
	*mag_entry_st(e) = st;
	ms->top = e + 1;
	atomic_store_explicit(st, (uint8_t)ms->id, memory_order_relaxed);
	cc->nfree++;
	return true;
}

void mag_drain_cpu(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c)
{
	mag_retire(c, slot_unload(ms, cc));
	mag_retire(c, atomic_exchange_explicit(&cc->prev, NULL, memory_order_acquire));
	struct mspan *s = atomic_exchange_explicit(&cc->span, NULL, memory_order_acquire);
	if (s)
		mcentral_uncache_span(c, s);
	mcentral_report_racing(c);
}

void mag_take_over(struct cpu_class *cc, struct mcentral *c)
{
	mag_retire(c, atomic_exchange_explicit(&cc->prev, NULL, memory_order_acquire));
	struct mspan *s = atomic_exchange_explicit(&cc->span, NULL, memory_order_acquire);
	if (s)
		mcentral_uncache_span(c, s);
}

void depot_drain(struct mcentral *c)
{
	struct depot *d = &c->depot;
	lock_acquire(&d->lock);
	struct magazine *m = d->full;
	d->full = NULL;
	atomic_store_explicit(&d->nfull, 0, memory_order_relaxed);
	struct mspan *shared = d->shared;
	d->shared = NULL;
	lock_release(&d->lock);
	mcentral_uncache_span(c, shared);
	while (m) {
		struct magazine *next = m->next;
		mag_flush(c, m);
		depot_put_empty(c, m);
		m = next;
	}
	/* The empty magazines no CPU holds go back to their fixalloc, so
	 * that metadata pages can empty (fixalloc.c); ids are freed with
	 * them. */
	lock_acquire(&d->lock);
	m = d->empty;
	d->empty = NULL;
	for (struct magazine *e = m; e; e = e->next) {
		d->ids[e->id / 64] &= ~(1ull << (e->id % 64));
		d->nmags--;
	}
	d->nempty = 0;
	lock_release(&d->lock);
	while (m) {
		struct magazine *next = m->next;
		fixalloc_free(&mheap_.magalloc, m);
		m = next;
	}
}
