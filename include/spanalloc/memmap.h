/*
 * spanalloc/memmap.h - memory-map adapters: what a bootloader hands a
 * kernel, turned into the struct kmem_region array kmem_init() takes.
 *
 * Every adapter:
 *   - reads the bootloader's structure in its real, documented format and
 *     never writes to it; every read is checked against the sizes the
 *     structure gives, so a malformed map is an error, not a fault;
 *   - maps the protocol's types onto USABLE / RESERVED / RECLAIMABLE
 *     (the table is in the adapter's comment; unknown types are RESERVED);
 *   - also reserves what the bootloader placed in memory the map may call
 *     usable and the kernel still needs (the boot information itself,
 *     modules), where the protocol says where they are;
 *   - writes regions to out[0 .. cap) and returns how many, or
 *     -KMEM_EINVAL (malformed input) or -KMEM_ENOMEM (more than cap
 *     regions needed; out[] then holds the first cap);
 *   - leaves entries overlapping, unaligned and unsorted as they came:
 *     kmem_init() handles that (a page is managed iff it lies wholly in a
 *     USABLE region and touches no other region);
 *   - drops empty entries and cuts entries that run past 2^64.
 * The caller appends what else must stay out (its own image, boot stacks)
 * as RESERVED regions after the adapter's, then calls kmem_init().
 * Bootloader-reclaimable memory comes back as RECLAIMABLE: hand it over
 * with kmem_hot_add() once the kernel no longer reads it.
 *
 * Physical vs virtual: structures the bootloader passes by physical
 * address are read at phys + phys_offset (0 when identity mapped).
 *
 * Cost: O(entries).  Context: any; no kmem_init() needed.
 * Freestanding: <stddef.h>, <stdint.h>, spanalloc.h.
 */
#ifndef SPANALLOC_MEMMAP_H
#define SPANALLOC_MEMMAP_H

#include "../spanalloc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The building block every adapter uses: appends one region to out[],
 * merged into the previous entry when contiguous and of the same type.
 * *n is the number of entries in use.  Empty ranges are dropped; a range
 * past 2^64 is cut there.  Returns 0, or -KMEM_ENOMEM if out[] is full. */
int kmem_memmap_add(struct kmem_region *out, size_t cap, size_t *n, uint64_t base,
                    uint64_t length, uint32_t type);

/* BIOS E820 entries ({u64 base, u64 length, u32 type} and, when
 * entry_size >= 24, a u32 ACPI 3.0 extended attribute whose bit 0 clear
 * means "ignore this entry").  entry_size is 20 or more.  Types:
 *   1 RAM -> USABLE; 3 ACPI reclaimable -> RECLAIMABLE;
 *   2 reserved, 4 ACPI NVS, 5 unusable, anything else -> RESERVED. */
long kmem_memmap_e820(const void *entries, size_t nentries, size_t entry_size,
                      struct kmem_region *out, size_t cap);

/* Multiboot (v1) information structure (Multiboot 0.6.96 section 3.3), as
 * found in %ebx at entry.  info_phys is its physical address.  Uses the
 * mmap_* fields (flags bit 6: size-prefixed E820 entries) or, without
 * them, mem_lower/mem_upper (flags bit 0).  Reserves the information
 * structure, the memory map buffer, the command line (bit 2), the module
 * list and every module (bit 3). */
long kmem_memmap_multiboot1(const void *info, uint64_t info_phys, uintptr_t phys_offset,
                            struct kmem_region *out, size_t cap);

/* Multiboot2 boot information (Multiboot2 spec 1.0, section 3.6), as
 * found in %ebx at entry.  mbi_phys is its physical address.  Uses the
 * memory map tag (type 6) or, without it, basic meminfo (type 4).
 * Reserves the boot information and every module (tag type 3). */
long kmem_memmap_multiboot2(const void *mbi, uint64_t mbi_phys, struct kmem_region *out,
                            size_t cap);

/* Limine memory map response (struct limine_memmap_response: revision,
 * entry_count, entries -> array of pointers to {base, length, type}).
 * Pointers in it are already virtual (Limine's HHDM).  Types:
 *   USABLE -> USABLE; BOOTLOADER_RECLAIMABLE, ACPI_RECLAIMABLE ->
 *   RECLAIMABLE; everything else (RESERVED, ACPI_NVS, BAD_MEMORY,
 *   EXECUTABLE_AND_MODULES, FRAMEBUFFER, unknown) -> RESERVED. */
long kmem_memmap_limine(const void *response, struct kmem_region *out, size_t cap);

/* UEFI memory map as returned by GetMemoryMap() (or the final one taken
 * before ExitBootServices()): map_size bytes of desc_size-byte
 * EFI_MEMORY_DESCRIPTORs (desc_size may be larger than the 40-byte
 * struct).  For use after ExitBootServices(); types:
 *   ConventionalMemory, BootServicesCode/Data -> USABLE;
 *   ACPIReclaimMemory -> RECLAIMABLE;
 *   LoaderCode/Data -> RESERVED (the kernel image and what it allocated;
 *   a kernel that knows which of it is dead hot-adds it later);
 *   everything else -> RESERVED. */
long kmem_memmap_uefi(const void *map, size_t map_size, size_t desc_size,
                      struct kmem_region *out, size_t cap);

/* Flattened device tree: USABLE from /memory nodes; RESERVED from
 * /reserved-memory children, the memory reservation block and the blob
 * itself at dtb_phys. */
long kmem_memmap_fdt(const void *dtb, uint64_t dtb_phys, struct kmem_region *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* SPANALLOC_MEMMAP_H */
