/*
 * tests/test_grubmap.c - kmem_memmap_multiboot2 on Multiboot2 boot
 * information that GRUB really built.
 *
 * tests/grub/mbi-<cpus>-<mem>.bin are the MBIs GRUB 2.06 (Debian 12's
 * grub-pc-bin, the BIOS build) handed the demo kernel under SeaBIOS in
 * `make run BOOT=grub SMP=4 MEM=512M` and `SMP=2 MEM=4G`, saved from the
 * running machine through QEMU's monitor (qemu-system-x86_64 ...
 * -monitor unix:SOCK,server=on,wait=off) with
 *     pmemsave <address> <bytes> "<file>"
 * once the kernel had printed its "MBI <address> (<bytes> bytes)" line
 * (the kernel never writes the MBI and the heap keeps out of it);
 * tests/grub/boot-<cpus>-<mem>.log is that boot's serial output.  Each MBI
 * is read at the address GRUB put it and must give:
 *   - the regions the kernel printed from it: the first N lines under
 *     "kmem_memmap_multiboot2): N regions", parsed from the log;
 *     (the logs predate the adapter's reading of the ELF-symbols tag, 9:
 *     what it reserves for the sections is added to them here);
 *   - what its own memory map tag (6) says, worked out here from the raw
 *     E820 entries: each entry's pages under its type (usable rounded
 *     inward, the rest outward), the MBI's pages and those of every
 *     section of its ELF-symbols tag (the kernel image, and the symbol,
 *     string and debug sections GRUB loaded after it) reserved, and no
 *     other usable byte;
 *   - an error, not a map, when total_size is cut (the end tag lost).
 * Run from the repository root (make test-unit does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spanalloc/memmap.h"

#define PG KMEM_PAGE_SIZE
#define MAXR 64

struct grub_boot {
	const char *mbi_file, *log_file;
};

static const struct grub_boot boots[] = {
	{"tests/grub/mbi-4cpu-512M.bin", "tests/grub/boot-4cpu-512M.log"},
	{"tests/grub/mbi-2cpu-4G.bin", "tests/grub/boot-2cpu-4G.log"},
};

/* The whole file in a heap buffer of exactly its size (ASan catches a read
 * past the MBI's end). */
static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("%s: cannot open (run from the repository root)", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	uint8_t *b = malloc((size_t)n);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
	return ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

/* What the kernel printed: the MBI's address and size, and the adapter's
 * regions. */
struct printed {
	uint64_t mbi_phys;
	uint32_t mbi_size;
	size_t n;
	struct kmem_region r[MAXR];
};

static void read_log(const char *path, struct printed *p)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("%s: cannot open (run from the repository root)", path);
	char line[512];
	const char *s;
	size_t want = 0;
	memset(p, 0, sizeof(*p));
	while (fgets(line, sizeof(line), f)) {
		if ((s = strstr(line, "MBI 0x")))
			assert_int_equal(sscanf(s, "MBI 0x%" SCNx64 " (%" SCNu32 " bytes)", &p->mbi_phys,
			                        &p->mbi_size), 2);
		if ((s = strstr(line, "kmem_memmap_multiboot2): "))) {
			assert_int_equal(sscanf(s, "kmem_memmap_multiboot2): %zu regions", &want), 1);
			assert_true(want > 0 && want <= MAXR);
			continue;
		}
		if (p->n >= want)
			continue;
		unsigned idx;
		uint64_t lo, hi;
		char type[16];
		assert_int_equal(sscanf(line, " %u 0x%" SCNx64 "-0x%" SCNx64 " %*u %*s %15s", &idx, &lo,
		                        &hi, type), 4);
		assert_int_equal(idx, p->n);
		p->r[p->n].base = lo;
		p->r[p->n].length = hi - lo + 1;
		p->r[p->n].type = !strcmp(type, "usable")        ? KMEM_REGION_USABLE
		                  : !strcmp(type, "reclaimable") ? KMEM_REGION_RECLAIMABLE
		                                                 : KMEM_REGION_RESERVED;
		p->r[p->n].node = 0;
		p->n++;
	}
	fclose(f);
	assert_true(p->mbi_phys != 0 && p->mbi_size != 0);
	assert_int_equal(p->n, want);
}

/* The MBI's memory map tag, found by a walk of this test's own; every tag
 * must lie inside the file. */
static const uint8_t *mmap_tag(const uint8_t *mbi, size_t len)
{
	for (size_t off = 8; off + 8 <= len;) {
		uint32_t type = ld32(mbi + off), size = ld32(mbi + off + 4);
		assert_true(size >= 8 && size <= len - off);
		if (type == 6)
			return mbi + off;
		assert_int_not_equal(type, 0); /* the end tag before a memory map */
		off += (size + 7) & ~(size_t)7;
	}
	fail_msg("no end tag inside the file");
	return NULL;
}

static uint64_t up(uint64_t a) { return (a + PG - 1) & ~(uint64_t)(PG - 1); }
static uint64_t down(uint64_t a) { return a & ~(uint64_t)(PG - 1); }

/* [lo, hi) lies within regions of `type` (r sorted, disjoint). */
static void assert_covered(const struct kmem_region *r, long n, uint64_t lo, uint64_t hi,
                           uint32_t type)
{
	for (long i = 0; i < n && lo < hi; i++)
		if (r[i].base <= lo && lo < r[i].base + r[i].length) {
			if (r[i].type != type)
				fail_msg("0x%" PRIx64 " is type %u, not %u", lo, r[i].type, type);
			lo = r[i].base + r[i].length;
		}
	if (lo < hi)
		fail_msg("0x%" PRIx64 " is in no region of type %u", lo, type);
}

/* The MBI's ELF-symbols tag (9), found and read by this test's own walk:
 * the byte ranges of the sections that have an address and a size.
 * GRUB's layout: u32 type, size, num, entsize, shndx, then the headers. */
static size_t elf_sections(const uint8_t *mbi, size_t len, uint64_t (*out)[2], size_t cap)
{
	size_t k = 0;
	for (size_t off = 8; off + 8 <= len;) {
		uint32_t type = ld32(mbi + off), size = ld32(mbi + off + 4);
		if (type == 0)
			break;
		if (type == 9) {
			uint32_t num = ld32(mbi + off + 8), esize = ld32(mbi + off + 12);
			assert_int_equal(esize, 64); /* the demo kernel is ELF64 */
			assert_true(20 + (uint64_t)num * esize <= size);
			for (uint32_t i = 0; i < num; i++) {
				const uint8_t *sh = mbi + off + 20 + i * esize;
				uint64_t addr = ld64(sh + 16), bytes = ld64(sh + 32);
				if (ld32(sh + 4) == 0 || addr == 0 || bytes == 0)
					continue;
				assert_true(k < cap);
				out[k][0] = addr;
				out[k][1] = addr + bytes;
				k++;
			}
		}
		off += (size + 7) & ~(size_t)7;
	}
	return k;
}

#define MAXS 64

/* One boot's log and MBI, and the MBI read as the kernel read it. */
struct booted {
	struct printed p;
	uint8_t *mbi;
	size_t len;
	struct kmem_region r[MAXR];
	long n; /* regions in r[], or the adapter's error */
	uint64_t sec[MAXS][2]; /* the ELF sections' byte ranges */
	size_t nsec;
};

/* cmocka setup: *state is a struct grub_boot on entry, its struct booted
 * after. */
static int load_boot(void **state)
{
	const struct grub_boot *gb = *state;
	struct booted *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	read_log(gb->log_file, &g->p);
	g->mbi = slurp(gb->mbi_file, &g->len);
	assert_int_equal(g->len, g->p.mbi_size);
	assert_int_equal(ld32(g->mbi), g->p.mbi_size);
	g->n = kmem_memmap_multiboot2(g->mbi, g->p.mbi_phys, g->r, MAXR);
	g->nsec = elf_sections(g->mbi, g->len, g->sec, MAXS);
	*state = g;
	return 0;
}

static int free_boot(void **state)
{
	struct booted *g = *state;
	free(g->mbi);
	free(g);
	return 0;
}

/* The regions the kernel printed, with the sections reserved on top. */
static void test_grub_as_booted(void **state)
{
	const struct booted *g = *state;
	struct kmem_region e[MAXR + MAXS];
	size_t ne = g->p.n;
	memcpy(e, g->p.r, ne * sizeof(e[0]));
	for (size_t i = 0; i < g->nsec; i++)
		e[ne++] = (struct kmem_region){g->sec[i][0], g->sec[i][1] - g->sec[i][0],
		                               KMEM_REGION_RESERVED, 0};
	long want = kmem_memmap_normalize(e, ne, MAXR + MAXS);
	assert_true(g->nsec >= 2); /* the image and what GRUB loaded after it */
	assert_int_equal(g->n, want);
	for (long i = 0; i < g->n; i++) {
		assert_int_equal(g->r[i].base, e[i].base);
		assert_int_equal(g->r[i].length, e[i].length);
		assert_int_equal(g->r[i].type, e[i].type);
	}
}

/* [lo, hi) less the holes h[0..nh) (sorted, disjoint), in regions of r:
 * the parts outside the holes usable, the holes reserved; returns the
 * usable bytes. */
static uint64_t usable_less_holes(const struct kmem_region *r, long n, uint64_t lo, uint64_t hi,
                                  uint64_t (*h)[2], size_t nh)
{
	uint64_t bytes = 0;
	for (size_t i = 0; i < nh && lo < hi; i++) {
		if (h[i][1] <= lo || h[i][0] >= hi)
			continue;
		if (h[i][0] > lo) {
			assert_covered(r, n, lo, h[i][0], KMEM_REGION_USABLE);
			bytes += h[i][0] - lo;
		}
		assert_covered(r, n, h[i][0] > lo ? h[i][0] : lo, h[i][1] < hi ? h[i][1] : hi,
		               KMEM_REGION_RESERVED);
		lo = h[i][1];
	}
	if (lo < hi) {
		assert_covered(r, n, lo, hi, KMEM_REGION_USABLE);
		bytes += hi - lo;
	}
	return bytes;
}

static void test_grub_raw_map(void **state)
{
	const struct booted *g = *state;
	const struct kmem_region *r = g->r;
	long n = g->n;
	assert_true(n > 0);
	for (long i = 0; i < n; i++) {
		assert_true(r[i].base % PG == 0 && r[i].length % PG == 0 && r[i].length > 0);
		assert_true(i == 0 || r[i - 1].base + r[i - 1].length <= r[i].base);
	}

	/* GRUB's E820 entries: 24 bytes, sorted and disjoint on this machine
	 * (so the usable total below is a plain sum). */
	const uint8_t *t = mmap_tag(g->mbi, g->len);
	uint32_t size = ld32(t + 4), esize = ld32(t + 8);
	assert_int_equal(esize, 24);
	/* The holes the adapter must make in usable memory: the MBI and the
	 * sections, each rounded out to pages, sorted and merged. */
	uint64_t hole[MAXS + 1][2];
	size_t nh = 0;
	hole[nh][0] = down(g->p.mbi_phys);
	hole[nh++][1] = up(g->p.mbi_phys + g->p.mbi_size);
	for (size_t i = 0; i < g->nsec; i++) {
		hole[nh][0] = down(g->sec[i][0]);
		hole[nh++][1] = up(g->sec[i][1]);
	}
	for (size_t i = 1; i < nh; i++) /* insertion sort by start */
		for (size_t j = i; j > 0 && hole[j][0] < hole[j - 1][0]; j--) {
			uint64_t a = hole[j][0], b = hole[j][1];
			hole[j][0] = hole[j - 1][0], hole[j][1] = hole[j - 1][1];
			hole[j - 1][0] = a, hole[j - 1][1] = b;
		}
	size_t m = 0;
	for (size_t i = 0; i < nh; i++)
		if (m && hole[i][0] <= hole[m - 1][1]) {
			if (hole[i][1] > hole[m - 1][1])
				hole[m - 1][1] = hole[i][1];
		} else {
			hole[m][0] = hole[i][0], hole[m][1] = hole[i][1];
			m++;
		}
	nh = m;
	uint64_t usable = 0, prev_end = 0, nusable = 0;
	for (uint32_t off = 16; off + esize <= size; off += esize) {
		uint64_t a = ld64(t + off), l = ld64(t + off + 8);
		uint32_t type = ld32(t + off + 16);
		assert_true(a >= prev_end);
		prev_end = a + l;
		if (type != 1) {
			assert_covered(r, n, down(a), up(a + l), KMEM_REGION_RESERVED);
			continue;
		}
		nusable++;
		usable += usable_less_holes(r, n, up(a), down(a + l), hole, nh);
	}
	assert_true(nusable >= 2);
	for (size_t i = 0; i < nh; i++)
		assert_covered(r, n, hole[i][0], hole[i][1], KMEM_REGION_RESERVED);
	uint64_t got = 0;
	for (long i = 0; i < n; i++)
		got += r[i].type == KMEM_REGION_USABLE ? r[i].length : 0;
	assert_int_equal(got, usable);
}

static void test_grub_cut(void **state)
{
	const struct booted *g = *state;
	struct kmem_region r[MAXR];
	/* Every shorter total_size drops the end tag (the last 8 bytes). */
	for (size_t cut = 8; cut < g->len; cut += 8) {
		uint8_t *c = malloc(cut);
		assert_non_null(c);
		memcpy(c, g->mbi, cut);
		c[0] = (uint8_t)cut;
		c[1] = (uint8_t)(cut >> 8);
		c[2] = c[3] = 0;
		assert_int_equal(kmem_memmap_multiboot2(c, g->p.mbi_phys, r, MAXR), -KMEM_EINVAL);
		free(c);
	}
	assert_true(g->n > 0);
}

#define GRUB_TEST(f, i, name) {"grub " name ": " #f, f, load_boot, free_boot, (void *)&boots[i]}

int main(void)
{
	const struct CMUnitTest tests[] = {
		GRUB_TEST(test_grub_as_booted, 0, "4cpu-512M"),
		GRUB_TEST(test_grub_raw_map, 0, "4cpu-512M"),
		GRUB_TEST(test_grub_cut, 0, "4cpu-512M"),
		GRUB_TEST(test_grub_as_booted, 1, "2cpu-4G"),
		GRUB_TEST(test_grub_raw_map, 1, "2cpu-4G"),
		GRUB_TEST(test_grub_cut, 1, "2cpu-4G"),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
