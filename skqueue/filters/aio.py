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
from typing import TYPE_CHECKING, Protocol

from ..constants import EV_ADD, EV_CLEAR, EV_DISPATCH, EV_EOF, EV_ONESHOT, EVFILT_AIO
from ..event import kevent
from .base import Filter, Knote

if TYPE_CHECKING:
    from ..core import KqueueCore

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

    def __init__(self, core: KqueueCore) -> None:
        super().__init__(core)
        # Targets with a knote here, told when the kqueue closes.
        self.targets: set[AioTarget] = set()

    def attach(self, kn: Knote) -> None:
        raise OSError(errno.EPERM, "EVFILT_AIO/EVFILT_LIO knotes come from aio_* calls")

    def detach(self, kn: Knote) -> None:
        if not self.core.closed:  # at close the targets are still needed by close()
            self.targets.discard(kn.hook.target)

    def deliver(self, kn: Knote) -> bool:
        target = kn.hook.target
        kn.data = target.error
        kn.fflags = 0
        kn.oflags = EV_EOF if kn.filter == EVFILT_AIO else 0  # as filt_aio / filt_lio
        return bool(target.finished)

    def clear(self, kn: Knote) -> None:
        kn.hook.consumed = True
        kn.data = 0

    def recheck(self, kn: Knote) -> None:
        hook: _Hook = kn.hook
        if hook.target.finished and not hook.consumed:
            self.core.activate(kn)

    def close(self) -> None:
        targets, self.targets = list(self.targets), set()
        for target in targets:
            target.kqueue_closed()


def post(
    core: KqueueCore, target: AioTarget, filt: int, ident: int, flags: int, udata: object
) -> Knote:
    """Make the knote through which target reports to core (core.lock not held)."""
    if flags & ~SIGEV_KEVENT_FLAGS:
        raise OSError(errno.EINVAL, f"{os.strerror(errno.EINVAL)}: sigevent flags {flags:#x}")
    with core.lock:
        if core.closed:
            raise OSError(errno.EBADF, f"{os.strerror(errno.EBADF)}: the kqueue is closed")
        ops = core.filter_for(filt)
        assert isinstance(ops, AioFilter)
        kn = Knote(ops, kevent(ident, filt, EV_ADD | flags, 0, 0, udata))
        kn.hook = _Hook(target)
        core.knotes[(ident, filt)] = kn
        ops.targets.add(target)
    return kn


def notify(kn: Knote) -> None:
    """The target finished: queue its event (core.lock not held)."""
    kn.ops.core.activate_locked(kn)


def retire(kn: Knote) -> None:
    """The target was reaped: its knote goes (core.lock not held)."""
    core = kn.ops.core
    with core.lock:
        core.drop(kn)
