/*
 * boot/smp.c - starting the APs once the kernel owns the machine.
 *
 * The boot path set aside two pages below 1 MiB, never in the heap (UEFI:
 * allocated as EfiLoaderCode; Multiboot: free RAM in the E820 map, and the
 * whole first MiB is kept out of the heap): page 0 takes the trampoline (boot/trampoline.S), page 1 a copy of
 * the kernel's PML4, because a 32-bit mov to CR3 needs a root below 4 GiB
 * wherever the image was loaded (the PML4's entries are 64-bit, so the
 * rest of the tables can be anywhere).
 *
 * For each AP, one at a time: its struct percpu (kmalloc_aligned), kernel
 * stack and IST stack (kpage_alloc_node, on its node) come from spanalloc; its TSS goes into
 * the GDT; the trampoline's data block gets its stack, percpu and entry;
 * then INIT, 10 ms, SIPI, 200 us, SIPI, and up to a second for the AP to
 * report in.  The AP loads the kernel's GDT/TSS/IDT and GS base, enables
 * its LAPIC, brings its mcache online (kmem_cpu_online) before anything
 * can allocate on it, starts its timer and says it is running; only then
 * is the trampoline reused for the next AP.
 */
#include "kernel.h"

#define AP_STACK_PAGES 8 /* 32 KiB */
#define AP_IST_PAGES 2

struct tramp_data {
	uint64_t gdt[4];       /* 0: null, code32 0x08, data 0x10, code64 0x18 */
	uint16_t pad0[3];
	uint16_t gdtr_limit;   /* 38 */
	uint32_t gdtr_base;    /* 40 */
	uint32_t pm32_off;     /* 44 */
	uint16_t pm32_sel;
	uint16_t pad1;
	uint32_t lm64_off;     /* 52 */
	uint16_t lm64_sel;
	uint16_t pad2;
	uint32_t cr0, cr3, cr4, efer; /* 60, 64, 68, 72 */
	uint32_t pad3;
	uint64_t stack;        /* 80 */
	uint64_t arg;          /* 88 */
	uint64_t entry;        /* 96 */
	uint32_t alive;        /* 104: set by the AP in 64-bit mode */
	uint32_t pad4;
} __attribute__((packed));

_Static_assert(offsetof(struct tramp_data, gdtr_limit) == 38, "TD_GDTR");
_Static_assert(offsetof(struct tramp_data, pm32_off) == 44, "TD_PM32");
_Static_assert(offsetof(struct tramp_data, lm64_off) == 52, "TD_LM64");
_Static_assert(offsetof(struct tramp_data, cr0) == 60, "TD_CR0");
_Static_assert(offsetof(struct tramp_data, efer) == 72, "TD_EFER");
_Static_assert(offsetof(struct tramp_data, stack) == 80, "TD_STACK");
_Static_assert(offsetof(struct tramp_data, entry) == 96, "TD_ENTRY");
_Static_assert(offsetof(struct tramp_data, alive) == 104, "TD_ALIVE");
_Static_assert(sizeof(struct tramp_data) == 112, "ap_tramp_data size");

extern char ap_tramp_start[], ap_tramp_end[], ap_tramp_data[], ap_tramp_pm32[], ap_tramp_lm64[];

static void (*ap_hook)(struct percpu *pc);

static void ap_main(struct percpu *pc) __attribute__((noreturn));
static void ap_main(struct percpu *pc)
{
	cpu_load_tables(pc);
	lapic_init_cpu();
	if (lapic_id() != pc->apic_id)
		kfail("cpu %u: LAPIC id %u, MADT says %u", pc->cpu, lapic_id(), pc->apic_id);
	if (kmem_cpu_online(pc->cpu) != 0)
		kfail("kmem_cpu_online(%u) failed", pc->cpu);
	lapic_timer_start(TIMER_HZ);
	atomic_store(&pc->state, CPU_RUNNING);
	sti();
	ap_hook(pc);
	cli();
	atomic_store(&pc->state, CPU_HALTED);
	cpu_halt_forever();
}

static struct percpu *ap_alloc(unsigned cpu, uint32_t apic_id)
{
	/* The stacks on the CPU's own node (kpage_alloc_node; the BSP runs
	 * on node 0, so a plain kpage_alloc would put them there). */
	int node = demo_numa.cpu_node[cpu];
	struct percpu *pc = kmalloc_aligned(sizeof(*pc), 64);
	void *stack = kpage_alloc_node(AP_STACK_PAGES, KMEM_PAGE_SIZE, 0, node);
	void *ist = kpage_alloc_node(AP_IST_PAGES, KMEM_PAGE_SIZE, 0, node);
	if (!pc || !stack || !ist)
		kfail("no memory for CPU %u's per-CPU area and stacks", cpu);
	numa_expect_node(stack, (unsigned)node, "kpage_alloc_node (a kernel stack)");
	memset(pc, 0, sizeof(*pc));
	memset(stack, 0x5a, AP_STACK_PAGES * KMEM_PAGE_SIZE); /* for the high-water mark */
	pc->self = pc;
	pc->cpu = cpu;
	pc->apic_id = apic_id;
	pc->stack = stack;
	pc->stack_pages = AP_STACK_PAGES;
	pc->ist_stack = ist;
	pc->ist_pages = AP_IST_PAGES;
	cpu_setup_tss(pc);
	return pc;
}

void smp_free_ap(struct percpu *pc)
{
	kpage_free(pc->stack, pc->stack_pages);
	kpage_free(pc->ist_stack, pc->ist_pages);
	kfree(pc);
}

unsigned smp_start_aps(struct percpu **cpus, void (*hook)(struct percpu *pc))
{
	const struct acpi_info *a = &boot_info.acpi;
	uint64_t low = boot_info.low_pages;
	uint8_t *tramp = (uint8_t *)(uintptr_t)low;
	uint64_t *pml4_copy = (uint64_t *)(uintptr_t)(low + KMEM_PAGE_SIZE);
	size_t len = (size_t)(ap_tramp_end - ap_tramp_start);
	struct tramp_data *td = (struct tramp_data *)(tramp + (ap_tramp_data - ap_tramp_start));

	ap_hook = hook;
	memcpy(pml4_copy, (const void *)(uintptr_t)paging_root(), KMEM_PAGE_SIZE);
	memcpy(tramp, ap_tramp_start, len);
	td->gdt[0] = 0;
	td->gdt[1] = 0x00cf9a000000ffffull; /* 32-bit code */
	td->gdt[2] = 0x00cf92000000ffffull; /* data */
	td->gdt[3] = 0x00af9a000000ffffull; /* 64-bit code */
	td->gdtr_limit = sizeof(td->gdt) - 1;
	td->gdtr_base = (uint32_t)((uintptr_t)td->gdt);
	td->pm32_off = (uint32_t)(low + (uint64_t)(ap_tramp_pm32 - ap_tramp_start));
	td->pm32_sel = 0x08;
	td->lm64_off = (uint32_t)(low + (uint64_t)(ap_tramp_lm64 - ap_tramp_start));
	td->lm64_sel = 0x18;
	td->cr0 = (uint32_t)((read_cr0() | CR0_PE | CR0_PG) & ~(uint64_t)(CR0_CD | CR0_NW));
	td->cr3 = (uint32_t)(uintptr_t)pml4_copy;
	td->cr4 = (uint32_t)((read_cr4() | CR4_PAE) & ~(uint64_t)CR4_PCIDE);
	td->efer = EFER_LME | ((uint32_t)rdmsr(MSR_EFER) & EFER_NXE);
	td->entry = (uint64_t)(uintptr_t)ap_main;

	unsigned running = 1;
	for (unsigned i = 1; i < a->ncpus; i++) {
		struct percpu *pc = ap_alloc(i, a->apic_ids[i]);
		cpus[i] = pc;
		td->stack = (uint64_t)(uintptr_t)pc->stack + pc->stack_pages * KMEM_PAGE_SIZE;
		td->arg = (uint64_t)(uintptr_t)pc;
		td->alive = 0;
		atomic_store(&pc->state, CPU_STARTING);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);

		uint64_t t0 = uptime_us();
		lapic_send_init(pc->apic_id);
		udelay(10000);
		lapic_send_sipi(pc->apic_id, (uint8_t)(low >> 12));
		udelay(200);
		lapic_send_sipi(pc->apic_id, (uint8_t)(low >> 12));
		uint64_t deadline = uptime_us() + 2000000;
		while (atomic_load(&pc->state) != CPU_RUNNING && uptime_us() < deadline)
			cpu_pause();
		if (atomic_load(&pc->state) != CPU_RUNNING)
			kfail("AP %u (APIC id %u) did not start (trampoline reached 64-bit: %s)", i,
			      pc->apic_id, *(volatile uint32_t *)&td->alive ? "yes" : "no");
		kprintf("smp: CPU %u (APIC id %u) online in %lu us, stack %p, percpu %p\n", i,
		        pc->apic_id, (unsigned long)(uptime_us() - t0), pc->stack, (void *)pc);
		running++;
	}
	return running;
}
