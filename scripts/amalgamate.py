#!/usr/bin/env python3
"""scripts/amalgamate.py - spanalloc as one .h and one .c.

    python3 scripts/amalgamate.py [--root DIR] [--prefix P] OUTDIR

writes OUTDIR/spanalloc.h (include/spanalloc.h with every header under
include/ it includes, then any include/spanalloc/*.h it does not) and
OUTDIR/spanalloc.c (#include "spanalloc.h", then every mm/*.c in name
order, each mm/*.h inlined where first included).  Both compile alone,
freestanding, exactly as the library does.

Only the public API is global in the compiled .c, as in the installed
library: every function and variable that mm/*.c defines without `static`
and that no public header declares (scripts/symbols.py) gets `static` on
its file-scope declarations and definition.  With --prefix P the header
declares P<name> for every public function (scripts/symbols.py header) and
the .c defines them: it turns on the header's SPANALLOC_KERNEL_NAMES
aliases, so mm/'s own code keeps the short names.

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import symbols  # noqa: E402

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


def expand(path, done, out, public_ok, transform):
    """Appends path to out with its quoted includes inlined, each file
    once.  public_ok: headers under include/ may be inlined (the .h);
    otherwise they are the amalgamated header, already included.
    transform(path) gives a file's lines as they go out."""
    done.add(path)
    out.append('#line 1 "%s"\n' % rel(path))
    lines = transform(path)
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
            expand(inc, done, out, public_ok, transform)
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


def file_scope(path):
    """(kind, name, line) of the file-scope functions, variables,
    prototypes and extern declarations in path."""
    r = subprocess.run(
        ["ctags", "-x", "--language-force=C", "--kinds-C=+px",
         "--_xformat=%{kind}\t%{name}\t%{line}\t%{scope}", "-o", "-", path],
        capture_output=True, text=True, check=True)
    out = []
    for line in r.stdout.splitlines():
        kind, name, num, scope = (line.split("\t") + ["", "", ""])[:4]
        if kind in ("function", "variable", "prototype", "externvar") and scope in ("", "-"):
            out.append((kind, name, int(num)))
    return out


def has_static(text, name):
    m = re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(name), text)
    return m is not None and re.search(r"\bstatic\b", text[:m.start()]) is not None


def internal_names(sources, public):
    """Functions and variables some mm/*.c defines without static."""
    names = set()
    for src in sources:
        with open(src) as f:
            lines = f.read().split("\n")
        for kind, name, num in file_scope(src):
            if kind in ("function", "variable") and name not in public \
                    and not has_static(lines[num - 1], name):
                names.add(name)
    return names


def make_static(path, lines, internal):
    """lines with `static` on every file-scope declaration of an internal
    name: one translation unit, so all of them can be, and a declaration
    without it would give the name external linkage."""
    lines = list(lines)
    for kind, name, num in file_scope(path):
        if name not in internal:
            continue
        text = lines[num - 1]
        prev = next((l.strip() for l in reversed(lines[:num - 1]) if l.strip()), "")
        if text[:1].isspace() or not (prev == "" or prev.startswith("#") or
                                      prev.endswith((";", "}", "*/", ")"))):
            sys.exit("amalgamate: %s:%d: cannot make %s static: its declaration does not "
                     "start at the beginning of this line" % (rel(path), num, name))
        if has_static(text, name):
            continue
        lines[num - 1] = ("static " + text[len("extern "):] if text.startswith("extern ")
                          else "static " + text)
    return lines


def main():
    args = sys.argv[1:]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    prefix = ""
    while len(args) > 2 and args[0] in ("--root", "--prefix"):
        if args[0] == "--root":
            root = args[1]
        else:
            prefix = args[1]
        args = args[2:]
    if len(args) != 1:
        sys.exit("usage: amalgamate.py [--root DIR] [--prefix P] OUTDIR")
    set_root(root)
    symbols.check_prefix(prefix)
    outdir = args[0]
    sources = sorted(glob.glob(os.path.join(MM, "*.c")))
    if not sources:
        sys.exit("amalgamate: no mm/*.c")
    check_clashes(sources)
    public = set(symbols.public_names(ROOT))
    internal = internal_names(sources, public)

    def transform(path):
        if path.startswith(INC + os.sep):
            return symbols.header_text(path, public, prefix).splitlines(True)
        with open(path) as f:
            return make_static(path, f.readlines(), internal)

    banner = ("/* Generated by scripts/amalgamate.py from spanalloc's include/ and mm/:\n"
              " * do not edit.  The library in one file; see include/spanalloc.h\n"
              " * (below) for the contract and the README for the porting guide. */\n")
    done = set()
    hdr = [banner]
    expand(os.path.join(INC, "spanalloc.h"), done, hdr, True, transform)
    for extra in sorted(glob.glob(os.path.join(INC, "spanalloc", "*.h"))):
        if extra not in done:
            expand(extra, done, hdr, True, transform)

    src = [banner]
    if prefix:
        src.append("/* Symbol prefix %s: mm/ below uses the short names, which the\n"
                   " * header's aliases map to the prefixed ones it declares. */\n"
                   "#define SPANALLOC_KERNEL_NAMES\n" % prefix)
    src.append('#include "spanalloc.h"\n')
    # Now static, internal functions that only debug builds (or the host
    # tests) call are unused in the others.
    src.append("#pragma GCC diagnostic ignored \"-Wunused-function\"\n")
    for path in sources:
        src.append("\n/* ---- %s ---- */\n" % rel(path))
        expand(path, done, src, False, transform)
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
