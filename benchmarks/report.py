#!/usr/bin/env python3
"""Report on benchmark runs: medians per group of runs, ratios to stock
ostree, physical floors and Markdown tables, from what bench-core.sh and
bench-fetch.sh record; plots.py draws the plots from the same figures.

Usage: benchmarks/report.py [--out=DIR] RESULTS-DIR [RESULTS-DIR...]

Each RESULTS-DIR holds runs.jsonl (one JSON object per run) and meta.json
(corpus, machine, filesystem, command, date, disk write rate, delta sizes,
rate per connection). Several directories make one report (say a
bench-core run and a bench-fetch run); each group of runs is judged with
the meta of the directory it came from. Writes into DIR (default: the
first RESULTS-DIR):

  summary.json         the metas, one object per group, the headlines,
                       the SVG plots drawn
  summary.md           the same as tables (also printed on stdout)
  overview.svg/.png    speed ratio to stock per scenario
  fetch-wan.svg/.png   fetch time against link rate (fetch-wan runs only)
  generate-levels.svg/.png
                       delta size against generate time per --level
                       (generate-level runs only)
A plot left over in DIR from an earlier report that this one does not
make is removed.

A group is (scenario, tool, level, link_bps) within one RESULTS-DIR. A
failed run (exit != 0, or ok / commit_present false, or no wall time) is
counted and flagged, and left out of every median. Stock counterparts:
the same scenario (and link) with tool "stock"; apply-stock and
apply-rebuild against apply, generate-ostree and generate-level against generate.

Exit status: 0; 2 with one line on stderr on a usage error or unreadable
input; 1 when the output cannot be written.

The figures and tables need the Python 3.11 standard library only, so
they come wherever python3 runs (the bench scripts themselves need none;
copy a results directory off a board and run this elsewhere). The plots
need matplotlib (Debian 12: python3-matplotlib); without it the report
says so in one line on stderr, draws none and still exits 0.
"""

import json
import math
import os
import sys
from datetime import datetime, timezone

PROG = "report.py"

SCENARIO_ORDER = ["generate", "generate-ostree", "generate-level", "apply", "apply-rebuild", "apply-stock",
                  "fetch-loopback", "fetch-ratelimit", "fetch-wan", "kill-resume"]
TOOL_ORDER = ["stock", "deltafetch", "deltafetch-stock"]
TOOL_LABEL = {"stock": "stock ostree", "deltafetch": "deltafetch",
              "deltafetch-stock": "deltafetch, stock delta"}
META_STR = ["corpus", "machine", "filesystem", "command", "date", "rate_per_conn"]
META_NUM = ["disk_write_Bps", "native_delta_bytes", "stock_delta_bytes"]


class InputError(Exception):
    pass


# --- reading -----------------------------------------------------------------

def num(v):
    """A finite number from a JSON value (numbers and numeric strings), else None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            return None
    if isinstance(v, (int, float)) and math.isfinite(v):
        return v
    return None


def integer(v):
    v = num(v)
    return int(round(v)) if v is not None else None


def truth(v):
    """True, False or None (absent or not a boolean)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    return None


def clean(v):
    """v with non-finite floats (json accepts NaN) replaced by None."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v


class Source:
    """One RESULTS-DIR: its meta and its runs."""

    def __init__(self, index, path):
        self.index = index
        self.path = path
        self.label = os.path.basename(os.path.normpath(path)) or path
        self.meta = {}
        self.runs = []
        self.invalid_lines = []
        self.blank_lines = 0


def read_source(index, path):
    src = Source(index, path)
    if not os.path.isdir(path):
        raise InputError(f"{path}: not a directory")
    meta_path = os.path.join(path, "meta.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{meta_path}: {getattr(e, 'strerror', None) or e}")
    except json.JSONDecodeError as e:
        raise InputError(f"{meta_path}: not JSON ({e})")
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: not a JSON object")
    meta = clean(meta)
    for k in META_STR:
        v = meta.get(k)
        meta[k] = None if v is None else str(v)
    for k in META_NUM:
        meta[k] = whole(num(meta.get(k)))
    src.meta = meta

    runs_path = os.path.join(path, "runs.jsonl")
    try:
        with open(runs_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InputError(f"{runs_path}: {e.strerror or e}")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            src.blank_lines += 1
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        run = parse_run(obj, src) if isinstance(obj, dict) else None
        if run is None:
            src.invalid_lines.append(lineno)
        else:
            src.runs.append(run)
    return src


def parse_run(obj, src):
    scenario, tool = obj.get("scenario"), obj.get("tool")
    if not isinstance(scenario, str) or not scenario or not isinstance(tool, str) or not tool:
        return None
    run = {"scenario": scenario, "tool": tool, "source": src, "rep": integer(obj.get("rep"))}
    for k in ("wall_s", "user_s", "sys_s", "maxrss_kib", "exit", "delta_bytes", "wire_bytes",
              "objects_written", "content_bytes", "rtt_ms"):
        run[k] = num(obj.get(k))
    run["level"] = integer(obj.get("level"))
    run["link_bps"] = integer(obj.get("link_bps"))
    reasons = []
    if run["exit"] is not None and run["exit"] != 0:
        reasons.append(f"exit {run['exit']:g}")
    for k in ("ok", "commit_present"):
        if truth(obj.get(k)) is False:
            reasons.append(f"{k} false")
    if run["wall_s"] is None:
        reasons.append("no wall time")
    run["failure"] = ", ".join(reasons) or None
    return run


# --- groups and figures --------------------------------------------------------

def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def scenario_rank(s):
    return (SCENARIO_ORDER.index(s) if s in SCENARIO_ORDER else len(SCENARIO_ORDER), s)


def tool_rank(t):
    return (TOOL_ORDER.index(t) if t in TOOL_ORDER else len(TOOL_ORDER), t)


def family(scenario):
    for f in ("generate", "apply", "fetch"):
        if scenario.startswith(f):
            return f
    return "kill" if scenario.startswith("kill") else "other"


class Group:
    def __init__(self, scenario, tool, level, link_bps, source):
        self.scenario, self.tool, self.level, self.link_bps = scenario, tool, level, link_bps
        self.source = source
        self.runs = []

    def sort_key(self):
        return (scenario_rank(self.scenario), self.link_bps or 0, self.level or 0,
                self.source.index, tool_rank(self.tool))

    def summarise(self):
        ok = [r for r in self.runs if r["failure"] is None]
        self.ok = ok
        self.failed = [r for r in self.runs if r["failure"] is not None]
        walls = [r["wall_s"] for r in ok]
        self.wall = median(walls)
        self.wall_min = min(walls) if walls else None
        self.wall_max = max(walls) if walls else None
        self.cpu = median([r["user_s"] + r["sys_s"] for r in ok
                           if r["user_s"] is not None and r["sys_s"] is not None])
        rss = median([r["maxrss_kib"] for r in ok])
        self.rss_mib = rss / 1024 if rss is not None else None
        for k in ("wire_bytes", "delta_bytes", "objects_written", "content_bytes", "rtt_ms"):
            setattr(self, k, median([r[k] for r in ok]))


def make_groups(sources):
    groups = {}
    for src in sources:
        for r in src.runs:
            key = (r["scenario"], r["tool"], r["level"], r["link_bps"], src.index)
            if key not in groups:
                groups[key] = Group(r["scenario"], r["tool"], r["level"], r["link_bps"], src)
            groups[key].runs.append(r)
    out = sorted(groups.values(), key=Group.sort_key)
    for g in out:
        g.summarise()
    return out


def pick(candidates, g):
    """The candidate from g's own RESULTS-DIR if any, else from the first other."""
    candidates = sorted(candidates, key=lambda h: (h.source is not g.source, h.level is not None,
                                                   h.source.index))
    return candidates[0] if candidates else None


def stock_counterpart(g, groups):
    """The stock group g is compared with (None without a successful stock
    run), and the stock groups there are at all."""
    target = g.scenario
    if g.scenario in ("apply-stock", "apply-rebuild"):
        target = "apply"
    elif g.scenario in ("generate-ostree", "generate-level"):
        target = "generate"
    if g.tool == "stock" and target == g.scenario:
        return None, []  # stock is the reference, also against another run's stock
    found = [h for h in groups if h is not g and h.scenario == target and h.tool == "stock"
             and h.link_bps == g.link_bps]
    return pick([h for h in found if h.wall is not None], g), found


def meta_bytes(key, g, sources):
    """A meta number from g's RESULTS-DIR, else from the first that has it."""
    if g.source.meta.get(key) is not None:
        return g.source.meta[key], f"meta.json {key} ({g.source.label})"
    for s in sources:
        if s.meta.get(key) is not None:
            return s.meta[key], f"meta.json {key} ({s.label})"
    return None, None


def generate_bytes(tool, g, groups):
    h = pick([h for h in groups if h.scenario == "generate" and h.tool == tool
              and h.level is None and h.delta_bytes is not None], g)
    if h is None:
        return None, None
    return h.delta_bytes, f"generate {tool} runs ({h.source.label})"


def derive(groups, sources):
    for g in groups:
        fam = family(g.scenario)
        g.counterpart, stocks = stock_counterpart(g, groups)
        g.has_stock = bool(stocks)
        g.speed = ratio(g.counterpart.wall, g.wall) if g.counterpart else None
        g.objects_per_s = ratio(g.objects_written, g.wall)
        g.content_mbps = ratio(g.content_bytes / 1e6, g.wall) if g.content_bytes is not None else None

        g.size_ratio = g.size_ref = g.size_ref_from = None
        if fam == "generate" and not (g.scenario == "generate" and g.tool == "stock"):
            ref, how = generate_bytes("stock", g, groups)
            if ref is None:
                ref, how = meta_bytes("stock_delta_bytes", g, sources)
            g.size_ref, g.size_ref_from = ref, how
            g.size_ratio = ratio(g.delta_bytes, ref)

        # The delta a fetch moves: the native one for deltafetch, the stock
        # one for stock pull and for deltafetch on a stock server.
        g.delta_ref = g.delta_ref_from = None
        if fam in ("fetch", "kill"):
            if g.tool == "deltafetch":
                g.delta_ref, g.delta_ref_from = meta_bytes("native_delta_bytes", g, sources)
                if g.delta_ref is None:
                    g.delta_ref, g.delta_ref_from = generate_bytes("deltafetch", g, groups)
            elif g.tool in ("stock", "deltafetch-stock"):
                g.delta_ref, g.delta_ref_from = meta_bytes("stock_delta_bytes", g, sources)
                if g.delta_ref is None:
                    g.delta_ref, g.delta_ref_from = generate_bytes("stock", g, groups)
        g.bytes_ratio = ratio(g.wire_bytes, g.delta_ref)

        g.floor_net = g.floor_disk = None
        if g.scenario == "fetch-wan" and g.delta_ref is not None and g.link_bps:
            g.floor_net = g.delta_ref * 8 / g.link_bps
        if fam in ("apply", "fetch"):
            g.floor_disk = ratio(g.content_bytes, g.source.meta.get("disk_write_Bps"))
        floors = [f for f in (g.floor_net, g.floor_disk) if f is not None]
        g.floor = max(floors) if floors else None
        g.times_floor = ratio(g.wall, g.floor)


# --- text ----------------------------------------------------------------------

def fmt(v, spec, suffix=""):
    return "–" if v is None else format(v, spec) + suffix


def fmt_s(v):
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 1000 else f"{v:.0f}"


def fmt_mb(v):
    if v is None:
        return "–"
    return f"{v / 1e6:.1f} MB" if v >= 1e5 else f"{v / 1e6:.3f} MB"


def fmt_mib(v):
    if v is None:
        return "–"
    return f"{v:.0f} MiB" if v >= 10 else f"{v:.1f} MiB"


def fmt_rate(bps):
    for scale, unit in ((1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")):
        if bps >= scale:
            return f"{bps / scale:g} {unit}"
    return f"{bps:g} bit/s"


def rates(bpss):
    """"2, 8, 32 Mbit/s" where the unit is shared, else each with its own."""
    texts = [fmt_rate(b) for b in bpss]
    units = {t.split(" ", 1)[1] for t in texts}
    if len(units) == 1:
        return ", ".join(t.split(" ", 1)[0] for t in texts) + " " + units.pop()
    return ", ".join(texts)


def fmt_level(level):
    return f"L{level}"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def code(text):
    ticks = "``" if "`" in text else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def tool_label(t):
    return TOOL_LABEL.get(t, t)


def link_label(g):
    if g.scenario == "fetch-ratelimit":
        rate = g.source.meta.get("rate_per_conn")
        return f"limit_rate {rate}/conn" if rate else "rate limit per connection"
    if g.scenario == "fetch-loopback":
        return "loopback"
    if g.link_bps:
        text = fmt_rate(g.link_bps)
        if g.rtt_ms is not None:
            text += f", RTT {g.rtt_ms:g} ms"
        return text
    return ""


def group_name(g):
    name = g.scenario
    if g.level is not None:
        name += f" {fmt_level(g.level)}"
    if g.link_bps:
        name += f" {fmt_rate(g.link_bps)}"
    return name


def runs_cell(g):
    if not g.failed:
        return str(len(g.runs))
    return f"**⚠ {len(g.ok)}/{len(g.runs)} ok**"


def speed_cell(g):
    if g.speed is not None:
        return f"{g.speed:.2f}×"
    return "reference" if g.tool == "stock" and g.counterpart is None and g.wall is not None else "–"


def meta_lines(srcs):
    def one(m):
        parts = []
        if m.get("machine"):
            parts.append(f"Machine: {m['machine']}")
        if m.get("filesystem"):
            parts.append(f"filesystem: {m['filesystem']}")
        if m.get("corpus"):
            parts.append(f"corpus: {m['corpus']}")
        if m.get("date"):
            parts.append(f"date: {m['date']}")
        text = "; ".join(parts) or "no meta"
        text = text[0].upper() + text[1:]
        if m.get("command"):
            text += f"; command: {code(m['command'])}"
        return text
    if len(srcs) == 1:
        return [one(srcs[0].meta) + "."]
    return [f"- {code(s.label)}: {one(s.meta)}." for s in srcs]


def table(title, groups, columns):
    """Markdown lines for one table; columns are (header, function of group)."""
    if not groups:
        return []
    srcs = sorted({g.source for g in groups}, key=lambda s: s.index)
    if len(srcs) > 1:
        columns = [("results", lambda g: g.source.label)] + columns
    lines = [f"## {title}", ""] + meta_lines(srcs) + [""]
    lines.append("| " + " | ".join(h for h, _ in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for g in groups:
        lines.append("| " + " | ".join(cell(f(g)) for _, f in columns) + " |")
    failed = [g for g in groups if g.failed]
    if failed:
        lines.append("")
        for g in failed:
            what = ", ".join(f"rep {r['rep'] if r['rep'] is not None else '?'} ({r['failure']})"
                             for r in g.failed)
            rest = (f"Medians are over the {len(g.ok)} successful runs." if g.ok
                    else "No successful run, so no figures.")
            lines.append(f"⚠ {group_name(g)}, {tool_label(g.tool)}: {len(g.failed)} of "
                         f"{len(g.runs)} runs failed: {what}. {rest}  ")
        lines[-1] = lines[-1].rstrip()
    lines.append("")
    return lines


COMMON = [
    ("runs", runs_cell),
    ("median s", lambda g: fmt_s(g.wall)),
    ("min–max s", lambda g: "–" if g.wall is None else f"{fmt_s(g.wall_min)}–{fmt_s(g.wall_max)}"),
    ("CPU s", lambda g: fmt_s(g.cpu)),
    ("peak RSS", lambda g: fmt_mib(g.rss_mib)),
]
TOOL = ("tool", lambda g: tool_label(g.tool))
SCENARIO = ("scenario", lambda g: g.scenario)
SPEED = ("speed-up vs stock", speed_cell)
FLOOR = [("floor s", lambda g: fmt_s(g.floor)), ("× floor", lambda g: fmt(g.times_floor, ".2f", "×"))]


def headlines(groups, sources):
    lines = []
    runs_of = {}
    for g in groups:
        runs_of.setdefault((g.scenario, g.tool, g.level, g.link_bps), []).append(g)

    def where(g):
        """The RESULTS-DIR, where two of them hold this group."""
        return f" [{g.source.label}]" if len(runs_of[(g.scenario, g.tool, g.level, g.link_bps)]) > 1 else ""

    failed = [g for g in groups if g.failed]
    if failed:
        n = sum(len(g.failed) for g in failed)
        names = "; ".join(f"{group_name(g)} {tool_label(g.tool)}{where(g)}" for g in failed)
        lines.append(f"⚠ {n} failed run{'s' if n != 1 else ''} in {len(failed)} "
                     f"group{'s' if len(failed) != 1 else ''} ({names}), left out of the medians")
    for s in sources:
        if s.invalid_lines:
            shown = ", ".join(map(str, s.invalid_lines[:10])) + (", …" if len(s.invalid_lines) > 10 else "")
            lines.append(f"⚠ {s.label}/runs.jsonl: {len(s.invalid_lines)} invalid "
                         f"line{'s' if len(s.invalid_lines) != 1 else ''} skipped (line {shown})")
    wan = {}
    for g in groups:
        if g.speed is None or g.scenario == "generate-level":
            continue
        if g.scenario == "fetch-wan" and g.link_bps:
            wan.setdefault((tool_rank(g.tool), g.source.index), []).append(g)
            continue
        n, m = len(g.ok), len(g.counterpart.ok)
        runs = f"median of {n}" if n == m else f"median of {n}; stock {m}"
        if g.speed >= 1:
            how = f"{g.speed:.2f}× faster than stock"
        else:
            how = f"{1 / g.speed:.2f}× slower than stock"
        lines.append(f"{group_name(g)}: {tool_label(g.tool)} {how} ({runs}){where(g)}")
    for key in sorted(wan):
        gs = sorted(wan[key], key=lambda g: g.link_bps)
        counts = sorted({len(g.ok) for g in gs} | {len(g.counterpart.ok) for g in gs})
        runs = f"median of {counts[0]}" if len(counts) == 1 else f"medians of {counts[0]}–{counts[-1]}"
        lines.append(f"fetch-wan: {tool_label(gs[0].tool)} "
                     f"{', '.join(f'{g.speed:.2f}×' for g in gs)} as fast as stock at "
                     f"{rates(g.link_bps for g in gs)} ({runs}){where(gs[0])}")
    for g in groups:
        if g.scenario == "generate" and g.size_ratio is not None:
            lines.append(f"generate: {tool_label(g.tool)} delta {g.size_ratio:.3f}× stock's "
                         f"({fmt_mb(g.delta_bytes)} against {fmt_mb(g.size_ref)}){where(g)}")
        if g.scenario == "kill-resume" and g.bytes_ratio is not None:
            lines.append(f"kill-resume: {tool_label(g.tool)} moved {g.bytes_ratio:.3f}× its delta "
                         f"over both runs (median of {len(g.ok)}){where(g)}")
    return lines


def markdown(groups, sources):
    out = ["# Benchmark report", ""]
    heads = headlines(groups, sources)
    out += [f"- {h}" for h in heads] or ["No scenario has successful runs of both a tool and stock ostree."]
    out.append("")
    by = {f: [g for g in groups if family(g.scenario) == f]
          for f in ("generate", "apply", "fetch", "kill", "other")}
    out += table("Generate", by["generate"], [
        SCENARIO, TOOL, ("level", lambda g: "–" if g.level is None else fmt_level(g.level)),
        *COMMON, ("delta", lambda g: fmt_mb(g.delta_bytes)),
        ("size ÷ stock", lambda g: fmt(g.size_ratio, ".3f")), SPEED])
    out += table("Apply", by["apply"], [
        SCENARIO, TOOL, *COMMON, ("objects/s", lambda g: fmt(g.objects_per_s, ",.0f")),
        ("content MB/s", lambda g: fmt(g.content_mbps, ".1f")), *FLOOR, SPEED])
    out += table("Fetch", by["fetch"], [
        SCENARIO, ("link", link_label), TOOL, *COMMON,
        ("on the wire", lambda g: fmt_mb(g.wire_bytes)),
        ("wire ÷ delta", lambda g: fmt(g.bytes_ratio, ".3f")),
        ("content MB/s", lambda g: fmt(g.content_mbps, ".1f")), *FLOOR, SPEED])
    out += table("Kill and resume", by["kill"], [
        SCENARIO, TOOL, *COMMON, ("on the wire (both runs)", lambda g: fmt_mb(g.wire_bytes)),
        ("wire ÷ delta", lambda g: fmt(g.bytes_ratio, ".3f"))])
    out += table("Other scenarios", by["other"], [SCENARIO, TOOL, *COMMON, SPEED])
    if not groups:
        out += ["No runs.", ""]
    notes = []
    if any(g.floor is not None for g in groups):
        notes.append("Floor: the larger of the delta's bytes × 8 ÷ the link rate (fetch-wan) and the "
                     "content bytes written ÷ the disk's sequential write rate (meta.json "
                     "disk_write_Bps); × floor = median wall ÷ floor.")
    if any(g.speed is not None for g in groups):
        notes.append("Speed-up = stock's median wall ÷ the tool's median wall (apply-stock and "
                     "apply-rebuild against apply; generate-ostree and generate-level against generate).")
    for n in notes:
        out += [n, ""]
    return "\n".join(out).rstrip() + "\n"


def r4(v):
    return None if v is None else round(v, 4)


def whole(v):
    """Byte and object counts: an integer where the median is one."""
    if v is None:
        return None
    return int(v) if float(v).is_integer() else round(v, 1)


def group_json(g):
    c = g.counterpart
    return {
        "key": "/".join([g.scenario, g.tool] + ([f"level={g.level}"] if g.level is not None else [])
                        + ([f"link_bps={g.link_bps}"] if g.link_bps else [])),
        "scenario": g.scenario, "tool": g.tool, "level": g.level, "link_bps": g.link_bps,
        "results": g.source.label,
        "runs": len(g.runs), "ok_runs": len(g.ok), "failed_runs": len(g.failed),
        "failures": [{"rep": r["rep"], "reason": r["failure"]} for r in g.failed],
        "wall_median_s": r4(g.wall), "wall_min_s": r4(g.wall_min), "wall_max_s": r4(g.wall_max),
        "cpu_median_s": r4(g.cpu), "maxrss_median_mib": r4(g.rss_mib),
        "wire_bytes_median": whole(g.wire_bytes), "delta_bytes_median": whole(g.delta_bytes),
        "objects_written_median": whole(g.objects_written),
        "content_bytes_median": whole(g.content_bytes), "rtt_ms_median": whole(g.rtt_ms),
        "objects_per_s": r4(g.objects_per_s), "content_MBps": r4(g.content_mbps),
        "stock_counterpart": None if c is None else {
            "scenario": c.scenario, "results": c.source.label, "wall_median_s": r4(c.wall),
            "ok_runs": len(c.ok)},
        "speed_ratio_to_stock": r4(g.speed),
        "size_ratio_to_stock": r4(g.size_ratio), "stock_delta_bytes": whole(g.size_ref),
        "stock_delta_bytes_from": g.size_ref_from,
        "bytes_ratio_to_delta": r4(g.bytes_ratio), "reference_delta_bytes": whole(g.delta_ref),
        "reference_delta_bytes_from": g.delta_ref_from,
        "floor_network_s": r4(g.floor_net), "floor_disk_s": r4(g.floor_disk),
        "floor_s": r4(g.floor), "times_floor": r4(g.times_floor),
    }


def summary_json(groups, sources, heads, plots):
    return {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": [{"results": s.label, "dir": os.path.abspath(s.path), "meta": s.meta,
                    "runs": len(s.runs), "invalid_lines": s.invalid_lines,
                    "blank_lines": s.blank_lines} for s in sources],
        "groups": [group_json(g) for g in groups],
        "headlines": heads,
        "plots": plots,
    }


# --- main ----------------------------------------------------------------------

PLOT_NAMES = ("overview", "fetch-wan", "generate-levels")  # drawn by plots.py


def load_plots():
    """plots.py, or None where matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    # plots.py imports this module by name; run as a script it is
    # __main__, and would otherwise be read a second time.
    sys.modules.setdefault("report", sys.modules[__name__])
    import plots
    return plots


def write_plots(groups, out):
    """Each plot as NAME.svg and NAME.png in out; the SVG names of those
    drawn. A plot this report does not draw (no such runs, or no
    matplotlib) is removed, for one left from an earlier report with other
    runs would mislead."""
    plots = load_plots()
    if plots is None:
        print(f"{PROG}: plots skipped: no matplotlib for {sys.executable} "
              "(apt-get install python3-matplotlib)", file=sys.stderr)
    made = []
    for name in PLOT_NAMES:
        stem = os.path.join(out, name)
        if plots is not None and plots.draw(name, groups, stem):
            made.append(name + ".svg")
            continue
        for ext in (".svg", ".png"):
            if os.path.exists(stem + ext):
                os.remove(stem + ext)
    return made


def write_file(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def die(code, msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def parse_args(argv):
    out, dirs = None, []
    it = iter(argv)
    for a in it:
        if a in ("-h", "--help"):
            print(__doc__.strip())
            sys.exit(0)
        elif a.startswith("--out="):
            out = a[len("--out="):]
        elif a == "--out":
            out = next(it, None)
            if out is None:
                die(2, "--out needs a directory")
        elif a.startswith("-") and a != "-":
            die(2, f"unknown option {a} (usage: {PROG} [--out=DIR] RESULTS-DIR [RESULTS-DIR...])")
        else:
            dirs.append(a)
    if not dirs:
        die(2, f"usage: {PROG} [--out=DIR] RESULTS-DIR [RESULTS-DIR...]")
    if out == "":
        die(2, "--out needs a directory")
    return out or dirs[0], dirs


def main(argv):
    out, dirs = parse_args(argv)
    try:
        sources = [read_source(i, d) for i, d in enumerate(dirs)]
    except InputError as e:
        die(2, str(e))
    # Directories named alike (a/results, b/results) are told apart by
    # their parents, then by number.
    alike = [sum(t.label == s.label for t in sources) > 1 for s in sources]
    for s, twin in zip(sources, alike):
        if twin:
            parent = os.path.basename(os.path.dirname(os.path.abspath(s.path)))
            s.label = f"{parent}/{s.label}" if parent else s.label
    labels = {}
    for s in sources:
        n = labels.get(s.label, 0)
        labels[s.label] = n + 1
        if n:
            s.label = f"{s.label}#{n + 1}"
    groups = make_groups(sources)
    derive(groups, sources)
    md = markdown(groups, sources)
    try:
        os.makedirs(out, exist_ok=True)
        plots = write_plots(groups, out)
        doc = summary_json(groups, sources, headlines(groups, sources), plots)
        write_file(os.path.join(out, "summary.json"),
                   json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
        write_file(os.path.join(out, "summary.md"), md)
    except OSError as e:
        die(1, f"{out}: {e.strerror or e}")
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
