/*
 * tests/test_memmap.c - the memory-map adapters (mm/memmap.c) on the host.
 *
 * Each adapter gets bytes laid out as its protocol's specification says,
 * written field by field at the spec's offsets (little-endian) into
 * buffers of exactly the declared length, so under ASan a read past a
 * structure's end fails the test.  The E820 maps are QEMU's as SeaBIOS
 * reports them (written down from SeaBIOS's and QEMU's layout: low RAM up
 * to the EBDA at 0x9fc00, the BIOS ROM at 0xf0000, RAM from 1 MiB up to
 * 128 KiB below the top of low memory, the IOAPIC/LAPIC-area and BIOS
 * flash reservations, and for q35 with more than 2.75 GiB low memory cut
 * at 2 GiB, the rest at 4 GiB).  Every result must also be normal:
 * page-aligned, sorted, disjoint, merged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "spanalloc/memmap.h"

#define U KMEM_REGION_USABLE
#define R KMEM_REGION_RESERVED
#define C KMEM_REGION_RECLAIMABLE
#define PG KMEM_PAGE_SIZE

/* ------------------------------------------------------------------------
 * Helpers
 */

static void put(uint8_t *b, size_t off, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}

/* A heap copy of exactly len bytes: ASan catches a read past it. */
static void *exact(const void *src, size_t len)
{
	void *p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, src, len);
	return p;
}

/* The output must be page-aligned, sorted, disjoint, merged, known types. */
static void assert_normal(const struct kmem_region *r, long n)
{
	assert_true(n >= 0);
	for (long i = 0; i < n; i++) {
		assert_true(r[i].base % PG == 0 && r[i].length % PG == 0 && r[i].length > 0);
		assert_true(r[i].type == U || r[i].type == R || r[i].type == C);
		if (i) {
			uint64_t prev_end = r[i - 1].base + r[i - 1].length;
			assert_true(prev_end <= r[i].base);
			assert_false(prev_end == r[i].base && r[i - 1].type == r[i].type);
		}
	}
}

static void assert_map(const struct kmem_region *r, long n, const struct kmem_region *exp,
                       size_t ne)
{
	assert_normal(r, n);
	if ((size_t)n != ne) {
		for (long i = 0; i < n; i++)
			print_message("  got %#llx +%#llx type %u\n", (unsigned long long)r[i].base,
			              (unsigned long long)r[i].length, r[i].type);
	}
	assert_int_equal(n, ne);
	for (size_t i = 0; i < ne; i++) {
		assert_int_equal(r[i].base, exp[i].base);
		assert_int_equal(r[i].length, exp[i].length);
		assert_int_equal(r[i].type, exp[i].type);
	}
}

/* Type of the region holding addr, 0 if none. */
static uint32_t type_at(const struct kmem_region *r, long n, uint64_t addr)
{
	for (long i = 0; i < n; i++)
		if (addr >= r[i].base && addr - r[i].base < r[i].length)
			return r[i].type;
	return 0;
}

static uint64_t bytes_of(const struct kmem_region *r, long n, uint32_t type)
{
	uint64_t s = 0;
	for (long i = 0; i < n; i++)
		if (r[i].type == type)
			s += r[i].length;
	return s;
}

/* An E820 entry i of esz bytes (attr written when esz >= 24). */
static void e820(uint8_t *b, size_t i, size_t esz, uint64_t base, uint64_t len, uint32_t type)
{
	put(b, i * esz, base, 8);
	put(b, i * esz + 8, len, 8);
	put(b, i * esz + 16, type, 4);
	if (esz >= 24)
		put(b, i * esz + 20, 1, 4); /* ACPI 3.0: enabled */
}

/* ------------------------------------------------------------------------
 * kmem_memmap_add and kmem_memmap_normalize
 */

static void test_add(void **state)
{
	(void)state;
	struct kmem_region r[3];
	size_t n = 0;
	assert_int_equal(kmem_memmap_add(r, 3, &n, 0x1000, 0, U), 0); /* empty: dropped */
	assert_int_equal(n, 0);
	assert_int_equal(kmem_memmap_add(r, 3, &n, 0x1000, 0x1000, U), 0);
	assert_int_equal(kmem_memmap_add(r, 3, &n, 0x2000, 0x500, U), 0); /* contiguous: merged */
	assert_int_equal(n, 1);
	assert_int_equal(r[0].length, 0x1500);
	assert_int_equal(kmem_memmap_add(r, 3, &n, 0x2500, 0x100, R), 0); /* other type */
	assert_int_equal(n, 2);
	/* Past 2^64: cut there. */
	assert_int_equal(kmem_memmap_add(r, 3, &n, UINT64_MAX - 0xfff, 0x5000, U), 0);
	assert_int_equal(n, 3);
	assert_int_equal(r[2].length, 0x1000);
	/* The region ending at 2^64 and one at 0 are not contiguous (the old
	 * check base + length == next base wrapped to 0 and merged them
	 * into a region crossing 2^64); with the array full that is ENOMEM. */
	assert_int_equal(kmem_memmap_add(r, 3, &n, 0, 0x1000, U), -KMEM_ENOMEM);
	assert_int_equal(r[2].length, 0x1000);
	n = 1;
	r[0] = (struct kmem_region){UINT64_MAX - 0xfff, 0x1000, U, 0};
	assert_int_equal(kmem_memmap_add(r, 3, &n, 0, 0x1000, U), 0);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].length, 0x1000);
	assert_int_equal(r[1].base, 0);
	/* A whole-space length from 0 is kept. */
	n = 0;
	assert_int_equal(kmem_memmap_add(r, 3, &n, 0, UINT64_MAX, R), 0);
	assert_int_equal(r[0].length, UINT64_MAX);
}

static void test_normalize(void **state)
{
	(void)state;
	struct kmem_region r[16] = {
		{0x10000, 0xf0000, U, 0},                  /* [64K, 1M) */
		{0x38800, 0x1000, R, 0},                   /* unaligned hole inside: out [0x38000, 0x3a000) */
		{0x80100, 0x2000, C, 0},                   /* reclaimable: outward [0x80000, 0x83000) */
		{0x81000, 0x800, R, 0},                    /* reserved inside reclaimable */
		{0x200, 0xe00, U, 0},                      /* less than a page after rounding in: gone */
		{0x200000, 0x1800, U, 0},                  /* inward: [0x200000, 0x201000) */
		{0x201800, 0x1800, U, 0},                  /* inward: [0x202000, 0x203000); 0x201000 lost */
		{0x300000, 0x1000, 77, 0},                 /* unknown type: reserved */
		{0x300000, 0x3000, U, 0},
		{UINT64_MAX - 0x1fff, 0x2000, R, 0},       /* ends at 2^64 */
		{0x5000, 0, U, 0},                         /* empty */
		{0x40800, 0, C, 0},                        /* empty: touches no page */
	};
	long n = kmem_memmap_normalize(r, 12, 16);
	const struct kmem_region exp[] = {
		{0x10000, 0x28000, U, 0}, {0x38000, 0x2000, R, 0}, {0x3a000, 0x46000, U, 0},
		{0x80000, 0x1000, C, 0},  {0x81000, 0x1000, R, 0}, {0x82000, 0x1000, C, 0},
		{0x83000, 0x7d000, U, 0}, {0x200000, 0x1000, U, 0}, {0x202000, 0x1000, U, 0},
		{0x300000, 0x1000, R, 0}, {0x301000, 0x2000, U, 0}, {UINT64_MAX - 0x1fff, 0x2000, R, 0},
	};
	assert_map(r, n, exp, sizeof exp / sizeof exp[0]);

	/* Idempotent. */
	struct kmem_region again[16];
	memcpy(again, r, sizeof r);
	assert_int_equal(kmem_memmap_normalize(again, (size_t)n, 16), n);
	assert_map(again, n, r, (size_t)n);

	/* Room: n holes in one region need 2n + 1 slots. */
	struct kmem_region h[7] = {{0, 0x100000, U, 0}, {0x10000, 1, R, 0}, {0x20000, 1, R, 0}, {0x30000, 1, R, 0}};
	assert_int_equal(kmem_memmap_normalize(h, 4, 6), -KMEM_ENOMEM);
	struct kmem_region h2[7] = {{0, 0x100000, U, 0}, {0x10000, 1, R, 0}, {0x20000, 1, R, 0}, {0x30000, 1, R, 0}};
	assert_int_equal(kmem_memmap_normalize(h2, 4, 7), 7);
	assert_int_equal(kmem_memmap_normalize(h2, 8, 7), -KMEM_EINVAL);
	assert_int_equal(kmem_memmap_normalize(NULL, 0, 0), 0);
	assert_int_equal(kmem_memmap_normalize(NULL, 1, 1), -KMEM_EINVAL);
}

/* The normaliser against a page-by-page model: a page is RESERVED iff a
 * reserved (or unknown) region touches it, else RECLAIMABLE iff a
 * reclaimable one does, else USABLE iff it lies wholly in one usable
 * region (kmem_init()'s rule). */
static void test_normalize_model(void **state)
{
	(void)state;
	enum { PAGES = 64, MAXN = 12 };
	uint64_t seed = fx_seed();
	for (int iter = 0; iter < 3000; iter++) {
		struct kmem_region in[MAXN], r[2 * MAXN];
		size_t n = 1 + fx_mix64(seed + (uint64_t)iter * 7919) % MAXN;
		for (size_t i = 0; i < n; i++) {
			uint64_t x = fx_mix64(seed ^ ((uint64_t)iter << 20 | i));
			uint64_t base = x % (PAGES * PG), len = (x >> 24) % (16 * PG);
			if ((x >> 50) & 1) { /* often aligned */
				base &= ~(PG - 1);
				len &= ~(PG - 1);
			}
			uint32_t types[] = {U, U, U, R, C, 9};
			in[i] = (struct kmem_region){base, len, types[(x >> 56) % 6], 0};
		}
		memcpy(r, in, n * sizeof in[0]);
		long m = kmem_memmap_normalize(r, n, 2 * n - 1 ? 2 * n - 1 : 1);
		assert_normal(r, m);
		for (uint64_t p = 0; p < PAGES + 16; p++) {
			uint64_t a = p * PG;
			bool res = false, rec = false, use = false;
			for (size_t i = 0; i < n; i++) {
				/* An empty region touches nothing (it covers no byte). */
				bool touch = in[i].length && in[i].base < a + PG &&
				             a < in[i].base + in[i].length;
				bool whole = in[i].base <= a && a + PG <= in[i].base + in[i].length;
				if (in[i].type == U)
					use |= whole;
				else if (in[i].type == C)
					rec |= touch;
				else
					res |= touch;
			}
			uint32_t want = res ? R : rec ? C : use ? U : 0;
			if (type_at(r, m, a) != want)
				fail_msg("seed %llu iter %d page %llu: got %u want %u",
				         (unsigned long long)seed, iter, (unsigned long long)p, type_at(r, m, a),
				         want);
		}
	}
}

/* ------------------------------------------------------------------------
 * E820
 */

/* SeaBIOS's map for QEMU with low memory up to `low`: entries 0..4 of
 * esz bytes (base RAM, EBDA, BIOS ROM, RAM from 1 MiB, the 128 KiB below
 * the top of low memory). */
static void seabios_low(uint8_t *raw, size_t esz, uint64_t low)
{
	e820(raw, 0, esz, 0x0, 0x9fc00, 1);
	e820(raw, 1, esz, 0x9fc00, 0x400, 2);
	e820(raw, 2, esz, 0xf0000, 0x10000, 2);
	e820(raw, 3, esz, 0x100000, low - 0x20000 - 0x100000, 1);
	e820(raw, 4, esz, low - 0x20000, 0x20000, 2);
}

/* QEMU -machine pc -m 512M, SeaBIOS, 20-byte entries (int 15h e820). */
static void test_e820_qemu_pc_512m(void **state)
{
	(void)state;
	uint8_t raw[7 * 20];
	seabios_low(raw, 20, 0x20000000);
	e820(raw, 5, 20, 0xfeffc000, 0x4000, 2);
	e820(raw, 6, 20, 0xfffc0000, 0x40000, 2);
	void *b = exact(raw, sizeof raw);
	struct kmem_region r[16];
	long n = kmem_memmap_e820(b, 7, 20, r, 16);
	const struct kmem_region exp[] = {
		{0x0, 0x9f000, U, 0},          /* the EBDA's page goes */
		{0x9f000, 0x1000, R, 0},
		{0xf0000, 0x10000, R, 0},
		{0x100000, 0x1fee0000, U, 0},
		{0x1ffe0000, 0x20000, R, 0},
		{0xfeffc000, 0x4000, R, 0},
		{0xfffc0000, 0x40000, R, 0},
	};
	assert_map(r, n, exp, 7);
	assert_int_equal(bytes_of(r, n, U), 0x9f000 + 0x1fee0000);
	free(b);
}

/* QEMU -machine q35 -m 5G, SeaBIOS: low RAM cut at 2 GiB (q35 does so
 * from 2.75 GiB), MMCONFIG and RCBA reserved, 3 GiB at 4 GiB, and the
 * AMD HyperTransport hole QEMU 7.1+ reserves for its (AMD-vendor)
 * default CPU.  Given here in 24-byte ACPI 3.0 form, as SeaBIOS answers
 * when asked for 24 bytes. */
static void test_e820_qemu_q35_5g(void **state)
{
	(void)state;
	const uint64_t G = 1ull << 30;
	uint8_t raw[11 * 24];
	seabios_low(raw, 24, 0x80000000);
	e820(raw, 5, 24, 0xb0000000, 0x10000000, 2);
	e820(raw, 6, 24, 0xfed1c000, 0x4000, 2);
	e820(raw, 7, 24, 0xfeffc000, 0x4000, 2);
	e820(raw, 8, 24, 0xfffc0000, 0x40000, 2);
	e820(raw, 9, 24, 4 * G, 3 * G, 1);
	e820(raw, 10, 24, 0xfd00000000, 0x300000000, 2);
	void *b = exact(raw, sizeof raw);
	struct kmem_region r[16];
	long n = kmem_memmap_e820(b, 11, 24, r, 16);
	const struct kmem_region exp[] = {
		{0x0, 0x9f000, U, 0},         {0x9f000, 0x1000, R, 0},         {0xf0000, 0x10000, R, 0},
		{0x100000, 0x7fee0000, U, 0}, {0x7ffe0000, 0x20000, R, 0},     {0xb0000000, 0x10000000, R, 0},
		{0xfed1c000, 0x4000, R, 0},   {0xfeffc000, 0x4000, R, 0},      {0xfffc0000, 0x40000, R, 0},
		{4 * G, 3 * G, U, 0},         {0xfd00000000, 0x300000000, R, 0},
	};
	assert_map(r, n, exp, 11);
	assert_int_equal(bytes_of(r, n, U), 0x9f000 + 0x7fee0000 + 3 * G);

	/* The heap over it: every usable page is managed (metadata aside)
	 * but page 0, which kmem_init() never takes. */
	fx_reserve(7 * G); /* the map below 7 GiB: all but the HT hole */
	assert_int_equal(fx_init(r, (size_t)n - 1, 1), 0);
	struct kmem_stats st = fx_stats();
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	assert_int_equal(st.pages_managed + ms / PG, bytes_of(r, n, U) / PG - 1);
	free(b);
}

static void test_e820_edges(void **state)
{
	(void)state;
	uint8_t raw[9 * 24];
	e820(raw, 0, 24, 0x100000, 0x100000, 1);
	e820(raw, 1, 24, 0x180123, 0x10, 2);       /* reserved inside RAM, unaligned */
	e820(raw, 2, 24, 0x1ff800, 0x1000, 3);     /* ACPI reclaim over RAM's end */
	e820(raw, 3, 24, 0x300000, 0x1000, 4);     /* NVS */
	e820(raw, 4, 24, 0x301000, 0x1000, 5);     /* unusable */
	e820(raw, 5, 24, 0x302000, 0x1000, 12);    /* unknown */
	e820(raw, 6, 24, 0x400000, 0, 1);          /* empty */
	e820(raw, 7, 24, 0x500000, 0x100000, 1);   /* ACPI 3.0 "ignore": dropped */
	put(raw, 7 * 24 + 20, 0, 4);
	e820(raw, 8, 24, UINT64_MAX - 0xfff, 0x10000, 1); /* runs past 2^64: cut */
	void *b = exact(raw, sizeof raw);
	struct kmem_region r[16];
	long n = kmem_memmap_e820(b, 9, 24, r, 16);
	const struct kmem_region exp[] = {
		{0x100000, 0x80000, U, 0}, {0x180000, 0x1000, R, 0}, {0x181000, 0x7e000, U, 0},
		{0x1ff000, 0x2000, C, 0},  {0x300000, 0x3000, R, 0}, {UINT64_MAX - 0xfff, 0x1000, U, 0},
	};
	assert_map(r, n, exp, 6);
	/* The same entries read as 20-byte ones give other numbers but never
	 * an out-of-bounds read (the buffer is 9 * 24 bytes). */
	assert_true(kmem_memmap_e820(b, 9, 20, r, 16) > 0);
	assert_int_equal(kmem_memmap_e820(b, 9, 19, r, 16), -KMEM_EINVAL);
	assert_int_equal(kmem_memmap_e820(NULL, 1, 20, r, 16), -KMEM_EINVAL);
	assert_int_equal(kmem_memmap_e820(b, KMEM_MEMMAP_MAX_ENTRIES + 1, 20, r, 16), -KMEM_EINVAL);
	assert_int_equal(kmem_memmap_e820(b, 9, 24, r, 5), -KMEM_ENOMEM);
	assert_int_equal(kmem_memmap_e820(NULL, 0, 20, r, 16), 0);
	free(b);
}

/* ------------------------------------------------------------------------
 * Multiboot (v1): an information structure in a simulated low memory.
 */

#define MB_PHYS 0x10000u /* "physical" address of mem[0] */
#define MB_MEM 0x8000u

static uintptr_t mb_off(const uint8_t *mem)
{
	return (uintptr_t)mem - MB_PHYS;
}

static void test_multiboot1(void **state)
{
	(void)state;
	uint8_t *mem = calloc(1, MB_MEM);
	assert_non_null(mem);
	const uint32_t info = 0x100, mmap = 0x400, cmd = 0x800, name = 0x900, mods = 0xa00,
	               str = 0xb00, shdr = 0x1000, drives = 0x2000, apm = 0x3000, vbec = 0x4000,
	               vbem = 0x5000;
	uint8_t *in = mem + info;
	put(in, 0, 1 | 1 << 2 | 1 << 3 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12, 4);
	put(in, 4, 639, 4);
	put(in, 8, 1, 4); /* mem_upper: ignored, the mmap wins */
	put(in, 16, MB_PHYS + cmd, 4);
	strcpy((char *)mem + cmd, "console=ttyS0 loglevel=7");
	put(in, 64, MB_PHYS + name, 4);
	strcpy((char *)mem + name, "qemu");
	put(in, 20, 2, 4);
	put(in, 24, MB_PHYS + mods, 4);
	put(mem + mods, 0, 0x800000, 4);       /* module 0 [8M, 8M + 0x1234) */
	put(mem + mods, 4, 0x801234, 4);
	put(mem + mods, 8, MB_PHYS + str, 4);
	strcpy((char *)mem + str, "initrd");
	put(mem + mods, 16, 0x900000, 4);      /* module 1, no string */
	put(mem + mods, 20, 0x900000 + 3 * PG, 4);
	put(in, 28, 20, 4);                    /* ELF: 20 section headers of 64 bytes */
	put(in, 32, 64, 4);
	put(in, 36, MB_PHYS + shdr, 4);
	put(in, 52, 0x40, 4);
	put(in, 56, MB_PHYS + drives, 4);
	put(in, 68, MB_PHYS + apm, 4);
	put(in, 72, MB_PHYS + vbec, 4);
	put(in, 76, MB_PHYS + vbem, 4);
	put(in, 88, 0xfd000000, 8);            /* framebuffer 1024x768x32 */
	put(in, 96, 4096, 4);
	put(in, 100, 1024, 4);
	put(in, 104, 768, 4);
	/* The memory map: QEMU's pc 512M one, size-prefixed; one entry with a
	 * 24-byte body (its attribute says enabled). */
	uint32_t off = 0;
	const uint64_t ents[][3] = {{0, 0x9fc00, 1}, {0x9fc00, 0x400, 2}, {0xf0000, 0x10000, 2},
	                            {0x100000, 0x1fee0000, 1}, {0x1ffe0000, 0x20000, 2},
	                            {0xfffc0000, 0x40000, 2}};
	for (unsigned i = 0; i < 6; i++) {
		uint32_t body = i == 3 ? 24 : 20;
		put(mem + mmap, off, body, 4);
		e820(mem + mmap + off + 4, 0, body, ents[i][0], ents[i][1], (uint32_t)ents[i][2]);
		off += 4 + body;
	}
	put(in, 44, off, 4);
	put(in, 48, MB_PHYS + mmap, 4);

	struct kmem_region r[32];
	long n = kmem_memmap_multiboot1(in, MB_PHYS + info, mb_off(mem), r, 32);
	assert_normal(r, n);
	assert_int_equal(type_at(r, n, 0x9000), U);
	assert_int_equal(type_at(r, n, 0x200000), U);
	assert_int_equal(type_at(r, n, 0x9f000), R);
	uint32_t must[] = {info, info + 115, mmap, cmd, name, mods, str, shdr, shdr + 20 * 64 - 1,
	                   drives, drives + 0x3f, apm, vbec, vbec + 511, vbem};
	for (unsigned i = 0; i < sizeof must / sizeof must[0]; i++)
		assert_int_equal(type_at(r, n, MB_PHYS + must[i]), R);
	assert_int_equal(type_at(r, n, 0x800000), R);
	assert_int_equal(type_at(r, n, 0x801233), R);
	assert_int_equal(type_at(r, n, 0x802000), U);
	assert_int_equal(type_at(r, n, 0x900000 + 2 * PG), R);
	assert_int_equal(type_at(r, n, 0x900000 + 3 * PG), U);
	assert_int_equal(type_at(r, n, 0xfd000000 + 4096 * 768 - 1), R);
	assert_int_equal(type_at(r, n, 0x1ffe0000), R);

	/* Without the mmap: mem_lower / mem_upper. */
	put(in, 0, 1, 4);
	put(in, 8, 0x1000, 4); /* 4 MiB above 1 MiB */
	n = kmem_memmap_multiboot1(in, MB_PHYS + info, mb_off(mem), r, 32);
	const struct kmem_region exp[] = {
		{0, 0x10000, U, 0}, {0x10000, 0x1000, R, 0}, {0x11000, 0x8e000, U, 0}, {0x100000, 0x400000, U, 0}};
	assert_map(r, n, exp, 4);

	/* Malformed: no memory information; a mmap entry body < 20; an entry
	 * running past mmap_length; a torn size field; too many modules; a
	 * module ending before it starts. */
	put(in, 0, 0, 4);
	assert_int_equal(kmem_memmap_multiboot1(in, 0, mb_off(mem), r, 32), -KMEM_EINVAL);
	put(in, 0, 1 << 6, 4);
	put(mem + mmap, 0, 16, 4);
	assert_int_equal(kmem_memmap_multiboot1(in, 0, mb_off(mem), r, 32), -KMEM_EINVAL);
	put(mem + mmap, 0, 20, 4);
	put(in, 44, 23, 4);
	assert_int_equal(kmem_memmap_multiboot1(in, 0, mb_off(mem), r, 32), -KMEM_EINVAL);
	put(in, 44, 26, 4);
	assert_int_equal(kmem_memmap_multiboot1(in, 0, mb_off(mem), r, 32), -KMEM_EINVAL);
	put(in, 44, 24, 4); /* one entry; info (at 0) and the map buffer reserved */
	n = kmem_memmap_multiboot1(in, 0, mb_off(mem), r, 32);
	const struct kmem_region one[] = {
		{0, 0x1000, R, 0}, {0x1000, 0xf000, U, 0}, {0x10000, 0x1000, R, 0}, {0x11000, 0x8e000, U, 0}};
	assert_map(r, n, one, 4);
	put(in, 0, 1 << 6 | 1 << 3, 4);
	put(in, 20, 4097, 4);
	assert_int_equal(kmem_memmap_multiboot1(in, 0, mb_off(mem), r, 32), -KMEM_EINVAL);
	put(in, 20, 1, 4);
	put(mem + mods, 4, 0x7fffff, 4);
	assert_int_equal(kmem_memmap_multiboot1(in, 0, mb_off(mem), r, 32), -KMEM_EINVAL);
	assert_int_equal(kmem_memmap_multiboot1(NULL, 0, 0, r, 32), -KMEM_EINVAL);
	free(mem);
}

/* ------------------------------------------------------------------------
 * Multiboot2: a boot information structure built tag by tag.
 */

struct mbi {
	uint8_t b[4096];
	uint32_t n;
};

static uint32_t mbi_tag(struct mbi *m, uint32_t type, uint32_t size)
{
	uint32_t off = m->n;
	put(m->b, off, type, 4);
	put(m->b, off + 4, size, 4);
	m->n = (off + size + 7) & ~7u;
	assert_true(m->n < sizeof m->b);
	return off;
}

/* The finished structure in a buffer of exactly total_size bytes. */
static void *mbi_end(struct mbi *m)
{
	mbi_tag(m, 0, 8);
	put(m->b, 0, m->n, 4);
	return exact(m->b, m->n);
}

static uint32_t mbi_mmap(struct mbi *m, const uint64_t (*e)[3], unsigned ne)
{
	uint32_t off = mbi_tag(m, 6, 16 + 24 * ne);
	put(m->b, off + 8, 24, 4);
	put(m->b, off + 12, 0, 4);
	for (unsigned i = 0; i < ne; i++)
		e820(m->b + off + 16, i, 24, e[i][0], e[i][1], (uint32_t)e[i][2]);
	return off;
}

/* An EFI_MEMORY_DESCRIPTOR of dsz bytes at p. */
static void efi_desc(uint8_t *p, uint32_t type, uint64_t phys, uint64_t npages, uint64_t attr)
{
	put(p, 0, type, 4);
	put(p, 8, phys, 8);
	put(p, 16, 0, 8);
	put(p, 24, npages, 8);
	put(p, 32, attr, 8);
}

static const uint64_t mb2_pc[][3] = {{0, 0x9fc00, 1}, {0x9fc00, 0x400, 2}, {0xf0000, 0x10000, 2},
                                     {0x100000, 0x1fee0000, 1}, {0x1ffe0000, 0x20000, 2},
                                     {0xfffc0000, 0x40000, 3}};

static void mbi_common(struct mbi *m)
{
	m->n = 8;
	uint32_t t = mbi_tag(m, 1, 8 + 14);
	memcpy(m->b + t + 8, "console=ttyS0", 14);
	t = mbi_tag(m, 2, 8 + 5);
	memcpy(m->b + t + 8, "GRUB", 5);
	t = mbi_tag(m, 3, 16 + 7);
	put(m->b, t + 8, 0x800000, 4);
	put(m->b, t + 12, 0x800000 + 0x2345, 4);
	memcpy(m->b + t + 16, "initrd", 7);
	t = mbi_tag(m, 4, 16);
	put(m->b, t + 8, 639, 4);
	put(m->b, t + 12, 0x7fb80, 4);
	t = mbi_tag(m, 8, 32);
	put(m->b, t + 8, 0xb8000, 8); /* EGA text 80x25 */
	put(m->b, t + 16, 160, 4);
	put(m->b, t + 20, 80, 4);
	put(m->b, t + 24, 25, 4);
	m->b[t + 28] = 16;
	m->b[t + 29] = 2;
}

static void test_multiboot2(void **state)
{
	(void)state;
	struct mbi m;
	struct kmem_region r[32];
	const uint64_t mbi_phys = 0x10000;

	/* Memory map tag (and basic meminfo, which it overrides). */
	mbi_common(&m);
	mbi_mmap(&m, mb2_pc, 6);
	void *b = mbi_end(&m);
	long n = kmem_memmap_multiboot2(b, mbi_phys, r, 32);
	const struct kmem_region exp[] = {
		{0, 0x10000, U, 0}, {0x10000, 0x1000, R, 0}, {0x11000, 0x8e000, U, 0}, {0x9f000, 0x1000, R, 0},
		{0xb8000, 0x1000, R, 0}, {0xf0000, 0x10000, R, 0}, {0x100000, 0x700000, U, 0},
		{0x800000, 0x3000, R, 0}, {0x803000, 0x1f7dd000, U, 0}, {0x1ffe0000, 0x20000, R, 0},
		{0xfffc0000, 0x40000, C, 0},
	};
	assert_map(r, n, exp, sizeof exp / sizeof exp[0]);
	free(b);

	/* Only basic meminfo. */
	mbi_common(&m);
	b = mbi_end(&m);
	n = kmem_memmap_multiboot2(b, mbi_phys, r, 32);
	assert_normal(r, n);
	assert_int_equal(type_at(r, n, 0x9e000), U);
	assert_int_equal(type_at(r, n, 0x100000 + 0x7fb80 * 1024ull - 1), U);
	assert_int_equal(type_at(r, n, 0x100000 + 0x7fb80 * 1024ull), 0);
	assert_int_equal(type_at(r, n, mbi_phys), R);
	free(b);

	/* The EFI memory map tag (48-byte descriptors, as OVMF's) wins over
	 * tag 6 -- unless boot services still run (tag 18). */
	for (int bs = 0; bs < 2; bs++) {
		mbi_common(&m);
		mbi_mmap(&m, mb2_pc, 6);
		uint32_t t = mbi_tag(&m, 17, 16 + 3 * 48);
		put(m.b, t + 8, 48, 4);
		put(m.b, t + 12, 1, 4);
		efi_desc(m.b + t + 16, 7, 0x100000, 0x100, 0);        /* conventional */
		efi_desc(m.b + t + 16 + 48, 4, 0x200000, 0x10, 0);    /* boot services data */
		efi_desc(m.b + t + 16 + 96, 9, 0x300000, 0x4, 0);     /* ACPI reclaim */
		if (bs)
			mbi_tag(&m, 18, 8);
		b = mbi_end(&m);
		n = kmem_memmap_multiboot2(b, mbi_phys, r, 32);
		assert_normal(r, n);
		if (!bs) {
			assert_int_equal(type_at(r, n, 0x200000), U);
			assert_int_equal(type_at(r, n, 0x300000), C);
			assert_int_equal(type_at(r, n, 0x400000), 0);
			assert_int_equal(bytes_of(r, n, U), 0x110000);
		} else {
			assert_int_equal(type_at(r, n, 0x400000), U); /* from tag 6 */
			assert_int_equal(type_at(r, n, 0x300000), U);
		}
		free(b);
	}
}

static void test_multiboot2_malformed(void **state)
{
	(void)state;
	struct mbi m;
	struct kmem_region r[32];
	void *b;
#define EXPECT_BAD(build)                                                                          \
	do {                                                                                       \
		mbi_common(&m);                                                                    \
		build;                                                                             \
		b = mbi_end(&m);                                                                   \
		assert_int_equal(kmem_memmap_multiboot2(b, 0, r, 32), -KMEM_EINVAL);               \
		free(b);                                                                           \
	} while (0)
	/* mmap entry_size 20; entries not filling the tag; entry_size not
	 * a multiple of 8. */
	uint32_t t;
	EXPECT_BAD({
		t = mbi_mmap(&m, mb2_pc, 2);
		put(m.b, t + 8, 20, 4);
	});
	EXPECT_BAD({
		t = mbi_tag(&m, 6, 16 + 40);
		put(m.b, t + 8, 24, 4);
	});
	EXPECT_BAD({
		t = mbi_tag(&m, 6, 16 + 56);
		put(m.b, t + 8, 28, 4);
	});
	/* EFI map with 32-byte descriptors. */
	EXPECT_BAD({
		t = mbi_tag(&m, 17, 16 + 64);
		put(m.b, t + 8, 32, 4);
	});
	/* A module that ends before it starts; a short framebuffer tag. */
	EXPECT_BAD({
		t = mbi_tag(&m, 3, 16);
		put(m.b, t + 8, 0x5000, 4);
		put(m.b, t + 12, 0x4000, 4);
	});
	EXPECT_BAD(mbi_tag(&m, 8, 24));
	EXPECT_BAD(mbi_tag(&m, 5, 4)); /* a tag smaller than its header */
#undef EXPECT_BAD
	/* No memory tag at all. */
	m.n = 8;
	b = mbi_end(&m);
	assert_int_equal(kmem_memmap_multiboot2(b, 0, r, 32), -KMEM_EINVAL);
	free(b);
	/* A tag running past total_size; no end tag inside total_size; a
	 * total_size below header + end tag.  The buffers are exactly
	 * total_size long. */
	mbi_common(&m);
	mbi_mmap(&m, mb2_pc, 6);
	uint8_t *good = mbi_end(&m);
	uint32_t total = m.n;
	uint8_t *cut = exact(good, total - 8);
	put(cut, 0, total - 8, 4);
	assert_int_equal(kmem_memmap_multiboot2(cut, 0, r, 32), -KMEM_EINVAL);
	put(cut, 0, total - 12, 4); /* the mmap tag now runs past the end */
	assert_int_equal(kmem_memmap_multiboot2(cut, 0, r, 32), -KMEM_EINVAL);
	put(cut, 0, 8, 4);
	assert_int_equal(kmem_memmap_multiboot2(cut, 0, r, 32), -KMEM_EINVAL);
	free(cut);
	assert_true(kmem_memmap_multiboot2(good, 0, r, 32) > 0);
	assert_int_equal(kmem_memmap_multiboot2(good, 0, r, 4), -KMEM_ENOMEM);
	assert_int_equal(kmem_memmap_multiboot2(NULL, 0, r, 32), -KMEM_EINVAL);
	/* Every truncation of a good structure is an error, none a bad read. */
	for (uint32_t len = 8; len < total; len += 4) {
		uint8_t *p = exact(good, len);
		put(p, 0, len, 4);
		assert_int_equal(kmem_memmap_multiboot2(p, 0, r, 32), -KMEM_EINVAL);
		free(p);
	}
	free(good);
}

/* An ELF-symbols tag (9) of n section headers of esize bytes (64: ELF64,
 * 40: ELF32), each {sh_type, sh_addr, sh_size}; returns the tag's offset. */
static uint32_t mbi_elf(struct mbi *m, const uint64_t (*sec)[3], unsigned n, uint32_t esize)
{
	uint32_t off = mbi_tag(m, 9, 20 + n * esize);
	put(m->b, off + 8, n, 4);
	put(m->b, off + 12, esize, 4);
	put(m->b, off + 16, n ? n - 1 : 0, 4);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *sh = m->b + off + 20 + i * esize;
		memset(sh, 0, esize);
		put(sh, 4, sec[i][0], 4);
		if (esize >= 64) {
			put(sh, 8, sec[i][0] == 1 ? 0x2 : 0, 8); /* SHF_ALLOC on PROGBITS */
			put(sh, 16, sec[i][1], 8);
			put(sh, 32, sec[i][2], 8);
		} else {
			put(sh, 12, sec[i][1], 4);
			put(sh, 20, sec[i][2], 4);
		}
	}
	return off;
}

/* GRUB leaves the kernel's section data (symbol and string tables, debug
 * info: sections the image does not load) in memory its map calls
 * usable; the adapter reserves every section with an address and a size,
 * joining runs less than a page apart. */
static void test_multiboot2_elf_sections(void **state)
{
	(void)state;
	struct mbi m;
	struct kmem_region r[32];
	const uint64_t sec[][3] = {
		{0, 0, 0},                  /* SHT_NULL */
		{1, 0x100000, 0x5000},      /* .text (the image, identity-linked) */
		{8, 0x105000, 0x2800},      /* .bss, NOBITS */
		{1, 0, 0x300},              /* .comment: not in memory */
		{1, 0x900000, 0x1234},      /* .debug_info, loaded by GRUB */
		{2, 0x901240, 0x100},       /* .symtab: same page run */
		{3, 0x902400, 0x10},        /* .strtab: less than a page on */
		{3, 0x2000000, 0},          /* empty */
		{1, 0x3000010, 0x10},       /* far away: its own region */
	};
	for (int elf64 = 0; elf64 < 2; elf64++) {
		mbi_common(&m);
		mbi_mmap(&m, mb2_pc, 6);
		mbi_elf(&m, sec, 9, elf64 ? 64 : 40);
		void *b = mbi_end(&m);
		long n = kmem_memmap_multiboot2(b, 0x10000, r, 32);
		assert_normal(r, n);
		assert_int_equal(type_at(r, n, 0), U);          /* .comment's address 0 */
		assert_int_equal(type_at(r, n, 0xff000), R);    /* the BIOS area, as before */
		assert_int_equal(type_at(r, n, 0x100000), R);
		assert_int_equal(type_at(r, n, 0x107fff), R);
		assert_int_equal(type_at(r, n, 0x108000), U);
		assert_int_equal(type_at(r, n, 0x8ff000), U);
		assert_int_equal(type_at(r, n, 0x900000), R);
		assert_int_equal(type_at(r, n, 0x902fff), R);
		assert_int_equal(type_at(r, n, 0x903000), U);
		assert_int_equal(type_at(r, n, 0x2000000), U);  /* the empty one */
		assert_int_equal(type_at(r, n, 0x3000000), R);
		assert_int_equal(type_at(r, n, 0x3001000), U);
		/* exactly those pages left test_multiboot2's usable total */
		assert_int_equal(bytes_of(r, n, U), 0x1ff7b000 - 0x8000 - 0x3000 - 0x1000);
		free(b);
	}

	/* A kernel's many sections a few bytes apart take one entry: the
	 * caller's array need not grow with them. */
	uint64_t many[64][3];
	for (unsigned i = 0; i < 64; i++) {
		many[i][0] = 1;
		many[i][1] = 0x900000 + i * 0x1100;
		many[i][2] = 0x1000;
	}
	mbi_common(&m);
	mbi_mmap(&m, mb2_pc, 6);
	mbi_elf(&m, many, 40, 64);
	void *b = mbi_end(&m);
	long n = kmem_memmap_multiboot2(b, 0x10000, r, 16);
	assert_true(n > 0);
	assert_int_equal(type_at(r, n, 0x900000 + 39 * 0x1100 + 0xfff), R);
	assert_int_equal(type_at(r, n, 0x900000 + 40 * 0x1100 + 0x1000), U);
	free(b);

	/* Malformed: headers below ELF32's 40 bytes, more headers than the
	 * tag holds, a tag shorter than its own fields. */
	for (int bad = 0; bad < 3; bad++) {
		mbi_common(&m);
		mbi_mmap(&m, mb2_pc, 6);
		if (bad == 2) {
			mbi_tag(&m, 9, 16);
		} else {
			uint32_t t = mbi_elf(&m, sec, 2, bad ? 64 : 40);
			put(m.b, t + (bad ? 8 : 12), bad ? 3 : 32, 4); /* num 3; entsize 32 */
		}
		b = mbi_end(&m);
		assert_int_equal(kmem_memmap_multiboot2(b, 0, r, 32), -KMEM_EINVAL);
		free(b);
	}
}

/* Random corruption of a good structure (bytes flipped inside its
 * length, tag sizes, entry sizes and types included; not total_size,
 * which is the length the adapter is given): every call gives a normal
 * map or an error, and ASan sees no read outside the buffer. */
static void test_multiboot2_corruption(void **state)
{
	(void)state;
	struct mbi m;
	mbi_common(&m);
	mbi_mmap(&m, mb2_pc, 6);
	uint32_t t = mbi_tag(&m, 17, 16 + 2 * 48);
	put(m.b, t + 8, 48, 4);
	efi_desc(m.b + t + 16, 7, 0x100000, 0x100, 0);
	efi_desc(m.b + t + 64, 9, 0x300000, 0x4, 0);
	static const uint64_t sec[][3] = {{1, 0x100000, 0x5000}, {2, 0x900000, 0x1234},
	                                  {3, 0x901240, 0x100}};
	mbi_elf(&m, sec, 3, 64);
	uint8_t *good = mbi_end(&m);
	uint32_t total = m.n;
	uint64_t seed = fx_seed();
	long ok = 0, bad = 0;
	struct kmem_region r[64];
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t *p = exact(good, total);
		unsigned flips = 1 + iter % 4;
		for (unsigned f = 0; f < flips; f++) {
			uint64_t x = fx_mix64(seed + (uint64_t)iter * 31 + f);
			/* Mostly the size/type words of the headers. */
			uint32_t at = (x & 1) ? (uint32_t)((x >> 8) % (total / 8)) * 8 + (uint32_t)((x >> 40) & 4)
			                      : (uint32_t)((x >> 8) % total);
			if (at >= 4)
				p[at] ^= (uint8_t)(1u << ((x >> 48) & 7));
		}
		long n = kmem_memmap_multiboot2(p, 0x10000, r, 64);
		if (n >= 0) {
			assert_normal(r, n);
			ok++;
		} else {
			assert_true(n == -KMEM_EINVAL || n == -KMEM_ENOMEM);
			bad++;
		}
		/* The same bytes as a UEFI map and as E820 entries. */
		n = kmem_memmap_uefi(p, total - total % 48, 48, r, 64);
		assert_true(n >= 0 || n == -KMEM_ENOMEM);
		if (n >= 0)
			assert_normal(r, n);
		n = kmem_memmap_e820(p, total / 24, 24, r, 64);
		assert_true(n >= 0 || n == -KMEM_ENOMEM);
		if (n >= 0)
			assert_normal(r, n);
		free(p);
	}
	assert_true(ok > 0 && bad > 0);
	free(good);
}

/* ------------------------------------------------------------------------
 * Limine
 */

static void test_limine(void **state)
{
	(void)state;
	const uint64_t ent[][3] = {
		{0x1000, 0x9e000, 0},        /* usable */
		{0x9f000, 0x61000, 1},       /* reserved */
		{0x100000, 0x100000, 6},     /* executable and modules */
		{0x200000, 0x1000000, 0},    /* usable */
		{0x1200000, 0x80000, 5},     /* bootloader reclaimable */
		{0x1280000, 0x20000, 2},     /* ACPI reclaimable */
		{0x12a0000, 0x10000, 3},     /* ACPI NVS */
		{0x12b0000, 0x10000, 4},     /* bad memory */
		{0xfd000000, 0x300000, 7},   /* framebuffer */
		{0x12c0000, 0x10000, 99},    /* unknown (unsorted, too) */
		{0x300800, 0x100, 1},        /* overlapping usable: reserved wins */
	};
	enum { NE = sizeof ent / sizeof ent[0] };
	uint64_t *e[NE];
	for (unsigned i = 0; i < NE; i++) {
		e[i] = exact(ent[i], sizeof ent[i]);
	}
	uint64_t **arr = exact(e, sizeof e);
	uint64_t resp[3] = {0, NE, (uint64_t)(uintptr_t)arr};
	void *rp = exact(resp, sizeof resp);
	struct kmem_region r[32];
	long n = kmem_memmap_limine(rp, r, 32);
	const struct kmem_region exp[] = {
		{0x1000, 0x9e000, U, 0},       {0x9f000, 0x161000, R, 0}, {0x200000, 0x100000, U, 0},
		{0x300000, 0x1000, R, 0},      {0x301000, 0xeff000, U, 0}, {0x1200000, 0xa0000, C, 0},
		{0x12a0000, 0x30000, R, 0},    {0xfd000000, 0x300000, R, 0},
	};
	assert_map(r, n, exp, sizeof exp / sizeof exp[0]);

	/* Malformed: too many entries, no array, a NULL entry. */
	uint64_t bad[3] = {0, KMEM_MEMMAP_MAX_ENTRIES + 1ull, (uint64_t)(uintptr_t)arr};
	assert_int_equal(kmem_memmap_limine(bad, r, 32), -KMEM_EINVAL);
	bad[1] = 1;
	bad[2] = 0;
	assert_int_equal(kmem_memmap_limine(bad, r, 32), -KMEM_EINVAL);
	uint64_t *nul[1] = {NULL};
	bad[2] = (uint64_t)(uintptr_t)nul;
	assert_int_equal(kmem_memmap_limine(bad, r, 32), -KMEM_EINVAL);
	bad[1] = 0;
	assert_int_equal(kmem_memmap_limine(bad, r, 32), 0);
	assert_int_equal(kmem_memmap_limine(NULL, r, 32), -KMEM_EINVAL);
	assert_int_equal(kmem_memmap_limine(rp, r, 5), -KMEM_ENOMEM);
	free(rp);
	free(arr);
	for (unsigned i = 0; i < NE; i++)
		free(e[i]);
}

/* ------------------------------------------------------------------------
 * UEFI
 */

static void test_uefi(void **state)
{
	(void)state;
	enum { DSZ = 48 }; /* OVMF's descriptor size: 40 + 8 */
	const uint64_t d[][4] = {
		/* type, phys, pages, attribute */
		{7, 0x0, 0x9f, 0xf},                         /* conventional */
		{6, 0x9f000, 0x1, 0x800000000000000full},    /* runtime data */
		{3, 0x100000, 0x100, 0xf},                   /* boot services code */
		{4, 0x200000, 0x100, 0xf},                   /* boot services data */
		{1, 0x300000, 0x80, 0xf},                    /* loader code */
		{2, 0x380000, 0x80, 0xf},                    /* loader data */
		{9, 0x400000, 0x10, 0xf},                    /* ACPI reclaim */
		{10, 0x410000, 0x10, 0xf},                   /* ACPI NVS */
		{7, 0x420000, 0x1000, 0xf},                  /* conventional */
		{7, 0x1420000, 0x1000, 0x4000f},             /* conventional, EFI_MEMORY_SP */
		{7, 0x2420000, 0x100, 0x800000000000000full},/* conventional, EFI_MEMORY_RUNTIME */
		{11, 0xfeb00000, 0x1, 0x8000000000000001ull},/* MMIO */
		{14, 0x100000000, 0x1000, 0xf},              /* persistent */
		{15, 0x200000000, 0x1000, 0xf},              /* unaccepted */
		{0x80000001, 0x300000000, 0x10, 0},          /* OEM */
		{7, 0xfffffffffff00000ull, 1ull << 60, 0},   /* page count past 2^64 */
	};
	enum { ND = sizeof d / sizeof d[0] };
	uint8_t raw[ND * DSZ];
	memset(raw, 0xee, sizeof raw); /* the padding the walk must step over */
	for (unsigned i = 0; i < ND; i++)
		efi_desc(raw + i * DSZ, (uint32_t)d[i][0], d[i][1], d[i][2], d[i][3]);
	void *b = exact(raw, sizeof raw);
	struct kmem_region r[32];
	long n = kmem_memmap_uefi(b, sizeof raw, DSZ, r, 32);
	const struct kmem_region exp[] = {
		{0x0, 0x9f000, U, 0},           {0x9f000, 0x1000, R, 0},         {0x100000, 0x200000, U, 0},
		{0x300000, 0x100000, R, 0},     {0x400000, 0x10000, C, 0},       {0x410000, 0x10000, R, 0},
		{0x420000, 0x1000000, U, 0},    {0x1420000, 0x1100000, R, 0},    {0xfeb00000, 0x1000, R, 0},
		{0x100000000, 0x1000000, R, 0}, {0x200000000, 0x1000000, R, 0},  {0x300000000, 0x10000, R, 0},
		{0xfffffffffff00000ull, 0x100000, U, 0},
	};
	assert_map(r, n, exp, sizeof exp / sizeof exp[0]);
	/* 40-byte descriptors (the struct's own size) read the same map. */
	uint8_t raw40[ND * 40];
	for (unsigned i = 0; i < ND; i++)
		efi_desc(raw40 + i * 40, (uint32_t)d[i][0], d[i][1], d[i][2], d[i][3]);
	void *b40 = exact(raw40, sizeof raw40);
	struct kmem_region r40[32];
	assert_map(r40, kmem_memmap_uefi(b40, sizeof raw40, 40, r40, 32), r, (size_t)n);
	/* Malformed: short descriptors, a torn last descriptor, no map. */
	assert_int_equal(kmem_memmap_uefi(b, sizeof raw, 39, r, 32), -KMEM_EINVAL);
	assert_int_equal(kmem_memmap_uefi(b, sizeof raw - 8, DSZ, r, 32), -KMEM_EINVAL);
	assert_int_equal(kmem_memmap_uefi(NULL, DSZ, DSZ, r, 32), -KMEM_EINVAL);
	assert_int_equal(kmem_memmap_uefi(NULL, 0, DSZ, r, 32), 0);
	assert_int_equal(kmem_memmap_uefi(b, sizeof raw, DSZ, r, 8), -KMEM_ENOMEM);
	free(b40);
	free(b);
}

/* Reclaimable memory really is hot-addable: an E820 map with ACPI
 * reclaim overlapping RAM unaligned gives a heap that, after
 * kmem_hot_add() of each RECLAIMABLE region, manages exactly the usable
 * plus reclaimable pages. */
static void test_reclaimable_hot_add(void **state)
{
	(void)state;
	uint8_t raw[4 * 20];
	e820(raw, 0, 20, 0x100000, 0x4000000, 1);
	e820(raw, 1, 20, 0x2000100, 0x10000, 3);   /* inside RAM, unaligned */
	e820(raw, 2, 20, 0x4100000, 0x20800, 3);   /* after RAM */
	e820(raw, 3, 20, 0x2008000, 0x1000, 2);    /* reserved inside the reclaimable */
	struct kmem_region r[16];
	long n = kmem_memmap_e820(raw, 4, 20, r, 16);
	assert_normal(r, n);
	fx_reserve(0x8000000);
	assert_int_equal(fx_init(r, (size_t)n, 1), 0);
	uint64_t mb, ms;
	kmem_metadata_region(&mb, &ms);
	assert_int_equal(fx_stats().pages_managed + ms / PG, bytes_of(r, n, U) / PG);
	long added = 0;
	for (long i = 0; i < n; i++)
		if (r[i].type == C) {
			long got = kmem_hot_add(&r[i]);
			assert_true(got > 0);
			added += got;
		}
	assert_int_equal(bytes_of(r, n, C), 0x11000 + 0x21000 - PG);
	struct kmem_stats st = fx_stats();
	assert_true((uint64_t)added <= bytes_of(r, n, C) / PG);
	assert_true(st.pages_managed + ms / PG + (bytes_of(r, n, C) / PG - (uint64_t)added) ==
	            (bytes_of(r, n, U) + bytes_of(r, n, C)) / PG);
	assert_int_equal(kmem_check(), 0);
	assert_int_equal(added, bytes_of(r, n, C) / PG); /* same arenas: no metadata carved */
}

/* ------------------------------------------------------------------------
 * NUMA from ACPI (mm/numamap.c): an SRAT and a SLIT laid out as QEMU's
 * q35 with -numa makes them (2 nodes, 2 CPUs each), with proximity
 * domains 5 and 9 to check the renumbering, a disabled and a hot-plug
 * entry, an x2APIC entry and a GICC entry (ignored).
 */

static void acpi_header(uint8_t *t, const char *sig, uint32_t len)
{
	memset(t, 0, 36);
	memcpy(t, sig, 4);
	put(t, 4, len, 4);
	t[8] = 1;
	memcpy(t + 10, "SPANAL", 6);
}

static void acpi_sum(uint8_t *t, uint32_t len)
{
	uint8_t sum = 0;
	t[9] = 0;
	for (uint32_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + t[i]);
	t[9] = (uint8_t)-sum;
}

static uint32_t srat_cpu(uint8_t *t, uint32_t off, uint8_t apic, uint32_t dom, bool on)
{
	memset(t + off, 0, 16);
	t[off] = 0;
	t[off + 1] = 16;
	t[off + 2] = (uint8_t)dom;
	t[off + 3] = apic;
	put(t, off + 4, on, 4);
	put(t, off + 9, dom >> 8, 3);
	return off + 16;
}

static uint32_t srat_mem(uint8_t *t, uint32_t off, uint64_t base, uint64_t len, uint32_t dom,
                         uint32_t flags)
{
	memset(t + off, 0, 40);
	t[off] = 1;
	t[off + 1] = 40;
	put(t, off + 2, dom, 4);
	put(t, off + 8, base, 8);
	put(t, off + 16, len, 8);
	put(t, off + 28, flags, 4);
	return off + 40;
}

#define MIB (1024ull * 1024)

static uint32_t build_srat(uint8_t *t)
{
	uint32_t off = 48;
	memset(t, 0, 48);
	off = srat_cpu(t, off, 0, 5, true);
	off = srat_cpu(t, off, 1, 5, true);
	off = srat_cpu(t, off, 2, 9, true);
	off = srat_cpu(t, off, 3, 9, true);
	off = srat_cpu(t, off, 4, 7, false); /* disabled: no node for domain 7 */
	memset(t + off, 0, 24);             /* x2APIC 0x100 on domain 9 */
	t[off] = 2;
	t[off + 1] = 24;
	put(t, off + 4, 9, 4);
	put(t, off + 8, 0x100, 4);
	put(t, off + 12, 1, 4);
	off += 24;
	memset(t + off, 0, 18); /* GICC affinity: no APIC, no memory */
	t[off] = 3;
	t[off + 1] = 18;
	off += 18;
	off = srat_mem(t, off, 0, 640 * 1024, 5, 1);
	off = srat_mem(t, off, 1 * MIB, 255 * MIB, 5, 1);
	off = srat_mem(t, off, 256 * MIB, 256 * MIB, 9, 1);
	off = srat_mem(t, off, 1024 * MIB, 64 * MIB, 9, 0); /* disabled */
	off = srat_mem(t, off, 4096 * MIB, 0, 9, 1);        /* empty */
	acpi_header(t, "SRAT", off);
	acpi_sum(t, off);
	return off;
}

/* build_srat's table and what kmem_acpi_srat read from it. */
struct srat_read {
	uint8_t t[512];
	uint32_t len;
	struct kmem_region mem[8];
	struct kmem_numa_cpu cpus[8];
	struct kmem_numa_info info;
	long nmem;
};

static void srat_read(struct srat_read *r)
{
	r->len = build_srat(r->t);
	r->nmem = kmem_acpi_srat(r->t, r->len, r->mem, 8, r->cpus, 8, &r->info);
	assert_int_equal(r->nmem, 3);
}

static void test_acpi_srat_slit(void **state)
{
	(void)state;
	static struct srat_read sr;
	srat_read(&sr);
	uint8_t *t = sr.t;
	uint32_t len = sr.len;
	struct kmem_region *mem = sr.mem;
	struct kmem_numa_cpu *cpus = sr.cpus;
	struct kmem_numa_info info = sr.info;
	uint8_t *srat = exact(t, len);
	assert_int_equal(kmem_acpi_srat(srat, len, mem, 8, cpus, 8, &info), 3);
	assert_int_equal(info.nnodes, 2);
	assert_int_equal(info.domain[0], 5);
	assert_int_equal(info.domain[1], 9);
	assert_int_equal(info.ncpus, 5);
	assert_int_equal(info.cpus_seen, 5);
	assert_int_equal(info.mem_seen, 3);
	assert_int_equal(info.folded, 0);
	const uint32_t apic[5] = {0, 1, 2, 3, 0x100}, node[5] = {0, 0, 1, 1, 1};
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(cpus[i].apic_id, apic[i]);
		assert_int_equal(cpus[i].node, node[i]);
	}
	assert_int_equal(mem[0].base, 0);
	assert_int_equal(mem[0].length, 640 * 1024);
	assert_int_equal(mem[0].node, 0);
	assert_int_equal(mem[2].base, 256 * MIB);
	assert_int_equal(mem[2].node, 1);
	/* Capacity: only the first entries are stored, all are counted. */
	assert_int_equal(kmem_acpi_srat(srat, len, mem, 1, cpus, 2, &info), 1);
	assert_int_equal(info.mem_seen, 3);
	assert_int_equal(info.ncpus, 2);
	assert_int_equal(info.cpus_seen, 5);
	/* Malformed: every one an error, not a read past the table. */
	assert_int_equal(kmem_acpi_srat(srat, len - 1, mem, 8, cpus, 8, &info), -KMEM_EINVAL);
	t[60] ^= 1; /* checksum */
	uint8_t *bad = exact(t, len);
	assert_int_equal(kmem_acpi_srat(bad, len, mem, 8, cpus, 8, &info), -KMEM_EINVAL);
	free(bad);
	t[60] ^= 1;
	t[48 + 16 + 1] = 200; /* the second entry runs past the table */
	acpi_sum(t, len);
	bad = exact(t, len);
	assert_int_equal(kmem_acpi_srat(bad, len, mem, 8, cpus, 8, &info), -KMEM_EINVAL);
	free(bad);
	t[48 + 16 + 1] = 16;
	memcpy(t, "SLIT", 4);
	acpi_sum(t, len);
	bad = exact(t, len);
	assert_int_equal(kmem_acpi_srat(bad, len, mem, 8, cpus, 8, &info), -KMEM_EINVAL);
	free(bad);
	/* More domains than KMEM_MAX_NODES: the extra ones fold into node 0. */
	uint8_t many[48 + 16 * (KMEM_MAX_NODES + 2)];
	uint32_t off = 48;
	for (unsigned d = 0; d < KMEM_MAX_NODES + 2; d++)
		off = srat_cpu(many, off, (uint8_t)d, 100 + d, true);
	acpi_header(many, "SRAT", off);
	acpi_sum(many, off);
	assert_int_equal(kmem_acpi_srat(many, off, mem, 8, cpus, 8, &info), 0);
	assert_int_equal(info.nnodes, KMEM_MAX_NODES);
	assert_int_equal(info.folded, 2);
	assert_int_equal(cpus[KMEM_MAX_NODES + 1].node, 0);

	/* SLIT over 10 localities (domains 5 and 9 index it). */
	assert_int_equal(kmem_acpi_srat(srat, len, mem, 8, cpus, 8, &info), 3);
	uint8_t slit[44 + 100];
	memset(slit, 0, sizeof slit);
	put(slit, 36, 10, 8);
	for (unsigned a = 0; a < 10; a++)
		for (unsigned b = 0; b < 10; b++)
			slit[44 + a * 10 + b] = (uint8_t)(a == b ? 10 : 20 + a + b);
	acpi_header(slit, "SLIT", sizeof slit);
	acpi_sum(slit, sizeof slit);
	uint8_t dist[4] = {0};
	assert_int_equal(kmem_acpi_slit(slit, sizeof slit, &info, dist), 0);
	assert_int_equal(dist[0], 10);
	assert_int_equal(dist[1], 20 + 5 + 9);
	assert_int_equal(dist[2], 20 + 9 + 5);
	assert_int_equal(dist[3], 10);
	put(slit, 36, 9, 8); /* domain 9 is not in a 9-locality table */
	acpi_sum(slit, sizeof slit);
	memset(dist, 0, sizeof dist);
	assert_int_equal(kmem_acpi_slit(slit, sizeof slit, &info, dist), -KMEM_EINVAL);
	assert_int_equal(dist[0], 0);
	put(slit, 36, 11, 8); /* 11 x 11 does not fit */
	acpi_sum(slit, sizeof slit);
	assert_int_equal(kmem_acpi_slit(slit, sizeof slit, &info, dist), -KMEM_EINVAL);
	free(srat);
}

/* The map of q35 with 512 MiB cut at the SRAT's ranges: usable regions
 * that straddle 256 MiB are split, reserved ones are not, memory the SRAT
 * leaves out is node 0; then the heap over it knows each page's node. */
static void test_memmap_split_nodes(void **state)
{
	(void)state;
	static struct srat_read sr;
	srat_read(&sr);
	const struct kmem_region *mem = sr.mem;
	long nm = sr.nmem;
	struct kmem_region r[16] = {
		{.base = 0, .length = 0x9f000, .type = U},
		{.base = 0x9f000, .length = 0x61000, .type = R},
		{.base = 1 * MIB, .length = 200 * MIB, .type = U},
		{.base = 201 * MIB, .length = 100 * MIB, .type = U},  /* straddles 256 MiB */
		{.base = 250 * MIB, .length = 12 * MIB, .type = R},   /* reserved: untouched */
		{.base = 512 * MIB, .length = 16 * MIB, .type = U},   /* not in the SRAT */
	};
	long n = kmem_memmap_split_nodes(r, 6, 16, mem, (size_t)nm);
	assert_int_equal(n, 7);
	assert_int_equal(r[3].base, 201 * MIB);
	assert_int_equal(r[3].length, 55 * MIB);
	assert_int_equal(r[3].node, 0);
	assert_int_equal(r[6].base, 256 * MIB);
	assert_int_equal(r[6].length, 45 * MIB);
	assert_int_equal(r[6].node, 1);
	assert_int_equal(r[4].type, R);
	assert_int_equal(r[4].length, 12 * MIB);
	assert_int_equal(r[5].node, 0);
	for (long i = 0; i < n; i++)
		assert_true(r[i].type != U || r[i].base + r[i].length <= 256 * MIB ||
		            r[i].base >= 256 * MIB);
	/* No room for the extra piece: ENOMEM; n > cap: EINVAL. */
	struct kmem_region small[4] = {{.base = 200 * MIB, .length = 100 * MIB, .type = U}};
	assert_int_equal(kmem_memmap_split_nodes(small, 1, 1, mem, (size_t)nm), -KMEM_ENOMEM);
	assert_int_equal(kmem_memmap_split_nodes(small, 2, 1, mem, (size_t)nm), -KMEM_EINVAL);

	/* The heap over a small version (the fixture's memory): 8 MiB on
	 * each side of a node boundary at 24 MiB. */
	struct kmem_region ranges[2] = {
		{.base = 0, .length = 24 * MIB, .type = U, .node = 0},
		{.base = 24 * MIB, .length = 24 * MIB, .type = U, .node = 1},
	};
	struct kmem_region h[4] = {{.base = 16 * MIB, .length = 16 * MIB, .type = U}};
	n = kmem_memmap_split_nodes(h, 1, 4, ranges, 2);
	assert_int_equal(n, 2);
	fx_reserve(48 * MIB);
	assert_int_equal(fx_init(h, (size_t)n, 1), 0);
	assert_int_equal(kmem_nr_nodes(), 2);
	struct kmem_node_stats ns0, ns1;
	assert_int_equal(kmem_get_node_stats(0, &ns0), 0);
	assert_int_equal(kmem_get_node_stats(1, &ns1), 0);
	assert_true(ns0.pages_managed > 0 && ns1.pages_managed > 0);
	assert_true(ns0.pages_managed <= 8 * MIB / PG && ns1.pages_managed <= 8 * MIB / PG);
	void *p0 = kpage_alloc_node(1, 0, 0, 0), *p1 = kpage_alloc_node(1, 0, 0, 1);
	assert_non_null(p0);
	assert_non_null(p1);
	assert_int_equal(kmem_virt_to_node(p0), 0);
	assert_int_equal(kmem_virt_to_node(p1), 1);
	assert_true(kmem_virt_to_phys(p0) < 24 * MIB && kmem_virt_to_phys(p1) >= 24 * MIB);
	kpage_free(p0, 1);
	kpage_free(p1, 1);
	assert_int_equal(kmem_check(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_normalize_model),
		cmocka_unit_test(test_e820_qemu_pc_512m),
		cmocka_unit_test(test_e820_qemu_q35_5g),
		cmocka_unit_test(test_e820_edges),
		cmocka_unit_test(test_multiboot1),
		cmocka_unit_test(test_multiboot2),
		cmocka_unit_test(test_multiboot2_malformed),
		cmocka_unit_test(test_multiboot2_elf_sections),
		cmocka_unit_test(test_multiboot2_corruption),
		cmocka_unit_test(test_limine),
		cmocka_unit_test(test_uefi),
		cmocka_unit_test(test_reclaimable_hot_add),
		cmocka_unit_test(test_acpi_srat_slit),
		cmocka_unit_test(test_memmap_split_nodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
