"""The simulator checked against real runs (issue 15): the same plan, both series, verdicts.

:func:`sim_plan_for` turns a measured sweep's ``results.json`` into the simulation of
the same configurations, workload and loads; :func:`compare` holds every configuration
to the issue's targets: low-latency throughput (as :mod:`skqbench.report` counts it)
within :data:`LLT_TOLERANCE` of the measured one, and p99 within a factor
:data:`P99_FACTOR` at every load the measured run did not saturate.  A measured design
the simulator has no model of its own for is simulated as the design it runs like
(:data:`SIM_DESIGN_OF`): the asyncio and uvloop servers are a shared FIFO queue in
front of a thread pool, as dispatch is, with their own measured ``serve_ns``.

Costs the event-path calibration misses, found by comparing (not fitted): each design's
CPU per request around the event path (:class:`Serve`; on the development machine the
servers' CPU per request was 3 to 9 times the event path's), and the GIL, which runs one
worker's Python at a time (:func:`interpreter_cores`).  That CPU is read from /proc as
user and system time apart: the system calls run without the GIL, so under it they wait
off the model's one core.  And it falls with load (waits return more events, the fixed
costs of a wait are shared): a run made with the probe (sim validate's own real half,
``reproduce kv --probe``) measured it at every load, and then each load is simulated
with its own (:func:`probed_serve`), and with the probe's wake-up lateness there
(:func:`probed_lateness`); otherwise :func:`measure_serve` measures it at the lowest load.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from skqbench import kvexp, kvstore
from skqbench.loadgen import LoadGenerator, LoadSpec
from skqbench.osutil import tree_cpu_s
from skqbench.report import log_ms_ticks, low_latency_throughput
from skqbench.servers.base import ServerConfig
from skqbench.servers.harness import ServerProcess
from skqbench.sweep import Point, SweepResults

from .costs import Costs
from .engine import SimConfig
from .run import AtLoad, SimPlan

LLT_TOLERANCE = 0.15
P99_FACTOR = 1.5
VALIDATE_FILE = "validate.json"
SIM_DESIGN_OF = {
    "skq": "skq",
    "vanilla": "vanilla",
    "dispatch": "dispatch",
    "asyncio": "dispatch",
    "uvloop": "dispatch",
    "reuseport": "reuseport",
}
# The real servers' service routines as the simulator runs them: sleep waits off the
# core (and the GIL); sqlite computes on it; kv's LMDB calls drop the GIL around every
# call (kvstore), so they wait off the interpreter's core too.
SIM_WORK_OF = {"sleep": "sleep", "sqlite": "cpu", "kv": "sleep"}
KV_SAMPLES = 2000  # timed store calls of each kind (kv_dist)


@dataclass(frozen=True)
class Serve:
    """A real server's CPU per request beyond what the model's event path charges."""

    python_ns: int  # user time: its Python, under the GIL on a GIL build
    kernel_ns: int  # system time: its system calls, which hold no GIL

    @classmethod
    def of(cls, user_s: float, system_s: float, requests: float, modelled_ns: int) -> Serve:
        """From CPU seconds over ``requests``, less the model's own per-request charge
        (taken off the user time, where the model charges it)."""
        per = 1e9 / max(requests, 1.0)
        return cls(max(0, round(user_s * per) - modelled_ns), round(system_s * per))


#: A configuration's Serve by offered load (one entry: the same at every load).
ServeCurve = dict[float, Serve]
#: A configuration's wake-up lateness (p50, p99 in ns) by offered load.
LatenessCurve = dict[float, tuple[int, int]]
_T = TypeVar("_T")


def is_kv(real: SweepResults) -> bool:
    """A key-value experiment's results (two populations), not an imbalance sweep's."""
    return bool(real.plan["load"].get("workload") == "kv")


def sim_plan_for(
    real: SweepResults,
    costs: Costs,
    cores: int,
    serve: dict[str, ServeCurve] | None = None,
    kv: str = "",
    lateness: dict[str, LatenessCurve] | None = None,
) -> SimPlan:
    """The simulation of ``real``'s configurations, workload and loads on ``cores``
    cores, each under its measured label, with its :class:`Serve` (by label, by load)
    and its wake-up lateness (:func:`probed_lateness`), if given; at a load either was
    not measured at, the nearest measured load's.
    A key-value experiment's needs ``kv``, its mix as a ``kv:GET:PUT:NEXT`` service
    distribution (:func:`kv_dist`): its background on the other connections, its
    latency-sensitive GETs on connections of their own (EV_REALTIME in SKQ designs)."""
    plan, load = real.plan, real.plan["load"]
    template = SimConfig(
        cores=cores,
        connections=load["connections"],
        dist=load["dist"],
        arrival=load["arrival"],
        duration_s=load["duration_s"],
        warmup_s=load["warmup_s"],
        seed=load["seed"],
        costs=costs,
    )
    if is_kv(real):
        if not kv:
            raise ValueError("a key-value experiment's simulation needs its store's costs")
        rt = load["rt_connections"]
        template = replace(
            template,
            connections=load["connections"] + rt,
            realtime=rt,
            rt_rate=load["rt_rate"],
            dist=kv,
        )
    configs = []
    at_load: dict[tuple[str, float], AtLoad] = {}
    for c in plan["configs"]:
        if c["design"] not in SIM_DESIGN_OF or c["work"] not in SIM_WORK_OF:
            raise ValueError(f"no simulated model of {c['design']} with work {c['work']}")
        label = ServerConfig(**c).label
        n_cores = _cores_of(c, cores)
        curve = (serve or {}).get(label) or {0.0: Serve(0, 0)}
        late = (lateness or {}).get(label) or {0.0: (0, 0)}
        for rate in plan["rates"]:
            serve_ns, serve_kernel_ns = _on_cores(_nearest(curve, rate), n_cores)
            late_p50_ns, late_p99_ns = _nearest(late, rate)
            at_load[label, rate] = AtLoad(serve_ns, serve_kernel_ns, late_p50_ns, late_p99_ns)
        first = at_load[label, min(plan["rates"])]
        configs.append(
            replace(
                template,
                design=SIM_DESIGN_OF[c["design"]],
                policy=c["policy"] if c["design"] == "skq" else template.policy,
                workers=c["workers"],
                cores=n_cores,
                work=SIM_WORK_OF[c["work"]],
                rtreserve=c.get("rtreserve", 0) if c["design"] == "skq" else 0,
                name=label,
                shown_as=c["design"],
                serve_ns=first.serve_ns,
                serve_kernel_ns=first.serve_kernel_ns,
                late_p50_ns=first.late_p50_ns,
                late_p99_ns=first.late_p99_ns,
            )
        )
    return SimPlan(
        configs,
        list(plan["rates"]),
        slo_us=real.slo_us,
        saturation=plan["saturation"],
        explode=plan["explode"],
        at_load=at_load,
    )


def _nearest(curve: dict[float, _T], rate: float) -> _T:
    """The figure measured at the load nearest to rate."""
    return curve[min(curve, key=lambda load: abs(load - rate))]


def _on_cores(serve: Serve, cores: int) -> tuple[int, int]:
    """A Serve as a simulated configuration's (serve_ns, serve_kernel_ns): with one core
    (the GIL) the system calls wait off it; with more (free-threaded, or processes)
    every part takes a core."""
    if cores == 1:
        return serve.python_ns, serve.kernel_ns
    return serve.python_ns + serve.kernel_ns, 0


def _cores_of(config: dict[str, Any], cores: int) -> int:
    """The simulated cores of one real server: SO_REUSEPORT's workers are processes,
    each with an interpreter (and a GIL) of its own, so they use every real core."""
    if config["design"] == "reuseport":
        return max(cores, min(int(config["workers"]), os.cpu_count() or 1))
    return cores


def interpreter_cores() -> int:
    """Cores the server's Python can use at once: one under the GIL (the real servers'
    workers are threads of one process), every core on a free-threaded build."""
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    return 1 if gil else os.cpu_count() or 1


def _modelled_ns(costs: Costs) -> int:
    """What the model charges per request itself: ``harvest + io + place`` (one event per
    wait, as at a light load)."""
    return costs.harvest + costs.io + costs.place


def measure_serve(
    real: SweepResults, costs: Costs, duration_s: float = 2.0
) -> dict[str, ServeCurve]:
    """Each configuration's :class:`Serve` at the plan's lowest load: its real server's
    CPU per request there (every thread and child process, from /proc), run anew."""
    rate = min(real.plan["rates"])
    load = {**real.plan["load"], "duration_s": duration_s, "rate": rate}
    out = {}
    with LoadGenerator(1) as gen:
        for c in real.plan["configs"]:
            cfg = ServerConfig(**{**c, "port": 0, "probe": False})
            with ServerProcess(cfg) as server:
                user0, system0 = tree_cpu_s(server.pid)
                pops = gen.run_populations(LoadSpec(**{**load, "port": server.port}))
                user1, system1 = tree_cpu_s(server.pid)
            received = sum(r.received for r in pops.values())  # every population's
            serve = Serve.of(user1 - user0, system1 - system0, received, _modelled_ns(costs))
            out[cfg.label] = {rate: serve}
    return out


def probed_serve(real: SweepResults, costs: Costs) -> dict[str, ServeCurve] | None:
    """Each configuration's :class:`Serve` at every load, from the real run's own probe
    (its server's CPU over each point, per reply of both populations; the median of the
    repeats), or None if a point has no probe figures."""
    per: dict[tuple[str, float], list[Serve]] = {}
    for p in real.points:
        if not p.probe or "cpu_user_cores" not in p.probe:
            return None
        # CPU cores (seconds a second) over replies a second: seconds per reply.
        replies = sum(pop["achieved"] for pop in p.populations.values()) or p.result["achieved"]
        cpu = p.probe["cpu_user_cores"], p.probe["cpu_system_cores"]
        serve = Serve.of(*cpu, replies, _modelled_ns(costs))
        per.setdefault((p.label, p.result["offered"]), []).append(serve)
    out: dict[str, ServeCurve] = {}
    for (label, offered), serves in per.items():
        out.setdefault(label, {})[offered] = Serve(
            round(statistics.median(s.python_ns for s in serves)),
            round(statistics.median(s.kernel_ns for s in serves)),
        )
    return out


def probed_lateness(real: SweepResults) -> dict[str, LatenessCurve] | None:
    """Each configuration's wake-up lateness (p50, p99 in ns) at every load, by the real
    run's probe (the medians of the repeats), or None if a point has no probe figures.

    What the probe's thread waited for past its timer is what any thread woken in that
    server waits (:mod:`skqbench.probe`): the cores busy with the load generator and the
    kernel, and the GIL.  The model's one core charges the GIL's share again: a small
    part while that core is under half busy, as below the knees of the README's runs.
    """
    per: dict[tuple[str, float], list[tuple[float, float]]] = {}
    for p in real.points:
        if not p.probe or "wake_p99_ms" not in p.probe:
            return None
        late = p.probe["wake_p50_ms"], p.probe["wake_p99_ms"]
        per.setdefault((p.label, p.result["offered"]), []).append(late)
    out: dict[str, LatenessCurve] = {}
    for (label, offered), repeats in per.items():
        p50 = max(1, round(statistics.median(f[0] for f in repeats) * 1e6))
        p99 = max(p50, round(statistics.median(f[1] for f in repeats) * 1e6))
        out.setdefault(label, {})[offered] = (p50, p99)
    return out


def describe_serve(serve: dict[str, ServeCurve]) -> str:
    """Each configuration's Serve in us, Python + system calls, at its lowest and highest
    measured load."""
    return "; ".join(
        f"{label} "
        + " .. ".join(
            f"{x.python_ns / 1000:.0f}+{x.kernel_ns / 1000:.0f}"
            for x in dict.fromkeys((curve[min(curve)], curve[max(curve)]))
        )
        for label, curve in serve.items()
    )


def describe_lateness(lateness: dict[str, LatenessCurve]) -> str:
    """Each configuration's wake-up lateness p99 in ms, at its lowest and highest load."""
    return "; ".join(
        f"{label} {curve[min(curve)][1] / 1e6:.2f} .. {curve[max(curve)][1] / 1e6:.2f}"
        for label, curve in lateness.items()
    )


def kv_dist(real: SweepResults) -> str:
    """The key-value experiment's mix as a service distribution, ``kv:GET:PUT:NEXT``,
    from its store's calls timed here (KV_SAMPLES of each; NEXT: a 1,000-record SEEK's
    time beyond a GET's, per record).  A PUT writes what a client's would, so the store
    stays as the clients check it."""
    load = real.plan["load"]
    dataset = kvstore.Dataset(load["kv_keys"], load["kv_seed"])
    store = kvstore.Store(kvstore.load(dataset), dataset.keys)
    rng = random.Random(1)
    keys = [kvstore.key_for(rng.randrange(dataset.keys)) for _ in range(KV_SAMPLES)]
    values = {k: kvstore.value_for(k, kvstore.value_size(rng)) for k in keys}  # not timed
    try:
        get = _per_call(lambda k: store.get(k), keys)
        put = _per_call(lambda k: store.put(k, values[k]), keys)
        run = 1000
        seek = _per_call(lambda k: store.seek(k, run), keys[: KV_SAMPLES // 20])
    finally:
        store.close()
    return f"kv:{get}ns:{put}ns:{max(1, round((seek - get) / run))}ns"


def _per_call(call: Callable[[bytes], object], keys: list[bytes]) -> int:
    start = time.perf_counter_ns()
    for key in keys:
        call(key)
    return round((time.perf_counter_ns() - start) / len(keys))


def population_view(real: SweepResults, population: str) -> SweepResults:
    """A key-value experiment as one population's sweep: per configuration (labelled
    ``label (population)``) and background load, the medians of its repeats, with the
    background's achieved load as ``achieved``, so that a low-latency throughput is the
    highest background load at which this population's p99 meets the SLO, as the
    experiment's ``rt_low_latency_load`` is."""
    view = kvexp.median_view(real, population)
    load = kvexp.median_view(real, "bg") if population != "bg" else view
    points = [
        replace(
            p,
            label=_view_label(p.label, population),
            result={**p.result, "achieved": q.result["achieved"]},
        )
        for p, q in zip(view.points, load.points, strict=True)
    ]
    labels = [_view_label(label, population) for label in real.labels]
    return replace(view, labels=labels, points=points)


def by_population(real: SweepResults) -> SweepResults:
    """A key-value experiment's populations side by side (:func:`population_view`):
    latency-sensitive first, then background."""
    views = [population_view(real, pop) for pop in ("rt", "bg")]
    return replace(
        real,
        labels=[label for v in views for label in v.labels],
        points=[p for v in views for p in v.points],
    )


@dataclass
class LoadCheck:
    """One load the measured run did not saturate: both p99s and their ratio (>= 1)."""

    offered: float
    measured_p99_us: float
    simulated_p99_us: float | None  # None: the simulated run saturated before this load
    ratio: float  # max(sim/measured, measured/sim); inf if the simulation saturated
    # The measured repeats' own largest p99 over their smallest (1.0: one repeat).
    measured_spread: float = 1.0

    @property
    def ok(self) -> bool:
        return self.ratio <= P99_FACTOR


@dataclass
class Verdict:
    """One configuration against the targets."""

    label: str
    llt_measured: float
    llt_simulated: float
    loads: list[LoadCheck] = field(default_factory=list)

    @property
    def llt_error(self) -> float:
        """Relative error of the simulated low-latency throughput (0 when both are 0)."""
        if not self.llt_measured:
            return 0.0 if not self.llt_simulated else math.inf
        return abs(self.llt_simulated - self.llt_measured) / self.llt_measured

    @property
    def llt_ok(self) -> bool:
        return self.llt_error <= LLT_TOLERANCE

    @property
    def worst_p99_ratio(self) -> float:
        return max((c.ratio for c in self.loads), default=1.0)

    @property
    def p99_ok(self) -> bool:
        return all(c.ok for c in self.loads)

    @property
    def worst_spread(self) -> float:
        """The measured repeats' largest disagreement with each other, over these loads:
        a model cannot be held closer to a measurement than it is to itself."""
        return max((c.measured_spread for c in self.loads), default=1.0)

    @property
    def ok(self) -> bool:
        return self.llt_ok and self.p99_ok

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            llt_error=self.llt_error,
            llt_ok=self.llt_ok,
            worst_p99_ratio=self.worst_p99_ratio,
            p99_ok=self.p99_ok,
            worst_spread=self.worst_spread,
            ok=self.ok,
        )
        return out


def _series(res: SweepResults, label: str) -> list[Point]:
    return sorted((p for p in res.points if p.label == label), key=lambda p: p.result["offered"])


def _ratio(measured: float, simulated: float) -> float:
    if measured <= 0 or simulated <= 0 or math.isnan(simulated):
        return math.inf
    return max(simulated / measured, measured / simulated)


def verdict(
    real: SweepResults,
    sim: SweepResults,
    label: str,
    spreads: dict[tuple[str, float], float] | None = None,
) -> Verdict:
    """``label``'s measured series against its simulated one, under the measured SLO
    (with the measured repeats' spreads, :func:`repeat_spreads`, if given)."""
    measured, simulated = _series(real, label), _series(sim, label)
    by_load = {round(p.result["offered"]): p for p in simulated}
    checks = []
    for m in measured:
        if m.saturated:
            break
        s = by_load.get(round(m.result["offered"]))
        s_p99 = None if s is None or s.saturated else float(s.result["p99_us"])
        m_p99 = float(m.result["p99_us"])
        ratio = math.inf if s_p99 is None else _ratio(m_p99, s_p99)
        spread = (spreads or {}).get((label, m.result["offered"]), 1.0)
        checks.append(LoadCheck(m.result["offered"], m_p99, s_p99, ratio, spread))
    return Verdict(
        label,
        low_latency_throughput(measured, real.slo_us),
        low_latency_throughput(simulated, real.slo_us),
        checks,
    )


def compare(
    real: SweepResults, sim: SweepResults, spreads: dict[tuple[str, float], float] | None = None
) -> list[Verdict]:
    """Every measured configuration's verdict, in the measured run's order."""
    return [verdict(real, sim, label, spreads) for label in real.labels if label in sim.labels]


def repeat_spreads(real: SweepResults) -> dict[tuple[str, float], float]:
    """How far the measured run's own repeats of each point disagree: their largest p99
    over their smallest, by (label as compared, offered load); a key-value experiment's
    per population, under :func:`population_view`'s labels."""
    p99s: dict[tuple[str, float], list[float]] = {}
    for p in real.points:
        offered = p.result["offered"]
        if is_kv(real):
            for pop, result in p.populations.items():
                p99s.setdefault((_view_label(p.label, pop), offered), []).append(result["p99_us"])
        else:
            p99s.setdefault((p.label, offered), []).append(p.result["p99_us"])
    return {key: max(v) / min(v) if min(v) > 0 else math.inf for key, v in p99s.items()}


def _view_label(label: str, population: str) -> str:
    return f"{label} ({population})"


def write_validation(
    out_dir: str,
    real: SweepResults,
    sim: SweepResults,
    verdicts: list[Verdict],
    costs: Costs,
    cores: int,
    serve: dict[str, ServeCurve],
) -> list[str]:
    """``validate.json`` (both series, the costs, the verdicts) and one p99 figure per
    configuration (measured solid, simulated dashed); returns the files written."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, VALIDATE_FILE)
    doc = {
        "targets": {"llt_tolerance": LLT_TOLERANCE, "p99_factor": P99_FACTOR},
        "cores": cores,
        "costs_ns": asdict(costs),
        # By label, by offered load: the CPU per request each load was simulated with.
        "serve_ns": {
            label: {f"{load:g}": asdict(x) for load, x in curve.items()}
            for label, curve in serve.items()
        },
        "slo_us": real.slo_us,
        "measured": real.to_json(),
        "simulated": sim.to_json(),
        "verdicts": [v.to_json() for v in verdicts],
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=True)
    return [path, *(_plot(out_dir, real, sim, v) for v in verdicts)]


def _plot(out_dir: str, real: SweepResults, sim: SweepResults, v: Verdict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for res, label, style, name in (
        (real, v.label, "-", "measured"),
        (sim, v.label, "--", "simulated"),
    ):
        pts = _series(res, label)
        ax.plot(
            [p.result["offered"] for p in pts],
            [p.result["p99_us"] / 1000.0 for p in pts],
            style,
            marker="o",
            color="C0",
            label=name,
        )
    ax.axhline(real.slo_us / 1000.0, color="grey", linestyle=":", label="SLO")
    ax.set_yscale("log")
    log_ms_ticks(ax)
    ax.set_xlabel("offered load (requests/s)")
    ax.set_ylabel("p99 latency (ms)")
    mark = "meets" if v.ok else "misses"
    spread = ""
    if v.worst_spread > 1:
        spread = f"; measured repeats' p99 up to {v.worst_spread:.1f}x apart"
    ax.set_title(f"{v.label}: simulated {mark} the targets{spread}", fontsize=10)
    ax.legend()
    name = re.sub(r"[^a-z0-9]+", "-", v.label.lower()).strip("-")
    path = os.path.join(out_dir, f"validate-{name}.png")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
