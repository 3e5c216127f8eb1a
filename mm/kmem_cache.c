/*
 * mm/kmem_cache.c - object caches.  See malloc.c for an overview.
 *
 * A cache is a private size class: its own struct mcentral (geometry
 * chosen like a size class: tail waste <= 12.5%, at most
 * KMEM_MAX_SPAN_OBJECTS objects per span), its own depot and per-CPU
 * magazines (struct cache_cpu, a cache line per CPU), so its spans hold
 * only its objects.  That is what makes per-cache statistics exact,
 * shrink/destroy cheap and a free to the wrong cache detectable.  The
 * paths are kmalloc's (central_alloc and small_free in malloc.c).
 * With NUMA nodes a cache has an mcentral per node (node_central[]: its
 * own `central` for node 0, the others after the per-CPU array in the
 * descriptor's block); a CPU's magazines of the cache hold objects of its
 * node's mcentral only, as for the kmalloc classes.
 *
 * The list of caches is protected by mheap.caches_lock (LOCK_CACHES, the
 * outermost lock); descriptors come from a fixalloc (CPU 0's node's heap.lock).
 */
#include "mtypes.h"

/* Chooses pages per span for objects of elemsize bytes.  Returns 0 if no
 * geometry keeps the division constant exact. */
static uint32_t cache_span_pages(uint32_t elemsize)
{
	for (uint32_t np = 1; np <= 64; np++) {
		uint64_t span = (uint64_t)np << PAGE_SHIFT;
		uint64_t n = span / elemsize;
		if (n == 0 || n > KMEM_MAX_SPAN_OBJECTS)
			continue;
		if (span % elemsize <= span / 8)
			return np;
	}
	return 0;
}

/* offset / elemsize == (offset * divmul) >> shift for every offset below
 * nelems * elemsize?  Checking both ends of every object suffices: the
 * error of the approximation grows with the offset. */
static bool div_exact(uint32_t elemsize, uint32_t nelems, uint64_t divmul)
{
	for (uint64_t i = 0; i < nelems; i++) {
		uint64_t lo = i * elemsize, hi = lo + elemsize - 1;
		if (((lo * divmul) >> KMEM_DIV_SHIFT) != i || ((hi * divmul) >> KMEM_DIV_SHIFT) != i)
			return false;
	}
	return true;
}

struct kmem_cache *kmem_cache_create(const char *name, size_t size, size_t align,
                                     void (*ctor)(void *obj))
{
	return kmem_cache_create_debug(name, size, align, ctor,
	                               KMEM_DEBUG_HEAP ? KMEM_DEBUG_ALL : 0);
}

struct kmem_cache *kmem_cache_create_debug(const char *name, size_t size, size_t align,
                                           void (*ctor)(void *obj), unsigned flags)
{
	if (size == 0 || size > KMEM_SMALL_MAX || (flags & ~KMEM_DEBUG_ALL))
		return NULL;
	if (align && (!is_pow2(align) || align > PAGE_SIZE))
		return NULL;
	size_t slot = size + (flags & KMEM_DEBUG_REDZONE ? KMEM_REDZONE : 0);
	if (slot > KMEM_SMALL_MAX)
		return NULL;
	uint32_t elemsize = (uint32_t)align_up(slot, align > 8 ? align : 8);
	uint32_t np = cache_span_pages(elemsize);
	if (!np)
		return NULL;
	uint32_t nelems = (uint32_t)(((uint64_t)np << PAGE_SHIFT) / elemsize);
	uint64_t divmul = mcentral_div_const(elemsize);
	if (!div_exact(elemsize, nelems, divmul))
		return NULL;

	struct kmem_cache *k = fixalloc_alloc(&mheap_.cachealloc);
	if (!k)
		return NULL;
	/* The per-CPU array follows the descriptor in its block, then the
	 * mcentrals of nodes 1.. (bootmem.c sizes the block). */
	k->cpu = (struct cache_cpu *)(k + 1);
	memset(k->cpu, 0, mheap_.max_cpus * sizeof(struct cache_cpu));
	uintptr_t more = align_up((uintptr_t)(k->cpu + mheap_.max_cpus), KMEM_CACHE_LINE);
	for (unsigned node = 0; node < KMEM_MAX_NODES; node++) {
		struct mcentral *c = NULL;
		if (node < mheap_.nnodes) {
			c = node ? (struct mcentral *)more : &k->central;
			if (node)
				more += align_up(sizeof(struct mcentral), KMEM_CACHE_LINE);
			mcentral_init(c, 0, elemsize, np, nelems, 1, divmul, k);
			c->debug = flags;
			c->node = (uint8_t)node;
		}
		k->node_central[node] = c;
	}
	k->name = name;
	k->size = size;
	k->align = align;
	k->ctor = ctor;
	unsigned long f = lock_irqsave(&mheap_.caches_lock);
	k->magic = KMEM_CACHE_MAGIC;
	k->next = mheap_.caches;
	mheap_.caches = k;
	unlock_irqrestore(&mheap_.caches_lock, f);
	return k;
}

static inline __attribute__((always_inline)) void *cache_alloc(struct kmem_cache *k, int node, uintptr_t caller)
{
	if (!k || k->magic != KMEM_CACHE_MAGIC) {
		report_fault(KMEM_FAULT_WRONG_CACHE, k, NULL, "not a live object cache");
		return NULL;
	}
	if (__builtin_expect(node != KMEM_NO_NODE, 0) && (node < 0 || (unsigned)node >= mheap_.nnodes))
		return NULL;
	void *p = WITH_OOM_RETRY(oom_request(KMEM_OOM_CACHE, k->size, k->align, 0),
	                         cache_alloc_on_cpu(k, caller, node));
	if (p && k->ctor)
		k->ctor(p);
	return p;
}

void *kmem_cache_alloc(struct kmem_cache *k)
{
	return cache_alloc(k, KMEM_NO_NODE, (uintptr_t)__builtin_return_address(0));
}

void *kmem_cache_alloc_node(struct kmem_cache *k, int node)
{
	return cache_alloc(k, node, (uintptr_t)__builtin_return_address(0));
}

void kmem_cache_free(struct kmem_cache *k, void *obj)
{
	if (!obj)
		return;
	if (!k || k->magic != KMEM_CACHE_MAGIC) {
		report_fault(KMEM_FAULT_WRONG_CACHE, obj, NULL, "cache is not live (destroyed?)");
		return;
	}
	struct mspan *s = span_of_ptr(obj);
	if (!s) {
		kfree(obj); /* reports why there is no span */
		return;
	}
	switch (atomic_load_explicit(&s->state, memory_order_acquire)) {
	case SPAN_SMALL:
		if (s->cache == k)
			small_free(s, obj);
		else
			report_fault(KMEM_FAULT_WRONG_CACHE, obj, s,
			             s->cache ? "object of another cache" : "object of kmalloc");
		return;
	case SPAN_LARGE:
		report_fault(KMEM_FAULT_WRONG_CACHE, obj, s, "large object of kmalloc");
		return;
	case SPAN_RUN:
		report_fault(KMEM_FAULT_WRONG_KIND, obj, s, "page run freed to an object cache");
		return;
	default:
		report_fault(KMEM_FAULT_DOUBLE_FREE, obj, s, "span is being freed");
		return;
	}
}

/* Gives back CPU cpu's magazines and span of cache k (the caller holds
 * caches_lock or owns the cache exclusively; CPU cpu is the caller or out
 * of the allocator). */
static void cache_flush_cpu(struct kmem_cache *k, unsigned cpu)
{
	mag_drain_cpu(&k->cpu[cpu].mag, &k->cpu[cpu].cls, central_of_cpu(&k->central, cpu));
}

/* Spans of cache k's mcentrals (caches_lock held). */
static uint64_t cache_spans(const struct kmem_cache *k)
{
	uint64_t n = 0;
	for (unsigned node = 0; node < mheap_.nnodes; node++)
		n += k->node_central[node]->spans;
	return n;
}

void kmem_caches_cpu_flush(unsigned cpu)
{
	unsigned long f = lock_irqsave(&mheap_.caches_lock);
	for (struct kmem_cache *k = mheap_.caches; k; k = k->next)
		cache_flush_cpu(k, cpu);
	unlock_irqrestore(&mheap_.caches_lock, f);
}

/* reclaim_all's part for object caches: the calling CPU's magazines were
 * flushed by mcache_flush; the other CPUs' previous magazines and spans
 * are taken over (magazine.c), then each cache's depot and spans. */
size_t kmem_caches_reclaim(void)
{
	size_t n = 0;
	unsigned self = arch_cpu_id();
	unsigned long f = lock_irqsave(&mheap_.caches_lock);
	/* Racing double frees the sweeps found are reported after the lock
	 * (a cache may be gone by then: its counts are gathered here). */
	struct mcentral found;
	atomic_store_explicit(&found.racing, 0, memory_order_relaxed);
	for (struct kmem_cache *k = mheap_.caches; k; k = k->next) {
		for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++)
			if (cpu != self)
				mag_take_over(&k->cpu[cpu].cls, central_of_cpu(&k->central, cpu));
		for (unsigned node = 0; node < mheap_.nnodes; node++) {
			struct mcentral *c = k->node_central[node];
			n += mcentral_reclaim(c);
			uint64_t r = atomic_exchange_explicit(&c->racing, 0, memory_order_acquire);
			if (r) {
				atomic_fetch_add_explicit(&found.racing, r, memory_order_relaxed);
				atomic_store_explicit(&found.racing_addr,
				                      atomic_load_explicit(&c->racing_addr,
				                                           memory_order_relaxed),
				                      memory_order_relaxed);
			}
		}
	}
	unlock_irqrestore(&mheap_.caches_lock, f);
	mcentral_report_racing(&found);
	return n;
}

size_t kmem_cache_shrink(struct kmem_cache *k)
{
	if (!k || k->magic != KMEM_CACHE_MAGIC)
		return 0;
	/* The pages released are counted as they go: a difference of span
	 * counts read without the lock was garbage under concurrency. */
	unsigned long f = lock_irqsave(&mheap_.caches_lock);
	unsigned self = arch_cpu_id();
	size_t n = 0;
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++)
		if (cpu != self)
			mag_take_over(&k->cpu[cpu].cls, central_of_cpu(&k->central, cpu));
	cache_flush_cpu(k, self);
	for (unsigned node = 0; node < mheap_.nnodes; node++)
		n += mcentral_reclaim(k->node_central[node]);
	unlock_irqrestore(&mheap_.caches_lock, f);
	return n;
}

int kmem_cache_destroy(struct kmem_cache *k)
{
	if (!k || k->magic != KMEM_CACHE_MAGIC) {
		report_fault(KMEM_FAULT_WRONG_CACHE, k, NULL, "destroying a cache that is not live");
		return -KMEM_EINVAL;
	}
	unsigned long f = lock_irqsave(&mheap_.caches_lock);
	for (unsigned cpu = 0; cpu < mheap_.max_cpus; cpu++)
		cache_flush_cpu(k, cpu);
	for (unsigned node = 0; node < mheap_.nnodes; node++)
		mcentral_reclaim(k->node_central[node]);
	if (cache_spans(k)) {
		unlock_irqrestore(&mheap_.caches_lock, f);
		return -KMEM_EBUSY;
	}
	struct kmem_cache **pp = &mheap_.caches;
	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	k->magic = KMEM_CACHE_DEAD;
	unlock_irqrestore(&mheap_.caches_lock, f);

	fixalloc_free(&mheap_.cachealloc, k);
	return 0;
}

void kmem_cache_get_stats(const struct kmem_cache *k, struct kmem_class_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!k || k->magic != KMEM_CACHE_MAGIC)
		return;
	for (unsigned node = 0; node < mheap_.nnodes; node++)
		central_stats(k->node_central[node], out);
}
