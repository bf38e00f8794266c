"""EVFILT_TIMER behaviours that FreeBSD's libkqueue regression tests
(tests/sys/kqueue/libkqueue/timer.c) check and tests/filters/test_timer.py does not.

Durations are scaled up from FreeBSD's (a noisy 2-core VM), lower bounds are
exact (a timer never fires early) and upper bounds are loose.
"""

from __future__ import annotations

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
    EV_ONESHOT,
    EVFILT_TIMER,
    NOTE_ABSTIME,
    NOTE_USECONDS,
)
from support import nothing, one


def add(
    kq: skqueue.kqueue, ident: int, data: int, fflags: int = 0, flags: int = 0, udata: object = 0
) -> None:
    """EV_ADD (or re-add) a timer with a changelist-only call."""
    kq.control([kevent(ident, EVFILT_TIMER, EV_ADD | flags, fflags, data, udata)], 0)


def fields(ev: kevent) -> tuple[int, int, int, int, int, object]:
    """Everything FreeBSD's kevent_cmp compares, as one comparable tuple."""
    return (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata)


def gone(kq: skqueue.kqueue, ident: int) -> bool:
    """True if no timer knote ``ident`` is registered (EV_DELETE gives ENOENT)."""
    try:
        kq.control([kevent(ident, EVFILT_TIMER, EV_DELETE)], 0)
    except FileNotFoundError:
        return True
    return False


def test_periodic_reports_each_period_with_clear(kq: skqueue.kqueue) -> None:
    """timer.c test_kevent_timer_get/test_periodic: a relative periodic timer is
    delivered with EV_CLEAR added, fflags 0 and data 1, period after period."""
    started = time.monotonic()
    add(kq, 7, 150, udata="p")
    expected = (7, EVFILT_TIMER, EV_CLEAR, 0, 1, "p")
    assert fields(one(kq)) == expected
    assert time.monotonic() - started >= 0.15
    assert fields(one(kq)) == expected
    assert time.monotonic() - started >= 0.30
    kq.control([kevent(7, EVFILT_TIMER, EV_DELETE)], 0)
    nothing(kq, 0.2)


@pytest.mark.parametrize("case", ["epoch", "preboot", "postboot"])
def test_abstime_in_the_past_fires_at_once(kq: skqueue.kqueue, case: str) -> None:
    """timer.c test_abstime_epoch/_preboot/_postboot: an absolute time that has
    passed, even one before the system booted (0 = the epoch), is not refused
    but fires as soon as possible, once, without EV_CLEAR."""
    now_us = time.time_ns() // 1000
    flags = EV_ONESHOT
    if case == "epoch":  # periodic, default unit (ms), data 0
        fflags, data, flags = NOTE_ABSTIME, 0, 0
    elif case == "preboot":
        boot_s = time.clock_gettime(time.CLOCK_BOOTTIME)
        fflags, data = NOTE_ABSTIME | NOTE_USECONDS, now_us - int((boot_s + 1) * 1e6)
    else:
        fflags, data = NOTE_ABSTIME | NOTE_USECONDS, now_us - 1_000_000
    try:
        add(kq, 3, data, fflags, flags)
    except OSError as exc:
        pytest.fail(f"an absolute time in the past was refused: {exc}")
    assert fields(one(kq, 1.0)) == (3, EVFILT_TIMER, flags, 0, 1, 0)
    if flags & EV_ONESHOT:
        nothing(kq, 0.2)  # and never again
        assert gone(kq, 3)
    else:
        assert not gone(kq, 3)


def test_readd_takes_the_new_udata_and_period(kq: skqueue.kqueue) -> None:
    """timer.c test_update: re-adding a pending one-shot timer with a shorter
    period and new udata fires once, on the new period, carrying the new udata."""
    started = time.monotonic()
    add(kq, 4, 1_000_000, NOTE_USECONDS, EV_ONESHOT, udata="old")
    add(kq, 4, 30_000, NOTE_USECONDS, EV_ONESHOT, udata="new")
    assert fields(one(kq)) == (4, EVFILT_TIMER, EV_ONESHOT | EV_CLEAR, 0, 1, "new")
    elapsed = time.monotonic() - started
    assert 0.03 <= elapsed < 1.0  # the original 1 s deadline was not used
    nothing(kq, 0.1)


def test_readd_after_undelivered_expiry_fires_once_more_later(kq: skqueue.kqueue) -> None:
    """timer.c test_update_expired: a one-shot timer that expired but was not
    collected, then re-added, reports only the new expiry, a full period later."""
    add(kq, 5, 20_000, NOTE_USECONDS, EV_ONESHOT)
    time.sleep(0.06)  # expired, nobody waited
    readded = time.monotonic()
    add(kq, 5, 20_000, NOTE_USECONDS, EV_ONESHOT)
    ev = one(kq)
    assert time.monotonic() - readded >= 0.02  # not the stale first expiry
    assert (ev.flags, ev.data) == (EV_ONESHOT | EV_CLEAR, 1)
    nothing(kq, 0.06)


def test_readd_around_the_deadline_never_leaks_the_old_expiry(kq: skqueue.kqueue) -> None:
    """timer.c test_update_timing: re-adding with a delay from below to above the
    period (racing the expiry) always yields exactly one event, a period later."""
    period_us = 3_000
    for step in range(21):
        add(kq, 6, period_us, NOTE_USECONDS, EV_ONESHOT)
        time.sleep((period_us / 2 + step * period_us / 20) / 1e6)  # 0.5 .. 1.5 periods
        readded = time.monotonic()
        add(kq, 6, period_us, NOTE_USECONDS, EV_ONESHOT)
        ev = one(kq)
        elapsed = time.monotonic() - readded
        assert elapsed >= period_us / 1e6, f"step {step}: old expiry after {elapsed:.6f}s"
        assert ev.data == 1, f"step {step}"
        nothing(kq, 0.008)


def test_readd_periodic_with_a_longer_period(kq: skqueue.kqueue) -> None:
    """timer.c test_update_periodic: re-adding a running periodic timer restarts
    it on the new period, which then stays the period."""
    add(kq, 8, 30)
    assert one(kq).data >= 1
    assert one(kq).data >= 1
    readded = time.monotonic()
    add(kq, 8, 200)
    assert fields(one(kq)) == (8, EVFILT_TIMER, EV_CLEAR, 0, 1, 0)
    assert time.monotonic() - readded >= 0.2
    assert one(kq).data == 1
    assert time.monotonic() - readded >= 0.4  # periodic at the new 200 ms, not 30 ms
    kq.control([kevent(8, EVFILT_TIMER, EV_DELETE)], 0)


def test_disabled_oneshot_fires_after_enable(kq: skqueue.kqueue) -> None:
    """timer.c disable_and_enable: a one-shot timer disabled right after the add
    and re-enabled before its deadline still fires once, on its deadline."""
    started = time.monotonic()
    add(kq, 9, 150, flags=EV_ONESHOT, udata="d")
    # Every change replaces udata (FreeBSD does too), so these carry it along.
    kq.control([kevent(9, EVFILT_TIMER, EV_DISABLE, udata="d")], 0)
    nothing(kq, 0.05)
    kq.control([kevent(9, EVFILT_TIMER, EV_ENABLE, udata="d")], 0)
    assert fields(one(kq)) == (9, EVFILT_TIMER, EV_ONESHOT | EV_CLEAR, 0, 1, "d")
    assert time.monotonic() - started >= 0.15
    assert gone(kq, 9)
