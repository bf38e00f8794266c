"""EVFILT_USER and generic kevent() cases taken from FreeBSD's kqueue regression tests.

Checklist: freebsd-src tests/sys/kqueue/libkqueue/{main,user}.c, kqueue_peek_signal.c
and kqueue_fork.c.  Only what tests/filters/test_user.py, tests/test_kqueue_api.py and
tests/contract/ do not already check is here.  FreeBSD ran its user.c cases one after
another on a single kqueue, so a knote registered by one case is still there in the next;
the sequence test keeps that, because it is how FreeBSD checks that a re-add leaves the
registration flags alone.
"""

from __future__ import annotations

import errno

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
    EVFILT_READ,
    EVFILT_USER,
    NOTE_TRIGGER,
)
from support import KQUEUE_KINDS, nothing, one


def change(kq: skqueue.kqueue, ident: int, flags: int, fflags: int = 0, udata: object = 0) -> None:
    """One EVFILT_USER change with no room for events, as FreeBSD's kevent_add()."""
    kq.control([kevent(ident, EVFILT_USER, flags, fflags, 0, udata)], 0)


def fields(ev: kevent) -> tuple[int, int, int, int, int, object]:
    """Every field FreeBSD's kevent_cmp() compares (ext[] has no counterpart here)."""
    return (ev.ident, ev.filter, ev.flags, ev.fflags, ev.data, ev.udata)


# main.c ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(KQUEUE_KINDS))
def test_new_kqueue_has_nothing_pending(kind: str) -> None:
    """main.c test_kqueue(): a fresh kqueue polls empty, then closes cleanly."""
    made = KQUEUE_KINDS[kind]()
    try:
        assert made.control(None, 1, 0) == []
    finally:
        made.close()
    assert made.closed


# user.c ------------------------------------------------------------------------------------
def test_user_c_sequence_on_one_kqueue(kq: skqueue.kqueue) -> None:
    """user.c's cases in its order, on one kqueue, with ident 1 left registered between them."""
    # add_and_delete
    change(kq, 1, EV_ADD)
    assert kq.control(None, 1, 0) == []
    change(kq, 1, EV_DELETE)
    assert kq.control(None, 1, 0) == []
    # event_wait: the event is exactly (1, USER, EV_CLEAR, 0, 0, udata)
    change(kq, 1, EV_ADD | EV_CLEAR)
    change(kq, 1, 0, NOTE_TRIGGER)
    assert fields(one(kq)) == (1, EVFILT_USER, EV_CLEAR, 0, 0, 0)
    assert kq.control(None, 1, 0) == []
    # disable_and_enable: EV_ADD again (no EV_CLEAR) modifies the same knote, which
    # keeps the EV_CLEAR it was registered with.
    change(kq, 1, EV_ADD)
    change(kq, 1, EV_DISABLE)
    change(kq, 1, 0, NOTE_TRIGGER)
    assert kq.control(None, 1, 0) == []
    change(kq, 1, EV_ENABLE)
    change(kq, 1, 0, NOTE_TRIGGER)
    assert fields(one(kq)) == (1, EVFILT_USER, EV_CLEAR, 0, 0, 0)
    # oneshot: ident 2, while ident 1 stays registered and quiet
    change(kq, 2, EV_ADD | EV_ONESHOT)
    change(kq, 2, 0, NOTE_TRIGGER)
    assert fields(one(kq)) == (2, EVFILT_USER, EV_ONESHOT, 0, 0, 0)
    assert kq.control(None, 1, 0) == []
    with pytest.raises(OSError) as info:
        change(kq, 2, EV_DELETE)
    assert info.value.errno == errno.ENOENT
    change(kq, 1, EV_DELETE)  # ident 1 was never dropped along the way


def test_readd_without_clear_keeps_clear(kq: skqueue.kqueue) -> None:
    """Registration flags come from the first EV_ADD; a later EV_ADD does not change them."""
    change(kq, 1, EV_ADD | EV_CLEAR)
    change(kq, 1, EV_ADD)
    change(kq, 1, 0, NOTE_TRIGGER)
    assert one(kq).flags == EV_CLEAR
    nothing(kq)  # still edge-triggered: the delivery reset the trigger


def test_readd_with_clear_does_not_make_a_level_knote_clear(kq: skqueue.kqueue) -> None:
    """The other direction: EV_CLEAR on a re-add resets the trigger but is not kept."""
    change(kq, 1, EV_ADD)
    change(kq, 1, EV_ADD | EV_CLEAR)
    change(kq, 1, 0, NOTE_TRIGGER)
    for _ in range(2):  # level-triggered: reported until something un-triggers it
        assert one(kq).flags == 0


def test_trigger_while_disabled_then_enable_and_trigger_is_one_event(kq: skqueue.kqueue) -> None:
    """disable_and_enable: a trigger made while disabled and one after EV_ENABLE give one event."""
    change(kq, 1, EV_ADD | EV_CLEAR)
    change(kq, 1, EV_DISABLE)
    change(kq, 1, 0, NOTE_TRIGGER)
    nothing(kq)
    change(kq, 1, EV_ENABLE)
    change(kq, 1, 0, NOTE_TRIGGER)
    assert kq.control(None, 8, 0) == [kevent(1, EVFILT_USER, EV_CLEAR, 0, 0, 0)]
    nothing(kq)


# kqueue_fork.c -----------------------------------------------------------------------------
def test_add_with_enable_reports_no_action_flags(kq: skqueue.kqueue) -> None:
    """kqueue_fork.c registers with EV_ADD | EV_ENABLE; the event carries neither bit."""
    change(kq, 0, EV_ADD | EV_ENABLE, udata="u")
    change(kq, 0, 0, NOTE_TRIGGER, udata="u")
    assert fields(one(kq)) == (0, EVFILT_USER, 0, 0, 0, "u")


def test_triggered_user_event_makes_the_kqueue_readable(kq: skqueue.kqueue) -> None:
    """kqueue_fork.c: an EVFILT_READ knote on a kqueue fires once a USER event is pending."""
    with skqueue.kqueue() as inner:
        change(inner, 0, EV_ADD | EV_ENABLE)
        kq.control([kevent(inner.fileno(), EVFILT_READ, EV_ADD | EV_ENABLE | EV_ONESHOT)], 0)
        nothing(kq)
        change(inner, 0, 0, NOTE_TRIGGER)
        ev = one(kq, timeout=2.0)
        assert (ev.ident, ev.filter, ev.flags, ev.data) == (
            inner.fileno(),
            EVFILT_READ,
            EV_ONESHOT,
            1,
        )
        nothing(kq)  # oneshot: gone after its delivery


# kqueue_peek_signal.c, with a USER event in place of the signal -----------------------------
def test_nested_event_is_visible_to_a_zero_timeout_poll(kq: skqueue.kqueue) -> None:
    """An event pending in a watched kqueue is seen at once by a poll of the outer one.

    FreeBSD watches with EV_CLEAR and checks that a second outer poll is empty; that
    form is tests/filters/test_nested_kqueue.py::test_clear_watch_reports_each_new_inner_event_once.
    Here the watch is level-triggered and draining the inner must quiet the outer.
    """
    with skqueue.kqueue() as inner:
        change(inner, 1, EV_ADD | EV_CLEAR)
        kq.control([kevent(inner.fileno(), EVFILT_READ, EV_ADD)], 0)
        for _ in range(50):
            change(inner, 1, 0, NOTE_TRIGGER)
            (ev,) = kq.control(None, 1, 0)
            assert (ev.ident, ev.data) == (inner.fileno(), 1)
            assert len(inner.control(None, 1, 0)) == 1
            assert inner.control(None, 1, 0) == []
            assert kq.control(None, 1, 0) == []
