"""What a server process's own threads wait for, measured from inside it.

A latency-sensitive request is late either because the design queued it behind other
work (what scheduling can fix) or because the thread given it could not run: the
interpreter lock was held by another worker, or both cores were busy.  The
``WakeProbe`` measures the second kind directly: a thread of the server process sleeps
``period`` at a time and records how much later than asked it runs Python again.  Its
lateness is what any thread woken in that process pays before its first bytecode,
whatever the design.  Beside it, what the process cost: its CPU use (user and system
time per wall second, all its threads) and its threads' context switches per second, so
that a design's cost per request can be set against another's.

The probe is not free: each wake-up takes the interpreter lock from whichever thread
holds it.  At the default 200 wake-ups a second its cost was lost in the noise: an SKQ
kv server (best2+ws, one reserved worker) at 3,000 requests/s spent 142-178 us of CPU
per reply probed and 156-177 us unprobed (3 interleaved pairs of 4 s).

Figures are read and reset together (``read``), so a sweep reads them once before a
load point and once after, and the second read covers that point alone.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from skqbench.histogram import HIST_MAX_NS, new_histogram
from skqbench.osutil import precise_timer_slack

PERIOD_S = 0.005  # 200 wake-ups a second: p99 from about 200 samples per second


class WakeProbe:
    """A thread that measures its own wake-up lateness; start() once, stop() once."""

    def __init__(self, period_s: float = PERIOD_S) -> None:
        self._period_s = period_s
        self._lock = threading.Lock()
        self._hist = new_histogram()
        self._since = _now()
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
                self._hist.record_value(min(max(late, 1), HIST_MAX_NS))

    def read(self) -> dict[str, Any]:
        """Lateness percentiles (ms), CPU cores and context switches per second since the
        last read; resets."""
        now = _now()
        with self._lock:
            hist, self._hist = self._hist, new_histogram()
            since, self._since = self._since, now
        wall = now[0] - since[0]
        user, system, switches = (
            (b - a) / wall if wall > 0 else 0.0 for a, b in zip(since[1:], now[1:], strict=True)
        )
        return {
            "wake_samples": hist.get_total_count(),
            "wake_p50_ms": hist.get_value_at_percentile(50) / 1e6,
            "wake_p99_ms": hist.get_value_at_percentile(99) / 1e6,
            "wake_max_ms": hist.get_max_value() / 1e6,
            "cpu_cores": user + system,
            "cpu_user_cores": user,
            "cpu_system_cores": system,
            "switches_per_s": switches,
        }


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several processes' figures as one server's: the worst lateness, the sum of CPU."""
    if not parts:
        return {}
    out = {key: max(p[key] for p in parts) for key in parts[0] if key.startswith("wake_")}
    for key in ("wake_samples", *_SUMMED):
        out[key] = sum(p[key] for p in parts)
    return out


_SUMMED = ("cpu_cores", "cpu_user_cores", "cpu_system_cores", "switches_per_s")


def _now() -> tuple[float, float, float, int]:
    """Wall time, the process's user and system CPU seconds, its threads' context switches."""
    times = os.times()
    return time.monotonic(), times.user, times.system, _context_switches()


def _context_switches() -> int:
    """Voluntary and involuntary, summed over the process's live threads (Linux /proc)."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return total
