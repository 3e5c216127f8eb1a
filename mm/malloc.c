/*
 * mm/malloc.c - spanalloc's entry points, and the overview the other files
 * point to.
 *
 * Overview
 * ========
 *
 * spanalloc is Go's runtime allocator (itself a TCMalloc descendant) moved
 * to bare metal: physical pages from the boot memory map instead of mmap,
 * per-CPU caches protected by disabling interrupts instead of per-P caches,
 * and explicit free instead of a garbage collector.  The structures:
 *
 *   size classes  75 object sizes, 8 B .. 32 KiB (sizeclasses.c, generated)
 *   mspan         a run of pages: objects of one class, one large object,
 *                 or a page run (mspan.c)
 *   mcache        per CPU: for each class the span it allocates from and
 *                 a bounded stash of exhausted spans (mcache.c)
 *   mcentral      per class: spans no CPU holds, partial and full, and a
 *                 lock-free stack of spans that received frees (mcentral.c)
 *   mheap         the page allocator (bitmaps + radix summaries over the
 *                 physical address space, pagealloc.c), span life cycle
 *                 (mheap.c), arena index (heaparena.c)
 *   heap_arena    metadata for 64 MiB of physical memory: page -> span
 *                 map, page bitmap, summaries (heaparena.c)
 *   fixalloc      span descriptors and bitmaps (fixalloc.c)
 *   bootmem       memory map intake, metadata region, hot-add (bootmem.c)
 *   kmem_cache    object caches with their own mcentral (kmem_cache.c)
 *
 * All of it lives in the metadata region (or in pages taken from the top of
 * the pool for span descriptors): a client's memory holds payload only, so
 * no client overflow can reach a free list or a header -- there are none.
 *
 * Allocating a small object (kmalloc, kmem_cache_alloc):
 *   1. Round the size up to a class (two table lookups).
 *   2. Disable interrupts; take this CPU's mcache; its span for the class.
 *   3. Fast path: the span's alloc_cache (inverted alloc bits from
 *      freeindex on) gives the next free object with one count-trailing-
 *      zeros.  No lock, no atomic read-modify-write, and in kmalloc no
 *      call: the arch's optional inline hooks arch_cpu_id_fast() and
 *      arch_irq_restore_fast() (spanalloc/arch.h) let every rare case
 *      leave by a tail call, so the fast path needs no stack frame.
 *   4. Else, interrupts still off, mcache_refill_alloc: scan on in the
 *      span's bitmap; if the span is exhausted, sweep it in place (frees
 *      from any CPU are waiting in its freed bitmap); else put it in the
 *      CPU's stash of exhausted spans of the class and cache a stashed
 *      span with frees, swept in place -- no lock (mcache.c).  Only if
 *      none has frees does the CPU go to the mcentral for another span
 *      (the stash's oldest span goes to the mcentral's full list if the
 *      stash is full; object caches have no stash and hand the span
 *      straight over).
 *   5. The mcentral drains its unswept stack, then gives a partial span,
 *      else a kept empty span, else allocates a new span from the mheap.
 *   6. The mheap finds a run of pages (first fit, address order, O(log n)
 *      in the radix summaries, which are kept only up to the hull of
 *      managed memory), publishes the span in the arena map.  An arena
 *      the boot map covered whole is the shared all-free image until this
 *      first write copies it, so init costs nothing per arena.
 *   7. Out of pages: sweep every mcentral, release empty spans (the kept
 *      ones too), retry once; then NULL.
 *
 * Allocating a large object (> 32 KiB) or a page run: mheap directly,
 * under mheap.lock, as its own span.
 *
 * Freeing (kfree, kmem_cache_free):
 *   1. Arena index -> arena -> spans[page]: the owning span, O(1).
 *   2. Object index by multiply-shift; check the pointer is an object
 *      start and the object is allocated (freeindex / alloc bits).  One
 *      field gates the fast path: idx < span.fast_nelems, which is
 *      nonzero only for a small span without debug records (mtypes.h).
 *   3. Atomically OR the object's bit into the span's freed bitmap; a bit
 *      already set is a double free.  No lock: any CPU, any context.
 *   4. If no CPU holds the span (it is on a partial or full list: one
 *      bit, LOC_LISTED, of its sweep state), the first free moves it to QUEUED with a CAS and pushes it on the
 *      mcentral's unswept stack, so the next refill sweeps it.  A span
 *      that sweeps empty is kept on the mcentral's empty list (at most
 *      empty_max per class, about 128 KiB) for the next refill, so a
 *      fill-free-refill cycle does not go through the mheap each time;
 *      past the bound, and on reclaim, empty spans go back to the mheap.
 *      (mcentral.c has the races and the bound.)
 *   Large objects and page runs: a CAS on the span state claims the free,
 *   then the pages go back under mheap.lock.
 *
 * Bad frees (double, interior, wild, free page, wrong kind or cache) are
 * found by the same bits and maps before anything is written, reported
 * through the fault hook, and change nothing.
 *
 * Sweeping (span_sweep) folds freed bits into alloc bits with one atomic
 * exchange per word.  It runs where Go runs it: in place when a CPU's
 * cached span runs out; when the mcentral takes back or hands out a span;
 * when it drains spans queued by frees; and on reclaim.
 *
 * Locks (mtypes.h): caches_lock < mcentral.lock < mheap.lock, all taken
 * with interrupts off; the fast path takes none.
 */
#include "mtypes.h"

extern struct mspan empty_span;

/* The fast path: next object from the span's alloc cache, or NULL. */
static inline void *span_alloc_fast(struct mspan *s)
{
	uint64_t cache = s->alloc_cache;
	if (__builtin_expect(cache == 0, 0))
		return NULL;
	unsigned t = ctz64(cache);
	uint32_t idx = atomic_load_explicit(&s->freeindex, memory_order_relaxed) + t;
	s->alloc_cache = (cache >> t) >> 1;
	atomic_store_explicit(&s->freeindex, idx + 1, memory_order_release);
	return (void *)(s->base + (uintptr_t)idx * s->elemsize);
}

#define RET_ADDR ((uintptr_t)__builtin_return_address(0))
/* Debug heap: room for a red zone after every kmalloc object. */
#define REDZONE_SLACK (KMEM_DEBUG_HEAP ? KMEM_REDZONE : 0)
#define OOM_RETRIES 8

/* The OOM hook's request for an allocation of `bytes` aligned to `align`
 * below max_phys (spanalloc.h): the run of pages it needs.  A small object
 * needs one span of its class (at most KMEM_MAX_SPAN_PAGES pages, aligned
 * to at most the alignment asked for, or a page). */
struct kmem_oom_request oom_request(enum kmem_oom_kind kind, size_t bytes, size_t align,
                                    uint64_t max_phys)
{
	struct kmem_oom_request r = {.kind = kind, .bytes = bytes, .align = align,
	                             .max_phys = max_phys};
	size_t need = (bytes ? bytes : 1) + (kind == KMEM_OOM_PAGES ? 0 : REDZONE_SLACK);
	r.run_pages = kind != KMEM_OOM_PAGES && need <= KMEM_SMALL_MAX && align <= KMEM_SMALL_MAX
	                  ? KMEM_MAX_SPAN_PAGES
	                  : align_up(need, PAGE_SIZE) >> PAGE_SHIFT;
	r.run_align = align > PAGE_SIZE ? align : PAGE_SIZE;
	return r;
}

/* Could any memory hold the request's run: a multiple of run_align at or
 * above page 1, ending at or below the ceiling (or the physical space)? */
static bool oom_can_help(const struct kmem_oom_request *r)
{
	uint64_t limit = r->max_phys ? r->max_phys >> PAGE_SHIFT : 1ull << SUM_TOP;
	uint64_t first = r->run_align >> PAGE_SHIFT; /* lowest aligned pfn >= 1 */
	return r->run_align >> PAGE_SHIFT <= 1ull << SUM_TOP && r->run_pages <= limit &&
	       first <= limit - r->run_pages;
}

static uint64_t pages_managed_now(void)
{
	unsigned long f = lock_irqsave(&mheap_.lock);
	uint64_t n = mheap_.pages_managed;
	unlock_irqrestore(&mheap_.lock, f);
	return n;
}

/* After a failed attempt: may the OOM hook add memory for a retry?  Only
 * if memory could help, and again only after the hook grew the heap.
 * Runs with no lock held and interrupts as the caller had them. */
bool oom_retry(const struct kmem_oom_request *req, unsigned *tries)
{
	kmem_oom_hook_t h = atomic_load_explicit(&mheap_.oom_hook, memory_order_acquire);
	if (!h || *tries >= OOM_RETRIES || !oom_can_help(req))
		return false;
	struct kmem_oom_request r = *req;
	r.attempt = ++*tries;
	uint64_t before = pages_managed_now();
	return h(&r) && pages_managed_now() > before;
}

kmem_oom_hook_t kmem_set_oom_hook(kmem_oom_hook_t hook)
{
	return atomic_exchange(&mheap_.oom_hook, hook);
}

/* The cached span of class cls is exhausted: refill this CPU's mcache
 * (step 4 of the overview) and count the object.  Interrupts off. */
static inline void *class_refill(struct mcache *c, unsigned cls)
{
	void *p = mcache_refill_alloc(&c->alloc[cls], &mheap_.central[cls], &c->stash[cls]);
	if (p)
		c->nmalloc[cls]++;
	return p;
}

/* An object of class cls from this CPU's mcache; `size` and `caller` are
 * for the debug heap. */
static void *small_alloc(unsigned cls, size_t size, uintptr_t caller)
{
	unsigned long f = arch_irq_save();
	struct mcache *c = mcache_of(arch_cpu_id());
	void *p = span_alloc_fast(c->alloc[cls]);
	if (__builtin_expect(p != NULL, 1))
		c->nmalloc[cls]++;
	else
		p = class_refill(c, cls);
	arch_irq_restore(f);
#if KMEM_DEBUG_HEAP
	if (p)
		debug_on_alloc(p, size, caller);
#else
	(void)size;
	(void)caller;
#endif
	return p;
}

/* Used by kmem_cache.c: the same path on a cache's per-CPU slot. */
void *cache_alloc_on_cpu(struct kmem_cache *k)
{
	unsigned long f = arch_irq_save();
	unsigned cpu = arch_cpu_id();
	struct mspan **slot = &k->cpu_span[cpu];
	void *p = span_alloc_fast(*slot);
	if (__builtin_expect(!p, 0))
		p = mcache_refill_alloc(slot, &k->central, NULL);
	if (p)
		k->cpu_nmalloc[cpu]++;
	arch_irq_restore(f);
	return p;
}

static void *large_alloc(size_t size, uint64_t align_pages, uint64_t max_pfn,
                         enum span_state state, uintptr_t caller)
{
	uint64_t npages = ((uint64_t)size + PAGE_SIZE - 1) >> PAGE_SHIFT;
	struct mspan *s = mheap_alloc_span(npages, align_pages, max_pfn, state, NULL);
	if (!s) {
		unsigned long f = arch_irq_save();
		mheap_reclaim();
		arch_irq_restore(f);
		s = mheap_alloc_span(npages, align_pages, max_pfn, state, NULL);
		if (!s)
			return NULL;
	}
	s->caller = caller;
	return (void *)s->base;
}

static void *kmalloc_once(size_t size, uintptr_t caller)
{
	if (size + REDZONE_SLACK <= KMEM_SMALL_MAX)
		return small_alloc(kmem_size_to_class(size + REDZONE_SLACK), size, caller);
	return large_alloc(size, 1, 0, SPAN_LARGE, caller);
}

static __attribute__((noinline)) void *kmalloc_caller(size_t size, uintptr_t caller)
{
	if (size > KMEM_MAX_ALLOC)
		return NULL;
	return WITH_OOM_RETRY(oom_request(KMEM_OOM_OBJECT, size, 8, 0), kmalloc_once(size, caller));
}

#if !KMEM_DEBUG_HEAP
/* kmalloc's slow paths, each entered by a tail call from the fast path
 * so that the fast path needs no stack frame. */

/* Restores interrupts the long way (deferred work), then returns p. */
static __attribute__((noinline)) void *irq_restore_ret(unsigned long f, void *p)
{
	arch_irq_restore(f);
	return p;
}

/* Both below handle small sizes only, so no caller is recorded (callers
 * are kept for large objects and the debug heap). */

/* The CPU index needs arch_cpu_id(): start over on the general path. */
static __attribute__((noinline)) void *kmalloc_no_cpu(size_t size, unsigned long f)
{
	arch_irq_restore(f);
	return kmalloc_caller(size, 0);
}

/* The cached span of class cls is exhausted: refill with interrupts still
 * off (step 4 of the overview); if that finds no memory, the general path
 * retries with the OOM hook. */
static __attribute__((noinline)) void *kmalloc_refill(size_t size, size_t cls, unsigned long f)
{
	void *p = class_refill(mcache_of(arch_cpu_id()), (unsigned)cls); /* interrupts still off */
	arch_irq_restore(f);
	return p ? p : kmalloc_caller(size, 0);
}
#endif

void *kmalloc(size_t size)
{
#if !KMEM_DEBUG_HEAP
	/* Fast path (steps 1-3 of the overview), inline and call-free; every
	 * other case leaves by a tail call. */
	size_t cls;
	if (__builtin_expect(size <= KMEM_SMALL_SIZE_MAX, 1))
		cls = kmem_size_to_class8[(size + KMEM_SMALL_SIZE_DIV - 1) / KMEM_SMALL_SIZE_DIV];
	else if (size <= KMEM_SMALL_MAX)
		cls = kmem_size_to_class(size);
	else
		return kmalloc_caller(size, RET_ADDR);
	unsigned long f = arch_irq_save();
	int cpu = arch_cpu_id_fast();
	if (__builtin_expect(cpu < 0, 0))
		return kmalloc_no_cpu(size, f);
	struct mcache *c = mcache_of((unsigned)cpu);
	struct mspan *s = c->alloc[cls];
	uint64_t cache = s->alloc_cache;
	if (__builtin_expect(cache == 0, 0))
		return kmalloc_refill(size, cls, f);
	unsigned t = ctz64(cache);
	uint32_t idx = atomic_load_explicit(&s->freeindex, memory_order_relaxed) + t;
	s->alloc_cache = (cache >> t) >> 1;
	atomic_store_explicit(&s->freeindex, idx + 1, memory_order_release);
	c->nmalloc[cls]++;
	void *p = (void *)(s->base + (uintptr_t)idx * s->elemsize);
	if (__builtin_expect(arch_irq_restore_fast(f), 1))
		return p;
	return irq_restore_ret(f, p);
#else
	return kmalloc_caller(size, RET_ADDR);
#endif
}

void *kzalloc(size_t size)
{
	void *p = kmalloc_caller(size, RET_ADDR);
	if (p)
		memset(p, 0, size);
	return p;
}

void *kcalloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		return NULL;
	void *p = kmalloc_caller(total, RET_ADDR);
	if (p)
		memset(p, 0, total);
	return p;
}

static void *aligned_once(size_t size, size_t align, uintptr_t caller)
{
	if (align <= 8)
		return kmalloc_once(size, caller);
	size_t need = (size ? size : 1) + REDZONE_SLACK;
	if (align <= PAGE_SIZE) {
		/* Objects of a class whose size is a multiple of align start
		 * at multiples of align from a page-aligned base. */
		if (align_up(need, align) <= KMEM_SMALL_MAX) {
			unsigned cls = kmem_size_to_class(align_up(need, align));
			while (kmem_class[cls].size % align)
				cls++;
			return small_alloc(cls, size, caller);
		}
		return large_alloc(need, 1, 0, SPAN_LARGE, caller);
	}
	/* A power-of-two class is naturally aligned (its spans are). */
	if (need <= align && align <= KMEM_SMALL_MAX)
		return small_alloc(kmem_size_to_class(align), size, caller);
	return large_alloc(need, align >> PAGE_SHIFT, 0, SPAN_LARGE, caller);
}

void *kmalloc_aligned(size_t size, size_t align)
{
	if (!is_pow2(align) || size > KMEM_MAX_ALLOC)
		return NULL;
	uintptr_t caller = RET_ADDR;
	return WITH_OOM_RETRY(oom_request(KMEM_OOM_OBJECT, size, align, 0),
	                      aligned_once(size, align, caller));
}

unsigned kmem_size_class(size_t size)
{
	return size <= KMEM_SMALL_MAX ? kmem_size_to_class(size) : 0;
}

/* ---------------------------------------------------------------------------
 * Freeing
 */

/* Why p has no span: a free page, allocator metadata, or wild.  Decided
 * under mheap.lock, so a span being released concurrently (unmapped, pages
 * not yet free) is not mistaken for metadata; reported after unlocking. */
static void report_no_span(const void *p)
{
	uint64_t pfn = virt_to_pfn((uintptr_t)p);
	uint64_t phys = (uint64_t)((uintptr_t)p - mheap_.offset);
	enum kmem_fault_kind kind = KMEM_FAULT_WILD;
	const char *why = "not in memory the heap manages";
	if (phys >= mheap_.meta_base && phys - mheap_.meta_base < mheap_.meta_size) {
		kind = KMEM_FAULT_METADATA;
		why = "inside the metadata region";
	} else if (arena_of_pfn(pfn)) {
		unsigned long f = lock_irqsave(&mheap_.lock);
		struct heap_arena *a = arena_of_pfn(pfn);
		uint64_t i = pfn & (ARENA_PAGES - 1);
		if ((a->pagebits[i >> 6] >> (i & 63)) & 1) {
			kind = KMEM_FAULT_FREE_PAGE;
			why = "page is free";
		} else if (span_of_pfn(pfn)) {
			kind = KMEM_FAULT_DOUBLE_FREE;
			why = "page was reused meanwhile";
		} else if ((a->managedbits[i >> 6] >> (i & 63)) & 1) {
			kind = KMEM_FAULT_METADATA;
			why = "page holds allocator metadata";
		}
		unlock_irqrestore(&mheap_.lock, f);
	}
	report_fault(kind, p, NULL, why);
}

/* Validates p as a live small object of s; returns its index or -1 after
 * reporting. */
static long small_index(const struct mspan *s, const void *p)
{
	uintptr_t off = (uintptr_t)p - s->base;
	uint32_t idx = span_obj_index(s, off);
	if (idx >= s->nelems) {
		report_fault(KMEM_FAULT_INTERIOR, p, s, "in the tail of a span");
		return -1;
	}
	if ((uintptr_t)idx * s->elemsize != off) {
		report_fault(KMEM_FAULT_INTERIOR, p, s, "not the start of an object");
		return -1;
	}
	if (!span_obj_allocated(s, idx) ||
	    ((atomic_load_explicit(&s->freed_bits[idx / 64], memory_order_relaxed) >> (idx % 64)) & 1)) {
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "object is not allocated");
		return -1;
	}
	return (long)idx;
}

/* A free landed in a span no CPU holds: the first such free queues it
 * (mcentral.c has the argument).  `st` was read before the freed bit went
 * in, `now` after. */
static __attribute__((noinline)) void queue_after_free(struct mspan *s, uint64_t st, uint64_t now)
{
	if (SS_GEN(now) != SS_GEN(st))
		return; /* swept empty and released meanwhile */
	if (atomic_compare_exchange_strong(&s->sweepstate, &now, SS_MAKE(SS_GEN(now), LOC_QUEUED)))
		mcentral_push_unswept(s->central, s); /* same life: its central */
}

/* Sets the freed bit of validated object idx: the lock-free free. */
static inline void small_free_idx(struct mspan *s, const void *p, uint32_t idx)
{
	/* Read before the bit goes in (our live object keeps the span alive);
	 * the seq_cst RMW below keeps this load before it. */
	uint64_t st = atomic_load_explicit(&s->sweepstate, memory_order_relaxed);
	if (__builtin_expect(arch_bit_test_and_set(s->freed_bits, idx), 0)) {
		/* Already free (or freed at the same moment by another CPU):
		 * the bit was set, so nothing changed. */
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "object is already free");
		return;
	}
	uint64_t now = atomic_load_explicit(&s->sweepstate, memory_order_seq_cst);
	if (__builtin_expect(SS_LOC(now) & LOC_LISTED, 0))
		queue_after_free(s, st, now);
}

/* Validates and frees a small object (object caches, the slow path). */
void small_free(struct mspan *s, const void *p)
{
	long idx = small_index(s, p);
	if (idx < 0)
		return;
	if (s->dbg)
		debug_on_free(s, (uint32_t)idx, p);
	small_free_idx(s, p, (uint32_t)idx);
}

/* Frees a large object or page run after validation. */
static void whole_free(struct mspan *s, const void *p, enum span_state want)
{
	uint32_t expect = (uint32_t)want;
	if (!atomic_compare_exchange_strong(&s->state, &expect, SPAN_FREEING)) {
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "freed twice at once");
		return;
	}
	mheap_free_large(s, want);
}

/* The live span p points into, or NULL after reporting why there is none. */
static struct mspan *span_or_report(const void *p)
{
	struct mspan *s = span_of_ptr(p);
	if (!s)
		report_no_span(p);
	return s;
}

/* Everything kfree's fast path does not handle: NULL, bad pointers (with
 * their reports), debug spans, large objects, page runs. */
static __attribute__((noinline)) void kfree_slow(const void *p)
{
	struct mspan *s = p ? span_or_report(p) : NULL;
	if (!s)
		return;
	switch (atomic_load_explicit(&s->state, memory_order_acquire)) {
	case SPAN_SMALL:
		small_free(s, p);
		return;
	case SPAN_LARGE:
		if ((uintptr_t)p != s->base)
			report_fault(KMEM_FAULT_INTERIOR, p, s, "inside a large object");
		else
			whole_free(s, p, SPAN_LARGE);
		return;
	case SPAN_RUN:
		report_fault(KMEM_FAULT_WRONG_KIND, p, s, "page run freed with kfree");
		return;
	default:
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "span is being freed");
		return;
	}
}

void kfree(const void *p)
{
	/* Fast path: a live object of a plain small span.  NULL and every
	 * bad pointer fail one of these tests and go to kfree_slow:
	 *   idx < fast_nelems     span is SMALL, not debug, idx in range
	 *   idx * elemsize == off p is an object start
	 *   allocated(idx)        handed out (the freed bit is the RMW) */
	struct mspan *s = span_of_ptr(p);
	if (__builtin_expect(s != NULL, 1)) {
		uintptr_t off = (uintptr_t)p - s->base;
		uint32_t idx = span_obj_index(s, off);
		if (__builtin_expect(idx < atomic_load_explicit(&s->fast_nelems, memory_order_relaxed) &&
		                         (uintptr_t)idx * s->elemsize == off &&
		                         span_obj_allocated(s, idx),
		                     1)) {
			small_free_idx(s, p, idx);
			return;
		}
	}
	kfree_slow(p);
}

size_t ksize(const void *p)
{
	struct mspan *s = p ? span_or_report(p) : NULL;
	if (!s)
		return 0;
	switch (atomic_load_explicit(&s->state, memory_order_acquire)) {
	case SPAN_SMALL: {
		long idx = small_index(s, p);
		if (idx < 0)
			return 0;
		return s->dbg ? s->dbg[idx].size : s->elemsize;
	}
	case SPAN_LARGE:
		if ((uintptr_t)p == s->base)
			return s->npages << PAGE_SHIFT;
		report_fault(KMEM_FAULT_INTERIOR, p, s, "inside a large object");
		return 0;
	case SPAN_RUN:
		report_fault(KMEM_FAULT_WRONG_KIND, p, s, "page run passed as an object");
		return 0;
	default:
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "span is being freed");
		return 0;
	}
}

void *krealloc(void *p, size_t n)
{
	if (!p)
		return kmalloc(n);
	if (n == 0) {
		kfree(p);
		return NULL;
	}
	size_t have = ksize(p);
	if (have == 0)
		return NULL; /* reported */
	/* Debug objects always move: their red zone starts at the old size. */
	if (n <= have && n >= have / 2 && !span_of_ptr(p)->dbg)
		return p;
	void *q = kmalloc_caller(n, RET_ADDR);
	if (!q)
		return NULL;
	memcpy(q, p, n < have ? n : have);
	kfree(p);
	return q;
}

/* ---------------------------------------------------------------------------
 * Page runs
 */

void *kpage_alloc(size_t npages, size_t align, uint64_t max_phys)
{
	if (npages == 0 || !is_pow2(align) || npages > (1ull << SUM_TOP))
		return NULL;
	uint64_t align_pages = align > PAGE_SIZE ? align >> PAGE_SHIFT : 1;
	uint64_t max_pfn = 0;
	if (max_phys) {
		max_pfn = max_phys >> PAGE_SHIFT;
		if (max_pfn == 0)
			return NULL;
	}
	uintptr_t caller = RET_ADDR;
	return WITH_OOM_RETRY(oom_request(KMEM_OOM_PAGES, npages << PAGE_SHIFT, align, max_phys),
	                      large_alloc(npages << PAGE_SHIFT, align_pages, max_pfn, SPAN_RUN, caller));
}

void kpage_free(void *p, size_t npages)
{
	struct mspan *s = p ? span_or_report(p) : NULL;
	if (!s)
		return;
	uint32_t state = atomic_load_explicit(&s->state, memory_order_acquire);
	if (state == SPAN_SMALL || state == SPAN_LARGE) {
		report_fault(KMEM_FAULT_WRONG_KIND, p, s, "object freed with kpage_free");
		return;
	}
	if (state != SPAN_RUN) {
		report_fault(KMEM_FAULT_DOUBLE_FREE, p, s, "page run is being freed");
		return;
	}
	if ((uintptr_t)p != s->base) {
		report_fault(KMEM_FAULT_INTERIOR, p, s, "inside a page run");
		return;
	}
	if (npages != s->npages) {
		report_fault(KMEM_FAULT_BAD_SIZE, p, s, "page count differs from the allocation");
		return;
	}
	whole_free(s, p, SPAN_RUN);
}

uint64_t kmem_virt_to_phys(const void *p)
{
	return (uint64_t)((uintptr_t)p - mheap_.offset);
}

/* ---------------------------------------------------------------------------
 * CPUs and reclaim
 */

int kmem_cpu_online(unsigned cpu)
{
	if (cpu >= mheap_.max_cpus)
		return -KMEM_EINVAL;
	unsigned long f = lock_irqsave(&mheap_.caches_lock);
	struct mcache *c = mcache_of(cpu);
	if (!c->online) {
		c->online = true;
		mheap_.cpus_online++;
	}
	unlock_irqrestore(&mheap_.caches_lock, f);
	return 0;
}

int kmem_cpu_offline(unsigned cpu)
{
	if (cpu >= mheap_.max_cpus)
		return -KMEM_EINVAL;
	unsigned long f = arch_irq_save();
	mcache_flush(cpu);
	lock_acquire(&mheap_.caches_lock);
	struct mcache *c = mcache_of(cpu);
	if (c->online) {
		c->online = false;
		mheap_.cpus_online--;
	}
	unlock_irqrestore(&mheap_.caches_lock, f);
	return 0;
}

size_t kmem_reclaim(void)
{
	unsigned long f = arch_irq_save();
	size_t n = mheap_reclaim();
	arch_irq_restore(f);
	return n;
}
