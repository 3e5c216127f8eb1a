/*
 * boot/trampoline.S - the AP start-up code.  smp.c copies ap_tramp_start ..
 * ap_tramp_end to a page P below 1 MiB, fills in the data block
 * (struct tramp_data in smp.c; offsets TD_* below must match it) and sends
 * INIT-SIPI-SIPI with vector P >> 12.  The AP then runs:
 *
 *   16-bit real mode, CS = P >> 4, IP = 0:
 *     EBX = P; load the trampoline's GDT; CR0.PE; far jump to 32-bit code
 *   32-bit protected mode (flat segments):
 *     CR4 (PAE ...) and CR3 (a PML4 below 4 GiB) as the BSP's;
 *     EFER.LME (+NXE as on the BSP); CR0.PG; far jump to 64-bit code
 *   64-bit long mode:
 *     RSP = its stack, RDI = its struct percpu, jump to the C entry.
 *
 * Everything is addressed relative to P (EBX), so the blob is position
 * independent and has no relocations.
 */
	.set TD_GDT, 0
	.set TD_GDTR, 38      /* limit (2), base (4) */
	.set TD_PM32, 44      /* far pointer: offset (4), selector (2) */
	.set TD_LM64, 52
	.set TD_CR0, 60
	.set TD_CR3, 64
	.set TD_CR4, 68
	.set TD_EFER, 72
	.set TD_STACK, 80
	.set TD_ARG, 88
	.set TD_ENTRY, 96
	.set TD_ALIVE, 104

	.text
	.globl ap_tramp_start, ap_tramp_end, ap_tramp_data, ap_tramp_pm32, ap_tramp_lm64
	.balign 16
	.code16
ap_tramp_start:
	cli
	cld
	movw %cs, %ax
	movw %ax, %ds
	xorl %ebx, %ebx
	movw %ax, %bx
	shll $4, %ebx
	lgdtl (ap_tramp_data - ap_tramp_start + TD_GDTR)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl *(ap_tramp_data - ap_tramp_start + TD_PM32)

	.code32
ap_tramp_pm32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl (ap_tramp_data - ap_tramp_start + TD_CR4)(%ebx), %eax
	movl %eax, %cr4
	movl (ap_tramp_data - ap_tramp_start + TD_CR3)(%ebx), %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx
	rdmsr
	orl (ap_tramp_data - ap_tramp_start + TD_EFER)(%ebx), %eax
	wrmsr
	movl (ap_tramp_data - ap_tramp_start + TD_CR0)(%ebx), %eax
	movl %eax, %cr0
	ljmpl *(ap_tramp_data - ap_tramp_start + TD_LM64)(%ebx)

	.code64
ap_tramp_lm64:
	movl $1, (ap_tramp_data - ap_tramp_start + TD_ALIVE)(%rbx)
	movq (ap_tramp_data - ap_tramp_start + TD_STACK)(%rbx), %rsp
	movq (ap_tramp_data - ap_tramp_start + TD_ARG)(%rbx), %rdi
	movq (ap_tramp_data - ap_tramp_start + TD_ENTRY)(%rbx), %rax
	xorl %ebp, %ebp
	pushq $0              /* fake return address: the C entry sees RSP = 8 mod 16 */
	jmpq *%rax

	.balign 8
ap_tramp_data:
	.fill 112, 1, 0
ap_tramp_end:

	.section .note.GNU-stack,"",@progbits
