from __future__ import annotations

import random
import time

import pytest

from skqbench.protocol import MAX_SERVICE_NS
from skqbench.service import (
    Classes,
    Exponential,
    Pareto,
    gil_max_stall_ns,
    make_work,
    parse_dist,
    parse_duration_ns,
)


def test_durations_parse_with_units() -> None:
    assert parse_duration_ns("150us") == 150_000
    assert parse_duration_ns("1.5ms") == 1_500_000
    assert parse_duration_ns("2s") == 2_000_000_000
    with pytest.raises(ValueError):
        parse_duration_ns("15 parsecs")


def test_class_mix_is_exact_and_reproducible() -> None:
    dist = parse_dist("classes:100us")
    assert isinstance(dist, Classes)
    mults = dist.connection_multipliers(100, random.Random(7))
    assert sorted(mults).count(1.0) == 95
    assert mults.count(5.0) == 4
    assert mults.count(20.0) == 1
    assert mults == dist.connection_multipliers(100, random.Random(7))
    assert dist.mean_ns(100) == pytest.approx(100_000 * 1.35)
    # 64 connections: every class still present, counts add up, mean follows the counts
    small = dist.connection_multipliers(64, random.Random(1))
    assert len(small) == 64 and small.count(20.0) == 1 and small.count(5.0) == 2
    assert dist.mean_ns(64) == pytest.approx(100_000 * (61 + 10 + 20) / 64)
    assert dist.sample_ns(random.Random(0), 20.0) == 2_000_000


def test_distributions_have_the_stated_means() -> None:
    rng = random.Random(3)
    exp = parse_dist("exp:200us")
    assert isinstance(exp, Exponential)
    samples = [exp.sample_ns(rng, 1.0) for _ in range(20_000)]
    assert sum(samples) / len(samples) == pytest.approx(200_000, rel=0.05)
    bi = parse_dist("bimodal:100us:1ms:0.1")
    samples = [bi.sample_ns(rng, 1.0) for _ in range(20_000)]
    assert set(samples) == {100_000, 1_000_000}
    assert sum(samples) / len(samples) == pytest.approx(bi.mean_ns(1), rel=0.05)


def test_a_pareto_service_is_heavy_tailed_with_its_stated_mean() -> None:
    dist = parse_dist("pareto:100us:2.5")  # finite variance: the sample mean settles
    assert isinstance(dist, Pareto)
    rng = random.Random(4)
    samples = sorted(dist.sample_ns(rng, 1.0) for _ in range(200_000))
    assert samples[0] >= 60_000  # the scale: 100 us x (2.5 - 1) / 2.5
    assert sum(samples) / len(samples) == pytest.approx(dist.mean_ns(1), rel=0.03)
    # P(X > x) = (scale / x) ** 2.5: the 99.9th percentile is 10 ** 1.2 x the scale.
    assert samples[int(0.999 * len(samples))] == pytest.approx(60_000 * 10**1.2, rel=0.1)
    capped = parse_dist("pareto:1s:1.01")  # a tail past what a frame carries: the cap
    assert max(capped.sample_ns(rng, 1.0) for _ in range(10_000)) == MAX_SERVICE_NS
    assert capped.mean_ns(1) < 1e9


@pytest.mark.parametrize(
    "spec",
    ["fixed", "fixed:1ms:2", "bimodal:1ms:2ms:1.5", "poisson:1ms", "pareto:1ms:1", "pareto:1ms"],
)
def test_bad_distributions_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError, match="bad service distribution"):
        parse_dist(spec)


def test_sleep_work_takes_the_asked_time() -> None:
    work = make_work("sleep")
    start = time.perf_counter_ns()
    for _ in range(20):
        work(2_000_000)
    mean = (time.perf_counter_ns() - start) / 20
    assert 1_800_000 < mean < 6_000_000  # a busy shared machine only ever makes it later


def test_sqlite_work_releases_the_gil() -> None:
    """While sqlite works, another thread keeps running Python (best of 3, in case the
    machine is busy); a call that holds the GIL (sorting a big list: >= 40 ms) stalls it
    for the whole call."""
    limit_ns = 20_000_000
    big = list(range(3_000_000, 0, -1))

    def holds_gil(ns: int) -> None:
        sorted(big)

    def sleeps(ns: int) -> None:  # releases the GIL: what the machine alone costs the probe
        time.sleep(ns / 1e9)

    assert gil_max_stall_ns(holds_gil, 0, calls=2) > limit_ns
    sqlite = make_work("sqlite")
    # A loaded machine delays the probe thread whoever holds the GIL; an interleaved
    # baseline of GIL-free sleeps of the same length takes that out.
    rounds = [
        (gil_max_stall_ns(sqlite, 2 * limit_ns), gil_max_stall_ns(sleeps, 2 * limit_ns))
        for _ in range(3)
    ]
    assert min(stall - baseline for stall, baseline in rounds) < limit_ns, rounds
