/*
 * tests/guardfault.c - under the malloc shim's arch (arch/host/shim_arch.c,
 * whose protect hook is mprotect, set after kmem_init), a client overflow
 * off a page into a guard page faults: `make test-guard`.
 *
 * Two edges of client memory are tried: the page below the metadata
 * region (its lower guard page), and the page below a run of pool pages
 * taken for span descriptors (that run's lower guard).  For each, a child
 * process takes that very page with kpage_alloc and writes 512 bytes past
 * its end: it must die of SIGSEGV.  A second child writes the page's own
 * last 512 bytes: it must exit normally (the page itself is the client's).
 * Prints one line per edge and "guardfault: PASS"; exits 1 on a failure.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtypes.h"
#include "shim_arch.h"

#define PG KMEM_PAGE_SIZE
#define SMASH 512

static int failures;

/* Takes pages until it gets the one at physical address want (pages come
 * lowest first); gives the others back.  NULL if it never comes. */
static char *take_page_at(uint64_t want)
{
	enum { MAX = 1 << 16 };
	static void *got[MAX];
	char *hit = NULL;
	size_t n = 0;
	while (n < MAX && !hit) {
		void *p = kpage_alloc(1, PG, want + PG);
		if (!p)
			break;
		if (kmem_virt_to_phys(p) == want)
			hit = p;
		else
			got[n++] = p;
	}
	while (n)
		kpage_free(got[--n], 1);
	return hit;
}

/* Runs write(p, len) in a child; returns its wait status. */
static int in_child(char *p, size_t len)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		memset(p, 0x41, len);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid) {
		perror("waitpid");
		exit(1);
	}
	return st;
}

static void try_edge(const char *what, uint64_t guard_phys)
{
	char *page = take_page_at(guard_phys - PG);
	if (!page) {
		printf("guardfault: FAIL %s: the page below the guard %#llx was not handed out\n",
		       what, (unsigned long long)guard_phys);
		failures++;
		return;
	}
	int inside = in_child(page + PG - SMASH, SMASH);
	int over = in_child(page + PG, SMASH);
	bool ok = WIFEXITED(inside) && WEXITSTATUS(inside) == 0 && WIFSIGNALED(over) &&
	          WTERMSIG(over) == SIGSEGV;
	printf("guardfault: %s: write inside the client page %s, %d-byte overflow into the guard "
	       "page at %#llx %s\n",
	       what, WIFEXITED(inside) && WEXITSTATUS(inside) == 0 ? "ok" : "FAILED", SMASH,
	       (unsigned long long)guard_phys,
	       WIFSIGNALED(over) && WTERMSIG(over) == SIGSEGV ? "faults (SIGSEGV)" : "DID NOT FAULT");
	failures += !ok;
	kpage_free(page, 1);
}

/* The lowest pool page taken as a guard of a descriptor run, or 0. */
static uint64_t lowest_pool_guard(void)
{
	for (uint64_t pfn = 1; pfn < (mheap_.meta_base[mheap_.meta_node] >> PAGE_SHIFT); pfn++) {
		struct heap_arena *a = arena_of_pfn(pfn);
		if (a && a->pagekind[pfn & (ARENA_PAGES - 1)] == PKIND_GUARD)
			return pfn << PAGE_SHIFT;
	}
	return 0;
}

int main(void)
{
	if (!shim_heap_ready()) {
		printf("guardfault: FAIL: no heap\n");
		return 1;
	}
	uint64_t meta, size;
	kmem_metadata_region(&meta, &size);
	try_edge("metadata region", meta);

	/* Span descriptors past the region's reserve come from pool pages. */
	enum { N = 4000 };
	static void *obj[N];
	for (int i = 0; i < N; i++)
		obj[i] = kmalloc(2048);
	for (int i = 0; i < N; i++)
		kfree(obj[i]);
	kmem_reclaim();
	uint64_t g = lowest_pool_guard();
	if (!g) {
		printf("guardfault: FAIL: no descriptor run was taken from the pool\n");
		failures++;
	} else {
		try_edge("descriptor pages", g);
	}
	if (kmem_check()) {
		printf("guardfault: FAIL: kmem_check found problems\n");
		failures++;
	}
	printf("guardfault: %s\n", failures ? "FAIL" : "PASS");
	return failures != 0;
}
