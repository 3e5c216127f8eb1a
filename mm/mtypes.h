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
 *   object state  one byte per object of a small span, in the span's
 *               metadata block: OBJ_CLIENT (handed out), OBJ_FREE (in the
 *               span), or the id of the magazine that holds it.
 *   magazine    (struct magazine) a bounded array of free objects of one
 *               class, in metadata (magazine.c).
 *   depot       per class: full and empty magazines no CPU holds.
 *   mcache      per-CPU cache: for each class a loaded and a previous
 *               magazine and the span it fills them from (mcache.c).
 *   mcentral    per class: the spans no CPU holds, partial and full, plus
 *               a lock-free stack of spans that received frees, and the
 *               class's depot.
 *   mheap       the heap: the arena index, the nodes and their page heaps.
 *   pageheap    a node's page allocator over the arenas it owns, with its
 *               own lock (heap.lock).
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
 *   [heap]       protected by heap.lock: of the page heap that owns the
 *                arena (arena data), of the node n ([heap n], per-node
 *                metadata state and lists).
 *   [all heaps]  written with every heap.lock held (init, hot-add).
 *   [depot]      protected by depot.lock.
 *   [cpu]        CPU-local, IRQs off.
 *   [cpu,xchg]   written by its CPU with IRQs off, always by atomic exchange,
 *                so that another CPU may take it over with an exchange too.
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

/* Object states (mspan.objstate[], one byte per object; see malloc.c):
 *   OBJ_CLIENT          handed out to a client: the only state kfree accepts
 *   1 .. MAG_ID_MAX     free, held by the magazine with that id (of the
 *                       span's class)
 *   OBJ_FREE            free in the span: never handed out, or given back
 *                       to it (its freed bit set or already swept)
 *   OBJ_QUARANTINE      freed by its client, held by the hardened mode's
 *                       quarantine (harden.c): taken, no freed bit, no
 *                       magazine
 *   OBJ_DEFERRED        given to kfree_deferred, waiting for its grace
 *                       period in a batch (deferred.c): taken, no freed
 *                       bit, no magazine */
#define OBJ_CLIENT 0x00u
#define OBJ_FREE 0xffu
#define OBJ_QUARANTINE 0xfeu
#define OBJ_DEFERRED 0xfdu
#define MAG_ID_MAX 0xfcu
/* Entries per magazine; a class uses cap <= MAG_CAP_MAX of them. */
#define MAG_CAP_MAX 64u
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
 *     LOCK_CACHES < LOCK_DEPOT < LOCK_CENTRAL < LOCK_HEAP
 * and a CPU may only take a lock of a higher level than any it holds
 * (asserted at KMEM_DEBUG >= 2).  The nodes' heap.locks are one level:
 * a CPU holds one at a time, or all of them in node order
 * (heaps_lock_all).  fixalloc has no lock of its own: each node's lists
 * are under that node's heap.lock.
 */
enum lock_level { LOCK_CACHES = 1, LOCK_DEPOT = 2, LOCK_CENTRAL = 3, LOCK_HEAP = 4,
                  LOCK_QUARANTINE = 5, /* harden.c: a leaf, taken with no other held */
                  LOCK_DEFER = 6 /* deferred.c: per-CPU batches, a leaf as well */ };

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
	uint32_t live;    /* generation: % 4 == 2 while allocated, 0 free,
	                     odd while changing (debug.c, harden.c) */
	uintptr_t caller; /* allocating return address */
};

/*
 * struct mspan.  Object n lives at base + n * elemsize.
 *
 * Allocation state (Go's scheme): object n is taken from the span iff
 *     n < freeindex  ||  alloc_bits[n] == 1
 * and a taken object is given back by setting freed_bits[n] (it is reused
 * only after a sweep).  Bits at and above nelems are set in alloc_bits
 * forever so that ~alloc_bits never offers them.
 *     alloc_cache == ~alloc_bits[freeindex / 64] >> (freeindex % 64)
 *                    with bits below freeindex%64 consumed
 *     alloc_count == popcount(alloc_bits) - (bits >= nelems) after a sweep
 *
 * Object state (objstate[n], one byte, malloc.c explains the protocol):
 *     objstate[n] == OBJ_FREE    =>  n is not taken, or freed_bits[n] == 1
 *     objstate[n] != OBJ_FREE    =>  n is taken and freed_bits[n] == 0
 *     objstate[nelems] == OBJ_FREE (the tail slot: a pointer into the tail
 *                                   finds a state that is never OBJ_CLIENT)
 * A taken object is a client's (OBJ_CLIENT) or sits in a magazine (its id).
 *
 * The fast paths' gate (kfree tests one field for four conditions):
 *     fast_nelems != 0  =>  state == SPAN_SMALL && dbg == NULL
 *                           && cache == NULL && fast_nelems == nelems
 * Set by span_init_small for a kmalloc span without debug records,
 * cleared before the span is released; 0 in large objects, page runs,
 * object caches' spans and debug spans.
 *
 * The first line holds what kfree reads; the owner's fields are on the
 * next, so that a CPU filling magazines from the span does not write the
 * line every freeing CPU reads.
 */
struct mspan {
	alignas(KMEM_CACHE_LINE)
	_Atomic uint8_t *objstate;     /* [const] nelems + 1 bytes; see above */
	uintptr_t base;                /* [const] virtual address of page 0 */
	uint64_t divmul;               /* [const] offset/elemsize via multiply */
	uint64_t elemsize;             /* [const] */
	_Atomic uint32_t fast_nelems;  /* [central] writes (see above), relaxed reads */
	uint16_t sizeclass;            /* [const] class, 0 for caches/large/runs */
	_Atomic uint32_t state;        /* [heap] writes, [atomic] reads; CAS to free (32-bit: riscv has no byte CAS) */
	uint8_t node;                  /* [const] small spans: its mcentral's node
	                                  (kfree keeps other nodes' objects out of
	                                  this CPU's magazines); else its pages' */
	_Atomic uint64_t *freed_bits;  /* [atomic] set by frees to the span, taken by sweep */

	alignas(KMEM_CACHE_LINE)
	uint64_t alloc_cache;          /* [owner] */
	_Atomic uint32_t freeindex;    /* [owner], release store; others acquire */
	uint32_t nelems;               /* [const] */
	_Atomic uint64_t *alloc_bits;  /* [owner] words; relaxed atomics */
	_Atomic uint64_t sweepstate;   /* [atomic] SS_MAKE(generation, enum span_loc) */
	uint8_t on_list;               /* [central] 0, LOC_PARTIAL, LOC_FULL or LOC_EMPTY */
	uint16_t alloc_count;          /* [owner] objects taken at last sweep */
	uint8_t meta_bucket;           /* [const] which fixalloc holds alloc_bits */

	uint64_t npages;               /* [const] */
	uint64_t pfn;                  /* [const] first physical page */
	struct mcentral *central;      /* [const] small spans: the class's central */
	struct kmem_cache *cache;      /* [const] owning object cache or NULL */
	struct mspan *next, *prev;     /* [central] list links; [heap] when dead */
	struct mspan *unswept_next;    /* written by the pusher before publish */
	struct obj_debug *dbg;         /* [const] debug spans: nelems records,
	                                  each written by its object's owner */
	uintptr_t caller;              /* large objects/runs: allocating caller */
	/* Hardened large objects (harden.c), [const]; 0 otherwise. */
	uint64_t hsize;                /* bytes asked for */
	uint32_t hflags;               /* HL_* */
};

/* Debug records come in blocks for up to 16, 64, 256 or 512 objects:
 * hardened mode gives every kmalloc span records, most spans hold far
 * fewer than KMEM_MAX_SPAN_OBJECTS objects. */
#define DBG_BUCKETS 4
static inline unsigned dbg_bucket(uint32_t nelems)
{
	return nelems <= 16 ? 0 : nelems <= 64 ? 1 : nelems <= 256 ? 2 : 3;
}
static inline uint32_t dbg_bucket_objs(unsigned b)
{
	return b == 3 ? KMEM_MAX_SPAN_OBJECTS : 16u << (2 * b);
}
_Static_assert(KMEM_MAX_SPAN_OBJECTS == 512, "the last debug bucket holds the biggest span");

/* A small span's metadata block: alloc_bits[nw] | freed_bits[nw] |
 * objstate[nelems + 1], nw = ceil(nelems / 64), from one of the
 * SPAN_META_BUCKETS fixallocs (the smallest that fits). */
#define SPAN_META_BUCKETS 4
static inline size_t span_meta_bytes(uint32_t nelems)
{
	return 2 * 8 * (size_t)((nelems + 63) / 64) + nelems + 1;
}

/* ---------------------------------------------------------------------------
 * Magazines (magazine.c): free objects of one class, held by a CPU or by
 * the class's depot.  An object in magazine m has objstate == m->id;
 * at most one live magazine of a class has a given id.
 */
struct magazine {
	struct magazine *next;         /* [depot] link in a depot list */
	uint32_t n;                    /* objects held (a loaded magazine's count
	                                  is its mag_slot's n until unloaded) */
	uint8_t id;                    /* [const] 1..MAG_ID_MAX, unique in its class */
	void *obj[MAG_CAP_MAX];        /* obj[0..n) */
	_Atomic uint8_t *st[MAG_CAP_MAX]; /* st[i]: the state byte of obj[i] */
};
_Static_assert(offsetof(struct magazine, st) ==
               offsetof(struct magazine, obj) + MAG_CAP_MAX * sizeof(void *),
               "st[] follows obj[]: the fast paths index both from obj");

/* The depot: per class, full magazines and empty ones no CPU holds.
 *     nfull <= full_max;  every magazine of the class is loaded or previous
 *     on one CPU, or on one of these lists */
struct depot {
	alignas(KMEM_CACHE_LINE)
	struct spinlock lock;          /* LOCK_DEPOT, a leaf but for heap.lock */
	struct magazine *full;         /* [depot] */
	struct magazine *empty;        /* [depot] */
	_Atomic uint32_t nfull;        /* [depot] writes; relaxed reads as a hint */
	uint32_t nempty;               /* [depot] */
	uint32_t full_max;             /* [const] */
	uint32_t nmags;                /* [depot] magazines of the class alive */
	struct mspan *shared;          /* [depot] span that contexts nested in a
	                                  fast path allocate from (LOC_CACHED) */
	uint64_t ids[4];               /* [depot] bit i: id i is in use */
};

/* A CPU's loaded magazine of one class, unpacked for the fast paths. */
/* The entries are pointers into loaded->obj[], so that a push and a pop
 * each compare and move one pointer:
 *     base == loaded->obj,  base <= top <= end == base + cap
 *     objects held == top - base;  top[MAG_CAP_MAX] is top[0]'s state
 * With no magazine loaded, base == top == end == NULL: every push and pop
 * goes to the slow path. */
struct mag_slot {
	void **top;                    /* [cpu] next free entry */
	void **end;                    /* [cpu] past the last entry */
	void **base;                   /* [cpu] the first entry */
	uint64_t id;                   /* [cpu] loaded->id */
};
_Static_assert(sizeof(struct mag_slot) == 32, "two slots per cache line");

static inline uint32_t mag_slot_n(const struct mag_slot *ms)
{
	return (uint32_t)(ms->top - ms->base);
}

/* The rest of a CPU's state for one class (cold). */
struct cpu_class {
	struct magazine *loaded;       /* [cpu] the magazine behind the slot */
	struct magazine *_Atomic prev; /* [cpu,xchg] Bonwick's previous magazine */
	struct mspan *_Atomic span;    /* [cpu,xchg] the span magazines are filled
	                                  from (LOC_CACHED), or NULL */
	uint64_t nmalloc;              /* [cpu] objects handed to clients, ever
	                                  (but by kmalloc's fast path) */
	uint64_t nfree;                /* [cpu] objects clients freed, ever (but
	                                  by kfree's fast path) */
};

/* ---------------------------------------------------------------------------
 * mcentral: per class (and per object cache).
 */
struct span_list {
	struct mspan *first;
	uint64_t count;
};

/* Queued spans a refill sweeps at most (mcentral.c, drain_unswept_locked). */
#define DRAIN_BUDGET 8u

struct mcentral {
	alignas(KMEM_CACHE_LINE)
	struct spinlock lock;
	struct span_list partial;       /* [central] spans with free objects */
	struct span_list full;          /* [central] spans without */
	struct span_list empty;         /* [central] swept empty, kept for reuse:
	                                   empty.count <= empty_max */
	struct mspan *_Atomic unswept;  /* [atomic] push by frees; pop-all by lock holder */
	/* Geometry [const]. */
	uint32_t elemsize;
	uint32_t npages;
	uint32_t nelems;
	uint32_t align_pages;
	uint32_t empty_max;             /* [const] empty spans kept (>= 1) */
	uint32_t mag_cap;               /* [const] objects per magazine; 0: the
	                                   class has no magazines (debug spans) */
	uint64_t divmul;
	uint16_t sizeclass;             /* 0 for object caches */
	uint8_t node;                   /* NUMA node its spans are asked from */
	uint32_t debug;                 /* KMEM_DEBUG_* flags for its spans */
	struct kmem_cache *cache;       /* owning cache or NULL */
	/* Statistics. */
	_Atomic uint64_t nmalloc;       /* [atomic] allocations counted on no CPU
	                                   (nested contexts) */
	_Atomic uint64_t nfree;         /* [atomic] frees counted on no CPU (nested
	                                   contexts), and corrections to the per-CPU
	                                   counts (racing double frees) */
	uint64_t spans;                 /* [central] spans of this class held */
	uint64_t peak_spans;            /* [central] */
	/* Racing double frees a sweep found (mspan.c), to be reported where
	 * no lock is held (mcentral_report_racing). */
	_Atomic uint64_t racing;        /* [atomic] */
	_Atomic uintptr_t racing_addr;  /* [atomic] one of their addresses */
	struct depot depot;             /* its own lock and line */
};

/* ---------------------------------------------------------------------------
 * mcache: one per CPU.  [cpu] except where noted.
 */
struct mcache {
	alignas(KMEM_CACHE_LINE)
	struct mag_slot mag[KMEM_NUM_CLASSES];  /* loaded magazines: the fast paths */
	uint64_t nmalloc[KMEM_NUM_CLASSES];     /* counted by kmalloc's fast path */
	uint64_t nfree[KMEM_NUM_CLASSES];       /* counted by kfree's fast path */
	struct cpu_class cls[KMEM_NUM_CLASSES]; /* previous magazines and spans */
	bool online;                            /* written under caches lock */
	uint8_t node;                           /* [const] this CPU's NUMA node */
	unsigned lock_levels;                   /* [cpu] bitmask of held lock levels */
};

/* An object cache's per-CPU state, a cache line of its own. */
struct cache_cpu {
	alignas(KMEM_CACHE_LINE)
	struct mag_slot mag;
	struct cpu_class cls;
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
	struct cache_cpu *cpu;           /* max_cpus entries, after the descriptor */
	/* [const] node n's mcentral: [0] is &central, the others follow
	 * cpu[] in the descriptor's block (kmem_cache.c). */
	struct mcentral *node_central[KMEM_MAX_NODES];
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
 * aside for it on the first write (arena_own_locked, under its owner's heap.lock,
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
	uint8_t pagekind[ARENA_PAGES];            /* [heap] PKIND_*, for pages without a span */
};

/* What a page without a span is, beyond free (pagebits) or not (heap_arena.
 * pagekind[]): a page run of at most RUN_INLINE_MAX pages has no span
 * descriptor (kpage_alloc's common case costs no metadata of its own);
 * its first page says how long it is, the others that they follow one.
 *   PKIND_NONE    free, or a page of a span, or metadata
 *   1 .. RUN_INLINE_MAX  the first page of a live descriptorless run of
 *                        that many pages (spans[] NULL on all of them)
 *   PKIND_RUN_TAIL  a later page of such a run
 *   PKIND_GUARD   a guard page: metadata (pages_metadata) that nothing ever
 *              reads or writes, between allocator data and pages a client
 *              can get (fixalloc.c), unmapped through the protect hook */
#define PKIND_NONE 0u
#define RUN_INLINE_MAX 127u
#define PKIND_RUN_TAIL 0x80u
#define PKIND_GUARD 0xffu

extern struct heap_arena arena_free_image;

/* The arena index of 2^26 pages.  An arena belongs to the page heap of
 * one node, its owner: that of its lowest pages when it was made (init,
 * hot-add), whose lock guards the arena's bitmaps, summaries, map and
 * page kinds; pages of another node inside it are managed by the owner's
 * heap (their node is still theirs: pfn_node). */
struct l2_chunk {
	struct heap_arena *_Atomic arenas[L2_ENTRIES];  /* [all heaps] writes, acquire reads */
	uint8_t owner[L2_ENTRIES];                      /* [all heaps] written before arenas[] */
};

/* A page heap's summaries of levels 15..26 over one L2 chunk's arenas
 * that it owns (the others read as all in use). */
struct l2_sums {
	struct psum sum[SUM_NODES(SUM_ARENA_TOP + 1, SUM_L2_TOP)]; /* [heap] */
	uint32_t amax[AMAX_CHUNK_ENTRIES];                         /* [heap] */
};

/* ---------------------------------------------------------------------------
 * pageheap: a node's page heap (pagealloc.c, mheap.c; malloc.c, "NUMA
 * nodes"): the page tree over the arenas the node owns, with its own lock.
 * Every node has one, in its metadata region (its server's).  heap.lock
 * (written [heap] below) guards the heap and, per node n, the node's
 * metadata state in mheap (meta_*[n], arena_*[n]) and fixalloc lists.
 *     pages_free + pages_small + pages_large + pages_runs + pages_metadata
 *         == pages_managed   at every unlock, per heap.
 */
struct pageheap {
	struct spinlock lock;
	unsigned node;                      /* [const] */
	/* The hull: every managed pfn of the heap < 2^sum_level,
	 * SUM_ARENA_TOP <= sum_level <= SUM_TOP.  Summary levels above it are
	 * not kept: node (L, 0) reads as the hull root with end 0, every
	 * other node as all in use.  Searches start at the hull root. */
	unsigned sum_level;                 /* [heap] only grows */
	struct l2_sums *l2[L1_ENTRIES];     /* [heap] NULL: owns no arena there */
	uint64_t pages_managed, pages_free, pages_small, pages_large; /* [heap] */
	uint64_t pages_runs, pages_metadata, large_objects, page_runs; /* [heap] */
	/* Work counters (pagealloc.c, pages_find_steps()). */
	uint64_t find_steps, update_steps;  /* [heap] */
	/* Guard pages made under the lock, to be protected once it is
	 * released (fixalloc.c, guards_protect); a full queue asks for a
	 * scan of every arena instead. */
	uint64_t guard_queue[8];            /* [heap] pfns */
	unsigned nguard_queue;              /* [heap] */
	bool guard_rescan;                  /* [heap] */
	_Atomic unsigned guard_pending;     /* [atomic] the queue may hold pages (32-bit: riscv) */
	struct psum sum[SUM_NODES(SUM_L2_TOP + 1, SUM_TOP)]; /* [heap] levels 27..36 */
	/* Last: read only where written (pagealloc.c), so init leaves it. */
	uint64_t amax[AMAX_TOP_ENTRIES];    /* [heap] aligned summaries, levels 29..35 */
};

/* ---------------------------------------------------------------------------
 * fixalloc: a free list of fixed-size blocks carved from the metadata
 * region, then from pages the mheap takes from the top of the pool.
 * Each node's lists are under that node's heap.lock.
 */
struct fixalloc {
	size_t size;         /* [const] block size */
	/* Per node, by the node of the block's page (fixalloc.c): */
	void *free[KMEM_MAX_NODES]; /* [heap] list of freed blocks (link in the
	                        block: these blocks are metadata, never client
	                        memory) */
	uint64_t inuse[KMEM_MAX_NODES]; /* [heap] blocks handed out, per node */
	void *pend[KMEM_MAX_NODES]; /* [heap] free blocks of runs waiting to go
	                        back, by address: used when `free` is empty */
	struct fixalloc *next_fa; /* [heap] mheap_.fixallocs: every fixalloc */
};
struct meta_run;

/* ---------------------------------------------------------------------------
 * mheap: the one heap.
 */
struct mheap {
	uintptr_t offset;                   /* [const] virt = phys + offset */
	unsigned max_cpus;                  /* [const] */
	struct l2_chunk *_Atomic l1[L1_ENTRIES]; /* [all heaps] writes, acquire reads */
	/* [const] every node's page heap (in its region, its server's). */
	struct pageheap *heap[KMEM_MAX_NODES];

	/* The metadata regions (bootmem.c): one per node that holds its
	 * own (meta_size[n] != 0), or the caller's one region.  A node
	 * without a region has its init metadata in that of the nearest
	 * node with one (bootmem.c, meta_plan); meta_node is CPU 0's
	 * server, whose region also holds what is no node's (the
	 * deferred-free state).
	 * Per node, the bump range carving metadata of that node (a node
	 * with a region starts with the rest of it, the others with
	 * nothing). */
	uint64_t meta_base[KMEM_MAX_NODES], meta_size[KMEM_MAX_NODES]; /* [const] physical */
	unsigned meta_node;                 /* [const] */
	uintptr_t meta_next[KMEM_MAX_NODES], meta_end[KMEM_MAX_NODES]; /* [heap n] virtual */
	/* Per node, the pool runs carved for its metadata, by address, the
	 * one its bump range is in (NULL: the region or none), and the pool
	 * pages they hold (guards included) (fixalloc.c). */
	struct meta_run *meta_runs[KMEM_MAX_NODES], *meta_cur[KMEM_MAX_NODES]; /* [heap n] */
	uint64_t meta_pages[KMEM_MAX_NODES]; /* [heap n] */
	struct fixalloc *fixallocs;         /* [const] after init: every fixalloc */
	/* Room for the copies of lazy arenas (and the eager ones), per owner
	 * node, sized at init for every arena of the boot map and by each
	 * hot-add for the arenas it shares: a copy never fails.  arena_room
	 * stacks the rooms hot-adds reserved (heaparena.c); the current one
	 * is the bump range. */
	uintptr_t arena_next[KMEM_MAX_NODES], arena_end[KMEM_MAX_NODES]; /* [heap n] virtual */
	void *arena_room[KMEM_MAX_NODES];   /* [heap n] the room below, or NULL */

	/* Lists per node, each under its node's heap.lock (fixalloc.c). */
	struct fixalloc spanalloc;          /* struct mspan */
	struct fixalloc spanmeta[SPAN_META_BUCKETS]; /* span metadata blocks */
	struct fixalloc magalloc;           /* struct magazine */
	struct fixalloc cachealloc;         /* struct kmem_cache */
	struct fixalloc dbgalloc[DBG_BUCKETS]; /* obj_debug[dbg_bucket_objs(b)] */

	/* [const] KMEM_NUM_CLASSES entries per node, in the node's region
	 * (its server's): node n's class c is central[n][c] (class_central).
	 * A CPU's mcache is in its node's region; NULL until kmem_init. */
	struct mcentral *central[KMEM_MAX_NODES];
	struct mcache *mcache[KMEM_MAX_CPUS];

	struct spinlock caches_lock;        /* LOCK_CACHES */
	struct kmem_cache *caches;          /* [caches] live object caches */

	uint64_t narenas;                   /* [all heaps] */
	uint64_t update_steps;              /* [all heaps] (init, hot-add) */

	/* NUMA nodes (malloc.c, "NUMA nodes").  A pfn's node is that of the
	 * newest range holding it; ranges are appended with every heap.lock
	 * held (init, hot-add) and read without them up to nranges (acquire),
	 * so an entry is complete before it is counted. */
	unsigned nnodes;                    /* [const] 1..KMEM_MAX_NODES */
	uint8_t cpu_node[KMEM_MAX_CPUS];    /* [const] */
	uint8_t node_order[KMEM_MAX_NODES][KMEM_MAX_NODES]; /* [const] by distance */
	struct node_range {
		uint64_t lo, hi;            /* pfns [lo, hi) */
		uint32_t node;
	} node_ranges[KMEM_MAX_NODE_RANGES]; /* [all heaps] append only */
	_Atomic unsigned nranges;           /* [all heaps] writes (release) */
	struct node_count {                 /* [atomic] relaxed adds by any heap */
		_Atomic uint64_t alloc_local, alloc_remote, pages_local, pages_remote;
	} node_count[KMEM_MAX_NODES];
	_Atomic unsigned cpus_online;       /* [caches] writes; relaxed reads */

	kmem_fault_hook_t _Atomic fault_hook;
	kmem_oom_hook_t _Atomic oom_hook;
	bool initialised;
	/* Deferred free (deferred.c): the grace-period generation, the
	 * highest generation reported done, and its per-CPU batches (made in
	 * metadata on first use). */
	_Atomic uint64_t defer_gen, defer_done;
	struct kmem_defer *_Atomic defer;
};

extern struct mheap mheap_;

/* ---------------------------------------------------------------------------
 * Internal interfaces, one block per file.
 */

/* lock.c */
void lock_init(struct spinlock *l, enum lock_level level);
void lock_acquire(struct spinlock *l);
void lock_release(struct spinlock *l);
void lock_acquire_more(struct spinlock *l);
void lock_release_more(struct spinlock *l);
/* Takes l only if it is free, never waits: no lock order applies, and
 * the debug order record is left alone (nolock.c: an NMI's trylock must
 * not touch the record of the code it interrupted).  Released with
 * lock_try_release. */
bool lock_try(struct spinlock *l);
void lock_try_release(struct spinlock *l);
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
static inline struct l2_chunk *chunk_of_pfn(uint64_t pfn)
{
	if (pfn >> SUM_TOP)
		return NULL;
	return atomic_load_explicit(&mheap_.l1[pfn >> SUM_L2_TOP], memory_order_acquire);
}
static inline struct heap_arena *arena_of_pfn(uint64_t pfn)
{
	struct l2_chunk *c = chunk_of_pfn(pfn);
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
int arena_create_locked(uint64_t pfn, unsigned owner, uintptr_t *bump, uintptr_t bump_end);
int arena_share_locked(uint64_t pfn, unsigned owner, uintptr_t *bump, uintptr_t bump_end);
void arena_room_push_locked(unsigned node, uintptr_t start, uintptr_t end);
bool arena_managed_in_locked(uint64_t pfn, uint64_t npages);
struct heap_arena *arena_own_locked(uint64_t pfn);  /* writable, copied if lazy */
/* The node whose page heap owns the arena of pfn, or -1 if none. */
static inline int arena_owner(uint64_t pfn)
{
	struct l2_chunk *c = chunk_of_pfn(pfn);
	uint64_t i = (pfn >> SUM_ARENA_TOP) & (L2_ENTRIES - 1);
	if (!c || !atomic_load_explicit(&c->arenas[i], memory_order_acquire))
		return -1;
	return c->owner[i];
}
/* The page heap owning the arena of pfn (one that exists). */
static inline struct pageheap *heap_of_pfn(uint64_t pfn)
{
	int n = arena_owner(pfn);
	return n >= 0 ? mheap_.heap[n] : NULL;
}
void arena_image_build(void);
bool pfn_is_managed(uint64_t pfn);               /* in an arena and in the pool */
void arena_run_mark_locked(uint64_t pfn, uint64_t npages, bool live);
bool arena_run_of_locked(uint64_t pfn, uint64_t *head, uint64_t *npages);

/* pagealloc.c */
#define PAGE_NONE UINT64_MAX
/* Work counters summed over the heaps (pagealloc.c). */
uint64_t pages_find_steps(void);
uint64_t pages_update_steps(void);
/* All under h->lock; the pages of a run are all in arenas h owns. */
uint64_t pages_find_locked(struct pageheap *h, uint64_t npages, uint64_t align, uint64_t lo,
                           uint64_t hi);
uint64_t pages_find_top_locked(struct pageheap *h, uint64_t npages);
uint64_t pages_find_top_in_locked(struct pageheap *h, uint64_t npages, uint64_t lo, uint64_t hi);
void pages_set_locked(uint64_t pfn, uint64_t npages, bool free); /* the owner's lock */
void sums_above_arenas_locked(struct pageheap *h, uint64_t pfn, uint64_t npages);
void pages_grow_hull_locked(struct pageheap *h, uint64_t end_pfn);
struct psum *sum_ptr(struct pageheap *h, unsigned level, uint64_t idx);
bool pages_all_free_locked(uint64_t pfn, uint64_t npages);
struct psum sum_get(struct pageheap *h, unsigned level, uint64_t idx);
struct psum sum_of_word(uint64_t w);
struct psum sum_combine(struct psum l, struct psum r, uint64_t half);
bool sum_node_ok(struct pageheap *h, unsigned level, uint64_t idx);
uint64_t amax_of_word(uint64_t w, unsigned k);
uint64_t amax_get_locked(struct pageheap *h, unsigned level, uint64_t idx, unsigned k);

/* fixalloc.c */
void fixalloc_init(struct fixalloc *f, size_t size);
/* A block of node's metadata (else the nearest node's that has one), or
 * NULL; takes the heap.locks itself, one at a time. */
void *fixalloc_alloc_node(struct fixalloc *f, unsigned node);
void *fixalloc_alloc(struct fixalloc *f);        /* of no node: CPU 0's */
void fixalloc_free(struct fixalloc *f, void *p); /* takes its node's heap.lock */
uint64_t fixalloc_inuse(const struct fixalloc *f);
void *meta_carve(size_t size, size_t align);     /* permanent, zeroed */
void guard_page_locked(uint64_t pfn);
void guards_protect(void);
void guards_protect_all(void);
size_t meta_runs_reclaim(void);
size_t meta_runs_release(void);

/* mspan.c */
void span_init_small(struct mspan *s, struct mcentral *c, void *meta);
uint32_t span_next_free_index(struct mspan *s);
unsigned span_sweep(struct mspan *s);
bool span_has_freed(const struct mspan *s);
uint32_t span_free_slots(const struct mspan *s);
uint32_t span_live_objects(const struct mspan *s);
bool span_all_free(const struct mspan *s);
static inline uint32_t span_obj_index(const struct mspan *s, uintptr_t off)
{
	return (uint32_t)((off * s->divmul) >> KMEM_DIV_SHIFT);
}
/* Object idx is taken from the span (and maybe given back since, see
 * freed_bits). */
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
void mcentral_set_magazines(struct mcentral *c, bool on);
struct mspan *mcentral_cache_span(struct mcentral *c);
void mcentral_uncache_span(struct mcentral *c, struct mspan *s);
bool mcentral_try_trade_span(struct mcentral *c, struct mspan **sp);
void mcentral_push_unswept(struct mcentral *c, struct mspan *s);
void mcentral_freed(struct mspan *s, uint64_t sweepstate_before);
void mcentral_report_racing(struct mcentral *c);
size_t mcentral_reclaim(struct mcentral *c);
uint64_t mcentral_div_const(uint32_t elemsize);

/* magazine.c */
/* The state pointer of entry e (an element of a magazine's obj[]). */
static inline _Atomic uint8_t **mag_entry_st(void **e)
{
	return (_Atomic uint8_t **)(e + MAG_CAP_MAX);
}
void *mag_pop_checked(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c);
void *mag_alloc_slow(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c);
bool mag_free_slow(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c,
                   const void *p, _Atomic uint8_t *st);
void mag_flush(struct mcentral *c, struct magazine *m);
void racing_free_found(struct mcentral *c, const void *p, const struct mspan *s,
                       const char *when);
void mag_drain_cpu(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c);
void mag_take_over(struct cpu_class *cc, struct mcentral *c);
void depot_drain(struct mcentral *c);

/* mcache.c */
bool mcache_fill(struct mag_slot *ms, struct cpu_class *cc, struct mcentral *c);
void *mcache_alloc_direct(struct cpu_class *cc, struct mcentral *c);
void *mcache_alloc_shared(struct mcentral *c);
void mcache_flush(unsigned cpu);
void mcache_take_over(unsigned cpu);
static inline struct mcache *mcache_of(unsigned cpu)
{
	return mheap_.mcache[cpu];
}
static inline struct mcentral *class_central(unsigned node, unsigned cls)
{
	return &mheap_.central[node][cls];
}
/* The mcentral of c's class or cache whose magazines CPU cpu holds: the
 * one of its node (c itself on a single-node heap). */
static inline struct mcentral *central_of_cpu(struct mcentral *c, unsigned cpu)
{
	unsigned node = mheap_.cpu_node[cpu];
	if (c->node == node)
		return c;
	return c->cache ? c->cache->node_central[node] : class_central(node, c->sizeclass);
}
/* kfree's fast path: is span s of another node than mcache m's CPU?  (Its
 * objects must not enter m's magazines: malloc.c, "NUMA nodes".) */
#if KMEM_MAX_NODES > 1
#define KMEM_OTHER_NODE(s, m) ((s)->node != (m)->node)
#else
#define KMEM_OTHER_NODE(s, m) 0
#endif
/* CPU cpu's magazine slot and class state for central c (a size class or
 * an object cache), which must be central_of_cpu(c, cpu). */
static inline void cpu_slots(struct mcentral *c, unsigned cpu, struct mag_slot **ms,
                             struct cpu_class **cc)
{
	if (c->cache) {
		struct cache_cpu *x = &c->cache->cpu[cpu];
		*ms = &x->mag;
		*cc = &x->cls;
	} else {
		struct mcache *m = mcache_of(cpu);
		*ms = &m->mag[c->sizeclass];
		*cc = &m->cls[c->sizeclass];
	}
}

/* mheap.c */
void spanmeta_init(void);
/* Preferred node of a page request: node, or with KMEM_NO_NODE the
 * calling CPU's. */
unsigned node_or_here(int node);
/* The heaps' page counts, summed (every heap.lock held). */
struct heap_count {
	uint64_t pages_managed, pages_free, pages_small, pages_large;
	uint64_t pages_runs, pages_metadata, large_objects, page_runs;
};
void heaps_count_locked(struct heap_count *out);
/* Every heap.lock, in node order (init-like work: hot-add, the checker,
 * statistics); interrupts off. */
unsigned long heaps_lock_all(void);
void heaps_unlock_all(unsigned long flags);
/* With interrupts off: finds npages for `node` (its ranges, then the
 * other nodes' in distance order) and returns the first pfn with the
 * lock of the heap that has them held (*hp), or PAGE_NONE with none. */
uint64_t node_pages_find_lock(uint64_t npages, uint64_t align, uint64_t max_pfn,
                              unsigned node, struct pageheap **hp);
int pfn_node(uint64_t pfn);
/* phys is in one of the metadata regions. */
static inline bool in_metadata_region(uint64_t phys)
{
	for (unsigned n = 0; n < KMEM_MAX_NODES; n++)
		if (phys - mheap_.meta_base[n] < mheap_.meta_size[n])
			return true;
	return false;
}
const struct node_range *node_range_of(const struct node_range *t, unsigned n, uint64_t pfn);
struct mspan *mheap_alloc_span(uint64_t npages, uint64_t align_pages,
                               uint64_t max_pfn, enum span_state state,
                               struct mcentral *central, unsigned node);
void mheap_free_span(struct mspan *s);
void mheap_free_large(struct mspan *s, enum span_state was);
uint64_t mheap_alloc_run(uint64_t npages, uint64_t align_pages, uint64_t max_pfn,
                         unsigned node);
enum run_free { RUN_FREED, RUN_NONE, RUN_INTERIOR, RUN_BAD_SIZE };
enum run_free mheap_free_run(uint64_t pfn, bool at_start, uint64_t npages, uint64_t *head,
                             uint64_t *len);

/* fmt.c: one line of text, truncated at 199 characters. */
struct fmtbuf {
	char buf[200];
	size_t len;
};
void fmt_reset(struct fmtbuf *b);
void fmt_str(struct fmtbuf *b, const char *s);
void fmt_num(struct fmtbuf *b, uint64_t v, unsigned base);

/* mstats.c */
void central_stats(const struct mcentral *c, struct kmem_class_stats *out);

/* mcheck.c */
void report_fault(enum kmem_fault_kind kind, const void *addr,
                  const struct mspan *s, const char *detail);

/* The fast paths' entry (spanalloc/arch.h, arch_fast_enter): with a port's
 * arch_fast_enter/exit interrupts stay on, and a call that finds the depth
 * nonzero is nested in this CPU's fast path (an interrupt arrived there):
 * it must leave this CPU's magazines alone.  Everything beyond the loaded
 * magazine runs with interrupts off: irqoff_in(t) turns them off inside an
 * entered path (a no-op when entering already did), irqoff_out undoes both. */
#if KMEM_FAST_NESTING
#define fast_nested(t) ((t) != 0)
static inline unsigned long irqoff_in(unsigned long t)
{
	(void)t;
	return arch_irq_save();
}
static inline void irqoff_out(unsigned long f, unsigned long t)
{
	arch_irq_restore(f);
	arch_fast_exit(t);
}
#else
#define fast_nested(t) 0
static inline unsigned long irqoff_in(unsigned long t)
{
	return t;
}
static inline void irqoff_out(unsigned long f, unsigned long t)
{
	(void)t;
	arch_irq_restore(f);
}
#endif

/* malloc.c */
size_t reclaim_all(bool flush_self);
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
/* Shared with nolock.c: object index of p in s or -1 (reported), and the
 * lock-free give-back of a client's object to its span. */
long small_index(const struct mspan *s, const void *p);
bool span_free(struct mspan *s, _Atomic uint8_t *st, uint32_t idx);
void *cache_alloc_on_cpu(struct kmem_cache *k, uintptr_t caller, int node);

/* debug.c */
const unsigned char *mem_first_not(const void *p, size_t n, unsigned char val);
void debug_on_alloc(void *p, size_t size, uintptr_t caller);
bool debug_on_free(struct mspan *s, uint32_t idx, const void *p);
void debug_poison_span(struct mspan *s);
unsigned long debug_check_span(struct mspan *s);
void report_fault_caller(enum kmem_fault_kind kind, const void *addr,
                         const struct mspan *s, const char *detail, uintptr_t caller);

/* harden.c: hardened mode.  DEBUG_HARDEN (with POISON, REDZONE and
 * CALLER) marks the kmalloc classes' mcentrals at level >= 1: zeros for
 * poison, the secret canary pattern for red zones, neighbour checks. */
#define DEBUG_HARDEN 0x100u
#define HL_HARDENED 1u   /* a hardened large object: hsize is its size */
#define HL_HEAD 2u       /* a guard page before it (object at base + page) */
#define HL_TAIL 4u       /* a guard page after it (the span's last page) */
#define HL_ZERO 8u       /* a zero-size object: its one page is a guard */
#define HL_QUARANTINE 16u /* freed, in the quarantine (state SPAN_FREEING) */
#define HL_PROT 32u      /* quarantined and unmapped whole (level 3) */
#define HL_DEFERRED 64u  /* given to kfree_deferred (state SPAN_FREEING, deferred.c) */
struct harden {
	unsigned level;                /* [const] after kmem_init */
	size_t slack;                  /* [const] bytes added to every kmalloc size */
	uint64_t canary;               /* [const] secret, no zero byte */
	kmem_protect_hook_t _Atomic protect; /* QUIESCE writes */
	/* The quarantine, a FIFO ring under `lock`. */
	struct spinlock lock;
	void **ring;                   /* [lock] KMEM_QUARANTINE_OBJECTS entries */
	uint32_t *sizes;               /* [lock] bytes each entry holds back */
	uint32_t head, n;              /* [lock] oldest entry, entries */
	uint64_t bytes;                /* [lock] bytes held */
	uint64_t evicted;              /* [lock] statistics: objects that left it */
};
extern struct harden harden_;
int harden_init(unsigned level, uint64_t seed);
unsigned char canary_byte(size_t offset);
const unsigned char *canary_first_bad(const void *obj, const void *p, size_t n);
void canary_fill(void *obj, void *p, size_t n);
uintptr_t harden_near_bad(uintptr_t a, uintptr_t b);
bool harden_guards(void);
bool harden_protect(uintptr_t addr, size_t bytes, bool none);
uint64_t harden_large_pages(size_t size, uint64_t align_pages, uint32_t *flags);
void *harden_large_setup(struct mspan *s, size_t size, uint32_t flags);
uintptr_t harden_large_start(const struct mspan *s);
bool harden_large_free(struct mspan *s, const void *p, bool quarantine);
void harden_large_release(struct mspan *s);
unsigned long harden_check_large(struct mspan *s);
bool harden_quarantine_wants(uint64_t bytes);
unsigned harden_quarantine(void *p, uint32_t bytes, bool all, void **out, unsigned max);
void harden_small_leaves(struct mspan *s, const void *p);
unsigned long harden_check_quarantine(uint64_t *small, uint64_t *large);

/* deferred.c: kmem_check's part (QUIESCE): every batch entry is a
 * deferred object; counts the small and large ones. */
unsigned long deferred_check(uint64_t *small, uint64_t *large);
void deferred_init(void);  /* kmem_init: the per-CPU state, made once */
size_t deferred_state_bytes(unsigned cpus); /* its size, for the region */

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
