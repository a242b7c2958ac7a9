#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the raw numbers of scripts/bench.sh into tables and an SVG plot.

Usage: scripts/bench-report.py RESULTS.txt [--svg OUT.svg] [--splice DOC.rst]

RESULTS.txt has one measurement a line (written by scripts/bench.sh and
scripts/bench-guest.sh; lines starting with '#' are comments):

  static ko=NAME fn=FUNCTION insns=N load=0|1 window=INSN; INSN; ...
  micro prim=NAME threads=N run=R cpu=C pairs=P ns=T
  native prim=NAME threads=N run=R cpu=C pairs=P ns=T
  rw variant=gate|nogate run=R size=S procs=N pairs=P ns=T kpairs_per_s=K
  unload clients=N run=R open_files=F rmmod_us=U drain_us=D tail_us=T pre_us=B post_us=A

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
    ("gate", "safedetach gate"),
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
ATOMIC_VS_GATE_MIN = 3.0
RW_SLOWDOWN_MAX = 3.0  # percent


def parse(path):
    comments, static, micro, native, rw, unload = [], [], [], [], [], []
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
            {"micro": micro, "native": native, "rw": rw, "unload": unload}[kind].append(rec)
    return comments, static, micro, native, rw, unload


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


def fmt(x):
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def mmm(s):
    """'median (min-max)'."""
    return f"{fmt(s[0])} ({fmt(s[1])}-{fmt(s[2])})"


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


def tables(comments, static, micro, native, rw, unload):
    out = []
    goals = []
    setup = [c for c in comments
             if c.split(":", 1)[0] in ("source", "host", "vm", "kernel", "guest", "settings", "load")]
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
        out.append("Instructions from a per-CPU increment of the gate to the branch on ``closing``"
                   " (objdump of the built modules)\n")
        out.append(rst_table(["module", "sites", "instructions (sites)",
                              "pointer load before", "most common window"], rows))
        out.append("")
        if "safedetach" in st and "sdbench" in st:
            sd, sb = st["safedetach"], st["sdbench"]
            mode_sd = max(sd[1].items(), key=lambda kv: kv[1])[0]
            mode_sb = max(sb[1].items(), key=lambda kv: kv[1])[0]
            same = mode_sd == mode_sb and sd[2] == sd[0] and sb[2] == sb[0]
            out.append(f"sdbench's gate mirrors safedetach's: {'yes' if same else 'NO'}"
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
    if native:
        ns_ = micro_stats(native)
        nall = all_threads(native)
        rows = []
        for prim, label in PRIMS:
            if (prim, 1) not in ns_:
                continue
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


def plot(comments, micro, native, rw, unload):
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

    if native:
        ns_ = micro_stats(native)
        nall = all_threads(native)
        prims = [p for p in PRIMS if (p[0], 1) in ns_]
        svg.text(20, y, "1b. The same loops natively on the host CPU (bench/sdnative.c, userspace"
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
        svg.text(20, y, "2. write+read pair on a unit (syscall level), ns per pair:"
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
        svg.text(20, y, "3. rmmod with busy clients, ms (medians of each part): drain + tail as"
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
    comments, static, micro, native, rw, unload = parse(args.results)
    text = tables(comments, static, micro, native, rw, unload)
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
            f.write(plot(comments, micro, native, rw, unload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
