/*
 * test_sizeclasses.c - exhaustive checks of the generated size-class table
 * (mm/sizeclasses.[ch], produced by scripts/mksizeclasses.py).
 *
 * Build: cc -std=c11 -Imm tests/test_sizeclasses.c mm/sizeclasses.c -lcmocka
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../mm/sizeclasses.h"

#define PAGE_SIZE 4096u

static uint32_t lowbit(uint32_t x)
{
	return x & (~x + 1u);
}

static uint32_t span_bytes(unsigned c)
{
	return (uint32_t)kmem_class[c].npages * PAGE_SIZE;
}

/* Smallest class whose size >= size, by linear search (size 0 -> 1). */
static unsigned ref_size_to_class(size_t size)
{
	for (unsigned c = 1; c < KMEM_NUM_CLASSES; c++)
		if (kmem_class[c].size >= size)
			return c;
	return 0;
}

static void test_header_constants(void **state)
{
	(void)state;
	assert_int_equal(KMEM_SMALL_SIZE_DIV, 8);
	assert_int_equal(KMEM_SMALL_SIZE_MAX, 1024);
	assert_int_equal(KMEM_LARGE_SIZE_DIV, 128);
	assert_int_equal(KMEM_SMALL_OBJ_MAX, 32768);
	assert_int_equal(KMEM_MAX_SPAN_OBJECTS, 512);
	assert_true(KMEM_DIV_SHIFT == 32 || KMEM_DIV_SHIFT == 40);
	/* Class 1 and the last class exist; indices fit the uint8_t tables. */
	assert_in_range(KMEM_NUM_CLASSES, 2, 256);
}

static void test_class0_unused(void **state)
{
	(void)state;
	assert_int_equal(kmem_class[0].size, 0);
	assert_int_equal(kmem_class[0].npages, 0);
	assert_int_equal(kmem_class[0].nelems, 0);
	assert_int_equal(kmem_class[0].align_pages, 0);
	assert_int_equal(kmem_class[0].divmul, 0);
}

static void test_sizes(void **state)
{
	(void)state;
	assert_int_equal(kmem_class[1].size, 8);
	assert_int_equal(kmem_class[KMEM_NUM_CLASSES - 1].size,
			 KMEM_SMALL_OBJ_MAX);
	for (unsigned c = 1; c < KMEM_NUM_CLASSES; c++) {
		uint32_t size = kmem_class[c].size;

		assert_true(size > kmem_class[c - 1].size);
		assert_int_equal(size % 8, 0);
		/* The lookup tables need sizes on their granularity. */
		if (size > KMEM_SMALL_SIZE_MAX)
			assert_int_equal(size % KMEM_LARGE_SIZE_DIV, 0);
	}
}

static void test_span_geometry(void **state)
{
	unsigned max_pages = 0;

	(void)state;
	for (unsigned c = 1; c < KMEM_NUM_CLASSES; c++) {
		const struct size_class *sc = &kmem_class[c];

		assert_in_range(sc->npages, 1, KMEM_MAX_SPAN_PAGES);
		assert_int_equal(sc->nelems, span_bytes(c) / sc->size);
		assert_in_range(sc->nelems, 1, KMEM_MAX_SPAN_OBJECTS);
		if (sc->npages > max_pages)
			max_pages = sc->npages;
	}
	assert_int_equal(max_pages, KMEM_MAX_SPAN_PAGES);
}

static void test_waste(void **state)
{
	(void)state;
	for (unsigned c = 1; c < KMEM_NUM_CLASSES; c++) {
		uint32_t size = kmem_class[c].size;
		uint32_t span = span_bytes(c);
		uint32_t prev = kmem_class[c - 1].size;

		/* Tail waste (span % size) / span <= 1/8. */
		assert_true((uint64_t)(span % size) * 8 <= span);
		/* Rounding waste (size - prev - 1) / size <= 1/8 from 128 B. */
		if (size >= 128)
			assert_true((uint64_t)(size - prev - 1) * 8 <= size);
	}
}

static void test_alignment(void **state)
{
	(void)state;
	for (unsigned c = 1; c < KMEM_NUM_CLASSES; c++) {
		const struct size_class *sc = &kmem_class[c];
		uint32_t lb = lowbit(sc->size);
		uint32_t want = lb / PAGE_SIZE ? lb / PAGE_SIZE : 1;
		uint32_t base = (uint32_t)sc->align_pages * PAGE_SIZE;

		assert_int_equal(sc->align_pages, want);
		assert_int_equal(base % lb, 0);
		/* Every object from an aligned base keeps lowbit(size). */
		for (uint32_t i = 0; i < sc->nelems; i++)
			assert_int_equal((base + i * sc->size) % lb, 0);
		/* Power-of-two objects are naturally aligned. */
		if (lb == sc->size)
			assert_int_equal(base % sc->size, 0);
	}
}

static void test_divmul(void **state)
{
	(void)state;
	for (unsigned c = 1; c < KMEM_NUM_CLASSES; c++) {
		const struct size_class *sc = &kmem_class[c];
		uint32_t span = span_bytes(c);

		/* divmul = ceil(2^KMEM_DIV_SHIFT / size). */
		assert_int_equal(sc->divmul,
				 ((UINT64_C(1) << KMEM_DIV_SHIFT) + sc->size - 1) /
					 sc->size);
		/* offset * divmul must not overflow for any in-span offset. */
		assert_true(sc->divmul <= UINT64_MAX / span);
		for (uint32_t off = 0; off < span; off++)
			assert_int_equal((off * sc->divmul) >> KMEM_DIV_SHIFT,
					 off / sc->size);
	}
}

static void test_size_to_class(void **state)
{
	(void)state;
	assert_int_equal(kmem_size_to_class(0), 1);
	assert_int_equal(kmem_size_to_class8[0], 1);
	for (size_t size = 0; size <= KMEM_SMALL_OBJ_MAX; size++) {
		unsigned c = kmem_size_to_class(size);

		assert_in_range(c, 1, KMEM_NUM_CLASSES - 1);
		assert_true(kmem_class[c].size >= size);
		assert_true(c == 1 || kmem_class[c - 1].size < size);
		assert_int_equal(c, ref_size_to_class(size));
	}
}

static void test_lookup_tables(void **state)
{
	size_t n8 = sizeof(kmem_size_to_class8);
	size_t n128 = sizeof(kmem_size_to_class128);

	(void)state;
	assert_int_equal(n8, KMEM_SMALL_SIZE_MAX / KMEM_SMALL_SIZE_DIV + 1);
	assert_int_equal(n128, (KMEM_SMALL_OBJ_MAX - KMEM_SMALL_SIZE_MAX) /
				       KMEM_LARGE_SIZE_DIV + 1);
	for (size_t i = 0; i < n8; i++)
		assert_in_range(kmem_size_to_class8[i], 1, KMEM_NUM_CLASSES - 1);
	for (size_t i = 0; i < n128; i++)
		assert_in_range(kmem_size_to_class128[i], 1,
				KMEM_NUM_CLASSES - 1);
	/* Both tables agree at the seam and the top maps to the last class. */
	assert_int_equal(kmem_size_to_class128[0], kmem_size_to_class8[n8 - 1]);
	assert_int_equal(kmem_size_to_class128[n128 - 1], KMEM_NUM_CLASSES - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_constants),
		cmocka_unit_test(test_class0_unused),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_span_geometry),
		cmocka_unit_test(test_waste),
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_divmul),
		cmocka_unit_test(test_size_to_class),
		cmocka_unit_test(test_lookup_tables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
