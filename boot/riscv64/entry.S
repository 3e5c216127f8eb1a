/*
 * boot/riscv64/entry.S - entry and trap vector of the riscv64 demo kernel
 * (M-mode, QEMU virt with -bios none).
 *
 *   _entry       at 0x80000000, where every hart starts at once with
 *                a0 = its hart id and a1 = the device tree.  The first to
 *                swap the lottery word is the boot hart: it keeps a0/a1
 *                and goes on to picolibc's crt0 (_start: stack, gp, .data,
 *                .bss, TLS, main).  Every other hart parks: machine
 *                software interrupts enabled in mie (mstatus.MIE stays 0,
 *                so nothing traps), wfi until its mailbox slot
 *                (park_mailbox[hart id]) holds a struct cpu_start
 *                (boot/virt/virt.h); then its stack, gp, and the C entry
 *                with the block.  The boot hart fills the slot and raises
 *                the hart's CLINT msip to wake it.
 *   trap_entry   mtvec (direct): saves the registers on the current stack,
 *                calls riscv_trap(mcause, mepc, mtval, frame), restores,
 *                mret.
 * Everything here runs before gp is set (or must not depend on it), so
 * the linker may not relax addresses to gp-relative ones.
 */
	.option norelax

#define PARK_MAX 64 /* hart ids 0..63 can be started */
#define CS_SP 0
#define CS_ENTRY 8

	.section .bootdata, "aw"
	.balign 8
boot_lottery:
	.word 0
	.word 0
	.global boot_hartid, boot_dtb, park_mailbox, park_mailbox_end
boot_hartid:
	.dword 0
boot_dtb:
	.dword 0
park_mailbox:
	.zero 8 * PARK_MAX
park_mailbox_end:

	.section .text.entry, "ax"
	.global _entry
_entry:
	csrw	mie, zero
	la	t0, boot_lottery
	li	t1, 1
	amoswap.w.aq t1, t1, (t0)
	bnez	t1, park
	la	t0, boot_hartid
	sd	a0, 0(t0)
	la	t0, boot_dtb
	sd	a1, 0(t0)
	j	_start

park:
	li	t0, 8			/* mie.MSIE */
	csrw	mie, t0
	li	t1, PARK_MAX
	bgeu	a0, t1, 2f		/* no slot: park for good */
	la	t1, park_mailbox
	slli	t2, a0, 3
	add	t1, t1, t2
1:	wfi
	ld	t3, 0(t1)
	beqz	t3, 1b
	fence	r, rw
	mv	a0, t3
	ld	sp, CS_SP(a0)
	la	gp, __global_pointer$
	ld	t0, CS_ENTRY(a0)
	jr	t0
2:	wfi
	j	2b

	.text
	.balign 4
	.global trap_entry
trap_entry:
	addi	sp, sp, -256
	sd	x1, 8(sp)
	sd	x3, 24(sp)
	sd	x4, 32(sp)
	sd	x5, 40(sp)
	sd	x6, 48(sp)
	sd	x7, 56(sp)
	sd	x8, 64(sp)
	sd	x9, 72(sp)
	sd	x10, 80(sp)
	sd	x11, 88(sp)
	sd	x12, 96(sp)
	sd	x13, 104(sp)
	sd	x14, 112(sp)
	sd	x15, 120(sp)
	sd	x16, 128(sp)
	sd	x17, 136(sp)
	sd	x18, 144(sp)
	sd	x19, 152(sp)
	sd	x20, 160(sp)
	sd	x21, 168(sp)
	sd	x22, 176(sp)
	sd	x23, 184(sp)
	sd	x24, 192(sp)
	sd	x25, 200(sp)
	sd	x26, 208(sp)
	sd	x27, 216(sp)
	sd	x28, 224(sp)
	sd	x29, 232(sp)
	sd	x30, 240(sp)
	sd	x31, 248(sp)
	csrr	a0, mcause
	csrr	a1, mepc
	csrr	a2, mtval
	mv	a3, sp
	call	riscv_trap
	ld	x1, 8(sp)
	ld	x3, 24(sp)
	ld	x4, 32(sp)
	ld	x5, 40(sp)
	ld	x6, 48(sp)
	ld	x7, 56(sp)
	ld	x8, 64(sp)
	ld	x9, 72(sp)
	ld	x10, 80(sp)
	ld	x11, 88(sp)
	ld	x12, 96(sp)
	ld	x13, 104(sp)
	ld	x14, 112(sp)
	ld	x15, 120(sp)
	ld	x16, 128(sp)
	ld	x17, 136(sp)
	ld	x18, 144(sp)
	ld	x19, 152(sp)
	ld	x20, 160(sp)
	ld	x21, 168(sp)
	ld	x22, 176(sp)
	ld	x23, 184(sp)
	ld	x24, 192(sp)
	ld	x25, 200(sp)
	ld	x26, 208(sp)
	ld	x27, 216(sp)
	ld	x28, 224(sp)
	ld	x29, 232(sp)
	ld	x30, 240(sp)
	ld	x31, 248(sp)
	addi	sp, sp, 256
	mret
