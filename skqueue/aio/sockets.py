"""Socket jobs: per socket and direction a FIFO, driven by one engine thread.

The engine waits on an internal skqueue kqueue where every socket with work has
an edge-triggered (EV_CLEAR) EVFILT_READ and EVFILT_WRITE knote; an EVFILT_USER
knote brings new submissions.  On each event it "pumps" the socket: non-blocking
``recv_into`` for the head read jobs until EAGAIN, non-blocking ``send``
(MSG_NOSIGNAL: a dead peer gives EPIPE, never SIGPIPE) of the head write jobs
until EAGAIN, and the error queue for zero-copy notices.  The head of a FIFO
starts only when the job before it is finished (reads) or fully queued
(writes), so the order of submission is the order on the wire.  No thread ever
blocks on a socket.

The socket is the caller's descriptor, not a duplicate, so closing it behind
our back is seen: the file identity is checked before each pump and by a sweep
every ``SWEEP`` seconds while sockets have work (also a safety net should an
edge be missed); jobs on a vanished socket complete with EBADF.  A socket
leaves the engine when it has no work, except one that went zero-copy: its
send-id ledger lives as long as the socket does.  Anything unexpected while
pumping a socket fails that socket's jobs with an errno rather than stopping
the engine, which would leave every socket job of the process in progress.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from ..constants import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EVFILT_READ,
    EVFILT_USER,
    EVFILT_WRITE,
    NOTE_TRIGGER,
)
from ..event import kevent
from ..kqueue import kqueue
from ..tunables import tunables
from .jobs import OP_READ, QUEUED, Job, JobTable, errno_of
from .zerocopy import ANCBUF, MSG_ZEROCOPY, Ledger, enable_zerocopy, parse_notice

if TYPE_CHECKING:
    from ..knote import Knote

SWEEP = 0.25
_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL
_WAKE = kevent(0, EVFILT_USER, 0, NOTE_TRIGGER)


class SocketState:
    """One socket with AIO work: its two FIFOs and its zero-copy ledger."""

    __slots__ = ("error", "fd", "identity", "ledger", "reads", "sock", "writes", "zc_ok")

    def __init__(self, fd: int, identity: tuple[int, int]) -> None:
        self.fd = fd
        self.identity = identity
        # A socket object on the caller's fd, detached (never closed) when we are done.
        self.sock = socket.socket(fileno=fd)
        self.reads: deque[Job] = deque()
        self.writes: deque[Job] = deque()
        self.ledger = Ledger()
        self.zc_ok: bool | None = None  # SO_ZEROCOPY accepted; None = not tried yet

    def idle(self) -> bool:
        return not self.reads and not self.writes and not self.ledger.sends

    def same_file(self) -> bool:
        try:
            st = os.fstat(self.fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity


class SocketEngine:
    """The thread that moves socket jobs; all its state is guarded by the table lock."""

    def __init__(self, table: JobTable) -> None:
        self.table = table
        self.stats = table.stats
        self.states: dict[int, SocketState] = {}
        self.dirty: set[int] = set()
        self.deferred: list[Knote] = []
        self.kq: kqueue | None = None
        self.poked = False
        self._last_sweep = 0.0

    # Called with the table lock held ---------------------------------------------
    def submit(self, job: Job) -> None:
        """Append job to its socket's FIFO and have the engine look at the socket."""
        state = self.states.get(job.fd)
        if state is not None and state.identity != job.identity:
            self._abandon(state, errno.EBADF)  # the number was closed and reused
            state = None
        if state is None:
            state = SocketState(job.fd, job.identity)
            try:
                self._kqueue().control(
                    [
                        kevent(job.fd, filt, EV_ADD | EV_CLEAR, udata=state)
                        for filt in (EVFILT_READ, EVFILT_WRITE)
                    ],
                    0,
                )
            except OSError:
                state.sock.detach()
                raise
            self.states[job.fd] = state
        (state.reads if job.op == OP_READ else state.writes).append(job)
        self.poke(job.fd)

    def defer(self, knotes: list[Knote]) -> None:
        """Fire knotes from the engine thread (the caller holds some kqueue's lock)."""
        if knotes:
            with self.table.lock:
                self.deferred.extend(knotes)
                self.poke()

    def poke(self, fd: int | None = None) -> None:
        """Make the engine pump fd (and run deferred work) soon."""
        if fd is not None:
            self.dirty.add(fd)
        if not self.poked:
            self.poked = True
            self._kqueue().control([_WAKE], 0)

    def _kqueue(self) -> kqueue:
        if self.kq is None:
            self.kq = kqueue()
            self.kq.control([kevent(0, EVFILT_USER, EV_ADD | EV_CLEAR)], 0)
            threading.Thread(target=self._run, name="skqueue-aio-sockets", daemon=True).start()
        return self.kq

    # The engine thread ---------------------------------------------------------------
    def _run(self) -> None:
        kq = self.kq
        assert kq is not None
        table = self.table
        while True:
            events = kq.control(None, 256, SWEEP if self.states else None)
            with table.section():
                self.poked = False
                for ev in events:
                    state = self.states.get(ev.ident) if ev.filter != EVFILT_USER else None
                    if state is None or ev.udata is not state:
                        continue
                    self.dirty.add(ev.ident)
                now = time.monotonic()
                if now - self._last_sweep >= SWEEP:
                    self._last_sweep = now
                    self.dirty.update(self.states)
                dirty, self.dirty = self.dirty, set()
                for fd in dirty:
                    state = self.states.get(fd)
                    if state is not None:
                        try:
                            self._pump(state)
                        except Exception as exc:  # this socket's jobs fail, the engine lives
                            if self.states.get(fd) is state:
                                self._abandon(state, errno_of(exc))
                table.to_fire.extend(self.deferred)
                self.deferred.clear()

    def _pump(self, state: SocketState) -> None:
        if not state.same_file():
            self._abandon(state, errno.EBADF)
            return
        if state.ledger.sends:
            self._drain_notices(state)
        self._pump_reads(state)
        self._pump_writes(state)
        if state.idle() and not state.zc_ok:
            # A zero-copy socket is kept until it closes: the kernel's send-id
            # counter cannot be read back, so ours must outlive idle spells.
            self._forget(state)

    def _pump_reads(self, state: SocketState) -> None:
        reads = state.reads
        while reads:
            job = reads[0]
            if job.finished:  # cancelled
                reads.popleft()
                continue
            assert job.view is not None
            try:
                n = state.sock.recv_into(job.view, job.nbytes, _FLAGS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                reads.popleft()
                self._fail(state, job, exc.errno or errno.EIO)
                continue
            reads.popleft()
            self.table.start(job)
            self.table.complete(job, 0, n)

    def _pump_writes(self, state: SocketState) -> None:
        writes = state.writes
        while writes:
            job = writes[0]
            if job.finished:  # cancelled before it started
                writes.popleft()
                continue
            if job.state == QUEUED and not job.sent:
                job.zc = self._use_zerocopy(state, job)
            if not self._send(state, job):
                return
            if job.finished:  # failed; _fail took it off the FIFO
                continue
            writes.popleft()
            if job.state == QUEUED:  # nothing to send (nbytes == 0)
                self.table.start(job)
            if job.zc_out == 0:
                self.table.complete(job, 0, job.sent)

    def _use_zerocopy(self, state: SocketState, job: Job) -> bool:
        """Decide once per job, when it starts: jobs in flight keep their path."""
        if not tunables.tx_zcopy or job.nbytes < max(1, tunables.tx_zcopy_min):
            return False
        if state.zc_ok is None:
            state.zc_ok = enable_zerocopy(state.sock)
        return state.zc_ok

    def _send(self, state: SocketState, job: Job) -> bool:
        """Send what is left of job; False if the socket is full (wait for an event)."""
        view = job.view
        assert view is not None
        stats = self.stats
        while job.sent < job.nbytes:
            flags = _FLAGS | (MSG_ZEROCOPY if job.zc else 0)
            try:
                n = state.sock.send(view[job.sent : job.nbytes], flags)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                if exc.errno == errno.ENOBUFS and job.zc:
                    if state.ledger.sends:
                        return False  # option memory frees as notices are read
                    job.zc = False  # the kernel will not pin more: copy the rest
                    stats["zc_fallbacks"] += 1
                    continue
                self._fail(state, job, exc.errno or errno.EIO)
                return True
            if job.state == QUEUED:
                self.table.start(job)
            if job.zc:
                state.ledger.record(job, job.sent, n)
                stats["zc_sends"] += 1
                stats["zc_bytes"] += n
                stats["zc_inflight"] += 1
            else:
                stats["copy_bytes"] += n
            job.sends += 1
            job.sent += n
        return True

    def _drain_notices(self, state: SocketState) -> None:
        """Read the error queue: release the sends it reports, finish freed jobs."""
        stats = self.stats
        while state.ledger.sends:
            try:
                _, ancdata, _, _ = state.sock.recvmsg(
                    0, ANCBUF, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # a dead socket: the pump's next step fails the jobs
            for level, kind, data in ancdata:
                notice = parse_notice(level, kind, data)
                if notice is None:
                    continue
                stats["zc_notices"] += 1
                for job in state.ledger.release(notice, stats):
                    if job.sent == job.nbytes:  # else the job is still sending
                        self.table.complete(job, 0, job.sent)

    def _fail(self, state: SocketState, job: Job, error: int) -> None:
        """Complete job with error, first releasing what zero-copy still pins for it."""
        if job.zc_out:
            self._drain_notices(state)
            state.ledger.forget(job, self.stats)
        if job in state.writes:
            state.writes.remove(job)
        self.table.complete(job, error, -1)

    def _abandon(self, state: SocketState, error: int) -> None:
        """The socket vanished (or could not be pumped): every job on it completes with error."""
        for job in [*state.reads, *state.writes, *(e[0] for e in state.ledger.sends.values())]:
            state.ledger.forget(job, self.stats)
            self.table.complete(job, error, -1)
        state.reads.clear()
        state.writes.clear()
        self._forget(state)

    def _forget(self, state: SocketState) -> None:
        del self.states[state.fd]
        kq = self.kq
        assert kq is not None
        for filt in (EVFILT_READ, EVFILT_WRITE):
            # A closed or reused fd: the kqueue has dropped the knote already.
            with contextlib.suppress(OSError):
                kq.control([kevent(state.fd, filt, EV_DELETE)], 0)
        state.sock.detach()
