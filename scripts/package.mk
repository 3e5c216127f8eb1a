# scripts/package.mk - spanalloc for other people's kernels.  Included by
# the top-level Makefile.
#
#   make install PREFIX=<dir> [ARCH=host|x86_64] [DESTDIR=]
#       <dir>/include/spanalloc.h, <dir>/include/spanalloc/*.h,
#       <dir>/lib/libspanalloc.a (the freestanding library for ARCH) and
#       <dir>/lib/pkgconfig/spanalloc.pc
#   make amalgamation
#       build/amalgamation/spanalloc.[ch]: the library as one .c and one .h
#       (scripts/amalgamate.py; it fails on names that would clash)
#   make test-package     (part of make test)
#       installs into build/package/prefix; builds tests/outoftree/example.c
#       out of tree with gcc and clang from the installed files (pkg-config)
#       and from the amalgamation (compiled freestanding alone first), runs
#       all four; then check-amalgamate-clash (amalgamate.py must refuse
#       clashing names), check-readme-example and metadata-cost
#   make check-readme-example
#       the README's minimal example is tests/outoftree/example.c's marked
#       region, byte for byte
#   make metadata-cost
#       tests/metacost.c: metadata bytes per managed GiB for 1 GiB .. 1 TiB
#       maps (the porting guide quotes it)

PREFIX      ?= /usr/local
SPANALLOC_VERSION := 0.1.0
PKG_OUT     := $(BUILD)/package
AMALG_DIR   := $(BUILD)/amalgamation
AMALG       := $(AMALG_DIR)/spanalloc.c $(AMALG_DIR)/spanalloc.h
PKG_PREFIX  := $(abspath $(PKG_OUT)/prefix)
PKG_CCS     := gcc $(CLANG)
# How a client builds the example: hosted, strict warnings.
EXAMPLE_CFLAGS := -std=c11 $(WARN) -O2
EXAMPLE_SRC := tests/outoftree/example.c
README_MARK := <!-- tests/outoftree/example.c: make check-readme-example keeps this identical -->

.PHONY: install amalgamation test-package check-amalgamate-clash check-readme-example metadata-cost

install: lib
	install -d $(DESTDIR)$(PREFIX)/include/spanalloc $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/spanalloc.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/spanalloc/*.h $(DESTDIR)$(PREFIX)/include/spanalloc/
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	printf '%s\n' 'prefix=$(abspath $(PREFIX))' 'includedir=$${prefix}/include' \
	  'libdir=$${prefix}/lib' '' 'Name: spanalloc' \
	  'Description: Go-style span allocator for bare-metal kernels (freestanding, ARCH=$(ARCH))' \
	  'Version: $(SPANALLOC_VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lspanalloc' \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/spanalloc.pc

amalgamation: $(AMALG)

$(AMALG): scripts/amalgamate.py $(MM_SRC) mm/*.h include/*.h include/spanalloc/*.h
	$(PYTHON) scripts/amalgamate.py $(AMALG_DIR)

# $(call pkg_run,binary): runs it; its last line must be "example: PASS".
pkg_run = $(1) > $(1).out || { cat $(1).out; echo "test-package: $(1) failed"; exit 1; }; \
	tail -n 3 $(1).out; [ "$$(tail -n 1 $(1).out)" = "example: PASS" ] || \
	{ echo "test-package: $(1) did not end with 'example: PASS'"; exit 1; }

test-package: $(AMALG)
	@bash scripts/install-deps.sh test
	@rm -rf $(PKG_OUT) && mkdir -p $(PKG_OUT)/src
	@$(MAKE) -s --no-print-directory install ARCH=host PREFIX=$(PKG_PREFIX)
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
	  bash scripts/check-undefined.sh $(PKG_OUT)/amalgamation-$$cc.o "amalgamation ($$cc)" || exit 1; \
	  $$cc $(EXAMPLE_CFLAGS) -I$(AMALG_DIR) $(PKG_OUT)/src/example.c $(PKG_OUT)/amalgamation-$$cc.o \
	    -o $(PKG_OUT)/example-amalgamation-$$cc || exit 1; \
	  $(call pkg_run,$(PKG_OUT)/example-amalgamation-$$cc); \
	done
	@$(MAKE) -s --no-print-directory check-amalgamate-clash
	@$(MAKE) -s --no-print-directory check-readme-example
	@$(MAKE) -s --no-print-directory metadata-cost
	@echo "test-package: installed files and amalgamation, gcc and clang: all passed"

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
