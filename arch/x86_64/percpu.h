/*
 * arch/x86_64/percpu.h - the per-CPU area and the x86_64 services the demo
 * kernel gets from arch/x86_64/ (console, QEMU exit, failure path).
 *
 * Each CPU's IA32_GS_BASE points at its struct percpu, so arch_cpu_id() is
 * one load (%gs:8).  The BSP's area is static (it is needed before the heap
 * exists); every AP's area, stacks and TSS come from spanalloc.
 */
#ifndef ARCH_X86_64_PERCPU_H
#define ARCH_X86_64_PERCPU_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The 64-bit task state segment: only the interrupt stack table is used. */
struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iopb;
} __attribute__((packed));

_Static_assert(sizeof(struct tss64) == 104, "TSS layout");

struct cpu_work; /* the demo workload's per-CPU state (boot/) */

struct percpu {
	struct percpu *self;     /* %gs:0 */
	unsigned cpu;            /* %gs:8: index 0..ncpus-1 given to the allocator */
	uint32_t apic_id;        /* local APIC ID (from the MADT) */
	unsigned long fast_depth; /* %gs:16: arch_fast_enter's depth (arch_inline.h) */
	_Alignas(16) struct tss64 tss;
	void *stack;             /* kernel stack (NULL: the BSP's static one) */
	size_t stack_pages;
	void *ist_stack;         /* IST1: #DF, NMI, #MC */
	size_t ist_pages;
	struct cpu_work *work;   /* set by boot/ before the CPU joins */
	_Atomic int state;       /* enum cpu_state (boot/demo.h) */
	_Atomic uint64_t ticks;  /* LAPIC timer interrupts taken */
	int in_fault;            /* nested exception guard */
};

_Static_assert(offsetof(struct percpu, self) == 0, "%gs:0 is self");
_Static_assert(offsetof(struct percpu, cpu) == 8, "%gs:8 is the CPU index");
_Static_assert(offsetof(struct percpu, fast_depth) == 16, "%gs:16 is the fast-path depth");

static inline struct percpu *this_cpu(void)
{
	struct percpu *p;
	__asm__ volatile("movq %%gs:0, %0" : "=r"(p));
	return p;
}

/* Points IA32_GS_BASE at p (p->self must be p). */
void percpu_install(struct percpu *p);

/* True once the calling CPU's GS base points at its area. */
extern _Atomic int percpu_ready;

/* --- console (COM1) ------------------------------------------------------ */

void serial_init(void);
/* Writes n bytes to COM1, "\n" as "\r\n".  No locking. */
void serial_write(const char *s, size_t n);
/* The console lock: serialises lines from several CPUs.  Re-entrant on
 * the same CPU (an exception while printing) and stolen after a bounded
 * wait by a CPU that is failing the run. */
unsigned long console_lock(void);
void console_unlock(unsigned long flags);
/* Lets a failing CPU take the console from a CPU that never releases it. */
void console_panic_mode(void);

/* --- ending the run ------------------------------------------------------ */

/* isa-debug-exit (port 0xf4): QEMU exits with (value << 1) | 1. */
#define QEMU_EXIT_PORT 0xf4
#define QEMU_EXIT_PASS 0x10 /* QEMU status 33 */
#define QEMU_EXIT_FAIL 0x11 /* QEMU status 35 */

void qemu_exit(unsigned value) __attribute__((noreturn));

/* Prints "RESULT: FAIL <reason>" and exits QEMU with the fail status.  The
 * first CPU to get here wins; any other halts. */
void kernel_fail(const char *reason) __attribute__((noreturn));

#endif /* ARCH_X86_64_PERCPU_H */
