#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# CPU hotplug against the gate. The drain sums each counter over every
# *possible* CPU: a task that entered on a CPU and migrated before that CPU
# went offline left its entrance in the offline CPU's copy, and its exit is
# counted elsewhere. Offlining a CPU must lose no count, neither while
# clients run nor while rmmod drains. CPUs are switched through
# /sys/devices/system/cpu/cpuN/online (CPU 0 stays online).
set -uo pipefail
. "$(dirname -- "$0")/lib.sh"

# The CPUs that can go offline.
hotpluggable() {
	local c max
	max=$(cat /sys/devices/system/cpu/kernel_max)
	for ((c = 1; c <= max; c++)); do
		[ ! -e /sys/devices/system/cpu/cpu$c/online ] || echo $c
	done
}

cpu_set() { echo "$2" >/sys/devices/system/cpu/cpu$1/online; }

# all_online: bring every CPU back (also after a failed case).
all_online() {
	local c
	for c in $(hotpluggable); do
		[ "$(cat /sys/devices/system/cpu/cpu$c/online)" = 1 ] || cpu_set "$c" 1
	done
}

# toggle_cpus ROUNDS: offline and online every hotpluggable CPU, ROUNDS times.
toggle_cpus() {
	local r c
	for ((r = 1; r <= $1; r++)); do
		for c in $(hotpluggable); do
			cpu_set "$c" 0 || fail "cpu$c did not go offline"
			cpu_set "$c" 1 || fail "cpu$c did not come back online"
		done
	done
}

# check_clients N: stop stress clients client0..N-1 and check that they did
# real work and saw only documented errnos.
check_clients() {
	local i ok=0 n
	for ((i = 0; i < $1; i++)); do
		kill -TERM "$(bg_pid client$i)" 2>/dev/null || true
	done
	for ((i = 0; i < $1; i++)); do
		bg_wait client$i 30 || fail "client$i: $(cat "$WORK/client$i.out")"
		log "client$i: $(cat "$WORK/client$i.out")"
		n=$(sed -n 's/.*stress: ok=\([0-9]*\) .*/\1/p' "$WORK/client$i.out")
		ok=$((ok + ${n:-0}))
	done
	[ $ok -gt 0 ] || fail "the clients completed no operation"
}

test_clients_under_hotplug() {
	local i devs
	[ -n "$(hotpluggable)" ] || fail "no CPU can go offline (the guest needs 2 or more)"
	load
	devs=$(echo ${DEV}{0..3})
	for ((i = 0; i < 4; i++)); do
		# shellcheck disable=SC2086
		bg_start client$i "$SDTOOL" stress 600 $((i + 1)) $devs
	done
	toggle_cpus 4
	log "$(hotpluggable | wc -l) CPU(s) went offline and online 4 times"
	check_clients 4
	unload
}

# A holder opens on the last CPU, moves to CPU 0, and the last CPU goes
# offline: its entrance is now only in the offline CPU's copy. The drain
# must still count it: rmmod waits and names the holder until it closes.
test_count_on_offline_cpu() {
	local cpu pid mark
	cpu=$(hotpluggable | tail -n1)
	[ -n "$cpu" ] || fail "no CPU can go offline"
	load
	bg_start hold taskset -c "$cpu" "$SDTOOL" hold ${DEV}2
	wait_out hold holding 120
	pid=$(bg_pid hold)
	# More passes that begin and end on that CPU.
	taskset -c "$cpu" "$SDTOOL" stats ${DEV}2 >/dev/null
	taskset -p -c 0 "$pid" >/dev/null
	cpu_set "$cpu" 0
	log "pid $pid opened ${DEV}2 on cpu$cpu, which is now offline"
	mark=$(klog_mark "offline holder")
	rmmod_bg
	wait_until 60 "the log to name pid $pid" klog_has "$mark" "safedetach2: held open by pid $pid (sdtool)"
	bg_running rmmod || fail "rmmod returned while a file opened on an offline CPU was open"
	kill -USR1 "$pid"
	wait_out hold '^read: ENODEV$' 120
	kill -TERM "$pid"
	bg_wait hold 10
	bg_wait rmmod "$UNLOAD_TIMEOUT" || fail "rmmod did not return after the holder closed"
	wait_until 10 "/sys/module/$MODNAME to vanish" is_unloaded
	cpu_set "$cpu" 1
}

# CPUs go offline and online while rmmod waits for a holder and clients
# hammer the closing units.
test_hotplug_during_drain() {
	local i pid devs
	[ -n "$(hotpluggable)" ] || fail "no CPU can go offline"
	load
	bg_start hold "$SDTOOL" hold ${DEV}1
	wait_out hold holding 120
	pid=$(bg_pid hold)
	devs=$(echo ${DEV}{0..3})
	for ((i = 0; i < 4; i++)); do
		# shellcheck disable=SC2086
		bg_start client$i "$SDTOOL" stress 600 $((i + 11)) --retry-ms 300 $devs
	done
	wait_until 120 "data to flow" sh -c "$SDTOOL stats ${DEV}0 | grep -Eq 'opens=([2-9]|[1-9][0-9]+)'"
	rmmod_bg
	wait_until 30 "rmmod to wait for the holder" task_blocked "$(bg_pid rmmod)" "$NR_delete_module"
	toggle_cpus 3
	bg_running rmmod || fail "rmmod returned while a file was open"
	kill -TERM "$pid"
	bg_wait hold 10
	bg_wait rmmod "$UNLOAD_TIMEOUT" || fail "rmmod did not return after the holder closed"
	wait_until 10 "/sys/module/$MODNAME to vanish" is_unloaded
	check_clients 4
}

# run_hotplug_case DESCRIPTION FUNCTION: run_case, then every CPU online.
run_hotplug_case() {
	run_case "$1" "$2"
	all_online
}

require_module
ktap_print_header
ktap_set_plan 3
run_hotplug_case "clients while CPUs go offline and online" test_clients_under_hotplug
run_hotplug_case "rmmod counts what an offline CPU counted" test_count_on_offline_cpu
run_hotplug_case "CPUs go offline and online while rmmod drains" test_hotplug_during_drain
ktap_finished
