"""EVFILT_TIMER specifics (FreeBSD kqueue(2) and its regression tests): units,
absolute timers, overrun counts in ``data``, one-shot timers, and what a change
does to a running timer."""

from __future__ import annotations

import errno
import time

import pytest

import skqueue
from skqueue import kevent
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_ENABLE,
    EV_ERROR,
    EV_ONESHOT,
    EVFILT_TIMER,
    NOTE_ABSTIME,
    NOTE_MSECONDS,
    NOTE_NSECONDS,
    NOTE_SECONDS,
    NOTE_USECONDS,
)
from support import one


def timer(
    kq: skqueue.kqueue, ident: int, data: int, fflags: int = 0, flags: int = 0, udata: object = 0
) -> None:
    kq.control([kevent(ident, EVFILT_TIMER, EV_ADD | flags, fflags, data, udata)], 0)


def einval(kq: skqueue.kqueue, ev: kevent) -> None:
    (err,) = kq.control([ev], 1, 0)
    assert (err.flags, err.data) == (EV_ERROR, errno.EINVAL)
    with pytest.raises(OSError) as info:
        kq.control([ev], 0)
    assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize(
    ("fflags", "data"),
    [(0, 60), (NOTE_MSECONDS, 60), (NOTE_USECONDS, 60_000), (NOTE_NSECONDS, 60_000_000)],
    ids=["default-ms", "ms", "us", "ns"],
)
def test_units(kq: skqueue.kqueue, fflags: int, data: int) -> None:
    started = time.monotonic()
    timer(kq, 1, data, fflags, EV_ONESHOT, udata="u")
    ev = one(kq)
    elapsed = time.monotonic() - started
    assert 0.06 <= elapsed < 0.5
    # Returned fflags are 0: the unit is not echoed (FreeBSD timer.c).
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata) == (
        1,
        EVFILT_TIMER,
        EV_ONESHOT | EV_CLEAR,
        0,
        1,
        "u",
    )


def test_seconds(kq: skqueue.kqueue) -> None:
    started = time.monotonic()
    timer(kq, 1, 1, NOTE_SECONDS, EV_ONESHOT)
    assert kq.control(None, 1, 0.5) == []
    assert one(kq).data == 1
    assert 1.0 <= time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "fflags",
    [NOTE_SECONDS | NOTE_MSECONDS, NOTE_USECONDS | NOTE_NSECONDS, 0x100, 1 << 30],
    ids=["s+ms", "us+ns", "unknown-bit", "high-bit"],
)
def test_bad_unit_is_einval(kq: skqueue.kqueue, fflags: int) -> None:
    einval(kq, kevent(1, EVFILT_TIMER, EV_ADD, fflags, 10))


def test_negative_period_is_einval(kq: skqueue.kqueue) -> None:
    einval(kq, kevent(1, EVFILT_TIMER, EV_ADD, 0, -1))


def test_bad_modify_keeps_the_timer(kq: skqueue.kqueue) -> None:
    timer(kq, 1, 30)
    einval(kq, kevent(1, EVFILT_TIMER, EV_ADD, NOTE_SECONDS | NOTE_NSECONDS, 30))
    assert one(kq).data >= 1  # still ticking every 30 ms


def test_abstime(kq: skqueue.kqueue) -> None:
    target_us = int((time.time() + 0.15) * 1e6)
    timer(kq, 1, target_us, NOTE_ABSTIME | NOTE_USECONDS, EV_ONESHOT)
    assert kq.control(None, 1, 0.05) == []
    ev = one(kq)
    assert time.time() * 1e6 >= target_us
    # FreeBSD sets EV_CLEAR on relative timers only.
    assert (ev.flags, ev.fflags, ev.data) == (EV_ONESHOT, 0, 1)
    assert kq.control(None, 1, 0.1) == []


def test_abstime_in_the_past_fires_at_once(kq: skqueue.kqueue) -> None:
    timer(kq, 1, int(time.time()) - 10, NOTE_ABSTIME | NOTE_SECONDS, EV_ONESHOT)
    assert one(kq, 0.5).data == 1


def test_abstime_without_oneshot_stays_reported(kq: skqueue.kqueue) -> None:
    """Not EV_CLEAR: the expiration stays pending until the knote is deleted."""
    timer(kq, 1, int(time.time() * 1000) + 30, NOTE_ABSTIME | NOTE_MSECONDS)
    first = one(kq)
    assert (first.flags, first.data) == (0, 1)
    assert [(ev.ident, ev.data) for ev in kq.control(None, 8, 0)] == [(1, 1)]
    kq.control([kevent(1, EVFILT_TIMER, EV_DELETE)], 0)
    assert kq.control(None, 8, 0.05) == []


def test_periodic_overruns_are_counted(kq: skqueue.kqueue) -> None:
    before = time.monotonic()
    timer(kq, 1, 20)
    after = time.monotonic()
    time.sleep(0.21)
    polled = time.monotonic()
    ev = one(kq, 0)
    done = time.monotonic()
    # Every period that ended without a wait is counted: at least those that ended
    # before the poll began, at most those that could have ended by its return (the
    # sleep may overrun on a busy machine, so the bounds are taken from the clock).
    assert int((polled - after) / 0.02) <= ev.data <= int((done - before) / 0.02)
    assert ev.data >= 10
    assert kq.control(None, 8, 0) == []  # EV_CLEAR: the count restarts
    ev = one(kq)
    assert 1 <= ev.data <= 1 + int((time.monotonic() - done) / 0.02)


def test_periodic_zero_ticks_every_unit(kq: skqueue.kqueue) -> None:
    before = time.monotonic()
    timer(kq, 1, 0)  # FreeBSD: a period of 0 becomes 1 (ms), not a busy loop
    time.sleep(0.1)
    ticks = one(kq, 0).data
    # A busy loop would count far more than one per millisecond; a lost unit, fewer.
    assert 50 <= ticks <= int((time.monotonic() - before) / 0.001)


def test_oneshot_zero_fires_at_once(kq: skqueue.kqueue) -> None:
    timer(kq, 1, 0, flags=EV_ONESHOT)
    assert one(kq, 0.5).data == 1
    with pytest.raises(FileNotFoundError):
        kq.control([kevent(1, EVFILT_TIMER, EV_DELETE)], 0)


def test_oneshot_fires_once(kq: skqueue.kqueue) -> None:
    timer(kq, 1, 20, flags=EV_ONESHOT)
    assert one(kq).data == 1
    assert kq.control(None, 8, 0.1) == []


def test_timers_fire_in_deadline_order(kq: skqueue.kqueue) -> None:
    for ident, ms in ((1, 90), (2, 30), (3, 60)):
        timer(kq, ident, ms, flags=EV_ONESHOT)
    order = [one(kq).ident for _ in range(3)]
    assert order == [2, 3, 1]


def test_modify_restarts_the_timer(kq: skqueue.kqueue) -> None:
    timer(kq, 1, 300, flags=EV_ONESHOT)
    time.sleep(0.2)
    restarted = time.monotonic()
    timer(kq, 1, 300, flags=EV_ONESHOT)
    # The first deadline (restarted + 0.1) passes unnoticed: nothing comes before the
    # new one, however late this thread gets to look.
    early = kq.control(None, 1, max(0.0, restarted + 0.2 - time.monotonic()))
    assert early == [] or time.monotonic() - restarted >= 0.3
    if not early:
        one(kq)
    assert time.monotonic() - restarted >= 0.3


def test_modify_forgets_pending_expirations(kq: skqueue.kqueue) -> None:
    timer(kq, 1, 10)
    time.sleep(0.06)
    timer(kq, 1, 5000)
    assert kq.control(None, 8, 0.05) == []


def test_modify_shortens_a_long_timer(kq: skqueue.kqueue) -> None:
    started = time.monotonic()
    timer(kq, 1, 10, NOTE_SECONDS, EV_ONESHOT)
    timer(kq, 1, 20_000, NOTE_USECONDS, EV_ONESHOT)
    assert one(kq).data == 1
    assert time.monotonic() - started < 1


def test_enable_and_disable_do_not_restart(kq: skqueue.kqueue) -> None:
    """Only a re-add re-programs a timer; a bare EV_DISABLE/EV_ENABLE carries data 0."""
    before = time.monotonic()
    timer(kq, 1, 40)
    after = time.monotonic()
    kq.control([kevent(1, EVFILT_TIMER, EV_DISABLE)], 0)
    time.sleep(0.21)
    enabling = time.monotonic()
    kq.control([kevent(1, EVFILT_TIMER, EV_ENABLE)], 0)
    ev = one(kq, 0)  # expirations counted while disabled come out at once
    done = time.monotonic()
    # Bounds from the clock, as in test_periodic_overruns_are_counted (a busy machine
    # may overrun the sleep): the periods ended before the enable, at most those ended
    # by the poll's return.
    assert int((enabling - after) / 0.04) <= ev.data <= int((done - before) / 0.04)
    # Still a 40 ms period on the add's schedule, not 0: the next expiry is the first
    # the count did not include, a whole period after the last one it did.
    counted = ev.data
    assert one(kq).data >= 1
    assert time.monotonic() - before >= 0.04 * (counted + 1)


def test_delete_stops_the_timer(kq: skqueue.kqueue) -> None:
    timer(kq, 1, 10)
    time.sleep(0.05)
    kq.control([kevent(1, EVFILT_TIMER, EV_DELETE)], 0)
    assert kq.control(None, 8, 0.05) == []
