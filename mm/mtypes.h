/*
 * mm/mtypes.h - the allocator's types.  See malloc.c for an overview.
 *
 * Glossary
 *   page        4 KiB, the unit of the page allocator (KMEM_PAGE_SIZE).
 *   pfn         physical page number: physical address >> 12.
 *   span        (struct mspan) a run of pages with one use: small objects
 *               of one class, one large object, or nothing (free pages are
 *               not spans: the page bitmaps track them).
 *   size class  one of KMEM_NUM_CLASSES-1 object sizes (sizeclasses.c).
 *   span class  here the same as the size class; object caches make
 *               private "classes" with their own struct mcentral.
 *   arena       (struct heap_arena) the metadata for one 64 MiB window of
 *               physical memory: page -> span map, page bitmap, summaries.
 *   mcache      per-CPU cache: for each class the span it allocates from,
 *               and a stash of exhausted spans it keeps (mcache.c).
 *   mcentral    per class: the spans no CPU holds, partial and full, plus
 *               a lock-free stack of spans that received frees.
 *   mheap       the page allocator, the arena index and the global lock.
 *   sweep       folding a span's freed bitmap into its alloc bitmap.
 *   metadata    everything here; it lives in the metadata region (or in
 *               pages the mheap took for it), never in client memory.
 *
 * Protection notation used on every shared field:
 *   [const]      written once before the structure is published.
 *   [owner]      written only by the span's owner: the CPU whose mcache
 *                holds it (IRQs off) or the holder of its mcentral lock
 *                when no CPU holds it; read by others with atomics.
 *   [atomic]     any CPU, atomic read-modify-write.
 *   [central]    protected by mcentral.lock.
 *   [heap]       protected by mheap.lock.
 *   [cpu]        CPU-local, IRQs off.
 */
#ifndef SPANALLOC_MTYPES_H
#define SPANALLOC_MTYPES_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spanalloc.h"
#include "spanalloc/arch.h"
#include "sizeclasses.h"

/* Optional arch hook (spanalloc/arch.h); the portable version. */
#ifndef arch_bit_test_and_set
static inline bool arch_bit_test_and_set_c(_Atomic uint64_t *bits, uint32_t i)
{
	uint64_t bit = 1ull << (i % 64);
	return (atomic_fetch_or_explicit(&bits[i / 64], bit, memory_order_seq_cst) & bit) != 0;
}
#define arch_bit_test_and_set(bits, i) arch_bit_test_and_set_c(bits, i)
#endif

/* The environment provides these four and nothing else. */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#ifndef KMEM_CACHE_LINE
#define KMEM_CACHE_LINE 64
#endif

/* Debug level: 0 none, 1 cheap checks (default), 2 internal (lock order),
 * 3 expensive (full span checks on every sweep). */
#ifndef KMEM_DEBUG
#define KMEM_DEBUG 1
#endif

/* Debug heap (see spanalloc.h): poison, red zones and callers for every
 * kmalloc class.  Object caches choose per cache at run time. */
#ifndef KMEM_DEBUG_HEAP
#define KMEM_DEBUG_HEAP 0
#endif
#define POISON_FREE 0x6b
#define POISON_REDZONE 0xcc

#define PAGE_SHIFT KMEM_PAGE_SHIFT
#define PAGE_SIZE KMEM_PAGE_SIZE

/* Arenas: 64 MiB of physical address space each. */
#define ARENA_SHIFT 26
#define ARENA_PAGES (1ul << (ARENA_SHIFT - PAGE_SHIFT)) /* 16384 */
#define ARENA_WORDS (ARENA_PAGES / 64)                   /* 256 */
/* Two-level arena index: L1 covers 256 GiB per entry. */
#define L2_BITS 12
#define L1_BITS (KMEM_PHYS_BITS - ARENA_SHIFT - L2_BITS) /* 10 */
#define L1_ENTRIES (1ul << L1_BITS)
#define L2_ENTRIES (1ul << L2_BITS)

/* The summary radix tree spans every physical page: level L covers 2^L
 * pages.  Leaves (level 6) are bitmap words; levels 7..14 are stored in the
 * arena, 15..26 in the L2 chunk, 27..36 in the mheap. */
#define SUM_LEAF_LEVEL 6
#define SUM_ARENA_TOP (ARENA_SHIFT - PAGE_SHIFT)      /* 14 */
#define SUM_L2_TOP (SUM_ARENA_TOP + L2_BITS)          /* 26 */
#define SUM_TOP (KMEM_PHYS_BITS - PAGE_SHIFT)         /* 36 */
#define SUM_NODES(lo, hi) ((1ul << ((hi) - (lo) + 1)) - 1) /* levels lo..hi */

#define SPAN_MAX_WORDS (KMEM_MAX_SPAN_OBJECTS / 64)    /* 8 */

/* Aligned summaries (pagealloc.c): a node at level L keeps, for
 * k = 1 .. L-1, the longest free run inside it that starts at a multiple of
 * 2^k pages.  Stored at every arena level (7..14, in 16-bit lanes, four
 * to a word, for updates a word at a time) and at every third level above
 * (17, 20, ..., 35, L-1 entries a node); the levels between are computed
 * from the ones below. */
#define AMAX_WORD_ENTRIES 5      /* a bitmap word (level 6): k = 1..5 */
#define AMAX_ARENA_ENTRIES 2304  /* levels 7..14, 8 to 16 lanes a node */
#define AMAX_CHUNK_ENTRIES 9609  /* levels 17, 20, 23, 26, u32 */
#define AMAX_TOP_ENTRIES 4148    /* levels 29, 32, 35 */

_Static_assert(KMEM_PAGE_SIZE == 4096, "pages are 4 KiB");
_Static_assert(L1_BITS == 10, "48-bit physical space, 64 MiB arenas");
_Static_assert(KMEM_MAX_SPAN_OBJECTS % 64 == 0, "bitmaps are whole words");
_Static_assert(KMEM_SMALL_OBJ_MAX == KMEM_SMALL_MAX, "header and table agree");

/* ---------------------------------------------------------------------------
 * Spin locks (lock.c).  Always taken with interrupts off.  The order is
 *     LOCK_CACHES < LOCK_CENTRAL < LOCK_HEAP
 * and a CPU may only take a lock of a higher level than any it holds
 * (asserted at KMEM_DEBUG >= 2).  fixalloc has no lock: it is used only
 * under mheap.lock.
 */
enum lock_level { LOCK_CACHES = 1, LOCK_CENTRAL = 2, LOCK_HEAP = 3 };

struct spinlock {
	_Atomic unsigned locked;
	unsigned level; /* [const] enum lock_level */
};

/* ---------------------------------------------------------------------------
 * Page summaries: for a block of 2^L pages, the free run at its start, the
 * longest free run in it, and the free run at its end (in pages).
 *   start, end <= max <= 2^L;  start == 2^L  <=>  the block is all free.
 */
struct psum {
	uint64_t start, max, end;
};

/* ---------------------------------------------------------------------------
 * Spans
 */
enum span_state {
	SPAN_DEAD = 0,     /* descriptor on the fixalloc free list */
	SPAN_SMALL,        /* objects of a class (or cache) */
	SPAN_LARGE,        /* one large object */
	SPAN_RUN,          /* a kpage_alloc run */
	SPAN_FREEING,      /* large/run being freed (claims the free) */
};

/* Where a small span is; decides who may sweep it and who must make it
 * findable after a free.  LOC_LISTED is set exactly in the locations where
 * a free must queue the span (kfree tests one bit):
 *     loc & LOC_LISTED  <=>  loc == LOC_PARTIAL || loc == LOC_FULL */
enum span_loc {
	LOC_CACHED = 0,   /* in an mcache (or its stash): the owner CPU sweeps it in place */
	LOC_QUEUED = 1,   /* on a list and pushed on mcentral.unswept */
	LOC_SWEEPING = 2, /* being swept by an mcentral lock holder */
	LOC_EMPTY = 3,    /* swept empty, kept in mcentral.empty for reuse */
	LOC_LISTED = 8,
	LOC_PARTIAL = LOC_LISTED | 1, /* in mcentral.partial */
	LOC_FULL = LOC_LISTED | 2,    /* in mcentral.full */
};

/* A span's sweep state packs its location with a generation that grows
 * each time the descriptor is released, so a lock-free kfree that raced
 * with the release cannot act on the descriptor's next life (its CAS on
 * the old generation fails). */
#define SS_MAKE(gen, loc) (((uint64_t)(gen) << 8) | (uint64_t)(loc))
#define SS_LOC(x) ((unsigned)((x) & 0xff))
#define SS_GEN(x) ((x) >> 8)

struct mcentral;
struct kmem_cache;

/* Per-object debug record (debug spans only), in the metadata region. */
struct obj_debug {
	uint32_t size;    /* bytes asked for */
	uint32_t live;    /* 1 while allocated */
	uintptr_t caller; /* allocating return address */
};

/*
 * struct mspan.  Object n lives at base + n * elemsize.
 *
 * Allocation state (Go's scheme): object n is allocated iff
 *     n < freeindex  ||  alloc_bits[n] == 1
 * and an allocated object is free again once freed_bits[n] is set (it is
 * reused only after a sweep).  Bits at and above nelems are set in
 * alloc_bits forever so that ~alloc_bits never offers them.
 *     alloc_cache == ~alloc_bits[freeindex / 64] >> (freeindex % 64)
 *                    with bits below freeindex%64 consumed
 *     alloc_count == popcount(alloc_bits) - (bits >= nelems) after a sweep
 *
 * The fast paths' gate (kfree tests one field for three conditions):
 *     fast_nelems != 0  =>  state == SPAN_SMALL && dbg == NULL
 *                           && fast_nelems == nelems
 * Set by span_init_small for a span without debug records, cleared
 * before the span is released; 0 in large objects and page runs.
 *
 * The first line holds what the fast paths read.
 */
struct mspan {
	alignas(KMEM_CACHE_LINE)
	uint64_t alloc_cache;          /* [owner] */
	_Atomic uint32_t freeindex;    /* [owner], release store; others acquire */
	_Atomic uint32_t fast_nelems;  /* [central] writes (see above), relaxed reads */
	uintptr_t base;                /* [const] virtual address of page 0 */
	uint64_t elemsize;             /* [const] */
	uint64_t divmul;               /* [const] offset/elemsize via multiply */
	_Atomic uint64_t *alloc_bits;  /* [owner] words; relaxed atomics */
	_Atomic uint64_t *freed_bits;  /* [atomic] set by kfree, taken by sweep */
	_Atomic uint64_t sweepstate;   /* [atomic] SS_MAKE(generation, enum span_loc) */
	_Atomic uint32_t state;        /* [heap] writes, [atomic] reads; CAS to free (32-bit: riscv has no byte CAS) */
	uint8_t on_list;               /* [central] 0, LOC_PARTIAL, LOC_FULL or LOC_EMPTY */
	uint16_t alloc_count;          /* [owner] objects allocated at last sweep */
	uint16_t sizeclass;            /* [const] class, 0 for caches/large/runs */
	uint32_t nelems;               /* [const] */

	uint64_t npages;               /* [const] */
	uint64_t pfn;                  /* [const] first physical page */
	struct mcentral *central;      /* [const] small spans: the class's central */
	struct kmem_cache *cache;      /* [const] owning object cache or NULL */
	struct mspan *next, *prev;     /* [central] list links; [heap] when dead;
	                                  next: [cpu] link of a CPU's stash */
	struct mspan *unswept_next;    /* written by the pusher before publish */
	struct obj_debug *dbg;         /* [const] debug spans: nelems records,
	                                  each written by its object's owner */
	uintptr_t caller;              /* large objects/runs: allocating caller */
};

/* ---------------------------------------------------------------------------
 * mcentral: per class (and per object cache).
 */
struct span_list {
	struct mspan *first;
	uint64_t count;
};

struct mcentral {
	alignas(KMEM_CACHE_LINE)
	struct spinlock lock;
	struct span_list partial;       /* [central] spans with free objects */
	struct span_list full;          /* [central] spans without */
	struct span_list empty;         /* [central] swept empty, kept for reuse:
	                                   empty.count <= empty_max */
	struct mspan *_Atomic unswept;  /* [atomic] push by kfree; pop-all by lock holder */
	/* Geometry [const]. */
	uint32_t elemsize;
	uint32_t npages;
	uint32_t nelems;
	uint32_t align_pages;
	uint32_t empty_max;             /* [const] empty spans kept (>= 1) */
	uint32_t stash_max;             /* [const] exhausted spans a CPU may keep
	                                   in its stash (mcache.c); 0: none */
	uint64_t divmul;
	uint16_t sizeclass;             /* 0 for object caches */
	uint32_t debug;                 /* KMEM_DEBUG_* flags for its spans */
	struct kmem_cache *cache;       /* owning cache or NULL */
	/* Statistics. */
	_Atomic uint64_t nfree;         /* [atomic] objects swept free, but for
	                                   kmalloc classes those a CPU swept in
	                                   place (span_stash.nfree) */
	uint64_t spans;                 /* [central] spans of this class held */
	uint64_t peak_spans;            /* [central] */
};

/* ---------------------------------------------------------------------------
 * mcache: one per CPU.  [cpu] except where noted.
 */
struct span_stash {
	struct mspan *first;  /* [cpu] exhausted spans, LOC_CACHED, linked by next */
	uint32_t count;       /* [cpu] <= the class's mcentral.stash_max */
	uint64_t nfree;       /* [cpu] objects this CPU swept free in place; the
	                         class's nfree is mcentral.nfree plus these */
};

struct mcache {
	alignas(KMEM_CACHE_LINE)
	struct mspan *alloc[KMEM_NUM_CLASSES]; /* span to allocate from, per class */
	uint64_t nmalloc[KMEM_NUM_CLASSES];    /* objects handed out, per class */
	struct span_stash stash[KMEM_NUM_CLASSES]; /* kept exhausted spans (mcache.c) */
	bool online;                           /* written under caches lock */
	unsigned lock_levels;                  /* [cpu] bitmask of held lock levels */
};

/* ---------------------------------------------------------------------------
 * Object caches.
 */
#define KMEM_CACHE_MAGIC 0x6b6d656dul /* "kmem" */
#define KMEM_CACHE_DEAD 0x64656164ul  /* "dead" */

struct kmem_cache {
	struct mcentral central;         /* its own spans */
	unsigned long magic;             /* [caches] KMEM_CACHE_MAGIC while alive */
	const char *name;                /* [const] */
	size_t size, align;              /* [const] as asked */
	void (*ctor)(void *);            /* [const] */
	struct mspan **cpu_span;         /* [cpu] per-CPU span, max_cpus entries */
	uint64_t *cpu_nmalloc;           /* [cpu] per-CPU allocation counts */
	struct kmem_cache *next;         /* [caches] list of live caches */
};

/* ---------------------------------------------------------------------------
 * Arenas and the index.
 *   spans[i] != NULL  <=>  page i is in a live span (every page of it).
 *   pagebits bit i == 1  <=>  page i is free in the page allocator.
 *   managedbits bit i == 1  <=>  page i belongs to the pool;
 *   pagebits implies managedbits.
 *   sum[] holds summary levels 7..14 of this arena (heap order), amax[]
 *   and wamax[] their aligned summaries and its words' (pagealloc.c).
 *
 * Lazy arenas: an arena that the boot map (or a hot-added region) covers
 * entirely starts as the shared image arena_free_image (every page managed
 * and free, no span, summaries all free) and gets its own copy in room set
 * aside for it on the first write (arena_own_locked, under mheap.lock,
 * published with release).
 * So init neither writes nor faults in the metadata of memory nobody has
 * used yet, and an arena does not know its own address: callers that walk
 * the index compute the base from the index position.
 *   slot == &arena_free_image  =>  the arena is all managed and all free;
 *   arena_free_image never changes after it is built.
 */
struct heap_arena {
	struct mspan *_Atomic spans[ARENA_PAGES]; /* [heap] writes (release), lock-free reads (acquire) */
	uint64_t pagebits[ARENA_WORDS];           /* [heap] */
	uint64_t managedbits[ARENA_WORDS];        /* [heap] 1 = page is in the pool */
	struct psum sum[SUM_NODES(SUM_LEAF_LEVEL + 1, SUM_ARENA_TOP)]; /* [heap] */
	uint16_t amax[AMAX_ARENA_ENTRIES];        /* [heap] aligned summaries */
	uint8_t wamax[ARENA_WORDS][AMAX_WORD_ENTRIES]; /* [heap] the same per word */
	uint64_t managed;                         /* [heap] pages given to the pool */
};

extern struct heap_arena arena_free_image;

struct l2_chunk {
	struct heap_arena *_Atomic arenas[L2_ENTRIES];  /* [heap] writes, acquire reads */
	struct psum sum[SUM_NODES(SUM_ARENA_TOP + 1, SUM_L2_TOP)]; /* [heap] */
	uint32_t amax[AMAX_CHUNK_ENTRIES];                         /* [heap] */
};

/* ---------------------------------------------------------------------------
 * fixalloc: a free list of fixed-size blocks carved from the metadata
 * region, then from pages the mheap takes from the top of the pool.
 * Protected by mheap.lock.
 */
struct fixalloc {
	size_t size;         /* [const] block size */
	void *free;          /* [heap] list of freed blocks (link in the block:
	                        these blocks are metadata, never client memory) */
	uint64_t inuse;      /* [heap] */
};

/* ---------------------------------------------------------------------------
 * mheap: the one heap.
 */
struct mheap {
	struct spinlock lock;
	uintptr_t offset;                   /* [const] virt = phys + offset */
	unsigned max_cpus;                  /* [const] */
	struct l2_chunk *_Atomic l1[L1_ENTRIES]; /* [heap] writes, acquire reads */
	struct psum sum[SUM_NODES(SUM_L2_TOP + 1, SUM_TOP)]; /* [heap] levels 27..36 */
	/* The hull: every managed pfn < 2^sum_level, SUM_ARENA_TOP <=
	 * sum_level <= SUM_TOP.  Summary levels above it are not kept: node
	 * (L, 0) reads as the hull root with end 0, every other node as all
	 * in use.  Searches start at the hull root. */
	unsigned sum_level;                 /* [heap] only grows */

	/* The metadata region and the bump pointer carving it. */
	uint64_t meta_base, meta_size;      /* [const] physical */
	uintptr_t meta_next, meta_end;      /* [heap] virtual bump range */
	/* Room for the copies of lazy arenas (and the eager ones), sized at
	 * init for every arena of the boot map and by each hot-add for the
	 * arenas it shares: a copy never fails.  arena_room stacks the rooms
	 * hot-adds reserved (heaparena.c); the current one is the bump range. */
	uintptr_t arena_next, arena_end;    /* [heap] virtual bump range */
	void *arena_room;                   /* [heap] the room below, or NULL */

	struct fixalloc spanalloc;          /* [heap] struct mspan */
	struct fixalloc bitsalloc;          /* [heap] 2 * SPAN_MAX_WORDS words */
	struct fixalloc cachealloc;         /* [heap] struct kmem_cache */
	struct fixalloc dbgalloc;           /* [heap] obj_debug[KMEM_MAX_SPAN_OBJECTS] */

	struct mcentral *central;           /* [const] KMEM_NUM_CLASSES entries */
	struct mcache *mcaches;             /* [const] max_cpus entries */

	struct spinlock caches_lock;        /* LOCK_CACHES */
	struct kmem_cache *caches;          /* [caches] live object caches */

	/* Page accounting [heap]. */
	uint64_t pages_managed, pages_free, pages_small, pages_large;
	uint64_t pages_runs, pages_metadata, large_objects, page_runs;
	uint64_t narenas;
	unsigned cpus_online;               /* [caches] */

	kmem_fault_hook_t _Atomic fault_hook;
	kmem_oom_hook_t _Atomic oom_hook;
	bool initialised;
	/* Last: read only where written (pagealloc.c), so init leaves it. */
	uint64_t amax[AMAX_TOP_ENTRIES];    /* [heap] aligned summaries, levels 29..35 */
};

extern struct mheap mheap_;

/* ---------------------------------------------------------------------------
 * Internal interfaces, one block per file.
 */

/* lock.c */
void lock_init(struct spinlock *l, enum lock_level level);
void lock_acquire(struct spinlock *l);
void lock_release(struct spinlock *l);
unsigned long lock_irqsave(struct spinlock *l);
void unlock_irqrestore(struct spinlock *l, unsigned long flags);

/* heaparena.c */
static inline uint64_t virt_to_pfn(uintptr_t v)
{
	return (uint64_t)(v - mheap_.offset) >> PAGE_SHIFT;
}
static inline uintptr_t pfn_to_virt(uint64_t pfn)
{
	return (uintptr_t)(pfn << PAGE_SHIFT) + mheap_.offset;
}
/* The span of a page, O(1): two index levels and the arena's map, each
 * loaded with acquire (pairs with the release that published it). */
static inline struct heap_arena *arena_of_pfn(uint64_t pfn)
{
	if (pfn >> SUM_TOP)
		return NULL;
	struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[pfn >> SUM_L2_TOP],
	                                          memory_order_acquire);
	if (!c)
		return NULL;
	return atomic_load_explicit(&c->arenas[(pfn >> SUM_ARENA_TOP) & (L2_ENTRIES - 1)],
	                            memory_order_acquire);
}
static inline struct mspan *span_of_pfn(uint64_t pfn)
{
	struct heap_arena *a = arena_of_pfn(pfn);
	if (!a)
		return NULL;
	return atomic_load_explicit(&a->spans[pfn & (ARENA_PAGES - 1)], memory_order_acquire);
}
static inline struct mspan *span_of_ptr(const void *p)
{
	return span_of_pfn(virt_to_pfn((uintptr_t)p));
}
void arena_map_span_locked(struct mspan *s);     /* publish all pages */
void arena_unmap_span_locked(struct mspan *s);
int arena_create_locked(uint64_t pfn, uintptr_t *bump, uintptr_t bump_end);
int arena_share_locked(uint64_t pfn, uintptr_t *bump, uintptr_t bump_end);
void arena_room_push_locked(uintptr_t start, uintptr_t end);
bool arena_managed_in_locked(uint64_t pfn, uint64_t npages);
struct heap_arena *arena_own_locked(uint64_t pfn);  /* writable, copied if lazy */
void arena_image_build(void);
bool pfn_is_managed(uint64_t pfn);               /* in an arena and in the pool */

/* pagealloc.c */
#define PAGE_NONE UINT64_MAX
extern uint64_t pages_find_steps, pages_update_steps;
uint64_t pages_find_locked(uint64_t npages, uint64_t align, uint64_t lo, uint64_t hi);
uint64_t pages_find_top_locked(uint64_t npages);
void pages_set_locked(uint64_t pfn, uint64_t npages, bool free);
void sums_above_arenas_locked(uint64_t pfn, uint64_t npages);
void pages_grow_hull_locked(uint64_t end_pfn);
struct psum *sum_ptr(unsigned level, uint64_t idx);
bool pages_all_free_locked(uint64_t pfn, uint64_t npages);
struct psum sum_get(unsigned level, uint64_t idx);
struct psum sum_of_word(uint64_t w);
struct psum sum_combine(struct psum l, struct psum r, uint64_t half);
bool sum_node_ok(unsigned level, uint64_t idx);
uint64_t amax_of_word(uint64_t w, unsigned k);
uint64_t amax_get_locked(unsigned level, uint64_t idx, unsigned k);

/* fixalloc.c */
void fixalloc_init(struct fixalloc *f, size_t size);
void *fixalloc_alloc_locked(struct fixalloc *f);
void fixalloc_free_locked(struct fixalloc *f, void *p);
void *meta_carve_locked(size_t size, size_t align);

/* mspan.c */
void span_init_small(struct mspan *s, struct mcentral *c);
uint32_t span_next_free_index(struct mspan *s);
unsigned span_sweep(struct mspan *s);
bool span_has_freed(const struct mspan *s);
uint32_t span_free_slots(const struct mspan *s);
uint32_t span_live_objects(const struct mspan *s);
static inline uint32_t span_obj_index(const struct mspan *s, uintptr_t off)
{
	return (uint32_t)((off * s->divmul) >> KMEM_DIV_SHIFT);
}
/* Object idx is handed out (and maybe freed since, see freed_bits). */
static inline bool span_obj_allocated(const struct mspan *s, uint32_t idx)
{
	uint32_t fi = atomic_load_explicit(&((struct mspan *)s)->freeindex, memory_order_acquire);
	if (idx < fi)
		return true;
	return (atomic_load_explicit(&s->alloc_bits[idx / 64], memory_order_relaxed) >> (idx % 64)) & 1;
}

/* mcentral.c */
void mcentral_init(struct mcentral *c, unsigned sizeclass, uint32_t elemsize,
                   uint32_t npages, uint32_t nelems, uint32_t align_pages,
                   uint64_t divmul, struct kmem_cache *cache);
struct mspan *mcentral_cache_span(struct mcentral *c);
void mcentral_uncache_span(struct mcentral *c, struct mspan *s);
void mcentral_push_unswept(struct mcentral *c, struct mspan *s);
size_t mcentral_reclaim(struct mcentral *c);
uint64_t mcentral_div_const(uint32_t elemsize);

/* mcache.c */
void *mcache_refill_alloc(struct mspan **slot, struct mcentral *c, struct span_stash *st);
void mcache_flush(unsigned cpu);
static inline struct mcache *mcache_of(unsigned cpu)
{
	return &mheap_.mcaches[cpu];
}

/* mheap.c */
struct mspan *mheap_alloc_span(uint64_t npages, uint64_t align_pages,
                               uint64_t max_pfn, enum span_state state,
                               struct mcentral *central);
void mheap_free_span(struct mspan *s);
void mheap_free_span_locked(struct mspan *s);
void mheap_free_large(struct mspan *s, enum span_state was);
size_t mheap_reclaim(void);

/* fmt.c: one line of text, truncated at 199 characters. */
struct fmtbuf {
	char buf[200];
	size_t len;
};
void fmt_reset(struct fmtbuf *b);
void fmt_str(struct fmtbuf *b, const char *s);
void fmt_num(struct fmtbuf *b, uint64_t v, unsigned base);

/* mstats.c */
void central_stats(const struct mcentral *c, uint64_t nmalloc, uint64_t nfree_cpu,
                   struct kmem_class_stats *out);

/* mcheck.c */
void report_fault(enum kmem_fault_kind kind, const void *addr,
                  const struct mspan *s, const char *detail);

/* malloc.c */
struct kmem_oom_request oom_request(enum kmem_oom_kind kind, size_t bytes, size_t align,
                                    uint64_t max_phys);
bool oom_retry(const struct kmem_oom_request *req, unsigned *tries);
/* Evaluates an allocation, retrying while the OOM hook adds memory for
 * the request `req` (an oom_request(), evaluated once, on failure). */
#define WITH_OOM_RETRY(req, expr)                                 \
	({                                                        \
		void *p_ = (expr);                                \
		if (!p_) {                                        \
			const struct kmem_oom_request req_ = (req); \
			unsigned tries_ = 0;                      \
			while (!p_ && oom_retry(&req_, &tries_))  \
				p_ = (expr);                      \
		}                                                 \
		p_;                                               \
	})
void small_free(struct mspan *s, const void *p);
void *cache_alloc_on_cpu(struct kmem_cache *k);
extern struct mspan empty_span;

/* debug.c */
void debug_on_alloc(void *p, size_t size, uintptr_t caller);
void debug_on_free(struct mspan *s, uint32_t idx, const void *p);
void debug_poison_span(struct mspan *s);
unsigned long debug_check_span(struct mspan *s);
void report_fault_caller(enum kmem_fault_kind kind, const void *addr,
                         const struct mspan *s, const char *detail, uintptr_t caller);

/* kmem_cache.c */
void kmem_caches_cpu_flush(unsigned cpu);
size_t kmem_caches_reclaim(void);

/* Assertions: KASSERT (level 1, cheap), KASSERT2 (internal), KASSERT3
 * (expensive).  A failed assertion panics with file and line. */
void assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define KASSERT_AT(lvl, e) \
	do { if (KMEM_DEBUG >= (lvl) && !(e)) assert_fail(#e, __FILE__, __LINE__); } while (0)
#define KASSERT(e) KASSERT_AT(1, e)
#define KASSERT2(e) KASSERT_AT(2, e)
#define KASSERT3(e) KASSERT_AT(3, e)

static inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }
static inline uint64_t align_down(uint64_t x, uint64_t a) { return x & ~(a - 1); }
static inline bool is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

/* Count trailing / leading zeros of a nonzero word without libgcc: on
 * riscv64 without Zbb the builtins call __ctzdi2/__clzdi2. */
static inline unsigned ctz64(uint64_t x)
{
#if defined(__riscv) && !defined(__riscv_zbb)
	static const unsigned char debruijn[64] = {
		0,  1,  2,  53, 3,  7,  54, 27, 4,  38, 41, 8,  34, 55, 48, 28,
		62, 5,  39, 46, 44, 42, 22, 9,  24, 35, 59, 56, 49, 18, 29, 11,
		63, 52, 6,  26, 37, 40, 33, 47, 61, 45, 43, 21, 23, 58, 17, 10,
		51, 25, 36, 32, 60, 20, 57, 16, 50, 31, 19, 15, 30, 14, 13, 12};
	return debruijn[((x & -x) * 0x022fdd63cc95386dull) >> 58];
#else
	return (unsigned)__builtin_ctzll(x);
#endif
}

static inline unsigned clz64(uint64_t x)
{
#if defined(__riscv) && !defined(__riscv_zbb)
	unsigned n = 0;
	if (!(x >> 32)) { n += 32; x <<= 32; }
	if (!(x >> 48)) { n += 16; x <<= 16; }
	if (!(x >> 56)) { n += 8; x <<= 8; }
	if (!(x >> 60)) { n += 4; x <<= 4; }
	if (!(x >> 62)) { n += 2; x <<= 2; }
	if (!(x >> 63)) n += 1;
	return n;
#else
	return (unsigned)__builtin_clzll(x);
#endif
}

/* Population count without libgcc (__builtin_popcountll may call
 * __popcountdi2 on CPUs without a popcnt instruction). */
static inline unsigned popcount64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

#endif /* SPANALLOC_MTYPES_H */
