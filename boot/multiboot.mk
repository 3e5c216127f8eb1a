# boot/multiboot.mk - the x86_64 demo kernel as a Multiboot (v1) image,
# booted by QEMU's -kernel under SeaBIOS: the same objects as the UEFI
# kernel (boot/kernel.mk's k_objects, compiled without -fpic into their
# own directory) with boot/multiboot/ as the entry instead of
# boot/efi_main.c, linked at 1 MiB by boot/multiboot/kernel.ld.
# Included by boot/kernel.mk.  The image also has a Multiboot2 header:
# boot/grub.mk (included at the end) boots it by GRUB.
#
#   make kernel-multiboot                     build/x86_64-mb/kernel.elf
#   make run BOOT=multiboot [SMP=4] [MEM=512M] boot it, serial on the terminal
#   make test-boot-multiboot [SMP=] [MEM=]    boot it; pass iff "RESULT: PASS"
#                                             and QEMU's pass status (33)
#
# Variables as for the UEFI kernel (boot/kernel.mk).

MB_OUT := $(or $(BUILD),build)/x86_64-mb
MB_ELF := $(MB_OUT)/kernel.elf
MB_SRC := $(sort $(wildcard boot/multiboot/*.c boot/multiboot/*.S))

.PHONY: kernel-multiboot run-multiboot test-boot-multiboot

$(eval $(call k_rules,$(MB_OUT),-fno-pic -fno-pie))

$(MB_ELF): $(call k_objects,$(MB_OUT),$(MB_SRC)) boot/multiboot/kernel.ld
	$(K_LD) -nostdlib -static --no-undefined -z max-page-size=0x1000 --no-warn-rwx-segments \
		-T boot/multiboot/kernel.ld -Map=$(MB_OUT)/kernel.map $(filter %.o,$^) -o $@

kernel-multiboot: $(MB_ELF)

MB_SUBMAKE = $(MAKE) --no-print-directory -f boot/kernel.mk kernel-multiboot BUILD=$(or $(BUILD),build)

run-multiboot: kernel-deps
	@$(MB_SUBMAKE)
	@bash scripts/qemu-run.sh --multiboot --run $(MB_ELF) $(SMP) $(MEM) $(BOOT_TIMEOUT)

test-boot-multiboot: kernel-deps
	@$(MB_SUBMAKE)
	@bash scripts/qemu-run.sh --multiboot --test $(MB_ELF) $(SMP) $(MEM) $(BOOT_TIMEOUT)

# The same image booted by GRUB (Multiboot2) from a CD image: iso-grub,
# run-grub, test-boot-grub.
include boot/grub.mk
