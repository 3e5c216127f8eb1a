/*
 * boot/virt/smpstress.c - the SMP ordering stress (issue #13.8), run on
 * every CPU of the virt demo kernels before the workload.
 *
 * Why here: the lost-free race in mm/mcentral.c is a Dekker pattern (a
 * free sets freed bits, then reads the span's state; the lock holder
 * placing a span writes its state, then reads the freed bits).  Without a
 * full fence on both sides a weakly ordered CPU (aarch64, riscv64) may let
 * each side miss the other, and a listed span with frees stays
 * unfindable.  QEMU's multi-threaded TCG (-accel tcg,thread=multi) runs
 * each guest CPU on its own host thread, so the host's store-load
 * reordering reaches the guest where the guest's own fences do not
 * forbid it.
 *
 * The pattern: CPUs in a ring, each allocating batches of one class and
 * freeing its left neighbour's, pipelined (two batches in flight per CPU)
 * so that frees of spans other CPUs filled and gave back overlap with
 * refills that sweep and place spans.  Even rounds free with kfree:
 * batches are larger than what the magazines and the depot hold, so frees
 * reach the spans a magazine at a time (mag_flush).  Odd rounds free with
 * kfree_nolock, which never exchanges magazines: once the CPU's loaded
 * magazine is full every free goes to its span alone (span_free), one
 * Dekker check per object, while the other CPUs' refills drain and place
 * the spans those frees queue.
 * At the end, with every CPU waiting (quiescent), kmem_check runs before
 * any reclaim: a listed span holding frees is exactly what it reports.
 * Then every CPU reclaims, and the pages not in use (free plus metadata:
 * span descriptors stay in metadata once made) must be back to the start.
 */
#include "virt.h"

#define SS_ROUNDS 24
#define SS_BATCH 1536 /* more than a CPU's magazines and the depot hold */
#define SS_SIZE 256
#define SS_WAIT_US 60000000ull

struct ss_lane {
	void *obj[2][SS_BATCH];
	_Alignas(64) _Atomic unsigned produced; /* batches published */
	_Alignas(64) _Atomic unsigned consumed; /* batches freed by the right neighbour */
};

static struct {
	struct ss_lane *lane; /* [ncpus], kzalloc'd by CPU 0 */
	_Atomic unsigned bar_count, bar_gen;
	_Atomic unsigned long problems, frees;
	uint64_t pages0;
} S;

static void ss_barrier(unsigned ncpus, const char *name)
{
	unsigned gen = atomic_load(&S.bar_gen);
	if (atomic_fetch_add(&S.bar_count, 1) + 1 == ncpus) {
		atomic_store(&S.bar_count, 0);
		atomic_fetch_add(&S.bar_gen, 1);
		return;
	}
	uint64_t deadline = uptime_us() + SS_WAIT_US;
	while (atomic_load(&S.bar_gen) == gen) {
		if (uptime_us() > deadline)
			kfail("smp-stress: barrier '%s' not reached by all %u CPUs", name, ncpus);
		arch_cpu_relax();
	}
}

/* Waits until *v >= want (another CPU's progress). */
static void ss_wait(_Atomic unsigned *v, unsigned want, unsigned cpu, const char *what)
{
	uint64_t deadline = uptime_us() + SS_WAIT_US;
	while (atomic_load_explicit(v, memory_order_acquire) < want) {
		if (uptime_us() > deadline)
			kfail("smp-stress: cpu %u waited 60 s for %s", cpu, what);
		arch_cpu_relax();
	}
}

static uint64_t ss_tag(unsigned cpu, unsigned round, unsigned i)
{
	return ((uint64_t)cpu << 48) ^ ((uint64_t)round << 32) ^ i ^ 0x5a5a000000000000ull;
}

static void ss_hook(const struct kmem_fault *f)
{
	atomic_fetch_add(&S.problems, 1);
	kprintf("smp-stress: kmem_check: %s at %p: %s\n", kmem_fault_name(f->kind), f->addr,
	        f->detail);
}

static uint64_t pages_not_in_use(void)
{
	struct kmem_stats st;
	kmem_get_stats(&st);
	return st.pages_free + st.pages_metadata;
}

void smp_stress_phase(unsigned cpu, unsigned ncpus)
{
	void (*hook)(struct percpu *) = timer_hook;
	if (cpu == 0) {
		/* The workload's timer interrupt allocates on CPU 0 already
		 * (boot/workload.c): held back, so that the pages can be
		 * counted. */
		unsigned long f = arch_irq_save();
		timer_hook = NULL;
		arch_irq_restore(f);
		kmem_reclaim();
		S.pages0 = pages_not_in_use();
		S.lane = kzalloc(ncpus * sizeof(struct ss_lane));
		if (!S.lane)
			kfail("smp-stress: no memory for its lanes");
	}
	ss_barrier(ncpus, "start");
	uint64_t t0 = uptime_us();
	struct ss_lane *mine = &S.lane[cpu], *left = &S.lane[(cpu + ncpus - 1) % ncpus];
	unsigned long frees = 0;
	for (unsigned r = 0; r < SS_ROUNDS; r++) {
		/* Slot r % 2 is free once batch r - 2 was freed. */
		if (r >= 2)
			ss_wait(&mine->consumed, r - 1, cpu, "its batch to be freed");
		for (unsigned i = 0; i < SS_BATCH; i++) {
			uint64_t *p = kmalloc(SS_SIZE);
			if (!p)
				kfail("smp-stress: cpu %u: kmalloc(%u) returned NULL", cpu, SS_SIZE);
			p[0] = ss_tag(cpu, r, i);
			p[SS_SIZE / 8 - 1] = ~p[0];
			mine->obj[r % 2][i] = p;
		}
		atomic_store_explicit(&mine->produced, r + 1, memory_order_release);
		/* Free the left neighbour's batch r: objects another CPU took
		 * from spans it held, which may be listed by now. */
		unsigned from = (cpu + ncpus - 1) % ncpus;
		ss_wait(&left->produced, r + 1, cpu, "its neighbour's batch");
		for (unsigned i = 0; i < SS_BATCH; i++) {
			uint64_t *p = left->obj[r % 2][i];
			if (p[0] != ss_tag(from, r, i) || p[SS_SIZE / 8 - 1] != ~p[0])
				kfail("smp-stress: cpu %u: object %p of cpu %u corrupted", cpu, (void *)p, from);
			if (r % 2)
				kfree_nolock(p);
			else
				kfree(p);
			frees++;
		}
		atomic_store_explicit(&left->consumed, r + 1, memory_order_release);
	}
	atomic_fetch_add(&S.frees, frees);
	ss_barrier(ncpus, "frees done");
	unsigned long problems = 0;
	if (cpu == 0) {
		/* Quiescent: the others wait in the barrier. */
		kmem_fault_hook_t old = kmem_set_fault_hook(ss_hook);
		problems = kmem_check();
		kmem_set_fault_hook(old);
	}
	ss_barrier(ncpus, "checked");
	kmem_reclaim(); /* each CPU's own magazines */
	ss_barrier(ncpus, "reclaimed");
	if (cpu == 0) {
		kfree(S.lane);
		kmem_reclaim();
		uint64_t pages = pages_not_in_use();
		kprintf("smp-stress: %u CPUs x %u rounds x %u objects of %u B, each freed by the next "
		        "CPU: %lu cross-CPU frees in %lu ms; kmem_check before reclaim: %lu problems; "
		        "pages free+metadata %lu -> %lu\n",
		        ncpus, SS_ROUNDS, SS_BATCH, SS_SIZE, atomic_load(&S.frees),
		        (unsigned long)((uptime_us() - t0) / 1000), problems + atomic_load(&S.problems),
		        (unsigned long)S.pages0, (unsigned long)pages);
		if (problems || atomic_load(&S.problems))
			kfail("smp-stress: kmem_check found %lu problems", problems);
		if (pages != S.pages0) {
			struct kmem_stats st;
			kmem_get_stats(&st);
			kprintf("smp-stress: pages now: small %lu large %lu runs %lu meta %lu\n",
			        (unsigned long)st.pages_small, (unsigned long)st.pages_large,
			        (unsigned long)st.pages_runs, (unsigned long)st.pages_metadata);
			for (unsigned c = 1; c < st.nclasses; c++) {
				struct kmem_class_stats cs;
				kmem_get_class_stats(c, &cs);
				if (cs.spans)
					kprintf("  class %u: %lu spans, %lu in use\n", c,
					        (unsigned long)cs.spans, (unsigned long)cs.objects_in_use);
			}
		}
		if (pages != S.pages0)
			kfail("smp-stress: %ld pages not given back", (long)(S.pages0 - pages));
		if (atomic_load(&S.frees) != (unsigned long)ncpus * SS_ROUNDS * SS_BATCH)
			kfail("smp-stress: %lu frees, expected %lu", atomic_load(&S.frees),
			      (unsigned long)ncpus * SS_ROUNDS * SS_BATCH);
		timer_hook = hook;
	}
	ss_barrier(ncpus, "done");
}
