/*
 * boot/virt/kmain.c - the boot CPU of the QEMU virt demo kernels: device
 * tree -> CPUs and memory map -> the heap, boot report, then the self tests
 * and the workload on every CPU (boot/workload.c), which ends the run with
 * the RESULT line and the semihosting exit status.
 */
#include "virt.h"

#define MAX_REGIONS 64

struct percpu bsp_percpu;

/* The boot stack (linker.ld) is painted below the caller's frame, for the
 * workload's high-water mark; no call here, so nothing runs below sp. */
static __attribute__((noinline)) void paint_boot_stack(void)
{
	volatile uint8_t *p = (volatile uint8_t *)__stack_bottom;
	uint8_t *limit = (uint8_t *)__builtin_frame_address(0) - 512;
	while ((uint8_t *)p < limit)
		*p++ = 0x5a;
}

void cpu_stack_area(const struct percpu *pc, const uint8_t **base, size_t *size)
{
	if (pc->stack) {
		*base = pc->stack;
		*size = pc->stack_size;
	} else {
		*base = (const uint8_t *)__stack_bottom;
		*size = (size_t)(__stack - __stack_bottom);
	}
}

uint32_t cpu_hw_id(const struct percpu *pc)
{
	return (uint32_t)pc->hw_id;
}

/* --- the device tree ------------------------------------------------------- */

struct node_find {
	unsigned depth;
	const char *name;
	struct fdt_node *out;
	bool found;
};

static bool name_is(const char *node, const char *name)
{
	while (*name && *node == *name) {
		node++;
		name++;
	}
	return !*name && (!*node || *node == '@');
}

static bool node_find_fn(const void *dtb, const struct fdt_node *n, void *arg)
{
	(void)dtb;
	struct node_find *f = arg;
	if (n->depth != f->depth || !name_is(n->name, f->name))
		return true;
	*f->out = *n;
	f->found = true;
	return false;
}

bool virt_dt_node(const void *dtb, unsigned depth, const char *name, struct fdt_node *out)
{
	struct node_find f = {depth, name, out, false};
	return fdt_walk(dtb, node_find_fn, &f) >= 0 && f.found;
}

struct cpu_list {
	uint64_t *ids;
	unsigned n, cap, seen;
};

/* The device tree's NUMA node of each CPU taken (numa-node-id, 0 if
 * none), indexed like the ids. */
static uint8_t dt_cpu_node[BOOT_MAX_CPUS];

/* /cpus/cpu@N with device_type "cpu", enabled: reg is the hardware id. */
static bool cpu_fn(const void *dtb, const struct fdt_node *n, void *arg)
{
	struct cpu_list *c = arg;
	uint64_t id, size;
	if (n->depth != 2 || !name_is(n->parent, "cpus") ||
	    !fdt_prop_has_string(dtb, n, "device_type", "cpu") || !fdt_node_enabled(dtb, n) ||
	    !fdt_reg(dtb, n, 0, &id, &size))
		return true;
	c->seen++;
	uint32_t node = 0;
	fdt_prop_u32(dtb, n, "numa-node-id", &node);
	if (c->n < c->cap) {
		dt_cpu_node[c->n] = (uint8_t)(node < KMEM_MAX_NODES ? node : 0);
		c->ids[c->n++] = id;
	}
	return true;
}

/* The CPUs, the boot CPU first. */
static unsigned dt_cpus(const void *dtb, uint64_t *ids, unsigned cap, unsigned *seen)
{
	struct cpu_list c = {ids, 0, cap, 0};
	if (fdt_walk(dtb, cpu_fn, &c) < 0)
		kfail("malformed device tree (in /cpus)");
	uint64_t boot = plat_boot_hw_id();
	unsigned i = 0;
	while (i < c.n && ids[i] != boot)
		i++;
	if (i == c.n)
		kfail("the boot CPU (id 0x%lx) is not among the %u taken from /cpus", (unsigned long)boot, c.n);
	ids[i] = ids[0];
	ids[0] = boot;
	uint8_t node = dt_cpu_node[i];
	dt_cpu_node[i] = dt_cpu_node[0];
	dt_cpu_node[0] = node;
	*seen = c.seen;
	return c.n;
}

/* NUMA from the device tree (devicetree bindings, numa.txt): the CPUs'
 * numa-node-id, and /distance-map's distance-matrix of (from, to,
 * distance) triples, into demo_numa for kmem_init.  The /memory nodes'
 * ids are in the regions already (fdt_memory_map). */
static void dt_numa(const void *dtb, unsigned ncpus, unsigned mem_nodes)
{
	unsigned nn = mem_nodes;
	for (unsigned i = 0; i < ncpus; i++)
		if (dt_cpu_node[i] + 1u > nn)
			nn = dt_cpu_node[i] + 1u;
	if (nn < 2)
		return;
	if (nn > KMEM_MAX_NODES)
		nn = KMEM_MAX_NODES;
	demo_numa.nnodes = nn;
	memcpy(demo_numa.cpu_node, dt_cpu_node, sizeof(dt_cpu_node));
	struct fdt_node dm;
	uint32_t len = 0;
	const uint8_t *m = fdt_find_compatible(dtb, "numa-distance-map-v1", &dm)
	                           ? fdt_prop(dtb, &dm, "distance-matrix", &len)
	                           : NULL;
	for (uint32_t off = 0; m && off + 12 <= len; off += 12) {
		uint32_t t[3];
		for (unsigned k = 0; k < 3; k++) /* big-endian cells */
			t[k] = (uint32_t)m[off + 4 * k] << 24 | (uint32_t)m[off + 4 * k + 1] << 16 |
			       (uint32_t)m[off + 4 * k + 2] << 8 | m[off + 4 * k + 3];
		if (t[0] < nn && t[1] < nn && t[2] < 256)
			demo_numa.distance[t[0] * nn + t[1]] = (uint8_t)t[2];
	}
	/* A partial matrix (the binding lets the reverse direction be
	 * implied) is completed symmetrically, and the diagonal is 10. */
	for (unsigned a = 0; m && a < nn; a++)
		for (unsigned b = 0; b < nn; b++) {
			uint8_t *d = &demo_numa.distance[a * nn + b];
			if (!*d)
				*d = a == b ? 10 : demo_numa.distance[b * nn + a];
		}
	kprintf("boot: NUMA: %u nodes in the device tree; CPU nodes:", nn);
	for (unsigned i = 0; i < ncpus; i++)
		kprintf(" %u", demo_numa.cpu_node[i]);
	kprintf("; distance-map %s\n", m ? "read" : "none (10 local, 20 remote)");
	for (unsigned f = 0; m && f < nn; f++) {
		kprintf("  from node %u:", f);
		for (unsigned t = 0; t < nn; t++)
			kprintf(" %u", demo_numa.distance[f * nn + t]);
		kprintf("\n");
	}
	for (unsigned k = 0; k < nn * nn; k++)
		if (m && !demo_numa.distance[k]) {
			kprintf("boot: NUMA: distance-map incomplete: defaults used\n");
			memset(demo_numa.distance, 0, sizeof(demo_numa.distance));
			break;
		}
}

static const char *region_name(uint32_t t)
{
	return t == KMEM_REGION_USABLE ? "usable" : t == KMEM_REGION_RECLAIMABLE ? "reclaimable" : "reserved";
}

/* --- main ------------------------------------------------------------------ */

/* Every CPU: the SMP ordering stress (smpstress.c), then the workload. */
static unsigned cpus_running;
static void cpu_main(struct percpu *pc)
{
	smp_stress_phase(pc->cpu, cpus_running);
	workload_cpu(pc);
}

int main(void)
{
	paint_boot_stack();
	plat_early();
	kprintf("\n=== spanalloc demo kernel: %s, picolibc, output through semihosting ===\n", plat_name);

	const void *dtb = plat_dtb();
	uint32_t dtb_size = fdt_check(dtb, 64u << 20);
	if (!dtb_size)
		kfail("no device tree at %p", dtb);
	plat_dt_init(dtb);

	static uint64_t hw_ids[BOOT_MAX_CPUS];
	unsigned limit = plat_cpu_limit(), seen;
	unsigned ncpus = dt_cpus(dtb, hw_ids, limit < BOOT_MAX_CPUS ? limit : BOOT_MAX_CPUS, &seen);
	bsp_percpu.hw_id = hw_ids[0];
	kprintf("boot: CPUs: %u in /cpus%s, boot CPU id 0x%lx, ids:", seen, seen > ncpus ? " (capped)" : "",
	        (unsigned long)hw_ids[0]);
	for (unsigned i = 0; i < ncpus; i++)
		kprintf(" 0x%lx", (unsigned long)hw_ids[i]);
	kprintf("\n");

	/* The memory map: /memory usable; /reserved-memory, the reservation
	 * block, the blob and this image (text, data, bss, boot stack)
	 * reserved. */
	static struct kmem_region regions[MAX_REGIONS];
	struct kmem_region image = {.base = (uintptr_t)__kernel_start,
	                            .length = (uint64_t)(__kernel_end - __kernel_start),
	                            .type = KMEM_REGION_RESERVED};
	struct fdt_memmap_info mi;
	long nreg = fdt_memory_map(dtb, (uintptr_t)dtb, &image, 1, regions, MAX_REGIONS, &mi);
	if (nreg < 0)
		kfail("device tree memory map: error %ld", nreg);
	kprintf("boot: device tree at %p, %u bytes: %u /memory node%s (%u range%s), %u /reserved-memory "
	        "(%u dynamic), %u reservation block entries -> %ld regions:\n",
	        dtb, mi.totalsize, mi.memory_nodes, mi.memory_nodes == 1 ? "" : "s", mi.memory_ranges,
	        mi.memory_ranges == 1 ? "" : "s", mi.reserved_nodes, mi.reserved_dynamic,
	        mi.rsvmap_entries, nreg);
	for (long i = 0; i < nreg; i++) {
		const struct kmem_region *r = &regions[i];
		const char *what = "";
		if (r->type == KMEM_REGION_RESERVED && r->base == (uintptr_t)dtb && r->length == dtb_size)
			what = " (device tree)";
		else if (r->type == KMEM_REGION_RESERVED && r->base == image.base && r->length == image.length)
			what = " (kernel image)";
		kprintf("  %2ld  0x%012lx-0x%012lx %8lu KiB  %s%s", i, (unsigned long)r->base,
		        (unsigned long)(r->base + r->length - 1), (unsigned long)(r->length >> 10),
		        region_name(r->type), what);
		kprintf(mi.numa_nodes > 1 && r->type == KMEM_REGION_USABLE ? "  node %u\n" : "\n", r->node);
	}
	dt_numa(dtb, ncpus, mi.numa_nodes);

	demo_heap_init(regions, (size_t)nreg, ncpus, mi.usable_bytes);

	/* Interrupts on: from here the timer allocates on the boot CPU. */
	workload_init(ncpus);
	plat_timer_start(&bsp_percpu);
	plat_irq_enable();
	selftest_run();

	cpus_running = ncpus;
	unsigned running = smp_start(workload_cpus(), cpu_main, hw_ids, ncpus);
	if (running != ncpus)
		kfail("%u of %u CPUs running", running, ncpus);
	cpu_main(&bsp_percpu);
	workload_finish();
	return 1; /* not reached: workload_finish ends the run */
}
