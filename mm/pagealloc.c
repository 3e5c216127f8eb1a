/*
 * mm/pagealloc.c - the page allocator: bitmaps with radix summaries over
 * the whole physical address space (Go's pageAlloc is the model).  See
 * malloc.c for an overview.
 *
 * One bit per page (1 = free) in each arena.  Above the bitmaps sits a
 * binary radix tree over all 2^36 physical pages: a node at level L covers
 * 2^L pages and holds their summary (free run at the start, longest free
 * run, free run at the end; struct psum).  Leaves at level 6 are bitmap
 * words, computed on the fly.  The tree is stored in three tiers so that
 * memory the map does not touch costs nothing:
 *     levels  7..14  in each arena         (255 nodes)
 *     levels 15..26  in each L2 chunk      (4095 nodes)
 *     levels 27..36  in the mheap          (1023 nodes)
 * A node in a missing arena or chunk reads as all in use {0, 0, 0}.  A
 * shared (lazy) arena's nodes are the image's: all free.
 *
 * The hull: nodes are kept only up to level H = mheap_.sum_level, the
 * smallest level (>= 14) with every managed pfn < 2^H.  Above it node
 * (L, 0) reads as node (H, 0) with end 0 and every other node as all in
 * use, which is what storing them would give.  So an update or a search
 * costs H - 6 levels, not 30: 12 for a 1 GiB map, 22 for 1 TiB.  Hot-add
 * above the hull raises H, computing the new (L, 0) nodes first.
 *
 * Invariant, for every kept node n at level L (7 <= L <= H) with children
 * a, b:
 *     n == combine(a, b, 2^(L-1))
 * Updates walk up from the changed words and stop at the first level with
 * no change; inside an arena they index its bitmap and heap-ordered sum[]
 * directly (arena_sum_update).  Search walks the tree in address order
 * from the hull's root, skipping every node whose longest run is too
 * short: O(log n) for a search without alignment.
 *
 * Everything here runs under mheap.lock.
 */
#include "mtypes.h"


static inline struct psum word_sum(uint64_t w)
{
	struct psum s;
	if (w == ~0ull) {
		s.start = s.max = s.end = 64;
		return s;
	}
	s.start = ctz64(~w);
	s.end = clz64(~w);
	s.max = s.start > s.end ? s.start : s.end;
	/* The longest run strictly inside: one step per page of it. */
	uint64_t x = w & (~0ull << s.start) & (~0ull >> s.end), n = 0;
	while (x) {
		x &= x >> 1;
		n++;
	}
	if (n > s.max)
		s.max = n;
	return s;
}

struct psum sum_of_word(uint64_t w)
{
	return word_sum(w);
}

struct psum sum_combine(struct psum l, struct psum r, uint64_t half)
{
	struct psum s;
	s.start = l.start == half ? half + r.start : l.start;
	s.end = r.end == half ? half + l.end : r.end;
	s.max = l.max > r.max ? l.max : r.max;
	if (l.end + r.start > s.max)
		s.max = l.end + r.start;
	return s;
}

/* Heap-order index of node (level, idx) in a tier whose root is at `top`. */
static inline uint64_t tier_index(unsigned level, uint64_t idx, unsigned top)
{
	uint64_t width = 1ull << (top - level);
	return width - 1 + (idx & (width - 1));
}

/* Pointer to the stored node, or NULL if its arena/chunk is missing.
 * Level must be in 7..36; above mheap_.sum_level the node is not kept.
 * (node_ptr and node_get inline into the walks; sum_ptr and sum_get are
 * the same for the checker and the tests.) */
static inline struct psum *node_ptr(unsigned level, uint64_t idx)
{
	uint64_t pfn = idx << level;
	if (level <= SUM_ARENA_TOP) {
		struct heap_arena *a = arena_of_pfn(pfn);
		return a ? &a->sum[tier_index(level, idx, SUM_ARENA_TOP)] : NULL;
	}
	if (level <= SUM_L2_TOP) {
		struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[pfn >> SUM_L2_TOP],
		                                          memory_order_relaxed);
		return c ? &c->sum[tier_index(level, idx, SUM_L2_TOP)] : NULL;
	}
	return &mheap_.sum[tier_index(level, idx, SUM_TOP)];
}

struct psum *sum_ptr(unsigned level, uint64_t idx)
{
	return node_ptr(level, idx);
}

static inline uint64_t word_of(uint64_t pfn)
{
	struct heap_arena *a = arena_of_pfn(pfn);
	return a ? a->pagebits[(pfn & (ARENA_PAGES - 1)) >> 6] : 0;
}

/* Above the hull: node (L, 0) is the hull's root with end 0, every other
 * node is all in use. */
static __attribute__((noinline)) struct psum above_hull(uint64_t idx)
{
	struct psum s = {0, 0, 0};
	if (idx == 0) {
		struct psum *p = node_ptr(mheap_.sum_level, 0);
		if (p)
			s = *p;
		s.end = 0;
	}
	return s;
}

static inline struct psum node_get(unsigned level, uint64_t idx)
{
	if (level == SUM_LEAF_LEVEL)
		return word_sum(word_of(idx << SUM_LEAF_LEVEL));
	if (level > mheap_.sum_level)
		return above_hull(idx);
	struct psum *p = node_ptr(level, idx);
	if (p)
		return *p;
	struct psum z = {0, 0, 0};
	return z;
}

struct psum sum_get(unsigned level, uint64_t idx)
{
	return node_get(level, idx);
}

/* Recomputes the summaries at levels from..sum_level above pages
 * [pfn, pfn+n).  With `all` false it stops at the first level where no
 * node changed (the levels above cannot change either). */
static void sum_update(uint64_t pfn, uint64_t n, unsigned from, bool all)
{
	uint64_t last = pfn + n - 1;
	for (unsigned level = from; level <= mheap_.sum_level; level++) {
		bool changed = false;
		for (uint64_t i = pfn >> level; i <= last >> level; i++) {
			struct psum *p = node_ptr(level, i);
			if (!p)
				continue;
			struct psum v = sum_combine(node_get(level - 1, 2 * i),
			                            node_get(level - 1, 2 * i + 1),
			                            1ull << (level - 1));
			if (v.start != p->start || v.max != p->max || v.end != p->end) {
				*p = v;
				changed = true;
			}
		}
		if (!changed && !all)
			return;
	}
}

/* The same inside one arena, for its pages [i, j) (arena-relative),
 * indexing its bitmap and heap-ordered sum[] directly.  Returns whether
 * the arena's root (level 14) changed.  Level L's nodes start at heap
 * index 2^(14-L) - 1, so level L-1's start at twice that plus one. */
static bool arena_sum_update(struct heap_arena *a, uint64_t i, uint64_t j)
{
	bool changed = true;
	for (unsigned level = SUM_LEAF_LEVEL + 1; level <= SUM_ARENA_TOP && changed; level++) {
		uint64_t first = (1ull << (SUM_ARENA_TOP - level)) - 1, child = 2 * first + 1;
		changed = false;
		for (uint64_t k = i >> level; k <= (j - 1) >> level; k++) {
			struct psum l, r;
			if (level == SUM_LEAF_LEVEL + 1) {
				l = word_sum(a->pagebits[2 * k]);
				r = word_sum(a->pagebits[2 * k + 1]);
			} else {
				l = a->sum[child + 2 * k];
				r = a->sum[child + 2 * k + 1];
			}
			struct psum v = sum_combine(l, r, 1ull << (level - 1));
			struct psum *p = &a->sum[first + k];
			if (v.start != p->start || v.max != p->max || v.end != p->end) {
				*p = v;
				changed = true;
			}
		}
	}
	return changed;
}

void sums_above_arenas_locked(uint64_t pfn, uint64_t npages)
{
	sum_update(pfn, npages, SUM_ARENA_TOP + 1, true);
}

/* Raises the hull to cover pages below end_pfn: the nodes (L, 0) for the
 * new levels are computed from their children (the right ones cover no
 * managed page yet and are stored as all in use). */
void pages_grow_hull_locked(uint64_t end_pfn)
{
	while (mheap_.sum_level < SUM_TOP && (end_pfn - 1) >> mheap_.sum_level) {
		unsigned level = mheap_.sum_level + 1;
		struct psum *p = node_ptr(level, 0);
		struct psum v = sum_combine(node_get(level - 1, 0), node_get(level - 1, 1),
		                            1ull << (level - 1));
		if (p)
			*p = v;
		mheap_.sum_level = level;
	}
}

void pages_set_locked(uint64_t pfn, uint64_t npages, bool free)
{
	uint64_t p = pfn, end = pfn + npages;
	bool above = false;
	while (p < end) {
		struct heap_arena *a = arena_own_locked(p);
		uint64_t stop = (p | (ARENA_PAGES - 1)) + 1;
		if (stop > end)
			stop = end;
		uint64_t i0 = p & (ARENA_PAGES - 1);
		while (p < stop) { /* a word at a time */
			uint64_t i = p & (ARENA_PAGES - 1);
			uint64_t w = i >> 6, b = i & 63;
			uint64_t cnt = 64 - b < stop - p ? 64 - b : stop - p;
			uint64_t mask = (cnt == 64 ? ~0ull : ((1ull << cnt) - 1)) << b;
			if (free) {
				KASSERT((a->pagebits[w] & mask) == 0);
				a->pagebits[w] |= mask;
			} else {
				KASSERT((a->pagebits[w] & mask) == mask);
				a->pagebits[w] &= ~mask;
			}
			p += cnt;
		}
		if (arena_sum_update(a, i0, ((stop - 1) & (ARENA_PAGES - 1)) + 1))
			above = true;
	}
	if (above)
		sum_update(pfn, npages, SUM_ARENA_TOP + 1, false);
}

bool pages_all_free_locked(uint64_t pfn, uint64_t npages)
{
	for (uint64_t p = pfn; p < pfn + npages; p++) {
		struct heap_arena *a = arena_of_pfn(p);
		if (!a)
			return false;
		uint64_t i = p & (ARENA_PAGES - 1);
		if (!((a->pagebits[i >> 6] >> (i & 63)) & 1))
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------------------
 * First fit in address order, with alignment and a window [lo, hi).
 * The walk carries the free run that ends where the walk is; `run_start`
 * is valid while `in_run`.
 */
struct finder {
	uint64_t n, align, lo, hi;
	bool in_run, stop;
	uint64_t run_start, found;
};

/* The pages [from, to) are free and follow the walk: extend the run and
 * report whether an aligned fit now exists. */
static bool ff_extend(struct finder *f, uint64_t from, uint64_t to)
{
	if (!f->in_run) {
		f->in_run = true;
		f->run_start = from;
	}
	uint64_t a = align_up(f->run_start, f->align);
	if (a + f->n <= to) {
		f->found = a;
		return true;
	}
	return false;
}

static bool ff_word(struct finder *f, uint64_t base)
{
	uint64_t w = word_of(base);
	if (f->lo > base)
		w &= ~0ull << (f->lo - base);
	if (f->hi < base + 64)
		w &= (1ull << (f->hi - base)) - 1;
	unsigned pos = 0;
	while (pos < 64) {
		uint64_t rest = w >> pos;
		if (rest & 1) {
			unsigned ones = ~rest == 0 ? 64 - pos : ctz64(~rest);
			if (ff_extend(f, base + pos, base + pos + ones))
				return true;
			pos += ones;
		} else {
			f->in_run = false;
			if (rest == 0)
				break;
			pos += ctz64(rest);
		}
	}
	return false;
}

/* Summary nodes the searches have visited, for the tests and the latency
 * harness (their cost bound is in nodes, not time).  [heap] */
uint64_t pages_find_steps;

static bool ff_visit(struct finder *f, unsigned level, uint64_t idx)
{
	pages_find_steps++;
	uint64_t base = idx << level, size = 1ull << level, end = base + size;
	if (end <= f->lo)
		return false;
	if (base >= f->hi) {
		f->stop = true;
		return false;
	}
	if (level == SUM_LEAF_LEVEL)
		return ff_word(f, base);
	if (base >= f->lo && end <= f->hi) {
		struct psum s = node_get(level, idx);
		if (s.start == size)
			return ff_extend(f, base, end);
		if (s.max < f->n) {
			/* Only the edge runs matter: the start one may finish a
			 * run, the end one may begin one. */
			if (s.start && ff_extend(f, base, base + s.start))
				return true;
			f->in_run = s.end != 0;
			f->run_start = end - s.end;
			return false;
		}
	}
	if (ff_visit(f, level - 1, 2 * idx))
		return true;
	return !f->stop && ff_visit(f, level - 1, 2 * idx + 1);
}

uint64_t pages_find_locked(uint64_t npages, uint64_t align, uint64_t lo, uint64_t hi)
{
	unsigned top = mheap_.sum_level;
	uint64_t limit = 1ull << top;
	if (hi > limit)
		hi = limit;
	if (npages == 0 || lo >= hi || npages > hi - lo)
		return PAGE_NONE;
	if (node_get(top, 0).max < npages)
		return PAGE_NONE;
	struct finder f = {.n = npages, .align = align ? align : 1, .lo = lo, .hi = hi};
	if (!ff_visit(&f, top, 0))
		return PAGE_NONE;
	return f.found;
}

/* ---------------------------------------------------------------------------
 * Highest fit (for metadata growth): descend to the run of >= n pages that
 * ends highest and take its top n pages.
 */
static uint64_t top_visit(unsigned level, uint64_t idx, uint64_t n)
{
	if (level == SUM_LEAF_LEVEL) {
		uint64_t w = word_of(idx << SUM_LEAF_LEVEL);
		uint64_t run = 0;
		for (int b = 63; b >= 0; b--) {
			if ((w >> b) & 1) {
				if (++run == n)
					return (idx << SUM_LEAF_LEVEL) + (uint64_t)b;
			} else {
				run = 0;
			}
		}
		return PAGE_NONE;
	}
	struct psum l = node_get(level - 1, 2 * idx), r = node_get(level - 1, 2 * idx + 1);
	if (r.max >= n)
		return top_visit(level - 1, 2 * idx + 1, n);
	if (l.end + r.start >= n)
		return (idx << level) + (1ull << (level - 1)) + r.start - n;
	if (l.max >= n)
		return top_visit(level - 1, 2 * idx, n);
	return PAGE_NONE;
}

uint64_t pages_find_top_locked(uint64_t npages)
{
	unsigned top = mheap_.sum_level;
	if (npages == 0 || node_get(top, 0).max < npages)
		return PAGE_NONE;
	return top_visit(top, 0, npages);
}

/* For the checker: does stored node (level, idx) equal the combination of
 * its children?  Missing nodes are consistent by definition. */
bool sum_node_ok(unsigned level, uint64_t idx)
{
	if (level > mheap_.sum_level)
		return true; /* not kept */
	struct psum *p = node_ptr(level, idx);
	if (!p)
		return true;
	struct psum v = sum_combine(node_get(level - 1, 2 * idx), node_get(level - 1, 2 * idx + 1),
	                            1ull << (level - 1));
	return v.start == p->start && v.max == p->max && v.end == p->end;
}
