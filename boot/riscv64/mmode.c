/*
 * boot/riscv64/mmode.c - the riscv64 demo kernel in M-mode with no
 * firmware (QEMU -bios none; built with -DRISCV_MMODE): the CLINT for the
 * timer and for waking parked harts.
 *
 *   harts    all start at _entry (entry.S); the boot hart runs main, the
 *            others wait in wfi until plat_start_cpu puts their start block
 *            in their mailbox slot and raises their msip.
 *   timer    the hart's mtimecmp, set to now + timebase / TIMER_HZ on
 *            every machine timer interrupt (mie.MTIE).
 *   reset    the sifive,test0 device (0x7777: reset).
 */
#include "rvplat.h"

const char plat_name[] = "riscv64 QEMU virt (M-mode, no firmware, CLINT timer)";

extern uint64_t park_mailbox[], park_mailbox_end[]; /* entry.S */

static uintptr_t clint, test_dev;

#define CLINT_MSIP(h) (clint + 4 * (uintptr_t)(h))
#define CLINT_MTIMECMP(h) (clint + 0x4000 + 8 * (uintptr_t)(h))

#define MIE_MTIE (1ul << 7)
#define IRQ_M_SOFT 3
#define IRQ_M_TIMER 7

unsigned plat_cpu_limit(void)
{
	return (unsigned)(park_mailbox_end - park_mailbox);
}

void mode_dt_init(const void *dtb)
{
	struct fdt_node n;
	uint64_t base, size;
	if ((!fdt_find_compatible(dtb, "sifive,clint0", &n) && !fdt_find_compatible(dtb, "riscv,clint0", &n)) ||
	    !fdt_reg(dtb, &n, 0, &base, &size))
		kfail("no CLINT in the device tree");
	clint = (uintptr_t)base;
	if (fdt_find_compatible(dtb, "sifive,test0", &n) && fdt_reg(dtb, &n, 0, &base, &size))
		test_dev = (uintptr_t)base;
	kprintf("boot: M-mode, no firmware: CLINT 0x%lx, timebase %lu kHz, tick %u Hz; boot hart %lu, the "
	        "others parked in wfi until their mailbox is filled and their msip raised\n",
	        (unsigned long)clint, (unsigned long)(riscv_timebase / 1000), TIMER_HZ,
	        (unsigned long)boot_hartid);
}

static void timer_arm(const struct percpu *pc)
{
	mmio_write64(CLINT_MTIMECMP(pc->hw_id), riscv_time() + pc->timer_period);
}

void plat_timer_start(struct percpu *pc)
{
	pc->timer_period = riscv_timebase / TIMER_HZ;
	timer_arm(pc);
	csr_set(mie, MIE_MTIE);
}

void timer_stop(void)
{
	csr_clear(mie, MIE_MTIE);
	mmio_write64(CLINT_MTIMECMP(this_cpu()->hw_id), ~0ull);
}

void mode_irq(uint64_t code, struct percpu *pc)
{
	switch (code) {
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
}

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
	riscv_cpu_setup(pc);
	csr_write(mie, 0);
	mmio_write32(CLINT_MSIP(pc->hw_id), 0);
}

void mode_reset(void)
{
	if (test_dev)
		mmio_write32(test_dev, 0x7777);
	plat_halt();
}
