"""Simulated latency-versus-load sweeps, in the real harness's results format.

The same rule as :func:`skqbench.sweep.run_sweep`: every configuration sees the same
offered loads in increasing order and stops at its first saturated point; the results
are a :class:`~skqbench.sweep.SweepResults`, saved as ``results.json``, so ``skqueue
bench report`` and :mod:`skqbench.report` draw them as they draw measured ones.  Each
point's result also carries the simulator's own figures (``sim_events``,
``sim_wall_s``) and the scheduler's statistics, with the per-kevq ones summed (see
:func:`kept_stats`).  The file is saved after every
configuration and every :data:`SAVE_EVERY_S`, not after every point: a save writes
every point so far, so saving per point grew quadratically (two of the three minutes
of a 471-point, 24-worker sweep).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from skqbench.loadgen import LoadResult
from skqbench.service import parse_dist
from skqbench.sweep import Point, Progress, SweepResults, saturation_reason
from skqueue.sched import COUNTER_STATS

from .engine import POPULATIONS, SimConfig, simulate

SAVE_EVERY_S = 10.0  # wall seconds between saves within one configuration


@dataclass(frozen=True)
class AtLoad:
    """A configuration's figures measured at one load (see :class:`SimConfig`)."""

    serve_ns: int = 0
    serve_kernel_ns: int = 0
    late_p50_ns: int = 0
    late_p99_ns: int = 0


@dataclass
class SimPlan:
    """What to simulate: configurations (their ``rate`` is set per point) x loads."""

    configs: list[SimConfig]
    rates: list[float]
    slo_factor: float = 20.0  # SLO = slo_factor x mean service time, unless slo_us is set
    slo_us: float = 0.0
    saturation: float = 0.95
    explode: float = 10.0
    # If set, every point measures about this many arrivals, whatever its rate: its
    # duration is requests / rate and its warm-up a quarter of that (as sim grid's).
    # Over loads a hundredfold apart, a fixed duration gives the lowest loads too few
    # requests for a p99 and the highest more than they need.
    requests: int = 0
    # What a configuration (by label) takes at one offered load instead of its own
    # figures: sim validate's, measured per load.
    at_load: dict[tuple[str, float], AtLoad] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.configs or not self.rates or any(r <= 0 for r in self.rates):
            raise ValueError("a simulation needs a configuration and positive rates")
        if self.requests < 0:
            raise ValueError("requests must not be negative")
        self.rates = sorted(self.rates)
        if not self.slo_us:
            self.slo_us = self.slo_factor * self.mean_service_us

    @property
    def mean_service_us(self) -> float:
        first = self.configs[0]
        return parse_dist(first.dist).mean_ns(first.connections) / 1000.0

    def point(self, template: SimConfig, rate: float) -> SimConfig:
        """One configuration at one offered load."""
        at = self.at_load.get((template.label, rate))
        if at is not None:
            template = replace(
                template,
                serve_ns=at.serve_ns,
                serve_kernel_ns=at.serve_kernel_ns,
                late_p50_ns=at.late_p50_ns,
                late_p99_ns=at.late_p99_ns,
            )
        if not self.requests:
            return replace(template, rate=rate)
        duration = self.requests / rate
        return replace(template, rate=rate, duration_s=duration, warmup_s=duration / 4)

    def describe(self) -> dict[str, Any]:
        """The plan as results.json keeps it (``load`` as the real harness names it;
        with ``requests``, each point's duration is in its own config)."""
        first = self.configs[0]
        per_point = self.requests > 0
        return {
            "simulated": True,
            "load": {
                "dist": first.dist,
                "connections": first.connections,
                "arrival": first.arrival,
                "duration_s": None if per_point else first.duration_s,
                "warmup_s": None if per_point else first.warmup_s,
                "requests": self.requests or None,
                "drain_s": first.drain_s,
                "seed": first.seed,
            },
            "rates": self.rates,
            "slo_us": self.slo_us,
            "saturation": self.saturation,
            "explode": self.explode,
            "cores": first.n_cores,
            "work": first.work,
            "costs_ns": asdict(first.costs),
        }


def kept_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """What results.json keeps of a point's statistics: every per-kevq counter summed,
    and each kevq's event count (its share of the work).  All of every kevq's fields,
    and the topology, made a 64-worker sweep's file 10 MB, nearly all of it there."""
    kevqs = stats["kevqs"]
    out = {k: v for k, v in stats.items() if k not in ("kevqs", "topology")}
    out["kevqs"] = {
        "count": len(kevqs),
        "totals": {name: sum(k[name] for k in kevqs) for name in COUNTER_STATS},
        "events": [k["events"] for k in kevqs],
    }
    return out


def _json(result: LoadResult) -> dict[str, Any]:
    out = result.to_json()
    del out["histogram"]  # the simulator keeps every latency, not a histogram
    return out


@dataclass
class Speed:
    """The simulator's own speed over a sweep."""

    events: int = 0
    wall_s: float = 0.0

    @property
    def per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s else 0.0


def run_sim(
    plan: SimPlan, out_dir: str, progress: Progress | None = None
) -> tuple[SweepResults, Speed]:
    """Simulate every configuration at increasing rates; Ctrl-C keeps what is done."""
    results = SweepResults(
        plan=plan.describe(),
        slo_us=plan.slo_us,
        mean_service_us=plan.mean_service_us,
        labels=[c.label for c in plan.configs],
    )
    speed = Speed()
    total = len(plan.configs) * len(plan.rates)
    done = 0
    t0 = saved = time.monotonic()
    try:
        for i, template in enumerate(plan.configs):
            done = i * len(plan.rates)
            for rate in plan.rates:
                if progress:
                    progress(f"{template.label} @ {rate:.0f}/s", done, total, None)
                cfg = plan.point(template, rate)
                outcome = simulate(cfg)
                # As the kv experiment's sweep: with a latency-sensitive population, the
                # result is the background's and each population's is kept beside it.
                pops = {p: _json(outcome.result(p)) for p in POPULATIONS} if cfg.rt_rate else {}
                res = outcome.result(POPULATIONS[0] if pops else "")
                why = saturation_reason(res, plan)
                rt = pops.get("rt")
                if rt and not why and rt["timeouts"]:
                    why = f"rt: {rt['timeouts']} unanswered"
                out = _json(res)
                out.update(
                    sim_events=outcome.events,
                    sim_wall_s=outcome.wall_s,
                    stats=kept_stats(outcome.stats),
                )
                config = asdict(cfg)
                del config["rate"]
                point = Point(template.label, config, out, bool(why), why, populations=pops)
                results.points.append(point)
                if time.monotonic() - saved > SAVE_EVERY_S:
                    results.save(out_dir)
                    saved = time.monotonic()
                speed.events += outcome.events
                speed.wall_s += outcome.wall_s
                done += 1
                if progress:
                    progress(template.label, done, total, point)
                if why:
                    break
            results.save(out_dir)
            saved = time.monotonic()
    except KeyboardInterrupt:
        results.interrupted = True
    finally:
        results.elapsed_s = round(time.monotonic() - t0, 1)
        results.save(out_dir)
    return results, speed
