/*
 * boot/numa.c - the demo kernels' NUMA side, the same on every arch:
 *   - demo_numa: each CPU's node and the node distances, which the boot
 *     path fills in before demo_heap_init (x86_64: ACPI SRAT and SLIT,
 *     boot/acpi.c; aarch64/riscv64: the device tree's numa-node-id) and
 *     demo_heap_init hands to kmem_init;
 *   - the workload's locality count: every allocation a CPU makes in
 *     thread context is local when kmem_virt_to_node() of it is the CPU's
 *     node, and the report per node at the end.  Page runs the workload
 *     asks for below its 64 MiB ceiling are left out: they must come from
 *     the lowest RAM, whichever node holds it.
 */
#include "demo.h"

struct demo_numa demo_numa;

/* Per CPU, written only by that CPU in thread context. */
static struct {
	uint64_t local, remote;
} _Alignas(64) count[BOOT_MAX_CPUS];

void numa_note_alloc(unsigned cpu, const void *p)
{
	int node = kmem_virt_to_node(p);
	if (node < 0)
		kfail("cpu %u: kmem_virt_to_node(%p) = %d for an allocated object", cpu, p, node);
	if ((unsigned)node == demo_numa.cpu_node[cpu])
		count[cpu].local++;
	else
		count[cpu].remote++;
}

void numa_expect_node(const void *p, unsigned node, const char *what)
{
	struct kmem_node_stats ns;
	int got = kmem_virt_to_node(p);
	/* Only a node with no free page left may send it elsewhere. */
	if (got != (int)node && kmem_get_node_stats(node, &ns) == 0 && ns.pages_free > 64)
		kfail("%s for node %u came from node %d (node %u has %lu pages free)", what, node, got,
		      node, (unsigned long)ns.pages_free);
}

/* The nodes' statistics at the end of the workload, before the teardown
 * fills memory from CPU 0 (report_page_share: every page, so node 1's
 * are remote to it). */
static struct kmem_node_stats snap[KMEM_MAX_NODES];

void numa_snapshot(void)
{
	for (unsigned node = 0; node < kmem_nr_nodes(); node++)
		if (kmem_get_node_stats(node, &snap[node]) != 0)
			kfail("kmem_get_node_stats(%u) failed", node);
}

unsigned numa_report(unsigned ncpus, uint64_t *local_permille)
{
	unsigned nn = kmem_nr_nodes();
	uint64_t all_local = 0, all = 0;
	kprintf("\nNUMA: %u node%s.  allocs: the workload's allocations in thread context by the "
	        "node's CPUs,\n", nn, nn == 1 ? "" : "s");
	kprintf("  from their node (local) or another (remote), page runs under the ceiling left "
	        "out;\n");
	kprintf("  spans/runs: kmem_get_node_stats at the end of the workload: taken from the page\n");
	kprintf("  heap for requests that preferred the node (runs under the ceiling included);\n");
	kprintf("  pages, free: after the teardown\n");
	kprintf("  node cpus         pages    free  spans/runs local  remote    allocs local   remote  local%%\n");
	for (unsigned node = 0; node < nn; node++) {
		struct kmem_node_stats ns;
		if (kmem_get_node_stats(node, &ns) != 0)
			kfail("kmem_get_node_stats(%u) failed", node);
		uint64_t loc = 0, rem = 0;
		char cpus[32];
		size_t at = 0;
		cpus[0] = 0;
		for (unsigned c = 0; c < ncpus; c++)
			if (demo_numa.cpu_node[c] == node) {
				loc += count[c].local;
				rem += count[c].remote;
				if (at + 4 < sizeof(cpus))
					at += (size_t)ksnprintf(cpus + at, sizeof(cpus) - at, "%s%u", at ? "," : "", c);
			}
		uint64_t pm = loc + rem ? loc * 1000 / (loc + rem) : 1000;
		kprintf("  %4u %-8s %9lu %7lu  %16lu %7lu  %14lu %8lu  %3lu.%lu\n", node, at ? cpus : "-",
		        (unsigned long)ns.pages_managed, (unsigned long)ns.pages_free,
		        (unsigned long)snap[node].alloc_local, (unsigned long)snap[node].alloc_remote, (unsigned long)loc,
		        (unsigned long)rem, (unsigned long)(pm / 10), (unsigned long)(pm % 10));
		/* "> 95 % local when memory allows": every node here has
		 * hundreds of MiB for a workload that holds a few MiB. */
		if (nn > 1 && loc + rem && pm <= 950)
			kfail("NUMA: CPUs of node %u got only %lu.%lu%% of their allocations from it", node,
			      (unsigned long)(pm / 10), (unsigned long)(pm % 10));
		all_local += loc;
		all += loc + rem;
	}
	/* Metadata of a node lives on it: what kmem_init made (mcentrals,
	 * the node's CPUs' mcaches, arena maps and summaries) in the node's
	 * region (bootmem.c), the rest in pool runs of its pages (fixalloc.c). */
	struct kmem_region reg[KMEM_MAX_NODES];
	unsigned nreg = kmem_metadata_regions(reg, KMEM_MAX_NODES);
	kprintf("  metadata regions:");
	for (unsigned i = 0; i < nreg && i < KMEM_MAX_NODES; i++)
		kprintf(" node %u 0x%lx-0x%lx (%lu KiB)%s", reg[i].node, (unsigned long)reg[i].base,
		        (unsigned long)(reg[i].base + reg[i].length - 1),
		        (unsigned long)(reg[i].length >> 10), i + 1 < nreg ? "," : "\n");
	for (unsigned node = 0; node < nn; node++) {
		struct kmem_node_stats ns;
		if (kmem_get_node_stats(node, &ns) == 0 && ns.pages_managed > 1024 && !ns.metadata_bytes)
			kfail("NUMA: node %u has %lu pages but no metadata region of its own", node,
			      (unsigned long)ns.pages_managed);
	}
	kprintf("  metadata pool pages at the end of the workload:");
	for (unsigned node = 0; node < nn; node++)
		kprintf(" node %u %lu%s", node, (unsigned long)snap[node].pages_metadata,
		        node + 1 < nn ? "," : "\n");
	*local_permille = all ? all_local * 1000 / all : 1000;
	return nn;
}
