"""``skqueue sim validate`` (issue 15): the verdicts on synthetic series (a miss is
reported as one, a match passes), the simulation of each measured configuration (and
its measured per-request CPU), and the command on a results folder written here."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, replace
from typing import Any, cast

import pytest

from skqbench import cli
from skqbench.loadgen import LoadSpec
from skqbench.servers.base import ServerConfig
from skqbench.service import KvMix, parse_dist
from skqbench.sim.costs import Costs
from skqbench.sim.engine import SimConfig, simulate
from skqbench.sim.validate import (
    VALIDATE_FILE,
    LatenessCurve,
    Serve,
    ServeCurve,
    by_population,
    compare,
    kv_dist,
    probed_lateness,
    probed_serve,
    repeat_spreads,
    sim_plan_for,
    verdict,
)
from skqbench.sweep import Point, SweepPlan, SweepResults, load_results

SLO_US = 10_000.0
RATES = [1000.0, 2000.0, 3000.0, 4000.0]
CONFIGS = [
    ServerConfig("vanilla", 2),
    ServerConfig("skq", 2, "best2"),
    ServerConfig("dispatch", 2),
    ServerConfig("asyncio", 2),
]


def _plan() -> SweepPlan:
    load = LoadSpec(1, 1.0, duration_s=0.05, warmup_s=0.01, connections=8, dist="classes:400us")
    return SweepPlan(list(CONFIGS), RATES[:2], load, slo_us=SLO_US)


def _results(series: dict[str, list[tuple[float, float, float, bool]]]) -> SweepResults:
    """A sweep of (offered, achieved, p99_us, saturated) per label."""
    res = SweepResults(
        plan=asdict(_plan()), slo_us=SLO_US, mean_service_us=500.0, labels=list(series)
    )
    for label, points in series.items():
        for offered, achieved, p99, saturated in points:
            result: dict[str, Any] = {
                "offered": offered,
                "achieved": achieved,
                "p50_us": p99 / 4,
                "p99_us": p99,
            }
            res.points.append(Point(label, {}, result, saturated, "late" if saturated else ""))
    return res


MEASURED = [
    (1000.0, 1000.0, 2000.0, False),
    (2000.0, 2000.0, 4000.0, False),
    (3000.0, 3000.0, 9000.0, False),
    (4000.0, 3500.0, 80_000.0, True),
]


def test_a_close_simulation_passes() -> None:
    sim = [(o, a * 0.95, p * 1.1, s) for o, a, p, s in MEASURED]
    v = verdict(_results({"m": MEASURED}), _results({"m": sim}), "m")
    assert v.llt_measured == 3000.0 and v.llt_simulated == 2850.0
    assert [c.offered for c in v.loads] == RATES[:3]  # not the saturated load
    assert v.llt_ok and v.p99_ok and v.ok
    assert v.worst_p99_ratio == pytest.approx(1.1)


def test_a_throughput_miss_fails() -> None:
    # p99 over the SLO at 3000/s: low-latency throughput 2000 against 3000 (-33 %)
    sim = [(1000.0, 1000.0, 2000.0, False), (2000.0, 2000.0, 4000.0, False)]
    sim += [(3000.0, 3000.0, 12_000.0, False)]
    v = verdict(_results({"m": MEASURED}), _results({"m": sim}), "m")
    assert v.llt_error == pytest.approx(1 / 3)
    assert not v.llt_ok and not v.ok
    assert v.p99_ok  # 12 / 9 ms is within 1.5x


def test_a_p99_miss_below_saturation_fails() -> None:
    sim = [(o, a, p * (2.0 if o == 1000.0 else 1.0), s) for o, a, p, s in MEASURED]
    v = verdict(_results({"m": MEASURED}), _results({"m": sim}), "m")
    assert v.llt_ok and not v.p99_ok and not v.ok
    assert [c.ok for c in v.loads] == [False, True, True]


def test_a_simulation_that_saturates_early_fails() -> None:
    sim = [MEASURED[0], (2000.0, 1500.0, 90_000.0, True)]
    v = verdict(_results({"m": MEASURED}), _results({"m": sim}), "m")
    assert not v.p99_ok and math.isinf(v.worst_p99_ratio)
    assert v.loads[1].simulated_p99_us is None


def test_asyncio_is_simulated_as_the_shared_queue_it_is() -> None:
    serve = {"asyncio x2": {1000.0: Serve(300_000, 0)}, "dispatch x2": {1000.0: Serve(100_000, 0)}}
    plan = sim_plan_for(_results({}), Costs(), cores=1, serve=serve)
    assert [c.label for c in plan.configs] == [c.label for c in CONFIGS]
    dispatch, asyncio = plan.configs[2:]
    assert dispatch.design == asyncio.design == "dispatch"
    assert (dispatch.shown_as, asyncio.shown_as) == ("dispatch", "asyncio")  # each its look
    assert (dispatch.serve_ns, asyncio.serve_ns, plan.configs[0].serve_ns) == (100_000, 300_000, 0)
    first = plan.configs[0]
    assert (first.n_cores, first.work, first.duration_s, first.connections) == (1, "sleep", 0.05, 8)
    assert plan.rates == RATES[:2] and plan.slo_us == SLO_US


def test_serve_ns_is_charged_per_request_on_the_core() -> None:
    cfg = SimConfig(design="dispatch", cores=1, rate=500.0, duration_s=0.3, dist="fixed:100us")
    light, heavy = simulate(cfg).result(), simulate(replace(cfg, serve_ns=200_000)).result()
    assert heavy.p50_us - light.p50_us == pytest.approx(200.0, abs=20.0)


def test_system_call_time_waits_off_the_core() -> None:
    """One core, four workers, 400 us of CPU a request at 3,000/s: on the core that is
    1.2 cores' worth (saturated); with 250 us of it in system calls, which need no
    core, the core is 45 % busy and every request still takes its 400 us."""
    cfg = SimConfig(design="dispatch", cores=1, rate=3000.0, duration_s=0.3, dist="fixed:0us")
    on_core = simulate(replace(cfg, serve_ns=400_000)).result()
    split = simulate(replace(cfg, serve_ns=150_000, serve_kernel_ns=250_000)).result()
    assert on_core.p50_us > 20_000.0  # the queue grows for as long as it runs
    assert split.p50_us >= 400.0 and split.p99_us < 2_000.0


def test_a_wake_up_is_late_by_a_draw_with_the_probes_percentiles() -> None:
    """At 100/s every request wakes a sleeping worker: its latency is the lateness drawn
    (median 1 ms, p99 5 ms) plus a few microseconds of event path."""
    cfg = SimConfig(design="dispatch", cores=1, rate=100.0, duration_s=5.0, dist="fixed:0us")
    prompt = simulate(cfg).result()
    late = simulate(replace(cfg, late_p50_ns=1_000_000, late_p99_ns=5_000_000)).result()
    assert prompt.p99_us < 100.0
    assert late.p50_us == pytest.approx(1000.0 + prompt.p50_us, rel=0.15)
    assert late.p99_us == pytest.approx(5000.0, rel=0.3)  # ~500 requests: a rough p99
    for p50, p99 in ((1000, 0), (0, 1000), (2000, 1000)):
        with pytest.raises(ValueError, match="lateness"):
            replace(cfg, late_p50_ns=p50, late_p99_ns=p99)


def test_serve_is_simulated_per_load_and_its_system_calls_off_the_gils_core() -> None:
    real = _results({})
    real.plan["rates"] = [1000.0, 2000.0, 4000.0]
    curve = {1000.0: Serve(200_000, 150_000), 4000.0: Serve(100_000, 90_000)}
    plan = sim_plan_for(real, Costs(), cores=1, serve={"vanilla x2": curve})
    vanilla, skq = plan.configs[:2]
    assert (vanilla.serve_ns, vanilla.serve_kernel_ns) == (200_000, 150_000)  # the lowest
    points = [plan.point(vanilla, rate) for rate in plan.rates]
    # 2,000/s takes the nearest measured load's: 1,000/s.
    assert [(p.serve_ns, p.serve_kernel_ns) for p in points] == [
        (200_000, 150_000),
        (200_000, 150_000),
        (100_000, 90_000),
    ]
    assert (plan.point(skq, 4000.0).serve_ns, skq.serve_kernel_ns) == (0, 0)  # none measured
    # Free-threaded (two cores): the system calls take a core like the rest.
    free = sim_plan_for(real, Costs(), cores=2, serve={"vanilla x2": curve})
    assert (free.configs[0].serve_ns, free.configs[0].serve_kernel_ns) == (350_000, 0)


def test_the_real_runs_probe_gives_its_cpu_per_request_at_every_load() -> None:
    costs = Costs()
    modelled = costs.harvest + costs.io + costs.place
    real = _kv_results({"vanilla x2": [(3000.0, 5000.0)] * 2})
    assert probed_serve(real, costs) is None  # no probe figures: measure anew
    for p in real.points:  # 0.2 + 0.1 cores at 1,000/s (999 + 99 replies/s), the same at 2,000
        p.probe = {"cpu_user_cores": 0.2, "cpu_system_cores": 0.1}
    curve = cast(dict[str, ServeCurve], probed_serve(real, costs))["vanilla x2"]
    assert sorted(curve) == RATES[:2]
    replies = 1000.0 - 0.5 + 99.0  # the median of the two repeats' background replies
    assert curve[1000.0].python_ns == pytest.approx(0.2e9 / replies - modelled, abs=300)
    assert curve[1000.0].kernel_ns == pytest.approx(0.1e9 / replies, abs=300)
    assert curve[2000.0].kernel_ns < curve[1000.0].kernel_ns  # the same CPU, more replies


def test_the_probes_lateness_is_taken_per_load_and_the_repeats_spread_is_reported() -> None:
    real = _kv_results({"vanilla x2": [(2000.0, 5000.0), (3000.0, 6000.0), (9000.0, 7000.0)]})
    assert probed_lateness(real) is None  # no probe figures
    for i, p in enumerate(real.points):  # the repeats of a load: 0.1/1, 0.2/2, 0.3/3 ms
        late = (i % 3 + 1) / 10
        p.probe = {"wake_p50_ms": late, "wake_p99_ms": late * 10}
    lateness = cast(dict[str, LatenessCurve], probed_lateness(real))
    assert lateness == {"vanilla x2": {1000.0: (200_000, 2_000_000), 2000.0: (200_000, 2_000_000)}}
    plan = sim_plan_for(real, Costs(), cores=1, kv=KV, lateness=lateness)
    assert (plan.configs[0].late_p50_ns, plan.configs[0].late_p99_ns) == (200_000, 2_000_000)
    spreads = repeat_spreads(real)
    assert spreads["vanilla x2 (rt)", 1000.0] == 4.5 and spreads["vanilla x2 (bg)", 2000.0] == 1.4
    (rt, bg) = compare(by_population(real), by_population(real), spreads)
    assert (rt.worst_p99_ratio, rt.worst_spread, bg.worst_spread) == (1.0, 4.5, 1.4)


def test_compare_pairs_every_measured_configuration() -> None:
    real = _results({c.label: MEASURED for c in CONFIGS})
    verdicts = compare(real, _results({c.label: MEASURED for c in CONFIGS[1:]}))
    assert [v.label for v in verdicts] == [c.label for c in CONFIGS[1:]]
    assert all(v.ok for v in verdicts)


def test_from_results_compares_without_measuring(tmp_path: str) -> None:
    real_dir, out = os.path.join(tmp_path, "real"), os.path.join(tmp_path, "out")
    series = [(r, r, 3000.0, False) for r in RATES[:2]]
    _results({c.label: series for c in CONFIGS}).save(real_dir)
    code = cli.main(["sim", "validate", "--from-results", real_dir, "--out", out])
    assert code in (0, 1)  # the verdicts, not the plumbing, decide
    with open(os.path.join(out, VALIDATE_FILE)) as f:
        doc = json.load(f)
    assert [v["label"] for v in doc["verdicts"]] == [c.label for c in CONFIGS]
    assert code == (0 if all(v["ok"] for v in doc["verdicts"]) else 1)
    assert doc["simulated"]["labels"] == [c.label for c in CONFIGS]
    assert set(doc["serve_ns"]) == {c.label for c in CONFIGS}
    figures = sorted(f for f in os.listdir(out) if f.startswith("validate-"))
    assert len(figures) == len(CONFIGS)
    assert not os.path.exists(os.path.join(out, "real"))  # nothing was measured


def test_the_measured_half_runs_every_server_with_the_probe() -> None:
    """Its CPU per request and wake-up lateness at every load go into the simulation."""
    args = cli.build_parser().parse_args(["sim", "validate", "--quick"])
    configs = cli.validate_plan(args).configs
    assert configs and all(c.probe for c in configs)
    kv = cli.build_parser().parse_args(["sim", "validate", "kv", "--quick"])
    kv_configs = cli.kv_reproduce_plan(kv).configs
    assert kv_configs and all(c.probe for c in kv_configs)


def test_a_missing_results_folder_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sim", "validate", "--from-results", "/nonexistent/folder"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--from-results" in err and "results.json" in err


# The key-value experiment: two populations, reserved workers, the store's costs -------
KV_CONFIGS = [
    ServerConfig("vanilla", 2, work="kv", kv_keys=1000),
    ServerConfig("skq", 2, "best2+ws", work="kv", kv_keys=1000, rtreserve=1),
]
KV_LOAD = LoadSpec(
    1,
    1.0,
    duration_s=0.1,
    warmup_s=0.02,
    connections=8,
    dist="fixed:0us",
    workload="kv",
    rt_connections=2,
    rt_rate=100.0,
    kv_keys=1000,
)
KV = "kv:6us:20us:0.5us"


def _kv_results(p99s: dict[str, list[tuple[float, float]]]) -> SweepResults:
    """A kv sweep: per label, one (rt p99, bg p99) per repeat at each of RATES[:2]."""
    plan = asdict(SweepPlan(list(KV_CONFIGS), RATES[:2], KV_LOAD, slo_us=SLO_US))
    res = SweepResults(plan=plan, slo_us=SLO_US, mean_service_us=20.0, labels=list(p99s))
    for label, repeats in p99s.items():
        for rate in RATES[:2]:
            for i, (rt, bg) in enumerate(repeats):
                pops = {
                    "bg": {"offered": rate, "achieved": rate - i, "p50_us": bg / 4, "p99_us": bg},
                    "rt": {"offered": 100.0, "achieved": 99.0, "p50_us": rt / 4, "p99_us": rt},
                }
                res.points.append(Point(label, {}, pops["bg"], False, "", i, pops))
    return res


def test_a_kv_experiment_is_simulated_with_its_populations_and_reservations() -> None:
    real = _kv_results({})
    plan = sim_plan_for(real, Costs(), cores=1, kv=KV)
    vanilla, skq = plan.configs
    for c in plan.configs:
        assert (c.connections, c.realtime, c.rt_rate, c.dist) == (10, 2, 100.0, KV)
        assert c.work == "sleep"  # LMDB's calls drop the GIL
    assert (vanilla.rtreserve, skq.rtreserve, skq.policy) == (0, 1, "best2+ws")
    with pytest.raises(ValueError, match="store's costs"):
        sim_plan_for(real, Costs(), cores=1)


def test_each_population_is_compared_at_the_background_load() -> None:
    real = _kv_results({"vanilla x2": [(2000.0, 5000.0), (3000.0, 6000.0), (9000.0, 7000.0)]})
    view = by_population(real)
    assert view.labels == ["vanilla x2 (rt)", "vanilla x2 (bg)"]
    rt = [p for p in view.points if p.label == "vanilla x2 (rt)"]
    # The medians of the repeats; achieved is the background's (the low-latency
    # throughput is the highest background load at which this population meets the SLO).
    assert [p.result["p99_us"] for p in rt] == [3000.0, 3000.0]
    assert [p.result["achieved"] for p in rt] == [999.0, 1999.0]
    late = _kv_results({"vanilla x2": [(20_000.0, 5000.0)] * 3})
    verdicts = compare(by_population(real), by_population(late))
    assert [(v.label, v.ok) for v in verdicts] == [
        ("vanilla x2 (rt)", False),  # 20 ms against 3 ms, and over the SLO
        ("vanilla x2 (bg)", True),  # 5 ms against 6 ms: within 1.5x
    ]


def test_the_store_calls_are_timed_into_a_kv_distribution() -> None:
    spec = kv_dist(_kv_results({}))
    dist = parse_dist(spec)
    assert isinstance(dist, KvMix)
    assert 0 < dist.next_ns < dist.get_ns < 1_000_000 and 0 < dist.put_ns < 10_000_000


def test_from_results_compares_a_kv_experiment_per_population(tmp_path: str) -> None:
    real_dir, out = os.path.join(tmp_path, "real"), os.path.join(tmp_path, "out")
    _kv_results({c.label: [(3000.0, 5000.0)] for c in KV_CONFIGS}).save(real_dir)
    code = cli.main(["sim", "validate", "--from-results", real_dir, "--out", out])
    assert code in (0, 1)
    with open(os.path.join(out, VALIDATE_FILE)) as f:
        doc = json.load(f)
    labels = [f"{c.label} ({pop})" for pop in ("rt", "bg") for c in KV_CONFIGS]
    assert [v["label"] for v in doc["verdicts"]] == labels
    assert set(doc["serve_ns"]) == {c.label for c in KV_CONFIGS}
    assert len([f for f in os.listdir(out) if f.startswith("validate-")]) == len(labels)
    assert doc["simulated"]["labels"] == labels  # the views compared
    raw = load_results(os.path.join(out, "sim"))  # the simulated sweep, as a kv one
    assert raw.points and all(set(p.populations) == {"rt", "bg"} for p in raw.points)


def test_reuseport_processes_are_simulated_with_an_interpreter_each() -> None:
    real = _results({})
    real.plan["configs"] = [asdict(ServerConfig("reuseport", 2)), asdict(CONFIGS[0])]
    reuseport, vanilla = sim_plan_for(real, Costs(), cores=1).configs
    assert (reuseport.n_cores, vanilla.n_cores) == (min(2, os.cpu_count() or 1), 1)
