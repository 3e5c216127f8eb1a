#!/usr/bin/env bash
# scripts/test-namespace.sh - make test-namespace (scripts/package.mk gives
# the per-arch settings in the environment: CC_<arch>, KFLAGS_<arch>,
# MACHINE_<arch>, LINK_<arch>, CLANG_TARGET_<arch>; ARCHES, CLANG, MAKE,
# OUT, BUILD, WARN).
#
# For every arch: make install SYMBOL_PREFIX=sa_ with that arch's compiler;
# the archive must be for that machine (readelf -h), its .pc must say so,
# it must export the public API only (scripts/check-exports.sh) and, for
# the kernel arches, use no FP/SIMD register.  Then tests/outoftree/
# kernel.c, a kernel with its own kmalloc and kfree, is built with gcc and
# clang from the installed files and from the amalgamation (make
# amalgamation SYMBOL_PREFIX=sa_): run on the host, linked with
# tests/outoftree/kernel.ld at kernel addresses for the others.  Then what
# must fail does: the export check on planted globals, the FP check on a
# build without -mgeneral-regs-only, kernel.c without the prefix, a wrong
# or missing cross compiler, and each link error the porting guide's
# "first hour" quotes (the README must quote the linker's exact words).
set -euo pipefail
P=sa_
SRC=$PWD/tests/outoftree
rm -rf "$OUT" && mkdir -p "$OUT"
say() { echo "test-namespace: $*"; }
die() { echo "test-namespace: FAIL: $*"; exit 1; }
var() { eval "printf '%s' \"\${$1_$2:-}\""; }
machine() { readelf -h "$1" | sed -n 's/^ *Machine: *//p' | head -n 1; }
# Runs a command quietly; on failure shows its output and stops.
run() {
	"$@" > "$OUT/cmd.log" 2>&1 || { cat "$OUT/cmd.log"; die "failed: $*"; }
}
# must_fail MESSAGE WHAT CMD...: CMD fails and says MESSAGE.
must_fail() {
	local msg=$1 what=$2
	shift 2
	if "$@" > "$OUT/cmd.log" 2>&1; then die "$what: succeeded"; fi
	grep -qF -- "$msg" "$OUT/cmd.log" || { cat "$OUT/cmd.log"; die "$what: failed without '$msg'"; }
	say "$what: fails as it should ('$msg')"
}
# The compiler of kind gcc|clang for an arch, as a command line.
compiler() {
	local t
	t=$(var CLANG_TARGET "$2")
	if [ "$1" = gcc ]; then var CC "$2"; else printf '%s' "$CLANG${t:+ --target=$t}"; fi
}
# Freestanding flags for compiler "$1" and arch $2: the library's own.
free_flags() {
	echo "-std=c11 $WARN -O2 -ffreestanding -nostdinc -isystem $($1 -print-file-name=include)" \
	     "-fno-builtin -fno-stack-protector $(var KFLAGS "$2")"
}

# no_fp FILE ARCH: no FP/SIMD register or instruction in FILE's code;
# prints the first hits.  Lines are "mnemonic<TAB>operands"; branch and
# address targets (bare hex on aarch64 and riscv64) are left out.
no_fp() {
	local re
	case $2 in
	x86_64) re='%([xyz]mm[0-9]|st\b|st\(|mm[0-7])' ;;
	aarch64) re='^[a-z0-9.]+'$'\t''(.*[ ,{[])?([qdsbh][0-9]+|v[0-9]+\.[0-9]*[bhsdq])([ ,}]|\]|$)' ;;
	riscv64) re='^(c\.)?f[a-z]' ;; # FP instructions all start with f (fence does not count)
	*) return 0 ;;
	esac
	local hits
	hits=$("$($(var CC "$2") -print-prog-name=objdump)" -d --no-show-raw-insn "$1" |
		awk -F'\t' '/^ *[0-9a-f]+:\t/ && NF >= 2 {
			m = $2; op = $3
			if (NF == 2 && (i = index(m, " "))) { op = substr(m, i + 1); m = substr(m, 1, i - 1) }
			if (op ~ /</) { sub(/<.*/, "", op); sub(/[0-9a-f]+ *$/, "", op) }
			sub(/[#\/].*/, "", op); gsub(/ +$/, "", m); print m "\t" op}' |
		grep -Ev '^(b|bl|b\.[a-z]+|cbn?z|tbn?z|adrp?|fence(\.i|\.tso)?)'$'\t' | { grep -E "$re" || true; })
	[ -z "$hits" ] || { echo "$hits" | head -n 3; return 1; }
}

# kernel_build ARCH gcc|clang FROM INCLUDES LINKWITH...: kernel.c and
# kernel_aliases.c compiled with INCLUDES and linked with LINKWITH (the
# installed archive's -L/-l, or the amalgamation's object): run on the host,
# for the others linked at every address of LINK_<arch>.
kernel_build() {
	local a=$1 kind=$2 from=$3 inc=$4
	shift 4
	local cc dir
	cc=$(compiler "$kind" "$a")
	dir=$OUT/$a/kernel-$from-$kind
	mkdir -p "$dir"
	if [ "$a" = host ]; then
		run $cc -std=c11 $WARN -O2 -DKERNEL_HOSTED $inc "$SRC/kernel.c" "$SRC/kernel_aliases.c" \
			"$@" -Wl,--gc-sections -o "$dir/kernel"
		"$dir/kernel" > "$dir/out" 2>&1 || { cat "$dir/out"; die "$dir/kernel failed"; }
		[ "$(tail -n 1 "$dir/out")" = "kernel: PASS" ] || { cat "$dir/out"; die "$dir/kernel: no PASS"; }
		say "host $from $kind: kernel.c with its own kmalloc/kfree + sa_*: $(tail -n 1 "$dir/out")"
		return
	fi
	local ld base extra elf addrs
	ld=$(var CC "$a")
	for spec in $(var LINK "$a"); do
		base=${spec%%:*}
		extra=$(echo "${spec#*:}" | tr , ' ')
		run $cc $(free_flags "$cc" "$a") $extra $inc -c "$SRC/kernel.c" -o "$dir/kernel-$base.o"
		run $cc $(free_flags "$cc" "$a") $extra $inc -c "$SRC/kernel_aliases.c" -o "$dir/aliases-$base.o"
		elf=$dir/kernel-$base.elf
		run $ld -nostdlib -static -no-pie -T "$SRC/kernel.ld" -Wl,--defsym=KERNEL_BASE=0x$base \
			-Wl,--no-warn-rwx-segments "$dir/kernel-$base.o" "$dir/aliases-$base.o" "$@" -o "$elf"
		[ "$(machine "$elf")" = "$(var MACHINE "$a")" ] || die "$elf is $(machine "$elf")"
		# Both allocators, each under its own name, linked where asked.
		addrs=$(nm "$elf" | awk '$2 == "T" && ($3 == "kmalloc" || $3 == "sa_kmalloc") {print $1}')
		[ "$(echo "$addrs" | wc -w)" = 2 ] || die "$elf: kmalloc and sa_kmalloc not both defined"
		for x in $addrs; do
			printf '%s\n%s\n' "$base" "$x" | LC_ALL=C sort -C || die "$elf: $x below 0x$base"
		done
	done
	say "$a $from $kind: kernel.c linked at$(for s in $(var LINK "$a"); do printf ' 0x%s' "${s%%:*}"; done) ($(machine "$elf"))"
}

# ---------------------------------------------------------------------------
# Installs, one per arch.
for a in $ARCHES; do
	pre=$OUT/$a/prefix
	mkdir -p "$OUT/$a"
	run $MAKE -s --no-print-directory install ARCH=$a CC="$(var CC "$a")" PREFIX="$pre" SYMBOL_PREFIX=$P
	lib=$pre/lib/libspanalloc.a
	m=$(machine "$lib")
	[ "$m" = "$(var MACHINE "$a")" ] || die "ARCH=$a installed a library for '$m'"
	pc() { PKG_CONFIG_PATH=$pre/lib/pkgconfig pkg-config "$@" spanalloc; }
	[ "$(pc --variable=arch)" = "$a" ] && [ "$(pc --variable=machine)" = "$m" ] &&
		[ "$(pc --variable=symbol_prefix)" = $P ] || die "ARCH=$a: spanalloc.pc says $(cat "$pre/lib/pkgconfig/spanalloc.pc")"
	run bash scripts/check-exports.sh "$lib" $P "ARCH=$a"
	say "ARCH=$a: readelf -h: $m; spanalloc.pc: arch=$(pc --variable=arch) target=$(pc --variable=target) kernel_cflags='$(pc --variable=kernel_cflags)'; $(sed 's/^check-exports: [^:]*: //' "$OUT/cmd.log")"
	hits=$(no_fp "$lib" "$a") || die "ARCH=$a: FP/SIMD registers in libspanalloc.a: $hits"
	for kind in gcc clang; do
		kernel_build "$a" $kind installed "$(pc --cflags)" $(pc --libs)
	done
done

# CC may be another compiler for the arch: clang for riscv64 (the arch of
# the issue), with the binutils it finds for its target.
pre=$OUT/riscv64/prefix-clang
run $MAKE -s --no-print-directory install ARCH=riscv64 CC="$(compiler clang riscv64)" PREFIX="$pre" \
	SYMBOL_PREFIX=$P BUILD="$OUT/build-clang"
[ "$(machine "$pre/lib/libspanalloc.a")" = "$(var MACHINE riscv64)" ] || die "CC=clang riscv64: wrong machine"
run bash scripts/check-exports.sh "$pre/lib/libspanalloc.a" $P "ARCH=riscv64 CC=clang"
hits=$(no_fp "$pre/lib/libspanalloc.a" riscv64) || die "ARCH=riscv64 CC=clang: FP registers: $hits"
kernel_build riscv64 gcc installed-by-clang "-I$pre/include" -L"$pre/lib" -lspanalloc

# The amalgamation, prefixed, compiled per arch with the library's flags.
run $MAKE -s --no-print-directory amalgamation SYMBOL_PREFIX=$P
am=$BUILD/amalgamation-$P
for a in $ARCHES; do
	for kind in gcc clang; do
		cc=$(compiler $kind "$a")
		obj=$OUT/$a/amalgamation-$kind.o
		run $cc $(free_flags "$cc" "$a") -c "$am/spanalloc.c" -o "$obj"
		run bash scripts/check-exports.sh "$obj" $P "amalgamation $a $kind"
		hits=$(no_fp "$obj" "$a") || die "amalgamation $a $kind: FP/SIMD registers: $hits"
		kernel_build "$a" $kind amalgamation "-I$am" "$obj"
	done
done
say "amalgamation: exports only sa_* public functions, for every arch, gcc and clang"

# ---------------------------------------------------------------------------
# What must fail.

# The export check on an internal made global again, in the archive (as if
# the localisation had missed it) and in the amalgamation (a new global).
cp "$OUT/host/prefix/lib/libspanalloc.a" "$OUT/planted.a"
run objcopy --globalize-symbol=lock_acquire "$OUT/planted.a"
must_fail "not public API: lock_acquire" "check-exports on an archive exporting lock_acquire" \
	bash scripts/check-exports.sh "$OUT/planted.a" $P planted
{ cat "$am/spanalloc.c"; echo "int zz_planted_global = 1;"; } > "$OUT/planted.c"
run gcc $(free_flags gcc host) -I"$am" -c "$OUT/planted.c" -o "$OUT/planted.o"
must_fail "not public API: zz_planted_global" "check-exports on an amalgamation with a planted global" \
	bash scripts/check-exports.sh "$OUT/planted.o" $P planted

# The FP check on code built without -mgeneral-regs-only.
for a in x86_64 aarch64; do
	cc=$(var CC $a)
	run $cc $(free_flags "$cc" host) -O3 -c "$am/spanalloc.c" -o "$OUT/$a-fp.o"
	if hits=$(no_fp "$OUT/$a-fp.o" $a); then die "$a: no FP/SIMD register found without -mgeneral-regs-only"; fi
	say "$a: the FP/SIMD check finds them without -mgeneral-regs-only: $(echo "$hits" | head -n 1 | tr '\t' ' ')"
done

# Without the prefix, kernel.c cannot compile (the header declares kmalloc
# and kfree) and a kernel's own kfree cannot link (the library defines it).
plain=$OUT/plain
run $MAKE -s --no-print-directory install ARCH=host PREFIX="$plain"
must_fail "conflicting types for" "kernel.c against the unprefixed header" \
	gcc -std=c11 -DKERNEL_HOSTED -I"$plain/include" -c "$SRC/kernel.c" -o "$OUT/plain.o"
printf '%s\n' '#include <stddef.h>' 'void kfree(void *p);' 'void kfree(void *p) { (void)p; }' \
	'int kmem_init(const void *cfg);' 'int main(void) { kfree(NULL); return kmem_init(NULL); }' \
	> "$OUT/ownkfree.c"
must_fail "multiple definition of \`kfree'" "a kernel's own kfree + the unprefixed library" \
	gcc "$OUT/ownkfree.c" "$plain/lib/libspanalloc.a" -o "$OUT/ownkfree"

# A wrong, missing or unknown compiler is refused before anything is built.
must_fail "but CC=gcc builds for x86_64" "make lib ARCH=riscv64 CC=gcc" \
	$MAKE -s --no-print-directory lib ARCH=riscv64 CC=gcc
must_fail "which is not installed (Debian: apt-get install gcc-aarch64-linux-gnu)" \
	"make lib ARCH=aarch64 CC=no-such-gcc" $MAKE -s --no-print-directory lib ARCH=aarch64 CC=no-such-gcc
must_fail "ARCH=sparc is not one of" "make lib ARCH=sparc" $MAKE -s --no-print-directory lib ARCH=sparc

# The porting guide's "first hour" link errors, with the words it quotes.
first_hour() { # MESSAGE WHAT CMD...
	grep -qF -- "$1" README.md || die "README.md does not quote '$1'"
	must_fail "$@"
}
rv=$OUT/riscv64/prefix/lib/libspanalloc.a x86=$OUT/x86_64/prefix/lib/libspanalloc.a
rvcc=$(var CC riscv64) xcc=$(var CC x86_64)
rvinc=-I$OUT/riscv64/prefix/include xinc=-I$OUT/x86_64/prefix/include
klink="-nostdlib -static -no-pie -T $SRC/kernel.ld -Wl,--no-warn-rwx-segments"
# EXTRA_CFLAGS reach the library and override its flags: medlow, the
# compiler's default, is what made the link at 0x80000000 fail.
medlow=$OUT/medlow
run $MAKE -s --no-print-directory install ARCH=riscv64 CC="$rvcc" PREFIX="$medlow" SYMBOL_PREFIX=$P \
	EXTRA_CFLAGS=-mcmodel=medlow BUILD="$OUT/build-medlow"
cf=$(PKG_CONFIG_PATH=$medlow/lib/pkgconfig pkg-config --variable=kernel_cflags spanalloc)
[ "${cf##* }" = -mcmodel=medlow ] || die "EXTRA_CFLAGS=-mcmodel=medlow: spanalloc.pc says kernel_cflags=$cf"
run $rvcc $(free_flags "$rvcc" riscv64) $rvinc -c "$SRC/kernel.c" -o "$OUT/rv-kernel.o"
run $rvcc $(free_flags "$rvcc" riscv64) $rvinc -c "$SRC/kernel_aliases.c" -o "$OUT/rv-aliases.o"
first_hour "relocation truncated to fit: R_RISCV_HI20" "the library built with EXTRA_CFLAGS=-mcmodel=medlow at 0x80000000" \
	$rvcc $klink -Wl,--defsym=KERNEL_BASE=0x80000000 "$OUT/rv-kernel.o" "$OUT/rv-aliases.o" \
	"$medlow/lib/libspanalloc.a" -o "$OUT/x.elf"
run $rvcc $(free_flags "$rvcc" riscv64) -march=rv64imafdc -mabi=lp64d $rvinc -c "$SRC/kernel.c" -o "$OUT/lp64d.o"
first_hour "can't link soft-float modules with double-float modules" "an lp64d kernel with the lp64 library" \
	$rvcc $klink -Wl,--defsym=KERNEL_BASE=0x80000000 "$OUT/lp64d.o" "$rv" -o "$OUT/x.elf"
run $xcc $(free_flags "$xcc" x86_64) -fno-pie -mcmodel=kernel $xinc -c "$SRC/kernel.c" -o "$OUT/kmodel.o"
run $xcc $(free_flags "$xcc" x86_64) $xinc -c "$SRC/kernel_aliases.c" -o "$OUT/x-aliases.o"
first_hour "relocation truncated to fit: R_X86_64_32S" "x86_64 -mcmodel=kernel code at 0xffff800000100000" \
	$xcc $klink -Wl,--defsym=KERNEL_BASE=0xffff800000100000 "$OUT/kmodel.o" "$OUT/x-aliases.o" "$x86" -o "$OUT/x.elf"
first_hour "file in wrong format" "the x86_64 library in a riscv64 kernel" \
	$rvcc $klink -Wl,--defsym=KERNEL_BASE=0x80000000 "$OUT/rv-aliases.o" "$x86" -o "$OUT/x.elf"
printf '%s\n' '#include <spanalloc.h>' 'void _start(void);' 'void _start(void) { sa_kfree(NULL); }' > "$OUT/nohooks.c"
run $xcc $(free_flags "$xcc" x86_64) $xinc -c "$OUT/nohooks.c" -o "$OUT/nohooks.o"
first_hour "undefined reference to \`arch_irq_save'" "a kernel without the hooks" \
	$xcc $klink -Wl,--defsym=KERNEL_BASE=0x100000 "$OUT/nohooks.o" "$x86" -o "$OUT/x.elf"

# ---------------------------------------------------------------------------
# Nothing is a list kept by hand: a function added to spanalloc.h and new
# internals in mm/ are prefixed, exported and localised by the next build.
new=$OUT/newapi
mkdir -p "$new"
cp -r Makefile include mm scripts boot "$new/"
sed -i '$i int zz_new_api(int x);' "$new/include/spanalloc.h"
printf '%s\n' '#include "mtypes.h"' 'int zz_internal_count;' 'int zz_internal_helper(int x);' \
	'int zz_internal_helper(int x) { return x + zz_internal_count++; }' \
	'int zz_new_api(int x) { return zz_internal_helper(x); }' > "$new/mm/zz_new.c"
run $MAKE -s --no-print-directory -C "$new" lib ARCH=host SYMBOL_PREFIX=$P BUILD=build
run bash scripts/check-exports.sh "$new/build/host-$P/libspanalloc.a" $P "new API (library)" "$new"
# grep -q would close the pipe early (SIGPIPE to nm: pipefail fails it): read all.
nm "$new/build/host-$P/libspanalloc.a" | grep -c ' T sa_zz_new_api$' >/dev/null || die "sa_zz_new_api not exported"
run python3 scripts/amalgamate.py --root "$new" --prefix $P "$new/amalgamation"
grep -q '^int sa_zz_new_api(int x);' "$new/amalgamation/spanalloc.h" || die "amalgamated header lacks sa_zz_new_api"
run gcc $(free_flags gcc host) -c "$new/amalgamation/spanalloc.c" -o "$new/amalgamation.o"
run bash scripts/check-exports.sh "$new/amalgamation.o" $P "new API (amalgamation)" "$new"
say "a function added to spanalloc.h is exported as sa_zz_new_api and mm/'s new globals are local, with no list edited"
say "all passed"
