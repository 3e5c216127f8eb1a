/*
 * boot/aarch64/platform.c - the aarch64 side of the QEMU virt demo kernel
 * (boot/virt/virt.h): EL1 with an identity map, GICv2, the EL1 virtual
 * timer, PSCI.
 *
 *   MMU      one level-1 table of 1 GiB blocks covering 512 GiB (T0SZ 25,
 *            4 KiB granule): the first GiB (flash, GIC, UART: every MMIO
 *            device of virt's low map) Device-nGnRnE, the rest normal
 *            write-back memory, so that RAM is cacheable and the
 *            allocator's exclusives behave as on hardware.  Every CPU
 *            loads the same MAIR/TCR/TTBR0/SCTLR (entry.S).
 *   GICv2    distributor and CPU interface from the device tree
 *            ("arm,cortex-a15-gic": run QEMU with -machine
 *            virt,gic-version=2); the timer's PPI enabled on each CPU.
 *   timer    the EL1 virtual timer (CNTV, PPI 11 = INTID 27 unless the
 *            tree's "arm,armv8-timer" says otherwise) at TIMER_HZ, re-armed
 *            through CNTV_TVAL_EL0 in the interrupt; uptime from CNTVCT_EL0.
 *   PSCI     CPU_ON through the conduit the tree names (hvc or smc).
 */
#include "virt.h"
#include "aarch64.h"

const char plat_name[] = "aarch64 QEMU virt (EL1, MMU on, GICv2, virtual timer, PSCI)";
const char cpu_hw_id_name[] = "aff"; /* MPIDR affinity */

extern char vectors[], secondary_entry[];
extern uint64_t boot_x0; /* entry.S */

#define RAM_BASE_DTB 0x40000000ul /* where QEMU puts the tree for an ELF image */

/* --- MMU -------------------------------------------------------------------- */

#define PTE_BLOCK 1ull /* level-1 block: bits[1:0] = 01 */
#define PTE_ATTR(i) ((uint64_t)(i) << 2)
#define PTE_SH_INNER (3ull << 8)
#define PTE_AF (1ull << 10)
#define PTE_PXN (1ull << 53)
#define PTE_UXN (1ull << 54)
#define MAIR_VALUE 0xff00ull /* attr0 Device-nGnRnE, attr1 Normal WB RW-allocate */
#define TCR_VALUE                                                                              \
	(25ull /* T0SZ: 39-bit VA */ | 1ull << 8 /* IRGN0 WBWA */ | 1ull << 10 /* ORGN0 WBWA */ | \
	 3ull << 12 /* SH0 inner */ | 1ull << 23 /* EPD1: no TTBR1 walks */ | 2ull << 32 /* IPS 40 bits */)
#define SCTLR_M (1ull << 0)
#define SCTLR_A (1ull << 1)
#define SCTLR_C (1ull << 2)
#define SCTLR_I (1ull << 12)
#define SCTLR_WXN (1ull << 19)

static uint64_t l1_table[512] __attribute__((aligned(4096)));

static void mmu_enable(void)
{
	for (uint64_t i = 0; i < 512; i++)
		l1_table[i] = i << 30 | PTE_BLOCK | PTE_AF |
		              (i == 0 ? PTE_ATTR(0) | PTE_PXN | PTE_UXN : PTE_ATTR(1) | PTE_SH_INNER);
	dsb_ish();
	write_sysreg(mair_el1, MAIR_VALUE);
	write_sysreg(tcr_el1, TCR_VALUE);
	write_sysreg(ttbr0_el1, (uintptr_t)l1_table);
	isb();
	__asm__ volatile("tlbi vmalle1\n\tdsb nsh\n\tisb" : : : "memory");
	uint64_t sctlr = read_sysreg(sctlr_el1);
	sctlr = (sctlr | SCTLR_M | SCTLR_C | SCTLR_I) & ~(SCTLR_A | SCTLR_WXN);
	write_sysreg(sctlr_el1, sctlr);
	isb();
}

/* --- per CPU, clock --------------------------------------------------------- */

static uint64_t cnt_freq, cnt_boot;

struct percpu *this_cpu(void)
{
	return (struct percpu *)read_sysreg(tpidr_el1);
}

void plat_early(void)
{
	write_sysreg(vbar_el1, (uintptr_t)vectors);
	bsp_percpu.self = &bsp_percpu;
	write_sysreg(tpidr_el1, (uintptr_t)&bsp_percpu);
	isb();
	mmu_enable();
	cnt_freq = read_sysreg(cntfrq_el0);
	cnt_boot = read_sysreg(cntvct_el0);
}

uint64_t uptime_us(void)
{
	uint64_t t = read_sysreg(cntvct_el0) - cnt_boot;
	return t / cnt_freq * 1000000 + t % cnt_freq * 1000000 / cnt_freq;
}

uint64_t plat_boot_hw_id(void)
{
	return read_sysreg(mpidr_el1) & 0xff00ffffffull; /* Aff3..Aff0 */
}

/* --- device tree: GIC, timer, PSCI ------------------------------------------ */

#define GICD_CTLR 0x000
#define GICD_TYPER 0x004
#define GICD_ISENABLER 0x100
#define GICD_IPRIORITYR 0x400
#define GICC_CTLR 0x000
#define GICC_PMR 0x004
#define GICC_BPR 0x008
#define GICC_IAR 0x00c
#define GICC_EOIR 0x010

static uintptr_t gicd, gicc;
static unsigned timer_intid = 27; /* PPI 11: the EL1 virtual timer */
static bool psci_smc;
static uint32_t psci_version;

#define PSCI_VERSION 0x84000000u
#define PSCI_SYSTEM_RESET 0x84000009u
#define PSCI_CPU_ON_64 0xc4000003u

static int64_t psci_call(uint64_t fn, uint64_t a1, uint64_t a2, uint64_t a3)
{
	register uint64_t x0 __asm__("x0") = fn;
	register uint64_t x1 __asm__("x1") = a1;
	register uint64_t x2 __asm__("x2") = a2;
	register uint64_t x3 __asm__("x3") = a3;
	if (psci_smc)
		__asm__ volatile("smc #0"
		                 : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
		                 :
		                 : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
		                   "x15", "x16", "x17", "memory");
	else
		__asm__ volatile("hvc #0"
		                 : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
		                 :
		                 : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
		                   "x15", "x16", "x17", "memory");
	return (int64_t)x0;
}

const void *plat_dtb(void)
{
	/* Only a plausible pointer is looked at: inside the identity map. */
	if (boot_x0 && boot_x0 < (1ull << 39) && !(boot_x0 & 7) &&
	    fdt_check((const void *)(uintptr_t)boot_x0, 0))
		return (const void *)(uintptr_t)boot_x0;
	return (const void *)RAM_BASE_DTB;
}

static void gic_cpu_init(void)
{
	mmio_write8(gicd + GICD_IPRIORITYR + timer_intid, 0x80);
	mmio_write32(gicd + GICD_ISENABLER, 1u << timer_intid); /* banked: this CPU's PPIs */
	mmio_write32(gicc + GICC_PMR, 0xf0);
	mmio_write32(gicc + GICC_BPR, 0);
	mmio_write32(gicc + GICC_CTLR, 1);
}

void plat_dt_init(const void *dtb)
{
	struct fdt_node n;
	uint64_t size;
	if (!fdt_find_compatible(dtb, "arm,cortex-a15-gic", &n) &&
	    !fdt_find_compatible(dtb, "arm,gic-400", &n))
		kfail("no GICv2 in the device tree%s",
		      fdt_find_compatible(dtb, "arm,gic-v3", &n) ? " (a GICv3: run with -machine virt,gic-version=2)" : "");
	uint64_t d, c;
	if (!fdt_reg(dtb, &n, 0, &d, &size) || !fdt_reg(dtb, &n, 1, &c, &size))
		kfail("the GIC node has no distributor and CPU interface registers");
	gicd = (uintptr_t)d;
	gicc = (uintptr_t)c;

	if (fdt_find_compatible(dtb, "arm,armv8-timer", &n)) {
		uint32_t len;
		const uint8_t *v = fdt_prop(dtb, &n, "interrupts", &len);
		if (v && len >= 36) /* <type num flags> x 4: secure, non-secure, virtual, hyp */
			timer_intid = 16 + ((uint32_t)v[28] << 24 | (uint32_t)v[29] << 16 |
			                    (uint32_t)v[30] << 8 | v[31]);
	}
	if (timer_intid < 16 || timer_intid > 31)
		kfail("virtual timer interrupt %u is not a PPI", timer_intid);

	if (!fdt_find_compatible(dtb, "arm,psci-0.2", &n) && !fdt_find_compatible(dtb, "arm,psci-1.0", &n))
		kfail("no PSCI 0.2+ node in the device tree");
	if (fdt_prop_has_string(dtb, &n, "method", "smc"))
		psci_smc = true;
	else if (!fdt_prop_has_string(dtb, &n, "method", "hvc"))
		kfail("PSCI method is neither hvc nor smc");
	psci_version = (uint32_t)psci_call(PSCI_VERSION, 0, 0, 0);

	mmio_write32(gicd + GICD_CTLR, 0);
	gic_cpu_init();
	mmio_write32(gicd + GICD_CTLR, 1);
	kprintf("boot: GICv2 distributor 0x%lx (%u interrupt lines), CPU interface 0x%lx; PSCI %u.%u via "
	        "%s; generic timer %lu kHz, virtual timer INTID %u, tick %u Hz\n",
	        (unsigned long)gicd, 32 * ((mmio_read32(gicd + GICD_TYPER) & 0x1f) + 1),
	        (unsigned long)gicc, psci_version >> 16, psci_version & 0xffff, psci_smc ? "smc" : "hvc",
	        (unsigned long)(cnt_freq / 1000), timer_intid, TIMER_HZ);
	kprintf("boot: MMU on: identity map of 512 GiB in 1 GiB blocks (first GiB device), TTBR0 %p\n",
	        (void *)l1_table);
}

unsigned plat_cpu_limit(void)
{
	return 8; /* GICv2: eight CPU interfaces */
}

/* --- timer, interrupts, exceptions ------------------------------------------ */

void plat_timer_start(struct percpu *pc)
{
	pc->timer_period = cnt_freq / TIMER_HZ;
	write_sysreg(cntv_tval_el0, pc->timer_period);
	write_sysreg(cntv_ctl_el0, 1); /* enabled, not masked */
	isb();
}

void timer_stop(void)
{
	write_sysreg(cntv_ctl_el0, 0);
	isb();
}

void plat_irq_enable(void)
{
	aarch64_irq_enable();
}

static void irq(void)
{
	uint32_t iar = mmio_read32(gicc + GICC_IAR), id = iar & 0x3ff;
	if (id >= 1020)
		return; /* spurious */
	if (id == timer_intid) {
		struct percpu *pc = this_cpu();
		write_sysreg(cntv_tval_el0, pc->timer_period); /* re-arm: drops the line */
		isb();
		virt_timer_tick(pc);
	} else {
		atomic_fetch_add(&stray_interrupts, 1);
	}
	mmio_write32(gicc + GICC_EOIR, iar);
}

static const char *const vector_names[16] = {
	"sync (SP_EL0)", "IRQ (SP_EL0)", "FIQ (SP_EL0)", "SError (SP_EL0)",
	"synchronous exception", "IRQ", "FIQ", "SError",
	"sync from EL0", "IRQ from EL0", "FIQ from EL0", "SError from EL0",
	"sync from AArch32", "IRQ from AArch32", "FIQ from AArch32", "SError from AArch32",
};

struct exc_frame {
	uint64_t x[31];
	uint64_t elr, spsr, pad;
};

void aarch64_exception(uint64_t index, struct exc_frame *f);
void aarch64_exception(uint64_t index, struct exc_frame *f)
{
	if (index == 5 || index == 1) { /* IRQ at EL1 (on SP_EL1, as crt0 leaves it) */
		irq();
		return;
	}
	uint64_t esr = read_sysreg(esr_el1), far = read_sysreg(far_el1);
	char what[96];
	ksnprintf(what, sizeof what, "%s (ESR class 0x%lx)", vector_names[index & 15],
	          (unsigned long)(esr >> 26));
	virt_fault(what, f->elr, far, esr);
}

/* --- other CPUs ---------------------------------------------------------- */

void plat_start_cpu(struct percpu *pc, struct cpu_start *cs)
{
	cs->arch[0] = read_sysreg(mair_el1);
	cs->arch[1] = read_sysreg(tcr_el1);
	cs->arch[2] = read_sysreg(ttbr0_el1);
	cs->arch[3] = read_sysreg(sctlr_el1);
	/* The CPU reads the block with its MMU (and so its caches) off:
	 * clean it to the point of coherency. */
	for (uintptr_t a = (uintptr_t)cs & ~63ul; a < (uintptr_t)(cs + 1); a += 64)
		__asm__ volatile("dc cvac, %0" : : "r"(a) : "memory");
	dsb_sy();
	int64_t rc = psci_call(PSCI_CPU_ON_64, pc->hw_id, (uintptr_t)secondary_entry, (uintptr_t)cs);
	if (rc != 0)
		kfail("PSCI CPU_ON(0x%lx) returned %ld", (unsigned long)pc->hw_id, (long)rc);
}

void plat_cpu_init(struct percpu *pc)
{
	write_sysreg(vbar_el1, (uintptr_t)vectors);
	write_sysreg(tpidr_el1, (uintptr_t)pc);
	isb();
	gic_cpu_init();
}

void plat_halt(void)
{
	aarch64_irq_save();
	for (;;)
		aarch64_wfi();
}

/* 1: a store beyond the 39-bit address space (translation fault, reported
 * by the vectors); 4: PSCI SYSTEM_RESET (QEMU exits 0 under -no-reboot,
 * with no RESULT line). */
void kernel_inject(int kind)
{
	if (kind == 1)
		*(volatile uint64_t *)(uintptr_t)0x8000000000ull = 1;
	else if (kind == 4)
		psci_call(PSCI_SYSTEM_RESET, 0, 0, 0);
}
