/*
 * arch/riscv64/riscv64.h - the RISC-V (RV64) instructions the demo kernel
 * needs beside the hooks, as inline code: CSRs, the interrupt enable,
 * the time CSR, fences, MMIO and SBI calls.
 *
 * The kernel runs in S-mode under OpenSBI (QEMU's default firmware), or,
 * built with -DRISCV_MMODE, in M-mode with no firmware (-bios none); the
 * global interrupt enable (sstatus.SIE or mstatus.MIE) and the per-CPU
 * index are arch_inline.h's.
 *
 * The per-CPU pointer is tp, the thread pointer: each hart's tp points at
 * its own thread-local block (a copy of the image's .tdata/.tbss, which the
 * C library's TLS uses too), so per-CPU variables are plain __thread
 * variables, one load off tp.  riscv_cpu_index is the CPU index handed to
 * the allocator; it is set, with tp, before the hart's first allocation.
 */
#ifndef ARCH_RISCV64_H
#define ARCH_RISCV64_H

#include <stdint.h>

/* The hooks' prototypes before arch_inline.h's macros for them. */
#include "spanalloc/arch.h"
#include "arch_inline.h"

/* The CSR may be a macro (CSR_TVEC, CSR_IE below): expanded first. */
#define csr_read(c) csr_read_(c)
#define csr_read_(c)                                                 \
	({                                                           \
		unsigned long v_;                                    \
		__asm__ volatile("csrr %0, " #c : "=r"(v_));         \
		v_;                                                  \
	})
#define csr_write(c, v) csr_op_("csrw", c, v)
#define csr_set(c, v) csr_op_("csrs", c, v)
#define csr_clear(c, v) csr_op_("csrc", c, v)
#define csr_op_(op, c, v) __asm__ volatile(op " " #c ", %0" : : "r"((unsigned long)(v)) : "memory")

/* The trap vector and the interrupt enables of the kernel's mode. */
#ifdef RISCV_MMODE
#define CSR_TVEC mtvec
#define CSR_IE mie
#else
#define CSR_TVEC stvec
#define CSR_IE sie
#endif

static inline void riscv_irq_enable(void)
{
	__asm__ volatile("csrs " RISCV_STATUS ", %0" : : "r"(RISCV_STATUS_IE) : "memory");
}

/* The time CSR: the platform timer's count (timebase-frequency in /cpus). */
static inline uint64_t riscv_time(void)
{
	uint64_t t;
	__asm__ volatile("rdtime %0" : "=r"(t));
	return t;
}

/* An SBI call (arch.c, S-mode only). */
struct sbiret {
	long error, value;
};
struct sbiret sbi_ecall(long ext, long fn, unsigned long arg0, unsigned long arg1, unsigned long arg2);

/* Zihintpause's pause (encoded as a FENCE with no successor set, so a
 * core without the extension runs it as a harmless fence). */
static inline void riscv_relax(void) { __asm__ volatile(".4byte 0x0100000f" : : : "memory"); }
static inline void riscv_wfi(void) { __asm__ volatile("wfi" : : : "memory"); }

/* Fences: between harts, and around device (MMIO) accesses. */
static inline void fence_rw(void) { __asm__ volatile("fence rw, rw" : : : "memory"); }
static inline void fence_io(void) { __asm__ volatile("fence iorw, iorw" : : : "memory"); }

static inline uint32_t mmio_read32(uintptr_t a)
{
	uint32_t v = *(volatile uint32_t *)a;
	__asm__ volatile("fence i, r" : : : "memory");
	return v;
}

static inline void mmio_write32(uintptr_t a, uint32_t v)
{
	__asm__ volatile("fence w, o" : : : "memory");
	*(volatile uint32_t *)a = v;
}

static inline uint64_t mmio_read64(uintptr_t a)
{
	uint64_t v = *(volatile uint64_t *)a;
	__asm__ volatile("fence i, r" : : : "memory");
	return v;
}

static inline void mmio_write64(uintptr_t a, uint64_t v)
{
	__asm__ volatile("fence w, o" : : : "memory");
	*(volatile uint64_t *)a = v;
}

#endif /* ARCH_RISCV64_H */
