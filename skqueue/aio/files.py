"""File jobs: a pool of worker threads, FreeBSD's aio daemons, doing positional I/O.

Workers are started on demand up to ``tunables.aio_workers`` (re-read at every
submission, so the pool grows while running; surplus workers leave after their
job) and leave after ``IDLE_EXIT`` seconds without work.  Reads use ``preadv``
straight into the caller's buffer and writes ``pwrite`` straight from it: one
call per job, so a read past EOF returns 0.  The file's identity is checked
before the call: a descriptor closed (or reused) after submission gives EBADF.
Whatever goes wrong while serving a job ends that job with an errno; it never
takes the worker down (a dead worker would still count towards the pool).
"""

from __future__ import annotations

import errno
import os
import threading
from collections import deque

from ..tunables import tunables
from .jobs import OP_DSYNC, OP_READ, OP_SYNC, OP_WRITE, QUEUED, Job, JobTable, errno_of

IDLE_EXIT = 30.0


class FilePool:
    """The worker pool and its queue; guarded by the job table's lock."""

    def __init__(self, table: JobTable) -> None:
        self.table = table
        self.queue: deque[Job] = deque()
        self.work = threading.Condition(table.lock)
        self.workers = 0
        self.idle = 0
        self._names = 0

    def push(self, job: Job) -> None:
        """Queue job for a worker (table lock held)."""
        self.queue.append(job)
        if self.idle >= len(self.queue):
            self.work.notify()
        elif self.workers < tunables.aio_workers:
            self.workers += 1
            self._names += 1
            threading.Thread(
                target=self._serve, name=f"skqueue-aiod-{self._names}", daemon=True
            ).start()

    def _next(self) -> Job | None:
        """The next queued job, or None when this worker should leave (lock held)."""
        while True:
            if self.workers > tunables.aio_workers:
                self.workers -= 1
                if self.queue:
                    self.work.notify()  # pass the job we were woken for on
                return None
            while self.queue:
                job = self.queue.popleft()
                if job.state == QUEUED:  # cancelled jobs are left in the queue
                    self.table.start(job)
                    return job
            self.idle += 1
            try:
                woken = self.work.wait(IDLE_EXIT)
            finally:
                self.idle -= 1
            if not woken and not self.queue:
                self.workers -= 1
                return None

    def _serve(self) -> None:
        table = self.table
        while True:
            with table.section():
                job = self._next()
            if job is None:
                return
            error, result = _perform(job)
            with table.section():
                table.complete(job, error, result)


def _perform(job: Job) -> tuple[int, int]:
    """Run job's system call without the lock; (errno, result), never an exception."""
    try:
        st = os.fstat(job.fd)
        if (st.st_dev, st.st_ino) != job.identity:
            return errno.EBADF, -1
        if job.op == OP_READ:
            assert job.view is not None
            return 0, os.preadv(job.fd, [job.view[: job.nbytes]], job.offset)
        if job.op == OP_WRITE:
            assert job.view is not None
            return 0, os.pwrite(job.fd, job.view[: job.nbytes], job.offset)
        if job.op == OP_SYNC:
            os.fsync(job.fd)
        elif job.op == OP_DSYNC:
            os.fdatasync(job.fd)
        return 0, 0
    except Exception as exc:  # the job fails, the worker lives on
        return errno_of(exc), -1
