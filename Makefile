# spanalloc - top-level build.
#
#   make test            install what is missing, then every host test
#   make lib ARCH=...    the freestanding static library of mm/ as installed
#                        (host, x86_64, aarch64, riscv64: scripts/package.mk)
#   make gen             regenerate mm/sizeclasses.[ch]
#   make run             boot the x86_64 demo kernel in QEMU (SMP=4 MEM=512M);
#                        ARCH=aarch64 or ARCH=riscv64 boots those on QEMU virt
#   make kernel          build build/x86_64-efi/BOOTX64.EFI
#   make test-boot       boot it and pass only on its RESULT: PASS line
#   make run BOOT=multiboot, make test-boot-multiboot: the same kernel as a
#                        Multiboot (v1) image, QEMU -kernel under SeaBIOS
#   make run BOOT=grub, make test-boot-grub: by GRUB (Multiboot2) from an ISO
#   make fuzz            libFuzzer over operation sequences (FUZZ_SECONDS=60)
#   make heapmap         draw build/heapmap.png of a sample heap
#   make test-guard      an overflow into a guard page faults under the shim's arch (in test)
#   make shim            build/host/libspanalloc-malloc.so (LD_PRELOAD malloc)
#   make bench           spanalloc vs glibc/jemalloc/mimalloc/tcmalloc (not in test)
#   make misuse          heap misuse caught per hardening level, vs the peers
#   make install PREFIX=<dir> ARCH=<arch>   headers, libspanalloc.a, spanalloc.pc
#   make amalgamation    build/amalgamation/spanalloc.[ch] (one .c, one .h)
#   make test-package    the out-of-tree example from both (in test)
#   make test-namespace  SYMBOL_PREFIX=sa_ installs for every ARCH and a kernel
#                        with its own kmalloc/kfree built on them (in test-package)
#   make metadata-cost   metadata bytes per managed GiB (the porting guide's figure)
#   make latency         worst-case and percentile cost per operation (not in test;
#                        make test runs the short test-latency)
#
# Variables: ARCH (host), CC (gcc), SEED (model test seed), OPS (model ops);
# for lib and install: EXTRA_CFLAGS (added last), SYMBOL_PREFIX (none).

ARCH   ?= host
CC_GIVEN := $(filter-out default undefined,$(origin CC))
ifeq ($(origin CC),default)
CC := gcc
endif
CLANG  ?= clang
PYTHON ?= python3
BUILD  := build

MM_SRC := $(sort $(wildcard mm/*.c))
WARN   := -Wall -Wextra -Werror
CSTD   := -std=c11

# The freestanding library: only the compiler's own headers.  It is one
# object (scripts/mklib.sh): a section per function lets --gc-sections drop
# what a kernel does not call.
FREE_CFLAGS = $(CSTD) $(WARN) -O2 -ffreestanding -nostdlib -nostdinc \
	-isystem $(shell $(LIBCC) -print-file-name=include) -ffunction-sections -fdata-sections \
	-fno-builtin -fno-stack-protector -Iinclude -Imm $(KERNEL_CFLAGS_$(ARCH))
# CC if given (it must target ARCH), else ARCH's compiler (LIBCC_<arch>,
# KERNEL_CFLAGS_<arch>: scripts/package.mk).
LIBCC  = $(if $(CC_GIVEN),$(CC),$(or $(LIBCC_$(ARCH)),$(CC)))

LIB := $(BUILD)/$(ARCH)$(if $(SYMBOL_PREFIX),-$(SYMBOL_PREFIX))/libspanalloc.a
LIB_OBJ = $(patsubst mm/%.c,$(BUILD)/$(ARCH)/mm/%.o,$(MM_SRC))

.PHONY: all lib gen check-gen check-lib check-clang deps test test-unit test-tsan test-guard clean

all: lib

lib: $(LIB)

$(BUILD)/$(ARCH)/mm/%.o: mm/%.c mm/*.h include/*.h include/spanalloc/*.h $(BUILD)/$(ARCH)/.cflags
	@mkdir -p $(dir $@)
	$(LIBCC) $(FREE_CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

# One object with only the public functions global (scripts/mklib.sh).
$(LIB): $(LIB_OBJ) scripts/mklib.sh scripts/symbols.py
	@mkdir -p $(dir $@)
	bash scripts/mklib.sh $@ '$(SYMBOL_PREFIX)' '$(LIBCC)' $(LIB_OBJ)

gen:
	$(PYTHON) scripts/mksizeclasses.py mm

check-gen:
	@rm -rf $(BUILD)/gen && mkdir -p $(BUILD)/gen
	@$(PYTHON) scripts/mksizeclasses.py $(BUILD)/gen >/dev/null
	@diff -u mm/sizeclasses.h $(BUILD)/gen/sizeclasses.h && diff -u mm/sizeclasses.c $(BUILD)/gen/sizeclasses.c \
	  && echo "check-gen: mm/sizeclasses.[ch] are current" \
	  || { echo "check-gen: mm/sizeclasses.[ch] are stale: run 'make gen'"; exit 1; }

# The library must build with gcc and clang for host and x86_64, export the
# public API only and need only memcpy/memmove/memset/memcmp and the hooks.
check-lib:
	@for cc in $(CC) $(CLANG); do for a in host x86_64; do \
	  $(MAKE) -s --no-print-directory lib ARCH=$$a CC=$$cc BUILD=$(BUILD)/lib-$$cc || exit 1; \
	  bash scripts/check-exports.sh $(BUILD)/lib-$$cc/$$a/libspanalloc.a "" "$$cc $$a" || exit 1; \
	done; done

# ---------------------------------------------------------------------------
# Host tests: mm/ built with sanitizers, one binary per tests/test_*.c.

TEST_SRC  := $(sort $(wildcard tests/test_*.c))
TEST_SUPP := tests/fixture.c arch/host/arch.c
HOST_CFLAGS := -std=gnu11 $(WARN) -g -O1 -Iinclude -Imm -Iarch/host -DKMEM_DEBUG=2
ASAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# gcc warns (-Wtsan) where it sees a fence TSan does not model, depending
# on inlining: mcentral.c's Dekker fences and harden.c's generation
# re-checks.  Their orderings are tested by the stress tests themselves.
TSAN := -fsanitize=thread -Wno-tsan
TSAN_TESTS := tests/test_stress.c tests/test_races.c

# The interrupt tests also run with the host arch's inline hooks
# (arch/host/arch_inline.h): its fast paths leave simulated interrupts on
# (arch_fast_enter), so an interrupt can land inside one and allocate.
FAST_TESTS := tests/test_stress.c tests/test_races.c tests/test_magazine.c tests/test_bulk.c \
	tests/test_deferred.c tests/test_nolock.c tests/test_numa.c
FAST_FLAGS := -DKMEM_ARCH_INLINE='"arch_inline.h"'

ASAN_BIN := $(patsubst tests/%.c,$(BUILD)/asan/%,$(TEST_SRC)) \
	$(patsubst tests/%.c,$(BUILD)/asan/%-fast,$(FAST_TESTS))
TSAN_BIN := $(patsubst tests/%.c,$(BUILD)/tsan/%,$(filter $(TSAN_TESTS),$(TEST_SRC))) \
	$(patsubst tests/%.c,$(BUILD)/tsan/%-fast,$(FAST_TESTS))

$(BUILD)/asan/%-fast: tests/%.c $(TEST_SUPP) $(MM_SRC) mm/*.h include/*.h include/spanalloc/*.h arch/host/*.h tests/*.h
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $(FAST_FLAGS) $(ASAN) $< $(TEST_SUPP) $(MM_SRC) -lcmocka -lpthread -o $@

$(BUILD)/tsan/%-fast: tests/%.c $(TEST_SUPP) $(MM_SRC) mm/*.h include/*.h include/spanalloc/*.h arch/host/*.h tests/*.h
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $(FAST_FLAGS) $(TSAN) $< $(TEST_SUPP) $(MM_SRC) -lcmocka -lpthread -o $@

$(BUILD)/asan/%: tests/%.c $(TEST_SUPP) $(MM_SRC) mm/*.h include/*.h include/spanalloc/*.h arch/host/*.h tests/*.h
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $(ASAN) $< $(TEST_SUPP) $(MM_SRC) -lcmocka -lpthread -o $@

$(BUILD)/tsan/%: tests/%.c $(TEST_SUPP) $(MM_SRC) mm/*.h include/*.h include/spanalloc/*.h arch/host/*.h tests/*.h
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $(TSAN) $< $(TEST_SUPP) $(MM_SRC) -lcmocka -lpthread -o $@

# The debug heap is a build mode: its tests are built with it.
DEBUG_HEAP_TESTS := tests/test_debug.c
$(patsubst tests/%.c,$(BUILD)/asan/%,$(DEBUG_HEAP_TESTS)): HOST_CFLAGS += -DKMEM_DEBUG_HEAP=1

deps:
	@bash scripts/install-deps.sh test

# The host-side sources (tests, arch/host) must be warning-free with clang too.
check-clang:
	@for f in $(TEST_SRC) $(TEST_SUPP); do \
	  $(CLANG) $(HOST_CFLAGS) $(if $(DEBUG_HEAP_TESTS),$$(case " $(DEBUG_HEAP_TESTS) " in *" $$f "*) echo -DKMEM_DEBUG_HEAP=1;; esac)) \
	    -fsyntax-only $$f || exit 1; done
	@echo "check-clang: tests and arch/host compile warning-free with clang"

test-unit: $(ASAN_BIN)
	@bash scripts/run-tests.sh $(ASAN_BIN)

test-tsan: $(TSAN_BIN)
	@bash scripts/run-tests.sh $(TSAN_BIN)

# Guard pages under the malloc shim's arch (mprotect): an overflow off a
# client page into one faults (tests/guardfault.c).
GUARD_BIN := $(BUILD)/host/guardfault
$(GUARD_BIN): tests/guardfault.c arch/host/shim_arch.c $(MM_SRC) mm/*.h include/*.h include/spanalloc/*.h arch/host/*.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Iinclude -Imm -Iarch/host -DKMEM_ARCH_INLINE='"shim_arch_inline.h"' -o $@ tests/guardfault.c arch/host/shim_arch.c $(MM_SRC) -lpthread

test-guard: $(GUARD_BIN)
	@$(CLANG) -std=gnu11 $(WARN) -Iinclude -Imm -Iarch/host -DKMEM_ARCH_INLINE='"shim_arch_inline.h"' -fsyntax-only tests/guardfault.c
	@$(GUARD_BIN)

# The test binaries (one build of mm/ each) are compiled in parallel, one
# job per CPU; they still run one at a time (scripts/run-tests.sh).
NPROC := $(shell nproc 2>/dev/null || echo 1)
test: deps
	@$(MAKE) --no-print-directory check-gen
	@$(MAKE) --no-print-directory check-lib
	@$(MAKE) --no-print-directory check-lib-virt
	@$(MAKE) --no-print-directory check-clang
	@$(MAKE) --no-print-directory test-package
	@$(MAKE) -j$(NPROC) --no-print-directory test-unit
	@$(MAKE) -j$(NPROC) --no-print-directory test-tsan
	@$(MAKE) --no-print-directory test-guard
	@$(MAKE) --no-print-directory test-fuzz
	@$(MAKE) --no-print-directory test-shim
	@$(MAKE) --no-print-directory test-misuse
	@$(MAKE) --no-print-directory check-bench
	@$(MAKE) --no-print-directory test-latency
	@$(MAKE) --no-print-directory test-boot
	@$(MAKE) --no-print-directory test-boot-multiboot
	@$(MAKE) --no-print-directory test-boot-grub
	@$(MAKE) --no-print-directory test-boot-virt
	@echo "make test: all passed"

clean:
	rm -rf $(BUILD)

# The x86_64 demo kernel (GNU-EFI + OVMF): kernel, run, test-boot; and as a
# Multiboot image (boot/multiboot.mk): kernel-multiboot, run BOOT=multiboot,
# test-boot-multiboot.
include boot/kernel.mk
# The aarch64 and riscv64 demo kernels (QEMU virt, picolibc): kernel-<arch>,
# run ARCH=<arch>, test-boot-<arch>, test-boot-virt, check-lib-virt.
include boot/arch.mk
# Fuzzing and the heap-map picture: fuzz, test-fuzz, heapmap.
include scripts/hardening.mk
# The LD_PRELOAD malloc shim and the benchmarks: shim, test-shim, bench.
include scripts/bench.mk
# The heap misuse suite at every hardening level: test-misuse, misuse.
include scripts/misuse.mk
# Packaging: install, amalgamation, test-package, check-readme-example,
# metadata-cost.
include scripts/package.mk
# Cost per operation under adversarial patterns: latency, test-latency.
include scripts/latency.mk
