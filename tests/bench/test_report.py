"""The report: missing values shown as missing, --knee only at a measured load, and plots
a person can read (a hue per design family, line style per kind, offered load on x,
log ticks with usable labels)."""

from __future__ import annotations

import colorsys
import json
import os
from dataclasses import asdict, replace

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.typing import ColorType
from rich.console import Console

from skqbench.cli import main
from skqbench.loadgen import LoadSpec
from skqbench.report import (
    NO_REFERENCE,
    NO_REPLIES,
    NOT_MEASURED,
    SATURATED,
    STORY_PLOT,
    UnmeasuredLoad,
    figure,
    markdown,
    plot,
    story_labels,
    styles,
    summarize,
    write_report,
)
from skqbench.servers.base import ServerConfig
from skqbench.sweep import Point, SweepPlan, SweepResults, load_results

matplotlib.use("Agg")

SLO_US = 10_000.0  # explode 10: the chart's top is 100 ms
RATES = [100.0, 200.0, 300.0, 400.0]

#: A configuration and its points: [(offered, achieved, p99 ms, saturated)]; p50 is p99 / 4.
Curve = tuple[ServerConfig, list[tuple[float, float, float, bool]]]

CURVES: list[Curve] = [
    # vanilla: over the SLO at 200 (the knee), saturated at 300 with a p99 off the chart;
    # its achieved load falls at saturation, which must not fold the line back
    (
        ServerConfig("vanilla", 4),
        [(100, 100, 2.5, False), (200, 199, 14, False), (300, 180, 250, True)],
    ),
    (
        ServerConfig("skq", 4, "best2"),
        [(100, 100, 2.2, False), (200, 200, 8, False), (300, 298, 9, False), (400, 330, 60, True)],
    ),
    (
        ServerConfig("skq", 4, "best2+ws"),
        [(100, 99, 2.1, False), (200, 201, 7, False), (300, 300, 8, False), (400, 399, 11, False)],
    ),
    # saturated below vanilla's saturation load: "saturated" there
    (ServerConfig("skq", 4, "random"), [(100, 100, 3, False), (200, 150, 45, True)]),
    (
        ServerConfig("skq", 4, "random+ws"),
        [(100, 100, 2.4, False), (200, 199, 9.5, False), (300, 290, 20, False)],
    ),
    (
        ServerConfig("dispatch", 4),
        [
            (100, 100, 2.3, False),
            (200, 200, 7.5, False),
            (300, 300, 8.5, False),
            (400, 398, 30, False),
        ],
    ),
    # the sweep was interrupted after its first point: "not measured" at 200 and 300
    (ServerConfig("asyncio", 4), [(100, 100, 2.6, False)]),
    (
        ServerConfig("uvloop", 4),
        [(100, 100, 2.2, False), (200, 200, 7, False), (300, 300, 7.2, False)],
    ),
    (ServerConfig("reuseport", 4), [(100, 101, 4, False), (200, 160, 90, True)]),
]
ERRORED = ServerConfig("skq", 2, "queue")  # failed to start: no point at all


def _results(
    curves: list[Curve] = CURVES,
    extra_labels: tuple[str, ...] = (ERRORED.label,),
) -> SweepResults:
    configs = [cfg for cfg, _ in curves]
    plan = SweepPlan(configs, RATES, LoadSpec(1, 1, dist="fixed:1ms"), slo_us=SLO_US)
    res = SweepResults(
        asdict(plan),
        plan.slo_us,
        plan.mean_service_us,
        [c.label for c in configs] + list(extra_labels),
    )
    for cfg, pts in curves:
        for offered, achieved, p99_ms, saturated in pts:
            result = {
                "offered": offered,
                "achieved": achieved,
                "p99_us": p99_ms * 1000,
                "p50_us": p99_ms * 250,
            }
            res.points.append(
                Point(
                    cfg.label, asdict(cfg), result, saturated, "achieved low" if saturated else ""
                )
            )
    if extra_labels:
        res.errors[ERRORED.label] = "server did not start"
        res.interrupted = True
    return res


def _row(res: SweepResults, label: str, knee: float | None = None) -> list[str]:
    table = markdown(res, *summarize(res, knee))
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


# -- the summary table -----------------------------------------------------------------


def test_reference_loads_are_vanillas_knee_and_saturation() -> None:
    _, refs = summarize(_results())
    assert (refs.knee, refs.sat, refs.knee_given) == (200, 300, False)


def test_saturated_below_the_reference_load_says_saturated() -> None:
    cells = _row(_results(), "skq random x4")  # measured (saturated) at 200, stopped there
    assert cells[3:7] == ["45.00 ms", "0.3x", SATURATED, "-"]
    cells = _row(_results(), "reuseport x4")
    assert cells[3] == "90.00 ms" and cells[5] == SATURATED


def test_a_point_never_measured_says_not_measured_not_saturated() -> None:
    rows, _ = summarize(_results())
    row = next(r for r in rows if r.label == "asyncio x4")
    assert (row.knee_note, row.sat_note) == (NOT_MEASURED, NOT_MEASURED)
    assert _row(_results(), "asyncio x4")[3:7] == [NOT_MEASURED, "-", NOT_MEASURED, "-"]


def test_a_configuration_without_points_is_listed_as_not_measured() -> None:
    res = _results()
    cells = _row(res, ERRORED.label)
    assert cells[1] == NOT_MEASURED and cells[3] == cells[5] == NOT_MEASURED
    assert cells[2] == cells[7] == "-"
    assert "INTERRUPTED" in markdown(res, *summarize(res))


def test_a_point_without_replies_says_so() -> None:
    res = _results()
    next(p for p in res.points if p.label == "dispatch x4" and p.result["offered"] == 300).result[
        "p99_us"
    ] = float("nan")
    assert _row(res, "dispatch x4")[5:7] == [NO_REPLIES, "-"]


def test_measured_values_and_gains() -> None:
    cells = _row(_results(), "skq best2+ws x4")
    # p99 11 ms at 400/s misses the 10 ms SLO: 300/s; vanilla's is 100/s
    assert cells[1:3] == ["300/s", "3.00x"]
    assert cells[3:7] == ["7.00 ms", "2.0x", "8.00 ms", "31.2x"]
    assert cells[7] == "399/s"


def test_zero_low_latency_throughput_is_a_ratio_of_zero_not_missing() -> None:
    curves: list[Curve] = [CURVES[0], (ServerConfig("skq", 4, "cpu"), [(100, 100, 12, False)])]
    cells = _row(_results(curves, ()), "skq cpu x4")
    assert cells[1:3] == ["0/s", "0.00x"]


def test_without_a_knee_the_caption_says_so() -> None:
    curves: list[Curve] = [
        (ServerConfig("vanilla", 4), [(100, 100, 2, False), (200, 200, 3, False)])
    ]
    res = _results(curves, ())
    rows, refs = summarize(res)
    assert refs.knee is None and refs.sat is None
    assert rows[0].knee_note == rows[0].sat_note == NO_REFERENCE
    assert f"first load over the SLO ({NO_REFERENCE})" in markdown(res, rows, refs)


def test_a_measured_knee_is_used_and_named_in_the_caption() -> None:
    res = _results()
    rows, refs = summarize(res, knee=300.4)  # as printed: to the request/s
    assert refs.knee == 300 and refs.knee_given
    assert _row(res, "skq best2+ws x4", 300)[3] == "8.00 ms"
    assert _row(res, "vanilla x4", 300)[3] == "250.00 ms"
    assert _row(res, "skq random x4", 300)[3] == SATURATED
    assert "knee = the load given (300/s)" in markdown(res, rows, refs)


@pytest.mark.parametrize("knee", [250.0, 99.0, 500.0, 300.6])
def test_an_unmeasured_knee_is_refused(knee: float) -> None:
    with pytest.raises(UnmeasuredLoad, match=r"not measured.*100, 200, 300, 400"):
        summarize(_results(), knee)


def test_cli_report_refuses_an_unmeasured_knee_with_one_line(
    tmp_out: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _results().save(tmp_out)
    assert main(["bench", "report", tmp_out, "--knee", "250"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("skqueue bench report: --knee 250/s was not measured")
    assert sorted(os.listdir(tmp_out)) == ["results.json"]  # nothing half-written


def test_cli_report_with_a_measured_knee(tmp_out: str, capsys: pytest.CaptureFixture[str]) -> None:
    _results().save(tmp_out)
    assert main(["bench", "report", tmp_out, "--knee", "300"]) == 0
    with open(os.path.join(tmp_out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["reference_loads"] == {"knee": 300, "sat": 300, "knee_given": True}
    by_label = {r["label"]: r for r in summary["rows"]}
    assert by_label["skq best2 x4"]["p99_at_knee_us"] == 9000
    assert by_label["asyncio x4"]["knee_note"] == NOT_MEASURED
    with open(os.path.join(tmp_out, "summary.md")) as f:
        table = f.read()
    assert "| skq random x4 | 100/s |" in table and "knee = the load given (300/s)" in table
    assert "skqueue benchmark summary" in capsys.readouterr().out  # the table was printed


# -- the plots -------------------------------------------------------------------------


def _lines(
    res: SweepResults, key: str = "p99_us", labels: list[str] | None = None
) -> dict[str, Line2D]:
    fig = figure(res, key, labels)
    lines = {str(line.get_label()): line for line in fig.axes[0].get_lines()}
    return {label: line for label, line in lines.items() if not label.startswith("_")}


def _hue(color: ColorType) -> float:
    return colorsys.rgb_to_hls(*to_rgb(color))[0] * 360


def _xs(line: Line2D) -> list[float]:
    return [float(x) for x in np.asarray(line.get_xdata(), dtype=float)]


def _ys(line: Line2D) -> list[float]:
    return [float(y) for y in np.asarray(line.get_ydata(), dtype=float)]


def test_one_line_per_measured_configuration() -> None:
    res = _results()
    assert list(_lines(res)) == [cfg.label for cfg, _ in CURVES]


def test_skq_policies_share_a_blue_family_and_baselines_each_their_own_hue() -> None:
    lines = _lines(_results())
    skq = [line for label, line in lines.items() if label.startswith("skq ")]
    assert all(190 <= _hue(line.get_color()) <= 230 for line in skq)  # shades of blue
    base = [lines[f"{d} x4"] for d in ("vanilla", "reuseport", "dispatch", "asyncio", "uvloop")]
    hues = [_hue(line.get_color()) for line in base]
    assert not any(190 <= h <= 250 for h in hues)  # no baseline is blue
    gaps = [min(abs(a - b), 360 - abs(a - b)) for i, a in enumerate(hues) for b in hues[:i]]
    assert min(gaps) >= 15, hues  # asyncio and uvloop no longer share a green
    policies = {lines[f"skq {p} x4"].get_color() for p in ("best2", "random")}
    assert len(policies) == 2  # a shade per policy


def test_a_simulated_configuration_looks_like_the_design_it_stands_for() -> None:
    measured, simulated = _results(), _results()
    for p in simulated.points:  # as sim validate writes them: the model's design, and whose
        if p.config["design"] in ("asyncio", "uvloop"):
            p.config = {**p.config, "design": "dispatch", "shown_as": p.config["design"]}
    assert styles(simulated) == styles(measured)


def test_with_two_populations_the_title_says_whose_latency_a_plot_shows() -> None:
    res = _results()
    titles = [figure(res, "p99_us").axes[0].get_title(loc="left")]
    res.points[0].populations = {"bg": res.points[0].result, "rt": res.points[0].result}
    titles.append(figure(res, "p99_us").axes[0].get_title(loc="left"))
    assert titles[0].startswith("p99 latency") and titles[1].startswith("background p99 latency")


def test_line_style_tells_stealing_from_not() -> None:
    lines = _lines(_results())
    assert lines["skq best2 x4"].get_linestyle() == "--"
    assert lines["skq random x4"].get_linestyle() == "--"
    assert lines["skq best2+ws x4"].get_linestyle() == "-"
    # a policy and its stealing variant: same shade and marker, different line style
    assert lines["skq best2 x4"].get_color() == lines["skq best2+ws x4"].get_color()
    assert lines["skq best2 x4"].get_marker() == lines["skq best2+ws x4"].get_marker()
    assert lines["vanilla x4"].get_linestyle() == "-"


def test_curves_that_coincide_all_stay_visible() -> None:
    # dispatch and every SKQ policy with stealing draw the same p99 at 24 workers: no
    # SKQ marker is a baseline's, and each line is wider than the ones drawn after it.
    lines = list(_lines(_results()).values())
    base = {line.get_marker() for line in lines if not str(line.get_label()).startswith("skq")}
    skq = {line.get_marker() for line in lines if str(line.get_label()).startswith("skq")}
    assert len(base) == 5 and not base & skq  # vanilla, reuseport and three shared
    widths = [line.get_linewidth() for line in lines]
    sizes = [line.get_markersize() for line in lines]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == len(widths)
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)


def test_loads_over_a_wide_range_go_on_a_log_axis() -> None:
    res = _results()
    assert figure(res, "p99_us").axes[0].get_xscale() == "linear"  # 100..400
    for p in res.points:
        p.result["offered"] *= 100 if p.result["offered"] == 400 else 1
    ax = figure(res, "p99_us").axes[0]
    assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel()


def test_a_configuration_keeps_its_style_in_the_story_plot() -> None:
    res = _results()
    full = _lines(res)
    story = _lines(res, labels=story_labels(res, summarize(res)[0]))
    for label, line in story.items():
        assert (line.get_color(), line.get_linestyle(), line.get_linewidth()) == (
            full[label].get_color(),
            full[label].get_linestyle(),
            full[label].get_linewidth(),
        )


def test_x_is_offered_load_and_never_folds_back() -> None:
    res = _results()
    res.points.reverse()  # the order points are stored in must not matter
    for key in ("p99_us", "p50_us"):
        for label, line in _lines(res, key).items():
            xs = _xs(line)
            assert xs == sorted(xs), label
    assert _xs(_lines(res)["vanilla x4"]) == [100, 200, 300]


def test_saturated_points_are_hollow_and_off_chart_ones_sit_on_the_top_edge() -> None:
    fig = figure(_results(), "p99_us")
    ax = fig.axes[0]
    top = ax.get_ylim()[1]
    assert top == pytest.approx(100)  # explode x SLO
    hollow = [line for line in ax.get_lines() if line.get_markerfacecolor() == "white"]
    marks = sorted((_xs(line)[0], _ys(line)[0], line.get_marker()) for line in hollow)
    # vanilla 250 ms and skq random's 45 ms, best2's 60 ms and reuseport's 90 ms
    assert marks == [(200, 45, "h"), (200, 90, "s"), (300, top, "^"), (400, 60, "*")]
    assert max(max(_ys(line)) for line in ax.get_lines()) <= top


def test_a_saturated_point_without_replies_sits_on_the_top_edge() -> None:
    res = _results()
    vanilla_sat = next(p for p in res.points if p.label == "vanilla x4" and p.saturated)
    vanilla_sat.result["p99_us"] = float("nan")  # nothing answered: no percentile
    ax = figure(res, "p99_us").axes[0]
    top = ax.get_ylim()[1]
    line = next(line for line in ax.get_lines() if line.get_label() == "vanilla x4")
    assert _ys(line) == [2.5, 14, top]
    marks = [line for line in ax.get_lines() if line.get_markerfacecolor() == "white"]
    assert any(_xs(m) == [300] and m.get_marker() == "^" for m in marks)


def test_log_ticks_are_labelled_2_5_10_20_50_ms() -> None:
    ax = figure(_results(), "p99_us").axes[0]
    lo, hi = ax.get_ylim()
    fmt = ax.yaxis.get_major_formatter()
    labels = [fmt(v, i) for i, v in enumerate(ax.get_yticks()) if lo <= v <= hi]
    assert labels == ["1", "2", "5", "10", "20", "50", "100"]  # data from 2.1 ms


def test_p99_plot_labels_the_slo_and_groups_the_legend() -> None:
    ax = figure(_results(), "p99_us").axes[0]
    assert any(t.get_text().strip() == "SLO 10 ms" for t in ax.texts)
    legend = ax.get_legend()
    assert legend is not None
    texts = [t.get_text() for t in legend.get_texts()]
    bold = [t.get_text() for t in legend.get_texts() if t.get_fontweight() == "bold"]
    assert len(bold) == 3 and all(b in texts for b in bold)
    skq_title = next(b for b in bold if b.startswith("SKQ"))
    assert "solid" in skq_title and "dashed" in skq_title
    # each configuration sits under its family's title
    assert texts.index("vanilla x4") < texts.index("reuseport x4") < texts.index(skq_title)


def test_story_is_every_baseline_and_the_best_skq_with_and_without_stealing() -> None:
    res = _results()
    assert story_labels(res, summarize(res)[0]) == [
        "vanilla x4",
        "skq best2 x4",
        "skq best2+ws x4",
        "dispatch x4",
        "asyncio x4",
        "uvloop x4",
        "reuseport x4",
    ]


def test_plot_and_write_report_produce_every_file(tmp_out: str) -> None:
    res = _results()
    paths = plot(res, tmp_out)
    assert [os.path.basename(p) for p in paths] == ["p99.png", "p50.png", STORY_PLOT]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    res.save(tmp_out)
    with open(os.devnull, "w") as devnull:
        write_report(load_results(tmp_out), tmp_out, Console(file=devnull))
    for name in ("summary.json", "summary.md", "results.json", STORY_PLOT):
        assert os.path.getsize(os.path.join(tmp_out, name)) > 0


def test_plots_of_an_empty_sweep_are_still_written(tmp_out: str) -> None:
    res = _results(CURVES[:1], ())
    res.points.clear()
    assert [os.path.basename(p) for p in plot(res, tmp_out)] == ["p99.png", "p50.png", STORY_PLOT]


def test_reserved_workers_get_their_own_shade_and_marker() -> None:
    plain = ServerConfig("skq", 4, "best2+ws")
    reserved = replace(plain, rtreserve=1)
    pts = [(100.0, 100.0, 1.0, False)]
    style = styles(_results([(plain, pts), (reserved, pts)], extra_labels=()))
    assert style[plain.label].color != style[reserved.label].color
    assert style[plain.label].marker != style[reserved.label].marker
