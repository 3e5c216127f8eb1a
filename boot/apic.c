/*
 * boot/apic.c - the legacy 8259 (masked), the local APIC (xAPIC MMIO, or
 * x2APIC MSRs if the firmware left it in that mode), its periodic timer,
 * IPIs for INIT-SIPI-SIPI, and time: the LAPIC timer and the TSC are
 * calibrated once against the ACPI PM timer (3.579545 MHz, port from the
 * FADT).  Under TCG all three follow QEMU's virtual clock, so "10 ms" is
 * about 10 ms of host time.
 */
#include "kernel.h"

#define LAPIC_ID 0x20
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_ESR 0x280
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0

#define LVT_MASKED (1u << 16)
#define LVT_PERIODIC (1u << 17)
#define TIMER_DIV_16 0x3

#define PM_TIMER_HZ 3579545ull

static uintptr_t lapic_base; /* xAPIC MMIO (identity-mapped) */
static bool x2apic;
static uint64_t tsc_freq = 1000000000ull;        /* fallback: 1 GHz */
static uint64_t lapic_freq = 1000000000ull / 16; /* QEMU's APIC bus / 16 */
static uint64_t tsc_at_calibration;
static bool calibrated;

static uint32_t lapic_read(unsigned reg)
{
	if (x2apic)
		return (uint32_t)rdmsr(0x800 + (reg >> 4));
	return *(volatile uint32_t *)(lapic_base + reg);
}

static void lapic_write(unsigned reg, uint32_t v)
{
	if (x2apic)
		wrmsr(0x800 + (reg >> 4), v);
	else
		*(volatile uint32_t *)(lapic_base + reg) = v;
}

void pic_disable(void)
{
	/* Remap the 8259s to VEC_PIC_BASE (so a spurious IRQ cannot look
	 * like an exception), then mask every line. */
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, VEC_PIC_BASE);
	outb(0xa1, VEC_PIC_BASE + 8);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

void lapic_init_cpu(void)
{
	uint64_t base = rdmsr(MSR_APIC_BASE);
	if (!(base & (1u << 11)))
		wrmsr(MSR_APIC_BASE, base | (1u << 11)); /* global enable */
	x2apic = (base >> 10) & 1;
	lapic_base = (uintptr_t)(base & 0xffffff000ull);
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
	lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);          /* no 8259 */
	lapic_write(LAPIC_LVT_LINT1, 0x400);               /* NMI */
	lapic_write(LAPIC_LVT_ERROR, VEC_APIC_ERROR);
	lapic_write(LAPIC_ESR, 0);
	lapic_write(LAPIC_ESR, 0);
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);     /* software enable */
	/* Retire anything the firmware left in service (ISR), as Linux does;
	 * requests still pending in IRR arrive after sti as stray vectors
	 * (boot/cpu.c counts them). */
	for (unsigned n = 0; n < 256; n++) {
		bool any = false;
		for (unsigned i = 0; i < 8; i++)
			any |= lapic_read(0x100 + 0x10 * i) != 0;
		if (!any)
			break;
		lapic_write(LAPIC_EOI, 0);
	}
}

uint32_t lapic_id(void)
{
	uint32_t id = lapic_read(LAPIC_ID);
	return x2apic ? id : id >> 24;
}

bool lapic_is_x2apic(void)
{
	return x2apic;
}

void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

uint32_t lapic_read_esr(void)
{
	lapic_write(LAPIC_ESR, 0);
	return lapic_read(LAPIC_ESR);
}

static uint32_t pm_read(const struct acpi_info *a)
{
	uint32_t v = inl(a->pm_timer_port);
	return a->pm_timer_32bit ? v : v & 0xffffff;
}

void timer_calibrate(const struct acpi_info *a)
{
	tsc_at_calibration = rdtsc();
	if (!a->pm_timer_port)
		return; /* keep the fallbacks */
	uint32_t mask = a->pm_timer_32bit ? 0xffffffffu : 0xffffffu;
	uint32_t ticks = (uint32_t)(PM_TIMER_HZ / 20); /* 50 ms */
	lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_16);
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
	lapic_write(LAPIC_TIMER_INIT, 0xffffffffu);
	uint32_t p0 = pm_read(a);
	uint64_t t0 = rdtsc();
	uint32_t l0 = lapic_read(LAPIC_TIMER_CUR);
	uint32_t p1;
	do {
		p1 = pm_read(a);
		if (rdtsc() - t0 > 20000000000ull) { /* seconds at any TSC rate */
			lapic_write(LAPIC_TIMER_INIT, 0);
			return; /* PM timer not counting: keep the fallbacks */
		}
	} while (((p1 - p0) & mask) < ticks);
	uint64_t t1 = rdtsc();
	uint32_t l1 = lapic_read(LAPIC_TIMER_CUR);
	lapic_write(LAPIC_TIMER_INIT, 0);
	uint64_t elapsed = (p1 - p0) & mask;
	tsc_freq = (t1 - t0) * PM_TIMER_HZ / elapsed;
	lapic_freq = (uint64_t)(l0 - l1) * PM_TIMER_HZ / elapsed;
	if (lapic_freq < 1000 || tsc_freq < 1000000) {
		tsc_freq = 1000000000ull;
		lapic_freq = 1000000000ull / 16;
		return;
	}
	calibrated = true;
}

bool timer_calibrated(void)
{
	return calibrated;
}

uint64_t tsc_hz(void)
{
	return tsc_freq;
}

uint64_t lapic_timer_hz(void)
{
	return lapic_freq;
}

void lapic_timer_start(unsigned hz)
{
	uint64_t count = lapic_freq / hz;
	if (count == 0)
		count = 1;
	if (count > 0xffffffffu)
		count = 0xffffffffu;
	lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_16);
	lapic_write(LAPIC_LVT_TIMER, VEC_TIMER | LVT_PERIODIC);
	lapic_write(LAPIC_TIMER_INIT, (uint32_t)count);
}

void lapic_timer_stop(void)
{
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
	lapic_write(LAPIC_TIMER_INIT, 0);
}

void udelay(uint64_t us)
{
	uint64_t end = rdtsc() + us * tsc_freq / 1000000ull;
	while ((int64_t)(rdtsc() - end) < 0)
		cpu_pause();
}

uint64_t uptime_us(void)
{
	return (rdtsc() - tsc_at_calibration) * 1000000ull / tsc_freq;
}

static void lapic_icr(uint32_t apic_id, uint32_t lo)
{
	if (x2apic) {
		wrmsr(0x830, ((uint64_t)apic_id << 32) | lo);
		return;
	}
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, lo);
	for (unsigned i = 0; i < 1000000 && (lapic_read(LAPIC_ICR_LO) & (1u << 12)); i++)
		cpu_pause(); /* delivery pending */
}

void lapic_send_init(uint32_t apic_id)
{
	lapic_icr(apic_id, 0x4500); /* INIT, level assert */
}

void lapic_send_sipi(uint32_t apic_id, uint8_t page)
{
	lapic_icr(apic_id, 0x4600 | page); /* start-up, vector = page number */
}

void lapic_send_nmi(uint32_t apic_id)
{
	lapic_icr(apic_id, 0x4400); /* NMI, level assert (the vector is ignored) */
}
