/*
 * boot/virt/virt.h - the demo kernel for QEMU's virt machines (aarch64 and
 * riscv64), with picolibc: what the shared part (boot/virt/) and each
 * platform (boot/aarch64/, boot/riscv64/) provide each other.
 *
 * Boot order (boot/virt/kmain.c, main() called by picolibc's crt0 on the
 * boot CPU with the image's .data, .bss and TLS set up):
 *   plat_early       vectors, per-CPU pointer, MMU (aarch64), clocks
 *   device tree      plat_dtb() -> its devices (plat_dt_init), the CPUs
 *                    (/cpus), the memory map (mm/fdt.c: /memory,
 *                    /reserved-memory, reservation block; the blob and
 *                    this image kept out)
 *   kmem_init        boot report, workload set-up, timer on, interrupts
 *                    on, self tests
 *   other CPUs       boot/virt/smp.c: per-CPU area, stack and TLS block
 *                    from spanalloc, plat_start_cpu (PSCI CPU_ON; SBI
 *                    HSM hart_start, or in M-mode the parked hart's
 *                    mailbox and an IPI), one at a time
 *   workload         on every CPU (boot/workload.c), then the RESULT line
 *                    and the exit status through semihosting.
 */
#ifndef BOOT_VIRT_H
#define BOOT_VIRT_H

#include "demo.h"
#include "spanalloc/fdt.h"

/* What a starting CPU gets (boot/<arch>/entry.S reads it at these
 * offsets): its stack, the C function to call with the block, its per-CPU
 * area, and what the platform needs before C can run (aarch64: the boot
 * CPU's MAIR, TCR, TTBR0 and SCTLR, so it turns on the same MMU). */
struct cpu_start {
	uint64_t sp;    /* 0: top of its stack */
	uint64_t entry; /* 8: void entry(struct cpu_start *) */
	struct percpu *pc;
	uint64_t arch[5];
};
#define CPU_START_SP 0
#define CPU_START_ENTRY 8
#define CPU_START_ARCH 24

/* --- boot/<arch>/platform.c ---------------------------------------------- */

extern const char plat_name[];  /* for the banner */

/* Boot CPU, first thing in main(): exception vectors, the per-CPU pointer
 * (at bsp_percpu), the MMU where there is one, the clock uptime_us reads. */
void plat_early(void);
/* The device tree QEMU passed (kfail if there is none). */
const void *plat_dtb(void);
/* Finds the interrupt controller, timer, CPU starter (PSCI) in the tree,
 * sets them up on the boot CPU and prints what it found; kfail if one is
 * missing. */
void plat_dt_init(const void *dtb);
/* The boot CPU's hardware id (as /cpus/cpu@N's reg) and the most CPUs the
 * platform can drive (a GICv2 has 8 CPU interfaces). */
uint64_t plat_boot_hw_id(void);
unsigned plat_cpu_limit(void);
/* Prepares *cs (arch fields) and starts pc's CPU at its entry with it. */
void plat_start_cpu(struct percpu *pc, struct cpu_start *cs);
/* On a starting CPU, first C code: vectors, per-CPU pointer, interrupt
 * controller (its thread pointer is already set). */
void plat_cpu_init(struct percpu *pc);
/* This CPU's timer interrupt at TIMER_HZ (taken once interrupts are on). */
void plat_timer_start(struct percpu *pc);
void plat_irq_enable(void);
/* Interrupts off, wait for ever. */
void plat_halt(void) __attribute__((noreturn));

/* --- boot/virt/ for the platforms ---------------------------------------- */

/* The timer interrupt, after the platform re-armed it: counts the tick
 * and runs the workload's hook. */
void virt_timer_tick(struct percpu *pc);
/* A CPU exception: reports it and fails the run (a second fault while
 * reporting stops the CPU). */
void virt_fault(const char *what, uint64_t pc_addr, uint64_t addr, uint64_t cause)
	__attribute__((noreturn));
/* The first node at `depth` named `name` or `name@...`. */
bool virt_dt_node(const void *dtb, unsigned depth, const char *name, struct fdt_node *out);

/* Writes the line under the console lock (no formatting). */

/* Starts every CPU after the first (hw_ids[0] is the boot CPU's); each
 * runs hook(pc) with its timer on and its mcache online.  Returns the
 * number of CPUs running, the boot CPU included. */
unsigned smp_start(struct percpu **cpus, void (*hook)(struct percpu *pc), const uint64_t *hw_ids,
                   unsigned ncpus);

/* This image, from the linker script (linker.ld). */
extern char __kernel_start[], __kernel_end[], __stack_bottom[], __stack[];

/* --- boot/virt/smpstress.c ------------------------------------------------ */

/* The SMP ordering stress, on every CPU (cpu of ncpus) before the
 * workload: cross-CPU frees of one class, kmem_check, pages back. */
void smp_stress_phase(unsigned cpu, unsigned ncpus);

#endif /* BOOT_VIRT_H */
