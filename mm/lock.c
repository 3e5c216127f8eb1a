/*
 * mm/lock.c - spin locks with a checked lock order.  See malloc.c for an
 * overview and mtypes.h for the order:
 *     LOCK_CACHES < LOCK_DEPOT < LOCK_CENTRAL < LOCK_HEAP
 * Callers disable interrupts first (every allocator entry point runs with
 * interrupts off around its locks), so an interrupt handler on the same
 * CPU can never spin on a lock its own CPU holds.
 */
#include "mtypes.h"

void lock_init(struct spinlock *l, enum lock_level level)
{
	atomic_store_explicit(&l->locked, 0, memory_order_relaxed);
	l->level = level;
}

#if KMEM_DEBUG >= 2
static void order_check_acquire(struct spinlock *l)
{
	struct mcache *c = mcache_of(arch_cpu_id());
	if (!c)
		return;
	/* Every held level must be lower than the one taken now. */
	KASSERT2((c->lock_levels >> l->level) == 0);
	c->lock_levels |= 1u << l->level;
}

static void order_check_release(struct spinlock *l)
{
	struct mcache *c = mcache_of(arch_cpu_id());
	if (c)
		c->lock_levels &= ~(1u << l->level);
}
#else
static inline void order_check_acquire(struct spinlock *l) { (void)l; }
static inline void order_check_release(struct spinlock *l) { (void)l; }
#endif

void lock_acquire(struct spinlock *l)
{
	order_check_acquire(l);
	lock_acquire_more(l);
}

/* Another lock of the level just taken (heaps_lock_all: the nodes'
 * heap.locks in node order), without the order record. */
void lock_acquire_more(struct spinlock *l)
{
	for (;;) {
		if (!atomic_exchange_explicit(&l->locked, 1, memory_order_acquire))
			return;
		while (atomic_load_explicit(&l->locked, memory_order_relaxed))
			arch_cpu_relax();
	}
}

void lock_release_more(struct spinlock *l)
{
	atomic_store_explicit(&l->locked, 0, memory_order_release);
}

void lock_release(struct spinlock *l)
{
	atomic_store_explicit(&l->locked, 0, memory_order_release);
	order_check_release(l);
}

unsigned long lock_irqsave(struct spinlock *l)
{
	unsigned long f = arch_irq_save();
	lock_acquire(l);
	return f;
}

void unlock_irqrestore(struct spinlock *l, unsigned long flags)
{
	lock_release(l);
	arch_irq_restore(flags);
}

bool lock_try(struct spinlock *l)
{
	return !atomic_load_explicit(&l->locked, memory_order_relaxed) &&
	       !atomic_exchange_explicit(&l->locked, 1, memory_order_acquire);
}

void lock_try_release(struct spinlock *l)
{
	atomic_store_explicit(&l->locked, 0, memory_order_release);
}
