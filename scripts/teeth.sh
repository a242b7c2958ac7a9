#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-teeth`: prove the tests can fail. Build every deliberately
# broken variant of the module (rust/variant.rs), run the tests that should
# catch it in the debug kernel, and report which case caught which variant.
# Passes only if every variant is caught: a case fails ("not ok"), or the
# guest crashes (KASAN or a page fault in freed module text, with
# oops=panic), or the run times out.
#
# Output: one KTAP case per variant, then "N passed, N failed".
#
# Usage: scripts/teeth.sh [VARIANT...]   (default: every variant)
set -euo pipefail
. "$(dirname -- "$0")/env.sh"
cd "$SAFEDETACH_TOP"

# variant: the test scripts (and arguments) that must catch it.
declare -A TESTS=(
	[no_drain]="unload.sh"
	[no_wake]="unload.sh"
	[no_tail]="unload.sh"
	[entrances_first]="unload.sh"
)
VARIANTS=(no_drain no_wake no_tail entrances_first)
# `scripts/teeth.sh VARIANT...` checks only those.
if [ $# -gt 0 ]; then
	for v in "$@"; do
		[ -n "${TESTS[$v]:-}" ] || die "unknown variant '$v' (${VARIANTS[*]})"
	done
	VARIANTS=("$@")
fi

"$SAFEDETACH_TOP/scripts/setup.sh"
make -s -C tests
out=out/teeth-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
ln -sfn "$(basename "$out")" out/latest-teeth
ktap=$(kernel_dir)/tools/testing/selftests/kselftest/ktap_helpers.sh

results=()
for v in "${VARIANTS[@]}"; do
	scripts/build-module.sh "$v" "build/$v"
	step "teeth: running ${TESTS[$v]} against the '$v' variant"
	rc=0
	# shellcheck disable=SC2086
	scripts/vm-run.sh --timeout 1500 --log "$out/$v-kernel.log" -- \
		env KTAP_HELPERS="$ktap" SAFEDETACH_KO="$SAFEDETACH_TOP/build/$v/safedetach.ko" \
		STRESS_SECONDS=2 UNLOAD_TIMEOUT=20 tests/run_tests.sh ${TESTS[$v]} >"$out/$v.ktap" 2>&1 || rc=$?
	caught=$(grep -E '^not ok' "$out/$v.ktap" | sed -E 's/^not ok [0-9]+ //' | paste -sd ';' || true)
	case $rc in
	124) why="the run timed out${caught:+; failed: $caught}" ;;
	125) why="the guest crashed${caught:+ after: $caught}" ;;
	0) why=${caught:+failed: $caught} ;;
	*) why="the tests exited with status $rc${caught:+; failed: $caught}" ;;
	esac
	if grep -Eq 'BUG: KASAN|Oops|general protection fault|BUG: unable to handle' "$out/$v-kernel.log"; then
		why="$why; kernel log: $(grep -Eo 'BUG: KASAN: [a-z-]+|Oops|general protection fault|BUG: unable to handle [a-z ]+' "$out/$v-kernel.log" | head -n1)"
	fi
	results+=("$v|$why")
	echo "# $v: ${why:-NOT CAUGHT}"
done

echo "TAP version 13"
echo "1..${#results[@]}"
n=0 pass=0 fail=0
for r in "${results[@]}"; do
	n=$((n + 1))
	v=${r%%|*} why=${r#*|}
	if [ -n "$why" ]; then
		echo "ok $n teeth: variant $v is caught # ${why#; }"
		pass=$((pass + 1))
	else
		echo "not ok $n teeth: variant $v is NOT caught by ${TESTS[$v]}"
		fail=$((fail + 1))
	fi
done
echo "# logs: $out/"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
