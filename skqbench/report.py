"""Turn sweep results into what a person looks at: plots, a table, a summary file.

* ``p99.png`` and ``p50.png``: latency (log scale) versus achieved load, one line per
  configuration, the SLO drawn across; saturated points are drawn hollow.
* The summary table: low-latency throughput (the highest achieved load whose p99 stays
  under the SLO, on an unsaturated point) and p99 at two reference loads, all as ratios
  against vanilla.  The references are vanilla's knee (the first offered load at which
  vanilla misses the SLO) and vanilla's saturation (its first saturated load); every
  configuration is measured at the same offered loads, so they are compared there.
* ``summary.json`` and ``summary.md`` (a Markdown table for the README).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console
from rich.table import Table

from skqbench.sweep import Point, SweepResults

BASELINE = "vanilla"
PALETTE = plt.get_cmap("tab20")  # 20 distinct colours; markers tell equal colours apart
MARKERS = "os^Dv<>PXh"


@dataclass
class Row:
    """One configuration's summary; ``None`` where a value cannot be computed."""

    label: str
    design: str
    points: int
    llt: float  # low-latency throughput, requests/s
    max_achieved: float
    p99_at_knee_us: float | None  # None: not measured there (saturated earlier)
    p99_at_sat_us: float | None
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
    over the SLO) and its saturation (its first saturated point)."""

    knee: float | None
    sat: float | None


def reference_loads(res: SweepResults, knee: float | None = None) -> References:
    """From the first vanilla configuration swept; ``knee`` overrides the knee."""
    base = [p for p in res.points if p.config["design"] == BASELINE]
    if not base:
        return References(knee, None)
    curve = [p for p in base if p.label == base[0].label]
    if knee is None:
        knee = next((p for p in curve if not _meets_slo(p, res.slo_us)), curve[-1]).result[
            "offered"
        ]
    sat = next((p.result["offered"] for p in curve if p.saturated), None)
    return References(knee, sat)


def _p99_at(points: list[Point], offered: float | None) -> float | None:
    if offered is None:
        return None
    p = next((p for p in points if math.isclose(p.result["offered"], offered)), None)
    return None if p is None else float(p.result["p99_us"])


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num and den else None


def summarize(res: SweepResults, knee: float | None = None) -> tuple[list[Row], References]:
    """Rows in the order the configurations were swept, and the reference loads used."""
    refs = reference_loads(res, knee)
    rows = []
    for label in res.labels:
        pts = [p for p in res.points if p.label == label]
        if pts:
            rows.append(
                Row(
                    label=label,
                    design=pts[0].config["design"],
                    points=len(pts),
                    llt=low_latency_throughput(pts, res.slo_us),
                    max_achieved=max(p.result["achieved"] for p in pts),
                    p99_at_knee_us=_p99_at(pts, refs.knee),
                    p99_at_sat_us=_p99_at(pts, refs.sat),
                )
            )
    base = next((r for r in rows if r.design == BASELINE), None)
    if base is not None:
        for r in rows:
            r.llt_vs_baseline = _ratio(r.llt, base.llt)
            r.knee_gain = _ratio(base.p99_at_knee_us, r.p99_at_knee_us)
            r.sat_gain = _ratio(base.p99_at_sat_us, r.p99_at_sat_us)
    return rows, refs


def plot(res: SweepResults, out_dir: str) -> list[str]:
    """Write p99.png and p50.png; returns their paths."""
    paths = []
    for key, name in (("p99_us", "p99"), ("p50_us", "p50")):
        fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
        for i, label in enumerate(res.labels):
            pts = [p for p in res.points if p.label == label]
            if not pts:
                continue
            color = PALETTE(i % PALETTE.N)
            style = "-" if pts[0].config["design"] == "skq" else "--"
            xs = [p.result["achieved"] for p in pts]
            ys = [p.result[key] / 1000.0 for p in pts]
            ax.plot(xs, ys, style, color=color, marker=MARKERS[i % len(MARKERS)], label=label)
            sat = [i for i, p in enumerate(pts) if p.saturated]
            ax.scatter(
                [xs[i] for i in sat],
                [ys[i] for i in sat],
                s=110,
                facecolors="white",
                edgecolors=color,
                zorder=3,
            )
        if key == "p99_us":
            ax.axhline(
                res.slo_us / 1000.0,
                color="grey",
                linestyle=":",
                label=f"SLO {res.slo_us / 1000.0:.2f} ms",
            )
        ax.set_yscale("log")
        ax.set_xlabel("achieved load (requests/s)")
        ax.set_ylabel(f"{name} latency (ms, log scale)")
        dist = res.plan["load"]["dist"]
        conns = res.plan["load"]["connections"]
        ax.set_title(
            f"{name} latency vs load: {dist}, {conns} connections "
            f"(mean service {res.mean_service_us:.0f} us; hollow = saturated)"
        )
        ax.title.set_fontsize(10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", ncols=2 if len(res.labels) > 8 else 1)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{name}.png")
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def _fmt(v: float | None, unit: str = "", digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}{unit}"


def _cells(r: Row) -> list[str]:
    def ms(v: float | None) -> str:
        return "saturated" if v is None else _fmt(v / 1000, " ms", 2)

    return [
        r.label,
        _fmt(r.llt, "/s"),
        _fmt(r.llt_vs_baseline, "x", 2),
        ms(r.p99_at_knee_us),
        _fmt(r.knee_gain, "x", 1),
        ms(r.p99_at_sat_us),
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
        return "n/a" if v is None else f"{v:,.0f}/s"

    state = " INTERRUPTED, partial results;" if res.interrupted else ""
    return (
        f"SLO p99 <= {res.slo_us / 1000:.2f} ms ({res.slo_us / res.mean_service_us:.0f} x "
        f"mean service {res.mean_service_us:.0f} us); knee = vanilla's first load over "
        f"the SLO ({load(refs.knee)}), sat = vanilla's first saturated load "
        f"({load(refs.sat)}); gain = vanilla's p99 / this p99 there;{state} "
        f"{res.elapsed_s:.0f} s"
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
    """Plots, summary.json and summary.md into ``out_dir``; prints the table."""
    os.makedirs(out_dir, exist_ok=True)
    rows, refs = summarize(res, knee)
    plot(res, out_dir)
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
