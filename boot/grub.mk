# boot/grub.mk - the Multiboot kernel (boot/multiboot.mk's kernel.elf)
# booted the way most hobby kernels are: by GRUB 2 (Debian's grub-pc-bin,
# the BIOS build) from a CD image made by grub-mkrescue, on QEMU's -cdrom
# under SeaBIOS.  GRUB reads boot/grub/grub.cfg (serial console, no menu)
# and loads kernel.elf through its Multiboot2 header
# (boot/multiboot/entry.S); boot/multiboot/mb_main.c takes GRUB's map
# with kmem_memmap_multiboot2.  Included by boot/multiboot.mk.
#
#   make iso-grub                          build/x86_64-grub/spanalloc.iso
#   make run BOOT=grub [SMP=4] [MEM=512M]  boot it, serial on the terminal
#   make test-boot-grub [SMP=] [MEM=]      boot it; pass iff "RESULT: PASS"
#                                          and QEMU's pass status (33)
#
# Variables as for the UEFI kernel (boot/kernel.mk).

GRUB_OUT := $(or $(BUILD),build)/x86_64-grub
GRUB_ISO := $(GRUB_OUT)/spanalloc.iso
# Only the modules grub.cfg's commands need (grub-mkrescue adds what they
# depend on): a 1.3 MiB image instead of 10 MiB with every module.
GRUB_MODULES := multiboot2 serial terminal

.PHONY: iso-grub run-grub test-boot-grub grub-deps

$(GRUB_ISO): $(MB_ELF) boot/grub/grub.cfg
	@rm -rf $(GRUB_OUT)/iso && mkdir -p $(GRUB_OUT)/iso/boot/grub
	cp boot/grub/grub.cfg $(GRUB_OUT)/iso/boot/grub/grub.cfg
	cp $(MB_ELF) $(GRUB_OUT)/iso/boot/kernel.elf
	@# xorriso talks on stderr even when all is well: shown only on failure.
	grub-mkrescue --install-modules="$(GRUB_MODULES)" --fonts= --locales= --themes= \
		-o $@ $(GRUB_OUT)/iso 2>$(GRUB_OUT)/grub-mkrescue.log || \
		{ cat $(GRUB_OUT)/grub-mkrescue.log; rm -f $@; exit 1; }

iso-grub: $(GRUB_ISO)

grub-deps:
	@bash scripts/install-deps.sh grub

GRUB_SUBMAKE = $(MAKE) --no-print-directory -f boot/kernel.mk iso-grub BUILD=$(or $(BUILD),build)

run-grub: kernel-deps grub-deps
	@$(GRUB_SUBMAKE)
	@bash scripts/qemu-run.sh --grub --run $(GRUB_ISO) $(SMP) $(MEM) $(BOOT_TIMEOUT)

test-boot-grub: kernel-deps grub-deps
	@$(GRUB_SUBMAKE)
	@bash scripts/qemu-run.sh --grub --test $(GRUB_ISO) $(SMP) $(MEM) $(BOOT_TIMEOUT)
