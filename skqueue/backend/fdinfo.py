"""What one fd's buffers hold and its socket options: the per-fd queries of READ/WRITE.

These are plain ioctl/fcntl/getsockopt calls on the watched fd itself; sock_diag,
which needs a socket of its own, is in ``sockdiag``.
"""

from __future__ import annotations

import ctypes
import fcntl
import termios
import threading
from array import array

from ._libc import check, libc

__all__ = ["getsockopt_int", "pipe_capacity", "socket_outq"]


class _ThreadState(threading.local):
    """Per-thread scratch state: the hot-path ioctl buffer.

    It holds no kernel object: threading.local drops a dead thread's state without
    closing anything (see sockdiag's pool for the sockets that need closing).
    """

    def __init__(self) -> None:
        self.int_buf = array("i", [0])


_tls = _ThreadState()


def pipe_capacity(fd: int) -> int:
    """A pipe's buffer size, so EVFILT_WRITE can report free space (minus FIONREAD)."""
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def socket_outq(fd: int) -> int:
    """Bytes queued in a socket's send buffer, for EVFILT_WRITE's free space.

    TCP counts unsent plus unacknowledged bytes; AF_UNIX counts the memory charged to
    the sender until the peer reads, overhead included, so it exceeds the payload.
    """
    buf = _tls.int_buf
    fcntl.ioctl(fd, termios.TIOCOUTQ, buf)
    return buf[0]


def getsockopt_int(fd: int, level: int, option: int) -> int:
    """An int socket option, straight on the fd (no dup and socket object per call)."""
    value = ctypes.c_int(0)
    size = ctypes.c_uint32(ctypes.sizeof(value))
    check(libc.getsockopt(fd, level, option, ctypes.byref(value), ctypes.byref(size)))
    return value.value
