"""Latency-versus-load sweeps: raise the offered load until the server saturates.

For every configuration (design x policy x workers) a fresh server process is started,
and the same list of offered rates is applied in increasing order, so configurations
can be compared at identical offered loads.  A configuration stops at its first
saturated point (kept in the results): achieved throughput below ``saturation`` times
the scheduled rate, any timeout or error, or p99 above ``explode`` times the SLO.

With ``repeats`` > 1 (:func:`run_interleaved`) every configuration's server runs for the
whole sweep and each load is measured ``repeats`` times, the configurations taking turns
in an order rotated every round, so that drift on a shared machine hits all of them
alike; a configuration stops after the first load at which most of its repeats saturated.

Results go to ``results.json`` after every point, so an interrupted sweep (Ctrl-C) keeps
everything measured so far.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from skqbench.loadgen import LoadGenerator, LoadResult, LoadSpec
from skqbench.servers.base import ServerConfig
from skqbench.servers.harness import ServerProcess
from skqbench.service import parse_dist

RESULTS_FILE = "results.json"
FORMAT_VERSION = 1


@dataclass
class SweepPlan:
    """What to measure.  ``load`` is a template: its port and rate are set per point."""

    configs: list[ServerConfig]
    rates: list[float]
    load: LoadSpec
    processes: int = 1
    slo_factor: float = 20.0  # SLO = slo_factor x mean service time, unless slo_us is set
    slo_us: float = 0.0
    saturation: float = 0.95
    explode: float = 10.0
    settle_s: float = 0.2  # pause between points so one point's tail does not leak
    repeats: int = 1  # measurements of each point (run_interleaved)

    def __post_init__(self) -> None:
        if not self.configs or not self.rates:
            raise ValueError("a sweep needs at least one configuration and one rate")
        if self.repeats < 1:
            raise ValueError("repeats must be >= 1")
        if any(r <= 0 for r in self.rates):
            raise ValueError("rates must be positive")
        self.rates = sorted(self.rates)
        if not self.slo_us:
            self.slo_us = self.slo_factor * self.mean_service_us
        if self.slo_us <= 0 or not 0 < self.saturation <= 1 or self.explode < 1:
            raise ValueError("SLO must be positive, saturation in (0, 1], explode >= 1")

    @property
    def mean_service_us(self) -> float:
        return parse_dist(self.load.dist).mean_ns(self.load.connections) / 1000.0


@dataclass
class Point:
    """One measured point of one configuration."""

    label: str
    config: dict[str, Any]
    result: dict[str, Any]
    saturated: bool
    why: str
    repeat: int = 0  # which of the plan's repeats
    # Every population's result when the load has more than one (kv: "bg", "rt");
    # ``result`` is the first.
    populations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # With ``ServerConfig.probe``: the server's WakeProbe figures over this point alone.
    probe: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepResults:
    """Everything a report needs; serialised as ``results.json``."""

    plan: dict[str, Any]
    slo_us: float
    mean_service_us: float
    labels: list[str]
    points: list[Point] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    started: float = field(default_factory=time.time)
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["format"] = FORMAT_VERSION
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepResults:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"not a skqbench results file (format {data.get('format')!r})")
        fields = {k: v for k, v in data.items() if k != "format"}
        fields["points"] = [Point(**p) for p in data["points"]]
        return cls(**fields)

    def save(self, out_dir: str) -> str:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, RESULTS_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_json(), f, indent=1, allow_nan=True)
        os.replace(tmp, path)
        return path


def load_results(out_dir: str) -> SweepResults:
    """Read a ``results.json`` written by :func:`run_sweep`."""
    with open(os.path.join(out_dir, RESULTS_FILE)) as f:
        data: dict[str, Any] = json.load(f)
    return SweepResults.from_json(data)


class Limits(Protocol):
    """What decides that a point is saturated (a sweep's plan, or a simulated one)."""

    saturation: float
    explode: float
    slo_us: float


def saturation_reason(res: LoadResult, plan: Limits) -> str:
    """Why a point counts as saturated, or ``""`` if it does not."""
    if res.errors or res.timeouts:
        return f"{res.errors} errors, {res.timeouts} unanswered"
    if res.achieved < plan.saturation * res.scheduled:
        return f"achieved {res.achieved:.0f}/s < {plan.saturation:.0%} of {res.scheduled:.0f}/s"
    if math.isnan(res.p99_us) or res.p99_us > plan.explode * plan.slo_us:
        return f"p99 {res.p99_us:.0f} us > {plan.explode:g} x SLO"
    return ""


Progress = Callable[[str, int, int, "Point | None"], None]


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _handling(
    handler: Callable[[int, Any], None] | int, signums: tuple[int, ...]
) -> Iterator[None]:
    """``handler`` for ``signums`` inside the block, the previous handlers after it."""
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _uninterrupted() -> contextlib.AbstractContextManager[None]:
    """Cleanup after Ctrl-C or SIGTERM must finish, or processes and the results file are
    left half done."""
    return _handling(signal.SIG_IGN, STOP_SIGNALS)


def run_sweep(plan: SweepPlan, out_dir: str, progress: Progress | None = None) -> SweepResults:
    """Measure every configuration at increasing rates; Ctrl-C or SIGTERM ends it cleanly.

    ``progress(label, done, total, point)`` is called before each point (point None) and
    after it.  Returns the results, also saved in ``out_dir``.
    """
    results = SweepResults(
        plan=asdict(plan),
        slo_us=plan.slo_us,
        mean_service_us=plan.mean_service_us,
        labels=[c.label for c in plan.configs],
    )
    total = len(plan.configs) * len(plan.rates)
    t0 = time.monotonic()
    gen = LoadGenerator(plan.processes)
    try:
        # SIGTERM (kill, a service manager, a CI time limit) ends a sweep as Ctrl-C does.
        with _handling(_interrupt, (signal.SIGTERM,)):
            for i, cfg in enumerate(plan.configs):
                _sweep_one(plan, cfg, gen, results, out_dir, progress, i * len(plan.rates), total)
    except KeyboardInterrupt:
        results.interrupted = True
    finally:
        with _uninterrupted():
            gen.close()
            results.elapsed_s = round(time.monotonic() - t0, 1)
            results.save(out_dir)
    return results


def _sweep_one(
    plan: SweepPlan,
    cfg: ServerConfig,
    gen: LoadGenerator,
    results: SweepResults,
    out_dir: str,
    progress: Progress | None,
    done: int,
    total: int,
) -> None:
    """One configuration: its own server process, rates until saturation."""
    server = ServerProcess(cfg)
    try:
        port = server.start()
    except RuntimeError as exc:
        results.errors[cfg.label] = str(exc)
        results.save(out_dir)
        return
    try:
        for rate in plan.rates:
            if progress:
                progress(f"{cfg.label} @ {rate:.0f}/s", done, total, None)
            try:
                point = _measure(plan, cfg, gen, server, port, rate)
            except RuntimeError as exc:
                results.errors[cfg.label] = str(exc)
                break
            results.points.append(point)
            results.save(out_dir)
            done += 1
            if progress:
                progress(cfg.label, done, total, point)
            if point.saturated:
                break
            time.sleep(plan.settle_s)
    finally:
        with _uninterrupted():
            server.stop()


def _measure(
    plan: SweepPlan,
    cfg: ServerConfig,
    gen: LoadGenerator,
    server: ServerProcess,
    port: int,
    rate: float,
    repeat: int = 0,
) -> Point:
    """One point: saturated by its first population's figures or any population's losses.
    A probing server's figures are read (and so reset) before the load and after it."""
    if cfg.probe:
        server.stats()
    pops = gen.run_populations(replace(plan.load, port=port, rate=rate))
    probe = server.stats().get("probe", {}) if cfg.probe else {}
    (_, first), *others = pops.items()
    why = saturation_reason(first, plan) or next(
        (
            f"{name}: {r.errors} errors, {r.timeouts} unanswered"
            for name, r in others
            if r.errors or r.timeouts
        ),
        "",
    )
    return Point(
        cfg.label,
        asdict(cfg),
        first.to_json(),
        bool(why),
        why,
        repeat,
        {name: r.to_json() for name, r in pops.items()} if others else {},
        probe,
    )


def interleaved_order(n_configs: int, repeats: int) -> list[tuple[int, int]]:
    """(repeat, configuration index) in the order one load is measured: every round
    visits every configuration, each round starting one configuration later."""
    return [(r, (r + i) % n_configs) for r in range(repeats) for i in range(n_configs)]


def run_interleaved(
    plan: SweepPlan, out_dir: str, progress: Progress | None = None
) -> SweepResults:
    """Measure every configuration ``plan.repeats`` times at each rate, interleaved (see
    the module docstring); every server runs for the whole sweep.  As :func:`run_sweep`."""
    results = SweepResults(
        plan=asdict(plan),
        slo_us=plan.slo_us,
        mean_service_us=plan.mean_service_us,
        labels=[c.label for c in plan.configs],
    )
    total = len(plan.configs) * len(plan.rates) * plan.repeats
    t0 = time.monotonic()
    gen = LoadGenerator(plan.processes)
    servers: dict[int, tuple[ServerProcess, int]] = {}
    try:
        with _handling(_interrupt, (signal.SIGTERM,)):
            for i, cfg in enumerate(plan.configs):
                server = ServerProcess(cfg)
                try:
                    servers[i] = (server, server.start())
                except RuntimeError as exc:
                    results.errors[cfg.label] = str(exc)
            results.save(out_dir)
            done = 0
            for rate in plan.rates:
                saturated: dict[int, int] = {}
                for repeat, i in interleaved_order(len(plan.configs), plan.repeats):
                    cfg = plan.configs[i]
                    if i not in servers:
                        continue
                    if progress:
                        progress(f"{cfg.label} @ {rate:.0f}/s #{repeat + 1}", done, total, None)
                    try:
                        point = _measure(plan, cfg, gen, *servers[i], rate, repeat)
                    except RuntimeError as exc:
                        results.errors[cfg.label] = str(exc)
                        with _uninterrupted():
                            servers.pop(i)[0].stop()
                        continue
                    results.points.append(point)
                    results.save(out_dir)
                    saturated[i] = saturated.get(i, 0) + point.saturated
                    done += 1
                    if progress:
                        progress(cfg.label, done, total, point)
                    time.sleep(plan.settle_s)
                for i, count in saturated.items():
                    if 2 * count > plan.repeats and i in servers:
                        with _uninterrupted():
                            servers.pop(i)[0].stop()
    except KeyboardInterrupt:
        results.interrupted = True
    finally:
        with _uninterrupted():
            for server, _ in servers.values():
                server.stop()
            gen.close()
            results.elapsed_s = round(time.monotonic() - t0, 1)
            results.save(out_dir)
    return results
