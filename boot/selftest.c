/*
 * boot/selftest.c - quick in-kernel checks of the allocator API, run on
 * the BSP before the APs start (its timer interrupt is already allocating
 * in the background).  Each prints one "selftest <name>: ok" line or fails
 * the run with what went wrong.
 *
 * The fault tests run with interrupts off (so the timer cannot reuse a page
 * a test just freed), install a hook that records faults instead of the
 * default one that panics, and check each bad call is reported once, with
 * the right kind and address, and changes no page count.
 */
#include "demo.h"

static const char *cur_test;

#define ST_CHECK(cond, ...)                                                          \
	do {                                                                         \
		if (!(cond)) {                                                       \
			char why_[160];                                              \
			ksnprintf(why_, sizeof why_, __VA_ARGS__);                   \
			kfail("selftest %s: %s (%s:%d)", cur_test, why_, __FILE__, __LINE__); \
		}                                                                    \
	} while (0)

static void *st_alloc_fill(size_t n, uint64_t seed)
{
	void *p = kmalloc(n);
	ST_CHECK(p, "kmalloc(%zu) returned NULL", n);
	pattern_fill(p, n, seed);
	return p;
}

static void st_verify(const void *p, size_t n, uint64_t seed)
{
	size_t off;
	ST_CHECK(pattern_check(p, n, seed, &off), "object %p (%zu bytes) corrupted at +%zu", p, n, off);
}

static void test_classes(void)
{
	struct kmem_stats st;
	kmem_get_stats(&st);
	uint32_t prev = 0;
	for (unsigned c = 1; c < st.nclasses; c++) {
		struct kmem_class_stats cs;
		ST_CHECK(kmem_get_class_stats(c, &cs) == 0, "kmem_get_class_stats(%u)", c);
		uint32_t size = cs.object_size;
		ST_CHECK(size > prev, "class %u size %u not above %u", c, size, prev);
		ST_CHECK(kmem_size_class(size) == c && kmem_size_class(prev + 1) == c,
		         "kmem_size_class disagrees for class %u", c);
		size_t sizes[2] = {prev + 1, size};
		for (int k = 0; k < 2; k++) {
			void *p = st_alloc_fill(sizes[k], c * 2 + k);
			size_t align = size & -size;
			if (align < 8)
				align = 8;
			ST_CHECK(((uintptr_t)p & (align - 1)) == 0, "kmalloc(%zu) = %p not %zu-aligned",
			         sizes[k], p, align);
			ST_CHECK(ksize(p) == size, "ksize(kmalloc(%zu)) = %zu, want %u", sizes[k], ksize(p),
			         size);
			st_verify(p, sizes[k], c * 2 + k);
			kfree(p);
		}
		prev = size;
	}
	ST_CHECK(prev == KMEM_SMALL_MAX, "largest class %u", prev);
	ST_CHECK(kmem_size_class(KMEM_SMALL_MAX + 1) == 0, "size above the classes has a class");
	ST_CHECK(kmem_get_class_stats(0, &(struct kmem_class_stats){0}) == -KMEM_EINVAL,
	         "class 0 accepted");
}

static void test_edges(void)
{
	void *a = kmalloc(0), *b = kmalloc(0);
	ST_CHECK(a && b && a != b, "kmalloc(0) gave %p and %p", a, b);
	kfree(a);
	kfree(b);
	kfree(NULL);
	ST_CHECK(kmalloc(KMEM_MAX_ALLOC + 1) == NULL, "kmalloc above KMEM_MAX_ALLOC");
	ST_CHECK(kcalloc(SIZE_MAX / 2, 4) == NULL, "kcalloc overflow not caught");
	uint8_t *z = kzalloc(3000);
	ST_CHECK(z, "kzalloc(3000)");
	for (size_t i = 0; i < 3000; i++)
		ST_CHECK(z[i] == 0, "kzalloc byte %zu is %u", i, z[i]);
	kfree(z);
	uint32_t *c = kcalloc(100, sizeof(uint32_t));
	ST_CHECK(c, "kcalloc(100, 4)");
	for (size_t i = 0; i < 100; i++)
		ST_CHECK(c[i] == 0, "kcalloc word %zu", i);
	kfree(c);
}

static void test_aligned(void)
{
	ST_CHECK(kmalloc_aligned(10, 3) == NULL, "kmalloc_aligned with align 3");
	void *n0 = kmalloc_aligned(10, 0); /* 0: the natural alignment, kmalloc's */
	ST_CHECK(n0 && ((uintptr_t)n0 & 7) == 0 && ksize(n0) >= 10, "kmalloc_aligned(10, 0) = %p", n0);
	kfree(n0);
	void *r0 = kpage_alloc(1, 0, 0); /* and a page's for a page run */
	ST_CHECK(r0 && ((uintptr_t)r0 & (KMEM_PAGE_SIZE - 1)) == 0, "kpage_alloc(1, 0, 0) = %p", r0);
	kpage_free(r0, 1);
	ST_CHECK(kpage_alloc(1, 3 * KMEM_PAGE_SIZE, 0) == NULL, "kpage_alloc with align 3 pages");
	for (size_t align = 1; align <= 65536; align <<= 1) {
		size_t sizes[4] = {1, align / 2 + 1, align, 3 * align};
		for (int k = 0; k < 4; k++) {
			void *p = kmalloc_aligned(sizes[k], align);
			ST_CHECK(p, "kmalloc_aligned(%zu, %zu) NULL", sizes[k], align);
			ST_CHECK(((uintptr_t)p & (align - 1)) == 0, "kmalloc_aligned(%zu, %zu) = %p",
			         sizes[k], align, p);
			ST_CHECK(ksize(p) >= sizes[k], "ksize %zu < %zu", ksize(p), sizes[k]);
			pattern_fill(p, sizes[k], align + k);
			st_verify(p, sizes[k], align + k);
			kfree(p);
		}
	}
}

static void test_realloc(void)
{
	void *p = st_alloc_fill(100, 7);
	void *q = krealloc(p, 5000);
	ST_CHECK(q, "krealloc grow");
	st_verify(q, 100, 7);
	pattern_fill(q, 5000, 8);
	void *r = krealloc(q, 60);
	ST_CHECK(r, "krealloc shrink");
	st_verify(r, 60, 8);
	void *s = krealloc(r, 50);
	ST_CHECK(s == r, "krealloc within the object moved it");
	ST_CHECK(krealloc(s, 0) == NULL, "krealloc(p, 0) did not return NULL");
	void *t = krealloc(NULL, 200);
	ST_CHECK(t, "krealloc(NULL, 200)");
	kfree(t);
}

static void test_large_and_pages(void)
{
	struct kmem_stats before, after;
	kmem_get_stats(&before);
	void *l = kmalloc(100000);
	ST_CHECK(l && ((uintptr_t)l & (KMEM_PAGE_SIZE - 1)) == 0, "large kmalloc = %p", l);
	ST_CHECK(ksize(l) >= 100000, "large ksize %zu", ksize(l));
	pattern_fill(l, 100000, 11);
	void *m = kmalloc(1 << 20);
	ST_CHECK(m, "kmalloc(1 MiB)");
	pattern_fill(m, 1 << 20, 12);
	void *p1 = kpage_alloc(3, KMEM_PAGE_SIZE, 0);
	void *p2 = kpage_alloc(4, 65536, 0);
	ST_CHECK(p1 && p2, "kpage_alloc: %p %p", p1, p2);
	/* A ceiling 16 MiB above p1, the lowest free run (RAM starts at 0 on
	 * a PC, at 1 or 2 GiB on the virt machines). */
	uint64_t ceiling = kmem_virt_to_phys(p1) + (16ull << 20);
	void *p3 = kpage_alloc(2, KMEM_PAGE_SIZE, ceiling);
	ST_CHECK(p3, "kpage_alloc under 0x%lx", (unsigned long)ceiling);
	ST_CHECK((kmem_virt_to_phys(p2) & 65535) == 0, "64 KiB-aligned run at phys 0x%lx",
	         (unsigned long)kmem_virt_to_phys(p2));
	ST_CHECK(kmem_virt_to_phys(p3) + 2 * KMEM_PAGE_SIZE <= ceiling, "run under 0x%lx at phys 0x%lx",
	         (unsigned long)ceiling, (unsigned long)kmem_virt_to_phys(p3));
	ST_CHECK(kpage_alloc(0, KMEM_PAGE_SIZE, 0) == NULL, "kpage_alloc(0 pages)");
	ST_CHECK(kpage_alloc(1, 3, 0) == NULL, "kpage_alloc with align 3");
	pattern_fill(p1, 3 * KMEM_PAGE_SIZE, 13);
	pattern_fill(p2, 4 * KMEM_PAGE_SIZE, 14);
	pattern_fill(p3, 2 * KMEM_PAGE_SIZE, 15);
	kmem_get_stats(&after);
	ST_CHECK(after.page_runs == before.page_runs + 3, "page_runs %lu -> %lu",
	         (unsigned long)before.page_runs, (unsigned long)after.page_runs);
	ST_CHECK(after.large_objects == before.large_objects + 2, "large_objects %lu -> %lu",
	         (unsigned long)before.large_objects, (unsigned long)after.large_objects);
	st_verify(l, 100000, 11);
	st_verify(m, 1 << 20, 12);
	st_verify(p1, 3 * KMEM_PAGE_SIZE, 13);
	st_verify(p2, 4 * KMEM_PAGE_SIZE, 14);
	st_verify(p3, 2 * KMEM_PAGE_SIZE, 15);
	kfree(l);
	kfree(m);
	kpage_free(p1, 3);
	kpage_free(p2, 4);
	kpage_free(p3, 2);
	kmem_get_stats(&after);
	ST_CHECK(after.page_runs == before.page_runs && after.large_objects == before.large_objects &&
	         after.pages_large == before.pages_large && after.pages_runs == before.pages_runs,
	         "large objects or runs not given back");
}

static _Atomic unsigned ctor_runs;

static void st_ctor(void *obj)
{
	memset(obj, 0xc5, 72);
	atomic_fetch_add(&ctor_runs, 1);
}

static void test_cache(void)
{
	ST_CHECK(kmem_cache_create("bad", 0, 0, NULL) == NULL, "cache of size 0");
	ST_CHECK(kmem_cache_create("bad", 64, 3, NULL) == NULL, "cache with align 3");
	struct kmem_cache *k = kmem_cache_create("selftest", 72, 32, st_ctor);
	ST_CHECK(k, "kmem_cache_create");
	void *objs[300];
	for (int i = 0; i < 300; i++) {
		objs[i] = kmem_cache_alloc(k);
		ST_CHECK(objs[i] && ((uintptr_t)objs[i] & 31) == 0, "cache object %p", objs[i]);
		ST_CHECK(((uint8_t *)objs[i])[71] == 0xc5, "constructor did not run on %p", objs[i]);
		pattern_fill(objs[i], 72, (uint64_t)i + 100);
	}
	ST_CHECK(atomic_load(&ctor_runs) == 300, "constructor ran %u times", atomic_load(&ctor_runs));
	struct kmem_class_stats cs;
	kmem_cache_get_stats(k, &cs);
	ST_CHECK(cs.nmalloc == 300 && cs.object_size >= 72, "cache stats nmalloc %lu size %u",
	         (unsigned long)cs.nmalloc, cs.object_size);
	for (int i = 0; i < 300; i++)
		st_verify(objs[i], 72, (uint64_t)i + 100);
	for (int i = 1; i < 300; i++) {
		if (i & 1)
			kfree(objs[i]); /* a cache's objects may go through kfree too */
		else
			kmem_cache_free(k, objs[i]);
	}
	ST_CHECK(kmem_cache_destroy(k) == -KMEM_EBUSY, "destroy with a live object");
	kmem_cache_free(k, objs[0]);
	kmem_cache_shrink(k);
	ST_CHECK(kmem_cache_destroy(k) == 0, "destroy of an empty cache");
}

/* --- faults ---------------------------------------------------------------- */

static struct {
	unsigned n;
	enum kmem_fault_kind kind;
	const void *addr;
} seen;

static void record_hook(const struct kmem_fault *f)
{
	seen.n++;
	seen.kind = f->kind;
	seen.addr = f->addr;
}

static void expect_fault(enum kmem_fault_kind kind, const void *addr, const char *what)
{
	ST_CHECK(seen.n == 1, "%s: %u faults reported, want 1", what, seen.n);
	ST_CHECK(seen.kind == kind, "%s: reported '%s', want '%s'", what, kmem_fault_name(seen.kind),
	         kmem_fault_name(kind));
	ST_CHECK(seen.addr == addr, "%s: reported address %p, want %p", what, seen.addr, addr);
	seen.n = 0;
}

static bool same_pages(const struct kmem_stats *a, const struct kmem_stats *b)
{
	return a->pages_free == b->pages_free && a->pages_small == b->pages_small &&
	       a->pages_large == b->pages_large && a->pages_runs == b->pages_runs &&
	       a->large_objects == b->large_objects && a->page_runs == b->page_runs;
}

static void test_faults(void)
{
	static uint64_t not_heap; /* in this image: memory the heap does not manage */
	unsigned long f = arch_irq_save();
	kmem_fault_hook_t old = kmem_set_fault_hook(record_hook);
	struct kmem_cache *k = kmem_cache_create("selftest-f", 40, 0, NULL);
	ST_CHECK(k, "kmem_cache_create");
	uint8_t *p = kmalloc(64);
	uint8_t *q = kmalloc(64);
	void *c = kmem_cache_alloc(k);
	void *run = kpage_alloc(2, KMEM_PAGE_SIZE, 0);
	void *gone = kpage_alloc(1, KMEM_PAGE_SIZE, 0);
	void *big = kmalloc(50000);
	ST_CHECK(p && q && c && run && gone && big, "set-up allocations");
	kpage_free(gone, 1);
	struct kmem_stats before, after;
	kmem_get_stats(&before);
	seen.n = 0;

	kfree(p);
	kmem_get_stats(&before); /* the legitimate free is not part of the check */
	kfree(p);
	expect_fault(KMEM_FAULT_DOUBLE_FREE, p, "double free");
	kfree(q + 8);
	expect_fault(KMEM_FAULT_INTERIOR, q + 8, "interior pointer");
	kfree((uint8_t *)big + KMEM_PAGE_SIZE);
	expect_fault(KMEM_FAULT_INTERIOR, (uint8_t *)big + KMEM_PAGE_SIZE, "inside a large object");
	kfree(&not_heap);
	expect_fault(KMEM_FAULT_WILD, &not_heap, "wild pointer");
	kfree(gone);
	expect_fault(KMEM_FAULT_FREE_PAGE, gone, "free of a free page");
	kfree(run);
	expect_fault(KMEM_FAULT_WRONG_KIND, run, "page run through kfree");
	kpage_free(q, 1);
	expect_fault(KMEM_FAULT_WRONG_KIND, q, "object through kpage_free");
	kpage_free(run, 3);
	expect_fault(KMEM_FAULT_BAD_SIZE, run, "kpage_free with the wrong count");
	kmem_cache_free(k, q);
	expect_fault(KMEM_FAULT_WRONG_CACHE, q, "kmalloc object to a cache");
	uint64_t mbase, msize;
	kmem_metadata_region(&mbase, &msize);
	void *meta = (void *)(uintptr_t)(mbase + 64);
	kfree(meta);
	expect_fault(KMEM_FAULT_METADATA, meta, "pointer into the metadata region");
	ST_CHECK(ksize(p) == 0, "ksize of a freed object");
	expect_fault(KMEM_FAULT_DOUBLE_FREE, p, "ksize of a freed object");
	kmem_get_stats(&after);
	ST_CHECK(same_pages(&before, &after), "a rejected call changed the page counts");

	kfree(q);
	kmem_cache_free(k, c);
	kpage_free(run, 2);
	kfree(big);
	ST_CHECK(seen.n == 0, "a legitimate free was reported as a fault");
	ST_CHECK(kmem_cache_destroy(k) == 0, "destroying the fault-test cache");
	kmem_set_fault_hook(old);
	arch_irq_restore(f);
}

static unsigned long check_faults;

static void count_hook(const struct kmem_fault *f)
{
	check_faults++;
	kprintf("kmem_check: %s at %p: %s\n", kmem_fault_name(f->kind), f->addr, f->detail);
}

static void test_check(void)
{
	kmem_fault_hook_t old = kmem_set_fault_hook(count_hook);
	unsigned long n = kmem_check();
	kmem_set_fault_hook(old);
	ST_CHECK(n == 0 && check_faults == 0, "kmem_check found %lu problems", n);
}

void selftest_run(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{"classes", test_classes},   {"edges", test_edges}, {"aligned", test_aligned},
		{"realloc", test_realloc},   {"large+pages", test_large_and_pages},
		{"cache", test_cache},       {"faults", test_faults}, {"check", test_check},
	};
	uint64_t ticks0 = atomic_load(&bsp_percpu.ticks);
	for (unsigned i = 0; i < ARRAY_SIZE(tests); i++) {
		cur_test = tests[i].name;
		uint64_t t0 = uptime_us();
		tests[i].fn();
		kprintf("selftest %-12s ok (%lu us)\n", tests[i].name, (unsigned long)(uptime_us() - t0));
	}
	kprintf("selftest: all %u passed; %lu timer ticks on the BSP meanwhile\n",
	        (unsigned)ARRAY_SIZE(tests), (unsigned long)(atomic_load(&bsp_percpu.ticks) - ticks0));
}
