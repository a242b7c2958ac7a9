#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Unload races: rmmod while other processes are inside the driver, blocked
# in it, or holding its files open in every way Linux allows. In each case
# rmmod must return 0 (once the last file is closed), every call on a file
# that outlived the unit must fail with ENODEV, and the kernel log must stay
# free of KASAN, lockdep, BUG, WARNING and hung-task reports.
set -uo pipefail
. "$(dirname -- "$0")/lib.sh"

# Rust-for-Linux issue #1182: `tail -f` on the device, then rmmod.
test_tail_f() {
	load
	printf 'hello\n' >${DEV}0
	bg_start tail tail -f ${DEV}0
	# tail reads to the end, then blocks in read() of the empty unit.
	wait_blocked tail $NR_read
	unload
	wait_until 20 "tail -f to exit" bg_exited tail
	! bg_wait tail 1 || fail "tail -f exited with status 0"
	expect_out tail 'No such device'
}

test_sleepers_woken() {
	load capacity=16
	bg_start reader "$SDTOOL" block-read ${DEV}0
	bg_start writer "$SDTOOL" block-write ${DEV}1
	bg_start epoll "$SDTOOL" epoll ${DEV}2
	bg_start select python3 -c "
import os, select, sys
fd = os.open('${DEV}3', os.O_RDONLY | os.O_NONBLOCK)
print('blocking', flush=True)
r, w, x = select.select([fd], [], [])
try:
    os.read(fd, 1)
except OSError as e:
    print('select woke, read:', os.strerror(e.errno), flush=True)
"
	wait_out reader blocking 120
	wait_out writer blocking 120
	wait_out epoll blocking 120
	wait_out select blocking 120
	wait_blocked reader $NR_read
	wait_blocked writer $NR_write
	wait_blocked epoll "$EPOLL_WCHAN"
	wait_blocked select "$SELECT_WCHAN"
	unload
	bg_wait reader 10
	bg_wait writer 10
	bg_wait epoll 10
	bg_wait select 10
	expect_out reader '^read: ENODEV$'
	expect_out reader '^read-again: ENODEV$'
	expect_out writer '^write: ENODEV$'
	expect_out epoll '^epoll:.* HUP ERR$'
	expect_out select '^select woke, read: No such device$'
}

# holder_named_or_rmmod_gone MARK TEXT: the background rmmod is no longer
# running, or the log names the holder, or the module's exit has returned
# (its "unloaded:" line). rmmod is looked at first and at every poll
# (builtins), the log (dmesg and awk: about a second in the debug guest) at
# most once a second. A broken unload must be seen, and the case fail with
# its reason, before what it freed is used: with the no_drain variant the
# first cdev's delayed release (DEBUG_KOBJECT_RELEASE, 1 to 4 s later)
# starts a stream of KASAN reports 0.8 s after the module's exit returned,
# and in three runs the rmmod process had not returned 12 s later, when
# the guest panicked.
klog_polled=0
holder_named_or_rmmod_gone() {
	bg_exited rmmod && return 0
	[ $SECONDS -gt $klog_polled ] || return 1
	klog_polled=$SECONDS
	klog_has "$1" "$2"$'\n'"safedetach: unloaded:"
}

test_holder_named() {
	local pid mark
	load
	bg_start hold "$SDTOOL" hold ${DEV}1
	wait_out hold holding 120
	pid=$(bg_pid hold)
	mark=$(klog_mark "idle holder")
	rmmod_bg
	# The drain reports after 1 s, then every 5 s. A broken unload returns
	# at once instead: watch for all three, so that the case says which.
	wait_until 60 "the log to name pid $pid, or the unload to return" \
		holder_named_or_rmmod_gone "$mark" "safedetach1: held open by pid $pid (sdtool)"
	bg_running rmmod || { fail "rmmod returned while a file was open"; return 1; }
	! klog_has "$mark" "safedetach: unloaded:" ||
		{ fail "the module's exit returned while a file was open ('unloaded:' in the log)"; return 1; }
	[ ! -e ${DEV}1 ] || fail "${DEV}1 still exists while unloading"
	# Operations on the open file fail at once.
	kill -USR1 "$pid"
	wait_out hold '^read: ENODEV$' 120
	kill -TERM "$pid"
	bg_wait hold 10
	rmmod_done
	klog_since "$mark" | sed -n '/safedetach/ { s/^.*safedetach/# safedetach/p }' | sed -n 1,8p
}

# While a file holds the gate, calls on it keep entering and backing out:
# the drain must not mistake those exits for the holder's (an exit counted
# without its entrance is what summing entrances first would allow). The
# drain must wait, and name the holder, for as long as the file is open;
# if it ended early its own check would WARN, which fails the case.
test_hammered_holder() {
	local pid mark
	load
	bg_start hammer "$SDTOOL" hammer ${DEV}0 8
	wait_out hammer holding 120
	pid=$(bg_pid hammer)
	mark=$(klog_mark "hammered holder")
	rmmod_bg
	wait_out hammer 'unit closing' 120
	wait_until 60 "the log to name pid $pid" klog_has "$mark" "safedetach0: held open by pid $pid (sdtool)"
	bg_running rmmod || fail "rmmod returned while the hammer held its file"
	bg_wait hammer 30
	expect_out hammer '^closing, module loaded$'
	expect_out hammer 'hammer: [0-9]+ calls, [1-9][0-9]* ENODEV'
	log "$(grep hammer: "$WORK/hammer.out")"
	rmmod_done
	klog_since "$mark" | grep -q 'safedetach0: drained after' ||
		fail "the drain did not report that it waited for the hammer"
}

test_procfd_reopen() {
	load
	bg_start procfd "$SDTOOL" procfd ${DEV}0 120
	wait_out procfd reopening 120
	rmmod_bg
	bg_wait procfd 60
	expect_out procfd '^reopen: (ENODEV|ENXIO) after [0-9]+ reopens$'
	rmmod_done
}

test_fork_dup() {
	load
	bg_start forked python3 -c "
import os, signal, sys, time
fd = os.open('${DEV}0', os.O_RDWR)
fd2 = os.dup(fd)
pid = os.fork()
if pid == 0:
    os.close(fd)
    print('child holding', flush=True)
    while True:
        try:
            os.write(fd2, b'x')
        except OSError as e:
            print('child write:', os.strerror(e.errno), flush=True)
            break
        time.sleep(0.2)
    try:
        os.read(fd2, 1)
    except OSError as e:
        print('child read:', os.strerror(e.errno), flush=True)
    os.close(fd2)
    os._exit(0)
os.close(fd)
os.close(fd2)
os.waitpid(pid, 0)
print('parent done', flush=True)
"
	wait_out forked 'child holding' 120
	rmmod_bg
	bg_wait forked 60
	expect_out forked '^child write: No such device$'
	expect_out forked '^child read: No such device$'
	rmmod_done
}

test_scm_rights() {
	load
	bg_start scm "$SDTOOL" scm ${DEV}2
	wait_out scm received 120
	wait_blocked scm $NR_read
	rmmod_bg
	bg_wait scm 60
	expect_out scm '^read: ENODEV$'
	rmmod_done
}

test_io_uring() {
	load
	bg_start uring "$SDTOOL" uring ${DEV}0
	wait_out uring submitted 120
	# The unit has ->poll, so io_uring parks the read on the unit's wait
	# queue (async poll) instead of blocking a worker in ->read; the
	# submitter waits for the completion in io_uring_enter().
	wait_blocked uring "$NR_io_uring_enter"
	rmmod_bg
	bg_wait uring 60
	expect_out uring '^uring-read: ENODEV$'
	rmmod_done
}

test_splice() {
	load
	printf 'data' >${DEV}0
	"$SDTOOL" splice ${DEV}0 >"$WORK/splice.out"
	# The driver has no ->splice_read: splice(2) fails with EINVAL.
	expect_out splice '^splice: EINVAL$'
	unload
}

test_concurrent_rmmod() {
	local i ok=0 running
	load
	bg_start hold "$SDTOOL" hold ${DEV}0
	wait_out hold holding 120
	for i in 1 2 3 4; do
		BG_NICE=0 bg_start rmmod$i rmmod $MODNAME
	done
	# One rmmod runs the module's exit and waits in the drain; the others
	# find the module going and fail.
	one_running() {
		local n=0 i
		for i in 1 2 3 4; do
			bg_running rmmod$i && n=$((n + 1))
		done
		[ $n -eq 1 ]
	}
	wait_until 30 "three of four rmmods to fail" one_running
	for i in 1 2 3 4; do
		bg_running rmmod$i && running=rmmod$i
	done
	wait_blocked "$running" "$NR_delete_module"
	kill -TERM "$(bg_pid hold)"
	bg_wait hold 10
	for i in 1 2 3 4; do
		if bg_wait rmmod$i 60; then
			ok=$((ok + 1))
		else
			log "rmmod$i: $(cat "$WORK/rmmod$i.out")"
		fi
	done
	[ $ok -eq 1 ] || fail "$ok of 4 concurrent rmmods succeeded, expected 1"
	wait_until 10 "/sys/module/$MODNAME to vanish" is_unloaded
}

test_unload_under_io() {
	local i
	load capacity=256
	for i in 0 1 2 3; do
		bg_start cat$i sh -c "cat ${DEV}$i >/dev/null"
		bg_start dd$i dd if=/dev/zero of=${DEV}$i bs=64 conv=nocreat status=none
	done
	wait_until 120 "data to flow through every unit" traffic_on 0 1 2 3
	unload
	for i in 0 1 2 3; do
		bg_wait cat$i 20 || true
		bg_wait dd$i 20 || true
		expect_out cat$i 'No such device'
		expect_out dd$i 'No such device'
	done
}

# Right after rmmod, load again and use the new units for a few seconds: the
# old units' cdevs and anchors are released late (CONFIG_DEBUG_KOBJECT_RELEASE
# delays every kobject release by 1 to 4 s), and nothing may touch the old
# units' memory then.
test_reload_at_once() {
	local end
	load
	printf 'old' >${DEV}0
	unload
	load
	end=$((SECONDS + 6))
	while [ $SECONDS -lt $end ]; do
		printf 'new' >${DEV}1
		[ "$(dd if=${DEV}1 bs=3 count=1 status=none)" = new ] || fail "the new unit lost data"
	done
	unload
}

require_module
ktap_print_header
ktap_set_plan 12
run_case "tail -f then rmmod (Rust-for-Linux #1182)" test_tail_f
run_case "blocked reader, writer, epoll and select waiters woken" test_sleepers_woken
run_case "rmmod waits for an idle holder and names it" test_holder_named
run_case "calls on a held file during unload" test_hammered_holder
run_case "reopen through /proc/self/fd during unload" test_procfd_reopen
run_case "fork-inherited and dup-ed descriptors" test_fork_dup
run_case "descriptor passed with SCM_RIGHTS" test_scm_rights
run_case "io_uring read in flight" test_io_uring
run_case "splice from a unit into a pipe" test_splice
run_case "four concurrent rmmods" test_concurrent_rmmod
run_case "rmmod under cat and dd traffic" test_unload_under_io
run_case "reload at once while the old cdevs are released late" test_reload_at_once
ktap_finished
