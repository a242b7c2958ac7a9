#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: set up what is missing, build, and run every test.
#
#   1. scripts/setup.sh (packages, toolchain, the cached debug kernel);
#   2. build safedetach.ko and tests/sdtool, and check that rust/ is
#      formatted (the "build" document);
#   3. on the host: the static fast-path check (tests/fastpath.sh), the
#      spin model of the protocol (tests/model/run.sh) and sdtool's signal
#      waits (tests/signals.sh);
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
#   GUESTS="N:a.sh,b.sh M:c.sh ..."   instead of one guest, several at once,
#               each of N (M ...) vCPUs running the scripts named after it
#               (a script may be named in more than one guest), each with
#               its own end-of-run and console-log documents and kernel log
#               (out/check-<time>/guest-K/). With the whole set of scripts
#               the host checks run too. A guest waiting for a delayed
#               kobject release or a grace period leaves its CPU time to
#               the other (make check GUESTS=..., .ci/run).
#   VM_TIMEOUT=SECS   bound each guest's run, boot included (default 7200)
#   SAFEDETACH_TIMEOUT_SCALE=N   multiply the bound of every wait in the
#               guest (tests/lib.sh) by N: default 1, or 4 with GUESTS
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

read -ra all_scripts <<<"$(sed -n 's/^TEST_PROGS := //p' tests/Makefile)"
# The guests: "CPUS:script,script" each. Default: one guest of VM_CPUS
# vCPUs with the named scripts, or all of them.
named=$#
if [ -n "${GUESTS:-}" ]; then
	[ $# -eq 0 ] || die "GUESTS names the scripts of each guest: name none on the command line"
	read -ra guests <<<"$GUESTS"
	set -- $(printf '%s\n' "${guests[@]}" | sed 's/^[^:]*://; s/,/ /g')
	named=1
	all=1
	for s in "${all_scripts[@]}"; do
		[[ " $* " == *" $s "* ]] || all=0
	done
	[ $all = 0 ] || named=0
else
	[ $# -gt 0 ] || set -- "${all_scripts[@]}"
	guests=("$VM_CPUS:$(IFS=,; echo "$*")")
fi
for g in "${guests[@]}"; do
	[[ $g =~ ^([1-9][0-9]*):([a-z0-9_-]+\.sh)(,[a-z0-9_-]+\.sh)*$ ]] && [ "${g%%:*}" -le 64 ] ||
		die "a guest is CPUS:script.sh[,script.sh...] with CPUS 1..64, not '$g'"
	for s in $(tr , ' ' <<<"${g#*:}"); do
		[ -x "tests/$s" ] || die "no test script tests/$s (guest '$g')"
	done
done
# The host checks look at the SMP build of the module, which the
# uniprocessor flavour does not have. They do not depend on the guest, so a
# run of named scripts (a second run at another vCPU count, or a developer's
# quick run) leaves them to the whole suite's run.
host_docs=(fastpath.sh model signals.sh)
[ "$SAFEDETACH_KERNEL" != up ] && [ "$named" -eq 0 ] || host_docs=()
# Guests that share the host's cores run slower: their waits get longer
# bounds (tests/lib.sh, TIMEOUT_SCALE), unless the caller chose.
if [ ${#guests[@]} -gt 1 ]; then
	timeout_scale=${SAFEDETACH_TIMEOUT_SCALE:-4}
else
	timeout_scale=${SAFEDETACH_TIMEOUT_SCALE:-1}
fi
# Every document this run must see, once per guest that runs it.
expected_docs=(build "${host_docs[@]}")
for g in "${guests[@]}"; do
	expected_docs+=($(tr , ' ' <<<"${g#*:}") end-of-run console-log)
done

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

# host_checks: the fast path's shape, the spin model and sdtool's signal
# waits, if this run has them.
host_checks() {
	[ ${#host_docs[@]} -gt 0 ] || return 0
	doc fastpath.sh
	step "host: static check of the gate's fast path"
	tests/fastpath.sh safedetach.ko
	doc model
	step "host: model checking the protocol with spin"
	tests/model/run.sh
	doc signals.sh
	step "host: sdtool's waits for a signal lose none (gdb)"
	tests/signals.sh
}

# run_guest CPUS:SCRIPTS DIR: one guest of CPUS vCPUs runs SCRIPTS
# (comma-separated) and the end-of-run checks; then its console log is
# scanned. Its kernel log goes to DIR/kernel.log.
run_guest() {
	local cpus=${1%%:*} vm_rc=0 scripts
	read -ra scripts <<<"$(tr , ' ' <<<"${1#*:}")"
	step "vm: running tests/run_tests.sh ${scripts[*]} in the $SAFEDETACH_KERNEL kernel, $cpus vCPUs (takes a while under TCG)"
	scripts/vm-run.sh --timeout "${VM_TIMEOUT:-7200}" --cpus "$cpus" --log "$2/kernel.log" -- \
		env KTAP_HELPERS="$KTAP_HELPERS" EXPECT_CPUS="$cpus" \
		SAFEDETACH_KERNEL="$SAFEDETACH_KERNEL" SAFEDETACH_TIMEOUT_SCALE="$timeout_scale" \
		tests/run_tests.sh "${scripts[@]}" || vm_rc=$?
	echo "# vm-run exit status: $vm_rc"
	doc console-log
	console_scan "$2/kernel.log"
}

# run_guests: every guest at once, each into out/.../guest-K/ktap.txt,
# and the host checks meanwhile (into out/.../host.txt). While they run,
# their lines are shown as comments ("# [gK] ...", "# [host] ..."), which
# the count below ignores; then the host's and each guest's documents
# follow whole.
run_guests() {
	local k pids=() tails=() dir hpid
	for k in "${!guests[@]}"; do
		dir=$out/guest-$((k + 1))
		mkdir -p "$dir"
		: >"$dir/ktap.txt"
		run_guest "${guests[$k]}" "$dir" >"$dir/ktap.txt" 2>&1 &
		pids+=($!)
		# (tail --pid ends a second after what it follows.)
		tail -n +1 -F --pid="${pids[$k]}" "$dir/ktap.txt" 2>/dev/null | sed -u "s/^/# [g$((k + 1))] /" &
		tails+=($!)
		# Start the guests a little apart: two QEMUs and vngs starting at
		# once on two cores only delay each other.
		sleep 5
	done
	: >"$out/host.txt"
	host_checks >"$out/host.txt" 2>&1 &
	hpid=$!
	tail -n +1 -F --pid=$hpid "$out/host.txt" 2>/dev/null | sed -u "s/^/# [host] /" &
	tails+=($!)
	wait $hpid
	for k in "${!pids[@]}"; do
		wait "${pids[$k]}"
		step "vm: guest $((k + 1)) (${guests[$k]}) done"
	done
	wait "${tails[@]}"
	cat "$out/host.txt"
	for k in "${!guests[@]}"; do
		echo "# guest $((k + 1)) of ${#guests[@]}: ${guests[$k]} vCPUs:scripts, out $out/guest-$((k + 1))/"
		cat "$out/guest-$((k + 1))/ktap.txt"
	done
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
		if [ ${#guests[@]} -eq 1 ]; then
			host_checks
			run_guest "${guests[0]}" "$out"
		else
			run_guests
		fi
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
		# A document run by several guests must report its pinned
		# cases in each of them.
		nd = split(want, docs, " ")
		for (i = 1; i <= nd; i++)
			if (times[docs[i]]++ == 0)
				order[++no] = docs[i]
		for (i = 1; i <= no; i++) {
			d = order[i]
			if (!(d in pin)) {
				printf "# plan: %s has no pinned case count in tests/plan\n", d
				fail++
				continue
			}
			want_n = pin[d] * times[d]
			if (n[d] < want_n) {
				printf "# plan: %s reported %d of its %d pinned cases%s: %d counted as failed\n", \
					d, n[d], want_n, seen[d] ? "" : " (it never ran)", want_n - n[d]
				fail += want_n - n[d]
			} else if (n[d] > want_n) {
				printf "# plan: %s reported %d cases, but tests/plan pins %d: update the plan\n", \
					d, n[d], want_n
				fail++
			}
		}
		printf "%d %d %d\n", pass, fail, skip
	}
' tests/plan "$out/ktap.txt")
printf '%s\n' "$summary" | sed '$d' | tee -a "$out/ktap.txt"
read -r passed failed skipped <<<"$(printf '%s\n' "$summary" | tail -n1)"
for vm_rc in $(sed -n 's/^# vm-run exit status: //p' "$out/ktap.txt"); do
	if [ "$vm_rc" != 0 ] && [ "$failed" = 0 ]; then
		echo "# a guest's test run exited with status $vm_rc"
		failed=1
	fi
done
echo "# KTAP output: $out/ktap.txt"
if [ ${#guests[@]} -eq 1 ]; then
	echo "# kernel log:  $out/kernel.log"
else
	echo "# kernel logs: $out/guest-*/kernel.log"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
