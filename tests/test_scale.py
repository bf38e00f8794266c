"""One kqueue with 100,000 registrations: add, wait, delete (memory: benchmarks/)."""

from __future__ import annotations

import pytest

import skqueue
from skqueue import EV_ADD, EV_DELETE, EVFILT_TIMER, EVFILT_USER, NOTE_TRIGGER, kevent

N = 100_000


@pytest.mark.timeout(120)
@pytest.mark.parametrize("filt", [EVFILT_USER, EVFILT_TIMER])
def test_hundred_thousand_registrations(filt: int) -> None:
    with skqueue.kqueue() as kq:
        data = 3_600_000 if filt == EVFILT_TIMER else 0  # timers an hour away
        for start in range(0, N, 1000):
            kq.control([kevent(i, filt, EV_ADD, 0, data) for i in range(start, start + 1000)], 0)
        assert kq.stats()["knotes"] == N
        assert kq.control(None, 64, 0) == []
        if filt == EVFILT_USER:
            fired = set(range(0, N, N // 10))
            kq.control([kevent(i, EVFILT_USER, 0, NOTE_TRIGGER) for i in fired], 0)
            assert {ev.ident for ev in kq.control(None, 64, 1)} == fired
        for start in range(0, N, 1000):
            kq.control([kevent(i, filt, EV_DELETE) for i in range(start, start + 1000)], 0)
        assert kq.stats()["knotes"] == 0
        assert kq.control(None, 64, 0) == []
