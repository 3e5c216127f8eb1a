/*
 * tests/outoftree/kernel.c - a kernel that already has its own kmalloc and
 * kfree (README, "If your kernel already has kmalloc/kfree").  Its old
 * allocator hands out whole pages from a boot pool, with Linux's
 * kmalloc(size, flags) and xv6's kfree(void *): signatures that clash with
 * spanalloc's, so this file compiles only against a header that does not
 * declare kmalloc or kfree, and links only against a library that does
 * not define them.  spanalloc is installed (or amalgamated) with
 * SYMBOL_PREFIX=sa_ and used as sa_kmalloc, sa_kfree, ...; a second file,
 * kernel_aliases.c, uses the short names through SPANALLOC_KERNEL_NAMES.
 *
 * The same source is a host program (-DKERNEL_HOSTED: make
 * test-namespace runs it; it must print "kernel: PASS") and a freestanding
 * image for x86_64, aarch64 and riscv64, linked at a kernel's address with
 * kernel.ld (link-only: its _start has no boot code).
 */
#include <stddef.h>
#include <stdint.h>

#include <spanalloc.h> /* installed with SYMBOL_PREFIX=sa_: sa_kmalloc, ... */

#define RAM_SIZE (16ul << 20)
#define CHECK(e) do { if (!(e)) return __LINE__; } while (0)

/* The kernel's own allocator, older than spanalloc. */
#define OWN_PAGES 4
static unsigned char own_pool[OWN_PAGES][4096] __attribute__((aligned(4096)));
static unsigned own_used, own_allocs, own_frees;

void *kmalloc(size_t size, unsigned flags)
{
	(void)flags;
	for (unsigned i = 0; i < OWN_PAGES && size <= 4096; i++)
		if (!(own_used & 1u << i)) {
			own_used |= 1u << i;
			own_allocs++;
			return own_pool[i];
		}
	return NULL;
}

void kfree(void *pa)
{
	own_used &= ~(1u << (((unsigned char *)pa - own_pool[0]) / 4096));
	own_frees++;
}

/* kernel_aliases.c: kmalloc/kfree there are spanalloc's. */
void *alias_kmalloc(size_t size);
void alias_kfree(void *p);

/* The hooks: one CPU. */
static unsigned long irq_depth;
unsigned long arch_irq_save(void) { return irq_depth++; }
void arch_irq_restore(unsigned long flags) { irq_depth = flags; }
unsigned arch_cpu_id(void) { return 0; }
void arch_cpu_relax(void) {}

/* The RAM spanalloc manages: physical 0 is ram[0]. */
static unsigned char ram[RAM_SIZE] __attribute__((aligned(2ul << 20)));

static int in_ram(const void *p)
{
	return (uintptr_t)p >= (uintptr_t)ram && (uintptr_t)p < (uintptr_t)ram + RAM_SIZE;
}

int kernel_main(void);
int kernel_main(void)
{
	void *own = kmalloc(100, 0);
	CHECK(own == own_pool[0] && own_allocs == 1);

	struct kmem_region map[] = {
		{0, RAM_SIZE, KMEM_REGION_USABLE, 0},
		{0, 0x1000, KMEM_REGION_RESERVED, 0},
	};
	struct kmem_config cfg = {.regions = map, .nregions = 2,
	                          .direct_map_offset = (uintptr_t)ram, .max_cpus = 1};
	CHECK(sa_kmem_init(&cfg) == 0);

	char *p = sa_kmalloc(100);
	CHECK(in_ram(p) && sa_ksize(p) >= 100);
	p[99] = 1;
	p = sa_krealloc(p, 20000); /* the library's kmalloc and kfree inside */
	CHECK(in_ram(p) && sa_ksize(p) >= 20000 && p[99] == 1);
	unsigned char *z = sa_kcalloc(10, 10);
	CHECK(in_ram(z) && z[0] == 0 && z[99] == 0);
	void *a = sa_kmalloc_aligned(256, 4096);
	CHECK(in_ram(a) && ((uintptr_t)a & 4095) == 0);
	struct kmem_cache *c = sa_kmem_cache_create("task", 72, 0, NULL);
	CHECK(c != NULL);
	void *t = sa_kmem_cache_alloc(c);
	CHECK(in_ram(t));
	void *pages = sa_kpage_alloc(2, KMEM_PAGE_SIZE, 0);
	CHECK(in_ram(pages));
	void *al = alias_kmalloc(64);
	CHECK(in_ram(al) && sa_ksize(al) >= 64);

	alias_kfree(al);
	sa_kpage_free(pages, 2);
	sa_kmem_cache_free(c, t);
	CHECK(sa_kmem_cache_destroy(c) == 0);
	sa_kfree(a);
	sa_kfree(z);
	sa_kfree(p);
	kfree(own);
	/* spanalloc never called the kernel's allocator, nor the reverse. */
	CHECK(own_allocs == 1 && own_frees == 1 && own_used == 0);
	sa_kmem_reclaim();
	struct kmem_stats st;
	sa_kmem_get_stats(&st);
	CHECK(st.pages_free + st.pages_metadata == st.pages_managed && sa_kmem_check() == 0);
	CHECK(irq_depth == 0);
	return 0;
}

#ifdef KERNEL_HOSTED
#include <stdio.h>
#include <stdlib.h>

void arch_log(const char *line) { printf("kernel: %s\n", line); }
void arch_panic(const char *msg) { printf("kernel: panic: %s\n", msg); exit(1); }

int main(void)
{
	int line = kernel_main();
	if (line) {
		printf("kernel: FAIL at line %d\n", line);
		return 1;
	}
	printf("kernel: PASS\n");
	return 0;
}
#else
/* A kernel brings its own string functions. */
void *memcpy(void *dst, const void *src, size_t n)
{
	volatile unsigned char *d = dst;
	const unsigned char *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	volatile unsigned char *d = dst;
	const unsigned char *s = src;
	if (d < s)
		while (n--)
			*d++ = *s++;
	else
		while (n--)
			d[n] = s[n];
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	volatile unsigned char *d = dst;
	while (n--)
		*d++ = (unsigned char)c;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

void arch_log(const char *line) { (void)line; }
void arch_panic(const char *msg)
{
	(void)msg;
	for (;;)
		;
}

volatile int kernel_result;
void _start(void);
void _start(void)
{
	kernel_result = kernel_main();
	for (;;)
		;
}
#endif
