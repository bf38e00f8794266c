"""``kevent``: the change and event record, shaped like ``select.kevent``."""

from __future__ import annotations

import operator
from typing import Any

from .constants import EV_ADD, EVFILT_READ

__all__ = ["kevent"]

# The C types select.kevent converts to on FreeBSD (selectmodule.c): ident is a
# uintptr_t, filter a short ("h", range-checked), flags an unsigned short and fflags
# an unsigned int ("H", "I": masked, as PyArg does), data an intptr_t ("l").
_IDENT_MAX = (1 << 64) - 1
_FILTER_MIN, _FILTER_MAX = -(1 << 15), (1 << 15) - 1
_FLAGS_MASK = 0xFFFF
_FFLAGS_MASK = 0xFFFFFFFF
_DATA_MIN, _DATA_MAX = -(1 << 63), (1 << 63) - 1
C_INT_MAX = (1 << 31) - 1  # a file descriptor, max_events: C ints
_new = object.__new__


def _ident(obj: Any) -> int:
    """ident as select.kevent takes it: an int, or an object with fileno()."""
    if isinstance(obj, int):
        if not 0 <= obj <= _IDENT_MAX:
            raise OverflowError(f"ident {obj} out of range for uintptr_t")
        return int(obj)
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        raise TypeError("argument must be an int, or have a fileno() method.")
    fd = fileno()
    if not isinstance(fd, int):
        raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    if fd > C_INT_MAX:
        raise OverflowError("Python int too large to convert to C int")
    return int(fd)


def _ranged(name: str, value: Any, low: int, high: int) -> int:
    """An integer field that must fit its C type (TypeError, OverflowError otherwise)."""
    number = operator.index(value)
    if not low <= number <= high:
        raise OverflowError(f"kevent {name} {number} out of range [{low}, {high}]")
    return number


def event(ident: int, filt: int, flags: int, fflags: int, data: int, udata: Any) -> kevent:
    """A kevent from fields the core already knows to be valid: skips the checks.

    Every delivered event is built here, so this is the per-event cost.
    """
    ev: kevent = _new(kevent)
    ev.ident = ident
    ev.filter = filt
    ev.flags = flags
    ev.fflags = fflags
    ev.data = data
    ev.udata = udata
    return ev


def _in_range(ident: Any, filt: Any, flags: Any, fflags: Any, data: Any) -> bool:
    """True for plain ints that fit their C types: the common case, taken as is."""
    return (
        type(ident) is int
        and type(filt) is int
        and type(flags) is int
        and type(fflags) is int
        and type(data) is int
        and 0 <= ident <= _IDENT_MAX
        and _FILTER_MIN <= filt <= _FILTER_MAX
        and 0 <= flags <= _FLAGS_MASK
        and 0 <= fflags <= _FFLAGS_MASK
        and _DATA_MIN <= data <= _DATA_MAX
    )


def checked(ev: kevent) -> None:
    """Re-validate a change whose fields were assigned after construction.

    The fields are writable, as in select.kevent; an invalid value must fail here,
    before the core applies any change, not half-way through a registration.
    """
    ident, filt, flags, fflags, data = ev.ident, ev.filter, ev.flags, ev.fflags, ev.data
    if not _in_range(ident, filt, flags, fflags, data):
        kevent.__init__(ev, ident, filt, flags, fflags, data, ev.udata)


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
      NOTE_WRITE, ...); 0 at EOF: the socket error is left for the program (see the README).
    * ``data``: the filter's number: a change's parameter (the timer period, the
      low-water mark) or an event's result (bytes readable, space to write, timer
      expirations, signal deliveries, the exit status, the errno of an EV_ERROR).
    * ``udata``: any Python object; the event carries back the very object given.

    Events compare as ``select.kevent`` ones do (udata: ints by value, other
    objects by identity) and are mutable, so not hashable.

    Fields are checked as select.kevent checks them: TypeError for a non-integer,
    OverflowError for ident, filter or data out of range; flags and fflags keep their
    low 16 and 32 bits.  A bad change fails here, where the mistake is, not in kevent().
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
        if not _in_range(ident, filter, flags, fflags, data):
            ident = _ident(ident)
            filter = _ranged("filter", filter, _FILTER_MIN, _FILTER_MAX)
            flags = operator.index(flags) & _FLAGS_MASK
            fflags = operator.index(fflags) & _FFLAGS_MASK
            data = _ranged("data", data, _DATA_MIN, _DATA_MAX)
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
