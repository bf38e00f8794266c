"""``skqueue bench reproduce kv``: the plan (every design, interleaved repeats), the
summary (medians, spreads, "better" only without overlap), and one short real run."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from skqbench import cli, kvexp
from skqbench.loadgen import LoadSpec
from skqbench.servers.base import ServerConfig
from skqbench.sweep import Point, SweepPlan, SweepResults, interleaved_order, load_results


def _plan(quick: bool = True) -> SweepPlan:
    args = cli.build_parser().parse_args(["bench", "reproduce", "kv", *(["--quick"] * quick)])
    return cli.kv_reproduce_plan(args)


@pytest.mark.parametrize("quick", [True, False])
def test_the_plan_has_every_design_and_repeats_each_point(quick: bool) -> None:
    plan = _plan(quick)
    designs = [c.design for c in plan.configs]
    assert set(designs) == {"vanilla", "dispatch", "asyncio", "uvloop", "reuseport", "skq"}
    assert designs.count("skq") >= 3
    reserved = [c for c in plan.configs if c.rtreserve]
    assert [(c.design, c.rtreserve) for c in reserved] == [("skq", kvexp.RESERVED_WORKERS)]
    assert len({c.label for c in plan.configs}) == len(plan.configs)
    assert all(c.work == "kv" for c in plan.configs)
    assert plan.repeats >= 3
    assert plan.load.workload == "kv" and plan.load.rt_connections > 0
    assert plan.slo_us == kvexp.SLO_US


def test_interleaving_visits_every_configuration_each_round_in_a_rotated_order() -> None:
    order = interleaved_order(4, 3)
    assert len(order) == 12
    rounds = [[i for r, i in order if r == k] for k in range(3)]
    assert all(sorted(r) == [0, 1, 2, 3] for r in rounds)
    assert [r[0] for r in rounds] == [0, 1, 2]  # no configuration always goes first
    assert [r for r, _ in order] == sorted(r for r, _ in order)  # a round ends before the next


def test_reproduce_with_no_name_runs_both_and_kv_needs_the_store() -> None:
    parse = cli.build_parser().parse_args
    assert parse(["bench", "reproduce", "--quick"]).experiment is None
    assert "lmdb" in cli._needs(parse(["bench", "reproduce"]))
    assert "lmdb" in cli._needs(parse(["bench", "reproduce", "kv"]))
    assert "lmdb" not in cli._needs(parse(["bench", "reproduce", "imbalance"]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["kv", "--work", "sqlite", "--base-us", "50"],
            "--base-us, --work: only for reproduce imbalance",
        ),
        (["kv", "--slo-factor", "5"], "--slo-factor: only for reproduce imbalance"),
        (["imbalance", "--probe", "--keys", "5000"], "--keys, --probe: only for reproduce kv"),
    ],
)
def test_an_option_the_named_experiment_does_not_read_is_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "reproduce", *argv, "--out", "unused"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_sim_validate_kv_refuses_the_imbalance_experiments_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "validation"
    argv = ["sim", "validate", "kv", "--quick", "--base-us", "50", "--work", "sqlite"]
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--out", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--base-us, --work: only for sim validate imbalance" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # refused before anything ran


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, [("imbalance", "imbalance"), ("kv", "kv")]),
        ("kv", [("kv", "")]),
        ("imbalance", [("imbalance", "")]),
    ],
)
def test_reproduce_runs_the_named_experiment_or_both_in_subfolders(
    name: str | None, expected: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[tuple[str, str]] = []

    def runner(kind: str) -> Callable[[SweepPlan, str], int]:
        def run(plan: SweepPlan, out: str) -> int:
            ran.append((kind, os.path.relpath(out, "/r")))
            return 0

        return run

    monkeypatch.setattr(cli, "run_plan", runner("imbalance"))
    monkeypatch.setattr(cli, "run_kv", runner("kv"))
    assert cli.main(["bench", "reproduce", *([name] if name else []), "--out", "/r"]) == 0
    assert ran == [(kind, sub or ".") for kind, sub in expected]


# -- the summary, from synthetic results ---------------------------------------------

CONFIGS = [
    ServerConfig("uvloop", work="kv"),
    ServerConfig("asyncio", work="kv"),
    ServerConfig("skq", policy="best2", work="kv"),
]


def _pop(achieved: float, p50_ms: float, p99_ms: float) -> dict[str, Any]:
    return {"offered": 0.0, "achieved": achieved, "p50_us": p50_ms * 1e3, "p99_us": p99_ms * 1e3}


Repeat = tuple[float, float, float, bool]  # bg achieved, rt p99 ms, bg p99 ms, saturated
Curves = dict[str, list[tuple[float, list[Repeat]]]]


def _results(curves: Curves) -> SweepResults:
    """curves: label -> [(offered, [(bg achieved, rt p99 ms, bg p99 ms, saturated)])]."""
    plan = SweepPlan(
        CONFIGS,
        [1000.0],
        LoadSpec(1, 1.0, workload="kv", rt_connections=2, rt_rate=100.0, dist="fixed:0us"),
        slo_us=10_000.0,
        repeats=3,
    )
    res = SweepResults(asdict(plan), plan.slo_us, 0.0, [c.label for c in CONFIGS])
    by_label = {c.label: c for c in CONFIGS}
    for label, points in curves.items():
        for offered, repeats in points:
            for k, (achieved, rt_p99, bg_p99, sat) in enumerate(repeats):
                bg = _pop(achieved, 1.0, bg_p99) | {"offered": offered}
                rt = _pop(100.0, rt_p99 / 4, rt_p99)
                res.points.append(
                    Point(
                        label, asdict(by_label[label]), bg, sat, "x" * sat, k, {"bg": bg, "rt": rt}
                    )
                )
    return res


UV, AS, SKQ = (c.label for c in CONFIGS)
CURVES: Curves = {
    # uvloop sustains 1,000/s (median of 990, 1000, 1010 at 1,000/s): the best baseline
    UV: [
        (500.0, [(500, 20, 10, False), (500, 30, 12, False), (500, 25, 11, False)]),
        (1000.0, [(990, 90, 50, True), (1000, 80, 40, True), (1010, 85, 45, False)]),
    ],
    AS: [
        (500.0, [(500, 8, 9, False), (500, 12, 10, False), (500, 40, 11, False)]),
        (1000.0, [(800, 99, 99, True), (800, 99, 99, True), (800, 99, 99, True)]),
    ],
    SKQ: [
        (500.0, [(500, 2, 13, False), (500, 3, 14, False), (500, 4, 15, False)]),
        (1000.0, [(990, 6, 60, False), (990, 9, 70, False), (990, 40, 80, True)]),
    ],
}


def test_the_reference_load_is_70_percent_of_the_best_baselines_sustained_load() -> None:
    ref = kvexp.summarize(_results(CURVES))["reference"]
    assert ref["best_baseline"] == UV
    assert ref["saturation_load"] == 1000 and ref["saturated"] is True
    assert ref["reference_load"] == pytest.approx(700)
    assert ref["measured_at"] == 500  # the measured load nearest to 700/s
    assert "median" in ref["how"]


def test_summary_keys_are_medians_with_spreads_over_the_repeats() -> None:
    summary = kvexp.summarize(_results(CURVES))
    assert summary["repeats"] == 3 and summary["slo_ms"] == 10
    skq = summary["configs"][SKQ]
    assert skq["repeats"] == 3
    assert skq["rt_p99_ms"] == 3 and skq["rt_p99_ms_spread"] == [2, 4]
    assert skq["rt_p50_ms"] == 0.75 and skq["rt_p50_ms_spread"] == [0.5, 1.0]
    assert skq["bg_p99_ms"] == 14 and skq["bg_p99_ms_spread"] == [13, 15]
    assert skq["throughput"] == 600 and skq["throughput_spread"] == [600, 600]
    # the highest load whose median rt p99 meets the SLO with most repeats unsaturated
    assert skq["rt_low_latency_load"] == 1000
    assert summary["configs"][AS]["rt_low_latency_load"] == 0  # median 12 ms > 10 ms
    assert summary["configs"][UV]["rt_low_latency_load"] == 0
    json.dumps(summary)  # what summary.json holds


def test_better_only_where_the_spreads_do_not_overlap() -> None:
    configs = kvexp.summarize(_results(CURVES))["configs"]
    # skq 2..4 ms is below uvloop's 20..30 and asyncio's 8..40; asyncio's median (12)
    # is below uvloop's (25) but its spread overlaps, so it is not called better
    assert sorted(configs[SKQ]["rt_p99_better_than"]) == sorted([UV, AS])
    assert configs[AS]["rt_p99_better_than"] == []
    assert configs[UV]["rt_p99_better_than"] == []
    table = kvexp.markdown(kvexp.summarize(_results(CURVES)))
    row = next(line for line in table.splitlines() if line.startswith(f"| {SKQ} |"))
    assert "3.00 (2.00..4.00)" in row


def test_a_configuration_that_stopped_before_the_reference_load_says_so() -> None:
    curves: Curves = dict(CURVES)
    curves[AS] = [(1000.0, [(500, 99, 99, True)] * 3)]  # stopped at 1,000/s; ref is 500/s
    summary = kvexp.summarize(_results(curves))
    row = summary["configs"][AS]
    assert row["rt_p99_ms"] is None and row["note"] == "saturated"
    assert "saturated" in kvexp.markdown(summary)


def test_the_plots_draw_the_medians(tmp_path: Any) -> None:
    res = _results(CURVES)
    view = kvexp.median_view(res, "rt")
    skq = [p for p in view.points if p.label == SKQ]
    assert [(p.result["offered"], p.result["p99_us"], p.saturated) for p in skq] == [
        (500.0, 3000.0, False),
        (1000.0, 9000.0, False),
    ]
    kvexp.write_report(res, str(tmp_path))
    for name in ("summary.json", "summary.md", *kvexp.PLOTS.values()):
        assert os.path.getsize(tmp_path / name) > 0


# -- a real, very short run --------------------------------------------------------------


@pytest.mark.timeout(90)
def test_the_command_end_to_end_on_a_reduced_plan(
    tmp_out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two designs and two loads instead of seven and four: the command as run, in ~15 s
    monkeypatch.setattr(kvexp, "BASELINES", ("dispatch",))
    monkeypatch.setattr(kvexp, "SKQ_QUICK", ())
    monkeypatch.setattr(kvexp, "RESERVED_POLICY", "best2")
    monkeypatch.setattr(kvexp, "RATES_QUICK", (100.0, 200.0))
    argv = ["bench", "reproduce", "kv", "--quick", "--workers", "2", "--keys", "2000"]
    argv += ["--connections", "4", "--duration", "0.4", "--warmup", "0.1", "--out", tmp_out]
    argv += ["--probe"]
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        assert cli.main(argv) == 0
    res = load_results(tmp_out)
    assert not res.errors and not res.interrupted
    assert len(res.points) == 2 * 3 * 2
    d, k = "dispatch x2", "skq best2 rt1 x2"
    # each load: three rounds, the order rotated between them
    assert [p.label for p in res.points][:6] == [d, k, k, d, d, k]
    assert all(set(p.populations) == {"bg", "rt"} for p in res.points)
    assert all(p.populations["rt"]["received"] > 0 for p in res.points)
    # the probe's figures cover each point alone (about 200 wake-ups a second of a point
    # of well under 5 s); never reset, they would add up to thousands by the last point
    assert all(20 < p.probe["wake_samples"] < 1000 for p in res.points)
    assert all(p.probe["cpu_cores"] > 0 and p.probe["switches_per_s"] > 0 for p in res.points)
    with open(os.path.join(tmp_out, "summary.json")) as f:
        summary = json.load(f)
    assert set(summary["configs"]) == {d, k}
    for row in summary["configs"].values():
        assert row["server_wake_p99_ms"] > 0 and row["server_switches_per_request"] > 0
        low, high = row["server_cpu_us_per_request_spread"]
        assert 0 < low <= row["server_cpu_us_per_request"] <= high
    with open(os.path.join(tmp_out, "summary.md")) as f:
        assert "server wake-up p99 ms" in f.read()
    assert summary["reference"]["measured_at"] in (100.0, 200.0)
    for name in ("results.json", "summary.md", *kvexp.PLOTS.values()):
        assert os.path.getsize(os.path.join(tmp_out, name)) > 0
