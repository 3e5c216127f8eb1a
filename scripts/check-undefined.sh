#!/usr/bin/env bash
# Checks a static library's external undefined symbols (undefined in some
# member and defined in none) are only memcpy/memmove/memset/memcmp and
# arch_* hooks.
set -euo pipefail
lib=$1 label=${2:-$1}
undef=$(nm -u "$lib" | awk 'NF==2{print $2}' | sort -u)
defined=$(nm --defined-only "$lib" | awk 'NF==3{print $3}' | sort -u)
ext=$(comm -23 <(echo "$undef") <(echo "$defined"))
bad=$(echo "$ext" | grep -Ev '^(memcpy|memmove|memset|memcmp|arch_[a-z_]+)$' || true)
if [ -n "$bad" ]; then
	echo "check-lib: $label: unexpected undefined symbols: $(echo $bad)"
	exit 1
fi
echo "check-lib: $label ok, undefined: $(echo $ext)"
