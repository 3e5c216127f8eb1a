/*
 * arch/riscv64/arch_inline.h - the fast hooks inline (KMEM_ARCH_INLINE in
 * spanalloc/arch.h): the interrupt enable bit and the CPU index as a
 * __thread variable off tp, as in arch.c.
 */
#ifndef ARCH_RISCV64_ARCH_INLINE_H
#define ARCH_RISCV64_ARCH_INLINE_H

#include "riscv64.h"

#define arch_irq_save() riscv_irq_save()
#define arch_irq_restore(f) riscv_irq_restore(f)
#define arch_cpu_id() riscv_cpu_id()

#endif
