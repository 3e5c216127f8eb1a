/*
 * spanalloc/memmap.h - memory-map adapters: what a bootloader hands a
 * kernel, turned into the struct kmem_region array kmem_init() takes.
 *
 * Every adapter:
 *   - reads the bootloader's structure in its real, documented format and
 *     never writes to it; every read is checked against the sizes the
 *     structure declares (a tag's size, a map's length, an entry count),
 *     so a malformed structure is an error, not a read past its end;
 *   - maps the protocol's types onto USABLE / RESERVED / RECLAIMABLE (the
 *     table is at each adapter; unknown types are RESERVED);
 *   - also reserves what the bootloader placed in memory the map may call
 *     usable and the kernel still needs (the boot information itself,
 *     modules, strings, framebuffers), where the protocol says where;
 *   - returns the map normalised (kmem_memmap_normalize): page-aligned,
 *     USABLE rounded inward and the others outward, sorted by address,
 *     disjoint, where overlapping entries were the higher of
 *     RESERVED > RECLAIMABLE > USABLE wins, adjacent entries of one type
 *     merged;
 *   - returns the number of regions in out[0 .. cap), or -KMEM_EINVAL
 *     (malformed input: bad sizes or counts, truncated or unterminated
 *     structures, more than KMEM_MEMMAP_MAX_ENTRIES entries) or
 *     -KMEM_ENOMEM (out[] too small: it must hold the raw entries, and
 *     2n - 1 slots for n raw entries always suffice); out[] holds no
 *     meaningful map after an error.
 *
 * Reclaimable memory: the bootloader's own (page tables, the structures
 * read here when the protocol says so) and ACPI tables.  It is kept out at
 * kmem_init() (the kernel still reads it); each RECLAIMABLE region is
 * whole pages that touch no USABLE or RESERVED one, so once the kernel is
 * done with it, kmem_hot_add(&region) adds exactly it.
 *
 * The caller appends what else must stay out (its own image, boot stacks)
 * as RESERVED regions after the adapter's, and either passes all of it to
 * kmem_init() (which lets reserved holes win anyway) or normalises again.
 *
 * Physical vs virtual: structures the bootloader passes by physical
 * address are read at phys + phys_offset (0 when identity mapped).
 *
 * Cost: O(e + n log n) for e entries read and n regions produced.
 * Context: any; no kmem_init() needed; reentrant (no state but out[]).
 * Freestanding: <stddef.h>, <stdint.h>, spanalloc.h.
 */
#ifndef SPANALLOC_MEMMAP_H
#define SPANALLOC_MEMMAP_H

#include "../spanalloc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* More raw entries than this in one map is a corrupt count. */
#define KMEM_MEMMAP_MAX_ENTRIES (1u << 20)

/* The building block every adapter uses: appends one region to out[],
 * merged into out[*n - 1] when that one is of the same type and ends
 * exactly at base (never across 2^64: a region ending at 2^64 is not
 * followed by one at 0).  *n is the number of entries in use.  Empty
 * ranges are dropped; a range past 2^64 is cut there.  Returns 0, or
 * -KMEM_ENOMEM iff a new entry is needed and *n == cap.  O(1). */
int kmem_memmap_add(struct kmem_region *out, size_t cap, size_t *n, uint64_t base,
                    uint64_t length, uint32_t type);

/* Normalises out[0 .. n) in place (out[n .. cap) is working room), as
 * every adapter's result is: USABLE rounded inward to pages, RESERVED,
 * RECLAIMABLE and unknown types (-> RESERVED) outward; sorted by base;
 * where regions overlap, RESERVED beats RECLAIMABLE beats USABLE; adjacent
 * regions of one type merged; empty ones dropped.  kmem_init() manages
 * the same pages before and after.  Returns the new count, -KMEM_EINVAL
 * iff n > cap (or out is NULL with n > 0), or -KMEM_ENOMEM if the output
 * does not fit beside the unread input; never when cap >= 2n - 1.
 * O(n log n), no memory but out[]. */
long kmem_memmap_normalize(struct kmem_region *out, size_t n, size_t cap);

/* BIOS E820 entries ({u64 base, u64 length, u32 type} and, when
 * entry_size >= 24, a u32 ACPI 3.0 extended attribute whose bit 0 clear
 * means "ignore this entry").  entry_size is 20 or more.  Types:
 *   1 RAM -> USABLE; 3 ACPI reclaimable -> RECLAIMABLE;
 *   2 reserved, 4 ACPI NVS, 5 unusable, anything else -> RESERVED.
 * Reads nentries * entry_size bytes. */
long kmem_memmap_e820(const void *entries, size_t nentries, size_t entry_size,
                      struct kmem_region *out, size_t cap);

/* Multiboot (v1) information structure (Multiboot 0.6.96 section 3.3), as
 * found in %ebx at entry.  info_phys is its physical address.  Uses the
 * mmap_* fields (flags bit 6: size-prefixed E820 entries, each size >= 20
 * and inside mmap_length) or, without them, mem_lower/mem_upper (bit 0);
 * -KMEM_EINVAL without either.  Reserves the information structure (88
 * bytes, 116 with the framebuffer fields), the memory map buffer, and
 * what the flags say is there: command line (bit 2), boot loader name (9),
 * module list, every module and its string (3; at most 4096 modules),
 * ELF section header table (5), drives (7), APM table (10), VBE control
 * and mode information (11), framebuffer (12: pitch * height bytes).
 * Strings are read up to their NUL, at most 64 KiB. */
long kmem_memmap_multiboot1(const void *info, uint64_t info_phys, uintptr_t phys_offset,
                            struct kmem_region *out, size_t cap);

/* Multiboot2 boot information (Multiboot2 spec 1.0, section 3.6), as
 * found in %ebx at entry.  mbi_phys is its physical address.  Reads
 * total_size bytes (16 .. 64 MiB), which must hold 8-byte-aligned tags
 * each inside it, up to an end tag.  Memory from the EFI memory map tag
 * (17, the UEFI table below) unless boot services still run (tag 18);
 * else the memory map tag (6; entry_size a multiple of 8, >= 24; E820
 * types as above); else basic meminfo (4); else -KMEM_EINVAL.  Reserves
 * the boot information, every module (tag 3), the framebuffer (tag 8:
 * pitch * height bytes) and every section of the ELF-symbols tag (9:
 * u32 num, entsize, shndx as GRUB writes them, then num section headers
 * of entsize bytes, ELF32 from 40, ELF64 from 64) that has an address and
 * a size: GRUB loads the sections the image does not hold (symbol and
 * string tables, debug info) into memory the map calls usable.  An
 * allocated section's address is its link address: the kernel image for
 * an identity-linked kernel; a higher-half kernel reserves its image's
 * physical pages itself (the range at the virtual address is reserved
 * too, as if physical: nothing above 2^48, the image's size at worst
 * below).  Those and the
 * MBI are all the loader leaves in usable memory: the spec gives it
 * nothing reclaimable. */
long kmem_memmap_multiboot2(const void *mbi, uint64_t mbi_phys, struct kmem_region *out,
                            size_t cap);

/* Limine memory map response (struct limine_memmap_response: u64
 * revision, u64 entry_count, entries -> array of entry_count pointers to
 * {u64 base, length, type}).  Pointers in it are already virtual
 * (Limine's HHDM) and 64-bit.  At most KMEM_MEMMAP_MAX_ENTRIES entries; a
 * NULL pointer is -KMEM_EINVAL.  Types:
 *   0 USABLE -> USABLE; 2 ACPI_RECLAIMABLE, 5 BOOTLOADER_RECLAIMABLE
 *   (Limine's page tables, stacks and this response itself) ->
 *   RECLAIMABLE; 1 RESERVED, 3 ACPI_NVS, 4 BAD_MEMORY,
 *   6 EXECUTABLE_AND_MODULES, 7 FRAMEBUFFER, unknown -> RESERVED. */
long kmem_memmap_limine(const void *response, struct kmem_region *out, size_t cap);

/* UEFI memory map as returned by GetMemoryMap() (or the final one taken
 * before ExitBootServices()): map_size bytes (a multiple of desc_size) of
 * desc_size-byte EFI_MEMORY_DESCRIPTORs (desc_size >= 40, the struct's
 * size; firmware may use more and the walk steps by desc_size).  For use
 * after ExitBootServices(); types:
 *   ConventionalMemory, BootServicesCode/Data -> USABLE;
 *   ACPIReclaimMemory -> RECLAIMABLE;
 *   LoaderCode/Data -> RESERVED (the kernel image and what it allocated;
 *   a kernel that knows which of it is dead hot-adds it later);
 *   anything with attribute EFI_MEMORY_SP (specific purpose) or
 *   EFI_MEMORY_RUNTIME, and every other type -> RESERVED. */
long kmem_memmap_uefi(const void *map, size_t map_size, size_t desc_size,
                      struct kmem_region *out, size_t cap);

/* Flattened device tree (spanalloc/fdt.h, fdt_memory_map): USABLE from
 * /memory nodes' reg (with the root's #address-cells/#size-cells);
 * RESERVED from /reserved-memory children's reg, the memory reservation
 * block and the blob itself at dtb_phys.  Reads the blob's totalsize
 * bytes (header checked first). */
long kmem_memmap_fdt(const void *dtb, uint64_t dtb_phys, struct kmem_region *out, size_t cap);

/* ---------------------------------------------------------------------------
 * NUMA nodes from firmware (mm/numamap.c)
 *
 * kmem_init() takes each usable region's node from kmem_region.node and
 * each CPU's from kmem_config.cpu_node (spanalloc.h, "NUMA nodes").  The
 * device-tree adapters tag /memory ranges with their numa-node-id
 * themselves.  With ACPI, the map comes from UEFI/E820/Multiboot without
 * nodes, and the SRAT says which node each address range and each CPU
 * belongs to:
 *     n = kmem_memmap_uefi(map, ..., regions, cap);        (any adapter)
 *     m = kmem_acpi_srat(srat, srat_len, ranges, R, cpus, C, &info);
 *     n = kmem_memmap_split_nodes(regions, n, cap, ranges, m);
 *     kmem_acpi_slit(slit, slit_len, &info, distance);      (optional)
 * then cfg.cpu_node[i] = the node of CPU i's APIC id in cpus[], and
 * cfg.node_distance = distance.  Split last: kmem_memmap_normalize()
 * merges adjacent regions of one type whatever their nodes.
 */

/* A CPU of the SRAT: its (x2)APIC id and node. */
struct kmem_numa_cpu {
	uint32_t apic_id;
	uint32_t node;
};

/* Totals of one kmem_acpi_srat() call.  Nodes are the SRAT's proximity
 * domains numbered 0.. in order of first appearance: node i is domain
 * domain[i]. */
struct kmem_numa_info {
	unsigned nnodes;                 /* <= KMEM_MAX_NODES */
	uint32_t domain[KMEM_MAX_NODES];
	unsigned folded;                 /* entries of domains past KMEM_MAX_NODES
	                                    (put on node 0) */
	unsigned nmem, ncpus;            /* entries stored in mem[], cpus[] */
	unsigned mem_seen, cpus_seen;    /* enabled entries in the table */
};

/* Reads an ACPI SRAT (the table itself, signature "SRAT", at most len
 * readable bytes): each enabled memory affinity entry into mem[] as a
 * USABLE region with its node (the first mem_cap), each enabled
 * processor local APIC / x2APIC affinity entry into cpus[] (the first
 * cpu_cap).  Returns info->nmem, or -KMEM_EINVAL iff the table is not a
 * sound SRAT (signature, length < 48 or > len, checksum, an entry
 * running past the table).  O(table length).  Context: any. */
long kmem_acpi_srat(const void *srat, size_t len, struct kmem_region *mem, size_t mem_cap,
                    struct kmem_numa_cpu *cpus, size_t cpu_cap, struct kmem_numa_info *info);

/* Reads an ACPI SLIT into distance[info->nnodes * info->nnodes] (row =
 * from node, column = to node), as kmem_config.node_distance takes it.
 * Returns 0, or -KMEM_EINVAL iff the table is not a sound SLIT or one of
 * info's domains is not in it (distance[] is then untouched).  O(nodes^2
 * + table length).  Context: any. */
int kmem_acpi_slit(const void *slit, size_t len, const struct kmem_numa_info *info,
                   uint8_t *distance);

/* Cuts every USABLE region of map[0 .. n) at the boundaries of ranges[]
 * and gives each piece the node of the range holding it (node 0 where no
 * range does, as Linux does for memory the SRAT leaves out); the first
 * piece stays in place, the others are appended (the map is no longer
 * sorted: kmem_init() takes any order).  Other regions are untouched.
 * Returns the new count, -KMEM_ENOMEM iff more than cap regions would be
 * needed (map[] then holds a partial split), -KMEM_EINVAL iff n > cap.
 * O(n' x nranges) for n' regions produced.  Context: any. */
long kmem_memmap_split_nodes(struct kmem_region *map, size_t n, size_t cap,
                             const struct kmem_region *ranges, size_t nranges);

#ifdef __cplusplus
}
#endif

#endif /* SPANALLOC_MEMMAP_H */
