#!/usr/bin/env python3
"""scripts/amalgamate.py - spanalloc as one .h and one .c.

    python3 scripts/amalgamate.py [--root DIR] OUTDIR

writes OUTDIR/spanalloc.h (include/spanalloc.h with every header under
include/ it includes, then any include/spanalloc/*.h it does not) and
OUTDIR/spanalloc.c (#include "spanalloc.h", then every mm/*.c in name
order, each mm/*.h inlined where first included).  Both compile alone,
freestanding, exactly as the library does.

Concatenating translation units can change meaning silently: two files'
`static int n;` become one variable, a macro from one file rewrites the
next.  So before writing anything the script lists every file-scope
definition of every mm/*.c with universal-ctags and FAILS LOUDLY if a name
is defined in two files: static or global functions and variables,
typedefs, enumerators and macros (one namespace), struct/union/enum tags
(another).  It also #undefs each file's own macros at its end, so a macro
cannot reach a later file at all.  Rename the clashing definition (or move
it to a shared header) to fix a failure.  --root takes include/ and mm/
from another tree (make test-package uses it to check that a clash fails).
"""
import glob
import os
import re
import subprocess
import sys

ROOT = INC = MM = None


def set_root(root):
    global ROOT, INC, MM
    ROOT = os.path.abspath(root)
    INC = os.path.join(ROOT, "include")
    MM = os.path.join(ROOT, "mm")

QUOTED = re.compile(r'^\s*#\s*include\s+"([^"]+)"')

# ctags kinds (C): d macro, e enumerator, f function, g enum, s struct,
# t typedef, u union, v variable.  Tags live in their own namespace.
TAG_KINDS = {"enum", "struct", "union"}
KINDS = "defgstuv"


def rel(path):
    return os.path.relpath(path, ROOT)


def resolve(name, here):
    """A quoted include: next to the including file, then include/, mm/."""
    for d in (os.path.dirname(here), INC, MM):
        p = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(p):
            return p
    return None


def expand(path, done, out, public_ok):
    """Appends path to out with its quoted includes inlined, each file
    once.  public_ok: headers under include/ may be inlined (the .h);
    otherwise they are the amalgamated header, already included."""
    done.add(path)
    out.append('#line 1 "%s"\n' % rel(path))
    with open(path) as f:
        lines = f.readlines()
    for n, line in enumerate(lines, 1):
        m = QUOTED.match(line)
        if not m:
            out.append(line)
            continue
        inc = resolve(m.group(1), path)
        if inc is None:
            sys.exit("amalgamate: %s:%d: cannot find %s" % (rel(path), n, m.group(1)))
        public = inc.startswith(INC + os.sep)
        if public and not public_ok:
            out.append("/* %s: in spanalloc.h */\n" % line.strip())
        elif inc in done:
            out.append("/* %s: above */\n" % line.strip())
        else:
            expand(inc, done, out, public_ok)
            out.append('#line %d "%s"\n' % (n + 1, rel(path)))


def definitions(path):
    """(namespace, name, kind) of every file-scope definition in path."""
    try:
        r = subprocess.run(
            ["ctags", "-x", "--language-force=C", "--kinds-C=" + KINDS,
             "--_xformat=%{kind}\t%{name}\t%{scope}", "-o", "-", path],
            capture_output=True, text=True, check=True)
    except FileNotFoundError:
        sys.exit("amalgamate: ctags not found (Debian: apt-get install universal-ctags)")
    except subprocess.CalledProcessError as e:
        sys.exit("amalgamate: ctags failed on %s: %s" % (rel(path), e.stderr.strip()))
    defs = set()
    for line in r.stdout.splitlines():
        kind, name, scope = (line.split("\t") + ["", ""])[:3]
        if name.startswith("__anon") or (scope and scope != "-" and kind != "enumerator"):
            continue  # members of something, not file scope
        ns = "tag" if kind in TAG_KINDS else ("macro" if kind == "macro" else "name")
        defs.add((ns, name, kind))
    return defs


def check_clashes(sources):
    seen = {}  # (namespace, name) -> [(file, kind)]
    for src in sources:
        for ns, name, kind in sorted(definitions(src)):
            seen.setdefault((ns, name), []).append((rel(src), kind))
    # A macro also clashes with an ordinary name of another file: it would
    # rewrite it in every file after its own.
    macros = {name for (ns, name) in seen if ns == "macro"}
    clashes = []
    # A .c redefining a header's macro would lose it for every later file
    # at its #undef.
    headers = glob.glob(os.path.join(MM, "*.h")) + glob.glob(os.path.join(INC, "**", "*.h"),
                                                              recursive=True)
    for h in sorted(headers):
        for ns, name, kind in sorted(definitions(h)):
            if ns == "macro" and name in macros:
                where = seen[("macro", name)] + [(rel(h), kind)]
                clashes.append("  %s: %s" % (name, ", ".join("%s (%s)" % w for w in where)))
    for (ns, name), where in sorted(seen.items()):
        files = {f for f, _ in where}
        if ns == "name" and name in macros:
            where = where + seen[("macro", name)]
            files |= {f for f, _ in seen[("macro", name)]}
        if len(files) > 1:
            clashes.append("  %s: %s" % (name, ", ".join("%s (%s)" % w for w in where)))
    if clashes:
        sys.exit("amalgamate: FAILED: names defined in more than one mm/*.c would clash "
                 "in one translation unit:\n" + "\n".join(clashes) +
                 "\nrename one of each (or move it to a shared header).")


def main():
    args = sys.argv[1:]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    if len(args) == 3 and args[0] == "--root":
        root, args = args[1], args[2:]
    if len(args) != 1:
        sys.exit("usage: amalgamate.py [--root DIR] OUTDIR")
    set_root(root)
    outdir = args[0]
    sources = sorted(glob.glob(os.path.join(MM, "*.c")))
    if not sources:
        sys.exit("amalgamate: no mm/*.c")
    check_clashes(sources)

    banner = ("/* Generated by scripts/amalgamate.py from spanalloc's include/ and mm/:\n"
              " * do not edit.  The library in one file; see include/spanalloc.h\n"
              " * (below) for the contract and the README for the porting guide. */\n")
    done = set()
    hdr = [banner]
    expand(os.path.join(INC, "spanalloc.h"), done, hdr, True)
    for extra in sorted(glob.glob(os.path.join(INC, "spanalloc", "*.h"))):
        if extra not in done:
            expand(extra, done, hdr, True)

    src = [banner, '#include "spanalloc.h"\n']
    for path in sources:
        src.append("\n/* ---- %s ---- */\n" % rel(path))
        expand(path, done, src, False)
        own = sorted(name for ns, name, _ in definitions(path) if ns == "macro")
        if own:
            src.append("/* %s's own macros end here */\n" % rel(path))
            src.extend("#undef %s\n" % m for m in own)

    os.makedirs(outdir, exist_ok=True)
    for name, text in (("spanalloc.h", hdr), ("spanalloc.c", src)):
        with open(os.path.join(outdir, name), "w") as f:
            f.write("".join(text))
    print("amalgamate: %s/spanalloc.h (%d files), %s/spanalloc.c (%d mm/*.c)"
          % (outdir, sum(1 for p in done if p.startswith(INC + os.sep)), outdir, len(sources)))


if __name__ == "__main__":
    main()
