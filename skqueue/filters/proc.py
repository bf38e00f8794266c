"""EVFILT_PROC: process exit (pidfd), fork and exec (the kernel's proc connector).

- NOTE_EXIT: every knote holds a pidfd (``pidfd_open``) in the kqueue's epoll
  set; it becomes readable when the process has exited.  ``data`` is the wait(2)
  status, read with ``waitid(P_PIDFD, WEXITED|WNOWAIT)``, so the child is *not*
  reaped and the application's own ``waitpid`` still works.  The status is read
  when the kqueue next harvests readiness after the exit (its next wait); if the
  application reaped the child before that, or the process is not our child,
  Linux has no status to give without a race and ``data`` is 0.  The pidfd is
  closed as soon as the status is read, even while the knote is disabled and its
  NOTE_EXIT waits to be delivered.  As in FreeBSD, the exit sets
  EV_EOF|EV_ONESHOT on the event (the knote is deleted once it is delivered) and
  a knote that has nothing to report when the process exits (NOTE_EXIT not asked
  for, no pending NOTE_FORK or NOTE_EXEC) is deleted silently (FreeBSD's
  EV_DROP).  A pidfd names the process, not the number, so a recycled pid can
  never be confused with the watched one.
- NOTE_FORK / NOTE_EXEC are best effort: they come from the proc connector
  (netlink), which needs root (CAP_NET_ADMIN) in the initial user and pid
  namespaces.  Where it cannot be opened (unprivileged, in a container's pid
  namespace) the knote is accepted but these notes are never reported; when the
  connector's socket buffer overflows, the notes lost in it are not reported
  either.  The connector is opened only while some knote asks for them.
  Creating a thread is not a fork (FreeBSD's NOTE_FORK is about processes).
  A process started with vfork (``subprocess`` does) may still be finishing its
  exec when its parent registers, so that exec can be reported.
- ``fflags`` returned = the requested notes that happened since the last
  delivery: EV_CLEAR is implied, as FreeBSD's filt_procattach sets it.
- NOTE_TRACK (follow forks by registering the children) is not implemented:
  asking for it, at EV_ADD or later, fails with EINVAL rather than being ignored.
- ident that is not a process id (0, negative, a thread id, a reaped pid): ESRCH;
  an exited but unreaped process (zombie) is found only when NOTE_EXIT is asked
  for, as FreeBSD's ``pfind_any``, and then reports its exit at once.
"""

from __future__ import annotations

import errno
import os
import select
from typing import TYPE_CHECKING

from ..backend.pidfd import exit_status
from ..backend.proc_connector import ProcConnector
from ..constants import EV_CLEAR, EV_EOF, EV_ONESHOT, NOTE_EXEC, NOTE_EXIT, NOTE_FORK, NOTE_TRACK
from ..knote import KN_DETACHED, REPORT, SKIP, Delivery, Filter, Knote, KqueueHost

if TYPE_CHECKING:
    from ..event import kevent

_CONNECTOR_NOTES = NOTE_FORK | NOTE_EXEC
_EXIT_EVENTS = select.EPOLLIN | select.EPOLLONESHOT


class ProcState:
    """A PROC knote's pidfd (-1 once the exit is read) and what it saw."""

    __slots__ = ("exited", "notes", "pidfd", "status")

    def __init__(self, pidfd: int) -> None:
        self.pidfd = pidfd
        self.exited = False
        self.notes = 0
        self.status = 0


def _refuse(err: int) -> OSError:
    return OSError(err, os.strerror(err))


class ProcFilter(Filter):
    """NOTE_EXIT, NOTE_FORK, NOTE_EXEC on a process id."""

    def __init__(self, kq: KqueueHost) -> None:
        super().__init__(kq)
        self.connector: ProcConnector | None = None
        self.following: dict[int, Knote] = {}  # pid -> knote that wants FORK/EXEC
        self.pidfds: set[int] = set()  # open pidfds, for abandon()

    # Registration -----------------------------------------------------------------
    def attach(self, kn: Knote) -> None:
        if kn.sfflags & NOTE_TRACK:
            raise _refuse(errno.EINVAL)
        if kn.ident <= 0:
            raise _refuse(errno.ESRCH)
        try:
            pidfd = os.pidfd_open(kn.ident)
        except OSError as exc:
            # ESRCH: no such process; a thread id, not a process id: EINVAL, or
            # ENOENT since Linux 6.9.
            if exc.errno in (errno.ESRCH, errno.EINVAL, errno.ENOENT):
                raise _refuse(errno.ESRCH) from None
            raise
        if not kn.sfflags & NOTE_EXIT and select.select([pidfd], [], [], 0)[0]:
            os.close(pidfd)  # a zombie: only NOTE_EXIT may still see it
            raise _refuse(errno.ESRCH)
        kn.flags |= EV_CLEAR
        kn.hook = ProcState(pidfd)
        try:
            # One-shot: a pidfd stays readable forever once the process has exited.
            self.kq.poller.add(pidfd, _EXIT_EVENTS, lambda _: self._exit(kn))
        except OSError:
            os.close(pidfd)
            raise
        self.pidfds.add(pidfd)
        self._follow(kn)

    def touch(self, kn: Knote, ev: kevent) -> None:
        if ev.fflags & NOTE_TRACK:
            raise _refuse(errno.EINVAL)
        super().touch(kn, ev)
        self._follow(kn)

    def detach(self, kn: Knote) -> None:
        self._follow(kn)
        self._close_pidfd(kn.hook)

    def _close_pidfd(self, state: ProcState) -> None:
        """Give the pidfd back; once the exit status is read it has nothing left to tell."""
        if state.pidfd >= 0:
            self.pidfds.discard(state.pidfd)
            self.kq.poller.remove(state.pidfd)
            os.close(state.pidfd)
            state.pidfd = -1

    def _follow(self, kn: Knote) -> None:
        """Keep the proc connector open exactly while some knote wants FORK/EXEC."""
        state: ProcState = kn.hook
        wanted = kn.sfflags & _CONNECTOR_NOTES and not state.exited
        if wanted and not kn.status & KN_DETACHED:
            self.following[kn.ident] = kn
            if self.connector is None:
                try:
                    self.connector = ProcConnector.open()
                except OSError:
                    return  # best effort: the platform cannot tell (see the docstring)
                fd = self.connector.fileno()
                self.kq.poller.add(fd, select.EPOLLIN, self._connector_ready)
        elif self.following.get(kn.ident) is kn:
            del self.following[kn.ident]
            if not self.following:
                self.close()

    # Events -----------------------------------------------------------------------
    def _connector_ready(self, events: int) -> None:
        connector = self.connector
        if connector is None:
            return
        for ev in connector.read_events():
            if ev.what == "fork" and ev.pid == ev.tgid:  # a process, not a thread
                self._note(self.following.get(ev.parent_tgid), NOTE_FORK)
            elif ev.what == "exec":
                self._note(self.following.get(ev.tgid), NOTE_EXEC)
        connector.overflow = False  # what the overflow lost cannot be recovered

    def _note(self, kn: Knote | None, note: int) -> None:
        if kn is None or kn.status & KN_DETACHED:
            return
        state: ProcState = kn.hook
        state.notes |= note & kn.sfflags
        if state.notes:
            self.kq.activate(kn)

    def _exit(self, kn: Knote) -> None:
        """The pidfd became readable: the process is gone."""
        state: ProcState = kn.hook
        if state.exited or kn.status & KN_DETACHED:
            return
        if self.connector is not None:
            self._connector_ready(0)  # its FORK/EXEC were queued before the exit
        state.exited = True
        status = exit_status(state.pidfd)
        state.status = 0 if status is None else status
        self._close_pidfd(state)  # not held until delivery: the knote may stay disabled
        self._follow(kn)
        self._note(kn, NOTE_EXIT)
        if not state.notes:
            self.kq.drop(kn)  # nothing to say about it: FreeBSD's EV_DROP

    # Delivery -----------------------------------------------------------------------
    def deliver(self, kn: Knote) -> Delivery:
        state: ProcState = kn.hook
        kn.fflags = state.notes
        kn.data = state.status if state.notes & NOTE_EXIT else 0
        kn.oflags = EV_EOF | EV_ONESHOT if state.exited else 0
        return REPORT if state.notes else SKIP

    def clear(self, kn: Knote) -> None:
        kn.hook.notes = 0

    def recheck(self, kn: Knote) -> None:
        if kn.hook.notes:
            self.kq.activate(kn)

    def close(self) -> None:
        if self.connector is not None:
            self.kq.poller.remove(self.connector.fileno())
            self.connector.close()
            self.connector = None

    def abandon(self) -> None:
        for pidfd in self.pidfds:
            os.close(pidfd)
        self.pidfds.clear()
        if self.connector is not None:
            self.connector.abandon()
            self.connector = None
