/*
 * tests/test_numa.c - NUMA nodes (issue #15.1; malloc.c, "NUMA nodes"):
 * a CPU allocates from its own node (objects, cache objects, large
 * objects, page runs); kmalloc_node, kmem_cache_alloc_node and
 * kpage_alloc_node honour the node; a full node falls back in distance
 * order and NULL comes only when every node is full; an object freed on a
 * CPU of another node goes back to its span (never into that CPU's
 * magazines) and is reused by its own node; per-node statistics add up to
 * the whole heap's; kmem_check is clean with magazines cached on every
 * node; reclaim gives back every node's pages; malformed node ids,
 * topologies and hot-adds are refused and change nothing; a single-node
 * heap reports one node.  CPUs are the main thread switching slots, or
 * threads (fx_cpu).
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
#include <unistd.h>

#include "fixture.h"
#include "host.h"
#include "mtypes.h"
#include "objstate.h"

#define MIB FX_MIB

/* Two nodes of 32 MiB in two arenas; CPUs 0, 1 on node 0, 2, 3 on node 1. */
static const struct kmem_region map2[] = {
	{16 * MIB, 32 * MIB, KMEM_REGION_USABLE, 0},
	{64 * MIB, 32 * MIB, KMEM_REGION_USABLE, 1},
};
static const uint8_t cpu_node2[] = {0, 0, 1, 1};

/* Three nodes of 8 MiB; nodes 1 and 2 adjacent in one arena.  Node 0's
 * nearest other node is 2, then 1. */
static const struct kmem_region map3[] = {
	{16 * MIB, 8 * MIB, KMEM_REGION_USABLE, 0},
	{64 * MIB, 8 * MIB, KMEM_REGION_USABLE, 1},
	{72 * MIB, 8 * MIB, KMEM_REGION_USABLE, 2},
};
static const uint8_t cpu_node3[] = {0, 1, 2};
static const uint8_t dist3[] = {
	10, 30, 20,
	30, 10, 20,
	20, 20, 10,
};

static int init_numa(const struct kmem_region *r, size_t n, const uint8_t *cpu_node,
                     unsigned cpus, const uint8_t *dist)
{
	struct kmem_config cfg;
	fx_config(&cfg, r, n, cpus);
	cfg.cpu_node = cpu_node;
	cfg.node_distance = dist;
	return fx_init_config(&cfg);
}

static int setup2(void **state)
{
	(void)state;
	fx_reserve(256 * MIB);
	assert_int_equal(init_numa(map2, 2, cpu_node2, 4, NULL), 0);
	return 0;
}

static int setup3(void **state)
{
	(void)state;
	fx_reserve(256 * MIB);
	assert_int_equal(init_numa(map3, 3, cpu_node3, 3, dist3), 0);
	return 0;
}

/* The main thread becomes CPU `cpu` (the one it was goes offline: its
 * caches are flushed). */
static void on_cpu(unsigned cpu)
{
	host_cpu_release();
	assert_int_equal(host_cpu_claim((int)cpu), (int)cpu);
}

static struct kmem_node_stats node_stats(unsigned node)
{
	struct kmem_node_stats ns;
	assert_int_equal(kmem_get_node_stats(node, &ns), 0);
	return ns;
}

/* The nodes' pages add up to the heap's. */
static void assert_nodes_add_up(void)
{
	struct kmem_stats st = fx_stats();
	uint64_t managed = 0, free = 0;
	for (unsigned n = 0; n < kmem_nr_nodes(); n++) {
		struct kmem_node_stats ns = node_stats(n);
		assert_true(ns.pages_free <= ns.pages_managed);
		managed += ns.pages_managed;
		free += ns.pages_free;
	}
	assert_int_equal(managed, st.pages_managed);
	assert_int_equal(free, st.pages_free);
}

static void ctor(void *obj)
{
	memset(obj, 0xc5, 8);
}

/* ---------------------------------------------------------------------------
 * Placement
 */

static void test_topology(void **state)
{
	(void)state;
	assert_int_equal(kmem_nr_nodes(), 2);
	assert_int_equal(node_stats(0).cpus, 2);
	assert_int_equal(node_stats(1).cpus, 2);
	struct kmem_node_stats ns;
	assert_int_equal(kmem_get_node_stats(2, &ns), -KMEM_EINVAL);
	/* Every managed page is on the node of its region. */
	assert_int_equal(kmem_virt_to_node(fx_virt(16 * MIB)), 0);
	assert_int_equal(kmem_virt_to_node(fx_virt(40 * MIB)), 0);
	assert_int_equal(kmem_virt_to_node(fx_virt(64 * MIB)), 1);
	/* Not managed: a hole, the metadata region, memory outside. */
	assert_int_equal(kmem_virt_to_node(fx_virt(50 * MIB)), -1);
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	assert_int_equal(kmem_virt_to_node(fx_virt(mb + ms / 2)), -1);
	int local = 0;
	assert_int_equal(kmem_virt_to_node(&local), -1);
	/* Each node has its 32 MiB less its metadata region, carved from
	 * its top. */
	for (unsigned n = 0; n < 2; n++) {
		struct kmem_node_stats ns = node_stats(n);
		assert_true(ns.metadata_bytes > 0);
		assert_int_equal(ns.metadata_bytes % KMEM_PAGE_SIZE, 0);
		assert_int_equal(ns.pages_managed + ns.metadata_bytes / KMEM_PAGE_SIZE,
		                 32 * MIB / KMEM_PAGE_SIZE);
	}
	assert_nodes_add_up();
}

/* Each CPU's plain calls come from its node. */
static void test_cpu_allocates_from_its_node(void **state)
{
	(void)state;
	struct kmem_cache *k = kmem_cache_create("numa", 200, 0, ctor);
	assert_non_null(k);
	for (unsigned cpu = 0; cpu < 4; cpu++) {
		on_cpu(cpu);
		int node = cpu_node2[cpu];
		void *p[64];
		for (unsigned i = 0; i < 64; i++) {
			p[i] = kmalloc(8 + 61 * i);
			assert_non_null(p[i]);
			assert_int_equal(kmem_virt_to_node(p[i]), node);
		}
		void *big = kmalloc(100 * 1024), *run = kpage_alloc(3, 0, 0);
		void *longrun = kpage_alloc(200, 0, 0), *al = kmalloc_aligned(5000, 8192);
		void *obj = kmem_cache_alloc(k);
		assert_non_null(big);
		assert_non_null(run);
		assert_non_null(longrun);
		assert_non_null(al);
		assert_non_null(obj);
		assert_int_equal(kmem_virt_to_node(big), node);
		assert_int_equal(kmem_virt_to_node(run), node);
		assert_int_equal(kmem_virt_to_node(longrun), node);
		assert_int_equal(kmem_virt_to_node(al), node);
		assert_int_equal(kmem_virt_to_node(obj), node);
		/* KMEM_NO_NODE is the plain call. */
		void *nn = kmalloc_node(64, KMEM_NO_NODE);
		assert_int_equal(kmem_virt_to_node(nn), node);
		kfree(nn);
		for (unsigned i = 0; i < 64; i++)
			kfree(p[i]);
		kfree(big);
		kfree(al);
		kpage_free(run, 3);
		kpage_free(longrun, 200);
		kmem_cache_free(k, obj);
	}
	/* Every page this took was local. */
	assert_int_equal(node_stats(0).alloc_remote, 0);
	assert_int_equal(node_stats(1).alloc_remote, 0);
	assert_true(node_stats(0).alloc_local > 0 && node_stats(1).alloc_local > 0);
	on_cpu(0);
	assert_int_equal(kmem_cache_destroy(k), 0);
}

/* The _node calls take memory from the node asked for, whatever the
 * calling CPU's; bad nodes give NULL. */
static void test_node_calls_honour_node(void **state)
{
	(void)state;
	struct kmem_cache *k = kmem_cache_create("numa", 96, 32, ctor);
	assert_non_null(k);
	for (unsigned cpu = 0; cpu < 4; cpu += 2) {
		on_cpu(cpu);
		for (int node = 0; node < 2; node++) {
			struct kmem_node_stats before = node_stats((unsigned)node);
			void *o[40];
			for (unsigned i = 0; i < 40; i++) {
				o[i] = kmalloc_node(8 + 100 * i, node);
				assert_non_null(o[i]);
				assert_int_equal(kmem_virt_to_node(o[i]), node);
			}
			void *big = kmalloc_node(300 * 1024, node);
			void *run = kpage_alloc_node(5, 4 * KMEM_PAGE_SIZE, 0, node);
			void *longrun = kpage_alloc_node(130, 0, 0, node);
			void *c = kmem_cache_alloc_node(k, node);
			assert_non_null(big);
			assert_non_null(run);
			assert_non_null(longrun);
			assert_non_null(c);
			assert_int_equal(kmem_virt_to_node(big), node);
			assert_int_equal(kmem_virt_to_node(run), node);
			assert_int_equal((uintptr_t)run % (4 * KMEM_PAGE_SIZE), 0);
			assert_int_equal(kmem_virt_to_node(longrun), node);
			assert_int_equal(kmem_virt_to_node(c), node);
			assert_int_equal(*(uint8_t *)c, 0xc5); /* the ctor ran */
			/* Requests that preferred this node, all served by it. */
			struct kmem_node_stats after = node_stats((unsigned)node);
			assert_true(after.alloc_local >= before.alloc_local + 3);
			assert_int_equal(after.alloc_remote, before.alloc_remote);
			for (unsigned i = 0; i < 40; i++)
				kfree(o[i]);
			kfree(big);
			kpage_free(run, 5);
			kpage_free(longrun, 130);
			kmem_cache_free(k, c);
		}
		assert_null(kmalloc_node(64, 2));
		assert_null(kmalloc_node(64, -2));
		assert_null(kmalloc_node(64, KMEM_MAX_NODES));
		assert_null(kpage_alloc_node(1, 0, 0, 2));
		assert_null(kpage_alloc_node(1, 0, 0, -5));
		assert_null(kmem_cache_alloc_node(k, 2));
		/* A ceiling below the node's memory: that node has none that
		 * fits, the nearest other node serves (node 0 lies below 48
		 * MiB). */
		void *low = kpage_alloc_node(1, 0, 48 * MIB, 1);
		assert_non_null(low);
		assert_int_equal(kmem_virt_to_node(low), 0);
		kpage_free(low, 1);
	}
	fx_assert_no_faults();
	on_cpu(0);
	assert_int_equal(kmem_cache_destroy(k), 0);
}

/* ---------------------------------------------------------------------------
 * Fallback in distance order
 */

/* On CPU 0 (node 0; then node 2 at 20, node 1 at 30), single pages come
 * from node 0 until it is full, then node 2, then node 1, then NULL;
 * node 0's statistics count the remote ones. */
static void test_fallback_in_distance_order(void **state)
{
	(void)state;
	on_cpu(0);
	assert_int_equal(kmem_nr_nodes(), 3);
	uint64_t free0 = node_stats(0).pages_free, free1 = node_stats(1).pages_free,
	         free2 = node_stats(2).pages_free;
	uint64_t total = free0 + free1 + free2;
	void **pg = malloc((size_t)(total + 16) * sizeof(void *));
	assert_non_null(pg);
	struct kmem_node_stats b0 = node_stats(0);
	uint64_t got[3] = {0}, n = 0;
	int order[3] = {0, 2, 1}, at = 0;
	for (;;) {
		void *p = kpage_alloc(1, 0, 0);
		if (!p)
			break;
		pg[n++] = p;
		int node = kmem_virt_to_node(p);
		assert_true(node >= 0 && node < 3);
		/* Never back to a node left behind. */
		while (at < 3 && order[at] != node)
			at++;
		assert_true(at < 3);
		got[node]++;
		if (n == free0 + 1) {
			/* Node 0 is full now: a small object comes from node 2. */
			void *o = kmalloc(64);
			assert_non_null(o);
			assert_int_equal(kmem_virt_to_node(o), 2);
			kfree(o);
			kmem_reclaim(); /* its span back to node 2, in order */
		}
	}
	/* NULL only when every node is full. */
	assert_int_equal(got[0], free0);
	assert_int_equal(got[2], free2);
	assert_int_equal(got[1], free1);
	assert_int_equal(n, total);
	for (unsigned node = 0; node < 3; node++)
		assert_int_equal(node_stats(node).pages_free, 0);
	assert_null(kmalloc_node(64, 1));
	assert_null(kpage_alloc_node(1, 0, 0, 2));
	struct kmem_node_stats a0 = node_stats(0);
	assert_int_equal(a0.alloc_local - b0.alloc_local, free0);
	assert_true(a0.alloc_remote - b0.alloc_remote >= free1 + free2);
	assert_int_equal(node_stats(1).alloc_remote, 0);
	for (uint64_t i = 0; i < n; i++)
		kpage_free(pg[i], 1);
	free(pg);
	fx_faults_reset(); /* nothing expected; the teardown checks the rest */
	assert_nodes_add_up();
}

/* kmalloc_node on a full node falls back to the nearest other node for a
 * request of node 1 (2 at 20, then 0 at 30). */
static void test_node_request_falls_back(void **state)
{
	(void)state;
	on_cpu(0);
	uint64_t free1 = node_stats(1).pages_free;
	void **pg = malloc((size_t)free1 * sizeof(void *));
	assert_non_null(pg);
	for (uint64_t i = 0; i < free1; i++) {
		pg[i] = kpage_alloc_node(1, 0, 0, 1);
		assert_non_null(pg[i]);
		assert_int_equal(kmem_virt_to_node(pg[i]), 1);
	}
	assert_int_equal(node_stats(1).pages_free, 0);
	void *o = kmalloc_node(1000, 1), *r = kpage_alloc_node(2, 0, 0, 1);
	assert_non_null(o);
	assert_non_null(r);
	assert_int_equal(kmem_virt_to_node(o), 2);
	assert_int_equal(kmem_virt_to_node(r), 2);
	assert_true(node_stats(1).alloc_remote >= 2);
	kfree(o);
	kpage_free(r, 2);
	for (uint64_t i = 0; i < free1; i++)
		kpage_free(pg[i], 1);
	free(pg);
}

/* ---------------------------------------------------------------------------
 * A free goes back to the object's node
 */

static void test_remote_free_goes_home(void **state)
{
	(void)state;
	struct kmem_cache *k = kmem_cache_create("numa", 128, 0, NULL);
	assert_non_null(k);
	on_cpu(2); /* node 1 */
	void *p = kmalloc(64), *c = kmem_cache_alloc(k);
	void *q[8];
	for (unsigned i = 0; i < 8; i++)
		q[i] = kmalloc(64);
	assert_int_equal(kmem_virt_to_node(p), 1);
	assert_int_equal(kmem_virt_to_node(c), 1);

	on_cpu(0); /* node 0 */
	kfree(p);
	kmem_cache_free(k, c);
	kfree_bulk(8, q);
	fx_assert_no_faults();
	/* In their spans, in no magazine of this CPU. */
	assert_int_equal(state_of(p), OBJ_FREE);
	assert_int_equal(state_of(c), OBJ_FREE);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(state_of(q[i]), OBJ_FREE);
	/* This CPU's allocations are its node's, never those objects. */
	void *mine[300];
	for (unsigned i = 0; i < 300; i++) {
		mine[i] = kmalloc(64);
		assert_non_null(mine[i]);
		assert_ptr_not_equal(mine[i], p);
		assert_int_equal(kmem_virt_to_node(mine[i]), 0);
	}
	void *mc = kmem_cache_alloc(k);
	assert_ptr_not_equal(mc, c);
	assert_int_equal(kmem_virt_to_node(mc), 0);
	/* A local free still goes to the magazine (not OBJ_FREE). */
	kfree(mine[299]);
	assert_int_not_equal(state_of(mine[299]), OBJ_FREE);
	for (unsigned i = 0; i < 299; i++)
		kfree(mine[i]);
	kmem_cache_free(k, mc);

	/* Its own node reuses it. */
	on_cpu(3);
	bool found = false;
	void *back[600];
	unsigned nb = 0;
	while (nb < 600 && !found) {
		back[nb] = kmalloc(64);
		assert_int_equal(kmem_virt_to_node(back[nb]), 1);
		found = back[nb++] == p;
	}
	assert_true(found);
	for (unsigned i = 0; i < nb; i++)
		kfree(back[i]);

	/* An object kmalloc_node took from another node goes back too. */
	on_cpu(1);
	void *r = kmalloc_node(64, 1);
	assert_int_equal(kmem_virt_to_node(r), 1);
	kfree(r);
	assert_int_equal(state_of(r), OBJ_FREE);
	/* And kfree_nolock sends it home as well. */
	r = kmalloc_node(256, 1);
	kfree_nolock(r);
	assert_int_equal(state_of(r), OBJ_FREE);
	fx_assert_no_faults();
	on_cpu(0);
	assert_int_equal(kmem_cache_destroy(k), 0);
}

/* A double free of a remote object is still caught (before and after it
 * went home). */
static void test_remote_double_free_caught(void **state)
{
	(void)state;
	on_cpu(2);
	void *p = kmalloc(200);
	on_cpu(0);
	kfree(p);
	fx_assert_no_faults();
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	on_cpu(2);
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
}

/* ---------------------------------------------------------------------------
 * Every node's caches: check, statistics, reclaim (CPUs as threads)
 */

#define PER_CPU 400

struct work {
	void *obj[PER_CPU];
	struct kmem_cache *k;
	int node;
};

static struct work work[4];

/* k = 1: allocate (and check the node); k = 2: free the objects of CPU
 * (id + 2) % 4, on the other node.  (Step numbers start at 1: fx_cpu's
 * "done" starts at 0.) */
static void step(struct fx_cpu *c, int k)
{
	struct work *w = &work[c->id];
	if (k == 1) {
		for (unsigned i = 0; i < PER_CPU; i++) {
			w->obj[i] = i % 4 == 3 ? kmem_cache_alloc(w->k) : kmalloc(16 + (i * 37) % 3000);
			if (!w->obj[i] || kmem_virt_to_node(w->obj[i]) != w->node) {
				FX_CPU_FAIL(c, "cpu %u: object %u not on node %d", c->id, i, w->node);
				return;
			}
		}
		/* Some given back here: magazines and spans stay cached. */
		for (unsigned i = 0; i < PER_CPU; i += 2) {
			kfree(w->obj[i]);
			w->obj[i] = NULL;
		}
	} else {
		struct work *o = &work[(c->id + 2) % 4];
		for (unsigned i = 0; i < PER_CPU; i++)
			kfree(o->obj[i]);
	}
}

static void test_caches_on_every_node(void **state)
{
	(void)state;
	struct kmem_cache *k = kmem_cache_create("numa", 72, 8, NULL);
	assert_non_null(k);
	struct fx_cpu cpu[4];
	memset(cpu, 0, sizeof cpu);
	memset(work, 0, sizeof work);
	for (unsigned i = 1; i < 4; i++) {
		cpu[i].id = i;
		cpu[i].step = step;
		work[i].k = k;
		work[i].node = cpu_node2[i];
		fx_cpu_start(&cpu[i]);
	}
	work[0].k = k;
	work[0].node = 0;
	cpu[0].id = 0;
	for (unsigned i = 1; i < 4; i++)
		fx_cpu_run(&cpu[i], 1);
	step(&cpu[0], 1);
	assert_string_equal(cpu[0].error, "");
	/* All four CPUs hold magazines and spans of their nodes' centrals. */
	fx_assert_check();
	assert_nodes_add_up();
	struct kmem_class_stats cs;
	kmem_cache_get_stats(k, &cs);
	assert_int_equal(cs.objects_in_use, PER_CPU); /* i % 4 == 3 on 4 CPUs, all live */
	for (unsigned i = 1; i < 4; i++)
		fx_cpu_run(&cpu[i], 2);
	step(&cpu[0], 2);
	fx_assert_check();
	kmem_cache_get_stats(k, &cs);
	assert_int_equal(cs.objects_in_use, 0);
	/* Reclaim with every CPU still online takes all but their loaded
	 * magazines; once they are offline, every node's pages are back. */
	kmem_reclaim();
	fx_assert_check();
	for (unsigned i = 1; i < 4; i++)
		fx_cpu_stop(&cpu[i]);
	on_cpu(1);
	on_cpu(0);
	kmem_reclaim();
	struct kmem_stats st = fx_stats();
	assert_int_equal(st.pages_free + st.pages_metadata, st.pages_managed);
	/* Node 0's spans had their metadata on node 0: its runs wait for a
	 * grace period, then every page of the node is free. */
	assert_int_equal(node_stats(0).pages_free + node_stats(0).pages_metadata,
	                 node_stats(0).pages_managed);
	assert_true(node_stats(0).pages_metadata > 0);
	kmem_grace_period_done(kmem_grace_period_start());
	kmem_reclaim();
	assert_int_equal(node_stats(0).pages_metadata, 0);
	assert_int_equal(node_stats(0).pages_free, node_stats(0).pages_managed);
	assert_int_equal(kmem_cache_destroy(k), 0);
	assert_nodes_add_up();
}

/* ---------------------------------------------------------------------------
 * Metadata of a node lives on that node (fixalloc.c)
 */

/* The node of a metadata block: kmem_virt_to_node's for a pool page (a
 * run of metadata), else the block is in the metadata region (outside the
 * pool) and its node is the region's (the range holding it). */
static int meta_node_of(const void *p)
{
	int n = kmem_virt_to_node(p);
	if (n >= 0)
		return n;
	assert_true(in_metadata_region((uintptr_t)p - mheap_.offset));
	return pfn_node(virt_to_pfn((uintptr_t)p));
}

/* p's span (if it has one: a short page run has none) and the span's
 * descriptor, metadata block and debug records are on `node`. */
static void assert_meta_on(const void *p, int node)
{
	assert_int_equal(kmem_virt_to_node(p), node);
	struct mspan *s = span_of_ptr(p);
	if (!s)
		return;
	assert_int_equal(s->node, node);
	assert_int_equal(meta_node_of(s), node);
	if (s->alloc_bits)
		assert_int_equal(meta_node_of((const void *)s->alloc_bits), node);
	if (s->dbg)
		assert_int_equal(meta_node_of(s->dbg), node);
}

static void assert_mags_on(const struct magazine *m, int node)
{
	for (; m; m = m->next)
		assert_int_equal(meta_node_of(m), node);
}

static uint64_t meta_pages_sum(void)
{
	uint64_t n = 0;
	for (unsigned k = 0; k < kmem_nr_nodes(); k++)
		n += node_stats(k).pages_metadata;
	return n;
}

#define META_OBJS 300
static const size_t meta_sizes[] = {16, 96, 256, 1024, 3000};
#define META_NS (sizeof meta_sizes / sizeof meta_sizes[0])

static void test_metadata_on_its_node(void **state)
{
	(void)state;
	size_t fresh_free = kmem_free_pages();
	uint64_t fresh_meta = fx_stats().pages_metadata, fresh_node_meta[2];
	for (unsigned k = 0; k < 2; k++)
		fresh_node_meta[k] = node_stats(k).pages_metadata;
	struct kmem_cache *kc[2] = {kmem_cache_create("meta72", 72, 8, NULL),
	                            kmem_cache_create("meta520", 520, 0, ctor)};
	assert_non_null(kc[0]);
	assert_non_null(kc[1]);
	static void *obj[4][META_NS + 2][META_OBJS];
	static void *runs[4][3];
	for (unsigned cpu = 0; cpu < 4; cpu++) {
		on_cpu(cpu);
		int node = cpu_node2[cpu];
		for (unsigned i = 0; i < META_OBJS; i++) {
			for (unsigned c = 0; c < META_NS; c++)
				assert_non_null(obj[cpu][c][i] = kmalloc(meta_sizes[c]));
			for (unsigned c = 0; c < 2; c++)
				assert_non_null(obj[cpu][META_NS + c][i] = kmem_cache_alloc(kc[c]));
		}
		assert_non_null(runs[cpu][0] = kpage_alloc(3, 0, 0));
		assert_non_null(runs[cpu][1] = kpage_alloc(200, 0, 0));
		assert_non_null(runs[cpu][2] = kmalloc(100 * 1024));
		for (unsigned c = 0; c < META_NS + 2; c++)
			for (unsigned i = 0; i < META_OBJS; i++)
				assert_meta_on(obj[cpu][c][i], node);
		for (unsigned r = 0; r < 3; r++)
			assert_meta_on(runs[cpu][r], node);
		/* This CPU's magazines are its node's. */
		struct mcache *mc = mcache_of(cpu);
		for (unsigned c = 0; c < KMEM_NUM_CLASSES; c++) {
			assert_mags_on(mc->cls[c].loaded, node);
			if (mc->cls[c].loaded)
				assert_null(mc->cls[c].loaded->next);
			struct magazine *prev = atomic_load(&mc->cls[c].prev);
			if (prev)
				assert_int_equal(meta_node_of(prev), node);
		}
	}
	for (unsigned n = 0; n < 2; n++)
		for (unsigned c = 0; c < KMEM_NUM_CLASSES; c++) {
			assert_mags_on(class_central(n, c)->depot.full, (int)n);
			assert_mags_on(class_central(n, c)->depot.empty, (int)n);
		}
	/* Node 0's region is used up: its spans' metadata took runs of its
	 * own pages; the nodes' counts add up to the heap's growth. */
	assert_true(node_stats(0).pages_metadata > fresh_node_meta[0]);
	assert_int_equal(meta_pages_sum() - fresh_node_meta[0] - fresh_node_meta[1],
	                 fx_stats().pages_metadata - fresh_meta);
	fx_assert_check();
	assert_nodes_add_up();
	/* Freed, on a CPU of the other node for half of them. */
	for (unsigned cpu = 0; cpu < 4; cpu++) {
		on_cpu(cpu < 2 ? cpu + 2 : cpu - 2);
		for (unsigned c = 0; c < META_NS + 2; c++)
			for (unsigned i = 0; i < META_OBJS; i++)
				kfree(obj[cpu][c][i]);
		kpage_free(runs[cpu][0], 3);
		kpage_free(runs[cpu][1], 200);
		kfree(runs[cpu][2]);
	}
	on_cpu(1); /* CPUs 2, 3 went offline: every CPU's caches flushed */
	on_cpu(0);
	assert_int_equal(kmem_cache_destroy(kc[0]), 0);
	assert_int_equal(kmem_cache_destroy(kc[1]), 0);
	kmem_reclaim();
	kmem_grace_period_done(kmem_grace_period_start());
	/* Every run, on both nodes, went back. */
	assert_int_equal(kmem_free_pages(), fresh_free);
	assert_int_equal(fx_stats().pages_metadata, fresh_meta);
	for (unsigned k = 0; k < 2; k++)
		assert_int_equal(node_stats(k).pages_metadata, fresh_node_meta[k]);
	assert_int_equal(node_stats(0).pages_free, node_stats(0).pages_managed);
	fx_assert_check();
	assert_nodes_add_up();
}

/* What kmem_init makes lives on its node too: each node with memory has
 * its own metadata region inside its memory, holding the node's
 * mcentrals, its CPUs' mcaches and the arenas whose lowest pages are the
 * node's. */
static void assert_init_metadata_on_nodes(unsigned nodes, const uint8_t *cpu_node, unsigned cpus)
{
	struct kmem_region reg[KMEM_MAX_NODES];
	assert_int_equal(kmem_metadata_regions(reg, KMEM_MAX_NODES), nodes);
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms); /* CPU 0's node's */
	assert_int_equal(mb, reg[cpu_node[0]].base);
	for (unsigned n = 0; n < nodes; n++) {
		assert_int_equal(reg[n].node, n);
		assert_int_equal(reg[n].type, KMEM_REGION_RESERVED);
		assert_int_equal(pfn_node(reg[n].base >> KMEM_PAGE_SHIFT), (int)n);
		assert_int_equal(pfn_node((reg[n].base + reg[n].length - 1) >> KMEM_PAGE_SHIFT), (int)n);
		assert_int_equal(node_stats(n).metadata_bytes, reg[n].length);
		for (unsigned c = 1; c < KMEM_NUM_CLASSES; c++)
			assert_int_equal(meta_node_of(class_central(n, c)), (int)n);
		assert_int_equal(meta_node_of(mheap_.heap[n]), (int)n);
		assert_int_equal(mheap_.heap[n]->node, n);
	}
	for (unsigned cpu = 0; cpu < cpus; cpu++)
		assert_int_equal(meta_node_of(mcache_of(cpu)), cpu_node[cpu]);
	/* Every arena that has its own metadata (not the shared image) is on
	 * the node of its lowest managed page. */
	unsigned arenas = 0;
	for (uint64_t pfn = 1; pfn < (256 * MIB) >> KMEM_PAGE_SHIFT; pfn++) {
		struct heap_arena *a = arena_of_pfn(pfn);
		if (!a || a == &arena_free_image || !pfn_is_managed(pfn))
			continue;
		assert_int_equal(meta_node_of(a), pfn_node(pfn));
		/* and belongs to that node's page heap */
		assert_int_equal(arena_owner(pfn), pfn_node(pfn));
		arenas++;
		pfn = (pfn | (ARENA_PAGES - 1)); /* next arena */
	}
	assert_true(arenas >= 2);
}

static void test_init_metadata_on_its_node(void **state)
{
	(void)state;
	assert_init_metadata_on_nodes(2, cpu_node2, 4);
	/* The regions are not the pool's: kfree of a pointer into one is
	 * reported as metadata. */
	struct kmem_region reg[2];
	kmem_metadata_regions(reg, 2);
	for (unsigned n = 0; n < 2; n++) {
		void *m = fx_virt(reg[n].base + reg[n].length / 2);
		kfree(m);
		fx_expect_fault_at(KMEM_FAULT_METADATA, m);
	}
	/* Three nodes, nodes 1 and 2 in one arena: that arena is node 1's
	 * (its lowest pages), node 2's mcentrals and CPU are in its own
	 * region. */
	fx_teardown_all_back(NULL);
	setup3(NULL);
	assert_init_metadata_on_nodes(3, cpu_node3, 3);
	fx_assert_check();
}

/* Each node has its own page heap: with node 0's heap.lock held (as a
 * CPU of node 0 in the middle of taking pages would hold it), a CPU of
 * node 1 takes and gives back page runs, large objects, new spans and
 * their metadata without waiting for it.  With one lock for both nodes
 * the thread would wait until the main thread gave up and let go. */
static _Atomic int indep_done, indep_bad;

static void *indep_main(void *arg)
{
	(void)arg;
	if (host_cpu_claim(2) != 2) {
		atomic_store(&indep_bad, 1000);
		atomic_store(&indep_done, 1);
		return NULL;
	}
	static void *obj[600];
	for (unsigned round = 0; round < 20; round++) {
		void *r = kpage_alloc(3, 0, 0), *l = kmalloc(100 * 1024);
		for (unsigned i = 0; i < 600; i++) /* new spans of 3 classes */
			obj[i] = kmalloc(1000 + 1000 * (i % 3));
		if (!r || !l || kmem_virt_to_node(r) != 1 || kmem_virt_to_node(l) != 1)
			atomic_fetch_add(&indep_bad, 1);
		for (unsigned i = 0; i < 600; i++) {
			if (!obj[i] || kmem_virt_to_node(obj[i]) != 1)
				atomic_fetch_add(&indep_bad, 1);
			kfree(obj[i]);
		}
		kpage_free(r, 3);
		kfree(l);
	}
	host_cpu_release(); /* its caches go back: spans released, no wait */
	atomic_store(&indep_done, 1);
	return NULL;
}

static void test_node_heaps_independent(void **state)
{
	(void)state;
	atomic_store(&indep_done, 0);
	atomic_store(&indep_bad, 0);
	uint64_t spans0 = node_stats(1).alloc_local;
	struct pageheap *h0 = mheap_.heap[0];
	pthread_t th;
	unsigned long f = lock_irqsave(&h0->lock);
	assert_int_equal(pthread_create(&th, NULL, indep_main, NULL), 0);
	for (unsigned ms = 0; ms < 10000 && !atomic_load(&indep_done); ms++)
		usleep(1000);
	int done = atomic_load(&indep_done);
	unlock_irqrestore(&h0->lock, f);
	pthread_join(th, NULL);
	assert_true(done);
	assert_int_equal(atomic_load(&indep_bad), 0);
	/* It did take pages from node 1's heap meanwhile. */
	assert_true(node_stats(1).alloc_local >= spans0 + 40);
	fx_assert_check();
	assert_nodes_add_up();
}

/* A node too small for a region of its own is served by the nearest
 * node that has one; its pages are still its own. */
static void test_small_node_served_by_nearest(void **state)
{
	(void)state;
	fx_reserve(256 * MIB);
	const struct kmem_region map[] = {
		{16 * MIB, 32 * MIB, KMEM_REGION_USABLE, 0},
		{64 * MIB, 256 * 1024, KMEM_REGION_USABLE, 1},
	};
	assert_int_equal(init_numa(map, 2, cpu_node2, 4, NULL), 0);
	struct kmem_region reg[KMEM_MAX_NODES];
	assert_int_equal(kmem_metadata_regions(reg, KMEM_MAX_NODES), 1);
	assert_int_equal(reg[0].node, 0);
	assert_int_equal(node_stats(1).metadata_bytes, 0);
	assert_int_equal(node_stats(1).pages_managed, 256 * 1024 / KMEM_PAGE_SIZE);
	assert_int_equal(meta_node_of(class_central(1, 1)), 0);
	assert_int_equal(meta_node_of(mcache_of(3)), 0);
	void *r = kpage_alloc_node(4, 0, 0, 1);
	assert_non_null(r);
	assert_int_equal(kmem_virt_to_node(r), 1);
	kpage_free(r, 4);
	fx_assert_check();
	fx_assert_all_back();
}

/* pages_find_top_in_locked (a node's runs come from the top of its
 * ranges) against a scan of the bitmap, on a fragmented heap, for
 * windows that cut nodes of every level and cross the arena boundary
 * (into the other node's page heap, whose pages it must not see). */
static uint64_t top_in_by_scan(const struct pageheap *h, uint64_t n, uint64_t lo, uint64_t hi)
{
	uint64_t run = 0;
	for (uint64_t p = hi; p-- > lo;) {
		run = arena_owner(p) == (int)h->node && pages_all_free_locked(p, 1) ? run + 1 : 0;
		if (run == n)
			return p;
	}
	return PAGE_NONE;
}

static void test_find_top_in_window(void **state)
{
	(void)state;
	static void *r[600];
	static size_t len[600];
	srand(15);
	for (unsigned i = 0; i < 600; i++) {
		len[i] = 1 + (size_t)(rand() % 9);
		assert_non_null(r[i] = kpage_alloc_node(len[i], 0, 0, (int)(i % 2)));
	}
	for (unsigned i = 0; i < 600; i += 2)
		kpage_free(r[i], len[i]);
	uint64_t base[2] = {virt_to_pfn((uintptr_t)r[0]), virt_to_pfn((uintptr_t)r[1])};
	/* Compared under the lock, asserted after it (a failed assert must
	 * not leave it held). */
	unsigned found = 0, wrong = 0;
	uint64_t got = 0, want = 0;
	unsigned long f = heaps_lock_all();
	for (unsigned t = 0; t < 400; t++) {
		uint64_t b = base[t % 2] - 2000 + (uint64_t)(rand() % 10000);
		uint64_t lo = b - (uint64_t)(rand() % 3000), hi = b + (uint64_t)(rand() % 3000);
		uint64_t n = 1 + (uint64_t)(rand() % (t % 3 ? 12 : 200));
		struct pageheap *h = mheap_.heap[t % 2];
		uint64_t g = pages_find_top_in_locked(h, n, lo, hi), w = top_in_by_scan(h, n, lo, hi);
		found += w != PAGE_NONE;
		if (g != w && !wrong++) {
			got = g;
			want = w;
		}
	}
	/* The whole pool as the window is pages_find_top_locked. */
	uint64_t whole = pages_find_top_in_locked(mheap_.heap[1], 5, 0, UINT64_MAX);
	uint64_t top = pages_find_top_locked(mheap_.heap[1], 5);
	uint64_t empty = pages_find_top_in_locked(mheap_.heap[0], 5, 7, 7);
	heaps_unlock_all(f);
	assert_int_equal(got, want);
	assert_int_equal(wrong, 0);
	assert_true(found > 100 && found < 400); /* both outcomes were tried */
	assert_int_equal(whole, top);
	assert_int_equal(empty, PAGE_NONE);
	for (unsigned i = 1; i < 600; i += 2)
		kpage_free(r[i], len[i]);
}

/* All four CPUs at once: each allocates and hands its objects to the
 * others through a shared ring (most end on the other node), frees what
 * it takes, and checks every object's node and contents. */
#define RING 256
#define ROUNDS 20000

static struct {
	pthread_mutex_t m;
	void *obj[RING];
	uint64_t id[RING];
	size_t len[RING];
	unsigned head, n;
} ring = {.m = PTHREAD_MUTEX_INITIALIZER};

struct mix {
	unsigned cpu;
	unsigned long bad;
};

static void *mix_main(void *arg)
{
	struct mix *x = arg;
	if (host_cpu_claim((int)x->cpu) != (int)x->cpu) {
		x->bad++;
		return NULL;
	}
	int node = cpu_node2[x->cpu];
	uint64_t seed = x->cpu * 7919 + 1;
	for (unsigned r = 0; r < ROUNDS; r++) {
		seed = fx_mix64(seed);
		size_t len = 8 + seed % 2000;
		void *p = kmalloc(len);
		if (!p || kmem_virt_to_node(p) != node) {
			x->bad++;
			continue;
		}
		uint64_t id = seed;
		fx_fill(p, len, id);
		void *q = NULL;
		uint64_t qid = 0;
		size_t qlen = 0;
		pthread_mutex_lock(&ring.m);
		if (ring.n == RING) {
			unsigned i = ring.head;
			q = ring.obj[i];
			qid = ring.id[i];
			qlen = ring.len[i];
			ring.head = (i + 1) % RING;
			ring.n--;
		}
		unsigned w = (ring.head + ring.n) % RING;
		ring.obj[w] = p;
		ring.id[w] = id;
		ring.len[w] = len;
		ring.n++;
		pthread_mutex_unlock(&ring.m);
		if (q) {
			if (fx_check(q, qlen, qid) != (size_t)-1)
				x->bad++;
			kfree(q);
		}
	}
	host_cpu_release();
	return NULL;
}

static void test_cross_node_frees_concurrent(void **state)
{
	(void)state;
	pthread_t th[4];
	struct mix x[4];
	for (unsigned i = 0; i < 4; i++) {
		x[i] = (struct mix){.cpu = i};
		if (i)
			assert_int_equal(pthread_create(&th[i], NULL, mix_main, &x[i]), 0);
	}
	host_cpu_release(); /* the main thread runs as CPU 0 in mix_main */
	mix_main(&x[0]);
	for (unsigned i = 1; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(host_cpu_claim(0), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(x[i].bad, 0);
	for (unsigned i = 0; i < ring.n; i++) {
		unsigned j = (ring.head + i) % RING;
		assert_int_equal(fx_check(ring.obj[j], ring.len[j], ring.id[j]), (size_t)-1);
		kfree(ring.obj[j]);
	}
	ring.n = 0;
	fx_assert_no_faults();
	assert_nodes_add_up();
}

/* ---------------------------------------------------------------------------
 * Bad input
 */

static int expect_init(const struct kmem_region *r, size_t n, const uint8_t *cpu_node,
                       unsigned cpus, const uint8_t *dist)
{
	struct kmem_config cfg;
	fx_config(&cfg, r, n, cpus);
	cfg.cpu_node = cpu_node;
	cfg.node_distance = dist;
	assert_int_equal(kmem_metadata_size(&cfg), 0);
	return kmem_init(&cfg);
}

static void test_malformed_topology_rejected(void **state)
{
	(void)state;
	fx_reserve(256 * MIB);
	assert_int_equal(init_numa(map2, 2, cpu_node2, 4, NULL), 0);
	struct kmem_region bad_node[] = {
		{16 * MIB, 32 * MIB, KMEM_REGION_USABLE, 0},
		{64 * MIB, 32 * MIB, KMEM_REGION_USABLE, KMEM_MAX_NODES},
	};
	assert_int_equal(expect_init(bad_node, 2, NULL, 2, NULL), -KMEM_EINVAL);
	/* Refused before anything changed: the heap of setup is intact. */
	fx_assert_check();
	/* A reserved region's node is not looked at. */
	bad_node[1].type = KMEM_REGION_RESERVED;
	assert_int_equal(init_numa(bad_node, 2, NULL, 2, NULL), 0);
	assert_int_equal(kmem_nr_nodes(), 1);

	const uint8_t bad_cpu[] = {0, KMEM_MAX_NODES};
	assert_int_equal(expect_init(map2, 2, bad_cpu, 2, NULL), -KMEM_EINVAL);
	/* A distance table where a node is not nearest to itself. */
	const uint8_t bad_dist[] = {30, 20, 20, 10};
	assert_int_equal(expect_init(map2, 2, cpu_node2, 4, bad_dist), -KMEM_EINVAL);
	const uint8_t zero_dist[] = {0, 0, 0, 0};
	assert_int_equal(expect_init(map2, 2, cpu_node2, 4, zero_dist), -KMEM_EINVAL);
	/* Usable memory claimed by two nodes. */
	const struct kmem_region overlap[] = {
		{16 * MIB, 32 * MIB, KMEM_REGION_USABLE, 0},
		{40 * MIB, 32 * MIB, KMEM_REGION_USABLE, 1},
	};
	struct kmem_config cfg;
	fx_config(&cfg, overlap, 2, 2);
	assert_int_equal(kmem_init(&cfg), -KMEM_EINVAL);
	/* More node changes along the address space than the table holds. */
	struct kmem_region many[KMEM_MAX_NODE_RANGES + 1];
	for (unsigned i = 0; i <= KMEM_MAX_NODE_RANGES; i++)
		many[i] = (struct kmem_region){16 * MIB + i * MIB, MIB, KMEM_REGION_USABLE, i % 2};
	fx_config(&cfg, many, KMEM_MAX_NODE_RANGES + 1, 2);
	assert_int_equal(kmem_init(&cfg), -KMEM_EINVAL);
	/* Both refused before anything changed: the one-node heap is there. */
	assert_int_equal(kmem_nr_nodes(), 1);
	fx_assert_check();
	void *still = kmalloc(100);
	assert_non_null(still);
	kfree(still);
	fx_assert_check();
	/* As many as it holds is fine; each page on its region's node. */
	assert_int_equal(init_numa(many, KMEM_MAX_NODE_RANGES, NULL, 2, NULL), 0);
	for (unsigned i = 0; i + 1 < KMEM_MAX_NODE_RANGES; i++)
		assert_int_equal(kmem_virt_to_node(fx_virt(16 * MIB + i * MIB + 4096)), (int)(i % 2));
	assert_nodes_add_up();
	/* An unaligned boundary: the page both touch is the lower node's. */
	const struct kmem_region split[] = {
		{16 * MIB, 8 * MIB + 100, KMEM_REGION_USABLE, 0},
		{24 * MIB + 100, 8 * MIB, KMEM_REGION_USABLE, 1},
	};
	assert_int_equal(init_numa(split, 2, NULL, 2, NULL), 0);
	/* (Node 0's metadata region is carved from its top: that page.) */
	assert_int_equal(pfn_node((24 * MIB) >> KMEM_PAGE_SHIFT), 0);
	assert_true(in_metadata_region(24 * MIB));
	assert_int_equal(kmem_virt_to_node(fx_virt(24 * MIB + 4096)), 1);
	assert_nodes_add_up();
	fx_assert_check();

	/* A hole inside node 0's range: node 0 memory may be hot-added
	 * there, another node's may not. */
	const struct kmem_region gap[] = {
		{16 * MIB, 8 * MIB, KMEM_REGION_USABLE, 0},
		{32 * MIB, 8 * MIB, KMEM_REGION_USABLE, 0},
		{64 * MIB, 8 * MIB, KMEM_REGION_USABLE, 1},
	};
	assert_int_equal(init_numa(gap, 3, NULL, 2, NULL), 0);
	fx_usable(26 * MIB, 2 * MIB);
	struct kmem_stats before = fx_stats();
	struct kmem_region in_gap = {26 * MIB, 2 * MIB, KMEM_REGION_USABLE, 1};
	assert_int_equal(kmem_hot_add(&in_gap), -KMEM_EINVAL);
	struct kmem_stats same = fx_stats();
	assert_int_equal(same.pages_managed, before.pages_managed);
	assert_int_equal(kmem_virt_to_node(fx_virt(27 * MIB)), -1);
	in_gap.node = 0;
	assert_true(kmem_hot_add(&in_gap) > 0);
	assert_int_equal(kmem_virt_to_node(fx_virt(27 * MIB)), 0);
	assert_nodes_add_up();
	fx_assert_check();
}

static void test_hot_add_nodes(void **state)
{
	(void)state;
	struct kmem_stats before = fx_stats();
	/* A node the heap was not built with, or out of range: refused. */
	struct kmem_region r = {128 * MIB, 16 * MIB, KMEM_REGION_USABLE, 2};
	fx_usable(128 * MIB, 16 * MIB);
	assert_int_equal(kmem_hot_add(&r), -KMEM_EINVAL);
	r.node = KMEM_MAX_NODES + 7;
	assert_int_equal(kmem_hot_add(&r), -KMEM_EINVAL);
	struct kmem_stats same = fx_stats();
	assert_int_equal(same.pages_managed, before.pages_managed);
	assert_int_equal(same.pages_free, before.pages_free);
	fx_assert_check();
	assert_int_equal(kmem_virt_to_node(fx_virt(130 * MIB)), -1);

	uint64_t m1 = node_stats(1).pages_managed;
	r.node = 1;
	long added = kmem_hot_add(&r);
	assert_true(added > 0);
	assert_int_equal(node_stats(1).pages_managed, m1 + 16 * MIB / KMEM_PAGE_SIZE);
	assert_int_equal(kmem_virt_to_node(fx_virt(144 * MIB - 1)), 1);
	assert_nodes_add_up();
	/* Node 1's CPUs use it once node 1's first range is full. */
	on_cpu(2);
	uint64_t n = 0, cap = node_stats(1).pages_free;
	void **pg = malloc((size_t)cap * sizeof(void *));
	assert_non_null(pg);
	bool high = false;
	while (n < cap) {
		pg[n] = kpage_alloc(1, 0, 0);
		assert_non_null(pg[n]);
		assert_int_equal(kmem_virt_to_node(pg[n]), 1);
		high |= fx_phys(pg[n]) >= 128 * MIB;
		n++;
	}
	assert_true(high);
	assert_int_equal(node_stats(1).alloc_remote, 0);
	void *next = kpage_alloc(1, 0, 0); /* node 1 is full: node 0's */
	assert_int_equal(kmem_virt_to_node(next), 0);
	assert_int_equal(node_stats(1).alloc_remote, 1);
	kpage_free(next, 1);
	for (uint64_t i = 0; i < n; i++)
		kpage_free(pg[i], 1);
	free(pg);
}

/* A node with CPUs and no memory: its CPUs' requests are served by the
 * others, and counted as remote. */
static void test_memoryless_node(void **state)
{
	(void)state;
	fx_reserve(256 * MIB);
	const struct kmem_region only0[] = {{16 * MIB, 32 * MIB, KMEM_REGION_USABLE, 0}};
	const uint8_t cpus[] = {0, 1};
	assert_int_equal(init_numa(only0, 1, cpus, 2, NULL), 0);
	assert_int_equal(kmem_nr_nodes(), 2);
	on_cpu(1);
	void *p = kmalloc(64), *r = kpage_alloc(1, 0, 0), *q = kmalloc_node(300, 1);
	assert_non_null(p);
	assert_non_null(r);
	assert_non_null(q);
	assert_int_equal(kmem_virt_to_node(p), 0);
	assert_int_equal(kmem_virt_to_node(r), 0);
	assert_int_equal(kmem_virt_to_node(q), 0);
	/* Node 1's spans have their metadata on the nearest node with memory. */
	struct mspan *ps = span_of_ptr(p);
	assert_int_equal(ps->node, 1);
	assert_int_equal(meta_node_of(ps), 0);
	assert_int_equal(meta_node_of((const void *)ps->alloc_bits), 0);
	assert_int_equal(node_stats(1).pages_metadata, 0);
	/* And so have its mcentrals and its CPU's mcache, made at init: the
	 * one region is node 0's. */
	struct kmem_region reg[KMEM_MAX_NODES];
	assert_int_equal(kmem_metadata_regions(reg, KMEM_MAX_NODES), 1);
	assert_int_equal(reg[0].node, 0);
	assert_int_equal(node_stats(1).metadata_bytes, 0);
	assert_int_equal(meta_node_of(class_central(1, 1)), 0);
	assert_int_equal(meta_node_of(mcache_of(1)), 0);
	struct kmem_node_stats n1 = node_stats(1);
	assert_int_equal(n1.pages_managed, 0);
	assert_int_equal(n1.cpus, 1);
	assert_int_equal(n1.alloc_local, 0);
	assert_true(n1.alloc_remote >= 3);
	/* Its objects belong to node 1's mcentrals: freed on CPU 0, they go
	 * back to their spans. */
	on_cpu(0);
	kfree(p);
	assert_int_equal(state_of(p), OBJ_FREE);
	kfree(q);
	kpage_free(r, 1);
	fx_assert_no_faults();
	assert_nodes_add_up();
	fx_assert_all_back();
}

/* ---------------------------------------------------------------------------
 * One node: as before
 */

static const struct fx_heap heap1 = {64, 2};

static void test_single_node(void **state)
{
	(void)state;
	assert_int_equal(kmem_nr_nodes(), 1);
	void *p = kmalloc(64), *r = kpage_alloc(2, 0, 0);
	assert_int_equal(kmem_virt_to_node(p), 0);
	assert_int_equal(kmem_virt_to_node(r), 0);
	void *q = kmalloc_node(64, 0);
	assert_non_null(q);
	assert_null(kmalloc_node(64, 1));
	assert_null(kpage_alloc_node(1, 0, 0, 1));
	struct kmem_node_stats ns = node_stats(0);
	struct kmem_stats st = fx_stats();
	assert_int_equal(ns.pages_managed, st.pages_managed);
	assert_int_equal(ns.pages_free, st.pages_free);
	assert_int_equal(ns.cpus, 2);
	assert_int_equal(ns.alloc_remote, 0);
	assert_true(ns.alloc_local >= 2);
	assert_int_equal(kmem_get_node_stats(1, &ns), -KMEM_EINVAL);
	/* A free on the other CPU of the one node goes to its magazine. */
	on_cpu(1);
	kfree(p);
	assert_int_not_equal(state_of(p), OBJ_FREE);
	assert_int_not_equal(state_of(p), OBJ_CLIENT);
	kfree(q);
	kpage_free(r, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_topology, setup2, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_cpu_allocates_from_its_node, setup2,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_node_calls_honour_node, setup2,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_fallback_in_distance_order, setup3,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_node_request_falls_back, setup3,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_remote_free_goes_home, setup2,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_remote_double_free_caught, setup2,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_caches_on_every_node, setup2,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_metadata_on_its_node, setup2, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_init_metadata_on_its_node, setup2,
		                                fx_teardown_all_back),
		cmocka_unit_test(test_small_node_served_by_nearest),
		cmocka_unit_test_setup_teardown(test_node_heaps_independent, setup2,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_find_top_in_window, setup2, fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_cross_node_frees_concurrent, setup2,
		                                fx_teardown_all_back),
		cmocka_unit_test_setup_teardown(test_hot_add_nodes, setup2, fx_teardown_all_back),
		cmocka_unit_test(test_malformed_topology_rejected),
		cmocka_unit_test(test_memoryless_node),
		FX_TEST(test_single_node, &heap1, fx_teardown_all_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
