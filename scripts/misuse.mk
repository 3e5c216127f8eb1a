# scripts/misuse.mk - the heap misuse suite (tests/misuse/): double and
# invalid frees, over- and underflows, uses after free, zero-size objects,
# uninitialised memory, impossible sizes, each at 8 B, 4 KiB and 256 KiB,
# run through the malloc shim at every hardening level (SPANALLOC_HARDEN).
# Included by the top-level Makefile after scripts/bench.mk (SHIM_SO).
#
#   make test-misuse  spanalloc's levels against tests/misuse/expected.txt:
#                     no regression, level 0 catches every bad free, each
#                     level catches what the one below does (in make test)
#   make misuse       the whole table, with glibc, glibc MALLOC_CHECK_=3,
#                     jemalloc, mimalloc and tcmalloc: build/misuse.md

ifndef SPANALLOC_MISUSE_MK
SPANALLOC_MISUSE_MK := 1

M_BUILD    := $(or $(BUILD),build)
MISUSE_BIN := $(M_BUILD)/host/misuse

.PHONY: test-misuse misuse

# No optimisation removes the misuse: pointers pass through launder().
$(MISUSE_BIN): tests/misuse/misuse.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wextra -Werror -o $@ $<

test-misuse: shim-deps
	@$(MAKE) --no-print-directory $(SHIM_SO) $(MISUSE_BIN)
	@$(CLANG) -std=gnu11 -Wall -Wextra -Werror -fsyntax-only tests/misuse/misuse.c
	@python3 tests/misuse/run.py --misuse $(MISUSE_BIN) --shim $(SHIM_SO) --short \
		--expected tests/misuse/expected.txt

misuse: bench-deps
	@$(MAKE) --no-print-directory $(SHIM_SO) $(MISUSE_BIN)
	@python3 tests/misuse/run.py --misuse $(MISUSE_BIN) --shim $(SHIM_SO) --peers \
		--out $(M_BUILD)/misuse.md

endif # SPANALLOC_MISUSE_MK
