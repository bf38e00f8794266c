"""Turn sweep results into what a person looks at: plots, a table, a summary file.

* ``p99.png`` and ``p50.png``: latency (log scale) versus achieved load, one line per
  configuration, the SLO drawn across; saturated points are drawn hollow.
* The summary table: low-latency throughput (the highest achieved load whose p99 stays
  under the SLO, on an unsaturated point), p99 at the reference load, and both as
  ratios against vanilla.  The reference load is vanilla's knee: the first offered load
  at which vanilla misses the SLO or saturates (every configuration is measured at the
  same offered loads, so they are compared there).
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


@dataclass
class Row:
    """One configuration's summary; ratios are ``None`` where they cannot be computed."""

    label: str
    design: str
    points: int
    llt: float  # low-latency throughput, requests/s
    max_achieved: float
    p99_at_ref_us: float | None  # None: saturated before the reference load
    llt_vs_baseline: float | None
    p99_gain_vs_baseline: float | None  # baseline p99 / this p99 at the reference load


def _meets_slo(p: Point, slo_us: float) -> bool:
    return not p.saturated and p.result["p99_us"] <= slo_us


def low_latency_throughput(points: list[Point], slo_us: float) -> float:
    """Highest achieved load among unsaturated points whose p99 is within the SLO."""
    return max((p.result["achieved"] for p in points if _meets_slo(p, slo_us)), default=0.0)


def reference_load(res: SweepResults) -> float | None:
    """Vanilla's knee (see module docstring), or None without a vanilla configuration."""
    base = [p for p in res.points if p.config["design"] == BASELINE]
    if not base:
        return None
    label = base[0].label
    curve = [p for p in base if p.label == label]
    knee = next((p for p in curve if not _meets_slo(p, res.slo_us)), curve[-1])
    offered: float = knee.result["offered"]
    return offered


def _at(points: list[Point], offered: float) -> Point | None:
    return next((p for p in points if math.isclose(p.result["offered"], offered)), None)


def summarize(res: SweepResults, ref_load: float | None = None) -> tuple[list[Row], float | None]:
    """Rows in the order the configurations were swept, and the reference load used."""
    ref = ref_load if ref_load is not None else reference_load(res)
    by_label = {label: [p for p in res.points if p.label == label] for label in res.labels}
    rows = []
    for label, pts in by_label.items():
        if not pts:
            continue
        at_ref = _at(pts, ref) if ref is not None else None
        rows.append(
            Row(
                label=label,
                design=pts[0].config["design"],
                points=len(pts),
                llt=low_latency_throughput(pts, res.slo_us),
                max_achieved=max(p.result["achieved"] for p in pts),
                p99_at_ref_us=at_ref.result["p99_us"] if at_ref else None,
                llt_vs_baseline=None,
                p99_gain_vs_baseline=None,
            )
        )
    base = next((r for r in rows if r.design == BASELINE), None)
    if base is not None:
        for r in rows:
            if base.llt > 0:
                r.llt_vs_baseline = r.llt / base.llt
            if base.p99_at_ref_us and r.p99_at_ref_us:
                r.p99_gain_vs_baseline = base.p99_at_ref_us / r.p99_at_ref_us
    return rows, ref


def plot(res: SweepResults, out_dir: str) -> list[str]:
    """Write p99.png and p50.png; returns their paths."""
    paths = []
    for key, name in (("p99_us", "p99"), ("p50_us", "p50")):
        fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
        for i, label in enumerate(res.labels):
            pts = [p for p in res.points if p.label == label]
            if not pts:
                continue
            color = f"C{i % 10}"
            style = "-" if pts[0].config["design"] == "skq" else "--"
            xs = [p.result["achieved"] for p in pts]
            ys = [p.result[key] / 1000.0 for p in pts]
            ax.plot(xs, ys, style, color=color, marker="o", label=label)
            sat = [(x, y) for x, y, p in zip(xs, ys, pts, strict=True) if p.saturated]
            if sat:
                ax.scatter(*zip(*sat, strict=True), s=90, facecolors="white", edgecolors=color,
                           zorder=3)
        if key == "p99_us":
            ax.axhline(res.slo_us / 1000.0, color="grey", linestyle=":",
                       label=f"SLO {res.slo_us / 1000.0:.2f} ms")
        ax.set_yscale("log")
        ax.set_xlabel("achieved load (requests/s)")
        ax.set_ylabel(f"{name} latency (ms, log scale)")
        dist = res.plan["load"]["dist"]
        conns = res.plan["load"]["connections"]
        ax.set_title(f"{name} latency vs load: {dist}, {conns} connections "
                     f"(mean service {res.mean_service_us:.0f} us; hollow = saturated)")
        ax.title.set_fontsize(10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
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
    p99 = "saturated" if r.p99_at_ref_us is None else _fmt(r.p99_at_ref_us / 1000, " ms", 2)
    return [
        r.label,
        _fmt(r.llt, "/s"),
        _fmt(r.llt_vs_baseline, "x", 2),
        p99,
        _fmt(r.p99_gain_vs_baseline, "x", 1),
        _fmt(r.max_achieved, "/s"),
    ]


HEADERS = ["configuration", "low-latency tput", "vs vanilla", "p99 @ ref", "p99 gain",
           "max achieved"]


def caption(res: SweepResults, ref: float | None) -> str:
    ref_text = "no reference load (no vanilla run)" if ref is None else f"ref load {ref:,.0f}/s"
    state = " INTERRUPTED, partial results;" if res.interrupted else ""
    return (f"SLO p99 <= {res.slo_us / 1000:.2f} ms ({res.slo_us / res.mean_service_us:.0f} x "
            f"mean service {res.mean_service_us:.0f} us); {ref_text} (vanilla's knee);"
            f"{state} {res.elapsed_s:.0f} s")


def table(res: SweepResults, rows: list[Row], ref: float | None) -> Table:
    """The rich summary table."""
    t = Table(title="skqueue benchmark summary", caption=caption(res, ref))
    for h in HEADERS:
        t.add_column(h, justify="left" if h == "configuration" else "right")
    for r in rows:
        t.add_row(*_cells(r))
    return t


def markdown(res: SweepResults, rows: list[Row], ref: float | None) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    lines.append("")
    lines.append(caption(res, ref) + ".")
    if res.errors:
        lines.append("")
        lines += [f"- {label}: {err}" for label, err in res.errors.items()]
    return "\n".join(lines) + "\n"


def write_report(res: SweepResults, out_dir: str, console: Console | None = None,
                 ref_load: float | None = None) -> list[Row]:
    """Plots, summary.json and summary.md into ``out_dir``; prints the table."""
    os.makedirs(out_dir, exist_ok=True)
    rows, ref = summarize(res, ref_load)
    plot(res, out_dir)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump({"slo_us": res.slo_us, "reference_load": ref,
                   "interrupted": res.interrupted, "errors": res.errors,
                   "rows": [asdict(r) for r in rows]}, f, indent=1)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(markdown(res, rows, ref))
    console = console or Console()
    console.print(table(res, rows, ref))
    for label, err in res.errors.items():
        console.print(f"[red]{label}: {err}[/red]")
    return rows
