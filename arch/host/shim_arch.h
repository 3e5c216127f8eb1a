/*
 * arch/host/shim_arch.h - the host arch contract as the malloc shim (and
 * the directly linked benchmarks) need it: a heap over a reserved window of
 * address space that grows by hot-add, threads as CPU slots, fork safety.
 * arch/host/shim_arch.c implements it; arch/host/arch.c (the test arch) is
 * not linked with it.
 */
#ifndef SPANALLOC_SHIM_ARCH_H
#define SPANALLOC_SHIM_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spanalloc.h"

/* Builds the heap on first use: reserves the window, hands its first chunk
 * to kmem_init(), installs the fault hook.  Safe to call from any thread
 * at any time, concurrently, and from inside its own initialisation (a
 * nested call returns false at once).  Returns true when the heap is ready. */
bool shim_heap_ready(void);

/* The heap is ready (no side effect): the fast paths' test. */
extern _Atomic int shim_heap_state;
static inline bool shim_heap_is_ready(void)
{
	return __atomic_load_n((int *)&shim_heap_state, __ATOMIC_ACQUIRE) == 2;
}

/* The OOM hook (kmem_set_oom_hook): makes room for an allocation that
 * failed: maps the next chunk of the window, big enough to hold the run the
 * request needs (spanalloc.h) after the chunk's own metadata, and
 * kmem_hot_add()s it.  Returns false, adding nothing, iff that chunk cannot
 * hold the run (the request's ceiling is below it, its alignment lies past
 * the window) or the window cannot grow enough; it then sets errno to
 * ENOMEM (the allocation returns NULL). */
bool shim_heap_grow(const struct kmem_oom_request *req);

/* The fault hook the shim installs: one line on stderr
 * ("spanalloc: double free at 0x...: detail") and abort(), as glibc does
 * for a bad free. */
void shim_fault_abort(const struct kmem_fault *fault);
/* The same line without the abort. */
void shim_fault_print(const struct kmem_fault *fault);

/* Statistics for the shim's exit report and the tests. */
struct shim_info {
	uintptr_t window;          /* direct-map offset */
	uint64_t window_bytes;     /* reserved */
	uint64_t mapped_bytes;     /* handed to the heap so far */
	unsigned grows;            /* hot-adds */
	unsigned oom_calls;        /* calls of the OOM hook */
	unsigned private_slots;    /* CPU slots owned by one thread each */
	unsigned shared_slots;     /* slots shared under a lock */
	unsigned slots_in_use;     /* private slots claimed now */
	unsigned slots_dead;       /* slots lost to fork (owner was inside) */
};
void shim_get_info(struct shim_info *out);

/* The hardening level the heap was built with (SPANALLOC_HARDEN). */
extern unsigned shim_harden;

#endif
