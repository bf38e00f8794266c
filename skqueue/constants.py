"""kqueue constants with FreeBSD's values, in BSD and CPython (``KQ_*``) spelling.

The values are FreeBSD's so that code ported from C or from ``select.kqueue`` on
a BSD keeps working unchanged.  The SKQ constants follow rcslab/freebsd-skq; the
encodings of ``FKQTUNE`` and ``KQTUNE_MAKE`` are ours (the original never fixed
them in a public header).
"""

from __future__ import annotations

# Filters.
EVFILT_READ = -1
EVFILT_WRITE = -2
EVFILT_AIO = -3
EVFILT_VNODE = -4
EVFILT_PROC = -5
EVFILT_SIGNAL = -6
EVFILT_TIMER = -7
EVFILT_LIO = -10
EVFILT_USER = -11

# Actions.
EV_ADD = 0x0001
EV_DELETE = 0x0002
EV_ENABLE = 0x0004
EV_DISABLE = 0x0008
EV_KEEPUDATA = 0x0200  # a change to an existing knote leaves its udata alone
# Flags.
EV_ONESHOT = 0x0010
EV_CLEAR = 0x0020
EV_RECEIPT = 0x0040
EV_DISPATCH = 0x0080
EV_REALTIME = 0x0400
EV_SYSFLAGS = 0xF000
EV_FLAG1 = 0x2000
# Returned values.
EV_EOF = 0x8000
EV_ERROR = 0x4000

# EVFILT_USER.
NOTE_FFNOP = 0x00000000
NOTE_FFAND = 0x40000000
NOTE_FFOR = 0x80000000
NOTE_FFCOPY = 0xC0000000
NOTE_FFCTRLMASK = 0xC0000000
NOTE_FFLAGSMASK = 0x00FFFFFF
NOTE_TRIGGER = 0x01000000

# EVFILT_READ / EVFILT_WRITE.
NOTE_LOWAT = 0x0001

# EVFILT_VNODE.
NOTE_DELETE = 0x0001
NOTE_WRITE = 0x0002
NOTE_EXTEND = 0x0004
NOTE_ATTRIB = 0x0008
NOTE_LINK = 0x0010
NOTE_RENAME = 0x0020
NOTE_REVOKE = 0x0040

# EVFILT_PROC.
NOTE_EXIT = 0x80000000
NOTE_FORK = 0x40000000
NOTE_EXEC = 0x20000000
NOTE_PCTRLMASK = 0xF0000000
NOTE_PDATAMASK = 0x000FFFFF
NOTE_TRACK = 0x00000001
NOTE_TRACKERR = 0x00000002
NOTE_CHILD = 0x00000004

# EVFILT_TIMER.
NOTE_SECONDS = 0x00000001
NOTE_MSECONDS = 0x00000002
NOTE_USECONDS = 0x00000004
NOTE_NSECONDS = 0x00000008
NOTE_ABSTIME = 0x00000010

# SKQ: multi-threaded mode and its tunables.
FKQMULTI = 0x20006659  # _IO('f', 89), as in freebsd-skq
FKQTUNE = 0x2000665B  # _IO('f', 91): ours
KQ_SCHED_QUEUE = 0x01
KQ_SCHED_CPU = 0x02
KQ_SCHED_BEST = 0x04
# Ours, outside freebsd-skq's bits: measure the workload and pick one of the above.
KQ_SCHED_AUTO = 0x80
KQ_SCHED_FEAT_WS = 0x01
KQTUNE_RTSHARE = 0
KQTUNE_FREQ = 1
KQTUNE_RTRESERVE = 2  # ours: kevqs kept for EV_REALTIME events (0..1024)


def KQSCHED_MAKE(sched: int, sargs: int, feat: int, fargs: int) -> int:
    """Pack a scheduler choice the way freebsd-skq's FKQMULTI argument does."""
    return (sched & 0xFF) | (sargs & 0xFF) << 8 | (feat & 0xFF) << 16 | (fargs & 0xFF) << 24


def KQSCHED_PARSE(value: int) -> tuple[int, int, int, int]:
    """Inverse of :func:`KQSCHED_MAKE`: (sched, sargs, feat, fargs)."""
    return value & 0xFF, value >> 8 & 0xFF, value >> 16 & 0xFF, value >> 24 & 0xFF


def KQTUNE_MAKE(obj: int, val: int) -> int:
    """Pack a tunable id and value for FKQTUNE: id in the top byte, value below."""
    return (obj & 0xFF) << 24 | (val & 0xFFFFFF)


def KQTUNE_PARSE(value: int) -> tuple[int, int]:
    """Inverse of :func:`KQTUNE_MAKE`: (obj, val)."""
    return value >> 24 & 0xFF, value & 0xFFFFFF


# CPython's ``select`` spelling.
KQ_FILTER_READ = EVFILT_READ
KQ_FILTER_WRITE = EVFILT_WRITE
KQ_FILTER_AIO = EVFILT_AIO
KQ_FILTER_VNODE = EVFILT_VNODE
KQ_FILTER_PROC = EVFILT_PROC
KQ_FILTER_SIGNAL = EVFILT_SIGNAL
KQ_FILTER_TIMER = EVFILT_TIMER
KQ_FILTER_USER = EVFILT_USER
KQ_EV_ADD = EV_ADD
KQ_EV_DELETE = EV_DELETE
KQ_EV_ENABLE = EV_ENABLE
KQ_EV_DISABLE = EV_DISABLE
KQ_EV_ONESHOT = EV_ONESHOT
KQ_EV_CLEAR = EV_CLEAR
KQ_EV_RECEIPT = EV_RECEIPT
KQ_EV_DISPATCH = EV_DISPATCH
KQ_EV_SYSFLAGS = EV_SYSFLAGS
KQ_EV_FLAG1 = EV_FLAG1
KQ_EV_EOF = EV_EOF
KQ_EV_ERROR = EV_ERROR
KQ_NOTE_LOWAT = NOTE_LOWAT
KQ_NOTE_DELETE = NOTE_DELETE
KQ_NOTE_WRITE = NOTE_WRITE
KQ_NOTE_EXTEND = NOTE_EXTEND
KQ_NOTE_ATTRIB = NOTE_ATTRIB
KQ_NOTE_LINK = NOTE_LINK
KQ_NOTE_RENAME = NOTE_RENAME
KQ_NOTE_REVOKE = NOTE_REVOKE
KQ_NOTE_EXIT = NOTE_EXIT
KQ_NOTE_FORK = NOTE_FORK
KQ_NOTE_EXEC = NOTE_EXEC
KQ_NOTE_PCTRLMASK = NOTE_PCTRLMASK
KQ_NOTE_PDATAMASK = NOTE_PDATAMASK
KQ_NOTE_TRACK = NOTE_TRACK
KQ_NOTE_CHILD = NOTE_CHILD
KQ_NOTE_TRACKERR = NOTE_TRACKERR

#: Names that ``skqueue.install()`` copies into the ``select`` module.
SELECT_NAMES = tuple(name for name in dir() if name.startswith("KQ_") and name.isupper())
__all__ = [
    "EVFILT_AIO",
    "EVFILT_LIO",
    "EVFILT_PROC",
    "EVFILT_READ",
    "EVFILT_SIGNAL",
    "EVFILT_TIMER",
    "EVFILT_USER",
    "EVFILT_VNODE",
    "EVFILT_WRITE",
    "EV_ADD",
    "EV_CLEAR",
    "EV_DELETE",
    "EV_DISABLE",
    "EV_DISPATCH",
    "EV_ENABLE",
    "EV_EOF",
    "EV_ERROR",
    "EV_FLAG1",
    "EV_KEEPUDATA",
    "EV_ONESHOT",
    "EV_REALTIME",
    "EV_RECEIPT",
    "EV_SYSFLAGS",
    "FKQMULTI",
    "FKQTUNE",
    "KQSCHED_MAKE",
    "KQSCHED_PARSE",
    "KQTUNE_FREQ",
    "KQTUNE_MAKE",
    "KQTUNE_PARSE",
    "KQTUNE_RTRESERVE",
    "KQTUNE_RTSHARE",
    "KQ_EV_ADD",
    "KQ_EV_CLEAR",
    "KQ_EV_DELETE",
    "KQ_EV_DISABLE",
    "KQ_EV_DISPATCH",
    "KQ_EV_ENABLE",
    "KQ_EV_EOF",
    "KQ_EV_ERROR",
    "KQ_EV_FLAG1",
    "KQ_EV_ONESHOT",
    "KQ_EV_RECEIPT",
    "KQ_EV_SYSFLAGS",
    "KQ_FILTER_AIO",
    "KQ_FILTER_PROC",
    "KQ_FILTER_READ",
    "KQ_FILTER_SIGNAL",
    "KQ_FILTER_TIMER",
    "KQ_FILTER_USER",
    "KQ_FILTER_VNODE",
    "KQ_FILTER_WRITE",
    "KQ_NOTE_ATTRIB",
    "KQ_NOTE_CHILD",
    "KQ_NOTE_DELETE",
    "KQ_NOTE_EXEC",
    "KQ_NOTE_EXIT",
    "KQ_NOTE_EXTEND",
    "KQ_NOTE_FORK",
    "KQ_NOTE_LINK",
    "KQ_NOTE_LOWAT",
    "KQ_NOTE_PCTRLMASK",
    "KQ_NOTE_PDATAMASK",
    "KQ_NOTE_RENAME",
    "KQ_NOTE_REVOKE",
    "KQ_NOTE_TRACK",
    "KQ_NOTE_TRACKERR",
    "KQ_NOTE_WRITE",
    "KQ_SCHED_AUTO",
    "KQ_SCHED_BEST",
    "KQ_SCHED_CPU",
    "KQ_SCHED_FEAT_WS",
    "KQ_SCHED_QUEUE",
    "NOTE_ABSTIME",
    "NOTE_ATTRIB",
    "NOTE_CHILD",
    "NOTE_DELETE",
    "NOTE_EXEC",
    "NOTE_EXIT",
    "NOTE_EXTEND",
    "NOTE_FFAND",
    "NOTE_FFCOPY",
    "NOTE_FFCTRLMASK",
    "NOTE_FFLAGSMASK",
    "NOTE_FFNOP",
    "NOTE_FFOR",
    "NOTE_FORK",
    "NOTE_LINK",
    "NOTE_LOWAT",
    "NOTE_MSECONDS",
    "NOTE_NSECONDS",
    "NOTE_PCTRLMASK",
    "NOTE_PDATAMASK",
    "NOTE_RENAME",
    "NOTE_REVOKE",
    "NOTE_SECONDS",
    "NOTE_TRACK",
    "NOTE_TRACKERR",
    "NOTE_TRIGGER",
    "NOTE_USECONDS",
    "NOTE_WRITE",
]
