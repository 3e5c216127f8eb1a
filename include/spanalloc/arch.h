/*
 * spanalloc/arch.h - the arch contract: everything mm/ needs from the CPU
 * and the environment.  arch/<arch>/ implements it; a kernel that links
 * spanalloc into itself provides these symbols (the porting guide lists
 * them).  Nothing else is called by mm/ except memcpy, memmove, memset and
 * memcmp.
 */
#ifndef SPANALLOC_ARCH_H
#define SPANALLOC_ARCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Disables interrupts on the calling CPU and returns the previous state as
 * an opaque word.  Nesting must work: save, save, restore, restore leaves
 * interrupts as they were before the first save. */
unsigned long arch_irq_save(void);

/* Restores the state returned by the matching arch_irq_save(). */
void arch_irq_restore(unsigned long flags);

/* The calling CPU's index, 0 <= id < kmem_config.max_cpus.  Stable while
 * interrupts are disabled. */
unsigned arch_cpu_id(void);

/* Called in spin-wait loops (x86 `pause`, arm `yield`, host: yield the
 * thread after a while). */
void arch_cpu_relax(void);

/* Writes one line of diagnostic text (no trailing newline in `line`). */
void arch_log(const char *line);

/* Stops the system after a fatal error; `msg` is one line. */
void arch_panic(const char *msg) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

/* Inline hooks (optional, for speed): build mm/ with
 *     -DKMEM_ARCH_INLINE='"arch_inline.h"'
 * and that header (found on the include path, e.g. arch/<arch>/) may
 * define any of arch_irq_save(), arch_irq_restore(f) and arch_cpu_id() as
 * function-like macros over static inline code.  The allocator's fast
 * paths then inline them; the out-of-line symbols must still exist for
 * code built without it.  arch/host/arch_inline.h is an example.
 *
 * It may also define two variants that let the allocation fast path stay
 * free of calls (it then needs no stack frame, and its rare cases are
 * tail calls); without them they fall back to the hooks above:
 *   arch_cpu_id_fast()        the CPU index as an int, or a negative value
 *                             when only arch_cpu_id() can tell (the caller
 *                             then takes its slow path, which calls it);
 *   arch_irq_restore_fast(f)  restores as arch_irq_restore(f) does and
 *                             returns nonzero; or returns 0 when the
 *                             caller must still call arch_irq_restore(f)
 *                             (deferred work: pending interrupts, a lock
 *                             to drop), which must then be harmless to
 *                             call after a partial restore;
 *   arch_bit_test_and_set(bits, i)  atomically sets bit i of the bitmap
 *                             `bits` (_Atomic uint64_t words), sequentially
 *                             consistent, and returns whether it was set
 *                             (x86: one lock bts on the bit string). */
#ifdef KMEM_ARCH_INLINE
#include KMEM_ARCH_INLINE
#endif
#ifndef arch_cpu_id_fast
#define arch_cpu_id_fast() ((int)arch_cpu_id())
#endif
#ifndef arch_irq_restore_fast
#define arch_irq_restore_fast(f) (arch_irq_restore(f), 1)
#endif

#endif /* SPANALLOC_ARCH_H */
