#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Static check of the gate's fast path in a built module (KTAP).
#
# Every per-CPU counter update of the gate compiles to one `incq %gs:(reg)`.
# From each such increment to the conditional branch that tests `closing`,
# the code must contain no `lock`-prefixed instruction, no fence and no
# call: the entrance and the exit are an increment, a load and a branch.
# In a KASAN build the load is preceded by KASAN's inline shadow check,
# whose report call is on a branch of its own; the window skips it (see
# below) and its instructions are counted.
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

# One line per increment: verdict, instruction count, function, window.
#
# The window follows the code from the increment (through unconditional
# jumps) to the branch on `closing`: the first conditional branch after a
# load through a plain base register. KASAN's inline shadow checks load
# through base+index, (%rax,%r13), and branch only to their report; stack
# slots ((%rbp), (%rsp)) are spills.
report=$("$objdump" -d --no-show-raw-insn "$ko" | python3 -c '
import re, sys

funcs, fn = {}, None
for line in sys.stdin:
    m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
    if m:
        fn = m.group(2)
        funcs[fn] = []
        continue
    m = re.match(r"^\s*([0-9a-f]+):\s+(\S.*)$", line)
    if m and fn:
        funcs[fn].append((int(m.group(1), 16), m.group(2).strip()))

for fn, insns in funcs.items():
    if "4fops" not in fn:        # the gate is inlined into rust/fops.rs
        continue
    index = {addr: i for i, (addr, _) in enumerate(insns)}
    for start, (_, text) in enumerate(insns):
        if not re.match(r"^incq\s+%gs:\(%\w+\)$", text):
            continue
        i, win, bad, flag = start, [], False, False
        while i < len(insns) and len(win) < 32:
            text = insns[i][1]
            win.append(text.split(" <")[0].split(" #")[0])
            if re.match(r"^(lock|mfence|lfence|sfence|call|xchg)", text):
                bad = True
            if not text.startswith("lea") and re.search(r"\(%\w+\)", text) \
                    and not re.search(r"\(%r[bs]p\)", text) and i != start:
                flag = True
            # Follow jmp; before the flag load, a branch is KASAN'"'"'s: je
            # (shadow is zero) goes on to the access, jne to the report.
            m = re.match(r"^(jmp|je)\s+(0x)?([0-9a-f]+)\b", text)
            if m and (m.group(1) == "jmp" or not flag) and int(m.group(3), 16) in index:
                i = index[int(m.group(3), 16)]
                continue
            if (flag and re.match(r"^j[a-z]+\s", text)) or text.startswith("ret"):
                break
            i += 1
        ok = flag and not bad and re.match(r"^j", win[-1])
        print("%s %d %s %s" % ("ok" if ok else "BAD", len(win), fn, "; ".join(win)))
')
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
