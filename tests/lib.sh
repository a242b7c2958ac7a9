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

# Kernel log lines that fail a test case, whatever the case checked.
KLOG_BAD='BUG:|WARNING:|KASAN|Oops|general protection fault|Kernel panic|'
KLOG_BAD+='kernel BUG|INFO: task .* blocked for more than|soft lockup|hard LOCKUP|'
KLOG_BAD+='detected stall|possible circular locking|possible recursive locking|'
KLOG_BAD+='inconsistent lock state|lock held when returning|UBSAN|refcount_t:|'
KLOG_BAD+='list_add corruption|list_del corruption|Unable to handle|segfault at'

# log MSG...: a KTAP diagnostic line.
log() { echo "# $*"; }

# fail MSG...: print why the current case fails, and fail it.
fail() {
	log "FAIL: $*"
	return 1
}

# wait_until TIMEOUT WHAT CMD...: poll CMD every 0.1 s; fail after TIMEOUT s.
wait_until() {
	local timeout=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + timeout))
	until "$@"; do
		if [ $SECONDS -ge $deadline ]; then
			fail "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		sleep 0.1
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
# UNLOAD_TIMEOUT), then wait for the module to vanish. A module exit that
# waits cannot be interrupted (rmmod sleeps uninterruptibly in the kernel,
# and `timeout rmmod` would wait for ever), so rmmod runs in the background
# and is left running if it times out: cleanup() then frees it. (bg_start
# and bg_wait are defined below; they are looked up when unload runs.)
unload() {
	local timeout=${1:-$UNLOAD_TIMEOUT}
	bg_start unload rmmod $MODNAME
	bg_wait unload "$timeout" ||
		fail "rmmod did not return 0 within ${timeout}s: $(cat "$WORK/unload.out")" ||
		return 1
	wait_until 10 "/sys/module/$MODNAME to vanish" is_unloaded
}

# bg_start NAME CMD...: run CMD in the background, output in $WORK/NAME.out.
# CMD gets a process group of its own, so that cleanup kills what it started.
bg_start() {
	local name=$1
	shift
	setsid "$@" >"$WORK/$name.out" 2>&1 </dev/null &
	echo $! >"$WORK/$name.pid"
}

bg_pid() { cat "$WORK/$1.pid"; }

# bg_wait NAME TIMEOUT: wait for NAME to exit; its status is returned.
bg_wait() {
	local pid deadline
	pid=$(bg_pid "$1")
	deadline=$((SECONDS + $2))
	while kill -0 "$pid" 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			fail "$1 (pid $pid) did not exit within $2 s"
			return 1
		fi
		sleep 0.1
	done
	wait "$pid" 2>/dev/null
}

# out_has NAME REGEX: NAME's output matches REGEX.
out_has() { grep -Eq -- "$2" "$WORK/$1.out"; }

# expect_out NAME REGEX: fail, showing the output, unless it matches.
expect_out() {
	out_has "$1" "$2" && return 0
	log "$1 printed:"
	sed 's/^/#   /' "$WORK/$1.out"
	fail "$1: expected /$2/"
}

# wait_out NAME REGEX TIMEOUT: wait until NAME's output matches.
wait_out() { wait_until "$3" "$1 to print /$2/" out_has "$1" "$2"; }

# A kernel log mark: the number of lines already read.
klog_mark() { dmesg | wc -l; }

# klog_since MARK: the kernel log lines after MARK.
klog_since() { dmesg | tail -n +$(($1 + 1)); }

# klog_check MARK: fail, showing them, if bad lines were logged after MARK.
klog_check() {
	local bad
	bad=$(klog_since "$1" | grep -E -A25 -- "$KLOG_BAD") || return 0
	log "kernel log:"
	printf '%s\n' "$bad" | head -n 60 | sed 's/^/#   /'
	fail "the kernel log has errors"
}

# cleanup: kill what a case left running and unload the module.
cleanup() {
	local f
	for f in "$WORK"/*.pid; do
		[ -e "$f" ] || continue
		kill -KILL -- "-$(cat "$f")" "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
	ensure_unloaded
	rm -f "$WORK"/*.out
}

# ensure_unloaded: unload the module if it is loaded, waiting up to 2 min.
ensure_unloaded() {
	is_loaded || return 0
	# An rmmod a case started may still be waiting; start one if not.
	pgrep -x rmmod >/dev/null || { rmmod $MODNAME >/dev/null 2>&1 & }
	for _ in $(seq 600); do
		is_loaded || return 0
		sleep 0.2
	done
	log "cleanup: $MODNAME is still loaded"
}

# run_case DESCRIPTION FUNCTION [ARGS...]: run one test case.
#
# FUNCTION runs in a subshell with errexit: any failing command fails the
# case. (So the test scripts themselves run without `set -e`.)
# The case passes if FUNCTION returns 0 and the kernel log stays clean.
# Whatever happens, background processes are killed and the module unloaded.
run_case() {
	local desc=$1 mark rc=0 start
	shift
	mark=$(klog_mark)
	start=$SECONDS
	log "case: $desc"
	# errexit only works in a subshell that is not itself tested with ||.
	( set -e; "$@" )
	rc=$?
	cleanup
	klog_check "$mark" || rc=1
	log "took $((SECONDS - start)) s"
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

WORK=$(mktemp -d /tmp/safedetach-test.XXXXXX)
trap 'cleanup; rm -rf "$WORK"' EXIT
