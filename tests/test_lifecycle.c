/*
 * tests/test_lifecycle.c - a kernel's life as the porting guide (README,
 * "Porting spanalloc to a kernel") tells it: the boot CPU allocates before
 * any per-CPU area exists (arch_cpu_id() answers 0, see spanalloc/arch.h),
 * CPUs come online, one goes offline (its cache flushed back) and comes
 * back, and memory the bootloader used is hot-added once the kernel no
 * longer needs it.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "host.h"
#include "mtypes.h"

#define PAGE KMEM_PAGE_SIZE
#define NCPU 4
#define BASE FX_SIMPLE_BASE

/* The calling thread's CPU slot, -1 for none (arch/host/arch.c). */
extern _Thread_local int host_my_cpu;

static bool in_span(const struct mspan *s, const void *p)
{
	return s && (uintptr_t)p >= s->base && (uintptr_t)p < s->base + s->npages * PAGE;
}

/* Objects of class cls CPU 0 handed out (kmalloc's fast path counts
 * apart from the others). */
static uint64_t cpu0_nmalloc(unsigned cls)
{
	return mcache_of(0)->nmalloc[cls] + mcache_of(0)->cls[cls].nmalloc;
}

/* CPU cpu holds nothing of class cls: no magazine, no span. */
static bool cpu_class_empty(unsigned cpu, unsigned cls)
{
	struct mcache *m = mcache_of(cpu);
	return !m->cls[cls].loaded && !atomic_load(&m->cls[cls].prev) &&
	       !atomic_load(&m->cls[cls].span) && mag_slot_n(&m->mag[cls]) == 0;
}

static int teardown(void **state)
{
	host_set_early_boot(false);
	return fx_teardown_all_back(state);
}

/* ------------------------------------------------------------------------
 * Allocation before per-CPU areas exist.  The boot CPU runs kmem_init()
 * and allocates every CPU's per-CPU area, stack and an object cache while
 * arch_cpu_id() answers 0 from no per-CPU data at all; the objects come
 * from CPU 0's cache, which the boot CPU keeps using once its own area is
 * installed.  The other CPUs then start on the areas made for them, and
 * free objects the boot CPU allocated early.
 */

struct percpu {
	unsigned id;
	void *stack; /* 4 pages */
	void *early[16];
	char pad[100];
};

static struct kmem_cache *task_cache;

static void ap_step(struct fx_cpu *c, int k)
{
	(void)k;
	struct percpu *pc = c->arg;
	if (pc->id != 0 || fx_first_nonzero(pc->pad, sizeof pc->pad) != (size_t)-1) {
		FX_CPU_FAIL(c, "cpu %u: its area was not zeroed", c->id);
		return;
	}
	pc->id = c->id;
	fx_fill(pc->stack, 4 * PAGE, c->id);
	void *task[32];
	for (int i = 0; i < 32; i++) {
		task[i] = kmem_cache_alloc(task_cache);
		if (!task[i]) {
			FX_CPU_FAIL(c, "cpu %u: kmem_cache_alloc failed", c->id);
			return;
		}
		fx_fill(task[i], 256, (uint64_t)c->id << 8 | (unsigned)i);
	}
	for (int i = 0; i < 16; i++) { /* the boot CPU's early objects */
		if (fx_check(pc->early[i], 48, 1000 + i) != (size_t)-1) {
			FX_CPU_FAIL(c, "cpu %u: early object %d changed", c->id, i);
			return;
		}
		kfree(pc->early[i]);
	}
	for (int i = 0; i < 32; i++) {
		if (fx_check(task[i], 256, (uint64_t)c->id << 8 | (unsigned)i) != (size_t)-1) {
			FX_CPU_FAIL(c, "cpu %u: task object %d changed", c->id, i);
			return;
		}
		kmem_cache_free(task_cache, task[i]);
	}
	if (fx_check(pc->stack, 4 * PAGE, c->id) != (size_t)-1)
		FX_CPU_FAIL(c, "cpu %u: stack changed", c->id);
}

static void test_alloc_before_percpu_areas(void **state)
{
	(void)state;
	fx_reserve(FX_GIB);
	struct kmem_region map = {BASE, 64 * FX_MIB, KMEM_REGION_USABLE, 0};
	host_set_early_boot(true);
	assert_int_equal(fx_init(&map, 1, NCPU), 0);
	/* No per-CPU data: no slot, and the answer is 0. */
	assert_int_equal(host_my_cpu, -1);
	assert_int_equal(arch_cpu_id(), 0);

	struct percpu *area[NCPU];
	unsigned cls = kmem_size_class(sizeof(struct percpu));
	for (unsigned i = 0; i < NCPU; i++) {
		uint64_t before = cpu0_nmalloc(cls);
		area[i] = kzalloc(sizeof *area[i]);
		assert_non_null(area[i]);
		/* from CPU 0's cache, the only one there is */
		assert_int_equal(cpu0_nmalloc(cls), before + 1);
		assert_true(in_span(span_of_ptr(area[0]), area[i])); /* one span */
		area[i]->stack = kpage_alloc(4, 4 * PAGE, 0);
		assert_non_null(area[i]->stack);
		for (int j = 0; j < 16; j++) {
			area[i]->early[j] = kmalloc(48);
			assert_non_null(area[i]->early[j]);
			fx_fill(area[i]->early[j], 48, 1000 + (unsigned)j);
		}
	}
	task_cache = kmem_cache_create("task", 256, 64, NULL);
	assert_non_null(task_cache);
	assert_int_equal(host_my_cpu, -1); /* allocating claimed nothing */
	struct kmem_stats st = fx_stats();
	assert_int_equal(st.cpus_online, 1);
	struct kmem_class_stats cs = fx_class_stats(cls);
	assert_int_equal(cs.nmalloc, NCPU);
	assert_int_equal(cs.spans, 1);

	/* The boot CPU installs its per-CPU area: still CPU 0, same cache. */
	host_set_early_boot(false);
	assert_int_equal(host_cpu_claim(0), 0);
	uint64_t before = cpu0_nmalloc(cls);
	void *more = kmalloc(sizeof(struct percpu));
	assert_non_null(more);
	assert_int_equal(cpu0_nmalloc(cls), before + 1);
	assert_true(in_span(span_of_ptr(area[0]), more));
	kfree(more);

	/* The other CPUs start on the areas made for them. */
	struct fx_cpu ap[NCPU];
	memset(ap, 0, sizeof ap);
	for (unsigned i = 1; i < NCPU; i++) {
		ap[i] = (struct fx_cpu){.id = i, .step = ap_step, .arg = area[i]};
		fx_cpu_start(&ap[i]);
		fx_cpu_run(&ap[i], 1);
	}
	st = fx_stats();
	assert_int_equal(st.cpus_online, NCPU);
	for (unsigned i = 1; i < NCPU; i++) {
		assert_int_equal(area[i]->id, i);
		fx_cpu_stop(&ap[i]);
	}
	st = fx_stats();
	assert_int_equal(st.cpus_online, 1);
	for (int j = 0; j < 16; j++)
		kfree(area[0]->early[j]);
	for (unsigned i = 0; i < NCPU; i++) {
		kpage_free(area[i]->stack, 4);
		kfree(area[i]);
	}
	kmem_cache_shrink(task_cache);
	assert_int_equal(kmem_cache_destroy(task_cache), 0);
	fx_assert_no_faults();
}

/* ------------------------------------------------------------------------
 * A CPU goes offline and comes back.  CPU 2 allocates from several classes
 * and an object cache, frees half, and stops; CPU 0 takes it offline,
 * which must hand every span its cache held back (checked in its mcache
 * and by all pages coming back once CPU 0 frees the rest: kmem_reclaim
 * flushes only the caller's cache).  Then CPU 2 comes back online and
 * allocates again.
 */

#define OFF_SIZES 5
#define OFF_N 48
static const size_t off_size[OFF_SIZES] = {16, 200, 1000, 4096, 20000};

struct off_state {
	struct kmem_cache *cache;
	void *obj[OFF_SIZES + 1][OFF_N]; /* row OFF_SIZES: cache objects */
};

static size_t off_len(unsigned row)
{
	return row < OFF_SIZES ? off_size[row] : 96;
}

static void off_step(struct fx_cpu *c, int k)
{
	struct off_state *o = c->arg;
	if (k == 2 && kmem_cpu_online(c->id) != 0) { /* back online */
		FX_CPU_FAIL(c, "kmem_cpu_online(%u) failed", c->id);
		return;
	}
	for (unsigned r = 0; r <= OFF_SIZES; r++)
		for (unsigned i = 0; i < OFF_N; i++) {
			void *p = r < OFF_SIZES ? kmalloc(off_size[r]) : kmem_cache_alloc(o->cache);
			if (!p) {
				FX_CPU_FAIL(c, "step %d: allocation %u/%u failed", k, r, i);
				return;
			}
			fx_fill(p, off_len(r), (uint64_t)k << 32 | r << 16 | i);
			o->obj[r][i] = p;
		}
	for (unsigned r = 0; r <= OFF_SIZES; r++)
		for (unsigned i = 0; i < OFF_N; i += 2) {
			kfree(o->obj[r][i]);
			o->obj[r][i] = NULL;
		}
}

/* Checks and frees what CPU 2 left live in step k. */
static void off_free_rest(struct off_state *o, int k)
{
	for (unsigned r = 0; r <= OFF_SIZES; r++)
		for (unsigned i = 1; i < OFF_N; i += 2) {
			assert_int_equal(fx_check(o->obj[r][i], off_len(r),
			                          (uint64_t)k << 32 | r << 16 | i),
			                 (size_t)-1);
			kfree(o->obj[r][i]);
		}
}

static void assert_cpu_cache_empty(unsigned cpu, const struct kmem_cache *k)
{
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++)
		assert_true(cpu_class_empty(cpu, cls));
	const struct cache_cpu *x = &k->cpu[cpu];
	assert_true(!x->cls.loaded && !atomic_load(&x->cls.prev) && !atomic_load(&x->cls.span) &&
	            mag_slot_n(&x->mag) == 0);
}

static void test_cpu_offline_and_back(void **state)
{
	(void)state;
	fx_simple(64, NCPU);
	struct off_state o = {.cache = kmem_cache_create("off", 96, 0, NULL)};
	assert_non_null(o.cache);
	struct fx_cpu c2 = {.id = 2, .step = off_step, .arg = &o};
	fx_cpu_start(&c2);
	fx_cpu_run(&c2, 1);
	assert_int_equal(fx_stats().cpus_online, 2);
	assert_false(cpu_class_empty(2, kmem_size_class(200)));

	/* CPU 2 is stopped (waiting for its next step): take it offline. */
	assert_int_equal(kmem_cpu_offline(2), 0);
	assert_int_equal(fx_stats().cpus_online, 1);
	assert_cpu_cache_empty(2, o.cache);
	off_free_rest(&o, 1);
	fx_assert_no_faults();
	fx_assert_all_back();

	/* Back online: it allocates again, from fresh spans. */
	fx_cpu_run(&c2, 2);
	assert_int_equal(fx_stats().cpus_online, 2);
	off_free_rest(&o, 2);
	fx_cpu_stop(&c2); /* the thread's end takes CPU 2 offline */
	assert_int_equal(fx_stats().cpus_online, 1);
	assert_cpu_cache_empty(2, o.cache);
	kmem_cache_shrink(o.cache);
	assert_int_equal(kmem_cache_destroy(o.cache), 0);
	fx_assert_no_faults();
}

/* ------------------------------------------------------------------------
 * Hot-add of bootloader-reclaimable memory.  The map comes through the
 * E820 adapter, with ACPI-reclaimable memory (type 3) the kernel reads
 * during boot.  Until it is handed over the heap never touches it (the
 * fixture keeps it PROT_NONE through kmem_init; then the "tables" in it
 * stay intact while the pool is drained dry); after kmem_hot_add() its
 * pages serve allocations.
 */

struct e820 {
	uint64_t base, length;
	uint32_t type;
} __attribute__((packed));

static void test_hot_add_reclaimable_boot_map(void **state)
{
	(void)state;
	fx_reserve(FX_GIB);
	const uint64_t rbase = BASE + 48 * FX_MIB, rlen = 8 * FX_MIB;
	const struct e820 e820[] = {
		{BASE, 48 * FX_MIB, 1},
		{rbase, rlen, 3},
		{rbase + rlen, FX_MIB, 2},
		{rbase + rlen + FX_MIB, 7 * FX_MIB, 1},
	};
	struct kmem_region map[8];
	long n = kmem_memmap_e820(e820, 4, sizeof e820[0], map, 8);
	assert_int_equal(n, 4);
	assert_int_equal(map[1].type, KMEM_REGION_RECLAIMABLE);
	assert_int_equal(fx_init(map, (size_t)n, 2), 0);
	struct kmem_stats before = fx_stats();

	/* The kernel reads its ACPI tables. */
	fx_usable(rbase, rlen);
	fx_fill(fx_virt(rbase), rlen, 77);

	/* Drain the pool: nothing comes from the reclaimable range. */
	size_t cap = before.pages_managed + rlen / PAGE + 1, got = 0;
	void **pages = malloc(cap * sizeof *pages);
	assert_non_null(pages);
	void *p;
	while (got < cap && (p = kpage_alloc(1, 1, 0)) != NULL) {
		uint64_t phys = kmem_virt_to_phys(p);
		assert_false(phys >= rbase && phys < rbase + rlen);
		pages[got++] = p;
	}
	assert_true(got > 0 && got < cap);
	assert_null(kmalloc(64));
	assert_int_equal(fx_check(fx_virt(rbase), rlen, 77), (size_t)-1);

	/* Done with the tables: hand them over. */
	long added = kmem_hot_add(&map[1]);
	assert_int_equal(added, (long)(rlen / PAGE)); /* its arena has metadata */
	struct kmem_stats mid = fx_stats();
	assert_int_equal(mid.pages_managed, before.pages_managed + rlen / PAGE);
	assert_int_equal(mid.arenas, before.arenas);
	assert_int_equal(kmem_hot_add(&map[1]), -KMEM_EINVAL); /* only once */

	size_t first_new = got;
	void *obj = kmalloc(64);
	assert_non_null(obj);
	uint64_t ophys = kmem_virt_to_phys(obj);
	assert_true(ophys >= rbase && ophys < rbase + rlen);
	kfree(obj);
	while (got < cap && (p = kpage_alloc(1, 1, 0)) != NULL) {
		uint64_t phys = kmem_virt_to_phys(p);
		assert_true(phys >= rbase && phys < rbase + rlen);
		pages[got++] = p;
	}
	struct kmem_stats full = fx_stats();
	assert_int_equal(full.pages_free, 0);
	/* every new page is a run now, or was taken for span descriptors
	 * (and the 64 B object's span, freed, may still be held) */
	assert_int_equal(full.pages_runs, got);
	assert_int_equal(got - first_new + (full.pages_metadata - mid.pages_metadata) +
	                     full.pages_small,
	                 rlen / PAGE);
	for (size_t i = 0; i < got; i++)
		kpage_free(pages[i], 1);
	free(pages);
	fx_assert_no_faults();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_alloc_before_percpu_areas, teardown),
		cmocka_unit_test_teardown(test_cpu_offline_and_back, teardown),
		cmocka_unit_test_teardown(test_hot_add_reclaimable_boot_map, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
