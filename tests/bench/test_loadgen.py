"""The generator measures from the scheduled send time and does not hide queueing."""

from __future__ import annotations

import random

import pytest

from skqbench.loadgen import LoadGenerator, LoadSpec, interarrival
from skqbench.servers.base import ServerConfig
from skqbench.servers.harness import ServerProcess


@pytest.mark.timeout(60)
def test_fixed_delay_is_a_floor_and_an_overload_is_not_hidden() -> None:
    with ServerProcess(ServerConfig("asyncio", workers=2)) as server, LoadGenerator(2) as gen:
        # 2 workers x 5 ms = 400 requests/s capacity; 100/s is light load
        light = gen.run(
            LoadSpec(
                server.port, rate=100, duration_s=1.0, warmup_s=0.2, connections=8, dist="fixed:5ms"
            )
        )
        assert light.sent == light.received > 50
        assert light.errors == light.timeouts == 0
        assert light.p50_us >= 5000  # the service time is a floor, on any machine
        # Within the window, replies keep up with sends (a busy machine delays a few
        # across the window's end; an overload loses half, see below).
        assert light.achieved >= 0.8 * light.scheduled
        # 3x capacity: an open-loop generator keeps sending, so requests queue; a
        # closed-loop one would report ~5 ms.  Latency grows over the run.
        heavy = gen.run(
            LoadSpec(
                server.port,
                rate=1200,
                duration_s=1.0,
                warmup_s=0.0,
                drain_s=0.5,
                connections=8,
                dist="fixed:5ms",
                seed=2,
            )
        )
        assert heavy.achieved < 0.5 * heavy.scheduled
        assert heavy.p99_us > 50_000  # 10x the service time: queueing is measured
        assert heavy.timeouts > 0  # still queued after the drain, and counted
        # The same machine, the same run: light load's median is far below the overload's
        # (a generator measuring from the actual send would report ~5 ms for both).
        assert light.p50_us < heavy.p50_us / 4


def test_arrival_processes_have_the_asked_rate() -> None:
    for kind in ("poisson", "fixed", "pareto"):
        gap = interarrival(kind, 1000.0, random.Random(5))
        mean = sum(gap() for _ in range(50_000)) / 50_000
        assert mean == pytest.approx(1e6, rel=0.05), kind


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError):
        LoadSpec(1, rate=0)
    with pytest.raises(ValueError):
        LoadSpec(1, rate=10, arrival="bursty")
    with pytest.raises(ValueError):
        LoadSpec(1, rate=10, dist="fixed")
