/*
 * boot/memmap.c - the final UEFI memory map (taken by ExitBootServices)
 * as spanalloc regions.
 *
 * The conversion is the library's kmem_memmap_uefi() (spanalloc/memmap.h
 * has its table: after ExitBootServices ConventionalMemory and
 * BootServicesCode/Data are USABLE, ACPIReclaimMemory RECLAIMABLE,
 * everything else RESERVED); the result is page-aligned, sorted and
 * disjoint.  Why that table is right for this kernel (UEFI 2.10, table
 * 7-6 "Memory Type Usage after ExitBootServices()"):
 *
 *   EfiBootServicesCode/Data   the firmware's, dead after exit.  The kernel
 *                              leaves everything of the firmware's it was
 *                              still using there (stack, GDT, IDT, page
 *                              tables) before kmem_init: it runs on its own
 *                              stack with its own tables (boot/cpu.c).
 *   EfiLoaderCode/Data         this image (code, data, .bss: static stack,
 *                              page tables, this region array, the map
 *                              buffer) and the two pages below 1 MiB for
 *                              the AP trampoline and its PML4, allocated as
 *                              EfiLoaderCode.  All in use for the kernel's
 *                              lifetime: RESERVED.
 *   EfiACPIReclaimMemory       ACPI tables: RECLAIMABLE (kmem_hot_add once
 *                              the OS has no use for them); the demo never
 *                              reclaims.
 *
 * USABLE memory above the kernel's identity map (boot/cpu.c maps 4 GiB
 * with 2 MiB pages, and up to 512 GiB with 1 GiB pages when the CPU has
 * them) is left out and reported.  The region array is static (.bss of
 * this image), so it is in EfiLoaderData memory and never in the heap.
 */
#include "kernel.h"
#include "spanalloc/memmap.h"

/* EFI_MEMORY_DESCRIPTOR (gnu-efi's efidef.h; spelled out here so that only
 * efi_main.c depends on the EFI headers). */
struct efi_desc {
	uint32_t type;
	uint32_t pad;
	uint64_t phys;
	uint64_t virt;
	uint64_t npages;
	uint64_t attr;
};

enum {
	EFI_RESERVED, EFI_LOADER_CODE, EFI_LOADER_DATA, EFI_BS_CODE, EFI_BS_DATA,
	EFI_RT_CODE, EFI_RT_DATA, EFI_CONVENTIONAL, EFI_UNUSABLE, EFI_ACPI_RECLAIM,
	EFI_ACPI_NVS, EFI_MMIO, EFI_MMIO_PORT, EFI_PAL_CODE, EFI_PERSISTENT,
	EFI_UNACCEPTED, EFI_NTYPES
};

static const char *const efi_type_names[EFI_NTYPES] = {
	"Reserved", "LoaderCode", "LoaderData", "BootServicesCode", "BootServicesData",
	"RuntimeServicesCode", "RuntimeServicesData", "Conventional", "Unusable",
	"ACPIReclaim", "ACPINVS", "MMIO", "MMIOPortSpace", "PalCode", "Persistent",
	"Unaccepted",
};

const char *memmap_efi_type_name(uint32_t type)
{
	return type < EFI_NTYPES ? efi_type_names[type] : "OEM/unknown";
}

static const struct efi_desc *desc_at(const struct boot_info *bi, size_t i)
{
	return (const struct efi_desc *)(bi->mmap + i * bi->desc_size);
}

static size_t ndesc(const struct boot_info *bi)
{
	return bi->desc_size ? bi->mmap_size / bi->desc_size : 0;
}

uint64_t memmap_max_addr(const struct boot_info *bi)
{
	uint64_t top = 0;
	for (size_t i = 0; i < ndesc(bi); i++) {
		const struct efi_desc *d = desc_at(bi, i);
		uint64_t end = d->phys + (d->npages << 12);
		if (end > top)
			top = end;
	}
	return top;
}

uint32_t memmap_type_at(const struct boot_info *bi, uint64_t addr)
{
	for (size_t i = 0; i < ndesc(bi); i++) {
		const struct efi_desc *d = desc_at(bi, i);
		if (addr >= d->phys && addr - d->phys < (d->npages << 12))
			return d->type;
	}
	return ~0u;
}

#define MAX_REGIONS 512
static struct kmem_region regions[MAX_REGIONS];

const struct kmem_region *memmap_to_regions(const struct boot_info *bi, uint64_t mapped_top,
                                            struct memmap_summary *sum)
{
	memset(sum, 0, sizeof(*sum));
	sum->descriptors = (unsigned)ndesc(bi);
	sum->max_addr = memmap_max_addr(bi);
	long n = kmem_memmap_uefi(bi->mmap, bi->mmap_size, bi->desc_size, regions, MAX_REGIONS);
	if (n < 0)
		kfail("memory map: kmem_memmap_uefi: error %ld (%u descriptors of %zu bytes)", n,
		      sum->descriptors, bi->desc_size);
	for (long i = 0; i < n; i++) {
		struct kmem_region *r = &regions[i];
		if (r->type != KMEM_REGION_USABLE)
			continue;
		if (r->base >= mapped_top) { /* not mapped: out of the heap */
			sum->clipped_bytes += r->length;
			r->type = KMEM_REGION_RESERVED;
			continue;
		}
		if (r->length > mapped_top - r->base) {
			sum->clipped_bytes += r->length - (mapped_top - r->base);
			r->length = mapped_top - r->base;
		}
		sum->usable_bytes += r->length;
	}
	sum->nregions = (unsigned)n;
	return regions;
}
