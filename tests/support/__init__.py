"""Helpers the tests share: the kinds of kqueue to run against and one-event waits."""

from __future__ import annotations

from collections.abc import Callable

from skqueue.event import kevent
from skqueue.kqueue import kqueue

#: The two kinds of kqueue every semantic test runs against.
KQUEUE_KINDS: dict[str, Callable[[], kqueue]] = {
    "classic": kqueue,
    "skq": lambda: kqueue(sched="best", sargs=2),
}


def one(kq: kqueue, timeout: float = 5.0) -> kevent:
    """The one event that must come (the wait ends as soon as it does)."""
    events = kq.control(None, 8, timeout)
    assert len(events) == 1, events
    return events[0]


def nothing(kq: kqueue, quiet: float = 0.05) -> None:
    """No event may come within ``quiet`` seconds."""
    events = kq.control(None, 8, quiet)
    assert events == [], events
