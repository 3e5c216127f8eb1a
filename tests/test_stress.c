/*
 * tests/test_stress.c - multi-threaded stress with cross-thread frees and
 * simulated interrupts that allocate.
 *
 * Four threads, each on its own CPU slot (host_cpu_claim(i)), allocate and
 * free random small and large kmalloc objects and objects of two shared
 * object caches.  About half of what a thread frees it hands to the next
 * thread through a mutex-protected queue, which verifies the fill pattern
 * and frees it there (the lock-free remote free path).  Interrupts:
 *   - each thread raises host_irq_raise() itself at random points, some of
 *     them with interrupts disabled (held pending, run by the restore);
 *   - a signaller thread sends SIGUSR1 at random moments, whose handler
 *     raises the interrupt asynchronously, i.e. possibly in the middle of
 *     the allocator's fast path (the arch layer then holds it pending).
 * The interrupt handler allocates, verifies and frees a few objects.
 *
 * At the end every thread frees what it holds and releases its CPU; the
 * main thread reclaims and checks that every page came back and
 * kmem_check() is clean.  Bounded in time.
 *
 *   SPANALLOC_STRESS_SECS=n     work phase length (default 3)
 *   SPANALLOC_STRESS_SIGNALS=0  no asynchronous (signal) interrupts
 *   SPANALLOC_SEED=n            seed for the threads' random choices
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "host.h"
#include "spanalloc.h"
#include "spanalloc/arch.h"

#define NT 4
#define HEAP_MIB 128
#define LOCAL_MAX 2048
#define QUEUE_MAX 8192
#define STASH_MAX 16
#define LARGE_BYTES_MAX (4 * FX_MIB)
#define QUEUE_BYTES_MAX (4 * FX_MIB)

enum kind { K_SMALL, K_LARGE, K_CACHE_A, K_CACHE_B };

struct obj {
	unsigned char *p;
	size_t size;
	uint64_t id;
	int kind;
};

struct queue {
	pthread_mutex_t m;
	struct obj *v;
	size_t n;
	size_t bytes; /* bounded, so a descheduled receiver cannot starve the heap */
};

struct worker {
	int idx;
	pthread_t th;
	uint64_t rng;
	uint64_t next_id;
	struct obj local[LOCAL_MAX];
	size_t nlocal;
	uint64_t large_bytes;
	struct queue q;
	/* interrupt-context state: touched only by the irq handler */
	struct obj stash[STASH_MAX];
	size_t nstash;
	uint64_t irq_rng;
	uint64_t irq_next_id;
	/* results */
	unsigned long ops, allocs, frees, passed, received, irqs, irqs_off_raised;
	atomic_ulong irq_runs;
	atomic_int failed;
	char msg[256];
	int cpu;
};

static struct worker workers[NT];
static struct kmem_cache *cache_a, *cache_b;
static pthread_barrier_t bar_work_done, bar_drained;
static struct timespec deadline;
static atomic_bool stop_signals;
static uint64_t seed;

static const size_t size_a = 72, size_b = 500;

static void ctor_a(void *o)
{
	memset(o, 0xAB, 8);
}

static uint64_t rnd(uint64_t *s)
{
	*s += 0x9E3779B97F4A7C15ull;
	return fx_mix64(*s);
}

static void fail_w(struct worker *w, const char *fmt, ...)
{
	int expect = 0;
	if (!atomic_compare_exchange_strong(&w->failed, &expect, 1))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof w->msg, fmt, ap);
	va_end(ap);
}

static bool past_deadline(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline.tv_sec ||
	       (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

/* ---- objects ---- */

static size_t small_size(uint64_t *s)
{
	uint64_t r = rnd(s) % 100;
	if (r < 60)
		return 1 + rnd(s) % 128;
	if (r < 90)
		return 129 + rnd(s) % 896;
	return 1025 + rnd(s) % 1024;
}

static bool make(struct worker *w, uint64_t *rng, uint64_t *idc, int kind,
                 struct obj *o)
{
	unsigned char *p = NULL;
	size_t size = 0;
	switch (kind) {
	case K_SMALL:
		size = small_size(rng);
		p = (rnd(rng) & 7) ? kmalloc(size) : kzalloc(size);
		break;
	case K_LARGE:
		size = KMEM_SMALL_MAX + 1 + rnd(rng) % (200 * 1024);
		p = kmalloc(size);
		break;
	case K_CACHE_A:
		size = size_a;
		p = kmem_cache_alloc(cache_a);
		break;
	case K_CACHE_B:
		size = size_b;
		p = kmem_cache_alloc(cache_b);
		break;
	}
	if (!p) {
		fail_w(w, "allocation of kind %d size %zu returned NULL", kind, size);
		return false;
	}
	uintptr_t align = kind == K_LARGE ? KMEM_PAGE_SIZE : 8;
	if (kind == K_CACHE_B)
		align = 64;
	if ((uintptr_t)p % align) {
		fail_w(w, "object %p of kind %d misaligned", (void *)p, kind);
		return false;
	}
	o->p = p;
	o->size = size;
	o->id = ((uint64_t)(w->idx + 1) << 56) | (*idc)++;
	o->kind = kind;
	fx_fill(p, size, o->id);
	return true;
}

static void destroy(struct worker *w, const struct obj *o, const char *where)
{
	size_t bad = fx_check(o->p, o->size, o->id);
	if (bad != (size_t)-1)
		fail_w(w, "%s: object %#llx at %p (kind %d, size %zu) corrupt at byte %zu",
		       where, (unsigned long long)o->id, (void *)o->p, o->kind, o->size, bad);
	switch (o->kind) {
	case K_SMALL:
	case K_LARGE:
		kfree(o->p);
		break;
	case K_CACHE_A:
		if (o->id & 1)
			kmem_cache_free(cache_a, o->p);
		else
			kfree(o->p);
		break;
	case K_CACHE_B:
		kmem_cache_free(cache_b, o->p);
		break;
	}
}

/* ---- queues ---- */

static bool push(struct worker *to, const struct obj *o)
{
	bool ok = false;
	pthread_mutex_lock(&to->q.m);
	if (to->q.n < QUEUE_MAX && to->q.bytes + o->size <= QUEUE_BYTES_MAX) {
		to->q.v[to->q.n++] = *o;
		to->q.bytes += o->size;
		ok = true;
	}
	pthread_mutex_unlock(&to->q.m);
	return ok;
}

static void drain_queue(struct worker *w)
{
	struct obj batch[256];
	for (;;) {
		size_t n = 0;
		pthread_mutex_lock(&w->q.m);
		while (w->q.n && n < 256) {
			batch[n] = w->q.v[--w->q.n];
			w->q.bytes -= batch[n++].size;
		}
		pthread_mutex_unlock(&w->q.m);
		if (!n)
			return;
		for (size_t i = 0; i < n; i++) {
			destroy(w, &batch[i], "cross-thread free");
			w->received++;
		}
	}
}

/* ---- interrupts ---- */

static void irq_handler(void *arg)
{
	struct worker *w = arg;
	atomic_fetch_add_explicit(&w->irq_runs, 1, memory_order_relaxed);
	if (!host_irq_disabled())
		fail_w(w, "interrupt handler runs with interrupts on");
	/* allocate a few, keep some across interrupts, free some */
	unsigned n = 1 + (unsigned)(rnd(&w->irq_rng) % 3);
	for (unsigned i = 0; i < n; i++) {
		struct obj o;
		int kind = (rnd(&w->irq_rng) & 1) ? K_SMALL : K_CACHE_A;
		if (!make(w, &w->irq_rng, &w->irq_next_id, kind, &o))
			return;
		if (w->nstash < STASH_MAX && (rnd(&w->irq_rng) & 1))
			w->stash[w->nstash++] = o;
		else
			destroy(w, &o, "irq free");
	}
	while (w->nstash > STASH_MAX / 2) {
		size_t i = rnd(&w->irq_rng) % w->nstash;
		destroy(w, &w->stash[i], "irq stash free");
		w->stash[i] = w->stash[--w->nstash];
	}
}

static void sigusr1(int sig)
{
	(void)sig;
	host_irq_raise();
}

static void *signaller(void *arg)
{
	(void)arg;
	uint64_t s = seed ^ 0x5151;
	while (!atomic_load(&stop_signals)) {
		int t = (int)(rnd(&s) % NT);
		pthread_kill(workers[t].th, SIGUSR1);
		struct timespec d = {0, (long)(20000 + rnd(&s) % 200000)};
		nanosleep(&d, NULL);
	}
	return NULL;
}

/* ---- worker ---- */

static void free_or_pass(struct worker *w, size_t i)
{
	struct obj o = w->local[i];
	w->local[i] = w->local[--w->nlocal];
	if (o.kind == K_LARGE)
		w->large_bytes -= o.size;
	if ((rnd(&w->rng) & 1) && push(&workers[(w->idx + 1) % NT], &o)) {
		w->passed++;
		return;
	}
	destroy(w, &o, "local free");
	w->frees++;
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	w->cpu = host_cpu_claim(w->idx);
	host_irq_set_handler(irq_handler, w);

	while (!atomic_load(&w->failed)) {
		if ((w->ops & 255) == 0 && past_deadline())
			break;
		w->ops++;
		uint64_t r = rnd(&w->rng) % 100;
		if (w->nlocal < LOCAL_MAX && r < 55) {
			int kind;
			uint64_t k = rnd(&w->rng) % 100;
			if (k < 60)
				kind = K_SMALL;
			else if (k < 64 && w->large_bytes < LARGE_BYTES_MAX)
				kind = K_LARGE;
			else if (k < 82)
				kind = K_CACHE_A;
			else
				kind = K_CACHE_B;
			struct obj o;
			if (!make(w, &w->rng, &w->next_id, kind, &o))
				break;
			if (kind == K_LARGE)
				w->large_bytes += o.size;
			w->local[w->nlocal++] = o;
			w->allocs++;
		} else if (w->nlocal) {
			free_or_pass(w, rnd(&w->rng) % w->nlocal);
		}
		if ((w->ops & 63) == 0)
			drain_queue(w);
		uint64_t q = rnd(&w->rng) % 64;
		if (q == 0) {
			host_irq_raise(); /* interrupts on: runs now */
			w->irqs++;
		} else if (q == 1) {
			/* raised while disabled: pending until the outer
			 * restore, across an allocator call that saves and
			 * restores on its own */
			unsigned long f = arch_irq_save();
			unsigned long before = atomic_load(&w->irq_runs);
			host_irq_raise();
			void *t = kmalloc(40);
			if (t) {
				memset(t, 0x33, 40);
				kfree(t);
			} else {
				fail_w(w, "kmalloc(40) with interrupts off returned NULL");
			}
			/* nothing ran while disabled: the allocator's own
			 * save/restore inside kmalloc must restore "off" */
			if (atomic_load(&w->irq_runs) != before)
				fail_w(w, "interrupt handler ran while interrupts were off");
			arch_irq_restore(f);
			if (atomic_load(&w->irq_runs) == before)
				fail_w(w, "pending interrupt did not run at restore");
			w->irqs_off_raised++;
		}
	}

	pthread_barrier_wait(&bar_work_done);
	/* nobody pushes any more: free what is left */
	while (w->nlocal) {
		w->nlocal--;
		destroy(w, &w->local[w->nlocal], "final free");
	}
	drain_queue(w);
	host_irq_set_handler(NULL, NULL);
	while (w->nstash) {
		w->nstash--;
		destroy(w, &w->stash[w->nstash], "final stash free");
	}
	pthread_barrier_wait(&bar_drained);
	host_cpu_release();
	return NULL;
}

static void test_stress(void **state)
{
	(void)state;
	seed = fx_seed();
	unsigned secs = (unsigned)fx_env_u64("SPANALLOC_STRESS_SECS", 3);
	bool sig = fx_env_u64("SPANALLOC_STRESS_SIGNALS", 1) != 0;
	printf("seed=%llu secs=%u signals=%d\n", (unsigned long long)seed, secs, sig);
	fflush(stdout);

	fx_simple(HEAP_MIB, NT);
	cache_a = kmem_cache_create("stress-a", size_a, 8, ctor_a);
	cache_b = kmem_cache_create("stress-b", size_b, 64, NULL);
	assert_non_null(cache_a);
	assert_non_null(cache_b);
	/* the workers take CPUs 0..NT-1; this thread gives CPU 0 back */
	host_cpu_release();

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sigusr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);

	pthread_barrier_init(&bar_work_done, NULL, NT + 1);
	pthread_barrier_init(&bar_drained, NULL, NT + 1);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += secs;
	memset(workers, 0, sizeof workers);
	for (int i = 0; i < NT; i++) {
		struct worker *w = &workers[i];
		w->idx = i;
		w->rng = fx_mix64(seed + (uint64_t)i);
		w->irq_rng = fx_mix64(seed + 100 + (uint64_t)i);
		w->next_id = 2;
		w->irq_next_id = (uint64_t)1 << 40;
		pthread_mutex_init(&w->q.m, NULL);
		w->q.v = calloc(QUEUE_MAX, sizeof *w->q.v);
		assert_non_null(w->q.v);
	}
	for (int i = 0; i < NT; i++)
		assert_int_equal(pthread_create(&workers[i].th, NULL, worker_fn, &workers[i]), 0);
	pthread_t sigt;
	atomic_store(&stop_signals, false);
	if (sig)
		assert_int_equal(pthread_create(&sigt, NULL, signaller, NULL), 0);

	pthread_barrier_wait(&bar_work_done);
	atomic_store(&stop_signals, true);
	if (sig)
		pthread_join(sigt, NULL);
	pthread_barrier_wait(&bar_drained);
	for (int i = 0; i < NT; i++)
		pthread_join(workers[i].th, NULL);
	signal(SIGUSR1, SIG_DFL);

	unsigned long tot_ops = 0, tot_pass = 0, tot_recv = 0, tot_irq = 0;
	for (int i = 0; i < NT; i++) {
		struct worker *w = &workers[i];
		printf("thread %d (cpu %d): %lu ops, %lu allocs, %lu frees, %lu passed, "
		       "%lu received, %lu irqs raised (%lu while off), %lu handler runs\n",
		       i, w->cpu, w->ops, w->allocs, w->frees, w->passed, w->received,
		       w->irqs, w->irqs_off_raised, atomic_load(&w->irq_runs));
		if (atomic_load(&w->failed))
			fail_msg("thread %d: %s (seed=%llu)", i, w->msg, (unsigned long long)seed);
		assert_int_equal(w->cpu, i);
		tot_ops += w->ops;
		tot_pass += w->passed;
		tot_recv += w->received;
		tot_irq += atomic_load(&w->irq_runs);
	}
	/* every object passed on was freed by its receiver */
	assert_int_equal(tot_pass, tot_recv);
	assert_true(tot_ops > 1000);
	assert_true(tot_pass > 0);
	assert_true(tot_irq > 0);
	if (fx_fault_count() != 0) {
		struct fx_fault f = fx_last_fault();
		fail_msg("%lu faults, last %s at %p (seed=%llu)", fx_fault_count(),
		         kmem_fault_name(f.kind), f.addr, (unsigned long long)seed);
	}

	/* all worker CPUs are offline (flushed); this thread takes one to
	 * reclaim (any allocator call would claim one anyway) */
	assert_int_equal(host_cpu_claim(0), 0);
	struct kmem_stats st;
	kmem_get_stats(&st);
	assert_int_equal(st.cpus_online, 1);
	fx_assert_all_back();
	struct kmem_class_stats cs;
	kmem_cache_get_stats(cache_a, &cs);
	assert_int_equal(cs.objects_in_use, 0);
	assert_true(cs.nmalloc > 0);
	assert_int_equal(cs.nmalloc, cs.nfree);
	kmem_cache_get_stats(cache_b, &cs);
	assert_int_equal(cs.objects_in_use, 0);
	assert_int_equal(cs.nmalloc, cs.nfree);
	assert_int_equal(kmem_cache_destroy(cache_a), 0);
	assert_int_equal(kmem_cache_destroy(cache_b), 0);
	fx_assert_all_back();
	assert_int_equal(kmem_check(), 0);
	assert_int_equal(fx_fault_count(), 0);
	for (int i = 0; i < NT; i++) {
		free(workers[i].q.v);
		pthread_mutex_destroy(&workers[i].q.m);
	}
	pthread_barrier_destroy(&bar_work_done);
	pthread_barrier_destroy(&bar_drained);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
