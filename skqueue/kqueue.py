"""``kqueue``: the handle applications hold, shaped like ``select.kqueue``."""

from __future__ import annotations

import errno
import os
import threading
import weakref
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from ._timeout import timeout_ns
from .constants import (
    FKQMULTI,
    FKQTUNE,
    KQ_SCHED_BEST,
    KQ_SCHED_FEAT_WS,
    KQSCHED_PARSE,
    KQTUNE_FREQ,
    KQTUNE_PARSE,
    KQTUNE_RTSHARE,
)
from .core import KqueueCore
from .event import kevent
from .sched.policy import POLICY_NAMES
from .sched.world import real_scheduler

__all__ = ["kqueue"]

# fd -> core, so that kqueue.fromfd(fd) finds the registrations behind fd.
_by_fd: weakref.WeakValueDictionary[int, KqueueCore] = weakref.WeakValueDictionary()
_by_fd_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """Every kqueue appears closed in a fork() child, as select.kqueue objects do."""
    global _by_fd_lock
    _by_fd_lock = threading.Lock()  # another thread may have held it at the fork
    handles = list(_by_fd.items())
    for fd, core in handles:
        if not core.closed and fd != core.backend.fileno():
            os.close(fd)  # a fromfd() handle's own descriptor
    for _, core in handles:
        core.abandon()
    _by_fd.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def core_behind(fd: int) -> KqueueCore | None:
    """The open skqueue kqueue whose handle is fd, if any."""
    with _by_fd_lock:
        core = _by_fd.get(fd)
    return None if core is None or core.closed else core


def _einval(message: str) -> OSError:
    return OSError(errno.EINVAL, f"{os.strerror(errno.EINVAL)}: {message}")


class kqueue:
    """A kqueue.  With ``sched`` (or ``ioctl(FKQMULTI, ...)``) it is an SKQ kqueue.

    ``sched`` is a number (0 random, KQ_SCHED_QUEUE, KQ_SCHED_CPU, KQ_SCHED_BEST)
    or a name ("random", "queue", "cpu", "best"); ``sargs`` is N for best-of-N or
    the hybrid sample size; ``feat=KQ_SCHED_FEAT_WS`` (or ``steal=fargs``) turns
    on work stealing of ``fargs`` events at a time.
    """

    def __init__(
        self,
        sched: int | str | None = None,
        sargs: int = 0,
        feat: int = 0,
        fargs: int = 0,
        *,
        steal: int = 0,
        _core: KqueueCore | None = None,
    ) -> None:
        self._core: KqueueCore | None = None
        core = _core if _core is not None else KqueueCore()
        fd = core.backend.fileno() if _core is None else os.dup(_core.backend.fileno())
        self._fd = fd
        self._core = core
        self._owns_fd = _core is not None
        with _by_fd_lock:
            core.handles += 1
            _by_fd[fd] = core
        if steal:
            feat, fargs = feat | KQ_SCHED_FEAT_WS, steal
        if sched is not None:
            try:
                number = POLICY_NAMES.get(sched) if isinstance(sched, str) else sched
                if number is None:
                    raise ValueError(f"unknown scheduling policy {sched!r}")
                if number == KQ_SCHED_BEST and not sargs:
                    sargs = 2
                self._make_multi(number, sargs, feat, fargs)
            except BaseException:
                # The caller never gets this kqueue: free its fds now, not when the
                # traceback that still references it is collected.
                self.close()
                raise

    @classmethod
    def fromfd(cls, fd: int) -> kqueue:
        """Another handle on the kqueue behind fd; registrations are shared."""
        core = core_behind(fd)
        if core is None:
            raise OSError(errno.EBADF, f"{os.strerror(errno.EBADF)}: not a skqueue kqueue")
        return cls(_core=core)

    # File-like surface ------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._core is None or self._core.closed

    def fileno(self) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed kqueue object")
        return self._fd

    def close(self) -> None:
        with _by_fd_lock:  # handles may be closed from several threads at once
            core, self._core = self._core, None
            if core is None:
                return
            if _by_fd.get(self._fd) is core:
                del _by_fd[self._fd]
            core.handles -= 1
            last = core.handles <= 0
        if self._owns_fd and not core.abandoned:
            os.close(self._fd)
        if last:
            core.close()

    def __enter__(self) -> kqueue:
        if self.closed:
            raise ValueError("I/O operation on closed kqueue object")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_core", None) is not None:
            self.close()

    # kevent --------------------------------------------------------------------------
    def control(
        self,
        changelist: Iterable[kevent] | None,
        max_events: int,
        timeout: float | None = None,
    ) -> list[kevent]:
        """Apply changelist, then wait up to timeout seconds for up to max_events events."""
        core = self._core
        if core is None or core.closed:  # a fork() child must not touch the lock
            raise ValueError("I/O operation on closed kqueue object")
        if max_events < 0:
            raise ValueError(f"Length of eventlist must be 0 or positive, got {max_events}")
        ns = timeout_ns(timeout)  # before any change is applied, as CPython
        return core.control(changelist, max_events, None if ns is None else ns / 1e9)

    # SKQ -----------------------------------------------------------------------------
    def ioctl(self, request: int, arg: int) -> None:
        """FKQMULTI (make multi-threaded) and FKQTUNE (RTSHARE, FREQ), as in SKQ."""
        core = self._core
        if core is None or core.closed:  # a fork() child must not touch the lock
            raise ValueError("I/O operation on closed kqueue object")
        if request == FKQMULTI:
            self._make_multi(*KQSCHED_PARSE(arg))
        elif request == FKQTUNE:
            obj, val = KQTUNE_PARSE(arg)
            with core.lock:
                if obj == KQTUNE_RTSHARE and 1 <= val <= 100:
                    core.rtshare = val
                elif obj == KQTUNE_FREQ:
                    core.freq = val
                else:
                    raise _einval(f"tunable {obj} value {val}")
        else:
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

    def _make_multi(self, sched: int, sargs: int, feat: int, fargs: int) -> None:
        core = self._core
        assert core is not None
        with core.lock:
            if core.sched is not None or core.initialised:
                raise _einval("a kqueue turns multi-threaded once, before its first kevent() call")
            try:
                core.sched = real_scheduler(sched, sargs, feat, fargs)
            except ValueError as exc:
                raise _einval(str(exc)) from None

    def leave(self) -> None:
        """The calling thread stops serving this kqueue; its queued events move on."""
        if self._core is not None:
            self._core.leave()

    def stats(self) -> dict[str, Any]:
        """Scheduler statistics as plain, JSON-serialisable data."""
        core = self._core
        if core is None or core.closed:  # a fork() child must not touch the lock
            raise ValueError("I/O operation on closed kqueue object")
        return core.stats()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<skqueue.kqueue {state}>"
