/*
 * arch/host/shim_arch_inline.h - the shim arch's fast hooks as inline code
 * (KMEM_ARCH_INLINE, see spanalloc/arch.h): mm/ built with
 *     -DKMEM_ARCH_INLINE='"shim_arch_inline.h"' -Iarch/host
 * inlines them into kmalloc's fast path.  Semantics in shim_arch.c: a
 * thread-local "interrupts off" nesting count; a thread's private CPU slot
 * (or -1: claim one, or use a shared slot under its lock, out of line).
 */
#ifndef SPANALLOC_SHIM_ARCH_INLINE_H
#define SPANALLOC_SHIM_ARCH_INLINE_H

#include <stdatomic.h>
#include <stdint.h>

extern __thread unsigned long shim_t_irq;
extern __thread int shim_t_cpu;
extern __thread unsigned char shim_t_locked;
unsigned shim_cpu_slow(void);
void shim_shared_leave(void);

static inline unsigned long shim_irq_save_inline(void)
{
	unsigned long old = shim_t_irq;
	shim_t_irq = old + 1;
	atomic_signal_fence(memory_order_seq_cst);
	return old;
}

static inline void shim_irq_restore_inline(unsigned long flags)
{
	atomic_signal_fence(memory_order_seq_cst);
	shim_t_irq = flags;
	if (__builtin_expect(shim_t_locked != 0, 0) && flags == 0)
		shim_shared_leave();
}

/* arch_irq_restore_fast: the fast paths call it only after
 * arch_cpu_id_fast() gave a CPU, i.e. on a thread with a private slot,
 * which never holds a shared slot's lock (a thread on a shared slot gets -1
 * there and takes the slow paths, which restore with arch_irq_restore).
 * So it only stores the level. */
static inline int shim_irq_restore_fast_inline(unsigned long flags)
{
	atomic_signal_fence(memory_order_seq_cst);
	shim_t_irq = flags;
	return 1;
}

static inline unsigned shim_cpu_id_inline(void)
{
	int c = shim_t_cpu;
	if (__builtin_expect(c >= 0, 1))
		return (unsigned)c;
	return shim_cpu_slow();
}

#if defined(__x86_64__)
/* arch_bit_test_and_set: one locked bts on the bit string (the bit offset
 * may exceed 63 with a memory operand); a full barrier, as seq_cst. */
static inline int shim_bts_inline(_Atomic uint64_t *bits, uint32_t i)
{
	_Bool old;
	__asm__ volatile("lock btsq %2, %1"
	                 : "=@ccc"(old), "+m"(*(volatile uint64_t *)bits)
	                 : "r"((uint64_t)i)
	                 : "memory");
	return old;
}
#define arch_bit_test_and_set(bits, i) shim_bts_inline(bits, i)
#endif

#define arch_irq_save() shim_irq_save_inline()
#define arch_irq_restore(f) shim_irq_restore_inline(f)
#define arch_cpu_id() shim_cpu_id_inline()
#define arch_irq_restore_fast(f) shim_irq_restore_fast_inline(f)
#define arch_cpu_id_fast() (shim_t_cpu) /* negative: shim_cpu_slow decides */
/* The fast paths' entry is the same nesting count (there are no real
 * interrupts here): a call made while the thread is inside the allocator
 * -- pthread_setspecific allocating while a slot is claimed -- is nested
 * and uses the shared spans. */
#define arch_fast_enter() shim_irq_save_inline()
#define arch_fast_exit(t) shim_irq_restore_inline(t)
#define arch_fast_exit_hit(t) shim_irq_restore_fast_inline(t)

#endif
