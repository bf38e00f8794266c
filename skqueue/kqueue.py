"""``kqueue``: the handle applications hold, shaped like ``select.kqueue``."""

from __future__ import annotations

import errno
import operator
import os
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from ._timeout import timeout_ns
from .constants import (
    KQ_SCHED_BEST,
    KQ_SCHED_FEAT_WS,
)
from .core import KqueueCore, handles
from .event import C_INT_MAX, kevent
from .sched.policy import POLICY_NAMES

__all__ = ["kqueue"]


def _after_fork_in_child() -> None:
    """Every kqueue appears closed in a fork() child, as select.kqueue objects do."""
    held = handles.forget_all()
    for fd, core in held:
        if not core.closed and fd != core.fileno():
            os.close(fd)  # a fromfd() handle's own descriptor
    for _, core in held:
        core.abandon()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _byte(name: str, value: object) -> int:
    """One of kqueue()'s SKQ arguments: an int that fits its byte of FKQMULTI's argument."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None
    if not 0 <= number <= 0xFF:
        raise ValueError(f"{name} must be in [0, 255] (one byte of KQSCHED_MAKE), got {number}")
    return number


def _scheduler_args(
    sched: object, sargs: object, feat: object, fargs: object, steal: object
) -> tuple[int, int, int, int] | None:
    """kqueue()'s arguments as FKQMULTI's (sched, sargs, feat, fargs); None: classic.

    Checked before any descriptor is made, so a bad argument leaves nothing behind.
    """
    given = {"sargs": sargs, "feat": feat, "fargs": fargs, "steal": steal}
    values = {name: _byte(name, value) for name, value in given.items()}
    if sched is None:
        if any(values.values()):
            named = ", ".join(name for name, value in values.items() if value)
            raise ValueError(f"{named} given without sched: a classic kqueue has no scheduler")
        return None
    if isinstance(sched, str):
        number = POLICY_NAMES.get(sched)
        if number is None:
            known = ", ".join(repr(name) for name in POLICY_NAMES)
            raise ValueError(f"unknown scheduling policy {sched!r}; one of {known}")
    elif isinstance(sched, int):
        number = sched  # an unknown number is FKQMULTI's EINVAL, from the scheduler
    else:
        raise TypeError(f"sched must be a policy name or number, not {type(sched).__name__}")
    sargs, feat, fargs, steal = values["sargs"], values["feat"], values["fargs"], values["steal"]
    if steal:
        if fargs:
            raise ValueError("steal=N sets fargs=N (with KQ_SCHED_FEAT_WS): give steal or fargs")
        feat, fargs = feat | KQ_SCHED_FEAT_WS, steal
    if number == KQ_SCHED_BEST and not sargs:
        sargs = 2
    return number, sargs, feat, fargs


class kqueue:
    """A kqueue, as ``select.kqueue``; with ``sched`` an SKQ kqueue many threads share.

    ``kqueue()`` is a classic kqueue: register knotes and wait for events with
    :meth:`control`.  ``sched`` makes it an SKQ kqueue at once (the same as
    ``ioctl(FKQMULTI, KQSCHED_MAKE(sched, sargs, feat, fargs))`` before the first
    wait): every activation is placed on one waiting thread's kevq by the policy,
    and what a thread receives is its own until it waits again.

    * ``sched``: a name ("random", "queue", "cpu", "best", "auto") or a number (0,
      ``KQ_SCHED_QUEUE``, ``KQ_SCHED_CPU``, ``KQ_SCHED_BEST``, ``KQ_SCHED_AUTO``: ours,
      0x80, outside freebsd-skq's numbers; it measures the workload and follows
      one of the others, see :mod:`skqueue.sched.auto`).
    * ``sargs``: N for best-of-N (default 2), or the sample size of a queue/cpu hybrid.
    * ``feat=KQ_SCHED_FEAT_WS`` with ``fargs``, or just ``steal=fargs``: idle threads
      steal up to ``fargs`` events at a time from busy ones.

    Each of ``sargs``, ``feat``, ``fargs`` and ``steal`` is an int in [0, 255]
    (TypeError, ValueError otherwise) and needs ``sched`` (ValueError without it);
    a policy number or feature the scheduler does not know is OSError(EINVAL), as
    FKQMULTI answers it.  A kqueue is also a context manager that closes it.
    """

    def __init__(
        self,
        sched: int | str | None = None,
        sargs: int = 0,
        feat: int = 0,
        fargs: int = 0,
        *,
        steal: int = 0,
    ) -> None:
        self._core: KqueueCore | None = None
        multi = _scheduler_args(sched, sargs, feat, fargs, steal)
        core = KqueueCore()
        self._attach(core, core.fileno(), owns_fd=False)
        if multi is not None:
            try:
                core.make_multi(*multi)
            except BaseException:
                self.close()
                raise

    def _attach(self, core: KqueueCore, fd: int, *, owns_fd: bool) -> None:
        """Make this handle one of core's, reachable as fd for fromfd()."""
        self._fd = fd
        self._core = core
        self._owns_fd = owns_fd
        handles.add(fd, core)

    @classmethod
    def fromfd(cls, fd: int) -> kqueue:
        """Another handle on the kqueue whose ``fileno()`` is fd, in this process.

        The handles share every knote and the scheduler; the new one has its own
        descriptor (a dup), so closing either leaves the other working, and the
        kqueue goes away with its last handle.  OSError(EBADF) when fd is not an
        open skqueue kqueue.
        """
        core = handles.core_behind(fd)
        if core is None:
            raise OSError(errno.EBADF, f"{os.strerror(errno.EBADF)}: not a skqueue kqueue")
        handle = cls.__new__(cls)
        handle._core = None  # so that __del__ is harmless if the dup fails
        handle._attach(core, os.dup(core.fileno()), owns_fd=True)
        return handle

    # File-like surface ------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once this handle is closed (and in a fork() child, which inherits no kqueue)."""
        return self._core is None or self._core.closed

    def fileno(self) -> int:
        """The kqueue's descriptor, for select/poll/epoll or another kqueue to watch.

        It becomes readable while events are pending (FreeBSD's ``kq_count``; not
        for an SKQ kqueue).  Do not close it yourself: :meth:`close` does.  ValueError
        once the handle is closed.
        """
        if self.closed:
            raise ValueError("I/O operation on closed kqueue object")
        return self._fd

    def close(self) -> None:
        """Close this handle; closing the last handle drops every knote and wakes every waiter.

        Closing twice is harmless; waiters in :meth:`control` get ValueError.
        """

        def take() -> KqueueCore | None:
            core, self._core = self._core, None
            return core

        core, last = handles.discard(self._fd, take)
        if core is None:
            return
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

    def __del__(self, _finalizing: Callable[[], bool] = sys.is_finalizing) -> None:
        # At interpreter exit the modules' globals may be gone (and the fds go with the
        # process); bound as a default, the check itself survives them.
        if not _finalizing() and getattr(self, "_core", None) is not None:
            self.close()

    # kevent --------------------------------------------------------------------------
    def control(
        self,
        changelist: Iterable[kevent] | None,
        max_events: int,
        timeout: float | None = None,
    ) -> list[kevent]:
        """kevent(2): apply changelist in order, then wait for up to max_events events.

        * ``changelist``: an iterable of :class:`kevent` (EV_ADD, EV_DELETE, EV_ENABLE,
          EV_DISABLE, ... on a knote keyed by (ident, filter)), or None.
        * ``max_events``: how many events may come back, an int >= 0 (TypeError,
          ValueError otherwise, as ``select.kqueue``); 0 only applies the changes.
        * ``timeout``: seconds (int or float) to wait for the first event; None waits
          until one comes, 0 polls; a negative timeout is ValueError.

        Returns the events, each a :class:`kevent` with the knote's udata as given.
        A change that fails comes back as an event with EV_ERROR set and the errno
        in ``data`` while ``max_events`` has room, and the remaining changes are still
        applied; without room it raises OSError(errno).  EV_RECEIPT on a change makes
        it come back that way even when it succeeds (``data`` 0).  ValueError if the
        kqueue is closed.  On an SKQ kqueue a call with ``max_events`` > 0 releases
        the events the calling thread got last.
        """
        core = self._core
        if core is None or core.closed:  # a fork() child must not touch the lock
            raise ValueError("I/O operation on closed kqueue object")
        max_events = operator.index(max_events)  # TypeError for a float, as select.kqueue
        if max_events > C_INT_MAX:
            raise OverflowError(f"max_events {max_events} does not fit a C int")
        if max_events < 0:
            raise ValueError(f"Length of eventlist must be 0 or positive, got {max_events}")
        if timeout is None:  # the common blocking wait: nothing to check
            return core.control(changelist, max_events, None)
        ns = timeout_ns(timeout)  # before any change is applied, as CPython
        return core.control(changelist, max_events, None if ns is None else ns / 1e9)

    # SKQ -----------------------------------------------------------------------------
    def ioctl(self, request: int, arg: int) -> None:
        """SKQ's ioctls on the kqueue.

        * ``ioctl(FKQMULTI, KQSCHED_MAKE(sched, sargs, feat, fargs))`` makes it an SKQ
          kqueue, as ``kqueue(sched=...)`` does: once, before its first
          :meth:`control` call, else OSError(EINVAL).
        * ``ioctl(FKQTUNE, KQTUNE_MAKE(KQTUNE_RTSHARE, 1..100))``: the percentage of a
          wait's events that may be EV_REALTIME ones; ``KQTUNE_FREQ``: a target of
          events per second per thread that caps each wait (0: off).  Any time;
          OSError(EINVAL) for an unknown tunable or value.

        Any other request is OSError(ENOTTY).  ValueError if the kqueue is closed.
        """
        core = self._core
        if core is None or core.closed:  # a fork() child must not touch the lock
            raise ValueError("I/O operation on closed kqueue object")
        core.ioctl(request, arg)

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
