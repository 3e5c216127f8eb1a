/*
 * arch/riscv64/arch.c - spanalloc's arch contract (spanalloc/arch.h) on
 * RV64 (the demo kernel runs in M-mode; see riscv64.h for S-mode).
 *
 *   arch_irq_save/restore   csrrc of mstatus.MIE; the saved word is mstatus
 *                           and restore sets MIE again only if it was set,
 *                           so nesting works.
 *   arch_cpu_id             riscv_cpu_index, a __thread variable: one load
 *                           off tp, each hart's thread pointer.
 *   arch_cpu_relax          pause (Zihintpause; a plain fence without it).
 * arch_log and arch_panic belong to the kernel's console (the demo kernel:
 * boot/virt/console.c).  mm/'s atomics are the A extension's AMOs and
 * LR/SC (-march=rv64imac).
 */
#undef KMEM_ARCH_INLINE /* this file defines the out-of-line hooks */
#include "spanalloc/arch.h"
#include "riscv64.h"

__thread unsigned riscv_cpu_index;

unsigned long arch_irq_save(void)
{
	return riscv_irq_save();
}

void arch_irq_restore(unsigned long flags)
{
	riscv_irq_restore(flags);
}

unsigned arch_cpu_id(void)
{
	return riscv_cpu_id();
}

void arch_cpu_relax(void)
{
	riscv_relax();
}
