/*
 * tests/heapmap_demo.c - builds a heap with something of everything and
 * writes its kmem_heapmap() dump, for scripts/heapmap.py (make heapmap).
 *
 *   heapmap_demo [FILE]     the dump to FILE (default: stdout)
 *
 * The heap: 8 MiB of low memory and 56 MiB across the 64 MiB arena
 * boundary, with a reserved 1 MiB hole.  In it: kmalloc classes from 16 B
 * to 32 KiB at different occupancies (full, half, sparse, nearly empty
 * spans not yet reclaimed), two object caches, large objects with holes
 * where every other one was freed, page runs (one below a 16 MiB "DMA"
 * ceiling, one 2 MiB aligned), and metadata pages taken from the pool
 * after the span descriptor reserve ran out.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "spanalloc.h"

#define PAGE KMEM_PAGE_SIZE

static void *must(void *p, const char *what)
{
	if (!p) {
		fprintf(stderr, "heapmap_demo: %s failed\n", what);
		exit(1);
	}
	return p;
}

/* n objects of `size`; then frees those whose index i has i % keep_mod
 * >= keep (so keep/keep_mod of them stay). */
static void spread(size_t size, unsigned n, unsigned keep, unsigned keep_mod)
{
	void **v = must(calloc(n, sizeof *v), "calloc");
	for (unsigned i = 0; i < n; i++)
		v[i] = must(kmalloc(size), "kmalloc");
	for (unsigned i = 0; i < n; i++)
		if (i % keep_mod >= keep)
			kfree(v[i]);
	free(v);
}

static void ctor_inode(void *obj)
{
	memset(obj, 0, 16);
}

static void emit_file(const char *line, void *arg)
{
	fprintf(arg, "%s\n", line);
}

int main(int argc, char **argv)
{
	setenv("CMOCKA_TEST_ABORT", "1", 1); /* fixture assertions abort */
	fx_reserve(128 * FX_MIB);
	const struct kmem_region map[] = {
		{.base = 4 * FX_MIB, .length = 8 * FX_MIB, .type = KMEM_REGION_USABLE},
		{.base = 16 * FX_MIB, .length = 56 * FX_MIB, .type = KMEM_REGION_USABLE},
		{.base = 40 * FX_MIB, .length = 1 * FX_MIB, .type = KMEM_REGION_RESERVED},
	};
	if (fx_init(map, sizeof map / sizeof *map, 2) != 0) {
		fprintf(stderr, "heapmap_demo: kmem_init failed\n");
		return 1;
	}

	/* Metadata pages: more spans than the descriptor reserve holds (one
	 * 4 KiB object per span), then all freed: the descriptors' pages stay
	 * metadata. */
	spread(4096, 3000, 0, 1);
	kmem_reclaim();

	/* A DMA-style run below 16 MiB: it lands in the low region. */
	must(kpage_alloc(256, PAGE, 16 * FX_MIB), "kpage_alloc (DMA)");

	/* kmalloc classes at different occupancies. */
	spread(16, 12000, 1, 4);    /* a quarter left */
	spread(64, 8000, 1, 1);     /* full */
	spread(128, 6000, 1, 2);    /* half */
	spread(256, 4800, 1, 8);    /* sparse */
	spread(512, 3000, 3, 4);
	spread(1024, 1800, 1, 3);
	spread(2048, 1200, 1, 1);
	spread(4096, 600, 1, 2);    /* 1-object spans: half of them freed */
	spread(8192, 300, 1, 1);
	spread(12288, 120, 2, 3);
	spread(32768, 80, 1, 1);

	/* Large objects. */
	void *big[10];
	for (unsigned i = 0; i < 10; i++)
		big[i] = must(kmalloc((size_t)(256 + 256 * i) * FX_KIB), "kmalloc (large)");

	/* Object caches. */
	struct kmem_cache *inode = must(kmem_cache_create("inode", 600, 64, ctor_inode), "cache");
	struct kmem_cache *dentry = must(kmem_cache_create("dentry", 192, 0, NULL), "cache");
	void **iv = must(calloc(4000, sizeof *iv), "calloc");
	for (unsigned i = 0; i < 4000; i++) {
		iv[i] = must(kmem_cache_alloc(inode), "inode");
		must(kmem_cache_alloc(dentry), "dentry");
		must(kmem_cache_alloc(dentry), "dentry");
	}
	for (unsigned i = 0; i < 4000; i++)
		if (i % 5 < 3)
			kmem_cache_free(inode, iv[i]);
	free(iv);

	/* Page runs: a 2 MiB aligned one and a few small ones. */
	must(kpage_alloc(512, 2 * FX_MIB, 0), "kpage_alloc (aligned)");
	for (unsigned i = 0; i < 4; i++)
		must(kpage_alloc(16 << i, PAGE, 0), "kpage_alloc");

	/* Churn: more small objects, a big one; then holes: every other
	 * large object freed, and most 48-byte objects freed without a
	 * reclaim (their spans stay, nearly empty). */
	void **w = must(calloc(12000, sizeof *w), "calloc");
	for (unsigned i = 0; i < 12000; i++)
		w[i] = must(kmalloc(48), "kmalloc (48)");
	spread(768, 1400, 1, 1);
	must(kmalloc(3 * FX_MIB), "kmalloc (3 MiB)");
	for (unsigned i = 0; i < 10; i += 2)
		kfree(big[i]);
	for (unsigned i = 0; i < 12000; i++)
		if (i % 16)
			kfree(w[i]);
	free(w);

	fx_assert_check();
	FILE *out = stdout;
	if (argc > 1 && strcmp(argv[1], "-") != 0) {
		out = fopen(argv[1], "w");
		if (!out) {
			perror(argv[1]);
			return 1;
		}
	}
	kmem_heapmap(emit_file, out);
	struct kmem_stats st = fx_stats();
	fprintf(stderr,
	        "heapmap_demo: %llu pages managed, %llu free, %llu small, %llu large, %llu runs, "
	        "%llu metadata%s%s\n",
	        (unsigned long long)st.pages_managed, (unsigned long long)st.pages_free,
	        (unsigned long long)st.pages_small, (unsigned long long)st.pages_large,
	        (unsigned long long)st.pages_runs, (unsigned long long)st.pages_metadata,
	        out != stdout ? "; dump in " : "", out != stdout ? argv[1] : "");
	if (out != stdout && fclose(out) != 0) {
		perror(argv[1]);
		return 1;
	}
	return 0;
}
