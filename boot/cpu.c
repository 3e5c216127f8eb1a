/*
 * boot/cpu.c - the kernel's own page tables, GDT, TSS and IDT, and the
 * interrupt/exception dispatcher.
 *
 * Page tables.  OVMF's page tables identity-map memory, but they live in
 * EfiBootServicesData (handed to the heap after exit) and OVMF's memory
 * protection marks some of that memory read-only or no-execute; the
 * Multiboot path's boot tables (boot/multiboot/entry.S) map 4 GiB, all
 * cached.  So either way the kernel loads its own identity map before
 * kmem_init: static tables in .bss, 2 MiB pages for 0..4 GiB (the two
 * 2 MiB pages holding the I/O APIC and the local APIC uncached), and 1 GiB
 * pages above 4 GiB up to the highest address in the memory map when the
 * CPU has them (else memory above 4 GiB is left out of the heap: the boot
 * path's bootpath_regions).  Everything is
 * writable and executable: the demo has no protection to enforce, and the
 * AP trampoline runs from a low page.  direct_map_offset stays 0.
 *
 * GDT (static, shared): null, kernel code 0x08, kernel data 0x10, then one
 * 16-byte TSS descriptor per CPU at 0x18 + 16 * cpu.  Each TSS sits in the
 * CPU's struct percpu; IST1 (its own stack) takes #DF, NMI and #MC so that
 * a broken kernel stack still produces a report.
 *
 * IDT (static, shared): vectors 0-31 report the exception and fail the
 * run; VEC_TIMER runs timer_hook then EOI; VEC_SPURIOUS is ignored (no
 * EOI); the masked 8259's vectors 0x20-0x2f are ignored (spurious IRQ 7 or
 * 15); VEC_APIC_ERROR fails the run.  Any other vector can only be a
 * request the firmware left pending in the LAPIC before exit (nothing of
 * the kernel's sends one): it is acknowledged, counted (stray_interrupts)
 * and logged once.
 */
#include "kernel.h"

/* --- page tables ---------------------------------------------------------- */

#define PTE_P 0x1ull
#define PTE_W 0x2ull
#define PTE_PWT 0x8ull
#define PTE_PCD 0x10ull
#define PTE_PS 0x80ull

static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd_low[4][512] __attribute__((aligned(4096)));

uint64_t paging_root(void)
{
	return (uint64_t)(uintptr_t)pml4;
}

uint64_t paging_init(uint64_t max_addr)
{
	const uint64_t GiB = 1ull << 30;
	for (uint64_t g = 0; g < 4; g++) {
		for (uint64_t i = 0; i < 512; i++) {
			uint64_t a = g * GiB + (i << 21);
			uint64_t attr = PTE_P | PTE_W | PTE_PS;
			if (a == 0xfec00000ull || a == 0xfee00000ull)
				attr |= PTE_PCD | PTE_PWT; /* I/O APIC, local APIC */
			pd_low[g][i] = a | attr;
		}
		pdpt[g] = (uint64_t)(uintptr_t)pd_low[g] | PTE_P | PTE_W;
	}
	uint64_t top = 4 * GiB;
	uint32_t r[4];
	cpuid(0x80000000u, 0, r);
	bool gbpages = false;
	if (r[0] >= 0x80000001u) {
		cpuid(0x80000001u, 0, r);
		gbpages = (r[3] >> 26) & 1;
	}
	if (gbpages)
		for (uint64_t g = 4; g < 512 && g * GiB < max_addr; g++) {
			pdpt[g] = (g * GiB) | PTE_P | PTE_W | PTE_PS;
			top = (g + 1) * GiB;
		}
	pml4[0] = (uint64_t)(uintptr_t)pdpt | PTE_P | PTE_W;
	write_cr3(paging_root());
	return top;
}

/* --- GDT, TSS, IDT --------------------------------------------------------- */

static uint64_t gdt[3 + 2 * BOOT_MAX_CPUS] __attribute__((aligned(16)));

struct idt_gate {
	uint16_t off0;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off1;
	uint32_t off2;
	uint32_t zero;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));

extern char isr_stubs[];

struct percpu bsp_percpu;
static uint8_t bsp_ist_stack[8192] __attribute__((aligned(16)));

void (*timer_hook)(struct percpu *pc);
_Atomic unsigned long stray_interrupts;

static void idt_set(unsigned v, uint8_t ist)
{
	uint64_t a = (uint64_t)(uintptr_t)(isr_stubs + 16 * v);
	idt[v] = (struct idt_gate){
		.off0 = (uint16_t)a,
		.sel = GDT_KCODE,
		.ist = ist,
		.type = 0x8e, /* present, DPL 0, 64-bit interrupt gate */
		.off1 = (uint16_t)(a >> 16),
		.off2 = (uint32_t)(a >> 32),
	};
}

void cpu_setup_tss(struct percpu *pc)
{
	struct tss64 *t = &pc->tss;
	memset(t, 0, sizeof(*t));
	t->ist[0] = (uint64_t)(uintptr_t)pc->ist_stack + pc->ist_pages * KMEM_PAGE_SIZE;
	t->iopb = sizeof(*t); /* no I/O bitmap */
	uint64_t base = (uint64_t)(uintptr_t)t, limit = sizeof(*t) - 1;
	unsigned slot = 3 + 2 * pc->cpu;
	gdt[slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
	            (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[slot + 1] = base >> 32;
}

void cpu_tables_init(void)
{
	gdt[0] = 0;
	gdt[1] = 0x00af9a000000ffffull; /* 0x08: 64-bit code, DPL 0 */
	gdt[2] = 0x00cf92000000ffffull; /* 0x10: data */
	for (unsigned v = 0; v < 256; v++)
		idt_set(v, (v == 2 || v == 8 || v == 18) ? 1 : 0);
	bsp_percpu.cpu = 0;
	bsp_percpu.ist_stack = bsp_ist_stack;
	bsp_percpu.ist_pages = sizeof(bsp_ist_stack) / KMEM_PAGE_SIZE;
	cpu_setup_tss(&bsp_percpu);
}

void cpu_load_tables(struct percpu *pc)
{
	struct desc_ptr g = {sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt};
	struct desc_ptr i = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
	lgdt(&g);
	__asm__ volatile("pushq %[cs]\n\t"
	                 "leaq 1f(%%rip), %%rax\n\t"
	                 "pushq %%rax\n\t"
	                 "lretq\n"
	                 "1:\n\t"
	                 "movw %[ds], %%ax\n\t"
	                 "movw %%ax, %%ds\n\t"
	                 "movw %%ax, %%es\n\t"
	                 "movw %%ax, %%ss\n\t"
	                 "xorl %%eax, %%eax\n\t"
	                 "movw %%ax, %%fs\n\t"
	                 "movw %%ax, %%gs\n\t"
	                 :
	                 : [cs] "i"(GDT_KCODE), [ds] "i"(GDT_KDATA)
	                 : "rax", "memory");
	percpu_install(pc); /* after the GS reload, which clears the base */
	ltr((uint16_t)(GDT_TSS0 + 16 * pc->cpu));
	lidt(&i);
}

/* --- dispatch -------------------------------------------------------------- */

struct intr_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

static const char *const exc_names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
	"#BR bound range", "#UD invalid opcode", "#NM no FPU", "#DF double fault",
	"coprocessor overrun", "#TS invalid TSS", "#NP segment not present",
	"#SS stack fault", "#GP general protection", "#PF page fault", "reserved 15",
	"#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
	"#VE virtualization", "#CP control protection", "reserved 22", "reserved 23",
	"reserved 24", "reserved 25", "reserved 26", "reserved 27", "#HV hypervisor injection",
	"#VC VMM communication", "#SX security", "reserved 31",
};

static void exception_report(struct intr_frame *f)
{
	struct percpu *pc = atomic_load(&percpu_ready) ? this_cpu() : NULL;
	unsigned cpu = pc ? pc->cpu : 0;
	console_panic_mode();
	if (pc && pc->in_fault++) {
		/* An exception while reporting one: keep it short. */
		kfail("nested exception vector=%lu rip=0x%lx cpu=%u", (unsigned long)f->vector,
		      (unsigned long)f->rip, cpu);
	}
	uint64_t cr2 = read_cr2();
	kprintf("\n*** EXCEPTION %s (vector %lu) on CPU %u (APIC id %u)\n",
	        exc_names[f->vector & 31], (unsigned long)f->vector, cpu, pc ? pc->apic_id : 0);
	kprintf("    error 0x%lx  RIP 0x%016lx  CS 0x%lx  RFLAGS 0x%lx\n", (unsigned long)f->error,
	        (unsigned long)f->rip, (unsigned long)f->cs, (unsigned long)f->rflags);
	kprintf("    RSP 0x%016lx  SS 0x%lx  CR2 0x%016lx  CR3 0x%lx\n", (unsigned long)f->rsp,
	        (unsigned long)f->ss, (unsigned long)cr2, (unsigned long)read_cr3());
	kprintf("    RAX %016lx RBX %016lx RCX %016lx RDX %016lx\n", (unsigned long)f->rax,
	        (unsigned long)f->rbx, (unsigned long)f->rcx, (unsigned long)f->rdx);
	kprintf("    RSI %016lx RDI %016lx RBP %016lx R8  %016lx\n", (unsigned long)f->rsi,
	        (unsigned long)f->rdi, (unsigned long)f->rbp, (unsigned long)f->r8);
	kprintf("    image base 0x%lx: addr2line -f -e %s 0x%lx\n", (unsigned long)boot_info.image_base,
	        boot_info.image_file, (unsigned long)(f->rip - boot_info.image_bias));
	kfail("exception vector=%lu (%s) error=0x%lx rip=0x%lx cpu=%u", (unsigned long)f->vector,
	      exc_names[f->vector & 31], (unsigned long)f->error, (unsigned long)f->rip, cpu);
}

void isr_dispatch(struct intr_frame *f);

void isr_dispatch(struct intr_frame *f)
{
	uint64_t v = f->vector;
	if (v == 2 && nmi_demo_handle(f->rflags))
		return; /* boot/nmi.c */
	if (v < 32) {
		exception_report(f);
	} else if (v == VEC_TIMER) {
		struct percpu *pc = this_cpu();
		atomic_fetch_add_explicit(&pc->ticks, 1, memory_order_relaxed);
		if (timer_hook)
			timer_hook(pc);
		lapic_eoi();
	} else if (v == VEC_SPURIOUS) {
		/* spurious LAPIC interrupt: no EOI */
	} else if (v >= VEC_PIC_BASE && v < VEC_PIC_BASE + 16) {
		/* the masked 8259's spurious IRQ 7/15: ignore */
	} else if (v == VEC_APIC_ERROR) {
		uint32_t esr = lapic_read_esr();
		kfail("local APIC error interrupt, ESR=0x%x, cpu=%u", esr, this_cpu()->cpu);
	} else {
		if (atomic_fetch_add(&stray_interrupts, 1) == 0)
			kprintf("cpu %u: stray interrupt vector 0x%lx (left pending by the firmware?), "
			        "acknowledged\n", this_cpu()->cpu, (unsigned long)v);
		lapic_eoi();
	}
}
