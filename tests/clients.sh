#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Real clients against safedetach: stress-ng's device stressor, dd moving
# data through a unit, and a python3 selectors (epoll) client, each while
# the module is unloaded under them.
set -uo pipefail
. "$(dirname -- "$0")/lib.sh"

# opens_of UNIT: how many times UNIT was opened (the statistics ioctl).
opens_of() { "$SDTOOL" stats ${DEV}$1 | sed -n 's/.* opens=\([0-9]*\).*/\1/p'; }
opens_above() { [ "$(opens_of "$1")" -gt "$2" ]; }

test_stress_ng() {
	local opens
	command -v stress-ng >/dev/null || fail "stress-ng is not installed"
	load
	printf 'some data' >${DEV}0
	# The dev stressor opens the node and throws read, poll, lseek, mmap and
	# a range of ioctls at it; first on a live unit, where stress-ng must
	# report a successful run, then while the module is unloaded under it.
	stress-ng --temp-path "$WORK" --dev 2 --dev-file ${DEV}0 --timeout 5 \
		--metrics-brief >"$WORK/sng1.out" 2>&1 || true
	grep -E "dev|passed|failed|skipped" "$WORK/sng1.out" | sed -n 's/^/# stress-ng: /; 1,6p'
	grep -q "successful run completed" "$WORK/sng1.out" &&
		! grep -q "unsuccessful run completed" "$WORK/sng1.out" ||
		fail "stress-ng did not complete a successful run on a live unit"
	opens=$(opens_of 0)
	bg_start sng stress-ng --temp-path "$WORK" --dev 2 --dev-file ${DEV}0 \
		--timeout 60 --metrics-brief
	wait_until 120 "stress-ng to open ${DEV}0" opens_above 0 $((opens + 3))
	unload
	bg_wait sng 90 || true
	grep -E "dev|passed|failed|skipped" "$WORK/sng.out" | sed -n 's/^/# stress-ng: /; 1,6p'
	# Under the unload its calls fail with ENODEV (or the node is gone),
	# which stress-ng counts as failures: it must still run to its end.
	grep -Eq "(successful|unsuccessful) run completed" "$WORK/sng.out" ||
		fail "stress-ng did not run to completion under the unload"
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
	wait_until 120 "data to flow through ${DEV}1" sh -c \
		"$SDTOOL stats ${DEV}1 | grep -Eq 'bytes_written=[1-9][0-9]* bytes_read=[1-9]'"
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
	wait_out py 'got ping' 120
	wait_blocked py "$EPOLL_WCHAN"
	unload
	bg_wait py 30
	expect_out py "^closed: \['No such device'\] 4$"
}

# Clients that do not close a file at its first ENODEV but keep calling on
# it for a while (a daemon that retries): the drain must wait for every one
# of those files, and calls must keep failing cleanly until they close.
test_python_retry() {
	local i
	load
	for i in 0 1 2; do
		bg_start py$i python3 -c "
import os, time
fd = os.open('${DEV}$i', os.O_RDWR | os.O_NONBLOCK)
ok = errors = 0
first = None
print('open', flush=True)
while first is None or time.monotonic() - first < 3:
    try:
        os.write(fd, b'x')
        os.read(fd, 1)
        ok += 1
    except OSError as e:
        if e.errno != 19:
            raise
        errors += 1
        if first is None:
            first = time.monotonic()
print('module', 'loaded' if os.path.exists('/sys/module/safedetach') else 'gone', flush=True)
os.close(fd)
print('ok', ok, 'enodev', errors, flush=True)
"
	done
	for i in 0 1 2; do
		wait_out py$i open 120
	done
	wait_until 120 "the clients to make calls" sh -c \
		"$SDTOOL stats ${DEV}2 | grep -Eq 'bytes_read=[1-9]'"
	unload
	for i in 0 1 2; do
		bg_wait py$i 30
		expect_out py$i '^module loaded$'
		expect_out py$i '^ok [1-9][0-9]* enodev [1-9][0-9]*$'
		log "py$i: $(tail -n1 "$WORK/py$i.out")"
	done
}

require_module
ktap_print_header
ktap_set_plan 5
run_case "stress-ng --dev on a unit, then rmmod" test_stress_ng
run_case "dd: 4 MB through a unit, byte for byte" test_dd_roundtrip
run_case "dd reader and writer, then rmmod" test_dd_unload
run_case "python3 selectors (epoll) client, then rmmod" test_python_selectors
run_case "python3 clients that retry after ENODEV, then rmmod" test_python_retry
ktap_finished
