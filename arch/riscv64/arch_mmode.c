/*
 * arch/riscv64/arch_mmode.c - the CPU hooks of the riscv64 demo kernel's
 * M-mode build (-DRISCV_MMODE, QEMU -bios none): arch_inline.h's, with
 * mstatus.MIE, out of line.  arch.c is the S-mode build's; here no SBI
 * firmware runs below the kernel, so arch_log and arch_panic are the demo
 * console's (boot/virt/loghooks.c).
 */
#undef KMEM_ARCH_INLINE /* this file defines the out-of-line hooks */
#include "spanalloc/arch.h"
#include "riscv64.h"
#undef arch_irq_save
#undef arch_irq_restore
#undef arch_cpu_id

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
	return riscv_cpu_index;
}

void arch_cpu_relax(void)
{
	riscv_relax();
}
