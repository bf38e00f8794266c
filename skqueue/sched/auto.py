"""The ``auto`` policy (KQ_SCHED_AUTO, ours): measure the workload, pick a fixed policy.

:class:`AutoPolicy` holds the evidence and the choice; the :class:`~.policy.Scheduler`
feeds it at every placement and places by the fixed policy it has chosen.  Evidence,
all from what the scheduler already sees:

* ``holds``: how often affinity would hold, i.e. the activation CPU's kevq would
  start the event no later than a best-of-2 sample's best (plus the cache penalty);
* ``imbalance``: the queue-length difference between the two sampled kevqs, mean;
* ``cv``: service-time dispersion, the coefficient of variation of the time per
  event, pooled over the kevqs (each kevq's EWMA variance plus the spread of their
  averages);
* ``load``: the busy fraction, the kevqs' serving time over the window's time.

Every :data:`WINDOW` placements the figures give a verdict (:func:`verdict`); the
choice switches only after :data:`HOLD` windows in a row gave the same different
verdict, so evidence that alternates within that span never makes it flap.  A switch
changes how future activations are placed and whether idle kevqs steal; queued
events stay where they are, so nothing is lost or duplicated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..constants import KQ_SCHED_BEST, KQ_SCHED_CPU
from .kevq import Kevq

#: Placements per evidence window.
WINDOW = 256
#: Windows in a row that must agree before the choice switches.
HOLD = 3
#: Affinity holds this often (fraction of placements): CPU affinity.
HOLDS_AFFINITY = 0.97
#: Affinity holds this often, at low dispersion and load: the hybrid (affinity, or a
#: best-of-2 sample's best when it would start clearly earlier).
HOLDS_HYBRID = 0.85
CV_HYBRID = 1.0
LOAD_HYBRID = 0.3

#: The fixed policies auto picks among: name -> (sched, sargs, steal).  Every one
#: steals: on the full grid (``skqueue sim grid``, 48 points) best2 without stealing
#: beat best2+ws by at most 6 % (heavy tail, 2 workers, 95 %) and was up to 10.6x
#: worse elsewhere; best2+ws was never worse than 1.17x of the best.  The simulator's
#: only cache warmth is the measured cold cost (0.5 us for a request that changes
#: core), so affinity wins little there and is chosen only where it costs nothing:
#: when it holds almost always.
CHOICES: dict[str, tuple[int, int, bool]] = {
    "cpu+ws": (KQ_SCHED_CPU, 0, True),
    "cpu2+ws": (KQ_SCHED_CPU, 2, True),
    "best2+ws": (KQ_SCHED_BEST, 2, True),
}
#: Before the first verdict: the grid's most robust fixed policy.
START = "best2+ws"


def verdict(holds: float, cv: float, load: float) -> str:
    """The fixed policy a window's figures call for.

    Affinity only where it would rarely cost a later start than best-of-2 (the
    cache warmth it keeps is worth half a microsecond a request in the simulator).
    """
    if holds >= HOLDS_AFFINITY:
        return "cpu+ws"
    if holds >= HOLDS_HYBRID and cv < CV_HYBRID and load < LOAD_HYBRID:
        return "cpu2+ws"
    return "best2+ws"


class AutoPolicy:
    """The evidence of the current window, the pending verdict and the choice."""

    __slots__ = (
        "_busy0",
        "_held",
        "_holds",
        "_imbalance",
        "_pending",
        "_seen",
        "_start_ns",
        "choice",
        "reason",
        "switches",
        "windows",
    )

    def __init__(self) -> None:
        self.choice = START
        self.reason: dict[str, float] = {}
        self.switches = 0
        self.windows = 0
        self._pending = START
        self._held = 0
        self._start_ns: int | None = None
        self._busy0 = 0
        self._reset()

    def _reset(self) -> None:
        self._seen = 0
        self._holds = 0
        self._imbalance = 0

    def observe(self, holds: bool, imbalance: int) -> None:
        """One placement's evidence."""
        self._seen += 1
        self._holds += holds
        self._imbalance += imbalance

    def due(self) -> bool:
        return self._seen >= WINDOW

    def close_window(self, now_ns: int, kevqs: Sequence[Kevq]) -> bool:
        """End the window at now_ns; True if the choice switched."""
        busy = sum(k.busy_ns for k in kevqs)
        if self._start_ns is None or now_ns <= self._start_ns or not kevqs:
            load = 0.0  # the first window has no start time: no load figure yet
        else:
            load = min(1.0, (busy - self._busy0) / ((now_ns - self._start_ns) * len(kevqs)))
        self._start_ns, self._busy0 = now_ns, busy
        self.reason = {
            "holds": self._holds / self._seen,
            "imbalance": self._imbalance / self._seen,
            "cv": _dispersion(kevqs),
            "load": load,
        }
        self._reset()
        self.windows += 1
        wanted = verdict(self.reason["holds"], self.reason["cv"], load)
        if wanted == self.choice:
            self._pending, self._held = wanted, 0
            return False
        if wanted != self._pending:
            self._pending, self._held = wanted, 0
        self._held += 1
        if self._held < HOLD:
            return False
        self.choice, self._held = wanted, 0
        self.switches += 1
        return True

    def stats(self) -> dict[str, Any]:
        return {
            "choice": self.choice,
            "reason": dict(self.reason),
            "pending": self._pending,
            "pending_windows": self._held,
            "switches": self.switches,
            "windows": self.windows,
            "window": WINDOW,
            "hold": HOLD,
        }


def _dispersion(kevqs: Sequence[Kevq]) -> float:
    """Pooled CV of time per event: within-kevq EWMA variance plus between-kevq spread."""
    measured = [k for k in kevqs if k.avg_ns]
    if not measured:
        return 0.0
    n = len(measured)
    mean = sum(k.avg_ns for k in measured) / n
    within = sum(k.var_ns for k in measured) / n
    between = sum((k.avg_ns - mean) ** 2 for k in measured) / n
    return math.sqrt(within + between) / mean
