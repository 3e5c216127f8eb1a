/*
 * tests/outoftree/kernel_aliases.c - a file of kernel.c's kernel that does
 * not see the kernel's own allocator: it asks spanalloc.h for the short
 * names, which then mean spanalloc's sa_kmalloc and sa_kfree.
 */
#define SPANALLOC_KERNEL_NAMES
#include <spanalloc.h>

void *alias_kmalloc(size_t size);
void alias_kfree(void *p);

void *alias_kmalloc(size_t size) { return kmalloc(size); }
void alias_kfree(void *p) { kfree(p); }
