"""Every benchmark script runs end to end at a tiny size and writes its JSON.

Speed is not judged here (see the benchmarks themselves); this keeps them from rotting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("script", "args", "result", "keys"),
    [
        (
            "bench_kevent_vs_epoll.py",
            ["--pairs", "8", "--events", "2000", "--rounds", "1"],
            "kevent_vs_epoll",
            {"ratio", "per_event_us", "budget_us_at_target", "exact_syscalls_us"},
        ),
        ("bench_registrations.py", ["-n", "2000"], "registrations", set()),
        (
            "bench_skq_scaling.py",
            ["--duration", "0.1", "--pipes", "8", "--rounds", "1", "--threads", "1,2"],
            "skq_scaling",
            {"gil", "scaling", "placement", "lock_time"},
        ),
        ("bench_aio.py", ["--quick"], "bench_aio", set()),
        (
            "bench_kv_stores.py",
            ["--keys", "2000", "--seconds", "0.1", "--stores", "lmdb,sqlite"],
            "kv_stores",
            {"keys", "switch_us", "results"},
        ),
        (
            "bench_cache_cold.py",
            ["--connections", "8", "--trials", "200", "--rounds", "1"],
            "cache_cold",
            {"penalty_ns", "warm_ns", "rounds"},
        ),
        (
            "bench_asyncio.py",
            ["--connections", "2", "--messages", "50", "--rounds", "1"],
            "asyncio",
            {"ratio", "best"},
        ),
    ],
)
def test_benchmark_runs(
    tmp_path: Path, script: str, args: list[str], result: str, keys: set[str]
) -> None:
    env = {**os.environ, "SKQUEUE_RESULTS": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, script, *args],
        cwd=BENCHMARKS,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads((tmp_path / f"{result}.json").read_text())
    assert payload["benchmark"] == result
    assert keys <= payload.keys()
