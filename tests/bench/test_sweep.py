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
        # 100/s is 40 % of capacity: p99 stays far below the SLO even when the
        # machine is busy (at 150/s, 60 %, it crossed 20 ms in 2 runs of 4).
        rates=[900, 50, 100],  # sorted by the plan
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
        assert [p.result["offered"] for p in pts] == [50, 100, 900]
        assert [p.saturated for p in pts] == [False, False, True]
        assert "achieved" in pts[-1].why or "unanswered" in pts[-1].why
        assert low_latency_throughput(pts, res.slo_us) == pts[1].result["achieved"] > 60
    assert seen  # progress was reported
    again = load_results(tmp_out)
    assert len(again.points) == 6 and again.slo_us == res.slo_us
    with open(os.devnull, "w") as devnull:
        rows = write_report(again, tmp_out, Console(file=devnull))
    assert {r.label for r in rows} == {"asyncio x1", "vanilla x1"}
    base = next(r for r in rows if r.design == "vanilla")
    assert base.llt_vs_baseline == 1.0
    for name in ("p99.png", "p50.png", "summary.json", "summary.md", "results.json"):
        assert os.path.getsize(os.path.join(tmp_out, name)) > 0
    _, refs = summarize(again)
    assert refs.knee == refs.sat == 900  # vanilla's first point over the SLO, saturated


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
