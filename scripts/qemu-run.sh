#!/usr/bin/env bash
# Boots the x86_64 demo kernel in QEMU (q35, TCG; OVMF, or SeaBIOS for the
# Multiboot image and GRUB's ISO) and judges the run.
#
#   scripts/qemu-run.sh --run|--test EFI [SMP] [MEM] [TIMEOUT]
#
# The EFI application is copied into a fresh ESP directory
# (EFI/BOOT/BOOTX64.EFI, so OVMF boots it with no shell and no countdown),
# served read-only as a FAT disk (QEMU's vvfat).  COM1 goes to the terminal
# and to build/x86_64-efi/boot-<smp>cpu-<mem>.log.  QEMU runs under
# `timeout`, so a hang (or a firmware exception dump, which hangs) fails.
#
# Exit status 0 iff the log has a "RESULT: PASS" line and QEMU exited with
# the kernel's pass status: the kernel writes 0x10 to isa-debug-exit (port
# 0xf4) and QEMU exits with (0x10 << 1) | 1 = 33; the fail status is 35.
# Any other status fails: 124 is the timeout, 0 a triple fault or reset
# (-no-reboot), anything else QEMU itself.
# --run and --test differ only in the closing message.
# QEMU_EXTRA (environment) is appended to QEMU's arguments, e.g.
# QEMU_EXTRA="-cpu max" (1 GiB pages: RAM above 4 GiB gets mapped too).
# NUMA=n (environment, n >= 2) splits the machine into n NUMA nodes, each
# with MEM/n of RAM (its own memory backend) and SMP/n CPUs (CPUs 0..k-1 on
# node 0, and so on), 10 local and 21 remote in the SLIT; firmware then
# describes them (ACPI SRAT/SLIT on x86_64, numa-node-id in the device
# tree).  Ignored when SMP < n.  The log name gets -<n>node.
#
# --multiboot (before the mode) boots the same kernel as a Multiboot (v1)
# image instead (boot/multiboot.mk): IMAGE is its ELF, loaded by QEMU's
# -kernel under SeaBIOS (no OVMF, no ESP); the log goes to <ELF's
# directory>/boot-<smp>cpu-<mem>.log; judged as above; labels
# run-multiboot / test-boot-multiboot.
#   scripts/qemu-run.sh --multiboot --run|--test ELF [SMP] [MEM] [TIMEOUT]
#
# --grub (before the mode) boots it through GRUB instead (boot/grub.mk):
# IMAGE is the CD image grub-mkrescue made, on -cdrom under SeaBIOS; GRUB
# loads the kernel by Multiboot2.  Log, judgement as for --multiboot;
# labels run-grub / test-boot-grub.
#   scripts/qemu-run.sh --grub --run|--test ISO [SMP] [MEM] [TIMEOUT]
#
# --arch aarch64|riscv64|riscv64-m|riscv64-alt (before the mode) boots a
# QEMU virt demo kernel instead (boot/arch.mk; IMAGE is its ELF, loaded
# with -kernel):
#   scripts/qemu-run.sh --arch aarch64|riscv64|... --run|--test ELF [SMP] [MEM] [TIMEOUT]
# TCG, -machine virt (aarch64: cortex-a53 with a GICv2; riscv64: QEMU's
# OpenSBI starts the S-mode kernel, whose SBI console (arch_panic) and
# OpenSBI's banner share the terminal with semihosting; riscv64-alt: the
# same on a CPU without Sstc, -cpu rv64,sstc=off; riscv64-m: -bios none,
# every hart in M-mode), output and exit status through semihosting
# (-semihosting-config target=native on a stdio chardev), -no-reboot.  The
# log goes to <ELF's directory>/boot-<smp>cpu-<mem>.log.  Exit status 0 iff
# the log has a "RESULT: PASS" line and QEMU exited with the kernel's
# semihosting status 0 (RESULT: FAIL exits 1; 124 is the timeout; 0 with
# no RESULT line a reset, a power-off or an SBI shutdown).  x86_64 (no
# --arch, or --arch x86_64) is as above.
set -uo pipefail

# A hang is explained, not just timed out: QEMU gets an HMP monitor on a
# socket, and 5 s before the timeout a watchdog asks it for every CPU's
# registers and prints each CPU's program counter (and, on x86, RSP and
# RFLAGS) -- where each CPU was spinning.  A failed run's log is kept as
# <log>.fail-<time> so later runs do not overwrite it.
monitor_dir=$(mktemp -d "${TMPDIR:-/tmp}/spanalloc-mon.XXXXXX")
monitor_sock=$monitor_dir/hmp
monitor_args=(-monitor unix:"$monitor_sock",server=on,wait=off)
watchdog() { # TIMEOUT: runs in the background during QEMU's run
	local t=0
	# One second at a time, output elsewhere: killing this subshell leaves
	# no sleep holding the terminal's (or CI's) pipe open.
	while [ $t -lt $(($1 > 10 ? $1 - 5 : $1)) ]; do
		sleep 1 </dev/null >/dev/null 2>&1
		t=$((t + 1))
	done
	[ -S "$monitor_sock" ] || return 0
	echo "qemu-run: no result after $(($1 > 10 ? $1 - 5 : $1))s; CPU state from the QEMU monitor:"
	python3 - "$monitor_sock" <<'PY' 2>/dev/null | tr -d '\r' | grep -aE '^CPU#|RIP=|RSP=|RFL=|^ *PC=|^ *pc ' | sed 's/^/  /'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(1.0)
s.sendall(b"info registers -a\n"); out = b""; end = time.time() + 3
while time.time() < end:
    try:
        b = s.recv(65536)
    except socket.timeout:
        continue
    if not b:
        break
    out += b
sys.stdout.write(out.decode("latin-1"))
PY
}
keep_failed_log() { # LOG
	cp "$1" "$1.fail-$(date +%Y%m%d-%H%M%S)" 2>/dev/null && echo "qemu-run: log kept as $1.fail-*" >&2
}

# QEMU arguments for NUMA=n nodes over SMP CPUs and MEM of RAM (empty
# without NUMA); sets numa_tag for the log name.
numa_args=() numa_tag=
numa_setup() { # SMP MEM
	local n=${NUMA:-0} smp=$1 mem=$2 mib per i j
	[ "$n" -ge 2 ] 2>/dev/null && [ "$smp" -ge "$n" ] || return 0
	case $mem in
	*G) mib=$((${mem%G} * 1024)) ;; *M) mib=${mem%M} ;; *) mib=$mem ;;
	esac
	per=$((smp / n))
	for ((i = 0; i < n; i++)); do
		local first=$((i * per)) last=$(((i + 1) * per - 1))
		[ $i -eq $((n - 1)) ] && last=$((smp - 1))
		numa_args+=(-object memory-backend-ram,id=numa$i,size=$((mib / n))M
			-numa node,nodeid=$i,cpus=$first-$last,memdev=numa$i)
	done
	for ((i = 0; i < n; i++)); do
		for ((j = 0; j < n; j++)); do
			[ $i -ne $j ] && numa_args+=(-numa dist,src=$i,dst=$j,val=21)
		done
	done
	numa_tag=-${n}node
}

arch=x86_64
seabios= # multiboot or grub: SeaBIOS, not OVMF
case ${1:-} in
--multiboot | --grub) seabios=${1#--}; shift ;;
esac
if [ "${1:-}" = --arch ]; then
	arch=${2:?--arch needs aarch64, riscv64 or x86_64}
	shift 2
fi
case $arch in aarch64 | riscv64 | riscv64-m | riscv64-alt) virt=1 ;; *) virt= ;; esac
if [ -n "$virt" ]; then
	mode=${1:?usage: qemu-run.sh --arch $arch --run|--test ELF [SMP] [MEM] [TIMEOUT]}
	elf=${2:?ELF image}
	smp=${3:-4}
	mem=${4:-512M}
	tmo=${5:-120}
	# The S-mode kernel's SBI console is OpenSBI's UART: on the same
	# terminal (a mux chardev) as semihosting.
	mux=off serial=()
	case $arch in
	aarch64) qemu=qemu-system-aarch64 pkg=qemu-system-arm
		machine=(-machine virt,gic-version=2 -cpu cortex-a53) ;;
	riscv64) qemu=qemu-system-riscv64 pkg=qemu-system-misc
		machine=(-machine virt) mux=on serial=(-serial chardev:con) ;;
	riscv64-alt) qemu=qemu-system-riscv64 pkg=qemu-system-misc
		machine=(-machine virt -cpu rv64,sstc=off) mux=on serial=(-serial chardev:con) ;;
	riscv64-m) qemu=qemu-system-riscv64 pkg=qemu-system-misc
		machine=(-machine virt -bios none) ;;
	esac
	if ! command -v "$qemu" >/dev/null; then
		echo "qemu-run: no $qemu; run: sudo apt-get install $pkg" >&2
		exit 2
	fi
	[ -r "$elf" ] || { echo "qemu-run: $elf not built (make kernel-$arch)" >&2; exit 2; }
	numa_setup "$smp" "$mem"
	log="$(dirname "$elf")/boot-${smp}cpu-${mem}${numa_tag}.log"
	echo "qemu-run: $arch virt, multi-threaded TCG, -smp $smp, -m $mem${numa_tag:+, NUMA ${NUMA} nodes}, semihosting, timeout ${tmo}s; log $log"
	start=$(date +%s%N)
	watchdog "$tmo" & wd=$!
	# shellcheck disable=SC2086 # QEMU_EXTRA is a list of arguments
	timeout --foreground -k 5 "$tmo" \
		"$qemu" "${machine[@]}" -accel tcg,thread=multi -smp "$smp" -m "$mem" "${numa_args[@]}" "${monitor_args[@]}" \
		-nodefaults -display none -no-reboot \
		-chardev stdio,id=con,mux=$mux,signal=off "${serial[@]}" \
		-semihosting-config enable=on,target=native,chardev=con \
		-kernel "$elf" ${QEMU_EXTRA:-} </dev/null | tee "$log"
	status=${PIPESTATUS[0]}
	kill "$wd" 2>/dev/null; wait "$wd" 2>/dev/null; rm -rf "$monitor_dir"
	end=$(date +%s%N)
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
	result=$(tr -d '\r' <"$log" | grep -a '^RESULT: ' | tail -n 1)
	case $status in
	124) why="timed out after ${tmo}s (hang)" ;;
	0) why=$([ -n "$result" ] && echo "pass status" || echo "QEMU exited 0 with no RESULT line: reset or power-off") ;;
	1) why="fail status" ;;
	*) why="QEMU exited with status $status" ;;
	esac
	# The S-mode kernel's arch_panic ends in an SBI shutdown (QEMU exits
	# 0): its "panic:" line (SBI console) says why.
	panic=$(tr -d '\r' <"$log" | grep -a '^panic: ' | tail -n 1)
	[ -z "$panic" ] || why="$why; $panic"
	label=$([ "$mode" = --test ] && echo "test-boot-$arch" || echo "run-$arch")
	if [ "$status" = 0 ] && [[ "$result" == "RESULT: PASS "* ]]; then
		echo "$label: PASS (-smp $smp -m $mem, ${secs}s wall from QEMU start to exit)"
		exit 0
	fi
	echo "$label: FAIL (-smp $smp -m $mem, ${secs}s): ${result:-no RESULT line}; $why" >&2
	keep_failed_log "$log"
	exit 1
fi
if [ "$arch" != x86_64 ]; then
	echo "qemu-run: unknown arch '$arch' (aarch64, riscv64, riscv64-m, riscv64-alt, x86_64)" >&2
	exit 2
fi

mode=${1:?usage: qemu-run.sh [--multiboot|--grub] --run|--test EFI|ELF|ISO [SMP] [MEM] [TIMEOUT]}
image=${2:?EFI application (with --multiboot, the Multiboot ELF; with --grub, the ISO)}
smp=${3:-4}
mem=${4:-512M}
tmo=${5:-120}
PASS_STATUS=33

if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "qemu-run: no qemu-system-x86_64; run: sudo apt-get install qemu-system-x86" >&2
	exit 2
fi
built_by=$(case $seabios in multiboot) echo kernel-multiboot ;; grub) echo iso-grub ;; *) echo kernel ;; esac)
[ -r "$image" ] || { echo "qemu-run: $image not built (make $built_by)" >&2; exit 2; }
numa_setup "$smp" "$mem"
log="$(dirname "$image")/boot-${smp}cpu-${mem}${numa_tag}.log"

if [ -n "$seabios" ]; then
	# SeaBIOS is QEMU's default firmware (package seabios, a dependency).
	[ -r /usr/share/seabios/bios-256k.bin ] || [ -r /usr/share/qemu/bios-256k.bin ] || {
		echo "qemu-run: no SeaBIOS; run: sudo apt-get install seabios" >&2; exit 2; }
	if [ "$seabios" = grub ]; then
		boot=(-cdrom "$image")
		how="GRUB (Multiboot2) from -cdrom"
	else
		boot=(-kernel "$image")
		how="Multiboot -kernel"
	fi
	label=$seabios
	echo "qemu-run: q35, TCG, -smp $smp, -m $mem${numa_tag:+, NUMA $NUMA nodes}, SeaBIOS, $how, timeout ${tmo}s; serial log $log"
else
	ovmf=
	for f in /usr/share/ovmf/OVMF.fd /usr/share/OVMF/OVMF.fd /usr/share/qemu/OVMF.fd; do
		[ -r "$f" ] && { ovmf=$f; break; }
	done
	if [ -z "$ovmf" ]; then
		echo "qemu-run: no OVMF.fd; run: sudo apt-get install ovmf" >&2
		exit 2
	fi
	esp=$(mktemp -d "${TMPDIR:-/tmp}/spanalloc-esp.XXXXXX")
	trap 'rm -rf "$esp"' EXIT
	mkdir -p "$esp/EFI/BOOT"
	cp "$image" "$esp/EFI/BOOT/BOOTX64.EFI"
	boot=(-bios "$ovmf" -drive if=none,id=esp,format=raw,readonly=on,file=fat:"$esp"
		-device virtio-blk-pci,drive=esp)
	label=
	echo "qemu-run: q35, TCG, -smp $smp, -m $mem${numa_tag:+, NUMA $NUMA nodes}, OVMF $ovmf, timeout ${tmo}s; serial log $log"
fi

start=$(date +%s%N)
watchdog "$tmo" & wd=$!
# shellcheck disable=SC2086 # QEMU_EXTRA is a list of arguments
timeout --foreground -k 5 "$tmo" \
	qemu-system-x86_64 -machine q35 -accel tcg -smp "$smp" -m "$mem" "${numa_args[@]}" "${monitor_args[@]}" \
	-nodefaults -display none -no-reboot -net none \
	"${boot[@]}" \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	-serial stdio ${QEMU_EXTRA:-} </dev/null | tee "$log"
status=${PIPESTATUS[0]}
kill "$wd" 2>/dev/null; wait "$wd" 2>/dev/null; rm -rf "$monitor_dir"
end=$(date +%s%N)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')

result=$(tr -d '\r' <"$log" | grep -a '^RESULT: ' | tail -n 1)
case $status in
124) why="timed out after ${tmo}s (hang)" ;;
"$PASS_STATUS") why="pass status" ;;
35) why="fail status" ;;
0) why="QEMU exited 0: triple fault or reset" ;;
*) why="QEMU exited with status $status" ;;
esac

label=$([ "$mode" = --test ] && echo test-boot || echo run)${label:+-$label}
if [ "$status" = "$PASS_STATUS" ] && [[ "$result" == "RESULT: PASS "* ]]; then
	echo "$label: PASS (-smp $smp -m $mem, ${secs}s wall from QEMU start to exit)"
	exit 0
fi
echo "$label: FAIL (-smp $smp -m $mem, ${secs}s): ${result:-no RESULT line}; $why" >&2
keep_failed_log "$log"
exit 1
