"""Filter drivers for the kqueue contract suite (``test_contract.py``).

The contract (add, delete, ENOENT, disable/enable, ONESHOT, DISPATCH, RECEIPT,
udata, modify, draining, two kqueues, CLEAR) is the same for every filter; only
how to make an ident, how to make it fire and what a delivery carries differ.  A
*driver* captures exactly that, so one test body checks every filter.

Driver interface (subclass :class:`Driver`; one instance per test):

* class attributes
  - ``name``: test id; ``filter``: the EVFILT_* number.
  - ``fflags``/``data``: what to register with (EV_ADD's fflags and data).
  - ``implied_flags``: flags the filter adds to every delivery on its own
    (FreeBSD sets EV_CLEAR on timers, signals and processes).
  - ``shared``: True if the ident names a kernel object that every kqueue sees
    (an fd, a pid, a signal); False if it is a name private to each kqueue
    (timer and user ids), so each kqueue's knote must be fired separately.
  - ``level``: True if, without EV_CLEAR, a fired knote stays reported until
    :meth:`quiet` (READ, WRITE, USER); False if each firing is reported once.
  - ``settle``: seconds a "nothing is reported" check waits (0 polls).
  - ``main_thread_add``: True if the first knote on an ident can only be added on
    the main thread (EVFILT_SIGNAL: CPython installs signal handlers only there).
* ``open() -> int``: create what the ident names and return the ident.
* ``fire(reg)``: make the knote ``reg`` ready (once more); must return only when
  the event is due, so a wait right after it sees the event.
* ``quiet(reg)``: make it not ready any more (only called when ``level``).
* ``check(ev)``: assert the data/fflags of one delivery after ``fire``.
* ``modified() -> (fflags, data)`` and ``check_modified(events)``: an EV_ADD on
  the existing knote with these values must change what the next ``fire``
  reports, and ``check_modified`` asserts the changed outcome.
* ``unexplained(events, late)``: of the events a "nothing is reported" check saw,
  those the contract forbids, given that ``late`` seconds passed since the test last
  touched the registration (all of them, unless the filter fires on its own clock).
* ``close()``: free everything ``open`` made.

Further drivers may live in ``drivers_extra.py`` next to this file, which must
define ``DRIVERS: list[type[Driver]]``; the suite runs them when the module exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import socket
import time
from dataclasses import dataclass, field
from typing import ClassVar

import skqueue
from skqueue.constants import (
    EV_CLEAR,
    EVFILT_READ,
    EVFILT_TIMER,
    EVFILT_USER,
    EVFILT_WRITE,
    NOTE_FFCOPY,
    NOTE_LOWAT,
    NOTE_SECONDS,
    NOTE_TRIGGER,
)


@dataclass
class Reg:
    """One registration under test: the kqueue, the ident and its udata."""

    kq: skqueue.kqueue
    ident: int
    udata: object = field(default_factory=object)
    #: When the test last changed, fired or received this registration (monotonic).
    touched: float = field(default_factory=time.monotonic)


class Driver:
    """How the contract suite exercises one filter (see the module docstring)."""

    name: ClassVar[str]
    filter: ClassVar[int]
    fflags: ClassVar[int] = 0
    data: ClassVar[int] = 0
    implied_flags: ClassVar[int] = 0
    shared: ClassVar[bool] = True
    level: ClassVar[bool] = True
    settle: ClassVar[float] = 0.05
    main_thread_add: ClassVar[bool] = False

    def open(self) -> int:
        raise NotImplementedError

    def fire(self, reg: Reg) -> None:
        raise NotImplementedError

    def quiet(self, reg: Reg) -> None:
        raise NotImplementedError

    def check(self, ev: skqueue.kevent) -> None:
        raise NotImplementedError

    def modified(self) -> tuple[int, int]:
        raise NotImplementedError

    def check_modified(self, events: list[skqueue.kevent]) -> None:
        raise NotImplementedError

    def unexplained(self, events: list[skqueue.kevent], late: float) -> list[skqueue.kevent]:
        return events

    def close(self) -> None:
        """Nothing to free unless open() made something."""


class ReadDriver(Driver):
    """EVFILT_READ on one end of a socketpair; data = bytes written and unread."""

    name = "read"
    filter = EVFILT_READ

    def open(self) -> int:
        self.mine, self.peer = socket.socketpair()
        self.pending = 0
        return self.mine.fileno()

    def fire(self, reg: Reg) -> None:
        self.peer.send(b"x")
        self.pending += 1

    def quiet(self, reg: Reg) -> None:
        assert self.mine.recv(65536) == b"x" * self.pending
        self.pending = 0

    def check(self, ev: skqueue.kevent) -> None:
        assert (ev.data, ev.fflags) == (self.pending, 0)

    def modified(self) -> tuple[int, int]:
        return NOTE_LOWAT, 1 << 16  # one byte no longer reaches the low-water mark

    def check_modified(self, events: list[skqueue.kevent]) -> None:
        assert events == []

    def close(self) -> None:
        self.mine.close()
        self.peer.close()


class WriteDriver(Driver):
    """EVFILT_WRITE on a socketpair end whose send buffer is full until fired."""

    name = "write"
    filter = EVFILT_WRITE

    def open(self) -> int:
        self.mine, self.peer = socket.socketpair()
        self.mine.setblocking(False)
        self.peer.setblocking(False)
        self.sndbuf = self.mine.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self._fill()
        return self.mine.fileno()

    def _fill(self) -> None:
        try:
            while True:
                self.mine.send(b"\0" * 65536)
        except BlockingIOError:
            pass

    def fire(self, reg: Reg) -> None:
        """Fill the buffer, then the peer reads everything: it is all free again."""
        self._fill()
        try:
            while self.peer.recv(1 << 20):
                pass
        except BlockingIOError:
            pass

    def quiet(self, reg: Reg) -> None:
        self._fill()

    def check(self, ev: skqueue.kevent) -> None:
        assert (ev.data, ev.fflags) == (self.sndbuf, 0)

    def modified(self) -> tuple[int, int]:
        return NOTE_LOWAT, 4 * self.sndbuf  # more space than the buffer can ever have

    def check_modified(self, events: list[skqueue.kevent]) -> None:
        assert events == []

    def close(self) -> None:
        self.mine.close()
        self.peer.close()


class TimerDriver(Driver):
    """A periodic EVFILT_TIMER; firing is waiting out one period."""

    name = "timer"
    filter = EVFILT_TIMER
    PERIOD_MS = 100
    data = PERIOD_MS
    implied_flags = EV_CLEAR
    shared = False
    level = False
    settle = 0.0  # the next expiry is a period away: look, do not wait
    _ids = itertools.count(1)

    def open(self) -> int:
        return next(self._ids)

    def fire(self, reg: Reg) -> None:
        # Any stretch of one period contains an expiry of a periodic timer.
        time.sleep(self.PERIOD_MS * 1.25 / 1000)
        reg.touched = time.monotonic()

    def check(self, ev: skqueue.kevent) -> None:
        assert ev.fflags == 0
        assert 1 <= ev.data <= 3  # expirations since the last delivery

    def modified(self) -> tuple[int, int]:
        return NOTE_SECONDS, self.PERIOD_MS  # same number, now in seconds

    def unexplained(self, events: list[skqueue.kevent], late: float) -> list[skqueue.kevent]:
        # "Look, do not wait" takes microseconds; a look that a stalled machine made
        # half a period late may see the next expiry, as many as the time allows.
        if late < self.PERIOD_MS / 2000:
            return events
        most = int(late * 1000 / self.PERIOD_MS) + 1
        return [ev for ev in events if not 1 <= ev.data <= most]

    def check_modified(self, events: list[skqueue.kevent]) -> None:
        assert events == []


class UserDriver(Driver):
    """EVFILT_USER; firing is NOTE_TRIGGER (a change, so it restates udata)."""

    name = "user"
    filter = EVFILT_USER
    fflags = 0x0000A5
    data = 7
    shared = False
    settle = 0.0  # triggering is synchronous
    _ids = itertools.count(1)

    def open(self) -> int:
        return next(self._ids)

    def fire(self, reg: Reg) -> None:
        reg.kq.control(
            [skqueue.kevent(reg.ident, EVFILT_USER, 0, NOTE_TRIGGER, self.data, reg.udata)], 0
        )

    def quiet(self, reg: Reg) -> None:
        reg.kq.control(
            [skqueue.kevent(reg.ident, EVFILT_USER, EV_CLEAR, 0, self.data, reg.udata)], 0
        )

    def check(self, ev: skqueue.kevent) -> None:
        assert (ev.fflags, ev.data) == (self.fflags, self.data)

    def modified(self) -> tuple[int, int]:
        return NOTE_FFCOPY | 0x123456, self.data

    def check_modified(self, events: list[skqueue.kevent]) -> None:
        assert [(ev.fflags, ev.data) for ev in events] == [(0x123456, self.data)]


DRIVERS: list[type[Driver]] = [ReadDriver, WriteDriver, TimerDriver, UserDriver]


def all_drivers() -> list[type[Driver]]:
    """These drivers plus those of ``drivers_extra`` when that module exists."""
    name = f"{__package__}.drivers_extra"
    if importlib.util.find_spec(name) is None:
        return list(DRIVERS)
    extra: list[type[Driver]] = importlib.import_module(name).DRIVERS
    return [*DRIVERS, *extra]
