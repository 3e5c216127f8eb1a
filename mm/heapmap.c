/*
 * mm/heapmap.c - a text dump of the heap's layout, for pictures (see
 * scripts/heapmap.py) and for reading over a serial line.  See malloc.c
 * for an overview.
 *
 * Format, one record per line, addresses in hex, counts in decimal:
 *   heapmap 1 page=4096 offset=<direct map offset>
 *   meta <phys> <bytes>                     a metadata region (one per node
 *                                           that has one)
 *   arena <phys> <managed pages>            every arena with metadata
 *   free <phys> <pages>                     a maximal free run
 *   small <phys> <pages> <class> <size> <live> <objects> <cache|->
 *   large <phys> <pages>
 *   run <phys> <pages>                      a kpage_alloc run
 *   metapages <phys> <pages>                pool pages taken for metadata
 *   end
 * Context: QUIESCE (reads span bitmaps without their owners).
 */
#include "mtypes.h"

struct emitter {
	void (*emit)(const char *line, void *arg);
	void *arg;
	struct fmtbuf line;
};

static void line_begin(struct emitter *e, const char *tag)
{
	fmt_reset(&e->line);
	fmt_str(&e->line, tag);
}

static void field(struct emitter *e, uint64_t v, unsigned base)
{
	fmt_str(&e->line, " ");
	fmt_num(&e->line, v, base);
}

static void line_end(struct emitter *e)
{
	e->emit(e->line.buf, e->arg);
}

enum page_kind { PK_NONE, PK_FREE, PK_META, PK_SPAN, PK_RUN };

static enum page_kind kind_of(struct heap_arena *a, uint64_t i, struct mspan **sp)
{
	*sp = atomic_load_explicit(&a->spans[i], memory_order_relaxed);
	if (*sp)
		return PK_SPAN;
	if (a->pagekind[i] != PKIND_NONE && a->pagekind[i] != PKIND_GUARD)
		return PK_RUN; /* a page run without a descriptor (mtypes.h) */
	if ((a->pagebits[i >> 6] >> (i & 63)) & 1)
		return PK_FREE;
	if ((a->managedbits[i >> 6] >> (i & 63)) & 1)
		return PK_META;
	return PK_NONE;
}

static void emit_span(struct emitter *e, struct mspan *s)
{
	uint32_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
	line_begin(e, state == SPAN_SMALL ? "small" : state == SPAN_LARGE ? "large" : "run");
	field(e, s->pfn << PAGE_SHIFT, 16);
	field(e, s->npages, 10);
	if (state == SPAN_SMALL) {
		field(e, s->sizeclass, 10);
		field(e, s->elemsize, 10);
		field(e, span_live_objects(s), 10);
		field(e, s->nelems, 10);
		fmt_str(&e->line, " ");
		fmt_str(&e->line, s->cache && s->cache->name ? s->cache->name : "-");
	}
	line_end(e);
}

static void emit_arena(struct emitter *e, struct heap_arena *a, uint64_t base)
{
	line_begin(e, "arena");
	field(e, base << PAGE_SHIFT, 16);
	field(e, a->managed, 10);
	line_end(e);
	uint64_t i = 0;
	while (i < ARENA_PAGES) {
		struct mspan *s;
		enum page_kind k = kind_of(a, i, &s);
		if (k == PK_SPAN) {
			if (base + i == s->pfn)
				emit_span(e, s);
			i++;
			continue;
		}
		if (k == PK_RUN) {
			if (a->pagekind[i] <= RUN_INLINE_MAX) {
				line_begin(e, "run");
				field(e, (base + i) << PAGE_SHIFT, 16);
				field(e, a->pagekind[i], 10);
				line_end(e);
			}
			i++;
			continue;
		}
		uint64_t j = i + 1;
		struct mspan *t;
		while (j < ARENA_PAGES && kind_of(a, j, &t) == k)
			j++;
		if (k != PK_NONE) {
			line_begin(e, k == PK_FREE ? "free" : "metapages");
			field(e, (base + i) << PAGE_SHIFT, 16);
			field(e, j - i, 10);
			line_end(e);
		}
		i = j;
	}
}

void kmem_heapmap(void (*emit)(const char *line, void *arg), void *arg)
{
	struct emitter e = {.emit = emit, .arg = arg};
	unsigned long f = heaps_lock_all();
	line_begin(&e, "heapmap 1 page=4096 offset=");
	fmt_num(&e.line, mheap_.offset, 16);
	line_end(&e);
	for (unsigned n = 0; n < mheap_.nnodes; n++) {
		if (!mheap_.meta_size[n])
			continue;
		line_begin(&e, "meta");
		field(&e, mheap_.meta_base[n], 16);
		field(&e, mheap_.meta_size[n], 10);
		line_end(&e);
	}
	for (uint64_t i1 = 0; i1 < L1_ENTRIES; i1++) {
		struct l2_chunk *c = atomic_load_explicit(&mheap_.l1[i1], memory_order_relaxed);
		for (uint64_t i2 = 0; c && i2 < L2_ENTRIES; i2++) {
			struct heap_arena *a = atomic_load_explicit(&c->arenas[i2], memory_order_relaxed);
			if (a)
				emit_arena(&e, a, ((i1 << L2_BITS) | i2) << SUM_ARENA_TOP);
		}
	}
	line_begin(&e, "end");
	line_end(&e);
	heaps_unlock_all(f);
}
