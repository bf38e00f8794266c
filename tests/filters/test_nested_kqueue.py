"""A kqueue watched by another kqueue: EVFILT_READ with data = events pending (kq_count)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

import skqueue
from skqueue import (
    EV_ADD,
    EV_CLEAR,
    EVFILT_READ,
    EVFILT_USER,
    EVFILT_WRITE,
    NOTE_TRIGGER,
    kevent,
)
from support import KQUEUE_KINDS, nothing, one


@pytest.fixture(params=sorted(KQUEUE_KINDS))
def inner(request: pytest.FixtureRequest) -> Iterator[skqueue.kqueue]:
    made = KQUEUE_KINDS[request.param]()
    yield made
    made.close()


def _watch(outer: skqueue.kqueue, inner: skqueue.kqueue) -> None:
    outer.control([kevent(inner.fileno(), EVFILT_READ, EV_ADD)], 0)


def test_data_counts_readable_fds_not_yet_harvested(
    kq: skqueue.kqueue, inner: skqueue.kqueue
) -> None:
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        inner.control([kevent(a, EVFILT_READ, EV_ADD) for a, _ in pairs], 0)
        _watch(kq, inner)
        nothing(kq)
        for _, b in pairs[:2]:
            b.send(b"x")
        ev = one(kq)
        assert (ev.ident, ev.filter, ev.data) == (inner.fileno(), EVFILT_READ, 2)
        for a, _ in pairs[:2]:
            a.recv(1)
        # Activations stay counted until the inner kqueue is scanned (FreeBSD's
        # kq_count does the same); the scan finds them no longer ready.
        assert inner.control(None, 8, 0) == []
        nothing(kq)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_data_follows_the_inner_queue(kq: skqueue.kqueue) -> None:
    with skqueue.kqueue() as inner:
        inner.control([kevent(i, EVFILT_USER, EV_ADD | EV_CLEAR) for i in range(3)], 0)
        _watch(kq, inner)
        nothing(kq)
        inner.control([kevent(i, EVFILT_USER, 0, NOTE_TRIGGER) for i in range(3)], 0)
        assert one(kq).data == 3
        assert len(inner.control(None, 1, 0)) == 1
        assert one(kq).data == 2
        assert len(inner.control(None, 8, 0)) == 2
        nothing(kq)


def test_blocked_outer_wakes_when_the_inner_gets_an_event(kq: skqueue.kqueue) -> None:
    with skqueue.kqueue() as inner:
        inner.control([kevent(1, EVFILT_USER, EV_ADD | EV_CLEAR)], 0)
        _watch(kq, inner)
        timer = threading.Timer(0.05, inner.control, ([kevent(1, EVFILT_USER, 0, NOTE_TRIGGER)], 0))
        timer.start()
        try:
            ev = one(kq, timeout=5.0)
        finally:
            timer.join(timeout=5)
        assert not timer.is_alive()
        assert (ev.ident, ev.data) == (inner.fileno(), 1)


def test_write_filter_on_a_kqueue_is_einval(kq: skqueue.kqueue) -> None:
    with skqueue.kqueue() as inner:
        with pytest.raises(OSError) as info:
            kq.control([kevent(inner.fileno(), EVFILT_WRITE, EV_ADD)], 0)
        assert info.value.errno == 22
        _watch(kq, inner)  # READ is fine, and is refused WRITE's company too
        with pytest.raises(OSError):
            kq.control([kevent(inner.fileno(), EVFILT_WRITE, EV_ADD)], 0)


def test_closing_the_inner_drops_the_registration(kq: skqueue.kqueue) -> None:
    inner = skqueue.kqueue()
    inner.control([kevent(1, EVFILT_USER, EV_ADD), kevent(1, EVFILT_USER, 0, NOTE_TRIGGER)], 0)
    _watch(kq, inner)
    fd = inner.fileno()
    inner.close()
    nothing(kq)
    with pytest.raises(OSError):  # the knote went with the fd
        kq.control([kevent(fd, EVFILT_READ, skqueue.EV_DELETE)], 0)


def test_clear_watch_reports_each_new_inner_event_once(kq: skqueue.kqueue) -> None:
    """EV_CLEAR on a kqueue's fd: one report per event the inner kqueue queues, not
    one per poll while events wait there (FreeBSD's kqueue_peek_signal case)."""
    with skqueue.kqueue() as inner:
        inner.control([kevent(i, EVFILT_USER, EV_ADD | EV_CLEAR) for i in (1, 2)], 0)
        kq.control([kevent(inner.fileno(), EVFILT_READ, EV_ADD | EV_CLEAR)], 0)
        inner.control([kevent(1, EVFILT_USER, 0, NOTE_TRIGGER)], 0)
        (ev,) = kq.control(None, 8, 0)
        assert ev.data == 1
        for _ in range(5):
            assert kq.control(None, 8, 0) == []
        inner.control([kevent(2, EVFILT_USER, 0, NOTE_TRIGGER)], 0)
        (ev,) = kq.control(None, 8, 0)
        assert ev.data == 2
        assert kq.control(None, 8, 0) == []
