/*
 * arch/host/arch_inline.h - the host arch's fast hooks as inline code (see
 * KMEM_ARCH_INLINE in spanalloc/arch.h).  Same semantics as arch.c: a
 * thread-local interrupt level, pending simulated interrupts run when it
 * drops to zero, and the thread's CPU slot (claimed on first use).
 */
#ifndef SPANALLOC_HOST_ARCH_INLINE_H
#define SPANALLOC_HOST_ARCH_INLINE_H

#include <signal.h>
#include <stdatomic.h>

extern _Thread_local int host_my_cpu;
extern _Thread_local volatile unsigned long host_fast_depth;
extern _Thread_local volatile sig_atomic_t host_irq_off;
extern _Thread_local _Atomic int host_irq_pending;
int host_cpu_claim(int want);
void host_irq_run_pending(void);

static inline unsigned long host_irq_save_inline(void)
{
	unsigned long old = (unsigned long)host_irq_off;
	host_irq_off = (sig_atomic_t)(old + 1);
	atomic_signal_fence(memory_order_seq_cst);
	return old;
}

static inline void host_irq_restore_inline(unsigned long flags)
{
	atomic_signal_fence(memory_order_seq_cst);
	host_irq_off = (sig_atomic_t)flags;
	if (__builtin_expect(flags == 0 &&
	                         atomic_load_explicit(&host_irq_pending, memory_order_relaxed) > 0,
	                     0))
		host_irq_run_pending();
}

/* arch_irq_restore_fast: 0 if pending interrupts must run (the caller
 * then calls arch_irq_restore, which stores the same level again). */
static inline int host_irq_restore_fast_inline(unsigned long flags)
{
	atomic_signal_fence(memory_order_seq_cst);
	host_irq_off = (sig_atomic_t)flags;
	return !(flags == 0 && atomic_load_explicit(&host_irq_pending, memory_order_relaxed) > 0);
}

static inline unsigned host_cpu_id_inline(void)
{
	int c = host_my_cpu;
	if (__builtin_expect(c < 0, 0))
		c = host_cpu_claim(-1);
	return (unsigned)c;
}

/* The fast paths' entry (spanalloc/arch.h, arch_fast_enter): a depth of
 * its own, which does not hold simulated interrupts back, so that an
 * interrupt can arrive inside a fast path and allocate there (nested). */
static inline unsigned long host_fast_enter_inline(void)
{
	unsigned long old = host_fast_depth;
	host_fast_depth = old + 1;
	atomic_signal_fence(memory_order_seq_cst);
	return old;
}

static inline void host_fast_exit_inline(unsigned long t)
{
	atomic_signal_fence(memory_order_seq_cst);
	host_fast_depth = t;
}

#define arch_fast_enter() host_fast_enter_inline()
#define arch_fast_exit(t) host_fast_exit_inline(t)
#define arch_irq_save() host_irq_save_inline()
#define arch_irq_restore(f) host_irq_restore_inline(f)
#define arch_cpu_id() host_cpu_id_inline()
#define arch_irq_restore_fast(f) host_irq_restore_fast_inline(f)
#define arch_cpu_id_fast() (host_my_cpu) /* negative until claimed */

#endif
