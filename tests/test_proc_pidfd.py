"""EVFILT_PROC gives its pidfd back as soon as the exit status is read.

A knote that is disabled (EV_DISABLE, or by an EV_DISPATCH delivery) when its
process exits keeps its NOTE_EXIT for later, but not the pidfd: a program that
watches many short-lived children with disabled knotes must not run out of fds.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import skqueue
from skqueue.backend.proc_connector import ProcConnector
from skqueue.constants import (
    EV_ADD,
    EV_DELETE,
    EV_DISABLE,
    EV_DISPATCH,
    EV_ENABLE,
    EV_EOF,
    EV_ONESHOT,
    EVFILT_PROC,
    NOTE_EXIT,
    NOTE_FORK,
)
from skqueue.event import kevent
from support import nothing, one

WAIT = 5.0
STATUS = 3 << 8  # wait(2) status of exit(3)

# Forks a grandchild (and reaps it) for each line read; exits 3 at end of input.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    print("ready", flush=True)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print("forked", flush=True)
    sys.exit(3)
    """
)


def _connector_works() -> bool:
    try:
        ProcConnector.open().close()
    except OSError:
        return False
    return True


class Child:
    """A child that forks when told and exits 3 when its stdin is closed."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.proc.pid
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def fork(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("fork\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "forked\n"

    def exit(self) -> None:
        """Let it exit and wait until it has, without reaping it (the kqueue reads the status)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def child() -> Iterator[Child]:
    made = Child()
    yield made
    made.close()


def pidfds() -> int:
    """How many pidfds this process holds open."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[pidfd]":
                count += 1
        except OSError:  # the fd listdir itself used, already closed
            continue
    return count


def register(kq: skqueue.kqueue, child: Child, fflags: int, flags: int) -> int:
    """Add the knote; returns the pidfd count before it, checking it took one."""
    before = pidfds()
    kq.control([kevent(child.pid, EVFILT_PROC, EV_ADD | flags, fflags)], 0)
    assert pidfds() == before + 1
    return before


def enable_and_get_exit(kq: skqueue.kqueue, child: Child) -> None:
    kq.control([kevent(child.pid, EVFILT_PROC, EV_ENABLE, NOTE_EXIT)], 0)
    ev = one(kq, WAIT)
    assert (ev.ident, ev.filter, ev.fflags, ev.data) == (child.pid, EVFILT_PROC, NOTE_EXIT, STATUS)
    assert ev.flags & (EV_EOF | EV_ONESHOT) == EV_EOF | EV_ONESHOT
    with pytest.raises(OSError) as info:  # delivered with EV_ONESHOT: deleted
        kq.control([kevent(child.pid, EVFILT_PROC, EV_DELETE)], 0)
    assert info.value.errno == errno.ENOENT


@pytest.mark.parametrize(
    "flags",
    [EV_DISABLE, EV_DISABLE | EV_ONESHOT, EV_DISABLE | EV_DISPATCH],
    ids=["disable", "disable+oneshot", "disable+dispatch"],
)
def test_exit_while_disabled_closes_the_pidfd(kq: skqueue.kqueue, child: Child, flags: int) -> None:
    before = register(kq, child, NOTE_EXIT, flags)
    child.exit()
    nothing(kq)  # the kqueue sees the exit and reads the status, delivers nothing
    assert pidfds() == before
    assert child.proc.wait(WAIT) == 3  # reaped: the kqueue already has the status
    enable_and_get_exit(kq, child)
    assert pidfds() == before


@pytest.mark.skipif(not _connector_works(), reason="NOTE_FORK needs the proc connector (root)")
def test_exit_while_dispatch_disabled_closes_the_pidfd(kq: skqueue.kqueue, child: Child) -> None:
    before = register(kq, child, NOTE_EXIT | NOTE_FORK, EV_DISPATCH)
    child.fork()
    assert one(kq, WAIT).fflags == NOTE_FORK  # and now disabled by EV_DISPATCH
    child.exit()
    nothing(kq)
    assert pidfds() == before
    enable_and_get_exit(kq, child)
    assert pidfds() == before


def test_exit_delivered_closes_the_pidfd(kq: skqueue.kqueue, child: Child) -> None:
    before = register(kq, child, NOTE_EXIT, 0)
    child.exit()
    assert one(kq, WAIT).data == STATUS
    assert pidfds() == before


@pytest.mark.parametrize("how", ["delete", "close"])
def test_knote_of_an_exited_process_goes_cleanly(child: Child, how: str) -> None:
    """EV_DELETE or close() after the pidfd was given back closes nothing twice."""
    kq = skqueue.kqueue()
    try:
        before = register(kq, child, NOTE_EXIT, EV_DISABLE)
        child.exit()
        nothing(kq)
        guard = os.open(os.devnull, os.O_RDONLY)  # takes the number the pidfd had
        try:
            if how == "delete":
                kq.control([kevent(child.pid, EVFILT_PROC, EV_DELETE)], 0)
            else:
                kq.close()
            os.fstat(guard)  # still open: nobody closed the pidfd's old number again
        finally:
            os.close(guard)
        assert pidfds() == before
    finally:
        kq.close()
