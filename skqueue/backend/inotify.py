"""inotify: the file-system notifications behind EVFILT_VNODE and READ on a growing file.

Python 3.11's ``os`` has no inotify, so this goes through ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import NamedTuple

from ._libc import check, libc

__all__ = [
    "IN_ATTRIB",
    "IN_CREATE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_IGNORED",
    "IN_ISDIR",
    "IN_MODIFY",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_MOVE_SELF",
    "IN_Q_OVERFLOW",
    "IN_UNMOUNT",
    "InotifyEvent",
    "inotify_add_watch",
    "inotify_init",
    "inotify_rm_watch",
    "read_inotify",
]

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000

_IN_CLOEXEC = os.O_CLOEXEC
_IN_NONBLOCK = os.O_NONBLOCK
_INOTIFY_HEADER = struct.Struct("=iIII")
# A header plus the longest name (NAME_MAX + NUL, padded): the largest single event.
_INOTIFY_MAX_EVENT = _INOTIFY_HEADER.size + 256
_READ_SIZE = 64 * 1024

_inotify_init1 = libc.inotify_init1
_inotify_init1.argtypes = (ctypes.c_int,)
_inotify_init1.restype = ctypes.c_int
_inotify_add_watch = libc.inotify_add_watch
_inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
_inotify_add_watch.restype = ctypes.c_int
_inotify_rm_watch = libc.inotify_rm_watch
_inotify_rm_watch.argtypes = (ctypes.c_int, ctypes.c_int)
_inotify_rm_watch.restype = ctypes.c_int


class InotifyEvent(NamedTuple):
    """One inotify event; ``name`` is empty for events on the watched object itself."""

    wd: int
    mask: int
    cookie: int
    name: str


def inotify_init() -> int:
    """Create a non-blocking, close-on-exec inotify instance."""
    return check(_inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))


def inotify_add_watch(fd: int, path: str | bytes, mask: int) -> int:
    """Watch ``path``; returns the watch descriptor (the same one for the same inode)."""
    return check(_inotify_add_watch(fd, os.fsencode(path), mask))


def inotify_rm_watch(fd: int, wd: int) -> None:
    """Stop watching; EINVAL (watch already gone, e.g. file deleted) is not an error."""
    try:
        check(_inotify_rm_watch(fd, wd))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise


def _drain(fd: int) -> list[bytes]:
    """Every chunk a non-blocking inotify fd has queued.

    The kernel packs as many whole events as fit into one read, so a read that left
    room for the largest possible event proves the queue was empty: no extra EAGAIN
    round trip is needed in the common case.
    """
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return chunks
        chunks.append(chunk)
        if _READ_SIZE - len(chunk) >= _INOTIFY_MAX_EVENT:
            return chunks


def read_inotify(fd: int) -> list[InotifyEvent]:
    """Read every pending event from a non-blocking inotify fd."""
    events: list[InotifyEvent] = []
    header_size = _INOTIFY_HEADER.size
    for chunk in _drain(fd):
        offset = 0
        while offset < len(chunk):
            wd, mask, cookie, length = _INOTIFY_HEADER.unpack_from(chunk, offset)
            offset += header_size
            name = chunk[offset : offset + length].rstrip(b"\0")
            offset += length
            events.append(InotifyEvent(wd, mask, cookie, os.fsdecode(name)))
    return events
