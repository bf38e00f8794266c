"""Scheduler pieces: FREQ cap, best-of-N estimate, queue binding, tunables, topology."""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import pytest

import skqueue
from skqueue import EV_ADD, EVFILT_READ, FKQTUNE, KQTUNE_FREQ, KQTUNE_MAKE, kevent
from skqueue.sched import Kevq, Scheduler, Topology
from skqueue.sched.world import read_topology


@pytest.mark.timeout(30)
def test_freq_caps_batch_to_what_the_thread_can_finish() -> None:
    pairs = [socket.socketpair() for _ in range(8)]
    kq = skqueue.kqueue(sched="random")
    try:
        for reader, writer in pairs:
            kq.control([kevent(reader, EVFILT_READ, EV_ADD)], 0)
            writer.send(b"f")
        kq.ioctl(FKQTUNE, KQTUNE_MAKE(KQTUNE_FREQ, 40))  # 40 events/s per thread
        assert len(kq.control(None, 8, 1)) == 8  # no time-per-event estimate yet
        time.sleep(0.08)  # ~10 ms per event -> at 40/s: int(2.5) = 2 per wait
        assert len(kq.control(None, 8, 1)) == 2
        time.sleep(0.02)
        assert len(kq.control(None, 8, 1)) == 2
        kq.ioctl(FKQTUNE, KQTUNE_MAKE(KQTUNE_FREQ, 0))  # off again
        assert len(kq.control(None, 8, 1)) == 8
    finally:
        kq.close()
        for reader, writer in pairs:
            reader.close()
            writer.close()


def test_best_of_n_uses_expected_start_not_queue_length() -> None:
    lock = threading.Lock()
    now = time.monotonic_ns()
    slow, fast = Kevq(lock), Kevq(lock)
    # slow: one queued event, but each event takes 1 ms and it just took 10.
    slow.avg_ns, slow.last_return_ns, slow.n_last = 1e6, now, 10
    slow.normal.append(object())  # type: ignore[arg-type]
    # fast: three queued events of 1 us each, idle otherwise.
    fast.avg_ns, fast.last_return_ns, fast.n_last = 1e3, now, 0
    fast.normal.extend([object(), object(), object()])  # type: ignore[list-item]
    assert len(fast) > len(slow)
    assert fast.expected_start_ns(now) < slow.expected_start_ns(now)
    scheduler = Scheduler(
        skqueue.KQ_SCHED_BEST,
        2,
        0,
        0,
        topology=Topology({0: 0}),
        clock=lambda: now,
        cpu_of=lambda kn: 0,
        rng=random.Random(),
    )
    scheduler.register(slow)
    scheduler.register(fast)

    class FakeKnote:
        group = -1

    for _ in range(20):
        assert scheduler.place(FakeKnote(), Kevq(lock)) is fast  # type: ignore[arg-type]


@pytest.mark.timeout(30)
def test_queue_affinity_binds_at_first_activation() -> None:
    reader, writer = socket.socketpair()
    kq = skqueue.kqueue(sched="queue")
    try:
        kq.control([kevent(reader, EVFILT_READ, EV_ADD)], 0)
        assert kq._core is not None
        with kq._core.lock:
            knote = kq._core.knotes[(reader.fileno(), EVFILT_READ)]
        assert knote.group == -1
        writer.send(b"1")
        assert len(kq.control(None, 1, 1)) == 1
        group = knote.group
        with kq._core.lock:
            assert group in kq._core.sched.topology.groups  # type: ignore[union-attr]
        reader.recv(1)
        for _ in range(3):
            writer.send(b"n")
            assert len(kq.control(None, 1, 1)) == 1
            reader.recv(1)
            assert knote.group == group
    finally:
        kq.close()
        reader.close()
        writer.close()


def test_tunables_are_validated() -> None:
    tunables = skqueue.tunables
    old = tunables.cache_penalty_ns
    try:
        tunables.cache_penalty_ns = 2500
        assert tunables.cache_penalty_ns == 2500
        assert tunables.as_dict()["cache_penalty_ns"] == 2500
        with pytest.raises(ValueError, match="steal_scan_factor"):
            tunables.steal_scan_factor = 0
        with pytest.raises(TypeError):
            tunables.set("cache_penalty_ns", "fast")  # type: ignore[arg-type]
        with pytest.raises(AttributeError):
            tunables.set("no_such_knob", 1)
    finally:
        tunables.cache_penalty_ns = old


def test_topology_groups_smt_siblings(tmp_path: Path) -> None:
    (tmp_path / "online").write_text("0-3\n")
    for cpu, siblings in {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}.items():
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "thread_siblings_list").write_text(siblings + "\n")
        cache = tmp_path / f"cpu{cpu}" / "cache" / "index3"
        cache.mkdir(parents=True)
        (cache / "level").write_text("3\n")
        (cache / "shared_cpu_list").write_text("0-3\n")
    topology = read_topology(tmp_path)
    assert topology.group(2) == 0
    assert topology.group(3) == 1
    assert topology.groups == [0, 1]
    assert topology.llc_of[3] == 0


def test_stats_are_json_ready() -> None:
    import json

    with skqueue.kqueue(sched="best", sargs=2, steal=1) as kq:
        kq.control(None, 1, 0)
        stats = json.loads(json.dumps(kq.stats()))
        assert stats["policy"] == "best2+ws1"
        [kevq] = stats["kevqs"]
        assert kevq["thread_name"] == threading.current_thread().name
        for key in (
            "events",
            "waits",
            "avg_event_us",
            "avg_events_per_wait",
            "realtime",
            "steals",
            "steal_scans",
            "fallbacks",
            "mismatches",
            "placements",
            "queued",
            "cpu_group",
            "thread_id",
        ):
            assert key in kevq
        assert "place_total_us" in stats
