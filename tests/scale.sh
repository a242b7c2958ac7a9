#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The driver at scale and at its edges: 10,000 and 100,000 open files on one
# unit (open and close cost, a bounded drain report), a holder inside a PID
# namespace, the truth of poll readiness, and a reader whose copy to user
# space is stuck in a page fault while rmmod runs.
set -uo pipefail
. "$(dirname -- "$0")/lib.sh"

# The number of distinct processes one drain report names (NAMED_HOLDERS in
# rust/gate.rs); a report is at most NAMED_HOLDERS + 2 lines.
NAMED_HOLDERS=8

# first_report MARK UNIT: the lines of UNIT's first drain report after MARK.
first_report() {
	klog_since "$1" | awk -v u="$2: " '
		!n && index($0, u "unload waiting") { n = 1; print; next }
		n && index($0, u "held open by") { print; next }
		n { exit }'
}

# Holds N files of unit 0 open from PROCS processes, unloads, checks the
# drain's first report, then closes them all.
many_holders() {
	local n=$1 procs=$2 per i pid mark lines want named rest
	per=$((n / procs))
	[ "$(cat /proc/sys/fs/file-max)" -ge $((n + 20000)) ] ||
		echo $((n + 20000)) >/proc/sys/fs/file-max
	load units=1
	for i in $(seq 1 "$procs"); do
		bg_start many$i "$SDTOOL" holdmany ${DEV}0 "$per"
	done
	for i in $(seq 1 "$procs"); do
		wait_out many$i '^holding$' 900 || return 1
	done
	log "$(grep opened "$WORK/many1.out") (process 1 of $procs)"
	"$SDTOOL" stats ${DEV}0 >"$WORK/stats.out"
	expect_out stats " open_files=$((n + 1)) " || return 1
	mark=$(klog_mark "$n holders")
	rmmod_bg
	# A report is printed at once, line after line: it is complete when
	# its last line is there.
	if [ "$procs" -gt $NAMED_HOLDERS ]; then
		want=$((NAMED_HOLDERS + 2))
	else
		want=$((procs + 1))
	fi
	wait_until 60 "a $want-line drain report" report_has_lines "$mark" "$want" || {
		first_report "$mark" safedetach0 | sed 's/^/#   /'
		return 1
	}
	first_report "$mark" safedetach0 | sed 's/^.*safedetach0/# safedetach0/'
	lines=$(first_report "$mark" safedetach0 | wc -l)
	log "one report: $lines log lines for $n open files of $procs process(es)"
	[ "$lines" -eq "$want" ] || fail "the report has $lines lines, not $want"
	named=$(first_report "$mark" safedetach0 | grep -c "held open by pid [0-9]* (sdtool), $per file(s)" || true)
	[ "$named" -eq "$((want - 1 - (procs > NAMED_HOLDERS)))" ] ||
		fail "$named processes named with $per files each"
	if [ "$procs" -gt $NAMED_HOLDERS ]; then
		rest=$(((procs - NAMED_HOLDERS) * per))
		first_report "$mark" safedetach0 | grep -q "held open by other processes: $rest more file(s)" ||
			fail "the other $rest files are not counted"
	fi
	for i in $(seq 1 "$procs"); do
		pid=$(bg_pid many$i)
		first_report "$mark" safedetach0 | grep -q "held open by pid $pid (sdtool)" ||
			[ "$i" -gt $NAMED_HOLDERS ] || [ "$procs" -gt $NAMED_HOLDERS ] ||
			fail "holder $pid is not named"
	done
	bg_running rmmod || fail "rmmod returned while $n files were open"
	for i in $(seq 1 "$procs"); do
		kill -TERM "$(bg_pid many$i)"
	done
	for i in $(seq 1 "$procs"); do
		bg_wait many$i 900 || return 1
	done
	log "$(grep closed "$WORK/many1.out") (process 1 of $procs, during the drain)"
	rmmod_done
	log "the module printed $(klog_since "$mark" | grep -c 'safedetach0:') lines while $n files kept it waiting"
}

# report_has_lines MARK N: unit 0's first report after MARK has N lines.
report_has_lines() { [ "$(first_report "$1" safedetach0 | wc -l)" -ge "$2" ]; }

test_10k_holders() { many_holders 10000 10; }

test_100k_holders() { many_holders 100000 1; }

# The drain names a holder by the pid that the person running rmmod sees,
# not the pid inside the holder's namespace (which is 1 here).
test_pidns_holder() {
	local pid mark
	load
	bg_start nsh unshare --pid --fork "$SDTOOL" hold ${DEV}0
	wait_out nsh holding 120 || return 1
	pid=$(pgrep -s "$(bg_pid nsh)" -x sdtool)
	[ -n "$pid" ] || fail "no sdtool in the namespace's session" || return 1
	grep -q "^NSpid:.*[[:space:]]1$" /proc/"$pid"/status ||
		fail "sdtool is not pid 1 of a new namespace: $(grep NSpid /proc/"$pid"/status)"
	mark=$(klog_mark "pid namespace holder")
	rmmod_bg
	wait_until 60 "the log to name pid $pid" klog_has "$mark" "safedetach0: held open by pid $pid (sdtool)" ||
		{ klog_since "$mark" | grep safedetach0 | sed 's/^/#   /'; return 1; }
	! klog_has "$mark" "held open by pid 1 (" || fail "the holder was named by its namespace's pid"
	kill -TERM "$pid"
	bg_wait nsh 30
	rmmod_done
}

# POLLIN means a read returns data, POLLOUT that a write of the atomic size
# fits: checked at the fill levels around the threshold, with capacities
# below, at and above SAFEDETACH_ATOMIC_MAX.
test_readiness_states() {
	local cap
	for cap in 100 4096 8192; do
		load units=1 capacity=$cap
		python3 "$TESTS_DIR/polltruth.py" ${DEV}0 $cap states >"$WORK/states.out" 2>&1 ||
			{ sed 's/^/#   /' "$WORK/states.out"; fail "capacity $cap: untrue readiness"; return 1; }
		log "$(tail -n1 "$WORK/states.out")"
		unload
	done
}

# A level-triggered writer that is told POLLOUT must not get EAGAIN (it
# would spin), edge-triggered clients must not stall: 1 MiB each way.
test_epoll_progress() {
	local cap mode
	for cap in 4096 8192; do
		for mode in lt et; do
			load units=1 capacity=$cap
			python3 "$TESTS_DIR/polltruth.py" ${DEV}0 $cap $mode >"$WORK/epoll.out" 2>&1 ||
				{ sed 's/^/#   /' "$WORK/epoll.out"; fail "capacity $cap, $mode"; return 1; }
			log "capacity $cap: $(grep -h '^writer\|^reader' "$WORK/epoll.out" | tr '\n' ' ')"
			unload
		done
	done
}

# A reader's copy_to_user() is parked in a userfaultfd fault nobody serves,
# holding its unit's FIFO lock. rmmod must still wake the next unit's
# sleeper and report the stuck call; once the fault is served the read
# completes and so does the unload. (A second call on the stuck unit would
# wait for the lock in D state and draw a hung-task report; design.rst,
# "User copies and the FIFO lock".)
test_uffd_stuck_reader() {
	local pid mark
	load units=2
	printf 'data' >${DEV}0
	bg_start uffd "$SDTOOL" uffd-read ${DEV}0
	wait_out uffd 'fault at read' 120 || return 1
	wait_blocked uffd handle_userfault || return 1
	pid=$(bg_pid uffd)
	bg_start reader1 "$SDTOOL" block-read ${DEV}1
	wait_out reader1 blocking 120
	wait_blocked reader1 $NR_read || return 1
	mark=$(klog_mark "stuck user copy")
	rmmod_bg
	bg_wait reader1 60 || fail "the next unit's reader was not woken" || return 1
	expect_out reader1 '^read: ENODEV$'
	wait_until 60 "the stuck call to be reported" klog_has "$mark" \
		"safedetach0: unload waiting" || return 1
	klog_since "$mark" | grep -q "safedetach0: unload waiting .*1 call(s) in flight" ||
		fail "the stuck copy is not reported as a call in flight"
	bg_running rmmod || fail "rmmod returned while a call was in flight"
	task_blocked "$pid" handle_userfault || fail "the reader left the fault before it was served"
	# One signal: sdtool waits for it with sigsuspend(), which loses none.
	kill -USR1 "$pid"
	wait_out uffd 'fault served' 30 || return 1
	bg_wait uffd 60
	expect_out uffd '^read: 4$'
	rmmod_done
}

require_module
TESTS_DIR=$(cd -- "$(dirname -- "$0")" && pwd)
ktap_print_header
ktap_set_plan 6
run_case "10,000 open files of 10 processes: bounded report, open and close" test_10k_holders
run_case "100,000 open files of one process: open, report, close" test_100k_holders
run_case "a holder in a PID namespace is named by its initial-namespace pid" test_pidns_holder
run_case "POLLIN and POLLOUT tell the truth at every fill level" test_readiness_states
run_case "level- and edge-triggered epoll clients progress without spinning" test_epoll_progress
run_case "rmmod while a reader is stuck in a userfaultfd fault" test_uffd_stuck_reader
ktap_finished
