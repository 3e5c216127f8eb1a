/*
 * mm/harden.c - hardened mode (kmem_config.harden, spanalloc.h): canaries,
 * zero on free, neighbour checks, the quarantine, hardened large objects
 * and guard pages.  See malloc.c for an overview.
 *
 * Where it runs.  Level 0 leaves every path as it is.  At level >= 1,
 * harden_init() turns the kmalloc classes into debug classes (mcentral.
 * debug = POISON | REDZONE | CALLER | DEBUG_HARDEN) without magazines, so
 * their spans carry obj_debug records and stay off kfree's fast path
 * (fast_nelems 0), and kmalloc's fast path always falls through to
 * kmalloc_refill, which sends the call to the general path.  So every
 * kmalloc goes through central_alloc -> debug_on_alloc and every kfree
 * through small_free_irqoff -> debug_on_free (debug.c), large ones through
 * large_alloc and whole_free (malloc.c), which call the functions here.
 * No fast path has a single instruction more.
 *
 * Small objects (debug.c does the per-object work, with this file's
 * helpers):
 *   alloc   the slot must be all zeros (it was zeroed at free, or when
 *           its span was made): else a write after free is reported; the
 *           slack [size, elemsize) gets the canary; the record's generation
 *           moves (below).
 *   free    the canary must be intact, and so must the bytes within
 *           `slack` before and after the object that belong to other
 *           objects (their canaries, or the zeros of free slots and span
 *           tails): an underflow, or an overflow past the slack, is found
 *           at the free of the object it came from.  Then the slot is
 *           zeroed.
 * Canary: byte i of an object's slack is byte (i mod 8) of the secret
 * harden_.canary (no byte is zero: an off-by-one NUL, the classic
 * overflow, always changes it).
 *
 * Reading neighbours without locks.  Another CPU may be handing out or
 * freeing the neighbour while we read it.  Its record's generation says
 * what its bytes must be, and moves around every change of them:
 *     gen % 4 == 0  free: zeros        1  being handed out
 *               2   live: canary       3  being freed
 * The owner stores gen+1, fences, writes, stores gen+2 and fences again
 * (before the client's own writes); a reader loads gen (acquire), reads,
 * fences (acquire) and loads gen again, and judges only a stable 0 or 2.
 * If it read any byte written after a step of the owner, its second load
 * sees that step (fence-fence synchronisation), so a mismatch it reports
 * is a write no allocator call made.  Large objects are judged the same
 * way by their span state and sweep generation, and not at all at level 3,
 * where the pages next to them are guards and a quarantined one is
 * unmapped (a read could race its protection).
 *
 * The quarantine (level >= 2): one global FIFO ring under a spin lock
 * (LOCK_QUARANTINE, a leaf, interrupts off), bounded by
 * KMEM_QUARANTINE_OBJECTS entries and KMEM_QUARANTINE_BYTES bytes (an
 * object above a quarter of that skips it).  Global and not per CPU
 * because the delay it buys must hold whichever CPU frees next, because
 * reclaim and out-of-memory must be able to empty it from any CPU without
 * stopping the others, and because at level >= 2 every free already takes
 * the slow path (one more uncontended lock is not what it costs).  A
 * quarantined small object has state OBJ_QUARANTINE (taken, no freed
 * bit, no magazine: every kfree or ksize of it reports a double free), a
 * large one keeps its span in SPAN_FREEING with HL_QUARANTINE.  An object
 * leaves the oldest first, when the ring is over a bound, and on reclaim
 * (malloc.c, quarantine_release): its zeros are checked (a write after
 * free while it waited), then it goes back to its span or the mheap.
 *
 * Large objects (own span) at level >= 1: the span has room for
 * size + slack, the rest of the last page is canary; zeroed when handed
 * out and when freed.  At level 3 with a protect hook, one guard page
 * before (not for kmalloc_aligned above a page) and one after; a
 * quarantined one is unmapped whole; kmalloc(0) is one unmapped page.
 *
 * Slot 0.  A span's first object has no slot before it: its underflow
 * would land in whatever page precedes the span.  So a hardened span of
 * three or more objects does not hand out slot 0 while it has another
 * free slot (malloc.c, skip_head_slot): the slot stays zeroed, and the
 * first object's underflow meets zeros.  (When it is handed out after
 * all, or the span holds one or two objects, the page before is checked
 * if it belongs to a hardened span, and not otherwise.)
 *
 * What each level catches (tests/misuse/expected.txt has every cell; C
 * caught, F faulted, P prevented, - missed; "at exit": the shim's
 * kmem_check when the process ends):
 *                          8 B / 4 KiB            256 KiB
 *   0  bad frees           C                      C
 *   1  + 1 B over/under    C (at free)            over C, under -
 *        32 B over/under   C (free or at exit;    over C, under -
 *                          8 B under: -)
 *        1 MiB memcpy over C (own canary)         C
 *        read after free   P (zeros)              P (zeros)
 *        write after free  C (at reuse or exit)   -
 *        zero-size write   C; read -
 *        uninitialised     P                      P
 *   2  + double free after reuse  C               C
 *        32 B underflow at 8 B    C
 *        read/write after free with reuse: P / C (quarantine)
 *   3  + zero-size read    C (guard page)
 *        underflow                                C (head guard)
 *        read after free                          C (unmapped)
 * Missed at every level: a single write 1 MiB past an object (it lands
 * in some other memory; found only if that is a canary or free slot
 * checked later), and writes that store what was there already.
 */
#include "mtypes.h"

struct harden harden_;

static uint64_t mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

unsigned kmem_harden_level(void)
{
	if (harden_.level == 3 && !harden_guards())
		return 2;
	return harden_.level;
}

kmem_protect_hook_t kmem_set_protect_hook(kmem_protect_hook_t hook)
{
	kmem_protect_hook_t old = atomic_exchange(&harden_.protect, hook);
	if (hook)
		guards_protect_all(); /* the guard pages made before (fixalloc.c) */
	return old;
}

bool harden_guards(void)
{
	return harden_.level >= 3 &&
	       atomic_load_explicit(&harden_.protect, memory_order_relaxed) != NULL;
}

bool harden_protect(uintptr_t addr, size_t bytes, bool none)
{
	kmem_protect_hook_t h = atomic_load_explicit(&harden_.protect, memory_order_relaxed);
	return h && h((void *)addr, bytes, none ? KMEM_ACCESS_NONE : KMEM_ACCESS_RW);
}

unsigned char canary_byte(size_t offset)
{
	return ((const unsigned char *)&harden_.canary)[offset & 7];
}

int harden_init(unsigned level, uint64_t seed)
{
	if (level > KMEM_HARDEN_MAX)
		return -KMEM_EINVAL;
	memset(&harden_, 0, sizeof(harden_));
	lock_init(&harden_.lock, LOCK_QUARANTINE);
	atomic_store_explicit(&harden_.protect, NULL, memory_order_relaxed);
	harden_.level = level;
	harden_.slack = level >= 2 ? KMEM_HARDEN_SLACK2
	                : level == 1 ? KMEM_HARDEN_SLACK1
	                : KMEM_DEBUG_HEAP ? KMEM_REDZONE : 0;
	/* No zero byte: every byte of the pattern differs from a NUL. */
	uint64_t c = mix64(seed ? seed : mheap_.meta_base[mheap_.meta_node] ^ (uint64_t)(uintptr_t)&harden_);
	unsigned char *b = (unsigned char *)&c;
	for (unsigned i = 0; i < 8; i++)
		if (!b[i])
			b[i] = (unsigned char)(0x5a + i);
	harden_.canary = c;
	if (!level)
		return 0;
	if (level >= 2) {
		harden_.ring = meta_carve(KMEM_QUARANTINE_OBJECTS * sizeof(void *), 8);
		harden_.sizes = meta_carve(KMEM_QUARANTINE_OBJECTS * sizeof(uint32_t), 8);
		if (!harden_.ring || !harden_.sizes)
			return -KMEM_ENOMEM;
	}
	for (unsigned node = 0; node < mheap_.nnodes; node++)
		for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++) {
			struct mcentral *c = class_central(node, cls);
			c->debug = KMEM_DEBUG_ALL | DEBUG_HARDEN;
			mcentral_set_magazines(c, false);
		}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Byte checks
 */

/* First byte of [p, p+n) that differs from the canary pattern (offsets
 * from `obj`), or NULL.  A word at a time where the pattern's phase
 * allows (objects are 8-aligned, so aligned words are the whole secret). */
const unsigned char *canary_first_bad(const void *obj, const void *p, size_t n)
{
	const unsigned char *b = p, *end = b + n;
	size_t off = (size_t)(b - (const unsigned char *)obj);
	while (b < end && ((uintptr_t)b & 7)) {
		if (*b != canary_byte(off))
			return b;
		b++, off++;
	}
	for (; end - b >= 8; b += 8, off += 8) {
		uint64_t w;
		memcpy(&w, b, 8);
		if (w != harden_.canary)
			break;
	}
	for (; b < end; b++, off++)
		if (*b != canary_byte(off))
			return b;
	return NULL;
}

void canary_fill(void *obj, void *p, size_t n)
{
	unsigned char *b = p, *end = b + n;
	size_t off = (size_t)(b - (unsigned char *)obj);
	while (b < end && ((uintptr_t)b & 7))
		*b++ = canary_byte(off++);
	for (; end - b >= 8; b += 8, off += 8)
		memcpy(b, &harden_.canary, 8);
	while (b < end)
		*b++ = canary_byte(off++);
}

/* Acquire loads of a record's generation (debug.c writes it). */
static uint32_t gen_load(const struct obj_debug *d)
{
	return __atomic_load_n(&d->live, __ATOMIC_ACQUIRE);
}

/* Bytes [a, b) of small span s (all in one slot, or in its tail) against
 * what they must hold; false if they hold something else for sure. */
static bool span_bytes_ok(const struct mspan *s, uintptr_t a, uintptr_t b)
{
	uintptr_t slots_end = s->base + (uintptr_t)s->nelems * s->elemsize;
	if (a >= slots_end) /* the tail: zeroed with the span, never handed out */
		return !mem_first_not((const void *)a, b - a, 0);
	uint32_t idx = span_obj_index(s, a - s->base);
	uintptr_t obj = s->base + (uintptr_t)idx * s->elemsize;
	const struct obj_debug *d = &s->dbg[idx];
	uint32_t g1 = gen_load(d);
	bool ok = true;
	if (g1 % 4 == 0) {
		ok = !mem_first_not((const void *)a, b - a, 0);
	} else if (g1 % 4 == 2) {
		uintptr_t c = obj + d->size; /* client bytes before c: not ours to judge */
		if (b > c)
			ok = !canary_first_bad((const void *)obj, (const void *)(a > c ? a : c),
			                       b - (a > c ? a : c));
	}
	atomic_thread_fence(memory_order_acquire);
	return ok || gen_load(d) != g1;
}

/* The same for a hardened large object at level 1-2. */
static bool large_bytes_ok(const struct mspan *s, uintptr_t a, uintptr_t b)
{
	uint64_t ss = atomic_load_explicit(&((struct mspan *)s)->sweepstate, memory_order_acquire);
	uint32_t st = atomic_load_explicit(&((struct mspan *)s)->state, memory_order_acquire);
	uint32_t fl = __atomic_load_n(&s->hflags, __ATOMIC_ACQUIRE);
	bool ok = true;
	if (fl & HL_HARDENED) {
		uintptr_t obj = harden_large_start(s);
		uintptr_t c = obj + s->hsize;
		if (st == SPAN_FREEING && (fl & HL_QUARANTINE))
			ok = !mem_first_not((const void *)a, b - a, 0);
		else if (st == SPAN_LARGE && b > c)
			ok = !canary_first_bad((const void *)obj, (const void *)(a > c ? a : c),
			                       b - (a > c ? a : c));
	}
	atomic_thread_fence(memory_order_acquire);
	return ok || atomic_load_explicit(&((struct mspan *)s)->state, memory_order_relaxed) != st ||
	       atomic_load_explicit(&((struct mspan *)s)->sweepstate, memory_order_relaxed) != ss;
}

/* Bytes [a, b), outside the object being freed, against what the heap
 * knows about them; reads only pages of live spans that cannot be
 * unmapped under us.  Returns the first address found wrong, or 0. */
uintptr_t harden_near_bad(uintptr_t a, uintptr_t b)
{
	bool guards = harden_guards();
	while (a < b) {
		struct mspan *s = span_of_ptr((const void *)a);
		uintptr_t next = (a | (PAGE_SIZE - 1)) + 1; /* no span: the next page */
		if (s) {
			uintptr_t end = s->base + (s->npages << PAGE_SHIFT);
			next = end;
			uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
			if (st == SPAN_SMALL && s->dbg && (s->central->debug & DEBUG_HARDEN)) {
				uintptr_t slots_end = s->base + (uintptr_t)s->nelems * s->elemsize;
				if (a < slots_end) {
					uint32_t idx = span_obj_index(s, a - s->base);
					next = s->base + (uintptr_t)(idx + 1) * s->elemsize;
				}
				uintptr_t e = next < b ? next : b;
				if (!span_bytes_ok(s, a, e))
					return a;
			} else if ((st == SPAN_LARGE || st == SPAN_FREEING) && !guards) {
				uintptr_t e = end < b ? end : b;
				if (!large_bytes_ok(s, a, e))
					return a;
			}
		}
		a = next;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Large objects
 */

uintptr_t harden_large_start(const struct mspan *s)
{
	return s->base + (s->hflags & HL_HEAD ? PAGE_SIZE : 0);
}

/* End of the object's own pages (the tail guard excluded). */
static uintptr_t large_end(const struct mspan *s)
{
	return s->base + ((s->npages - (s->hflags & HL_TAIL ? 1 : 0)) << PAGE_SHIFT);
}

/* Pages of a hardened large object of `size` bytes (level >= 1), its
 * layout in *flags. */
uint64_t harden_large_pages(size_t size, uint64_t align_pages, uint32_t *flags)
{
	uint32_t fl = HL_HARDENED;
	uint64_t pages = ((uint64_t)size + harden_.slack + PAGE_SIZE - 1) >> PAGE_SHIFT;
	if (size == 0 && harden_guards()) {
		*flags = HL_HARDENED | HL_ZERO;
		return 1;
	}
	if (harden_guards()) {
		fl |= HL_TAIL;
		pages++;
		if (align_pages <= 1) {
			fl |= HL_HEAD;
			pages++;
		}
	}
	*flags = fl;
	return pages;
}

/* A fresh large span s for an object of `size` bytes laid out by
 * harden_large_pages: zeroes the object, writes the canary, asks for the
 * guards (going on without those refused).  Returns the object. */
void *harden_large_setup(struct mspan *s, size_t size, uint32_t flags)
{
	s->hsize = size;
	s->hflags = flags & ~HL_ZERO;
	uintptr_t obj = harden_large_start(s), end = large_end(s);
	if ((flags & HL_ZERO) && harden_protect(s->base, PAGE_SIZE, true)) {
		__atomic_store_n(&s->hflags, flags, __ATOMIC_RELEASE);
		return (void *)s->base;
	}
	memset((void *)obj, 0, size);
	canary_fill((void *)obj, (void *)(obj + size), end - obj - size);
	if (flags & HL_HEAD)
		harden_protect(s->base, PAGE_SIZE, true);
	if (flags & HL_TAIL)
		harden_protect(end, PAGE_SIZE, true);
	/* Release: the canary is in place before anyone judges it. */
	__atomic_store_n(&s->hflags, s->hflags, __ATOMIC_RELEASE);
	return (void *)obj;
}

/* kfree of hardened large object s at p (its state already moved to
 * SPAN_FREEING by the caller).  Checks the canary and the bytes next to
 * the object; false after reporting if they were written (the free then
 * does nothing).  Else empties the object: unmapped if it goes into the
 * quarantine at level 3, zeroed otherwise, and marks it quarantined if
 * `quarantine`. */
bool harden_large_free(struct mspan *s, const void *p, bool quarantine)
{
	uint32_t fl = s->hflags;
	uintptr_t obj = (uintptr_t)p, end = large_end(s);
	if (!(fl & HL_ZERO)) {
		const unsigned char *bad =
			canary_first_bad(p, (const void *)(obj + s->hsize), end - obj - s->hsize);
		const char *why = "canary after the object was written (overflow)";
		uintptr_t near = 0;
		if (!bad && !(fl & HL_HEAD))
			near = harden_near_bad(s->base - harden_.slack, s->base);
		if (!bad && !near && !(fl & HL_TAIL))
			near = harden_near_bad(end, end + harden_.slack);
		if (near)
			why = near < obj ? "bytes before the object were written (underflow)"
			                 : "bytes after the object were written (overflow)";
		if (bad || near) {
			report_fault(KMEM_FAULT_OVERFLOW, p, s, why);
			return false;
		}
		if (quarantine && harden_guards() && harden_protect(obj, end - obj, true))
			fl |= HL_PROT;
		else
			memset((void *)obj, 0, end - obj);
	}
	if (quarantine)
		fl |= HL_QUARANTINE;
	__atomic_store_n(&s->hflags, fl, __ATOMIC_RELEASE);
	return true;
}

/* Before a hardened large object's pages go back to the mheap: a
 * quarantined one must still be all zeros (else a write after free is
 * reported); every page is made accessible again. */
void harden_large_release(struct mspan *s)
{
	uint32_t fl = s->hflags;
	uintptr_t obj = harden_large_start(s), end = large_end(s);
	if ((fl & HL_QUARANTINE) && !(fl & (HL_PROT | HL_ZERO))) {
		const unsigned char *bad = mem_first_not((const void *)obj, end - obj, 0);
		if (bad)
			report_fault(KMEM_FAULT_USE_AFTER_FREE, (const void *)obj, s,
			             "freed large object was written to (in the quarantine)");
	}
	if (fl & (HL_HEAD | HL_TAIL | HL_ZERO | HL_PROT))
		harden_protect(s->base, s->npages << PAGE_SHIFT, false);
	s->hflags = 0;
	s->hsize = 0;
}

/* kmem_check: a live hardened large object's canary (unless unmapped). */
unsigned long harden_check_large(struct mspan *s)
{
	uint32_t fl = s->hflags;
	if (!(fl & HL_HARDENED) || (fl & (HL_ZERO | HL_PROT)))
		return 0;
	uintptr_t obj = harden_large_start(s), end = large_end(s);
	if (fl & HL_QUARANTINE) {
		if (!mem_first_not((const void *)obj, end - obj, 0))
			return 0;
		report_fault(KMEM_FAULT_USE_AFTER_FREE, (const void *)obj, s,
		             "freed large object was written to (in the quarantine)");
		return 1;
	}
	if (!canary_first_bad((const void *)obj, (const void *)(obj + s->hsize), end - obj - s->hsize))
		return 0;
	report_fault(KMEM_FAULT_OVERFLOW, (const void *)obj, s,
	             "canary after the object was written (overflow)");
	return 1;
}

/* ---------------------------------------------------------------------------
 * The quarantine
 */

/* Bytes a quarantined object holds back (its slot, or its span). */
static uint64_t obj_bytes(const void *p)
{
	struct mspan *s = span_of_ptr(p);
	return atomic_load_explicit(&s->state, memory_order_relaxed) == SPAN_SMALL
	               ? s->elemsize
	               : s->npages << PAGE_SHIFT;
}

bool harden_quarantine_wants(uint64_t bytes)
{
	return harden_.ring && bytes <= KMEM_QUARANTINE_BYTES / 4;
}

static void *pop_oldest_locked(void)
{
	void *p = harden_.ring[harden_.head];
	harden_.bytes -= harden_.sizes[harden_.head];
	harden_.head = (harden_.head + 1) % KMEM_QUARANTINE_OBJECTS;
	harden_.n--;
	harden_.evicted++;
	return p;
}

/* One trip under the lock: appends p (if not NULL; its state already
 * says quarantined, `bytes` is what it holds back), then takes out, oldest
 * first, what the bounds push out -- everything with `all` (reclaim) --
 * up to max >= 1 entries into out[], for the caller to give back
 * (malloc.c, quarantine_release).  Returns how many; max means there may
 * be more. */
unsigned harden_quarantine(void *p, uint32_t bytes, bool all, void **out, unsigned max)
{
	unsigned k = 0;
	if (!harden_.ring)
		return 0;
	unsigned long f = lock_irqsave(&harden_.lock);
	if (p) {
		if (harden_.n == KMEM_QUARANTINE_OBJECTS)
			out[k++] = pop_oldest_locked();
		uint32_t i = (harden_.head + harden_.n) % KMEM_QUARANTINE_OBJECTS;
		harden_.ring[i] = p;
		harden_.sizes[i] = bytes;
		harden_.n++;
		harden_.bytes += bytes;
	}
	while (k < max && harden_.n && (all || harden_.bytes > KMEM_QUARANTINE_BYTES))
		out[k++] = pop_oldest_locked();
	unlock_irqrestore(&harden_.lock, f);
	return k;
}

/* A small object leaving the quarantine: still all zeros?  Else reports
 * the write after free and zeroes it again (it goes back to its span
 * either way: its client is gone). */
void harden_small_leaves(struct mspan *s, const void *p)
{
	if (!mem_first_not(p, s->elemsize, 0))
		return;
	report_fault(KMEM_FAULT_USE_AFTER_FREE, p, s,
	             "freed object was written to (in the quarantine)");
	memset((void *)p, 0, s->elemsize);
}

/* kmem_check (QUIESCE): every entry is a quarantined object, once, and
 * the counts add up.  Counts small and large entries for the caller. */
unsigned long harden_check_quarantine(uint64_t *small, uint64_t *large)
{
	unsigned long problems = 0;
	uint64_t bytes = 0;
	*small = *large = 0;
	for (uint32_t i = 0; i < harden_.n; i++) {
		uint32_t at = (harden_.head + i) % KMEM_QUARANTINE_OBJECTS;
		void *p = harden_.ring[at];
		struct mspan *s = span_of_ptr(p);
		uint32_t st = s ? atomic_load_explicit(&s->state, memory_order_relaxed) : SPAN_DEAD;
		bool ok = false;
		if (st == SPAN_SMALL) {
			uintptr_t off = (uintptr_t)p - s->base;
			uint32_t idx = span_obj_index(s, off);
			ok = idx < s->nelems && (uintptr_t)idx * s->elemsize == off &&
			     atomic_load_explicit(&s->objstate[idx], memory_order_relaxed) == OBJ_QUARANTINE;
			*small += ok;
		} else if (st == SPAN_FREEING) {
			ok = (s->hflags & HL_QUARANTINE) && (uintptr_t)p == harden_large_start(s);
			*large += ok;
		}
		if (!ok || harden_.sizes[at] != obj_bytes(p)) {
			problems++;
			report_fault(KMEM_FAULT_CORRUPT, p, s, "quarantine entry is not a quarantined object");
			continue;
		}
		bytes += harden_.sizes[at];
	}
	if (bytes != harden_.bytes) {
		problems++;
		report_fault(KMEM_FAULT_CORRUPT, NULL, NULL, "quarantine byte count is wrong");
	}
	return problems;
}
