"""Control blocks, job state, and the process-wide job table every AIO path shares.

Like FreeBSD's per-process ``kaioinfo``, one table holds every job of the process
from submission until it is reaped (``aio_return`` or ``aio_waitcomplete``).  One
lock guards the table, the file queue and the socket FIFOs.  Lock order: a
kqueue's lock may be held when the table lock is taken (a kqueue closing cancels
its jobs), never the reverse, so knotes are posted before a job enters the
table and are activated or retired only after the table lock is released.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..filters import aio as aiofilter
from ..kqueue import kqueue

if TYPE_CHECKING:
    from ..knote import Knote

# lio_listio opcodes and modes, aio_cancel answers: FreeBSD's values.
LIO_NOP = 0x0
LIO_WRITE = 0x1
LIO_READ = 0x2
LIO_NOWAIT = 0x0
LIO_WAIT = 0x1
AIO_CANCELED = 0x1
AIO_NOTCANCELED = 0x2
AIO_ALLDONE = 0x3
#: aio_fsync operations: the host's open flags, so ``os.O_SYNC`` works too.
O_SYNC = os.O_SYNC
O_DSYNC = os.O_DSYNC

# What a job does.
OP_READ, OP_WRITE, OP_SYNC, OP_DSYNC = range(4)
# Where a job is in its life.
QUEUED, RUNNING, DONE, REAPED = range(4)

#: Anything that exports the buffer protocol (bytearray, memoryview, mmap, numpy).
Buffer = Any
#: The largest file offset (off_t): FreeBSD's aio_aqueue refuses what lies beyond.
OFF_MAX = 2**63 - 1


def oserror(code: int, detail: str) -> OSError:
    """OSError(code) whose message says what was wrong."""
    return OSError(code, f"{os.strerror(code)}: {detail}")


def errno_of(exc: BaseException) -> int:
    """The errno a job (or a refused control block) gets for exc.

    A value Python refuses (OverflowError, ValueError, TypeError, BufferError)
    is a bad argument, EINVAL; anything else unexpected is EIO, so that a job
    always ends with an errno rather than taking its worker down.
    """
    if isinstance(exc, OSError):
        return exc.errno or errno.EIO
    if isinstance(exc, (ArithmeticError, ValueError, TypeError, BufferError)):
        return errno.EINVAL
    return errno.EIO


def require_int(what: str, value: object) -> int:
    """value as an int, or TypeError naming what it should have been."""
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


def fileno_of(fd: object) -> int:
    """The descriptor behind fd: an int, or an object with a fileno() method."""
    if isinstance(fd, int):
        return fd
    fileno = getattr(fd, "fileno", None)
    if not callable(fileno):
        raise TypeError(
            f"expected a file descriptor (int) or an object with fileno(), not {type(fd).__name__}"
        )
    return require_int("fileno()", fileno())


@dataclass(frozen=True, slots=True)
class sigevent_kevent:
    """Ask for an EVFILT_AIO (or EVFILT_LIO) event on kq when the job (list) is done."""

    kq: kqueue
    flags: int = 0
    udata: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.kq, kqueue):
            raise TypeError(f"sigevent_kevent needs a skqueue.kqueue, not {type(self.kq).__name__}")
        if require_int("sigevent flags", self.flags) & ~aiofilter.SIGEV_KEVENT_FLAGS:
            raise oserror(
                errno.EINVAL,
                f"sigevent flags {self.flags:#x}: only "
                "EV_ONESHOT, EV_CLEAR and EV_DISPATCH are allowed",
            )


class aiocb:
    """An AIO control block: what to do (fd, buffer, offset, nbytes) and whom to tell.

    ``error`` and ``status`` keep the outcome of the last finished job, as
    FreeBSD's ``_aiocb_private`` does (a refused submission leaves status -1 and
    its errno); ``ident`` is the current job's identity, the ident of its
    EVFILT_AIO event.  Wrong types are refused here with TypeError; the fields
    stay plain attributes, checked again when the block is submitted.
    """

    __slots__ = (
        "_job",
        "buf",
        "error",
        "fd",
        "file",
        "ident",
        "lio_opcode",
        "nbytes",
        "offset",
        "sigevent",
        "status",
    )

    def __init__(
        self,
        fd: int | Any,
        buf: Buffer = None,
        offset: int = 0,
        sigevent: sigevent_kevent | None = None,
        *,
        nbytes: int | None = None,
        lio_opcode: int = LIO_NOP,
    ) -> None:
        if sigevent is not None and not isinstance(sigevent, sigevent_kevent):
            raise TypeError(f"sigevent must be a sigevent_kevent, not {type(sigevent).__name__}")
        self.file = fd  # a socket or file object stays alive while the block does
        self.fd: int = fileno_of(fd)
        self.buf = buf
        self.offset = require_int("offset", offset)
        self.nbytes = None if nbytes is None else require_int("nbytes", nbytes)
        self.sigevent = sigevent
        self.lio_opcode = require_int("lio_opcode", lio_opcode)
        self.ident = 0
        self.error = 0
        self.status = 0
        self._job: Job | None = None

    def __repr__(self) -> str:
        return f"<aiocb fd={self.fd} offset={self.offset} ident={self.ident}>"


class Job:
    """One submitted operation, from submission until it is reaped."""

    __slots__ = (
        "after",
        "cb",
        "error",
        "fd",
        "ident",
        "identity",
        "knote",
        "lio",
        "nbytes",
        "noticing",
        "offset",
        "op",
        "result",
        "sends",
        "sent",
        "socket",
        "state",
        "table",
        "view",
        "zc",
        "zc_out",
    )

    def __init__(
        self,
        table: JobTable,
        cb: aiocb,
        op: int,
        view: memoryview | None,
        nbytes: int,
        identity: tuple[int, int],
        socket: bool,
    ) -> None:
        self.table = table
        self.cb = cb
        self.op = op
        self.fd = cb.fd
        self.offset = cb.offset
        self.view = view  # the export that pins the caller's buffer
        self.nbytes = nbytes
        self.identity = identity  # (st_dev, st_ino): a reused fd number is not ours
        self.socket = socket
        self.ident = 0
        self.state = QUEUED
        self.error = 0
        self.result = 0
        self.knote: Knote | None = None
        self.lio: LioList | None = None
        self.noticing = False  # finished, its kevent not posted yet (JobTable.section)
        self.after: set[Job] = set()  # aio_fsync: jobs it must wait for
        self.sent = 0  # socket writes: bytes the kernel accepted
        self.zc = False  # this write goes zero-copy (decided when it starts)
        self.zc_out = 0  # zero-copy sends not yet released by the kernel
        self.sends = 0  # send calls that moved data

    @property
    def finished(self) -> bool:
        return self.state >= DONE

    @property
    def settled(self) -> bool:
        """Finished as a program may see it: with its kevent posted already, as FreeBSD
        posts it before it wakes aio_suspend (aio_bio_done_notify)."""
        return self.state >= DONE and not self.noticing

    def kqueue_closed(self) -> None:
        self.table.kqueue_closed(self)

    def __repr__(self) -> str:
        return f"<Job ident={self.ident} op={self.op} fd={self.fd} state={self.state}>"


class LioList:
    """The jobs of one lio_listio call: its EVFILT_LIO event fires when all are done."""

    __slots__ = ("failed", "ident", "knote", "pending", "table", "unreaped")

    def __init__(self, table: JobTable, ident: int) -> None:
        self.table = table
        self.ident = ident
        # Jobs not finished and not reaped, each plus one for the lio_listio call
        # while it queues (FreeBSD's extra lioj_count): the list event cannot fire,
        # nor its knote go, before every entry was tried.
        self.pending = 1
        self.unreaped = 1  # the list's knote lives until 0
        self.failed = False
        self.knote: Knote | None = None

    @property
    def finished(self) -> bool:
        return self.pending == 0

    @property
    def error(self) -> int:
        return 0

    def kqueue_closed(self) -> None:
        self.table.kqueue_closed(self)


_GAUGES = ("queued", "running", "unreaped", "buffers_held", "zc_inflight")
_COUNTERS = (
    "submitted",
    "done",
    "cancelled",
    "failed",
    "copy_bytes",
    "zc_sends",
    "zc_bytes",
    "zc_released",
    "zc_copied_sends",
    "zc_copied_bytes",
    "zc_notices",
    "zc_fallbacks",
)


class JobTable:
    """Every job of the process, the completion queue, and the statistics."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)  # "some job finished"
        self.jobs: dict[int, Job] = {}
        self.by_fd: dict[int, dict[int, Job]] = {}  # unfinished jobs per fd
        self.barriers: dict[int, list[Job]] = {}  # aio_fsync jobs waiting, per fd
        self.done: OrderedDict[int, Job] = OrderedDict()  # finished, unreaped, in order
        self.stats: dict[str, int] = dict.fromkeys(_GAUGES + _COUNTERS, 0)
        self.idents = itertools.count(1)
        self.to_fire: list[Knote] = []
        self.noticed: list[Job] = []  # the jobs whose knotes are in to_fire
        self.to_retire: list[Knote] = []
        # Set by the api module: where a job goes once its barrier clears, how to
        # wake the socket engine, and how to hand knotes over to be fired later.
        self.run_barrier: Callable[[Job], None] = lambda job: None
        self.poke_socket: Callable[[int], None] = lambda fd: None
        self.defer: Callable[[list[Knote]], None] = lambda knotes: None

    @contextmanager
    def section(self) -> Iterator[None]:
        """Hold the lock; afterwards fire and retire the knotes collected meanwhile."""
        try:
            with self.lock:
                yield
        finally:
            with self.lock:
                fire, self.to_fire = self.to_fire, []
                retire, self.to_retire = self.to_retire, []
                noticed, self.noticed = self.noticed, []
            try:
                for kn in retire:
                    aiofilter.retire(kn)
                for kn in fire:
                    aiofilter.notify(kn)  # a knote deleted meanwhile is left alone there
            finally:
                if noticed:  # their kevents are queued: a program may see them finished
                    with self.lock:
                        for job in noticed:
                            job.noticing = False
                        self.cond.notify_all()

    # Life of a job (lock held) ------------------------------------------------------
    def admit(self, job: Job) -> None:
        """Enter job into the table; EAGAIN at the queue limits."""
        from ..tunables import tunables

        if len(self.jobs) >= tunables.aio_max_queue:
            raise oserror(errno.EAGAIN, f"{len(self.jobs)} jobs queued (aio_max_queue)")
        active = self.by_fd.setdefault(job.fd, {})
        if len(active) >= tunables.aio_max_per_fd:
            if not active:
                del self.by_fd[job.fd]
            raise oserror(errno.EAGAIN, f"{len(active)} jobs on fd {job.fd} (aio_max_per_fd)")
        if job.op in (OP_SYNC, OP_DSYNC):
            job.after = set(active.values())
        active[job.ident] = job
        self.jobs[job.ident] = job
        job.cb.ident = job.ident
        job.cb._job = job
        self.stats["submitted"] += 1
        self.stats["queued"] += 1
        if job.view is not None:
            self.stats["buffers_held"] += 1

    def start(self, job: Job) -> None:
        """job leaves its queue: from now on it cannot be cancelled."""
        job.state = RUNNING
        self.stats["queued"] -= 1
        self.stats["running"] += 1

    def complete(self, job: Job, error: int, result: int) -> None:
        """Finish job exactly once: free its buffer, queue its notices, wake waiters."""
        if job.state >= DONE:
            return
        self.stats["queued" if job.state == QUEUED else "running"] -= 1
        job.state = DONE
        job.error = error
        job.result = -1 if error else result
        job.cb.error = error
        job.cb.status = job.result
        if job.view is not None:
            job.view.release()
            job.view = None
            self.stats["buffers_held"] -= 1
        stats = self.stats
        stats["done"] += 1
        stats["unreaped"] += 1
        if error == errno.ECANCELED:
            stats["cancelled"] += 1
        elif error:
            stats["failed"] += 1
        active = self.by_fd.get(job.fd)
        if active is not None:
            active.pop(job.ident, None)
            if not active:
                del self.by_fd[job.fd]
        self._clear_barriers(job)
        self.done[job.ident] = job
        if job.knote is not None:
            self.to_fire.append(job.knote)
            self.noticed.append(job)
            job.noticing = True
        lio = job.lio
        if lio is not None:
            lio.pending -= 1
            lio.failed = lio.failed or bool(error)
            if lio.pending == 0 and lio.knote is not None:
                self.to_fire.append(lio.knote)
        self.cond.notify_all()

    def _clear_barriers(self, job: Job) -> None:
        waiting = self.barriers.get(job.fd)
        if not waiting:
            return
        for sync in list(waiting):
            sync.after.discard(job)
            if sync is job or sync.state != QUEUED:
                waiting.remove(sync)
            elif not sync.after:
                waiting.remove(sync)
                self.run_barrier(sync)
        if not waiting:
            del self.barriers[job.fd]

    def cancel(self, job: Job) -> bool:
        """Cancel job if it has not started; True if it was cancelled."""
        if job.state != QUEUED:
            return False
        self.complete(job, errno.ECANCELED, -1)
        if job.socket:
            self.poke_socket(job.fd)
        return True

    def reap(self, job: Job) -> None:
        """The result was collected: forget the job, retire its knotes."""
        job.state = REAPED
        del self.jobs[job.ident]
        self.done.pop(job.ident, None)
        self.stats["unreaped"] -= 1
        if job.cb._job is job:
            job.cb._job = None
        if job.knote is not None:
            self.to_retire.append(job.knote)
            job.knote = None
        lio = job.lio
        if lio is not None:
            lio.unreaped -= 1
            if lio.unreaped == 0 and lio.knote is not None:
                self.to_retire.append(lio.knote)
                lio.knote = None

    def release_list(self, lio: LioList) -> None:
        """lio_listio has queued what it could: drop its hold on the list.

        As kern_lio_listio does, the list event fires now if every job queued
        has finished; with no job left (none queued, or all reaped already) the
        knote goes undelivered.
        """
        lio.pending -= 1
        lio.unreaped -= 1
        if lio.knote is None:
            return
        if lio.unreaped == 0:
            self.to_retire.append(lio.knote)
            lio.knote = None
        elif lio.pending == 0:
            self.to_fire.append(lio.knote)

    def lookup(self, what: aiocb | int) -> Job:
        """The live (unreaped) job of a control block or an event ident; EINVAL if none."""
        if isinstance(what, aiocb):
            job = what._job
        elif isinstance(what, int):
            job = self.jobs.get(what)
        else:
            raise TypeError(f"expected an aiocb or a job ident (int), not {type(what).__name__}")
        if job is None:
            raise oserror(errno.EINVAL, f"no job for {what!r} (never submitted or reaped)")
        return job

    # Kqueue closing (a kqueue's lock is held: fire nothing here) ---------------------
    def kqueue_closed(self, target: Job | LioList) -> None:
        """The kqueue target reports to closed: cancel the jobs that have not started."""
        with self.lock:
            jobs = (
                [target]
                if isinstance(target, Job)
                else [job for job in self.jobs.values() if job.lio is target]
            )
            for job in jobs:
                self.cancel(job)
                job.noticing = False  # its kqueue is closed: no kevent will come
            fire, self.to_fire = self.to_fire, []
        self.defer(fire)
