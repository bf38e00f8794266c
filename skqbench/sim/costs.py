"""The costs of the event path, as simulation parameters, and how they were measured.

Every cost is virtual time in nanoseconds, spent on the CPU core named below.  The
defaults are what :func:`calibrate` measured on the development machine (2 vCPUs,
CPython, skqueue in pure Python; rounded, from its quieter runs: other jobs share the
machine and only ever add time); ``skqueue sim run --calibrate`` measures the machine
it runs on instead, and ``--cost NAME=US`` overrides one.  They are the costs of
*skqueue*, a Python library: a kernel kqueue's are one to two orders of magnitude
smaller, so for the paper's machine pass them with ``--cost``.

* ``harvest``: one ``kevent()`` wait that returns an event, on the worker's core.
  Measured: a classic skqueue kqueue with one ready level-triggered socket,
  ``kq.control(None, 1, 0)``.
* ``io``: reading one request and writing its reply (``recv`` + ``send`` of a frame),
  on the worker's core.  Measured: a socketpair, both directions.
* ``place``: one activation's placement, before the event is visible to a worker.
  Measured: :meth:`skqueue.sched.Scheduler.place` (best-of-2 over 4 kevqs).  Paid by
  every design (a classic kqueue's enqueue is no cheaper in skqueue).
* ``wakeup``: from waking a sleeping worker to that worker running.  Measured: half
  the round trip of two threads that notify each other's ``threading.Condition``.
* ``steal``: one steal that moves events, extra on the thief's core.  Measured:
  :meth:`skqueue.sched.Scheduler.steal_into` robbing one of 4 kevqs.
* ``lock``: the legacy single-lock kqueue holds its one lock this long per
  operation (each activation, each wait).  A guess, not a measurement: the time of a
  kevent() call (``harvest``), since a classic kevent() holds the kqueue lock all
  through; under contention the operations queue on it.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, cast

from skqueue.sched import Kevq, Scheduler, Topology

if TYPE_CHECKING:
    from skqueue.filters.base import Knote


@dataclass(frozen=True)
class Costs:
    """Event-path costs in ns; defaults measured by :func:`calibrate` (see the module)."""

    harvest: int = 8_000
    io: int = 3_000
    place: int = 2_500
    wakeup: int = 10_000
    steal: int = 1_000
    lock: int = 8_000

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_us(self, name: str, us: float) -> Costs:
        """This set with one cost replaced (given in microseconds)."""
        if name not in self.names():
            raise ValueError(f"unknown cost {name!r}; choose from {', '.join(self.names())}")
        return replace(self, **{name: round(us * 1000)})


def _best_ns(step: Callable[[], object], rounds: int = 7, calls: int = 2000) -> int:
    """The mean time of one call of step, in the least disturbed of rounds (as timeit:
    other jobs on the machine only ever add time)."""
    means = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls):
            step()
        means.append((time.perf_counter_ns() - start) / calls)
    return round(min(means))


class _Stand:
    """A knote stand-in for timing the scheduler: it reads group, sets kevq."""

    __slots__ = ("group", "kevq")

    def __init__(self) -> None:
        self.group = -1
        self.kevq: Kevq | None = None


def _scheduler(policy: tuple[int, int, int, int], kevqs: list[Kevq]) -> Scheduler:
    sched = Scheduler(
        *policy,
        topology=Topology({c: c for c in range(4)}),
        clock=time.monotonic_ns,
        cpu_of=lambda kn: 0,
        rng=random.Random(1),
    )
    for kevq in kevqs:
        sched.register(kevq)
    return sched


def _harvest_ns() -> int:
    import skqueue

    a, b = socket.socketpair()
    kq = skqueue.kqueue()
    try:
        kq.control([skqueue.kevent(a.fileno(), skqueue.EVFILT_READ, skqueue.EV_ADD)], 0)
        b.send(b"x")
        return _best_ns(lambda: kq.control(None, 1, 0))
    finally:
        kq.close()
        a.close()
        b.close()


def _io_ns() -> int:
    a, b = socket.socketpair()
    frame = bytes(24)
    try:

        def roundtrip() -> None:
            b.send(frame)
            a.recv(64)
            a.send(frame)
            b.recv(64)

        return _best_ns(roundtrip) // 2  # the server's half: one recv, one send
    finally:
        a.close()
        b.close()


def _place_ns() -> int:
    lock = threading.Lock()
    sched = _scheduler((4, 2, 0, 0), [Kevq(lock, c) for c in range(4)])
    stand = cast("Knote", _Stand())
    fallback = Kevq(lock)
    return _best_ns(lambda: sched.place(stand, fallback))


def _steal_ns() -> int:
    from skqueue import KQ_SCHED_FEAT_WS

    lock = threading.Lock()
    kevqs = [Kevq(lock, c) for c in range(4)]
    sched = _scheduler((0, 0, KQ_SCHED_FEAT_WS, 1), kevqs)
    thief, victim = kevqs[0], kevqs[1]
    stand = cast("Knote", _Stand())
    victim.push(stand, False)

    def steal_and_give_back() -> None:
        sched.steal_into(thief)
        victim.push(thief.normal.popleft(), False)

    return _best_ns(steal_and_give_back)


def _wakeup_ns(rounds: int = 5, trips: int = 1000) -> int:
    """Half a round trip of two threads that wake each other, least disturbed of rounds."""
    cond = threading.Condition()
    turn = [0]

    def other() -> None:
        with cond:
            for _ in range(rounds * trips):
                while turn[0] == 0:
                    cond.wait()
                turn[0] = 0
                cond.notify()

    thread = threading.Thread(target=other)
    thread.start()
    halves = []
    with cond:
        for _ in range(rounds):
            start = time.perf_counter_ns()
            for _ in range(trips):
                turn[0] = 1
                cond.notify()
                while turn[0] == 1:
                    cond.wait()
            halves.append((time.perf_counter_ns() - start) / trips / 2)
    thread.join()
    return round(min(halves))


def calibrate() -> Costs:
    """Measure the costs on this machine (about a second); ``lock`` is set to ``harvest``."""
    harvest = _harvest_ns()
    return Costs(
        harvest=harvest,
        io=_io_ns(),
        place=_place_ns(),
        wakeup=_wakeup_ns(),
        steal=_steal_ns(),
        lock=harvest,
    )
