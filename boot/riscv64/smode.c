/*
 * boot/riscv64/smode.c - the riscv64 demo kernel in S-mode under an SBI
 * firmware (OpenSBI, QEMU's default -bios), the default build: the
 * other harts, the timer and the reset go through the firmware
 * (arch/riscv64/arch.c's sbi_ecall).
 *
 *   harts    OpenSBI starts the kernel on one hart, any of them (its
 *            lottery's winner unless the loader names one); the others
 *            wait, stopped, until SBI HSM hart_start sends them to
 *            hart_entry (entry.S) with their struct cpu_start as the
 *            opaque word.  CPU indexes follow /cpus, the boot hart first.
 *   timer    Sstc's stimecmp when the boot hart's ISA in the device tree
 *            lists sstc (QEMU 7.2's default CPU does, and OpenSBI 1.1 lets
 *            S-mode write it), else SBI TIME set_timer, an ecall a tick;
 *            the supervisor timer interrupt (sie.STIE) either way.
 *   memory   OpenSBI keeps its own image and data out of the device tree's
 *            memory with a /reserved-memory child, which mm/fdt.c reserves
 *            like any other.
 *   reset    SBI SRST (system reset), for the injected machine reset.
 */
#include <string.h>

#include "rvplat.h"

const char plat_name[] = "riscv64 QEMU virt (S-mode under OpenSBI)";

extern char hart_entry[];              /* entry.S */
#ifdef RISCV_BOOT_HART
extern uint64_t boot_handover_from;    /* entry.S: ~0 if this hart was the firmware's pick */
#endif

#define SBI_EXT_BASE 0x10     /* 0 spec version, 1 impl id, 2 impl version, 3 probe */
#define SBI_EXT_TIME 0x54494d45 /* 0 set_timer(when) */
#define SBI_EXT_HSM 0x48534d  /* 0 hart_start(hart, address, opaque) */
#define SBI_EXT_SRST 0x53525354 /* 0 system_reset(type, reason) */
#define SRST_COLD_REBOOT 1

#define CSR_STIMECMP 0x14d
#define SIE_STIE (1ul << 5)
#define IRQ_S_SOFT 1
#define IRQ_S_TIMER 5

static bool sstc, has_hsm;

unsigned plat_cpu_limit(void)
{
	return BOOT_MAX_CPUS;
}

/* Whether a riscv,isa string ("rv64imafdch_zicsr_..._sstc", len bytes
 * with its NUL) lists the multi-letter extension `ext`. */
static bool isa_lists(const char *isa, uint32_t len, const char *ext)
{
	size_t n = strlen(ext);
	for (uint32_t i = 0; i + n + 1 < len; i++)
		if (isa[i] == '_' && !memcmp(isa + i + 1, ext, n) && (isa[i + n + 1] == '_' || !isa[i + n + 1]))
			return true;
	return false;
}

/* The boot hart's /cpus/cpu@N node: does its ISA have Sstc? */
static bool boot_cpu_fn(const void *dtb, const struct fdt_node *n, void *arg)
{
	bool *found = arg;
	uint64_t hart, size;
	uint32_t len;
	if (n->depth != 2 || strcmp(n->parent, "cpus") || !fdt_prop_has_string(dtb, n, "device_type", "cpu") ||
	    !fdt_reg(dtb, n, 0, &hart, &size) || hart != boot_hartid)
		return true;
	const char *isa = fdt_prop(dtb, n, "riscv,isa", &len);
	sstc = fdt_prop_has_string(dtb, n, "riscv,isa-extensions", "sstc") || (isa && isa_lists(isa, len, "sstc"));
	*found = true;
	return false;
}

void mode_dt_init(const void *dtb)
{
	bool found = false;
	if (fdt_walk(dtb, boot_cpu_fn, &found) < 0 || !found)
		kfail("the boot hart (%lu) is not in /cpus", (unsigned long)boot_hartid);
	long spec = sbi_ecall(SBI_EXT_BASE, 0, 0, 0, 0).value;
	long impl = sbi_ecall(SBI_EXT_BASE, 1, 0, 0, 0).value;
	long ver = sbi_ecall(SBI_EXT_BASE, 2, 0, 0, 0).value;
	bool has_time = sbi_ecall(SBI_EXT_BASE, 3, SBI_EXT_TIME, 0, 0).value != 0;
	has_hsm = sbi_ecall(SBI_EXT_BASE, 3, SBI_EXT_HSM, 0, 0).value != 0;
	if (!sstc && !has_time)
		kfail("no timer: neither Sstc nor the SBI TIME extension");
	kprintf("boot: S-mode under SBI v%ld.%ld (%s%ld.%ld): timebase %lu kHz, tick %u Hz by %s; boot hart "
	        "%lu, the others %s\n",
	        (spec >> 24) & 0x7f, spec & 0xffffff, impl == 1 ? "OpenSBI " : "firmware ",
	        impl == 1 ? ver >> 16 : impl, impl == 1 ? ver & 0xffff : ver,
	        (unsigned long)(riscv_timebase / 1000), TIMER_HZ,
	        sstc ? "Sstc (stimecmp)" : "SBI TIME set_timer", (unsigned long)boot_hartid,
	        has_hsm ? "started by SBI HSM hart_start" : "not startable (no SBI HSM)");
#ifdef RISCV_BOOT_HART
	if (boot_handover_from != ~0ull)
		kprintf("boot: hart %lu handed the boot over to hart %lu (RISCV_BOOT_HART) and stopped\n",
		        (unsigned long)boot_handover_from, (unsigned long)boot_hartid);
#endif
}

static void timer_set(uint64_t when)
{
	if (sstc)
		csr_write(CSR_STIMECMP, when);
	else
		sbi_ecall(SBI_EXT_TIME, 0, when, 0, 0);
}

void plat_timer_start(struct percpu *pc)
{
	pc->timer_period = riscv_timebase / TIMER_HZ;
	timer_set(riscv_time() + pc->timer_period);
	csr_set(sie, SIE_STIE);
}

void timer_stop(void)
{
	csr_clear(sie, SIE_STIE);
	timer_set(~0ull);
}

void mode_irq(uint64_t code, struct percpu *pc)
{
	switch (code) {
	case IRQ_S_TIMER:
		timer_set(riscv_time() + pc->timer_period);
		virt_timer_tick(pc);
		break;
	case IRQ_S_SOFT:
		csr_clear(sip, 1ul << IRQ_S_SOFT);
		break;
	default:
		atomic_fetch_add(&stray_interrupts, 1);
		break;
	}
}

void plat_start_cpu(struct percpu *pc, struct cpu_start *cs)
{
	if (!has_hsm)
		kfail("no SBI HSM extension: hart %lu cannot be started", (unsigned long)pc->hw_id);
	fence_rw(); /* the start block, before the hart can read it */
	struct sbiret r = sbi_ecall(SBI_EXT_HSM, 0, pc->hw_id, (uintptr_t)hart_entry, (uintptr_t)cs);
	if (r.error)
		kfail("SBI HSM hart_start(hart %lu): error %ld", (unsigned long)pc->hw_id, r.error);
}

void plat_cpu_init(struct percpu *pc)
{
	riscv_cpu_setup(pc);
	csr_write(sie, 0);
}

void mode_reset(void)
{
	sbi_ecall(SBI_EXT_SRST, 0, SRST_COLD_REBOOT, 0, 0);
	plat_halt();
}
