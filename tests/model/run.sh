#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Model-check the unload protocol (unload.pml) with spin, and prove that the
# check has teeth: the protocol as designed must pass an exhaustive search,
# and every deliberately broken variant (mutant) must be caught.
#
# Each variant is built in a temporary directory: spin -a writes pan.c, gcc
# builds the verifier, pan searches the whole state space. Two searches:
#
#   safety    assertions (nothing runs module code or touches gate memory
#             after the free) and invalid end states; the completion's
#             timeout may fire at any time (pan built with -DSAFETY).
#   liveness  LTL "<> freed" (unloading finishes) under weak fairness, with
#             the timeout left out, so that a lost wake-up is a hang
#             (spin -DLIVENESS, pan -a -f).
#
# Two configurations: the gate alone (default), and the whole module_exit()
# with cdev references (-DWITH_CDEV). Two memory models: x86-TSO (default),
# and weakly ordered, as arm64 (-DWEAK), which also checks the drain's own
# guarantee (-DCHECK_DRAIN: when the sums balance, no access of a pass to
# the unit's state is pending; also checked once under x86-TSO, where the
# gate has no exit fence). The correct protocol must pass both searches;
# each mutant must fail the search aimed at it, with the expected kind of
# error. Output is KTAP.
#
# Environment:
#   KTAP_HELPERS  the kernel's tools/testing/selftests/kselftest/ktap_helpers.sh
#                 (used if it is readable; otherwise this script prints the
#                 same KTAP itself)
#   SPIN_DEFINES  extra spin options for every variant, for example
#                 "-DNR_READERS=3 -DNR_OPS=1" (default: none, the model's
#                 2 readers x 2 uses on 2 CPUs)
#   PAN_TIMEOUT   seconds one search may take before it counts as failed
#                 (default 300)
#   PAN_DEPTH     pan's search depth limit (default 1000000); a search that
#                 reaches it is reported as incomplete, never as a pass
#   MODEL_KEEP    if non-empty, keep the work directory (trails) and say where

set -euo pipefail

MODEL_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
MODEL=$MODEL_DIR/unload.pml
SPIN_DEFINES=${SPIN_DEFINES:-}
PAN_TIMEOUT=${PAN_TIMEOUT:-300}
# Deep enough for every variant (they reach depths below 1000); a search
# that hits it is reported as incomplete, never as a pass.
PAN_DEPTH=${PAN_DEPTH:-1000000}

# What pan prints when it did not explore the whole state space.
PAN_INCOMPLETE='max search depth too small|Search (incomplete|not completed)|out of memory|reached -DMEMLIM bound|too small, recompile'

# The tests: name | spin options | searches | pan's error, or "" for none.
TESTS=(
	"correct||safety liveness|"
	"entrances-first|-DMUTANT_ENTRANCES_FIRST|safety|assertion violated"
	"no-close-barrier|-DMUTANT_NO_CLOSE_BARRIER|safety|assertion violated"
	"no-tail-wait|-DMUTANT_NO_TAIL_WAIT|safety|assertion violated"
	"no-backout-exit|-DMUTANT_NO_BACKOUT_EXIT|liveness|acceptance cycle"
	"no-reinit-barrier|-DMUTANT_NO_REINIT_BARRIER|liveness|acceptance cycle"
	"no-patch-sync|-DMUTANT_NO_PATCH_SYNC|safety|assertion violated"
	"cdev/correct|-DWITH_CDEV|safety liveness|"
	"cdev/no-tail-wait|-DWITH_CDEV -DMUTANT_NO_TAIL_WAIT|safety|assertion violated"
	"cdev/no-cdev-wait|-DWITH_CDEV -DMUTANT_NO_CDEV_WAIT|safety|assertion violated"
	"drain/correct|-DCHECK_DRAIN|safety|"
	"weak/correct|-DWEAK|safety liveness|"
	"weak/no-exit-fence|-DWEAK -DMUTANT_NO_EXIT_FENCE|safety|assertion violated  !(sb_unit[i])"
	"weak/no-backout-fence|-DWEAK -DMUTANT_NO_BACKOUT_FENCE|safety|assertion violated"
	"weak/no-close-barrier|-DWEAK -DMUTANT_NO_CLOSE_BARRIER|safety|assertion violated"
)

# KTAP output: the kernel's helpers if given, else the same lines from here.
if [[ -n "${KTAP_HELPERS:-}" && -r "$KTAP_HELPERS" ]]; then
	# shellcheck source=/dev/null
	source "$KTAP_HELPERS"
else
	KTAP_TESTNO=1
	KTAP_CNT_PASS=0
	KTAP_CNT_FAIL=0
	KTAP_CNT_SKIP=0
	KSFT_NUM_TESTS=0

	ktap_print_header() { echo "TAP version 13"; }
	ktap_print_msg() { echo "# $*"; }
	ktap_set_plan() {
		KSFT_NUM_TESTS=$1
		echo "1..$KSFT_NUM_TESTS"
	}
	ktap_skip_all() { echo "1..0 # SKIP $*"; }
	ktap_test_pass() {
		echo "ok $KTAP_TESTNO $1"
		KTAP_TESTNO=$((KTAP_TESTNO + 1))
		KTAP_CNT_PASS=$((KTAP_CNT_PASS + 1))
	}
	ktap_test_fail() {
		echo "not ok $KTAP_TESTNO $1"
		KTAP_TESTNO=$((KTAP_TESTNO + 1))
		KTAP_CNT_FAIL=$((KTAP_CNT_FAIL + 1))
	}
	ktap_print_totals() {
		echo "# Totals: pass:$KTAP_CNT_PASS fail:$KTAP_CNT_FAIL xfail:0 xpass:0 skip:$KTAP_CNT_SKIP error:0"
	}
	ktap_finished() {
		ktap_print_totals
		if [[ $((KTAP_CNT_PASS + KTAP_CNT_SKIP)) -eq $KSFT_NUM_TESTS ]]; then
			exit 0
		fi
		exit 1
	}
fi

msg() { echo "# $*"; }

# Set by verify(): how the search ended and a one-line summary of it.
#   VERDICT  "pass" (complete search, no error), "error" (pan found an
#            error: ERROR_LINE says which), or "broken" (the tools failed,
#            the search was cut short or timed out: not a verdict at all)
VERDICT=
ERROR_LINE=
SUMMARY=

# verify NAME SEARCH [SPIN-OPTIONS...]: build and run one search.
verify() {
	local name=$1 search=$2
	shift 2
	local dir=$WORKDIR/${name//\//-}-$search
	local spin_opts=() cc_opts=(-w -O2 -DMEMLIM=4096) pan_opts=(-m"$PAN_DEPTH")
	local start end ms out errors states elapsed

	case $search in
	safety)
		cc_opts+=(-DSAFETY)
		;;
	liveness)
		spin_opts+=(-DLIVENESS)
		pan_opts+=(-a -f)
		;;
	esac
	# shellcheck disable=SC2206 # word splitting of the user's options
	spin_opts+=($SPIN_DEFINES "$@")

	mkdir -p "$dir"
	cp "$MODEL" "$dir/"
	msg "$name: $search search: spin -a ${spin_opts[*]}${spin_opts[*]:+ }unload.pml;" \
		"gcc ${cc_opts[*]} pan.c; ./pan ${pan_opts[*]}"
	VERDICT=broken
	ERROR_LINE=
	SUMMARY=
	start=$(date +%s%N)
	if ! (cd "$dir" && spin -a "${spin_opts[@]}" unload.pml) >"$dir/spin.log" 2>&1; then
		SUMMARY="spin -a failed: $(head -n1 "$dir/spin.log")"
		return 0
	fi
	if ! (cd "$dir" && gcc "${cc_opts[@]}" -o pan pan.c) >"$dir/gcc.log" 2>&1; then
		SUMMARY="gcc failed: $(head -n1 "$dir/gcc.log")"
		return 0
	fi
	if ! (cd "$dir" && timeout "$PAN_TIMEOUT" ./pan "${pan_opts[@]}") >"$dir/pan.out" 2>&1; then
		SUMMARY="pan failed or timed out after ${PAN_TIMEOUT}s: $(tail -n1 "$dir/pan.out")"
		return 0
	fi
	end=$(date +%s%N)
	out=$dir/pan.out

	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | tail -n1)
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out" | tail -n1)
	elapsed=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' "$out" | tail -n1)
	if [[ -z "$errors" || -z "$states" ]]; then
		SUMMARY="no result in pan's output: $(tail -n1 "$out")"
		return 0
	fi
	ms=$(((end - start) / 1000000))
	SUMMARY=$(printf '%s states, search %ss, %d.%03ds with build' \
		"$states" "${elapsed:-?}" $((ms / 1000)) $((ms % 1000)))
	if [[ "$errors" -gt 0 ]]; then
		# A counterexample is one, even from a search cut short.
		VERDICT=error
		ERROR_LINE=$(grep -m1 '^pan:[0-9]*:' "$out" || true)
		SUMMARY="$errors error(s), $SUMMARY"
	elif grep -qE "$PAN_INCOMPLETE" "$out"; then
		# No error found, but not everything was searched: no pass.
		SUMMARY="search incomplete ($(grep -m1 -E "$PAN_INCOMPLETE" "$out")), $SUMMARY"
	else
		VERDICT=pass
		SUMMARY="complete, no errors, $SUMMARY"
	fi
}

if ! command -v spin >/dev/null || ! command -v gcc >/dev/null; then
	ktap_print_header
	ktap_skip_all "spin and gcc are needed (Debian packages spin, gcc)"
	exit 4
fi

WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/safedetach-model.XXXXXX")
if [[ -n "${MODEL_KEEP:-}" ]]; then
	trap 'echo "# work directory kept: $WORKDIR"' EXIT
else
	trap 'rm -rf -- "$WORKDIR"' EXIT
fi

ktap_print_header
ktap_set_plan ${#TESTS[@]}
msg "$(spin -V | head -n1); model $MODEL${SPIN_DEFINES:+ with $SPIN_DEFINES}"

for t in "${TESTS[@]}"; do
	IFS='|' read -r name defines searches expect <<<"$t"
	case $name in
	*correct)
		title="correct protocol passes"
		;;
	*)
		title="mutant ${name#*/} is caught"
		;;
	esac
	case $name in
	cdev/*)
		title="$title with cdev references"
		;;
	drain/*)
		title="$title the drain check under x86-TSO, without an exit fence"
		;;
	weak/*)
		title="$title under weak memory ordering"
		;;
	esac

	passed=1
	for search in $searches; do
		# shellcheck disable=SC2086 # one word per spin option
		verify "$name" "$search" $defines
		msg "$name: $search: $SUMMARY"
		if [[ -n $ERROR_LINE ]]; then
			msg "$name: $search: $ERROR_LINE"
		fi
		if [[ -z $expect ]]; then
			# The protocol: a complete search without an error.
			[[ $VERDICT == pass ]] || passed=0
		elif [[ $VERDICT != error || $ERROR_LINE != *"$expect"* ]]; then
			# A mutant: the search aimed at it reports the error.
			msg "$name: $search: expected \"$expect\""
			passed=0
		fi
	done
	if [[ $passed -eq 1 ]]; then
		ktap_test_pass "model: $title"
	else
		ktap_test_fail "model: $title"
	fi
done

ktap_finished
