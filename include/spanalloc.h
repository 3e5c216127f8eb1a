/*
 * spanalloc.h - the public contract of spanalloc, a Go-style span allocator
 * for bare-metal kernels.  This is the one header a kernel includes.
 *
 * Every function below states:
 *   - when it returns NULL (or an error), and nothing else makes it do so;
 *   - the alignment of what it returns;
 *   - its cost;
 *   - the contexts that may call it:
 *       ANY      any CPU, thread or interrupt context, interrupts on or off;
 *       THREAD   any CPU, not from an interrupt handler (it may take time);
 *       QUIESCE  only while no other CPU is inside the allocator.
 *
 * All functions except kmem_metadata_size() and kmem_init() require a
 * successful kmem_init() first.  The calling CPU must be online (CPU 0 is
 * online after kmem_init(); others call kmem_cpu_online() first).  Before
 * the kernel has per-CPU areas, the boot CPU is CPU 0: arch_cpu_id()
 * returns 0 then (spanalloc/arch.h), and everything works from kmem_init()
 * on.
 *
 * Memory handed to a client is payload only: the allocator never writes a
 * header, free-list link or tag inside it, so a client overflow cannot
 * corrupt the allocator's own data.  (A client overflow can of course still
 * corrupt a neighbouring client object.)
 *
 * It also brings in spanalloc/arch.h (the hooks a kernel provides) and
 * spanalloc/memmap.h (boot memory map adapters), so one include suffices.
 * The README's "Porting spanalloc to a kernel" walks through a port.
 *
 * Freestanding: uses only <stddef.h>, <stdint.h> and <stdbool.h>.
 */
#ifndef SPANALLOC_H
#define SPANALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Constants
 */

#define KMEM_PAGE_SHIFT 12
#define KMEM_PAGE_SIZE (1ul << KMEM_PAGE_SHIFT) /* the allocator's page: 4 KiB */

/* Objects up to this size come from size classes; larger ones get a span of
 * their own ("large objects"). */
#define KMEM_SMALL_MAX 32768u

/* Highest CPU count the allocator is built for (kmem_config.max_cpus may be
 * smaller).  Override at build time with -DKMEM_MAX_CPUS=n. */
#ifndef KMEM_MAX_CPUS
#define KMEM_MAX_CPUS 64
#endif

/* Highest NUMA node count (see "NUMA nodes" below).  Override at build
 * time with -DKMEM_MAX_NODES=n (1..255). */
#ifndef KMEM_MAX_NODES
#define KMEM_MAX_NODES 4
#endif
/* "No node asked for": the calling CPU's node. */
#define KMEM_NO_NODE (-1)

/* Physical addresses handled: [0, 2^KMEM_PHYS_BITS). */
#define KMEM_PHYS_BITS 48

/* Error codes (returned negated). */
#define KMEM_EINVAL 22 /* malformed argument */
#define KMEM_ENOMEM 12 /* not enough memory (metadata or pool) */
#define KMEM_EBUSY 16  /* object cache still has live objects */

/* ---------------------------------------------------------------------------
 * Memory map intake and initialisation
 *
 * The heap is fed physical page ranges from the boot memory map (UEFI,
 * Multiboot, Limine, device tree).  Give the map as an array of regions in
 * any order; regions may overlap, be unaligned or be empty.  A page is
 * managed iff it lies wholly inside some USABLE region and touches no
 * region of any other type (reserved holes always win).
 *
 * The allocator reaches physical memory through a direct map:
 *     virtual = physical + direct_map_offset.
 */

enum kmem_region_type {
	KMEM_REGION_USABLE = 1,       /* free RAM: the allocator may manage it */
	KMEM_REGION_RESERVED = 2,     /* never touched */
	KMEM_REGION_RECLAIMABLE = 3,  /* in use now (bootloader, ACPI tables);
	                                 treated as reserved at init, handed over
	                                 later with kmem_hot_add() */
};

struct kmem_region {
	uint64_t base;   /* physical address of the first byte */
	uint64_t length; /* bytes */
	uint32_t type;   /* enum kmem_region_type; unknown types are reserved */
	uint32_t node;   /* NUMA node of the range, < KMEM_MAX_NODES; 0 for
	                    maps without NUMA information */
};

struct kmem_config {
	const struct kmem_region *regions;
	size_t nregions;
	uintptr_t direct_map_offset; /* virtual = physical + offset */
	unsigned max_cpus;           /* 1..KMEM_MAX_CPUS; 0 means KMEM_MAX_CPUS */
	/* Optional: where the metadata region goes (physical).  If
	 * metadata_size is 0 the allocator carves the region out of the
	 * highest usable memory itself: one region per NUMA node, from the
	 * top of that node's memory (see "NUMA nodes").  A caller-given
	 * region must hold at least kmem_metadata_size() bytes and must not
	 * overlap the pool: it is excluded from the pool even if the map
	 * calls it usable; it then holds every node's init metadata. */
	uint64_t metadata_base;
	uint64_t metadata_size;
	/* Optional: the hardening level, 0..KMEM_HARDEN_MAX (see "Hardened
	 * mode" below; 0, the default, is the normal heap), and a secret for
	 * its canaries (0: one derived from the heap's addresses, which is not
	 * secret; give entropy, e.g. from RDRAND or getrandom). */
	unsigned harden;
	uint64_t harden_seed;
	/* Optional NUMA topology (see "NUMA nodes" below).  cpu_node: max_cpus
	 * entries (KMEM_MAX_CPUS if max_cpus is 0), the node of each CPU
	 * (NULL: every CPU on node 0).
	 * node_distance: nnodes x nnodes, row = from, column = to, SLIT
	 * style (10 = local; NULL: 10 local, 20 remote), where nnodes = 1 +
	 * the highest node of any usable region or CPU.  Both are copied. */
	const uint8_t *cpu_node;
	const uint8_t *node_distance;
};

/* Bytes of metadata region kmem_init() needs for this map in one region
 * (a caller-given one; the regions it carves per node add up to about
 * the same, plus two guard pages per node): arena metadata
 * (page -> span map, page bitmaps, summaries) for every 64 MiB arena the
 * usable memory touches, the arena index, the mcentrals, the per-CPU
 * mcaches and an initial reserve for span descriptors.  Memory the map does
 * not cover costs nothing.  Returns 0 iff the map has no usable page or the
 * config is malformed.  Cost: O(n^2) in the number of regions.  Context:
 * any, needs no prior init. */
size_t kmem_metadata_size(const struct kmem_config *cfg);

/* Builds the heap over the map.  Returns 0, or -KMEM_EINVAL (malformed
 * config, no usable page, harden > KMEM_HARDEN_MAX, a usable region's or
 * CPU's node >= KMEM_MAX_NODES, a distance table whose diagonal is not the
 * row's minimum, more than KMEM_MAX_NODE_RANGES node changes along the
 * address space), or -KMEM_ENOMEM (no usable range can hold the
 * metadata region, or the caller's region is too small).  On success CPU 0
 * is online and every API below works.  Calling it again discards the old
 * heap (for tests and warm restarts; no object from the old heap may be
 * used afterwards).  Cost: O(n^2) in regions + O(arenas touched).
 * Context: QUIESCE, interrupts may be on or off. */
int kmem_init(const struct kmem_config *cfg);

/* Adds memory later (hot-add, or bootloader-reclaimable memory the kernel
 * no longer needs).  The region must be USABLE or RECLAIMABLE and must not
 * overlap memory the heap already manages (its own metadata included).
 * Metadata for arenas and L2 chunks the heap has not seen yet (about 0.22%
 * of a region in new arenas) is carved from the first pages of the region
 * itself: those pages join the pool as metadata (kmem_stats.pages_managed
 * and pages_metadata), are never handed out, and kfree/kpage_free of a
 * pointer into them is reported as KMEM_FAULT_METADATA.  Arenas the region
 * covers whole join lazily, as kmem_init's do (their metadata is written
 * on first use).  Returns the number of pages added to the free pool
 * (> 0), or -KMEM_EINVAL (bad type, overlap, no whole page), or
 * -KMEM_ENOMEM (the region cannot hold its own metadata); on an error
 * nothing changed.  Cost: O(arenas the region touches + pages of the
 * arenas it covers only in part / 64), under every node's heap lock with
 * interrupts off (64 GiB in new arenas: about 1000 arena steps, no page
 * walk).  Context: THREAD. */
long kmem_hot_add(const struct kmem_region *region);

/* The metadata region chosen (or given) at init; with several nodes and
 * no caller's region, the one of CPU 0's node (or of the nearest node
 * that has one): kmem_metadata_regions gives them all. */
void kmem_metadata_region(uint64_t *phys_base, uint64_t *size);

/* The metadata regions: the caller's one, or one per node that has
 * memory of its own (see "NUMA nodes").  Fills out[0 .. max-1] with
 * {base, length, KMEM_REGION_RESERVED, node} and returns how many there
 * are (which may exceed max).  Context: ANY after kmem_init. */
unsigned kmem_metadata_regions(struct kmem_region *out, unsigned max);

/* ---------------------------------------------------------------------------
 * CPUs
 *
 * Each online CPU has an mcache; the fast path runs on it with interrupts
 * disabled (arch_irq_save/arch_irq_restore), so interrupt handlers may
 * allocate and free.  CPU 0 is online after kmem_init().
 */

/* Gives CPU `cpu` (0 <= cpu < max_cpus) its cache; it may allocate after
 * this.  Idempotent.  Returns 0 or -KMEM_EINVAL.  Context: THREAD, on any
 * CPU. */
int kmem_cpu_online(unsigned cpu);

/* Flushes CPU `cpu`'s cache (all its spans go back to the mcentrals, and
 * from there empty ones to the mheap) and marks it offline.  The CPU must
 * not be inside the allocator (it is stopped, or it is the caller).
 * Returns 0 or -KMEM_EINVAL.  Context: THREAD. */
int kmem_cpu_offline(unsigned cpu);

/* ---------------------------------------------------------------------------
 * Objects
 *
 * Alignment: every object is aligned to the largest power of two that
 * divides its size class (at least 8 bytes; a 4 KiB class is 4 KiB
 * aligned); large objects (> KMEM_SMALL_MAX) are page aligned.
 */

/* Returns NULL iff size > KMEM_MAX_ALLOC or memory is exhausted (after the
 * allocator swept every span and retried).  kmalloc(0) returns a unique
 * minimum-size object that must be freed.  Cost: O(1) fast path (a pop
 * from this CPU's magazine: no lock, no atomic read-modify-write), an
 * amortised O(1) refill (a magazine from the class's depot, or objects
 * from a span, bounded work per refill); large objects: an O(log n) page
 * search, then O(pages) to map every page of the run to its span (under
 * the lock of the page heap it takes them from, interrupts off).
 * Context: ANY. */
void *kmalloc(size_t size);

/* kmalloc, zero-filled. */
void *kzalloc(size_t size);

/* kzalloc(n * size); returns NULL iff the product overflows or kzalloc
 * would return NULL. */
void *kcalloc(size_t n, size_t size);

/* Returns NULL iff align is neither 0 nor a power of two, size >
 * KMEM_MAX_ALLOC, or memory is exhausted.  Otherwise the object is aligned
 * to `align` (any power of two; below 8 means 8; 0 means the natural
 * alignment: kmalloc_aligned(size, 0) is kmalloc(size)).  Freed with
 * kfree().  Context: ANY. */
void *kmalloc_aligned(size_t size, size_t align);

/* Frees an object from kmalloc/kzalloc/kcalloc/krealloc/kmalloc_aligned or
 * kmem_cache_alloc.  kfree(NULL) does nothing.  A pointer that is not the
 * start of a live object (double free, interior pointer, wild pointer, a
 * free page, a page run) is reported through the fault hook and the heap
 * is left unchanged.  Cost: O(1) for small objects: a push onto this
 * CPU's magazine (no lock, no atomic read-modify-write); when it is full,
 * an exchange with the class's depot (one lock) or, with the depot full,
 * the objects go back to their spans (an atomic OR each on the span's
 * freed bitmap); large objects O(pages)
 * (the run's page map is cleared) plus O(log n) summary updates under its
 * page heap's lock.  Context: ANY. */
void kfree(const void *p);

/* Usable size of a live object (>= the size asked for); 0 for NULL or for
 * a pointer kfree() would reject (reported through the fault hook).
 * Context: ANY. */
size_t ksize(const void *p);

/* krealloc(NULL, n) == kmalloc(n).  krealloc(p, 0) frees p and returns
 * NULL.  Otherwise returns an object of at least n bytes holding the old
 * contents up to min(old, n): p itself when it already fits and is not
 * more than twice too big, else a new object (and p is freed).  Returns
 * NULL iff the new object cannot be had; p is then left untouched.  A bad p
 * is reported through the fault hook and NULL is returned.  Context: ANY. */
void *krealloc(void *p, size_t n);

/* Allocation from any context, an NMI included, and from an interrupt that
 * arrives while its CPU is inside the allocator (mm/nolock.c): it never
 * waits for a lock, so it cannot deadlock.  Returns NULL iff size >
 * KMEM_SMALL_MAX, the heap runs in hardened mode or the debug heap, or no
 * object can be had without waiting: the calling CPU's loaded magazine of
 * the class is empty (or the CPU was interrupted inside the allocator, or
 * the port has no arch_fast_enter: then this step is skipped always), and
 * the class's depot is locked or has no object in a full magazine or its
 * shared span, and that span cannot be traded for one of the class's
 * listed spans with room (the class's lock is busy, or it lists none).
 * It never drains queued spans, grows the heap, reclaims or calls the OOM
 * hook.  The object is a kmalloc object (kfree or kfree_nolock frees it;
 * same alignment).  Cost: O(1), a few dozen
 * instructions; when the magazine is empty, a trylock on the class's
 * depot, and rarely one on its mcentral.  Context: ANY, NMI included. */
void *kmalloc_nolock(size_t size);

/* Frees a small object (any kmalloc class or object cache, however it was
 * allocated) from any context, an NMI included, without waiting: into the
 * calling CPU's loaded magazine when it has room and the CPU is not
 * interrupted inside the allocator (ports with arch_fast_enter), else
 * straight to its span (lock-free).  kfree_nolock(NULL) does nothing.  Bad
 * pointers are reported as kfree reports them, except that a pointer with
 * no live span is always KMEM_FAULT_WILD (the finer diagnosis takes a
 * lock); a large object or page run is not freed but reported as
 * KMEM_FAULT_WRONG_KIND (its free takes a page heap's lock: free it later with
 * kfree/kpage_free from a context that may).  Debug and hardened objects
 * are checked as kfree checks them but never quarantined.  Cost: O(1),
 * lock-free.  Context: ANY, NMI included; the fault hook then runs in that
 * context. */
void kfree_nolock(const void *p);

/* Largest size kmalloc accepts: 2^KMEM_PHYS_BITS / 2. */
#define KMEM_MAX_ALLOC ((size_t)1 << (KMEM_PHYS_BITS - 1))

/* ---------------------------------------------------------------------------
 * Page runs: npages physically contiguous pages, never touched by the
 * allocator.  A run of up to 127 pages costs no metadata of its own (the
 * byte per page its arena keeps for every page says what it is); a longer
 * one has a span descriptor (192 bytes: at most 1.5 bytes a page).
 */

/* Returns NULL iff npages == 0, align is neither 0 nor a power of two, no
 * run of npages free pages with physical address aligned to max(align,
 * page) (align 0: the natural alignment, a page) and
 * ending at or below max_phys exists (after a sweep and retry, and the OOM
 * hook), or npages > 2^(KMEM_PHYS_BITS-12).  max_phys == 0 means no
 * ceiling (e.g. max_phys = 4 GiB for 32-bit DMA).  The lowest such run is
 * taken.  Cost: O(log n) in the managed address range, for any alignment
 * and ceiling: a search reads at most 48 summary nodes per level of the
 * page tree (its levels: log2 of the highest managed page number - 5, 13
 * for memory below 1 GiB); taking the run updates O(npages / 64 + log n)
 * words and nodes.  Under the lock of one node's page heap at a time,
 * interrupts off.  Context: ANY. */
void *kpage_alloc(size_t npages, size_t align, uint64_t max_phys);

/* Frees a run from kpage_alloc.  npages must be what was asked for.
 * A pointer or count that does not match a live run is reported through
 * the fault hook and nothing is freed.  Context: ANY. */
void kpage_free(void *p, size_t npages);

/* Physical address of any byte the heap manages (virtual - offset). */
uint64_t kmem_virt_to_phys(const void *p);

/* ---------------------------------------------------------------------------
 * NUMA nodes
 *
 * Every usable region carries a node (kmem_region.node), every CPU one
 * (kmem_config.cpu_node).  Each node has its own mcentrals (and depots)
 * for the kmalloc classes and for every object cache; a CPU's magazines
 * hold objects of its node's mcentrals only.  Each node has its own page
 * heap, with its own lock, page tree and counts, over the node's memory:
 * a request for node N searches N's page ranges first, then the other
 * nodes' in distance order (ties: lower node first), one page heap lock
 * at a time.  So every allocation prefers the calling CPU's node, and
 * falls back rather than fail (Linux's behaviour without
 * __GFP_THISNODE).  A free goes back to its object's node: an object of
 * another node's mcentral never enters the freeing CPU's magazines, it
 * goes straight to its span (an atomic OR), from where its node's CPUs
 * reuse it.  A heap whose regions and CPUs are all on node 0 behaves as
 * without NUMA.
 *
 * A node's metadata is on that node.  kmem_init carves a metadata region
 * from the top of each node's memory (kmem_metadata_regions,
 * kmem_node_stats.metadata_bytes) for the node's mcentrals, the mcaches
 * of its CPUs and the arena metadata (page -> span map, page bitmaps,
 * summaries) of the 64 MiB arenas whose lowest pages are the node's; a
 * span's descriptor, state bytes, bitmaps and debug records and the
 * magazines of a node's CPUs come from the node's region, then from pool
 * pages of the node (kmem_node_stats.pages_metadata counts them).  A node
 * without memory, or too small to hold its region, is served by the
 * nearest node that has one.
 *
 * What is not.  An arena (64 MiB) holding pages of two nodes belongs to
 * the page heap and metadata region of the node of its lowest pages: the
 * other node's pages in it are its own (kmem_virt_to_node, placement)
 * but are managed under that heap's lock, and no page run spans from
 * such an arena into the next one of another heap.  The arena index (one
 * 36 KiB L2 chunk per 256 GiB of physical address space) is on one node;
 * a caller-given metadata region holds every node's init metadata.
 * Hot-add, kmem_check, the statistics and the heap map take every node's
 * page heap lock.  kmalloc_node etc. for
 * a node other than the calling CPU's take a lock per object (the node's
 * depot lock: no magazine of that node is the caller's to use).
 */

/* Ranges of consecutive address space of one node the heap keeps: a map
 * whose nodes alternate along the address space more often than this is
 * refused (-KMEM_EINVAL). */
#define KMEM_MAX_NODE_RANGES 32

/* As kmalloc, kmem_cache_alloc, kpage_alloc, with memory preferably on
 * `node` (KMEM_NO_NODE: the calling CPU's node, exactly the plain call).
 * Memory comes from `node` when it has any that fits (spans already in
 * that node's mcentral included), else from the other nodes in distance
 * order.  Return NULL iff the plain call would (no node can serve), or
 * node is neither KMEM_NO_NODE nor < kmem_nr_nodes().  Cost: the plain
 * call's for KMEM_NO_NODE and the caller's own node; for another node a
 * small object takes that node's depot lock (no magazine), and a page
 * search reads O(log n) summary nodes per page range of each node tried.
 * Context: ANY. */
struct kmem_cache;
void *kmalloc_node(size_t size, int node);
void *kmem_cache_alloc_node(struct kmem_cache *cache, int node);
void *kpage_alloc_node(size_t npages, size_t align, uint64_t max_phys, int node);

/* The node of the page holding p, or -1 if the heap does not manage that
 * page (never did, the metadata region).  Cost: O(1): a check in the
 * arena map and a scan of at most KMEM_MAX_NODE_RANGES ranges, no lock.
 * Context: ANY. */
int kmem_virt_to_node(const void *p);

/* Nodes the heap was built with: 1 + the highest node of any usable
 * region or CPU at kmem_init (>= 1).  Context: ANY. */
unsigned kmem_nr_nodes(void);

struct kmem_node_stats {
	uint64_t pages_managed;   /* pool pages of the node */
	uint64_t pages_free;      /* of them, free in the page allocator */
	/* Spans, large objects and page runs taken from the page heap for a
	 * request that preferred this node (a CPU of it, or the node asked
	 * for): served from this node, or from another (fallback). */
	uint64_t alloc_local;
	uint64_t alloc_remote;
	uint64_t pages_local;     /* their pages */
	uint64_t pages_remote;
	unsigned cpus;            /* CPUs of the node (online or not) */
	uint64_t pages_metadata;  /* pool pages of the node taken for metadata
	                             runs (guards included; not the regions) */
	uint64_t metadata_bytes;  /* the node's metadata region (0: none, its
	                             init metadata is in the nearest node's) */
};

/* Statistics of node `node` (< kmem_nr_nodes()); -KMEM_EINVAL otherwise.
 * Summed over the nodes, pages_managed and pages_free equal kmem_stats'.
 * Cost: O(node's pages / 64) words read under every page heap's lock,
 * interrupts off.  Context: THREAD. */
int kmem_get_node_stats(unsigned node, struct kmem_node_stats *out);

/* ---------------------------------------------------------------------------
 * Object caches (slab-style): objects of one size and alignment with their
 * own spans, so that a cache's memory, statistics and faults are its own.
 */

struct kmem_cache;

/* Returns NULL iff size == 0, size > KMEM_SMALL_MAX, align is not 0 or a
 * power of two <= KMEM_PAGE_SIZE, or no metadata is left.  `name` is kept
 * by pointer.  `ctor`, if given, runs on every object before
 * kmem_cache_alloc returns it (with interrupts in the caller's state).
 * Context: THREAD. */
struct kmem_cache *kmem_cache_create(const char *name, size_t size,
                                     size_t align, void (*ctor)(void *obj));

/* Returns NULL iff memory is exhausted.  Aligned to max(align, 8).
 * Cost: as kmalloc.  Context: ANY. */
void *kmem_cache_alloc(struct kmem_cache *cache);

/* Frees an object of this cache.  An object of another cache or of
 * kmalloc is reported (KMEM_FAULT_WRONG_CACHE) and not freed.  Objects of
 * a cache may also be freed with kfree().  Context: ANY. */
void kmem_cache_free(struct kmem_cache *cache, void *obj);

/* Sweeps the cache's spans and gives every empty one back to the mheap
 * (including the calling CPU's cached span when it is empty).  Returns the
 * number of pages given back.  Context: THREAD. */
size_t kmem_cache_shrink(struct kmem_cache *cache);

/* Destroys an empty cache.  Returns 0, or -KMEM_EBUSY (live objects
 * remain; the cache is left as it was).  No CPU may use the cache during or
 * after the call (as in Linux).  Context: THREAD. */
int kmem_cache_destroy(struct kmem_cache *cache);

/* ---------------------------------------------------------------------------
 * Bulk allocation and free (Linux's names and contracts; mm/bulk.c).
 * spanalloc has no gfp flags, so Linux's flags argument is left out.
 * Each call enters the allocator (interrupts off) once per batch, or once
 * per magazine it empties or fills, instead of once per object.
 */

/* Allocates n objects of the cache into p[0..n).  All or nothing: returns
 * n, or 0 when memory ran out (after the reclaim and OOM hook retries
 * kmem_cache_alloc makes) -- every object it had taken is then freed again
 * and p's contents are undefined.  Returns 0 also for n == 0 and for a
 * cache that is not live (reported, KMEM_FAULT_WRONG_CACHE).  The ctor,
 * if any, runs on every object before the call returns.  Cost: O(n), with
 * the per-object fast path of a magazine pop.  Context: ANY. */
size_t kmem_cache_alloc_bulk(struct kmem_cache *cache, size_t n, void **p);

/* Frees p[0..n), objects of the cache; NULL entries are skipped.
 * cache == NULL means kfree_bulk.  Each entry is checked as
 * kmem_cache_free checks it: a bad one (double free, interior, wild,
 * another cache's object, ...) is reported through the fault hook and not
 * freed, and the rest of the batch is freed all the same.  Context: ANY. */
void kmem_cache_free_bulk(struct kmem_cache *cache, size_t n, void **p);

/* kfree of p[0..n): any mix of kmalloc objects of any size (large ones
 * too) and object caches' objects; NULL entries are skipped; each bad
 * entry is reported as kfree reports it, the others are freed.
 * Context: ANY. */
void kfree_bulk(size_t n, void **p);

/* ---------------------------------------------------------------------------
 * Deferred free (kfree_rcu-style; mm/deferred.c has the design).
 *
 * kfree_deferred(p) gives p up now, but the allocator frees it only after
 * a grace period: readers that may still hold p (found through a
 * lock-free structure p was removed from before the call) can go on
 * reading it until the kernel reports that every CPU has passed a
 * quiescent state.  The kernel does that with two calls:
 *
 *     c = kmem_grace_period_start();   // when it starts a grace period
 *     ... every CPU passes a quiescent state ...
 *     kmem_grace_period_done(c);       // frees what was deferred before
 *                                      // the start that returned c
 *
 * Grace periods may overlap and end in any order; done(c) frees every
 * object deferred before start() returned c or any earlier cookie, and
 * never one deferred after it.  Nothing else frees deferred objects early:
 * not kmem_reclaim, not an allocation that runs out of memory, not
 * kmem_cpu_offline (a CPU that goes offline leaves its batches, and the
 * next kmem_grace_period_done on any CPU frees them).  Memory held by
 * deferred objects is not available until then: under memory pressure a
 * kernel should end a grace period (its OOM hook may call
 * kmem_grace_period_done for a grace period that has ended).
 *
 * The object is validated when it is deferred: a bad pointer is reported
 * at once, as kfree reports it, and a second kfree/kfree_deferred of a
 * deferred object is reported as a double free.  The allocator keeps the
 * pointers in metadata (per-CPU batches of up to KMEM_DEFER_BATCH), and
 * never writes into the object: until the grace period ends its contents
 * stay exactly as the client left them (in the debug heap and hardened
 * mode its poison, zeroing and canary checks happen when it is freed).
 * A deferred object is counted in use (kmem_get_class_stats) until freed.
 */
#define KMEM_DEFER_BATCH 61u

/* Returns 0 when p is deferred (or is NULL); -KMEM_EINVAL when p is not a
 * live object kfree would accept (reported through the fault hook,
 * nothing changed); -KMEM_ENOMEM when no metadata is left for a new batch
 * (nothing changed: p is still the caller's, who may free it itself after
 * its own grace period, or retry).  Cost: O(1): a per-CPU lock with
 * interrupts off, and once per KMEM_DEFER_BATCH objects a page heap's lock.
 * Context: ANY. */
int kfree_deferred(const void *p);

/* kfree_deferred of an object of `cache`; an object of another cache or
 * of kmalloc is reported (KMEM_FAULT_WRONG_CACHE) and -KMEM_EINVAL
 * returned. */
int kmem_cache_free_deferred(struct kmem_cache *cache, void *p);

/* Starts a grace period: returns its cookie (never 0).  Objects deferred
 * before this call are freed by kmem_grace_period_done(cookie) or a later
 * cookie's done.  Cost: one atomic add.  Context: ANY. */
uint64_t kmem_grace_period_start(void);

/* The grace period `cookie` has ended: every CPU passed a quiescent state
 * after kmem_grace_period_start returned it.  Frees every object deferred
 * before that start or an earlier one (on any CPU, online or not) and
 * returns how many; done() calls may come in any order.  A cookie start
 * has not returned yet, or 0, is ignored (returns 0).  Also gives back
 * the metadata pages that waited for this grace period (kmem_reclaim),
 * calling the protect hook for their guard pages.  Cost: O(CPUs +
 * objects freed), each free as in kfree_bulk, plus O(F + R) for the
 * metadata pages when some waited (kmem_reclaim).  Context: ANY (it frees with
 * kfree_bulk, whose fault reports -- a debug or hardened check failing at
 * the free -- it may make). */
size_t kmem_grace_period_done(uint64_t cookie);

struct kmem_defer_stats {
	uint64_t deferred;  /* objects given to kfree_deferred, ever */
	uint64_t freed;     /* of those, freed after their grace period, ever */
	uint64_t pending;   /* deferred - freed: waiting for a grace period */
	uint64_t started;   /* the last cookie kmem_grace_period_start returned */
	uint64_t completed; /* the highest cookie reported done */
	uint64_t batches;   /* metadata blocks holding pending objects */
};

/* Counts, exact at quiescence.  Context: ANY. */
void kmem_get_defer_stats(struct kmem_defer_stats *out);

/* ---------------------------------------------------------------------------
 * Reclaim
 */

/* Sweeps every span in every mcentral, gives empty spans back to the mheap
 * and flushes the calling CPU's cache.  Afterwards, with all other CPUs
 * flushed or idle-empty, free plus metadata pages equal managed pages iff
 * no object is live.
 * Metadata pages: the allocator's metadata that outgrows the metadata
 * region (span descriptors and their bitmap/state blocks, magazines,
 * debug records, cache descriptors, deferred batches) lives in runs of
 * pool pages (kmem_stats.pages_metadata, with a guard page at each end).
 * Reclaim frees the empty magazines no CPU holds, and finds the runs whose
 * every block is free: those go back to the pool, guard pages included
 * (unprotected through the protect hook first), once the grace period
 * they wait for has ended -- reported by kmem_grace_period_done for a
 * cookie from a kmem_grace_period_start called after this reclaim, or
 * found ended by a later kmem_reclaim.  The wait is what keeps a
 * lock-free kfree/ksize that read a span descriptor before its span was
 * released from reading or writing a page a client got since.  So to get
 * every page back after a workload:
 *     kmem_reclaim();  c = kmem_grace_period_start();
 *     ... every CPU passes a quiescent state ...
 *     kmem_grace_period_done(c);
 * A kernel that never reports grace periods never gets metadata pages
 * back, but loses none either: the blocks of waiting runs are used again
 * before new pages are taken.  Never given back: a run that holds the
 * hardened mode's quarantine ring (made at init), a run with one block
 * still in use (e.g. a live span's descriptor: metadata pages can stay
 * fragmented by a few long-lived spans), the metadata region itself.  A
 * release that meets a guard page being protected by another CPU's
 * allocation waits for the next reclaim or grace period.
 * A destroyed object cache's descriptor can go back this way: a call on
 * it after that is not reported (kmem_cache_destroy: no CPU may use it).
 * Returns the number of pages given back.  Cost: O(objects and spans
 * held) plus O(F log F + R) for F free metadata blocks and R metadata runs
 * under each node's page heap lock in turn.  Context: THREAD. */
size_t kmem_reclaim(void);

/* Exact free memory, for a kernel's `free`/meminfo: reclaims as
 * kmem_reclaim() does (from any CPU: the calling CPU's caches are flushed,
 * the other CPUs' previous magazines and cached spans are taken over,
 * every depot and the hardened quarantine emptied, every empty span given
 * back), then returns the number of pages kpage_alloc(1, 0, 0) would hand
 * out, one call after another, before it returned NULL, if nothing else
 * allocated meanwhile and no OOM hook added memory.  A single page
 * takes no descriptor or other metadata, so that is kmem_stats.pages_free
 * after the reclaim.  Metadata pages that emptied count once their grace
 * period ended (kmem_reclaim): after kmem_reclaim and a grace period, the
 * figure with no object live is the fresh heap's.
 * Not counted, because no reclaim from another CPU can take them while
 * that CPU runs: the objects in each other online CPU's loaded magazines
 * (one per size class and per object cache, of at most
 * min(64, max(2, 32 KiB / object size)) objects), and so the pages of
 * every span one of them keeps partly free.
 * With the other CPUs offline (kmem_cpu_offline), nothing is left out.
 * Cost: kmem_reclaim's, then O(nodes) under the page heaps' locks.
 * Context: THREAD, on any online CPU; exact when no other CPU allocates
 * or frees meanwhile. */
size_t kmem_free_pages(void);

/* ---------------------------------------------------------------------------
 * Statistics
 *
 * Counts are exact at quiescence after kmem_reclaim(); while CPUs run they
 * are a consistent-enough snapshot: an object counts as freed once its
 * span has been swept, and as allocated when it was handed out.
 */

struct kmem_class_stats {
	uint32_t object_size;     /* bytes per object (size class or cache) */
	uint32_t span_pages;      /* pages per span */
	uint64_t objects_in_use;  /* nmalloc - nfree */
	uint64_t nmalloc;         /* objects handed out, ever */
	uint64_t nfree;           /* objects freed and swept, ever */
	uint64_t spans;           /* spans held now */
	uint64_t bytes_in_use;    /* objects_in_use * object_size */
	uint64_t span_bytes;      /* spans * span_pages * page */
	uint64_t peak_span_bytes; /* highest span_bytes seen */
};

struct kmem_stats {
	uint64_t pages_managed;   /* pages in the pool (init + hot-add) */
	uint64_t pages_free;      /* free in the page allocator */
	uint64_t pages_small;     /* held by small-object spans */
	uint64_t pages_large;     /* held by large objects */
	uint64_t pages_runs;      /* held by kpage_alloc runs */
	uint64_t pages_metadata;  /* pool pages holding metadata: span descriptors
	                             past the reserve, hot-added arenas' own */
	uint64_t large_objects;   /* live large objects */
	uint64_t page_runs;       /* live page runs */
	uint64_t metadata_bytes;  /* size of the metadata region */
	uint64_t metadata_used;   /* bytes of it in use */
	uint64_t arenas;          /* 64 MiB arenas with metadata */
	unsigned nclasses;        /* size classes (index 1..nclasses-1 valid) */
	unsigned cpus_online;
};

/* Whole-heap counts.  pages_free + pages_small + pages_large + pages_runs +
 * pages_metadata == pages_managed at all times.  Context: ANY. */
void kmem_get_stats(struct kmem_stats *out);

/* Per size class, 1 <= cls < nclasses; returns -KMEM_EINVAL otherwise. */
int kmem_get_class_stats(unsigned cls, struct kmem_class_stats *out);

/* Per object cache. */
void kmem_cache_get_stats(const struct kmem_cache *cache,
                          struct kmem_class_stats *out);

/* Size class for a kmalloc of `size` (0 for large sizes). */
unsigned kmem_size_class(size_t size);

/* ---------------------------------------------------------------------------
 * Faults and checking
 */

enum kmem_fault_kind {
	KMEM_FAULT_DOUBLE_FREE = 1, /* object not allocated (already freed) */
	KMEM_FAULT_INTERIOR,        /* inside an object, not at its start */
	KMEM_FAULT_WILD,            /* not in memory the heap manages */
	KMEM_FAULT_FREE_PAGE,       /* on a page that is free */
	KMEM_FAULT_WRONG_CACHE,     /* object of another cache, or of kmalloc */
	KMEM_FAULT_WRONG_KIND,      /* page run freed as an object, or reverse */
	KMEM_FAULT_BAD_SIZE,        /* kpage_free with the wrong page count */
	KMEM_FAULT_METADATA,        /* pointer into allocator metadata */
	KMEM_FAULT_CORRUPT,         /* the invariant checker found a broken rule */
	KMEM_FAULT_USE_AFTER_FREE,  /* debug: a freed object was written to */
	KMEM_FAULT_OVERFLOW,        /* debug: an object's red zone was written */
};

struct kmem_fault {
	enum kmem_fault_kind kind;
	const void *addr;      /* the pointer the client passed */
	uintptr_t span_base;   /* start of the span it falls in, or 0 */
	unsigned size_class;   /* its size class, or 0 */
	const char *cache;     /* its object cache's name, or NULL */
	const char *detail;    /* a short static description */
	uintptr_t caller;      /* debug heap: who allocated the object, or 0 */
};

typedef void (*kmem_fault_hook_t)(const struct kmem_fault *fault);

/* Installs the fault hook; returns the previous one.  NULL restores the
 * default, which formats one line and calls arch_panic().  The hook runs
 * in the context of the faulting call, possibly with interrupts off and
 * never with an allocator lock held; it may return (the bad call then
 * does nothing) or not return.  Context: ANY. */
kmem_fault_hook_t kmem_set_fault_hook(kmem_fault_hook_t hook);

/* "double free", "interior pointer", ... */
const char *kmem_fault_name(enum kmem_fault_kind kind);

/* What is caught.  kfree, ksize, kmem_cache_free and kpage_free of
 * anything but a live object or run (a second free, an interior, wild or
 * metadata pointer, a free page, an object of another cache) is reported
 * through the fault hook and changes nothing, on every build and at every
 * hardening level: the checks read out-of-band state, never the object.
 * Two frees of one object racing on two CPUs are caught too (exactly one
 * is reported; the object is freed once).
 *
 * What is not.  A free is two steps on its CPU: read the object's state
 * ("live"), then record it as free.  A second free of an object that
 * stalls between the two (its vCPU preempted by a hypervisor, an SMI, an
 * NMI) for as long as it takes the object's first free, the release of its
 * whole span and the reuse of the same address by a new client on other
 * CPUs, records the new client's object as free.  That takes a double free
 * by the client and a stall longer than a span's lifetime; nothing bounds
 * it in software without an atomic read-modify-write on every free, which
 * the fast path leaves out.  A free is never lost and no allocator data is
 * corrupted by it: the damage is the client's object, handed out twice. */

/* Walks all metadata and verifies every invariant: page bitmaps against
 * summaries and counts, the arena map against spans, span bitmaps against
 * counts, span lists against states, statistics against pages.  Returns
 * the number of broken invariants (0 = intact); each is reported through
 * the fault hook as KMEM_FAULT_CORRUPT.  Cost: O(managed pages).
 * Context: QUIESCE. */
unsigned long kmem_check(void);

/* ---------------------------------------------------------------------------
 * Out of memory
 */

/* What an allocation that failed asks of the OOM hook. */
enum kmem_oom_kind {
	KMEM_OOM_OBJECT = 1, /* kmalloc, kzalloc, kcalloc, krealloc, kmalloc_aligned */
	KMEM_OOM_CACHE,      /* kmem_cache_alloc */
	KMEM_OOM_PAGES,      /* kpage_alloc */
};

struct kmem_oom_request {
	enum kmem_oom_kind kind;
	size_t bytes;        /* the size asked for (kpage_alloc: npages * page) */
	size_t align;        /* the alignment asked for, in bytes (>= 1) */
	uint64_t max_phys;   /* kpage_alloc's ceiling, or 0 for none */
	/* What would satisfy it: a free run of run_pages contiguous pages
	 * (for a small object an upper bound: one span of its class) whose
	 * physical address is a multiple of run_align bytes (a power of two,
	 * at least a page) and which ends at or below max_phys if that is
	 * set.  Memory that cannot hold such a run does not help. */
	uint64_t run_pages;
	uint64_t run_align;
	unsigned attempt;    /* 1 on the first call for this allocation, then 2.. */
};

/* The OOM hook.  Called when an allocation finds no memory even after
 * every span was swept and empty spans were released, with no allocator
 * lock held, interrupts in the caller's state, on the allocating CPU, with
 * what the allocation needs (above).  It may add memory (kmem_hot_add)
 * and return true to have the allocation retried, or return false to let
 * it return NULL.  It is not called for a request no memory could satisfy
 * (a run that cannot start at a multiple of run_align at or above page 1
 * and end below max_phys, or below 2^KMEM_PHYS_BITS), it is called again
 * (attempt + 1) only after it returned true and the heap did grow and the
 * retry still failed, and at most 8 times per allocation.  A hook should
 * add memory only where it can hold the run: above a ceiling, or where no
 * such alignment fits, adding is useless and it should return false.
 * Returns the previous hook.  Context: ANY; the hook runs in the context
 * of the failing allocation, which may be an interrupt handler: there it
 * must not call kmem_hot_add (Context: THREAD) and should return false
 * (or schedule the hot-add for a thread and return false). */
typedef bool (*kmem_oom_hook_t)(const struct kmem_oom_request *req);
kmem_oom_hook_t kmem_set_oom_hook(kmem_oom_hook_t hook);

/* ---------------------------------------------------------------------------
 * Debug heap
 *
 * Built with -DKMEM_DEBUG_HEAP=1, every kmalloc size class gets all three
 * checks below; object caches can have them at run time, per cache, with
 * kmem_cache_create_debug().  Large objects and page runs record only the
 * caller.
 *   POISON   freed objects are filled with 0x6b; the fill is checked when
 *            the object is handed out again (a write after free is
 *            reported as KMEM_FAULT_USE_AFTER_FREE).
 *   REDZONE  at least KMEM_REDZONE bytes after every object are filled
 *            with 0xcc and checked at kfree and by kmem_check()
 *            (KMEM_FAULT_OVERFLOW).  ksize() returns the size asked for.
 *   CALLER   the allocating return address is kept per object; fault
 *            reports and the leak report carry it.
 * Debug data lives in the metadata region like all other metadata; only
 * the poison and red-zone bytes are written into client slots, by design.
 */
#define KMEM_DEBUG_POISON 1u
#define KMEM_DEBUG_REDZONE 2u
#define KMEM_DEBUG_CALLER 4u
#define KMEM_DEBUG_ALL 7u
#define KMEM_REDZONE 16u

/* kmem_cache_create with debug flags (KMEM_DEBUG_*). */
struct kmem_cache *kmem_cache_create_debug(const char *name, size_t size, size_t align,
                                           void (*ctor)(void *obj), unsigned flags);

/* Lists live objects, one line per (class or cache, allocating caller):
 *   leak <class> <object size> <cache|-> caller=<hex> objects=<n>
 * (caller=0 where the span does not record callers, and for page runs of
 * up to 127 pages, which have no span; large objects and page runs as
 * class "large"/"run").  Returns the number of live objects.
 * `emit` must not call the allocator.  Cost: O(managed pages).
 * Context: QUIESCE. */
unsigned long kmem_leak_report(void (*emit)(const char *line, void *arg), void *arg);

/* ---------------------------------------------------------------------------
 * Hardened mode: kmem_config.harden = level (the malloc shim:
 * SPANALLOC_HARDEN=level).  Chosen at kmem_init() for the whole heap; level
 * 0 is the normal heap and costs nothing (the checks live on the slow
 * paths, which every kmalloc and kfree takes at level >= 1: the kmalloc
 * classes then have no magazines).  Object caches keep their own
 * per-cache debug flags (kmem_cache_create_debug) and are not hardened.
 * Each level adds to the one below; what each catches, per object size,
 * is in mm/harden.c's table and the misuse suite (tests/misuse/).
 *
 *   0  bad frees (double, interior, wild, free page) are reported, before
 *      anything changes -- as always.
 *   1  zero on free, checked at reuse: a freed object is zeroed, and the
 *      zeros are checked when it is handed out again (a write after free
 *      is reported as KMEM_FAULT_USE_AFTER_FREE), so every object kmalloc
 *      returns is zeroed, and a read after free reads zeros.  Canaries:
 *      every object gets at least KMEM_HARDEN_SLACK1 bytes of slack
 *      holding a secret pattern (never a zero byte), checked at kfree
 *      together with the bytes on either side of the object (the
 *      neighbours' canaries and zeros: underflows), and by kmem_check()
 *      (every live canary, every free slot's zeros) -- KMEM_FAULT_OVERFLOW.
 *      Large objects: zeroed at allocation and at free, the canary in the
 *      rest of their last page.  kmalloc(0) is a slot of canary: any write
 *      to it is caught at kfree.  ksize() is the size asked for.
 *   2  as 1 with KMEM_HARDEN_SLACK2 bytes of slack, and a quarantine:
 *      freed objects are not reused until KMEM_QUARANTINE_OBJECTS later
 *      frees or KMEM_QUARANTINE_BYTES of them have passed (one global FIFO
 *      under a lock, emptied by kmem_reclaim() and before an allocation
 *      fails).  A double free of a quarantined object is reported
 *      deterministically (however many allocations came in between, as
 *      long as it is within those bounds); its zeros are checked when it
 *      leaves the quarantine.
 *   3  as 2, with guard pages through the protect hook below (without a
 *      hook, level 3 is level 2): kmalloc(0) returns a unique pointer to
 *      a page that faults on read and write; large objects get a guard
 *      page before and after (kmalloc_aligned above a page: after only);
 *      a quarantined large object is unmapped, so reads and writes after
 *      its free fault.
 */
#define KMEM_HARDEN_MAX 3
/* (Level 2's quarantine skips objects above KMEM_QUARANTINE_BYTES / 4; at
 * level >= 1 every kmalloc and kfree takes the slow paths: costs in the
 * README, what each level catches in mm/harden.c and tests/misuse/.) */
#define KMEM_HARDEN_SLACK1 16u
#define KMEM_HARDEN_SLACK2 32u
#define KMEM_QUARANTINE_OBJECTS 1024u
#define KMEM_QUARANTINE_BYTES (8u << 20)

/* The level in effect (kmem_config.harden; 2 for a 3 without a protect
 * hook at the time of the call).  Context: ANY. */
unsigned kmem_harden_level(void);

/* Optional page-protection hook, for kernels with page tables (and the
 * shim: mprotect).  spanalloc's core never changes page tables itself;
 * with this hook, hardened level 3 asks for guard pages, and at every
 * level the guard pages that keep client pages away from allocator
 * metadata (a page at each end of the metadata region, of every run of
 * pool pages taken for metadata and of a hot-add's metadata) are unmapped
 * -- those made before the hook is set when it is set; a run's guards are
 * given back with KMEM_ACCESS_RW before the run goes back to the pool
 * (kmem_reclaim).
 * `addr` and `bytes` are page aligned and lie in managed memory or the
 * metadata region (direct-map addresses).  KMEM_ACCESS_NONE: every access to the range must fault
 * until the allocator gives it back with KMEM_ACCESS_RW (which it does
 * before it writes the range or hands it to anyone).  Returns true on
 * success; on false the allocator goes on without that guard.  Called with
 * no allocator lock held, interrupts in the state of the kmalloc/kfree
 * that needs it, or off (kmem_reclaim, and an allocation that ran out of
 * memory, empty the quarantine with interrupts off): a kernel whose TLB
 * shootdown needs interrupts must defer it.  mprotect-style hooks split
 * mappings: a refused call only costs that guard.  Set it after kmem_init() (which clears it)
 * and before the first allocation; returns the previous hook.  Setting
 * it costs a walk of every arena's page kinds.
 * Context: QUIESCE. */
enum kmem_access { KMEM_ACCESS_NONE = 0, KMEM_ACCESS_RW = 1 };
typedef bool (*kmem_protect_hook_t)(void *addr, size_t bytes, enum kmem_access access);
kmem_protect_hook_t kmem_set_protect_hook(kmem_protect_hook_t hook);

/* ---------------------------------------------------------------------------
 * Heap map
 */

/* Describes the heap's layout as text lines, in address order: the
 * metadata region, every arena, free page runs, spans (class, object size,
 * live objects, objects per span, cache), large objects, page runs and
 * pool pages taken for metadata.  The format is in mm/heapmap.c;
 * scripts/heapmap.py draws it.  `emit` is called once per line (no
 * newline) with the mheap lock held: it must not call the allocator.
 * Cost: O(managed pages).  Context: QUIESCE. */
void kmem_heapmap(void (*emit)(const char *line, void *arg), void *arg);

#ifdef __cplusplus
}
#endif

/* After the types above: memmap.h uses them (and includes this header,
 * which its guard then skips). */
#include "spanalloc/arch.h"
#include "spanalloc/memmap.h"

#endif /* SPANALLOC_H */
