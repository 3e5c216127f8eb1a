/*
 * arch/aarch64/arch_inline.h - the fast hooks inline (KMEM_ARCH_INLINE in
 * spanalloc/arch.h): DAIF save/mask/restore and the CPU index through
 * TPIDR_EL1, as in arch.c.
 */
#ifndef ARCH_AARCH64_ARCH_INLINE_H
#define ARCH_AARCH64_ARCH_INLINE_H

#include "aarch64.h"

#define arch_irq_save() aarch64_irq_save()
#define arch_irq_restore(f) aarch64_irq_restore(f)
#define arch_cpu_id() aarch64_cpu_id()

#endif
