/*
 * tests/test_nolock.c - kmalloc_nolock and kfree_nolock (mm/nolock.c):
 * which sources they take objects from (this CPU's magazine only when the
 * CPU is not inside the allocator, else the depot under a trylock), that
 * a busy depot lock makes them fail instead of wait, the bad frees they
 * report, hardened mode, and a simulated NMI: SIGUSR1 at a high rate into
 * threads that run kmalloc/kfree/kmem_cache_alloc/free, kpage_alloc, kmem_reclaim,
 * whose handler calls kmalloc_nolock/kfree_nolock.  The signal is not held
 * back by arch_irq_save (arch/host only simulates interrupts for
 * host_irq_raise), so it lands anywhere, locks held or not.  Built plain
 * (no arch_fast_enter: the depot only) and as test_nolock-fast.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "host.h"
#include "mtypes.h"
#include "objstate.h"

static const struct fx_heap heap = {64, 8};

#define T(fn) FX_TEST(fn, &heap, fx_teardown_all_back)

/* Frees 4 magazines' worth of `size` objects on this CPU: the loaded and
 * previous magazines end full, two full ones sit in the depot. */
static void fill_depot(size_t size)
{
	struct mcentral *c = fx_central(size);
	const size_t n = 4 * c->mag_cap;
	static void *obj[4 * MAG_CAP_MAX];
	for (size_t i = 0; i < n; i++)
		assert_non_null(obj[i] = kmalloc(size));
	for (size_t i = 0; i < n; i++)
		kfree(obj[i]);
	assert_int_equal(atomic_load(&c->depot.nfull), 2);
}

/* The depot: a busy lock gives NULL at once, a free lock an object from
 * the top full magazine, never its last one.  (With arch_fast_enter this
 * runs nested, as an interrupt inside the allocator does, and the CPU's
 * magazine is not touched.) */
static void test_depot_trylock(void **state)
{
	(void)state;
	const size_t size = 64;
	struct mcentral *c = fx_central(size);
	fill_depot(size);
	struct magazine *top = c->depot.full;
	const uint32_t n0 = top->n;
	static void *got[MAG_CAP_MAX];
	uint32_t ngot = 0;
#if KMEM_FAST_NESTING
	struct mag_slot before = mcache_of(0)->mag[c->sizeclass];
	unsigned long t = arch_fast_enter();
#endif
	atomic_store(&c->depot.lock.locked, 1); /* the interrupted code holds it */
	void *busy = kmalloc_nolock(size);
	atomic_store(&c->depot.lock.locked, 0);
	assert_null(busy);
	void *p = kmalloc_nolock(size);
	assert_ptr_equal(p, top->obj[n0 - 1]);
	assert_int_equal(top->n, n0 - 1);
	assert_int_equal(state_of(p), OBJ_CLIENT);
	memset(p, 0xa5, size);
	kfree_nolock(p);
	assert_int_equal(state_of(p), OBJ_FREE); /* to its span */
	while (top->n > 1)
		assert_non_null(got[ngot++] = kmalloc_nolock(size));
	/* The last object stays: the depot lists no empty "full" magazine
	 * (the next one down is not looked at). */
	assert_null(kmalloc_nolock(size));
	assert_int_equal(top->n, 1);
	assert_int_equal(ngot, n0 - 2);
#if KMEM_FAST_NESTING
	assert_memory_equal(&mcache_of(0)->mag[c->sizeclass], &before, sizeof before);
	arch_fast_exit(t);
#endif
	fx_assert_check();
	for (uint32_t i = 0; i < ngot; i++)
		kfree_nolock(got[i]);
}

/* With the depot empty, a listed span with room becomes the depot's
 * shared span -- only if the mcentral's lock is free: busy, NULL. */
static void test_trade_for_listed_span(void **state)
{
	(void)state;
	const size_t size = 1024;
	struct mcentral *c = fx_central(size);
	const unsigned n = 3 * c->nelems;
	void *obj[3 * 64];
	assert_true(n <= 3 * 64);
	for (unsigned i = 0; i < n; i++)
		assert_non_null(obj[i] = kmalloc(size));
	for (unsigned i = 0; i < n; i += 2) {
		kfree(obj[i]);
		obj[i] = NULL;
	}
	kmem_reclaim(); /* magazines and depots empty, spans swept: partial */
	assert_non_null(c->partial.first);
	assert_null(c->depot.shared);
	atomic_store(&c->lock.locked, 1);
	void *busy = kmalloc_nolock(size);
	atomic_store(&c->lock.locked, 0);
	assert_null(busy);
	assert_null(c->depot.shared);
	void *p = kmalloc_nolock(size);
	assert_non_null(p);
	assert_non_null(c->depot.shared);
	assert_ptr_equal(span_of_ptr(p), c->depot.shared);
	assert_int_equal(state_of(p), OBJ_CLIENT);
	fx_assert_check();
	kfree_nolock(p);
	for (unsigned i = 0; i < n; i++)
		kfree(obj[i]);
}

#if KMEM_FAST_NESTING
/* Outside the allocator the CPU's own loaded magazine serves first, and
 * a free goes back into it, exactly as kmalloc/kfree. */
static void test_own_magazine_outside_allocator(void **state)
{
	(void)state;
	const size_t size = 200;
	struct mcentral *c = fx_central(size);
	void *p = kmalloc(size);
	kfree(p);
	struct mag_slot *ms = &mcache_of(0)->mag[c->sizeclass];
	void **top = ms->top;
	void *q = kmalloc_nolock(size);
	assert_ptr_equal(q, p);
	assert_ptr_equal(ms->top, top - 1);
	assert_int_equal(state_of(q), OBJ_CLIENT);
	kfree_nolock(q);
	assert_ptr_equal(ms->top, top);
	assert_int_equal(state_of(q), ms->id);
	assert_ptr_equal(kmalloc(size), p);
	kfree(p);
	assert_int_equal(host_fast_depth, 0);
}

/* Nested in this CPU's fast path the magazine is left alone: a fresh
 * class has no depot objects, so NULL -- until a nested kmalloc gave the
 * depot a shared span, which kmalloc_nolock then uses too. */
static void test_nested_uses_shared_span(void **state)
{
	(void)state;
	const size_t size = 512;
	struct mcentral *c = fx_central(size);
	void *warm = kmalloc(size);
	kfree(warm);
	struct mag_slot before = mcache_of(0)->mag[c->sizeclass];
	unsigned long t = arch_fast_enter();
	assert_null(kmalloc_nolock(size));
	void *p = kmalloc(size); /* nested: from the shared span */
	assert_non_null(c->depot.shared);
	void *q = kmalloc_nolock(size);
	assert_non_null(q);
	assert_ptr_equal(span_of_ptr(q), c->depot.shared);
	assert_int_equal(state_of(q), OBJ_CLIENT);
	kfree_nolock(q);
	kfree(p);
	assert_memory_equal(&mcache_of(0)->mag[c->sizeclass], &before, sizeof before);
	arch_fast_exit(t);
}
#else
/* Without arch_fast_enter nothing says whether the interrupted code is
 * inside its magazine: kmalloc_nolock never touches it (NULL here, with
 * an object waiting there), kfree_nolock frees to the span. */
static void test_no_magazine_without_nesting(void **state)
{
	(void)state;
	const size_t size = 200;
	struct mcentral *c = fx_central(size);
	void *p = kmalloc(size);
	kfree(p);
	struct mag_slot before = mcache_of(0)->mag[c->sizeclass];
	assert_int_equal(state_of(p), before.id);
	assert_null(kmalloc_nolock(size));
	void *q = kmalloc(size);
	assert_ptr_equal(q, p);
	kfree_nolock(q);
	assert_int_equal(state_of(q), OBJ_FREE);
}
#endif

/* What kfree_nolock refuses, each reported and changing nothing; and
 * sizes kmalloc_nolock does not serve. */
static void test_bad_frees_and_sizes(void **state)
{
	(void)state;
	kfree_nolock(NULL);
	fx_assert_no_faults();
	assert_null(kmalloc_nolock(KMEM_SMALL_MAX + 1));
	assert_null(kmalloc_nolock((size_t)-1));

	void *big = kmalloc(3 * KMEM_SMALL_MAX);
	kfree_nolock(big);
	fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, big);
	assert_true(ksize(big) >= 3 * KMEM_SMALL_MAX); /* still live */
	kfree(big);
	void *run = kpage_alloc(2, KMEM_PAGE_SIZE, 0);
	assert_non_null(run);
	kfree_nolock(run);
	fx_expect_fault_at(KMEM_FAULT_WRONG_KIND, run);
	kpage_free(run, 2);

	char *o = kmalloc(64);
	kfree_nolock(o + 8);
	fx_expect_fault_at(KMEM_FAULT_INTERIOR, o + 8);
	kfree_nolock(o);
	fx_assert_no_faults();
	kfree_nolock(o);
	fx_expect_fault_at(KMEM_FAULT_DOUBLE_FREE, o);
	kfree_nolock(fx_virt(FX_SIMPLE_BASE - 4096)); /* not managed */
	fx_expect_fault(KMEM_FAULT_WILD);

	/* Object caches' objects are small objects too. */
	struct kmem_cache *kc = kmem_cache_create("nolock", 48, 8, NULL);
	void *co = kmem_cache_alloc(kc);
	kfree_nolock(co);
	fx_assert_no_faults();
	fx_cache_destroy_empty(kc);
}

/* Hardened mode: kmalloc_nolock always fails; kfree_nolock frees with
 * the level's checks (zero on free, canaries), no quarantine. */
static int setup_hardened(void **state)
{
	(void)state;
	fx_set_harden(2, 0x5eed);
	fx_simple(64, 8);
	return 0;
}

static int teardown_hardened(void **state)
{
	fx_set_harden(0, 0);
	return fx_teardown_all_back(state);
}

static void test_hardened(void **state)
{
	(void)state;
	void *p = kmalloc(64);
	kfree(p);
	assert_null(kmalloc_nolock(64));
	char *q = kmalloc(100);
	memset(q, 0x77, 100);
	kfree_nolock(q);
	fx_assert_no_faults();
	assert_int_not_equal(state_of(q), OBJ_CLIENT);
	assert_int_not_equal(state_of(q), OBJ_QUARANTINE);
	assert_int_equal(fx_first_nonzero(q, 100), (size_t)-1); /* zeroed on free */
	char *r = kmalloc(100);
	r[100 + 3] = 1; /* into the canary after it */
	kfree_nolock(r);
	fx_expect_fault(KMEM_FAULT_OVERFLOW);
	r[100 + 3] = (char)canary_byte((size_t)(100 + 3));
	kfree(r);
	fx_assert_check();
}

/* ------------------------------------------------------------------------
 * The simulated NMI.
 */

#define NMI_WORKERS 3
#define NMI_STASH 16
#define NMI_KEEP 64

struct nmi_worker {
	int cpu;
	pthread_t th;
	_Atomic bool ready;
	void *_Atomic gift;            /* a thread object handed to the handler */
	/* the handler's own (SIGUSR1 is blocked while it runs) */
	uint64_t rng;
	void *stash[NMI_STASH];
	size_t stash_size[NMI_STASH];
	_Atomic unsigned long signals, inside, ok, null, freed, gifts, ops;
};

static struct {
	uint64_t deadline;
	struct kmem_cache *kc;
	_Atomic bool stop, may_exit;
	_Atomic unsigned long errors;
	const void *_Atomic bad;
	struct nmi_worker w[NMI_WORKERS];
} nx;

static _Thread_local struct nmi_worker *nmi_self;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xrand(uint64_t *r)
{
	return fx_mix64(++*r);
}

static void nmi_error(const void *p)
{
	atomic_fetch_add(&nx.errors, 1);
	atomic_store(&nx.bad, p);
}

static const size_t nmi_sizes[] = {8, 16, 64, 64, 200, 512, 1024, 3000};

/* The "NMI handler": async-signal-safe, allocator calls only through the
 * nolock pair. */
static void nmi_signal(int sig)
{
	(void)sig;
	int e = errno;
	struct nmi_worker *w = nmi_self;
	if (!w) {
		errno = e;
		return;
	}
	atomic_fetch_add_explicit(&w->signals, 1, memory_order_relaxed);
#if KMEM_FAST_NESTING
	bool in = host_fast_depth != 0 || host_irq_disabled();
#else
	bool in = host_irq_disabled();
#endif
	if (in)
		atomic_fetch_add_explicit(&w->inside, 1, memory_order_relaxed);
	for (int k = 0; k < 2; k++) {
		uint64_t r = xrand(&w->rng);
		size_t size = nmi_sizes[r % 8];
		void *p = kmalloc_nolock(size);
		if (!p) {
			atomic_fetch_add_explicit(&w->null, 1, memory_order_relaxed);
			continue;
		}
		atomic_fetch_add_explicit(&w->ok, 1, memory_order_relaxed);
		fx_fill(p, size, (uintptr_t)p);
		unsigned i = (unsigned)(r >> 32) % NMI_STASH;
		if (w->stash[i]) {
			if (fx_check(w->stash[i], w->stash_size[i], (uintptr_t)w->stash[i]) != (size_t)-1)
				nmi_error(w->stash[i]);
			kfree_nolock(w->stash[i]);
			atomic_fetch_add_explicit(&w->freed, 1, memory_order_relaxed);
		}
		w->stash[i] = p;
		w->stash_size[i] = size;
	}
	void *g = atomic_exchange(&w->gift, NULL);
	if (g) {
		if (fx_check(g, 32, (uintptr_t)g) != (size_t)-1)
			nmi_error(g);
		kfree_nolock(g);
		atomic_fetch_add_explicit(&w->gifts, 1, memory_order_relaxed);
	}
	errno = e;
}

/* The interrupted code: every kind of allocator call, locks taken. */
static void *nmi_thread(void *arg)
{
	struct nmi_worker *w = arg;
	host_cpu_claim(w->cpu);
	w->rng = (uint64_t)w->cpu << 40;
	nmi_self = w;
	atomic_store(&w->ready, true);
	void *keep[NMI_KEEP] = {0};
	size_t keep_size[NMI_KEEP] = {0};
	static _Thread_local void *batch[1200];
	uint64_t rng = (uint64_t)w->cpu;
	unsigned long ops = 0;
	while (now_ns() < nx.deadline && !atomic_load(&nx.errors)) {
		uint64_t r = xrand(&rng);
		unsigned i = (unsigned)(r % NMI_KEEP);
		if (keep[i]) {
			if (fx_check(keep[i], keep_size[i], (uintptr_t)keep[i]) != (size_t)-1)
				nmi_error(keep[i]);
			kfree(keep[i]);
			keep[i] = NULL;
		}
		size_t size = r % 16 == 0 ? KMEM_SMALL_MAX + (r >> 20) % 9000 : nmi_sizes[(r >> 8) % 8];
		if ((keep[i] = kmalloc(size)) == NULL) {
			nmi_error(NULL);
			break;
		}
		keep_size[i] = size < 256 ? size : 256;
		fx_fill(keep[i], keep_size[i], (uintptr_t)keep[i]);
		void *c = kmem_cache_alloc(nx.kc);
		kmem_cache_free(nx.kc, c);
		if (r % 4 == 0) {
			void *g = kmalloc(32 + (r >> 24) % 200);
			fx_fill(g, 32, (uintptr_t)g);
			void *old = atomic_exchange(&w->gift, g);
			kfree(old);
		}
		if (ops % 512 == 0) { /* magazines to the depot and back */
			size_t n = 600 + (r >> 12) % 600, bs = nmi_sizes[(r >> 4) % 8];
			for (size_t k = 0; k < n; k++)
				batch[k] = kmalloc(bs);
			for (size_t k = 0; k < n; k++)
				kfree(batch[k]);
		}
		if (ops % 1024 == 1) {
			void *run = kpage_alloc(1 + (r >> 30) % 4, KMEM_PAGE_SIZE, 0);
			kpage_free(run, 1 + (r >> 30) % 4);
		}
		if (ops % 4096 == 2)
			kmem_reclaim();
		ops++;
	}
	atomic_store(&w->ops, ops);
	while (!atomic_load(&nx.may_exit))
		usleep(100);
	nmi_self = NULL;
	for (unsigned i = 0; i < NMI_KEEP; i++)
		kfree(keep[i]);
	return NULL;
}

static void *nmi_sender(void *arg)
{
	(void)arg;
	unsigned k = 0;
	while (!atomic_load(&nx.stop)) {
		struct nmi_worker *w = &nx.w[k++ % NMI_WORKERS];
		if (atomic_load(&w->ready))
			pthread_kill(w->th, SIGUSR1);
		if (k % NMI_WORKERS == 0)
			usleep(2);
	}
	return NULL;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "test_nolock: timed out (deadlock?)\n";
	if (write(2, msg, sizeof msg - 1) < 0)
		_exit(2);
	_exit(1);
}

static void test_simulated_nmi(void **state)
{
	(void)state;
	double secs = (double)fx_env_u64("NOLOCK_MS", 2000) / 1000.0;
	signal(SIGALRM, on_alarm);
	alarm((unsigned)secs + 120);
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = nmi_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	memset(&nx, 0, sizeof nx);
	nx.kc = kmem_cache_create("nmi", 40, 8, NULL);
	assert_non_null(nx.kc);
	nx.deadline = now_ns() + (uint64_t)(secs * 1e9);
	for (int i = 0; i < NMI_WORKERS; i++) {
		nx.w[i].cpu = 1 + i;
		assert_int_equal(pthread_create(&nx.w[i].th, NULL, nmi_thread, &nx.w[i]), 0);
	}
	pthread_t sender;
	assert_int_equal(pthread_create(&sender, NULL, nmi_sender, NULL), 0);
	while (now_ns() < nx.deadline)
		usleep(10000);
	/* Every worker is past its loop before the signals stop. */
	for (int i = 0; i < NMI_WORKERS; i++)
		while (!atomic_load(&nx.w[i].ops) && !atomic_load(&nx.errors))
			usleep(1000);
	atomic_store(&nx.stop, true);
	pthread_join(sender, NULL);
	atomic_store(&nx.may_exit, true);
	for (int i = 0; i < NMI_WORKERS; i++)
		pthread_join(nx.w[i].th, NULL);
	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
	alarm(0);
	if (atomic_load(&nx.errors))
		fail_msg("%lu corrupted or failed objects (last %p)", atomic_load(&nx.errors),
		         atomic_load(&nx.bad));

	unsigned long sig = 0, in = 0, ok = 0, null = 0, freed = 0, gifts = 0, ops = 0;
	for (int i = 0; i < NMI_WORKERS; i++) {
		struct nmi_worker *w = &nx.w[i];
		sig += w->signals;
		in += w->inside;
		ok += w->ok;
		null += w->null;
		freed += w->freed;
		gifts += w->gifts;
		ops += w->ops;
		for (unsigned k = 0; k < NMI_STASH; k++)
			if (w->stash[k]) {
				assert_int_equal(fx_check(w->stash[k], w->stash_size[k],
				                          (uintptr_t)w->stash[k]),
				                 (size_t)-1);
				kfree(w->stash[k]);
			}
		kfree(atomic_load(&w->gift));
	}
	print_message("nolock NMI (%s): %lu signals, %lu inside the allocator; kmalloc_nolock "
	              "%lu ok, %lu NULL; kfree_nolock %lu own + %lu thread objects; %lu worker "
	              "loops\n",
	              KMEM_FAST_NESTING ? "arch_fast_enter" : "no nesting hooks", sig, in, ok,
	              null, freed, gifts, ops);
	assert_true(sig > 1000);
	assert_true(ok + null == 2 * sig);
	assert_true(gifts > 0);
	assert_true(ok > 0);
#ifndef __SANITIZE_THREAD__
	/* (TSan holds signals back to its own safe points.) */
	assert_true(in > 0);
#endif
	fx_assert_check();
	fx_cache_destroy_empty(nx.kc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_depot_trylock),
		T(test_trade_for_listed_span),
#if KMEM_FAST_NESTING
		T(test_own_magazine_outside_allocator),
		T(test_nested_uses_shared_span),
#else
		T(test_no_magazine_without_nesting),
#endif
		T(test_bad_frees_and_sizes),
		cmocka_unit_test_setup_teardown(test_hardened, setup_hardened, teardown_hardened),
		T(test_simulated_nmi),
	};
	if (getenv("NOLOCK_TEST")) /* e.g. NOLOCK_TEST=test_simulated_nmi */
		cmocka_set_test_filter(getenv("NOLOCK_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
