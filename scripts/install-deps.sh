#!/usr/bin/env bash
# Installs the Debian 12 packages a target needs, if any is missing.
#   scripts/install-deps.sh test    host tests
# As root it runs apt-get; otherwise it prints the command to run.
set -euo pipefail
what=${1:-test}
case "$what" in
test) pkgs=(gcc clang make binutils python3 libcmocka-dev pkg-config) ;;
kernel) pkgs=(qemu-system-x86 ovmf gnu-efi mtools dosfstools binutils gcc make) ;;
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
