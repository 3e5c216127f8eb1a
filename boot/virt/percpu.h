/*
 * boot/virt/percpu.h - the per-CPU area of the QEMU virt demo kernels
 * (aarch64, riscv64).  CPU 0's is static (bsp_percpu, needed before the
 * heap exists); every other CPU's area, stack and thread-local block come
 * from spanalloc (boot/virt/smp.c).
 *
 * How a CPU finds its own: aarch64 keeps a pointer to it in TPIDR_EL1 and
 * reads the index at +8 (arch/aarch64/aarch64.h); riscv64 keeps it in a
 * __thread variable off tp (arch/riscv64/riscv64.h).  this_cpu() is each
 * platform's (boot/<arch>/platform.c).
 */
#ifndef BOOT_VIRT_PERCPU_H
#define BOOT_VIRT_PERCPU_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct cpu_work; /* the demo workload's per-CPU state (boot/workload.c) */

struct percpu {
	struct percpu *self;
	unsigned cpu;            /* +8: index 0..ncpus-1 given to the allocator */
	uint32_t pad0;
	uint64_t hw_id;          /* MPIDR affinity (aarch64) or hart id (riscv64) */
	uint8_t *stack;          /* kernel stack, painted 0x5a (high-water mark) */
	size_t stack_size;
	void *tls;               /* its thread-local block (NULL on CPU 0: the image's) */
	struct cpu_work *work;   /* set by the workload before the CPU joins */
	_Atomic int state;       /* enum cpu_state (boot/demo.h) */
	_Atomic uint64_t ticks;  /* timer interrupts taken */
	uint64_t timer_period;   /* timer counts per tick */
	int in_fault;            /* nested exception guard */
};

_Static_assert(offsetof(struct percpu, cpu) == 8, "the CPU index is at +8");

struct percpu *this_cpu(void);

#endif /* BOOT_VIRT_PERCPU_H */
