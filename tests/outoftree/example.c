/*
 * tests/outoftree/example.c - the porting guide's complete minimal example
 * (README, "Porting spanalloc to a kernel"): a small "kernel" that runs on
 * the host.  Its RAM is 64 MiB the host gives it, seen through a direct
 * map; its CPUs are threads; its interrupt flag is a per-thread level.
 * Everything else is what a kernel does: the six arch hooks, the boot
 * memory map (E820, as Multiboot v1 hands it over) through an adapter,
 * kmem_init, allocation before per-CPU areas exist, CPUs online and
 * offline, objects, object caches and page runs, and hot-add of
 * ACPI-reclaimable memory once its tables have been read.
 *
 * make test-package builds it from the installed files (pkg-config) and
 * from the amalgamation, with gcc and clang, and runs it: it must print
 * "example: PASS" last.  The part between the markers is the README's
 * example byte for byte (make check-readme-example).
 */
/* ---- README example begins ---- */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spanalloc.h> /* the contract, the arch hooks, the map adapters */

#define NCPU 4
#define RAM_SIZE (64ul << 20)
#define CHECK(e) do { if (!(e)) { printf("example: FAIL: %s (line %d)\n", #e, __LINE__); \
                                  exit(1); } } while (0)

/* 1. The hooks (spanalloc/arch.h).  A kernel uses pushf+cli / popf (or
 * DAIF, sstatus), its per-CPU area (GS base, TPIDR_EL1, tp), its console. */
static _Thread_local unsigned long irq_off; /* >0: "interrupts disabled" */
static _Thread_local int this_cpu = -1;     /* -1: no per-CPU area yet */

unsigned long arch_irq_save(void) { return irq_off++; }
void arch_irq_restore(unsigned long flags) { irq_off = flags; }
unsigned arch_cpu_id(void) { return this_cpu < 0 ? 0 : (unsigned)this_cpu; }
void arch_cpu_relax(void) { sched_yield(); }
void arch_log(const char *line) { printf("kernel: %s\n", line); }
void arch_panic(const char *msg) { printf("kernel panic: %s\n", msg); exit(1); }

struct task { int pid; char name[60]; };
static struct kmem_cache *task_cache;

/* 3. A CPU: online before its first allocation, offline when it stops. */
static void *cpu_main(void *arg)
{
	this_cpu = (int)(long)arg;
	for (int round = 0; round < 1000; round++) {
		size_t size = 8 + (size_t)(round * 37 + this_cpu * 11) % 3000;
		char *p = kmalloc(size);
		struct task *t = kmem_cache_alloc(task_cache);
		CHECK(p && t && ksize(p) >= size);
		memset(p, this_cpu, size);
		t->pid = round;
		CHECK(p[size - 1] == this_cpu && t->pid == round);
		kfree(p);
		kmem_cache_free(task_cache, t);
	}
	CHECK(kmem_cpu_offline((unsigned)this_cpu) == 0); /* its cache goes back */
	return NULL;
}

int main(void)
{
	/* 2. The boot memory map, through an adapter, plus the kernel image. */
	char *ram = aligned_alloc(2ul << 20, RAM_SIZE); /* physical 0 is here */
	CHECK(ram != NULL);
	struct { uint64_t base, length; uint32_t type; } __attribute__((packed)) e820[] = {
		{0x0, 0x9f000, 1},              /* RAM */
		{0x9f000, 0x61000, 2},          /* reserved: EBDA, ROMs */
		{0x100000, 0x3700000, 1},       /* RAM, 1 MiB .. 56 MiB */
		{0x3800000, 0x400000, 3},       /* ACPI reclaimable, 56 .. 60 MiB */
		{0x3c00000, 0x400000, 1},       /* RAM, 60 .. 64 MiB */
	};
	struct kmem_region map[16];
	long n = kmem_memmap_e820(e820, 5, sizeof e820[0], map, 16);
	CHECK(n > 0);
	map[n++] = (struct kmem_region){0x100000, 0x200000, KMEM_REGION_RESERVED, 0}; /* kernel */
	struct kmem_config cfg = {
		.regions = map, .nregions = (size_t)n,
		.direct_map_offset = (uintptr_t)ram, /* virtual = physical + offset */
		.max_cpus = NCPU,
	};
	CHECK(kmem_init(&cfg) == 0);
	uint64_t meta, meta_size;
	kmem_metadata_region(&meta, &meta_size);
	printf("example: heap up, metadata region %#llx, %llu KiB\n",
	       (unsigned long long)meta, (unsigned long long)(meta_size >> 10));

	/* Early boot: no per-CPU area yet, arch_cpu_id() says 0: allocate them. */
	pthread_t *cpu = kcalloc(NCPU, sizeof *cpu);
	task_cache = kmem_cache_create("task", sizeof(struct task), 64, NULL);
	CHECK(cpu && task_cache);
	this_cpu = 0; /* the boot CPU's per-CPU area is installed */

	for (long i = 1; i < NCPU; i++) {
		CHECK(kmem_cpu_online((unsigned)i) == 0);
		CHECK(pthread_create(&cpu[i], NULL, cpu_main, (void *)i) == 0);
	}
	void *dma = kpage_alloc(16, 16 * KMEM_PAGE_SIZE, 16ull << 20); /* below 16 MiB */
	CHECK(dma && kmem_virt_to_phys(dma) + 16 * KMEM_PAGE_SIZE <= (16ull << 20));
	for (int i = 1; i < NCPU; i++)
		pthread_join(cpu[i], NULL);
	printf("example: %d CPUs ran, %d went offline\n", NCPU, NCPU - 1);

	/* 4. The ACPI tables are read: hand their memory to the heap. */
	struct kmem_stats st;
	kmem_get_stats(&st);
	uint64_t before = st.pages_managed;
	long added = 0;
	for (long i = 0; i < n; i++)
		if (map[i].type == KMEM_REGION_RECLAIMABLE)
			added += kmem_hot_add(&map[i]);
	kmem_get_stats(&st);
	CHECK(added == 1024 && st.pages_managed == before + 1024);
	printf("example: hot-added %ld reclaimable pages\n", added);

	/* 5. Everything back, every invariant intact. */
	kpage_free(dma, 16);
	kfree(cpu);
	CHECK(kmem_cache_destroy(task_cache) == 0);
	kmem_reclaim();
	kmem_get_stats(&st);
	CHECK(st.pages_free + st.pages_metadata == st.pages_managed && kmem_check() == 0);
	printf("example: %llu pages managed, all free, kmem_check: 0 problems\n",
	       (unsigned long long)st.pages_managed);
	printf("example: PASS\n");
	return 0;
}
/* ---- README example ends ---- */
