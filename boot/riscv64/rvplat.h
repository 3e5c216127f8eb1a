/*
 * boot/riscv64/rvplat.h - between platform.c, the part of the riscv64
 * demo kernel both builds share, and the build's mode file: smode.c
 * (S-mode under an SBI firmware, the default) or mmode.c (M-mode with no
 * firmware, -DRISCV_MMODE).  The mode file also provides the platform
 * calls of boot/virt/virt.h that differ: plat_name, plat_cpu_limit,
 * plat_timer_start, timer_stop, plat_start_cpu, plat_cpu_init.
 */
#ifndef BOOT_RISCV64_RVPLAT_H
#define BOOT_RISCV64_RVPLAT_H

#include "riscv64.h"
#include "virt.h"

#define CAUSE_IRQ (1ull << 63)

extern uint64_t boot_hartid, boot_dtb; /* entry.S: the boot hart's a0, a1 */
extern char trap_entry[];

/* platform.c: ticks of the time CSR per second (/cpus' timebase-frequency). */
extern uint64_t riscv_timebase;
/* platform.c: the calling hart's trap vector, per-CPU pointer and index. */
void riscv_cpu_setup(struct percpu *pc);

/* The mode file: its devices or firmware, found on the boot hart after
 * the timebase (prints its boot line); an interrupt, `code` being the
 * cause without CAUSE_IRQ; a machine reset with no report. */
void mode_dt_init(const void *dtb);
void mode_irq(uint64_t code, struct percpu *pc);
void mode_reset(void) __attribute__((noreturn));

#endif
