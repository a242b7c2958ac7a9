# SPDX-License-Identifier: GPL-2.0
#
# Shared helpers of the safedetach selftests; sourced by every test script.
#
# The tests run as root inside the test VM, with the host's file system (see
# scripts/vm-run.sh), so the module and sdtool are used where they were
# built. Environment:
#   SAFEDETACH_KO   the module to test (default: ../safedetach.ko)
#   KTAP_HELPERS    the kernel's tools/testing/selftests/kselftest/ktap_helpers.sh
#   SDTOOL          the sdtool binary (default: the one built next to this file)
#   UNLOAD_TIMEOUT  seconds rmmod may take once nothing holds the module (60)
#   SAFEDETACH_CASES  a regex: run only the cases whose description matches
#                   it, report the others as skipped (make check-teeth)

TESTS_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
SAFEDETACH_KO=${SAFEDETACH_KO:-$TESTS_DIR/../safedetach.ko}
SDTOOL=${SDTOOL:-$TESTS_DIR/sdtool}
MODNAME=safedetach
DEV=/dev/safedetach

if [ -z "${KTAP_HELPERS:-}" ] || [ ! -r "$KTAP_HELPERS" ]; then
	echo "lib.sh: KTAP_HELPERS must point to the kernel's ktap_helpers.sh" >&2
	exit 4 # KSFT_SKIP
fi
# shellcheck source=/dev/null
. "$KTAP_HELPERS"

# KLOG_BAD, TAINT_LETTERS, TAINT_EXPECTED.
# shellcheck source=klog-patterns.sh
. "$TESTS_DIR/klog-patterns.sh"

# log MSG...: a KTAP diagnostic line.
log() { echo "# $*"; }

# fail MSG...: print why the current case fails, and fail it. The reason
# also goes to the kernel log, in order with the kernel's own reports: a
# broken build can panic the guest right after a case fails, before the
# case's output has reached the host, and the console shows what the log
# holds up to the panic (make check-teeth reads the reason from either).
fail() {
	log "FAIL: $*"
	echo "safedetach-selftest: FAIL: $*" >/dev/kmsg 2>/dev/null || true
	return 1
}

# Every bound on a wait (wait_until, bg_wait and what uses them) is
# multiplied by SAFEDETACH_TIMEOUT_SCALE (a whole number, default 1).
# scripts/check.sh raises it when guests share the host's cores
# (GUESTS=...): the bounds say how long the emulation may take for
# something to happen, they are not performance claims, and a state that is
# never reached (a sleeper never woken) still fails, only later.
TIMEOUT_SCALE=${SAFEDETACH_TIMEOUT_SCALE:-1}
[[ $TIMEOUT_SCALE =~ ^[1-9][0-9]*$ ]] || TIMEOUT_SCALE=1

# nap SECS: sleep without starting a process. In the debug guest (KASAN,
# lockdep, kmemleak, under TCG) one fork and exec of /bin/true takes about
# 0.35 s, and the polling loops below run for minutes: with sleep(1) they
# took CPU time from what they wait for. read's timeout on a pipe that
# nobody writes to sleeps in the shell itself.
exec {NAP_FD}<> <(:)
nap() { read -rt "$1" -u "$NAP_FD" _ || true; }

# now_us: set NOW_US to the time in microseconds (EPOCHREALTIME, no fork).
now_us() { NOW_US=${EPOCHREALTIME/[.,]/}; }

# wait_until TIMEOUT WHAT CMD...: poll CMD until it succeeds; fail after
# TIMEOUT s (times TIMEOUT_SCALE). Between two polls it sleeps 0.1 s, or
# twice as long as CMD took if that is longer (at most 2 s): a CMD that
# starts processes (0.3 to 3 s of vCPU time each in the debug guest: dmesg,
# grep, sdtool) then keeps at most a third of a vCPU busy, and leaves the
# rest to what it waits for.
wait_until() {
	local timeout=$(($1 * TIMEOUT_SCALE)) what=$2 deadline t0 us frac
	shift 2
	deadline=$((SECONDS + timeout))
	while now_us; t0=$NOW_US; ! "$@"; do
		if [ $SECONDS -ge $deadline ]; then
			fail "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		now_us
		us=$((2 * (NOW_US - t0)))
		((us >= 100000)) || us=100000
		((us <= 2000000)) || us=2000000
		printf -v frac %06d $((us % 1000000))
		nap "$((us / 1000000)).$frac"
	done
}

is_loaded() { [ -d /sys/module/$MODNAME ]; }
is_unloaded() { [ ! -e /sys/module/$MODNAME ]; }

# load [PARAM=VALUE...]: insmod and wait for the first node.
load() {
	insmod "$SAFEDETACH_KO" "$@" || fail "insmod $* failed" || return 1
	wait_until 10 "${DEV}0" test -c "${DEV}0"
}

# How long rmmod may take when nothing holds the module (make check-teeth
# lowers it: a broken variant that hangs rmmod need not waste a minute).
UNLOAD_TIMEOUT=${UNLOAD_TIMEOUT:-60}

# unload [TIMEOUT]: rmmod, which must return 0 within TIMEOUT s (default
# UNLOAD_TIMEOUT), then wait for the module to vanish. rmmod runs at the
# test's own priority, not at the clients' (bg_start). A module exit that
# waits cannot be interrupted (rmmod sleeps uninterruptibly in the kernel,
# and `timeout rmmod` would wait for ever), so rmmod runs in the background
# and is left running if it times out: cleanup() then frees it. (bg_start
# and bg_wait are defined below; they are looked up when unload runs.)
unload() {
	local timeout=${1:-$UNLOAD_TIMEOUT}
	BG_NICE=0 bg_start unload rmmod $MODNAME
	bg_wait unload "$timeout" || {
		drain_report
		fail "rmmod did not return 0 within $((timeout * TIMEOUT_SCALE))s: $(cat "$WORK/unload.out")"
		return 1
	}
	wait_until 10 "/sys/module/$MODNAME to vanish" is_unloaded
}

# drain_report: what an unload that does not end waits for, as diagnostics:
# the module's status file (each unit still draining, its open files and
# calls in flight, and the processes that hold it open), then the state,
# kernel wait channel and command line of each process it names and of
# each task asleep in the module (a call in flight, a drain, rmmod), with
# the top of its kernel stack.
drain_report() {
	local status=/sys/kernel/debug/$MODNAME/status line pid t wchan cmd
	local -A pids=()
	if [ -r "$status" ]; then
		while IFS= read -r line; do
			log "status: $line"
			[[ $line =~ "held open by pid "([0-9]+)" " ]] && pids[${BASH_REMATCH[1]}]=1
		done <"$status"
	else
		log "status: $status is not there"
	fi
	for t in /proc/[0-9]*/task/[0-9]*; do
		wchan=
		read -r wchan 2>/dev/null <"$t/wchan" || [ -n "$wchan" ] || continue
		[[ $wchan =~ $MODNAME ]] && pids[${t##*/}]=1
	done
	for pid in $(printf '%s\n' "${!pids[@]}" | sort -n); do
		proc_state "$pid"
		cmd=$(tr '\0' ' ' </proc/$pid/cmdline 2>/dev/null)
		# A kernel thread (a drain's worker) has no command line.
		[ -n "$cmd" ] || cmd="[$(cat /proc/$pid/comm 2>/dev/null)]"
		log "pid $pid: state ${STATE:-gone}, wchan $(cat /proc/$pid/wchan 2>/dev/null), command $cmd"
		sed 's/^/#   /' /proc/$pid/stack 2>/dev/null | head -n 12
	done
}

# rmmod_bg: start rmmod in the background (as "rmmod").
rmmod_bg() { BG_NICE=0 bg_start rmmod rmmod $MODNAME; }

# rmmod_done: the background rmmod returned 0 within UNLOAD_TIMEOUT and the
# module is gone.
rmmod_done() {
	bg_wait rmmod "$UNLOAD_TIMEOUT" || {
		cat "$WORK/rmmod.out" | sed 's/^/#   /'
		drain_report
		fail "rmmod failed"
	}
	wait_until 10 "/sys/module/$MODNAME to vanish" is_unloaded
}

# bg_start NAME CMD...: run CMD in the background, output in $WORK/NAME.out.
# CMD gets a process group of its own, so that cleanup kills what it started.
#
# CMD runs at nice BG_NICE (default 10): background processes are the
# clients, and a case's own steps (insmod, rmmod, the checks) must not queue
# behind them for the guest's vCPUs. Measured in stress.sh with six clients
# at the same priority as the test: about 40 s passed between the end of
# `sleep 3` and the module's exit being called, most of each rmmod/insmod
# cycle. The clients still take every cycle the test leaves idle, the drain
# included, and the cases check that they raced with the unload.
BG_NICE=${BG_NICE:-10}
bg_start() {
	local name=$1
	shift
	[ "$BG_NICE" = 0 ] || set -- nice -n "$BG_NICE" "$@"
	setsid "$@" >"$WORK/$name.out" 2>&1 </dev/null &
	echo $! >"$WORK/$name.pid"
}

bg_pid() {
	local pid
	read -r pid <"$WORK/$1.pid"
	echo "$pid"
}

# proc_state PID: set STATE to PID's state letter (R, S, D, Z, ...), or to
# nothing if PID is gone. Builtins only (polled; a fork costs about 0.4 s in
# the debug guest); the command name in parentheses may hold spaces.
proc_state() {
	STATE=
	read -r STATE 2>/dev/null </proc/$1/stat || return 0
	STATE=${STATE##*) }
	STATE=${STATE%% *}
}

# exited PID: PID is gone or a zombie (kill -0 succeeds on a zombie).
exited() { proc_state "$1"; [ -z "$STATE" ] || [ "$STATE" = Z ]; }

# bg_exited NAME, bg_running NAME: whether background process NAME has
# exited (an unreaped zombie included), or not.
bg_exited() {
	local pid
	read -r pid <"$WORK/$1.pid"
	exited "$pid"
}
bg_running() { ! bg_exited "$1"; }

# bg_wait NAME TIMEOUT: wait for NAME to exit; its status is returned.
# (TIMEOUT is multiplied by TIMEOUT_SCALE.)
bg_wait() {
	local pid deadline timeout=$(($2 * TIMEOUT_SCALE))
	pid=$(bg_pid "$1")
	deadline=$((SECONDS + timeout))
	# kill -0 also succeeds on a zombie, and bash reaps a background child
	# only when it handles its SIGCHLD: a client that had printed its last
	# line and returned from main() "did not exit within 2400 s" in CI. A
	# zombie has exited; `wait` reaps it below.
	until exited "$pid"; do
		if [ $SECONDS -ge $deadline ]; then
			fail "$1 (pid $pid) did not exit within $timeout s:" \
				"state $STATE, wchan $(cat /proc/$pid/wchan 2>/dev/null)," \
				"shell's blocked signals $(sed -n 's/^SigBlk:\t//p' /proc/$$/status)"
			return 1
		fi
		nap 0.1
	done
	local st=0
	wait "$pid" 2>/dev/null || st=$?
	[ $st -eq 0 ] || log "$1 (pid $pid) exited with status $st$( ((st > 128)) && echo " (signal $((st - 128)))")"
	return $st
}

# out_has NAME REGEX: NAME's output matches REGEX.
# (Builtins: it is polled, by wait_out. Bash's =~ is the same POSIX ERE as
# grep -E.)
out_has() {
	local line
	# bg_start's child creates the file; it may not have run yet.
	[ -e "$WORK/$1.out" ] || return 1
	while IFS= read -r line || [ -n "$line" ]; do
		[[ $line =~ $2 ]] && return 0
	done <"$WORK/$1.out"
	return 1
}

# expect_out NAME REGEX: fail, showing the output, unless it matches.
expect_out() {
	out_has "$1" "$2" && return 0
	log "$1 printed:"
	sed 's/^/#   /' "$WORK/$1.out"
	fail "$1: expected /$2/"
}

# wait_out NAME REGEX TIMEOUT: wait until NAME's output matches.
wait_out() { wait_until "$3" "$1 to print /$2/" out_has "$1" "$2"; }

# klog_mark NAME: write a unique marker line to the kernel log and print it.
# A case's window of the log starts at its marker, wherever the log has
# wrapped to; klog_since fails if the marker is gone.
klog_mark() {
	local m
	m="safedetach-selftest: ${1:-mark} $$-$SRANDOM$SRANDOM-${EPOCHREALTIME/./}"
	echo "$m" >/dev/kmsg
	echo "$m"
}

# klog_since MARK: the kernel log lines after the line that ends with MARK;
# status 3 if MARK is not in the log (any more). A reader may stop early
# (grep -q): the SIGPIPE that then ends the writer is not a failure, which
# pipefail and errexit would otherwise make it.
klog_since() {
	local st=0
	dmesg | awk -v m="$1" 'seen { print } !seen && index($0, m) { seen = 1 }
		END { exit seen ? 0 : 3 }' || st=$?
	[ $st -eq 141 ] && st=0
	return $st
}

# klog_has MARK TEXT: the kernel log after MARK has a line containing TEXT.
klog_has() { klog_since "$1" | grep -qF -- "$2"; }

# taint_letters MASK: the taint flags of MASK as letters.
taint_letters() {
	local mask=$1 i out=
	for ((i = 0; i < ${#TAINT_LETTERS}; i++)); do
		(((mask >> i) & 1)) && out+=${TAINT_LETTERS:i:1}
	done
	echo "${out:-none}"
}

# tainted: the kernel's taint mask.
tainted() {
	local t
	read -r t </proc/sys/kernel/tainted
	echo "$t"
}

# lockdep_on: lockdep has not turned itself off (after its first report
# it stops checking, and every later case would pass unchecked).
lockdep_on() {
	local line
	while read -r line; do
		[[ $line =~ ^debug_locks:\ +([0-9]+)$ ]] && { [ "${BASH_REMATCH[1]}" = 1 ]; return; }
	done </proc/lockdep_stats
	return 1
}

# klog_check MARK TAINT: fail, showing why, if bad lines were logged after
# MARK, if MARK is gone, if a taint flag other than those in TAINT (and O)
# appeared, or if lockdep turned itself off.
klog_check() {
	local bad st=0 new
	# One pass over the log: the bad lines after MARK, each with the 25
	# lines that follow it (status 3: MARK is gone).
	bad=$(dmesg | awk -v m="$1" -v re="$KLOG_BAD" '
		seen && $0 ~ re { ctx = 26 }
		seen && ctx > 0 { print; ctx-- }
		!seen && index($0, m) { seen = 1 }
		END { exit seen ? 0 : 3 }') || st=$?
	if [ $st -eq 3 ]; then
		fail "the case's marker is gone from the kernel log (it wrapped): its reports cannot be checked"
		return 1
	fi
	new=$(($(tainted) & ~($2 | TAINT_EXPECTED)))
	if [ -n "$bad" ]; then
		log "kernel log:"
		printf '%s\n' "$bad" | sed -n 's/^/#   /; 1,60p'
		st=1
		log "FAIL: the kernel log has errors"
	fi
	if [ $new -ne 0 ]; then
		log "FAIL: the kernel was tainted $(taint_letters $new) during the case"
		st=1
	fi
	if ! lockdep_on; then
		log "FAIL: lockdep has turned itself off (debug_locks is 0)"
		st=1
	fi
	return $((st != 0))
}

# session_tasks PID: set TASKS to the /proc/PID/task/TID directories of
# every thread of every process in session PID (bg_start gives each client
# its own). Builtins only: task_blocked is polled, and pgrep alone took 2 to
# 4 s of vCPU time in the debug guest.
session_tasks() {
	local d stat f
	TASKS=()
	for d in /proc/[0-9]*; do
		read -r stat 2>/dev/null <"$d/stat" || continue
		# After the command name: state, ppid, pgrp, session, ...
		read -ra f <<<"${stat##*) }"
		[ "${f[3]}" = "$1" ] && TASKS+=("$d"/task/*)
	done
}

# task_blocked PID SYSCALL: PID, or a thread or a process of its session
# (bg_start gives each client a session of its own), sleeps inside system
# call SYSCALL (a number, see /proc/PID/syscall) or, if SYSCALL is not a
# number, in a kernel function matching it (/proc/PID/wchan). Builtins only.
task_blocked() {
	local pid=$1 want=$2 t nr
	session_tasks "$pid"
	for t in "${TASKS[@]}"; do
		proc_state "${t#/proc/}"
		case $STATE in S | D) ;; *) continue ;; esac
		nr=
		if [[ $want =~ ^[0-9]+$ ]]; then
			read -r nr _ 2>/dev/null <"$t/syscall" || continue
			[ "$nr" = "$want" ] && return 0
		else
			# wchan has no newline: read fails at its end, having read it.
			read -r nr 2>/dev/null <"$t/wchan" || [ -n "$nr" ] || continue
			[[ $nr =~ $want ]] && return 0
		fi
	done
	return 1
}

# traffic_on UNIT...: every UNIT has had bytes written and read.
traffic_on() {
	local i
	for i in "$@"; do
		"$SDTOOL" stats ${DEV}$i | grep -Eq 'bytes_written=[1-9][0-9]* bytes_read=[1-9]' || return 1
	done
}

# wait_blocked NAME SYSCALL|WCHAN-REGEX: wait (up to 120 s) until background
# process NAME is asleep in that system call or kernel function; fail if it
# never gets there. This, not a sleep, is how a case knows that a client is
# blocked inside the driver before it unloads it.
wait_blocked() {
	local pid
	pid=$(bg_pid "$1")
	wait_until 120 "$1 (pid $pid) to block in $2" task_blocked "$pid" "$2" || {
		local t
		session_tasks "$pid"
		for t in "${TASKS[@]}"; do
			log "$1: ${t#/proc/}: state $(cut -d' ' -f3 "$t/stat" 2>/dev/null)," \
				"wchan $(cat "$t/wchan" 2>/dev/null), syscall $(cut -d' ' -f1 "$t/syscall" 2>/dev/null)"
		done
		return 1
	}
}

# System call numbers for wait_blocked (x86_64 and the generic table of
# arm64 differ; /proc/PID/syscall reports the native number).
case $(uname -m) in
x86_64) NR_read=0 NR_write=1 NR_io_uring_enter=426 NR_delete_module=176 ;;
aarch64) NR_read=63 NR_write=64 NR_io_uring_enter=426 NR_delete_module=106 ;;
esac
# Where a task sleeps in epoll_wait() and in select().
EPOLL_WCHAN="ep_poll|do_epoll_wait"
SELECT_WCHAN="do_select|poll_schedule_timeout|core_sys_select"

# cleanup: kill what a case left running and unload the module.
cleanup() {
	local f pid
	for f in "$WORK"/*.pid; do
		[ -e "$f" ] || continue
		read -r pid <"$f"
		kill -KILL -- "-$pid" "$pid" 2>/dev/null || true
	done
	ensure_unloaded
	rm -f "$WORK"/*.pid "$WORK"/*.out
}

# running COMM: a process named COMM exists (pgrep -x, with builtins).
running() {
	local d comm
	for d in /proc/[0-9]*; do
		read -r comm 2>/dev/null <"$d/comm" || continue
		[ "$comm" = "$1" ] && return 0
	done
	return 1
}

# ensure_unloaded: unload the module if it is loaded, waiting up to 2 min.
ensure_unloaded() {
	is_loaded || return 0
	# An rmmod a case started may still be waiting; start one if not.
	running rmmod || { rmmod $MODNAME >/dev/null 2>&1 & }
	for _ in $(seq 600); do
		is_loaded || return 0
		nap 0.2
	done
	log "cleanup: $MODNAME is still loaded"
	drain_report
}

# guest_usage: set FORKS to the processes started since boot and CPU_CS to
# the CPU time the guest's vCPUs spent busy, in 1/100 s (all CPUs summed:
# user, nice, system, irq, softirq, steal; not idle or iowait), from
# /proc/stat, with builtins.
guest_usage() {
	local key a b c d e f g h rest
	FORKS=0 CPU_CS=0
	while read -r key a b c d e f g h rest; do
		case $key in
		cpu) CPU_CS=$(((a + b + c + f + g + h) * 100 / USER_HZ)) ;;
		processes) FORKS=$a ;;
		esac
	done </proc/stat
}
USER_HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run_case DESCRIPTION FUNCTION [ARGS...]: run one test case.
#
# FUNCTION runs in a subshell with errexit: any failing command fails the
# case. (So the test scripts themselves run without `set -e`.)
# The case passes if FUNCTION returns 0 and the kernel log stays clean.
# Whatever happens, background processes are killed and the module unloaded.
run_case() {
	local desc=$1 mark rc=0 start taint
	shift
	CASE_NR=$((CASE_NR + 1))
	if [ -n "${SAFEDETACH_CASES:-}" ] && ! [[ $desc =~ $SAFEDETACH_CASES ]]; then
		ktap_test_skip "$desc (not selected by SAFEDETACH_CASES)"
		return
	fi
	mark=$(klog_mark "${0##*/} case $CASE_NR begin")
	taint=$(tainted)
	start=$SECONDS
	guest_usage
	local forks0=$FORKS cpu0=$CPU_CS
	log "case: $desc"
	# errexit only works in a subshell that is not itself tested with ||.
	( set -e; "$@" )
	rc=$?
	cleanup
	klog_check "$mark" "$taint" || rc=1
	guest_usage
	# What the case cost the guest: the processes it started (in the debug
	# guest each fork and exec costs 0.3 to 1 s of vCPU time) and the
	# vCPU time, of the case and of anything else that ran meanwhile.
	local cs
	printf -v cs %02d $(((CPU_CS - cpu0) % 100))
	log "took $((SECONDS - start)) s, $((FORKS - forks0)) processes," \
		"vCPU time $(((CPU_CS - cpu0) / 100)).$cs s"
	if [ $rc -eq 0 ]; then
		ktap_test_pass "$desc"
	else
		ktap_test_fail "$desc"
	fi
}

# require_module: skip everything if the module was not built.
require_module() {
	if [ ! -r "$SAFEDETACH_KO" ] || [ ! -x "$SDTOOL" ]; then
		ktap_print_header
		ktap_skip_all "build the module and sdtool first ($SAFEDETACH_KO, $SDTOOL)"
		exit "$KSFT_SKIP"
	fi
	ensure_unloaded
}

CASE_NR=0
WORK=$(mktemp -d /tmp/safedetach-test.XXXXXX)
trap 'cleanup; rm -rf "$WORK"' EXIT
