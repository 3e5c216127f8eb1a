/*
 * arch/aarch64/arch.c - spanalloc's arch contract (spanalloc/arch.h) on
 * AArch64 at EL1.
 *
 *   arch_irq_save/restore   DAIF: read it, mask IRQs (daifset #2); the
 *                           saved word is DAIF itself, so nesting restores
 *                           the I bit exactly.  The allocator never runs in
 *                           FIQ context, so FIQs are left alone.
 *   arch_cpu_id             the 32-bit index at TPIDR_EL1 + 8 (the CPU's
 *                           per-CPU area, aarch64.h).
 *   arch_cpu_relax          yield.
 * arch_log and arch_panic belong to the kernel's console (the demo kernel:
 * boot/virt/loghooks.c).  Ordering between CPUs comes from the C11 atomics
 * in mm/ (LDAXR/STLXR, DMB); build mm/ with -mno-outline-atomics on a
 * bare-metal target (the outline helpers need Linux's getauxval) and
 * -mgeneral-regs-only, as interrupt handlers allocate.
 */
#undef KMEM_ARCH_INLINE /* this file defines the out-of-line hooks */
#include "spanalloc/arch.h"
#include "aarch64.h"

unsigned long arch_irq_save(void)
{
	return aarch64_irq_save();
}

void arch_irq_restore(unsigned long flags)
{
	aarch64_irq_restore(flags);
}

unsigned arch_cpu_id(void)
{
	return aarch64_cpu_id();
}

void arch_cpu_relax(void)
{
	aarch64_relax();
}
