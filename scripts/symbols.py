#!/usr/bin/env python3
"""scripts/symbols.py - spanalloc's link names, read from its public headers.

    symbols.py [--root DIR] public          the functions (and objects) the
                                            library exports, one per line
    symbols.py [--root DIR] hooks           the arch hooks a kernel provides
    symbols.py [--root DIR] redefine P      "name Pname" lines for
                                            objcopy --redefine-syms
    symbols.py [--root DIR] header P IN OUT IN as installed with symbol
                                            prefix P (P empty: a copy)

The public API is every prototype (and extern object) at file scope in
include/spanalloc.h and include/spanalloc/*.h except spanalloc/arch.h,
whose prototypes are the hooks: symbols the kernel defines and the library
only calls.  Nothing here is a list kept by hand: a function added to a
public header is exported, prefixed and checked from the next build on.

With a prefix P, a header is rewritten so that every public name in it, in
code and comments alike, reads Pname, and it ends with

    #ifdef SPANALLOC_KERNEL_NAMES
    #define kmalloc sa_kmalloc ...
    #endif

so that a file that does not see the kernel's own kmalloc may still use
the short names.  The hooks keep their names (see the README's "If your
kernel already has kmalloc/kfree").
"""
import glob
import os
import re
import subprocess
import sys

HOOKS_HEADER = os.path.join("spanalloc", "arch.h")


def ctags(paths):
    """(kind, name, scope) of the tags in paths."""
    try:
        r = subprocess.run(
            ["ctags", "-x", "--language-force=C", "--kinds-C=+px",
             "--_xformat=%{kind}\t%{name}\t%{scope}", "-o", "-"] + list(paths),
            capture_output=True, text=True, check=True)
    except FileNotFoundError:
        sys.exit("symbols: ctags not found (Debian: apt-get install universal-ctags)")
    except subprocess.CalledProcessError as e:
        sys.exit("symbols: ctags failed: %s" % e.stderr.strip())
    tags = []
    for line in r.stdout.splitlines():
        kind, name, scope = (line.split("\t") + ["", ""])[:3]
        tags.append((kind, name, "" if scope == "-" else scope))
    return tags


def public_headers(root):
    inc = os.path.join(root, "include")
    hdrs = [os.path.join(inc, "spanalloc.h")] + sorted(glob.glob(os.path.join(inc, "spanalloc", "*.h")))
    return [h for h in hdrs if not h.endswith(os.sep + HOOKS_HEADER)]


def declared(paths):
    """Names of the file-scope prototypes and extern objects in paths."""
    return sorted({name for kind, name, scope in ctags(paths)
                   if kind in ("prototype", "externvar") and not scope})


def public_names(root):
    names = declared(public_headers(root))
    if not names:
        sys.exit("symbols: no public function found in %s/include" % root)
    # A public name that is also a member, tag, typedef or macro of a
    # public header would be renamed there too: refuse it.
    other = {name: kind for kind, name, scope in ctags(public_headers(root))
             if kind not in ("prototype", "externvar", "function")}
    bad = sorted(n for n in names if n in other)
    if bad:
        sys.exit("symbols: public names also used as another kind of name in the headers "
                 "(a prefix would rename both): "
                 + ", ".join("%s (%s)" % (n, other[n]) for n in bad))
    return names


def hook_names(root):
    return declared([os.path.join(root, "include", HOOKS_HEADER)])


def check_prefix(prefix):
    if prefix and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        sys.exit("symbols: SYMBOL_PREFIX '%s' is not the start of a C identifier" % prefix)


def rewrite(text, names, prefix):
    """text with every public name (a whole identifier) prefixed."""
    if not prefix:
        return text
    word = re.compile(r"(?<![A-Za-z0-9_])(%s)(?![A-Za-z0-9_])"
                      % "|".join(sorted(names, key=len, reverse=True)))
    return word.sub(lambda m: prefix + m.group(1), text)


def alias_block(own, prefix):
    """The optional short names for the names one header declares."""
    lines = ["/* Installed with symbol prefix %s: the library defines %s<name> for\n"
             " * every function above.  A file that does not see the kernel's own\n"
             " * allocator may #define SPANALLOC_KERNEL_NAMES before including this\n"
             " * header to call them by their short names. */\n" % (prefix, prefix),
             "#ifdef SPANALLOC_KERNEL_NAMES\n"]
    lines += ["#define %s %s%s\n" % (n, prefix, n) for n in own]
    lines.append("#endif\n")
    return "".join(lines)


def header_text(path, names, prefix):
    """The header at path as installed with this prefix."""
    with open(path) as f:
        text = f.read()
    if not prefix:
        return text
    own = [n for n in declared([path]) if n in names]
    text = rewrite(text, names, prefix)
    if own:
        # Before the include guard's #endif, the file's last line.
        lines = text.rstrip("\n").split("\n")
        if not lines[-1].startswith("#endif"):
            sys.exit("symbols: %s does not end with its include guard's #endif" % path)
        lines[-1:] = [alias_block(own, prefix), lines[-1]]
        text = "\n".join(lines) + "\n"
    return text


def main():
    args = sys.argv[1:]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    if len(args) >= 2 and args[0] == "--root":
        root, args = args[1], args[2:]
    cmd = args[0] if args else ""
    if cmd == "public" and len(args) == 1:
        print("\n".join(public_names(root)))
    elif cmd == "hooks" and len(args) == 1:
        print("\n".join(hook_names(root)))
    elif cmd == "redefine" and len(args) == 2:
        check_prefix(args[1])
        print("\n".join("%s %s%s" % (n, args[1], n) for n in public_names(root)))
    elif cmd == "header" and len(args) == 4:
        check_prefix(args[1])
        text = header_text(args[2], public_names(root), args[1])
        with open(args[3], "w") as f:
            f.write(text)
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
