/*
 * tests/misuse/misuse.c - one heap misuse per run, through plain malloc,
 * free, realloc and memcpy, for tests/misuse/run.py to run under each
 * allocator (LD_PRELOAD) and classify.
 *
 *     misuse CASE SIZE          (misuse list: the cases)
 *
 * The program commits the misuse, then gives the allocator its ordinary
 * chances to notice (the object is freed, more objects are allocated)
 * and exits 0.  Where the misuse is a read, or the defence is to leave
 * nothing to read, it prints what it saw:
 *     result: prevented   the read found no stale or foreign data (zeros),
 *                         the impossible allocation returned NULL
 *     result: missed      stale data, another object's data, or a live
 *                         object was corrupted
 * An allocator that notices prints its own message and stops the process
 * (or the access faults); run.py reads stderr and the exit status.
 *
 * Built without optimisation of the misuse away: every pointer passes
 * through launder(), which the compiler cannot see through.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((size_t)1 << 20)
#define STALE 0xa7 /* what the victim held */
#define OTHER 0xc3 /* what other objects hold */
#define REUSE 16   /* objects allocated to invite reuse of a freed slot */

static void *launder(void *p)
{
	__asm__ volatile("" : "+r"(p)::"memory");
	return p;
}

/* free() out of the compiler's sight: the misuse after it is the point. */
static __attribute__((noinline)) void release(void *p)
{
	free(launder(p));
}

static size_t n; /* the object size of this run */

static unsigned char *obj(void)
{
	unsigned char *p = malloc(n);
	if (!p) {
		printf("malloc(%zu) failed\n", n);
		exit(2);
	}
	memset(p, STALE, n);
	return launder(p);
}

static void result(int prevented, const char *what)
{
	printf("result: %s (%s)\n", prevented ? "prevented" : "missed", what);
}

/* Counts bytes of [p, p+len) equal to v, through volatile reads. */
static size_t count(volatile unsigned char *p, size_t len, unsigned char v)
{
	size_t k = 0;
	for (size_t i = 0; i < len; i++)
		k += p[i] == v;
	return k;
}

/* Allocates REUSE objects of size n, filled with OTHER. */
static void others(unsigned char **o)
{
	for (int i = 0; i < REUSE; i++) {
		o[i] = malloc(n);
		memset(o[i], OTHER, n);
		o[i] = launder(o[i]);
	}
}

static void free_others(unsigned char **o)
{
	for (int i = 0; i < REUSE; i++)
		free(o[i]);
}

/* ---- double free ---- */

static void df_plain(void)
{
	unsigned char *p = obj();
	release(p);
	free(launder(p));
}

static void df_delayed(void)
{
	unsigned char *p = obj();
	release(p);
	/* Other activity, of other sizes, in between. */
	for (int i = 0; i < 100; i++)
		free(launder(malloc(i * 7 + 1)));
	free(launder(p));
}

static void df_interleaved(void)
{
	unsigned char *p = obj(), *q = obj();
	release(p);
	release(q);
	free(launder(p));
}

static void df_reuse(void)
{
	unsigned char *p = obj(), *o[REUSE];
	release(p);
	others(o); /* one of them may get p's memory */
	free(launder(p));
	/* No free of the others: one of them may be p's memory. */
}

static void df_realloc(void)
{
	/* realloc of a freed pointer. */
	unsigned char *p = obj();
	release(p);
	unsigned char *q = realloc(launder(p), 2 * n);
	(void)launder(q);
}

/* ---- invalid free ---- */

static void if_stack(void)
{
	char buf[64];
	memset(buf, 1, sizeof buf);
	free(launder(buf));
}

static void if_alloca(void)
{
	char *a = alloca(n < 4096 ? n : 4096);
	memset(a, 1, 16);
	free(launder(a));
}

static void if_far(void)
{
	unsigned char *p = obj();
	free(launder(p + (1ull << 30)));
}

static void if_near(void)
{
	unsigned char *p = obj();
	free(launder(p + 16));
}

static void if_unaligned(void)
{
	unsigned char *p = obj();
	free(launder(p + 1));
}

static void if_realloc(void)
{
	unsigned char *p = obj();
	unsigned char *q = realloc(launder(p + 16), 2 * n);
	(void)launder(q);
}

/* ---- overflow and underflow ---- */

/* A write that changes the byte, k bytes past the end (k > 0) or before
 * the start (k < 0). */
static void poke(unsigned char *p, long k)
{
	volatile unsigned char *b = launder(k > 0 ? p + n - 1 + (size_t)k : p + k);
	*b ^= 0x5a;
}

/* memcpy writing the object and k bytes past it: a string of n bytes and
 * its NUL for k == 1, bytes of 'A' otherwise. */
static void copy_over(unsigned char *p, size_t k)
{
	unsigned char *src = malloc(n + k);
	memset(src, 'A', n + k);
	if (k == 1)
		src[n] = 0;
	memcpy(launder(p), launder(src), n + k);
	free(src);
}

/* memcpy writing the k bytes before the object (bytes of 'A'). */
static void copy_under(unsigned char *p, size_t k)
{
	unsigned char *src = malloc(k);
	memset(src, 'A', k);
	memcpy(launder(p - k), launder(src), k);
	free(src);
}

#define OVER(name, k, how)                          \
	static void name(void)                      \
	{                                           \
		unsigned char *p = obj();           \
		how;                                \
		free(p);                            \
	}
OVER(of_1, 1, poke(p, 1))
OVER(of_32, 32, poke(p, 32))
OVER(of_1m, MIB, poke(p, (long)MIB))
OVER(of_1_memcpy, 1, copy_over(p, 1))
OVER(of_32_memcpy, 32, copy_over(p, 32))
OVER(of_1m_memcpy, MIB, copy_over(p, MIB))
OVER(uf_1, 1, poke(p, -1))
OVER(uf_32, 32, poke(p, -32))
OVER(uf_1m, MIB, poke(p, -(long)MIB))
OVER(uf_1_memcpy, 1, copy_under(p, 1))
OVER(uf_32_memcpy, 32, copy_under(p, 32))
OVER(uf_1m_memcpy, MIB, copy_under(p, MIB))

/* ---- use after free ---- */

static void raf(void)
{
	unsigned char *p = obj();
	release(p);
	size_t stale = count(p, n, STALE);
	result(stale == 0, stale ? "stale bytes read" : "nothing stale");
}

static void raf_reuse(void)
{
	unsigned char *p = obj(), *o[REUSE];
	release(p);
	others(o);
	size_t bad = count(p, n, STALE) + count(p, n, OTHER);
	result(bad == 0, bad ? "stale or another object's bytes read" : "nothing stale");
	free_others(o);
}

static void waf(void)
{
	unsigned char *p = obj();
	release(p);
	p[n / 2] = 0x3c;
	/* Ordinary activity afterwards: the slot may be handed out again. */
	for (int i = 0; i < 100; i++)
		free(launder(malloc(n)));
}

static void waf_reuse(void)
{
	unsigned char *p = obj(), *o[REUSE];
	release(p);
	others(o);
	p[n / 2] = 0x3c;
	int hit = 0;
	for (int i = 0; i < REUSE; i++)
		hit += count(o[i], n, OTHER) != n;
	if (hit)
		result(0, "a live object was corrupted");
	free_others(o);
}

/* ---- zero-size objects, uninitialised memory, impossible sizes ---- */

static void zs_read(void)
{
	volatile unsigned char *p = launder(malloc(0));
	unsigned char c = p[0];
	__asm__ volatile("" ::"r"(c));
	free((void *)p);
}

static void zs_write(void)
{
	volatile unsigned char *p = launder(malloc(0));
	p[0] = 1;
	free((void *)p);
}

static void uninit(void)
{
	unsigned char *p = obj();
	release(p);
	unsigned char *q = launder(malloc(n)); /* never written */
	size_t stale = count(q, n, STALE);
	result(stale == 0, stale ? "an earlier object's bytes handed out" : "nothing stale");
	release(q);
}

static void huge(void)
{
	static volatile size_t big = SIZE_MAX;
	unsigned char *p = obj();
	void *a = malloc(big - n);
	void *b = calloc(n, big / n + 1);
	void *c = realloc(p, big - n);
	int ok = !a && !b && !c && p[0] == STALE;
	result(ok, ok ? "NULL, old object intact" : "an impossible size was granted");
	free(a);
	free(b);
	free(c ? c : p);
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{"df-plain", df_plain},         {"df-delayed", df_delayed},
	{"df-interleaved", df_interleaved}, {"df-reuse", df_reuse},
	{"df-realloc", df_realloc},     {"if-stack", if_stack},
	{"if-alloca", if_alloca},       {"if-far", if_far},
	{"if-near", if_near},           {"if-unaligned", if_unaligned},
	{"if-realloc", if_realloc},     {"of-1", of_1},
	{"of-32", of_32},               {"of-1m", of_1m},
	{"of-1-memcpy", of_1_memcpy},   {"of-32-memcpy", of_32_memcpy},
	{"of-1m-memcpy", of_1m_memcpy}, {"uf-1", uf_1},
	{"uf-32", uf_32},               {"uf-1m", uf_1m},
	{"uf-1-memcpy", uf_1_memcpy},   {"uf-32-memcpy", uf_32_memcpy},
	{"uf-1m-memcpy", uf_1m_memcpy}, {"raf", raf},
	{"raf-reuse", raf_reuse},       {"waf", waf},
	{"waf-reuse", waf_reuse},       {"zs-read", zs_read},
	{"zs-write", zs_write},         {"uninit", uninit},
	{"huge", huge},
};

int main(int argc, char **argv)
{
	size_t ncases = sizeof cases / sizeof cases[0];
	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		for (size_t i = 0; i < ncases; i++)
			puts(cases[i].name);
		return 0;
	}
	char *end;
	if (argc != 3 || (n = strtoull(argv[2], &end, 0)) == 0 || *end) {
		fprintf(stderr, "usage: misuse CASE SIZE (SIZE > 0) | misuse list\n");
		return 2;
	}
	for (size_t i = 0; i < ncases; i++) {
		if (strcmp(argv[1], cases[i].name) == 0) {
			setvbuf(stdout, NULL, _IONBF, 0); /* output before any crash */
			cases[i].fn();
			puts("done");
			return 0;
		}
	}
	fprintf(stderr, "misuse: no case %s (misuse list)\n", argv[1]);
	return 2;
}
