# boot/kernel.mk - the x86_64 demo kernel: a GNU-EFI application booted by
# OVMF in QEMU (boot/, arch/x86_64/, and mm/ compiled for it), and the
# same kernel as a Multiboot (v1) image booted by QEMU -kernel under
# SeaBIOS (boot/multiboot.mk, included at the end).
# Included by the top-level Makefile; also usable alone:
#     make -f Makefile -f boot/kernel.mk run
#
#   make kernel                   build/x86_64-efi/BOOTX64.EFI
#   make run [SMP=4] [MEM=512M]   boot it headless, serial on the terminal
#                                 (ARCH=aarch64|riscv64: boot/arch.mk's kernel;
#                                 BOOT=multiboot: the Multiboot kernel;
#                                 BOOT=grub: it through GRUB, boot/grub.mk)
#   make test-boot [SMP=] [MEM=]  boot it; pass iff "RESULT: PASS" and QEMU
#                                 exits with the pass status (33)
#
# Variables: SMP (4), MEM (512M), NUMA (nodes of the UEFI boot, 2),
# BOOT_TIMEOUT (seconds, 120),
# STRESS_OPS (steps per CPU, default in boot/workload.c), KERNEL_INJECT
# (1-4: a deliberate failure, to check the runner; see boot/workload.c),
# KMEM_DEBUG (mm/ assertion level, mm/mtypes.h; default 1), FREE_PAGES_DRAIN
# (1: prove the free-page figure by taking every page), FREE_PAGES_MUST_MATCH
# (1, the default: fail unless free pages after the workload equal those
# before; both in boot/workload.c).
# A change of flags rebuilds everything (<kernel's directory>/.cflags).

# Alone (make -f boot/kernel.mk), the default goal is the kernel; included,
# the including Makefile's first target stays the default.
ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := kernel
endif

SMP          ?= 4
MEM          ?= 512M
BOOT_TIMEOUT ?= 120
# The UEFI kernel boots as a 2-node NUMA machine (SMP/2 CPUs and MEM/2 of
# RAM per node, ACPI SRAT/SLIT from QEMU): NUMA=1 for one node.  The
# Multiboot and GRUB boots stay single-node.
NUMA         ?= 2

K_CC    ?= gcc
K_LD    ?= ld
K_OBJCOPY ?= objcopy
K_OUT   := $(or $(BUILD),build)/x86_64-efi
K_EFI   := $(K_OUT)/BOOTX64.EFI
K_SO    := $(K_OUT)/kernel.so

EFI_INC := /usr/include/efi
EFI_LIB := /usr/lib
EFI_LDS := $(EFI_LIB)/elf_x86_64_efi.lds
EFI_CRT := $(EFI_LIB)/crt0-efi-x86_64.o

# Everything runs in interrupt context too: no red zone, and no SSE/x87
# (-mgeneral-regs-only), so interrupt entry saves only general registers.
# Position-independent or not is each kernel's (k_rules).
K_ARCH_FLAGS := -ffreestanding -fno-stack-protector -fno-stack-check \
	-fshort-wchar -mno-red-zone -maccumulate-outgoing-args -mgeneral-regs-only \
	-nostdinc -isystem $(shell $(K_CC) -print-file-name=include)
K_WARN  := -Wall -Wextra -Werror
# mm/ inlines the fast hooks of arch/x86_64/arch_inline.h (interrupts stay
# on in the fast paths: arch_fast_enter).
K_MM_CFLAGS := -std=c11 -O2 -g $(K_WARN) $(K_ARCH_FLAGS) -Iinclude -Imm \
	-Iarch/x86_64 -DKMEM_ARCH_INLINE='"arch_inline.h"' \
	$(if $(KMEM_DEBUG),-DKMEM_DEBUG=$(KMEM_DEBUG))
K_CFLAGS := -std=gnu11 -O2 -g $(K_WARN) $(K_ARCH_FLAGS) \
	-I$(EFI_INC) -I$(EFI_INC)/x86_64 -I$(EFI_INC)/protocol -DGNU_EFI_USE_MS_ABI \
	-Iinclude -Iarch/x86_64 -Iboot $(if $(STRESS_OPS),-DSTRESS_OPS=$(STRESS_OPS)) \
	$(if $(KERNEL_INJECT),-DKERNEL_INJECT=$(KERNEL_INJECT)) $(if $(FREE_PAGES_DRAIN),-DFREE_PAGES_DRAIN=$(FREE_PAGES_DRAIN)) \
	$(if $(FREE_PAGES_MUST_MATCH),-DFREE_PAGES_MUST_MATCH=$(FREE_PAGES_MUST_MATCH))

# Both kernels are built from one object list: boot/ (but for the UEFI
# entry and the UEFI map), arch/x86_64/ and mm/, plus each kernel's entry.
K_HDRS     := $(wildcard include/*.h include/spanalloc/*.h)
K_UEFI_SRC := boot/efi_main.c $(wildcard boot/memmap.c)
K_SRC      := $(filter-out $(K_UEFI_SRC),$(sort $(wildcard boot/*.c boot/*.S arch/x86_64/*.c))) \
	$(sort $(wildcard mm/*.c))
# $(call k_objects,DIR,ENTRY-SOURCES): a kernel's objects in DIR.
k_objects = $(addprefix $(1)/,$(addsuffix .o,$(basename $(K_SRC) $(2))))

.PHONY: kernel run test-boot kernel-deps k-force

# $(call k_rules,DIR,FLAGS): compiling into DIR with K_CFLAGS (mm/:
# K_MM_CFLAGS) + FLAGS; DIR/.cflags is rewritten only when the flags
# differ from the last build's.
define k_rules
$(1)/.cflags: k-force
	@mkdir -p $$(dir $$@)
	@echo '$$(K_CC) $$(K_CFLAGS) $(2) | $$(K_MM_CFLAGS) $(2)' | cmp -s - $$@ || \
		echo '$$(K_CC) $$(K_CFLAGS) $(2) | $$(K_MM_CFLAGS) $(2)' >$$@

$(1)/mm/%.o: mm/%.c mm/*.h $$(K_HDRS) $(1)/.cflags
	@mkdir -p $$(dir $$@)
	$$(K_CC) $$(K_MM_CFLAGS) $(2) -c $$< -o $$@

# string.c must not have its loops turned into calls to itself.
$(1)/boot/string.o: K_EXTRA := -fno-tree-loop-distribute-patterns -fno-builtin

$(1)/%.o: %.c boot/*.h arch/x86_64/*.h $$(K_HDRS) $(1)/.cflags
	@mkdir -p $$(dir $$@)
	$$(K_CC) $$(K_CFLAGS) $(2) $$(K_EXTRA) -c $$< -o $$@

$(1)/%.o: %.S $(1)/.cflags
	@mkdir -p $$(dir $$@)
	$$(K_CC) $$(K_CFLAGS) $(2) -c $$< -o $$@
endef

$(eval $(call k_rules,$(K_OUT),-fpic))

kernel: $(K_EFI)

$(K_SO): $(call k_objects,$(K_OUT),$(K_UEFI_SRC))
	$(K_LD) -shared -Bsymbolic -nostdlib -znocombreloc --no-undefined -T $(EFI_LDS) \
		$(EFI_CRT) $^ -L$(EFI_LIB) -lefi -lgnuefi -o $@

$(K_EFI): $(K_SO)
	$(K_OBJCOPY) -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel -j .rela \
		-j .rel.* -j .rela.* -j .reloc --target efi-app-x86_64 --subsystem=10 $< $@

kernel-deps:
	@bash scripts/install-deps.sh kernel

# Dependencies first, then the build (a sub-make of this file alone, so
# that nothing is compiled before gnu-efi is there).
K_SUBMAKE = $(MAKE) --no-print-directory -f boot/kernel.mk kernel BUILD=$(or $(BUILD),build)

# ARCH=aarch64 or riscv64: that arch's QEMU virt kernel (boot/arch.mk);
# BOOT=multiboot: the Multiboot kernel (boot/multiboot.mk); BOOT=grub: it
# booted by GRUB (boot/grub.mk).
ifneq ($(filter aarch64 riscv64,$(ARCH)),)
run: run-$(ARCH)
else ifeq ($(BOOT),multiboot)
run: run-multiboot
else ifeq ($(BOOT),grub)
run: run-grub
else
run: kernel-deps
	@$(K_SUBMAKE)
	@NUMA=$(NUMA) bash scripts/qemu-run.sh --run $(K_EFI) $(SMP) $(MEM) $(BOOT_TIMEOUT)
endif

test-boot: kernel-deps
	@$(K_SUBMAKE)
	@NUMA=$(NUMA) bash scripts/qemu-run.sh --test $(K_EFI) $(SMP) $(MEM) $(BOOT_TIMEOUT)

# The same kernel booted by Multiboot (v1): kernel-multiboot, run-multiboot,
# test-boot-multiboot.
include boot/multiboot.mk
