/*
 * arch/host/shim_arch.c - the arch contract for the LD_PRELOAD malloc shim
 * (arch/host/shim.c) and for benchmarks that link mm/ directly.
 *
 * Memory.  At first use a window of address space is reserved PROT_NONE
 * with MAP_NORESERVE (1 TiB, or less where the address space is limited,
 * e.g. under valgrind) and aligned to its own size, so that physical and
 * virtual alignment agree.  The window stands for physical memory:
 * direct_map_offset = window, physical address = offset in the window.
 * The first 64 MiB chunk is made RW and given to kmem_init(); when an
 * allocation fails, the OOM hook (kmem_set_oom_hook) makes the next chunk
 * RW (at least 64 MiB and a quarter of what the heap has, big enough for
 * the request and its arena metadata) and kmem_hot_add()s it, and mm/
 * retries the allocation.  A full window is
 * extended in place (MAP_FIXED_NOREPLACE) while the address space after it
 * is free.  Untouched pages cost nothing: RSS is what the heap wrote.
 *
 * CPUs.  Threads are CPUs.  KMEM_MAX_CPUS - SHIM_SHARED slots are private:
 * a thread claims one on its first allocation and gives it back (flushing
 * its cache with kmem_cpu_offline) from a pthread key destructor when it
 * exits.  The fast path on a private slot takes no lock: "interrupts off"
 * is a thread-local nesting count.  When every private slot is taken, and
 * for a thread that allocates again after its slot was given back at exit,
 * the thread uses one of SHIM_SHARED shared slots, locked from the
 * arch_cpu_id() that enters it to the arch_irq_restore() that leaves the
 * allocator.  That lock is taken before any allocator lock and never while
 * one is held, so it adds no lock-order cycle.
 *
 * Hardened mode.  SPANALLOC_HARDEN=n (0..3) is kmem_config.harden, with a
 * canary secret from getrandom.  The protect hook (kmem_set_protect_hook)
 * is mprotect; at level 3 a SIGSEGV handler names a fault on a page of the
 * heap window that mm/ unmapped (a guard page) or outside the memory given
 * to the heap, in one "spanalloc:" line, before the default action kills
 * the process.  (A program that installs its own SIGSEGV handler replaces
 * it; a refused mprotect, e.g. at vm.max_map_count, only costs the guard.)
 *
 * fork.  pthread_atfork handlers take the grow lock, the shared slot
 * locks and every allocator lock (caches < mcentrals < mheap) before fork
 * and release them in both processes afterwards.  In the child, the other
 * threads are gone: a private slot whose owner was outside the allocator
 * at the fork (its nesting count, read through a pointer kept in the slot,
 * was 0) is flushed and freed; a slot whose owner was inside is left dead
 * (its cached spans leak in the child; its state may be half-updated).
 * A kfree is lock-free and not fenced by any of this: one cut in half by
 * the fork (freed bit set, span not yet queued on its mcentral) is
 * finished in the child by repair_central().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "mtypes.h"
#include "shim_arch.h"
#include "shim_arch_inline.h"

/* This file defines the out-of-line hooks: no macros over their names. */
#undef arch_irq_save
#undef arch_irq_restore
#undef arch_cpu_id

#define SHIM_SHARED 4
#define SHIM_PRIVATE (KMEM_MAX_CPUS - SHIM_SHARED)
_Static_assert(KMEM_MAX_CPUS > SHIM_SHARED, "need private and shared slots");

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define CHUNK_MIN (64 * MIB) /* one arena */
#define WINDOW_MAX (1ull << 40)
#define WINDOW_MIN (1ull << 30)
#define PHYS_LIMIT (1ull << (KMEM_PHYS_BITS - 1))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define barrier() atomic_signal_fence(memory_order_seq_cst)

/* ---------------------------------------------------------------------------
 * The shim's own spin locks (never held across a call into a blocking
 * function).
 */
struct slock {
	_Atomic unsigned v;
};

static void pause_or_yield(unsigned *spins)
{
	if ((++*spins & 63) == 0)
		sched_yield();
	else
		__builtin_ia32_pause();
}

static void slock_acquire(struct slock *l)
{
	unsigned spins = 0;
	while (atomic_exchange_explicit(&l->v, 1, memory_order_acquire))
		while (atomic_load_explicit(&l->v, memory_order_relaxed))
			pause_or_yield(&spins);
}

static void slock_release(struct slock *l)
{
	atomic_store_explicit(&l->v, 0, memory_order_release);
}

/* ---------------------------------------------------------------------------
 * CPU slots
 */
enum { SLOT_FREE, SLOT_CLAIMING, SLOT_PRIVATE, SLOT_DEAD };

struct slot {
	alignas(64)
	_Atomic int state;             /* private slots: enum above */
	struct slock lock;             /* shared slots */
	_Atomic bool online;           /* shared slots: kmem_cpu_online done */
	unsigned long *_Atomic irq;    /* private: owner's nesting count */
};

static struct slot slots[KMEM_MAX_CPUS];

/* Per thread: "interrupts off" nesting, the private slot (fast path), the
 * slot in use (private or shared), whether the shared lock is held. */
__thread unsigned long shim_t_irq;
__thread int shim_t_cpu = -1;
__thread unsigned char shim_t_locked;
#define t_irq shim_t_irq
#define t_cpu shim_t_cpu
#define t_locked shim_t_locked
static __thread int t_slot = -1;
static __thread unsigned char t_exiting;

static pthread_key_t slot_key;
static _Atomic unsigned slots_dead;

void shim_shared_leave(void)
{
	t_locked = 0;
	slock_release(&slots[t_slot].lock);
}

unsigned long arch_irq_save(void)
{
	return shim_irq_save_inline();
}

void arch_irq_restore(unsigned long flags)
{
	shim_irq_restore_inline(flags);
}

static int claim_private(void)
{
	for (int i = 0; i < SHIM_PRIVATE; i++) {
		int expect = SLOT_FREE;
		if (atomic_load_explicit(&slots[i].state, memory_order_relaxed) != SLOT_FREE ||
		    !atomic_compare_exchange_strong(&slots[i].state, &expect, SLOT_CLAIMING))
			continue;
		atomic_store(&slots[i].irq, &t_irq);
		t_cpu = t_slot = i;
		kmem_cpu_online((unsigned)i);
		atomic_store(&slots[i].state, SLOT_PRIVATE);
		/* May allocate (keys >= 32); t_cpu is set, so it nests. */
		pthread_setspecific(slot_key, (void *)1);
		return i;
	}
	return -1;
}

unsigned shim_cpu_slow(void)
{
	if (t_locked)
		return (unsigned)t_slot;
	if (t_slot < 0) {
		if (!t_exiting && claim_private() >= 0)
			return (unsigned)t_cpu;
		uintptr_t h = (uintptr_t)&t_irq;
		h ^= h >> 17;
		h ^= h >> 29;
		int s = SHIM_PRIVATE + (int)(h % SHIM_SHARED);
		if (!atomic_load_explicit(&slots[s].online, memory_order_acquire)) {
			kmem_cpu_online((unsigned)s);
			atomic_store_explicit(&slots[s].online, true, memory_order_release);
		}
		t_slot = s;
	}
	slock_acquire(&slots[t_slot].lock);
	t_locked = 1;
	return (unsigned)t_slot;
}

unsigned arch_cpu_id(void)
{
	return shim_cpu_id_inline();
}

/* Key destructor: the thread is exiting. */
static void slot_release(void *unused)
{
	(void)unused;
	t_exiting = 1;
	int c = t_cpu;
	if (c < 0)
		return;
	kmem_cpu_offline((unsigned)c);
	t_cpu = t_slot = -1;
	atomic_store(&slots[c].irq, NULL);
	atomic_store_explicit(&slots[c].state, SLOT_FREE, memory_order_release);
}

void arch_cpu_relax(void)
{
	static __thread unsigned spins;
	pause_or_yield(&spins);
}

static void write_all(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(2, s, n);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

void arch_log(const char *line)
{
	char buf[256];
	size_t n = strnlen(line, sizeof buf - 1);
	memcpy(buf, line, n);
	buf[n++] = '\n';
	write_all(buf, n);
}

void arch_panic(const char *msg)
{
	if (strncmp(msg, "spanalloc", 9) != 0)
		write_all("spanalloc panic: ", 17);
	arch_log(msg);
	abort();
}

/* ---------------------------------------------------------------------------
 * Faults
 */
static size_t sf_hex(char *out, uint64_t v)
{
	char tmp[16];
	size_t n = 0;
	do {
		unsigned d = v & 15;
		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v >>= 4;
	} while (v);
	out[0] = '0';
	out[1] = 'x';
	for (size_t i = 0; i < n; i++)
		out[2 + i] = tmp[n - 1 - i];
	return n + 2;
}

static size_t sf_str(char *out, size_t room, const char *s)
{
	size_t n = 0;
	while (s && s[n] && n < room)
		out[n] = s[n], n++;
	return n;
}

void shim_fault_print(const struct kmem_fault *f)
{
	char buf[256];
	size_t n = 0;
	n += sf_str(buf + n, 64, "spanalloc: ");
	n += sf_str(buf + n, 64, kmem_fault_name(f->kind));
	n += sf_str(buf + n, 8, " at ");
	n += sf_hex(buf + n, (uintptr_t)f->addr);
	if (f->detail) {
		n += sf_str(buf + n, 4, ": ");
		n += sf_str(buf + n, 80, f->detail);
	}
	buf[n++] = '\n';
	write_all(buf, n);
}

void shim_fault_abort(const struct kmem_fault *f)
{
	shim_fault_print(f);
	abort();
}

/* ---------------------------------------------------------------------------
 * The window and the heap
 */
_Atomic int shim_heap_state; /* 0 none, 1 building, 2 ready, 3 failed */
#define heap_state shim_heap_state
static __thread unsigned char t_building;
static uintptr_t win_base;      /* direct-map offset */
static uint64_t win_size;       /* [grow_lock] reserved bytes */
static uint64_t win_mapped;     /* [grow_lock] bytes given to the heap */
static _Atomic unsigned grows, oom_calls;
static struct slock grow_lock;

static bool reserve_window(void)
{
	for (uint64_t size = WINDOW_MAX; size >= WINDOW_MIN; size >>= 2) {
		/* Twice the size, then trim to a size-aligned window. */
		void *p = mmap(NULL, 2 * size, PROT_NONE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			continue;
		uintptr_t lo = (uintptr_t)p, base = align_up(lo, size);
		if (base > lo)
			munmap(p, base - lo);
		uintptr_t end = lo + 2 * size;
		if (end > base + size)
			munmap((void *)(base + size), end - (base + size));
		win_base = base;
		win_size = size;
		return true;
	}
	return false;
}

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

unsigned shim_harden;

static bool shim_protect(void *addr, size_t bytes, enum kmem_access access)
{
	return mprotect(addr, bytes, access == KMEM_ACCESS_NONE ? PROT_NONE
	                                                        : PROT_READ | PROT_WRITE) == 0;
}

/* One line naming the fault if it is on the heap window, then the default
 * action (SA_RESETHAND: the access faults again and kills the process). */
static void guard_fault(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	uintptr_t a = (uintptr_t)si->si_addr;
	if (a < win_base || a - win_base >= win_size)
		return;
	bool mapped = a - win_base < win_mapped;
	char buf[256];
	size_t n = sf_str(buf, 64, "spanalloc: ");
	n += sf_str(buf + n, 64, mapped ? "guard page hit at " : "access outside the heap's memory at ");
	n += sf_hex(buf + n, a);
	n += sf_str(buf + n, 100, mapped ? ": unmapped heap page (use after free, overflow, zero-size object)"
	                                 : ": wild or far out-of-bounds access");
	buf[n++] = '\n';
	write_all(buf, n);
}

/* SPANALLOC_HARDEN: one digit 0..KMEM_HARDEN_MAX, or unset/empty for 0. */
static bool harden_from_env(unsigned *level)
{
	const char *h = getenv("SPANALLOC_HARDEN");
	*level = 0;
	if (!h || !*h)
		return true;
	if (h[1] || h[0] < '0' || h[0] > '0' + KMEM_HARDEN_MAX)
		return false;
	*level = (unsigned)(h[0] - '0');
	return true;
}

static void heap_build(void)
{
	unsigned level;
	if (!harden_from_env(&level)) {
		write_all("spanalloc: SPANALLOC_HARDEN must be one digit, 0 to 3\n", 54);
		abort();
	}
	uint64_t seed = 0;
	if (level && getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&seed;
	if (!reserve_window())
		goto fail;
	if (mprotect((void *)win_base, CHUNK_MIN, PROT_READ | PROT_WRITE))
		goto fail;
	struct kmem_region r = {.base = 0, .length = CHUNK_MIN, .type = KMEM_REGION_USABLE};
	struct kmem_config cfg = {
		.regions = &r,
		.nregions = 1,
		.direct_map_offset = win_base,
		.max_cpus = KMEM_MAX_CPUS,
		.harden = level,
		.harden_seed = seed,
	};
	if (kmem_init(&cfg))
		goto fail;
	win_mapped = CHUNK_MIN;
	kmem_set_fault_hook(shim_fault_abort);
	kmem_set_oom_hook(shim_heap_grow);
	kmem_set_protect_hook(shim_protect);
	shim_harden = level;
	if (level >= 3) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = guard_fault;
		sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
	}
	/* pthread_key_create does not allocate. */
	if (pthread_key_create(&slot_key, slot_release))
		goto fail;
	atomic_store_explicit(&heap_state, 2, memory_order_release);
	/* May allocate: the heap is ready now. */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	return;
fail:
	write_all("spanalloc: cannot reserve the heap window\n", 42);
	atomic_store_explicit(&heap_state, 3, memory_order_release);
}

static __attribute__((noinline)) bool heap_ready_slow(void)
{
	if (t_building)
		return false; /* called from inside heap_build */
	int expect = 0;
	if (atomic_compare_exchange_strong(&heap_state, &expect, 1)) {
		t_building = 1;
		heap_build();
		t_building = 0;
	} else {
		unsigned spins = 0;
		while (atomic_load_explicit(&heap_state, memory_order_acquire) == 1)
			pause_or_yield(&spins);
	}
	return atomic_load_explicit(&heap_state, memory_order_acquire) == 2;
}

bool shim_heap_ready(void)
{
	if (likely(atomic_load_explicit(&heap_state, memory_order_acquire) == 2))
		return true;
	return heap_ready_slow();
}

/* Extends the window in place by at least `more` bytes. */
static bool window_extend(uint64_t more)
{
	uint64_t ext = align_up(more > win_size ? more : win_size, GIB);
	if (win_size + ext > PHYS_LIMIT)
		return false;
	void *want = (void *)(win_base + win_size);
	void *p = mmap(want, ext, PROT_NONE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return false;
	if (p != want) { /* a kernel without MAP_FIXED_NOREPLACE took it as a hint */
		munmap(p, ext);
		return false;
	}
	win_size += ext;
	return true;
}

/* Bytes a hot-add of `chunk` bytes at the end of the heap keeps for its
 * own metadata at its start (bootmem.c: a chunk and an arena's worth for
 * each new arena, rounded up; an upper bound). */
static uint64_t chunk_meta(uint64_t chunk)
{
	uint64_t arenas = chunk / CHUNK_MIN + 1;
	return align_up(arenas * align_up(sizeof(struct heap_arena), KMEM_CACHE_LINE) +
	                        2 * align_up(sizeof(struct l2_chunk), KMEM_CACHE_LINE) + 2 * PAGE_SIZE,
	                PAGE_SIZE);
}

bool shim_heap_grow(const struct kmem_oom_request *req)
{
	if (!shim_heap_ready() || req->run_pages > PHYS_LIMIT >> KMEM_PAGE_SHIFT) {
		errno = ENOMEM;
		return false;
	}
	bool ok = false;
	slock_acquire(&grow_lock);
	/* The next chunk starts where the heap ends; its first pages hold its
	 * arenas' metadata.  It helps only if the run the request needs fits
	 * after them: at a multiple of run_align, below the ceiling, inside
	 * the window.  Alignment gaps come from the reserved window only (it
	 * is extended in place for size, never for alignment). */
	uint64_t run = req->run_pages << KMEM_PAGE_SHIFT;
	uint64_t chunk = win_mapped / 4 > CHUNK_MIN ? win_mapped / 4 : CHUNK_MIN;
	uint64_t start = 0, end = 0;
	for (int i = 0; i < 8; i++) { /* the metadata grows with the chunk: settle */
		start = align_up(win_mapped + chunk_meta(chunk), req->run_align);
		end = start + run;
		if (end < start || end - win_mapped <= chunk)
			break;
		chunk = align_up(end - win_mapped, CHUNK_MIN);
	}
	chunk = align_up(chunk, CHUNK_MIN);
	if (end < start || end - win_mapped > chunk || (req->max_phys && end > req->max_phys))
		goto out; /* below the ceiling, or at that alignment, nothing can be added */
	if (start - win_mapped > win_size - win_mapped) /* the alignment is past the window */
		goto out;
	if (win_mapped + chunk > win_size && !window_extend(win_mapped + chunk - win_size)) {
		/* Use what is left of the window if the run fits in it. */
		chunk = align_down(win_size - win_mapped, CHUNK_MIN);
		if (end - win_mapped > chunk)
			goto out;
	}
	if (mprotect((void *)(win_base + win_mapped), chunk, PROT_READ | PROT_WRITE))
		goto out;
	struct kmem_region r = {.base = win_mapped, .length = chunk, .type = KMEM_REGION_USABLE};
	long added = kmem_hot_add(&r);
	win_mapped += chunk;
	if (added > 0) {
		atomic_fetch_add_explicit(&grows, 1, memory_order_relaxed);
		ok = true;
	}
out:
	atomic_fetch_add_explicit(&oom_calls, 1, memory_order_relaxed);
	slock_release(&grow_lock);
	if (!ok)
		errno = ENOMEM;
	return ok;
}

void shim_get_info(struct shim_info *out)
{
	memset(out, 0, sizeof(*out));
	out->window = win_base;
	out->window_bytes = win_size;
	out->mapped_bytes = win_mapped;
	out->grows = atomic_load(&grows);
	out->oom_calls = atomic_load(&oom_calls);
	out->private_slots = SHIM_PRIVATE;
	out->shared_slots = SHIM_SHARED;
	for (int i = 0; i < SHIM_PRIVATE; i++)
		if (atomic_load(&slots[i].state) == SLOT_PRIVATE)
			out->slots_in_use++;
	out->slots_dead = atomic_load(&slots_dead);
}

/* ---------------------------------------------------------------------------
 * fork
 */
static bool fork_locked; /* the handlers took the locks (heap was ready) */

static void all_allocator_locks(bool take)
{
	struct spinlock *ls[KMEM_NUM_CLASSES + 1];
	unsigned n = 0;
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++)
		ls[n++] = &class_central(0, cls)->lock;
	if (take) {
		lock_acquire(&mheap_.caches_lock);
		for (struct kmem_cache *k = mheap_.caches; k; k = k->next)
			lock_acquire(&k->central.lock);
		for (unsigned i = 0; i < n; i++)
			lock_acquire(ls[i]);
		lock_acquire(&mheap_.heap[0]->lock);
		for (unsigned k = 1; k < mheap_.nnodes; k++)
			lock_acquire_more(&mheap_.heap[k]->lock);
	} else {
		for (unsigned k = mheap_.nnodes; k-- > 1;)
			lock_release_more(&mheap_.heap[k]->lock);
		lock_release(&mheap_.heap[0]->lock);
		for (unsigned i = n; i-- > 0;)
			lock_release(ls[i]);
		for (struct kmem_cache *k = mheap_.caches; k; k = k->next)
			lock_release(&k->central.lock);
		lock_release(&mheap_.caches_lock);
	}
}

static void fork_prepare(void)
{
	fork_locked = atomic_load_explicit(&heap_state, memory_order_acquire) == 2;
	if (!fork_locked)
		return;
	slock_acquire(&grow_lock);
	for (int i = SHIM_PRIVATE; i < KMEM_MAX_CPUS; i++)
		slock_acquire(&slots[i].lock);
	t_irq++;
	barrier();
	all_allocator_locks(true);
}

static void fork_unlock(void)
{
	all_allocator_locks(false);
	barrier();
	t_irq--;
	for (int i = KMEM_MAX_CPUS; i-- > SHIM_PRIVATE;)
		slock_release(&slots[i].lock);
	slock_release(&grow_lock);
}

static void fork_parent(void)
{
	if (fork_locked)
		fork_unlock();
}

/* A lock-free kfree the fork cut in half: its freed bit is in but the
 * span was not queued, or the span is marked queued but not yet pushed on
 * the mcentral's unswept stack (mcentral_cache_span would wait for that
 * push forever).  Finish both in the child. */
static bool on_unswept(struct mcentral *c, struct mspan *s)
{
	for (struct mspan *x = atomic_load(&c->unswept); x; x = x->unswept_next)
		if (x == s)
			return true;
	return false;
}

static void repair_central(struct mcentral *c)
{
	struct span_list *lists[2] = {&c->partial, &c->full};
	for (int i = 0; i < 2; i++) {
		for (struct mspan *s = lists[i]->first; s; s = s->next) {
			uint64_t st = atomic_load(&s->sweepstate);
			unsigned loc = SS_LOC(st);
			if (loc == LOC_QUEUED) {
				if (!on_unswept(c, s))
					mcentral_push_unswept(c, s);
			} else if ((loc == LOC_PARTIAL || loc == LOC_FULL) && span_has_freed(s)) {
				atomic_store(&s->sweepstate, SS_MAKE(SS_GEN(st), LOC_QUEUED));
				mcentral_push_unswept(c, s);
			}
		}
	}
}

static void fork_child(void)
{
	if (!fork_locked)
		return;
	fork_unlock();
	for (unsigned cls = 1; cls < KMEM_NUM_CLASSES; cls++)
		repair_central(class_central(0, cls));
	for (struct kmem_cache *k = mheap_.caches; k; k = k->next)
		repair_central(&k->central);
	/* Only this thread survives.  Free the slots of threads that were
	 * outside the allocator; leave the others dead. */
	for (int i = 0; i < SHIM_PRIVATE; i++) {
		int st = atomic_load(&slots[i].state);
		if (i == t_cpu || st == SLOT_FREE || st == SLOT_DEAD)
			continue;
		unsigned long *irq = atomic_load(&slots[i].irq);
		if (st == SLOT_PRIVATE && irq && *irq == 0) {
			kmem_cpu_offline((unsigned)i);
			atomic_store(&slots[i].irq, NULL);
			atomic_store(&slots[i].state, SLOT_FREE);
		} else {
			atomic_store(&slots[i].state, SLOT_DEAD);
			atomic_fetch_add(&slots_dead, 1);
		}
	}
}
