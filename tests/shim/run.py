#!/usr/bin/env python3
"""tests/shim/run.py - the malloc shim against glibc on real programs.

    python3 tests/shim/run.py SHIM.so SELFTEST [--workdir DIR] [--only NAME]

1. The shim's self-tests (tests/shim/selftest.c) under LD_PRELOAD: API
   semantics, growth, more threads than CPU slots, fork; and three bad
   frees, each of which must abort with one line naming the fault.
2. Every program of tests/shim/programs.py twice, with glibc's malloc and
   under LD_PRELOAD=SHIM: exit status, stdout and output files must be
   byte-identical.  Each shim run writes an exit report per process
   (SPANALLOC_SHIM_REPORT) and runs kmem_check() at exit
   (SPANALLOC_SHIM_CHECK=1): the program must really have allocated from
   spanalloc, and every heap it left must be intact.

SHIM_TEST_BREAK=<name> corrupts that program's shim output on purpose: the
run must then fail (checks that the comparison can fail).
"""
import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import programs  # noqa: E402

failures = []


def fail(msg):
    failures.append(msg)
    print(f'  FAIL {msg}')


def read_reports(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            kv = dict(p.split('=', 1) for p in line.split()[1:] if '=' in p)
            out.append(kv)
    return out


def check_reports(name, reports, min_mallocs):
    """The program allocated from spanalloc, and every heap checked clean
    (a fork child whose sibling threads were inside the allocator at the
    fork leaks their caches by design: its counts are not checked)."""
    if not reports:
        fail(f'{name}: no spanalloc exit report: the shim was not loaded')
        return
    total = sum(int(r.get('small_mallocs', 0)) for r in reports)
    if total < min_mallocs:
        fail(f'{name}: only {total} allocations went to spanalloc')
    for r in reports:
        if r.get('slots_dead') == '0' and r.get('check', '0') != '0':
            fail(f'{name}: kmem_check found {r["check"]} problems in {r.get("exe")} pid {r.get("pid")}')
    return total


def run_selftest(shim, selftest, workdir):
    print('shim self-tests')
    rep = os.path.join(workdir, 'selftest-report.txt')
    env = dict(os.environ, LD_PRELOAD=shim, SPANALLOC_SHIM_REPORT=rep, SPANALLOC_SHIM_CHECK='1')
    t0 = time.time()
    p = subprocess.run([selftest, 'all'], env=env, capture_output=True, timeout=300)
    out = p.stdout.decode(errors='replace')
    if p.returncode != 0 or 'selftest: ok' not in out:
        fail(f'selftest all: status {p.returncode}\n{out}{p.stderr.decode(errors="replace")}')
    else:
        print(f'  ok   selftest all ({time.time() - t0:.1f} s)')
    check_reports('selftest', read_reports(rep), 1000)
    want = {'double-free': 'double free at 0x', 'interior': 'interior pointer at 0x',
            'wild': 'wild pointer at 0x'}
    for mode, text in want.items():
        p = subprocess.run([selftest, mode], env=dict(os.environ, LD_PRELOAD=shim),
                           capture_output=True, timeout=60)
        err = p.stderr.decode(errors='replace')
        lines = [l for l in err.splitlines() if l.startswith('spanalloc:')]
        if p.returncode != -signal.SIGABRT or len(lines) != 1 or text not in lines[0]:
            fail(f'selftest {mode}: want SIGABRT and one line with "{text}", '
                 f'got status {p.returncode}, stderr {err!r}')
        else:
            print(f'  ok   selftest {mode}: {lines[0]}')


def run_once(run, cwd, env_extra):
    env = dict(os.environ)
    env.pop('LD_PRELOAD', None)
    env.update(run.get('env', {}))
    env.update(env_extra)
    stdin = open(os.path.join(cwd, run['stdin']), 'rb') if run.get('stdin') else subprocess.DEVNULL
    t0 = time.time()
    try:
        p = subprocess.run(run['argv'], cwd=cwd, env=env, stdin=stdin, capture_output=True,
                           timeout=600)
    finally:
        if stdin is not subprocess.DEVNULL:
            stdin.close()
    files = {}
    for name in run.get('outputs', []):
        path = os.path.join(cwd, name)
        files[name] = open(path, 'rb').read() if os.path.exists(path) else None
    return p, files, time.time() - t0


def digest(b):
    return 'missing' if b is None else f'{len(b)} bytes, sha256 {hashlib.sha256(b).hexdigest()[:16]}'


def compare(name, a, b, what):
    if a == b:
        return True
    fail(f'{name}: {what} differs: glibc {digest(a)}, spanalloc {digest(b)}')
    if a is not None and b is not None:
        la, lb = a.decode(errors='replace').splitlines(), b.decode(errors='replace').splitlines()
        for i, (x, y) in enumerate(zip(la, lb)):
            if x != y:
                print(f'       first difference, line {i + 1}:\n       glibc:     {x[:150]}\n'
                      f'       spanalloc: {y[:150]}')
                break
    return False


def run_programs(shim, workdir, only):
    dirs = {}
    for who in ('glibc', 'spanalloc'):
        d = os.path.join(workdir, who)
        shutil.rmtree(d, ignore_errors=True)
        programs.setup(d)
        dirs[who] = d
    runs = programs.programs(dirs['glibc'])
    if only:
        runs = [r for r in runs if r['name'] in only]
    if len(runs) < 4 and not only:
        fail(f'only {len(runs)} real programs are installed (need 4): run scripts/install-deps.sh shim')
    print(f'real programs, glibc vs spanalloc ({len(runs)})')
    brk = os.environ.get('SHIM_TEST_BREAK', '')
    for run in runs:
        name = run['name']
        rep = os.path.join(workdir, f'report-{name}.txt')
        if os.path.exists(rep):
            os.unlink(rep)
        pa, fa, ta = run_once(run, dirs['glibc'], {})
        pb, fb, tb = run_once(run, dirs['spanalloc'],
                              {'LD_PRELOAD': shim, 'SPANALLOC_SHIM_REPORT': rep,
                               'SPANALLOC_SHIM_CHECK': '1'})
        out_b = pb.stdout + (b'!' if brk == name else b'')
        nfail = len(failures)
        if pa.returncode != 0:
            fail(f'{name}: fails under glibc too (status {pa.returncode}): '
                 f'{pa.stderr.decode(errors="replace")[-500:]}')
        if pa.returncode != pb.returncode:
            fail(f'{name}: exit status glibc {pa.returncode}, spanalloc {pb.returncode}: '
                 f'{pb.stderr.decode(errors="replace")[-500:]}')
        compare(name, pa.stdout, out_b, 'stdout')
        for f in run.get('outputs', []):
            compare(name, fa[f], fb[f], f)
        reports = read_reports(rep)
        total = check_reports(name, reports, 10000)
        if len(failures) == nfail:
            print(f'  ok   {name:11s} identical ({digest(out_b)}'
                  f'{"".join(", " + f + " " + digest(fb[f]) for f in run.get("outputs", []))}); '
                  f'{len(reports)} processes, {total} allocations on spanalloc; '
                  f'glibc {ta:.1f} s, spanalloc {tb:.1f} s')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('shim')
    ap.add_argument('selftest')
    ap.add_argument('--workdir', default='build/shim-test')
    ap.add_argument('--only', nargs='*')
    a = ap.parse_args()
    shim = os.path.abspath(a.shim)
    os.makedirs(a.workdir, exist_ok=True)
    t0 = time.time()
    if not a.only:
        run_selftest(shim, os.path.abspath(a.selftest), a.workdir)
    run_programs(shim, os.path.abspath(a.workdir), a.only)
    if failures:
        print(f'test-shim: {len(failures)} failures ({time.time() - t0:.0f} s)')
        sys.exit(1)
    print(f'test-shim: all passed ({time.time() - t0:.0f} s)')


if __name__ == '__main__':
    main()
