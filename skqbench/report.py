"""Turn sweep results into what a person looks at: plots, a table, a summary file.

* ``p99.png`` and ``p50.png``: latency (log scale) versus offered load, one line per
  configuration; ``p99-story.png``: the same for the few configurations that carry the
  comparison (vanilla, the best SKQ policy with and without work stealing, and every
  other baseline).  A hue per design, shades of blue for SKQ's policies (solid with work
  stealing, dashed without), so each family is recognisable at a glance; a marker
  shape per design or policy, and lines drawn from widest to narrowest, so curves that
  coincide all stay visible.  The x axis is the offered load (log scale when the loads
  span more than 20x), which only grows, so a saturated server's line cannot fold back;
  saturated points are drawn hollow, and those beyond the chart's top (above the sweep's
  ``explode`` x SLO, where a point counts as saturated anyway) as hollow triangles on it.
* The summary table: low-latency throughput (the highest achieved load whose p99 stays
  under the SLO, on an unsaturated point) and p99 at two reference loads, all as ratios
  against vanilla.  The references are vanilla's knee (the first offered load at which
  vanilla misses the SLO, or one given that was measured) and vanilla's saturation (its
  first saturated load); every configuration is measured at the same offered loads, so
  they are compared there.  A configuration that stopped at a lower saturated load shows
  "saturated" there; one that was never run there (an error, an interrupted sweep) shows
  "not measured".
* ``summary.json`` and ``summary.md`` (a Markdown table for the README).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from rich.console import Console
from rich.table import Table

from skqbench.servers.base import parse_policy
from skqbench.sweep import Point, SweepResults

BASELINE = "vanilla"
SATURATED = "saturated"  # the configuration saturated at a lower load and stopped there
NOT_MEASURED = "not measured"  # never run at that load: an error or an interrupted sweep
NO_REFERENCE = "n/a"  # there is no such reference load in these results
NO_REPLIES = "no replies"  # measured, but nothing answered: no percentile
STORY_PLOT = "p99-story.png"


@dataclass(frozen=True)
class Family:
    """A design's look: its legend group, the ends of its shade ramp and its marker."""

    group: str
    dark: str
    light: str
    marker: str


SKQ_GROUP = "SKQ, one kqueue: solid = work stealing (+ws), dashed = none"
STATIC_GROUP = "a queue per worker"
SHARED_GROUP = "one shared queue"
FAMILIES: dict[str, Family] = {
    "skq": Family(SKQ_GROUP, "#08306b", "#6baed6", ""),  # markers vary by policy
    "vanilla": Family(STATIC_GROUP, "#d62728", "#f4a3a4", "o"),  # red
    "reuseport": Family(STATIC_GROUP, "#ff7f0e", "#ffc58f", "s"),  # orange
    "dispatch": Family(SHARED_GROUP, "#2ca02c", "#9fdc9f", "^"),  # green
    "asyncio": Family(SHARED_GROUP, "#c51b8a", "#f2a5d6", "D"),  # magenta
    "uvloop": Family(SHARED_GROUP, "#6a3d9a", "#cab2d6", "v"),  # purple
    "kqueue": Family(SHARED_GROUP, "#7f7f7f", "#c7c7c7", "P"),  # grey: simulated only
}
OTHER = Family("other", "#404040", "#b0b0b0", "X")
# None of the baselines' markers: where an SKQ policy and a baseline draw the same
# curve (best2+ws and dispatch often do), the shapes still tell them apart.
SKQ_MARKERS = "*hpd<>H8"
# Where curves coincide, the later-drawn line covers the earlier one; so the first
# configuration is drawn widest and the last narrowest, each peeking out from under
# the ones after it.  Sizes go by the configuration's place in the sweep, so a
# configuration looks the same in every plot of one results set.
MARKER_SIZES = (9.0, 4.0)  # points, first and last configuration
LINE_WIDTHS = (3.2, 1.3)
LOG_LOADS = 20.0  # loads spanning more than this ratio are drawn on a log axis


@dataclass(frozen=True)
class Style:
    """How one configuration is drawn, the same in every plot of one results set."""

    group: str
    color: str
    linestyle: str
    marker: str
    markersize: float = MARKER_SIZES[1]
    linewidth: float = LINE_WIDTHS[1]


def _stacked(bounds: tuple[float, float], i: int, n: int) -> float:
    """The i-th of n sizes from ``bounds[0]`` (drawn first, underneath) to ``bounds[1]``."""
    first, last = bounds
    return last if n == 1 else first + (last - first) * i / (n - 1)


def _shade(family: Family, i: int, n: int) -> str:
    """The i-th of n shades from the family's dark end to its light end."""
    if n == 1:
        return family.dark
    t = i / (n - 1)
    (r0, g0, b0), (r1, g1, b1) = to_rgb(family.dark), to_rgb(family.light)
    return to_hex((r0 + (r1 - r0) * t, g0 + (g1 - g0) * t, b0 + (b1 - b0) * t))


def styles(res: SweepResults) -> dict[str, Style]:
    """A style per configuration label: hue from the design, a shade per member.

    SKQ's members are its policies without ``+ws`` (a policy and its stealing variant
    share shade and marker and differ in line style), with and without reserved workers,
    times worker counts; a baseline's members are its worker counts."""
    configs = {p.label: p.config for p in res.points}
    members: dict[str, list[tuple[str, int]]] = {}
    keys: dict[str, tuple[str, tuple[str, int]]] = {}
    for label in res.labels:
        cfg = configs.get(label)
        if cfg is None:
            continue
        design = cfg.get("shown_as") or cfg["design"]  # a simulation: what it stands for
        base = cfg["policy"].split("+")[0] if design == "skq" else ""
        if cfg.get("rtreserve"):
            base += f" rt{cfg['rtreserve']}"
        member = (base, cfg["workers"])
        keys[label] = (design, member)
        if member not in members.setdefault(design, []):
            members[design].append(member)
    out = {}
    for rank, (label, (design, member)) in enumerate(keys.items()):
        family = FAMILIES.get(design, OTHER)
        i = members[design].index(member)
        stealing = design == "skq" and parse_policy(configs[label]["policy"]).steal > 0
        out[label] = Style(
            group=family.group,
            color=_shade(family, i, len(members[design])),
            linestyle="--" if design == "skq" and not stealing else "-",
            marker=family.marker or SKQ_MARKERS[i % len(SKQ_MARKERS)],
            markersize=_stacked(MARKER_SIZES, rank, len(keys)),
            linewidth=_stacked(LINE_WIDTHS, rank, len(keys)),
        )
    return out


@dataclass
class Row:
    """One configuration's summary; ``None`` where a value cannot be computed, with the
    reason in the ``*_note`` fields ("" when measured)."""

    label: str
    design: str
    points: int
    llt: float | None  # low-latency throughput, requests/s; None: no point measured
    max_achieved: float | None
    p99_at_knee_us: float | None
    p99_at_sat_us: float | None
    knee_note: str = ""  # SATURATED, NOT_MEASURED, NO_REPLIES or NO_REFERENCE if p99 is None
    sat_note: str = ""
    llt_vs_baseline: float | None = None
    knee_gain: float | None = None  # baseline p99 / this p99, at the knee
    sat_gain: float | None = None  # the same at vanilla's saturation load


def _meets_slo(p: Point, slo_us: float) -> bool:
    return not p.saturated and p.result["p99_us"] <= slo_us


def low_latency_throughput(points: list[Point], slo_us: float) -> float:
    """Highest achieved load among unsaturated points whose p99 is within the SLO."""
    return max((p.result["achieved"] for p in points if _meets_slo(p, slo_us)), default=0.0)


@dataclass
class References:
    """Offered loads where configurations are compared: vanilla's knee (its first point
    over the SLO, unless given) and its saturation (its first saturated point)."""

    knee: float | None
    sat: float | None
    knee_given: bool = False


class UnmeasuredLoad(ValueError):
    """A reference load that no configuration was measured at."""


def measured_load(res: SweepResults, load: float) -> float:
    """The offered load of ``res`` that ``load`` names (as printed, to the request/s);
    UnmeasuredLoad if no configuration was measured there."""
    offered = sorted({p.result["offered"] for p in res.points})
    near = min(offered, key=lambda o: abs(o - load), default=None)
    if near is None or abs(near - load) > 0.5:
        loads = ", ".join(f"{o:,.0f}" for o in offered) or "none"
        raise UnmeasuredLoad(f"{load:,.0f}/s was not measured (measured loads: {loads})")
    return float(near)


def reference_loads(res: SweepResults, knee: float | None = None) -> References:
    """From the first vanilla configuration swept; a given ``knee`` must be measured."""
    refs = References(None, None, knee is not None)
    if knee is not None:
        refs.knee = measured_load(res, knee)
    base = [p for p in res.points if p.config["design"] == BASELINE]
    if base:
        curve = [p for p in base if p.label == base[0].label]
        if knee is None:
            refs.knee = next(
                (p.result["offered"] for p in curve if not _meets_slo(p, res.slo_us)), None
            )
        refs.sat = next((p.result["offered"] for p in curve if p.saturated), None)
    return refs


def _p99_at(points: list[Point], offered: float | None) -> tuple[float | None, str]:
    """p99 at an offered load, or None and why not."""
    if offered is None:
        return None, NO_REFERENCE
    p = next((p for p in points if math.isclose(p.result["offered"], offered)), None)
    if p is not None:
        p99 = float(p.result["p99_us"])
        return (None, NO_REPLIES) if math.isnan(p99) else (p99, "")
    stopped = any(q.saturated and q.result["offered"] < offered for q in points)
    return None, SATURATED if stopped else NOT_MEASURED


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0 or math.isnan(num) or math.isnan(den):
        return None
    return num / den


def summarize(res: SweepResults, knee: float | None = None) -> tuple[list[Row], References]:
    """Rows in the order the configurations were swept, and the reference loads used.

    Raises UnmeasuredLoad before anything is computed when ``knee`` was not measured."""
    refs = reference_loads(res, knee)
    rows = []
    for label in res.labels:
        pts = [p for p in res.points if p.label == label]
        at_knee, knee_note = _p99_at(pts, refs.knee)
        at_sat, sat_note = _p99_at(pts, refs.sat)
        rows.append(
            Row(
                label=label,
                design=pts[0].config["design"] if pts else "",
                points=len(pts),
                llt=low_latency_throughput(pts, res.slo_us) if pts else None,
                max_achieved=max((p.result["achieved"] for p in pts), default=None),
                p99_at_knee_us=at_knee,
                p99_at_sat_us=at_sat,
                knee_note=knee_note,
                sat_note=sat_note,
            )
        )
    base = next((r for r in rows if r.design == BASELINE), None)
    if base is not None:
        for r in rows:
            r.llt_vs_baseline = _ratio(r.llt, base.llt)
            r.knee_gain = _ratio(base.p99_at_knee_us, r.p99_at_knee_us)
            r.sat_gain = _ratio(base.p99_at_sat_us, r.p99_at_sat_us)
    return rows, refs


def story_labels(res: SweepResults, rows: list[Row]) -> list[str]:
    """The configurations that carry the comparison: every baseline and, of SKQ, the
    policy with the highest low-latency throughput with work stealing and without."""
    best: dict[bool, Row] = {}
    for r in rows:
        if r.design == "skq" and r.llt is not None:
            policy = next(p.config["policy"] for p in res.points if p.label == r.label)
            stealing = parse_policy(policy).steal > 0
            old = best.get(stealing)
            if old is None or (r.llt, r.max_achieved or 0) > (old.llt, old.max_achieved or 0):
                best[stealing] = r
    keep = {r.label for r in best.values()}
    return [r.label for r in rows if r.points and (r.design != "skq" or r.label in keep)]


def _ms(value: float, _pos: float) -> str:
    """Tick label in plain milliseconds: 0.5, 2, 20, 500, 1000."""
    return f"{value:g}"


def log_ms_ticks(ax: Axes) -> None:
    """A log latency axis labelled at 1, 2 and 5 of each decade in plain milliseconds."""
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(_ms))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _tick_below(value: float) -> float:
    """The highest 1, 2 or 5 x 10^k at or below ``value``, so the axis starts on a label."""
    decade = 10.0 ** math.floor(math.log10(value))
    return max(m * decade for m in (1, 2, 5) if m * decade <= value)


def _load(value: float, _pos: float) -> str:
    return f"{value:,.0f}"


def figure(
    res: SweepResults, key: str, labels: Iterable[str] | None = None, title: str | None = None
) -> Figure:
    """One latency plot (``key`` is ``p99_us`` or ``p50_us``) of the given configurations
    (default all).  Each configuration's line is labelled with its configuration label;
    ``title`` replaces the one naming the service distribution."""
    look = styles(res)
    wanted = [label for label in (res.labels if labels is None else labels) if label in look]
    name = key.removesuffix("_us")
    slo_ms = res.slo_us / 1000.0
    top = res.plan.get("explode", 10.0) * slo_ms  # above it a point is saturated anyway
    fig, ax = plt.subplots(figsize=(12.5, 6.5), dpi=110)
    lines: dict[str, Line2D] = {}
    floor = math.inf
    for label in wanted:
        pts = sorted((p for p in res.points if p.label == label), key=lambda p: p.result["offered"])
        st = look[label]
        xs = [p.result["offered"] for p in pts]
        # no reply at all (NaN) is as far off the chart as latency gets
        ys = [top if math.isnan(v := p.result[key] / 1000.0) else v for p in pts]
        floor = min([floor, *(y for y in ys if y > 0)])
        clipped = [min(y, top) for y in ys]
        (lines[label],) = ax.plot(
            xs,
            clipped,
            st.linestyle,
            color=st.color,
            marker=st.marker,
            markersize=st.markersize,
            linewidth=st.linewidth,
            label=label,
        )
        for x, y, p in zip(xs, ys, pts, strict=True):
            if p.saturated or y >= top:
                ax.plot(
                    [x],
                    [min(y, top)],
                    linestyle="none",
                    marker="^" if y >= top else st.marker,
                    markersize=10,
                    markerfacecolor="white",
                    markeredgecolor=st.color,
                    markeredgewidth=1.6,
                    clip_on=False,
                    zorder=3,
                )
    if key == "p99_us":
        ax.axhline(slo_ms, color="black", linestyle=":", linewidth=1.2)
        ax.text(
            0.005,
            slo_ms,
            f" SLO {slo_ms:.3g} ms",
            transform=ax.get_yaxis_transform(),
            va="bottom",
            ha="left",
            fontsize=9,
        )
    ax.set_yscale("log")
    if math.isfinite(floor):
        ax.set_ylim(_tick_below(min(floor, slo_ms) / 1.1), top)
    log_ms_ticks(ax)
    offered = [p.result["offered"] for p in res.points if p.label in lines]
    logx = bool(offered) and max(offered) > LOG_LOADS * min(offered)
    if logx:  # geometric load steps, and knees far apart (a single lock's, stealing's)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(_load))
    ax.set_xlabel(f"offered load (requests/s{', log scale' if logx else ''})")
    ax.set_ylabel(f"{name} latency (ms, log scale)")
    load = res.plan["load"]
    simulated = "simulated " if res.plan.get("simulated") else ""
    # With two populations (a latency-sensitive one beside the load) a point's own result
    # is the background's.
    whose = "background " if any(p.populations for p in res.points) else ""
    ax.set_title(
        title
        or f"{simulated}{whose}{name} latency vs offered load: {load['dist']}, "
        f"{load['connections']} connections, mean service {res.mean_service_us:.0f} us",
        fontsize=11,
        loc="left",
    )
    fig.text(
        0.01,
        0.01,
        f"hollow marker: saturated (achieved < {res.plan.get('saturation', 0.95):.0%} of "
        f"offered, timeouts, or p99 over {top / slo_ms:g} x SLO); hollow triangle on the top "
        f"edge: above {top:.0f} ms",
        fontsize=8,
        color="#404040",
    )
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    _legend(ax, lines, look)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def _legend(ax: Axes, lines: dict[str, Line2D], look: dict[str, Style]) -> None:
    """One legend right of the plot, grouped by family, each group under a bold title."""
    handles: list[Line2D] = []
    texts: list[str] = []
    titles: set[int] = set()
    for group in dict.fromkeys(look[label].group for label in lines):
        titles.add(len(handles))
        handles.append(Line2D([], [], linestyle="none"))
        texts.append(group)
        for label, line in lines.items():
            if look[label].group == group:
                handles.append(line)
                texts.append(label)
    if not handles:
        return
    legend = ax.legend(
        handles,
        texts,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
        handlelength=3.2,
    )
    for i, text in enumerate(legend.get_texts()):
        if i in titles:
            text.set_fontweight("bold")


def plot(res: SweepResults, out_dir: str, rows: list[Row] | None = None) -> list[str]:
    """Write p99.png, p50.png and p99-story.png; returns their paths."""
    rows = summarize(res)[0] if rows is None else rows
    jobs = [
        ("p99_us", "p99.png", None),
        ("p50_us", "p50.png", None),
        ("p99_us", STORY_PLOT, story_labels(res, rows)),
    ]
    paths = []
    for key, filename, labels in jobs:
        fig = figure(res, key, labels)
        path = os.path.join(out_dir, filename)
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def _fmt(v: float | None, unit: str = "", digits: int = 0) -> str:
    if v is None or math.isnan(v):
        return "-"
    return f"{v:,.{digits}f}{unit}"


def _cells(r: Row) -> list[str]:
    def ms(v: float | None, note: str) -> str:
        return note or _fmt(None if v is None else v / 1000, " ms", 2)

    return [
        r.label,
        _fmt(r.llt, "/s") if r.points else NOT_MEASURED,
        _fmt(r.llt_vs_baseline, "x", 2),
        ms(r.p99_at_knee_us, r.knee_note),
        _fmt(r.knee_gain, "x", 1),
        ms(r.p99_at_sat_us, r.sat_note),
        _fmt(r.sat_gain, "x", 1),
        _fmt(r.max_achieved, "/s"),
    ]


HEADERS = [
    "configuration",
    "low-latency tput",
    "vs vanilla",
    "p99 @ knee",
    "gain",
    "p99 @ vanilla sat",
    "gain",
    "max achieved",
]


def caption(res: SweepResults, refs: References) -> str:
    def load(v: float | None) -> str:
        return NO_REFERENCE if v is None else f"{v:,.0f}/s"

    knee = "the load given" if refs.knee_given else "vanilla's first load over the SLO"
    state = " INTERRUPTED, partial results;" if res.interrupted else ""
    return (
        f"SLO p99 <= {res.slo_us / 1000:.2f} ms ({res.slo_us / res.mean_service_us:.0f} x "
        f"mean service {res.mean_service_us:.0f} us); knee = {knee} ({load(refs.knee)}), "
        f"sat = vanilla's first saturated load ({load(refs.sat)}); gain = vanilla's p99 / "
        f"this p99 there; {SATURATED} = stopped at a lower saturated load, {NOT_MEASURED} = "
        f"never run there;{state} {res.elapsed_s:.0f} s"
    )


def table(res: SweepResults, rows: list[Row], refs: References) -> Table:
    """The rich summary table."""
    t = Table(title="skqueue benchmark summary", caption=caption(res, refs))
    for h in HEADERS:
        t.add_column(h, justify="left" if h == "configuration" else "right")
    for r in rows:
        t.add_row(*_cells(r))
    return t


def markdown(res: SweepResults, rows: list[Row], refs: References) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    lines.append("")
    lines.append(caption(res, refs) + ".")
    if res.errors:
        lines.append("")
        lines += [f"- {label}: {err}" for label, err in res.errors.items()]
    return "\n".join(lines) + "\n"


def write_report(
    res: SweepResults, out_dir: str, console: Console | None = None, knee: float | None = None
) -> list[Row]:
    """Plots, summary.json and summary.md into ``out_dir``; prints the table.  A ``knee``
    that was not measured raises UnmeasuredLoad before anything is written."""
    rows, refs = summarize(res, knee)
    os.makedirs(out_dir, exist_ok=True)
    plot(res, out_dir, rows)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(
            {
                "slo_us": res.slo_us,
                "reference_loads": asdict(refs),
                "interrupted": res.interrupted,
                "errors": res.errors,
                "rows": [asdict(r) for r in rows],
            },
            f,
            indent=1,
        )
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(markdown(res, rows, refs))
    console = console or Console()
    console.print(table(res, rows, refs))
    for label, err in res.errors.items():
        console.print(f"[red]{label}: {err}[/red]")
    return rows
