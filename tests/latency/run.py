#!/usr/bin/env python3
"""tests/latency/run.py - worst-case and percentile cost per operation
(make latency; make test-latency runs it with --quick).

    python3 tests/latency/run.py --bin build/latency/latency
                                 [--out build/latency] [--quick]
                                 [--no-callgrind] [--only frag,pages]

For every scenario and argument that `latency --list` names (the short
list with --quick), runs the harness (tests/latency/latency.c):
  - natively: cycles (time-stamp counter) and nanoseconds per operation,
    p50 / p99 / max, and its steps (the work unit the scenario proves a
    bound for) against that bound;
  - under callgrind (not with --quick or --no-callgrind): instructions per
    operation, p50 / p99 / max, from one profile dump per operation.
A run whose steps exceed a bound fails (exit 1): steps are deterministic,
so that is the check `make test` makes.  Cycles and instructions are
reported, never asserted (the machine is shared and noisy).

Writes <out>/results.md, <out>/results.json and <out>/latency.png.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def log(*a):
    print(*a, flush=True)


def scenarios(binary, quick, only):
    out = subprocess.run([binary, '--list'] + (['--quick'] if quick else []),
                         check=True, capture_output=True, text=True).stdout
    runs = []
    for line in out.splitlines():
        name, arg, what = line.split(' ', 2)
        if not only or name in only:
            runs.append((name, int(arg), what))
    return runs


def parse(stdout):
    return [json.loads(l) for l in stdout.splitlines() if l.startswith('{')]


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))]


def native(binary, name, arg):
    t = time.time()
    p = subprocess.run(['nice', binary, name, str(arg)], capture_output=True, text=True)
    return p.returncode, parse(p.stdout), p.stderr.strip(), time.time() - t


def callgrind(binary, name, arg):
    """Instructions per op: {op: [Ir of each dumped operation]}, or an error."""
    if not shutil.which('valgrind'):
        return None, 'valgrind not installed'
    d = tempfile.mkdtemp(prefix='latency-cg-')
    try:
        p = subprocess.run(['nice', 'valgrind', '--tool=callgrind', '--dump-instr=no',
                            '--callgrind-out-file=%s/cg.out' % d, binary, name, str(arg)],
                           capture_output=True, text=True)
        rows = parse(p.stdout)
        if p.returncode != 0 or not rows:
            err = [l for l in p.stderr.splitlines() if not l.startswith('==')]
            return None, (err[-1] if err else 'exit %d' % p.returncode)
        ir = {}
        for f in glob.glob(d + '/cg.out.*'):
            n = int(f.rsplit('.', 1)[1])
            with open(f) as fh:
                for line in fh:
                    if line.startswith('summary:'):
                        ir[n] = int(line.split()[1])
                        break
        per_op = {}
        for r in rows:
            per_op[r['op']] = [ir[i] for i in r['dumps'] if i in ir]
        return per_op, None
    finally:
        shutil.rmtree(d, ignore_errors=True)


def fmt(x):
    if x is None:
        return 'n/a'
    if x >= 10 ** 6:
        return '%.2fM' % (x / 1e6)
    if x >= 10 ** 4:
        return '%.1fk' % (x / 1e3)
    return str(x)


def plot(results, out):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        log('latency: no matplotlib, plot skipped')
        return None
    rows = [r for r in results if r['n']]
    labels = ['%s %s: %s' % (r['scenario'], r['arg'], r['op']) for r in rows]
    ys = list(range(len(rows)))[::-1]
    fig, axes = plt.subplots(1, 3, figsize=(18, 0.38 * len(rows) + 1.8), sharey=True)
    ax = axes[0]
    ax.barh(ys, [r['ns_p50'] for r in rows], color='#4c72b0', label='p50')
    ax.scatter([r['ns_p99'] for r in rows], ys, marker='|', s=120, color='#dd8452', label='p99')
    ax.scatter([r['ns_max'] for r in rows], ys, marker='x', color='#c44e52', label='max')
    ax.set_xscale('log')
    ax.set_xlabel('ns per operation (host, noisy)')
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7)
    ax.legend(fontsize=7, loc='lower right')
    ax = axes[1]
    has = [r for r in rows if r.get('ir_max') is not None]
    if has:
        yy = [ys[rows.index(r)] for r in has]
        ax.barh(yy, [r['ir_p50'] for r in has], color='#55a868', label='p50')
        ax.scatter([r['ir_max'] for r in has], yy, marker='x', color='#c44e52', label='max')
        ax.set_xscale('log')
        ax.legend(fontsize=7, loc='lower right')
    ax.set_xlabel('instructions per operation (callgrind)')
    ax = axes[2]
    ax.barh(ys, [r['worst_ratio'] for r in rows], color='#8172b3')
    ax.axvline(1.0, color='#c44e52', linestyle='--', linewidth=1)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel('worst steps / bound (asserted <= 1)')
    fig.suptitle('spanalloc: cost per operation under adversarial patterns (make latency)')
    fig.tight_layout()
    p = os.path.join(out, 'latency.png')
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=os.path.join(ROOT, 'build', 'latency', 'latency'))
    ap.add_argument('--out', default=os.path.join(ROOT, 'build', 'latency'))
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--no-callgrind', action='store_true')
    ap.add_argument('--only', default='')
    a = ap.parse_args()
    only = set(x for x in a.only.split(',') if x)
    os.makedirs(a.out, exist_ok=True)
    use_cg = not a.quick and not a.no_callgrind
    results, failed = [], []
    for name, arg, what in scenarios(a.bin, a.quick, only):
        rc, rows, err, secs = native(a.bin, name, arg)
        if rc != 0:
            failed.append('%s %d: exit %d: %s' % (name, arg, rc, err))
        cg, cgerr = callgrind(a.bin, name, arg) if use_cg and rc == 0 else (None, None)
        for r in rows:
            ir = (cg or {}).get(r['op']) or []
            r['ir_p50'] = pct(ir, 0.5) if ir else None
            r['ir_p99'] = pct(ir, 0.99) if ir else None
            r['ir_max'] = max(ir) if ir else None
            r['ir_n'] = len(ir)
            r['ir_note'] = cgerr or ''
            r['arg_is'] = what
            results.append(r)
            if r['violations']:
                failed.append('%s %d %s: %d operations over the bound' %
                              (name, arg, r['op'], r['violations']))
        log('latency: %-7s %-5d %d ops in %.1fs%s' % (
            name, arg, sum(r['n'] for r in rows), secs,
            ('; callgrind: ' + cgerr) if cgerr else ''))
    head = ('| scenario | op | n | ns p50 | ns p99 | ns max | cycles max | instr p50 | instr max '
            '| steps max | bound | bound formula |')
    lines = [head, '|' + '---|' * 12]
    for r in results:
        lines.append('| %s %d (%s) | %s | %d | %s | %s | %s | %s | %s | %s | %d | %d | %s |' % (
            r['scenario'], r['arg'], r['arg_is'], r['op'], r['n'], fmt(r['ns_p50']),
            fmt(r['ns_p99']), fmt(r['ns_max']), fmt(r['cycles_max']), fmt(r['ir_p50']),
            fmt(r['ir_max']), r['steps_max'], r['bound_at_worst'], r['bound']))
    table = '\n'.join(lines)
    log(table)
    with open(os.path.join(a.out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    png = plot(results, a.out) if not a.quick else None
    with open(os.path.join(a.out, 'results.md'), 'w') as f:
        f.write('# make latency\n\n')
        f.write('Steps are asserted against the bound (the bound at the worst operation); '
                'ns and cycles are this host\'s (noisy), instructions callgrind\'s.\n\n')
        f.write(table + '\n')
        if png:
            f.write('\n![latency](latency.png)\n')
    if failed:
        for x in failed:
            log('latency: FAIL ' + x)
        sys.exit(1)
    log('latency: every operation within its bound (%d ops kinds)' % len(results))


if __name__ == '__main__':
    main()
