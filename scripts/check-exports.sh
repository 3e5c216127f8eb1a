#!/usr/bin/env bash
# scripts/check-exports.sh FILE PREFIX [LABEL [ROOT]] - FILE (an archive or an
# object) must define as global exactly the public API, PREFIX<name> for
# every function the public headers declare (scripts/symbols.py public),
# and nothing else: no internal function or variable may reach the
# kernel's link.  Its undefined symbols must be memcpy, memmove, memset,
# memcmp and the arch hooks (spanalloc/arch.h) only.  ROOT: the tree whose
# headers say what is public (default: this one).
set -euo pipefail
file=$1 prefix=$2 label=${3:-$1}
here=$(dirname "$0")
root=${4:-$here/..}
public=$(python3 "$here/symbols.py" --root "$root" public | sed "s/^/$prefix/" | sort -u)
hooks=$(python3 "$here/symbols.py" --root "$root" hooks | sort -u)
# nm -g: global and weak symbols, whatever the machine (generic ELF).
defined=$(nm -g --defined-only "$file" | awk 'NF == 3 {print $3}' | sort -u)
undef=$(comm -23 <(nm -u "$file" | awk 'NF == 2 {print $2}' | sort -u) <(echo "$defined"))
extra=$(comm -23 <(echo "$defined") <(echo "$public"))
missing=$(comm -13 <(echo "$defined") <(echo "$public"))
allowed=$(printf '%s\n' memcpy memmove memset memcmp $hooks | sort -u)
bad_undef=$(comm -23 <(echo "$undef" | sed '/^$/d') <(echo "$allowed"))
fail=0
if [ -n "$extra" ]; then
	echo "check-exports: $label: global symbols that are not public API: $(echo $extra)"
	fail=1
fi
if [ -n "$missing" ]; then
	echo "check-exports: $label: public functions not defined: $(echo $missing)"
	fail=1
fi
if [ -n "$bad_undef" ]; then
	echo "check-exports: $label: unexpected undefined symbols: $(echo $bad_undef)"
	fail=1
fi
[ $fail = 0 ] || exit 1
echo "check-exports: $label: exports the $(echo "$public" | wc -l) public functions${prefix:+ (as $prefix*)} and nothing else; undefined: $(echo $undef)"
