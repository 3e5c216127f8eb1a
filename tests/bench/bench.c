/*
 * tests/bench/bench.c - allocation workloads (a)-(e) and (g) of the
 * benchmark (tests/bench/run.py drives them; see bench.h for the two
 * builds).  Each run prints one line:
 *
 *     ns_per_op=<wall ns per operation> ops=<n> secs=<s> allocator=<...>
 *
 * timed over the workload only (not process start-up or set-up).  An
 * "operation" is one allocation and its free.
 *
 *   bench a SIZE N            N malloc+free pairs of SIZE bytes
 *   bench b N BATCH           random sizes 8..1024: allocate BATCH objects,
 *                             free them in random order; N pairs in all
 *   bench c THREADS N BATCH   (b) in THREADS threads, N pairs each
 *   bench d N                 producer/consumer: one thread allocates
 *                             (8..1024 B), another frees; N objects
 *   bench e THREADS ROUNDS N  larson-like: each thread replaces random
 *                             slots of 1000 live objects (16..512 B) N
 *                             times, then exits; the next round's threads
 *                             take over the previous threads' slots
 *   bench g NPAGES N          page runs: N allocate+free of NPAGES pages
 *                             (NPAGES 0: random 1..512 pages, 16 live)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps the compiler from pairing (and removing) an allocation and its
 * free. */
static inline void escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static inline uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void report(double secs, uint64_t ops)
{
	printf("ns_per_op=%.3f ops=%llu secs=%.4f allocator=%s\n", secs * 1e9 / (double)ops,
	       (unsigned long long)ops, secs, BENCH_ALLOCATOR);
}

/* (a) */
static void bench_fixed(size_t size, uint64_t n)
{
	double t0 = now();
	for (uint64_t i = 0; i < n; i++) {
		void *p = b_alloc(size);
		escape(p);
		b_free(p);
	}
	report(now() - t0, n);
}

/* (b): sizes and free order are fixed before the clock starts. */
struct batch {
	size_t n;
	uint32_t *size;  /* per allocation */
	uint32_t *order; /* free order: a permutation */
	void **obj;
};

static void batch_setup(struct batch *b, size_t n, uint64_t seed)
{
	b->n = n;
	b->size = malloc(n * sizeof(uint32_t));
	b->order = malloc(n * sizeof(uint32_t));
	b->obj = malloc(n * sizeof(void *));
	uint64_t s = seed | 1;
	for (size_t i = 0; i < n; i++) {
		b->size[i] = (uint32_t)(8 + xorshift(&s) % 1017);
		b->order[i] = (uint32_t)i;
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = xorshift(&s) % (i + 1);
		uint32_t t = b->order[i];
		b->order[i] = b->order[j];
		b->order[j] = t;
	}
}

static void batch_run(struct batch *b, uint64_t pairs)
{
	for (uint64_t done = 0; done < pairs;) {
		size_t n = pairs - done < b->n ? (size_t)(pairs - done) : b->n;
		for (size_t i = 0; i < n; i++) {
			b->obj[i] = b_alloc(b->size[i]);
			escape(b->obj[i]);
		}
		for (size_t i = 0; i < b->n; i++)
			if (b->order[i] < n)
				b_free(b->obj[b->order[i]]);
		done += n;
	}
}

static void bench_batch(uint64_t n, size_t batch)
{
	struct batch b;
	batch_setup(&b, batch, 42);
	double t0 = now();
	batch_run(&b, n);
	report(now() - t0, n);
}

/* (c) */
struct cargs {
	uint64_t n;
	size_t batch;
	unsigned id;
	_Atomic unsigned *go;
};

static void *batch_thread(void *arg)
{
	struct cargs *a = arg;
	struct batch b;
	batch_setup(&b, a->batch, 42 + a->id);
	while (!atomic_load(a->go))
		sched_yield();
	batch_run(&b, a->n);
	return NULL;
}

static void bench_threads(unsigned nthreads, uint64_t n, size_t batch)
{
	pthread_t t[64];
	struct cargs a[64];
	_Atomic unsigned go = 0;
	for (unsigned i = 0; i < nthreads; i++) {
		a[i] = (struct cargs){.n = n, .batch = batch, .id = i, .go = &go};
		pthread_create(&t[i], NULL, batch_thread, &a[i]);
	}
	double t0 = now();
	atomic_store(&go, 1);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	report(now() - t0, n * nthreads);
}

/* (d): a single-producer single-consumer ring. */
#define RING 1024
static void *_Atomic ring[RING];

static void *consumer(void *arg)
{
	uint64_t n = *(uint64_t *)arg;
	for (uint64_t i = 0; i < n; i++) {
		void *_Atomic *slot = &ring[i % RING];
		void *p;
		unsigned spins = 0;
		while (!(p = atomic_load_explicit(slot, memory_order_acquire)))
			if (++spins % 64 == 0)
				sched_yield();
		atomic_store_explicit(slot, NULL, memory_order_relaxed);
		b_free(p);
	}
	return NULL;
}

static void bench_prodcons(uint64_t n)
{
	pthread_t t;
	uint64_t s = 7;
	double t0 = now();
	pthread_create(&t, NULL, consumer, &n);
	for (uint64_t i = 0; i < n; i++) {
		void *p = b_alloc(8 + xorshift(&s) % 1017);
		void *_Atomic *slot = &ring[i % RING];
		unsigned spins = 0;
		while (atomic_load_explicit(slot, memory_order_relaxed))
			if (++spins % 64 == 0)
				sched_yield();
		atomic_store_explicit(slot, p, memory_order_release);
	}
	pthread_join(t, NULL);
	report(now() - t0, n);
}

/* (e) */
#define LARSON_SLOTS 1000
struct largs {
	void **slots;
	uint64_t n, seed;
};

static void *larson_thread(void *arg)
{
	struct largs *a = arg;
	uint64_t s = a->seed;
	for (uint64_t i = 0; i < a->n; i++) {
		size_t k = xorshift(&s) % LARSON_SLOTS;
		b_free(a->slots[k]);
		a->slots[k] = b_alloc(16 + xorshift(&s) % 497);
		escape(a->slots[k]);
	}
	a->seed = s;
	return NULL;
}

static void bench_larson(unsigned nthreads, unsigned rounds, uint64_t n)
{
	void **slots[64];
	struct largs a[64];
	uint64_t s = 3;
	for (unsigned i = 0; i < nthreads; i++) {
		slots[i] = malloc(LARSON_SLOTS * sizeof(void *));
		for (unsigned k = 0; k < LARSON_SLOTS; k++)
			slots[i][k] = b_alloc(16 + xorshift(&s) % 497);
		a[i].seed = 1000 + i;
	}
	double t0 = now();
	for (unsigned r = 0; r < rounds; r++) {
		pthread_t t[64];
		for (unsigned i = 0; i < nthreads; i++) {
			/* Round r's thread i takes over round r-1's thread i+r's
			 * objects: it frees what another thread allocated. */
			a[i].slots = slots[(i + r) % nthreads];
			a[i].n = n;
			pthread_create(&t[i], NULL, larson_thread, &a[i]);
		}
		for (unsigned i = 0; i < nthreads; i++)
			pthread_join(t[i], NULL);
	}
	report(now() - t0, (uint64_t)rounds * nthreads * n);
	for (unsigned i = 0; i < nthreads; i++)
		for (unsigned k = 0; k < LARSON_SLOTS; k++)
			b_free(slots[i][k]);
}

/* (g) */
static void bench_pages(size_t npages, uint64_t n)
{
	if (npages) {
		double t0 = now();
		for (uint64_t i = 0; i < n; i++) {
			void *p = b_pages(npages);
			escape(p);
			b_pages_free(p, npages);
		}
		report(now() - t0, n);
		return;
	}
	enum { LIVE = 16 };
	void *live[LIVE] = {0};
	size_t np[LIVE] = {0};
	uint32_t *want = malloc(n * sizeof(uint32_t));
	uint64_t s = 11;
	for (uint64_t i = 0; i < n; i++)
		want[i] = (uint32_t)(1 + xorshift(&s) % 512);
	double t0 = now();
	for (uint64_t i = 0; i < n; i++) {
		unsigned k = (unsigned)(i % LIVE);
		if (live[k])
			b_pages_free(live[k], np[k]);
		np[k] = want[i];
		live[k] = b_pages(np[k]);
		escape(live[k]);
	}
	report(now() - t0, n);
	for (unsigned k = 0; k < LIVE; k++)
		if (live[k])
			b_pages_free(live[k], np[k]);
	free(want);
}

static uint64_t arg(int argc, char **argv, int i)
{
	if (i >= argc) {
		fprintf(stderr, "bench: missing argument %d (see tests/bench/bench.c)\n", i);
		exit(2);
	}
	return strtoull(argv[i], NULL, 0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench a|b|c|d|e|g ... (see tests/bench/bench.c)\n");
		return 2;
	}
	bench_init();
	switch (argv[1][0]) {
	case 'a': bench_fixed(arg(argc, argv, 2), arg(argc, argv, 3)); break;
	case 'b': bench_batch(arg(argc, argv, 2), arg(argc, argv, 3)); break;
	case 'c': bench_threads((unsigned)arg(argc, argv, 2), arg(argc, argv, 3), arg(argc, argv, 4)); break;
	case 'd': bench_prodcons(arg(argc, argv, 2)); break;
	case 'e': bench_larson((unsigned)arg(argc, argv, 2), (unsigned)arg(argc, argv, 3), arg(argc, argv, 4)); break;
	case 'g': bench_pages(arg(argc, argv, 2), arg(argc, argv, 3)); break;
	default:
		fprintf(stderr, "bench: unknown workload %s\n", argv[1]);
		return 2;
	}
	return 0;
}
