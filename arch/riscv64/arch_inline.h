/*
 * arch_inline.h - spanalloc's fast hooks inline for an RV64 kernel in
 * supervisor mode (optional): build mm/ with
 *     -DKMEM_ARCH_INLINE='"arch_inline.h"' -ftls-model=local-exec
 * and the allocator's fast paths inline these instead of calling arch.c's
 * (which must still be linked).  arch_cpu_id_fast, arch_irq_restore_fast:
 * spanalloc/arch.h's defaults suit (one load, one csrs).
 */
#ifndef RISCV64_ARCH_INLINE_H
#define RISCV64_ARCH_INLINE_H

/* The global interrupt enable: sstatus.SIE (bit 1).  (This project's demo
 * kernel also builds for M-mode with -DRISCV_MMODE: mstatus.MIE, bit 3.) */
#ifdef RISCV_MMODE
#define RISCV_STATUS "mstatus"
#define RISCV_STATUS_IE 8ul
#else
#define RISCV_STATUS "sstatus"
#define RISCV_STATUS_IE 2ul
#endif

extern __thread unsigned riscv_cpu_index; /* arch.c */

static inline unsigned long riscv_irq_save(void)
{
	unsigned long old;
	__asm__ volatile("csrrc %0, " RISCV_STATUS ", %1" : "=r"(old) : "r"(RISCV_STATUS_IE) : "memory");
	return old;
}

static inline void riscv_irq_restore(unsigned long old)
{
	__asm__ volatile("csrs " RISCV_STATUS ", %0" : : "r"(old & RISCV_STATUS_IE) : "memory");
}

#define arch_irq_save() riscv_irq_save()
#define arch_irq_restore(f) riscv_irq_restore(f)
#define arch_cpu_id() ((unsigned)riscv_cpu_index)

#endif
