/*
 * boot/virt/smp.c - starting the other CPUs, the timer tick and CPU
 * exceptions, shared by the QEMU virt kernels.
 *
 * For each CPU after the boot CPU, one at a time: its struct percpu
 * (kmalloc_aligned), kernel stack (kpage_alloc) and thread-local block
 * (kmalloc_aligned, filled from the image's .tdata/.tbss by picolibc's
 * _init_tls) come from spanalloc; the start block gets its stack and per-
 * CPU area; plat_start_cpu wakes it (PSCI CPU_ON on aarch64, SBI HSM
 * hart_start on riscv64, or in M-mode the parked hart's mailbox and a
 * software interrupt), and it has up to two
 * seconds to report in.  The CPU sets its thread pointer, vectors and
 * per-CPU pointer (plat_cpu_init), brings its mcache online before anything
 * can allocate on it, starts its timer and says it is running; only then
 * is the start block reused for the next CPU.
 */
#include <picolibc.h> /* PICOLIBC_TLS, which picotls.h needs */
#include <picotls.h>

#include "virt.h"

#define AP_STACK_PAGES 8 /* 32 KiB */

static void (*ap_hook)(struct percpu *pc);
static struct cpu_start start_block;

_Atomic unsigned long stray_interrupts;
void (*timer_hook)(struct percpu *pc);

void virt_timer_tick(struct percpu *pc)
{
	atomic_fetch_add_explicit(&pc->ticks, 1, memory_order_relaxed);
	if (timer_hook)
		timer_hook(pc);
}

void virt_fault(const char *what, uint64_t pc_addr, uint64_t addr, uint64_t cause)
{
	struct percpu *pc = this_cpu();
	if (pc && pc->in_fault++)
		plat_halt(); /* faulted while reporting a fault */
	kfail("cpu %u: %s at pc 0x%lx, address 0x%lx (cause 0x%lx)", pc ? pc->cpu : 0, what,
	      (unsigned long)pc_addr, (unsigned long)addr, (unsigned long)cause);
}

static void ap_main(struct cpu_start *cs) __attribute__((noreturn));
static void ap_main(struct cpu_start *cs)
{
	struct percpu *pc = cs->pc;
	_set_tls(pc->tls);
	plat_cpu_init(pc);
	if (kmem_cpu_online(pc->cpu) != 0)
		kfail("kmem_cpu_online(%u) failed", pc->cpu);
	plat_timer_start(pc);
	atomic_store(&pc->state, CPU_RUNNING);
	plat_irq_enable();
	ap_hook(pc);
	arch_irq_save();
	atomic_store(&pc->state, CPU_HALTED);
	plat_halt();
}

static struct percpu *ap_alloc(unsigned cpu, uint64_t hw_id)
{
	size_t tls_size = _tls_size(), tls_align = _tls_align();
	struct percpu *pc = kmalloc_aligned(sizeof(*pc), 64);
	uint8_t *stack = kpage_alloc(AP_STACK_PAGES, KMEM_PAGE_SIZE, 0);
	void *tls = kmalloc_aligned(tls_size ? tls_size : 1, tls_align > 16 ? tls_align : 16);
	if (!pc || !stack || !tls)
		kfail("no memory for CPU %u's per-CPU area, stack and TLS", cpu);
	*pc = (struct percpu){.self = pc, .cpu = cpu, .hw_id = hw_id, .stack = stack,
	                      .stack_size = AP_STACK_PAGES * KMEM_PAGE_SIZE, .tls = tls};
	memset(pc->stack, 0x5a, pc->stack_size); /* the workload reports its high-water mark */
	_init_tls(tls); /* .tdata copied, .tbss zeroed */
	return pc;
}

void smp_free_ap(struct percpu *pc)
{
	kpage_free(pc->stack, pc->stack_size / KMEM_PAGE_SIZE);
	kfree(pc->tls);
	kfree(pc);
}

unsigned smp_start(struct percpu **cpus, void (*hook)(struct percpu *pc), const uint64_t *hw_ids,
                   unsigned ncpus)
{
	unsigned running = 1;
	ap_hook = hook;
	for (unsigned i = 1; i < ncpus; i++) {
		struct percpu *pc = ap_alloc(i, hw_ids[i]);
		cpus[i] = pc;
		start_block = (struct cpu_start){
			.sp = (uint64_t)(uintptr_t)(pc->stack + pc->stack_size),
			.entry = (uint64_t)(uintptr_t)ap_main,
			.pc = pc,
		};
		atomic_store(&pc->state, CPU_STARTING);
		uint64_t t0 = uptime_us();
		plat_start_cpu(pc, &start_block);
		for (uint64_t waited = 0; atomic_load(&pc->state) != CPU_RUNNING; waited = uptime_us() - t0) {
			if (waited > 2000000)
				kfail("CPU %u (id 0x%lx) did not start in 2 s", i, (unsigned long)pc->hw_id);
			arch_cpu_relax();
		}
		kprintf("smp: CPU %u (id 0x%lx) online in %lu us, stack %p, percpu %p, TLS %p\n", i,
		        (unsigned long)pc->hw_id, (unsigned long)(uptime_us() - t0), (void *)pc->stack,
		        (void *)pc, pc->tls);
		running++;
	}
	return running;
}
