/*
 * tests/test_fdt.c - the device-tree reader (mm/fdt.c) on the host.
 *
 * Blobs are built here by a small writer (header, reservation block,
 * struct and strings blocks, as dtc lays them out), shaped like the trees
 * QEMU's virt machines pass: each test states the tree it builds.  The
 * reader (linked with the rest of mm/) is built with the
 * sanitizers: every malformed blob must give an error without a single
 * out-of-bounds read, and the last test feeds a parsed map to kmem_init
 * over the fixture's simulated memory, where a page handed out inside a
 * reserved range (the blob, the kernel image, /reserved-memory) would
 * fault when written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spanalloc/fdt.h"
#include "spanalloc/memmap.h"
#include "fixture.h"

/* ------------------------------------------------------------------------
 * A DTB writer
 */

#define TOK_BEGIN 1u
#define TOK_END_NODE 2u
#define TOK_PROP 3u
#define TOK_NOP 4u
#define TOK_END 9u

struct dtw {
	uint8_t st[16384];
	uint32_t stn;
	char str[4096];
	uint32_t strn;
	uint64_t rsv[8][2];
	unsigned nrsv;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void w_u32(struct dtw *w, uint32_t v)
{
	assert_true(w->stn + 4 <= sizeof w->st);
	put32(w->st + w->stn, v);
	w->stn += 4;
}

static void w_bytes(struct dtw *w, const void *p, uint32_t n)
{
	assert_true(w->stn + n + 3 <= sizeof w->st);
	if (n)
		memcpy(w->st + w->stn, p, n);
	w->stn += n;
	while (w->stn & 3)
		w->st[w->stn++] = 0;
}

static void w_begin(struct dtw *w, const char *name)
{
	w_u32(w, TOK_BEGIN);
	w_bytes(w, name, (uint32_t)strlen(name) + 1);
}

static void w_end(struct dtw *w)
{
	w_u32(w, TOK_END_NODE);
}

static uint32_t w_string(struct dtw *w, const char *name)
{
	for (uint32_t i = 0; i < w->strn; i += (uint32_t)strlen(w->str + i) + 1)
		if (strcmp(w->str + i, name) == 0)
			return i;
	uint32_t off = w->strn, n = (uint32_t)strlen(name) + 1;
	assert_true(off + n <= sizeof w->str);
	memcpy(w->str + off, name, n);
	w->strn += n;
	return off;
}

static void w_prop(struct dtw *w, const char *name, const void *val, uint32_t len)
{
	w_u32(w, TOK_PROP);
	w_u32(w, len);
	w_u32(w, w_string(w, name));
	w_bytes(w, val, len);
}

/* A property of n cells. */
static void w_cells(struct dtw *w, const char *name, unsigned n, ...)
{
	uint8_t v[64];
	va_list ap;
	assert_true(n * 4 <= sizeof v);
	va_start(ap, n);
	for (unsigned i = 0; i < n; i++)
		put32(v + 4 * i, va_arg(ap, uint32_t));
	va_end(ap);
	w_prop(w, name, v, 4 * n);
}

/* A string (or string list: "a\0b" with its length given by sizeof). */
#define w_str(w, name, s) w_prop(w, name, s, (uint32_t)sizeof(s))

static void w_rsv(struct dtw *w, uint64_t base, uint64_t size)
{
	assert_true(w->nrsv < 8);
	w->rsv[w->nrsv][0] = base;
	w->rsv[w->nrsv][1] = size;
	w->nrsv++;
}

/* Lays the blob out into a malloc'd buffer of exactly totalsize bytes (so
 * that ASan sees any read past it). */
static uint8_t *w_finish(struct dtw *w, uint32_t *total)
{
	w_u32(w, TOK_END);
	uint32_t rsv_off = 40, st_off = rsv_off + 16 * (w->nrsv + 1);
	uint32_t str_off = st_off + w->stn, size = str_off + w->strn;
	uint8_t *b = calloc(1, size);
	assert_non_null(b);
	put32(b, FDT_MAGIC);
	put32(b + 4, size);
	put32(b + 8, st_off);
	put32(b + 12, str_off);
	put32(b + 16, rsv_off);
	put32(b + 20, 17);
	put32(b + 24, 16);
	put32(b + 28, 0);
	put32(b + 32, w->strn);
	put32(b + 36, w->stn);
	for (unsigned i = 0; i < w->nrsv; i++) {
		put32(b + rsv_off + 16 * i, (uint32_t)(w->rsv[i][0] >> 32));
		put32(b + rsv_off + 16 * i + 4, (uint32_t)w->rsv[i][0]);
		put32(b + rsv_off + 16 * i + 8, (uint32_t)(w->rsv[i][1] >> 32));
		put32(b + rsv_off + 16 * i + 12, (uint32_t)w->rsv[i][1]);
	}
	memcpy(b + st_off, w->st, w->stn);
	memcpy(b + str_off, w->str, w->strn);
	*total = size;
	return b;
}

static struct dtw *w_new(void)
{
	struct dtw *w = calloc(1, sizeof *w);
	assert_non_null(w);
	return w;
}

/* Opens the root node with its #address-cells and #size-cells. */
static void w_root(struct dtw *w, uint32_t acells, uint32_t scells)
{
	w_begin(w, "");
	w_cells(w, "#address-cells", 1, acells);
	w_cells(w, "#size-cells", 1, scells);
}

#define GIB (1ull << 30)
#define MIB (1ull << 20)
#define KIB (1ull << 10)

/* The tree QEMU's aarch64 virt machine passes (-m 512M, -smp 2), cut
 * down: 2/2 cells, /psci, /cpus, one /memory node, a GIC and a timer. */
static uint8_t *qemu_arm_virt(uint32_t *total)
{
	struct dtw *w = w_new();
	w_root(w, 2, 2);
	w_str(w, "compatible", "linux,dummy-virt");
	w_begin(w, "psci");
	w_str(w, "compatible", "arm,psci-1.0\0arm,psci-0.2\0arm,psci");
	w_str(w, "method", "hvc");
	w_end(w);
	w_begin(w, "memory@40000000");
	w_cells(w, "reg", 4, 0, 0x40000000, 0, 0x20000000);
	w_str(w, "device_type", "memory");
	w_end(w);
	w_begin(w, "intc@8000000");
	w_cells(w, "reg", 8, 0, 0x08000000, 0, 0x10000, 0, 0x08010000, 0, 0x10000);
	w_str(w, "compatible", "arm,cortex-a15-gic");
	w_end(w);
	w_begin(w, "cpus");
	w_cells(w, "#address-cells", 1, 1);
	w_cells(w, "#size-cells", 1, 0);
	for (unsigned i = 0; i < 2; i++) {
		char name[16];
		snprintf(name, sizeof name, "cpu@%u", i);
		w_begin(w, name);
		w_cells(w, "reg", 1, i);
		w_str(w, "device_type", "cpu");
		w_str(w, "compatible", "arm,cortex-a53");
		w_end(w);
	}
	w_begin(w, "cpu-map");
	w_end(w);
	w_end(w);
	w_begin(w, "timer");
	w_cells(w, "clock-frequency", 1, 62500000);
	w_end(w);
	w_end(w);
	uint8_t *b = w_finish(w, total);
	free(w);
	return b;
}

static void assert_region(const struct kmem_region *r, uint64_t base, uint64_t len, uint32_t type)
{
	if (r->base != base || r->length != len || r->type != type)
		fail_msg("region 0x%llx+0x%llx type %u, want 0x%llx+0x%llx type %u",
		         (unsigned long long)r->base, (unsigned long long)r->length, r->type,
		         (unsigned long long)base, (unsigned long long)len, type);
}

/* ------------------------------------------------------------------------
 * The memory map
 */

/* QEMU arm virt: one usable range, then the blob and the kernel image. */
static void test_qemu_arm_virt_map(void **state)
{
	(void)state;
	uint32_t total;
	uint8_t *b = qemu_arm_virt(&total);
	assert_int_equal(fdt_check(b, total), total);
	struct kmem_region keep = {0x40200000, 2 * MIB, KMEM_REGION_USABLE, 0}, r[8];
	struct fdt_memmap_info info;
	long n = fdt_memory_map(b, 0x40000000, &keep, 1, r, 8, &info);
	assert_int_equal(n, 3);
	assert_region(&r[0], 0x40000000, 512 * MIB, KMEM_REGION_USABLE);
	assert_region(&r[1], 0x40000000, total, KMEM_REGION_RESERVED);
	assert_region(&r[2], 0x40200000, 2 * MIB, KMEM_REGION_RESERVED); /* keep-outs are reserved */
	assert_int_equal(info.totalsize, total);
	assert_int_equal(info.memory_nodes, 1);
	assert_int_equal(info.memory_ranges, 1);
	assert_int_equal(info.reserved_nodes, 0);
	assert_int_equal(info.rsvmap_entries, 0);
	assert_true(info.usable_bytes == 512 * MIB);
	/* info is optional */
	assert_int_equal(fdt_memory_map(b, 0x40000000, NULL, 0, r, 8, NULL), 2);
	free(b);
}

/* 1/1 cells (a 32-bit board), two /memory nodes, one of them with two
 * ranges, a node matched by device_type alone, zero-sized ranges left out,
 * and nodes that are not memory: one deeper down, one merely named alike,
 * one disabled. */
static void test_cells_and_nodes(void **state)
{
	(void)state;
	struct dtw *w = w_new();
	w_root(w, 1, 1);
	w_begin(w, "memory@0");
	w_cells(w, "reg", 6, 0x0, 0x100000, 0x200000, 0, 0x400000, 0x80000);
	w_end(w);
	w_begin(w, "memory");
	w_cells(w, "reg", 2, 0x10000000, 0x1000000);
	w_end(w);
	w_begin(w, "ram@20000000");
	w_str(w, "device_type", "memory");
	w_cells(w, "reg", 2, 0x20000000, 0x4000);
	w_end(w);
	w_begin(w, "memory@30000000");
	w_str(w, "status", "disabled");
	w_cells(w, "reg", 2, 0x30000000, 0x1000);
	w_end(w);
	w_begin(w, "memoryx@40000000");
	w_cells(w, "reg", 2, 0x40000000, 0x1000);
	w_end(w);
	w_begin(w, "soc");
	w_begin(w, "memory@50000000");
	w_cells(w, "reg", 2, 0x50000000, 0x1000);
	w_end(w);
	w_end(w);
	w_end(w);
	uint32_t total;
	uint8_t *b = w_finish(w, &total);
	struct kmem_region r[8];
	struct fdt_memmap_info info;
	long n = fdt_memory_map(b, 0x8000000, NULL, 0, r, 8, &info);
	assert_int_equal(n, 5);
	assert_region(&r[0], 0x0, 0x100000, KMEM_REGION_USABLE);
	assert_region(&r[1], 0x400000, 0x80000, KMEM_REGION_USABLE);
	assert_region(&r[2], 0x10000000, 0x1000000, KMEM_REGION_USABLE);
	assert_region(&r[3], 0x20000000, 0x4000, KMEM_REGION_USABLE);
	assert_region(&r[4], 0x8000000, total, KMEM_REGION_RESERVED);
	assert_int_equal(info.memory_nodes, 3);
	assert_int_equal(info.memory_ranges, 4);
	assert_true(info.usable_bytes == 0x100000 + 0x80000 + 0x1000000 + 0x4000);
	free(b);
	free(w);
}

/* NUMA (devicetree bindings, numa.txt): each /memory node's numa-node-id
 * tags its ranges.  Node 1's range starts exactly where node 0's ends, so
 * a merge of contiguous usable ranges would lose the boundary; a second
 * node-0 range contiguous with the first still merges; an id past
 * KMEM_MAX_NODES is folded into node 0 and counted. */
static void test_numa_node_ids(void **state)
{
	(void)state;
	struct dtw *w = w_new();
	w_root(w, 2, 2);
	w_begin(w, "memory@40000000");
	w_cells(w, "numa-node-id", 1, 0);
	w_cells(w, "reg", 4, 0, 0x40000000, 0, 0x10000000);
	w_end(w);
	w_begin(w, "memory@50000000");
	w_cells(w, "numa-node-id", 1, 1);
	w_cells(w, "reg", 8, 0, 0x50000000, 0, 0x10000000, 0, 0x60000000, 0, 0x1000000);
	w_end(w);
	w_begin(w, "memory@61000000");
	w_cells(w, "reg", 4, 0, 0x61000000, 0, 0x1000000); /* no id: node 0 */
	w_end(w);
	w_begin(w, "memory@80000000");
	w_cells(w, "numa-node-id", 1, KMEM_MAX_NODES + 5);
	w_cells(w, "reg", 4, 0, 0x80000000, 0, 0x1000000);
	w_end(w);
	w_end(w);
	uint32_t total;
	uint8_t *b = w_finish(w, &total);
	struct kmem_region r[8];
	struct fdt_memmap_info info;
	long n = fdt_memory_map(b, 0x8000000, NULL, 0, r, 8, &info);
	assert_int_equal(n, 6);
	assert_region(&r[0], 0x40000000, 0x10000000, KMEM_REGION_USABLE);
	assert_int_equal(r[0].node, 0);
	assert_region(&r[1], 0x50000000, 0x10000000, KMEM_REGION_USABLE);
	assert_int_equal(r[1].node, 1);
	assert_region(&r[2], 0x60000000, 0x1000000, KMEM_REGION_USABLE);
	assert_int_equal(r[2].node, 1);
	assert_region(&r[3], 0x61000000, 0x1000000, KMEM_REGION_USABLE);
	assert_int_equal(r[3].node, 0);
	assert_region(&r[4], 0x80000000, 0x1000000, KMEM_REGION_USABLE);
	assert_int_equal(r[4].node, 0);
	assert_int_equal(r[5].type, KMEM_REGION_RESERVED);
	assert_int_equal(r[5].node, 0);
	assert_int_equal(info.numa_nodes, KMEM_MAX_NODES + 6);
	assert_int_equal(info.numa_folded, 1);
	/* Without ids: no NUMA information. */
	uint8_t *v = qemu_arm_virt(&total);
	assert_int_equal(fdt_memory_map(v, 0x40000000, NULL, 0, r, 8, &info), 2);
	assert_int_equal(info.numa_nodes, 0);
	assert_int_equal(r[0].node, 0);
	free(v);
	free(b);
	free(w);
}

/* No #address-cells/#size-cells at the root: 2 and 1. */
static void test_default_cells(void **state)
{
	(void)state;
	struct dtw *w = w_new();
	w_begin(w, "");
	w_begin(w, "memory@100000000");
	w_cells(w, "reg", 3, 0x1, 0x0, 0x8000000);
	w_end(w);
	w_end(w);
	uint32_t total;
	uint8_t *b = w_finish(w, &total);
	struct kmem_region r[4];
	assert_int_equal(fdt_memory_map(b, 0, NULL, 0, r, 4, NULL), 2);
	assert_region(&r[0], 0x100000000ull, 0x8000000, KMEM_REGION_USABLE);
	free(b);
	free(w);
}

/* /reserved-memory with its own 1/1 cells under a 2/2 root: children with
 * one and two reg entries are reserved, a dynamic one (size only) has
 * nothing to reserve, a disabled one is ignored; the reservation block's
 * entries are reserved too; order: usable, block, children, blob. */
static void test_reserved(void **state)
{
	(void)state;
	struct dtw *w = w_new();
	w_root(w, 2, 2);
	w_begin(w, "memory@80000000");
	w_str(w, "device_type", "memory");
	w_cells(w, "reg", 4, 0, 0x80000000, 0, 0x40000000);
	w_end(w);
	w_begin(w, "reserved-memory");
	w_cells(w, "#address-cells", 1, 1);
	w_cells(w, "#size-cells", 1, 1);
	w_prop(w, "ranges", NULL, 0);
	w_begin(w, "mmode_resv0@80000000");
	w_cells(w, "reg", 2, 0x80000000, 0x40000);
	w_prop(w, "no-map", NULL, 0);
	w_end(w);
	w_begin(w, "fw@88000000");
	w_cells(w, "reg", 4, 0x88000000, 0x1000, 0x89000000, 0x2000);
	w_end(w);
	w_begin(w, "cma");
	w_cells(w, "size", 1, 0x1000000);
	w_str(w, "compatible", "shared-dma-pool");
	w_end(w);
	w_begin(w, "off@8a000000");
	w_str(w, "status", "disabled");
	w_cells(w, "reg", 2, 0x8a000000, 0x1000);
	w_end(w);
	w_end(w);
	w_end(w);
	w_rsv(w, 0x8f000000, 0x10000);
	w_rsv(w, 0x8e000000, 0x0); /* empty: counted, nothing reserved */
	uint32_t total;
	uint8_t *b = w_finish(w, &total);
	struct kmem_region r[16];
	struct fdt_memmap_info info;
	long n = fdt_memory_map(b, 0xbfe00000, NULL, 0, r, 16, &info);
	assert_int_equal(n, 6);
	assert_region(&r[0], 0x80000000, 0x40000000, KMEM_REGION_USABLE);
	assert_region(&r[1], 0x8f000000, 0x10000, KMEM_REGION_RESERVED);
	assert_region(&r[2], 0x80000000, 0x40000, KMEM_REGION_RESERVED);
	assert_region(&r[3], 0x88000000, 0x1000, KMEM_REGION_RESERVED);
	assert_region(&r[4], 0x89000000, 0x2000, KMEM_REGION_RESERVED);
	assert_region(&r[5], 0xbfe00000, total, KMEM_REGION_RESERVED);
	assert_int_equal(info.reserved_nodes, 2);
	assert_int_equal(info.reserved_dynamic, 1);
	assert_int_equal(info.rsvmap_entries, 2);
	free(b);
	free(w);
}

/* A range that runs past 2^64 is cut there; keep-outs of size 0 vanish. */
static void test_edges_of_ranges(void **state)
{
	(void)state;
	struct dtw *w = w_new();
	w_root(w, 2, 2);
	w_begin(w, "memory@ffffffff00000000");
	w_cells(w, "reg", 4, 0xffffffff, 0, 0x1, 0);
	w_end(w);
	w_end(w);
	uint32_t total;
	uint8_t *b = w_finish(w, &total);
	struct kmem_region keep[2] = {{0x1000, 0, 1, 0}, {0x2000, 0x1000, 1, 0}}, r[4];
	assert_int_equal(fdt_memory_map(b, 0, keep, 2, r, 4, NULL), 3);
	assert_region(&r[0], 0xffffffff00000000ull, 0x100000000ull, KMEM_REGION_USABLE);
	assert_region(&r[2], 0x2000, 0x1000, KMEM_REGION_RESERVED);
	free(b);
	free(w);
}

/* Too small an output array: -KMEM_ENOMEM; exactly enough: fine. */
static void test_capacity(void **state)
{
	(void)state;
	uint32_t total;
	uint8_t *b = qemu_arm_virt(&total);
	struct kmem_region r[3], keep = {0x40200000, MIB, 1, 0};
	assert_int_equal(fdt_memory_map(b, 0x40000000, &keep, 1, r, 2, NULL), -KMEM_ENOMEM);
	assert_int_equal(fdt_memory_map(b, 0x40000000, &keep, 1, r, 3, NULL), 3);
	assert_int_equal(fdt_memory_map(b, 0x40000000, NULL, 0, r, 0, NULL), -KMEM_ENOMEM);
	free(b);
}

/* ------------------------------------------------------------------------
 * The generic reader
 */

struct cpus_ctx {
	uint64_t ids[8];
	unsigned n, nodes;
};

static bool cpus_fn(const void *dtb, const struct fdt_node *n, void *arg)
{
	struct cpus_ctx *c = arg;
	c->nodes++;
	uint64_t id, size;
	if (n->depth == 2 && strcmp(n->parent, "cpus") == 0 &&
	    fdt_prop_has_string(dtb, n, "device_type", "cpu") && fdt_reg(dtb, n, 0, &id, &size)) {
		assert_true(size == 0); /* #size-cells = 0 */
		c->ids[c->n++] = id;
	}
	return true;
}

static bool stop_at_second(const void *dtb, const struct fdt_node *n, void *arg)
{
	(void)dtb;
	(void)n;
	return ++*(unsigned *)arg < 2;
}

static void test_reader(void **state)
{
	(void)state;
	uint32_t total;
	uint8_t *b = qemu_arm_virt(&total);

	struct cpus_ctx c = {0};
	assert_int_equal(fdt_walk(b, cpus_fn, &c), 9); /* root, psci, memory, intc, cpus, 2 cpus, cpu-map, timer */
	assert_int_equal(c.nodes, 9);
	assert_int_equal(c.n, 2);
	assert_true(c.ids[0] == 0 && c.ids[1] == 1);
	unsigned seen = 0;
	assert_int_equal(fdt_walk(b, stop_at_second, &seen), 2);
	assert_int_equal(fdt_walk(b, NULL, NULL), 9);

	struct fdt_node gic, psci, none;
	assert_true(fdt_find_compatible(b, "arm,cortex-a15-gic", &gic));
	assert_string_equal(gic.name, "intc@8000000");
	assert_string_equal(gic.parent, "");
	assert_int_equal(gic.depth, 1);
	assert_int_equal(gic.addr_cells, 2);
	assert_int_equal(gic.size_cells, 2);
	uint64_t base, size;
	assert_true(fdt_reg(b, &gic, 1, &base, &size));
	assert_true(base == 0x08010000 && size == 0x10000);
	assert_false(fdt_reg(b, &gic, 2, &base, &size));
	assert_false(fdt_find_compatible(b, "arm,gic-v3", &none));

	/* A string list: each member matches, a prefix does not. */
	assert_true(fdt_find_compatible(b, "arm,psci-0.2", &psci));
	assert_true(fdt_prop_has_string(b, &psci, "compatible", "arm,psci"));
	assert_false(fdt_prop_has_string(b, &psci, "compatible", "arm,psci-"));
	assert_true(fdt_prop_has_string(b, &psci, "method", "hvc"));
	assert_false(fdt_prop_has_string(b, &psci, "nonexistent", "hvc"));
	uint32_t len;
	const char *m = fdt_prop(b, &psci, "method", &len);
	assert_non_null(m);
	assert_int_equal(len, 4);
	assert_string_equal(m, "hvc");
	assert_null(fdt_prop(b, &psci, "reg", &len));
	assert_true(fdt_node_enabled(b, &psci));

	/* The root: its own cells and a u32/u64 read. */
	struct fdt_node root = {0};
	root.addr_cells = 2;
	root.size_cells = 1;
	uint32_t v32;
	uint64_t v64;
	assert_true(fdt_prop_u32(b, &root, "#address-cells", &v32));
	assert_int_equal(v32, 2);
	assert_true(fdt_prop_u64(b, &root, "#size-cells", &v64));
	assert_true(v64 == 2);
	assert_false(fdt_prop_u32(b, &root, "compatible", &v32)); /* not 4 bytes */
	free(b);
}

/* ------------------------------------------------------------------------
 * Malformed blobs: each an error, none a bad read (ASan).
 */

static void set32(uint8_t *b, uint32_t off, uint32_t v)
{
	put32(b + off, v);
}

static uint32_t get32(const uint8_t *b, uint32_t off)
{
	return (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 | (uint32_t)b[off + 2] << 8 | b[off + 3];
}

static void expect_bad(const uint8_t *b)
{
	struct kmem_region r[16];
	assert_int_equal(fdt_memory_map(b, 0, NULL, 0, r, 16, NULL), -KMEM_EINVAL);
	assert_int_equal(fdt_walk(b, NULL, NULL), -KMEM_EINVAL);
}

static void test_bad_headers(void **state)
{
	(void)state;
	uint32_t total;
	uint8_t *good = qemu_arm_virt(&total), *b = malloc(total);
	assert_non_null(b);
	assert_int_equal(fdt_check(good, total), total);
	assert_int_equal(fdt_check(good, total - 1), 0); /* bigger than allowed */
	assert_int_equal(fdt_check(NULL, 0), 0);

	static const struct {
		uint32_t off, val;
	} bad[] = {
		{0, 0xedfe0dd0},           /* little-endian magic */
		{4, 39},                   /* totalsize below the header */
		{8, 0xfffffff0},           /* struct block beyond the blob */
		{8, 41},                   /* struct block misaligned */
		{12, 0xfffffff0},          /* strings beyond */
		{16, 44},                  /* reservation block misaligned */
		{16, 0xfffffff8},          /* reservation block beyond */
		{20, 15},                  /* version too old */
		{24, 18},                  /* incompatible */
		{32, 0x7fffffff},          /* strings size beyond */
		{36, 0x7fffffff},          /* struct size beyond */
		{36, 0},                   /* empty struct block */
	};
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memcpy(b, good, total);
		set32(b, bad[i].off, bad[i].val);
		expect_bad(b);
		struct fdt_node n;
		assert_false(fdt_find_compatible(b, "arm,cortex-a15-gic", &n));
	}

	/* Struct block too short to reach FDT_END. */
	memcpy(b, good, total);
	set32(b, 36, get32(b, 36) - 4);
	expect_bad(b);

	/* No terminator in the reservation block. */
	memcpy(b, good, total);
	uint32_t rsv = get32(b, 16);
	for (uint32_t o = rsv; o + 4 <= get32(b, 8); o += 4)
		set32(b, o, 0x01010101);
	set32(b, 16, get32(b, 4) - 16); /* last 16 bytes: the strings, not zero */
	memset(b + total - 16, 0x41, 16);
	struct kmem_region r[16];
	assert_int_equal(fdt_memory_map(b, 0, NULL, 0, r, 16, NULL), -KMEM_EINVAL);
	free(b);
	free(good);
}

/* Broken struct blocks, built token by token. */
static void test_bad_structure(void **state)
{
	(void)state;
	for (int k = 0; k < 9; k++) {
		struct dtw *w = w_new();
		switch (k) {
		case 0: /* END_NODE with no node open */
			w_end(w);
			break;
		case 1: /* root never closed */
			w_begin(w, "");
			break;
		case 2: /* property outside any node */
			w_cells(w, "reg", 1, 0);
			w_begin(w, "");
			w_end(w);
			break;
		case 3: /* unknown token */
			w_begin(w, "");
			w_u32(w, 7);
			w_end(w);
			break;
		case 4: /* a second root */
			w_begin(w, "");
			w_end(w);
			w_begin(w, "");
			w_end(w);
			break;
		case 5: /* too deep */
			for (int d = 0; d <= FDT_MAX_DEPTH; d++)
				w_begin(w, "n");
			for (int d = 0; d <= FDT_MAX_DEPTH; d++)
				w_end(w);
			break;
		case 6: /* property length past the struct block */
			w_begin(w, "");
			w_u32(w, TOK_PROP);
			w_u32(w, 0x1000);
			w_u32(w, w_string(w, "reg"));
			w_end(w);
			break;
		case 7: /* no root at all */
			w_u32(w, TOK_NOP);
			break;
		case 8: /* a node name running to the end of the block */
			w_begin(w, "");
			w_u32(w, TOK_BEGIN);
			w_u32(w, 0x41414141);
			break;
		}
		uint32_t total;
		uint8_t *b = w_finish(w, &total);
		if (k == 8) /* overwrite the FDT_END token too: the name has no NUL */
			set32(b, total - 4 - w->strn, 0x41414141);
		expect_bad(b);
		free(b);
		free(w);
	}

	/* Names outside the strings block never match; NOPs are skipped. */
	struct dtw *w = w_new();
	w_begin(w, "");
	w_u32(w, TOK_NOP);
	w_u32(w, TOK_PROP);
	w_u32(w, 4);
	w_u32(w, 0xffff);
	w_u32(w, 2);
	w_cells(w, "#address-cells", 1, 1);
	w_begin(w, "memory");
	w_u32(w, TOK_NOP);
	w_cells(w, "reg", 2, 0x1000, 0x1000);
	w_end(w);
	w_end(w);
	uint32_t total;
	uint8_t *b = w_finish(w, &total);
	struct kmem_region r[4];
	assert_int_equal(fdt_memory_map(b, 0, NULL, 0, r, 4, NULL), 2);
	assert_region(&r[0], 0x1000, 0x1000, KMEM_REGION_USABLE);
	free(b);
	free(w);
}

/* Random corruption of a real-shaped blob: errors or maps, never a bad
 * read, and any map's regions come from the blob's own numbers. */
static void test_corruption_fuzz(void **state)
{
	(void)state;
	uint32_t total;
	uint8_t *good = qemu_arm_virt(&total);
	uint64_t s = 0x9e3779b97f4a7c15ull;
	unsigned ok = 0, bad = 0;
	for (int it = 0; it < 20000; it++) {
		uint8_t *b = malloc(total);
		assert_non_null(b);
		memcpy(b, good, total);
		int nflip = 1 + it % 4;
		for (int k = 0; k < nflip; k++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			uint32_t at = (uint32_t)(s % total);
			b[at] = (it & 1) ? (uint8_t)(s >> 32) : (uint8_t)(b[at] ^ (1u << ((s >> 40) & 7)));
		}
		/* The reader trusts totalsize (a kernel bounds it with
		 * fdt_check(dtb, max)): keep it inside the buffer. */
		if (fdt_check(b, total) == 0 && get32(b, 4) > total)
			set32(b, 4, total);
		struct kmem_region r[32];
		long n = fdt_memory_map(b, 0, NULL, 0, r, 32, NULL);
		if (n < 0)
			bad++;
		else
			ok++;
		fdt_walk(b, cpus_fn, &(struct cpus_ctx){0});
		struct fdt_node node;
		fdt_find_compatible(b, "arm,psci", &node);
		free(b);
	}
	assert_true(ok > 0 && bad > 0);
	free(good);
}

/* kmem_memmap_fdt (spanalloc/memmap.h): the same walk, normalised --
 * unaligned /memory rounded in, /reserved-memory, the reservation block
 * and the blob rounded out and cut out of it, sorted and disjoint. */
static void test_memmap_adapter(void **state)
{
	(void)state;
	struct dtw *w = w_new();
	w_root(w, 2, 2);
	w_begin(w, "memory@50000100");
	w_cells(w, "reg", 4, 0, 0x50000100, 0, 0x2000);
	w_end(w);
	w_begin(w, "memory@40000000");
	w_cells(w, "reg", 4, 0, 0x40000000, 0, 0x8000000);
	w_end(w);
	w_begin(w, "reserved-memory");
	w_cells(w, "#address-cells", 1, 2);
	w_cells(w, "#size-cells", 1, 2);
	w_begin(w, "fw@40100800");
	w_cells(w, "reg", 4, 0, 0x40100800, 0, 0x800);
	w_end(w);
	w_end(w);
	w_end(w);
	w_rsv(w, 0x44000000, 0x1000);
	uint32_t total;
	uint8_t *b = w_finish(w, &total);
	assert_true(total < 0x1000);
	struct kmem_region r[16];
	long n = kmem_memmap_fdt(b, 0x40000000, r, 16);
	assert_int_equal(n, 7);
	assert_region(&r[0], 0x40000000, 0x1000, KMEM_REGION_RESERVED); /* the blob */
	assert_region(&r[1], 0x40001000, 0xff000, KMEM_REGION_USABLE);
	assert_region(&r[2], 0x40100000, 0x1000, KMEM_REGION_RESERVED);
	assert_region(&r[3], 0x40101000, 0x3eff000, KMEM_REGION_USABLE);
	assert_region(&r[4], 0x44000000, 0x1000, KMEM_REGION_RESERVED);
	assert_region(&r[5], 0x44001000, 0x3fff000, KMEM_REGION_USABLE);
	assert_region(&r[6], 0x50001000, 0x1000, KMEM_REGION_USABLE);
	free(b);
	free(w);
}

/* ------------------------------------------------------------------------
 * End to end: the parsed map builds a heap that never hands out a
 * reserved byte.
 */

static void test_heap_from_dtb(void **state)
{
	(void)state;
	/* Simulated physical memory: RAM at 1 GiB, 128 MiB; the blob at its
	 * start (as QEMU's arm virt puts it), the kernel image 2 MiB in, a
	 * firmware hole from /reserved-memory and one from the reservation
	 * block. */
	const uint64_t ram = GIB, ram_size = 128 * MIB;
	struct dtw *w = w_new();
	w_root(w, 2, 2);
	w_begin(w, "memory@40000000");
	w_str(w, "device_type", "memory");
	w_cells(w, "reg", 4, 0, (uint32_t)ram, 0, (uint32_t)ram_size);
	w_end(w);
	w_begin(w, "reserved-memory");
	w_cells(w, "#address-cells", 1, 2);
	w_cells(w, "#size-cells", 1, 2);
	w_begin(w, "fw@42000000");
	w_cells(w, "reg", 4, 0, (uint32_t)(ram + 32 * MIB + 123), 0, (uint32_t)(MIB + 5));
	w_end(w);
	w_end(w);
	w_end(w);
	w_rsv(w, ram + 64 * MIB, 64 * KIB);
	uint32_t total;
	uint8_t *b = w_finish(w, &total);
	struct kmem_region keep = {ram + 2 * MIB, 2 * MIB + 100, KMEM_REGION_USABLE, 0}, r[8];
	long n = fdt_memory_map(b, ram, &keep, 1, r, 8, NULL);
	assert_int_equal(n, 5);

	fx_reserve(ram + ram_size + GIB);
	assert_int_equal(fx_init(r, (size_t)n, 1), 0);
	struct kmem_stats st;
	kmem_get_stats(&st);
	uint64_t meta_base, meta_size;
	kmem_metadata_region(&meta_base, &meta_size);

	/* Pages wholly inside RAM that touch no reserved range. */
	uint64_t expect = 0;
	for (uint64_t p = ram; p < ram + ram_size; p += KMEM_PAGE_SIZE) {
		bool hit = false;
		for (long i = 1; i < n; i++)
			if (p < r[i].base + r[i].length && r[i].base < p + KMEM_PAGE_SIZE)
				hit = true;
		expect += !hit;
	}
	assert_true(meta_base >= ram && meta_base + meta_size <= ram + ram_size);
	assert_int_equal(st.pages_managed + meta_size / KMEM_PAGE_SIZE, expect);

	/* Take every page, write it (a reserved one would fault), check it
	 * is outside every reserved range, give all back. */
	size_t cap = (size_t)(ram_size / KMEM_PAGE_SIZE), got = 0;
	void **pages = calloc(cap, sizeof *pages);
	assert_non_null(pages);
	void *p;
	while (got < cap && (p = kpage_alloc(1, KMEM_PAGE_SIZE, 0)) != NULL) {
		uint64_t phys = kmem_virt_to_phys(p);
		for (long i = 1; i < n; i++)
			assert_false(phys < r[i].base + r[i].length && r[i].base < phys + KMEM_PAGE_SIZE);
		memset(p, 0xa5, KMEM_PAGE_SIZE);
		pages[got++] = p;
	}
	/* Every page went out, as a run or as span descriptors for them. */
	struct kmem_stats full;
	kmem_get_stats(&full);
	assert_true(full.pages_free == 0 && full.pages_runs == got);
	assert_true(got + full.pages_metadata == st.pages_managed);
	for (size_t i = 0; i < got; i++)
		kpage_free(pages[i], 1);
	free(pages);
	fx_assert_all_back();
	free(b);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qemu_arm_virt_map),
		cmocka_unit_test(test_cells_and_nodes),
		cmocka_unit_test(test_numa_node_ids),
		cmocka_unit_test(test_default_cells),
		cmocka_unit_test(test_reserved),
		cmocka_unit_test(test_edges_of_ranges),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_reader),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_bad_structure),
		cmocka_unit_test(test_corruption_fuzz),
		cmocka_unit_test(test_memmap_adapter),
		cmocka_unit_test(test_heap_from_dtb),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
