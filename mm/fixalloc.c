/*
 * mm/fixalloc.c - fixed-size blocks for allocator metadata (span
 * descriptors, span bitmaps, object-cache descriptors).  See malloc.c for
 * an overview.
 *
 * Blocks come first from the metadata region carved at init (a bump
 * pointer), then from page runs the mheap takes from the top of the pool
 * when that region is used up.  Such pages are metadata from then on: they
 * are never handed to a client, and they are counted in pages_metadata.
 * Freed blocks go on a free list whose link lives in the block itself (a
 * metadata block, never client memory).  Blocks are type-stable: a span
 * descriptor is only ever reused as a span descriptor, which lets a
 * lock-free kfree read a span that was released under it (see mcentral.c).
 *
 * Everything here runs under mheap.lock.
 */
#include "mtypes.h"

#define FIXALLOC_GROW_PAGES 16

void fixalloc_init(struct fixalloc *f, size_t size)
{
	f->size = align_up(size, KMEM_CACHE_LINE);
	f->free = NULL;
	f->inuse = 0;
}

/* Bump-allocates from the metadata region; grows it from the top of the
 * pool when it is used up.  Returns zeroed memory or NULL. */
void *meta_carve_locked(size_t size, size_t align)
{
	uintptr_t p = align_up(mheap_.meta_next, align);
	if (p + size > mheap_.meta_end || p + size < p) {
		uint64_t n = align_up(size + align, PAGE_SIZE) >> PAGE_SHIFT;
		if (n < FIXALLOC_GROW_PAGES)
			n = FIXALLOC_GROW_PAGES;
		uint64_t pfn = pages_find_top_locked(n);
		if (pfn == PAGE_NONE) {
			n = align_up(size + align, PAGE_SIZE) >> PAGE_SHIFT;
			pfn = pages_find_top_locked(n);
			if (pfn == PAGE_NONE)
				return NULL;
		}
		pages_set_locked(pfn, n, false);
		mheap_.pages_free -= n;
		mheap_.pages_metadata += n;
		/* The rest of the old bump range is abandoned (< one block). */
		mheap_.meta_next = pfn_to_virt(pfn);
		mheap_.meta_end = mheap_.meta_next + (n << PAGE_SHIFT);
		p = align_up(mheap_.meta_next, align);
	}
	mheap_.meta_next = p + size;
	memset((void *)p, 0, size);
	return (void *)p;
}

void *fixalloc_alloc_locked(struct fixalloc *f)
{
	void *p = f->free;
	if (p) {
		f->free = *(void **)p;
		*(void **)p = NULL;
	} else {
		p = meta_carve_locked(f->size, KMEM_CACHE_LINE);
		if (!p)
			return NULL;
	}
	f->inuse++;
	return p;
}

void fixalloc_free_locked(struct fixalloc *f, void *p)
{
	*(void **)p = f->free;
	f->free = p;
	f->inuse--;
}
