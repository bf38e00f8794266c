"""The C library, for the calls Python's ``os`` and ``socket`` do not wrap.

Every wrapper raises ``OSError`` with the kernel's errno, so callers can map failures
straight onto kevent's EV_ERROR ``data``.
"""

from __future__ import annotations

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)


def check(result: int) -> int:
    """Turn libc's -1/errno convention into OSError."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result
