#!/usr/bin/env bash
# Installs the Debian 12 packages a target needs, if any is missing.
#   scripts/install-deps.sh test    host tests
#   scripts/install-deps.sh aarch64 make test-boot-aarch64 (cross gcc, picolibc, QEMU)
#   scripts/install-deps.sh riscv64 make test-boot-riscv64 (cross gcc, picolibc, QEMU)
#   scripts/install-deps.sh grub    make test-boot-grub (GRUB for BIOS, grub-mkrescue's tools)
#   scripts/install-deps.sh fuzz    make fuzz / test-fuzz (libFuzzer)
#   scripts/install-deps.sh heapmap make heapmap (the picture)
#   scripts/install-deps.sh shim    make test-shim (real programs under the shim)
#   scripts/install-deps.sh bench   make bench (peer allocators, valgrind, plots)
#   scripts/install-deps.sh latency make latency (valgrind, plots)
# As root it runs apt-get; otherwise it prints the command to run.
set -euo pipefail
what=${1:-test}
case "$what" in
test) pkgs=(gcc clang make binutils python3 libcmocka-dev pkg-config universal-ctags) ;;
kernel) pkgs=(qemu-system-x86 ovmf gnu-efi mtools dosfstools binutils gcc make) ;;
aarch64) pkgs=(gcc-aarch64-linux-gnu picolibc-aarch64-linux-gnu qemu-system-arm make) ;;
riscv64) pkgs=(gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc make) ;;
grub) pkgs=(grub-pc-bin grub-common xorriso mtools qemu-system-x86) ;;
fuzz) pkgs=(clang libclang-rt-14-dev libcmocka-dev make) ;;
heapmap) pkgs=(gcc make libcmocka-dev python3 python3-matplotlib) ;;
shim) pkgs=(gcc make python3 sqlite3 perl git gawk bc coreutils sed grep) ;;
bench) pkgs=(gcc make python3 libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev valgrind gnuplot-nox python3-matplotlib hyperfine sqlite3 perl git gawk bc) ;;
latency) pkgs=(gcc make python3 valgrind python3-matplotlib) ;;
*) echo "install-deps: unknown set '$what'" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
	echo "install-deps: missing packages; run: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
