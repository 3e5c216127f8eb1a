/*
 * boot/riscv64/platform.c - the riscv64 side of the QEMU virt demo kernel
 * (boot/virt/virt.h): every hart in M-mode, the CLINT for the timer and
 * for waking parked harts.
 *
 *   harts    all start at _entry (entry.S); the boot hart runs main, the
 *            others wait in wfi until plat_start_cpu puts their start block
 *            in their mailbox slot and raises their msip.
 *   timer    the hart's mtimecmp, set to mtime + timebase / TIMER_HZ on
 *            every machine timer interrupt (mie.MTIE); the frequency is
 *            /cpus' timebase-frequency, uptime comes from mtime.
 *   per CPU  tp is each hart's thread pointer (its TLS block, set by
 *            picolibc's crt0 on the boot hart and by _set_tls on the
 *            others); the per-CPU pointer and the CPU index are __thread
 *            variables off it (arch/riscv64/riscv64.h).
 * No MMU (satp stays 0 in M-mode): physical addresses are used directly.
 */
#include "virt.h"
#include "riscv64.h"

const char plat_name[] = "riscv64 QEMU virt (M-mode, CLINT timer)";
const char cpu_hw_id_name[] = "hart";

extern char trap_entry[];
extern uint64_t boot_hartid, boot_dtb, park_mailbox[], park_mailbox_end[]; /* entry.S */

__thread struct percpu *riscv_percpu;

static uintptr_t clint, test_dev;
static uint64_t timebase, mtime_boot;

#define CLINT_MSIP(h) (clint + 4 * (uintptr_t)(h))
#define CLINT_MTIMECMP(h) (clint + 0x4000 + 8 * (uintptr_t)(h))
#define CLINT_MTIME (clint + 0xbff8)

#define MIE_MSIE (1ul << 3)
#define MIE_MTIE (1ul << 7)
#define CAUSE_IRQ (1ull << 63)
#define IRQ_M_SOFT 3
#define IRQ_M_TIMER 7

struct percpu *this_cpu(void)
{
	return riscv_percpu;
}

void plat_early(void)
{
	csr_write(mtvec, (uintptr_t)trap_entry);
	bsp_percpu.self = &bsp_percpu;
	riscv_percpu = &bsp_percpu;
	riscv_cpu_index = 0;
}

const void *plat_dtb(void)
{
	return (const void *)(uintptr_t)boot_dtb;
}

uint64_t plat_boot_hw_id(void)
{
	return boot_hartid;
}

unsigned plat_cpu_limit(void)
{
	return (unsigned)(park_mailbox_end - park_mailbox);
}

uint64_t uptime_us(void)
{
	if (!timebase)
		return 0;
	uint64_t t = mmio_read64(CLINT_MTIME) - mtime_boot;
	return t / timebase * 1000000 + t % timebase * 1000000 / timebase;
}

void plat_dt_init(const void *dtb)
{
	struct fdt_node n;
	uint64_t base, size;
	if ((!fdt_find_compatible(dtb, "sifive,clint0", &n) && !fdt_find_compatible(dtb, "riscv,clint0", &n)) ||
	    !fdt_reg(dtb, &n, 0, &base, &size))
		kfail("no CLINT in the device tree");
	clint = (uintptr_t)base;
	if (!virt_dt_node(dtb, 1, "cpus", &n) || !fdt_prop_u64(dtb, &n, "timebase-frequency", &timebase) ||
	    timebase < TIMER_HZ)
		kfail("no usable /cpus/timebase-frequency in the device tree");
	if (fdt_find_compatible(dtb, "sifive,test0", &n) && fdt_reg(dtb, &n, 0, &base, &size))
		test_dev = (uintptr_t)base;
	mtime_boot = mmio_read64(CLINT_MTIME);
	kprintf("boot: CLINT 0x%lx, timebase %lu kHz, tick %u Hz; boot hart %lu, the others parked in wfi "
	        "until their mailbox is filled and their msip raised\n",
	        (unsigned long)clint, (unsigned long)(timebase / 1000), TIMER_HZ, (unsigned long)boot_hartid);
}

/* --- timer, interrupts, traps ---------------------------------------------- */

static void timer_arm(const struct percpu *pc)
{
	mmio_write64(CLINT_MTIMECMP(pc->hw_id), mmio_read64(CLINT_MTIME) + pc->timer_period);
}

void plat_timer_start(struct percpu *pc)
{
	pc->timer_period = timebase / TIMER_HZ;
	timer_arm(pc);
	csr_set(mie, MIE_MTIE);
}

void timer_stop(void)
{
	csr_clear(mie, MIE_MTIE);
	mmio_write64(CLINT_MTIMECMP(this_cpu()->hw_id), ~0ull);
}

void plat_irq_enable(void)
{
	riscv_irq_enable();
}

static const char *const exc_names[16] = {
	"instruction address misaligned", "instruction access fault", "illegal instruction",
	"breakpoint", "load address misaligned", "load access fault", "store address misaligned",
	"store access fault", "ecall from U-mode", "ecall from S-mode", "exception 10",
	"ecall from M-mode", "instruction page fault", "load page fault", "exception 14",
	"store page fault",
};

void riscv_trap(uint64_t cause, uint64_t epc, uint64_t tval, uint64_t *frame);
void riscv_trap(uint64_t cause, uint64_t epc, uint64_t tval, uint64_t *frame)
{
	(void)frame;
	if (cause & CAUSE_IRQ) {
		struct percpu *pc = this_cpu();
		switch (cause & ~CAUSE_IRQ) {
		case IRQ_M_TIMER:
			timer_arm(pc);
			virt_timer_tick(pc);
			break;
		case IRQ_M_SOFT:
			mmio_write32(CLINT_MSIP(pc->hw_id), 0);
			break;
		default:
			atomic_fetch_add(&stray_interrupts, 1);
			break;
		}
		return;
	}
	virt_fault(cause < 16 ? exc_names[cause] : "exception", epc, tval, cause);
}

/* --- other harts ----------------------------------------------------------- */

void plat_start_cpu(struct percpu *pc, struct cpu_start *cs)
{
	uint64_t hart = pc->hw_id;
	if (hart >= (uint64_t)(park_mailbox_end - park_mailbox))
		kfail("hart %lu has no mailbox (entry.S parks harts 0..%u)", (unsigned long)hart,
		      (unsigned)(park_mailbox_end - park_mailbox) - 1);
	__atomic_store_n(&park_mailbox[hart], (uint64_t)(uintptr_t)cs, __ATOMIC_RELEASE);
	mmio_write32(CLINT_MSIP(hart), 1);
}

void plat_cpu_init(struct percpu *pc)
{
	csr_write(mtvec, (uintptr_t)trap_entry);
	riscv_percpu = pc;
	riscv_cpu_index = pc->cpu;
	csr_write(mie, 0);
	mmio_write32(CLINT_MSIP(pc->hw_id), 0);
}

void plat_halt(void)
{
	riscv_irq_save();
	csr_write(mie, 0);
	for (;;)
		riscv_wfi();
}

/* 1: a store to an address with nothing behind it (store access fault,
 * reported by the trap handler); 4: a reset through the test device
 * (QEMU exits 0 under -no-reboot, with no RESULT line). */
void kernel_inject(int kind)
{
	if (kind == 1) {
		*(volatile uint64_t *)(uintptr_t)0x7fde00000000ull = 1;
	} else if (kind == 4) {
		if (test_dev)
			mmio_write32(test_dev, 0x7777);
		plat_halt();
	}
}
