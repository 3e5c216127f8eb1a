/*
 * boot/entry.S - interrupt entry stubs and the stack switch.
 *
 * isr_stubs: 256 stubs of 16 bytes each (vector v at isr_stubs + 16*v),
 * so the IDT is built from one address with no relocations.  Each pushes a
 * zero error code where the CPU does not push one, then the vector, and
 * jumps to isr_common, which saves the general registers and calls
 * isr_dispatch(struct intr_frame *).  The kernel is built with
 * -mgeneral-regs-only, so no FPU/SSE state needs saving.
 *
 * Stack alignment: the CPU aligns RSP to 16 before pushing its 5-word
 * frame; error code + vector + 15 registers keep it 16-aligned at the call.
 */
	.text

	.globl isr_stubs
	.balign 16
isr_stubs:
	.set vec, 0
	.rept 256
	.balign 16
	/* Vectors with a CPU-pushed error code: 8 10-14 17 21 29 30. */
	.if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	pushq $vec
	.else
	pushq $0
	pushq $vec
	.endif
	jmp isr_common
	.set vec, vec + 1
	.endr

isr_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	cld
	movq %rsp, %rdi
	call isr_dispatch
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp
	iretq

/* void switch_stack(void *top, void (*fn)(void *), void *arg): runs fn(arg)
 * on the stack ending at top (16-aligned); fn must not return. */
	.globl switch_stack
switch_stack:
	movq %rdi, %rsp
	xorl %ebp, %ebp
	movq %rdx, %rdi
	pushq $0            /* fake return address: fn sees RSP = 8 mod 16 */
	jmpq *%rsi

	.section .note.GNU-stack,"",@progbits
