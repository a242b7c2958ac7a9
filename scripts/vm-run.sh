#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the cached debug kernel (built by scripts/setup.sh) under QEMU with
# virtme-ng and run one command inside it.
#
# The guest sees the host's root filesystem (read-only, with throw-away
# overlays on /etc, /usr, /tmp, ...) and starts in the host's current
# directory, so programs and modules built on the host run in the guest as
# they are. This is how every kernel-side test of safedetach runs: the module
# under test must never be loaded into the host kernel.
#
# Usage: scripts/vm-run.sh [--timeout SECS] [--cpus N] [--memory SIZE] [--kvm]
#                          [--append KERNEL-ARGS] [--rwdir DIR] [--log FILE]
#                          [--] COMMAND [ARGS...]
#
#   --timeout SECS   bound the whole run, boot included (default 600)
#   --cpus N         guest vCPUs (default 2)
#   --memory SIZE    guest memory, QEMU syntax (default 2G)
#   --kvm            use KVM if /dev/kvm is usable (default: TCG always)
#   --append ARGS    extra kernel command-line arguments (may be repeated)
#   --rwdir DIR      let the guest write to host directory DIR (may be
#                    repeated); everything else of the host is read-only in
#                    the guest, or copy-on-write and thrown away (/tmp, /etc,
#                    /usr, /var, /home, ...)
#   --log FILE       where to write the kernel log (default: a new file
#                    under $SAFEDETACH_CACHE/logs/)
#
# The command runs as the calling user, in the caller's current directory
# (exit status 126 if the guest cannot enter it) and with the caller's PATH.
# Its stdout and stderr are streamed to this script's stdout and stderr; its
# stdin is /dev/null. The whole kernel console, from the first
# boot message to the last line before a crash, goes to the log file, with
# the command's output interleaved where it happened. The path of the log is
# printed at the end.
#
# Exit status: the command's own status; 124 if the run timed out (boot or
# command hung); 125 if the guest did not report a status (kernel crash,
# QEMU failure) or vm-run itself failed (bad usage, no kernel built).
#
# How it works, and the virtme-ng 1.42 quirks it works around:
#
# - vng runs its command through virtio-serial ports that its guest init finds
#   as /dev/virtio-ports/* links. Those links are made by udev, which our
#   guest does not have (installing udev on the host does not help either),
#   so vng falls back to running the command on the serial console and exits
#   255 whatever the command returned. So the command is run by a wrapper
#   (guest.sh, below) in a host directory the guest can write (`--rwdir`):
#   the wrapper tees the command's stdout and stderr into files there, which
#   the host streams with `tail -f`, and finally writes the exit status into
#   a file there, which the host reads. vng's own exit status is ignored.
# - vng's `--verbose` sends the kernel console (ttyS0, with earlyprintk) to
#   vng's stderr; it is redirected to the log file. The console fallback also
#   puts the command's output there, which is why the log has it in place.
# - `--force-9p`: the kernel has no virtio-fs, yet vng tries to start
#   virtiofsd first for the root and for each --rwdir, waiting up to ~3 s
#   for each attempt to fail (and where virtiofsd works, it would pick
#   virtio-fs and the microvm machine, which this kernel cannot boot with).
# - Without `root=/dev/root` the 9p root mount fails on 6.12 ("9pnet_virtio:
#   no channels available").
# - In script mode vng already passes QEMU `-no-reboot` and the kernel
#   `panic=-1`, so a panic reboots at once and the reboot ends QEMU. We add
#   `oops=panic` so an oops ends the run too instead of leaving a half-dead
#   guest to time out, and `kasan_multi_shot`: without it KASAN prints only
#   the first report of a boot (mm/kasan/report.c), and one report would
#   blind every later test case. And `no5lvl`: QEMU's `-cpu max` offers
#   5-level paging, and then an interrupt that arrives while
#   identify_cpu() has cleared the boot CPU's capabilities (the memset in
#   arch/x86/kernel/cpu/common.c) sees X86_FEATURE_LA57 off, so KASAN's
#   addr_has_metadata() takes a direct-map pointer for a wild one: a
#   "wild-memory-access in do_raw_spin_lock" from handle_edge_irq at
#   boot, repeated until the run times out (seen in 1 of 4 boots here).
# - The command's output is copied to the serial console so that the log
#   shows it next to the kernel messages it caused. Under TCG the console
#   moves about 50 KB/s (600 KB of output cost 10 s more than writing it to
#   a file): have a chatty command write bulk output to a file instead.
# - The guest can write only to the --rwdir directories; a file it writes
#   anywhere else is lost or refused (read-only root, throw-away overlays).
# - A command that leaves a background process holding its stdout or stderr
#   open keeps the run going until that process exits (or the timeout).
# - vng and QEMU run in a session of their own (setsid), so a timeout or a
#   Ctrl-C kills the whole process group, QEMU included.
# - /dev/kvm exists on the project's machines but is a nested paravirtual
#   hypervisor that a stock guest cannot run under (seen: a hang after
#   "Booting from ROM", or with vng's options QEMU aborting at once with
#   "failed to set MSR 0x10a", which vm-run reports as "the guest kernel did
#   not start"): TCG is the default, and --kvm is only a request.
set -euo pipefail
. "$(dirname -- "$0")/env.sh"

usage() {
	sed -n '/^# Usage:/,/^# The command/{/^# The command/d; s/^# \{0,1\}//; p}' "$0"
}

fail() { printf 'vm-run: %s\n' "$*" >&2; exit 125; }

timeout=600
cpus=2
memory=2G
want_kvm=0
log=
append=()
rwdirs=()
while [ $# -gt 0 ]; do
	case $1 in
	--timeout|--cpus|--memory|--log|--append|--rwdir)
		[ $# -ge 2 ] || { usage >&2; fail "$1 needs an argument"; }
		opt=${1#--}; val=$2; shift 2 ;;
	--timeout=*|--cpus=*|--memory=*|--log=*|--append=*|--rwdir=*)
		opt=${1%%=*}; opt=${opt#--}; val=${1#*=}; shift ;;
	--kvm) want_kvm=1; shift; continue ;;
	-h|--help) usage; exit 0 ;;
	--) shift; break ;;
	-*) usage >&2; fail "unknown option: $1" ;;
	*) break ;;
	esac
	case $opt in
	timeout) timeout=$val ;;
	cpus) cpus=$val ;;
	memory) memory=$val ;;
	log) log=$val ;;
	append) append+=("$val") ;;
	rwdir)
		[ -d "$val" ] || fail "--rwdir: $val is not a directory"
		rwdirs+=("$(cd -- "$val" && pwd)") ;;
	esac
done
[ $# -gt 0 ] || { usage >&2; fail "no command given"; }
[[ $timeout =~ ^[1-9][0-9]*$ ]] || fail "--timeout wants a positive number of seconds, not '$timeout'"
[[ $cpus =~ ^[1-9][0-9]*$ ]] || fail "--cpus wants a positive number, not '$cpus'"

kdir=$(kernel_dir)
kernel=$(kernel_image)
[ -f "$(dirname -- "$kdir")/.built" ] && [ -f "$kernel" ] ||
	fail "no kernel built for the current inputs (expected $kernel): run scripts/setup.sh"
command -v vng >/dev/null || fail "vng (virtme-ng) not found: run scripts/setup.sh"
nr_cpus=$(sed -n 's/^CONFIG_NR_CPUS=//p' "$kdir/.config")
[ "$cpus" -le "${nr_cpus:-1}" ] ||
	fail "--cpus $cpus: the kernel supports at most ${nr_cpus:-1} CPUs (CONFIG_NR_CPUS)"

# The guest's architecture. x86_64: the host's own root file system, and
# `no5lvl` (see above). arm64: qemu-system-aarch64 `-M virt` (vng's
# machine) with `-cpu max` (vng's default for a foreign guest is a
# Cortex-A57, which has no LSE atomics) and multi-threaded TCG, booting
# the arm64 root that setup.sh made, read-only, like the host's root for an
# x86_64 guest. That root does not have the host's files, so the host
# directories the command needs are mounted at their host paths: the
# checkout and the kernel tree (for ktap_helpers.sh) read-only, and the
# --rwdir directories read-write. virtme-ng mounts every --rwdir before
# every --rodir, so a --rwdir inside the checkout or the kernel tree would
# be hidden: refused below.
arch_kargs=() guest=() mountpoints=()
case $SAFEDETACH_ARCH in
x86_64) arch_kargs=(no5lvl) ;;
arm64)
	rootfs=$(rootfs_dir)
	[ -f "$rootfs/.built" ] ||
		fail "no arm64 root file system built for the current inputs (expected $rootfs): run scripts/setup.sh"
	if [ "$want_kvm" = 1 ]; then
		step "vm: --kvm ignored: an arm64 guest is emulated on this host (TCG)"
		want_kvm=0
	fi
	guest=(--arch arm64 --root "$rootfs")
	for dir in "${rwdirs[@]}"; do
		case $dir/ in
		"$SAFEDETACH_TOP"/*|"$kdir"/*)
			fail "--rwdir $dir: on arm64 it must not be inside $SAFEDETACH_TOP or $kdir (they are mounted read-only over it)" ;;
		esac
	done
	;;
esac

accel=(--disable-kvm)
accel_name=TCG
if [ "$want_kvm" = 1 ]; then
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		accel=()
		accel_name=KVM
	else
		step "vm: /dev/kvm is not usable, falling back to TCG"
	fi
fi

# SAFEDETACH_TCG_THREAD=single: every vCPU on one host thread (QEMU's
# -accel tcg,thread=single) instead of a thread per vCPU (MTTCG, QEMU's
# default here). Under MTTCG, patching a static branch crashed the bench
# guest with "Oops: int3" at the patched site in 3 of 3 runs, and not in 7
# runs with one thread, and `make jump-probe` crashes the same way with a C
# module's own key; whether QEMU or the guest kernel is at fault is not
# known (Documentation/testing.rst, "Kernel flavours").
case ${SAFEDETACH_TCG_THREAD:-multi} in
multi) ;;
single)
	[ "$accel_name" = TCG ] || fail "SAFEDETACH_TCG_THREAD=single needs TCG"
	# (arm64 passes its own -accel below.)
	[ "$SAFEDETACH_ARCH" = arm64 ] || guest+=("--qemu-opts=-accel tcg,thread=single")
	accel_name="TCG, one thread"
	;;
*) fail "SAFEDETACH_TCG_THREAD must be multi or single, not '$SAFEDETACH_TCG_THREAD'" ;;
esac

if [ -z "$log" ]; then
	log=$SAFEDETACH_CACHE/logs/vm-$(date +%Y%m%d-%H%M%S)-$$.log
fi
mkdir -p -- "$(dirname -- "$log")" "$SAFEDETACH_CACHE/run"
log=$(cd -- "$(dirname -- "$log")" && pwd)/$(basename -- "$log")
: >"$log"

rundir=$(mktemp -d "$SAFEDETACH_CACHE/run/vm-run.XXXXXX")
vng_pid= watchdog_pid= cat_pid= tail_pids=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -z "$vng_pid" ] || kill -KILL -- "-$vng_pid" 2>/dev/null || true
	[ -z "$watchdog_pid" ] || kill "$watchdog_pid" 2>/dev/null || true
	[ ${#tail_pids[@]} -eq 0 ] || kill "${tail_pids[@]}" 2>/dev/null || true
	[ -z "$cat_pid" ] || kill "$cat_pid" 2>/dev/null || true
	rm -rf -- "$rundir"
	# The mount points made in the arm64 root for this run, innermost first.
	local i
	for ((i = ${#mountpoints[@]} - 1; i >= 0; i--)); do
		rmdir -- "${mountpoints[i]}" 2>/dev/null || true
	done
	exit "$rc"
}
trap cleanup EXIT
trap 'printf "vm-run: interrupted — see %s\n" "$log" >&2; exit 130' INT TERM

# What the guest runs: cwd, PATH and the command, quoted for bash.
{
	printf 'cd -- %q || exit 126\n' "$PWD"
	printf 'export PATH=%q\n' "$PATH"
	printf 'set --'
	printf ' %q' "$@"
	printf '\n'
} >"$rundir/cmd"

# The guest-side wrapper: run the command with its output teed both to the
# console (hence the log) and to files the host streams, then report the
# exit status. The status file is written last, by rename, so its presence
# means the command finished.
cat >"$rundir/guest.sh" <<'EOF'
R=$(dirname -- "$0")
fifos=$(mktemp -d /tmp/vm-run.XXXXXX)
mkfifo "$fifos/out" "$fifos/err"
tee -a "$R/stdout" <"$fifos/out" &
tee -a "$R/stderr" <"$fifos/err" >&2 &
echo "vm-run: guest: starting command" >/dev/kmsg 2>/dev/null
st=0
( . "$R/cmd" && exec "$@" ) </dev/null >"$fifos/out" 2>"$fifos/err" || st=$?
wait
echo "vm-run: guest: command exited with status $st" >/dev/kmsg 2>/dev/null
printf '%s\n' "$st" >"$R/status.tmp" && mv -f "$R/status.tmp" "$R/status"
EOF
: >"$rundir/stdout"
: >"$rundir/stderr"

kargs="root=/dev/root oops=panic kasan_multi_shot${arch_kargs:+ ${arch_kargs[*]}}${append:+ ${append[*]}}"

# In the arm64 root, a mount point for every host directory mounted at its
# host path (the root is read-only in the guest, which cannot make them):
# the directories this run makes are removed again by cleanup.
if [ "$SAFEDETACH_ARCH" = arm64 ]; then
	guest+=("--qemu-opts=-cpu max -accel tcg,thread=${SAFEDETACH_TCG_THREAD:-multi}")
	for dir in "$SAFEDETACH_TOP" "$kdir" "$rundir" "${rwdirs[@]}"; do
		missing=()
		sub=$rootfs$dir
		while [ ! -d "$sub" ]; do
			missing=("$sub" "${missing[@]}")
			sub=$(dirname -- "$sub")
		done
		for sub in "${missing[@]}"; do
			mkdir -- "$sub"
			mountpoints+=("$sub")
		done
	done
fi
{
	printf 'vm-run: %s: booting %s (%s, %s, %s vCPUs, %s)\n' "$(date -Is)" \
		"$kernel" "$SAFEDETACH_ARCH" "$accel_name" "$cpus" "$memory"
	printf 'vm-run: command:'
	printf ' %q' "$@"
	printf '\nvm-run: kernel args (added to vng'"'"'s): %s\n' "$kargs"
} >>"$log"

# vng's output reaches the log through a pipe (minus the serial console's
# carriage returns): QEMU reopens its stderr
# (/proc/self/fd/2) for the console with O_TRUNC, which on a plain file
# would wipe the log and then write over it from offset 0.
mkfifo "$rundir/console"
sed -u 's/\r$//' "$rundir/console" >>"$log" &
cat_pid=$!

# The directories the guest writes, and on arm64 (GUEST=HOST: at the host
# path in the guest) the ones it reads.
mounts=()
for dir in "$rundir" "${rwdirs[@]}"; do
	case $SAFEDETACH_ARCH in
	x86_64) mounts+=(--rwdir "$dir") ;;
	arm64) mounts+=(--rwdir "$dir=$dir") ;;
	esac
done
if [ "$SAFEDETACH_ARCH" = arm64 ]; then
	mounts+=(--rodir "$SAFEDETACH_TOP=$SAFEDETACH_TOP" --rodir "$kdir=$kdir")
fi

step "vm: booting $kernel ($SAFEDETACH_ARCH, $accel_name, $cpus vCPUs, $memory)"
start=$SECONDS
setsid vng --run "$kernel" "${accel[@]}" --cpus "$cpus" --memory "$memory" \
	--force-9p --verbose "${mounts[@]}" --append "$kargs" "${guest[@]}" \
	-- bash "$rundir/guest.sh" </dev/null >"$rundir/console" 2>&1 &
vng_pid=$!

# Stream the command's output while the guest runs; `tail --pid` stops
# after vng is gone (and reaped) and has read everything.
tail -n +1 -f -s 0.2 --pid="$vng_pid" "$rundir/stdout" &
tail_pids+=($!)
tail -n +1 -f -s 0.2 --pid="$vng_pid" "$rundir/stderr" >&2 &
tail_pids+=($!)

(
	trap 'kill "$sleep_pid" 2>/dev/null; exit 0' TERM
	sleep "$timeout" &
	sleep_pid=$!
	wait "$sleep_pid"
	: >"$rundir/timed-out"
	kill -TERM -- "-$vng_pid" 2>/dev/null || exit 0
	sleep 3 &
	sleep_pid=$!
	wait "$sleep_pid"
	kill -KILL -- "-$vng_pid" 2>/dev/null || true
) &
watchdog_pid=$!

wait "$vng_pid" || true
# Whatever vng left behind in its session (QEMU, after a timeout) goes too.
kill -KILL -- "-$vng_pid" 2>/dev/null || true
vng_pid=
kill "$watchdog_pid" 2>/dev/null || true
wait "$watchdog_pid" || true
watchdog_pid=
wait "${tail_pids[@]}" || true
tail_pids=()
wait "$cat_pid" || true
cat_pid=
elapsed=$((SECONDS - start))

show_log_tail() {
	printf 'vm-run: last lines of the kernel log:\n' >&2
	tail -n 40 -- "$log" | sed 's/^/  | /' >&2
}

if [ -e "$rundir/timed-out" ]; then
	show_log_tail
	printf 'vm-run: timed out after %s s running:' "$timeout" >&2
	printf ' %q' "$@" >&2
	printf ' (boot or command hung) — see %s\n' "$log" >&2
	printf 'vm-run: kernel log: %s\n' "$log" >&2
	exit 124
fi
if [ ! -f "$rundir/status" ]; then
	show_log_tail
	if grep -q '^\[ *[0-9.]*\] Linux version' -- "$log"; then
		printf 'vm-run: the guest did not report an exit status (kernel crash?) — see %s\n' "$log" >&2
	else
		printf 'vm-run: the guest kernel did not start (QEMU or vng failed) — see %s\n' "$log" >&2
	fi
	printf 'vm-run: kernel log: %s\n' "$log" >&2
	exit 125
fi
status=$(cat "$rundir/status")
[[ $status =~ ^[0-9]+$ ]] || fail "the guest reported a bad exit status '$status' — see $log"
step "vm: command exited with status $status after ${elapsed} s (boot included)"
printf 'vm-run: kernel log: %s\n' "$log" >&2
exit "$status"
