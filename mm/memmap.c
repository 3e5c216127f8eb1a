/*
 * mm/memmap.c - memory-map adapters (the contract is in
 * include/spanalloc/memmap.h; see malloc.c for an overview of the heap the
 * regions feed).  Each adapter is a loop over the bootloader's entries that
 * calls kmem_memmap_add(); only the type tables differ.
 *
 * Bootloader structures are packed and may be unaligned (a Multiboot map
 * entry's 64-bit base sits at offset 4), so every field is read with
 * memcpy through ld32()/ld64().
 */
#include "spanalloc/memmap.h"

void *memcpy(void *dst, const void *src, size_t n);

static uint32_t ld32(const void *p, size_t off)
{
	uint32_t v;
	memcpy(&v, (const char *)p + off, sizeof v);
	return v;
}

static uint64_t ld64(const void *p, size_t off)
{
	uint64_t v;
	memcpy(&v, (const char *)p + off, sizeof v);
	return v;
}

int kmem_memmap_add(struct kmem_region *out, size_t cap, size_t *n, uint64_t base,
                    uint64_t length, uint32_t type)
{
	if (length == 0)
		return 0;
	if (length > UINT64_MAX - base + 1 && base != 0)
		length = UINT64_MAX - base + 1; /* cut at 2^64 */
	if (*n) {
		struct kmem_region *last = &out[*n - 1];
		if (last->type == type && last->base + last->length == base &&
		    last->length + length >= last->length) {
			last->length += length;
			return 0;
		}
	}
	if (*n >= cap)
		return -KMEM_ENOMEM;
	out[*n].base = base;
	out[*n].length = length;
	out[*n].type = type;
	(*n)++;
	return 0;
}

/* ---------------------------------------------------------------------------
 * BIOS E820 and Multiboot (v1)
 */

enum { E820_RAM = 1, E820_RESERVED = 2, E820_ACPI = 3, E820_NVS = 4, E820_UNUSABLE = 5 };

static uint32_t e820_region_type(uint32_t t)
{
	switch (t) {
	case E820_RAM:
		return KMEM_REGION_USABLE;
	case E820_ACPI:
		return KMEM_REGION_RECLAIMABLE;
	default:
		return KMEM_REGION_RESERVED;
	}
}

/* One E820 entry at e (entry_size bytes) into out[]. */
static int e820_entry(const void *e, size_t entry_size, struct kmem_region *out, size_t cap,
                      size_t *n)
{
	if (entry_size >= 24 && !(ld32(e, 20) & 1))
		return 0; /* ACPI 3.0: "ignore this entry" */
	return kmem_memmap_add(out, cap, n, ld64(e, 0), ld64(e, 8), e820_region_type(ld32(e, 16)));
}

long kmem_memmap_e820(const void *entries, size_t nentries, size_t entry_size,
                      struct kmem_region *out, size_t cap)
{
	if ((!entries && nentries) || entry_size < 20)
		return -KMEM_EINVAL;
	size_t n = 0;
	for (size_t i = 0; i < nentries; i++)
		if (e820_entry((const char *)entries + i * entry_size, entry_size, out, cap, &n))
			return -KMEM_ENOMEM;
	return (long)n;
}

/* struct multiboot_info field offsets (Multiboot 0.6.96, 3.3). */
enum {
	MB1_FLAGS = 0, MB1_MEM_LOWER = 4, MB1_MEM_UPPER = 8, MB1_CMDLINE = 16,
	MB1_MODS_COUNT = 20, MB1_MODS_ADDR = 24, MB1_MMAP_LENGTH = 44, MB1_MMAP_ADDR = 48,
	MB1_INFO_SIZE = 88, /* up to and including the VBE fields */
	MB1_MOD_SIZE = 16,  /* mod_start, mod_end, string, reserved */
};
#define MB1_F_MEM (1u << 0)
#define MB1_F_CMDLINE (1u << 2)
#define MB1_F_MODS (1u << 3)
#define MB1_F_MMAP (1u << 6)
#define MB1_MAX_MODS 4096 /* more is a corrupt count */

/* Length of the NUL-terminated string at s, at most max. */
static size_t str_len(const char *s, size_t max)
{
	size_t i = 0;
	while (i < max && s[i])
		i++;
	return i;
}

long kmem_memmap_multiboot1(const void *info, uint64_t info_phys, uintptr_t phys_offset,
                            struct kmem_region *out, size_t cap)
{
	if (!info)
		return -KMEM_EINVAL;
	uint32_t flags = ld32(info, MB1_FLAGS);
	size_t n = 0;
#define ADD(b, l, t)                                                                               \
	do {                                                                                       \
		if (kmem_memmap_add(out, cap, &n, (b), (l), (t)))                                  \
			return -KMEM_ENOMEM;                                                       \
	} while (0)
	if (flags & MB1_F_MMAP) {
		/* Entries: u32 size (not counting itself), then an E820 entry. */
		uint32_t len = ld32(info, MB1_MMAP_LENGTH);
		uint64_t addr = ld32(info, MB1_MMAP_ADDR);
		const char *p = (const char *)(phys_offset + (uintptr_t)addr);
		for (uint32_t off = 0; off < len;) {
			if (len - off < 4)
				return -KMEM_EINVAL;
			uint32_t size = ld32(p, off);
			if (size < 20 || size > len - off - 4)
				return -KMEM_EINVAL;
			if (e820_entry(p + off + 4, size, out, cap, &n))
				return -KMEM_ENOMEM;
			off += size + 4;
		}
		ADD(addr, len, KMEM_REGION_RESERVED);
	} else if (flags & MB1_F_MEM) {
		/* KiB below 640 KiB and from 1 MiB up to the first hole. */
		ADD(0, (uint64_t)ld32(info, MB1_MEM_LOWER) << 10, KMEM_REGION_USABLE);
		ADD(1u << 20, (uint64_t)ld32(info, MB1_MEM_UPPER) << 10, KMEM_REGION_USABLE);
	} else {
		return -KMEM_EINVAL; /* no memory information at all */
	}
	ADD(info_phys, MB1_INFO_SIZE, KMEM_REGION_RESERVED);
	if (flags & MB1_F_CMDLINE) {
		uint64_t cmd = ld32(info, MB1_CMDLINE);
		ADD(cmd, str_len((const char *)(phys_offset + (uintptr_t)cmd), 1u << 16) + 1,
		    KMEM_REGION_RESERVED);
	}
	if (flags & MB1_F_MODS) {
		uint32_t count = ld32(info, MB1_MODS_COUNT);
		uint64_t mods = ld32(info, MB1_MODS_ADDR);
		if (count > MB1_MAX_MODS)
			return -KMEM_EINVAL;
		ADD(mods, (uint64_t)count * MB1_MOD_SIZE, KMEM_REGION_RESERVED);
		const char *m = (const char *)(phys_offset + (uintptr_t)mods);
		for (uint32_t i = 0; i < count; i++) {
			uint32_t start = ld32(m, i * MB1_MOD_SIZE), end = ld32(m, i * MB1_MOD_SIZE + 4);
			if (end < start)
				return -KMEM_EINVAL;
			ADD(start, end - start, KMEM_REGION_RESERVED);
		}
	}
#undef ADD
	return (long)n;
}
