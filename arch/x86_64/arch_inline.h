/*
 * arch/x86_64/arch_inline.h - the fast hooks inline (KMEM_ARCH_INLINE in
 * spanalloc/arch.h) for the x86_64 demo kernels, as in arch.c, plus the
 * optional arch_fast_enter/exit pair.
 *
 * Why the pair: pushfq; cli ... popfq costs tens of cycles, as much as the
 * rest of a kmalloc.  The fast paths instead bump a depth counter in this
 * CPU's struct percpu (%gs:16) and leave interrupts on; an interrupt or NMI
 * handler that allocates meanwhile finds the depth nonzero and mm/ keeps
 * it off this CPU's magazines.  The demo kernels never preempt or migrate
 * kernel code, which is what the pair requires in between.  A plain load
 * and store is enough: a handler that arrives between them restores the
 * depth it found before it returns.
 */
#ifndef ARCH_X86_64_ARCH_INLINE_H
#define ARCH_X86_64_ARCH_INLINE_H

/* struct percpu (percpu.h): the CPU index at %gs:8, the depth at %gs:16. */
#define X86_PERCPU_FAST_DEPTH 16

static inline unsigned long x86_irq_save_inline(void)
{
	unsigned long f;
	__asm__ volatile("pushfq; popq %0; cli" : "=r"(f) : : "memory");
	return f;
}

static inline void x86_irq_restore_inline(unsigned long f)
{
	__asm__ volatile("pushq %0; popfq" : : "r"(f) : "memory", "cc");
}

static inline unsigned x86_cpu_id_inline(void)
{
	unsigned id;
	__asm__ volatile("movl %%gs:8, %0" : "=r"(id));
	return id;
}

static inline unsigned long x86_fast_enter_inline(void)
{
	unsigned long old;
	/* The memory clobbers keep the allocator's accesses inside. */
	__asm__ volatile("movq %%gs:%c1, %0" : "=r"(old) : "i"(X86_PERCPU_FAST_DEPTH) : "memory");
	__asm__ volatile("movq %0, %%gs:%c1" : : "r"(old + 1), "i"(X86_PERCPU_FAST_DEPTH) : "memory");
	return old;
}

static inline void x86_fast_exit_inline(unsigned long t)
{
	__asm__ volatile("movq %0, %%gs:%c1" : : "r"(t), "i"(X86_PERCPU_FAST_DEPTH) : "memory");
}

#define arch_irq_save() x86_irq_save_inline()
#define arch_irq_restore(f) x86_irq_restore_inline(f)
#define arch_cpu_id() x86_cpu_id_inline()
#define arch_cpu_id_fast() ((int)x86_cpu_id_inline())
#define arch_fast_enter() x86_fast_enter_inline()
#define arch_fast_exit(t) x86_fast_exit_inline(t)

#endif
