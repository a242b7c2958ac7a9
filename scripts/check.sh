#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: set up what is missing, build, and run every test.
#
#   1. scripts/setup.sh (packages, toolchain, the cached debug kernel);
#   2. build safedetach.ko and tests/sdtool;
#   3. on the host: the static fast-path check (tests/fastpath.sh) and the
#      spin model of the protocol (tests/model/run.sh);
#   4. in a 2-vCPU QEMU guest running the debug kernel: tests/run_tests.sh
#      (functional, unload races, real clients, stress), with a kernel log
#      check after every case.
#
# Output: KTAP, then one line "N passed, N failed, N skipped". The KTAP and
# the whole kernel log are kept under out/check-<time>/ (out/latest links to
# the last run). Exit status: 0 only if nothing failed.
#
# Usage: scripts/check.sh [TEST_SCRIPT...]   (default: all of tests/)
set -euo pipefail
. "$(dirname -- "$0")/env.sh"
cd "$SAFEDETACH_TOP"

build_for_vm

out=out/check-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
ln -sfn "$(basename "$out")" out/latest
export KTAP_HELPERS
KTAP_HELPERS=$(kernel_dir)/tools/testing/selftests/kselftest/ktap_helpers.sh

vm_rc=0
{
	step "host: static check of the gate's fast path"
	tests/fastpath.sh safedetach.ko || true
	step "host: model checking the protocol with spin"
	tests/model/run.sh || true
	step "vm: running tests/run_tests.sh $* in the debug kernel (takes a while under TCG)"
	scripts/vm-run.sh --timeout 3600 --log "$out/kernel.log" -- \
		env KTAP_HELPERS="$KTAP_HELPERS" tests/run_tests.sh "$@" || vm_rc=$?
	echo "# vm-run exit status: $vm_rc"
} 2>&1 | tee "$out/ktap.txt"
vm_rc=$(sed -n 's/^# vm-run exit status: //p' "$out/ktap.txt" | tail -n1)

# Count the results of every KTAP document; cases a document planned but
# never reported (a script that died or timed out) count as failed.
read -r passed failed skipped < <(awk '
	function close_doc() { if (plan > seen) missing += plan - seen; plan = 0; seen = 0 }
	/^TAP version/ { close_doc() }
	/^1\.\.[0-9]+/ { plan = substr($1, 4) + 0 }
	/^ok [0-9]+ .*# SKIP/ { skip++; seen++; next }
	/^ok [0-9]+/ { pass++; seen++ }
	/^not ok [0-9]+/ { fail++; seen++ }
	END { close_doc(); printf "%d %d %d\n", pass, fail + missing, skip }
' "$out/ktap.txt")
if [ "$vm_rc" != 0 ] && [ "$failed" = 0 ]; then
	failed=1
fi
echo "# KTAP output: $out/ktap.txt"
echo "# kernel log:  $out/kernel.log"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
