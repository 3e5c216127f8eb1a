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
 * Metadata regions.  Unless the caller gives one region (which then
 * serves every node), kmem_init carves one per node from the top of the
 * node's highest piece of memory that holds it (plan_auto); a node with
 * none that fits, or no memory, is served by the nearest node that has
 * one (its server, meta_plan).  A region's layout (carved in this order, all
 * cache-line aligned):
 *     guard page |
 *     per node it serves: its page heap (with one node, static) and
 *     mcentral[KMEM_NUM_CLASSES] |
 *     the mcache of each CPU of those nodes |
 *     per node it serves, its arena range ([arena_next[n], arena_end[n])):
 *     a heap_arena for every arena it owns (whose lowest pages are the
 *     node's), its l2_sums for every chunk those touch, and the l2_chunk
 *     of every chunk whose lowest arena it owns (arenas the map covers
 *     whole are shared until their first write and copied here then) |
 *     span descriptor reserve (fixalloc), about 1/1024 of the nodes'
 *     memory, and in CPU 0's node's region the deferred-free state |
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

/* Byte ranges kept out of the pool: the metadata regions. */
struct excl {
	uint64_t lo[KMEM_MAX_NODES], hi[KMEM_MAX_NODES];
	unsigned n;
};

static bool excluded(const struct excl *ex, uint64_t x)
{
	for (unsigned i = 0; ex && i < ex->n; i++)
		if (x >= ex->lo[i] && x < ex->hi[i])
			return true;
	return false;
}

/* x is usable: covered by a USABLE region and by nothing else, nor
 * excluded. */
static bool usable_at(const struct kmem_config *cfg, uint64_t x, const struct excl *ex)
{
	bool usable = false;
	if (excluded(ex, x))
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
static bool next_range(const struct kmem_config *cfg, uint64_t from, const struct excl *ex,
                       uint64_t *s, uint64_t *e)
{
	uint64_t best = UINT64_MAX;
	/* A range starts at `from`, at a usable base, or where a blocker ends. */
	if (usable_at(cfg, from, ex))
		best = from;
	for (size_t i = 0; i < cfg->nregions && best != from; i++) {
		const struct kmem_region *r = &cfg->regions[i];
		if (!r->length)
			continue;
		uint64_t c = r->type == KMEM_REGION_USABLE ? r->base : region_end(r);
		if (c >= from && c < best && usable_at(cfg, c, ex))
			best = c;
	}
	for (unsigned i = 0; ex && i < ex->n; i++)
		if (ex->hi[i] >= from && ex->hi[i] < best && usable_at(cfg, ex->hi[i], ex))
			best = ex->hi[i];
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
	for (unsigned i = 0; ex && i < ex->n; i++)
		if (ex->lo[i] > best && ex->lo[i] < end)
			end = ex->lo[i];
	*s = best;
	*e = end;
	return true;
}

/* Whole managed pages [*pfn, *pfn + *n) of the next range at or above
 * `*cursor` (bytes); advances the cursor.  Skips ranges without a page. */
static bool next_pages(const struct kmem_config *cfg, uint64_t *cursor, const struct excl *ex,
                       uint64_t *pfn, uint64_t *n)
{
	uint64_t s, e;
	uint64_t limit = 1ull << KMEM_PHYS_BITS;
	while (*cursor < limit && next_range(cfg, *cursor, ex, &s, &e)) {
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

/* Per node: its pages, the arenas it owns (those whose lowest pages are
 * its), the L2 chunks whose lowest arena it owns, and the chunks its
 * arenas touch (one l2_sums each). */
struct map_sizes {
	uint64_t pages, arenas, chunks, sums;
};

/* The managed pages in address order, cut where the node changes (node
 * table t of nt entries; none: all node 0). */
struct pieces {
	const struct kmem_config *cfg;
	const struct excl *ex;
	const struct node_range *t;
	unsigned nt;
	uint64_t cursor, pfn, end;
};

static bool next_piece(struct pieces *it, uint64_t *pfn, uint64_t *n, unsigned *node)
{
	if (it->pfn >= it->end) {
		uint64_t len;
		if (!next_pages(it->cfg, &it->cursor, it->ex, &it->pfn, &len))
			return false;
		it->end = it->pfn + len;
	}
	uint64_t stop = it->end;
	const struct node_range *r = node_range_of(it->t, it->nt, it->pfn);
	for (unsigned i = 0; i < it->nt; i++) /* where the next range starts */
		if (it->t[i].lo > it->pfn && it->t[i].lo < stop)
			stop = it->t[i].lo;
	if (r && r->hi < stop)
		stop = r->hi;
	*node = r ? r->node : 0;
	*pfn = it->pfn;
	*n = stop - it->pfn;
	it->pfn = stop;
	return true;
}

/* Pages, arenas and L2 chunks the map touches, per node: an arena (a
 * chunk) is owned by the node of its lowest pages, as kmem_init creates
 * it (init_arena_locked).  Without a node table, all node 0's. */
static void count_map(const struct kmem_config *cfg, const struct node_range *t, unsigned nt,
                      struct map_sizes *m)
{
	memset(m, 0, KMEM_MAX_NODES * sizeof(*m));
	struct pieces it = {.cfg = cfg, .t = t, .nt = nt};
	uint64_t pfn, n, last_arena = UINT64_MAX, last_chunk = UINT64_MAX;
	uint64_t last_sums[KMEM_MAX_NODES];
	memset(last_sums, 0xff, sizeof(last_sums));
	unsigned node, owner = 0;
	while (next_piece(&it, &pfn, &n, &node)) {
		m[node].pages += n;
		/* Pieces come in address order, so arenas are counted once. */
		for (uint64_t a = pfn >> SUM_ARENA_TOP; a <= (pfn + n - 1) >> SUM_ARENA_TOP; a++) {
			if (a != last_arena) {
				owner = node;
				m[owner].arenas++;
				if ((a >> L2_BITS) != last_sums[owner])
					m[owner].sums++;
				last_sums[owner] = a >> L2_BITS;
			}
			last_arena = a;
			if ((a >> L2_BITS) != last_chunk)
				m[owner].chunks++;
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

/* Fills order (mheap_.node_order's shape): for each node itself, then
 * the others by distance (ties: lower node first). */
static void node_order_init(const struct kmem_config *cfg, unsigned n,
                            uint8_t order[][KMEM_MAX_NODES])
{
	for (unsigned a = 0; a < n; a++) {
		uint8_t *o = order[a];
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

/* Where kmem_init puts the metadata: a region per node that has one
 * (size 0: none), and for each node the node whose region holds its
 * mcentrals, its CPUs' mcaches and its arenas (server). */
struct meta_plan {
	uint64_t base[KMEM_MAX_NODES], size[KMEM_MAX_NODES];
	uint8_t server[KMEM_MAX_NODES];
	unsigned home; /* CPU 0's server: also the deferred-free state */
	struct map_sizes m[KMEM_MAX_NODES]; /* by node */
};

/* A node's arena range: its arenas, the chunks and summaries they need. */
static uint64_t arena_bytes(const struct map_sizes *m)
{
	return m->chunks * cline(sizeof(struct l2_chunk)) + m->sums * cline(sizeof(struct l2_sums)) +
	       m->arenas * cline(sizeof(struct heap_arena));
}

/* Bytes of server s's region (guard pages included). */
static size_t region_need(const struct kmem_config *cfg, unsigned nodes,
                          const struct meta_plan *p, unsigned s)
{
	unsigned ncpu = 0, cpus = cfg_cpus(cfg);
	uint64_t pages = 0, b = 0;
	for (unsigned n = 0; n < nodes; n++)
		if (p->server[n] == s) {
			pages += p->m[n].pages;
			b += (nodes > 1 ? cline(sizeof(struct pageheap)) : 0) +
			     cline(sizeof(struct mcentral)) * KMEM_NUM_CLASSES + arena_bytes(&p->m[n]);
		}
	for (unsigned cpu = 0; cpu < cpus; cpu++)
		ncpu += p->server[cpu_node_of(cfg, cpu)] == s;
	uint64_t reserve = (pages << PAGE_SHIFT) >> META_SPAN_RESERVE_SHIFT;
	if (reserve < META_SPAN_RESERVE_MIN)
		reserve = META_SPAN_RESERVE_MIN;
	b += cline(sizeof(struct mcache)) * ncpu + reserve +
	     (s == p->home ? deferred_state_bytes(cpus) : 0) + 4 * KMEM_CACHE_LINE;
	return (size_t)align_up(b, PAGE_SIZE) + 2 * PAGE_SIZE; /* and the guards */
}

/* Every node's server: the nearest node (order) that holds a region
 * (ok).  False if none does. */
static bool plan_servers(const struct kmem_config *cfg, unsigned nodes,
                         uint8_t order[][KMEM_MAX_NODES], const bool *ok, struct meta_plan *p)
{
	for (unsigned n = 0; n < nodes; n++) {
		unsigned k = 0;
		while (k < nodes && !ok[order[n][k]])
			k++;
		if (k == nodes)
			return false;
		p->server[n] = order[n][k];
	}
	p->home = p->server[cpu_node_of(cfg, 0)];
	return true;
}

/* Regions carved by the allocator: each node that has memory holds its
 * own at the top of its highest piece that fits it; a node with none
 * that fits is served by the nearest that has, whose region grows. */
static int plan_auto(const struct kmem_config *cfg, const struct node_range *t, unsigned nt,
                     unsigned nodes, uint8_t order[][KMEM_MAX_NODES], struct meta_plan *p)
{
	count_map(cfg, t, nt, p->m);
	bool ok[KMEM_MAX_NODES];
	for (unsigned s = 0; s < KMEM_MAX_NODES; s++)
		ok[s] = p->m[s].pages != 0;
	uint64_t pfn, n;
	unsigned node;
	for (;;) { /* each round drops a node, or ends */
		if (!plan_servers(cfg, nodes, order, ok, p))
			return -KMEM_ENOMEM;
		bool again = false;
		for (unsigned s = 0; s < nodes; s++) {
			p->size[s] = 0;
			if (!ok[s])
				continue;
			size_t need = region_need(cfg, nodes, p, s);
			uint64_t best = PAGE_NONE;
			struct pieces q = {.cfg = cfg, .t = t, .nt = nt};
			while (next_piece(&q, &pfn, &n, &node))
				if (node == s && (n << PAGE_SHIFT) > need)
					best = pfn + n;
			if (best == PAGE_NONE) {
				ok[s] = false;
				again = true;
				continue;
			}
			p->size[s] = need;
			p->base[s] = (best << PAGE_SHIFT) - need;
		}
		if (!again)
			return 0;
	}
}

/* The caller's one region serves every node. */
static int plan_given(const struct kmem_config *cfg, const struct node_range *t, unsigned nt,
                      unsigned nodes, struct meta_plan *p)
{
	const struct node_range *r = node_range_of(t, nt, cfg->metadata_base >> PAGE_SHIFT);
	unsigned s = r ? r->node : 0;
	memset(p->server, s, sizeof(p->server));
	p->home = s;
	count_map(cfg, t, nt, p->m);
	p->base[s] = cfg->metadata_base;
	p->size[s] = cfg->metadata_size;
	/* The pool shrinks by the region; the need cannot grow. */
	return p->size[s] < region_need(cfg, nodes, p, s) ? -KMEM_ENOMEM : 0;
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
	struct meta_plan p = {.home = 0}; /* one region: server 0 for all */
	unsigned nodes = cfg_nodes(cfg);
	struct node_range ranges[KMEM_MAX_NODE_RANGES] = {{0, 0, 0}};
	unsigned nranges = 0;
	if (nodes > 1 && node_ranges_of_map(cfg, ranges, &nranges))
		return 0;
	count_map(cfg, ranges, nranges, p.m);
	uint64_t pages = 0;
	for (unsigned n = 0; n < nodes; n++)
		pages += p.m[n].pages;
	return pages ? region_need(cfg, nodes, &p, 0) : 0;
}

void kmem_metadata_region(uint64_t *phys_base, uint64_t *size)
{
	*phys_base = mheap_.meta_base[mheap_.meta_node];
	*size = mheap_.meta_size[mheap_.meta_node];
}

unsigned kmem_metadata_regions(struct kmem_region *out, unsigned max)
{
	unsigned k = 0;
	for (unsigned n = 0; n < mheap_.nnodes; n++) {
		if (!mheap_.meta_size[n])
			continue;
		if (k < max)
			out[k] = (struct kmem_region){.base = mheap_.meta_base[n],
			                              .length = mheap_.meta_size[n],
			                              .type = KMEM_REGION_RESERVED,
			                              .node = n};
		k++;
	}
	return k;
}

/* kmem_init: creates (share: shares) the arena of pfn, the lowest page
 * of it being added, for its node's page heap, from that node's arena
 * range as counted (count_map), else from the nearest other node's (an
 * arena whose lowest pages a region took was counted for another node). */
static int init_arena_locked(uint64_t pfn, unsigned owner, bool share)
{
	int err = -KMEM_ENOMEM;
	for (unsigned k = 0; k < mheap_.nnodes && err == -KMEM_ENOMEM; k++) {
		unsigned s = mheap_.node_order[owner][k];
		err = share ? arena_share_locked(pfn, owner, &mheap_.arena_next[s], mheap_.arena_end[s])
		            : arena_create_locked(pfn, owner, &mheap_.arena_next[s], mheap_.arena_end[s]);
	}
	return err;
}

/* Marks [pfn, pfn+n) managed and free, creating missing arenas for page
 * heap `owner` (-1: kmem_init's, each for the node of its lowest page,
 * from init's arena ranges, init_arena_locked) from the bump range; an
 * arena that exists keeps its owner.  With `lazy`, an arena the range
 * covers whole and that does not exist yet becomes the shared all-free
 * image instead (heaparena.c): no write to it, only the summaries above
 * it, once per run of such arenas of one heap.  Caller holds every
 * heap.lock (or is init). */
static int add_pages_locked(uint64_t pfn, uint64_t n, int owner, uintptr_t *bump,
                            uintptr_t bump_end, bool lazy)
{
	struct pageheap *sh = NULL; /* shared arenas [s_lo, s_hi) of heap sh */
	uint64_t s_lo = 0, s_hi = 0;
	for (uint64_t p = pfn; p < pfn + n;) {
		mheap_.update_steps++;
		uint64_t stop = (p | (ARENA_PAGES - 1)) + 1;
		if (stop > pfn + n)
			stop = pfn + n;
		bool share = lazy && stop - p == ARENA_PAGES && !arena_of_pfn(p);
		int node = owner >= 0 ? owner : pfn_node(p);
		unsigned o = node >= 0 ? (unsigned)node : 0;
		int err = !bump ? init_arena_locked(p, o, share)
		          : share ? arena_share_locked(p, o, bump, bump_end)
		                  : arena_create_locked(p, o, bump, bump_end);
		if (err)
			return err;
		struct pageheap *h = heap_of_pfn(p);
		pages_grow_hull_locked(h, stop);
		h->pages_managed += stop - p;
		h->pages_free += stop - p;
		if (share) {
			if (sh != h || s_hi != p) {
				if (sh)
					sums_above_arenas_locked(sh, s_lo, s_hi - s_lo);
				sh = h;
				s_lo = p;
			}
			s_hi = stop;
			p = stop;
			continue;
		}
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
	 * them are computed here. */
	if (sh)
		sums_above_arenas_locked(sh, s_lo, s_hi - s_lo);
	return 0;
}

static struct pageheap heap_single;

/* Carves server s's region: its nodes' page heaps and mcentrals, its
 * CPUs' mcaches (zeroed), each of its nodes' arena range, and the rest as
 * the node's bump range. */
static int region_carve(const struct meta_plan *p, unsigned s)
{
	uint64_t base = p->base[s], size = p->size[s];
	/* Between the guard pages: the first and last pages it touches
	 * (excluded from the pool, as the region). */
	uint64_t data_lo = align_down(base, PAGE_SIZE) + PAGE_SIZE;
	uint64_t data_hi = align_up(base + size, PAGE_SIZE) - PAGE_SIZE;
	if (data_hi < data_lo)
		return -KMEM_ENOMEM;
	uintptr_t bump = align_up((uintptr_t)data_lo + mheap_.offset, KMEM_CACHE_LINE);
	uintptr_t end = (uintptr_t)data_hi + mheap_.offset;
	for (unsigned n = 0; n < mheap_.nnodes; n++)
		if (p->server[n] == s) {
			/* One node: the page heap is static, as big a share of a
			 * small machine's memory as before there were nodes. */
			struct pageheap *h = &heap_single;
			if (mheap_.nnodes > 1) {
				h = (struct pageheap *)bump;
				bump += cline(sizeof(struct pageheap));
			}
			mheap_.central[n] = (struct mcentral *)bump;
			bump += cline(sizeof(struct mcentral)) * KMEM_NUM_CLASSES;
			if (bump > end)
				return -KMEM_ENOMEM;
			/* amax[] (last) is read only where written (pagealloc.c). */
			memset(h, 0, offsetof(struct pageheap, amax));
			lock_init(&h->lock, LOCK_HEAP);
			h->node = n;
			h->sum_level = SUM_ARENA_TOP;
			mheap_.heap[n] = h;
			memset(mheap_.central[n], 0, cline(sizeof(struct mcentral)) * KMEM_NUM_CLASSES);
		}
	uintptr_t start = bump;
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++)
		if (p->server[mheap_.cpu_node[cpu]] == s) {
			mheap_.mcache[cpu] = (struct mcache *)bump;
			bump += cline(sizeof(struct mcache));
		}
	if (bump > end)
		return -KMEM_ENOMEM;
	memset((void *)start, 0, bump - start);
	/* The L2 chunks and arenas of each node, shared ones included: the
	 * arena ranges are not zeroed here (a chunk or arena is cleared or
	 * copied when carved), so init costs no page faults on them. */
	for (unsigned n = 0; n < mheap_.nnodes; n++)
		if (p->server[n] == s) {
			mheap_.arena_next[n] = bump;
			bump += arena_bytes(&p->m[n]);
			mheap_.arena_end[n] = bump;
		}
	if (bump > end)
		return -KMEM_ENOMEM;
	mheap_.meta_next[s] = bump;
	mheap_.meta_end[s] = end;
	return 0;
}

int kmem_init(const struct kmem_config *cfg)
{
	if (!cfg_ok(cfg))
		return -KMEM_EINVAL;
	unsigned cpus = cfg_cpus(cfg), nodes = cfg_nodes(cfg);
	/* The node table and the plan are made here, so that a bad one
	 * changes nothing. */
	struct node_range ranges[KMEM_MAX_NODE_RANGES];
	unsigned nranges = 0;
	if (nodes > 1 && node_ranges_of_map(cfg, ranges, &nranges))
		return -KMEM_EINVAL;
	uint8_t order[KMEM_MAX_NODES][KMEM_MAX_NODES];
	node_order_init(cfg, nodes, order);
	struct meta_plan plan;
	memset(&plan, 0, sizeof(plan));
	count_map(cfg, NULL, 0, plan.m);
	if (!plan.m[0].pages)
		return -KMEM_EINVAL;
	int err = cfg->metadata_size ? plan_given(cfg, ranges, nranges, nodes, &plan)
	                             : plan_auto(cfg, ranges, nranges, nodes, order, &plan);
	if (err)
		return err;

	memset(&mheap_, 0, sizeof(mheap_));
	lock_init(&mheap_.caches_lock, LOCK_CACHES);
	mheap_.offset = cfg->direct_map_offset;
	mheap_.max_cpus = cpus;
	mheap_.nnodes = nodes;
	for (unsigned cpu = 0; cpu < cpus; cpu++)
		mheap_.cpu_node[cpu] = cpu_node_of(cfg, cpu);
	memcpy(mheap_.node_order, order, sizeof(order));
	memcpy(mheap_.node_ranges, ranges, nranges * sizeof(ranges[0]));
	atomic_store_explicit(&mheap_.nranges, nranges, memory_order_release);
	mheap_.meta_node = plan.home;
	struct excl ex = {.n = 0};
	for (unsigned s = 0; s < nodes; s++) {
		if (!plan.size[s])
			continue;
		mheap_.meta_base[s] = plan.base[s];
		mheap_.meta_size[s] = plan.size[s];
		ex.lo[ex.n] = align_down(plan.base[s], PAGE_SIZE);
		ex.hi[ex.n++] = align_up(plan.base[s] + plan.size[s], PAGE_SIZE);
		err = region_carve(&plan, s);
		if (err)
			return err;
	}

	arena_image_build();
	uint64_t cursor = 0, pfn, n;
	while (next_pages(cfg, &cursor, &ex, &pfn, &n)) {
		err = add_pages_locked(pfn, n, -1, NULL, 0, true);
		if (err)
			return err;
	}
	uint64_t managed = 0;
	for (unsigned k = 0; k < nodes; k++)
		managed += mheap_.heap[k]->pages_managed;
	if (!managed)
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
		mheap_.mcache[cpu]->node = mheap_.cpu_node[cpu];
	err = harden_init(cfg->harden, cfg->harden_seed);
	if (err)
		return err;
	deferred_init();
	/* The mcaches were zeroed with the centrals: no magazine, no span. */
	mheap_.mcache[0]->online = true;
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
static uint64_t hot_meta_bytes(uint64_t pfn, uint64_t n, unsigned node)
{
	uint64_t bytes = 0, last_chunk = UINT64_MAX, last_sums = UINT64_MAX;
	for (uint64_t a = pfn >> SUM_ARENA_TOP; a <= (pfn + n - 1) >> SUM_ARENA_TOP; a++) {
		uint64_t p = a << SUM_ARENA_TOP;
		mheap_.update_steps++;
		if (a >> L2_BITS != last_chunk &&
		    !atomic_load_explicit(&mheap_.l1[p >> SUM_L2_TOP], memory_order_relaxed))
			bytes += cline(sizeof(struct l2_chunk));
		last_chunk = a >> L2_BITS;
		if (!arena_of_pfn(p)) {
			bytes += cline(sizeof(struct heap_arena));
			/* node's page heap owns it: its summaries there */
			if (a >> L2_BITS != last_sums && !mheap_.heap[node]->l2[p >> SUM_L2_TOP])
				bytes += cline(sizeof(struct l2_sums));
			last_sums = a >> L2_BITS;
		}
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

	unsigned long f = heaps_lock_all();
	/* Overlap with managed memory (free, used, or metadata a hot-add keeps
	 * in its region) or with the metadata region. */
	bool in_meta = false;
	for (unsigned k = 0; k < mheap_.nnodes; k++) {
		uint64_t ml = align_down(mheap_.meta_base[k], PAGE_SIZE);
		uint64_t mh = align_up(mheap_.meta_base[k] + mheap_.meta_size[k], PAGE_SIZE);
		in_meta |= mheap_.meta_size[k] && s < mh && ml < e;
	}
	if (in_meta || arena_managed_in_locked(pfn, n)) {
		heaps_unlock_all(f);
		return -KMEM_EINVAL;
	}

	/* (and a cache line for the header of the copy room, and a guard
	 * page on either side) */
	uint64_t meta = hot_meta_bytes(pfn, n, r->node);
	uint64_t used = meta ? (align_up(meta + KMEM_CACHE_LINE, PAGE_SIZE) >> PAGE_SHIFT) + 2 : 0;
	if (used >= n) {
		heaps_unlock_all(f);
		return -KMEM_ENOMEM; /* nothing was written */
	}
	/* Its node range (the last check: it writes only if it succeeds). */
	unsigned nr = atomic_load_explicit(&mheap_.nranges, memory_order_relaxed);
	if (mheap_.nnodes > 1 && node_range_add(mheap_.node_ranges, &nr, s, e, r->node, false)) {
		heaps_unlock_all(f);
		return -KMEM_EINVAL;
	}
	/* Published: the entry is complete (kmem_virt_to_node reads it). */
	atomic_store_explicit(&mheap_.nranges, nr, memory_order_release);

	/* The metadata, from the start of the region: chunks, then the arenas
	 * it holds or covers in part, then room for copies of the ones it
	 * covers whole past the metadata (shared below, as kmem_init's). */
	uintptr_t bump = pfn_to_virt(pfn + !!used), bump_end = pfn_to_virt(pfn + used - !!used);
	uint64_t shared = 0;
	for (uint64_t a = pfn >> SUM_ARENA_TOP; a <= (pfn + n - 1) >> SUM_ARENA_TOP; a++) {
		uint64_t p = a << SUM_ARENA_TOP;
		mheap_.update_steps++;
		if (arena_of_pfn(p))
			continue;
		if (p >= pfn + used && p + ARENA_PAGES <= pfn + n) {
			shared++;
			continue;
		}
		int err = arena_create_locked(p, r->node, &bump, bump_end);
		KASSERT(err == 0); /* counted above */
		(void)err;
	}
	if (shared) {
		uintptr_t room = align_up(bump, KMEM_CACHE_LINE);
		arena_room_push_locked(r->node, room, room + KMEM_CACHE_LINE +
		                                 shared * cline(sizeof(struct heap_arena)));
		bump = room + KMEM_CACHE_LINE + shared * cline(sizeof(struct heap_arena));
	}
	KASSERT(bump <= bump_end);
	/* The metadata pages are the pool's, in use: never handed out, and a
	 * free of a pointer into them is reported as metadata (malloc.c). */
	for (uint64_t p = pfn; p < pfn + used;) {
		struct heap_arena *a = arena_own_locked(p);
		struct pageheap *h = heap_of_pfn(p);
		uint64_t i = p & (ARENA_PAGES - 1), b = i & 63;
		uint64_t cnt = 64 - b < pfn + used - p ? 64 - b : pfn + used - p;
		a->managedbits[i >> 6] |= (cnt == 64 ? ~0ull : ((1ull << cnt) - 1)) << b;
		a->managed += cnt;
		pages_grow_hull_locked(h, p + cnt);
		h->pages_managed += cnt;
		h->pages_metadata += cnt;
		p += cnt;
	}
	if (used) {
		guard_page_locked(pfn);
		guard_page_locked(pfn + used - 1);
	}
	int err = add_pages_locked(pfn + used, n - used, (int)r->node, &bump, bump, true);
	KASSERT(err == 0); /* every chunk and arena exists or is shared */
	(void)err;
	heaps_unlock_all(f);
	guards_protect();
	return (long)(n - used);
}
