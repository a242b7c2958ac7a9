#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Static check of the gate's fast path in a built module (KTAP).
#
# Every per-CPU counter update of the gate compiles to one `incq %gs:(reg)`.
# From each such increment to the conditional branch that tests `closing`,
# the code must contain no `lock`-prefixed instruction, no fence and no
# call: the entrance and the exit are an increment, a load and a branch.
# (In a KASAN build the load is preceded by KASAN's inline shadow check,
# whose report call is on a branch of its own.)
#
# Usage: tests/fastpath.sh MODULE.ko
set -uo pipefail
. "$(dirname -- "$0")/lib-host.sh"

ko=${1:-safedetach.ko}
objdump=$(command -v llvm-objdump-19 || command -v objdump)

ktap_print_header
ktap_set_plan 2
if [ ! -r "$ko" ]; then
	ktap_test_fail "fastpath: $ko exists"
	ktap_test_fail "fastpath: no lock, fence or call on the fast path"
	ktap_finished
fi

# One line per increment: function, instruction count, window, verdict.
report=$("$objdump" -d --no-show-raw-insn "$ko" | awk '
	/^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/[<>:]/, "", fn); next }
	{
		sub(/^ *[0-9a-f]+:[ \t]*/, "")
		if ($0 == "") next
		if (open) {
			win = win "; " $0; n++
			if ($0 ~ /^lock|mfence|lfence|sfence|^call|^xchg/) bad = 1
			if ($0 ~ /^j[a-z]+[ \t]/ && $0 !~ /^jmp/ || $0 ~ /^ret/ || n > 24) {
				printf "%s %d %s %s\n", (bad ? "BAD" : "ok"), n, fn, win
				open = 0
			}
		}
		# The gate is inlined into the file operations (rust/fops.rs).
		if (fn ~ /4fops/ && $0 ~ /^incq[ \t]+%gs:\(%[a-z0-9]+\)$/) {
			open = 1; n = 1; bad = 0; win = $0
		}
	}')
sites=$(printf '%s\n' "$report" | grep -c . || true)
helper_calls=$("$objdump" -d "$ko" | grep -c "call.*safedetach_this_cpu_inc" || true)
short() { sed -E 's/_RNv[A-Za-z0-9_]*main4fops([0-9]+)?([a-z_]+).*/fops::\2/; s/_RN[A-Za-z0-9_]*/(rust)/'; }
printf '%s\n' "$report" | while read -r verdict n fn win; do
	echo "# $verdict: $(echo "$fn" | short): $n instructions: $win"
done

if [ "$sites" -ge 2 ] && [ "$helper_calls" -eq 0 ]; then
	ktap_test_pass "fastpath: gate counters are single incq %gs:(reg) instructions ($sites sites)"
else
	ktap_test_fail "fastpath: gate counters are single incq %gs:(reg) instructions ($sites sites, $helper_calls helper calls)"
fi
if [ "$sites" -ge 2 ] && ! printf '%s\n' "$report" | grep -q '^BAD'; then
	ktap_test_pass "fastpath: no lock, fence or call between an increment and its closing check"
else
	ktap_test_fail "fastpath: no lock, fence or call between an increment and its closing check"
fi
ktap_finished
