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
# On arm64 (the .ko's ELF machine) there is no single-instruction per-CPU
# add: every counter update is a call to safedetach_this_cpu_inc(), the C
# wrapper of this_cpu_inc() (rust/abstractions/helpers.c), which disables
# preemption, adds TPIDR_EL1 (this CPU's offset) to the cookie and adds one
# with an LL/SC loop, which CONFIG_ARM64_USE_LSE_ATOMICS has patched at boot
# into one LSE `ldadd` where the CPU has it (arch/arm64/include/asm/percpu.h).
# The first case checks the wrapper for those and for the absence of any
# fence. The second checks what design.rst claims of every call site in
# the entry points (rust/fops.rs) and in FilePass's drop (`release`): from
# the call to the first conditional branch after a load (of the key's
# count, or of `closing`) no fence, no atomic, no other call; before the
# call, in its basic block, no fence for an entrance and exactly one
# `dmb ish` (the `fence(SeqCst)` of `Gate::exit`) for an exit; and each
# entry point has both kinds, FilePass's drop only exits. The cold
# `Gate::back_out` must have its exit's fence too (it wakes the drainer
# next, so only the part before the call is checked). A build that lost
# the exit fence has no exits left, one that fenced the entrance no
# entrances.
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

# arm64: the checks described at the top, on `objdump -d -r` (every call
# in the relocatable .ko carries the relocation that names its callee).
# Prints one "# ..." line per site, then SITES, ORDER and HELPER verdicts.
arm64_check=$(cat <<'EOF'
import os, re, sys

# The module's disassembly with relocations (llvm-objdump -d -r): in a
# relocatable .ko every call to another function is a `bl` with an
# R_AARCH64_CALL26 relocation that names the callee.
funcs, fn = {}, None
for line in sys.stdin:
    m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
    if m:
        fn = m.group(2)
        funcs[fn] = []
        continue
    m = re.match(r"^\s*([0-9a-f]+):\s+(R_AARCH64_\S+)\s+(\S+)", line)
    if m and fn and funcs[fn]:
        addr, text, _ = funcs[fn][-1]
        if text.startswith("bl "):
            text = "bl " + m.group(3)
        funcs[fn][-1] = (addr, text, m.group(3))
        continue
    m = re.match(r"^\s*([0-9a-f]+):\s+(\S.*)$", line)
    if m and fn:
        text = re.sub(r"\s+", " ", m.group(2).split("//")[0]).strip()
        funcs[fn].append((int(m.group(1), 16), text, None))

HELPER = "safedetach_this_cpu_inc"
BRANCH = re.compile(r"^(b\.[a-z]+|cbn?z|tbn?z) ")
ORDERING = re.compile(r"^(dmb|dsb|isb|ld[a-z]*xr|st[a-z]*xr|ldar|stlr|ldapr|"
                      r"ld(add|clr|eor|set|smax|smin|umax|umin)|"
                      r"st(add|clr|eor|set|smax|smin|umax|umin)|swp|cas)")
# A load from an address in one register plus an immediate: KASAN's shadow
# loads add two registers (the address >> 3 and the shadow offset).
LOAD = re.compile(r"^ldr(b|h|sb|sh|sw)? [wx]\d+, \[(x\d+)(, #[^\]]*)?\]")

def callee(insn):
    return insn[2] if insn[1].startswith("bl ") else None

def target(text):
    m = re.search(r"\b0x([0-9a-f]+)\b", text.split(" <")[0].split(",")[-1])
    return int(m.group(1), 16) if m else None

# KASAN's shadow load: a byte at (address >> 3) + the shadow offset, two
# registers added.
SHADOW = re.compile(r"^ldrs?b w\d+, \[x\d+, x\d+\]$")

def kasan_branch(insns, index, i):
    """For a conditional branch at i that tests a KASAN shadow byte (the
    last load before it is a shadow load): the index where the checked
    access goes on. `cbz` (shadow zero) jumps to the access; `cbnz` and
    the `b.cond` of the partial-granule compare jump towards the report."""
    for k in range(i - 1, max(-1, i - 6), -1):
        t = insns[k][1]
        if SHADOW.match(t):
            break
        if LOAD.match(t) or BRANCH.match(t) or t.startswith(("b ", "bl ", "ret")):
            return None
    else:
        return None
    t = insns[i][1]
    if t.startswith("cbz "):
        tgt = target(t)
        return index.get(tgt)
    return i + 1

def before(insns, index, start):
    """The instructions that lead to the call at start in its basic block,
    KASAN's checks of the argument's load included."""
    win, i = [], start - 1
    while i >= 0 and len(win) < 24:
        t = insns[i][1]
        if BRANCH.match(t):
            if kasan_branch(insns, index, i) is None:
                break
        elif t.startswith(("b ", "ret", "br ", "blr ")):
            break
        elif t.startswith("bl "):
            c = callee(insns[i]) or ""
            if not c.startswith("__asan_"):
                break
        win.insert(0, t)
        i -= 1
    return win

def after(insns, index, start):
    """From the call at start to the first conditional branch after a load
    that is not KASAN's: the check of the key (or of `closing`)."""
    win, bad, loaded, i = [], False, False, start + 1
    while i < len(insns) and len(win) < 32:
        insn = insns[i]
        t = insn[1]
        win.append(t.split(" <")[0])
        if ORDERING.match(t):
            bad = True
        if t.startswith(("bl ", "blr ", "br ")):
            bad = True
        if LOAD.match(t) and not re.search(r"\[(sp|x29)\b", t):
            loaded = True
        if t.startswith("b "):
            tgt = target(t)
            if tgt in index:
                i = index[tgt]
                continue
            bad = True
            break
        if BRANCH.match(t):
            k = kasan_branch(insns, index, i)
            if k is not None:
                loaded = False
                i = k
                continue
            if loaded:
                return win, bad, True
        if t.startswith("ret"):
            break
        i += 1
    return win, bad, False

sites = {}
for name, insns in funcs.items():
    # The gate is inlined into rust/fops.rs; `release` gives the file's
    # pass back in FilePass's drop.
    if re.search(r"FileOps\d+(open|read|write|poll|ioctl)$", name):
        fn = re.search(r"FileOps\d+(\w+)$", name).group(1)
    elif "drop_in_place" in name and "8FilePass" in name:
        fn = "FilePass::drop"
    elif name.startswith("_RNv") and "4Gate" in name and "8back_out" in name:
        fn = "Gate::back_out"
    else:
        continue
    index = {addr: k for k, (addr, _, _) in enumerate(insns)}
    for k, insn in enumerate(insns):
        if callee(insn) != HELPER:
            continue
        pre = before(insns, index, k)
        fences = [t for t in pre if ORDERING.match(t)]
        kind = {0: "enter", 1: "exit"}.get(len(fences), "?")
        if fences and fences != ["dmb ish"]:
            kind = "?"
        if fn == "Gate::back_out":
            # It wakes the drainer next, whatever the key says.
            post, bad, tested = ["(wake_drainer)"], False, True
        else:
            post, bad, tested = after(insns, index, k)
        ok = tested and not bad and kind != "?"
        sites.setdefault(fn, []).append((kind, ok))
        first = next((j for j, t in enumerate(pre) if ORDERING.match(t)), max(0, len(pre) - 2))
        print("# %s: %s: %s: %s || %s" % ("ok" if ok else "BAD", fn, kind,
              "; ".join(t.split(" <")[0] for t in pre[first:]),
              "; ".join(post)))

# Every entry point enters (no fence before the increment) and leaves (one
# dmb ish before it); the file's pass is only given back.
problems = []
for fn in ("open", "read", "write", "poll", "ioctl", "FilePass::drop", "Gate::back_out"):
    kinds = [kind for kind, _ in sites.get(fn, [])]
    want = ["exit"] if fn in ("FilePass::drop", "Gate::back_out") else ["enter", "exit"]
    if not kinds or any(kind not in kinds for kind in want) or \
            any(kind not in want for kind in kinds):
        problems.append("%s has %s, wants %s" % (fn, "+".join(kinds) or "no site", "+".join(want)))
n = sum(len(v) for v in sites.values())
bad = sum(1 for v in sites.values() for _, ok in v if not ok)
if bad:
    problems.append("%d of %d sites fail" % (bad, n))
print("SITES %d" % n)
print("ORDER %s" % ("; ".join(problems) if problems else "ok"))

helper = [t.split(" <")[0] + ("" if r is None else " [%s]" % r)
          for _, t, r in funcs.get(HELPER, [])]
have = lambda pat: any(re.search(pat, t) for t in helper)
missing = [what for what, pat in (
    ("the preempt count (SP_EL0)", r"SP_EL0"),
    ("the per-CPU offset (TPIDR_EL1)", r"TPIDR_EL1"),
    ("an LL/SC or LSE add", r"^(ldxr|ldadd|stadd)"),
) if not have(pat)]
if have(r"^(dmb|dsb|isb|ldar|stlr)"):
    missing.append("no fence")
print("# helper: %s" % "; ".join(helper))
print("HELPER %s" % ("ok" if not missing and helper else "missing " + ", ".join(missing) if helper else "missing the helper"))
EOF
)
if [ "$(readelf -h "$ko" | sed -n 's/^ *Machine: *//p')" = AArch64 ]; then
	report=$("$objdump" -d -r --no-show-raw-insn "$ko" | python3 -c "$arm64_check")
	short() { sed -E 's/_RN[A-Za-z0-9_]*/(rust)/g; s/ <[^>]*>//g'; }
	printf '%s\n' "$report" | grep '^# ' | short
	sites=$(printf '%s\n' "$report" | sed -n 's/^SITES //p')
	order=$(printf '%s\n' "$report" | sed -n 's/^ORDER //p')
	helper=$(printf '%s\n' "$report" | sed -n 's/^HELPER //p')
	what="gate counters call this_cpu_inc() (safedetach_this_cpu_inc: preemption off, TPIDR_EL1, an LL/SC or LSE add, no fence)"
	if [ "${sites:-0}" -ge 2 ] && [ "$helper" = ok ]; then
		ktap_test_pass "fastpath: $what ($sites sites)"
	else
		ktap_test_fail "fastpath: $what (${sites:-0} sites; helper: ${helper:-not found})"
	fi
	what="no fence, atomic or call between an increment and its closing check; none before an entrance, exactly one dmb ish before an exit"
	if [ "${sites:-0}" -ge 2 ] && [ "$order" = ok ]; then
		ktap_test_pass "fastpath: $what"
	else
		ktap_test_fail "fastpath: $what (${order:-no report})"
	fi
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
