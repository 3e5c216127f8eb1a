/*
 * mm/deferred.c - deferred free with a grace period (kfree_deferred,
 * kmem_cache_free_deferred), in the manner of Linux's kfree_rcu.  See
 * malloc.c for an overview and spanalloc.h for the contract.
 *
 * Design.  A client that unpublished an object from a lock-free structure
 * hands it over with kfree_deferred(p).  The object is validated and
 * claimed at once, in its metadata: a small object's state byte goes
 * from OBJ_CLIENT to OBJ_DEFERRED (interrupts off, as kfree checks it), a
 * large object's span from SPAN_LARGE to SPAN_FREEING by CAS with
 * HL_DEFERRED set, so that a second kfree or kfree_deferred of it is a
 * double free reported on the spot, and reclaim, sweeps and the
 * magazines leave it alone (it is taken, with no freed bit).  The
 * pointer then goes into the calling CPU's open batch: a block of
 * KMEM_DEFER_BATCH pointers in metadata (a fixalloc of our own), under a
 * per-CPU lock that only kmem_grace_period_done takes from elsewhere.
 * Nothing is ever written into the object: readers may go on reading it
 * until the grace period ends, and no link of ours can be corrupted by
 * them or shown to them (kfree_rcu's rcu_head lives in the object because
 * Linux's clients reserve room for it; spanalloc's clients do not).
 *
 * Grace periods are generations.  mheap_.defer_gen counts the starts; an
 * object deferred while it is G is tagged G + 1, and a batch holds objects
 * tagged at most its own tag (an object may wait in a newer batch, never
 * in an older one).  kmem_grace_period_start returns G + 1 and makes it
 * G + 1, so objects deferred before it carry at most the cookie and those
 * deferred after carry more (the load and the add are sequentially
 * consistent).  kmem_grace_period_done(c) raises mheap_.defer_done to c
 * and frees, from every CPU's batches, each batch tagged <= defer_done:
 * for each of its objects the claim is undone (OBJ_CLIENT, or SPAN_LARGE)
 * and the batch goes through kfree_bulk (mm/bulk.c), so the debug heap's
 * and hardened mode's checks run then, as for any free.  A batch that a
 * done() missed (filled while it ran) waits for the next done().
 *
 * Cost: kfree_deferred is O(1): one uncontended per-CPU lock with
 * interrupts off, and once per batch a heap.lock for a new block
 * (about 8 bytes of metadata per waiting object).  If no block can be had
 * (metadata exhausted) the claim is undone and -KMEM_ENOMEM returned: the
 * object stays the caller's.  CPU offline: the offline CPU's batches stay
 * where they are and any CPU's done() frees them.  Out of memory: nothing
 * here runs; deferred objects keep their memory until their grace period
 * ends, as the contract says.  kmem_init discards all of it (the state
 * hangs off mheap_, which init clears).
 *
 * Lock order: a per-CPU lock (LOCK_DEFER) is a leaf; blocks are taken from
 * and given back to the fixalloc under its heap.lock with no other lock held.
 */
#include "mtypes.h"

struct defer_block {
	struct defer_block *next;       /* [defer cpu lock] closed list link */
	uint64_t tag;                   /* [const] every object's tag is <= tag */
	uint32_t n;                     /* [defer cpu lock] objects held */
	const void *obj[KMEM_DEFER_BATCH];
};
_Static_assert(sizeof(struct defer_block) == 512, "a block is 8 cache lines");

struct defer_cpu {
	alignas(KMEM_CACHE_LINE)
	struct spinlock lock;           /* LOCK_DEFER */
	struct defer_block *open;       /* [lock] the batch being filled */
	struct defer_block *closed;     /* [lock] older batches, newest first */
};

struct kmem_defer {
	struct fixalloc blocks;         /* [heap] */
	_Atomic uint64_t deferred;      /* [atomic] objects deferred, ever */
	_Atomic uint64_t freed;         /* [atomic] of those, freed, ever */
	struct defer_cpu cpu[];         /* max_cpus entries */
};

/* The state, made in metadata on first use; NULL if no metadata is left. */
static struct kmem_defer *defer_state(void)
{
	struct kmem_defer *d = atomic_load_explicit(&mheap_.defer, memory_order_acquire);
	if (d)
		return d;
	/* Made once: caches_lock orders the makers (meta_carve takes the
	 * heap locks below it). */
	unsigned long f = lock_irqsave(&mheap_.caches_lock);
	d = atomic_load_explicit(&mheap_.defer, memory_order_relaxed);
	if (!d) {
		d = meta_carve(sizeof(*d) + mheap_.max_cpus * sizeof(struct defer_cpu), KMEM_CACHE_LINE);
		if (d) {
			fixalloc_init(&d->blocks, sizeof(struct defer_block));
			for (unsigned c = 0; c < mheap_.max_cpus; c++)
				lock_init(&d->cpu[c].lock, LOCK_DEFER);
			atomic_store_explicit(&mheap_.defer, d, memory_order_release);
		}
	}
	unlock_irqrestore(&mheap_.caches_lock, f);
	return d;
}

/* Made at init: made later, in a metadata page of the pool, it would keep
 * that page from ever going back (fixalloc.c). */
void deferred_init(void)
{
	(void)defer_state();
}

size_t deferred_state_bytes(unsigned cpus)
{
	return sizeof(struct kmem_defer) + cpus * sizeof(struct defer_cpu) + KMEM_CACHE_LINE;
}

static struct defer_block *block_alloc(struct kmem_defer *d)
{
	return fixalloc_alloc(&d->blocks);
}

static void block_free(struct kmem_defer *d, struct defer_block *b)
{
	fixalloc_free(&d->blocks, b);
}

/* ---------------------------------------------------------------------------
 * Claiming an object, and giving it back
 */

/* Claims p if it is the start of a live object a client holds: true, and
 * nothing else can free it now.  False changes nothing (the caller reports
 * why through ksize, which checks exactly what kfree checks). */
static bool claim(const void *p)
{
	struct mspan *s = span_of_ptr(p);
	if (!s)
		return false;
	switch (atomic_load_explicit(&s->state, memory_order_acquire)) {
	case SPAN_SMALL: {
		uintptr_t off = (uintptr_t)p - s->base;
		uint32_t idx = span_obj_index(s, off);
		if (idx >= s->nelems || (uintptr_t)idx * s->elemsize != off)
			return false;
		_Atomic uint8_t *st = &s->objstate[idx];
		/* Interrupts off: an interrupt on this CPU cannot free it between
		 * the test and the store (as in kfree). */
		unsigned long f = arch_irq_save();
		bool ok = atomic_load_explicit(st, memory_order_relaxed) == OBJ_CLIENT;
		if (ok)
			atomic_store_explicit(st, OBJ_DEFERRED, memory_order_relaxed);
		arch_irq_restore(f);
		return ok;
	}
	case SPAN_LARGE: {
		uint32_t want = SPAN_LARGE;
		if ((uintptr_t)p != harden_large_start(s) ||
		    !atomic_compare_exchange_strong(&s->state, &want, SPAN_FREEING))
			return false;
		/* The CAS made the span ours: nobody else writes hflags now. */
		__atomic_store_n(&s->hflags, s->hflags | HL_DEFERRED, __ATOMIC_RELEASE);
		return true;
	}
	default:
		return false;
	}
}

/* Undoes claim(p): the object is a client's again, for kfree. */
static void unclaim(const void *p)
{
	/* A claimed object keeps its span alive. */
	struct mspan *s = span_of_ptr(p);
	if (atomic_load_explicit(&s->state, memory_order_acquire) == SPAN_SMALL) {
		uint32_t idx = span_obj_index(s, (uintptr_t)p - s->base);
		atomic_store_explicit(&s->objstate[idx], OBJ_CLIENT, memory_order_relaxed);
		return;
	}
	__atomic_store_n(&s->hflags, s->hflags & ~HL_DEFERRED, __ATOMIC_RELAXED);
	atomic_store_explicit(&s->state, SPAN_LARGE, memory_order_release);
}

/* ---------------------------------------------------------------------------
 * Deferring
 */

/* Puts claimed p into this CPU's open batch; false (p unclaimed again) if
 * a new batch was needed and no metadata is left. */
static bool enqueue(const void *p)
{
	struct kmem_defer *d = defer_state();
	if (!d) {
		unclaim(p);
		return false;
	}
	uint64_t tag = atomic_load(&mheap_.defer_gen) + 1;
	struct defer_block *fresh = NULL;
	unsigned long f = arch_irq_save();
	struct defer_cpu *dc = &d->cpu[arch_cpu_id()];
	for (;;) {
		lock_acquire(&dc->lock);
		struct defer_block *b = dc->open;
		if (b && b->tag >= tag && b->n < KMEM_DEFER_BATCH) {
			b->obj[b->n++] = p;
			lock_release(&dc->lock);
			break;
		}
		if (fresh) {
			if (b) {
				b->next = dc->closed;
				dc->closed = b;
			}
			fresh->tag = tag;
			fresh->n = 1;
			fresh->obj[0] = p;
			fresh->next = NULL;
			dc->open = fresh;
			fresh = NULL;
			lock_release(&dc->lock);
			break;
		}
		lock_release(&dc->lock);
		fresh = block_alloc(d);
		if (!fresh) {
			arch_irq_restore(f);
			unclaim(p);
			return false;
		}
	}
	arch_irq_restore(f);
	if (fresh) /* an interrupt opened a batch meanwhile */
		block_free(d, fresh);
	atomic_fetch_add_explicit(&d->deferred, 1, memory_order_relaxed);
	return true;
}

int kfree_deferred(const void *p)
{
	if (!p)
		return 0;
	if (!claim(p)) {
		/* ksize reports what kfree would; a pointer that passes it now
		 * was freed by a racing call between claim and here. */
		if (ksize(p))
			report_fault(KMEM_FAULT_DOUBLE_FREE, p, span_of_ptr(p),
			             "freed at the same moment as deferred");
		return -KMEM_EINVAL;
	}
	return enqueue(p) ? 0 : -KMEM_ENOMEM;
}

int kmem_cache_free_deferred(struct kmem_cache *k, void *p)
{
	if (!p)
		return 0;
	struct mspan *s = span_of_ptr(p);
	if (k && k->magic == KMEM_CACHE_MAGIC && s &&
	    atomic_load_explicit(&s->state, memory_order_acquire) == SPAN_SMALL && s->cache == k)
		return kfree_deferred(p);
	/* Not this cache's object: kmem_cache_free finds why and reports it,
	 * freeing nothing (it frees only an object of this cache). */
	kmem_cache_free(k, p);
	return -KMEM_EINVAL;
}

/* ---------------------------------------------------------------------------
 * Grace periods
 */

uint64_t kmem_grace_period_start(void)
{
	return atomic_fetch_add(&mheap_.defer_gen, 1) + 1;
}

/* Takes from CPU dc's batches every one tagged <= upto. */
static struct defer_block *take_done(struct defer_cpu *dc, uint64_t upto)
{
	struct defer_block *out = NULL;
	unsigned long f = lock_irqsave(&dc->lock);
	if (dc->open && dc->open->tag <= upto) {
		out = dc->open;
		out->next = NULL;
		dc->open = NULL;
	}
	for (struct defer_block **pp = &dc->closed; *pp;) {
		struct defer_block *b = *pp;
		if (b->tag <= upto) {
			*pp = b->next;
			b->next = out;
			out = b;
		} else {
			pp = &b->next;
		}
	}
	unlock_irqrestore(&dc->lock, f);
	return out;
}

size_t kmem_grace_period_done(uint64_t cookie)
{
	if (cookie == 0 || cookie > atomic_load(&mheap_.defer_gen))
		return 0;
	uint64_t upto = atomic_load(&mheap_.defer_done);
	while (upto < cookie && !atomic_compare_exchange_weak(&mheap_.defer_done, &upto, cookie))
		;
	if (upto < cookie)
		upto = cookie;
	/* Metadata pages that emptied before the grace period began
	 * (fixalloc.c) go back to the pool now. */
	meta_runs_release();
	struct kmem_defer *d = atomic_load_explicit(&mheap_.defer, memory_order_acquire);
	if (!d)
		return 0;
	size_t n = 0;
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++) {
		struct defer_block *b = take_done(&d->cpu[cpu], upto);
		while (b) {
			struct defer_block *next = b->next;
			for (uint32_t i = 0; i < b->n; i++)
				unclaim(b->obj[i]);
			kfree_bulk(b->n, (void **)b->obj);
			n += b->n;
			atomic_fetch_add_explicit(&d->freed, b->n, memory_order_relaxed);
			block_free(d, b);
			b = next;
		}
	}
	return n;
}

void kmem_get_defer_stats(struct kmem_defer_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->started = atomic_load(&mheap_.defer_gen);
	out->completed = atomic_load(&mheap_.defer_done);
	struct kmem_defer *d = atomic_load_explicit(&mheap_.defer, memory_order_acquire);
	if (!d)
		return;
	out->deferred = atomic_load_explicit(&d->deferred, memory_order_relaxed);
	out->freed = atomic_load_explicit(&d->freed, memory_order_relaxed);
	out->pending = out->deferred - out->freed;
	unsigned long f = heaps_lock_all();
	out->batches = fixalloc_inuse(&d->blocks);
	heaps_unlock_all(f);
}

/* ---------------------------------------------------------------------------
 * The checker's part
 */

/* Is entry p a deferred object (claimed as above)?  Counts it. */
static bool entry_ok(const void *p, uint64_t *small, uint64_t *large)
{
	struct mspan *s = span_of_ptr(p);
	if (!s)
		return false;
	uint32_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
	if (state == SPAN_SMALL) {
		uintptr_t off = (uintptr_t)p - s->base;
		uint32_t idx = span_obj_index(s, off);
		if (idx >= s->nelems || (uintptr_t)idx * s->elemsize != off ||
		    atomic_load_explicit(&s->objstate[idx], memory_order_relaxed) != OBJ_DEFERRED)
			return false;
		(*small)++;
		return true;
	}
	if (state != SPAN_FREEING || !(s->hflags & HL_DEFERRED) || (uintptr_t)p != harden_large_start(s))
		return false;
	(*large)++;
	return true;
}

/* Checks one batch and its entries; false if its header is broken. */
static bool check_block(const struct defer_block *b, unsigned long *problems, uint64_t *entries,
                        uint64_t *small, uint64_t *large)
{
	if (b->n > KMEM_DEFER_BATCH || b->tag > atomic_load(&mheap_.defer_gen) + 1) {
		(*problems)++;
		report_fault(KMEM_FAULT_CORRUPT, b, NULL, "deferred batch header is broken");
		return false;
	}
	for (uint32_t i = 0; i < b->n; i++, (*entries)++)
		if (!entry_ok(b->obj[i], small, large)) {
			(*problems)++;
			report_fault(KMEM_FAULT_CORRUPT, b->obj[i], span_of_ptr(b->obj[i]),
			             "deferred batch entry is not a deferred object");
		}
	return true;
}

unsigned long deferred_check(uint64_t *small, uint64_t *large)
{
	*small = *large = 0;
	struct kmem_defer *d = atomic_load_explicit(&mheap_.defer, memory_order_acquire);
	if (!d)
		return 0;
	unsigned long problems = 0;
	uint64_t entries = 0, blocks = 0;
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++) {
		struct defer_cpu *dc = &d->cpu[cpu];
		if (dc->open) {
			blocks++;
			check_block(dc->open, &problems, &entries, small, large);
		}
		/* Bounded by the blocks in use: a cycle cannot hang the check. */
		for (struct defer_block *b = dc->closed; b && blocks <= fixalloc_inuse(&d->blocks);
		     b = b->next) {
			blocks++;
			if (!check_block(b, &problems, &entries, small, large))
				break;
		}
	}
	uint64_t pending = atomic_load(&d->deferred) - atomic_load(&d->freed);
	if (blocks != fixalloc_inuse(&d->blocks) || entries != pending) {
		problems++;
		report_fault(KMEM_FAULT_CORRUPT, NULL, NULL, "deferred batch counts are wrong");
	}
	return problems;
}
