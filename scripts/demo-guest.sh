#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The demo, inside the VM (started by scripts/demo.sh): load safedetach, use
# it, put real clients on it, and rmmod it under that load.
set -uo pipefail
cd -- "$(dirname -- "$0")/.."
DEV=/dev/safedetach
SDTOOL=tests/sdtool
work=$(mktemp -d)
# KLOG_BAD and the taint flags: what fails a test run fails the demo.
. tests/klog-patterns.sh

say() { printf '\n=== %s\n' "$*"; }
# wait_for CMD...: wait (not sleep), up to 30 s, until CMD succeeds.
wait_for() {
	local i
	for i in $(seq 300); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "  timed out waiting for: $*"
	exit 1
}
klog() { dmesg | grep -E '^\[ *[0-9.]+\] safedetach' | sed 's/^/  kernel: /'; }

say "guest: $(uname -r), $(nproc) CPUs"
say "insmod safedetach.ko units=4 capacity=4096"
insmod safedetach.ko units=4 capacity=4096 || exit 1
ls -l ${DEV}*

say "a FIFO per unit: write, then read back"
echo "hello from the demo" >${DEV}0
dd if=${DEV}0 bs=100 count=1 iflag=nonblock status=none
$SDTOOL stats ${DEV}0

say "hot-unplug: detach unit 0 under a blocked reader, then attach it again"
cat ${DEV}0 >"$work/unplug" 2>&1 &
unplug_pid=$!
wait_for grep -q '^0 ' /proc/$unplug_pid/syscall
echo 0 >/sys/class/safedetach/detach && echo "  detach 0: done"
wait $unplug_pid
printf '  cat (exit %d): %s\n' $? "$(paste -sd ' ' "$work/unplug")"
echo "  units now: $(echo ${DEV}*)"
# EBUSY until the old unit 0 has drained and been freed.
wait_for sh -c "echo 0 >/sys/class/safedetach/attach"
echo "  attach 0: done; units now: $(echo ${DEV}*)"
grep -q 'No such device' "$work/unplug" || { echo "  the reader did not see ENODEV"; exit 1; }

say "starting clients: tail -f, cat, dd writer, a writer loop, an idle holder"
echo "line for tail -f" >${DEV}0
tail -f ${DEV}0 >"$work/tail" 2>&1 &
tail_pid=$!
cat ${DEV}1 >"$work/cat" 2>&1 &
cat_pid=$!
dd if=/dev/zero of=${DEV}2 bs=512 conv=nocreat status=none 2>"$work/dd" &
dd_pid=$!
# (conv=nocreat: once the node is gone, a plain `>` would create a file.)
(while echo tick | dd of=${DEV}1 conv=nocreat status=none; do sleep 0.01; done; exit 1) 2>"$work/loop" &
loop_pid=$!
# The holder keeps unit 3 open without using it, until the unloading
# module has named it in the kernel log (see below).
$SDTOOL hold ${DEV}3 >"$work/hold" 2>&1 &
hold_pid=$!
# Wait (not sleep) until the clients are where the demo needs them: the
# holder has its file open, tail -f sleeps in read() of the empty unit, and
# data flows through units 1 and 2.
wait_for grep -q holding "$work/hold"
wait_for grep -q '^0 ' /proc/$tail_pid/syscall
wait_for sh -c "$SDTOOL stats ${DEV}1 | grep -q 'bytes_read=[1-9]'"
wait_for sh -c "$SDTOOL stats ${DEV}2 | grep -q 'bytes_written=[1-9]'"
for d in 0 1 2 3; do $SDTOOL stats $DEV$d; done

say "rmmod safedetach, under load"
# Once the drain's report names the holder, the holder closes its file.
(
	for _ in $(seq 1200); do
		dmesg | grep -q "held open by pid $hold_pid " && break
		sleep 0.1
	done
	kill -TERM $hold_pid
) &
start=$(date +%s.%N)
rmmod safedetach
rc=$?
end=$(date +%s.%N)
echo "rmmod returned $rc after $(echo "$end - $start" | bc) s"

wait $tail_pid; tail_rc=$?
wait $cat_pid; cat_rc=$?
wait $dd_pid; dd_rc=$?
wait $loop_pid; loop_rc=$?
wait $hold_pid
say "what the clients saw"
printf '  tail -f (exit %d): %s\n' $tail_rc "$(grep -v '^line for' "$work/tail" | paste -sd ' ')"
printf '  cat     (exit %d): %s\n' $cat_rc "$(tail -n1 "$work/cat")"
printf '  dd      (exit %d): %s\n' $dd_rc "$(head -n1 "$work/dd")"
printf '  writer  (exit %d): %s\n' $loop_rc "$(paste -sd ' ' "$work/loop")"
printf '  holder: %s\n' "$(tr '\n' ' ' <"$work/hold")"
[ -e ${DEV}0 ] && echo "  ${DEV}0 still exists!" || echo "  /dev/safedetach* are gone"
[ -d /sys/module/safedetach ] && echo "  the module is still loaded!" || echo "  the module is gone"

say "kernel log"
klog
if dmesg | grep -Eq -- "$KLOG_BAD"; then
	say "the kernel log has errors"
	dmesg | grep -E -A20 -- "$KLOG_BAD" | head -n 40 | sed 's/^/  /'
	exit 1
fi
if [ $(($(cat /proc/sys/kernel/tainted) & ~TAINT_EXPECTED)) -ne 0 ]; then
	say "the kernel is tainted: $(cat /proc/sys/kernel/tainted)"
	exit 1
fi
errors=0
for f in tail cat dd; do
	grep -q 'No such device' "$work/$f" || { echo "  $f did not see ENODEV"; errors=1; }
done
# The writer loop reopens the node for every line: it sees ENODEV if a
# write was in flight, otherwise ENOENT once the node is gone.
grep -Eq 'No such (device|file)' "$work/loop" || { echo "  the writer loop did not stop"; errors=1; }
dmesg | grep -q 'held open by pid [0-9]* (sdtool)' || { echo "  the holder was not named"; errors=1; }
[ $rc -eq 0 ] && [ $errors -eq 0 ]
