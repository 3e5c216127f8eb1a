/*
 * boot/kernel.h - the demo kernel's internal interfaces (boot/ only).
 *
 * Two boot paths start the same kernel; each gathers what the kernel needs
 * from the firmware into boot_info, then calls kmain_start:
 *   boot/efi_main.c           UEFI (OVMF): RSDP and ACPI (MADT, FADT), two
 *                             pages below 1 MiB for the AP trampoline,
 *                             memory map, ExitBootServices
 *   boot/multiboot/mb_main.c  Multiboot (v1) (QEMU -kernel, SeaBIOS) or
 *                             Multiboot2 (GRUB from a CD, SeaBIOS), after
 *                             boot/multiboot/entry.S took the CPU from 32-bit
 *                             protected mode to long mode: the MBI's E820
 *                             map, the RSDP from the MBI (Multiboot2) or the
 *                             BIOS areas, ACPI, two free pages below 1 MiB
 * and each provides the bootpath_* functions below.  Then, common to both:
 *   kmain_start  the kernel's own static stack, then kmain_bsp
 *   kmain_bsp    page tables, GDT/TSS/IDT, 8259 masked, local APIC, timer
 *                calibration, memory map -> regions, kmem_init, boot
 *                report, workload set-up, self tests, APs started,
 *                workload, teardown, RESULT.
 */
#ifndef BOOT_KERNEL_H
#define BOOT_KERNEL_H

#include "demo.h" /* the workload's interface, and what this kernel provides for it */
#include "x86.h"

/* --- what the boot path hands to the kernel (boot_info, boot/kmain.c) ---- */

#define ACPI_MAX_MEM_AFFINITY 32

struct acpi_info {
	unsigned ncpus;                    /* enabled CPUs taken (<= BOOT_MAX_CPUS) */
	unsigned ncpus_seen;               /* enabled CPUs in the MADT */
	uint32_t apic_ids[BOOT_MAX_CPUS];  /* MADT order */
	uint64_t lapic_phys;               /* from the MADT (and its override) */
	uint16_t pm_timer_port;            /* FADT PM_TMR_BLK, 0 if none */
	bool pm_timer_32bit;
	char oem_id[7];
	/* SRAT and SLIT (NUMA; spanalloc/memmap.h reads them): numa.nnodes
	 * is 0 without an SRAT.  cpu_node is indexed like apic_ids (kmain_bsp
	 * reorders both). */
	struct kmem_numa_info numa;
	uint8_t cpu_node[BOOT_MAX_CPUS];
	struct kmem_region mem[ACPI_MAX_MEM_AFFINITY]; /* the SRAT's memory ranges */
	uint8_t distance[KMEM_MAX_NODES * KMEM_MAX_NODES]; /* SLIT, nnodes x nnodes; 0: none */
};

struct boot_info {
	const uint8_t *mmap;               /* UEFI only: final memory map (static buffer) */
	size_t mmap_size, desc_size;
	uint32_t desc_version;
	unsigned exit_attempts;            /* UEFI only: ExitBootServices calls made */
	uint64_t rsdp;
	uint64_t low_pages;                /* 2 pages below 1 MiB: trampoline, PML4 copy */
	uint64_t fw_cr3;                   /* the CR3 the kernel came with (for the report) */
	uint64_t image_base, image_size;   /* this image, as loaded */
	uint64_t image_bias;               /* load address - link address of image_file */
	const char *image_file;            /* its symbols, for addr2line in fault reports */
	uint8_t *bsp_stack;                /* the BSP's static stack (kmain_start) */
	size_t bsp_stack_size;
	struct acpi_info acpi;
};

extern struct boot_info boot_info;

/* boot/acpi.c: parses the RSDP's XSDT/RSDT (MADT, FADT, SRAT, SLIT).
 * Reads only. */
int acpi_parse(uint64_t rsdp, struct acpi_info *out);
/* The RSDP where a PC BIOS puts it (the EBDA's first KiB, 0xe0000-0xfffff),
 * 0 if none. */
uint64_t acpi_find_rsdp_bios(void);

/* boot/memmap.c: the final UEFI map -> spanalloc regions (static array). */
struct memmap_summary {
	unsigned descriptors;
	unsigned nregions;
	uint64_t usable_bytes;      /* USABLE regions, after clipping */
	uint64_t clipped_bytes;     /* usable RAM above the mapped top, left out */
	uint64_t max_addr;          /* highest end of any descriptor */
};
const struct kmem_region *memmap_to_regions(const struct boot_info *bi, uint64_t mapped_top,
                                            struct memmap_summary *sum);
uint64_t memmap_max_addr(const struct boot_info *bi);
const char *memmap_efi_type_name(uint32_t type);
uint32_t memmap_type_at(const struct boot_info *bi, uint64_t addr); /* ~0u: none */

/* boot/kmain.c: with boot_info filled in and interrupts off, moves to the
 * kernel's static stack and runs the kernel.  The boot path's stack and
 * anything it allocated may be reused from then on. */
void kmain_start(void) __attribute__((noreturn));

/* --- the boot path (boot/efi_main.c or boot/multiboot/mb_main.c) ------- */

/* Highest physical address in the firmware's memory map (for the map). */
uint64_t bootpath_max_addr(void);
/* The boot report's lines on the hand-over: how the kernel got the
 * machine, and the page tables it came with (the kernel's now map
 * 0..mapped_top). */
void bootpath_report(uint64_t mapped_top);
/* The memory map as spanalloc regions (a static array), with everything
 * the kernel still uses reserved and usable RAM at or above mapped_top
 * left out; prints the map's heading line.  sum as for memmap_to_regions. */
const struct kmem_region *bootpath_regions(uint64_t mapped_top, struct memmap_summary *sum);

/* --- boot/console.c ------------------------------------------------------- */

/* ksnprintf, kprintf, kfail: boot/demo.h */

/* --- boot/cpu.c: page tables, GDT, TSS, IDT, exceptions ----------------- */

#define GDT_KCODE 0x08
#define GDT_KDATA 0x10
#define GDT_TSS0 0x18 /* + 16 * cpu */

/* TIMER_HZ (boot/demo.h): the LAPIC timer on every CPU */

#define VEC_TIMER 0x40
#define VEC_APIC_ERROR 0xfe
#define VEC_SPURIOUS 0xff
#define VEC_PIC_BASE 0x20 /* 8259 remapped here, all masked */

/* Builds the kernel's identity map (2 MiB pages below 4 GiB, 1 GiB pages
 * above when the CPU has them) and loads it.  Returns the mapped top. */
uint64_t paging_init(uint64_t max_addr);
uint64_t paging_root(void);  /* physical address of the PML4 */
/* Builds the IDT (once) and the GDT; loads GDT, segments, GS base, TR and
 * IDT on the calling CPU. */
void cpu_tables_init(void);
void cpu_load_tables(struct percpu *pc);
/* GDT slot of CPU pc->cpu's TSS (IST1 = pc->ist_stack top). */
void cpu_setup_tss(struct percpu *pc);
/* bsp_percpu, timer_hook, stray_interrupts: boot/demo.h */

/* --- boot/apic.c ------------------------------------------------------- */

void pic_disable(void);
void lapic_init_cpu(void);
uint32_t lapic_id(void);
bool lapic_is_x2apic(void);
void lapic_eoi(void);
uint32_t lapic_read_esr(void);
/* Calibrates the LAPIC timer and the TSC against the ACPI PM timer. */
void timer_calibrate(const struct acpi_info *acpi);
void lapic_timer_start(unsigned hz);
void lapic_timer_stop(void);
uint64_t tsc_hz(void);
uint64_t lapic_timer_hz(void);
bool timer_calibrated(void);
void udelay(uint64_t us);
/* uptime_us (boot/demo.h): since timer_calibrate */
void lapic_send_init(uint32_t apic_id);
void lapic_send_sipi(uint32_t apic_id, uint8_t page);
/* Sends an NMI (ICR delivery mode NMI); from one context at a time per
 * CPU: the timer interrupt (boot/nmi.c), after the APs are up. */
void lapic_send_nmi(uint32_t apic_id);

/* --- boot/nmi.c: NMIs that call kmalloc_nolock/kfree_nolock -------------- */

/* After every AP is up: each timer tick sends an NMI to the next CPU. */
void nmi_demo_start(struct percpu **cpus, unsigned ncpus);
/* On the BSP after its workload: stops, frees what the handlers kept,
 * prints the counts (kfail on corruption). */
void nmi_demo_finish(void);
/* Vector 2 (isr_dispatch): false if the demo is not running. */
bool nmi_demo_handle(uint64_t interrupted_rflags);

/* --- boot/smp.c ---------------------------------------------------------- */

/* Starts every AP in boot_info.acpi (CPU index i = MADT entry i, BSP 0);
 * each runs ap_entry_hook(pc) on its own stack with its LAPIC timer on and
 * its mcache online.  Returns the number of CPUs running (BSP included). */
unsigned smp_start_aps(struct percpu **cpus, void (*ap_entry_hook)(struct percpu *pc));
/* smp_free_ap: boot/demo.h.  The workload (boot/workload.c,
 * boot/selftest.c), the pattern helpers and the string functions (this
 * kernel's own, boot/string.c) are declared there too; boot/demo_x86.c
 * has the rest of this kernel's side of it. */

#endif /* BOOT_KERNEL_H */
