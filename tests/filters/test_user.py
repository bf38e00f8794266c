"""EVFILT_USER specifics (FreeBSD filt_usertouch): NOTE_TRIGGER, the NOTE_FF*
arithmetic on the low 24 bits of fflags, EV_CLEAR, and triggers from other threads."""

from __future__ import annotations

import threading
import time

import pytest

import skqueue
from skqueue import kevent
from skqueue.constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_ONESHOT,
    EVFILT_USER,
    NOTE_FFAND,
    NOTE_FFCOPY,
    NOTE_FFLAGSMASK,
    NOTE_FFNOP,
    NOTE_FFOR,
    NOTE_TRIGGER,
)
from support import join_all, start_thread


def user(
    kq: skqueue.kqueue,
    ident: int,
    flags: int = 0,
    fflags: int = 0,
    data: int = 0,
    udata: object = 0,
) -> None:
    kq.control([kevent(ident, EVFILT_USER, flags, fflags, data, udata)], 0)


def pending(kq: skqueue.kqueue, timeout: float = 0) -> list[tuple[int, int, int, int]]:
    return [(ev.ident, ev.flags, ev.fflags, ev.data) for ev in kq.control(None, 8, timeout)]


def test_trigger(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD | EV_CLEAR, udata="u")
    assert pending(kq) == []
    user(kq, 1, fflags=NOTE_TRIGGER, udata="u")
    (ev,) = kq.control(None, 8, 0)
    assert (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata) == (
        1,
        EVFILT_USER,
        EV_CLEAR,
        0,
        0,
        "u",
    )
    assert pending(kq) == []


@pytest.mark.parametrize(
    ("op", "bits", "expected"),
    [
        (NOTE_FFNOP, 0xFFFFFF, 0x0F0F0F),
        (NOTE_FFAND, 0x00FF00, 0x000F00),
        (NOTE_FFOR, 0x100001, 0x1F0F0F),
        (NOTE_FFCOPY, 0xABCDEF, 0xABCDEF),
        (NOTE_FFCOPY, 0, 0),
    ],
    ids=["nop", "and", "or", "copy", "copy-zero"],
)
def test_fflags_arithmetic(kq: skqueue.kqueue, op: int, bits: int, expected: int) -> None:
    user(kq, 1, EV_ADD, fflags=0x0F0F0F)
    user(kq, 1, fflags=op | bits | NOTE_TRIGGER)
    # Only the 24 user bits come back: neither the control bits nor NOTE_TRIGGER.
    assert pending(kq) == [(1, 0, expected, 0)]


def test_fflags_arithmetic_accumulates(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD)
    user(kq, 1, fflags=NOTE_FFOR | 0x3)
    user(kq, 1, fflags=NOTE_FFOR | 0x30)
    user(kq, 1, fflags=NOTE_FFAND | 0x31)
    assert pending(kq) == []  # changing fflags does not trigger
    user(kq, 1, fflags=NOTE_TRIGGER)
    assert pending(kq) == [(1, 0, 0x31, 0)]


def test_only_low_24_bits_are_stored(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD)
    user(kq, 1, fflags=NOTE_FFCOPY | NOTE_FFLAGSMASK | NOTE_TRIGGER)
    ((_, _, fflags, _),) = pending(kq)
    assert fflags == NOTE_FFLAGSMASK


def test_data_comes_from_the_last_change(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD, data=5)
    user(kq, 1, fflags=NOTE_TRIGGER, data=9)
    assert pending(kq) == [(1, 0, 0, 9)]


def test_clear_resets_the_trigger(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD | EV_CLEAR)
    for _ in range(3):
        user(kq, 1, fflags=NOTE_TRIGGER)
        assert pending(kq) == [(1, EV_CLEAR, 0, 0)]
        assert pending(kq) == []


def test_level_user_stays_active(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD)
    user(kq, 1, fflags=NOTE_TRIGGER)
    for _ in range(3):
        assert pending(kq) == [(1, 0, 0, 0)]
    user(kq, 1, EV_CLEAR)  # FreeBSD: a change with EV_CLEAR un-triggers it
    assert pending(kq) == []


def test_oneshot_user(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD | EV_ONESHOT)
    user(kq, 1, fflags=NOTE_TRIGGER)
    assert pending(kq) == [(1, EV_ONESHOT, 0, 0)]
    with pytest.raises(FileNotFoundError):
        user(kq, 1, fflags=NOTE_TRIGGER)


def test_trigger_needs_a_registration(kq: skqueue.kqueue) -> None:
    with pytest.raises(FileNotFoundError):
        user(kq, 1, fflags=NOTE_TRIGGER)


def test_readd_does_not_untrigger(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD)
    user(kq, 1, fflags=NOTE_TRIGGER)
    user(kq, 1, EV_ADD, udata="new")
    (ev,) = kq.control(None, 8, 0)
    assert ev.udata == "new"


def test_delete_forgets_the_trigger(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD)
    user(kq, 1, fflags=NOTE_TRIGGER)
    user(kq, 1, EV_DELETE)
    user(kq, 1, EV_ADD)
    assert pending(kq) == []


def test_idents_are_per_kqueue(kq: skqueue.kqueue) -> None:
    other = skqueue.kqueue()
    try:
        user(kq, 1, EV_ADD)
        user(other, 1, EV_ADD)
        user(kq, 1, fflags=NOTE_TRIGGER)
        assert pending(other) == []
        assert pending(kq) == [(1, 0, 0, 0)]
    finally:
        other.close()


def test_many_idents(kq: skqueue.kqueue) -> None:
    for ident in range(50):
        user(kq, ident, EV_ADD | EV_CLEAR, fflags=ident)
    for ident in range(0, 50, 7):
        user(kq, ident, fflags=NOTE_TRIGGER)
    events = kq.control(None, 100, 0)
    assert sorted((ev.ident, ev.fflags) for ev in events) == [(i, i) for i in range(0, 50, 7)]


def test_trigger_from_another_thread_wakes_a_waiter(kq: skqueue.kqueue) -> None:
    user(kq, 1, EV_ADD | EV_CLEAR, udata="wake")
    trigger = threading.Timer(0.1, user, (kq, 1), {"fflags": NOTE_TRIGGER, "udata": "wake"})
    started = time.monotonic()
    trigger.start()
    events = kq.control(None, 8, 5)
    elapsed = time.monotonic() - started
    trigger.join(5)
    assert not trigger.is_alive()
    assert [(ev.ident, ev.udata) for ev in events] == [(1, "wake")]
    assert 0.09 <= elapsed < 2


def test_many_waiters_each_woken(kq: skqueue.kqueue) -> None:
    """Every trigger ends exactly one blocked wait (no wake-up is lost)."""
    n = 4
    for ident in range(n):
        user(kq, ident, EV_ADD | EV_ONESHOT)
    got: list[int] = []
    ended: list[float] = []
    lock = threading.Lock()

    def wait() -> None:
        events = kq.control(None, 1, 5)
        with lock:
            got.extend(ev.ident for ev in events)
            ended.append(time.monotonic())

    waiters = [start_thread(wait) for _ in range(n)]
    time.sleep(0.1)
    triggered = time.monotonic()
    for ident in range(n):
        user(kq, ident, fflags=NOTE_TRIGGER)
    join_all(waiters, 6)
    assert sorted(got) == list(range(n))
    assert max(ended) - triggered < 1  # nobody slept through its event until the timeout
