"""Hardening of the core (issue 10): what a first-time user's mistakes must not break.

kevent fields are checked where the kevent is made, as select.kevent checks them; a
changelist with a bad entry is refused whole; a registration that fails part-way
leaves nothing behind; close() frees every fd whatever a filter does; any kevent()
call fixes the SKQ mode; the statistics of threads that left stay bounded.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import skqueue
from skqueue import kevent
from skqueue.constants import (
    EV_ADD,
    EV_ONESHOT,
    EVFILT_READ,
    EVFILT_TIMER,
    EVFILT_USER,
    EVFILT_WRITE,
    FKQMULTI,
    KQ_SCHED_BEST,
    KQSCHED_MAKE,
    NOTE_TRIGGER,
)
from skqueue.filters import fd as fd_filter
from skqueue.filters import user as user_filter
from support import join_all, open_fds, start_thread

_THREAD_TIMEOUT = 30.0  # generous: the machine is shared; a hang fails, it does not block


# 4. kevent validation -------------------------------------------------------------------
@pytest.mark.parametrize("position", range(5))
@pytest.mark.parametrize("bad", [1.5, "3", None])
def test_kevent_refuses_non_integer_fields(position: int, bad: object) -> None:
    fields: list[Any] = [0, EVFILT_READ, EV_ADD, 0, 0]
    fields[position] = bad
    with pytest.raises(TypeError):
        kevent(*fields)


@pytest.mark.parametrize(
    ("position", "value"),
    [(0, -1), (0, 1 << 64), (1, 1 << 15), (1, -(1 << 15) - 1), (4, 1 << 63), (4, -(1 << 63) - 1)],
)
def test_kevent_refuses_out_of_range_fields(position: int, value: int) -> None:
    fields = [0, EVFILT_READ, EV_ADD, 0, 0]
    fields[position] = value
    with pytest.raises(OverflowError):
        kevent(*fields)


def test_kevent_takes_the_limits_and_masks_flags_like_select_kevent() -> None:
    top = kevent((1 << 64) - 1, (1 << 15) - 1, 0xFFFF, 0xFFFFFFFF, (1 << 63) - 1)
    assert (top.ident, top.filter, top.flags, top.fflags, top.data) == (
        (1 << 64) - 1,
        (1 << 15) - 1,
        0xFFFF,
        0xFFFFFFFF,
        (1 << 63) - 1,
    )
    bottom = kevent(0, -(1 << 15), 0, 0, -(1 << 63))
    assert (bottom.filter, bottom.data) == (-(1 << 15), -(1 << 63))
    # select.kevent converts flags with "H" and fflags with "I": low bits, no error.
    wide = kevent(0, EVFILT_USER, (1 << 16) | EV_ADD, (1 << 32) | NOTE_TRIGGER)
    assert (wide.flags, wide.fflags) == (EV_ADD, NOTE_TRIGGER)


def test_kevent_ident_from_fileno(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    assert kevent(a).ident == a.fileno()

    class Negative:
        def fileno(self) -> int:
            return -1

    class NotAnInt:
        def fileno(self) -> str:
            return "5"

    with pytest.raises(ValueError):
        kevent(Negative())
    with pytest.raises(TypeError):
        kevent(NotAnInt())


def test_changelist_with_a_bad_entry_is_refused_whole(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    good = kevent(a, EVFILT_READ, EV_ADD)
    mutated = kevent(a, EVFILT_WRITE, EV_ADD)
    mutated.fflags = 1.5  # type: ignore[assignment]  # writable, as in select.kevent
    with skqueue.kqueue() as kq:
        with pytest.raises(TypeError):
            kq.control([good, mutated], 0)
        with pytest.raises(TypeError):
            kq.control([good, "not a kevent"], 0)  # type: ignore[list-item]
        assert kq.stats()["knotes"] == 0, "the good change ahead of the bad one was applied"
        mutated.fflags = 0
        kq.control([good, mutated], 0)
        assert kq.stats()["knotes"] == 2


def test_failed_attach_leaves_nothing_behind(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    real = fd_filter.FdWatch.update_mode
    calls = []

    def fail_once(watch: fd_filter.FdWatch) -> None:
        calls.append(watch)
        if len(calls) == 1:
            raise RuntimeError("injected failure inside attach")
        real(watch)

    monkeypatch.setattr(fd_filter.FdWatch, "update_mode", fail_once)
    with skqueue.kqueue() as kq:
        with pytest.raises(RuntimeError):
            kq.control([kevent(a, EVFILT_READ, EV_ADD, udata="orphan")], 0)
        assert kq.stats()["knotes"] == 0
        kq.control([kevent(a, EVFILT_WRITE, EV_ADD, udata="write")], 0)
        b.send(b"x")
        events = kq.control(None, 4, 0.5)
        assert [ev.udata for ev in events] == ["write"], "an event of the failed registration"


def test_close_never_raises_and_frees_its_fds(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_detach(self: user_filter.UserFilter, kn: object) -> None:
        raise RuntimeError("injected failure in detach")

    monkeypatch.setattr(user_filter.UserFilter, "detach", broken_detach, raising=False)
    before = len(open_fds())
    kq = skqueue.kqueue()
    kq.control(
        [kevent(1, EVFILT_USER, EV_ADD), kevent(2, EVFILT_TIMER, EV_ADD, 0, 60_000)],
        0,
    )
    assert len(open_fds()) > before
    with pytest.warns(RuntimeWarning, match="injected failure"):
        kq.close()
    assert kq.closed
    assert len(open_fds()) == before, "close() left the kqueue's fds open"


# 5. SKQ mode switch ----------------------------------------------------------------------
_MULTI = KQSCHED_MAKE(KQ_SCHED_BEST, 2, 0, 0)


def test_fkqmulti_on_a_fresh_kqueue() -> None:
    with skqueue.kqueue() as kq:
        kq.ioctl(FKQMULTI, _MULTI)
        assert kq.stats()["multi"]


@pytest.mark.parametrize(
    "changes",
    [None, [kevent(1, EVFILT_USER, EV_ADD)]],
    ids=["empty call", "changes only"],
)
def test_any_kevent_call_fixes_the_mode(changes: list[kevent] | None) -> None:
    with skqueue.kqueue() as kq:
        kq.control(changes, 0, 0)
        with pytest.raises(OSError) as info:
            kq.ioctl(FKQMULTI, _MULTI)
        assert isinstance(info.value, OSError) and info.value.errno == errno.EINVAL
        assert not kq.stats()["multi"]


# 6. Statistics of threads that left ------------------------------------------------------
_SUMMED = ("events", "waits", "realtime", "steals", "steal_scans", "fallbacks", "placements")


def _totals(stats: dict[str, Any]) -> dict[str, int]:
    records = [*stats["kevqs"], stats["retired"]] if "retired" in stats else stats["kevqs"]
    return {name: sum(record[name] for record in records) for name in _SUMMED}


def _wait_for_retired(kq: skqueue.kqueue, count: int) -> dict[str, Any]:
    """Threads retire their kevq as their locals are cleared, around join(): poll."""
    deadline = time.monotonic() + _THREAD_TIMEOUT
    while True:
        stats = kq.stats()
        if not stats["kevqs"] and stats.get("retired", {}).get("kevqs") == count:
            return stats
        assert time.monotonic() < deadline, f"kevqs not retired: {stats['kevqs']!r}"
        time.sleep(0.01)


def _run_threads(target: Callable[[], object], count: int) -> None:
    join_all([start_thread(target) for _ in range(count)], _THREAD_TIMEOUT)


def test_retired_threads_keep_every_total() -> None:
    workers = 6
    per_worker = 4
    total = workers * per_worker
    taken: list[int] = []
    lock = threading.Lock()
    parked = threading.Barrier(workers + 1, timeout=_THREAD_TIMEOUT)
    leave = threading.Event()

    with skqueue.kqueue(sched="random", steal=2) as kq:
        kq.control(
            [kevent(i, EVFILT_USER, EV_ADD | EV_ONESHOT, NOTE_TRIGGER) for i in range(total)], 0
        )

        def worker() -> None:
            deadline = time.monotonic() + _THREAD_TIMEOUT
            while time.monotonic() < deadline:  # every worker waits at least once
                events = kq.control(None, 2, 0.01)
                with lock:
                    taken.extend(ev.ident for ev in events)
                    if len(taken) >= total:
                        break
            parked.wait()  # alive, with its kevq, until the totals are read
            leave.wait(_THREAD_TIMEOUT)

        threads = [start_thread(worker) for _ in range(workers)]
        parked.wait()
        assert sorted(taken) == list(range(total))
        live = kq.stats()
        assert len(live["kevqs"]) == workers
        leave.set()
        join_all(threads, _THREAD_TIMEOUT)
        retired = _wait_for_retired(kq, workers)
        assert _totals(retired) == _totals(live)
        assert retired["retired"]["events"] == total


def test_stats_stay_bounded_with_short_lived_threads() -> None:
    with skqueue.kqueue(sched="best", sargs=2) as kq:
        kq.control([kevent(1, EVFILT_USER, EV_ADD, NOTE_TRIGGER)], 0)

        def wait_once() -> None:
            kq.control(None, 1, 0)

        _run_threads(wait_once, 10)
        early = _wait_for_retired(kq, 10)
        for _ in range(10):
            _run_threads(wait_once, 50)
        late = _wait_for_retired(kq, 510)
        assert late["retired"]["waits"] == 510
        # One kevq's record is the least a per-thread record would have added.
        one_record = len(json.dumps(early["retired"]))
        assert len(json.dumps(late)) - len(json.dumps(early)) < one_record, late


# Siblings: the other arguments that reached the core unchecked -------------------------
@pytest.mark.parametrize(("room", "error"), [(1.5, TypeError), (1 << 40, OverflowError)])
def test_max_events_is_a_c_int_checked_before_any_change(room: Any, error: type) -> None:
    with skqueue.kqueue() as kq:
        with pytest.raises(error):
            kq.control([kevent(1, EVFILT_USER, EV_ADD, NOTE_TRIGGER)], room, 0)
        assert kq.stats()["knotes"] == 0, "the change was applied before the error"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"sched": "queue", "sargs": -3}, ValueError),
        ({"sched": "best", "sargs": 1.5}, TypeError),
        ({"sched": 1.0}, TypeError),
        ({"sched": "random", "steal": -1}, ValueError),
        ({"sched": "no such policy"}, ValueError),
    ],
)
def test_bad_scheduler_arguments_fail_at_creation(
    args: dict[str, Any], error: type[Exception]
) -> None:
    # Before, they were taken, and the first activation with two threads waiting
    # raised inside place(), half-way through the kevent() that triggered it.
    before = len(open_fds())
    with pytest.raises(error) as info:
        skqueue.kqueue(**args)
    if error is OSError:
        assert isinstance(info.value, OSError) and info.value.errno == errno.EINVAL
    # info's traceback still references the half-made kqueue: its fds must be closed.
    assert len(open_fds()) == before
