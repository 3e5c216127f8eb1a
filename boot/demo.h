/*
 * boot/demo.h - the demo workload's view of a kernel, on any arch.
 *
 * boot/workload.c (every CPU and every CPU's timer interrupt allocating
 * and freeing, remote frees, teardown, RESULT line) and boot/selftest.c
 * are the same code on every arch; this header is all they use.  Each
 * demo kernel provides it:
 *   x86_64   boot/ (UEFI, LAPIC timer, INIT-SIPI), arch/x86_64/
 *   aarch64  boot/virt/ + boot/aarch64/ (PSCI, GIC + generic timer)
 *   riscv64  boot/virt/ + boot/riscv64/ (S-mode under OpenSBI: SBI HSM,
 *            Sstc or SBI timer; or M-mode harts with the CLINT)
 *
 * "percpu.h" (found on the kernel's include path) defines struct percpu
 * with at least these members, which the workload uses:
 *     unsigned cpu;              index given to the allocator (arch_cpu_id)
 *     struct cpu_work *work;     the workload's per-CPU state
 *     _Atomic int state;         enum cpu_state
 *     _Atomic uint64_t ticks;    timer interrupts taken
 */
#ifndef BOOT_DEMO_H
#define BOOT_DEMO_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spanalloc.h"
#include "spanalloc/arch.h"
#include "percpu.h"

#define BOOT_MAX_CPUS KMEM_MAX_CPUS

#define TIMER_HZ 1000 /* the timer interrupt on every CPU */

enum cpu_state { CPU_ABSENT = 0, CPU_STARTING, CPU_RUNNING, CPU_HALTED };

/* --- what every demo kernel provides ------------------------------------- */

/* Formatted output, one whole line at a time under the console lock. */
/* boot/kprintf.c, over what each kernel's console provides:
 * kvsnprintf, console_puts (one string, under the console lock) and
 * kernel_fail (RESULT: FAIL and the fail exit). */
int kvsnprintf(char *buf, size_t cap, const char *fmt, va_list ap);
void console_puts(const char *s);
void kernel_fail(const char *reason) __attribute__((noreturn));
int ksnprintf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Formats a reason and fails the run (RESULT: FAIL <reason>). */
void kfail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Ends a passing run (after the RESULT: PASS line): the pass status. */
void kernel_pass(void) __attribute__((noreturn));

extern struct percpu bsp_percpu;             /* CPU 0, the boot CPU */
/* Called by the timer interrupt with interrupts off. */
extern void (*timer_hook)(struct percpu *pc);
extern _Atomic unsigned long stray_interrupts; /* unexpected interrupts */

uint64_t uptime_us(void);                     /* microseconds since boot */
void timer_stop(void);                        /* the calling CPU's timer off */

/* The CPU's hardware id (APIC id, MPIDR affinity, hart id) and its name
 * for the summary's column heading (4 characters). */
uint32_t cpu_hw_id(const struct percpu *pc);
extern const char cpu_hw_id_name[];

/* The CPU's kernel stack, painted with 0x5a before the CPU ran on it (the
 * workload reports the high-water mark). */
void cpu_stack_area(const struct percpu *pc, const uint8_t **base, size_t *size);

/* Frees a secondary CPU's per-CPU area and stacks (it must be halted). */
void smp_free_ap(struct percpu *pc);

/* Deliberate failures, to check that the runner catches each (build with
 * KERNEL_INJECT=n; see boot/workload.c): 1 a bad memory access (exception
 * report, RESULT: FAIL), 4 a machine reset or crash with no report.  The
 * others (2 a hang, 3 a double free) need no arch code. */
void kernel_inject(int kind);

/* --- boot/numa.c ----------------------------------------------------------- */

/* The boot path fills this in before demo_heap_init (zeros: one node). */
struct demo_numa {
	unsigned nnodes;                       /* 0 or 1: no NUMA information */
	uint8_t cpu_node[BOOT_MAX_CPUS];       /* by CPU index */
	uint8_t distance[KMEM_MAX_NODES * KMEM_MAX_NODES]; /* nnodes x nnodes; 0: none */
};
extern struct demo_numa demo_numa;

/* The workload's locality count (thread context, on CPU `cpu`). */
void numa_note_alloc(unsigned cpu, const void *p);
/* kfail unless p is on `node`, or node has (almost) no page free. */
void numa_expect_node(const void *p, unsigned node, const char *what);
/* Keeps the nodes' statistics (CPU 0, once the other CPUs halted). */
void numa_snapshot(void);
/* Prints the per-node table; kfail if a node's CPUs got <= 95 % local
 * allocations (with more than one node).  Returns the number of nodes and
 * the overall local share in permille. */
unsigned numa_report(unsigned ncpus, uint64_t *local_permille);

/* --- boot/workload.c, boot/selftest.c ------------------------------------ */

/* kmem_init over the boot map (identity map), then the boot report:
 * usable and managed memory, arenas, the metadata region and its share. */
void demo_heap_init(const struct kmem_region *regions, size_t n, unsigned ncpus,
                    uint64_t usable_bytes);
void workload_init(unsigned ncpus);
struct percpu **workload_cpus(void);        /* [ncpus], CPU 0's filled in */
void workload_cpu(struct percpu *pc);       /* every CPU; returns offline-ready */
void workload_finish(void);                 /* CPU 0, after every other halted */
void selftest_run(void);                    /* CPU 0, before the others start */

/* Shared by self tests and the workload: a pattern that is a function of
 * (seed, byte offset), full for objects up to PATTERN_FULL_MAX bytes and
 * sparse (head, tail, one word in 64) above. */
#define PATTERN_FULL_MAX 32768u
void pattern_fill(void *p, size_t n, uint64_t seed);
bool pattern_check(const void *p, size_t n, uint64_t seed, size_t *bad_off);

static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The string functions (x86_64: boot/string.c; elsewhere picolibc's);
 * mm/ uses them too. */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif /* BOOT_DEMO_H */
