#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-teeth`: prove that the tests catch what they are meant to
# catch, for the right reason.
#
# Each *tooth* names a deliberately broken variant of the module
# (rust/variant.rs), the test case that must catch it, and the reason that
# case must give (a regex matched against the case's own output and the
# kernel log from the case's marker to the next). For each tooth the variant
# is built, the guest boots it and runs that one case (SAFEDETACH_CASES),
# and the tooth passes only if
#
#   - the kernel log shows the variant's banner (it is the module loaded),
#   - the named case failed ("not ok"), or the guest crashed while that
#     case ran, and
#   - the reason is there.
#
# A run that timed out, or a guest that never booted (a QEMU failure), is
# reported as such and never counts as caught. Before the teeth, *control*
# runs boot the correct module (and `wide_tail`, the correct protocol with
# the tail window widened as in `no_tail`) through the same cases with the
# same settings: every one of them must pass, or the teeth prove nothing.
#
# Output: KTAP, one case per control and per tooth, then "N passed, N
# failed". Logs: out/teeth-<time>/ (out/latest-teeth links to the last).
#
# Usage: scripts/teeth.sh [VARIANT...]   (default: every variant)
#   VM_CPUS=N   the guest's vCPUs (default 2)
#   TEETH_SCRIPTS="a.sh ..."   only the teeth (and their controls) whose
#               case is in these scripts
set -uo pipefail
. "$(dirname -- "$0")/env.sh"
cd "$SAFEDETACH_TOP"

VM_CPUS=${VM_CPUS:-2}

# variant|script|case (regex on the description)|reason (regex)
TEETH=(
	"no_drain|unload.sh|^rmmod waits for an idle holder|rmmod returned while a file was open|the module's exit returned while a file was open"
	"no_drain|stress.sh|^stress 0001|KASAN: [a-z-]+ in .*(fops|fifo|Fifo|gate|Gate)|unable to handle page fault"
	"no_drain|clients.sh|^python3 clients that retry|expected /\^module loaded\\\$/|KASAN: [a-z-]+ in .*(fops|fifo|Fifo|gate|Gate)|unable to handle page fault"
	"no_wake|unload.sh|^blocked reader, writer|rmmod did not return 0 within"
	"wake_locked|scale.sh|^rmmod while a reader is stuck in a userfaultfd fault|the next unit's reader was not woken"
	"no_cdev_wait|unload.sh|^reload at once|KASAN: [a-z-]+ in kobject_put"
	"entrances_first|unload.sh|^calls on a held file|drain ended with [0-9]+ file\(s\) still open"
	"entrances_first|stress.sh|^stress 0001|drain ended with [0-9]+ file\(s\) still open"
	"entrances_first|clients.sh|^python3 clients that retry|drain ended with [0-9]+ file\(s\) still open"
	"online_only|hotplug.sh|^rmmod counts what an offline CPU counted|drain ended with [0-9]+ file\(s\) still open"
	"no_tail|functional.sh|^load and unload\$|KASAN: [a-z-]+ in .*anchor_release"
	"no_drain|unplug.sh|^detach with an idle holder|KASAN: [a-z-]+ in .*(fops|fifo|Fifo|gate|Gate)|unable to handle page fault|expected 'Device or resource busy'"
	"no_unit_tail|unplug.sh|^detach with an idle holder|KASAN: [a-z-]+ in .*anchor_release"
	"no_key|unplug.sh|^detach with an idle holder|reopening the detached unit's held file .* succeeded"
)
# The correct build each variant's cases are run with as a control, if not
# the normal module.
declare -A CONTROL=([no_tail]=wide_tail [no_unit_tail]=wide_tail)

variants=()
for t in "${TEETH[@]}"; do
	v=${t%%|*}
	[[ " ${variants[*]} " == *" $v "* ]] || variants+=("$v")
done
if [ $# -gt 0 ]; then
	for v in "$@"; do
		[[ " ${variants[*]} " == *" $v "* ]] || die "unknown variant '$v' (${variants[*]})"
	done
	variants=("$@")
fi
selected=()
for t in "${TEETH[@]}"; do
	[[ " ${variants[*]} " == *" ${t%%|*} "* ]] || continue
	script=${t#*|}
	script=${script%%|*}
	[ -z "${TEETH_SCRIPTS:-}" ] || [[ " $TEETH_SCRIPTS " == *" $script "* ]] || continue
	selected+=("$t")
done
[ ${#selected[@]} -gt 0 ] || die "no tooth of '${variants[*]}' in scripts '${TEETH_SCRIPTS:-}'"

"$SAFEDETACH_TOP/scripts/setup.sh" || die "setup failed"
make -s -C tests || die "building tests/sdtool failed"
out=out/teeth-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
ln -sfn "$(basename "$out")" out/latest-teeth
ktap=$(kernel_dir)/tools/testing/selftests/kselftest/ktap_helpers.sh

# run_guest NAME KO SCRIPTS CASES: run SCRIPTS (space-separated) with only
# the cases matching CASES, module KO; KTAP in $out/NAME.ktap, kernel log in
# $out/NAME-kernel.log. Returns vm-run's status.
run_guest() {
	local name=$1 ko=$2 scripts=$3 cases=$4 rc=0 end=
	[[ $name == control-* ]] || end=skip
	step "teeth: $name: $scripts, cases /$cases/"
	# shellcheck disable=SC2086
	scripts/vm-run.sh --timeout 1200 --cpus "$VM_CPUS" --log "$out/$name-kernel.log" -- \
		env KTAP_HELPERS="$ktap" SAFEDETACH_KO="$SAFEDETACH_TOP/$ko" \
		SAFEDETACH_CASES="$cases" SAFEDETACH_END_OF_RUN="$end" EXPECT_CPUS="$VM_CPUS" STRESS_SECONDS=2 \
		tests/run_tests.sh $scripts >"$out/$name.ktap" 2>&1 || rc=$?
	return $rc
}

# build VARIANT: build/teeth-KERNEL/VARIANT/safedetach.ko (per kernel tree:
# a module built for another flavour does not load, or is not the one
# meant), again whenever a source it is built from is newer; sets KO to it.
TEETH_BUILD=build/teeth-$(kernel_key)
build() {
	local dir=$TEETH_BUILD/$1
	KO=$dir/safedetach.ko
	[ -f "$KO" ] && [ -z "$(find rust include/uapi Kbuild -newer "$KO" -print -quit)" ] && return 0
	scripts/build-module.sh "$1" "$dir" >&2 || die "building the $1 variant failed"
}

results=()
n=0

# --- Controls: every selected case must pass with the correct builds. ---
declare -A ctl_cases=() ctl_re=()
for t in "${selected[@]}"; do
	IFS='|' read -r v script case _ <<<"$t"
	c=${CONTROL[$v]:-normal}
	ctl_cases[$c]+="${ctl_cases[$c]:+ }$script"
	ctl_re[$c]+="${ctl_re[$c]:+|}($case)"
done
for c in "${!ctl_cases[@]}"; do
	scripts=$(tr ' ' '\n' <<<"${ctl_cases[$c]}" | awk '!seen[$0]++' | paste -sd' ')
	if [ "$c" = normal ]; then
		make -s modules >/dev/null 2>&1 || make -s modules || die "building safedetach.ko failed"
		ko=safedetach.ko
	else
		build "$c"
		ko=$KO
	fi
	rc=0
	run_guest "control-$c" "$ko" "$scripts" "${ctl_re[$c]}" || rc=$?
	ran=$(grep -cE '^(not )?ok [0-9]+ ' "$out/control-$c.ktap")
	skipped=$(grep -cE '^ok [0-9]+ .*# SKIP' "$out/control-$c.ktap")
	want=$(tr '|' '\n' <<<"${ctl_re[$c]}" | sort -u | wc -l)
	if [ "$c" != normal ] && ! grep -q "deliberately broken test variant '$c'" "$out/control-$c-kernel.log"; then
		why="the $c build's banner is not in the kernel log"
	elif [ "$c" = normal ] && grep -q "deliberately broken test variant" "$out/control-$c-kernel.log"; then
		why="a variant, not the correct module, was loaded"
	elif [ $rc = 124 ]; then
		why="the run timed out"
	elif [ $rc = 125 ]; then
		why="the guest crashed or did not boot"
	elif grep -qE '^not ok' "$out/control-$c.ktap" || [ $((ran - skipped)) -lt "$want" ]; then
		why="failed: $(grep -E '^not ok' "$out/control-$c.ktap" | sed -E 's/^not ok [0-9]+ //' | paste -sd';')"
	else
		why=
	fi
	n=$((n + 1))
	if [ -z "$why" ]; then
		results+=("ok $n control: the $c build passes ${scripts// /, } cases /${ctl_re[$c]}/")
	else
		results+=("not ok $n control: the $c build passes ${scripts// /, } cases /${ctl_re[$c]}/ # $why")
	fi
	echo "# ${results[-1]}"
done

# --- Teeth. ---
i=0
for t in "${selected[@]}"; do
	IFS='|' read -r v script case reason <<<"$t"
	i=$((i + 1))
	build "$v"
	name=$v-$i
	rc=0
	run_guest "$name" "$KO" "$script" "$case" || rc=$?
	k=$out/$name.ktap
	log=$out/$name-kernel.log
	desc=$(grep -E '^# case: ' "$k" | sed 's/^# case: //' | grep -E -- "$case" | head -n1)
	# What the case printed, and the kernel log from its marker on.
	awk -v d="# case: $desc" 'index($0, d) == 1 { on = 1 } on { print } on && /^(not )?ok [0-9]+ / { exit }' "$k" >"$out/$name.case"
	awk '/safedetach-selftest: .* case [0-9]+ begin/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$log" >>"$out/$name.case"
	result=$(grep -E "^(not )?ok [0-9]+ " "$k" | grep -F -- "$desc" | head -n1)
	found=$(grep -aoE -- "$reason" "$out/$name.case" | head -n1 || true)
	if ! grep -q "deliberately broken test variant '$v'" "$log"; then
		why="NOT CAUGHT: the variant's banner is not in the kernel log (was it loaded?)"
	elif [ -z "$desc" ]; then
		why="NOT CAUGHT: the case /$case/ never started (status $rc)"
	elif [ $rc = 124 ]; then
		why="NOT CAUGHT: the run timed out (a timeout does not count)"
	elif [ $rc = 125 ] && ! grep -q '^\[ *[0-9.]*\] Linux version' "$log"; then
		why="NOT CAUGHT: QEMU failed (the guest did not boot)"
	elif [ -z "$found" ]; then
		why="NOT CAUGHT for the right reason: ${result:-the guest stopped during the case} without /$reason/"
	elif [[ $result == "not ok"* ]]; then
		why="caught: '$desc' failed: $found"
	elif [ -z "$result" ] && [ $rc = 125 ]; then
		why="caught: the guest crashed during '$desc': $found"
	else
		why="NOT CAUGHT: '$desc' passed"
	fi
	n=$((n + 1))
	if [[ $why == caught:* ]]; then
		results+=("ok $n teeth: $v is caught by $script '$desc' # ${why#caught: }")
	else
		results+=("not ok $n teeth: $v is caught by $script /$case/ # $why")
	fi
	echo "# ${results[-1]}"
done

echo "TAP version 13"
echo "1..${#results[@]}"
pass=0 fail=0
for r in "${results[@]}"; do
	echo "$r"
	if [[ $r == ok* ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "# logs: $out/"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
