"""Kernel interfaces only the tests use (signalfd, FIONREAD) and waits on raw fds.

The SIGNAL filter does not use signalfd (see skqueue/filters/signal.py for why); the
tests keep a wrapper to show the kernel behaviour behind that choice.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import signal
import struct
import termios
import time
from array import array
from collections.abc import Callable, Iterable
from typing import NamedTuple

from skqueue.backend._libc import check, libc

__all__ = [
    "SigInfo",
    "bytes_readable",
    "read_signalfd",
    "signalfd",
    "wait_readable",
    "wait_until",
]

_SFD_CLOEXEC = os.O_CLOEXEC
_SFD_NONBLOCK = os.O_NONBLOCK
_ULONG_BITS = ctypes.sizeof(ctypes.c_ulong) * 8
# glibc's sigset_t is 1024 bits; its signalfd() passes the kernel-sized prefix on.
_Sigset = ctypes.c_ulong * (1024 // _ULONG_BITS)

_signalfd = libc.signalfd
_signalfd.argtypes = (ctypes.c_int, ctypes.POINTER(_Sigset), ctypes.c_int)
_signalfd.restype = ctypes.c_int

# struct signalfd_siginfo is 128 bytes; we keep signo, code, pid, uid and status.
_SIGINFO = struct.Struct("=I4xiII20xi84x")


class SigInfo(NamedTuple):
    """One delivered signal, as read from a signalfd."""

    signo: int
    code: int
    pid: int
    uid: int
    status: int


def signalfd(fd: int, signals: Iterable[int]) -> int:
    """Create (``fd == -1``) or re-mask a signalfd watching ``signals``; returns the fd.

    The signals must also be blocked in every thread, or they are delivered normally
    instead of being queued for the fd.
    """
    mask = _Sigset()
    for signo in signals:
        if not 0 < signo < signal.NSIG:
            raise OSError(errno.EINVAL, f"invalid signal number {signo}")
        word, bit = divmod(signo - 1, _ULONG_BITS)
        mask[word] |= 1 << bit
    return check(_signalfd(fd, ctypes.byref(mask), _SFD_NONBLOCK | _SFD_CLOEXEC))


def read_signalfd(fd: int) -> list[SigInfo]:
    """Read every pending signal from a non-blocking signalfd."""
    infos: list[SigInfo] = []
    while True:
        try:
            chunk = os.read(fd, 64 * _SIGINFO.size)
        except BlockingIOError:
            return infos
        infos += (SigInfo(*fields) for fields in _SIGINFO.iter_unpack(chunk))


def bytes_readable(fd: int) -> int:
    """Bytes readable now (FIONREAD)."""
    buf = array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def wait_readable(fd: int, timeout: float = 2.0) -> bool:
    """Does a raw fd become readable within ``timeout`` seconds?"""
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable)


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()
