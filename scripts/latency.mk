# scripts/latency.mk - cost per operation under adversarial patterns
# (tests/latency/).  Included by the top-level Makefile.
#
#   make latency        every scenario at full size, natively (ns, cycles,
#                       steps against their bounds) and under callgrind
#                       (instructions); build/latency/results.md and
#                       latency.png.  Not in make test (minutes).
#   make test-latency   the short version (seconds): small sizes, native,
#                       fails if an operation's steps exceed its bound.

LAT_BIN := $(BUILD)/latency/latency
# Debian's python3 (it has python3-matplotlib for the plot).
LAT_PYTHON := $(firstword $(wildcard /usr/bin/python3) python3)
# As a kernel links mm/: -O2, no sanitizers; the shim arch (threads as
# CPUs) with its hooks inline.
LAT_CFLAGS := -std=gnu11 -O2 -g $(WARN) -Iinclude -Imm -Iarch/host \
	-DKMEM_ARCH_INLINE='"shim_arch_inline.h"'

.PHONY: latency test-latency latency-deps

$(LAT_BIN): tests/latency/latency.c arch/host/shim_arch.c $(MM_SRC) mm/*.h include/*.h \
		include/spanalloc/*.h arch/host/*.h
	@mkdir -p $(dir $@)
	$(CC) $(LAT_CFLAGS) -o $@ tests/latency/latency.c arch/host/shim_arch.c $(MM_SRC) -lpthread

latency-deps:
	@bash scripts/install-deps.sh latency

latency: latency-deps $(LAT_BIN)
	@$(LAT_PYTHON) tests/latency/run.py --bin $(LAT_BIN) --out $(BUILD)/latency

test-latency: $(LAT_BIN)
	@$(LAT_PYTHON) tests/latency/run.py --bin $(LAT_BIN) --out $(BUILD)/latency-quick --quick
