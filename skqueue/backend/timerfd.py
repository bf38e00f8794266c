"""timerfd: the one kernel timer behind each kqueue's alarm (and so its timer heap).

Python 3.11's ``os`` has no timerfd, so this goes through ctypes.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

from ._libc import check, libc

__all__ = ["timerfd_create", "timerfd_read", "timerfd_settime_ns"]

_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_TIMER_ABSTIME = 1
_NS = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


_timerfd_create = libc.timerfd_create
_timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
_timerfd_create.restype = ctypes.c_int
_timerfd_settime = libc.timerfd_settime
_timerfd_settime.argtypes = (
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(_Itimerspec),
    ctypes.POINTER(_Itimerspec),
)
_timerfd_settime.restype = ctypes.c_int


def timerfd_create() -> int:
    """Create a non-blocking, close-on-exec CLOCK_MONOTONIC timerfd (a kqueue's alarm)."""
    return check(_timerfd_create(time.CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC))


def timerfd_settime_ns(fd: int, deadline_ns: int) -> None:
    """Arm the timer for ``deadline_ns`` (absolute CLOCK_MONOTONIC time); 0 disarms."""
    spec = _Itimerspec(_Timespec(0, 0), _Timespec(*divmod(deadline_ns, _NS)))
    check(_timerfd_settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None))


def timerfd_read(fd: int) -> int:
    """Return the expirations since the last read (0 if none)."""
    try:
        data = os.read(fd, 8)
    except BlockingIOError:
        return 0
    return int.from_bytes(data, sys.byteorder)
