# boot/arch.mk - the aarch64 and riscv64 demo kernels: QEMU virt, picolibc
# for libc and semihosting, boot/virt/ + boot/<arch>/ + arch/<arch>/, the
# shared workload (boot/workload.c, boot/selftest.c), and mm/ (the device-tree
# reader, mm/fdt.c, included) compiled freestanding for the arch; linked with linker.ld.
# Included by the top-level Makefile; also usable alone:
#     make -f Makefile -f boot/arch.mk test-boot-aarch64
#
#   make kernel-aarch64 | kernel-riscv64       build/<arch>-virt/kernel.elf
#   make run-aarch64 | run-riscv64             boot it, output on the terminal
#   make run ARCH=aarch64|riscv64              the same (boot/kernel.mk's run)
#   make test-boot-aarch64 | test-boot-riscv64 boot it; pass iff "RESULT: PASS"
#                                              and semihosting exit status 0
#   make test-boot-virt                        all of the below, and
#                                              check-readme-riscv (the porting
#                                              guide's S-mode hook files are
#                                              arch/riscv64/arch.c, arch_inline.h)
#   make check-lib-virt                        mm/ alone, freestanding, for both
#                                              arches: -Wall -Wextra -Werror and
#                                              the undefined symbols it needs
#
# riscv64 comes in two builds: S-mode under OpenSBI (QEMU's default firmware,
# the image at 0x80200000; the default) and M-mode with no firmware (-bios
# none, at 0x80000000; -DRISCV_MMODE, build/riscv64-m-virt):
#   make kernel-riscv64-m | run-riscv64-m | test-boot-riscv64-m
#   make run ARCH=riscv64 RISCV_MODE=m         (RISCV_MODE=m makes
#                                              kernel/run/test-boot-riscv64 the
#                                              M-mode build's)
#   make test-boot-riscv64-alt                 the S-mode kernel on the paths
#                                              QEMU's defaults leave untried:
#                                              booted on hart 3 (the kernel
#                                              hands the boot over,
#                                              -DRISCV_BOOT_HART=3), on a CPU
#                                              without Sstc (the timer through
#                                              SBI TIME); build/riscv64-alt-virt
#
# Variables as for the x86_64 kernel (boot/kernel.mk): SMP (4), MEM (512M), NUMA (2),
# BOOT_TIMEOUT (120), STRESS_OPS, KERNEL_INJECT, KMEM_DEBUG, FREE_PAGES_DRAIN,
# FREE_PAGES_MUST_MATCH.  A change of
# flags rebuilds everything (build/<build>-virt/.cflags).

ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := kernel-aarch64
endif

SMP          ?= 4
MEM          ?= 512M
BOOT_TIMEOUT ?= 120
NUMA         ?= 2
RISCV_MODE   ?= s

ifneq ($(filter-out s m,$(RISCV_MODE)),)
$(error RISCV_MODE is s (S-mode under OpenSBI, the default) or m (M-mode, no firmware))
endif

V_ARCHES := aarch64 riscv64
# The builds: <name>, its arch, and how it differs.
V_BUILDS := aarch64 riscv64-s riscv64-m riscv64-alt
V_ARCH_OF_aarch64 := aarch64
V_ARCH_OF_riscv64-s := riscv64
V_ARCH_OF_riscv64-m := riscv64
V_ARCH_OF_riscv64-alt := riscv64
# Its directory under build/ and its name for scripts/qemu-run.sh (--arch,
# which also labels the result).
V_DIR_aarch64 := aarch64-virt
V_DIR_riscv64-s := riscv64-virt
V_DIR_riscv64-m := riscv64-m-virt
V_DIR_riscv64-alt := riscv64-alt-virt
V_RUNNER_aarch64 := aarch64
V_RUNNER_riscv64-s := riscv64
V_RUNNER_riscv64-m := riscv64-m
V_RUNNER_riscv64-alt := riscv64-alt

V_CC_aarch64 ?= aarch64-linux-gnu-gcc
V_CC_riscv64 ?= riscv64-unknown-elf-gcc
# Where QEMU loads the image (linker.ld): above the device tree QEMU puts
# at the start of RAM (aarch64); where OpenSBI jumps after its own 2 MiB
# (riscv64 S-mode); at the start of RAM, where every hart starts with
# -bios none (riscv64 M-mode).
V_BASE_aarch64 := 0x40200000
V_BASE_riscv64-s := 0x80200000
V_BASE_riscv64-m := 0x80000000
V_BASE_riscv64-alt := 0x80200000
# riscv64: entry.S starts C itself (picolibc's crt0 writes mtvec, which
# traps in S-mode); S-mode has arch/riscv64/arch.c's six hooks (through
# SBI), M-mode arch_mmode.c's four and the console's arch_log/arch_panic.
V_DEFS_riscv64-m := -DRISCV_MMODE
V_DEFS_riscv64-alt := -DRISCV_BOOT_HART=3
V_LDFLAGS_riscv64-s := -nostartfiles
V_LDFLAGS_riscv64-m := -nostartfiles
V_LDFLAGS_riscv64-alt := -nostartfiles
V_EXCL_riscv64-s := boot/riscv64/mmode.c arch/riscv64/arch_mmode.c boot/virt/loghooks.c
V_EXCL_riscv64-m := boot/riscv64/smode.c arch/riscv64/arch.c
V_EXCL_riscv64-alt := $(V_EXCL_riscv64-s)
# NUMA nodes QEMU gives the machine (scripts/qemu-run.sh; NUMA, 2 by
# default, as for the UEFI kernel): aarch64 and riscv64 S-mode boot as
# 2 nodes described by the device tree (numa-node-id, /distance-map); the
# M-mode and the other-hart builds stay single-node.
V_NUMA_aarch64 = $(NUMA)
V_NUMA_riscv64-s = $(NUMA)
V_NUMA_riscv64-m := 1
V_NUMA_riscv64-alt := 1
# Everything: the target; mm/ also: interrupts allocate, so no FP/SIMD in
# the allocator (aarch64), and no outline atomics (they need Linux's
# getauxval).  riscv64: rv64imac (A for atomics), medany (the image is at
# 0x80000000), ISA spec 2.2 so that Zicsr/Zifencei come with I.
V_ARCH_aarch64 := -mcpu=cortex-a53 -mno-outline-atomics -fno-pie
V_MMARCH_aarch64 := -mgeneral-regs-only
V_ARCH_riscv64 := -march=rv64imac -mabi=lp64 -mcmodel=medany -misa-spec=2.2
V_MMARCH_riscv64 := -ftls-model=local-exec

V_WARN := -Wall -Wextra -Werror
V_MM_SRC := $(sort $(wildcard mm/*.c))
V_HDRS := $(wildcard include/*.h include/spanalloc/*.h boot/*.h boot/virt/*.h)
V_PICOLIBC := -specs=picolibc.specs --oslib=semihost --crt0=semihost

.PHONY: $(foreach b,$(V_BUILDS),kernel-$(b) run-$(b) test-boot-$(b)) \
	$(foreach a,$(V_ARCHES),kernel-$(a) run-$(a) test-boot-$(a) kernel-deps-$(a)) \
	test-boot-virt check-lib-virt check-readme-riscv v-force

# $(call v_build,BUILD,ARCH): the rules for one build.
define v_build
V_OUT_$(1)  := $$(or $$(BUILD),build)/$$(V_DIR_$(1))
V_ELF_$(1)  := $$(V_OUT_$(1))/kernel.elf
V_MMCF_$(1) = -std=c11 -O2 -g $$(V_WARN) -ffreestanding -nostdinc \
	-isystem $$(shell $$(V_CC_$(2)) -print-file-name=include) -fno-stack-protector \
	$$(V_ARCH_$(2)) $$(V_MMARCH_$(2)) $$(V_DEFS_$(1)) -Iinclude -Imm -Iarch/$(2) \
	-DKMEM_ARCH_INLINE='"arch_inline.h"' $$(if $$(KMEM_DEBUG),-DKMEM_DEBUG=$$(KMEM_DEBUG))
V_CF_$(1)   = -std=gnu11 -O2 -g $$(V_WARN) $$(V_PICOLIBC) -fno-stack-protector $$(V_ARCH_$(2)) \
	$$(V_DEFS_$(1)) -Iinclude -Iarch/$(2) -Iboot/virt -Iboot/$(2) -Iboot \
	$$(if $$(STRESS_OPS),-DSTRESS_OPS=$$(STRESS_OPS)) $$(if $$(KERNEL_INJECT),-DKERNEL_INJECT=$$(KERNEL_INJECT)) \
	$$(if $$(FREE_PAGES_DRAIN),-DFREE_PAGES_DRAIN=$$(FREE_PAGES_DRAIN)) \
	$$(if $$(FREE_PAGES_MUST_MATCH),-DFREE_PAGES_MUST_MATCH=$$(FREE_PAGES_MUST_MATCH))
V_SRC_$(1)  := $$(filter-out $$(V_EXCL_$(1)),$$(sort $$(wildcard boot/virt/*.c boot/$(2)/*.c arch/$(2)/*.c))) \
	boot/workload.c boot/selftest.c boot/kprintf.c boot/numa.c
V_OBJ_$(1)  := $$(patsubst %.c,$$(V_OUT_$(1))/%.o,$$(V_SRC_$(1))) \
	$$(patsubst %.S,$$(V_OUT_$(1))/%.o,$$(wildcard boot/$(2)/*.S)) \
	$$(patsubst mm/%.c,$$(V_OUT_$(1))/mm/%.o,$$(V_MM_SRC))

$$(V_OUT_$(1))/.cflags: v-force
	@mkdir -p $$(dir $$@)
	@echo '$$(V_CC_$(2)) $$(V_CF_$(1)) | $$(V_MMCF_$(1))' | cmp -s - $$@ || \
		echo '$$(V_CC_$(2)) $$(V_CF_$(1)) | $$(V_MMCF_$(1))' >$$@

$$(V_OUT_$(1))/mm/%.o: mm/%.c mm/*.h $$(V_HDRS) $$(wildcard arch/$(2)/*.h) $$(V_OUT_$(1))/.cflags
	@mkdir -p $$(dir $$@)
	$$(V_CC_$(2)) $$(V_MMCF_$(1)) -c $$< -o $$@

$$(V_OUT_$(1))/%.o: %.c $$(V_HDRS) $$(wildcard arch/$(2)/*.h boot/$(2)/*.h) $$(V_OUT_$(1))/.cflags
	@mkdir -p $$(dir $$@)
	$$(V_CC_$(2)) $$(V_CF_$(1)) -c $$< -o $$@

$$(V_OUT_$(1))/%.o: %.S $$(V_OUT_$(1))/.cflags
	@mkdir -p $$(dir $$@)
	$$(V_CC_$(2)) $$(V_CF_$(1)) -c $$< -o $$@

$$(V_ELF_$(1)): $$(V_OBJ_$(1)) linker.ld
	$$(V_CC_$(2)) $$(V_CF_$(1)) $$(V_LDFLAGS_$(1)) -static -no-pie -T linker.ld \
		-Wl,--defsym=__kernel_base=$$(V_BASE_$(1)) -Wl,-Map=$$(V_OUT_$(1))/kernel.map \
		-Wl,--no-warn-rwx-segments $$(V_OBJ_$(1)) -o $$@

kernel-$(1): $$(V_ELF_$(1))

run-$(1): kernel-deps-$(2)
	@$$(MAKE) --no-print-directory -f boot/arch.mk kernel-$(1) BUILD=$$(or $$(BUILD),build)
	@NUMA=$$(V_NUMA_$(1)) bash scripts/qemu-run.sh --arch $$(V_RUNNER_$(1)) --run $$(V_ELF_$(1)) $$(SMP) $$(MEM) $$(BOOT_TIMEOUT)

test-boot-$(1): kernel-deps-$(2)
	@$$(MAKE) --no-print-directory -f boot/arch.mk kernel-$(1) BUILD=$$(or $$(BUILD),build)
	@NUMA=$$(V_NUMA_$(1)) bash scripts/qemu-run.sh --arch $$(V_RUNNER_$(1)) --test $$(V_ELF_$(1)) $$(SMP) $$(MEM) $$(BOOT_TIMEOUT)
endef

$(foreach b,$(V_BUILDS),$(eval $(call v_build,$(b),$(V_ARCH_OF_$(b)))))

$(foreach a,$(V_ARCHES),$(eval kernel-deps-$(a): ; @bash scripts/install-deps.sh $(a)))

# riscv64 means the RISCV_MODE build (S-mode by default).
kernel-riscv64: kernel-riscv64-$(RISCV_MODE)
run-riscv64: run-riscv64-$(RISCV_MODE)
test-boot-riscv64: test-boot-riscv64-$(RISCV_MODE)

test-boot-virt: check-readme-riscv test-boot-aarch64 test-boot-riscv64-s test-boot-riscv64-m \
	test-boot-riscv64-alt

# The porting guide's riscv64 S-mode hook files are the demo's, byte for
# byte: the ```c block after each file's mark in README.md.
V_README_FILES := arch/riscv64/arch.c arch/riscv64/arch_inline.h
check-readme-riscv:
	@for f in $(V_README_FILES); do \
	  awk -v mark="<!-- $$f: make check-readme-riscv keeps this identical -->" \
	    '$$0 == mark {on = 1; next} on && /^```c$$/ {copy = 1; next} copy && /^```$$/ {exit} copy' \
	    README.md | diff -u - $$f || { echo "check-readme-riscv: README.md's copy of $$f differs" \
	    "(diff above: - README, + $$f)"; exit 1; }; \
	done; echo "check-readme-riscv: the README's riscv64 S-mode hooks are $(V_README_FILES)"

# mm/ alone for each arch, out of line hooks (no KMEM_ARCH_INLINE): it
# must build warning-free and need nothing but the string functions and
# the arch_* hooks (no libgcc: mm/mtypes.h has its own ctz/clz/popcount
# where the ISA lacks them).
check-lib-virt: $(foreach a,$(V_ARCHES),kernel-deps-$(a))
	@for a in $(V_ARCHES); do \
	  case $$a in aarch64) cc=$(V_CC_aarch64); fl="$(V_ARCH_aarch64) $(V_MMARCH_aarch64)";; \
	              riscv64) cc=$(V_CC_riscv64); fl="$(V_ARCH_riscv64) $(V_MMARCH_riscv64)";; esac; \
	  out=$(or $(BUILD),build)/lib-virt/$$a; rm -rf $$out; mkdir -p $$out; \
	  for f in $(V_MM_SRC); do \
	    $$cc -std=c11 -O2 $(V_WARN) -ffreestanding -nostdinc -isystem $$($$cc -print-file-name=include) \
	      -fno-stack-protector $$fl -Iinclude -Imm -c $$f -o $$out/$$(basename $$f .c).o || exit 1; \
	  done; \
	  undef=$$($${cc%gcc}ld -r -o $$out/all.o $$out/*.o && $${cc%gcc}nm -u $$out/all.o | awk '{print $$2}' | sort -u); \
	  bad=$$(echo "$$undef" | grep -Ev '^(memcpy|memmove|memset|memcmp|arch_[a-z_]+)$$' || true); \
	  if [ -n "$$bad" ]; then echo "check-lib-virt: $$a: unexpected undefined symbols: $$(echo $$bad)"; exit 1; fi; \
	  echo "check-lib-virt: $$a ($$cc) ok, undefined: $$(echo $$undef)"; \
	done

v-force:
