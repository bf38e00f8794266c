"""SKQ's parallel wait (the core's "The SKQ wait"): what it locks, and what it never waits for."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from typing import cast

import pytest

import skqueue
from skqueue import EV_ADD, EVFILT_READ, kevent
from skqueue.knote import Knote
from skqueue.sched import Kevq
from skqueue.sched.kevq import OFFER_QUEUED, OFFER_REFUSED

PARALLEL = not getattr(sys, "_is_gil_enabled", lambda: True)()


def test_waits_take_the_kqueue_lock_only_where_the_interpreter_needs_it() -> None:
    """Two threads drain always-ready pipes; SKQUEUE_LOCK_TIMING counts the kqueue lock's
    outermost acquisitions.  Free-threaded: a wait with no changes takes none (the fd
    guards and kevq locks do the work).  Under the GIL: one per wait, held through it."""
    code = textwrap.dedent(
        """
        import json, os, threading
        import skqueue
        from skqueue import EV_ADD, EVFILT_READ, kevent

        pipes = [os.pipe() for _ in range(16)]
        for _, w in pipes:
            os.write(w, b"r")
        kq = skqueue.kqueue(sched="best", sargs=2)
        kq.control([kevent(r, EVFILT_READ, EV_ADD) for r, _ in pipes], 0)
        kq.control(None, 0)  # a first kevent() call (no wait here: no kevq for this thread)
        start = kq.stats()["lock"]["acquisitions"]
        counts = []

        def worker():
            n = waits = 0
            while n < 4000:
                n += len(kq.control(None, 8, 5))
                waits += 1
            counts.append((n, waits))

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        stats = kq.stats()
        print(json.dumps({
            "acquisitions": stats["lock"]["acquisitions"] - start,
            "events": sum(n for n, _ in counts),
            "waits": sum(w for _, w in counts),
            "alive": sum(t.is_alive() for t in threads),
        }))
        kq.close()
        """
    )
    env = {**os.environ, "SKQUEUE_LOCK_TIMING": "1"}
    env.pop("SKQUEUE_CHECK_LOCKS", None)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["alive"] == 0 and figures["events"] >= 8000
    # Each new thread's first wait joins under the lock (its kevq), and a wait with nothing
    # ready elects a leader under it; with always-ready pipes that is rare.
    if PARALLEL:
        assert figures["acquisitions"] < figures["events"] / 20, figures
    else:
        assert figures["acquisitions"] >= figures["waits"], figures


class _Stand:
    """A queued knote as Kevq sees it: its guard and the kevq it is queued on."""

    def __init__(self) -> None:
        self.guard = threading.RLock()
        self.kevq: Kevq | None = None


def _lock() -> threading.Lock:
    return cast(threading.Lock, threading.RLock())  # what the kqueue makes (new_lock)


def _stand() -> Knote:
    return cast(Knote, _Stand())


def _held_elsewhere(lock: object) -> tuple[threading.Event, threading.Event, threading.Thread]:
    """Hold lock in another thread until released; (holding, release, thread)."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with cast(threading.Lock, lock):
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(30)
    return holding, release, thread


@pytest.mark.timeout(60)
def test_a_thief_never_waits_for_a_busy_victim_or_a_busy_knote() -> None:
    victim, thief = Kevq(_lock()), Kevq(_lock())
    first, second = _stand(), _stand()
    for kn in (first, second):
        victim.push(kn, False)
    _, release, holder = _held_elsewhere(victim.lock)
    try:
        assert victim.give(thief, 2, True) == 0  # the victim's lock is busy: nothing
    finally:
        release.set()
        holder.join(30)
    _, release, holder = _held_elsewhere(second.guard)
    try:
        assert victim.give(thief, 2, True) == 1  # the second knote's guard is busy
    finally:
        release.set()
        holder.join(30)
    assert list(thief.normal) == [first] and first.kevq is thief
    assert list(victim.normal) == [second] and second.kevq is victim


def test_an_offer_is_turned_away_by_a_retiring_or_reserved_kevq() -> None:
    kevq = Kevq(_lock())
    kn = _stand()
    kevq.set_reserved(True)
    assert kevq.offer(kn, False) == OFFER_REFUSED  # normal events stay off it
    assert kevq.offer(kn, True) == OFFER_QUEUED and list(kevq.rt) == [kn]
    assert kevq.close_queues() == [kn]  # retiring: what was queued comes back
    assert kevq.offer(_stand(), True) == OFFER_REFUSED


def test_a_change_that_dequeues_a_taken_knote_wins() -> None:
    """take() leaves knotes marked queued; a change that removes one meanwhile (under
    its guard) clears kn.kevq, which tells the taker to skip it."""
    kevq = Kevq(_lock())
    kn = _stand()
    kevq.push(kn, False)
    (taken,) = kevq.take(8, 8)
    assert taken is kn and kn.kevq is kevq  # still marked: the taker settles it
    kevq.remove(kn)  # a change, which finds it gone from the deque already
    assert kn.kevq is None and not len(kevq)


@pytest.mark.timeout(60)
def test_close_waits_out_every_thread_inside_an_skq_wait() -> None:
    """A close() while threads block in and beside epoll_wait: each raises, and the
    backend's fds go only when the last is out (no fd left open, none closed early)."""
    r, w = os.pipe()
    kq = skqueue.kqueue(sched="best", sargs=2)
    kq.control([kevent(r, EVFILT_READ, EV_ADD)], 0)
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            kq.control(None, 1, 30)
        except BaseException as exc:  # the closed kqueue's ValueError, expected
            errors.append(exc)

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    core = kq._core
    assert core is not None and core.sched is not None
    sched = core.sched
    pause = threading.Event()
    for _ in range(3000):  # 30 s at most
        if sum(k.is_inside() for k in sched.kevqs) == 3:
            break
        pause.wait(0.01)
    epfd = kq.fileno()
    kq.close()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 3 and all(isinstance(e, ValueError) for e in errors)
    with pytest.raises(OSError):
        os.fstat(epfd)  # the epoll set was closed by the last thread out
    os.close(r)
    os.close(w)


@pytest.mark.timeout(60)
def test_per_thread_random_draws_from_each_threads_own_generator() -> None:
    """The free-threaded scheduler's generator: each thread draws from a generator of its
    own (a shared one would serialise placement), and choice/sample go through it."""
    from skqueue.sched.world import PerThreadRandom

    rng = PerThreadRandom()
    mine = rng._mine()
    seen: list[random.Random] = []
    other = threading.Thread(target=lambda: seen.append(rng._mine()))
    other.start()
    other.join(30)
    assert seen and seen[0] is not mine and rng._mine() is mine
    assert 0.0 <= rng.random() < 1.0 and rng.choice([7]) == 7
    assert sorted(rng.sample(range(5), 5)) == list(range(5))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sched", [0, skqueue.KQ_SCHED_BEST, skqueue.KQ_SCHED_CPU])
def test_placement_never_sees_a_reservation_half_changed(sched: int) -> None:
    """place() runs in threads with no lock while the kqueue lock's holder retunes
    KQTUNE_RTRESERVE and kevqs join and retire.  Every placement picks a kevq from one
    version of the pools: a realtime one the reserved pool read as non-empty and then
    as empty would choose from nothing (and lose the activation that raised)."""
    from skqueue.sched import Scheduler, Topology
    from skqueue.sched.world import PerThreadRandom

    scheduler = Scheduler(
        sched,
        2 if sched == skqueue.KQ_SCHED_BEST else 0,
        0,
        0,
        topology=Topology({0: 0}),
        clock=time.monotonic_ns,
        cpu_of=lambda kn: 0,
        rng=PerThreadRandom(),
    )
    fallback = Kevq(_lock())
    standing = [Kevq(_lock()) for _ in range(3)]
    for kevq in standing:
        scheduler.register(kevq)
    stop = threading.Event()
    failures: list[BaseException] = []
    placed = [0, 0]

    def placer(which: int) -> None:
        kn = _stand()
        try:
            while not stop.is_set():
                chosen = scheduler.place(kn, fallback, realtime=bool(placed[which] % 2))
                assert chosen is fallback or isinstance(chosen, Kevq)
                placed[which] += 1
        except BaseException as exc:  # reported below
            failures.append(exc)

    def tuner() -> None:
        extra = Kevq(_lock())
        try:
            while not stop.is_set():
                for n in (2, 0, 1, 0):
                    scheduler.set_reserve(n)
                scheduler.register(extra)
                scheduler.set_reserve(3)
                for kevq in list(scheduler.kevqs):
                    scheduler.retire(kevq)  # every kevq gone: placement falls back
                for kevq in (*standing, extra):
                    scheduler.register(kevq)
                scheduler.retire(extra)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=placer, args=(i,)) for i in range(2)]
    threads.append(threading.Thread(target=tuner))
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not failures, repr(failures[0])
    assert min(placed) > 1000
