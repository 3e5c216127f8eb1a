/*
 * mm/mcheck.c - fault reports, assertions and the invariant checker.  See
 * malloc.c for an overview.
 */
#include "mtypes.h"

static const char *const fault_names[] = {
	[KMEM_FAULT_DOUBLE_FREE] = "double free",
	[KMEM_FAULT_INTERIOR] = "interior pointer",
	[KMEM_FAULT_WILD] = "wild pointer",
	[KMEM_FAULT_FREE_PAGE] = "free of a free page",
	[KMEM_FAULT_WRONG_CACHE] = "wrong cache",
	[KMEM_FAULT_WRONG_KIND] = "wrong kind",
	[KMEM_FAULT_BAD_SIZE] = "bad size",
	[KMEM_FAULT_METADATA] = "pointer into metadata",
	[KMEM_FAULT_CORRUPT] = "heap corrupt",
	[KMEM_FAULT_USE_AFTER_FREE] = "use after free",
	[KMEM_FAULT_OVERFLOW] = "overflow",
};

const char *kmem_fault_name(enum kmem_fault_kind kind)
{
	if ((unsigned)kind < sizeof(fault_names) / sizeof(fault_names[0]) && fault_names[kind])
		return fault_names[kind];
	return "unknown fault";
}

static void default_hook(const struct kmem_fault *f)
{
	struct fmtbuf m;
	fmt_reset(&m);
	fmt_str(&m, "spanalloc: ");
	fmt_str(&m, kmem_fault_name(f->kind));
	fmt_str(&m, " at ");
	fmt_num(&m, (uintptr_t)f->addr, 16);
	if (f->span_base) {
		fmt_str(&m, " (span ");
		fmt_num(&m, f->span_base, 16);
		if (f->size_class) {
			fmt_str(&m, ", class ");
			fmt_num(&m, f->size_class, 10);
		}
		if (f->cache) {
			fmt_str(&m, ", cache ");
			fmt_str(&m, f->cache);
		}
		fmt_str(&m, ")");
	}
	fmt_str(&m, ": ");
	fmt_str(&m, f->detail);
	if (f->caller) {
		fmt_str(&m, " (allocated by ");
		fmt_num(&m, f->caller, 16);
		fmt_str(&m, ")");
	}
	arch_panic(m.buf);
}

kmem_fault_hook_t kmem_set_fault_hook(kmem_fault_hook_t hook)
{
	return atomic_exchange(&mheap_.fault_hook, hook);
}

void report_fault(enum kmem_fault_kind kind, const void *addr, const struct mspan *s,
                  const char *detail)
{
	uintptr_t caller = 0;
	if (s && s->dbg && s->elemsize) {
		uint32_t idx = span_obj_index(s, (uintptr_t)addr - s->base);
		if ((uintptr_t)addr >= s->base && idx < s->nelems)
			caller = s->dbg[idx].caller;
	} else if (s) {
		caller = s->caller;
	}
	report_fault_caller(kind, addr, s, detail, caller);
}

void report_fault_caller(enum kmem_fault_kind kind, const void *addr, const struct mspan *s,
                         const char *detail, uintptr_t caller)
{
	struct kmem_fault f = {
		.kind = kind,
		.addr = addr,
		.span_base = s ? s->base : 0,
		.size_class = s ? s->sizeclass : 0,
		.cache = s && s->cache ? s->cache->name : NULL,
		.detail = detail,
		.caller = caller,
	};
	kmem_fault_hook_t h = atomic_load(&mheap_.fault_hook);
	(h ? h : default_hook)(&f);
}

void assert_fail(const char *expr, const char *file, int line)
{
	struct fmtbuf m;
	fmt_reset(&m);
	fmt_str(&m, "spanalloc: assertion failed: ");
	fmt_str(&m, expr);
	fmt_str(&m, " at ");
	fmt_str(&m, file);
	fmt_str(&m, ":");
	fmt_num(&m, (uint64_t)line, 10);
	arch_panic(m.buf);
}

/* ---------------------------------------------------------------------------
 * The invariant checker (QUIESCE).
 */

struct checker {
	unsigned long problems;
	uint64_t free, small, large, runs, large_objects, page_runs, small_spans;
	uint64_t shared; /* arenas that are the shared all-free image */
	uint64_t mag_objects; /* objects whose state names a magazine */
	uint64_t mag_entries; /* distinct valid magazine entries */
	uint64_t quarantined, quarantined_large; /* objects whose state says so */
	uint64_t deferred, deferred_large;       /* the same for kfree_deferred */
	uint64_t run_left, run_next; /* descriptorless run: pages still due, next pfn */
	uint64_t heap_free[KMEM_MAX_NODES], heap_managed[KMEM_MAX_NODES]; /* by owner */
};

static void bad(struct checker *k, const void *addr, const struct mspan *s, const char *what)
{
	k->problems++;
	report_fault(KMEM_FAULT_CORRUPT, addr, s, what);
}

static void check_small_span(struct checker *k, struct mspan *s)
{
	const struct mcentral *c = s->central;
	if (!c || c->elemsize != s->elemsize || c->nelems != s->nelems || c->npages != s->npages)
		bad(k, (void *)s->base, s, "span geometry differs from its mcentral");
	unsigned nw = (s->nelems + 63) / 64;
	uint64_t last = atomic_load_explicit(&s->alloc_bits[nw - 1], memory_order_relaxed);
	if (s->nelems % 64 && (last >> (s->nelems % 64)) != (~0ull >> (s->nelems % 64)))
		bad(k, (void *)s->base, s, "alloc bits beyond nelems not set");
	if (s->alloc_count > s->nelems)
		bad(k, (void *)s->base, s, "alloc_count above nelems");
	if (atomic_load_explicit(&s->fast_nelems, memory_order_relaxed) !=
	    (s->dbg || s->cache ? 0 : s->nelems))
		bad(k, (void *)s->base, s, "fast_nelems disagrees with nelems, cache and dbg");
	uint32_t fi = atomic_load_explicit(&s->freeindex, memory_order_relaxed);
	if (fi > s->nelems)
		bad(k, (void *)s->base, s, "freeindex above nelems");
	for (unsigned w = 0; w < nw; w++) {
		uint64_t f = atomic_load_explicit(&s->freed_bits[w], memory_order_relaxed);
		for (unsigned b = 0; b < 64 && f; b++)
			if (((f >> b) & 1) && !span_obj_allocated(s, w * 64 + b))
				bad(k, (void *)(s->base + (w * 64 + b) * s->elemsize), s,
				    "freed bit on an object that is not allocated");
	}
	/* Object states against the bits (mtypes.h, struct mspan). */
	for (uint32_t i = 0; i < s->nelems; i++) {
		unsigned st = atomic_load_explicit(&s->objstate[i], memory_order_relaxed);
		bool taken = span_obj_allocated(s, i);
		bool freed = (atomic_load_explicit(&s->freed_bits[i / 64], memory_order_relaxed) >>
		              (i % 64)) & 1;
		void *obj = (void *)(s->base + (uintptr_t)i * s->elemsize);
		if (st == OBJ_FREE ? taken && !freed : !taken || freed)
			bad(k, obj, s, "object state disagrees with the span's bits");
		if (st == OBJ_QUARANTINE) {
			k->quarantined++;
			if (!(s->central->debug & DEBUG_HARDEN))
				bad(k, obj, s, "object quarantined in a class that is not hardened");
		} else if (st == OBJ_DEFERRED) {
			k->deferred++;
		} else if (st != OBJ_FREE && st != OBJ_CLIENT) {
			k->mag_objects++;
			if (!s->central->mag_cap)
				bad(k, obj, s, "object in a magazine of a class without magazines");
		}
	}
	if (atomic_load_explicit(&s->objstate[s->nelems], memory_order_relaxed) != OBJ_FREE)
		bad(k, (void *)s->base, s, "tail slot state is not OBJ_FREE");
	uint64_t st = atomic_load_explicit(&s->sweepstate, memory_order_relaxed);
	unsigned loc = SS_LOC(st);
	if (loc == LOC_CACHED ? s->on_list != 0
	    : (loc == LOC_PARTIAL || loc == LOC_FULL || loc == LOC_EMPTY) ? s->on_list != loc
	    : loc == LOC_QUEUED ? s->on_list == 0 : true)
		bad(k, (void *)s->base, s, "sweep state and list disagree");
	if (s->on_list == LOC_FULL && loc == LOC_FULL && s->alloc_count < s->nelems)
		bad(k, (void *)s->base, s, "span on the full list has free objects");
	/* A listed span with waiting frees must have been queued (mcentral.c,
	 * the Dekker argument), or it could stay unfindable. */
	if ((loc == LOC_PARTIAL || loc == LOC_FULL) && span_has_freed(s))
		bad(k, (void *)s->base, s, "listed span has unqueued frees");
	if (loc == LOC_EMPTY && (s->alloc_count != 0 || fi != 0 || span_has_freed(s)))
		bad(k, (void *)s->base, s, "span on the empty list is not empty");
	k->problems += debug_check_span(s);
	k->small_spans++;
}

/* A page's kind (mtypes.h, PKIND_*): a descriptorless run is live pages
 * in a row, without a span, its first page counting them; a guard page is
 * in use, without a span. */
static void check_page_kind(struct checker *k, struct heap_arena *a, uint64_t pfn,
                            const struct mspan *s)
{
	uint64_t i = pfn & (ARENA_PAGES - 1);
	unsigned kind = a->pagekind[i];
	void *at = (void *)pfn_to_virt(pfn);
	if (kind == PKIND_NONE) {
		if (k->run_left)
			bad(k, at, NULL, "page run ends before its length");
		k->run_left = 0;
		return;
	}
	if (s)
		bad(k, at, s, "page of a span marked as a run or guard page");
	if ((a->pagebits[i >> 6] >> (i & 63)) & 1)
		bad(k, at, NULL, "run or guard page is free");
	if (!((a->managedbits[i >> 6] >> (i & 63)) & 1))
		bad(k, at, NULL, "run or guard page outside the pool");
	if (kind == PKIND_RUN_TAIL) {
		if (!k->run_left || pfn != k->run_next)
			bad(k, at, NULL, "page run page without its first page");
		else
			k->run_left--;
		k->run_next = pfn + 1;
		return;
	}
	if (k->run_left)
		bad(k, at, NULL, "page run ends before its length");
	k->run_left = 0;
	if (kind == PKIND_GUARD)
		return;
	if (kind > RUN_INLINE_MAX) {
		bad(k, at, NULL, "unknown page kind");
		return;
	}
	k->runs += kind;
	k->page_runs++;
	k->run_left = kind - 1;
	k->run_next = pfn + 1;
}

static void check_arena(struct checker *k, struct pageheap *h, struct heap_arena *a,
                        uint64_t base)
{
	/* A shared arena (heaparena.c): the image is checked in full at its
	 * first use; the others count its free pages, which must be all of
	 * them (a written image shows as a wrong free count or a bad page). */
	k->heap_managed[h->node] += a->managed;
	if (a == &arena_free_image && k->shared++) {
		k->free += ARENA_PAGES;
		k->heap_free[h->node] += ARENA_PAGES;
		return;
	}
	if (a == &arena_free_image && a->managed != ARENA_PAGES)
		bad(k, (void *)pfn_to_virt(base), NULL, "shared arena image was written");
	for (unsigned w = 0; w < ARENA_WORDS; w++) {
		if (a->pagebits[w] & ~a->managedbits[w])
			bad(k, (void *)pfn_to_virt(base + w * 64), NULL, "free page outside the pool");
		k->free += (uint64_t)popcount64(a->pagebits[w]);
		k->heap_free[h->node] += (uint64_t)popcount64(a->pagebits[w]);
	}
	for (uint64_t i = 0; i < ARENA_PAGES; i++) {
		struct mspan *s = atomic_load_explicit(&a->spans[i], memory_order_relaxed);
		check_page_kind(k, a, base + i, s);
		if (!s)
			continue;
		uint64_t pfn = base + i;
		uint32_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
		/* A quarantined large object (harden.c) is still a large object. */
		bool quarantined = state == SPAN_FREEING && (s->hflags & HL_QUARANTINE);
		/* So is one waiting for its grace period (deferred.c). */
		bool deferred = state == SPAN_FREEING && (s->hflags & HL_DEFERRED);
		if (state != SPAN_SMALL && state != SPAN_LARGE && state != SPAN_RUN && !quarantined &&
		    !deferred) {
			bad(k, (void *)pfn_to_virt(pfn), s, "page maps to a dead span");
			continue;
		}
		if (pfn < s->pfn || pfn >= s->pfn + s->npages)
			bad(k, (void *)pfn_to_virt(pfn), s, "page maps to a span that does not cover it");
		if ((a->pagebits[i >> 6] >> (i & 63)) & 1)
			bad(k, (void *)pfn_to_virt(pfn), s, "page of a live span is free");
		if (!((a->managedbits[i >> 6] >> (i & 63)) & 1))
			bad(k, (void *)pfn_to_virt(pfn), s, "span page outside the pool");
		if (pfn != s->pfn)
			continue;
		if (state == SPAN_SMALL) {
			k->small += s->npages;
			check_small_span(k, s);
			continue;
		}
		if (atomic_load_explicit(&s->fast_nelems, memory_order_relaxed) != 0)
			bad(k, (void *)pfn_to_virt(pfn), s, "large object or page run on kfree's fast path");
		if (state == SPAN_LARGE || quarantined || deferred) {
			k->large += s->npages;
			k->large_objects++;
			k->quarantined_large += quarantined;
			k->deferred_large += deferred;
			k->problems += harden_check_large(s);
		} else {
			k->runs += s->npages;
			k->page_runs++;
		}
	}
	for (unsigned level = SUM_LEAF_LEVEL + 1; level <= SUM_ARENA_TOP; level++)
		for (uint64_t j = 0; j < (1ull << (SUM_ARENA_TOP - level)); j++)
			if (!sum_node_ok(h, level, (base >> level) + j))
				bad(k, (void *)pfn_to_virt(base), NULL, "arena summary is stale");
}

static void check_central(struct checker *k, struct mcentral *c)
{
	struct span_list *lists[3] = {&c->partial, &c->full, &c->empty};
	const unsigned locs[3] = {LOC_PARTIAL, LOC_FULL, LOC_EMPTY};
	for (int i = 0; i < 3; i++) {
		uint64_t n = 0;
		for (struct mspan *s = lists[i]->first; s; s = s->next, n++) {
			if (s->central != c || s->on_list != locs[i])
				bad(k, (void *)s->base, s, "span on the wrong mcentral list");
			if (atomic_load_explicit(&s->state, memory_order_relaxed) != SPAN_SMALL)
				bad(k, (void *)s->base, s, "dead span on an mcentral list");
		}
		if (n != lists[i]->count)
			bad(k, NULL, NULL, "mcentral list count is wrong");
	}
	if (c->empty.count > c->empty_max)
		bad(k, NULL, NULL, "mcentral keeps more empty spans than empty_max");
}

/* One magazine of central c (n objects): its id is unique in the class
 * (`seen`) and recorded in the depot, every entry names an object start of
 * a span of the class with that object's state byte.  Entries whose state
 * is the magazine's id are counted once each; others are stale (left by a
 * racing double free, reported when they are found) and allowed. */
static void check_magazine(struct checker *k, struct mcentral *c, struct magazine *m,
                           uint32_t n, uint64_t seen[4])
{
	if (m->id == OBJ_CLIENT || m->id > MAG_ID_MAX || ((seen[m->id / 64] >> (m->id % 64)) & 1) ||
	    !((c->depot.ids[m->id / 64] >> (m->id % 64)) & 1)) {
		bad(k, m, NULL, "magazine id is not unique or not recorded");
		return;
	}
	seen[m->id / 64] |= 1ull << (m->id % 64);
	if (n > c->mag_cap) {
		bad(k, m, NULL, "magazine holds more than its class's capacity");
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct mspan *s = span_of_ptr(m->obj[i]);
		uintptr_t off = s ? (uintptr_t)m->obj[i] - s->base : 0;
		uint32_t idx = s ? span_obj_index(s, off) : 0;
		if (!s || s->central != c ||
		    atomic_load_explicit(&s->state, memory_order_relaxed) != SPAN_SMALL ||
		    idx >= s->nelems || (uintptr_t)idx * s->elemsize != off ||
		    m->st[i] != &s->objstate[idx]) {
			bad(k, m->obj[i], s, "magazine entry is not an object of its class");
			continue;
		}
		if (atomic_load_explicit(m->st[i], memory_order_relaxed) != m->id)
			continue;
		bool dup = false;
		for (uint32_t j = 0; j < i && !dup; j++)
			dup = m->obj[j] == m->obj[i];
		if (!dup)
			k->mag_entries++;
	}
}

/* A CPU's state for central c: the loaded magazine matches its slot, the
 * previous one is a magazine of the class, the span is cached. */
static unsigned check_cpu_class(struct checker *k, struct mcentral *c, struct mag_slot *ms,
                                struct cpu_class *cc, uint64_t seen[4])
{
	unsigned mags = 0;
	if (cc->loaded) {
		if (ms->base != cc->loaded->obj || ms->id != cc->loaded->id ||
		    ms->end != ms->base + c->mag_cap || ms->top < ms->base || ms->top > ms->end)
			bad(k, cc->loaded, NULL, "magazine slot disagrees with its magazine");
		else
			check_magazine(k, c, cc->loaded, mag_slot_n(ms), seen);
		mags++;
	} else if (ms->base || ms->top || ms->end) {
		bad(k, ms, NULL, "magazine slot without a magazine");
	}
	struct magazine *pv = atomic_load_explicit(&cc->prev, memory_order_relaxed);
	if (pv) {
		check_magazine(k, c, pv, pv->n, seen);
		mags++;
	}
	struct mspan *s = atomic_load_explicit(&cc->span, memory_order_relaxed);
	if (s && (s->central != c || s->on_list != 0 ||
	          atomic_load_explicit(&s->state, memory_order_relaxed) != SPAN_SMALL ||
	          SS_LOC(atomic_load_explicit(&s->sweepstate, memory_order_relaxed)) != LOC_CACHED))
		bad(k, (void *)s->base, s, "cached span of the wrong class or state");
	return mags;
}

/* Every magazine of central c: on the CPUs and in the depot. */
static void check_magazines(struct checker *k, struct mcentral *c)
{
	uint64_t seen[4] = {0};
	unsigned mags = 0;
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++) {
		struct mag_slot *ms;
		struct cpu_class *cc;
		if (mheap_.cpu_node[cpu] != c->node)
			continue; /* its magazines are of its node's central */
		cpu_slots(c, cpu, &ms, &cc);
		mags += check_cpu_class(k, c, ms, cc, seen);
	}
	uint32_t nfull = 0, nempty = 0;
	for (struct magazine *m = c->depot.full; m && nfull <= c->depot.full_max; m = m->next, nfull++)
		check_magazine(k, c, m, m->n, seen);
	for (struct magazine *m = c->depot.empty; m && nempty <= c->depot.nmags; m = m->next, nempty++)
		if (m->n)
			bad(k, m, NULL, "magazine on the depot's empty list holds objects");
	if (nfull != atomic_load_explicit(&c->depot.nfull, memory_order_relaxed) ||
	    nfull > c->depot.full_max || nempty != c->depot.nempty)
		bad(k, NULL, NULL, "depot counts are wrong");
	if (mags + nfull + nempty != c->depot.nmags)
		bad(k, NULL, NULL, "magazines lost or duplicated");
	struct mspan *sh = c->depot.shared;
	if (sh && (sh->central != c || sh->on_list != 0 ||
	           SS_LOC(atomic_load_explicit(&sh->sweepstate, memory_order_relaxed)) != LOC_CACHED))
		bad(k, (void *)sh->base, sh, "shared span of the wrong class or state");
}

unsigned long kmem_check(void)
{
	struct checker k = {0};
	unsigned long f = arch_irq_save();
	for (uint64_t i1 = 0; i1 < L1_ENTRIES; i1++) {
		struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[i1], memory_order_acquire);
		if (!c)
			continue;
		for (uint64_t i2 = 0; i2 < L2_ENTRIES; i2++) {
			struct heap_arena *a = atomic_load_explicit(&c->arenas[i2], memory_order_acquire);
			uint64_t base = ((i1 << L2_BITS) | i2) << SUM_ARENA_TOP;
			if (!a)
				continue;
			if (c->owner[i2] >= mheap_.nnodes) {
				bad(&k, (void *)pfn_to_virt(base), NULL, "arena of no page heap");
				continue;
			}
			struct pageheap *h = mheap_.heap[c->owner[i2]];
			check_arena(&k, h, a, base);
			if (base >> h->sum_level)
				bad(&k, (void *)pfn_to_virt(base), NULL, "arena outside the summary hull");
			if (!h->l2[i1])
				bad(&k, (void *)pfn_to_virt(base), NULL, "arena without its heap's summaries");
		}
	}
	for (unsigned n = 0; n < mheap_.nnodes; n++) {
		struct pageheap *h = mheap_.heap[n];
		for (uint64_t i1 = 0; i1 < L1_ENTRIES; i1++)
			for (unsigned level = SUM_ARENA_TOP + 1; h->l2[i1] && level <= SUM_L2_TOP; level++)
				for (uint64_t j = 0; j < (1ull << (SUM_L2_TOP - level)); j++)
					if (!sum_node_ok(h, level, ((i1 << SUM_L2_TOP) >> level) + j))
						bad(&k, NULL, NULL, "chunk summary is stale");
		for (unsigned level = SUM_L2_TOP + 1; level <= SUM_TOP; level++)
			for (uint64_t j = 0; j < (1ull << (SUM_TOP - level)); j++)
				if (!sum_node_ok(h, level, j))
					bad(&k, NULL, NULL, "top summary is stale");
		if (k.heap_free[n] != h->pages_free || k.heap_managed[n] != h->pages_managed)
			bad(&k, NULL, NULL, "a page heap's counts differ from its arenas");
		if (h->pages_free + h->pages_small + h->pages_large + h->pages_runs +
		        h->pages_metadata != h->pages_managed)
			bad(&k, NULL, NULL, "a page heap's accounting does not add up");
	}
	for (unsigned n = 0; n < mheap_.nnodes; n++)
		if (mheap_.arena_next[n] > mheap_.arena_end[n])
			bad(&k, NULL, NULL, "arena copies overran their reserve");

	if (k.run_left)
		bad(&k, NULL, NULL, "the last page run ends before its length");
	struct heap_count hc;
	heaps_count_locked(&hc);
	if (k.free != hc.pages_free)
		bad(&k, NULL, NULL, "free page count differs from the bitmaps");
	if (k.small != hc.pages_small || k.large != hc.pages_large || k.runs != hc.pages_runs)
		bad(&k, NULL, NULL, "span page counts differ from the arena map");
	if (k.large_objects != hc.large_objects || k.page_runs != hc.page_runs)
		bad(&k, NULL, NULL, "large object or page run count is wrong");

	uint64_t central_spans = 0;
	for (unsigned node = 0; node < mheap_.nnodes; node++) {
		for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++) {
			struct mcentral *c = class_central(node, cls);
			check_central(&k, c);
			check_magazines(&k, c);
			central_spans += c->spans;
		}
		for (struct kmem_cache *kc = mheap_.caches; kc; kc = kc->next) {
			check_central(&k, kc->node_central[node]);
			check_magazines(&k, kc->node_central[node]);
			central_spans += kc->node_central[node]->spans;
		}
	}
	if (central_spans != k.small_spans)
		bad(&k, NULL, NULL, "mcentral span counts differ from the arena map");
	if (k.mag_objects != k.mag_entries)
		bad(&k, NULL, NULL, "objects in a magazine state differ from magazine entries");
	uint64_t qs, ql;
	k.problems += harden_check_quarantine(&qs, &ql);
	if (qs != k.quarantined || ql != k.quarantined_large)
		bad(&k, NULL, NULL, "quarantined objects differ from quarantine entries");
	k.problems += deferred_check(&qs, &ql);
	if (qs != k.deferred || ql != k.deferred_large)
		bad(&k, NULL, NULL, "deferred objects differ from deferred batch entries");
	arch_irq_restore(f);
	return k.problems;
}
