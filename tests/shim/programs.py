"""tests/shim/programs.py - real programs from Debian packages, run the same
way under glibc's malloc and under other allocators (LD_PRELOAD).

Used by tests/shim/run.py (output must be byte-identical to glibc's) and by
tests/bench/run.py (workload (f): wall time and peak RSS).

setup(workdir) writes every input deterministically; programs(workdir)
returns the list of runs.  A run's result is its exit status, its stdout
and the files it lists under "outputs", all compared byte for byte.
"""
import os
import random
import shutil

SEED = 20240601


def _gen_c(path, nfuncs=250):
    """A C file with many functions, structs and switch statements: cc1
    builds big trees, RTL and hash tables for it."""
    r = random.Random(SEED)
    out = ['#include <stddef.h>', '#include <string.h>', '']
    for i in range(nfuncs):
        nf = r.randint(2, 8)
        fields = ''.join(f'  long f{j}; int g{j}[{r.randint(1, 9)}];\n' for j in range(nf))
        out.append(f'struct s{i} {{\n{fields}}};')
        body = []
        body.append(f'  long acc = {r.randint(0, 1000)};')
        body.append(f'  for (int k = 0; k < n; k++) {{')
        body.append(f'    switch ((k * {r.randint(3, 97)} + {i}) % 7) {{')
        for c in range(7):
            j = r.randrange(nf)
            body.append(f'    case {c}: acc += p[k].f{j} * {r.randint(1, 50)} + p[k].g{j}[0]; break;')
        body.append('    }')
        body.append(f'    if (acc > {r.randint(10000, 99999)}) acc ^= (acc >> {r.randint(1, 7)});')
        body.append('  }')
        if i > 0:
            body.append(f'  acc += fn{r.randrange(i)}(NULL, 0);')
        body.append('  return acc;')
        out.append(f'long fn{i}(struct s{i} *p, int n) {{\n' + '\n'.join(body) + '\n}\n')
    with open(path, 'w') as f:
        f.write('\n'.join(out))


def _gen_sql(path, rows=30000):
    r = random.Random(SEED + 1)
    words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'iota', 'kappa']
    lines = [
        'CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, blob TEXT);',
        'CREATE TABLE u(k INTEGER, note TEXT);',
        'BEGIN;',
    ]
    for i in range(rows):
        name = r.choice(words) + str(r.randint(0, 999))
        blob = ''.join(r.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(r.randint(5, 120)))
        lines.append(f"INSERT INTO t VALUES({i}, '{name}', {r.randint(0, 99)}, {r.random() * 1000:.4f}, '{blob}');")
        if i % 3 == 0:
            lines.append(f"INSERT INTO u VALUES({r.randint(0, rows)}, '{r.choice(words)}');")
    lines += [
        'COMMIT;',
        'CREATE INDEX t_name ON t(name);',
        'CREATE INDEX u_k ON u(k);',
        'SELECT grp, count(*), printf("%.3f", sum(val)), max(length(blob)) FROM t GROUP BY grp ORDER BY grp;',
        'SELECT t.name, count(u.note) FROM t JOIN u ON u.k = t.id GROUP BY t.name ORDER BY 2 DESC, 1 LIMIT 40;',
        "SELECT substr(group_concat(name, ','), 1, 200) FROM (SELECT name FROM t WHERE name LIKE 'ka%' ORDER BY name);",
        'UPDATE t SET blob = upper(blob) || blob WHERE grp % 5 = 0;',
        'DELETE FROM t WHERE grp % 7 = 0;',
        'SELECT count(*), printf("%.3f", avg(val)), sum(length(blob)) FROM t;',
        'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) '
        "SELECT count(*), sum(length(printf('%d-%s', x, hex(x)))) FROM c;",
        'VACUUM;',
        'PRAGMA integrity_check;',
    ]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def _gen_text(path, rows=200000):
    r = random.Random(SEED + 2)
    cities = ['Lyon', 'Oslo', 'Lima', 'Pune', 'Kobe', 'Graz', 'Cork', 'Brno', 'Turku', 'Leeds', 'Perth']
    with open(path, 'w') as f:
        for i in range(rows):
            f.write(f'{r.randint(0, 10**6)},{r.choice(cities)}{r.randint(0, 50)},'
                    f'{r.randint(1, 999)},{"x" * r.randint(0, 30)}\n')


PY_SCRIPT = r'''
import hashlib, json, collections, re, threading, subprocess, sys
h = hashlib.sha256()
d = {}
for i in range(300000):
    d['k%d' % i] = [i, str(i) * (i % 7), {'v': i * 3}]
lst = sorted(d.items(), key=lambda kv: (len(kv[1][1]), kv[0]))
h.update(json.dumps(lst[:20000]).encode())
c = collections.Counter(re.findall(r'\w+', open('text.csv').read()))
h.update(repr(c.most_common(200)).encode())
big = [bytes(range(i % 256)) * (i % 50) for i in range(40000)]
h.update(b''.join(big[::97]))
del d, lst, big
res = []
def work(k):
    s = {i: str(i) * k for i in range(20000)}
    res.append((k, sum(len(v) for v in s.values())))
ts = [threading.Thread(target=work, args=(k,)) for k in range(1, 9)]
for t in ts: t.start()
for t in ts: t.join()
h.update(repr(sorted(res)).encode())
out = subprocess.run([sys.executable, '-c', 'print(sum(range(10**6)))'], capture_output=True).stdout
h.update(out)
print(len(c), sorted(res)[:3], out.strip().decode())
print(h.hexdigest())
'''

PERL_SCRIPT = r'''
use strict; use warnings;
use Digest::MD5 qw(md5_hex);
my %h; my @a;
open(my $f, '<', 'text.csv') or die;
while (my $l = <$f>) {
    chomp $l; my @c = split /,/, $l;
    $h{$c[1]} += $c[2]; push @a, [$c[0], $c[1], length($c[3])];
}
close $f;
my @s = sort { $a->[0] <=> $b->[0] or $a->[1] cmp $b->[1] } @a;
my $ctx = Digest::MD5->new;
$ctx->add(join(';', map { "$_->[0]:$_->[1]:$_->[2]" } @s[0..50000]));
my %w; $w{join('', reverse split //, $_)} = $h{$_} for keys %h;
$ctx->add(join(',', map { "$_=$w{$_}" } sort keys %w));
my $str = ''; $str .= chr(65 + $_ % 26) x ($_ % 40) for 1..60000;
(my $t = $str) =~ s/(A+)B/lc($1)/ge;
$ctx->add($t);
print scalar(keys %h), " ", scalar(@a), "\n", $ctx->hexdigest, "\n";
'''

GIT_SCRIPT = r'''
set -e
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org
export GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
export GIT_CONFIG_NOSYSTEM=1 HOME=$PWD
rm -rf repo && mkdir repo && cd repo
git init -q -b main .
git config pack.threads 1
for i in 1 2 3; do
  tail -n +$((i * 3000)) ../text.csv | head -n $((i * 50000)) | split -l $((1000 + i * 300)) - part_
  cp ../big.c big$i.c
  git add -A && git commit -qm "round $i"
done
git repack -adq
git rev-parse HEAD
git log --stat --format='%H %s' | head -400
git cat-file -p HEAD
git diff --stat HEAD~2 HEAD | tail -3
git grep -c Lyon1 | head -20
git fsck --no-progress 2>&1
'''

# Bignum factoring, as mimalloc-bench's cfrac: Pollard's rho in GNU bc,
# whose numbers are malloc'd digit strings: 15 million allocations of 17 B
# on average (valgrind).  The first number has three 30-bit prime factors,
# the second a 27-bit one beside 2^127 - 1.
BC_SCRIPT = r'''
define g(a, b) {
	auto t
	while (b) { t = b; b = a % b; a = t }
	return (a)
}
define rho(n, c) {
	auto x, y, d
	x = 2; y = 2; d = 1
	while (d == 1) {
		x = (x * x + c) % n
		y = (y * y + c) % n
		y = (y * y + c) % n
		if (x > y) d = g(x - y, n) else d = g(y - x, n)
	}
	return (d)
}
define show(n) {
	auto f
	f = rho(n, 1)
	print n, " = ", f, " * ", n / f, "\n"
	return (0)
}
z = show(1000000007 * 998244353 * 1000000009)
z = show(99999989 * (2 ^ 127 - 1))
halt
'''

TEXT_SCRIPT = r'''
set -e
sort -t, -k2,2 -k1,1n text.csv > sorted.csv
AWK -F, '{ s[$2] += $3; n[$2]++ } END { for (k in s) printf "%s %d %d\n", k, s[k], n[k] }' sorted.csv | sort > sums.txt
sed -e 's/,x*$//' -e 's/\([0-9]*\),\([A-Za-z]*\)\([0-9]*\)/\3:\2:\1/' sorted.csv | sort -u | md5sum
grep -cE '^[0-9]+,(Lyon|Oslo)[0-9]*,9' sorted.csv
tr , ' ' < sorted.csv | sort -k3,3n -k1,1n | uniq -c -f3 | tail -5
md5sum sorted.csv sums.txt
'''


def setup(workdir):
    os.makedirs(workdir, exist_ok=True)
    _gen_c(os.path.join(workdir, 'big.c'))
    _gen_sql(os.path.join(workdir, 'work.sql'))
    _gen_text(os.path.join(workdir, 'text.csv'))
    awk = shutil.which('gawk') or shutil.which('awk')
    scripts = {
        'work.py': PY_SCRIPT,
        'work.pl': PERL_SCRIPT,
        'git.sh': GIT_SCRIPT,
        'text.sh': TEXT_SCRIPT.replace('AWK', awk),
        'rho.bc': BC_SCRIPT,
    }
    for name, text in scripts.items():
        with open(os.path.join(workdir, name), 'w') as f:
            f.write(text)


def programs(workdir):
    """Runs: name, argv, extra env, stdin file, output files to compare.
    Only programs that are installed are returned."""
    runs = [
        dict(name='python3', argv=['/usr/bin/python3', 'work.py'],
             env={'PYTHONMALLOC': 'malloc', 'PYTHONHASHSEED': '0'}),
        dict(name='sqlite3', argv=['/usr/bin/sqlite3', ':memory:'], stdin='work.sql'),
        dict(name='gcc', argv=['/usr/bin/gcc', '-O2', '-S', '-o', 'big.s', 'big.c'],
             outputs=['big.s']),
        dict(name='perl', argv=['/usr/bin/perl', 'work.pl'],
             env={'PERL_HASH_SEED': '0', 'PERL_PERTURB_KEYS': '0'}),
        dict(name='text-tools', argv=['/bin/bash', 'text.sh'], env={'LC_ALL': 'C'},
             outputs=['sorted.csv', 'sums.txt']),
        dict(name='git', argv=['/bin/bash', 'git.sh'], env={'LC_ALL': 'C'}),
        dict(name='bc', argv=['/usr/bin/bc', '-q', 'rho.bc'], env={'BC_LINE_LENGTH': '0'}),
    ]
    need = {'python3': '/usr/bin/python3', 'sqlite3': '/usr/bin/sqlite3', 'gcc': '/usr/bin/gcc',
            'perl': '/usr/bin/perl', 'git': '/usr/bin/git', 'text-tools': '/usr/bin/sort',
            'bc': '/usr/bin/bc'}
    return [r for r in runs if os.path.exists(need[r['name']])]
