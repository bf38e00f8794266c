"""The simulator: deterministic by seed, every request served exactly once, the laws a
queueing model must obey (path costs at low load, head-of-line blocking under a static
assignment, lock contention), and ``skqueue sim run`` end to end."""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import replace
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest

from skqbench import cli
from skqbench.service import parse_dist
from skqbench.sim import grid
from skqbench.sim.calibrate import calibrate
from skqbench.sim.costs import Costs
from skqbench.sim.engine import DESIGNS, Outcome, SimConfig, simulate
from skqbench.sweep import load_results

SHORT = SimConfig(duration_s=0.3, warmup_s=0.05, connections=32)
SKQ_POLICIES = ["random", "queue", "cpu2", "best2", "best2+ws", "queue+ws2", "auto"]
ALL = [replace(SHORT, design=d) for d in DESIGNS if d != "skq"] + [
    replace(SHORT, design="skq", policy=p) for p in SKQ_POLICIES
]
# Workers that queue for their cores, with service on the core and off it; bursts.
CROWDED = [
    replace(SHORT, design=d, policy="best2+ws", cores=2, work=w)
    for d in ("skq", "dispatch", "vanilla")
    for w in ("cpu", "sleep")
] + [replace(SHORT, design="skq", policy="best2+ws", arrival="pareto")]


def _events(out: Outcome) -> int:
    """Events the kevqs handed out, by their own counters."""
    return sum(k["events"] for k in out.stats["kevqs"])


@pytest.mark.parametrize("cfg", ALL, ids=lambda c: c.label)
def test_a_seed_gives_the_same_run_twice(cfg: SimConfig) -> None:
    cfg = replace(cfg, rate=3000.0)
    first, second = simulate(cfg), simulate(cfg)
    assert (first.arrivals, first.done, first.events) == (
        second.arrivals,
        second.done,
        second.events,
    )
    other = simulate(replace(cfg, seed=2))
    assert other.arrivals != first.arrivals


@pytest.mark.parametrize("cfg", ALL + CROWDED, ids=lambda c: f"{c.label}-{c.n_cores}-{c.work}")
def test_every_request_is_served_exactly_once(cfg: SimConfig) -> None:
    # Near capacity, with realtime connections and a FREQ limit: every path is taken.
    cfg = replace(cfg, rate=5000.0, realtime=4, rtshare=50, freq=2000)
    out = simulate(cfg)
    assert len(out.arrivals) > 1000
    assert all(done >= arrived for arrived, done in zip(out.arrivals, out.done, strict=True))
    # One event per request, by the kevqs' own counts (a request served twice would
    # also have raised inside the simulation).
    assert _events(out) == len(out.arrivals)
    realtime = sum(k["realtime"] for k in out.stats["kevqs"])
    assert realtime > 0


def test_skq_decisions_are_the_schedulers_own() -> None:
    out = simulate(replace(SHORT, design="skq", policy="best2+ws", rate=5000.0))
    stats = out.stats
    assert stats["policy"] == "best2+ws1"  # Scheduler.name
    assert stats["placements"] == sum(k["placements"] for k in stats["kevqs"]) > 0
    assert sum(k["steals"] for k in stats["kevqs"]) > 0
    assert stats["place_total_us"] == 0  # the virtual clock does not move inside place()


@pytest.mark.parametrize("design", DESIGNS)
def test_at_low_load_p50_is_the_service_time_plus_the_path_costs(design: str) -> None:
    costs = Costs()
    cfg = replace(SHORT, design=design, policy="best2", dist="fixed:400us", rate=100.0)
    res = simulate(cfg).result()
    path = costs.place + costs.wakeup + costs.harvest + costs.io
    if design == "kqueue":
        path += 2 * costs.lock  # the activation and the wait each hold the one lock
    assert res.p50_us == pytest.approx((400_000 + path) / 1e3, abs=0.5)
    assert res.timeouts == 0


def test_a_request_served_on_another_core_than_its_connections_last_pays_the_cold_cost() -> None:
    # Low load, a cold cost far above everything else: vanilla keeps each connection on
    # its worker's core, so never pays it; dispatch moves connections between the four
    # cores, so most requests pay it.
    cold = replace(Costs(), cold=1_000_000)
    p50: dict[tuple[str, int], float] = {}
    for design in ("vanilla", "dispatch"):
        for costs in (Costs(), cold):
            cfg = replace(SHORT, design=design, dist="fixed:100us", rate=200.0, costs=costs)
            p50[design, costs.cold] = simulate(cfg).result().p50_us
    assert p50["vanilla", 1_000_000] == p50["vanilla", Costs().cold]
    assert p50["dispatch", 1_000_000] > p50["dispatch", Costs().cold] + 900


def test_a_static_assignment_blocks_behind_slow_connections_and_stealing_does_not() -> None:
    # 95/4/1 classes of 400 us at about half of the 4 workers' capacity.
    cfg = replace(SHORT, connections=64, rate=3000.0, duration_s=1.0)
    p99 = {
        label: simulate(c).result().p99_us
        for label, c in {
            "vanilla": replace(cfg, design="vanilla"),
            "skq queue": replace(cfg, design="skq", policy="queue"),
            "skq best2+ws": replace(cfg, design="skq", policy="best2+ws"),
            "dispatch": replace(cfg, design="dispatch"),
        }.items()
    }
    assert p99["vanilla"] > 2 * p99["skq best2+ws"], p99
    assert p99["skq queue"] > 2 * p99["skq best2+ws"], p99  # affinity alone is static too
    assert p99["skq best2+ws"] < 1.5 * p99["dispatch"], p99


def test_the_single_lock_kqueue_saturates_where_a_shared_queue_does_not() -> None:
    # 16 cores, 50 us requests: the lock (2 holds of 8 us per request) caps the legacy
    # kqueue near 60k/s, far below the workers' capacity.
    cfg = replace(SHORT, workers=16, dist="fixed:50us", rate=100_000.0, duration_s=0.1)
    legacy = simulate(replace(cfg, design="kqueue")).result()
    shared = simulate(replace(cfg, design="dispatch")).result()
    assert shared.p99_us < 1_000  # 50 us of service and the path, queueing a little
    assert legacy.p99_us > 20_000  # the lock's queue grows all through the run


def test_sleep_work_leaves_the_core_to_the_other_workers() -> None:
    # 4 workers on 1 core: service on the core serialises them, sleeping service does not.
    cfg = replace(SHORT, cores=1, dist="fixed:400us", rate=4000.0, design="dispatch")
    on_core = simulate(replace(cfg, work="cpu")).result()
    off_core = simulate(replace(cfg, work="sleep")).result()
    assert on_core.p50_us > 10_000  # 1.6 x one core's capacity: the queue only grows
    assert off_core.p50_us < 1_000


def test_calibration_measures_every_cost() -> None:
    costs = calibrate()
    assert all(0 < getattr(costs, name) < 10_000_000 for name in Costs.names())
    assert costs.lock == costs.harvest


# The command --------------------------------------------------------------------------
def test_sim_run_writes_results_plots_and_its_speed(
    tmp_out: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sim", "run", "--rates", "1000,3000", "--duration", "0.2", "--out", tmp_out]
    argv += ["--design", "vanilla", "--design", "skq", "--policy", "best2+ws"]
    argv += ["--cost", "wakeup=5", "--realtime", "2"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"simulator: [\d,]+ events in [\d.]+ s, [\d,]+ simulated events/s", out)
    res = load_results(tmp_out)
    assert res.plan["simulated"] and res.plan["costs_ns"]["wakeup"] == 5000
    assert res.labels == ["vanilla x4", "skq best2+ws x4"]
    assert [p.result["offered"] for p in res.points] == [1000, 3000, 1000, 3000]
    for name in ("p99.png", "p50.png", "p99-story.png", "summary.md"):
        assert os.path.getsize(os.path.join(tmp_out, name)) > 0
    with open(os.path.join(tmp_out, "results.json")) as f:
        assert json.load(f)["points"][0]["config"]["realtime"] == 2
    assert cli.main(["bench", "report", tmp_out]) == 0  # the harness's report reads them


def test_geometric_loads_each_get_the_same_number_of_requests(tmp_out: str) -> None:
    argv = ["sim", "run", "--steps", "3", "--min-load", "0.01", "--max-load", "0.04"]
    argv += ["--requests", "400", "--design", "dispatch", "--out", tmp_out]
    assert cli.main(argv) == 0
    res = load_results(tmp_out)
    offered = [p.result["offered"] for p in res.points]
    assert offered[1] / offered[0] == pytest.approx(2, rel=0.02)  # rounded to 1/s
    assert offered[2] / offered[1] == pytest.approx(2, rel=0.02)  # rounded to 1/s
    assert res.plan["load"]["requests"] == 400 and res.plan["load"]["duration_s"] is None
    for p in res.points:
        window = p.config["duration_s"]
        assert window * p.result["offered"] == pytest.approx(400)
        assert p.config["warmup_s"] == pytest.approx(window / 4)
        assert p.result["sent"] == pytest.approx(400, rel=0.25)  # Poisson arrivals
        kevqs = p.result["stats"]["kevqs"]  # summed, not one record per kevq
        assert kevqs["totals"]["events"] == sum(kevqs["events"]) > 0


def test_sim_grid_quick_writes_json_and_a_table_relative_to_the_best_fixed_policy(
    tmp_out: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["sim", "grid", "--quick", "--out", tmp_out]) == 0
    out = capsys.readouterr().out
    assert re.search(r"simulator: [\d,]+ events in [\d.]+ s, [\d,]+ simulated events/s", out)
    assert re.search(r"auto: worst [\d.]+x of the best fixed policy", out)
    with open(os.path.join(tmp_out, "grid.json")) as f:
        grid = json.load(f)
    assert len(grid["points"]) == 8
    for point in grid["points"]:
        fixed = [v for k, v in point["rel"].items() if k != "auto"]
        assert min(fixed) == 1.0 and point["auto"] and point["rel"]["auto"] > 0
    for name in ("grid.txt", "grid.png"):
        assert os.path.getsize(os.path.join(tmp_out, name)) > 0


def _grid(
    dists: tuple[str, ...], workers: tuple[int, ...], loads: tuple[float, ...]
) -> dict[str, Any]:
    """A grid as run_grid returns it, made up: every policy at the best but cpu, 3x at
    the highest load, and auto, 1.2x at one point."""
    points: list[dict[str, Any]] = []
    for d in dists:
        for w in workers:
            for load in loads:
                rel = dict.fromkeys(grid.POLICIES, 1.0)
                rel["cpu"] = 3.0 if load == max(loads) else 1.5
                points.append(dict(dist=d, workers=w, load=load, rel=rel, auto="best2+ws"))
    points[1]["rel"]["auto"] = 1.2
    return dict(points=points, auto_within_target=False, auto_worst=1.2)


def test_the_grid_plot_is_a_heat_map_per_distribution_with_its_misses_framed() -> None:
    fig = grid.figure(_grid(("fixed", "classes", "heavy"), (2, 64), (0.1, 0.5, 0.95)))
    maps = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in maps] == [
        f"{d} ({grid.DISTS[d]})" for d in ("fixed", "classes", "heavy")
    ]
    for i, ax in enumerate(maps):
        cells = np.asarray(ax.images[0].get_array())
        assert cells.shape == (len(grid.POLICIES), 2 * 3)  # a row per policy, auto first
        assert [t.get_text() for t in ax.get_yticklabels()] == ["auto", *grid.FIXED]
        assert cells[0].tolist() == [1.0, 1.2 if i == 0 else 1.0, 1, 1, 1, 1]
        assert len(ax.texts) == cells.size  # every cell's value is written in it
        # framed: auto over its target (the first map's second cell), cpu over 2x
        assert len(ax.patches) == 2 + (i == 0)
    plt.close(fig)


def test_a_combination_no_option_rejects_alone_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["sim", "run", "--connections", "10", "--realtime", "20"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("skqueue sim run: error: ") and err.count("\n") == 1, err


def test_help_lists_only_the_options_sim_run_has(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["sim", "run", "--help"])
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", capsys.readouterr().out))
    run = cli.build_parser().parse_args(["sim", "run"]).parser
    options = {s for a in run._actions for s in a.option_strings if s.startswith("--")}
    assert shown == options
    assert "--processes" not in shown and "--calibrate" in shown


# The key-value experiment's shape: two populations, the kv mix, reserved workers ------
KV = replace(
    SHORT,
    design="skq",
    policy="best2+ws",
    dist="kv:6us:20us:0.5us",
    connections=36,
    realtime=4,
    rt_rate=400.0,
    rate=3000.0,
)


@pytest.mark.parametrize("rtreserve", [0, 1, 2])
def test_a_latency_sensitive_population_is_served_once_and_reported_apart(rtreserve: int) -> None:
    out = simulate(replace(KV, rtreserve=rtreserve))
    assert _events(out) == len(out.arrivals)
    rt, bg, both = out.result("rt"), out.result("bg"), out.result()
    assert rt.received > 50 and bg.received > 500
    assert rt.sent + bg.sent == both.sent
    assert (rt.offered, bg.offered, both.offered) == (400.0, 3000.0, 3400.0)
    # Its requests are the kv mix's GETs, on its own connections: none waits behind a
    # SEEK of its own connection, and the background never lands there.
    assert sum(k["realtime"] for k in out.stats["kevqs"]) == sum(out.latency_sensitive)


def test_reserved_kevqs_take_realtime_activations_only() -> None:
    out = simulate(replace(KV, rtreserve=1))
    stats = out.stats
    reserved = [k for k in stats["kevqs"] if k["reserved"]]
    assert len(reserved) == 1
    # Every event it served was a realtime one (normal ones are neither placed on it
    # nor stolen by it), and every realtime activation was placed on it.
    assert reserved[0]["events"] == reserved[0]["realtime"] > 0
    assert stats["reserved_placements"] == reserved[0]["placements"]
    unreserved = simulate(KV).stats
    assert not any(k["reserved"] for k in unreserved["kevqs"])


def test_the_kv_mix_costs_its_store_calls() -> None:
    dist = parse_dist("kv:6us:20us:500ns")
    rng = random.Random(3)
    draws = [dist.sample_ns(rng, 1.0) for _ in range(200_000)]
    # GET 83 %, PUT 14 %, SEEK 3 %: a SEEK costs a GET plus 0.5 us a record, so GETs and
    # PUTs are the two exact values and a SEEK of one record is 6.5 us.
    assert abs(draws.count(6_000) / len(draws) - 0.83) < 0.01
    assert abs(draws.count(20_000) / len(draws) - 0.14) < 0.01
    assert min(draws) == 6_000 and max(draws) == 6_000 + 10_000 * 500
    assert abs(sum(draws) / len(draws) / dist.mean_ns(1) - 1) < 0.05
    assert dist.sample_rt_ns(rng, 1.0) == 6_000  # a latency-sensitive client's GET
    with pytest.raises(ValueError, match="kv:GET:PUT:NEXT"):
        parse_dist("kv:6us:20us")


@pytest.mark.parametrize(
    "bad",
    [
        dict(rt_rate=100.0, realtime=0),
        dict(rt_rate=100.0, realtime=36),
        dict(rt_rate=-1.0),
        dict(rtreserve=1, design="dispatch"),
        dict(rtreserve=-1),
    ],
)
def test_a_population_or_reservation_that_cannot_be_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(KV, **bad)


def test_sim_run_reports_each_population_as_the_kv_sweep_does(tmp_out: str) -> None:
    argv = ["sim", "run", "--rates", "1000", "--duration", "0.2", "--out", tmp_out]
    argv += ["--design", "skq", "--design", "dispatch", "--policy", "best2+ws"]
    argv += ["--dist", "kv:6us:20us:0.5us", "--connections", "36", "--realtime", "4"]
    argv += ["--rt-rate", "200", "--rtreserve", "1"]
    assert cli.main(argv) == 0
    res = load_results(tmp_out)
    skq, dispatch = res.points
    for point in res.points:
        assert set(point.populations) == {"bg", "rt"}
        assert point.result["offered"] == point.populations["bg"]["offered"] == 1000
        assert point.populations["rt"]["offered"] == 200
    assert skq.config["rtreserve"] == 1 and dispatch.config["rtreserve"] == 0
    assert skq.result["stats"]["reserved_placements"] > 0
