/*
 * boot/efi_main.c - the UEFI entry point (a GNU-EFI application).
 *
 * Before ExitBootServices it only gathers what the kernel needs and cannot
 * get afterwards:
 *   - the ACPI 2.0 RSDP from the configuration table, and from it the
 *     MADT (CPUs) and FADT (PM timer), parsed into static boot_info;
 *   - two pages below 1 MiB for the AP trampoline and its PML4 copy
 *     (AllocateMaxAddress, EfiLoaderCode: executable, and never handed to
 *     the heap, see boot/memmap.c);
 *   - this image's base and size (for the boot report and fault reports).
 * Then it takes the memory map into a static buffer and calls
 * ExitBootServices with its key; on EFI_INVALID_PARAMETER (the map changed
 * since: a stale key) it takes the map again and retries.  Nothing may
 * allocate in between, so nothing is printed there.
 *
 * After exit it calls kmain_start, which switches to the kernel's static
 * stack (the firmware's stack is EfiBootServicesData, which becomes heap)
 * and runs the kernel (boot/kmain.c).  The bootpath_* functions at the end
 * are this path's side of it (boot/kernel.h): the UEFI map (boot/memmap.c)
 * and the report on the hand-over.
 *
 * GNU-EFI with GNU_EFI_USE_MS_ABI: efi_main is called by crt0 with the
 * SysV convention, so it is *not* EFIAPI; firmware services are called
 * through their EFIAPI (ms_abi) function pointers directly.
 */
#include <efi.h>

#include "kernel.h"

static uint8_t mmap_buf[64 * 1024] __attribute__((aligned(16)));

static void early_fail(const char *what, EFI_STATUS st)
{
	kprintf("efi_main: %s failed (EFI status 0x%lx)\n", what, (unsigned long)st);
	kfail("boot: %s", what);
}

static bool guid_eq(const EFI_GUID *a, const EFI_GUID *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st);

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
	EFI_BOOT_SERVICES *bs = st->BootServices;
	EFI_STATUS s;

	serial_init();
	kprintf("\n=== spanalloc demo kernel: x86_64 UEFI (GNU-EFI), output on COM1 ===\n");

	/* This image. */
	EFI_GUID lip_guid = LOADED_IMAGE_PROTOCOL;
	EFI_LOADED_IMAGE *li = NULL;
	if (bs->HandleProtocol(image, &lip_guid, (void **)&li) == EFI_SUCCESS && li) {
		boot_info.image_base = (uint64_t)(uintptr_t)li->ImageBase;
		boot_info.image_size = li->ImageSize;
		boot_info.image_bias = boot_info.image_base; /* kernel.so is linked at 0 */
	}
	boot_info.image_file = "build/x86_64-efi/kernel.so";

	/* ACPI: prefer the 2.0 RSDP (XSDT). */
	EFI_GUID acpi20 = ACPI_20_TABLE_GUID, acpi10 = ACPI_TABLE_GUID;
	for (UINTN i = 0; i < st->NumberOfTableEntries; i++) {
		EFI_CONFIGURATION_TABLE *t = &st->ConfigurationTable[i];
		if (guid_eq(&t->VendorGuid, &acpi20))
			boot_info.rsdp = (uint64_t)(uintptr_t)t->VendorTable;
		else if (!boot_info.rsdp && guid_eq(&t->VendorGuid, &acpi10))
			boot_info.rsdp = (uint64_t)(uintptr_t)t->VendorTable;
	}
	if (!boot_info.rsdp)
		early_fail("finding the ACPI RSDP", EFI_NOT_FOUND);
	if (acpi_parse(boot_info.rsdp, &boot_info.acpi) != 0)
		early_fail("parsing the ACPI MADT", EFI_NOT_FOUND);

	/* Two pages below 1 MiB (the SIPI vector addresses 4 KiB pages
	 * 0x01000..0xff000; stay below the EBDA/VGA hole). */
	EFI_PHYSICAL_ADDRESS low = 0x9ffff;
	s = bs->AllocatePages(AllocateMaxAddress, EfiLoaderCode, 2, &low);
	if (s != EFI_SUCCESS || low < 0x1000 || low + 2 * 4096 > 0xa0000)
		early_fail("reserving the AP trampoline pages below 1 MiB", s);
	boot_info.low_pages = low;
	boot_info.fw_cr3 = read_cr3();

	kprintf("efi: image at 0x%lx (%lu KiB), RSDP 0x%lx (OEM '%s'), %u CPUs in the MADT, "
	        "trampoline pages 0x%lx\n",
	        (unsigned long)boot_info.image_base, (unsigned long)(boot_info.image_size >> 10),
	        (unsigned long)boot_info.rsdp, boot_info.acpi.oem_id, boot_info.acpi.ncpus_seen,
	        (unsigned long)low);
	kprintf("efi: exiting boot services\n");

	/* Final map + ExitBootServices, retrying on a stale key. */
	for (unsigned attempt = 1;; attempt++) {
		UINTN size = sizeof(mmap_buf), key = 0, dsize = 0;
		UINT32 dver = 0;
		s = bs->GetMemoryMap(&size, (EFI_MEMORY_DESCRIPTOR *)mmap_buf, &key, &dsize, &dver);
		if (s != EFI_SUCCESS)
			early_fail("GetMemoryMap", s);
		s = bs->ExitBootServices(image, key);
		if (s == EFI_SUCCESS) {
			boot_info.mmap = mmap_buf;
			boot_info.mmap_size = size;
			boot_info.desc_size = dsize;
			boot_info.desc_version = dver;
			boot_info.exit_attempts = attempt;
			break;
		}
		if (s != EFI_INVALID_PARAMETER || attempt == 16)
			early_fail("ExitBootServices", s);
	}

	/* The machine is ours. */
	kmain_start();
}

uint64_t bootpath_max_addr(void)
{
	return memmap_max_addr(&boot_info);
}

void bootpath_report(uint64_t mapped_top)
{
	uint32_t fw_type = memmap_type_at(&boot_info, boot_info.fw_cr3 & ~0xfffull);
	kprintf("boot: ExitBootServices done (%u attempt%s); now on the kernel's stack, GDT, IDT\n",
	        boot_info.exit_attempts, boot_info.exit_attempts == 1 ? "" : "s");
	kprintf("boot: page tables: firmware's CR3 0x%lx (in %s memory) -> kernel's 0x%lx, "
	        "identity map 0..0x%lx\n",
	        (unsigned long)boot_info.fw_cr3, memmap_efi_type_name(fw_type),
	        (unsigned long)paging_root(), (unsigned long)mapped_top);
}

const struct kmem_region *bootpath_regions(uint64_t mapped_top, struct memmap_summary *ms)
{
	const struct kmem_region *regions = memmap_to_regions(&boot_info, mapped_top, ms);
	kprintf("boot: UEFI memory map: %u descriptors (%zu bytes each, version %u) -> %u regions:\n",
	        ms->descriptors, boot_info.desc_size, boot_info.desc_version, ms->nregions);
	return regions;
}
