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

#endif /* SPANALLOC_ARCH_H */
