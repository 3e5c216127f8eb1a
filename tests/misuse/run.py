#!/usr/bin/env python3
"""tests/misuse/run.py - the heap misuse suite: every case of
tests/misuse/misuse.c at 8 B, 4 KiB and 256 KiB, under spanalloc's shim at
each hardening level (SPANALLOC_HARDEN=0..3) and, for comparison, under
glibc, glibc with MALLOC_CHECK_=3 (libc_malloc_debug.so), jemalloc,
mimalloc and tcmalloc.

    python3 tests/misuse/run.py --misuse BIN --shim SO [--peers] [--short]
                                [--expected FILE] [--write-expected]
                                [--out FILE]

Each run is classified:
    C  caught: the allocator printed its message (spanalloc: a fault
       report or a guard-page line; glibc, jemalloc, tcmalloc, mimalloc:
       theirs) and stopped the process
    F  faulted: died of a signal without an allocator message (an
       unmapped page, a crash on corrupted memory)
    P  prevented: ran to the end, and what the misuse would read or get
       was not there (zeros instead of stale data, NULL for an impossible
       size)
    -  missed: ran to the end silently, the misuse had its effect
    E  the case itself failed (should not happen)
hardened_malloc is not packaged in Debian 12 and cannot be run here: its
column ("hm doc") is what its own test suite (test/test_smc.py) expects
for the matching small (8 B class) and large cases, not a measurement.

--short (make test): spanalloc's levels only, checked against --expected
(tests/misuse/expected.txt): every cell must match, level 0 must catch
every bad free (double and invalid frees that are not after reuse), and
each level must catch (C or F) everything the level below catches and
prevent at least what it prevents.  --write-expected rewrites the file
from this run.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

LIBDIR = '/usr/lib/x86_64-linux-gnu'
PEERS = [
    ('glibc', {}),
    ('glibc+check', {'LD_PRELOAD': '/lib/x86_64-linux-gnu/libc_malloc_debug.so.0',
                     'MALLOC_CHECK_': '3'}),
    ('jemalloc', {'LD_PRELOAD': f'{LIBDIR}/libjemalloc.so.2'}),
    ('mimalloc', {'LD_PRELOAD': f'{LIBDIR}/libmimalloc.so.2'}),
    ('tcmalloc', {'LD_PRELOAD': f'{LIBDIR}/libtcmalloc_minimal.so.4'}),
]
LEVELS = [0, 1, 2, 3]
SIZES = [8, 4096, 262144]
SIZELESS = {'zs-read', 'zs-write'}
CATEGORY = [
    ('double free', 'df-'), ('invalid free', 'if-'), ('overflow', 'of-'), ('underflow', 'uf-'),
    ('use after free', 'raf', 'waf'), ('zero size', 'zs-'), ('uninitialised', 'uninit'),
    ('impossible size', 'huge'),
]
# Bad frees every level must catch: the allocator can see them (a double
# free after the memory was handed out again frees a live object).
BAD_FREES = {'df-plain', 'df-delayed', 'df-interleaved', 'df-realloc', 'if-stack', 'if-alloca',
             'if-far', 'if-near', 'if-unaligned', 'if-realloc'}
# Messages that mean "the allocator noticed".
ALLOCATOR_MSG = re.compile(
    r'^spanalloc: |free\(\): |malloc\(\): |realloc\(\): |double free or corruption|'
    r'munmap_chunk\(\)|corrupted size|malloc_consolidate|<jemalloc>|mimalloc: error|'
    r'tcmalloc|Attempt to free invalid pointer|MALLOC_CHECK', re.M)

# hardened_malloc's own expectations (GrapheneOS/hardened_malloc,
# test/test_smc.py, default configuration): small = its small-size
# tests, large = its large (region) tests.  None: no such test.
HM_DOC = {
    ('df-plain', 'small'): 'C', ('df-plain', 'large'): 'C',
    ('df-delayed', 'small'): 'C', ('df-delayed', 'large'): 'C',
    ('if-unaligned', 'small'): 'C', ('if-unaligned', 'large'): 'C',
    ('if-far', 'small'): 'C', ('if-near', 'small'): 'C',
    ('of-1', 'small'): 'C', ('of-1', 'large'): 'F',
    ('raf', 'small'): 'P', ('raf', 'large'): 'F',
    ('waf', 'small'): 'C', ('waf', 'large'): 'F',
    ('waf-reuse', 'small'): 'C', ('waf-reuse', 'large'): 'F',
    ('zs-read', 'small'): 'F', ('zs-write', 'small'): 'F',
    ('uninit', 'small'): 'P', ('uninit', 'large'): 'P',
    ('huge', 'small'): 'P',
}


def run_case(binary, case, size, env_extra, timeout=30):
    env = dict(os.environ)
    for k in ('LD_PRELOAD', 'MALLOC_CHECK_', 'SPANALLOC_HARDEN'):
        env.pop(k, None)
    env.update(env_extra)
    try:
        p = subprocess.run([binary, case, str(size)], env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 'E', 'timeout'
    out = p.stdout.decode(errors='replace')
    err = p.stderr.decode(errors='replace')
    m = ALLOCATOR_MSG.search(err)
    if m:
        line = err[m.start():].splitlines()[0]
        return 'C', line[:110]
    if p.returncode < 0:
        return 'F', signal.Signals(-p.returncode).name
    if p.returncode != 0:
        return 'E', f'status {p.returncode}: {err.strip()[:100]}'
    if 'result: missed' in out:
        return '-', out.split('result: missed', 1)[1].strip().splitlines()[0][:100]
    if 'result: prevented' in out:
        return 'P', out.split('result: prevented', 1)[1].strip().splitlines()[0][:100]
    return '-', 'ran to the end'


def cells(binary, short):
    names = subprocess.run([binary, 'list'], capture_output=True, text=True, check=True).stdout.split()
    for case in names:
        for size in ([1] if case in SIZELESS else SIZES):
            yield case, size


def size_label(size):
    return '-' if size == 1 else '256K' if size == 262144 else '4K' if size == 4096 else f'{size}'


def hm_doc(case, size):
    if size == 4096:
        return '?'
    kind = 'large' if size == 262144 else 'small'
    return HM_DOC.get((case, kind), '?')


def run_all(args):
    configs = [(f'L{lv}', {'LD_PRELOAD': args.shim, 'SPANALLOC_HARDEN': str(lv)}) for lv in LEVELS]
    if args.peers:
        configs = PEERS + configs
    res, why = {}, {}
    for case, size in cells(args.misuse, args.short):
        for name, env in configs:
            code, detail = run_case(args.misuse, case, size, env)
            res[(case, size, name)] = code
            why[(case, size, name)] = detail
    return configs, res, why


def table(configs, res, with_hm):
    names = [n for n, _ in configs]
    keys = sorted({(c, s) for c, s, _ in res}, key=lambda k: (order.index(k[0]), k[1]))
    cols = names + (['hm doc'] if with_hm else [])
    L = ['| case | size | ' + ' | '.join(cols) + ' |', '|' + '---|' * (2 + len(cols))]
    for case, size in keys:
        row = [res[(case, size, n)] for n in names]
        if with_hm:
            row.append(hm_doc(case, size))
        L.append(f'| {case} | {size_label(size)} | ' + ' | '.join(row) + ' |')
    L.append('')
    L.append('| caught (C+F) / prevented (P) / missed (-) of ' + str(len(keys)) + ' | ' +
             ' | '.join(f'{sum(res[(c, s, n)] in "CF" for c, s in keys)} / '
                        f'{sum(res[(c, s, n)] == "P" for c, s in keys)} / '
                        f'{sum(res[(c, s, n)] == "-" for c, s in keys)}' for n in names) + ' |')
    L.append('| of which C (message or guard) | ' +
             ' | '.join(str(sum(res[(c, s, n)] == 'C' for c, s in keys)) for n in names) + ' |')
    return '\n'.join(L)


order = []


def read_expected(path):
    exp = {}
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if not line:
                continue
            case, size, codes = line[0], int(line[1]), line[2:]
            for lv, code in zip(LEVELS, codes):
                exp[(case, size, f'L{lv}')] = code
    return exp


def write_expected(path, res):
    keys = sorted({(c, s) for c, s, _ in res}, key=lambda k: (order.index(k[0]), k[1]))
    with open(path, 'w') as f:
        f.write('# tests/misuse/expected.txt - what spanalloc catches, per case, size and\n'
                '# hardening level (SPANALLOC_HARDEN=0..3): C caught with a message or on a\n'
                '# guard page, F faulted, P prevented, - missed.  Written by\n'
                '# tests/misuse/run.py --write-expected; checked by make test (test-misuse).\n'
                '# case size L0 L1 L2 L3\n')
        for case, size in keys:
            f.write(f'{case} {size} ' + ' '.join(res[(case, size, f"L{lv}")] for lv in LEVELS) + '\n')


def check(res, expected):
    problems = []
    keys = sorted({(c, s) for c, s, _ in res}, key=lambda k: (order.index(k[0]), k[1]))
    rank = {'-': 0, 'E': 0, 'P': 1, 'F': 2, 'C': 2}
    for case, size in keys:
        got = [res[(case, size, f'L{lv}')] for lv in LEVELS]
        if case in BAD_FREES and got[0] != 'C':
            problems.append(f'{case} {size}: level 0 must catch this bad free, got {got[0]}')
        for lv in LEVELS[1:]:
            if rank[got[lv]] < rank[got[lv - 1]]:
                problems.append(f'{case} {size}: level {lv} ({got[lv]}) catches less than level '
                                f'{lv - 1} ({got[lv - 1]})')
        if 'E' in got:
            problems.append(f'{case} {size}: the case failed: {got}')
        if expected is not None:
            want = [expected.get((case, size, f'L{lv}')) for lv in LEVELS]
            if want != got:
                problems.append(f'{case} {size}: expected {" ".join(map(str, want))}, '
                                f'got {" ".join(got)}')
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--misuse', required=True)
    ap.add_argument('--shim', required=True)
    ap.add_argument('--peers', action='store_true')
    ap.add_argument('--short', action='store_true')
    ap.add_argument('--expected')
    ap.add_argument('--write-expected', action='store_true')
    ap.add_argument('--out')
    ap.add_argument('--verbose', action='store_true')
    args = ap.parse_args()
    args.shim = os.path.abspath(args.shim)
    order.extend(subprocess.run([args.misuse, 'list'], capture_output=True, text=True,
                                check=True).stdout.split())
    t0 = time.time()
    configs, res, why = run_all(args)
    text = table(configs, res, args.peers)
    print(text)
    if args.verbose:
        for k, v in sorted(why.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
            print(f'  {k[0]} {size_label(k[1])} {k[2]}: {res[k]} {v}')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    expected = read_expected(args.expected) if args.expected and not args.write_expected else None
    if args.write_expected:
        write_expected(args.expected, res)
        print(f'misuse: wrote {args.expected}')
    problems = check(res, expected)
    for p in problems:
        print(f'  FAIL {p}')
    n = len({(c, s) for c, s, _ in res})
    print(f'misuse: {n} cases x {len(configs)} allocators in {time.time() - t0:.1f} s')
    passed = n - len({p.split(':')[0] for p in problems})
    print(f'misuse: {passed} passed, {n - passed} failed')
    sys.exit(1 if problems else 0)


if __name__ == '__main__':
    main()
