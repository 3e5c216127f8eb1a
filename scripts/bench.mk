# scripts/bench.mk - the malloc shim, its real-program tests and the
# benchmarks against glibc, jemalloc, mimalloc and tcmalloc.  Included by
# the top-level Makefile; also usable alone:
#     make -f Makefile -f scripts/bench.mk bench
#
#   make shim        build/host/libspanalloc-malloc.so (LD_PRELOAD malloc)
#   make test-shim   real programs (python3, sqlite3, gcc, perl, git, text
#                    tools) under the shim, output compared byte for byte
#                    with glibc's; shim self-tests (threads, fork, bad free)
#   make check-bench the benchmark programs build, and every workload runs
#                    briefly (in make test)
#   make bench       workloads (a)-(h), (r), (t), (x) against every
#                    allocator, callgrind instruction counts, the issue's
#                    targets; build/bench/results.md and PNGs
#
# Variables: BENCH_RUNS (runs per cell, median taken; default 5),
# BENCH_QUICK=1 (smaller workloads, for a smoke run), BENCH_ONLY=a64n,x,i
# (a subset: run.py --only).

# Read once, even when both the top-level Makefile (include) and -f name it.
ifndef SPANALLOC_BENCH_MK
SPANALLOC_BENCH_MK := 1

ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := shim
endif

B_BUILD   := $(or $(BUILD),build)
SHIM_SO   := $(B_BUILD)/host/libspanalloc-malloc.so
B_MM_SRC  := $(sort $(wildcard mm/*.c))
B_HDRS    := $(wildcard mm/*.h include/*.h include/spanalloc/*.h) arch/host/shim_arch.h \
	arch/host/shim_arch_inline.h
# The shim arch's hooks inline into mm/'s fast paths (spanalloc/arch.h).
B_INLINE  := -DKMEM_ARCH_INLINE='"shim_arch_inline.h"'
B_WARN    := -Wall -Wextra -Werror
# mm/ as a shared library: -O2 -fPIC, no sanitizers, inline arch hooks,
# link-time optimisation so that kmalloc/kfree inline into malloc/free;
# only the C allocation functions are exported.
SHIM_CFLAGS := -std=gnu11 -O2 -g -fPIC -flto=auto -fvisibility=hidden \
	-fno-semantic-interposition -ftls-model=initial-exec -fno-plt \
	$(B_WARN) -Iinclude -Imm -Iarch/host $(B_INLINE)
SHIM_SRC  := arch/host/shim.c arch/host/shim_arch.c

BENCH_OUT := $(B_BUILD)/bench
# Debian's python3 (it has python3-matplotlib for the plots).
B_PYTHON  := $(firstword $(wildcard /usr/bin/python3) python3)
BENCH_BIN := $(BENCH_OUT)/bin
# The benchmark programs: built against plain malloc (the same binary runs
# under each LD_PRELOAD), and against mm/ directly (the kmalloc API; mm/
# at -O2 as a kernel links it, no LTO, inline arch hooks; the shim arch's
# thread-local "CPU" variables then live in the executable and are reached
# as a kernel reaches its per-CPU data, one %fs-relative access each:
# DIRECT_TLS).
BENCH_CFLAGS := -std=gnu11 -O2 -g $(B_WARN) -Iinclude -Imm -Iarch/host
DIRECT_TLS   := -ftls-model=local-exec
# bench-null: the same loops around a stub allocator, whose callgrind count
# run.py subtracts (instructions of the allocator only).
BENCH_PROGS  := $(BENCH_BIN)/bench-malloc $(BENCH_BIN)/bench-direct $(BENCH_BIN)/bench-null \
	$(BENCH_BIN)/heapinit $(BENCH_BIN)/runrss
SHIM_TEST_BIN := $(B_BUILD)/host/shim-selftest

.PHONY: shim bench bench-build check-bench test-shim bench-deps shim-deps

shim: $(SHIM_SO)

$(SHIM_SO): $(SHIM_SRC) $(B_MM_SRC) $(B_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(SHIM_CFLAGS) -shared -Wl,-z,now -Wl,--no-undefined \
		-o $@ $(SHIM_SRC) $(B_MM_SRC) -lpthread

$(BENCH_BIN)/bench-malloc: tests/bench/bench.c tests/bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ tests/bench/bench.c -lpthread

$(BENCH_BIN)/bench-direct: tests/bench/bench.c tests/bench/bench.h arch/host/shim_arch.c $(B_MM_SRC) $(B_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $(DIRECT_TLS) $(B_INLINE) -DBENCH_DIRECT -o $@ tests/bench/bench.c arch/host/shim_arch.c $(B_MM_SRC) -lpthread

$(BENCH_BIN)/bench-null: tests/bench/bench.c tests/bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -DBENCH_NULL -o $@ tests/bench/bench.c -lpthread

$(BENCH_BIN)/heapinit: tests/bench/heapinit.c arch/host/shim_arch.c $(B_MM_SRC) $(B_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $(B_INLINE) -o $@ tests/bench/heapinit.c arch/host/shim_arch.c $(B_MM_SRC) -lpthread

$(BENCH_BIN)/runrss: tests/bench/runrss.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 $(B_WARN) -o $@ $<

$(SHIM_TEST_BIN): tests/shim/selftest.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g $(B_WARN) -o $@ $< -lpthread

bench-deps:
	@bash scripts/install-deps.sh bench

shim-deps:
	@bash scripts/install-deps.sh shim

bench-build: $(SHIM_SO) $(BENCH_PROGS)

bench: bench-deps
	@$(MAKE) --no-print-directory -f Makefile -f scripts/bench.mk bench-build
	@$(B_PYTHON) tests/bench/run.py --build $(B_BUILD) --out $(BENCH_OUT) \
		$(if $(BENCH_RUNS),--runs $(BENCH_RUNS)) $(if $(BENCH_QUICK),--quick) \
		$(if $(BENCH_ONLY),--only $(BENCH_ONLY))

# make test builds every benchmark program and runs every workload briefly
# (glibc, the shim, direct, null; no peers, no timing), so that `make bench`
# cannot rot between benchmark runs (it is not run in full).
check-bench: shim-deps
	@$(MAKE) --no-print-directory -f Makefile -f scripts/bench.mk bench-build
	@$(B_PYTHON) tests/bench/run.py --build $(B_BUILD) --out $(BENCH_OUT) --smoke

test-shim: shim-deps
	@$(MAKE) --no-print-directory -f Makefile -f scripts/bench.mk $(SHIM_SO) $(SHIM_TEST_BIN)
	@$(B_PYTHON) tests/shim/run.py $(SHIM_SO) $(SHIM_TEST_BIN) --workdir $(B_BUILD)/shim-test

endif # SPANALLOC_BENCH_MK
