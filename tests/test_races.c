/*
 * tests/test_races.c - hammers each race of DESIGN.md section 4 with 2-5
 * threads, each thread a CPU (host_cpu_claim), a couple of seconds each
 * (RACE_SECONDS overrides the per-test budget).  Built for ASan and TSan.
 *
 *   a. sweep vs remote free: A allocates one class and passes the objects
 *      to B and C, which free them while A keeps allocating (its cached
 *      span sweeps in place).  A set of live objects (one slot per 8-byte
 *      granule of the pool: an identity-hashed set) catches any object
 *      handed out twice while live.
 *   b. first free into a full span no CPU holds: threads free objects of
 *      spans another CPU released to full, all at once, while another
 *      thread allocates the class; afterwards every span is findable
 *      (queued exactly once, every free slot reused without the mheap
 *      growing).
 *   c. publish/lookup: one thread allocates and frees large objects, page
 *      runs and small objects, passing them through queues to threads that
 *      look them up (ksize, span_of_ptr on every page); another thread
 *      churns the arena map at the same time.
 *   d. the same object freed by two threads at once (a buggy client):
 *      exactly one free succeeds, the other is reported.
 *   e. interrupts: simulated interrupts (host_irq_raise, from signals and
 *      from inside allocations) whose handler allocates and frees.
 *
 * Worker threads never call cmocka: they record the first failure and the
 * main thread reports it.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "host.h"
#include "mtypes.h"

#define PG KMEM_PAGE_SIZE
#define HEAP_MIB 64
#define NCPUS 6
#define POOL_LO FX_SIMPLE_BASE
#define POOL_BYTES (HEAP_MIB * FX_MIB)

/* ------------------------------------------------------------------------
 * Infrastructure
 */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t budget_ns(void)
{
	const char *e = getenv("RACE_SECONDS");
	double s = e ? atof(e) : 2.0;
	if (s <= 0)
		s = 2.0;
	return (uint64_t)(s * 1e9);
}

/* First failure seen by a worker thread. */
static _Atomic unsigned long thread_errors;
static char first_error[512];

static void thread_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void thread_fail(const char *fmt, ...)
{
	if (atomic_fetch_add(&thread_errors, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(first_error, sizeof(first_error), fmt, ap);
		va_end(ap);
	}
}

static void assert_no_thread_errors(void)
{
	unsigned long n = atomic_load(&thread_errors);
	if (n)
		fail_msg("%lu failure(s) in worker threads; first: %s", n, first_error);
}

/* Faults, counted by kind (any thread, any context). */
static _Atomic unsigned long faults[KMEM_FAULT_CORRUPT + 2];

/* The last fault that was neither a double free nor a free page. */
static const char *_Atomic odd_fault_detail;
static _Atomic unsigned odd_fault_kind;

static void count_hook(const struct kmem_fault *f)
{
	unsigned k = (unsigned)f->kind;
	if (k > KMEM_FAULT_CORRUPT)
		k = KMEM_FAULT_CORRUPT + 1;
	atomic_fetch_add(&faults[k], 1);
	if (k != KMEM_FAULT_DOUBLE_FREE && k != KMEM_FAULT_FREE_PAGE) {
		atomic_store(&odd_fault_kind, k);
		atomic_store(&odd_fault_detail, f->detail);
	}
}

static unsigned long faults_total(void)
{
	unsigned long n = 0;
	for (unsigned k = 0; k < sizeof(faults) / sizeof(faults[0]); k++)
		n += atomic_load(&faults[k]);
	return n;
}

static void faults_reset(void)
{
	for (unsigned k = 0; k < sizeof(faults) / sizeof(faults[0]); k++)
		atomic_store(&faults[k], 0);
}

static void check_heap(void)
{
	unsigned long before = atomic_load(&faults[KMEM_FAULT_CORRUPT]);
	unsigned long broken = kmem_check();
	assert_int_equal(broken, 0);
	assert_int_equal(atomic_load(&faults[KMEM_FAULT_CORRUPT]), before);
}

/* A spinning start line for n threads. */
struct barrier {
	_Atomic unsigned arrived;
	unsigned n;
};

/* Busy-waits, but lets others run now and then (the host may have fewer
 * cores than threads). */
static void spin_pause(unsigned *n)
{
	if (++*n % 512 == 0)
		sched_yield();
}

static void barrier_wait(struct barrier *b)
{
	unsigned n = 0;
	atomic_fetch_add(&b->arrived, 1);
	while (atomic_load(&b->arrived) < b->n)
		spin_pause(&n);
}

/* Single-producer single-consumer ring (release on publish, acquire on
 * consume). */
#define RING 256
struct ring {
	alignas(64) _Atomic size_t head;
	alignas(64) _Atomic size_t tail;
	void *slot[RING];
};

static bool ring_push(struct ring *r, void *v)
{
	size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	if (t - atomic_load_explicit(&r->head, memory_order_acquire) == RING)
		return false;
	r->slot[t % RING] = v;
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return true;
}

static void *ring_pop(struct ring *r)
{
	size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (h == atomic_load_explicit(&r->tail, memory_order_acquire))
		return NULL;
	void *v = r->slot[h % RING];
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return v;
}

/* The set of live objects: one flag per 8-byte granule of the pool. */
static _Atomic uint8_t *live;
#define LIVE_N (POOL_BYTES / 8)

static size_t live_idx(const void *p)
{
	uint64_t off = fx_phys(p) - POOL_LO;
	if (off >= POOL_BYTES)
		return (size_t)-1;
	return (size_t)(off / 8);
}

/* Returns false (and reports) if p was live already. */
static bool live_add(const void *p)
{
	size_t i = live_idx(p);
	if (i == (size_t)-1) {
		thread_fail("object %p outside the pool", p);
		return false;
	}
	if (atomic_exchange_explicit(&live[i], 1, memory_order_relaxed)) {
		thread_fail("double allocation: %p handed out while live", p);
		return false;
	}
	return true;
}

static void live_del(const void *p)
{
	size_t i = live_idx(p);
	if (i == (size_t)-1 || !atomic_exchange_explicit(&live[i], 0, memory_order_relaxed))
		thread_fail("freeing %p, which is not live", p);
}

static size_t live_count(void)
{
	size_t n = 0;
	for (size_t i = 0; i < LIVE_N; i++)
		n += atomic_load_explicit(&live[i], memory_order_relaxed);
	return n;
}

/* Stamp and verify: the first and last word of an object name it. */
static void stamp(void *p, size_t size)
{
	uint64_t *w = p;
	w[0] = (uintptr_t)p ^ 0x5a5a5a5a5a5a5a5aull;
	if (size >= 16)
		w[size / 8 - 1] = ~(uint64_t)(uintptr_t)p;
}

static bool stamped(const void *p, size_t size)
{
	const uint64_t *w = p;
	return w[0] == ((uintptr_t)p ^ 0x5a5a5a5a5a5a5a5aull) &&
	       (size < 16 || w[size / 8 - 1] == ~(uint64_t)(uintptr_t)p);
}

static uint64_t xrand(uint64_t *s)
{
	*s = fx_mix64(*s);
	return *s;
}

/* Every span of central c is findable: each span on the unswept stack is
 * on it once, QUEUED and on a list; every QUEUED span is on the stack; no
 * span on full (or partial) has frees waiting without being queued.
 * Returns the free slots of the spans on the lists.  QUIESCE. */
static uint64_t check_findable(struct mcentral *c)
{
	size_t nstack = 0, cap = 1024;
	struct mspan **st = malloc(cap * sizeof(*st));
	assert_non_null(st);
	for (struct mspan *s = atomic_load(&c->unswept); s; s = s->unswept_next) {
		for (size_t i = 0; i < nstack; i++)
			if (st[i] == s)
				fail_msg("span %#lx is on the unswept stack twice", (unsigned long)s->base);
		if (nstack == cap) {
			cap *= 2;
			st = realloc(st, cap * sizeof(*st));
			assert_non_null(st);
		}
		st[nstack++] = s;
		if (SS_LOC(atomic_load(&s->sweepstate)) != LOC_QUEUED || s->on_list == 0)
			fail_msg("span %#lx on the unswept stack is not queued on a list",
			         (unsigned long)s->base);
	}
	size_t queued = 0;
	uint64_t slots = 0;
	const struct span_list *lists[2] = {&c->partial, &c->full};
	for (int l = 0; l < 2; l++) {
		for (struct mspan *s = lists[l]->first; s; s = s->next) {
			unsigned loc = SS_LOC(atomic_load(&s->sweepstate));
			slots += s->nelems - span_live_objects(s);
			if (loc == LOC_QUEUED) {
				queued++;
				bool found = false;
				for (size_t i = 0; i < nstack && !found; i++)
					found = st[i] == s;
				if (!found)
					fail_msg("span %#lx is QUEUED but not on the stack",
					         (unsigned long)s->base);
				continue;
			}
			if (loc != s->on_list)
				fail_msg("span %#lx: state %u, list %u", (unsigned long)s->base, loc,
				         s->on_list);
			if (span_has_freed(s))
				fail_msg("span %#lx on the %s list has frees waiting but is not queued"
				         " (unfindable until a reclaim)",
				         (unsigned long)s->base, l ? "full" : "partial");
		}
	}
	if (queued != nstack)
		fail_msg("%zu spans queued on the lists, %zu on the stack", queued, nstack);
	free(st);
	return slots;
}

/* The span CPU cpu allocates class cls from. */
static struct mspan *cpu_span(unsigned cpu, unsigned cls)
{
	return atomic_load(&mcache_of(cpu)->cls[cls].span);
}

static int setup(void **state)
{
	(void)state;
	fx_simple(HEAP_MIB, NCPUS);
	kmem_set_fault_hook(count_hook);
	faults_reset();
	atomic_store(&thread_errors, 0);
	first_error[0] = 0;
	if (!live) {
		live = calloc(LIVE_N, 1);
		assert_non_null(live);
	}
	memset((void *)live, 0, LIVE_N);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_no_thread_errors();
	if (faults_total() != 0)
		fail_msg("%lu unexpected fault(s) (double free %lu, corrupt %lu)", faults_total(),
		         atomic_load(&faults[KMEM_FAULT_DOUBLE_FREE]),
		         atomic_load(&faults[KMEM_FAULT_CORRUPT]));
	fx_install_fault_hook();
	fx_assert_all_back();
	return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* The span-level races (a, b, b2) are about frees that reach spans: the
 * classes run without magazines there, so every kfree sets a freed bit. */
static int setup_spans(void **state)
{
	setup(state);
	fx_magazines_off();
	return 0;
}

#define TSP(fn) cmocka_unit_test_setup_teardown(fn, setup_spans, teardown)

static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	assert_int_equal(pthread_create(t, NULL, fn, arg), 0);
}

static void join(pthread_t t)
{
	assert_int_equal(pthread_join(t, NULL), 0);
}

/* ------------------------------------------------------------------------
 * a. Sweep vs remote free
 */

struct ra {
	size_t size;
	uint64_t deadline;
	struct ring ring[2];
	_Atomic bool a_done;
	_Atomic unsigned long allocs, remote_frees, local_frees, inplace_sweeps;
};

static void *ra_alloc_thread(void *arg)
{
	struct ra *x = arg;
	host_cpu_claim(1);
	unsigned cls = kmem_size_class(x->size);
	enum { LOCAL = 32 };
	void *local[LOCAL];
	unsigned nlocal = 0;
	uint64_t rng = x->size;
	unsigned long n = 0, lf = 0, same = 0;
	while (now_ns() < x->deadline && !atomic_load(&thread_errors)) {
		for (int k = 0; k < 64; k++) {
			unsigned long f = arch_irq_save();
			struct mspan *before = cpu_span(1, cls);
			uint32_t fi0 = before ? atomic_load(&before->freeindex) : 0;
			arch_irq_restore(f);
			void *p = kmalloc(x->size);
			if (!p) {
				thread_fail("kmalloc(%zu) failed after %lu objects", x->size, n);
				goto out;
			}
			f = arch_irq_save();
			/* The same span, an object below the old freeindex: only
			 * a sweep in place gives one back. */
			if (before && cpu_span(1, cls) == before && span_of_ptr(p) == before &&
			    ((uintptr_t)p - before->base) / before->elemsize < fi0)
				same++;
			arch_irq_restore(f);
			n++;
			if (!live_add(p))
				goto out;
			stamp(p, x->size);
			uint64_t r = xrand(&rng) % 16;
			if (r == 0) {
				if (nlocal == LOCAL) {
					void *q = local[xrand(&rng) % LOCAL];
					for (unsigned i = 0; i < LOCAL; i++)
						if (local[i] == q) {
							local[i] = local[--nlocal];
							break;
						}
					live_del(q);
					kfree(q);
					lf++;
				}
				local[nlocal++] = p;
			} else {
				while (!ring_push(&x->ring[r % 2], p))
					sched_yield();
			}
		}
	}
out:
	for (unsigned i = 0; i < nlocal; i++) {
		live_del(local[i]);
		kfree(local[i]);
		lf++;
	}
	atomic_store(&x->allocs, n);
	atomic_store(&x->local_frees, lf);
	atomic_store(&x->inplace_sweeps, same);
	atomic_store(&x->a_done, true);
	return NULL;
}

struct ra_free_arg {
	struct ra *x;
	int which;
};

static void *ra_free_thread(void *arg)
{
	struct ra_free_arg *fa = arg;
	struct ra *x = fa->x;
	host_cpu_claim(2 + fa->which);
	unsigned long n = 0;
	for (;;) {
		void *p = ring_pop(&x->ring[fa->which]);
		if (!p) {
			if (!atomic_load(&x->a_done)) {
				sched_yield();
				continue;
			}
			/* A is done: what it pushed before is visible now. */
			p = ring_pop(&x->ring[fa->which]);
			if (!p)
				break;
		}
		if (!stamped(p, x->size))
			thread_fail("object %p (size %zu) lost its stamp before its free", p, x->size);
		live_del(p);
		kfree(p);
		n++;
	}
	atomic_fetch_add(&x->remote_frees, n);
	return NULL;
}

static void test_race_sweep_vs_remote_free(void **state)
{
	(void)state;
	const size_t sizes[] = {16, 48, 256, 8, 1024};
	const unsigned rounds = sizeof(sizes) / sizeof(sizes[0]);
	uint64_t per = budget_ns() / rounds;
	unsigned long total = 0, inplace = 0;
	static struct ra x;
	for (unsigned r = 0; r < rounds; r++) {
		memset(&x, 0, sizeof(x));
		x.size = sizes[r];
		x.deadline = now_ns() + per;
		struct ra_free_arg fa[2] = {{&x, 0}, {&x, 1}};
		pthread_t a, b, c;
		start(&b, ra_free_thread, &fa[0]);
		start(&c, ra_free_thread, &fa[1]);
		start(&a, ra_alloc_thread, &x);
		join(a);
		join(b);
		join(c);
		assert_no_thread_errors();
		unsigned long allocs = atomic_load(&x.allocs);
		assert_int_equal(allocs, atomic_load(&x.remote_frees) + atomic_load(&x.local_frees));
		assert_true(allocs > 1000);
		assert_int_equal(live_count(), 0);
		check_findable(class_central(0, kmem_size_class(x.size)));
		check_heap();
		/* Every object came back: nothing in use after a reclaim. */
		fx_install_fault_hook();
		fx_assert_all_back();
		kmem_set_fault_hook(count_hook);
		total += allocs;
		inplace += atomic_load(&x.inplace_sweeps);
	}
	print_message("sweep vs remote free: %lu objects, %lu in-place sweeps seen\n", total,
	              inplace);
	assert_true(inplace > 0);
}

/* ------------------------------------------------------------------------
 * b. First free into a full span no CPU holds
 */

struct rb {
	size_t size;
	size_t n;               /* objects of the full spans */
	void **obj;
	struct barrier go;
	int round;
	size_t d_want;          /* objects D allocates concurrently */
	void **d_obj;
	_Atomic size_t d_got;
	_Atomic unsigned long freed;
};

static void *rb_fill_thread(void *arg)
{
	struct rb *x = arg;
	host_cpu_claim(1);
	for (size_t i = 0; i < x->n; i++) {
		x->obj[i] = kmalloc(x->size);
		if (!x->obj[i]) {
			thread_fail("fill: kmalloc failed at %zu", i);
			break;
		}
	}
	return NULL; /* exiting flushes CPU 1: its spans go to full */
}

struct rb_arg {
	struct rb *x;
	int t;
};

static void *rb_free_thread(void *arg)
{
	struct rb_arg *a = arg;
	struct rb *x = a->x;
	host_cpu_claim(1 + a->t);
	barrier_wait(&x->go);
	unsigned long n = 0;
	for (size_t i = 0; i < x->n; i++) {
		if (i % 4 == 0 || (i + (size_t)x->round) % 3 != (size_t)a->t)
			continue;
		kfree(x->obj[i]);
		n++;
	}
	atomic_fetch_add(&x->freed, n);
	return NULL;
}

static void *rb_alloc_thread(void *arg)
{
	struct rb *x = arg;
	host_cpu_claim(4);
	barrier_wait(&x->go);
	size_t i;
	for (i = 0; i < x->d_want; i++) {
		x->d_obj[i] = kmalloc(x->size);
		if (!x->d_obj[i]) {
			thread_fail("concurrent kmalloc failed");
			break;
		}
	}
	atomic_store(&x->d_got, i);
	return NULL;
}

static void test_race_first_free_full_span(void **state)
{
	(void)state;
	const size_t sizes[] = {64, 48, 1024, 8, 128, 3072};
	const unsigned K = 48; /* spans per round */
	static struct rb x;
	uint64_t deadline = now_ns() + budget_ns();
	unsigned rounds = 0;
	unsigned long queued = 0;
	while (rounds < 6 || (now_ns() < deadline && rounds < 400)) {
		size_t size = sizes[rounds % 6];
		unsigned cls = kmem_size_class(size);
		struct mcentral *c = class_central(0, cls);
		memset(&x, 0, sizeof(x));
		x.size = size;
		x.round = (int)rounds;
		x.n = (size_t)K * kmem_class[cls].nelems;
		x.obj = calloc(x.n, sizeof(void *));
		x.d_obj = calloc(x.n, sizeof(void *));
		assert_true(x.obj && x.d_obj);
		assert_int_equal(c->spans, 0);

		pthread_t t[4];
		start(&t[0], rb_fill_thread, &x);
		join(t[0]);
		assert_no_thread_errors();
		assert_int_equal(c->full.count, K);
		assert_int_equal(c->partial.count, 0);
		assert_int_equal(c->spans, K);

		bool with_d = rounds % 2;
		x.d_want = with_d ? x.n / 8 : 0;
		x.go.n = with_d ? 4 : 3;
		struct rb_arg args[3] = {{&x, 0}, {&x, 1}, {&x, 2}};
		for (int i = 0; i < 3; i++)
			start(&t[i], rb_free_thread, &args[i]);
		if (with_d)
			start(&t[3], rb_alloc_thread, &x);
		for (int i = 0; i < 3; i++)
			join(t[i]);
		if (with_d)
			join(t[3]);
		assert_no_thread_errors();
		size_t nfreed = atomic_load(&x.freed);
		assert_int_equal(nfreed, x.n - (x.n + 3) / 4);
		size_t dgot = atomic_load(&x.d_got);
		assert_int_equal(dgot, x.d_want);

		/* Findable: queued once; free slots all visible. */
		for (unsigned cpu = 0; cpu < NCPUS; cpu++)
			assert_null(cpu_span(cpu, cls));
		unsigned depth = 0;
		for (struct mspan *s = atomic_load(&c->unswept); s; s = s->unswept_next)
			depth++;
		queued += depth;
		uint64_t slots = check_findable(c);
		check_heap();
		assert_int_equal(slots, (uint64_t)c->spans * kmem_class[cls].nelems -
		                            ((x.n + 3) / 4 + dgot));

		/* Reuse every free slot: the mheap must not grow. */
		for (size_t i = 0; i < x.n; i += 4)
			assert_true(live_add(x.obj[i]));
		for (size_t i = 0; i < dgot; i++)
			assert_true(live_add(x.d_obj[i]));
		struct kmem_stats st0 = fx_stats();
		uint64_t spans0 = c->spans;
		void **re = calloc(slots, sizeof(void *));
		assert_non_null(re);
		for (uint64_t i = 0; i < slots; i++) {
			re[i] = kmalloc(size);
			assert_non_null(re[i]);
			assert_true(live_add(re[i]));
		}
		assert_no_thread_errors();
		struct kmem_stats st1 = fx_stats();
		if (st1.pages_small != st0.pages_small)
			fail_msg("round %u (%zu B): pages_small %llu -> %llu reusing %llu free slots",
			         rounds, size, (unsigned long long)st0.pages_small,
			         (unsigned long long)st1.pages_small, (unsigned long long)slots);
		assert_int_equal(c->spans, spans0);
		check_heap();

		for (size_t i = 0; i < x.n; i += 4) {
			live_del(x.obj[i]);
			kfree(x.obj[i]);
		}
		for (size_t i = 0; i < dgot; i++) {
			live_del(x.d_obj[i]);
			kfree(x.d_obj[i]);
		}
		for (uint64_t i = 0; i < slots; i++) {
			live_del(re[i]);
			kfree(re[i]);
		}
		assert_no_thread_errors();
		free(re);
		free(x.obj);
		free(x.d_obj);
		x.obj = x.d_obj = NULL;
		kmem_reclaim();
		assert_int_equal(c->spans, 0);
		rounds++;
	}
	print_message("first free into full spans: %u rounds, %lu spans queued\n", rounds, queued);
	assert_true(queued >= (unsigned long)rounds * K / 2);
}

/* b2. The lost-free race of a span going full (mcentral.c, Dekker): the
 * owner exhausts its span and gives it back to the mcentral while another
 * CPU frees one of its objects.  Either the free sees the span on its list
 * and queues it, or the owner's re-check sees the freed bit; a span left on
 * full with a free waiting is unfindable. */
struct rb2 {
	size_t size;
	unsigned max_spans;
	void *_Atomic hand;
	_Atomic bool done;
	void **keep;
	size_t nkeep, cap;
	_Atomic unsigned long handed, freed, swept_in_place;
};

static void *rb2_owner(void *arg)
{
	struct rb2 *x = arg;
	host_cpu_claim(1);
	unsigned cls = kmem_size_class(x->size);
	unsigned long handed = 0, inplace = 0;
	void *last = NULL;
	while (handed < x->max_spans && x->nkeep < x->cap) {
		void *p = kmalloc(x->size);
		if (!p) {
			thread_fail("kmalloc(%zu) failed", x->size);
			break;
		}
		if (p == last)
			inplace++; /* the free came first: swept in place */
		last = NULL;
		unsigned long f = arch_irq_save();
		struct mspan *s = cpu_span(1, cls);
		bool exhausted = s && span_free_slots(s) == 0;
		arch_irq_restore(f);
		if (!exhausted) {
			x->keep[x->nkeep++] = p;
			continue;
		}
		/* Hand the object over, then make the span go: the next kmalloc
		 * gives it back to the mcentral while the other CPU frees. */
		unsigned spins = 0;
		while (atomic_load_explicit(&x->hand, memory_order_acquire))
			spin_pause(&spins);
		atomic_store_explicit(&x->hand, p, memory_order_release);
		last = p;
		handed++;
	}
	atomic_store(&x->handed, handed);
	atomic_store(&x->swept_in_place, inplace);
	atomic_store(&x->done, true);
	return NULL;
}

static void *rb2_freer(void *arg)
{
	struct rb2 *x = arg;
	host_cpu_claim(2);
	unsigned long n = 0;
	unsigned spins = 0;
	for (;;) {
		void *p = atomic_load_explicit(&x->hand, memory_order_acquire);
		if (!p) {
			if (atomic_load(&x->done) && !atomic_load(&x->hand))
				break;
			spin_pause(&spins);
			continue;
		}
		kfree(p);
		atomic_store_explicit(&x->hand, NULL, memory_order_release);
		n++;
	}
	atomic_store(&x->freed, n);
	return NULL;
}

static void test_race_free_while_span_goes_full(void **state)
{
	(void)state;
	const size_t sizes[] = {64, 8, 1024, 256, 48};
	static struct rb2 x;
	uint64_t deadline = now_ns() + budget_ns();
	unsigned rounds = 0;
	unsigned long handed = 0, inplace = 0;
	while (rounds < 5 || (now_ns() < deadline && rounds < 1000)) {
		size_t size = sizes[rounds % 5];
		unsigned cls = kmem_size_class(size);
		struct mcentral *c = class_central(0, cls);
		memset(&x, 0, sizeof(x));
		x.size = size;
		x.max_spans = 1500;
		x.cap = (size_t)x.max_spans * kmem_class[cls].nelems;
		if (x.cap * size > 16 * FX_MIB)
			x.cap = 16 * FX_MIB / size;
		x.keep = malloc(x.cap * sizeof(void *));
		assert_non_null(x.keep);
		pthread_t o, f;
		start(&f, rb2_freer, &x);
		start(&o, rb2_owner, &x);
		join(o);
		join(f);
		assert_no_thread_errors();
		assert_int_equal(atomic_load(&x.freed), atomic_load(&x.handed));
		handed += atomic_load(&x.handed);
		inplace += atomic_load(&x.swept_in_place);
		/* Every span with a free waiting is queued (findable). */
		uint64_t slots = check_findable(c);
		assert_int_equal(slots, (uint64_t)c->spans * kmem_class[cls].nelems - x.nkeep);
		check_heap();
		/* Reuse every free slot without growing. */
		struct kmem_stats st0 = fx_stats();
		void **re = malloc((slots + 1) * sizeof(void *));
		assert_non_null(re);
		for (uint64_t i = 0; i < slots; i++) {
			re[i] = kmalloc(size);
			assert_non_null(re[i]);
		}
		struct kmem_stats st1 = fx_stats();
		if (st1.pages_small != st0.pages_small)
			fail_msg("round %u (%zu B): pages_small %llu -> %llu reusing %llu free slots",
			         rounds, size, (unsigned long long)st0.pages_small,
			         (unsigned long long)st1.pages_small, (unsigned long long)slots);
		for (uint64_t i = 0; i < slots; i++)
			kfree(re[i]);
		for (size_t i = 0; i < x.nkeep; i++)
			kfree(x.keep[i]);
		free(re);
		free(x.keep);
		x.keep = NULL;
		kmem_reclaim();
		assert_int_equal(c->spans, 0);
		rounds++;
	}
	print_message("free while the span goes full: %u rounds, %lu spans raced, %lu of them"
	              " swept in place\n", rounds, handed, inplace);
	assert_true(handed > 1000);
}

/* ------------------------------------------------------------------------
 * c. Publish/lookup
 */

enum rc_kind { RC_LARGE, RC_RUN, RC_SMALL };

struct rc_item {
	void *p;
	size_t size;   /* bytes asked (large, small) or pages (run) */
	enum rc_kind kind;
	unsigned pending; /* consumers still looking (producer-local) */
};

#define RC_CONSUMERS 2
#define RC_INFLIGHT 48

struct rc {
	uint64_t deadline;
	struct ring to[RC_CONSUMERS], back[RC_CONSUMERS];
	/* A large object or run handed over with a relaxed store: only the
	 * arena map's release/acquire makes its span visible. */
	_Atomic uint64_t mbox;
	_Atomic bool done;
	_Atomic unsigned long produced, looked, churned, mailed, mail_looked;
};

#define MBOX_KIND_SHIFT 47
#define MBOX_PAGES_SHIFT 49

static void rc_release(struct rc_item *it)
{
	if (it->kind == RC_RUN)
		kpage_free(it->p, it->size);
	else
		kfree(it->p);
	free(it);
}

static void *rc_producer(void *arg)
{
	struct rc *x = arg;
	host_cpu_claim(1);
	uint64_t rng = 12345;
	unsigned inflight = 0;
	unsigned long n = 0, mailed = 0;
	void *mail_p = NULL;
	size_t mail_pages = 0;
	bool mail_run = false;
	while (now_ns() < x->deadline || inflight || mail_p) {
		if (mail_p) {
			if (atomic_load_explicit(&x->mbox, memory_order_acquire) == 0) {
				if (mail_run)
					kpage_free(mail_p, mail_pages);
				else
					kfree(mail_p);
				mail_p = NULL;
			}
		} else if (now_ns() < x->deadline) {
			mail_run = xrand(&rng) % 2;
			mail_pages = 1 + (size_t)(xrand(&rng) % (mail_run ? 40 : 70));
			mail_p = mail_run ? kpage_alloc(mail_pages, PG, 0)
			                  : kmalloc(mail_pages * PG - (size_t)(xrand(&rng) % PG));
			if (!mail_p || (mail_pages * PG <= KMEM_SMALL_MAX && !mail_run)) {
				/* Small sizes are not mailed: a relaxed handoff gives
				 * no order for the span's allocation bits. */
				if (mail_p)
					kfree(mail_p);
				mail_p = NULL;
			} else if ((uintptr_t)mail_p >> MBOX_KIND_SHIFT) {
				thread_fail("address %p too high to mail", mail_p);
				break;
			} else {
				uint64_t v = (uint64_t)(uintptr_t)mail_p |
				             ((uint64_t)(mail_run ? RC_RUN : RC_LARGE) << MBOX_KIND_SHIFT) |
				             ((uint64_t)mail_pages << MBOX_PAGES_SHIFT);
				atomic_store_explicit(&x->mbox, v, memory_order_relaxed);
				mailed++;
			}
		}
		/* Take back what the consumers are done with. */
		for (int c = 0; c < RC_CONSUMERS; c++) {
			struct rc_item *it;
			while ((it = ring_pop(&x->back[c]))) {
				if (--it->pending == 0) {
					rc_release(it);
					inflight--;
				}
			}
		}
		if (now_ns() >= x->deadline || inflight >= RC_INFLIGHT) {
			sched_yield();
			continue;
		}
		struct rc_item *it = malloc(sizeof(*it));
		if (!it) {
			thread_fail("malloc");
			break;
		}
		uint64_t r = xrand(&rng);
		it->kind = (enum rc_kind)(r % 3);
		if (it->kind == RC_LARGE) {
			it->size = KMEM_SMALL_MAX + 1 + (size_t)(xrand(&rng) % (300 * 1024));
			it->p = kmalloc(it->size);
		} else if (it->kind == RC_RUN) {
			it->size = 1 + (size_t)(xrand(&rng) % 40);
			it->p = kpage_alloc(it->size, PG << (xrand(&rng) % 5), 0);
		} else {
			it->size = 1 + (size_t)(xrand(&rng) % 8192);
			it->p = kmalloc(it->size);
		}
		if (!it->p) {
			thread_fail("allocation of kind %d size %zu failed", it->kind, it->size);
			free(it);
			break;
		}
		it->pending = RC_CONSUMERS;
		inflight++;
		n++;
		for (int c = 0; c < RC_CONSUMERS; c++)
			while (!ring_push(&x->to[c], it))
				sched_yield();
	}
	atomic_store(&x->produced, n);
	atomic_store(&x->mailed, mailed);
	atomic_store(&x->done, true);
	return NULL;
}

/* A run of up to RUN_INLINE_MAX pages has no span: its pages' kinds,
 * read under mheap.lock, say it (mm/mheap.c). */
static void rc_look_run(struct rc_item *it)
{
	uint64_t pfn = virt_to_pfn((uintptr_t)it->p), head = 0, len = 0;
	for (uint64_t i = 0; i < it->size; i++) {
		if (span_of_pfn(pfn + i))
			thread_fail("page %llu of the run %p has a span", (unsigned long long)i, it->p);
		unsigned long f = heaps_lock_all();
		bool found = arena_run_of_locked(pfn + i, &head, &len);
		heaps_unlock_all(f);
		if (!found || head != pfn || len != it->size)
			thread_fail("page %llu of the run %p of %zu pages: found %d head %#llx len %llu",
			            (unsigned long long)i, it->p, it->size, found,
			            (unsigned long long)head, (unsigned long long)len);
	}
}

static void rc_look(struct rc_item *it)
{
	if (it->kind == RC_RUN && it->size <= RUN_INLINE_MAX) {
		rc_look_run(it);
		return;
	}
	struct mspan *s = span_of_ptr(it->p);
	if (!s) {
		thread_fail("span_of_ptr(%p) is NULL for a live %s", it->p,
		            it->kind == RC_RUN ? "page run" : "object");
		return;
	}
	uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
	if (it->kind == RC_SMALL) {
		unsigned cls = kmem_size_class(it->size);
		size_t got = ksize(it->p);
		if (st != SPAN_SMALL || got != kmem_class[cls].size)
			thread_fail("ksize(%p) = %zu (state %u), want %u", it->p, got, st,
			            kmem_class[cls].size);
		return;
	}
	uint64_t npages = it->kind == RC_RUN ? it->size : (it->size + PG - 1) / PG;
	if (it->kind == RC_LARGE) {
		size_t got = ksize(it->p);
		if (got != npages * PG)
			thread_fail("ksize(large %p of %zu B) = %zu", it->p, it->size, got);
	}
	if (st != (it->kind == RC_RUN ? SPAN_RUN : SPAN_LARGE) || s->base != (uintptr_t)it->p ||
	    s->npages != npages)
		thread_fail("span of %p: state %u base %#lx npages %llu, want %llu pages", it->p, st,
		            (unsigned long)s->base, (unsigned long long)s->npages,
		            (unsigned long long)npages);
	for (uint64_t i = 0; i < npages; i++)
		if (span_of_ptr((char *)it->p + i * PG + (i * 97) % PG) != s)
			thread_fail("page %llu of %p maps to another span", (unsigned long long)i,
			            it->p);
}

struct rc_arg {
	struct rc *x;
	int c;
};

static void *rc_consumer(void *arg)
{
	struct rc_arg *a = arg;
	struct rc *x = a->x;
	host_cpu_claim(2 + a->c);
	unsigned long n = 0;
	for (;;) {
		struct rc_item *it = ring_pop(&x->to[a->c]);
		if (!it) {
			if (atomic_load(&x->done))
				break;
			sched_yield();
			continue;
		}
		rc_look(it);
		n++;
		while (!ring_push(&x->back[a->c], it))
			sched_yield();
	}
	atomic_fetch_add(&x->looked, n);
	return NULL;
}

/* Looks up what arrives in the mailbox (relaxed), acknowledges with a
 * release store so the producer frees it only afterwards. */
static void *rc_mail_consumer(void *arg)
{
	struct rc *x = arg;
	host_cpu_claim(5);
	unsigned long n = 0;
	for (;;) {
		uint64_t v = atomic_load_explicit(&x->mbox, memory_order_relaxed);
		if (!v) {
			if (atomic_load(&x->done))
				break;
			sched_yield();
			continue;
		}
		struct rc_item it;
		memset(&it, 0, sizeof(it));
		it.p = (void *)(uintptr_t)(v & ((1ull << MBOX_KIND_SHIFT) - 1));
		it.kind = (enum rc_kind)((v >> MBOX_KIND_SHIFT) & 3);
		uint64_t pages = v >> MBOX_PAGES_SHIFT;
		it.size = it.kind == RC_RUN ? pages : pages * PG;
		rc_look(&it);
		n++;
		atomic_store_explicit(&x->mbox, 0, memory_order_release);
	}
	atomic_store(&x->mail_looked, n);
	return NULL;
}

/* Churns the arena map: large objects and runs allocated and freed. */
static void *rc_churn(void *arg)
{
	struct rc *x = arg;
	host_cpu_claim(4);
	uint64_t rng = 999;
	unsigned long n = 0;
	void *held[8] = {0};
	size_t held_pages[8] = {0};
	while (now_ns() < x->deadline) {
		unsigned i = (unsigned)(xrand(&rng) % 8);
		if (held[i]) {
			if (held_pages[i])
				kpage_free(held[i], held_pages[i]);
			else
				kfree(held[i]);
			held[i] = NULL;
		} else if (xrand(&rng) % 2) {
			held_pages[i] = 1 + (size_t)(xrand(&rng) % 20);
			held[i] = kpage_alloc(held_pages[i], PG, 0);
		} else {
			held_pages[i] = 0;
			held[i] = kmalloc(KMEM_SMALL_MAX + 1 + (size_t)(xrand(&rng) % 100000));
		}
		n++;
	}
	for (unsigned i = 0; i < 8; i++)
		if (held[i]) {
			if (held_pages[i])
				kpage_free(held[i], held_pages[i]);
			else
				kfree(held[i]);
		}
	atomic_store(&x->churned, n);
	return NULL;
}

static void test_race_publish_lookup(void **state)
{
	(void)state;
	static struct rc x;
	memset(&x, 0, sizeof(x));
	x.deadline = now_ns() + budget_ns();
	struct rc_arg args[RC_CONSUMERS] = {{&x, 0}, {&x, 1}};
	pthread_t p, c[RC_CONSUMERS], ch, mc;
	for (int i = 0; i < RC_CONSUMERS; i++)
		start(&c[i], rc_consumer, &args[i]);
	start(&mc, rc_mail_consumer, &x);
	start(&ch, rc_churn, &x);
	start(&p, rc_producer, &x);
	join(p);
	for (int i = 0; i < RC_CONSUMERS; i++)
		join(c[i]);
	join(mc);
	join(ch);
	assert_no_thread_errors();
	unsigned long produced = atomic_load(&x.produced);
	print_message("publish/lookup: %lu allocations looked up %lu times, %lu mailed with a"
	              " relaxed store, %lu churn ops\n",
	              produced, atomic_load(&x.looked), atomic_load(&x.mailed),
	              atomic_load(&x.churned));
	assert_true(produced > 100);
	assert_int_equal(atomic_load(&x.looked), produced * RC_CONSUMERS);
	assert_true(atomic_load(&x.mailed) > 10);
	assert_int_equal(atomic_load(&x.mail_looked), atomic_load(&x.mailed));
	check_heap();
}

/* ------------------------------------------------------------------------
 * d. The same object freed by two threads at once
 */

enum rd_kind { RD_SMALL, RD_LARGE, RD_RUN, RD_CACHE };

struct rd_obj {
	void *p;
	size_t pages;
	enum rd_kind kind;
};

#define RD_N (64 + 4 + 4 + 8)

struct rd {
	struct rd_obj o[RD_N];
	struct kmem_cache *kc;
	struct barrier go;
	int reverse;
};

struct rd_arg {
	struct rd *x;
	int t;
};

static void rd_free(struct rd *x, const struct rd_obj *o)
{
	switch (o->kind) {
	case RD_SMALL:
	case RD_LARGE:
		kfree(o->p);
		break;
	case RD_RUN:
		kpage_free(o->p, o->pages);
		break;
	case RD_CACHE:
		kmem_cache_free(x->kc, o->p);
		break;
	}
}

static void *rd_thread(void *arg)
{
	struct rd_arg *a = arg;
	struct rd *x = a->x;
	host_cpu_claim(1 + a->t);
	barrier_wait(&x->go);
	for (int i = 0; i < RD_N; i++) {
		int j = a->t && x->reverse ? RD_N - 1 - i : i;
		rd_free(x, &x->o[j]);
	}
	return NULL;
}

/* Two threads free the same RD_N objects at once, round after round.
 * Always: exactly one fault per object, the heap intact, every object
 * freed once.  With check_kind: each second free is reported as a double
 * free (bit set, span state) or a free of a free page. */
static void run_double_free(bool check_kind, uint64_t budget)
{
	static struct rd x;
	memset(&x, 0, sizeof(x));
	x.kc = kmem_cache_create("race-d", 72, 8, NULL);
	assert_non_null(x.kc);
	struct rd *xp = &x;
	uint64_t deadline = now_ns() + budget;
	uint64_t rng = check_kind ? 78 : 77;
	unsigned rounds = 0;
	unsigned long free_page_faults = 0, odd = 0;
	while (rounds < 20 || (now_ns() < deadline && rounds < 5000)) {
		unsigned n = 0;
		for (int i = 0; i < 64; i++, n++) {
			x.o[n].kind = RD_SMALL;
			x.o[n].p = kmalloc(8 + (size_t)(xrand(&rng) % 2048));
		}
		for (int i = 0; i < 4; i++, n++) {
			x.o[n].kind = RD_LARGE;
			/* One big one: its free takes long under the heap lock. */
			size_t extra = i ? (size_t)(xrand(&rng) % 200000)
			                 : FX_MIB + (size_t)(xrand(&rng) % (3 * FX_MIB));
			x.o[n].p = kmalloc(KMEM_SMALL_MAX + 1 + extra);
		}
		for (int i = 0; i < 4; i++, n++) {
			x.o[n].kind = RD_RUN;
			x.o[n].pages = 1 + (size_t)(xrand(&rng) % 8);
			x.o[n].p = kpage_alloc(x.o[n].pages, PG, 0);
		}
		for (int i = 0; i < 8; i++, n++) {
			x.o[n].kind = RD_CACHE;
			x.o[n].p = kmem_cache_alloc(x.kc);
		}
		assert_int_equal(n, RD_N);
		for (unsigned i = 0; i < n; i++)
			assert_non_null(x.o[i].p);
		/* Objects of a span no CPU holds too: flush CPU 0 now and then. */
		if (rounds % 3 == 0) {
			assert_int_equal(kmem_cpu_offline(0), 0);
			assert_int_equal(kmem_cpu_online(0), 0);
		}
		faults_reset();
		atomic_store(&x.go.arrived, 0);
		x.go.n = 2;
		x.reverse = (int)(rounds % 2);
		struct rd_arg args[2] = {{xp, 0}, {xp, 1}};
		pthread_t t[2];
		start(&t[0], rd_thread, &args[0]);
		start(&t[1], rd_thread, &args[1]);
		join(t[0]);
		join(t[1]);
		/* Two frees of a small object at the same moment can both go
		 * into magazines; the copy whose state is stale is reported
		 * when it is found (malloc.c): at the latest when the depots
		 * are drained and every magazine flushed. */
		kmem_reclaim();
		/* Exactly one of each pair of frees was reported. */
		unsigned long dbl = atomic_load(&faults[KMEM_FAULT_DOUBLE_FREE]);
		unsigned long fp = atomic_load(&faults[KMEM_FAULT_FREE_PAGE]);
		if (faults_total() != RD_N)
			fail_msg("round %u: %lu faults for %d objects freed twice by two threads",
			         rounds, faults_total(), RD_N);
		/* And reported as what it is: freed already (the bit, the span
		 * state, or its pages are free). */
		odd += RD_N - (dbl + fp);
		if (check_kind && dbl + fp != RD_N)
			fail_msg("round %u: %lu double-free + %lu free-page faults of %d; another was"
			         " reported as \"%s\" (%s)",
			         rounds, dbl, fp, RD_N,
			         kmem_fault_name((enum kmem_fault_kind)atomic_load(&odd_fault_kind)),
			         atomic_load(&odd_fault_detail) ? atomic_load(&odd_fault_detail) : "-");
		assert_true(fp <= 8); /* only large objects and runs can be gone */
		free_page_faults += fp;
		faults_reset();
		check_heap();
		if (rounds % 16 == 0) {
			/* Each object was freed exactly once: nothing in use. */
			fx_install_fault_hook();
			fx_assert_all_back();
			kmem_set_fault_hook(count_hook);
		}
		rounds++;
	}
	fx_cache_destroy_empty(x.kc);
	print_message("double free: %u rounds x %d objects, %lu second frees saw a free page,"
	              " %lu reported as another kind\n",
	              rounds, RD_N, free_page_faults, odd);
}

static void test_race_double_free(void **state)
{
	(void)state;
	run_double_free(false, budget_ns());
}

/* The second free's report names the right kind even while the first free
 * is returning the pages. */
static void test_race_double_free_kind(void **state)
{
	(void)state;
	run_double_free(true, budget_ns());
}

/* ------------------------------------------------------------------------
 * e. Interrupts
 */

#define RE_WORKERS 3
#define RE_KEEP 64
#define RE_STASH 8

struct re_worker {
	struct re *x;
	int cpu;
	pthread_t th;
	_Atomic bool ready;
	/* interrupt-context state (touched only by the handler) */
	bool in_irq;
	uint64_t irq_rng;
	void *stash[RE_STASH];
	size_t stash_size[RE_STASH];
	/* counts */
	_Atomic unsigned long handled, raised_sync, signals, signals_masked, objs;
};

struct re {
	uint64_t deadline;
	struct kmem_cache *kc;
	_Atomic bool stop_signals, may_exit;
	struct re_worker w[RE_WORKERS];
};

static _Thread_local struct re_worker *re_self;

static size_t re_size(uint64_t r)
{
	switch (r % 8) {
	case 0:
		return KMEM_SMALL_MAX + 8 + (size_t)(r % 20000);
	case 1:
	case 2:
		return 1024 + (size_t)(r >> 8) % 3000;
	default:
		return 8 + (size_t)(r >> 8) % 512;
	}
}

static void re_irq_handler(void *arg)
{
	struct re_worker *w = arg;
	if (!host_irq_disabled())
		thread_fail("interrupt handler entered with interrupts on");
	w->in_irq = true;
	atomic_fetch_add_explicit(&w->handled, 1, memory_order_relaxed);
	unsigned n = 1 + (unsigned)(xrand(&w->irq_rng) % 3);
	for (unsigned k = 0; k < n; k++) {
		size_t sz = re_size(xrand(&w->irq_rng));
		void *p = kmalloc(sz);
		if (!p) {
			thread_fail("kmalloc(%zu) in an interrupt failed", sz);
			break;
		}
		fx_fill(p, sz < 256 ? sz : 256, (uintptr_t)p);
		unsigned i = (unsigned)(xrand(&w->irq_rng) % RE_STASH);
		if (w->stash[i]) {
			size_t os = w->stash_size[i];
			if (fx_check(w->stash[i], os < 256 ? os : 256, (uintptr_t)w->stash[i]) != (size_t)-1)
				thread_fail("interrupt object %p corrupted", w->stash[i]);
			kfree(w->stash[i]);
		}
		w->stash[i] = p;
		w->stash_size[i] = sz;
	}
	/* And an object cache allocation, freed at once. */
	void *c = kmem_cache_alloc(w->x->kc);
	if (!c)
		thread_fail("kmem_cache_alloc in an interrupt failed");
	else
		kmem_cache_free(w->x->kc, c);
	w->in_irq = false;
}

static void re_signal(int sig)
{
	(void)sig;
	int e = errno;
	struct re_worker *w = re_self;
	if (w) {
		atomic_fetch_add_explicit(&w->signals, 1, memory_order_relaxed);
		if (host_irq_disabled())
			atomic_fetch_add_explicit(&w->signals_masked, 1, memory_order_relaxed);
		host_irq_raise();
	}
	errno = e;
}

/* The cache's constructor runs with interrupts on: an interrupt raised in
 * it runs its handler in the middle of kmem_cache_alloc. */
static void re_ctor(void *obj)
{
	memset(obj, 0xc5, 40);
	struct re_worker *w = re_self;
	if (w && !w->in_irq && !host_irq_disabled()) {
		atomic_fetch_add_explicit(&w->raised_sync, 1, memory_order_relaxed);
		host_irq_raise();
	}
}

static void *re_thread(void *arg)
{
	struct re_worker *w = arg;
	struct re *x = w->x;
	host_cpu_claim(w->cpu);
	w->irq_rng = (uint64_t)w->cpu * 1000003u;
	re_self = w;
	host_irq_set_handler(re_irq_handler, w);
	atomic_store(&w->ready, true);
	void *keep[RE_KEEP] = {0};
	size_t keep_size[RE_KEEP] = {0};
	uint64_t rng = (uint64_t)w->cpu;
	unsigned long objs = 0;
	while (now_ns() < x->deadline && !atomic_load(&thread_errors)) {
		unsigned i = (unsigned)(xrand(&rng) % RE_KEEP);
		if (keep[i]) {
			size_t s = keep_size[i];
			if (fx_check(keep[i], s < 512 ? s : 512, (uintptr_t)keep[i]) != (size_t)-1)
				thread_fail("object %p of %zu B corrupted", keep[i], s);
			kfree(keep[i]);
			keep[i] = NULL;
		}
		uint64_t r = xrand(&rng);
		size_t sz = re_size(r);
		bool from_cache = false;
		void *p;
		if (r % 5 == 0) {
			/* An interrupt arrives while we allocate: it is held until
			 * interrupts are on again, then its handler runs. */
			unsigned long f = arch_irq_save();
			p = kmalloc(sz);
			unsigned nr = 1 + (unsigned)(r >> 60) % 4;
			for (unsigned k = 0; k < nr; k++) {
				atomic_fetch_add_explicit(&w->raised_sync, 1, memory_order_relaxed);
				host_irq_raise();
			}
			void *q = kmalloc(24);
			unsigned long before = atomic_load_explicit(&w->handled, memory_order_relaxed);
			arch_irq_restore(f);
			if (atomic_load_explicit(&w->handled, memory_order_relaxed) == before && f == 0)
				thread_fail("a held interrupt did not run when interrupts came back on");
			kfree(q);
		} else if (r % 5 == 1) {
			p = kmem_cache_alloc(x->kc);
			sz = 40;
			from_cache = true;
			if (p) {
				const unsigned char *b = p;
				for (int k = 0; k < 40; k++)
					if (b[k] != 0xc5) {
						thread_fail("cache object %p not constructed", p);
						break;
					}
			}
		} else {
			p = kmalloc(sz);
		}
		if (!p) {
			thread_fail("allocation of %zu B failed", sz);
			break;
		}
		if (from_cache) {
			kmem_cache_free(x->kc, p);
			continue;
		}
		fx_fill(p, sz < 512 ? sz : 512, (uintptr_t)p);
		keep[i] = p;
		keep_size[i] = sz;
		objs++;
	}
	/* Stay until the signals stop, then run what is pending. */
	while (!atomic_load(&x->may_exit))
		usleep(100);
	arch_irq_restore(arch_irq_save());
	host_irq_set_handler(NULL, NULL);
	re_self = NULL;
	for (unsigned i = 0; i < RE_KEEP; i++)
		if (keep[i]) {
			size_t s = keep_size[i];
			if (fx_check(keep[i], s < 512 ? s : 512, (uintptr_t)keep[i]) != (size_t)-1)
				thread_fail("object %p corrupted", keep[i]);
			kfree(keep[i]);
		}
	for (unsigned i = 0; i < RE_STASH; i++)
		if (w->stash[i])
			kfree(w->stash[i]);
	atomic_store(&w->objs, objs);
	return NULL;
}

static void *re_signaller(void *arg)
{
	struct re *x = arg;
	unsigned k = 0;
	while (!atomic_load(&x->stop_signals)) {
		struct re_worker *w = &x->w[k++ % RE_WORKERS];
		if (atomic_load(&w->ready))
			pthread_kill(w->th, SIGUSR1);
		usleep(20);
	}
	return NULL;
}

static void test_race_interrupts(void **state)
{
	(void)state;
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = re_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);

	static struct re x;
	memset(&x, 0, sizeof(x));
	x.kc = kmem_cache_create("race-e", 40, 8, re_ctor);
	assert_non_null(x.kc);
	x.deadline = now_ns() + budget_ns();
	for (int i = 0; i < RE_WORKERS; i++) {
		x.w[i].x = &x;
		x.w[i].cpu = 1 + i;
		start(&x.w[i].th, re_thread, &x.w[i]);
	}
	pthread_t sig;
	start(&sig, re_signaller, &x);
	while (now_ns() < x.deadline)
		usleep(10000);
	atomic_store(&x.stop_signals, true);
	join(sig);
	atomic_store(&x.may_exit, true);
	for (int i = 0; i < RE_WORKERS; i++)
		join(x.w[i].th);
	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
	assert_no_thread_errors();

	unsigned long handled = 0, raised = 0, sigs = 0, masked = 0, objs = 0;
	for (int i = 0; i < RE_WORKERS; i++) {
		struct re_worker *w = &x.w[i];
		/* Every interrupt raised ran its handler exactly once. */
		unsigned long want = atomic_load(&w->raised_sync) + atomic_load(&w->signals);
		if (atomic_load(&w->handled) != want)
			fail_msg("CPU %d: %lu interrupts raised (%lu in allocations, %lu signals),"
			         " %lu handlers ran: %ld lost",
			         w->cpu, want, atomic_load(&w->raised_sync), atomic_load(&w->signals),
			         atomic_load(&w->handled), (long)(want - atomic_load(&w->handled)));
		assert_true(atomic_load(&w->handled) > 0);
		handled += atomic_load(&w->handled);
		raised += atomic_load(&w->raised_sync);
		sigs += atomic_load(&w->signals);
		masked += atomic_load(&w->signals_masked);
		objs += atomic_load(&w->objs);
	}
	print_message("interrupts: %lu handlers ran (%lu raised inside allocations, %lu signals, "
	              "%lu of them while interrupts were off), %lu thread objects\n",
	              handled, raised, sigs, masked, objs);
	assert_true(raised > 0);
	assert_true(objs > 100);
	check_heap();
	fx_cache_destroy_empty(x.kc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		TSP(test_race_sweep_vs_remote_free),
		TSP(test_race_first_free_full_span),
		TSP(test_race_free_while_span_goes_full),
		T(test_race_publish_lookup),
		T(test_race_double_free),
		T(test_race_double_free_kind),
		T(test_race_interrupts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
