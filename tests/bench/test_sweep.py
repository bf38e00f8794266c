"""A sweep stops at saturation, keeps every point in JSON, and reports them."""

from __future__ import annotations

import os

import pytest
from rich.console import Console

from skqbench.loadgen import LoadSpec
from skqbench.report import low_latency_throughput, summarize, write_report
from skqbench.servers.base import ServerConfig
from skqbench.sweep import SweepPlan, load_results, run_sweep


@pytest.mark.timeout(60)
def test_sweep_stops_at_saturation_and_reports(tmp_out: str) -> None:
    # one worker x 4 ms: capacity 250/s
    plan = SweepPlan(
        configs=[ServerConfig("asyncio", 1), ServerConfig("vanilla", 1)],
        rates=[900, 50, 100],  # sorted by the plan; 900/s is 3.6x capacity
        load=LoadSpec(
            1, 1, duration_s=0.6, warmup_s=0.1, drain_s=0.3, connections=4, dist="fixed:4ms"
        ),
        slo_factor=5,
    )
    assert plan.rates == [50, 100, 900]
    assert plan.slo_us == pytest.approx(20_000)
    seen: list[str] = []
    res = run_sweep(plan, tmp_out, lambda label, done, total, p: seen.append(label))
    assert not res.interrupted and not res.errors
    for label in ("asyncio x1", "vanilla x1"):
        pts = [p for p in res.points if p.label == label]
        # Rates in order, up to and including the first saturated point, never past it.
        # Which point saturates first depends on how busy the machine is; 900/s always
        # does, so every configuration ends on a saturated point.
        offered = [p.result["offered"] for p in pts]
        assert offered == plan.rates[: len(offered)]
        assert [p.saturated for p in pts] == [False] * (len(pts) - 1) + [True]
        if offered[-1] == 900:
            assert "achieved" in pts[-1].why or "unanswered" in pts[-1].why
        within = [p.result["achieved"] for p in pts if p.result["p99_us"] <= res.slo_us]
        assert low_latency_throughput(pts, res.slo_us) == max(within[: len(pts) - 1], default=0)
    assert seen  # progress was reported
    again = load_results(tmp_out)
    assert len(again.points) == len(res.points) and again.slo_us == res.slo_us
    with open(os.devnull, "w") as devnull:
        rows = write_report(again, tmp_out, Console(file=devnull))
    assert {r.label for r in rows} == {"asyncio x1", "vanilla x1"}
    base = next(r for r in rows if r.design == "vanilla")
    assert base.llt_vs_baseline == (1.0 if base.llt else None)  # None: nothing met the SLO
    for name in ("p99.png", "p50.png", "summary.json", "summary.md", "results.json"):
        assert os.path.getsize(os.path.join(tmp_out, name)) > 0
    _, refs = summarize(again)
    vanilla = [p.result["offered"] for p in again.points if p.label == "vanilla x1"]
    # vanilla's first saturated point is its last; its knee (first point over the SLO
    # or saturated) is at or before it
    assert refs.sat is not None and refs.sat == vanilla[-1]
    assert refs.knee is not None and refs.knee <= refs.sat


def test_sweep_stops_after_a_saturated_point_without_measuring_higher(tmp_out: str) -> None:
    plan = SweepPlan(
        configs=[ServerConfig("asyncio", 1)],
        rates=[1000, 2000],
        load=LoadSpec(
            1, 1, duration_s=0.4, warmup_s=0.0, drain_s=0.2, connections=2, dist="fixed:10ms"
        ),
    )
    res = run_sweep(plan, tmp_out)
    assert len(res.points) == 1 and res.points[0].saturated
