/*
 * mm/bootmem.c - memory map intake, the metadata region, init and hot-add.
 * See malloc.c for an overview.
 *
 * A boot map is a list of {base, length, type} in any order, overlapping,
 * unaligned.  A byte is usable iff some USABLE region covers it and no
 * region of another type does (reserved holes win).  The managed pages are
 * the whole pages of the usable bytes, except page 0 (its address may be
 * NULL under an identity map) and the metadata region.  No scratch memory
 * exists yet, so the walk is done in place: next_range() finds the lowest
 * usable range at or above an address in O(n^2).
 *
 * Hot-add carves the metadata of the arenas and L2 chunks it adds from the
 * first pages of its own region (kmem_hot_add): those pages are managed
 * and in use as metadata, so no later hot-add can take them again and no
 * client ever gets them; the metadata is counted before anything is
 * written, so a failed hot-add leaves nothing behind.  Arenas it covers
 * whole are shared like init's, with room for their copies in the region.
 *
 * Metadata region layout (carved in this order, all cache-line aligned):
 *     guard page |
 *     mcentral[KMEM_NUM_CLASSES] | mcache[max_cpus] |
 *     l2_chunk and heap_arena for every arena touched (the arena range,
 *     [arena_next, arena_end): arenas the map covers whole are shared
 *     until their first write and copied here then) |
 *     span descriptor reserve (fixalloc), about 1/1024 of managed memory |
 *     guard page
 * The guard pages (the first and last pages the region touches) hold
 * nothing: a client's overflow off the pool page below lands there
 * (fixalloc.c, guard gaps).  Only a guard page wholly inside the region
 * is given to the protect hook: the rest of a partial one is not the
 * allocator's to unmap.  A
 * hot-add's metadata is laid out the same way: guard | chunks and arenas
 * | guard, then the region's pool pages.
 */
#include "mtypes.h"

#define META_SPAN_RESERVE_SHIFT 10 /* reserve = managed bytes >> 10 */
#define META_SPAN_RESERVE_MIN (64 * 1024)

static uint64_t region_end(const struct kmem_region *r)
{
	uint64_t e = r->base + r->length;
	return e < r->base ? UINT64_MAX : e;
}

static bool covers(const struct kmem_region *r, uint64_t x)
{
	return r->length && x >= r->base && x < region_end(r);
}

/* x is usable: covered by a USABLE region and by nothing else, nor by the
 * excluded range [ex_lo, ex_hi). */
static bool usable_at(const struct kmem_config *cfg, uint64_t x, uint64_t ex_lo, uint64_t ex_hi)
{
	bool usable = false;
	if (x >= ex_lo && x < ex_hi)
		return false;
	for (size_t i = 0; i < cfg->nregions; i++) {
		const struct kmem_region *r = &cfg->regions[i];
		if (!covers(r, x))
			continue;
		if (r->type != KMEM_REGION_USABLE)
			return false;
		usable = true;
	}
	return usable;
}

/* The lowest maximal usable byte range [*s, *e) with *s >= from. */
static bool next_range(const struct kmem_config *cfg, uint64_t from, uint64_t ex_lo,
                       uint64_t ex_hi, uint64_t *s, uint64_t *e)
{
	uint64_t best = UINT64_MAX;
	/* A range starts at `from`, at a usable base, or where a blocker ends. */
	if (usable_at(cfg, from, ex_lo, ex_hi))
		best = from;
	for (size_t i = 0; i < cfg->nregions && best != from; i++) {
		const struct kmem_region *r = &cfg->regions[i];
		if (!r->length)
			continue;
		uint64_t c = r->type == KMEM_REGION_USABLE ? r->base : region_end(r);
		if (c >= from && c < best && usable_at(cfg, c, ex_lo, ex_hi))
			best = c;
	}
	if (ex_hi >= from && ex_hi < best && usable_at(cfg, ex_hi, ex_lo, ex_hi))
		best = ex_hi;
	if (best == UINT64_MAX)
		return false;
	/* Extend through chained usable regions, then stop at the first
	 * blocker that starts inside. */
	uint64_t end = best;
	bool grew = true;
	while (grew) {
		grew = false;
		for (size_t i = 0; i < cfg->nregions; i++) {
			const struct kmem_region *r = &cfg->regions[i];
			if (r->type == KMEM_REGION_USABLE && r->length && r->base <= end &&
			    region_end(r) > end) {
				end = region_end(r);
				grew = true;
			}
		}
	}
	for (size_t i = 0; i < cfg->nregions; i++) {
		const struct kmem_region *r = &cfg->regions[i];
		if (r->type != KMEM_REGION_USABLE && r->length && r->base > best && r->base < end)
			end = r->base;
	}
	if (ex_lo > best && ex_lo < end)
		end = ex_lo;
	*s = best;
	*e = end;
	return true;
}

/* Whole managed pages [*pfn, *pfn + *n) of the next range at or above
 * `*cursor` (bytes); advances the cursor.  Skips ranges without a page. */
static bool next_pages(const struct kmem_config *cfg, uint64_t *cursor, uint64_t ex_lo,
                       uint64_t ex_hi, uint64_t *pfn, uint64_t *n)
{
	uint64_t s, e;
	uint64_t limit = 1ull << KMEM_PHYS_BITS;
	while (*cursor < limit && next_range(cfg, *cursor, ex_lo, ex_hi, &s, &e)) {
		*cursor = e;
		if (e > limit)
			e = limit;
		uint64_t ps = align_up(s, PAGE_SIZE) >> PAGE_SHIFT;
		uint64_t pe = e >> PAGE_SHIFT;
		if (ps == 0)
			ps = 1;
		if (ps < pe) {
			*pfn = ps;
			*n = pe - ps;
			return true;
		}
		if (e == UINT64_MAX)
			break;
	}
	return false;
}

struct map_sizes {
	uint64_t pages, arenas, chunks;
};

static void count_map(const struct kmem_config *cfg, uint64_t ex_lo, uint64_t ex_hi,
                      struct map_sizes *m)
{
	memset(m, 0, sizeof(*m));
	uint64_t cursor = 0, pfn, n;
	uint64_t last_arena = UINT64_MAX, last_chunk = UINT64_MAX;
	while (next_pages(cfg, &cursor, ex_lo, ex_hi, &pfn, &n)) {
		m->pages += n;
		/* Ranges come in address order, so arenas are counted once. */
		for (uint64_t a = pfn >> SUM_ARENA_TOP; a <= (pfn + n - 1) >> SUM_ARENA_TOP; a++) {
			if (a != last_arena)
				m->arenas++;
			last_arena = a;
			if ((a >> L2_BITS) != last_chunk)
				m->chunks++;
			last_chunk = a >> L2_BITS;
		}
	}
}

static size_t cline(size_t x)
{
	return (size_t)align_up(x, KMEM_CACHE_LINE);
}

static unsigned cfg_cpus(const struct kmem_config *cfg)
{
	return cfg->max_cpus ? cfg->max_cpus : KMEM_MAX_CPUS;
}

/* ---------------------------------------------------------------------------
 * NUMA nodes (malloc.c, "NUMA nodes").
 */

static uint8_t cpu_node_of(const struct kmem_config *cfg, unsigned cpu)
{
	return cfg->cpu_node ? cfg->cpu_node[cpu] : 0;
}

/* 1 + the highest node of a usable region or CPU; 0 if one is out of
 * range or the distance table is malformed (every node nearest to
 * itself). */
static unsigned cfg_nodes(const struct kmem_config *cfg)
{
	unsigned n = 1;
	for (size_t i = 0; i < cfg->nregions; i++) {
		const struct kmem_region *r = &cfg->regions[i];
		if (r->type != KMEM_REGION_USABLE || !r->length)
			continue;
		if (r->node >= KMEM_MAX_NODES)
			return 0;
		if (r->node >= n)
			n = r->node + 1;
	}
	for (unsigned cpu = 0; cpu < cfg_cpus(cfg); cpu++) {
		if (cpu_node_of(cfg, cpu) >= KMEM_MAX_NODES)
			return 0;
		if (cpu_node_of(cfg, cpu) >= n)
			n = cpu_node_of(cfg, cpu) + 1u;
	}
	if (cfg->node_distance)
		for (unsigned a = 0; a < n; a++)
			for (unsigned b = 0; b < n; b++)
				if (cfg->node_distance[a * n + a] == 0 ||
				    cfg->node_distance[a * n + b] < cfg->node_distance[a * n + a])
					return 0;
	return n;
}

static unsigned node_distance(const struct kmem_config *cfg, unsigned n, unsigned a, unsigned b)
{
	if (cfg->node_distance)
		return cfg->node_distance[a * n + b];
	return a == b ? 10 : 20;
}

/* Fills mheap_.node_order: for each node itself, then the others by
 * distance (ties: lower node first). */
static void node_order_init(const struct kmem_config *cfg, unsigned n)
{
	for (unsigned a = 0; a < n; a++) {
		uint8_t *o = mheap_.node_order[a];
		unsigned k = 0;
		o[k++] = (uint8_t)a;
		for (unsigned b = 0; b < n; b++) {
			if (b == a)
				continue;
			unsigned j = k++;
			while (j > 1 && node_distance(cfg, n, a, o[j - 1]) > node_distance(cfg, n, a, b)) {
				o[j] = o[j - 1];
				j--;
			}
			o[j] = (uint8_t)b;
		}
	}
}

/* Appends the pages the bytes [base, end) touch, of `node`, to the node
 * table t of *n entries (with `merge`, into the last entry if that is the
 * same node).  -KMEM_EINVAL if they overlap another node's range or the
 * table is full. */
static int node_range_add(struct node_range *t, unsigned *np, uint64_t base, uint64_t end,
                          uint32_t node, bool merge)
{
	unsigned n = *np;
	uint64_t lo = base >> PAGE_SHIFT, hi = align_up(end, PAGE_SIZE) >> PAGE_SHIFT;
	if (end == UINT64_MAX || hi > 1ull << SUM_TOP)
		hi = 1ull << SUM_TOP;
	for (unsigned i = 0; i < n; i++) {
		/* Another node's range may share one page at an end (unaligned
		 * boundary), no more. */
		const struct node_range *r = &t[i];
		if (r->node != node && lo < r->hi && r->lo < hi && lo + 1 != r->hi && r->lo + 1 != hi)
			return -KMEM_EINVAL;
	}
	struct node_range *last = n ? &t[n - 1] : NULL;
	if (merge && last && last->node == node) {
		if (hi > last->hi)
			last->hi = hi;
		return 0;
	}
	if (last && lo < last->hi && lo >= last->lo)
		lo = last->hi; /* a page split between two nodes: the lower's */
	if (lo >= hi)
		return 0;
	if (n == KMEM_MAX_NODE_RANGES)
		return -KMEM_EINVAL;
	t[n] = (struct node_range){.lo = lo, .hi = hi, .node = node};
	*np = n + 1;
	return 0;
}

/* The node table t (*n entries) from the map's usable regions, taken in
 * address order (O(n^2), no scratch memory), consecutive ones of a node
 * merged (gaps between them hold no other node's memory). */
static int node_ranges_of_map(const struct kmem_config *cfg, struct node_range *t, unsigned *n)
{
	*n = 0;
	size_t prev = SIZE_MAX;
	for (;;) {
		size_t best = SIZE_MAX;
		for (size_t i = 0; i < cfg->nregions; i++) {
			const struct kmem_region *r = &cfg->regions[i];
			if (r->type != KMEM_REGION_USABLE || !r->length)
				continue;
			if (prev != SIZE_MAX) { /* after prev in (base, index) order */
				const struct kmem_region *p = &cfg->regions[prev];
				if (r->base < p->base || (r->base == p->base && i <= prev))
					continue;
			}
			if (best == SIZE_MAX || r->base < cfg->regions[best].base)
				best = i;
		}
		if (best == SIZE_MAX)
			return 0;
		const struct kmem_region *r = &cfg->regions[best];
		int err = node_range_add(t, n, r->base, region_end(r), r->node, true);
		if (err)
			return err;
		prev = best;
	}
}

static size_t meta_bytes(const struct map_sizes *m, unsigned cpus, unsigned nodes)
{
	uint64_t reserve = (m->pages << PAGE_SHIFT) >> META_SPAN_RESERVE_SHIFT;
	if (reserve < META_SPAN_RESERVE_MIN)
		reserve = META_SPAN_RESERVE_MIN;
	uint64_t b = cline(sizeof(struct mcentral)) * KMEM_NUM_CLASSES * nodes +
	             cline(sizeof(struct mcache)) * cpus +
	             m->chunks * cline(sizeof(struct l2_chunk)) +
	             m->arenas * cline(sizeof(struct heap_arena)) + reserve +
	             deferred_state_bytes(cpus) + 4 * KMEM_CACHE_LINE;
	return (size_t)align_up(b, PAGE_SIZE) + 2 * PAGE_SIZE; /* and the guards */
}

static bool cfg_ok(const struct kmem_config *cfg)
{
	return cfg && (cfg->regions || !cfg->nregions) && cfg_cpus(cfg) <= KMEM_MAX_CPUS &&
	       cfg->harden <= KMEM_HARDEN_MAX && cfg_nodes(cfg);
}

size_t kmem_metadata_size(const struct kmem_config *cfg)
{
	if (!cfg_ok(cfg))
		return 0;
	struct map_sizes m;
	count_map(cfg, 0, 0, &m);
	if (!m.pages)
		return 0;
	return meta_bytes(&m, cfg_cpus(cfg), cfg_nodes(cfg));
}

void kmem_metadata_region(uint64_t *phys_base, uint64_t *size)
{
	*phys_base = mheap_.meta_base;
	*size = mheap_.meta_size;
}

/* Marks [pfn, pfn+n) managed and free, creating arenas from the bump
 * range.  With `lazy`, an arena the range covers whole and that does not
 * exist yet becomes the shared all-free image instead (heaparena.c): no
 * write to it, only the summaries above it.  Caller holds mheap.lock (or
 * is init). */
static int add_pages_locked(uint64_t pfn, uint64_t n, uintptr_t *bump, uintptr_t bump_end,
                            bool lazy)
{
	pages_grow_hull_locked(pfn + n);
	for (uint64_t p = pfn; p < pfn + n;) {
		pages_update_steps++;
		uint64_t stop = (p | (ARENA_PAGES - 1)) + 1;
		if (stop > pfn + n)
			stop = pfn + n;
		int err;
		if (lazy && stop - p == ARENA_PAGES && !arena_of_pfn(p)) {
			err = arena_share_locked(p, bump, bump_end);
			if (err)
				return err;
			p = stop;
			continue;
		}
		err = arena_create_locked(p, bump, bump_end);
		if (err)
			return err;
		struct heap_arena *a = arena_own_locked(p);
		a->managed += stop - p;
		uint64_t q = p;
		while (q < stop) { /* a word at a time */
			uint64_t i = q & (ARENA_PAGES - 1), b = i & 63;
			uint64_t cnt = 64 - b < stop - q ? 64 - b : stop - q;
			a->managedbits[i >> 6] |= (cnt == 64 ? ~0ull : ((1ull << cnt) - 1)) << b;
			q += cnt;
		}
		pages_set_locked(p, stop - p, true);
		p = stop;
	}
	/* Shared arenas' own summaries are in the image; the levels above
	 * them are computed here, once for the whole range. */
	if (lazy)
		sums_above_arenas_locked(pfn, n);
	mheap_.pages_managed += n;
	mheap_.pages_free += n;
	return 0;
}

int kmem_init(const struct kmem_config *cfg)
{
	if (!cfg_ok(cfg))
		return -KMEM_EINVAL;
	unsigned cpus = cfg_cpus(cfg), nodes = cfg_nodes(cfg);
	uint64_t ex_lo = 0, ex_hi = 0;
	/* The node table is built here, so that a bad one changes nothing. */
	struct node_range ranges[KMEM_MAX_NODE_RANGES];
	unsigned nranges = 0;
	if (nodes > 1 && node_ranges_of_map(cfg, ranges, &nranges))
		return -KMEM_EINVAL;
	struct map_sizes m;
	count_map(cfg, 0, 0, &m);
	if (!m.pages)
		return -KMEM_EINVAL;
	size_t need = meta_bytes(&m, cpus, nodes);

	uint64_t meta_base, meta_size;
	if (cfg->metadata_size) {
		meta_base = cfg->metadata_base;
		meta_size = cfg->metadata_size;
		ex_lo = align_down(meta_base, PAGE_SIZE);
		ex_hi = align_up(meta_base + meta_size, PAGE_SIZE);
		/* The pool shrinks by the region; the need cannot grow. */
		if (meta_size < need)
			return -KMEM_ENOMEM;
	} else {
		/* The highest page range that holds the region. */
		uint64_t cursor = 0, pfn, n, best = PAGE_NONE;
		while (next_pages(cfg, &cursor, 0, 0, &pfn, &n))
			if ((n << PAGE_SHIFT) > need)
				best = pfn + n;
		if (best == PAGE_NONE)
			return -KMEM_ENOMEM;
		meta_size = need;
		meta_base = (best << PAGE_SHIFT) - need;
		ex_lo = meta_base;
		ex_hi = meta_base + meta_size;
	}

	memset(&mheap_, 0, offsetof(struct mheap, amax));
	mheap_.sum_level = SUM_ARENA_TOP;
	lock_init(&mheap_.lock, LOCK_HEAP);
	lock_init(&mheap_.caches_lock, LOCK_CACHES);
	mheap_.offset = cfg->direct_map_offset;
	mheap_.max_cpus = cpus;
	mheap_.nnodes = nodes;
	for (unsigned cpu = 0; cpu < cpus; cpu++)
		mheap_.cpu_node[cpu] = cpu_node_of(cfg, cpu);
	node_order_init(cfg, nodes);
	memcpy(mheap_.node_ranges, ranges, nranges * sizeof(ranges[0]));
	atomic_store_explicit(&mheap_.nranges, nranges, memory_order_release);
	mheap_.meta_base = meta_base;
	mheap_.meta_size = meta_size;
	/* Between the guard pages: the first and last pages it touches
	 * (excluded from the pool, as the region). */
	uint64_t data_lo = align_down(meta_base, PAGE_SIZE) + PAGE_SIZE;
	uint64_t data_hi = align_up(meta_base + meta_size, PAGE_SIZE) - PAGE_SIZE;
	if (data_hi < data_lo || data_hi - data_lo < need - 2 * PAGE_SIZE)
		return -KMEM_ENOMEM;
	/* The region serves metadata of its own node (fixalloc.c). */
	int mnode = pfn_node(meta_base >> PAGE_SHIFT);
	mheap_.meta_node = mnode >= 0 ? (unsigned)mnode : 0;
	mheap_.meta_next[mheap_.meta_node] = (uintptr_t)data_lo + mheap_.offset;
	mheap_.meta_end[mheap_.meta_node] = (uintptr_t)data_hi + mheap_.offset;

	uintptr_t *bump = &mheap_.meta_next[mheap_.meta_node];
	uintptr_t end = mheap_.meta_end[mheap_.meta_node];
	*bump = align_up(*bump, KMEM_CACHE_LINE);
	mheap_.central = (struct mcentral *)*bump;
	*bump += cline(sizeof(struct mcentral)) * KMEM_NUM_CLASSES * nodes;
	mheap_.mcaches = (struct mcache *)*bump;
	*bump += cline(sizeof(struct mcache)) * cpus;
	if (*bump > end)
		return -KMEM_ENOMEM;
	memset(mheap_.central, 0, *bump - (uintptr_t)mheap_.central);
	/* The L2 chunks and arenas, shared ones included: the arena range is
	 * not zeroed here (a chunk or arena is cleared or copied when carved),
	 * so init costs no page faults on it. */
	mheap_.arena_next = *bump;
	*bump += m.chunks * cline(sizeof(struct l2_chunk)) +
	         m.arenas * cline(sizeof(struct heap_arena));
	mheap_.arena_end = *bump;
	if (*bump > end)
		return -KMEM_ENOMEM;

	arena_image_build();
	uint64_t cursor = 0, pfn, n;
	while (next_pages(cfg, &cursor, ex_lo, ex_hi, &pfn, &n)) {
		int err = add_pages_locked(pfn, n, &mheap_.arena_next, mheap_.arena_end, true);
		if (err)
			return err;
	}
	if (!mheap_.pages_managed)
		return -KMEM_EINVAL;

	fixalloc_init(&mheap_.spanalloc, sizeof(struct mspan));
	spanmeta_init();
	fixalloc_init(&mheap_.magalloc, sizeof(struct magazine));
	for (unsigned b = 0; b < DBG_BUCKETS; b++)
		fixalloc_init(&mheap_.dbgalloc[b], dbg_bucket_objs(b) * sizeof(struct obj_debug));
	/* An object cache's block: descriptor, per-CPU array, then the
	 * mcentrals of nodes 1.. (kmem_cache.c). */
	fixalloc_init(&mheap_.cachealloc,
	              align_up(sizeof(struct kmem_cache) + cpus * sizeof(struct cache_cpu),
	                       KMEM_CACHE_LINE) +
	                  (nodes - 1) * cline(sizeof(struct mcentral)));

	for (unsigned node = 0; node < nodes; node++)
		for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++) {
			const struct size_class *sc = &kmem_class[cls];
			struct mcentral *c = class_central(node, cls);
			mcentral_init(c, cls, sc->size, sc->npages, sc->nelems, sc->align_pages,
			              sc->divmul, NULL);
			c->debug = KMEM_DEBUG_HEAP ? KMEM_DEBUG_ALL : 0;
			c->node = (uint8_t)node;
		}
	for (unsigned cpu = 0; cpu < cpus; cpu++)
		mheap_.mcaches[cpu].node = mheap_.cpu_node[cpu];
	int err = harden_init(cfg->harden, cfg->harden_seed);
	if (err)
		return err;
	deferred_init();
	/* The mcaches were zeroed with the centrals: no magazine, no span. */
	mheap_.mcaches[0].online = true;
	mheap_.cpus_online = 1;
	atomic_store_explicit(&mheap_.fault_hook, NULL, memory_order_relaxed);
	atomic_store_explicit(&mheap_.oom_hook, NULL, memory_order_relaxed);
	mheap_.initialised = true;
	return 0;
}

/* What a hot-add of [pfn, pfn + n) must carve from the start of the
 * region: an L2 chunk for every chunk it touches that is missing, and one
 * arena's worth for every arena it touches that is missing (the struct now
 * for an arena it covers in part or holds the metadata in, room to copy
 * it into later for one it covers whole and shares).  Counted before
 * anything is written, so a region that cannot hold it is refused with
 * nothing changed. */
static uint64_t hot_meta_bytes(uint64_t pfn, uint64_t n)
{
	uint64_t bytes = 0, last_chunk = UINT64_MAX;
	for (uint64_t a = pfn >> SUM_ARENA_TOP; a <= (pfn + n - 1) >> SUM_ARENA_TOP; a++) {
		uint64_t p = a << SUM_ARENA_TOP;
		pages_update_steps++;
		if (a >> L2_BITS != last_chunk &&
		    !atomic_load_explicit(&mheap_.l1[p >> SUM_L2_TOP], memory_order_relaxed))
			bytes += cline(sizeof(struct l2_chunk));
		last_chunk = a >> L2_BITS;
		if (!arena_of_pfn(p))
			bytes += cline(sizeof(struct heap_arena));
	}
	return bytes;
}

long kmem_hot_add(const struct kmem_region *r)
{
	if (!r || (r->type != KMEM_REGION_USABLE && r->type != KMEM_REGION_RECLAIMABLE))
		return -KMEM_EINVAL;
	uint64_t s = align_up(r->base, PAGE_SIZE), e = align_down(region_end(r), PAGE_SIZE);
	uint64_t limit = 1ull << KMEM_PHYS_BITS;
	if (e > limit)
		e = limit;
	if (s == 0)
		s = PAGE_SIZE;
	if (s >= e)
		return -KMEM_EINVAL;
	uint64_t pfn = s >> PAGE_SHIFT, n = (e - s) >> PAGE_SHIFT;

	if (r->node >= mheap_.nnodes)
		return -KMEM_EINVAL;

	unsigned long f = lock_irqsave(&mheap_.lock);
	/* Overlap with managed memory (free, used, or metadata a hot-add keeps
	 * in its region) or with the metadata region. */
	uint64_t ml = align_down(mheap_.meta_base, PAGE_SIZE);
	uint64_t mh = align_up(mheap_.meta_base + mheap_.meta_size, PAGE_SIZE);
	if ((s < mh && ml < e) || arena_managed_in_locked(pfn, n)) {
		unlock_irqrestore(&mheap_.lock, f);
		return -KMEM_EINVAL;
	}

	/* (and a cache line for the header of the copy room, and a guard
	 * page on either side) */
	uint64_t meta = hot_meta_bytes(pfn, n);
	uint64_t used = meta ? (align_up(meta + KMEM_CACHE_LINE, PAGE_SIZE) >> PAGE_SHIFT) + 2 : 0;
	if (used >= n) {
		unlock_irqrestore(&mheap_.lock, f);
		return -KMEM_ENOMEM; /* nothing was written */
	}
	/* Its node range (the last check: it writes only if it succeeds). */
	unsigned nr = atomic_load_explicit(&mheap_.nranges, memory_order_relaxed);
	if (mheap_.nnodes > 1 && node_range_add(mheap_.node_ranges, &nr, s, e, r->node, false)) {
		unlock_irqrestore(&mheap_.lock, f);
		return -KMEM_EINVAL;
	}
	/* Published: the entry is complete (kmem_virt_to_node reads it). */
	atomic_store_explicit(&mheap_.nranges, nr, memory_order_release);

	/* The metadata, from the start of the region: chunks, then the arenas
	 * it holds or covers in part, then room for copies of the ones it
	 * covers whole past the metadata (shared below, as kmem_init's). */
	pages_grow_hull_locked(pfn + n);
	uintptr_t bump = pfn_to_virt(pfn + !!used), bump_end = pfn_to_virt(pfn + used - !!used);
	uint64_t shared = 0;
	for (uint64_t a = pfn >> SUM_ARENA_TOP; a <= (pfn + n - 1) >> SUM_ARENA_TOP; a++) {
		uint64_t p = a << SUM_ARENA_TOP;
		pages_update_steps++;
		if (arena_of_pfn(p))
			continue;
		if (p >= pfn + used && p + ARENA_PAGES <= pfn + n) {
			shared++;
			continue;
		}
		int err = arena_create_locked(p, &bump, bump_end);
		KASSERT(err == 0); /* counted above */
		(void)err;
	}
	if (shared) {
		uintptr_t room = align_up(bump, KMEM_CACHE_LINE);
		arena_room_push_locked(room, room + KMEM_CACHE_LINE +
		                                 shared * cline(sizeof(struct heap_arena)));
		bump = room + KMEM_CACHE_LINE + shared * cline(sizeof(struct heap_arena));
	}
	KASSERT(bump <= bump_end);
	/* The metadata pages are the pool's, in use: never handed out, and a
	 * free of a pointer into them is reported as metadata (malloc.c). */
	for (uint64_t p = pfn; p < pfn + used;) {
		struct heap_arena *a = arena_own_locked(p);
		uint64_t i = p & (ARENA_PAGES - 1), b = i & 63;
		uint64_t cnt = 64 - b < pfn + used - p ? 64 - b : pfn + used - p;
		a->managedbits[i >> 6] |= (cnt == 64 ? ~0ull : ((1ull << cnt) - 1)) << b;
		a->managed += cnt;
		p += cnt;
	}
	mheap_.pages_managed += used;
	mheap_.pages_metadata += used;
	if (used) {
		guard_page_locked(pfn);
		guard_page_locked(pfn + used - 1);
	}
	int err = add_pages_locked(pfn + used, n - used, &bump, bump, true);
	KASSERT(err == 0); /* every chunk and arena exists or is shared */
	(void)err;
	unlock_irqrestore(&mheap_.lock, f);
	guards_protect();
	return (long)(n - used);
}
