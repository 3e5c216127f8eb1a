/*
 * spanalloc/arch.h - the arch contract: everything mm/ needs from the CPU
 * and the environment.  arch/<arch>/ implements it; a kernel that links
 * spanalloc into itself provides these six symbols (the README's "Porting
 * spanalloc to a kernel" has a complete example, tests/outoftree/example.c).
 * Nothing else is called by mm/ except memcpy, memmove, memset and memcmp.
 * (Out-of-memory handling is optional and not a hook: see
 * kmem_set_oom_hook() in spanalloc.h.)
 *
 * Every hook may be called from any context the allocator is called from,
 * interrupt handlers included, with interrupts on or off; none may call
 * the allocator.  spanalloc.h includes this header.
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
 * interrupts are disabled.
 *
 * Early boot: before the kernel has per-CPU areas (e.g. before it loads
 * GS base or TPIDR_EL1), arch_cpu_id() must return 0 on the boot CPU.
 * kmem_init() brings CPU 0 online, so the boot CPU can allocate from then
 * on -- its own and the other CPUs' per-CPU areas included -- through CPU
 * 0's cache; when its per-CPU area is installed it must still say 0.  Only
 * the boot CPU may run while arch_cpu_id() answers this way.  Every other
 * CPU needs kmem_cpu_online(id) before its first allocation. */
unsigned arch_cpu_id(void);

/* Called in spin-wait loops (x86 `pause`, arm `yield`, host: yield the
 * thread after a while). */
void arch_cpu_relax(void);

/* Writes one line of diagnostic text (no trailing newline in `line`).
 * Reserved for diagnostics: mm/ does not call it today (`make check-lib`
 * prints the library's undefined symbols), but a port should define it. */
void arch_log(const char *line);

/* Stops the system after a fatal error; `msg` is one line.  Called by the
 * default fault hook (a bad free while no hook is installed) and by failed
 * internal assertions (built with -DKMEM_DEBUG >= 1). */
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
 *                             call after a partial restore.  mm/ calls it
 *                             only on a path where arch_cpu_id_fast()
 *                             gave a CPU (not a negative value);
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

/* A fast path that leaves interrupts on (optional, inline header only).
 * Disabling interrupts costs tens of cycles on x86 (pushf; cli ... popf),
 * as much as the rest of a kmalloc.  A port may instead define:
 *   arch_fast_enter()         marks this CPU as inside the allocator and
 *                             returns the previous depth (0: it was not):
 *                             a per-CPU counter, incremented.  The caller
 *                             must stay on this CPU (no preemption or
 *                             migration) until the matching exit;
 *                             interrupts stay on.  An interrupt (or NMI)
 *                             handler that calls the allocator meanwhile
 *                             gets a nonzero depth, and mm/ then leaves
 *                             this CPU's caches alone (it allocates from
 *                             and frees to shared spans under a lock).
 *                             A plain load and store of the counter is
 *                             enough: a handler that interrupts between
 *                             them runs to the end before the store.
 *   arch_fast_exit(t)         puts depth t back;
 *   arch_fast_exit_hit(t)     the same, returning nonzero; or 0 when the
 *                             caller must still call arch_fast_exit(t)
 *                             (as arch_irq_restore_fast).
 * mm/ still disables interrupts (arch_irq_save) for everything beyond the
 * loaded magazine: refills, locks, reclaim.  Without these hooks the fast
 * paths use arch_irq_save/arch_irq_restore, and nothing nests. */
#ifdef arch_fast_enter
#define KMEM_FAST_NESTING 1
#ifndef arch_fast_exit_hit
#define arch_fast_exit_hit(t) (arch_fast_exit(t), 1)
#endif
#else
#define KMEM_FAST_NESTING 0
#define arch_fast_enter() arch_irq_save()
#define arch_fast_exit(t) arch_irq_restore(t)
#define arch_fast_exit_hit(t) arch_irq_restore_fast(t)
#endif

#endif /* SPANALLOC_ARCH_H */
