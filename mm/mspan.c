/*
 * mm/mspan.c - span bitmaps: finding the next free object and sweeping.
 * See malloc.c for an overview and mtypes.h for struct mspan's invariants.
 *
 * Who writes what:
 *   alloc_bits, alloc_cache, freeindex, alloc_count: the span's owner only
 *     (the CPU caching it, IRQs off; or the mcentral lock holder).  Other
 *     CPUs read alloc_bits and freeindex (relaxed / acquire) for checks.
 *   freed_bits: any CPU sets bits with an atomic OR (a free to the span,
 *     or a magazine given back, magazine.c); the owner takes a whole word
 *     with an atomic exchange when it sweeps, so a free that lands between
 *     "read" and "clear" can never be lost.
 *   objstate: one byte per object, written with plain (relaxed) stores by
 *     whoever moves the object between client, magazine and span; every
 *     move out of a state first checks it (malloc.c has the protocol).
 */
#include "mtypes.h"

static inline unsigned span_words(const struct mspan *s)
{
	return (s->nelems + 63) / 64;
}

static inline uint64_t bits_load(_Atomic uint64_t *w)
{
	return atomic_load_explicit(w, memory_order_relaxed);
}

static inline void bits_store(_Atomic uint64_t *w, uint64_t v)
{
	atomic_store_explicit(w, v, memory_order_relaxed);
}

/* Sets up a fresh small span of central c in its metadata block `meta`
 * (span_meta_bytes(c->nelems) bytes): all objects free, bits at and above
 * nelems set forever. */
void span_init_small(struct mspan *s, struct mcentral *c, void *meta)
{
	unsigned nw = (c->nelems + 63) / 64;
	s->elemsize = c->elemsize;
	s->nelems = c->nelems;
	s->divmul = c->divmul;
	s->central = c;
	s->cache = c->cache;
	s->sizeclass = c->sizeclass;
	s->alloc_bits = meta;
	s->freed_bits = s->alloc_bits + nw;
	s->objstate = (_Atomic uint8_t *)(s->freed_bits + nw);
	for (unsigned w = 0; w < nw; w++) {
		uint64_t lo = (uint64_t)w * 64;
		uint64_t v = 0;
		if (lo >= s->nelems)
			v = ~0ull;
		else if (s->nelems - lo < 64)
			v = ~0ull << (s->nelems - lo);
		bits_store(&s->alloc_bits[w], v);
		atomic_store_explicit(&s->freed_bits[w], 0, memory_order_relaxed);
	}
	/* The tail slot too: a pointer into the tail finds OBJ_FREE. */
	memset((void *)s->objstate, OBJ_FREE, (size_t)s->nelems + 1);
	s->alloc_count = 0;
	atomic_store_explicit(&s->freeindex, 0, memory_order_relaxed);
	s->alloc_cache = ~bits_load(&s->alloc_bits[0]);
	/* Debug spans get their records after this, and a cache's objects go
	 * to the cache's magazines: keep both off kfree's fast path
	 * (mtypes.h, fast_nelems). */
	atomic_store_explicit(&s->fast_nelems, c->debug || c->cache ? 0 : s->nelems,
	                      memory_order_relaxed);
}

/* Slow path of the owner's allocation: the index of the next free object
 * at or after freeindex, consumed; nelems if the span has none left
 * (before a sweep).  Handles the word boundary the fast path leaves. */
uint32_t span_next_free_index(struct mspan *s)
{
	uint32_t fi = atomic_load_explicit(&s->freeindex, memory_order_relaxed);
	uint32_t n = s->nelems;
	if (fi >= n)
		return n;
	uint64_t cache = s->alloc_cache;
	/* At a word boundary the fast path may have left the previous word's
	 * (empty) cache: load the word freeindex is in.  Reloading a cache
	 * that was already right is harmless. */
	if (cache == 0 && fi % 64 == 0)
		cache = ~bits_load(&s->alloc_bits[fi / 64]);
	while (cache == 0) {
		fi = (fi | 63) + 1;
		if (fi >= n) {
			s->alloc_cache = 0;
			atomic_store_explicit(&s->freeindex, n, memory_order_release);
			return n;
		}
		cache = ~bits_load(&s->alloc_bits[fi / 64]);
	}
	unsigned t = ctz64(cache);
	uint32_t idx = fi + t;
	KASSERT(idx < n); /* bits >= nelems are always set */
	s->alloc_cache = (cache >> t) >> 1;
	atomic_store_explicit(&s->freeindex, idx + 1, memory_order_release);
	return idx;
}

bool span_has_freed(const struct mspan *s)
{
	for (unsigned w = 0; w < span_words(s); w++)
		if (atomic_load_explicit(&s->freed_bits[w], memory_order_relaxed))
			return true;
	return false;
}

/* The objects of word w whose freed bit is set in f but whose state is not
 * OBJ_FREE.  Every free to the span writes OBJ_FREE before its bit (with
 * release), so a correct free is never among them; a bit whose object was
 * meanwhile claimed by another route (only two frees of one object racing
 * each other, a client bug) is, and is not folded: the object stays
 * taken, in the place its state names.  The sweep may hold a lock, so it
 * only counts them for mcentral_report_racing. */
static uint64_t unfreed_in(const struct mspan *s, unsigned w, uint64_t f)
{
	uint64_t keep = 0;
	while (f) {
		unsigned b = ctz64(f);
		f &= f - 1;
		if (atomic_load_explicit(&s->objstate[w * 64 + b], memory_order_relaxed) != OBJ_FREE)
			keep |= 1ull << b;
	}
	return keep;
}

/* Folds the freed bitmap into alloc_bits (the owner only).  Objects below
 * freeindex were handed out since the last sweep without touching
 * alloc_bits: they are made explicit first.  Afterwards freeindex == 0 and
 *     alloc_count == live objects.
 * An exhausted span (freeindex == nelems, the usual case: a CPU's span
 * runs out, or a full span queued by a free) had every object allocated,
 * so its words are all ones before the fold and
 *     alloc_count == nelems - freed
 * without counting alloc bits.  Returns the number of objects freed. */
unsigned span_sweep(struct mspan *s)
{
	uint32_t fi = atomic_load_explicit(&s->freeindex, memory_order_relaxed);
	bool exhausted = fi == s->nelems;
	unsigned nw = span_words(s), freed = 0, count = 0;
	for (unsigned w = 0; w < nw; w++) {
		uint64_t lo = (uint64_t)w * 64;
		uint64_t a = ~0ull;
		if (!exhausted && fi < lo + 64) {
			a = bits_load(&s->alloc_bits[w]);
			if (fi > lo)
				a |= (1ull << (fi - lo)) - 1;
		}
		if (atomic_load_explicit(&s->freed_bits[w], memory_order_relaxed)) {
			uint64_t f = atomic_exchange_explicit(&s->freed_bits[w], 0,
			                                      memory_order_acq_rel);
			/* Only taken objects are freed, and only those whose state
			 * says so; other bits are what two racing frees of one
			 * object left (a client bug), and are dropped -- and so is
			 * the count of one of the two frees. */
			uint64_t keep = (f & ~a) | unfreed_in(s, w, f & a);
			if (keep) {
				atomic_fetch_sub_explicit(&s->central->nfree, popcount64(keep),
				                          memory_order_relaxed);
				atomic_store_explicit(&s->central->racing_addr,
				                      s->base + (uintptr_t)(w * 64 + ctz64(keep)) * s->elemsize,
				                      memory_order_relaxed);
				atomic_fetch_add_explicit(&s->central->racing, popcount64(keep),
				                          memory_order_release);
			}
			f &= ~keep;
			a &= ~f;
			freed += (unsigned)popcount64(f);
		}
		bits_store(&s->alloc_bits[w], a);
		if (!exhausted)
			count += (unsigned)popcount64(a);
	}
	s->alloc_count = (uint16_t)(exhausted ? s->nelems - freed : count - (nw * 64 - s->nelems));
	/* Release: a kfree that sees freeindex == 0 sees the bits above. */
	atomic_store_explicit(&s->freeindex, 0, memory_order_release);
	s->alloc_cache = ~bits_load(&s->alloc_bits[0]);
	return freed;
}

/* Free objects the owner can still hand out before the next sweep. */
uint32_t span_free_slots(const struct mspan *s)
{
	uint32_t fi = atomic_load_explicit(&((struct mspan *)s)->freeindex, memory_order_relaxed);
	uint32_t n = 0;
	for (uint32_t i = fi; i < s->nelems; i++)
		if (!((bits_load(&s->alloc_bits[i / 64]) >> (i % 64)) & 1))
			n++;
	return n;
}

/* Objects a client holds at this moment (exact at quiescence). */
uint32_t span_live_objects(const struct mspan *s)
{
	uint32_t live = 0;
	for (uint32_t i = 0; i < s->nelems; i++)
		if (atomic_load_explicit(&s->objstate[i], memory_order_relaxed) == OBJ_CLIENT)
			live++;
	return live;
}

/* No object of the span is held by a client or a magazine: every state
 * is OBJ_FREE.  What a span must satisfy before its pages go back (its
 * descriptor and state bytes are reused then, and a magazine entry that
 * still named one of its objects would validate against a stranger's
 * state byte). */
bool span_all_free(const struct mspan *s)
{
	for (uint32_t i = 0; i < s->nelems; i++)
		if (atomic_load_explicit(&s->objstate[i], memory_order_relaxed) != OBJ_FREE)
			return false;
	return true;
}
