/*
 * spanalloc/fdt.h - a small, freestanding reader for flattened device trees
 * (DTB, devicetree specification v0.3): enough for a kernel to find its
 * memory, CPUs and a few devices.  It never writes to the blob and checks
 * every read against the header's bounds, so a corrupt or hostile blob
 * gives an error, not a fault.  Uses only <stdbool.h>, <stddef.h>,
 * <stdint.h> and spanalloc.h (for struct kmem_region).
 *
 * The memory map (fdt_memory_map) is what spanalloc's kmem_init() takes:
 *   USABLE    every (base, size) of the reg of each /memory node (a child
 *             of the root named "memory" or "memory@...", or with
 *             device_type = "memory"; status = "disabled" skips it),
 *             with the node's "numa-node-id" (0 if none; an id >=
 *             KMEM_MAX_NODES is folded into node 0 and counted) as
 *             kmem_region.node -- ranges of different nodes are never
 *             merged;
 *   RESERVED  every reg entry of each child of /reserved-memory, every
 *             entry of the header's memory reservation block, the blob
 *             itself, and the ranges the caller keeps out (kernel image,
 *             boot stacks, ...).
 * Reserved regions may overlap usable ones: kmem_init() manages only pages
 * that touch no reserved region.  reg is decoded with the parent's
 * #address-cells and #size-cells (/reserved-memory has its own); absent
 * ones default to 2 and 1 as the specification says.
 */
#ifndef SPANALLOC_FDT_H
#define SPANALLOC_FDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../spanalloc.h"

#define FDT_MAGIC 0xd00dfeedu
#define FDT_HEADER_SIZE 40u
#define FDT_MAX_DEPTH 16 /* deeper trees are rejected as malformed */

/* Checks the header (magic, versions 16 and 17, every block inside
 * totalsize, totalsize <= max_size unless max_size is 0).  Returns
 * totalsize, or 0 if the blob is not a usable DTB.  Reads only the
 * 40-byte header, so `dtb` must point at 40 readable bytes. */
uint32_t fdt_check(const void *dtb, size_t max_size);

/* A node met by fdt_walk(). */
struct fdt_node {
	uint32_t offset;        /* of its FDT_BEGIN_NODE token in the struct block */
	unsigned depth;         /* root 0, its children 1, ... */
	const char *name;       /* "memory@40000000"; the root's is "" */
	const char *parent;     /* the parent's name ("" for children of the root,
	                           NULL for the root) */
	uint32_t addr_cells;    /* the parent's #address-cells and #size-cells: */
	uint32_t size_cells;    /* how this node's reg is encoded */
	uint32_t child_addr_cells; /* its own: how its children's reg is encoded */
	uint32_t child_size_cells;
};

/* Calls fn on every node in document order (a parent before its children,
 * each node's properties readable with fdt_prop); fn returns false to stop
 * the walk.  Returns the number of nodes visited, or -KMEM_EINVAL if the
 * blob is malformed (fn may have seen some nodes by then). */
long fdt_walk(const void *dtb, bool (*fn)(const void *dtb, const struct fdt_node *node, void *arg),
              void *arg);

/* The value of property `name` of `node` and its length in bytes, or NULL
 * if the node has no such property (or the blob is malformed there). */
const void *fdt_prop(const void *dtb, const struct fdt_node *node, const char *name, uint32_t *len);

/* Property helpers.  fdt_prop_u32/u64 read a one- or two-cell value
 * (false if absent or of another length); fdt_prop_has_string is true iff
 * the property is a string list containing `s` ("compatible"). */
bool fdt_prop_u32(const void *dtb, const struct fdt_node *node, const char *name, uint32_t *out);
bool fdt_prop_u64(const void *dtb, const struct fdt_node *node, const char *name, uint64_t *out);
bool fdt_prop_has_string(const void *dtb, const struct fdt_node *node, const char *name, const char *s);

/* False iff the node has status = "disabled" (or anything but "okay"/"ok"). */
bool fdt_node_enabled(const void *dtb, const struct fdt_node *node);

/* Entry i of the node's reg, decoded with node->addr_cells/size_cells (1
 * or 2 address cells, 0 to 2 size cells).  False if there is no entry i
 * or the encoding is not one of those. */
bool fdt_reg(const void *dtb, const struct fdt_node *node, unsigned i, uint64_t *base, uint64_t *size);

/* The first enabled node whose "compatible" contains `compat`; false if
 * none (or malformed). */
bool fdt_find_compatible(const void *dtb, const char *compat, struct fdt_node *out);

/* Totals of one fdt_memory_map() call, for a boot report. */
struct fdt_memmap_info {
	uint32_t totalsize;         /* of the blob */
	unsigned memory_nodes;      /* /memory nodes used */
	unsigned memory_ranges;     /* USABLE regions from them */
	unsigned reserved_nodes;    /* /reserved-memory children with a reg */
	unsigned reserved_dynamic;  /* children with only a size (not placed yet:
	                               nothing to reserve) */
	unsigned rsvmap_entries;    /* memory reservation block entries */
	uint64_t usable_bytes;      /* sum of the USABLE regions (before holes) */
	unsigned numa_nodes;        /* 1 + the highest numa-node-id of a /memory
	                               node, 0 if none has one */
	unsigned numa_folded;       /* /memory nodes whose id >= KMEM_MAX_NODES
	                               went to node 0 */
};

/* Fills out[] with the memory map described above: USABLE regions first,
 * then RESERVED ones (reservation block, /reserved-memory, the blob at
 * [dtb_phys, dtb_phys + totalsize), then keep_out[0..nkeep), which are
 * copied with type RESERVED whatever their type).  dtb_phys is the blob's
 * physical address (the kernel's pointer may be a virtual one).  Empty
 * ranges are left out; a range that runs past 2^64 is cut there.
 * Returns the number of regions, -KMEM_EINVAL for a malformed blob, or
 * -KMEM_ENOMEM if more than `cap` regions would be needed.  `info` may be
 * NULL. */
long fdt_memory_map(const void *dtb, uint64_t dtb_phys, const struct kmem_region *keep_out,
                    size_t nkeep, struct kmem_region *out, size_t cap, struct fdt_memmap_info *info);

#endif /* SPANALLOC_FDT_H */
