"""The knote and the filter interface every filter implements.

A filter is instantiated once per kqueue (like FreeBSD's ``filterops`` plus the
per-kqueue state a Linux mapping needs: a timer heap, pidfds, inotify watches).
All methods run with the kqueue lock held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backend.cpu import current_cpu
from ..constants import EV_CLEAR, EV_DISPATCH, EV_ONESHOT, EV_REALTIME, EV_RECEIPT

if TYPE_CHECKING:
    from ..core import KqueueCore
    from ..event import kevent
    from ..sched.kevq import Kevq

# Knote status bits (kn.status).
KN_ACTIVE = 0x01  # the filter has something to report
KN_QUEUED = 0x02  # sitting in a kevq
KN_DISABLED = 0x04  # EV_DISABLE or delivered with EV_DISPATCH
KN_DETACHED = 0x08  # deleted; any reference left behind is stale
KN_REARMED = 0x10  # delivery already re-armed it: its release has nothing to do

#: The registration flags a knote keeps (action bits are not stored).
KN_KEPT_FLAGS = EV_ONESHOT | EV_CLEAR | EV_DISPATCH | EV_RECEIPT | EV_REALTIME


class Knote:
    """One registration, keyed by (ident, filter) within a kqueue."""

    __slots__ = (
        "data",
        "fflags",
        "filter",
        "flags",
        "group",
        "hook",
        "ident",
        "kevq",
        "oflags",
        "ops",
        "owner",
        "sdata",
        "sfflags",
        "status",
        "udata",
    )

    def __init__(self, ops: Filter, ev: kevent) -> None:
        self.ops = ops
        self.ident: int = ev.ident
        self.filter: int = ev.filter
        self.flags: int = ev.flags & KN_KEPT_FLAGS
        self.sfflags: int = ev.fflags
        self.sdata: int = ev.data
        self.udata: Any = ev.udata
        self.status = 0
        # What the next delivery reports, filled by the filter.
        self.data = 0
        self.fflags = 0
        self.oflags = 0  # EV_EOF and friends
        self.kevq: Kevq | None = None  # the kevq it is queued on
        self.owner: Kevq | None = None  # the kevq that owns it (multi mode)
        self.group: int = -1  # CPU group it is bound to (queue affinity)
        self.hook: Any = None  # filter-private state

    def __repr__(self) -> str:
        return f"<Knote ident={self.ident} filter={self.filter} status={self.status:#x}>"


class Filter:
    """Default behaviour of a filter; subclasses override what they need."""

    #: True when ident is a file descriptor (closing it drops the knote).
    is_fd = False

    def __init__(self, core: KqueueCore) -> None:
        self.core = core

    def attach(self, kn: Knote) -> None:
        """Start watching; raise OSError(errno) to refuse the registration."""

    def detach(self, kn: Knote) -> None:
        """Stop watching and free what attach took."""

    def touch(self, kn: Knote, ev: kevent) -> None:
        """Apply a change to an existing knote (FreeBSD's EVENT_REGISTER)."""
        kn.sfflags = ev.fflags
        kn.sdata = ev.data

    def deliver(self, kn: Knote) -> bool:
        """Fill kn.data/fflags/oflags for delivery; False if not ready after all."""
        return True

    def clear(self, kn: Knote) -> None:
        """Reset state after an EV_CLEAR delivery."""
        kn.data = 0
        kn.fflags = 0

    def recheck(self, kn: Knote) -> None:
        """Re-evaluate readiness after a change or a release; activate kn if ready."""

    def stale(self, kn: Knote) -> bool:
        """True if kn's ident no longer names what it was registered on."""
        return False

    def activation_cpu(self, kn: Knote) -> int:
        """The CPU this activation happened on (for CPU and queue affinity)."""
        return current_cpu()

    def close(self) -> None:
        """Free per-kqueue resources when the kqueue closes."""

    def abandon(self) -> None:
        """In a fork() child: close this filter's fds, changing nothing in the kernel."""
