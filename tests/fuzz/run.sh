#!/usr/bin/env bash
# tests/fuzz/run.sh - runs the libFuzzer harness (see scripts/hardening.mk).
#
#   run.sh fuzz BIN SECONDS OUTDIR   fuzz for SECONDS: new inputs go to
#                                    OUTDIR/corpus (the committed seeds in
#                                    tests/fuzz/corpus are read too), crashes
#                                    to OUTDIR/crash-*, the log to
#                                    OUTDIR/fuzz.log; prints libFuzzer's
#                                    progress and final statistics
#   run.sh test BIN SECONDS OUTDIR   replay tests/fuzz/regress/*, then a short
#                                    run from the seeds in a fresh corpus
#                                    (OUTDIR/test-corpus; logs OUTDIR/regress.log
#                                    and OUTDIR/test.log)
#
# Exit status: 0, or 1 if any input crashed (the input's path is printed).
# One process, one core (no -jobs/-workers: libFuzzer then fuzzes in this
# process).  FUZZ_ARGS adds libFuzzer flags.
set -uo pipefail
mode=$1 bin=$2 secs=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus
regress=$here/regress
mkdir -p "$out"
log=$out/$mode.log

# libFuzzer flags common to both modes: inputs up to 4 KiB (about a
# thousand operations), 30 s per input at most, no leak check per input
# (the harness itself checks every page comes back).
common=(-max_len=4096 -timeout=30 -rss_limit_mb=2048 -print_final_stats=1
	-detect_leaks=0 -artifact_prefix="$out/")

summary() {
	# The last status line (#N DONE cov: .. ft: .. corp: ..) and the totals.
	grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1
	grep -E '^Done [0-9]+ runs|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log"
}

crashed() { # LOG
	local f
	f=$(grep -oE "Test unit written to [^ ]+" "$1" | tail -1 | sed 's/Test unit written to //')
	[ -n "$f" ] || f=$(grep -E '^Running: ' "$1" | tail -1 | sed 's/^Running: //')
	echo "fuzz: CRASH: input ${f:-?}"
	grep -E '^==== ' "$1" | head -3
	echo "fuzz: replay: FUZZ_TRACE=1 $bin ${f:-<input>}   (full log: $1)"
}

case "$mode" in
fuzz)
	mkdir -p "$out/corpus"
	echo "fuzz: ${secs}s, one process; corpus $out/corpus + seeds $seeds; log $log"
	# The whole output in the log; progress (libFuzzer's pulse lines) here.
	"$bin" "${common[@]}" -max_total_time="$secs" ${FUZZ_ARGS:-} "$out/corpus" "$seeds" 2>&1 |
		tee "$log" | grep --line-buffered -E '^#[0-9]+[[:space:]]+(INITED|pulse)'
	rc=${PIPESTATUS[0]}
	summary
	echo "fuzz: corpus $(ls "$out/corpus" | wc -l) inputs in $out/corpus"
	[ $rc -eq 0 ] || { crashed "$log"; exit 1; }
	;;
test)
	if compgen -G "$regress/*" >/dev/null; then
		echo "test-fuzz: replaying $(ls "$regress" | wc -l) regression inputs from $regress"
		if ! "$bin" "${common[@]}" "$regress"/* >"$out/regress.log" 2>&1; then
			crashed "$out/regress.log"
			exit 1
		fi
	fi
	rm -rf "$out/test-corpus" && mkdir -p "$out/test-corpus"
	echo "test-fuzz: ${secs}s from the seeds in $seeds"
	"$bin" "${common[@]}" -max_total_time="$secs" ${FUZZ_ARGS:-} "$out/test-corpus" "$seeds" >"$log" 2>&1
	rc=$?
	summary
	[ $rc -eq 0 ] || { crashed "$log"; exit 1; }
	echo "test-fuzz: passed"
	;;
*)
	echo "usage: $0 fuzz|test BIN SECONDS OUTDIR" >&2
	exit 2
	;;
esac
