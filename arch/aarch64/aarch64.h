/*
 * arch/aarch64/aarch64.h - the AArch64 instructions spanalloc's hooks and
 * the demo kernel need, as inline code: system registers, the DAIF
 * interrupt mask, barriers, MMIO, and the per-CPU pointer.
 *
 * The kernel runs at EL1.  The per-CPU pointer lives in TPIDR_EL1 (EL0's
 * TPIDR_EL0 stays the C library's thread pointer): it points at the CPU's
 * per-CPU area, whose 32-bit word at offset AARCH64_PERCPU_CPU_OFFSET is
 * the CPU index handed to the allocator.  It is set before the CPU's first
 * allocation and never changes afterwards.
 */
#ifndef ARCH_AARCH64_H
#define ARCH_AARCH64_H

#include <stdint.h>

#define AARCH64_PERCPU_CPU_OFFSET 8

#define read_sysreg(r)                                              \
	({                                                          \
		uint64_t v_;                                        \
		__asm__ volatile("mrs %0, " #r : "=r"(v_));         \
		v_;                                                 \
	})

#define write_sysreg(r, v) __asm__ volatile("msr " #r ", %0" : : "r"((uint64_t)(v)) : "memory")

static inline void isb(void) { __asm__ volatile("isb" : : : "memory"); }

/* Barriers: full system, inner shareable (between CPUs), and the one that
 * orders normal memory against device (MMIO) accesses. */
static inline void dsb_sy(void) { __asm__ volatile("dsb sy" : : : "memory"); }
static inline void dsb_ish(void) { __asm__ volatile("dsb ish" : : : "memory"); }
static inline void dmb_ish(void) { __asm__ volatile("dmb ish" : : : "memory"); }

#define DAIF_I (1u << 7) /* IRQs masked */

/* Masks IRQs and returns the previous DAIF: restoring it restores the I
 * bit exactly, so nested save/restore pairs work. */
static inline unsigned long aarch64_irq_save(void)
{
	unsigned long f;
	__asm__ volatile("mrs %0, daif\n\tmsr daifset, #2" : "=r"(f) : : "memory");
	return f;
}

static inline void aarch64_irq_restore(unsigned long f)
{
	__asm__ volatile("msr daif, %0" : : "r"(f) : "memory");
}

static inline void aarch64_irq_enable(void)
{
	__asm__ volatile("msr daifclr, #2" : : : "memory");
}

static inline unsigned aarch64_cpu_id(void)
{
	uintptr_t p;
	__asm__ volatile("mrs %0, tpidr_el1" : "=r"(p));
	return *(const unsigned *)(p + AARCH64_PERCPU_CPU_OFFSET);
}

static inline void aarch64_relax(void) { __asm__ volatile("yield" : : : "memory"); }
static inline void aarch64_wfi(void) { __asm__ volatile("wfi" : : : "memory"); }

/* MMIO: device memory accesses, ordered after earlier normal-memory
 * writes (a store to a doorbell must not pass the data it announces). */
static inline uint32_t mmio_read32(uintptr_t a)
{
	uint32_t v;
	__asm__ volatile("ldr %w0, [%1]" : "=r"(v) : "r"(a) : "memory");
	return v;
}

static inline void mmio_write32(uintptr_t a, uint32_t v)
{
	dsb_sy();
	__asm__ volatile("str %w0, [%1]" : : "r"(v), "r"(a) : "memory");
}

static inline void mmio_write8(uintptr_t a, uint8_t v)
{
	dsb_sy();
	__asm__ volatile("strb %w0, [%1]" : : "r"(v), "r"(a) : "memory");
}

#endif /* ARCH_AARCH64_H */
