/*
 * boot/nmi.c - the x86_64 demo's NMI test of kmalloc_nolock/kfree_nolock
 * (mm/nolock.c, issue #15.4).
 *
 * While every CPU runs the workload, each CPU's timer interrupt sends an
 * NMI through its local APIC (ICR delivery mode NMI) to the next CPU, and
 * CPU 0 every fourth tick to itself.  An NMI is not held back by cli, so
 * it lands anywhere: in the middle of kmalloc/kfree with interrupts off,
 * holding an mcentral or the mheap lock, or inside the timer interrupt.
 * The handler (IDT vector 2, on IST1) allocates with kmalloc_nolock, fills
 * the object with a pattern, keeps a few per CPU and frees older ones with
 * kfree_nolock after checking their pattern.  It never prints and never
 * takes a lock.  Where the NMI finds its CPU outside the allocator
 * (arch_fast_enter's depth 0, arch/x86_64/arch_inline.h) kmalloc_nolock
 * pops the CPU's magazine; inside, the depot under trylocks (NULL when a
 * lock is busy or it has nothing).
 *
 * Life cycle: started after every AP is up (so no NMI meets the BSP's
 * INIT/SIPI sequence half written in the ICR), finished on the BSP after
 * its workload and before workload_finish frees the APs' areas: sending
 * stops, sends in flight drain, every NMI sent is handled (or was merged
 * with a pending one: the count is printed), and the BSP frees what the
 * handlers kept, so the final page check covers them.
 */
#include "kernel.h"

#define NMI_STASH 8
#define NMI_WAIT_US 100000

struct nmi_cpu {
	uint64_t rng;
	void *stash[NMI_STASH];
	uint32_t size[NMI_STASH];
};

static struct {
	struct percpu **cpus;
	unsigned ncpus;
	void (*tick)(struct percpu *pc); /* the workload's timer hook */
	_Atomic bool active;
	_Atomic unsigned in_flight;      /* senders between the check and the send */
	_Atomic unsigned long sent, handled, inside, ok, null, frees, bad;
	struct nmi_cpu cpu[BOOT_MAX_CPUS];
} N;

static const uint32_t nmi_sizes[8] = {16, 32, 64, 96, 256, 512, 1024, 2048};

static void nmi_tick(struct percpu *pc)
{
	N.tick(pc);
	atomic_fetch_add(&N.in_flight, 1);
	if (atomic_load(&N.active)) {
		unsigned to = (pc->cpu + 1) % N.ncpus;
		if (pc->cpu == 0 && (atomic_load_explicit(&pc->ticks, memory_order_relaxed) & 3) == 0)
			to = 0;
		struct percpu *t = N.cpus[to];
		if (t && atomic_load(&t->state) == CPU_RUNNING) {
			atomic_fetch_add(&N.sent, 1);
			lapic_send_nmi(t->apic_id);
		}
	}
	atomic_fetch_sub(&N.in_flight, 1);
}

bool nmi_demo_handle(uint64_t rflags)
{
	if (!N.ncpus)
		return false; /* not started: an unexpected NMI */
	atomic_fetch_add(&N.handled, 1);
	/* Inside the allocator: in a fast path (arch_fast_enter's depth) or
	 * with interrupts off (its slow paths and locks, or an interrupt
	 * handler). */
	struct percpu *pc = this_cpu();
	if (pc->fast_depth || !(rflags & 0x200))
		atomic_fetch_add(&N.inside, 1);
	struct nmi_cpu *c = &N.cpu[pc->cpu];
	for (int k = 0; k < 2; k++) {
		uint64_t r = rng_next(&c->rng);
		uint32_t size = nmi_sizes[r % 8];
		void *p = kmalloc_nolock(size);
		if (!p) {
			atomic_fetch_add(&N.null, 1);
			continue;
		}
		atomic_fetch_add(&N.ok, 1);
		pattern_fill(p, size, (uintptr_t)p);
		unsigned i = (unsigned)(r >> 32) % NMI_STASH;
		if (c->stash[i]) {
			size_t off;
			if (!pattern_check(c->stash[i], c->size[i], (uintptr_t)c->stash[i], &off))
				atomic_fetch_add(&N.bad, 1);
			kfree_nolock(c->stash[i]);
			atomic_fetch_add(&N.frees, 1);
		}
		c->stash[i] = p;
		c->size[i] = size;
	}
	return true;
}

void nmi_demo_start(struct percpu **cpus, unsigned ncpus)
{
	N.cpus = cpus;
	for (unsigned i = 0; i < ncpus; i++)
		N.cpu[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
	unsigned long f = arch_irq_save();
	N.tick = timer_hook;
	timer_hook = nmi_tick;
	N.ncpus = ncpus;
	arch_irq_restore(f);
	atomic_store(&N.active, true);
}

void nmi_demo_finish(void)
{
	atomic_store(&N.active, false);
	uint64_t deadline = uptime_us() + NMI_WAIT_US;
	while (atomic_load(&N.in_flight) ||
	       atomic_load(&N.handled) < atomic_load(&N.sent))
		if (uptime_us() > deadline)
			break;
		else
			cpu_pause();
	unsigned long f = arch_irq_save(); /* no NMI arrives any more */
	unsigned long kept = 0;
	for (unsigned i = 0; i < N.ncpus; i++)
		for (unsigned k = 0; k < NMI_STASH; k++)
			if (N.cpu[i].stash[k]) {
				size_t off;
				if (!pattern_check(N.cpu[i].stash[k], N.cpu[i].size[k],
				                   (uintptr_t)N.cpu[i].stash[k], &off))
					atomic_fetch_add(&N.bad, 1);
				kfree(N.cpu[i].stash[k]);
				N.cpu[i].stash[k] = NULL;
				kept++;
			}
	arch_irq_restore(f);
	unsigned long sent = atomic_load(&N.sent), handled = atomic_load(&N.handled);
	kprintf("nmi: %lu NMIs sent through the local APIC, %lu handled (%lu merged with one "
	        "pending), %lu of them inside the allocator or with interrupts off; kmalloc_nolock "
	        "%lu ok, %lu NULL; kfree_nolock %lu, %lu kept to the end freed by kfree; "
	        "%lu corrupted\n",
	        sent, handled, sent - handled, atomic_load(&N.inside), atomic_load(&N.ok),
	        atomic_load(&N.null), atomic_load(&N.frees), kept, atomic_load(&N.bad));
	if (atomic_load(&N.bad))
		kfail("nmi: %lu objects of the NMI handler corrupted", atomic_load(&N.bad));
	if (!handled || handled > sent)
		kfail("nmi: %lu NMIs sent, %lu handled", sent, handled);
	if (atomic_load(&N.ok) + atomic_load(&N.null) != 2 * handled)
		kfail("nmi: the handler's counts disagree");
}
