"""EVFILT_AIO and EVFILT_LIO: completion notices of asynchronous I/O jobs and lists.

As in FreeBSD these knotes are made by the AIO machinery when a job (or a
``lio_listio`` list) asks for SIGEV_KEVENT, never by ``kevent()`` itself: a
user's EV_ADD is refused with EPERM, FreeBSD's ``filt_aioattach`` answer (only
the kernel may set EV_FLAG1).  Changes to an existing knote (EV_DELETE,
EV_DISABLE, EV_ENABLE, a new udata) go through the ordinary paths.  A knote
lives as long as its job: the job's reaping retires it.
"""

from __future__ import annotations

import errno
import os
from typing import Protocol

from ..constants import EV_ADD, EV_CLEAR, EV_DISPATCH, EV_EOF, EV_ONESHOT, EVFILT_AIO
from ..event import kevent
from ..knote import KN_DETACHED, REPORT, SKIP, Delivery, Filter, Knote, KqueueHost

#: The only flags a sigevent may ask for (FreeBSD's sigev_notify_kevent_flags).
SIGEV_KEVENT_FLAGS = EV_ONESHOT | EV_CLEAR | EV_DISPATCH


class AioTarget(Protocol):
    """What an AIO knote reports on: a job or a list of jobs."""

    @property
    def finished(self) -> bool: ...

    @property
    def error(self) -> int: ...

    def kqueue_closed(self) -> None:
        """The kqueue to notify closed: cancel what has not started."""


class _Hook:
    __slots__ = ("consumed", "target")

    def __init__(self, target: AioTarget) -> None:
        self.target = target
        self.consumed = False  # delivered with EV_CLEAR: stays quiet from now on


class AioFilter(Filter):
    """One instance per kqueue serves EVFILT_AIO and EVFILT_LIO."""

    def __init__(self, kq: KqueueHost) -> None:
        super().__init__(kq)
        # Targets with a knote here, told when the kqueue closes.
        self.targets: set[AioTarget] = set()

    def attach(self, kn: Knote) -> None:
        # Only post() gives a knote its hook first (FreeBSD's EV_FLAG1, kernel only).
        if not isinstance(kn.hook, _Hook):
            raise OSError(errno.EPERM, "EVFILT_AIO/EVFILT_LIO knotes come from aio_* calls")
        self.targets.add(kn.hook.target)

    def detach(self, kn: Knote) -> None:
        self.targets.discard(kn.hook.target)

    def deliver(self, kn: Knote) -> Delivery:
        target = kn.hook.target
        kn.data = target.error
        kn.fflags = 0
        kn.oflags = EV_EOF if kn.filter == EVFILT_AIO else 0  # as filt_aio / filt_lio
        return REPORT if target.finished else SKIP

    def clear(self, kn: Knote) -> None:
        kn.hook.consumed = True
        kn.data = 0

    def recheck(self, kn: Knote) -> None:
        hook: _Hook = kn.hook
        if hook.target.finished and not hook.consumed:
            self.kq.activate(kn)

    def close(self) -> None:
        targets, self.targets = list(self.targets), set()
        for target in targets:
            target.kqueue_closed()


def post(
    kq: KqueueHost, target: AioTarget, filt: int, ident: int, flags: int, udata: object
) -> Knote:
    """Make the knote through which target reports to kq (its lock not held)."""
    if flags & ~SIGEV_KEVENT_FLAGS:
        raise OSError(errno.EINVAL, f"{os.strerror(errno.EINVAL)}: sigevent flags {flags:#x}")
    return kq.post(kevent(ident, filt, EV_ADD | flags, 0, 0, udata), _Hook(target))


def notify(kn: Knote) -> None:
    """The target finished: queue its event (the kqueue lock not held).

    kn may have been deleted since the target took it (EV_DELETE, the kqueue's
    close): its status is the kqueue's, so it is looked at under that lock.
    """
    kn.ops.kq.activate_from_thread(lambda: None if kn.status & KN_DETACHED else kn)


def retire(kn: Knote) -> None:
    """The target was reaped: its knote goes (the kqueue lock not held)."""
    kn.ops.kq.drop_from_thread(kn)
