"""EVFILT_READ and EVFILT_WRITE on sockets, pipes, FIFOs, files and devices.

One epoll item per fd carries both directions.  Level-triggered knotes use an
EPOLLONESHOT item that is re-armed when the knote is delivered (classic mode) or
released by its owner (SKQ mode); that ``epoll_ctl(MOD)`` doubles as the check that
the number still names the same open file, because epoll keys its items by
(file, fd) and answers ENOENT/EBADF for a closed or reused number.  An fd with an
EV_CLEAR knote uses an edge-triggered item instead (re-arming would re-report data
that was already seen); its identity is checked with fstat.  Every delivery
recomputes ``data`` and drops the event if the fd is not ready after all, which
also filters out reports from an epoll item orphaned by ``dup`` + ``close``.

On an SKQ kqueue on free-threaded CPython each watch has a lock of its own
(``FdWatch.guard``, its knotes' ``kn.guard``): the core's SKQ wait runs this filter's
handlers, its releases (``settle``) and a lone level READ's delivery
(``FdWatch.plain``) under that guard alone, without the kqueue lock, so that the
threads serving one kqueue harvest and measure their fds at once.
``begin_unlocked`` notes the watch's ``version`` (bumped by every change of its modes
or masks), ``measure_unlocked`` makes FIONREAD and the re-arm, ``finish`` applies them
if the version still holds, and otherwise (with the kqueue lock) repairs the kernel
item and delivers the ordinary way.  Reports that arrive while a knote is owned
(``fired``) only mark it active.  Everything else runs with the kqueue lock and the
guard; under the GIL, and on a classic kqueue, the guard is the kqueue lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import stat
import termios
import threading
import weakref
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._lockcheck import new_lock
from ..accel import speedups
from ..backend.fdinfo import getsockopt_int, pipe_capacity, socket_outq
from ..backend.inotify import IN_MODIFY, IN_Q_OVERFLOW
from ..backend.sockdiag import accept_queue_length
from ..constants import EV_CLEAR, EV_DISPATCH, EV_EOF, EV_ONESHOT, EVFILT_READ, NOTE_LOWAT
from ..event import kevent
from ..knote import (
    KN_DETACHED,
    KN_DISABLED,
    KN_OWNED,
    KN_QUEUED,
    KN_REPORTED,
    REPORT,
    REPORT_REARMED,
    SKIP,
    Delivery,
    Filter,
    Knote,
    KqueueHost,
    NestedKqueue,
)
from ..sched.world import incoming_cpu

if TYPE_CHECKING:
    from ..backend.epoll import Handler
    from ..backend.watcher import Subscription

_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_HUP = select.EPOLLHUP | select.EPOLLRDHUP
_ERR = select.EPOLLERR
_WAKES_READ = _IN | _HUP | _ERR
_UNUSUAL = _HUP | _ERR  # reports the short delivery path leaves to the general one
_IN_ONESHOT = _IN | select.EPOLLONESHOT
_ioctl = fcntl.ioctl
_FIONREAD = termios.FIONREAD
_WAKES_WRITE = _OUT | _HUP | _ERR
_GONE = (errno.EBADF, errno.ENOENT)
_POLL_ANY = select.POLLIN | select.POLLOUT | select.POLLRDHUP  # HUP, ERR come anyway
_pipefs_dev: int | None = None

# Kinds of open file, decided once at attach.
SOCKET, LISTENER, FIFO, REGULAR, OTHER, KQUEUE = range(6)


class FdWatch:
    """What skqueue knows about one fd: its kind, its knotes, its epoll item."""

    __slots__ = (
        "anonymous",
        "armed",
        "edge",
        "fd",
        "fired",
        "fired_at_begin",
        "growth",
        "guard",
        "handler",
        "identity",
        "kind",
        "nested",
        "plain",
        "read",
        "revents",
        "seen_enqueues",
        "sndbuf",
        "unsettled",
        "version",
        "want_edge",
        "write",
    )

    def __init__(self, fd: int, st: os.stat_result, guard: threading.Lock) -> None:
        self.fd = fd
        # Guards these fields and the status of its knotes (their kn.guard): on an SKQ
        # kqueue its own lock, taken without the kqueue lock by the harvest and the scans.
        self.guard = guard
        self.identity = (st.st_dev, st.st_ino)
        self.kind = _kind_of(fd, st.st_mode)
        self.anonymous = self.kind == FIFO and st.st_dev == _pipe_device()  # pipe(2), not mkfifo
        self.nested: weakref.ref[NestedKqueue] | None = None  # the skqueue kqueue behind fd
        self.seen_enqueues = -1  # its enqueues count when an EV_CLEAR READ last looked
        self.read: Knote | None = None
        self.write: Knote | None = None
        self.armed = -1  # mask in the kernel; -1 = unknown (forces a MOD)
        self.edge = False  # the kernel item is EPOLLET
        self.want_edge = False  # some knote has EV_CLEAR, so it should be
        self.revents = 0  # epoll bits seen since the last delivery
        self.sndbuf = 0
        self.unsettled = False  # epoll says ready, our measure disagrees
        self.growth: Subscription | None = None  # inotify watch waking READ on a file
        self.handler: Handler | None = None  # what the harvest runs for its epoll item
        self.plain: Knote | None = None  # the knote deliver()'s fast path may serve
        # An unlocked delivery (SKQ) checks that nothing but a report changed the watch
        # meanwhile: version counts the other changes (modes, masks), fired the reports.
        self.version = 0
        self.fired = 0
        self.fired_at_begin = 0

    def update_mode(self) -> None:
        self.version += 1
        # An unsettled fd would make a level item report again at once, for ever
        # (a busy loop): edges until a delivery succeeds bound that to one wake-up.
        self.want_edge = self.unsettled or any(
            kn is not None and _wants_edge(kn) for kn in (self.read, self.write)
        )
        # The common case, a lone level READ on a socket or pipe, is delivered
        # by a short path: one FIONREAD and the re-arm, nothing else to decide.
        read = self.read
        self.plain = (
            read
            if (
                read is not None
                and self.write is None
                and self.kind in (SOCKET, FIFO)
                and not self.want_edge
                and not read.flags & (EV_DISPATCH | EV_ONESHOT)
                and not read.sfflags & NOTE_LOWAT
            )
            else None
        )


def _wants_edge(kn: Knote) -> bool:
    """EV_CLEAR needs edges; so does NOTE_LOWAT, which a level item would report over
    and over (a busy loop) while less than the low-water mark is there."""
    return bool(kn.flags & EV_CLEAR or (kn.sfflags & NOTE_LOWAT and kn.sdata > 1))


def _kind_of(fd: int, mode: int) -> int:
    if stat.S_ISSOCK(mode):
        try:
            listening = getsockopt_int(fd, socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError:
            return SOCKET
        return LISTENER if listening else SOCKET
    if stat.S_ISFIFO(mode):
        return FIFO
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return REGULAR
    return OTHER


# A one-shot item is armed only for knotes waiting for the kernel; an edge item
# also while its knotes are queued or owned, so that data arriving meanwhile is seen.
_NOT_WAITING = KN_DISABLED | KN_QUEUED | KN_DETACHED | KN_OWNED
_NOT_ENABLED = KN_DISABLED | KN_DETACHED
# What on_ready's short path tests, for the accelerator (skqueue/_accel.c, report_plain):
# the knote bits and epoll bits that send a report the general way, the bits a delivery
# takes from revents, the re-arm, and the mark of a knote reported from the harvest.
_PLAIN_MASKS = (KN_REPORTED | _NOT_WAITING, _UNUSUAL, _IN, _IN_ONESHOT, KN_REPORTED)


class FdFilter(Filter):
    """Both fd filters; one instance per kqueue serves READ and WRITE."""

    is_fd = True

    def __init__(self, kq: KqueueHost) -> None:
        super().__init__(kq)
        self.watches: dict[int, FdWatch] = {}
        self._modify = kq.poller.modify
        self._epfd, self._handlers = kq.poller.fileno(), kq.poller.handlers  # for report_ready
        self._int_buf = array("i", [0])  # ioctl scratch: only under the kqueue lock
        # An SKQ kqueue, threads in parallel: every watch has a guard of its own.
        self._own_guards = not kq.reports_now and kq.parallel

    # Registration ----------------------------------------------------------------
    def attach(self, kn: Knote) -> None:
        fd = kn.ident
        if fd < 0:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        watch = self.watches.get(fd)
        new = watch is None
        if watch is None:
            watch = FdWatch(fd, os.fstat(fd), new_lock() if self._own_guards else kn.guard)
        # Its other knote may be in a harvest or a scan, and this one is, once the new
        # epoll item is added.
        with watch.guard:
            self._attach_to(kn, watch, new)
        if new:
            self.watches[fd] = watch

    def _attach_to(self, kn: Knote, watch: FdWatch, new: bool) -> None:
        fd = watch.fd
        if new and watch.kind == OTHER:
            inner = self.kq.nested_kqueue(fd)
            if inner is not None:
                watch.kind = KQUEUE
                watch.nested = weakref.ref(inner)
        if watch.kind == KQUEUE and kn.filter != EVFILT_READ:
            raise OSError(errno.EINVAL, "a kqueue has only EVFILT_READ")
        if watch.anonymous and kn.filter != EVFILT_READ and _poll_now(fd) & _UNUSUAL:
            # FreeBSD refuses WRITE on a pipe whose other end is closed (pipe_kqfilter);
            # a FIFO keeps its ends, so a new reader may still come.
            raise OSError(errno.EPIPE, os.strerror(errno.EPIPE))
        if new and watch.kind == SOCKET:
            watch.sndbuf = _sndbuf(fd)
        kn.hook, kn.guard = watch, watch.guard
        if kn.filter == EVFILT_READ:
            watch.read = kn
        else:
            watch.write = kn
        watch.update_mode()
        if new and watch.kind != REGULAR:
            # One epoll_ctl(ADD), with the mask the knote needs from the start: a new
            # watch has this knote only, enabled and not owned.
            edge, mask = watch.want_edge, _IN if kn.filter == EVFILT_READ else _OUT
            watch.handler = self._handler(watch)
            try:
                self.kq.poller.add(
                    fd,
                    mask | (select.EPOLLET if edge else select.EPOLLONESHOT),
                    watch.handler,
                    guarded=self._own_guards,
                )
            except PermissionError:  # epoll refuses some files: always ready
                watch.kind = REGULAR
                watch.update_mode()
            else:
                watch.armed, watch.edge = mask, edge
        if kn.filter == EVFILT_READ and watch.kind == REGULAR:
            watch.growth = self._watch_growth(kn)  # FreeBSD wakes READ on a file when it grows

    def _watch_growth(self, kn: Knote) -> Subscription | None:
        """Recheck READ on a regular file when it is written (READ at EOF wakes up).

        None when inotify cannot watch it (watch limit): the knote then falls
        back to being re-checked at registration and release only.
        """

        def on_event(mask: int, name: str) -> None:
            if mask & (IN_MODIFY | IN_Q_OVERFLOW):
                with kn.guard:
                    self.recheck(kn)

        try:
            return self.kq.watcher.subscribe(kn.ident, on_event)
        except OSError:
            return None

    def touch(self, kn: Knote, ev: kevent) -> None:
        super().touch(kn, ev)
        kn.hook.update_mode()  # NOTE_LOWAT may have come or gone

    def detach(self, kn: Knote) -> None:
        watch: FdWatch = kn.hook
        if watch.read is kn:
            watch.read = None
            if watch.growth is not None:
                self.kq.watcher.unsubscribe(watch.growth)
                watch.growth = None
        elif watch.write is kn:
            watch.write = None
        watch.update_mode()
        if watch.read is None and watch.write is None:
            del self.watches[watch.fd]
            if watch.kind != REGULAR:
                self.kq.poller.remove(watch.fd)
        else:
            self._rearm(watch, None)

    def stale(self, kn: Knote) -> bool:
        """Does kn belong to a file that was closed behind our back?"""
        watch: FdWatch = kn.hook
        if watch.kind == REGULAR or watch.edge:
            try:
                _check_identity(watch)
            except OSError:
                return True
            return False
        return not self._rearm(watch, None, force=True)

    # Readiness ---------------------------------------------------------------------
    def _handler(self, watch: FdWatch) -> Handler:
        activate = self.kq.activate
        report_now = self.kq.report_now if self.kq.reports_now else None
        deliver_plain = self._deliver_plain

        def on_ready(events: int) -> None:
            r = watch.plain
            if r is not None:
                if r.status & KN_REPORTED:
                    # Reported earlier in this harvest; this is a second report of the
                    # number (an item orphaned by dup + close fires under it too).  The
                    # re-armed item reports whatever is still pending.
                    return
                if (
                    not (events | watch.revents) & _UNUSUAL
                    and not r.status & _NOT_WAITING
                    and report_now is not None
                    and report_now(r, deliver_plain)
                ):
                    return
            edge = watch.edge
            if not edge:
                watch.armed = 0  # EPOLLONESHOT disarmed the item
            watch.fired += 1
            watch.revents |= events
            r, w = watch.read, watch.write
            if r is not None and events & _WAKES_READ:
                activate(r)
            if w is not None and events & _WAKES_WRITE:
                activate(w)
            if not edge and r is not None and w is not None:
                self._rearm(watch, None)  # the direction that did not fire

        if not self._own_guards:
            return on_ready  # the harvest holds the kqueue lock, its knotes' guard
        guard = watch.guard

        def on_ready_guarded(events: int) -> None:  # an SKQ harvest, which holds no lock
            with guard:
                on_ready(events)

        return on_ready_guarded

    def _rearm(self, watch: FdWatch, exclude: Knote | None, force: bool = False) -> bool:
        """Put the epoll mask in line with the knotes; False if the fd is gone."""
        if watch.kind == REGULAR:
            return True
        edge = watch.want_edge
        blockers = _NOT_ENABLED if edge else _NOT_WAITING
        mask = 0
        for kn, bits in ((watch.read, _IN), (watch.write, _OUT)):
            if kn is not None and kn is not exclude and not kn.status & blockers:
                mask |= bits
        if not force and mask == watch.armed and edge == watch.edge:
            return True
        try:
            self._modify(watch.fd, mask | (select.EPOLLET if edge else select.EPOLLONESHOT))
        except OSError as exc:
            if exc.errno in _GONE:
                return False
            raise
        watch.armed = mask
        watch.edge = edge
        watch.version += 1
        return True

    def recheck(self, kn: Knote) -> None:
        watch: FdWatch = kn.hook
        # No kernel item reports a level knote on a file or an edge item: look now.
        if watch.kind == REGULAR or (watch.edge and not kn.flags & EV_CLEAR):
            ready = self._measure_or_guess(kn, watch)
            if ready is None:
                self.kq.drop_fd(watch.fd)
                return
            if ready:
                self.kq.activate(kn)
        if not self._rearm(watch, None):
            self.kq.drop_fd(watch.fd)

    def settle(self, kn: Knote) -> bool:
        """recheck(), if it needs no measurement (which may find the fd closed and drop
        it): the re-arm, which changes nothing after an unlocked delivery re-armed it."""
        watch: FdWatch = kn.hook
        if (
            watch.plain is kn
            and watch.armed == _IN
            and not watch.edge
            and not kn.status & _NOT_WAITING
        ):
            return True  # a lone level READ, armed: what _rearm would find
        if watch.kind == REGULAR or (watch.edge and not kn.flags & EV_CLEAR):
            return False
        return self._rearm(watch, None)

    def activation_cpu(self, kn: Knote) -> int:
        watch: FdWatch = kn.hook
        if watch.kind == SOCKET:
            cpu = incoming_cpu(watch.fd)
            if cpu is not None:
                return cpu
        return super().activation_cpu(kn)

    # Delivery ------------------------------------------------------------------------
    def _deliver_plain(self, kn: Knote) -> bool:
        """The short path of a lone level READ on a socket or pipe: one FIONREAD and
        the re-arm.  False when anything is unusual; the general path sorts it out."""
        watch: FdWatch = kn.hook
        fd, buf = watch.fd, self._int_buf
        try:
            _ioctl(fd, _FIONREAD, buf)
            if buf[0] <= 0:
                return False
            self._modify(fd, _IN_ONESHOT)  # also the identity check
        except OSError:
            return False
        if watch.revents:
            watch.revents &= ~_IN
        watch.armed = _IN
        watch.edge = False
        kn.data, kn.fflags, kn.oflags = buf[0], 0, 0
        return True

    def deliver(self, kn: Knote) -> Delivery:
        watch: FdWatch = kn.hook
        owned = kn.status & KN_OWNED
        if (
            watch.plain is kn
            and not owned
            and not watch.revents & _UNUSUAL
            and self._deliver_plain(kn)
        ):
            return REPORT_REARMED
        ready = self._measure_or_guess(kn, watch)
        if ready is None:
            self.kq.drop_fd(watch.fd)
            return SKIP
        if ready == watch.unsettled and watch.kind != REGULAR:
            watch.unsettled = not ready
            watch.update_mode()
        if watch.edge:
            if self.stale(kn):
                self.kq.drop_fd(watch.fd)
                return SKIP
        else:
            # Re-arm (classic) or keep disarmed while owned (SKQ) or about to be disabled
            # or dropped (a release would only disarm it again); the MOD also proves
            # the fd still names the file it was registered on.
            exclude = kn if ready and (owned or kn.flags & (EV_DISPATCH | EV_ONESHOT)) else None
            if not self._rearm(watch, exclude, force=True):
                self.kq.drop_fd(watch.fd)
                return SKIP
            if ready and exclude is None and not kn.flags & (EV_DISPATCH | EV_ONESHOT):
                return REPORT_REARMED
        return REPORT if ready else SKIP

    def report_ready(self, ready: list[tuple[int, int]], reported: list[Knote], room: int) -> int:
        """In C, what on_ready and _deliver_plain do for a run of plain READs."""
        speedups = self.kq.speedups
        assert speedups is not None  # the core asks only when there is one
        taken: int = speedups.report_plain(
            self._epfd, ready, self._handlers, self.watches, reported, room, _PLAIN_MASKS
        )
        return taken

    def begin_unlocked(self, kn: Knote) -> int:
        watch: FdWatch = kn.hook
        if (
            watch.plain is not kn
            or watch.revents & _UNUSUAL
            or watch.unsettled
            or watch.armed  # queued knotes of a one-shot item are disarmed; else unusual
        ):
            return -1
        watch.fired_at_begin = watch.fired
        return watch.version

    def measure_unlocked(self, kn: Knote) -> int:
        """FIONREAD (a pipe's hang-up asked too) and the re-arm, which also proves the
        fd still names its file; the bytes ready, or 0 when anything is unusual.

        The item is re-armed while kn is still owned: a report meanwhile only marks
        kn active (the owner's release queues it again), and the release needs no
        epoll_ctl of its own.
        """
        watch: FdWatch = kn.hook
        speedups = self.kq.speedups
        if speedups is not None:  # the same calls, in C
            fifo = _UNUSUAL if watch.kind == FIFO else 0
            measured: int = speedups.measure_plain(self._epfd, watch.fd, _IN_ONESHOT, fifo)
            return measured
        fd, buf = watch.fd, array("i", [0])  # not the filter's scratch: no lock here
        try:
            _ioctl(fd, _FIONREAD, buf)
            if buf[0] <= 0 or (watch.kind == FIFO and _poll_now(fd) & _UNUSUAL):
                return 0
            self._modify(fd, _IN_ONESHOT)
        except (OSError, ValueError):  # ValueError: the kqueue closed meanwhile
            return 0
        return buf[0]

    def finish(self, kn: Knote, token: int, measured: int, locked: bool) -> Delivery | None:
        watch: FdWatch = kn.hook
        if measured > 0 and watch.version == token and not kn.status & KN_DETACHED:
            if watch.fired == watch.fired_at_begin:  # else it fired since: disarmed again
                watch.armed = _IN
                watch.revents &= ~_IN
            kn.data, kn.fflags, kn.oflags = measured, 0, 0
            return REPORT
        if not locked:
            return None
        # Something changed while the lock was free, and the re-arm may have overwritten
        # a mask set meanwhile (or a new registration's, if the number was reused): put
        # the kernel item back in line, then deliver the ordinary way.
        current = self.watches.get(watch.fd)
        if current is not None:
            with current.guard:  # a new registration's, if the number was reused
                self._rearm(current, None, force=True)
        if kn.status & KN_DETACHED:
            return SKIP
        return self.deliver(kn)

    def _measure_or_guess(self, kn: Knote, watch: FdWatch) -> bool | None:
        """Fill data/fflags/oflags as FreeBSD does and say whether kn is ready; None only
        if the fd is closed (EBADF, also for another file now).

        What ``data`` counts depends on the filter and the kind of file; the
        _READ_MEASURES and _WRITE_MEASURES tables pick the measurement (inline here:
        this runs for every delivery).

        Any other failure is the measurement's, not the fd's: at the fd limit sock_diag
        cannot open its netlink socket, a hung-up tty answers FIONREAD with EIO, a
        netlink socket has no TIOCOUTQ.  Dropping the knote then would leave a server
        that never accepts again, so poll's answer stands in and the next delivery
        measures afresh.  A reused number is still caught by the re-arm that follows.
        """
        try:
            revents = watch.revents
            if watch.kind == FIFO:
                # Whether the other end is gone, asked now: the bits epoll reported are
                # shared by both directions and the first delivery clears them.
                revents = (revents & ~_UNUSUAL) | (_poll_now(watch.fd) & _UNUSUAL)
            kn.oflags = 0
            kn.fflags = 0
            lowat = kn.sdata if kn.sfflags & NOTE_LOWAT and kn.sdata > 0 else 1
            if kn.filter == EVFILT_READ:
                watch.revents &= ~(_IN | _ERR)
                return _READ_MEASURES[watch.kind](self, kn, watch, revents, lowat)
            watch.revents &= ~(_OUT | _ERR)
            return _WRITE_MEASURES[watch.kind](self, kn, watch, revents, lowat)
        except OSError as exc:
            if exc.errno == errno.EBADF:
                return None
            return _guess(kn, watch.fd)

    # READ: bytes (or connections, or events) waiting --------------------------------
    def _read_file(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        kn.data = _check_identity(watch).st_size - os.lseek(watch.fd, 0, os.SEEK_CUR)
        return kn.data >= lowat

    def _read_listener(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        kn.data = accept_queue_length(watch.fd)
        return kn.data >= lowat

    def _read_kqueue(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        inner = watch.nested() if watch.nested is not None else None
        counts = inner.pending() if inner is not None else None
        if counts is None:  # gone: an fd like any other
            return self._read_other(kn, watch, revents, lowat)
        pending, enqueues = counts
        kn.data = pending  # FreeBSD's kq_count
        if kn.flags & EV_CLEAR:
            # FreeBSD reports a watched kqueue again only when it queues
            # a new event, not each time its fd is seen readable.
            fresh = enqueues != watch.seen_enqueues
            watch.seen_enqueues = enqueues
            return fresh and pending >= lowat
        return pending >= lowat

    def _read_socket(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        kn.data = self._readable(watch.fd)
        if revents & _HUP:
            # fflags stays 0 on a socket: FreeBSD copies so_error into it, but
            # Linux has no way to read SO_ERROR without clearing it (a MSG_PEEK
            # recv clears it too, and neither TCP_INFO nor sock_diag carries it),
            # and the program's own recv/connect/getsockopt must still see it.
            kn.oflags = EV_EOF
        elif revents & _ERR:
            return True  # a transient (UDP) error: readable, recv() reports it
        elif not kn.data and revents & select.EPOLLIN:
            # FIONREAD says 0 but epoll says readable: maybe an empty datagram,
            # which FreeBSD reports (data 0).  Without this epoll would spin.
            return not kn.sfflags & NOTE_LOWAT and _empty_message(watch.fd)
        return kn.data >= lowat or bool(kn.oflags)

    def _read_fifo(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        kn.data = self._readable(watch.fd)
        # EPOLLERR on a pipe means this is a write end whose reader is gone:
        # FreeBSD's READ on that end reports EV_EOF (asyncio relies on it).
        if revents & (_HUP | _ERR):
            kn.oflags = EV_EOF
        return kn.data >= lowat or bool(kn.oflags)

    def _read_other(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        kn.data = self._readable(watch.fd)
        if revents & _HUP:
            kn.oflags = EV_EOF
        if kn.data == 0:  # a device that does not count: epoll's word stands
            return bool(revents & (_IN | _HUP | _ERR))
        return kn.data >= lowat or bool(kn.oflags)

    # WRITE: room in the send buffer ----------------------------------------------------
    def _write_file(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        _check_identity(watch)
        kn.data = 0
        return True

    def _write_socket(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        outq = socket_outq(watch.fd)
        if outq >= watch.sndbuf:  # the kernel may have grown the buffer since
            watch.sndbuf = _sndbuf(watch.fd)
        kn.data = max(0, watch.sndbuf - outq)
        if revents & select.EPOLLHUP:
            kn.oflags = EV_EOF  # fflags 0, as for READ: SO_ERROR is the program's
        elif revents & _ERR:
            return True  # a transient (UDP) error: writable, send() reports it
        return kn.data >= lowat or bool(kn.oflags)

    def _write_fifo(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        fd = watch.fd
        if revents & select.EPOLLHUP and not revents & _ERR:
            # A read end whose writer is gone.  FreeBSD's pipes run both ways and
            # this end's own buffer, which nobody writes into here, is empty.
            kn.data = pipe_capacity(fd)
        else:
            kn.data = pipe_capacity(fd) - self._readable(fd)
        if revents & (_ERR | select.EPOLLHUP):
            # The other end is gone.  Closing one end of a pipe(2) pipe clears the
            # knotes FreeBSD hangs on it: they fire once more, EV_ONESHOT, with
            # the space as it was; a FIFO keeps its knotes for the next peer.
            kn.oflags = EV_EOF | EV_ONESHOT if watch.anonymous else EV_EOF
        return kn.data >= lowat or bool(kn.oflags)

    def _write_other(self, kn: Knote, watch: FdWatch, revents: int, lowat: int) -> bool:
        kn.data = 0  # a device or listener: no buffer to count, epoll's word stands
        return bool(revents & (_OUT | _ERR | select.EPOLLHUP))

    def _readable(self, fd: int) -> int:
        """FIONREAD; a file that does not know it counts as 0."""
        buf = self._int_buf
        try:
            fcntl.ioctl(fd, termios.FIONREAD, buf)
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
                return 0
            raise
        return buf[0]


# How READ and WRITE measure each kind of file: fill kn's data (and oflags) and say
# whether kn is ready; the arguments are the filter, kn, its watch, the epoll bits to
# judge by and the low-water mark.
_Measure = Callable[[FdFilter, Knote, FdWatch, int, int], bool]
_READ_MEASURES: dict[int, _Measure] = {
    SOCKET: FdFilter._read_socket,
    LISTENER: FdFilter._read_listener,
    FIFO: FdFilter._read_fifo,
    REGULAR: FdFilter._read_file,
    OTHER: FdFilter._read_other,
    KQUEUE: FdFilter._read_kqueue,
}
_WRITE_MEASURES: dict[int, _Measure] = {
    SOCKET: FdFilter._write_socket,
    LISTENER: FdFilter._write_other,
    FIFO: FdFilter._write_fifo,
    REGULAR: FdFilter._write_file,
    OTHER: FdFilter._write_other,
    KQUEUE: FdFilter._write_other,  # refused at attach: a kqueue has only READ
}


def _pipe_device() -> int:
    """The device of pipefs, which every anonymous pipe shares (looked up once)."""
    global _pipefs_dev
    if _pipefs_dev is None:
        r, w = os.pipe()
        try:
            _pipefs_dev = os.fstat(r).st_dev
        finally:
            os.close(r)
            os.close(w)
    return _pipefs_dev


def _poll_now(fd: int) -> int:
    """poll(2) the fd without waiting: its revents (epoll's values on Linux)."""
    poller = select.poll()
    poller.register(fd, _POLL_ANY)
    ready = poller.poll(0)
    return ready[0][1] if ready else 0


def _guess(kn: Knote, fd: int) -> bool:
    """What poll tells without measuring: ready or not, EV_EOF, and data 1 ("some")
    for the unknown count (0 at EOF).  A low-water mark cannot be checked without
    the count, and a wake-up too early costs less than none at all."""
    revents = _poll_now(fd)
    if kn.filter == EVFILT_READ:
        wanted, eof = select.POLLIN, _HUP
    else:
        wanted, eof = select.POLLOUT, select.EPOLLHUP
    kn.fflags = 0
    kn.oflags = EV_EOF if revents & eof else 0
    kn.data = 1 if revents & wanted and not kn.oflags else 0
    return bool(revents & (wanted | eof | _ERR))


def _check_identity(watch: FdWatch) -> os.stat_result:
    st = os.fstat(watch.fd)
    if (st.st_dev, st.st_ino) != watch.identity:
        raise OSError(errno.EBADF, "fd now names another file")
    return st


def _empty_message(fd: int) -> bool:
    """Is a zero-length message (or an error) waiting, though FIONREAD says 0?

    poll answers without touching the socket; a MSG_PEEK recv would consume an error
    that arrived since the harvest (Linux clears it on any recv) and needs a dup,
    which fails at the fd limit.
    """
    if getsockopt_int(fd, socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM:
        return False  # no such thing on a stream: another reader took the data
    return bool(_poll_now(fd) & (select.POLLIN | select.POLLERR))


def _sndbuf(fd: int) -> int:
    """SO_SNDBUF, which Linux autotunes upward as a TCP connection runs."""
    return getsockopt_int(fd, socket.SOL_SOCKET, socket.SO_SNDBUF)


if speedups is not None:
    # The accelerator reads and writes these classes' fields through their slots.
    speedups.configure(Knote, FdWatch, kevent)
