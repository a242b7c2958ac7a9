#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Stress tests of safedetach, numbered and count-driven in the style of
# tools/testing/selftests/kmod/kmod.sh. Each test is ID:COUNT:ENABLED; COUNT
# is the number of rmmod/insmod cycles (or records, for 0003).
#
#   tests/stress.sh                 run every enabled test
#   tests/stress.sh -t 0001         run test 0001 only
#   tests/stress.sh -t 0001 -c 20   ... with 20 cycles
#   tests/stress.sh -l              list the tests
#
# Environment: STRESS_CLIENTS (mixed-operation clients, default 6) and
# STRESS_SECONDS (load time per cycle, default 3).
set -uo pipefail
. "$(dirname -- "$0")/lib.sh"

ALL_TESTS="0001:6:1"
ALL_TESTS+=" 0002:4:1"
ALL_TESTS+=" 0003:3000:1"
ALL_TESTS+=" 0004:3:1"

CLIENTS=${STRESS_CLIENTS:-6}
SECONDS_PER_CYCLE=${STRESS_SECONDS:-3}

describe() {
	case $1 in
	0001) echo "$CLIENTS clients x mixed operations while rmmod/insmod cycle $2 times" ;;
	0002) echo "blocked readers and writers, holders and pollers while rmmod/insmod cycle $2 times" ;;
	0003) echo "4 writers x $2 sequence-numbered records, 3 readers: nothing lost or duplicated" ;;
	0004) echo "many units (units=64, capacity=1) under load, rmmod/insmod $2 times" ;;
	esac
}

# cycle COUNT UNITS: load, keep the clients busy, rmmod; COUNT times.
cycle() {
	local count=$1 params=$2 i t0
	for ((i = 1; i <= count; i++)); do
		# shellcheck disable=SC2086
		load $params
		nap "$SECONDS_PER_CYCLE"
		t0=$SECONDS
		unload 120
		log "cycle $i/$count: rmmod took $((SECONDS - t0)) s"
		nap 0.3
	done
}

# finish_clients PREFIX N CYCLES: stop clients PREFIX0..N-1; report and
# check them. They must have seen only documented errnos, completed
# operations, and met the unload: at least CYCLES calls failed with ENODEV
# (a call that entered a closing gate), so the unloads raced with live calls.
finish_clients() {
	local prefix=$1 n=$2 cycles=$3 i rc=0 ok=0 enodev=0 v
	for ((i = 0; i < n; i++)); do
		kill -TERM -- "-$(bg_pid $prefix$i)" 2>/dev/null || true
	done
	for ((i = 0; i < n; i++)); do
		bg_wait $prefix$i 30 || rc=1
		sed 's/^/# '"$prefix$i"': /' "$WORK/$prefix$i.out"
		v=$(sed -n 's/.*stress: ok=\([0-9]*\) .*/\1/p' "$WORK/$prefix$i.out")
		ok=$((ok + ${v:-0}))
		v=$(sed -n 's/.* ENODEV=\([0-9]*\) .*/\1/p' "$WORK/$prefix$i.out")
		enodev=$((enodev + ${v:-0}))
	done
	log "clients: $ok successful calls, $enodev ENODEV over $cycles unloads"
	[ $rc -eq 0 ] || fail "a client saw an undocumented errno or did not stop"
	[ $ok -gt 0 ] || fail "the clients completed no successful call"
	[ $enodev -ge "$cycles" ] ||
		fail "only $enodev calls met a closing unit in $cycles unloads: the unloads did not race with the clients"
}

# Half of the clients close a file at its first ENODEV, the other half keep
# calling on it for 200 ms first (the drain must wait for them).
start_clients() {
	local n=$1 seed=$2 i retry
	shift 2
	for ((i = 0; i < n; i++)); do
		retry=$(((i % 2) * 200))
		bg_start client$i "$SDTOOL" stress 100000 $((seed + i)) --retry-ms $retry "$@"
	done
}

test_0001() {
	# shellcheck disable=SC2046
	start_clients "$CLIENTS" 1 $(echo ${DEV}{0..3})
	cycle "$1" ""
	finish_clients client "$CLIENTS" "$1"
}

test_0002() {
	local i
	bg_start poller python3 -c "
import os, selectors, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print('ready', flush=True)
while True:
    sel = selectors.DefaultSelector()
    fds = []
    for i in range(4):
        try:
            fd = os.open('${DEV}%d' % i, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        fds.append(fd)
        sel.register(fd, selectors.EVENT_READ)
    if not fds:
        time.sleep(0.05)
    for _ in range(50):
        if not fds:
            break
        for key, ev in sel.select(timeout=0.2):
            try:
                os.read(key.fd, 4096)
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(key.fd)
                fds.remove(key.fd)
                os.close(key.fd)
    for fd in fds:
        os.close(fd)
    sel.close()
"
	# The poller exits 0 on SIGTERM once its handler is set, and a SIGTERM
	# that comes first kills it (status 143). Python starts slowly in the
	# debug guest (`python3 -c 'print()'` took 18 s alone), and much more
	# slowly at nice 10 among the other clients: they start once it is
	# ready.
	wait_out poller '^ready$' 120
	for i in 0 1 2 3; do
		bg_start reader$i sh -c "while :; do cat ${DEV}$i >/dev/null 2>&1; sleep 0.05; done"
	done
	for i in 0 1; do
		bg_start writer$i sh -c "while :; do yes 2>/dev/null | dd of=${DEV}$i bs=512 conv=nocreat status=none 2>/dev/null; sleep 0.05; done"
	done
	bg_start holder sh -c "while :; do $SDTOOL hold ${DEV}3 & p=\$!; sleep 1; kill -TERM \$p; wait \$p; done >/dev/null 2>&1"
	cycle "$1" "capacity=512"
	kill -TERM -- "-$(bg_pid holder)" "-$(bg_pid poller)" 2>/dev/null || true
	bg_wait poller 30 || fail "the python selectors client failed: $(cat "$WORK/poller.out")"
}

test_0003() {
	load capacity=4096
	"$SDTOOL" seq ${DEV}0 4 3 "$1" >"$WORK/seq.out" || { sed 's/^/# /' "$WORK/seq.out"; fail "seq"; }
	sed 's/^/# /' "$WORK/seq.out"
	"$SDTOOL" stats ${DEV}0 | sed 's/^/# /'
	unload
}

test_0004() {
	# shellcheck disable=SC2046
	start_clients 4 100 $(echo ${DEV}{0..63})
	cycle "$1" "units=64 capacity=1"
	finish_clients client 4 "$1"
}

list_tests() {
	local t
	for t in $ALL_TESTS; do
		IFS=: read -r id count enabled <<<"$t"
		echo "$id: $(describe "$id" "$count") (enabled=$enabled)"
	done
}

main() {
	local only="" count="" t id n enabled selected=()
	while getopts "t:c:lh" opt; do
		case $opt in
		t) only=$OPTARG ;;
		c) count=$OPTARG ;;
		l) list_tests; exit 0 ;;
		*) echo "usage: $0 [-t ID [-c COUNT]] [-l]" >&2; exit 2 ;;
		esac
	done
	for t in $ALL_TESTS; do
		IFS=: read -r id n enabled <<<"$t"
		if [ -n "$only" ]; then
			[ "$id" = "$only" ] || continue
			n=${count:-$n}
		elif [ "$enabled" != 1 ]; then
			continue
		fi
		selected+=("$id:$n")
	done
	[ ${#selected[@]} -gt 0 ] || { echo "no such test: $only" >&2; exit 2; }
	require_module
	ktap_print_header
	ktap_set_plan ${#selected[@]}
	for t in "${selected[@]}"; do
		id=${t%%:*}
		n=${t#*:}
		run_case "stress $id: $(describe "$id" "$n")" "test_$id" "$n"
	done
	ktap_finished
}

main "$@"
