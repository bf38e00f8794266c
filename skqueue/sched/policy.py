"""SKQ placement policies and work stealing.

At every activation :meth:`Scheduler.place` picks one kevq: random, queue
affinity, CPU affinity, best-of-N by expected start time, or a hybrid of an
affinity policy with best-of-N sampling.  Time, activation CPUs, the topology and
randomness are what the scheduler was made with (see the package docstring).
All methods run with the kqueue lock held.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..constants import KQ_SCHED_BEST, KQ_SCHED_CPU, KQ_SCHED_FEAT_WS, KQ_SCHED_QUEUE
from ..tunables import tunables
from .kevq import Kevq, RetiredKevqs
from .topology import Topology

if TYPE_CHECKING:
    from ..knote import Knote

SCHED_RANDOM = 0
_NAMES = {
    SCHED_RANDOM: "random",
    KQ_SCHED_QUEUE: "queue",
    KQ_SCHED_CPU: "cpu",
    KQ_SCHED_BEST: "best",
}
#: Friendly names accepted by ``skqueue.kqueue(sched=...)``.
POLICY_NAMES = {name: number for number, name in _NAMES.items()}


class Scheduler:
    """The kevqs of a multi kqueue and the policy that places events on them."""

    def __init__(
        self,
        sched: int,
        sargs: int,
        feat: int,
        fargs: int,
        *,
        topology: Topology,
        clock: Callable[[], int],
        cpu_of: Callable[[Knote], int],
        rng: random.Random,
    ) -> None:
        # Checked here, not at the first activation: a bad sample size would
        # otherwise fail inside place(), half-way through some later kevent().
        sched, sargs, feat, fargs = (operator.index(v) for v in (sched, sargs, feat, fargs))
        if sargs < 0 or fargs < 0:
            raise ValueError(f"sargs {sargs} and fargs {fargs} must be >= 0")
        if sched not in _NAMES or feat & ~KQ_SCHED_FEAT_WS:
            raise ValueError(f"unknown scheduler {sched:#x} / feature {feat:#x}")
        if sched == KQ_SCHED_BEST and sargs < 1:
            raise ValueError("best-of-N needs sargs >= 1")
        self.sched = sched
        self.sargs = sargs
        self.feat = feat
        self.steal = bool(feat & KQ_SCHED_FEAT_WS)
        self.fargs = max(1, fargs)
        self.kevqs: list[Kevq] = []
        self.retired = RetiredKevqs()  # statistics of the kevqs whose thread left
        self.topology = topology
        self.place_ns = 0  # time spent in place(), by the clock
        self.placements = 0
        self._clock = clock
        self._cpu_of = cpu_of
        self._random = rng

    @property
    def name(self) -> str:
        base = _NAMES[self.sched]
        if self.sched == KQ_SCHED_BEST or self.sargs:
            base += str(self.sargs)
        return base + (f"+ws{self.fargs}" if self.steal else "")

    # kevqs ---------------------------------------------------------------------------
    def register(self, kevq: Kevq) -> None:
        """kevq takes part in placement and stealing from now on."""
        self.kevqs.append(kevq)

    def retire(self, kevq: Kevq) -> None:
        """kevq takes no more events; its counters join the retired sum."""
        if kevq in self.kevqs:
            self.kevqs.remove(kevq)
            self.retired.add(kevq)

    # Placement ------------------------------------------------------------------------
    def place(self, kn: Knote, fallback: Kevq) -> Kevq:
        """Choose the kevq for this activation of kn (fallback when nobody waits)."""
        kevqs = self.kevqs
        if not kevqs:
            return fallback
        now = self._clock()
        if self.sched == KQ_SCHED_QUEUE and kn.group < 0:
            # Bound at its first activation, whether or not there is a choice yet.
            kn.group = self.topology.group(self._cpu_of(kn))
        if len(kevqs) == 1:
            chosen = kevqs[0]
        elif self.sched == KQ_SCHED_BEST:
            chosen = self._best(self._sample(self.sargs), now)
        elif self.sched == SCHED_RANDOM:
            chosen = self._random.choice(kevqs)
        else:
            chosen = self._affine(kn, now)
        chosen.placements += 1
        self.placements += 1
        self.place_ns += self._clock() - now
        return chosen

    def _sample(self, n: int) -> list[Kevq]:
        kevqs = self.kevqs
        size = len(kevqs)
        if n >= size:
            return kevqs
        if n == 2:  # the common best-of-2, without random.sample's overhead
            first = int(self._random.random() * size)
            second = (first + 1 + int(self._random.random() * (size - 1))) % size
            return [kevqs[first], kevqs[second]]
        return self._random.sample(kevqs, n)

    @staticmethod
    def _best(candidates: list[Kevq], now_ns: int) -> Kevq:
        best = candidates[0]
        best_start = best.expected_start_ns(now_ns)
        for kevq in candidates[1:]:
            start = kevq.expected_start_ns(now_ns)
            if start < best_start:
                best, best_start = kevq, start
        return best

    def _affine(self, kn: Knote, now: int) -> Kevq:
        """Queue or CPU affinity, optionally hybrid with best-of-sargs sampling."""
        group = kn.group if self.sched == KQ_SCHED_QUEUE else self.topology.group(self._cpu_of(kn))
        local = [k for k in self.kevqs if k.group == group]
        if not local:
            chosen = self._random.choice(self.kevqs)
            chosen.fallbacks += 1
            return chosen
        chosen = self._best(local, now)
        if self.sargs:
            other = self._best(self._sample(self.sargs), now)
            penalty = tunables.cache_penalty_ns
            if other.group != group and (
                other.expected_start_ns(now) + penalty < chosen.expected_start_ns(now)
            ):
                other.mismatches += 1
                return other
        return chosen

    # Work stealing -------------------------------------------------------------------------
    def steal_into(self, thief: Kevq) -> bool:
        """Move up to fargs queued events from a random busy kevq to the thief."""
        if not self.steal:
            return False
        thief.steal_scans += 1
        victims = [k for k in self.kevqs if (k.normal or k.rt) and k is not thief]
        if not victims:
            return False
        if len(victims) > 1:
            # Probe steal_scan_factor random busy kevqs; rob the most loaded.
            probes = tunables.steal_scan_factor
            if probes < len(victims):
                victims = self._random.sample(victims, probes)
            victim = max(victims, key=len)
        else:
            victim = victims[0]
        taken = 0
        while taken < self.fargs and len(victim):
            realtime = bool(victim.rt)
            kn = victim.rt.popleft() if realtime else victim.normal.popleft()
            thief.push(kn, realtime)
            taken += 1
        thief.steals += taken
        return taken > 0

    def idle_thief(self, busy: Kevq) -> Kevq | None:
        """A sleeping kevq with nothing queued, to wake so it can steal from busy."""
        if not self.steal:
            return None
        for kevq in self.kevqs:
            if kevq is not busy and kevq.sleeping and not len(kevq):
                return kevq
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "sched": self.sched,
            "sargs": self.sargs,
            "feat": self.feat,
            "fargs": self.fargs,
            "placements": self.placements,
            "place_total_us": self.place_ns / 1e3,
            "place_avg_us": self.place_ns / 1e3 / (self.placements or 1),
            "topology": self.topology.describe(),
            "kevqs": [k.stats() for k in self.kevqs],
            "retired": self.retired.stats(),
        }
