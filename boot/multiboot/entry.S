/*
 * boot/multiboot/entry.S - the Multiboot (v1) and Multiboot2 headers and
 * the 32-bit entry both protocols share.
 *
 * One image boots either way: QEMU's -kernel (under SeaBIOS) reads the
 * v1 header, GRUB's `multiboot2` command the Multiboot2 header; each
 * loader looks only for its own magic.
 *
 * v1: QEMU's -kernel loads a Multiboot kernel only from an ELF32 or by
 * the header's address fields (flags bit 16); kernel.elf is an ELF64, so
 * the header gives the addresses (boot/multiboot/kernel.ld puts it first
 * and the image in one contiguous segment): the loader copies the file
 * from the header's offset - (header_addr - load_addr) up to
 * load_end_addr, zeroes up to bss_end_addr, and jumps to entry_addr.
 *
 * Multiboot2 (spec 1.0, 3.1): GRUB loads an ELF64 by its program headers
 * (the one PT_LOAD at 1 MiB) and enters at e_entry, so the header needs
 * no address tags: only the information requests, for the memory map
 * (required: the kernel needs the E820 detail, not basic meminfo) and,
 * optionally, the ACPI RSDP copies (mb_main.c searches the BIOS areas
 * without them).
 *
 * At mb_entry (Multiboot 0.6.96, 3.2; Multiboot2 1.0, 3.3): 32-bit
 * protected mode, flat segments, paging and interrupts off, EAX = the
 * protocol's boot magic, EBX = its boot information (MBI), no stack, no
 * valid GDT.  We:
 *   - take the boot stack (in .bss);
 *   - identity-map 0..4 GiB with 2 MiB pages (tables in .bss): the image,
 *     the MBI and the BIOS areas are all below 4 GiB;
 *   - CR4.PAE, CR3, EFER.LME, CR0.PG: long mode (compatibility);
 *   - load a GDT with a 64-bit code segment and jump to it;
 *   - call mb_main(magic, mbi) (boot/multiboot/mb_main.c), which tells
 *     the protocols apart by the magic.
 * kmain (boot/kmain.c) soon loads the kernel's own page tables and GDT.
 */
	.set MB_MAGIC, 0x1badb002
	.set MB_FLAGS, (1 << 1) | (1 << 16) /* memory map wanted; address fields */

	.section .multiboot, "a"
	.balign 4
mb_header:
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
	.long mb_header, __image_start, __load_end, __image_end, mb_entry

	.set MB2_MAGIC, 0xe85250d6
	.set MB2_ARCH, 0                    /* i386: 32-bit protected mode */
	.set MB2_LEN, mb2_header_end - mb2_header
	.set MB2_TAG_OPTIONAL, 1
	.balign 8
mb2_header:
	.long MB2_MAGIC, MB2_ARCH, MB2_LEN, 0x100000000 - (MB2_MAGIC + MB2_ARCH + MB2_LEN)
	.balign 8                           /* information request: memory map */
	.word 1, 0
	.long 12, 6
	.balign 8                           /* information request: ACPI RSDP old, new */
	.word 1, MB2_TAG_OPTIONAL
	.long 16, 14, 15
	.balign 8                           /* end */
	.word 0, 0
	.long 8
mb2_header_end:

	.section .bss
	.balign 4096
boot_pml4:
	.skip 4096
boot_pdpt:
	.skip 4096
boot_pd:
	.skip 4 * 4096
	.balign 16
boot_stack:
	.skip 16384
boot_stack_top:

	.section .rodata
	.balign 8
boot_gdt:
	.quad 0
	.quad 0x00af9a000000ffff /* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff /* 0x10: data */
boot_gdtr:
	.word boot_gdtr - boot_gdt - 1
	.long boot_gdt

	.text
	.code32
	.globl mb_entry
mb_entry:
	cli
	movl $boot_stack_top, %esp
	movl %eax, %edi          /* mb_main's arguments: magic, MBI */
	movl %ebx, %esi

	/* 2048 page directory entries: 2 MiB pages, present, writable. */
	xorl %ecx, %ecx
1:	movl %ecx, %eax
	shll $21, %eax
	orl $0x83, %eax
	movl %eax, boot_pd(, %ecx, 8)
	incl %ecx
	cmpl $2048, %ecx
	jb 1b
	/* 4 PDPT entries, 1 PML4 entry. */
	xorl %ecx, %ecx
2:	movl %ecx, %eax
	shll $12, %eax
	addl $boot_pd + 3, %eax
	movl %eax, boot_pdpt(, %ecx, 8)
	incl %ecx
	cmpl $4, %ecx
	jb 2b
	movl $boot_pdpt + 3, boot_pml4

	movl $boot_pml4, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $0x20, %eax          /* PAE */
	movl %eax, %cr4
	movl $0xc0000080, %ecx   /* EFER */
	rdmsr
	orl $0x100, %eax         /* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax    /* PG, PE */
	movl %eax, %cr0
	lgdt boot_gdtr
	ljmp $0x08, $mb_entry64

	.code64
mb_entry64:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	xorl %eax, %eax
	movw %ax, %fs
	movw %ax, %gs
	movq $boot_stack_top, %rsp
	movl %edi, %edi          /* the upper halves are undefined */
	movl %esi, %esi
	xorl %ebp, %ebp
	call mb_main
3:	hlt
	jmp 3b

	.section .note.GNU-stack,"",@progbits
