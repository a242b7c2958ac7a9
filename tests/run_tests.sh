#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the safedetach selftests (TEST_PROGS of the Makefile, or the scripts
# named on the command line), one KTAP document each, with a timeout per
# script taken from `settings`, then a last document, "end-of-run", that
# checks what no single case can: the whole kernel log since boot, the
# taint flags, that the kernel's sanitizers stayed armed (KASAN, lockdep
# and kmemleak on the debug kernel, lockdep on the uniprocessor one), and
# that kmemleak finds nothing allocated by the module. Meant to run inside
# the test VM as root.
#
# Environment: EXPECT_CPUS (the vCPUs the guest must have; functional.sh
# checks it), SAFEDETACH_KERNEL (the flavour: debug or up), SAFEDETACH_END_OF_RUN=skip (no end-of-run document),
# SAFEDETACH_TIMEOUT_SCALE (every bound on a wait, times this), plus what
# lib.sh reads.
set -uo pipefail
cd -- "$(dirname -- "$0")"

# The per-script bound of `settings`, times SAFEDETACH_TIMEOUT_SCALE (see
# tests/lib.sh: several guests sharing the host's cores).
timeout=$(($(sed -n 's/^timeout=//p' settings) * ${SAFEDETACH_TIMEOUT_SCALE:-1}))
progs=("$@")
if [ ${#progs[@]} -eq 0 ]; then
	read -ra progs <<<"$(sed -n 's/^TEST_PROGS := //p' Makefile)"
fi

KMEMLEAK=/sys/kernel/debug/kmemleak

# Before the first case: debugfs for kmemleak and fault injection, and
# nothing counted against the module that was there before it was loaded.
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
if [ -w $KMEMLEAK ]; then
	echo scan >$KMEMLEAK 2>/dev/null
	echo clear >$KMEMLEAK 2>/dev/null
fi

echo "# safedetach selftests on $(uname -r), $(nproc) CPUs: ${progs[*]}"
rc=0
for prog in "${progs[@]}"; do
	echo "# selftests: safedetach: $prog"
	timeout --kill-after=10 "$timeout" "./$prog"
	st=$?
	case $st in
	0) ;;
	4) echo "# $prog: skipped as a whole"; rc=1 ;;
	124 | 137) echo "# $prog: timed out after $timeout s"; rc=1 ;;
	*) rc=1 ;;
	esac
done

# The end-of-run checks, as one more KTAP document (all of them, whatever
# SAFEDETACH_CASES selected; make check-teeth skips them in the runs of
# broken variants with SAFEDETACH_END_OF_RUN=skip).
[ "${SAFEDETACH_END_OF_RUN:-}" = skip ] && exit $rc
echo "# selftests: safedetach: end-of-run"
unset SAFEDETACH_CASES
. ./lib.sh

# The sanitizers of each kernel flavour (scripts/kernel*.config; the host
# passes SAFEDETACH_KERNEL): every one of them must still be armed.
case ${SAFEDETACH_KERNEL:-debug} in
up) SANITIZERS="lockdep" ;;
*) SANITIZERS="KASAN lockdep kmemleak" ;;
esac
has_sanitizer() { [[ " $SANITIZERS " == *" $1 "* ]]; }

test_armed() {
	if has_sanitizer KASAN; then
		grep -qw kasan_report /proc/kallsyms || fail "the kernel has no KASAN"
		grep -qw kasan_multi_shot /proc/cmdline ||
			fail "KASAN is not multi-shot (kasan_multi_shot missing from the command line)"
	fi
	if has_sanitizer lockdep; then
		lockdep_on || fail "lockdep has turned itself off"
	fi
	if has_sanitizer kmemleak; then
		[ -w $KMEMLEAK ] && head -c0 $KMEMLEAK ||
			fail "kmemleak is not running ($KMEMLEAK is missing or refuses reads)"
	fi
	log "armed: $SANITIZERS"
}

test_whole_log() {
	local first bad
	# The boot's first message: the banner, or on arm64 the boot CPU's
	# "Booting Linux on physical CPU", printed before it
	# (smp_setup_processor_id() in arch/arm64/kernel/setup.c).
	first=$(dmesg | awk 'NR == 1')
	[[ $first == *"Linux version"* || $first == *"Booting Linux on physical CPU"* ]] ||
		fail "the kernel log no longer starts at boot (it wrapped): first line '$first'"
	if bad=$(dmesg | grep -E -A25 -- "$KLOG_BAD"); then
		log "kernel log:"
		printf '%s\n' "$bad" | sed -n 's/^/#   /; 1,80p'
		fail "the kernel log of the run has errors (between or outside cases too)"
	fi
	log "$(dmesg | wc -l) lines since boot, none bad"
}

test_taint() {
	local t
	t=$(tainted)
	[ $((t & ~TAINT_EXPECTED)) -eq 0 ] ||
		fail "the kernel is tainted $(taint_letters "$t") (only O is expected)"
	log "taint: $(taint_letters "$t")"
}

# Frames in the module area (x86_64: 0xffffffffa0000000 up; arm64's
# modules sit below the kernel image) or named after the module.
test_kmemleak() {
	local n
	[ -w $KMEMLEAK ] || fail "kmemleak is not running"
	echo scan >$KMEMLEAK || fail "kmemleak refused to scan"
	cat $KMEMLEAK >"$WORK/leaks"
	n=$(grep -c '^unreferenced object' "$WORK/leaks" || true)
	log "kmemleak: $n suspected leak(s) in the whole kernel since the first case"
	if awk '/^unreferenced object/ { obj = $0; next }
		/safedetach|0xffffffff[a-f][0-9a-f]+/ && obj != "" { print obj; print; hit = 1 }
		END { exit !hit }' "$WORK/leaks" >"$WORK/ours"; then
		sed -n 's/^/#   /; 1,40p' "$WORK/ours"
		fail "kmemleak: memory allocated by safedetach was leaked"
	fi
}

ktap_print_header
ktap_set_plan 4
run_case "the ${SAFEDETACH_KERNEL:-debug} kernel's sanitizers are armed: $SANITIZERS" test_armed
run_case "the whole kernel log since boot is clean" test_whole_log
run_case "no taint flag but O" test_taint
# The one skip allowed: the flavour has no kmemleak.
skips=0
if has_sanitizer kmemleak; then
	run_case "kmemleak: nothing allocated by the module leaked" test_kmemleak
else
	ktap_test_skip "kmemleak: the ${SAFEDETACH_KERNEL:-debug} kernel has no kmemleak"
	skips=1
fi
ktap_print_totals
[ "$KTAP_CNT_PASS" -eq $((KSFT_NUM_TESTS - skips)) ] || rc=1
exit $rc
