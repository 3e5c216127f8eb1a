# scripts/package.mk - spanalloc for other people's kernels.  Included by
# the top-level Makefile.
#
#   make install PREFIX=<dir> [ARCH=host|x86_64|aarch64|riscv64] [CC=]
#                [EXTRA_CFLAGS=] [SYMBOL_PREFIX=] [DESTDIR=]
#       <dir>/include/spanalloc.h, <dir>/include/spanalloc/*.h,
#       <dir>/lib/libspanalloc.a (the freestanding library for ARCH, built
#       with ARCH's compiler and kernel flags, below; refused unless
#       readelf -h says it is for ARCH) and <dir>/lib/pkgconfig/spanalloc.pc
#       (arch, machine, target, symbol_prefix and the flags as variables).
#       Only the public functions are global in the archive
#       (scripts/mklib.sh); with SYMBOL_PREFIX=sa_ they are sa_kmalloc, ...
#       and the installed headers declare those names (scripts/symbols.py).
#   make amalgamation [SYMBOL_PREFIX=]
#       build/amalgamation[-<prefix>]/spanalloc.[ch]: the library as one .c
#       and one .h (scripts/amalgamate.py; it fails on names that would
#       clash; internals are static, the public names prefixed)
#   make test-package     (part of make test)
#       installs into build/package/prefix; builds tests/outoftree/example.c
#       out of tree with gcc and clang from the installed files (pkg-config)
#       and from the amalgamation (compiled freestanding alone first), runs
#       all four; checks that both export the public API only
#       (scripts/check-exports.sh); then test-namespace,
#       check-amalgamate-clash (amalgamate.py must refuse clashing names),
#       check-readme-example and metadata-cost
#   make test-namespace   (in test-package; scripts/test-namespace.sh)
#       installs with SYMBOL_PREFIX=sa_ for every ARCH, checks each archive
#       (readelf -h machine, .pc, exports, no FP/SIMD registers) and builds
#       tests/outoftree/kernel.c, a kernel with its own kmalloc and kfree,
#       from the installed files and from the amalgamation with gcc and
#       clang: run on the host, linked at kernel addresses for the others;
#       plus the failures the porting guide's "first hour" describes
#   make check-readme-example
#       the README's minimal example is tests/outoftree/example.c's marked
#       region, byte for byte
#   make metadata-cost
#       tests/metacost.c: metadata bytes per managed GiB for 1 GiB .. 1 TiB
#       maps (the porting guide quotes it)

PREFIX      ?= /usr/local

# ---------------------------------------------------------------------------
# Targets: the compiler and the kernel code generation for each ARCH the
# library installs for.  CC overrides the compiler (it must target ARCH);
# EXTRA_CFLAGS come after these flags, so they add to them and can override
# them (-mcmodel=large, -march=...).  Everything: no FP/SIMD registers
# (interrupt handlers allocate, and kernels do not save those registers on
# entry).
#   x86_64   -mgeneral-regs-only (no x87, MMX, SSE, AVX) -mno-red-zone
#            (interrupts push onto the interrupted stack) -fpie: every
#            address RIP-relative; gcc emits no GOT or PLT use (PC32 and
#            PLT32 relocations only, resolved by a static link), so one
#            archive links at any address: top 2 GiB (-mcmodel=kernel
#            kernels), identity-mapped low, anywhere in the higher half, or
#            into a PIE kernel.  -mcmodel=kernel code fails outside the top
#            and bottom 2 GiB (R_X86_64_32S), -mcmodel=large makes every
#            call indirect.
#   aarch64  -mgeneral-regs-only -mno-outline-atomics (the outline helpers
#            need Linux's getauxval) -fno-pie: ADRP/ADD, +-4 GiB from the
#            code, so any link address works
#   riscv64  -march=rv64imac -mabi=lp64 (no F/D: no FP registers; A for
#            atomics) -mcmodel=medany (PC-relative: any link address, e.g.
#            0x80000000, where medlow gives R_RISCV_HI20 truncations)
#   host     none: the host's own code, for tests on the host
LIB_ARCHES := host x86_64 aarch64 riscv64
LIBCC_x86_64  := $(if $(filter x86_64,$(shell uname -m)),gcc,x86_64-linux-gnu-gcc)
LIBCC_aarch64 := $(V_CC_aarch64)
LIBCC_riscv64 := $(V_CC_riscv64)
KERNEL_CFLAGS_x86_64  := -mgeneral-regs-only -mno-red-zone -fpie
KERNEL_CFLAGS_aarch64 := -mgeneral-regs-only -mno-outline-atomics -fno-pie
KERNEL_CFLAGS_riscv64 := -march=rv64imac -mabi=lp64 -mcmodel=medany
# What `$(LIBCC) -dumpmachine` starts with, readelf -h's Machine, and the
# Debian package with the cross compiler.
LIB_TRIPLE_x86_64  := x86_64
LIB_TRIPLE_aarch64 := aarch64
LIB_TRIPLE_riscv64 := riscv64
ELF_MACHINE_x86_64  := Advanced Micro Devices X86-64
ELF_MACHINE_aarch64 := AArch64
ELF_MACHINE_riscv64 := RISC-V
ELF_MACHINE_host     = $(ELF_MACHINE_$(shell uname -m))
LIB_DEB_x86_64  := gcc-x86-64-linux-gnu
LIB_DEB_aarch64 := gcc-aarch64-linux-gnu
LIB_DEB_riscv64 := gcc-riscv64-unknown-elf

.PHONY: lib-toolchain
# Refuses a missing compiler or one for another arch, before anything is built.
lib-toolchain:
	@case " $(LIB_ARCHES) " in *" $(ARCH) "*) ;; *) \
	  echo "lib: ARCH=$(ARCH) is not one of: $(LIB_ARCHES)" >&2; exit 1;; esac
	@command -v $(firstword $(LIBCC)) >/dev/null || { \
	  echo "lib: ARCH=$(ARCH) needs the compiler '$(firstword $(LIBCC))', which is not installed$(if $(LIB_DEB_$(ARCH)), (Debian: apt-get install $(LIB_DEB_$(ARCH))),); or give CC=<a C compiler for $(ARCH)>" >&2; exit 1; }
	@t=$$($(LIBCC) -dumpmachine) || exit 1; case "$$t" in $(or $(LIB_TRIPLE_$(ARCH)),*)*) ;; *) \
	  echo "lib: ARCH=$(ARCH) but CC=$(LIBCC) builds for $$t; give CC=<a compiler for $(ARCH)>$(if $(LIBCC_$(ARCH)), (e.g. $(LIBCC_$(ARCH))),) or leave CC unset" >&2; exit 1;; esac

# A change of compiler or flags rebuilds the objects.
$(BUILD)/$(ARCH)/.cflags: lib-toolchain
	@mkdir -p $(dir $@)
	@echo '$(LIBCC) $(FREE_CFLAGS) $(EXTRA_CFLAGS)' | cmp -s - $@ || \
	  echo '$(LIBCC) $(FREE_CFLAGS) $(EXTRA_CFLAGS)' > $@

SPANALLOC_VERSION := 0.1.0
PKG_OUT     := $(BUILD)/package
AMALG_DIR    = $(BUILD)/amalgamation$(if $(SYMBOL_PREFIX),-$(SYMBOL_PREFIX))
AMALG        = $(AMALG_DIR)/spanalloc.c $(AMALG_DIR)/spanalloc.h
PKG_PREFIX  := $(abspath $(PKG_OUT)/prefix)
PKG_CCS     := gcc $(CLANG)
# How a client builds the example: hosted, strict warnings.
EXAMPLE_CFLAGS := -std=c11 $(WARN) -O2
EXAMPLE_SRC := tests/outoftree/example.c
README_MARK := <!-- tests/outoftree/example.c: make check-readme-example keeps this identical -->

.PHONY: install amalgamation test-package test-namespace check-amalgamate-clash \
	check-readme-example metadata-cost

INSTALL_INC = $(DESTDIR)$(PREFIX)/include
PKG_COMMA := ,
PC_FILE = $(DESTDIR)$(PREFIX)/lib/pkgconfig/spanalloc.pc
install: lib
	@m=$$(readelf -h $(LIB) | sed -n 's/^ *Machine: *//p' | head -n 1); \
	  [ "$$m" = "$(ELF_MACHINE_$(ARCH))" ] || { echo "install: $(LIB) is for '$$m', not ARCH=$(ARCH) ($(ELF_MACHINE_$(ARCH))): not installed" >&2; exit 1; }
	install -d $(INSTALL_INC)/spanalloc $(DESTDIR)$(PREFIX)/lib/pkgconfig
	for h in include/spanalloc.h include/spanalloc/*.h; do \
	  $(PYTHON) scripts/symbols.py header '$(SYMBOL_PREFIX)' $$h $(INSTALL_INC)/$${h#include/} && \
	  chmod 644 $(INSTALL_INC)/$${h#include/} || exit 1; done
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	printf '%s\n' 'prefix=$(abspath $(PREFIX))' 'includedir=$${prefix}/include' \
	  'libdir=$${prefix}/lib' 'arch=$(ARCH)' "machine=$$(readelf -h $(LIB) | sed -n 's/^ *Machine: *//p' | head -n 1)" \
	  "target=$$($(LIBCC) -dumpmachine)" 'symbol_prefix=$(SYMBOL_PREFIX)' \
	  'compiler=$(LIBCC)' 'kernel_cflags=$(strip $(KERNEL_CFLAGS_$(ARCH)) $(EXTRA_CFLAGS))' '' \
	  'Name: spanalloc' \
	  'Description: Go-style span allocator for bare-metal kernels (freestanding, ARCH=$(ARCH)$(if $(SYMBOL_PREFIX),$(PKG_COMMA) symbols $(SYMBOL_PREFIX)*))' \
	  'Version: $(SPANALLOC_VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lspanalloc' \
	  > $(PC_FILE)

amalgamation: $(AMALG)

$(AMALG): scripts/amalgamate.py scripts/symbols.py $(MM_SRC) mm/*.h include/*.h include/spanalloc/*.h
	$(PYTHON) scripts/amalgamate.py $(if $(SYMBOL_PREFIX),--prefix $(SYMBOL_PREFIX)) $(AMALG_DIR)

# $(call pkg_run,binary): runs it; its last line must be "example: PASS".
pkg_run = $(1) > $(1).out || { cat $(1).out; echo "test-package: $(1) failed"; exit 1; }; \
	tail -n 3 $(1).out; [ "$$(tail -n 1 $(1).out)" = "example: PASS" ] || \
	{ echo "test-package: $(1) did not end with 'example: PASS'"; exit 1; }

test-package: $(AMALG)
	@bash scripts/install-deps.sh test
	@rm -rf $(PKG_OUT) && mkdir -p $(PKG_OUT)/src
	@$(MAKE) -s --no-print-directory install ARCH=host PREFIX=$(PKG_PREFIX)
	@bash scripts/check-exports.sh $(PKG_PREFIX)/lib/libspanalloc.a "" "installed libspanalloc.a (host)"
	@cp $(EXAMPLE_SRC) $(PKG_OUT)/src/example.c
	@export PKG_CONFIG_PATH=$(PKG_PREFIX)/lib/pkgconfig; cd $(PKG_OUT)/src && \
	for cc in $(PKG_CCS); do \
	  echo "test-package: $$cc example.c \$$(pkg-config --cflags --libs spanalloc)"; \
	  $$cc $(EXAMPLE_CFLAGS) example.c $$(pkg-config --cflags --libs spanalloc) \
	    -o example-installed-$$cc || exit 1; \
	  $(call pkg_run,./example-installed-$$cc); \
	done
	@for cc in $(PKG_CCS); do \
	  echo "test-package: $$cc amalgamation (freestanding) + example.c"; \
	  $$cc -std=c11 $(WARN) -O2 -ffreestanding -nostdinc -isystem $$($$cc -print-file-name=include) \
	    -fno-builtin -fno-stack-protector -c $(AMALG_DIR)/spanalloc.c \
	    -o $(PKG_OUT)/amalgamation-$$cc.o || exit 1; \
	  bash scripts/check-exports.sh $(PKG_OUT)/amalgamation-$$cc.o "" "amalgamation ($$cc)" || exit 1; \
	  $$cc $(EXAMPLE_CFLAGS) -I$(AMALG_DIR) $(PKG_OUT)/src/example.c $(PKG_OUT)/amalgamation-$$cc.o \
	    -o $(PKG_OUT)/example-amalgamation-$$cc || exit 1; \
	  $(call pkg_run,$(PKG_OUT)/example-amalgamation-$$cc); \
	done
	@$(MAKE) -s --no-print-directory test-namespace
	@$(MAKE) -s --no-print-directory check-amalgamate-clash
	@$(MAKE) -s --no-print-directory check-readme-example
	@$(MAKE) -s --no-print-directory metadata-cost
	@echo "test-package: installed files and amalgamation, gcc and clang: all passed"

# Every ARCH, SYMBOL_PREFIX=sa_, tests/outoftree/kernel.c: see
# scripts/test-namespace.sh.  Where a kernel.c image is linked: x86_64 at
# 1 MiB (identity-mapped, small model), -2 GiB (-mcmodel=kernel) and
# 0xffff800000100000 (-mcmodel=large); aarch64 at 0x40080000 and in the
# higher half; riscv64 at 0x80000000 (QEMU virt's RAM) and at -2 GiB.
NS_LINK_x86_64  := 0000000000100000:-fno-pie ffffffff80000000:-fno-pie,-mcmodel=kernel \
	ffff800000100000:-fno-pie,-mcmodel=large
NS_LINK_aarch64 := 0000000040080000: ffff000000080000:
NS_LINK_riscv64 := 0000000080000000: ffffffff80000000:
NS_CLANG_TARGET_aarch64 := aarch64-linux-gnu
NS_CLANG_TARGET_riscv64 := riscv64-unknown-elf
test-namespace:
	@bash scripts/install-deps.sh test
	@bash scripts/install-deps.sh aarch64
	@bash scripts/install-deps.sh riscv64
	+@$(foreach a,$(LIB_ARCHES),CC_$(a)='$(or $(LIBCC_$(a)),$(CC))' KFLAGS_$(a)='$(KERNEL_CFLAGS_$(a))' \
	  MACHINE_$(a)='$(ELF_MACHINE_$(a))' LINK_$(a)='$(NS_LINK_$(a))' \
	  CLANG_TARGET_$(a)='$(NS_CLANG_TARGET_$(a))') \
	  ARCHES='$(LIB_ARCHES)' CLANG='$(CLANG)' MAKE='$(MAKE)' OUT='$(PKG_OUT)/namespace' \
	  BUILD='$(BUILD)' WARN='$(WARN)' bash scripts/test-namespace.sh

# amalgamate.py must refuse a tree whose mm/*.c define the same name twice:
# a static variable named like a global function, a macro, a struct tag.
CLASH := $(PKG_OUT)/clash
check-amalgamate-clash:
	@rm -rf $(CLASH) && mkdir -p $(CLASH) && cp -r include mm $(CLASH)/
	@printf '#include "mtypes.h"\n#define ZZ_SAME 1\nstatic int kmalloc;\nstruct zz_tag { int a; };\n' \
	  > $(CLASH)/mm/zz_a.c
	@printf '#include "mtypes.h"\n#define ZZ_SAME 1\nstruct zz_tag { int b; };\n' > $(CLASH)/mm/zz_b.c
	@if $(PYTHON) scripts/amalgamate.py --root $(CLASH) $(CLASH)/out > $(CLASH)/log 2>&1; then \
	  echo "check-amalgamate-clash: amalgamate.py accepted clashing names"; exit 1; fi
	@for n in kmalloc ZZ_SAME zz_tag; do grep -q "^  $$n: " $(CLASH)/log || \
	  { cat $(CLASH)/log; echo "check-amalgamate-clash: $$n not reported"; exit 1; }; done
	@[ ! -e $(CLASH)/out ] || { echo "check-amalgamate-clash: output written despite the clash"; exit 1; }
	@echo "check-amalgamate-clash: amalgamate.py refuses clashing names (static/global, macro, tag)"

check-readme-example:
	@mkdir -p $(BUILD)
	@sed -n '/README example begins/,/README example ends/p' $(EXAMPLE_SRC) | sed '1d;$$d' \
	  > $(BUILD)/example-region.c
	@awk -v mark='$(README_MARK)' '$$0 == mark {on = 1; next} \
	  on && /^```c$$/ {copy = 1; next} copy && /^```$$/ {exit} copy' README.md \
	  > $(BUILD)/example-readme.c
	@[ -s $(BUILD)/example-region.c ] || { echo "check-readme-example: no marked region in $(EXAMPLE_SRC)"; exit 1; }
	@diff -u $(BUILD)/example-readme.c $(BUILD)/example-region.c \
	  && echo "check-readme-example: the README's example is $(EXAMPLE_SRC)" \
	  || { echo "check-readme-example: the README's example differs from $(EXAMPLE_SRC)'s marked region (diff above: - README, + example.c)"; exit 1; }

# Built like the library (-O2, no sanitizers, no debug checks), on the host
# fixture's simulated physical memory.
METACOST := $(BUILD)/metacost
$(METACOST): tests/metacost.c tests/fixture.c arch/host/arch.c $(MM_SRC) mm/*.h include/*.h \
		include/spanalloc/*.h tests/fixture.h arch/host/*.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -Iinclude -Imm -Iarch/host tests/metacost.c tests/fixture.c \
	  arch/host/arch.c $(MM_SRC) -lcmocka -lpthread -o $@

metadata-cost: $(METACOST)
	@$(METACOST)
