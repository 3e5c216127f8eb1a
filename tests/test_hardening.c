/*
 * tests/test_hardening.c - what a client bug cannot do, in the normal
 * build: overflows across whole spans leave the allocator intact (there is
 * no metadata in spans to hit); per-cache debug at run time; the OOM hook
 * runs outside every lock and can add memory for a retry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixture.h"
#include "mtypes.h"

static const struct fx_heap heap = {64, 2};
#define T(fn) FX_TEST(fn, &heap, NULL)

/* Fill many small spans of several classes completely, then scribble over
 * every byte of every one of their pages (every object, and the tail past
 * the last one): the checker still passes and the heap goes on working. */
static void test_overflow_across_whole_spans(void **state)
{
	(void)state;
	static void *objs[20000];
	size_t n = 0;
	const size_t sizes[] = {8, 48, 256, 1000, 3000};
	for (size_t k = 0; k < 5; k++)
		for (size_t i = 0; i < 4000 && n < 20000; i++)
			assert_non_null(objs[n++] = kmalloc(sizes[k]));
	struct kmem_stats before = fx_stats();
	assert_true(before.pages_small > 100);
	/* Scribble over every page of every span holding our objects. */
	for (size_t i = 0; i < n; i++) {
		struct mspan *s = span_of_ptr(objs[i]);
		memset((void *)s->base, 0xa5, s->npages * KMEM_PAGE_SIZE);
	}
	fx_assert_check();
	/* The allocator keeps working: free all, allocate again, all back. */
	for (size_t i = 0; i < n; i++)
		kfree(objs[i]);
	fx_assert_no_faults();
	for (size_t i = 0; i < n; i++)
		assert_non_null(objs[i] = kmalloc(sizes[i % 5]));
	for (size_t i = 0; i < n; i++)
		kfree(objs[i]);
	fx_assert_no_faults();
	fx_assert_all_back();
}

static void test_cache_debug_at_run_time(void **state)
{
	(void)state;
	struct kmem_cache *plain = kmem_cache_create("plain", 40, 0, NULL);
	struct kmem_cache *dbg = kmem_cache_create_debug("dbg", 40, 0, NULL, KMEM_DEBUG_ALL);
	assert_non_null(plain);
	assert_non_null(dbg);
	assert_null(kmem_cache_create_debug("bad", 40, 0, NULL, 0x100));
	unsigned char *p = kmem_cache_alloc(plain), *q = kmem_cache_alloc(dbg);
	assert_int_equal(ksize(p), 40);
	assert_int_equal(ksize(q), 40); /* the size asked, not the slot */
	p[40] = 1;                      /* inside the plain slot: not seen */
	q[40] = 1;                      /* the debug cache's red zone */
	kmem_cache_free(plain, p);
	fx_assert_no_faults();
	kmem_cache_free(dbg, q);
	fx_expect_fault_at(KMEM_FAULT_OVERFLOW, q);
	/* The bad free did nothing: the cache still has a live object. */
	assert_int_equal(kmem_cache_destroy(dbg), -KMEM_EBUSY);
	q[40] = POISON_REDZONE; /* mended: now it frees */
	kmem_cache_free(dbg, q);
	fx_assert_no_faults();
	assert_int_equal(q[0], POISON_FREE); /* poisoned at free */
	assert_int_equal(kmem_cache_destroy(plain), 0);
	assert_int_equal(kmem_cache_destroy(dbg), 0);
	fx_assert_all_back();
}

/* Every misuse, one after the other: each is reported once with its kind,
 * address, span and class, and leaves the heap exactly as it was. */
static void expect_misuse(enum kmem_fault_kind kind, const void *addr, bool has_span)
{
	struct fx_fault f = fx_last_fault();
	fx_expect_fault_at(kind, addr);
	if (has_span) {
		assert_true(f.span_base != 0);
		assert_true((uintptr_t)addr >= f.span_base);
	} else {
		assert_int_equal(f.span_base, 0);
	}
}

static void test_misuse_catalogue(void **state)
{
	(void)state;
	struct kmem_cache *ca = kmem_cache_create("cache-a", 72, 0, NULL);
	struct kmem_cache *cb = kmem_cache_create("cache-b", 72, 0, NULL);
	struct kmem_cache *gone = kmem_cache_create("gone", 72, 0, NULL);
	unsigned char *obj = kmalloc(100), *freed = kmalloc(100), *big = kmalloc(100000);
	void *run = kpage_alloc(4, 0x1000, 0), *ao = kmem_cache_alloc(ca);
	void *gone_obj = kmem_cache_alloc(gone);
	kfree(freed);
	kmem_cache_free(gone, gone_obj);
	assert_int_equal(kmem_cache_destroy(gone), 0);
	kmem_reclaim();
	struct kmem_stats before = fx_stats();
	int local;

	kfree(freed);
	expect_misuse(KMEM_FAULT_DOUBLE_FREE, freed, true);
	assert_null(krealloc(freed, 300)); /* realloc of a freed pointer */
	expect_misuse(KMEM_FAULT_DOUBLE_FREE, freed, true);
	kfree(obj + 8);
	expect_misuse(KMEM_FAULT_INTERIOR, obj + 8, true);
	kfree(big + 4096);
	expect_misuse(KMEM_FAULT_INTERIOR, big + 4096, true);
	kfree(&local);
	expect_misuse(KMEM_FAULT_WILD, &local, false);
	kfree(run);
	expect_misuse(KMEM_FAULT_WRONG_KIND, run, true);
	kpage_free(big, 25);
	expect_misuse(KMEM_FAULT_WRONG_KIND, big, true);
	kpage_free(run, 3);
	expect_misuse(KMEM_FAULT_BAD_SIZE, run, true);
	kmem_cache_free(cb, ao);
	struct fx_fault f = fx_last_fault();
	assert_string_equal(f.cache, "cache-a"); /* the object's own cache */
	assert_int_equal(f.kind, KMEM_FAULT_WRONG_CACHE);
	fx_faults_reset();
	kmem_cache_free(ca, obj);
	expect_misuse(KMEM_FAULT_WRONG_CACHE, obj, true);
	kmem_cache_free(ca, big); /* a large kmalloc object (found by the fuzzer) */
	expect_misuse(KMEM_FAULT_WRONG_CACHE, big, true);
	kmem_cache_free(ca, run);
	expect_misuse(KMEM_FAULT_WRONG_KIND, run, true);
	kmem_cache_free(gone, gone_obj); /* after its cache was destroyed */
	fx_expect_fault(KMEM_FAULT_WRONG_CACHE);
	kfree(gone_obj);                 /* its span went back to the mheap */
	fx_expect_fault_at(KMEM_FAULT_FREE_PAGE, gone_obj);

	/* Nothing changed. */
	struct kmem_stats after = fx_stats();
	assert_memory_equal(&before, &after, sizeof before);
	fx_assert_check();
	kfree(obj);
	kfree(big);
	kpage_free(run, 4);
	kmem_cache_free(ca, ao);
	assert_int_equal(kmem_cache_destroy(ca), 0);
	assert_int_equal(kmem_cache_destroy(cb), 0);
	fx_assert_no_faults();
	fx_assert_all_back();
}

/* The default hook: one clear line, then the system stops (arch_panic). */
static void test_default_hook_panics_with_one_line(void **state)
{
	(void)state;
	void *p = kmalloc(48);
	kfree(p);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 2);
		kmem_set_fault_hook(NULL);
		kfree(p);
		_exit(0); /* not reached: the default hook does not return */
	}
	close(fds[1]);
	char buf[512] = {0};
	ssize_t n, got = 0;
	while ((n = read(fds[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
		got += n;
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	char want[64];
	snprintf(want, sizeof want, "double free at %p", p);
	assert_non_null(strstr(buf, want));
	assert_non_null(strstr(buf, "class "));
	assert_int_equal(strchr(buf, '\n') - buf, (long)strlen(buf) - 1); /* one line */
}

/* ---- OOM hook ---- */

static unsigned hook_calls;
static bool hook_adds;
static uint64_t next_add;

static struct kmem_oom_request last_req;

static bool oom_hook(const struct kmem_oom_request *req)
{
	hook_calls++;
	last_req = *req;
	assert_true(req->bytes > 0 && req->run_pages > 0 && req->attempt >= 1);
	/* No allocator lock is held: these take mheap.lock and a CPU cache. */
	struct kmem_stats st = fx_stats();
	assert_true(st.pages_managed > 0);
	if (!hook_adds)
		return false;
	hook_adds = false;
	fx_usable(next_add, 16 * FX_MIB);
	struct kmem_region r = {next_add, 16 * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_true(kmem_hot_add(&r) > 0);
	next_add += 16 * FX_MIB;
	return true;
}

static void test_oom_hook_adds_memory(void **state)
{
	(void)state;
	fx_reserve(FX_GIB);
	struct kmem_region r = {FX_SIMPLE_BASE, 8 * FX_MIB, KMEM_REGION_USABLE, 0};
	assert_int_equal(fx_init(&r, 1, 1), 0);
	next_add = 512 * FX_MIB;
	kmem_set_oom_hook(oom_hook);
	hook_calls = 0;
	hook_adds = false;
	/* Without help, the heap runs out and the hook is asked each time. */
	static void *held[4096];
	size_t n = 0;
	while (n < 4096 && (held[n] = kmalloc(64 * 1024)))
		n++;
	assert_true(n < 4096);
	assert_int_equal(hook_calls, 1);
	assert_int_equal(last_req.kind, KMEM_OOM_OBJECT);
	assert_int_equal(last_req.bytes, 64 * 1024);
	assert_int_equal(last_req.attempt, 1);
	assert_true(last_req.run_pages >= 16);
	uint64_t managed = fx_stats().pages_managed;
	/* With help: the same call succeeds after a hot-add. */
	hook_adds = true;
	void *more = kmalloc(64 * 1024);
	assert_non_null(more);
	assert_int_equal(hook_calls, 2);
	assert_true(fx_stats().pages_managed > managed);
	assert_true(kmem_virt_to_phys(more) >= 512 * FX_MIB);
	/* Every allocation path asks the hook. */
	hook_calls = 0;
	hook_adds = false;
	while (kpage_alloc(64, 0x1000, 0))
		;
	assert_int_equal(hook_calls, 1);
	assert_int_equal(last_req.kind, KMEM_OOM_PAGES);
	assert_int_equal(last_req.run_pages, 64);
	kfree(more);
	for (size_t i = 0; i < n; i++)
		kfree(held[i]);
	kmem_set_oom_hook(NULL);
	fx_assert_no_faults();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_overflow_across_whole_spans),
		T(test_cache_debug_at_run_time),
		T(test_misuse_catalogue),
		T(test_default_hook_panics_with_one_line),
		cmocka_unit_test(test_oom_hook_adds_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
