"""SKQ placement policies, reserved workers and work stealing.

At every activation :meth:`Scheduler.place` picks one kevq: random, queue
affinity, CPU affinity, best-of-N by expected start time, a hybrid of an
affinity policy with best-of-N sampling, or ``auto`` (:mod:`.auto`), which
measures the workload and follows one of the others.  Time, activation CPUs, the
topology and randomness are what the scheduler was made with (see the package
docstring).

Threads: ``place``, ``steal_into`` and ``idle_thief`` run in many threads at once (an
SKQ wait on free-threaded CPython holds no kqueue lock, see the core's "The SKQ wait").
They read other kevqs' queue lengths and estimates without those kevqs' locks (a
heuristic may act on a figure a moment old), and the kevq list, the reservation's
pools (one pair) and the rule are replaced whole, never changed in place, so that a
reader sees one version of each; what must agree is read as one attribute.  A kevq
takes its own lock to queue or give up events (``Kevq.offer``, ``Kevq.give``).
``register``, ``retire``, ``set_reserve`` and ``stats`` run with the kqueue lock held;
auto's evidence is gathered under a lock of its own.  Counters written by several
threads (a kevq's placements and placing time) may miss an increment on free-threaded
CPython: they are statistics.

Reserved workers (KQTUNE_RTRESERVE = n, ours, after the reservation of
Perséphone's DARC): the first ``min(n, kevqs - 1)`` kevqs in registration order
take realtime events only.  The policy places a realtime activation among the
reserved kevqs and a normal one among the others, by its own rule each time; a
reserved kevq steals realtime events only.  Registration order because it is
stable: a thread that joins changes nothing (unless it lifts the keep-one cap),
a retune moves only the boundary, and a reserved kevq that retires is replaced
by the oldest unreserved one, so a pool's long-lived threads are the reserved
ones.  At least one kevq stays unreserved, so that normal events always have
somewhere to go.  A kevq that becomes reserved gives up its queued normal
events (:meth:`Scheduler.register`, :meth:`Scheduler.retire` and
:meth:`Scheduler.set_reserve` return them, for the caller to place again).
"""

from __future__ import annotations

import operator
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..constants import (
    KQ_SCHED_AUTO,
    KQ_SCHED_BEST,
    KQ_SCHED_CPU,
    KQ_SCHED_FEAT_WS,
    KQ_SCHED_QUEUE,
)
from ..tunables import tunables
from .auto import CHOICES, AutoPolicy
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
    KQ_SCHED_AUTO: "auto",
}
#: Friendly names accepted by ``skqueue.kqueue(sched=...)``.
POLICY_NAMES = {name: number for number, name in _NAMES.items()}
#: The most kevqs KQTUNE_RTRESERVE may ask for.
RTRESERVE_MAX = 1024


def check_reserve(n: int) -> int:
    """n as a KQTUNE_RTRESERVE value: ValueError unless 0 <= n <= RTRESERVE_MAX."""
    n = operator.index(n)
    if not 0 <= n <= RTRESERVE_MAX:
        raise ValueError(f"rtreserve must be in [0, {RTRESERVE_MAX}], got {n}")
    return n


class Scheduler:
    """The kevqs of a multi kqueue and the policy that places events on them."""

    # Slots: on free-threaded CPython a store into an instance dict takes the dict's
    # lock, and every placement stores its counters, in every thread.
    __slots__ = (
        "_auto_lock",
        "_clock",
        "_cpu_of",
        "_evidence",
        "_random",
        "_rule",
        "auto",
        "evicted",
        "fargs",
        "feat",
        "kevqs",
        "pools",
        "refused",
        "reserve",
        "reserved_placements",
        "retired",
        "sargs",
        "sched",
        "steal",
        "topology",
    )

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
        if sched == KQ_SCHED_AUTO and (sargs or feat):
            raise ValueError("auto picks its sample size and stealing: no sargs or feat")
        self.sched = sched
        self.sargs = sargs
        self.feat = feat
        self.fargs = max(1, fargs)
        # The rule place() follows: the configured one, or auto's current choice.
        self.auto = AutoPolicy() if sched == KQ_SCHED_AUTO else None
        # (kind, sample size, stealing): what place() follows, replaced as one.
        self._rule = (sched, sargs, bool(feat & KQ_SCHED_FEAT_WS))
        self.steal = self._rule[2]  # whether idle kevqs steal (the rule's, for readers)
        self._auto_lock = threading.Lock()
        if self.auto is not None:
            self._follow(self.auto.choice)
        self.kevqs: list[Kevq] = []
        # KQTUNE_RTRESERVE: the kevqs asked for, and the pools it splits kevqs into.
        self.reserve = 0
        # (the realtime pool, the normal pool), replaced as one: placement reads a pair
        # of one version, and the normal pool is never empty while the realtime one is
        # not.  An empty realtime pool: no reservation.
        self.pools: tuple[list[Kevq], list[Kevq]] = ([], [])
        self.reserved_placements = 0  # realtime activations placed on a reserved kevq
        self.refused = 0  # normal activations kept off the reserved kevqs
        self.evicted = 0  # normal events moved off a kevq that became reserved
        self.retired = RetiredKevqs()  # statistics of the kevqs whose thread left
        self.topology = topology
        self._clock = clock
        self._cpu_of = cpu_of
        self._random = rng
        # auto's evidence samples draw from a copy of the stream, not from it: placement
        # then makes the very draws the fixed policy auto follows would make, so the two
        # can be compared on the same randomness (in the simulator's grid, say).
        self._evidence = random.Random()
        self._evidence.setstate(rng.getstate())

    def _follow(self, choice: str) -> None:
        """Place future activations by auto's choice; queued events stay put."""
        self._rule = CHOICES[choice]
        self.steal = self._rule[2]

    @property
    def name(self) -> str:
        if self.auto is not None:
            return "auto"
        base = _NAMES[self.sched]
        if self.sched == KQ_SCHED_BEST or self.sargs:
            base += str(self.sargs)
        return base + (f"+ws{self.fargs}" if self.steal else "")

    # kevqs ---------------------------------------------------------------------------
    def register(self, kevq: Kevq) -> list[Knote]:
        """kevq takes part in placement and stealing from now on.

        Returns the normal events to place again (see :meth:`set_reserve`).
        """
        self.kevqs = [*self.kevqs, kevq]
        return self._reserve_kevqs()

    def retire(self, kevq: Kevq) -> list[Knote]:
        """kevq takes no more events; its counters join the retired sum.

        Returns the normal events to place again (see :meth:`set_reserve`).
        """
        if kevq not in self.kevqs:
            return []
        self.kevqs = [k for k in self.kevqs if k is not kevq]
        self.retired.add(kevq)
        return self._reserve_kevqs()

    def set_reserve(self, n: int) -> list[Knote]:
        """KQTUNE_RTRESERVE: keep n kevqs for realtime events (ValueError out of range).

        Returns the normal events that were queued on kevqs that are reserved now,
        taken off their queues: the caller places each again, as at a thread's exit.
        """
        self.reserve = check_reserve(n)
        return self._reserve_kevqs()

    def _reserve_kevqs(self) -> list[Knote]:
        """Mark the first min(reserve, kevqs - 1) kevqs reserved; evict their normal events."""
        kevqs = self.kevqs
        count = max(0, min(self.reserve, len(kevqs) - 1))
        self.pools = (kevqs[:count], kevqs[count:])
        evicted: list[Knote] = []
        for i, kevq in enumerate(kevqs):
            evicted.extend(kevq.set_reserved(i < count))
        self.evicted += len(evicted)
        return evicted

    # Placement ------------------------------------------------------------------------
    def place(self, kn: Knote, fallback: Kevq, realtime: bool = False) -> Kevq:
        """Choose the kevq for this activation of kn (fallback when nobody waits).

        realtime: kn is EV_REALTIME, which decides its pool under KQTUNE_RTRESERVE.
        """
        kevqs = self.kevqs
        if not kevqs:
            return fallback
        now = self._clock()
        kind, sargs, _ = rule = self._rule
        if kind == KQ_SCHED_QUEUE and kn.group < 0:
            # Bound at its first activation, whether or not there is a choice yet.
            kn.group = self.topology.group(self._cpu_of(kn))
        reserved, unreserved = self.pools
        if reserved:
            if realtime:
                kevqs = reserved
                self.reserved_placements += 1
            else:
                kevqs = unreserved
                self.refused += 1
        if len(kevqs) == 1:
            chosen = kevqs[0]
        elif kind == KQ_SCHED_BEST:
            chosen = self._best(self._sample(kevqs, sargs, self._random), now)[0]
        elif kind == SCHED_RANDOM:
            chosen = self._random.choice(kevqs)
        else:
            chosen = self._affine(kn, kevqs, now, rule)
        if self.auto is not None:
            with self._auto_lock:
                self._observe(self.auto, kn, kevqs, now)
        # Counted on the kevq, not here: every thread places, and a field of the
        # scheduler's that they all write would move between their cores at each.
        chosen.placements += 1
        chosen.place_ns += self._clock() - now
        return chosen

    @property
    def reserved(self) -> list[Kevq]:
        """The kevqs kept for realtime events (KQTUNE_RTRESERVE), oldest first."""
        return self.pools[0]

    @property
    def placements(self) -> int:
        """Activations placed so far."""
        return sum(k.placements for k in self.kevqs) + self.retired.placements

    @property
    def place_ns(self) -> int:
        """Time spent in place(), by the clock."""
        return sum(k.place_ns for k in self.kevqs) + self.retired.place_ns

    def _observe(self, auto: AutoPolicy, kn: Knote, kevqs: list[Kevq], now: int) -> None:
        """auto's evidence of one placement: would affinity hold, how unequal are queues."""
        sample = self._sample(kevqs, 2, self._evidence)
        best_start = self._best(sample, now)[1]
        group = self.topology.group(self._cpu_of(kn))
        local = [k for k in kevqs if k.group == group]
        holds = bool(local) and (
            self._best(local, now)[1] <= best_start + tunables.cache_penalty_ns
        )
        auto.observe(holds, abs(len(sample[0]) - len(sample[-1])))
        if auto.due() and auto.close_window(now, self.kevqs):
            self._follow(auto.choice)

    @staticmethod
    def _sample(kevqs: list[Kevq], n: int, rng: random.Random) -> list[Kevq]:
        size = len(kevqs)
        if n >= size:
            return kevqs
        if n == 2:  # the common best-of-2, without random.sample's overhead
            first = int(rng.random() * size)
            second = (first + 1 + int(rng.random() * (size - 1))) % size
            return [kevqs[first], kevqs[second]]
        return rng.sample(kevqs, n)

    @staticmethod
    def _best(candidates: list[Kevq], now_ns: int) -> tuple[Kevq, float]:
        """The candidate an event placed now would start soonest on, and when.

        ours: a kevq that has timed no event yet (a new thread) would look free however
        long its queue, and draw every placement it is sampled for; it is taken to be
        as slow per event as the slowest candidate instead.
        """
        unmeasured = 0.0
        for kevq in candidates:
            if kevq.avg_ns > unmeasured:
                unmeasured = kevq.avg_ns
        best = candidates[0]
        best_start = best.expected_start_ns(now_ns, unmeasured)
        for kevq in candidates[1:]:
            start = kevq.expected_start_ns(now_ns, unmeasured)
            if start < best_start:
                best, best_start = kevq, start
        return best, best_start

    def _affine(self, kn: Knote, kevqs: list[Kevq], now: int, rule: tuple[int, int, bool]) -> Kevq:
        """Queue or CPU affinity among kevqs, optionally hybrid with best-of-sargs sampling."""
        kind, sargs, _ = rule
        group = kn.group if kind == KQ_SCHED_QUEUE else self.topology.group(self._cpu_of(kn))
        local = [k for k in kevqs if k.group == group]
        if not local:
            chosen = self._random.choice(kevqs)
            chosen.fallbacks += 1
            return chosen
        chosen, chosen_start = self._best(local, now)
        if sargs:
            other, other_start = self._best(self._sample(kevqs, sargs, self._random), now)
            if other.group != group and other_start + tunables.cache_penalty_ns < chosen_start:
                other.mismatches += 1
                return other
        return chosen

    # Work stealing -------------------------------------------------------------------------
    def steal_into(self, thief: Kevq) -> bool:
        """Move up to fargs queued events from a random busy kevq to the thief.

        A reserved thief takes realtime events only; any other takes both kinds.  False
        also when the victim's lock is busy (``Kevq.give`` never waits for it).
        """
        if not self.steal:
            return False
        thief.steal_scans += 1
        normal_too = not thief.reserved
        victims = [k for k in self.kevqs if (k.rt or (normal_too and k.normal)) and k is not thief]
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
        taken = victim.give(thief, self.fargs, normal_too)
        thief.steals += taken
        return taken > 0

    def idle_thief(self, busy: Kevq) -> Kevq | None:
        """A sleeping kevq with nothing queued, to wake so it can steal from busy
        (a reserved one only if busy has realtime events queued)."""
        if not self.steal:
            return None
        for kevq in self.kevqs:
            if (
                kevq is not busy
                and kevq.sleeping
                and not len(kevq)
                and (busy.rt or not kevq.reserved)
            ):
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
            "reserved_kevqs": len(self.reserved),
            "reserved_placements": self.reserved_placements,
            "reserve_refused": self.refused,
            "reserve_evicted": self.evicted,
            "place_total_us": self.place_ns / 1e3,
            "place_avg_us": self.place_ns / 1e3 / (self.placements or 1),
            "topology": self.topology.describe(),
            **({} if self.auto is None else {"auto": self.auto.stats()}),
            "kevqs": [k.stats() for k in self.kevqs],
            "retired": self.retired.stats(),
        }
