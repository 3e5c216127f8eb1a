# scripts/hardening.mk - fuzzing and the heap-map picture.
# Included by the top-level Makefile; also usable as
#     make -f Makefile -f scripts/hardening.mk <target>
#
#   make fuzz [FUZZ_SECONDS=60]  libFuzzer on operation sequences against
#                                a shadow model (tests/fuzz/fuzz_ops.c); new
#                                inputs in build/fuzz/corpus, log in
#                                build/fuzz/fuzz.log; prints executions,
#                                exec/s, cov, ft and corpus size
#   make test-fuzz               replays tests/fuzz/regress/*, then fuzzes
#                                TEST_FUZZ_SECONDS (25) from the committed
#                                seeds; fails on any crash
#   make heapmap                 builds and runs tests/heapmap_demo.c, which
#                                writes build/heapmap.txt (kmem_heapmap());
#                                scripts/heapmap.py draws build/heapmap.png
#
# Variables: FUZZ_SECONDS (60), TEST_FUZZ_SECONDS (25), FUZZ_ARGS (extra
# libFuzzer flags), HEAPMAP_PYTHON (a python3 with matplotlib).

# Read once, even when both the top-level Makefile includes this file and
# a command line names it with -f.
ifndef HARDENING_MK
HARDENING_MK := 1

BUILD  ?= build
CLANG  ?= clang
MM_SRC ?= $(sort $(wildcard mm/*.c))
WARN   ?= -Wall -Wextra -Werror

FUZZ_SECONDS      ?= 60
TEST_FUZZ_SECONDS ?= 25

# ---------------------------------------------------------------------------
# Fuzzing: clang's libFuzzer with ASan and UBSan.  mm/ and the fixture get
# coverage counters but not comparison tracing (which would make the
# harness's whole-heap walks several times slower); the harness gets both.

FUZZ_OUT   := $(BUILD)/fuzz
FUZZ_BIN   := $(FUZZ_OUT)/fuzz_ops
FUZZ_FLAGS := -std=gnu11 $(WARN) -g -O2 -Iinclude -Imm -Iarch/host -Itests -DKMEM_DEBUG=2 \
	-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SUPP  := $(MM_SRC) tests/fixture.c arch/host/arch.c
FUZZ_OBJ   := $(patsubst %.c,$(FUZZ_OUT)/obj/%.o,$(FUZZ_SUPP))
FUZZ_HDRS  := $(wildcard mm/*.h include/*.h include/spanalloc/*.h arch/host/*.h tests/*.h)

.PHONY: fuzz test-fuzz fuzz-deps heapmap heapmap-deps

$(FUZZ_OUT)/obj/%.o: %.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp -c $< -o $@

$(FUZZ_OUT)/obj/fuzz_ops.o: tests/fuzz/fuzz_ops.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -fsanitize=fuzzer -c $< -o $@

$(FUZZ_BIN): $(FUZZ_OUT)/obj/fuzz_ops.o $(FUZZ_OBJ)
	$(CLANG) $(FUZZ_FLAGS) -fsanitize=fuzzer $^ -lcmocka -lpthread -o $@

fuzz-deps:
	@bash scripts/install-deps.sh fuzz

# Dependencies first, then the build (a sub-make, so that nothing is
# compiled before clang's runtime is there).
FUZZ_SUBMAKE = $(MAKE) --no-print-directory -f Makefile -f scripts/hardening.mk $(FUZZ_BIN)

fuzz: fuzz-deps
	@$(FUZZ_SUBMAKE)
	@bash tests/fuzz/run.sh fuzz $(FUZZ_BIN) $(FUZZ_SECONDS) $(FUZZ_OUT)

test-fuzz: fuzz-deps
	@$(FUZZ_SUBMAKE)
	@bash tests/fuzz/run.sh test $(FUZZ_BIN) $(TEST_FUZZ_SECONDS) $(FUZZ_OUT)

# ---------------------------------------------------------------------------
# The heap-map picture.

HEAPMAP_PYTHON ?= $(shell for p in python3 /usr/bin/python3; do \
	$$p -c 'import matplotlib' 2>/dev/null && { echo $$p; break; }; done)
HEAPMAP_DEMO := $(BUILD)/heapmap/heapmap_demo
HEAPMAP_CFLAGS := -std=gnu11 $(WARN) -g -O1 -Iinclude -Imm -Iarch/host -Itests -DKMEM_DEBUG=2

$(HEAPMAP_DEMO): tests/heapmap_demo.c tests/fixture.c arch/host/arch.c $(MM_SRC) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(HEAPMAP_CFLAGS) tests/heapmap_demo.c tests/fixture.c arch/host/arch.c $(MM_SRC) \
		-lcmocka -lpthread -o $@

heapmap-deps:
	@bash scripts/install-deps.sh heapmap

heapmap: heapmap-deps $(HEAPMAP_DEMO)
	$(HEAPMAP_DEMO) $(BUILD)/heapmap.txt
	$(or $(HEAPMAP_PYTHON),python3) scripts/heapmap.py $(BUILD)/heapmap.txt -o $(BUILD)/heapmap.png

endif # HARDENING_MK
