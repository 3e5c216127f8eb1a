#!/usr/bin/env bash
# Runs test binaries, each under a timeout; prints one summary line.
set -u
pass=0 fail=0 failed=()
for t in "$@"; do
	echo "== $t"
	if timeout 600 "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$t"); fi
done
echo "binaries: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
