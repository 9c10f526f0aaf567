"""Plots of a benchmark report, drawn with matplotlib: report.py works out
the groups of runs and their figures; this module only draws them.

  overview         speed ratio to stock per scenario
  fetch-wan        fetch time against link rate (fetch-wan runs only)
  generate-levels  delta size against generate time per --level
                   (generate-level runs only)

draw() writes one of them as NAME.svg and NAME.png. Needs matplotlib
(Debian 12: python3-matplotlib); report.py imports this module only where
matplotlib imports, and writes its tables without it.
"""

import os

import matplotlib

matplotlib.use("Agg")  # files only, never a window

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from report import (fmt_level, fmt_rate, group_name, pick, scenario_rank,  # noqa: E402
                    tool_label, tool_rank)

TOOL_COLOUR = {"stock": "#d95f02", "deltafetch": "#1f65c1", "deltafetch-stock": "#1b9e77"}
OTHER_COLOURS = ["#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666"]
WARN = "#b00000"
GRID = "#e3e3e3"

# 7.2 × 4.4 inches: at 100 dpi the 720 × 440 pixels the hand-drawn plots
# had; the PNG at 150 dpi (1080 × 660). Font sizes below are points.
SIZE, DPI, PNG_DPI = (7.2, 4.4), 100, 150

matplotlib.rcParams.update({
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    # SVG text stays text (small, searchable); ids and file stay the same
    # from run to run for the same figures.
    "svg.fonttype": "none",
    "svg.hashsalt": "deltafetch-benchmarks",
})


# --- shared pieces -------------------------------------------------------------

def colours(tools):
    extra = iter(OTHER_COLOURS * 4)
    return {t: TOOL_COLOUR.get(t) or next(extra) for t in sorted(set(tools), key=tool_rank)}


def corpus_of(groups):
    names = []
    for g in groups:
        c = g.source.meta.get("corpus")
        if c and c not in names:
            names.append(c)
    text = "; ".join(names)
    return text if len(text) <= 110 else text[:109] + "…"


def series_name(tool, src, many):
    return tool_label(tool) + (f" ({src.label})" if many else "")


def lost_notes(gs, most=4):
    """Legend notes for groups a plot cannot show for want of a successful run."""
    notes = []
    for g in gs:
        who = "no successful run" if g.wall is None else "stock: no successful run"
        notes.append(f"⚠ {group_name(g)}, {tool_label(g.tool)}: {who}")
    if len(notes) > most:
        notes = notes[:most - 1] + [f"⚠ and {len(notes) - most + 1} more without a figure"]
    return notes


def spread(values):
    """Largest ÷ smallest of the positive values (1 without any)."""
    values = [v for v in values if v is not None and v > 0]
    return max(values) / min(values) if values else 1.0


def figure(title, corpus, note):
    """A figure with one plot area under the title, the corpus and a note."""
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    fig.suptitle(title, fontsize=11, fontweight="bold")
    ax = fig.add_subplot()
    ax.set_title(f"{corpus}\n{note}" if corpus else note, color="#444444")
    ax.grid(True, color=GRID)
    ax.set_axisbelow(True)
    return fig, ax


def log_axis(axis, values):
    """Log scale ticked at 1, 2 and 5 times the powers of ten (the powers
    alone over more than three decades), written as plain numbers."""
    subs = (1.0,) if spread(values) > 1000 else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def legend(ax, entries):
    """entries: (artist, label); a None artist makes a note, in red."""
    handles = [h if h is not None else Line2D([], [], linestyle="none") for h, _ in entries]
    leg = ax.legend(handles, [text for _, text in entries], loc="best", framealpha=0.9,
                    edgecolor="#999999")
    for (h, _), text in zip(entries, leg.get_texts()):
        if h is None:
            text.set_color(WARN)


def save(fig, stem):
    """STEM.svg and STEM.png, each replaced whole."""
    for ext, kw in ((".svg", {"metadata": {"Date": None}}), (".png", {"dpi": PNG_DPI})):
        tmp = stem + ext + ".tmp"
        fig.savefig(tmp, format=ext[1:], **kw)
        os.replace(tmp, stem + ext)


# --- the plots -----------------------------------------------------------------

def plot_fetch_wan(groups):
    wan = [g for g in groups if g.scenario == "fetch-wan" and g.link_bps and g.wall is not None]
    if not wan:
        return None
    many = len({g.source for g in wan}) > 1
    series = {}
    for g in wan:
        series.setdefault((tool_rank(g.tool), g.source.index, g.tool, g.source), []).append(g)
    pal = colours(g.tool for g in wan)

    # The dashed floor: the native delta at the link rate, from the first
    # deltafetch series that knows its delta's size.
    floor_bytes = next((g.delta_ref for g in wan if g.tool == "deltafetch" and g.delta_ref), None)
    mbits = [g.link_bps / 1e6 for g in wan]
    ys = [v for g in wan for v in (g.wall_min, g.wall_max, g.wall)]
    if floor_bytes:
        ys += [floor_bytes * 8 / (m * 1e6) for m in mbits]
    ylog = spread(ys) > 10
    rtts = sorted({g.rtt_ms for g in wan if g.rtt_ms is not None})
    sub = "median of the successful runs, whiskers min–max"
    if rtts:
        sub += "; RTT " + ", ".join(f"{r:g}" for r in rtts) + " ms"
    fig, ax = figure("Fetch time against link rate", corpus_of(wan), sub)
    ax.set_xscale("log")
    log_axis(ax.xaxis, mbits)
    if spread(mbits) < 5:
        # Rates this close could leave one labelled tick between the
        # margins (and one rate, decades); an octave either side has two.
        ax.set_xlim(min(mbits) / 2, max(mbits) * 2)
    if ylog:
        ax.set_yscale("log")
        log_axis(ax.yaxis, ys)
    ax.set_xlabel("link rate (Mbit/s, log scale)")
    ax.set_ylabel("fetch time (s" + (", log scale)" if ylog else ")"))

    entries = []
    flagged = False
    for key in sorted(series):
        _, _, tool, src = key
        pts = sorted(series[key], key=lambda g: g.link_bps)
        col = pal[tool]
        x = [g.link_bps / 1e6 for g in pts]
        y = [g.wall for g in pts]
        err = [[g.wall - g.wall_min for g in pts], [g.wall_max - g.wall for g in pts]]
        h = ax.errorbar(x, y, yerr=err, color=col, linewidth=2, elinewidth=1.5, capsize=4,
                        marker="o", markersize=7, markeredgecolor="white")
        for g in pts:
            if g.failed:
                flagged = True
                ax.annotate(f"⚠ {len(g.failed)} failed", (g.link_bps / 1e6, g.wall), xytext=(5, 4),
                            textcoords="offset points", fontsize=7, color=WARN)
        entries.append((h, series_name(tool, src, many)))
    if floor_bytes:
        # Across the whole axis, whose limits the data set.
        lo, hi = ax.get_xlim()
        xs = [lo * (hi / lo) ** (i / 60) for i in range(61)]
        (h,) = ax.plot(xs, [floor_bytes * 8 / (m * 1e6) for m in xs], color="black",
                       linewidth=1.5, linestyle=(0, (4, 2.7)))
        ax.set_xlim(lo, hi)
        entries.insert(0, (h, f"floor: native delta ({floor_bytes / 1e6:.1f} MB) at the link rate"))
    if not ylog:
        ax.set_ylim(bottom=0)
    if flagged:
        entries.append((None, "⚠ failed runs left out of the median"))
    entries += [(None, n) for n in lost_notes([g for g in groups if g.scenario == "fetch-wan"
                                               and g.wall is None])]
    legend(ax, entries)
    return fig


def plot_generate_levels(groups):
    lv = [g for g in groups if g.scenario == "generate-level" and g.level is not None
          and g.wall is not None and g.delta_bytes is not None]
    if not lv:
        return None
    many = len({g.source for g in lv}) > 1
    srcs = sorted({g.source for g in lv}, key=lambda s: s.index)
    stock = pick([h for h in groups if h.scenario == "generate" and h.tool == "stock"
                  and h.wall is not None and h.delta_bytes is not None], lv[0])
    stock_bytes = None
    if stock is None:
        stock_bytes = next((s.meta["stock_delta_bytes"] for s in srcs if s.meta.get("stock_delta_bytes")), None)
    xs = [v for g in lv for v in (g.wall_min, g.wall_max)] + ([stock.wall] if stock else [])
    xlog = spread(xs) > 10
    fig, ax = figure("Delta size against generate time per --level", corpus_of(lv),
                     "median of the successful runs; horizontal whiskers min–max time")
    if xlog:
        ax.set_xscale("log")
        log_axis(ax.xaxis, xs)
    ax.set_xlabel("generate time (s" + (", log scale)" if xlog else ")"))
    ax.set_ylabel("delta size (MB)")
    pal = colours(g.tool for g in lv)
    entries = []
    series = {}
    for g in lv:
        series.setdefault((tool_rank(g.tool), g.source.index, g.tool, g.source), []).append(g)
    for key in sorted(series):
        _, _, tool, src = key
        pts = sorted(series[key], key=lambda g: g.level)
        col = pal[tool] if tool != "stock" else "#7570b3"
        err = [[g.wall - g.wall_min for g in pts], [g.wall_max - g.wall for g in pts]]
        h = ax.errorbar([g.wall for g in pts], [g.delta_bytes / 1e6 for g in pts], xerr=err,
                        color=col, linewidth=1.5, elinewidth=1.2, marker="o", markersize=7,
                        markeredgecolor="white")
        for g in pts:
            label = fmt_level(g.level) + (f" ⚠{len(g.failed)} failed" if g.failed else "")
            ax.annotate(label, (g.wall, g.delta_bytes / 1e6), xytext=(4, 5), textcoords="offset points",
                        color=WARN if g.failed else "black")
        entries.append((h, series_name(tool, src, many) + " --level=N"))
    col = TOOL_COLOUR["stock"]
    if stock:
        (h,) = ax.plot([stock.wall], [stock.delta_bytes / 1e6], linestyle="none", marker="s",
                       markersize=7, color=col, markeredgecolor="white")
        ax.annotate("stock ostree", (stock.wall, stock.delta_bytes / 1e6), xytext=(-6, 6),
                    textcoords="offset points", ha="right", color=col)
        entries.append((h, "stock ostree static-delta generate"))
    elif stock_bytes:
        h = ax.axhline(stock_bytes / 1e6, color=col, linewidth=1.5, linestyle=(0, (4, 2.7)))
        entries.append((h, f"stock delta size ({stock_bytes / 1e6:.1f} MB; no stock generate runs)"))
    if not xlog:
        ax.set_xlim(left=0)
    legend(ax, entries)
    return fig


def bar_label(speed, width_px, shaky):
    """The value over a bar, as precise as the bar is wide (about 5.5 px a
    character at this size); None where not even the integer fits."""
    mark = "⚠" if shaky else ""
    for digits in (2, 1, 0):
        label = f"{speed:.{digits}f}×{mark}"
        if len(label) * 5.5 <= width_px + 2:
            return label
    return None


def plot_overview(groups):
    cats = {}
    for g in groups:
        if g.speed is None:
            continue
        key = (scenario_rank(g.scenario), g.level or 0, g.link_bps or 0, g.source.index)
        cats.setdefault(key, []).append(g)
    # A RESULTS-DIR is named under a bar group only where two of them ran
    # the same scenario.
    seen = {}
    for k in cats:
        seen[k[:3]] = seen.get(k[:3], 0) + 1
    keys = sorted(cats)
    tools = sorted({g.tool for gs in cats.values() for g in gs}, key=tool_rank)
    pal = colours(tools)
    fig, ax = figure("Speed ratio to stock ostree per scenario", corpus_of(groups),
                     "stock's median wall time ÷ the tool's; above 1× is faster than stock")
    lost = lost_notes([g for g in groups if g.tool != "stock" and g.speed is None and g.has_stock])
    if not keys:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no scenario has successful runs of both a tool and stock ostree",
                transform=ax.transAxes, ha="center", fontsize=9.5)
        for i, text in enumerate(lost):
            ax.text(0.5, 0.43 - 0.05 * i, text, transform=ax.transAxes, ha="center", color=WARN)
        return fig
    ratios = [g.speed for gs in cats.values() for g in gs]
    log = spread(ratios + [1]) > 8
    if log:
        ax.set_yscale("log")
        log_axis(ax.yaxis, ratios + [1])
    ax.set_ylabel("speed ratio to stock (×" + (", log scale)" if log else ")"))
    ax.grid(False, axis="x")
    ax.margins(y=0.08)
    # Bars as wide as the hand-drawn plot had them: at most 42 px of the
    # 620 px plot width, 80 % of a scenario's slot shared by its tools.
    slot_px = 620 / len(keys)
    bar = min(42 / slot_px, 0.8 / max(len(tools), 1))
    base = 1.0 if log else 0.0
    shaky_any = False
    labels = []
    for i, key in enumerate(keys):
        gs = sorted(cats[key], key=lambda g: tool_rank(g.tool))
        g0 = gs[0]
        left = i - bar * len(gs) / 2
        for j, g in enumerate(gs):
            x = left + bar * (j + 0.5)
            ax.bar(x, g.speed - base, bottom=base, width=bar * 0.95, color=pal[g.tool])
            shaky = bool(g.failed or g.counterpart.failed)
            shaky_any = shaky_any or shaky
            label = bar_label(g.speed, bar * slot_px, shaky)
            if label:
                up = g.speed >= base
                ax.annotate(label, (x, g.speed), xytext=(0, 2 if up else -2), textcoords="offset points",
                            ha="center", va="bottom" if up else "top", fontsize=6.5,
                            color=WARN if shaky else "black")
        detail = []
        if g0.level is not None:
            detail.append(fmt_level(g0.level))
        if g0.link_bps:
            detail.append(fmt_rate(g0.link_bps))
        if seen[key[:3]] > 1:
            detail.append(f"({g0.source.label})")
        labels.append((g0.scenario, " ".join(detail)))
    ax.set_xlim(-0.5, len(keys) - 0.5)
    if len(keys) > 6:
        ax.set_xticks(range(len(keys)), [" ".join(filter(None, pair)) for pair in labels],
                      rotation=35, ha="right", rotation_mode="anchor", fontsize=7)
    else:
        ax.set_xticks(range(len(keys)), ["\n".join(filter(None, pair)) for pair in labels])
    h = ax.axhline(1.0, color="black", linewidth=1.2, linestyle=(0, (5, 2.5)))
    entries = [(Patch(color=pal[t]), tool_label(t)) for t in tools]
    entries.append((h, "1× = as fast as stock"))
    if shaky_any:
        entries.append((None, "⚠ failed runs (tool or stock) left out of the medians"))
    entries += [(None, n) for n in lost]
    legend(ax, entries)
    return fig


PLOTS = {"overview": plot_overview, "fetch-wan": plot_fetch_wan,
         "generate-levels": plot_generate_levels}


def draw(name, groups, stem):
    """Plot NAME (one of report.PLOT_NAMES) of the groups report.py derived, as
    STEM.svg and STEM.png; False, writing nothing, where the groups have
    nothing to show in it. OSError where a file cannot be written."""
    fig = PLOTS[name](groups)
    if fig is None:
        return False
    save(fig, stem)
    return True
