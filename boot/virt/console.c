/*
 * boot/virt/console.c - output and the end of the run through semihosting
 * (QEMU -semihosting-config enable=on,target=native), with picolibc doing
 * the formatting.
 *
 * A line is formatted into a stack buffer (vsnprintf) and written with one
 * SYS_WRITE0 under the console lock, so lines from several CPUs never mix.
 * The lock remembers its owner: the same CPU may take it again (a fault
 * while printing), and a failing CPU takes it over after a bounded wait
 * (its owner may never give it back).  The run ends with the semihosting
 * exit: status 0 after RESULT: PASS, 1 after RESULT: FAIL.  spanalloc's
 * arch_log and arch_panic on this console are loghooks.c's.
 */
#include <semihost.h>
#include <stdio.h>
#include <unistd.h>

#include "virt.h"

#define NO_OWNER (~0u)

static _Atomic unsigned con_owner = NO_OWNER;
static unsigned con_depth;
static _Atomic int con_failing; /* set by kernel_fail: may take the lock over */
static _Atomic int fail_claimed;

/* The CPU index, or NO_OWNER before the per-CPU pointer is set. */
static unsigned con_cpu(void)
{
	struct percpu *pc = this_cpu();
	return pc ? pc->cpu : NO_OWNER - 1;
}

static unsigned long con_lock(void)
{
	unsigned long f = arch_irq_save();
	unsigned me = con_cpu();
	if (atomic_load_explicit(&con_owner, memory_order_relaxed) == me) {
		con_depth++;
		return f;
	}
	unsigned expect = NO_OWNER;
	for (unsigned long spin = 0;
	     !atomic_compare_exchange_weak_explicit(&con_owner, &expect, me, memory_order_acquire,
	                                            memory_order_relaxed);
	     spin++, expect = NO_OWNER) {
		if (spin > 10000000ul && atomic_load_explicit(&con_failing, memory_order_relaxed)) {
			atomic_store_explicit(&con_owner, me, memory_order_relaxed);
			break;
		}
		arch_cpu_relax();
	}
	con_depth = 1;
	return f;
}

static void con_unlock(unsigned long f)
{
	if (--con_depth == 0)
		atomic_store_explicit(&con_owner, NO_OWNER, memory_order_release);
	arch_irq_restore(f);
}

void console_puts(const char *s)
{
	unsigned long f = con_lock();
	sys_semihost_write0(s);
	con_unlock(f);
}

int kvsnprintf(char *buf, size_t cap, const char *fmt, va_list ap)
{
	return vsnprintf(buf, cap, fmt, ap);
}

/* Prints RESULT: FAIL and exits with status 1.  The first CPU to fail
 * reports; any other stops here. */
void kernel_fail(const char *reason)
{
	arch_irq_save();
	atomic_store(&con_failing, 1);
	int expect = 0;
	if (!atomic_compare_exchange_strong(&fail_claimed, &expect, 1))
		plat_halt();
	char line[280];
	snprintf(line, sizeof line, "RESULT: FAIL %s\n", reason);
	console_puts(line);
	_exit(1);
}

void kernel_pass(void)
{
	_exit(0);
}
