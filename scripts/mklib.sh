#!/usr/bin/env bash
# scripts/mklib.sh OUT.a PREFIX CC OBJ... - the static library as installed.
#
# The objects are linked into one relocatable object (ld -r), so that the
# calls between them are resolved inside it; then every global it defines
# that is not public API (scripts/symbols.py: the prototypes of the public
# headers) is made local, and the public ones are renamed PREFIX<name> when
# a prefix is given.  A kernel linking the archive sees only the public
# functions, under the names the installed header declares; lock_acquire,
# mheap_ and the other internals cannot clash with its own symbols.  The
# binutils are the compiler's own (CC -print-prog-name), so a cross
# compiler brings the matching ld, objcopy and ar.
set -euo pipefail
out=$1 prefix=$2 cc=$3
shift 3
here=$(dirname "$0")
tool() { $cc -print-prog-name="$1"; }
tmp=$out.d
rm -rf "$tmp" && mkdir -p "$tmp"
python3 "$here/symbols.py" public > "$tmp/public"
python3 "$here/symbols.py" redefine "$prefix" > "$tmp/redefine"
"$(tool ld)" -r -o "$tmp/all.o" "$@"
# Undefined symbols (memcpy.., the arch hooks) stay global whatever the list.
"$(tool objcopy)" --keep-global-symbols="$tmp/public" "$tmp/all.o" "$tmp/local.o"
if [ -n "$prefix" ]; then
	"$(tool objcopy)" --redefine-syms="$tmp/redefine" "$tmp/local.o" "$tmp/spanalloc.o"
else
	mv "$tmp/local.o" "$tmp/spanalloc.o"
fi
rm -f "$out"
"$(tool ar)" rcs "$out" "$tmp/spanalloc.o"
rm -rf "$tmp"
