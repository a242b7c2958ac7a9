#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: set up what is missing, build, and run every test.
#
#   1. scripts/setup.sh (packages, toolchain, the cached debug kernel);
#   2. build safedetach.ko and tests/sdtool, and check that rust/ is
#      formatted (the "build" document);
#   3. on the host: the static fast-path check (tests/fastpath.sh) and the
#      spin model of the protocol (tests/model/run.sh);
#   4. in a QEMU guest of VM_CPUS vCPUs (default 2) running the debug
#      kernel: tests/run_tests.sh (functional, unload races, CPU hotplug,
#      real clients, stress, then the end-of-run checks), with a kernel log
#      check after every case;
#   5. on the host: the guest's whole serial console log, from the first
#      boot message to the power-off, must have no report in it.
#
# Every document must report the number of cases pinned in tests/plan; a
# document that ran fewer (it skipped as a whole, died, or timed out) has
# the missing ones counted as failed, and a build failure fails every case
# that could not run. Output: KTAP, then one line "N passed, N failed, N
# skipped". The KTAP and the whole kernel log are kept under
# out/check-<time>/ (out/latest links to the last run). Exit status: 0 only
# if nothing failed.
#
# Usage: scripts/check.sh [TEST_SCRIPT...]   (default: all of tests/, and
#        the host checks of step 3, which a run of named scripts leaves out)
#   VM_CPUS=N   the guest's vCPU count (the kernel supports up to 64)
#   SAFEDETACH_KERNEL=up   the uniprocessor flavour (use VM_CPUS=1; the
#               host checks of the SMP build are left out)
set -uo pipefail
. "$(dirname -- "$0")/env.sh"
cd "$SAFEDETACH_TOP"

VM_CPUS=${VM_CPUS:-2}
[[ $VM_CPUS =~ ^[1-9][0-9]*$ ]] && [ "$VM_CPUS" -le 64 ] ||
	die "VM_CPUS must be 1..64, not '$VM_CPUS'"

out=out/check-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
ln -sfn "$(basename "$out")" out/latest

# The guest documents this run must see: the named scripts, or all.
guest_docs=("$@")
if [ ${#guest_docs[@]} -eq 0 ]; then
	read -ra guest_docs <<<"$(sed -n 's/^TEST_PROGS := //p' tests/Makefile)"
fi
# The host checks look at the SMP build of the module, which the
# uniprocessor flavour does not have. They do not depend on the guest, so a
# run of named scripts (a second run at another vCPU count, or a developer's
# quick run) leaves them to the whole suite's run.
host_docs=(fastpath.sh model)
[ "$SAFEDETACH_KERNEL" != up ] && [ $# -eq 0 ] || host_docs=()
expected_docs=(build "${host_docs[@]}" "${guest_docs[@]}" end-of-run console-log)

# doc NAME: start the KTAP document NAME (scripts/check.sh counts by these).
doc() { echo "# selftests: safedetach: $1"; }

# console_scan LOG: the console-log document. Kernel lines carry a printk
# timestamp, also where one landed in the middle of a line of test output.
console_scan() {
	local log=$1 bad
	# shellcheck source=tests/klog-patterns.sh
	. tests/klog-patterns.sh
	echo "TAP version 13"
	echo "1..1"
	if [ ! -s "$log" ]; then
		echo "not ok 1 console-log: the guest's console log is empty ($log)"
	elif bad=$(grep -aE '\[ *[0-9]+\.[0-9]{6}\]' "$log" | grep -aE -A20 -- "$KLOG_BAD"); then
		printf '%s\n' "$bad" | head -n 60 | sed 's/^/#   /'
		echo "not ok 1 console-log: the whole console log of the run (boot to power-off) is clean"
	else
		echo "# $(grep -caE '\[ *[0-9]+\.[0-9]{6}\]' "$log") kernel lines, none bad"
		echo "ok 1 console-log: the whole console log of the run (boot to power-off) is clean"
	fi
}

{
	doc build
	echo "TAP version 13"
	echo "1..4"
	built=1
	if ( "$SAFEDETACH_TOP/scripts/setup.sh" && step "module: building safedetach.ko" &&
		make -s -C "$SAFEDETACH_TOP" modules 2>&1 ); then
		echo "ok 1 build: safedetach.ko"
	else
		echo "not ok 1 build: safedetach.ko"
		built=0
	fi
	if make -s -C "$SAFEDETACH_TOP/tests" 2>&1; then
		echo "ok 2 build: tests/sdtool"
	else
		echo "not ok 2 build: tests/sdtool"
		built=0
	fi
	if [ $built = 1 ] && make -s -C "$SAFEDETACH_TOP" rustfmtcheck >"$out/rustfmt.txt" 2>&1; then
		echo "ok 3 build: rust/ is formatted with the kernel's .rustfmt.toml (make rustfmtcheck)"
	else
		sed 's/^/#   /' "$out/rustfmt.txt" 2>/dev/null | head -n 40
		echo "not ok 3 build: rust/ is formatted with the kernel's .rustfmt.toml (make rustfmtcheck)"
	fi
	if [ $built = 1 ] && scripts/build-example.sh "$out/gatedemo" >"$out/gatedemo.txt" 2>&1; then
		echo "ok 4 build: the driver guide's example, gatedemo.ko, from the copied files (scripts/build-example.sh)"
	else
		sed 's/^/#   /' "$out/gatedemo.txt" 2>/dev/null | grep -vE '^#   +(\||= )' | head -n 40
		echo "not ok 4 build: the driver guide's example, gatedemo.ko, from the copied files (scripts/build-example.sh)"
	fi
	if [ $built = 1 ]; then
		export KTAP_HELPERS
		KTAP_HELPERS=$(kernel_dir)/tools/testing/selftests/kselftest/ktap_helpers.sh
		if [ ${#host_docs[@]} -gt 0 ]; then
			doc fastpath.sh
			step "host: static check of the gate's fast path"
			tests/fastpath.sh safedetach.ko
			doc model
			step "host: model checking the protocol with spin"
			tests/model/run.sh
		fi
		step "vm: running tests/run_tests.sh $* in the $SAFEDETACH_KERNEL kernel, $VM_CPUS vCPUs (takes a while under TCG)"
		vm_rc=0
		scripts/vm-run.sh --timeout 3600 --cpus "$VM_CPUS" --log "$out/kernel.log" -- \
			env KTAP_HELPERS="$KTAP_HELPERS" EXPECT_CPUS="$VM_CPUS" \
			SAFEDETACH_KERNEL="$SAFEDETACH_KERNEL" \
			tests/run_tests.sh "$@" || vm_rc=$?
		echo "# vm-run exit status: $vm_rc"
		doc console-log
		console_scan "$out/kernel.log"
	fi
} 2>&1 | tee "$out/ktap.txt"

# Count every document's results against tests/plan. A document that
# reported fewer cases than pinned (or was never reached) has the missing
# ones counted as failed; one that reported more fails too (update the
# plan).
summary=$(awk -v want="${expected_docs[*]}" '
	FNR == NR { if ($0 !~ /^#/ && NF >= 2) pin[$1] = $2; next }
	/^# selftests: safedetach: / { cur = $4; seen[cur] = 1; next }
	/^ok [0-9]+ .*# SKIP/ { skip++; n[cur]++; next }
	/^ok [0-9]+/ { pass++; n[cur]++; next }
	/^not ok [0-9]+/ { fail++; n[cur]++; next }
	END {
		split(want, docs, " ")
		for (i in docs) {
			d = docs[i]
			if (!(d in pin)) {
				printf "# plan: %s has no pinned case count in tests/plan\n", d
				fail++
			} else if (n[d] < pin[d]) {
				printf "# plan: %s reported %d of its %d pinned cases%s: %d counted as failed\n", \
					d, n[d], pin[d], seen[d] ? "" : " (it never ran)", pin[d] - n[d]
				fail += pin[d] - n[d]
			} else if (n[d] > pin[d]) {
				printf "# plan: %s reported %d cases, but tests/plan pins %d: update the plan\n", \
					d, n[d], pin[d]
				fail++
			}
		}
		printf "%d %d %d\n", pass, fail, skip
	}
' tests/plan "$out/ktap.txt")
printf '%s\n' "$summary" | sed '$d' | tee -a "$out/ktap.txt"
read -r passed failed skipped <<<"$(printf '%s\n' "$summary" | tail -n1)"
vm_rc=$(sed -n 's/^# vm-run exit status: //p' "$out/ktap.txt" | tail -n1)
if [ -n "$vm_rc" ] && [ "$vm_rc" != 0 ] && [ "$failed" = 0 ]; then
	echo "# the guest's test run exited with status $vm_rc"
	failed=1
fi
echo "# KTAP output: $out/ktap.txt"
echo "# kernel log:  $out/kernel.log"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
