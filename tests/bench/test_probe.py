"""The wake-up probe: figures that cover the time since the last read, in every design."""

from __future__ import annotations

import time

import pytest

from skqbench.probe import WakeProbe, merge
from skqbench.servers.base import ServerConfig
from skqbench.servers.harness import ServerProcess


def test_a_read_covers_the_time_since_the_last_one() -> None:
    probe = WakeProbe()
    probe.start()
    try:
        spin_until = time.monotonic() + 0.5
        while time.monotonic() < spin_until:  # this thread keeps a core busy
            pass
        first = probe.read()
        second = probe.read()
    finally:
        probe.stop()
    # 5 ms sleeps for 0.5 s: at most 100 wake-ups, and not far fewer
    assert 10 < first["wake_samples"] <= 100
    assert 0 < first["wake_p50_ms"] <= first["wake_p99_ms"] <= first["wake_max_ms"]
    assert first["cpu_user_cores"] > 0.3  # the spinning thread's
    assert first["cpu_cores"] == first["cpu_user_cores"] + first["cpu_system_cores"]
    assert first["switches_per_s"] >= first["wake_samples"] / 0.5 / 2  # the probe sleeps
    assert second["wake_samples"] <= 1  # reset by the first read


def test_stop_without_start_is_harmless() -> None:
    WakeProbe().stop()


def test_processes_merge_as_the_worst_lateness_and_the_sum_of_cpu() -> None:
    a = {"wake_samples": 10, "wake_p50_ms": 0.1, "wake_p99_ms": 3.0, "wake_max_ms": 4.0}
    b = {"wake_samples": 5, "wake_p50_ms": 0.2, "wake_p99_ms": 1.0, "wake_max_ms": 9.0}
    costs = ("cpu_cores", "cpu_user_cores", "cpu_system_cores", "switches_per_s")
    merged = merge([a | dict.fromkeys(costs, 0.5), b | dict.fromkeys(costs, 0.25)])
    assert merged == {
        "wake_samples": 15,
        "wake_p50_ms": 0.2,
        "wake_p99_ms": 3.0,
        "wake_max_ms": 9.0,
        **dict.fromkeys(costs, 0.75),
    }
    assert merge([]) == {}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("design", ["skq", "asyncio", "reuseport"])
def test_a_probing_server_reports_from_the_processes_that_serve(design: str) -> None:
    with ServerProcess(ServerConfig(design, 2, probe=True)) as server:
        start = time.monotonic()
        server.stats()
        time.sleep(0.3)
        probe = server.stats()["probe"]
        window = time.monotonic() - start  # the two reads happened within it
    # reuseport: its two serving processes' probes, not the idle parent's; at most one
    # wake-up per 5 ms of the window in each
    per_process = 2 if design == "reuseport" else 1
    assert 10 * per_process < probe["wake_samples"] <= (window / 0.005 + 1) * per_process


def test_without_the_flag_there_is_no_probe() -> None:
    with ServerProcess(ServerConfig("skq", 1)) as server:
        assert "probe" not in server.stats()
