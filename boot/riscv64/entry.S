/*
 * boot/riscv64/entry.S - entry points and trap vector of the riscv64 demo
 * kernel: S-mode under OpenSBI (QEMU's default firmware), or, built with
 * -DRISCV_MMODE, M-mode with no firmware (QEMU -bios none).
 *
 *   _entry       the image's first byte (QEMU 7.2 starts the kernel at the
 *                lowest address it loaded, not at the ELF entry).
 *                S-mode: OpenSBI comes here on one hart, the boot hart
 *                (its lottery's winner, unless the loader names one),
 *                a0 = its hart id, a1 = the device tree.  M-mode: every
 *                hart comes here at once; the first to swap the lottery
 *                word is the boot hart and every other parks (below).  The
 *                boot hart keeps a0/a1, takes the boot stack and gp, and
 *                calls riscv_start (platform.c: .bss, TLS, main).  Not
 *                picolibc's crt0: it writes mtvec, which traps in S-mode.  (The
 *                riscv64-alt test build first moves the boot to another
 *                hart: RISCV_BOOT_HART below.)
 *   hart_entry   S-mode: where SBI HSM hart_start starts every other hart,
 *                a0 = its hart id, a1 = the opaque word, its struct
 *                cpu_start (boot/virt/virt.h): its stack, gp, and the C
 *                entry with the block.
 *   park         M-mode: machine software interrupts enabled in mie
 *                (mstatus.MIE stays 0, so nothing traps), wfi until the
 *                hart's mailbox slot (park_mailbox[hart id]) holds its
 *                struct cpu_start; then as hart_entry.  The boot hart fills
 *                the slot and raises the hart's CLINT msip to wake it.
 *   trap_entry   stvec or mtvec (direct): saves the registers on the
 *                current stack, calls riscv_trap(cause, epc, tval, frame),
 *                restores, sret or mret.
 * Everything here runs before gp is set (or must not depend on it), so
 * the linker may not relax addresses to gp-relative ones.
 */
	.option norelax

#define CS_SP 0
#define CS_ENTRY 8

#ifdef RISCV_MMODE
#define XIE mie
#define XCAUSE mcause
#define XEPC mepc
#define XTVAL mtval
#define XRET mret
#define PARK_MAX 64 /* hart ids 0..63 can be started */
#else
#define SBI_EXT_HSM 0x48534d
#define XIE sie
#define XCAUSE scause
#define XEPC sepc
#define XTVAL stval
#define XRET sret
#endif

	.section .bootdata, "aw"
	.balign 8
	.global boot_hartid, boot_dtb
boot_hartid:
	.dword 0
boot_dtb:
	.dword 0
#ifdef RISCV_BOOT_HART
	.global boot_handover_from
boot_handover_from:
	.dword -1
#endif
#ifdef RISCV_MMODE
	.global park_mailbox, park_mailbox_end
boot_lottery:
	.dword 0
park_mailbox:
	.zero 8 * PARK_MAX
park_mailbox_end:
#endif

	.section .text.entry, "ax"
	.global _entry
_entry:
	csrw	XIE, zero
#ifdef RISCV_BOOT_HART
	/* The test build riscv64-alt: OpenSBI may boot the kernel on any hart
	 * (QEMU 7.2's picked hart 0 in every run here), so hand the boot over to hart
	 * RISCV_BOOT_HART as if the firmware had picked it: SBI HSM starts it
	 * here with the device tree, and this hart stops.  Without that hart
	 * (-smp too small), boot here. */
	li	t0, RISCV_BOOT_HART
	beq	a0, t0, 2f
	mv	s0, a0
	mv	s1, a1
	la	t1, boot_handover_from
	sd	s0, 0(t1)
	mv	a0, t0
	la	a1, _entry
	mv	a2, s1
	li	a7, SBI_EXT_HSM
	li	a6, 0			/* hart_start */
	ecall
	bnez	a0, 1f
	li	a6, 1			/* hart_stop: does not return */
	ecall
1:	li	t0, -1
	sd	t0, 0(t1)
	mv	a0, s0
	mv	a1, s1
2:
#endif
#ifdef RISCV_MMODE
	la	t0, boot_lottery
	li	t1, 1
	amoswap.w.aq t1, t1, (t0)
	bnez	t1, park
#endif
	la	t0, boot_hartid
	sd	a0, 0(t0)
	la	t0, boot_dtb
	sd	a1, 0(t0)
	la	sp, __stack
	la	gp, __global_pointer$
	call	riscv_start
1:	j	1b

/* a0 = a struct cpu_start: its stack, gp, its C entry with the block. */
start_cpu:
	ld	sp, CS_SP(a0)
	la	gp, __global_pointer$
	ld	t0, CS_ENTRY(a0)
	jr	t0

#ifdef RISCV_MMODE
park:
	li	t0, 8			/* mie.MSIE */
	csrw	mie, t0
	li	t1, PARK_MAX
	bgeu	a0, t1, 2f		/* no slot: park for good */
	la	t1, park_mailbox
	slli	t2, a0, 3
	add	t1, t1, t2
1:	wfi
	ld	a0, 0(t1)
	beqz	a0, 1b
	fence	r, rw
	j	start_cpu
2:	wfi
	j	2b
#else
	.balign 4
	.global hart_entry
hart_entry:
	csrw	sie, zero
	mv	a0, a1
	j	start_cpu
#endif

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
	csrr	a0, XCAUSE
	csrr	a1, XEPC
	csrr	a2, XTVAL
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
	XRET
