/*
 * arch.c - spanalloc's six hooks (spanalloc/arch.h) for an RV64 kernel in
 * supervisor mode under an SBI firmware (OpenSBI, QEMU's default -bios).
 *
 *   arch_irq_save/restore  sstatus.SIE (M-mode's mstatus.MIE belongs to
 *                          the firmware): csrrc returns sstatus as it was
 *                          and restore sets SIE again only if it was set,
 *                          so nesting works.
 *   arch_cpu_id            riscv_cpu_index, a __thread variable: one load
 *                          off tp.  Each hart's tp points at its own TLS
 *                          block; the kernel stores the hart's index there
 *                          (0..n-1 in its own order, not the hart id: the
 *                          firmware may boot any hart) before the hart's
 *                          first allocation.  The boot hart's block is the
 *                          image's, whose .tbss is zeroed: 0 from the start.
 *   arch_cpu_relax         pause (Zihintpause; a core without it runs the
 *                          encoding as a fence).
 *   arch_log               the SBI debug console, a byte at a time: DBCN
 *                          (SBI 2.0), else the legacy console_putchar.
 *                          Lines of two harts may interleave.
 *   arch_panic             "panic: <msg>", then SBI system reset
 *                          (shutdown, reason "system failure").
 * Build it and mm/ with -march=rv64imac (the A extension: mm/'s atomics)
 * and -mcmodel=medany; -ftls-model=local-exec in a static kernel image.
 */
#undef KMEM_ARCH_INLINE /* this file defines the out-of-line hooks */
#include <spanalloc.h>

#define SSTATUS_SIE 2ul

#define SBI_EXT_LEGACY_PUTCHAR 0x01
#define SBI_EXT_LEGACY_SHUTDOWN 0x08
#define SBI_EXT_DBCN 0x4442434e /* function 2: write one byte */
#define SBI_EXT_SRST 0x53525354 /* function 0: system reset (type, reason) */

__thread unsigned riscv_cpu_index;

unsigned long arch_irq_save(void)
{
	unsigned long old;
	__asm__ volatile("csrrc %0, sstatus, %1" : "=r"(old) : "r"(SSTATUS_SIE) : "memory");
	return old;
}

void arch_irq_restore(unsigned long old)
{
	__asm__ volatile("csrs sstatus, %0" : : "r"(old & SSTATUS_SIE) : "memory");
}

unsigned arch_cpu_id(void)
{
	return riscv_cpu_index;
}

void arch_cpu_relax(void)
{
	__asm__ volatile(".4byte 0x0100000f" : : : "memory"); /* pause */
}

/* A call into the SBI firmware: a7 the extension, a6 the function, a0-a2
 * the arguments; it returns an error (0: success) and a value.  Not
 * static: the rest of a kernel calls the firmware through it too. */
struct sbiret {
	long error, value;
};

struct sbiret sbi_ecall(long ext, long fn, unsigned long arg0, unsigned long arg1, unsigned long arg2)
{
	register unsigned long a0 __asm__("a0") = arg0, a1 __asm__("a1") = arg1;
	register unsigned long a2 __asm__("a2") = arg2;
	register long a6 __asm__("a6") = fn, a7 __asm__("a7") = ext;
	__asm__ volatile("ecall" : "+r"(a0), "+r"(a1) : "r"(a2), "r"(a6), "r"(a7) : "memory");
	return (struct sbiret){(long)a0, (long)a1};
}

static void sbi_puts(const char *s)
{
	for (; *s; s++)
		if (sbi_ecall(SBI_EXT_DBCN, 2, (unsigned char)*s, 0, 0).error)
			sbi_ecall(SBI_EXT_LEGACY_PUTCHAR, 0, (unsigned char)*s, 0, 0);
}

void arch_log(const char *line)
{
	sbi_puts(line);
	sbi_puts("\n");
}

void arch_panic(const char *msg)
{
	arch_irq_save();
	sbi_puts("panic: ");
	arch_log(msg);
	sbi_ecall(SBI_EXT_SRST, 0, 0, 1, 0); /* shutdown, system failure */
	sbi_ecall(SBI_EXT_LEGACY_SHUTDOWN, 0, 0, 0, 0); /* SBI before v0.3 */
	for (;;)
		__asm__ volatile("wfi");
}
