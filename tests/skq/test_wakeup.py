"""Wake-ups meant for the leader in epoll_wait reach it, whoever else harvests."""

from __future__ import annotations

import threading

import pytest

import skqueue
from skqueue import EV_ADD, EV_CLEAR, EVFILT_USER, NOTE_TRIGGER, kevent
from support import join_all, start_thread


def test_zero_timeout_poll_leaves_the_leaders_wake_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread's zero-timeout poll runs the handlers of what epoll reports, the
    wake-up eventfd included; drained there, the wake-up written for the leader is
    lost and the leader sleeps on in epoll_wait with an event queued for it.

    The leader is held between releasing the lock and entering epoll_wait while
    the wake-up is written and the other thread polls, so the order is certain.
    """
    kq = skqueue.kqueue(sched="random")
    core = kq._core
    assert core is not None
    real_poll = core.backend.poll
    leader_polls, gate = threading.Event(), threading.Event()

    def gated_poll(timeout: float | None, maxevents: int) -> list[tuple[int, int]]:
        if timeout != 0 and not leader_polls.is_set():  # the leader's blocking poll
            leader_polls.set()
            assert gate.wait(30)
        return real_poll(timeout, maxevents)

    monkeypatch.setattr(core.backend, "poll", gated_poll)
    try:
        kq.control([kevent(1, EVFILT_USER, EV_ADD | EV_CLEAR)], 0)
        got: list[kevent] = []
        leader = start_thread(lambda: got.extend(kq.control(None, 1, 30)))
        assert leader_polls.wait(30)  # it leads, the lock released: its kevq is the only one
        kq.control([kevent(1, EVFILT_USER, 0, NOTE_TRIGGER)], 0)  # queued there, eventfd written
        assert kq.control(None, 1, 0) == []  # this thread's new kevq is empty
        gate.set()
        join_all([leader], 10)  # far less than the leader's 30 s timeout
        assert [ev.ident for ev in got] == [1]
    finally:
        gate.set()
        kq.close()
