#!/usr/bin/env python3
"""tests/bench/run.py - spanalloc against glibc, jemalloc, mimalloc and
tcmalloc, in one run on one machine (make bench).

    python3 tests/bench/run.py [--build build] [--out build/bench]
                               [--runs 5] [--quick] [--only a,b,...]

Workloads (tests/bench/bench.c, heapinit.c, tests/shim/programs.py):
  (a) malloc+free pairs, 16/64/256/4096 B      (b) random 8..1024 B batches
  (c) (b) in 1, 2, 4 threads                   (d) producer/consumer
  (e) larson-like slot replacement             (f) real programs
  (g) page runs of 1..512 pages                (h) heap init, sparse maps
  (x) hardened mode: (a), (b) and two of (f) at SPANALLOC_HARDEN=0..3
plus instructions per operation for (a) and (b) under callgrind.

Every allocator runs the same binary: peers and the shim through
LD_PRELOAD, "spanalloc-direct" links mm/ and calls kmalloc/kfree/
kpage_alloc.  Runs alternate between allocators (the order rotates each
round) and each cell is the median of --runs rounds.  Ratios are
spanalloc (shim) / peer: below 1 spanalloc is faster (or smaller).

Writes <out>/results.md, <out>/results.json and PNG plots; prints the
table.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'shim'))
import programs  # noqa: E402

LIBDIR = '/usr/lib/x86_64-linux-gnu'
PEERS = [
    ('glibc', None),
    ('jemalloc', f'{LIBDIR}/libjemalloc.so.2'),
    ('mimalloc', f'{LIBDIR}/libmimalloc.so.2'),
    ('tcmalloc', f'{LIBDIR}/libtcmalloc_minimal.so.4'),
]
SHIM = 'spanalloc'
DIRECT = 'spanalloc-direct'


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# Running things

def run_env(preload):
    env = dict(os.environ)
    env.pop('LD_PRELOAD', None)
    if preload:
        env['LD_PRELOAD'] = preload
    return env


def run_bench(binary, args, preload, timeout=600):
    p = subprocess.run([binary] + [str(a) for a in args], env=run_env(preload),
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f'{binary} {args} under {preload}: status {p.returncode}: {p.stderr[-400:]}')
    m = re.search(r'ns_per_op=([0-9.]+)', p.stdout)
    return float(m.group(1))


def run_program(run, cwd, preload, runrss):
    """Wall time and peak RSS (KiB, largest process of the tree), measured
    by the small launcher tests/bench/runrss.c (see there why)."""
    env = run_env(None)
    env.update(run.get('env', {}))
    stdin = open(os.path.join(cwd, run['stdin']), 'rb') if run.get('stdin') else subprocess.DEVNULL
    out = os.path.join(cwd, '.runrss')
    try:
        p = subprocess.run([runrss, out, preload or '-'] + run['argv'], cwd=cwd, env=env, stdin=stdin,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    finally:
        if stdin is not subprocess.DEVNULL:
            stdin.close()
    if p.returncode != 0:
        raise RuntimeError(f'{run["name"]} under {preload}: status {p.returncode}')
    kv = dict(x.split('=') for x in open(out).read().split())
    return float(kv['wall_s']), int(kv['maxrss_kib'])


def median(xs):
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------------------
# Cells

def micro_cells(quick):
    q = 10 if quick else 1
    cells = []
    for size in (16, 64, 256, 4096):
        cells.append(dict(id=f'a{size}', group='a', label=f'(a) malloc+free {size} B',
                          args=['a', size, 10_000_000 // q], direct=True))
    cells.append(dict(id='b', group='b', label='(b) random 8..1024 B, batch 1000',
                      args=['b', 3_000_000 // q, 1000], direct=True))
    for t in (1, 2, 4):
        cells.append(dict(id=f'c{t}', group='c', label=f'(c) (b) in {t} thread{"s" if t > 1 else ""}',
                          args=['c', t, 1_000_000 // q, 1000], direct=False))
    cells.append(dict(id='d', group='d', label='(d) producer/consumer, 8..1024 B',
                      args=['d', 2_000_000 // q], direct=False))
    cells.append(dict(id='e', group='e', label='(e) larson-like, 2 threads x 20 rounds',
                      args=['e', 2, 20, 100_000 // q], direct=False))
    for n in (1, 8, 64, 512):
        cells.append(dict(id=f'g{n}', group='g', label=f'(g) page run {n} page{"s" if n > 1 else ""}',
                          args=['g', n, 300_000 // q], direct=True))
    cells.append(dict(id='gmix', group='g', label='(g) page runs 1..512 random, 16 live',
                      args=['g', 0, 100_000 // q], direct=True))
    return cells


def allocators_for(cell, shim):
    out = [(name, path) for name, path in PEERS] + [(SHIM, shim)]
    if cell.get('direct'):
        out.append((DIRECT, None))
    return out


def run_micro(cells, bins, shim, runs, only):
    results = {}
    for cell in cells:
        if only and cell['group'] not in only:
            continue
        allocs = allocators_for(cell, shim)
        times = {name: [] for name, _ in allocs}
        for r in range(runs):
            order = allocs[r % len(allocs):] + allocs[:r % len(allocs)]
            for name, path in order:
                binary = bins['direct'] if name == DIRECT else bins['malloc']
                times[name].append(run_bench(binary, cell['args'], path))
        results[cell['id']] = {name: median(v) for name, v in times.items()}
        log(f'  {cell["label"]:42s} ' + '  '.join(f'{n}={results[cell["id"]][n]:.1f}'
                                                   for n, _ in allocs))
    return results


def run_programs(workdir, shim, runs, runrss):
    programs.setup(workdir)
    allocs = [(name, path) for name, path in PEERS] + [(SHIM, shim)]
    out = {}
    for run in programs.programs(workdir):
        walls = {n: [] for n, _ in allocs}
        rss = {n: [] for n, _ in allocs}
        run_program(run, workdir, None, runrss)  # warm the page cache
        for r in range(runs):
            order = allocs[r % len(allocs):] + allocs[:r % len(allocs)]
            for name, path in order:
                w, m = run_program(run, workdir, path, runrss)
                walls[name].append(w)
                rss[name].append(m)
        out[run['name']] = {n: dict(wall=median(walls[n]), rss_kib=median(rss[n])) for n, _ in allocs}
        log(f'  (f) {run["name"]:11s} ' + '  '.join(
            f'{n}={out[run["name"]][n]["wall"]:.2f}s/{out[run["name"]][n]["rss_kib"] / 1024:.0f}M'
            for n, _ in allocs))
    return out


def run_heapinit(binary, quick):
    out = {}
    for gib in (1, 64, 1024):
        reps = 3 if gib == 1024 else 7
        p = subprocess.run([binary, str(gib), str(1 if quick and gib == 1024 else reps)],
                           capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise RuntimeError(f'heapinit {gib}: {p.stderr[-400:]}')
        kv = dict(x.split('=') for x in p.stdout.split())
        out[gib] = {k: float(v) for k, v in kv.items()}
        log(f'  (h) {gib:5d} GiB: {out[gib]["ms"]:.2f} ms, metadata {out[gib]["metadata_bytes"] / 2**20:.1f} MiB '
            f'({out[gib]["metadata_pct"]:.3f}%), touched {out[gib]["resident_bytes"] / 2**20:.1f} MiB')
    return out


def callgrind_total(binary, args, preload):
    with tempfile.NamedTemporaryFile(suffix='.cg', delete=False) as f:
        path = f.name
    try:
        p = subprocess.run(['valgrind', '--tool=callgrind', f'--callgrind-out-file={path}', binary]
                           + [str(a) for a in args], env=run_env(preload),
                           capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise RuntimeError(f'callgrind {binary} {args}: {p.stderr[-400:]}')
        with open(path) as f:
            for line in f:
                if line.startswith('summary:') or line.startswith('totals:'):
                    return int(line.split()[1])
    finally:
        os.unlink(path)
    raise RuntimeError('callgrind: no totals')


def run_instructions(bins, shim, quick):
    """Instructions per operation: the whole program at two iteration
    counts; the difference over the extra operations (start-up cancels)."""
    n1, n2 = (50_000, 100_000) if quick else (100_000, 200_000)
    cells = [(f'a{s}', lambda n, s=s: ['a', s, n]) for s in (16, 64, 256, 4096)]
    cells.append(('b', lambda n: ['b', n, 1000]))
    allocs = [(name, path) for name, path in PEERS] + [(SHIM, shim), (DIRECT, None)]
    out = {}
    for cid, mk in cells:
        out[cid] = {}
        for name, path in allocs:
            binary = bins['direct'] if name == DIRECT else bins['malloc']
            i1 = callgrind_total(binary, mk(n1), path)
            i2 = callgrind_total(binary, mk(n2), path)
            out[cid][name] = (i2 - i1) / (n2 - n1)
        log(f'  instructions {cid:5s} ' + '  '.join(f'{n}={v:.0f}' for n, v in out[cid].items()))
    return out


# ---------------------------------------------------------------------------
# Report

def machine():
    cpu = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass

    def pkg(name):
        p = subprocess.run(['dpkg-query', '-W', '-f=${Version}', name], capture_output=True, text=True)
        return p.stdout.strip() or '?'

    rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    return dict(cpu=cpu, nproc=os.cpu_count(), kernel=platform.release(), mem_gib=round(mem / 2**30, 1),
                glibc=platform.libc_ver()[1], jemalloc=pkg('libjemalloc2'), mimalloc=pkg('libmimalloc2.0'),
                tcmalloc=pkg('libtcmalloc-minimal4'), gcc=pkg('gcc-12'), valgrind=pkg('valgrind'),
                date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                commit=rev + (' (with uncommitted changes)' if dirty else ''),
                load=os.getloadavg()[0])


def fmt(v, digits=1):
    return '-' if v is None else f'{v:.{digits}f}'


def ratio(a, b):
    return '-' if a is None or b is None or b == 0 else f'{a / b:.2f}'


def report(res, args, cells):
    m = res['machine']
    names = [n for n, _ in PEERS]
    L = []
    L.append('# spanalloc benchmark results\n')
    L.append(f'Machine: {m["cpu"]}, {m["nproc"]} CPUs (nproc), {m["mem_gib"]} GiB, Linux {m["kernel"]}; '
             f'glibc {m["glibc"]}, jemalloc {m["jemalloc"]}, mimalloc {m["mimalloc"]}, '
             f'tcmalloc {m["tcmalloc"]} (Debian packages), gcc {m["gcc"]}, valgrind {m["valgrind"]}.  '
             f'{m["date"]}, commit {m["commit"]}, load average at start {m["load"]:.1f}.\n')
    L.append(f'Command: `make bench` (`python3 tests/bench/run.py --runs {args.runs}'
             f'{" --quick" if args.quick else ""}`).  Each cell is the median of {args.runs} runs; '
             'allocators alternate run by run.  **spanalloc** = the LD_PRELOAD shim '
             '(build/host/libspanalloc-malloc.so), **direct** = mm/ linked into the program, '
             'kmalloc/kfree/kpage_alloc.  Ratios: spanalloc (shim) / peer, below 1 = spanalloc '
             'faster or smaller.\n')
    if res.get('micro'):
        L.append('## (a)-(e), (g): nanoseconds per operation (allocation + its free; wall time)\n')
        hdr = '| workload | ' + ' | '.join(names) + ' | spanalloc | direct | ' + \
              ' | '.join(f'/{n}' for n in names) + ' |'
        L.append(hdr)
        L.append('|' + '---|' * (3 + 2 * len(names)))
        for cell in cells:
            r = res['micro'].get(cell['id'])
            if not r:
                continue
            s = r.get(SHIM)
            L.append(f'| {cell["label"]} | ' + ' | '.join(fmt(r.get(n)) for n in names) +
                     f' | {fmt(s)} | {fmt(r.get(DIRECT))} | ' +
                     ' | '.join(ratio(s, r.get(n)) for n in names) + ' |')
        L.append('')
        L.append('Commands: `build/bench/bin/bench-malloc <args>` under `LD_PRELOAD=<allocator>` and '
                 '`build/bench/bin/bench-direct <args>`; args per row: ' +
                 '; '.join(f'{c["id"]}: `{" ".join(map(str, c["args"]))}`' for c in cells) + '.\n')
    if res.get('instructions'):
        L.append('## Instructions per operation (callgrind; malloc + free)\n')
        L.append('Whole program under `valgrind --tool=callgrind` at two iteration counts; '
                 '(I(n2) - I(n1)) / (n2 - n1), so start-up cancels.  Includes the benchmark '
                 'loop itself (about 6 instructions per pair for (a), 18 for (b)).\n')
        allc = names + [SHIM, DIRECT]
        L.append('| workload | ' + ' | '.join(allc) + ' |')
        L.append('|' + '---|' * (1 + len(allc)))
        for cid, r in res['instructions'].items():
            L.append(f'| {cid} | ' + ' | '.join(fmt(r.get(n), 0) for n in allc) + ' |')
        L.append('')
    if res.get('programs'):
        L.append('## (f) real programs under LD_PRELOAD: wall seconds and peak RSS\n')
        L.append('Programs and inputs: tests/shim/programs.py (the same runs `make test-shim` '
                 'compares byte for byte), launched by tests/bench/runrss.c.  Peak RSS is the '
                 'largest process of the run (wait4 ru_maxrss, descendants included; the launcher '
                 'itself, about 1 MiB, is the floor).  Medians of up to 3 runs.\n')
        allc = names + [SHIM]
        L.append('| program | ' + ' | '.join(f'{n} s' for n in allc) + ' | ' +
                 ' | '.join(f'/{n}' for n in names) + ' | ' +
                 ' | '.join(f'{n} MiB' for n in allc) + ' | RSS /glibc | RSS /mimalloc |')
        L.append('|' + '---|' * (1 + 2 * len(allc) + len(names) + 1))
        for prog, r in res['programs'].items():
            s = r[SHIM]
            L.append(f'| {prog} | ' + ' | '.join(fmt(r[n]['wall'], 2) for n in allc) + ' | ' +
                     ' | '.join(ratio(s['wall'], r[n]['wall']) for n in names) + ' | ' +
                     ' | '.join(fmt(r[n]['rss_kib'] / 1024, 1) for n in allc) + ' | ' +
                     ratio(s['rss_kib'], r['glibc']['rss_kib']) + ' | ' +
                     ratio(s['rss_kib'], r['mimalloc']['rss_kib']) + ' |')
        L.append('')
    if res.get('heapinit'):
        L.append('## (h) heap init over simulated sparse maps (spanalloc only)\n')
        L.append('`build/bench/bin/heapinit <GiB>`: a PC-like map (BIOS hole, PCI hole, '
                 'firmware holes) over a PROT_NONE window; metadata given as a separate '
                 'MAP_NORESERVE mapping (kmem_metadata_size()).  Time of kmem_init() '
                 '(median), metadata size and share of managed memory, metadata pages '
                 'actually written.\n')
        L.append('| map | kmem_init ms | metadata MiB | metadata % | touched MiB | arenas |')
        L.append('|---|---|---|---|---|---|')
        for gib, r in res['heapinit'].items():
            L.append(f'| {gib} GiB | {r["ms"]:.2f} | {r["metadata_bytes"] / 2**20:.2f} | '
                     f'{r["metadata_pct"]:.3f} | {r["resident_bytes"] / 2**20:.2f} | {r["arenas"]:.0f} |')
        L.append('')
    L.append('Plots: ' + ', '.join(f'`{p}`' for p in res.get('plots', [])) + '\n')
    return '\n'.join(L)


def plots(res, out, cells):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        log('  (no matplotlib: plots skipped)')
        return []
    made = []
    colors = {'glibc': '#777777', 'jemalloc': '#1f77b4', 'mimalloc': '#2ca02c', 'tcmalloc': '#ff7f0e',
              SHIM: '#d62728', DIRECT: '#9467bd'}
    allc = [n for n, _ in PEERS] + [SHIM, DIRECT]

    def bars(ax, labels, series, ylabel, log_scale=False):
        w = 0.8 / len(series)
        for i, (name, vals) in enumerate(series):
            xs = [j + (i - (len(series) - 1) / 2) * w for j in range(len(labels))]
            ax.bar(xs, [v if v is not None else 0 for v in vals], w, label=name, color=colors.get(name))
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha='right', fontsize=8)
        ax.set_ylabel(ylabel)
        if log_scale:
            ax.set_yscale('log')
        ax.grid(axis='y', alpha=0.3)
        ax.legend(fontsize=7, ncol=3)

    if res.get('micro'):
        ids = [c for c in cells if c['id'] in res['micro']]
        fig, ax = plt.subplots(figsize=(12, 5))
        bars(ax, [c['label'] for c in ids],
             [(n, [res['micro'][c['id']].get(n) for c in ids]) for n in allc],
             'ns per operation (log)', log_scale=True)
        ax.set_title('Allocation workloads (a)-(e), (g): median wall ns per alloc+free')
        fig.tight_layout()
        p = os.path.join(out, 'bench-micro.png')
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)
    if res.get('instructions'):
        ids = list(res['instructions'])
        fig, ax = plt.subplots(figsize=(9, 4.5))
        bars(ax, ids, [(n, [res['instructions'][c].get(n) for c in ids]) for n in allc],
             'instructions per malloc+free')
        ax.set_title('callgrind instructions per operation, (a) and (b)')
        fig.tight_layout()
        p = os.path.join(out, 'bench-instructions.png')
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)
    if res.get('programs'):
        progs = list(res['programs'])
        names = [n for n, _ in PEERS] + [SHIM]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.5))
        bars(a1, progs, [(n, [res['programs'][p][n]['wall'] / res['programs'][p]['glibc']['wall']
                              for p in progs]) for n in names], 'wall time / glibc')
        a1.axhline(1, color='k', lw=0.5)
        a1.set_title('(f) real programs: wall time relative to glibc')
        bars(a2, progs, [(n, [res['programs'][p][n]['rss_kib'] / res['programs'][p]['glibc']['rss_kib']
                              for p in progs]) for n in names], 'peak RSS / glibc')
        a2.axhline(1.1, color='r', lw=0.5, ls='--')
        a2.set_title('(f) peak RSS relative to glibc (target line 1.1)')
        fig.tight_layout()
        p = os.path.join(out, 'bench-programs.png')
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)
    if res.get('heapinit'):
        gibs = list(res['heapinit'])
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        a1.bar([str(g) for g in gibs], [res['heapinit'][g]['ms'] for g in gibs], color=colors[SHIM])
        a1.set_yscale('log')
        a1.set_xlabel('map size, GiB')
        a1.set_ylabel('kmem_init ms (log)')
        a1.axhline(10, color='k', lw=0.5, ls='--')
        a1.set_title('(h) heap init time (target 10 ms at 1 TiB)')
        a2.bar([str(g) for g in gibs], [res['heapinit'][g]['metadata_pct'] for g in gibs], color=colors[SHIM])
        a2.axhline(0.5, color='k', lw=0.5, ls='--')
        a2.set_xlabel('map size, GiB')
        a2.set_ylabel('metadata, % of managed memory')
        a2.set_title('(h) metadata (target 0.5 %)')
        fig.tight_layout()
        p = os.path.join(out, 'bench-heapinit.png')
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)
    return made


# ---------------------------------------------------------------------------
# Hardened mode's cost (--only x): the shim at SPANALLOC_HARDEN=0..3 against
# glibc on (a) 64 B and 4 KiB pairs, (b) the random batch and two real
# programs.  Self-contained: run_harden() and harden_report() only.

HARDEN_LEVELS = [0, 1, 2, 3]


def harden_cells(quick):
    q = 10 if quick else 1
    return [
        dict(id='a64', label='(a) malloc+free 64 B', args=['a', 64, 2_000_000 // q]),
        dict(id='a4096', label='(a) malloc+free 4096 B', args=['a', 4096, 1_000_000 // q]),
        dict(id='b', label='(b) random 8..1024 B, batch 1000', args=['b', 1_000_000 // q, 1000]),
    ]


def harden_bench(binary, args, preload, level):
    env = run_env(preload)
    if level is not None:
        env['SPANALLOC_HARDEN'] = str(level)
    p = subprocess.run([binary] + [str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f'{binary} {args} at level {level}: status {p.returncode}: {p.stderr[-400:]}')
    return float(re.search(r'ns_per_op=([0-9.]+)', p.stdout).group(1))


def run_harden(bins, shim, runs, quick, runrss, workdir):
    allocs = [('glibc', None, None)] + [(f'L{lv}', shim, lv) for lv in HARDEN_LEVELS]
    out = {'micro': {}, 'programs': {}}
    for cell in harden_cells(quick):
        times = {n: [] for n, _, _ in allocs}
        for r in range(runs):
            for name, path, lv in allocs[r % len(allocs):] + allocs[:r % len(allocs)]:
                times[name].append(harden_bench(bins['malloc'], cell['args'], path, lv))
        out['micro'][cell['id']] = {n: median(v) for n, v in times.items()}
        log(f'  (x) {cell["label"]:34s} ' + '  '.join(f'{n}={out["micro"][cell["id"]][n]:.1f}'
                                                     for n, _, _ in allocs))
    programs.setup(workdir)
    for run in programs.programs(workdir):
        if run['name'] not in ('python3', 'sqlite3'):
            continue
        walls = {n: [] for n, _, _ in allocs}
        rss = {n: [] for n, _, _ in allocs}
        run_program(run, workdir, None, runrss)  # warm the page cache
        for r in range(max(1, min(runs, 3))):
            for name, path, lv in allocs[r % len(allocs):] + allocs[:r % len(allocs)]:
                env = dict(run.get('env', {}))
                if lv is not None:
                    env['SPANALLOC_HARDEN'] = str(lv)
                w, m = run_program(dict(run, env=env), workdir, path, runrss)
                walls[name].append(w)
                rss[name].append(m)
        out['programs'][run['name']] = {n: dict(wall=median(walls[n]), rss_kib=median(rss[n]))
                                        for n, _, _ in allocs}
        log(f'  (x) {run["name"]:11s} ' + '  '.join(
            f'{n}={out["programs"][run["name"]][n]["wall"]:.2f}s' for n, _, _ in allocs))
    return out


def harden_report(res, quick):
    h = res['harden']
    names = ['glibc'] + [f'L{lv}' for lv in HARDEN_LEVELS]
    L = ['## (x) hardened mode: cost of each level (SPANALLOC_HARDEN=0..3)\n',
         'The shim at each hardening level against glibc, same binaries as (a), (b) and (f).  '
         'Medians; ratios over glibc (cost = ratio - 1).  Level 0 is the default heap.\n',
         '| workload | ' + ' | '.join(f'{n} ns' for n in names) + ' | ' +
         ' | '.join(f'L{lv} /glibc' for lv in HARDEN_LEVELS) + ' |',
         '|' + '---|' * (1 + len(names) + len(HARDEN_LEVELS))]
    for cell in harden_cells(quick):
        r = h['micro'].get(cell['id'])
        if r:
            L.append(f'| {cell["label"]} | ' + ' | '.join(fmt(r[n]) for n in names) + ' | ' +
                     ' | '.join(ratio(r[f'L{lv}'], r['glibc']) for lv in HARDEN_LEVELS) + ' |')
    for prog, r in h['programs'].items():
        L.append(f'| (f) {prog}, wall s | ' + ' | '.join(fmt(r[n]['wall'], 2) for n in names) + ' | ' +
                 ' | '.join(ratio(r[f'L{lv}']['wall'], r['glibc']['wall']) for lv in HARDEN_LEVELS) + ' |')
        L.append(f'| (f) {prog}, peak RSS MiB | ' +
                 ' | '.join(fmt(r[n]['rss_kib'] / 1024, 1) for n in names) + ' | ' +
                 ' | '.join(ratio(r[f'L{lv}']['rss_kib'], r['glibc']['rss_kib']) for lv in HARDEN_LEVELS) +
                 ' |')
    L.append('')
    L.append('Commands: `SPANALLOC_HARDEN=<level> LD_PRELOAD=build/host/libspanalloc-malloc.so '
             'build/bench/bin/bench-malloc <args>`; args: ' +
             '; '.join(f'{c["id"]}: `{" ".join(map(str, c["args"]))}`' for c in harden_cells(quick)) +
             '.  `python3 tests/bench/run.py --only x`.\n')
    return '\n'.join(L)

# (end of the hardened-mode section)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default='build')
    ap.add_argument('--out', default='build/bench')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--only', default='',
                    help='comma list of a,b,c,d,e,f,g,h,i,x (i = instructions, x = hardened mode)')
    args = ap.parse_args()
    only = set(x for x in args.only.split(',') if x)
    shim = os.path.abspath(os.path.join(args.build, 'host', 'libspanalloc-malloc.so'))
    bins = {k: os.path.abspath(os.path.join(args.out, 'bin', f'bench-{k}')) for k in ('malloc', 'direct')}
    heapinit = os.path.abspath(os.path.join(args.out, 'bin', 'heapinit'))
    runrss = os.path.abspath(os.path.join(args.out, 'bin', 'runrss'))
    for path in [shim, heapinit, runrss] + list(bins.values()) + [p for _, p in PEERS if p]:
        if not os.path.exists(path):
            sys.exit(f'bench: missing {path} (make bench builds the programs; '
                     'scripts/install-deps.sh bench installs the peers)')
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    res = {'machine': machine(), 'runs': args.runs, 'quick': args.quick}
    log(f'bench: {res["machine"]["cpu"]}, {res["machine"]["nproc"]} CPUs; {args.runs} runs per cell')
    cells = micro_cells(args.quick)
    micro_groups = set('abcdeg')
    if not only or only & micro_groups:
        res['micro'] = run_micro(cells, bins, shim, args.runs, only & micro_groups)
    if not only or 'i' in only:
        if shutil.which('valgrind'):
            res['instructions'] = run_instructions(bins, shim, args.quick)
        else:
            log('  (no valgrind: instruction counts skipped)')
    if not only or 'f' in only:
        res['programs'] = run_programs(os.path.join(os.path.abspath(args.out), 'programs'), shim,
                                       max(1, min(args.runs, 3)), runrss)
    if not only or 'h' in only:
        res['heapinit'] = run_heapinit(heapinit, args.quick)
    if not only or 'x' in only:
        res['harden'] = run_harden(bins, shim, args.runs, args.quick, runrss,
                                   os.path.join(os.path.abspath(args.out), 'programs-harden'))
    res['plots'] = plots(res, args.out, cells)
    text = report(res, args, cells)
    if res.get('harden'):
        text += '\n' + harden_report(res, args.quick)
    with open(os.path.join(args.out, 'results.md'), 'w') as f:
        f.write(text)
    with open(os.path.join(args.out, 'results.json'), 'w') as f:
        json.dump(res, f, indent=1, default=str)
    print()
    print(text)
    log(f'bench: done in {time.time() - t0:.0f} s; {os.path.join(args.out, "results.md")}')


if __name__ == '__main__':
    main()
