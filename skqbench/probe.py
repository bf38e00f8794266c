"""What a server process's own threads wait for, measured from inside it.

A latency-sensitive request is late either because the design queued it behind other
work (what scheduling can fix) or because the thread given it could not run: the
interpreter lock was held by another worker, or both cores were busy.  The
``WakeProbe`` measures the second kind directly: a thread of the server process sleeps
``period`` at a time and records how much later than asked it runs Python again.  Its
lateness is what any thread woken in that process pays before its first bytecode,
whatever the design.  Beside it, the process's CPU use (user + system time per wall
second, all its threads) says how busy the process kept the cores.

Figures are read and reset together (``read``), so a sweep reads them once before a
load point and once after, and the second read covers that point alone.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from skqbench.osutil import precise_timer_slack

PERIOD_S = 0.001  # 1,000 wake-ups a second: a few ms of GIL time per second at most
_MAX_NS = 10 * 1_000_000_000


class WakeProbe:
    """A thread that measures its own wake-up lateness; start() once, stop() once."""

    def __init__(self, period_s: float = PERIOD_S) -> None:
        from hdrh.histogram import HdrHistogram  # the bench extra, as the load generator

        self._period_s = period_s
        self._lock = threading.Lock()
        self._hist = HdrHistogram(1, _MAX_NS, 3)
        self._since = (time.monotonic(), _cpu_s())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wake-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        precise_timer_slack()
        period_ns = int(self._period_s * 1e9)
        while not self._stop.is_set():
            t0 = time.monotonic_ns()
            time.sleep(self._period_s)
            late = time.monotonic_ns() - t0 - period_ns
            with self._lock:
                self._hist.record_value(min(max(late, 1), _MAX_NS))

    def read(self) -> dict[str, Any]:
        """Lateness percentiles (ms) and CPU cores used since the last read; resets."""
        now = (time.monotonic(), _cpu_s())
        with self._lock:
            hist, self._hist = self._hist, self._hist.__class__(1, _MAX_NS, 3)
            (wall0, cpu0), self._since = self._since, now
        wall = now[0] - wall0
        return {
            "wake_samples": hist.get_total_count(),
            "wake_p50_ms": hist.get_value_at_percentile(50) / 1e6,
            "wake_p99_ms": hist.get_value_at_percentile(99) / 1e6,
            "wake_max_ms": hist.get_max_value() / 1e6,
            "cpu_cores": (now[1] - cpu0) / wall if wall > 0 else 0.0,
        }


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several processes' figures as one server's: the worst lateness, the sum of CPU."""
    if not parts:
        return {}
    out = {key: max(p[key] for p in parts) for key in parts[0] if key.startswith("wake_")}
    out["wake_samples"] = sum(p["wake_samples"] for p in parts)
    out["cpu_cores"] = sum(p["cpu_cores"] for p in parts)
    return out


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system
