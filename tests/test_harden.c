/*
 * tests/test_harden.c - hardened mode (kmem_config.harden, mm/harden.c),
 * every check at every level it belongs to: the slow paths only, zero on
 * free checked at reuse and handed-out zeros, canaries checked at kfree
 * and by kmem_check, neighbour checks (underflows, overflows past the
 * slack), hardened large objects, zero-size objects, the quarantine (its
 * bounds, its flush by kmem_reclaim and out of memory, deterministic double
 * frees), the guard pages of the protect hook, and neighbour checks racing
 * allocations on another CPU.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixture.h"
#include "host.h"
#include "mtypes.h"

#define SEED 0x5eed1234abcdull

static unsigned levels[4] = {0, 1, 2, 3};

/* ---- the protect hook: mprotect on the fixture's window, recorded ---- */

#define HOOK_LOG 64
static struct hook_call {
	uintptr_t addr;
	size_t bytes;
	enum kmem_access access;
} hook_log[HOOK_LOG];
static unsigned hook_n;
static bool hook_refuse;

static bool test_hook(void *addr, size_t bytes, enum kmem_access access)
{
	if (hook_n < HOOK_LOG)
		hook_log[hook_n] = (struct hook_call){(uintptr_t)addr, bytes, access};
	hook_n++;
	if (hook_refuse)
		return false;
	return mprotect(addr, bytes, access == KMEM_ACCESS_NONE ? PROT_NONE
	                                                        : PROT_READ | PROT_WRITE) == 0;
}

/* Was [addr, addr+bytes) made inaccessible by one hook call? */
static bool hooked_none(uintptr_t addr, size_t bytes)
{
	for (unsigned i = 0; i < hook_n && i < HOOK_LOG; i++)
		if (hook_log[i].addr == addr && hook_log[i].bytes == bytes &&
		    hook_log[i].access == KMEM_ACCESS_NONE)
			return true;
	return false;
}

static int setup_level(void **state)
{
	unsigned level = *(unsigned *)*state;
	fx_set_harden(level, SEED);
	fx_simple(64, 2);
	hook_n = 0;
	hook_refuse = false;
	if (level == 3)
		kmem_set_protect_hook(test_hook);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	int rc = fx_teardown_all_back(state);
	fx_set_harden(0, 0);
	return rc;
}

static unsigned level_of(void **state)
{
	return *(unsigned *)*state;
}

static size_t slack_of(unsigned level)
{
	return level >= 2 ? KMEM_HARDEN_SLACK2 : level == 1 ? KMEM_HARDEN_SLACK1 : 0;
}

/* Hides a pointer from the compiler (deliberate misuse below). */
static void *launder(void *p)
{
	__asm__ volatile("" : "+r"(p));
	return p;
}

/* Does fn(arg) die of SIGSEGV in a child process? */
static bool faults_in_child(void (*fn)(volatile unsigned char *), volatile unsigned char *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* not the sanitizer's report */
		signal(SIGBUS, SIG_DFL);
		fn(arg);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
}

static void read_byte(volatile unsigned char *p)
{
	unsigned char c = *p;
	__asm__ volatile("" ::"r"(c));
}

static void write_byte(volatile unsigned char *p)
{
	*p = 1;
}

/* The state byte of small object p. */
static unsigned obj_state(const void *p)
{
	struct mspan *s = span_of_ptr(p);
	return atomic_load(&s->objstate[span_obj_index(s, (uintptr_t)p - s->base)]);
}

/* ---- levels and configuration ---- */

static void test_level0_is_the_normal_heap(void **state)
{
	(void)state;
	assert_int_equal(kmem_harden_level(), 0);
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++) {
		assert_int_not_equal(class_central(0, cls)->mag_cap, 0);
		assert_false(class_central(0, cls)->debug & DEBUG_HARDEN);
	}
	unsigned char *p = kmalloc(5);
	struct mspan *s = span_of_ptr(p);
	assert_int_equal(atomic_load(&s->fast_nelems), s->nelems); /* kfree's fast path */
	assert_int_equal(ksize(p), 8);
	kfree(p);
	/* Bad frees are reported at level 0, as always. */
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	p = kmalloc(64);
	kfree(p + 8);
	fx_expect_fault(KMEM_FAULT_INTERIOR);
	int x;
	kfree(&x);
	fx_expect_fault(KMEM_FAULT_WILD);
	kfree(p);
}

static void test_bad_level_is_rejected(void **state)
{
	(void)state;
	unsigned char *p = kmalloc(100);
	memset(p, 7, 100);
	struct kmem_region r = {FX_SIMPLE_BASE, 64 * FX_MIB, KMEM_REGION_USABLE, 0};
	struct kmem_config cfg;
	fx_config(&cfg, &r, 1, 2);
	cfg.harden = KMEM_HARDEN_MAX + 1;
	assert_int_equal(kmem_metadata_size(&cfg), 0);
	assert_int_equal(kmem_init(&cfg), -KMEM_EINVAL);
	/* Nothing was lost: the old heap is intact and in use. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(p[i], 7);
	fx_assert_check();
	kfree(p);
}

static void test_only_slow_paths(void **state)
{
	unsigned level = level_of(state);
	assert_int_equal(kmem_harden_level(), level);
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++) {
		assert_int_equal(class_central(0, cls)->mag_cap, 0);
		assert_true(class_central(0, cls)->debug & DEBUG_HARDEN);
	}
	for (size_t n = 0; n < 3000; n += 61) {
		unsigned char *p = kmalloc(n);
		assert_non_null(p);
		assert_int_equal(ksize(p), n);
		struct mspan *s = span_of_ptr(p);
		if (s->state == SPAN_SMALL) {
			assert_int_equal(atomic_load(&s->fast_nelems), 0);
			assert_true(s->elemsize >= n + slack_of(level));
		}
		kfree(p);
	}
}

/* ---- zero on free, checked at reuse; zeros handed out ---- */

static void test_zeros_handed_out(void **state)
{
	(void)state;
	static const size_t sizes[] = {0, 1, 8, 24, 100, 1000, 4096, 5000, 20000, 32768, 40000, 262144};
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			size_t n = sizes[i];
			unsigned char *p = kmalloc(n);
			assert_non_null(p);
			assert_int_equal(fx_first_nonzero(p, n), (size_t)-1);
			memset(p, 0xa5, n);
			kfree(p);
			p = kmalloc_aligned(n, 64);
			assert_non_null(p);
			assert_int_equal((uintptr_t)p % 64, 0);
			assert_int_equal(fx_first_nonzero(p, n), (size_t)-1);
			memset(p, 0x5a, n);
			kfree(p);
		}
		kmem_reclaim(); /* and from spans made anew */
	}
	fx_assert_no_faults();
}

static void test_read_after_free_reads_zeros(void **state)
{
	(void)state;
	unsigned char *p = kmalloc(200), *q = kmalloc(300000);
	memset(p, 0x77, 200);
	memset(q, 0x77, 300000);
	kfree(p);
	kfree(q);
	p = launder(p);
	q = launder(q);
	assert_int_equal(fx_first_nonzero(p, 200), (size_t)-1);
	if (kmem_harden_level() < 3) /* level 3: unmapped (test_guard_pages) */
		assert_int_equal(fx_first_nonzero(q, 300000), (size_t)-1);
}

static void test_write_after_free_found(void **state)
{
	unsigned level = level_of(state);
	unsigned char *p = kmalloc(100);
	kfree(p);
	unsigned char *w = launder(p);
	w[50] = 1; /* the bug */
	if (level == 1) {
		/* No quarantine: found when the slot is handed out again, which
		 * is zeroed anyway. */
		void *held[200];
		int n = 0;
		for (; n < 200; n++) {
			held[n] = kmalloc(100);
			if (held[n] == p)
				break;
		}
		assert_true(n < 200);
		fx_expect_fault_at(KMEM_FAULT_USE_AFTER_FREE, p + 50);
		assert_int_equal(fx_first_nonzero(p, 100), (size_t)-1);
		for (int i = 0; i <= n; i++)
			kfree(held[i]);
		return;
	}
	/* Quarantined: found when it leaves (here: kmem_reclaim). */
	assert_int_equal(obj_state(p), OBJ_QUARANTINE);
	fx_assert_no_faults();
	kmem_reclaim();
	fx_expect_fault_at(KMEM_FAULT_USE_AFTER_FREE, p);
}

/* ---- canaries ---- */

static void test_canary_checked_at_free(void **state)
{
	unsigned level = level_of(state);
	size_t slack = slack_of(level);
	static const size_t sizes[] = {1, 8, 24, 100, 4096, 5000, 32768, 40000, 262144};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i];
		unsigned char *p = kmalloc(n);
		/* The canary: slack bytes at least, none of them zero. */
		for (size_t k = 0; k < slack; k++)
			assert_int_not_equal(p[n + k], 0);
		size_t offs[2] = {0, slack - 1};
		for (int j = 0; j < 2; j++) {
			unsigned char save = p[n + offs[j]];
			p[n + offs[j]] = 0; /* an off-by-one NUL */
			kfree(p);
			fx_expect_fault_at(KMEM_FAULT_OVERFLOW, p);
			assert_int_equal(ksize(p), n); /* the bad free did nothing */
			p[n + offs[j]] = save;
		}
		kfree(p);
		fx_assert_no_faults();
	}
}

static void test_canary_and_zeros_in_kmem_check(void **state)
{
	unsigned level = level_of(state);
	unsigned char *p = kmalloc(100), *q = kmalloc(262144), *f = kmalloc(100);
	fx_assert_check();
	p[100] ^= 0x40;
	assert_int_equal(kmem_check(), 1);
	fx_expect_fault_at(KMEM_FAULT_OVERFLOW, p);
	p[100] ^= 0x40;
	q[262144 + slack_of(level) - 1] ^= 0x40;
	assert_int_equal(kmem_check(), 1);
	fx_expect_fault(KMEM_FAULT_OVERFLOW);
	q[262144 + slack_of(level) - 1] ^= 0x40;
	/* A free slot (in its span, or quarantined) must keep its zeros. */
	kfree(f);
	f[99] = 3;
	assert_int_equal(kmem_check(), 1);
	fx_expect_fault_at(KMEM_FAULT_USE_AFTER_FREE, f);
	f[99] = 0;
	fx_assert_check();
	kfree(p);
	kfree(q);
}

static void test_span_tail_checked(void **state)
{
	/* Objects of the 48 B class: 85 * 48 = 4080, 16 bytes of tail. */
	unsigned char *p = kmalloc(48 - slack_of(level_of(state)));
	assert_int_equal(span_of_ptr(p)->elemsize, 48);
	struct mspan *s = span_of_ptr(p);
	uintptr_t tail = s->base + (uintptr_t)s->nelems * s->elemsize;
	assert_true(tail < s->base + (s->npages << PAGE_SHIFT));
	*(unsigned char *)tail = 9;
	assert_int_equal(kmem_check(), 1);
	fx_expect_fault(KMEM_FAULT_OVERFLOW);
	*(unsigned char *)tail = 0;
	kfree(p);
}

/* ---- neighbours: underflows, overflows past the slack ---- */

/* Three objects in a row of a fresh span. */
static void three_in_a_row(size_t n, unsigned char **a, unsigned char **b, unsigned char **c)
{
	*a = kmalloc(n);
	*b = kmalloc(n);
	*c = kmalloc(n);
	size_t e = span_of_ptr(*a)->elemsize;
	assert_ptr_equal(*b, *a + e);
	assert_ptr_equal(*c, *b + e);
}

static void test_underflow_found_at_free(void **state)
{
	unsigned level = level_of(state);
	static const size_t sizes[] = {8, 200, 4096};
	for (size_t i = 0; i < 3; i++) {
		unsigned char *a, *b, *c;
		three_in_a_row(sizes[i], &a, &b, &c);
		/* The byte before b is a's canary (a is live). */
		b[-1] ^= 0x40;
		kfree(b);
		fx_expect_fault_at(KMEM_FAULT_OVERFLOW, b);
		b[-1] ^= 0x40;
		/* 32 bytes before: still a's canary from level 2 on. */
		if (level >= 2) {
			b[-32] ^= 0x40;
			kfree(b);
			fx_expect_fault_at(KMEM_FAULT_OVERFLOW, b);
			b[-32] ^= 0x40;
		}
		/* a free (zeros, in its span or quarantined): c[-1] is b's
		 * last byte. */
		kfree(b);
		c[-1] = 0x11;
		kfree(c);
		fx_expect_fault_at(KMEM_FAULT_OVERFLOW, c);
		c[-1] = 0;
		kfree(c);
		kfree(a);
		fx_assert_no_faults();
	}
}

static void test_overflow_past_slack(void **state)
{
	unsigned level = level_of(state);
	size_t slack = slack_of(level);
	/* 8 B objects: the slot is 8 + slack rounded to a class; a write at
	 * 8 + 31 lands in the own canary from level 2 on, else in b. */
	unsigned char *a, *b, *c;
	three_in_a_row(8, &a, &b, &c);
	kfree(b); /* b: zeros */
	size_t e = span_of_ptr(a)->elemsize;
	a[8 + 31] ^= 0x40;
	kfree(a);
	if (8 + 31 < e || 8 + 31 < 8 + slack) {
		fx_expect_fault_at(KMEM_FAULT_OVERFLOW, a);
		a[8 + 31] ^= 0x40;
		kfree(a);
	} else {
		/* Level 1: past what a's free looks at; kmem_check finds it
		 * in b's zeros. */
		fx_assert_no_faults();
		assert_int_equal(kmem_check(), 1);
		fx_expect_fault(KMEM_FAULT_USE_AFTER_FREE);
		a[8 + 31] ^= 0x40;
	}
	kfree(c);
}

static void test_head_slot_kept_zeroed(void **state)
{
	(void)state;
	/* A fresh span of many objects: slot 0 is not handed out ... */
	unsigned char *p = kmalloc(100);
	struct mspan *s = span_of_ptr(p);
	assert_true(s->nelems >= 3);
	assert_ptr_equal(p, (unsigned char *)s->base + s->elemsize);
	assert_int_equal(obj_state((void *)s->base), OBJ_FREE);
	/* ... so the first object's underflow meets its zeros. */
	p[-1] = 'A';
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_OVERFLOW, p);
	p[-1] = 0;
	/* It is handed out only when nothing else of its span is free. */
	enum { MAXN = 64 };
	void *held[MAXN];
	uint32_t n = s->nelems - 2;
	assert_true(n < MAXN);
	for (uint32_t i = 0; i < n; i++) {
		held[i] = kmalloc(100);
		assert_ptr_equal(span_of_ptr(held[i]), s);
		assert_ptr_not_equal(held[i], (void *)s->base);
	}
	void *last = kmalloc(100);
	assert_ptr_equal(last, (void *)s->base);
	kfree(last);
	for (uint32_t i = 0; i < n; i++)
		kfree(held[i]);
	kfree(p);
	/* Small spans of fewer than three objects use every slot. */
	unsigned char *q = kmalloc(2048 - KMEM_HARDEN_SLACK2);
	struct mspan *t = span_of_ptr(q);
	assert_int_equal(t->nelems, 2);
	assert_ptr_equal(q, (unsigned char *)t->base);
	kfree(q);
}

/* ---- large objects ---- */

static void test_large_object_layout(void **state)
{
	unsigned level = level_of(state);
	size_t n = 262144, slack = slack_of(level);
	unsigned char *p = kmalloc(n);
	struct mspan *s = span_of_ptr(p);
	uint64_t pages = (n + slack + PAGE_SIZE - 1) / PAGE_SIZE;
	assert_true(s->hflags & HL_HARDENED);
	assert_int_equal(s->hsize, n);
	assert_int_equal(ksize(p), n);
	if (level == 3) {
		assert_int_equal(s->npages, pages + 2);
		assert_ptr_equal(p, (unsigned char *)s->base + PAGE_SIZE);
		assert_true(hooked_none(s->base, PAGE_SIZE));
		assert_true(hooked_none(s->base + ((pages + 1) << PAGE_SHIFT), PAGE_SIZE));
	} else {
		assert_int_equal(s->npages, pages);
		assert_ptr_equal(p, (unsigned char *)s->base);
	}
	/* The canary fills the rest of the last page. */
	for (size_t k = n; k < pages * PAGE_SIZE; k++)
		assert_int_equal(p[k], canary_byte(k));
	kfree(p + PAGE_SIZE);
	fx_expect_fault(KMEM_FAULT_INTERIOR);
	kfree(p);
	if (level >= 2) {
		/* Quarantined: still a large object, double free reported. */
		assert_int_equal(s->state, SPAN_FREEING);
		assert_true(s->hflags & HL_QUARANTINE);
		fx_assert_check();
		kfree(p);
		fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
		assert_int_equal(ksize(p), 0);
		fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	}
	kmem_reclaim();
	assert_int_equal(fx_stats().large_objects, 0);
}

static void test_large_write_after_free(void **state)
{
	unsigned level = level_of(state);
	if (level == 3)
		kmem_set_protect_hook(NULL); /* the level-2 path: zeros, checked */
	unsigned char *p = kmalloc(100000);
	kfree(p);
	p = launder(p);
	if (level == 1) {
		/* Zeroed and released at once: a later large object reuses it
		 * zeroed. */
		assert_int_equal(fx_first_nonzero(p, 100000), (size_t)-1);
		return;
	}
	p[5000] = 1;
	kmem_reclaim();
	fx_expect_fault_at(KMEM_FAULT_USE_AFTER_FREE, p);
}

/* ---- zero-size objects ---- */

static void test_zero_size_object(void **state)
{
	unsigned level = level_of(state);
	unsigned char *p = kmalloc(0), *q = kmalloc(0);
	assert_non_null(p);
	assert_ptr_not_equal(p, q);
	assert_int_equal(ksize(p), 0);
	if (level == 3) {
		assert_int_equal((uintptr_t)p % PAGE_SIZE, 0);
		assert_true(hooked_none((uintptr_t)p, PAGE_SIZE));
		assert_true(faults_in_child(read_byte, p));
		assert_true(faults_in_child(write_byte, p));
		kfree(p);
		/* Quarantined, still unmapped; kmem_reclaim maps it again. */
		assert_true(faults_in_child(read_byte, p));
		kmem_reclaim();
		assert_false(faults_in_child(read_byte, p));
	} else {
		/* A slot of canary: any write to it is found at kfree. */
		unsigned char save = p[0];
		p[0] = 0;
		kfree(p);
		fx_expect_fault_at(KMEM_FAULT_OVERFLOW, p);
		p[0] = save;
		kfree(p);
	}
	kfree(q);
}

/* ---- the quarantine ---- */

static void test_quarantine_object_bound(void **state)
{
	(void)state;
	enum { N = KMEM_QUARANTINE_OBJECTS + 10 };
	static void *objs[N];
	for (unsigned i = 0; i < N; i++)
		objs[i] = kmalloc(64);
	for (unsigned i = 0; i < N; i++) {
		kfree(objs[i]);
		assert_true(harden_.n <= KMEM_QUARANTINE_OBJECTS);
		assert_int_equal(harden_.n, i < KMEM_QUARANTINE_OBJECTS ? i + 1 : KMEM_QUARANTINE_OBJECTS);
		assert_int_equal(obj_state(objs[i]), OBJ_QUARANTINE);
		/* The oldest leaves first, once the ring is full. */
		if (i >= KMEM_QUARANTINE_OBJECTS)
			assert_int_equal(obj_state(objs[i - KMEM_QUARANTINE_OBJECTS]), OBJ_FREE);
	}
	/* Deterministic double free, however late (within the bound). */
	kfree(objs[N - 1]);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, objs[N - 1]);
	assert_int_equal(ksize(objs[N - 2]), 0);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, objs[N - 2]);
	fx_assert_check();
	kmem_reclaim();
	assert_int_equal(harden_.n, 0);
	assert_int_equal(harden_.bytes, 0);
	assert_int_equal(fx_class_stats(kmem_size_class(64 + KMEM_HARDEN_SLACK2)).spans, 0);
}

static void test_quarantine_byte_bound(void **state)
{
	(void)state;
	size_t n = 1 << 20;
	void *objs[12];
	for (int i = 0; i < 12; i++)
		objs[i] = kmalloc(n);
	uint64_t each = span_of_ptr(objs[0])->npages << PAGE_SHIFT;
	for (int i = 0; i < 12; i++) {
		kfree(objs[i]);
		assert_true(harden_.bytes <= KMEM_QUARANTINE_BYTES);
	}
	/* The newest that fit are held; the oldest went back to the mheap. */
	assert_int_equal(harden_.n, KMEM_QUARANTINE_BYTES / each);
	assert_int_equal(harden_.bytes, harden_.n * each);
	assert_null(span_of_ptr(objs[0]));
	/* Too big for it (over a quarter of the bound): freed at once. */
	uint64_t large_before = fx_stats().pages_large;
	void *big = kmalloc(KMEM_QUARANTINE_BYTES / 4 + 1);
	kfree(big);
	assert_int_equal(fx_stats().pages_large, large_before);
	kmem_reclaim();
	assert_int_equal(harden_.n, 0);
}

static void test_double_free_after_reuse(void **state)
{
	(void)state;
	static const size_t sizes[] = {8, 4096, 262144};
	for (int i = 0; i < 3; i++) {
		unsigned char *p = kmalloc(sizes[i]);
		kfree(p);
		void *held[100];
		for (int k = 0; k < 100; k++) {
			held[k] = kmalloc(sizes[i]);
			assert_ptr_not_equal(held[k], p); /* not reused meanwhile */
		}
		kfree(p);
		fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
		for (int k = 0; k < 100; k++)
			kfree(held[k]);
	}
}

static void test_quarantine_flushed_when_memory_runs_out(void **state)
{
	(void)state;
	enum { MAX = 128 };
	void *objs[MAX];
	int n = 0;
	while (n < MAX && (objs[n] = kmalloc(1 << 20)))
		n++;
	assert_true(n > 8 && n < MAX); /* the 64 MiB heap ran out */
	for (int i = 0; i < 4; i++)
		kfree(objs[i]);
	assert_int_equal(harden_.n, 4);
	/* Only the quarantined pages can serve this: it is emptied first. */
	objs[0] = kmalloc(1 << 20);
	assert_non_null(objs[0]);
	assert_int_equal(harden_.n, 0);
	kfree(objs[0]);
	for (int i = 4; i < n; i++)
		kfree(objs[i]);
}

static void test_quarantine_checked_by_kmem_check(void **state)
{
	(void)state;
	unsigned char *p = kmalloc(64);
	kfree(p);
	fx_assert_check();
	struct mspan *s = span_of_ptr(p);
	_Atomic uint8_t *st = &s->objstate[span_obj_index(s, (uintptr_t)p - s->base)];
	atomic_store(st, OBJ_CLIENT); /* as if the state byte were lost */
	assert_true(kmem_check() >= 1);
	assert_true(fx_fault_count() >= 1);
	assert_int_equal(fx_last_fault().kind, KMEM_FAULT_CORRUPT);
	fx_faults_reset();
	atomic_store(st, OBJ_QUARANTINE);
	fx_assert_check();
}

/* ---- guard pages ---- */

static void touch_before(volatile unsigned char *p)
{
	read_byte(p - 1);
}

static size_t touch_size; /* the object touch_after_page writes past */

static void touch_after_page(volatile unsigned char *p)
{
	/* Past the canary's page: the tail guard. */
	write_byte(p + ((touch_size + KMEM_HARDEN_SLACK2 + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)));
}

static void test_guard_pages(void **state)
{
	(void)state;
	assert_int_equal(kmem_harden_level(), 3);
	unsigned char *p = kmalloc(262144);
	touch_size = 262144;
	assert_false(faults_in_child(read_byte, p));
	assert_true(faults_in_child(touch_before, p));
	assert_true(faults_in_child(touch_after_page, p));
	kfree(p);
	/* Quarantined large objects are unmapped: use after free faults. */
	assert_true(faults_in_child(read_byte, p));
	assert_true(faults_in_child(write_byte, p + 100000));
	unsigned before = hook_n;
	kmem_reclaim();
	assert_true(hook_n > before); /* mapped again before the pages go back */
	assert_int_equal(hook_log[(hook_n - 1) % HOOK_LOG].access, KMEM_ACCESS_RW);
	p = kmalloc(262144);
	memset(p, 1, 262144); /* the pages work again */
	kfree(p);
	/* Above a page of alignment: a tail guard only. */
	p = kmalloc_aligned(100000, 1 << 16);
	assert_int_equal((uintptr_t)p % (1 << 16), 0);
	assert_ptr_equal(p, (unsigned char *)span_of_ptr(p)->base);
	touch_size = 100000;
	assert_true(faults_in_child(touch_after_page, p));
	kfree(p);
}

static void test_guards_refused_or_missing(void **state)
{
	(void)state;
	hook_refuse = true;
	unsigned char *z = kmalloc(0), *p = kmalloc(262144);
	/* Refused: a zero-size object is a page of canary, still caught. */
	assert_false(faults_in_child(read_byte, z));
	z[10] ^= 1;
	kfree(z);
	fx_expect_fault_at(KMEM_FAULT_OVERFLOW, z);
	z[10] ^= 1;
	kfree(z);
	touch_size = 262144;
	assert_false(faults_in_child(touch_before, p));
	assert_false(faults_in_child(touch_after_page, p));
	p[262144] ^= 1;
	kfree(p);
	fx_expect_fault_at(KMEM_FAULT_OVERFLOW, p);
	p[262144] ^= 1;
	kfree(p);
	hook_refuse = false;
	kmem_reclaim();
	/* No hook at all: level 3 is level 2. */
	kmem_set_protect_hook(NULL);
	assert_int_equal(kmem_harden_level(), 2);
	z = kmalloc(0);
	assert_int_equal(span_of_ptr(z)->state, SPAN_SMALL);
	kfree(z);
	/* And kmem_init clears the hook. */
	kmem_set_protect_hook(test_hook);
	fx_set_harden(3, SEED);
	fx_simple(64, 2);
	assert_int_equal(kmem_harden_level(), 2);
}

/* ---- aligned and reallocated objects ---- */

static void test_aligned_and_realloc(void **state)
{
	unsigned level = level_of(state);
	static const size_t aligns[] = {16, 64, 4096, 8192};
	for (int i = 0; i < 4; i++) {
		unsigned char *p = kmalloc_aligned(100, aligns[i]);
		assert_int_equal((uintptr_t)p % aligns[i], 0);
		assert_int_equal(ksize(p), 100);
		p[100] ^= 0x40;
		kfree(p);
		fx_expect_fault_at(KMEM_FAULT_OVERFLOW, p);
		p[100] ^= 0x40;
		kfree(p);
	}
	unsigned char *p = kmalloc(10);
	memcpy(p, "0123456789", 10);
	unsigned char *q = krealloc(p, 5000);
	assert_memory_equal(q, "0123456789", 10);
	assert_int_equal(fx_first_nonzero(q + 10, 4990), (size_t)-1);
	kfree(p); /* the old object was freed (level >= 2: quarantined) */
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, p);
	if (level >= 2)
		assert_int_equal(obj_state(p), OBJ_QUARANTINE);
	kfree(q);
}

/* ---- neighbour checks racing another CPU ---- */

#define RACE_OPS 60000
#define RING 64
static void *_Atomic ring[RING];
static _Atomic int race_done;

/* Producer: allocates, fills and hands objects over; frees every third
 * itself.  Consumer: checks and frees what it gets.  So frees on both
 * CPUs check neighbours that the other CPU is handing out, filling or
 * freeing at that moment. */
static void *producer(void *arg)
{
	(void)arg;
	host_cpu_claim(1);
	for (unsigned i = 0; i < RACE_OPS; i++) {
		size_t n = 24 + (i % 5) * 8;
		unsigned char *p = kmalloc(n);
		memset(p, (int)(i & 0xff) | 1, n);
		if (i % 3 == 0) {
			kfree(p);
			continue;
		}
		unsigned slot = i % RING;
		void *expect = NULL;
		while (!atomic_compare_exchange_weak(&ring[slot], &expect, p))
			expect = NULL;
	}
	atomic_store(&race_done, 1);
	host_cpu_release();
	return NULL;
}

static void test_neighbour_checks_race(void **state)
{
	(void)state;
	atomic_store(&race_done, 0);
	for (int i = 0; i < RING; i++)
		atomic_store(&ring[i], NULL);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, producer, NULL), 0);
	unsigned got = 0;
	for (unsigned slot = 0;; slot = (slot + 1) % RING) {
		void *p = atomic_exchange(&ring[slot], NULL);
		if (p) {
			kfree(p);
			got++;
		} else if (atomic_load(&race_done)) {
			bool empty = true;
			for (int i = 0; i < RING; i++)
				empty &= atomic_load(&ring[i]) == NULL;
			if (empty)
				break;
		}
	}
	pthread_join(t, NULL);
	assert_int_equal(got, RACE_OPS - (RACE_OPS + 2) / 3);
	fx_assert_no_faults(); /* no false report */
}

#define AT(f, l) cmocka_unit_test_prestate_setup_teardown(f, setup_level, teardown, &levels[l])

int main(void)
{
	const struct CMUnitTest tests[] = {
		AT(test_level0_is_the_normal_heap, 0),
		AT(test_bad_level_is_rejected, 2),
		AT(test_only_slow_paths, 1), AT(test_only_slow_paths, 2), AT(test_only_slow_paths, 3),
		AT(test_zeros_handed_out, 1), AT(test_zeros_handed_out, 2), AT(test_zeros_handed_out, 3),
		AT(test_read_after_free_reads_zeros, 1), AT(test_read_after_free_reads_zeros, 2),
		AT(test_read_after_free_reads_zeros, 3),
		AT(test_write_after_free_found, 1), AT(test_write_after_free_found, 2),
		AT(test_write_after_free_found, 3),
		AT(test_canary_checked_at_free, 1), AT(test_canary_checked_at_free, 2),
		AT(test_canary_checked_at_free, 3),
		AT(test_canary_and_zeros_in_kmem_check, 1), AT(test_canary_and_zeros_in_kmem_check, 2),
		AT(test_canary_and_zeros_in_kmem_check, 3),
		AT(test_span_tail_checked, 1), AT(test_span_tail_checked, 2),
		AT(test_underflow_found_at_free, 1), AT(test_underflow_found_at_free, 2),
		AT(test_underflow_found_at_free, 3),
		AT(test_overflow_past_slack, 1), AT(test_overflow_past_slack, 2),
		AT(test_head_slot_kept_zeroed, 2), AT(test_head_slot_kept_zeroed, 3),
		AT(test_large_object_layout, 1), AT(test_large_object_layout, 2),
		AT(test_large_object_layout, 3),
		AT(test_large_write_after_free, 1), AT(test_large_write_after_free, 2),
		AT(test_large_write_after_free, 3),
		AT(test_zero_size_object, 1), AT(test_zero_size_object, 2), AT(test_zero_size_object, 3),
		AT(test_quarantine_object_bound, 2), AT(test_quarantine_object_bound, 3),
		AT(test_quarantine_byte_bound, 2),
		AT(test_double_free_after_reuse, 2), AT(test_double_free_after_reuse, 3),
		AT(test_quarantine_flushed_when_memory_runs_out, 2),
		AT(test_quarantine_checked_by_kmem_check, 2),
		AT(test_guard_pages, 3),
		AT(test_guards_refused_or_missing, 3),
		AT(test_aligned_and_realloc, 1), AT(test_aligned_and_realloc, 2),
		AT(test_aligned_and_realloc, 3),
		AT(test_neighbour_checks_race, 2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
