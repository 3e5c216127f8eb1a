/*
 * boot/kprintf.c - printf-style console output and failure for the demo
 * kernels, over the primitives each console provides (boot/demo.h):
 * kvsnprintf (x86_64: boot/console.c; virt: picolibc), console_puts and
 * kernel_fail.
 */
#include <stdarg.h>
#include <stddef.h>

#include "demo.h"

int ksnprintf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = kvsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	return n;
}

void kprintf(const char *fmt, ...)
{
	char buf[320];
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	console_puts(buf);
}

void kfail(const char *fmt, ...)
{
	char buf[240];
	va_list ap;
	va_start(ap, fmt);
	kvsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	kernel_fail(buf);
}
