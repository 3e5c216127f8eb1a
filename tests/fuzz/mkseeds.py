#!/usr/bin/env python3
"""tests/fuzz/mkseeds.py - writes the seed corpus tests/fuzz/corpus/ and
the regression inputs tests/fuzz/regress/.

Each seed is an operation sequence in the encoding fuzz_ops.c decodes (one
opcode byte, then its argument bytes; see the OP_* enum and the op_*
functions there).  The seeds reach every operation and every bad call, so
that a short run starts with full coverage of the harness; a few random
inputs are added.  The regression inputs reproduce bugs the fuzzer found
(make test-fuzz replays them; each must pass once its bug is fixed).
Regenerate both after changing the encoding:

    python3 tests/fuzz/mkseeds.py [corpus-dir [regress-dir]]
"""
import os
import random
import struct
import sys

# Opcodes: the order of enum op in fuzz_ops.c.
(KMALLOC, KZALLOC, KCALLOC, REALLOC, ALIGNED, FREE, FREE2, PAGES, PAGEFREE,
 CACHE_CREATE, CACHE_ALLOC, CACHE_FREE, CACHE_SHRINK, CACHE_DESTROY, RECLAIM,
 CPU, BAD, CHECK, BURST, FREE_MANY, HOT_ADD, OOM) = range(22)


def u16(v):
    return struct.pack('<H', v & 0xffff)


# decode_size() categories: (selector, 16-bit value)
def tiny(n): return bytes([0]) + u16(n)            # 0..16
def small(n): return bytes([1]) + u16(n - 1)        # 1..256
def mid(n): return bytes([5]) + u16(n - 1)          # 1..2048
def big(n): return bytes([7]) + u16(n - 1)          # 1..8192
def any_small(n): return bytes([8]) + u16(n - 1)    # 1..32768
def boundary(cls, d): return bytes([9]) + u16((cls & 0xff) | (d << 8))  # class size -1/0/+1
def edge(d): return bytes([10]) + u16(d)            # 32767..32769
def large(v): return bytes([11]) + u16(v)           # 32769 + 4v
def pages(n): return bytes([13]) + u16(n - 1)       # n pages (minus a little)
def huge(v): return bytes([14]) + u16(v)            # 1 + 256v, up to 16 MiB
def absurd(i): return bytes([15]) + u16(i)          # sizes that must fail


def kmalloc(sz): return bytes([KMALLOC]) + sz
def kzalloc(sz): return bytes([KZALLOC]) + sz
def kcalloc_small(n, size): return bytes([KCALLOC, 0]) + u16(size) + u16(n)
def kcalloc_overflow(size): return bytes([KCALLOC, 2]) + u16(size) + bytes([7])
def realloc(idx, sz): return bytes([REALLOC, 1]) + u16(idx) + sz
def realloc_zero(idx): return bytes([REALLOC, 3]) + u16(idx)
def realloc_null(sz): return bytes([REALLOC, 0]) + sz
def aligned(sz, shift): return bytes([ALIGNED]) + sz + bytes([shift])
def aligned_bad(sz, i): return bytes([ALIGNED]) + sz + bytes([224 + i])
def free(idx, how=0): return bytes([FREE]) + u16(idx) + bytes([how])
def page_alloc(n, align_shift=0, ceil=0, v=0):
    a = n if n <= 32 else 0x80 | 0
    if n > 32:
        v = n - 1
    return bytes([PAGES, a, align_shift, ceil]) + u16(v)
def page_free(idx): return bytes([PAGEFREE]) + u16(idx) + bytes([0])
def cache_create(k, sa, sb, v): return bytes([CACHE_CREATE, k, sa, sb]) + u16(v)
def cache_alloc(k): return bytes([CACHE_ALLOC, k])
def cache_free(idx, how=0): return bytes([CACHE_FREE]) + u16(idx) + bytes([how])
def shrink(k): return bytes([CACHE_SHRINK, k])
def destroy(k): return bytes([CACHE_DESTROY, k])
def reclaim(): return bytes([RECLAIM])
def cpu(sel, c): return bytes([CPU, sel, c])
def check(): return bytes([CHECK])
def burst(sz, n): return bytes([BURST]) + sz + bytes([n - 1])
def free_many(stride, phase): return bytes([FREE_MANY, stride - 1, phase])
def bad(sub, sel, v, extra=b''): return bytes([BAD, sub, sel]) + u16(v) + extra
def hot_add(sel): return bytes([HOT_ADD, sel])
def oom(mode): return bytes([OOM, mode])


def seeds():
    s = {}
    s['basic'] = (kmalloc(small(24)) + kmalloc(mid(700)) + kmalloc(big(5000)) +
                  kmalloc(tiny(0)) + check() + free(1) + free(0) + free(0) + free(0) + check())
    s['sizes'] = b''.join(kmalloc(boundary(c, d)) for c in range(1, 76, 5) for d in range(3)) + \
        kmalloc(edge(0)) + kmalloc(edge(1)) + kmalloc(edge(2)) + kmalloc(large(1000)) + \
        kmalloc(pages(300)) + check() + reclaim() + free_many(2, 0) + check()
    s['zero'] = (kzalloc(small(100)) + kzalloc(large(5)) + kcalloc_small(10, 24) +
                 kcalloc_small(0, 5) + kcalloc_overflow(16) + kzalloc(absurd(0)) + check())
    s['absurd'] = b''.join(kmalloc(absurd(i)) for i in range(7)) + kmalloc(huge(65535)) + check()
    s['realloc'] = (kmalloc(small(100)) + realloc(0, small(60)) + realloc(0, mid(1500)) +
                    realloc(0, large(100)) + realloc(0, large(50)) + realloc(0, small(10)) +
                    realloc_null(mid(300)) + realloc_zero(1) + realloc(0, absurd(1)) + check())
    s['aligned'] = b''.join(aligned(small(1 + (i * 37) % 200), i) for i in range(23)) + \
        aligned(large(200), 16) + aligned(tiny(0), 14) + \
        b''.join(aligned_bad(small(10), i) for i in range(7)) + check() + free_many(3, 1)
    s['pages'] = (page_alloc(1) + page_alloc(5, 14) + page_alloc(300) + page_alloc(2, 0, 6, 0) +
                  page_alloc(3, 0, 7, 2000) + page_alloc(1, 0, 8) + page_alloc(1, 0, 9) +
                  page_alloc(1, 0, 10) + page_alloc(0) + page_alloc(1, 250) + page_alloc(4, 22) +
                  check() + page_free(1) + page_free(0) + page_alloc(1) + check())
    s['caches'] = (cache_create(0, 4, 0, 23) + cache_create(1, 0x82, 6, 199) +
                   cache_create(2, 3, 12, 3) + cache_create(3, 2, 200, 100) +
                   cache_create(3, 1, 0, 0) + cache_create(3, 0, 0, 0) +
                   cache_create(3, 4, 203, 10) +
                   b''.join(cache_alloc(i % 3) for i in range(40)) + check() +
                   cache_free(3) + cache_free(7, 1) + shrink(0) + destroy(1) + reclaim() +
                   free_many(1, 0) + shrink(1) + destroy(1) + destroy(0) +
                   bad(7, 1, 0, u16(0)) + kmalloc(small(8)) + bad(7, 0, 0, u16(0)) +
                   cache_create(1, 4, 3, 500) + cache_alloc(1) + check())
    s['cpus'] = (kmalloc(small(40)) + cpu(1, 2) + kmalloc(small(40)) + free(0) + cpu(0, 0) +
                 cache_create(0, 4, 0, 64) + cache_alloc(0) + cpu(1, 3) + cache_alloc(0) +
                 cpu(2, 1) + cpu(3, 9) + cpu(1, 0) + free(0) + check())
    s['bad-double'] = (kmalloc(small(32)) + free(0) + bad(0, 0, 0) + bad(0, 1, 0) + bad(0, 2, 0) +
                       cache_create(0, 4, 0, 100) + cache_alloc(0) + cache_free(0) +
                       bad(0, 3, 0) + page_alloc(2) + page_free(0) + bad(0, 0, 0) +
                       kmalloc(large(10)) + free(0) + bad(0, 0, 0) + check())
    s['bad-interior'] = (kmalloc(mid(200)) + kmalloc(large(20)) + page_alloc(3) +
                         cache_create(1, 4, 0, 50) + cache_alloc(1) +
                         b''.join(bad(1, sel, v, u16(i)) for i in range(4)
                                  for sel, v in ((0, 5), (0x11, 100), (3, 64))) + check())
    s['bad-wild'] = b''.join(bad(2, sel | (act << 4), v) for sel in range(9)
                             for act, v in ((0, 3), (1, 1000), (2, 77), (3, 4))) + check()
    s['bad-map'] = (kmalloc(small(50)) + kmalloc(large(1)) + page_alloc(2) +
                    b''.join(bad(3, sel, v, u16(w)) for sel, v, w in
                             ((0, 0, 0), (1, 1, 5), (2, 2, 600), (3, 3, 0), (0x20, 4, 9),
                              (0x40 | 3, 2, 0), (0x40 | 3, 3, 0), (1, 5, 77), (0, 6, 1000))) + check())
    s['bad-kind'] = (kmalloc(small(64)) + page_alloc(4) +
                     bad(4, 1, 0, u16(0)) + bad(4, 3, 0, u16(0)) + bad(4, 5, 0, u16(0)) +
                     bad(4, 0, 2, u16(0)) + bad(5, 0, 0, u16(1)) + bad(5, 1, 1, u16(1)) + check())
    s['bad-cache'] = (cache_create(0, 4, 0, 40) + cache_create(1, 4, 0, 90) + cache_alloc(0) +
                      cache_alloc(1) + kmalloc(small(40)) +
                      bad(6, 1, 0, u16(0)) + bad(6, 0, 0, u16(1)) + bad(6, 0, 0, u16(2)) + check())
    s['oom'] = (b''.join(kmalloc(huge(16000)) for _ in range(4)) + burst(big(8000), 64) +
                page_alloc(2000) + page_alloc(1, 16) + check() + free_many(2, 1) +
                kmalloc(huge(20000)) + reclaim() + check())
    s['fragment'] = (burst(small(100), 64) + burst(mid(1000), 40) + free_many(2, 0) +
                     kmalloc(large(300)) + burst(small(16), 50) + free_many(3, 2) +
                     aligned(large(100), 18) + page_alloc(8, 15) + check() + reclaim() + check())
    s['hotadd'] = (b''.join(kmalloc(huge(12000)) for _ in range(5)) + hot_add(4) + hot_add(5) +
                   hot_add(6) + hot_add(7) + hot_add(0) + hot_add(1) + hot_add(1) + hot_add(3) +
                   hot_add(2) + hot_add(2) + check() +
                   b''.join(kmalloc(huge(12000)) for _ in range(3)) + burst(big(4000), 64) +
                   page_alloc(300) + bad(2, 1, 8) + bad(3, 0, 7, u16(3)) + check() + reclaim())
    # debug caches: sa bit 0x40; flags = (sb >> 4) % 9 (sb < 200 keeps align valid)
    s['debug-caches'] = (cache_create(0, 0x44, 0x70, 40) + cache_create(1, 0xc4, 0x21, 3) +
                         cache_create(2, 0x42, 0x13, 32760) + cache_create(3, 0x44, 0x80, 9) +
                         cache_create(3, 0x44, 0x50, 100) +
                         b''.join(cache_alloc(i % 4) for i in range(60)) + check() +
                         cache_free(5) + cache_free(9, 1) + bad(0, 3, 0) + bad(0, 3, 1) +
                         bad(1, 3, 2, u16(4)) + bad(6, 1, 0, u16(7)) + shrink(0) + destroy(0) +
                         reclaim() + check())
    s['oom-hook'] = (oom(1) + b''.join(kmalloc(huge(16000)) for _ in range(6)) + page_alloc(3000) +
                     oom(2) + b''.join(kmalloc(huge(16000)) for _ in range(4)) + burst(big(8000), 64) +
                     cache_create(0, 4, 0, 500) + b''.join(cache_alloc(0) for _ in range(20)) +
                     oom(0) + kmalloc(huge(16000)) + check() + free_many(2, 0) + reclaim() + check())
    rnd = random.Random(20240501)
    for i in range(8):
        n = rnd.choice((16, 64, 256, 1024))
        s['random-%d' % i] = bytes(rnd.randrange(256) for _ in range(n))
    return s


def regressions():
    r = {}
    # kmem_cache_free(cache, a large kmalloc object) must report
    # KMEM_FAULT_WRONG_CACHE and leave the object live; it freed it.
    r['cache-free-of-large-kmalloc'] = (cache_create(0, 4, 0, 100) + kmalloc(large(100)) +
                                        bad(6, 0, 0, u16(0)) + check())
    return r


def write(out, files, what):
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(files.items()):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
    print('mkseeds: %d %s in %s' % (len(files), what, out))


def main():
    here = os.path.dirname(__file__)
    write(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, 'corpus'), seeds(), 'seeds')
    write(sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, 'regress'), regressions(),
          'regression inputs')


if __name__ == '__main__':
    main()
