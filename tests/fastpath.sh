#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Static check of the gate's fast path in a built module (KTAP).
#
# Every per-CPU counter update of the gate compiles to one `incq %gs:(reg)`.
# What follows it depends on the build (rust/abstractions/static_key.rs):
#
# - With jump labels (x86_64, CONFIG_JUMP_LABEL) the increment is followed
#   at once by a 5-byte NOP that a `__jump_table` entry on the module's
#   static key (safedetach_closing_key) names: the fast path is those two
#   instructions, no load, no branch. The check then follows the entry's
#   jump target, the slow path that enabling the key patches in, which
#   must load and test `closing` with no `lock`-prefixed instruction, no
#   fence and no call before its conditional branch.
# - Without them (or in the load_test variant), from the increment to the
#   first conditional branch after a load (the test of the key, or of
#   `closing`) there must be no `lock`-prefixed instruction, no fence and
#   no call: an increment, a load and a branch.
#
# In a KASAN build a load is preceded by KASAN's inline shadow check, whose
# report call is on a branch of its own; the window skips it (see below)
# and its instructions are counted.
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

# The jump-label sites of the gates' key: "code target key" per
# __jump_table entry on safedetach_closing_key, from the relocations (the
# .ko is relocatable: each field is a PC-relative relocation against .text,
# or against the key's symbol). None: a build without the static branch.
jump_table=$(readelf -rW "$ko" | python3 -c '
import re, sys

entries, in_jt = {}, False
for line in sys.stdin:
    if line.startswith("Relocation section"):
        in_jt = ".rela__jump_table" in line
        continue
    f = line.split()
    if not in_jt or len(f) < 7 or not re.match(r"^[0-9a-f]+$", f[0]):
        continue
    off = int(f[0], 16)
    value = "%x" % int(f[6], 16) if f[4] == ".text" else f[4]
    entries.setdefault(off - off % 16, {})[off % 16] = value
for e in entries.values():
    if e.get(8) == "safedetach_closing_key":
        print(e.get(0, "-"), e.get(4, "-"), e.get(8))
')
report=$("$objdump" -d --no-show-raw-insn "$ko" | JUMP_TABLE=$jump_table python3 -c '
import os, re, sys

# code address -> (target address, key) of every __jump_table entry.
sites = {}
for line in os.environ.get("JUMP_TABLE", "").splitlines():
    code, target, key = line.split()
    if code != "-" and target != "-":
        sites[int(code, 16)] = (int(target, 16), key)

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
        if sites:
            # The fast path: the increment, then at once the NOP of a
            # static branch on the module key; the window goes on at the
            # jump target, the slow path that enabling the key patches in.
            win.append(insns[start][1])
            nop = insns[start + 1] if start + 1 < len(insns) else (-1, "")
            after = insns[start + 2][0] if start + 2 < len(insns) else -1
            target, key = sites.get(nop[0], (-1, ""))
            if not (key == "safedetach_closing_key" and after == nop[0] + 5
                    and re.match(r"^nopl\s+(0x0)?\(%rax,%rax(,1)?\)$", nop[1])
                    and target in index):
                bad = True
            win.append("%s [static branch to %x]" % (nop[1], target))
            i = index.get(target, len(insns))
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
if [ -n "$jump_table" ]; then
	what="each increment is followed at once by a static-branch NOP on safedetach_closing_key, whose slow path loads and tests closing with no lock, fence or call"
else
	what="no lock, fence or call between an increment and its closing check"
fi
if [ "$sites" -ge 2 ] && ! printf '%s\n' "$report" | grep -q '^BAD'; then
	ktap_test_pass "fastpath: $what"
else
	ktap_test_fail "fastpath: $what"
fi
ktap_finished
