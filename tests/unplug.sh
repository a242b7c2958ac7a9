#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Hot-unplug: units detached and attached while the module stays loaded
# (/sys/class/safedetach/attach and detach). A detach must return once the
# unit is unreachable, without waiting for its holders, while the other
# units keep working; the unit drains in the background and rmmod waits for
# it. The debugfs status file lists the live and draining units with their
# holders, and survives an rmmod while it is open. Every case ends with a
# clean kernel log.
set -uo pipefail
. "$(dirname -- "$0")/lib.sh"

CLASS=/sys/class/$MODNAME
STATUS=/sys/kernel/debug/$MODNAME/status
H4_PIDS=

# ctl FILE TEXT: write TEXT to $CLASS/FILE in one write(2); print "ok" or
# the error (strerror text).
ctl() {
	local err
	if err=$({ printf '%s' "$2" >"$CLASS/$1"; } 2>&1); then
		echo ok
	else
		echo "${err##*: }"
	fi
}

# expect_ctl FILE TEXT RESULT: ctl FILE TEXT must print RESULT.
expect_ctl() {
	local got
	got=$(ctl "$1" "$2")
	[ "$got" = "$3" ] || fail "write of '$(printf '%q' "$2")' to $1: '$got', expected '$3'"
}

# units: the indices of the units that have a /dev node, in order.
units() {
	local d out=
	for d in ${DEV}*; do
		[ -e "$d" ] && out+=" ${d#"$DEV"}"
	done
	echo "$out" | tr ' ' '\n' | sort -n | xargs
}

# gone N: unit N has neither a /dev node nor a sysfs directory.
gone() { [ ! -e ${DEV}$1 ] && [ ! -e $CLASS/$MODNAME$1 ]; }

# attr N NAME: a sysfs attribute of unit N.
attr() { cat $CLASS/$MODNAME$1/$2; }

# attached N: attach N succeeds (a detached unit is EBUSY until drained).
attached() { [ "$(ctl attach "$1")" = ok ]; }

# timed_detach N: detach unit N, which must succeed; prints the time the
# write took in ms.
timed_detach() {
	local t0 t1 r
	t0=$(date +%s%N)
	r=$(ctl detach "$1")
	t1=$(date +%s%N)
	[ "$r" = ok ] || fail "detach $1: $r"
	echo $(((t1 - t0) / 1000000))
}

# Unit 0 is busy (a reader, a writer and an idle holder) when it is
# detached; units 1 to 3 carry sequence-numbered records (4
# writers, 2 readers each) through the detach and after it: not one may be
# lost, duplicated or reordered, and unit 0's clients must stop with
# ENODEV.
test_detach_under_load() {
	local i ms mark
	load capacity=4096
	bg_start cat0 sh -c "cat ${DEV}0 >/dev/null"
	bg_start dd0 dd if=/dev/zero of=${DEV}0 bs=64 conv=nocreat status=none
	bg_start hold0 "$SDTOOL" hold ${DEV}0
	wait_out hold0 holding 120
	wait_until 60 "data to flow through unit 0" traffic_on 0
	for i in 1 2 3; do
		bg_start seq$i "$SDTOOL" seq ${DEV}$i 4 2 100000
	done
	wait_until 60 "records to flow through unit 1" traffic_on 1
	mark=$(klog_mark "detach under load")
	ms=$(timed_detach 0)
	for i in 1 2 3; do
		bg_running seq$i ||
			fail "the records of unit $i were all through before the detach: make them more"
	done
	log "detach of the busy unit 0 returned after $ms ms ($(klog_since "$mark" | grep -o 'detached in [0-9]* us'))"
	gone 0 || fail "unit 0 is still published after its detach"
	for i in cat0 dd0; do
		bg_wait $i 30 || true
		expect_out $i 'No such device'
	done
	kill -USR1 "$(bg_pid hold0)"
	wait_out hold0 '^read: ENODEV$' 60
	kill -TERM "$(bg_pid hold0)"
	bg_wait hold0 10
	for i in 1 2 3; do
		bg_wait seq$i 600 || { sed 's/^/#   /' "$WORK/seq$i.out"; fail "unit $i lost records"; }
		expect_out seq$i 'all exactly once, in order'
	done
	log "$(sed -n 's/^seq: //p' "$WORK/seq1.out")"
	[ "$(units)" = "1 2 3" ] || fail "units left: '$(units)', expected '1 2 3'"
	unload
}

# An idle holder keeps unit 2 open: the detach returns at once, the holder
# gets ENODEV, the log names it, attach of that index is EBUSY until the
# holder closes, and then gives a working unit.
test_idle_holder() {
	local ms pid mark held f err
	load
	bg_start hold "$SDTOOL" hold ${DEV}2
	wait_out hold holding 120
	pid=$(bg_pid hold)
	held=
	for f in /proc/"$pid"/fd/*; do
		[ "$(readlink "$f")" = ${DEV}2 ] && held=$f
	done
	[ -n "$held" ] || fail "no descriptor of the holder (pid $pid) is ${DEV}2"
	[ "$(attr 2 open_files)" = 1 ] || fail "open_files of unit 2: $(attr 2 open_files), expected 1"
	[ "$(attr 2 in_flight)" = 0 ] || fail "in_flight of unit 2: $(attr 2 in_flight), expected 0"
	bg_start reader "$SDTOOL" block-read ${DEV}1
	wait_blocked reader $NR_read
	[ "$(attr 1 open_files)/$(attr 1 in_flight)" = 1/1 ] ||
		fail "unit 1 with a blocked reader: open_files/in_flight $(attr 1 open_files)/$(attr 1 in_flight), expected 1/1"
	mark=$(klog_mark "idle holder")
	ms=$(timed_detach 2)
	log "detach with an idle holder returned after $ms ms ($(klog_since "$mark" | grep -o 'detached in [0-9]* us'))"
	[ "$ms" -lt 5000 ] || fail "the detach waited for the holder ($ms ms)"
	gone 2 || fail "unit 2 is still published after its detach"
	# A new open of the held file (the inode still caches the cdev, and
	# the module stays) reaches the unit's open(): the gate refuses it.
	if err=$( (exec 5<"$held") 2>&1); then
		fail "reopening the detached unit's held file ($held) succeeded"
	elif [[ $err != *"No such device" ]]; then
		fail "reopening the detached unit's held file ($held): '$err', expected ENODEV"
	fi
	kill -USR1 "$pid"
	wait_out hold '^read: ENODEV$' 60
	expect_ctl attach 2 "Device or resource busy"
	expect_ctl detach 2 "No such file or directory"
	wait_until 60 "the log to name pid $pid" klog_has "$mark" "safedetach2: held open by pid $pid (sdtool)"
	expect_ctl attach 2 "Device or resource busy"
	[ "$(units)" = "0 1 3" ] || fail "units: '$(units)', expected '0 1 3'"
	kill -TERM "$pid"
	bg_wait hold 10
	wait_until 60 "attach 2 to succeed once the holder closed" attached 2
	wait_until 10 "${DEV}2" test -c ${DEV}2
	printf 'again' >${DEV}2
	[ "$(dd if=${DEV}2 bs=5 count=1 status=none)" = again ] || fail "the new unit 2 does not work"
	[ "$(attr 2 open_files)" = 0 ] || fail "open_files of the new unit 2: $(attr 2 open_files)"
	klog_since "$mark" | grep -q 'safedetach2: drained after' ||
		fail "the drain of unit 2 did not report that it waited"
	unload
}

# rmmod while two detached units still drain (their holders keep them):
# rmmod detaches the live units, then waits for the detached ones, naming
# their holders, and returns once they close.
test_rmmod_while_draining() {
	local mark p1 p3
	load
	bg_start hold1 "$SDTOOL" hold ${DEV}1
	bg_start hold3 "$SDTOOL" hold ${DEV}3
	wait_out hold1 holding 120
	wait_out hold3 holding 120
	p1=$(bg_pid hold1)
	p3=$(bg_pid hold3)
	timed_detach 1 >/dev/null
	timed_detach 3 >/dev/null
	mark=$(klog_mark "rmmod while draining")
	rmmod_bg
	wait_until 60 "the log to name pid $p1" klog_has "$mark" "safedetach1: held open by pid $p1 (sdtool)"
	wait_until 60 "the log to name pid $p3" klog_has "$mark" "safedetach3: held open by pid $p3 (sdtool)"
	klog_has "$mark" "unloading: closing 2 units" || fail "rmmod did not detach the 2 live units"
	[ -z "$(units)" ] || fail "units still published during rmmod: $(units)"
	bg_running rmmod || fail "rmmod returned while detached units were held open"
	kill -TERM "$p1"
	bg_wait hold1 10
	nap 1
	bg_running rmmod || fail "rmmod returned while unit 3 was held open"
	kill -TERM "$p3"
	bg_wait hold3 10
	rmmod_done
}

# Bad text is EINVAL and changes nothing; good text with one trailing
# newline works.
test_bad_input() {
	local f t
	load units=2
	for f in attach detach; do
		for t in $'\n' x -1 64 99 100 "1 " " 1" +1 0x1 $'1\n\n' $'\n1' 1.0 \
			18446744073709551617 4294967297 "$(printf '\xef\xbc\x91')"; do
			expect_ctl $f "$t" "Invalid argument"
		done
	done
	[ "$(units)" = "0 1" ] || fail "units after bad input: '$(units)', expected '0 1'"
	expect_ctl attach 0 "File exists"
	expect_ctl attach $'1\n' "File exists"
	expect_ctl detach 5 "No such file or directory"
	expect_ctl detach 63 "No such file or directory"
	[ "$(units)" = "0 1" ] || fail "units after refused commands: '$(units)', expected '0 1'"
	expect_ctl attach $'63\n' ok
	expect_ctl attach 007 ok
	[ "$(units)" = "0 1 7 63" ] || fail "units: '$(units)', expected '0 1 7 63'"
	expect_ctl detach $'63\n' ok
	[ "$(units)" = "0 1 7" ] || fail "units: '$(units)', expected '0 1 7'"
	printf 'x' >${DEV}7
	[ "$(dd if=${DEV}7 bs=1 count=1 status=none)" = x ] || fail "unit 7 does not work"
	unload
}

# Eight threads detach the same unit at the same moment (a barrier, then
# one write(2) each): exactly one succeeds, the others get ENOENT. For each
# of 8 units, with a holder on half of them.
test_concurrent_detach() {
	local i
	load units=8
	for i in 0 2 4 6; do
		bg_start hold$i "$SDTOOL" hold ${DEV}$i
		wait_out hold$i holding 120
	done
	python3 -c "
import errno, os, sys, threading
bad = 0
for unit in range(8):
    barrier = threading.Barrier(8)
    results = []
    def detach():
        fd = os.open('$CLASS/detach', os.O_WRONLY)
        barrier.wait()
        try:
            os.write(fd, str(unit).encode())
            results.append('ok')
        except OSError as e:
            results.append(errno.errorcode[e.errno])
        os.close(fd)
    threads = [threading.Thread(target=detach) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.sort()
    print('unit %d: %s' % (unit, ' '.join(results)))
    if results != ['ENOENT'] * 7 + ['ok']:
        bad += 1
sys.exit(bad != 0)
" >"$WORK/det.out" || { sed 's/^/#   /' "$WORK/det.out"; fail "concurrent detaches: not exactly one success each"; }
	log "$(head -n1 "$WORK/det.out")"
	for i in 0 1 2 3 4 5 6 7; do
		gone $i || fail "unit $i is still published"
	done
	for i in 0 2 4 6; do
		kill -TERM "$(bg_pid hold$i)"
		bg_wait hold$i 10
	done
	unload
}

# storm SECONDS SEED: detach and attach random units of 0..7 for SECONDS,
# and on until at least one detach and one attach succeeded (at most 300 s
# more: an oversubscribed TCG guest may be slow, which is no failure);
# print how many of each succeeded.
storm() {
	local end=$((SECONDS + $1)) i r att=0 det=0
	local last=$((end + 300))
	RANDOM=$2
	while [ $SECONDS -lt $end ] || { [ $((det * att)) = 0 ] && [ $SECONDS -lt $last ]; }; do
		i=$((RANDOM % 8))
		if [ $((RANDOM % 2)) = 0 ]; then
			r=$(ctl detach $i)
			[ "$r" = ok ] && det=$((det + 1))
		else
			r=$(ctl attach $i)
			[ "$r" = ok ] && att=$((att + 1))
		fi
		case $r in
		ok | "File exists" | "Device or resource busy" | "No such file or directory") ;;
		*) echo "storm: $i: $r"; return 1 ;;
		esac
	done
	echo "storm: $det detaches, $att attaches"
}

# Two shells detach and attach units at random while clients of every kind
# use them; then rmmod, with units live, detached and draining.
test_storm() {
	local i c
	load units=8 capacity=256
	for i in 0 1 2 3; do
		bg_start client$i "$SDTOOL" stress 100000 $((40 + i)) --retry-ms $(((i % 2) * 200)) \
			$(echo ${DEV}{0..7})
	done
	for i in 0 1 2 3 4 5 6 7; do
		bg_start cat$i sh -c "while :; do cat ${DEV}$i >/dev/null 2>&1; sleep 0.05; done"
	done
	bg_start writer sh -c "while :; do for i in 0 1 2 3 4 5 6 7; do
		dd if=/dev/zero of=${DEV}\$i bs=64 count=20 conv=nocreat status=none 2>/dev/null; done; done"
	bg_start holder sh -c "while :; do $SDTOOL hold ${DEV}5 & p=\$!; sleep 1; kill -TERM \$p; wait \$p; done >/dev/null 2>&1"
	wait_until 60 "data to flow" traffic_on 1
	storm 20 1 >"$WORK/storm1.out" &
	c=$!
	storm 20 2 >"$WORK/storm2.out" || fail "$(cat "$WORK/storm2.out")"
	wait $c || fail "$(cat "$WORK/storm1.out")"
	log "$(cat "$WORK/storm1.out"), $(cat "$WORK/storm2.out")"
	grep -q 'storm: [1-9][0-9]* detaches, [1-9][0-9]* attaches' "$WORK/storm1.out" ||
		fail "the storm did not both detach and attach"
	unload 120
	for i in 0 1 2 3; do
		kill -TERM "$(bg_pid client$i)" 2>/dev/null || true
		bg_wait client$i 30 || fail "client $i: $(cat "$WORK/client$i.out")"
		sed 's/^/# client'$i': /' "$WORK/client$i.out"
		expect_out client$i 'stress: ok=[1-9][0-9]* .* ENODEV=[1-9][0-9]* .* undocumented=0$'
	done
}

# fds_on PID PATH N: process PID has exactly N descriptors open on PATH.
# (A function, so that wait_until looks again at every poll.)
fds_on() { [ "$(ls -l "/proc/$1/fd" 2>/dev/null | grep -c -- " $2\$")" = "$3" ]; }

# mount_debugfs: debugfs at /sys/kernel/debug (run_tests.sh mounts it too).
mount_debugfs() {
	mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
}

# status_is EXPECTED: the status file reads exactly EXPECTED (a newline
# ends every line); the text read is left in $WORK/status. The pids in
# H4_PIDS (an ERE alternation, if set) must appear at most once each and
# read as "H4".
status_is() {
	cat $STATUS >"$WORK/status" || return 1
	if [ -n "$H4_PIDS" ]; then
		grep -Eo "pid ($H4_PIDS) " "$WORK/status" | sort | uniq -d | grep -q . && return 1
		sed -Ei "s/pid ($H4_PIDS) \(/pid H4 (/" "$WORK/status"
	fi
	[ "$(cat "$WORK/status")" = "$1" ]
}

# expect_status WHAT EXPECTED: wait (up to 120 s, for oversubscribed TCG:
# the counts move while clients start and units drain) until the status
# file reads exactly EXPECTED; fail, showing both, if it never does.
expect_status() {
	wait_until 120 "the status file to show $1" status_is "$2" && return 0
	log "status file:"
	sed 's/^/#   /' "$WORK/status"
	log "expected:"
	printf '%s\n' "$2" | sed 's/^/#   /'
	return 1
}

# Real clients hold units: a blocked cat (one file, one call in flight), a
# shell holding two descriptors and then sleeping, ten processes on one
# unit (only 8 are named), and an idle holder of a unit that is then
# detached: it shows as draining with its holder until the holder closes.
test_status() {
	local pc ph p3 i others= head tail
	mount_debugfs
	load units=5
	[ "$(stat -c %a $STATUS)" = 444 ] || fail "$STATUS: mode $(stat -c %a $STATUS), expected 444"
	expect_status "five idle units" "$(for i in 0 1 2 3 4; do
		echo "safedetach$i live open_files=0 in_flight=0"; done)"
	bg_start cat1 cat ${DEV}1
	wait_blocked cat1 $NR_read
	pc=$(bg_pid cat1)
	bg_start sh2 sh -c "exec 3<${DEV}2 4<${DEV}2; exec sleep 1000"
	ph=$(bg_pid sh2)
	wait_until 120 "sh (pid $ph) to sleep with unit 2 open twice" fds_on "$ph" ${DEV}2 2
	bg_start hold3 "$SDTOOL" hold ${DEV}3
	wait_out hold3 holding 120
	p3=$(bg_pid hold3)
	for i in 0 1 2 3 4 5 6 7 8 9; do
		bg_start h4_$i "$SDTOOL" hold ${DEV}4
	done
	for i in 0 1 2 3 4 5 6 7 8 9; do
		wait_out h4_$i holding 120
	done
	# They opened in any order: the status names the first 8 to open, and
	# status_is shows each of those pids as H4 (each must appear once).
	H4_PIDS=$(cat "$WORK"/h4_*.pid | paste -sd'|')
	for i in 0 1 2 3 4 5 6 7; do
		others+="  held open by pid H4 (sdtool), 1 file(s)"$'\n'
	done
	head="safedetach0 live open_files=0 in_flight=0
safedetach1 live open_files=1 in_flight=1
  held open by pid $pc (cat), 1 file(s)
safedetach2 live open_files=2 in_flight=0
  held open by pid $ph (sh), 2 file(s)"
	tail="safedetach4 live open_files=10 in_flight=0
${others}  held open by other processes: 2 more file(s)"
	expect_status "the clients" "$head
safedetach3 live open_files=1 in_flight=0
  held open by pid $p3 (sdtool), 1 file(s)
$tail"
	log "$(grep -c . "$WORK/status") lines with 14 files open on 4 units, 8 processes named for unit 4"
	expect_ctl detach 3 ok
	expect_status "unit 3 draining" "$head
safedetach3 draining open_files=1 in_flight=0
  held open by pid $p3 (sdtool), 1 file(s)
$tail"
	log "$STATUS with unit 3 draining:"
	sed 's/^/#   /' $STATUS
	kill -TERM "$p3"
	bg_wait hold3 10
	expect_status "unit 3 gone once its holder closed" "$head
$tail"
	wait_until 60 "attach 3 to succeed" attached 3
	expect_status "unit 3 live again" "$head
safedetach3 live open_files=0 in_flight=0
$tail"
	for i in cat1 sh2 h4_{0..9}; do
		kill -TERM "$(bg_pid $i)"
		bg_wait $i 10 || true
	done
	expect_status "no file open" "$(for i in 0 1 2 3 4; do
		echo "safedetach$i live open_files=0 in_flight=0"; done)"
	unload
	[ ! -e /sys/kernel/debug/$MODNAME ] || fail "/sys/kernel/debug/$MODNAME is left after rmmod"
}

# rmmod while one reader keeps the status file open, and another reads it
# 7 bytes at a time in a loop on one open file, and a shell loop runs cat
# on it: the file shows the unload's drain while a holder keeps rmmod
# waiting, rmmod completes once the holder closes, the file is gone, and
# reads on the files that stay open fail with EIO. Closing them afterwards
# runs no module code (KASAN is armed).
test_status_rmmod() {
	local ph
	mount_debugfs
	load
	bg_start hold0 "$SDTOOL" hold ${DEV}0
	wait_out hold0 holding 120
	ph=$(bg_pid hold0)
	bg_start held python3 -c "
import errno, os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
fd = os.open('$STATUS', os.O_RDONLY)
print('first read: %d lines' % os.read(fd, 65536).count(b'\n'), flush=True)
signal.sigwait([signal.SIGUSR1])
try:
    print('read: %d bytes' % len(os.read(fd, 65536)), flush=True)
except OSError as e:
    print('read: ' + errno.errorcode[e.errno], flush=True)
"
	wait_out held 'first read: 5 lines' 60
	bg_start loop python3 -c "
import errno, os
fd = os.open('$STATUS', os.O_RDONLY)
n = 0
try:
    while True:
        os.lseek(fd, 0, os.SEEK_SET)
        while os.read(fd, 7):
            pass
        n += 1
        if n == 1:
            print('looping', flush=True)
except OSError as e:
    print('loop: %d whole reads, then %s' % (n, errno.errorcode[e.errno]), flush=True)
"
	wait_out loop looping 60
	bg_start catloop sh -c "while :; do cat $STATUS >/dev/null 2>&1; done"
	rmmod_bg
	expect_status "the unload's drain of unit 0" "safedetach0 draining open_files=1 in_flight=0
  held open by pid $ph (sdtool), 1 file(s)"
	bg_running rmmod || fail "rmmod returned while unit 0 was held open"
	kill -TERM "$ph"
	bg_wait hold0 10
	rmmod_done
	[ ! -e $STATUS ] || fail "$STATUS is left after rmmod"
	wait_out loop '^loop: ' 60
	expect_out loop '^loop: [1-9][0-9]* whole reads, then EIO$'
	log "$(cat "$WORK/loop.out" | tail -n1)"
	kill -USR1 "$(bg_pid held)"
	bg_wait held 30
	expect_out held '^read: EIO$'
	# The last close of the open files ran after the module was gone.
	log "rmmod completed with the status file open in 2 processes; their reads: EIO"
}

require_module
ktap_print_header
ktap_set_plan 8
run_case "detach one unit under load, the other units keep every record" test_detach_under_load
run_case "detach with an idle holder: prompt, ENODEV, EBUSY until closed, then attach" test_idle_holder
run_case "rmmod while detached units are still draining" test_rmmod_while_draining
run_case "bad input to attach and detach changes nothing" test_bad_input
run_case "concurrent detaches of one unit: exactly one succeeds" test_concurrent_detach
run_case "attach/detach storm under clients, then rmmod" test_storm
run_case "debugfs status: live and draining units, counts and holders" test_status
run_case "debugfs status: rmmod while the file is open and read in a loop" test_status_rmmod
ktap_finished
