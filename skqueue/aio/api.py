"""The AIO calls, as FreeBSD's aio(4) defines them, on one process-wide job table.

Errors are raised as ``OSError`` with FreeBSD's errno (a wrong Python type is a
TypeError); a job's own failure is its ``aio_error`` and makes ``aio_return``
raise.  A control block that could not be queued keeps status -1 and the errno,
which ``aio_error`` reports, as FreeBSD's aio_aqueue leaves it.  A buffer the
caller passes is exported (``memoryview``) from submission until the job
finishes, so Python can neither resize nor free it while the kernel may still
use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import operator
import os
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..constants import EVFILT_AIO, EVFILT_LIO
from ..filters import aio as aiofilter
from ..tunables import tunables
from .files import FilePool
from .jobs import (
    AIO_ALLDONE,
    AIO_CANCELED,
    AIO_NOTCANCELED,
    DONE,
    LIO_NOP,
    LIO_NOWAIT,
    LIO_READ,
    LIO_WAIT,
    LIO_WRITE,
    O_DSYNC,
    O_SYNC,
    OFF_MAX,
    OP_DSYNC,
    OP_READ,
    OP_SYNC,
    OP_WRITE,
    Job,
    JobTable,
    LioList,
    aiocb,
    errno_of,
    fileno_of,
    oserror,
    require_int,
    sigevent_kevent,
)
from .sockets import SocketEngine

if TYPE_CHECKING:
    from ..knote import Knote

__all__ = [
    "AIO_ALLDONE",
    "AIO_CANCELED",
    "AIO_NOTCANCELED",
    "LIO_NOP",
    "LIO_NOWAIT",
    "LIO_READ",
    "LIO_WAIT",
    "LIO_WRITE",
    "O_DSYNC",
    "O_SYNC",
    "aio_cancel",
    "aio_error",
    "aio_fsync",
    "aio_read",
    "aio_return",
    "aio_stats",
    "aio_suspend",
    "aio_waitcomplete",
    "aio_write",
    "aiocb",
    "lio_listio",
    "sigevent_kevent",
]

_table: JobTable
_files: FilePool
_sockets: SocketEngine


def _start_engine() -> None:
    """Make the process's job table and the two engines that serve it."""
    global _table, _files, _sockets
    _table = JobTable()
    _files = FilePool(_table)
    _sockets = SocketEngine(_table)
    _table.run_barrier = _files.push
    _table.poke_socket = _sockets.poke
    _table.defer = _sockets.defer


def _after_fork_in_child() -> None:
    """A fork() child inherits no AIO jobs (FreeBSD): forget the parent's, start afresh.

    The child has one thread: the workers and the socket engine stayed in the
    parent, whose threads may have held the table lock, so nothing old is locked
    or waited on.  The parent's control blocks can be submitted again, their
    buffers are unpinned, and the sockets the engine wrapped are detached so
    that collecting them does not close the caller's descriptors.
    """
    for state in _sockets.states.values():
        state.sock.detach()
    for job in _table.jobs.values():
        if job.cb._job is job:
            job.cb._job = None
        if job.view is not None:
            with contextlib.suppress(BufferError):  # a dead worker's slice of it
                job.view.release()
    _start_engine()


_start_engine()
os.register_at_fork(after_in_child=_after_fork_in_child)


# Submission --------------------------------------------------------------------------
def _queue(cb: object, op: int, lio: LioList | None = None) -> None:
    """Validate, pin and submit cb; a refusal is recorded in the block and raised."""
    if not isinstance(cb, aiocb):
        raise TypeError(f"expected an aiocb, not {type(cb).__name__}")
    if cb._job is not None:
        raise oserror(errno.EINVAL, f"{cb!r} already has a job; reap it with aio_return")
    try:
        _submit(_prepare(cb, op), lio)
    except Exception as exc:
        _refused(cb, exc)
        raise


def _refused(cb: aiocb, exc: Exception) -> int:
    """Leave a refused block as aio_aqueue does: status -1, the errno for aio_error."""
    code = errno_of(exc)
    if cb._job is None:  # not a block busy with an earlier job
        cb.status, cb.error = -1, code
    return code


def _prepare(cb: aiocb, op: int) -> Job:
    """Validate cb for op and pin its buffer: FreeBSD's checks in aio_aqueue."""
    if cb.sigevent is not None and not isinstance(cb.sigevent, sigevent_kevent):
        raise oserror(errno.EINVAL, "sigevent must be a sigevent_kevent")
    fd = require_int("aiocb.fd", cb.fd)
    if not 0 <= require_int("aiocb.offset", cb.offset) <= OFF_MAX:
        raise oserror(errno.EINVAL, f"offset {cb.offset} (0 to {OFF_MAX})")
    if cb.nbytes is not None:
        require_int("aiocb.nbytes", cb.nbytes)
    try:
        st = os.fstat(fd)
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OverflowError:
        raise oserror(errno.EBADF, f"fd {fd}") from None
    except OSError as exc:
        raise oserror(exc.errno or errno.EBADF, f"fd {fd}") from None
    sock = stat.S_ISSOCK(st.st_mode)
    if op in (OP_READ, OP_WRITE) and not (
        sock or stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)
    ):
        # FreeBSD without vfs.aio.enable_unsafe: pipes, FIFOs, ttys could block a daemon.
        raise oserror(errno.EOPNOTSUPP, f"fd {cb.fd} is not a socket, file or disk")
    if not sock and (
        (op == OP_READ and access == os.O_WRONLY) or (op == OP_WRITE and access == os.O_RDONLY)
    ):
        raise oserror(errno.EBADF, f"fd {cb.fd} is not open for {_OPNAMES[op]}")
    view: memoryview | None = None
    nbytes = 0
    if op in (OP_READ, OP_WRITE):
        view = _pin(cb.buf, op == OP_READ)
        nbytes = len(view) if cb.nbytes is None else cb.nbytes
        if not 0 <= nbytes <= len(view):
            size = len(view)
            view.release()
            raise oserror(errno.EINVAL, f"nbytes {cb.nbytes!r} for a {size}-byte buffer")
    return Job(_table, cb, op, view, nbytes, (st.st_dev, st.st_ino), sock)


_OPNAMES = {OP_READ: "reading", OP_WRITE: "writing"}


def _pin(buf: object, writable: bool) -> memoryview:
    """Export buf as flat bytes, holding it until the job is done."""
    try:
        view = memoryview(buf)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"aio needs a buffer, not {type(buf).__name__}") from None
    except ValueError as exc:  # a released memoryview
        raise ValueError(f"aio needs a live buffer: {exc}") from None
    if writable and view.readonly:
        view.release()
        raise TypeError("aio_read needs a writable buffer (bytearray, memoryview, mmap, ...)")
    try:
        flat = view.cast("B")
    except TypeError:
        view.release()
        raise TypeError("aio needs a C-contiguous buffer") from None
    view.release()
    return flat


def _submit(job: Job, lio: LioList | None = None) -> None:
    """Post the job's knote, enter it into the table, and start it."""
    sig = job.cb.sigevent
    knote: Knote | None = None
    job.ident = next(_table.idents)  # first: the knote is keyed by it
    if sig is not None:
        core = sig.kq._core
        if core is None:
            _unpin(job)
            raise oserror(errno.EBADF, "the sigevent's kqueue is closed")
        try:
            knote = aiofilter.post(core, job, EVFILT_AIO, job.ident, sig.flags, sig.udata)
        except OSError:
            _unpin(job)
            raise
    with _table.section():
        try:
            _table.admit(job)
        except OSError:
            _unpin(job)
            if knote is not None:
                _table.to_retire.append(knote)
            raise
        job.knote = knote
        if lio is not None:
            job.lio = lio
            lio.pending += 1
            lio.unreaped += 1
        _dispatch(job)


def _unpin(job: Job) -> None:
    if job.view is not None:
        job.view.release()
        job.view = None


def _dispatch(job: Job) -> None:
    """Hand a job to the engine that runs it (table lock held)."""
    if job.op in (OP_SYNC, OP_DSYNC):
        if job.after:
            _table.barriers.setdefault(job.fd, []).append(job)
        else:
            _files.push(job)
    elif job.socket:
        try:
            _sockets.submit(job)
        except Exception as exc:  # the job is in the table: end it
            _table.start(job)
            _table.complete(job, errno_of(exc), -1)
    else:
        _files.push(job)


def aio_read(cb: aiocb) -> None:
    """Queue a read of cb.nbytes (default: the buffer's size) at cb.offset into cb.buf."""
    _queue(cb, OP_READ)


def aio_write(cb: aiocb) -> None:
    """Queue a write of cb.buf; on a TCP socket large writes go zero-copy (tx_zcopy)."""
    _queue(cb, OP_WRITE)


def aio_fsync(op: int, cb: aiocb) -> None:
    """Queue an fsync (O_SYNC) or fdatasync (O_DSYNC) of cb.fd after its queued jobs."""
    if require_int("aio_fsync op", op) not in (O_SYNC, O_DSYNC):
        raise oserror(errno.EINVAL, f"aio_fsync op {op:#x}: use O_SYNC or O_DSYNC")
    _queue(cb, OP_SYNC if op == O_SYNC else OP_DSYNC)


# Status ------------------------------------------------------------------------------
def aio_error(cb: aiocb | int) -> int:
    """EINPROGRESS while the job runs, then its errno (0 on success); EINVAL if unknown.

    A block with no job whose last submission or job failed (status -1) reports
    that errno, FreeBSD's "hack for failure of aio_aqueue": a program can tell
    which entries of a lio_listio list were refused.
    """
    with _table.lock:
        if isinstance(cb, aiocb) and cb._job is None and cb.status == -1:
            return cb.error
        job = _table.lookup(cb)
        if job.state < DONE:
            return errno.EINPROGRESS
        _settle(job)
        return job.error


def aio_return(cb: aiocb | int) -> int:
    """Reap a finished job: its byte count, or OSError(its errno); once only."""
    with _table.section():
        job = _table.lookup(cb)
        if job.state < DONE:
            raise oserror(errno.EINVAL, f"job {job.ident} has not finished (EINPROGRESS)")
        _settle(job)
        _table.reap(job)
    if job.error:
        raise OSError(job.error, os.strerror(job.error))
    return job.result


def aio_cancel(fd: int | object, cb: aiocb | None = None) -> int:
    """Cancel fd's jobs (or cb's) that have not started: AIO_CANCELED/NOTCANCELED/ALLDONE."""
    fd = fileno_of(fd)
    if cb is not None and not isinstance(cb, aiocb):
        raise TypeError(f"aio_cancel's cb must be an aiocb or None, not {type(cb).__name__}")
    if fd < 0 or not _is_open(fd):
        raise oserror(errno.EBADF, f"fd {fd}")
    cancelled = notcancelled = 0
    with _table.section():
        for job in list(_table.by_fd.get(fd, {}).values()):
            if cb is not None and job.cb is not cb:
                continue
            if _table.cancel(job):
                cancelled += 1
            else:
                notcancelled += 1
    if notcancelled:
        return AIO_NOTCANCELED
    return AIO_CANCELED if cancelled else AIO_ALLDONE


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except (OSError, OverflowError):
        return False
    return True


def _deadline(timeout: float | None) -> float | None:
    """When a wait of timeout seconds ends, checked as select checks its timeout.

    NaN is a ValueError and a value no clock wait can hold (inf included) an
    OverflowError, as in CPython; a negative one is EINVAL, as FreeBSD's
    aio_suspend says.
    """
    if timeout is None:
        return None
    if isinstance(timeout, float):
        seconds = timeout
    else:
        try:
            seconds = float(operator.index(timeout))
        except TypeError:
            raise TypeError(
                f"timeout must be a number or None, not {type(timeout).__name__}"
            ) from None
        except OverflowError:
            raise OverflowError("timeout is too large") from None
    if math.isnan(seconds):
        raise ValueError("Invalid value NaN (not a number)")
    if seconds < 0:
        raise oserror(errno.EINVAL, f"timeout {timeout}")
    if seconds > threading.TIMEOUT_MAX:
        raise OverflowError("timeout is too large")
    return time.monotonic() + seconds


def _wait(deadline: float | None) -> None:
    """Sleep on the table's condition until something finishes or the deadline passes."""
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        raise oserror(errno.EAGAIN, "the time limit expired")
    _table.cond.wait(remaining)


def aio_suspend(cbs: Iterable[aiocb | None], timeout: float | None = None) -> None:
    """Return once any of cbs has finished; OSError(EAGAIN) when timeout expires."""
    blocks = [cb for cb in _entries("aio_suspend", cbs) if cb is not None]
    if len(blocks) > tunables.aio_max_queue:
        raise oserror(errno.EINVAL, f"{len(blocks)} control blocks (aio_max_queue)")
    deadline = _deadline(timeout)
    with _table.lock:
        while True:
            for cb in blocks:
                job = cb._job
                if job is not None and job.settled:
                    return
            _wait(deadline)


def aio_waitcomplete(timeout: float | None = None) -> tuple[aiocb, int]:
    """Wait for the next finished job of the process and reap it: (cb, status).

    status is aio_return's value, or -1 when the job failed (its errno is in
    ``cb.error``); OSError(EAGAIN) when timeout expires first.
    """
    deadline = _deadline(timeout)
    with _table.section():
        while (job := _first_settled()) is None:
            _wait(deadline)
        _table.reap(job)
    return job.cb, job.result


def _settle(job: Job) -> None:
    """A finished job whose kevent is being posted: wait the moment until it is (table
    lock held), so that a program sees the job finished only with its kevent queued, and
    one that saw the kevent finds the job finished."""
    while job.noticing:
        _table.cond.wait()


def _first_settled() -> Job | None:
    """The first finished job a program may see (table lock held)."""
    return next((job for job in _table.done.values() if job.settled), None)


def _entries(call: str, cbs: Iterable[aiocb | None]) -> list[aiocb | None]:
    """cbs as a list, every entry an aiocb or None; TypeError before anything is done."""
    try:
        entries = list(cbs)
    except TypeError:
        raise TypeError(
            f"{call} needs a list of aiocb (or None), not {type(cbs).__name__}"
        ) from None
    for i, cb in enumerate(entries):
        if cb is not None and not isinstance(cb, aiocb):
            raise TypeError(f"{call}: entry {i} is a {type(cb).__name__}, not an aiocb or None")
    return entries


def lio_listio(
    mode: int, cbs: Sequence[aiocb | None], sigevent: sigevent_kevent | None = None
) -> int:
    """Submit cbs by their lio_opcode; LIO_WAIT waits for all (EIO if any failed).

    Returns the list's ident, the ident of its EVFILT_LIO event (LIO_NOWAIT with
    a sigevent).  As in FreeBSD each entry is queued on its own: one that cannot
    be queued keeps status -1 and its errno (``aio_error(cb)``), and the call
    fails with EIO (EAGAIN if only queue limits refused entries) once the others
    are queued.  A list with no job queued posts no event.
    """
    if require_int("lio_listio mode", mode) not in (LIO_WAIT, LIO_NOWAIT):
        raise oserror(errno.EINVAL, f"lio_listio mode {mode}")
    if sigevent is not None and not isinstance(sigevent, sigevent_kevent):
        raise TypeError(f"sigevent must be a sigevent_kevent, not {type(sigevent).__name__}")
    listed = _entries("lio_listio", cbs)
    if len(listed) > tunables.aio_max_queue:
        raise oserror(errno.EINVAL, f"{len(listed)} control blocks (aio_max_queue)")
    entries = [cb for cb in listed if cb is not None and cb.lio_opcode != LIO_NOP]
    with _table.lock:
        if len(_table.jobs) + len(entries) > tunables.aio_max_queue:
            raise oserror(errno.EAGAIN, f"{len(entries)} more jobs (aio_max_queue)")
        lio = LioList(_table, next(_table.idents))
    if sigevent is not None and mode == LIO_NOWAIT:
        core = sigevent.kq._core
        if core is None:
            raise oserror(errno.EBADF, "the sigevent's kqueue is closed")
        lio.knote = aiofilter.post(core, lio, EVFILT_LIO, lio.ident, sigevent.flags, sigevent.udata)
    nerror = nagain = 0
    for cb in entries:
        try:
            op = _LIO_OPS.get(cb.lio_opcode)
            if op is None:
                raise oserror(errno.EINVAL, f"lio_opcode {cb.lio_opcode}")
            _queue(cb, op, lio)
        except Exception as exc:  # recorded in the block, counted
            if _refused(cb, exc) == errno.EAGAIN:
                nagain += 1
            else:
                nerror += 1
    with _table.section():
        try:
            if mode == LIO_WAIT:
                while lio.pending > 1:  # our own hold is the one left
                    _table.cond.wait()
        finally:
            _table.release_list(lio)
    if nerror or (mode == LIO_WAIT and lio.failed):
        raise oserror(errno.EIO, "one or more requests failed; see aio_error")
    if nagain:
        raise oserror(errno.EAGAIN, "the queue limits refused requests; see aio_error")
    return lio.ident


_LIO_OPS = {LIO_READ: OP_READ, LIO_WRITE: OP_WRITE}


def aio_stats() -> dict[str, int]:
    """Jobs queued, running, done, cancelled; zero-copy bytes, copies, notices."""
    with _table.lock:
        stats = dict(_table.stats)
        stats["jobs"] = len(_table.jobs)
        stats["sockets"] = len(_sockets.states)
        stats["workers"] = _files.workers
    return stats
