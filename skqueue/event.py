"""``kevent``: the change and event record, shaped like ``select.kevent``."""

from __future__ import annotations

from typing import Any

from .constants import EV_ADD, EVFILT_READ

__all__ = ["kevent"]


def _udata_key(udata: object) -> int:
    # select.kevent compares udata as a pointer-sized integer; ours may be any
    # object, so integers compare by value and everything else by identity.
    return udata if type(udata) is int else id(udata)


class kevent:
    """One kqueue change or event, as ``select.kevent``: FreeBSD's ``struct kevent``.

    * ``ident``: what the knote watches: an fd (an int or any object with
      ``fileno()``, stored as the int) for READ, WRITE, VNODE; a pid for PROC; a
      signal number for SIGNAL; an id of your choice for TIMER and USER; the job for AIO.
    * ``filter``: ``EVFILT_*`` (default READ); with ident it keys the knote.
    * ``flags``: ``EV_*``, what to do in a change (EV_ADD, the default, EV_DELETE,
      EV_ENABLE, EV_DISABLE, EV_ONESHOT, EV_CLEAR, EV_DISPATCH, EV_RECEIPT, ...) and
      what happened in an event (EV_EOF, EV_ERROR).
    * ``fflags``: the filter's ``NOTE_*`` flags (NOTE_LOWAT, NOTE_TRIGGER, NOTE_EXIT,
      NOTE_WRITE, ...); on a READ event at EOF, the socket error if any.
    * ``data``: the filter's number: a change's parameter (the timer period, the
      low-water mark) or an event's result (bytes readable, space to write, timer
      expirations, signal deliveries, the exit status, the errno of an EV_ERROR).
    * ``udata``: any Python object; the event carries back the very object given.

    Events compare as ``select.kevent`` ones do (udata: ints by value, other
    objects by identity) and are mutable, so not hashable.
    """

    __slots__ = ("data", "fflags", "filter", "flags", "ident", "udata")

    ident: int
    filter: int
    flags: int
    fflags: int
    data: int
    udata: Any

    def __init__(
        self,
        ident: Any,
        filter: int = EVFILT_READ,
        flags: int = EV_ADD,
        fflags: int = 0,
        data: int = 0,
        udata: Any = 0,
    ) -> None:
        if type(ident) is not int:
            ident = ident.fileno() if hasattr(ident, "fileno") else int(ident)
        self.ident = ident
        self.filter = filter
        self.flags = flags
        self.fflags = fflags
        self.data = data
        self.udata = udata

    def _key(self) -> tuple[int, int, int, int, int, int]:
        return (
            self.ident,
            self.filter,
            self.flags,
            self.fflags,
            self.data,
            _udata_key(self.udata),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, kevent):
            return NotImplemented
        return self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, kevent):
            return NotImplemented
        return self._key() != other._key()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, kevent):
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, kevent):
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, kevent):
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, kevent):
            return NotImplemented
        return self._key() >= other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, like select.kevent

    def __repr__(self) -> str:
        return (
            f"<skqueue.kevent ident={self.ident} filter={self.filter} "
            f"flags={self.flags:#x} fflags={self.fflags:#x} data={self.data:#x} "
            f"udata={self.udata!r}>"
        )
