/*
 * mm/debug.c - the debug heap: poison, red zones, callers, leak report.
 * See malloc.c for an overview and spanalloc.h for the contract.
 *
 * A debug span (its mcentral has KMEM_DEBUG_* flags) carries an obj_debug
 * record per object in the metadata region.  Hardened mode (harden.c)
 * uses the same machinery with DEBUG_HARDEN: zeros for poison, a secret
 * canary for red zones, and checks of the neighbouring bytes at free.  Its memory is poisoned when
 * the span is created, so "every byte of a free slot is POISON_FREE" holds
 * from the start:
 *   alloc:  check the poison (a mismatch is a write after free), fill
 *           [size, elemsize) with POISON_REDZONE, record size and caller;
 *   free:   check the red zone (a mismatch is an overflow), poison the
 *           whole slot, then the freed bit goes in (malloc.c).
 * The records of an object are touched only by whoever owns the object at
 * that moment, so they need no lock.
 */
#include "mtypes.h"

static uint32_t obj_index(const struct mspan *s, const void *p)
{
	return span_obj_index(s, (uintptr_t)p - s->base);
}

/* First byte of [p, p+n) that is not `val`, or NULL; a word at a time
 * (hardened mode checks whole slots at every allocation). */
const unsigned char *mem_first_not(const void *p, size_t n, unsigned char val)
{
	const unsigned char *b = p, *end = b + n;
	uint64_t all = 0x0101010101010101ull * val;
	while (b < end && ((uintptr_t)b & 7)) {
		if (*b != val)
			return b;
		b++;
	}
	for (; end - b >= 32; b += 32) {
		uint64_t w[4];
		memcpy(w, b, 32);
		if ((w[0] ^ all) | (w[1] ^ all) | (w[2] ^ all) | (w[3] ^ all))
			break;
	}
	for (; end - b >= 8; b += 8) {
		uint64_t w;
		memcpy(&w, b, 8);
		if (w != all)
			break;
	}
	for (; b < end; b++)
		if (*b != val)
			return b;
	return NULL;
}

/* Hardened mode poisons with zeros: a freed object reads as zeros, and
 * every object handed out is zeroed. */
static unsigned char poison_of(unsigned flags)
{
	return flags & DEBUG_HARDEN ? 0 : POISON_FREE;
}

/* The record's generation (obj_debug.live, harden.c explains it): one
 * step before and one after each change of the object's bytes, the
 * second fenced so that the client's own writes come after it. */
static void gen_step(struct obj_debug *d)
{
	__atomic_store_n(&d->live, d->live + 1, __ATOMIC_RELEASE);
	atomic_thread_fence(memory_order_release);
}

void debug_poison_span(struct mspan *s)
{
	unsigned flags = s->central->debug;
	/* Hardened: the tail too, which neighbour checks expect to be zeros. */
	if (flags & DEBUG_HARDEN)
		memset((void *)s->base, 0, s->npages << PAGE_SHIFT);
	else if (flags & KMEM_DEBUG_POISON)
		memset((void *)s->base, POISON_FREE, (size_t)s->nelems * s->elemsize);
}

void debug_on_alloc(void *p, size_t size, uintptr_t caller)
{
	struct mspan *s = span_of_ptr(p);
	unsigned flags = s->central->debug;
	struct obj_debug *d = &s->dbg[obj_index(s, p)];
	if (flags & KMEM_DEBUG_POISON) {
		const unsigned char *bad = mem_first_not(p, s->elemsize, poison_of(flags));
		if (bad) {
			report_fault_caller(KMEM_FAULT_USE_AFTER_FREE, bad, s,
			                    "freed object was written to (poison changed)", d->caller);
			if (flags & DEBUG_HARDEN) /* the hook returned: still hand out zeros */
				memset(p, 0, s->elemsize);
		}
	}
	gen_step(d);
	if (flags & KMEM_DEBUG_REDZONE) {
		if (flags & DEBUG_HARDEN)
			canary_fill(p, (unsigned char *)p + size, s->elemsize - size);
		else
			memset((unsigned char *)p + size, POISON_REDZONE, s->elemsize - size);
	}
	d->size = (uint32_t)size;
	d->caller = flags & KMEM_DEBUG_CALLER ? caller : 0;
	gen_step(d);
}

static bool redzone_ok(const struct mspan *s, const void *p, const struct obj_debug *d)
{
	const unsigned char *z = (const unsigned char *)p + d->size;
	size_t n = s->elemsize - d->size;
	bool hard = s->central->debug & DEBUG_HARDEN;
	if (!(hard ? canary_first_bad(p, z, n) : mem_first_not(z, n, POISON_REDZONE)))
		return true;
	report_fault_caller(KMEM_FAULT_OVERFLOW, p, s,
	                    hard ? "canary after the object was written (overflow)"
	                         : "red zone after the object was written",
	                    d->caller);
	return false;
}

/* Hardened: the `slack` bytes before the object and after its end that
 * belong to other slots (or spans) hold what they must (harden.c). */
static bool near_ok(const struct mspan *s, const void *p, const struct obj_debug *d)
{
	uintptr_t a = (uintptr_t)p, slot_end = a + s->elemsize;
	uintptr_t bad = harden_near_bad(a - harden_.slack, a);
	const char *why = "bytes before the object were written (underflow)";
	if (!bad && a + d->size + harden_.slack > slot_end) {
		bad = harden_near_bad(slot_end, a + d->size + harden_.slack);
		why = "bytes after the object's slot were written (overflow)";
	}
	if (!bad)
		return true;
	report_fault_caller(KMEM_FAULT_OVERFLOW, p, s, why, d->caller);
	return false;
}

/* The debug part of a free: false, after reporting, if the red zone was
 * written -- the free then does nothing (the contract for bad calls); the
 * object stays allocated so that the overflow can be looked at. */
bool debug_on_free(struct mspan *s, uint32_t idx, const void *p)
{
	struct obj_debug *d = &s->dbg[idx];
	unsigned flags = s->central->debug;
	if ((flags & KMEM_DEBUG_REDZONE) && !redzone_ok(s, p, d))
		return false;
	if ((flags & DEBUG_HARDEN) && !near_ok(s, p, d))
		return false;
	gen_step(d);
	if (flags & KMEM_DEBUG_POISON)
		memset((void *)p, poison_of(flags), s->elemsize);
	gen_step(d);
	return true;
}

/* Red zones of every live object (QUIESCE), and in hardened spans the
 * zeros of every free or quarantined slot and of the tail; returns the
 * faults found. */
unsigned long debug_check_span(struct mspan *s)
{
	unsigned long n = 0;
	unsigned flags = s->dbg ? s->central->debug : 0;
	if (!(flags & (KMEM_DEBUG_REDZONE | DEBUG_HARDEN)))
		return 0;
	for (uint32_t i = 0; i < s->nelems; i++) {
		void *p = (void *)(s->base + i * s->elemsize);
		uint32_t g = s->dbg[i].live % 4;
		if (g == 2 && (flags & KMEM_DEBUG_REDZONE) && !redzone_ok(s, p, &s->dbg[i]))
			n++;
		if (g == 0 && (flags & DEBUG_HARDEN) && mem_first_not(p, s->elemsize, 0)) {
			report_fault_caller(KMEM_FAULT_USE_AFTER_FREE, p, s,
			                    "free object was written to (zeros changed)", s->dbg[i].caller);
			n++;
		}
	}
	uintptr_t tail = s->base + (uintptr_t)s->nelems * s->elemsize;
	if ((flags & DEBUG_HARDEN) &&
	    mem_first_not((void *)tail, s->base + (s->npages << PAGE_SHIFT) - tail, 0)) {
		report_fault(KMEM_FAULT_OVERFLOW, (void *)tail, s,
		             "span tail after the last object was written (overflow)");
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------------------
 * Leak report: live objects grouped by (class or cache, caller) in a fixed
 * table (no allocation); groups past the table go to one "other" line.
 */
#define LEAK_GROUPS 64

struct leak_group {
	const struct mcentral *c; /* NULL for large objects and runs */
	uint32_t kind;            /* SPAN_SMALL, SPAN_LARGE, SPAN_RUN */
	uintptr_t caller;
	uint64_t objects;
};

struct leak_table {
	struct leak_group g[LEAK_GROUPS];
	unsigned n;
	uint64_t other, total;
};

static void leak_add(struct leak_table *t, const struct mcentral *c, uint32_t kind,
                     uintptr_t caller)
{
	t->total++;
	for (unsigned i = 0; i < t->n; i++)
		if (t->g[i].c == c && t->g[i].kind == kind && t->g[i].caller == caller) {
			t->g[i].objects++;
			return;
		}
	if (t->n == LEAK_GROUPS) {
		t->other++;
		return;
	}
	t->g[t->n++] = (struct leak_group){c, kind, caller, 1};
}

static void leak_span(struct leak_table *t, struct mspan *s)
{
	uint32_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
	if (state != SPAN_SMALL) {
		leak_add(t, NULL, state, s->caller);
		return;
	}
	/* Grouped by class or cache, whatever node's mcentral holds it. */
	const struct mcentral *c = s->cache ? &s->cache->central : class_central(0, s->central->sizeclass);
	for (uint32_t i = 0; i < s->nelems; i++)
		if (atomic_load_explicit(&s->objstate[i], memory_order_relaxed) == OBJ_CLIENT)
			leak_add(t, c, SPAN_SMALL, s->dbg ? s->dbg[i].caller : 0);
}

unsigned long kmem_leak_report(void (*emit)(const char *line, void *arg), void *arg)
{
	struct leak_table t;
	memset(&t, 0, sizeof t);
	unsigned long f = heaps_lock_all();
	for (uint64_t i1 = 0; i1 < L1_ENTRIES; i1++) {
		struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[i1], memory_order_relaxed);
		for (uint64_t i2 = 0; c && i2 < L2_ENTRIES; i2++) {
			struct heap_arena *a = atomic_load_explicit(&c->arenas[i2], memory_order_relaxed);
			uint64_t base = ((i1 << L2_BITS) | i2) << SUM_ARENA_TOP;
			for (uint64_t p = 0; a && p < ARENA_PAGES; p++) {
				struct mspan *s = atomic_load_explicit(&a->spans[p], memory_order_relaxed);
				if (s && s->pfn == base + p)
					leak_span(&t, s);
				else if (!s && a->pagekind[p] >= 1 && a->pagekind[p] <= RUN_INLINE_MAX)
					leak_add(&t, NULL, SPAN_RUN, 0); /* a run without a descriptor */
			}
		}
	}
	heaps_unlock_all(f);
	struct fmtbuf m;
	for (unsigned i = 0; i < t.n; i++) {
		const struct leak_group *g = &t.g[i];
		fmt_reset(&m);
		fmt_str(&m, "leak ");
		if (g->kind == SPAN_SMALL) {
			fmt_num(&m, g->c->sizeclass, 10);
			fmt_str(&m, " ");
			fmt_num(&m, g->c->elemsize, 10);
			fmt_str(&m, " ");
			fmt_str(&m, g->c->cache && g->c->cache->name ? g->c->cache->name : "-");
		} else {
			fmt_str(&m, g->kind == SPAN_LARGE ? "large 0 -" : "run 0 -");
		}
		fmt_str(&m, " caller=");
		fmt_num(&m, g->caller, 16);
		fmt_str(&m, " objects=");
		fmt_num(&m, g->objects, 10);
		emit(m.buf, arg);
	}
	if (t.other) {
		fmt_reset(&m);
		fmt_str(&m, "leak other objects=");
		fmt_num(&m, t.other, 10);
		emit(m.buf, arg);
	}
	return (unsigned long)t.total;
}
