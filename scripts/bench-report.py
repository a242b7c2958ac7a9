#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the raw numbers of scripts/bench.sh into tables and an SVG plot.

Usage: scripts/bench-report.py RESULTS.txt [--svg OUT.svg] [--splice DOC.rst]

RESULTS.txt has one measurement a line (written by scripts/bench.sh and
scripts/bench-guest.sh; lines starting with '#' are comments):

  static ko=NAME fn=FUNCTION insns=N load=0|1 window=INSN; INSN; ...
  micro vcpus=V prim=NAME threads=N run=R cpu=C pairs=P ns=T
  native prim=NAME threads=N run=R cpu=C pairs=P ns=T
  rw variant=gate|nogate run=R size=S procs=N pairs=P ns=T kpairs_per_s=K
  unload clients=N run=R open_files=F rmmod_us=U drain_us=D tail_us=T pre_us=B post_us=A
  units n=N run=R rmmod_us=U drain_us=D tail_us=T pre_us=B post_us=A
  unplug run=R clients=N others=M detach_us=W closed_us=C before=R1 during=R2
         after=R3 during_ms=D kernel_us=K

The micro lines of the guest with 2 vCPUs (or without vcpus=) make the
main tables; those of every vCPU count make the sweep (all vCPUs busy).

The tables (reStructuredText) go to stdout. --svg writes the plot.
--splice replaces the lines between ".. bench-results-begin" and
".. bench-results-end" in DOC.rst with the tables, so that the document shows
exactly what was printed. Only the Python standard library is used.
"""

import argparse
import statistics
import sys
from collections import defaultdict
from xml.sax.saxutils import escape

PRIMS = [
    ("floor", "this_cpu_inc pair (floor)"),
    ("rust_floor", "PerCpuCounter::inc pair"),
    ("gate", "safedetach gate (rust/gate.rs)"),
    ("gate_load_test", "the same, load and test (load_test)"),
    ("loads", "gate without its branches"),
    ("atomic", "shared atomic_long inc/dec"),
    ("refcount", "refcount_inc/refcount_dec"),
    ("percpu_ref", "percpu_ref_tryget_live/put"),
    ("srcu", "srcu_read_lock/unlock"),
    ("module_get", "try_module_get/module_put"),
    ("rwsem", "down_read/up_read"),
]

# Goals of the benchmark issue.
GATE_VS_FLOOR_MAX = 1.5
# Goal of the static-branch issue: at every vCPU count of the sweep.
STATIC_GATE_VS_FLOOR_MAX = 1.15
ATOMIC_VS_GATE_MIN = 3.0
RW_SLOWDOWN_MAX = 3.0  # percent
# Goals of the unload and hot-unplug issues.
UNITS_RATIO_MAX = 2.0  # rmmod of 64 idle units against 1
DETACH_MS_MAX = 100.0  # a detach under 64 busy clients
OTHERS_DROP_MAX = 10.0  # percent: the other units' throughput during it
MAIN_VCPUS = 2


def parse(path):
    comments, static, micro, native, rw, unload = [], [], [], [], [], []
    units, unplug = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.startswith("#"):
                comments.append(line[1:].strip())
                continue
            kind, _, rest = line.partition(" ")
            if kind == "static":
                head, _, window = rest.partition(" window=")
                rec = dict(kv.split("=", 1) for kv in head.split())
                rec["window"] = window
                static.append(rec)
                continue
            rec = dict(kv.split("=", 1) for kv in rest.split())
            {"micro": micro, "native": native, "rw": rw, "unload": unload,
             "units": units, "unplug": unplug}[kind].append(rec)
    return comments, static, micro, native, rw, unload, units, unplug


def native_prims(stats):
    """The rows of bench/sdnative.c: its gate is a C analog, not rust/gate.rs."""
    return [(p, "gate analog (C, per-thread)" if p == "gate" else label)
            for p, label in PRIMS if (p, 1) in stats]


def main_micro(micro):
    """The micro lines of the main guest (2 vCPUs)."""
    return [r for r in micro if int(r.get("vcpus", MAIN_VCPUS)) == MAIN_VCPUS]


def sweep_stats(micro):
    """{prim: {vcpus: summary}} of ns per pair with every vCPU busy."""
    out = defaultdict(dict)
    by_vcpus = defaultdict(list)
    for r in micro:
        if "vcpus" in r:
            by_vcpus[int(r["vcpus"])].append(r)
    for v, recs in by_vcpus.items():
        ms = micro_stats([r for r in recs if int(r["threads"]) == v])
        for (prim, _), s in ms.items():
            out[prim][v] = s
    return out


def host_cpus(comments):
    for c in comments:
        if c.startswith("sweep:"):
            kv = dict(x.split("=", 1) for x in c[len("sweep:"):].split())
            return int(kv["host_cpus"])
    return None


def summary(values):
    """(median, min, max, n) of a list of numbers."""
    return (statistics.median(values), min(values), max(values), len(values))


def micro_stats(micro):
    """{(prim, threads): (median, min, max, n)} of ns per pair.

    One run's figure is the mean over its threads of ns / pairs."""
    per_run = defaultdict(list)
    for r in micro:
        per_run[(r["prim"], int(r["threads"]), int(r["run"]))].append(
            int(r["ns"]) / int(r["pairs"]))
    runs = defaultdict(list)
    for (prim, threads, _), v in per_run.items():
        runs[(prim, threads)].append(statistics.fmean(v))
    return {k: summary(v) for k, v in runs.items()}


def rw_stats(rw):
    """{(variant, size, procs): summary of ns per pair, summary of kpairs/s}."""
    ns, rate = defaultdict(list), defaultdict(list)
    for r in rw:
        key = (r["variant"], int(r["size"]), int(r["procs"]))
        ns[key].append(float(r["ns"]))
        rate[key].append(float(r["kpairs_per_s"]))
    return {k: (summary(ns[k]), summary(rate[k])) for k in ns}


def unload_stats(unload):
    """{clients: {field: summary}} in milliseconds (open_files: a count)."""
    out = defaultdict(lambda: defaultdict(list))
    for r in unload:
        n = int(r["clients"])
        for field in ("rmmod_us", "drain_us", "tail_us"):
            out[n][field[:-3]].append(int(r[field]) / 1000)
        # Whatever delete_module() spent outside module_exit's own timing.
        out[n]["rest"].append((int(r["rmmod_us"]) - int(r["drain_us"]) - int(r["tail_us"])) / 1000)
        for field in ("pre_us", "post_us"):
            if field in r:
                out[n][field[:-3]].append(int(r[field]) / 1000)
        out[n]["open_files"].append(int(r["open_files"]))
    return {n: {f: summary(v) for f, v in d.items()} for n, d in out.items()}


def units_stats(units):
    """{n: {field: summary}} in milliseconds, as unload_stats."""
    out = defaultdict(lambda: defaultdict(list))
    for r in units:
        n = int(r["n"])
        for field in ("rmmod_us", "drain_us", "tail_us", "pre_us", "post_us"):
            out[n][field[:-3]].append(int(r[field]) / 1000)
        out[n]["rest"].append((int(r["rmmod_us"]) - int(r["drain_us"]) - int(r["tail_us"])) / 1000)
    return {n: {f: summary(v) for f, v in d.items()} for n, d in out.items()}


def unplug_stats(unplug):
    """{field: summary}: detach, kernel and closed in ms, rates in pairs/s,
    drop in percent of the rate before (positive: slower during)."""
    out = defaultdict(list)
    for r in unplug:
        out["detach"].append(int(r["detach_us"]) / 1000)
        out["kernel"].append(int(r["kernel_us"]) / 1000)
        for f in ("lock", "close", "key", "barrier", "unpublish", "wake"):
            if f + "_us" in r:  # results from before the steps were logged lack them
                out[f].append(int(r[f + "_us"]) / 1000)
        out["closed"].append(int(r["closed_us"]) / 1000)
        out["during_ms"].append(float(r["during_ms"]))
        for f in ("before", "during", "after"):
            out[f].append(float(r[f]))
        out["drop"].append((1 - float(r["during"]) / float(r["before"])) * 100)
    return {f: summary(v) for f, v in out.items()}


def fmt(x):
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def mmm(s):
    """'median (min-max)'."""
    return f"{fmt(s[0])} ({fmt(s[1])}-{fmt(s[2])})"


def pct(s):
    """'median (min to max)' of percentages."""
    return f"{s[0]:+.1f}% ({s[1]:+.1f} to {s[2]:+.1f})"


def rst_table(header, rows):
    """A reStructuredText simple table."""
    cols = list(zip(*([header] + rows)))
    widths = [max(len(c) for c in col) for col in cols]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), rule]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    lines.append(rule)
    return "\n".join(lines)


def all_threads(micro):
    return max(int(r["threads"]) for r in micro)


def static_summary(static):
    """{ko: (sites, {count: sites}, loads, most common window)}."""
    by_ko = defaultdict(list)
    for r in static:
        by_ko[r["ko"]].append(r)
    out = {}
    for ko, recs in by_ko.items():
        counts = defaultdict(int)
        windows = defaultdict(int)
        for r in recs:
            counts[int(r["insns"])] += 1
            # Without branch targets and registers' offsets, for grouping.
            insns = [i.split(" <")[0] for i in r["window"].split("; ")]
            insns[-1] = insns[-1].split()[0] if insns[-1].startswith("j") else insns[-1]
            windows["; ".join(insns)] += 1
        loads = sum(int(r.get("load", 0)) for r in recs)
        common = max(windows.items(), key=lambda kv: kv[1])[0]
        out[ko] = (len(recs), dict(counts), loads, common)
    return out


def tables(comments, static, micro, native, rw, unload, units, unplug):
    out = []
    goals = []
    sweep = sweep_stats(micro)
    micro = main_micro(micro)
    setup = [c for c in comments
             if (c.split(":", 1)[0] in ("source", "host", "vm", "kernel", "guest", "settings", "load")
                 or c.startswith("micro gate"))
             and not c.startswith("guest: unload:")]
    if setup:
        out.append("Setup::\n")
        out.extend("    " + c for c in setup)
        out.append("")
    if static:
        st = static_summary(static)
        rows = []
        for ko, (sites, counts, loads, common) in sorted(st.items()):
            hist = ", ".join(f"{c} (x{n})" for c, n in sorted(counts.items(), key=lambda kv: -kv[1]))
            rows.append([ko, str(sites), hist, f"{loads} of {sites}", common])
        out.append("Instructions from a per-CPU increment of the gate to the branch on ``closing``,"
                   " or to the static branch's NOP (objdump of the built modules)\n")
        out.append(rst_table(["module", "sites", "instructions (sites)",
                              "pointer load before", "most common window"], rows))
        out.append("")
        if "safedetach" in st and "sdbench" in st:
            sd, sb = st["safedetach"], st["sdbench"]
            mode_sd = max(sd[1].items(), key=lambda kv: kv[1])[0]
            mode_sb = max(sb[1].items(), key=lambda kv: kv[1])[0]
            same = mode_sd == mode_sb and sd[2] == sd[0] and sb[2] == sb[0]
            out.append("sdbench's gate (rust/gate.rs, compiled into sdbench.ko) has the same"
                       f" window as in safedetach.ko: {'yes' if same else 'NO'}"
                       f" (typical window {mode_sb} vs {mode_sd} instructions, each after a load"
                       " of the counter's per-CPU pointer)\n")
        fastpath = [c[len("fastpath:"):].strip() for c in comments if c.startswith("fastpath:")]
        if fastpath:
            out.append("tests/fastpath.sh on the same safedetach.ko::\n")
            out.extend("    " + c for c in fastpath)
            out.append("")
    if micro:
        ms = micro_stats(micro)
        nall = all_threads(micro)
        floor1 = ms[("floor", 1)][0]
        floorn = ms[("floor", nall)][0]
        rows = []
        for prim, label in PRIMS:
            if (prim, 1) not in ms:
                continue
            s1, sn = ms[(prim, 1)], ms[(prim, nall)]
            rows.append([label, mmm(s1), f"{s1[0] / floor1:.2f}", mmm(sn), f"{sn[0] / floorn:.2f}"])
        runs = ms[("floor", 1)][3]
        out.append(f"Cost of one enter+exit pair, ns (TCG-emulated), median (min-max) of {runs} runs\n")
        out.append(rst_table(["primitive", "1 thread", "x floor", f"{nall} threads", "x floor"], rows))
        out.append("")
        gate_floor = ms[("gate", nall)][0] / floorn
        atomic_gate = ms[("atomic", nall)][0] / ms[("gate", nall)][0]
        goals.append([f"gate <= {GATE_VS_FLOOR_MAX}x floor, {nall} vCPUs busy",
                      f"{gate_floor:.2f}x",
                      "met" if gate_floor <= GATE_VS_FLOOR_MAX else
                      f"missed by {(gate_floor / GATE_VS_FLOOR_MAX - 1) * 100:.0f}%"])
        goals.append([f"shared atomic >= {ATOMIC_VS_GATE_MIN:g}x gate, {nall} vCPUs busy",
                      f"{atomic_gate:.2f}x",
                      "met" if atomic_gate >= ATOMIC_VS_GATE_MIN else
                      f"missed by {(1 - atomic_gate / ATOMIC_VS_GATE_MIN) * 100:.0f}%"])
    if len(sweep.get("floor", {})) > 1:
        vcpus = sorted(sweep["floor"])
        hc = host_cpus(comments)
        over = [v for v in vcpus if hc and v > hc]
        rows = []
        for prim, label in PRIMS:
            if prim not in sweep:
                continue
            rows.append([label] + [
                f"{fmt(sweep[prim][v][0])} ({sweep[prim][v][0] / sweep['floor'][v][0]:.1f}x)"
                if v in sweep[prim] else "-" for v in vcpus])
        runs = sweep["floor"][vcpus[0]][3]
        out.append("vCPU sweep: one enter+exit pair with every vCPU busy (one thread per vCPU), ns"
                   f" (x floor), median of {runs} runs, one guest per vCPU count"
                   + (f"; * oversubscribed: more vCPUs than the host's {hc} CPUs" if over else "")
                   + "\n")
        out.append(rst_table(["primitive"] + [f"{v} vCPU{'s' if v > 1 else ''}"
                                              + ("*" if v in over else "") for v in vcpus], rows))
        out.append("")
        if "gate" in sweep:
            ratios = {v: sweep["gate"][v][0] / sweep["floor"][v][0]
                      for v in vcpus if v in sweep["gate"]}
            worst = max(ratios, key=ratios.get)
            goals.append([f"gate <= {STATIC_GATE_VS_FLOOR_MAX}x floor at every vCPU count",
                          ", ".join(f"{v}: {r:.2f}x" for v, r in sorted(ratios.items())),
                          "met" if ratios[worst] <= STATIC_GATE_VS_FLOOR_MAX else
                          f"missed at {worst} vCPUs by"
                          f" {(ratios[worst] / STATIC_GATE_VS_FLOOR_MAX - 1) * 100:.0f}%"])
    if native:
        ns_ = micro_stats(native)
        nall = all_threads(native)
        rows = []
        for prim, label in native_prims(ns_):
            s1, sn = ns_[(prim, 1)], ns_[(prim, nall)]
            rows.append([label, mmm(s1), f"{s1[0] / ns_[('floor', 1)][0]:.2f}",
                         mmm(sn), f"{sn[0] / ns_[('floor', nall)][0]:.2f}"])
        runs = ns_[("floor", 1)][3]
        out.append("Host-native userspace analog (bench/sdnative.c: per-thread instead of per-CPU"
                   f" counters), ns, median (min-max) of {runs} runs\n")
        out.append(rst_table(["loop", "1 thread", "x floor", f"{nall} threads", "x floor"], rows))
        out.append("")
        if micro:
            ratio = ns_[("gate", nall)][0] / ns_[("floor", nall)][0]
            goals.insert(1, [f"(same, host-native userspace analog, {nall} threads)", f"{ratio:.2f}x",
                             "met" if ratio <= GATE_VS_FLOOR_MAX else
                             f"missed by {(ratio / GATE_VS_FLOOR_MAX - 1) * 100:.0f}%"])
    if rw:
        rs = rw_stats(rw)
        rows = []
        worst = None
        for size in sorted({k[1] for k in rs}):
            for procs in sorted({k[2] for k in rs}):
                g, n = rs.get(("gate", size, procs)), rs.get(("nogate", size, procs))
                if not g or not n:
                    continue
                slower = (n[1][0] / g[1][0] - 1) * 100  # throughput lost, %
                worst = slower if worst is None else max(worst, slower)
                rows.append([str(size), str(procs), mmm(g[1]), mmm(n[1]),
                             f"{slower:+.1f}%", f"{fmt(g[0][0])} / {fmt(n[0][0])}"])
        runs = next(iter(rs.values()))[0][3]
        out.append("Write+read pairs on O_NONBLOCK units, thousand pairs/s (all processes),"
                   f" median (min-max) of {runs} alternating runs\n")
        out.append(rst_table(["bytes", "procs", "gate", "no gate", "gate slower by",
                              "ns/pair gate / no gate"], rows))
        out.append("")
        goals.append([f"read/write with the gate within {RW_SLOWDOWN_MAX:g}% of gate-less",
                      f"worst {worst:+.1f}%",
                      "met" if worst <= RW_SLOWDOWN_MAX else
                      f"missed by {worst - RW_SLOWDOWN_MAX:.1f} points"])
    if unload:
        us = unload_stats(unload)
        rows = []
        for n in sorted(us):
            d = us[n]
            rows.append([str(n), f"{d['open_files'][0]:g}", mmm(d["rmmod"]), mmm(d["drain"]),
                         mmm(d["tail"]), mmm(d["rest"])]
                        + ([mmm(d["pre"]), mmm(d["post"])] if "pre" in d else []))
        runs = next(iter(us.values()))["rmmod"][3]
        out.append(f"rmmod under busy clients, ms, median (min-max) of {runs} runs\n")
        has_split = "pre" in next(iter(us.values()))
        out.append(rst_table(["clients", "open files", "delete_module()", "drain", "tail",
                              "rest"] + (["rest: before", "rest: after"] if has_split else []),
                             rows))
        out.append("")
        top = max(us)
        d = us[top]
        runs_top = [r for r in unload if int(r["clients"]) == top]
        longer = sum(1 for r in runs_top if int(r["drain_us"]) > int(r["tail_us"]))
        verdict = ("met" if d["drain"][0] <= d["tail"][0] else
                   f"missed: drain is {d['drain'][0] / d['tail'][0]:.1f}x the tail")
        if longer:
            verdict += f" (drain > tail in {longer} of {len(runs_top)} runs)"
        goals.append([f"rmmod with {top} busy clients bounded by the tail, not the clients",
                      f"drain {fmt(d['drain'][0])} ms, tail {fmt(d['tail'][0])} ms (medians)",
                      verdict])
    if units:
        us = units_stats(units)
        rows = []
        for n in sorted(us):
            d = us[n]
            rows.append([str(n), mmm(d["rmmod"]), mmm(d["drain"]), mmm(d["tail"]),
                         mmm(d["pre"]), mmm(d["post"])])
        runs = next(iter(us.values()))["rmmod"][3]
        out.append(f"rmmod of idle units (no client), ms, median (min-max) of {runs} runs\n")
        out.append(rst_table(["units", "delete_module()", "drain", "tail", "rest: before",
                              "rest: after"], rows))
        out.append("")
        if 1 in us and len(us) > 1:
            top = max(us)
            ratio = us[top]["rmmod"][0] / us[1]["rmmod"][0]
            goals.append([f"rmmod of {top} idle units within {UNITS_RATIO_MAX:g}x of 1",
                          f"{ratio:.2f}x ({fmt(us[top]['rmmod'][0])} / {fmt(us[1]['rmmod'][0])} ms)",
                          "met" if ratio <= UNITS_RATIO_MAX else
                          f"missed by {(ratio / UNITS_RATIO_MAX - 1) * 100:.0f}%"])
    if unplug:
        d = unplug_stats(unplug)
        clients = unplug[0]["clients"]
        others = unplug[0]["others"]
        rows = [
            ["detach write(2), from the call to its return, ms", mmm(d["detach"])],
            ["the same in the kernel ('detached in N us'), ms", mmm(d["kernel"])],
        ]
        rows += [[f"  of which {what}, ms", mmm(d[f])] for f, what in (
            ("lock", "waiting for the table's lock"),
            ("close", "close (closing, static key, mb_on_each_cpu)"),
            ("key", "close: enabling the static key"),
            ("barrier", "close: mb_on_each_cpu()"),
            ("unpublish", "unpublish (device node, sysfs, cdev)"),
            ("wake", "wake (sleepers, pollers)")) if f in d]
        rows += [
            ["from the write to the exit of the last client of the unit, ms", mmm(d["closed"])],
            [f"other units, pairs/s: before (1 s)", mmm(d["before"])],
            ["other units, pairs/s: during (from the write to the last exit, >= 50 ms)",
             mmm(d["during"])],
            ["other units, pairs/s: after (1 s)", mmm(d["after"])],
            ["other units: throughput lost during the detach", pct(d["drop"])],
        ]
        out.append(f"Detach of unit 0 under {clients} busy clients, {others} other units busy,"
                   f" median (min-max) of {d['detach'][3]} runs\n")
        out.append(rst_table(["measure", "value"], rows))
        out.append("")
        goals.append([f"detach under {clients} busy clients returns within {DETACH_MS_MAX:g} ms",
                      f"{fmt(d['detach'][0])} ms (worst {fmt(d['detach'][2])})",
                      "met" if d["detach"][2] <= DETACH_MS_MAX else
                      f"missed (worst run {fmt(d['detach'][2])} ms)"])
        goals.append([f"other units lose < {OTHERS_DROP_MAX:g}% throughput during the detach",
                      f"{d['drop'][0]:+.1f}% (worst {d['drop'][2]:+.1f}%)",
                      "met" if d["drop"][2] < OTHERS_DROP_MAX else
                      (f"met by the median, missed in the worst run" if d["drop"][0] < OTHERS_DROP_MAX
                       else "missed")])
    if goals:
        out.append("Goals\n")
        out.append(rst_table(["goal", "measured", "verdict"], goals))
        out.append("")
    return "\n".join(out)


# --- SVG ------------------------------------------------------------------

W = 960
FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
COLORS = {"one": "#4c72b0", "all": "#dd8452", "gate": "#55a868", "nogate": "#8172b2",
          "drain": "#c44e52", "tail": "#937860", "rest": "#c8c8c8"}


class Svg:
    def __init__(self):
        self.parts = []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=12, anchor="start", weight="normal", fill="#222"):
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{fill}" {FONT}>{escape(s)}</text>')

    def rect(self, x, y, w, h, fill, title=None):
        t = f"<title>{escape(title)}</title>" if title else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h:.1f}" '
                 f'fill="{fill}">{t}</rect>')

    def line(self, x1, y1, x2, y2, stroke="#222", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{stroke}" stroke-width="{width}"{d}/>')

    def whisker(self, x1, x2, y, h=6):
        self.line(x1, y, x2, y)
        self.line(x1, y - h / 2, x1, y + h / 2)
        self.line(x2, y - h / 2, x2, y + h / 2)

    def legend(self, x, y, items):
        for label, color in items:
            self.rect(x, y - 10, 12, 12, color)
            self.text(x + 17, y, label, size=12)
            x += 24 + 7 * len(label)


def log_axis(svg, x0, x1, y_top, y_bot, lo, hi, unit):
    """Draw a log10 x axis from lo to hi (powers of ten); return a mapper."""
    import math
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))

    def X(v):
        return x0 + (math.log10(v) - a) / (b - a) * (x1 - x0)
    for e in range(a, b + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if v > 10 ** b:
                break
            x = X(v)
            svg.line(x, y_top, x, y_bot, stroke="#ddd" if m != 1 else "#bbb")
            if m in (1, 2, 5):
                label = f"{v:g}"
                svg.text(x, y_bot + 15, label, size=11, anchor="middle")
    svg.text((x0 + x1) / 2, y_bot + 32, unit, size=12, anchor="middle")
    return X


def lin_axis(svg, x0, x1, y_top, y_bot, hi, unit, step=None):
    import math
    if step is None:
        raw = hi / 6
        mag = 10 ** math.floor(math.log10(raw))
        step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw))
    top = step * math.ceil(hi / step)

    def X(v):
        return x0 + v / top * (x1 - x0)
    v = 0.0
    while v <= top + 1e-9:
        x = X(v)
        svg.line(x, y_top, x, y_bot, stroke="#ddd")
        svg.text(x, y_bot + 15, f"{v:g}", size=11, anchor="middle")
        v += step
    svg.text((x0 + x1) / 2, y_bot + 32, unit, size=12, anchor="middle")
    return X


SWEEP_COLORS = ["#222222", "#8c8c8c", "#2ca02c", "#17becf", "#1f77b4", "#9467bd",
                "#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#bcbd22"]


def plot_sweep(svg, y, sweep, hc):
    """Cost per pair against vCPUs, one line per primitive; returns the new y."""
    import math
    vcpus = sorted(sweep["floor"])
    prims = [p for p in PRIMS if p[0] in sweep]
    svg.text(20, y, "2. vCPU sweep: one enter+exit pair with every vCPU busy, ns (log scale),"
             " median", size=14, weight="bold")
    y += 24
    x0, x1 = 90, W - 270
    top, bot = y, y + 320
    vals = [s[0] for p in sweep.values() for s in p.values()]
    lo, hi = 10 ** math.floor(math.log10(min(vals))), 10 ** math.ceil(math.log10(max(vals)))

    def X(v):
        if len(vcpus) == 1:
            return (x0 + x1) / 2
        a, b = math.log2(vcpus[0]), math.log2(vcpus[-1])
        return x0 + (math.log2(v) - a) / (b - a) * (x1 - x0)

    def Y(v):
        return bot - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (bot - top)

    over = [v for v in vcpus if hc and v > hc]
    if over:
        # Shade the oversubscribed part: more vCPUs than host CPUs.
        xa = (X(hc) + X(min(over))) / 2 if hc in vcpus else X(min(over)) - 20
        svg.rect(xa, top, x1 + 20 - xa, bot - top, "#f3e6e6")
        svg.text((xa + x1 + 20) / 2, top + 16, f"oversubscribed: more vCPUs than the host's {hc} CPUs,",
                 size=11, anchor="middle", fill="#a33")
        svg.text((xa + x1 + 20) / 2, top + 30, "vCPUs take turns: not a measure of scaling",
                 size=11, anchor="middle", fill="#a33")
    e = math.log10(lo)
    while e <= math.log10(hi) + 1e-9:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if v > hi * 1.0001:
                break
            svg.line(x0, Y(v), x1 + 20, Y(v), stroke="#bbb" if m == 1 else "#e4e4e4")
            svg.text(x0 - 6, Y(v) + 4, f"{v:g}", size=11, anchor="end")
        e += 1
    for v in vcpus:
        svg.line(X(v), top, X(v), bot, stroke="#e4e4e4")
        svg.text(X(v), bot + 15, str(v), size=11, anchor="middle")
    svg.text((x0 + x1) / 2, bot + 32, "vCPUs of the guest (one benchmark thread each)",
             size=12, anchor="middle")
    svg.text(x0, top - 8, "ns per pair", size=11, anchor="middle")
    labels = []
    for i, (prim, label) in enumerate(prims):
        color = SWEEP_COLORS[i % len(SWEEP_COLORS)]
        pts = [(X(v), Y(sweep[prim][v][0])) for v in vcpus if v in sweep[prim]]
        width = 3 if prim == "gate" else 1.5
        svg.add('<polyline fill="none" stroke="{}" stroke-width="{}" points="{}"/>'.format(
            color, width, " ".join(f"{x:.1f},{y_:.1f}" for x, y_ in pts)))
        for v in vcpus:
            if v in sweep[prim]:
                svg.add(f'<circle cx="{X(v):.1f}" cy="{Y(sweep[prim][v][0]):.1f}" r="3" fill="{color}">'
                        f"<title>{escape(label)}, {v} vCPUs: {fmt(sweep[prim][v][0])} ns</title></circle>")
        last = max(v for v in vcpus if v in sweep[prim])
        labels.append([Y(sweep[prim][last][0]), label, color, prim == "gate"])
    # Labels at the right end, pushed apart so that they do not overlap.
    labels.sort()
    for i in range(1, len(labels)):
        labels[i][0] = max(labels[i][0], labels[i - 1][0] + 13)
    for ly, label, color, bold in labels:
        svg.text(x1 + 28, ly + 4, label, size=11, fill=color, weight="bold" if bold else "normal")
    return max(bot + 60, labels[-1][0] + 30 if labels else 0)


def plot(comments, micro, native, rw, unload, units, unplug):
    sweep = sweep_stats(micro)
    micro = main_micro(micro)
    svg = Svg()
    y = 30
    label_w = 250
    x0, x1 = 20 + label_w, W - 40
    svg.text(W / 2, y, "safedetach benchmarks (QEMU TCG: only ratios are meaningful)",
             size=16, anchor="middle", weight="bold")
    y += 20
    guest = next((c for c in comments if c.startswith("host:")), "")
    if guest:
        svg.text(W / 2, y, guest, size=11, anchor="middle", fill="#555")
    y += 30

    if micro:
        ms = micro_stats(micro)
        nall = all_threads(micro)
        prims = [p for p in PRIMS if (p[0], 1) in ms]
        svg.text(20, y, "1. One enter+exit pair, ns (log scale): median, whiskers min-max",
                 size=14, weight="bold")
        y += 12
        svg.legend(x0, y + 12, [("1 thread", COLORS["one"]),
                                (f"{nall} threads, one per vCPU", COLORS["all"])])
        y += 24
        lo = min(min(s[1] for s in ms.values()), 1)
        hi = max(s[2] for s in ms.values())
        row_h = 30
        top, bot = y, y + row_h * len(prims)
        X = log_axis(svg, x0, x1, top, bot, lo, hi, "ns per pair")
        floorn = ms[("floor", nall)][0]
        for i, (prim, label) in enumerate(prims):
            ry = top + i * row_h
            svg.text(x0 - 8, ry + row_h / 2 + 4, label, size=12, anchor="end",
                     weight="bold" if prim == "gate" else "normal")
            for j, (threads, color) in enumerate(((1, COLORS["one"]), (nall, COLORS["all"]))):
                s = ms[(prim, threads)]
                by = ry + 4 + j * 11
                svg.rect(x0, by, X(s[0]) - x0, 10, color,
                         f"{label}, {threads} thread(s): {fmt(s[0])} ns ({fmt(s[1])}-{fmt(s[2])})")
                svg.whisker(X(s[1]), X(s[2]), by + 5, 6)
            s = ms[(prim, nall)]
            svg.text(X(s[2]) + 6, ry + 4 + 11 + 9, f"{s[0] / floorn:.1f}x", size=10, fill="#555")
        y = bot + 60

    if len(sweep.get("floor", {})) > 1:
        y = plot_sweep(svg, y, sweep, host_cpus(comments))

    if native:
        ns_ = micro_stats(native)
        nall = all_threads(native)
        prims = native_prims(ns_)
        svg.text(20, y, "3. The same loops natively on the host CPU (bench/sdnative.c, userspace"
                 " analog), ns", size=14, weight="bold")
        y += 24
        row_h = 30
        top, bot = y, y + row_h * len(prims)
        hi = max(s[2] for s in ns_.values())
        X = lin_axis(svg, x0, x1, top, bot, hi, "ns per pair")
        floorn = ns_[("floor", nall)][0]
        for i, (prim, label) in enumerate(prims):
            ry = top + i * row_h
            svg.text(x0 - 8, ry + row_h / 2 + 4, label, size=12, anchor="end",
                     weight="bold" if prim == "gate" else "normal")
            for j, (threads, color) in enumerate(((1, COLORS["one"]), (nall, COLORS["all"]))):
                s = ns_[(prim, threads)]
                by = ry + 4 + j * 11
                svg.rect(x0, by, X(s[0]) - x0, 10, color, f"{label}, {threads} thread(s): {fmt(s[0])} ns")
                svg.whisker(X(s[1]), X(s[2]), by + 5, 6)
            s = ns_[(prim, nall)]
            svg.text(X(s[2]) + 6, ry + 4 + 11 + 9, f"{s[0] / floorn:.2f}x", size=10, fill="#555")
        y = bot + 60

    if rw:
        rs = rw_stats(rw)
        keys = sorted({(k[1], k[2]) for k in rs})
        svg.text(20, y, "4. write+read pair on a unit (syscall level), ns per pair:"
                 " median, whiskers min-max", size=14, weight="bold")
        y += 12
        svg.legend(x0, y + 12, [("safedetach.ko", COLORS["gate"]),
                                ("built with SAFEDETACH_VARIANT=no_gate", COLORS["nogate"])])
        y += 24
        row_h = 30
        top, bot = y, y + row_h * len(keys)
        hi = max(s[0][2] for s in rs.values())
        X = lin_axis(svg, x0, x1, top, bot, hi, "ns per write+read pair (per process)")
        for i, (size, procs) in enumerate(keys):
            ry = top + i * row_h
            svg.text(x0 - 8, ry + row_h / 2 + 4,
                     f"{size} byte{'s' if size > 1 else ''}, {procs} process{'es' if procs > 1 else ''}",
                     size=12, anchor="end")
            for j, v in enumerate(("gate", "nogate")):
                s = rs[(v, size, procs)][0]
                by = ry + 4 + j * 11
                svg.rect(x0, by, X(s[0]) - x0, 10, COLORS[v], f"{v}: {fmt(s[0])} ns")
                svg.whisker(X(s[1]), X(s[2]), by + 5, 6)
        y = bot + 60

    if unload:
        us = unload_stats(unload)
        svg.text(20, y, "5. rmmod with busy clients, ms (medians of each part): drain + tail as"
                 " module_exit logs them + the rest", size=14, weight="bold")
        y += 12
        svg.legend(x0, y + 12, [("drain (close, wake, wait for clients)", COLORS["drain"]),
                                ("tail (synchronize_rcu_tasks)", COLORS["tail"]),
                                ("rest of delete_module()", COLORS["rest"])])
        y += 24
        row_h = 26
        ns = sorted(us)
        top, bot = y, y + row_h * len(ns)
        hi = max(d["drain"][0] + d["tail"][0] + d["rest"][0] for d in us.values()) * 1.15
        X = lin_axis(svg, x0, x1, top, bot, hi, "milliseconds")
        for i, n in enumerate(ns):
            d = us[n]
            ry = top + i * row_h
            svg.text(x0 - 8, ry + row_h / 2 + 4, f"{n} busy client{'s' if n != 1 else ''}",
                     size=12, anchor="end")
            dr, tl = d["drain"][0], d["tail"][0]
            svg.rect(x0, ry + 5, X(dr) - x0, 16, COLORS["drain"], f"drain {fmt(dr)} ms")
            svg.rect(X(dr), ry + 5, X(dr + tl) - X(dr), 16, COLORS["tail"], f"tail {fmt(tl)} ms")
            rs_ = d["rest"][0]
            svg.rect(X(dr + tl), ry + 5, X(dr + tl + rs_) - X(dr + tl), 16, COLORS["rest"],
                     f"rest of delete_module() {fmt(rs_)} ms")
            svg.text(X(dr + tl + rs_) + 6, ry + 17, f"delete_module() {fmt(d['rmmod'][0])} ms",
                     size=10, fill="#555")
        y = bot + 50

    if units:
        us = units_stats(units)
        svg.text(20, y, "6. rmmod of idle units, ms (medians): drain + tail as module_exit logs"
                 " them + the rest", size=14, weight="bold")
        y += 24
        row_h = 26
        ns = sorted(us)
        top, bot = y, y + row_h * len(ns)
        hi = max(d["rmmod"][0] for d in us.values()) * 1.3
        X = lin_axis(svg, x0, x1, top, bot, hi, "milliseconds")
        for i, n in enumerate(ns):
            d = us[n]
            ry = top + i * row_h
            svg.text(x0 - 8, ry + row_h / 2 + 4, f"{n} idle unit{'s' if n != 1 else ''}",
                     size=12, anchor="end")
            dr, tl = d["drain"][0], d["tail"][0]
            rs_ = d["rmmod"][0] - dr - tl
            svg.rect(x0, ry + 5, X(dr) - x0, 16, COLORS["drain"], f"drain {fmt(dr)} ms")
            svg.rect(X(dr), ry + 5, X(dr + tl) - X(dr), 16, COLORS["tail"], f"tail {fmt(tl)} ms")
            svg.rect(X(dr + tl), ry + 5, X(dr + tl + rs_) - X(dr + tl), 16, COLORS["rest"],
                     f"rest {fmt(rs_)} ms")
            svg.text(X(d["rmmod"][0]) + 6, ry + 17, f"delete_module() {fmt(d['rmmod'][0])} ms",
                     size=10, fill="#555")
        y = bot + 50

    if unplug:
        d = unplug_stats(unplug)
        svg.text(20, y, f"7. Detach under {unplug[0]['clients']} busy clients: the other units'"
                 " write+read pairs per second (median, whiskers min-max)", size=14, weight="bold")
        y += 24
        row_h = 26
        parts = [("before", "1 s before the detach"),
                 ("during", f"during (median {fmt(d['during_ms'][0])} ms)"),
                 ("after", "1 s after")]
        top, bot = y, y + row_h * len(parts)
        X = lin_axis(svg, x0, x1, top, bot, max(d[p][2] for p, _ in parts) * 1.1, "pairs per second")
        for i, (p, label) in enumerate(parts):
            ry = top + i * row_h
            svg.text(x0 - 8, ry + row_h / 2 + 4, label, size=12, anchor="end")
            svg.rect(x0, ry + 5, X(d[p][0]) - x0, 16, COLORS["gate"], f"{label}: {fmt(d[p][0])}")
            svg.whisker(X(d[p][1]), X(d[p][2]), ry + 13, 8)
        y = bot + 55
        svg.text(x0, y, f"detach write(2): {fmt(d['detach'][0])} ms median, {fmt(d['detach'][2])} ms"
                 f" worst; in the kernel {fmt(d['kernel'][0])} ms", size=12)
        y += 30

    H = y
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
            f'viewBox="0 0 {W} {H}">\n<rect width="{W}" height="{H}" fill="white"/>')
    return "\n".join([head] + svg.parts + ["</svg>", ""])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--svg")
    ap.add_argument("--splice")
    args = ap.parse_args()
    comments, static, micro, native, rw, unload, units, unplug = parse(args.results)
    text = tables(comments, static, micro, native, rw, unload, units, unplug)
    print(text)
    if args.splice:
        with open(args.splice, encoding="utf-8") as f:
            doc = f.read()
        begin, end = ".. bench-results-begin\n", ".. bench-results-end\n"
        if begin not in doc or end not in doc:
            sys.exit(f"bench-report: {args.splice} has no {begin.strip()} / {end.strip()} lines")
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        with open(args.splice, "w", encoding="utf-8") as f:
            f.write(head + begin + "\n" + text.rstrip("\n") + "\n\n" + end + tail)
    if args.svg:
        with open(args.svg, "w", encoding="utf-8") as f:
            f.write(plot(comments, micro, native, rw, unload, units, unplug))
    return 0


if __name__ == "__main__":
    sys.exit(main())
