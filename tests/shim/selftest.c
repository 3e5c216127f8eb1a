/*
 * tests/shim/selftest.c - checks of the malloc shim that real programs do
 * not reliably exercise.  Built against plain malloc and run under
 * LD_PRELOAD=libspanalloc-malloc.so by tests/shim/run.sh.
 *
 *   selftest all            API semantics, growth beyond the first chunk,
 *                           more threads than CPU slots, thread churn,
 *                           cross-thread frees, fork from a busy process
 *   selftest double-free    must die of SIGABRT after one line on stderr
 *   selftest interior       ditto
 *   selftest wild           ditto
 *
 * Prints "selftest: ok" and exits 0 when every check passed; on a failed
 * check prints what and where, exits 1.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "selftest: FAIL %s:%d: %s\n", __FILE__,  \
			        __LINE__, #c);                                 \
			failures++;                                            \
		}                                                              \
	} while (0)

/* Keeps the compiler from pairing a malloc with its free. */
static void *volatile sink;

/* Hides a pointer's origin and a size's value from the compiler, so that
 * deliberate misuse compiles without warnings. */
static void *launder(void *p)
{
	__asm__ volatile("" : "+r"(p));
	return p;
}
static volatile size_t huge = SIZE_MAX / 2;
static volatile size_t odd_align = 24; /* not a power of two */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void check_shim_loaded(void)
{
	Dl_info info;
	void *m = dlsym(RTLD_DEFAULT, "malloc");
	CHECK(m && dladdr(m, &info) && info.dli_fname && strstr(info.dli_fname, "spanalloc"));
	if (m && dladdr(m, &info))
		printf("selftest: malloc from %s\n", info.dli_fname);
}

static void test_api(void)
{
	/* Alignment: 16 bytes above 8 bytes, like glibc. */
	for (size_t n = 1; n <= 4096; n++) {
		char *p = malloc(n);
		CHECK(p != NULL);
		if (!p)
			return;
		if (n > 8)
			CHECK(((uintptr_t)p & 15) == 0);
		CHECK(malloc_usable_size(p) >= n);
		memset(p, 0xab, n);
		free(p);
	}
	void *z = malloc(0);
	CHECK(z != NULL);
	free(z);
	free(NULL);
	CHECK(malloc_usable_size(NULL) == 0);

	/* calloc zeroes, also after reuse, also large; overflow fails. */
	for (int round = 0; round < 2; round++) {
		size_t sizes[] = {1, 24, 100, 5000, 40000, 3u << 20};
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			unsigned char *p = calloc(1, sizes[i]);
			CHECK(p != NULL);
			size_t bad = 0;
			for (size_t j = 0; j < sizes[i]; j++)
				bad += p[j] != 0;
			CHECK(bad == 0);
			memset(p, 0xff, sizes[i]);
			free(p);
		}
	}
	errno = 0;
	CHECK(calloc(huge, 4) == NULL && errno == ENOMEM);

	/* realloc keeps contents, grows and shrinks across classes. */
	unsigned char *r = NULL;
	size_t have = 0;
	size_t steps[] = {1, 7, 24, 100, 1000, 40000, 100000, 3000000, 50, 0};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		size_t n = steps[i];
		unsigned char *q = realloc(r, n);
		if (n == 0) {
			CHECK(q == NULL);
			break;
		}
		CHECK(q != NULL);
		size_t keep = have < n ? have : n, bad = 0;
		for (size_t j = 0; j < keep; j++)
			bad += q[j] != (unsigned char)j;
		CHECK(bad == 0);
		for (size_t j = 0; j < n; j++)
			q[j] = (unsigned char)j;
		r = q;
		have = n;
	}
	void *ra = reallocarray(NULL, 10, 10);
	CHECK(ra != NULL);
	errno = 0;
	CHECK(reallocarray(launder(ra), huge, 3) == NULL && errno == ENOMEM);
	free(launder(ra));

	/* Aligned allocation. */
	for (size_t al = sizeof(void *); al <= (4u << 20); al <<= 1) {
		size_t sizes[] = {1, al / 2 + 1, al, 3 * al + 5};
		for (size_t i = 0; i < 4; i++) {
			void *p = NULL;
			CHECK(posix_memalign(&p, al, sizes[i]) == 0);
			CHECK(((uintptr_t)p & (al - 1)) == 0);
			if ((uintptr_t)p & (al - 1))
				fprintf(stderr, "selftest: posix_memalign(%zu, %zu) = %p\n", al, sizes[i], p);
			memset(p, 1, sizes[i]);
			free(p);
			p = aligned_alloc(al, sizes[i]);
			CHECK(p && ((uintptr_t)p & (al - 1)) == 0);
			free(p);
			p = memalign(al, sizes[i]);
			CHECK(p && ((uintptr_t)p & (al - 1)) == 0);
			free(p);
		}
	}
	void *p = NULL;
	CHECK(posix_memalign(&p, odd_align, 10) == EINVAL);
	CHECK(posix_memalign(&p, 4, 10) == EINVAL);
	errno = 0;
	CHECK(aligned_alloc(odd_align, 10) == NULL && errno == EINVAL);
	p = memalign(odd_align, 10); /* glibc rounds the alignment up to 32 */
	CHECK(p && ((uintptr_t)p & 31) == 0);
	free(p);
	p = valloc(10);
	CHECK(p && ((uintptr_t)p & 4095) == 0);
	free(p);
	p = pvalloc(5000);
	CHECK(p && ((uintptr_t)p & 4095) == 0 && malloc_usable_size(p) >= 8192);
	free(p);
	errno = 0;
	CHECK(malloc((size_t)1 << 62) == NULL && errno == ENOMEM);
}

/* Past the first 64 MiB chunk: many objects, then one big one. */
static void test_growth(void)
{
	enum { N = 3000 };
	static char *blocks[N];
	for (int i = 0; i < N; i++) {
		blocks[i] = malloc(1 << 20);
		CHECK(blocks[i] != NULL);
		if (!blocks[i])
			return;
		blocks[i][0] = (char)i;
		blocks[i][(1 << 20) - 1] = (char)i;
	}
	char *big = malloc((size_t)2 << 30);
	CHECK(big != NULL);
	if (big) {
		big[0] = 1;
		big[((size_t)2 << 30) - 1] = 2;
	}
	int bad = 0;
	for (int i = 0; i < N; i++) {
		bad += blocks[i][0] != (char)i || blocks[i][(1 << 20) - 1] != (char)i;
		free(blocks[i]);
	}
	CHECK(bad == 0);
	free(big);
	/* Small objects past 64 MiB. */
	enum { M = 400000 };
	void **v = malloc(M * sizeof(void *));
	for (int i = 0; i < M; i++) {
		v[i] = malloc(200);
		memset(v[i], i & 0xff, 200);
	}
	for (int i = 0; i < M; i++)
		bad += ((unsigned char *)v[i])[199] != (i & 0xff);
	for (int i = 0; i < M; i++)
		free(v[i]);
	free(v);
	CHECK(bad == 0);
}

/* Threads: more alive at once than CPU slots, each allocating and freeing
 * its own objects and objects of the thread before it. */
#define NTHREADS 160
static _Atomic int started;
static void *_Atomic handoff[NTHREADS];

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t s = 0x1234567ull * (uint64_t)(id + 1);
	void *mine[64] = {0};
	atomic_fetch_add(&started, 1);
	while (atomic_load(&started) < NTHREADS)
		sched_yield();
	int bad = 0;
	for (int it = 0; it < 4000; it++) {
		int k = (int)(next_rand(&s) % 64);
		if (mine[k]) {
			bad += *(int *)mine[k] != id;
			free(mine[k]);
		}
		size_t n = 8 + next_rand(&s) % 600;
		mine[k] = malloc(n);
		*(int *)mine[k] = id;
		if (it % 100 == 0) {
			/* Free what the previous thread handed over. */
			void *o = atomic_exchange(&handoff[id], NULL);
			free(o);
			void *x = malloc(n);
			void *old = atomic_exchange(&handoff[(id + 1) % NTHREADS], x);
			free(old);
		}
	}
	for (int k = 0; k < 64; k++)
		free(mine[k]);
	return (void *)(intptr_t)bad;
}

static void test_threads(void)
{
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < NTHREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		CHECK(r == NULL);
	}
	for (int i = 0; i < NTHREADS; i++)
		free(atomic_exchange(&handoff[i], NULL));
}

/* Thread churn: slots must come back when threads exit. */
static void *short_worker(void *arg)
{
	void **slot = arg;
	free(*slot); /* allocated by another thread */
	for (int i = 0; i < 100; i++)
		sink = malloc((size_t)(16 * (i + 1)));
	free(sink);
	*slot = malloc(100);
	return NULL;
}

static void test_churn(void)
{
	void *slot = malloc(10);
	for (int i = 0; i < 2000; i++) {
		pthread_t t;
		CHECK(pthread_create(&t, NULL, short_worker, &slot) == 0);
		pthread_join(t, NULL);
	}
	free(slot);
}

/* fork while other threads allocate: the child must allocate, free
 * (also objects the parent made) and start threads. */
static _Atomic int stop_busy;
static void *busy(void *arg)
{
	(void)arg;
	uint64_t s = 99;
	void *keep[32] = {0};
	while (!atomic_load(&stop_busy)) {
		int k = (int)(next_rand(&s) % 32);
		free(keep[k]);
		keep[k] = malloc(8 + next_rand(&s) % 3000);
	}
	for (int k = 0; k < 32; k++)
		free(keep[k]);
	return NULL;
}

static void *child_thread(void *arg)
{
	for (int i = 0; i < 1000; i++)
		free(malloc(64));
	return arg;
}

static void test_fork(void)
{
	pthread_t b[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&b[i], NULL, busy, NULL);
	char *before = strdup("made by the parent");
	for (int round = 0; round < 40; round++) {
		pid_t pid = fork();
		if (pid == 0) {
			int ok = strcmp(before, "made by the parent") == 0;
			free(before);
			void *v[1000];
			for (int i = 0; i < 1000; i++)
				v[i] = malloc((size_t)(i * 7 + 1));
			for (int i = 0; i < 1000; i++)
				free(v[i]);
			pthread_t t;
			ok &= pthread_create(&t, NULL, child_thread, NULL) == 0;
			pthread_join(t, NULL);
			exit(ok ? 0 : 3); /* runs the shim's exit check too */
		}
		CHECK(pid > 0);
		int st = 0;
		waitpid(pid, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			fprintf(stderr, "selftest: fork child status 0x%x\n", st);
	}
	atomic_store(&stop_busy, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(b[i], NULL);
	free(before);
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "all";
	if (strcmp(what, "double-free") == 0) {
		char *p = malloc(64);
		free(launder(p));
		free(launder(p));
		return 0; /* not reached under the shim */
	}
	if (strcmp(what, "interior") == 0) {
		char *p = malloc(64);
		free(launder(p + 16));
		return 0;
	}
	if (strcmp(what, "wild") == 0) {
		static char not_heap[64];
		free(launder(not_heap + 8));
		return 0;
	}
	(void)rng;
	setvbuf(stdout, NULL, _IONBF, 0);
	check_shim_loaded();
	test_api();
	printf("selftest: api done\n");
	test_growth();
	printf("selftest: growth done\n");
	test_threads();
	printf("selftest: %d threads done\n", NTHREADS);
	test_churn();
	printf("selftest: churn done\n");
	test_fork();
	printf("selftest: fork done\n");
	if (failures) {
		printf("selftest: %d failures\n", failures);
		return 1;
	}
	printf("selftest: ok\n");
	return 0;
}
