/*
 * boot/multiboot/mb_main.c - the Multiboot entry point, in long mode on
 * the boot stack (boot/multiboot/entry.S), identity mapped.  One image,
 * two protocols, told apart by the magic in EAX: Multiboot (v1), from
 * QEMU's -kernel, and Multiboot2, from GRUB (boot/grub.mk).
 *
 * It gathers what UEFI would have handed over (boot/efi_main.c does the
 * same there) and calls kmain_start:
 *   - the memory map: the E820 entries in the MBI through the library's
 *     adapter (kmem_memmap_multiboot1 or kmem_memmap_multiboot2, which
 *     also reserve the MBI and what it points to: modules, strings, the
 *     framebuffer);
 *   - the ACPI RSDP: GRUB copies it into the MBI (tag 15, ACPI 2.0+, or
 *     14, ACPI 1.0); without those, where a BIOS leaves it, in the EBDA
 *     or 0xe0000-0xfffff; from it the MADT (CPUs) and FADT (PM timer);
 *   - two free pages below 1 MiB for the AP trampoline and its PML4 copy:
 *     the highest pair, below the EBDA, that the map says is RAM and no
 *     other entry touches (QEMU puts the v1 MBI's memory map down there).
 * bootpath_regions then reserves, on top of the adapter's regions, the
 * whole first MiB (BIOS data, EBDA, ROMs, the trampoline pages), this
 * image (loaded at 1 MiB, which the map calls RAM) and RAM the kernel's
 * page tables do not reach.  What else a loader leaves in RAM is dead
 * once it jumps here: GRUB's own code and heap, and the sections of
 * kernel.elf that no segment loads (symbols, DWARF), which GRUB loads
 * anyway for the ELF-sections tag; this kernel never reads them.
 */
#include "kernel.h"
#include "spanalloc/memmap.h"

#define MB1_BOOT_MAGIC 0x2badb002u
#define MB1_F_LOADER_NAME (1u << 9)
#define MB2_BOOT_MAGIC 0x36d76289u
enum { MB2_TAG_LOADER_NAME = 2, MB2_TAG_ACPI_OLD = 14, MB2_TAG_ACPI_NEW = 15 };

extern char __image_start[], __image_end[];

static struct kmem_region regions[256];
static size_t nmap;             /* regions[0 .. nmap): the adapter's */
static bool mb2;                /* booted by Multiboot2 (else v1) */
static const char *loader_name = "?";

static bool low_free(uint64_t a, uint64_t len)
{
	bool in_ram = false;
	for (size_t i = 0; i < nmap; i++) {
		const struct kmem_region *r = &regions[i];
		if (a + len <= r->base || a >= r->base + r->length)
			continue;
		if (r->type != KMEM_REGION_USABLE)
			return false;
		in_ram |= r->base <= a && a + len <= r->base + r->length;
	}
	return in_ram;
}

static uint32_t ld32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The first Multiboot2 tag of `type`, NULL if none.  Only after
 * kmem_memmap_multiboot2 accepted the MBI: its tags are then each inside
 * total_size, up to an end tag. */
static const uint8_t *mb2_tag(const uint8_t *mbi, uint32_t type)
{
	for (const uint8_t *t = mbi + 8; ld32(t) != 0; t += (ld32(t + 4) + 7) & ~7u)
		if (ld32(t) == type)
			return t;
	return NULL;
}

/* The adapter's map into regions[]; the loader's name and the RSDP, where
 * the MBI has them.  Half the array: bootpath_regions adds up to one
 * region per entry, + 2. */
static void read_mbi(uint32_t mbi_phys)
{
	const uint8_t *mbi = (const uint8_t *)(uintptr_t)mbi_phys;
	size_t cap = ARRAY_SIZE(regions) / 2 - 1;
	long n;
	if (mb2) {
		n = kmem_memmap_multiboot2(mbi, mbi_phys, regions, cap);
		if (n < 0)
			kfail("multiboot2: MBI at 0x%x unreadable (kmem_memmap_multiboot2: %ld)",
			      mbi_phys, n);
		const uint8_t *t = mb2_tag(mbi, MB2_TAG_LOADER_NAME);
		if (t)
			loader_name = (const char *)(t + 8);
		if ((t = mb2_tag(mbi, MB2_TAG_ACPI_NEW)) || (t = mb2_tag(mbi, MB2_TAG_ACPI_OLD)))
			boot_info.rsdp = (uint64_t)(uintptr_t)(t + 8); /* a copy, in the MBI */
	} else {
		n = kmem_memmap_multiboot1(mbi, mbi_phys, 0, regions, cap);
		if (n < 0)
			kfail("multiboot: memory map unreadable (kmem_memmap_multiboot1: %ld)", n);
		if (ld32(mbi) & MB1_F_LOADER_NAME)
			loader_name = (const char *)(uintptr_t)ld32(mbi + 64);
	}
	nmap = (size_t)n;
}

void mb_main(uint32_t magic, uint32_t mbi_phys);

void mb_main(uint32_t magic, uint32_t mbi_phys)
{
	serial_init();
	mb2 = magic == MB2_BOOT_MAGIC;
	kprintf("\n=== spanalloc demo kernel: x86_64 %s, output on COM1 ===\n",
	        mb2 ? "Multiboot2" : "Multiboot (v1)");
	if (magic != MB1_BOOT_MAGIC && !mb2)
		kfail("multiboot: EAX 0x%x at entry, neither Multiboot magic", magic);
	read_mbi(mbi_phys);

	boot_info.image_base = (uint64_t)(uintptr_t)__image_start;
	boot_info.image_size = (uint64_t)(__image_end - __image_start);
	boot_info.image_bias = 0; /* runs where it is linked */
	boot_info.image_file = "build/x86_64-mb/kernel.elf";
	boot_info.fw_cr3 = read_cr3();

	const char *rsdp_from = "the MBI's ACPI tag";
	if (!boot_info.rsdp) {
		boot_info.rsdp = acpi_find_rsdp_bios();
		rsdp_from = "the BIOS areas";
	}
	if (!boot_info.rsdp)
		kfail("multiboot: no ACPI RSDP in the MBI, the EBDA or 0xe0000-0xfffff");
	if (acpi_parse(boot_info.rsdp, &boot_info.acpi) != 0)
		kfail("multiboot: parsing the ACPI MADT failed");

	/* The SIPI vector addresses 4 KiB pages below 1 MiB; stay below the
	 * EBDA and the VGA hole. */
	uint64_t low = 0x9e000;
	while (low >= 0x1000 && !low_free(low, 2 * KMEM_PAGE_SIZE))
		low -= KMEM_PAGE_SIZE;
	if (low < 0x1000)
		kfail("multiboot: no two free pages below 640 KiB for the AP trampoline");
	boot_info.low_pages = low;

	kprintf("multiboot: loaded by '%s', MBI 0x%x", loader_name, mbi_phys);
	if (mb2) /* its total_size: what tests/grub-mbi-*.bin hold */
		kprintf(" (%u bytes)", ld32((const uint8_t *)(uintptr_t)mbi_phys));
	kprintf(", image at 0x%lx (%lu KiB), RSDP 0x%lx from %s (OEM '%s'), %u CPUs in the MADT, "
	        "trampoline pages 0x%lx\n",
	        (unsigned long)boot_info.image_base, (unsigned long)(boot_info.image_size >> 10),
	        (unsigned long)boot_info.rsdp, rsdp_from, boot_info.acpi.oem_id,
	        boot_info.acpi.ncpus_seen, (unsigned long)low);
	kmain_start();
}

uint64_t bootpath_max_addr(void)
{
	uint64_t top = 0;
	for (size_t i = 0; i < nmap; i++)
		if (regions[i].base + regions[i].length > top)
			top = regions[i].base + regions[i].length;
	return top;
}

void bootpath_report(uint64_t mapped_top)
{
	kprintf("boot: entered in 32-bit protected mode, long mode by boot/multiboot/entry.S; "
	        "now on the kernel's stack, GDT, IDT\n");
	kprintf("boot: page tables: entry's CR3 0x%lx (in the image) -> kernel's 0x%lx, "
	        "identity map 0..0x%lx\n",
	        (unsigned long)boot_info.fw_cr3, (unsigned long)paging_root(),
	        (unsigned long)mapped_top);
}

const struct kmem_region *bootpath_regions(uint64_t mapped_top, struct memmap_summary *ms)
{
	/* Reserved regions win over usable ones (kmem_init). */
	size_t n = nmap, cap = ARRAY_SIZE(regions);
	memset(ms, 0, sizeof(*ms));
	ms->descriptors = (unsigned)nmap;
	ms->max_addr = bootpath_max_addr();
	for (size_t i = 0; i < nmap; i++) {
		const struct kmem_region *r = &regions[i];
		uint64_t end = r->base + r->length;
		if (r->type != KMEM_REGION_USABLE)
			continue;
		if (end > mapped_top) {
			uint64_t cut = r->base > mapped_top ? r->base : mapped_top;
			ms->clipped_bytes += end - cut;
			kmem_memmap_add(regions, cap, &n, cut, end - cut, KMEM_REGION_RESERVED);
		}
		ms->usable_bytes += r->length;
	}
	ms->usable_bytes -= ms->clipped_bytes;
	kmem_memmap_add(regions, cap, &n, 0, 1u << 20, KMEM_REGION_RESERVED);
	kmem_memmap_add(regions, cap, &n, boot_info.image_base, boot_info.image_size,
	                KMEM_REGION_RESERVED);
	ms->nregions = (unsigned)n;
	kprintf("boot: %s memory map (E820 via the MBI, kmem_memmap_multiboot%s): %u regions; "
	        "+ the first MiB and the image reserved -> %u regions:\n",
	        mb2 ? "Multiboot2" : "Multiboot", mb2 ? "2" : "1", (unsigned)nmap, ms->nregions);
	return regions;
}
