/*
 * tests/fixture.c - simulated physical memory, fault recorder and whole-heap
 * checks for the host tests.  See fixture.h.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "host.h"
#include "mtypes.h"
#include "spanalloc.h"

#define FX_ALIGN FX_GIB /* window alignment */
#define HOST_PAGE ((uint64_t)4096)

static uint8_t *fx_map_base;   /* what mmap returned */
static size_t fx_map_len;      /* what was mapped */
static uint8_t *fx_win;        /* aligned window = direct-map offset */
static uint64_t fx_span;

void *fx_reserve(uint64_t phys_span)
{
	if (fx_map_base) {
		munmap(fx_map_base, fx_map_len);
		fx_map_base = NULL;
		fx_win = NULL;
		fx_span = 0;
	}
	phys_span = (phys_span + HOST_PAGE - 1) & ~(HOST_PAGE - 1);
	size_t len = (size_t)(phys_span + FX_ALIGN);
	void *m = mmap(NULL, len, PROT_NONE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		perror("fx_reserve: mmap");
		fail_msg("fx_reserve: cannot reserve %llu bytes",
		         (unsigned long long)phys_span);
	}
	fx_map_base = m;
	fx_map_len = len;
	uintptr_t a = ((uintptr_t)m + FX_ALIGN - 1) & ~(uintptr_t)(FX_ALIGN - 1);
	fx_win = (uint8_t *)a;
	fx_span = phys_span;
	return fx_win;
}

void *fx_window(void)
{
	return fx_win;
}

uint64_t fx_phys_span(void)
{
	return fx_span;
}

void *fx_virt(uint64_t phys)
{
	return fx_win + phys;
}

uint64_t fx_phys(const void *virt)
{
	return (uint64_t)((uintptr_t)virt - (uintptr_t)fx_win);
}

static void fx_mprotect(uint64_t lo, uint64_t hi, int prot)
{
	if (hi > fx_span)
		hi = fx_span;
	if (lo >= hi)
		return;
	if (mprotect(fx_win + lo, (size_t)(hi - lo), prot) != 0) {
		perror("fx: mprotect");
		fail_msg("fx: mprotect [%#llx, %#llx) failed",
		         (unsigned long long)lo, (unsigned long long)hi);
	}
}

/* Clips [phys, phys+len) to the window: false if nothing is left, else
 * the end (exclusive) in *end. */
static bool fx_clip(uint64_t phys, uint64_t len, uint64_t *end)
{
	assert_non_null(fx_win);
	if (len == 0 || phys >= fx_span)
		return false;
	*end = phys + len;
	if (*end < phys || *end > fx_span)
		*end = fx_span;
	return true;
}

void fx_usable(uint64_t phys, uint64_t len)
{
	uint64_t end;
	if (!fx_clip(phys, len, &end))
		return;
	uint64_t lo = (phys + HOST_PAGE - 1) & ~(HOST_PAGE - 1);
	uint64_t hi = end & ~(HOST_PAGE - 1);
	fx_mprotect(lo, hi, PROT_READ | PROT_WRITE);
}

void fx_protect(uint64_t phys, uint64_t len)
{
	uint64_t end;
	if (!fx_clip(phys, len, &end))
		return;
	uint64_t lo = phys & ~(HOST_PAGE - 1);
	uint64_t hi = (end + HOST_PAGE - 1) & ~(HOST_PAGE - 1);
	fx_mprotect(lo, hi, PROT_NONE);
}

static unsigned fx_harden_level;
static uint64_t fx_harden_seed;

void fx_set_harden(unsigned level, uint64_t seed)
{
	fx_harden_level = level;
	fx_harden_seed = seed;
}

void fx_config(struct kmem_config *cfg, const struct kmem_region *r, size_t n,
               unsigned cpus)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->harden = fx_harden_level;
	cfg->harden_seed = fx_harden_seed;
	cfg->regions = r;
	cfg->nregions = n;
	cfg->direct_map_offset = (uintptr_t)fx_win;
	cfg->max_cpus = cpus;
}

static void fx_apply_map(const struct kmem_region *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].type == KMEM_REGION_USABLE)
			fx_usable(r[i].base, r[i].length);
	for (size_t i = 0; i < n; i++)
		if (r[i].type != KMEM_REGION_USABLE)
			fx_protect(r[i].base, r[i].length);
}

static int fx_init_cfg(struct kmem_config *cfg, unsigned cpus)
{
	host_cpu_reset_all();
	host_set_ncpus(cpus);
	int rc = kmem_init(cfg);
	if (rc == 0) {
		fx_install_fault_hook();
		fx_faults_reset();
		if (!host_early_boot())
			host_cpu_claim(0);
	}
	return rc;
}

int fx_init(const struct kmem_region *r, size_t n, unsigned cpus)
{
	assert_non_null(fx_win);
	fx_apply_map(r, n);
	struct kmem_config cfg;
	fx_config(&cfg, r, n, cpus);
	return fx_init_cfg(&cfg, cpus);
}

int fx_init_config(const struct kmem_config *cfg)
{
	assert_non_null(fx_win);
	fx_apply_map(cfg->regions, cfg->nregions);
	struct kmem_config c = *cfg;
	return fx_init_cfg(&c, cfg->max_cpus);
}

int fx_init_meta(const struct kmem_region *r, size_t n, unsigned cpus,
                 uint64_t meta_base, uint64_t meta_size)
{
	assert_non_null(fx_win);
	fx_apply_map(r, n);
	/* The caller-given region is memory the kernel set aside itself. */
	uint64_t lo = meta_base & ~(HOST_PAGE - 1);
	uint64_t hi = (meta_base + meta_size + HOST_PAGE - 1) & ~(HOST_PAGE - 1);
	fx_usable(lo, hi - lo);
	struct kmem_config cfg;
	fx_config(&cfg, r, n, cpus);
	cfg.metadata_base = meta_base;
	cfg.metadata_size = meta_size;
	return fx_init_cfg(&cfg, cpus);
}

void fx_simple(uint64_t mib, unsigned cpus)
{
	fx_reserve(FX_GIB + mib * FX_MIB);
	struct kmem_region r = {
		.base = FX_SIMPLE_BASE,
		.length = mib * FX_MIB,
		.type = KMEM_REGION_USABLE,
	};
	int rc = fx_init(&r, 1, cpus);
	assert_int_equal(rc, 0);
}

/* ---- fault recorder ---- */

static pthread_mutex_t fx_fault_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong fx_nfaults;
static struct fx_fault fx_last;
static atomic_bool fx_verbose;

static void fx_fault_hook(const struct kmem_fault *f)
{
	/* Single-threaded users read the result; a mutex keeps the copy whole
	 * if a stress test ever reports from several threads. */
	/* The hook may run in a simulated interrupt on a thread that holds
	 * the lock already: never block here. */
	if (pthread_mutex_trylock(&fx_fault_lock) == 0) {
		fx_last.kind = f->kind;
		fx_last.addr = f->addr;
		fx_last.span_base = f->span_base;
		fx_last.size_class = f->size_class;
		fx_last.cache = f->cache;
		fx_last.detail = f->detail;
		fx_last.caller = f->caller;
		pthread_mutex_unlock(&fx_fault_lock);
	}
	atomic_fetch_add(&fx_nfaults, 1);
	if (atomic_load(&fx_verbose) || getenv("SPANALLOC_FAULTS_VERBOSE"))
		fprintf(stderr, "[fault] %s addr=%p span=%#lx class=%u cache=%s: %s\n",
		        kmem_fault_name(f->kind), f->addr,
		        (unsigned long)f->span_base, f->size_class,
		        f->cache ? f->cache : "-", f->detail ? f->detail : "-");
}

void fx_install_fault_hook(void)
{
	kmem_set_fault_hook(fx_fault_hook);
}

void fx_faults_verbose(bool on)
{
	atomic_store(&fx_verbose, on);
}

void fx_faults_reset(void)
{
	pthread_mutex_lock(&fx_fault_lock);
	memset(&fx_last, 0, sizeof fx_last);
	pthread_mutex_unlock(&fx_fault_lock);
	atomic_store(&fx_nfaults, 0);
}

unsigned long fx_fault_count(void)
{
	return atomic_load(&fx_nfaults);
}

struct fx_fault fx_last_fault(void)
{
	pthread_mutex_lock(&fx_fault_lock);
	struct fx_fault f = fx_last;
	pthread_mutex_unlock(&fx_fault_lock);
	return f;
}

void fx_assert_no_faults(void)
{
	if (fx_fault_count() != 0) {
		struct fx_fault f = fx_last_fault();
		fail_msg("unexpected fault(s): %lu, last %s at %p (%s)",
		         fx_fault_count(), kmem_fault_name(f.kind), f.addr,
		         f.detail ? f.detail : "-");
	}
}

static void fx_expect_one(enum kmem_fault_kind kind, bool at, const void *addr)
{
	char where[40] = "";
	if (at)
		snprintf(where, sizeof where, " at %p", addr);
	unsigned long n = fx_fault_count();
	struct fx_fault f = fx_last_fault();
	if (n != 1)
		fail_msg("expected exactly one %s fault%s, got %lu (last: %s at %p)",
		         kmem_fault_name(kind), where, n,
		         n ? kmem_fault_name(f.kind) : "none", f.addr);
	if (f.kind != kind)
		fail_msg("expected fault %s%s, got %s (%s)", kmem_fault_name(kind),
		         where, kmem_fault_name(f.kind), f.detail ? f.detail : "-");
	if (at)
		assert_ptr_equal(f.addr, addr);
	fx_faults_reset();
}

void fx_expect_fault(enum kmem_fault_kind kind)
{
	fx_expect_one(kind, false, NULL);
}

void fx_expect_fault_at(enum kmem_fault_kind kind, const void *addr)
{
	fx_expect_one(kind, true, addr);
}

/* ---- whole-heap checks ---- */

/* Fails the test with `what` and the page counts of s. */
static void fx_fail_pages(const char *what, const struct kmem_stats *s)
{
	fail_msg("%s (free %llu, small %llu, large %llu, runs %llu, metadata %llu,"
	         " managed %llu)", what,
	         (unsigned long long)s->pages_free,
	         (unsigned long long)s->pages_small,
	         (unsigned long long)s->pages_large,
	         (unsigned long long)s->pages_runs,
	         (unsigned long long)s->pages_metadata,
	         (unsigned long long)s->pages_managed);
}

void fx_assert_check(void)
{
	unsigned long before = fx_fault_count();
	unsigned long broken = kmem_check();
	if (broken != 0)
		fail_msg("kmem_check() found %lu broken invariants (last: %s)",
		         broken, fx_last_fault().detail ? fx_last_fault().detail : "?");
	/* kmem_check reports each broken rule as a fault; none may appear. */
	assert_int_equal(fx_fault_count(), before);
}

void fx_assert_intact(void)
{
	fx_assert_check();
	struct kmem_stats s;
	kmem_get_stats(&s);
	uint64_t sum = s.pages_free + s.pages_small + s.pages_large +
	               s.pages_runs + s.pages_metadata;
	if (sum != s.pages_managed)
		fx_fail_pages("page identity broken: free + small + large + runs"
		              " + metadata != managed", &s);
}

void fx_assert_all_back(void)
{
	kmem_reclaim();
	struct kmem_stats s;
	kmem_get_stats(&s);
	if (s.pages_free + s.pages_metadata != s.pages_managed)
		fx_fail_pages("pages not all back: free + metadata != managed", &s);
	assert_int_equal(s.large_objects, 0);
	assert_int_equal(s.page_runs, 0);
	assert_true(s.nclasses > 1);
	for (unsigned c = 1; c < s.nclasses; c++) {
		struct kmem_class_stats cs;
		assert_int_equal(kmem_get_class_stats(c, &cs), 0);
		if (cs.objects_in_use != 0)
			fail_msg("class %u (%u B): %llu objects still in use", c,
			         cs.object_size, (unsigned long long)cs.objects_in_use);
		assert_int_equal(cs.nmalloc - cs.nfree, cs.objects_in_use);
	}
	fx_assert_intact();
}

void fx_cache_destroy_empty(struct kmem_cache *cache)
{
	kmem_cache_shrink(cache);
	struct kmem_class_stats cs;
	kmem_cache_get_stats(cache, &cs);
	assert_int_equal(cs.objects_in_use, 0);
	assert_int_equal(kmem_cache_destroy(cache), 0);
}

/* ---- cmocka setups and teardowns ---- */

int fx_setup_simple(void **state)
{
	const struct fx_heap *h = *state;
	assert_non_null(h);
	fx_simple(h->mib, h->cpus);
	return 0;
}

int fx_teardown_all_back(void **state)
{
	(void)state;
	fx_assert_no_faults();
	fx_assert_all_back();
	return 0;
}

int fx_teardown_intact(void **state)
{
	(void)state;
	fx_assert_no_faults();
	fx_assert_intact();
	return 0;
}

/* ---- statistics ---- */

struct kmem_stats fx_stats(void)
{
	struct kmem_stats s;
	memset(&s, 0, sizeof s);
	kmem_get_stats(&s);
	return s;
}

struct kmem_class_stats fx_class_stats(unsigned cls)
{
	struct kmem_class_stats cs;
	memset(&cs, 0, sizeof cs);
	assert_int_equal(kmem_get_class_stats(cls, &cs), 0);
	return cs;
}

/* ---- environment ---- */

uint64_t fx_env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return dflt;
	return strtoull(s, NULL, 0);
}

uint64_t fx_seed(void)
{
	return fx_env_u64("SPANALLOC_SEED",
	                  ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid());
}

/* ---- patterns ---- */

#define FX_STEP 0x9E3779B97F4A7C15ull

static inline uint8_t fx_byte(uint64_t base, size_t i)
{
	uint64_t w = base ^ ((uint64_t)(i / 8) * FX_STEP);
	return (uint8_t)(w >> (8 * (i % 8)));
}

void fx_fill(void *p, size_t len, uint64_t id)
{
	uint8_t *b = p;
	uint64_t base = fx_mix64(id);
	size_t i = 0;
	if (((uintptr_t)b & 7) == 0) {
		for (; i + 8 <= len; i += 8) {
			uint64_t w = base ^ ((uint64_t)(i / 8) * FX_STEP);
			memcpy(b + i, &w, 8);
		}
	}
	for (; i < len; i++)
		b[i] = fx_byte(base, i);
}

size_t fx_check(const void *p, size_t len, uint64_t id)
{
	const uint8_t *b = p;
	uint64_t base = fx_mix64(id);
	size_t i = 0;
	if (((uintptr_t)b & 7) == 0) {
		for (; i + 8 <= len; i += 8) {
			uint64_t w = base ^ ((uint64_t)(i / 8) * FX_STEP), g;
			memcpy(&g, b + i, 8);
			if (g != w)
				break;
		}
	}
	for (; i < len; i++)
		if (b[i] != fx_byte(base, i))
			return i;
	return (size_t)-1;
}

size_t fx_first_nonzero(const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i = 0;
	if (((uintptr_t)b & 7) == 0) {
		for (; i + 8 <= len; i += 8) {
			uint64_t g;
			memcpy(&g, b + i, 8);
			if (g != 0)
				break;
		}
	}
	for (; i < len; i++)
		if (b[i] != 0)
			return i;
	return (size_t)-1;
}

/* ---- model helpers ---- */

uint64_t fx_kmalloc_align(size_t size)
{
	unsigned c = kmem_size_class(size);
	if (!c)
		return KMEM_PAGE_SIZE;
	struct kmem_class_stats cs;
	memset(&cs, 0, sizeof cs);
	if (kmem_get_class_stats(c, &cs) != 0 || cs.object_size == 0)
		fail_msg("fx_kmalloc_align: no stats for class %u", c);
	uint64_t a = fx_pow2_divisor(cs.object_size);
	return a < 8 ? 8 : a;
}

/* ---- heap map ---- */

void fx_heapmap_init(struct fx_heapmap *m)
{
	memset(m, 0, sizeof *m);
}

void fx_heapmap_free(struct fx_heapmap *m)
{
	free(m->rec);
	free(m->arena);
	memset(m, 0, sizeof *m);
}

static bool fx_hm_error(struct fx_heapmap *m, const char *what, const char *line)
{
	if (m->errors++ == 0)
		snprintf(m->error, sizeof m->error, "line %lu: %s: \"%.80s\"", m->lines,
		         what, line);
	return false;
}

/* Next whitespace-separated number (base 0) from *s; false if none. */
static bool fx_hm_num(const char **s, uint64_t *out)
{
	const char *p = *s;
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 0);
	if (errno || (*end && *end != ' '))
		return false;
	*out = v;
	*s = end;
	return true;
}

static const char *const fx_hm_words[] = {
	"heapmap", "meta", "arena", "free", "small", "large", "run", "metapages", "end",
};

/* The keyword at p (a whole token), or -1. */
static int fx_hm_word(const char *p)
{
	for (unsigned i = 0; i < sizeof fx_hm_words / sizeof *fx_hm_words; i++) {
		size_t l = strlen(fx_hm_words[i]);
		if (strncmp(p, fx_hm_words[i], l) == 0 && (p[l] == ' ' || p[l] == 0))
			return (int)i;
	}
	return -1;
}

bool fx_heapmap_line(struct fx_heapmap *m, const char *line)
{
	m->lines++;
	/* Skip a prefix: the first token that is a keyword starts the record. */
	const char *p = line;
	int w = -1;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return fx_hm_error(m, "no record", line);
		if ((w = fx_hm_word(p)) >= 0)
			break;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	const char *word = fx_hm_words[w];
	const char *s = p + strlen(word);
	if (m->ended)
		return fx_hm_error(m, "record after end", line);
	if (w != 0 && !m->header)
		return fx_hm_error(m, "record before the header", line);
	uint64_t a = 0, b = 0;
	switch (w) {
	case 0: { /* heapmap 1 page=4096 offset=0x... */
		uint64_t ver;
		unsigned long long pg, off;
		if (m->header)
			return fx_hm_error(m, "second header", line);
		if (!fx_hm_num(&s, &ver) || ver != 1 ||
		    sscanf(s, " page=%llu offset=%llx", &pg, &off) != 2)
			return fx_hm_error(m, "bad header", line);
		m->header = true;
		m->page = pg;
		m->offset = off;
		return true;
	}
	case 8: /* end */
		m->ended = true;
		return *s == 0 ? true : fx_hm_error(m, "junk after end", line);
	default:
		break;
	}
	if (!fx_hm_num(&s, &a) || !fx_hm_num(&s, &b))
		return fx_hm_error(m, "missing address or count", line);
	if (w == 1) { /* meta <phys> <bytes> */
		if (m->meta)
			return fx_hm_error(m, "second meta line", line);
		m->meta = true;
		m->meta_phys = a;
		m->meta_bytes = b;
		return *s == 0 ? true : fx_hm_error(m, "junk after meta", line);
	}
	if (w == 2) { /* arena <phys> <managed pages> */
		if (*s)
			return fx_hm_error(m, "junk after arena", line);
		if (m->narenas == m->arena_cap) {
			m->arena_cap = m->arena_cap ? 2 * m->arena_cap : 8;
			m->arena = realloc(m->arena, m->arena_cap * sizeof *m->arena);
			if (!m->arena)
				abort();
		}
		m->arena[m->narenas++] = (struct fx_hm_arena){.phys = a, .managed = b};
		return true;
	}
	struct fx_hm_rec r;
	memset(&r, 0, sizeof r);
	r.phys = a;
	r.pages = b;
	switch (w) {
	case 3: r.kind = FX_HM_FREE; break;
	case 4: r.kind = FX_HM_SMALL; break;
	case 5: r.kind = FX_HM_LARGE; break;
	case 6: r.kind = FX_HM_RUN; break;
	default: r.kind = FX_HM_METAPAGES; break;
	}
	if (r.kind == FX_HM_SMALL) {
		uint64_t cls, size, live, objs;
		if (!fx_hm_num(&s, &cls) || !fx_hm_num(&s, &size) || !fx_hm_num(&s, &live) ||
		    !fx_hm_num(&s, &objs) || cls > 255 || size > UINT32_MAX ||
		    live > UINT32_MAX || objs > UINT32_MAX)
			return fx_hm_error(m, "bad small span fields", line);
		while (*s == ' ')
			s++;
		if (!*s || strlen(s) >= sizeof r.cache || strchr(s, ' '))
			return fx_hm_error(m, "bad cache name", line);
		r.cls = (unsigned)cls;
		r.size = (uint32_t)size;
		r.live = (uint32_t)live;
		r.objects = (uint32_t)objs;
		strcpy(r.cache, s);
	} else if (*s) {
		return fx_hm_error(m, "junk after record", line);
	}
	if (m->narenas == 0)
		return fx_hm_error(m, "record outside any arena", line);
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->rec = realloc(m->rec, m->cap * sizeof *m->rec);
		if (!m->rec)
			abort();
	}
	m->rec[m->n++] = r;
	return true;
}

static void fx_heapmap_emit(const char *line, void *arg)
{
	fx_heapmap_line(arg, line);
}

void fx_heapmap_take(struct fx_heapmap *m)
{
	fx_heapmap_init(m);
	kmem_heapmap(fx_heapmap_emit, m);
}

const struct fx_hm_rec *fx_heapmap_find(const struct fx_heapmap *m, uint64_t phys)
{
	uint64_t pg = m->page ? m->page : KMEM_PAGE_SIZE;
	size_t lo = 0, hi = m->n;
	while (lo < hi) { /* first record with phys > the address */
		size_t mid = lo + (hi - lo) / 2;
		if (m->rec[mid].phys <= phys)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct fx_hm_rec *r = &m->rec[lo - 1];
	return phys - r->phys < r->pages * pg ? r : NULL;
}

const char *fx_heapmap_verify(const struct fx_heapmap *m, const struct kmem_stats *st)
{
	static char msg[240];
#define FX_HM_FAIL(...)                                                        \
	do {                                                                   \
		snprintf(msg, sizeof msg, __VA_ARGS__);                        \
		return msg;                                                    \
	} while (0)
	if (m->errors)
		FX_HM_FAIL("%lu malformed line(s); first: %s", m->errors, m->error);
	if (!m->header || !m->meta || !m->ended)
		FX_HM_FAIL("dump incomplete (header %d, meta %d, end %d)", m->header, m->meta,
		           m->ended);
	if (m->page != KMEM_PAGE_SIZE)
		FX_HM_FAIL("page size %llu", (unsigned long long)m->page);
	const uint64_t pg = m->page, apages = (uint64_t)1 << (26 - KMEM_PAGE_SHIFT);
	uint64_t sum[FX_HM_METAPAGES + 1] = {0}, managed = 0;
	for (size_t i = 1; i < m->narenas; i++)
		if (m->arena[i].phys <= m->arena[i - 1].phys)
			FX_HM_FAIL("arenas out of order at %#llx", (unsigned long long)m->arena[i].phys);
	/* Each record's pages, split over the arenas they fall in (a span may
	 * run on into the next arena), must add up to each arena's managed
	 * pages. */
	uint64_t *per = calloc(m->narenas + 1, sizeof *per);
	if (!per)
		abort();
	const char *bad = NULL;
	size_t ai = 0;
	for (size_t i = 0; i < m->n && !bad; i++) {
		const struct fx_hm_rec *r = &m->rec[i];
		if (r->pages == 0)
			bad = "a record has no pages";
		else if (r->phys % pg)
			bad = "a record is not page aligned";
		else if (i && m->rec[i - 1].phys + m->rec[i - 1].pages * pg > r->phys)
			bad = "records overlap or are out of order";
		else if (r->phys < m->meta_phys + m->meta_bytes &&
		         m->meta_phys < r->phys + r->pages * pg)
			bad = "a record overlaps the metadata region";
		else if (r->kind == FX_HM_SMALL && r->live > r->objects)
			bad = "a small span has more live objects than objects";
		else if (r->kind == FX_HM_SMALL &&
		         (r->size == 0 || r->objects == 0 ||
		          (uint64_t)r->objects * r->size > r->pages * pg))
			bad = "a small span's objects do not fit its pages";
		if (bad) {
			snprintf(msg, sizeof msg, "%s (record %zu at %#llx, %llu pages)", bad, i,
			         (unsigned long long)r->phys, (unsigned long long)r->pages);
			break;
		}
		while (ai < m->narenas && r->phys >= m->arena[ai].phys + apages * pg)
			ai++;
		uint64_t at = r->phys, end = r->phys + r->pages * pg;
		for (size_t k = ai; at < end; k++) {
			if (k == m->narenas || at < m->arena[k].phys) {
				bad = msg;
				snprintf(msg, sizeof msg,
				         "record %zu at %#llx (%llu pages): page %#llx lies in no arena",
				         i, (unsigned long long)r->phys, (unsigned long long)r->pages,
				         (unsigned long long)at);
				break;
			}
			uint64_t a_end = m->arena[k].phys + apages * pg;
			uint64_t e = end < a_end ? end : a_end;
			per[k] += (e - at) / pg;
			at = e;
		}
		sum[r->kind] += r->pages;
	}
	for (size_t k = 0; k < m->narenas && !bad; k++) {
		managed += m->arena[k].managed;
		if (per[k] != m->arena[k].managed) {
			bad = msg;
			snprintf(msg, sizeof msg, "arena %#llx: records hold %llu pages, managed %llu",
			         (unsigned long long)m->arena[k].phys, (unsigned long long)per[k],
			         (unsigned long long)m->arena[k].managed);
		}
	}
	free(per);
	if (bad)
		return msg;
	if (!st)
		return NULL;
	static const char *const names[] = {"", "free", "small", "large", "run", "metapages"};
	const uint64_t want[] = {0, st->pages_free, st->pages_small, st->pages_large,
	                         st->pages_runs, st->pages_metadata};
	for (int k = FX_HM_FREE; k <= FX_HM_METAPAGES; k++)
		if (sum[k] != want[k])
			FX_HM_FAIL("%s pages: dump %llu, stats %llu", names[k],
			           (unsigned long long)sum[k], (unsigned long long)want[k]);
	if (managed != st->pages_managed)
		FX_HM_FAIL("managed pages: dump %llu, stats %llu", (unsigned long long)managed,
		           (unsigned long long)st->pages_managed);
	if (m->narenas != st->arenas)
		FX_HM_FAIL("arenas: dump %zu, stats %llu", m->narenas,
		           (unsigned long long)st->arenas);
	if (m->meta_bytes != st->metadata_bytes)
		FX_HM_FAIL("metadata region: dump %llu bytes, stats %llu",
		           (unsigned long long)m->meta_bytes,
		           (unsigned long long)st->metadata_bytes);
	uint64_t large = 0, runs = 0;
	for (size_t i = 0; i < m->n; i++) {
		large += m->rec[i].kind == FX_HM_LARGE;
		runs += m->rec[i].kind == FX_HM_RUN;
	}
	if (large != st->large_objects || runs != st->page_runs)
		FX_HM_FAIL("large objects %llu / page runs %llu in the dump, stats %llu / %llu",
		           (unsigned long long)large, (unsigned long long)runs,
		           (unsigned long long)st->large_objects,
		           (unsigned long long)st->page_runs);
	return NULL;
#undef FX_HM_FAIL
}

/* ---- the allocator's insides ---- */

struct mcentral *fx_central(size_t size)
{
	return class_central(0, kmem_size_class(size));
}

void fx_magazines_off(void)
{
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++)
		mcentral_set_magazines(class_central(0, cls), false);
}

/* ---- CPUs as threads ---- */

static void *fx_cpu_main(void *arg)
{
	struct fx_cpu *c = arg;
	if (host_cpu_claim((int)c->id) != (int)c->id)
		FX_CPU_FAIL(c, "cpu %u: no slot", c->id);
	pthread_mutex_lock(&c->m);
	for (;;) {
		while (c->want == c->done)
			pthread_cond_wait(&c->cv, &c->m);
		int k = c->want;
		pthread_mutex_unlock(&c->m);
		if (k < 0)
			return NULL;
		if (!c->error[0])
			c->step(c, k);
		pthread_mutex_lock(&c->m);
		c->done = k;
		pthread_cond_broadcast(&c->cv);
	}
}

void fx_cpu_start(struct fx_cpu *c)
{
	pthread_mutex_init(&c->m, NULL);
	pthread_cond_init(&c->cv, NULL);
	assert_int_equal(pthread_create(&c->th, NULL, fx_cpu_main, c), 0);
}

void fx_cpu_run(struct fx_cpu *c, int k)
{
	pthread_mutex_lock(&c->m);
	c->want = k;
	pthread_cond_broadcast(&c->cv);
	while (c->done != k)
		pthread_cond_wait(&c->cv, &c->m);
	pthread_mutex_unlock(&c->m);
	if (c->error[0])
		fail_msg("%s", c->error);
}

void fx_cpu_stop(struct fx_cpu *c)
{
	pthread_mutex_lock(&c->m);
	c->want = -1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->m);
	pthread_join(c->th, NULL);
	if (c->error[0])
		fail_msg("%s", c->error);
}
