/*
 * mm/heaparena.c - the arena index and the page -> span map.  See malloc.c
 * for an overview.
 *
 * Physical memory is cut into 64 MiB arenas.  An arena the memory map
 * touches gets a struct heap_arena in the metadata region; others cost
 * nothing.  An arena the boot map covers whole starts as the shared image
 * of an all-free arena and is copied on its first write (mtypes.h).  A two-level index finds an arena in O(1):
 *     l1[pfn >> 26] -> struct l2_chunk (256 GiB)   arenas[(pfn >> 14) & 4095]
 *
 * Publication: an arena or chunk pointer, and every spans[] entry, is
 * stored with release after the object it points to is fully initialised,
 * and loaded with acquire, so a lock-free kfree on another CPU never sees
 * a half-built span.  A span is unmapped (entries cleared) before its
 * pages go back to the page allocator.
 *
 * Copy on first write: arena_own_locked replaces the shared image by a
 * complete copy with one release store.  A lock-free reader that loaded
 * the image sees no span in that arena, which is true: every span there
 * is published after the copy, by the same lock holder, and a reader that
 * got a pointer into it (acquire on spans[]) loads the copy.
 */
#include "mtypes.h"

struct heap_arena arena_free_image;

/* Fills the shared image: all pages managed and free, summaries of all
 * free blocks.  Idempotent (the content never depends on the map), so
 * every kmem_init may call it before the image is shared. */
void arena_image_build(void)
{
	struct heap_arena *a = &arena_free_image;
	memset(a->pagebits, 0xff, sizeof(a->pagebits));
	memset(a->managedbits, 0xff, sizeof(a->managedbits));
	/* Heap order: level L's nodes are [2^(14-L) - 1, 2^(15-L) - 1). */
	for (unsigned level = SUM_LEAF_LEVEL + 1; level <= SUM_ARENA_TOP; level++) {
		uint64_t first = (1ull << (SUM_ARENA_TOP - level)) - 1, len = 1ull << level;
		for (uint64_t j = first; j < 2 * first + 1; j++)
			a->sum[j] = (struct psum){len, len, len};
	}
	/* Every aligned run of an all-free node, and its start, is the whole
	 * node (pagealloc.c lays out levels 7..14 in order, L rounded up to
	 * a multiple of 4 lanes a node). */
	for (unsigned level = SUM_LEAF_LEVEL + 1, i = 0; level <= SUM_ARENA_TOP; level++)
		for (uint64_t j = 0; j < (1ull << (SUM_ARENA_TOP - level)) * ((level + 3) & ~3u); j++)
			a->amax[i++] = (uint16_t)(1u << level);
	memset(a->wamax, 64, sizeof(a->wamax));
	a->managed = ARENA_PAGES;
}

/* Arena metadata is written a page-sized block at a time, and a block
 * that already holds what it should is left alone.  Most of an arena is
 * zero (spans[], 128 KiB) and most of an L2 chunk too: where the metadata
 * is fresh zero memory (a hosted heap, a region the firmware cleared)
 * those pages are only read and never become resident; elsewhere it costs
 * one read of each block before the write. */
_Static_assert(sizeof(struct heap_arena) % 8 == 0 && sizeof(struct l2_chunk) % 8 == 0,
               "arena metadata is whole words");

static bool block_is_zero(const void *p, size_t n)
{
	const uint64_t *w = p; /* metadata is cache-line aligned, n a multiple of 8 */
	uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	size_t i = 0;
	for (; i + 4 <= n / 8; i += 4) { /* four chains: a read per cycle */
		a0 |= w[i];
		a1 |= w[i + 1];
		a2 |= w[i + 2];
		a3 |= w[i + 3];
	}
	for (; i < n / 8; i++)
		a0 |= w[i];
	return (a0 | a1 | a2 | a3) == 0;
}

static void meta_zero(void *dst, size_t n)
{
	for (size_t off = 0; off < n; off += PAGE_SIZE) {
		size_t len = n - off < PAGE_SIZE ? n - off : PAGE_SIZE;
		if (!block_is_zero((char *)dst + off, len))
			memset((char *)dst + off, 0, len);
	}
}

static void meta_copy(void *dst, const void *src, size_t n)
{
	for (size_t off = 0; off < n; off += PAGE_SIZE) {
		size_t len = n - off < PAGE_SIZE ? n - off : PAGE_SIZE;
		if (memcmp((char *)dst + off, (const char *)src + off, len) != 0)
			memcpy((char *)dst + off, (const char *)src + off, len);
	}
}

/* Copy rooms.  kmem_init sets aside room for a copy of every arena of the
 * boot map, per owner node, in the node's region ([arena_next[n],
 * arena_end[n])); each hot-add that shares arenas puts room for theirs at
 * the start of its region and pushes it on its node's stack.  A room
 * begins with this header, which remembers the range that was current.
 * Every room holds exactly the copies of the arenas shared with it, so a
 * node's rooms together never run out, whichever of its arenas is copied
 * first.  Under the owner's heap.lock, as the copy itself. */
struct copy_room {
	uintptr_t next, end;     /* the range current before this room */
	struct copy_room *below; /* its room */
};

/* Makes [start, end) (cache-line aligned, room for whole copies after the
 * header) node's current room. */
void arena_room_push_locked(unsigned node, uintptr_t start, uintptr_t end)
{
	struct copy_room *r = (struct copy_room *)start;
	r->next = mheap_.arena_next[node];
	r->end = mheap_.arena_end[node];
	r->below = mheap_.arena_room[node];
	mheap_.arena_room[node] = r;
	mheap_.arena_next[node] = start + align_up(sizeof(*r), KMEM_CACHE_LINE);
	mheap_.arena_end[node] = end;
}

struct heap_arena *arena_own_locked(uint64_t pfn)
{
	struct heap_arena *a = arena_of_pfn(pfn);
	KASSERT(a != NULL);
	if (a != &arena_free_image)
		return a;
	unsigned node = (unsigned)arena_owner(pfn);
	uintptr_t p = align_up(mheap_.arena_next[node], KMEM_CACHE_LINE);
	while (p + sizeof(struct heap_arena) > mheap_.arena_end[node]) {
		/* This room is used up: back to the one below it. */
		struct copy_room *r = mheap_.arena_room[node];
		KASSERT(r != NULL);
		mheap_.arena_next[node] = r->next;
		mheap_.arena_end[node] = r->end;
		mheap_.arena_room[node] = r->below;
		p = align_up(mheap_.arena_next[node], KMEM_CACHE_LINE);
	}
	mheap_.arena_next[node] = p + sizeof(struct heap_arena);
	a = (struct heap_arena *)p;
	meta_copy(a, &arena_free_image, sizeof(*a));
	struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[pfn >> SUM_L2_TOP],
	                                          memory_order_relaxed);
	atomic_store_explicit(&c->arenas[(pfn >> SUM_ARENA_TOP) & (L2_ENTRIES - 1)], a,
	                      memory_order_release); /* a is complete */
	return a;
}

static void map_range(struct mspan *s, struct mspan *val)
{
	uint64_t pfn = s->pfn, end = s->pfn + s->npages;
	while (pfn < end) {
		struct heap_arena *a = arena_own_locked(pfn);
		uint64_t i = pfn & (ARENA_PAGES - 1);
		uint64_t stop = ARENA_PAGES - i < end - pfn ? ARENA_PAGES : i + (end - pfn);
		pfn += stop - i;
		for (; i + 4 <= stop; i += 4) { /* four entries a step */
			atomic_store_explicit(&a->spans[i], val, memory_order_release);
			atomic_store_explicit(&a->spans[i + 1], val, memory_order_release);
			atomic_store_explicit(&a->spans[i + 2], val, memory_order_release);
			atomic_store_explicit(&a->spans[i + 3], val, memory_order_release);
		}
		for (; i < stop; i++)
			atomic_store_explicit(&a->spans[i], val, memory_order_release);
	}
}

void arena_map_span_locked(struct mspan *s)
{
	map_range(s, s);
}

void arena_unmap_span_locked(struct mspan *s)
{
	map_range(s, NULL);
}

/* Carves a cache-line aligned block of `size` bytes from [*bump, end). */
static void *bump_carve(uintptr_t *bump, uintptr_t end, size_t size)
{
	uintptr_t p = align_up(*bump, KMEM_CACHE_LINE);
	if (p + size > end || p + size < p)
		return NULL;
	*bump = p + size;
	return (void *)p;
}

/* The arena slot for pfn, creating its L2 chunk and the owner's summaries
 * over it from [*bump, bump_end) if missing; NULL when out of room. */
static _Atomic(struct heap_arena *) *arena_slot_locked(uint64_t pfn, unsigned owner,
                                                       uintptr_t *bump, uintptr_t bump_end)
{
	struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[pfn >> SUM_L2_TOP],
	                                          memory_order_relaxed);
	struct pageheap *h = mheap_.heap[owner];
	if (!h->l2[pfn >> SUM_L2_TOP]) {
		struct l2_sums *m = bump_carve(bump, bump_end, sizeof(*m));
		if (!m)
			return NULL;
		/* amax[] (last) is read only where written (pagealloc.c). */
		meta_zero(m, offsetof(struct l2_sums, amax));
		h->l2[pfn >> SUM_L2_TOP] = m;
	}
	if (!c) {
		c = bump_carve(bump, bump_end, sizeof(*c));
		if (!c)
			return NULL;
		meta_zero(c, sizeof(*c));
		atomic_store_explicit(&mheap_.l1[pfn >> SUM_L2_TOP], c, memory_order_release);
	}
	return &c->arenas[(pfn >> SUM_ARENA_TOP) & (L2_ENTRIES - 1)];
}

/* The owner slot beside an arena slot. */
static uint8_t *owner_slot(uint64_t pfn)
{
	struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[pfn >> SUM_L2_TOP],
	                                          memory_order_relaxed);
	return &c->owner[(pfn >> SUM_ARENA_TOP) & (L2_ENTRIES - 1)];
}

/* Creates the arena holding pfn (and its L2 chunk, and the owner's
 * summaries) for page heap `owner` if missing, carving the metadata from
 * [*bump, bump_end); an arena that exists keeps its owner.  Returns 0 or
 * -KMEM_ENOMEM.  With every heap.lock held (or init). */
int arena_create_locked(uint64_t pfn, unsigned owner, uintptr_t *bump, uintptr_t bump_end)
{
	if (pfn >> SUM_TOP)
		return -KMEM_EINVAL;
	struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[pfn >> SUM_L2_TOP],
	                                          memory_order_relaxed);
	if (c && atomic_load_explicit(&c->arenas[(pfn >> SUM_ARENA_TOP) & (L2_ENTRIES - 1)],
	                              memory_order_relaxed))
		return 0;
	_Atomic(struct heap_arena *) *slot = arena_slot_locked(pfn, owner, bump, bump_end);
	if (!slot)
		return -KMEM_ENOMEM;
	struct heap_arena *a = bump_carve(bump, bump_end, sizeof(*a));
	if (!a)
		return -KMEM_ENOMEM;
	meta_zero(a, sizeof(*a));
	*owner_slot(pfn) = (uint8_t)owner;
	atomic_store_explicit(slot, a, memory_order_release);
	mheap_.narenas++;
	return 0;
}

/* Makes the missing arena at pfn (arena-aligned) the shared all-free
 * image, owned by `owner`: the whole arena joins the pool without a write
 * to it.  The caller updates the summaries above the arena and the page
 * counts. */
int arena_share_locked(uint64_t pfn, unsigned owner, uintptr_t *bump, uintptr_t bump_end)
{
	KASSERT((pfn & (ARENA_PAGES - 1)) == 0 && !(pfn >> SUM_TOP));
	_Atomic(struct heap_arena *) *slot = arena_slot_locked(pfn, owner, bump, bump_end);
	if (!slot)
		return -KMEM_ENOMEM;
	KASSERT(atomic_load_explicit(slot, memory_order_relaxed) == NULL);
	*owner_slot(pfn) = (uint8_t)owner;
	atomic_store_explicit(slot, &arena_free_image, memory_order_release);
	mheap_.narenas++;
	return 0;
}

/* Whether any page of [pfn, pfn + npages) is in the pool: a word at a
 * time in arenas that have managed pages, an arena or chunk at a time
 * where there is none.  With every heap.lock held. */
bool arena_managed_in_locked(uint64_t pfn, uint64_t npages)
{
	uint64_t end = pfn + npages;
	for (uint64_t p = pfn; p < end;) {
		mheap_.update_steps++;
		if (!atomic_load_explicit(&mheap_.l1[p >> SUM_L2_TOP], memory_order_relaxed)) {
			p = ((p >> SUM_L2_TOP) + 1) << SUM_L2_TOP;
			continue;
		}
		uint64_t stop = (p | (ARENA_PAGES - 1)) + 1;
		if (stop > end)
			stop = end;
		struct heap_arena *a = arena_of_pfn(p);
		if (a == &arena_free_image)
			return true;
		for (; a && a->managed && p < stop; p = (p | 63) + 1, mheap_.update_steps++) {
			uint64_t i = p & (ARENA_PAGES - 1), n = stop - p < 64 - (i & 63) ? stop - p : 64 - (i & 63);
			uint64_t mask = (n == 64 ? ~0ull : (1ull << n) - 1) << (i & 63);
			if (a->managedbits[i >> 6] & mask)
				return true;
		}
		p = stop;
	}
	return false;
}

/* The page belongs to the pool (free, in a span, or taken for metadata).
 * Reads [heap] bits: exact under its owner's heap.lock or at quiescence. */
bool pfn_is_managed(uint64_t pfn)
{
	struct heap_arena *a = arena_of_pfn(pfn);
	uint64_t i = pfn & (ARENA_PAGES - 1);
	return a && ((a->managedbits[i >> 6] >> (i & 63)) & 1);
}

/* Descriptorless page runs (mtypes.h, PKIND_*): marks the pages of the
 * run [pfn, pfn + npages) live (its first page says its length) or not.
 * The pages are in use, so their arenas are already owned.  Under
 * the owner's heap.lock. */
void arena_run_mark_locked(uint64_t pfn, uint64_t npages, bool live)
{
	KASSERT(npages >= 1 && npages <= RUN_INLINE_MAX);
	for (uint64_t i = 0; i < npages; i++) {
		struct heap_arena *a = arena_of_pfn(pfn + i);
		KASSERT(a != NULL && a != &arena_free_image);
		a->pagekind[(pfn + i) & (ARENA_PAGES - 1)] =
			(uint8_t)(!live ? PKIND_NONE : i ? PKIND_RUN_TAIL : npages);
	}
}

/* The live descriptorless run holding page pfn: its first page and
 * length.  At most RUN_INLINE_MAX steps back.  Under the owner's heap.lock. */
bool arena_run_of_locked(uint64_t pfn, uint64_t *head, uint64_t *npages)
{
	for (uint64_t p = pfn; pfn - p < RUN_INLINE_MAX; p--) {
		struct heap_arena *a = arena_of_pfn(p);
		if (!a)
			return false;
		unsigned k = a->pagekind[p & (ARENA_PAGES - 1)];
		if (k >= 1 && k <= RUN_INLINE_MAX) {
			*head = p;
			*npages = k;
			return p + k > pfn;
		}
		if (k != PKIND_RUN_TAIL || p == 0)
			return false;
	}
	return false;
}
