/*
 * boot/riscv64/platform.c - the riscv64 side of the QEMU virt demo kernel
 * (boot/virt/virt.h) that its two builds share: the start of C, the
 * per-CPU data, the clock and the traps.  The timer, waking the other
 * harts and the interrupt codes are the mode file's (rvplat.h): smode.c
 * under OpenSBI, mmode.c in M-mode.
 *
 *   per CPU  tp is each hart's thread pointer: the image's TLS block on
 *            the boot hart (riscv_start), a copy from the heap on the
 *            others (_set_tls in boot/virt/smp.c); the per-CPU pointer
 *            and the CPU index are __thread variables off it
 *            (arch/riscv64/riscv64.h).
 *   clock    the time CSR, at /cpus' timebase-frequency.
 * No MMU (satp stays 0): physical addresses are used directly.
 */
#include <picolibc.h> /* PICOLIBC_TLS, which picotls.h needs */
#include <picotls.h>
#include <stdlib.h>
#include <string.h>

#include "rvplat.h"

const char cpu_hw_id_name[] = "hart";

__thread struct percpu *riscv_percpu;
uint64_t riscv_timebase;
static uint64_t time_boot;

extern char __bss_start[], __bss_end[], __tls_base[]; /* linker.ld */
int main(void);
void __libc_init_array(void);
void riscv_start(void) __attribute__((noreturn));

/* The boot hart, from entry.S on the boot stack with gp set: what
 * picolibc's crt0 does after that (.data is already in place). */
void riscv_start(void)
{
	memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
	_set_tls(__tls_base);
	__libc_init_array();
	exit(main());
}

struct percpu *this_cpu(void)
{
	return riscv_percpu;
}

void riscv_cpu_setup(struct percpu *pc)
{
	csr_write(CSR_TVEC, (uintptr_t)trap_entry);
	riscv_percpu = pc;
	riscv_cpu_index = pc->cpu;
}

void plat_early(void)
{
	bsp_percpu.self = &bsp_percpu;
	riscv_cpu_setup(&bsp_percpu);
}

const void *plat_dtb(void)
{
	return (const void *)(uintptr_t)boot_dtb;
}

uint64_t plat_boot_hw_id(void)
{
	return boot_hartid;
}

uint64_t uptime_us(void)
{
	if (!riscv_timebase)
		return 0;
	uint64_t t = riscv_time() - time_boot;
	return t / riscv_timebase * 1000000 + t % riscv_timebase * 1000000 / riscv_timebase;
}

void plat_dt_init(const void *dtb)
{
	struct fdt_node n;
	if (!virt_dt_node(dtb, 1, "cpus", &n) || !fdt_prop_u64(dtb, &n, "timebase-frequency", &riscv_timebase) ||
	    riscv_timebase < TIMER_HZ)
		kfail("no usable /cpus/timebase-frequency in the device tree");
	time_boot = riscv_time();
	mode_dt_init(dtb);
}

void plat_irq_enable(void)
{
	riscv_irq_enable();
}

void plat_halt(void)
{
	riscv_irq_save();
	csr_write(CSR_IE, 0);
	for (;;)
		riscv_wfi();
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
	if (cause & CAUSE_IRQ)
		mode_irq(cause & ~CAUSE_IRQ, this_cpu());
	else
		virt_fault(cause < 16 ? exc_names[cause] : "exception", epc, tval, cause);
}

/* 1: a store to an address with nothing behind it (a store access fault,
 * which OpenSBI hands on to S-mode; reported by the trap handler); 4: a
 * machine reset (QEMU exits 0 under -no-reboot, with no RESULT line). */
void kernel_inject(int kind)
{
	if (kind == 1)
		*(volatile uint64_t *)(uintptr_t)0x7fde00000000ull = 1;
	else if (kind == 4)
		mode_reset();
}
