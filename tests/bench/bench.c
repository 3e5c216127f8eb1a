/*
 * tests/bench/bench.c - allocation workloads of the benchmark
 * (tests/bench/run.py drives them; see bench.h for the three builds).
 * Each run prints one line:
 *
 *     ns_per_op=<wall ns per operation> ops=<n> secs=<s> allocator=<...>
 *
 * timed over the workload only: not process start-up, set-up, thread
 * creation or thread exit.  An "operation" is one allocation and its free.
 * Every workload draws its sizes and choices from fixed seeds, so that a
 * run does the same work under every allocator.
 *
 *   bench a SIZE N [NEIGHBOUR]   N malloc+free pairs of SIZE bytes; with
 *                                NEIGHBOUR 1, one more object of SIZE stays
 *                                live for the whole run (allocated before
 *                                the clock starts), so that no allocator
 *                                can give its page back every iteration
 *   bench b N BATCH              random sizes 8..1024: allocate BATCH
 *                                objects, free them in random order; N pairs
 *   bench c THREADS N BATCH      (b) in THREADS threads, N pairs each
 *   bench d N [THREADS]          producer/consumer: THREADS/2 (default 1)
 *                                producers allocate N objects each
 *                                (8..1024 B), as many consumers free them
 *   bench e THREADS ROUNDS N     larson-like: each thread replaces random
 *                                slots of 1000 live objects (16..512 B) N
 *                                times, then exits; the next round's threads
 *                                take over the previous threads' slots
 *   bench k MODE SIZE BATCH N    the bulk API against the single calls: N
 *                                objects of SIZE B in batches of BATCH, each
 *                                batch allocated, then freed; MODE 0: an
 *                                object cache, kmem_cache_alloc/_free per
 *                                object; 1: the same cache,
 *                                kmem_cache_alloc_bulk/_free_bulk per batch;
 *                                2: kmalloc and kfree per object; 3: kmalloc
 *                                per object, kfree_bulk per batch (without
 *                                a bulk API -- malloc, null -- bulk calls are
 *                                loops of single ones)
 *   bench g NPAGES N             page runs: N allocate+free of NPAGES pages
 *                                (NPAGES 0: random 1..512 pages, 16 live)
 *   bench r THREADS N LIVE MAX   large live sets: each thread keeps LIVE
 *                                objects of 8..MAX B and replaces a random
 *                                one N times
 *   bench t THREADS N            per-thread churn: each thread allocates
 *                                batches of 100 objects of 8..256 B and
 *                                frees them, LIFO and in random order by
 *                                turns; N pairs per thread, nothing shared
 *   bench x THREADS ROUNDS MIN MAX
 *                                server pattern: each thread holds 1024
 *                                live objects of MIN..MAX B that another
 *                                thread allocated; per round it allocates
 *                                64 objects and hands them to the next
 *                                thread (a ring of 256 batches, half full at
 *                                the start), takes a batch of the previous
 *                                thread's and puts each object in a random
 *                                slot, freeing what was there: every free
 *                                is of an object another thread allocated;
 *                                ROUNDS rounds per thread
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

#define MAXTHREADS 64

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double now(void)
{
	return (double)now_ns() * 1e-9;
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

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	exit(2);
}

/* A size in [min, min + span). */
static inline size_t draw_size(uint64_t *s, uint32_t min, uint32_t span)
{
	return span == 1 ? min : min + (size_t)(xorshift(s) % span);
}

/*
 * The start line of the multi-threaded workloads: each thread sets itself
 * up and waits at the gate; the clock runs from its opening to the last
 * thread's end of work.  Thread creation and exit (where an allocator
 * flushes the thread's cache) stay outside.
 */
struct gate {
	_Atomic unsigned ready;
	_Atomic int go;
	_Atomic uint64_t end_ns;
};

static void gate_wait(struct gate *g)
{
	atomic_fetch_add(&g->ready, 1);
	while (!atomic_load(&g->go))
		sched_yield();
}

static void gate_done(struct gate *g)
{
	uint64_t t = now_ns(), e = atomic_load(&g->end_ns);
	while (t > e && !atomic_compare_exchange_weak(&g->end_ns, &e, t))
		;
}

/* Runs fn on args[0..n) (each `size` bytes) in n threads through g, a
 * new (zeroed) gate; returns the seconds from the gate's opening to the
 * last gate_done(). */
static double gate_run(struct gate *g, unsigned n, void *(*fn)(void *), void *args, size_t size)
{
	pthread_t t[MAXTHREADS];
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, fn, (char *)args + i * size))
			die("pthread_create failed");
	while (atomic_load(&g->ready) < n)
		sched_yield();
	uint64_t t0 = now_ns();
	atomic_store(&g->go, 1);
	for (unsigned i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	return (double)(atomic_load(&g->end_ns) - t0) * 1e-9;
}

/* A single-producer single-consumer ring of pointers: a slot is full when
 * it is not NULL.  Each side counts its own pushes or pops (i). */
struct ring {
	size_t cap;
	void *_Atomic *slot;
};

static void ring_init(struct ring *r, size_t cap)
{
	r->cap = cap;
	r->slot = calloc(cap, sizeof(*r->slot));
	if (!r->slot)
		die("out of memory");
}

static inline void spin(unsigned *spins)
{
	if (++*spins % 64 == 0)
		sched_yield();
}

static void ring_push(struct ring *r, uint64_t i, void *p)
{
	void *_Atomic *slot = &r->slot[i % r->cap];
	unsigned spins = 0;
	while (atomic_load_explicit(slot, memory_order_acquire))
		spin(&spins);
	atomic_store_explicit(slot, p, memory_order_release);
}

static void *ring_pop(struct ring *r, uint64_t i)
{
	void *_Atomic *slot = &r->slot[i % r->cap];
	void *p;
	unsigned spins = 0;
	while (!(p = atomic_load_explicit(slot, memory_order_acquire)))
		spin(&spins);
	atomic_store_explicit(slot, NULL, memory_order_release);
	return p;
}

/* (a) */
static void bench_fixed(size_t size, uint64_t n, int neighbour)
{
	void *keep = neighbour ? b_alloc(size) : NULL;
	escape(keep);
	double t0 = now();
	for (uint64_t i = 0; i < n; i++) {
		void *p = b_alloc(size);
		escape(p);
		b_free(p);
	}
	report(now() - t0, n);
	if (keep)
		b_free(keep);
}

/* (b), (c), (t): sizes and free order are fixed before the clock starts. */
struct batch {
	size_t n;
	uint32_t *size;  /* per allocation */
	uint32_t *order; /* free order: a permutation */
	void **obj;
};

static void batch_setup(struct batch *b, size_t n, uint64_t seed, uint32_t maxsize)
{
	b->n = n;
	b->size = malloc(n * sizeof(uint32_t));
	b->order = malloc(n * sizeof(uint32_t));
	b->obj = malloc(n * sizeof(void *));
	if (!b->size || !b->order || !b->obj)
		die("out of memory");
	uint64_t s = seed | 1;
	for (size_t i = 0; i < n; i++) {
		b->size[i] = (uint32_t)draw_size(&s, 8, maxsize - 7);
		b->order[i] = (uint32_t)i;
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = xorshift(&s) % (i + 1);
		uint32_t t = b->order[i];
		b->order[i] = b->order[j];
		b->order[j] = t;
	}
}

static void batch_free(struct batch *b)
{
	free(b->size);
	free(b->order);
	free(b->obj);
}

/* `pairs` allocations in batches; with `lifo`, every other batch is freed
 * last-in first-out instead of in the random order. */
static void batch_run(struct batch *b, uint64_t pairs, int lifo)
{
	for (uint64_t done = 0, round = 0; done < pairs; round++) {
		size_t n = pairs - done < b->n ? (size_t)(pairs - done) : b->n;
		for (size_t i = 0; i < n; i++) {
			b->obj[i] = b_alloc(b->size[i]);
			escape(b->obj[i]);
		}
		if (lifo && round % 2) {
			for (size_t i = n; i-- > 0;)
				b_free(b->obj[i]);
		} else {
			for (size_t i = 0; i < b->n; i++)
				if (b->order[i] < n)
					b_free(b->obj[b->order[i]]);
		}
		done += n;
	}
}

static void bench_batch(uint64_t n, size_t batch)
{
	struct batch b;
	batch_setup(&b, batch, 42, 1024);
	double t0 = now();
	batch_run(&b, n, 0);
	report(now() - t0, n);
	batch_free(&b);
}

struct cargs {
	uint64_t n;
	size_t batch;
	uint32_t maxsize;
	int lifo;
	unsigned id;
	struct gate *gate;
};

static void *batch_thread(void *arg)
{
	struct cargs *a = arg;
	struct batch b;
	batch_setup(&b, a->batch, 42 + a->id, a->maxsize);
	gate_wait(a->gate);
	batch_run(&b, a->n, a->lifo);
	gate_done(a->gate);
	batch_free(&b);
	return NULL;
}

/* (c) and (t) */
static void bench_threads(unsigned nthreads, uint64_t n, size_t batch, uint32_t maxsize, int lifo)
{
	struct cargs a[MAXTHREADS];
	struct gate g = {0};
	for (unsigned i = 0; i < nthreads; i++)
		a[i] = (struct cargs){.n = n, .batch = batch, .maxsize = maxsize, .lifo = lifo, .id = i,
				      .gate = &g};
	report(gate_run(&g, nthreads, batch_thread, a, sizeof(a[0])), n * nthreads);
}

/* (d): pairs of a producer and a consumer, each pair with its own ring. */
#define RING 1024
struct pargs {
	struct ring *ring;
	uint64_t n, seed;
	int producer;
	struct gate *gate;
};

static void *prodcons_thread(void *arg)
{
	struct pargs *a = arg;
	uint64_t s = a->seed;
	gate_wait(a->gate);
	for (uint64_t i = 0; i < a->n; i++) {
		if (a->producer) {
			void *p = b_alloc(draw_size(&s, 8, 1017));
			escape(p);
			ring_push(a->ring, i, p);
		} else {
			b_free(ring_pop(a->ring, i));
		}
	}
	gate_done(a->gate);
	return NULL;
}

static void bench_prodcons(uint64_t n, unsigned nthreads)
{
	struct ring ring[MAXTHREADS / 2];
	struct pargs a[MAXTHREADS];
	struct gate g = {0};
	for (unsigned i = 0; i < nthreads; i++) {
		if (i % 2 == 0)
			ring_init(&ring[i / 2], RING);
		a[i] = (struct pargs){.ring = &ring[i / 2], .n = n, .seed = 7 + i / 2, .producer = i % 2 == 0,
				      .gate = &g};
	}
	report(gate_run(&g, nthreads, prodcons_thread, a, sizeof(a[0])), n * (nthreads / 2));
	for (unsigned i = 0; i < nthreads / 2; i++) {
		for (size_t k = 0; k < RING; k++)
			if (ring[i].slot[k])
				die("(d): an object was left in a ring");
		free(ring[i].slot);
	}
}

/* (e) and (r): replace random slots of a live set. */
struct largs {
	void **slots;
	unsigned nslots;
	uint32_t minsize, span;
	uint64_t n, seed;
	struct gate *gate;
};

static void replace_slots(struct largs *a)
{
	uint64_t s = a->seed;
	for (uint64_t i = 0; i < a->n; i++) {
		size_t k = xorshift(&s) % a->nslots;
		b_free(a->slots[k]);
		a->slots[k] = b_alloc(draw_size(&s, a->minsize, a->span));
		escape(a->slots[k]);
	}
	a->seed = s;
}

static void fill_slots(struct largs *a)
{
	for (unsigned k = 0; k < a->nslots; k++)
		a->slots[k] = b_alloc(draw_size(&a->seed, a->minsize, a->span));
}

static void free_slots(void **slots, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		if (!slots[k])
			die("a live slot was lost");
		b_free(slots[k]);
	}
}

/* (e) */
#define LARSON_SLOTS 1000

static void *larson_thread(void *arg)
{
	replace_slots(arg);
	return NULL;
}

static void bench_larson(unsigned nthreads, unsigned rounds, uint64_t n)
{
	void **slots[MAXTHREADS];
	struct largs a[MAXTHREADS];
	uint64_t s = 3;
	for (unsigned i = 0; i < nthreads; i++) {
		slots[i] = malloc(LARSON_SLOTS * sizeof(void *));
		if (!slots[i])
			die("out of memory");
		/* Set-up sizes come from one sequence over all threads. */
		a[i] = (struct largs){.slots = slots[i], .nslots = LARSON_SLOTS, .minsize = 16, .span = 497,
				      .n = n, .seed = s};
		fill_slots(&a[i]);
		s = a[i].seed;
		a[i].seed = 1000 + i;
	}
	double t0 = now();
	for (unsigned r = 0; r < rounds; r++) {
		pthread_t t[MAXTHREADS];
		for (unsigned i = 0; i < nthreads; i++) {
			/* Round r's thread i takes over round r-1's thread i+r's
			 * objects: it frees what another thread allocated. */
			a[i].slots = slots[(i + r) % nthreads];
			if (pthread_create(&t[i], NULL, larson_thread, &a[i]))
				die("pthread_create failed");
		}
		for (unsigned i = 0; i < nthreads; i++)
			pthread_join(t[i], NULL);
	}
	report(now() - t0, (uint64_t)rounds * nthreads * n);
	for (unsigned i = 0; i < nthreads; i++) {
		free_slots(slots[i], LARSON_SLOTS);
		free(slots[i]);
	}
}

/* (r) */
static void *live_thread(void *arg)
{
	struct largs *a = arg;
	fill_slots(a);
	gate_wait(a->gate);
	replace_slots(a);
	gate_done(a->gate);
	free_slots(a->slots, a->nslots);
	return NULL;
}

static void bench_live(unsigned nthreads, uint64_t n, unsigned live, uint32_t maxsize)
{
	struct largs a[MAXTHREADS];
	struct gate g = {0};
	for (unsigned i = 0; i < nthreads; i++) {
		a[i] = (struct largs){.slots = malloc(live * sizeof(void *)), .nslots = live, .minsize = 8,
				      .span = maxsize - 7, .n = n, .seed = 5 + 2 * i, .gate = &g};
		if (!a[i].slots)
			die("out of memory");
	}
	report(gate_run(&g, nthreads, live_thread, a, sizeof(a[0])), n * nthreads);
	for (unsigned i = 0; i < nthreads; i++)
		free(a[i].slots);
}

/* (x) */
#define XBATCH 64
#define XSLOTS 1024
#define XRING 256
#define XFILL (XRING / 2) /* batches in flight per ring from the start */

struct xargs {
	void **slots;      /* XSLOTS objects the previous thread allocated */
	void **next_slots; /* the next thread's, filled here at set-up */
	struct ring *in, *out;
	void **bufs;       /* XFILL + 1 batch buffers; they travel with the batches */
	uint32_t minsize, span;
	uint64_t rounds, seed;
	struct gate *gate;
};

static void *server_thread(void *arg)
{
	struct xargs *a = arg;
	uint64_t s = a->seed;
	for (unsigned k = 0; k < XSLOTS; k++)
		a->next_slots[k] = b_alloc(draw_size(&s, a->minsize, a->span));
	/* Batches in flight from the start: a thread that runs ahead of the
	 * previous one (the machine is shared) waits only after XFILL rounds;
	 * and as each thread hands a batch on before it waits for one, the
	 * ring of threads never stalls. */
	for (unsigned f = 0; f < XFILL; f++) {
		void **b = a->bufs + f * XBATCH;
		for (unsigned i = 0; i < XBATCH; i++)
			b[i] = b_alloc(draw_size(&s, a->minsize, a->span));
		ring_push(a->out, f, b);
	}
	void **spare = a->bufs + XFILL * XBATCH;
	gate_wait(a->gate);
	for (uint64_t r = 0; r < a->rounds; r++) {
		void **b = spare;
		for (unsigned i = 0; i < XBATCH; i++) {
			b[i] = b_alloc(draw_size(&s, a->minsize, a->span));
			escape(b[i]);
		}
		ring_push(a->out, r + XFILL, b);
		b = ring_pop(a->in, r);
		for (unsigned i = 0; i < XBATCH; i++) {
			size_t k = xorshift(&s) % XSLOTS;
			b_free(a->slots[k]);
			a->slots[k] = b[i];
		}
		spare = b;
	}
	gate_done(a->gate);
	return NULL;
}

static void bench_server(unsigned nthreads, uint64_t rounds, uint32_t minsize, uint32_t maxsize)
{
	struct xargs a[MAXTHREADS];
	struct ring ring[MAXTHREADS];
	struct gate g = {0};
	for (unsigned i = 0; i < nthreads; i++) {
		ring_init(&ring[i], XRING);
		a[i] = (struct xargs){.slots = calloc(XSLOTS, sizeof(void *)), .in = &ring[i],
				      .bufs = malloc((XFILL + 1) * XBATCH * sizeof(void *)), .minsize = minsize,
				      .span = maxsize - minsize + 1, .rounds = rounds, .seed = 17 + i, .gate = &g};
		if (!a[i].slots || !a[i].bufs)
			die("out of memory");
	}
	/* Thread i hands batches and its set-up objects to thread i+1. */
	for (unsigned i = 0; i < nthreads; i++) {
		a[i].out = &ring[(i + 1) % nthreads];
		a[i].next_slots = a[(i + 1) % nthreads].slots;
	}
	report(gate_run(&g, nthreads, server_thread, a, sizeof(a[0])), rounds * XBATCH * nthreads);
	/* Each ring ends as it started, with XFILL batches in it. */
	for (unsigned i = 0; i < nthreads; i++) {
		for (unsigned f = 0; f < XFILL; f++) {
			void **b = ring_pop(&ring[i], rounds + f);
			for (unsigned k = 0; k < XBATCH; k++)
				b_free(b[k]);
		}
		for (size_t k = 0; k < XRING; k++)
			if (ring[i].slot[k])
				die("(x): a batch was left in a ring");
		free_slots(a[i].slots, XSLOTS);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		free(ring[i].slot);
		free(a[i].slots);
		free(a[i].bufs);
	}
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
	if (!want)
		die("out of memory");
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

static uint64_t parse(char **argv, int i, uint64_t lo, uint64_t hi)
{
	char *end;
	unsigned long long v = strtoull(argv[i], &end, 0);
	if (!*argv[i] || *end || v < lo || v > hi) {
		fprintf(stderr, "bench: %s: argument %d is '%s', want a number in %llu..%llu\n", argv[1], i,
			argv[i], (unsigned long long)lo, (unsigned long long)hi);
		exit(2);
	}
	return v;
}

/* Argument i: a number in [lo, hi]. */
static uint64_t arg(int argc, char **argv, int i, uint64_t lo, uint64_t hi)
{
	if (i >= argc) {
		fprintf(stderr, "bench: %s: missing argument %d (see tests/bench/bench.c)\n", argv[1], i);
		exit(2);
	}
	return parse(argv, i, lo, hi);
}

/* An optional argument i; `def` when absent. */
static uint64_t argopt(int argc, char **argv, int i, uint64_t lo, uint64_t hi, uint64_t def)
{
	return i < argc ? parse(argv, i, lo, hi) : def;
}

/* (k) */
static void bench_bulk(unsigned mode, size_t size, size_t batch, uint64_t n)
{
	b_cache_t c = b_cache_new(size);
	void **p = malloc(batch * sizeof(void *));
	if (!p)
		die("out of memory");
	uint64_t rounds = (n + batch - 1) / batch;
	double t0 = now();
	for (uint64_t r = 0; r < rounds; r++) {
		switch (mode) {
		case 0:
			for (size_t i = 0; i < batch; i++)
				p[i] = b_cache_alloc(c);
			escape(p);
			for (size_t i = 0; i < batch; i++)
				b_cache_free(c, p[i]);
			break;
		case 1:
			if (!b_cache_alloc_bulk(c, batch, p))
				die("bulk allocation failed");
			escape(p);
			b_cache_free_bulk(c, batch, p);
			break;
		default:
			for (size_t i = 0; i < batch; i++)
				p[i] = b_alloc(size);
			escape(p);
			if (mode == 3) {
				b_free_bulk(batch, p);
			} else {
				for (size_t i = 0; i < batch; i++)
					b_free(p[i]);
			}
			break;
		}
	}
	report(now() - t0, rounds * batch);
	free(p);
}

/* Operation counts: a product with the thread count must not overflow. */
#define N_MAX (UINT64_MAX / 1024 / MAXTHREADS)
#define SIZE_MAX_ARG (1u << 20)
#define KMEM_BULK_SIZE_MAX 32768 /* (k): object caches hold up to 32 KiB */

int main(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == 0 || argv[1][1] != 0) {
		fprintf(stderr, "usage: bench a|b|c|d|e|g|k|r|t|x ... (see tests/bench/bench.c)\n");
		return 2;
	}
	bench_init();
	char w = argv[1][0];
	unsigned nthreads = 0;
	if (strchr("cerstx", w))
		nthreads = (unsigned)arg(argc, argv, 2, 1, MAXTHREADS);
	switch (w) {
	case 'a':
		bench_fixed(arg(argc, argv, 2, 1, SIZE_MAX_ARG), arg(argc, argv, 3, 1, N_MAX),
			    (int)argopt(argc, argv, 4, 0, 1, 0));
		break;
	case 'b': bench_batch(arg(argc, argv, 2, 1, N_MAX), arg(argc, argv, 3, 1, 1 << 24)); break;
	case 'c':
		bench_threads(nthreads, arg(argc, argv, 3, 1, N_MAX), arg(argc, argv, 4, 1, 1 << 24), 1024, 0);
		break;
	case 'd':
		nthreads = (unsigned)argopt(argc, argv, 3, 2, MAXTHREADS, 2);
		if (nthreads % 2)
			die("d: THREADS must be even (producer and consumer pairs)");
		bench_prodcons(arg(argc, argv, 2, 1, N_MAX), nthreads);
		break;
	case 'e':
		bench_larson(nthreads, (unsigned)arg(argc, argv, 3, 1, 1000000), arg(argc, argv, 4, 1, N_MAX));
		break;
	case 'k':
		bench_bulk((unsigned)arg(argc, argv, 2, 0, 3), arg(argc, argv, 3, 1, KMEM_BULK_SIZE_MAX),
			   arg(argc, argv, 4, 1, 1 << 20), arg(argc, argv, 5, 1, N_MAX));
		break;
	case 'g': bench_pages(arg(argc, argv, 2, 0, 1 << 20), arg(argc, argv, 3, 1, N_MAX)); break;
	case 'r':
		bench_live(nthreads, arg(argc, argv, 3, 1, N_MAX), (unsigned)arg(argc, argv, 4, 1, 1 << 26),
			   (uint32_t)arg(argc, argv, 5, 8, SIZE_MAX_ARG));
		break;
	case 't': bench_threads(nthreads, arg(argc, argv, 3, 1, N_MAX), 100, 256, 1); break;
	case 'x': {
		uint64_t rounds = arg(argc, argv, 3, 1, N_MAX / XBATCH);
		uint32_t min = (uint32_t)arg(argc, argv, 4, 1, SIZE_MAX_ARG);
		bench_server(nthreads, rounds, min, (uint32_t)arg(argc, argv, 5, min, SIZE_MAX_ARG));
		break;
	}
	default:
		fprintf(stderr, "bench: unknown workload %s\n", argv[1]);
		return 2;
	}
	return 0;
}
