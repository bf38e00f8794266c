"""Timers and timeouts at their limits (issue 10): huge periods and absolute times,
refused and re-added timers, and the timeout argument of every wait.

A wait that spins instead of sleeping is caught by the CPU time it burns, which a
busy machine does not inflate (a sleeping process uses none), unlike wall-clock time.
"""

from __future__ import annotations

import errno
import gc
import os
import time
import weakref

import pytest

import skqueue
from skqueue import kevent
from skqueue.constants import (
    EV_ADD,
    EV_DELETE,
    EV_ERROR,
    EV_ONESHOT,
    EVFILT_TIMER,
    NOTE_ABSTIME,
    NOTE_MSECONDS,
    NOTE_NSECONDS,
    NOTE_SECONDS,
    NOTE_USECONDS,
)
from skqueue.filters.timer import TimerFilter

INT64_MAX = 2**63 - 1  # the largest data a kevent carries (intptr_t)
IDLE_WAIT = 0.25  # seconds: long enough for a spinning wait to burn a visible share
SPIN_CPU = 0.1  # CPU seconds: a sleeping wait of IDLE_WAIT uses well under a millisecond


def wait_cpu(kq: skqueue.kqueue, seconds: float = IDLE_WAIT) -> float:
    """CPU time of a wait with nothing to report: next to nothing unless it spins."""
    started = time.process_time()
    assert kq.control(None, 1, seconds) == []
    return time.process_time() - started


UNITS = [
    NOTE_SECONDS,
    NOTE_MSECONDS,
    0,
    NOTE_USECONDS,
    NOTE_NSECONDS,
    NOTE_ABSTIME | NOTE_SECONDS,
    NOTE_ABSTIME,
    NOTE_ABSTIME | NOTE_NSECONDS,
]
UNIT_IDS = ["s", "ms", "default", "us", "ns", "abs-s", "abs-ms", "abs-ns"]


@pytest.mark.parametrize("fflags", UNITS, ids=UNIT_IDS)
def test_largest_timer_is_clamped_not_wrapped(kq: skqueue.kqueue, fflags: int) -> None:
    """FreeBSD clamps a time past SBT_MAX (timer2sbintime): accepted and far away."""
    kq.control([kevent(1, EVFILT_TIMER, EV_ADD, fflags, INT64_MAX)], 0)  # no EINVAL
    assert kq.control(None, 1, 0) == []  # not due
    kq.control([kevent(1, EVFILT_TIMER, EV_DELETE)], 0)
    assert wait_cpu(kq) < SPIN_CPU


@pytest.mark.parametrize("fflags", UNITS, ids=UNIT_IDS)
def test_data_past_int64_never_spins(kq: skqueue.kqueue, fflags: int) -> None:
    """2**64 - 1 either fails kevent()'s range check or is a clamped timer, never a spin."""
    try:
        ev = kevent(1, EVFILT_TIMER, EV_ADD, fflags, 2**64 - 1)
    except OverflowError:  # select.kevent's intptr_t range: the filter never sees it
        return
    kq.control([ev], 0)
    kq.control([kevent(1, EVFILT_TIMER, EV_DELETE)], 0)
    assert wait_cpu(kq) < SPIN_CPU


# The timer heap ---------------------------------------------------------------------
class Udata:
    """A udata a weak reference can watch."""


def timer_filter(kq: skqueue.kqueue) -> TimerFilter:
    assert kq._core is not None
    ops = kq._core.filter_for(EVFILT_TIMER)
    assert isinstance(ops, TimerFilter)
    return ops


def add_timer(kq: skqueue.kqueue, ident: int, ms: int, flags: int = 0, udata: object = 0) -> None:
    kq.control([kevent(ident, EVFILT_TIMER, EV_ADD | flags, 0, ms, udata)], 0)


def test_deleted_timer_lets_go_of_its_udata(kq: skqueue.kqueue) -> None:
    add_timer(kq, 1, 30_000)  # a neighbour, so that the heap is not simply emptied
    udata = Udata()
    watch = weakref.ref(udata)
    add_timer(kq, 2, 30_000, udata=udata)
    kq.control([kevent(2, EVFILT_TIMER, EV_DELETE)], 0)
    del udata
    gc.collect()
    assert watch() is None  # not held until the deleted timer's old deadline


@pytest.mark.parametrize("live", [1, 10])
def test_resets_keep_the_heap_bounded(kq: skqueue.kqueue, live: int) -> None:
    for ident in range(live):
        add_timer(kq, ident, 30_000)
    for _ in range(20_000):
        add_timer(kq, 0, 30_000)  # each re-add restarts the timer
    assert len(timer_filter(kq).heap) <= 2 * live  # O(live timers), not O(resets)
    kq.control([kevent(ident, EVFILT_TIMER, EV_DELETE) for ident in range(live)], 0)
    assert len(timer_filter(kq).heap) <= live


def test_refused_timer_never_enters_the_heap(
    kq: skqueue.kqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timer refused while arming the alarm must not poison later, unrelated waits."""
    assert kq._core is not None
    backend = kq._core.backend
    arm = backend.arm_alarm
    refuse_from = time.monotonic_ns() + 10 * 1_000_000_000

    def arm_alarm(deadline_ns: int) -> None:
        if deadline_ns >= refuse_from:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        arm(deadline_ns)

    monkeypatch.setattr(backend, "arm_alarm", arm_alarm)
    udata = Udata()
    watch = weakref.ref(udata)
    (err,) = kq.control([kevent(1, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, 30, udata)], 1, 0)
    assert (err.flags, err.data) == (EV_ERROR, errno.EINVAL)
    del udata, err
    gc.collect()
    assert watch() is None
    add_timer(kq, 2, 20, EV_ONESHOT)
    (ev,) = kq.control(None, 8, 5.0)  # the expiry re-arms the alarm: no EINVAL here
    assert (ev.ident, ev.data) == (2, 1)
    assert kq.control(None, 8, 0.05) == []


def test_refused_reset_keeps_the_running_timer(
    kq: skqueue.kqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_timer(kq, 1, 30_000)
    assert kq._core is not None
    state = kq._core.knotes[(1, EVFILT_TIMER)].hook
    deadline = state.deadline

    def arm_alarm(deadline_ns: int) -> None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(kq._core.backend, "arm_alarm", arm_alarm)
    (err,) = kq.control([kevent(1, EVFILT_TIMER, EV_ADD, 0, 10)], 1, 0)  # sooner: arms
    assert (err.flags, err.data) == (EV_ERROR, errno.EINVAL)
    assert state.deadline == deadline
    assert [entry[0] for entry in timer_filter(kq).heap if entry[2] is not None] == [deadline]
