/*
 * arch/riscv64/riscv64.h - the RISC-V (RV64) instructions spanalloc's
 * hooks and the demo kernel need, as inline code: CSRs, the interrupt
 * enable, fences, MMIO, and the per-CPU data.
 *
 * The demo kernel runs in M-mode (QEMU virt with -bios none starts every
 * hart there), so the global interrupt enable is mstatus.MIE.  A kernel in
 * S-mode would use sstatus.SIE (bit 1) the same way: set RISCV_IE_CSR and
 * RISCV_IE_BIT accordingly.
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

#ifndef RISCV_IE_CSR
#define RISCV_IE_CSR "mstatus"
#define RISCV_IE_BIT 8 /* mstatus.MIE */
#endif

#define csr_read(c)                                                  \
	({                                                           \
		unsigned long v_;                                    \
		__asm__ volatile("csrr %0, " #c : "=r"(v_));         \
		v_;                                                  \
	})
#define csr_write(c, v) __asm__ volatile("csrw " #c ", %0" : : "r"((unsigned long)(v)) : "memory")
#define csr_set(c, v) __asm__ volatile("csrs " #c ", %0" : : "r"((unsigned long)(v)) : "memory")
#define csr_clear(c, v) __asm__ volatile("csrc " #c ", %0" : : "r"((unsigned long)(v)) : "memory")

/* Clears the interrupt enable and returns the CSR as it was; restoring
 * sets the bit again only if it was set, so nesting works. */
static inline unsigned long riscv_irq_save(void)
{
	unsigned long f;
	__asm__ volatile("csrrc %0, " RISCV_IE_CSR ", %1" : "=r"(f) : "r"(RISCV_IE_BIT) : "memory");
	return f;
}

static inline void riscv_irq_restore(unsigned long f)
{
	__asm__ volatile("csrs " RISCV_IE_CSR ", %0" : : "r"(f & RISCV_IE_BIT) : "memory");
}

static inline void riscv_irq_enable(void)
{
	__asm__ volatile("csrs " RISCV_IE_CSR ", %0" : : "r"(RISCV_IE_BIT) : "memory");
}

extern __thread unsigned riscv_cpu_index;

static inline unsigned riscv_cpu_id(void)
{
	return riscv_cpu_index;
}

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
