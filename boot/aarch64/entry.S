/*
 * boot/aarch64/entry.S - entry points and exception vectors of the aarch64
 * demo kernel (EL1, QEMU virt).
 *
 *   _entry            where QEMU starts the boot CPU (the ELF entry): keeps
 *                     x0 (a device tree pointer, if a loader passed one;
 *                     QEMU leaves it 0 for a bare ELF and puts the tree at
 *                     the start of RAM) and goes on to picolibc's crt0
 *                     (_start: stack, FP/SIMD on, .data, .bss, TLS, main).
 *   secondary_entry   where PSCI CPU_ON starts every other CPU, MMU off,
 *                     x0 = its struct cpu_start (boot/virt/virt.h): FP/SIMD
 *                     on, the boot CPU's MAIR/TCR/TTBR0/SCTLR (same
 *                     identity map, caches on), its stack, then the C
 *                     entry with the block.
 *   vectors           VBAR_EL1.  Every entry saves the general registers,
 *                     ELR, SPSR and the whole FP/SIMD file (the interrupt
 *                     handlers allocate, and picolibc's string functions
 *                     use SIMD registers), then calls
 *                     aarch64_exception(index, frame); an IRQ returns here
 *                     and erets.
 */

#define FRAME_SIZE 800 /* x0-x30, ELR, SPSR, pad (272), q0-q31 (512), FPSR, FPCR */
#define FRAME_FP 272

#define CS_SP 0
#define CS_ENTRY 8
#define CS_ARCH 24

	.section .bootdata, "aw"
	.balign 8
	.global boot_x0
boot_x0:
	.quad 0

	.section .text.entry, "ax"
	.global _entry
_entry:
	adrp	x1, boot_x0
	str	x0, [x1, #:lo12:boot_x0]
	b	_start

	.text
	.balign 8
	.global secondary_entry
secondary_entry:
	mov	x19, x0
	mov	x1, #(3 << 20)		/* CPACR_EL1.FPEN: no FP/SIMD traps */
	msr	cpacr_el1, x1
	isb
	ldr	x1, [x19, #CS_ARCH + 0]
	msr	mair_el1, x1
	ldr	x1, [x19, #CS_ARCH + 8]
	msr	tcr_el1, x1
	ldr	x1, [x19, #CS_ARCH + 16]
	msr	ttbr0_el1, x1
	isb
	tlbi	vmalle1
	dsb	nsh
	isb
	ldr	x1, [x19, #CS_ARCH + 24]
	msr	sctlr_el1, x1
	isb
	ldr	x1, [x19, #CS_SP]
	mov	sp, x1
	mov	x29, #0
	mov	x30, #0
	mov	x0, x19
	ldr	x1, [x19, #CS_ENTRY]
	br	x1

.macro ventry idx
	.balign 0x80
	sub	sp, sp, #FRAME_SIZE
	stp	x0, x1, [sp, #0]
	mov	x0, #\idx
	b	exc_common
.endm

	.balign 0x800
	.global vectors
vectors:
	ventry 0	/* current EL, SP_EL0: sync, IRQ, FIQ, SError */
	ventry 1
	ventry 2
	ventry 3
	ventry 4	/* current EL, SP_ELx: sync, IRQ, FIQ, SError */
	ventry 5
	ventry 6
	ventry 7
	ventry 8	/* lower EL, AArch64 */
	ventry 9
	ventry 10
	ventry 11
	ventry 12	/* lower EL, AArch32 */
	ventry 13
	ventry 14
	ventry 15

exc_common:
	stp	x2, x3, [sp, #16]
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x19, [sp, #144]
	stp	x20, x21, [sp, #160]
	stp	x22, x23, [sp, #176]
	stp	x24, x25, [sp, #192]
	stp	x26, x27, [sp, #208]
	stp	x28, x29, [sp, #224]
	mrs	x1, elr_el1
	mrs	x2, spsr_el1
	stp	x30, x1, [sp, #240]
	str	x2, [sp, #256]
	add	x1, sp, #FRAME_FP
	stp	q0, q1, [x1, #0]
	stp	q2, q3, [x1, #32]
	stp	q4, q5, [x1, #64]
	stp	q6, q7, [x1, #96]
	stp	q8, q9, [x1, #128]
	stp	q10, q11, [x1, #160]
	stp	q12, q13, [x1, #192]
	stp	q14, q15, [x1, #224]
	stp	q16, q17, [x1, #256]
	stp	q18, q19, [x1, #288]
	stp	q20, q21, [x1, #320]
	stp	q22, q23, [x1, #352]
	stp	q24, q25, [x1, #384]
	stp	q26, q27, [x1, #416]
	stp	q28, q29, [x1, #448]
	stp	q30, q31, [x1, #480]
	mrs	x2, fpsr
	mrs	x3, fpcr
	add	x1, x1, #512
	stp	x2, x3, [x1]
	mov	x1, sp
	bl	aarch64_exception

	add	x1, sp, #(FRAME_FP + 512)
	ldp	x2, x3, [x1]
	msr	fpsr, x2
	msr	fpcr, x3
	add	x1, sp, #FRAME_FP
	ldp	q0, q1, [x1, #0]
	ldp	q2, q3, [x1, #32]
	ldp	q4, q5, [x1, #64]
	ldp	q6, q7, [x1, #96]
	ldp	q8, q9, [x1, #128]
	ldp	q10, q11, [x1, #160]
	ldp	q12, q13, [x1, #192]
	ldp	q14, q15, [x1, #224]
	ldp	q16, q17, [x1, #256]
	ldp	q18, q19, [x1, #288]
	ldp	q20, q21, [x1, #320]
	ldp	q22, q23, [x1, #352]
	ldp	q24, q25, [x1, #384]
	ldp	q26, q27, [x1, #416]
	ldp	q28, q29, [x1, #448]
	ldp	q30, q31, [x1, #480]
	ldp	x30, x1, [sp, #240]
	ldr	x2, [sp, #256]
	msr	elr_el1, x1
	msr	spsr_el1, x2
	ldp	x0, x1, [sp, #0]
	ldp	x2, x3, [sp, #16]
	ldp	x4, x5, [sp, #32]
	ldp	x6, x7, [sp, #48]
	ldp	x8, x9, [sp, #64]
	ldp	x10, x11, [sp, #80]
	ldp	x12, x13, [sp, #96]
	ldp	x14, x15, [sp, #112]
	ldp	x16, x17, [sp, #128]
	ldp	x18, x19, [sp, #144]
	ldp	x20, x21, [sp, #160]
	ldp	x22, x23, [sp, #176]
	ldp	x24, x25, [sp, #192]
	ldp	x26, x27, [sp, #208]
	ldp	x28, x29, [sp, #224]
	add	sp, sp, #FRAME_SIZE
	eret
