"""Measure the event path's costs (:class:`~.costs.Costs`) on the machine this runs on.

Each cost is timed on the real code it stands for (see :mod:`.costs`), as the mean of
many calls in the least disturbed of several rounds; ``lock`` is a guess: ``harvest``.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable

from skqueue.sched import Kevq, Scheduler, Topology

from .costs import Costs
from .engine import Conn, as_knote


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
    stand = as_knote(Conn(0, 1.0, 0, False, 0))
    fallback = Kevq(lock)
    return _best_ns(lambda: sched.place(stand, fallback))


def _steal_ns() -> int:
    from skqueue import KQ_SCHED_FEAT_WS

    lock = threading.Lock()
    kevqs = [Kevq(lock, c) for c in range(4)]
    sched = _scheduler((0, 0, KQ_SCHED_FEAT_WS, 1), kevqs)
    thief, victim = kevqs[0], kevqs[1]
    stand = as_knote(Conn(0, 1.0, 0, False, 0))
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
    """Measure the costs on this machine (about a second); ``lock`` is set to ``harvest``
    and ``cold`` keeps its default (``benchmarks/bench_cache_cold.py`` measures it)."""
    harvest = _harvest_ns()
    return Costs(
        harvest=harvest,
        io=_io_ns(),
        place=_place_ns(),
        wakeup=_wakeup_ns(),
        steal=_steal_ns(),
        lock=harvest,
    )
