"""The knote, the filter interface, and the kqueue as a filter sees it.

These are the data structures the core and the filters share, as FreeBSD's
``sys/event.h`` declares ``struct knote`` and ``struct filterops`` together.  A
filter is given a :class:`KqueueHost` (the core implements it) and talks to its
kqueue through that protocol alone: it never imports the core or the handle
module, and it never touches the knote table.  The knote states and who may
change them are described in the core's header.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from .backend.cpu import current_cpu
from .constants import EV_CLEAR, EV_DISPATCH, EV_ONESHOT, EV_REALTIME, EV_RECEIPT

if TYPE_CHECKING:
    from .backend.epoll import Poller
    from .backend.watcher import Watcher
    from .event import kevent
    from .sched.kevq import Kevq

# Knote status bits (kn.status); the core's header has the table of transitions.
KN_ACTIVE = 0x01  # the filter has something to report
KN_QUEUED = 0x02  # sitting in a kevq
KN_DISABLED = 0x04  # EV_DISABLE or delivered with EV_DISPATCH
KN_DETACHED = 0x08  # deleted; any reference left behind is stale
KN_REPORTED = 0x10  # reported straight from the current harvest (see KqueueHost.report_now)
KN_OWNED = 0x20  # delivered to a kevq (kn.owner) that keeps it until its next wait

#: The registration flags a knote keeps (action bits are not stored).
KN_KEPT_FLAGS = EV_ONESHOT | EV_CLEAR | EV_DISPATCH | EV_RECEIPT | EV_REALTIME


class Delivery(enum.Enum):
    """What :meth:`Filter.deliver` found."""

    SKIP = 0  # not ready after all: nothing to report
    REPORT = 1  # report it; its release re-arms it
    REPORT_REARMED = 2  # report it; the delivery itself re-armed it, so no release is due


SKIP = Delivery.SKIP
REPORT = Delivery.REPORT
REPORT_REARMED = Delivery.REPORT_REARMED


class Knote:
    """One registration, keyed by (ident, filter) within a kqueue."""

    __slots__ = (
        "data",
        "fflags",
        "filter",
        "flags",
        "group",
        "guard",
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

    def __init__(self, ops: Filter, ev: kevent, guard: threading.Lock) -> None:
        self.ops = ops
        # What guards status, kevq and owner (the core's header, "The SKQ wait"): the
        # kqueue lock, or on an SKQ kqueue a lock its filter gives it (FdWatch.guard).
        self.guard = guard
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
        self.kevq: Kevq | None = None  # the kevq it is queued on (the core's)
        self.owner: Kevq | None = None  # the kevq that owns it (the core's, multi mode)
        self.group: int = -1  # CPU group it is bound to (queue affinity)
        self.hook: Any = None  # filter-private state

    def __repr__(self) -> str:
        return f"<Knote ident={self.ident} filter={self.filter} status={self.status:#x}>"


class NestedKqueue(Protocol):
    """Another kqueue, watched by an EVFILT_READ knote on its fd."""

    def pending(self) -> tuple[int, int] | None:
        """Its pending events (FreeBSD's kq_count) and how many activations it has
        queued so far, read together under its lock; None if that lock stays busy."""


class KqueueHost(Protocol):
    """What a filter may ask of its kqueue; everything else of the kqueue is the core's.

    Every verb but ``post`` and the ``*_from_thread`` ones is called from a filter
    method or a handler the poller runs, with the kqueue lock held (on an SKQ kqueue,
    a guarded handler holds its knotes' guard instead, and may only ``activate``);
    those three take the lock, for threads that hold no kqueue lock (the AIO workers,
    the signal hub).
    """

    @property
    def poller(self) -> Poller:
        """The kqueue's epoll set and alarm."""

    @property
    def speedups(self) -> ModuleType | None:
        """The C accelerator serving this kqueue (``skqueue.accel``), or None: pure Python."""

    @property
    def parallel(self) -> bool:
        """Whether an SKQ wait runs without the kqueue lock (free-threaded CPython), so
        that a filter should give its knotes guards of their own (``Knote.guard``)."""

    @property
    def watcher(self) -> Watcher:
        """The kqueue's shared inotify watcher."""

    def activate(self, kn: Knote) -> None:
        """kn has something to report: queue it, unless it is queued, owned or disabled."""

    def activate_from_thread(self, find: Callable[[], Knote | None]) -> None:
        """Take the lock; find() records what happened and names the knote to activate.

        Nothing happens once the kqueue is closed.
        """

    @property
    def reports_now(self) -> bool:
        """Whether report_now can ever take a knote: a classic kqueue.

        Fixed before the first registration (FKQMULTI is refused after any kevent()
        call), so a handler may ask once, when it is made, and spare SKQ a call per event.
        """

    def report_now(self, kn: Knote, fill: Callable[[Knote], bool]) -> bool:
        """The classic fast path, from a handler: report ready kn without queueing it.

        While a classic wait harvests into an empty queue and has room, the core
        calls fill(kn), which delivers kn on the spot (fills its fields, re-arms
        it; False: not ready by the short way) and then marks it KN_REPORTED for
        the rest of the harvest.  False: not taken, activate kn as usual.
        """

    def post(self, ev: kevent, hook: object) -> Knote:
        """Register the knote ev describes for the kernel side (AIO's SIGEV_KEVENT).

        kevent() cannot make such a knote: its filter's attach sees kn.hook already
        set to hook (FreeBSD's EV_FLAG1).  Takes the lock; OSError(EBADF) once the
        kqueue is closed.
        """

    def drop(self, kn: Knote) -> None:
        """Delete kn now (it is found gone: a closed fd, a file replaced, an exit)."""

    def drop_fd(self, fd: int) -> None:
        """fd was closed behind the kqueue's back: every knote on it goes."""

    def drop_from_thread(self, kn: Knote) -> None:
        """drop() for a thread that holds no kqueue lock."""

    def nested_kqueue(self, fd: int) -> NestedKqueue | None:
        """The open skqueue kqueue whose fd this is, if any."""

    def set_before_wait(self, hook: Callable[[], None] | None) -> None:
        """Run hook before each kevent() takes the lock (None: no hook)."""


class Filter:
    """Default behaviour of a filter (FreeBSD's filterops); subclasses override what they need.

    A filter is instantiated once per kqueue, with the per-kqueue state a Linux
    mapping needs.  Its methods run with the kqueue lock and the knote's guard held,
    but those the SKQ wait calls with the guard alone (begin_unlocked, finish,
    settle, and the handlers of an fd added ``guarded``) and measure_unlocked.
    """

    #: True when ident is a file descriptor (closing it drops the knote).
    is_fd = False

    def __init__(self, kq: KqueueHost) -> None:
        self.kq = kq

    def attach(self, kn: Knote) -> None:
        """Start watching; raise OSError(errno) to refuse the registration."""

    def detach(self, kn: Knote) -> None:
        """Stop watching and free what attach took."""

    def touch(self, kn: Knote, ev: kevent) -> None:
        """Apply a change to an existing knote (FreeBSD's EVENT_REGISTER)."""
        kn.sfflags = ev.fflags
        kn.sdata = ev.data

    def deliver(self, kn: Knote) -> Delivery:
        """Fill kn.data/fflags/oflags for delivery, and say what to do with it."""
        return REPORT

    def begin_unlocked(self, kn: Knote) -> int:
        """An owned kn about to be delivered (SKQ), kn.guard held: a token (>= 0) if the
        system calls of its delivery may run without the kqueue lock (measure_unlocked,
        then finish), else -1, and the core calls deliver() with the kqueue lock."""
        return -1

    def measure_unlocked(self, kn: Knote) -> int:
        """Without the kqueue lock (an SKQ scan holds kn's guard): the system calls of
        kn's delivery; what they found.

        May touch the kernel and kn's hook's fields that never change, nothing else:
        every other thread may be running filter methods meanwhile.
        """
        raise NotImplementedError

    def finish(self, kn: Knote, token: int, measured: int, locked: bool) -> Delivery | None:
        """kn.guard held again: fill kn from measured and say what to do, or, if anything
        changed since begin_unlocked, None without the kqueue lock (the core calls again
        with it) and deliver() afresh with it.  Also called for a kn dropped meanwhile,
        to undo what the system calls did; then its answer is ignored."""
        raise NotImplementedError

    def settle(self, kn: Knote) -> bool:
        """A released SKQ knote, kn.guard held, perhaps not the kqueue lock: do what
        recheck() would if that needs no more (True), else False and the core calls
        recheck() with the kqueue lock."""
        return False

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

    def report_ready(self, ready: list[tuple[int, int]], reported: list[Knote], room: int) -> int:
        """The C accelerator's part of a classic harvest (called only when there is one,
        ``KqueueHost.speedups``): report the leading ready entries this filter can, as its
        handlers would (``report_now``), appending to reported up to room; how many it took."""
        return 0

    def close(self) -> None:
        """The kqueue closes: free per-kqueue resources (before its knotes are dropped)."""

    def abandon(self) -> None:
        """In a fork() child: close this filter's fds, changing nothing in the kernel."""
