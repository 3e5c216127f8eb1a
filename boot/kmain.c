/*
 * boot/kmain.c - the BSP once the boot path (boot/efi_main.c, UEFI, or
 * boot/multiboot/mb_main.c, Multiboot) hands over: on the kernel's own
 * stack, take over the CPU (page tables, GDT/TSS/IDT, 8259 masked, local
 * APIC), turn the memory map into the heap, print the boot report, then
 * run the self tests and the workload on every CPU (boot/workload.c),
 * which ends the run with the RESULT line and QEMU's exit status.
 */
#include "kernel.h"

struct boot_info boot_info;

static uint8_t bsp_stack[64 * 1024] __attribute__((aligned(16)));

void switch_stack(void *top, void (*fn)(void *), void *arg) __attribute__((noreturn));
static void kmain_bsp(void *unused) __attribute__((noreturn));

void kmain_start(void)
{
	cli();
	boot_info.bsp_stack = bsp_stack;
	boot_info.bsp_stack_size = sizeof(bsp_stack);
	memset(bsp_stack, 0x5a, sizeof(bsp_stack)); /* for the high-water mark */
	switch_stack(bsp_stack + sizeof(bsp_stack), kmain_bsp, NULL);
}

static void order_cpus_bsp_first(struct acpi_info *a, uint32_t bsp_id)
{
	for (unsigned i = 0; i < a->ncpus; i++)
		if (a->apic_ids[i] == bsp_id) {
			uint32_t t = a->apic_ids[0];
			uint8_t node = a->cpu_node[0];
			a->apic_ids[0] = bsp_id;
			a->apic_ids[i] = t;
			a->cpu_node[0] = a->cpu_node[i];
			a->cpu_node[i] = node;
			return;
		}
	kfail("the BSP (APIC id %u) is not in the MADT", bsp_id);
}

static const char *region_name(uint32_t t)
{
	return t == KMEM_REGION_USABLE ? "usable" : t == KMEM_REGION_RECLAIMABLE ? "reclaimable" : "reserved";
}

static void print_size(const char *prefix, uint64_t bytes)
{
	if (bytes >= (16ull << 20))
		kprintf("%s%6lu MiB", prefix, (unsigned long)(bytes >> 20));
	else
		kprintf("%s%6lu KiB", prefix, (unsigned long)(bytes >> 10));
}

/* The map's usable regions cut at the SRAT's memory ranges (a copy: the
 * boot path's array has no room to spare), and the CPUs' nodes and the
 * SLIT for kmem_init (demo_numa, boot/numa.c). */
static const struct kmem_region *numa_regions(const struct acpi_info *a,
                                              const struct kmem_region *map,
                                              struct memmap_summary *ms)
{
	static struct kmem_region r[768];
	if (ms->nregions > ARRAY_SIZE(r))
		kfail("memory map: %u regions, room for %zu", ms->nregions, ARRAY_SIZE(r));
	memcpy(r, map, ms->nregions * sizeof(*r));
	long n = kmem_memmap_split_nodes(r, ms->nregions, ARRAY_SIZE(r), a->mem, a->numa.nmem);
	if (n < 0)
		kfail("memory map: kmem_memmap_split_nodes: error %ld", n);
	ms->nregions = (unsigned)n;
	demo_numa.nnodes = a->numa.nnodes;
	memcpy(demo_numa.cpu_node, a->cpu_node, sizeof(demo_numa.cpu_node));
	memcpy(demo_numa.distance, a->distance, sizeof(demo_numa.distance));
	kprintf("boot: NUMA: %u nodes in the SRAT%s, %u memory ranges%s; CPU nodes:", a->numa.nnodes,
	        a->numa.folded ? " (more folded into node 0)" : "", a->numa.mem_seen,
	        a->numa.mem_seen > a->numa.nmem ? " (capped)" : "");
	for (unsigned i = 0; i < a->ncpus; i++)
		kprintf(" %u", a->cpu_node[i]);
	kprintf("; SLIT %s\n", a->distance[0] ? "distances:" : "none");
	for (unsigned f = 0; a->distance[0] && f < a->numa.nnodes; f++) {
		kprintf("  from node %u:", f);
		for (unsigned t = 0; t < a->numa.nnodes; t++)
			kprintf(" %u", a->distance[f * a->numa.nnodes + t]);
		kprintf("\n");
	}
	return r;
}

static void kmain_bsp(void *unused)
{
	(void)unused;
	struct acpi_info *acpi = &boot_info.acpi;

	/* The CPU: our page tables, descriptor tables, interrupt controllers. */
	serial_init();
	uint64_t mapped_top = paging_init(bootpath_max_addr());
	cpu_tables_init();
	cpu_load_tables(&bsp_percpu);
	pic_disable();
	lapic_init_cpu();
	bsp_percpu.apic_id = lapic_id();
	order_cpus_bsp_first(acpi, bsp_percpu.apic_id);
	timer_calibrate(acpi);

	bootpath_report(mapped_top);
	kprintf("boot: CPUs: %u enabled in the MADT%s, BSP APIC id %u, %s, APIC ids:",
	        acpi->ncpus_seen, acpi->ncpus_seen > acpi->ncpus ? " (capped)" : "",
	        bsp_percpu.apic_id, lapic_is_x2apic() ? "x2APIC" : "xAPIC at 0xfee00000");
	for (unsigned i = 0; i < acpi->ncpus; i++)
		kprintf(" %u", acpi->apic_ids[i]);
	kprintf("\n");
	if (timer_calibrated())
		kprintf("boot: timers: ACPI PM timer port 0x%x (%s-bit) -> TSC %lu MHz, LAPIC timer %lu kHz "
		        "(bus/16), tick %u Hz\n",
		        acpi->pm_timer_port, acpi->pm_timer_32bit ? "32" : "24",
		        (unsigned long)(tsc_hz() / 1000000), (unsigned long)(lapic_timer_hz() / 1000),
		        TIMER_HZ);
	else
		kprintf("boot: timers: no usable ACPI PM timer; assuming TSC 1 GHz, LAPIC bus 1 GHz\n");

	/* The memory map -> the heap; with an SRAT, cut at its nodes. */
	struct memmap_summary ms;
	const struct kmem_region *regions = bootpath_regions(mapped_top, &ms);
	if (acpi->numa.nnodes > 1)
		regions = numa_regions(acpi, regions, &ms);
	for (unsigned i = 0; i < ms.nregions; i++) {
		const struct kmem_region *r = &regions[i];
		kprintf("  %2u  0x%012lx-0x%012lx ", i, (unsigned long)r->base,
		        (unsigned long)(r->base + r->length - 1));
		print_size("", r->length);
		kprintf("  %s", region_name(r->type));
		kprintf(acpi->numa.nnodes > 1 && r->type == KMEM_REGION_USABLE ? "  node %u\n" : "\n", r->node);
	}
	if (ms.clipped_bytes)
		kprintf("boot: %lu MiB of usable RAM above 0x%lx left out (no 1 GiB pages to map it)\n",
		        (unsigned long)(ms.clipped_bytes >> 20), (unsigned long)mapped_top);

	demo_heap_init(regions, ms.nregions, acpi->ncpus, ms.usable_bytes);

	/* Interrupts on: from here the timer allocates on the BSP. */
	unsigned ncpus = acpi->ncpus;
	workload_init(ncpus);
	lapic_timer_start(TIMER_HZ);
	sti();
	selftest_run();

	unsigned running = smp_start_aps(workload_cpus(), workload_cpu);
	if (running != ncpus)
		kfail("%u of %u CPUs running", running, ncpus);
	nmi_demo_start(workload_cpus(), ncpus);
	workload_cpu(&bsp_percpu);
	nmi_demo_finish();
	workload_finish();
	cpu_halt_forever();
}
