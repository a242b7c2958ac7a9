#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Real clients against safedetach: stress-ng's device stressor, dd moving
# data through a unit, and a python3 selectors (epoll) client, each while
# the module is unloaded under them.
set -uo pipefail
. "$(dirname -- "$0")/lib.sh"

test_stress_ng() {
	command -v stress-ng >/dev/null || fail "stress-ng is not installed"
	load
	printf 'some data' >${DEV}0
	# The dev stressor opens the node and throws read, poll, lseek, mmap and
	# a range of ioctls at it; it must not upset the kernel.
	bg_start sng stress-ng --temp-path "$WORK" --dev 2 --dev-file ${DEV}0 \
		--timeout 20 --metrics-brief
	sleep 8
	kill -0 "$(bg_pid sng)" || { sed 's/^/#   /' "$WORK/sng.out"; fail "stress-ng ended early"; }
	unload
	bg_wait sng 60 || true
	grep -E "dev|passed|failed|skipped" "$WORK/sng.out" | head -n 6 | sed 's/^/# stress-ng: /'
	grep -q "successful run completed" "$WORK/sng.out" ||
		grep -q "unsuccessful run completed" "$WORK/sng.out" ||
		fail "stress-ng did not complete"
}

test_dd_roundtrip() {
	load capacity=65536
	head -c 4000000 /dev/urandom >"$WORK/in"
	bg_start rd dd if=${DEV}0 of="$WORK/out" bs=4000 count=1000 iflag=fullblock status=none
	dd if="$WORK/in" of=${DEV}0 bs=4000 conv=nocreat status=none
	bg_wait rd 120
	cmp "$WORK/in" "$WORK/out" || fail "dd round trip corrupted the data"
	log "4000000 bytes through ${DEV}0 and back, identical"
	unload
}

test_dd_unload() {
	load capacity=1024
	bg_start wr dd if=/dev/zero of=${DEV}1 bs=100 conv=nocreat status=none
	bg_start rd dd if=${DEV}1 of=/dev/null bs=100 status=none
	sleep 3
	unload
	! bg_wait wr 20 || fail "dd writer exited 0"
	! bg_wait rd 20 || fail "dd reader exited 0"
	expect_out wr 'No such device'
	expect_out rd 'No such device'
}

test_python_selectors() {
	load capacity=64
	bg_start py python3 -c "
import os, selectors, time
sel = selectors.DefaultSelector()
assert type(sel).__name__ == 'EpollSelector', type(sel).__name__
fds = [os.open('${DEV}%d' % i, os.O_RDWR | os.O_NONBLOCK) for i in range(4)]
for fd in fds:
    sel.register(fd, selectors.EVENT_READ)
os.write(fds[2], b'ping')
seen = b''
while b'ping' not in seen:
    for key, ev in sel.select(timeout=5):
        seen += os.read(key.fd, 64)
print('got ping', flush=True)
errors = {}
while fds:
    for key, ev in sel.select(timeout=30):
        try:
            os.read(key.fd, 64)
        except BlockingIOError:
            continue
        except OSError as e:
            errors[key.fd] = os.strerror(e.errno)
            sel.unregister(key.fd)
            fds.remove(key.fd)
            os.close(key.fd)
print('closed:', sorted(set(errors.values())), len(errors), flush=True)
"
	wait_out py 'got ping' 20
	sleep 1
	unload
	bg_wait py 30
	expect_out py "^closed: \['No such device'\] 4$"
}

require_module
ktap_print_header
ktap_set_plan 4
run_case "stress-ng --dev on a unit, then rmmod" test_stress_ng
run_case "dd: 4 MB through a unit, byte for byte" test_dd_roundtrip
run_case "dd reader and writer, then rmmod" test_dd_unload
run_case "python3 selectors (epoll) client, then rmmod" test_python_selectors
ktap_finished
