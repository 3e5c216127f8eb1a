/*
 * boot/memmap.c - the final UEFI memory map (taken by ExitBootServices)
 * as spanalloc regions.
 *
 * Which UEFI memory types the heap may use after ExitBootServices, and
 * why (UEFI 2.10, table 7-6 "Memory Type Usage after ExitBootServices()"):
 *
 *   type                       region       why
 *   EfiConventionalMemory      USABLE       free RAM
 *   EfiBootServicesCode/Data   USABLE       firmware's, dead after exit.  The
 *                                           kernel leaves everything of the
 *                                           firmware's it was still using
 *                                           there (stack, GDT, IDT, page
 *                                           tables) before kmem_init: it
 *                                           runs on its own stack with its
 *                                           own tables (boot/cpu.c).
 *   EfiLoaderCode/Data         RESERVED     this image (code, data, .bss:
 *                                           static stack, page tables,
 *                                           this region array, the map
 *                                           buffer) and the two pages below
 *                                           1 MiB for the AP trampoline and
 *                                           its PML4, allocated as
 *                                           EfiLoaderCode.  All in use for
 *                                           the kernel's lifetime.
 *   EfiRuntimeServicesCode/Data RESERVED    firmware runtime services must
 *                                           stay callable.
 *   EfiACPIReclaimMemory       RECLAIMABLE  ACPI tables: reclaimable once
 *                                           the OS has no use for them
 *                                           (kmem_hot_add); reserved at
 *                                           init.  The demo never reclaims.
 *   EfiACPIMemoryNVS           RESERVED     firmware's across sleep states
 *   EfiMemoryMappedIO(PortSpace), EfiPalCode, EfiUnusableMemory,
 *   EfiReservedMemoryType      RESERVED     not RAM, or broken RAM
 *   EfiPersistentMemory        RESERVED     NVDIMM: persistent storage, not
 *                                           a volatile heap
 *   EfiUnacceptedMemoryType    RESERVED     must be accepted first (TDX/SNP)
 *   anything else              RESERVED
 *
 * USABLE memory above the kernel's identity map (boot/cpu.c maps 4 GiB
 * with 2 MiB pages, and up to 512 GiB with 1 GiB pages when the CPU has
 * them) is left out and reported.  Adjacent descriptors of the same region
 * type are merged.  The region array is static (.bss of this image), so it
 * is in EfiLoaderData memory and never in the heap.
 */
#include "kernel.h"

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

static uint32_t region_type(uint32_t efi_type)
{
	switch (efi_type) {
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

static unsigned add_region(unsigned n, uint64_t base, uint64_t len, uint32_t type)
{
	if (!len)
		return n;
	if (n && regions[n - 1].type == type && regions[n - 1].base + regions[n - 1].length == base) {
		regions[n - 1].length += len;
		return n;
	}
	if (n == MAX_REGIONS)
		kfail("memory map: more than %u regions", MAX_REGIONS);
	regions[n].base = base;
	regions[n].length = len;
	regions[n].type = type;
	return n + 1;
}

const struct kmem_region *memmap_to_regions(const struct boot_info *bi, uint64_t mapped_top,
                                            struct memmap_summary *sum)
{
	unsigned n = 0;
	memset(sum, 0, sizeof(*sum));
	sum->descriptors = (unsigned)ndesc(bi);
	sum->max_addr = memmap_max_addr(bi);
	for (size_t i = 0; i < ndesc(bi); i++) {
		const struct efi_desc *d = desc_at(bi, i);
		uint64_t base = d->phys, len = d->npages << 12;
		uint32_t t = region_type(d->type);
		if (t == KMEM_REGION_USABLE && base + len > mapped_top) {
			uint64_t keep = base >= mapped_top ? 0 : mapped_top - base;
			sum->clipped_bytes += len - keep;
			n = add_region(n, base + keep, len - keep, KMEM_REGION_RESERVED);
			len = keep;
		}
		if (t == KMEM_REGION_USABLE)
			sum->usable_bytes += len;
		n = add_region(n, base, len, t);
	}
	sum->nregions = n;
	return regions;
}
