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
 *     levels 15..26  in each l2_sums       (4095 nodes; one per chunk)
 *     levels 27..36  in the page heap      (1023 nodes)
 * A node in a missing arena or chunk reads as all in use {0, 0, 0}.  A
 * shared (lazy) arena's nodes are the image's: all free.
 *
 * The hull: nodes are kept only up to level H = h->sum_level, the
 * smallest level (>= 14) with every managed pfn < 2^H.  Above it node
 * (L, 0) reads as node (H, 0) with end 0 and every other node as all in
 * use, which is what storing them would give.  So an update or a search
 * walks H - 6 levels, not 30: 12 for a 1 GiB map, 22 for 1 TiB.  Hot-add
 * above the hull raises H, computing the new (L, 0) nodes first.
 *
 * Alignment.  A node whose longest run is long enough may still hold no
 * run that starts at a multiple of the alignment (every fourth page in use
 * leaves runs of 3 everywhere and no free page at a multiple of 4), and a
 * search that prunes by the longest run alone then looks at every word.
 * So a node also keeps its aligned summaries: amax_k, the longest free
 * run inside it that starts at a multiple of 2^k pages, for each
 * 1 <= k < L (below, "Aligned summaries"; 1777 u16 per arena, 38 KiB per
 * l2_sums, 33 KiB in the page heap).
 *
 * Invariant, for every kept node n at level L (7 <= L <= H) with children
 * a, b:
 *     n == combine(a, b, 2^(L-1)),  amax(n) == amax_merge(a, b)
 * Updates walk up from the changed words and stop at the first level with
 * no change; inside an arena they index its bitmap and heap-ordered sum[]
 * and amax[] directly and recompute only the aligned entries that can
 * have changed (arena_sum_update): a single page taken from or given back
 * to a long run changes every level's summary but few lanes.
 *
 * Search walks the tree in address order from the hull's root, skipping
 * every node wholly inside the window [lo, hi) that holds no fit: one
 * whose longest run is too short or, for alignment 2^k, whose amax_k is.
 *
 * Cost, in steps (pages_find_steps: a node entered, or one summary read):
 * a node wholly inside the window that is not skipped holds a fit, so the
 * search ends inside it (in it, or earlier in address order); only nodes
 * that cross lo or hi are entered without that promise.  So per level the
 * search enters at most the node on lo's path and its sibling, the node on
 * hi's path and its sibling, and two children of the node that holds the
 * fit: 6.  An entered node reads its summary and at most one amax_k, which
 * costs 1 read where it is stored and at most 1 + 2 + 4 = 7 where it is
 * computed from the stored level two below.  Plus the root's check (7):
 *     steps <= 48 * (H - 5) + 7,  H - 5 = the levels walked, words included
 * (12 per level where every level is stored, i.e. inside an arena).  An
 * update recomputes, per level it walks, the changed nodes' summaries and
 * at most their L - 1 aligned entries: O((H - 6) * H) word operations,
 * stopping early as above.  tests/test_pagealloc.c measures the search on
 * the worst case at 64 MiB .. 1 GiB.
 *
 * Each node has its own tree (struct pageheap, its own lock): it covers
 * the arenas the node owns (l2_chunk.owner), and reads every other arena
 * as all in use (arena_of_heap), so two heaps never share a node of the
 * tree and a run never crosses from one heap's arena into another's.  A
 * heap's levels 15..26 are its l2_sums per chunk, 27..36 its own.
 * Everything here runs under the lock of the heap it is given (or, for
 * pages_set_locked, of the heap that owns the pages).
 */
#include "mtypes.h"

/* Work counters for the tests and the latency harness, whose cost bounds
 * are in steps, not time.  [heap]
 *   find_steps          a node a search entered, or one summary it read
 *   update_steps        a bitmap word set, a node recomputed (a stored
 *                       node's aligned entries computed from the levels
 *                       below count each level's merge), an arena joined */
uint64_t pages_find_steps(void)
{
	uint64_t n = 0;
	for (unsigned k = 0; k < mheap_.nnodes; k++)
		n += mheap_.heap[k]->find_steps;
	return n;
}

uint64_t pages_update_steps(void)
{
	uint64_t n = mheap_.update_steps;
	for (unsigned k = 0; k < mheap_.nnodes; k++)
		n += mheap_.heap[k]->update_steps;
	return n;
}

/* The arena of pfn if h owns it, else NULL: another heap's arena reads as
 * all in use, so a heap's tree sees only its own pages. */
static inline __attribute__((always_inline)) struct heap_arena *arena_of_heap(const struct pageheap *h,
                                                                            uint64_t pfn)
{
	struct l2_chunk *c = chunk_of_pfn(pfn);
	if (!c)
		return NULL;
	uint64_t i = (pfn >> SUM_ARENA_TOP) & (L2_ENTRIES - 1);
	return c->owner[i] == h->node ? atomic_load_explicit(&c->arenas[i], memory_order_relaxed)
	                              : NULL;
}

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
 * Level must be in 7..36; above h->sum_level the node is not kept.
 * (node_ptr and node_get inline into the walks; sum_ptr and sum_get are
 * the same for the checker and the tests.) */
static inline __attribute__((always_inline)) struct psum *node_ptr(struct pageheap *h, unsigned level, uint64_t idx)
{
	uint64_t pfn = idx << level;
	if (level <= SUM_ARENA_TOP) {
		struct heap_arena *a = arena_of_heap(h, pfn);
		return a ? &a->sum[tier_index(level, idx, SUM_ARENA_TOP)] : NULL;
	}
	if (level <= SUM_L2_TOP) {
		struct l2_sums *c = h->l2[pfn >> SUM_L2_TOP];
		return c ? &c->sum[tier_index(level, idx, SUM_L2_TOP)] : NULL;
	}
	return &h->sum[tier_index(level, idx, SUM_TOP)];
}

struct psum *sum_ptr(struct pageheap *h, unsigned level, uint64_t idx)
{
	return node_ptr(h, level, idx);
}

static inline uint64_t word_of(struct pageheap *h, uint64_t pfn)
{
	struct heap_arena *a = arena_of_heap(h, pfn);
	return a ? a->pagebits[(pfn & (ARENA_PAGES - 1)) >> 6] : 0;
}

/* Above the hull: node (L, 0) is the hull's root with end 0, every other
 * node is all in use. */
static __attribute__((noinline)) struct psum above_hull(struct pageheap *h, uint64_t idx)
{
	struct psum s = {0, 0, 0};
	if (idx == 0) {
		struct psum *p = node_ptr(h, h->sum_level, 0);
		if (p)
			s = *p;
		s.end = 0;
	}
	return s;
}

static inline __attribute__((always_inline)) struct psum node_get(struct pageheap *h, unsigned level, uint64_t idx)
{
	if (level == SUM_LEAF_LEVEL)
		return word_sum(word_of(h, idx << SUM_LEAF_LEVEL));
	if (level > h->sum_level)
		return above_hull(h, idx);
	struct psum *p = node_ptr(h, level, idx);
	if (p)
		return *p;
	struct psum z = {0, 0, 0};
	return z;
}

struct psum sum_get(struct pageheap *h, unsigned level, uint64_t idx)
{
	return node_get(h, level, idx);
}

/* ---------------------------------------------------------------------------
 * Aligned summaries.  For a node N at level L and 1 <= k < L,
 *     amax_k(N) = the longest free run inside N (cut at N's end) that
 *                 starts at a multiple of 2^k pages.
 * For k = 0 it is max; for k >= L only N's base can be aligned, so it is
 * start (or 0 if the base is not a multiple of 2^k).  From the children
 * l, r (level L-1), for k < L:
 *     amax_k(N) = max(amax_k(l), amax_k(r), cross),
 *     cross     = floor(l.end / 2^k) * 2^k + r.start  if l.end >= 2^k
 * (the aligned start furthest left in l's end run, continued into r; the
 * midpoint is a multiple of 2^k).  A word's come from its bits
 * (amax_of_word).  Stored levels: 7..14 in the arena (u16), 17, 20, 23
 * and 26 in the l2_sums (u32), 29, 32 and 35 in the page heap; a level in
 * between is computed from the stored level below it, at most two levels
 * down (at most 7 node reads).
 */
#define AMAX_STRIDE 3

static const uint16_t amax_off[SUM_TOP + 1] = {
	[7] = 0, [8] = 1024, [9] = 1536, [10] = 1920, [11] = 2112, [12] = 2208,
	[13] = 2256, [14] = 2288,                        /* arena: 2304 */
	[17] = 0, [20] = 8192, [23] = 9408, [26] = 9584, /* chunk: 9609 */
	[29] = 0, [32] = 3584, [35] = 4080,              /* mheap: 4148 */
};

static inline bool amax_stored(unsigned level)
{
	return level <= SUM_ARENA_TOP || (level - SUM_ARENA_TOP) % AMAX_STRIDE == 0;
}

/* Entries a stored node takes: in an arena whole words of four 16-bit
 * lanes (lane k-1 holds amax_k, lane L-1 and up the node's start), above
 * it L - 1. */
static inline unsigned amax_width(unsigned level)
{
	return level > SUM_ARENA_TOP ? level - 1 : (level + 3) & ~3u;
}

/* Index of node (level, idx)'s first entry (k = 1) in its tier's array. */
static inline uint64_t amax_index(unsigned level, uint64_t idx, unsigned top)
{
	return amax_off[level] + (idx & ((1ull << (top - level)) - 1)) * amax_width(level);
}

/* Longest run of ones in x, by doubling: y[j] has bit p set iff bits
 * p .. p + 2^j - 1 of x are, and the length is built bit by bit. */
static unsigned longest_ones(uint64_t x)
{
	if (x == ~0ull)
		return 64;
	uint64_t y[6];
	y[0] = x;
	for (unsigned j = 1; j < 6; j++)
		y[j] = y[j - 1] & (y[j - 1] >> (1u << (j - 1)));
	uint64_t cur = x ? ~0ull : 0; /* positions with a run of >= n from them */
	unsigned n = 0;
	for (int j = 5; j >= 0 && cur; j--) {
		uint64_t c = cur & (y[j] >> n);
		if (c) {
			cur = c;
			n += 1u << j;
		}
	}
	return n;
}

/* amax_k of a word, 1 <= k <= 5.  Keep a free page only if every page from
 * the multiple of 2^k below it is free: what is left are the aligned-start
 * runs, each as long as the free run from its start.  Built k times by
 * doubling within groups of 2^k bits. */
uint64_t amax_of_word(uint64_t w, unsigned k)
{
	if (w == 0 || w == ~0ull)
		return w ? 64 : 0;
	unsigned g = 1u << k;
	uint64_t group = (1ull << g) - 1, rep = ~0ull / group;
	for (unsigned j = 0; j < k; j++) {
		unsigned s = 1u << j;
		uint64_t high = rep * (group ^ ((1ull << s) - 1)); /* offset in group >= s */
		w &= (w << s) | ~high;
	}
	return longest_ones(w);
}

/* Above the arenas the entries of an all-free or an all-used node are not
 * kept (they are all the node's size, or 0): init and hot-add write no
 * entry for memory nobody has used (as they write no arena), and a new L2
 * chunk's entries need not be cleared.  Returns whether they are implied,
 * and their value. */
static inline bool node_implied(struct pageheap *h, unsigned level, uint64_t idx, uint64_t *v)
{
	if (level <= SUM_ARENA_TOP)
		return false;
	struct psum s = node_get(h, level, idx);
	if (s.start == 1ull << level || s.max == 0) {
		*v = s.max;
		return true;
	}
	return false;
}

/* Entries k = 1 .. level-1 of a stored node; zeros where its arena or
 * chunk is missing. */
static void amax_load(struct pageheap *h, unsigned level, uint64_t idx, uint64_t *out)
{
	unsigned nk = level - 1;
	uint64_t pfn = idx << level;
	uint64_t all;
	if (node_implied(h, level, idx, &all)) {
		for (unsigned k = 0; k < nk; k++)
			out[k] = all;
		return;
	}
	if (level <= SUM_ARENA_TOP) {
		struct heap_arena *a = arena_of_heap(h, pfn);
		const uint16_t *p = a ? &a->amax[amax_index(level, idx, SUM_ARENA_TOP)] : NULL;
		for (unsigned k = 0; k < nk; k++)
			out[k] = p ? p[k] : 0;
	} else if (level <= SUM_L2_TOP) {
		struct l2_sums *c = h->l2[pfn >> SUM_L2_TOP];
		const uint32_t *p = c ? &c->amax[amax_index(level, idx, SUM_L2_TOP)] : NULL;
		for (unsigned k = 0; k < nk; k++)
			out[k] = p ? p[k] : 0;
	} else {
		memcpy(out, &h->amax[amax_index(level, idx, SUM_TOP)], nk * sizeof(uint64_t));
	}
}

/* Writes a stored node's entries above the arenas (its chunk exists);
 * returns whether any differed. */
static bool amax_store(struct pageheap *h, unsigned level, uint64_t idx, const uint64_t *v)
{
	unsigned nk = level - 1;
	uint64_t pfn = idx << level;
	bool changed = false;
	KASSERT(level > SUM_ARENA_TOP); /* arenas: arena_sum_update */
	if (level <= SUM_L2_TOP) {
		struct l2_sums *c = h->l2[pfn >> SUM_L2_TOP];
		uint32_t *p = &c->amax[amax_index(level, idx, SUM_L2_TOP)];
		for (unsigned k = 0; k < nk; k++)
			if (p[k] != v[k]) {
				p[k] = (uint32_t)v[k];
				changed = true;
			}
	} else {
		uint64_t *p = &h->amax[amax_index(level, idx, SUM_TOP)];
		for (unsigned k = 0; k < nk; k++)
			if (p[k] != v[k]) {
				p[k] = v[k];
				changed = true;
			}
	}
	return changed;
}

/* out[k-1] = amax_k of a node at `level` for k = 1 .. level-1, from its
 * children's summaries and entries (lv, rv: k = 1 .. level-2). */
static void amax_merge(unsigned level, struct psum l, struct psum r, const uint64_t *lv,
                       const uint64_t *rv, uint64_t *out)
{
	unsigned nk = level - 1;
	for (unsigned k = 1; k <= nk; k++) {
		uint64_t x = k < nk ? lv[k - 1] : l.start, y = k < nk ? rv[k - 1] : r.start;
		uint64_t v = x > y ? x : y, q = l.end >> k;
		if (q && (q << k) + r.start > v)
			v = (q << k) + r.start;
		out[k - 1] = v;
	}
}

static void amax_vec(struct pageheap *h, unsigned level, uint64_t idx, uint64_t *out);

/* A node's entries computed from its children.  An all-free or all-used
 * node needs no look below (init and hot-add make many of them). */
static void amax_compute(struct pageheap *h, unsigned level, uint64_t idx, uint64_t *out)
{
	h->update_steps++;
	struct psum l = node_get(h, level - 1, 2 * idx), r = node_get(h, level - 1, 2 * idx + 1);
	uint64_t half = 1ull << (level - 1);
	if ((l.start == half && r.start == half) || (l.max == 0 && r.max == 0)) {
		for (unsigned k = 0; k + 1 < level; k++)
			out[k] = l.max ? 2 * half : 0;
		return;
	}
	uint64_t lv[SUM_TOP], rv[SUM_TOP];
	amax_vec(h, level - 1, 2 * idx, lv);
	amax_vec(h, level - 1, 2 * idx + 1, rv);
	amax_merge(level, l, r, lv, rv, out);
}

/* A node's entries, stored or computed (level <= sum_level). */
static void amax_vec(struct pageheap *h, unsigned level, uint64_t idx, uint64_t *out)
{
	if (level == SUM_LEAF_LEVEL) {
		uint64_t w = word_of(h, idx << SUM_LEAF_LEVEL);
		for (unsigned k = 1; k < SUM_LEAF_LEVEL; k++)
			out[k - 1] = amax_of_word(w, k);
	} else if (amax_stored(level)) {
		amax_load(h, level, idx, out);
	} else {
		amax_compute(h, level, idx, out);
	}
}

/* amax_k of one node, any k: what the search reads.  Each node read
 * counts a step. */
static uint64_t amax_get(struct pageheap *h, unsigned level, uint64_t idx, unsigned k)
{
	h->find_steps++;
	if (k == 0)
		return node_get(h, level, idx).max;
	if (k >= level)
		return (idx << level) & ((1ull << k) - 1) ? 0 : node_get(h, level, idx).start;
	if (level == SUM_LEAF_LEVEL)
		return amax_of_word(word_of(h, idx << SUM_LEAF_LEVEL), k);
	if (level > h->sum_level)
		return idx ? 0 : amax_get(h, h->sum_level, 0, k);
	if (amax_stored(level)) {
		uint64_t pfn = idx << level, all;
		if (node_implied(h, level, idx, &all))
			return all;
		if (level <= SUM_ARENA_TOP) {
			struct heap_arena *a = arena_of_heap(h, pfn);
			return a ? a->amax[amax_index(level, idx, SUM_ARENA_TOP) + k - 1] : 0;
		}
		if (level <= SUM_L2_TOP) {
			struct l2_sums *c = h->l2[pfn >> SUM_L2_TOP];
			return c ? c->amax[amax_index(level, idx, SUM_L2_TOP) + k - 1] : 0;
		}
		return h->amax[amax_index(level, idx, SUM_TOP) + k - 1];
	}
	uint64_t x = amax_get(h, level - 1, 2 * idx, k), y = amax_get(h, level - 1, 2 * idx + 1, k);
	uint64_t v = x > y ? x : y;
	uint64_t q = node_get(h, level - 1, 2 * idx).end >> k;
	if (q) {
		uint64_t c = (q << k) + node_get(h, level - 1, 2 * idx + 1).start;
		if (c > v)
			v = c;
	}
	return v;
}

uint64_t amax_get_locked(struct pageheap *h, unsigned level, uint64_t idx, unsigned k)
{
	return amax_get(h, level, idx, k);
}

/* A stored node's aligned entries from its children (out of line: most
 * nodes init and hot-add touch are all free and skip it). */
static __attribute__((noinline)) bool amax_refresh(struct pageheap *h, unsigned level, uint64_t idx)
{
	uint64_t a[SUM_TOP];
	amax_compute(h, level, idx, a);
	return amax_store(h, level, idx, a);
}

/* Recomputes node (level, idx) (level > 14) from its children: *pch
 * whether its summary changed, return whether its aligned entries (if
 * stored and not implied) did. */
static inline __attribute__((always_inline)) bool node_refresh(struct pageheap *h, unsigned level, uint64_t idx,
                                                               bool *pch)
{
	h->update_steps++;
	struct psum *p = node_ptr(h, level, idx);
	if (!p)
		return false;
	struct psum v = sum_combine(node_get(h, level - 1, 2 * idx), node_get(h, level - 1, 2 * idx + 1),
	                            1ull << (level - 1));
	if (v.start != p->start || v.max != p->max || v.end != p->end) {
		*p = v;
		*pch = true;
	}
	if (!amax_stored(level) || v.start == 1ull << level || v.max == 0)
		return false; /* implied (node_implied) */
	return amax_refresh(h, level, idx);
}

/* Recomputes the summaries at levels from..sum_level above pages
 * [pfn, pfn+n).  With `all` false it stops at the first level where no
 * node changed (the levels above cannot change either): a level whose
 * aligned entries are not stored counts as changed while the level below
 * it changed, as they are computed from it. */
static void sum_update(struct pageheap *h, uint64_t pfn, uint64_t n, unsigned from, bool all)
{
	uint64_t last = pfn + n - 1;
	bool below = true; /* the level below changed (summaries or entries) */
	for (unsigned level = from; level <= h->sum_level; level++) {
		bool pch = false, ach = false;
		for (uint64_t i = pfn >> level; i <= last >> level; i++)
			if (node_refresh(h, level, i, &pch))
				ach = true;
		bool changed = pch || (amax_stored(level) ? ach : below);
		if (!changed && !all)
			return;
		below = changed;
	}
}

/* Arena levels update their aligned entries four 16-bit lanes to a
 * 64-bit word (no vector registers: the allocator runs where a kernel
 * saves none).  Every value is at most 2^14, so with a guard bit on top of
 * each lane a subtraction compares four lanes at once without a borrow
 * crossing lanes. */
#define LANE_ONES 0x0001000100010001ull
#define LANE_HIGH 0x8000800080008000ull

/* 0xffff in every lane whose guard bit is set in h (and nothing else). */
static inline uint64_t lane_mask(uint64_t h)
{
	return (h - (h >> 15)) | h;
}

/* ~(2^k - 1) in lane k-1: the part of a run that whole 2^k blocks make. */
static const uint64_t lane_blocks[4] = {
	0xfff0fff8fffcfffeull, 0xff00ff80ffc0ffe0ull, 0xf000f800fc00fe00ull, 0x00008000c000e000ull};

/* Per arena level (7..14): lanes k >= level, where a node keeps its start. */
static const uint64_t lane_pad[SUM_ARENA_TOP + 1][4] = {
	[7] = {0, 0xffffffff00000000ull, ~0ull, ~0ull},
	[8] = {0, 0xffff000000000000ull, ~0ull, ~0ull},
	[9] = {0, 0, ~0ull, ~0ull},
	[10] = {0, 0, 0xffffffffffff0000ull, ~0ull},
	[11] = {0, 0, 0xffffffff00000000ull, ~0ull},
	[12] = {0, 0, 0xffff000000000000ull, ~0ull},
	[13] = {0, 0, 0, ~0ull},
	[14] = {0, 0, 0, 0xffffffffffff0000ull},
};

/* Lanes k = 4g+1 .. 4g+4 of a node from its children's x, y: max(x, y,
 * cross) where k < the node's level, its start where `pad`.  lend, rstart
 * and start are splat over the lanes. */
static inline uint64_t lanes_merge(uint64_t x, uint64_t y, uint64_t blocks, uint64_t pad,
                                   uint64_t lend, uint64_t rstart, uint64_t start)
{
	uint64_t v = y ^ ((x ^ y) & lane_mask(((x | LANE_HIGH) - y) & LANE_HIGH)); /* max */
	/* Across: whole 2^k blocks of l's end, then r's start.  Where l's
	 * end holds no block t is r's start, which y (r's amax_k, with r's
	 * base aligned) already covers: no need to test for it. */
	uint64_t t = (lend & blocks) + rstart;
	v ^= (t ^ v) & lane_mask(((t | LANE_HIGH) - v - LANE_ONES) & LANE_HIGH); /* t > v */
	return v ^ ((start ^ v) & pad);
}

static inline uint64_t lanes_load(const uint16_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* The lane words (bit g: k = 4g+1 .. 4g+4) whose whole 2^k blocks of an
 * end run differ between two ends whose xor is x (nonzero). */
static inline unsigned end_lanes(uint64_t x)
{
	unsigned top = 63 - clz64(x); /* k <= top see a different block count */
	return top ? (2u << ((top - 1) / 4)) - 1 : 0;
}

/* The same inside one arena, for its pages [i, j) (arena-relative),
 * indexing its bitmap, heap-ordered sum[] and amax[] directly (its words'
 * entries are current).  Returns whether the arena's root (level 14)
 * changed.  Level L's nodes start at heap index 2^(14-L) - 1, so level
 * L-1's start at twice that plus one.
 *
 * A lane word of a node is a function of the same lane word of its
 * children (or their start, beyond their width), of the children's and
 * its own start and, through the cross term, of l.end's whole 2^k
 * blocks.  So only the lane words that changed on the level below
 * (`redo`) can change here, all of them where a start changed, and the
 * lanes k <= the top bit of (old end ^ new end) where an end did.  A page
 * taken from (or given back to) a long free run changes every level's
 * longest run and end run by one page, which moves no 2^k block: the
 * walk up then touches only the lanes k <= the page's alignment.  The
 * stored lanes equal the merge of the stored children (the invariant
 * sum_node_ok checks; an all-free or all-used node's merge is its
 * uniform value), so the words skipped are already right. */
static inline __attribute__((always_inline)) bool arena_level(struct heap_arena *a, unsigned level,
                                                              uint64_t k, uint64_t last,
                                                              unsigned *redo, uint64_t *steps)
{
	uint64_t first = (1ull << (SUM_ARENA_TOP - level)) - 1, child = 2 * first + 1;
	unsigned nw = amax_width(level) / 4, cnw = amax_width(level - 1) / 4;
	uint16_t *am = &a->amax[amax_off[level]];
	const uint16_t *cam = &a->amax[amax_off[level - 1]];
	const uint64_t *pad = lane_pad[level];
	unsigned todo = *redo & ((1u << nw) - 1), next = 0;
	bool changed = false;
	*steps += last - k + 1;
	do { /* nodes k .. last; one, at compile time, where last is k */
		struct psum l, r;
		uint64_t x[4], y[4];
		if (level == SUM_LEAF_LEVEL + 1) {
			/* words: 5 entries, then their start from k = 6 */
			const uint8_t *el = a->wamax[2 * k], *er = a->wamax[2 * k + 1];
			l = word_sum(a->pagebits[2 * k]);
			r = word_sum(a->pagebits[2 * k + 1]);
			x[0] = el[0] | (uint64_t)el[1] << 16 | (uint64_t)el[2] << 32 | (uint64_t)el[3] << 48;
			y[0] = er[0] | (uint64_t)er[1] << 16 | (uint64_t)er[2] << 32 | (uint64_t)er[3] << 48;
			x[1] = el[4] | l.start * (LANE_ONES << 16);
			y[1] = er[4] | r.start * (LANE_ONES << 16);
		} else {
			l = a->sum[child + 2 * k];
			r = a->sum[child + 2 * k + 1];
		}
		struct psum s = sum_combine(l, r, 1ull << (level - 1));
		struct psum *p = &a->sum[first + k];
		if (s.start != p->start || s.max != p->max || s.end != p->end) {
			if (s.start != p->start)
				next = ~0u;
			else if (s.end != p->end)
				next |= end_lanes(s.end ^ p->end);
			*p = s;
			changed = true;
		}
		if (!todo)
			continue; /* to the next node: its summary was all that changed */
		uint64_t lend = l.end * LANE_ONES, rstart = r.start * LANE_ONES;
		uint64_t start = s.start * LANE_ONES;
		uint16_t *d = &am[k * nw * 4];
		for (unsigned m = todo; m; m &= m - 1) {
			unsigned g = ctz64(m);
			if (level > SUM_LEAF_LEVEL + 1) { /* beyond a child's lanes: its start */
				x[g] = g < cnw ? lanes_load(&cam[(2 * k * cnw + g) * 4]) : l.start * LANE_ONES;
				y[g] = g < cnw ? lanes_load(&cam[((2 * k + 1) * cnw + g) * 4]) : r.start * LANE_ONES;
			}
			uint64_t v = lanes_merge(x[g], y[g], lane_blocks[g], pad[g], lend, rstart, start);
			if (lanes_load(&d[4 * g]) != v) {
				memcpy(&d[4 * g], &v, sizeof(v));
				next |= 1u << g;
				changed = true;
			}
		}
	} while (k++ < last);
	*redo = next;
	return changed;
}

/* One level at a time, each inlined with its constants (the lane widths,
 * offsets and masks), stopping at the first level with no change; pages
 * [i, last] (arena-relative). */
_Static_assert(SUM_ARENA_TOP == 14, "arena_levels walks levels 7..14");
static inline __attribute__((always_inline)) bool arena_levels(struct pageheap *h,
                                                               struct heap_arena *a, uint64_t i,
                                                               uint64_t last, unsigned redo)
{
	/* redo: lane words (bit g) to recompute on the next level */
	uint64_t steps = 0;  /* counted here: the stores to sum[] could alias it */
	bool changed = arena_level(a, 7, i >> 7, last >> 7, &redo, &steps) &&
	               arena_level(a, 8, i >> 8, last >> 8, &redo, &steps) &&
	               arena_level(a, 9, i >> 9, last >> 9, &redo, &steps) &&
	               arena_level(a, 10, i >> 10, last >> 10, &redo, &steps) &&
	               arena_level(a, 11, i >> 11, last >> 11, &redo, &steps) &&
	               arena_level(a, 12, i >> 12, last >> 12, &redo, &steps) &&
	               arena_level(a, 13, i >> 13, last >> 13, &redo, &steps) &&
	               arena_level(a, 14, i >> 14, last >> 14, &redo, &steps);
	h->update_steps += steps;
	return changed;
}

/* A change inside one level-7 node (a page, or a few in a word pair) has
 * one node per level: its own copy, without the loops.  `redo`: the lane
 * words of the level-7 nodes its words' changes reach (word_entries). */
static bool arena_sum_update(struct pageheap *h, struct heap_arena *a, uint64_t i, uint64_t j,
                             unsigned redo)
{
	if ((i ^ (j - 1)) >> 7 == 0)
		return arena_levels(h, a, i, i, redo);
	return arena_levels(h, a, i, j - 1, redo);
}

void sums_above_arenas_locked(struct pageheap *h, uint64_t pfn, uint64_t npages)
{
	sum_update(h, pfn, npages, SUM_ARENA_TOP + 1, true);
}

/* Raises the hull to cover pages below end_pfn: the nodes (L, 0) for the
 * new levels are computed from their children (the right ones cover no
 * managed page yet and are stored as all in use). */
void pages_grow_hull_locked(struct pageheap *h, uint64_t end_pfn)
{
	while (h->sum_level < SUM_TOP && (end_pfn - 1) >> h->sum_level) {
		unsigned level = h->sum_level + 1;
		bool pch = false;
		node_refresh(h, level, 0, &pch);
		h->sum_level = level;
	}
}

/* The free runs at a word's start and end, in pages. */
static inline unsigned word_start(uint64_t x)
{
	return x == ~0ull ? 64 : ctz64(~x);
}

static inline unsigned word_end(uint64_t x)
{
	return x == ~0ull ? 64 : clz64(~x);
}

/* A word's aligned entries, after its bits changed from `old`; returns
 * the lane words of its level-7 node that can change (arena_levels'
 * `redo`).  A word with one run [s, e) of free pages (the common case:
 * pages are taken and given back in runs) needs no bit work:
 * e - align_up(s, 2^k). */
static inline unsigned word_entries(struct heap_arena *a, uint64_t w, uint64_t old)
{
	uint64_t x = a->pagebits[w];
	uint8_t *d = a->wamax[w];
	uint64_t v = 0, was = 0;
	for (unsigned k = 0; k < AMAX_WORD_ENTRIES; k++)
		was |= (uint64_t)d[k] << (8 * k);
	if (x == ~0ull || x == 0) {
		v = x ? 0x4040404040ull : 0; /* 64 or 0 each */
	} else if (((x >> ctz64(x)) & ((x >> ctz64(x)) + 1)) == 0) {
		/* All five at once, a byte each (k = 1..5 from the low one):
		 * a = s rounded up to 2^k, then e - a where e >= a, with a
		 * guard bit per byte; no byte carries (s + 31, a <= 94 and
		 * e <= 64 stay under 128). */
		const uint64_t ones = 0x0101010101ull, low = 0x1f0f070301ull, guard = 0x8080808080ull;
		uint64_t s = ctz64(x), e = 64 - clz64(x);
		uint64_t a0 = (s * ones + low) & ~low;
		v = ((e * ones) | guard) - a0;
		v &= ((v & guard) >> 7) * 0x7f; /* e - a where e >= a, else 0 */
	} else {
		for (unsigned k = 1; k <= AMAX_WORD_ENTRIES; k++)
			v |= amax_of_word(x, k) << (8 * (k - 1));
	}
	for (unsigned k = 0; k < AMAX_WORD_ENTRIES; k++)
		d[k] = (uint8_t)(v >> (8 * k));
	/* Entries 1..4 are the node's lane word 0, entry 5 is in word 1; a
	 * word's start feeds every lane, its end the cross terms. */
	unsigned redo = ((v ^ was) & 0xffffffffull ? 1u : 0) | ((v ^ was) >> 32 ? 2u : 0);
	if (word_start(x) != word_start(old))
		return ~0u;
	if (word_end(x) != word_end(old))
		redo |= end_lanes(word_end(x) ^ word_end(old));
	return redo;
}

void pages_set_locked(uint64_t pfn, uint64_t npages, bool free)
{
	uint64_t p = pfn, end = pfn + npages;
	bool above = false;
	struct pageheap *h = heap_of_pfn(pfn);
	while (p < end) {
		KASSERT(arena_owner(p) == (int)h->node); /* one heap's pages */
		struct heap_arena *a = arena_own_locked(p);
		uint64_t stop = (p | (ARENA_PAGES - 1)) + 1;
		if (stop > end)
			stop = end;
		uint64_t i0 = p & (ARENA_PAGES - 1);
		unsigned redo = 0;
		while (p < stop) { /* a word at a time */
			uint64_t i = p & (ARENA_PAGES - 1);
			uint64_t w = i >> 6, b = i & 63;
			uint64_t cnt = 64 - b < stop - p ? 64 - b : stop - p;
			uint64_t mask = (cnt == 64 ? ~0ull : ((1ull << cnt) - 1)) << b;
			uint64_t old = a->pagebits[w];
			if (free) {
				KASSERT((a->pagebits[w] & mask) == 0);
				a->pagebits[w] |= mask;
			} else {
				KASSERT((a->pagebits[w] & mask) == mask);
				a->pagebits[w] &= ~mask;
			}
			redo |= word_entries(a, w, old);
			h->update_steps++;
			p += cnt;
		}
		if (arena_sum_update(h, a, i0, ((stop - 1) & (ARENA_PAGES - 1)) + 1, redo))
			above = true;
	}
	if (above)
		sum_update(h, pfn, npages, SUM_ARENA_TOP + 1, false);
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
	struct pageheap *h;
	uint64_t n, align, lo, hi;
	unsigned k; /* align == 2^k */
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
	uint64_t w = word_of(f->h, base);
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

enum { FF_DONE, FF_FOUND, FF_DESCEND };

/* One node of the walk: found a fit, done with it (nothing in it, or its
 * edge runs taken into the walk's run), or enter its children. */
static inline __attribute__((always_inline)) int ff_node(struct finder *f, unsigned level,
                                                         uint64_t idx)
{
	struct pageheap *h = f->h;
	h->find_steps++;
	uint64_t base = idx << level, size = 1ull << level, end = base + size;
	if (end <= f->lo)
		return FF_DONE;
	if (base >= f->hi) {
		f->stop = true;
		return FF_DONE;
	}
	if (level == SUM_LEAF_LEVEL)
		return ff_word(f, base) ? FF_FOUND : FF_DONE;
	if (base >= f->lo && end <= f->hi) {
		struct psum s = node_get(h, level, idx);
		if (s.start == size)
			return ff_extend(f, base, end) ? FF_FOUND : FF_DONE;
		if (s.max < f->n || (f->k && amax_get(h, level, idx, f->k) < f->n)) {
			/* No fit lies inside: only the edge runs matter, the
			 * start one may finish a run, the end one may begin
			 * one. */
			if (s.start && ff_extend(f, base, base + s.start))
				return FF_FOUND;
			f->in_run = s.end != 0;
			f->run_start = end - s.end;
			return FF_DONE;
		}
	}
	return FF_DESCEND;
}

/* Depth first from node (top, 0), children in address order, without
 * recursion: from a node done, the next is the right sibling of the
 * nearest left child on the way up. */
static bool ff_walk(struct finder *f, unsigned top)
{
	unsigned level = top;
	uint64_t idx = 0;
	for (;;) {
		int r = ff_node(f, level, idx);
		if (r == FF_FOUND)
			return true;
		if (r == FF_DESCEND) {
			level--;
			idx *= 2;
			continue;
		}
		if (f->stop)
			return false;
		while (idx & 1) {
			idx >>= 1;
			level++;
		}
		if (level >= top)
			return false;
		idx++;
	}
}

uint64_t pages_find_locked(struct pageheap *h, uint64_t npages, uint64_t align, uint64_t lo, uint64_t hi)
{
	unsigned top = h->sum_level;
	uint64_t limit = 1ull << top;
	if (hi > limit)
		hi = limit;
	if (npages == 0 || lo >= hi || npages > hi - lo)
		return PAGE_NONE;
	struct finder f = {.h = h, .n = npages, .align = align ? align : 1, .lo = lo, .hi = hi};
	f.k = ctz64(f.align);
	if (f.k > SUM_TOP)
		return PAGE_NONE; /* only pfn 0 is aligned, and it is never managed */
	if (node_get(h, top, 0).max < npages || (f.k && amax_get(h, top, 0, f.k) < npages))
		return PAGE_NONE;
	if (!ff_walk(&f, top))
		return PAGE_NONE;
	return f.found;
}

/* ---------------------------------------------------------------------------
 * Highest fit (for metadata growth): descend to the run of >= n pages that
 * ends highest and take its top n pages.
 */
static uint64_t top_visit(struct pageheap *h, unsigned level, uint64_t idx, uint64_t n)
{
	if (level == SUM_LEAF_LEVEL) {
		uint64_t w = word_of(h, idx << SUM_LEAF_LEVEL);
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
	struct psum l = node_get(h, level - 1, 2 * idx), r = node_get(h, level - 1, 2 * idx + 1);
	if (r.max >= n)
		return top_visit(h, level - 1, 2 * idx + 1, n);
	if (l.end + r.start >= n)
		return (idx << level) + (1ull << (level - 1)) + r.start - n;
	if (l.max >= n)
		return top_visit(h, level - 1, 2 * idx, n);
	return PAGE_NONE;
}

uint64_t pages_find_top_locked(struct pageheap *h, uint64_t npages)
{
	unsigned top = h->sum_level;
	if (npages == 0 || node_get(h, top, 0).max < npages)
		return PAGE_NONE;
	return top_visit(h, top, 0, npages);
}

/* top_visit within pfns [lo, hi): a node wholly inside is top_visit's;
 * one the window cuts descends on both sides, so O(log) nodes are cut. */
static uint64_t top_visit_in(struct pageheap *h, unsigned level, uint64_t idx, uint64_t n, uint64_t lo, uint64_t hi)
{
	uint64_t base = idx << level, end = base + (1ull << level);
	if (end <= lo || base >= hi || node_get(h, level, idx).max < n)
		return PAGE_NONE;
	if (base >= lo && end <= hi)
		return top_visit(h, level, idx, n);
	if (level == SUM_LEAF_LEVEL) {
		uint64_t w = word_of(h, base), run = 0;
		for (uint64_t p = (hi < end ? hi : end); p-- > (lo > base ? lo : base);) {
			run = (w >> (p - base)) & 1 ? run + 1 : 0;
			if (run == n)
				return p;
		}
		return PAGE_NONE;
	}
	uint64_t mid = base + (1ull << (level - 1));
	uint64_t p = top_visit_in(h, level - 1, 2 * idx + 1, n, lo, hi);
	if (p != PAGE_NONE)
		return p;
	struct psum l = node_get(h, level - 1, 2 * idx), r = node_get(h, level - 1, 2 * idx + 1);
	uint64_t top = mid + r.start < hi ? mid + r.start : hi;
	uint64_t bot = mid - l.end > lo ? mid - l.end : lo;
	if (top > bot && top - bot >= n)
		return top - n;
	return top_visit_in(h, level - 1, 2 * idx, n, lo, hi);
}

/* pages_find_top_locked within pfns [lo, hi) (a node's range). */
uint64_t pages_find_top_in_locked(struct pageheap *h, uint64_t npages, uint64_t lo, uint64_t hi)
{
	unsigned top = h->sum_level;
	if (hi > 1ull << top)
		hi = 1ull << top;
	if (npages == 0 || lo >= hi || hi - lo < npages)
		return PAGE_NONE;
	return top_visit_in(h, top, 0, npages, lo, hi);
}

/* For the checker: does stored node (level, idx), and its aligned
 * entries where they are stored, equal the combination of its children?
 * Missing nodes are consistent by definition. */
bool sum_node_ok(struct pageheap *h, unsigned level, uint64_t idx)
{
	if (level > h->sum_level)
		return true; /* not kept */
	struct psum *p = node_ptr(h, level, idx);
	if (!p)
		return true;
	struct psum v = sum_combine(node_get(h, level - 1, 2 * idx), node_get(h, level - 1, 2 * idx + 1),
	                            1ull << (level - 1));
	if (v.start != p->start || v.max != p->max || v.end != p->end)
		return false;
	uint64_t all;
	if (!amax_stored(level) || node_implied(h, level, idx, &all))
		return true;
	if (level == SUM_LEAF_LEVEL + 1) { /* and its words' entries */
		struct heap_arena *a = arena_of_heap(h, idx << level);
		for (uint64_t w = (idx & (ARENA_WORDS / 2 - 1)) * 2; w < (idx & (ARENA_WORDS / 2 - 1)) * 2 + 2; w++)
			for (unsigned k = 1; k <= AMAX_WORD_ENTRIES; k++)
				if (a->wamax[w][k - 1] != amax_of_word(a->pagebits[w], k))
					return false;
	}
	uint64_t want[SUM_TOP], have[SUM_TOP];
	amax_compute(h, level, idx, want);
	amax_load(h, level, idx, have);
	return memcmp(want, have, (level - 1) * sizeof(uint64_t)) == 0;
}
