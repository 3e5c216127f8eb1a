/*
 * arch/host/arch.c - the arch contract on a hosted POSIX system, so that
 * the same mm/ code runs multi-threaded under sanitizers.
 *
 * CPUs are threads: the first time a thread calls arch_cpu_id() it claims
 * a free CPU slot (or the one it asked for with host_cpu_claim()), brings
 * it online with kmem_cpu_online(), and gives it back through
 * kmem_cpu_offline() when the thread exits.
 *
 * Interrupts are simulated: arch_irq_save() sets a thread-local "disabled"
 * level.  A simulated interrupt (host_irq_raise(), e.g. from a signal
 * handler) runs its handler at once when the thread has interrupts on, and
 * otherwise is held pending and run by the arch_irq_restore() that turns
 * them back on -- exactly the guarantee real hardware gives the allocator.
 */
#define _GNU_SOURCE
/* This file defines the out-of-line hooks: never the inline macros. */
#undef KMEM_ARCH_INLINE
#include "host.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "spanalloc.h"
#include "spanalloc/arch.h"

static _Atomic int slot_used[KMEM_MAX_CPUS];
static _Atomic unsigned host_ncpus = KMEM_MAX_CPUS;
static _Atomic bool early_boot;

_Thread_local int host_my_cpu = -1;
/* The fast paths' depth when mm/ is built with arch_inline.h. */
_Thread_local volatile unsigned long host_fast_depth;
_Thread_local volatile sig_atomic_t host_irq_off;        /* >0: disabled */
/* Pending count: incremented by signal handlers that find interrupts off,
 * so it is changed only with atomic read-modify-writes (a plain ++ loses
 * an increment that lands between its load and store). */
_Thread_local _Atomic int host_irq_pending;
static _Thread_local host_irq_fn irq_fn;
static _Thread_local void *irq_arg;

static pthread_key_t cpu_key;
static pthread_once_t cpu_key_once = PTHREAD_ONCE_INIT;

static void cpu_release(void *unused)
{
	(void)unused;
	host_cpu_release();
}

static void make_key(void)
{
	pthread_key_create(&cpu_key, cpu_release);
}

void host_set_ncpus(unsigned n)
{
	atomic_store(&host_ncpus, n);
}

int host_cpu_claim(int want)
{
	pthread_once(&cpu_key_once, make_key);
	if (host_my_cpu >= 0)
		return host_my_cpu;
	if (want < 0 && atomic_load(&early_boot))
		return 0; /* the boot CPU before its per-CPU area: 0, unclaimed */
	unsigned n = atomic_load(&host_ncpus);
	for (unsigned i = 0; i < n; i++) {
		unsigned c = want >= 0 ? (unsigned)want : i;
		int expect = 0;
		if (c < n && atomic_compare_exchange_strong(&slot_used[c], &expect, 1)) {
			host_my_cpu = (int)c;
			pthread_setspecific(cpu_key, (void *)1);
			kmem_cpu_online(c);
			return host_my_cpu;
		}
		if (want >= 0)
			break;
	}
	fprintf(stderr, "arch/host: no free CPU slot (want %d, %u slots)\n", want, n);
	abort();
}

void host_set_early_boot(bool on)
{
	atomic_store(&early_boot, on);
}

bool host_early_boot(void)
{
	return atomic_load(&early_boot);
}

void host_cpu_release(void)
{
	if (host_my_cpu < 0)
		return;
	kmem_cpu_offline((unsigned)host_my_cpu);
	atomic_store(&slot_used[host_my_cpu], 0);
	host_my_cpu = -1;
}

void host_cpu_reset_all(void)
{
	for (unsigned i = 0; i < KMEM_MAX_CPUS; i++)
		atomic_store(&slot_used[i], 0);
	host_my_cpu = -1;
}

unsigned arch_cpu_id(void)
{
	if (__builtin_expect(host_my_cpu < 0, 0))
		return (unsigned)host_cpu_claim(-1);
	return (unsigned)host_my_cpu;
}

unsigned long arch_irq_save(void)
{
	unsigned long old = (unsigned long)host_irq_off;
	host_irq_off = host_irq_off + 1;
	atomic_signal_fence(memory_order_seq_cst);
	return old;
}

void host_irq_run_pending(void)
{
	while (host_irq_off == 0 && atomic_load(&host_irq_pending) > 0) {
		atomic_fetch_sub(&host_irq_pending, 1);
		host_irq_raise();
	}
}

void arch_irq_restore(unsigned long flags)
{
	atomic_signal_fence(memory_order_seq_cst);
	host_irq_off = (sig_atomic_t)flags;
	if (flags == 0)
		host_irq_run_pending();
}

void host_irq_set_handler(host_irq_fn fn, void *arg)
{
	irq_fn = fn;
	irq_arg = arg;
}

bool host_irq_disabled(void)
{
	return host_irq_off != 0;
}

void host_irq_raise(void)
{
	if (!irq_fn)
		return;
	if (host_irq_off) {
		atomic_fetch_add(&host_irq_pending, 1);
		return;
	}
	/* Enter the handler with interrupts off, as hardware does. */
	host_irq_off = 1;
	atomic_signal_fence(memory_order_seq_cst);
	irq_fn(irq_arg);
	atomic_signal_fence(memory_order_seq_cst);
	host_irq_off = 0;
}

void arch_cpu_relax(void)
{
	static _Thread_local unsigned spins;
	if ((++spins & 63) == 0)
		sched_yield();
#if defined(__x86_64__) || defined(__i386__)
	else
		__builtin_ia32_pause();
#endif
}

void arch_log(const char *line)
{
	fprintf(stderr, "%s\n", line);
}

void arch_panic(const char *msg)
{
	fprintf(stderr, "spanalloc panic: %s\n", msg);
	abort();
}
