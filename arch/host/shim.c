/*
 * arch/host/shim.c - spanalloc as the process's malloc, for LD_PRELOAD:
 *
 *     LD_PRELOAD=build/host/libspanalloc-malloc.so python3 ...
 *
 * The C allocation functions map onto the kmalloc API; the heap, CPU slots
 * and fork handling are in shim_arch.c.  Differences from kmalloc that a C
 * library's malloc owes its callers:
 *   - 16-byte alignment for every request above 8 bytes (glibc's
 *     guarantee): requests of 17..24 bytes use the 32-byte class, since
 *     the 24-byte class is only 8-byte aligned;
 *   - errno = ENOMEM on failure, after the heap has tried to grow;
 *   - realloc(p, 0) frees p and returns NULL (as glibc);
 *   - calloc of 1 MiB or more zeroes whole pages with MADV_DONTNEED (fresh
 *     zero pages, as glibc's mmap'd chunks) instead of writing them.
 * A bad free (double, interior, wild) prints one line and aborts.
 *
 * SPANALLOC_HARDEN=n (read at the first allocation) builds the heap at
 * hardening level n (spanalloc.h, "Hardened mode"; shim_arch.c).  At
 * level >= 1 calloc does not clear what kmalloc already zeroed, and at
 * exit a process that is down to one thread in the allocator runs
 * kmem_check() (every live canary, every free or quarantined object's
 * zeros), so that an overflow or a write into freed memory that no later
 * call met is still reported.
 *
 * Environment (read at exit only):
 *   SPANALLOC_SHIM_REPORT=file  append one line per process at exit: pid,
 *                               executable, allocations, heap size
 *   SPANALLOC_SHIM_CHECK=1      run kmem_check() at exit, report the count
 *   SPANALLOC_SHIM_REPORT_CLASSES=1  and one line per size class used:
 *                               objects in use, spans now, peak span KiB
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spanalloc.h"
#include "shim_arch.h"

#define EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define PAGE ((size_t)KMEM_PAGE_SIZE)
#define CALLOC_MADVISE (1u << 20)

/* 16-byte alignment above 8 bytes: 17..24 -> 32. */
static inline size_t req_size(size_t n)
{
	return n - 17 < 8 ? 32 : n;
}

static __attribute__((noinline)) void *malloc_slow(size_t n)
{
	if (n <= KMEM_MAX_ALLOC && shim_heap_ready())
		return kmalloc(req_size(n));
	errno = ENOMEM;
	return NULL;
}

/* A tail call: kmalloc grows the heap through the OOM hook, which sets
 * errno when it cannot. */
EXPORT void *malloc(size_t n)
{
	if (likely(shim_heap_is_ready() && n <= KMEM_MAX_ALLOC))
		return kmalloc(req_size(n));
	return malloc_slow(n);
}

/* kfree(NULL) does nothing; before the heap exists every other pointer is
 * reported as wild. */
EXPORT void free(void *p)
{
	kfree(p);
}

static void *aligned(size_t align, size_t n)
{
	/* malloc's objects are 8-aligned, and 16-aligned above 8 bytes. */
	if (align <= 8 || (align == 16 && n > 8))
		return malloc(n);
	if (n <= KMEM_MAX_ALLOC && shim_heap_ready())
		return kmalloc_aligned(req_size(n), align);
	errno = ENOMEM;
	return NULL;
}

EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	char *p = malloc(total);
	if (!p || shim_harden)
		return p; /* hardened: handed out zeroed */
	if (total >= CALLOC_MADVISE && ((uintptr_t)p & (PAGE - 1)) == 0) {
		/* A large object is page aligned and owned by us alone. */
		size_t whole = total & ~(PAGE - 1);
		if (madvise(p, whole, MADV_DONTNEED) == 0) {
			memset(p + whole, 0, total - whole);
			return p;
		}
	}
	memset(p, 0, total);
	return p;
}

EXPORT void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (n == 0) {
		kfree(p);
		return NULL;
	}
	size_t have = ksize(p); /* a bad p aborts in the fault hook */
	size_t want = req_size(n);
	if (want <= have && want >= have / 2)
		return p;
	void *q = malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, n < have ? n : have);
	kfree(p);
	return q;
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, total);
}

static inline int is_pow2(size_t x)
{
	return x && !(x & (x - 1));
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	if (!is_pow2(align) || align % sizeof(void *))
		return EINVAL;
	int saved = errno;
	void *p = aligned(align, n);
	errno = saved;
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	if (!is_pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return aligned(align, n);
}

EXPORT void *memalign(size_t align, size_t n)
{
	if (align > ((size_t)1 << 62)) {
		errno = EINVAL;
		return NULL;
	}
	/* glibc rounds a non-power-of-two alignment up. */
	while (!is_pow2(align))
		align = align ? (align | (align - 1)) + 1 : 1;
	return aligned(align, n);
}

EXPORT void *valloc(size_t n)
{
	return aligned(PAGE, n);
}

EXPORT void *pvalloc(size_t n)
{
	size_t r;
	if (__builtin_add_overflow(n, PAGE - 1, &r)) {
		errno = ENOMEM;
		return NULL;
	}
	r &= ~(PAGE - 1);
	return aligned(PAGE, r ? r : PAGE);
}

EXPORT size_t malloc_usable_size(void *p)
{
	return p ? ksize(p) : 0;
}

/* ---------------------------------------------------------------------------
 * Exit report (SPANALLOC_SHIM_REPORT): proves a program really ran on
 * spanalloc, and SPANALLOC_SHIM_CHECK verifies the heap it leaves.
 */

static size_t put_u64(char *out, uint64_t v)
{
	char tmp[21];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static size_t put_s(char *out, const char *s)
{
	size_t n = strlen(s);
	memcpy(out, s, n);
	return n;
}

/* Pages of the heap window in memory (mincore), in KiB. */
static uint64_t window_resident_kib(const struct shim_info *in)
{
	static unsigned char vec[4096];
	uint64_t kib = 0;
	for (uint64_t off = 0; off < in->mapped_bytes; off += sizeof vec * PAGE) {
		uint64_t len = in->mapped_bytes - off;
		if (len > sizeof vec * PAGE)
			len = sizeof vec * PAGE;
		if (mincore((void *)(in->window + off), len, vec))
			break;
		for (uint64_t i = 0; i < len / PAGE; i++)
			kib += (vec[i] & 1) * (PAGE / 1024);
	}
	return kib;
}

/* Hardened mode's last look (see the top of the file).  The report below
 * runs its own kmem_check, with a hook that does not abort. */
__attribute__((destructor)) static void shim_harden_exit(void)
{
	if (!shim_harden || !shim_heap_is_ready())
		return;
	struct shim_info in;
	shim_get_info(&in);
	if (in.slots_in_use > 1)
		return;
	/* Not kmem_reclaim first: it would give empty spans back unlooked at. */
	kmem_check();
}

__attribute__((destructor)) static void shim_report(void)
{
	const char *path = getenv("SPANALLOC_SHIM_REPORT");
	if (!path || !*path || !shim_heap_ready())
		return;
	const char *check = getenv("SPANALLOC_SHIM_CHECK");
	long problems = -1;
	if (check && *check == '1') {
		kmem_fault_hook_t old = kmem_set_fault_hook(shim_fault_print);
		problems = (long)kmem_check();
		kmem_set_fault_hook(old);
	}
	uint64_t mallocs = 0;
	for (unsigned cls = 1;; cls++) {
		struct kmem_class_stats cs;
		if (kmem_get_class_stats(cls, &cs))
			break;
		mallocs += cs.nmalloc;
	}
	struct kmem_stats st;
	kmem_get_stats(&st);
	struct shim_info in;
	shim_get_info(&in);

	char exe[200];
	ssize_t en = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[en > 0 ? en : 0] = 0;
	char line[512];
	size_t n = 0;
	n += put_s(line + n, "spanalloc-shim pid=");
	n += put_u64(line + n, (uint64_t)getpid());
	n += put_s(line + n, " exe=");
	n += put_s(line + n, exe);
	n += put_s(line + n, " small_mallocs=");
	n += put_u64(line + n, mallocs);
	n += put_s(line + n, " large_live=");
	n += put_u64(line + n, st.large_objects);
	n += put_s(line + n, " heap_mib=");
	n += put_u64(line + n, (st.pages_managed * PAGE) >> 20);
	n += put_s(line + n, " small_kib=");
	n += put_u64(line + n, st.pages_small * 4);
	n += put_s(line + n, " large_kib=");
	n += put_u64(line + n, (st.pages_large + st.pages_runs) * 4);
	n += put_s(line + n, " meta_kib=");
	n += put_u64(line + n, (st.metadata_used >> 10) + st.pages_metadata * 4);
	n += put_s(line + n, " resident_kib=");
	n += put_u64(line + n, window_resident_kib(&in));
	n += put_s(line + n, " grows=");
	n += put_u64(line + n, in.grows);
	n += put_s(line + n, " slots_dead=");
	n += put_u64(line + n, in.slots_dead);
	if (problems >= 0) {
		n += put_s(line + n, " check=");
		n += put_u64(line + n, (uint64_t)problems);
	}
	line[n++] = '\n';
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	ssize_t w = write(fd, line, n);
	const char *cl = getenv("SPANALLOC_SHIM_REPORT_CLASSES");
	for (unsigned cls = 1; cl && *cl == '1'; cls++) {
		struct kmem_class_stats cs;
		if (kmem_get_class_stats(cls, &cs))
			break;
		if (!cs.peak_span_bytes)
			continue;
		n = put_s(line, "  class size=");
		n += put_u64(line + n, cs.object_size);
		n += put_s(line + n, " span_pages=");
		n += put_u64(line + n, cs.span_pages);
		n += put_s(line + n, " in_use=");
		n += put_u64(line + n, cs.objects_in_use);
		n += put_s(line + n, " spans=");
		n += put_u64(line + n, cs.spans);
		n += put_s(line + n, " peak_kib=");
		n += put_u64(line + n, cs.peak_span_bytes >> 10);
		line[n++] = '\n';
		w = write(fd, line, n);
	}
	(void)w;
	close(fd);
}
