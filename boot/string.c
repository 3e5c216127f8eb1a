/*
 * boot/string.c - memcpy, memmove, memset, memcmp for the kernel and for
 * mm/ (the only library functions spanalloc needs).  The forward copies
 * use rep movsq/stosq (fewer iterations under TCG than a byte loop); no
 * loop here may be turned back into a call to itself by the compiler, so
 * the C loops are written over volatile-free words and the file is built
 * with -fno-tree-loop-distribute-patterns (boot/kernel.mk).
 */
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;
	size_t q = n >> 3, r = n & 7;
	__asm__ volatile("rep movsq\n\t"
	                 "movq %3, %%rcx\n\t"
	                 "rep movsb"
	                 : "+D"(d), "+S"(src), "+c"(q)
	                 : "r"(r)
	                 : "memory");
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	void *d = dst;
	uint64_t v = 0x0101010101010101ull * (uint8_t)c;
	size_t q = n >> 3, r = n & 7;
	__asm__ volatile("rep stosq\n\t"
	                 "movq %3, %%rcx\n\t"
	                 "rep stosb"
	                 : "+D"(d), "+c"(q), "+a"(v)
	                 : "r"(r)
	                 : "memory");
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	if (d == s || n == 0)
		return dst;
	if (d < s || d >= s + n)
		return memcpy(dst, src, n);
	/* Overlapping, destination above: copy backwards. */
	while (n && ((uintptr_t)(d + n) & 7)) {
		n--;
		d[n] = s[n];
	}
	if (((uintptr_t)(s + n) & 7) == 0) {
		while (n >= 8) {
			n -= 8;
			*(uint64_t *)(d + n) = *(const uint64_t *)(s + n);
		}
	}
	while (n) {
		n--;
		d[n] = s[n];
	}
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}
