#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# sdtool's waits for a signal lose none (KTAP, on the host).
#
# `sdtool hold`, `holdmany` and `uffd-read` wait until a signal handler has
# set a flag. Testing the flag and then sleeping in pause() sleeps for
# good if the signal comes in between; a holder that never closes its file
# then keeps a drain, and rmmod, waiting for it, as they must: the likely
# cause of stress.sh's rmmod that waited until its case timed out, in CI
# (stop 23; testing.rst, "A lost signal"). sdtool blocks the signals while
# it tests its flags and sleeps in sigsuspend(), which unblocks them
# (block_signals() and wait_signal()).
#
# gdb makes that moment happen every time: it stops each command at the
# entry of the call it sleeps in (pause or sigsuspend, before the system
# call), the signal is sent from outside, and gdb lets the command go on.
# The command must then finish, within 60 s. A command that never stops
# there fails too: the case would prove nothing. `uffd-read` is not run
# so: gdb did not stop it while its other thread waited in a userfaultfd
# fault (it hung until its timeout, on this host); it waits with the same
# two functions.
#
# Usage: tests/signals.sh [SDTOOL]   (default: tests/sdtool, built for the
# host; an sdtool cross-built for arm64 is not run)
set -uo pipefail
. "$(dirname -- "$0")/lib-host.sh"

sdtool=${1:-$(dirname -- "$0")/sdtool}
work=$(mktemp -d /tmp/safedetach-signals.XXXXXX)
trap 'rm -rf "$work"' EXIT

# stopped_and_signalled NAME SIGNAL WANT ARGS...: run `sdtool ARGS` under
# gdb, send SIGNAL when it is about to sleep, and check that it then
# printed a line matching WANT and exited 0.
stopped_and_signalled() {
	local name=$1 sig=$2 want=$3 st=0 log_status
	shift 3
	# (In a subshell: bash would report a gdb that timeout killed.)
	(timeout --kill-after=5 60 gdb -q -batch -nx \
		-ex "set pagination off" -ex "set confirm off" \
		-ex "set breakpoint pending on" \
		-ex "handle SIGTERM nostop noprint pass" \
		-ex "handle SIGUSR1 nostop noprint pass" \
		-ex "break pause" -ex "break sigsuspend" \
		-ex "run $* >$work/$name.out" \
		-ex "python gdb.execute('shell kill -$sig %d' % gdb.selected_inferior().pid)" \
		-ex "delete" -ex "continue" \
		--args "$sdtool" >"$work/$name.gdb" 2>&1) 2>/dev/null || st=$?
	if ! grep -Eq "^(Breakpoint|Thread .* hit Breakpoint) [12]," "$work/$name.gdb"; then
		sed 's/^/#   /' "$work/$name.gdb" | tail -n 20
		ktap_test_fail "signals: $name: stopped where it sleeps (it never did)"
	elif [ $st -ne 0 ] || ! grep -q "exited normally" "$work/$name.gdb" ||
		! grep -Eq "$want" "$work/$name.out"; then
		sed 's/^/#   /' "$work/$name.gdb" | tail -n 20
		sed 's/^/#   out: /' "$work/$name.out"
		log_status=$([ $st -eq 124 ] && echo ", still waiting after 60 s")
		echo "# $name: gdb exited with status $st$log_status"
		ktap_test_fail "signals: $name: $sig sent as it goes to sleep ends the wait"
	else
		ktap_test_pass "signals: $name: $sig sent as it goes to sleep ends the wait"
	fi
}

ktap_print_header
ktap_set_plan 2
# Without arguments, an sdtool that runs here prints its usage (status 2).
if [[ $("$sdtool" 2>&1) != usage:* ]]; then
	for c in hold holdmany; do
		ktap_test_skip "signals: $c: $sdtool does not run on this host"
	done
	ktap_finished
fi
stopped_and_signalled hold TERM '^closed$' hold /dev/null
stopped_and_signalled holdmany TERM '^closed 3 files' holdmany /dev/null 3
ktap_finished
