#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Functional tests of safedetach: loading, parameters, device nodes, FIFO
# semantics and bad input. Each case loads the module itself and leaves it
# unloaded; the kernel log must stay clean.
set -uo pipefail
. "$(dirname -- "$0")/lib.sh"

test_smp_guest() {
	local n want=${EXPECT_CPUS:-2} max
	n=$(nproc)
	max=$(($(cat /sys/devices/system/cpu/kernel_max) + 1))
	log "nproc: $n, online: $(cat /sys/devices/system/cpu/online)," \
		"possible: $(cat /sys/devices/system/cpu/possible), kernel supports $max; $(uname -v)"
	[ "$n" -eq "$want" ] || fail "the guest has $n CPUs, but $want were asked for (VM_CPUS)"
	if [[ $(uname -v) == *SMP* ]]; then
		[ "$n" -ge 2 ] || fail "the guest has $n CPU(s): the races need at least 2"
		[ $max -ge 64 ] || fail "the kernel supports $max CPUs, fewer than 64 (CONFIG_NR_CPUS)"
	else
		log "a uniprocessor kernel (CONFIG_SMP=n): the races come from preemption alone"
	fi
}

test_load_unload() {
	load
	is_loaded || fail "not in /sys/module"
	grep -q "^[0-9]* safedetach$" /proc/devices || fail "no safedetach in /proc/devices"
	[ -d /sys/class/safedetach ] || fail "no /sys/class/safedetach"
	unload
	[ ! -d /sys/class/safedetach ] || fail "/sys/class/safedetach left behind"
	! grep -q " safedetach$" /proc/devices || fail "/proc/devices still lists it"
}

test_nodes() {
	local i
	load units=7
	for i in 0 1 2 3 4 5 6; do
		[ -c $DEV$i ] || fail "$DEV$i missing"
	done
	[ ! -e ${DEV}7 ] || fail "${DEV}7 should not exist"
	unload
	for i in 0 1 2 3 4 5 6; do
		wait_until 5 "$DEV$i to vanish" test ! -e $DEV$i
	done
}

test_valid_params() {
	local p
	for p in "units=1 capacity=1" "units=64 capacity=1048576" "units=2 capacity=16"; do
		# shellcheck disable=SC2086
		load $p
		[ "units=$(cat /sys/module/$MODNAME/parameters/units)" = "${p%% *}" ] ||
			fail "units parameter not visible for $p"
		unload
	done
}

test_invalid_params() {
	local p mark out
	for p in units=0 units=65 capacity=0 capacity=1048577 units=-1 units=abc; do
		mark=$(klog_mark)
		if out=$(insmod "$SAFEDETACH_KO" $p 2>&1); then
			fail "insmod $p succeeded"
		fi
		is_unloaded || fail "module loaded with $p"
		case $p in
		units=-1 | units=abc)
			# Rejected by the kernel's parameter parser.
			echo "$out" | grep -q "Invalid" || fail "insmod $p: $out" ;;
		*)
			# kmod reports EINVAL from init as "Invalid parameters".
			echo "$out" | grep -Eq "Invalid (argument|parameters)" || fail "insmod $p: $out"
			klog_since "$mark" | grep -q "safedetach: invalid ${p%%=*}=" ||
				fail "no log line for $p" ;;
		esac
		[ ! -e ${DEV}0 ] || fail "${DEV}0 exists after a failed load"
	done
	# Nothing leaked: a valid load still works.
	load
	unload
}

test_fifo_order() {
	load capacity=64
	printf 'first\n' >${DEV}0
	printf 'second\n' >${DEV}0
	[ "$(dd if=${DEV}0 bs=64 count=1 iflag=nonblock status=none)" = "$(printf 'first\nsecond')" ] ||
		fail "FIFO order"
	# Units are independent.
	printf 'zero' >${DEV}0
	printf 'one' >${DEV}1
	[ "$(dd if=${DEV}1 bs=64 count=1 iflag=nonblock status=none)" = one ] || fail "unit 1"
	[ "$(dd if=${DEV}0 bs=64 count=1 iflag=nonblock status=none)" = zero ] || fail "unit 0"
	unload
}

test_partial_reads() {
	load
	printf 'abcdefghij' >${DEV}0
	[ "$(dd if=${DEV}0 bs=3 count=1 iflag=nonblock status=none)" = abc ] || fail "first 3"
	[ "$(dd if=${DEV}0 bs=4 count=1 iflag=nonblock status=none)" = defg ] || fail "next 4"
	[ "$(dd if=${DEV}0 bs=100 count=1 iflag=nonblock status=none)" = hij ] || fail "rest"
	unload
}

test_nonblock() {
	load capacity=8
	out=$(dd if=${DEV}0 bs=1 count=1 iflag=nonblock 2>&1) && fail "read of empty unit succeeded"
	echo "$out" | grep -q "Resource temporarily unavailable" || fail "empty read: $out"
	printf '12345678' >${DEV}0
	out=$(printf 'x' | dd of=${DEV}0 bs=1 oflag=nonblock 2>&1) && fail "write to full unit succeeded"
	echo "$out" | grep -q "Resource temporarily unavailable" || fail "full write: $out"
	unload
}

test_capacity() {
	load capacity=100
	# A write up to the capacity goes in whole; the FIFO never holds more.
	head -c 100 /dev/zero >${DEV}0
	"$SDTOOL" stats ${DEV}0 | grep -q "capacity=100 bytes_queued=100" || fail "not full"
	out=$(head -c 1 /dev/zero | dd of=${DEV}0 bs=1 oflag=nonblock 2>&1) && fail "wrote past capacity"
	[ "$(dd if=${DEV}0 bs=1000 count=1 iflag=nonblock status=none | wc -c)" = 100 ] || fail "read back"
	# A write larger than the capacity is split as space appears.
	bg_start writer dd if=/dev/zero of=${DEV}0 bs=300 count=1 status=none
	wait_blocked writer $NR_write
	bg_start reader sh -c "dd if=${DEV}0 bs=50 count=6 iflag=fullblock status=none | wc -c"
	bg_wait writer 20
	bg_wait reader 20
	expect_out reader '^300$'
	unload
}

test_blocking() {
	load capacity=4
	bg_start reader dd if=${DEV}0 bs=5 count=1 status=none
	wait_blocked reader $NR_read || fail "read of an empty unit did not block"
	printf 'wake' >${DEV}0
	bg_wait reader 10
	expect_out reader '^wake$'
	printf '1234' >${DEV}0
	bg_start writer sh -c "printf 'more' >${DEV}0"
	wait_blocked writer $NR_write || fail "write to a full unit did not block"
	[ "$(dd if=${DEV}0 bs=4 count=1 status=none)" = 1234 ] || fail "read"
	bg_wait writer 10
	[ "$(dd if=${DEV}0 bs=4 count=1 iflag=nonblock status=none)" = more ] || fail "blocked write lost"
	unload
}

test_poll() {
	load capacity=4
	expect() {
		"$SDTOOL" poll ${DEV}0 >"$WORK/poll.out"
		expect_out poll "^poll:$1\$"
	}
	expect " OUT"
	# POLLOUT promises that an atomic write of the largest size (here the
	# whole capacity, 4 bytes) fits: not once 2 bytes are queued.
	printf 'ab' >${DEV}0
	expect " IN"
	printf 'cd' >${DEV}0
	expect " IN"
	# epoll wakes up when data arrives.
	dd if=${DEV}0 bs=4 count=1 status=none >/dev/null
	bg_start ep "$SDTOOL" epoll ${DEV}0
	wait_out ep blocking 120
	wait_blocked ep "$EPOLL_WCHAN"
	printf 'x' >${DEV}0
	bg_wait ep 10
	expect_out ep '^epoll: IN$'
	# select(2), through python3.
	python3 -c "
import os, select
fd = os.open('${DEV}0', os.O_RDONLY | os.O_NONBLOCK)
r, w, x = select.select([fd], [], [], 5)
assert r == [fd], r
assert os.read(fd, 10) == b'x'
r, w, x = select.select([fd], [], [], 0.2)
assert r == [], r
" || fail "select"
	unload
}

test_signal() {
	load
	"$SDTOOL" signal ${DEV}0 >"$WORK/sig.out"
	expect_out sig '^read: EINTR$'
	# A blocked read ended by SIGKILL does not leak the file.
	bg_start reader dd if=${DEV}0 bs=1 count=1 status=none
	wait_blocked reader $NR_read
	kill -KILL "$(bg_pid reader)"
	bg_wait reader 10 || true
	"$SDTOOL" stats ${DEV}0 | grep -q "open_files=1 " || fail "a killed reader leaked its file"
	unload
}

test_stats() {
	load capacity=1000
	printf '0123456789' >${DEV}2
	dd if=${DEV}2 bs=4 count=1 status=none >/dev/null
	"$SDTOOL" stats ${DEV}2 >"$WORK/st.out"
	expect_out st '^unit=2 capacity=1000 bytes_queued=6 open_files=1 in_flight=1 bytes_written=10 bytes_read=4 opens=3$'
	exec 7<${DEV}2 8<${DEV}2
	"$SDTOOL" stats ${DEV}2 >"$WORK/st.out"
	exec 7<&- 8<&-
	expect_out st ' open_files=3 in_flight=1 .* opens=6$'
	unload
}

test_bad_input() {
	load
	"$SDTOOL" badinput ${DEV}0 >"$WORK/bad.out" || { sed 's/^/#   /' "$WORK/bad.out"; fail "badinput"; }
	sed 's/^/#   /' "$WORK/bad.out"
	unload
}

test_unload_idle() {
	local mark
	load
	mark=$(klog_mark)
	unload
	klog_since "$mark" | grep -q "safedetach: unloaded: drain [0-9]* us, tail [0-9]* us" ||
		fail "no unload summary in the kernel log"
}

require_module
ktap_print_header
ktap_set_plan 16
run_case "the guest has the vCPUs asked for (VM_CPUS), an SMP kernel 64" test_smp_guest
run_case "load and unload" test_load_unload
run_case "device nodes appear and disappear" test_nodes
run_case "valid parameters" test_valid_params
run_case "invalid parameters fail with EINVAL and leak nothing" test_invalid_params
run_case "FIFO order, independent units" test_fifo_order
run_case "partial reads" test_partial_reads
run_case "O_NONBLOCK gives EAGAIN" test_nonblock
run_case "capacity limit, writes larger than the capacity" test_capacity
run_case "read blocks when empty, write blocks when full" test_blocking
run_case "poll, epoll and select readiness" test_poll
run_case "signals interrupt blocked calls" test_signal
run_case "ioctl statistics" test_stats
run_case "bad input gets the documented errno" test_bad_input
run_case "idle unload logs its timing" test_unload_idle
run_case "reload after unload" test_load_unload
ktap_finished
