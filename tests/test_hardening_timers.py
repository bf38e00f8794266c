"""Timers and timeouts at their limits (issue 10): huge periods and absolute times,
refused and re-added timers, and the timeout argument of every wait.

A wait that spins instead of sleeping is caught by the CPU time it burns, which a
busy machine does not inflate (a sleeping process uses none), unlike wall-clock time.
"""

from __future__ import annotations

import errno
import gc
import os
import selectors
import socket
import time
import weakref
from decimal import Decimal
from fractions import Fraction

import pytest

import skqueue
from skqueue import kevent
from skqueue.constants import (
    EV_ADD,
    EV_DELETE,
    EV_ERROR,
    EV_ONESHOT,
    EVFILT_TIMER,
    EVFILT_USER,
    NOTE_ABSTIME,
    NOTE_MSECONDS,
    NOTE_NSECONDS,
    NOTE_SECONDS,
    NOTE_TRIGGER,
    NOTE_USECONDS,
)
from skqueue.filters.timer import TimerFilter
from skqueue.selector import KqueueSelector
from support import join_all, start_thread

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
    with kq._core.lock:  # the core's state, as a filter sees it (SKQUEUE_CHECK_LOCKS)
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
    with kq._core.lock:
        state = kq._core.knotes[(1, EVFILT_TIMER)].hook
    deadline = state.deadline

    def arm_alarm(deadline_ns: int) -> None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(kq._core.backend, "arm_alarm", arm_alarm)
    (err,) = kq.control([kevent(1, EVFILT_TIMER, EV_ADD, 0, 10)], 1, 0)  # sooner: arms
    assert (err.flags, err.data) == (EV_ERROR, errno.EINVAL)
    assert state.deadline == deadline
    assert [entry[0] for entry in timer_filter(kq).heap if entry[2] is not None] == [deadline]


# Timeouts (CPython's select.kqueue.control: Modules/selectmodule.c) -------------------
NOT_A_TIMEOUT = [
    float("nan"),
    float("inf"),
    float("-inf"),
    1e300,
    9.3e9,  # past 2**63 ns, the range of CPython's _PyTime_t
    9_223_372_037,
    2**64,
    -9_223_372_037,  # as far below
    "1",
    Decimal("0.5"),
    Fraction(1, 2),
]


def ready(kq: skqueue.kqueue) -> None:
    """Something to report, so that a wait that fails to refuse its timeout returns."""
    kq.control([kevent(9, EVFILT_USER, EV_ADD), kevent(9, EVFILT_USER, 0, NOTE_TRIGGER)], 0)


@pytest.mark.parametrize("timeout", NOT_A_TIMEOUT, ids=repr)
def test_timeout_cpython_refuses_is_type_error(kq: skqueue.kqueue, timeout: object) -> None:
    """Refused before the changelist is applied: nothing is lost, nothing is added."""
    ready(kq)
    with pytest.raises(TypeError, match=r"^timeout argument must be a number or None, got "):
        kq.control([kevent(1, EVFILT_TIMER, EV_ADD, 0, 10)], 1, timeout)  # type: ignore[arg-type]
    assert [(ev.ident, ev.filter) for ev in kq.control(None, 8, 0)] == [(9, EVFILT_USER)]


@pytest.mark.parametrize("timeout", [-1, -0.5, -1e-10, -9_223_372_036], ids=repr)
def test_negative_timeout_is_value_error(kq: skqueue.kqueue, timeout: float) -> None:
    """Rounded away from zero, as CPython: even -1e-10 s is a negative nanosecond."""
    ready(kq)
    with pytest.raises(ValueError, match=r"^timeout must be positive or None$"):
        kq.control(None, 1, timeout)


@pytest.mark.parametrize("timeout", [0, -0.0, False, 1e-10], ids=repr)
def test_zero_and_tiny_timeouts_poll(kq: skqueue.kqueue, timeout: float) -> None:
    assert kq.control(None, 1, timeout) == []


def test_short_wait_arms_its_alarm_under_the_lock(
    kq: skqueue.kqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sub-50 ms wait arms the alarm it shares with the TIMER filter before the leader
    lets go of the lock (issue 12: armed in epoll_wait's place, it raced the filter's
    arming without the GIL).  One thread: the lock is held only if the leader holds it."""
    core = kq._core
    assert core is not None
    arm = core.backend.arm_alarm
    held: list[bool] = []

    def arm_alarm(deadline_ns: int) -> None:
        # The lock is reentrant, and 3.11's RLock has no locked(): ask from elsewhere.
        free: list[bool] = []

        def try_lock() -> None:
            free.append(core.lock.acquire(False))
            if free[-1]:
                core.lock.release()

        start_thread(try_lock).join(10)
        held.append(free == [False])
        arm(deadline_ns)

    monkeypatch.setattr(core.backend, "arm_alarm", arm_alarm)
    assert kq.control(None, 1, 0.01) == []
    assert held == [True]


def test_short_wait_ends_without_its_alarm(
    kq: skqueue.kqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sub-50 ms wait whose alarm never wakes it still ends (issue 12: another
    thread's harvest may read the expired alarm first, and the leader then slept in
    epoll_wait until some fd became ready, for ever in an idle kqueue)."""
    assert kq._core is not None
    monkeypatch.setattr(kq._core.backend, "arm_alarm", lambda deadline_ns: None)
    results: list[list[kevent]] = []
    waiter = start_thread(lambda: results.append(kq.control(None, 1, 0.01)))
    waiter.join(10)
    hung = waiter.is_alive()
    if hung:
        kq.close()  # releases the waiter (ValueError in its thread)
    assert not hung, "a short wait outlived its timeout by 10 s"
    assert results == [[]]


@pytest.mark.parametrize("timeout", [3e6, 9e9, 9_223_372_036], ids=repr)
def test_largest_timeouts_wait(kq: skqueue.kqueue, timeout: float) -> None:
    """Past epoll_wait's INT_MAX ms (24.8 days) and up to CPython's limit: a wait."""
    add_timer(kq, 1, 20, EV_ONESHOT)
    (ev,) = kq.control(None, 8, timeout)
    assert (ev.ident, ev.data) == (1, 1)


def test_largest_timeout_in_a_follower(kq: skqueue.kqueue) -> None:
    """The thread that sleeps on its kevq (not in epoll) takes a huge timeout too."""
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            kq.control(None, 1, 9e9)
        except BaseException as exc:
            errors.append(exc)

    threads = [start_thread(wait) for _ in range(2)]
    for ident in (1, 2):
        add_timer(kq, ident, 20, EV_ONESHOT)
    join_all(threads, 10)
    assert errors == []


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 1e300], ids=repr)
def test_selector_refuses_what_kqueue_refuses(
    pair: tuple[socket.socket, socket.socket], timeout: float
) -> None:
    """selectors.KqueueSelector hands the timeout to kqueue.control: TypeError, no spin."""
    with KqueueSelector() as sel:
        sel.register(pair[0], selectors.EVENT_READ)
        pair[1].send(b"x")  # ready: a selector that lets the timeout through returns
        with pytest.raises(TypeError):
            sel.select(timeout)
        assert [mask for _, mask in sel.select(float("-inf"))] == [selectors.EVENT_READ]


@pytest.mark.parametrize("data", [float("nan"), 1.5, float("inf")], ids=repr)
def test_non_integer_period_is_refused_and_leaves_no_trace(kq: skqueue.kqueue, data: float) -> None:
    """A NaN deadline in the heap used to break the next, unrelated expiry."""
    add_timer(kq, 2, 30_000)  # a running timer: the new one does not arm the alarm
    try:
        ev = kevent(1, EVFILT_TIMER, EV_ADD, 0, data)  # type: ignore[arg-type]
    except TypeError:  # select.kevent's own check: the filter never sees it
        return
    (err,) = kq.control([ev], 1, 0)
    assert (err.flags, err.data) == (EV_ERROR, errno.EINVAL)
    add_timer(kq, 3, 20, EV_ONESHOT)
    (fired,) = kq.control(None, 8, 5.0)
    assert (fired.ident, fired.data) == (3, 1)
