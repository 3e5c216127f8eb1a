/*
 * boot/demo_x86.c - the x86_64 kernel's side of boot/demo.h that has no
 * other home: the pass exit, the timer stop, stacks and ids for the
 * summary, and the arch part of the deliberate failures.
 */
#include "kernel.h"

const char cpu_hw_id_name[] = "apic";

void kernel_pass(void)
{
	qemu_exit(QEMU_EXIT_PASS);
}

void timer_stop(void)
{
	lapic_timer_stop();
}

uint32_t cpu_hw_id(const struct percpu *pc)
{
	return pc->apic_id;
}

void cpu_stack_area(const struct percpu *pc, const uint8_t **base, size_t *size)
{
	if (pc->stack) {
		*base = pc->stack;
		*size = pc->stack_pages * KMEM_PAGE_SIZE;
	} else { /* the BSP: its static stack (boot/efi_main.c) */
		*base = boot_info.bsp_stack;
		*size = boot_info.bsp_stack_size;
	}
}

void kernel_inject(int kind)
{
	if (kind == 1) {
		*(volatile uint64_t *)(uintptr_t)0x7fde00000000ull = 1; /* not mapped: #PF */
	} else if (kind == 4) {
		struct desc_ptr none = {0, 0};
		lidt(&none);
		__asm__ volatile("ud2"); /* no IDT: triple fault */
	}
}
