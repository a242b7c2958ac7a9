#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The benchmarks, inside the VM (started by scripts/bench.sh, which builds
# everything this uses under build/bench/). Writes the raw numbers, one
# measurement a line, to OUTDIR/raw-guest.txt, and progress to stdout.
#
# Usage: scripts/bench-guest.sh OUTDIR
#
# Settings (environment, defaults in brackets):
#   BENCH_MICRO_RUNS [7]       runs of each micro-benchmark
#   BENCH_MICRO_MS [100]       length of one micro-benchmark run, ms
#   BENCH_RW_RUNS [7]          alternating gate / no_gate runs
#   BENCH_RW_SECS [1]          length of one read/write measurement, s
#   BENCH_UNLOAD_RUNS [5]      runs of each unload measurement
#   BENCH_UNLOAD_CLIENTS ["0 1 8 64"]
#   BENCH_UNLOAD_WARMUP [2]    seconds the clients run before rmmod
#   BENCH_UNITS_RUNS [5]       runs of the idle-units unload (each: 1, 64)
#   BENCH_UNPLUG_RUNS [5]      runs of the detach under load
#   BENCH_UNPLUG_CLIENTS [64]  clients on the detached unit
#   BENCH_PHASES ["micro rw unload units unplug"]  which phases to run
#
# Phases:
#   micro   insmod sdbench.ko: every primitive, 1 thread and all CPUs
#           (the gate is rust/gate.rs itself, see bench/sdbench_gate.rs);
#           then its load_test build, the gate alone ("gate_load_test")
#   rw      safedetach.ko with and without the gate: write+read pairs
#   unload  unload safedetach (bench/sdunload: delete_module(), timed)
#           under 0, 1, 8, 64 busy clients (tests/sdtool stress), with the
#           module's own drain/tail split and the kernel log's timestamps
#   units   unload safedetach.ko units=1 and units=64, no client
#   unplug  detach unit 0 under 64 busy clients while clients of units 1
#           to 3 count their operations (bench/sdunplug)
set -euo pipefail
cd -- "$(dirname -- "$0")/.."

out=${1:?usage: bench-guest.sh OUTDIR}
B=${BENCH_BUILD:-build/bench}
SDTOOL=tests/sdtool
DEV=/dev/safedetach
micro_runs=${BENCH_MICRO_RUNS:-7}
micro_ms=${BENCH_MICRO_MS:-100}
rw_runs=${BENCH_RW_RUNS:-7}
rw_secs=${BENCH_RW_SECS:-1}
unload_runs=${BENCH_UNLOAD_RUNS:-5}
unload_clients=${BENCH_UNLOAD_CLIENTS:-0 1 8 64}
unload_warmup=${BENCH_UNLOAD_WARMUP:-2}
units_runs=${BENCH_UNITS_RUNS:-5}
unplug_runs=${BENCH_UNPLUG_RUNS:-5}
unplug_clients=${BENCH_UNPLUG_CLIENTS:-64}
phases=" ${BENCH_PHASES:-micro rw unload units unplug} "
vcpus=$(nproc)
raw=$out/raw-guest.txt
work=$(mktemp -d)
: >"$raw"

say() { printf '[guest %4ds] %s\n' "$SECONDS" "$*"; }
record() { printf '%s\n' "$*" >>"$raw"; }
# Kernel log lines since mark $1, without timestamps.
klog_since() { dmesg | tail -n +"$(($1 + 1))" | sed 's/^\[[^]]*\] //'; }
klog_mark() { dmesg | wc -l; }

wait_for_dev() {
	local i
	for i in $(seq 100); do
		[ -c "$1" ] && return 0
		sleep 0.05
	done
	echo "bench-guest: $1 did not appear" >&2
	return 1
}

clients=()
stop_clients() {
	[ ${#clients[@]} -eq 0 ] && return 0
	kill -TERM "${clients[@]}" 2>/dev/null || true
	wait "${clients[@]}" 2>/dev/null || true
	clients=()
}
cleanup() {
	stop_clients
	rmmod safedetach 2>/dev/null || true
	rmmod sdbench 2>/dev/null || true
	rm -rf -- "$work"
}
trap cleanup EXIT

record "# guest: kernel $(uname -r), $(nproc) online CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | sort -u | head -n1)"
record "# guest: $(awk '/MemTotal/ { printf "%d MiB memory", $2 / 1024 }' /proc/meminfo), preemption: $(uname -v | grep -o 'PREEMPT[A-Z_]*' | head -n1)"
say "$(uname -r), $(nproc) vCPUs"

phase() { [[ $phases == *" $1 "* ]]; }

# unload_timed NAME: unload module NAME with bench/sdunload and print
# "rmmod_us=... drain_us=... tail_us=... pre_us=... post_us=...": the
# delete_module() call, the module's own drain and tail (its "unloaded:"
# line), and from the kernel log's timestamps the time before the module's
# exit function started and after it logged its end.
unload_timed() {
	local mark us line drain tail pre post
	mark=$(klog_mark)
	us=$($B/sdunload "$1")
	us=${us##*us=}
	line=$(klog_since "$mark" | grep -o 'unloaded: drain [0-9]* us, tail [0-9]* us' || true)
	[ -n "$line" ] || { echo "bench-guest: no 'unloaded:' line in the kernel log" >&2; return 1; }
	read -r drain tail < <(echo "$line" | sed 's/unloaded: drain \([0-9]*\) us, tail \([0-9]*\) us/\1 \2/')
	read -r pre post < <(dmesg | tail -n +"$((mark + 1))" | awk '
		function t() { s = $0; sub(/^\[ */, "", s); sub(/\].*/, "", s); return s * 1e6 }
		/sdunload: calling delete_module/ { call = t() }
		/safedetach: unloading:/ { start = t() }
		/safedetach: unloaded:/ { end = t() }
		/sdunload: delete_module returned/ { ret = t() }
		END { printf "%d %d\n", start - call, ret - end }')
	echo "rmmod_us=$us drain_us=$drain tail_us=$tail pre_us=$pre post_us=$post"
}

# --- micro: cost of one enter+exit pair --------------------------------------
if phase micro; then
nprims=10
say "micro: insmod sdbench.ko runs=$micro_runs duration_ms=$micro_ms" \
	"($nprims loops x 2 thread counts x $micro_runs runs, about" \
	"$((2 * nprims * micro_runs * micro_ms / 1000 + 2)) s)"
mark=$(klog_mark)
insmod $B/micro/bench/sdbench.ko runs="$micro_runs" duration_ms="$micro_ms"
rmmod sdbench
klog_since "$mark" >"$work/micro.log"
grep -q '^sdbench: done$' "$work/micro.log" || {
	cat "$work/micro.log" >&2
	echo "bench-guest: sdbench did not finish" >&2
	exit 1
}
sed -n "s/^sdbench: result /micro vcpus=$vcpus /p" "$work/micro.log" >>"$raw"
sed -n "s/^sdbench: check /# micro check ($vcpus vCPUs): /p" "$work/micro.log" >>"$raw"
sed -n "s/^sdbench: gate check=/# micro gate ($vcpus vCPUs): check=/p" "$work/micro.log" >>"$raw"
# The same gate built with SAFEDETACH_VARIANT=load_test (a load and a test
# of `closing` after each increment, as before the static key), right after
# the others in the same guest: its rows are "gate_load_test".
say "micro: insmod the load_test build of sdbench.ko only=gate"
mark=$(klog_mark)
insmod $B/micro-lt/bench/sdbench.ko runs="$micro_runs" duration_ms="$micro_ms" only=gate
rmmod sdbench
klog_since "$mark" >"$work/micro-lt.log"
grep -q '^sdbench: gate check=load-and-test$' "$work/micro-lt.log" && grep -q '^sdbench: done$' "$work/micro-lt.log" || {
	cat "$work/micro-lt.log" >&2
	echo "bench-guest: the load_test build of sdbench did not finish, or is not the load_test build" >&2
	exit 1
}
sed -n "s/^sdbench: result prim=gate /micro vcpus=$vcpus prim=gate_load_test /p" "$work/micro-lt.log" >>"$raw"
say "micro: $(grep -c '^micro ' "$raw") samples"
fi

# --- rw: small transfers with and without the gate --------------------------
if phase rw; then
say "rw: $rw_runs alternating runs of gate / no_gate, sizes 1 and 64," \
	"1 and 2 processes, ${rw_secs} s each (about $(awk "BEGIN { print int($rw_runs * (8 * $rw_secs * 1.3 + 3)) }") s)"
for run in $(seq "$rw_runs"); do
	# Alternate which variant goes first, so a drift in the host's speed
	# does not favour one of them.
	if [ $((run % 2)) -eq 1 ]; then order="gate nogate"; else order="nogate gate"; fi
	for v in $order; do
		insmod $B/$v/safedetach.ko units=2 capacity=4096
		wait_for_dev ${DEV}0
		wait_for_dev ${DEV}1
		for size in 1 64; do
			for procs in 1 2; do
				devs=(${DEV}0)
				[ "$procs" = 2 ] && devs+=(${DEV}1)
				line=$($B/sdrw "$rw_secs" "$size" "${devs[@]}")
				case $line in
				*FAILED*) echo "bench-guest: $line" >&2; exit 1 ;;
				esac
				record "rw variant=$v run=$run ${line#sdrw: }"
			done
		done
		rmmod safedetach
	done
	say "rw: run $run of $rw_runs done ($(grep "^rw variant=gate run=$run size=1 procs=1 " "$raw" | grep -o 'ns=[0-9.]*') vs" \
		"$(grep "^rw variant=nogate run=$run size=1 procs=1 " "$raw" | grep -o 'ns=[0-9.]*') per 1-byte pair)"
done
fi

# --- unload: rmmod under busy clients ----------------------------------------
if phase unload; then
say "unload: $unload_runs runs of rmmod with $unload_clients busy clients"
record "# guest: unload: safedetach.ko units=4, clients are 'tests/sdtool stress' on all 4 units, started ${unload_warmup} s before delete_module()"
seed=1
for run in $(seq "$unload_runs"); do
	for n in $unload_clients; do
		insmod $B/gate/safedetach.ko units=4 capacity=4096
		for d in 0 1 2 3; do wait_for_dev $DEV$d; done
		for i in $(seq "$n"); do
			$SDTOOL stress 600 $((seed++)) ${DEV}0 ${DEV}1 ${DEV}2 ${DEV}3 \
				>"$work/stress.$i" 2>&1 &
			clients+=($!)
		done
		[ "$n" -eq 0 ] || sleep "$unload_warmup"
		files=0
		for d in 0 1 2 3; do
			f=$($SDTOOL stats $DEV$d | grep -o 'open_files=[0-9]*')
			files=$((files + ${f#open_files=} - 1))
		done
		times=$(unload_timed safedetach)
		stop_clients
		bad=0
		for i in $(seq "$n"); do
			grep -q 'undocumented=0$' "$work/stress.$i" || bad=$((bad + 1))
		done
		[ "$bad" -eq 0 ] || {
			echo "bench-guest: $bad clients saw an undocumented errno:" >&2
			cat "$work"/stress.* >&2
			exit 1
		}
		record "unload clients=$n run=$run open_files=$files $times"
	done
	say "unload: run $run of $unload_runs done ($(grep "^unload .* run=$run " "$raw" | sed 's/.*clients=\([0-9]*\).*rmmod_us=\([0-9]*\).*/\1:\2us/' | tr '\n' ' '))"
done
fi

# --- units: rmmod of 1 and of 64 idle units -----------------------------------
if phase units; then
say "units: $units_runs runs of rmmod of safedetach.ko units=1 and units=64, no client"
for run in $(seq "$units_runs"); do
	# Alternate the order, as rw does.
	if [ $((run % 2)) -eq 1 ]; then order="1 64"; else order="64 1"; fi
	for n in $order; do
		insmod $B/gate/safedetach.ko units="$n" capacity=4096
		wait_for_dev $DEV$((n - 1))
		# Let udev-less device creation and the loader settle.
		sleep 0.5
		record "units n=$n run=$run $(unload_timed safedetach)"
	done
	say "units: run $run of $units_runs done ($(grep "^units n=.* run=$run " "$raw" | sed 's/units n=\([0-9]*\).*rmmod_us=\([0-9]*\).*/\1:\2us/' | tr '\n' ' '))"
done
fi

# --- unplug: detach a busy unit, the others keep working ----------------------
if phase unplug; then
say "unplug: $unplug_runs runs of: detach unit 0 under $unplug_clients busy clients," \
	"one client on each of units 1 to 3 counting its pairs"
record "# guest: unplug: safedetach.ko units=4; $unplug_clients clients on unit 0 (write, read, sleep 1 ms; exit on ENODEV), 1 client on each of units 1-3 (write+read pairs, counted every 5 ms); detach 1 s after the start"
for run in $(seq "$unplug_runs"); do
	insmod $B/gate/safedetach.ko units=4 capacity=4096
	for d in 0 1 2 3; do wait_for_dev $DEV$d; done
	mark=$(klog_mark)
	line=$($B/sdunplug 1000 1000 0 "$unplug_clients" ${DEV}0 ${DEV}1 ${DEV}2 ${DEV}3)
	case $line in
	sdunplug:*) ;;
	*) echo "bench-guest: sdunplug failed: $line" >&2; exit 1 ;;
	esac
	# "detached in N us (lock N us, close N us (key N us, barrier N us),
	# unpublish N us, wake N us)"
	steps=$(klog_since "$mark" | sed -n 's/.*safedetach0: detached in \([0-9]*\) us (lock \([0-9]*\) us, close \([0-9]*\) us (key \([0-9]*\) us, barrier \([0-9]*\) us), unpublish \([0-9]*\) us, wake \([0-9]*\) us).*/kernel_us=\1 lock_us=\2 close_us=\3 key_us=\4 barrier_us=\5 unpublish_us=\6 wake_us=\7/p' | head -n1)
	[ -n "$steps" ] || { echo "bench-guest: no 'detached in' line in the kernel log" >&2; exit 1; }
	kus=${steps#kernel_us=}; kus=${kus%% *}
	record "unplug run=$run ${line#sdunplug: } $steps"
	rmmod safedetach
	say "unplug: run $run of $unplug_runs: $(echo "$line" | grep -o 'detach_us=[0-9]*'), in the kernel $kus us," \
		"others $(echo "$line" | sed 's/.*before=\([0-9]*\) during=\([0-9]*\) after=\([0-9]*\).*/\1 -> \2 -> \3/') pairs/s"
done
fi

if dmesg | grep -Eq 'BUG:|WARNING:|Oops|INFO: task|soft lockup'; then
	dmesg | grep -E -A5 'BUG:|WARNING:|Oops|INFO: task|soft lockup' >&2
	echo "bench-guest: the kernel log has errors" >&2
	exit 1
fi
record "# guest: kernel log clean (no BUG, WARNING, Oops, hung task, soft lockup)"
say "done"
