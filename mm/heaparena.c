/*
 * mm/heaparena.c - the arena index and the page -> span map.  See malloc.c
 * for an overview.
 *
 * Physical memory is cut into 64 MiB arenas.  An arena the memory map
 * touches gets a struct heap_arena in the metadata region; others cost
 * nothing.  A two-level index finds an arena in O(1):
 *     l1[pfn >> 26] -> struct l2_chunk (256 GiB)   arenas[(pfn >> 14) & 4095]
 *
 * Publication: an arena or chunk pointer, and every spans[] entry, is
 * stored with release after the object it points to is fully initialised,
 * and loaded with acquire, so a lock-free kfree on another CPU never sees
 * a half-built span.  A span is unmapped (entries cleared) before its
 * pages go back to the page allocator.
 */
#include "mtypes.h"

static void map_range(struct mspan *s, struct mspan *val)
{
	uint64_t pfn = s->pfn, end = s->pfn + s->npages;
	while (pfn < end) {
		struct heap_arena *a = arena_of_pfn(pfn);
		KASSERT(a != NULL);
		uint64_t i = pfn & (ARENA_PAGES - 1);
		uint64_t stop = ARENA_PAGES - i < end - pfn ? ARENA_PAGES : i + (end - pfn);
		for (; i < stop; i++, pfn++)
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

/* Creates the arena holding pfn (and its L2 chunk) if missing, carving the
 * metadata from [*bump, bump_end).  Returns 0 or -KMEM_ENOMEM. */
int arena_create_locked(uint64_t pfn, uintptr_t *bump, uintptr_t bump_end)
{
	if (pfn >> SUM_TOP)
		return -KMEM_EINVAL;
	struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[pfn >> SUM_L2_TOP],
	                                          memory_order_relaxed);
	if (!c) {
		uintptr_t p = align_up(*bump, KMEM_CACHE_LINE);
		if (p + sizeof(struct l2_chunk) > bump_end)
			return -KMEM_ENOMEM;
		*bump = p + sizeof(struct l2_chunk);
		c = (struct l2_chunk *)p;
		memset(c, 0, sizeof(*c));
		atomic_store_explicit(&mheap_.l1[pfn >> SUM_L2_TOP], c, memory_order_release);
	}
	_Atomic(struct heap_arena *) *slot = &c->arenas[(pfn >> SUM_ARENA_TOP) & (L2_ENTRIES - 1)];
	if (atomic_load_explicit(slot, memory_order_relaxed))
		return 0;
	uintptr_t p = align_up(*bump, KMEM_CACHE_LINE);
	if (p + sizeof(struct heap_arena) > bump_end)
		return -KMEM_ENOMEM;
	*bump = p + sizeof(struct heap_arena);
	struct heap_arena *a = (struct heap_arena *)p;
	memset(a, 0, sizeof(*a));
	a->pfn_base = pfn & ~(uint64_t)(ARENA_PAGES - 1);
	atomic_store_explicit(slot, a, memory_order_release);
	mheap_.narenas++;
	return 0;
}

/* The page belongs to the pool (free, in a span, or taken for metadata).
 * Reads [heap] bits: exact under mheap.lock or at quiescence. */
bool pfn_is_managed(uint64_t pfn)
{
	struct heap_arena *a = arena_of_pfn(pfn);
	uint64_t i = pfn & (ARENA_PAGES - 1);
	return a && ((a->managedbits[i >> 6] >> (i & 63)) & 1);
}
