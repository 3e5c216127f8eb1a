/*
 * arch/host/host.h - host-only extras of the arch contract: CPU slots for
 * threads and simulated interrupts.  Used by tests and the malloc shim.
 */
#ifndef SPANALLOC_HOST_H
#define SPANALLOC_HOST_H

#include <stdbool.h>

/* Claims CPU slot `want` (or any free slot if want < 0) for the calling
 * thread and brings it online.  Aborts if none is free.  Returns the slot.
 * Threads that never call it claim a slot on their first allocation. */
int host_cpu_claim(int want);

/* Takes the calling thread's CPU offline and frees its slot (also done
 * automatically when the thread exits). */
void host_cpu_release(void);

/* Early boot, as on a kernel's boot CPU before its per-CPU areas exist:
 * while on, a thread that has no slot is CPU 0 without claiming one
 * (arch_cpu_id() returns 0 and brings nothing online), and fx_init()
 * claims no slot.  Off by default; turning it off lets the thread claim
 * its slot (host_cpu_claim(0)) as a kernel installs its per-CPU area. */
void host_set_early_boot(bool on);
bool host_early_boot(void);

/* Forgets every slot (after kmem_init() builds a new heap in a test). */
void host_cpu_reset_all(void);

/* Number of slots threads may claim (<= KMEM_MAX_CPUS and <= the
 * kmem_config.max_cpus the heap was built with). */
void host_set_ncpus(unsigned n);

/* Simulated interrupts for the calling thread: host_irq_raise() runs the
 * handler now (interrupts on) or when the thread next turns them on. */
typedef void (*host_irq_fn)(void *arg);
void host_irq_set_handler(host_irq_fn fn, void *arg);
void host_irq_raise(void);
bool host_irq_disabled(void);

#endif
