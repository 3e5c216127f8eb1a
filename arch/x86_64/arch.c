/*
 * arch/x86_64/arch.c - spanalloc's arch contract (include/spanalloc/arch.h)
 * on x86_64, for the UEFI demo kernel, plus the COM1 console and the QEMU
 * exit the kernel ends with.
 *
 *   arch_irq_save/restore   pushfq + cli / push + popfq: the saved word is
 *                           RFLAGS, so nesting restores IF exactly.
 *   arch_cpu_id             %gs:8, the index in this CPU's struct percpu
 *                           (IA32_GS_BASE is set before the CPU's first
 *                           allocation and never changes afterwards).
 *   arch_cpu_relax          pause.
 *   arch_log                one line on COM1 under the console lock.
 *   arch_panic              "RESULT: FAIL panic: <message>" on COM1, then
 *                           QEMU's isa-debug-exit with the fail status
 *                           (kernel_fail: the first failing CPU reports,
 *                           any other halts).
 */
#include <stdatomic.h>
#include <stdbool.h>

#include "spanalloc/arch.h"
#include "percpu.h"
#include "x86.h"

/* ---------------------------------------------------------------------------
 * The contract
 */

unsigned long arch_irq_save(void)
{
	unsigned long f;
	__asm__ volatile("pushfq; popq %0; cli" : "=r"(f) : : "memory");
	return f;
}

void arch_irq_restore(unsigned long flags)
{
	__asm__ volatile("pushq %0; popfq" : : "r"(flags) : "memory", "cc");
}

unsigned arch_cpu_id(void)
{
	unsigned id;
	__asm__ volatile("movl %%gs:8, %0" : "=r"(id));
	return id;
}

void arch_cpu_relax(void)
{
	cpu_pause();
}

static size_t str_len(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

void arch_log(const char *line)
{
	unsigned long f = console_lock();
	serial_write(line, str_len(line));
	serial_write("\n", 1);
	console_unlock(f);
}

void arch_panic(const char *msg)
{
	char reason[200] = "panic: ";
	size_t n = 7;
	for (size_t i = 0; msg[i] && n + 1 < sizeof reason; i++)
		reason[n++] = msg[i];
	reason[n] = 0;
	kernel_fail(reason);
}

/* ---------------------------------------------------------------------------
 * Per-CPU area
 */

_Atomic int percpu_ready;

void percpu_install(struct percpu *p)
{
	p->self = p;
	wrmsr(MSR_GS_BASE, (uint64_t)(uintptr_t)p);
	atomic_store(&percpu_ready, 1);
}

/* This CPU's index, or ~0u before any GS base is set (early boot). */
static unsigned cpu_or_none(void)
{
	return atomic_load_explicit(&percpu_ready, memory_order_relaxed) ? arch_cpu_id() : ~0u;
}

/* ---------------------------------------------------------------------------
 * COM1 (16550 at 0x3f8)
 */

#define COM1 0x3f8

void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no UART interrupts */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0xc7); /* FIFO on, cleared */
	outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static void serial_putc(char c)
{
	/* Wait for the transmit holding register (bounded: never hang the
	 * failure path on a missing UART). */
	for (unsigned i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		cpu_pause();
	outb(COM1, (uint8_t)c);
}

void serial_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			serial_putc('\r');
		serial_putc(s[i]);
	}
}

static _Atomic unsigned console_owner = ~0u; /* CPU index, ~0u: free */
static unsigned console_depth;                /* owner's nesting depth */
static _Atomic int console_steal;             /* a CPU is failing: steal after a wait */
static _Atomic int failing;                   /* the CPU that reports the failure won */

void console_panic_mode(void)
{
	atomic_store(&console_steal, 1);
}

unsigned long console_lock(void)
{
	unsigned long f = arch_irq_save();
	unsigned me = cpu_or_none();
	if (atomic_load_explicit(&console_owner, memory_order_relaxed) == me) {
		console_depth++; /* re-entered from an exception on this CPU */
		return f;
	}
	for (unsigned long spins = 0;; spins++) {
		unsigned expect = ~0u;
		if (atomic_compare_exchange_weak_explicit(&console_owner, &expect, me,
		                                          memory_order_acquire, memory_order_relaxed))
			break;
		/* A failing CPU must get its report out even if the owner
		 * died holding the lock. */
		if (atomic_load_explicit(&console_steal, memory_order_relaxed) && spins > 20000000ul) {
			atomic_store_explicit(&console_owner, me, memory_order_relaxed);
			break;
		}
		cpu_pause();
	}
	console_depth = 1;
	return f;
}

void console_unlock(unsigned long flags)
{
	if (--console_depth == 0)
		atomic_store_explicit(&console_owner, ~0u, memory_order_release);
	arch_irq_restore(flags);
}

/* ---------------------------------------------------------------------------
 * Ending the run
 */

void qemu_exit(unsigned value)
{
	outb(QEMU_EXIT_PORT, (uint8_t)value);
	/* Not under QEMU (or no isa-debug-exit device): stop here. */
	cpu_halt_forever();
}

void kernel_fail(const char *reason)
{
	cli();
	console_panic_mode();
	int expect = 0;
	if (!atomic_compare_exchange_strong(&failing, &expect, 1))
		cpu_halt_forever(); /* another CPU is reporting */
	unsigned long f = console_lock();
	serial_write("RESULT: FAIL ", 13);
	serial_write(reason, str_len(reason));
	serial_write("\n", 1);
	console_unlock(f);
	qemu_exit(QEMU_EXIT_FAIL);
}
