"""Reserved workers (KQTUNE_RTRESERVE, ours): kevqs kept for EV_REALTIME events.

Real threads on a real SKQ kqueue, as in test_skq.py: every byte sent is counted once,
every event is counted by the thread that got it and by its kind, and every thread
and wait has a timeout that fails the test rather than hanging it.
"""

from __future__ import annotations

import errno
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import skqueue
from skqueue import (
    EV_ADD,
    EV_REALTIME,
    EVFILT_READ,
    FKQMULTI,
    FKQTUNE,
    KQ_SCHED_BEST,
    KQ_SCHED_FEAT_WS,
    KQ_SCHED_QUEUE,
    KQSCHED_MAKE,
    KQTUNE_MAKE,
    KQTUNE_RTRESERVE,
    kevent,
)
from skqueue.sched import RTRESERVE_MAX
from support import join_all, start_thread

POLICIES: dict[str, dict[str, Any]] = {
    "random": dict(sched=0),
    "best2": dict(sched=KQ_SCHED_BEST, sargs=2),
    "queue2": dict(sched=KQ_SCHED_QUEUE, sargs=2),
    "ws1": dict(sched=0, feat=KQ_SCHED_FEAT_WS, fargs=1),
    "best2+ws2": dict(sched=KQ_SCHED_BEST, sargs=2, feat=KQ_SCHED_FEAT_WS, fargs=2),
    "auto": dict(sched="auto"),
}


def reserve(kq: skqueue.kqueue, n: int) -> None:
    kq.ioctl(FKQTUNE, KQTUNE_MAKE(KQTUNE_RTRESERVE, n))


@contextmanager
def socketpairs(n: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    pairs = [socket.socketpair() for _ in range(n)]
    for reader, _ in pairs:
        reader.setblocking(False)
    try:
        yield pairs
    finally:
        for reader, writer in pairs:
            reader.close()
            writer.close()


def register(
    kq: skqueue.kqueue, pairs: list[tuple[socket.socket, socket.socket]], realtime: set[int]
) -> None:
    for i, (reader, _) in enumerate(pairs):
        flags = EV_ADD | (EV_REALTIME if i in realtime else 0)
        kq.control([kevent(reader, EVFILT_READ, flags, udata=i)], 0)


def kevqs(kq: skqueue.kqueue) -> list[dict[str, Any]]:
    stats: list[dict[str, Any]] = kq.stats()["kevqs"]
    return stats


def wait_for_kevqs(kq: skqueue.kqueue, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(kevqs(kq)) < n:
        assert time.monotonic() < deadline, f"only {len(kevqs(kq))} of {n} threads waited"
        time.sleep(0.005)


def reserved_names(kq: skqueue.kqueue) -> list[str]:
    return [k["thread_name"] for k in kevqs(kq) if k["reserved"]]


class Pool:
    """Worker threads that drain whatever they get, counting bytes and events."""

    def __init__(self, kq: skqueue.kqueue, pairs: list[tuple[socket.socket, socket.socket]]):
        self.kq = kq
        self.pairs = pairs
        self.lock = threading.Lock()
        self.consumed = Counter[int]()  # socket -> bytes
        self.events: dict[str, Counter[str]] = {}  # thread name -> kind -> events
        self.done = threading.Event()
        self.threads: list[threading.Thread] = []
        self.exits = 0.0  # chance that a thread exits holding an event (a replacement starts)

    def start(self, n: int) -> None:
        """n more workers, each registered (waiting once) before the next starts."""
        for _ in range(n):
            have = len(kevqs(self.kq))
            with self.lock:
                self.threads.append(start_thread(self.work, random.random()))
            wait_for_kevqs(self.kq, have + 1)

    def work(self, seed: float) -> None:
        rng = random.Random(seed)
        name = threading.current_thread().name
        with self.lock:
            mine = self.events.setdefault(name, Counter())
        while not self.done.is_set():
            for ev in self.kq.control(None, rng.randint(1, 4), 0.05):
                with self.lock:
                    mine["realtime" if ev.flags & EV_REALTIME else "normal"] += 1
                if rng.random() < self.exits:
                    with self.lock:
                        self.threads.append(start_thread(self.work, rng.random()))
                    return  # the unconsumed event is released and placed again
                try:
                    data = self.pairs[ev.udata][0].recv(65536)
                except BlockingIOError:
                    continue  # drained by whoever had it before
                with self.lock:
                    self.consumed[ev.udata] += len(data)

    def wait_consumed(self, sent: Counter[int], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if sum(self.consumed.values()) >= sum(sent.values()):
                    break
            time.sleep(0.01)
        with self.lock:
            assert self.consumed == sent, f"{sum(self.consumed.values())}/{sum(sent.values())}"

    def stop(self) -> None:
        self.done.set()
        with self.lock:
            threads = list(self.threads)
        join_all(threads, 10)


def send_random(
    pairs: list[tuple[socket.socket, socket.socket]], chunks: int, rng: random.Random
) -> Counter[int]:
    sent = Counter[int]()
    for _ in range(chunks):
        i = rng.randrange(len(pairs))
        pairs[i][1].send(b"b" * 16)
        sent[i] += 16
    return sent


# The tunable ----------------------------------------------------------------------------------
def test_rtreserve_is_validated_changeable_and_in_the_stats() -> None:
    with skqueue.kqueue(sched="random") as kq:
        assert kq.stats()["rtreserve"] == 0
        for bad in (RTRESERVE_MAX + 1, -1):  # -1 packs to the field's 0xFFFFFF
            with pytest.raises(OSError) as info:
                reserve(kq, bad)
            assert info.value.errno == errno.EINVAL
        assert kq.stats()["rtreserve"] == 0
        for n in (RTRESERVE_MAX, 3, 0, 2):
            reserve(kq, n)
            assert kq.stats()["rtreserve"] == n
        stats = kq.stats()
        assert (stats["reserved_kevqs"], stats["reserved_placements"]) == (0, 0)
    # A classic kqueue keeps it for FKQMULTI, which may come later.
    with skqueue.kqueue() as kq:
        reserve(kq, 1)
        assert kq.stats()["rtreserve"] == 1
        kq.ioctl(FKQMULTI, KQSCHED_MAKE(0, 0, 0, 0))
        kq.control(None, 1, 0)  # this thread's kevq: the only one, so not reserved
        assert (kq.stats()["rtreserve"], kq.stats()["reserved_kevqs"]) == (1, 0)


# Exactly once, and nothing normal on a reserved thread -----------------------------------------
@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", list(POLICIES))
def test_a_mix_is_consumed_once_and_reserved_threads_get_realtime_only(policy: str) -> None:
    rng = random.Random(policy)
    kq = skqueue.kqueue(**POLICIES[policy])
    with kq, socketpairs(64) as pairs:
        register(kq, pairs, realtime=set(range(0, 64, 2)))
        reserve(kq, 2)
        pool = Pool(kq, pairs)
        pool.start(5)
        reserved = reserved_names(kq)
        assert len(reserved) == 2
        sent = send_random(pairs, 4096, rng)
        pool.wait_consumed(sent)
        pool.stop()
        for name, counts in pool.events.items():
            if name in reserved:
                assert counts["normal"] == 0, f"reserved thread {name} got normal events: {counts}"
            elif not kq.stats()["feat"] and policy != "auto":  # auto may turn stealing on
                # Without stealing realtime events go to the reserved threads alone.
                assert counts["realtime"] == 0, f"unreserved {name} got realtime: {counts}"
        assert sum(pool.events[name]["realtime"] for name in reserved) > 0
        stats = kq.stats()
        assert stats["reserved_placements"] > 0 and stats["reserve_refused"] > 0


@pytest.mark.timeout(60)
# Not auto: it always steals, and an idle unreserved thief may take a realtime event.
@pytest.mark.parametrize("policy", ["random", "best2"])
def test_realtime_events_land_on_idle_reserved_threads(policy: str) -> None:
    kq = skqueue.kqueue(**POLICIES[policy])
    with kq, socketpairs(8) as pairs:
        register(kq, pairs, realtime={0, 1, 2, 3})
        reserve(kq, 2)
        pool = Pool(kq, pairs)
        pool.start(4)
        reserved = reserved_names(kq)
        sent = Counter[int]()
        for n in range(200):  # one event at a time: every thread is idle when it comes
            i = n % 8
            pairs[i][1].send(b"r")
            sent[i] += 1
            pool.wait_consumed(sent, timeout=10)
        pool.stop()
        on_reserved = sum(pool.events[name]["realtime"] for name in reserved)
        assert on_reserved == 100, pool.events
        assert sum(c["normal"] for name, c in pool.events.items() if name not in reserved) == 100


# A reserved thread that exits ------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_reserved_thread_exits_with_events_queued_and_nothing_is_lost() -> None:
    kq = skqueue.kqueue(sched="random")
    with kq, socketpairs(12) as pairs:
        register(kq, pairs, realtime=set(range(6)))
        reserve(kq, 1)
        took = threading.Event()
        release = threading.Event()
        held: list[int] = []

        def reserved_worker() -> None:
            held.extend(ev.udata for ev in kq.control(None, 1, 10))
            took.set()
            release.wait(30)  # ends holding its event, with more queued behind it

        first = start_thread(reserved_worker)
        wait_for_kevqs(kq, 1)
        pool = Pool(kq, pairs)
        pool.start(2)
        assert reserved_names(kq) == [first.name]
        pairs[0][1].send(b"a")
        assert took.wait(10) and held == [0]
        sent = Counter({0: 1})
        for i in range(1, 12):
            pairs[i][1].send(b"q" * 8)
            sent[i] += 8
        deadline = time.monotonic() + 10
        while True:  # the realtime events wait on the reserved thread's kevq
            (mine,) = [k for k in kevqs(kq) if k["thread_name"] == first.name]
            if mine["queued_realtime"] == 5:
                break
            assert time.monotonic() < deadline, mine
            time.sleep(0.005)
        with pool.lock:
            assert not any(pool.consumed[i] for i in range(6)), "a realtime event went elsewhere"
        release.set()
        join_all([first], 10)  # its kevq retires: what it held and had queued moves on
        pool.wait_consumed(sent, timeout=20)
        stats = kq.stats()
        pool.stop()
        assert stats["retired"]["kevqs"] == 1
        oldest = pool.threads[0].name
        assert [k["thread_name"] for k in stats["kevqs"] if k["reserved"]] == [oldest]


# More reserved than threads ----------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("threads", [1, 3])
def test_asking_for_more_reserved_kevqs_than_threads_keeps_one_for_normal_events(
    threads: int,
) -> None:
    kq = skqueue.kqueue(sched="best", sargs=2)
    with kq, socketpairs(16) as pairs:
        register(kq, pairs, realtime=set(range(8)))
        reserve(kq, 8)
        pool = Pool(kq, pairs)
        pool.start(threads)
        reserved = reserved_names(kq)
        assert len(reserved) == threads - 1
        sent = send_random(pairs, 1024, random.Random(threads))
        pool.wait_consumed(sent)
        pool.stop()
        (normal_thread,) = [name for name in pool.events if name not in reserved]
        total = sum(c["normal"] for c in pool.events.values())
        assert pool.events[normal_thread]["normal"] == total > 0


# Retuning while threads run -----------------------------------------------------------------------
@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", list(POLICIES))
def test_retuning_while_threads_run_loses_nothing_and_hangs_nothing(policy: str) -> None:
    rng = random.Random(policy)
    kq = skqueue.kqueue(**POLICIES[policy])
    with kq, socketpairs(128) as pairs:
        register(kq, pairs, realtime={i for i in range(128) if rng.random() < 0.3})
        pool = Pool(kq, pairs)
        pool.exits = 0.01
        pool.start(6)
        stop_tuning = threading.Event()
        retunes = [0]

        def tuner() -> None:
            trng = random.Random(2)
            while not stop_tuning.is_set():
                for n in (0, 2, 0, trng.choice((1, 3, 8))):
                    reserve(kq, n)
                    retunes[0] += 1
                    time.sleep(0.002)

        tune = start_thread(tuner)
        sent = send_random(pairs, 4096, rng)
        pool.wait_consumed(sent, timeout=20)
        stop_tuning.set()
        join_all([tune], 5)
        reserve(kq, 0)
        more = send_random(pairs, 256, rng)  # and it still works with the reservation gone
        pool.wait_consumed(sent + more)
        pool.stop()
        assert retunes[0] >= 4  # at least one whole 0 -> 2 -> 0 -> n round
