/*
 * mm/fmt.c - the one line formatter mm/ uses for fault messages, the heap
 * map and the leak report (no libc here).  See malloc.c for an overview.
 */
#include "mtypes.h"

void fmt_reset(struct fmtbuf *b)
{
	b->len = 0;
	b->buf[0] = 0;
}

void fmt_str(struct fmtbuf *b, const char *s)
{
	while (s && *s && b->len + 1 < sizeof b->buf)
		b->buf[b->len++] = *s++;
	b->buf[b->len] = 0;
}

/* base 10, or 16 with a 0x prefix */
void fmt_num(struct fmtbuf *b, uint64_t v, unsigned base)
{
	char tmp[24];
	int n = 0;
	do {
		unsigned d = (unsigned)(v % base);
		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	if (base == 16)
		fmt_str(b, "0x");
	char out[24];
	int k = 0;
	while (n)
		out[k++] = tmp[--n];
	out[k] = 0;
	fmt_str(b, out);
}
