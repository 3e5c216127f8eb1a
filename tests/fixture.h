/*
 * tests/fixture.h - simulated physical memory for host tests.
 *
 * A test reserves a window of virtual address space that stands for the
 * physical addresses [0, phys_span).  The window is PROT_NONE except for
 * the parts the test declares usable, so any allocator access outside
 * usable memory (a reserved hole, a partial page, memory it never got)
 * crashes the test with SIGSEGV instead of passing silently.
 *
 * The window is aligned to 1 GiB so that physical alignment (what the
 * allocator controls) and virtual alignment (what a client sees) agree, as
 * they do with a real kernel's direct map.
 *
 * The fixture uses cmocka assertions, so its helpers must be called from
 * the thread that runs the cmocka test, never from worker threads.
 */
#ifndef SPANALLOC_TESTS_FIXTURE_H
#define SPANALLOC_TESTS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>
#include <stdio.h>

#include "spanalloc.h"

#define FX_KIB ((uint64_t)1 << 10)
#define FX_MIB ((uint64_t)1 << 20)
#define FX_GIB ((uint64_t)1 << 30)
#define FX_TIB ((uint64_t)1 << 40)

/* Reserves a fresh window for physical [0, phys_span) (PROT_NONE,
 * MAP_NORESERVE), unmapping any previous one.  Returns its address, which
 * is also the direct-map offset. */
void *fx_reserve(uint64_t phys_span);

/* The current window (direct-map offset) and its physical span. */
void *fx_window(void);
uint64_t fx_phys_span(void);

/* Physical <-> virtual inside the window. */
void *fx_virt(uint64_t phys);
uint64_t fx_phys(const void *virt);

/* Makes the whole pages inside [phys, phys+len) readable and writable
 * (rounded inward: a partial page stays PROT_NONE). */
void fx_usable(uint64_t phys, uint64_t len);

/* Makes every page touching [phys, phys+len) PROT_NONE again. */
void fx_protect(uint64_t phys, uint64_t len);

/* Makes the USABLE regions of the map RW and every page touching a region
 * of another type PROT_NONE (reserved wins, as in the allocator), resets
 * the host CPU slots, sets `cpus` slots and builds the heap with
 * direct_map_offset = window and max_cpus = cpus.  Returns kmem_init()'s
 * result.  On success it installs the fault recorder (and resets it) and
 * claims CPU 0 for the calling thread (not in host_set_early_boot() mode:
 * the thread is then CPU 0 without a slot). */
int fx_init(const struct kmem_region *r, size_t n, unsigned cpus);

/* As fx_init, with a caller-given metadata region (made RW here). */
int fx_init_meta(const struct kmem_region *r, size_t n, unsigned cpus,
                 uint64_t meta_base, uint64_t meta_size);

/* As fx_init, with a config the caller filled (fx_config, then fields of
 * its own such as the NUMA topology). */
int fx_init_config(const struct kmem_config *cfg);

/* The hardening level (and canary seed) fx_config puts in every config
 * from now on (kmem_config.harden; 0 unless a test sets it). */
void fx_set_harden(unsigned level, uint64_t seed);

/* Fills a kmem_config for the current window. */
void fx_config(struct kmem_config *cfg, const struct kmem_region *r,
               size_t n, unsigned cpus);

/* Reserves 1 GiB + `mib` MiB, one usable region of `mib` MiB at physical
 * 16 MiB, inits with `cpus` CPUs and asserts success. */
void fx_simple(uint64_t mib, unsigned cpus);
#define FX_SIMPLE_BASE (16 * FX_MIB)

/* ---- fault recorder (installed by fx_init) ---- */

struct fx_fault {
	enum kmem_fault_kind kind;
	const void *addr;
	uintptr_t span_base;
	unsigned size_class;
	const char *cache;
	const char *detail;
	uintptr_t caller;
};

void fx_faults_reset(void);
unsigned long fx_fault_count(void);
/* The last fault recorded (kind 0 if none). */
struct fx_fault fx_last_fault(void);
/* Installs the recorder (fx_init does this). */
void fx_install_fault_hook(void);
/* When set, every fault is also printed on stderr. */
void fx_faults_verbose(bool on);

/* Fails the test if any fault was recorded since the last reset, naming
 * the last one. */
void fx_assert_no_faults(void);
/* Exactly one fault was recorded since the last reset, of `kind` (for
 * fx_expect_fault_at also at `addr`); then resets the recorder. */
void fx_expect_fault(enum kmem_fault_kind kind);
void fx_expect_fault_at(enum kmem_fault_kind kind, const void *addr);

/* ---- whole-heap checks (cmocka assertions) ---- */

/* kmem_check() == 0 and it reports no fault. */
void fx_assert_check(void);

/* fx_assert_check() and the page identity of kmem_get_stats(). */
void fx_assert_intact(void);

/* kmem_reclaim(); then pages_free + pages_metadata == pages_managed, no
 * large object or page run is live, and every class's objects_in_use is
 * 0.  Also fx_assert_intact(). */
void fx_assert_all_back(void);

/* kmem_cache_shrink(cache), then none of its objects is in use and
 * kmem_cache_destroy(cache) succeeds. */
void fx_cache_destroy_empty(struct kmem_cache *cache);

/* ---- cmocka setups and teardowns ---- */

/* A test's heap: fx_simple(mib, cpus). */
struct fx_heap {
	uint64_t mib;
	unsigned cpus;
};

/* Builds the heap named by *state, a struct fx_heap (FX_TEST puts it
 * there as the test's initial state). */
int fx_setup_simple(void **state);

/* A cmocka test on a fresh heap (const struct fx_heap *), then teardown
 * (NULL for none).  Include cmocka.h first. */
#define FX_TEST(fn, heap, teardown) \
	cmocka_unit_test_prestate_setup_teardown(fn, fx_setup_simple, teardown, (void *)(heap))

/* fx_assert_no_faults(), then fx_assert_all_back(). */
int fx_teardown_all_back(void **state);
/* fx_assert_no_faults(), then fx_assert_intact(). */
int fx_teardown_intact(void **state);

/* ---- statistics (zeroed, then filled) ---- */

struct kmem_stats fx_stats(void);
/* Asserts kmem_get_class_stats() succeeds. */
struct kmem_class_stats fx_class_stats(unsigned cls);

/* ---- environment ---- */

/* The number in environment variable `name` (strtoull, base 0), or dflt
 * if it is unset or empty. */
uint64_t fx_env_u64(const char *name, uint64_t dflt);
/* SPANALLOC_SEED, or a seed from the time and pid. */
uint64_t fx_seed(void);

/* ---- small helpers ---- */

/* splitmix64: the pattern and random source used by the tests. */
static inline uint64_t fx_mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Fills / verifies [p, p+len) with the pattern of `id`.  fx_check returns
 * the offset of the first wrong byte, or (size_t)-1 if intact. */
void fx_fill(void *p, size_t len, uint64_t id);
size_t fx_check(const void *p, size_t len, uint64_t id);
/* Offset of the first non-zero byte, or (size_t)-1. */
size_t fx_first_nonzero(const void *p, size_t len);

/* Largest power of two dividing x (x != 0). */
static inline uint64_t fx_pow2_divisor(uint64_t x)
{
	return x & (~x + 1);
}

/* ---- model helpers (shared by the shadow-model tests and the fuzzer) ---- */

/* The alignment kmalloc(size) promises: the largest power of two dividing
 * its size class (at least 8), or a page for a large object. */
uint64_t fx_kmalloc_align(size_t size);

/* ---- heap map: kmem_heapmap()'s dump, parsed (format in mm/heapmap.c) ---- */

enum fx_hm_kind {
	FX_HM_FREE = 1,
	FX_HM_SMALL,
	FX_HM_LARGE,
	FX_HM_RUN,
	FX_HM_METAPAGES,
};

/* A page record: free/small/large/run/metapages. */
struct fx_hm_rec {
	enum fx_hm_kind kind;
	uint64_t phys;     /* first byte */
	uint64_t pages;
	unsigned cls;      /* small: size class (0 for an object cache) */
	uint32_t size;     /* small: object size */
	uint32_t live;     /* small: live objects */
	uint32_t objects;  /* small: objects per span */
	char cache[32];    /* small: cache name, "-" for kmalloc */
};

struct fx_hm_arena {
	uint64_t phys;
	uint64_t managed; /* pages */
};

struct fx_heapmap {
	uint64_t page, offset;
	uint64_t meta_phys, meta_bytes;
	struct fx_hm_rec *rec;    /* in dump (= address) order */
	size_t n, cap;
	struct fx_hm_arena *arena;
	size_t narenas, arena_cap;
	bool header, meta, ended;
	unsigned long lines;
	unsigned long errors;  /* malformed or misplaced lines */
	char error[160];       /* the first of them */
};

/* An empty map; fx_heapmap_free releases what a map holds (host malloc). */
void fx_heapmap_init(struct fx_heapmap *m);
void fx_heapmap_free(struct fx_heapmap *m);

/* Parses one line of the dump (without newline).  Leading text before
 * the first record keyword on the line (a serial-log prefix such as
 * "heapmap: ") is skipped.  Returns false (and counts an error) for a
 * malformed line. */
bool fx_heapmap_line(struct fx_heapmap *m, const char *line);

/* fx_heapmap_init, then parses kmem_heapmap()'s output into m.  QUIESCE. */
void fx_heapmap_take(struct fx_heapmap *m);

/* The page record whose pages hold physical address phys, or NULL. */
const struct fx_hm_rec *fx_heapmap_find(const struct fx_heapmap *m, uint64_t phys);

/* Checks the map on its own and against st (if not NULL): a header, one
 * meta line and an end; records in address order, not overlapping, each
 * inside an arena; each arena's records adding up to its managed pages;
 * small spans with live <= objects and objects * size <= span bytes; and
 * the page sums per kind, the arena count, the managed pages and the
 * metadata region equal to st.  Returns NULL if all hold, else a
 * description of the first broken rule (in a static buffer). */
const char *fx_heapmap_verify(const struct fx_heapmap *m, const struct kmem_stats *st);


/* ---- the allocator's insides (mm/mtypes.h) ---- */

struct mcentral;

/* The mcentral of kmalloc's objects of `size` bytes. */
struct mcentral *fx_central(size_t size);

/* Turns the magazines of every size class off, so that each kfree
 * reaches its span (mcentral_set_magazines). */
void fx_magazines_off(void);

/* ---- CPUs as threads ---- */

/* A CPU: a thread that claims slot `id` and runs step(c, k) when asked
 * (fx_cpu_run waits for it); fx_cpu_stop ends the thread, which takes the
 * CPU offline.  A step reports a failure with FX_CPU_FAIL; fx_cpu_run and
 * fx_cpu_stop then fail the test in the main thread. */
struct fx_cpu {
	unsigned id;
	void (*step)(struct fx_cpu *c, int k);
	void *arg;
	int want, done; /* step asked for, step finished; -1: exit */
	char error[128];
	pthread_mutex_t m;
	pthread_cond_t cv;
	pthread_t th;
};
#define FX_CPU_FAIL(c, ...) snprintf((c)->error, sizeof((c)->error), __VA_ARGS__)
void fx_cpu_start(struct fx_cpu *c);
void fx_cpu_run(struct fx_cpu *c, int k);
void fx_cpu_stop(struct fx_cpu *c);

#endif
