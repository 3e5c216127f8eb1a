/*
 * mm/memmap.c - memory-map adapters (the contract is in
 * include/spanalloc/memmap.h; see malloc.c for an overview of the heap the
 * regions feed).  Each adapter is a loop over the bootloader's entries that
 * calls kmem_memmap_add(), then kmem_memmap_normalize() over what it
 * collected; only the type tables and the walks differ.
 *
 * Bootloader structures are packed and may be unaligned (a Multiboot map
 * entry's 64-bit base sits at offset 4), so every field is read with
 * memcpy through memmap_ld32()/memmap_ld64() (little-endian: every format
 * here but the device tree, which mm/fdt.c reads).  Every read is preceded
 * by a check that it lies inside the length the structure declares.
 *
 * Static names carry a memmap_/e820_/mb1_/mb2_/efi_/limine_ prefix: the
 * amalgamation puts every file of mm/ into one translation unit.
 */
#include "spanalloc/memmap.h"
#include "spanalloc/fdt.h"

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);

static uint32_t memmap_ld32(const void *p, size_t off)
{
	uint32_t v;
	memcpy(&v, (const char *)p + off, sizeof v);
	return v;
}

static uint64_t memmap_ld64(const void *p, size_t off)
{
	uint64_t v;
	memcpy(&v, (const char *)p + off, sizeof v);
	return v;
}

/* The structure at a physical address, through the caller's offset. */
static const void *memmap_phys(uint64_t phys, uintptr_t phys_offset)
{
	return (const void *)(phys_offset + (uintptr_t)phys);
}

int kmem_memmap_add(struct kmem_region *out, size_t cap, size_t *n, uint64_t base,
                    uint64_t length, uint32_t type)
{
	if (length == 0)
		return 0;
	if (base != 0 && length > UINT64_MAX - base + 1)
		length = UINT64_MAX - base + 1; /* cut at 2^64 */
	if (*n) {
		/* Contiguous: the last region ends exactly at base.  A region
		 * that ends at 2^64 has base + length == 0 (mod 2^64); it is
		 * not contiguous with one starting at 0. */
		struct kmem_region *last = &out[*n - 1];
		if (last->type == type && last->node == 0 && base != 0 &&
		    last->base + last->length == base) {
			last->length += length;
			return 0;
		}
	}
	if (*n >= cap)
		return -KMEM_ENOMEM;
	out[*n] = (struct kmem_region){.base = base, .length = length, .type = type, .node = 0};
	(*n)++;
	return 0;
}

/* Appends a region or returns -KMEM_ENOMEM from the adapter; needs `out`,
 * `cap` and `n` in scope. */
#define MEMMAP_ADD(b, l, t)                                                                        \
	do {                                                                                       \
		if (kmem_memmap_add(out, cap, &n, (b), (l), (t)))                                  \
			return -KMEM_ENOMEM;                                                       \
	} while (0)

/* ---------------------------------------------------------------------------
 * Normalisation: page-aligned, sorted, disjoint.
 *
 * Three steps over out[] itself, with no other memory:
 *   1. each region is aligned (USABLE inward, the others outward) and its
 *      type made canonical (unknown -> RESERVED); empty ones go; while
 *      this runs, `length` holds the inclusive last byte, so a region that
 *      ends at 2^64 needs no 65th bit;
 *   2. heapsort by base (O(n log n), no recursion, no scratch);
 *   3. a sweep from low to high addresses.  For each type it keeps the
 *      highest last byte of the regions started so far: type t covers
 *      address x iff that last byte >= x (every region with base <= x has
 *      been taken in).  The output at x is the highest-ranked covering
 *      type (RESERVED > RECLAIMABLE > USABLE); it changes only where a
 *      region starts or a type's cover ends, so each step emits one
 *      segment up to the nearest such point.  The unread input sits at the
 *      top of out[] and the output grows from the bottom: each of the k
 *      regions read so far adds at most two boundaries, so the output is
 *      at most 2k - 1 segments, and it never reaches the unread input when
 *      cap >= 2n - 1.
 */

enum { MEMMAP_RANKS = 3 };
static const uint32_t memmap_rank_type[MEMMAP_RANKS] = {
	KMEM_REGION_USABLE, KMEM_REGION_RECLAIMABLE, KMEM_REGION_RESERVED};

static unsigned memmap_rank(uint32_t type)
{
	return type == KMEM_REGION_USABLE ? 0 : type == KMEM_REGION_RECLAIMABLE ? 1 : 2;
}

#define MEMMAP_PMASK ((uint64_t)KMEM_PAGE_SIZE - 1)

/* Step 1 for one region: false if nothing is left of it.  On true,
 * r->length is the inclusive last byte. */
static bool memmap_align(struct kmem_region *r)
{
	if (r->length == 0)
		return false;
	uint64_t first = r->base, last = r->base + (r->length - 1);
	if (last < first)
		last = UINT64_MAX; /* ran past 2^64: cut there */
	if (memmap_rank(r->type) == 0) {
		if (first > UINT64_MAX - MEMMAP_PMASK)
			return false;
		first = (first + MEMMAP_PMASK) & ~MEMMAP_PMASK;
		if ((last & MEMMAP_PMASK) != MEMMAP_PMASK) {
			if (last < KMEM_PAGE_SIZE)
				return false;
			last = (last & ~MEMMAP_PMASK) - 1;
		}
		if (last < first)
			return false;
	} else {
		first &= ~MEMMAP_PMASK;
		last |= MEMMAP_PMASK;
	}
	r->base = first;
	r->length = last;
	r->type = memmap_rank_type[memmap_rank(r->type)];
	return true;
}

static void memmap_sift(struct kmem_region *r, size_t root, size_t n)
{
	for (;;) {
		size_t c = 2 * root + 1;
		if (c >= n)
			return;
		if (c + 1 < n && r[c + 1].base > r[c].base)
			c++;
		if (r[root].base >= r[c].base)
			return;
		struct kmem_region t = r[root];
		r[root] = r[c];
		r[c] = t;
		root = c;
	}
}

static void memmap_sort(struct kmem_region *r, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		memmap_sift(r, i, n);
	for (size_t end = n; end > 1; end--) {
		struct kmem_region t = r[0];
		r[0] = r[end - 1];
		r[end - 1] = t;
		memmap_sift(r, 0, end - 1);
	}
}

/* Emits [first, last] of rank k at out[*w], merged with out[*w - 1] when
 * contiguous and of the same type (lengths are still inclusive lasts);
 * false if that would overwrite unread input at out[limit]. */
static bool memmap_emit(struct kmem_region *out, size_t *w, size_t limit, uint64_t first,
                        uint64_t last, unsigned k)
{
	uint32_t type = memmap_rank_type[k];
	if (*w && out[*w - 1].type == type && out[*w - 1].length + 1 == first) {
		out[*w - 1].length = last;
		return true;
	}
	if (*w >= limit)
		return false;
	out[*w] = (struct kmem_region){.base = first, .length = last, .type = type};
	(*w)++;
	return true;
}

long kmem_memmap_normalize(struct kmem_region *out, size_t n, size_t cap)
{
	if (n > cap || (!out && n))
		return -KMEM_EINVAL;
	if (n == 0)
		return 0;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (memmap_align(&out[i]))
			out[m++] = out[i];
	memmap_sort(out, m);
	memmove(out + (cap - m), out, m * sizeof *out);

	size_t rd = cap - m, w = 0; /* unread input: out[rd .. cap) */
	bool active[MEMMAP_RANKS] = {false, false, false};
	uint64_t top[MEMMAP_RANKS] = {0, 0, 0}; /* highest last byte per rank */
	uint64_t x = m ? out[rd].base : 0;
	while (rd < cap || active[0] || active[1] || active[2]) {
		while (rd < cap && out[rd].base <= x) {
			unsigned k = memmap_rank(out[rd].type);
			if (!active[k] || out[rd].length > top[k])
				top[k] = out[rd].length;
			active[k] = true;
			rd++;
		}
		int k = MEMMAP_RANKS - 1;
		while (k >= 0 && !active[k])
			k--;
		if (k < 0) {
			x = out[rd].base; /* a gap up to the next region */
			continue;
		}
		uint64_t last = top[k];
		if (rd < cap && out[rd].base - 1 < last)
			last = out[rd].base - 1; /* > x - 1: every base <= x was read */
		if (!memmap_emit(out, &w, rd, x, last, (unsigned)k))
			return -KMEM_ENOMEM;
		for (unsigned j = 0; j < MEMMAP_RANKS; j++)
			if (active[j] && top[j] <= last)
				active[j] = false;
		if (last == UINT64_MAX)
			break;
		x = last + 1;
	}
	for (size_t i = 0; i < w; i++) {
		uint64_t len = out[i].length - out[i].base + 1;
		out[i].length = len ? len : UINT64_MAX & ~MEMMAP_PMASK; /* all of 2^64 */
	}
	return (long)w;
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

/* One E820 entry at e (entry_size >= 20 bytes) into out[]. */
static int e820_entry(const void *e, size_t entry_size, struct kmem_region *out, size_t cap,
                      size_t *n)
{
	if (entry_size >= 24 && !(memmap_ld32(e, 20) & 1))
		return 0; /* ACPI 3.0: "ignore this entry" */
	return kmem_memmap_add(out, cap, n, memmap_ld64(e, 0), memmap_ld64(e, 8),
	                       e820_region_type(memmap_ld32(e, 16)));
}

long kmem_memmap_e820(const void *entries, size_t nentries, size_t entry_size,
                      struct kmem_region *out, size_t cap)
{
	if ((!entries && nentries) || entry_size < 20 || nentries > KMEM_MEMMAP_MAX_ENTRIES)
		return -KMEM_EINVAL;
	size_t n = 0;
	for (size_t i = 0; i < nentries; i++)
		if (e820_entry((const char *)entries + i * entry_size, entry_size, out, cap, &n))
			return -KMEM_ENOMEM;
	return kmem_memmap_normalize(out, n, cap);
}

/* struct multiboot_info field offsets (Multiboot 0.6.96, 3.3). */
enum {
	MB1_FLAGS = 0, MB1_MEM_LOWER = 4, MB1_MEM_UPPER = 8, MB1_CMDLINE = 16,
	MB1_MODS_COUNT = 20, MB1_MODS_ADDR = 24, MB1_SYMS = 28, MB1_MMAP_LENGTH = 44,
	MB1_MMAP_ADDR = 48, MB1_DRIVES_LENGTH = 52, MB1_DRIVES_ADDR = 56,
	MB1_LOADER_NAME = 64, MB1_APM_TABLE = 68, MB1_VBE_CONTROL = 72, MB1_VBE_MODE = 76,
	MB1_FB_ADDR = 88, MB1_FB_PITCH = 96, MB1_FB_HEIGHT = 104,
	MB1_INFO_SIZE = 88,    /* up to and including the VBE fields */
	MB1_INFO_SIZE_FB = 116, /* with the framebuffer fields (flags bit 12) */
	MB1_MOD_SIZE = 16,     /* mod_start, mod_end, string, reserved */
	MB1_APM_SIZE = 20,     /* struct apm_table */
	MB1_VBE_CONTROL_SIZE = 512, MB1_VBE_MODE_SIZE = 256,
};
/* The spec's struct, to check the offsets above against. */
struct mb1_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table;
	uint32_t boot_loader_name, apm_table, vbe_control_info, vbe_mode_info;
	uint16_t vbe_mode, vbe_interface_seg, vbe_interface_off, vbe_interface_len;
	uint64_t framebuffer_addr;
	uint32_t framebuffer_pitch, framebuffer_width, framebuffer_height;
	uint8_t framebuffer_bpp, framebuffer_type, color_info[6];
};
_Static_assert(offsetof(struct mb1_info, mem_upper) == MB1_MEM_UPPER &&
                   offsetof(struct mb1_info, cmdline) == MB1_CMDLINE &&
                   offsetof(struct mb1_info, mods_addr) == MB1_MODS_ADDR &&
                   offsetof(struct mb1_info, syms) == MB1_SYMS &&
                   offsetof(struct mb1_info, mmap_length) == MB1_MMAP_LENGTH &&
                   offsetof(struct mb1_info, mmap_addr) == MB1_MMAP_ADDR &&
                   offsetof(struct mb1_info, drives_addr) == MB1_DRIVES_ADDR &&
                   offsetof(struct mb1_info, boot_loader_name) == MB1_LOADER_NAME &&
                   offsetof(struct mb1_info, apm_table) == MB1_APM_TABLE &&
                   offsetof(struct mb1_info, vbe_mode_info) == MB1_VBE_MODE &&
                   offsetof(struct mb1_info, framebuffer_addr) == MB1_INFO_SIZE &&
                   offsetof(struct mb1_info, framebuffer_addr) == MB1_FB_ADDR &&
                   offsetof(struct mb1_info, framebuffer_pitch) == MB1_FB_PITCH &&
                   offsetof(struct mb1_info, framebuffer_height) == MB1_FB_HEIGHT &&
                   offsetof(struct mb1_info, color_info) + 6 == MB1_INFO_SIZE_FB,
               "Multiboot 0.6.96 struct multiboot_info offsets");

#define MB1_F_MEM (1u << 0)
#define MB1_F_CMDLINE (1u << 2)
#define MB1_F_MODS (1u << 3)
#define MB1_F_ELF (1u << 5)
#define MB1_F_MMAP (1u << 6)
#define MB1_F_DRIVES (1u << 7)
#define MB1_F_LOADER_NAME (1u << 9)
#define MB1_F_APM (1u << 10)
#define MB1_F_VBE (1u << 11)
#define MB1_F_FB (1u << 12)
#define MB1_MAX_MODS 4096 /* more is a corrupt count */
#define MB1_MAX_STRING (1u << 16)

/* Length of the NUL-terminated string at s, at most max. */
static size_t memmap_strlen(const char *s, size_t max)
{
	size_t i = 0;
	while (i < max && s[i])
		i++;
	return i;
}

/* Reserves the string at physical address a (and its NUL). */
#define MEMMAP_ADD_STRING(a)                                                                       \
	MEMMAP_ADD((a), memmap_strlen(memmap_phys((a), phys_offset), MB1_MAX_STRING) + 1,         \
	           KMEM_REGION_RESERVED)

long kmem_memmap_multiboot1(const void *info, uint64_t info_phys, uintptr_t phys_offset,
                            struct kmem_region *out, size_t cap)
{
	if (!info)
		return -KMEM_EINVAL;
	uint32_t flags = memmap_ld32(info, MB1_FLAGS);
	size_t n = 0;
	if (flags & MB1_F_MMAP) {
		/* Entries: u32 size (not counting itself), then an E820 entry. */
		uint32_t len = memmap_ld32(info, MB1_MMAP_LENGTH);
		uint64_t addr = memmap_ld32(info, MB1_MMAP_ADDR);
		const char *p = memmap_phys(addr, phys_offset);
		for (uint32_t off = 0; off < len;) {
			if (len - off < 4)
				return -KMEM_EINVAL;
			uint32_t size = memmap_ld32(p, off);
			if (size < 20 || size > len - off - 4)
				return -KMEM_EINVAL;
			if (e820_entry(p + off + 4, size, out, cap, &n))
				return -KMEM_ENOMEM;
			off += size + 4;
		}
		MEMMAP_ADD(addr, len, KMEM_REGION_RESERVED);
	} else if (flags & MB1_F_MEM) {
		/* KiB below 640 KiB and from 1 MiB up to the first hole. */
		MEMMAP_ADD(0, (uint64_t)memmap_ld32(info, MB1_MEM_LOWER) << 10, KMEM_REGION_USABLE);
		MEMMAP_ADD(1u << 20, (uint64_t)memmap_ld32(info, MB1_MEM_UPPER) << 10,
		           KMEM_REGION_USABLE);
	} else {
		return -KMEM_EINVAL; /* no memory information at all */
	}
	MEMMAP_ADD(info_phys, (flags & MB1_F_FB) ? MB1_INFO_SIZE_FB : MB1_INFO_SIZE,
	           KMEM_REGION_RESERVED);
	if (flags & MB1_F_CMDLINE)
		MEMMAP_ADD_STRING(memmap_ld32(info, MB1_CMDLINE));
	if (flags & MB1_F_LOADER_NAME)
		MEMMAP_ADD_STRING(memmap_ld32(info, MB1_LOADER_NAME));
	if (flags & MB1_F_MODS) {
		uint32_t count = memmap_ld32(info, MB1_MODS_COUNT);
		uint64_t mods = memmap_ld32(info, MB1_MODS_ADDR);
		if (count > MB1_MAX_MODS)
			return -KMEM_EINVAL;
		MEMMAP_ADD(mods, (uint64_t)count * MB1_MOD_SIZE, KMEM_REGION_RESERVED);
		const char *m = memmap_phys(mods, phys_offset);
		for (uint32_t i = 0; i < count; i++) {
			uint32_t start = memmap_ld32(m, i * MB1_MOD_SIZE);
			uint32_t end = memmap_ld32(m, i * MB1_MOD_SIZE + 4);
			uint32_t str = memmap_ld32(m, i * MB1_MOD_SIZE + 8);
			if (end < start)
				return -KMEM_EINVAL;
			MEMMAP_ADD(start, end - start, KMEM_REGION_RESERVED);
			if (str)
				MEMMAP_ADD_STRING(str);
		}
	}
	if (flags & MB1_F_ELF) {
		/* num, size, addr, shndx: the section header table. */
		uint64_t num = memmap_ld32(info, MB1_SYMS), size = memmap_ld32(info, MB1_SYMS + 4);
		MEMMAP_ADD(memmap_ld32(info, MB1_SYMS + 8), num * size, KMEM_REGION_RESERVED);
	}
	if (flags & MB1_F_DRIVES)
		MEMMAP_ADD(memmap_ld32(info, MB1_DRIVES_ADDR), memmap_ld32(info, MB1_DRIVES_LENGTH),
		           KMEM_REGION_RESERVED);
	if (flags & MB1_F_APM)
		MEMMAP_ADD(memmap_ld32(info, MB1_APM_TABLE), MB1_APM_SIZE, KMEM_REGION_RESERVED);
	if (flags & MB1_F_VBE) {
		MEMMAP_ADD(memmap_ld32(info, MB1_VBE_CONTROL), MB1_VBE_CONTROL_SIZE,
		           KMEM_REGION_RESERVED);
		MEMMAP_ADD(memmap_ld32(info, MB1_VBE_MODE), MB1_VBE_MODE_SIZE, KMEM_REGION_RESERVED);
	}
	if (flags & MB1_F_FB)
		MEMMAP_ADD(memmap_ld64(info, MB1_FB_ADDR),
		           (uint64_t)memmap_ld32(info, MB1_FB_PITCH) * memmap_ld32(info, MB1_FB_HEIGHT),
		           KMEM_REGION_RESERVED);
	return kmem_memmap_normalize(out, n, cap);
}

/* ---------------------------------------------------------------------------
 * UEFI
 */

enum {
	EFI_RESERVED, EFI_LOADER_CODE, EFI_LOADER_DATA, EFI_BS_CODE, EFI_BS_DATA,
	EFI_RT_CODE, EFI_RT_DATA, EFI_CONVENTIONAL, EFI_UNUSABLE, EFI_ACPI_RECLAIM,
	EFI_ACPI_NVS, EFI_MMIO, EFI_MMIO_PORT, EFI_PAL_CODE, EFI_PERSISTENT, EFI_UNACCEPTED,
};
/* EFI_MEMORY_DESCRIPTOR: u32 Type, 4 bytes padding, u64 PhysicalStart,
 * VirtualStart, NumberOfPages, Attribute. */
enum { EFI_D_TYPE = 0, EFI_D_PHYS = 8, EFI_D_NPAGES = 24, EFI_D_ATTR = 32, EFI_DESC_SIZE = 40 };
struct efi_memory_descriptor {
	uint32_t type, pad;
	uint64_t physical_start, virtual_start, number_of_pages, attribute;
};
_Static_assert(sizeof(struct efi_memory_descriptor) == EFI_DESC_SIZE &&
                   offsetof(struct efi_memory_descriptor, physical_start) == EFI_D_PHYS &&
                   offsetof(struct efi_memory_descriptor, number_of_pages) == EFI_D_NPAGES &&
                   offsetof(struct efi_memory_descriptor, attribute) == EFI_D_ATTR,
               "UEFI 2.10 EFI_MEMORY_DESCRIPTOR layout");
#define EFI_MEMORY_SP (1ull << 18)      /* specific purpose: for a driver, not the OS heap */
#define EFI_MEMORY_RUNTIME (1ull << 63) /* firmware runtime services use it */
#define EFI_PAGE_SHIFT 12

static uint32_t efi_region_type(uint32_t type, uint64_t attr)
{
	if (attr & (EFI_MEMORY_SP | EFI_MEMORY_RUNTIME))
		return KMEM_REGION_RESERVED;
	switch (type) {
	case EFI_CONVENTIONAL:
	case EFI_BS_CODE:
	case EFI_BS_DATA:
		return KMEM_REGION_USABLE;
	case EFI_ACPI_RECLAIM:
		return KMEM_REGION_RECLAIMABLE;
	default:
		return KMEM_REGION_RESERVED;
	}
}

/* The descriptors of a map of map_size bytes into out[] (not normalised). */
static long efi_walk(const char *map, size_t map_size, size_t desc_size, struct kmem_region *out,
                     size_t cap, size_t *np)
{
	if ((!map && map_size) || desc_size < EFI_DESC_SIZE || map_size % desc_size ||
	    map_size / desc_size > KMEM_MEMMAP_MAX_ENTRIES)
		return -KMEM_EINVAL;
	size_t n = *np;
	for (size_t off = 0; off < map_size; off += desc_size) {
		uint64_t npages = memmap_ld64(map, off + EFI_D_NPAGES);
		uint64_t len = npages >> (64 - EFI_PAGE_SHIFT) ? UINT64_MAX : npages << EFI_PAGE_SHIFT;
		MEMMAP_ADD(memmap_ld64(map, off + EFI_D_PHYS), len,
		           efi_region_type(memmap_ld32(map, off + EFI_D_TYPE),
		                           memmap_ld64(map, off + EFI_D_ATTR)));
	}
	*np = n;
	return 0;
}

long kmem_memmap_uefi(const void *map, size_t map_size, size_t desc_size,
                      struct kmem_region *out, size_t cap)
{
	size_t n = 0;
	long err = efi_walk(map, map_size, desc_size, out, cap, &n);
	return err ? err : kmem_memmap_normalize(out, n, cap);
}

/* ---------------------------------------------------------------------------
 * Multiboot2
 */

enum {
	MB2_TAG_END = 0, MB2_TAG_MODULE = 3, MB2_TAG_MEMINFO = 4, MB2_TAG_MMAP = 6,
	MB2_TAG_FRAMEBUFFER = 8, MB2_TAG_ELF_SECTIONS = 9, MB2_TAG_EFI_MMAP = 17,
	MB2_TAG_EFI_BS = 18,
};
/* Minimum sizes of the tags read (header included). */
enum {
	MB2_HDR = 8, MB2_MODULE_MIN = 16, MB2_MEMINFO_MIN = 16, MB2_MMAP_HDR = 16,
	MB2_MMAP_ENTRY_MIN = 24, MB2_FB_MIN = 30, MB2_EFI_MMAP_HDR = 16,
	MB2_ELF_HDR = 20, /* u32 type, size, num, entsize, shndx (GRUB's layout) */
	ELF32_SHDR = 40, ELF64_SHDR = 64,
};
struct mb2_mmap_entry {
	uint64_t base_addr, length;
	uint32_t type, reserved;
};
struct mb2_framebuffer {
	uint32_t type, size;
	uint64_t framebuffer_addr;
	uint32_t framebuffer_pitch, framebuffer_width, framebuffer_height;
	uint8_t framebuffer_bpp, framebuffer_type;
};
_Static_assert(sizeof(struct mb2_mmap_entry) == MB2_MMAP_ENTRY_MIN &&
                   offsetof(struct mb2_mmap_entry, type) == 16 &&
                   offsetof(struct mb2_framebuffer, framebuffer_pitch) == 16 &&
                   offsetof(struct mb2_framebuffer, framebuffer_height) == 24 &&
                   offsetof(struct mb2_framebuffer, framebuffer_type) + 1 == MB2_FB_MIN,
               "Multiboot2 1.0 memory map entry and framebuffer tag layout");
#define MB2_MAX_SIZE (64u << 20) /* a larger total_size is corrupt */

/* Offset of the first tag of `type` in the walk, or 0 if none; -1 if the
 * structure is malformed (a tag runs past total_size, no end tag). */
static long mb2_find(const char *mbi, uint32_t total, uint32_t type)
{
	for (uint32_t off = MB2_HDR; total - off >= MB2_HDR;) {
		uint32_t t = memmap_ld32(mbi, off), size = memmap_ld32(mbi, off + 4);
		if (size < MB2_HDR || size > total - off)
			return -1;
		if (t == MB2_TAG_END)
			return type == MB2_TAG_END ? (long)off : 0;
		if (t == type)
			return (long)off;
		off += (size + 7) & ~7u;
		if (off > total)
			return -1;
	}
	return -1;
}

static long mb2_memory(const char *mbi, uint32_t total, struct kmem_region *out, size_t cap,
                       size_t *np)
{
	size_t n = *np;
	long efi = mb2_find(mbi, total, MB2_TAG_EFI_MMAP);
	long mmap = mb2_find(mbi, total, MB2_TAG_MMAP);
	long meminfo = mb2_find(mbi, total, MB2_TAG_MEMINFO);
	if (mb2_find(mbi, total, MB2_TAG_EFI_BS) > 0)
		efi = 0; /* boot services still run: their memory is not free yet */
	if (efi > 0) {
		const char *t = mbi + efi;
		uint32_t size = memmap_ld32(t, 4);
		if (size < MB2_EFI_MMAP_HDR)
			return -KMEM_EINVAL;
		return efi_walk(t + MB2_EFI_MMAP_HDR, size - MB2_EFI_MMAP_HDR, memmap_ld32(t, 8), out,
		                cap, np);
	}
	if (mmap > 0) {
		const char *t = mbi + mmap;
		uint32_t size = memmap_ld32(t, 4);
		if (size < MB2_MMAP_HDR)
			return -KMEM_EINVAL;
		uint32_t esize = memmap_ld32(t, 8);
		if (esize < MB2_MMAP_ENTRY_MIN || esize % 8 || (size - MB2_MMAP_HDR) % esize)
			return -KMEM_EINVAL;
		for (uint32_t off = MB2_MMAP_HDR; off < size; off += esize)
			MEMMAP_ADD(memmap_ld64(t, off), memmap_ld64(t, off + 8),
			           e820_region_type(memmap_ld32(t, off + 16)));
	} else if (meminfo > 0) {
		const char *t = mbi + meminfo;
		if (memmap_ld32(t, 4) < MB2_MEMINFO_MIN)
			return -KMEM_EINVAL;
		MEMMAP_ADD(0, (uint64_t)memmap_ld32(t, 8) << 10, KMEM_REGION_USABLE);
		MEMMAP_ADD(1u << 20, (uint64_t)memmap_ld32(t, 12) << 10, KMEM_REGION_USABLE);
	} else {
		return -KMEM_EINVAL; /* no memory information at all */
	}
	*np = n;
	return 0;
}

/* The ELF-symbols tag: GRUB loads the kernel's sections that the image
 * does not (symbol and string tables, debug info) into memory the map
 * calls usable and puts their addresses in sh_addr; the allocated ones
 * are the image, at their link addresses.  Every section with an address
 * and a size is reserved; runs less than a page apart become one region
 * (no whole page lies between them), so a kernel's dozens of sections
 * take a few entries. */
static long mb2_elf_sections(const char *t, uint32_t size, struct kmem_region *out, size_t cap,
                             size_t *np)
{
	size_t n = *np;
	if (size < MB2_ELF_HDR)
		return -KMEM_EINVAL;
	uint32_t num = memmap_ld32(t, 8), esize = memmap_ld32(t, 12);
	bool is64 = esize >= ELF64_SHDR;
	if (esize < ELF32_SHDR || (size - MB2_ELF_HDR) / esize < num)
		return -KMEM_EINVAL;
	uint64_t lo = 0, hi = 0; /* the run being gathered, [lo, hi) */
	for (uint32_t i = 0; i < num; i++) {
		const char *sh = t + MB2_ELF_HDR + (size_t)i * esize;
		uint64_t addr = is64 ? memmap_ld64(sh, 16) : memmap_ld32(sh, 12);
		uint64_t len = is64 ? memmap_ld64(sh, 32) : memmap_ld32(sh, 20);
		if (memmap_ld32(sh, 4) == 0 || addr == 0 || len == 0)
			continue; /* SHT_NULL, or not in memory */
		if (len > UINT64_MAX - addr)
			len = UINT64_MAX - addr;
		if (hi && addr >= lo && (addr <= hi || addr - hi < KMEM_PAGE_SIZE)) {
			if (addr + len > hi)
				hi = addr + len;
			continue;
		}
		if (hi)
			MEMMAP_ADD(lo, hi - lo, KMEM_REGION_RESERVED);
		lo = addr;
		hi = addr + len;
	}
	if (hi)
		MEMMAP_ADD(lo, hi - lo, KMEM_REGION_RESERVED);
	*np = n;
	return 0;
}

long kmem_memmap_multiboot2(const void *mbi, uint64_t mbi_phys, struct kmem_region *out,
                            size_t cap)
{
	if (!mbi)
		return -KMEM_EINVAL;
	const char *b = mbi;
	uint32_t total = memmap_ld32(b, 0);
	if (total < MB2_HDR + MB2_HDR || total > MB2_MAX_SIZE || mb2_find(b, total, MB2_TAG_END) <= 0)
		return -KMEM_EINVAL; /* every tag is inside total_size from here on */
	size_t n = 0;
	long err = mb2_memory(b, total, out, cap, &n);
	if (err)
		return err;
	MEMMAP_ADD(mbi_phys, total, KMEM_REGION_RESERVED);
	for (uint32_t off = MB2_HDR;;) {
		uint32_t t = memmap_ld32(b, off), size = memmap_ld32(b, off + 4);
		if (t == MB2_TAG_END)
			break;
		if (t == MB2_TAG_MODULE) {
			if (size < MB2_MODULE_MIN)
				return -KMEM_EINVAL;
			uint32_t start = memmap_ld32(b, off + 8), end = memmap_ld32(b, off + 12);
			if (end < start)
				return -KMEM_EINVAL;
			MEMMAP_ADD(start, end - start, KMEM_REGION_RESERVED);
		} else if (t == MB2_TAG_FRAMEBUFFER) {
			if (size < MB2_FB_MIN)
				return -KMEM_EINVAL;
			MEMMAP_ADD(memmap_ld64(b, off + 8),
			           (uint64_t)memmap_ld32(b, off + 16) * memmap_ld32(b, off + 24),
			           KMEM_REGION_RESERVED);
		} else if (t == MB2_TAG_ELF_SECTIONS) {
			err = mb2_elf_sections(b + off, size, out, cap, &n);
			if (err)
				return err;
		}
		off += (size + 7) & ~7u;
	}
	return kmem_memmap_normalize(out, n, cap);
}

/* ---------------------------------------------------------------------------
 * Limine
 */

enum {
	LIMINE_USABLE, LIMINE_RESERVED, LIMINE_ACPI_RECLAIMABLE, LIMINE_ACPI_NVS,
	LIMINE_BAD_MEMORY, LIMINE_BOOTLOADER_RECLAIMABLE, LIMINE_EXECUTABLE_AND_MODULES,
	LIMINE_FRAMEBUFFER,
};
/* struct limine_memmap_response { u64 revision, entry_count; entries }
 * and struct limine_memmap_entry { u64 base, length, type }. */
enum { LIMINE_R_COUNT = 8, LIMINE_R_ENTRIES = 16, LIMINE_E_LENGTH = 8, LIMINE_E_TYPE = 16 };

struct limine_memmap_entry {
	uint64_t base, length, type;
};
struct limine_memmap_response {
	uint64_t revision, entry_count, entries; /* entries: a 64-bit pointer */
};
_Static_assert(offsetof(struct limine_memmap_entry, length) == LIMINE_E_LENGTH &&
                   offsetof(struct limine_memmap_entry, type) == LIMINE_E_TYPE &&
                   offsetof(struct limine_memmap_response, entry_count) == LIMINE_R_COUNT &&
                   offsetof(struct limine_memmap_response, entries) == LIMINE_R_ENTRIES,
               "Limine protocol memmap layout");

static uint32_t limine_region_type(uint64_t t)
{
	switch (t) {
	case LIMINE_USABLE:
		return KMEM_REGION_USABLE;
	case LIMINE_ACPI_RECLAIMABLE:
	case LIMINE_BOOTLOADER_RECLAIMABLE:
		return KMEM_REGION_RECLAIMABLE;
	default:
		return KMEM_REGION_RESERVED;
	}
}

long kmem_memmap_limine(const void *response, struct kmem_region *out, size_t cap)
{
	if (!response)
		return -KMEM_EINVAL;
	uint64_t count = memmap_ld64(response, LIMINE_R_COUNT);
	uint64_t entries = memmap_ld64(response, LIMINE_R_ENTRIES);
	if (count > KMEM_MEMMAP_MAX_ENTRIES || (count && !entries))
		return -KMEM_EINVAL;
	const char *e = (const char *)(uintptr_t)entries;
	size_t n = 0;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t p = memmap_ld64(e, (size_t)i * sizeof(uint64_t));
		if (!p)
			return -KMEM_EINVAL;
		const void *ent = (const void *)(uintptr_t)p;
		MEMMAP_ADD(memmap_ld64(ent, 0), memmap_ld64(ent, LIMINE_E_LENGTH),
		           limine_region_type(memmap_ld64(ent, LIMINE_E_TYPE)));
	}
	return kmem_memmap_normalize(out, n, cap);
}

/* ---------------------------------------------------------------------------
 * Device tree (the walk is mm/fdt.c's)
 */

long kmem_memmap_fdt(const void *dtb, uint64_t dtb_phys, struct kmem_region *out, size_t cap)
{
	long n = fdt_memory_map(dtb, dtb_phys, NULL, 0, out, cap, NULL);
	return n < 0 ? n : kmem_memmap_normalize(out, (size_t)n, cap);
}

#undef MEMMAP_ADD_STRING
#undef MEMMAP_ADD
