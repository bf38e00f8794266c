"""timerfd: the one kernel timer behind each kqueue's timer heap and alarm.

Python 3.11's ``os`` has no timerfd, so this goes through ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import time

from ._libc import check, libc

__all__ = ["timerfd_create", "timerfd_read", "timerfd_settime_ns"]

_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_TIMER_ABSTIME = 1
_TFD_TIMER_CANCEL_ON_SET = 2
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


def timerfd_create(clock: int = time.CLOCK_MONOTONIC) -> int:
    """Create a non-blocking, close-on-exec timerfd (one per kqueue drives its timer heap)."""
    return check(_timerfd_create(clock, _TFD_NONBLOCK | _TFD_CLOEXEC))


def timerfd_settime_ns(
    fd: int,
    deadline_ns: int,
    *,
    absolute: bool = True,
    interval_ns: int = 0,
    cancel_on_set: bool = False,
) -> None:
    """Arm the timer for ``deadline_ns`` (absolute clock time, or a delay); 0 disarms.

    ``cancel_on_set`` makes the next read report that the wall clock was set, so
    NOTE_ABSTIME timers can be re-evaluated; the kernel honours it only for absolute
    CLOCK_REALTIME timers.
    """
    flags = (_TFD_TIMER_ABSTIME if absolute else 0) | (
        _TFD_TIMER_CANCEL_ON_SET if cancel_on_set else 0
    )
    spec = _Itimerspec(
        _Timespec(*divmod(interval_ns, _NS)),
        _Timespec(*divmod(deadline_ns, _NS)),
    )
    check(_timerfd_settime(fd, flags, ctypes.byref(spec), None))


def timerfd_read(fd: int) -> int:
    """Return the expirations since the last read: 0 if none, -1 if the clock was set."""
    try:
        data = os.read(fd, 8)
    except BlockingIOError:
        return 0
    except OSError as exc:
        if exc.errno == errno.ECANCELED:
            return -1
        raise
    return int.from_bytes(data, sys.byteorder)
