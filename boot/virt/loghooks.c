/*
 * boot/virt/loghooks.c - spanalloc's arch_log and arch_panic on the demo
 * console (console.c): a line, and RESULT: FAIL with the fail exit.  The
 * aarch64 kernel and the riscv64 M-mode build link it; the riscv64 S-mode
 * build has arch/riscv64/arch.c's instead, through the SBI firmware.
 */
#include "virt.h"

void arch_log(const char *line)
{
	kprintf("%s\n", line);
}

void arch_panic(const char *msg)
{
	kfail("panic: %s", msg);
}
